//! Sign-in throttling, on every backend: exponential delays per account-and-address
//! and per address, claimed atomically before the password is checked, answered like
//! a wrong password.

use chrono::Duration;
use entity::audit::audit_logs;
use entity::identity::sign_in_throttles::{self, ThrottleScope};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use service::identity::authenticate;
use service::{RequestMeta, ServiceConfig, ServiceError, ThrottlePolicy};
use std::sync::Arc;
use std::time::Instant;
use tests::fixtures::{self, PASSWORD, email, meta, password};
use tests::{TestDb, inspect};

tests::backend_tests!(
    Migrated: authenticate_throttles_with_exponential_delay_and_answers_like_a_wrong_password,
    authenticate_locked_unknown_and_wrong_answer_alike,
    authenticate_a_stranger_elsewhere_cannot_lock_the_owner_out,
    authenticate_twenty_parallel_wrong_passwords_then_the_right_one,
);

fn throttled_config(free: i32) -> ServiceConfig {
    ServiceConfig {
        sign_in_per_account_address: ThrottlePolicy {
            free_failures: free,
            base_delay: Duration::seconds(1),
            max_delay: Duration::minutes(1),
        },
        ..ServiceConfig::default()
    }
}

fn from(ip: &str) -> RequestMeta {
    RequestMeta::new(Some(ip.parse().expect("an address")), Some("tests"))
}

/// `login_failed` rows by the reason they give.
async fn failures_by_reason(t: &TestDb, reason: &str) -> usize {
    audit_logs::Entity::find()
        .filter(audit_logs::Column::EventType.eq("login_failed"))
        .all(&t.owner)
        .await
        .expect("query")
        .iter()
        .filter(|e| e.details["reason"] == reason)
        .count()
}

async fn account_failures(t: &TestDb) -> Vec<i32> {
    sign_in_throttles::Entity::find()
        .filter(sign_in_throttles::Column::Scope.eq(ThrottleScope::AccountAddress))
        .all(&t.owner)
        .await
        .expect("query")
        .iter()
        .map(|row| row.failures)
        .collect()
}

async fn authenticate_throttles_with_exponential_delay_and_answers_like_a_wrong_password(
    t: TestDb,
) {
    let (deps, clock) = fixtures::deps_with(throttled_config(3));
    fixtures::user(&t.db, &deps, "bob").await;
    let bob = email("bob@example.com");
    let attempt = |pw: &'static str| {
        let (db, deps, bob) = (t.db.clone(), deps.clone(), bob.clone());
        async move { authenticate(&db, &deps, &bob, &password(pw), &meta()).await }
    };
    // Three free failures, then the fourth blocks the account at this address for 1 s.
    for n in 1..=4 {
        let err = attempt("wrong-password").await.expect_err("wrong");
        assert!(
            matches!(err, ServiceError::InvalidCredentials),
            "attempt {n}: {err:?}"
        );
    }
    assert_eq!(account_failures(&t).await, vec![4]);
    assert_eq!(inspect::count_events(&t.owner, "account_locked").await, 1);
    // Blocked: even the right password is refused, exactly like a wrong one.
    let err = attempt(PASSWORD).await.expect_err("blocked");
    assert!(matches!(err, ServiceError::InvalidCredentials), "{err:?}");
    assert_eq!(failures_by_reason(&t, "throttled").await, 1);
    assert_eq!(
        account_failures(&t).await,
        vec![4],
        "a refused attempt does not extend the block"
    );

    // After the block, one more failure doubles it: 2 s.
    clock.advance(Duration::seconds(1) + Duration::milliseconds(1));
    attempt("wrong-password").await.expect_err("wrong");
    clock.advance(Duration::seconds(1) + Duration::milliseconds(500));
    let err = attempt(PASSWORD)
        .await
        .expect_err("still blocked after 1.5 s");
    assert!(matches!(err, ServiceError::InvalidCredentials), "{err:?}");
    clock.advance(Duration::seconds(1));
    let user = attempt(PASSWORD).await.expect("the block is over");
    assert_eq!(user.email, "bob@example.com");
    assert_eq!(account_failures(&t).await, vec![0], "success starts over");
    assert_eq!(failures_by_reason(&t, "wrong_password").await, 5);
    assert_eq!(failures_by_reason(&t, "throttled").await, 2);
}

