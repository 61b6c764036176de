//! `status` and `tenants status`: what is applied, pending, modified or missing, as
//! text or JSON. Both fail with exit code 3 when CI should stop.

use super::text_table::{align_right, text_table};
use super::{CliError, Invocation, StatusFormat, drift_message};
use crate::environment::RecordedEnv;
use crate::plan::Rendered;
use crate::{tenant_schemas, tracking};
use sea_orm_migration::SchemaManager;
use sea_orm_migration::sea_orm::{DatabaseConnection, DbBackend, EntityTrait};
use sea_orm_migration::seaql_migrations;
use serde::Serialize;
use std::io::{self, Write};

#[derive(Serialize)]
struct StatusReport<'a> {
    environment: &'a str,
    database_environment: String,
    backend: &'a str,
    database: String,
    applied: Vec<AppliedMigration>,
    pending: Vec<String>,
    /// Applied, but edited since: exit code 3.
    modified: Vec<String>,
    /// Applied, but gone from the code: exit code 3.
    missing: Vec<String>,
    /// Applied before checksums were kept; recorded on the next run.
    unrecorded: Vec<String>,
}

#[derive(Serialize)]
struct AppliedMigration {
    name: String,
    /// Unix seconds, as sea-orm records them.
    applied_at: i64,
    checksum: Option<String>,
    environment: Option<String>,
    applied_by: Option<String>,
    duration_ms: Option<i64>,
}

pub(super) async fn print_status(
    db: &DatabaseConnection,
    inv: &Invocation,
    recorded_env: &RecordedEnv,
    code: &[Rendered],
    applied: &[String],
    format: StatusFormat,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let rows = if SchemaManager::new(db).has_table("seaql_migrations").await? {
        seaql_migrations::Entity::find().all(db).await?
    } else {
        Vec::new()
    };
    let checksums = tracking::read(db).await?;
    let drift = tracking::compare(applied, &checksums, code);
    let mut applied_rows: Vec<AppliedMigration> = rows
        .iter()
        .map(|row| {
            let recorded = checksums.get(&row.version);
            AppliedMigration {
                name: row.version.clone(),
                applied_at: row.applied_at,
                checksum: recorded.map(|r| r.checksum.clone()),
                environment: recorded.map(|r| r.environment.clone()),
                applied_by: recorded.map(|r| r.applied_by.clone()),
                duration_ms: recorded.and_then(|r| r.duration_ms),
            }
        })
        .collect();
    applied_rows.sort_by(|a, b| a.name.cmp(&b.name));
    let report = StatusReport {
        environment: inv.env.as_str(),
        database_environment: recorded_env.to_string(),
        backend: match db.get_database_backend() {
            DbBackend::Postgres => "postgres",
            DbBackend::MySql => "mysql",
            _ => "sqlite",
        },
        database: inv.target.database(),
        applied: applied_rows,
        pending: code
            .iter()
            .filter(|m| !applied.contains(&m.name))
            .map(|m| m.name.clone())
            .collect(),
        modified: drift.modified.clone(),
        missing: drift.missing.clone(),
        unrecorded: drift.unrecorded.clone(),
    };
    match format {
        StatusFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, &report).map_err(io::Error::from)?;
            writeln!(out)?;
        }
        StatusFormat::Text => {
            let mut table = text_table([
                "state",
                "migration",
                "applied at (UTC)",
                "environment",
                "applied by",
                "took ms",
            ]);
            align_right(&mut table, &[5]);
            let dash = || "-".to_owned();
            for m in code {
                let state = if drift.modified.contains(&m.name) {
                    "MODIFIED"
                } else if applied.contains(&m.name) {
                    "applied"
                } else {
                    "pending"
                };
                let row = report.applied.iter().find(|a| a.name == m.name);
                table.add_row(vec![
                    state.to_owned(),
                    m.name.clone(),
                    row.and_then(|a| chrono::DateTime::from_timestamp(a.applied_at, 0))
                        .map_or_else(dash, |at| at.format("%Y-%m-%d %H:%M:%S").to_string()),
                    row.and_then(|a| a.environment.clone()).unwrap_or_else(dash),
                    row.and_then(|a| a.applied_by.clone()).unwrap_or_else(dash),
                    row.and_then(|a| a.duration_ms)
                        .map_or_else(dash, |ms| ms.to_string()),
                ]);
            }
            for name in &drift.missing {
                table.add_row(vec![
                    "MISSING".to_owned(),
                    name.clone(),
                    dash(),
                    dash(),
                    dash(),
                    dash(),
                ]);
            }
            writeln!(out, "{table}")?;
            writeln!(
                out,
                "{} applied, {} pending, {} modified, {} missing",
                report.applied.len(),
                report.pending.len(),
                report.modified.len(),
                report.missing.len()
            )?;
        }
    }
    if drift.blocks() {
        return Err(CliError::Drift(drift_message(&drift)));
    }
    Ok(())
}

pub(super) async fn print_tenant_status(
    db: &DatabaseConnection,
    inv: &Invocation,
    format: StatusFormat,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let statuses = tenant_schemas::status(db, &inv.target).await?;
    match format {
        StatusFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, &statuses).map_err(io::Error::from)?;
            writeln!(out)?;
        }
        StatusFormat::Text => {
            let mut table = text_table(["tenant", "isolation", "location", "state"]);
            for s in &statuses {
                let state = if !s.provisioned {
                    "NOT PROVISIONED".to_owned()
                } else if s.pending.is_empty() {
                    format!("up to date ({} applied)", s.applied)
                } else {
                    format!("{} pending", s.pending.len())
                };
                table.add_row(vec![
                    s.tenant.slug.clone(),
                    s.tenant.isolation_level.to_string(),
                    s.tenant.location.to_string(),
                    state,
                ]);
            }
            if !statuses.is_empty() {
                writeln!(out, "{table}")?;
            }
            if statuses.is_empty() {
                writeln!(out, "no schema- or database-isolated tenants")?;
            }
        }
    }
    let behind: Vec<&str> = statuses
        .iter()
        .filter(|s| !s.provisioned || !s.pending.is_empty())
        .map(|s| s.tenant.slug.as_str())
        .collect();
    if !behind.is_empty() {
        return Err(CliError::Drift(format!(
            "tenants behind the code: {} (run `tenants up`)",
            behind.join(", ")
        )));
    }
    Ok(())
}
