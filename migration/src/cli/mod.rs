//! The migration command line: a drop-in target of `sea-orm-cli migrate` (same
//! subcommands and flags) with the environment safety rules around it.
//!
//! `main.rs` only resolves the process environment into an [`Invocation`]; everything
//! else lives here so tests can drive it with a scripted terminal.

use crate::Migrator;
use crate::environment::{AppEnv, read_recorded_env, record_env_if_absent};
use crate::lint::{self, LintError};
use crate::lock::{LockError, MigrationLock};
use crate::plan::{self, Direction, Rendered};
use crate::tenant_schemas;
use crate::tracking;
use clap::{Parser, Subcommand, ValueEnum};
use sea_orm_migration::prelude::{Alias, Table};
use sea_orm_migration::sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait,
};
use sea_orm_migration::seaql_migrations;
use sea_orm_migration::{MigrationTrait, MigratorTrait, SchemaManager};
use service::connection::{self, ConnectError, DbTarget, PoolSettings};
use std::io::{self, Write};
use std::time::{Duration, Instant};

mod audit;
mod compliance;
mod database;
pub mod insights;
mod keys;
pub mod safety;
mod status;
pub mod text_table;

pub use audit::AuditAction;
pub use compliance::ComplianceAction;
pub use database::DatabaseAction;
pub use keys::KeysAction;

use insights::{InsightsFormat, InsightsOptions, print_insights};
use safety::{check_safety, write_banner};
use status::{print_status, print_tenant_status};

const AFTER_HELP: &str = "\
Environment:
  APP_ENV (or MIGRATION_ENV)  local (default), test, development, staging, production.
                              Loads .env.<env>, then .env, from the current directory.
  DATABASE_URL                postgres://..., mysql://... (MariaDB too) or sqlite://...?mode=rwc
  DB_BACKEND, DB_HOST, DB_PORT, DB_USERNAME, DB_PASSWORD, DB_NAME
                              used when DATABASE_URL is not set (DB_BACKEND defaults to postgres)
  DATABASE_SCHEMA             PostgreSQL schema (default public)
  DB_CONNECT_TIMEOUT          seconds to keep trying to connect (default 10)
  DB_PASSWORD_FILE            read the password from this file (e.g. a mounted secret)
  DB_PASSWORD_COMMAND         run this command (e.g. a secret manager's CLI); its output is
                              the password and is never printed
  DB_SSL_ENABLED, DB_SSL_CA, DB_SSL_CERT, DB_SSL_KEY
                              verified TLS (PostgreSQL verify-full, MariaDB VERIFY_IDENTITY)

Safety:
  local and test run without questions. development, staging and production ask the
  operator to type MIGRATE DEV, MIGRATE STAGING or MIGRATE PRODUCTION; without a
  terminal, pass the same phrase with --confirm. fresh, refresh and reset are refused
  in production whatever is typed. A database remembers its environment: a command
  that writes is refused when APP_ENV names another one.

Operations:
  On PostgreSQL each migration waits at most --table-lock-timeout-ms for a table lock
  (default 5000; env MIGRATION_TABLE_LOCK_TIMEOUT_MS), is rolled back when it times out,
  and is tried again --table-lock-retries times (default 3; env MIGRATION_TABLE_LOCK_RETRIES).
  Runs that write hold a database lock (PostgreSQL advisory lock, MariaDB GET_LOCK, a lock
  on the file <database>.migrate-lock on SQLite); a second migrator waits up to
  --lock-timeout and names the holder. A process that dies frees its lock.
  Every applied migration's SQL is checksummed; an edited or missing applied migration
  stops the run (exit code 3) until restored or accepted with `repair`.
  `lint` checks the PostgreSQL SQL of migrations with squawk (pip install squawk-cli);
  a finding fails unless the migration accepts it with a reason (see README).

Examples:
  cargo run -p migration -- status
  cargo run -p migration -- up
  cargo run -p migration -- down -n 1
  APP_ENV=staging cargo run -p migration -- up --confirm \"MIGRATE STAGING\"
  cargo run -p migration -- status --format json
  cargo run -p migration -- insights --long-running-secs 30
  cargo run -p migration -- up --dry-run > pending.sql
  cargo run -p migration -- snapshot > docs/schema.md
  cargo run -p migration -- lint --all
  cargo run -p migration -- database create
  cargo run -p migration -- keys status
  APP_ENV=production cargo run -p migration -- keys reencrypt --confirm \"MIGRATE PRODUCTION\"
  cargo run -p migration -- tenants up
  sea-orm-cli migrate up          (runs this binary)";

#[derive(Debug, Parser)]
#[command(
    name = "migration",
    version,
    about = "Apply, roll back and inspect schema migrations, safely per environment",
    after_help = AFTER_HELP
)]
pub struct Cli {
    /// Show debug messages, including every SQL statement.
    #[arg(short = 'v', long, global = true)]
    pub verbose: bool,