async fn authenticate_locked_unknown_and_wrong_answer_alike(t: TestDb) {
    let (deps, _) = fixtures::deps_with(throttled_config(1));
    fixtures::user(&t.db, &deps, "carl").await;
    let carl = email("carl@example.com");
    // Carl's account at this address gets blocked.
    for _ in 0..2 {
        authenticate(&t.db, &deps, &carl, &password("wrong-password"), &meta())
            .await
            .expect_err("wrong");
    }
    let locked = authenticate(&t.db, &deps, &carl, &password(PASSWORD), &meta())
        .await
        .expect_err("blocked");
    let unknown = authenticate(
        &t.db,
        &deps,
        &email("nobody@example.com"),
        &password(PASSWORD),
        &meta(),
    )
    .await
    .expect_err("unknown");
    let wrong = authenticate(
        &t.db,
        &deps,
        &carl,
        &password("wrong-again"),
        &from("198.51.100.9"),
    )
    .await
    .expect_err("wrong");
    for err in [&locked, &unknown, &wrong] {
        assert!(matches!(err, ServiceError::InvalidCredentials), "{err:?}");
    }
    assert_eq!(locked.to_string(), unknown.to_string());
    assert_eq!(unknown.to_string(), wrong.to_string());
    // Unknown emails are throttled like real ones, so the table cannot tell them apart,
    // and only hashes of the keys are stored.
    let rows = sign_in_throttles::Entity::find()
        .all(&t.owner)
        .await
        .expect("query");
    assert!(
        rows.iter()
            .all(|r| r.key_hash.len() == 64 && !r.key_hash.contains('@'))
    );
    assert_eq!(
        rows.iter()
            .filter(|r| r.scope == ThrottleScope::AccountAddress)
            .count(),
        3,
        "carl here, carl elsewhere, and the unknown email"
    );
}

async fn authenticate_a_stranger_elsewhere_cannot_lock_the_owner_out(t: TestDb) {
    let (deps, _) = fixtures::deps_with(throttled_config(3));
    fixtures::user(&t.db, &deps, "dora").await;
    let dora = email("dora@example.com");
    let stranger = from("192.0.2.66");
    for _ in 0..20 {
        authenticate(&t.db, &deps, &dora, &password("guess-guess"), &stranger)
            .await
            .expect_err("wrong");
    }
    let err = authenticate(&t.db, &deps, &dora, &password(PASSWORD), &stranger)
        .await
        .expect_err("the stranger's address is blocked");
    assert!(matches!(err, ServiceError::InvalidCredentials), "{err:?}");
    let user = authenticate(
        &t.db,
        &deps,
        &dora,
        &password(PASSWORD),
        &from("203.0.113.50"),
    )
    .await
    .expect("Dora, from her own address, is not slowed down");
    assert_eq!(user.email, "dora@example.com");
    // An IPv6 client is throttled by its /64: another address of the same /64 is the
    // same client.
    for _ in 0..4 {
        authenticate(
            &t.db,
            &deps,
            &dora,
            &password("guess-guess"),
            &from("2001:db8:1:2::1"),
        )
        .await
        .expect_err("wrong");
    }
    let err = authenticate(
        &t.db,
        &deps,
        &dora,
        &password(PASSWORD),
        &from("2001:db8:1:2::ffff"),
    )
    .await
    .expect_err("same /64");
    assert!(matches!(err, ServiceError::InvalidCredentials), "{err:?}");
}

/// Twenty wrong passwords at once, then the right one: the slots are claimed
/// atomically, so exactly `free + 1` guesses are ever checked and the right password
/// is refused while the block lasts.
async fn authenticate_twenty_parallel_wrong_passwords_then_the_right_one(t: TestDb) {
    const GUESSES: usize = 20;
    let (deps, _) = fixtures::deps();
    let free = deps.config.sign_in_per_account_address.free_failures;
    fixtures::user(&t.db, &deps, "erin").await;
    let erin = email("erin@example.com");
    let barrier = Arc::new(tokio::sync::Barrier::new(GUESSES));
    let tasks: Vec<_> = (0..GUESSES)
        .map(|_| {
            let (db, deps, erin, barrier) =
                (t.db.clone(), deps.clone(), erin.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let started = Instant::now();
                let result =
                    authenticate(&db, &deps, &erin, &password("wrong-password"), &meta()).await;
                (started, Instant::now(), result)
            })
        })
        .collect();
    let mut spans = Vec::new();
    for task in tasks {
        let (started, ended, result) = task.await.expect("the task ran");
        let err = result.expect_err("a wrong password never signs in");
        assert!(matches!(err, ServiceError::InvalidCredentials), "{err:?}");
        spans.push((started, ended));
    }
    // They did run at once: some attempt started before another one ended.
    let overlapped = spans.iter().enumerate().any(|(i, a)| {
        spans
            .iter()
            .enumerate()
            .any(|(j, b)| i != j && a.0 < b.1 && b.0 < a.1)
    });
    assert!(overlapped, "the attempts overlapped");

    let err = authenticate(&t.db, &deps, &erin, &password(PASSWORD), &meta())
        .await
        .expect_err("no success while throttled");
    assert!(matches!(err, ServiceError::InvalidCredentials), "{err:?}");
    let checked = usize::try_from(free + 1).expect("small");
    assert_eq!(
        account_failures(&t).await,
        vec![free + 1],
        "the counter is exact"
    );
    assert_eq!(failures_by_reason(&t, "wrong_password").await, checked);
    assert_eq!(
        failures_by_reason(&t, "throttled").await,
        GUESSES - checked + 1
    );
    assert_eq!(inspect::count_events(&t.owner, "login").await, 0);
}
