//! Where to connect: `DATABASE_URL`, or the `DB_*` variables, resolved
//! into one URL plus a description that is safe to print.

use sea_orm::DbBackend;
use std::fmt;
use std::time::Duration;
use url::Url;

/// A resolved database target. `Display` masks the password.
#[derive(Clone)]
pub struct DbTarget {
    url: Url,
    pub backend: DbBackend,
    /// How long to keep trying to connect (`DB_CONNECT_TIMEOUT`, seconds; default 10).
    pub connect_timeout: Duration,
}

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error(
        "no database configured: set DATABASE_URL (or pass -u), or DB_HOST and DB_NAME \
         (with DB_BACKEND, DB_PORT, DB_USERNAME, DB_PASSWORD as needed)"
    )]
    Missing,
    #[error("{var} is not a valid database URL: {reason}")]
    InvalidUrl { var: &'static str, reason: String },
    #[error(
        "{var} uses the scheme {scheme:?}; use postgres://, mysql:// (MariaDB too) or sqlite://"
    )]
    UnsupportedScheme { var: &'static str, scheme: String },
    #[error("DB_BACKEND={0:?} is not a backend; use postgres, mysql or sqlite")]
    UnknownBackend(String),
    #[error("DB_PORT={0:?} is not a port number")]
    InvalidPort(String),
    #[error("DB_CONNECT_TIMEOUT={0:?} is not a whole number of seconds")]
    InvalidTimeout(String),
    #[error("set only one of DB_PASSWORD, DB_PASSWORD_FILE and DB_PASSWORD_COMMAND")]
    ConflictingSecrets,
    #[error("cannot read DB_PASSWORD_FILE {path}: {reason}")]
    PasswordFile { path: String, reason: String },
    /// The command's output is never shown: it may be the secret.
    #[error("DB_PASSWORD_COMMAND failed: {0}")]
    PasswordCommand(String),
    #[error("{var}={value:?} is not a boolean (true/false)")]
    InvalidFlag { var: &'static str, value: String },
    #[error("{var} is set but DB_SSL_ENABLED is not: set DB_SSL_ENABLED=true to use TLS")]
    TlsNotEnabled { var: &'static str },
    #[error("{var}={value:?} is not a whole non-negative number")]
    InvalidNumber { var: &'static str, value: String },
    #[error("{var} is {value}; the most it may be is {max}")]
    OutOfRange {
        var: &'static str,
        value: String,
        max: String,
    },
    #[error(
        "the pool needs at least one connection and DB_POOL_MIN ({min}) at most DB_POOL_MAX ({max})"
    )]
    PoolBounds { min: u32, max: u32 },
    #[error(
        "{var} cannot be sent through PgBouncer (DB_PGBOUNCER=true): it refuses startup \
         parameters. Set it on the login role instead: ALTER ROLE <login> SET ..."
    )]
    NotThroughPgBouncer { var: &'static str },
}

impl DbTarget {
    /// Parses a URL given directly (flag or `DATABASE_URL`).
    pub fn from_url(raw: &str) -> Result<Self, TargetError> {
        Self::parse(raw, "DATABASE_URL")
    }

    /// `explicit` (a `-u` flag) wins, then `DATABASE_URL`, then the `DB_*` variables.
    pub fn from_env(explicit: Option<&str>) -> Result<Self, TargetError> {
        Self::from_lookup(explicit, &|name| std::env::var(name).ok())
    }

