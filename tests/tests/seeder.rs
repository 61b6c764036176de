//! The seeder: deterministic, idempotent, and never writing to production.

use migration::cli::{Command, Invocation, Prompt, StatusFormat, TableLocks, execute};
use migration::environment::{AppEnv, record_env_if_absent};
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, Statement};
use seeder::profile::{ProfileName, SHARED_PASSWORD};
use seeder::scale::ScaleWriter;
use seeder::{EnvSignals, SeedError, SeedOptions, profile_namespace, seed};
use service::crypto::KeyRing;
use service::deps::LabelledIds;
use service::identity::{TotpParams, authenticate, totp, use_backup_code, verify_totp};
use service::input::{Email, Password};
use service::{Deps, RequestMeta, ServiceConfig};
use std::sync::{Arc, Mutex};
use tests::{Backend, Start, TestDb, inspect, run_case};

tests::backend_tests!(
    Empty: seeder_two_fresh_databases_hold_identical_data,
    seeder_run_twice_equals_run_once,
    seeder_refuses_every_production_signal_and_writes_nothing,
    seeder_refuses_database_marked_production_and_writes_nothing,
    seeder_refuses_database_of_another_environment,
    seeder_no_reset_on_seeded_database_refuses,
    seeder_outside_local_and_test_does_not_migrate,
    seeder_fixture_ids_and_logins_are_stable,
    seeder_scale_is_deterministic_for_a_seed_and_size,
    seeder_scale_rejects_absurd_sizes_before_writing,
    seeder_minimal_profile_loads_only_acme,
    seeder_two_at_once_on_a_fresh_database_one_waits_and_both_succeed,
    seeder_migrates_like_the_cli_with_checksums_and_marker,
    seeder_reset_outside_local_and_test_needs_the_confirmation_phrase,
    seeder_typed_confirmation_lists_what_the_reset_deletes,
    seeder_collision_with_rows_it_did_not_write_is_explained_and_rolled_back,
    seeder_summary_tables_line_up_with_japanese_names,
    seeder_reset_and_kept_tables_are_every_table,
);

/// Outside local and test the seeder needs keys of the environment's own: these.
fn options(t: &TestDb) -> SeedOptions {
    SeedOptions {
        database_url: Some(t.url.clone()),
        field_keys: Some(tests::fixtures::field_keys()),
        ..SeedOptions::default()
    }
}

fn signals(app_env: Option<&str>, migration_env: Option<&str>) -> EnvSignals {
    EnvSignals {
        app_env: app_env.map(str::to_owned),
        migration_env: migration_env.map(str::to_owned),
    }
}

async fn seeder_two_fresh_databases_hold_identical_data(t: TestDb) {
    let other = t.sibling(Start::Empty).await;
    let report = seed(&EnvSignals::default(), &options(&t))
        .await
        .expect("seeds the first");
    seed(&EnvSignals::default(), &options(&other))
        .await
        .expect("seeds the second");
    let (a, b) = (
        inspect::data(&t.owner).await,
        inspect::data(&other.db).await,
    );
    assert!(
        a.iter()
            .find(|(table, _)| *table == "users")
            // The profile's 17, and the former renter erased at their request.
            .is_some_and(|(_, rows)| rows.len() == 18)
    );
    assert_eq!(report.tenants.len(), 5);
    inspect::assert_same_data(&a, &b);
}

async fn seeder_run_twice_equals_run_once(t: TestDb) {
    seed(&EnvSignals::default(), &options(&t))
        .await
        .expect("first run");
    let once = inspect::data(&t.owner).await;
    seed(&EnvSignals::default(), &options(&t))
        .await
        .expect("second run");
    inspect::assert_same_data(&inspect::data(&t.owner).await, &once);
}

async fn seeder_refuses_every_production_signal_and_writes_nothing(t: TestDb) {
    let cases = [
        signals(Some("production"), None),
        signals(Some("prod"), None),
        signals(Some("PRODUCTION"), None),
        signals(None, Some("production")),
        signals(Some("local"), Some("production")),
        signals(Some("production"), Some("local")),
        signals(Some("prodction"), None),
    ];
    for case in cases {
        let err = seed(&case, &options(&t)).await.expect_err("refused");
        assert!(err.is_refusal(), "{case:?}: {err}");
        let message = err.to_string();
        assert!(message.contains("nothing was written"), "{message}");
        assert!(
            message.contains("APP_ENV") || message.contains("MIGRATION_ENV"),
            "names the signal: {message}"
        );
    }
    assert!(
        inspect::schema(&t.owner).await.is_empty(),
        "not even a migration ran"
    );
}

