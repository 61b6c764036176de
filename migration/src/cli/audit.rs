//! `audit verify` and `audit checkpoint`: the audit trail's hash chains checked, and
//! their heads signed into a file kept outside the database.

use super::{CliError, Invocation, StatusFormat};
use crate::environment::RecordedEnv;
use clap::Subcommand;
use sea_orm_migration::sea_orm::DatabaseConnection;
use sea_orm_migration::sea_orm::prelude::Uuid;
use service::ServiceError;
use service::audit::checkpoint::{self, Checkpoint, CheckpointKey};
use service::audit::verify::{self, ChainScope, VerifyReport};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Clone, Debug, PartialEq, Eq, Subcommand)]
pub enum AuditAction {
    /// Recompute every link of the audit chains (or of one) and report the first
    /// broken link, gap or moved head of each; exit code 1 when anything is found.
    /// Reads one snapshot: safe beside the running application.
    Verify {
        /// One chain only: a tenant's id, or a user's id for their events outside any
        /// tenant (the nil UUID is the chain of events with neither).
        #[arg(long, value_name = "UUID")]
        chain: Option<Uuid>,
        /// Also require each chain to still hold the link this signed checkpoint
        /// recorded: catches a chain rewritten, truncated or reordered by someone with
        /// full database access.
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
        /// The checkpoint signer's public key (64 hex digits). Default: the public half
        /// of AUDIT_CHECKPOINT_KEY / AUDIT_CHECKPOINT_KEY_FILE (the development key in
        /// local and test). Never the key the file names.
        #[arg(long, value_name = "HEX", requires = "checkpoint")]
        public_key: Option<String>,
        #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
        format: StatusFormat,
    },
    /// Verify every chain, then sign all chain heads with Ed25519 (AUDIT_CHECKPOINT_KEY
    /// or AUDIT_CHECKPOINT_KEY_FILE; the development key in local and test) into FILE.
    /// Refuses to sign a trail that does not verify, and to overwrite a file.
    Checkpoint {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

impl AuditAction {
    pub fn name(&self) -> &'static str {
        match self {
            AuditAction::Verify { .. } => "audit verify",
            AuditAction::Checkpoint { .. } => "audit checkpoint",
        }
    }
}

/// The checkpoint key for this run. The public development key only when both the
/// process and the database say local or test: a production database reached with
/// `APP_ENV` unset (local) must not be signed, or checked, with a key anyone has.
fn signing_key(inv: &Invocation, recorded: &RecordedEnv) -> Result<CheckpointKey, CliError> {
    let env = match recorded {
        RecordedEnv::Recorded(env) if !env.is_disposable() => *env,
        RecordedEnv::Unknown(value) => {
            return Err(CliError::Refused(format!(
                "the database records an unknown environment ({value:?})"
            )));
        }
        _ => inv.env,
    };
    CheckpointKey::from_env(env).map_err(|e| CliError::Config(e.to_string()))
}

fn service_error(error: ServiceError) -> CliError {
    match error {
        ServiceError::Db(e) => CliError::Db(e),
        other => CliError::Config(other.to_string()),
    }
}

pub(super) async fn run(
    db: &DatabaseConnection,
    inv: &Invocation,
    recorded: &RecordedEnv,
    action: &AuditAction,
    out: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    match action {
        AuditAction::Verify {
            chain,
            checkpoint,
            public_key,
            format,
        } => {
            let scope = chain.map_or(ChainScope::All, ChainScope::One);
            let started = Instant::now();
            let report = match checkpoint {
                Some(path) => {
                    let file = read_checkpoint(path)?;
                    let key = match public_key {
                        Some(hex) => checkpoint::public_key_from_hex(hex)
                            .map_err(|e| CliError::Config(e.to_string()))?,
                        None => signing_key(inv, recorded)?.verifying_key(),
                    };
                    checkpoint::verify_against_checkpoint(db, scope, &file, &key, |_| {})
                        .await
                        .map_err(service_error)?
                }
                None => verify::verify(db, scope, None, |_| {})
                    .await
                    .map_err(service_error)?,
            };
            print_report(&report, started.elapsed().as_secs_f64(), *format, out)?;
            if report.is_intact() {
                Ok(())
            } else {
                Err(CliError::AuditTrailBroken(report.findings.len()))
            }
        }
        AuditAction::Checkpoint { out: path } => {
            let key = signing_key(inv, recorded)?;
            // Fail before the walk, not after it.
            if path.exists() {
                return Err(CliError::Config(format!(
                    "{} exists: a checkpoint never overwrites another; choose a new file",
                    path.display()
                )));
            }
            let (signed, report) = checkpoint::sign_checkpoint(db, &key, chrono::Utc::now())
                .await
                .map_err(service_error)?;
            let text = serde_json::to_string_pretty(&signed)
                .map_err(|e| CliError::Config(e.to_string()))?;
            write_new(path, &text)?;
            writeln!(
                out,
                "signed {} chain head(s) ({} row(s) verified) at {} with key {}\nwrote {}",
                signed.chains.len(),
                report.rows,
                signed.signed_at.to_rfc3339(),
                signed.public_key,
                path.display()
            )?;
            writeln!(
                out,
                "keep it outside this database; later: audit verify --checkpoint {}",
                path.display()
            )?;
            Ok(())
        }
    }
}

fn read_checkpoint(path: &Path) -> Result<Checkpoint, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Config(format!("cannot read {}: {e}", path.display())))?;
    Checkpoint::parse(&text).map_err(|e| CliError::Config(format!("{}: {e}", path.display())))
}

fn write_new(path: &Path, text: &str) -> Result<(), CliError> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| CliError::Config(format!("cannot create {}: {e}", path.display())))?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    Ok(())
}

fn print_report(
    report: &VerifyReport,
    seconds: f64,
    format: StatusFormat,
    out: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    if format == StatusFormat::Json {
        let json = serde_json::json!({
            "intact": report.is_intact(),
            "chains": report.chains,
            "rows": report.rows,
            "seconds": seconds,
            "findings": report.findings,
        });
        writeln!(out, "{json}")?;
        return Ok(());
    }
    let rate = if seconds > 0.0 {
        report.rows as f64 / seconds
    } else {
        0.0
    };
    writeln!(
        out,
        "verified {} chain(s), {} row(s) in {seconds:.2} s ({rate:.0} rows/s): {}",
        report.chains,
        report.rows,
        if report.is_intact() {
            "intact".to_owned()
        } else {
            format!("{} chain(s) fail", report.findings.len())
        }
    )?;
    for finding in &report.findings {
        writeln!(out, "  {finding}")?;
    }
    Ok(())
}
