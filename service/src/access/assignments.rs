//! Giving roles to members, and taking them back.

use super::check::Scope;
use super::roles::usable_role;
use crate::Result;
use crate::audit::{AuditEntry, AuditEvent, record};
use crate::deps::Deps;
use crate::error::ServiceError;
use crate::request::RequestMeta;
use crate::tenancy::{TenantCtx, find_membership, find_team};
use chrono::{DateTime, NaiveTime, Timelike, Utc};
use entity::access::role_assignments::{self, ScopeType};
use entity::tenancy::memberships::MembershipStatus;
use entity::{RoleAssignmentId, RoleId, TenantId, UserId};
use sea_orm::ActiveValue::Set;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, TransactionTrait,
};
use serde_json::json;

/// A daily window in UTC during which an assignment counts, e.g. 09:00 to 17:00.
/// A window whose end is before its start runs past midnight (22:00 to 06:00).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeWindow {
    start_minute: i16,
    end_minute: i16,
}

impl TimeWindow {
    /// Parses `HH:MM` times (UTC).
    ///
    /// # Errors
    /// `Validation` for a malformed time or an empty window (start = end).
    pub fn parse(start: &str, end: &str) -> Result<Self> {
        let minute = |field: &'static str, raw: &str| -> Result<i16> {
            let time = NaiveTime::parse_from_str(raw.trim(), "%H:%M")
                .map_err(|_| ServiceError::validation(field, "must be a time of day as HH:MM"))?;
            Ok((time.hour() * 60 + time.minute()) as i16)
        };
        let (start_minute, end_minute) =
            (minute("window_start", start)?, minute("window_end", end)?);
        if start_minute == end_minute {
            return Err(ServiceError::validation(
                "window_end",
                "must differ from the start",
            ));
        }
        Ok(Self {
            start_minute,
            end_minute,
        })
    }
}

/// A role to give a member.
#[derive(Clone, Debug)]
pub struct NewAssignment {
    pub user_id: UserId,
    pub role_id: RoleId,
    pub scope: Scope,
    pub expires_at: Option<DateTime<Utc>>,
    pub window: Option<TimeWindow>,
}

impl NewAssignment {
    /// A tenant-wide, permanent, all-day assignment.
    pub fn tenant_wide(user_id: UserId, role_id: RoleId) -> Self {
        Self {
            user_id,
            role_id,
            scope: Scope::Tenant,
            expires_at: None,
            window: None,
        }
    }
}

/// Gives a member a role of this tenant (or a system role) in a scope. Records
/// `role_assigned`.
///
/// # Errors
/// `Forbidden` unless the actor is an owner or admin; `NotFound` for a role of
/// another tenant, a user who is not an active member, or a team of another tenant;
/// `Validation` for an expiry in the past; `Db`.
pub async fn assign_role<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    input: NewAssignment,
    meta: &RequestMeta,
) -> Result<role_assignments::Model>
where
    C: ConnectionTrait + TransactionTrait,
{
    let now = deps.now();
    if input.expires_at.is_some_and(|at| at <= now) {
        return Err(ServiceError::validation(
            "expires_at",
            "must be in the future",
        ));
    }
    let txn = ctx.begin(db).await?;
    txn.require_member_manager()?;
    usable_role(&txn, ctx.tenant_id(), input.role_id).await?;
    let member = find_membership(&txn, ctx.tenant_id(), input.user_id).await?;
    if member.is_none_or(|m| m.status != MembershipStatus::Active) {
        return Err(ServiceError::not_found("membership", input.user_id));
    }
    let assignment =
        insert_assignment(&txn, deps, ctx.tenant_id(), &input, Some(ctx.actor())).await?;
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::RoleAssigned, meta)
            .resource("role_assignment", assignment.id)
            .details(json!({
                "user_id": assignment.user_id,
                "role_id": assignment.role_id,
                "scope_type": assignment.scope_type,
                "scope_id": assignment.scope_id,
                "expires_at": assignment.expires_at,
            })),
    )
    .await?;
    txn.commit().await?;
    Ok(assignment)
}

/// Inserts an assignment after resolving its scope (a team must be in `tenant`).
/// Callers have checked the role and the membership.
pub(crate) async fn insert_assignment<C: ConnectionTrait>(
    db: &C,
    deps: &Deps,
    tenant: TenantId,
    input: &NewAssignment,
    granted_by: Option<UserId>,
) -> Result<role_assignments::Model> {
    let (scope_type, scope_id) = match input.scope {
        Scope::Tenant => (ScopeType::Tenant, None),
        Scope::Team(team) => {
            find_team(db, tenant, team).await?;
            (ScopeType::Team, Some(team.into_uuid()))
        }
        Scope::Record(record) => (ScopeType::Record, Some(record)),
    };
    let key = format!("{tenant}/{}/{}", input.user_id, input.role_id);
    Ok(role_assignments::ActiveModel {
        id: Set(RoleAssignmentId(deps.new_id("role_assignments", &key))),
        tenant_id: Set(tenant),
        user_id: Set(input.user_id),
        role_id: Set(input.role_id),
        scope_type: Set(scope_type),
        scope_id: Set(scope_id),
        window_start_minute: Set(input.window.map(|w| w.start_minute)),
        window_end_minute: Set(input.window.map(|w| w.end_minute)),
        expires_at: Set(input.expires_at),
        revoked_at: Set(None),
        revoked_by: Set(None),
        granted_by: Set(granted_by),
        created_at: Set(deps.now()),
    }
    .insert(db)
    .await?)
}

/// Ends an assignment now. Records `role_assignment_revoked`.
///
/// # Errors
/// `Forbidden`; `NotFound` for an assignment of another tenant or one already
/// revoked; `Db`.
pub async fn revoke_assignment<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    assignment_id: RoleAssignmentId,
    meta: &RequestMeta,
) -> Result<()>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = ctx.begin(db).await?;
    txn.require_member_manager()?;
    let assignment = role_assignments::Entity::find_by_id(assignment_id)
        .filter(role_assignments::Column::TenantId.eq(ctx.tenant_id()))
        .filter(role_assignments::Column::RevokedAt.is_null())
        .one(&txn)
        .await?
        .ok_or_else(|| ServiceError::not_found("role assignment", assignment_id))?;
    let mut active: role_assignments::ActiveModel = assignment.into();
    active.revoked_at = Set(Some(deps.now()));
    active.revoked_by = Set(Some(ctx.actor()));
    active.update(&txn).await?;
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::RoleAssignmentRevoked, meta)
            .resource("role_assignment", assignment_id),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}