    /// PostgreSQL schema to migrate (default `public`; env DATABASE_SCHEMA). Ignored elsewhere.
    #[arg(short = 's', long, global = true)]
    pub database_schema: Option<String>,

    /// Database URL (env DATABASE_URL; or the DB_* variables).
    #[arg(short = 'u', long, global = true)]
    pub database_url: Option<String>,

    /// The confirmation phrase, for runs without a terminal (e.g. "MIGRATE STAGING").
    #[arg(long, global = true, value_name = "PHRASE")]
    pub confirm: Option<String>,

    /// How long to wait for another migrator's lock on the database.
    #[arg(long, global = true, value_name = "SECS", default_value_t = 60)]
    pub lock_timeout: u64,

    /// PostgreSQL: how long one migration statement may wait for a table lock before
    /// the migration is rolled back and tried again, so an ALTER TABLE queued behind a
    /// long transaction does not stall every query behind it [default: env
    /// MIGRATION_TABLE_LOCK_TIMEOUT_MS, else 5000].
    #[arg(long, global = true, value_name = "MS")]
    pub table_lock_timeout_ms: Option<u64>,

    /// PostgreSQL: how many times a migration that hit the table lock timeout is tried
    /// again, after 0.5 s, 1 s, 2 s, ... [default: env MIGRATION_TABLE_LOCK_RETRIES, else 3].
    #[arg(long, global = true, value_name = "N")]
    pub table_lock_retries: Option<u32>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Clone, Debug, Subcommand)]
