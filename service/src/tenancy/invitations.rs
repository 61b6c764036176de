//! Invitations: an email asked into a tenant with a role and optionally a team.
//!
//! The token names its tenant (`inv_<tenant>_<secret>`), so accepting it can set the
//! row-level security context before looking the invitation up; the secret part is
//! 256 random bits and only the SHA-256 of the whole token is stored.

use super::context::{TenantCtx, set_row_security_context};
use super::memberships::{find_membership, insert_membership};
use super::teams::find_team;
use crate::access::{NewAssignment, insert_assignment, usable_role};
use crate::audit::{AuditEntry, AuditEvent, record};
use crate::deps::Deps;
use crate::error::{ServiceError, conflict_on_unique};
use crate::identity::{ClearToken, TokenKind, find_active_user, hash_token};
use crate::input::Email;
use crate::request::RequestMeta;
use crate::{Result, begin_write};
use chrono::Duration;
use entity::audit::audit_logs::AuditOutcome;
use entity::tenancy::invitations::{self, InvitationStatus};
use entity::tenancy::memberships::{self, MembershipRole};
use entity::tenancy::team_members::{self, TeamRole};
use entity::{InvitationId, RoleId, TeamId, TenantId};
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, TransactionSession,
    TransactionTrait,
};
use serde_json::json;
use uuid::Uuid;

/// Marks a [`ClearToken`] as an invitation token.
#[derive(Debug)]
pub enum InvitationTokenKind {}

impl TokenKind for InvitationTokenKind {
    const NAME: &'static str = "InvitationToken";
}

/// An invitation token in the clear: send it to the invitee once; never store it.
pub type InvitationToken = ClearToken<InvitationTokenKind>;

impl InvitationToken {
    fn generate(deps: &Deps, tenant: TenantId) -> Self {
        let secret: [u8; 32] = deps.random_bytes();
        Self::new(format!(
            "inv_{}_{}",
            tenant.into_uuid().simple(),
            hex::encode(secret)
        ))
    }
}

/// The tenant a well-formed token names; `None` for anything else.
fn tenant_of(token: &str) -> Option<TenantId> {
    let rest = token.strip_prefix("inv_")?;
    let (tenant, secret) = rest.split_once('_')?;
    let shaped =
        tenant.len() == 32 && secret.len() == 64 && secret.bytes().all(|b| b.is_ascii_hexdigit());
    if !shaped {
        return None;
    }
    Uuid::parse_str(tenant).ok().map(TenantId)
}

/// An invitation to send.
#[derive(Clone, Debug)]
pub struct NewInvitation {
    pub email: Email,
    pub role_id: RoleId,
    pub team_id: Option<TeamId>,
    /// How long the token stays valid.
    pub valid_for: Duration,
}

/// Invites an email into the context's tenant. Pending invitations past their expiry
/// are marked expired first. Records `invitation_created`.
///
/// # Errors
/// `Forbidden` unless owner or admin; `Validation` for a non-positive validity;
/// `NotFound` for a role or team of another tenant; `Conflict` if a pending
/// invitation for this email exists (the database enforces one); `Db`.
pub async fn invite<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    input: NewInvitation,
    meta: &RequestMeta,
) -> Result<(invitations::Model, InvitationToken)>
where
    C: ConnectionTrait + TransactionTrait,
{
    if input.valid_for <= Duration::zero() {
        return Err(ServiceError::validation("valid_for", "must be positive"));
    }
    let now = deps.now();
    let txn = ctx.begin(db).await?;
    txn.require_member_manager()?;
    usable_role(&txn, ctx.tenant_id(), input.role_id).await?;
    if let Some(team) = input.team_id {
        find_team(&txn, ctx.tenant_id(), team).await?;
    }
    invitations::Entity::update_many()
        .col_expr(
            invitations::Column::Status,
            Expr::value(InvitationStatus::Expired),
        )
        .col_expr(invitations::Column::UpdatedAt, Expr::value(now))
        .filter(invitations::Column::TenantId.eq(ctx.tenant_id()))
        .filter(invitations::Column::Email.eq(input.email.as_str()))
        .filter(invitations::Column::Status.eq(InvitationStatus::Pending))
        .filter(invitations::Column::ExpiresAt.lte(now))
        .exec(&txn)
        .await?;
    const PENDING: ServiceError = ServiceError::Conflict {
        entity: "invitation",
        reason: "a pending invitation for this email exists",
    };
    let pending = invitations::Entity::find()
        .filter(invitations::Column::TenantId.eq(ctx.tenant_id()))
        .filter(invitations::Column::Email.eq(input.email.as_str()))
        .filter(invitations::Column::Status.eq(InvitationStatus::Pending))
        .one(&txn)
        .await?;
    if pending.is_some() {
        return Err(PENDING);
    }
    let token = InvitationToken::generate(deps, ctx.tenant_id());
    let invitation = invitations::ActiveModel {
        id: Set(InvitationId(deps.new_id(
            "invitations",
            &format!("{}/{}", ctx.tenant_id(), input.email),
        ))),
        tenant_id: Set(ctx.tenant_id()),
        email: Set(input.email.as_str().to_owned()),
        role_id: Set(input.role_id),
        team_id: Set(input.team_id),
        token_hash: Set(token.hash()),
        status: Set(InvitationStatus::Pending),
        invited_by: Set(Some(ctx.actor())),
        expires_at: Set(now + input.valid_for),
        accepted_at: Set(None),
        accepted_by: Set(None),
        revoked_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        pending_email: NotSet,
    }
    .insert(&txn)
    .await
    .map_err(|e| match conflict_on_unique("invitation", "")(e) {
        ServiceError::Conflict { .. } => PENDING,
        other => other,
    })?;
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::InvitationCreated, meta)
            .resource("invitation", invitation.id)
            .details(json!({ "role_id": invitation.role_id, "team_id": invitation.team_id })),
    )
    .await?;
    txn.commit().await?;
    Ok((invitation, token))
}

