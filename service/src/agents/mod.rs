//! The agent task queue: a tenant's members enqueue work for its agents, workers take
//! it one task at a time, report a result or a failure, and show they are alive.
//!
//! Every call runs in the tenant's transaction ([`TenantCtx::begin`]) and needs
//! `agents:run` ([`has_permission`], tenant-wide). A task is taken by exactly one
//! worker: on PostgreSQL and MariaDB the candidate row is locked with `FOR UPDATE SKIP
//! LOCKED`, so concurrent workers pass over each other's rows instead of waiting; on
//! SQLite one `UPDATE ... RETURNING` both picks and takes it, and SQLite runs one
//! writer at a time. A failed attempt goes back to the queue after an exponential
//! backoff until `max_attempts`; a worker that stops sending heartbeats loses its task
//! to [`recover_stalled`], which counts that as a failed attempt.
//!
//! Audited: enqueueing, taking, finishing (each attempt's success or failure),
//! cancelling and recovering. A heartbeat only moves a liveness stamp, like an API
//! key's `last_used_at`, and is not.

use crate::Result;
use crate::access::{Scope, has_permission};
use crate::audit::{AuditEntry, AuditEvent, record};
use crate::deps::Deps;
use crate::error::ServiceError;
use crate::request::RequestMeta;
use crate::tenancy::{TenantCtx, TenantTxn};
use chrono::{DateTime, Utc};
use entity::agents::agent_results::{self, ResultOutcome};
use entity::agents::agent_tasks::{self, TaskStatus};
use entity::{AgentResultId, AgentTaskId};
use sea_orm::sea_query::{Expr, ExprTrait, LockBehavior, LockType, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, IdenStatic, IsolationLevel, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};
use serde_json::{Value as Json, json};

mod input;

pub use input::{AttemptFailed, Lease, MAX_ERROR_CHARS, MAX_PAYLOAD_BYTES, NewTask, WorkerId};
use input::{bounded_json, error_text};

/// Opens the tenant's transaction and checks `agents:run` in it.
async fn begin_runner<C>(db: &C, deps: &Deps, ctx: &TenantCtx) -> Result<TenantTxn<C::Transaction>>
where
    C: ConnectionTrait + TransactionTrait + 'static,
{
    begin_runner_isolated(db, deps, ctx, false).await
}

/// [`begin_runner`] for locking reads that skip what others hold: READ COMMITTED on
/// MariaDB (see [`TenantCtx::begin_isolated`]); PostgreSQL runs at it already. Run
/// the queue inside a transaction of your own on MariaDB only at READ COMMITTED.
async fn begin_runner_isolated<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    skips_locked: bool,
) -> Result<TenantTxn<C::Transaction>>
where
    C: ConnectionTrait + TransactionTrait + 'static,
{
    // Only for a transaction of its own: inside a caller's, the caller chose (and
    // MariaDB cannot change it midway).
    let any = db as &dyn std::any::Any;
    let in_transaction = any.is::<sea_orm::DatabaseTransaction>()
        || any.is::<TenantTxn<sea_orm::DatabaseTransaction>>();
    let isolation =
        (skips_locked && !in_transaction && db.get_database_backend() == DbBackend::MySql)
            .then_some(IsolationLevel::ReadCommitted);
    let txn = ctx.begin_isolated(db, isolation).await?;
    if !has_permission(&txn, deps, ctx.actor(), "agents", "run", Scope::Tenant).await? {
        return Err(ServiceError::Forbidden {
            reason: "running agents needs the agents:run permission",
        });
    }
    Ok(txn)
}

/// Enqueues `task` in the context's tenant. Records `agent_task_enqueued`.
///
/// # Errors
/// `Forbidden` without `agents:run`; `Db`.
pub async fn enqueue<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    task: NewTask,
    meta: &RequestMeta,
) -> Result<agent_tasks::Model>
where
    C: ConnectionTrait + TransactionTrait + 'static,
{
    let txn = begin_runner(db, deps, ctx).await?;
    let now = deps.now();
    let id = AgentTaskId(deps.new_id(
        "agent_tasks",
        &format!(
            "{}/{}/{}",
            ctx.tenant_id(),
            task.agent,
            now.timestamp_micros()
        ),
    ));
    let model = agent_tasks::Model {
        id,
        tenant_id: ctx.tenant_id(),
        agent: task.agent,
        payload: task.payload,
        status: TaskStatus::Queued,
        priority: task.priority,
        attempts: 0,
        max_attempts: task.max_attempts,
        run_after: task.run_after.unwrap_or(now),
        locked_by: None,
        locked_at: None,
        heartbeat_at: None,
        last_error: None,
        created_by: Some(ctx.actor()),
        created_at: now,
        updated_at: now,
        finished_at: None,
    };
    agent_tasks::Entity::insert(agent_tasks::ActiveModel::from(model.clone()))
        .exec_without_returning(&txn)
        .await?;
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::AgentTaskEnqueued, meta)
            .resource("agent_task", id)
            .details(json!({
                "agent": model.agent,
                "priority": model.priority,
                "max_attempts": model.max_attempts,
                "run_after": model.run_after,
            })),
    )
    .await?;
    txn.commit().await?;
    Ok(model)
}

