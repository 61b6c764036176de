//! Tenant provisioning by isolation level. `shared` tenants live in the
//! common tables and need nothing. A `schema` tenant gets its own PostgreSQL schema
//! holding the tenant-scoped tables of [`TenantMigrator`] (global tables such as
//! `users`, `tenants` and `roles` stay in the main schema, which comes second on the
//! search path). A `database` tenant gets its own database with the whole schema.
//!
//! Every identifier built from a slug is quoted by the server (`quote_ident`,
//! `format('%I')`), and checked to be a plain identifier PostgreSQL would not
//! truncate, so a slug can neither inject SQL nor make two tenants share a schema.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use service::connection::{self, DbTarget, PoolSettings};

/// The migrations whose tables a schema-isolated tenant keeps to itself.
pub struct TenantMigrator;

#[async_trait::async_trait]
impl MigratorTrait for TenantMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(crate::m20261122_000014_tenancy_create_teams::Migration),
            Box::new(crate::m20261122_000015_tenancy_create_team_members::Migration),
            Box::new(crate::m20261122_000016_tenancy_create_invitations::Migration),
            Box::new(crate::m20261122_000017_access_create_role_assignments::Migration),
            Box::new(crate::m20261122_000018_access_create_policies::Migration),
        ]
    }
}

/// A tenant that is not `shared`, and where its data lives.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct IsolatedTenant {
    pub slug: String,
    pub isolation_level: String,
    /// The schema (`schema`) or database (`database`) name.
    pub location: String,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TenantStatus {
    pub tenant: IsolatedTenant,
    pub provisioned: bool,
    pub applied: usize,
    pub pending: Vec<String>,
}

/// `tenant_<slug>` with dashes as underscores (slugs are `[a-z0-9-]`, checked by
/// the database).
pub fn schema_name(slug: &str) -> String {
    format!("tenant_{}", slug.replace('-', "_"))
}

/// `<main database>_<slug>`, likewise.
pub fn database_name(main_database: &str, slug: &str) -> String {
    format!("{main_database}_{}", slug.replace('-', "_"))
}

/// The tenants of the main database that are not shared, by slug.
pub async fn isolated_tenants(
    db: &DatabaseConnection,
    target: &DbTarget,
) -> Result<Vec<IsolatedTenant>, DbErr> {
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT slug, isolation_level FROM tenants WHERE isolation_level <> 'shared' ORDER BY slug".to_owned(),
        ))
        .await?;
    rows.iter()
        .map(|row| {
            let slug: String = row.try_get_by_index(0)?;
            let level: String = row.try_get_by_index(1)?;
            let location = if level == "schema" {
                schema_name(&slug)
            } else {
                database_name(&target.database(), &slug)
            };
            Ok(IsolatedTenant {
                slug,
                isolation_level: level,
                location,
            })
        })
        .collect()
}

/// PostgreSQL's identifier limit in bytes: longer names are silently truncated, so
/// two long slugs could name the same schema.
const MAX_IDENTIFIER_BYTES: usize = 63;

/// The tenant's schema or database name, if it is a plain identifier of at most 63
/// bytes (`[a-z0-9_]`); a typed error otherwise, before anything is created.
fn checked_location(tenant: &IsolatedTenant) -> Result<&str, DbErr> {
    let name = tenant.location.as_str();
    let plain = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !plain || name.len() > MAX_IDENTIFIER_BYTES {
        return Err(DbErr::Custom(format!(
            "tenant {:?}: its {} name {name:?} is not a plain PostgreSQL identifier of at most \
             {MAX_IDENTIFIER_BYTES} bytes ([a-z0-9_]); give the tenant a shorter slug",
            tenant.slug, tenant.isolation_level
        )));
    }
    Ok(name)
}

/// `name` quoted as an identifier by the server.
pub(crate) async fn quote_ident(db: &DatabaseConnection, name: &str) -> Result<String, DbErr> {
    db.query_one_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT quote_ident($1)",
        [name.into()],
    ))
    .await?
    .ok_or_else(|| DbErr::Custom("quote_ident returned no row".into()))?
    .try_get_by_index(0)
}

fn require_postgres(db: &DatabaseConnection) -> Result<(), DbErr> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Err(DbErr::Custom(
            "schema and database isolation need PostgreSQL; on this backend every tenant is shared"
                .into(),
        ));
    }
    Ok(())
}

/// A connection into the tenant's own place: its schema first on the search path, or
/// its own database.
async fn connect_to(
    db: &DatabaseConnection,
    target: &DbTarget,
    tenant: &IsolatedTenant,
) -> Result<DatabaseConnection, DbErr> {
    if tenant.isolation_level == "schema" {
        let main: String = db
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT current_schema()::text".to_owned(),
            ))
            .await?
            .ok_or_else(|| DbErr::Custom("no current schema".into()))?
            .try_get_by_index(0)?;
        // Each element of the search path is quoted as an identifier; both are plain
        // names (the tenant's is checked, the main one comes from the server).
        let mut settings = PoolSettings::tool("migration");
        settings.schema = Some(format!("{},{main}", checked_location(tenant)?));
        Ok(connection::connect(target, &settings).await?)
    } else {
        let url = target.with_database(checked_location(tenant)?);
        Ok(connection::connect(&url, &PoolSettings::tool("migration")).await?)
    }
}

