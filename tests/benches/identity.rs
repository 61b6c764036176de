//! Identity benchmarks. Prints figures; asserts only that the work was done.
//!
//! 1. Sign-ins per second with 1, 2 and 8 concurrent clients at the OWASP argon2id
//!    parameters (19 MiB, 2 passes, 1 lane), against the ideal of the same run: cores
//!    divided by the time of one hash. Meanwhile a cheap query runs every 5 ms; its
//!    p99 shows whether hashing (on Tokio's blocking pool) stalls the runtime.
//! 2. API-key authentication (`authenticate_api_key`, as the runtime role) against
//!    two hand-written lookups of the same row through sqlx, same run, PostgreSQL,
//!    each a cached prepared statement: the runtime role calling the same
//!    `SECURITY DEFINER` function (like for like: what the service adds), and the
//!    owner joining the tables directly (what the wall adds on top: the runtime role
//!    may not read key hashes). Both read what authentication decides on (state,
//!    scopes, the tenant's `is_active`) by hash.
//! 3. Session validation (`validate_session`, as the runtime role) against the same
//!    two lookups of the session row: the function as the runtime role, and the
//!    owner's join with the same columns and the same "has a second factor" (TOTP or
//!    passkey).
//!
//! Run: `cargo bench -p tests --bench identity`.

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use service::identity::{
    NewApiKey, authenticate, authenticate_api_key, create_api_key, create_session, validate_session,
};
use service::input::{Email, Password};
use service::tenancy::TenantCtx;
use service::{Deps, RequestMeta, ServiceConfig};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tests::fixtures;
use tests::{Backend, Start, TestDb, run_case};

const SIGN_IN_SECONDS: f64 = 4.0;

fn main() {
    // SAFETY: set before any thread starts; fail instead of skipping a missing server.
    unsafe { std::env::set_var("REQUIRE_BACKENDS", "postgres") };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        run_case(
            Backend::Postgres,
            "bench_sign_ins",
            Start::Migrated,
            |t| async move {
                sign_ins(&t).await;
            },
        )
        .await;
        run_case(
            Backend::Postgres,
            "bench_api_keys",
            Start::Migrated,
            |t| async move {
                api_keys(&t).await;
            },
        )
        .await;
        run_case(
            Backend::Postgres,
            "bench_sessions",
            Start::Migrated,
            |t| async move {
                sessions(&t).await;
            },
        )
        .await;
    });
}

fn owasp() -> ServiceConfig {
    ServiceConfig {
        argon2_memory_kib: 19_456,
        argon2_iterations: 2,
        argon2_parallelism: 1,
        ..ServiceConfig::default()
    }
}