/// Takes the context's tenant's next due task for `worker`: the highest priority,
/// then the earliest `run_after`, of the `queued` tasks due now. It becomes `running`,
/// held by `worker`, its attempt counted. `None` when nothing is due. Records
/// `agent_task_claimed`.
///
/// # Errors
/// `Forbidden` without `agents:run`; `Db`.
pub async fn claim_next<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    worker: &WorkerId,
    meta: &RequestMeta,
) -> Result<Option<agent_tasks::Model>>
where
    C: ConnectionTrait + TransactionTrait + 'static,
{
    let txn = begin_runner_isolated(db, deps, ctx, true).await?;
    let now = deps.now();
    let backend = txn.get_database_backend();
    let mut next = Query::select();
    next.column(agent_tasks::Column::Id)
        .from(agent_tasks::Entity)
        .and_where(agent_tasks::Column::TenantId.eq(ctx.tenant_id()))
        .and_where(agent_tasks::Column::Status.eq(TaskStatus::Queued))
        .and_where(agent_tasks::Column::RunAfter.lte(now))
        .order_by(agent_tasks::Column::Priority, sea_orm::Order::Desc)
        .order_by(agent_tasks::Column::RunAfter, sea_orm::Order::Asc)
        .order_by(agent_tasks::Column::Id, sea_orm::Order::Asc)
        .limit(1);
    if backend != DbBackend::Sqlite {
        // Rows other workers are taking right now are passed over, not waited for.
        next.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    let take = agent_tasks::Entity::update_many()
        .col_expr(
            agent_tasks::Column::Status,
            Expr::value(TaskStatus::Running),
        )
        .col_expr(agent_tasks::Column::LockedBy, Expr::value(worker.as_str()))
        .col_expr(agent_tasks::Column::LockedAt, Expr::value(now))
        .col_expr(agent_tasks::Column::HeartbeatAt, Expr::value(now))
        .col_expr(
            agent_tasks::Column::Attempts,
            Expr::col(agent_tasks::Column::Attempts).add(1),
        )
        .col_expr(agent_tasks::Column::UpdatedAt, Expr::value(now))
        .filter(agent_tasks::Column::TenantId.eq(ctx.tenant_id()))
        .filter(agent_tasks::Column::Status.eq(TaskStatus::Queued));
    let taken = if backend == DbBackend::MySql {
        // MariaDB can neither read the table it updates in a subquery nor return
        // updated rows: the locked candidate's id first, then the update.
        let id: Option<AgentTaskId> = txn
            .query_one(&next)
            .await?
            .map(|row| row.try_get("", agent_tasks::Column::Id.as_str()))
            .transpose()?;
        match id {
            None => None,
            Some(id) => {
                take.filter(agent_tasks::Column::Id.eq(id))
                    .exec(&txn)
                    .await?;
                agent_tasks::Entity::find_by_id(id).one(&txn).await?
            }
        }
    } else {
        // One statement picks and takes the task. `id = (subquery)`, not `IN`: a
        // scalar subquery runs once, where PostgreSQL may run an `IN` subquery per
        // candidate row, and with SKIP LOCKED each run may pick another task.
        let picked = Expr::SubQuery(None, Box::new(next.into()));
        take.filter(Expr::col(agent_tasks::Column::Id).eq(picked))
            .exec_with_returning(&txn)
            .await?
            .into_iter()
            .next()
    };
    let Some(task) = taken else {
        txn.commit().await?;
        return Ok(None);
    };
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::AgentTaskClaimed, meta)
            .resource("agent_task", task.id)
            .details(json!({ "worker": worker.as_str(), "attempt": task.attempts })),
    )
    .await?;
    txn.commit().await?;
    Ok(Some(task))
}

