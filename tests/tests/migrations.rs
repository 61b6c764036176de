//! Every migration up, every migration down, and up again, on every backend; the
//! audit catalogue; the migration CLI's safety rules.

use migration::cli::{CliError, Command, Invocation, Prompt, StatusFormat, execute};
use migration::environment::{AppEnv, RecordedEnv, read_recorded_env, record_env_if_absent};
use migration::{Migrator, MigratorTrait};
use sea_orm::ActiveEnum;
use sea_orm::EntityTrait;
use service::audit::AuditEvent;
use std::io;
use tests::{TestDb, inspect};

tests::backend_tests!(
    Empty: migrations_stepwise_up_and_down_each_revert_exactly,
    migrations_all_down_then_up_restores_identical_schema,
    audit_catalogue_holds_seed_events_and_every_service_event,
    cli_audit_verify_and_checkpoint_and_the_development_key_only_where_it_belongs,
    cli_up_records_environment_and_status_json_lists_migrations,
    cli_fresh_in_production_is_refused_and_changes_nothing,
    cli_staging_without_terminal_needs_confirm_flag,
    cli_staging_with_confirm_phrase_applies,
    cli_wrong_confirmation_phrase_is_refused,
    cli_confirm_phrase_with_extra_whitespace_is_refused,
    cli_typed_confirmation_at_terminal_applies,
    cli_environment_mismatch_refuses_writes,
    cli_down_rolls_back_one_migration_by_default,
);

