//! `invitations`: an email invited into a tenant with a role (and optionally a team).
//! Only a SHA-256 of the token is stored. At most one pending invitation per tenant
//! and email, enforced by a unique index on a generated column that holds the email
//! only while the invitation is pending (portable, unlike partial indexes).

use crate::schema_helpers::*;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Invitations {
    Table,
    Id,
    TenantId,
    Email,
    RoleId,
    TeamId,
    TokenHash,
    Status,
    InvitedBy,
    ExpiresAt,
    AcceptedAt,
    AcceptedBy,
    RevokedAt,
    CreatedAt,
    UpdatedAt,
    PendingEmail,
}

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Teams {
    Table,
    TenantId,
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
                create_table(backend, Invitations::Table)
                    .col(uuid_pk(Invitations::Id))
                    .col(uuid(Invitations::TenantId))
                    .col(string(Invitations::Email, 320))
                    .col(uuid(Invitations::RoleId))
                    .col(uuid_null(Invitations::TeamId))
                    .col(ColumnDef::new(Invitations::TokenHash).char_len(64).not_null())
                    .col(string(Invitations::Status, 16).default("pending"))
                    .col(uuid_null(Invitations::InvitedBy))
                    .col(timestamp(backend, Invitations::ExpiresAt))
                    .col(timestamp_null(backend, Invitations::AcceptedAt))
                    .col(uuid_null(Invitations::AcceptedBy))
                    .col(timestamp_null(backend, Invitations::RevokedAt))
                    .col(timestamp_default_now(backend, Invitations::CreatedAt))
                    .col(timestamp_default_now(backend, Invitations::UpdatedAt))
                    .col(
                        ColumnDef::new(Invitations::PendingEmail)
                            .string_len(320)
                            .extra("GENERATED ALWAYS AS (CASE WHEN status = 'pending' THEN email END) STORED"),
                    )
                    .check(check_in(
                        "ck_invitations_status",
                        Invitations::Status,
                        &["pending", "accepted", "expired", "revoked"],
                    ))
                    .check(Check::named(
                        Alias::new("ck_invitations_email_lowercase"),
                        Expr::cust("email = LOWER(email)"),
                    ))
                    .foreign_key(&mut foreign_key(
                        Invitations::Table,
                        Invitations::TenantId,
                        Tenants::Table,
                        Tenants::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut foreign_key(
                        Invitations::Table,
                        Invitations::RoleId,
                        Roles::Table,
                        Roles::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut composite_foreign_key(
                        Invitations::Table,
                        [Invitations::TenantId, Invitations::TeamId],
                        Teams::Table,
                        [Teams::TenantId, Teams::Id],
                        ForeignKeyAction::Cascade,
                    ))
                    // Who invited is history; the invitation outlives their account.
                    .foreign_key(&mut foreign_key(
                        Invitations::Table,
                        Invitations::InvitedBy,
                        Users::Table,
                        Users::Id,
                        ForeignKeyAction::SetNull,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_index(Invitations::Table, [Invitations::TokenHash]))
            .await?;
        manager
            .create_index(unique_index(
                Invitations::Table,
                [Invitations::TenantId, Invitations::PendingEmail],
            ))
            .await?;
        manager
            .create_index(index(
                Invitations::Table,
                [Invitations::TenantId, Invitations::Status],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Invitations::Table).to_owned())
            .await
    }
}
