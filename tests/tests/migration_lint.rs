//! `migration lint`: squawk's findings on the PostgreSQL SQL of migrations fail unless
//! the migration accepts them next to the statement, with a reason, or the baseline of
//! released migrations counts them exactly.
//!
//! squawk (`pip install squawk-cli`) must be installed: without it these tests are
//! skipped with a notice, unless `REQUIRE_BACKENDS` is set (CI), where they fail.

use migration::lint::{self, AcceptedBy, Baseline, LintError, LintReport, Problem, Squawk};
use migration::{Alias, DbErr, Index, MigrationName, MigrationTrait, Migrator, MigratorTrait};
use migration::{ConnectionTrait, SchemaManager};
use tests::TestDb;

const CONCURRENT_INDEX: &str = "require-concurrent-index-creation";

/// squawk, or `None` (with a notice) when it is missing and not required.
fn squawk() -> Option<Squawk> {
    match Squawk::locate() {
        Ok(squawk) => Some(squawk),
        Err(error) => {
            let required = std::env::var("REQUIRE_BACKENDS").is_ok_and(|v| !v.trim().is_empty());
            if required {
                panic!("squawk is needed when REQUIRE_BACKENDS is set: {error}");
            }
            notify_skipped(&error);
            None
        }
    }
}

/// Written to the terminal: libtest captures the output of passing tests, and a
/// silent skip would look like a pass.
fn notify_skipped(error: &LintError) {
    use std::io::Write;
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let notice = format!(
            "NOTICE: migration lint tests are skipped: {error} (set REQUIRE_BACKENDS to make this a failure)"
        );
        match std::fs::OpenOptions::new().append(true).open("/dev/stderr") {
            Ok(mut tty) => {
                let _ = writeln!(tty, "{notice}");
            }
            Err(_) => eprintln!("{notice}"),
        }
    });
}

/// A later migration that indexes `users.created_at`, a table earlier migrations
/// created and that holds rows by then: without `CONCURRENTLY` the build blocks
/// every write to `users`.
struct IndexUsersCreatedAt {
    how: HowToIndex,
}

enum HowToIndex {
    Plainly,
    /// Through `accept_lint` with this rule and reason.
    Accepting(&'static str, &'static str),
    /// SQL carrying squawk's comment by hand.
    RawSql(&'static str),
}

impl MigrationName for IndexUsersCreatedAt {
    fn name(&self) -> &str {
        "m20991231_000001_identity_index_users_created_at"
    }
}

#[migration::async_trait::async_trait]
impl MigrationTrait for IndexUsersCreatedAt {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let index = Index::create()
            .name("ix_users_created_at")
            .table(Alias::new("users"))
            .col(Alias::new("created_at"))
            .to_owned();
        match self.how {
            HowToIndex::Plainly => manager.create_index(index).await,
            HowToIndex::Accepting(rule, reason) => {
                lint::accept_lint(manager, rule, reason, &index).await
            }
            HowToIndex::RawSql(sql) => manager
                .get_connection()
                .execute_unprepared(sql)
                .await
                .map(|_| ()),
        }
    }
}

async fn lint_one(squawk: &Squawk, how: HowToIndex) -> Result<LintReport, LintError> {
    let migration = IndexUsersCreatedAt { how };
    lint::lint(squawk, &Baseline::project().unwrap(), &[&migration]).await
}

#[tokio::test]
async fn every_migration_lints_clean_against_the_baseline() {
    let Some(squawk) = squawk() else { return };
    let migrations = Migrator::migrations();
    let all: Vec<&dyn MigrationTrait> = migrations.iter().map(AsRef::as_ref).collect();
    let report = lint::lint(&squawk, &Baseline::project().unwrap(), &all)
        .await
        .unwrap();
    let mut text = Vec::new();
    report.write_text(&mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(report.passed(), "{text}");
    assert!(
        report.baseline_not_linted.is_empty(),
        "the baseline lists migrations that do not exist: {:?}",
        report.baseline_not_linted
    );
    // Migrations after the baseline accept their findings themselves.
    for migration in report.migrations.iter().filter(|m| !m.in_baseline) {
        assert!(
            migration
                .findings
                .iter()
                .all(|f| matches!(f.accepted, Some(AcceptedBy::Statement { .. }))),
            "{text}"
        );
    }
}

#[tokio::test]
async fn an_index_on_an_existing_table_without_concurrently_fails() {
    let Some(squawk) = squawk() else { return };
    let report = lint_one(&squawk, HowToIndex::Plainly).await.unwrap();
    assert!(!report.passed());
    let failing: Vec<_> = report.migrations[0].failing_findings().collect();
    assert_eq!(failing.len(), 1, "{failing:?}");
    assert_eq!(failing[0].rule, CONCURRENT_INDEX);
    assert!(failing[0].statement.contains("ix_users_created_at"));
    assert!(
        failing[0]
            .help
            .as_deref()
            .unwrap_or("")
            .contains("concurrently")
    );
}

#[tokio::test]
async fn the_index_passes_when_the_migration_accepts_the_rule_with_a_reason() {
    let Some(squawk) = squawk() else { return };
    let reason = "users holds a few thousand rows; the build takes milliseconds";
    let report = lint_one(&squawk, HowToIndex::Accepting(CONCURRENT_INDEX, reason))
        .await
        .unwrap();
    let lint = &report.migrations[0];
    assert!(report.passed(), "{lint:?}");
    assert_eq!(lint.findings.len(), 1);
    assert_eq!(
        lint.findings[0].accepted,
        Some(AcceptedBy::Statement {
            reason: reason.to_owned()
        })
    );
}

#[tokio::test]
async fn an_acceptance_without_a_reason_is_refused() {
    let Some(squawk) = squawk() else { return };
    // Through the helper: the migration cannot even be rendered (nor applied).
    let error = lint_one(&squawk, HowToIndex::Accepting(CONCURRENT_INDEX, "  "))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, LintError::Render { .. }) && error.to_string().contains("needs a reason"),
        "{error}"
    );
    // Written by hand: the lint refuses it, and the finding stays unaccepted.
    let report = lint_one(
        &squawk,
        HowToIndex::RawSql(
            "-- squawk-ignore require-concurrent-index-creation\nCREATE INDEX ix_users_created_at ON users (created_at)",
        ),
    )
    .await
    .unwrap();
    let lint = &report.migrations[0];
    assert!(!report.passed());
    assert!(
        lint.problems.contains(&Problem::NoReason {
            rule: CONCURRENT_INDEX.to_owned(),
            statement: 0
        }),
        "{lint:?}"
    );
    assert_eq!(lint.failing_findings().count(), 1);
}

