//! The agent task queue.
//!
//! `agent_tasks`: work for an agent (its name and a JSON payload) in a tenant, taken
//! by workers in priority order once `run_after` has passed. A task is `queued`, then
//! `running` while a worker holds it (`locked_by`, `locked_at`, `heartbeat_at`), and
//! ends `succeeded`, `failed` (its attempts used up) or `cancelled`; a failed attempt
//! with attempts left goes back to `queued` with a later `run_after`. The database
//! holds the shape: a running task names its worker and nothing else does, a finished
//! one has `finished_at`, attempts stay within `max_attempts`.
//!
//! `agent_results`: one row per finished attempt (the output, or the error), tied to
//! its task in the same tenant by a composite foreign key.
//!
//! PostgreSQL: row-level security forced on both, per command, for the current
//! tenant. The runtime role reads and inserts tasks (only in the acting user's name)
//! and updates their state columns, never their tenant, agent, payload or author, and
//! deletes none (a task is cancelled, not removed); it reads and inserts results and
//! changes none. A trigger keeps a finished task finished and its attempts from going
//! back, whoever updates; a task is inserted only `queued`, with no attempt. The owner
//! reads every row; the reading roles read none.

use crate::lint::accept_lints;
use crate::schema_helpers::*;
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AgentTasks {
    Table,
    Id,
    TenantId,
    Agent,
    Payload,
    Status,
    Priority,
    Attempts,
    MaxAttempts,
    RunAfter,
    LockedBy,
    LockedAt,
    HeartbeatAt,
    LastError,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum AgentResults {
    Table,
    Id,
    TenantId,
    TaskId,
    Attempt,
    Outcome,
    Output,
    Error,
    Worker,
    StartedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

/// The event types the queue is audited with.
const EVENT_TYPES: &[(&str, &str, &str)] = &[
    ("agent_task_enqueued", "system", "Agent task enqueued"),
    (
        "agent_task_claimed",
        "system",
        "Agent task taken by a worker",
    ),
    (
        "agent_task_succeeded",
        "system",
        "Agent task finished with a result",
    ),
    (
        "agent_task_failed",
        "system",
        "Agent task attempt failed (retried while attempts remain)",
    ),
    ("agent_task_cancelled", "system", "Agent task cancelled"),
    (
        "agent_tasks_recovered",
        "system",
        "Agent tasks whose worker stopped heartbeating taken back",
    ),
];

const POSTGRES_UP: &str = r#"
ALTER TABLE agent_tasks ENABLE ROW LEVEL SECURITY;
ALTER TABLE agent_tasks FORCE ROW LEVEL SECURITY;
CREATE POLICY wall_select ON agent_tasks FOR SELECT USING (tenant_id = app_current_tenant());
CREATE POLICY wall_insert ON agent_tasks FOR INSERT
    WITH CHECK (tenant_id = app_current_tenant() AND created_by = app_current_user()
                AND status = 'queued' AND attempts = 0);
CREATE POLICY wall_update ON agent_tasks FOR UPDATE
    USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant());

ALTER TABLE agent_results ENABLE ROW LEVEL SECURITY;
ALTER TABLE agent_results FORCE ROW LEVEL SECURITY;
CREATE POLICY wall_select ON agent_results FOR SELECT USING (tenant_id = app_current_tenant());
CREATE POLICY wall_insert ON agent_results FOR INSERT WITH CHECK (tenant_id = app_current_tenant());

-- Whoever updates: a finished task stays finished, attempts are never given back.
CREATE FUNCTION app_agent_tasks_forward() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$
BEGIN
  IF (OLD.status IN ('succeeded', 'failed', 'cancelled') AND NEW.status IS DISTINCT FROM OLD.status)
     OR NEW.attempts < OLD.attempts THEN
    RAISE EXCEPTION 'agent task %: a finished task stays finished and its attempts only grow', OLD.id
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER agent_tasks_forward BEFORE UPDATE ON agent_tasks
    FOR EACH ROW EXECUTE FUNCTION app_agent_tasks_forward();

DO $owner$ BEGIN
  EXECUTE format('CREATE POLICY wall_owner_select ON agent_tasks FOR SELECT TO %I USING (true)', current_user);
  EXECUTE format('CREATE POLICY wall_owner_select ON agent_results FOR SELECT TO %I USING (true)', current_user);
END $owner$;

DO $walls$
DECLARE
  reader text;
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_service') THEN
    REVOKE ALL ON agent_tasks, agent_results FROM app_service;
    GRANT SELECT, INSERT ON agent_tasks, agent_results TO app_service;
    GRANT UPDATE (status, attempts, run_after, locked_by, locked_at, heartbeat_at, last_error,
                  updated_at, finished_at) ON agent_tasks TO app_service;
  END IF;
  FOREACH reader IN ARRAY ARRAY['read_only', 'compliance_officer', 'data_processor'] LOOP
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = reader) THEN
      EXECUTE format('REVOKE ALL ON agent_tasks, agent_results FROM %I', reader);
    END IF;
  END LOOP;
