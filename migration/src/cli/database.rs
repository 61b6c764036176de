//! `database create` and `database drop`: the database the configuration names, made
//! or removed from the server's side (PostgreSQL's `postgres` maintenance database,
//! MariaDB's server connection), or SQLite's file.
//!
//! Both are idempotent: creating a database that exists, or dropping one that does not,
//! says so and succeeds. Drop is refused in staging and production whatever is typed,
//! and whenever the database itself records staging or production.

use super::safety::confirm_environment;
use super::{CliError, Invocation, Prompt, connect};
use crate::environment::{AppEnv, RecordedEnv, backend_name, read_recorded_env};
use clap::Subcommand;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use service::connection::DbTarget;
use std::io::Write;
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Subcommand)]
pub enum DatabaseAction {
    /// Create the configured database if it does not exist (SQLite: its file).
    Create,
    /// Drop the configured database if it exists. Refused in staging and production, for
    /// the server's own databases, and for one that records another environment or
    /// holds tables without recording one.
    Drop,
}

impl DatabaseAction {
    pub fn name(self) -> &'static str {
        match self {
            DatabaseAction::Create => "database create",
            DatabaseAction::Drop => "database drop",
        }
    }
}

pub(super) async fn run(
    inv: &Invocation,
    action: DatabaseAction,
    prompt: &mut (dyn Prompt + Send),
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    let target = &inv.target;
    let name = target.database();
    if name.is_empty() || name == ":memory:" {
        return Err(CliError::Config(
            "the configuration names no database (set DB_NAME, or a path in DATABASE_URL)".into(),
        ));
    }
    // PostgreSQL would cut a longer name to 63 bytes, naming another database.
    let longest = match target.backend {
        DbBackend::Postgres => Some(63),
        DbBackend::MySql => Some(64),
        _ => None,
    };
    if let Some(longest) = longest.filter(|longest| name.len() > *longest) {
        return Err(CliError::Config(format!(
            "the database name {name:?} is {} bytes long; {} allows at most {longest}",
            name.len(),
            backend_name(target.backend)
        )));
    }
    let server = match target.backend {
        DbBackend::Sqlite => None,
        _ => Some(connect_to_server(target).await?),
    };
    let result = async {
        let exists = match &server {
            Some(server) => server_has_database(server, &name).await?,
            None => sqlite_file_exists(&name)?,
        };
        // What the database says about itself: a drop must not rely on APP_ENV alone.
        let (recorded, tables) = if exists && action == DatabaseAction::Drop {
            let db = connect(target, inv.schema.as_deref()).await?;
            let read = async {
                Ok::<_, CliError>((read_recorded_env(&db).await?, count_tables(&db).await?))
            }
            .await;
            db.close().await.ok();
            read?
        } else {
            (RecordedEnv::NoMetadataTable, 0)
        };
        write_banner(err, inv, action, &name, exists, &recorded)?;
        match (action, exists) {
            (DatabaseAction::Create, true) => {
                writeln!(out, "database {name} already exists; nothing to do")?;
                return Ok(());
            }
            (DatabaseAction::Drop, false) => {
                writeln!(out, "database {name} does not exist; nothing to do")?;
                return Ok(());
            }
            _ => {}
        }
        if action == DatabaseAction::Drop {
            refuse_drop_outside_disposable(inv.env, &recorded, tables, &name)?;
        }
        let what = match action {
            DatabaseAction::Create => format!("This creates the database {name}."),
            DatabaseAction::Drop => {
                format!("This DROPS the database {name} and everything in it.")
            }
        };
        confirm_environment(inv.env, inv.confirm.as_deref(), prompt, err, &what)?;
        match (action, &server) {
            (DatabaseAction::Create, Some(server)) => create_on_server(server, &name).await?,
            (DatabaseAction::Drop, Some(server)) => drop_on_server(server, &name).await?,
            (DatabaseAction::Create, None) => create_sqlite_file(&name)?,
            (DatabaseAction::Drop, None) => remove_sqlite_files(&name)?,
        }
        let done = match action {
            DatabaseAction::Create => "created",
            DatabaseAction::Drop => "dropped",
        };
        writeln!(out, "database {name} {done}")?;
        Ok(())
    }
    .await;
    if let Some(server) = server {
        server.close().await.ok();
    }
    result
}

/// The servers' own databases: never dropped by this tool.
const SYSTEM_DATABASES: [&str; 7] = [
    "postgres",
    "template0",
    "template1",
    "mysql",
    "information_schema",
    "performance_schema",
    "sys",
];

/// Drop runs only where databases are disposable or shared with colleagues (local,
/// test, development), and only on a database that is empty or records that very
/// environment: one that records staging or production, another environment, or none
/// at all while holding tables (a tenant's database, another application's, one migrated
/// in a schema not named with `-s`) is never dropped.
fn refuse_drop_outside_disposable(
    env: AppEnv,
    recorded: &RecordedEnv,
    tables: i64,
    name: &str,
) -> Result<(), CliError> {
    let protected = |env: AppEnv| matches!(env, AppEnv::Staging | AppEnv::Production);
    if protected(env) {
        return Err(CliError::Refused(format!(
            "`database drop` is never run in {env}, whatever is typed"
        )));
    }
    if SYSTEM_DATABASES.contains(&name) {
        return Err(CliError::Refused(format!(
            "{name} is a database of the server itself; not dropping it"
        )));
    }
    match recorded {
        RecordedEnv::Recorded(recorded) if protected(*recorded) => Err(CliError::Refused(format!(
            "the database records environment {recorded}; `database drop` never drops it"
        ))),
        RecordedEnv::Unknown(value) => Err(CliError::Refused(format!(
            "the database records an unknown environment ({value}); not dropping it"
        ))),
        RecordedEnv::Recorded(recorded) if *recorded != env => Err(CliError::Refused(format!(
            "the database records environment {recorded} but APP_ENV is {env}; run with \
             APP_ENV={recorded} to drop it"
        ))),
        RecordedEnv::Recorded(_) => Ok(()),
        RecordedEnv::NoMetadataTable | RecordedEnv::Unrecorded if tables > 0 => {
            Err(CliError::Refused(format!(
                "the database holds {tables} table(s) but records no environment (migrated in \
                 another schema? pass it with -s; a tenant's or another application's \
                 database?); drop it with the server's own tools if you mean it"
            )))
        }
        _ => Ok(()),
    }
}

