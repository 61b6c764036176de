//! Audit event types of API keys. A successful use is not audited (it would be a row
//! per request; `api_keys.last_used_at` says when a key was last used); a refused
//! use of a known key is, since a revoked or retired key still in use is a leak.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AuditEventTypes {
    Table,
    EventType,
    Category,
    Description,
}

#[derive(DeriveIden)]
enum AuditLogs {
    Table,
    EventType,
}

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
        let mut insert = Query::insert();
        insert.into_table(AuditEventTypes::Table).columns([
            AuditEventTypes::EventType,
            AuditEventTypes::Category,
            AuditEventTypes::Description,
        ]);
        for (event_type, category, description) in EVENTS {
            insert.values_panic([
                (*event_type).into(),
                (*category).into(),
                (*description).into(),
            ]);
        }
        manager.exec_stmt(insert).await
    }

    /// Removes the event types no audit row uses; the others stay, with the rows that
    /// name them (a rollback never deletes audit history). Applying this migration
    /// again after such a rollback fails on the kept types: roll it back only on the
    /// way down past `m20261122_000009_audit_create_audit_logs`, or restore a backup.
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let codes: Vec<&str> = EVENTS.iter().map(|(code, _, _)| *code).collect();
        let used = Query::select()
            .expr(Expr::val(1))
            .from(AuditLogs::Table)
            .and_where(
                Expr::col((AuditLogs::Table, AuditLogs::EventType))
                    .equals((AuditEventTypes::Table, AuditEventTypes::EventType)),
            )
            .to_owned();
        manager
            .exec_stmt(
                Query::delete()
                    .from_table(AuditEventTypes::Table)
                    .and_where(Expr::col(AuditEventTypes::EventType).is_in(codes))
                    .and_where(Expr::exists(used).not())
                    .to_owned(),
            )
            .await
    }
}
