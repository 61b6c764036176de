//! Permission checks, each one SQL statement: a recursive query walks the team tree
//! above the scope and the role inheritance graph, matches wildcards, and lets any
//! matching deny policy win.
//!
//! They take the transaction of [`TenantCtx::begin`](crate::tenancy::TenantCtx::begin),
//! which proved the asking actor's membership and set the tenant for row-level
//! security; the tenant asked about is that transaction's. The check itself is then
//! a single round trip.

use crate::Result;
use crate::deps::Deps;
use crate::input::PermissionPart;
use crate::sql::named;
use crate::tenancy::TenantTxn;
use chrono::{DateTime, Timelike, Utc};
use entity::{TeamId, TenantId, UserId};
use sea_orm::{ConnectionTrait, Value};
use uuid::Uuid;

/// Where an action happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Tenant-wide: only tenant-scoped assignments count.
    Tenant,
    /// In a team: tenant-scoped assignments and those on this team or any team above it.
    Team(TeamId),
    /// On one record: tenant-scoped assignments and those on this record.
    Record(Uuid),
}

impl Scope {
    fn team(self) -> Option<Uuid> {
        match self {
            Scope::Team(team) => Some(team.into_uuid()),
            _ => None,
        }
    }

    fn record(self) -> Option<Uuid> {
        match self {
            Scope::Record(record) => Some(record),
            _ => None,
        }
    }
}

/// The daily-window rule, as an SQL condition on the assignment `ra` at `:minute`
/// (minutes after midnight UTC): no window, or a start (inclusive) to end
/// (exclusive) window that contains the minute, the window running past midnight
/// when it ends before it starts. A macro, so the queries stay `const` text.
macro_rules! within_daily_window {
    () => {
        "(ra.window_start_minute IS NULL
            OR (ra.window_start_minute < ra.window_end_minute
                AND :minute >= ra.window_start_minute AND :minute < ra.window_end_minute)
            OR (ra.window_start_minute > ra.window_end_minute
                AND (:minute >= ra.window_start_minute OR :minute < ra.window_end_minute)))"
    };
}

/// The roles a user holds in a scope right now, inherited ones included. Shared by
/// every query below; `:tenant`, `:user`, `:now`, `:minute`, `:team`, `:record`.
const HELD_ROLES: &str = concat!(
    "
WITH RECURSIVE
scope_teams (id, parent_id) AS (
    SELECT t.id, t.parent_id FROM teams t
     WHERE t.tenant_id = :tenant AND t.id = :team
    UNION
    SELECT t.id, t.parent_id FROM teams t
      JOIN scope_teams s ON t.id = s.parent_id
     WHERE t.tenant_id = :tenant
),
held_roles (role_id) AS (
    SELECT ra.role_id FROM role_assignments ra
     WHERE ra.tenant_id = :tenant AND ra.user_id = :user
       AND ra.revoked_at IS NULL
       AND (ra.expires_at IS NULL OR ra.expires_at > :now)
       AND ",
    within_daily_window!(),
    "
       AND (ra.scope_type = 'tenant'
            OR (ra.scope_type = 'team' AND ra.scope_id IN (SELECT id FROM scope_teams))
            OR (ra.scope_type = 'record' AND ra.scope_id = :record))
       AND EXISTS (SELECT 1 FROM memberships m
                    WHERE m.tenant_id = ra.tenant_id AND m.user_id = ra.user_id AND m.status = 'active')
    UNION
    SELECT ri.parent_role_id FROM role_inheritance ri
      JOIN held_roles h ON ri.role_id = h.role_id
)"
);

/// A deny policy matching `:resource`/`:action` for this user and their roles.
const DENIED: &str = "
SELECT 1 FROM policies d
 WHERE d.tenant_id = :tenant
   AND d.resource IN (:resource, '*') AND d.action IN (:action, '*')
   AND (d.user_id IS NULL OR d.user_id = :user)
   AND (d.role_id IS NULL OR d.role_id IN (SELECT role_id FROM held_roles))";

fn minute_of_day(now: DateTime<Utc>) -> i32 {
    (now.hour() * 60 + now.minute()) as i32
}

fn base_params(
    deps: &Deps,
    tenant: TenantId,
    user: UserId,
    scope: Scope,
) -> Vec<(&'static str, Value)> {
    let now = deps.now();
    vec![
        ("tenant", tenant.into_uuid().into()),
        ("user", user.into_uuid().into()),
        ("now", now.into()),
        ("minute", minute_of_day(now).into()),
        ("team", scope.team().into()),
        ("record", scope.record().into()),
    ]
}

/// May `user` do `action` on `resource` in the transaction's tenant, within `scope`,
/// right now?
/// True when a held role (directly, by inheritance, or through a team above the
/// scope) grants a matching permission and no deny policy matches.
///
/// # Errors
/// `Validation` for a malformed resource or action (`*` is not a valid question);
/// `Db`.
pub async fn has_permission<T: ConnectionTrait + Send>(
    db: &TenantTxn<T>,
    deps: &Deps,
    user: UserId,
    resource: &str,
    action: &str,
    scope: Scope,
) -> Result<bool> {
    let tenant = db.tenant_id();
    let resource = concrete("resource", resource)?;
    let action = concrete("action", action)?;
    let sql = format!(
        "{HELD_ROLES}
SELECT CASE WHEN EXISTS (
    SELECT 1 FROM role_permissions rp JOIN permissions p ON p.id = rp.permission_id
     WHERE rp.role_id IN (SELECT role_id FROM held_roles)
       AND p.resource IN (:resource, '*') AND p.action IN (:action, '*')
) AND NOT EXISTS ({DENIED}
) THEN 1 ELSE 0 END AS allowed"
    );
    let mut params = base_params(deps, tenant, user, scope);
    params.push(("resource", resource.as_str().into()));
    params.push(("action", action.as_str().into()));
    let row = db
        .query_one_raw(named(db.get_database_backend(), &sql, &params))
        .await?;
    Ok(match row {
        Some(row) => {
            row.try_get_by_index::<i32>(0)
                .or_else(|_| row.try_get_by_index::<i64>(0).map(|v| v as i32))?
                == 1
        }
        None => false,
    })
}

