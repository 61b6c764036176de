//! The library applications link: identity, tenancy and audit operations over any
//! SeaORM connection, with typed errors and an audit row committed with every change.
//!
//! Conventions, the same in every module:
//! - an operation is `async fn verb_object(db, deps, [ctx,] input, meta)`;
//! - `db` is `&impl ConnectionTrait + TransactionTrait`: pass a connection, or your own
//!   transaction to compose several operations (ours then nest as savepoints);
//! - `deps` ([`Deps`]) carries the clock, id source, randomness and configuration;
//! - input arrives parsed into the newtypes of [`input`], so nothing invalid reaches SQL;
//! - every tenant-owned query is scoped by a [`tenancy::TenantCtx`].

pub mod access;
pub mod agents;
pub mod audit;
pub mod billing;
pub mod compliance;
pub mod connection;
pub mod crypto;
pub mod deps;
pub mod environment;
pub mod error;
pub mod identity;
pub mod input;
pub mod records;
pub mod rental;
pub mod request;
mod sql;
pub mod tenancy;
mod transaction;

pub use deps::{
    AgentQueuePolicy, ApiKeyEnvironment, Clock, Deps, IdSource, ManualClock, RandomSource,
    RecordsPolicy, ServiceConfig, ThrottlePolicy,
};
pub use error::ServiceError;
pub use request::RequestMeta;
pub use transaction::begin_write;

pub type Result<T, E = ServiceError> = std::result::Result<T, E>;
