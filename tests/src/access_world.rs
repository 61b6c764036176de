//! Acme with Alice (owner) and Bob (member), and helpers to give them roles: the
//! shared set-up of the access, teams and invitations tests.

use crate::TestDb;
use crate::fixtures::{self, meta};
use entity::access::roles;
use entity::tenancy::memberships::MembershipRole;
use entity::tenancy::tenants;
use entity::{TeamId, UserId};
use service::access::{
    NewAssignment, Scope, assign_role, create_role, grant_permission, has_permission,
};
use service::input::{RoleName, TeamName};
use service::tenancy::{TenantCtx, add_member, create_team};
use service::{Deps, ManualClock};
use std::sync::Arc;

pub struct World {
    pub deps: Deps,
    pub clock: Arc<ManualClock>,
    pub alice: UserId,
    pub bob: UserId,
    pub acme: tenants::Model,
    pub owner: TenantCtx,
}

pub async fn world(t: &TestDb) -> World {
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

pub async fn role(t: &TestDb, w: &World, name: &str, permissions: &[(&str, &str)]) -> roles::Model {
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

pub async fn give(
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

pub async fn can(
    t: &TestDb,
    w: &World,
    user: UserId,
    resource: &str,
    action: &str,
    scope: Scope,
) -> bool {
    let txn = w.owner.begin(&t.db).await.expect("the owner's transaction");
    let answer = has_permission(&txn, &w.deps, user, resource, action, scope)
        .await
        .expect("checks");
    txn.commit().await.expect("commits");
    answer
}

/// A chain of teams, each under the previous one.
pub async fn teams_chain(t: &TestDb, w: &World, names: &[&str]) -> Vec<TeamId> {
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