async fn seeder_refuses_database_marked_production_and_writes_nothing(t: TestDb) {
    Migrator::up(&t.db, None).await.expect("migrates");
    record_env_if_absent(&t.db, AppEnv::Production)
        .await
        .expect("marks production");
    let (schema, data) = (
        inspect::schema(&t.owner).await,
        inspect::data(&t.owner).await,
    );
    let err = seed(&EnvSignals::default(), &options(&t))
        .await
        .expect_err("refused");
    assert!(matches!(err, SeedError::Refused { .. }), "{err}");
    assert!(
        err.to_string().contains("environment marker"),
        "names the signal: {err}"
    );
    assert_eq!(inspect::schema(&t.owner).await, schema);
    inspect::assert_same_data(&inspect::data(&t.owner).await, &data);
}

async fn seeder_refuses_database_of_another_environment(t: TestDb) {
    Migrator::up(&t.db, None).await.expect("migrates");
    record_env_if_absent(&t.db, AppEnv::Staging)
        .await
        .expect("marks staging");
    let err = seed(&signals(Some("test"), None), &options(&t))
        .await
        .expect_err("refused");
    assert!(err.is_refusal(), "{err}");
    assert_eq!(
        inspect::row_counts(&t.owner)
            .await
            .iter()
            .map(|(_, n)| n)
            .sum::<u64>(),
        0
    );
    let confirmed = SeedOptions {
        confirm: Some("MIGRATE STAGING".into()),
        ..options(&t)
    };
    seed(&signals(Some("staging"), None), &confirmed)
        .await
        .expect("the right environment seeds, once confirmed");
}

async fn seeder_no_reset_on_seeded_database_refuses(t: TestDb) {
    seed(&EnvSignals::default(), &options(&t))
        .await
        .expect("first run");
    let data = inspect::data(&t.owner).await;
    let no_reset = SeedOptions {
        reset: false,
        ..options(&t)
    };
    let err = seed(&EnvSignals::default(), &no_reset)
        .await
        .expect_err("already seeded");
    assert!(matches!(err, SeedError::AlreadySeeded(_)), "{err}");
    inspect::assert_same_data(&inspect::data(&t.owner).await, &data);
}

async fn seeder_outside_local_and_test_does_not_migrate(t: TestDb) {
    for env in ["development", "staging"] {
        let err = seed(&signals(Some(env), None), &options(&t))
            .await
            .expect_err("pending");
        assert!(
            matches!(err, SeedError::PendingMigrations { .. }),
            "{env}: {err}"
        );
    }
    assert!(inspect::schema(&t.owner).await.is_empty());
}

async fn seeder_fixture_ids_and_logins_are_stable(t: TestDb) {
    let report = seed(&signals(Some("test"), None), &options(&t))
        .await
        .expect("seeds");
    let alice = report
        .users
        .iter()
        .find(|u| u.email == "alice@acme.com")
        .expect("alice");
    let expected = LabelledIds::id_for(
        profile_namespace(ProfileName::Demo),
        "users",
        "alice@acme.com",
        0,
    );
    assert_eq!(
        alice.id.into_uuid(),
        expected,
        "ids derive from labels, not from run order"
    );
    assert_eq!(alice.role, "owner");

    let deps = Deps::new(ServiceConfig::default(), KeyRing::development())
        .with_keys(tests::fixtures::field_keys());
    // Alice's printed second factor works: a backup code once, the secret's code now.
    let factor = report
        .second_factors
        .iter()
        .find(|f| f.email == "alice@acme.com")
        .expect("Alice has a second factor");
    assert_eq!(factor.backup_codes.len(), 10);
    assert!(factor.otpauth_uri.contains(&factor.secret_base32));
    let meta = RequestMeta::system();
    use_backup_code(&t.db, &deps, alice.id, &factor.backup_codes[0], &meta)
        .await
        .expect("a printed backup code works");
    let secret = data_encoding::BASE32_NOPAD
        .decode(factor.secret_base32.as_bytes())
        .expect("base32");
    let now = u64::try_from(deps.now().timestamp()).expect("after 1970");
    verify_totp(
        &t.db,
        &deps,
        alice.id,
        &totp(&secret, TotpParams::default(), now),
        &meta,
    )
    .await
    .expect("the printed secret gives valid codes");
    for email in [
        "alice@acme.com",
        "dr.smith@healthystellar.com",
        "patient1@example.com",
        "tanaka@rento.jp",
    ] {
        let user = authenticate(
            &t.db,
            &deps,
            &Email::parse(email).expect("valid"),
            &Password::for_verification(SHARED_PASSWORD).expect("valid"),
            &RequestMeta::system(),
        )
        .await
        .unwrap_or_else(|e| panic!("{email} signs in with the shared password: {e}"));
        assert_eq!(user.email, email);
    }
}

