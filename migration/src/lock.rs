//! One migrator at a time per database: a PostgreSQL advisory lock or a MariaDB named
//! lock, held by the CLI's single connection for its whole run. SQLite has neither; an
//! exclusive lock on a file next to the database (`<file>.migrate-lock`) serves there.
//! All three are freed when the holder ends, however it ends, so a crashed or killed
//! run never leaves a lock behind. The seeder takes a second lock of the same kind
//! ([`LockPurpose`]), so two seeders load one after the other.

use sea_orm_migration::sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement,
};
use std::fs::{File, TryLockError};
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};
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

    /// The SQLite lock file's suffix, after the database file's name.
    fn sqlite_suffix(self) -> &'static str {
        match self {
            LockPurpose::Migrate => ".migrate-lock",
            LockPurpose::Seed => ".seed-lock",
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
    #[error("cannot use the lock file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
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
    /// SQLite: the locked file (closing it frees the lock); `None` for an in-memory
    /// database, which no other process can reach.
    file: Option<File>,
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
        let sqlite_file = match backend {
            DbBackend::Sqlite => match sqlite_lock_path(db, purpose).await? {
                Some(path) => Some(open_lock_file(path)?),
                None => {
                    return Ok(Self {
                        backend,
                        purpose,
                        file: None,
                    });
                }
            },
            _ => None,
        };
        let started = Instant::now();
        let mut told = false;
        loop {
            let holder = match &sqlite_file {
                Some((path, file)) => match file.try_lock() {
                    Ok(()) => {
                        let (_, mut file) = sqlite_file.expect("matched Some");
                        write_holder(&mut file);
                        return Ok(Self {
                            backend,
                            purpose,
                            file: Some(file),
                        });
                    }
                    Err(TryLockError::WouldBlock) => file_holder(path),
                    Err(TryLockError::Error(source)) => {
                        return Err(LockError::File {
                            path: path.clone(),
                            source,
                        });
                    }
                },
                None => {
                    if try_lock(db, purpose).await? {
                        return Ok(Self {
                            backend,
                            purpose,
                            file: None,
                        });
                    }
                    holder(db, purpose).await?
                }
            };
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
            // Closing the file frees the lock. The file stays: deleting it could let two
            // processes lock two different files of the same name.
            _ => {
                drop(self.file);
                return Ok(());
            }
        };
        db.execute_unprepared(&sql).await.map(|_| ())
    }
}

/// `<database file><suffix>`, from the connection itself; `None` for an in-memory
/// database.
async fn sqlite_lock_path(
    db: &DatabaseConnection,
    purpose: LockPurpose,
) -> Result<Option<PathBuf>, DbErr> {
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT file FROM pragma_database_list WHERE name = 'main'".to_owned(),
        ))
        .await?;
    let file: Option<String> = match rows.first() {
        Some(row) => row.try_get_by_index(0)?,
        None => None,
    };
    Ok(file
        .filter(|f| !f.is_empty())
        .map(|f| PathBuf::from(format!("{f}{}", purpose.sqlite_suffix()))))
}

fn open_lock_file(path: PathBuf) -> Result<(PathBuf, File), LockError> {
    let opened = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path);
    match opened {
        Ok(file) => Ok((path, file)),
        Err(source) => Err(LockError::File { path, source }),
    }
}

/// Notes the holder in the lock file, for the message of whoever waits. Best effort:
/// the lock itself is what counts.
fn write_holder(file: &mut File) {
    let _ = file.set_len(0).and_then(|()| file.rewind()).and_then(|()| {
        write!(
            file,
            "pid {} ({}), since {}",
            std::process::id(),
            crate::tracking::operator(),
            chrono::Utc::now().to_rfc3339()
        )
    });
}

fn file_holder(path: &Path) -> String {
    let noted = std::fs::read_to_string(path).unwrap_or_default();
    let noted = noted.trim();
    format!(
        "{} (lock file {}, freed when that process ends)",
        if noted.is_empty() { "a process" } else { noted },
        path.display()
    )
}

async fn try_lock(db: &DatabaseConnection, purpose: LockPurpose) -> Result<bool, DbErr> {
    let backend = db.get_database_backend();
    let (pg_key, mysql_name) = (purpose.pg_key(), purpose.mysql_name());
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
    let (pg_key, mysql_name) = (purpose.pg_key(), purpose.mysql_name());
    let sql = match backend {
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
