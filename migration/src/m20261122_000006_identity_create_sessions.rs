//! `sessions`: signed-in devices.

use crate::schema_helpers::*;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    UserId,
    IpAddress,
    UserAgent,
    CreatedAt,
    LastUsedAt,
    ExpiresAt,
    RevokedAt,
    RevokedReason,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        manager
            .create_table(
                create_table(backend, Sessions::Table)
                    .col(uuid_pk(Sessions::Id))
                    .col(uuid(Sessions::UserId))
                    // 45 characters hold any IPv6 text form, IPv4-mapped included.
                    .col(string_null(Sessions::IpAddress, 45))
                    .col(string_null(Sessions::UserAgent, 512))
                    .col(timestamp_default_now(backend, Sessions::CreatedAt))
                    .col(timestamp_default_now(backend, Sessions::LastUsedAt))
                    .col(timestamp(backend, Sessions::ExpiresAt))
                    .col(timestamp_null(backend, Sessions::RevokedAt))
                    .col(string_null(Sessions::RevokedReason, 24))
                    .check(check_in(
                        "ck_sessions_revoked_reason",
                        Sessions::RevokedReason,
                        &["logout", "logout_all", "token_reuse"],
                    ))
                    .foreign_key(&mut foreign_key(
                        Sessions::Table,
                        Sessions::UserId,
                        Users::Table,
                        Users::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        // "A user's live sessions"
        // is user_id = ? AND revoked_at IS NULL AND expires_at > now.
        manager
            .create_index(index(
                Sessions::Table,
                [Sessions::UserId, Sessions::RevokedAt, Sessions::ExpiresAt],
            ))
            .await?;
        // The clean-up job deletes by expiry.
        manager
            .create_index(index(Sessions::Table, [Sessions::ExpiresAt]))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Sessions::Table).to_owned())
            .await
    }
}
