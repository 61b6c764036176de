//! Assurance levels and step-up: how strongly, and how recently, a session's user
//! proved who they are, and the sensitive operations that ask for more.
//!
//! A request presents its session: [`validate_session`] checks it and returns a
//! [`SessionAuth`]. Sensitive operations (changing the password or the second factor,
//! managing API keys, closing the account) take that `SessionAuth` and, inside their
//! own transaction, require:
//! - `aal2` when the user has a second factor (a session opened with the password
//!   alone must verify the factor first), and
//! - a proof of identity within
//!   [`ServiceConfig::reauthentication_window`](crate::ServiceConfig).
//!
//! Otherwise they fail with `StepUpRequired`, recording `step_up_required`; the
//! application asks the user for what the error names and calls [`reauthenticate`].
//! On PostgreSQL the level is set per transaction (`app.current_aal`, read by
//! `app_current_aal()`), so a row-level security policy can require `aal2` too.
//!
//! Changing the password or the second factor and closing the account end the user's
//! other sessions (the current one stays, except on closing).

use super::mfa::{self, MfaProof, ParsedProof};
use super::passkeys::{
    ExpectedCeremony, PasskeyAssertion, PasskeyRejection, verify_passkey_assertion,
};
use super::password;
use super::password_policy::check_new_password;
use super::sessions::revoke_user_sessions;
use super::throttle::{self, Claim as ThrottleClaim};
use super::users::{Account, begin_for_user, check_password, find_active_user, set_password_hash};
use crate::Result;
use crate::audit::{AuditEntry, AuditEvent, record};
use crate::deps::Deps;
use crate::error::{ServiceError, StepUp};
use crate::input::{DisplayName, Email, Password};
use crate::request::RequestMeta;
use crate::sql::read_in_one_round_trip;
use crate::transaction::InTransaction;
use chrono::{DateTime, Utc};
use entity::audit::audit_logs::AuditOutcome;
use entity::identity::sessions::{self, AssuranceLevel, RevokedReason};
use entity::identity::{user_profiles, users};
use entity::{SessionId, UserId};
use sea_orm::sea_query::{Asterisk, Expr, Func, Query, SelectStatement};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter,
    QueryResult, QuerySelect, QueryTrait, Statement, TransactionSession, TransactionTrait,
};
use serde_json::json;

/// A live session, as validated for one request. Only [`validate_session`] and
/// [`reauthenticate`] make one; sensitive operations check it again in their own
/// transaction, so a session revoked meanwhile is refused there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionAuth {
    session_id: SessionId,
    user_id: UserId,
    aal: AssuranceLevel,
    auth_methods: String,
    authenticated_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    has_second_factor: bool,
}

impl SessionAuth {
    pub fn session_id(&self) -> SessionId {
        self.session_id
    }

    pub fn user_id(&self) -> UserId {
        self.user_id
    }

    pub fn aal(&self) -> AssuranceLevel {
        self.aal
    }

    /// Comma-separated, in the order used (`password,totp`).
    pub fn auth_methods(&self) -> &str {
        &self.auth_methods
    }

    /// When the user last proved who they are in this session.
    pub fn authenticated_at(&self) -> DateTime<Utc> {
        self.authenticated_at
    }

    pub fn expires_at(&self) -> DateTime<Utc> {
        self.expires_at
    }

    /// Whether the user had a second factor (a confirmed TOTP factor or an enabled
    /// passkey) when the session was validated.
    pub fn has_second_factor(&self) -> bool {
        self.has_second_factor
    }

    /// What this session lacks for a sensitive operation at `now`, if anything.
    pub fn step_up_needed(&self, deps: &Deps) -> Option<StepUp> {
        if self.has_second_factor && self.aal < AssuranceLevel::Aal2 {
            Some(StepUp::SecondFactor)
        } else if deps.now() - self.authenticated_at > deps.config.reauthentication_window {
            Some(StepUp::Reauthentication)
        } else {
            None
        }
    }
}

