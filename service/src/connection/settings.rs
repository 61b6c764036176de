//! How many connections, for how long, and with which session settings: the pool half
//! of the configuration, read from the same environment as the target.

use super::target::TargetError;
use std::time::Duration;

/// Pool sizes, timeouts and per-connection session settings.
///
/// [`PoolSettings::application`] holds the defaults for an application's runtime pool;
/// [`PoolSettings::from_env`] starts from them and applies the `DB_POOL_*` and related
/// variables; [`PoolSettings::tool`] is the one-connection pool of the command-line tools.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolSettings {
    /// Connections kept open even when idle (`DB_POOL_MIN`, default 0).
    pub min_connections: u32,
    /// The most connections the pool opens (`DB_POOL_MAX`, default 10).
    pub max_connections: u32,
    /// How long a caller waits for a free connection (`DB_ACQUIRE_TIMEOUT`, seconds);
    /// `None`: the target's connect timeout.
    pub acquire_timeout: Option<Duration>,
    /// An idle connection above the minimum is closed after this long
    /// (`DB_IDLE_TIMEOUT`, seconds, 0 = never; default 600).
    pub idle_timeout: Option<Duration>,
    /// A connection is replaced after this long, so server-side memory and changed
    /// credentials or DNS are picked up (`DB_MAX_LIFETIME`, seconds, 0 = never;
    /// default 1800).
    pub max_lifetime: Option<Duration>,
    /// PostgreSQL `application_name`, shown in `pg_stat_activity`
    /// (`DB_APPLICATION_NAME`; default: the program's name).
    pub application_name: Option<String>,
    /// PostgreSQL `statement_timeout` (`DB_STATEMENT_TIMEOUT_MS`, 0 = off; default 30 s).
    pub statement_timeout: Option<Duration>,
    /// PostgreSQL `idle_in_transaction_session_timeout`: the server ends a session that
    /// holds a transaction open without sending anything, releasing its locks
    /// (`DB_IDLE_IN_TRANSACTION_TIMEOUT_MS`, 0 = off; default 60 s).
    pub idle_in_transaction_timeout: Option<Duration>,
    /// PostgreSQL schema first on the `search_path` (`DATABASE_SCHEMA`; default the
    /// server's, `public`).
    pub schema: Option<String>,
    /// Connections go through PgBouncer in transaction pooling mode (`DB_PGBOUNCER`):
    /// no statement cache and no startup parameters beyond `application_name`, which
    /// PgBouncer 1.18 refuses. See README, "PgBouncer".
    pub pgbouncer: bool,
    /// Sessions that cannot write: PostgreSQL's `default_transaction_read_only`; SQLite
    /// opened read-only, without creating a missing file or changing its journal mode.
    /// For tools that only read (`insights`).
    pub read_only: bool,
}

impl PoolSettings {
    /// The defaults for an application's pool of runtime-role connections.
    pub fn application() -> Self {
        Self {
            min_connections: 0,
            max_connections: 10,
            acquire_timeout: None,
            idle_timeout: Some(Duration::from_secs(600)),
            max_lifetime: Some(Duration::from_secs(1800)),
            application_name: program_name(),
            statement_timeout: Some(Duration::from_secs(30)),
            idle_in_transaction_timeout: Some(Duration::from_secs(60)),
            schema: None,
            pgbouncer: false,
            read_only: false,
        }
    }

    /// One connection and no statement timeouts: the migration CLI's session lock and
    /// every statement of a run share the connection, and an index build may take longer
    /// than any request should.
    pub fn tool(application_name: &str) -> Self {
        Self {
            min_connections: 0,
            max_connections: 1,
            statement_timeout: None,
            idle_in_transaction_timeout: None,
            application_name: Some(application_name.to_owned()),
            ..Self::application()
        }
    }