    /// [`DbTarget::from_env`] over any source of variables (tests use a map).
    pub fn from_lookup(
        explicit: Option<&str>,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, TargetError> {
        let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let mut target = Self::from_vars(explicit, &var)?;
        target.apply_secrets_and_tls(&var)?;
        if let Some(raw) = var("DB_CONNECT_TIMEOUT") {
            let secs: u64 = raw
                .trim()
                .parse()
                .map_err(|_| TargetError::InvalidTimeout(raw.clone()))?;
            target.connect_timeout = Duration::from_secs(secs.max(1));
        }
        Ok(target)
    }

    fn from_vars(
        explicit: Option<&str>,
        var: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, TargetError> {
        if let Some(raw) = explicit.filter(|s| !s.trim().is_empty()) {
            return Self::parse(raw, "DATABASE_URL");
        }
        if let Some(raw) = var("DATABASE_URL") {
            return Self::parse(&raw, "DATABASE_URL");
        }
        let Some(host) = var("DB_HOST") else {
            return Err(TargetError::Missing);
        };
        let name = var("DB_NAME").ok_or(TargetError::Missing)?;
        let backend = var("DB_BACKEND").unwrap_or_else(|| "postgres".to_owned());
        let scheme = match backend.to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" => "postgres",
            "mysql" | "mariadb" => "mysql",
            _ => return Err(TargetError::UnknownBackend(backend)),
        };
        let mut url = Url::parse(&format!("{scheme}://placeholder/"))
            .expect("a literal URL with a known scheme parses");
        url.set_host(Some(&host))
            .map_err(|e| TargetError::InvalidUrl {
                var: "DB_HOST",
                reason: e.to_string(),
            })?;
        if let Some(port) = var("DB_PORT") {
            let port: u16 = port
                .parse()
                .map_err(|_| TargetError::InvalidPort(port.clone()))?;
            // Cannot fail: the URL has a host.
            let _ = url.set_port(Some(port));
        }
        if let Some(user) = var("DB_USERNAME") {
            let _ = url.set_username(&user);
        }
        if let Some(password) = var("DB_PASSWORD") {
            let _ = url.set_password(Some(&password));
        }
        url.set_path(&name);
        Self::parse(url.as_str(), "DB_*")
    }

    fn parse(raw: &str, var: &'static str) -> Result<Self, TargetError> {
        let url = Url::parse(raw.trim()).map_err(|e| TargetError::InvalidUrl {
            var,
            reason: e.to_string(),
        })?;
        let backend = match url.scheme() {
            "postgres" | "postgresql" => DbBackend::Postgres,
            "mysql" | "mariadb" => DbBackend::MySql,
            "sqlite" => DbBackend::Sqlite,
            other => {
                return Err(TargetError::UnsupportedScheme {
                    var,
                    scheme: other.to_owned(),
                });
            }
        };
        let mut url = url;
        // Normalise the aliases to the schemes the drivers expect; both sides are
        // non-special schemes, so the change cannot fail.
        match url.scheme() {
            "postgresql" => {
                let _ = url.set_scheme("postgres");
            }
            "mariadb" => {
                let _ = url.set_scheme("mysql");
            }
            _ => {}
        }
        Ok(Self {
            url,
            backend,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        })
    }

    /// The full URL, password included: pass it to the driver, never print it.
    pub fn connection_url(&self) -> &str {
        self.url.as_str()
    }

    pub fn host(&self) -> String {
        match self.backend {
            DbBackend::Sqlite => "(local file)".to_owned(),
            _ => {
                let host = self.url.host_str().unwrap_or("localhost");
                match self.url.port() {
                    Some(port) => format!("{host}:{port}"),
                    None => host.to_owned(),
                }
            }
        }
    }

    /// The database name (SQLite: the file path) as the driver uses it: percent-decoded,
    /// so `DB_NAME="app data"` and `.../app%20data` both name `app data`.
    pub fn database(&self) -> String {
        let raw = match self.backend {
            // sqlite://path/to/file.db or sqlite:///abs/path: host + path is the file.
            DbBackend::Sqlite => {
                let mut path = String::new();
                if let Some(host) = self.url.host_str() {
                    path.push_str(host);
                }
                path.push_str(self.url.path());
                if path.is_empty() {
                    return ":memory:".to_owned();
                }
                path
            }
            _ => self.url.path().trim_start_matches('/').to_owned(),
        };
        percent_encoding::percent_decode_str(&raw)
            .decode_utf8_lossy()
            .into_owned()
    }

    pub fn user(&self) -> String {
        match (self.backend, self.url.username()) {
            (DbBackend::Sqlite, _) => "-".to_owned(),
            (_, "") => "(driver default)".to_owned(),
            (_, user) => user.to_owned(),
        }
    }

    /// The URL with its password replaced by `****`.
    pub fn masked_url(&self) -> String {
        let mut url = self.url.clone();
        if url.password().is_some() {
            let _ = url.set_password(Some("****"));
        }
        url.to_string()
    }
}

impl fmt::Display for DbTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked_url())
    }
}

impl fmt::Debug for DbTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbTarget")
            .field("url", &self.masked_url())
            .field("backend", &self.backend)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

