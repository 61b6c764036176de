//! The migration command line: a drop-in target of `sea-orm-cli migrate` (same
//! subcommands and flags) with the environment safety of DESIGN §6 around it.
//!
//! `main.rs` only resolves the process environment into an [`Invocation`]; everything
//! else lives here so tests can drive it with a scripted terminal.

use crate::Migrator;
use crate::environment::{
    AppEnv, RecordedEnv, backend_name, read_recorded_env, record_env_if_absent,
};
use crate::target::DbTarget;
use clap::{Parser, Subcommand, ValueEnum};
use sea_orm_migration::migrator::{Migration, MigrationStatus};
use sea_orm_migration::sea_orm::{Database, DatabaseConnection, DbBackend, DbErr, EntityTrait};
use sea_orm_migration::seaql_migrations;
use sea_orm_migration::{MigratorTrait, SchemaManager};
use serde::Serialize;
use std::io::{self, Write};

const AFTER_HELP: &str = "\
Environment:
  APP_ENV (or MIGRATION_ENV)  local (default), test, development, staging, production.
                              Loads .env.<env>, then .env, from the current directory.
  DATABASE_URL                postgres://..., mysql://... (MariaDB too) or sqlite://...?mode=rwc
  DB_BACKEND, DB_HOST, DB_PORT, DB_USERNAME, DB_PASSWORD, DB_NAME
                              used when DATABASE_URL is not set (DB_BACKEND defaults to postgres)
  DATABASE_SCHEMA             PostgreSQL schema (default public)
  DB_CONNECT_TIMEOUT          seconds to keep trying to connect (default 10)

Safety:
  local and test run without questions. development, staging and production ask the
  operator to type MIGRATE DEV, MIGRATE STAGING or MIGRATE PRODUCTION; without a
  terminal, pass the same phrase with --confirm. fresh, refresh and reset are refused
  in production whatever is typed. A database remembers its environment: a command
  that writes is refused when APP_ENV names another one.

Examples:
  cargo run -p migration -- status
  cargo run -p migration -- up
  cargo run -p migration -- down -n 1
  APP_ENV=staging cargo run -p migration -- up --confirm \"MIGRATE STAGING\"
  cargo run -p migration -- status --format json
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
    },
    /// Roll back applied migrations, newest first.
    Down {
        /// Number of applied migrations to roll back.
        #[arg(short, long, default_value_t = 1)]
        num: u32,
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
            Command::Generate { .. } => "generate",
        }
    }

    /// Commands that drop tables wholesale; refused in production.
    pub fn is_destructive(&self) -> bool {
        matches!(self, Command::Fresh | Command::Refresh | Command::Reset)
    }

    pub fn writes(&self) -> bool {
        !matches!(self, Command::Status { .. } | Command::Generate { .. })
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
}

/// Asks the operator for the confirmation phrase.
pub trait Prompt {
    /// Whether a person can answer.
    fn is_interactive(&self) -> bool;
    fn ask(&mut self, question: &str) -> io::Result<String>;
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
    #[error("cannot connect to {target}: {source}")]
    Connect { target: String, source: DbErr },
    #[error(transparent)]
    Db(#[from] DbErr),
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("{0}")]
    Config(String),
}

impl CliError {
    /// 2 for a refusal (nothing changed), 1 for a failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Refused(_) => 2,
            _ => 1,
        }
    }
}

/// Connects with the options every command uses.
pub async fn connect(
    target: &DbTarget,
    schema: Option<&str>,
) -> Result<DatabaseConnection, CliError> {
    Database::connect(target.connect_options(schema))
        .await
        .map_err(|source| CliError::Connect {
            target: target.masked_url(),
            source,
        })
}

/// Runs one database command: banner, safety checks, the command, the marker.
pub async fn execute(
    inv: &Invocation,
    prompt: &mut dyn Prompt,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), CliError> {
    let db = connect(&inv.target, inv.schema.as_deref()).await?;
    let result = execute_on(&db, inv, prompt, out, err).await;
    db.close().await.ok();
    result
}

async fn execute_on(
    db: &DatabaseConnection,
    inv: &Invocation,
    prompt: &mut dyn Prompt,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), CliError> {
    let recorded = read_recorded_env(db).await?;
    let statuses = Migrator::get_migration_with_status_read_only(db).await?;
    let pending: Vec<String> = statuses
        .iter()
        .filter(|m| m.status() == MigrationStatus::Pending)
        .map(|m| m.name().to_owned())
        .collect();

    write_banner(err, inv, &recorded, &pending)?;

    if let Command::Status { format } = &inv.command {
        return print_status(db, inv, &recorded, &statuses, *format, out).await;
    }

    check_safety(inv, &recorded, prompt, err)?;

    match &inv.command {
        Command::Up { num } => Migrator::up(db, *num).await?,
        Command::Down { num } => Migrator::down(db, Some(*num)).await?,
        Command::Fresh => Migrator::fresh(db).await?,
        Command::Refresh => Migrator::refresh(db).await?,
        Command::Reset => Migrator::reset(db).await?,
        Command::Status { .. } | Command::Generate { .. } => unreachable!("handled above"),
    }

    // A database learns its environment the first time it is migrated (after
    // `reset` the metadata table is gone, and there is nothing to record into).
    if SchemaManager::new(db)
        .has_table("database_metadata")
        .await?
    {
        record_env_if_absent(db, inv.env).await?;
    }

    let after = Migrator::get_migration_with_status_read_only(db).await?;
    let applied = after
        .iter()
        .filter(|m| m.status() == MigrationStatus::Applied)
        .count();
    writeln!(
        out,
        "{} done: {applied} applied, {} pending.",
        inv.command.name(),
        after.len() - applied
    )?;
    Ok(())
}

