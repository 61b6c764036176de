//! `memberships`: which users belong to which tenant, in which role.

use crate::schema_helpers::*;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Memberships {
    Table,
    Id,
    TenantId,
    UserId,
    Role,
    Status,
    JoinedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Tenants {
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
                create_table(backend, Memberships::Table)
                    .col(uuid_pk(Memberships::Id))
                    .col(uuid(Memberships::TenantId))
                    .col(uuid(Memberships::UserId))
                    .col(string(Memberships::Role, 16))
                    .col(string(Memberships::Status, 16).default("active"))
                    .col(timestamp_default_now(backend, Memberships::JoinedAt))
                    .col(timestamp_default_now(backend, Memberships::CreatedAt))
                    .col(timestamp_default_now(backend, Memberships::UpdatedAt))
                    .check(check_in(
                        "ck_memberships_role",
                        Memberships::Role,
                        &["owner", "admin", "member"],
                    ))
                    .check(check_in(
                        "ck_memberships_status",
                        Memberships::Status,
                        &["active", "suspended"],
                    ))
                    // Memberships exist only within their tenant and of their user.
                    .foreign_key(&mut foreign_key(
                        Memberships::Table,
                        Memberships::TenantId,
                        Tenants::Table,
                        Tenants::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut foreign_key(
                        Memberships::Table,
                        Memberships::UserId,
                        Users::Table,
                        Users::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        // tenant_id leads: it serves "members of a tenant" and keeps (tenant, user) unique.
        manager
            .create_index(unique_index(
                Memberships::Table,
                [Memberships::TenantId, Memberships::UserId],
            ))
            .await?;
        // "Which tenants do I belong to?" at sign-in.
        manager
            .create_index(index(Memberships::Table, [Memberships::UserId]))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Memberships::Table).to_owned())
            .await
    }
}