async fn seeder_scale_is_deterministic_for_a_seed_and_size(t: TestDb) {
    let other = t.sibling(Start::Empty).await;
    let scaled = |db: &TestDb| SeedOptions {
        scale: 25,
        ..options(db)
    };
    let report = seed(&EnvSignals::default(), &scaled(&t))
        .await
        .expect("seeds at scale");
    let scale = report.scale.expect("a scale report");
    assert_eq!(scale.tenants, 25);
    assert_eq!(scale.rows, 25 * seeder::scale::ROWS_PER_TENANT);
    seed(&EnvSignals::default(), &scaled(&other))
        .await
        .expect("seeds the second");
    inspect::assert_same_data(
        &inspect::data(&t.owner).await,
        &inspect::data(&other.db).await,
    );
    let tenants = report
        .row_counts
        .iter()
        .find(|(table, _)| *table == "tenants")
        .expect("counted")
        .1;
    assert_eq!(
        tenants,
        5 + 25,
        "the profile's five plus the synthetic ones"
    );
    // Again on the same database: reset and reload give the same rows.
    let once = inspect::data(&t.owner).await;
    seed(&EnvSignals::default(), &scaled(&t))
        .await
        .expect("seeds again");
    inspect::assert_same_data(&inspect::data(&t.owner).await, &once);
}

/// On PostgreSQL `--scale` writes with COPY. Loaded with inserts instead, into another
/// database, every table holds the same data by PostgreSQL's own checksum. The batch
/// sizes differ on purpose (and leave partial last batches): they must not matter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeder_scale_copy_writes_the_same_rows_as_inserts_on_postgres() {
    run_case(
        Backend::Postgres,
        "seeder_scale_copy_writes_the_same_rows_as_inserts",
        Start::Empty,
        |t| async move {
            let other = t.sibling(Start::Empty).await;
            let scaled = |db: &TestDb, writer: ScaleWriter| SeedOptions {
                scale: 40,
                scale_writer: Some(writer),
                ..options(db)
            };
            let by_copy = seed(
                &EnvSignals::default(),
                &scaled(
                    &t,
                    ScaleWriter::Copy {
                        tenants_per_transaction: 7,
                    },
                ),
            )
            .await
            .expect("seeds with COPY");
            seed(
                &EnvSignals::default(),
                &scaled(
                    &other,
                    ScaleWriter::Inserts {
                        rows_per_statement: 13,
                        tenants_per_transaction: 11,
                    },
                ),
            )
            .await
            .expect("seeds with inserts");
            assert_eq!(
                by_copy.scale.expect("a scale report").rows,
                40 * seeder::scale::ROWS_PER_TENANT
            );
            for table in inspect::SCALE_TABLES {
                let (copied, inserted) = (
                    inspect::postgres_table_checksum(&t.owner, table).await,
                    inspect::postgres_table_checksum(&other.owner, table).await,
                );
                assert!(copied.0 >= 40, "{table} holds the synthetic rows");
                assert_eq!(copied, inserted, "{table}: COPY against inserts");
            }
        },
    )
    .await;
}

