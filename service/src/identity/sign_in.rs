//! Signing in: the password, then, when the user has a second factor or the sign-in
//! looks risky, a second step.
//!
//! The application calls [`login`]. Its answer is either a session
//! ([`SignIn::Complete`]) or a challenge ([`SignIn::SecondFactorRequired`]): a
//! short-lived, single-use token to send back with a TOTP or backup code to
//! [`complete_sign_in`], which opens the session at assurance level `aal2`.
//!
//! Throttling spans both steps. The password step's throttle slot is given back only
//! when the whole sign-in succeeds, and each second step claims a slot of its own
//! before the code is checked, so wrong codes lock the account out exactly like wrong
//! passwords; a challenge also dies after
//! [`ServiceConfig::mfa_challenge_max_failures`](crate::ServiceConfig) wrong codes.
//!
//! Anomaly detection runs at the password step (see `anomalies`): from
//! `AnomalyPolicy::step_up_score`, a user with a second factor must use it, and a user
//! without one is refused (`RiskySignInRefused`).

use super::anomalies::{self, Finding};
use super::mfa::{self, ParsedProof};
use super::passkeys::{
    ExpectedCeremony, PasskeyAssertion, PasskeyRejection, verify_passkey_assertion,
};
use super::sessions::{Authenticated, IssuedSession, open_session};
use super::throttle;
use super::throttle::Claim as ThrottleClaim;
use super::tokens::{ClearToken, TokenKind, generate_prefixed, hash_token, looks_prefixed};
use super::users::{
    Account, PasswordChecked, active_account, begin_for_user, check_password, record_failure,
    set_password_hash, stamp_sign_in,
};
use crate::Result;
use crate::audit::{AuditEntry, AuditEvent, record};
use crate::deps::Deps;
use crate::error::ServiceError;
use crate::input::{Email, Password};
use crate::request::RequestMeta;
use crate::sql::find_before_acting;
use crate::transaction::InTransaction;
use chrono::{DateTime, Utc};
use entity::audit::audit_logs::AuditOutcome;
use entity::identity::mfa_challenges::{self, ChallengeReason};
use entity::identity::sessions::AssuranceLevel;
use entity::{MfaChallengeId, UserId};
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DerivePartialModel, EntityTrait, QueryFilter, QuerySelect,
    QueryTrait, TransactionTrait,
};
use serde_json::json;

use super::mfa::MfaProof;

const CHALLENGE_PREFIX: &str = "mfa_";

/// Marks a [`ClearToken`] as an MFA challenge.
#[derive(Debug)]
pub enum ChallengeTokenKind {}

impl TokenKind for ChallengeTokenKind {
    const NAME: &'static str = "MfaChallengeToken";
}

/// The token of an MFA challenge in clear: send it to the client, which returns it
/// with the code. Only its SHA-256 is stored.
pub type ChallengeToken = ClearToken<ChallengeTokenKind>;

fn looks_like_challenge_token(token: &str) -> bool {
    looks_prefixed(token, CHALLENGE_PREFIX)
}

/// The half-way point of a sign-in in two steps.
#[derive(Debug)]
pub struct MfaChallenge {
    pub id: MfaChallengeId,
    pub user_id: UserId,
    pub token: ChallengeToken,
    pub reason: ChallengeReason,
    /// The sign-in's anomaly score (0 to 100).
    pub risk_score: i32,
    pub expires_at: DateTime<Utc>,
}

/// What the password step of a sign-in led to.
// Returned once per sign-in and matched at once: boxing would only cost an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum SignIn {
    /// Signed in at `aal1`: no second factor was needed.
    Complete {
        account: Account,
        session: IssuedSession,
    },
    /// The password was right; send the challenge's token back with a second factor
    /// to [`complete_sign_in`].
    SecondFactorRequired(MfaChallenge),
}

