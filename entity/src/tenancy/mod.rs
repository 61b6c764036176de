//! Tenants and who belongs to them.

pub mod invitations;
pub mod memberships;
pub mod team_members;
pub mod teams;
pub mod tenants;
