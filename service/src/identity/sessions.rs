//! Sessions and refresh-token rotation with reuse detection.
//!
//! A session is one signed-in device. Each refresh exchanges the presented token for
//! a new one. The exchange is a conditional `UPDATE ... WHERE used_at IS NULL`, so of
//! two concurrent refreshes with one token exactly one wins on every backend.
//!
//! Browser tabs refresh together. A token presented again within
//! [`ServiceConfig::refresh_reuse_interval`](crate::ServiceConfig) of its use (10 s by
//! default), from the session's device, gets the same successor back, as long as that
//! successor is unused: each successor is kept sealed in its row
//! (`reissue_sealed`, field encryption bound to the row) until it is used. Presented
//! later, or after the successor moved on, the token is treated as stolen and the whole
//! session is revoked.

use super::anomalies::{self, Finding, LastSeen};
use super::tokens::{RefreshToken, hash_token, looks_like_refresh_token};
use super::users::{begin_for_user, find_active_user};
use crate::Result;
use crate::audit::{AuditEntry, AuditEvent, record};
use crate::crypto::FieldSlot;
use crate::deps::Deps;
use crate::error::ServiceError;
use crate::request::RequestMeta;
use crate::sql::find_before_acting;
use crate::transaction::InTransaction;
use chrono::{DateTime, Duration, Utc};
use entity::audit::audit_logs::AuditOutcome;
use entity::identity::sessions::{self, AssuranceLevel, RevokedReason};
use entity::identity::{refresh_tokens, users};
use entity::{RefreshTokenId, SealedBytes, SessionId, UserId};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend,
    DerivePartialModel, EntityTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait,
    TransactionSession, TransactionTrait,
};
use serde_json::json;

/// A session and the refresh token that continues it.
#[derive(Debug)]
pub struct IssuedSession {
    pub session: sessions::Model,
    pub refresh_token: RefreshToken,
    /// When `refresh_token` stops being accepted.
    pub refresh_expires_at: DateTime<Utc>,
}

/// How a session's user proved who they are.
#[derive(Clone, Debug)]
pub(crate) struct Authenticated {
    pub(crate) aal: AssuranceLevel,
    /// In the order used: `password`, then `totp` or `backup_code`.
    pub(crate) methods: Vec<&'static str>,
}

impl Authenticated {
    pub(crate) fn password_only() -> Self {
        Self {
            aal: AssuranceLevel::Aal1,
            methods: vec!["password"],
        }
    }
}

/// Opens a session for an (already authenticated) user and issues its first refresh
/// token, at assurance level `aal1` (password only). Records `session_created`.
/// Applications sign users in with [`login`](crate::identity::login), which decides
/// the level and runs anomaly detection; this is for tools and tests.
///
/// # Errors
/// `NotFound` for an unknown user; `AccountDisabled`; `Db`.
pub async fn create_session<C>(
    db: &C,
    deps: &Deps,
    user_id: UserId,
    meta: &RequestMeta,
) -> Result<IssuedSession>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = begin_for_user(db, user_id).await?;
    find_active_user(&txn, user_id).await?;
    let issued = open_session(
        &txn,
        deps,
        user_id,
        &Authenticated::password_only(),
        &[],
        meta,
    )
    .await?;
    txn.commit().await?;
    Ok(issued)
}

/// Opens a session in `db`'s transaction (acting as `user_id`, who is active), with
/// the device and location of `meta`; writes the sign-in's anomaly findings against
/// it. Records `session_created`.
pub(crate) async fn open_session<C: InTransaction>(
    db: &C,
    deps: &Deps,
    user_id: UserId,
    auth: &Authenticated,
    findings: &[Finding],
    meta: &RequestMeta,
) -> Result<IssuedSession> {
    let now = deps.now();
    let location = meta.location();
    let coordinates = location.and_then(|l| l.coordinates());
    let session = sessions::ActiveModel {
        id: Set(SessionId(deps.new_id("sessions", &user_id.to_string()))),
        user_id: Set(user_id),
        ip_address: Set(meta.ip_string()),
        user_agent: Set(meta.user_agent().map(str::to_owned)),
        created_at: Set(now),
        last_used_at: Set(now),
        expires_at: Set(now + deps.config.session_lifetime),
        revoked_at: Set(None),
        revoked_reason: Set(None),
        aal: Set(auth.aal),
        auth_methods: Set(auth.methods.join(",")),
        authenticated_at: Set(Some(now)),
        device_hash: Set(meta.device_hash().map(str::to_owned)),
        country: Set(location.and_then(|l| l.country()).map(str::to_owned)),
        city: Set(location.and_then(|l| l.city()).map(str::to_owned)),
        latitude: Set(coordinates.map(|c| c.0)),
        longitude: Set(coordinates.map(|c| c.1)),
    }
    .insert(db)
    .await?;
    let (refresh_token, refresh_expires_at) = issue_token(db, deps, &session, None).await?;
    record(
        db,
        deps,
        AuditEntry::new(AuditEvent::SessionCreated, AuditOutcome::Success, meta)
            .actor(user_id)
            .resource("session", session.id)
            .details(json!({ "aal": auth.aal.as_str(), "methods": auth.methods.join(",") })),
    )
    .await?;
    anomalies::write_reports(db, deps, user_id, Some(session.id), findings, meta).await?;
    Ok(IssuedSession {
        session,
        refresh_token,
        refresh_expires_at,
    })
}

