//! The access-control part of a profile: roles, teams, assignments, deny policies
//! invitations and API keys, loaded through `service` like everything else.

use crate::profile::Profile;
use crate::{SeedError, fixture_error};
use chrono::Duration;
use entity::{RoleId, TeamId, TenantId, UserId};
use sea_orm::{ConnectionTrait, TransactionTrait};
use service::access::{
    NewAssignment, NewDenyPolicy, Scope, TimeWindow, add_role_parent, add_system_role_parent,
    assign_role, create_deny_policy, create_role, create_system_role, grant_permission,
    grant_system_permission,
};
use service::identity::{NewApiKey, create_api_key};
use service::input::{Email, RoleName, TeamName};
use service::tenancy::{NewInvitation, TenantCtx, add_team_member, create_team, invite};
use service::{Deps, ManualClock, RequestMeta};
use std::collections::{BTreeMap, HashMap};

/// What the seeder prints about access.
#[derive(Debug, Default)]
pub struct AccessReport {
    pub roles: Vec<RoleLine>,
    /// Each team as `Parent / Child` paths, per tenant.
    pub teams: Vec<(&'static str, String)>,
    pub invitations: Vec<InvitationLine>,
    pub api_keys: Vec<ApiKeyLine>,
    /// email -> "role" or "role@team" or "role (07:00-19:00)"
    pub assignments: BTreeMap<&'static str, Vec<String>>,
}

#[derive(Debug)]
pub struct RoleLine {
    /// `None` for a system role.
    pub tenant: Option<&'static str>,
    pub name: &'static str,
    pub permissions: Vec<String>,
    pub parents: Vec<&'static str>,
}

#[derive(Debug)]
pub struct InvitationLine {
    pub tenant: &'static str,
    pub email: &'static str,
    pub role: &'static str,
    /// Deterministic for a given `--seed`: usable in a local accept flow.
    pub token: String,
}

#[derive(Debug)]
pub struct ApiKeyLine {
    pub tenant: &'static str,
    pub name: &'static str,
    pub scopes: Vec<String>,
    /// The key in the clear, deterministic for a given `--seed`: these are demo
    /// credentials, printed so they can be tried at once.
    pub key: String,
}

/// The tenants the profile created: slug -> (id, owner).
pub(crate) type Tenants<'a> = HashMap<&'a str, (TenantId, UserId)>;

pub(crate) async fn load_access<C>(
    db: &C,
    deps: &Deps,
    clock: &ManualClock,
    profile: &Profile,
    tenants: &Tenants<'_>,
    users: &HashMap<&str, UserId>,
) -> Result<AccessReport, SeedError>
where
    C: ConnectionTrait + TransactionTrait,
{
    let meta = RequestMeta::system();
    let tick = || clock.advance(Duration::seconds(1));
    let mut report = AccessReport::default();
    let mut contexts: HashMap<&str, TenantCtx> = HashMap::new();
    for (slug, (tenant, owner)) in tenants {
        let ctx = TenantCtx::for_member(db, *tenant, *owner)
            .await
            .map_err(fixture_error(format!("tenant {slug}")))?;
        contexts.insert(slug, ctx);
    }

    // Roles: a tenant's own role of a name wins over the system role of that name.
    let mut roles: HashMap<(Option<&str>, &str), RoleId> = HashMap::new();
    let resolve = |roles: &HashMap<(Option<&str>, &str), RoleId>, tenant: &str, name: &str| {
        roles
            .get(&(Some(tenant), name))
            .or_else(|| roles.get(&(None, name)))
            .copied()
    };
    for fixture in profile.roles {
        if fixture.tenant.is_some_and(|t| !tenants.contains_key(t)) {
            continue;
        }
        let on_err = fixture_error(format!("role {}", fixture.name));
        let name = RoleName::parse(fixture.name).map_err(&on_err)?;
        let role = match fixture.tenant {
            None => create_system_role(db, deps, &name, Some(fixture.description)).await,
            Some(t) => {
                create_role(
                    db,
                    deps,
                    &contexts[t],
                    &name,
                    Some(fixture.description),
                    &meta,
                )
                .await
            }
        }
        .map_err(&on_err)?;
        for (resource, action) in fixture.permissions {
            match fixture.tenant {
                None => grant_system_permission(db, deps, role.id, resource, action).await,
                Some(t) => {
                    grant_permission(db, deps, &contexts[t], role.id, resource, action, &meta).await
                }
            }
            .map_err(&on_err)?;
        }
        for parent in fixture.parents {
            let parent_id = match fixture.tenant {
                None => roles.get(&(None, *parent)).copied(),
                Some(t) => resolve(&roles, t, parent),
            }
            .expect("fixture parents are listed before their children");
            match fixture.tenant {
                None => add_system_role_parent(db, deps, role.id, parent_id).await,
                Some(t) => add_role_parent(db, deps, &contexts[t], role.id, parent_id, &meta).await,
            }
            .map_err(&on_err)?;
        }
        roles.insert((fixture.tenant, fixture.name), role.id);
        report.roles.push(RoleLine {
            tenant: fixture.tenant,
            name: fixture.name,
            permissions: fixture
                .permissions
                .iter()
                .map(|(r, a)| format!("{r}:{a}"))
                .collect(),
            parents: fixture.parents.to_vec(),
        });
        tick();
    }

    let mut teams: HashMap<(&str, &str), (TeamId, String)> = HashMap::new();
    for fixture in profile
        .teams
        .iter()
        .filter(|t| tenants.contains_key(t.tenant))
    {
        let on_err = fixture_error(format!("team {}", fixture.name));
        let parent = fixture.parent.map(|p| teams[&(fixture.tenant, p)].clone());
        let team = create_team(
            db,
            deps,
            &contexts[fixture.tenant],
            &TeamName::parse(fixture.name).map_err(&on_err)?,
            parent.as_ref().map(|(id, _)| *id),
            &meta,
        )
        .await
        .map_err(&on_err)?;
        let path = match parent {
            Some((_, parent_path)) => format!("{parent_path} / {}", fixture.name),
            None => fixture.name.to_owned(),
        };
        report.teams.push((fixture.tenant, path.clone()));
        teams.insert((fixture.tenant, fixture.name), (team.id, path));
        tick();
    }

    let in_profile =
        |tenant: &str, email: &str| tenants.contains_key(tenant) && users.contains_key(email);
    for fixture in profile
        .team_members
        .iter()
        .filter(|m| in_profile(m.tenant, m.email))
    {
        let (team, _) = &teams[&(fixture.tenant, fixture.team)];
        add_team_member(
            db,
            deps,
            &contexts[fixture.tenant],
            *team,
            users[fixture.email],
            fixture.role,
            &meta,
        )
        .await
        .map_err(fixture_error(format!("team member {}", fixture.email)))?;
        tick();
    }

    for fixture in profile
        .assignments
        .iter()
        .filter(|a| in_profile(a.tenant, a.email))
    {
        let on_err = fixture_error(format!("assignment {} {}", fixture.email, fixture.role));
        let role_id = resolve(&roles, fixture.tenant, fixture.role).expect("fixture roles exist");
        let scope = match fixture.team {
            Some(team) => Scope::Team(teams[&(fixture.tenant, team)].0),
            None => Scope::Tenant,
        };
        let window = match fixture.window {
            Some((start, end)) => Some(TimeWindow::parse(start, end).map_err(&on_err)?),
            None => None,
        };
        let input = NewAssignment {
            scope,
            window,
            ..NewAssignment::tenant_wide(users[fixture.email], role_id)
        };
        assign_role(db, deps, &contexts[fixture.tenant], input, &meta)
            .await
            .map_err(&on_err)?;
        let mut label = fixture.role.to_owned();
        if let Some(team) = fixture.team {
            label.push_str(&format!("@{team}"));
        }
        if let Some((start, end)) = fixture.window {
            label.push_str(&format!(" ({start}-{end} UTC)"));
        }
        report
            .assignments
            .entry(fixture.email)
            .or_default()
            .push(label);
        tick();
    }

    for fixture in profile
        .policies
        .iter()
        .filter(|p| tenants.contains_key(p.tenant))
    {
        let input = NewDenyPolicy {
            name: fixture.name.to_owned(),
            resource: fixture.resource.to_owned(),
            action: fixture.action.to_owned(),
            user_id: None,
            role_id: fixture
                .role
                .map(|r| resolve(&roles, fixture.tenant, r).expect("fixture roles exist")),
        };
        create_deny_policy(db, deps, &contexts[fixture.tenant], input, &meta)
            .await
            .map_err(fixture_error(format!("policy {}", fixture.name)))?;
        tick();
    }

    for fixture in profile
        .invitations
        .iter()
        .filter(|i| tenants.contains_key(i.tenant))
    {
        let on_err = fixture_error(format!("invitation {}", fixture.email));
        let input = NewInvitation {
            email: Email::parse(fixture.email).map_err(&on_err)?,
            role_id: resolve(&roles, fixture.tenant, fixture.role).expect("fixture roles exist"),
            team_id: fixture.team.map(|t| teams[&(fixture.tenant, t)].0),
            valid_for: Duration::days(14),
        };
        let (_, token) = invite(db, deps, &contexts[fixture.tenant], input, &meta)
            .await
            .map_err(&on_err)?;
        report.invitations.push(InvitationLine {
            tenant: fixture.tenant,
            email: fixture.email,
            role: fixture.role,
            token: token.expose().to_owned(),
        });
        tick();
    }

    for fixture in profile
        .api_keys
        .iter()
        .filter(|k| tenants.contains_key(k.tenant))
    {
        let input = NewApiKey {
            name: fixture.name.to_owned(),
            scopes: fixture.scopes.iter().map(|s| (*s).to_owned()).collect(),
            expires_at: None,
        };
        let issued = create_api_key(db, deps, &contexts[fixture.tenant], input, &meta)
            .await
            .map_err(fixture_error(format!("API key {}", fixture.name)))?;
        report.api_keys.push(ApiKeyLine {
            tenant: fixture.tenant,
            name: fixture.name,
            scopes: issued.key.scopes,
            key: issued.secret.expose().to_owned(),
        });
        tick();
    }
    Ok(report)
}