fn concrete(field: &'static str, raw: &str) -> Result<PermissionPart> {
    let part = PermissionPart::parse(field, raw)?;
    if part.as_str() == "*" {
        return Err(crate::ServiceError::validation(
            field,
            "ask about a concrete name, not `*`",
        ));
    }
    Ok(part)
}

/// What a user may do tenant-wide: every (resource, action) their roles grant, and
/// the deny policies that apply to them. A grant is effective unless a deny matches
/// it; wildcards stay wildcards.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EffectivePermissions {
    pub granted: Vec<(String, String)>,
    pub denied: Vec<(String, String)>,
}

impl EffectivePermissions {
    /// Applies the two lists to one concrete (resource, action), as `has_permission` does.
    pub fn allows(&self, resource: &str, action: &str) -> bool {
        let matches =
            |(r, a): &(String, String)| (r == "*" || r == resource) && (a == "*" || a == action);
        self.granted.iter().any(matches) && !self.denied.iter().any(matches)
    }
}

/// # Errors
/// `Db` only.
pub async fn effective_permissions<T: ConnectionTrait + Send>(
    db: &TenantTxn<T>,
    deps: &Deps,
    user: UserId,
) -> Result<EffectivePermissions> {
    let tenant = db.tenant_id();
    let backend = db.get_database_backend();
    let params = base_params(deps, tenant, user, Scope::Tenant);
    let granted_sql = format!(
        "{HELD_ROLES}
SELECT DISTINCT p.resource, p.action FROM role_permissions rp JOIN permissions p ON p.id = rp.permission_id
 WHERE rp.role_id IN (SELECT role_id FROM held_roles)
 ORDER BY p.resource, p.action"
    );
    let denied_sql = format!(
        "{HELD_ROLES}
SELECT DISTINCT d.resource, d.action FROM policies d
 WHERE d.tenant_id = :tenant
   AND (d.user_id IS NULL OR d.user_id = :user)
   AND (d.role_id IS NULL OR d.role_id IN (SELECT role_id FROM held_roles))
 ORDER BY d.resource, d.action"
    );
    let pairs = |rows: Vec<sea_orm::QueryResult>| -> Result<Vec<(String, String)>> {
        rows.into_iter()
            .map(|row| Ok((row.try_get_by_index(0)?, row.try_get_by_index(1)?)))
            .collect()
    };
    Ok(EffectivePermissions {
        granted: pairs(
            db.query_all_raw(named(backend, &granted_sql, &params))
                .await?,
        )?,
        denied: pairs(
            db.query_all_raw(named(backend, &denied_sql, &params))
                .await?,
        )?,
    })
}

/// Who may do `action` on `resource` tenant-wide right now: the members for whom
/// [`has_permission`] with [`Scope::Tenant`] is true, in one query.
///
/// # Errors
/// `Validation` for a malformed resource or action; `Db`.
pub async fn users_with_permission<T: ConnectionTrait + Send>(
    db: &TenantTxn<T>,
    deps: &Deps,
    resource: &str,
    action: &str,
) -> Result<Vec<UserId>> {
    let tenant = db.tenant_id();
    let resource = concrete("resource", resource)?;
    let action = concrete("action", action)?;
    let now = deps.now();
    let sql = concat!(
        "
WITH RECURSIVE held (user_id, role_id) AS (
    SELECT ra.user_id, ra.role_id FROM role_assignments ra
      JOIN memberships m ON m.tenant_id = ra.tenant_id AND m.user_id = ra.user_id AND m.status = 'active'
     WHERE ra.tenant_id = :tenant AND ra.scope_type = 'tenant'
       AND ra.revoked_at IS NULL
       AND (ra.expires_at IS NULL OR ra.expires_at > :now)
       AND ",
        within_daily_window!(),
        "
    UNION
    SELECT h.user_id, ri.parent_role_id FROM role_inheritance ri
      JOIN held h ON ri.role_id = h.role_id
)
SELECT DISTINCT h.user_id FROM held h
  JOIN role_permissions rp ON rp.role_id = h.role_id
  JOIN permissions p ON p.id = rp.permission_id
 WHERE p.resource IN (:resource, '*') AND p.action IN (:action, '*')
   AND NOT EXISTS (
       SELECT 1 FROM policies d
        WHERE d.tenant_id = :tenant
          AND d.resource IN (:resource, '*') AND d.action IN (:action, '*')
          AND (d.user_id IS NULL OR d.user_id = h.user_id)
          AND (d.role_id IS NULL OR d.role_id IN (SELECT h2.role_id FROM held h2 WHERE h2.user_id = h.user_id)))
 ORDER BY h.user_id"
    );
    let params = [
        ("tenant", tenant.into_uuid().into()),
        ("now", now.into()),
        ("minute", minute_of_day(now).into()),
        ("resource", resource.as_str().into()),
        ("action", action.as_str().into()),
    ];
    let rows = db
        .query_all_raw(named(db.get_database_backend(), sql, &params))
        .await?;
    rows.into_iter()
        .map(|row| Ok(UserId(row.try_get_by_index::<Uuid>(0)?)))
        .collect()
}
