//! Tenants and who belongs to them.

pub mod memberships;
pub mod tenants;
