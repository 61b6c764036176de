//! `compliance process-deletions`, `compliance export` and `compliance report`: the
//! operator's privacy jobs.

use super::{CliError, Invocation};
use crate::environment::RecordedEnv;
use clap::Subcommand;
use sea_orm_migration::sea_orm::prelude::Uuid;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use service::compliance;
use service::crypto::KeyRing;
use service::{Deps, RequestMeta, ServiceConfig, ServiceError};
use std::io::Write;
use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq, Eq, Subcommand)]
pub enum ComplianceAction {
    /// Erase every user whose deletion request is past its grace period (and finish
    /// any erasure a previous run left unfinished): pseudonymise the account, delete
    /// its sessions, second factors and passkeys, revoke its API keys, end its
    /// memberships and destroy its data key. Idempotent; run it daily from a scheduler.
    /// Needs FIELD_ENCRYPTION_KEYS outside local and test. Exit code 1 if any failed.
    ProcessDeletions,
    /// Write everything held about one user (no secrets) as one JSON document, and
    /// record the export in the audit trail. Never overwrites a file.
    Export {
        /// The user's email address or id.
        #[arg(long, value_name = "EMAIL|UUID")]
        user: String,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Print the compliance report as JSON: open security incidents, deletion requests
    /// past their due date, consent withdrawals and refused cross-region transfers of
    /// the period, and the verification of every audit chain. Recorded in the audit
    /// trail. Exit code 1 when an audit chain is broken.
    Report {
        /// The period, in days before now, for withdrawals and refused transfers.
        #[arg(long, value_name = "DAYS", default_value_t = 30,
              value_parser = clap::value_parser!(u32).range(1..=3660))]
        days: u32,
    },
}

impl ComplianceAction {
    pub fn name(&self) -> &'static str {
        match self {
            ComplianceAction::ProcessDeletions => "compliance process-deletions",
            ComplianceAction::Export { .. } => "compliance export",
            ComplianceAction::Report { .. } => "compliance report",
        }
    }
}

fn service_error(error: ServiceError) -> CliError {
    match error {
        ServiceError::Db(e) => CliError::Db(e),
        other => CliError::Config(other.to_string()),
    }
}

/// The key ring opens subject keys. The development key only when both the process
/// and the database say local or test (as for the seeder, an unset APP_ENV reaching a
/// local database is local); a database that records another environment needs
/// FIELD_ENCRYPTION_KEYS.
fn deps(inv: &Invocation, recorded: &RecordedEnv) -> Result<Deps, CliError> {
    let ring = match recorded {
        RecordedEnv::Recorded(env) if !env.is_disposable() => KeyRing::from_env(*env),
        RecordedEnv::Unknown(value) => {
            return Err(CliError::Refused(format!(
                "the database records an unknown environment ({value:?})"
            )));
        }
        _ => KeyRing::for_tool(inv.env),
    }
    .map_err(|e| CliError::Config(e.to_string()))?;
    Ok(Deps::new(ServiceConfig::default(), ring))
}

/// The id of the user `who` names: an id as is (if it exists), else an email.
async fn resolve_user(db: &DatabaseConnection, who: &str) -> Result<Uuid, CliError> {
    let backend = db.get_database_backend();
    let (sql, value): (&str, sea_orm_migration::sea_orm::Value) = match Uuid::parse_str(who.trim())
    {
        Ok(id) => ("SELECT id FROM users WHERE id = $1", id.into()),
        Err(_) => (
            "SELECT id FROM users WHERE email = $1",
            who.trim().to_lowercase().into(),
        ),
    };
    let sql = if backend == DbBackend::Postgres {
        sql.to_owned()
    } else {
        sql.replace("$1", "?")
    };
    let row = db
        .query_one_raw(Statement::from_sql_and_values(backend, sql, [value]))
        .await?
        .ok_or_else(|| CliError::Config(format!("no user {who:?} in this database")))?;
    Ok(row.try_get_by_index::<Uuid>(0)?)
}

pub(super) async fn run(
    db: &DatabaseConnection,
    inv: &Invocation,
    recorded: &RecordedEnv,
    action: &ComplianceAction,
    out: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    let deps = deps(inv, recorded)?;
    let meta = RequestMeta::system();
    match action {
        ComplianceAction::ProcessDeletions => {
            let report = compliance::process_due_deletions(db, &deps, &meta)
                .await
                .map_err(service_error)?;
            for erased in &report.completed {
                writeln!(
                    out,
                    "erased user {} (request {})",
                    erased.user_id, erased.request_id
                )?;
                for tenant in &erased.tenants_left_without_owner {
                    writeln!(
                        out,
                        "  tenant {tenant} has no owner now: make another member its owner"
                    )?;
                }
            }
            for failed in &report.failed {
                writeln!(
                    out,
                    "FAILED user {} (request {}): {}",
                    failed.user_id, failed.request_id, failed.error
                )?;
            }
            writeln!(
                out,
                "{} erased, {} failed (failed ones are taken again by the next run)",
                report.completed.len(),
                report.failed.len()
            )?;
            if report.failed.is_empty() {
                Ok(())
            } else {
                Err(CliError::Config(format!(
                    "{} erasure(s) failed",
                    report.failed.len()
                )))
            }
        }
        ComplianceAction::Report { days } => {
            let report = compliance::compliance_report(
                db,
                &deps,
                chrono::Duration::days(i64::from(*days)),
                &meta,
            )
            .await
            .map_err(service_error)?;
            let text = serde_json::to_string_pretty(&report)
                .map_err(|e| CliError::Config(e.to_string()))?;
            writeln!(out, "{text}")?;
            let findings = report["audit_chains"]["findings"]
                .as_array()
                .map_or(0, Vec::len);
            if findings == 0 {
                Ok(())
            } else {
                Err(CliError::AuditTrailBroken(findings))
            }
        }
        ComplianceAction::Export { user, out: path } => {
            if path.exists() {
                return Err(CliError::Config(format!(
                    "{} exists: an export never overwrites a file; choose a new one",
                    path.display()
                )));
            }
            let id = resolve_user(db, user).await?;
            // Created first (readable by its owner only: it is personal data), so a bad
            // path fails before the export is recorded; removed again if the export fails.
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options
                .open(path)
                .map_err(|e| CliError::Config(format!("cannot create {}: {e}", path.display())))?;
            let document = match compliance::export_user_data(db, &deps, id.into(), &meta).await {
                Ok(document) => document,
                Err(e) => {
                    drop(file);
                    std::fs::remove_file(path).ok();
                    return Err(service_error(e));
                }
            };
            let text = serde_json::to_string_pretty(&document)
                .map_err(|e| CliError::Config(e.to_string()))?;
            file.write_all(text.as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            let rows: usize = document["tables"].as_object().map_or(0, |t| {
                t.values().filter_map(|v| v.as_array()).map(Vec::len).sum()
            });
            writeln!(
                out,
                "exported {rows} row(s) about user {id} to {} (recorded as data_export)",
                path.display()
            )?;
            Ok(())
        }
    }
}
