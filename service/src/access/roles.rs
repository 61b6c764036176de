//! Roles, their permissions and their inheritance.

use crate::audit::{AuditEntry, AuditEvent, record};
use crate::deps::Deps;
use crate::error::{ServiceError, conflict_on_unique};
use crate::input::{PermissionPart, RoleName};
use crate::request::RequestMeta;
use crate::sql::named;
use crate::tenancy::{TenantCtx, lock_tenant};
use crate::{Result, begin_write};
use entity::access::{permissions, role_inheritance, role_permissions, roles};
use entity::{PermissionId, RoleId, TenantId};
use sea_orm::ActiveValue::Set;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, ModelTrait, QueryFilter,
    TransactionSession, TransactionTrait,
};
use serde_json::json;

/// The permission (resource, action), created if it does not exist yet.
///
/// # Errors
/// `Validation` for malformed names; `Db`.
pub async fn ensure_permission<C>(
    db: &C,
    deps: &Deps,
    resource: &str,
    action: &str,
) -> Result<permissions::Model>
where
    C: ConnectionTrait + TransactionTrait,
{
    let resource = PermissionPart::parse("resource", resource)?;
    let action = PermissionPart::parse("action", action)?;
    let find = || {
        permissions::Entity::find()
            .filter(permissions::Column::Resource.eq(resource.as_str()))
            .filter(permissions::Column::Action.eq(action.as_str()))
    };
    if let Some(found) = find().one(db).await? {
        return Ok(found);
    }
    let key = format!("{}:{}", resource.as_str(), action.as_str());
    let inserted = permissions::ActiveModel {
        id: Set(PermissionId(deps.new_id("permissions", &key))),
        resource: Set(resource.as_str().to_owned()),
        action: Set(action.as_str().to_owned()),
        description: Set(None),
        created_at: Set(deps.now()),
    }
    .insert(db)
    .await;
    match inserted {
        Ok(model) => Ok(model),
        // Someone created it between our read and our write: theirs is as good.
        Err(e)
            if matches!(
                e.sql_err(),
                Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
            ) =>
        {
            find().one(db).await?.ok_or(ServiceError::Db(e))
        }
        Err(e) => Err(e.into()),
    }
}

/// Creates a custom role of the context's tenant. Records `role_created`.
///
/// # Errors
/// `Forbidden` unless the actor is an owner or admin; `Conflict` if the tenant has a
/// role of that name; `Db`.
pub async fn create_role<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    name: &RoleName,
    description: Option<&str>,
    meta: &RequestMeta,
) -> Result<roles::Model>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = ctx.begin(db).await?;
    txn.require_member_manager()?;
    let role = insert_role(&txn, deps, Some(ctx.tenant_id()), name, description).await?;
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::RoleCreated, meta)
            .resource("role", role.id)
            .details(json!({ "name": role.name })),
    )
    .await?;
    txn.commit().await?;
    Ok(role)
}

/// Creates a system role, shared by every tenant. Platform code only: no tenant
/// context guards it.
///
/// # Errors
/// `Conflict` if a system role of that name exists; `Db`.
pub async fn create_system_role<C>(
    db: &C,
    deps: &Deps,
    name: &RoleName,
    description: Option<&str>,
) -> Result<roles::Model>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = begin_write(db).await?;
    let role = insert_role(&txn, deps, None, name, description).await?;
    txn.commit().await?;
    Ok(role)
}