/// The password step of a sign-in. Opens a session when the user has no second factor
/// and anomaly detection finds the sign-in ordinary; issues a challenge when the user
/// has a factor (recording `mfa_challenge_issued`); refuses a risky sign-in of a user
/// without a factor. Every finding is reported (`session_anomaly_reports`,
/// `session_anomaly_detected`).
///
/// Takes a connection, not a transaction, like [`authenticate`](super::authenticate).
///
/// # Errors
/// Those of `authenticate`; `RiskySignInRefused`; `Db`.
pub async fn login(
    db: &DatabaseConnection,
    deps: &Deps,
    email: &Email,
    password: &Password,
    meta: &RequestMeta,
) -> Result<SignIn> {
    let PasswordChecked {
        user_id,
        claim,
        rehash,
    } = check_password(db, deps, email, password, meta).await?;
    let txn = begin_for_user(db, user_id).await?;
    let account = match active_account(&txn, deps, user_id, meta).await? {
        Ok(account) => account,
        Err(refused) => {
            txn.commit().await?;
            return Err(refused);
        }
    };
    let findings = anomalies::assess_sign_in(&txn, deps, user_id, meta).await?;
    let risk_score = anomalies::total_score(&findings);
    let has_factor = mfa::has_second_factor(&txn, user_id).await?;

    if has_factor {
        if let Some(hash) = rehash {
            // The password is in hand now, not at the second step.
            set_password_hash(&txn, deps, user_id, hash).await?;
        }
        let reason = if risk_score >= deps.config.anomaly.step_up_score {
            ChallengeReason::Risk
        } else {
            ChallengeReason::Factor
        };
        let challenge = issue_challenge(&txn, deps, user_id, reason, &findings, meta).await?;
        txn.commit().await?;
        return Ok(SignIn::SecondFactorRequired(challenge));
    }
    if risk_score >= deps.config.anomaly.step_up_score {
        anomalies::write_reports(&txn, deps, user_id, None, &findings, meta).await?;
        record(
            &txn,
            deps,
            AuditEntry::new(AuditEvent::LoginFailed, AuditOutcome::Denied, meta)
                .actor(user_id)
                .resource("user", user_id)
                .risk(i16::try_from(risk_score).unwrap_or(100))
                .details(
                    json!({ "reason": "risky_without_second_factor", "risk_score": risk_score }),
                ),
        )
        .await?;
        // The throttle keeps this attempt counted as a failure.
        txn.commit().await?;
        return Err(ServiceError::RiskySignInRefused { risk_score });
    }
    throttle::settle_success(&txn, deps, &claim, 1).await?;
    let account = stamp_sign_in(&txn, deps, account, rehash, &["password"], meta).await?;
    let session = open_session(
        &txn,
        deps,
        user_id,
        &Authenticated::password_only(),
        &findings,
        meta,
    )
    .await?;
    txn.commit().await?;
    Ok(SignIn::Complete { account, session })
}

async fn issue_challenge<C: InTransaction>(
    db: &C,
    deps: &Deps,
    user_id: UserId,
    reason: ChallengeReason,
    findings: &[Finding],
    meta: &RequestMeta,
) -> Result<MfaChallenge> {
    let now = deps.now();
    let token = generate_prefixed(deps, CHALLENGE_PREFIX);
    let risk_score = anomalies::total_score(findings);
    let challenge = MfaChallenge {
        id: MfaChallengeId(deps.new_id("mfa_challenges", &user_id.to_string())),
        user_id,
        reason,
        risk_score,
        expires_at: now + deps.config.mfa_challenge_lifetime,
        token,
    };
    // Without RETURNING: the runtime role cannot read the hash back.
    mfa_challenges::Entity::insert(mfa_challenges::ActiveModel {
        id: Set(challenge.id),
        user_id: Set(user_id),
        token_hash: Set(challenge.token.hash()),
        reason: Set(reason),
        risk_score: Set(risk_score),
        failures: Set(0),
        created_at: Set(now),
        expires_at: Set(challenge.expires_at),
        // The column's default: the runtime role may not insert a completed challenge.
        completed_at: NotSet,
    })
    .exec_without_returning(db)
    .await?;
    anomalies::write_reports(db, deps, user_id, None, findings, meta).await?;
    record(
        db,
        deps,
        AuditEntry::new(AuditEvent::MfaChallengeIssued, AuditOutcome::Success, meta)
            .actor(user_id)
            .resource("mfa_challenge", challenge.id)
            .risk(i16::try_from(risk_score).unwrap_or(100))
            .details(json!({ "reason": reason, "risk_score": risk_score })),
    )
    .await?;
    Ok(challenge)
}

