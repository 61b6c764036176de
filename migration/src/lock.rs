//! One migrator at a time per database: a PostgreSQL advisory lock or a MariaDB named
//! lock, held by the CLI's single connection for its whole run. SQLite has neither; a
//! one-row table serves there (a crashed run leaves its row: the timeout message says
//! how to remove it). The seeder takes a second lock of the same kind ([`LockPurpose`]),
//! so two seeders load one after the other.

use sea_orm_migration::sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement,
};
use std::time::{Duration, Instant};

/// First key of the PostgreSQL two-key advisory lock; the second is a hash of the
/// database and schema, so migrations of other databases do not wait for each other.
const PG_LOCK_CLASS: i32 = 7_210_000;

/// What a lock serialises. Each purpose is its own lock: a seeder holding its lock
/// still takes the migration lock to migrate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockPurpose {
    /// Running migrations (the CLI, and the seeder when it migrates).
    Migrate,
    /// Loading fixtures (the seeder).
    Seed,
}

impl LockPurpose {
    fn as_str(self) -> &'static str {
        match self {
            LockPurpose::Migrate => "migrate",
            LockPurpose::Seed => "seed",
        }
    }

    /// Who else might hold it, for messages.
    fn holder_kind(self) -> &'static str {
        match self {
            LockPurpose::Migrate => "another migration",
            LockPurpose::Seed => "another seeder",
        }
    }

    /// Second key of the PostgreSQL advisory lock: the database, schema and purpose,
    /// so runs on other databases do not wait for each other.
    fn pg_key(self) -> String {
        format!(
            "hashtext(current_database() || '/' || current_schema() || '/{}')",
            self.as_str()
        )
    }

    fn mysql_name(self) -> String {
        format!("CONCAT('{}:', DATABASE())", self.as_str())
    }

    fn sqlite_table(self) -> &'static str {
        match self {
            LockPurpose::Migrate => "migration_lock",
            LockPurpose::Seed => "seed_lock",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{holder_kind} holds the lock on this database ({holder}); gave up after {waited:?}")]
    Timeout {
        holder_kind: &'static str,
        holder: String,
        waited: Duration,
    },
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// A held lock. Release it with [`MigrationLock::release`]; if the process dies
/// instead, the server releases it with the session.
#[derive(Debug)]
pub struct MigrationLock {
    backend: DbBackend,
    purpose: LockPurpose,
}

impl MigrationLock {
    /// Takes the migration lock, waiting up to `timeout` and saying who holds it while
    /// waiting.
    pub async fn acquire(
        db: &DatabaseConnection,
        timeout: Duration,
        on_wait: impl FnMut(&str),
    ) -> Result<Self, LockError> {
        Self::acquire_for(db, LockPurpose::Migrate, timeout, on_wait).await
    }

    /// Takes the lock of `purpose`; see [`MigrationLock::acquire`].
    pub async fn acquire_for(
        db: &DatabaseConnection,
        purpose: LockPurpose,
        timeout: Duration,
        mut on_wait: impl FnMut(&str),
    ) -> Result<Self, LockError> {
        let backend = db.get_database_backend();
        let started = Instant::now();
        let mut told = false;
        loop {
            if try_lock(db, purpose).await? {
                return Ok(Self { backend, purpose });
            }
            let holder = holder(db, purpose).await?;
            if started.elapsed() >= timeout {
                return Err(LockError::Timeout {
                    holder_kind: purpose.holder_kind(),
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
        let purpose = self.purpose;
        let sql = match self.backend {
            DbBackend::Postgres => {
                format!(
                    "SELECT pg_advisory_unlock({PG_LOCK_CLASS}, {})",
                    purpose.pg_key()
                )
            }
            DbBackend::MySql => format!("SELECT RELEASE_LOCK({})", purpose.mysql_name()),
            _ => format!("DELETE FROM {} WHERE id = 1", purpose.sqlite_table()),
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

async fn try_lock(db: &DatabaseConnection, purpose: LockPurpose) -> Result<bool, DbErr> {
    let backend = db.get_database_backend();
    let (pg_key, mysql_name) = (purpose.pg_key(), purpose.mysql_name());
    if backend == DbBackend::Sqlite {
        let table = purpose.sqlite_table();
        db.execute_unprepared(&format!(
            "CREATE TABLE IF NOT EXISTS {table} (id INTEGER PRIMARY KEY CHECK (id = 1), holder TEXT NOT NULL, since TEXT NOT NULL)"
        ))
        .await?;
        let taken = db
            .execute_raw(Statement::from_sql_and_values(
                backend,
                format!("INSERT OR IGNORE INTO {table} (id, holder, since) VALUES (1, ?, ?)"),
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
                "SELECT CASE WHEN pg_try_advisory_lock({PG_LOCK_CLASS}, {pg_key}) THEN 1 ELSE 0 END"
            )
        }
        _ => format!("SELECT COALESCE(GET_LOCK({mysql_name}, 0), 0)"),
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
async fn holder(db: &DatabaseConnection, purpose: LockPurpose) -> Result<String, DbErr> {
    let backend = db.get_database_backend();
    let (pg_key, mysql_name, table) = (
        purpose.pg_key(),
        purpose.mysql_name(),
        purpose.sqlite_table(),
    );
    let sql = match backend {
        DbBackend::Sqlite => format!(
            "SELECT holder || ', since ' || since || ' (if no such process is running, remove it: DELETE FROM {table})' FROM {table}"
        ),
        DbBackend::Postgres => format!(
            "SELECT 'pid ' || a.pid || ', user ' || a.usename || ', application ' || coalesce(nullif(a.application_name, ''), '?')
                    || ', from ' || coalesce(host(a.client_addr), 'local socket') || ', since ' || a.backend_start
               FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
              WHERE l.locktype = 'advisory' AND l.granted AND l.classid = {PG_LOCK_CLASS}
                AND l.objid::bigint = ({pg_key})::bigint & 4294967295
              LIMIT 1"
        ),
        _ => format!(
            "SELECT CONCAT('connection ', p.id, ', user ', p.user, ', from ', p.host, ', busy for ', p.time, 's')
               FROM information_schema.processlist p WHERE p.id = IS_USED_LOCK({mysql_name})"
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
