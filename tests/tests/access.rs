//! RBAC, teams and invitations on every backend.

use chrono::{Duration, TimeZone, Utc};
use entity::access::roles;
use entity::tenancy::invitations;
use entity::tenancy::memberships::MembershipRole;
use entity::tenancy::team_members::TeamRole;
use entity::tenancy::tenants;
use entity::{TeamId, UserId};
use sea_orm::{ActiveModelTrait, ActiveValue::Set};
use service::access::{
    NewAssignment, NewDenyPolicy, Scope, TimeWindow, add_role_parent, assign_role,
    create_deny_policy, create_role, create_system_role, effective_permissions, grant_permission,
    has_permission, revoke_assignment, users_with_permission,
};
use service::input::{Email, RoleName, TeamName};
use service::tenancy::{
    NewInvitation, TenantCtx, accept_invitation, add_member, add_team_member, create_team, invite,
    list_members, move_team, revoke_invitation, team_ancestors, team_descendants,
};
use service::{Deps, ManualClock, ServiceError};
use std::sync::Arc;
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
    teams_tree_queries_and_moves_keep_it_acyclic,
    invitations_one_pending_per_email_accept_and_revoke,
    seed_002_scenario_tenants_see_only_their_own,
);

struct World {
    deps: Deps,
    clock: Arc<ManualClock>,
    alice: UserId,
    bob: UserId,
    acme: tenants::Model,
    owner: TenantCtx,
}

async fn world(t: &TestDb) -> World {
    let (deps, clock) = fixtures::deps();
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
    .expect("bob joins");
    World {
        deps,
        clock,
        alice: alice.id,
        bob: bob.id,
        acme,
        owner,
    }
}

async fn role(t: &TestDb, w: &World, name: &str, permissions: &[(&str, &str)]) -> roles::Model {
    let role = create_role(
        &t.db,
        &w.deps,
        &w.owner,
        &RoleName::parse(name).expect("valid"),
        None,
        &meta(),
    )
    .await
    .expect("role created");
    for (resource, action) in permissions {
        grant_permission(&t.db, &w.deps, &w.owner, role.id, resource, action, &meta())
            .await
            .expect("granted");
    }
    role
}

async fn give(
    t: &TestDb,
    w: &World,
    user: UserId,
    role: &roles::Model,
    scope: Scope,
) -> entity::access::role_assignments::Model {
    let input = NewAssignment {
        scope,
        ..NewAssignment::tenant_wide(user, role.id)
    };
    assign_role(&t.db, &w.deps, &w.owner, input, &meta())
        .await
        .expect("assigned")
}

async fn can(
    t: &TestDb,
    w: &World,
    user: UserId,
    resource: &str,
    action: &str,
    scope: Scope,
) -> bool {
    has_permission(&t.db, &w.deps, user, w.acme.id, resource, action, scope)
        .await
        .expect("checks")
}

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
    let err = has_permission(
        &t.db,
        &w.deps,
        w.alice,
        w.acme.id,
        "*",
        "run",
        Scope::Tenant,
    )
    .await;
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

async fn teams_chain(t: &TestDb, w: &World, names: &[&str]) -> Vec<TeamId> {
    let mut ids = Vec::new();
    for name in names {
        let team = create_team(
            &t.db,
            &w.deps,
            &w.owner,
            &TeamName::parse(name).expect("valid"),
            ids.last().copied(),
            &meta(),
        )
        .await
        .expect("team");
        ids.push(team.id);
    }
    ids
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
    let before = inspect::row_counts(&t.db).await;
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
    assert_eq!(inspect::row_counts(&t.db).await, before);
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
    let before = inspect::row_counts(&t.db).await;

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

    let after = inspect::row_counts(&t.db).await;
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
    let system = create_system_role(
        &t.db,
        &w.deps,
        &RoleName::parse("org_member").expect("valid"),
        None,
    )
    .await
    .expect("system role");
    service::access::grant_system_permission(&t.db, &w.deps, system.id, "organization", "read")
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

    let bob = effective_permissions(&t.db, &w.deps, w.bob, w.acme.id)
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
    let alice = effective_permissions(&t.db, &w.deps, w.alice, w.acme.id)
        .await
        .expect("lists");
    assert!(!alice.allows("agents", "run") && alice.allows("agents", "read"));

    let runners = users_with_permission(&t.db, &w.deps, w.acme.id, "agents", "run")
        .await
        .expect("lists");
    assert_eq!(runners, vec![w.bob], "alice is denied");
    let mut readers = users_with_permission(&t.db, &w.deps, w.acme.id, "organization", "read")
        .await
        .expect("lists");
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
            let effective = effective_permissions(&t.db, &w.deps, user, w.acme.id)
                .await
                .expect("lists");
            assert_eq!(
                effective.allows(resource, action),
                can(&t, &w, user, resource, action, Scope::Tenant).await
            );
        }
    }
}