async fn issue_token<C: InTransaction>(
    db: &C,
    deps: &Deps,
    session: &sessions::Model,
    parent: Option<RefreshTokenId>,
) -> Result<(RefreshToken, DateTime<Utc>)> {
    let now = deps.now();
    let token = RefreshToken::generate(deps);
    let expires_at = (now + deps.config.refresh_token_lifetime).min(session.expires_at);
    let id = RefreshTokenId(deps.new_id("refresh_tokens", &session.id.to_string()));
    // A successor is kept, sealed, for its parent's holder to get back within the
    // reuse interval; a session's first token has no parent to come back with.
    let reissue_sealed =
        if parent.is_some() && deps.config.refresh_reuse_interval > Duration::zero() {
            let row = id.to_string();
            Some(SealedBytes::new(
                deps.keys
                    .seal(reissue_slot(&row), token.expose().as_bytes())
                    .map_err(|_| ServiceError::Crypto("sealing a refresh token failed"))?,
            ))
        } else {
            None
        };
    // Without RETURNING: the runtime role cannot read token hashes back.
    refresh_tokens::Entity::insert(refresh_tokens::ActiveModel {
        id: Set(id),
        session_id: Set(session.id),
        token_hash: Set(token.hash()),
        parent_id: Set(parent),
        created_at: Set(now),
        expires_at: Set(expires_at),
        used_at: Set(None),
        revoked_at: Set(None),
        reissue_sealed: Set(reissue_sealed),
    })
    .exec_without_returning(db)
    .await?;
    Ok((token, expires_at))
}

fn reissue_slot(row: &str) -> FieldSlot<'_> {
    FieldSlot {
        table: "refresh_tokens",
        column: "reissue_sealed",
        row,
    }
}

