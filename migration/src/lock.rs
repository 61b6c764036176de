//! One migrator at a time per database: a PostgreSQL advisory lock or a MariaDB named
//! lock, held by the CLI's single connection for its whole run. SQLite has neither; a
//! one-row table serves there (a crashed run leaves its row: the timeout message says
//! how to remove it).

use sea_orm_migration::sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement,
};
use std::time::{Duration, Instant};

/// First key of the PostgreSQL two-key advisory lock; the second is a hash of the
/// database and schema, so migrations of other databases do not wait for each other.
const PG_LOCK_CLASS: i32 = 7_210_000;
const PG_LOCK_KEY: &str = "hashtext(current_database() || '/' || current_schema() || '/migrate')";
const MYSQL_LOCK_NAME: &str = "CONCAT('migrate:', DATABASE())";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another migration holds the lock on this database ({holder}); gave up after {waited:?}"
    )]
    Timeout { holder: String, waited: Duration },
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// A held lock. Release it with [`MigrationLock::release`]; if the process dies
/// instead, the server releases it with the session.
#[derive(Debug)]
pub struct MigrationLock {
    backend: DbBackend,
}

impl MigrationLock {
    /// Takes the lock, waiting up to `timeout` and saying who holds it while waiting.
    pub async fn acquire(
        db: &DatabaseConnection,
        timeout: Duration,
        mut on_wait: impl FnMut(&str),
    ) -> Result<Self, LockError> {
        let backend = db.get_database_backend();
        let started = Instant::now();
        let mut told = false;
        loop {
            if try_lock(db).await? {
                return Ok(Self { backend });
            }
            let holder = holder(db).await?;
            if started.elapsed() >= timeout {
                return Err(LockError::Timeout {
                    holder,
                    waited: started.elapsed(),
                });
            }
            if !told {
                on_wait(&holder);
                told = true;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    pub async fn release(self, db: &DatabaseConnection) -> Result<(), DbErr> {
        let sql = match self.backend {
            DbBackend::Postgres => {
                format!("SELECT pg_advisory_unlock({PG_LOCK_CLASS}, {PG_LOCK_KEY})")
            }
            DbBackend::MySql => format!("SELECT RELEASE_LOCK({MYSQL_LOCK_NAME})"),
            _ => format!("DELETE FROM {SQLITE_LOCK_TABLE} WHERE id = 1"),
        };
        match db.execute_unprepared(&sql).await {
            // `fresh` drops every table, this one included: then there is nothing to free.
            Err(e)
                if self.backend == DbBackend::Sqlite && e.to_string().contains("no such table") =>
            {
                Ok(())
            }
            other => other.map(|_| ()),
        }
    }
}

const SQLITE_LOCK_TABLE: &str = "migration_lock";

async fn try_lock(db: &DatabaseConnection) -> Result<bool, DbErr> {
    let backend = db.get_database_backend();
    if backend == DbBackend::Sqlite {
        db.execute_unprepared(&format!(
            "CREATE TABLE IF NOT EXISTS {SQLITE_LOCK_TABLE} (id INTEGER PRIMARY KEY CHECK (id = 1), holder TEXT NOT NULL, since TEXT NOT NULL)"
        ))
        .await?;
        let taken = db
            .execute_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "INSERT OR IGNORE INTO {SQLITE_LOCK_TABLE} (id, holder, since) VALUES (1, ?, ?)"
                ),
                [
                    format!(
                        "pid {} ({})",
                        std::process::id(),
                        crate::tracking::operator()
                    )
                    .into(),
                    chrono::Utc::now().to_rfc3339().into(),
                ],
            ))
            .await?;
        return Ok(taken.rows_affected() == 1);
    }
    let sql = match backend {
        DbBackend::Postgres => {
            format!(
                "SELECT CASE WHEN pg_try_advisory_lock({PG_LOCK_CLASS}, {PG_LOCK_KEY}) THEN 1 ELSE 0 END"
            )
        }
        _ => format!("SELECT COALESCE(GET_LOCK({MYSQL_LOCK_NAME}, 0), 0)"),
    };
    let row = db
        .query_one_raw(Statement::from_string(backend, sql))
        .await?;
    let got = match row {
        Some(row) => row
            .try_get_by_index::<i32>(0)
            .or_else(|_| row.try_get_by_index::<i64>(0).map(|v| v as i32))?,
        None => 0,
    };
    Ok(got == 1)
}

/// Who holds the lock, as the server sees them.
async fn holder(db: &DatabaseConnection) -> Result<String, DbErr> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Sqlite => format!(
            "SELECT holder || ', since ' || since || ' (if no migrator is running, remove it: DELETE FROM {SQLITE_LOCK_TABLE})' FROM {SQLITE_LOCK_TABLE}"
        ),
        DbBackend::Postgres => format!(
            "SELECT 'pid ' || a.pid || ', user ' || a.usename || ', application ' || coalesce(nullif(a.application_name, ''), '?')
                    || ', from ' || coalesce(host(a.client_addr), 'local socket') || ', since ' || a.backend_start
               FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
              WHERE l.locktype = 'advisory' AND l.granted AND l.classid = {PG_LOCK_CLASS}
                AND l.objid::bigint = ({PG_LOCK_KEY})::bigint & 4294967295
              LIMIT 1"
        ),
        _ => format!(
            "SELECT CONCAT('connection ', p.id, ', user ', p.user, ', from ', p.host, ', busy for ', p.time, 's')
               FROM information_schema.processlist p WHERE p.id = IS_USED_LOCK({MYSQL_LOCK_NAME})"
        ),
    };
    let row = db
        .query_one_raw(Statement::from_string(backend, sql))
        .await?;
    Ok(match row {
        Some(row) => row
            .try_get_by_index::<String>(0)
            .unwrap_or_else(|_| "unknown session".into()),
        None => "a session that has just finished".into(),
    })
}
