//! The typed model of every table, one module per table, grouped by domain.
//!
//! Entities declare tables and nothing else: no queries, no validation (that is
//! `service`'s job), and no invariants in hooks, because bulk inserts skip hooks.
//! The schema itself is owned by the `migration` crate; a test checks the two agree.

pub mod access;
pub mod agents;
pub mod audit;
pub mod billing;
pub mod compliance;
pub mod identity;
pub mod ids;
pub mod records;
pub mod rental;
pub mod secret;
pub mod tenancy;

pub use ids::*;
pub use secret::{PasswordHash, PublicKeyBytes, SealedBytes, TokenHash};
