//! Deny policies: rules that override any grant.

use super::roles::usable_role;
use crate::Result;
use crate::audit::{AuditEntry, AuditEvent, record};
use crate::deps::Deps;
use crate::error::{ServiceError, conflict_on_unique};
use crate::input::{PermissionPart, PolicyName};
use crate::request::RequestMeta;
use crate::tenancy::TenantCtx;
use entity::access::policies;
use entity::{PolicyId, RoleId, UserId};
use sea_orm::ActiveValue::Set;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, ModelTrait, QueryFilter,
    TransactionTrait,
};
use serde_json::json;

/// A deny rule: nobody matching it may do `action` on `resource` (`*` for any),
/// whatever their roles grant.
#[derive(Clone, Debug)]
pub struct NewDenyPolicy {
    /// Unique within the tenant, e.g. `no-record-deletes`.
    pub name: String,
    pub resource: String,
    pub action: String,
    /// Only this member; `None` for everyone (narrowed by `role_id`).
    pub user_id: Option<UserId>,
    /// Only holders of this role; `None` for everyone (narrowed by `user_id`).
    pub role_id: Option<RoleId>,
}

/// Creates a deny policy in the context's tenant. Records `policy_created`.
///
/// # Errors
/// `Forbidden` unless owner or admin; `Validation`; `NotFound` for a role of another
/// tenant; `Conflict` for a taken name; `Db`.
pub async fn create_deny_policy<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    input: NewDenyPolicy,
    meta: &RequestMeta,
) -> Result<policies::Model>
where
    C: ConnectionTrait + TransactionTrait,
{
    let name = PolicyName::parse(&input.name)?;
    let resource = PermissionPart::parse("resource", &input.resource)?;
    let action = PermissionPart::parse("action", &input.action)?;
    let txn = ctx.begin(db).await?;
    txn.require_member_manager()?;
    if let Some(role) = input.role_id {
        usable_role(&txn, ctx.tenant_id(), role).await?;
    }
    let taken = policies::Entity::find()
        .filter(policies::Column::TenantId.eq(ctx.tenant_id()))
        .filter(policies::Column::Name.eq(name.as_str()))
        .one(&txn)
        .await?
        .is_some();
    if taken {
        return Err(ServiceError::Conflict {
            entity: "policy",
            reason: "a policy of this name exists",
        });
    }
    let policy = policies::ActiveModel {
        id: Set(PolicyId(deps.new_id(
            "policies",
            &format!("{}/{}", ctx.tenant_id(), name.as_str()),
        ))),
        tenant_id: Set(ctx.tenant_id()),
        name: Set(name.as_str().to_owned()),
        resource: Set(resource.as_str().to_owned()),
        action: Set(action.as_str().to_owned()),
        user_id: Set(input.user_id),
        role_id: Set(input.role_id),
        created_by: Set(Some(ctx.actor())),
        created_at: Set(deps.now()),
    }
    .insert(&txn)
    .await
    .map_err(conflict_on_unique("policy", "a policy of this name exists"))?;
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::PolicyCreated, meta)
            .resource("policy", policy.id)
            .details(json!({ "name": policy.name, "resource": policy.resource, "action": policy.action })),
    )
    .await?;
    txn.commit().await?;
    Ok(policy)
}

/// Deletes a deny policy of the context's tenant. Records `policy_deleted`.
///
/// # Errors
/// `Forbidden`; `NotFound`; `Db`.
pub async fn delete_policy<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    policy_id: PolicyId,
    meta: &RequestMeta,
) -> Result<()>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = ctx.begin(db).await?;
    txn.require_member_manager()?;
    let policy = policies::Entity::find_by_id(policy_id)
        .filter(policies::Column::TenantId.eq(ctx.tenant_id()))
        .one(&txn)
        .await?
        .ok_or_else(|| ServiceError::not_found("policy", policy_id))?;
    let name = policy.name.clone();
    policy.delete(&txn).await?;
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::PolicyDeleted, meta)
            .resource("policy", policy_id)
            .details(json!({ "name": name })),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}
