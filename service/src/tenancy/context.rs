//! [`TenantCtx`]: proof that an actor is an active member of an active tenant.
//!
//! It can only be built by checking the database, so a tenant-scoped operation that
//! takes one cannot be called on behalf of an outsider ("wrong tenant" is a
//! `Forbidden` here, before any tenant data is read).

use crate::error::ServiceError;
use crate::{Result, begin_write};
use entity::tenancy::memberships::{self, MembershipRole, MembershipStatus};
use entity::tenancy::tenants::{self, IsolationLevel};
use entity::{TenantId, UserId};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QuerySelect, Statement,
    TransactionSession, TransactionTrait,
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantCtx {
    tenant_id: TenantId,
    actor: UserId,
    role: MembershipRole,
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
                    role: membership.role,
                    own_schema,
                })
            }
            _ => Err(ServiceError::Forbidden {
                reason: "not an active member of this tenant",
            }),
        }
    }

    /// Opens the transaction a tenant-scoped operation runs in, with the tenant and
    /// actor set for PostgreSQL's row-level security (`set_config(..., true)`: they
    /// end with the transaction, so pooled connections never leak them). For a
    /// schema-isolated tenant, its schema also goes first on the search path.
    ///
    /// # Errors
    /// `Conflict` for a schema-isolated tenant whose schema was not provisioned yet
    /// (its rows would otherwise land in the shared tables); `Db`.
    pub async fn begin<C: TransactionTrait>(&self, db: &C) -> Result<C::Transaction> {
        let txn = begin_write(db).await?;
        set_row_security_context(&txn, Some(self.tenant_id), Some(self.actor)).await?;
        if let Some(schema) = &self.own_schema {
            let row = txn
                .query_one_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    "SELECT set_config('search_path', quote_ident($1) || ',' || current_setting('search_path'), true),
                            CASE WHEN to_regnamespace(quote_ident($1)) IS NULL THEN 0 ELSE 1 END",
                    [schema.clone().into()],
                ))
                .await?;
            let provisioned = row
                .map(|r| r.try_get_by_index::<i32>(1))
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
        Ok(txn)
    }

    pub fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }

    pub fn actor(&self) -> UserId {
        self.actor
    }

    pub fn role(&self) -> MembershipRole {
        self.role
    }

    /// Owners and admins manage the member list; members do not.
    pub(crate) fn require_member_manager(&self) -> Result<()> {
        match self.role {
            MembershipRole::Owner | MembershipRole::Admin => Ok(()),
            MembershipRole::Member => Err(ServiceError::Forbidden {
                reason: "only owners and admins manage members",
            }),
        }
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
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let as_text = |id: Option<String>| id.unwrap_or_default();
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT set_config('app.current_tenant_id', $1, true), set_config('app.current_user_id', $2, true)",
        [
            as_text(tenant.map(|t| t.to_string())).into(),
            as_text(user.map(|u| u.to_string())).into(),
        ],
    ))
    .await?;
    Ok(())
}
