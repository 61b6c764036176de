//! `permissions`: what can be done, as (resource, action); `*` in either is a wildcard.

use crate::schema_helpers::*;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Permissions {
    Table,
    Id,
    Resource,
    Action,
    Description,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        manager
            .create_table(
                create_table(backend, Permissions::Table)
                    .col(uuid_pk(Permissions::Id))
                    .col(string(Permissions::Resource, 64))
                    .col(string(Permissions::Action, 64))
                    .col(string_null(Permissions::Description, 255))
                    .col(timestamp_default_now(backend, Permissions::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_index(
                Permissions::Table,
                [Permissions::Resource, Permissions::Action],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Permissions::Table).to_owned())
            .await
    }
}
