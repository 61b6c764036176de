//! The audit trail: a catalogue of event types and the append-only log.

pub mod audit_event_types;
pub mod audit_logs;
