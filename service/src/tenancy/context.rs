//! [`TenantCtx`]: proof that an actor is an active member of an active tenant.
//!
//! It can only be built by checking the database, so a tenant-scoped operation that
//! takes one cannot be called on behalf of an outsider ("wrong tenant" is a
//! `Forbidden` here, before any tenant data is read).

use crate::error::ServiceError;
use crate::transaction::begin_write_isolated;
use crate::{Result, begin_write};
use chrono::{DateTime, Utc};
use entity::tenancy::memberships::{self, MembershipRole, MembershipStatus};
use entity::tenancy::tenants::{self, IsolationLevel};
use entity::{TenantId, UserId};
use sea_orm::{
    AccessMode, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, ExecResult,
    IsolationLevel as TxnIsolation, QueryFilter, QueryResult, QuerySelect, Statement,
    TransactionError, TransactionOptions, TransactionSession, TransactionTrait,
};
use std::future::Future;
use std::pin::Pin;

/// Who acts in which tenant. Holding one proves the actor was an active member when
/// it was built; every [`TenantCtx::begin`] proves it again inside the operation's
/// own transaction, so a context kept after a suspension or demotion stops working
/// (and a demoted admin's rights end) with the next operation. Not `Clone`: build
/// one per request.
#[derive(Debug, PartialEq, Eq)]
pub struct TenantCtx {
    tenant_id: TenantId,
    actor: UserId,
    /// The PostgreSQL schema of a schema-isolated tenant (see `tenant_schema_name`).
    own_schema: Option<String>,
}

/// The schema a schema-isolated tenant's rows live in: `tenant_<slug>`, dashes as
/// underscores. The migration CLI's provisioning uses the same rule (a test holds the
/// two together; `migration` depends on no crate of ours).
pub fn tenant_schema_name(slug: &str) -> String {
    format!("tenant_{}", slug.replace('-', "_"))
}

impl TenantCtx {
    /// Checks that `actor` is an active member of the active tenant `tenant_id`.
    ///
    /// # Errors
    /// `Forbidden` if not (an unknown tenant gives the same answer as someone else's,
    /// so tenant ids cannot be probed); `Db`.
    pub async fn for_member<C>(db: &C, tenant_id: TenantId, actor: UserId) -> Result<Self>
    where
        C: ConnectionTrait + TransactionTrait,
    {
        let txn = begin_write(db).await?;
        set_row_security_context(&txn, Some(tenant_id), Some(actor)).await?;
        let found = memberships::Entity::find()
            .filter(memberships::Column::TenantId.eq(tenant_id))
            .filter(memberships::Column::UserId.eq(actor))
            .find_also_related(tenants::Entity)
            .one(&txn)
            .await?;
        txn.commit().await?;
        match found {
            Some((membership, Some(tenant)))
                if membership.status == MembershipStatus::Active && tenant.is_active =>
            {
                let own_schema = (tenant.isolation_level == IsolationLevel::Schema
                    && db.get_database_backend() == DbBackend::Postgres)
                    .then(|| tenant_schema_name(&tenant.slug));
                Ok(Self {
                    tenant_id,
                    actor,
                    own_schema,
                })
            }
            _ => Err(not_a_member()),
        }
    }

    /// Opens the transaction a tenant-scoped operation runs in, with the tenant and
    /// actor set for PostgreSQL's row-level security (`set_config(..., true)`: they
    /// end with the transaction, so pooled connections never leak them), and proves
    /// the membership again in it (one query): the returned [`TenantTxn`] carries
    /// the actor's role as of now. For a schema-isolated tenant, its schema also goes
    /// first on the search path.
    ///
    /// # Errors
    /// `Forbidden` if the actor is no longer an active member of an active tenant;
    /// `Conflict` for a schema-isolated tenant whose schema was not provisioned yet
    /// (its rows would otherwise land in the shared tables); `Db`.
    pub async fn begin<C: TransactionTrait>(&self, db: &C) -> Result<TenantTxn<C::Transaction>> {
        self.begin_isolated(db, None).await
    }

