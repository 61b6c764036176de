//! Connection benchmarks. Prints figures; asserts only that the work was done.
//!
//! Round trip of a one-row insert carrying a 1 KB, 16 KB, 64 KB and 1 MB value, on
//! PostgreSQL and MariaDB, through `service::connection` (TCP_NODELAY on) and through a
//! plain SeaORM pool (SQLx 0.9.0's sockets, Nagle's algorithm on). Without the option,
//! any statement larger than one TCP segment waits for the server's delayed ACK.
//!
//! Target: the 64 KB figure within 2x of the 1 KB figure plus its transfer time, where
//! the transfer time per byte is read off the 1 MB figure of the same run.
//!
//! Run: `cargo bench -p tests --bench connections`.

use sea_orm::{
    ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement, TransactionTrait,
};
use std::time::Instant;
use tests::{Backend, Start, TestDb, run_case};

const SIZES: [(usize, &str); 4] = [
    (1 << 10, "1 KB"),
    (16 << 10, "16 KB"),
    (64 << 10, "64 KB"),
    (1 << 20, "1 MB"),
];
const RUNS: usize = 30;

fn main() {
    // SAFETY: set before any thread starts; fail instead of skipping a missing server.
    unsafe { std::env::set_var("REQUIRE_BACKENDS", "postgres,mysql") };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        for backend in [Backend::Postgres, Backend::MySql] {
            run_case(
                backend,
                "bench_large_statements",
                Start::Empty,
                |t| async move {
                    large_statements(&t).await;
                },
            )
            .await;
        }
    });
}

async fn large_statements(t: &TestDb) {
    let create = match t.backend {
        Backend::MySql => {
            "CREATE TABLE bench_bodies (id BIGINT AUTO_INCREMENT PRIMARY KEY, body LONGTEXT NOT NULL)"
        }
        _ => "CREATE TABLE bench_bodies (id BIGSERIAL PRIMARY KEY, body TEXT NOT NULL)",
    };
    t.owner.execute_unprepared(create).await.expect("creates");
    if t.backend == Backend::MySql {
        t.owner
            .execute_unprepared("SET GLOBAL max_allowed_packet = 67108864")
            .await
            .expect("allows 1 MB statements");
    }
    let ours = service::connection::connect(&t.target(), &tests::pool(1))
        .await
        .expect("connects");
    let mut plain_options =
        service::connection::connect_options(&t.target(), &tests::pool(1)).expect("options");
    // The same pool without the hook that sets TCP_NODELAY: what SQLx 0.9.0 gives.
    match t.backend {
        Backend::MySql => plain_options.map_sqlx_mysql_pool_opts(|pool| pool),
        _ => plain_options.map_sqlx_postgres_pool_opts(|pool| pool),
    };
    let plain = Database::connect(plain_options).await.expect("connects");

    println!(
        "one-row INSERT round trip on {} (p50 of {RUNS} runs in a transaction, loopback):",
        t.backend.name()
    );
    println!(
        "  {:<8} {:>14} {:>16}",
        "value", "TCP_NODELAY", "SQLx default"
    );
    let mut with = Vec::new();
    for (size, label) in SIZES {
        let a = p50_insert(&ours, t.db_backend(), size).await;
        let b = p50_insert(&plain, t.db_backend(), size).await;
        println!("  {label:<8} {a:>11.2} ms {b:>13.2} ms");
        with.push(a);
    }
    let per_byte = (with[3] - with[0]) / ((1 << 20) - (1 << 10)) as f64;
    let expected_64k = with[0] + per_byte * ((64 << 10) - (1 << 10)) as f64;
    println!(
        "  64 KB against 1 KB + transfer ({expected_64k:.2} ms): {:.2}x   (target: within 2x)",
        with[2] / expected_64k
    );
    ours.close().await.ok();
    plain.close().await.ok();
}

/// Inside one transaction, rolled back at the end: the figure is the statement's round
/// trip, not the commit's wait for the disk.
async fn p50_insert(db: &DatabaseConnection, backend: DbBackend, size: usize) -> f64 {
    let body: String = "abcdefghijklmnopqrstuvwxyz0123456789"
        .chars()
        .cycle()
        .take(size)
        .collect();
    let sql = match backend {
        DbBackend::MySql => "INSERT INTO bench_bodies (body) VALUES (?)",
        _ => "INSERT INTO bench_bodies (body) VALUES ($1)",
    };
    let txn = db.begin().await.expect("begins");
    let mut millis = Vec::with_capacity(RUNS);
    for run in 0..RUNS + 3 {
        let statement = Statement::from_sql_and_values(backend, sql, [body.clone().into()]);
        let start = Instant::now();
        let done = txn.execute_raw(statement).await.expect("inserts");
        let elapsed = start.elapsed().as_secs_f64() * 1e3;
        assert_eq!(done.rows_affected(), 1);
        if run >= 3 {
            millis.push(elapsed);
        }
    }
    txn.rollback().await.expect("rolls back");
    millis.sort_by(f64::total_cmp);
    millis[RUNS / 2]
}