async fn teams_tree_queries_and_moves_keep_it_acyclic(t: TestDb) {
    let w = world(&t).await;
    let chain = teams_chain(&t, &w, &["Company", "Engineering", "Platform", "Databases"]).await;
    let names = |teams: Vec<entity::tenancy::teams::Model>| {
        teams.into_iter().map(|t| t.name).collect::<Vec<_>>()
    };
    assert_eq!(
        names(
            team_ancestors(&t.db, &w.owner, chain[3])
                .await
                .expect("walks")
        ),
        vec!["Platform", "Engineering", "Company"]
    );
    assert_eq!(
        names(
            team_descendants(&t.db, &w.owner, chain[0])
                .await
                .expect("walks")
        ),
        vec!["Engineering", "Platform", "Databases"]
    );
    for (team, parent) in [
        (chain[1], chain[3]),
        (chain[0], chain[0]),
        (chain[0], chain[2]),
    ] {
        let err = move_team(&t.db, &w.deps, &w.owner, team, Some(parent), &meta())
            .await
            .expect_err("cycle");
        assert!(
            matches!(err, ServiceError::Conflict { entity: "team", .. }),
            "{err:?}"
        );
    }
    move_team(&t.db, &w.deps, &w.owner, chain[2], Some(chain[0]), &meta())
        .await
        .expect("moves up");
    assert_eq!(
        names(
            team_ancestors(&t.db, &w.owner, chain[3])
                .await
                .expect("walks")
        ),
        vec!["Platform", "Company"],
        "the subtree moved with it"
    );
    move_team(&t.db, &w.deps, &w.owner, chain[1], None, &meta())
        .await
        .expect("to the top");
    assert!(
        team_ancestors(&t.db, &w.owner, chain[1])
            .await
            .expect("walks")
            .is_empty()
    );
    add_team_member(
        &t.db,
        &w.deps,
        &w.owner,
        chain[2],
        w.bob,
        TeamRole::Member,
        &meta(),
    )
    .await
    .expect("joins");
    let err = add_team_member(
        &t.db,
        &w.deps,
        &w.owner,
        chain[2],
        w.bob,
        TeamRole::Admin,
        &meta(),
    )
    .await;
    assert!(matches!(err, Err(ServiceError::Conflict { .. })), "{err:?}");
    let dup = create_team(
        &t.db,
        &w.deps,
        &w.owner,
        &TeamName::parse("Platform").expect("valid"),
        None,
        &meta(),
    )
    .await;
    assert!(
        matches!(dup, Err(ServiceError::Conflict { entity: "team", .. })),
        "{dup:?}"
    );
}

async fn invitations_one_pending_per_email_accept_and_revoke(t: TestDb) {
    let w = world(&t).await;
    let member_role = role(&t, &w, "member", &[("docs", "read")]).await;
    let team = teams_chain(&t, &w, &["Engineering"]).await[0];
    let new_invitation = |email: &str| NewInvitation {
        email: Email::parse(email).expect("valid"),
        role_id: member_role.id,
        team_id: Some(team),
        valid_for: Duration::days(7),
    };
    let (first, token) = invite(
        &t.db,
        &w.deps,
        &w.owner,
        new_invitation("dana@example.com"),
        &meta(),
    )
    .await
    .expect("invites");
    assert!(
        !format!("{token:?}").contains(token.expose()),
        "Debug hides the token"
    );
    let err = invite(
        &t.db,
        &w.deps,
        &w.owner,
        new_invitation("DANA@example.com"),
        &meta(),
    )
    .await;
    assert!(
        matches!(
            err,
            Err(ServiceError::Conflict {
                entity: "invitation",
                ..
            })
        ),
        "{err:?}"
    );

    // The database itself refuses a second pending row, whatever the service does.
    let mut twin: invitations::ActiveModel = first.clone().into();
    twin.id = Set(entity::InvitationId(uuid::Uuid::from_u128(5)));
    twin.token_hash = Set(entity::TokenHash::new("0".repeat(64)));
    assert!(
        twin.insert(&t.db).await.is_err(),
        "unique (tenant_id, pending email)"
    );

    // Accepting: only the invited address, only once, only in time.
    let eve = fixtures::user(&t.db, &w.deps, "eve").await;
    let err = accept_invitation(&t.db, &w.deps, token.expose(), eve.id, &meta()).await;
    assert!(
        matches!(err, Err(ServiceError::Forbidden { .. })),
        "{err:?}"
    );
    let err = accept_invitation(&t.db, &w.deps, "inv_garbage", eve.id, &meta()).await;
    assert!(matches!(err, Err(ServiceError::InvalidToken)), "{err:?}");
    let dana = fixtures::user(&t.db, &w.deps, "dana").await;
    let membership = accept_invitation(&t.db, &w.deps, token.expose(), dana.id, &meta())
        .await
        .expect("accepts");
    assert_eq!(
        (membership.tenant_id, membership.role),
        (w.acme.id, MembershipRole::Member)
    );
    assert!(
        can(&t, &w, dana.id, "docs", "read", Scope::Tenant).await,
        "the invited role is assigned"
    );
    let members = list_members(&t.db, &w.owner).await.expect("lists");
    assert!(members.iter().any(|m| m.user_id == dana.id));
    let again = accept_invitation(&t.db, &w.deps, token.expose(), dana.id, &meta()).await;
    assert!(
        matches!(again, Err(ServiceError::Conflict { .. })),
        "{again:?}"
    );

    // Revoked invitations free the email for a new one; expired ones cannot be used.
    let (second, _) = invite(
        &t.db,
        &w.deps,
        &w.owner,
        new_invitation("finn@example.com"),
        &meta(),
    )
    .await
    .expect("invites");
    revoke_invitation(&t.db, &w.deps, &w.owner, second.id, &meta())
        .await
        .expect("revokes");
    let (_, late) = invite(
        &t.db,
        &w.deps,
        &w.owner,
        new_invitation("finn@example.com"),
        &meta(),
    )
    .await
    .expect("reinvites");
    let finn = fixtures::user(&t.db, &w.deps, "finn").await;
    w.clock.advance(Duration::days(8));
    let err = accept_invitation(&t.db, &w.deps, late.expose(), finn.id, &meta()).await;
    assert!(
        matches!(
            err,
            Err(ServiceError::Expired {
                what: "invitation",
                ..
            })
        ),
        "{err:?}"
    );
    invite(
        &t.db,
        &w.deps,
        &w.owner,
        new_invitation("finn@example.com"),
        &meta(),
    )
    .await
    .expect("an expired invitation does not block a new one");
}

