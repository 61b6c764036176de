//! PostgreSQL only: walls for every table the runtime role `app_service` can reach,
//! written per command, so that seeing a shared or self-owned row never implies
//! changing it.
//!
//! | class | tables | `app_service` may |
//! |---|---|---|
//! | tenant | memberships, teams, team_members, invitations, roles, role_assignments, policies | read and write the current tenant's rows; also read its own memberships elsewhere and the system roles |
//! | tenant, append-only | audit_logs | read the current tenant's rows (the acting user's own global security events through `app_own_security_events`); insert rows of the current tenant only, or global rows outside any tenant |
//! | catalogue | permissions, audit_event_types, system roles and their inheritance and grants | read; insert new permission names (a name grants nothing) |
//! | global identity | tenants, users, user_profiles, sessions, refresh_tokens | as far as the acting user (`app.current_user_id`) and the current tenant's members need |
//! | secrets | users.password_hash, refresh_tokens.token_hash | never read directly: sign-in and refresh go through `SECURITY DEFINER` functions with a pinned `search_path` |
//! | throttling | sign_in_throttles | read, insert clean rows, update with blocks of at most a day (sign-in happens before anyone is known); never delete |
//! | platform | database_metadata, the migration bookkeeping | nothing |
//!
//! Tables added later get nothing by default: each migration grants what the service
//! needs. Global tables have RLS enabled but not forced, so the `SECURITY DEFINER`
//! functions (run as the owner) see through it; the runtime role never owns a table.
//! On SQLite and MariaDB this migration does nothing (the service is the wall there).

use crate::m20261122_000020_platform_postgres_row_security as row_security;
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

const TENANT: &str = "tenant_id = app_current_tenant()";
const ACTING_USER_OR_MEMBER: &str = "user_id = app_current_user() OR EXISTS (SELECT 1 FROM memberships m WHERE m.user_id = {t}.user_id AND m.tenant_id = app_current_tenant())";
const OWN_TENANT_ROLE: &str = "EXISTS (SELECT 1 FROM roles r WHERE r.id = {t}.role_id AND r.tenant_id = app_current_tenant())";
const VISIBLE_ROLE: &str = "EXISTS (SELECT 1 FROM roles r WHERE r.id = {t}.role_id)";

/// One table's policies: (command, USING, WITH CHECK). `{t}` is the table's name.
/// Row-level security is also forced (`true`) on tables the migration owner never
/// reads through a `SECURITY DEFINER` function.
struct Wall {
    table: &'static str,
    force: bool,
    policies: &'static [(&'static str, Option<&'static str>, Option<&'static str>)],
}

const fn tenant_wall(table: &'static str) -> Wall {
    Wall {
        table,
        force: true,
        policies: &[
            ("SELECT", Some(TENANT), None),
            ("INSERT", None, Some(TENANT)),
            ("UPDATE", Some(TENANT), Some(TENANT)),
            ("DELETE", Some(TENANT), None),
        ],
    }
}