/// A challenge's state, without its hash.
#[derive(Clone, Debug, DerivePartialModel)]
#[sea_orm(entity = "mfa_challenges::Entity")]
struct ChallengeState {
    failures: i32,
    expires_at: DateTime<Utc>,
    completed_at: Option<DateTime<Utc>>,
}

/// Which challenge and whose a presented token names. On PostgreSQL through
/// `app_mfa_challenge_lookup`: nobody is acting yet to make the row visible.
async fn find_challenge<C: InTransaction>(
    db: &C,
    presented: &str,
) -> Result<Option<(MfaChallengeId, UserId)>> {
    let hash = hash_token(presented);
    let elsewhere = mfa_challenges::Entity::find()
        .select_only()
        .column(mfa_challenges::Column::Id)
        .column(mfa_challenges::Column::UserId)
        .filter(mfa_challenges::Column::TokenHash.eq(hash.clone()))
        .into_query();
    find_before_acting(
        db,
        ("app_mfa_challenge_lookup", &["challenge_id", "user_id"]),
        hash.expose(),
        elsewhere,
    )
    .await
}

/// A presented challenge that may still be completed, and whose it is.
struct OpenChallenge {
    id: MfaChallengeId,
    account: Account,
}

/// Finds the challenge a token names and checks it can still be completed: not
/// completed, not spent by wrong codes, not expired, its user active.
async fn open_challenge(
    db: &DatabaseConnection,
    deps: &Deps,
    token: &str,
) -> Result<OpenChallenge> {
    if !looks_like_challenge_token(token) {
        return Err(ServiceError::InvalidToken);
    }
    let lookup = db.begin().await?;
    let found = find_challenge(&lookup, token).await?;
    lookup.commit().await?;
    let Some((id, user_id)) = found else {
        return Err(ServiceError::InvalidToken);
    };
    let read = begin_for_user(db, user_id).await?;
    let state = mfa_challenges::Entity::find_by_id(id)
        .into_partial_model::<ChallengeState>()
        .one(&read)
        .await?
        .ok_or(ServiceError::InvalidToken)?;
    let account = super::users::find_active_user(&read, user_id).await?;
    read.commit().await?;
    if state.completed_at.is_some() || state.failures >= deps.config.mfa_challenge_max_failures {
        return Err(ServiceError::InvalidToken);
    }
    if state.expires_at <= deps.now() {
        return Err(ServiceError::Expired {
            what: "MFA challenge",
            at: state.expires_at,
        });
    }
    Ok(OpenChallenge { id, account })
}

/// A wrong second step, after its transaction rolled back: the challenge counts the
/// failure and, if this attempt started a sign-in block, `login_failed` and
/// `account_locked` are recorded; each on a transaction of its own.
async fn count_failed_step(
    db: &DatabaseConnection,
    deps: &Deps,
    challenge: &OpenChallenge,
    claim: &ThrottleClaim,
    meta: &RequestMeta,
) -> Result<()> {
    let user_id = challenge.account.id;
    let failed = begin_for_user(db, user_id).await?;
    mfa_challenges::Entity::update_many()
        .col_expr(
            mfa_challenges::Column::Failures,
            Expr::col(mfa_challenges::Column::Failures).add(1),
        )
        .filter(mfa_challenges::Column::Id.eq(challenge.id))
        .exec(&failed)
        .await?;
    failed.commit().await?;
    if claim.blocked_until.is_some() {
        record_failure(db, deps, Some(user_id), "wrong_second_factor", claim, meta).await?;
    }
    Ok(())
}

