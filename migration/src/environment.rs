//! Which environment a command runs in, and which one the database belongs to
//! The two must agree before anything destructive happens.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend};
use std::fmt;

pub use service::environment::{AppEnv, UnknownEnvironment};

/// The table and key under which a database records its environment.
const METADATA_TABLE: &str = "database_metadata";
const ENVIRONMENT_KEY: &str = "environment";

/// What the database says about its own environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordedEnv {
    /// The metadata table does not exist yet (nothing migrated).
    NoMetadataTable,
    /// The table exists but no environment was recorded.
    Unrecorded,
    Recorded(AppEnv),
    /// Something we do not recognise; treated as a mismatch, never as permission.
    Unknown(String),
}

impl RecordedEnv {
    pub fn is_production(&self) -> bool {
        matches!(self, RecordedEnv::Recorded(AppEnv::Production))
    }

    /// True when the database belongs to another environment than `env`.
    pub fn conflicts_with(&self, env: AppEnv) -> bool {
        match self {
            RecordedEnv::Recorded(recorded) => *recorded != env,
            RecordedEnv::Unknown(_) => true,
            RecordedEnv::NoMetadataTable | RecordedEnv::Unrecorded => false,
        }
    }
}

impl fmt::Display for RecordedEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordedEnv::NoMetadataTable => f.write_str("(not migrated)"),
            RecordedEnv::Unrecorded => f.write_str("(not recorded)"),
            RecordedEnv::Recorded(env) => env.fmt(f),
            RecordedEnv::Unknown(value) => write!(f, "{value:?} (unrecognised)"),
        }
    }
}

/// Reads the environment marker without writing anything.
pub async fn read_recorded_env(db: &DatabaseConnection) -> Result<RecordedEnv, DbErr> {
    if !SchemaManager::new(db).has_table(METADATA_TABLE).await? {
        return Ok(RecordedEnv::NoMetadataTable);
    }
    let query = Query::select()
        .column(Alias::new("value"))
        .from(Alias::new(METADATA_TABLE))
        .and_where(Expr::col(Alias::new("key")).eq(ENVIRONMENT_KEY))
        .to_owned();
    let row = db.query_one(&query).await?;
    Ok(match row {
        None => RecordedEnv::Unrecorded,
        Some(row) => {
            let value: String = row.try_get("", "value")?;
            match value.parse() {
                Ok(env) => RecordedEnv::Recorded(env),
                Err(_) => RecordedEnv::Unknown(value),
            }
        }
    })
}

/// Records `env` as the database's environment if none is recorded yet. An existing
/// marker is never overwritten: changing it is a deliberate manual act. Two callers
/// at once both succeed: the one whose insert loses finds the marker written.
pub async fn record_env_if_absent(db: &DatabaseConnection, env: AppEnv) -> Result<(), DbErr> {
    if read_recorded_env(db).await? != RecordedEnv::Unrecorded {
        return Ok(());
    }
    let insert = Query::insert()
        .into_table(Alias::new(METADATA_TABLE))
        .columns([Alias::new("key"), Alias::new("value")])
        .values_panic([ENVIRONMENT_KEY.into(), env.as_str().into()])
        .to_owned();
    match db.execute(&insert).await {
        Ok(_) => Ok(()),
        Err(e) if read_recorded_env(db).await? != RecordedEnv::Unrecorded => {
            // Someone else recorded it between our read and our insert.
            drop(e);
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// A human name for a backend, for banners and errors.
pub fn backend_name(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Postgres => "PostgreSQL",
        DbBackend::MySql => "MySQL/MariaDB",
        DbBackend::Sqlite => "SQLite",
        _ => "unknown",
    }
}
