//! `sign_in_throttles`: failed sign-in attempts per key, for exponential delays.
//!
//! A key is an account as seen from one client address, or a client address across
//! every account; `key_hash` is the SHA-256 of the key, so emails that were merely
//! typed (no account behind them) are not stored in clear. Unknown emails get rows
//! like known ones: the table cannot tell which accounts exist.

use crate::schema_helpers::*;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SignInThrottles {
    Table,
    Scope,
    KeyHash,
    Failures,
    LastFailureAt,
    BlockedUntil,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        manager
            .create_table(
                create_table(backend, SignInThrottles::Table)
                    .col(string(SignInThrottles::Scope, 16))
                    .col(
                        ColumnDef::new(SignInThrottles::KeyHash)
                            .char_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(SignInThrottles::Failures)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(timestamp_null(backend, SignInThrottles::LastFailureAt))
                    .col(timestamp_null(backend, SignInThrottles::BlockedUntil))
                    .col(timestamp_default_now(backend, SignInThrottles::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(SignInThrottles::Scope)
                            .col(SignInThrottles::KeyHash),
                    )
                    .check(check_in(
                        "ck_sign_in_throttles_scope",
                        SignInThrottles::Scope,
                        &["account_address", "address"],
                    ))
                    .check(Check::named(
                        Alias::new("ck_sign_in_throttles_failures"),
                        Expr::col(SignInThrottles::Failures).gte(0),
                    ))
                    .to_owned(),
            )
            .await?;
        // The clean-up job deletes rows whose last failure is old.
        manager
            .create_index(index(
                SignInThrottles::Table,
                [SignInThrottles::LastFailureAt],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(SignInThrottles::Table).to_owned())
            .await
    }
}
