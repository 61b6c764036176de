//! How state-changing operations open their transaction.

use sea_orm::{DbErr, IsolationLevel, SqliteTransactionMode, TransactionOptions, TransactionTrait};

/// Opens a transaction for work that writes; use it too when you compose several
/// operations in one transaction of your own.
///
/// On SQLite it is `BEGIN IMMEDIATE`, taking the write lock up front: a deferred
/// transaction that reads first and writes later fails at once with `SQLITE_BUSY`
/// when another connection is writing, while an immediate one waits out the busy
/// timeout. PostgreSQL and MariaDB ignore the mode; inside an open transaction this
/// is a savepoint.
pub async fn begin_write<C: TransactionTrait>(db: &C) -> Result<C::Transaction, DbErr> {
    begin_write_isolated(db, None).await
}

/// [`begin_write`] at `isolation` (the server's default when `None`).
pub(crate) async fn begin_write_isolated<C: TransactionTrait>(
    db: &C,
    isolation: Option<IsolationLevel>,
) -> Result<C::Transaction, DbErr> {
    db.begin_with_options(TransactionOptions {
        isolation_level: isolation,
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    })
    .await
}

/// A connection that is an open transaction. Operations whose correctness needs the
/// work to commit or roll back as one (an audit append holds its chain's lock until
/// the change it records commits) take this instead of any `ConnectionTrait`, so a
/// pool cannot be passed by mistake.
pub trait InTransaction: sea_orm::ConnectionTrait {}

impl<T: sea_orm::ConnectionTrait + sea_orm::TransactionSession> InTransaction for T {}
