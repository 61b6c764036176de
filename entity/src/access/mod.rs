//! Access control: permissions, roles and their inheritance, assignments, deny policies.

pub mod permissions;
pub mod policies;
pub mod role_assignments;
pub mod role_inheritance;
pub mod role_permissions;
pub mod roles;