/// Session `session_id` of `user_id` with its user's state and whether they have a
/// second factor, in one statement: on PostgreSQL through `app_session_check`, which
/// needs no acting user; elsewhere (no row-level security) from the tables.
fn session_query(backend: DbBackend, user_id: UserId, session_id: SessionId) -> SelectStatement {
    if backend == DbBackend::Postgres {
        return Query::select()
            .column(Asterisk)
            .from_function(
                Func::cust("app_session_check")
                    .args([Expr::val(session_id.0), Expr::val(user_id.0)]),
                "session",
            )
            .to_owned();
    }
    sessions::Entity::find_by_id(session_id)
        .select_only()
        .column(sessions::Column::Aal)
        .column(sessions::Column::AuthMethods)
        .column(sessions::Column::AuthenticatedAt)
        .column(sessions::Column::CreatedAt)
        .column(sessions::Column::ExpiresAt)
        .column(sessions::Column::RevokedAt)
        .column(users::Column::IsActive)
        .expr(mfa::second_factor_exists(user_id))
        .inner_join(users::Entity)
        .filter(sessions::Column::UserId.eq(user_id))
        .into_query()
}

/// Checks the row of [`session_query`], if any: the session is live and its user
/// active.
fn check_session(
    deps: &Deps,
    user_id: UserId,
    session_id: SessionId,
    row: Option<&QueryResult>,
) -> Result<SessionAuth> {
    type Row = (
        AssuranceLevel,
        String,
        Option<DateTime<Utc>>,
        DateTime<Utc>,
        DateTime<Utc>,
        Option<DateTime<Utc>>,
        bool,
        bool,
    );
    let Some(row) = row else {
        return Err(ServiceError::not_found("session", session_id));
    };
    let (
        aal,
        auth_methods,
        authenticated_at,
        created_at,
        expires_at,
        revoked_at,
        active,
        has_second_factor,
    ) = row.try_get_many_by_index::<Row>()?;
    if revoked_at.is_some() {
        return Err(ServiceError::SessionRevoked);
    }
    if expires_at <= deps.now() {
        return Err(ServiceError::Expired {
            what: "session",
            at: expires_at,
        });
    }
    if !active {
        return Err(ServiceError::AccountDisabled);
    }
    Ok(SessionAuth {
        session_id,
        user_id,
        aal,
        auth_methods,
        authenticated_at: authenticated_at.unwrap_or(created_at),
        expires_at,
        has_second_factor,
    })
}

/// Reads session `session_id` of `user_id` and checks it is live, in `db`'s
/// transaction (acting as the user).
pub(crate) async fn load<C: InTransaction>(
    db: &C,
    deps: &Deps,
    user_id: UserId,
    session_id: SessionId,
) -> Result<SessionAuth> {
    let query = session_query(db.get_database_backend(), user_id, session_id);
    let row = db.query_one(&query).await?;
    check_session(deps, user_id, session_id, row.as_ref())
}

/// Sets the acting session's assurance level for this transaction (PostgreSQL only;
/// like the acting user, for row-level security policies).
pub(crate) async fn set_assurance_context<C: InTransaction>(
    db: &C,
    aal: AssuranceLevel,
) -> Result<()> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT set_config('app.current_aal', $1, true)",
        [aal.as_str().into()],
    ))
    .await?;
    Ok(())
}

/// Checks a session a request presents: it belongs to `user_id`, is neither revoked
/// nor expired, and its user is active.
///
/// # Errors
/// `NotFound` for an unknown session or someone else's (the same answer);
/// `SessionRevoked`; `Expired`; `AccountDisabled`; `Db`.
pub async fn validate_session<C>(
    db: &C,
    deps: &Deps,
    user_id: UserId,
    session_id: SessionId,
) -> Result<SessionAuth>
where
    C: ConnectionTrait + TransactionTrait + 'static,
{
    // Every request asks this: one round trip, not a transaction's four.
    let query = session_query(db.get_database_backend(), user_id, session_id);
    let rows = read_in_one_round_trip(db, &query).await?;
    check_session(deps, user_id, session_id, rows.first())
}