    /// These settings for connections through PgBouncer in transaction pooling mode:
    /// without the session settings it cannot carry (statement timeouts, schema). Set
    /// those on the login role instead (`ALTER ROLE app_login SET statement_timeout =
    /// '30s'`), which the server applies to every server connection PgBouncer opens.
    pub fn through_pgbouncer(self) -> Self {
        Self {
            pgbouncer: true,
            statement_timeout: None,
            idle_in_transaction_timeout: None,
            schema: None,
            ..self
        }
    }

    /// [`PoolSettings::application`] with the process environment applied.
    pub fn from_env() -> Result<Self, TargetError> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    /// [`PoolSettings::from_env`] over any source of variables (tests use a map).
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, TargetError> {
        let var = |name: &'static str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .map(|v| (name, v))
        };
        let number = |(name, value): (&'static str, String)| {
            value
                .parse::<u64>()
                .map_err(|_| TargetError::InvalidNumber {
                    var: name,
                    value: value.clone(),
                })
        };
        let mut settings = Self::application();
        if let Some(found) = var("DB_POOL_MIN") {
            settings.min_connections = number(found)?.try_into().unwrap_or(u32::MAX);
        }
        if let Some(found) = var("DB_POOL_MAX") {
            settings.max_connections = number(found)?.try_into().unwrap_or(u32::MAX);
        }
        if let Some(found) = var("DB_ACQUIRE_TIMEOUT") {
            settings.acquire_timeout = Some(Duration::from_secs(number(found)?.max(1)));
        }
        // 0 means "off" for every duration but the acquire timeout.
        let off_or = |found: (&'static str, String), unit: fn(u64) -> Duration| {
            number(found).map(|n| (n > 0).then(|| unit(n)))
        };
        if let Some(found) = var("DB_IDLE_TIMEOUT") {
            settings.idle_timeout = off_or(found, Duration::from_secs)?;
        }
        if let Some(found) = var("DB_MAX_LIFETIME") {
            settings.max_lifetime = off_or(found, Duration::from_secs)?;
        }
        if let Some(found) = var("DB_STATEMENT_TIMEOUT_MS") {
            settings.statement_timeout = off_or(found, Duration::from_millis)?;
        }
        if let Some(found) = var("DB_IDLE_IN_TRANSACTION_TIMEOUT_MS") {
            settings.idle_in_transaction_timeout = off_or(found, Duration::from_millis)?;
        }
        if let Some((_, name)) = var("DB_APPLICATION_NAME") {
            settings.application_name = Some(name);
        }
        if let Some((_, schema)) = var("DATABASE_SCHEMA") {
            settings.schema = Some(schema);
        }
        if let Some((name, value)) = var("DB_PGBOUNCER") {
            settings.pgbouncer = super::target::parse_flag(name, value)?;
            if settings.pgbouncer {
                // Set on the role instead (see README, "PgBouncer"); the defaults are
                // dropped silently, an explicit value is refused below.
                if var("DB_STATEMENT_TIMEOUT_MS").is_none() {
                    settings.statement_timeout = None;
                }
                if var("DB_IDLE_IN_TRANSACTION_TIMEOUT_MS").is_none() {
                    settings.idle_in_transaction_timeout = None;
                }
            }
        }
        settings.validate()?;
        Ok(settings)
    }

    /// Refuses settings that cannot work: an empty pool, a minimum above the maximum,
    /// a pool timeout over a day or a PostgreSQL timeout over its limit (about 24.8
    /// days), and startup parameters that PgBouncer would reject.
    pub fn validate(&self) -> Result<(), TargetError> {
        if self.max_connections == 0 || self.min_connections > self.max_connections {
            return Err(TargetError::PoolBounds {
                min: self.min_connections,
                max: self.max_connections,
            });
        }
        let day = Duration::from_secs(86_400);
        // PostgreSQL keeps its timeouts in an int of milliseconds.
        let postgres_max = Duration::from_millis(i32::MAX as u64);
        let limits = [
            ("DB_ACQUIRE_TIMEOUT", self.acquire_timeout, day),
            ("DB_IDLE_TIMEOUT", self.idle_timeout, day),
            ("DB_MAX_LIFETIME", self.max_lifetime, day),
            (
                "DB_STATEMENT_TIMEOUT_MS",
                self.statement_timeout,
                postgres_max,
            ),
            (
                "DB_IDLE_IN_TRANSACTION_TIMEOUT_MS",
                self.idle_in_transaction_timeout,
                postgres_max,
            ),
        ];
        for (var, value, max) in limits {
            if let Some(value) = value.filter(|value| *value > max) {
                return Err(TargetError::OutOfRange {
                    var,
                    value: format!("{value:?}"),
                    max: format!("{max:?}"),
                });
            }
        }
        if self.pgbouncer {
            let refused = [
                (self.statement_timeout.is_some(), "DB_STATEMENT_TIMEOUT_MS"),
                (
                    self.idle_in_transaction_timeout.is_some(),
                    "DB_IDLE_IN_TRANSACTION_TIMEOUT_MS",
                ),
                (self.schema.is_some(), "DATABASE_SCHEMA"),
                (self.read_only, "a read-only session"),
            ];
            if let Some((_, var)) = refused.into_iter().find(|(set, _)| *set) {
                return Err(TargetError::NotThroughPgBouncer { var });
            }
        }
        Ok(())
    }

    /// The PostgreSQL settings sent as startup parameters (`-c name=value`): applied by
    /// the server before the first statement, with no extra round trip.
    pub(crate) fn postgres_startup_settings(&self) -> Vec<(&'static str, String)> {
        let mut settings = Vec::new();
        if let Some(timeout) = self.statement_timeout {
            settings.push(("statement_timeout", timeout.as_millis().to_string()));
        }
        if let Some(timeout) = self.idle_in_transaction_timeout {
            settings.push((
                "idle_in_transaction_session_timeout",
                timeout.as_millis().to_string(),
            ));
        }
        if let Some(schemas) = &self.schema {
            settings.push(("search_path", quoted_search_path(schemas)));
        }
        if self.read_only {
            settings.push(("default_transaction_read_only", "on".to_owned()));
        }
        settings
    }
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self::application()
    }
}