pub enum Command {
    /// Apply pending migrations (the default command).
    Up {
        /// Number of pending migrations to apply (default: all).
        #[arg(short, long)]
        num: Option<u32>,
        /// Print the SQL each pending migration would run on this backend; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Roll back applied migrations, newest first.
    Down {
        /// Number of applied migrations to roll back.
        #[arg(short, long, default_value_t = 1)]
        num: u32,
        /// Print the SQL each rollback would run; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// List applied and pending migrations; changes nothing.
    Status {
        #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
        format: StatusFormat,
    },
    /// Drop EVERY table in the database, then apply all migrations. Not in production.
    Fresh,
    /// Roll back all migrations, then apply them again. Not in production.
    Refresh,
    /// Roll back all migrations. Not in production.
    Reset,
    /// Accept the current SQL of applied migrations after a deliberate edit (recorded
    /// with who and when), so runs stop reporting them as modified.
    Repair,
    /// Print docs/schema.md for this (PostgreSQL, fully migrated) database.
    Snapshot,
    /// Check migrations, rendered to PostgreSQL SQL, with squawk for statements that lock
    /// or rewrite tables: the pending ones, the ones named, or --all. Exits 1 when a
    /// finding is not accepted.
    Lint {
        /// Migrations to check, by name; no database needed.
        #[arg(conflicts_with = "all")]
        migrations: Vec<String>,
        /// Check every migration; no database needed.
        #[arg(long)]
        all: bool,
        /// `text` for people, `json` (every finding, with how it is accepted) for scripts.
        #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
        format: StatusFormat,
    },
    /// Create or drop the configured database itself (create is idempotent; drop is
    /// refused in staging and production).
    Database {
        #[command(subcommand)]
        action: DatabaseAction,
    },
    /// Show how the database is doing, from the server's own statistics; changes nothing.
    ///
    /// PostgreSQL: table and index sizes with row estimates, unused and duplicate
    /// indexes, cache hit ratio, connections by state and user, long-running queries,
    /// sessions idle in a transaction, lock waits with the sessions blocking them, and
    /// the slowest statements when the pg_stat_statements extension is installed.
    /// MariaDB: the same from information_schema and, when it is ON, performance_schema.
    /// SQLite keeps no such statistics. Every query runs in a READ ONLY transaction; a
    /// part the connected user may not read is shown as not available, with the reason.
    #[command(after_help = "\
Examples:
  cargo run -p migration -- insights
  cargo run -p migration -- insights --format json | jq '.unused_indexes.rows'
  cargo run -p migration -- insights --long-running-secs 5 --limit 50

Slowest statements on PostgreSQL need pg_stat_statements: add it to
shared_preload_libraries (ALTER SYSTEM SET shared_preload_libraries =
'pg_stat_statements', then restart the server), then, as the database's owner,
CREATE EXTENSION pg_stat_statements. Index scan counts and unused indexes count
from the server's last statistics reset (or restart): judge them after a
representative stretch of traffic.")]
    Insights {
        /// `table` for people, `json` (one key per section) for scripts and monitoring.
        #[arg(long, value_enum, default_value_t = InsightsFormat::Table)]
        format: InsightsFormat,
        /// List queries running, and transactions left open, at least this long.
        #[arg(long, value_name = "SECS", default_value_t = 60)]
        long_running_secs: u64,
        /// Rows per list (largest tables and indexes, slowest statements, ...).
        #[arg(long, value_name = "N", default_value_t = 20)]
        limit: u32,
    },
    /// The tamper-evident audit trail: verify its hash chains, sign checkpoints.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Privacy operations: the erasure job for due deletion requests, user data export.
    Compliance {
        #[command(subcommand)]
        action: ComplianceAction,
    },
    /// The field-encryption key ring (FIELD_ENCRYPTION_KEYS): its ids, and moving stored
    /// values to the current key after a rotation.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Provision and migrate tenants isolated in their own schema or database (PostgreSQL).
    Tenants {
        #[command(subcommand)]
        action: TenantAction,
    },
    /// Create a new, empty migration file and register it in src/lib.rs.
    Generate {
        /// Name of the new migration, prefixed by its domain, e.g. `identity_add_mfa_factors`.
        migration_name: String,
        /// Timestamp the file name in UTC (the default).
        #[arg(long, default_value_t = true, conflicts_with = "local_time")]
        universal_time: bool,
        /// Timestamp the file name in local time.
        #[arg(long)]
        local_time: bool,
    },
}

#[derive(Clone, Debug, Subcommand)]
pub enum TenantAction {
    /// Create one tenant's schema or database (if missing) and apply its migrations.
    Provision {
        /// The tenant's slug.
        slug: String,
    },
    /// Provision and migrate every schema- or database-isolated tenant.
    Up,
    /// Where every isolated tenant stands; exits 3 if any is behind.
    Status {
        #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
        format: StatusFormat,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StatusFormat {
    Text,
    Json,
}

impl Command {
    pub fn name(&self) -> &'static str {
        match self {
            Command::Up { .. } => "up",
            Command::Down { .. } => "down",
            Command::Status { .. } => "status",
            Command::Fresh => "fresh",
            Command::Refresh => "refresh",
            Command::Reset => "reset",
            Command::Repair => "repair",
            Command::Snapshot => "snapshot",
            Command::Lint { .. } => "lint",
            Command::Database { action } => action.name(),
            Command::Keys { action } => action.name(),
            Command::Audit { action } => action.name(),
            Command::Compliance { action } => action.name(),
            Command::Insights { .. } => "insights",
            Command::Tenants {
                action: TenantAction::Provision { .. },
            } => "tenants provision",
            Command::Tenants {
                action: TenantAction::Up,
            } => "tenants up",
            Command::Tenants {
                action: TenantAction::Status { .. },
            } => "tenants status",
            Command::Generate { .. } => "generate",
        }
    }

    /// Commands that drop tables wholesale; refused in production.
    pub fn is_destructive(&self) -> bool {
        matches!(self, Command::Fresh | Command::Refresh | Command::Reset)
    }

    pub fn writes(&self) -> bool {
        !matches!(
            self,
            Command::Status { .. }
                | Command::Generate { .. }
                | Command::Snapshot
                | Command::Lint { .. }
                | Command::Insights { .. }
                | Command::Keys {
                    action: KeysAction::Status
                }
                | Command::Audit { .. }
                // Append only their own audit row.
                | Command::Compliance {
                    action: ComplianceAction::Export { .. } | ComplianceAction::Report { .. }
                }
                | Command::Tenants {
                    action: TenantAction::Status { .. }
                }
                | Command::Up { dry_run: true, .. }
                | Command::Down { dry_run: true, .. }
        )
    }
}

/// Everything a run needs, already resolved from flags and the environment.
#[derive(Debug)]
pub struct Invocation {
    pub env: AppEnv,
    pub target: DbTarget,
    /// PostgreSQL `search_path`.
    pub schema: Option<String>,
    pub command: Command,
    pub confirm: Option<String>,
    /// How long to wait for another migrator's lock.
    pub lock_timeout: Duration,
    /// PostgreSQL: the table lock timeout of each migration, and its retries.
    pub table_locks: TableLocks,
}

impl Invocation {
    /// What the writing part of the run needs.
    pub fn settings(&self) -> RunSettings {
        RunSettings {
            env: self.env,
            lock_timeout: self.lock_timeout,
            table_locks: self.table_locks,
        }
    }
}

/// How long a PostgreSQL migration statement waits for a table lock (`lock_timeout`),
/// and how many times a migration that timed out is rolled back and tried again. Only
/// PostgreSQL applies it: its migrations run in a transaction, so a retry starts clean.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableLocks {
    pub timeout: Duration,
    pub retries: u32,
}

impl TableLocks {
    pub const DEFAULT: TableLocks = TableLocks {
        timeout: Duration::from_secs(5),
        retries: 3,
    };

    /// The flags if given, else `MIGRATION_TABLE_LOCK_TIMEOUT_MS` and
    /// `MIGRATION_TABLE_LOCK_RETRIES` from `lookup`, else the defaults.
    pub fn resolve(
        timeout_ms: Option<u64>,
        retries: Option<u32>,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, CliError> {
        fn from_env<T: std::str::FromStr>(
            lookup: &dyn Fn(&str) -> Option<String>,
            var: &str,
            what: &str,
        ) -> Result<Option<T>, CliError> {
            match lookup(var).filter(|v| !v.trim().is_empty()) {
                None => Ok(None),
                Some(raw) => raw
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| CliError::Config(format!("{var}={raw:?} is not {what}"))),
            }
        }
        let timeout_ms = match timeout_ms {
            Some(ms) => Some(ms),
            None => from_env(
                lookup,
                "MIGRATION_TABLE_LOCK_TIMEOUT_MS",
                "a whole number of milliseconds",
            )?,
        };
        let retries = match retries {
            Some(n) => Some(n),
            None => from_env(lookup, "MIGRATION_TABLE_LOCK_RETRIES", "a whole number")?,
        };
        Ok(Self {
            timeout: timeout_ms.map_or(Self::DEFAULT.timeout, Duration::from_millis),
            retries: retries.unwrap_or(Self::DEFAULT.retries),
        })
    }

    /// The pause before retry number `attempt` (1, 2, ...): 0.5 s, 1 s, 2 s, ... up to 10 s.
    fn backoff(attempt: u32) -> Duration {
        (Duration::from_millis(500) * 2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(Duration::from_secs(10))
    }
}

impl Default for TableLocks {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Everything the writing part of a run needs besides the command: the CLI builds it
/// from its flags ([`Invocation::settings`]), the seeder from its environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunSettings {
    pub env: AppEnv,
    /// How long to wait for another migrator's lock.
    pub lock_timeout: Duration,
    pub table_locks: TableLocks,
}

impl RunSettings {
    /// The CLI's defaults for `env`.
    pub fn new(env: AppEnv) -> Self {
        Self {
            env,
            lock_timeout: Duration::from_secs(60),
            table_locks: TableLocks::DEFAULT,
        }
    }
}

/// Asks the operator for the confirmation phrase.
pub trait Prompt {
    /// Whether a person can answer.
    fn is_interactive(&self) -> bool;
    fn ask(&mut self, question: &str) -> io::Result<String>;
}

/// No one to ask: only a phrase given with `--confirm` confirms.
pub struct NoTerminal;

impl Prompt for NoTerminal {
    fn is_interactive(&self) -> bool {
        false
    }

    fn ask(&mut self, _question: &str) -> io::Result<String> {
        Err(io::Error::other("no terminal to ask"))
    }
}

/// The real terminal: stdin if it is one.
pub struct Terminal;

impl Prompt for Terminal {
    fn is_interactive(&self) -> bool {
        use std::io::IsTerminal;
        io::stdin().is_terminal()
    }

    fn ask(&mut self, question: &str) -> io::Result<String> {
        eprint!("{question}");
        io::stderr().flush()?;
        let mut line = String::new();
        io::stdin().read_line(&mut line)?;
        Ok(line)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A safety rule stopped the command before it changed anything.
    #[error("refused: {0}")]
    Refused(String),
    /// `audit verify` found tampering, gaps or moved heads (listed above the error).
    #[error("the audit trail does not verify: {0} chain(s) fail")]
    AuditTrailBroken(usize),
    #[error("cannot connect to {target}: {source}")]
    Connect { target: String, source: DbErr },
    #[error(transparent)]
    Db(#[from] DbErr),
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("{0}")]
    Config(String),
    /// Applied migrations differ from the code: nothing ran.
    #[error("{0}")]
    Drift(String),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Lint(#[from] LintError),
    /// Squawk's findings that no migration and no baseline entry accepts.
    #[error("lint failed: {0}")]
    LintFailed(String),
    /// PostgreSQL: a migration kept waiting for a table lock past the lock timeout.
    #[error(
        "{migration} was rolled back: it waited more than {timeout:?} for a table lock held by \
         another session, {attempts} time(s); nothing of it was applied. Find the blocking \
         session (pg_stat_activity, pg_locks) and end it, or run again when it is done \
         (--table-lock-timeout-ms and --table-lock-retries set the wait)"
    )]
    TableLockTimeout {
        migration: String,
        timeout: Duration,
        attempts: u32,
    },
}

impl CliError {
    /// 2 for a refusal (nothing changed), 1 for a failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Refused(_) => 2,
            CliError::Drift(_) => 3,
            _ => 1,
        }
    }
}

/// Connects as every command does: one connection (the migration lock is a session
/// lock, and every statement of the run must come from the session that holds it), no
/// statement timeout, the schema first on the search path.
pub async fn connect(
    target: &DbTarget,
    schema: Option<&str>,
) -> Result<DatabaseConnection, CliError> {
    let mut settings = PoolSettings::tool("migration");
    settings.schema = Some(schema.unwrap_or("public").to_owned());
    connect_with(target, &settings).await
}

/// [`connect`] for commands that only read: a session that cannot write, and on SQLite
/// a file opened as it is (no journal-mode change, no new file).
pub async fn connect_read_only(
    target: &DbTarget,
    schema: Option<&str>,
) -> Result<DatabaseConnection, CliError> {
    let mut settings = PoolSettings::tool("migration");
    settings.schema = Some(schema.unwrap_or("public").to_owned());
    settings.read_only = true;
    connect_with(target, &settings).await
}

async fn connect_with(
    target: &DbTarget,
    settings: &PoolSettings,
) -> Result<DatabaseConnection, CliError> {
    connection::connect(target, settings)
        .await
        .map_err(|error| match error {
            ConnectError::Connect { target, source } => CliError::Connect { target, source },
            config @ ConnectError::Config(_) => CliError::Config(config.to_string()),
        })
}

/// Runs one database command: banner, safety checks, the command, the marker.
pub async fn execute(
    inv: &Invocation,
    prompt: &mut (dyn Prompt + Send),
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    if let Command::Database { action } = &inv.command {
        // The database may not exist yet: these connect to the server instead.
        return database::run(inv, *action, prompt, out, err).await;
    }
    let db = if matches!(inv.command, Command::Insights { .. }) {
        connect_read_only(&inv.target, inv.schema.as_deref()).await?
    } else {
        connect(&inv.target, inv.schema.as_deref()).await?
    };
    let result = execute_on(&db, inv, prompt, out, err).await;
    db.close().await.ok();
    result
}

async fn execute_on(
    db: &DatabaseConnection,
    inv: &Invocation,
    prompt: &mut (dyn Prompt + Send),
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    let recorded = read_recorded_env(db).await?;
    let backend = db.get_database_backend();
    let code = plan::render_all_up(backend).await?;
    let applied = applied_versions(db).await?;
    let pending: Vec<&Rendered> = code.iter().filter(|m| !applied.contains(&m.name)).collect();
    let pending_names: Vec<String> = pending.iter().map(|m| m.name.clone()).collect();

    write_banner(err, inv, &recorded, &pending_names)?;

    match &inv.command {
        Command::Tenants {
            action: TenantAction::Status { format },
        } => {
            return print_tenant_status(db, inv, *format, out).await;
        }
        Command::Keys {
            action: KeysAction::Status,
        } => {
            return keys::status(inv, out);
        }
        Command::Audit { action } => {
            if !pending.is_empty() {
                return Err(CliError::Config(
                    "apply the pending migrations first: the audit chains live in the schema they complete"
                        .into(),
                ));
            }
            return audit::run(db, inv, &recorded, action, out).await;
        }
        Command::Compliance {
            action: action @ (ComplianceAction::Export { .. } | ComplianceAction::Report { .. }),
        } => {
            if !pending.is_empty() {
                return Err(CliError::Config(
                    "apply the pending migrations first: the export reads the tables they create"
                        .into(),
                ));
            }
            return compliance::run(db, inv, &recorded, action, out).await;
        }
        Command::Snapshot => {
            if !pending.is_empty() {
                return Err(CliError::Config(
                    "the snapshot describes the latest schema: apply the pending migrations first"
                        .into(),
                ));
            }
            write!(out, "{}", crate::snapshot::markdown(db).await?)?;
            return Ok(());
        }
        Command::Lint { format, .. } => {
            return run_lint(Some(&pending_names), *format, out).await;
        }
        Command::Insights {
            format,
            long_running_secs,
            limit,
        } => {
            let options = InsightsOptions {
                format: *format,
                long_running: Duration::from_secs(*long_running_secs),
                limit: *limit,
            };
            return print_insights(db, inv, &options, out).await;
        }
        Command::Status { format } => {
            return print_status(db, inv, &recorded, &code, &applied, *format, out).await;
        }
        Command::Up { num, dry_run: true } => {
            let take = num.map_or(pending.len(), |n| n as usize);
            for migration in pending.iter().take(take) {
                writeln!(out, "-- {} (up)\n{}", migration.name, migration.script())?;
            }
            return Ok(());
        }
        Command::Down { num, dry_run: true } => {
            for version in applied.iter().rev().take(*num as usize) {
                let migration = Migrator::migrations()
                    .into_iter()
                    .find(|m| m.name() == version)
                    .ok_or_else(|| {
                        CliError::Drift(format!(
                            "applied migration {version} is missing from the code"
                        ))
                    })?;
                let rendered = plan::render(backend, migration.as_ref(), Direction::Down).await?;
                writeln!(out, "-- {} (down)\n{}", rendered.name, rendered.script())?;
            }
            return Ok(());
        }
        _ => {}
    }

    check_safety(inv, &recorded, prompt, err)?;
    if let Command::Keys {
        action: KeysAction::Reencrypt { batch },
    } = &inv.command
    {
        if !pending.is_empty() {
            return Err(CliError::Config(
                "apply the pending migrations first: re-encryption walks the tables they create"
                    .into(),
            ));
        }
        // Compare-and-set per row: safe beside the application, no migration lock.
        return keys::run_reencrypt(db, inv, *batch, out).await;
    }
    if let Command::Compliance { action } = &inv.command {
        if !pending.is_empty() {
            return Err(CliError::Config(
                "apply the pending migrations first: the erasure job changes the tables they create"
                    .into(),
            ));
        }
        // One transaction per erasure, each conditional: safe beside the application.
        return compliance::run(db, inv, &recorded, action, out).await;
    }
    run_writing(
        db,
        &inv.settings(),
        &inv.target,
        &inv.command,
        &code,
        out,
        err,
    )
    .await
    .map(|_| ())
}

/// `lint`: checks `names` (every migration when `None`, in the order they run) with
/// squawk and prints the report; fails when a finding is not accepted.
pub async fn run_lint(
    names: Option<&[String]>,
    format: StatusFormat,
    out: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    let migrations = Migrator::migrations();
    let chosen: Vec<&dyn MigrationTrait> = match names {
        None => migrations.iter().map(AsRef::as_ref).collect(),
        Some(names) => {
            let unknown: Vec<&str> = names
                .iter()
                .filter(|name| !migrations.iter().any(|m| m.name() == name.as_str()))
                .map(String::as_str)
                .collect();
            if !unknown.is_empty() {
                return Err(CliError::Config(format!(
                    "no migration named {} (see `status`)",
                    unknown.join(", ")
                )));
            }
            migrations
                .iter()
                .filter(|m| names.iter().any(|name| name == m.name()))
                .map(AsRef::as_ref)
                .collect()
        }
    };
    if chosen.is_empty() {
        writeln!(out, "lint: no pending migrations")?;
        return Ok(());
    }
    let report = lint::lint_migrations(&chosen).await?;
    match format {
        StatusFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, &report).map_err(io::Error::other)?;
            writeln!(out)?;
        }
        StatusFormat::Text => report.write_text(out)?,
    }
    // Every migration was checked: a baseline entry for none of them is stale.
    if names.is_none() && !report.baseline_not_linted.is_empty() {
        return Err(CliError::LintFailed(format!(
            "the baseline lists migrations that do not exist: {}",
            report.baseline_not_linted.join(", ")
        )));
    }
    let failed: Vec<&str> = report.failed().map(|m| m.name.as_str()).collect();
    if !failed.is_empty() {
        return Err(CliError::LintFailed(format!(
            "{} migration(s) have findings that are not accepted: {}",
            failed.len(),
            failed.join(", ")
        )));
    }
    Ok(())
}