/// An update that ends the running attempt's hold: no worker, no lock, no heartbeat.
fn released() -> sea_orm::UpdateMany<agent_tasks::Entity> {
    agent_tasks::Entity::update_many()
        .col_expr(
            agent_tasks::Column::LockedBy,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            agent_tasks::Column::LockedAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            agent_tasks::Column::HeartbeatAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
}

/// Task `id` of the transaction's tenant, locked for the rest of the transaction
/// when `lock`.
async fn find_task(
    txn: &TenantTxn<impl ConnectionTrait + Send>,
    id: AgentTaskId,
    lock: bool,
) -> Result<agent_tasks::Model> {
    let mut find = agent_tasks::Entity::find_by_id(id)
        .filter(agent_tasks::Column::TenantId.eq(txn.tenant_id()));
    if lock {
        find = find.lock_exclusive();
    }
    find.one(txn)
        .await?
        .ok_or_else(|| ServiceError::not_found("agent task", id))
}

/// The task of `lease` as `worker` holds it, locked for the rest of the transaction.
async fn held(
    txn: &TenantTxn<impl ConnectionTrait + Send>,
    lease: &Lease,
    worker: &WorkerId,
) -> Result<agent_tasks::Model> {
    let id = lease.task;
    let task = find_task(txn, id, true).await?;
    if task.status != TaskStatus::Running
        || task.locked_by.as_deref() != Some(worker.as_str())
        || task.attempts != lease.attempt
    {
        return Err(ServiceError::Conflict {
            entity: "agent task",
            reason: "this lease is over: the task finished, was cancelled or was taken back",
        });
    }
    Ok(task)
}

/// Shows that `worker` is still working on its `lease`.
///
/// # Errors
/// `Conflict` when the lease is over (stop working on it: it was cancelled
/// or taken back); `NotFound`; `Forbidden` without `agents:run`; `Db`.
pub async fn heartbeat<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    lease: &Lease,
    worker: &WorkerId,
) -> Result<()>
where
    C: ConnectionTrait + TransactionTrait + 'static,
{
    let txn = begin_runner(db, deps, ctx).await?;
    let beat = agent_tasks::Entity::update_many()
        .col_expr(agent_tasks::Column::HeartbeatAt, Expr::value(deps.now()))
        .filter(agent_tasks::Column::Id.eq(lease.task))
        .filter(agent_tasks::Column::TenantId.eq(ctx.tenant_id()))
        .filter(agent_tasks::Column::Status.eq(TaskStatus::Running))
        .filter(agent_tasks::Column::LockedBy.eq(worker.as_str()))
        .filter(agent_tasks::Column::Attempts.eq(lease.attempt))
        .exec(&txn)
        .await?;
    if beat.rows_affected == 0 {
        held(&txn, lease, worker).await?;
    }
    txn.commit().await?;
    Ok(())
}

/// Finishes the task of `lease` with `output`: `succeeded`, its result stored. Records
/// `agent_task_succeeded`.
///
/// # Errors
/// `Conflict` when the lease is over; `Validation` for an output over
/// [`MAX_PAYLOAD_BYTES`]; `NotFound`; `Forbidden` without `agents:run`; `Db`.
pub async fn complete<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    lease: &Lease,
    worker: &WorkerId,
    output: Json,
    meta: &RequestMeta,
) -> Result<agent_results::Model>
where
    C: ConnectionTrait + TransactionTrait + 'static,
{
    let output = bounded_json("output", output)?;
    let txn = begin_runner(db, deps, ctx).await?;
    let task = held(&txn, lease, worker).await?;
    let id = task.id;
    let now = deps.now();
    released()
        .col_expr(
            agent_tasks::Column::Status,
            Expr::value(TaskStatus::Succeeded),
        )
        .col_expr(agent_tasks::Column::FinishedAt, Expr::value(now))
        .col_expr(agent_tasks::Column::UpdatedAt, Expr::value(now))
        .filter(agent_tasks::Column::Id.eq(id))
        .filter(agent_tasks::Column::TenantId.eq(ctx.tenant_id()))
        .exec(&txn)
        .await?;
    let result = store_result(&txn, deps, &task, worker, Ok(output), now).await?;
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::AgentTaskSucceeded, meta)
            .resource("agent_task", id)
            .details(json!({ "worker": worker.as_str(), "attempt": task.attempts })),
    )
    .await?;
    txn.commit().await?;
    Ok(result)
}

