//! `teams`: a tenant's team tree, nested without limit. A team's parent is in the same
//! tenant (composite key); the service keeps the tree free of cycles.

use crate::schema_helpers::*;
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Teams {
    Table,
    Id,
    TenantId,
    ParentId,
    Name,
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
        let mut table = create_table(backend, Teams::Table);
        table
            .col(uuid_pk(Teams::Id))
            .col(uuid(Teams::TenantId))
            .col(uuid_null(Teams::ParentId))
            .col(string(Teams::Name, 100))
            .col(timestamp_default_now(backend, Teams::CreatedAt))
            .col(timestamp_default_now(backend, Teams::UpdatedAt))
            .check(Check::named(
                Alias::new("ck_teams_not_own_parent"),
                Expr::cust("parent_id IS NULL OR parent_id <> id"),
            ))
            .foreign_key(&mut foreign_key(
                Teams::Table,
                Teams::TenantId,
                Tenants::Table,
                Tenants::Id,
                ForeignKeyAction::Cascade,
            ));
        // A team with sub-teams cannot be deleted (NO ACTION): move or delete the
        // children first. SQLite cannot add a foreign key later, and resolves the
        // parent key when rows change, so it gets the key inline; the others need the
        // unique (tenant_id, id) first and get it below.
        if backend == DbBackend::Sqlite {
            table.foreign_key(&mut parent_team_key());
        }
        manager.create_table(table.to_owned()).await?;
        // The target of every composite (tenant_id, team_id) reference.
        manager
            .create_index(unique_index(Teams::Table, [Teams::TenantId, Teams::Id]))
            .await?;
        manager
            .create_index(unique_index(Teams::Table, [Teams::TenantId, Teams::Name]))
            .await?;
        manager
            .create_index(index(Teams::Table, [Teams::TenantId, Teams::ParentId]))
            .await?;
        if backend != DbBackend::Sqlite {
            manager.create_foreign_key(parent_team_key()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Teams::Table).to_owned())
            .await
    }
}

fn parent_team_key() -> ForeignKeyCreateStatement {
    composite_foreign_key(
        Teams::Table,
        [Teams::TenantId, Teams::ParentId],
        Teams::Table,
        [Teams::TenantId, Teams::Id],
        ForeignKeyAction::NoAction,
    )
}
