//! Writing and reading the audit trail.
//!
//! Operations call [`record`] on the same connection (usually their transaction) as the
//! change they audit, so the row commits or rolls back with it.

use crate::Result;
use crate::deps::Deps;
use crate::request::RequestMeta;
use crate::tenancy::TenantCtx;
use entity::audit::audit_logs::{self, AuditOutcome};
use entity::{AuditLogId, TenantId, UserId};
use sea_orm::ActiveValue::Set;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Statement, TransactionSession, TransactionTrait,
};
use serde_json::{Value as Json, json};

/// Every event the services record. Codes are stable and exist in the
/// `audit_event_types` catalogue (a test checks both directions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuditEvent {
    UserCreated,
    Login,
    LoginFailed,
    Logout,
    AccountLocked,
    SessionCreated,
    SessionRefreshed,
    SessionsRevokedAll,
    RefreshTokenReused,
    TenantCreated,
    MemberAdded,
    MemberRemoved,
    RoleCreated,
    RolePermissionGranted,
    RolePermissionRevoked,
    RoleInheritanceAdded,
    RoleInheritanceRemoved,
    RoleAssigned,
    RoleAssignmentRevoked,
    PolicyCreated,
    PolicyDeleted,
    TeamCreated,
    TeamMoved,
    TeamMemberAdded,
    TeamMemberRemoved,
    InvitationCreated,
    InvitationAccepted,
    InvitationRevoked,
    ApiKeyCreated,
    ApiKeyRevoked,
    ApiKeyRotated,
    ApiKeyRejected,
    MfaEnrolled,
    MfaConfirmed,
    MfaVerified,
    MfaVerificationFailed,
    MfaDisabled,
    BackupCodesGenerated,
    BackupCodeUsed,
    MfaChallengeIssued,
    Reauthenticated,
    StepUpRequired,
    SessionAnomalyDetected,
    PasswordChanged,
    OtherSessionsRevoked,
    UserDeactivated,
    PasskeyRegistered,
    PasskeyRenamed,
    PasskeyRemoved,
    PasskeyUsed,
    PasskeyAssertionFailed,
    PasskeyCloneDetected,
}

impl AuditEvent {
    pub const ALL: [AuditEvent; 52] = [
        AuditEvent::UserCreated,
        AuditEvent::Login,
        AuditEvent::LoginFailed,
        AuditEvent::Logout,
        AuditEvent::AccountLocked,
        AuditEvent::SessionCreated,
        AuditEvent::SessionRefreshed,
        AuditEvent::SessionsRevokedAll,
        AuditEvent::RefreshTokenReused,
        AuditEvent::TenantCreated,
        AuditEvent::MemberAdded,
        AuditEvent::MemberRemoved,
        AuditEvent::RoleCreated,
        AuditEvent::RolePermissionGranted,
        AuditEvent::RolePermissionRevoked,
        AuditEvent::RoleInheritanceAdded,
        AuditEvent::RoleInheritanceRemoved,
        AuditEvent::RoleAssigned,
        AuditEvent::RoleAssignmentRevoked,
        AuditEvent::PolicyCreated,
        AuditEvent::PolicyDeleted,
        AuditEvent::TeamCreated,
        AuditEvent::TeamMoved,
        AuditEvent::TeamMemberAdded,
        AuditEvent::TeamMemberRemoved,
        AuditEvent::InvitationCreated,
        AuditEvent::InvitationAccepted,
        AuditEvent::InvitationRevoked,
        AuditEvent::ApiKeyCreated,
        AuditEvent::ApiKeyRevoked,
        AuditEvent::ApiKeyRotated,
        AuditEvent::ApiKeyRejected,
        AuditEvent::MfaEnrolled,
        AuditEvent::MfaConfirmed,
        AuditEvent::MfaVerified,
        AuditEvent::MfaVerificationFailed,
        AuditEvent::MfaDisabled,
        AuditEvent::BackupCodesGenerated,
        AuditEvent::BackupCodeUsed,
        AuditEvent::MfaChallengeIssued,
        AuditEvent::Reauthenticated,
        AuditEvent::StepUpRequired,
        AuditEvent::SessionAnomalyDetected,
        AuditEvent::PasswordChanged,
        AuditEvent::OtherSessionsRevoked,
        AuditEvent::UserDeactivated,
        AuditEvent::PasskeyRegistered,
        AuditEvent::PasskeyRenamed,
        AuditEvent::PasskeyRemoved,
        AuditEvent::PasskeyUsed,
        AuditEvent::PasskeyAssertionFailed,
        AuditEvent::PasskeyCloneDetected,
    ];

