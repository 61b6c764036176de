//! `user_profiles`: the 1:1 personal details of a user.

use crate::schema_helpers::*;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum UserProfiles {
    Table,
    Id,
    UserId,
    DisplayName,
    Phone,
    AvatarUrl,
    Timezone,
    Language,
    Preferences,
    CreatedAt,
    UpdatedAt,
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
                create_table(backend, UserProfiles::Table)
                    .col(uuid_pk(UserProfiles::Id))
                    .col(uuid(UserProfiles::UserId))
                    .col(string(UserProfiles::DisplayName, 100))
                    .col(string_null(UserProfiles::Phone, 32))
                    .col(string_null(UserProfiles::AvatarUrl, 2048))
                    .col(string(UserProfiles::Timezone, 64).default("UTC"))
                    .col(string(UserProfiles::Language, 35).default("en"))
                    .col(json(UserProfiles::Preferences))
                    .col(timestamp_default_now(backend, UserProfiles::CreatedAt))
                    .col(timestamp_default_now(backend, UserProfiles::UpdatedAt))
                    // A profile is part of the person: erasing the user erases it.
                    .foreign_key(&mut foreign_key(
                        UserProfiles::Table,
                        UserProfiles::UserId,
                        Users::Table,
                        Users::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_index(UserProfiles::Table, [UserProfiles::UserId]))
            .await?;
        manager
            .create_index(index(UserProfiles::Table, [UserProfiles::Phone]))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(UserProfiles::Table).to_owned())
            .await
    }
}
