//! Operating the migrator: the lock, checksums and drift, repair, dry runs.

use migration::cli::{
    CliError, Command, DatabaseAction, Invocation, Prompt, StatusFormat, execute,
};
use migration::environment::AppEnv;
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use service::connection;
use std::io;
use std::time::Duration;
use tests::{Backend, Start, TestDb, inspect, run_case};

tests::backend_tests!(
    Empty: ops_two_concurrent_migrators_both_succeed_and_apply_once,
    ops_checksums_are_recorded_with_environment_operator_and_duration,
    ops_edited_applied_migration_stops_the_run_until_repaired,
    ops_applied_migration_missing_from_code_is_reported,
    ops_dry_run_prints_sql_and_changes_nothing,
    ops_down_all_the_way_on_a_seeded_database_succeeds,
    ops_rolling_back_the_access_event_types_keeps_audit_history,
    ops_tenant_slug_check_accepts_exactly_what_the_service_accepts,
    ops_tenant_slug_check_refuses_existing_bad_slugs_and_changes_nothing,
    ops_database_create_is_idempotent_and_drop_is_refused_in_production,
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
    let (result, out, _) = run_with_err(t, command).await;
    (result, out)
}

/// Like `run`, with what the run wrote to stderr too.
async fn run_with_err(t: &TestDb, command: Command) -> (Result<(), CliError>, String, String) {
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
    (
        result,
        String::from_utf8(out).expect("utf-8"),
        String::from_utf8(err).expect("utf-8"),
    )
}

async fn run_on_target(
    target: service::connection::DbTarget,
    command: Command,
) -> (Result<(), CliError>, String) {
    let invocation = Invocation {
        env: AppEnv::Test,
        target,
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
    t.owner
        .execute_raw(Statement::from_string(t.db_backend(), sql.to_owned()))
        .await
        .expect("runs");
}

async fn count(t: &TestDb, sql: &str) -> i64 {
    let row = t
        .owner
        .query_one_raw(Statement::from_string(t.db_backend(), sql.to_owned()))
        .await
        .expect("counts")
        .expect("row");
    row.try_get_by_index::<i64>(0)
        .or_else(|_| row.try_get_by_index::<i32>(0).map(i64::from))
        .expect("a count")
}

/// Two migrators at once, made to overlap: the test holds the migration lock while
/// both start, so both must wait for it (and say so), then one applies everything
/// and the other finds nothing left.
async fn ops_two_concurrent_migrators_both_succeed_and_apply_once(t: TestDb) {
    let holder = connection::connect(&t.target(), &tests::pool(1))
        .await
        .expect("connects");
    let lock = migration::lock::MigrationLock::acquire(&holder, Duration::from_secs(10), |_| {})
        .await
        .expect("the test holds the lock");
    let release = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        lock.release(&holder).await.expect("lets go");
    };
    let (a, b, ()) = tokio::join!(run_with_err(&t, up()), run_with_err(&t, up()), release);
    for (name, (result, _, err)) in [("first", &a), ("second", &b)] {
        assert!(result.is_ok(), "the {name} migrator succeeds: {result:?}");
        assert!(
            err.contains("waiting for the migration lock"),
            "the {name} migrator waited: {err}"
        );
    }
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
        assert!(
            migration["duration_ms"]
                .as_i64()
                .is_some_and(|ms| (0..60_000).contains(&ms)),
            "a duration in milliseconds: {migration}"
        );
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
    let before = inspect::schema(&t.owner).await;

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
    assert_eq!(inspect::schema(&t.owner).await, before, "nothing ran");

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
    let empty = inspect::schema(&t.owner).await;
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
        inspect::schema(&t.owner).await,
        empty,
        "not even the bookkeeping table"
    );
    run(&t, up()).await.0.expect("up");
    let migrated = inspect::schema(&t.owner).await;
    // Back to (and including) the newest migration that creates a table.
    let num = Migrator::migrations().len() - position_of("m20261122_000018_access_create_policies");
    let (result, sql) = run(
        &t,
        Command::Down {
            num: num as u32,
            dry_run: true,
        },
    )
    .await;
    result.expect("dry run down");
    assert!(
        sql.contains("DROP TABLE") && sql.matches("(down)").count() == num,
        "{sql}"
    );
    assert_eq!(inspect::schema(&t.owner).await, migrated);
}