async fn insert_role<C: ConnectionTrait>(
    db: &C,
    deps: &Deps,
    tenant: Option<TenantId>,
    name: &RoleName,
    description: Option<&str>,
) -> Result<roles::Model> {
    // MariaDB cannot index "unique among NULL tenants": check here for every backend.
    let taken = roles::Entity::find()
        .filter(match tenant {
            Some(t) => roles::Column::TenantId.eq(t),
            None => roles::Column::TenantId.is_null(),
        })
        .filter(roles::Column::Name.eq(name.as_str()))
        .one(db)
        .await?
        .is_some();
    if taken {
        return Err(ServiceError::Conflict {
            entity: "role",
            reason: "a role of this name exists",
        });
    }
    let now = deps.now();
    let key = format!(
        "{}/{}",
        tenant
            .map(|t| t.to_string())
            .unwrap_or_else(|| "system".into()),
        name.as_str()
    );
    roles::ActiveModel {
        id: Set(RoleId(deps.new_id("roles", &key))),
        tenant_id: Set(tenant),
        name: Set(name.as_str().to_owned()),
        description: Set(description.map(str::to_owned)),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .map_err(conflict_on_unique("role", "a role of this name exists"))
}

/// A role the context's tenant may use: its own, or a system role. Anything else,
/// including another tenant's role, is `NotFound` (ids are not probed).
pub(crate) async fn usable_role<C: ConnectionTrait>(
    db: &C,
    tenant: TenantId,
    role_id: RoleId,
) -> Result<roles::Model> {
    match roles::Entity::find_by_id(role_id).one(db).await? {
        Some(role) if role.tenant_id.is_none() || role.tenant_id == Some(tenant) => Ok(role),
        _ => Err(ServiceError::not_found("role", role_id)),
    }
}

/// A role the context's tenant may change: its own only.
async fn own_role<C: ConnectionTrait>(
    db: &C,
    ctx: &TenantCtx,
    role_id: RoleId,
) -> Result<roles::Model> {
    let role = usable_role(db, ctx.tenant_id(), role_id).await?;
    if role.tenant_id.is_none() {
        return Err(ServiceError::Forbidden {
            reason: "system roles are shared by every tenant and cannot be changed by one",
        });
    }
    Ok(role)
}

/// Adds a permission to one of the tenant's roles. Records `role_permission_granted`.
///
/// # Errors
/// `Forbidden` (not an owner/admin, or a system role); `NotFound` for a role not
/// usable here; `Validation`; `Db`. Granting twice is not an error.
pub async fn grant_permission<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    role_id: RoleId,
    resource: &str,
    action: &str,
    meta: &RequestMeta,
) -> Result<()>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = ctx.begin(db).await?;
    txn.require_member_manager()?;
    own_role(&txn, ctx, role_id).await?;
    let permission = ensure_permission(&txn, deps, resource, action).await?;
    link_permission(&txn, deps, role_id, permission.id).await?;
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::RolePermissionGranted, meta)
            .resource("role", role_id)
            .details(json!({ "resource": permission.resource, "action": permission.action })),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// Adds a permission to a system role. Platform code only.
///
/// # Errors
/// `NotFound` unless `role_id` is a system role; `Validation`; `Db`.
pub async fn grant_system_permission<C>(
    db: &C,
    deps: &Deps,
    role_id: RoleId,
    resource: &str,
    action: &str,
) -> Result<()>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = begin_write(db).await?;
    system_role(&txn, role_id).await?;
    let permission = ensure_permission(&txn, deps, resource, action).await?;
    link_permission(&txn, deps, role_id, permission.id).await?;
    txn.commit().await?;
    Ok(())
}

async fn system_role<C: ConnectionTrait>(db: &C, role_id: RoleId) -> Result<roles::Model> {
    match roles::Entity::find_by_id(role_id).one(db).await? {
        Some(role) if role.tenant_id.is_none() => Ok(role),
        _ => Err(ServiceError::not_found("system role", role_id)),
    }
}

async fn link_permission<C: ConnectionTrait>(
    db: &C,
    deps: &Deps,
    role_id: RoleId,
    permission_id: PermissionId,
) -> Result<()> {
    let exists = role_permissions::Entity::find_by_id((role_id, permission_id))
        .one(db)
        .await?
        .is_some();
    if !exists {
        role_permissions::ActiveModel {
            role_id: Set(role_id),
            permission_id: Set(permission_id),
            created_at: Set(deps.now()),
        }
        .insert(db)
        .await?;
    }
    Ok(())
}

/// Removes a permission from one of the tenant's roles. Records
/// `role_permission_revoked`.
///
/// # Errors
/// `Forbidden`; `NotFound` for an unusable role or a permission the role lacks; `Db`.
pub async fn revoke_permission<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    role_id: RoleId,
    resource: &str,
    action: &str,
    meta: &RequestMeta,
) -> Result<()>
where
    C: ConnectionTrait + TransactionTrait,
{
    let resource = PermissionPart::parse("resource", resource)?;
    let action = PermissionPart::parse("action", action)?;
    let txn = ctx.begin(db).await?;
    txn.require_member_manager()?;
    own_role(&txn, ctx, role_id).await?;
    let permission = permissions::Entity::find()
        .filter(permissions::Column::Resource.eq(resource.as_str()))
        .filter(permissions::Column::Action.eq(action.as_str()))
        .one(&txn)
        .await?;
    let link = match permission {
        Some(p) => {
            role_permissions::Entity::find_by_id((role_id, p.id))
                .one(&txn)
                .await?
        }
        None => None,
    }
    .ok_or_else(|| {
        ServiceError::not_found(
            "role permission",
            format!("{}:{}", resource.as_str(), action.as_str()),
        )
    })?;
    link.delete(&txn).await?;
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::RolePermissionRevoked, meta)
            .resource("role", role_id)
            .details(json!({ "resource": resource.as_str(), "action": action.as_str() })),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// Makes one of the tenant's roles inherit `parent` (the tenant's or a system role).
