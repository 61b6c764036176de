//! Audit event types of passkeys. Every accepted and every refused assertion of a
//! known credential is audited; a regressing signature counter (a cloned
//! authenticator) is its own event. No key, signature or client data is ever in a
//! row's details.

use crate::schema_helpers::{add_audit_event_types, remove_unused_audit_event_types};
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// (event_type, category, description)
const EVENTS: &[(&str, &str, &str)] = &[
    ("passkey_registered", "security", "Passkey registered"),
    ("passkey_renamed", "security", "Passkey renamed"),
    ("passkey_removed", "security", "Passkey removed"),
    (
        "passkey_used",
        "authentication",
        "Passkey assertion verified",
    ),
    (
        "passkey_assertion_failed",
        "authentication",
        "A passkey assertion with a wrong challenge, origin, relying party or signature, or for a disabled passkey, was presented",
    ),
    (
        "passkey_clone_detected",
        "security",
        "A passkey's signature counter did not increase: the authenticator may be cloned; the passkey was disabled",
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