/// Opens the transaction of a sensitive operation: acting as the session's user, at
/// its assurance level, after checking (in this transaction) that the session is live,
/// at `aal2` if the user has a second factor, and authenticated within the window.
/// A refusal records `step_up_required` on a transaction of its own.
pub(crate) async fn begin_sensitive<C>(
    db: &C,
    deps: &Deps,
    session: &SessionAuth,
    operation: &'static str,
    meta: &RequestMeta,
) -> Result<C::Transaction>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = begin_for_user(db, session.user_id).await?;
    let current = load(&txn, deps, session.user_id, session.session_id).await?;
    set_assurance_context(&txn, current.aal).await?;
    let Some(needs) = current.step_up_needed(deps) else {
        return Ok(txn);
    };
    txn.rollback().await?;
    let refusal = begin_for_user(db, session.user_id).await?;
    record(
        &refusal,
        deps,
        AuditEntry::new(AuditEvent::StepUpRequired, AuditOutcome::Denied, meta)
            .actor(session.user_id)
            .resource("session", session.session_id)
            .risk(20)
            .details(json!({
                "operation": operation,
                "needs": match needs {
                    StepUp::SecondFactor => "second_factor",
                    StepUp::Reauthentication => "reauthentication",
                },
                "aal": current.aal.as_str(),
            })),
    )
    .await?;
    refusal.commit().await?;
    Err(ServiceError::StepUpRequired { needs })
}

/// Ends the user's sessions but `keep` after a security change, recording
/// `other_sessions_revoked` with the cause; in `db`'s transaction. Their
/// `revoked_reason` is `logout_all`; the audit row says why.
pub(crate) async fn revoke_other_sessions<C: InTransaction>(
    db: &C,
    deps: &Deps,
    user_id: UserId,
    keep: Option<SessionId>,
    cause: &'static str,
    meta: &RequestMeta,
) -> Result<u64> {
    let revoked = revoke_user_sessions(db, deps, user_id, keep, RevokedReason::LogoutAll).await?;
    record(
        db,
        deps,
        AuditEntry::new(
            AuditEvent::OtherSessionsRevoked,
            AuditOutcome::Success,
            meta,
        )
        .actor(user_id)
        .resource("user", user_id)
        .details(json!({ "cause": cause, "sessions_revoked": revoked, "kept": keep })),
    )
    .await?;
    Ok(revoked)
}

/// A second factor was just added and proven in `session` (a TOTP factor confirmed, a
/// passkey registered), in `db`'s transaction: the session becomes `aal2`
/// (`password,<method>`) as of now, and the user's other sessions, opened without it,
/// end (`other_sessions_revoked`, cause `<method>_added`).
pub(crate) async fn factor_added<C: InTransaction>(
    db: &C,
    deps: &Deps,
    session: &SessionAuth,
    method: &'static str,
    meta: &RequestMeta,
) -> Result<()> {
    sessions::Entity::update_many()
        .col_expr(sessions::Column::Aal, Expr::value(AssuranceLevel::Aal2))
        .col_expr(
            sessions::Column::AuthMethods,
            Expr::value(format!("password,{method}")),
        )
        .col_expr(sessions::Column::AuthenticatedAt, Expr::value(deps.now()))
        .filter(sessions::Column::Id.eq(session.session_id))
        .exec(db)
        .await?;
    let cause = if method == "totp" {
        "totp_added"
    } else {
        "passkey_added"
    };
    revoke_other_sessions(
        db,
        deps,
        session.user_id,
        Some(session.session_id),
        cause,
        meta,
    )
    .await?;
    Ok(())
}