/// Hashes per second with `clients` tasks hashing at once and nothing else: what the
/// machine gives argon2 alone, to tell the database's share of a shortfall from the
/// hardware's.
async fn hash_rate(deps: &Deps, password: &Password, clients: usize) -> f64 {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (deps, password) = (deps.clone(), password.clone());
        tasks.push(tokio::spawn(async move {
            let mut done = 0u32;
            while started.elapsed().as_secs_f64() < 2.0 {
                service::identity::hash_password(&deps, &password)
                    .await
                    .expect("hashes");
                done += 1;
            }
            done
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.expect("hasher");
    }
    f64::from(total) / started.elapsed().as_secs_f64()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn sign_ins(t: &TestDb) {
    let (deps, _) = fixtures::deps_with(owasp());
    let password = Password::new(fixtures::PASSWORD).expect("valid");
    let mut emails = Vec::new();
    for n in 0..8 {
        let user = fixtures::user(&t.db, &deps, &format!("signer{n}")).await;
        emails.push(Email::parse(&user.email).expect("valid"));
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "sign-in on postgres at OWASP argon2id (19 MiB, 2 passes), {cores} cores; the ideal is \
         the clients (at most the cores) over one hash's time, measured just before each run \
         over 2 s of hashing one at a time (this machine's speed drifts, and short bursts run \
         faster than sustained work)"
    );
    for clients in [1usize, 2, 8] {
        let one_hash = 1.0 / hash_rate(&deps, &password, 1).await;
        let ideal = (clients.min(cores)) as f64 / one_hash;
        let hashing_alone = hash_rate(&deps, &password, clients).await;
        let stop = Arc::new(AtomicBool::new(false));
        // A cheap query every 5 ms meanwhile.
        let probe = {
            let db = t.db.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut micros = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let start = Instant::now();
                    db.execute_raw(Statement::from_string(
                        DbBackend::Postgres,
                        "SELECT 1".to_owned(),
                    ))
                    .await
                    .expect("probe");
                    micros.push(start.elapsed().as_secs_f64() * 1e6);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                micros
            })
        };
        let started = Instant::now();
        let mut tasks = Vec::new();
        for (client, email) in emails.iter().take(clients).enumerate() {
            let (db, deps, email, password) =
                (t.db.clone(), deps.clone(), email.clone(), password.clone());
            tasks.push(tokio::spawn(async move {
                let mut done = 0u32;
                // A client address per client: the throttle's per-address budget is
                // not what is measured.
                let meta = RequestMeta::new(
                    Some(
                        format!("10.0.0.{}", client + 1)
                            .parse()
                            .expect("an address"),
                    ),
                    None,
                );
                while started.elapsed().as_secs_f64() < SIGN_IN_SECONDS {
                    authenticate(&db, &deps, &email, &password, &meta)
                        .await
                        .expect("signs in");
                    done += 1;
                }
                done
            }));
        }
        let mut total = 0;
        for task in tasks {
            total += task.await.expect("client");
        }
        let elapsed = started.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        let mut probe = probe.await.expect("probe");
        probe.sort_by(f64::total_cmp);
        let rate = f64::from(total) / elapsed;
        println!(
            "  {clients} client(s): {rate:>6.1} sign-ins/s, ideal {ideal:>6.1} (one hash {:.1} ms): {:.2}x   \
             (target: at least 0.8x); hashing alone, {clients} at a time: {hashing_alone:.1}/s ({:.2}x of ideal); \
             cheap query meanwhile p50 {:.0} µs, p99 {:.0} µs",
            one_hash * 1e3,
            rate / ideal,
            hashing_alone / ideal,
            percentile(&probe, 0.5),
            percentile(&probe, 0.99)
        );
    }
}

async fn api_keys(t: &TestDb) {
    let (deps, _) = fixtures::deps_with(ServiceConfig {
        argon2_memory_kib: 1024,
        argon2_iterations: 1,
        ..ServiceConfig::default()
    });
    let deps: Deps = deps;
    let owner = fixtures::user(&t.db, &deps, "keyowner").await;
    let tenant = fixtures::tenant(&t.db, &deps, "keys", &owner).await;
    let ctx = TenantCtx::for_member(&t.db, tenant.id, owner.id)
        .await
        .expect("owner");
    let issued = create_api_key(
        &t.db,
        &deps,
        &ctx,
        NewApiKey {
            name: "bench".to_owned(),
            scopes: vec!["*:*".to_owned()],
            expires_at: None,
        },
        &RequestMeta::system(),
    )
    .await
    .expect("a key");
    let key = issued.secret.expose().to_owned();
    let hash = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(key.as_bytes()))
    };
    let pool = t.owner.get_postgres_connection_pool().clone();
    let meta = RequestMeta::system();
    let raw = |hash: String| {
        let pool = pool.clone();
        async move {
            // What authentication needs of the row: the key, its tenant and whether
            // that is active, its scopes and everything that can refuse it.
            type Row = (
                uuid::Uuid,
                uuid::Uuid,
                String,
                serde_json::Value,
                Option<chrono::DateTime<chrono::Utc>>,
                Option<chrono::DateTime<chrono::Utc>>,
                Option<chrono::DateTime<chrono::Utc>>,
                Option<chrono::DateTime<chrono::Utc>>,
                bool,
            );
            let row: Row = sea_orm::sqlx::query_as(
                "SELECT k.id, k.tenant_id, k.prefix, k.scopes, k.expires_at, k.last_used_at,
                        k.revoked_at, k.grace_ends_at, t.is_active
                   FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
                  WHERE k.key_hash = $1",
            )
            .bind(hash)
            .fetch_one(&pool)
            .await
            .expect("the row");
            row
        }
    };
    let runtime_pool = t.db.get_postgres_connection_pool().clone();
    let through_function = |hash: String| {
        let pool = runtime_pool.clone();
        async move {
            let rows = sea_orm::sqlx::query("SELECT * FROM app_api_key_authenticate($1)")
                .bind(hash)
                .fetch_all(&pool)
                .await
                .expect("the row");
            assert_eq!(rows.len(), 1);
        }
    };
    let mut times = Times::default();
    for round in 0..2200 {
        let warm = round >= 200;
        let start = Instant::now();
        authenticate_api_key(&t.db, &deps, &key, &meta)
            .await
            .expect("authenticates");
        times.ours.push(start.elapsed().as_secs_f64() * 1e6);
        let start = Instant::now();
        through_function(hash.clone()).await;
        times.same_role.push(start.elapsed().as_secs_f64() * 1e6);
        let start = Instant::now();
        raw(hash.clone()).await;
        times.owner.push(start.elapsed().as_secs_f64() * 1e6);
        if !warm {
            times = Times::default();
        }
    }
    times.report(
        "API-key authentication on postgres (2000 each, interleaved, after 200 to warm up):",
        "authenticate_api_key (runtime role)",
    );
}

