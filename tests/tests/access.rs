//! RBAC, teams and invitations on every backend.

use chrono::{Duration, TimeZone, Utc};
use entity::UserId;
use service::ServiceError;
use service::access::{
    NewAssignment, NewDenyPolicy, Scope, TimeWindow, add_role_parent, add_system_role_parent,
    assign_role, create_deny_policy, create_role, create_system_role, delete_policy,
    effective_permissions, ensure_permission, grant_permission, has_permission, remove_role_parent,
    revoke_assignment, revoke_permission, users_with_permission,
};
use service::input::{RoleName, TeamName};
use service::tenancy::{TenantCtx, create_team};
use tests::access_world::{can, give, role, teams_chain, world};
use tests::fixtures::{self, meta};
use tests::{TestDb, inspect};

tests::backend_tests!(
    Migrated: rbac_inherited_roles_grant_their_parents_permissions,
    rbac_wildcards_match_any_resource_or_action,
    rbac_deny_policy_overrides_every_grant,
    rbac_team_assignment_applies_to_sub_teams_only,
    rbac_expired_and_revoked_assignments_stop_counting,
    rbac_time_window_limits_the_hours,
    rbac_inheritance_cycles_are_rejected,
    rbac_bad_input_gets_typed_errors_and_writes_nothing,
    rbac_effective_permissions_and_who_can,
    rbac_revoke_permission_takes_it_away_and_refuses_what_is_not_granted,
    rbac_remove_role_parent_ends_the_inheritance,
    rbac_delete_policy_lifts_the_deny_and_refuses_other_tenants_policies,
    rbac_catalogue_is_platform_work,
);

async fn rbac_inherited_roles_grant_their_parents_permissions(t: TestDb) {
    let w = world(&t).await;
    let reader = role(&t, &w, "reader", &[("docs", "read")]).await;
    let writer = role(&t, &w, "writer", &[("docs", "write")]).await;
    let editor = role(&t, &w, "editor", &[("docs", "publish")]).await;
    // editor -> writer -> reader, and editor -> reader directly (several parents).
    add_role_parent(&t.db, &w.deps, &w.owner, writer.id, reader.id, &meta())
        .await
        .expect("inherits");
    add_role_parent(&t.db, &w.deps, &w.owner, editor.id, writer.id, &meta())
        .await
        .expect("inherits");
    add_role_parent(&t.db, &w.deps, &w.owner, editor.id, reader.id, &meta())
        .await
        .expect("inherits");
    give(&t, &w, w.bob, &editor, Scope::Tenant).await;
    for action in ["read", "write", "publish"] {
        assert!(
            can(&t, &w, w.bob, "docs", action, Scope::Tenant).await,
            "docs:{action} through inheritance"
        );
    }
    assert!(!can(&t, &w, w.bob, "docs", "delete", Scope::Tenant).await);
    assert!(
        !can(&t, &w, w.alice, "docs", "read", Scope::Tenant).await,
        "no assignment, no permission"
    );
}

async fn rbac_wildcards_match_any_resource_or_action(t: TestDb) {
    let w = world(&t).await;
    let agents = role(&t, &w, "agents-all", &[("agents", "*")]).await;
    give(&t, &w, w.bob, &agents, Scope::Tenant).await;
    assert!(can(&t, &w, w.bob, "agents", "run", Scope::Tenant).await);
    assert!(can(&t, &w, w.bob, "agents", "delete", Scope::Tenant).await);
    assert!(!can(&t, &w, w.bob, "billing", "run", Scope::Tenant).await);
    let root = role(&t, &w, "root", &[("*", "*")]).await;
    give(&t, &w, w.alice, &root, Scope::Tenant).await;
    assert!(can(&t, &w, w.alice, "billing", "refund", Scope::Tenant).await);
    let txn = w.owner.begin(&t.db).await.expect("begins");
    let err = has_permission(&txn, &w.deps, w.alice, "*", "run", Scope::Tenant).await;
    txn.rollback().await.expect("rolls back");
    assert!(
        matches!(
            err,
            Err(ServiceError::Validation {
                field: "resource",
                ..
            })
        ),
        "{err:?}"
    );
}