/// Step-up: the user proves who they are again within a session, with the password
/// and, if they have a second factor, a code. The session then counts as
/// authenticated now, at `aal2` when a factor was verified. Records
/// `reauthenticated`. Throttled and audited like a sign-in.
///
/// # Errors
/// `StepUpRequired { needs: SecondFactor }` when the user has a factor and no proof
/// was given (before the password is checked); `Validation` for a malformed code;
/// `InvalidCredentials`; `InvalidMfaCode`; those of [`validate_session`]; `Db`.
pub async fn reauthenticate(
    db: &DatabaseConnection,
    deps: &Deps,
    session: &SessionAuth,
    password: &Password,
    proof: Option<MfaProof<'_>>,
    meta: &RequestMeta,
) -> Result<SessionAuth> {
    let proof = proof.map(ParsedProof::parse).transpose()?;
    let current = validate_session(db, deps, session.user_id, session.session_id).await?;
    if current.has_second_factor && proof.is_none() {
        return Err(ServiceError::StepUpRequired {
            needs: StepUp::SecondFactor,
        });
    }
    let account = account_of(db, session.user_id).await?;
    let email = Email::parse(&account.email)?;
    let checked = check_password(db, deps, &email, password, meta).await?;
    if checked.user_id != session.user_id {
        return Err(ServiceError::InvalidCredentials);
    }
    let txn = begin_for_user(db, session.user_id).await?;
    let mut methods = vec!["password"];
    let mut aal = AssuranceLevel::Aal1;
    if let Some(proof) = &proof
        && let Some(factor) = mfa::confirmed_factor(&txn, session.user_id).await?
    {
        if let Err(refusal) = mfa::spend_proof(&txn, deps, session.user_id, &factor, proof).await? {
            txn.rollback().await?;
            return Err(
                mfa::refuse(db, deps, session.user_id, proof.method(), refusal, meta).await?,
            );
        }
        methods.push(proof.method());
        aal = AssuranceLevel::Aal2;
    }
    let refreshed =
        mark_reauthenticated(&txn, deps, session, &checked.claim, aal, &methods, meta).await?;
    txn.commit().await?;
    Ok(refreshed)
}

/// Step-up with a passkey instead of a code: the password, then an assertion of one of
/// the user's passkeys over a challenge the application issued (and consumes) for this
/// step, checked by [`verify_passkey_assertion`](super::verify_passkey_assertion). The
/// session then counts as authenticated now, at `aal2` (`password,passkey`). Records
/// `reauthenticated`.
///
/// # Errors
/// `InvalidCredentials`; `Validation` for a malformed assertion; `PasskeyRejected`
/// (also for another user's passkey, as `UnknownCredential`); those of
/// [`validate_session`]; `Db`.
pub async fn reauthenticate_with_passkey(
    db: &DatabaseConnection,
    deps: &Deps,
    session: &SessionAuth,
    password: &Password,
    assertion: PasskeyAssertion<'_>,
    expected: ExpectedCeremony<'_>,
    meta: &RequestMeta,
) -> Result<SessionAuth> {
    validate_session(db, deps, session.user_id, session.session_id).await?;
    let account = account_of(db, session.user_id).await?;
    let email = Email::parse(&account.email)?;
    let checked = check_password(db, deps, &email, password, meta).await?;
    if checked.user_id != session.user_id {
        return Err(ServiceError::InvalidCredentials);
    }
    let verified = verify_passkey_assertion(db, deps, assertion, expected, meta).await?;
    if verified.user_id != session.user_id {
        return Err(ServiceError::PasskeyRejected {
            reason: PasskeyRejection::UnknownCredential,
        });
    }
    let txn = begin_for_user(db, session.user_id).await?;
    let refreshed = mark_reauthenticated(
        &txn,
        deps,
        session,
        &checked.claim,
        AssuranceLevel::Aal2,
        &["password", "passkey"],
        meta,
    )
    .await?;
    txn.commit().await?;
    Ok(refreshed)
}

/// A successful step-up, in `txn`: the throttle slot back, the session authenticated
/// now at `aal`, `reauthenticated` recorded. Returns the session as it now is.
async fn mark_reauthenticated<C: InTransaction>(
    txn: &C,
    deps: &Deps,
    session: &SessionAuth,
    claim: &ThrottleClaim,
    aal: AssuranceLevel,
    methods: &[&str],
    meta: &RequestMeta,
) -> Result<SessionAuth> {
    throttle::settle_success(txn, deps, claim, 1).await?;
    let now = deps.now();
    sessions::Entity::update_many()
        .col_expr(sessions::Column::AuthenticatedAt, Expr::value(now))
        .col_expr(sessions::Column::Aal, Expr::value(aal))
        .col_expr(
            sessions::Column::AuthMethods,
            Expr::value(methods.join(",")),
        )
        .col_expr(sessions::Column::LastUsedAt, Expr::value(now))
        .filter(sessions::Column::Id.eq(session.session_id))
        .filter(sessions::Column::UserId.eq(session.user_id))
        .filter(sessions::Column::RevokedAt.is_null())
        .exec(txn)
        .await?;
    record(
        txn,
        deps,
        AuditEntry::new(AuditEvent::Reauthenticated, AuditOutcome::Success, meta)
            .actor(session.user_id)
            .resource("session", session.session_id)
            .details(json!({ "aal": aal.as_str(), "methods": methods.join(",") })),
    )
    .await?;
    load(txn, deps, session.user_id, session.session_id).await
}