/// Applies every pending migration exactly as `up` does after its safety checks: on
/// its own single connection, under the migrator lock, stopping on drift, with a
/// checksum per migration, the table lock timeout and the environment marker. The
/// seeder migrates through this, so a database has one history whoever migrated it.
/// Returns how many migrations were applied (0 when another run got there first).
pub async fn apply_pending(
    target: &DbTarget,
    schema: Option<&str>,
    settings: &RunSettings,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> Result<usize, CliError> {
    let db = connect(target, schema).await?;
    let result = async {
        let code = plan::render_all_up(db.get_database_backend()).await?;
        let up = Command::Up {
            num: None,
            dry_run: false,
        };
        run_writing(&db, settings, target, &up, &code, out, err).await
    }
    .await;
    db.close().await.ok();
    result
}

/// Rebuilds a local or test database: rolls every migration back, then applies them
/// all again, as `refresh` does, under the migrator lock. For the seeder, whose reset
/// cannot empty the append-only audit trail. Refused, before connecting, for any other
/// environment. Returns how many migrations were applied again.
pub async fn rebuild(
    target: &DbTarget,
    schema: Option<&str>,
    settings: &RunSettings,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> Result<usize, CliError> {
    if !settings.env.is_disposable() {
        return Err(CliError::Refused(format!(
            "rebuilding drops every table; it is for local and test databases, not {}",
            settings.env
        )));
    }
    let db = connect(target, schema).await?;
    let result = async {
        let code = plan::render_all_up(db.get_database_backend()).await?;
        run_writing(&db, settings, target, &Command::Refresh, &code, out, err).await?;
        // Every migration was rolled back and applied again.
        Ok(code.len())
    }
    .await;
    db.close().await.ok();
    result
}

/// The writing part of every run, after the safety checks: take the lock, run the
/// command, record the environment marker, release the lock, check health. Returns
/// the number of migrations applied or rolled back.
async fn run_writing(
    db: &DatabaseConnection,
    settings: &RunSettings,
    target: &DbTarget,
    command: &Command,
    code: &[Rendered],
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> Result<usize, CliError> {
    let lock = MigrationLock::acquire(db, settings.lock_timeout, |holder| {
        let _ = writeln!(err, "  waiting for the migration lock, held by {holder}");
    })
    .await?;
    let result = async {
        set_table_lock_timeout(db, settings.table_locks).await?;
        let changed = run_locked(db, settings, target, command, code, out, err).await?;
        // A database learns its environment the first time it is migrated (after
        // `reset` the metadata table is gone, and there is nothing to record into).
        // Under the lock, so two first runs cannot both insert it.
        if SchemaManager::new(db)
            .has_table("database_metadata")
            .await?
        {
            record_env_if_absent(db, settings.env).await?;
        }
        Ok::<_, CliError>(changed)
    }
    .await;
    lock.release(db).await?;
    let changed = result?;
    health_check(db, code, command.name(), out).await?;
    Ok(changed)
}

/// PostgreSQL: every statement of this session gives up waiting for a lock after
/// `locks.timeout` (SQLSTATE 55P03) instead of queueing, and blocking, indefinitely.
async fn set_table_lock_timeout(db: &DatabaseConnection, locks: TableLocks) -> Result<(), DbErr> {
    if db.get_database_backend() == DbBackend::Postgres {
        db.execute_unprepared(&format!(
            "SET lock_timeout = '{}ms'",
            locks.timeout.as_millis().max(1)
        ))
        .await?;
    }
    Ok(())
}

/// Whether `error` is PostgreSQL's `lock_not_available` (SQLSTATE 55P03), which
/// `lock_timeout` raises.
pub fn is_lock_timeout(error: &DbErr) -> bool {
    use sea_orm_migration::sea_orm::{RuntimeErr, sqlx};
    match error {
        DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e))
        | DbErr::Conn(RuntimeErr::SqlxError(e)) => match e.as_ref() {
            sqlx::Error::Database(db) => db.code().as_deref() == Some("55P03"),
            _ => false,
        },
        _ => false,
    }
}

/// Runs one migration step (`Migrator::up` or `down` of one), trying it again while it
/// fails on the table lock timeout. The step is one transaction on PostgreSQL, so a
/// failed attempt left nothing behind.
async fn with_lock_retries<F, Fut>(
    locks: TableLocks,
    migration: &str,
    err: &mut (dyn Write + Send),
    mut step: F,
) -> Result<(), CliError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), DbErr>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match step().await {
            Ok(()) => return Ok(()),
            Err(e) if is_lock_timeout(&e) && attempt <= locks.retries => {
                let pause = TableLocks::backoff(attempt);
                writeln!(
                    err,
                    "  {migration}: waited more than {:?} for a table lock; rolled back, trying again in {pause:?} ({attempt}/{})",
                    locks.timeout, locks.retries
                )?;
                tokio::time::sleep(pause).await;
            }
            Err(e) if is_lock_timeout(&e) => {
                return Err(CliError::TableLockTimeout {
                    migration: migration.to_owned(),
                    timeout: locks.timeout,
                    attempts: attempt,
                });
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The command itself, under the lock. The applied list is read again here: another
/// migrator may have finished while this one waited.
async fn run_locked(
    db: &DatabaseConnection,
    settings: &RunSettings,
    target: &DbTarget,
    command: &Command,
    code: &[Rendered],
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> Result<usize, CliError> {
    let mut changed = 0;
    let applied = applied_versions(db).await?;
    let drift = tracking::compare(&applied, &tracking::read(db).await?, code);
    if drift.blocks() && !matches!(command, Command::Repair) {
        return Err(CliError::Drift(drift_message(&drift)));
    }
    if !applied.is_empty() {
        tracking::ensure_table(db).await?;
    }
    for version in &drift.unrecorded {
        // Applied before checksums were kept: trust the code as it is now.
        let rendered = code
            .iter()
            .find(|r| &r.name == version)
            .expect("unrecorded means known");
        tracking::record(db, rendered, settings.env, None).await?;
        writeln!(err, "  recorded a first checksum for {version}")?;
    }

    match command {
        Command::Up { num, .. } => {
            let pending: Vec<&Rendered> =
                code.iter().filter(|m| !applied.contains(&m.name)).collect();
            let take = num.map_or(pending.len(), |n| n as usize);
            for migration in pending.into_iter().take(take) {
                let started = Instant::now();
                with_lock_retries(settings.table_locks, &migration.name, err, || {
                    Migrator::up(db, Some(1))
                })
                .await?;
                let took = started.elapsed().as_millis() as i64;
                tracking::ensure_table(db).await?;
                tracking::record(db, migration, settings.env, Some(took)).await?;
                writeln!(out, "applied {} in {took} ms", migration.name)?;
                changed += 1;
            }
        }
        Command::Down { num, .. } => {
            for version in applied.iter().rev().take(*num as usize) {
                with_lock_retries(settings.table_locks, version, err, || {
                    Migrator::down(db, Some(1))
                })
                .await?;
                tracking::forget(db, version).await?;
                writeln!(out, "rolled back {version}")?;
                changed += 1;
            }
        }
        Command::Repair => {
            if !drift.missing.is_empty() {
                return Err(CliError::Drift(format!(
                    "cannot repair migrations missing from the code: {}; restore their files",
                    drift.missing.join(", ")
                )));
            }
            let recorded = tracking::read(db).await?;
            for version in &drift.modified {
                let rendered = code
                    .iter()
                    .find(|r| &r.name == version)
                    .expect("modified means known");
                tracking::repair(db, rendered, &recorded[version].checksum).await?;
                writeln!(
                    out,
                    "repaired {version}: checksum now {}",
                    rendered.checksum()
                )?;
            }
            if drift.modified.is_empty() {
                writeln!(out, "nothing to repair")?;
            }
        }
        Command::Fresh | Command::Refresh | Command::Reset => {
            match command {
                Command::Fresh => Migrator::fresh(db).await?,
                Command::Refresh => Migrator::refresh(db).await?,
                _ => Migrator::reset(db).await?,
            }
            reconcile(db, settings.env, code).await?;
        }
        Command::Tenants { action } => {
            let tenants = tenant_schemas::isolated_tenants(db, target).await?;
            let chosen: Vec<_> = match action {
                TenantAction::Provision { slug } => {
                    let found: Vec<_> = tenants.into_iter().filter(|t| &t.slug == slug).collect();
                    if found.is_empty() {
                        return Err(CliError::Config(format!(
                            "no schema- or database-isolated tenant with slug {slug:?} (shared tenants need no provisioning)"
                        )));
                    }
                    found
                }
                _ => tenants,
            };
            for tenant in &chosen {
                let applied = tenant_schemas::provision(db, target, tenant).await?;
                writeln!(
                    out,
                    "{} ({} {}): {applied} migration(s) applied",
                    tenant.slug, tenant.isolation_level, tenant.location
                )?;
            }
        }
        Command::Status { .. }
        | Command::Generate { .. }
        | Command::Snapshot
        | Command::Lint { .. }
        | Command::Database { .. }
        | Command::Keys { .. }
        | Command::Audit { .. }
        | Command::Compliance { .. }
        | Command::Insights { .. } => {
            unreachable!("handled before the lock")
        }
    }
    Ok(changed)
}

/// After a bulk command: one checksum row per applied migration, none for others.
async fn reconcile(
    db: &DatabaseConnection,
    env: AppEnv,
    code: &[Rendered],
) -> Result<(), CliError> {
    let applied = applied_versions(db).await?;
    if applied.is_empty() {
        // `reset` leaves no bookkeeping behind; neither do we.
        SchemaManager::new(db)
            .drop_table(
                Table::drop()
                    .table(Alias::new("migration_checksums"))
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        return Ok(());
    }
    tracking::ensure_table(db).await?;
    let recorded = tracking::read(db).await?;
    for version in recorded.keys().filter(|v| !applied.contains(v)) {
        tracking::forget(db, version).await?;
    }
    for rendered in code
        .iter()
        .filter(|r| applied.contains(&r.name) && !recorded.contains_key(&r.name))
    {
        tracking::record(db, rendered, env, None).await?;
    }
    Ok(())
}

/// Versions in `seaql_migrations`, oldest first; empty before the first run.
async fn applied_versions(db: &DatabaseConnection) -> Result<Vec<String>, DbErr> {
    if !SchemaManager::new(db).has_table("seaql_migrations").await? {
        return Ok(Vec::new());
    }
    let mut versions: Vec<String> = seaql_migrations::Entity::find()
        .all(db)
        .await?
        .into_iter()
        .map(|row| row.version)
        .collect();
    versions.sort();
    Ok(versions)
}

fn drift_message(drift: &tracking::Drift) -> String {
    let mut parts = Vec::new();
    if !drift.modified.is_empty() {
        parts.push(format!(
            "applied migrations were edited since they ran: {} (restore them, or run `repair` if the change is deliberate and equivalent)",
            drift.modified.join(", ")
        ));
    }
    if !drift.missing.is_empty() {
        parts.push(format!(
            "applied migrations are missing from the code: {} (never rename or delete an applied migration)",
            drift.missing.join(", ")
        ));
    }
    format!("stopped before running anything: {}", parts.join("; "))
}

/// After every run: the database answers, the bookkeeping agrees with the code.
async fn health_check(
    db: &DatabaseConnection,
    code: &[Rendered],
    command: &str,
    out: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    db.ping().await?;
    let applied = applied_versions(db).await?;
    let recorded = tracking::read(db).await?;
    let drift = tracking::compare(&applied, &recorded, code);
    let consistent =
        !drift.blocks() && drift.unrecorded.is_empty() && recorded.len() == applied.len();
    writeln!(
        out,
        "{command} done: {} applied, {} pending; health: connection ok, checksums {} ({} recorded)",
        applied.len(),
        code.len()
            - applied
                .iter()
                .filter(|v| code.iter().any(|c| &c.name == *v))
                .count(),
        if consistent {
            "consistent"
        } else {
            "INCONSISTENT"
        },
        recorded.len()
    )?;
    if !consistent {
        return Err(CliError::Drift(drift_message(&drift)));
    }
    Ok(())
}
