//! Audit event types of API keys. A successful use is not audited (it would be a row
//! per request; `api_keys.last_used_at` says when a key was last used); a refused
//! use of a known key is, since a revoked or retired key still in use is a leak.

use crate::schema_helpers::{add_audit_event_types, remove_unused_audit_event_types};
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// (event_type, category, description)
const EVENTS: &[(&str, &str, &str)] = &[
    ("api_key_created", "security", "API key created"),
    ("api_key_revoked", "security", "API key revoked"),
    (
        "api_key_rotated",
        "security",
        "API key replaced by a new one; the old one works until its grace period ends",
    ),
    (
        "api_key_rejected",
        "security",
        "A revoked, expired or replaced API key was presented",
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