const WALLS: &[Wall] = &[
    Wall {
        table: "sign_in_throttles",
        force: false,
        policies: &[
            ("SELECT", Some("true"), None),
            // New keys start clean; no block reaches further than a day (the longest
            // delay the service configures is far shorter), so nobody can be locked
            // out for good by writing this table directly.
            (
                "INSERT",
                None,
                Some("failures = 0 AND blocked_until IS NULL"),
            ),
            (
                "UPDATE",
                Some("true"),
                Some("blocked_until IS NULL OR blocked_until <= now() + interval '1 day'"),
            ),
        ],
    },
    tenant_wall("teams"),
    tenant_wall("team_members"),
    tenant_wall("invitations"),
    tenant_wall("role_assignments"),
    tenant_wall("policies"),
    Wall {
        table: "memberships",
        force: true,
        policies: &[
            // "Which tenants am I in?" reads one's own memberships everywhere.
            (
                "SELECT",
                Some("tenant_id = app_current_tenant() OR user_id = app_current_user()"),
                None,
            ),
            ("INSERT", None, Some(TENANT)),
            ("UPDATE", Some(TENANT), Some(TENANT)),
            ("DELETE", Some(TENANT), None),
        ],
    },
    Wall {
        table: "roles",
        force: true,
        policies: &[
            // System roles (no tenant) are shared for reading, never for writing.
            (
                "SELECT",
                Some("tenant_id IS NULL OR tenant_id = app_current_tenant()"),
                None,
            ),
            ("INSERT", None, Some(TENANT)),
            ("UPDATE", Some(TENANT), Some(TENANT)),
            ("DELETE", Some(TENANT), None),
        ],
    },
    Wall {
        table: "audit_logs",
        force: true,
        policies: &[
            // A user's own global events are read through `app_own_security_events`:
            // an OR here would turn "a tenant's newest 50" into a bitmap scan and a
            // sort, several times slower.
            ("SELECT", Some(TENANT), None),
            // Inside a tenant's transaction only that tenant's rows; outside any
            // tenant only global rows (sign-in, sessions).
            (
                "INSERT",
                None,
                Some(
                    "tenant_id IS NOT DISTINCT FROM app_current_tenant() AND (actor_user_id IS NULL OR actor_user_id = app_current_user())",
                ),
            ),
        ],
    },
    Wall {
        table: "role_inheritance",
        force: true,
        policies: &[
            ("SELECT", Some(VISIBLE_ROLE), None),
            (
                "INSERT",
                None,
                Some(
                    "EXISTS (SELECT 1 FROM roles r WHERE r.id = role_inheritance.role_id AND r.tenant_id = app_current_tenant()) AND EXISTS (SELECT 1 FROM roles p WHERE p.id = role_inheritance.parent_role_id)",
                ),
            ),
            ("DELETE", Some(OWN_TENANT_ROLE), None),
        ],
    },
    Wall {
        table: "role_permissions",
        force: true,
        policies: &[
            ("SELECT", Some(VISIBLE_ROLE), None),
            ("INSERT", None, Some(OWN_TENANT_ROLE)),
            ("DELETE", Some(OWN_TENANT_ROLE), None),
        ],
    },
    Wall {
        table: "tenants",
        force: false,
        policies: &[
            (
                "SELECT",
                Some(
                    "id = app_current_tenant() OR EXISTS (SELECT 1 FROM memberships m WHERE m.tenant_id = tenants.id AND m.user_id = app_current_user())",
                ),
                None,
            ),
            // A signed-in user creates a tenant inside that tenant's context.
            (
                "INSERT",
                None,
                Some("id = app_current_tenant() AND app_current_user() IS NOT NULL"),
            ),
            (
                "UPDATE",
                Some("id = app_current_tenant()"),
                Some("id = app_current_tenant()"),
            ),
        ],
    },
    Wall {
        table: "users",
        force: false,
        policies: &[
            (
                "SELECT",
                Some(
                    "id = app_current_user() OR EXISTS (SELECT 1 FROM memberships m WHERE m.user_id = users.id AND m.tenant_id = app_current_tenant())",
                ),
                None,
            ),
            ("INSERT", None, Some("id = app_current_user()")),
            (
                "UPDATE",
                Some("id = app_current_user()"),
                Some("id = app_current_user()"),
            ),
        ],
    },
    Wall {
        table: "user_profiles",
        force: false,
        policies: &[
            ("SELECT", Some(ACTING_USER_OR_MEMBER), None),
            ("INSERT", None, Some("user_id = app_current_user()")),
            (
                "UPDATE",
                Some("user_id = app_current_user()"),
                Some("user_id = app_current_user()"),
            ),
        ],
    },
    Wall {
        table: "sessions",
        force: false,
        policies: &[
            ("SELECT", Some("user_id = app_current_user()"), None),
            ("INSERT", None, Some("user_id = app_current_user()")),
            (
                "UPDATE",
                Some("user_id = app_current_user()"),
                Some("user_id = app_current_user()"),
            ),
        ],
    },
    Wall {
        table: "refresh_tokens",
        force: false,
        policies: &[
            (
                "SELECT",
                Some("EXISTS (SELECT 1 FROM sessions s WHERE s.id = refresh_tokens.session_id)"),
                None,
            ),
            (
                "INSERT",
                None,
                Some("EXISTS (SELECT 1 FROM sessions s WHERE s.id = refresh_tokens.session_id)"),
            ),
            (
                "UPDATE",
                Some("EXISTS (SELECT 1 FROM sessions s WHERE s.id = refresh_tokens.session_id)"),
                Some("EXISTS (SELECT 1 FROM sessions s WHERE s.id = refresh_tokens.session_id)"),
            ),
        ],
    },
];

/// What the runtime role may do per table. Columns left out of a column list are
/// unreadable (secrets) or unchangeable (a tenant's slug, plan and isolation level are
/// the platform's; a new user's flags take their defaults).
const GRANTS: &str = "
GRANT SELECT ON permissions, audit_event_types TO app_service;
GRANT INSERT ON permissions TO app_service;
GRANT SELECT, INSERT ON tenants TO app_service;
GRANT SELECT, INSERT, UPDATE ON user_profiles, sessions TO app_service;
GRANT INSERT ON refresh_tokens TO app_service;
GRANT SELECT, INSERT, UPDATE, DELETE
   ON memberships, teams, team_members, invitations, roles, role_assignments, policies TO app_service;
GRANT SELECT, INSERT, DELETE ON role_inheritance, role_permissions TO app_service;
GRANT SELECT, INSERT ON audit_logs TO app_service;
GRANT SELECT, INSERT, UPDATE ON sign_in_throttles TO app_service;
";

