//! Agent queue benchmark. Prints figures; asserts only that every task was taken
//! exactly once.
//!
//! Eight workers drain 4,000 queued tasks of one tenant on PostgreSQL: through
//! `service::agents::claim_next` as the runtime role (its tenant transaction, the
//! `agents:run` check, the claim and its audit row), then, after the tasks are put
//! back, through the same claim statement hand-written for sqlx as the owner in
//! autocommit (no transaction, no permission check, no audit): claims per second,
//! p50 and p99 claim latency, and double claims (zero, or the benchmark fails).
//!
//! Run: `cargo bench -p tests --bench agents`.

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use service::access::Scope;
use service::agents::{WorkerId, claim_next};
use service::tenancy::TenantCtx;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;
use tests::access_world::{give, role, world};
use tests::fixtures::meta;
use tests::{Backend, Start, TestDb, run_case};

const TASKS: usize = 4000;
const WORKERS: usize = 8;

fn main() {
    // SAFETY: set before any thread starts; fail instead of skipping a missing server.
    unsafe { std::env::set_var("REQUIRE_BACKENDS", "postgres") };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run_case(
        Backend::Postgres,
        "bench_agent_queue",
        Start::Migrated,
        |t| async move { queue(&t).await },
    ));
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Claims, their latencies (µs) and the wall time of one drain.
struct Drain {
    claimed: Vec<uuid::Uuid>,
    micros: Vec<f64>,
    seconds: f64,
}

impl Drain {
    fn report(mut self, name: &str) -> f64 {
        self.micros.sort_by(f64::total_cmp);
        let distinct: HashSet<_> = self.claimed.iter().collect();
        assert_eq!(self.claimed.len(), TASKS, "{name}: every task taken");
        assert_eq!(distinct.len(), TASKS, "{name}: a task taken twice");
        let rate = TASKS as f64 / self.seconds;
        println!(
            "  {name:<44} {rate:>7.0} claims/s   p50 {:>7.0} µs   p99 {:>7.0} µs   double claims: {}",
            percentile(&self.micros, 0.5),
            percentile(&self.micros, 0.99),
            self.claimed.len() - distinct.len()
        );
        rate
    }
}

/// A fresh queue of due tasks, priorities spread over 0..100 (a taken task cannot be
/// put back: a trigger keeps attempts from going down).
async fn fill(t: &TestDb, tenant: entity::TenantId, user: entity::UserId) {
    for sql in [
        "DELETE FROM agent_results".to_owned(),
        "DELETE FROM agent_tasks".to_owned(),
        // Due long before the service's test clock.
        format!(
            "INSERT INTO agent_tasks (id, tenant_id, agent, payload, status, priority, attempts,
                                      max_attempts, run_after, created_by)
             SELECT gen_random_uuid(), '{tenant}', 'bench', jsonb_build_object('n', n), 'queued',
                    n % 101, 0, 3, TIMESTAMPTZ '2026-01-01 00:00:00+00', '{user}'
               FROM generate_series(1, {TASKS}) AS n"
        ),
        "VACUUM ANALYZE agent_tasks".to_owned(),
    ] {
        t.owner
            .execute_raw(Statement::from_string(DbBackend::Postgres, sql))
            .await
            .expect("the queue");
    }
}

async fn queue(t: &TestDb) {
    let w = world(t).await;
    let runners = role(t, &w, "agent-runner", &[("agents", "run")]).await;
    give(t, &w, w.bob, &runners, Scope::Tenant).await;
    let bob = Arc::new(
        TenantCtx::for_member(&t.db, w.acme.id, w.bob)
            .await
            .expect("member"),
    );
    fill(t, w.acme.id, w.bob).await;
    println!("agent queue on postgres: {WORKERS} workers drain {TASKS} tasks of one tenant");

    let started = Instant::now();
    let mut handles = Vec::new();
    for k in 0..WORKERS {
        let (db, deps, ctx) = (t.db.clone(), w.deps.clone(), bob.clone());
        handles.push(tokio::spawn(async move {
            let me = WorkerId::parse(&format!("bench-{k}")).expect("valid");
            let (mut claimed, mut micros) = (Vec::new(), Vec::new());
            loop {
                let start = Instant::now();
                let Some(task) = claim_next(&db, &deps, &ctx, &me, &meta())
                    .await
                    .expect("claims")
                else {
                    break;
                };
                micros.push(start.elapsed().as_secs_f64() * 1e6);
                claimed.push(task.id.0);
            }
            (claimed, micros)
        }));
    }
    let service = collect(handles, started).await;
    let service_rate = service.report("claim_next (runtime role, audited)");

    fill(t, w.acme.id, w.bob).await;
    let pool = t.owner.get_postgres_connection_pool().clone();
    let tenant = w.acme.id.0;
    let started = Instant::now();
    let mut handles = Vec::new();
    for k in 0..WORKERS {
        let pool = pool.clone();
        handles.push(tokio::spawn(async move {
            let me = format!("raw-{k}");
            let (mut claimed, mut micros) = (Vec::new(), Vec::new());
            loop {
                let start = Instant::now();
                let row: Option<(uuid::Uuid,)> = sea_orm::sqlx::query_as(
                    "UPDATE agent_tasks
                        SET status = 'running', locked_by = $1, locked_at = now(),
                            heartbeat_at = now(), attempts = attempts + 1, updated_at = now()
                      WHERE id = (SELECT id FROM agent_tasks
                                   WHERE tenant_id = $2 AND status = 'queued' AND run_after <= now()
                                   ORDER BY priority DESC, run_after, id
                                   LIMIT 1 FOR UPDATE SKIP LOCKED)
                  RETURNING id",
                )
                .bind(&me)
                .bind(tenant)
                .fetch_optional(&pool)
                .await
                .expect("claims");
                let Some((id,)) = row else { break };
                micros.push(start.elapsed().as_secs_f64() * 1e6);
                claimed.push(id);
            }
            (claimed, micros)
        }));
    }
    let raw = collect(handles, started).await;
    let raw_rate = raw.report("the claim statement through sqlx (owner)");
    println!(
        "  ratio: {:.2}x of the hand-written claim's rate (the service adds a transaction, the \
         membership and permission checks and an audit row per claim)",
        service_rate / raw_rate
    );
}

async fn collect(
    handles: Vec<tokio::task::JoinHandle<(Vec<uuid::Uuid>, Vec<f64>)>>,
    started: Instant,
) -> Drain {
    let mut drain = Drain {
        claimed: Vec::new(),
        micros: Vec::new(),
        seconds: 0.0,
    };
    for handle in handles {
        let (claimed, micros) = handle.await.expect("worker");
        drain.claimed.extend(claimed);
        drain.micros.extend(micros);
    }
    drain.seconds = started.elapsed().as_secs_f64();
    drain
}