    /// [`TenantCtx::begin`] at `isolation`: READ COMMITTED for the queue's locking
    /// reads on MariaDB, whose default REPEATABLE READ locks the gaps between index
    /// entries too, so concurrent takers deadlock on each other's gaps.
    pub(crate) async fn begin_isolated<C: TransactionTrait>(
        &self,
        db: &C,
        isolation: Option<TxnIsolation>,
    ) -> Result<TenantTxn<C::Transaction>> {
        self.begin_with(db, isolation, None).await
    }

    /// [`TenantCtx::begin`] with the application's clock set for row-level security
    /// too (`app.current_time`, for policies that compare times the service wrote,
    /// such as grant expiries), in the same statement as the tenant and actor.
    pub(crate) async fn begin_at<C: TransactionTrait>(
        &self,
        db: &C,
        now: DateTime<Utc>,
    ) -> Result<TenantTxn<C::Transaction>> {
        self.begin_with(db, None, Some(now)).await
    }

    async fn begin_with<C: TransactionTrait>(
        &self,
        db: &C,
        isolation: Option<TxnIsolation>,
        now: Option<DateTime<Utc>>,
    ) -> Result<TenantTxn<C::Transaction>> {
        let txn = begin_write_isolated(db, isolation).await?;
        if txn.get_database_backend() == DbBackend::Postgres && self.own_schema.is_none() {
            // Every tenant operation starts here: the context and the membership proof
            // in one round trip.
            let row = txn
                .query_one_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    CONTEXT_AND_MEMBERSHIP,
                    [
                        self.tenant_id.to_string().into(),
                        self.actor.to_string().into(),
                        now.map(|at| at.to_rfc3339()).unwrap_or_default().into(),
                        self.tenant_id.into(),
                        self.actor.into(),
                    ],
                ))
                .await?;
            let role = row
                .map(|r| r.try_get_by_index::<Option<MembershipRole>>(0))
                .transpose()?
                .flatten()
                .ok_or_else(not_a_member)?;
            return Ok(TenantTxn {
                txn,
                tenant_id: self.tenant_id,
                actor: self.actor,
                role,
            });
        }
        set_row_security_context_at(&txn, Some(self.tenant_id), Some(self.actor), now).await?;
        if let Some(schema) = &self.own_schema {
            let row = txn
                .query_one_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    // The search path before any tenant's schema went on it is kept in
                    // `app.base_search_path`, so the next tenant in the same transaction
                    // (set_config is local to the transaction, not to a savepoint) starts
                    // from it again.
                    "WITH base AS (
                         SELECT COALESCE(NULLIF(current_setting('app.base_search_path', true), ''),
                                         current_setting('search_path')) AS path)
                     SELECT set_config('app.base_search_path', path, true),
                            set_config('search_path', quote_ident($1) || ',' || path, true),
                            CASE WHEN to_regnamespace(quote_ident($1)) IS NULL THEN 0 ELSE 1 END
                       FROM base",
                    [schema.clone().into()],
                ))
                .await?;
            let provisioned = row
                .map(|r| r.try_get_by_index::<i32>(2))
                .transpose()?
                .unwrap_or(0)
                == 1;
            if !provisioned {
                return Err(ServiceError::Conflict {
                    entity: "tenant",
                    reason: "its schema is not provisioned yet: run `cargo run -p migration -- tenants up`",
                });
            }
        }
        let role = memberships::Entity::find()
            .select_only()
            .column(memberships::Column::Role)
            .inner_join(tenants::Entity)
            .filter(memberships::Column::TenantId.eq(self.tenant_id))
            .filter(memberships::Column::UserId.eq(self.actor))
            .filter(memberships::Column::Status.eq(MembershipStatus::Active))
            .filter(tenants::Column::IsActive.eq(true))
            .into_tuple::<MembershipRole>()
            .one(&txn)
            .await?
            .ok_or_else(not_a_member)?;
        Ok(TenantTxn {
            txn,
            tenant_id: self.tenant_id,
            actor: self.actor,
            role,
        })
    }

    pub fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }

    pub fn actor(&self) -> UserId {
        self.actor
    }
}

