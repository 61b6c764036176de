//! Audit event types of the second factor and backup codes. Every accepted and every
//! refused code is audited (a refused one is what a guessing attacker leaves behind);
//! no code or secret is ever in a row's details.

use crate::schema_helpers::{add_audit_event_types, remove_unused_audit_event_types};
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// (event_type, category, description)
const EVENTS: &[(&str, &str, &str)] = &[
    (
        "mfa_enrolled",
        "security",
        "TOTP factor enrolled (not yet confirmed)",
    ),
    (
        "mfa_confirmed",
        "security",
        "TOTP factor confirmed with a first valid code",
    ),
    ("mfa_verified", "authentication", "Second factor verified"),
    (
        "mfa_verification_failed",
        "authentication",
        "A wrong, replayed or used second-factor code was presented",
    ),
    ("mfa_disabled", "security", "TOTP factor disabled"),
    (
        "backup_codes_generated",
        "security",
        "Backup codes generated, replacing any previous set",
    ),
    ("backup_code_used", "authentication", "Backup code used"),
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
