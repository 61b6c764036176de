//! Data residency and security incidents.
//!
//! `tenants.transfer_regions`: the regions, besides its own `data_region`, that a
//! tenant allows its data to be transferred to (a JSON array of region codes; empty:
//! none). Its owner decides.
//!
//! `data_residency_log`: every cross-region transfer the service was asked to make for
//! a tenant, allowed or refused, with its purpose and who asked. Append-only: UPDATE and
//! DELETE are refused by triggers on every backend, TRUNCATE too on PostgreSQL (MariaDB
//! fires no trigger on it: keep `DROP` from every account but the owner).
//!
//! `security_incidents`: a tenant's incidents with severity, status (`open` ->
//! `investigating` -> `contained` -> `resolved`), when they were detected, reported to
//! the authority and resolved, and the affected subjects (a JSON array of user ids).
//! Never deleted.
//!
//! PostgreSQL: row-level security forced on both tables, with per-command policies
//! for the current tenant. The runtime role reads and inserts log rows (never changes
//! them, and only as the acting user), and reads, inserts (as the acting user) and
//! updates incidents (status and the reported and resolved times only; a trigger keeps
//! every incident moving forward, whoever updates), deleting nothing; it may set a
//! tenant's transfer regions.
//! The owner reads every row (the compliance report); `compliance_officer` reads every
//! row; the other reading roles read none.

use crate::lint::{accept_lint, accept_lints};
use crate::schema_helpers::*;
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
    TransferRegions,
}

#[derive(DeriveIden)]
enum DataResidencyLog {
    Table,
    Id,
    TenantId,
    FromRegion,
    ToRegion,
    Purpose,
    Outcome,
    RequestedBy,
    RecordedAt,
}

#[derive(DeriveIden)]
enum SecurityIncidents {
    Table,
    Id,
    TenantId,
    Title,
    Description,
    Severity,
    Status,
    AffectedSubjects,
    DetectedAt,
    ReportedAt,
    ResolvedAt,
    ReportedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

/// The event types this migration's tables are audited with.
const EVENT_TYPES: &[(&str, &str, &str)] = &[
    (
        "data_transfer_recorded",
        "compliance",
        "Cross-region data transfer recorded",
    ),
    (
        "data_transfer_refused",
        "compliance",
        "Cross-region data transfer refused by the tenant's residency rules",
    ),
    (
        "data_residency_changed",
        "compliance",
        "Regions a tenant allows transfers to changed",
    ),
    (
        "security_incident_reported",
        "compliance",
        "Security incident reported",
    ),
    (
        "security_incident_updated",
        "compliance",
        "Security incident status updated",
    ),
];

const REGIONS: &[&str] = &["us", "eu", "jp"];

const POSTGRES_UP: &str = r#"
ALTER TABLE data_residency_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE data_residency_log FORCE ROW LEVEL SECURITY;
CREATE POLICY wall_select ON data_residency_log FOR SELECT USING (tenant_id = app_current_tenant());
CREATE POLICY wall_insert ON data_residency_log FOR INSERT
    WITH CHECK (tenant_id = app_current_tenant() AND requested_by = app_current_user());

ALTER TABLE security_incidents ENABLE ROW LEVEL SECURITY;
ALTER TABLE security_incidents FORCE ROW LEVEL SECURITY;
CREATE POLICY wall_select ON security_incidents FOR SELECT USING (tenant_id = app_current_tenant());
CREATE POLICY wall_insert ON security_incidents FOR INSERT
    WITH CHECK (tenant_id = app_current_tenant() AND reported_by = app_current_user());
CREATE POLICY wall_update ON security_incidents FOR UPDATE
    USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant());

DO $owner$ BEGIN
  EXECUTE format('CREATE POLICY wall_owner_select ON data_residency_log FOR SELECT TO %I USING (true)', current_user);
  EXECUTE format('CREATE POLICY wall_owner_select ON security_incidents FOR SELECT TO %I USING (true)', current_user);
END $owner$;

