//! Protected records: a subject's (patient's) records, every earlier version of each,
//! and who else may open them.
//!
//! `records`: one record of a subject, written by its author: a type, a title and a
//! body stored sealed (field encryption, bound to the row), at a version that starts
//! at 1 and grows by one with every change.
//!
//! `record_versions`: the record as it was before each change, in order (one row per
//! superseded version, its body sealed again for its own row).
//!
//! `access_grants`: a grantee may read (or read and write) one record, or every record
//! of one subject, from `starts_at` until `expires_at` (never open-ended), for a
//! stated reason, unless revoked (who, when, why). A break-glass opening is a grant
//! too (`kind = 'break_glass'`): to the opener, on one record, read only.
//!
//! PostgreSQL: row-level security forced on all three, per command. A record is
//! visible to the acting user (`app.current_user_id`) only as its subject, its author,
//! a holder of a live grant (live at `app_current_time()`, the application's clock
//! for the transaction) or a holder of `records:read_all`; its versions are visible
//! exactly when it is (and a version is kept only as the record stands, by someone who
//! may change it). A break-glass grant gets its record's subject from a trigger (its
//! opener cannot see the record yet). It is changed only by its author or a holder of a live write
//! grant, one version at a time, after the version it replaces was kept (a trigger
//! holds this, whoever updates). The runtime role deletes nothing here. A grant is
//! inserted in the acting user's name by a holder of `records:grant` or by the
//! subject (a break-glass grant only to oneself, at `aal2`, with
//! `records:break_glass`), seen by those it concerns and by those who manage or
//! review grants, and only ever revoked. The owner reads every
//! row; the reading roles read none.

use crate::lint::accept_lints;
use crate::schema_helpers::*;
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Records {
    Table,
    Id,
    TenantId,
    SubjectId,
    AuthorId,
    RecordType,
    Title,
    Body,
    Version,
    CreatedAt,
    UpdatedAt,
    UpdatedBy,
}

#[derive(DeriveIden)]
enum RecordVersions {
    Table,
    Id,
    TenantId,
    RecordId,
    Version,
    RecordType,
    Title,
    Body,
    WrittenBy,
    WrittenAt,
    SupersededBy,
    SupersededAt,
}

