//! `migration_checksums`: next to sea-orm's `seaql_migrations`, what each applied
//! migration's SQL was (a SHA-256 of it as rendered for this backend), where, by whom,
//! when, and how long it took. A changed, missing or unknown migration is reported
//! before anything runs.

use crate::environment::AppEnv;
use crate::plan::Rendered;
use crate::schema_helpers::{create_table, string, string_null, timestamp, timestamp_null};
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend};
use std::collections::BTreeMap;

#[derive(DeriveIden)]
enum MigrationChecksums {
    Table,
    Version,
    Checksum,
    Backend,
    Environment,
    AppliedBy,
    AppliedAt,
    DurationMs,
    RepairedAt,
    RepairedBy,
    PreviousChecksum,
}

/// What was recorded for one applied migration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub checksum: String,
    pub environment: String,
    pub applied_by: String,
    pub duration_ms: Option<i64>,
}

/// Applied migrations compared with the code.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Drift {
    /// Applied, but the migration's SQL is no longer what was applied.
    pub modified: Vec<String>,
    /// Applied, but no such migration exists in the code.
    pub missing: Vec<String>,
    /// Applied without a recorded checksum (applied before checksums were kept).
    pub unrecorded: Vec<String>,
}

impl Drift {
    /// Modified or missing migrations: nothing should run until someone looks.
    pub fn blocks(&self) -> bool {
        !self.modified.is_empty() || !self.missing.is_empty()
    }
}

/// Who is running this, for the record: the OS user, and the host if known.
pub fn operator() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into());
    match std::env::var("HOSTNAME") {
        Ok(host) if !host.is_empty() => format!("{user}@{host}"),
        _ => user,
    }
}

pub async fn ensure_table(db: &DatabaseConnection) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let manager = SchemaManager::new(db);
    if manager.has_table("migration_checksums").await? {
        return Ok(());
    }
    manager
        .create_table(
            create_table(backend, MigrationChecksums::Table)
                .if_not_exists()
                .col(
                    ColumnDef::new(MigrationChecksums::Version)
                        .string_len(255)
                        .not_null()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new(MigrationChecksums::Checksum)
                        .char_len(64)
                        .not_null(),
                )
                .col(string(MigrationChecksums::Backend, 16))
                .col(string(MigrationChecksums::Environment, 16))
                .col(string(MigrationChecksums::AppliedBy, 255))
                .col(timestamp(backend, MigrationChecksums::AppliedAt))
                .col(
                    ColumnDef::new(MigrationChecksums::DurationMs)
                        .big_integer()
                        .null(),
                )
                .col(timestamp_null(backend, MigrationChecksums::RepairedAt))
                .col(string_null(MigrationChecksums::RepairedBy, 255))
                .col(
                    ColumnDef::new(MigrationChecksums::PreviousChecksum)
                        .char_len(64)
                        .null(),
                )
                .to_owned(),
        )
        .await?;
    if backend == DbBackend::Postgres {
        // Default privileges would let the application write here; only migrators may.
        db.execute_unprepared(
            "DO $$ BEGIN
               IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_service') THEN
                 REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON migration_checksums FROM app_service;
               END IF;
               IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'data_processor') THEN
                 REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON migration_checksums FROM data_processor;
               END IF;
             END $$;",
        )
        .await?;
    }
    Ok(())
}

/// The recorded checksums, by version. Empty if the table does not exist.
pub async fn read(db: &DatabaseConnection) -> Result<BTreeMap<String, Recorded>, DbErr> {
    if !SchemaManager::new(db)
        .has_table("migration_checksums")
        .await?
    {
        return Ok(BTreeMap::new());
    }
    let query = Query::select()
        .columns([
            MigrationChecksums::Version,
            MigrationChecksums::Checksum,
            MigrationChecksums::Environment,
            MigrationChecksums::AppliedBy,
            MigrationChecksums::DurationMs,
        ])
        .from(MigrationChecksums::Table)
        .to_owned();
    let mut out = BTreeMap::new();
    for row in db.query_all(&query).await? {
        out.insert(
            row.try_get::<String>("", "version")?,
            Recorded {
                checksum: row.try_get("", "checksum")?,
                environment: row.try_get("", "environment")?,
                applied_by: row.try_get("", "applied_by")?,
                duration_ms: row.try_get("", "duration_ms")?,
            },
        );
    }
    Ok(out)
}

/// Compares the applied migrations (in order) with the code's rendering.
pub fn compare(
    applied: &[String],
    recorded: &BTreeMap<String, Recorded>,
    code: &[Rendered],
) -> Drift {
    let mut drift = Drift::default();
    for version in applied {
        match (
            code.iter().find(|r| &r.name == version),
            recorded.get(version),
        ) {
            (None, _) => drift.missing.push(version.clone()),
            (Some(_), None) => drift.unrecorded.push(version.clone()),
            (Some(now), Some(then)) if now.checksum() != then.checksum => {
                drift.modified.push(version.clone())
            }
            _ => {}
        }
    }
    drift
}

pub async fn record(
    db: &DatabaseConnection,
    rendered: &Rendered,
    env: AppEnv,
    duration_ms: Option<i64>,
) -> Result<(), DbErr> {
    forget(db, &rendered.name).await?;
    let backend = match db.get_database_backend() {
        DbBackend::Postgres => "postgres",
        DbBackend::MySql => "mysql",
        _ => "sqlite",
    };
    let insert = Query::insert()
        .into_table(MigrationChecksums::Table)
        .columns([
            MigrationChecksums::Version,
            MigrationChecksums::Checksum,
            MigrationChecksums::Backend,
            MigrationChecksums::Environment,
            MigrationChecksums::AppliedBy,
            MigrationChecksums::AppliedAt,
            MigrationChecksums::DurationMs,
        ])
        .values_panic([
            rendered.name.clone().into(),
            rendered.checksum().into(),
            backend.into(),
            env.as_str().into(),
            operator().into(),
            chrono::Utc::now().into(),
            duration_ms.into(),
        ])
        .to_owned();
    db.execute(&insert).await?;
    Ok(())
}

pub async fn forget(db: &DatabaseConnection, version: &str) -> Result<(), DbErr> {
    let delete = Query::delete()
        .from_table(MigrationChecksums::Table)
        .and_where(Expr::col(MigrationChecksums::Version).eq(version))
        .to_owned();
    db.execute(&delete).await?;
    Ok(())
}

/// Accepts the code's current SQL for an applied migration after a deliberate change,
/// keeping the old checksum and who repaired it, when.
pub async fn repair(
    db: &DatabaseConnection,
    rendered: &Rendered,
    previous: &str,
) -> Result<(), DbErr> {
    let update = Query::update()
        .table(MigrationChecksums::Table)
        .values([
            (MigrationChecksums::Checksum, rendered.checksum().into()),
            (MigrationChecksums::PreviousChecksum, previous.into()),
            (MigrationChecksums::RepairedAt, chrono::Utc::now().into()),
            (MigrationChecksums::RepairedBy, operator().into()),
        ])
        .and_where(Expr::col(MigrationChecksums::Version).eq(rendered.name.as_str()))
        .to_owned();
    db.execute(&update).await?;
    Ok(())
}
