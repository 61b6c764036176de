//! PostgreSQL only: the five database roles (app_service, read_only,
//! compliance_officer, data_processor, admin), their privileges, row-level security on
//! every tenant-scoped table, and `user_has_permission`. (The SQL text below is frozen:
//! its checksum is recorded in every database that applied it, comments included.)
//! On SQLite and MariaDB this migration does nothing: the service layer filters by
//! tenant itself, everywhere, and row-level security is the second wall.
//!
//! Roles are cluster-wide, so they are created only if missing, NOLOGIN and without
//! passwords (an operator grants LOGIN, or creates a login role IN ROLE app_service).
//! `down` removes the policies, grants and functions of this database but leaves the
//! roles, which other databases of the cluster may use.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Tables with a `tenant_id`, and the policy each gets.
pub(crate) const TENANT_TABLES: &[(&str, Policy)] = &[
    ("memberships", Policy::TenantOrOwnUser),
    ("teams", Policy::Tenant),
    ("team_members", Policy::Tenant),
    ("invitations", Policy::Tenant),
    ("roles", Policy::TenantOrSystem),
    ("role_assignments", Policy::Tenant),
    ("policies", Policy::Tenant),
    ("audit_logs", Policy::TenantAppendGlobal),
];

#[derive(Clone, Copy)]
pub(crate) enum Policy {
    /// Rows of the current tenant only.
    Tenant,
    /// Also a user's own memberships in other tenants ("which tenants am I in?").
    TenantOrOwnUser,
    /// Also the system roles (NULL tenant), read-only.
    TenantOrSystem,
    /// Tenant rows; events outside any tenant (NULL) may be written, not read.
    TenantAppendGlobal,
}

impl Policy {
    pub(crate) fn using(self) -> &'static str {
        match self {
            Policy::Tenant | Policy::TenantAppendGlobal => "tenant_id = app_current_tenant()",
            Policy::TenantOrOwnUser => {
                "tenant_id = app_current_tenant() OR user_id = app_current_user()"
            }
            Policy::TenantOrSystem => "tenant_id IS NULL OR tenant_id = app_current_tenant()",
        }
    }

    pub(crate) fn with_check(self) -> &'static str {
        match self {
            Policy::TenantAppendGlobal => "tenant_id IS NULL OR tenant_id = app_current_tenant()",
            _ => "tenant_id = app_current_tenant()",
        }
    }
}

/// (name, attributes, settings): NOLOGIN, no passwords, timeouts and connection limits.
const ROLES: &[(&str, &str, &str)] = &[
    (
        "app_service",
        "NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS CONNECTION LIMIT 100",
        "SET statement_timeout = '30s'; ALTER ROLE app_service SET idle_in_transaction_session_timeout = '60s'",
    ),
    (
        "read_only",
        "NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS CONNECTION LIMIT 10",
        "SET statement_timeout = '60s'; ALTER ROLE read_only SET default_transaction_read_only = on",
    ),
    (
        "compliance_officer",
        "NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS CONNECTION LIMIT 5",
        "SET statement_timeout = '120s'",
    ),
    (
        "data_processor",
        "NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS CONNECTION LIMIT 5",
        "SET statement_timeout = '15min'",
    ),
    (
        "admin",
        "NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE BYPASSRLS CONNECTION LIMIT 3",
        "SET statement_timeout = '0'",
    ),
];

const FUNCTIONS: &str = r#"
CREATE OR REPLACE FUNCTION app_current_tenant() RETURNS uuid
    LANGUAGE sql STABLE
    AS $$ SELECT nullif(current_setting('app.current_tenant_id', true), '')::uuid $$;

CREATE OR REPLACE FUNCTION app_current_user() RETURNS uuid
    LANGUAGE sql STABLE
    AS $$ SELECT nullif(current_setting('app.current_user_id', true), '')::uuid $$;

-- Seed 002's check, for policies: may p_user do p_action on p_resource tenant-wide,
-- now? The same rules as service::access::has_permission with Scope::Tenant (a test
-- holds the two to the same answers).
CREATE OR REPLACE FUNCTION user_has_permission(p_user uuid, p_tenant uuid, p_resource text, p_action text)
    RETURNS boolean
    LANGUAGE sql STABLE
    AS $$