/// The COPY text the seeder sends is read back by PostgreSQL as the same values the
/// insert path binds: tabs, newlines, backslashes, `\N` and `\.` as text, empty text
/// against NULL, Japanese, JSON holding escapes, timestamps with microseconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeder_copy_text_reads_back_as_the_bound_values_on_postgres() {
    use sea_orm::Value;
    run_case(
        Backend::Postgres,
        "seeder_copy_text_reads_back_as_the_bound_values",
        Start::Empty,
        |t| async move {
            t.owner
                .execute_unprepared(
                    "CREATE TABLE copy_check (id int PRIMARY KEY, t text, j jsonb, at timestamptz, b boolean, u uuid)",
                )
                .await
                .expect("creates");
            let at = seeder::fixture_epoch() + chrono::Duration::microseconds(123_456);
            let texts = [
                Some("tab\there"),
                Some("back\\slash \\N"),
                Some("new\nline\r\n"),
                Some("\\."),
                Some("\\N"),
                Some("山田 太郎"),
                Some(""),
                None,
            ];
            let rows: Vec<[Value; 5]> = texts
                .iter()
                .enumerate()
                .map(|(i, text)| {
                    [
                        Value::String(text.map(str::to_owned)),
                        Value::Json(Some(Box::new(serde_json::json!({
                            "text": text, "i": i, "名前": "\\\t", "nested": {"a": [1, null]}
                        })))),
                        Value::ChronoDateTimeUtc(Some(at + chrono::Duration::seconds(i as i64))),
                        Value::Bool(Some(i % 2 == 0)),
                        Value::Uuid((i % 3 != 0).then(|| uuid::Uuid::from_u128(i as u128 + 7))),
                    ]
                })
                .collect();
            let mut data = String::new();
            for (i, row) in rows.iter().enumerate() {
                t.owner
                    .execute_raw(Statement::from_sql_and_values(
                        sea_orm::DbBackend::Postgres,
                        "INSERT INTO copy_check VALUES ($1, $2, $3, $4, $5, $6)",
                        std::iter::once(Value::Int(Some(i as i32))).chain(row.iter().cloned()),
                    ))
                    .await
                    .expect("inserts");
                data.push_str(&format!("{}", i + 1000));
                for value in row {
                    data.push('\t');
                    data.push_str(&seeder::scale::copy_text_field(value).expect("renders"));
                }
                data.push('\n');
            }
            let mut conn = t
                .owner
                .get_postgres_connection_pool()
                .acquire()
                .await
                .expect("a connection");
            let mut copy = conn
                .copy_in_raw("COPY copy_check FROM STDIN (FORMAT text)")
                .await
                .expect("COPY starts");
            copy.send(data.as_bytes()).await.expect("sends");
            assert_eq!(copy.finish().await.expect("COPY ends"), rows.len() as u64);
            drop(conn);
            let differing = t
                .owner
                .query_one_raw(Statement::from_string(
                    sea_orm::DbBackend::Postgres,
                    "SELECT count(*) AS n FROM copy_check a JOIN copy_check c ON c.id = a.id + 1000 \
                     WHERE (a.t, a.j, a.at, a.b, a.u) IS DISTINCT FROM (c.t, c.j, c.at, c.b, c.u)",
                ))
                .await
                .expect("compares")
                .expect("a row")
                .try_get::<i64>("", "n")
                .expect("a count");
            assert_eq!(differing, 0, "COPY and bound values differ");
            let copied = t
                .owner
                .query_one_raw(Statement::from_string(
                    sea_orm::DbBackend::Postgres,
                    "SELECT count(*) AS n FROM copy_check WHERE id >= 1000",
                ))
                .await
                .expect("counts")
                .expect("a row")
                .try_get::<i64>("", "n")
                .expect("a count");
            assert_eq!(copied, rows.len() as i64);
        },
    )
    .await;
}

/// PostgreSQL refuses `COPY FROM` wherever row-level security applies; the seeder says
/// so before writing, for the runtime role, and lets the owner (a superuser) through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeder_scale_copy_is_refused_up_front_for_a_role_behind_row_security() {
    run_case(
        Backend::Postgres,
        "seeder_scale_copy_is_refused_for_a_role_behind_row_security",
        Start::Migrated,
        |t| async move {
            let copy = ScaleWriter::for_backend(sea_orm::DbBackend::Postgres);
            assert!(matches!(copy, ScaleWriter::Copy { .. }));
            seeder::scale::check_writer(&t.owner, copy)
                .await
                .expect("the owner bypasses row-level security");
            let err = seeder::scale::check_writer(&t.db, copy)
                .await
                .expect_err("the runtime role is behind the walls");
            assert!(matches!(err, SeedError::Scale(_)), "{err}");
            assert!(err.to_string().contains("row-level security"), "{err}");
            assert!(err.to_string().contains("tenants"), "{err}");
        },
    )
    .await;
}

