//! `users`: global identities.

use crate::schema_helpers::*;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    PasswordHash,
    IsActive,
    IsVerified,
    LastLoginAt,
    FailedLoginCount,
    LockedUntil,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        manager
            .create_table(
                create_table(backend, Users::Table)
                    .col(uuid_pk(Users::Id))
                    // RFC 5321 caps a path at 256 octets; 320 is the common column size.
                    .col(string(Users::Email, 320))
                    .col(string(Users::PasswordHash, 255))
                    .col(boolean(Users::IsActive, true))
                    .col(boolean(Users::IsVerified, false))
                    .col(timestamp_null(backend, Users::LastLoginAt))
                    .col(
                        ColumnDef::new(Users::FailedLoginCount)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(timestamp_null(backend, Users::LockedUntil))
                    .col(timestamp_default_now(backend, Users::CreatedAt))
                    .col(timestamp_default_now(backend, Users::UpdatedAt))
                    // Emails are stored lowercased so the unique index is case-insensitive
                    // on PostgreSQL and SQLite too (MariaDB's collation already is).
                    .check(Check::named(
                        Alias::new("ck_users_email_lowercase"),
                        Expr::cust("email = LOWER(email)"),
                    ))
                    .check(Check::named(
                        Alias::new("ck_users_failed_login_count"),
                        Expr::cust("failed_login_count >= 0"),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_index(Users::Table, [Users::Email]))
            .await?;
        // Admin screens filter by activity and sort by last sign-in.
        manager
            .create_index(index(Users::Table, [Users::IsActive]))
            .await?;
        manager
            .create_index(index(Users::Table, [Users::LastLoginAt]))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Users::Table).to_owned())
            .await
    }
}