#[tokio::test]
async fn an_acceptance_that_accepts_nothing_fails() {
    let Some(squawk) = squawk() else { return };
    let report = lint_one(
        &squawk,
        HowToIndex::RawSql(
            "-- squawk-ignore ban-drop-column -- nothing is dropped\nCREATE INDEX CONCURRENTLY ix_users_created_at ON users (created_at)",
        ),
    )
    .await
    .unwrap();
    assert!(!report.passed());
    let lint = &report.migrations[0];
    assert!(
        lint.problems.contains(&Problem::Unused {
            rule: "ban-drop-column".to_owned(),
            statement: 0
        }),
        "{lint:?}"
    );
}

#[tokio::test]
async fn the_baseline_fails_a_released_migration_whose_findings_change() {
    let Some(squawk) = squawk() else { return };
    let migrations = Migrator::migrations();
    let tenants = migrations
        .iter()
        .find(|m| m.name() == "m20261122_000002_tenancy_create_tenants")
        .unwrap();
    // The same migration, counted with one finding fewer than it has.
    let baseline = Baseline::parse(
        "[rules]\nprefer-text-field = \"bounded\"\n\
         [migrations.m20261122_000002_tenancy_create_tenants]\nwhy = \"new table\"\n\
         findings = { prefer-text-field = 4 }\n",
    )
    .unwrap();
    let report = lint::lint(&squawk, &baseline, &[tenants.as_ref()])
        .await
        .unwrap();
    assert!(!report.passed());
    assert_eq!(
        report.migrations[0].problems,
        vec![Problem::BaselineMismatch {
            rule: "prefer-text-field".to_owned(),
            expected: 4,
            found: 5
        }]
    );
}

/// The comment `accept_lint` adds is harmless on every backend: the index exists.
async fn an_accepted_statement_runs_on_every_backend(t: TestDb) {
    let migration = IndexUsersCreatedAt {
        how: HowToIndex::Accepting(CONCURRENT_INDEX, "the table is tiny in tests"),
    };
    migration.up(&SchemaManager::new(&t.owner)).await.unwrap();
    assert!(
        SchemaManager::new(&t.owner)
            .has_index("users", "ix_users_created_at")
            .await
            .unwrap()
    );
}

tests::backend_tests!(Migrated: an_accepted_statement_runs_on_every_backend);

#[test]
fn the_baseline_refuses_a_migration_that_was_not_released() {
    // The first sorts before the last released migration, as one added late may.
    for name in [
        "m20261123_000022_tenancy_index_teams_late",
        "m20261122_000001_platform_create_database_metadata_again",
        "m20991231_000001_identity_index_users_created_at",
    ] {
        let error = Baseline::parse(&format!(
            "[rules]\n{CONCURRENT_INDEX} = \"small table\"\n\
             [migrations.{name}]\nwhy = \"small table\"\n\
             findings = {{ {CONCURRENT_INDEX} = 1 }}\n"
        ))
        .unwrap_err();
        assert!(
            matches!(&error, LintError::BaselineInvalid(_)) && error.to_string().contains(name),
            "{name}: {error}"
        );
    }
}

#[tokio::test]
async fn the_marker_anywhere_but_the_leading_comment_accepts_nothing() {
    let Some(squawk) = squawk() else { return };
    for sql in [
        // In a string literal.
        "CREATE INDEX ix_users_created_at ON users (created_at) \
         WHERE email <> 'squawk-ignore require-concurrent-index-creation -- just a value'",
        // In a string literal, on a line of its own.
        "CREATE INDEX ix_users_created_at ON users (created_at) WHERE email <> '\n\
         -- squawk-ignore require-concurrent-index-creation -- just a value\n'",
        // In a comment after the SQL.
        "CREATE INDEX ix_users_created_at ON users (created_at)\n\
         -- squawk-ignore require-concurrent-index-creation -- after the statement",
        // In a block comment.
        "/* squawk-ignore require-concurrent-index-creation -- in a block */\n\
         CREATE INDEX ix_users_created_at ON users (created_at)",
    ] {
        let report = lint_one(&squawk, HowToIndex::RawSql(sql)).await.unwrap();
        let lint = &report.migrations[0];
        assert!(!report.passed(), "{sql}: {lint:?}");
        assert!(lint.acceptances.is_empty(), "{sql}: {lint:?}");
        let failing: Vec<_> = lint.failing_findings().collect();
        assert_eq!(failing.len(), 1, "{sql}: {lint:?}");
        assert_eq!(failing[0].rule, CONCURRENT_INDEX);
        assert!(
            lint.problems.contains(&Problem::Misplaced { statement: 0 }),
            "{sql}: {lint:?}"
        );
    }
}
