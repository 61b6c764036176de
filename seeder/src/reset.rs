//! What `--reset` empties, what the seeder says about it before asking, and what
//! `--no-reset` refuses.

use crate::profile::Profile;
use crate::{SeedError, SeedOptions};
use entity::tenancy::tenants;
use migration::environment::AppEnv;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};

/// The tables the reset empties, children first. The audit catalogue, migration
/// bookkeeping and environment marker are kept. `audit_logs` is append-only: it is
/// listed for the empty case (deleting no rows), and a trail with rows is reset by
/// rebuilding the schema instead (local and test only).
pub const RESET_TABLES: [&str; 41] = [
    "audit_logs",
    "audit_chain_heads",
    "access_grants",
    "record_versions",
    "records",
    "payment_intents",
    "payment_methods",
    "payment_customers",
    "usage_records",
    "billing_subscriptions",
    "billing_plans",
    "properties",
    "agent_results",
    "agent_tasks",
    "data_residency_log",
    "security_incidents",
    "consent_records",
    "privacy_policies",
    "deletion_requests",
    "subject_keys",
    "api_keys",
    "session_anomaly_reports",
    "mfa_challenges",
    "passkeys",
    "mfa_backup_codes",
    "mfa_factors",
    "role_assignments",
    "policies",
    "invitations",
    "team_members",
    "teams",
    "role_inheritance",
    "role_permissions",
    "roles",
    "permissions",
    "refresh_tokens",
    "sessions",
    "memberships",
    "user_profiles",
    "users",
    "tenants",
];

/// What a run is about to change, for the confirmation question: every table the
/// reset empties and how many rows it holds now.
pub(crate) async fn describe_changes(
    db: &DatabaseConnection,
    options: &SeedOptions,
    env: AppEnv,
) -> Result<String, SeedError> {
    let profile = options.profile.as_str();
    if !options.reset {
        return Ok(format!(
            "The seeder will add the {profile} profile's rows to the {env} database (--no-reset: it deletes nothing).\n"
        ));
    }
    let mut text = format!(
        "The seeder will DELETE EVERY ROW of these tables of the {env} database, then load the {profile} profile:\n"
    );
    for (table, rows) in reset_counts(db).await? {
        text.push_str(&format!("  {table:<18} {rows} row(s)\n"));
    }
    text.push_str(
        "(kept: the audit event catalogue, migration bookkeeping, the environment marker and sign-in throttle counters)\n",
    );
    Ok(text)
}

/// The tables the reset leaves as they are: the audit catalogue, migration
/// bookkeeping, the environment marker and the sign-in throttle counters. With
/// [`RESET_TABLES`], every table the migrations create (a test checks it).
pub const KEPT_TABLES: [&str; 6] = [
    "audit_event_types",
    "database_metadata",
    "seaql_migrations",
    "migration_checksums",
    "migration_lock",
    "sign_in_throttles",
];

/// Outside `local` and `test`, a reset that would have to delete audit rows is refused
/// before anything is asked or written.
pub(crate) async fn refuse_to_delete_audit_history(
    db: &DatabaseConnection,
    env: AppEnv,
) -> Result<(), SeedError> {
    let rows = audit_rows(db).await?;
    if rows == 0 {
        return Ok(());
    }
    Err(SeedError::Refused {
        signal: format!("the audit trail and consent history ({rows} row(s))"),
        reason: format!(
            "it is append-only, so --reset cannot empty it, and rebuilding the schema is for \
             local and test databases, not {env}. Seed with --no-reset, or rebuild the \
             database on purpose with `cargo run -p migration -- refresh` first"
        ),
    })
}

/// The database's tables, in name order.
pub async fn table_names(db: &DatabaseConnection) -> Result<Vec<String>, DbErr> {
    use sea_orm::{DbBackend, Statement};
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1"
        }
        DbBackend::MySql => {
            "SELECT CAST(table_name AS CHAR) FROM information_schema.tables \
             WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' ORDER BY 1"
        }
        _ => {
            "SELECT name FROM sqlite_master WHERE type = 'table' \
             AND name NOT LIKE 'sqlite_%' ORDER BY 1"
        }
    };
    let rows = db
        .query_all_raw(Statement::from_string(backend, sql))
        .await?;
    rows.iter()
        .map(|r| r.try_get_by_index::<String>(0))
        .collect()
}

/// A rebuild drops and recreates every table the migrations made; a table of someone
/// else's would be dropped with them or, pointing into them, stop the rebuild halfway.
pub(crate) async fn refuse_unknown_tables(db: &DatabaseConnection) -> Result<(), SeedError> {
    let unknown: Vec<String> = table_names(db)
        .await?
        .into_iter()
        .filter(|t| !RESET_TABLES.contains(&t.as_str()) && !KEPT_TABLES.contains(&t.as_str()))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(SeedError::UnknownTables(unknown.join(", ")))
    }
}

/// How many rows the append-only tables (the audit trail, consent history, transfer
/// log) hold (0
/// before the migrations that create them): a reset cannot delete them.
pub(crate) async fn audit_rows(db: &DatabaseConnection) -> Result<u64, DbErr> {
    use entity::audit::audit_logs;
    use entity::compliance::consent_records;
    use sea_orm::PaginatorTrait;
    let schema = migration::SchemaManager::new(db);
    let mut rows = 0;
    if schema.has_table("audit_logs").await? {
        rows += audit_logs::Entity::find().count(db).await?;
    }
    if schema.has_table("consent_records").await? {
        rows += consent_records::Entity::find().count(db).await?;
    }
    if schema.has_table("data_residency_log").await? {
        rows += entity::compliance::data_residency_log::Entity::find()
            .count(db)
            .await?;
    }
    Ok(rows)
}

async fn reset_counts(db: &DatabaseConnection) -> Result<Vec<(&'static str, i64)>, DbErr> {
    use sea_orm::Statement;
    let backend = db.get_database_backend();
    let mut out = Vec::new();
    for table in RESET_TABLES {
        let row = db
            .query_one_raw(Statement::from_string(
                backend,
                format!("SELECT COUNT(*) FROM {table}"),
            ))
            .await?;
        let rows = match row {
            Some(row) => row
                .try_get_by_index::<i64>(0)
                .or_else(|_| row.try_get_by_index::<i32>(0).map(i64::from))?,
            None => 0,
        };
        out.push((table, rows));
    }
    Ok(out)
}

/// Empties every table of [`RESET_TABLES`], in its order.
pub(crate) async fn reset<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    use entity::tenancy::teams;
    use sea_orm::sea_query::{Alias, Expr, Query};
    for table in RESET_TABLES {
        if table == "teams" {
            // MariaDB checks the parent key row by row: detach the tree before deleting it.
            teams::Entity::update_many()
                .col_expr(
                    teams::Column::ParentId,
                    Expr::value(Option::<uuid::Uuid>::None),
                )
                .exec(db)
                .await?;
        }
        db.execute(&Query::delete().from_table(Alias::new(table)).to_owned())
            .await?;
    }
    Ok(())
}

pub(crate) async fn refuse_if_seeded<C: ConnectionTrait>(
    db: &C,
    profile: &Profile,
) -> Result<(), SeedError> {
    let slugs: Vec<&str> = profile.tenants.iter().map(|t| t.slug).collect();
    let existing: Vec<String> = tenants::Entity::find()
        .filter(tenants::Column::Slug.is_in(slugs))
        .all(db)
        .await?
        .into_iter()
        .map(|t| t.slug)
        .collect();
    if existing.is_empty() {
        Ok(())
    } else {
        Err(SeedError::AlreadySeeded(existing.join(", ")))
    }
}
