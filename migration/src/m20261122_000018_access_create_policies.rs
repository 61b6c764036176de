//! `policies`: deny rules. A matching policy overrides every grant. `user_id` and
//! `role_id` narrow whom it applies to (both NULL: everyone in the tenant); `*`
//! matches any resource or action.

use crate::schema_helpers::*;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Policies {
    Table,
    Id,
    TenantId,
    Name,
    Resource,
    Action,
    UserId,
    RoleId,
    CreatedBy,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Roles {
    Table,
    Id,
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
                create_table(backend, Policies::Table)
                    .col(uuid_pk(Policies::Id))
                    .col(uuid(Policies::TenantId))
                    .col(string(Policies::Name, 100))
                    .col(string(Policies::Resource, 64))
                    .col(string(Policies::Action, 64))
                    .col(uuid_null(Policies::UserId))
                    .col(uuid_null(Policies::RoleId))
                    .col(uuid_null(Policies::CreatedBy))
                    .col(timestamp_default_now(backend, Policies::CreatedAt))
                    .foreign_key(&mut foreign_key(
                        Policies::Table,
                        Policies::TenantId,
                        Tenants::Table,
                        Tenants::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut foreign_key(
                        Policies::Table,
                        Policies::UserId,
                        Users::Table,
                        Users::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut foreign_key(
                        Policies::Table,
                        Policies::RoleId,
                        Roles::Table,
                        Roles::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_index(
                Policies::Table,
                [Policies::TenantId, Policies::Name],
            ))
            .await?;
        manager
            .create_index(index(
                Policies::Table,
                [Policies::TenantId, Policies::Resource, Policies::Action],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Policies::Table).to_owned())
            .await
    }
}
