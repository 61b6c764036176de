//! One way to connect, for applications, the command-line tools, the tests and the
//! benchmarks: a [`DbTarget`] (where, from `DATABASE_URL` or `DB_*`) and
//! [`PoolSettings`] (how many connections, timeouts, session settings) make a
//! SeaORM pool whose every connection has `TCP_NODELAY` on.
//!
//! ```no_run
//! # async fn run() -> Result<(), service::connection::ConnectError> {
//! use service::connection::{DbTarget, PoolSettings, connect};
//! let target = DbTarget::from_env(None)?;        // DATABASE_URL, or DB_HOST/DB_NAME/...
//! let settings = PoolSettings::from_env()?;      // DB_POOL_MAX, DB_STATEMENT_TIMEOUT_MS, ...
//! let db = connect(&target, &settings).await?;
//! # Ok(()) }
//! ```

mod nodelay;
mod settings;
mod target;

pub use nodelay::{DatabaseSocket, database_sockets};
pub use settings::PoolSettings;
pub use target::{DbTarget, TargetError};

use sea_orm::sqlx::sqlite::SqliteJournalMode;
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbBackend, DbErr};
use std::time::Duration;

/// How long a pooled connection may sit idle before it is pinged on checkout (as
/// HikariCP skips its check for connections used within the last half second).
const PING_AFTER_IDLE: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Config(#[from] TargetError),
    #[error("cannot connect to {target}: {source}")]
    Connect {
        /// The target with its password masked.
        target: String,
        #[source]
        source: DbErr,
    },
}

impl From<ConnectError> for DbErr {
    fn from(error: ConnectError) -> Self {
        match error {
            ConnectError::Connect { source, .. } => source,
            config @ ConnectError::Config(_) => DbErr::Custom(config.to_string()),
        }
    }
}

/// PostgreSQL: the role this connection acts as, and whether row-level security binds it
/// (not for a superuser or a `BYPASSRLS` role, such as the schema owner). `None` on the
/// other backends, which have no row-level security. Tools that write or read every
/// tenant's rows (the seeder, the privacy jobs) ask first, and refuse a role it binds
/// rather than silently doing part of their work.
pub async fn row_security_role<C: sea_orm::ConnectionTrait>(
    db: &C,
) -> Result<Option<(String, bool)>, sea_orm::DbErr> {
    if db.get_database_backend() != sea_orm::DbBackend::Postgres {
        return Ok(None);
    }
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT current_user::text, NOT (rolsuper OR rolbypassrls)
               FROM pg_roles WHERE rolname = current_user",
        ))
        .await?;
    row.map(|row| Ok((row.try_get_by_index(0)?, row.try_get_by_index(1)?)))
        .transpose()
}

/// Opens a pool to `target` with `settings`.
pub async fn connect(
    target: &DbTarget,
    settings: &PoolSettings,
) -> Result<DatabaseConnection, ConnectError> {
    let options = connect_options(target, settings)?;
    Database::connect(options)
        .await
        .map_err(|source| ConnectError::Connect {
            target: target.to_string(),
            source,
        })
}

/// The SeaORM options [`connect`] uses, for callers that open the pool themselves.
/// Change them through [`PoolSettings`]: a later `map_sqlx_*_pool_opts` call replaces
/// the hook that sets `TCP_NODELAY`.
pub fn connect_options(
    target: &DbTarget,
    settings: &PoolSettings,
) -> Result<ConnectOptions, TargetError> {
    settings.validate()?;
    let mut options = ConnectOptions::new(target.connection_url().to_owned());
    options
        .sqlx_logging(false)
        .connect_timeout(target.connect_timeout)
        // The pool retries a refused connection until this runs out.
        .acquire_timeout(settings.acquire_timeout.unwrap_or(target.connect_timeout))
        .min_connections(settings.min_connections)
        .max_connections(settings.max_connections)
        .idle_timeout(settings.idle_timeout)
        .max_lifetime(settings.max_lifetime)
        // Ping a pooled connection before handing it out only when it sat idle (where
        // a server restart, a proxy or a firewall may have dropped it), not on every
        // checkout: a ping is a round trip, as long as a request's one-row read.
        .test_before_acquire_if_idle_for(PING_AFTER_IDLE);
    let server = target
        .tcp_endpoint()
        .map(|(host, port)| nodelay::Server::new(host, port));
    match target.backend {
        DbBackend::Postgres => {
            let startup = settings.postgres_startup_settings();
            let application_name = settings.application_name.clone();
            let pgbouncer = settings.pgbouncer;
            options.map_sqlx_postgres_opts(move |mut pg| {
                if let Some(name) = &application_name {
                    pg = pg.application_name(name);
                }
                if !startup.is_empty() {
                    pg = pg.options(startup.iter().map(|(k, v)| (*k, v)));
                }
                if pgbouncer {
                    // Behind transaction pooling, consecutive transactions of one client
                    // run on different server connections, so a statement prepared in one
                    // does not exist in the next. Uncached statements are prepared anew in
                    // each transaction; PgBouncer's reset query drops them afterwards.
                    pg = pg.statement_cache_capacity(0);
                }
                pg
            });
            if let Some(server) = server {
                options.map_sqlx_postgres_pool_opts(move |pool| server.clone().hook_into(pool));
            }
        }
        DbBackend::MySql => {
            if let Some(server) = server {
                options.map_sqlx_mysql_pool_opts(move |pool| server.clone().hook_into(pool));
            }
        }
        DbBackend::Sqlite if settings.read_only => {
            // Opening may not change the file: no journal mode, no new file.
            options.map_sqlx_sqlite_opts(|sqlite| {
                sqlite
                    .read_only(true)
                    .create_if_missing(false)
                    .busy_timeout(Duration::from_secs(10))
            });
        }
        DbBackend::Sqlite => {
            // WAL and a busy timeout: a second writer waits instead of failing at once.
            options.map_sqlx_sqlite_opts(|sqlite| {
                sqlite
                    .journal_mode(SqliteJournalMode::Wal)
                    .busy_timeout(Duration::from_secs(10))
            });
        }
        _ => {}
    }
    Ok(options)
}
