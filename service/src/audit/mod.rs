//! Writing and reading the audit trail.
//!
//! Operations call [`record`] on the same connection (usually their transaction) as the
//! change they audit, so the row commits or rolls back with it.

mod catalogue;
mod chain_writer;
pub mod checkpoint;
mod events;
pub mod verify;

pub use catalogue::{AddedEventType, NewEventType, add_event_type, added_event_type};
pub use checkpoint::{
    Checkpoint, CheckpointError, CheckpointKey, CheckpointKeyError, sign_checkpoint,
    verify_against_checkpoint,
};
pub use events::AuditEvent;
pub use verify::{ChainScope, Finding, VerifyReport, verify};

use crate::Result;
use crate::deps::Deps;
use crate::request::RequestMeta;
use crate::tenancy::TenantCtx;
use crate::transaction::InTransaction;
use entity::audit::audit_logs::{self, AuditOutcome};
use entity::audit::chain;
use entity::{AuditLogId, TenantId, UserId};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Statement, TransactionSession, TransactionTrait,
};
use serde_json::{Value as Json, json};
use std::borrow::Cow;

/// One audit row to write. Build with [`AuditEntry::new`] and the `with_*` methods.
#[derive(Clone, Debug)]
pub struct AuditEntry<'a> {
    event_type: Cow<'static, str>,
    outcome: AuditOutcome,
    tenant_id: Option<TenantId>,
    actor: Option<UserId>,
    resource: Option<(&'static str, String)>,
    risk_score: i16,
    details: Json,
    request: &'a RequestMeta,
}

impl<'a> AuditEntry<'a> {
    pub fn new(event: AuditEvent, outcome: AuditOutcome, request: &'a RequestMeta) -> Self {
        Self::of_code(Cow::Borrowed(event.code()), outcome, request)
    }

    /// An entry of an event type added at run time ([`add_event_type`]).
    pub fn of_added_type(
        event_type: &AddedEventType,
        outcome: AuditOutcome,
        request: &'a RequestMeta,
    ) -> Self {
        Self::of_code(Cow::Owned(event_type.code().to_owned()), outcome, request)
    }

    fn of_code(
        event_type: Cow<'static, str>,
        outcome: AuditOutcome,
        request: &'a RequestMeta,
    ) -> Self {
        Self {
            event_type,
            outcome,
            tenant_id: None,
            actor: None,
            resource: None,
            risk_score: 0,
            details: json!({}),
            request,
        }
    }

    /// A successful action of the context's actor in the context's tenant: what most
    /// tenant-scoped operations record.
    pub fn by_member(ctx: &TenantCtx, event: AuditEvent, request: &'a RequestMeta) -> Self {
        Self::new(event, AuditOutcome::Success, request)
            .tenant(ctx.tenant_id())
            .actor(ctx.actor())
    }

    pub fn tenant(mut self, tenant_id: TenantId) -> Self {
        self.tenant_id = Some(tenant_id);
        self
    }

    pub fn actor(mut self, user_id: UserId) -> Self {
        self.actor = Some(user_id);
        self
    }

    pub fn resource(mut self, kind: &'static str, id: impl ToString) -> Self {
        self.resource = Some((kind, id.to_string()));
        self
    }

    /// 0 (routine) to 100; values outside are clamped.
    pub fn risk(mut self, score: i16) -> Self {
        self.risk_score = score.clamp(0, 100);
        self
    }

    pub fn details(mut self, details: Json) -> Self {
        self.details = details;
        self
    }
}

/// Appends one audit row to its chain, in `txn`: the transaction of the change it
/// records, so the row commits or rolls back with it.
///
/// The chain's head row stays locked until `txn` ends: the writers of one chain (one
/// tenant, or one user's events outside any tenant) take turns, so the chain never
/// forks; other chains' writers do not wait. Record late in a long transaction rather
/// than early, to hold the lock briefly.
pub async fn record(
    txn: &impl InTransaction,
    deps: &Deps,
    entry: AuditEntry<'_>,
) -> Result<AuditLogId> {
    let id = AuditLogId(deps.new_id("audit_logs", &entry.event_type));
    let (resource_type, resource_id) = match entry.resource {
        Some((kind, id)) => (Some(kind.to_owned()), Some(id)),
        None => (None, None),
    };
    let chain_id = chain::chain_of(entry.tenant_id.map(|t| t.0), entry.actor.map(|u| u.0));
    let row = audit_logs::Model {
        id,
        tenant_id: entry.tenant_id,
        actor_user_id: entry.actor,
        event_type: entry.event_type.into_owned(),
        resource_type,
        resource_id,
        outcome: entry.outcome,
        risk_score: entry.risk_score,
        ip_address: entry.request.ip_string(),
        user_agent: entry.request.user_agent().map(str::to_owned),
        details: entry.details,
        occurred_at: chain::to_stored_precision(deps.now()),
        chain_id,
        // The link (number, previous hash, hash) is made under the head's lock.
        chain_seq: 0,
        chain_version: chain::CURRENT_VERSION,
        prev_hash: Vec::new(),
        hash: Vec::new(),
    };
    chain_writer::append(txn, row).await?;
    Ok(id)
}

/// The newest `limit` events of the context's tenant, newest first.
///
/// # Errors
/// `Db` only.
pub async fn list_tenant_events<C>(
    db: &C,
    ctx: &TenantCtx,
    limit: u64,
) -> Result<Vec<audit_logs::Model>>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = ctx.begin(db).await?;
    let events = audit_logs::Entity::find()
        .filter(audit_logs::Column::TenantId.eq(ctx.tenant_id()))
        .order_by_desc(audit_logs::Column::OccurredAt)
        .order_by_desc(audit_logs::Column::Id)
        .limit(limit)
        .all(&txn)
        .await?;
    txn.commit().await?;
    Ok(events)
}

/// A user's own security history: the events outside any tenant (sign-ins,
/// sessions, registration) with the user as actor, newest first. What the user did
/// inside a tenant belongs to that tenant's trail ([`list_tenant_events`]).
///
/// # Errors
/// `Db` only.
pub async fn list_user_events<C>(
    db: &C,
    user_id: UserId,
    limit: u64,
) -> Result<Vec<audit_logs::Model>>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = crate::identity::begin_for_user(db, user_id).await?;
    let events = if txn.get_database_backend() == DbBackend::Postgres {
        // The runtime role reads tenant rows only; its own global events come through
        // the one function that returns them.
        audit_logs::Entity::find()
            .from_raw_sql(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT * FROM app_own_security_events($1)",
                [i32::try_from(limit).unwrap_or(i32::MAX).into()],
            ))
            .all(&txn)
            .await?
    } else {
        audit_logs::Entity::find()
            .filter(audit_logs::Column::ActorUserId.eq(user_id))
            .filter(audit_logs::Column::TenantId.is_null())
            .order_by_desc(audit_logs::Column::OccurredAt)
            .order_by_desc(audit_logs::Column::Id)
            .limit(limit)
            .all(&txn)
            .await?
    };
    txn.commit().await?;
    Ok(events)
}
