//! Adding, removing and listing a tenant's members.

use super::context::{TenantCtx, set_row_security_context};
use crate::Result;
use crate::audit::{AuditEntry, AuditEvent, record};
use crate::deps::Deps;
use crate::error::{ServiceError, conflict_on_unique};
use crate::identity::ensure_active_user;
use crate::request::RequestMeta;
use chrono::{DateTime, Utc};
use entity::tenancy::memberships::{self, MembershipRole, MembershipStatus};
use entity::tenancy::tenants;
use entity::{MembershipId, TenantId, UserId};
use sea_orm::ActiveValue::Set;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, ModelTrait, PaginatorTrait,
    QueryFilter, QueryOrder, TransactionSession, TransactionTrait,
};
use serde_json::json;

/// Adds an existing user to the context's tenant. Only owners may add owners.
/// Records `member_added`.
///
/// # Errors
/// `Forbidden` if the actor may not manage members (or grant that role);
/// `NotFound` for an unknown user; `AccountDisabled` for an inactive one; `Conflict`
/// if already a member; `Db`.
pub async fn add_member<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    user_id: UserId,
    role: MembershipRole,
    meta: &RequestMeta,
) -> Result<memberships::Model>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = ctx.begin(db).await?;
    txn.require_member_manager()?;
    if role == MembershipRole::Owner && txn.role() != MembershipRole::Owner {
        return Err(ServiceError::Forbidden {
            reason: "only owners make other members owners",
        });
    }
    ensure_active_user(&txn, user_id).await?;
    if find_membership(&txn, ctx.tenant_id(), user_id)
        .await?
        .is_some()
    {
        return Err(ServiceError::Conflict {
            entity: "membership",
            reason: "user is already a member of this tenant",
        });
    }
    let membership =
        insert_membership(&txn, deps, ctx.tenant_id(), user_id, role, deps.now()).await?;
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::MemberAdded, meta)
            .resource("membership", membership.id)
            .details(json!({ "user_id": user_id, "role": role })),
    )
    .await?;
    txn.commit().await?;
    Ok(membership)
}

/// Removes a member from the context's tenant. Members may remove themselves;
/// removing others takes an owner or admin, and only owners remove owners. The last
/// owner cannot be removed. Records `member_removed`.
///
/// # Errors
/// `Forbidden`; `NotFound` if the user is not a member; `Conflict` for the last
/// owner; `Db`.
pub async fn remove_member<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    user_id: UserId,
    meta: &RequestMeta,
) -> Result<()>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = ctx.begin(db).await?;
    if user_id != ctx.actor() {
        txn.require_member_manager()?;
    }
    let membership = find_membership(&txn, ctx.tenant_id(), user_id)
        .await?
        .ok_or_else(|| ServiceError::not_found("membership", user_id))?;
    if membership.role == MembershipRole::Owner {
        if user_id != ctx.actor() && txn.role() != MembershipRole::Owner {
            return Err(ServiceError::Forbidden {
                reason: "only owners remove owners",
            });
        }
        let owners = memberships::Entity::find()
            .filter(memberships::Column::TenantId.eq(ctx.tenant_id()))
            .filter(memberships::Column::Role.eq(MembershipRole::Owner))
            .count(&txn)
            .await?;
        if owners <= 1 {
            return Err(ServiceError::Conflict {
                entity: "membership",
                reason: "the last owner of a tenant cannot be removed",
            });
        }
    }
    let membership_id = membership.id;
    membership.delete(&txn).await?;
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::MemberRemoved, meta)
            .resource("membership", membership_id)
            .details(json!({ "user_id": user_id })),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// Makes `user_id` an active member of `tenant` with `role`, joined `now`: the one
/// place a membership row is written. Callers check first; a concurrent insert
/// then answers with the same `Conflict` through the unique key.
///
/// # Errors
/// `Conflict` if the user is already a member; `Db`.
pub(crate) async fn insert_membership<C: ConnectionTrait>(
    db: &C,
    deps: &Deps,
    tenant: TenantId,
    user_id: UserId,
    role: MembershipRole,
    now: DateTime<Utc>,
) -> Result<memberships::Model> {
    memberships::ActiveModel {
        id: Set(MembershipId(
            deps.new_id("memberships", &format!("{tenant}/{user_id}")),
        )),
        tenant_id: Set(tenant),
        user_id: Set(user_id),
        role: Set(role),
        status: Set(MembershipStatus::Active),
        joined_at: Set(now),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .map_err(conflict_on_unique(
        "membership",
        "user is already a member of this tenant",
    ))
}

/// `user_id`'s membership of `tenant`, whatever its status.
pub(crate) async fn find_membership<C: ConnectionTrait>(
    db: &C,
    tenant: TenantId,
    user_id: UserId,
) -> Result<Option<memberships::Model>> {
    Ok(memberships::Entity::find()
        .filter(memberships::Column::TenantId.eq(tenant))
        .filter(memberships::Column::UserId.eq(user_id))
        .one(db)
        .await?)
}

/// The context's tenant's members, oldest first.
///
/// # Errors
/// `Db` only.
pub async fn list_members<C>(db: &C, ctx: &TenantCtx) -> Result<Vec<memberships::Model>>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = ctx.begin(db).await?;
    let members = memberships::Entity::find()
        .filter(memberships::Column::TenantId.eq(ctx.tenant_id()))
        .order_by_asc(memberships::Column::JoinedAt)
        .order_by_asc(memberships::Column::Id)
        .all(&txn)
        .await?;
    txn.commit().await?;
    Ok(members)
}

/// The active tenants a user actively belongs to, with their membership.
///
/// # Errors
/// `Db` only.
pub async fn list_user_tenants<C>(
    db: &C,
    user_id: UserId,
) -> Result<Vec<(memberships::Model, tenants::Model)>>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = crate::begin_write(db).await?;
    // Row-level security shows a user's own memberships in every tenant.
    set_row_security_context(&txn, None, Some(user_id)).await?;
    let rows = memberships::Entity::find()
        .filter(memberships::Column::UserId.eq(user_id))
        .filter(memberships::Column::Status.eq(MembershipStatus::Active))
        .find_also_related(tenants::Entity)
        .filter(tenants::Column::IsActive.eq(true))
        .order_by_asc(tenants::Column::Slug)
        .all(&txn)
        .await?;
    txn.commit().await?;
    Ok(rows
        .into_iter()
        .filter_map(|(membership, tenant)| tenant.map(|t| (membership, t)))
        .collect())
}
