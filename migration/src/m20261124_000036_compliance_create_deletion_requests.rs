//! `deletion_requests`: a user's request to be erased, and its progress.
//!
//! `requested` (cancellable by the user until `due_at`, the end of the grace period)
//! -> `processing` (the erasure job took it) -> `completed`; or `requested` ->
//! `cancelled`. A user has at most one open (requested or processing) request: a
//! unique index on a generated column that holds the user id only while the request
//! is open (portable, unlike partial indexes).
//!
//! The rows hold no personal data beyond the user id, which erasure turns into a
//! pseudonym's (the user row stays, pseudonymised), so they are kept as the record
//! that the erasure happened.
//!
//! PostgreSQL: row-level security enabled (not forced: the erasure job, run as the
//! owner, sees every request), with per-command policies for the acting user: they
//! read their own requests, file one (`requested` only) and cancel an open one
//! (`requested` to `cancelled`, nothing else). A trigger keeps every change a legal
//! transition, whoever updates. `compliance_officer` reads every request; the other
//! reading roles read none.

use crate::lint::accept_lints;
use crate::schema_helpers::*;
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum DeletionRequests {
    Table,
    Id,
    UserId,
    Status,
    RequestedAt,
    DueAt,
    CancelledAt,
    ProcessingStartedAt,
    CompletedAt,
    OpenUserId,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

const OPEN_USER_ID: &str =
    "GENERATED ALWAYS AS (CASE WHEN status IN ('requested', 'processing') THEN user_id END) STORED";

const POSTGRES_UP: &str = r#"
ALTER TABLE deletion_requests ENABLE ROW LEVEL SECURITY;
CREATE POLICY wall_select ON deletion_requests FOR SELECT USING (user_id = app_current_user());
CREATE POLICY wall_insert ON deletion_requests FOR INSERT
    WITH CHECK (user_id = app_current_user() AND status = 'requested');
CREATE POLICY wall_update ON deletion_requests FOR UPDATE
    USING (user_id = app_current_user() AND status = 'requested')
    WITH CHECK (user_id = app_current_user() AND status = 'cancelled');

CREATE FUNCTION app_deletion_requests_transitions() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$
BEGIN
  IF NEW.id <> OLD.id OR NEW.user_id <> OLD.user_id OR NEW.requested_at <> OLD.requested_at
     OR NEW.due_at <> OLD.due_at THEN
    RAISE EXCEPTION 'deletion request %: only its status and their times change', OLD.id
      USING ERRCODE = 'check_violation';
  END IF;
  IF NEW.status <> OLD.status AND NOT (
       (OLD.status = 'requested' AND NEW.status IN ('processing', 'cancelled'))
    OR (OLD.status = 'processing' AND NEW.status = 'completed')) THEN
    RAISE EXCEPTION 'deletion request %: % -> % is not a transition', OLD.id, OLD.status, NEW.status
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER deletion_requests_transitions BEFORE UPDATE ON deletion_requests
    FOR EACH ROW EXECUTE FUNCTION app_deletion_requests_transitions();

DO $walls$
DECLARE
  reader text;
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_service') THEN
    REVOKE ALL ON deletion_requests FROM app_service;
    GRANT SELECT ON deletion_requests TO app_service;
    GRANT INSERT (id, user_id, status, requested_at, due_at) ON deletion_requests TO app_service;
    GRANT UPDATE (status, cancelled_at) ON deletion_requests TO app_service;
  END IF;
  FOREACH reader IN ARRAY ARRAY['read_only', 'compliance_officer', 'data_processor'] LOOP
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = reader) THEN
      EXECUTE format('REVOKE ALL ON deletion_requests FROM %I', reader);
    END IF;
  END LOOP;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'compliance_officer') THEN
    GRANT SELECT ON deletion_requests TO compliance_officer;
    CREATE POLICY wall_compliance_officer_select ON deletion_requests FOR SELECT TO compliance_officer USING (true);
  END IF;
END
$walls$;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let requests = create_table(backend, DeletionRequests::Table)
            .col(uuid_pk(DeletionRequests::Id))
            .col(uuid(DeletionRequests::UserId))
            .col(string(DeletionRequests::Status, 16))
            .col(timestamp(backend, DeletionRequests::RequestedAt))
            .col(timestamp(backend, DeletionRequests::DueAt))
            .col(timestamp_null(backend, DeletionRequests::CancelledAt))
            .col(timestamp_null(backend, DeletionRequests::ProcessingStartedAt))
            .col(timestamp_null(backend, DeletionRequests::CompletedAt))
            .col(
                ColumnDef::new(DeletionRequests::OpenUserId)
                    .uuid()
                    .extra(OPEN_USER_ID),
            )
            .check(check_in(
                "ck_deletion_requests_status",
                DeletionRequests::Status,
                &["requested", "processing", "completed", "cancelled"],
            ))
            .check(Check::named(
                Alias::new("ck_deletion_requests_due_at"),
                Expr::cust("due_at >= requested_at"),
            ))
            // Each state carries the instant it was reached.
            .check(Check::named(
                Alias::new("ck_deletion_requests_times"),
                Expr::cust(
                    "(status <> 'cancelled' OR cancelled_at IS NOT NULL) \
                     AND (status NOT IN ('processing', 'completed') OR processing_started_at IS NOT NULL) \
                     AND (status <> 'completed' OR completed_at IS NOT NULL)",
                ),
            ))
            .foreign_key(&mut foreign_key(
                DeletionRequests::Table,
                DeletionRequests::UserId,
                Users::Table,
                Users::Id,
                ForeignKeyAction::Restrict,
            ))
            .to_owned();
        accept_lints(
            manager,
            &[(
                "prefer-text-field",
                "varchar(n) is the input limit, enforced by the database",
            )],
            &requests,
        )
        .await?;
        manager
            .create_index(unique_index(
                DeletionRequests::Table,
                [DeletionRequests::OpenUserId],
            ))
            .await?;
        // The erasure job's question: which open requests are due.
        manager
            .create_index(index(
                DeletionRequests::Table,
                [DeletionRequests::Status, DeletionRequests::DueAt],
            ))
            .await?;
        manager
            .create_index(index(DeletionRequests::Table, [DeletionRequests::UserId]))
            .await?;
        if backend == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(POSTGRES_UP)
                .await?;
        }
        Ok(())
    }

    /// Drops the requests: for development databases. Erasures already done stay done
    /// (the users stay pseudonymised); open requests are forgotten.
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(
                    "DROP TRIGGER IF EXISTS deletion_requests_transitions ON deletion_requests;
                     DROP FUNCTION IF EXISTS app_deletion_requests_transitions();",
                )
                .await?;
        }
        manager
            .drop_table(Table::drop().table(DeletionRequests::Table).to_owned())
            .await
    }
}
