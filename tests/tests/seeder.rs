//! The seeder: deterministic, idempotent, and never writing to production.

use migration::environment::{AppEnv, record_env_if_absent};
use migration::{Migrator, MigratorTrait};
use seeder::profile::{ProfileName, SHARED_PASSWORD};
use seeder::{EnvSignals, SeedError, SeedOptions, profile_namespace, seed};
use service::deps::LabelledIds;
use service::identity::authenticate;
use service::input::{Email, Password};
use service::{Deps, RequestMeta, ServiceConfig};
use tests::{Start, TestDb, inspect};

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
);

fn options(t: &TestDb) -> SeedOptions {
    SeedOptions {
        database_url: Some(t.url.clone()),
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
            .is_some_and(|(_, rows)| rows.len() == 17)
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
    seed(&signals(Some("staging"), None), &options(&t))
        .await
        .expect("the right environment seeds");
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

    let deps = Deps::new(ServiceConfig::default());
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
        report
            .access
            .roles
            .iter()
            .all(|r| r.tenant.is_none_or(|t| t == "acme")),
        "only system roles and Acme's own"
    );
    assert!(report.access.invitations.iter().all(|i| i.tenant == "acme"));
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
