//! Consent under versioned privacy policies: decisions per purpose as append-only
//! history, the current consent derived from it, and the check before using data.

use chrono::Duration;
use entity::UserId;
use entity::compliance::consent_records;
use entity::compliance::subject_keys;
use entity::tenancy::memberships::MembershipRole;
use sea_orm::sea_query::{Alias, Expr, Query};
use sea_orm::{ConnectionTrait, EntityTrait, PaginatorTrait};
use service::ServiceError;
use service::compliance::{
    self, ConsentCheck, ConsentPurpose, NewPrivacyPolicy, check_consent, consent_history,
    current_consents, record_consent,
};
use service::deps::Deps;
use service::tenancy::{TenantCtx, add_member};
use tests::fixtures::{self, meta};
use tests::inspect::count_events;
use tests::privacy::*;
use tests::{Backend, TestDb};

tests::backend_tests!(Migrated:
    consent_follows_the_decisions_and_the_policy_in_effect,
    consent_bad_input_gets_typed_errors_and_writes_nothing,
    consent_history_cannot_be_changed_through_a_connection,
);

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
