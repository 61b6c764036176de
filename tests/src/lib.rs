//! The test harness: a fresh database per test on every backend.
//!
//! `backend_tests!` turns each `async fn case(t: TestDb)` into one `#[tokio::test]` per
//! backend (`sqlite::case`, `postgres::case`, `mysql::case`). Each gets its own
//! database, created for the test and dropped after it, pass or fail.
//!
//! - SQLite: a file in the temp directory.
//! - PostgreSQL (`TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`):
//!   `CREATE DATABASE ... TEMPLATE` of a database migrated once per migration
//!   fingerprint, which is much faster than migrating every time.
//! - MariaDB/MySQL (`TEST_MYSQL_URL`, default `mysql://root@127.0.0.1:3306`).
//!
//! - PgBouncer in transaction pooling mode in front of that PostgreSQL
//!   (`TEST_PGBOUNCER_URL`, default `postgres://127.0.0.1:6432`), for the tests that
//!   go through it.
//!
//! A server that cannot be reached is skipped with a notice on stderr, unless
//! `REQUIRE_BACKENDS` (e.g. `sqlite,postgres,mysql,pgbouncer`) names it: then the test
//! fails.

pub mod access_world;
pub mod fixtures;
pub mod inspect;
pub mod privacy;
pub mod runtime;
pub mod tamper;

use futures::FutureExt;
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend};
use service::connection::{self, DbTarget, PoolSettings};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    MySql,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
            Backend::MySql => "mysql",
        }
    }

    fn admin_url(self) -> String {
        let (var, default) = match self {
            Backend::Sqlite => return String::new(),
            Backend::Postgres => (
                "TEST_POSTGRES_URL",
                "postgres://postgres@127.0.0.1:5432/postgres",
            ),
            Backend::MySql => ("TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306"),
        };
        std::env::var(var)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.to_owned())
    }

    fn required(self) -> bool {
        std::env::var("REQUIRE_BACKENDS")
            .unwrap_or_default()
            .split(',')
            .any(|name| name.trim().eq_ignore_ascii_case(self.name()))
    }
}

/// What a test's database holds when the test starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Nothing: for tests of migrations and of the tools that run them.
    Empty,
    /// Every migration applied.
    Migrated,
}

/// A database that exists for one test.
pub struct TestDb {
    /// What the service runs on. On a migrated PostgreSQL database this is the
    /// runtime role, as in production ([`RUNTIME_LOGIN`], a member of `app_service`):
    /// row-level security and the per-table privileges apply to every test.
    pub db: DatabaseConnection,
    /// The schema owner (a superuser on PostgreSQL): for reading back what a test
    /// wrote, and for the platform work the runtime role may not do (system roles,
    /// the seeder, migrations). Elsewhere the same connection as `db`.
    pub owner: DatabaseConnection,
    pub backend: Backend,
    /// The owner's connection URL (no password in test set-ups).
    pub url: String,
    test_name: String,
    created: Arc<Mutex<Vec<Created>>>,
}

/// A database to drop when the test ends.
#[derive(Clone, Debug)]
struct Created {
    backend: Backend,
    name: String,
}

impl TestDb {
    pub fn target(&self) -> DbTarget {
        DbTarget::from_url(&self.url).expect("test URLs are valid")
    }

    /// PostgreSQL: this database as the runtime login ([`RUNTIME_LOGIN`]) connects to
    /// it, through `via` (e.g. PgBouncer's address) or directly.
    pub fn runtime_target(&self, via: Option<&url::Url>) -> DbTarget {
        let mut url = url::Url::parse(&self.url).expect("test URLs are valid");
        url.set_username(RUNTIME_LOGIN)
            .expect("a URL with a host takes a user name");
        if let Some(via) = via {
            url.set_host(via.host_str()).expect("a host");
            url.set_port(via.port()).expect("a port");
        }
        DbTarget::from_url(url.as_str()).expect("test URLs are valid")
    }

    pub fn db_backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    /// Another fresh database on the same backend, dropped with this one.
    pub async fn sibling(&self, start: Start) -> TestDb {
        let sibling_name = format!("{}_b", self.test_name);
        create(self.backend, &sibling_name, start, self.created.clone())
            .await
            .expect("the backend was reachable a moment ago")
    }
}