/// A terminal that answers with a fixed line, or no terminal at all.
struct Scripted(Option<&'static str>);

impl Prompt for Scripted {
    fn is_interactive(&self) -> bool {
        self.0.is_some()
    }

    fn ask(&mut self, _question: &str) -> io::Result<String> {
        Ok(format!("{}\n", self.0.unwrap_or_default()))
    }
}

async fn cli(
    t: &TestDb,
    env: AppEnv,
    command: Command,
    confirm: Option<&str>,
    terminal: Option<&'static str>,
) -> (Result<(), CliError>, String, String) {
    let invocation = Invocation {
        env,
        target: t.target(),
        schema: None,
        command,
        confirm: confirm.map(str::to_owned),
        lock_timeout: std::time::Duration::from_secs(30),
        table_locks: migration::cli::TableLocks::DEFAULT,
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let result = execute(&invocation, &mut Scripted(terminal), &mut out, &mut err).await;
    (
        result,
        String::from_utf8(out).expect("utf-8 output"),
        String::from_utf8(err).expect("utf-8 banner"),
    )
}

async fn migrations_stepwise_up_and_down_each_revert_exactly(t: TestDb) {
    let total = Migrator::migrations().len();
    let mut snapshots = vec![inspect::schema(&t.owner).await];
    for _ in 0..total {
        Migrator::up(&t.db, Some(1))
            .await
            .expect("one migration applies");
        snapshots.push(inspect::schema(&t.owner).await);
    }
    for step in (0..total).rev() {
        Migrator::down(&t.db, Some(1))
            .await
            .expect("one migration rolls back");
        let now = inspect::schema(&t.owner).await;
        // sea-orm's own bookkeeping table appears with the first `up` and stays.
        let expected: Vec<_> = snapshots[step]
            .iter()
            .chain(
                snapshots[1]
                    .iter()
                    .filter(|l| l.contains("seaql_migrations")),
            )
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(
            now,
            expected,
            "down of migration {} left a different schema",
            step + 1
        );
    }
    assert!(
        inspect::table_names(&t.owner).await.is_empty(),
        "all application tables are gone"
    );
}

async fn migrations_all_down_then_up_restores_identical_schema(t: TestDb) {
    Migrator::up(&t.db, None)
        .await
        .expect("all migrations apply");
    let first = inspect::schema(&t.owner).await;
    assert!(
        inspect::table_names(&t.owner).await.len() >= 9,
        "the core tables exist after up"
    );
    Migrator::down(&t.db, None)
        .await
        .expect("all migrations roll back");
    assert!(inspect::table_names(&t.owner).await.is_empty());
    Migrator::up(&t.db, None)
        .await
        .expect("all migrations apply again");
    assert_eq!(inspect::schema(&t.owner).await, first);
}

async fn audit_catalogue_holds_seed_events_and_every_service_event(t: TestDb) {
    Migrator::up(&t.db, None).await.expect("migrates");
    let mut catalogue: Vec<(String, String)> = entity::audit::audit_event_types::Entity::find()
        .all(&t.owner)
        .await
        .expect("reads the catalogue")
        .into_iter()
        .map(|row| (row.event_type, row.category.to_value()))
        .collect();
    catalogue.sort();
    // The code's catalogue and the database's are the same set, categories included.
    let mut code: Vec<(String, String)> = AuditEvent::ALL
        .iter()
        .map(|e| (e.code().to_owned(), e.category().to_value()))
        .collect();
    code.sort();
    assert_eq!(code, catalogue);
    // The starting catalogue (consent, user, profile, deletion, data access,
    // authentication and compliance events) is part of it.
    for code in [
        "consent_read",
        "consent_validation_failed",
        "consent_validated",
        "consent_history_accessed",
        "consent_recorded",
        "consent_updated",
        "consent_withdrawn",
        "consent_change",
        "user_data_access",
        "user_created",
        "user_updated",
        "user_deleted",
        "profile_data_access",
        "profile_created",
        "profile_updated",
        "deletion_request",
        "deletion_processing",
        "deletion_completed",
        "deletion_cancelled",
        "data_access",
        "data_export",
        "login",
        "logout",
        "login_failed",
        "audit_trail_generated",
        "privacy_policy_updated",
        "compliance_report_generated",
    ] {
        assert!(
            AuditEvent::from_code(code).is_some(),
            "catalogue event {code} is missing from the code"
        );
    }
}

async fn cli_up_records_environment_and_status_json_lists_migrations(t: TestDb) {
    let (before, out, _) = cli(
        &t,
        AppEnv::Local,
        Command::Status {
            format: StatusFormat::Json,
        },
        None,
        None,
    )
    .await;
    before.expect("status works on an empty database");
    let report: serde_json::Value = serde_json::from_str(&out).expect("status prints JSON");
    assert_eq!(
        report["pending"].as_array().map(Vec::len),
        Some(Migrator::migrations().len())
    );
    assert_eq!(report["applied"].as_array().map(Vec::len), Some(0));
    assert!(
        inspect::table_names(&t.owner).await.is_empty(),
        "status created nothing"
    );

    let (up, _, banner) = cli(
        &t,
        AppEnv::Local,
        Command::Up {
            num: None,
            dry_run: false,
        },
        None,
        None,
    )
    .await;
    up.expect("up runs in local without confirmation");
    assert!(
        banner.contains("environment   local"),
        "banner names the environment: {banner}"
    );
    assert!(banner.contains("backend"), "banner names the backend");
    assert_eq!(
        read_recorded_env(&t.db).await.expect("reads"),
        RecordedEnv::Recorded(AppEnv::Local)
    );

    let (after, out, _) = cli(
        &t,
        AppEnv::Local,
        Command::Status {
            format: StatusFormat::Json,
        },
        None,
        None,
    )
    .await;
    after.expect("status works");
    let report: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(report["pending"].as_array().map(Vec::len), Some(0));
    assert_eq!(
        report["applied"].as_array().map(Vec::len),
        Some(Migrator::migrations().len())
    );
    assert_eq!(report["database_environment"], "local");
}

async fn cli_fresh_in_production_is_refused_and_changes_nothing(t: TestDb) {
    Migrator::up(&t.db, None).await.expect("migrates");
    record_env_if_absent(&t.db, AppEnv::Production)
        .await
        .expect("marks production");
    let before = inspect::schema(&t.owner).await;
    for command in [Command::Fresh, Command::Refresh, Command::Reset] {
        let (result, _, _) = cli(
            &t,
            AppEnv::Production,
            command,
            Some("MIGRATE PRODUCTION"),
            None,
        )
        .await;
        assert!(
            matches!(result, Err(CliError::Refused(_))),
            "destructive command refused: {result:?}"
        );
    }
    // Refused on the database's own marker too, whatever APP_ENV says.
    let (result, _, _) = cli(&t, AppEnv::Local, Command::Fresh, None, None).await;
    assert!(matches!(result, Err(CliError::Refused(_))));
    assert_eq!(inspect::schema(&t.owner).await, before);
}

async fn cli_staging_without_terminal_needs_confirm_flag(t: TestDb) {
    let (result, _, _) = cli(
        &t,
        AppEnv::Staging,
        Command::Up {
            num: None,
            dry_run: false,
        },
        None,
        None,
    )
    .await;
    match result {
        Err(CliError::Refused(reason)) => {
            assert!(reason.contains("--confirm \"MIGRATE STAGING\""), "{reason}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(
        inspect::table_names(&t.owner).await.is_empty(),
        "nothing was applied"
    );
}

async fn cli_staging_with_confirm_phrase_applies(t: TestDb) {
    let (result, _, _) = cli(
        &t,
        AppEnv::Staging,
        Command::Up {
            num: None,
            dry_run: false,
        },
        Some("MIGRATE STAGING"),
        None,
    )
    .await;
    result.expect("confirmed run applies");
    assert_eq!(
        read_recorded_env(&t.db).await.expect("reads"),
        RecordedEnv::Recorded(AppEnv::Staging)
    );
    assert!(
        Migrator::get_pending_migrations(&t.db)
            .await
            .expect("reads")
            .is_empty()
    );
}

async fn cli_wrong_confirmation_phrase_is_refused(t: TestDb) {
    for phrase in ["MIGRATE DEV", "migrate production", "yes"] {
        let (result, _, _) = cli(
            &t,
            AppEnv::Production,
            Command::Up {
                num: None,
                dry_run: false,
            },
            Some(phrase),
            None,
        )
        .await;
        assert!(
            matches!(result, Err(CliError::Refused(_))),
            "{phrase:?} must not confirm production"
        );
    }
    assert!(inspect::table_names(&t.owner).await.is_empty());
}

async fn cli_confirm_phrase_with_extra_whitespace_is_refused(t: TestDb) {
    for phrase in [
        "MIGRATE STAGING ",
        " MIGRATE STAGING",
        "MIGRATE  STAGING",
        "MIGRATE STAGING\n",
    ] {
        let (result, _, _) = cli(
            &t,
            AppEnv::Staging,
            Command::Up {
                num: None,
                dry_run: false,
            },
            Some(phrase),
            None,
        )
        .await;
        match result {
            Err(CliError::Refused(reason)) => assert!(
                reason.contains("expected exactly \"MIGRATE STAGING\""),
                "{phrase:?}: {reason}"
            ),
            other => panic!("{phrase:?} must not confirm staging: {other:?}"),
        }
    }
    assert!(inspect::table_names(&t.db).await.is_empty(), "nothing ran");
}

async fn cli_typed_confirmation_at_terminal_applies(t: TestDb) {
    let (wrong, _, _) = cli(
        &t,
        AppEnv::Development,
        Command::Up {
            num: None,
            dry_run: false,
        },
        None,
        Some("MIGRATE STAGING"),
    )
    .await;
    assert!(matches!(wrong, Err(CliError::Refused(_))));
    assert!(inspect::table_names(&t.owner).await.is_empty());
    let (right, _, _) = cli(
        &t,
        AppEnv::Development,
        Command::Up {
            num: None,
            dry_run: false,
        },
        None,
        Some("MIGRATE DEV"),
    )
    .await;
    right.expect("typed phrase confirms");
    assert!(!inspect::table_names(&t.owner).await.is_empty());
}

async fn cli_environment_mismatch_refuses_writes(t: TestDb) {
    Migrator::up(&t.db, Some(1)).await.expect("first migration");
    record_env_if_absent(&t.db, AppEnv::Staging)
        .await
        .expect("marks staging");
    let before = inspect::schema(&t.owner).await;
    let (result, _, banner) = cli(
        &t,
        AppEnv::Local,
        Command::Up {
            num: None,
            dry_run: false,
        },
        None,
        None,
    )
    .await;
    assert!(matches!(result, Err(CliError::Refused(_))), "{result:?}");
    assert!(
        banner.contains("WARNING"),
        "the banner warns about the mismatch"
    );
    assert_eq!(inspect::schema(&t.owner).await, before);
    // Reading is still allowed.
    let (status, _, _) = cli(
        &t,
        AppEnv::Local,
        Command::Status {
            format: StatusFormat::Text,
        },
        None,
        None,
    )
    .await;
    status.expect("status reads a mismatched database");
}

async fn cli_down_rolls_back_one_migration_by_default(t: TestDb) {
    Migrator::up(&t.db, None).await.expect("migrates");
    // `down` as typed, without -n: the number comes from the command line's default.
    let parsed = <migration::cli::Cli as clap::Parser>::try_parse_from(["migration", "down"])
        .expect("parses");
    let command = parsed.command.expect("a command");
    assert!(
        matches!(
            command,
            Command::Down {
                num: 1,
                dry_run: false
            }
        ),
        "{command:?}"
    );
    let (result, out, _) = cli(&t, AppEnv::Local, command, None, None).await;
    result.expect("down runs");
    assert!(out.contains("1 pending"), "{out}");
    let pending = Migrator::get_pending_migrations(&t.db)
        .await
        .expect("reads");
    assert_eq!(pending.len(), 1);
    assert_eq!(
        pending[0].name(),
        Migrator::migrations().last().expect("some").name()
    );
}

async fn cli_audit_verify_and_checkpoint_and_the_development_key_only_where_it_belongs(t: TestDb) {
    let (result, _, _) = cli(
        &t,
        AppEnv::Local,
        Command::Up {
            num: None,
            dry_run: false,
        },
        None,
        None,
    )
    .await;
    result.expect("migrates");
    let dir = tempfile::tempdir().expect("a directory");
    let file = dir.path().join("checkpoint.json");
    let verify = |checkpoint: Option<std::path::PathBuf>| Command::Audit {
        action: migration::cli::AuditAction::Verify {
            chain: None,
            checkpoint,
            public_key: None,
            format: StatusFormat::Json,
        },
    };
    let sign = || Command::Audit {
        action: migration::cli::AuditAction::Checkpoint { out: file.clone() },
    };

    let (result, out, _) = cli(&t, AppEnv::Local, verify(None), None, None).await;
    result.expect("an empty trail verifies");
    let report: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(report["intact"], true);
    let (result, out, _) = cli(&t, AppEnv::Local, sign(), None, None).await;
    result.expect("signs with the development key in local");
    assert!(out.contains("signed"), "{out}");
    let (result, _, _) = cli(&t, AppEnv::Local, sign(), None, None).await;
    assert!(
        matches!(&result, Err(CliError::Config(m)) if m.contains("exists")),
        "never overwrites: {result:?}"
    );
    let (result, _, _) = cli(&t, AppEnv::Local, verify(Some(file.clone())), None, None).await;
    result.expect("verifies against its checkpoint");

    // A database that records production is never signed or checked with the public
    // development key, whatever APP_ENV says.
    use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
    sea_orm::ConnectionTrait::execute(
        &t.owner,
        &Query::update()
            .table(Alias::new("database_metadata"))
            .value(Alias::new("value"), "production")
            .and_where(Expr::col(Alias::new("key")).eq("environment"))
            .to_owned(),
    )
    .await
    .expect("marks production");
    for (command, remove_file_first) in [(verify(Some(file.clone())), false), (sign(), true)] {
        if remove_file_first {
            std::fs::remove_file(&file).expect("removes");
        }
        let (result, out, banner) = cli(&t, AppEnv::Local, command, None, None).await;
        assert!(
            matches!(&result, Err(CliError::Config(m)) if m.contains("AUDIT_CHECKPOINT_KEY")),
            "{result:?}\n{banner}\n{out}"
        );
    }
}
