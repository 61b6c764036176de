//! Operating the migrator: the lock, checksums and drift, repair, dry runs.

use migration::cli::{CliError, Command, Invocation, Prompt, StatusFormat, execute};
use migration::environment::AppEnv;
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use std::io;
use std::time::Duration;
use tests::{Backend, Start, TestDb, inspect, run_case};

tests::backend_tests!(
    Empty: ops_two_concurrent_migrators_both_succeed_and_apply_once,
    ops_checksums_are_recorded_with_environment_operator_and_duration,
    ops_edited_applied_migration_stops_the_run_until_repaired,
    ops_applied_migration_missing_from_code_is_reported,
    ops_dry_run_prints_sql_and_changes_nothing,
);

struct NoTerminal;

impl Prompt for NoTerminal {
    fn is_interactive(&self) -> bool {
        false
    }

    fn ask(&mut self, _: &str) -> io::Result<String> {
        Ok(String::new())
    }
}

async fn run(t: &TestDb, command: Command) -> (Result<(), CliError>, String) {
    let invocation = Invocation {
        env: AppEnv::Test,
        target: t.target(),
        schema: None,
        command,
        confirm: None,
        lock_timeout: Duration::from_secs(60),
        table_locks: migration::cli::TableLocks::DEFAULT,
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let result = execute(&invocation, &mut NoTerminal, &mut out, &mut err).await;
    (result, String::from_utf8(out).expect("utf-8"))
}

fn up() -> Command {
    Command::Up {
        num: None,
        dry_run: false,
    }
}

fn status_json() -> Command {
    Command::Status {
        format: StatusFormat::Json,
    }
}

async fn exec(t: &TestDb, sql: &str) {
    t.db.execute_raw(Statement::from_string(t.db_backend(), sql.to_owned()))
        .await
        .expect("runs");
}

async fn count(t: &TestDb, sql: &str) -> i64 {
    let row =
        t.db.query_one_raw(Statement::from_string(t.db_backend(), sql.to_owned()))
            .await
            .expect("counts")
            .expect("row");
    row.try_get_by_index::<i64>(0)
        .or_else(|_| row.try_get_by_index::<i32>(0).map(i64::from))
        .expect("a count")
}

async fn ops_two_concurrent_migrators_both_succeed_and_apply_once(t: TestDb) {
    let (a, b) = tokio::join!(run(&t, up()), run(&t, up()));
    a.0.expect("the first migrator succeeds");
    b.0.expect("the second waits for the lock, finds nothing pending, and succeeds");
    let total = Migrator::migrations().len() as i64;
    assert_eq!(
        count(&t, "SELECT COUNT(*) FROM seaql_migrations").await,
        total,
        "each migration applied once"
    );
    assert_eq!(
        count(&t, "SELECT COUNT(*) FROM migration_checksums").await,
        total
    );
    let applied_lines = a.1.matches("applied m").count() + b.1.matches("applied m").count();
    assert_eq!(
        applied_lines as i64, total,
        "the work was not done twice:\n{}\n{}",
        a.1, b.1
    );
}

async fn ops_checksums_are_recorded_with_environment_operator_and_duration(t: TestDb) {
    run(&t, up()).await.0.expect("up");
    let (status, out) = run(&t, status_json()).await;
    status.expect("status is clean");
    let report: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let applied = report["applied"].as_array().expect("a list");
    assert_eq!(applied.len(), Migrator::migrations().len());
    for migration in applied {
        assert_eq!(
            migration["checksum"].as_str().map(str::len),
            Some(64),
            "{migration}"
        );
        assert_eq!(migration["environment"], "test");
        assert!(
            migration["applied_by"]
                .as_str()
                .is_some_and(|by| !by.is_empty())
        );
        assert!(migration["duration_ms"].as_i64().is_some_and(|ms| ms >= 0));
    }
    for list in ["modified", "missing", "unrecorded", "pending"] {
        assert_eq!(report[list].as_array().map(Vec::len), Some(0), "{list}");
    }
    // A rollback forgets its checksum; applying again records it anew.
    run(
        &t,
        Command::Down {
            num: 2,
            dry_run: false,
        },
    )
    .await
    .0
    .expect("down");
    let total = Migrator::migrations().len() as i64;
    assert_eq!(
        count(&t, "SELECT COUNT(*) FROM migration_checksums").await,
        total - 2
    );
    run(&t, up()).await.0.expect("up again");
    assert_eq!(
        count(&t, "SELECT COUNT(*) FROM migration_checksums").await,
        total
    );
}

async fn ops_edited_applied_migration_stops_the_run_until_repaired(t: TestDb) {
    run(
        &t,
        Command::Up {
            num: Some(3),
            dry_run: false,
        },
    )
    .await
    .0
    .expect("up 3");
    // What an edit to an applied migration looks like from the database's side: the
    // SQL the code renders no longer matches what was recorded when it ran.
    let first = Migrator::migrations()[0].name().to_owned();
    exec(
        &t,
        &format!(
            "UPDATE migration_checksums SET checksum = '{}' WHERE version = '{first}'",
            "0".repeat(64)
        ),
    )
    .await;
    let before = inspect::schema(&t.db).await;

    let (status, out) = run(&t, status_json()).await;
    assert!(
        matches!(status, Err(CliError::Drift(_))),
        "status fails for CI: {status:?}"
    );
    let report: serde_json::Value = serde_json::from_str(&out).expect("JSON is printed anyway");
    assert_eq!(report["modified"][0], first.as_str());
    let (result, _) = run(&t, up()).await;
    match &result {
        Err(e @ CliError::Drift(message)) => {
            assert!(
                message.contains(&first) && message.contains("repair"),
                "{message}"
            );
            assert_eq!(e.exit_code(), 3);
        }
        other => panic!("the run must stop: {other:?}"),
    }
    assert_eq!(inspect::schema(&t.db).await, before, "nothing ran");

    run(&t, Command::Repair)
        .await
        .0
        .expect("repair accepts the current SQL");
    let repaired = count(&t, &format!("SELECT COUNT(*) FROM migration_checksums WHERE version = '{first}' AND repaired_at IS NOT NULL AND previous_checksum IS NOT NULL")).await;
    assert_eq!(repaired, 1, "the repair is recorded");
    run(&t, status_json())
        .await
        .0
        .expect("status is clean again");
    run(&t, up()).await.0.expect("and runs proceed");
}

async fn ops_applied_migration_missing_from_code_is_reported(t: TestDb) {
    run(&t, up()).await.0.expect("up");
    exec(
        &t,
        "INSERT INTO seaql_migrations (version, applied_at) VALUES ('m20990101_000001_gone', 0)",
    )
    .await;
    let (status, out) = run(&t, status_json()).await;
    assert!(matches!(status, Err(CliError::Drift(_))), "{status:?}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(report["missing"][0], "m20990101_000001_gone");
    let (result, _) = run(
        &t,
        Command::Down {
            num: 1,
            dry_run: false,
        },
    )
    .await;
    assert!(matches!(result, Err(CliError::Drift(_))), "{result:?}");
    let (repair, _) = run(&t, Command::Repair).await;
    assert!(
        matches!(repair, Err(CliError::Drift(_))),
        "a missing file cannot be repaired: {repair:?}"
    );
}

async fn ops_dry_run_prints_sql_and_changes_nothing(t: TestDb) {
    let empty = inspect::schema(&t.db).await;
    let (result, sql) = run(
        &t,
        Command::Up {
            num: None,
            dry_run: true,
        },
    )
    .await;
    result.expect("dry run");
    assert!(
        sql.contains("CREATE TABLE") && sql.contains("-- m20261122_000001"),
        "{sql:.200}"
    );
    assert_eq!(
        inspect::schema(&t.db).await,
        empty,
        "not even the bookkeeping table"
    );
    run(&t, up()).await.0.expect("up");
    let migrated = inspect::schema(&t.db).await;
    let (result, sql) = run(
        &t,
        Command::Down {
            num: 3,
            dry_run: true,
        },
    )
    .await;
    result.expect("dry run down");
    assert!(
        sql.contains("DROP TABLE") && sql.matches("(down)").count() == 3,
        "{sql}"
    );
    assert_eq!(inspect::schema(&t.db).await, migrated);
}

/// The schema minus the migrator's own bookkeeping.
async fn application_schema(t: &TestDb) -> Vec<String> {
    inspect::schema(&t.db)
        .await
        .into_iter()
        .filter(|line| {
            !line.contains("seaql_migrations")
                && !line.contains("migration_checksums")
                && !line.contains("migration_lock")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_dry_run_sql_applied_by_psql_builds_the_same_schema_as_up() {
    run_case(
        Backend::Postgres,
        "ops_dry_run_psql",
        Start::Empty,
        |t| async move {
            let by_psql = t.sibling(Start::Empty).await;
            let (result, sql) = run(
                &t,
                Command::Up {
                    num: None,
                    dry_run: true,
                },
            )
            .await;
            result.expect("dry run");
            let file = std::env::temp_dir().join(format!("dry-run-{}.sql", std::process::id()));
            std::fs::write(&file, &sql).expect("writes the script");
            let psql = std::process::Command::new("psql")
                .args([
                    "-X",
                    "-q",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-d",
                    &by_psql.url,
                    "-f",
                ])
                .arg(&file)
                .output()
                .expect("psql runs");
            let _ = std::fs::remove_file(&file);
            assert!(
                psql.status.success(),
                "psql: {}",
                String::from_utf8_lossy(&psql.stderr)
            );
            run(&t, up()).await.0.expect("up");
            assert_eq!(t.db_backend(), DbBackend::Postgres);
            assert_eq!(
                application_schema(&by_psql).await,
                application_schema(&t).await
            );
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_tenants_isolated_by_schema_and_database_are_provisioned_and_migrated() {
    use entity::tenancy::tenants::IsolationLevel;
    use migration::cli::TenantAction;
    use service::tenancy::{NewTenant, create_tenant};
    run_case(Backend::Postgres, "ops_tenant_provisioning", Start::Migrated, |t| async move {
        let (deps, _) = tests::fixtures::deps();
        let owner = tests::fixtures::user(&t.db, &deps, "owner").await;
        for (slug, level) in [
            ("alpha", IsolationLevel::Schema),
            ("beta-corp", IsolationLevel::Schema),
            ("gamma", IsolationLevel::Database),
            ("shared-one", IsolationLevel::Shared),
        ] {
            let mut input = NewTenant::parse(slug, slug).expect("valid");
            input.isolation_level = level;
            create_tenant(&t.db, &deps, owner.id, input, &tests::fixtures::meta()).await.expect("tenant");
        }
        let tenants = |action| Command::Tenants { action };
        let (status, _) = run(&t, tenants(TenantAction::Status { format: StatusFormat::Json })).await;
        assert!(matches!(status, Err(CliError::Drift(_))), "unprovisioned tenants fail the status: {status:?}");

        run(&t, tenants(TenantAction::Provision { slug: "alpha".into() })).await.0.expect("provisions alpha");
        let (shared, _) = run(&t, tenants(TenantAction::Provision { slug: "shared-one".into() })).await;
        assert!(matches!(shared, Err(CliError::Config(_))), "shared tenants need nothing: {shared:?}");
        let (up, out) = run(&t, tenants(TenantAction::Up)).await;
        up.expect("provisions the rest");
        assert!(out.contains("beta-corp (schema tenant_beta_corp)") && out.contains("gamma (database"), "{out}");
        let (status, out) = run(&t, tenants(TenantAction::Status { format: StatusFormat::Json })).await;
        status.expect("everything is current");
        let report: serde_json::Value = serde_json::from_str(&out).expect("JSON");
        assert_eq!(report.as_array().map(Vec::len), Some(3), "the shared tenant is not listed");

        for schema in ["tenant_alpha", "tenant_beta_corp"] {
            let tables = count(
                &t,
                &format!(
                    "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '{schema}'
                       AND table_name IN ('teams', 'team_members', 'invitations', 'role_assignments', 'policies', 'seaql_migrations')"
                ),
            )
            .await;
            assert_eq!(tables, 6, "{schema} holds the tenant-scoped tables");
        }
        // A row in the tenant's schema still references the global tables.
        exec(
            &t,
            "INSERT INTO tenant_alpha.teams (id, tenant_id, name)
             SELECT gen_random_uuid(), id, 'Engineering' FROM public.tenants WHERE slug = 'alpha'",
        )
        .await;
        let database = migration::tenant_schemas::database_name(&t.target().database(), "gamma");
        let gamma = t.target().with_database(&database);
        let db = sea_orm::Database::connect(gamma.connect_options(None)).await.expect("gamma's database exists");
        let applied = db
            .query_one_raw(Statement::from_string(DbBackend::Postgres, "SELECT COUNT(*) FROM seaql_migrations".to_owned()))
            .await
            .expect("query")
            .expect("row")
            .try_get_by_index::<i64>(0)
            .expect("count");
        db.close().await.ok();
        assert_eq!(applied, Migrator::migrations().len() as i64, "a database tenant gets the whole schema");
        run(&t, tenants(TenantAction::Up)).await.0.expect("running again changes nothing");
        exec(&t, &format!("DROP DATABASE \"{database}\" WITH (FORCE)")).await;
    })
    .await;
}
