//! Access control: hierarchical RBAC with scoped, expiring, time-windowed assignments
//! and deny policies (seeds 001 and 002).
//!
//! Managing roles, assignments and policies of a tenant takes a tenant owner or admin
//! (`TenantCtx`). System roles, shared by every tenant, are managed by trusted
//! platform code through the `*_system_*` functions, which take no tenant context.

mod assignments;
mod check;
mod policies;
mod roles;

pub(crate) use assignments::insert_assignment;
pub use assignments::{NewAssignment, TimeWindow, assign_role, revoke_assignment};
pub use check::{
    EffectivePermissions, Scope, effective_permissions, has_permission, users_with_permission,
};
pub use policies::{NewDenyPolicy, create_deny_policy, delete_policy};
pub(crate) use roles::usable_role;
pub use roles::{
    add_role_parent, add_system_role_parent, create_role, create_system_role, ensure_permission,
    grant_permission, grant_system_permission, remove_role_parent, revoke_permission,
};