/// A right second step, in `txn`: completes the challenge (one completion wins a race),
/// gives the sign-in's throttle slots back, stamps the sign-in and opens an `aal2`
/// session. The caller commits.
async fn finish_sign_in<C: InTransaction>(
    txn: &C,
    deps: &Deps,
    challenge: OpenChallenge,
    claim: &ThrottleClaim,
    second_method: &'static str,
    meta: &RequestMeta,
) -> Result<(Account, IssuedSession)> {
    let now = deps.now();
    let completed = mfa_challenges::Entity::update_many()
        .col_expr(mfa_challenges::Column::CompletedAt, Expr::value(now))
        .filter(mfa_challenges::Column::Id.eq(challenge.id))
        .filter(mfa_challenges::Column::CompletedAt.is_null())
        .filter(mfa_challenges::Column::ExpiresAt.gt(now))
        .filter(mfa_challenges::Column::Failures.lt(deps.config.mfa_challenge_max_failures))
        .exec(txn)
        .await?
        .rows_affected
        == 1;
    if !completed {
        // A concurrent second step completed it first.
        return Err(ServiceError::InvalidToken);
    }
    let user_id = challenge.account.id;
    throttle::settle_success(txn, deps, claim, 2).await?;
    let methods = ["password", second_method];
    let account = stamp_sign_in(txn, deps, challenge.account, None, &methods, meta).await?;
    let session = open_session(
        txn,
        deps,
        user_id,
        &Authenticated {
            aal: AssuranceLevel::Aal2,
            methods: methods.to_vec(),
        },
        &[],
        meta,
    )
    .await?;
    Ok((account, session))
}

/// The second step: a TOTP code or a backup code for the challenge `token`. Opens the
/// session at `aal2` and records `login` (with both methods), `mfa_verified` or
/// `backup_code_used`, and `session_created`, in one transaction. A wrong code counts
/// toward the sign-in throttle and the challenge's failures, and records
/// `mfa_verification_failed` (and `account_locked` when it starts a block) on a
/// transaction of its own.
///
/// # Errors
/// `Validation` for a code of the wrong shape, `InvalidToken` for a token never
/// issued, already completed, or spent by too many wrong codes (all before the code is
/// checked); `Expired`; `InvalidMfaCode` for a wrong, used or throttled code (or a
/// user whose only second factor is a passkey); `AccountDisabled`; `Crypto`; `Db`.
pub async fn complete_sign_in(
    db: &DatabaseConnection,
    deps: &Deps,
    token: &str,
    proof: MfaProof<'_>,
    meta: &RequestMeta,
) -> Result<(Account, IssuedSession)> {
    let proof = ParsedProof::parse(proof)?;
    let challenge = open_challenge(db, deps, token).await?;
    let user_id = challenge.account.id;
    let email = Email::parse(&challenge.account.email)?;
    // Counted before the code is checked, as for passwords.
    let claim = throttle::claim(db, deps, &email, meta).await?;

    let txn = begin_for_user(db, user_id).await?;
    let factor = mfa::confirmed_factor(&txn, user_id).await?;
    let outcome = match (&factor, claim.refused) {
        (Some(factor), false) => mfa::spend_proof(&txn, deps, user_id, factor, &proof).await?,
        _ => Err(mfa::Refusal::WrongCode),
    };
    if let Err(refusal) = outcome {
        txn.rollback().await?;
        count_failed_step(db, deps, &challenge, &claim, meta).await?;
        return Err(mfa::refuse(db, deps, user_id, proof.method(), refusal, meta).await?);
    }
    let (event, resource) = match (&proof, &factor) {
        (ParsedProof::Totp(_), Some(factor)) => (
            AuditEvent::MfaVerified,
            ("mfa_factor", factor.id.to_string()),
        ),
        _ => (AuditEvent::BackupCodeUsed, ("user", user_id.to_string())),
    };
    record(
        &txn,
        deps,
        AuditEntry::new(event, AuditOutcome::Success, meta)
            .actor(user_id)
            .resource(resource.0, resource.1)
            .details(json!({ "method": proof.method(), "mfa_challenge_id": challenge.id })),
    )
    .await?;
    let signed_in = finish_sign_in(&txn, deps, challenge, &claim, proof.method(), meta).await?;
    txn.commit().await?;
    Ok(signed_in)
}