-- An incident only moves forward, whoever updates: its status never goes back, a
-- resolved one stays resolved, a report to the authority stays on record.
CREATE FUNCTION app_security_incidents_forward() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$
BEGIN
  IF array_position(ARRAY['open', 'investigating', 'contained', 'resolved'], NEW.status::text)
     < array_position(ARRAY['open', 'investigating', 'contained', 'resolved'], OLD.status::text)
     OR (OLD.status = 'resolved' AND NEW.resolved_at IS DISTINCT FROM OLD.resolved_at)
     OR (OLD.reported_at IS NOT NULL AND NEW.reported_at IS DISTINCT FROM OLD.reported_at) THEN
    RAISE EXCEPTION 'security incident %: it only moves forward', OLD.id USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER security_incidents_forward BEFORE UPDATE ON security_incidents
    FOR EACH ROW EXECUTE FUNCTION app_security_incidents_forward();

DO $walls$
DECLARE
  reader text;
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_service') THEN
    REVOKE ALL ON data_residency_log, security_incidents FROM app_service;
    GRANT SELECT, INSERT ON data_residency_log TO app_service;
    GRANT SELECT, INSERT ON security_incidents TO app_service;
    GRANT UPDATE (status, reported_at, resolved_at, updated_at) ON security_incidents TO app_service;
    GRANT UPDATE (transfer_regions) ON tenants TO app_service;
  END IF;
  FOREACH reader IN ARRAY ARRAY['read_only', 'compliance_officer', 'data_processor'] LOOP
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = reader) THEN
      EXECUTE format('REVOKE ALL ON data_residency_log, security_incidents FROM %I', reader);
    END IF;
  END LOOP;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'compliance_officer') THEN
    GRANT SELECT ON data_residency_log, security_incidents TO compliance_officer;
    CREATE POLICY wall_compliance_officer_select ON data_residency_log FOR SELECT TO compliance_officer USING (true);
    CREATE POLICY wall_compliance_officer_select ON security_incidents FOR SELECT TO compliance_officer USING (true);
  END IF;