/// Records that `worker`'s attempt on `lease` failed with `error`: back to the queue
/// after the policy's backoff while attempts remain, else `failed`. Records
/// `agent_task_failed`.
///
/// # Errors
/// `Conflict` when the lease is over; `NotFound`; `Forbidden` without
/// `agents:run`; `Db`.
pub async fn fail<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    lease: &Lease,
    worker: &WorkerId,
    error: &str,
    meta: &RequestMeta,
) -> Result<AttemptFailed>
where
    C: ConnectionTrait + TransactionTrait + 'static,
{
    let txn = begin_runner(db, deps, ctx).await?;
    let task = held(&txn, lease, worker).await?;
    let id = task.id;
    let outcome = end_failed_attempt(&txn, deps, &task, worker, &error_text(error)).await?;
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::AgentTaskFailed, meta)
            .resource("agent_task", id)
            .details(failure_details(&task, worker, outcome)),
    )
    .await?;
    txn.commit().await?;
    Ok(outcome)
}

fn failure_details(task: &agent_tasks::Model, worker: &WorkerId, outcome: AttemptFailed) -> Json {
    json!({
        "worker": worker.as_str(),
        "attempt": task.attempts,
        "max_attempts": task.max_attempts,
        "retry_after": match outcome {
            AttemptFailed::Retried { run_after } => Some(run_after),
            AttemptFailed::GaveUp => None,
        },
    })
}

/// Ends `task`'s running attempt as failed: its result row, then the queue again or
/// `failed`.
async fn end_failed_attempt(
    txn: &TenantTxn<impl ConnectionTrait + Send>,
    deps: &Deps,
    task: &agent_tasks::Model,
    worker: &WorkerId,
    error: &str,
) -> Result<AttemptFailed> {
    let now = deps.now();
    let outcome = if task.attempts < task.max_attempts {
        AttemptFailed::Retried {
            run_after: now + deps.config.agent_queue.backoff(task.attempts),
        }
    } else {
        AttemptFailed::GaveUp
    };
    let (status, run_after, finished_at) = match outcome {
        AttemptFailed::Retried { run_after } => (TaskStatus::Queued, run_after, None),
        AttemptFailed::GaveUp => (TaskStatus::Failed, task.run_after, Some(now)),
    };
    released()
        .col_expr(agent_tasks::Column::Status, Expr::value(status))
        .col_expr(agent_tasks::Column::RunAfter, Expr::value(run_after))
        .col_expr(agent_tasks::Column::FinishedAt, Expr::value(finished_at))
        .col_expr(agent_tasks::Column::LastError, Expr::value(error))
        .col_expr(agent_tasks::Column::UpdatedAt, Expr::value(now))
        .filter(agent_tasks::Column::Id.eq(task.id))
        .filter(agent_tasks::Column::TenantId.eq(task.tenant_id))
        .exec(txn)
        .await?;
    store_result(txn, deps, task, worker, Err(error), now).await?;
    Ok(outcome)
}

async fn store_result(
    txn: &TenantTxn<impl ConnectionTrait + Send>,
    deps: &Deps,
    task: &agent_tasks::Model,
    worker: &WorkerId,
    result: std::result::Result<Json, &str>,
    now: DateTime<Utc>,
) -> Result<agent_results::Model> {
    let id = AgentResultId(deps.new_id("agent_results", &format!("{}/{}", task.id, task.attempts)));
    let (outcome, output, error) = match result {
        Ok(output) => (ResultOutcome::Succeeded, Some(output), None),
        Err(error) => (ResultOutcome::Failed, None, Some(error.to_owned())),
    };
    let model = agent_results::Model {
        id,
        tenant_id: task.tenant_id,
        task_id: task.id,
        attempt: task.attempts,
        outcome,
        output,
        error,
        worker: worker.as_str().to_owned(),
        started_at: task.locked_at.unwrap_or(now),
        finished_at: now,
    };
    agent_results::Entity::insert(agent_results::ActiveModel::from(model.clone()))
        .exec_without_returning(txn)
        .await?;
    Ok(model)
}