/// [`set_row_security_context_at`] and the membership query of [`TenantCtx::begin`] as
/// one PostgreSQL statement. The membership subquery reads the context's row, so it
/// runs after the settings it depends on are in place (an uncorrelated one could be
/// evaluated first). Names resolve when the statement is parsed, before the search
/// path is reset: `memberships` and `tenants` live only in the main schema.
const CONTEXT_AND_MEMBERSHIP: &str = "
WITH context AS MATERIALIZED (
    SELECT set_config('app.current_tenant_id', $1, true) AS tenant,
           set_config('app.current_user_id', $2, true) AS actor,
           set_config('app.current_time', $3, true) AS at,
           CASE WHEN current_setting('app.base_search_path', true) <> ''
                THEN set_config('search_path', current_setting('app.base_search_path'), true) END AS path)
SELECT (SELECT m.role FROM memberships m JOIN tenants t ON t.id = m.tenant_id
         WHERE m.tenant_id = $4 AND m.user_id = $5 AND m.status = 'active' AND t.is_active
           AND context.tenant IS NOT NULL) AS role
  FROM context";

fn not_a_member() -> ServiceError {
    ServiceError::Forbidden {
        reason: "not an active member of this tenant",
    }
}

/// A transaction opened by [`TenantCtx::begin`]: the tenant's context is set in it
/// and the actor's membership was proved in it. Use it wherever a connection goes;
/// commit or roll back like any transaction.
#[derive(Debug)]
pub struct TenantTxn<T> {
    txn: T,
    tenant_id: TenantId,
    actor: UserId,
    role: MembershipRole,
}

impl<T: TransactionSession> TenantTxn<T> {
    pub async fn commit(self) -> std::result::Result<(), DbErr> {
        self.txn.commit().await
    }

    pub async fn rollback(self) -> std::result::Result<(), DbErr> {
        self.txn.rollback().await
    }
}

impl<T> TenantTxn<T> {
    pub fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }

    pub fn actor(&self) -> UserId {
        self.actor
    }

    /// The actor's role, as read in this transaction.
    pub fn role(&self) -> MembershipRole {
        self.role
    }

    /// Owners and admins manage the member list; members do not.
    pub(crate) fn require_member_manager(&self) -> Result<()> {
        if self.is_owner_or_admin() {
            Ok(())
        } else {
            Err(ServiceError::Forbidden {
                reason: "only owners and admins manage members",
            })
        }
    }

    /// Owners and admins may do what a domain otherwise grants by permission.
    pub(crate) fn is_owner_or_admin(&self) -> bool {
        matches!(self.role, MembershipRole::Owner | MembershipRole::Admin)
    }
}

impl<T: crate::transaction::InTransaction + Send> crate::transaction::InTransaction
    for TenantTxn<T>
{
}