async fn account_of(db: &DatabaseConnection, user_id: UserId) -> Result<Account> {
    let txn = begin_for_user(db, user_id).await?;
    let account = find_active_user(&txn, user_id).await?;
    txn.commit().await?;
    Ok(account)
}

/// Changes the user's password: a sensitive operation (see the module), the new
/// password checked by the password policy like a sign-up's. Ends the user's other
/// sessions. Records `password_changed` and `other_sessions_revoked`.
///
/// # Errors
/// `WeakPassword` (before anything is written); `StepUpRequired`; `Crypto`; those
/// of [`validate_session`]; `Db`.
pub async fn change_password<C>(
    db: &C,
    deps: &Deps,
    session: &SessionAuth,
    new_password: &Password,
    meta: &RequestMeta,
) -> Result<u64>
where
    C: ConnectionTrait + TransactionTrait,
{
    let (email, display_name) = {
        let txn = begin_for_user(db, session.user_id).await?;
        let account = find_active_user(&txn, session.user_id).await?;
        let name: Option<String> = user_profiles::Entity::find()
            .select_only()
            .column(user_profiles::Column::DisplayName)
            .filter(user_profiles::Column::UserId.eq(session.user_id))
            .into_tuple()
            .one(&txn)
            .await?;
        txn.commit().await?;
        (
            Email::parse(&account.email)?,
            name.and_then(|n| DisplayName::parse(&n).ok()),
        )
    };
    check_new_password(
        &deps.config.password_policy,
        deps.breached_passwords.as_deref(),
        new_password,
        &email,
        display_name.as_ref(),
    )
    .await?;
    // Hash before the transaction: it takes tens of milliseconds.
    let hash = password::hash(deps, new_password).await?;
    let txn = begin_sensitive(db, deps, session, "change_password", meta).await?;
    set_password_hash(&txn, deps, session.user_id, hash).await?;
    record(
        &txn,
        deps,
        AuditEntry::new(AuditEvent::PasswordChanged, AuditOutcome::Success, meta)
            .actor(session.user_id)
            .resource("user", session.user_id),
    )
    .await?;
    let revoked = revoke_other_sessions(
        &txn,
        deps,
        session.user_id,
        Some(session.session_id),
        "password_changed",
        meta,
    )
    .await?;
    txn.commit().await?;
    Ok(revoked)
}

/// Closes the user's own account: a sensitive operation. The user can no longer sign
/// in, and every session ends, this one included. Records `user_deactivated` and
/// `other_sessions_revoked`.
///
/// # Errors
/// `StepUpRequired`; those of [`validate_session`]; `Db`.
pub async fn deactivate_account<C>(
    db: &C,
    deps: &Deps,
    session: &SessionAuth,
    meta: &RequestMeta,
) -> Result<u64>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = begin_sensitive(db, deps, session, "deactivate_account", meta).await?;
    let now = deps.now();
    users::Entity::update_many()
        .col_expr(users::Column::IsActive, Expr::value(false))
        .col_expr(users::Column::UpdatedAt, Expr::value(now))
        .filter(users::Column::Id.eq(session.user_id))
        .exec(&txn)
        .await?;
    record(
        &txn,
        deps,
        AuditEntry::new(AuditEvent::UserDeactivated, AuditOutcome::Success, meta)
            .actor(session.user_id)
            .resource("user", session.user_id),
    )
    .await?;
    let revoked = revoke_other_sessions(
        &txn,
        deps,
        session.user_id,
        None,
        "account_deactivated",
        meta,
    )
    .await?;
    txn.commit().await?;
    Ok(revoked)
}