async fn rbac_deny_policy_overrides_every_grant(t: TestDb) {
    let w = world(&t).await;
    let root = role(&t, &w, "root", &[("*", "*")]).await;
    let auditor = role(&t, &w, "auditor", &[("records", "read")]).await;
    give(&t, &w, w.alice, &root, Scope::Tenant).await;
    give(&t, &w, w.bob, &root, Scope::Tenant).await;
    give(&t, &w, w.bob, &auditor, Scope::Tenant).await;
    let deny = |name: &str, user: Option<UserId>, role: Option<entity::RoleId>| NewDenyPolicy {
        name: name.to_owned(),
        resource: "records".to_owned(),
        action: "delete".to_owned(),
        user_id: user,
        role_id: role,
    };
    create_deny_policy(
        &t.db,
        &w.deps,
        &w.owner,
        deny("no-deletes-for-bob", Some(w.bob), None),
        &meta(),
    )
    .await
    .expect("policy");
    assert!(
        !can(&t, &w, w.bob, "records", "delete", Scope::Tenant).await,
        "deny beats *:*"
    );
    assert!(
        can(&t, &w, w.alice, "records", "delete", Scope::Tenant).await,
        "the policy names bob only"
    );
    assert!(
        can(&t, &w, w.bob, "records", "read", Scope::Tenant).await,
        "other actions unaffected"
    );

    let mut by_role = deny("auditors-never-export", None, Some(auditor.id));
    by_role.action = "export".to_owned();
    create_deny_policy(&t.db, &w.deps, &w.owner, by_role, &meta())
        .await
        .expect("policy");
    assert!(
        !can(&t, &w, w.bob, "records", "export", Scope::Tenant).await,
        "bob holds auditor"
    );
    assert!(
        can(&t, &w, w.alice, "records", "export", Scope::Tenant).await,
        "alice does not"
    );

    let mut everyone = deny("nobody-purges", None, None);
    everyone.action = "*".to_owned();
    everyone.resource = "audit".to_owned();
    create_deny_policy(&t.db, &w.deps, &w.owner, everyone, &meta())
        .await
        .expect("policy");
    assert!(
        !can(&t, &w, w.alice, "audit", "purge", Scope::Tenant).await,
        "wildcard deny for everyone"
    );
}

async fn rbac_team_assignment_applies_to_sub_teams_only(t: TestDb) {
    let w = world(&t).await;
    let chain = teams_chain(
        &t,
        &w,
        &[
            "Company",
            "Engineering",
            "Platform",
            "Databases",
            "Migrations",
        ],
    )
    .await;
    let sales = create_team(
        &t.db,
        &w.deps,
        &w.owner,
        &TeamName::parse("Sales").expect("valid"),
        Some(chain[0]),
        &meta(),
    )
    .await
    .expect("team");
    let runner = role(&t, &w, "runner", &[("agents", "run")]).await;
    give(&t, &w, w.bob, &runner, Scope::Team(chain[1])).await;
    for (depth, team) in chain.iter().enumerate() {
        let expected = depth >= 1;
        assert_eq!(
            can(&t, &w, w.bob, "agents", "run", Scope::Team(*team)).await,
            expected,
            "depth {depth}"
        );
    }
    assert!(
        !can(&t, &w, w.bob, "agents", "run", Scope::Team(sales.id)).await,
        "sibling branch"
    );
    assert!(
        !can(&t, &w, w.bob, "agents", "run", Scope::Tenant).await,
        "not tenant-wide"
    );

    let record = uuid::Uuid::from_u128(99);
    let owner_of_one = role(&t, &w, "record-owner", &[("records", "write")]).await;
    give(&t, &w, w.bob, &owner_of_one, Scope::Record(record)).await;
    assert!(can(&t, &w, w.bob, "records", "write", Scope::Record(record)).await);
    assert!(
        !can(
            &t,
            &w,
            w.bob,
            "records",
            "write",
            Scope::Record(uuid::Uuid::from_u128(100))
        )
        .await
    );
}