/// Cancels task `id` if it has not finished: a queued task is never taken, a running
/// one's worker finds out at its next heartbeat or result. Records
/// `agent_task_cancelled`.
///
/// # Errors
/// `Conflict` for a finished task; `NotFound`; `Forbidden` without `agents:run`; `Db`.
pub async fn cancel<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    id: AgentTaskId,
    meta: &RequestMeta,
) -> Result<()>
where
    C: ConnectionTrait + TransactionTrait + 'static,
{
    let txn = begin_runner(db, deps, ctx).await?;
    let task = find_task(&txn, id, true).await?;
    if task.status.is_finished() {
        return Err(ServiceError::Conflict {
            entity: "agent task",
            reason: "it has already finished",
        });
    }
    let now = deps.now();
    released()
        .col_expr(
            agent_tasks::Column::Status,
            Expr::value(TaskStatus::Cancelled),
        )
        .col_expr(agent_tasks::Column::FinishedAt, Expr::value(now))
        .col_expr(agent_tasks::Column::UpdatedAt, Expr::value(now))
        .filter(agent_tasks::Column::Id.eq(id))
        .filter(agent_tasks::Column::TenantId.eq(ctx.tenant_id()))
        .exec(&txn)
        .await?;
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::AgentTaskCancelled, meta)
            .resource("agent_task", id)
            .details(json!({ "was": task.status, "attempts": task.attempts })),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// Takes back the context's tenant's running tasks whose worker sent no heartbeat for
/// the policy's `stall_after`: each such attempt counts as failed (retried while
/// attempts remain). Tasks another caller is recovering at the same time are passed
/// over. Returns how many were taken back; records `agent_tasks_recovered` when any
/// were.
///
/// # Errors
/// `Forbidden` without `agents:run`; `Db`.
pub async fn recover_stalled<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    meta: &RequestMeta,
) -> Result<usize>
where
    C: ConnectionTrait + TransactionTrait + 'static,
{
    let txn = begin_runner_isolated(db, deps, ctx, true).await?;
    let quiet_since = deps.now() - deps.config.agent_queue.stall_after;
    let mut stalled = agent_tasks::Entity::find()
        .filter(agent_tasks::Column::TenantId.eq(ctx.tenant_id()))
        .filter(agent_tasks::Column::Status.eq(TaskStatus::Running))
        .filter(agent_tasks::Column::HeartbeatAt.lt(quiet_since))
        .order_by_asc(agent_tasks::Column::Id)
        .limit(1000);
    if txn.get_database_backend() != DbBackend::Sqlite {
        stalled = stalled.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    let stalled = stalled.all(&txn).await?;
    let mut recovered = Vec::with_capacity(stalled.len());
    for task in &stalled {
        let worker = WorkerId(task.locked_by.clone().unwrap_or_default());
        let error = format!("worker {} stopped sending heartbeats", worker.as_str());
        let outcome = end_failed_attempt(&txn, deps, task, &worker, &error).await?;
        recovered.push(json!({
            "task": task.id,
            "worker": worker.as_str(),
            "attempt": task.attempts,
            "gave_up": outcome == AttemptFailed::GaveUp,
        }));
    }
    if !recovered.is_empty() {
        record(
            &txn,
            deps,
            AuditEntry::by_member(ctx, AuditEvent::AgentTasksRecovered, meta)
                .resource("tenant", ctx.tenant_id())
                .risk(20)
                .details(json!({ "tasks": recovered })),
        )
        .await?;
    }
    txn.commit().await?;
    Ok(recovered.len())
}

/// Task `id` of the context's tenant.
///
/// # Errors
/// `NotFound`; `Forbidden` without `agents:run`; `Db`.
pub async fn task<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    id: AgentTaskId,
) -> Result<agent_tasks::Model>
where
    C: ConnectionTrait + TransactionTrait + 'static,
{
    let txn = begin_runner(db, deps, ctx).await?;
    let task = find_task(&txn, id, false).await?;
    txn.commit().await?;
    Ok(task)
}

/// The results of task `id`'s finished attempts, in order.
///
/// # Errors
/// `Forbidden` without `agents:run`; `Db`.
pub async fn results<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    id: AgentTaskId,
) -> Result<Vec<agent_results::Model>>
where
    C: ConnectionTrait + TransactionTrait + 'static,
{
    let txn = begin_runner(db, deps, ctx).await?;
    let rows = agent_results::Entity::find()
        .filter(agent_results::Column::TenantId.eq(ctx.tenant_id()))
        .filter(agent_results::Column::TaskId.eq(id))
        .order_by_asc(agent_results::Column::Attempt)
        .all(&txn)
        .await?;
    txn.commit().await?;
    Ok(rows)
}