    pub fn code(self) -> &'static str {
        match self {
            AuditEvent::UserCreated => "user_created",
            AuditEvent::Login => "login",
            AuditEvent::LoginFailed => "login_failed",
            AuditEvent::Logout => "logout",
            AuditEvent::AccountLocked => "account_locked",
            AuditEvent::SessionCreated => "session_created",
            AuditEvent::SessionRefreshed => "session_refreshed",
            AuditEvent::SessionsRevokedAll => "sessions_revoked_all",
            AuditEvent::RefreshTokenReused => "refresh_token_reused",
            AuditEvent::TenantCreated => "tenant_created",
            AuditEvent::MemberAdded => "member_added",
            AuditEvent::MemberRemoved => "member_removed",
            AuditEvent::RoleCreated => "role_created",
            AuditEvent::RolePermissionGranted => "role_permission_granted",
            AuditEvent::RolePermissionRevoked => "role_permission_revoked",
            AuditEvent::RoleInheritanceAdded => "role_inheritance_added",
            AuditEvent::RoleInheritanceRemoved => "role_inheritance_removed",
            AuditEvent::RoleAssigned => "role_assigned",
            AuditEvent::RoleAssignmentRevoked => "role_assignment_revoked",
            AuditEvent::PolicyCreated => "policy_created",
            AuditEvent::PolicyDeleted => "policy_deleted",
            AuditEvent::TeamCreated => "team_created",
            AuditEvent::TeamMoved => "team_moved",
            AuditEvent::TeamMemberAdded => "team_member_added",
            AuditEvent::TeamMemberRemoved => "team_member_removed",
            AuditEvent::InvitationCreated => "invitation_created",
            AuditEvent::InvitationAccepted => "invitation_accepted",
            AuditEvent::InvitationRevoked => "invitation_revoked",
            AuditEvent::ApiKeyCreated => "api_key_created",
            AuditEvent::ApiKeyRevoked => "api_key_revoked",
            AuditEvent::ApiKeyRotated => "api_key_rotated",
            AuditEvent::ApiKeyRejected => "api_key_rejected",
            AuditEvent::MfaEnrolled => "mfa_enrolled",
            AuditEvent::MfaConfirmed => "mfa_confirmed",
            AuditEvent::MfaVerified => "mfa_verified",
            AuditEvent::MfaVerificationFailed => "mfa_verification_failed",
            AuditEvent::MfaDisabled => "mfa_disabled",
            AuditEvent::BackupCodesGenerated => "backup_codes_generated",
            AuditEvent::BackupCodeUsed => "backup_code_used",
            AuditEvent::MfaChallengeIssued => "mfa_challenge_issued",
            AuditEvent::Reauthenticated => "reauthenticated",
            AuditEvent::StepUpRequired => "step_up_required",
            AuditEvent::SessionAnomalyDetected => "session_anomaly_detected",
            AuditEvent::PasswordChanged => "password_changed",
            AuditEvent::OtherSessionsRevoked => "other_sessions_revoked",
            AuditEvent::UserDeactivated => "user_deactivated",
            AuditEvent::PasskeyRegistered => "passkey_registered",
            AuditEvent::PasskeyRenamed => "passkey_renamed",
            AuditEvent::PasskeyRemoved => "passkey_removed",
            AuditEvent::PasskeyUsed => "passkey_used",
            AuditEvent::PasskeyAssertionFailed => "passkey_assertion_failed",
            AuditEvent::PasskeyCloneDetected => "passkey_clone_detected",
        }
    }
}

/// One audit row to write. Build with [`AuditEntry::new`] and the `with_*` methods.
#[derive(Clone, Debug)]
pub struct AuditEntry<'a> {
    event: AuditEvent,
    outcome: AuditOutcome,
    tenant_id: Option<TenantId>,
    actor: Option<UserId>,
    resource: Option<(&'static str, String)>,
    risk_score: i16,
    details: Json,
    request: &'a RequestMeta,
}

impl<'a> AuditEntry<'a> {
    pub fn new(event: AuditEvent, outcome: AuditOutcome, request: &'a RequestMeta) -> Self {
        Self {
            event,
            outcome,
            tenant_id: None,
            actor: None,
            resource: None,
            risk_score: 0,
            details: json!({}),
            request,
        }
    }

