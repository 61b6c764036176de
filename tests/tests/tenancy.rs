//! Tenants, memberships and the tenant context, on every backend.

use entity::audit::audit_logs;
use entity::tenancy::memberships::MembershipRole;
use entity::tenancy::tenants::{DataRegion, IsolationLevel, PlanTier};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;
use service::ServiceError;
use service::audit::{list_tenant_events, list_user_events};
use service::tenancy::{
    NewTenant, TenantCtx, add_member, create_tenant, list_members, list_user_tenants, remove_member,
};
use tests::fixtures::{self, meta};
use tests::{TestDb, inspect};

tests::backend_tests!(
    Migrated: create_tenant_makes_creator_owner_and_audits,
    create_tenant_taken_slug_conflicts_and_writes_nothing,
    create_tenant_features_not_an_object_is_rejected,
    tenant_ctx_for_outsider_or_unknown_tenant_is_forbidden,
    add_member_by_plain_member_is_forbidden_and_writes_nothing,
    add_member_twice_conflicts,
    add_member_owner_role_only_by_owner,
    remove_member_last_owner_conflicts,
    remove_member_self_and_by_admin,
    tenant_events_are_scoped_to_their_tenant,
    tenant_ctx_kept_after_demotion_or_suspension_stops_working,
    list_user_events_shows_the_users_own_global_events,
);

async fn create_tenant_makes_creator_owner_and_audits(t: TestDb) {
    let (deps, _) = fixtures::deps();
    let alice = fixtures::user(&t.db, &deps, "alice").await;
    let mut input = NewTenant::parse("acme", "Acme Corporation").expect("valid");
    input.plan_tier = PlanTier::Enterprise;
    input.data_region = DataRegion::Jp;
    input.features = json!({ "sso": true });
    let (tenant, membership) = create_tenant(&t.db, &deps, alice.id, input, &meta())
        .await
        .expect("creates");
    assert_eq!(tenant.slug, "acme");
    assert_eq!(tenant.plan_tier, PlanTier::Enterprise);
    assert_eq!(tenant.isolation_level, IsolationLevel::Shared);
    assert_eq!(tenant.data_region, DataRegion::Jp);
    assert_eq!(tenant.features, json!({ "sso": true }));
    assert_eq!(
        (membership.user_id, membership.role),
        (alice.id, MembershipRole::Owner)
    );

    let mine = list_user_tenants(&t.db, alice.id).await.expect("lists");
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].1.id, tenant.id);

    let ctx = TenantCtx::for_member(&t.db, tenant.id, alice.id)
        .await
        .expect("member");
    let events: Vec<String> = list_tenant_events(&t.db, &ctx, 10)
        .await
        .expect("lists")
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert!(
        events.contains(&"tenant_created".to_owned())
            && events.contains(&"member_added".to_owned())
    );
}

