//! Team trees: unlimited nesting, no cycles, and members with team roles.

use super::context::{TenantCtx, lock_tenant};
use super::memberships::find_membership;
use crate::Result;
use crate::audit::{AuditEntry, AuditEvent, record};
use crate::deps::Deps;
use crate::error::{ServiceError, conflict_on_unique};
use crate::input::TeamName;
use crate::request::RequestMeta;
use crate::sql::named;
use entity::tenancy::team_members::{self, TeamRole};
use entity::tenancy::teams;
use entity::{TeamId, TenantId, UserId};
use sea_orm::ActiveValue::Set;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, ModelTrait, QueryFilter,
    TransactionTrait,
};
use serde_json::json;

/// Creates a team, top-level or under `parent`. Records `team_created`.
///
/// # Errors
/// `Forbidden` unless owner or admin; `NotFound` for a parent of another tenant;
/// `Conflict` if the tenant has a team of that name; `Db`.
pub async fn create_team<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    name: &TeamName,
    parent: Option<TeamId>,
    meta: &RequestMeta,
) -> Result<teams::Model>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = ctx.begin(db).await?;
    txn.require_member_manager()?;
    if let Some(parent) = parent {
        find_team(&txn, ctx.tenant_id(), parent).await?;
    }
    let taken = teams::Entity::find()
        .filter(teams::Column::TenantId.eq(ctx.tenant_id()))
        .filter(teams::Column::Name.eq(name.as_str()))
        .one(&txn)
        .await?
        .is_some();
    if taken {
        return Err(ServiceError::Conflict {
            entity: "team",
            reason: "the tenant has a team of this name",
        });
    }
    let now = deps.now();
    let team = teams::ActiveModel {
        id: Set(TeamId(deps.new_id(
            "teams",
            &format!("{}/{}", ctx.tenant_id(), name.as_str()),
        ))),
        tenant_id: Set(ctx.tenant_id()),
        parent_id: Set(parent),
        name: Set(name.as_str().to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await
    .map_err(conflict_on_unique(
        "team",
        "the tenant has a team of this name",
    ))?;
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::TeamCreated, meta)
            .resource("team", team.id)
            .details(json!({ "name": team.name, "parent_id": team.parent_id })),
    )
    .await?;
    txn.commit().await?;
    Ok(team)
}

/// The team `team` of `tenant`; a team of another tenant is `NotFound` too.
pub(crate) async fn find_team<C: ConnectionTrait>(
    db: &C,
    tenant: TenantId,
    team: TeamId,
) -> Result<teams::Model> {
    teams::Entity::find_by_id(team)
        .filter(teams::Column::TenantId.eq(tenant))
        .one(db)
        .await?
        .ok_or_else(|| ServiceError::not_found("team", team))
}

/// Moves a team (with its subtree) under `new_parent`, or to the top. Records
/// `team_moved`.
///
/// # Errors
/// `Forbidden`; `NotFound`; `Conflict` if `new_parent` is the team or below it (the
/// tree would become a cycle); `Db`.
pub async fn move_team<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    team: TeamId,
    new_parent: Option<TeamId>,
    meta: &RequestMeta,
) -> Result<teams::Model>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = ctx.begin(db).await?;
    txn.require_member_manager()?;
    // One tree change at a time per tenant, so two moves cannot build a cycle together.
    lock_tenant(&txn, ctx.tenant_id()).await?;
    let current = find_team(&txn, ctx.tenant_id(), team).await?;
    if let Some(parent) = new_parent {
        find_team(&txn, ctx.tenant_id(), parent).await?;
        let below = descendant_ids(&txn, ctx, team).await?;
        if parent == team || below.contains(&parent) {
            return Err(ServiceError::Conflict {
                entity: "team",
                reason: "a team cannot move under itself or one of its sub-teams",
            });
        }
    }
    let from = current.parent_id;
    let mut active: teams::ActiveModel = current.into();
    active.parent_id = Set(new_parent);
    active.updated_at = Set(deps.now());
    let moved = active.update(&txn).await?;
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::TeamMoved, meta)
            .resource("team", team)
            .details(json!({ "from_parent_id": from, "to_parent_id": new_parent })),
    )
    .await?;
    txn.commit().await?;
    Ok(moved)
}

const TEAM_COLUMNS: &str = "t.id, t.tenant_id, t.parent_id, t.name, t.created_at, t.updated_at";

/// The teams above `team`, nearest first.
///
/// # Errors
/// `NotFound` for a team of another tenant; `Db`.
pub async fn team_ancestors<C>(db: &C, ctx: &TenantCtx, team: TeamId) -> Result<Vec<teams::Model>>
where
    C: ConnectionTrait + TransactionTrait,
{
    walk(db, ctx, team, "t.id = w.parent_id").await
}