async fn exists(db: &DatabaseConnection, tenant: &IsolatedTenant) -> Result<bool, DbErr> {
    let sql = if tenant.isolation_level == "schema" {
        "SELECT 1 FROM pg_namespace WHERE nspname = $1"
    } else {
        "SELECT 1 FROM pg_database WHERE datname = $1"
    };
    Ok(db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            [tenant.location.clone().into()],
        ))
        .await?
        .is_some())
}

/// Creates the tenant's schema or database if missing, then applies its pending
/// migrations there. Idempotent.
pub async fn provision(
    db: &DatabaseConnection,
    target: &DbTarget,
    tenant: &IsolatedTenant,
) -> Result<usize, DbErr> {
    require_postgres(db)?;
    let location = quote_ident(db, checked_location(tenant)?).await?;
    if !exists(db, tenant).await? {
        let sql = if tenant.isolation_level == "schema" {
            format!("CREATE SCHEMA {location}")
        } else {
            format!("CREATE DATABASE {location}")
        };
        db.execute_unprepared(&sql).await?;
    }
    let conn = connect_to(db, target, tenant).await?;
    let result = async {
        if tenant.isolation_level == "schema" {
            let pending = TenantMigrator::get_pending_migrations(&conn).await?.len();
            TenantMigrator::up(&conn, None).await?;
            secure_schema(db, checked_location(tenant)?).await?;
            Ok(pending)
        } else {
            let pending = crate::Migrator::get_pending_migrations(&conn).await?.len();
            crate::Migrator::up(&conn, None).await?;
            Ok(pending)
        }
    }
    .await;
    conn.close().await.ok();
    result
}

/// Where each isolated tenant stands.
pub async fn status(
    db: &DatabaseConnection,
    target: &DbTarget,
) -> Result<Vec<TenantStatus>, DbErr> {
    require_postgres(db)?;
    let mut out = Vec::new();
    for tenant in isolated_tenants(db, target).await? {
        if !exists(db, &tenant).await? {
            out.push(TenantStatus {
                tenant,
                provisioned: false,
                applied: 0,
                pending: Vec::new(),
            });
            continue;
        }
        let conn = connect_to(db, target, &tenant).await?;
        let statuses = if tenant.isolation_level == "schema" {
            TenantMigrator::get_migration_with_status_read_only(&conn).await
        } else {
            crate::Migrator::get_migration_with_status_read_only(&conn).await
        };
        conn.close().await.ok();
        let statuses = statuses?;
        let pending: Vec<String> = statuses
            .iter()
            .filter(|m| m.status() == sea_orm_migration::migrator::MigrationStatus::Pending)
            .map(|m| m.name().to_owned())
            .collect();
        out.push(TenantStatus {
            tenant,
            provisioned: true,
            applied: statuses.len() - pending.len(),
            pending,
        });
    }
    Ok(out)
}

/// The tables of a tenant schema, with the same walls as the main schema: the runtime
/// role may use them (not the bookkeeping), and row-level security is forced on every
/// table with a `tenant_id`, found in the catalogue. Runs on every provisioning, so
/// tables added by later tenant migrations are covered.
async fn secure_schema(db: &DatabaseConnection, schema: &str) -> Result<(), DbErr> {
    let quoted_schema = quote_ident(db, schema).await?;
    let runtime_role = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT 1 FROM pg_roles WHERE rolname = 'app_service'".to_owned(),
        ))
        .await?
        .is_some();
    if runtime_role {
        db.execute_unprepared(&format!(
            "GRANT USAGE ON SCHEMA {quoted_schema} TO app_service;
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {quoted_schema} TO app_service;
             REVOKE ALL ON {quoted_schema}.seaql_migrations FROM app_service;"
        ))
        .await?;
    }
    let tables = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT format('%I.%I', c.table_schema, c.table_name),
                    EXISTS (SELECT 1 FROM pg_policies p
                             WHERE p.schemaname = c.table_schema AND p.tablename = c.table_name
                               AND p.policyname = 'wall_select')
               FROM information_schema.columns c
               JOIN information_schema.tables t
                 ON t.table_schema = c.table_schema AND t.table_name = c.table_name
              WHERE c.table_schema = $1 AND c.column_name = 'tenant_id'
                AND t.table_type = 'BASE TABLE'
              ORDER BY c.table_name",
            [schema.into()],
        ))
        .await?;
    for row in tables {
        let table: String = row.try_get_by_index(0)?;
        let has_policy: bool = row.try_get_by_index(1)?;
        let mut sql = format!(
            "ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
             ALTER TABLE {table} FORCE ROW LEVEL SECURITY;"
        );
        if !has_policy {
            // The same per-command walls as the shared tables (migration 22); a schema
            // provisioned before them loses its single read-and-write policy.
            sql.push_str(&format!(
                "DROP POLICY IF EXISTS tenant_isolation ON {table};
                 CREATE POLICY wall_select ON {table} FOR SELECT USING (tenant_id = app_current_tenant());
                 CREATE POLICY wall_insert ON {table} FOR INSERT WITH CHECK (tenant_id = app_current_tenant());
                 CREATE POLICY wall_update ON {table} FOR UPDATE
                   USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant());
                 CREATE POLICY wall_delete ON {table} FOR DELETE USING (tenant_id = app_current_tenant());"
            ));
        }
        db.execute_unprepared(&sql).await?;
    }
    Ok(())
}