/// The second step with a passkey. The WebAuthn challenge the browser signed must be
/// the challenge token's bytes (`challenge.token.expose().as_bytes()`, passed to
/// `navigator.credentials.get()`), so the assertion is bound to this sign-in and the
/// token's single use is the ceremony's. The assertion is checked by
/// [`verify_passkey_assertion`](super::verify_passkey_assertion) (which records
/// `passkey_used` or its refusal), and must come from one of the challenge's user's
/// passkeys. Then as [`complete_sign_in`]: an `aal2` session (`password,passkey`), the
/// throttle and the challenge's failures counting a refusal.
///
/// # Errors
/// `InvalidToken`, `Expired` as for `complete_sign_in`; `Validation` for a malformed
/// assertion; `PasskeyRejected` (also for another user's passkey, as
/// `UnknownCredential`, and for a throttled attempt); `AccountDisabled`; `Db`.
pub async fn complete_sign_in_with_passkey(
    db: &DatabaseConnection,
    deps: &Deps,
    token: &str,
    assertion: PasskeyAssertion<'_>,
    origin: &str,
    rp_id: &str,
    meta: &RequestMeta,
) -> Result<(Account, IssuedSession)> {
    let challenge = open_challenge(db, deps, token).await?;
    let email = Email::parse(&challenge.account.email)?;
    let claim = throttle::claim(db, deps, &email, meta).await?;
    let refused = |reason| ServiceError::PasskeyRejected { reason };
    let verified = if claim.refused {
        Err(refused(PasskeyRejection::UnknownCredential))
    } else {
        verify_passkey_assertion(
            db,
            deps,
            assertion,
            ExpectedCeremony {
                challenge: token.as_bytes(),
                origin,
                rp_id,
            },
            meta,
        )
        .await
    };
    // Someone else's passkey proves nothing about this user.
    let verified = verified.and_then(|v| {
        if v.user_id == challenge.account.id {
            Ok(v)
        } else {
            Err(refused(PasskeyRejection::UnknownCredential))
        }
    });
    let verified = match verified {
        Ok(v) => v,
        Err(e @ ServiceError::PasskeyRejected { .. }) => {
            count_failed_step(db, deps, &challenge, &claim, meta).await?;
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    let txn = begin_for_user(db, challenge.account.id).await?;
    record(
        &txn,
        deps,
        AuditEntry::new(AuditEvent::MfaVerified, AuditOutcome::Success, meta)
            .actor(challenge.account.id)
            .resource("passkey", verified.passkey_id)
            .details(json!({ "method": "passkey", "mfa_challenge_id": challenge.id })),
    )
    .await?;
    let signed_in = finish_sign_in(&txn, deps, challenge, &claim, "passkey", meta).await?;
    txn.commit().await?;
    Ok(signed_in)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_tokens_are_shape_checked() {
        assert!(looks_like_challenge_token(&format!(
            "mfa_{}",
            "ab".repeat(32)
        )));
        assert!(!looks_like_challenge_token(&format!(
            "rt_{}",
            "ab".repeat(32)
        )));
        assert!(!looks_like_challenge_token("mfa_zz"));
    }
}
