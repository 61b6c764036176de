//! `refresh_tokens`: each session's rotation chain, stored as SHA-256 hashes.

use crate::schema_helpers::*;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    Id,
    SessionId,
    TokenHash,
    ParentId,
    CreatedAt,
    ExpiresAt,
    UsedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        manager
            .create_table(
                create_table(backend, RefreshTokens::Table)
                    .col(uuid_pk(RefreshTokens::Id))
                    .col(uuid(RefreshTokens::SessionId))
                    // Hex SHA-256.
                    .col(
                        ColumnDef::new(RefreshTokens::TokenHash)
                            .char_len(64)
                            .not_null(),
                    )
                    // Lineage within one session only, so no foreign key: the rows die
                    // together with their session.
                    .col(uuid_null(RefreshTokens::ParentId))
                    .col(timestamp_default_now(backend, RefreshTokens::CreatedAt))
                    .col(timestamp(backend, RefreshTokens::ExpiresAt))
                    .col(timestamp_null(backend, RefreshTokens::UsedAt))
                    .col(timestamp_null(backend, RefreshTokens::RevokedAt))
                    .foreign_key(&mut foreign_key(
                        RefreshTokens::Table,
                        RefreshTokens::SessionId,
                        Sessions::Table,
                        Sessions::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_index(
                RefreshTokens::Table,
                [RefreshTokens::TokenHash],
            ))
            .await?;
        manager
            .create_index(index(RefreshTokens::Table, [RefreshTokens::SessionId]))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RefreshTokens::Table).to_owned())
            .await
    }
}
