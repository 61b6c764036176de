//! Operations benchmarks. Prints figures; asserts only that both sides of a comparison
//! did the same work.
//!
//! 1. `seeder --scale` on PostgreSQL (COPY) against psql `\copy` of the same rows from
//!    files into a fresh database, in the same run; the insert path on PostgreSQL, and
//!    MariaDB and SQLite with their batch sizes, alongside.
//! 2. `migration up` on an empty PostgreSQL database against applying the
//!    `pg_dump --schema-only` of the result with psql.
//!
//! Run: `cargo bench -p tests --bench operations` (needs psql and pg_dump on PATH).

use migration::cli::{Command, Invocation, Prompt, execute};
use migration::environment::AppEnv;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use seeder::scale::{ScaleReport, ScaleWriter};
use std::process::Command as Process;
use std::time::{Duration, Instant};
use tests::inspect::SCALE_TABLES;
use tests::{Backend, Start, TestDb, run_case};

const SCALE: u32 = 2000;

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
    unsafe { std::env::set_var("REQUIRE_BACKENDS", "sqlite,postgres,mysql") };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        println!("seeding at scale ({SCALE} tenants):");
        run_case(
            Backend::Postgres,
            "bench_scale_pg",
            Start::Empty,
            |t| async move { scale_against_copy(&t).await },
        )
        .await;
        for backend in [Backend::Postgres, Backend::MySql, Backend::Sqlite] {
            run_case(
                backend,
                "bench_scale_inserts",
                Start::Empty,
                |t| async move {
                    let writer = ScaleWriter::inserts_for(t.db_backend());
                    let report = scale(&t, writer).await;
                    print_rate(
                        &format!("{}, {}", backend.name(), describe(writer)),
                        &report,
                    );
                },
            )
            .await;
        }
        run_case(
            Backend::Postgres,
            "bench_up_pg",
            Start::Empty,
            |t| async move { up_against_dump(&t).await },
        )
        .await;
    });
}

fn describe(writer: ScaleWriter) -> String {
    match writer {
        ScaleWriter::Inserts {
            rows_per_statement,
            tenants_per_transaction,
        } => format!(
            "inserts of {rows_per_statement} rows, {tenants_per_transaction} tenants per transaction"
        ),
        ScaleWriter::Copy {
            tenants_per_transaction,
        } => format!("COPY, {tenants_per_transaction} tenants per transaction"),
    }
}

fn print_rate(label: &str, report: &ScaleReport) {
    println!(
        "  {label}: {} rows in {:.2}s = {:.0} rows/s",
        report.rows,
        report.elapsed.as_secs_f64(),
        report.rows_per_second()
    );
}

async fn scale(t: &TestDb, writer: ScaleWriter) -> ScaleReport {
    let options = seeder::SeedOptions {
        database_url: Some(t.url.clone()),
        profile: seeder::profile::ProfileName::Minimal,
        scale: SCALE,
        scale_writer: Some(writer),
        ..seeder::SeedOptions::default()
    };
    let report = seeder::run(&options, AppEnv::Test, &t.target())
        .await
        .expect("seeds");
    report.scale.expect("scale report")
}

fn psql(url: &str, script: &str) {
    let out = Process::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", script])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn count_rows(t: &TestDb) -> i64 {
    let mut total = 0;
    for table in SCALE_TABLES {
        let row = t
            .owner
            .query_one_raw(Statement::from_string(
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

/// The seeder's COPY against psql `\copy` of exactly the synthetic rows, from files,
/// in one transaction, into a fresh migrated database.
async fn scale_against_copy(t: &TestDb) {
    let writer = ScaleWriter::for_backend(DbBackend::Postgres);
    let report = scale(t, writer).await;
    let dir = std::env::temp_dir().join(format!("copy-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    // The profile's rows stay behind: only what `--scale` wrote goes to the files, in
    // the order it wrote them (sorted input would make psql's index inserts cheaper).
    let synthetic = [
        ("tenants", "slug LIKE 'scale-%'"),
        ("users", "email LIKE '%@scale-%'"),
        (
            "user_profiles",
            "user_id IN (SELECT id FROM users WHERE email LIKE '%@scale-%')",
        ),
        (
            "memberships",
            "tenant_id IN (SELECT id FROM tenants WHERE slug LIKE 'scale-%')",
        ),
        (
            "sessions",
            "user_id IN (SELECT id FROM users WHERE email LIKE '%@scale-%')",
        ),
        (
            "refresh_tokens",
            "session_id IN (SELECT s.id FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.email LIKE '%@scale-%')",
        ),
        (
            "audit_logs",
            "tenant_id IN (SELECT id FROM tenants WHERE slug LIKE 'scale-%')",
        ),
    ];
    for (table, filter) in synthetic {
        psql(
            &t.url,
            &format!(
                "\\copy (SELECT * FROM {table} WHERE {filter}) TO '{}'",
                dir.join(table).display()
            ),
        );
    }
    let target = t.sibling(Start::Migrated).await;
    let before = count_rows(&target).await;
    let script = synthetic
        .iter()
        .map(|(table, _)| format!("\\copy {table} FROM '{}'", dir.join(table).display()))
        .collect::<Vec<_>>();
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
    let rows = count_rows(&target).await - before;
    assert_eq!(
        rows as u64, report.rows,
        "psql loaded the rows the seeder wrote"
    );
    let _ = std::fs::remove_dir_all(&dir);
    let copy_rate = rows as f64 / copy_time.as_secs_f64();
    print_rate(&format!("postgres, seeder {}", describe(writer)), &report);
    println!(
        "  postgres, psql \\copy from files, one transaction: {rows} rows in {:.2}s = {copy_rate:.0} rows/s (psql start included)",
        copy_time.as_secs_f64()
    );
    println!(
        "  ratio: {:.2}x of psql \\copy (target: at least 0.9x)",
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