/// Records `role_inheritance_added`.
///
/// # Errors
/// `Forbidden`; `NotFound` for unusable roles; `Conflict` if it would close a cycle
/// (a role inheriting itself, directly or not); `Db`.
pub async fn add_role_parent<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    role_id: RoleId,
    parent: RoleId,
    meta: &RequestMeta,
) -> Result<()>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = ctx.begin(db).await?;
    txn.require_member_manager()?;
    lock_tenant(&txn, ctx.tenant_id()).await?;
    own_role(&txn, ctx, role_id).await?;
    usable_role(&txn, ctx.tenant_id(), parent).await?;
    link_parent(&txn, deps, role_id, parent).await?;
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::RoleInheritanceAdded, meta)
            .resource("role", role_id)
            .details(json!({ "parent_role_id": parent })),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// Makes a system role inherit another system role. Platform code only.
///
/// # Errors
/// `NotFound` unless both are system roles; `Conflict` for a cycle; `Db`.
pub async fn add_system_role_parent<C>(
    db: &C,
    deps: &Deps,
    role_id: RoleId,
    parent: RoleId,
) -> Result<()>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = begin_write(db).await?;
    system_role(&txn, role_id).await?;
    system_role(&txn, parent).await?;
    link_parent(&txn, deps, role_id, parent).await?;
    txn.commit().await?;
    Ok(())
}

async fn link_parent<C: ConnectionTrait>(
    db: &C,
    deps: &Deps,
    role_id: RoleId,
    parent: RoleId,
) -> Result<()> {
    const CYCLE: ServiceError = ServiceError::Conflict {
        entity: "role inheritance",
        reason: "a role cannot inherit from itself, directly or through other roles",
    };
    if role_id == parent {
        return Err(CYCLE);
    }
    // Would `parent` (or anything it inherits) already inherit `role_id`?
    let sql = "
WITH RECURSIVE ancestors (id) AS (
    SELECT parent_role_id FROM role_inheritance WHERE role_id = :parent
    UNION
    SELECT ri.parent_role_id FROM role_inheritance ri JOIN ancestors a ON ri.role_id = a.id
)
SELECT COUNT(*) FROM ancestors WHERE id = :role";
    let params = [
        ("parent", parent.into_uuid().into()),
        ("role", role_id.into_uuid().into()),
    ];
    let row = db
        .query_one_raw(named(db.get_database_backend(), sql, &params))
        .await?;
    let found = row.map_or(Ok(0), |r| r.try_get_by_index::<i64>(0))?;
    if found > 0 {
        return Err(CYCLE);
    }
    if role_inheritance::Entity::find_by_id((role_id, parent))
        .one(db)
        .await?
        .is_none()
    {
        role_inheritance::ActiveModel {
            role_id: Set(role_id),
            parent_role_id: Set(parent),
            created_at: Set(deps.now()),
        }
        .insert(db)
        .await?;
    }
    Ok(())
}

/// Removes an inheritance link of one of the tenant's roles. Records
/// `role_inheritance_removed`.
///
/// # Errors
/// `Forbidden`; `NotFound`; `Db`.
pub async fn remove_role_parent<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    role_id: RoleId,
    parent: RoleId,
    meta: &RequestMeta,
) -> Result<()>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = ctx.begin(db).await?;
    txn.require_member_manager()?;
    own_role(&txn, ctx, role_id).await?;
    let link = role_inheritance::Entity::find_by_id((role_id, parent))
        .one(&txn)
        .await?
        .ok_or_else(|| ServiceError::not_found("role inheritance", parent))?;
    link.delete(&txn).await?;
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::RoleInheritanceRemoved, meta)
            .resource("role", role_id)
            .details(json!({ "parent_role_id": parent })),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}
