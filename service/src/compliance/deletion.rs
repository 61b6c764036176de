//! Erasure on request (GDPR art. 17, APPI art. 35): a user files a request, may cancel
//! it during the grace period, and the erasure job then pseudonymises them.
//!
//! Erasure keeps the user row, under a pseudonym, because the audit trail, consent
//! history and other tenants' records name the user by id and must stay verifiable.
//! It removes what identifies the person: the email becomes
//! `erased+<id>@erased.invalid`, the profile's name, phone, avatar and preferences are
//! cleared, sessions, second factors, passkeys and anomaly reports are deleted, API
//! keys the user created are revoked and no longer name them, invitations sent to
//! their address name the pseudonym, and their memberships end (with their team
//! places and role assignments). Their data key is deleted, so every field sealed
//! under it (a consent's client address) is unreadable for good.
//!
//! The audit trail keeps its rows unchanged, including the client addresses and user
//! agents of past events: they are security records kept for their retention period
//! (GDPR art. 17(3)(b) and (e)), and changing them would break the chains.

use crate::Result;
use crate::audit::{AuditEntry, AuditEvent, record};
use crate::deps::Deps;
use crate::error::ServiceError;
use crate::identity::{SessionAuth, begin_for_user, begin_sensitive};
use crate::input::Password;
use crate::request::RequestMeta;
use crate::tenancy::tenant_schema_name;
use chrono::{DateTime, Utc};
use entity::access::{policies, role_assignments};
use entity::audit::audit_logs::AuditOutcome;
use entity::compliance::deletion_requests::{self, DeletionStatus};
use entity::compliance::subject_keys as subject_keys_table;
use entity::identity::{
    api_keys, mfa_backup_codes, mfa_challenges, mfa_factors, passkeys, session_anomaly_reports,
    sessions, user_profiles, users,
};
use entity::tenancy::tenants::{self, IsolationLevel};
use entity::tenancy::{invitations, memberships, team_members};
use entity::{DeletionRequestId, UserId};
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Statement, TransactionSession, TransactionTrait,
};
use serde::Serialize;
use serde_json::json;

/// The pseudonym an erased user's email becomes: unique, and undeliverable
/// (`.invalid` is reserved, RFC 2606).
pub fn erased_email(user: UserId) -> String {
    format!("erased+{}@erased.invalid", user.into_uuid().simple())
}

/// The display name an erased user's profile shows.
pub const ERASED_DISPLAY_NAME: &str = "Deleted user";

/// Files the acting user's request to be erased: a sensitive operation (a recent
/// sign-in, at `aal2` when the user has a second factor). The erasure job takes it
/// once the grace period (`ServiceConfig::deletion_grace_period`) has passed; until
/// then the user may cancel it. Records `deletion_request`.
///
/// # Errors
/// `StepUpRequired`; `Conflict` if the user already has an open request; `Db`.
pub async fn request_deletion<C>(
    db: &C,
    deps: &Deps,
    session: &SessionAuth,
    meta: &RequestMeta,
) -> Result<deletion_requests::Model>
where
    C: ConnectionTrait + TransactionTrait,
{
    let user = session.user_id();
    let txn = begin_sensitive(db, deps, session, "request_deletion", meta).await?;
    let now = deps.now();
    let due_at = now + deps.config.deletion_grace_period;
    let id = DeletionRequestId(deps.new_id(
        "deletion_requests",
        &format!("{user}/{}", now.timestamp_micros()),
    ));
    let open = deletion_requests::Entity::find()
        .filter(deletion_requests::Column::OpenUserId.eq(user))
        .one(&txn)
        .await?;
    if open.is_some() {
        return Err(already_open());
    }
    deletion_requests::Entity::insert(deletion_requests::ActiveModel {
        id: Set(id),
        user_id: Set(user),
        status: Set(DeletionStatus::Requested),
        requested_at: Set(now),
        due_at: Set(due_at),
        cancelled_at: NotSet,
        processing_started_at: NotSet,
        completed_at: NotSet,
        open_user_id: NotSet,
    })
    .exec_without_returning(&txn)
    .await
    .map_err(|e| match e.sql_err() {
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => already_open(),
        _ => e.into(),
    })?;
    record(
        &txn,
        deps,
        AuditEntry::new(AuditEvent::DeletionRequest, AuditOutcome::Success, meta)
            .actor(user)
            .resource("deletion_request", id)
            .details(json!({ "due_at": due_at })),
    )
    .await?;
    let filed = find_request(&txn, id).await?;
    txn.commit().await?;
    Ok(filed)
}