    /// A successful action of the context's actor in the context's tenant: what most
    /// tenant-scoped operations record.
    pub fn by_member(ctx: &TenantCtx, event: AuditEvent, request: &'a RequestMeta) -> Self {
        Self::new(event, AuditOutcome::Success, request)
            .tenant(ctx.tenant_id())
            .actor(ctx.actor())
    }

    pub fn tenant(mut self, tenant_id: TenantId) -> Self {
        self.tenant_id = Some(tenant_id);
        self
    }

    pub fn actor(mut self, user_id: UserId) -> Self {
        self.actor = Some(user_id);
        self
    }

    pub fn resource(mut self, kind: &'static str, id: impl ToString) -> Self {
        self.resource = Some((kind, id.to_string()));
        self
    }

    /// 0 (routine) to 100; values outside are clamped.
    pub fn risk(mut self, score: i16) -> Self {
        self.risk_score = score.clamp(0, 100);
        self
    }

    pub fn details(mut self, details: Json) -> Self {
        self.details = details;
        self
    }
}

/// Writes one audit row on `db`, which should be the transaction of the change.
pub async fn record<C: ConnectionTrait>(
    db: &C,
    deps: &Deps,
    entry: AuditEntry<'_>,
) -> Result<AuditLogId> {
    let id = AuditLogId(deps.new_id("audit_logs", entry.event.code()));
    let (resource_type, resource_id) = match entry.resource {
        Some((kind, id)) => (Some(kind.to_owned()), Some(id)),
        None => (None, None),
    };
    // Without RETURNING: on PostgreSQL the runtime role may write rows it may not
    // read back (a failed sign-in of nobody in particular).
    audit_logs::Entity::insert(audit_logs::ActiveModel {
        id: Set(id),
        tenant_id: Set(entry.tenant_id),
        actor_user_id: Set(entry.actor),
        event_type: Set(entry.event.code().to_owned()),
        resource_type: Set(resource_type),
        resource_id: Set(resource_id),
        outcome: Set(entry.outcome),
        risk_score: Set(entry.risk_score),
        ip_address: Set(entry.request.ip_string()),
        user_agent: Set(entry.request.user_agent().map(str::to_owned)),
        details: Set(entry.details),
        occurred_at: Set(deps.now()),
    })
    .exec_without_returning(db)
    .await?;
    Ok(id)
}

/// The newest `limit` events of the context's tenant, newest first.
///
/// # Errors
/// `Db` only.
pub async fn list_tenant_events<C>(
    db: &C,
    ctx: &TenantCtx,
    limit: u64,
) -> Result<Vec<audit_logs::Model>>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = ctx.begin(db).await?;
    let events = audit_logs::Entity::find()
        .filter(audit_logs::Column::TenantId.eq(ctx.tenant_id()))
        .order_by_desc(audit_logs::Column::OccurredAt)
        .order_by_desc(audit_logs::Column::Id)
        .limit(limit)
        .all(&txn)
        .await?;
    txn.commit().await?;
    Ok(events)
}

/// A user's own security history: the events outside any tenant (sign-ins,
/// sessions, registration) with the user as actor, newest first. What the user did
/// inside a tenant belongs to that tenant's trail ([`list_tenant_events`]).
///
/// # Errors
/// `Db` only.
pub async fn list_user_events<C>(
    db: &C,
    user_id: UserId,
    limit: u64,
) -> Result<Vec<audit_logs::Model>>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = crate::identity::begin_for_user(db, user_id).await?;
    let events = if txn.get_database_backend() == DbBackend::Postgres {
        // The runtime role reads tenant rows only; its own global events come through
        // the one function that returns them.
        audit_logs::Entity::find()
            .from_raw_sql(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT * FROM app_own_security_events($1)",
                [i32::try_from(limit).unwrap_or(i32::MAX).into()],
            ))
            .all(&txn)
            .await?
    } else {
        audit_logs::Entity::find()
            .filter(audit_logs::Column::ActorUserId.eq(user_id))
            .filter(audit_logs::Column::TenantId.is_null())
            .order_by_desc(audit_logs::Column::OccurredAt)
            .order_by_desc(audit_logs::Column::Id)
            .limit(limit)
            .all(&txn)
            .await?
    };
    txn.commit().await?;
    Ok(events)
}