/// The seeder as a role behind row-level security (the runtime login) is refused before
/// it writes anything, with the reason, not a permission error halfway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeder_as_a_role_behind_row_security_is_refused_before_writing() {
    run_case(
        Backend::Postgres,
        "seeder_as_a_role_behind_row_security",
        Start::Migrated,
        |t| async move {
            let runtime = t.runtime_target(None);
            let result = seeder::run(
                &SeedOptions {
                    database_url: Some(runtime.connection_url().to_owned()),
                    ..SeedOptions::default()
                },
                AppEnv::Test,
                &runtime,
            )
            .await;
            assert!(
                matches!(&result, Err(SeedError::Refused { reason, .. }) if reason.contains("BYPASSRLS")),
                "{result:?}"
            );
            let tenants = t
                .owner
                .query_one_raw(sea_orm::Statement::from_string(
                    sea_orm::DbBackend::Postgres,
                    "SELECT count(*) FROM tenants".to_owned(),
                ))
                .await
                .expect("counts")
                .expect("row")
                .try_get_by_index::<i64>(0)
                .expect("count");
            assert_eq!(tenants, 0, "nothing written");
        },
    )
    .await;
}

/// The same N and seed give the same rows on every backend (PostgreSQL through COPY,
/// the others through inserts), compared as the entities read them back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeder_scale_gives_the_same_rows_on_every_backend() {
    let digests = Arc::new(Mutex::new(Vec::new()));
    for backend in [Backend::Postgres, Backend::Sqlite, Backend::MySql] {
        let digests = digests.clone();
        run_case(
            backend,
            "seeder_scale_gives_the_same_rows_on_every_backend",
            Start::Empty,
            |t| async move {
                let scaled = SeedOptions {
                    scale: 30,
                    ..options(&t)
                };
                seed(&EnvSignals::default(), &scaled)
                    .await
                    .expect("seeds at scale");
                let tables = inspect::scale_table_digests(&t.owner).await;
                assert_eq!(tables[0], ("tenants", 5 + 30, tables[0].2.clone()));
                digests
                    .lock()
                    .expect("not poisoned")
                    .push((backend, tables));
            },
        )
        .await;
    }
    let digests = digests.lock().expect("not poisoned");
    let Some((first, expected)) = digests.first() else {
        return;
    };
    for (backend, tables) in digests.iter().skip(1) {
        assert_eq!(tables, expected, "{backend:?} against {first:?}");
    }
}

async fn seeder_scale_rejects_absurd_sizes_before_writing(t: TestDb) {
    let absurd = SeedOptions {
        scale: seeder::scale::MAX_SCALE + 1,
        ..options(&t)
    };
    let err = seed(&EnvSignals::default(), &absurd)
        .await
        .expect_err("too big");
    assert!(matches!(err, SeedError::Scale(_)), "{err}");
    assert!(err.to_string().contains("maximum"), "{err}");
    assert!(
        inspect::schema(&t.owner).await.is_empty(),
        "nothing was written"
    );
}

async fn seeder_minimal_profile_loads_only_acme(t: TestDb) {
    let minimal = SeedOptions {
        profile: ProfileName::Minimal,
        ..options(&t)
    };
    let report = seed(&EnvSignals::default(), &minimal).await.expect("seeds");
    assert_eq!(
        report.tenants.iter().map(|t| t.slug).collect::<Vec<_>>(),
        vec!["acme"]
    );
    assert_eq!(
        report.users.iter().map(|u| u.email).collect::<Vec<_>>(),
        vec!["alice@acme.com", "bob@acme.com"]
    );
    assert!(
        report.access.roles.iter().any(|r| r.tenant == Some("acme"))
            && report
                .access
                .roles
                .iter()
                .all(|r| r.tenant.is_none_or(|t| t == "acme")),
        "Acme's own roles and the system roles, nobody else's"
    );
    assert!(
        !report.access.invitations.is_empty()
            && report.access.invitations.iter().all(|i| i.tenant == "acme"),
        "Acme's invitations only"
    );
    let bob = report
        .access
        .assignments
        .get("bob@acme.com")
        .expect("bob has roles");
    assert!(bob.iter().any(|r| r == "agent_user@Engineering"), "{bob:?}");
    let rows: u64 = report
        .row_counts
        .iter()
        .filter(|(table, _)| *table == "users")
        .map(|(_, n)| *n)
        .sum();
    assert_eq!(rows, 2);
}

async fn count(t: &TestDb, sql: &str) -> i64 {
    let row =
        t.db.query_one_raw(Statement::from_string(t.db_backend(), sql.to_owned()))
            .await
            .expect("counts")
            .expect("a row");
    row.try_get_by_index::<i64>(0)
        .or_else(|_| row.try_get_by_index::<i32>(0).map(i64::from))
        .expect("a count")
}