#[sea_orm::prelude::async_trait::async_trait]
impl<T: ConnectionTrait + Send> ConnectionTrait for TenantTxn<T> {
    fn get_database_backend(&self) -> DbBackend {
        self.txn.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> std::result::Result<ExecResult, DbErr> {
        self.txn.execute_raw(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> std::result::Result<ExecResult, DbErr> {
        self.txn.execute_unprepared(sql).await
    }

    async fn query_one_raw(
        &self,
        stmt: Statement,
    ) -> std::result::Result<Option<QueryResult>, DbErr> {
        self.txn.query_one_raw(stmt).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> std::result::Result<Vec<QueryResult>, DbErr> {
        self.txn.query_all_raw(stmt).await
    }

    fn support_returning(&self) -> bool {
        self.txn.support_returning()
    }

    fn is_mock_connection(&self) -> bool {
        self.txn.is_mock_connection()
    }
}

/// Nested work (a savepoint) inside the tenant's transaction.
#[sea_orm::prelude::async_trait::async_trait]
impl<T: TransactionTrait + Send> TransactionTrait for TenantTxn<T> {
    type Transaction = T::Transaction;

    async fn begin(&self) -> std::result::Result<Self::Transaction, DbErr> {
        self.txn.begin().await
    }

    async fn begin_with_config(
        &self,
        isolation_level: Option<TxnIsolation>,
        access_mode: Option<AccessMode>,
    ) -> std::result::Result<Self::Transaction, DbErr> {
        self.txn
            .begin_with_config(isolation_level, access_mode)
            .await
    }

    async fn begin_with_options(
        &self,
        options: TransactionOptions,
    ) -> std::result::Result<Self::Transaction, DbErr> {
        self.txn.begin_with_options(options).await
    }

    async fn transaction<F, R, E>(&self, callback: F) -> std::result::Result<R, TransactionError<E>>
    where
        F: for<'c> FnOnce(
                &'c Self::Transaction,
            )
                -> Pin<Box<dyn Future<Output = std::result::Result<R, E>> + Send + 'c>>
            + Send,
        R: Send,
        E: std::fmt::Display + std::fmt::Debug + Send,
    {
        self.txn.transaction(callback).await
    }

    async fn transaction_with_config<F, R, E>(
        &self,
        callback: F,
        isolation_level: Option<TxnIsolation>,
        access_mode: Option<AccessMode>,
    ) -> std::result::Result<R, TransactionError<E>>
    where
        F: for<'c> FnOnce(
                &'c Self::Transaction,
            )
                -> Pin<Box<dyn Future<Output = std::result::Result<R, E>> + Send + 'c>>
            + Send,
        R: Send,
        E: std::fmt::Display + std::fmt::Debug + Send,
    {
        self.txn
            .transaction_with_config(callback, isolation_level, access_mode)
            .await
    }
}

/// Serialises changes to a tenant's graphs (team tree, role inheritance), so two
/// concurrent changes cannot each pass a cycle check and together close a cycle.
/// SQLite's `BEGIN IMMEDIATE` already serialises all writers.
pub(crate) async fn lock_tenant<C: ConnectionTrait>(db: &C, tenant: TenantId) -> Result<()> {
    if db.get_database_backend() != DbBackend::Sqlite {
        tenants::Entity::find_by_id(tenant)
            .lock_exclusive()
            .one(db)
            .await?;
    }
    Ok(())
}

/// Tells PostgreSQL's row-level security who is asking, for the rest of the
/// transaction `db`. Without it the runtime role sees no tenant's rows. Other backends
/// have no row-level security; the service filters by tenant itself there (and here).
pub(crate) async fn set_row_security_context<C: ConnectionTrait>(
    db: &C,
    tenant: Option<TenantId>,
    user: Option<UserId>,
) -> Result<()> {
    set_row_security_context_at(db, tenant, user, None).await
}

/// [`set_row_security_context`], and the application's clock (`app.current_time`;
/// unset, policies use the server's).
pub(crate) async fn set_row_security_context_at<C: ConnectionTrait>(
    db: &C,
    tenant: Option<TenantId>,
    user: Option<UserId>,
    now: Option<DateTime<Utc>>,
) -> Result<()> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let as_text = |id: Option<String>| id.unwrap_or_default();
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        // A schema-isolated tenant earlier in the same transaction put its schema first
        // on the search path; take it off again (see `TenantCtx::begin`).
        "SELECT set_config('app.current_tenant_id', $1, true), set_config('app.current_user_id', $2, true),
                set_config('app.current_time', $3, true),
                CASE WHEN current_setting('app.base_search_path', true) <> ''
                     THEN set_config('search_path', current_setting('app.base_search_path'), true) END",
        [
            as_text(tenant.map(|t| t.to_string())).into(),
            as_text(user.map(|u| u.to_string())).into(),
            as_text(now.map(|at| at.to_rfc3339())).into(),
        ],
    ))
    .await?;
    Ok(())
}
