//! Tenancy: tenants, memberships, and the tenant context every tenant-scoped
//! operation runs in.

mod context;
mod invitations;
mod memberships;
mod teams;
mod tenants;

pub use context::{TenantCtx, TenantTxn, tenant_schema_name};
pub(crate) use context::{lock_tenant, set_row_security_context};
pub use invitations::{
    InvitationToken, NewInvitation, accept_invitation, invite, revoke_invitation,
};
pub use memberships::{add_member, list_members, list_user_tenants, remove_member};
pub(crate) use memberships::{find_membership, insert_membership};
pub(crate) use teams::find_team;
pub use teams::{
    add_team_member, create_team, move_team, remove_team_member, team_ancestors, team_descendants,
};
pub use tenants::{NewTenant, create_tenant, find_tenant_by_slug};
