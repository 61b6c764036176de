//! The audit trail: a catalogue of event types, the append-only log and the heads of
//! its hash chains.

pub mod audit_chain_heads;
pub mod audit_event_types;
pub mod audit_logs;
pub mod chain;