async fn rbac_expired_and_revoked_assignments_stop_counting(t: TestDb) {
    let w = world(&t).await;
    let temp = role(&t, &w, "contractor", &[("docs", "read")]).await;
    let input = NewAssignment {
        expires_at: Some(fixtures::start_time() + Duration::hours(1)),
        ..NewAssignment::tenant_wide(w.bob, temp.id)
    };
    assign_role(&t.db, &w.deps, &w.owner, input, &meta())
        .await
        .expect("assigned");
    assert!(can(&t, &w, w.bob, "docs", "read", Scope::Tenant).await);
    w.clock.advance(Duration::hours(2));
    assert!(
        !can(&t, &w, w.bob, "docs", "read", Scope::Tenant).await,
        "expired"
    );

    let lasting = give(&t, &w, w.alice, &temp, Scope::Tenant).await;
    assert!(can(&t, &w, w.alice, "docs", "read", Scope::Tenant).await);
    revoke_assignment(&t.db, &w.deps, &w.owner, lasting.id, &meta())
        .await
        .expect("revoked");
    assert!(
        !can(&t, &w, w.alice, "docs", "read", Scope::Tenant).await,
        "revoked"
    );
    let again = revoke_assignment(&t.db, &w.deps, &w.owner, lasting.id, &meta()).await;
    assert!(
        matches!(again, Err(ServiceError::NotFound { .. })),
        "{again:?}"
    );
}

async fn rbac_time_window_limits_the_hours(t: TestDb) {
    let w = world(&t).await;
    let shift = role(&t, &w, "day-shift", &[("ward", "enter")]).await;
    let night = role(&t, &w, "night-shift", &[("ward", "lock")]).await;
    let day_input = NewAssignment {
        window: Some(TimeWindow::parse("09:00", "17:00").expect("valid")),
        ..NewAssignment::tenant_wide(w.bob, shift.id)
    };
    assign_role(&t.db, &w.deps, &w.owner, day_input, &meta())
        .await
        .expect("assigned");
    let night_input = NewAssignment {
        window: Some(TimeWindow::parse("22:00", "06:00").expect("valid")),
        ..NewAssignment::tenant_wide(w.bob, night.id)
    };
    assign_role(&t.db, &w.deps, &w.owner, night_input, &meta())
        .await
        .expect("assigned");
    let at = |h: u32, m: u32| {
        Utc.with_ymd_and_hms(2026, 3, 2, h, m, 0)
            .single()
            .expect("valid")
    };
    for (time, day, night) in [
        (at(8, 59), false, false),
        (at(9, 0), true, false),
        (at(12, 0), true, false),
        (at(16, 59), true, false),
        (at(17, 0), false, false),
        (at(23, 30), false, true),
        (at(3, 0), false, true),
        (at(6, 0), false, false),
    ] {
        w.clock.set(time);
        assert_eq!(
            can(&t, &w, w.bob, "ward", "enter", Scope::Tenant).await,
            day,
            "day shift at {time}"
        );
        assert_eq!(
            can(&t, &w, w.bob, "ward", "lock", Scope::Tenant).await,
            night,
            "night shift at {time}"
        );
    }
    let err = TimeWindow::parse("9am", "17:00");
    assert!(matches!(err, Err(ServiceError::Validation { .. })));
    assert!(
        TimeWindow::parse("10:00", "10:00").is_err(),
        "an empty window is rejected"
    );
}

