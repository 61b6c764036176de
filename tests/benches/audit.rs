//! Audit trail benchmarks. Prints figures; asserts only that each side did its work.
//!
//! 1. Appends through `audit::record` (lock the chain's head, hash, insert, move the
//!    head), 1 and 8 concurrent writers, into one tenant and into 8 tenants, against
//!    plain inserts of the same rows into a copy of the table without the chain, in the
//!    same transactions (`TenantCtx::begin`, one row, commit), in the same run.
//! 2. `audit::verify` over 1,000,000 events on PostgreSQL (`seeder --scale 50000`:
//!    50,000 chains of 20), with the process's peak memory before and after, and the
//!    same walk over a tenth of them to show it does not grow with the trail.
//!
//! Run: `cargo bench -p tests --bench audit` (`AUDIT_BENCH=append` or `=verify` for one
//! part).

use entity::audit::audit_logs::{self, AuditOutcome};
use migration::environment::AppEnv;
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, IntoActiveModel,
    QueryTrait,
};
use serde_json::json;
use service::audit::verify::{self, ChainScope};
use service::audit::{AuditEntry, AuditEvent, record};
use service::deps::Deps;
use service::tenancy::TenantCtx;
use std::sync::Arc;
use std::time::Instant;
use tests::fixtures::{self, meta};
use tests::{Backend, Start, TestDb, run_case};

/// Appends per configuration (all writers together).
const APPENDS: usize = 2_000;
const VERIFY_TENANTS: u32 = 50_000;

fn main() {
    // SAFETY: before any thread starts.
    unsafe { std::env::set_var("REQUIRE_BACKENDS", "sqlite,postgres,mysql") };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // AUDIT_BENCH=append or =verify runs one part only.
    let only = std::env::var("AUDIT_BENCH").unwrap_or_default();
    runtime.block_on(async {
        if only != "verify" {
            println!(
                "audit appends, {APPENDS} per run, chained against plain inserts of the same rows:"
            );
            for backend in [Backend::Postgres, Backend::MySql, Backend::Sqlite] {
                run_case(
                    backend,
                    "bench_audit_append",
                    Start::Migrated,
                    |t| async move { appends(&t).await },
                )
                .await;
            }
        }
        if only == "append" {
            return;
        }
        println!("audit verify on PostgreSQL:");
        run_case(
            Backend::Postgres,
            "bench_audit_verify",
            Start::Empty,
            |t| async move { verify_million(&t).await },
        )
        .await;
    });
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Chained,
    Plain,
}

async fn appends(t: &TestDb) {
    let backend = t.db.get_database_backend();
    let (deps, _) = fixtures::deps();
    let alice = fixtures::user(&t.db, &deps, "alice").await;
    let mut tenants = Vec::new();
    for i in 0..8 {
        let tenant = fixtures::tenant(&t.db, &deps, &format!("bench-{i}"), &alice).await;
        tenants.push(Arc::new(
            TenantCtx::for_member(&t.db, tenant.id, alice.id)
                .await
                .expect("member"),
        ));
    }
    // The baseline's table: audit_logs' columns, no chain index, no trigger, no RLS.
    let create = match backend {
        DbBackend::Sqlite => "CREATE TABLE audit_logs_plain AS SELECT * FROM audit_logs WHERE 0",
        _ => "CREATE TABLE audit_logs_plain AS SELECT * FROM audit_logs WHERE 1 = 0",
    };
    t.owner.execute_unprepared(create).await.expect("creates");
    if backend == DbBackend::Postgres {
        t.owner
            .execute_unprepared("GRANT INSERT ON audit_logs_plain TO app_service")
            .await
            .expect("grants");
    }

    for (writers, tenant_count) in [(1, 1), (8, 1), (8, 8)] {
        let mut rates = [0.0; 2];
        // Alternated, twice each, best kept: the machine is shared and noisy.
        for _ in 0..2 {
            for (i, mode) in [Mode::Plain, Mode::Chained].into_iter().enumerate() {
                let rate = run_appends(t, &deps, &tenants[..tenant_count], writers, mode).await;
                rates[i] = f64::max(rates[i], rate);
            }
        }
        println!(
            "  {}, {writers} writer(s), {tenant_count} tenant(s): chained {:.0}/s, plain {:.0}/s, {:.2}x",
            t.backend.name(),
            rates[1],
            rates[0],
            rates[1] / rates[0]
        );
    }
    let report = verify::verify(&t.owner, ChainScope::All, None, |_| {})
        .await
        .expect("verifies");
    assert!(report.is_intact(), "{:?}", report.findings);
}

async fn run_appends(
    t: &TestDb,
    deps: &Deps,
    tenants: &[Arc<TenantCtx>],
    writers: usize,
    mode: Mode,
) -> f64 {
    let per_writer = APPENDS / writers;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (db, deps, ctx) = (
            t.db.clone(),
            deps.clone(),
            tenants[w % tenants.len()].clone(),
        );
        tasks.push(tokio::spawn(async move {
            for i in 0..per_writer {
                append_one(&db, &deps, &ctx, mode, i).await;
            }
        }));
    }
    for task in tasks {
        task.await.expect("writer");
    }
    (per_writer * writers) as f64 / started.elapsed().as_secs_f64()
}