/// Column-level grants: (table, privilege, columns), for the runtime role.
const COLUMN_GRANTS: &[(&str, &str, &str)] = &[
    ("tenants", "UPDATE", "name, updated_at"),
    (
        "users",
        "SELECT",
        "id, email, is_active, is_verified, last_login_at, failed_login_count, locked_until, created_at, updated_at",
    ),
    (
        "users",
        "INSERT",
        "id, email, password_hash, created_at, updated_at",
    ),
    (
        "users",
        "UPDATE",
        "password_hash, last_login_at, updated_at",
    ),
    (
        "refresh_tokens",
        "SELECT",
        "id, session_id, parent_id, created_at, expires_at, used_at, revoked_at",
    ),
    ("refresh_tokens", "UPDATE", "used_at, revoked_at"),
];

/// The other roles of migration 20 read every table; not the secrets.
const READERS: &[&str] = &["read_only", "compliance_officer", "data_processor"];
const READABLE_WITHOUT_SECRETS: &[(&str, &str)] = &[
    (
        "users",
        "id, email, is_active, is_verified, last_login_at, failed_login_count, locked_until, created_at, updated_at",
    ),
    (
        "refresh_tokens",
        "id, session_id, parent_id, created_at, expires_at, used_at, revoked_at",
    ),
];

fn column_grants_sql(grant: bool) -> String {
    let mut sql = String::new();
    for (table, privilege, columns) in COLUMN_GRANTS {
        sql.push_str(&if grant {
            format!("GRANT {privilege} ({columns}) ON {table} TO app_service;\n")
        } else {
            format!("REVOKE {privilege} ({columns}) ON {table} FROM app_service;\n")
        });
    }
    sql
}

/// Secrets out of the other roles' reach (`grant`), or back as migration 20 left them.
fn readers_sql(up: bool) -> String {
    let mut sql = String::from("DO $readers$\nBEGIN\n");
    for role in READERS {
        sql.push_str(&format!(
            "  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN\n"
        ));
        for (table, columns) in READABLE_WITHOUT_SECRETS {
            sql.push_str(&if up {
                format!(
                    "    REVOKE SELECT ON {table} FROM {role};\n    GRANT SELECT ({columns}) ON {table} TO {role};\n"
                )
            } else {
                format!(
                    "    REVOKE SELECT ({columns}) ON {table} FROM {role};\n    GRANT SELECT ON {table} TO {role};\n"
                )
            });
        }
        sql.push_str("  END IF;\n");
    }
    sql.push_str("END\n$readers$;");
    sql
}

/// The narrow paths to secrets. Each runs as the owner with a pinned `search_path`
/// (`pg_catalog` first, so nothing in the schema can shadow a built-in; `pg_temp`
/// last, so nobody's temporary table can stand in for ours), and none returns a
/// token hash.
const FUNCTIONS: &str = r#"
-- Sign-in: the one place a password hash is read, for one exact email.
CREATE FUNCTION app_sign_in_credentials(p_email text)
    RETURNS TABLE (user_id uuid, password_hash text)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, {schema}, pg_temp
    AS $$ SELECT u.id, u.password_hash::text FROM users u WHERE u.email = p_email $$;

-- Refresh: which token and whose session a presented token's hash names.
CREATE FUNCTION app_refresh_token_lookup(p_token_hash text)
    RETURNS TABLE (token_id uuid, session_id uuid, user_id uuid)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, {schema}, pg_temp
    AS $$ SELECT t.id, t.session_id, s.user_id FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
           WHERE t.token_hash = p_token_hash $$;

-- Adding a member: does this user exist, and is it active? (NULL: no such user.)
CREATE FUNCTION app_user_is_active(p_user uuid)
    RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, {schema}, pg_temp
    AS $$ SELECT u.is_active FROM users u WHERE u.id = p_user $$;

-- A user's own security history: the global events (no tenant) they caused.
CREATE FUNCTION app_own_security_events(p_limit integer)
    RETURNS SETOF audit_logs
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, {schema}, pg_temp
    AS $$ SELECT * FROM audit_logs
           WHERE tenant_id IS NULL AND actor_user_id = app_current_user()
           ORDER BY occurred_at DESC, id DESC LIMIT p_limit $$;

REVOKE ALL ON FUNCTION app_sign_in_credentials(text), app_refresh_token_lookup(text), app_user_is_active(uuid),
    app_own_security_events(integer) FROM PUBLIC;

-- audit_logs has row-level security forced, so the owner, whose rights the function
-- above runs with, reads it through a policy of its own.
DO $owner$ BEGIN
  EXECUTE format('CREATE POLICY wall_owner_select ON audit_logs FOR SELECT TO %I USING (true)', current_user);
END $owner$;
"#;