WITH RECURSIVE held_roles (role_id) AS (
    SELECT ra.role_id FROM role_assignments ra
     WHERE ra.tenant_id = p_tenant AND ra.user_id = p_user
       AND ra.scope_type = 'tenant'
       AND ra.revoked_at IS NULL
       AND (ra.expires_at IS NULL OR ra.expires_at > now())
       AND (ra.window_start_minute IS NULL
            OR (ra.window_start_minute < ra.window_end_minute
                AND extract(hour FROM now() AT TIME ZONE 'UTC') * 60 + extract(minute FROM now() AT TIME ZONE 'UTC')
                    >= ra.window_start_minute
                AND extract(hour FROM now() AT TIME ZONE 'UTC') * 60 + extract(minute FROM now() AT TIME ZONE 'UTC')
                    < ra.window_end_minute)
            OR (ra.window_start_minute > ra.window_end_minute
                AND (extract(hour FROM now() AT TIME ZONE 'UTC') * 60 + extract(minute FROM now() AT TIME ZONE 'UTC')
                        >= ra.window_start_minute
                     OR extract(hour FROM now() AT TIME ZONE 'UTC') * 60 + extract(minute FROM now() AT TIME ZONE 'UTC')
                        < ra.window_end_minute)))
       AND EXISTS (SELECT 1 FROM memberships m
                    WHERE m.tenant_id = ra.tenant_id AND m.user_id = ra.user_id AND m.status = 'active')
    UNION
    SELECT ri.parent_role_id FROM role_inheritance ri JOIN held_roles h ON ri.role_id = h.role_id
)
SELECT EXISTS (
    SELECT 1 FROM role_permissions rp JOIN permissions p ON p.id = rp.permission_id
     WHERE rp.role_id IN (SELECT role_id FROM held_roles)
       AND p.resource IN (p_resource, '*') AND p.action IN (p_action, '*')
) AND NOT EXISTS (
    SELECT 1 FROM policies d
     WHERE d.tenant_id = p_tenant
       AND d.resource IN (p_resource, '*') AND d.action IN (p_action, '*')
       AND (d.user_id IS NULL OR d.user_id = p_user)
       AND (d.role_id IS NULL OR d.role_id IN (SELECT role_id FROM held_roles))
)
$$;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        db.execute_unprepared(FUNCTIONS).await?;
        db.execute_unprepared(&create_roles_sql()).await?;
        db.execute_unprepared(&grants_sql()).await?;
        for (table, policy) in TENANT_TABLES {
            db.execute_unprepared(&format!(
                "ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
                 ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
                 CREATE POLICY tenant_isolation ON {table} USING ({using}) WITH CHECK ({check});",
                using = policy.using(),
                check = policy.with_check(),
            ))
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        for (table, _) in TENANT_TABLES {
            db.execute_unprepared(&format!(
                "DROP POLICY IF EXISTS tenant_isolation ON {table};
                 ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY;
                 ALTER TABLE {table} DISABLE ROW LEVEL SECURITY;"
            ))
            .await?;
        }
        db.execute_unprepared(&revokes_sql()).await?;
        db.execute_unprepared(
            "DROP FUNCTION IF EXISTS user_has_permission(uuid, uuid, text, text);
             DROP FUNCTION IF EXISTS app_current_user();
             DROP FUNCTION IF EXISTS app_current_tenant();",
        )
        .await?;
        Ok(())
    }
}

/// Creates the missing roles, if this login may create roles at all (a managed
/// database's owner may not: then an operator creates them and reruns nothing, as
/// the grants below apply to whichever roles exist). An advisory lock serialises
/// concurrent migrations of several databases in one cluster.
fn create_roles_sql() -> String {
    let mut sql = String::from(
        "DO $roles$
BEGIN
  PERFORM pg_advisory_xact_lock(7210020);
  IF NOT (SELECT rolcreaterole OR rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    RAISE NOTICE 'current user may not create roles; create the application roles by hand';
    RETURN;
  END IF;
",
    );
    for (name, attributes, settings) in ROLES {
        sql.push_str(&format!(
            "  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{name}') THEN
    CREATE ROLE {name} {attributes};
    ALTER ROLE {name} {settings};
  END IF;
"
        ));
    }
    sql.push_str("END\n$roles$;");
    sql
}

/// Privileges in this database's current schema, for whichever roles exist.
pub(crate) fn grants_sql() -> String {
    "DO $grants$
DECLARE s text := current_schema();
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_service') THEN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO app_service', s);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO app_service', s);
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO app_service', s);
    -- The audit trail is append-only for the application; migrations stay the owner's.
    REVOKE UPDATE, DELETE, TRUNCATE ON audit_logs FROM app_service;
    REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON database_metadata, audit_event_types FROM app_service;
    -- sea-orm's bookkeeping exists when the migrator runs this, not when a dry run's
    -- SQL is applied by hand.
    IF to_regclass(format('%I.seaql_migrations', s)) IS NOT NULL THEN
      REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON seaql_migrations FROM app_service;
    END IF;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'data_processor') THEN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO data_processor', s);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO data_processor', s);
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO data_processor', s);
    REVOKE UPDATE, DELETE, TRUNCATE ON audit_logs FROM data_processor;
    REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON database_metadata FROM data_processor;
    IF to_regclass(format('%I.seaql_migrations', s)) IS NOT NULL THEN
      REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON seaql_migrations FROM data_processor;
    END IF;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'read_only') THEN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO read_only', s);
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO read_only', s);
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT ON TABLES TO read_only', s);
  END IF;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'compliance_officer') THEN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO compliance_officer', s);
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO compliance_officer', s);
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT ON TABLES TO compliance_officer', s);
  END IF;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'admin') THEN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO admin', s);
    EXECUTE format('GRANT ALL ON ALL TABLES IN SCHEMA %I TO admin', s);
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT ALL ON TABLES TO admin', s);
  END IF;
END
$grants$;"
        .to_owned()
}

fn revokes_sql() -> String {
    let mut sql = String::from("DO $revokes$\nDECLARE s text := current_schema();\nBEGIN\n");
    for (name, _, _) in ROLES {
        sql.push_str(&format!(
            "  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{name}') THEN
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I REVOKE ALL ON TABLES FROM {name}', s);
    EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM {name}', s);
    EXECUTE format('REVOKE USAGE ON SCHEMA %I FROM {name}', s);
  END IF;
"
        ));
    }
    sql.push_str("END\n$revokes$;");
    sql
}
