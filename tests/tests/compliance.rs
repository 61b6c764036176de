//! The privacy operator jobs and the tenant-side records: data export, residency,
//! incidents and the compliance report.

use chrono::Duration;
use entity::UserId;
use sea_orm::sea_query::{Alias, Expr, Query};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, Statement};
use serde_json::json;
use service::ServiceError;
use service::compliance::{self, EXPORT_FORMAT, EXPORT_SECTIONS};
use std::collections::BTreeSet;
use tests::fixtures::{self, meta};
use tests::inspect::count_events;
use tests::privacy::*;
use tests::{Backend, TestDb};

tests::backend_tests!(Migrated:
    operator_jobs_refuse_a_role_behind_row_security,
    export_covers_every_table_naming_a_user_and_holds_no_secret,
    transfers_outside_the_allowed_regions_are_refused_and_audited,
    incidents_move_forward_and_keep_their_times,
    the_compliance_report_lists_what_needs_attention,
);

async fn operator_jobs_refuse_a_role_behind_row_security(t: TestDb) {
    if t.backend != Backend::Postgres {
        return;
    }
    let (deps, _) = fixtures::deps();
    let (_, carol) = carol(&t, &deps).await;
    let refused = compliance::process_due_deletions(&t.db, &deps, &meta()).await;
    assert!(
        matches!(refused, Err(ServiceError::Forbidden { .. })),
        "{refused:?}"
    );
    let refused = compliance::export_user_data(&t.db, &deps, carol, &meta()).await;
    assert!(
        matches!(refused, Err(ServiceError::Forbidden { .. })),
        "{refused:?}"
    );
    assert_eq!(count_events(&t.owner, "data_export").await, 0);
}