async fn seed_002_scenario_tenants_see_only_their_own(t: TestDb) {
    use service::tenancy::list_user_tenants;
    let report = seeder::run(
        &seeder::SeedOptions {
            database_url: Some(t.url.clone()),
            ..seeder::SeedOptions::default()
        },
        migration::environment::AppEnv::Test,
        &t.target(),
    )
    .await
    .expect("seeds");
    let id = |email: &str| {
        report
            .users
            .iter()
            .find(|u| u.email == email)
            .expect("fixture user")
            .id
    };
    let tenant = |slug: &str| {
        report
            .tenants
            .iter()
            .find(|t| t.slug == slug)
            .expect("fixture tenant")
            .id
    };
    let (alice, bob, charlie) = (
        id("alice@acme.com"),
        id("bob@acme.com"),
        id("charlie@techstartup.io"),
    );
    let (acme, startup) = (tenant("acme"), tenant("techstartup"));
    // The fixtures' own time, so their sessions are still alive.
    let (deps, _) = Deps::deterministic(
        service::ServiceConfig::default(),
        seeder::fixture_epoch() + Duration::hours(1),
        uuid::Uuid::from_u128(0x5eed),
        1,
    );

    let slugs = |rows: Vec<(entity::tenancy::memberships::Model, tenants::Model)>| {
        rows.into_iter().map(|(_, t)| t.slug).collect::<Vec<_>>()
    };
    assert_eq!(
        slugs(list_user_tenants(&t.db, alice).await.expect("lists")),
        vec!["acme"],
        "Alice sees only Acme"
    );
    assert_eq!(
        slugs(list_user_tenants(&t.db, charlie).await.expect("lists")),
        vec!["techstartup"]
    );
    let err = TenantCtx::for_member(&t.db, startup, bob).await;
    assert!(
        matches!(err, Err(ServiceError::Forbidden { .. })),
        "Bob cannot enter Tech Startup"
    );
    let alice_ctx = TenantCtx::for_member(&t.db, acme, alice)
        .await
        .expect("member");
    let events = service::audit::list_tenant_events(&t.db, &alice_ctx, 500)
        .await
        .expect("lists");
    assert!(
        events.iter().all(|e| e.tenant_id == Some(acme)),
        "no Tech Startup events in Acme's trail"
    );

    // Users see only their own sessions.
    let sessions = service::identity::list_sessions(&t.db, &deps, alice)
        .await
        .expect("lists");
    assert!(!sessions.is_empty() && sessions.iter().all(|s| s.user_id == alice));

    // Permission-based decisions follow the seeded roles and policy.
    let check = |user, tenant, resource: &'static str, action: &'static str, scope| {
        let (db, deps) = (t.db.clone(), deps.clone());
        async move {
            has_permission(&db, &deps, user, tenant, resource, action, scope)
                .await
                .expect("checks")
        }
    };
    assert!(
        check(alice, acme, "members", "update", Scope::Tenant).await,
        "org_admin manages members"
    );
    assert!(
        !check(bob, acme, "members", "update", Scope::Tenant).await,
        "org_member does not"
    );
    assert!(check(alice, acme, "agents", "run", Scope::Tenant).await);
    assert!(
        !check(alice, acme, "agents", "delete", Scope::Tenant).await,
        "the deny policy beats org_admin"
    );
    assert!(
        !check(bob, acme, "agents", "run", Scope::Tenant).await,
        "bob runs agents only in Engineering"
    );
    assert!(
        !check(charlie, acme, "organization", "read", Scope::Tenant).await,
        "charlie has nothing in Acme"
    );
    assert!(check(charlie, startup, "organization", "update", Scope::Tenant).await);
}
