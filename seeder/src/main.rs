//! `cargo run -p seeder`: load the demo fixtures into a development database.

use clap::Parser;
use seeder::profile::ProfileName;
use seeder::{DEFAULT_SEED, EnvSignals, SeedError, SeedOptions, SeedReport};
use std::process::ExitCode;

const AFTER_HELP: &str = "\
With no options it writes data/dev.sqlite in the workspace (created and migrated as
needed) and prints the demo logins. Running it again gives the same database: ids,
timestamps, hashes and tokens are derived from the profile and --seed.

Environment:
  APP_ENV (or MIGRATION_ENV)  local (default), test, development, staging, production.
                              Loads .env.<env>, then .env, from the current directory.
  DATABASE_URL                postgres://..., mysql://... or sqlite://...?mode=rwc
  DB_BACKEND, DB_HOST, DB_PORT, DB_USERNAME, DB_PASSWORD, DB_NAME
                              used when DATABASE_URL is not set
  DB_CONNECT_TIMEOUT          seconds to keep trying to connect (default 10)

Safety:
  Refuses production before writing anything: APP_ENV=production, MIGRATION_ENV=production,
  or a database whose environment marker says production. No option overrides this.
  Refuses a database whose marker names another environment than APP_ENV. Migrates only
  local and test databases, exactly as `cargo run -p migration -- up` does (lock,
  checksums, environment marker); elsewhere, run the migration CLI first. In development
  and staging it lists the tables and row counts the reset deletes and asks for the
  migration CLI's phrase (MIGRATE DEV, MIGRATE STAGING), or takes it from --confirm.
  One seeder at a time per database: a second one waits up to --lock-timeout.

Examples:
  cargo run -p seeder
  cargo run -p seeder -- --profile minimal
  cargo run -p seeder -- --database-url postgres://postgres@127.0.0.1/app_dev
  APP_ENV=test cargo run -p seeder -- --database-url mysql://root@127.0.0.1/app_test
  APP_ENV=staging cargo run -p seeder -- --confirm \"MIGRATE STAGING\"";

#[derive(Debug, Parser)]
#[command(
    name = "seeder",
    version,
    about = "Load deterministic demo fixtures into a development database (never production)",
    after_help = AFTER_HELP
)]
struct Cli {
    /// Database URL [default: DATABASE_URL, the DB_* variables, else sqlite data/dev.sqlite].
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,

    /// Which fixture set to load.
    #[arg(long, value_enum, default_value_t = ProfileName::Demo)]
    profile: ProfileName,

    /// Seed of the random generator behind salts and tokens; same seed, same bytes.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    seed: u64,

    /// Empty the seeded tables first, in the same transaction as the load (default).
    #[arg(long, overrides_with = "no_reset")]
    reset: bool,

    /// Keep existing rows; refuse if the profile's tenants already exist.
    #[arg(long, overrides_with = "reset")]
    no_reset: bool,

    /// Also add N synthetic tenants (10 users with sessions and 20 audit events each),
    /// deterministic for a given N and --seed; for benchmarks. At most 1000000.
    #[arg(long, value_name = "N", default_value_t = 0)]
    scale: u32,

    /// The confirmation phrase for development and staging, for runs without a terminal
    /// (e.g. "MIGRATE STAGING"); must match exactly.
    #[arg(long, value_name = "PHRASE")]
    confirm: Option<String>,

    /// How long to wait for another seeder or migrator working on the same database.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    lock_timeout: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match seed(cli).await {
        Ok(report) => {
            print_report(&report);
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("seeder: {error}");
            ExitCode::from(if error.is_refusal() { 2 } else { 1 })
        }
    }
}

async fn seed(cli: Cli) -> Result<SeedReport, SeedError> {
    // Refuse on the process signals before reading anything else. The environment
    // they name picks the .env.<env> file, which may itself set APP_ENV: `seeder::seed`
    // reads the signals again after loading it.
    let env = EnvSignals::from_process().environment()?;
    let cwd = std::env::current_dir().map_err(|source| SeedError::DataDir {
        path: ".".into(),
        source,
    })?;
    env.load_dotenv_files(&cwd)
        .map_err(|e| SeedError::Refused {
            signal: "a .env file".into(),
            reason: format!("it cannot be read ({e})"),
        })?;
    let options = SeedOptions {
        database_url: cli.database_url,
        profile: cli.profile,
        seed: cli.seed,
        reset: !cli.no_reset,
        scale: cli.scale,
        scale_writer: None,
        confirm: cli.confirm,
        lock_timeout: std::time::Duration::from_secs(cli.lock_timeout),
        field_keys: None,
    };
    seeder::seed_with(
        &EnvSignals::from_process(),
        &options,
        &mut migration::cli::Terminal,
        &mut std::io::stderr(),
    )
    .await
}

fn print_report(report: &SeedReport) {
    if let Err(error) = seeder::summary::write_summary(report, &mut std::io::stdout()) {
        eprintln!("seeder: the data is loaded, but its summary could not be printed: {error}");
    }
}
