//! Privacy compliance: consent under versioned policies, erasure with
//! pseudonymisation and crypto-shredding, cancellation within the grace period, and
//! the export of everything held about a user.

use chrono::Duration;
use entity::UserId;
use entity::compliance::consent_records::{self, ConsentSource};
use entity::compliance::deletion_requests::DeletionStatus;
use entity::compliance::subject_keys;
use entity::identity::{user_profiles, users};
use entity::tenancy::memberships::MembershipRole;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, PaginatorTrait,
    QueryFilter, Statement,
};
use serde_json::json;
use service::ServiceError;
use service::audit::verify::{self, ChainScope};
use service::compliance::{
    self, ConsentCheck, ConsentDecision, ConsentPurpose, EXPORT_FORMAT, EXPORT_SECTIONS,
    NewPrivacyPolicy, check_consent, consent_history, current_consents, record_consent,
};
use service::deps::Deps;
use service::identity::authenticate;
use service::tenancy::{TenantCtx, add_member};
use std::collections::BTreeSet;
use tests::fixtures::{self, PASSWORD, meta, session_of};
use tests::inspect::{self, count_events};
use tests::{Backend, TestDb};

tests::backend_tests!(Migrated:
    consent_follows_the_decisions_and_the_policy_in_effect,
    consent_bad_input_gets_typed_errors_and_writes_nothing,
    consent_history_cannot_be_changed_through_a_connection,
    cancellation_within_the_grace_period_loses_nothing,
    erasure_leaves_no_readable_personal_data_and_every_chain_verifies,
    operator_jobs_refuse_a_role_behind_row_security,
    export_covers_every_table_naming_a_user_and_holds_no_secret,
    transfers_outside_the_allowed_regions_are_refused_and_audited,
    incidents_move_forward_and_keep_their_times,
    the_compliance_report_lists_what_needs_attention,
    erasing_a_user_with_every_kind_of_row,
    two_erasure_jobs_at_once_erase_once,
    erasure_and_export_reach_tenants_in_their_own_schema,
);

fn marketing() -> ConsentPurpose {
    ConsentPurpose::parse("marketing_email").expect("valid")
}

fn decide(granted: bool) -> ConsentDecision {
    ConsentDecision {
        purpose: marketing(),
        granted,
        source: ConsentSource::Web,
    }
}

/// A tenant owned by `owner` with policy version 1 in effect, and `member` in it.
async fn tenant_with_policy(
    t: &TestDb,
    deps: &Deps,
    owner: &str,
    member: &str,
) -> (TenantCtx, TenantCtx, UserId) {
    let slug = format!("{owner}-co");
    let owner = fixtures::user(&t.db, deps, owner).await;
    let tenant = fixtures::tenant(&t.db, deps, &slug, &owner).await;
    let member = fixtures::user(&t.db, deps, member).await;
    let as_owner = TenantCtx::for_member(&t.db, tenant.id, owner.id)
        .await
        .expect("owner ctx");
    add_member(
        &t.db,
        deps,
        &as_owner,
        member.id,
        MembershipRole::Member,
        &meta(),
    )
    .await
    .expect("member joins");
    let v1 = NewPrivacyPolicy::parse("Privacy", "https://example.com/privacy/1", deps.now())
        .expect("valid policy");
    compliance::publish_privacy_policy(&t.db, deps, &as_owner, v1, &meta())
        .await
        .expect("publishes v1");
    let as_member = TenantCtx::for_member(&t.db, tenant.id, member.id)
        .await
        .expect("member ctx");
    (as_owner, as_member, member.id)
}

async fn check(t: &TestDb, deps: &Deps, ctx: &TenantCtx, user: UserId) -> ConsentCheck {
    check_consent(&t.db, deps, ctx, user, &marketing(), &meta())
        .await
        .expect("checks")
}