/// Tables of any schema but the catalogue's.
async fn count_tables(db: &DatabaseConnection) -> Result<i64, CliError> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "SELECT count(*) FROM information_schema.tables \
             WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
        }
        DbBackend::MySql => {
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = DATABASE()"
        }
        _ => "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
    };
    Ok(db
        .query_one_raw(Statement::from_string(backend, sql.to_owned()))
        .await?
        .ok_or_else(|| CliError::Config("counting tables returned no row".into()))?
        .try_get_by_index::<i64>(0)?)
}

fn write_banner(
    err: &mut dyn Write,
    inv: &Invocation,
    action: DatabaseAction,
    name: &str,
    exists: bool,
    recorded: &RecordedEnv,
) -> std::io::Result<()> {
    let target = &inv.target;
    writeln!(
        err,
        "== {} on {} ==",
        action.name(),
        inv.env.as_str().to_uppercase()
    )?;
    writeln!(err, "  environment   {}", inv.env)?;
    writeln!(err, "  backend       {}", backend_name(target.backend))?;
    writeln!(err, "  host          {}", target.host())?;
    writeln!(
        err,
        "  database      {name} ({})",
        if exists { "exists" } else { "absent" }
    )?;
    if exists && action == DatabaseAction::Drop {
        writeln!(err, "  recorded env  {recorded}")?;
    }
    writeln!(err, "  user          {}", target.user())?;
    writeln!(err, "  url           {}", target.masked_url())?;
    Ok(())
}

/// The server without the database: PostgreSQL's `postgres` database, MariaDB with
/// none selected.
async fn connect_to_server(target: &DbTarget) -> Result<DatabaseConnection, CliError> {
    let maintenance = match target.backend {
        DbBackend::Postgres => "postgres",
        _ => "",
    };
    connect(&target.with_database(maintenance), None).await
}

async fn server_has_database(server: &DatabaseConnection, name: &str) -> Result<bool, CliError> {
    let backend = server.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => "SELECT 1 FROM pg_database WHERE datname = $1",
        _ => "SELECT 1 FROM information_schema.schemata WHERE schema_name = ?",
    };
    Ok(server
        .query_one_raw(Statement::from_sql_and_values(backend, sql, [name.into()]))
        .await?
        .is_some())
}

/// The name as an identifier: the server's own quoting on PostgreSQL, backticks
/// (doubled inside) on MariaDB. Never pasted as SQL.
async fn quoted(server: &DatabaseConnection, name: &str) -> Result<String, CliError> {
    match server.get_database_backend() {
        DbBackend::Postgres => Ok(crate::tenant_schemas::quote_ident(server, name).await?),
        _ => Ok(format!("`{}`", name.replace('`', "``"))),
    }
}

async fn create_on_server(server: &DatabaseConnection, name: &str) -> Result<(), CliError> {
    let ident = quoted(server, name).await?;
    let sql = match server.get_database_backend() {
        DbBackend::Postgres => format!("CREATE DATABASE {ident} ENCODING 'UTF8'"),
        // The tables are utf8mb4 whatever the server default; so is the database.
        _ => format!(
            "CREATE DATABASE IF NOT EXISTS {ident} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        ),
    };
    server.execute_unprepared(&sql).await?;
    Ok(())
}

async fn drop_on_server(server: &DatabaseConnection, name: &str) -> Result<(), CliError> {
    let ident = quoted(server, name).await?;
    match server
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {ident}"))
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.to_string().contains("being accessed by other users") => {
            Err(CliError::Config(format!(
                "{name} has open sessions ({e}); close them (see pg_stat_activity) and run again"
            )))
        }
        Err(e) => Err(e.into()),
    }
}

/// Whether the SQLite file exists; a file that is not an SQLite database is an error,
/// not a database to create over or drop.
fn sqlite_file_exists(path: &str) -> Result<bool, CliError> {
    use std::io::Read;
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    let mut header = Vec::with_capacity(16);
    Read::by_ref(&mut file).take(16).read_to_end(&mut header)?;
    // An empty file is an empty database; anything else starts with SQLite's header.
    if header.is_empty() || header.as_slice() == b"SQLite format 3\0" {
        Ok(true)
    } else {
        Err(CliError::Config(format!(
            "{path} exists and is not an SQLite database"
        )))
    }
}

/// An empty file is an empty SQLite database; its folder is made if missing.
fn create_sqlite_file(path: &str) -> Result<(), CliError> {
    let path = PathBuf::from(path);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?;
    Ok(())
}

/// The database file and the journal files SQLite keeps beside it.
fn remove_sqlite_files(path: &str) -> Result<(), CliError> {
    for suffix in ["", "-wal", "-shm", "-journal", ".migrate-lock"] {
        let file = format!("{path}{suffix}");
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
