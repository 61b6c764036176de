//! `tenants`: customer organisations.

use crate::schema_helpers::*;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
    Slug,
    Name,
    PlanTier,
    IsolationLevel,
    DataRegion,
    Features,
    IsActive,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        manager
            .create_table(
                create_table(backend, Tenants::Table)
                    .col(uuid_pk(Tenants::Id))
                    .col(string(Tenants::Slug, 63))
                    .col(string(Tenants::Name, 255))
                    .col(string(Tenants::PlanTier, 16).default("free"))
                    .col(string(Tenants::IsolationLevel, 16).default("shared"))
                    .col(string(Tenants::DataRegion, 8).default("us"))
                    .col(json(Tenants::Features))
                    .col(boolean(Tenants::IsActive, true))
                    .col(timestamp_default_now(backend, Tenants::CreatedAt))
                    .col(timestamp_default_now(backend, Tenants::UpdatedAt))
                    .check(check_in(
                        "ck_tenants_plan_tier",
                        Tenants::PlanTier,
                        &["free", "pro", "enterprise"],
                    ))
                    .check(check_in(
                        "ck_tenants_isolation_level",
                        Tenants::IsolationLevel,
                        &["shared", "schema", "database"],
                    ))
                    .check(check_in(
                        "ck_tenants_data_region",
                        Tenants::DataRegion,
                        &["us", "eu", "jp"],
                    ))
                    .check(Check::named(
                        Alias::new("ck_tenants_slug_length"),
                        Expr::cust("LENGTH(slug) BETWEEN 3 AND 63"),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_index(Tenants::Table, [Tenants::Slug]))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Tenants::Table).to_owned())
            .await
    }
}
