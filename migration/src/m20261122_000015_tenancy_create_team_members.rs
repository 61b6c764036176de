//! `team_members`: tenant members placed in teams, with a team role.

use crate::schema_helpers::*;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum TeamMembers {
    Table,
    TenantId,
    TeamId,
    UserId,
    Role,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Teams {
    Table,
    TenantId,
    Id,
}

#[derive(DeriveIden)]
enum Memberships {
    Table,
    TenantId,
    UserId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        manager
            .create_table(
                create_table(backend, TeamMembers::Table)
                    .col(uuid(TeamMembers::TenantId))
                    .col(uuid(TeamMembers::TeamId))
                    .col(uuid(TeamMembers::UserId))
                    .col(string(TeamMembers::Role, 16))
                    .col(timestamp_default_now(backend, TeamMembers::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(TeamMembers::TeamId)
                            .col(TeamMembers::UserId),
                    )
                    .check(check_in(
                        "ck_team_members_role",
                        TeamMembers::Role,
                        &["owner", "admin", "member"],
                    ))
                    // The team is in the row's tenant...
                    .foreign_key(&mut composite_foreign_key(
                        TeamMembers::Table,
                        [TeamMembers::TenantId, TeamMembers::TeamId],
                        Teams::Table,
                        [Teams::TenantId, Teams::Id],
                        ForeignKeyAction::Cascade,
                    ))
                    // ...and so is the person: leaving the tenant leaves its teams.
                    .foreign_key(&mut composite_foreign_key(
                        TeamMembers::Table,
                        [TeamMembers::TenantId, TeamMembers::UserId],
                        Memberships::Table,
                        [Memberships::TenantId, Memberships::UserId],
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                TeamMembers::Table,
                [TeamMembers::TenantId, TeamMembers::UserId],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(TeamMembers::Table).to_owned())
            .await
    }
}
