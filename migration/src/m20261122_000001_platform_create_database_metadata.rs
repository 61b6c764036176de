//! `database_metadata`: facts the database keeps about itself, above all which
//! environment it belongs to (see the README's safety rules). Written by the migration CLI and the
//! seeder, never by migrations, which do not know their environment.

use crate::schema_helpers::*;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum DatabaseMetadata {
    Table,
    Key,
    Value,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        manager
            .create_table(
                create_table(backend, DatabaseMetadata::Table)
                    .col(
                        ColumnDef::new(DatabaseMetadata::Key)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(string(DatabaseMetadata::Value, 255))
                    .col(timestamp_default_now(backend, DatabaseMetadata::UpdatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(DatabaseMetadata::Table).to_owned())
            .await
    }
}