async fn create_tenant_taken_slug_conflicts_and_writes_nothing(t: TestDb) {
    let (deps, _) = fixtures::deps();
    let alice = fixtures::user(&t.db, &deps, "alice").await;
    fixtures::tenant(&t.db, &deps, "acme", &alice).await;
    let before = inspect::row_counts(&t.owner).await;
    let err = create_tenant(
        &t.db,
        &deps,
        alice.id,
        NewTenant::parse("acme", "Other").expect("valid"),
        &meta(),
    )
    .await
    .expect_err("taken");
    assert!(
        matches!(
            err,
            ServiceError::Conflict {
                entity: "tenant",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(inspect::row_counts(&t.owner).await, before);
}

async fn create_tenant_features_not_an_object_is_rejected(t: TestDb) {
    let (deps, _) = fixtures::deps();
    let alice = fixtures::user(&t.db, &deps, "alice").await;
    let before = inspect::row_counts(&t.owner).await;
    let mut input = NewTenant::parse("acme", "Acme").expect("valid");
    input.features = json!(["sso"]);
    let err = create_tenant(&t.db, &deps, alice.id, input, &meta())
        .await
        .expect_err("array");
    assert!(
        matches!(
            err,
            ServiceError::Validation {
                field: "features",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(inspect::row_counts(&t.owner).await, before);
}

async fn tenant_ctx_for_outsider_or_unknown_tenant_is_forbidden(t: TestDb) {
    let (deps, _) = fixtures::deps();
    let alice = fixtures::user(&t.db, &deps, "alice").await;
    let charlie = fixtures::user(&t.db, &deps, "charlie").await;
    let acme = fixtures::tenant(&t.db, &deps, "acme", &alice).await;
    fixtures::tenant(&t.db, &deps, "techstartup", &charlie).await;
    let err = TenantCtx::for_member(&t.db, acme.id, charlie.id)
        .await
        .expect_err("not a member");
    assert!(matches!(err, ServiceError::Forbidden { .. }), "{err:?}");
    let unknown = entity::TenantId(uuid::Uuid::from_u128(42));
    let err = TenantCtx::for_member(&t.db, unknown, alice.id)
        .await
        .expect_err("no such tenant");
    assert!(
        matches!(err, ServiceError::Forbidden { .. }),
        "same answer as for another tenant"
    );
}

async fn add_member_by_plain_member_is_forbidden_and_writes_nothing(t: TestDb) {
    let (deps, _) = fixtures::deps();
    let alice = fixtures::user(&t.db, &deps, "alice").await;
    let bob = fixtures::user(&t.db, &deps, "bob").await;
    let eve = fixtures::user(&t.db, &deps, "eve").await;
    let acme = fixtures::tenant(&t.db, &deps, "acme", &alice).await;
    let owner = TenantCtx::for_member(&t.db, acme.id, alice.id)
        .await
        .expect("owner");
    add_member(
        &t.db,
        &deps,
        &owner,
        bob.id,
        MembershipRole::Member,
        &meta(),
    )
    .await
    .expect("adds bob");
    let as_bob = TenantCtx::for_member(&t.db, acme.id, bob.id)
        .await
        .expect("bob is a member");
    let before = inspect::row_counts(&t.owner).await;
    let err = add_member(
        &t.db,
        &deps,
        &as_bob,
        eve.id,
        MembershipRole::Member,
        &meta(),
    )
    .await
    .expect_err("members do not manage members");
    assert!(matches!(err, ServiceError::Forbidden { .. }), "{err:?}");
    assert_eq!(inspect::row_counts(&t.owner).await, before);
}

async fn add_member_twice_conflicts(t: TestDb) {
    let (deps, _) = fixtures::deps();
    let alice = fixtures::user(&t.db, &deps, "alice").await;
    let bob = fixtures::user(&t.db, &deps, "bob").await;
    let acme = fixtures::tenant(&t.db, &deps, "acme", &alice).await;
    let owner = TenantCtx::for_member(&t.db, acme.id, alice.id)
        .await
        .expect("owner");
    add_member(
        &t.db,
        &deps,
        &owner,
        bob.id,
        MembershipRole::Member,
        &meta(),
    )
    .await
    .expect("adds");
    let err = add_member(&t.db, &deps, &owner, bob.id, MembershipRole::Admin, &meta())
        .await
        .expect_err("already a member");
    assert!(
        matches!(
            err,
            ServiceError::Conflict {
                entity: "membership",
                ..
            }
        ),
        "{err:?}"
    );
    let missing = entity::UserId(uuid::Uuid::from_u128(7));
    let err = add_member(
        &t.db,
        &deps,
        &owner,
        missing,
        MembershipRole::Member,
        &meta(),
    )
    .await
    .expect_err("unknown user");
    assert!(
        matches!(err, ServiceError::NotFound { entity: "user", .. }),
        "{err:?}"
    );
}

async fn add_member_owner_role_only_by_owner(t: TestDb) {
    let (deps, _) = fixtures::deps();
    let alice = fixtures::user(&t.db, &deps, "alice").await;
    let adam = fixtures::user(&t.db, &deps, "adam").await;
    let olga = fixtures::user(&t.db, &deps, "olga").await;
    let acme = fixtures::tenant(&t.db, &deps, "acme", &alice).await;
    let owner = TenantCtx::for_member(&t.db, acme.id, alice.id)
        .await
        .expect("owner");
    add_member(
        &t.db,
        &deps,
        &owner,
        adam.id,
        MembershipRole::Admin,
        &meta(),
    )
    .await
    .expect("admin added");
    let admin = TenantCtx::for_member(&t.db, acme.id, adam.id)
        .await
        .expect("admin");
    let err = add_member(
        &t.db,
        &deps,
        &admin,
        olga.id,
        MembershipRole::Owner,
        &meta(),
    )
    .await
    .expect_err("admins cannot make owners");
    assert!(matches!(err, ServiceError::Forbidden { .. }), "{err:?}");
    add_member(
        &t.db,
        &deps,
        &admin,
        olga.id,
        MembershipRole::Member,
        &meta(),
    )
    .await
    .expect("admins add members");
}

async fn remove_member_last_owner_conflicts(t: TestDb) {
    let (deps, _) = fixtures::deps();
    let alice = fixtures::user(&t.db, &deps, "alice").await;
    let acme = fixtures::tenant(&t.db, &deps, "acme", &alice).await;
    let owner = TenantCtx::for_member(&t.db, acme.id, alice.id)
        .await
        .expect("owner");
    let before = inspect::row_counts(&t.owner).await;
    let err = remove_member(&t.db, &deps, &owner, alice.id, &meta())
        .await
        .expect_err("last owner");
    assert!(
        matches!(
            err,
            ServiceError::Conflict {
                entity: "membership",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(inspect::row_counts(&t.owner).await, before);
}

async fn remove_member_self_and_by_admin(t: TestDb) {
    let (deps, _) = fixtures::deps();
    let alice = fixtures::user(&t.db, &deps, "alice").await;
    let bob = fixtures::user(&t.db, &deps, "bob").await;
    let cleo = fixtures::user(&t.db, &deps, "cleo").await;
    let acme = fixtures::tenant(&t.db, &deps, "acme", &alice).await;
    let owner = TenantCtx::for_member(&t.db, acme.id, alice.id)
        .await
        .expect("owner");
    add_member(
        &t.db,
        &deps,
        &owner,
        bob.id,
        MembershipRole::Member,
        &meta(),
    )
    .await
    .expect("adds");
    add_member(
        &t.db,
        &deps,
        &owner,
        cleo.id,
        MembershipRole::Member,
        &meta(),
    )
    .await
    .expect("adds");

    let as_bob = TenantCtx::for_member(&t.db, acme.id, bob.id)
        .await
        .expect("member");
    let err = remove_member(&t.db, &deps, &as_bob, cleo.id, &meta())
        .await
        .expect_err("not bob's call");
    assert!(matches!(err, ServiceError::Forbidden { .. }), "{err:?}");
    remove_member(&t.db, &deps, &as_bob, bob.id, &meta())
        .await
        .expect("bob leaves");
    remove_member(&t.db, &deps, &owner, cleo.id, &meta())
        .await
        .expect("owner removes cleo");

    let members: Vec<_> = list_members(&t.db, &owner)
        .await
        .expect("lists")
        .into_iter()
        .map(|m| m.user_id)
        .collect();
    assert_eq!(members, vec![alice.id]);
    let removed = audit_logs::Entity::find()
        .filter(audit_logs::Column::EventType.eq("member_removed"))
        .count(&t.owner)
        .await
        .expect("count");
    assert_eq!(removed, 2);
    let err = TenantCtx::for_member(&t.db, acme.id, bob.id)
        .await
        .expect_err("bob is out");
    assert!(matches!(err, ServiceError::Forbidden { .. }));
}

async fn tenant_events_are_scoped_to_their_tenant(t: TestDb) {
    let (deps, _) = fixtures::deps();
    let alice = fixtures::user(&t.db, &deps, "alice").await;
    let charlie = fixtures::user(&t.db, &deps, "charlie").await;
    let acme = fixtures::tenant(&t.db, &deps, "acme", &alice).await;
    let startup = fixtures::tenant(&t.db, &deps, "techstartup", &charlie).await;
    let as_alice = TenantCtx::for_member(&t.db, acme.id, alice.id)
        .await
        .expect("member");
    let events = list_tenant_events(&t.db, &as_alice, 100)
        .await
        .expect("lists");
    assert!(!events.is_empty());
    assert!(
        events.iter().all(|e| e.tenant_id == Some(acme.id)),
        "no other tenant's events"
    );
    assert!(events.iter().all(|e| e.tenant_id != Some(startup.id)));
    let own = list_user_events(&t.db, alice.id, 100).await.expect("lists");
    assert!(own.iter().any(|e| e.event_type == "user_created"));
    assert!(own.iter().all(|e| e.actor_user_id == Some(alice.id)));
}

/// A context proves the membership again in every transaction it opens: one kept
/// across a demotion loses the admin's rights, one kept across a suspension loses
/// everything.
async fn tenant_ctx_kept_after_demotion_or_suspension_stops_working(t: TestDb) {
    use entity::tenancy::memberships;
    use sea_orm::sea_query::Expr;
    let (deps, _) = fixtures::deps();
    let alice = fixtures::user(&t.db, &deps, "alice").await;
    let bob = fixtures::user(&t.db, &deps, "bob").await;
    let eve = fixtures::user(&t.db, &deps, "eve").await;
    let acme = fixtures::tenant(&t.db, &deps, "acme", &alice).await;
    let owner = TenantCtx::for_member(&t.db, acme.id, alice.id)
        .await
        .expect("owner");
    add_member(&t.db, &deps, &owner, bob.id, MembershipRole::Admin, &meta())
        .await
        .expect("bob joins as admin");
    let as_bob = TenantCtx::for_member(&t.db, acme.id, bob.id)
        .await
        .expect("admin");

    // Demoted behind the context's back (another request, another process).
    let set = |column: memberships::Column, value: &'static str| {
        memberships::Entity::update_many()
            .col_expr(column, Expr::value(value))
            .filter(memberships::Column::TenantId.eq(acme.id))
            .filter(memberships::Column::UserId.eq(bob.id))
    };
    set(memberships::Column::Role, "member")
        .exec(&t.owner)
        .await
        .expect("demotes");
    let before = inspect::row_counts(&t.owner).await;
    let err = add_member(
        &t.db,
        &deps,
        &as_bob,
        eve.id,
        MembershipRole::Member,
        &meta(),
    )
    .await
    .expect_err("a member no longer manages members");
    assert!(matches!(err, ServiceError::Forbidden { .. }), "{err:?}");
    assert_eq!(inspect::row_counts(&t.owner).await, before);
    let txn = as_bob.begin(&t.db).await.expect("still a member");
    assert_eq!(txn.role(), MembershipRole::Member, "the role as of now");
    txn.rollback().await.expect("rolls back");

    set(memberships::Column::Status, "suspended")
        .exec(&t.owner)
        .await
        .expect("suspends");
    let err = as_bob.begin(&t.db).await.expect_err("suspended");
    assert!(matches!(err, ServiceError::Forbidden { .. }), "{err:?}");
    let err = list_members(&t.db, &as_bob).await.expect_err("suspended");
    assert!(matches!(err, ServiceError::Forbidden { .. }), "{err:?}");
}

/// A user's own history: the global events they caused, not other users', and not
/// what happened inside tenants (that is the tenant's trail).
async fn list_user_events_shows_the_users_own_global_events(t: TestDb) {
    let (deps, clock) = fixtures::deps();
    let alice = fixtures::user(&t.db, &deps, "alice").await;
    let bob = fixtures::user(&t.db, &deps, "bob").await;
    fixtures::tenant(&t.db, &deps, "acme", &alice).await;
    clock.advance(chrono::Duration::seconds(1));
    service::identity::create_session(&t.db, &deps, alice.id, &meta())
        .await
        .expect("session");
    let events = list_user_events(&t.db, alice.id, 100).await.expect("lists");
    let codes: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        codes,
        vec!["session_created", "user_created"],
        "newest first"
    );
    assert!(
        events
            .iter()
            .all(|e| e.actor_user_id == Some(alice.id) && e.tenant_id.is_none())
    );
    let bobs = list_user_events(&t.db, bob.id, 100).await.expect("lists");
    assert_eq!(bobs.len(), 1, "bob's registration only");
}