fn already_open() -> ServiceError {
    ServiceError::Conflict {
        entity: "deletion request",
        reason: "the user already has an open deletion request",
    }
}

async fn find_request<C: ConnectionTrait>(
    db: &C,
    id: DeletionRequestId,
) -> Result<deletion_requests::Model> {
    deletion_requests::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| ServiceError::not_found("deletion request", id))
}

/// The user's deletion requests, newest first.
///
/// # Errors
/// `Db`.
pub async fn list_deletion_requests<C>(
    db: &C,
    user: UserId,
) -> Result<Vec<deletion_requests::Model>>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = begin_for_user(db, user).await?;
    let requests = deletion_requests::Entity::find()
        .filter(deletion_requests::Column::UserId.eq(user))
        .order_by_desc(deletion_requests::Column::RequestedAt)
        .all(&txn)
        .await?;
    txn.commit().await?;
    Ok(requests)
}

/// Cancels the user's open request while its grace period lasts; nothing of theirs
/// was changed by it. Records `deletion_cancelled`.
///
/// # Errors
/// `NotFound` if the user has no open request; `Conflict` once the grace period is
/// over or the erasure has started; `Db`.
pub async fn cancel_deletion<C>(
    db: &C,
    deps: &Deps,
    user: UserId,
    meta: &RequestMeta,
) -> Result<deletion_requests::Model>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = begin_for_user(db, user).await?;
    let now = deps.now();
    let open = deletion_requests::Entity::find()
        .filter(deletion_requests::Column::OpenUserId.eq(user))
        .one(&txn)
        .await?
        .ok_or_else(|| ServiceError::not_found("open deletion request of user", user))?;
    let too_late = ServiceError::Conflict {
        entity: "deletion request",
        reason: "the grace period is over: the erasure can no longer be cancelled",
    };
    if open.status != DeletionStatus::Requested || now >= open.due_at {
        return Err(too_late);
    }
    // Conditional, so a cancellation and the job's start cannot both win.
    let cancelled = deletion_requests::Entity::update_many()
        .col_expr(
            deletion_requests::Column::Status,
            Expr::value(DeletionStatus::Cancelled),
        )
        .col_expr(deletion_requests::Column::CancelledAt, Expr::value(now))
        .filter(deletion_requests::Column::Id.eq(open.id))
        .filter(deletion_requests::Column::Status.eq(DeletionStatus::Requested))
        .exec(&txn)
        .await?;
    if cancelled.rows_affected != 1 {
        return Err(too_late);
    }
    record(
        &txn,
        deps,
        AuditEntry::new(AuditEvent::DeletionCancelled, AuditOutcome::Success, meta)
            .actor(user)
            .resource("deletion_request", open.id),
    )
    .await?;
    let done = find_request(&txn, open.id).await?;
    txn.commit().await?;
    Ok(done)
}

/// What one run of the erasure job did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DeletionBatchReport {
    /// Requests erased in this run.
    pub completed: Vec<ErasedUser>,
    /// Requests that failed, with the reason; they stay `processing` and the next
    /// run takes them again.
    pub failed: Vec<FailedErasure>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ErasedUser {
    pub request_id: DeletionRequestId,
    pub user_id: UserId,
    /// Tenants in which the user was the only owner: they need a new owner.
    pub tenants_left_without_owner: Vec<entity::TenantId>,
}

#[derive(Clone, Debug, Serialize)]
pub struct FailedErasure {
    pub request_id: DeletionRequestId,
    pub user_id: UserId,
    pub error: String,
}

/// The erasure job: erases every request whose grace period is over (and finishes
/// any a previous run left `processing`), each in its own transactions, oldest due
/// first. Run it from a scheduler; it is idempotent.
///
/// It changes other users' and other tenants' rows (memberships, invitations), so on
/// PostgreSQL it runs as the schema owner or another role that bypasses row-level
/// security, never as the runtime role.
///
/// # Errors
/// `Forbidden` for a PostgreSQL role behind row-level security; `Db` if the due
/// requests cannot be read. A failing erasure is reported in the result, not as an
/// error, so one user's problem does not hold up the others.
pub async fn process_due_deletions<C>(
    db: &C,
    deps: &Deps,
    meta: &RequestMeta,
) -> Result<DeletionBatchReport>
where
    C: ConnectionTrait + TransactionTrait,
{
    require_role_beyond_row_security(db).await?;
    let now = deps.now();
    let due = deletion_requests::Entity::find()
        .filter(
            Condition::any()
                .add(
                    Condition::all()
                        .add(deletion_requests::Column::Status.eq(DeletionStatus::Requested))
                        .add(deletion_requests::Column::DueAt.lte(now)),
                )
                .add(deletion_requests::Column::Status.eq(DeletionStatus::Processing)),
        )
        .order_by_asc(deletion_requests::Column::DueAt)
        .order_by_asc(deletion_requests::Column::Id)
        .all(db)
        .await?;
    let mut report = DeletionBatchReport::default();
    for request in due {
        match erase(db, deps, &request, meta).await {
            Ok(Some(erased)) => report.completed.push(erased),
            // Cancelled between the listing and the start.
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(request = %request.id, error = %e, "erasure failed");
                report.failed.push(FailedErasure {
                    request_id: request.id,
                    user_id: request.user_id,
                    error: e.to_string(),
                });
            }
        }
    }
    Ok(report)
}