/// `tenant_acme,public` as `"tenant_acme","public"`: each schema name taken literally
/// (no case folding), as an identifier and never as SQL. A name already in double
/// quotes is kept as written, commas inside it included (`"a,b"` is one schema).
fn quoted_search_path(schemas: &str) -> String {
    let mut names: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = schemas.chars().peekable();
    let finish = |current: &mut String, names: &mut Vec<String>| {
        let name = current.trim();
        if !name.is_empty() {
            if name.len() >= 2 && name.starts_with('"') && name.ends_with('"') {
                names.push(name.to_owned());
            } else {
                names.push(format!("\"{}\"", name.replace('"', "\"\"")));
            }
        }
        current.clear();
    };
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                current.push_str("\"\"");
                chars.next();
            }
            '"' => {
                quoted = !quoted;
                current.push('"');
            }
            ',' if !quoted => finish(&mut current, &mut names),
            _ => current.push(c),
        }
    }
    finish(&mut current, &mut names);
    names.join(",")
}

/// The running program's file name, e.g. `seeder`; what `pg_stat_activity` shows.
fn program_name() -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    let stem = exe.file_stem()?.to_str()?;
    // Test and bench binaries carry a hash suffix: `access-1a2b3c4d`.
    let name = match stem.rsplit_once('-') {
        Some((name, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            name
        }
        _ => stem,
    };
    Some(name.chars().take(63).collect())
}

#[cfg(test)]
mod tests {
    use super::quoted_search_path;

    #[test]
    fn search_path_names_are_quoted_and_quoted_names_keep_their_commas() {
        assert_eq!(
            quoted_search_path("tenant_acme, public"),
            r#""tenant_acme","public""#
        );
        assert_eq!(quoted_search_path(r#""a,b",public"#), r#""a,b","public""#);
        assert_eq!(quoted_search_path(r#""say ""hi""""#), r#""say ""hi""""#);
        assert_eq!(quoted_search_path(r#"My"Schema"#), r#""My""Schema""#);
        assert_eq!(quoted_search_path(" , "), "");
    }
}
