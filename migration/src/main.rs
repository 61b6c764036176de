//! `cargo run -p migration -- <command>`, or `sea-orm-cli migrate <command>`.

use clap::Parser;
use migration::cli::{Cli, CliError, Command, Invocation, TableLocks, Terminal, execute};
use migration::environment::AppEnv;
use service::connection::DbTarget;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code() as u8)
        }
    }
}

async fn run(cli: Cli) -> Result<(), CliError> {
    let command = cli.command.unwrap_or(Command::Up {
        num: None,
        dry_run: false,
    });
    if let Command::Generate {
        migration_name,
        local_time,
        ..
    } = &command
    {
        // Files go next to this crate's sources, wherever the command is run from.
        return sea_orm_cli::run_migrate_generate(
            env!("CARGO_MANIFEST_DIR"),
            migration_name,
            !local_time,
        )
        .map_err(|e| CliError::Config(e.to_string()));
    }

    if let Command::Lint {
        migrations,
        all,
        format,
    } = &command
        && (*all || !migrations.is_empty())
    {
        // Named migrations, or all of them, are rendered without a database.
        let names = (!*all).then_some(migrations.as_slice());
        return migration::cli::run_lint(names, *format, &mut std::io::stdout()).await;
    }

    let env = AppEnv::from_process_env().map_err(|e| CliError::Config(e.to_string()))?;
    let cwd = std::env::current_dir()?;
    env.load_dotenv_files(&cwd)
        .map_err(|e| CliError::Config(format!("cannot read a .env file: {e}")))?;
    let target = DbTarget::from_env(cli.database_url.as_deref())
        .map_err(|e| CliError::Config(e.to_string()))?;
    let schema = cli.database_schema.or_else(|| {
        std::env::var("DATABASE_SCHEMA")
            .ok()
            .filter(|s| !s.is_empty())
    });

    // After the .env files, like every other variable.
    let table_locks =
        TableLocks::resolve(cli.table_lock_timeout_ms, cli.table_lock_retries, &|name| {
            std::env::var(name).ok()
        })?;
    let invocation = Invocation {
        env,
        target,
        schema,
        command,
        confirm: cli.confirm,
        lock_timeout: std::time::Duration::from_secs(cli.lock_timeout),
        table_locks,
    };
    execute(
        &invocation,
        &mut Terminal,
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    )
    .await
}

fn init_tracing(verbose: bool) {
    // sea-orm-migration reports each applied migration at info level.
    let filter = if verbose {
        "debug"
    } else {
        "sea_orm_migration=info"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)),
        )
        .with_target(verbose)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .with_writer(std::io::stderr)
        .init();
}