#[derive(DeriveIden)]
enum AccessGrants {
    Table,
    Id,
    TenantId,
    GranteeId,
    SubjectId,
    RecordId,
    Access,
    Kind,
    Reason,
    GrantedBy,
    StartsAt,
    ExpiresAt,
    RevokedAt,
    RevokedBy,
    RevokeReason,
    CreatedAt,
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

const RECORD_TYPES: &[&str] = &[
    "consultation",
    "diagnosis",
    "treatment",
    "lab_result",
    "prescription",
    "imaging",
    "other",
];

/// The event types protected records are audited with.
const EVENT_TYPES: &[(&str, &str, &str)] = &[
    ("record_created", "data_access", "Protected record created"),
    (
        "record_updated",
        "data_access",
        "Protected record changed (the previous version kept)",
    ),
    ("record_read", "data_access", "Protected record opened"),
    (
        "record_access_denied",
        "data_access",
        "Protected record access refused",
    ),
    (
        "record_access_granted",
        "data_access",
        "Access to protected records granted",
    ),
    (
        "record_access_revoked",
        "data_access",
        "Access to protected records revoked",
    ),
    (
        "record_break_glass",
        "data_access",
        "Protected record opened without a grant (break-glass)",
    ),
    (
        "record_break_glass_reviewed",
        "data_access",
        "Break-glass openings listed for review",
    ),
];

const POSTGRES_UP: &str = r#"
-- The application's clock for the transaction (set with the acting user), so a grant
-- expires for the database when it expires for the service; the server's clock when
-- none is set.
CREATE FUNCTION app_current_time() RETURNS timestamptz
    LANGUAGE sql STABLE
    AS $$ SELECT COALESCE(nullif(current_setting('app.current_time', true), '')::timestamptz, now()) $$;

-- Does the acting user hold a live grant on record p_record of p_subject (for writing
-- when p_write)? Runs as the caller: the grants it sees are the tenant's.
CREATE FUNCTION app_record_granted(p_subject uuid, p_record uuid, p_write boolean) RETURNS boolean
    LANGUAGE sql STABLE
    AS $$
SELECT EXISTS (
    SELECT 1 FROM access_grants g
     WHERE g.tenant_id = app_current_tenant() AND g.grantee_id = app_current_user()
       AND g.subject_id = p_subject AND (g.record_id IS NULL OR g.record_id = p_record)
       AND (NOT p_write OR g.access = 'write')
       AND g.revoked_at IS NULL
       AND g.starts_at <= app_current_time() AND g.expires_at > app_current_time())
$$;

ALTER TABLE records ENABLE ROW LEVEL SECURITY;
ALTER TABLE records FORCE ROW LEVEL SECURITY;
-- The permission check is a scalar subquery without outer references: evaluated once
-- per statement, not per row.
CREATE POLICY wall_select ON records FOR SELECT USING (
    tenant_id = app_current_tenant()
    AND (subject_id = app_current_user() OR author_id = app_current_user()
         OR app_record_granted(subject_id, id, false)
         OR (SELECT user_has_permission(app_current_user(), app_current_tenant(), 'records', 'read_all'))));
CREATE POLICY wall_insert ON records FOR INSERT
    WITH CHECK (tenant_id = app_current_tenant() AND author_id = app_current_user() AND version = 1
                AND updated_by IS NULL
                AND user_has_permission(app_current_user(), tenant_id, 'records', 'write'));
CREATE POLICY wall_update ON records FOR UPDATE
    USING (tenant_id = app_current_tenant()
           AND (author_id = app_current_user() OR app_record_granted(subject_id, id, true)))
    WITH CHECK (tenant_id = app_current_tenant() AND updated_by = app_current_user()
                AND user_has_permission(app_current_user(), tenant_id, 'records', 'write'));

ALTER TABLE record_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE record_versions FORCE ROW LEVEL SECURITY;
-- Visible exactly when the record is (the subquery runs under the records' policy).
CREATE POLICY wall_select ON record_versions FOR SELECT USING (
    tenant_id = app_current_tenant()
    AND EXISTS (SELECT 1 FROM records r WHERE r.tenant_id = record_versions.tenant_id
                                          AND r.id = record_versions.record_id));
-- A kept version is the record as it stands, kept by someone who may change it, just
-- before the change (its body cannot be compared here: it is sealed again for its row).
CREATE POLICY wall_insert ON record_versions FOR INSERT WITH CHECK (
    tenant_id = app_current_tenant() AND superseded_by = app_current_user()
    AND user_has_permission(app_current_user(), tenant_id, 'records', 'write')
    AND EXISTS (SELECT 1 FROM records r
                 WHERE r.tenant_id = record_versions.tenant_id AND r.id = record_versions.record_id
                   AND r.version = record_versions.version
                   AND r.record_type = record_versions.record_type AND r.title = record_versions.title
                   AND COALESCE(r.updated_by, r.author_id) = record_versions.written_by
                   AND r.updated_at = record_versions.written_at
                   AND (r.author_id = app_current_user() OR app_record_granted(r.subject_id, r.id, true))));

ALTER TABLE access_grants ENABLE ROW LEVEL SECURITY;
ALTER TABLE access_grants FORCE ROW LEVEL SECURITY;
-- Who is whose patient is itself protected: a grant is visible to its grantee, its
-- subject and its granter, and to those who manage grants or review break-glass.
CREATE POLICY wall_select ON access_grants FOR SELECT USING (
    tenant_id = app_current_tenant()
    AND (grantee_id = app_current_user() OR subject_id = app_current_user()
         OR granted_by = app_current_user()
         OR (SELECT user_has_permission(app_current_user(), app_current_tenant(), 'records', 'grant'))
         OR (SELECT user_has_permission(app_current_user(), app_current_tenant(), 'records', 'review'))));
-- Given in the acting user's name, by a holder of records:grant or by the subject;
-- a break-glass grant only to oneself, at aal2, holding records:break_glass.
CREATE POLICY wall_insert ON access_grants FOR INSERT
    WITH CHECK (tenant_id = app_current_tenant() AND granted_by = app_current_user()
                AND revoked_at IS NULL
                AND CASE kind
                      WHEN 'grant' THEN grantee_id <> app_current_user()
                           AND starts_at >= app_current_time() - interval '5 minutes'
                           AND (subject_id = app_current_user()
                                OR user_has_permission(app_current_user(), tenant_id, 'records', 'grant'))
                      WHEN 'break_glass' THEN grantee_id = app_current_user()
                           AND app_current_aal() = 'aal2'
                           AND user_has_permission(app_current_user(), tenant_id, 'records', 'break_glass')
                           AND starts_at BETWEEN app_current_time() - interval '5 minutes'
                                             AND app_current_time() + interval '5 minutes'
                           AND expires_at <= starts_at + interval '1 day'
                      ELSE false
                    END);
-- Only a live grant is revoked, in the acting user's name, by its granter, its
-- subject or a holder of records:grant.
CREATE POLICY wall_update ON access_grants FOR UPDATE
    USING (tenant_id = app_current_tenant() AND revoked_at IS NULL
           AND (granted_by = app_current_user() OR subject_id = app_current_user()
                OR (SELECT user_has_permission(app_current_user(), app_current_tenant(), 'records', 'grant'))))
    WITH CHECK (tenant_id = app_current_tenant() AND revoked_by = app_current_user()
                AND revoked_at BETWEEN app_current_time() - interval '5 minutes'
                                   AND app_current_time() + interval '5 minutes');

-- Whoever updates: one version at a time, the replaced one kept first, and the record
-- stays its subject's and its author's; only a re-encryption by the owner rewrites a
-- body in place.
DO $versioned$
BEGIN
  EXECUTE replace($body$
CREATE FUNCTION app_records_versioned() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, {schema}, pg_temp
    AS $$
BEGIN
  IF NEW.subject_id IS DISTINCT FROM OLD.subject_id OR NEW.author_id IS DISTINCT FROM OLD.author_id
     OR NEW.tenant_id IS DISTINCT FROM OLD.tenant_id THEN
    RAISE EXCEPTION 'record %: its tenant, subject and author never change', OLD.id
      USING ERRCODE = 'check_violation';
  END IF;
  -- A key rotation (`keys reencrypt`, run by the owner, never by the runtime role)
  -- rewrites the sealed body alone, under the same version.
  IF ROW(NEW.record_type, NEW.title, NEW.version, NEW.updated_at, NEW.updated_by)
       IS NOT DISTINCT FROM ROW(OLD.record_type, OLD.title, OLD.version, OLD.updated_at, OLD.updated_by)
     AND (current_user = (SELECT pg_get_userbyid(c.relowner) FROM pg_class c WHERE c.oid = TG_RELID)
          OR (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user)) THEN
    RETURN NEW;
  END IF;
  IF NEW.version <> OLD.version + 1 THEN
    RAISE EXCEPTION 'record %: a change moves version % to %, not %', OLD.id, OLD.version, OLD.version + 1, NEW.version
      USING ERRCODE = 'check_violation';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM record_versions v
                  WHERE v.tenant_id = OLD.tenant_id AND v.record_id = OLD.id AND v.version = OLD.version) THEN
    RAISE EXCEPTION 'record %: version % must be kept in record_versions before it is replaced', OLD.id, OLD.version
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END
$$;
$body$, '{schema}', quote_ident(current_schema()));
END
$versioned$;
CREATE TRIGGER records_versioned BEFORE UPDATE ON records
    FOR EACH ROW EXECUTE FUNCTION app_records_versioned();

-- A break-glass grant names the record's subject, which its opener cannot see yet:
-- filled in from the record (as the owner), whatever the insert said, and only for a
-- grant of the current tenant to the acting user. Nothing is raised here, before the
-- insert policy runs: for an unknown record the stand-in subject stays, and the
-- foreign keys refuse the row after the policy did (no probing of other tenants).
DO $functions$
BEGIN
  EXECUTE replace($body$
CREATE FUNCTION app_break_glass_subject() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, {schema}, pg_temp
    AS $$
DECLARE
  OLD_SUBJECT uuid := NEW.subject_id;
BEGIN
  IF NEW.kind = 'break_glass' AND NEW.tenant_id = app_current_tenant()
     AND NEW.grantee_id = app_current_user() THEN
    SELECT r.subject_id INTO NEW.subject_id FROM records r
     WHERE r.tenant_id = NEW.tenant_id AND r.id = NEW.record_id;
    IF NOT FOUND THEN
      NEW.subject_id := OLD_SUBJECT;
    END IF;
  END IF;
  RETURN NEW;
END
$$;
$body$, '{schema}', quote_ident(current_schema()));
END
$functions$;
REVOKE ALL ON FUNCTION app_break_glass_subject() FROM PUBLIC;
CREATE TRIGGER access_grants_break_glass_subject BEFORE INSERT ON access_grants
    FOR EACH ROW EXECUTE FUNCTION app_break_glass_subject();

DO $owner$ BEGIN
  EXECUTE format('CREATE POLICY wall_owner_select ON records FOR SELECT TO %I USING (true)', current_user);
  EXECUTE format('CREATE POLICY wall_owner_select ON record_versions FOR SELECT TO %I USING (true)', current_user);
  EXECUTE format('CREATE POLICY wall_owner_select ON access_grants FOR SELECT TO %I USING (true)', current_user);
END $owner$;

DO $walls$
DECLARE
  reader text;
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_service') THEN
    REVOKE ALL ON records, record_versions, access_grants FROM app_service;
    GRANT SELECT, INSERT ON records, record_versions, access_grants TO app_service;
    GRANT UPDATE (record_type, title, body, version, updated_at, updated_by) ON records TO app_service;
    GRANT UPDATE (revoked_at, revoked_by, revoke_reason) ON access_grants TO app_service;
  END IF;
  FOREACH reader IN ARRAY ARRAY['read_only', 'compliance_officer', 'data_processor'] LOOP
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = reader) THEN
      EXECUTE format('REVOKE ALL ON records, record_versions, access_grants FROM %I', reader);
    END IF;
  END LOOP;
