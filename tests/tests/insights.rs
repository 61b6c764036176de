//! `insights`: on a seeded database it reports every section, changes nothing, and
//! reports a section the connected user may not read as unavailable instead of failing.

use migration::cli::insights::InsightsFormat;
use migration::cli::{CliError, Command, Invocation, NoTerminal, execute};
use migration::environment::AppEnv;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use seeder::{EnvSignals, SeedOptions, seed};
use serde_json::Value;
use service::connection::DbTarget;
use tests::{Backend, TestDb, inspect};

tests::backend_tests!(
    Empty: insights_on_a_seeded_database_reports_every_section_and_changes_nothing,
    insights_sections_a_user_may_not_read_are_unavailable_not_fatal,
    insights_reads_slow_statements_as_a_plain_login,
);

const SECTIONS: &[&str] = &[
    "table_sizes",
    "index_sizes",
    "unused_indexes",
    "duplicate_indexes",
    "cache_hit_ratio",
    "connections",
    "long_running_queries",
    "idle_in_transaction",
    "lock_waits",
    "slow_statements",
];

fn insights(format: InsightsFormat) -> Command {
    Command::Insights {
        format,
        long_running_secs: 60,
        limit: 20,
    }
}

async fn run(target: DbTarget, command: Command) -> (Result<(), CliError>, String, String) {
    let invocation = Invocation {
        env: AppEnv::Local,
        target,
        schema: None,
        command,
        confirm: None,
        lock_timeout: std::time::Duration::from_secs(30),
        table_locks: migration::cli::TableLocks::DEFAULT,
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let result = execute(&invocation, &mut NoTerminal, &mut out, &mut err).await;
    (
        result,
        String::from_utf8(out).expect("utf-8 output"),
        String::from_utf8(err).expect("utf-8 banner"),
    )
}

async fn seeded(t: &TestDb) {
    let options = SeedOptions {
        database_url: Some(t.url.clone()),
        ..SeedOptions::default()
    };
    seed(&EnvSignals::default(), &options).await.expect("seeds");
}

async fn postgres_setting(t: &TestDb, name: &str) -> String {
    let row = t
        .owner
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            format!("SELECT current_setting('{name}') AS value"),
        ))
        .await
        .expect("reads the setting")
        .expect("one row");
    row.try_get("", "value").expect("text")
}

fn section<'a>(report: &'a Value, name: &str) -> &'a Value {
    report
        .get(name)
        .unwrap_or_else(|| panic!("the report has {name}: {report}"))
}

