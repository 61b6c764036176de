//! Erasure on request: cancellation within the grace period, the erasure job with
//! pseudonymisation and crypto-shredding, two jobs at once, tenants in their own schema.

use chrono::Duration;
use entity::compliance::consent_records;
use entity::compliance::deletion_requests::DeletionStatus;
use entity::identity::users;
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, Statement};
use serde_json::json;
use service::ServiceError;
use service::audit::verify::{self, ChainScope};
use service::compliance::{self};
use service::identity::authenticate;
use service::tenancy::TenantCtx;
use tests::fixtures::{self, PASSWORD, meta, session_of};
use tests::inspect::{self, count_events};
use tests::privacy::*;
use tests::{Backend, TestDb};

tests::backend_tests!(Migrated:
    cancellation_within_the_grace_period_loses_nothing,
    erasure_leaves_no_readable_personal_data_and_every_chain_verifies,
    erasing_a_user_with_every_kind_of_row,
    two_erasure_jobs_at_once_erase_once,
    erasure_and_export_reach_tenants_in_their_own_schema,
);

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

/// The richest fixture user, Alice (owner of Acme, with a TOTP factor, backup codes, a
/// passkey, sessions, an API key she created, a consent), erased by the job.
async fn erasing_a_user_with_every_kind_of_row(t: TestDb) {
    use entity::identity::api_keys;
    let report = tests::runtime::seed(&t).await;
    let alice = tests::runtime::user(&report, "alice@acme.com");
    let acme = tests::runtime::tenant(&report, "acme");
    let (deps, clock) = fixtures::deps();
    clock.set(seeder::fixture_epoch() + Duration::days(100));
    // Filed long ago (the service's own filing needs her second factor; the job is what
    // this test is about).
    due_request(&t, alice, 7).await;
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