async fn rbac_inheritance_cycles_are_rejected(t: TestDb) {
    let w = world(&t).await;
    let a = role(&t, &w, "a", &[]).await;
    let b = role(&t, &w, "b", &[]).await;
    let c = role(&t, &w, "c", &[]).await;
    add_role_parent(&t.db, &w.deps, &w.owner, a.id, b.id, &meta())
        .await
        .expect("a -> b");
    add_role_parent(&t.db, &w.deps, &w.owner, b.id, c.id, &meta())
        .await
        .expect("b -> c");
    let before = inspect::row_counts(&t.owner).await;
    for (child, parent) in [(c.id, a.id), (b.id, a.id), (a.id, a.id)] {
        let err = add_role_parent(&t.db, &w.deps, &w.owner, child, parent, &meta())
            .await
            .expect_err("cycle");
        assert!(
            matches!(
                err,
                ServiceError::Conflict {
                    entity: "role inheritance",
                    ..
                }
            ),
            "{err:?}"
        );
    }
    assert_eq!(inspect::row_counts(&t.owner).await, before);
}

async fn rbac_bad_input_gets_typed_errors_and_writes_nothing(t: TestDb) {
    let w = world(&t).await;
    let (deps, _) = (w.deps.clone(), ());
    let charlie = fixtures::user(&t.db, &deps, "charlie").await;
    let other = fixtures::tenant(&t.db, &deps, "techstartup", &charlie).await;
    let other_ctx = TenantCtx::for_member(&t.db, other.id, charlie.id)
        .await
        .expect("owner");
    let foreign = create_role(
        &t.db,
        &deps,
        &other_ctx,
        &RoleName::parse("spy").expect("valid"),
        None,
        &meta(),
    )
    .await
    .expect("their role");
    let mine = role(&t, &w, "mine", &[("docs", "read")]).await;
    let before = inspect::row_counts(&t.owner).await;

    // A role of another tenant cannot be assigned, inherited or granted to here.
    let err = assign_role(
        &t.db,
        &deps,
        &w.owner,
        NewAssignment::tenant_wide(w.bob, foreign.id),
        &meta(),
    )
    .await;
    assert!(
        matches!(err, Err(ServiceError::NotFound { entity: "role", .. })),
        "{err:?}"
    );
    let err = add_role_parent(&t.db, &deps, &w.owner, mine.id, foreign.id, &meta()).await;
    assert!(
        matches!(err, Err(ServiceError::NotFound { entity: "role", .. })),
        "{err:?}"
    );
    let err = grant_permission(&t.db, &deps, &w.owner, foreign.id, "docs", "read", &meta()).await;
    assert!(
        matches!(err, Err(ServiceError::NotFound { entity: "role", .. })),
        "{err:?}"
    );
    // An unknown role, and an assignment for someone outside the tenant.
    let unknown = entity::RoleId(uuid::Uuid::from_u128(1));
    let err = assign_role(
        &t.db,
        &deps,
        &w.owner,
        NewAssignment::tenant_wide(w.bob, unknown),
        &meta(),
    )
    .await;
    assert!(
        matches!(err, Err(ServiceError::NotFound { entity: "role", .. })),
        "{err:?}"
    );
    let err = assign_role(
        &t.db,
        &deps,
        &w.owner,
        NewAssignment::tenant_wide(charlie.id, mine.id),
        &meta(),
    )
    .await;
    assert!(
        matches!(
            err,
            Err(ServiceError::NotFound {
                entity: "membership",
                ..
            })
        ),
        "{err:?}"
    );
    // A team of another tenant as the scope.
    let their_team = create_team(
        &t.db,
        &deps,
        &other_ctx,
        &TeamName::parse("Ops").expect("valid"),
        None,
        &meta(),
    )
    .await
    .expect("their team");
    let scoped = NewAssignment {
        scope: Scope::Team(their_team.id),
        ..NewAssignment::tenant_wide(w.bob, mine.id)
    };
    let err = assign_role(&t.db, &deps, &w.owner, scoped, &meta()).await;
    assert!(
        matches!(err, Err(ServiceError::NotFound { entity: "team", .. })),
        "{err:?}"
    );
    // Malformed names, a past expiry, a member managing roles.
    let err = grant_permission(&t.db, &deps, &w.owner, mine.id, "Docs!", "read", &meta()).await;
    assert!(
        matches!(
            err,
            Err(ServiceError::Validation {
                field: "resource",
                ..
            })
        ),
        "{err:?}"
    );
    assert!(RoleName::parse("Bad Name").is_err());
    let past = NewAssignment {
        expires_at: Some(fixtures::start_time() - Duration::hours(1)),
        ..NewAssignment::tenant_wide(w.bob, mine.id)
    };
    let err = assign_role(&t.db, &deps, &w.owner, past, &meta()).await;
    assert!(
        matches!(
            err,
            Err(ServiceError::Validation {
                field: "expires_at",
                ..
            })
        ),
        "{err:?}"
    );
    let as_bob = TenantCtx::for_member(&t.db, w.acme.id, w.bob)
        .await
        .expect("member");
    let err = assign_role(
        &t.db,
        &deps,
        &as_bob,
        NewAssignment::tenant_wide(w.bob, mine.id),
        &meta(),
    )
    .await;
    assert!(
        matches!(err, Err(ServiceError::Forbidden { .. })),
        "{err:?}"
    );
    let err = create_role(
        &t.db,
        &deps,
        &w.owner,
        &RoleName::parse("mine").expect("valid"),
        None,
        &meta(),
    )
    .await;
    assert!(
        matches!(err, Err(ServiceError::Conflict { entity: "role", .. })),
        "{err:?}"
    );

    let after = inspect::row_counts(&t.owner).await;
    let team_rows = |counts: &[(&'static str, u64)]| {
        counts
            .iter()
            .filter(|(t, _)| *t != "teams" && *t != "audit_logs")
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        team_rows(&after),
        team_rows(&before),
        "nothing but the other tenant's team was written"
    );
}

async fn rbac_effective_permissions_and_who_can(t: TestDb) {
    let w = world(&t).await;
    // Platform work: the runtime role may not write the catalogue.
    let system = create_system_role(
        &t.owner,
        &w.deps,
        &RoleName::parse("org_member").expect("valid"),
        None,
    )
    .await
    .expect("system role");
    service::access::grant_system_permission(&t.owner, &w.deps, system.id, "organization", "read")
        .await
        .expect("grant");
    let runner = role(&t, &w, "runner", &[("agents", "run"), ("agents", "read")]).await;
    add_role_parent(&t.db, &w.deps, &w.owner, runner.id, system.id, &meta())
        .await
        .expect("inherits system role");
    give(&t, &w, w.bob, &runner, Scope::Tenant).await;
    give(&t, &w, w.alice, &runner, Scope::Tenant).await;
    create_deny_policy(
        &t.db,
        &w.deps,
        &w.owner,
        NewDenyPolicy {
            name: "alice-no-agents".into(),
            resource: "agents".into(),
            action: "run".into(),
            user_id: Some(w.alice),
            role_id: None,
        },
        &meta(),
    )
    .await
    .expect("policy");

    let txn = w.owner.begin(&t.db).await.expect("begins");
    let bob = effective_permissions(&txn, &w.deps, w.bob)
        .await
        .expect("lists");
    let pairs: Vec<(&str, &str)> = bob
        .granted
        .iter()
        .map(|(r, a)| (r.as_str(), a.as_str()))
        .collect();
    assert_eq!(
        pairs,
        vec![
            ("agents", "read"),
            ("agents", "run"),
            ("organization", "read")
        ]
    );
    assert!(bob.denied.is_empty());
    let alice = effective_permissions(&txn, &w.deps, w.alice)
        .await
        .expect("lists");
    assert!(!alice.allows("agents", "run") && alice.allows("agents", "read"));

    let runners = users_with_permission(&txn, &w.deps, "agents", "run")
        .await
        .expect("lists");
    assert_eq!(runners, vec![w.bob], "alice is denied");
    let mut readers = users_with_permission(&txn, &w.deps, "organization", "read")
        .await
        .expect("lists");
    txn.commit().await.expect("commits");
    readers.sort();
    let mut expected = vec![w.alice, w.bob];
    expected.sort();
    assert_eq!(readers, expected, "through the inherited system role");
    // Every answer agrees with has_permission.
    for user in [w.alice, w.bob] {
        for (resource, action) in [
            ("agents", "run"),
            ("agents", "read"),
            ("organization", "read"),
            ("billing", "read"),
        ] {
            let txn = w.owner.begin(&t.db).await.expect("begins");
            let effective = effective_permissions(&txn, &w.deps, user)
                .await
                .expect("lists");
            txn.commit().await.expect("commits");
            assert_eq!(
                effective.allows(resource, action),
                can(&t, &w, user, resource, action, Scope::Tenant).await
            );
        }
    }
}

async fn rbac_revoke_permission_takes_it_away_and_refuses_what_is_not_granted(t: TestDb) {
    let w = world(&t).await;
    let editor = role(&t, &w, "editor", &[("docs", "write"), ("docs", "read")]).await;
    give(&t, &w, w.bob, &editor, Scope::Tenant).await;
    assert!(can(&t, &w, w.bob, "docs", "write", Scope::Tenant).await);
    revoke_permission(
        &t.db,
        &w.deps,
        &w.owner,
        editor.id,
        "docs",
        "write",
        &meta(),
    )
    .await
    .expect("revokes");
    assert!(
        !can(&t, &w, w.bob, "docs", "write", Scope::Tenant).await,
        "gone"
    );
    assert!(
        can(&t, &w, w.bob, "docs", "read", Scope::Tenant).await,
        "the rest stays"
    );
    let before = inspect::row_counts(&t.owner).await;
    let err = revoke_permission(
        &t.db,
        &w.deps,
        &w.owner,
        editor.id,
        "docs",
        "write",
        &meta(),
    )
    .await
    .expect_err("not granted any more");
    assert!(matches!(err, ServiceError::NotFound { .. }), "{err:?}");
    let as_bob = TenantCtx::for_member(&t.db, w.acme.id, w.bob)
        .await
        .expect("member");
    let err = revoke_permission(&t.db, &w.deps, &as_bob, editor.id, "docs", "read", &meta())
        .await
        .expect_err("members do not manage roles");
    assert!(matches!(err, ServiceError::Forbidden { .. }), "{err:?}");
    assert_eq!(
        inspect::row_counts(&t.owner).await,
        before,
        "the refusals wrote nothing"
    );
}

async fn rbac_remove_role_parent_ends_the_inheritance(t: TestDb) {
    let w = world(&t).await;
    let junior = role(&t, &w, "junior", &[("docs", "read")]).await;
    let senior = role(&t, &w, "senior", &[]).await;
    add_role_parent(&t.db, &w.deps, &w.owner, senior.id, junior.id, &meta())
        .await
        .expect("senior inherits junior");
    give(&t, &w, w.bob, &senior, Scope::Tenant).await;
    assert!(can(&t, &w, w.bob, "docs", "read", Scope::Tenant).await);
    remove_role_parent(&t.db, &w.deps, &w.owner, senior.id, junior.id, &meta())
        .await
        .expect("removes");
    assert!(
        !can(&t, &w, w.bob, "docs", "read", Scope::Tenant).await,
        "no longer inherited"
    );
    let err = remove_role_parent(&t.db, &w.deps, &w.owner, senior.id, junior.id, &meta())
        .await
        .expect_err("already gone");
    assert!(matches!(err, ServiceError::NotFound { .. }), "{err:?}");
}

async fn rbac_delete_policy_lifts_the_deny_and_refuses_other_tenants_policies(t: TestDb) {
    let w = world(&t).await;
    let runner = role(&t, &w, "runner", &[("agents", "run")]).await;
    give(&t, &w, w.bob, &runner, Scope::Tenant).await;
    let policy = create_deny_policy(
        &t.db,
        &w.deps,
        &w.owner,
        NewDenyPolicy {
            name: "no-runs".into(),
            resource: "agents".into(),
            action: "run".into(),
            user_id: None,
            role_id: None,
        },
        &meta(),
    )
    .await
    .expect("policy");
    assert!(!can(&t, &w, w.bob, "agents", "run", Scope::Tenant).await);

    // Another tenant's owner cannot delete it, and learns nothing about it.
    let charlie = fixtures::user(&t.db, &w.deps, "charlie").await;
    let other = fixtures::tenant(&t.db, &w.deps, "startup", &charlie).await;
    let other_ctx = TenantCtx::for_member(&t.db, other.id, charlie.id)
        .await
        .expect("owner");
    let err = delete_policy(&t.db, &w.deps, &other_ctx, policy.id, &meta())
        .await
        .expect_err("not theirs");
    assert!(matches!(err, ServiceError::NotFound { .. }), "{err:?}");
    assert!(
        !can(&t, &w, w.bob, "agents", "run", Scope::Tenant).await,
        "still denied"
    );

    delete_policy(&t.db, &w.deps, &w.owner, policy.id, &meta())
        .await
        .expect("deletes");
    assert!(
        can(&t, &w, w.bob, "agents", "run", Scope::Tenant).await,
        "lifted"
    );
    let err = delete_policy(&t.db, &w.deps, &w.owner, policy.id, &meta())
        .await
        .expect_err("already gone");
    assert!(matches!(err, ServiceError::NotFound { .. }), "{err:?}");
}

/// System roles and their graph are platform work: done as the owner, refused to the
/// runtime role by the database on PostgreSQL.
async fn rbac_catalogue_is_platform_work(t: TestDb) {
    let w = world(&t).await;
    let member = create_system_role(
        &t.owner,
        &w.deps,
        &RoleName::parse("platform_member").expect("valid"),
        None,
    )
    .await
    .expect("system role");
    let admin = create_system_role(
        &t.owner,
        &w.deps,
        &RoleName::parse("platform_admin").expect("valid"),
        None,
    )
    .await
    .expect("system role");
    add_system_role_parent(&t.owner, &w.deps, admin.id, member.id)
        .await
        .expect("admin inherits member");
    let err = add_system_role_parent(&t.owner, &w.deps, member.id, admin.id)
        .await
        .expect_err("a cycle");
    assert!(matches!(err, ServiceError::Conflict { .. }), "{err:?}");
    let permission = ensure_permission(&t.owner, &w.deps, "reports", "read")
        .await
        .expect("created");
    let again = ensure_permission(&t.owner, &w.deps, "reports", "read")
        .await
        .expect("found");
    assert_eq!(permission.id, again.id, "created once");

    if t.backend == tests::Backend::Postgres {
        let guest = create_system_role(
            &t.owner,
            &w.deps,
            &RoleName::parse("platform_guest").expect("valid"),
            None,
        )
        .await
        .expect("system role");
        let err = add_system_role_parent(&t.db, &w.deps, guest.id, member.id)
            .await
            .expect_err("the runtime role may not change the catalogue");
        assert!(
            matches!(&err, ServiceError::Db(e) if e.to_string().contains("row-level security")),
            "{err:?}"
        );
        let err = create_system_role(
            &t.db,
            &w.deps,
            &RoleName::parse("rogue").expect("valid"),
            None,
        )
        .await
        .expect_err("the runtime role may not add a system role");
        assert!(
            matches!(&err, ServiceError::Db(e) if e.to_string().contains("row-level security")),
            "{err:?}"
        );
    }
}
