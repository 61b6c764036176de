//! Operations benchmarks (issue 4). Prints figures; asserts only that both sides of a
//! comparison did the same work.
//!
//! 1. `seeder --scale` throughput on PostgreSQL against loading the same rows with
//!    `COPY` from files (the practical limit), in the same run; SQLite alongside.
//! 2. `migration up` on an empty PostgreSQL database against applying the
//!    `pg_dump --schema-only` of the result with psql.
//!
//! Run: `cargo bench -p tests --bench operations` (needs psql and pg_dump on PATH).

use migration::cli::{Command, Invocation, Prompt, execute};
use migration::environment::AppEnv;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use std::process::Command as Process;
use std::time::{Duration, Instant};
use tests::{Backend, Start, TestDb, run_case};

const SCALE: u32 = 2000;
const TABLES: &[&str] = &[
    "tenants",
    "users",
    "user_profiles",
    "memberships",
    "sessions",
    "refresh_tokens",
    "audit_logs",
];

struct NoTerminal;

impl Prompt for NoTerminal {
    fn is_interactive(&self) -> bool {
        false
    }

    fn ask(&mut self, _: &str) -> std::io::Result<String> {
        Ok(String::new())
    }
}

fn main() {
    // SAFETY: before any thread starts.
    unsafe { std::env::set_var("REQUIRE_BACKENDS", "sqlite,postgres") };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        run_case(
            Backend::Postgres,
            "bench_scale_pg",
            Start::Empty,
            |t| async move { scale_against_copy(&t).await },
        )
        .await;
        run_case(
            Backend::Sqlite,
            "bench_scale_sqlite",
            Start::Empty,
            |t| async move {
                let report = scale(&t).await;
                println!(
                    "  sqlite: --scale {SCALE}: {} rows in {:.2}s = {:.0} rows/s",
                    report.rows,
                    report.elapsed.as_secs_f64(),
                    report.rows_per_second()
                );
            },
        )
        .await;
        run_case(
            Backend::Postgres,
            "bench_up_pg",
            Start::Empty,
            |t| async move { up_against_dump(&t).await },
        )
        .await;
    });
}

async fn scale(t: &TestDb) -> seeder::scale::ScaleReport {
    let options = seeder::SeedOptions {
        database_url: Some(t.url.clone()),
        profile: seeder::profile::ProfileName::Minimal,
        scale: SCALE,
        ..seeder::SeedOptions::default()
    };
    let report = seeder::run(&options, AppEnv::Test, &t.target())
        .await
        .expect("seeds");
    report.scale.expect("scale report")
}

fn psql(url: &str, script: &str) -> Duration {
    let started = Instant::now();
    let out = Process::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", script])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    started.elapsed()
}

async fn count_rows(t: &TestDb) -> i64 {
    let mut total = 0;
    for table in TABLES {
        let row =
            t.db.query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                format!("SELECT count(*) FROM {table}"),
            ))
            .await
            .expect("counts")
            .expect("row");
        total += row.try_get_by_index::<i64>(0).expect("count");
    }
    total
}

async fn scale_against_copy(t: &TestDb) {
    let report = scale(t).await;
    let rows = count_rows(t).await;
    // The same rows, to files, then into a fresh migrated database with COPY.
    let dir = std::env::temp_dir().join(format!("copy-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    for table in TABLES {
        psql(
            &t.url,
            &format!(
                "\\copy {table} TO '{}' WITH (FORMAT csv)",
                dir.join(table).display()
            ),
        );
    }
    let target = t.sibling(Start::Migrated).await;
    let script = TABLES
        .iter()
        .map(|table| {
            format!(
                "\\copy {table} FROM '{}' WITH (FORMAT csv)",
                dir.join(table).display()
            )
        })
        .collect::<Vec<_>>();
    // One psql session, one transaction, as the seeder's batches are transactions.
    let file = dir.join("load.sql");
    std::fs::write(&file, format!("BEGIN;\n{}\nCOMMIT;\n", script.join("\n"))).expect("script");
    let started = Instant::now();
    let out = Process::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &target.url, "-f"])
        .arg(&file)
        .output()
        .expect("psql runs");
    let copy_time = started.elapsed();
    assert!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(count_rows(&target).await, rows, "COPY loaded the same rows");
    let _ = std::fs::remove_dir_all(&dir);
    let copy_rate = rows as f64 / copy_time.as_secs_f64();
    println!("seeding at scale on postgres ({SCALE} tenants):");
    println!(
        "  seeder --scale: {} rows in {:.2}s = {:.0} rows/s",
        report.rows,
        report.elapsed.as_secs_f64(),
        report.rows_per_second()
    );
    println!(
        "  COPY from files: {rows} rows in {:.2}s = {copy_rate:.0} rows/s (psql start included)",
        copy_time.as_secs_f64()
    );
    println!(
        "  ratio: {:.2}x of COPY (target: at least 0.5x)",
        report.rows_per_second() / copy_rate
    );
}

async fn up_against_dump(t: &TestDb) {
    let mut ours = Vec::new();
    let mut by_dump = Vec::new();
    let mut dump_file = None;
    for round in 0..3 {
        let empty = t.sibling(Start::Empty).await;
        let invocation = Invocation {
            env: AppEnv::Test,
            target: empty.target(),
            schema: None,
            command: Command::Up {
                num: None,
                dry_run: false,
            },
            confirm: None,
            lock_timeout: Duration::from_secs(60),
            table_locks: migration::cli::TableLocks::DEFAULT,
        };
        let started = Instant::now();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        execute(&invocation, &mut NoTerminal, &mut out, &mut err)
            .await
            .expect("up");
        ours.push(started.elapsed());
        if round == 0 {
            let dump = Process::new("pg_dump")
                .args(["--schema-only", "--no-owner", "-d", &empty.url])
                .output()
                .expect("pg_dump runs");
            assert!(
                dump.status.success(),
                "pg_dump: {}",
                String::from_utf8_lossy(&dump.stderr)
            );
            let file = std::env::temp_dir().join(format!("schema-{}.sql", std::process::id()));
            std::fs::write(&file, &dump.stdout).expect("writes");
            dump_file = Some(file);
        }
        let restore = t.sibling(Start::Empty).await;
        let file = dump_file.as_ref().expect("dumped");
        let started = Instant::now();
        let out = Process::new("psql")
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &restore.url,
                "-f",
            ])
            .arg(file)
            .output()
            .expect("psql runs");
        by_dump.push(started.elapsed());
        assert!(
            out.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    if let Some(file) = dump_file {
        let _ = std::fs::remove_file(file);
    }
    ours.sort();
    by_dump.sort();
    let (a, b) = (ours[1].as_secs_f64(), by_dump[1].as_secs_f64());
    println!("migration up on an empty postgres database (median of 3):");
    println!(
        "  migration up (lock, checksums, 20 migrations): {:.0} ms",
        a * 1000.0
    );
    println!(
        "  psql applying pg_dump --schema-only:           {:.0} ms (psql start included)",
        b * 1000.0
    );
    println!("  ratio: {:.2}x (target: within 2x)", a / b);
}
