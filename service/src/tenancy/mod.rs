//! Tenancy: tenants, memberships, and the tenant context every tenant-scoped
//! operation runs in.

mod context;
mod memberships;
mod tenants;

pub use context::TenantCtx;
pub use memberships::{add_member, list_members, list_user_tenants, remove_member};
pub use tenants::{NewTenant, create_tenant, find_tenant_by_slug};
