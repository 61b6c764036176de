//! The relations the entities declare load related rows on every backend, composite
//! ones included: a join on `(tenant_id, x_id)` finds the row of the same tenant and
//! never one of another tenant that happens to share the id. Rows are read back
//! as the schema owner, so row-level security (tested elsewhere) hides nothing here.

use chrono::Duration;
use entity::access::{role_assignments, role_permissions, roles};
use entity::tenancy::{invitations, memberships, team_members, teams};
use entity::{RoleAssignmentId, TeamId};
use sea_orm::{EntityTrait, QueryOrder};
use service::access::Scope;
use service::input::Email;
use service::tenancy::{NewInvitation, TenantCtx, add_team_member, invite};
use std::collections::BTreeMap;
use tests::TestDb;
use tests::access_world::{give, role, teams_chain, world};
use tests::fixtures::{self, meta};

tests::backend_tests!(
    Migrated: composite_relations_load_the_row_of_the_same_tenant,
    team_parent_and_children_load_through_the_self_relation,
);

async fn composite_relations_load_the_row_of_the_same_tenant(t: TestDb) {
    let w = world(&t).await;
    let chain = teams_chain(&t, &w, &["Company", "Engineering", "Platform"]).await;
    let agent = role(&t, &w, "agent_user", &[("agents", "run")]).await;
    let in_team = give(&t, &w, w.bob, &agent, Scope::Team(chain[1])).await;
    let tenant_wide = give(&t, &w, w.alice, &agent, Scope::Tenant).await;

    // Another tenant holds a record-scoped assignment whose record id is, by
    // accident, the id of Acme's Engineering team: a join on `scope_id` alone would
    // hand Globex Acme's team.
    let carol = fixtures::user(&t.db, &w.deps, "carol").await;
    let globex = fixtures::tenant(&t.db, &w.deps, "globex", &carol).await;
    let globex_owner = TenantCtx::for_member(&t.db, globex.id, carol.id)
        .await
        .expect("owner");
    let globex_role = service::access::create_role(
        &t.db,
        &w.deps,
        &globex_owner,
        &service::input::RoleName::parse("auditor").expect("valid"),
        None,
        &meta(),
    )
    .await
    .expect("role");
    let lookalike = service::access::assign_role(
        &t.db,
        &w.deps,
        &globex_owner,
        service::access::NewAssignment {
            scope: Scope::Record(chain[1].into_uuid()),
            ..service::access::NewAssignment::tenant_wide(carol.id, globex_role.id)
        },
        &meta(),
    )
    .await
    .expect("assigned");

    let team_of: BTreeMap<RoleAssignmentId, Option<TeamId>> = role_assignments::Entity::find()
        .find_also_related(teams::Entity)
        .all(&t.owner)
        .await
        .expect("joins role_assignments to teams")
        .into_iter()
        .map(|(assignment, team)| (assignment.id, team.map(|team| team.id)))
        .collect();
    assert_eq!(team_of[&in_team.id], Some(chain[1]), "a team scope's team");
    assert_eq!(team_of[&tenant_wide.id], None, "a tenant scope has no team");
    assert_eq!(
        team_of[&lookalike.id], None,
        "the join also matches the tenant, so no team of another tenant"
    );

    let holder = role_assignments::Entity::find_by_id(in_team.id)
        .find_also_related(memberships::Entity)
        .one(&t.owner)
        .await
        .expect("joins to memberships")
        .and_then(|(_, membership)| membership)
        .expect("the assignment's membership");
    assert_eq!(
        (holder.tenant_id, holder.user_id),
        (w.acme.id, w.bob),
        "(tenant_id, user_id) -> memberships"
    );

    add_team_member(
        &t.db,
        &w.deps,
        &w.owner,
        chain[2],
        w.bob,
        entity::tenancy::team_members::TeamRole::Member,
        &meta(),
    )
    .await
    .expect("bob joins Platform");
    let placements = team_members::Entity::find()
        .find_also_related(teams::Entity)
        .all(&t.owner)
        .await
        .expect("joins team_members to teams");
    assert_eq!(placements.len(), 1);
    assert_eq!(
        placements[0].1.as_ref().map(|team| team.name.as_str()),
        Some("Platform")
    );
    let members_of_platform = teams::Entity::find_by_id(chain[2])
        .find_with_related(team_members::Entity)
        .all(&t.owner)
        .await
        .expect("joins teams to their members");
    assert_eq!(members_of_platform.len(), 1);
    assert_eq!(
        members_of_platform[0]
            .1
            .iter()
            .map(|member| member.user_id)
            .collect::<Vec<_>>(),
        vec![w.bob]
    );

    let (_, token) = invite(
        &t.db,
        &w.deps,
        &w.owner,
        NewInvitation {
            email: Email::parse("dan@example.com").expect("valid"),
            role_id: agent.id,
            team_id: Some(chain[0]),
            valid_for: Duration::days(7),
        },
        &meta(),
    )
    .await
    .expect("invited");
    assert!(!token.expose().is_empty());
    let (invitation, team) = invitations::Entity::find()
        .find_also_related(teams::Entity)
        .one(&t.owner)
        .await
        .expect("joins invitations to teams")
        .expect("the invitation");
    assert_eq!(team.map(|team| team.name), Some("Company".to_owned()));
    assert_eq!(
        invitation.pending_email.as_deref(),
        Some("dan@example.com"),
        "the database computes the pending email"
    );

    let granted = roles::Entity::find_by_id(agent.id)
        .find_with_related(entity::access::permissions::Entity)
        .all(&t.owner)
        .await
        .expect("joins roles to permissions through role_permissions");
    assert_eq!(
        granted[0]
            .1
            .iter()
            .map(|p| (p.resource.as_str(), p.action.as_str()))
            .collect::<Vec<_>>(),
        vec![("agents", "run")]
    );
    assert_eq!(
        role_permissions::Entity::find()
            .find_also_related(roles::Entity)
            .all(&t.owner)
            .await
            .expect("joins role_permissions to roles")
            .into_iter()
            .filter_map(|(_, role)| role.map(|r| r.name))
            .collect::<Vec<_>>(),
        vec!["agent_user".to_owned()]
    );
}

async fn team_parent_and_children_load_through_the_self_relation(t: TestDb) {
    let w = world(&t).await;
    let chain = teams_chain(&t, &w, &["Company", "Engineering", "Platform"]).await;
    let loaded = teams::Entity::load()
        .with(teams::Relation::Parent)
        .with(teams::Relation::Children)
        .order_by_asc(teams::Column::CreatedAt)
        .all(&t.owner)
        .await
        .expect("loads teams with parent and children");
    let by_id: BTreeMap<TeamId, &teams::ModelEx> =
        loaded.iter().map(|team| (team.id, team)).collect();
    let parent_name = |id: TeamId| by_id[&id].parent.as_ref().map(|parent| parent.name.clone());
    let child_names = |id: TeamId| {
        by_id[&id]
            .children
            .iter()
            .map(|child| child.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(parent_name(chain[0]), None);
    assert_eq!(parent_name(chain[1]), Some("Company".to_owned()));
    assert_eq!(parent_name(chain[2]), Some("Engineering".to_owned()));
    assert_eq!(child_names(chain[0]), vec!["Engineering"]);
    assert_eq!(child_names(chain[1]), vec!["Platform"]);
    assert!(child_names(chain[2]).is_empty());
}