/// A refresh token's state, without its hash.
#[derive(Clone, Debug, DerivePartialModel)]
#[sea_orm(entity = "refresh_tokens::Entity")]
struct TokenState {
    id: RefreshTokenId,
    session_id: SessionId,
    expires_at: DateTime<Utc>,
    used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

/// Which token and whose session a presented token names. On PostgreSQL through
/// `app_refresh_token_lookup`: the runtime role cannot read token hashes, and nobody
/// is acting yet to make the session visible.
async fn find_presented_token<C: InTransaction>(
    db: &C,
    presented: &str,
) -> Result<Option<(RefreshTokenId, UserId)>> {
    let hash = hash_token(presented);
    let elsewhere = refresh_tokens::Entity::find()
        .select_only()
        .column(refresh_tokens::Column::Id)
        .column(sessions::Column::UserId)
        .inner_join(sessions::Entity)
        .filter(refresh_tokens::Column::TokenHash.eq(hash.clone()))
        .into_query();
    find_before_acting(
        db,
        ("app_refresh_token_lookup", &["token_id", "user_id"]),
        hash.expose(),
        elsewhere,
    )
    .await
}

/// Exchanges a refresh token for a new one. Records `session_refreshed`, updates the
/// session's location from `meta` and reports impossible travel from its last one.
/// Within the reuse interval a used token gets its unused successor back (see the
/// module's documentation). Otherwise reuse revokes the session and records
/// `refresh_token_reused`, on a transaction of its own that commits before the error
/// returns (so no caller can roll it back: this takes a connection, not a transaction).
///
/// # Errors
/// `InvalidToken` for a token never issued; `TokenReused` for one already exchanged
/// (the session is now revoked); `SessionRevoked`; `Expired` for an expired token or
/// session; `AccountDisabled`; `Crypto`; `Db`.
pub async fn refresh_session(
    db: &DatabaseConnection,
    deps: &Deps,
    presented: &str,
    meta: &RequestMeta,
) -> Result<IssuedSession> {
    if !looks_like_refresh_token(presented) {
        return Err(ServiceError::InvalidToken);
    }
    // In a transaction, like every statement of the service (PgBouncer, see `authenticate`).
    let lookup = db.begin().await?;
    let found = find_presented_token(&lookup, presented).await?;
    lookup.commit().await?;
    let Some((token_id, user_id)) = found else {
        return Err(ServiceError::InvalidToken);
    };
    let txn = begin_for_user(db, user_id).await?;
    let Some(token) = refresh_tokens::Entity::find_by_id(token_id)
        .into_partial_model::<TokenState>()
        .one(&txn)
        .await?
    else {
        return Err(ServiceError::InvalidToken);
    };
    let Some(session) = sessions::Entity::find_by_id(token.session_id)
        .one(&txn)
        .await?
    else {
        return Err(ServiceError::InvalidToken);
    };
    let now = deps.now();

    if session.revoked_at.is_some() {
        return Err(ServiceError::SessionRevoked);
    }
    if token.revoked_at.is_some() {
        revoke_for_reuse(&txn, deps, &session, token.id, meta).await?;
        txn.commit().await?;
        return Err(ServiceError::TokenReused);
    }
    if let Some(used_at) = token.used_at {
        return reissue_or_revoke(txn, deps, session, token.id, used_at, meta).await;
    }
    if session.expires_at <= now {
        return Err(ServiceError::Expired {
            what: "session",
            at: session.expires_at,
        });
    }
    if token.expires_at <= now {
        return Err(ServiceError::Expired {
            what: "refresh token",
            at: token.expires_at,
        });
    }
    find_active_user(&txn, session.user_id).await?;

    // The race is decided here: only one transaction can flip used_at from NULL.
    let claimed = refresh_tokens::Entity::update_many()
        .col_expr(refresh_tokens::Column::UsedAt, Expr::value(now))
        .col_expr(
            refresh_tokens::Column::ReissueSealed,
            Expr::value(Option::<Vec<u8>>::None),
        )
        .filter(refresh_tokens::Column::Id.eq(token.id))
        .filter(refresh_tokens::Column::UsedAt.is_null())
        .filter(refresh_tokens::Column::RevokedAt.is_null())
        .exec(&txn)
        .await?;
    if claimed.rows_affected != 1 {
        // A concurrent refresh with this token won (and committed: the update waited
        // for its row lock). Read what it did, past this transaction's snapshot.
        let mut reread = refresh_tokens::Entity::find_by_id(token.id);
        if txn.get_database_backend() != DbBackend::Sqlite {
            reread = reread.lock_shared();
        }
        let used_at = reread
            .into_partial_model::<TokenState>()
            .one(&txn)
            .await?
            .and_then(|t| t.used_at)
            .unwrap_or(now);
        return reissue_or_revoke(txn, deps, session, token.id, used_at, meta).await;
    }

    let (refresh_token, refresh_expires_at) =
        issue_token(&txn, deps, &session, Some(token.id)).await?;
    let findings: Vec<Finding> = match (session.latitude, session.longitude) {
        (Some(lat), Some(lng)) => anomalies::travel_finding(
            deps,
            LastSeen {
                coordinates: (lat, lng),
                at: session.last_used_at,
            },
            meta,
        )
        .into_iter()
        .collect(),
        _ => Vec::new(),
    };
    let mut active: sessions::ActiveModel = session.into();
    active.last_used_at = Set(now);
    if let Some(ip) = meta.ip_string() {
        active.ip_address = Set(Some(ip));
    }
    if let Some(location) = meta.location() {
        active.country = Set(location.country().map(str::to_owned));
        active.city = Set(location.city().map(str::to_owned));
        if let Some((lat, lng)) = location.coordinates() {
            active.latitude = Set(Some(lat));
            active.longitude = Set(Some(lng));
        }
    }
    let session = active.update(&txn).await?;
    record(
        &txn,
        deps,
        AuditEntry::new(AuditEvent::SessionRefreshed, AuditOutcome::Success, meta)
            .actor(session.user_id)
            .resource("session", session.id),
    )
    .await?;
    anomalies::write_reports(
        &txn,
        deps,
        session.user_id,
        Some(session.id),
        &findings,
        meta,
    )
    .await?;
    txn.commit().await?;
    Ok(IssuedSession {
        session,
        refresh_token,
        refresh_expires_at,
    })
}

/// A used token came back: within the reuse interval, from the session's device, its
/// unused successor is returned again; otherwise the session is revoked.
async fn reissue_or_revoke<T: ConnectionTrait + TransactionSession>(
    txn: T,
    deps: &Deps,
    session: sessions::Model,
    token_id: RefreshTokenId,
    used_at: DateTime<Utc>,
    meta: &RequestMeta,
) -> Result<IssuedSession> {
    if let Some(issued) = reissue(&txn, deps, &session, token_id, used_at, meta).await? {
        txn.commit().await?;
        return Ok(issued);
    }
    revoke_for_reuse(&txn, deps, &session, token_id, meta).await?;
    txn.commit().await?;
    Err(ServiceError::TokenReused)
}

/// The successor of `token_id` in clear, if its parent may still get it back.
async fn reissue<C: InTransaction>(
    txn: &C,
    deps: &Deps,
    session: &sessions::Model,
    token_id: RefreshTokenId,
    used_at: DateTime<Utc>,
    meta: &RequestMeta,
) -> Result<Option<IssuedSession>> {
    let now = deps.now();
    let interval = deps.config.refresh_reuse_interval;
    if interval <= Duration::zero() || now - used_at > interval || session.expires_at <= now {
        return Ok(None);
    }
    // Another device presenting the token is what theft looks like.
    if let (Some(known), Some(presented)) = (session.device_hash.as_deref(), meta.device_hash())
        && known != presented
    {
        return Ok(None);
    }
    let mut find = refresh_tokens::Entity::find()
        .filter(refresh_tokens::Column::ParentId.eq(token_id))
        .filter(refresh_tokens::Column::UsedAt.is_null())
        .filter(refresh_tokens::Column::RevokedAt.is_null())
        .filter(refresh_tokens::Column::ExpiresAt.gt(now));
    if txn.get_database_backend() != DbBackend::Sqlite {
        find = find.lock_shared();
    }
    let Some(successor) = find.into_partial_model::<Successor>().one(txn).await? else {
        return Ok(None);
    };
    let Some(sealed) = successor.reissue_sealed else {
        return Ok(None);
    };
    let row = successor.id.to_string();
    // A value that no longer opens (its key left the ring) cannot be handed out again.
    let Ok(clear) = deps.keys.open(reissue_slot(&row), sealed.expose()) else {
        return Ok(None);
    };
    let Ok(text) = String::from_utf8(clear.to_vec()) else {
        return Ok(None);
    };
    record(
        txn,
        deps,
        AuditEntry::new(AuditEvent::SessionRefreshed, AuditOutcome::Success, meta)
            .actor(session.user_id)
            .resource("session", session.id)
            .details(json!({ "reissued": true, "refresh_token_id": successor.id })),
    )
    .await?;
    Ok(Some(IssuedSession {
        session: session.clone(),
        refresh_token: RefreshToken::new(text),
        refresh_expires_at: successor.expires_at,
    }))
}

/// A successor token as the reuse interval reads it (no hash).
#[derive(Clone, Debug, DerivePartialModel)]
#[sea_orm(entity = "refresh_tokens::Entity")]
struct Successor {
    id: RefreshTokenId,
    expires_at: DateTime<Utc>,
    reissue_sealed: Option<SealedBytes>,
}

async fn revoke_for_reuse<C: InTransaction>(
    db: &C,
    deps: &Deps,
    session: &sessions::Model,
    token_id: RefreshTokenId,
    meta: &RequestMeta,
) -> Result<()> {
    revoke_sessions(db, deps, &[session.id], RevokedReason::TokenReuse).await?;
    record(
        db,
        deps,
        AuditEntry::new(AuditEvent::RefreshTokenReused, AuditOutcome::Denied, meta)
            .actor(session.user_id)
            .resource("session", session.id)
            .risk(90)
            .details(json!({ "refresh_token_id": token_id })),
    )
    .await?;
    Ok(())
}

/// Revokes every open session of `user` but `keep`; returns how many.
pub(crate) async fn revoke_user_sessions<C: ConnectionTrait>(
    db: &C,
    deps: &Deps,
    user: UserId,
    keep: Option<SessionId>,
    reason: RevokedReason,
) -> Result<u64> {
    let mut open = sessions::Entity::find()
        .select_only()
        .column(sessions::Column::Id)
        .filter(sessions::Column::UserId.eq(user))
        .filter(sessions::Column::RevokedAt.is_null());
    if let Some(keep) = keep {
        open = open.filter(sessions::Column::Id.ne(keep));
    }
    let open: Vec<SessionId> = open.into_tuple().all(db).await?;
    revoke_sessions(db, deps, &open, reason).await
}

/// Marks sessions and all their unrevoked tokens revoked; returns how many sessions
/// changed. Already revoked sessions keep their original time and reason.
async fn revoke_sessions<C: ConnectionTrait>(
    db: &C,
    deps: &Deps,
    ids: &[SessionId],
    reason: RevokedReason,
) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let now = deps.now();
    let changed = sessions::Entity::update_many()
        .col_expr(sessions::Column::RevokedAt, Expr::value(now))
        .col_expr(sessions::Column::RevokedReason, Expr::value(reason))
        .filter(sessions::Column::Id.is_in(ids.iter().copied()))
        .filter(sessions::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    refresh_tokens::Entity::update_many()
        .col_expr(refresh_tokens::Column::RevokedAt, Expr::value(now))
        .col_expr(
            refresh_tokens::Column::ReissueSealed,
            Expr::value(Option::<Vec<u8>>::None),
        )
        .filter(refresh_tokens::Column::SessionId.is_in(ids.iter().copied()))
        .filter(refresh_tokens::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(changed.rows_affected)
}

/// Signs a user out of one session. Records `logout`.
///
/// # Errors
/// `NotFound` if the session does not exist or belongs to someone else (the same
/// answer, so ids cannot be probed); `SessionRevoked` if it already was; `Db`.
pub async fn revoke_session<C>(
    db: &C,
    deps: &Deps,
    user_id: UserId,
    session_id: SessionId,
    meta: &RequestMeta,
) -> Result<()>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = begin_for_user(db, user_id).await?;
    let session = sessions::Entity::find_by_id(session_id)
        .filter(sessions::Column::UserId.eq(user_id))
        .one(&txn)
        .await?
        .ok_or_else(|| ServiceError::not_found("session", session_id))?;
    if session.revoked_at.is_some() {
        return Err(ServiceError::SessionRevoked);
    }
    revoke_sessions(&txn, deps, &[session_id], RevokedReason::Logout).await?;
    record(
        &txn,
        deps,
        AuditEntry::new(AuditEvent::Logout, AuditOutcome::Success, meta)
            .actor(user_id)
            .resource("session", session_id),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// Signs a user out everywhere. Records `sessions_revoked_all` with the count.
///
/// # Errors
/// `NotFound` for an unknown user; `Db`.
pub async fn revoke_all_sessions<C>(
    db: &C,
    deps: &Deps,
    user_id: UserId,
    meta: &RequestMeta,
) -> Result<u64>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = begin_for_user(db, user_id).await?;
    if users::Entity::find_by_id(user_id)
        .select_only()
        .column(users::Column::Id)
        .into_tuple::<UserId>()
        .one(&txn)
        .await?
        .is_none()
    {
        return Err(ServiceError::not_found("user", user_id));
    }
    let revoked = revoke_user_sessions(&txn, deps, user_id, None, RevokedReason::LogoutAll).await?;
    record(
        &txn,
        deps,
        AuditEntry::new(AuditEvent::SessionsRevokedAll, AuditOutcome::Success, meta)
            .actor(user_id)
            .resource("user", user_id)
            .details(json!({ "sessions_revoked": revoked })),
    )
    .await?;
    txn.commit().await?;
    Ok(revoked)
}

/// A user's live sessions (not revoked, not expired), newest first.
///
/// # Errors
/// `Db` only.
pub async fn list_sessions<C>(db: &C, deps: &Deps, user_id: UserId) -> Result<Vec<sessions::Model>>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = begin_for_user(db, user_id).await?;
    let live = sessions::Entity::find()
        .filter(sessions::Column::UserId.eq(user_id))
        .filter(sessions::Column::RevokedAt.is_null())
        .filter(sessions::Column::ExpiresAt.gt(deps.now()))
        .order_by_desc(sessions::Column::CreatedAt)
        .order_by_desc(sessions::Column::Id)
        .all(&txn)
        .await?;
    txn.commit().await?;
    Ok(live)
}
