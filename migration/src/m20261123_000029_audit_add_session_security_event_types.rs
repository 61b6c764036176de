//! Audit event types of two-step sign-in, step-up, anomaly detection and the account
//! changes that end a user's other sessions. No token, code or password is ever in a
//! row's details.

use crate::schema_helpers::{add_audit_event_types, remove_unused_audit_event_types};
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// (event_type, category, description)
const EVENTS: &[(&str, &str, &str)] = &[
    (
        "mfa_challenge_issued",
        "authentication",
        "Password accepted; a second factor is required to finish signing in",
    ),
    (
        "reauthenticated",
        "authentication",
        "User proved their identity again within a session (step-up)",
    ),
    (
        "step_up_required",
        "security",
        "Sensitive operation refused until the session re-authenticates",
    ),
    (
        "session_anomaly_detected",
        "security",
        "New device, impossible travel or a burst of failed sign-ins detected",
    ),
    ("password_changed", "security", "Password changed"),
    (
        "other_sessions_revoked",
        "security",
        "A user's other sessions revoked after a security change",
    ),
    (
        "user_deactivated",
        "user_management",
        "User account deactivated",
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        add_audit_event_types(manager, EVENTS).await
    }

    /// Removes the event types no audit row uses; the others stay, with the rows that
    /// name them. Applying this migration again after such a rollback fails on the
    /// kept types: roll it back only on the way down past
    /// `m20261122_000009_audit_create_audit_logs`, or restore a backup.
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        remove_unused_audit_event_types(manager, EVENTS).await
    }
}
