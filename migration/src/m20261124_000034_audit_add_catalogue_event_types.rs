//! The audit event type recorded when an application adds an event type to the
//! catalogue at run time.

use crate::schema_helpers::{add_audit_event_types, remove_unused_audit_event_types};
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// (event_type, category, description)
const EVENTS: &[(&str, &str, &str)] = &[(
    "audit_event_type_added",
    "system",
    "An event type was added to the audit catalogue at run time",
)];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        add_audit_event_types(manager, EVENTS).await
    }

    /// Removes the event type if no audit row uses it; otherwise it stays, with the
    /// rows that name it (see `remove_unused_audit_event_types`).
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        remove_unused_audit_event_types(manager, EVENTS).await
    }
}
