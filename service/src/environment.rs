//! The deployment environment an application or tool runs in (`APP_ENV`).
//!
//! It decides which `.env` files load, whether the development field-encryption key
//! may be used, what the migration CLI and the seeder ask before writing, and the
//! environment tag of API keys.

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
