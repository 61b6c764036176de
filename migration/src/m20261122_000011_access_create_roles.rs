//! `roles`: system roles (`tenant_id` NULL, shared by every tenant) and each tenant's
//! custom roles. Names are unique within a tenant and among system roles.

use crate::schema_helpers::*;
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Roles {
    Table,
    Id,
    TenantId,
    Name,
    Description,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        manager
            .create_table(
                create_table(backend, Roles::Table)
                    .col(uuid_pk(Roles::Id))
                    .col(uuid_null(Roles::TenantId))
                    .col(string(Roles::Name, 64))
                    .col(string_null(Roles::Description, 255))
                    .col(timestamp_default_now(backend, Roles::CreatedAt))
                    .col(timestamp_default_now(backend, Roles::UpdatedAt))
                    .foreign_key(&mut foreign_key(
                        Roles::Table,
                        Roles::TenantId,
                        Tenants::Table,
                        Tenants::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        // PostgreSQL 15 treats the NULL tenant of system roles as one value here; the
        // other backends treat NULLs as distinct, hence the extra index below.
        manager
            .create_index(
                unique_index(Roles::Table, [Roles::TenantId, Roles::Name])
                    .nulls_not_distinct()
                    .to_owned(),
            )
            .await?;
        // SQLite has partial indexes; MariaDB has neither, and there the service
        // checks system role names before inserting.
        if backend == DbBackend::Sqlite {
            manager
                .get_connection()
                .execute_unprepared(
                    "CREATE UNIQUE INDEX uq_roles_system_name ON roles (name) WHERE tenant_id IS NULL",
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Roles::Table).to_owned())
            .await
    }
}