/// The schema minus the migrator's own bookkeeping.
async fn application_schema(t: &TestDb) -> Vec<String> {
    inspect::schema(&t.owner)
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
        let db = connection::connect(&gamma, &tests::pool(1)).await.expect("gamma's database exists");
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

async fn seeded(t: &TestDb) {
    let options = seeder::SeedOptions {
        database_url: Some(t.url.clone()),
        ..seeder::SeedOptions::default()
    };
    seeder::run(&options, AppEnv::Test, &t.target())
        .await
        .expect("seeds");
}

async fn ops_down_all_the_way_on_a_seeded_database_succeeds(t: TestDb) {
    seeded(&t).await;
    assert!(
        count(&t, "SELECT COUNT(*) FROM audit_logs").await > 0,
        "a database in use"
    );
    let (result, out) = run(
        &t,
        Command::Down {
            num: 1000,
            dry_run: false,
        },
    )
    .await;
    result.expect("every down runs on a seeded database");
    assert_eq!(
        out.matches("rolled back m").count(),
        Migrator::migrations().len(),
        "{out}"
    );
    let left: Vec<String> = inspect::table_names(&t.db)
        .await
        .into_iter()
        .filter(|table| table != "migration_checksums")
        .collect();
    assert!(
        left.is_empty(),
        "only the migrator's bookkeeping is left: {left:?}"
    );
    run(&t, up()).await.0.expect("and everything applies again");
}

async fn ops_rolling_back_the_access_event_types_keeps_audit_history(t: TestDb) {
    seeded(&t).await;
    let name = "m20261122_000019_audit_add_access_event_types";
    let position = Migrator::migrations()
        .iter()
        .position(|m| m.name() == name)
        .expect("the migration exists");
    let audit_rows = count(&t, "SELECT COUNT(*) FROM audit_logs").await;
    let used = count(
        &t,
        "SELECT COUNT(DISTINCT event_type) FROM audit_logs WHERE event_type IN ('role_created', 'team_created', 'invitation_created')",
    )
    .await;
    assert_eq!(used, 3, "the seeded trail uses some of its event types");
    let (result, out) = run(
        &t,
        Command::Down {
            num: (Migrator::migrations().len() - position) as u32,
            dry_run: false,
        },
    )
    .await;
    result.expect("rolls back through the access event types");
    assert!(out.contains(&format!("rolled back {name}")), "{out}");
    assert_eq!(
        count(&t, "SELECT COUNT(*) FROM audit_logs").await,
        audit_rows,
        "no audit row was deleted"
    );
    assert_eq!(
        count(
            &t,
            "SELECT COUNT(*) FROM audit_event_types WHERE event_type IN ('role_created', 'team_created', 'invitation_created')"
        )
        .await,
        3,
        "types the trail uses stay in the catalogue"
    );
    assert_eq!(
        count(&t, "SELECT COUNT(*) FROM audit_event_types WHERE event_type IN ('policy_deleted', 'team_moved')").await,
        0,
        "unused ones are removed"
    );
}

const SLUG_CHECK: &str = "m20261123_000023_tenancy_check_tenant_slug";

fn position_of(name: &str) -> usize {
    Migrator::migrations()
        .iter()
        .position(|m| m.name() == name)
        .expect("the migration exists")
}

/// Inserts a tenant row directly, as any writer other than the service could.
async fn insert_tenant(t: &TestDb, slug: &str) -> Result<(), sea_orm::DbErr> {
    use sea_orm::sea_query::{Alias, Query};
    let insert = Query::insert()
        .into_table(Alias::new("tenants"))
        .columns([
            Alias::new("id"),
            Alias::new("slug"),
            Alias::new("name"),
            Alias::new("features"),
        ])
        .values_panic([
            uuid::Uuid::now_v7().into(),
            slug.into(),
            "Some tenant".into(),
            serde_json::json!({}).into(),
        ])
        .to_owned();
    t.db.execute(&insert).await.map(|_| ())
}

async fn ops_tenant_slug_check_accepts_exactly_what_the_service_accepts(t: TestDb) {
    run(&t, up()).await.0.expect("up");
    let cases = [
        "acme",
        "a1b2",
        "healthy-stellar",
        "a--b",
        "123",
        &"a".repeat(63),
        "Acme",
        "acme-",
        "-acme",
        "ac me",
        "ac_me",
        "acmé",
        "acme\n",
        "ac.me",
        "ac'me",
        "ac\"me",
        "ACME",
        "a;b",
        "a/b",
    ];
    for slug in cases {
        let expected = service::input::Slug::parse(slug).is_ok_and(|s| s.as_str() == slug);
        match insert_tenant(&t, slug).await {
            Ok(()) => assert!(
                expected,
                "{slug:?} was accepted by the database, not by the service"
            ),
            Err(e) => {
                assert!(
                    !expected,
                    "{slug:?} is valid for the service but refused: {e}"
                );
                assert!(
                    e.to_string().contains("ck_tenants_slug_format"),
                    "{slug:?} is refused by the named check: {e}"
                );
            }
        }
    }
    // Renaming to a bad slug is refused as well.
    exec(&t, "DELETE FROM tenants WHERE slug <> 'acme'").await;
    let rename =
        t.db.execute_raw(Statement::from_string(
            t.db_backend(),
            "UPDATE tenants SET slug = 'Acme Corp' WHERE slug = 'acme'".to_owned(),
        ))
        .await
        .expect_err("refused");
    assert!(
        rename.to_string().contains("ck_tenants_slug_format"),
        "{rename}"
    );

    // `down` removes the rule, `up` restores it.
    run(
        &t,
        Command::Down {
            num: (Migrator::migrations().len() - position_of(SLUG_CHECK)) as u32,
            dry_run: false,
        },
    )
    .await
    .0
    .expect("down");
    insert_tenant(&t, "Upper-Case")
        .await
        .expect("no rule after down");
    exec(&t, "DELETE FROM tenants WHERE slug = 'Upper-Case'").await;
    run(&t, up()).await.0.expect("up again");
    assert!(insert_tenant(&t, "Upper-Case").await.is_err());
}

async fn ops_tenant_slug_check_refuses_existing_bad_slugs_and_changes_nothing(t: TestDb) {
    run(
        &t,
        Command::Up {
            num: Some(position_of(SLUG_CHECK) as u32),
            dry_run: false,
        },
    )
    .await
    .0
    .expect("up to the check");
    insert_tenant(&t, "Bad_Slug").await.expect("no rule yet");
    let before = inspect::schema(&t.db).await;
    let (result, _) = run(&t, up()).await;
    let error = result.expect_err("a bad existing slug stops the migration");
    assert!(matches!(error, CliError::Db(_)), "{error:?}");
    assert!(
        error.to_string().contains("ck_tenants_slug_format"),
        "{error}"
    );
    assert_eq!(
        inspect::schema(&t.db).await,
        before,
        "nothing of it was applied"
    );
    exec(
        &t,
        "UPDATE tenants SET slug = 'good-slug' WHERE slug = 'Bad_Slug'",
    )
    .await;
    run(&t, up())
        .await
        .0
        .expect("applies once the row is fixed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_migration_blocked_by_a_table_lock_gives_up_after_its_retries() {
    use migration::cli::TableLocks;
    use sea_orm::TransactionTrait;
    run_case(
        Backend::Postgres,
        "ops_table_lock_timeout",
        Start::Empty,
        |t| async move {
            run(
                &t,
                Command::Up {
                    num: Some(position_of(SLUG_CHECK) as u32),
                    dry_run: false,
                },
            )
            .await
            .0
            .expect("up to the migration that alters tenants");
            // A long transaction elsewhere holds the table the next migration alters.
            let other = connection::connect(&t.target(), &tests::pool(1))
                .await
                .expect("connects");
            let blocker = other.begin().await.expect("begins");
            blocker
                .execute_unprepared("LOCK TABLE tenants IN ACCESS EXCLUSIVE MODE")
                .await
                .expect("locks");

            let invocation = Invocation {
                env: AppEnv::Test,
                target: t.target(),
                schema: None,
                command: up(),
                confirm: None,
                lock_timeout: Duration::from_secs(60),
                table_locks: TableLocks {
                    timeout: Duration::from_millis(200),
                    retries: 2,
                },
            };
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let started = std::time::Instant::now();
            let result = tokio::time::timeout(
                Duration::from_secs(30),
                execute(&invocation, &mut NoTerminal, &mut out, &mut err),
            )
            .await
            .expect("gives up instead of waiting for the other transaction");
            let took = started.elapsed();
            match &result {
                Err(CliError::TableLockTimeout {
                    migration,
                    attempts,
                    timeout,
                }) => {
                    assert_eq!(migration, SLUG_CHECK);
                    assert_eq!(*attempts, 3, "the first try and two retries");
                    assert_eq!(*timeout, Duration::from_millis(200));
                }
                other => panic!("expected a table lock timeout, got {other:?}"),
            }
            let message = result.expect_err("failed").to_string();
            assert!(
                message.contains("pg_stat_activity") && message.contains(SLUG_CHECK),
                "{message}"
            );
            let log = String::from_utf8(err).expect("utf-8");
            assert_eq!(log.matches("trying again").count(), 2, "{log}");
            assert!(
                took >= Duration::from_millis(3 * 200 + 500 + 1000),
                "it waited and backed off: {took:?}"
            );
            assert_eq!(
                count(
                    &t,
                    &format!(
                        "SELECT COUNT(*) FROM seaql_migrations WHERE version = '{SLUG_CHECK}'"
                    )
                )
                .await,
                0,
                "not recorded"
            );
            blocker.rollback().await.expect("ends the long transaction");
            other.close().await.ok();
            assert_eq!(
                count(
                    &t,
                    "SELECT COUNT(*) FROM pg_constraint WHERE conname = 'ck_tenants_slug_format'"
                )
                .await,
                0,
                "nothing of it was applied"
            );
            run(&t, up())
                .await
                .0
                .expect("applies once the lock is gone");
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_tenant_schema_tables_added_later_get_row_security() {
    use entity::tenancy::tenants::IsolationLevel;
    use migration::cli::TenantAction;
    use service::tenancy::{NewTenant, create_tenant};
    run_case(Backend::Postgres, "ops_tenant_schema_rls", Start::Migrated, |t| async move {
        let (deps, _) = tests::fixtures::deps();
        let owner = tests::fixtures::user(&t.db, &deps, "owner").await;
        let mut input = NewTenant::parse("delta-co", "Delta").expect("valid");
        input.isolation_level = IsolationLevel::Schema;
        create_tenant(&t.db, &deps, owner.id, input, &tests::fixtures::meta()).await.expect("tenant");
        let provision = || Command::Tenants { action: TenantAction::Provision { slug: "delta-co".into() } };
        run(&t, provision()).await.0.expect("provisions");
        // What a later tenant migration would add: one table with a tenant_id, one without.
        exec(&t, "CREATE TABLE tenant_delta_co.notes (id uuid PRIMARY KEY, tenant_id uuid NOT NULL, body text)").await;
        exec(&t, "CREATE TABLE tenant_delta_co.lookup (code text PRIMARY KEY)").await;
        run(&t, provision()).await.0.expect("provisions again");
        let secured = |table: &str| {
            format!(
                "SELECT COUNT(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = 'tenant_delta_co' AND c.relname = '{table}'
                    AND c.relrowsecurity AND c.relforcerowsecurity
                    AND (SELECT count(*) FROM pg_policies p WHERE p.schemaname = n.nspname
                                 AND p.tablename = c.relname AND p.policyname LIKE 'wall_%') = 4"
            )
        };
        assert_eq!(count(&t, &secured("notes")).await, 1, "the new table with tenant_id is secured");
        assert_eq!(count(&t, &secured("lookup")).await, 0, "a table without tenant_id is left alone");
        for table in ["teams", "team_members", "invitations", "role_assignments", "policies"] {
            assert_eq!(count(&t, &secured(table)).await, 1, "{table}");
        }
        assert_eq!(
            count(&t, "SELECT COUNT(*) FROM pg_policies WHERE schemaname = 'tenant_delta_co'").await,
            6 * 4,
            "one policy per command and table, none twice"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_tenant_slug_too_long_for_a_schema_name_is_refused_before_creating_anything() {
    use entity::tenancy::tenants::IsolationLevel;
    use migration::cli::TenantAction;
    use service::tenancy::{NewTenant, create_tenant};
    run_case(
        Backend::Postgres,
        "ops_tenant_long_slug",
        Start::Migrated,
        |t| async move {
            let (deps, _) = tests::fixtures::deps();
            let owner = tests::fixtures::user(&t.db, &deps, "owner").await;
            // Valid for the service and the database, but `tenant_` + 60 bytes is past
            // PostgreSQL's 63-byte identifier limit, where names are silently truncated.
            let slug = "a".repeat(60);
            let mut input = NewTenant::parse(&slug, "Long").expect("valid");
            input.isolation_level = IsolationLevel::Schema;
            create_tenant(&t.db, &deps, owner.id, input, &tests::fixtures::meta())
                .await
                .expect("tenant");
            let (result, _) = run(
                &t,
                Command::Tenants {
                    action: TenantAction::Provision { slug: slug.clone() },
                },
            )
            .await;
            match result {
                Err(CliError::Db(e)) => assert!(e.to_string().contains("at most 63 bytes"), "{e}"),
                other => panic!("expected a refusal naming the limit, got {other:?}"),
            }
            assert_eq!(
                count(
                    &t,
                    "SELECT COUNT(*) FROM pg_namespace WHERE nspname LIKE 'tenant_%'"
                )
                .await,
                0,
                "no schema was created"
            );
        },
    )
    .await;
}

#[test]
fn ops_table_lock_settings_come_from_flags_then_environment_then_defaults() {
    use migration::cli::TableLocks;
    let none = |_: &str| None;
    assert_eq!(
        TableLocks::resolve(None, None, &none).expect("defaults"),
        TableLocks::DEFAULT
    );
    let env = |name: &str| match name {
        "MIGRATION_TABLE_LOCK_TIMEOUT_MS" => Some("250".to_owned()),
        "MIGRATION_TABLE_LOCK_RETRIES" => Some("1".to_owned()),
        _ => None,
    };
    assert_eq!(
        TableLocks::resolve(None, None, &env).expect("from the environment"),
        TableLocks {
            timeout: Duration::from_millis(250),
            retries: 1
        }
    );
    assert_eq!(
        TableLocks::resolve(Some(900), Some(0), &env).expect("flags win"),
        TableLocks {
            timeout: Duration::from_millis(900),
            retries: 0
        }
    );
    let bad = |name: &str| (name == "MIGRATION_TABLE_LOCK_TIMEOUT_MS").then(|| "5s".to_owned());
    match TableLocks::resolve(None, None, &bad) {
        Err(CliError::Config(message)) => {
            assert!(
                message.contains("MIGRATION_TABLE_LOCK_TIMEOUT_MS=\"5s\""),
                "{message}"
            )
        }
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

/// `database create` twice creates once; `database drop` is refused in staging and
/// production whatever is typed, and for a database that records production; in test
/// it drops, and dropping again is a no-op.
async fn ops_database_create_is_idempotent_and_drop_is_refused_in_production(t: TestDb) {
    let name = match t.backend {
        // A space and a non-ASCII letter: the URL carries them percent-encoded, and the
        // database made must be the one the driver then connects to.
        Backend::Sqlite => format!("{}.created é.sqlite", t.target().database()),
        _ => format!(
            "created é {}",
            &uuid::Uuid::now_v7().simple().to_string()[20..]
        ),
    };
    let too_long = t.target().with_database(&"x".repeat(65));
    if t.backend != Backend::Sqlite {
        let (result, _) = run_on_target(
            too_long,
            Command::Database {
                action: DatabaseAction::Create,
            },
        )
        .await;
        assert!(
            matches!(&result, Err(CliError::Config(why)) if why.contains("at most")),
            "{result:?}"
        );
    }
    let target = t.target().with_database(&name);
    let database = |action| Command::Database { action };
    let invoke = |env: AppEnv, command: Command, confirm: Option<&str>| Invocation {
        env,
        target: target.clone(),
        schema: None,
        command,
        confirm: confirm.map(str::to_owned),
        lock_timeout: Duration::from_secs(60),
        table_locks: migration::cli::TableLocks::DEFAULT,
    };
    let exists = || async {
        match t.backend {
            Backend::Sqlite => std::path::Path::new(&name).exists(),
            Backend::Postgres => {
                count(
                    &t,
                    &format!("SELECT COUNT(*) FROM pg_database WHERE datname = '{name}'"),
                )
                .await
                    == 1
            }
            Backend::MySql => count(
                &t,
                &format!(
                    "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = '{name}'"
                ),
            )
            .await
                == 1,
        }
    };
    let go = |inv: Invocation| async move {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let result = execute(&inv, &mut NoTerminal, &mut out, &mut err).await;
        (
            result,
            String::from_utf8(out).expect("utf-8"),
            String::from_utf8(err).expect("utf-8"),
        )
    };

    assert!(!exists().await);
    let (result, out, err) = go(invoke(AppEnv::Test, database(DatabaseAction::Create), None)).await;
    result.expect("creates");
    assert!(out.contains("created"), "{out}");
    assert!(
        err.contains("== database create on TEST =="),
        "the banner: {err}"
    );
    assert!(exists().await, "the database exists");
    go(invoke(
        AppEnv::Test,
        Command::Status {
            format: StatusFormat::Json,
        },
        None,
    ))
    .await
    .0
    .expect("the created database is the one connected to");
    let (result, out, _) = go(invoke(AppEnv::Test, database(DatabaseAction::Create), None)).await;
    result.expect("creating again succeeds");
    assert!(out.contains("already exists"), "{out}");

    for (env, phrase) in [
        (AppEnv::Production, "MIGRATE PRODUCTION"),
        (AppEnv::Staging, "MIGRATE STAGING"),
    ] {
        let (result, _, _) = go(invoke(env, database(DatabaseAction::Drop), Some(phrase))).await;
        assert!(
            matches!(&result, Err(CliError::Refused(why)) if why.contains("never run in")),
            "{env}: {result:?}"
        );
        assert!(exists().await, "{env}: still there");
    }

    let (result, out, _) = go(invoke(AppEnv::Test, database(DatabaseAction::Drop), None)).await;
    result.expect("drops in test");
    assert!(out.contains("dropped"), "{out}");
    assert!(!exists().await, "gone");
    let (result, out, _) = go(invoke(AppEnv::Test, database(DatabaseAction::Drop), None)).await;
    result.expect("dropping again succeeds");
    assert!(out.contains("does not exist"), "{out}");

    // A database that records production is never dropped, whatever APP_ENV says.
    go(invoke(AppEnv::Test, database(DatabaseAction::Create), None))
        .await
        .0
        .expect("creates");
    go(invoke(AppEnv::Production, up(), Some("MIGRATE PRODUCTION")))
        .await
        .0
        .expect("migrates as production");
    let (result, _, _) = go(invoke(AppEnv::Test, database(DatabaseAction::Drop), None)).await;
    assert!(
        matches!(&result, Err(CliError::Refused(why)) if why.contains("records environment production")),
        "{result:?}"
    );
    assert!(exists().await, "still there");

    // Nor one that holds tables but records no environment.
    let other = match t.backend {
        Backend::Sqlite => format!("{}.unrecorded.sqlite", t.target().database()),
        _ => format!(
            "unrecorded_{}",
            &uuid::Uuid::now_v7().simple().to_string()[20..]
        ),
    };
    let unrecorded = t.target().with_database(&other);
    let (result, _) = run_on_target(unrecorded.clone(), database(DatabaseAction::Create)).await;
    result.expect("creates");
    let db = service::connection::connect(&unrecorded, &tests::pool(1))
        .await
        .expect("connects");
    db.execute_unprepared("CREATE TABLE someone_elses (id INT)")
        .await
        .expect("creates a table");
    db.close().await.ok();
    let (result, _) = run_on_target(unrecorded.clone(), database(DatabaseAction::Drop)).await;
    assert!(
        matches!(&result, Err(CliError::Refused(why)) if why.contains("records no environment")),
        "{result:?}"
    );
    // And never the server's own.
    if t.backend != Backend::Sqlite {
        let system = if t.backend == Backend::Postgres {
            "template1"
        } else {
            "mysql"
        };
        let (result, _) = run_on_target(
            t.target().with_database(system),
            database(DatabaseAction::Drop),
        )
        .await;
        assert!(
            matches!(&result, Err(CliError::Refused(why)) if why.contains("server itself")),
            "{result:?}"
        );
    }
    match t.backend {
        Backend::Sqlite => {
            let _ = std::fs::remove_file(&other);
        }
        Backend::Postgres => exec(&t, &format!(r#"DROP DATABASE "{other}" WITH (FORCE)"#)).await,
        Backend::MySql => exec(&t, &format!("DROP DATABASE `{other}`")).await,
    }
    match t.backend {
        Backend::Sqlite => {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{name}{suffix}"));
            }
        }
        Backend::Postgres => exec(&t, &format!(r#"DROP DATABASE "{name}" WITH (FORCE)"#)).await,
        Backend::MySql => exec(&t, &format!("DROP DATABASE `{name}`")).await,
    }
}
