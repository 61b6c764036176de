//! The one error type of the service layer: typed variants, so callers match on
//! what went wrong, and no secret in any message.

use chrono::{DateTime, Utc};
use sea_orm::{DbErr, SqlErr};
use std::borrow::Cow;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The input was rejected before any query ran.
    #[error("invalid {field}: {reason}")]
    Validation {
        field: &'static str,
        reason: Cow<'static, str>,
    },
    #[error("{entity} {id} not found")]
    NotFound { entity: &'static str, id: String },
    /// The change contradicts existing data (a duplicate, the last owner, ...).
    #[error("{entity}: {reason}")]
    Conflict {
        entity: &'static str,
        reason: &'static str,
    },
    /// Unknown email, wrong password, or a throttled attempt; deliberately does not say
    /// which.
    #[error("email or password is incorrect")]
    InvalidCredentials,
    #[error("account is disabled")]
    AccountDisabled,
    /// The caller is known but not allowed to do this.
    #[error("forbidden: {reason}")]
    Forbidden { reason: &'static str },
    /// A token that was never issued, or is malformed.
    #[error("token is invalid")]
    InvalidToken,
    #[error("{what} expired at {at}")]
    Expired {
        what: &'static str,
        at: DateTime<Utc>,
    },
    /// A rotated refresh token came back: the session was revoked as a precaution.
    #[error("refresh token was already used; the session has been revoked")]
    TokenReused,
    #[error("session has been revoked")]
    SessionRevoked,
    /// A presented API key is not one this service could have issued (a typo, a
    /// truncated copy, another environment's key); refused before any query.
    #[error("malformed API key: {0}")]
    MalformedApiKey(#[from] crate::identity::ApiKeyFormatError),
    #[error("API key has been revoked")]
    ApiKeyRevoked,
    /// The key was rotated and its grace period is over: use its successor.
    #[error("API key was replaced; it stopped working at {at}")]
    ApiKeyReplaced { at: DateTime<Utc> },
    /// A well-formed second-factor code (TOTP or backup code) that is wrong, already
    /// used, or for a step already used; deliberately does not say which.
    #[error("the code is incorrect or was already used")]
    InvalidMfaCode,
    /// A sensitive operation needs a stronger or fresher authentication of this
    /// session: ask the user for what `needs` names, call
    /// `identity::reauthenticate`, and retry.
    #[error("step-up required: {needs}")]
    StepUpRequired { needs: StepUp },
    /// Anomaly detection scored the sign-in too risky, and the user has no second
    /// factor to prove it is them.
    #[error(
        "sign-in refused: it looks risky (score {risk_score}) and the account has no second factor"
    )]
    RiskySignInRefused { risk_score: i32 },
    /// A new password the password policy refuses; `reason` says why, for the user.
    #[error("weak password: {reason}")]
    WeakPassword {
        reason: crate::identity::WeakPasswordReason,
    },
    /// A passkey assertion that does not hold, or names a disabled or unknown passkey.
    #[error("passkey assertion refused: {reason}")]
    PasskeyRejected {
        reason: crate::identity::PasskeyRejection,
    },
    /// A cross-region transfer of a tenant's data to a region its owner did not allow;
    /// it was logged and audited as refused.
    #[error(
        "cross-region transfer refused: the tenant's data lives in {from:?} and may not go to {to:?}"
    )]
    TransferRefused {
        from: entity::tenancy::tenants::DataRegion,
        to: entity::tenancy::tenants::DataRegion,
    },
    /// Usage beyond what the tenant's plan allows in its current billing period.
    #[error("{metric}: {used} used and {requested} more would exceed the plan's limit of {limit}")]
    LimitExceeded {
        metric: String,
        limit: i64,
        used: i64,
        requested: i64,
    },
    /// A payment provider refused or failed a call; nothing was stored.
    #[error("payment provider {provider}: {reason}")]
    PaymentProvider {
        provider: &'static str,
        reason: String,
    },
    /// An audit checkpoint that cannot be signed or used (see `audit::checkpoint`).
    #[error("audit checkpoint: {0}")]
    Checkpoint(#[from] crate::audit::CheckpointError),
    /// Hashing or verifying a secret failed for a reason other than a wrong secret.
    #[error("cryptographic operation failed: {0}")]
    Crypto(&'static str),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// What a session must do before a sensitive operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepUp {
    /// The user has a second factor and this session was opened without it (aal1).
    SecondFactor,
    /// The last proof of identity is older than the re-authentication window.
    Reauthentication,
}

impl std::fmt::Display for StepUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StepUp::SecondFactor => "verify the second factor in this session (aal2)",
            StepUp::Reauthentication => "re-enter the password (the last sign-in is too old)",
        })
    }
}

impl ServiceError {
    pub(crate) fn validation(field: &'static str, reason: impl Into<Cow<'static, str>>) -> Self {
        Self::Validation {
            field,
            reason: reason.into(),
        }
    }

    pub(crate) fn not_found(entity: &'static str, id: impl ToString) -> Self {
        Self::NotFound {
            entity,
            id: id.to_string(),
        }
    }
}

/// Turns a unique-constraint violation into `Conflict`, so a race between two
/// requests gives the same answer as the check that ran before the insert.
pub(crate) fn conflict_on_unique(
    entity: &'static str,
    reason: &'static str,
) -> impl Fn(DbErr) -> ServiceError {
    move |err| match err.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => ServiceError::Conflict { entity, reason },
        _ => ServiceError::Db(err),
    }
}