async fn append_one(db: &DatabaseConnection, deps: &Deps, ctx: &TenantCtx, mode: Mode, i: usize) {
    let txn = ctx.begin(db).await.expect("begins");
    let request = meta();
    let entry = AuditEntry::by_member(ctx, AuditEvent::RoleCreated, &request)
        .resource("role", i)
        .details(json!({ "name": format!("role {i}") }));
    match mode {
        Mode::Chained => {
            record(&txn, deps, entry).await.expect("records");
        }
        Mode::Plain => {
            // The row `record` would write, without its chain: same columns, same sizes.
            let row = audit_logs::Model {
                id: entity::AuditLogId(uuid::Uuid::now_v7()),
                tenant_id: Some(ctx.tenant_id()),
                actor_user_id: Some(ctx.actor()),
                event_type: "role_created".into(),
                resource_type: Some("role".into()),
                resource_id: Some(i.to_string()),
                outcome: AuditOutcome::Success,
                risk_score: 0,
                ip_address: Some("203.0.113.7".into()),
                user_agent: Some("tests/1.0".into()),
                details: json!({ "name": format!("role {i}") }),
                occurred_at: deps.now(),
                chain_id: ctx.tenant_id().0,
                chain_seq: 0,
                chain_version: 1,
                prev_hash: vec![0; 32],
                hash: vec![0; 32],
            };
            let mut statement = audit_logs::Entity::insert(row.into_active_model().reset_all())
                .build(txn.get_database_backend());
            statement.sql = statement
                .sql
                .replacen("\"audit_logs\"", "\"audit_logs_plain\"", 1)
                .replacen("`audit_logs`", "`audit_logs_plain`", 1);
            txn.execute_raw(statement).await.expect("inserts");
        }
    }
    txn.commit().await.expect("commits");
}

/// The process's resident memory now (Linux).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn verify_million(t: &TestDb) {
    let started = Instant::now();
    let options = seeder::SeedOptions {
        database_url: Some(t.url.clone()),
        profile: seeder::profile::ProfileName::Minimal,
        scale: VERIFY_TENANTS,
        ..seeder::SeedOptions::default()
    };
    seeder::run(&options, AppEnv::Test, &t.target())
        .await
        .expect("seeds");
    t.owner
        .execute_unprepared("VACUUM ANALYZE audit_logs")
        .await
        .expect("analyzes");
    println!(
        "  loaded {VERIFY_TENANTS} tenants' chains in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    // 200 single chains first, then everything twice. The resident memory is sampled
    // every 10,000 rows of each walk: it must stay flat however many rows pass.
    let sample: Vec<uuid::Uuid> = entity::audit::audit_chain_heads::Entity::find()
        .all(&t.owner)
        .await
        .expect("heads")
        .into_iter()
        .map(|h| h.chain_id)
        .collect();
    let started = Instant::now();
    let mut tenth_rows = 0;
    for chain in sample.iter().step_by(10).take(200) {
        tenth_rows += verify::verify(&t.owner, ChainScope::One(*chain), None, |_| {})
            .await
            .expect("verifies")
            .rows;
    }
    let one_chain = started.elapsed().as_secs_f64() / 200.0;

    for run in 0..2 {
        let mut samples: Vec<(u64, u64)> = Vec::new();
        let started = Instant::now();
        let report = verify::verify(&t.owner, ChainScope::All, None, |rows| {
            samples.push((rows, rss_kib()))
        })
        .await
        .expect("verifies");
        let seconds = started.elapsed().as_secs_f64();
        assert!(report.is_intact(), "{:?}", report.findings.first());
        assert!(report.rows >= 1_000_000, "{} rows", report.rows);
        let at = |fraction: f64| {
            let index = ((samples.len() - 1) as f64 * fraction) as usize;
            samples[index]
        };
        let (first, middle, last) = (at(0.0), at(0.5), at(1.0));
        println!(
            "  run {}: verified {} rows in {} chains in {seconds:.2}s = {:.0} rows/s; resident memory {} MiB after {} rows, {} MiB after {}, {} MiB after {}",
            run + 1,
            report.rows,
            report.chains,
            report.rows as f64 / seconds,
            first.1 / 1024,
            first.0,
            middle.1 / 1024,
            middle.0,
            last.1 / 1024,
            last.0,
        );
    }
    println!(
        "  one chain of 20 alone: {:.2} ms ({tenth_rows} rows in 200 chains)",
        one_chain * 1000.0
    );

    // The raw read the walk cannot beat: psql streaming the same rows to nowhere.
    let started = Instant::now();
    let out = std::process::Command::new("psql")
        .args([
            "-X",
            "-q",
            "-d",
            &t.url,
            "-c",
            "\\copy (SELECT * FROM audit_logs ORDER BY chain_id, chain_seq) TO '/dev/null'",
        ])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "  baseline: psql \\copy of the same rows in the same order to /dev/null: {:.2}s",
        started.elapsed().as_secs_f64()
    );
}