async fn sessions(t: &TestDb) {
    let (deps, _) = fixtures::deps_with(ServiceConfig {
        argon2_memory_kib: 1024,
        argon2_iterations: 1,
        ..ServiceConfig::default()
    });
    let user = fixtures::user(&t.db, &deps, "sessionholder").await;
    let issued = create_session(&t.db, &deps, user.id, &RequestMeta::system())
        .await
        .expect("a session");
    let session_id = issued.session.id;
    let pool = t.owner.get_postgres_connection_pool().clone();
    type Row = (
        String,
        String,
        Option<chrono::DateTime<chrono::Utc>>,
        chrono::DateTime<chrono::Utc>,
        chrono::DateTime<chrono::Utc>,
        Option<chrono::DateTime<chrono::Utc>>,
        bool,
        bool,
    );
    let raw = || {
        let pool = pool.clone();
        async move {
            let row: Row = sea_orm::sqlx::query_as(
                "SELECT s.aal, s.auth_methods, s.authenticated_at, s.created_at, s.expires_at,
                        s.revoked_at, u.is_active,
                        EXISTS (SELECT 1 FROM mfa_factors f
                                 WHERE f.user_id = s.user_id AND f.confirmed_at IS NOT NULL)
                        OR EXISTS (SELECT 1 FROM passkeys k
                                    WHERE k.user_id = s.user_id AND k.disabled_at IS NULL)
                   FROM sessions s JOIN users u ON u.id = s.user_id
                  WHERE s.id = $1 AND s.user_id = $2",
            )
            .bind(session_id.0)
            .bind(user.id.0)
            .fetch_one(&pool)
            .await
            .expect("the row");
            row
        }
    };
    let runtime_pool = t.db.get_postgres_connection_pool().clone();
    let through_function = || {
        let pool = runtime_pool.clone();
        async move {
            let rows = sea_orm::sqlx::query("SELECT * FROM app_session_check($1, $2)")
                .bind(session_id.0)
                .bind(user.id.0)
                .fetch_all(&pool)
                .await
                .expect("the row");
            assert_eq!(rows.len(), 1);
        }
    };
    let mut times = Times::default();
    for round in 0..2200 {
        let warm = round >= 200;
        let start = Instant::now();
        validate_session(&t.db, &deps, user.id, session_id)
            .await
            .expect("validates");
        times.ours.push(start.elapsed().as_secs_f64() * 1e6);
        let start = Instant::now();
        through_function().await;
        times.same_role.push(start.elapsed().as_secs_f64() * 1e6);
        let start = Instant::now();
        raw().await;
        times.owner.push(start.elapsed().as_secs_f64() * 1e6);
        if !warm {
            times = Times::default();
        }
    }
    times.report(
        "Session validation on postgres (2000 each, interleaved, after 200 to warm up):",
        "validate_session (runtime role)",
    );
}

/// Microseconds per call: the service, the same function hand-written as the runtime
/// role, the owner's hand-written join.
#[derive(Default)]
struct Times {
    ours: Vec<f64>,
    same_role: Vec<f64>,
    owner: Vec<f64>,
}

impl Times {
    /// Prints p50 and p99 of each, and the service's p50 over each baseline's.
    fn report(mut self, title: &str, ours_name: &str) {
        for times in [&mut self.ours, &mut self.same_role, &mut self.owner] {
            times.sort_by(f64::total_cmp);
        }
        println!("{title}");
        for (name, times) in [
            (ours_name, &self.ours),
            ("same function through sqlx (runtime role)", &self.same_role),
            ("direct join through sqlx (owner)", &self.owner),
        ] {
            println!(
                "  {name:<42} p50 {:>7.1} µs   p99 {:>7.1} µs",
                percentile(times, 0.5),
                percentile(times, 0.99)
            );
        }
        let p50 = percentile(&self.ours, 0.5);
        println!(
            "  ratio (p50): {:.2}x over the same function as the runtime role (target: within \
             1.2x); {:.2}x over the owner's direct join",
            p50 / percentile(&self.same_role, 0.5),
            p50 / percentile(&self.owner, 0.5)
        );
    }
}