/// Every (table, column) naming a user: foreign keys to `users`, and columns named
/// `user_id`, `*_user_id` or `*_by`.
async fn user_columns(
    db: &DatabaseConnection,
) -> (BTreeSet<(String, String)>, BTreeSet<(String, String)>) {
    let backend = db.get_database_backend();
    let rows = |sql: String| async move {
        db.query_all_raw(Statement::from_string(backend, sql))
            .await
            .expect("catalogue")
            .into_iter()
            .map(|r| {
                (
                    r.try_get_by_index::<String>(0).expect("table"),
                    r.try_get_by_index::<String>(1).expect("column"),
                )
            })
            .collect::<BTreeSet<_>>()
    };
    let (foreign, named) = match backend {
        DbBackend::Postgres => (
            rows("SELECT kcu.table_name::text, kcu.column_name::text
                    FROM information_schema.referential_constraints rc
                    JOIN information_schema.key_column_usage kcu
                      ON kcu.constraint_name = rc.constraint_name AND kcu.constraint_schema = rc.constraint_schema
                    JOIN information_schema.key_column_usage ref
                      ON ref.constraint_name = rc.unique_constraint_name AND ref.constraint_schema = rc.unique_constraint_schema
                   WHERE kcu.table_schema = current_schema() AND ref.table_name = 'users'".into()).await,
            rows("SELECT table_name::text, column_name::text FROM information_schema.columns
                   WHERE table_schema = current_schema()".into()).await,
        ),
        DbBackend::MySql => (
            rows("SELECT CAST(table_name AS CHAR), CAST(column_name AS CHAR) FROM information_schema.key_column_usage
                   WHERE table_schema = DATABASE() AND referenced_table_name = 'users'".into()).await,
            rows("SELECT CAST(table_name AS CHAR), CAST(column_name AS CHAR) FROM information_schema.columns
                   WHERE table_schema = DATABASE()".into()).await,
        ),
        _ => (
            rows("SELECT m.name, f.\"from\" FROM sqlite_master m, pragma_foreign_key_list(m.name) f
                   WHERE m.type = 'table' AND f.\"table\" = 'users'".into()).await,
            rows("SELECT m.name, c.name FROM sqlite_master m, pragma_table_xinfo(m.name) c
                   WHERE m.type = 'table'".into()).await,
        ),
    };
    // The migrations' bookkeeping names database logins (`applied_by`), not users.
    let bookkeeping = [
        "migration_checksums",
        "migration_lock",
        "seaql_migrations",
        "database_metadata",
    ];
    let named = named
        .into_iter()
        .filter(|(t, _)| !bookkeeping.contains(&t.as_str()))
        .filter(|(_, c)| c == "user_id" || c.ends_with("_user_id") || c.ends_with("_by"))
        .collect();
    (foreign, named)
}

async fn export_covers_every_table_naming_a_user_and_holds_no_secret(t: TestDb) {
    let report = tests::runtime::seed(&t).await;
    let alice = tests::runtime::user(&report, "alice@acme.com");

    // Against the schema catalogue: a new table naming a user needs a section.
    let (foreign, named) = user_columns(&t.owner).await;
    assert!(
        foreign.contains(&("sessions".to_owned(), "user_id".to_owned())),
        "{foreign:?}"
    );
    for (table, column) in foreign.iter().chain(&named) {
        let section = EXPORT_SECTIONS.iter().find(|s| s.table == table);
        assert!(
            section.is_some(),
            "{table}.{column} names a user, and the export has no section for {table}"
        );
    }
    for (table, column) in &foreign {
        let section = EXPORT_SECTIONS
            .iter()
            .find(|s| s.table == table)
            .expect("a section");
        assert!(
            section.user_columns.contains(&column.as_str()),
            "{table}.{column} references users; the export does not select rows by it"
        );
    }

    let (deps, _) = fixtures::deps();
    let export = compliance::export_user_data(&t.owner, &deps, alice, &meta())
        .await
        .expect("exports");
    assert_eq!(export["format"], EXPORT_FORMAT);
    let tables = export["tables"].as_object().expect("tables");
    let sections: BTreeSet<&str> = EXPORT_SECTIONS.iter().map(|s| s.table).collect();
    assert_eq!(
        tables.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        sections
    );
    for table in [
        "users",
        "user_profiles",
        "memberships",
        "sessions",
        "mfa_factors",
        "mfa_backup_codes",
        "passkeys",
        "api_keys",
        "audit_logs",
    ] {
        assert!(
            tables[table]
                .as_array()
                .is_some_and(|rows| !rows.is_empty()),
            "Alice has {table} rows"
        );
    }
    for section in EXPORT_SECTIONS {
        for row in tables[section.table].as_array().expect("rows") {
            for secret in section.secret_columns {
                assert!(
                    row.get(*secret).is_none(),
                    "{}.{secret} exported",
                    section.table
                );
            }
        }
    }

    // No secret value appears anywhere in the document.
    let text = export.to_string();
    let mut secrets: Vec<String> = Vec::new();
    for sql in [
        "SELECT password_hash FROM users",
        "SELECT key_hash FROM api_keys",
        "SELECT token_hash FROM refresh_tokens",
        "SELECT code_hash FROM mfa_backup_codes",
        "SELECT token_hash FROM invitations",
    ] {
        let rows = t
            .owner
            .query_all_raw(Statement::from_string(t.owner.get_database_backend(), sql))
            .await
            .expect("reads");
        secrets.extend(
            rows.iter()
                .map(|r| r.try_get_by_index::<String>(0).expect("text")),
        );
    }
    for factor in &report.second_factors {
        secrets.push(factor.secret_base32.clone());
        secrets.extend(factor.backup_codes.iter().cloned());
    }
    secrets.extend(report.access.api_keys.iter().map(|k| k.key.clone()));
    assert!(secrets.len() > 20, "the scan has secrets to look for");
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()), "a secret is in the export");
    }
    assert_eq!(count_events(&t.owner, "data_export").await, 1);
}

async fn transfers_outside_the_allowed_regions_are_refused_and_audited(t: TestDb) {
    use entity::compliance::data_residency_log::{self, TransferOutcome};
    use entity::tenancy::tenants::DataRegion;
    let (deps, clock) = fixtures::deps();
    let (as_owner, as_member, _) = tenant_with_policy(&t, &deps, "fay", "gus").await;
    let refused =
        compliance::set_transfer_regions(&t.db, &deps, &as_member, &[DataRegion::Eu], &meta())
            .await;
    assert!(
        matches!(refused, Err(ServiceError::Forbidden { .. })),
        "{refused:?}"
    );
    let tenant = compliance::set_transfer_regions(
        &t.db,
        &deps,
        &as_owner,
        &[DataRegion::Jp, DataRegion::Jp, DataRegion::Us],
        &meta(),
    )
    .await
    .expect("the owner decides");
    assert_eq!(
        compliance::transfer_regions(&tenant),
        vec![DataRegion::Jp],
        "deduplicated, own region left out"
    );

    let allowed = compliance::record_transfer(
        &t.db,
        &deps,
        &as_member,
        DataRegion::Jp,
        "support escalation",
        &meta(),
    )
    .await
    .expect("allowed");
    assert_eq!(
        (allowed.from_region, allowed.outcome),
        (DataRegion::Us, TransferOutcome::Allowed)
    );
    clock.advance(Duration::seconds(1));
    let refused = compliance::record_transfer(
        &t.db,
        &deps,
        &as_member,
        DataRegion::Eu,
        "analytics export",
        &meta(),
    )
    .await;
    assert!(
        matches!(
            refused,
            Err(ServiceError::TransferRefused {
                from: DataRegion::Us,
                to: DataRegion::Eu
            })
        ),
        "{refused:?}"
    );
    for (to, purpose) in [
        (DataRegion::Us, "own region"),
        (DataRegion::Jp, " "),
        (DataRegion::Jp, "bad\u{7}purpose"),
    ] {
        let invalid =
            compliance::record_transfer(&t.db, &deps, &as_member, to, purpose, &meta()).await;
        assert!(
            matches!(invalid, Err(ServiceError::Validation { .. })),
            "{purpose:?}: {invalid:?}"
        );
    }
    let log = data_residency_log::Entity::find()
        .all(&t.owner)
        .await
        .expect("reads");
    assert_eq!(
        log.iter()
            .map(|r| (r.to_region, r.outcome))
            .collect::<Vec<_>>()
            .len(),
        2,
        "one allowed, one refused, nothing for invalid input"
    );
    assert!(
        log.iter()
            .any(|r| r.to_region == DataRegion::Eu && r.outcome == TransferOutcome::Refused)
    );
    assert_eq!(count_events(&t.owner, "data_transfer_recorded").await, 1);
    assert_eq!(count_events(&t.owner, "data_transfer_refused").await, 1);
    assert_eq!(count_events(&t.owner, "data_residency_changed").await, 1);
    // The log is append-only.
    let change = Query::update()
        .table(Alias::new("data_residency_log"))
        .value(Alias::new("outcome"), Expr::value("allowed"))
        .to_owned();
    assert!(t.owner.execute(&change).await.is_err(), "UPDATE is refused");
    let remove = Query::delete()
        .from_table(Alias::new("data_residency_log"))
        .to_owned();
    assert!(t.owner.execute(&remove).await.is_err(), "DELETE is refused");
}

async fn incidents_move_forward_and_keep_their_times(t: TestDb) {
    use entity::compliance::security_incidents::{IncidentSeverity, IncidentStatus};
    let (deps, clock) = fixtures::deps();
    let (as_owner, as_member, member) = tenant_with_policy(&t, &deps, "hal", "ivy").await;
    let incident = |detected| {
        compliance::NewIncident::parse(
            "Leaked export",
            "A CSV export was shared\nby mistake.",
            IncidentSeverity::High,
            detected,
            &[member],
        )
        .expect("valid")
    };
    for (title, description) in [
        ("", "x"),
        ("x", ""),
        (&*"t".repeat(201), "x"),
        ("x", &*"d".repeat(4001)),
    ] {
        let bad = compliance::NewIncident::parse(
            title,
            description,
            IncidentSeverity::Low,
            deps.now(),
            &[],
        );
        assert!(
            matches!(bad, Err(ServiceError::Validation { .. })),
            "{title:?}"
        );
    }
    let refused =
        compliance::report_incident(&t.db, &deps, &as_member, incident(deps.now()), &meta()).await;
    assert!(
        matches!(refused, Err(ServiceError::Forbidden { .. })),
        "{refused:?}"
    );
    let future = compliance::report_incident(
        &t.db,
        &deps,
        &as_owner,
        incident(deps.now() + Duration::hours(1)),
        &meta(),
    )
    .await;
    assert!(
        matches!(
            future,
            Err(ServiceError::Validation {
                field: "detected_at",
                ..
            })
        ),
        "{future:?}"
    );
    let stranger = UserId(uuid::Uuid::from_u128(42));
    let unknown =
        compliance::NewIncident::parse("x", "y", IncidentSeverity::Low, deps.now(), &[stranger])
            .expect("valid");
    let unknown = compliance::report_incident(&t.db, &deps, &as_owner, unknown, &meta()).await;
    assert!(
        matches!(unknown, Err(ServiceError::NotFound { .. })),
        "{unknown:?}"
    );

    let detected = deps.now() - Duration::hours(2);
    let filed = compliance::report_incident(&t.db, &deps, &as_owner, incident(detected), &meta())
        .await
        .expect("files");
    assert_eq!(
        (filed.status, filed.reported_at, filed.resolved_at),
        (IncidentStatus::Open, None, None)
    );
    assert_eq!(filed.affected_subjects, json!([member]));
    clock.advance(Duration::hours(1));
    let reported = deps.now();
    let moved = compliance::update_incident(
        &t.db,
        &deps,
        &as_owner,
        filed.id,
        IncidentStatus::Investigating,
        Some(reported),
        &meta(),
    )
    .await
    .expect("moves on");
    assert_eq!(
        (moved.status, moved.reported_at),
        (IncidentStatus::Investigating, Some(reported))
    );
    let back = compliance::update_incident(
        &t.db,
        &deps,
        &as_owner,
        filed.id,
        IncidentStatus::Open,
        None,
        &meta(),
    )
    .await;
    assert!(
        matches!(back, Err(ServiceError::Conflict { .. })),
        "{back:?}"
    );
    let twice = compliance::update_incident(
        &t.db,
        &deps,
        &as_owner,
        filed.id,
        IncidentStatus::Contained,
        Some(reported),
        &meta(),
    )
    .await;
    assert!(
        matches!(twice, Err(ServiceError::Conflict { .. })),
        "{twice:?}"
    );
    clock.advance(Duration::hours(1));
    let resolved = compliance::update_incident(
        &t.db,
        &deps,
        &as_owner,
        filed.id,
        IncidentStatus::Resolved,
        None,
        &meta(),
    )
    .await
    .expect("resolves");
    assert_eq!(
        (
            resolved.resolved_at,
            resolved.reported_at,
            resolved.detected_at
        ),
        (Some(deps.now()), Some(reported), detected)
    );
    let after = compliance::update_incident(
        &t.db,
        &deps,
        &as_owner,
        filed.id,
        IncidentStatus::Resolved,
        None,
        &meta(),
    )
    .await;
    assert!(
        matches!(after, Err(ServiceError::Conflict { .. })),
        "{after:?}"
    );
    assert_eq!(
        count_events(&t.owner, "security_incident_reported").await,
        1
    );
    assert_eq!(count_events(&t.owner, "security_incident_updated").await, 2);
    assert_eq!(
        compliance::list_incidents(&t.db, &as_member)
            .await
            .expect("lists")
            .len(),
        1
    );
}

async fn the_compliance_report_lists_what_needs_attention(t: TestDb) {
    let report = tests::runtime::seed(&t).await;
    let ichiro = tests::runtime::user(&report, "suzuki.ichiro@example.jp");
    let (deps, clock) = fixtures::deps();
    // Three months after the fixtures: Ichiro's request is past its due date.
    clock.set(seeder::fixture_epoch() + Duration::days(90));
    let document = compliance::compliance_report(&t.owner, &deps, Duration::days(365), &meta())
        .await
        .expect("reports");
    assert_eq!(document["format"], compliance::REPORT_FORMAT);
    let incidents = document["open_incidents"].as_array().expect("incidents");
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    assert_eq!(incidents[0]["status"], "investigating");
    let overdue = document["overdue_deletion_requests"]
        .as_array()
        .expect("overdue");
    assert_eq!(overdue.len(), 1, "{overdue:?}");
    assert_eq!(overdue[0]["user_id"], json!(ichiro));
    let withdrawals = document["consent_withdrawals"]
        .as_array()
        .expect("withdrawals");
    assert_eq!(withdrawals.len(), 1);
    assert_eq!(withdrawals[0]["purpose"], "marketing_email");
    assert_eq!(
        document["refused_transfers"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(
        document["audit_chains"]["intact"], true,
        "{}",
        document["audit_chains"]
    );
    assert_eq!(
        count_events(&t.owner, "compliance_report_generated").await,
        1
    );

    // A day of the period only: the fixtures' withdrawal is older.
    let recent = compliance::compliance_report(&t.owner, &deps, Duration::days(1), &meta())
        .await
        .expect("reports");
    assert_eq!(
        recent["consent_withdrawals"].as_array().map(Vec::len),
        Some(0)
    );

    // A changed audit row shows up as a broken chain.
    tests::tamper::as_owner_bypassing_triggers(
        &t,
        &[
            "UPDATE audit_logs SET risk_score = 99 WHERE event_type = 'consent_withdrawn'"
                .to_owned(),
        ],
    )
    .await;
    let broken = compliance::compliance_report(&t.owner, &deps, Duration::days(1), &meta())
        .await
        .expect("reports");
    assert_eq!(broken["audit_chains"]["intact"], false);
    assert_eq!(
        broken["audit_chains"]["findings"].as_array().map(Vec::len),
        Some(1)
    );
}