const DROP_FUNCTIONS: &str = "
DROP POLICY IF EXISTS wall_owner_select ON audit_logs;
DROP FUNCTION IF EXISTS app_own_security_events(integer);
DROP FUNCTION IF EXISTS app_sign_in_credentials(text);
DROP FUNCTION IF EXISTS app_refresh_token_lookup(text);
DROP FUNCTION IF EXISTS app_user_is_active(uuid);
";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        for (table, _) in row_security::TENANT_TABLES {
            db.execute_unprepared(&format!("DROP POLICY tenant_isolation ON {table};"))
                .await?;
        }
        for wall in WALLS {
            db.execute_unprepared(&wall_sql(wall)).await?;
        }
        db.execute_unprepared(&schema_functions_sql(FUNCTIONS))
            .await?;
        db.execute_unprepared(&for_runtime_role(&format!(
            "EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I REVOKE ALL ON TABLES FROM app_service', s);
    EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM app_service', s);
    {grants}
    {columns}
    GRANT EXECUTE ON FUNCTION app_sign_in_credentials(text), app_refresh_token_lookup(text), app_user_is_active(uuid),
        app_own_security_events(integer) TO app_service;",
            grants = GRANTS.trim(),
            columns = column_grants_sql(true),
        )))
        .await?;
        db.execute_unprepared(&readers_sql(true)).await?;
        // Temporary tables come first on every search path: one created by an SQL
        // injection would shadow a real table on that pooled connection, catching
        // the next tenant's writes. Nobody but the owner needs them.
        db.execute_unprepared(
            "DO $temp$ BEGIN
               EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
             END $temp$;",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        for wall in WALLS {
            let mut sql = String::new();
            for (command, _, _) in wall.policies {
                sql.push_str(&format!(
                    "DROP POLICY IF EXISTS {} ON {};\n",
                    policy_name(command),
                    wall.table
                ));
            }
            if !row_security::TENANT_TABLES
                .iter()
                .any(|(table, _)| *table == wall.table)
            {
                sql.push_str(&format!(
                    "ALTER TABLE {t} NO FORCE ROW LEVEL SECURITY;
                     ALTER TABLE {t} DISABLE ROW LEVEL SECURITY;\n",
                    t = wall.table
                ));
            }
            db.execute_unprepared(&sql).await?;
        }
        // Back to the single read-and-write policy per tenant table.
        for (table, policy) in row_security::TENANT_TABLES {
            db.execute_unprepared(&format!(
                "CREATE POLICY tenant_isolation ON {table} USING ({using}) WITH CHECK ({check});",
                using = policy.using(),
                check = policy.with_check(),
            ))
            .await?;
        }
        db.execute_unprepared(
            "DO $temp$ BEGIN
               EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO PUBLIC', current_database());
             END $temp$;",
        )
        .await?;
        db.execute_unprepared(&readers_sql(false)).await?;
        db.execute_unprepared(&for_runtime_role(&format!(
            "EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM app_service', s);
    {columns}",
            columns = column_grants_sql(false)
        )))
        .await?;
        db.execute_unprepared(DROP_FUNCTIONS).await?;
        db.execute_unprepared(&row_security::grants_sql()).await?;
        Ok(())
    }
}

fn policy_name(command: &str) -> String {
    format!("wall_{}", command.to_ascii_lowercase())
}

fn wall_sql(wall: &Wall) -> String {
    let table = wall.table;
    let mut sql = format!("ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;\n");
    if wall.force {
        sql.push_str(&format!("ALTER TABLE {table} FORCE ROW LEVEL SECURITY;\n"));
    }
    for (command, using, check) in wall.policies {
        sql.push_str(&format!(
            "CREATE POLICY {name} ON {table} FOR {command}",
            name = policy_name(command)
        ));
        if let Some(using) = using {
            sql.push_str(&format!(" USING ({})", using.replace("{t}", table)));
        }
        if let Some(check) = check {
            sql.push_str(&format!(" WITH CHECK ({})", check.replace("{t}", table)));
        }
        sql.push_str(";\n");
    }
    sql
}

/// Creates `functions` with `{schema}` replaced by the current schema, quoted.
fn schema_functions_sql(functions: &str) -> String {
    format!(
        "DO $functions$
BEGIN
  EXECUTE replace({body}, '{{schema}}', quote_ident(current_schema()));
END
$functions$;",
        body = dollar_quoted(functions)
    )
}

fn dollar_quoted(text: &str) -> String {
    debug_assert!(!text.contains("$body$"));
    format!("$body${text}$body$")
}

/// `body` inside a block that runs only where the runtime role exists (managed
/// databases may lack it), with `s` the current schema.
fn for_runtime_role(body: &str) -> String {
    format!(
        "DO $walls$
DECLARE s text := current_schema();
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_service') THEN
    {body}
  END IF;
END
$walls$;"
    )
}