/// Accepts an invitation as the signed-in user `user_id`, whose email must be the
/// invited one: makes them a member (if not yet), assigns the role tenant-wide, and
/// adds them to the team. Records `invitation_accepted`.
///
/// # Errors
/// `InvalidToken` for a token never issued; `Conflict` for one already accepted or
/// revoked; `Expired`; `Forbidden` if the user's email is not the invited one;
/// `NotFound`/`AccountDisabled` for the user; `Db`.
pub async fn accept_invitation<C>(
    db: &C,
    deps: &Deps,
    token: &str,
    user_id: entity::UserId,
    meta: &RequestMeta,
) -> Result<memberships::Model>
where
    C: ConnectionTrait + TransactionTrait,
{
    let tenant = tenant_of(token).ok_or(ServiceError::InvalidToken)?;
    let now = deps.now();
    let txn = begin_write(db).await?;
    set_row_security_context(&txn, Some(tenant), Some(user_id)).await?;
    let invitation = invitations::Entity::find()
        .filter(invitations::Column::TokenHash.eq(hash_token(token)))
        .filter(invitations::Column::TenantId.eq(tenant))
        .one(&txn)
        .await?
        .ok_or(ServiceError::InvalidToken)?;
    if invitation.status != InvitationStatus::Pending {
        return Err(ServiceError::Conflict {
            entity: "invitation",
            reason: "the invitation was already used or revoked",
        });
    }
    if invitation.expires_at <= now {
        return Err(ServiceError::Expired {
            what: "invitation",
            at: invitation.expires_at,
        });
    }
    let user = find_active_user(&txn, user_id).await?;
    if user.email != invitation.email {
        return Err(ServiceError::Forbidden {
            reason: "the invitation was sent to another email address",
        });
    }

    let membership = match find_membership(&txn, tenant, user_id).await? {
        Some(m) => m,
        None => insert_membership(&txn, deps, tenant, user_id, MembershipRole::Member, now).await?,
    };
    insert_assignment(
        &txn,
        deps,
        tenant,
        &NewAssignment::tenant_wide(user_id, invitation.role_id),
        invitation.invited_by,
    )
    .await?;
    if let Some(team) = invitation.team_id
        && team_members::Entity::find_by_id((team, user_id))
            .one(&txn)
            .await?
            .is_none()
    {
        team_members::ActiveModel {
            tenant_id: Set(tenant),
            team_id: Set(team),
            user_id: Set(user_id),
            role: Set(TeamRole::Member),
            created_at: Set(now),
        }
        .insert(&txn)
        .await?;
    }
    let invitation_id = invitation.id;
    let mut active: invitations::ActiveModel = invitation.into();
    active.status = Set(InvitationStatus::Accepted);
    active.accepted_at = Set(Some(now));
    active.accepted_by = Set(Some(user_id));
    active.updated_at = Set(now);
    active.update(&txn).await?;
    record(
        &txn,
        deps,
        AuditEntry::new(AuditEvent::InvitationAccepted, AuditOutcome::Success, meta)
            .tenant(tenant)
            .actor(user_id)
            .resource("invitation", invitation_id),
    )
    .await?;
    txn.commit().await?;
    Ok(membership)
}

/// Revokes a pending invitation. Records `invitation_revoked`.
///
/// # Errors
/// `Forbidden`; `NotFound` for an invitation of another tenant or one no longer
/// pending; `Db`.
pub async fn revoke_invitation<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    invitation_id: InvitationId,
    meta: &RequestMeta,
) -> Result<()>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = ctx.begin(db).await?;
    txn.require_member_manager()?;
    let invitation = invitations::Entity::find_by_id(invitation_id)
        .filter(invitations::Column::TenantId.eq(ctx.tenant_id()))
        .filter(invitations::Column::Status.eq(InvitationStatus::Pending))
        .one(&txn)
        .await?
        .ok_or_else(|| ServiceError::not_found("invitation", invitation_id))?;
    let now = deps.now();
    let mut active: invitations::ActiveModel = invitation.into();
    active.status = Set(InvitationStatus::Revoked);
    active.revoked_at = Set(Some(now));
    active.updated_at = Set(now);
    active.update(&txn).await?;
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::InvitationRevoked, meta)
            .resource("invitation", invitation_id),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}