async fn consent_follows_the_decisions_and_the_policy_in_effect(t: TestDb) {
    let (deps, clock) = fixtures::deps();
    let (as_owner, bob, bob_id) = tenant_with_policy(&t, &deps, "alice", "bob").await;
    assert_eq!(check(&t, &deps, &bob, bob_id).await, ConsentCheck::NotGiven);

    let first = record_consent(&t.db, &deps, &bob, decide(true), &meta())
        .await
        .expect("records");
    assert_eq!((first.seq, first.policy_version), (1, 1));
    assert_eq!(
        check(&t, &deps, &bob, bob_id).await,
        ConsentCheck::Granted { policy_version: 1 }
    );
    // The owner may ask too (an application's job acting for the tenant).
    assert!(
        compliance::has_consented(&t.db, &deps, &as_owner, bob_id, &marketing(), &meta())
            .await
            .expect("checks")
    );

    clock.advance(Duration::seconds(1));
    record_consent(&t.db, &deps, &bob, decide(false), &meta())
        .await
        .expect("withdraws");
    assert_eq!(
        check(&t, &deps, &bob, bob_id).await,
        ConsentCheck::Withdrawn,
        "withdrawal makes validation fail"
    );

    clock.advance(Duration::seconds(1));
    record_consent(&t.db, &deps, &bob, decide(true), &meta())
        .await
        .expect("grants again");
    // Version 2 is published to take effect tomorrow: until then version 1 rules.
    let v2 = NewPrivacyPolicy::parse(
        "Privacy, revised",
        "https://example.com/privacy/2",
        deps.now() + Duration::days(1),
    )
    .expect("valid");
    compliance::publish_privacy_policy(&t.db, &deps, &as_owner, v2, &meta())
        .await
        .expect("publishes v2");
    assert_eq!(
        check(&t, &deps, &bob, bob_id).await,
        ConsentCheck::Granted { policy_version: 1 }
    );
    clock.advance(Duration::days(1));
    assert_eq!(
        check(&t, &deps, &bob, bob_id).await,
        ConsentCheck::OutdatedPolicy {
            granted_under: 1,
            current: 2
        }
    );
    let renewed = record_consent(&t.db, &deps, &bob, decide(true), &meta())
        .await
        .expect("renews");
    assert_eq!(renewed.policy_version, 2);
    assert_eq!(
        check(&t, &deps, &bob, bob_id).await,
        ConsentCheck::Granted { policy_version: 2 }
    );

    let history = consent_history(&t.db, &deps, &bob, bob_id, &meta())
        .await
        .expect("history");
    assert_eq!(
        history
            .iter()
            .map(|e| (e.seq, e.granted, e.policy_version))
            .collect::<Vec<_>>(),
        vec![(1, true, 1), (2, false, 1), (3, true, 1), (4, true, 2)]
    );
    assert!(
        history.iter().all(|e| e.ip_address == meta().ip_address),
        "the user reads their own addresses"
    );
    let as_owner_sees = consent_history(&t.db, &deps, &as_owner, bob_id, &meta())
        .await
        .expect("an owner reads it");
    assert!(
        as_owner_sees.iter().all(|e| e.ip_address.is_none()),
        "others see the decisions, not the addresses"
    );
    let current = current_consents(&t.db, &deps, &bob, bob_id, &meta())
        .await
        .expect("current");
    assert_eq!(current.len(), 1);
    assert!(current[0].granted && current[0].policy_version == 2);

    for (code, n) in [
        ("consent_recorded", 1),
        ("consent_withdrawn", 1),
        ("consent_updated", 2),
        ("consent_history_accessed", 2),
        ("consent_read", 1),
        ("privacy_policy_updated", 2),
    ] {
        assert_eq!(count_events(&t.owner, code).await, n, "{code}");
    }
    assert!(count_events(&t.owner, "consent_validated").await >= 4);
    assert_eq!(count_events(&t.owner, "consent_validation_failed").await, 3);

    // A plain member reads nobody's consent but their own.
    let carol = fixtures::user(&t.db, &deps, "carol").await;
    add_member(
        &t.db,
        &deps,
        &as_owner,
        carol.id,
        MembershipRole::Member,
        &meta(),
    )
    .await
    .expect("joins");
    let as_carol = TenantCtx::for_member(&t.db, as_owner.tenant_id(), carol.id)
        .await
        .expect("ctx");
    let refused = consent_history(&t.db, &deps, &as_carol, bob_id, &meta()).await;
    assert!(
        matches!(refused, Err(ServiceError::Forbidden { .. })),
        "{refused:?}"
    );
    let refused = check_consent(&t.db, &deps, &as_carol, bob_id, &marketing(), &meta()).await;
    assert!(
        matches!(refused, Err(ServiceError::Forbidden { .. })),
        "{refused:?}"
    );
}