async fn seeder_two_at_once_on_a_fresh_database_one_waits_and_both_succeed(t: TestDb) {
    // Two seeders with their own connections, released at the same instant on a
    // database with no tables at all.
    let start = Arc::new(tokio::sync::Barrier::new(2));
    let runs: Vec<_> = (0..2)
        .map(|_| {
            let (start, options) = (start.clone(), options(&t));
            tokio::spawn(async move {
                start.wait().await;
                seed(&EnvSignals::default(), &options).await
            })
        })
        .collect();
    let mut reports = Vec::new();
    for run in runs {
        match run.await.expect("the task ran") {
            Ok(report) => reports.push(report),
            Err(e) => panic!("both seeders succeed: {e}"),
        }
    }
    let total = Migrator::migrations().len();
    assert_eq!(
        reports.iter().filter(|r| r.waited_for.is_some()).count(),
        1,
        "they overlapped: one waited for the other's lock"
    );
    // The first migrated the fresh database; the one that waited found its audit
    // trail, which only a rebuild resets, and applied every migration again.
    for report in &reports {
        assert_eq!(report.migrations_applied, total, "{:?}", report.waited_for);
    }
    assert_eq!(
        count(&t, "SELECT COUNT(*) FROM migration_checksums").await,
        total as i64
    );
    // The last load replaced the first: the database holds one profile, as after one run.
    let both = inspect::data(&t.db).await;
    seed(&EnvSignals::default(), &options(&t))
        .await
        .expect("a third, sequential run");
    inspect::assert_same_data(&inspect::data(&t.db).await, &both);
}

