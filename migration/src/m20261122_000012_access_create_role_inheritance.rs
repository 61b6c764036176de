//! `role_inheritance`: a role has every permission of its parents (several allowed).
//! The graph must stay acyclic; the service checks that before inserting.

use crate::schema_helpers::*;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RoleInheritance {
    Table,
    RoleId,
    ParentRoleId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Roles {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        manager
            .create_table(
                create_table(backend, RoleInheritance::Table)
                    .col(uuid(RoleInheritance::RoleId))
                    .col(uuid(RoleInheritance::ParentRoleId))
                    .col(timestamp_default_now(backend, RoleInheritance::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(RoleInheritance::RoleId)
                            .col(RoleInheritance::ParentRoleId),
                    )
                    .check(Check::named(
                        Alias::new("ck_role_inheritance_not_self"),
                        Expr::cust("role_id <> parent_role_id"),
                    ))
                    .foreign_key(&mut foreign_key(
                        RoleInheritance::Table,
                        RoleInheritance::RoleId,
                        Roles::Table,
                        Roles::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut foreign_key(
                        RoleInheritance::Table,
                        RoleInheritance::ParentRoleId,
                        Roles::Table,
                        Roles::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                RoleInheritance::Table,
                [RoleInheritance::ParentRoleId],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RoleInheritance::Table).to_owned())
            .await
    }
}