END
$walls$;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let length = |column: &str, range: &str| match backend {
            DbBackend::Sqlite => format!("LENGTH({column}) BETWEEN {range}"),
            _ => format!("CHAR_LENGTH({column}) BETWEEN {range}"),
        };
        let text_reason = (
            "prefer-text-field",
            "varchar(n) is the input limit, enforced by the database",
        );
        let small_reason = (
            "prefer-bigint-over-smallint",
            "priorities and attempt counts have a small range the database checks (0..100, 1..25)",
        );

        let tasks = create_table(backend, AgentTasks::Table)
            .col(uuid_pk(AgentTasks::Id))
            .col(uuid(AgentTasks::TenantId))
            .col(string(AgentTasks::Agent, 100))
            .col(json(AgentTasks::Payload))
            .col(string(AgentTasks::Status, 16))
            .col(small_integer(AgentTasks::Priority))
            .col(small_integer(AgentTasks::Attempts))
            .col(small_integer(AgentTasks::MaxAttempts))
            .col(timestamp(backend, AgentTasks::RunAfter))
            .col(string_null(AgentTasks::LockedBy, 100))
            .col(timestamp_null(backend, AgentTasks::LockedAt))
            .col(timestamp_null(backend, AgentTasks::HeartbeatAt))
            .col(string_null(AgentTasks::LastError, 2000))
            .col(uuid_null(AgentTasks::CreatedBy))
            .col(timestamp_default_now(backend, AgentTasks::CreatedAt))
            .col(timestamp_default_now(backend, AgentTasks::UpdatedAt))
            .col(timestamp_null(backend, AgentTasks::FinishedAt))
            .check(check_in(
                "ck_agent_tasks_status",
                AgentTasks::Status,
                &["queued", "running", "succeeded", "failed", "cancelled"],
            ))
            .check(Check::named(
                Alias::new("ck_agent_tasks_agent_length"),
                Expr::cust(length("agent", "1 AND 100")),
            ))
            .check(Check::named(
                Alias::new("ck_agent_tasks_priority"),
                Expr::cust("priority BETWEEN 0 AND 100"),
            ))
            .check(Check::named(
                Alias::new("ck_agent_tasks_attempts"),
                Expr::cust("max_attempts BETWEEN 1 AND 25 AND attempts BETWEEN 0 AND max_attempts"),
            ))
            // A running task names its worker, and only a running one does.
            .check(Check::named(
                Alias::new("ck_agent_tasks_lock"),
                Expr::cust(
                    "(status = 'running') = (locked_by IS NOT NULL AND locked_at IS NOT NULL AND heartbeat_at IS NOT NULL)",
                ),
            ))
            // Finished means when.
            .check(Check::named(
                Alias::new("ck_agent_tasks_finished"),
                Expr::cust(
                    "(status IN ('succeeded', 'failed', 'cancelled')) = (finished_at IS NOT NULL)",
                ),
            ))
            .foreign_key(&mut foreign_key(
                AgentTasks::Table,
                AgentTasks::TenantId,
                Tenants::Table,
                Tenants::Id,
                ForeignKeyAction::Restrict,
            ))
            .foreign_key(&mut foreign_key(
                AgentTasks::Table,
                AgentTasks::CreatedBy,
                Users::Table,
                Users::Id,
                ForeignKeyAction::SetNull,
            ))
            .to_owned();
        accept_lints(manager, &[text_reason, small_reason], &tasks).await?;
        // The parent key of results' composite foreign key.
        manager
            .create_index(unique_index(
                AgentTasks::Table,
                [AgentTasks::TenantId, AgentTasks::Id],
            ))
            .await?;
        // What a worker asks, in the order it asks it: the tenant's queued tasks,
        // highest priority first, then the earliest due, then the id. The index walks
        // in that order and stops at the first row it can lock; in any other order
        // the database sorts every due task first, and InnoDB locks each row it reads
        // before the sort, so concurrent takers find all of them locked.
        manager
            .create_index(
                Index::create()
                    .name("ix_agent_tasks_claim_order")
                    .table(AgentTasks::Table)
                    .col(AgentTasks::TenantId)
                    .col(AgentTasks::Status)
                    .col((AgentTasks::Priority, IndexOrder::Desc))
                    .col(AgentTasks::RunAfter)
                    .col(AgentTasks::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(AgentTasks::Table, [AgentTasks::CreatedBy]))
            .await?;

        let results = create_table(backend, AgentResults::Table)
            .col(uuid_pk(AgentResults::Id))
            .col(uuid(AgentResults::TenantId))
            .col(uuid(AgentResults::TaskId))
            .col(small_integer(AgentResults::Attempt))
            .col(string(AgentResults::Outcome, 16))
            .col(ColumnDef::new(AgentResults::Output).json_binary().null().take())
            .col(string_null(AgentResults::Error, 2000))
            .col(string(AgentResults::Worker, 100))
            .col(timestamp(backend, AgentResults::StartedAt))
            .col(timestamp(backend, AgentResults::FinishedAt))
            .check(Check::named(
                Alias::new("ck_agent_results_attempt"),
                Expr::cust("attempt BETWEEN 1 AND 25"),
            ))
            .check(check_in(
                "ck_agent_results_outcome",
                AgentResults::Outcome,
                &["succeeded", "failed"],
            ))
            // A success has an output, a failure its error.
            .check(Check::named(
                Alias::new("ck_agent_results_outcome_detail"),
                Expr::cust(
                    "(outcome = 'succeeded' AND output IS NOT NULL AND error IS NULL) OR (outcome = 'failed' AND error IS NOT NULL AND output IS NULL)",
                ),
            ))
            .foreign_key(&mut foreign_key(
                AgentResults::Table,
                AgentResults::TenantId,
                Tenants::Table,
                Tenants::Id,
                ForeignKeyAction::Restrict,
            ))
            .foreign_key(&mut composite_foreign_key(
                AgentResults::Table,
                [AgentResults::TenantId, AgentResults::TaskId],
                AgentTasks::Table,
                [AgentTasks::TenantId, AgentTasks::Id],
                ForeignKeyAction::Cascade,
            ))
            .to_owned();
        accept_lints(manager, &[text_reason, small_reason], &results).await?;
        // One result per attempt of a task.
        manager
            .create_index(unique_index(
                AgentResults::Table,
                [
                    AgentResults::TenantId,
                    AgentResults::TaskId,
                    AgentResults::Attempt,
                ],
            ))
            .await?;

        if backend == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(POSTGRES_UP)
                .await?;
        }
        add_missing_audit_event_types(manager, EVENT_TYPES).await
    }

    /// Drops both tables with their rows (development databases; a production
    /// rollback drains the queue first). Event types audit rows use stay in the
    /// catalogue.
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(
                    "DROP TRIGGER IF EXISTS agent_tasks_forward ON agent_tasks;
                     DROP FUNCTION IF EXISTS app_agent_tasks_forward();",
                )
                .await?;
        }
        for table in [
            AgentResults::Table.into_iden(),
            AgentTasks::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        remove_unused_audit_event_types(manager, EVENT_TYPES).await
    }
}