/// A terminal that answers with a fixed line, or no terminal at all.
struct Scripted(Option<&'static str>);

impl Prompt for Scripted {
    fn is_interactive(&self) -> bool {
        self.0.is_some()
    }

    fn ask(&mut self, _question: &str) -> std::io::Result<String> {
        Ok(format!("{}\n", self.0.unwrap_or_default()))
    }
}

async fn seeder_migrates_like_the_cli_with_checksums_and_marker(t: TestDb) {
    seed(&signals(Some("test"), None), &options(&t))
        .await
        .expect("seeds");
    let total = Migrator::migrations().len() as i64;
    assert_eq!(
        count(
            &t,
            "SELECT COUNT(*) FROM migration_checksums WHERE environment = 'test'"
        )
        .await,
        total,
        "one checksum per migration, with the environment"
    );
    // The migration CLI sees a database it could have migrated itself.
    let invocation = Invocation {
        env: AppEnv::Test,
        target: t.target(),
        schema: None,
        command: Command::Status {
            format: StatusFormat::Json,
        },
        confirm: None,
        lock_timeout: std::time::Duration::from_secs(30),
        table_locks: TableLocks::DEFAULT,
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    execute(&invocation, &mut Scripted(None), &mut out, &mut err)
        .await
        .expect("status is clean");
    let report: serde_json::Value = serde_json::from_slice(&out).expect("JSON");
    assert_eq!(report["database_environment"], "test", "{report}");
    for list in ["modified", "missing", "unrecorded", "pending"] {
        assert_eq!(
            report[list].as_array().map(Vec::len),
            Some(0),
            "{list}: {report}"
        );
    }
}

async fn seeder_reset_outside_local_and_test_needs_the_confirmation_phrase(t: TestDb) {
    Migrator::up(&t.db, None).await.expect("migrates");
    record_env_if_absent(&t.db, AppEnv::Development)
        .await
        .expect("marks development");
    let dev = signals(Some("development"), None);
    let with = |confirm: Option<&str>| SeedOptions {
        confirm: confirm.map(str::to_owned),
        ..options(&t)
    };
    // Nothing to reset yet: the phrase is all it takes.
    for (confirm, expected) in [
        (None, "--confirm \"MIGRATE DEV\""),
        (Some("MIGRATE DEV "), "expected exactly \"MIGRATE DEV\""),
        (Some("MIGRATE STAGING"), "expected exactly \"MIGRATE DEV\""),
        (Some("yes"), "expected exactly \"MIGRATE DEV\""),
    ] {
        match seed(&dev, &with(confirm)).await {
            Err(SeedError::Refused { reason, .. }) => {
                assert!(reason.contains(expected), "{confirm:?}: {reason}")
            }
            other => panic!("{confirm:?} must be refused: {other:?}"),
        }
        assert_eq!(
            inspect::count_rows(&t.db, "users").await,
            0,
            "nothing written"
        );
    }
    seed(&dev, &with(Some("MIGRATE DEV")))
        .await
        .expect("the exact phrase confirms");
    let seeded = inspect::data(&t.db).await;

    // Now the audit trail holds rows, which only a rebuild of the schema could remove,
    // and that is for local and test databases: refused whatever is typed.
    for confirm in [None, Some("MIGRATE DEV")] {
        match seed(&dev, &with(confirm)).await {
            Err(SeedError::Refused { signal, reason }) => {
                assert!(signal.starts_with("the audit trail"), "{signal}");
                assert!(reason.contains("--no-reset"), "{reason}");
            }
            other => panic!("{confirm:?}: a reset of the audit trail must be refused: {other:?}"),
        }
        inspect::assert_same_data(&inspect::data(&t.db).await, &seeded);
    }
    // Without --reset nothing is deleted, but it still writes to a shared database.
    let no_reset = SeedOptions {
        reset: false,
        ..with(None)
    };
    assert!(matches!(
        seed(&dev, &no_reset).await,
        Err(SeedError::Refused { .. })
    ));
}

async fn seeder_typed_confirmation_lists_what_the_reset_deletes(t: TestDb) {
    Migrator::up(&t.db, None).await.expect("migrates");
    record_env_if_absent(&t.db, AppEnv::Staging)
        .await
        .expect("marks staging");
    let staging = signals(Some("staging"), None);

    let mut log = Vec::new();
    let wrong = seeder::seed_with(
        &staging,
        &options(&t),
        &mut Scripted(Some("MIGRATE DEV")),
        &mut log,
    )
    .await;
    assert!(matches!(wrong, Err(SeedError::Refused { .. })), "{wrong:?}");
    assert_eq!(
        inspect::count_rows(&t.db, "users").await,
        0,
        "nothing written"
    );
    let listing = String::from_utf8(log).expect("utf-8");
    for line in ["users              0 row(s)", "tenants            0 row(s)"] {
        assert!(
            listing.contains(line),
            "names {line:?} before asking:\n{listing}"
        );
    }
    for table in seeder::RESET_TABLES {
        assert!(listing.contains(table), "lists {table}:\n{listing}");
    }

    let mut log = Vec::new();
    seeder::seed_with(
        &staging,
        &options(&t),
        &mut Scripted(Some("MIGRATE STAGING")),
        &mut log,
    )
    .await
    .expect("the typed phrase confirms");
    let seeded = inspect::data(&t.db).await;

    // A second reset would delete audit rows: refused before anything is asked.
    let mut log = Vec::new();
    let again = seeder::seed_with(
        &staging,
        &options(&t),
        &mut Scripted(Some("MIGRATE STAGING")),
        &mut log,
    )
    .await;
    assert!(matches!(again, Err(SeedError::Refused { .. })), "{again:?}");
    assert!(
        !String::from_utf8(log)
            .expect("utf-8")
            .contains("DELETE EVERY ROW"),
        "nothing is listed or asked"
    );
    inspect::assert_same_data(&inspect::data(&t.db).await, &seeded);
}

/// The reset empties some tables and keeps the others: together, every table the
/// migrations create, so a new table cannot be forgotten by either.
async fn seeder_reset_and_kept_tables_are_every_table(t: TestDb) {
    Migrator::up(&t.db, None).await.expect("migrates");
    let mut known: Vec<&str> = seeder::RESET_TABLES
        .iter()
        .chain(seeder::KEPT_TABLES.iter())
        .copied()
        .collect();
    let mut tables = seeder::table_names(&t.owner).await.expect("tables");
    tables.sort_unstable();
    // The migration CLI's own bookkeeping exists once the CLI has run.
    known.retain(|k| {
        !["migration_checksums", "migration_lock"].contains(k) || tables.iter().any(|t| t == k)
    });
    known.sort_unstable();
    assert_eq!(tables, known);
}

async fn seeder_collision_with_rows_it_did_not_write_is_explained_and_rolled_back(t: TestDb) {
    seed(&EnvSignals::default(), &options(&t))
        .await
        .expect("first load");
    // A table of the application's that the seeder does not know, pointing at a seeded user.
    let uuid_type = match t.db_backend() {
        sea_orm::DbBackend::Postgres => "uuid",
        sea_orm::DbBackend::MySql => "binary(16)",
        _ => "blob",
    };
    for sql in [
        format!("CREATE TABLE app_bookmarks (user_id {uuid_type} NOT NULL REFERENCES users (id))"),
        "INSERT INTO app_bookmarks (user_id) SELECT id FROM users WHERE email = 'alice@acme.com'"
            .to_owned(),
    ] {
        t.db.execute_raw(Statement::from_string(t.db_backend(), sql))
            .await
            .expect("runs");
    }
    let before = inspect::data(&t.db).await;
    // The audit trail makes the reset a rebuild of the schema, which would drop the
    // application's table or break halfway on its foreign key: refused first.
    let err = seed(&EnvSignals::default(), &options(&t))
        .await
        .expect_err("the reset cannot delete alice");
    match &err {
        SeedError::UnknownTables(tables) => assert_eq!(tables, "app_bookmarks"),
        other => panic!("expected the unknown table named, got {other:?}"),
    }
    assert!(
        err.to_string().contains("Nothing was changed"),
        "says what happened: {err}"
    );
    inspect::assert_same_data(&inspect::data(&t.db).await, &before);
    assert_eq!(inspect::count_rows(&t.db, "app_bookmarks").await, 1);

    // Rows it did not write in a table it does know (no audit trail yet, so the reset
    // deletes): the collision is explained and the load rolled back.
    let fresh = t.sibling(Start::Empty).await;
    Migrator::up(&fresh.owner, None).await.expect("migrates");
    for sql in [
        format!("CREATE TABLE app_bookmarks (user_id {uuid_type} NOT NULL REFERENCES users (id))"),
        format!(
            "INSERT INTO users (id, email, password_hash) VALUES ({}, 'someone@example.com', 'x')",
            tests::tamper::uuid_literal(fresh.backend, uuid::Uuid::from_u128(42))
        ),
        format!(
            "INSERT INTO app_bookmarks (user_id) VALUES ({})",
            tests::tamper::uuid_literal(fresh.backend, uuid::Uuid::from_u128(42))
        ),
    ] {
        fresh
            .owner
            .execute_raw(Statement::from_string(fresh.db_backend(), sql))
            .await
            .expect("runs");
    }
    let before = inspect::data(&fresh.owner).await;
    let err = seed(&EnvSignals::default(), &options(&fresh))
        .await
        .expect_err("the reset cannot delete the bookmarked user");
    match &err {
        SeedError::Collision { check, .. } => assert_eq!(*check, "a foreign-key check"),
        other => panic!("expected a collision, got {other:?}"),
    }
    assert!(
        err.to_string().contains("nothing of it was written"),
        "says what happened: {err}"
    );
    inspect::assert_same_data(&inspect::data(&fresh.owner).await, &before);
}

/// Every line of each printed table is as wide on screen as the others, Rento's
/// Japanese names (two columns per character) included.
async fn seeder_summary_tables_line_up_with_japanese_names(t: TestDb) {
    use unicode_width::UnicodeWidthStr;
    let report = seed(&EnvSignals::default(), &options(&t))
        .await
        .expect("seeds");
    let mut printed = Vec::new();
    seeder::summary::write_summary(&report, &mut printed).expect("writes");
    let printed = String::from_utf8(printed).expect("utf-8");

    let users = seeder::summary::users_table(&report).to_string();
    assert!(
        printed.contains(&users),
        "the summary prints the users table"
    );
    let tanaka = users
        .lines()
        .find(|line| line.contains("田中 太郎"))
        .expect("Rento's owner is listed");
    assert_ne!(
        tanaka.chars().count(),
        tanaka.width(),
        "the line holds wide characters: {tanaka}"
    );

    let mut tables = 0;
    for block in printed.split("\n\n") {
        let rows: Vec<&str> = block.lines().filter(|l| l.starts_with('|')).collect();
        if rows.is_empty() {
            continue;
        }
        tables += 1;
        let width = rows[0].width();
        for row in &rows {
            assert_eq!(row.width(), width, "misaligned row in:\n{block}");
            assert!(row.ends_with('|'), "{row}");
        }
    }
    assert!(
        tables >= 5,
        "tenants, users, roles, teams, invitations: {printed}"
    );
    for product in [
        "Agent SaaS (multi-tenant)",
        "Healthy Stellar (clinic)",
        "Rento (rental, APPI)",
    ] {
        assert!(
            printed.contains(product),
            "tenants name their product: {printed}"
        );
    }
}
