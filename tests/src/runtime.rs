//! Raw SQL as the runtime role `app_service` (PostgreSQL), the way an SQL injection
//! inside the application would run it, and the seeded fixtures such tests attack.

use crate::TestDb;
use chrono::{DateTime, Utc};
use entity::{TenantId, UserId};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, ExecResult,
    Statement, TransactionTrait,
};

/// A transaction as `app_service` with the tenant and acting user set (an unset one
/// is empty, as the service leaves it). Roll it back when done.
pub async fn runtime_txn(
    db: &DatabaseConnection,
    tenant: Option<TenantId>,
    user: Option<UserId>,
) -> Result<DatabaseTransaction, DbErr> {
    runtime_txn_at(db, tenant, user, None).await
}

/// [`runtime_txn`] with the application's clock (`app.current_time`) set as the
/// service sets it for protected records; unset, policies use the server's clock.
pub async fn runtime_txn_at(
    db: &DatabaseConnection,
    tenant: Option<TenantId>,
    user: Option<UserId>,
    at: Option<DateTime<Utc>>,
) -> Result<DatabaseTransaction, DbErr> {
    let txn = db.begin().await?;
    txn.execute_unprepared("SET LOCAL ROLE app_service").await?;
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT set_config('app.current_tenant_id', $1, true), set_config('app.current_user_id', $2, true),
                set_config('app.current_time', $3, true)",
        [
            tenant.map(|t| t.to_string()).unwrap_or_default().into(),
            user.map(|u| u.to_string()).unwrap_or_default().into(),
            at.map(|at| at.to_rfc3339()).unwrap_or_default().into(),
        ],
    ))
    .await?;
    Ok(txn)
}

/// Runs `sql` as `app_service` in a transaction that is rolled back.
pub async fn as_runtime(
    db: &DatabaseConnection,
    tenant: Option<TenantId>,
    user: Option<UserId>,
    sql: &str,
) -> Result<ExecResult, DbErr> {
    as_runtime_at(db, tenant, user, None, sql).await
}

/// [`as_runtime`] at the application's clock `at` ([`runtime_txn_at`]).
pub async fn as_runtime_at(
    db: &DatabaseConnection,
    tenant: Option<TenantId>,
    user: Option<UserId>,
    at: Option<DateTime<Utc>>,
    sql: &str,
) -> Result<ExecResult, DbErr> {
    let txn = runtime_txn_at(db, tenant, user, at).await?;
    let result = txn.execute_unprepared(sql).await;
    txn.rollback().await?;
    result
}

/// A `count(*)` query as `app_service`, rolled back.
pub async fn count_as_runtime(
    db: &DatabaseConnection,
    tenant: Option<TenantId>,
    user: Option<UserId>,
    sql: &str,
) -> i64 {
    count_as_runtime_at(db, tenant, user, None, sql).await
}

/// [`count_as_runtime`] at the application's clock `at` ([`runtime_txn_at`]).
pub async fn count_as_runtime_at(
    db: &DatabaseConnection,
    tenant: Option<TenantId>,
    user: Option<UserId>,
    at: Option<DateTime<Utc>>,
    sql: &str,
) -> i64 {
    let txn = runtime_txn_at(db, tenant, user, at)
        .await
        .expect("the runtime role");
    let count = count(&txn, sql).await;
    txn.rollback().await.expect("rolls back");
    count
}

/// A `count(*)` query on `db`, as whoever `db` is.
pub async fn count<C: ConnectionTrait>(db: &C, sql: &str) -> i64 {
    db.query_one_raw(Statement::from_string(DbBackend::Postgres, sql.to_owned()))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .expect("one row")
        .try_get_by_index::<i64>(0)
        .expect("a count")
}

/// The demo profile, seeded by the seeder as the owner.
pub async fn seed(t: &TestDb) -> seeder::SeedReport {
    seeder::run(
        &seeder::SeedOptions {
            database_url: Some(t.url.clone()),
            ..seeder::SeedOptions::default()
        },
        migration::environment::AppEnv::Test,
        &t.target(),
    )
    .await
    .expect("seeds")
}

pub fn tenant(report: &seeder::SeedReport, slug: &str) -> TenantId {
    report
        .tenants
        .iter()
        .find(|t| t.slug == slug)
        .expect("fixture tenant")
        .id
}

pub fn user(report: &seeder::SeedReport, email: &str) -> UserId {
    report
        .users
        .iter()
        .find(|u| u.email == email)
        .expect("fixture user")
        .id
}
