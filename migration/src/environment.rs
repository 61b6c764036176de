//! Which environment a command runs in, and which one the database belongs to
//! The two must agree before anything destructive happens.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend};
use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// The deployment environment, from `APP_ENV` (alias `MIGRATION_ENV`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AppEnv {
    Local,
    Test,
    Development,
    Staging,
    Production,
}

impl AppEnv {
    pub const ALL: [AppEnv; 5] = [
        AppEnv::Local,
        AppEnv::Test,
        AppEnv::Development,
        AppEnv::Staging,
        AppEnv::Production,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AppEnv::Local => "local",
            AppEnv::Test => "test",
            AppEnv::Development => "development",
            AppEnv::Staging => "staging",
            AppEnv::Production => "production",
        }
    }

    /// What an operator must type before a command that writes runs here;
    /// `None` where no confirmation is asked (local, test).
    pub fn confirmation_phrase(self) -> Option<&'static str> {
        match self {
            AppEnv::Local | AppEnv::Test => None,
            AppEnv::Development => Some("MIGRATE DEV"),
            AppEnv::Staging => Some("MIGRATE STAGING"),
            AppEnv::Production => Some("MIGRATE PRODUCTION"),
        }
    }

    /// Environments whose databases are disposable: the seeder may migrate and reset them.
    pub fn is_disposable(self) -> bool {
        matches!(self, AppEnv::Local | AppEnv::Test)
    }

    /// Reads `APP_ENV`, then `MIGRATION_ENV`; `local` when neither is set.
    ///
    /// It reads the process environment only, never a `.env` file, because the
    /// environment decides which `.env.<env>` file is loaded.
    pub fn from_process_env() -> Result<Self, UnknownEnvironment> {
        for var in ["APP_ENV", "MIGRATION_ENV"] {
            if let Ok(value) = std::env::var(var)
                && !value.trim().is_empty()
            {
                return value
                    .parse()
                    .map_err(|e: UnknownEnvironment| UnknownEnvironment {
                        source_name: var.to_owned(),
                        ..e
                    });
            }
        }
        Ok(AppEnv::Local)
    }

    /// Loads `.env.<env>` and then `.env` from `dir`. Variables already set in the
    /// process win, and the environment-specific file wins over the shared one.
    pub fn load_dotenv_files(self, dir: &Path) -> Result<Vec<String>, dotenvy::Error> {
        let mut loaded = Vec::new();
        for name in [format!(".env.{}", self.as_str()), ".env".to_owned()] {
            let path = dir.join(&name);
            if path.is_file() {
                dotenvy::from_path(&path)?;
                loaded.push(name);
            }
        }
        Ok(loaded)
    }
}

impl fmt::Display for AppEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AppEnv {
    type Err = UnknownEnvironment;

    /// Accepts the five names and the short forms the seeds use (`dev`, `prod`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "local" => Ok(AppEnv::Local),
            "test" => Ok(AppEnv::Test),
            "development" | "dev" => Ok(AppEnv::Development),
            "staging" => Ok(AppEnv::Staging),
            "production" | "prod" => Ok(AppEnv::Production),
            _ => Err(UnknownEnvironment {
                source_name: "value".to_owned(),
                value: s.to_owned(),
            }),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "{source_name}={value:?} is not an environment; use one of local, test, development, staging, production"
)]
pub struct UnknownEnvironment {
    pub source_name: String,
    pub value: String,
}

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