/// The teams below `team`, nearest first (breadth-first).
///
/// # Errors
/// `NotFound` for a team of another tenant; `Db`.
pub async fn team_descendants<C>(db: &C, ctx: &TenantCtx, team: TeamId) -> Result<Vec<teams::Model>>
where
    C: ConnectionTrait + TransactionTrait,
{
    walk(db, ctx, team, "t.parent_id = w.id").await
}

async fn walk<C>(db: &C, ctx: &TenantCtx, team: TeamId, step: &str) -> Result<Vec<teams::Model>>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = ctx.begin(db).await?;
    find_team(&txn, ctx.tenant_id(), team).await?;
    let sql = format!(
        "WITH RECURSIVE walk (id, parent_id, depth) AS (
    SELECT id, parent_id, 0 FROM teams WHERE tenant_id = :tenant AND id = :team
    UNION ALL
    SELECT t.id, t.parent_id, w.depth + 1 FROM teams t
      JOIN walk w ON {step}
     WHERE t.tenant_id = :tenant AND w.depth < 10000
)
SELECT {TEAM_COLUMNS} FROM walk w JOIN teams t ON t.id = w.id
 WHERE w.depth > 0
 ORDER BY w.depth, t.name"
    );
    let params = [
        ("tenant", ctx.tenant_id().into_uuid().into()),
        ("team", team.into_uuid().into()),
    ];
    let found = teams::Entity::find()
        .from_raw_sql(named(txn.get_database_backend(), &sql, &params))
        .all(&txn)
        .await?;
    txn.commit().await?;
    Ok(found)
}

async fn descendant_ids<C: ConnectionTrait>(
    db: &C,
    ctx: &TenantCtx,
    team: TeamId,
) -> Result<Vec<TeamId>> {
    let sql = "WITH RECURSIVE below (id) AS (
    SELECT id FROM teams WHERE tenant_id = :tenant AND parent_id = :team
    UNION
    SELECT t.id FROM teams t JOIN below b ON t.parent_id = b.id WHERE t.tenant_id = :tenant
)
SELECT id FROM below";
    let params = [
        ("tenant", ctx.tenant_id().into_uuid().into()),
        ("team", team.into_uuid().into()),
    ];
    let rows = db
        .query_all_raw(named(db.get_database_backend(), sql, &params))
        .await?;
    rows.into_iter()
        .map(|row| Ok(TeamId(row.try_get_by_index(0)?)))
        .collect()
}

/// Puts a tenant member in a team. Records `team_member_added`.
///
/// # Errors
/// `Forbidden`; `NotFound` for a team of another tenant or a user who is not a
/// member of this one; `Conflict` if already in the team; `Db`.
pub async fn add_team_member<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    team: TeamId,
    user: UserId,
    role: TeamRole,
    meta: &RequestMeta,
) -> Result<team_members::Model>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = ctx.begin(db).await?;
    txn.require_member_manager()?;
    find_team(&txn, ctx.tenant_id(), team).await?;
    if find_membership(&txn, ctx.tenant_id(), user)
        .await?
        .is_none()
    {
        return Err(ServiceError::not_found("membership", user));
    }
    if team_members::Entity::find_by_id((team, user))
        .one(&txn)
        .await?
        .is_some()
    {
        return Err(ServiceError::Conflict {
            entity: "team member",
            reason: "the user is already in this team",
        });
    }
    let member = team_members::ActiveModel {
        tenant_id: Set(ctx.tenant_id()),
        team_id: Set(team),
        user_id: Set(user),
        role: Set(role),
        created_at: Set(deps.now()),
    }
    .insert(&txn)
    .await
    .map_err(conflict_on_unique(
        "team member",
        "the user is already in this team",
    ))?;
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::TeamMemberAdded, meta)
            .resource("team", team)
            .details(json!({ "user_id": user, "role": role })),
    )
    .await?;
    txn.commit().await?;
    Ok(member)
}

/// Takes a member out of a team. Records `team_member_removed`.
///
/// # Errors
/// `Forbidden`; `NotFound`; `Db`.
pub async fn remove_team_member<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    team: TeamId,
    user: UserId,
    meta: &RequestMeta,
) -> Result<()>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = ctx.begin(db).await?;
    txn.require_member_manager()?;
    find_team(&txn, ctx.tenant_id(), team).await?;
    let member = team_members::Entity::find_by_id((team, user))
        .one(&txn)
        .await?
        .ok_or_else(|| ServiceError::not_found("team member", user))?;
    member.delete(&txn).await?;
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::TeamMemberRemoved, meta)
            .resource("team", team)
            .details(json!({ "user_id": user })),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}
