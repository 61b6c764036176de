//! `role_assignments`: a member holds a role in a tenant, a team (and its sub-teams)
//! or on one record; optionally until `expires_at`, and optionally only within a
//! daily window (minutes after midnight UTC; a window may wrap past midnight).

use crate::schema_helpers::*;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RoleAssignments {
    Table,
    Id,
    TenantId,
    UserId,
    RoleId,
    ScopeType,
    ScopeId,
    WindowStartMinute,
    WindowEndMinute,
    ExpiresAt,
    RevokedAt,
    RevokedBy,
    GrantedBy,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Memberships {
    Table,
    TenantId,
    UserId,
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
                create_table(backend, RoleAssignments::Table)
                    .col(uuid_pk(RoleAssignments::Id))
                    .col(uuid(RoleAssignments::TenantId))
                    .col(uuid(RoleAssignments::UserId))
                    .col(uuid(RoleAssignments::RoleId))
                    .col(string(RoleAssignments::ScopeType, 16))
                    .col(uuid_null(RoleAssignments::ScopeId))
                    .col(ColumnDef::new(RoleAssignments::WindowStartMinute).small_integer().null())
                    .col(ColumnDef::new(RoleAssignments::WindowEndMinute).small_integer().null())
                    .col(timestamp_null(backend, RoleAssignments::ExpiresAt))
                    .col(timestamp_null(backend, RoleAssignments::RevokedAt))
                    .col(uuid_null(RoleAssignments::RevokedBy))
                    .col(uuid_null(RoleAssignments::GrantedBy))
                    .col(timestamp_default_now(backend, RoleAssignments::CreatedAt))
                    .check(check_in(
                        "ck_role_assignments_scope_type",
                        RoleAssignments::ScopeType,
                        &["tenant", "team", "record"],
                    ))
                    .check(Check::named(
                        Alias::new("ck_role_assignments_scope_id"),
                        Expr::cust(
                            "(scope_type = 'tenant' AND scope_id IS NULL) OR (scope_type <> 'tenant' AND scope_id IS NOT NULL)",
                        ),
                    ))
                    .check(Check::named(
                        Alias::new("ck_role_assignments_window"),
                        Expr::cust(
                            "(window_start_minute IS NULL AND window_end_minute IS NULL) OR \
                             (window_start_minute BETWEEN 0 AND 1439 AND window_end_minute BETWEEN 0 AND 1439 \
                              AND window_start_minute <> window_end_minute)",
                        ),
                    ))
                    // Only members hold roles; leaving the tenant ends them.
                    .foreign_key(&mut composite_foreign_key(
                        RoleAssignments::Table,
                        [RoleAssignments::TenantId, RoleAssignments::UserId],
                        Memberships::Table,
                        [Memberships::TenantId, Memberships::UserId],
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut foreign_key(
                        RoleAssignments::Table,
                        RoleAssignments::RoleId,
                        Roles::Table,
                        Roles::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        // The permission check starts here: a user's assignments in a tenant.
        manager
            .create_index(index(
                RoleAssignments::Table,
                [RoleAssignments::TenantId, RoleAssignments::UserId],
            ))
            .await?;
        manager
            .create_index(index(RoleAssignments::Table, [RoleAssignments::RoleId]))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RoleAssignments::Table).to_owned())
            .await
    }
}