async fn consent_bad_input_gets_typed_errors_and_writes_nothing(t: TestDb) {
    let (deps, _) = fixtures::deps();
    let owner = fixtures::user(&t.db, &deps, "olga").await;
    let tenant = fixtures::tenant(&t.db, &deps, "olga-co", &owner).await;
    let ctx = TenantCtx::for_member(&t.db, tenant.id, owner.id)
        .await
        .expect("ctx");
    for bad in [
        "",
        "Marketing",
        "mark eting",
        "émail",
        "1st",
        &"a".repeat(65),
    ] {
        assert!(
            matches!(
                ConsentPurpose::parse(bad),
                Err(ServiceError::Validation {
                    field: "purpose",
                    ..
                })
            ),
            "{bad:?}"
        );
    }
    for (title, url) in [
        ("", "https://example.com/p"),
        ("Privacy", "example.com/p"),
        ("Privacy", "javascript:alert(1)"),
        ("Privacy", "https://exa mple.com"),
    ] {
        assert!(
            matches!(
                NewPrivacyPolicy::parse(title, url, deps.now()),
                Err(ServiceError::Validation { .. })
            ),
            "{title:?} {url:?}"
        );
    }
    let audit_before = count_events(&t.owner, "consent_recorded").await;
    // No policy in effect: nothing to consent under.
    let refused = record_consent(&t.db, &deps, &ctx, decide(true), &meta()).await;
    assert!(
        matches!(refused, Err(ServiceError::Conflict { .. })),
        "{refused:?}"
    );
    assert_eq!(
        consent_records::Entity::find()
            .count(&t.owner)
            .await
            .expect("count"),
        0
    );
    assert_eq!(
        subject_keys::Entity::find()
            .count(&t.owner)
            .await
            .expect("count"),
        0,
        "no key was made for a refused decision"
    );
    assert_eq!(
        count_events(&t.owner, "consent_recorded").await,
        audit_before
    );
    // Versions take effect in order.
    let v1 =
        NewPrivacyPolicy::parse("Privacy", "https://example.com/1", deps.now()).expect("valid");
    compliance::publish_privacy_policy(&t.db, &deps, &ctx, v1, &meta())
        .await
        .expect("publishes");
    let earlier = NewPrivacyPolicy::parse(
        "Privacy",
        "https://example.com/2",
        deps.now() - Duration::days(1),
    )
    .expect("valid");
    let refused = compliance::publish_privacy_policy(&t.db, &deps, &ctx, earlier, &meta()).await;
    assert!(
        matches!(
            refused,
            Err(ServiceError::Validation {
                field: "effective_at",
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(count_events(&t.owner, "privacy_policy_updated").await, 1);
}

async fn consent_history_cannot_be_changed_through_a_connection(t: TestDb) {
    let (deps, _) = fixtures::deps();
    let (_, bob, _) = tenant_with_policy(&t, &deps, "dora", "dave").await;
    record_consent(&t.db, &deps, &bob, decide(true), &meta())
        .await
        .expect("records");
    let change = Query::update()
        .table(Alias::new("consent_records"))
        .value(Alias::new("granted"), Expr::value(false))
        .to_owned();
    let remove = Query::delete()
        .from_table(Alias::new("consent_records"))
        .to_owned();
    for db in [&t.owner, &t.db] {
        assert!(db.execute(&change).await.is_err(), "UPDATE is refused");
        assert!(db.execute(&remove).await.is_err(), "DELETE is refused");
    }
    let rows = consent_records::Entity::find()
        .all(&t.owner)
        .await
        .expect("reads");
    assert_eq!(rows.len(), 1);
    assert!(rows[0].granted, "unchanged");
    if t.backend == Backend::Postgres {
        let truncate = t.owner.execute_unprepared("TRUNCATE consent_records").await;
        assert!(truncate.is_err(), "TRUNCATE is refused: {truncate:?}");
    }
}

/// Distinctive personal data, so a scan of every table finds any copy left behind.
const CAROL_EMAIL: &str = "carolyn.quixote@example.com";
const CAROL_NAME: &str = "Carolyn Quixote-Zed";
const CAROL_PHONE: &str = "+81-90-5555-0199";
const CAROL_AVATAR: &str = "https://cdn.example.com/avatars/carolyn-quixote.png";
const CAROL_PREFERENCE: &str = "quixote-dark-theme";

/// Carol, a member of a tenant with a policy, with a profile, a consent (with her
/// address) and a session.
async fn carol(t: &TestDb, deps: &Deps) -> (TenantCtx, UserId) {
    let owner = fixtures::user(&t.db, deps, "erin").await;
    let tenant = fixtures::tenant(&t.db, deps, "erin-co", &owner).await;
    let input =
        service::identity::NewUser::parse(CAROL_EMAIL, PASSWORD, CAROL_NAME).expect("valid");
    let carol = service::identity::register_user(&t.db, deps, input, &meta())
        .await
        .expect("registers");
    user_profiles::Entity::update_many()
        .col_expr(user_profiles::Column::Phone, Expr::value(CAROL_PHONE))
        .col_expr(user_profiles::Column::AvatarUrl, Expr::value(CAROL_AVATAR))
        .col_expr(
            user_profiles::Column::Preferences,
            Expr::value(json!({ "theme": CAROL_PREFERENCE })),
        )
        .filter(user_profiles::Column::UserId.eq(carol.id))
        .exec(&t.owner)
        .await
        .expect("a filled profile");
    let as_owner = TenantCtx::for_member(&t.db, tenant.id, owner.id)
        .await
        .expect("ctx");
    add_member(
        &t.db,
        deps,
        &as_owner,
        carol.id,
        MembershipRole::Admin,
        &meta(),
    )
    .await
    .expect("joins");
    let v1 = NewPrivacyPolicy::parse("Privacy", "https://example.com/privacy/1", deps.now())
        .expect("valid");
    compliance::publish_privacy_policy(&t.db, deps, &as_owner, v1, &meta())
        .await
        .expect("publishes");
    let as_carol = TenantCtx::for_member(&t.db, tenant.id, carol.id)
        .await
        .expect("ctx");
    record_consent(&t.db, deps, &as_carol, decide(true), &meta())
        .await
        .expect("consents");
    (as_carol, carol.id)
}

async fn cancellation_within_the_grace_period_loses_nothing(t: TestDb) {
    let (deps, clock) = fixtures::deps();
    let (_, carol) = carol(&t, &deps).await;
    let session = session_of(&t.db, &deps, carol).await;
    let before = inspect::data(&t.owner).await;
    let keep = |data: &[(&'static str, Vec<serde_json::Value>)]| -> Vec<(&'static str, Vec<serde_json::Value>)> {
        data.iter()
            .filter(|(table, _)| !["audit_logs", "audit_chain_heads", "deletion_requests"].contains(table))
            .cloned()
            .collect()
    };

    let request = compliance::request_deletion(&t.db, &deps, &session, &meta())
        .await
        .expect("files");
    assert_eq!(request.status, DeletionStatus::Requested);
    assert_eq!(request.due_at - request.requested_at, Duration::days(30));
    let again = compliance::request_deletion(&t.db, &deps, &session, &meta()).await;
    assert!(
        matches!(again, Err(ServiceError::Conflict { .. })),
        "one open request: {again:?}"
    );

    clock.advance(Duration::days(29));
    let report = compliance::process_due_deletions(&t.owner, &deps, &meta())
        .await
        .expect("the job runs");
    assert!(report.completed.is_empty(), "not due yet");
    let cancelled = compliance::cancel_deletion(&t.db, &deps, carol, &meta())
        .await
        .expect("cancels within the grace period");
    assert_eq!(cancelled.status, DeletionStatus::Cancelled);

    clock.advance(Duration::days(5));
    let report = compliance::process_due_deletions(&t.owner, &deps, &meta())
        .await
        .expect("the job runs");
    assert!(
        report.completed.is_empty(),
        "a cancelled request is never processed"
    );
    inspect::assert_same_data(&keep(&inspect::data(&t.owner).await), &keep(&before));
    assert!(
        authenticate(
            &t.db,
            &deps,
            &fixtures::email(CAROL_EMAIL),
            &fixtures::password(PASSWORD),
            &meta()
        )
        .await
        .is_ok(),
        "Carol still signs in"
    );
    assert_eq!(count_events(&t.owner, "deletion_request").await, 1);
    assert_eq!(count_events(&t.owner, "deletion_cancelled").await, 1);

    // A second request, let run past its grace period, can no longer be cancelled.
    let session = session_of(&t.db, &deps, carol).await;
    compliance::request_deletion(&t.db, &deps, &session, &meta())
        .await
        .expect("files again");
    clock.advance(Duration::days(31));
    let late = compliance::cancel_deletion(&t.db, &deps, carol, &meta()).await;
    assert!(
        matches!(late, Err(ServiceError::Conflict { .. })),
        "{late:?}"
    );
    let none = compliance::cancel_deletion(
        &t.db,
        &deps,
        fixtures::user(&t.db, &deps, "nobody").await.id,
        &meta(),
    )
    .await;
    assert!(
        matches!(none, Err(ServiceError::NotFound { .. })),
        "{none:?}"
    );
}

/// Every cell of every table of the schema (found in the catalogue, so a new table is
/// scanned too), as text.
async fn every_cell(db: &DatabaseConnection) -> String {
    use sea_orm::{FromQueryResult, JsonValue};
    let backend = db.get_database_backend();
    let mut text = String::new();
    for table in seeder::table_names(db).await.expect("the catalogue") {
        let rows = JsonValue::find_by_statement(Statement::from_string(
            backend,
            format!("SELECT * FROM {table}"),
        ))
        .all(db)
        .await
        .unwrap_or_else(|e| panic!("{table}: {e}"));
        text.push_str(&format!("{table}: {}\n", JsonValue::Array(rows)));
    }
    text
}

async fn erasure_leaves_no_readable_personal_data_and_every_chain_verifies(t: TestDb) {
    let (deps, clock) = fixtures::deps();
    let (_, carol) = carol(&t, &deps).await;
    let session = session_of(&t.db, &deps, carol).await;
    let text = every_cell(&t.owner).await;
    for needle in [
        CAROL_EMAIL,
        CAROL_NAME,
        CAROL_PHONE,
        CAROL_AVATAR,
        CAROL_PREFERENCE,
    ] {
        assert!(
            text.contains(needle),
            "the scan sees {needle} before erasure"
        );
    }
    compliance::request_deletion(&t.db, &deps, &session, &meta())
        .await
        .expect("files");
    clock.advance(Duration::days(30) + Duration::seconds(1));
    let report = compliance::process_due_deletions(&t.owner, &deps, &meta())
        .await
        .expect("the job runs");
    assert_eq!(report.completed.len(), 1, "{report:?}");
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(report.completed[0].user_id, carol);

    let text = every_cell(&t.owner).await;
    for needle in [
        CAROL_EMAIL,
        CAROL_NAME,
        CAROL_PHONE,
        CAROL_AVATAR,
        CAROL_PREFERENCE,
    ] {
        assert!(!text.contains(needle), "{needle} survived the erasure");
    }
    let user = users::Entity::find_by_id(carol)
        .one(&t.owner)
        .await
        .expect("reads")
        .expect("the pseudonymised row stays");
    assert_eq!(user.email, compliance::erased_email(carol));
    assert!(!user.is_active);
    for table in [
        "sessions",
        "memberships",
        "mfa_factors",
        "passkeys",
        "subject_keys",
    ] {
        let n = count_rows_of(&t.owner, table, "user_id", carol).await;
        assert_eq!(n, 0, "{table}");
    }
    // The consent stays as history, its address unreadable: the key is gone.
    let consent = consent_records::Entity::find()
        .filter(consent_records::Column::UserId.eq(carol))
        .one(&t.owner)
        .await
        .expect("reads")
        .expect("the decision stays");
    assert!(consent.ip_address.is_some(), "the sealed bytes stay");
    let export = compliance::export_user_data(&t.owner, &deps, carol, &meta())
        .await
        .expect("exports the pseudonym");
    assert_eq!(
        export["tables"]["consent_records"][0]["ip_address"],
        serde_json::Value::Null
    );
    // Nobody signs in as her, under either address.
    for address in [CAROL_EMAIL.to_owned(), compliance::erased_email(carol)] {
        let refused = authenticate(
            &t.db,
            &deps,
            &fixtures::email(&address),
            &fixtures::password(PASSWORD),
            &meta(),
        )
        .await;
        assert!(refused.is_err(), "{address}: {refused:?}");
    }
    let report = verify::verify(&t.owner, ChainScope::All, None, |_| {})
        .await
        .expect("verifies");
    assert!(report.is_intact(), "{:?}", report.findings);
    assert_eq!(count_events(&t.owner, "deletion_processing").await, 1);
    assert_eq!(count_events(&t.owner, "deletion_completed").await, 1);
    assert_eq!(count_events(&t.owner, "user_deleted").await, 1);
    // The job is idempotent.
    let again = compliance::process_due_deletions(&t.owner, &deps, &meta())
        .await
        .expect("runs");
    assert!(again.completed.is_empty() && again.failed.is_empty());
}

async fn count_rows_of(db: &DatabaseConnection, table: &str, column: &str, user: UserId) -> u64 {
    let query = Query::select()
        .expr(Expr::col(Alias::new(column)).count())
        .from(Alias::new(table))
        .and_where(Expr::col(Alias::new(column)).eq(user.into_uuid()))
        .to_owned();
    let row = db.query_one(&query).await.expect("counts").expect("a row");
    row.try_get_by_index::<i64>(0)
        .map(|n| n as u64)
        .expect("a count")
}

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

/// The richest fixture user, Alice (owner of Acme, with a TOTP factor, backup codes, a
/// passkey, sessions, an API key she created, a consent), erased by the job.
async fn erasing_a_user_with_every_kind_of_row(t: TestDb) {
    use entity::compliance::deletion_requests;
    use entity::identity::api_keys;
    let report = tests::runtime::seed(&t).await;
    let alice = tests::runtime::user(&report, "alice@acme.com");
    let acme = tests::runtime::tenant(&report, "acme");
    let (deps, clock) = fixtures::deps();
    clock.set(seeder::fixture_epoch() + Duration::days(100));
    // Filed long ago (the service's own filing needs her second factor; the job is what
    // this test is about).
    deletion_requests::Entity::insert(deletion_requests::ActiveModel {
        id: sea_orm::ActiveValue::Set(entity::DeletionRequestId(uuid::Uuid::from_u128(7))),
        user_id: sea_orm::ActiveValue::Set(alice),
        status: sea_orm::ActiveValue::Set(DeletionStatus::Requested),
        requested_at: sea_orm::ActiveValue::Set(seeder::fixture_epoch() + Duration::days(40)),
        due_at: sea_orm::ActiveValue::Set(seeder::fixture_epoch() + Duration::days(70)),
        cancelled_at: sea_orm::ActiveValue::NotSet,
        processing_started_at: sea_orm::ActiveValue::NotSet,
        completed_at: sea_orm::ActiveValue::NotSet,
        open_user_id: sea_orm::ActiveValue::NotSet,
    })
    .exec_without_returning(&t.owner)
    .await
    .expect("a due request");
    let (removed_before, revoked_before) = (
        count_events(&t.owner, "member_removed").await,
        count_events(&t.owner, "api_key_revoked").await,
    );
    let done = compliance::process_due_deletions(&t.owner, &deps, &meta())
        .await
        .expect("the job runs");
    assert!(done.failed.is_empty(), "{done:?}");
    // Acme's own trail tells what it lost (and Rento's: Ichiro's request is due too).
    assert_eq!(
        count_events(&t.owner, "member_removed").await,
        removed_before + 2
    );
    assert_eq!(
        count_events(&t.owner, "api_key_revoked").await,
        revoked_before + 1
    );
    let erased = done
        .completed
        .iter()
        .find(|e| e.user_id == alice)
        .expect("Alice is erased");
    assert_eq!(
        erased.tenants_left_without_owner,
        vec![acme],
        "Acme has no owner now, and says so"
    );
    for table in [
        "sessions",
        "mfa_factors",
        "mfa_backup_codes",
        "passkeys",
        "memberships",
        "subject_keys",
        "session_anomaly_reports",
    ] {
        assert_eq!(
            count_rows_of(&t.owner, table, "user_id", alice).await,
            0,
            "{table}"
        );
    }
    let keys = api_keys::Entity::find()
        .filter(api_keys::Column::TenantId.eq(acme))
        .all(&t.owner)
        .await
        .expect("reads");
    assert!(!keys.is_empty(), "Acme keeps its keys as history");
    assert!(
        keys.iter().all(|k| k.created_by != Some(alice)),
        "none names her"
    );
    let text = every_cell(&t.owner).await;
    for needle in ["alice@acme.com", "Alice Anderson"] {
        assert!(!text.contains(needle), "{needle} survived the erasure");
    }
    let report = verify::verify(&t.owner, ChainScope::All, None, |_| {})
        .await
        .expect("verifies");
    assert!(report.is_intact(), "{:?}", report.findings);
}

/// A request already due, filed directly (the service's filing is tested above; this
/// is about the job).
async fn due_request(t: &TestDb, user: UserId, n: u128) {
    use entity::compliance::deletion_requests;
    use sea_orm::ActiveValue::{NotSet, Set};
    deletion_requests::Entity::insert(deletion_requests::ActiveModel {
        id: Set(entity::DeletionRequestId(uuid::Uuid::from_u128(n))),
        user_id: Set(user),
        status: Set(DeletionStatus::Requested),
        requested_at: Set(seeder::fixture_epoch() + Duration::days(40)),
        due_at: Set(seeder::fixture_epoch() + Duration::days(70)),
        cancelled_at: NotSet,
        processing_started_at: NotSet,
        completed_at: NotSet,
        open_user_id: NotSet,
    })
    .exec_without_returning(&t.owner)
    .await
    .expect("a due request");
}

async fn two_erasure_jobs_at_once_erase_once(t: TestDb) {
    let report = tests::runtime::seed(&t).await;
    let bob = tests::runtime::user(&report, "bob@acme.com");
    due_request(&t, bob, 11).await;
    let (deps, clock) = fixtures::deps();
    clock.set(seeder::fixture_epoch() + Duration::days(100));
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(2));
    let jobs: Vec<_> = (0..2)
        .map(|_| {
            let (db, deps, start) = (t.owner.clone(), deps.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                compliance::process_due_deletions(&db, &deps, &meta()).await
            })
        })
        .collect();
    // Bob's request, and Ichiro's from the fixtures (due by now too): each erased by
    // one job only.
    let ichiro = tests::runtime::user(&report, "suzuki.ichiro@example.jp");
    let mut erased = Vec::new();
    for job in jobs {
        match job.await.expect("the task ran") {
            Ok(report) => {
                assert!(report.failed.is_empty(), "{report:?}");
                erased.extend(report.completed.iter().map(|e| e.user_id));
            }
            // SQLite: the second writer may find the database busy; it erased nothing.
            Err(e) => assert!(t.backend == Backend::Sqlite, "{e}"),
        }
    }
    erased.sort();
    let mut expected = vec![bob, ichiro];
    expected.sort();
    assert_eq!(erased, expected, "each erased once, by one of the jobs");
    assert_eq!(
        count_events(&t.owner, "deletion_completed").await,
        3,
        "the fixture's, Bob's and Ichiro's"
    );
    assert_eq!(count_events(&t.owner, "user_deleted").await, 3);
    let report = verify::verify(&t.owner, ChainScope::All, None, |_| {})
        .await
        .expect("verifies");
    assert!(report.is_intact(), "{:?}", report.findings);
}

async fn erasure_and_export_reach_tenants_in_their_own_schema(t: TestDb) {
    use entity::tenancy::tenants::IsolationLevel;
    use service::tenancy::{NewInvitation, NewTenant, create_tenant, invite};
    if t.backend != Backend::Postgres {
        return;
    }
    let report = tests::runtime::seed(&t).await;
    let (alice, bob) = (
        tests::runtime::user(&report, "alice@acme.com"),
        tests::runtime::user(&report, "bob@acme.com"),
    );
    let (deps, clock) = fixtures::deps();
    clock.set(seeder::fixture_epoch() + Duration::days(100));
    let mut input = NewTenant::parse("isolated-co", "Isolated Co").expect("valid");
    input.isolation_level = IsolationLevel::Schema;
    let (isolated, _) = create_tenant(&t.db, &deps, alice, input, &meta())
        .await
        .expect("creates");
    for tenant in migration::tenant_schemas::isolated_tenants(&t.owner, &t.target())
        .await
        .expect("lists")
    {
        migration::tenant_schemas::provision(&t.owner, &t.target(), &tenant)
            .await
            .expect("provisions");
    }
    let role = t
        .owner
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT id FROM roles WHERE tenant_id IS NULL AND name = 'org_member'",
        ))
        .await
        .expect("reads")
        .expect("the system role")
        .try_get_by_index::<uuid::Uuid>(0)
        .expect("an id");
    let ctx = TenantCtx::for_member(&t.db, isolated.id, alice)
        .await
        .expect("owner");
    invite(
        &t.db,
        &deps,
        &ctx,
        NewInvitation {
            email: fixtures::email("bob@acme.com"),
            role_id: entity::RoleId(role),
            team_id: None,
            valid_for: Duration::days(7),
        },
        &meta(),
    )
    .await
    .expect("invites Bob");
    let in_schema =
        "SELECT count(*) FROM tenant_isolated_co.invitations WHERE email = 'bob@acme.com'";
    assert_eq!(tests::runtime::count(&t.owner, in_schema).await, 1);

    let export = compliance::export_user_data(&t.owner, &deps, bob, &meta())
        .await
        .expect("exports");
    let invitations = export["tables"]["invitations"].as_array().expect("rows");
    assert!(
        invitations
            .iter()
            .any(|i| i["tenant_id"] == json!(isolated.id) && i.get("token_hash").is_none()),
        "the export holds the invitation in the tenant's schema, without its hash: {invitations:?}"
    );

    due_request(&t, bob, 12).await;
    let done = compliance::process_due_deletions(&t.owner, &deps, &meta())
        .await
        .expect("the job runs");
    assert!(done.failed.is_empty(), "{done:?}");
    assert_eq!(
        tests::runtime::count(&t.owner, in_schema).await,
        0,
        "no invitation keeps his address"
    );
    let pseudonym = format!(
        "SELECT count(*) FROM tenant_isolated_co.invitations WHERE email = '{}'",
        compliance::erased_email(bob)
    );
    assert_eq!(tests::runtime::count(&t.owner, &pseudonym).await, 1);
}