async fn insights_on_a_seeded_database_reports_every_section_and_changes_nothing(t: TestDb) {
    seeded(&t).await;
    if t.backend == Backend::Postgres {
        // The command only reads: the database's owner creates the extension.
        t.owner
            .execute_unprepared("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .await
            .expect("creates the extension");
    }
    let (schema, data) = (
        inspect::schema(&t.owner).await,
        inspect::data(&t.owner).await,
    );

    let (result, out, banner) = run(t.target(), insights(InsightsFormat::Json)).await;
    result.expect("insights runs");
    assert!(banner.contains("== insights on LOCAL =="), "{banner}");
    let report: Value = serde_json::from_str(&out).expect("insights prints JSON");
    assert_eq!(report["backend"], t.backend.name(), "{report}");
    for name in SECTIONS {
        let part = section(&report, name);
        assert!(part["available"].is_boolean(), "{name}: {part}");
        assert!(part["rows"].is_array(), "{name}: {part}");
        if part["available"] == false {
            assert!(
                part["reason"].as_str().is_some_and(|r| !r.is_empty()),
                "{name} says why it is unavailable: {part}"
            );
        }
    }

    let tables = &section(&report, "table_sizes")["rows"];
    if t.backend == Backend::Sqlite {
        for name in SECTIONS.iter().filter(|n| **n != "table_sizes") {
            assert_eq!(section(&report, name)["available"], false, "{name}");
        }
    } else {
        assert!(
            tables
                .as_array()
                .expect("rows")
                .iter()
                .any(|row| row["table_name"] == "users" && row["total_bytes"].as_i64() > Some(0)),
            "the users table is measured: {tables}"
        );
        for name in [
            "index_sizes",
            "duplicate_indexes",
            "cache_hit_ratio",
            "connections",
            "long_running_queries",
            "idle_in_transaction",
            "lock_waits",
        ] {
            assert_eq!(
                section(&report, name)["available"],
                true,
                "{name}: {report}"
            );
        }
        assert!(
            !section(&report, "connections")["rows"]
                .as_array()
                .expect("rows")
                .is_empty(),
            "at least its own connection"
        );
    }
    if t.backend == Backend::Postgres {
        assert_eq!(section(&report, "unused_indexes")["available"], true);
        let slow = section(&report, "slow_statements");
        let preloaded = postgres_setting(&t, "shared_preload_libraries")
            .await
            .contains("pg_stat_statements");
        if preloaded {
            assert_eq!(slow["available"], true, "{slow}");
            assert!(
                !slow["rows"].as_array().expect("rows").is_empty(),
                "seeding ran statements: {slow}"
            );
        } else {
            assert!(
                slow["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("shared_preload_libraries")),
                "says how to enable it: {slow}"
            );
        }
    }

    let (result, tables_out, _) = run(t.target(), insights(InsightsFormat::Table)).await;
    result.expect("insights runs as tables");
    for heading in [
        "Table sizes",
        "Duplicate indexes",
        "Lock waits",
        "Slowest statements",
    ] {
        assert!(tables_out.contains(heading), "{heading}: {tables_out}");
    }

    assert_eq!(
        inspect::schema(&t.owner).await,
        schema,
        "insights changed the schema"
    );
    inspect::assert_same_data(&inspect::data(&t.owner).await, &data);
}

/// MariaDB: a user with SELECT on the database only (no PROCESS privilege, no access
/// to the mysql schema) still gets a report.
async fn insights_sections_a_user_may_not_read_are_unavailable_not_fatal(t: TestDb) {
    if t.backend != Backend::MySql {
        return;
    }
    seeded(&t).await;
    let database = t.target().database();
    let user = format!("ins_{}", &database[database.len() - 10..]);
    for sql in [
        format!("CREATE USER '{user}'@'%' IDENTIFIED BY 'insights-test'"),
        format!("GRANT SELECT ON `{database}`.* TO '{user}'@'%'"),
    ] {
        t.owner
            .execute_unprepared(&sql)
            .await
            .expect("creates the user");
    }
    let mut url = url::Url::parse(&t.url).expect("valid");
    url.set_username(&user).expect("takes a user");
    url.set_password(Some("insights-test"))
        .expect("takes a password");
    let target = DbTarget::from_url(url.as_str()).expect("valid");

    let (result, out, _) = run(target, insights(InsightsFormat::Json)).await;
    t.owner
        .execute_unprepared(&format!("DROP USER '{user}'@'%'"))
        .await
        .expect("drops the user");
    result.expect("insights runs without the privileges");
    let report: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        section(&report, "table_sizes")["available"],
        true,
        "{report}"
    );
    for name in ["index_sizes", "lock_waits"] {
        let part = section(&report, name);
        assert_eq!(part["available"], false, "{name}: {part}");
        assert!(
            part["reason"]
                .as_str()
                .is_some_and(|r| r.contains("may not read")),
            "{name} names the missing privilege: {part}"
        );
    }
}

/// PostgreSQL: pg_stat_statements is readable by any login once the extension exists,
/// though only a superuser (or pg_read_all_settings) may read which libraries the
/// server preloaded.
async fn insights_reads_slow_statements_as_a_plain_login(t: TestDb) {
    if t.backend != Backend::Postgres {
        return;
    }
    t.owner
        .execute_unprepared("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .await
        .expect("creates the extension");
    let database = t.target().database();
    let login = format!("ins_{}", &database[database.len() - 10..]);
    for sql in [
        format!(r#"CREATE ROLE "{login}" LOGIN"#),
        format!(r#"GRANT CONNECT ON DATABASE "{database}" TO "{login}""#),
        format!(r#"GRANT USAGE ON SCHEMA public TO "{login}""#),
    ] {
        t.owner
            .execute_unprepared(&sql)
            .await
            .expect("creates the login");
    }
    let mut url = url::Url::parse(&t.url).expect("valid");
    url.set_username(&login).expect("takes a user");
    let target = DbTarget::from_url(url.as_str()).expect("valid");

    let (result, out, _) = run(target, insights(InsightsFormat::Json)).await;
    for sql in [
        format!(r#"DROP OWNED BY "{login}""#),
        format!(r#"DROP ROLE "{login}""#),
    ] {
        t.owner
            .execute_unprepared(&sql)
            .await
            .expect("drops the login");
    }
    result.expect("insights runs as a plain login");
    let report: Value = serde_json::from_str(&out).expect("JSON");
    let slow = section(&report, "slow_statements");
    if postgres_setting(&t, "shared_preload_libraries")
        .await
        .contains("pg_stat_statements")
    {
        assert_eq!(slow["available"], true, "{slow}");
    } else {
        assert!(
            slow["reason"]
                .as_str()
                .is_some_and(|r| r.contains("not loaded") && r.contains("shared_preload_libraries")),
            "says the server has not loaded it: {slow}"
        );
    }
}

/// On SQLite the command opens the file as it is: a rollback-journal database keeps its
/// journal mode and bytes, and a missing file is an error, not a new empty database.
#[tokio::test]
async fn insights_on_sqlite_leaves_the_file_as_it_was() {
    let dir = std::env::temp_dir().join(format!("insights-ro-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).expect("a folder");
    let file = dir.join("plain.sqlite");
    let url = format!("sqlite://{}?mode=rwc", file.display());
    // Made with SQLx's defaults: rollback journal, no WAL.
    let plain = sea_orm::Database::connect(url.as_str())
        .await
        .expect("creates");
    plain
        .execute_unprepared("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        .await
        .expect("a table");
    plain.close().await.ok();
    let before = std::fs::read(&file).expect("reads");

    let target = DbTarget::from_url(&url).expect("a target");
    let (result, out, _) = run(target, insights(InsightsFormat::Json)).await;
    result.expect("insights runs");
    serde_json::from_str::<Value>(&out).expect("JSON");
    assert_eq!(
        std::fs::read(&file).expect("reads"),
        before,
        "not a byte changed"
    );
    assert!(
        !dir.join("plain.sqlite-wal").exists(),
        "no write-ahead log was started"
    );

    let missing = dir.join("missing.sqlite");
    let target =
        DbTarget::from_url(&format!("sqlite://{}?mode=rwc", missing.display())).expect("a target");
    let (result, _, _) = run(target, insights(InsightsFormat::Json)).await;
    assert!(result.is_err(), "a missing file is an error");
    assert!(!missing.exists(), "and is not created");
    let _ = std::fs::remove_dir_all(&dir);
}