/// The provisioned schemas of schema-isolated tenants (PostgreSQL; none elsewhere),
/// named by [`tenant_schema_name`] from slugs the database checks (lowercase letters,
/// digits, `-`), so they need no quoting beyond the double quotes around them.
pub(crate) async fn tenant_schemas<C: ConnectionTrait>(db: &C) -> Result<Vec<String>> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(Vec::new());
    }
    let slugs: Vec<String> = tenants::Entity::find()
        .select_only()
        .column(tenants::Column::Slug)
        .filter(tenants::Column::IsolationLevel.eq(IsolationLevel::Schema))
        .order_by_asc(tenants::Column::Slug)
        .into_tuple()
        .all(db)
        .await?;
    let mut provisioned = Vec::with_capacity(slugs.len());
    for schema in slugs.iter().map(|slug| tenant_schema_name(slug)) {
        let exists = db
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT to_regnamespace(quote_ident($1)) IS NOT NULL",
                [schema.clone().into()],
            ))
            .await?
            .map(|row| row.try_get_by_index::<bool>(0))
            .transpose()?
            .unwrap_or(false);
        if exists {
            provisioned.push(schema);
        }
    }
    Ok(provisioned)
}

/// PostgreSQL: the operator jobs (erasure, export, reports) read and change every
/// tenant's rows; as a role behind row-level security they would see only part of
/// them and silently do half the work.
pub(crate) async fn require_role_beyond_row_security<C: ConnectionTrait>(db: &C) -> Result<()> {
    let bound = crate::connection::row_security_role(db)
        .await?
        .is_some_and(|(_, bound)| bound);
    if bound {
        Err(ServiceError::Forbidden {
            reason: "this operator job reads every tenant's rows: run it as the schema owner \
                     (or another role that bypasses row-level security), not the runtime role",
        })
    } else {
        Ok(())
    }
}