fn write_banner(
    err: &mut dyn Write,
    inv: &Invocation,
    recorded: &RecordedEnv,
    pending: &[String],
) -> io::Result<()> {
    let target = &inv.target;
    writeln!(
        err,
        "== {} on {} ==",
        inv.command.name(),
        inv.env.as_str().to_uppercase()
    )?;
    writeln!(err, "  environment   {}", inv.env)?;
    writeln!(err, "  recorded env  {recorded}")?;
    writeln!(err, "  backend       {}", backend_name(target.backend))?;
    writeln!(err, "  host          {}", target.host())?;
    writeln!(err, "  database      {}", target.database())?;
    writeln!(err, "  user          {}", target.user())?;
    writeln!(err, "  url           {}", target.masked_url())?;
    if pending.is_empty() {
        writeln!(err, "  pending       none")?;
    } else {
        writeln!(err, "  pending       {}", pending.len())?;
        for name in pending {
            writeln!(err, "    - {name}")?;
        }
    }
    if recorded.conflicts_with(inv.env) {
        writeln!(
            err,
            "  WARNING: this database belongs to {recorded}, not to {}.",
            inv.env
        )?;
    }
    Ok(())
}

/// The rules of DESIGN §6, in order. Nothing has been written when this fails.
fn check_safety(
    inv: &Invocation,
    recorded: &RecordedEnv,
    prompt: &mut dyn Prompt,
    err: &mut dyn Write,
) -> Result<(), CliError> {
    let command = &inv.command;
    if command.is_destructive() && (inv.env == AppEnv::Production || recorded.is_production()) {
        return Err(CliError::Refused(format!(
            "`{}` drops tables and is never run against production (APP_ENV={}, database records {recorded}); \
             roll back with `down -n N` instead",
            command.name(),
            inv.env
        )));
    }
    if command.writes() && recorded.conflicts_with(inv.env) {
        return Err(CliError::Refused(format!(
            "the database records environment {recorded} but APP_ENV is {}; point at the right \
             database, or run with APP_ENV set to the database's environment",
            inv.env
        )));
    }
    let Some(phrase) = inv.env.confirmation_phrase() else {
        return Ok(());
    };
    let answer = match &inv.confirm {
        Some(given) => given.clone(),
        None if prompt.is_interactive() => {
            writeln!(err)?;
            prompt.ask(&format!(
                "This changes the {} database. Type {phrase} to continue: ",
                inv.env
            ))?
        }
        None => {
            return Err(CliError::Refused(format!(
                "{} needs confirmation and there is no terminal; pass --confirm \"{phrase}\"",
                inv.env
            )));
        }
    };
    if answer.trim() != phrase {
        return Err(CliError::Refused(format!(
            "confirmation did not match; expected exactly \"{phrase}\""
        )));
    }
    Ok(())
}

#[derive(Serialize)]
struct StatusReport<'a> {
    environment: &'a str,
    database_environment: String,
    backend: &'a str,
    database: String,
    applied: Vec<AppliedMigration>,
    pending: Vec<String>,
}

#[derive(Serialize)]
struct AppliedMigration {
    name: String,
    /// Unix seconds, as sea-orm records them.
    applied_at: i64,
}

async fn print_status(
    db: &DatabaseConnection,
    inv: &Invocation,
    recorded: &RecordedEnv,
    statuses: &[Migration],
    format: StatusFormat,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let applied_rows = if SchemaManager::new(db).has_table("seaql_migrations").await? {
        seaql_migrations::Entity::find().all(db).await?
    } else {
        Vec::new()
    };
    let report = StatusReport {
        environment: inv.env.as_str(),
        database_environment: recorded.to_string(),
        backend: match db.get_database_backend() {
            DbBackend::Postgres => "postgres",
            DbBackend::MySql => "mysql",
            _ => "sqlite",
        },
        database: inv.target.database(),
        applied: applied_rows
            .iter()
            .map(|row| AppliedMigration {
                name: row.version.clone(),
                applied_at: row.applied_at,
            })
            .collect(),
        pending: statuses
            .iter()
            .filter(|m| m.status() == MigrationStatus::Pending)
            .map(|m| m.name().to_owned())
            .collect(),
    };
    match format {
        StatusFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, &report).map_err(io::Error::from)?;
            writeln!(out)?;
        }
        StatusFormat::Text => {
            for m in statuses {
                let status = match m.status() {
                    MigrationStatus::Applied => "applied",
                    MigrationStatus::Pending => "pending",
                };
                writeln!(out, "{status:8} {}", m.name())?;
            }
            writeln!(
                out,
                "{} applied, {} pending",
                report.applied.len(),
                report.pending.len()
            )?;
        }
    }
    Ok(())
}