END
$walls$;
"#;

/// After the tables (and with them their triggers and policies) are gone.
const POSTGRES_DOWN: &str = "
DROP FUNCTION IF EXISTS app_break_glass_subject();
DROP FUNCTION IF EXISTS app_records_versioned();
DROP FUNCTION IF EXISTS app_record_granted(uuid, uuid, boolean);
DROP FUNCTION IF EXISTS app_current_time();
";

/// A sealed body: up to 60,000 bytes of text plus the seal's header and tag.
/// MariaDB: a `BLOB`, because its row limit counts a `VARBINARY`'s whole declared
/// length. PostgreSQL: `bytea`.
fn sealed_body(backend: DbBackend, col: impl IntoIden) -> ColumnDef {
    match backend {
        DbBackend::MySql => ColumnDef::new(col).blob().not_null().take(),
        _ => binary(col, 60_100),
    }
}

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
        let int_reason = (
            "prefer-bigint-over-int",
            "a record's version counts its changes; 2^31 of them is out of reach",
        );

        let records = create_table(backend, Records::Table)
            .col(uuid_pk(Records::Id))
            .col(uuid(Records::TenantId))
            .col(uuid(Records::SubjectId))
            .col(uuid(Records::AuthorId))
            .col(string(Records::RecordType, 16))
            .col(string(Records::Title, 200))
            .col(sealed_body(backend, Records::Body))
            .col(ColumnDef::new(Records::Version).integer().not_null().take())
            .col(timestamp(backend, Records::CreatedAt))
            .col(timestamp(backend, Records::UpdatedAt))
            .col(uuid_null(Records::UpdatedBy))
            .check(check_in(
                "ck_records_record_type",
                Records::RecordType,
                RECORD_TYPES,
            ))
            .check(Check::named(
                Alias::new("ck_records_title_length"),
                Expr::cust(length("title", "1 AND 200")),
            ))
            .check(Check::named(
                Alias::new("ck_records_version"),
                Expr::cust("version >= 1 AND (version = 1) = (updated_by IS NULL)"),
            ))
            .foreign_key(&mut foreign_key(
                Records::Table,
                Records::TenantId,
                Tenants::Table,
                Tenants::Id,
                ForeignKeyAction::Restrict,
            ))
            .foreign_key(&mut foreign_key(
                Records::Table,
                Records::SubjectId,
                Users::Table,
                Users::Id,
                ForeignKeyAction::Restrict,
            ))
            .foreign_key(&mut foreign_key(
                Records::Table,
                Records::AuthorId,
                Users::Table,
                Users::Id,
                ForeignKeyAction::Restrict,
            ))
            .foreign_key(&mut foreign_key(
                Records::Table,
                Records::UpdatedBy,
                Users::Table,
                Users::Id,
                ForeignKeyAction::Restrict,
            ))
            .to_owned();
        accept_lints(manager, &[text_reason, int_reason], &records).await?;
        // The parent key of the versions' composite foreign key.
        manager
            .create_index(unique_index(
                Records::Table,
                [Records::TenantId, Records::Id],
            ))
            .await?;
        // The parent key of the grants' composite foreign key: a grant on one record
        // names that record's subject.
        manager
            .create_index(unique_index(
                Records::Table,
                [Records::TenantId, Records::Id, Records::SubjectId],
            ))
            .await?;
        // A subject's records.
        manager
            .create_index(index(
                Records::Table,
                [Records::TenantId, Records::SubjectId],
            ))
            .await?;
        manager
            .create_index(index(Records::Table, [Records::AuthorId]))
            .await?;
        manager
            .create_index(index(Records::Table, [Records::UpdatedBy]))
            .await?;

        let versions = create_table(backend, RecordVersions::Table)
            .col(uuid_pk(RecordVersions::Id))
            .col(uuid(RecordVersions::TenantId))
            .col(uuid(RecordVersions::RecordId))
            .col(
                ColumnDef::new(RecordVersions::Version)
                    .integer()
                    .not_null()
                    .take(),
            )
            .col(string(RecordVersions::RecordType, 16))
            .col(string(RecordVersions::Title, 200))
            .col(sealed_body(backend, RecordVersions::Body))
            .col(uuid(RecordVersions::WrittenBy))
            .col(timestamp(backend, RecordVersions::WrittenAt))
            .col(uuid(RecordVersions::SupersededBy))
            .col(timestamp(backend, RecordVersions::SupersededAt))
            .check(check_in(
                "ck_record_versions_record_type",
                RecordVersions::RecordType,
                RECORD_TYPES,
            ))
            .check(Check::named(
                Alias::new("ck_record_versions_version"),
                Expr::cust("version >= 1"),
            ))
            .foreign_key(&mut foreign_key(
                RecordVersions::Table,
                RecordVersions::TenantId,
                Tenants::Table,
                Tenants::Id,
                ForeignKeyAction::Restrict,
            ))
            .foreign_key(&mut composite_foreign_key(
                RecordVersions::Table,
                [RecordVersions::TenantId, RecordVersions::RecordId],
                Records::Table,
                [Records::TenantId, Records::Id],
                ForeignKeyAction::Restrict,
            ))
            .foreign_key(&mut foreign_key(
                RecordVersions::Table,
                RecordVersions::WrittenBy,
                Users::Table,
                Users::Id,
                ForeignKeyAction::Restrict,
            ))
            .foreign_key(&mut foreign_key(
                RecordVersions::Table,
                RecordVersions::SupersededBy,
                Users::Table,
                Users::Id,
                ForeignKeyAction::Restrict,
            ))
            .to_owned();
        accept_lints(manager, &[text_reason, int_reason], &versions).await?;
        // A version is kept once; the history reads in this order.
        manager
            .create_index(unique_index(
                RecordVersions::Table,
                [
                    RecordVersions::TenantId,
                    RecordVersions::RecordId,
                    RecordVersions::Version,
                ],
            ))
            .await?;
        for column in [RecordVersions::WrittenBy, RecordVersions::SupersededBy] {
            manager
                .create_index(index(RecordVersions::Table, [column]))
                .await?;
        }

        let grants = create_table(backend, AccessGrants::Table)
            .col(uuid_pk(AccessGrants::Id))
            .col(uuid(AccessGrants::TenantId))
            .col(uuid(AccessGrants::GranteeId))
            .col(uuid(AccessGrants::SubjectId))
            .col(uuid_null(AccessGrants::RecordId))
            .col(string(AccessGrants::Access, 8))
            .col(string(AccessGrants::Kind, 16))
            .col(string(AccessGrants::Reason, 500))
            .col(uuid(AccessGrants::GrantedBy))
            .col(timestamp(backend, AccessGrants::StartsAt))
            .col(timestamp(backend, AccessGrants::ExpiresAt))
            .col(timestamp_null(backend, AccessGrants::RevokedAt))
            .col(uuid_null(AccessGrants::RevokedBy))
            .col(string_null(AccessGrants::RevokeReason, 500))
            .col(timestamp(backend, AccessGrants::CreatedAt))
            .check(check_in(
                "ck_access_grants_access",
                AccessGrants::Access,
                &["read", "write"],
            ))
            .check(check_in(
                "ck_access_grants_kind",
                AccessGrants::Kind,
                &["grant", "break_glass"],
            ))
            .check(Check::named(
                Alias::new("ck_access_grants_reason_length"),
                Expr::cust(length("reason", "1 AND 500")),
            ))
            .check(Check::named(
                Alias::new("ck_access_grants_period"),
                Expr::cust("expires_at > starts_at"),
            ))
            // Revoked means by whom and why, all three or none.
            .check(Check::named(
                Alias::new("ck_access_grants_revocation"),
                Expr::cust(
                    "(revoked_at IS NULL AND revoked_by IS NULL AND revoke_reason IS NULL) OR (revoked_at IS NOT NULL AND revoked_by IS NOT NULL AND revoke_reason IS NOT NULL)",
                ),
            ))
            // A subject reads their own records without a grant.
            .check(Check::named(
                Alias::new("ck_access_grants_not_to_subject"),
                Expr::cust("grantee_id <> subject_id"),
            ))
            // Break-glass: the opener's own, on one record, to read.
            .check(Check::named(
                Alias::new("ck_access_grants_break_glass"),
                Expr::cust(
                    "kind <> 'break_glass' OR (record_id IS NOT NULL AND grantee_id = granted_by AND access = 'read')",
                ),
            ))
            .foreign_key(&mut foreign_key(
                AccessGrants::Table,
                AccessGrants::TenantId,
                Tenants::Table,
                Tenants::Id,
                ForeignKeyAction::Restrict,
            ))
            .foreign_key(&mut composite_foreign_key(
                AccessGrants::Table,
                [
                    AccessGrants::TenantId,
                    AccessGrants::RecordId,
                    AccessGrants::SubjectId,
                ],
                Records::Table,
                [Records::TenantId, Records::Id, Records::SubjectId],
                ForeignKeyAction::Restrict,
            ))
            .foreign_key(&mut foreign_key(
                AccessGrants::Table,
                AccessGrants::GranteeId,
                Users::Table,
                Users::Id,
                ForeignKeyAction::Restrict,
            ))
            .foreign_key(&mut foreign_key(
                AccessGrants::Table,
                AccessGrants::SubjectId,
                Users::Table,
                Users::Id,
                ForeignKeyAction::Restrict,
            ))
            .foreign_key(&mut foreign_key(
                AccessGrants::Table,
                AccessGrants::GrantedBy,
                Users::Table,
                Users::Id,
                ForeignKeyAction::Restrict,
            ))
            .foreign_key(&mut foreign_key(
                AccessGrants::Table,
                AccessGrants::RevokedBy,
                Users::Table,
                Users::Id,
                ForeignKeyAction::Restrict,
            ))
            .to_owned();
        accept_lints(manager, &[text_reason], &grants).await?;
        // What every read asks: the acting user's grants on this subject.
        manager
            .create_index(index(
                AccessGrants::Table,
                [
                    AccessGrants::TenantId,
                    AccessGrants::GranteeId,
                    AccessGrants::SubjectId,
                ],
            ))
            .await?;
        // The break-glass review: a tenant's openings by time.
        manager
            .create_index(index(
                AccessGrants::Table,
                [
                    AccessGrants::TenantId,
                    AccessGrants::Kind,
                    AccessGrants::StartsAt,
                ],
            ))
            .await?;
        manager
            .create_index(index(
                AccessGrants::Table,
                [
                    AccessGrants::TenantId,
                    AccessGrants::RecordId,
                    AccessGrants::SubjectId,
                ],
            ))
            .await?;
        for column in [
            AccessGrants::SubjectId,
            AccessGrants::GrantedBy,
            AccessGrants::RevokedBy,
        ] {
            manager
                .create_index(index(AccessGrants::Table, [column]))
                .await?;
        }

        if backend == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(POSTGRES_UP)
                .await?;
        }
        add_missing_audit_event_types(manager, EVENT_TYPES).await
    }

    /// Drops the three tables with their rows (development databases: protected
    /// records are kept for years, so a production rollback moves them out first).
    /// Event types audit rows use stay in the catalogue.
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AccessGrants::Table.into_iden(),
            RecordVersions::Table.into_iden(),
            Records::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(POSTGRES_DOWN)
                .await?;
        }
        remove_unused_audit_event_types(manager, EVENT_TYPES).await
    }
}