/// Moves one request to `processing` (its own transaction, so the start is on record
/// even if the erasure fails), then erases and completes it in one transaction.
async fn erase<C>(
    db: &C,
    deps: &Deps,
    request: &deletion_requests::Model,
    meta: &RequestMeta,
) -> Result<Option<ErasedUser>>
where
    C: ConnectionTrait + TransactionTrait,
{
    let user = request.user_id;
    if request.status == DeletionStatus::Requested {
        let txn = crate::begin_write(db).await?;
        let started = deletion_requests::Entity::update_many()
            .col_expr(
                deletion_requests::Column::Status,
                Expr::value(DeletionStatus::Processing),
            )
            .col_expr(
                deletion_requests::Column::ProcessingStartedAt,
                Expr::value(deps.now()),
            )
            .filter(deletion_requests::Column::Id.eq(request.id))
            .filter(deletion_requests::Column::Status.eq(DeletionStatus::Requested))
            .exec(&txn)
            .await?;
        if started.rows_affected != 1 {
            txn.rollback().await?;
            return Ok(None);
        }
        record(
            &txn,
            deps,
            AuditEntry::new(AuditEvent::DeletionProcessing, AuditOutcome::Success, meta)
                .resource("deletion_request", request.id)
                .details(json!({ "user_id": user })),
        )
        .await?;
        txn.commit().await?;
    }

    let pseudonym = erased_email(user);
    // A real hash of a password nobody ever knew: a sign-in under the pseudonym is
    // answered like any wrong password.
    let unknowable = hex::encode(deps.random_bytes::<32>());
    let unusable = crate::identity::hash_password(deps, &Password::new(&unknowable)?).await?;
    let txn = crate::begin_write(db).await?;
    let now = deps.now();
    // Claim the request first: a second job running at once waits on this row, then
    // finds it completed and leaves it.
    let claimed = deletion_requests::Entity::update_many()
        .col_expr(
            deletion_requests::Column::Status,
            Expr::value(DeletionStatus::Completed),
        )
        .col_expr(deletion_requests::Column::CompletedAt, Expr::value(now))
        .filter(deletion_requests::Column::Id.eq(request.id))
        .filter(deletion_requests::Column::Status.eq(DeletionStatus::Processing))
        .exec(&txn)
        .await?;
    if claimed.rows_affected != 1 {
        txn.rollback().await?;
        return Ok(None);
    }
    // The user row, locked: a request that is creating the user's data key holds it
    // shared (`subject_keys::find_or_create`), so it finishes first and its key is
    // deleted below, or it starts after and finds the user inactive.
    let email = users::Entity::find_by_id(user)
        .lock_exclusive()
        .one(&txn)
        .await?
        .ok_or_else(|| ServiceError::not_found("user", user))?
        .email;

    let member_of: Vec<memberships::Model> = memberships::Entity::find()
        .filter(memberships::Column::UserId.eq(user))
        .order_by_asc(memberships::Column::TenantId)
        .all(&txn)
        .await?;
    let owned: Vec<entity::TenantId> = member_of
        .iter()
        .filter(|m| m.role == memberships::MembershipRole::Owner)
        .map(|m| m.tenant_id)
        .collect();
    let co_owned: std::collections::BTreeSet<entity::TenantId> = memberships::Entity::find()
        .select_only()
        .column(memberships::Column::TenantId)
        .filter(memberships::Column::TenantId.is_in(owned.clone()))
        .filter(memberships::Column::Role.eq(memberships::MembershipRole::Owner))
        .filter(memberships::Column::UserId.ne(user))
        .into_tuple()
        .all(&txn)
        .await?
        .into_iter()
        .collect();
    let tenants_left_without_owner: Vec<entity::TenantId> = owned
        .into_iter()
        .filter(|tenant| !co_owned.contains(tenant))
        .collect();

    users::Entity::update_many()
        .col_expr(users::Column::Email, Expr::value(pseudonym.clone()))
        .col_expr(users::Column::IsActive, Expr::value(false))
        .col_expr(users::Column::IsVerified, Expr::value(false))
        .col_expr(
            users::Column::LastLoginAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(users::Column::FailedLoginCount, Expr::value(0))
        .col_expr(
            users::Column::LockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(users::Column::PasswordHash, Expr::value(unusable))
        .col_expr(users::Column::UpdatedAt, Expr::value(now))
        .filter(users::Column::Id.eq(user))
        .exec(&txn)
        .await?;
    user_profiles::Entity::update_many()
        .col_expr(
            user_profiles::Column::DisplayName,
            Expr::value(ERASED_DISPLAY_NAME),
        )
        .col_expr(
            user_profiles::Column::Phone,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            user_profiles::Column::AvatarUrl,
            Expr::value(Option::<String>::None),
        )
        .col_expr(user_profiles::Column::Timezone, Expr::value("UTC"))
        .col_expr(user_profiles::Column::Language, Expr::value("en"))
        .col_expr(user_profiles::Column::Preferences, Expr::value(json!({})))
        .col_expr(user_profiles::Column::UpdatedAt, Expr::value(now))
        .filter(user_profiles::Column::UserId.eq(user))
        .exec(&txn)
        .await?;

    let mut removed = serde_json::Map::new();
    macro_rules! remove {
        ($name:literal, $entity:path, $column:expr) => {{
            let done = <$entity>::delete_many()
                .filter($column.eq(user))
                .exec(&txn)
                .await?;
            removed.insert($name.to_owned(), json!(done.rows_affected));
        }};
    }
    // Refresh tokens go with their sessions (cascade).
    remove!("sessions", sessions::Entity, sessions::Column::UserId);
    remove!(
        "session_anomaly_reports",
        session_anomaly_reports::Entity,
        session_anomaly_reports::Column::UserId
    );
    remove!(
        "mfa_challenges",
        mfa_challenges::Entity,
        mfa_challenges::Column::UserId
    );
    remove!(
        "mfa_backup_codes",
        mfa_backup_codes::Entity,
        mfa_backup_codes::Column::UserId
    );
    remove!(
        "mfa_factors",
        mfa_factors::Entity,
        mfa_factors::Column::UserId
    );
    remove!("passkeys", passkeys::Entity, passkeys::Column::UserId);
    // Deny rules aimed at the user protect nobody once they cannot sign in.
    remove!("policies", policies::Entity, policies::Column::UserId);
    remove!(
        "team_members",
        team_members::Entity,
        team_members::Column::UserId
    );
    remove!(
        "role_assignments",
        role_assignments::Entity,
        role_assignments::Column::UserId
    );
    // What each tenant loses goes into that tenant's own trail (below).
    let mut per_tenant: std::collections::BTreeMap<
        entity::TenantId,
        Vec<(AuditEvent, &str, String)>,
    > = std::collections::BTreeMap::new();
    for membership in &member_of {
        per_tenant.entry(membership.tenant_id).or_default().push((
            AuditEvent::MemberRemoved,
            "user",
            user.to_string(),
        ));
    }
    for key in api_keys::Entity::find()
        .filter(api_keys::Column::CreatedBy.eq(user))
        .filter(api_keys::Column::RevokedAt.is_null())
        .all(&txn)
        .await?
    {
        per_tenant.entry(key.tenant_id).or_default().push((
            AuditEvent::ApiKeyRevoked,
            "api_key",
            key.id.to_string(),
        ));
    }
    remove!(
        "memberships",
        memberships::Entity,
        memberships::Column::UserId
    );
    remove!(
        "subject_keys",
        subject_keys_table::Entity,
        subject_keys_table::Column::UserId
    );

    // API keys belong to their tenant: revoked, and no longer naming their creator.
    let revoked = api_keys::Entity::update_many()
        .col_expr(api_keys::Column::RevokedAt, Expr::value(now))
        .col_expr(api_keys::Column::UpdatedAt, Expr::value(now))
        .filter(api_keys::Column::CreatedBy.eq(user))
        .filter(api_keys::Column::RevokedAt.is_null())
        .exec(&txn)
        .await?;
    removed.insert("api_keys_revoked".to_owned(), json!(revoked.rows_affected));
    api_keys::Entity::update_many()
        .col_expr(
            api_keys::Column::CreatedBy,
            Expr::value(Option::<UserId>::None),
        )
        .filter(api_keys::Column::CreatedBy.eq(user))
        .exec(&txn)
        .await?;
    // Invitations addressed to the person: the pseudonym instead of the address.
    let invitations = invitations::Entity::update_many()
        .col_expr(invitations::Column::Email, Expr::value(pseudonym.clone()))
        .filter(invitations::Column::Email.eq(email.clone()))
        .exec(&txn)
        .await?;
    let mut pseudonymised = invitations.rows_affected;
    // Tenants in a schema of their own keep these tables there (PostgreSQL); team
    // places and role assignments went with the memberships (their keys cascade).
    for schema in tenant_schemas(&txn).await? {
        let done = txn
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                format!(r#"UPDATE "{schema}".invitations SET email = $1 WHERE email = $2"#),
                [pseudonym.clone().into(), email.clone().into()],
            ))
            .await?;
        pseudonymised += done.rows_affected();
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!(r#"DELETE FROM "{schema}".policies WHERE user_id = $1"#),
            [user.into_uuid().into()],
        ))
        .await?;
    }
    removed.insert("invitations_pseudonymised".to_owned(), json!(pseudonymised));

    // In tenant id order, so two erasures lock the tenants' chain heads in one order.
    for (tenant, events) in per_tenant {
        for (event, kind, id) in events {
            record(
                &txn,
                deps,
                AuditEntry::new(event, AuditOutcome::Success, meta)
                    .tenant(tenant)
                    .resource(kind, id)
                    .details(json!({ "reason": "erasure", "deletion_request": request.id })),
            )
            .await?;
        }
    }
    record(
        &txn,
        deps,
        AuditEntry::new(AuditEvent::UserDeleted, AuditOutcome::Success, meta)
            .resource("user", user)
            .details(json!({ "pseudonymised": true })),
    )
    .await?;
    record(
        &txn,
        deps,
        AuditEntry::new(AuditEvent::DeletionCompleted, AuditOutcome::Success, meta)
            .resource("deletion_request", request.id)
            .details(json!({
                "user_id": user,
                "removed": removed,
                "tenants_left_without_owner": tenants_left_without_owner,
            })),
    )
    .await?;
    txn.commit().await?;
    tracing::info!(request = %request.id, user = %user, "erased");
    Ok(Some(ErasedUser {
        request_id: request.id,
        user_id: user,
        tenants_left_without_owner,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pseudonym_is_unique_lowercase_and_undeliverable() {
        let id = UserId(uuid::Uuid::from_u128(0xABCDEF));
        let email = erased_email(id);
        assert_eq!(email, email.to_lowercase());
        assert!(email.ends_with("@erased.invalid"));
        assert!(email.contains("abcdef"));
    }
}
