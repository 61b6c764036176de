//! Teams, invitations and the multi-tenant agent scenario of the demo data, on every backend.

use chrono::Duration;
use entity::tenancy::invitations;
use entity::tenancy::memberships::MembershipRole;
use entity::tenancy::team_members::TeamRole;
use entity::tenancy::tenants;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter,
};
use service::access::{Scope, has_permission};
use service::input::{Email, TeamName};
use service::tenancy::{
    NewInvitation, TenantCtx, accept_invitation, add_team_member, create_team, invite,
    list_members, move_team, remove_team_member, revoke_invitation, team_ancestors,
    team_descendants,
};
use service::{Deps, ServiceError};
use tests::TestDb;
use tests::access_world::{can, role, teams_chain, world};
use tests::fixtures::{self, meta};

tests::backend_tests!(
    Migrated: teams_tree_queries_and_moves_keep_it_acyclic,
    teams_remove_member_takes_them_out_and_refuses_strangers,
    invitations_one_pending_per_email_accept_and_revoke,
    agent_saas_tenants_see_only_their_own,
);

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
    // The database computes it; the copy must not carry one.
    twin.pending_email = sea_orm::ActiveValue::NotSet;
    let twin = twin.insert(&t.owner).await;
    assert!(
        matches!(
            twin.as_ref().map_err(|e| e.sql_err()),
            Err(Some(sea_orm::SqlErr::UniqueConstraintViolation(_)))
        ),
        "unique (tenant_id, pending email): {twin:?}"
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

async fn agent_saas_tenants_see_only_their_own(t: TestDb) {
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
        !events.is_empty() && events.iter().all(|e| e.tenant_id == Some(acme)),
        "Acme's trail has events, none of Tech Startup's"
    );

    // Users see only their own sessions.
    let sessions = service::identity::list_sessions(&t.db, &deps, alice)
        .await
        .expect("lists");
    assert!(!sessions.is_empty() && sessions.iter().all(|s| s.user_id == alice));

    // Permission-based decisions follow the seeded roles and policy.
    // Each tenant's owner asks; the answers are about the user named.
    let charlie_ctx = TenantCtx::for_member(&t.db, startup, charlie)
        .await
        .expect("member");
    assert!(
        check(
            &t.db,
            &deps,
            &alice_ctx,
            alice,
            "members",
            "update",
            Scope::Tenant
        )
        .await,
        "org_admin manages members"
    );
    assert!(
        !check(
            &t.db,
            &deps,
            &alice_ctx,
            bob,
            "members",
            "update",
            Scope::Tenant
        )
        .await,
        "org_member does not"
    );
    assert!(
        check(
            &t.db,
            &deps,
            &alice_ctx,
            alice,
            "agents",
            "run",
            Scope::Tenant
        )
        .await
    );
    assert!(
        !check(
            &t.db,
            &deps,
            &alice_ctx,
            alice,
            "agents",
            "delete",
            Scope::Tenant
        )
        .await,
        "the deny policy beats org_admin"
    );
    assert!(
        !check(
            &t.db,
            &deps,
            &alice_ctx,
            bob,
            "agents",
            "run",
            Scope::Tenant
        )
        .await,
        "bob runs agents only in Engineering"
    );
    assert!(
        !check(
            &t.db,
            &deps,
            &alice_ctx,
            charlie,
            "organization",
            "read",
            Scope::Tenant
        )
        .await,
        "charlie has nothing in Acme"
    );
    assert!(
        check(
            &t.db,
            &deps,
            &charlie_ctx,
            charlie,
            "organization",
            "update",
            Scope::Tenant
        )
        .await
    );
}

async fn check(
    db: &sea_orm::DatabaseConnection,
    deps: &service::Deps,
    asker: &TenantCtx,
    user: entity::UserId,
    resource: &str,
    action: &str,
    scope: Scope,
) -> bool {
    let txn = asker.begin(db).await.expect("begins");
    let answer = has_permission(&txn, deps, user, resource, action, scope)
        .await
        .expect("checks");
    txn.commit().await.expect("commits");
    answer
}

async fn teams_remove_member_takes_them_out_and_refuses_strangers(t: TestDb) {
    let w = world(&t).await;
    let chain = teams_chain(&t, &w, &["Company", "Engineering"]).await;
    add_team_member(
        &t.db,
        &w.deps,
        &w.owner,
        chain[1],
        w.bob,
        TeamRole::Member,
        &meta(),
    )
    .await
    .expect("joins");
    let as_bob = TenantCtx::for_member(&t.db, w.acme.id, w.bob)
        .await
        .expect("member");
    let err = remove_team_member(&t.db, &w.deps, &as_bob, chain[1], w.bob, &meta())
        .await
        .expect_err("members do not manage teams");
    assert!(matches!(err, ServiceError::Forbidden { .. }), "{err:?}");
    remove_team_member(&t.db, &w.deps, &w.owner, chain[1], w.bob, &meta())
        .await
        .expect("removes");
    let members = entity::tenancy::team_members::Entity::find()
        .filter(entity::tenancy::team_members::Column::TeamId.eq(chain[1]))
        .count(&t.owner)
        .await
        .expect("count");
    assert_eq!(members, 0, "bob left Engineering");
    let err = remove_team_member(&t.db, &w.deps, &w.owner, chain[1], w.bob, &meta())
        .await
        .expect_err("not a member any more");
    assert!(matches!(err, ServiceError::NotFound { .. }), "{err:?}");
}