impl DbTarget {
    /// `DB_PASSWORD_FILE` / `DB_PASSWORD_COMMAND` (secret managers) and
    /// `DB_SSL_*`, applied to the URL however it was given.
    fn apply_secrets_and_tls(
        &mut self,
        var: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), TargetError> {
        if self.backend == DbBackend::Sqlite {
            return Ok(());
        }
        let (file, command) = (var("DB_PASSWORD_FILE"), var("DB_PASSWORD_COMMAND"));
        let plain = var("DB_PASSWORD").is_some() && var("DATABASE_URL").is_none();
        if [file.is_some(), command.is_some(), plain]
            .iter()
            .filter(|set| **set)
            .count()
            > 1
        {
            return Err(TargetError::ConflictingSecrets);
        }
        let secret = match (file, command) {
            (Some(path), _) => Some(read_password_file(&path)?),
            (_, Some(command)) => Some(run_password_command(&command)?),
            _ => None,
        };
        if let Some(secret) = secret {
            let _ = self.url.set_password(Some(&secret));
        }

        let enabled = match var("DB_SSL_ENABLED") {
            None => false,
            Some(value) => parse_flag("DB_SSL_ENABLED", value)?,
        };
        let files = [
            ("DB_SSL_CA", var("DB_SSL_CA")),
            ("DB_SSL_CERT", var("DB_SSL_CERT")),
            ("DB_SSL_KEY", var("DB_SSL_KEY")),
        ];
        if !enabled {
            if let Some((name, _)) = files.iter().find(|(_, value)| value.is_some()) {
                return Err(TargetError::TlsNotEnabled { var: name });
            }
            return Ok(());
        }
        // Verified TLS: the server's certificate must chain to the CA (DB_SSL_CA, else
        // the system's roots) and name the host we connect to.
        let (mode_key, mode, ca_key, cert_key, key_key) = match self.backend {
            DbBackend::Postgres => ("sslmode", "verify-full", "sslrootcert", "sslcert", "sslkey"),
            _ => (
                "ssl-mode",
                "VERIFY_IDENTITY",
                "ssl-ca",
                "ssl-cert",
                "ssl-key",
            ),
        };
        let mut pairs = self.url.query_pairs_mut();
        pairs.append_pair(mode_key, mode);
        for ((_, value), key) in files.iter().zip([ca_key, cert_key, key_key]) {
            if let Some(path) = value {
                pairs.append_pair(key, path);
            }
        }
        drop(pairs);
        Ok(())
    }

    /// Whether connections to this target use verified TLS.
    pub fn tls(&self) -> bool {
        self.url.query_pairs().any(|(k, v)| {
            (k == "sslmode" && v == "verify-full") || (k == "ssl-mode" && v == "VERIFY_IDENTITY")
        })
    }
}

/// `true`/`false` and their usual spellings (`1`, `yes`, `on`, ...).
pub(crate) fn parse_flag(var: &'static str, value: String) -> Result<bool, TargetError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(TargetError::InvalidFlag { var, value }),
    }
}

fn read_password_file(path: &str) -> Result<String, TargetError> {
    let text = std::fs::read_to_string(path).map_err(|e| TargetError::PasswordFile {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let secret = text.trim_end_matches(['\r', '\n']).to_owned();
    if secret.is_empty() {
        return Err(TargetError::PasswordFile {
            path: path.to_owned(),
            reason: "the file is empty".into(),
        });
    }
    Ok(secret)
}

/// Runs the command with `sh -c` and takes its standard output, minus the final
/// newline, as the password.
///
/// On failure only the exit status is reported, never what the command printed: a
/// secret manager's CLI may write the secret (or a token) to either stream.
fn run_password_command(command: &str) -> Result<String, TargetError> {
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| TargetError::PasswordCommand(format!("cannot start it: {e}")))?;
    if !output.status.success() {
        return Err(TargetError::PasswordCommand(format!(
            "it {}; its output is not shown because it may contain the secret. \
             Run the command yourself to see why it failed",
            describe_exit(output.status)
        )));
    }
    let secret = String::from_utf8(output.stdout)
        .map_err(|_| TargetError::PasswordCommand("its output is not UTF-8".into()))?
        .trim_end_matches(['\r', '\n'])
        .to_owned();
    if secret.is_empty() {
        return Err(TargetError::PasswordCommand("it printed nothing".into()));
    }
    Ok(secret)
}

/// "exited with status 3" or "was killed by signal 9", without the command's output.
fn describe_exit(status: std::process::ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exited with status {code}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return format!("was killed by signal {signal}");
        }
    }
    "ended abnormally".to_owned()
}

impl DbTarget {
    /// The same server and credentials, another database (for database-isolated tenants).
    pub fn with_database(&self, database: &str) -> DbTarget {
        let mut url = self.url.clone();
        url.set_path(database);
        DbTarget {
            url,
            backend: self.backend,
            connect_timeout: self.connect_timeout,
        }
    }
}

impl DbTarget {
    /// The server's host and TCP port (the backend's default port when the URL names
    /// none); `None` for SQLite and for Unix-socket URLs.
    pub fn tcp_endpoint(&self) -> Option<(String, u16)> {
        let default_port = match self.backend {
            DbBackend::Postgres => 5432,
            DbBackend::MySql => 3306,
            _ => return None,
        };
        if self
            .url
            .query_pairs()
            .any(|(key, value)| key == "host" && value.starts_with('/'))
        {
            return None;
        }
        let host = self.url.host_str()?.trim_matches(['[', ']']).to_owned();
        Some((host, self.url.port().unwrap_or(default_port)))
    }
}
