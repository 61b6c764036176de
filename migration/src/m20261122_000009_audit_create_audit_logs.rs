//! `audit_logs`: the append-only audit trail.

use crate::schema_helpers::*;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AuditLogs {
    Table,
    Id,
    TenantId,
    ActorUserId,
    EventType,
    ResourceType,
    ResourceId,
    Outcome,
    RiskScore,
    IpAddress,
    UserAgent,
    Details,
    OccurredAt,
}

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum AuditEventTypes {
    Table,
    EventType,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        manager
            .create_table(
                create_table(backend, AuditLogs::Table)
                    .col(uuid_pk(AuditLogs::Id))
                    .col(uuid_null(AuditLogs::TenantId))
                    // No foreign key: the trail outlives the users it names.
                    .col(uuid_null(AuditLogs::ActorUserId))
                    .col(string(AuditLogs::EventType, 64))
                    .col(string_null(AuditLogs::ResourceType, 64))
                    .col(string_null(AuditLogs::ResourceId, 128))
                    .col(string(AuditLogs::Outcome, 16))
                    .col(
                        ColumnDef::new(AuditLogs::RiskScore)
                            .small_integer()
                            .not_null()
                            .default(0),
                    )
                    .col(string_null(AuditLogs::IpAddress, 45))
                    .col(string_null(AuditLogs::UserAgent, 512))
                    .col(json(AuditLogs::Details))
                    .col(timestamp_default_now(backend, AuditLogs::OccurredAt))
                    .check(check_in(
                        "ck_audit_logs_outcome",
                        AuditLogs::Outcome,
                        &["success", "failure", "denied"],
                    ))
                    .check(Check::named(
                        Alias::new("ck_audit_logs_risk_score"),
                        Expr::cust("risk_score BETWEEN 0 AND 100"),
                    ))
                    // History pins its tenant: a tenant with an audit trail is
                    // deactivated, never deleted.
                    .foreign_key(&mut foreign_key(
                        AuditLogs::Table,
                        AuditLogs::TenantId,
                        Tenants::Table,
                        Tenants::Id,
                        ForeignKeyAction::Restrict,
                    ))
                    .foreign_key(&mut foreign_key(
                        AuditLogs::Table,
                        AuditLogs::EventType,
                        AuditEventTypes::Table,
                        AuditEventTypes::EventType,
                        ForeignKeyAction::Restrict,
                    ))
                    .to_owned(),
            )
            .await?;
        // A tenant's trail by time, filtered by event and outcome (the analysis screens).
        manager
            .create_index(index(
                AuditLogs::Table,
                [
                    AuditLogs::TenantId,
                    AuditLogs::OccurredAt,
                    AuditLogs::EventType,
                    AuditLogs::Outcome,
                ],
            ))
            .await?;
        // One user's actions over time ("what did this account do?").
        manager
            .create_index(index(
                AuditLogs::Table,
                [AuditLogs::ActorUserId, AuditLogs::OccurredAt],
            ))
            .await?;
        // All events of one kind, e.g. every failed login.
        manager
            .create_index(index(
                AuditLogs::Table,
                [AuditLogs::EventType, AuditLogs::OccurredAt],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AuditLogs::Table).to_owned())
            .await
    }
}