/// Runs `case` against a fresh database of `backend`; the macro calls this.
pub async fn run_case<F, Fut>(backend: Backend, test_name: &str, start: Start, case: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()>,
{
    if !reachable(backend).await {
        if backend.required() {
            panic!(
                "{} is required by REQUIRE_BACKENDS but cannot be reached at {}",
                backend.name(),
                backend.admin_url()
            );
        }
        notify_skipped(backend);
        return;
    }
    let created = Arc::new(Mutex::new(Vec::new()));
    let test_db = match create(backend, test_name, start, created.clone()).await {
        Ok(db) => db,
        Err(e) => panic!("cannot create a {} test database: {e}", backend.name()),
    };
    let outcome = AssertUnwindSafe(case(test_db)).catch_unwind().await;
    let to_drop = created.lock().map(|c| c.clone()).unwrap_or_default();
    for db in to_drop {
        drop_database(&db).await;
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Says once per process that a backend's tests are skipped. Written to the terminal
/// through `/dev/stderr`: libtest captures the output of passing tests, and a silent
/// skip would look like a pass.
fn notify_skipped(backend: Backend) {
    use std::io::Write;
    static POSTGRES: std::sync::Once = std::sync::Once::new();
    static MYSQL: std::sync::Once = std::sync::Once::new();
    let once = match backend {
        Backend::Sqlite => return,
        Backend::Postgres => &POSTGRES,
        Backend::MySql => &MYSQL,
    };
    once.call_once(|| {
        let notice = format!(
            "NOTICE: {} tests are skipped: no server at {} (set REQUIRE_BACKENDS to make this a failure)",
            backend.name(),
            backend.admin_url()
        );
        match std::fs::OpenOptions::new().append(true).open("/dev/stderr") {
            Ok(mut tty) => {
                let _ = writeln!(tty, "{notice}");
            }
            Err(_) => eprintln!("{notice}"),
        }
    });
}

async fn reachable(backend: Backend) -> bool {
    static POSTGRES: OnceCell<bool> = OnceCell::const_new();
    static MYSQL: OnceCell<bool> = OnceCell::const_new();
    let cell = match backend {
        Backend::Sqlite => return true,
        Backend::Postgres => &POSTGRES,
        Backend::MySql => &MYSQL,
    };
    *cell
        .get_or_init(|| async {
            match admin_connection(backend).await {
                Ok(db) => {
                    let ok = db.execute_unprepared("SELECT 1").await.is_ok();
                    db.close().await.ok();
                    ok
                }
                Err(_) => false,
            }
        })
        .await
}

async fn admin_connection(backend: Backend) -> Result<DatabaseConnection, sea_orm::DbErr> {
    let mut target = DbTarget::from_url(&backend.admin_url()).expect("admin URLs are valid");
    target.connect_timeout = std::time::Duration::from_secs(3);
    Ok(connection::connect(&target, &PoolSettings::tool("tests")).await?)
}

/// A database name from the test name: lowercase, at most 63 bytes, unique per run.
fn database_name(test_name: &str) -> String {
    let id = uuid::Uuid::now_v7().simple().to_string();
    let suffix = &id[id.len() - 10..];
    let stem: String = test_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(50)
        .collect();
    format!("t_{stem}_{suffix}")
}

fn url_for(backend: Backend, name: &str) -> String {
    match backend {
        Backend::Sqlite => format!("sqlite://{}?mode=rwc", sqlite_path(name).display()),
        _ => {
            let mut url = url::Url::parse(&backend.admin_url()).expect("admin URL is valid");
            url.set_path(name);
            url.to_string()
        }
    }
}

fn sqlite_path(name: &str) -> PathBuf {
    std::env::temp_dir()
        .join("saas-db-tests")
        .join(format!("{name}.sqlite"))
}

async fn create(
    backend: Backend,
    test_name: &str,
    start: Start,
    created: Arc<Mutex<Vec<Created>>>,
) -> Result<TestDb, sea_orm::DbErr> {
    let name = database_name(test_name);
    match backend {
        Backend::Sqlite => {
            let path = sqlite_path(&name);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| sea_orm::DbErr::Custom(e.to_string()))?;
            }
        }
        Backend::Postgres => {
            let admin = admin_connection(backend).await?;
            let sql = match start {
                Start::Migrated => {
                    let template = postgres_template().await?;
                    format!(r#"CREATE DATABASE "{name}" TEMPLATE "{template}""#)
                }
                Start::Empty => format!(r#"CREATE DATABASE "{name}""#),
            };
            let result = execute_with_retry(&admin, &sql).await;
            admin.close().await.ok();
            result?;
        }
        Backend::MySql => {
            let admin = admin_connection(backend).await?;
            let result = admin
                .execute_unprepared(&format!(
                    "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
                ))
                .await;
            admin.close().await.ok();
            result?;
        }
    }
    if let Ok(mut list) = created.lock() {
        list.push(Created {
            backend,
            name: name.clone(),
        });
    }
    let url = url_for(backend, &name);
    let owner = connect(&url).await?;
    // PostgreSQL databases come migrated from the template.
    if start == Start::Migrated && backend != Backend::Postgres {
        Migrator::up(&owner, None).await?;
    }
    let db = if start == Start::Migrated && backend == Backend::Postgres {
        let mut runtime = url::Url::parse(&url).expect("valid");
        runtime
            .set_username(RUNTIME_LOGIN)
            .expect("a URL with a host takes a user name");
        connect(runtime.as_str()).await?
    } else {
        owner.clone()
    };
    Ok(TestDb {
        db,
        owner,
        backend,
        url,
        test_name: test_name.to_owned(),
        created,
    })
}

async fn connect(url: &str) -> Result<DatabaseConnection, sea_orm::DbErr> {
    let target = DbTarget::from_url(url).expect("test URLs are valid");
    Ok(connection::connect(&target, &pool(5)).await?)
}

/// The pool a test opens: the application's settings (statement timeouts included),
/// at most `max_connections`, the `public` schema.
pub fn pool(max_connections: u32) -> PoolSettings {
    PoolSettings {
        max_connections,
        schema: Some("public".to_owned()),
        ..PoolSettings::application()
    }
}

/// PgBouncer's address when it answers; `None` (the test is skipped, with a notice)
/// when it does not, unless `REQUIRE_BACKENDS` names `pgbouncer`: then the test fails.
pub async fn pgbouncer() -> Option<url::Url> {
    let raw = std::env::var("TEST_PGBOUNCER_URL")
        .unwrap_or_else(|_| "postgres://127.0.0.1:6432".to_owned());
    let url = url::Url::parse(&raw).expect("TEST_PGBOUNCER_URL is a URL");
    let mut probe = url.clone();
    probe.set_username("postgres").expect("a host");
    probe.set_path("postgres");
    let mut target = DbTarget::from_url(probe.as_str()).expect("valid");
    target.connect_timeout = std::time::Duration::from_secs(3);
    let settings = PoolSettings::tool("tests").through_pgbouncer();
    let reachable = match connection::connect(&target, &settings).await {
        Ok(db) => {
            let ok = db.execute_unprepared("SELECT 1").await.is_ok();
            db.close().await.ok();
            ok
        }
        Err(_) => false,
    };
    if reachable {
        return Some(url);
    }
    let required = std::env::var("REQUIRE_BACKENDS")
        .unwrap_or_default()
        .split(',')
        .any(|name| name.trim().eq_ignore_ascii_case("pgbouncer"));
    if required {
        panic!("pgbouncer is required by REQUIRE_BACKENDS but cannot be reached at {raw}");
    }
    eprintln!(
        "note: PgBouncer not reachable at {raw}; skipping (set REQUIRE_BACKENDS to fail instead)"
    );
    None
}

/// The login the PostgreSQL tests run the service as: a member of `app_service`,
/// like an application's own login in production.
pub const RUNTIME_LOGIN: &str = "saas_test_app";

/// Two clones of one template at the same instant can collide ("source database is
/// being accessed by other users"); a short retry settles it.
async fn execute_with_retry(db: &DatabaseConnection, sql: &str) -> Result<(), sea_orm::DbErr> {
    let mut attempt = 0;
    loop {
        match db.execute_unprepared(sql).await {
            Ok(_) => return Ok(()),
            Err(e) if attempt < 20 && e.to_string().contains("being accessed by other users") => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The migrated template database for this build's migrations, created once (under
/// an advisory lock, so concurrent test processes build it once between them).
async fn postgres_template() -> Result<String, sea_orm::DbErr> {
    static TEMPLATE: OnceCell<String> = OnceCell::const_new();
    TEMPLATE
        .get_or_try_init(|| async {
            let name = format!("tpl_saas_{}", env!("MIGRATIONS_FINGERPRINT"));
            let admin = admin_connection(Backend::Postgres).await?;
            admin
                .execute_unprepared("SELECT pg_advisory_lock(7210001)")
                .await?;
            let mut result = build_template(&admin, &name).await;
            if result.is_ok() {
                // The roles exist once a template was migrated.
                result = admin
                    .execute_unprepared(&format!(
                        "DO $$ BEGIN
                           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{RUNTIME_LOGIN}') THEN
                             CREATE ROLE {RUNTIME_LOGIN} LOGIN NOSUPERUSER NOBYPASSRLS INHERIT IN ROLE app_service;
                           END IF;
                         END $$"
                    ))
                    .await
                    .map(|_| ());
            }
            admin
                .execute_unprepared("SELECT pg_advisory_unlock(7210001)")
                .await
                .ok();
            admin.close().await.ok();
            result.map(|()| name)
        })
        .await
        .cloned()
}

async fn build_template(admin: &DatabaseConnection, name: &str) -> Result<(), sea_orm::DbErr> {
    let exists = admin
        .query_one_raw(sea_orm::Statement::from_string(
            DbBackend::Postgres,
            format!("SELECT 1 FROM pg_database WHERE datname = '{name}'"),
        ))
        .await?
        .is_some();
    if exists {
        return Ok(());
    }
    // Build under a temporary name and rename when complete, so a half-built
    // template is never cloned.
    let building = format!("{name}_building");
    admin
        .execute_unprepared(&format!(
            r#"DROP DATABASE IF EXISTS "{building}" WITH (FORCE)"#
        ))
        .await?;
    admin
        .execute_unprepared(&format!(r#"CREATE DATABASE "{building}""#))
        .await?;
    let url = url_for(Backend::Postgres, &building);
    let target = DbTarget::from_url(&url).expect("valid");
    let db = connection::connect(&target, &pool(1)).await?;
    let migrated = Migrator::up(&db, None).await;
    db.close().await.ok();
    migrated?;
    admin
        .execute_unprepared(&format!(
            r#"ALTER DATABASE "{building}" RENAME TO "{name}""#
        ))
        .await?;
    Ok(())
}

async fn drop_database(db: &Created) {
    match db.backend {
        Backend::Sqlite => {
            let path = sqlite_path(&db.name);
            for suffix in ["", "-wal", "-shm", ".migrate-lock", ".seed-lock"] {
                let mut file = path.clone().into_os_string();
                file.push(suffix);
                let _ = std::fs::remove_file(file);
            }
        }
        Backend::Postgres => {
            if let Ok(admin) = admin_connection(db.backend).await {
                let _ = admin
                    .execute_unprepared(&format!(
                        r#"DROP DATABASE IF EXISTS "{}" WITH (FORCE)"#,
                        db.name
                    ))
                    .await;
                admin.close().await.ok();
            }
        }
        Backend::MySql => {
            if let Ok(admin) = admin_connection(db.backend).await {
                let _ = admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS `{}`", db.name))
                    .await;
                admin.close().await.ok();
            }
        }
    }
}

/// One `#[tokio::test]` per backend for each listed case.
///
/// ```text
/// backend_tests!(Migrated: register_user_valid_input_creates_profile, ...);
/// ```
#[macro_export]
macro_rules! backend_tests {
    ($start:ident: $($case:ident),+ $(,)?) => {
        $crate::backend_tests!(@backend sqlite, Sqlite, $start: $($case),+);
        $crate::backend_tests!(@backend postgres, Postgres, $start: $($case),+);
        $crate::backend_tests!(@backend mysql, MySql, $start: $($case),+);
    };
    (@backend $module:ident, $backend:ident, $start:ident: $($case:ident),+) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    $crate::run_case(
                        $crate::Backend::$backend,
                        stringify!($case),
                        $crate::Start::$start,
                        super::$case,
                    )
                    .await;
                }
            )+
        }
    };
}