END
$walls$;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let db = manager.get_connection();
        let length = |column: &str, range: &str| match backend {
            DbBackend::Sqlite => format!("LENGTH({column}) BETWEEN {range}"),
            _ => format!("CHAR_LENGTH({column}) BETWEEN {range}"),
        };
        let text_reason = (
            "prefer-text-field",
            "varchar(n) is the input limit, enforced by the database",
        );

        // A constant default: no table rewrite on PostgreSQL 11+ or MariaDB.
        let add_regions = Table::alter()
            .table(Tenants::Table)
            .add_column(
                ColumnDef::new(Tenants::TransferRegions)
                    .json_binary()
                    .not_null()
                    .default(Expr::cust("'[]'")),
            )
            .to_owned();
        accept_lint(
            manager,
            "adding-field-with-default",
            "the default is a constant ('[]'), which PostgreSQL 11+ stores once in the catalogue: no rewrite",
            &add_regions,
        )
        .await?;

        let log = create_table(backend, DataResidencyLog::Table)
            .col(uuid_pk(DataResidencyLog::Id))
            .col(uuid(DataResidencyLog::TenantId))
            .col(string(DataResidencyLog::FromRegion, 8))
            .col(string(DataResidencyLog::ToRegion, 8))
            .col(string(DataResidencyLog::Purpose, 200))
            .col(string(DataResidencyLog::Outcome, 16))
            .col(uuid_null(DataResidencyLog::RequestedBy))
            .col(timestamp(backend, DataResidencyLog::RecordedAt))
            .check(check_in(
                "ck_data_residency_log_from_region",
                DataResidencyLog::FromRegion,
                REGIONS,
            ))
            .check(check_in(
                "ck_data_residency_log_to_region",
                DataResidencyLog::ToRegion,
                REGIONS,
            ))
            .check(check_in(
                "ck_data_residency_log_outcome",
                DataResidencyLog::Outcome,
                &["allowed", "refused"],
            ))
            .check(Check::named(
                Alias::new("ck_data_residency_log_purpose_length"),
                Expr::cust(length("purpose", "1 AND 200")),
            ))
            .foreign_key(&mut foreign_key(
                DataResidencyLog::Table,
                DataResidencyLog::TenantId,
                Tenants::Table,
                Tenants::Id,
                ForeignKeyAction::Restrict,
            ))
            .foreign_key(&mut foreign_key(
                DataResidencyLog::Table,
                DataResidencyLog::RequestedBy,
                Users::Table,
                Users::Id,
                ForeignKeyAction::Restrict,
            ))
            .to_owned();
        accept_lints(manager, &[text_reason], &log).await?;
        manager
            .create_index(index(
                DataResidencyLog::Table,
                [DataResidencyLog::TenantId, DataResidencyLog::RecordedAt],
            ))
            .await?;
        manager
            .create_index(index(
                DataResidencyLog::Table,
                [DataResidencyLog::RequestedBy],
            ))
            .await?;

        let incidents = create_table(backend, SecurityIncidents::Table)
            .col(uuid_pk(SecurityIncidents::Id))
            .col(uuid(SecurityIncidents::TenantId))
            .col(string(SecurityIncidents::Title, 200))
            .col(string(SecurityIncidents::Description, 4000))
            .col(string(SecurityIncidents::Severity, 16))
            .col(string(SecurityIncidents::Status, 16))
            .col(json(SecurityIncidents::AffectedSubjects))
            .col(timestamp(backend, SecurityIncidents::DetectedAt))
            .col(timestamp_null(backend, SecurityIncidents::ReportedAt))
            .col(timestamp_null(backend, SecurityIncidents::ResolvedAt))
            .col(uuid_null(SecurityIncidents::ReportedBy))
            .col(timestamp_default_now(backend, SecurityIncidents::CreatedAt))
            .col(timestamp_default_now(backend, SecurityIncidents::UpdatedAt))
            .check(check_in(
                "ck_security_incidents_severity",
                SecurityIncidents::Severity,
                &["low", "medium", "high", "critical"],
            ))
            .check(check_in(
                "ck_security_incidents_status",
                SecurityIncidents::Status,
                &["open", "investigating", "contained", "resolved"],
            ))
            .check(Check::named(
                Alias::new("ck_security_incidents_title_length"),
                Expr::cust(length("title", "1 AND 200")),
            ))
            // Resolved means when.
            .check(Check::named(
                Alias::new("ck_security_incidents_resolved"),
                Expr::cust("(status = 'resolved') = (resolved_at IS NOT NULL)"),
            ))
            .foreign_key(&mut foreign_key(
                SecurityIncidents::Table,
                SecurityIncidents::TenantId,
                Tenants::Table,
                Tenants::Id,
                ForeignKeyAction::Restrict,
            ))
            .foreign_key(&mut foreign_key(
                SecurityIncidents::Table,
                SecurityIncidents::ReportedBy,
                Users::Table,
                Users::Id,
                ForeignKeyAction::SetNull,
            ))
            .to_owned();
        accept_lints(manager, &[text_reason], &incidents).await?;
        // Open incidents first, for the compliance report.
        manager
            .create_index(index(
                SecurityIncidents::Table,
                [SecurityIncidents::TenantId, SecurityIncidents::Status],
            ))
            .await?;
        manager
            .create_index(index(
                SecurityIncidents::Table,
                [SecurityIncidents::ReportedBy],
            ))
            .await?;

        make_append_only(
            manager,
            "data_residency_log",
            "the log records what was asked; a later decision is a new row",
        )
        .await?;
        if backend == DbBackend::Postgres {
            db.execute_unprepared(POSTGRES_UP).await?;
        }
        add_audit_event_types(manager, EVENT_TYPES).await
    }

    /// Drops both tables with their rows and the transfer regions (development
    /// databases; a production rollback exports them first). Event types audit rows
    /// use stay in the catalogue.
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_append_only(manager, "data_residency_log").await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(
                    "DROP TRIGGER IF EXISTS security_incidents_forward ON security_incidents;
                     DROP FUNCTION IF EXISTS app_security_incidents_forward();",
                )
                .await?;
        }
        for table in [
            SecurityIncidents::Table.into_iden(),
            DataResidencyLog::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Tenants::Table)
                    .drop_column(Tenants::TransferRegions)
                    .to_owned(),
            )
            .await?;
        remove_unused_audit_event_types(manager, EVENT_TYPES).await
    }
}
