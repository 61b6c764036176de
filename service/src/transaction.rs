//! How state-changing operations open their transaction.

use sea_orm::{DbErr, SqliteTransactionMode, TransactionOptions, TransactionTrait};

/// Opens a transaction for work that writes; use it too when you compose several
/// operations in one transaction of your own.
///
/// On SQLite it is `BEGIN IMMEDIATE`, taking the write lock up front: a deferred
/// transaction that reads first and writes later fails at once with `SQLITE_BUSY`
/// when another connection is writing, while an immediate one waits out the busy
/// timeout. PostgreSQL and MariaDB ignore the mode; inside an open transaction this
/// is a savepoint.
pub async fn begin_write<C: TransactionTrait>(db: &C) -> Result<C::Transaction, DbErr> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    })
    .await
}
