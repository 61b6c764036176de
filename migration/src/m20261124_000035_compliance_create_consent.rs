//! Consent under APPI and GDPR: `privacy_policies`, `consent_records` and the
//! `subject_keys` that make a subject's personal fields erasable.
//!
//! `privacy_policies` holds a tenant's published policy versions (1, 2, ...), each with
//! the instant it takes effect. A version is never changed: a new text is a new version.
//!
//! `consent_records` is append-only history: one row per decision of a user about one
//! purpose (granted or withdrawn), under the policy version then in effect, with its
//! source and the client address. The current consent to a purpose is the newest row
//! for it; `seq` numbers a user's rows in one tenant (unique), so "newest" never
//! depends on two clocks agreeing, and two concurrent decisions cannot both be next.
//! UPDATE and DELETE are refused by triggers on every backend, TRUNCATE too on
//! PostgreSQL (MariaDB fires no trigger on it: keep `DROP` from every account but the
//! owner).
//!
//! `subject_keys` holds one data key per user, sealed by the key ring (AES-256-GCM,
//! bound to `subject_keys.wrapped_key.<user id>`). Personal fields written under it (a
//! consent's client address) are readable while the key exists; erasure deletes the
//! key, and with it every such field, including the copies in append-only tables.
//!
//! PostgreSQL: the tenant tables have row-level security forced, with per-command
//! policies for the current tenant; a consent row is inserted only by the user it is
//! about. The runtime role reads and inserts, and never updates or deletes. The owner
//! reads every row (exports and reports); `compliance_officer` reads every row but the
//! sealed addresses; the other reading roles read nothing. `subject_keys`: row-level
//! security enabled (not forced: the owner's erasure and re-encryption see every key),
//! the acting user reads and creates their own key only, and nobody but the owner
//! changes or deletes one.

use crate::lint::accept_lints;
use crate::schema_helpers::*;
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SubjectKeys {
    Table,
    UserId,
    WrappedKey,
    CreatedAt,
}

#[derive(DeriveIden)]
enum PrivacyPolicies {
    Table,
    Id,
    TenantId,
    Version,
    Title,
    DocumentUrl,
    EffectiveAt,
    PublishedBy,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ConsentRecords {
    Table,
    Id,
    TenantId,
    UserId,
    Seq,
    Purpose,
    PolicyVersion,
    Granted,
    Source,
    IpAddress,
    RecordedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
}

/// The ways a consent reaches the service.
pub const CONSENT_SOURCES: &[&str] = &["web", "mobile", "api", "support", "import"];

const POSTGRES_UP: &str = r#"
ALTER TABLE privacy_policies ENABLE ROW LEVEL SECURITY;
ALTER TABLE privacy_policies FORCE ROW LEVEL SECURITY;
CREATE POLICY wall_select ON privacy_policies FOR SELECT USING (tenant_id = app_current_tenant());
CREATE POLICY wall_insert ON privacy_policies FOR INSERT
    WITH CHECK (tenant_id = app_current_tenant() AND published_by = app_current_user());

ALTER TABLE consent_records ENABLE ROW LEVEL SECURITY;
ALTER TABLE consent_records FORCE ROW LEVEL SECURITY;
CREATE POLICY wall_select ON consent_records FOR SELECT USING (tenant_id = app_current_tenant());
-- A consent is the user's own decision: nobody records one in another's name.
CREATE POLICY wall_insert ON consent_records FOR INSERT
    WITH CHECK (tenant_id = app_current_tenant() AND user_id = app_current_user());

ALTER TABLE subject_keys ENABLE ROW LEVEL SECURITY;
CREATE POLICY wall_select ON subject_keys FOR SELECT USING (user_id = app_current_user());
CREATE POLICY wall_insert ON subject_keys FOR INSERT WITH CHECK (user_id = app_current_user());

-- Exports and compliance reports run as the owner, whom forced row-level security
-- binds too.
DO $owner$ BEGIN
  EXECUTE format('CREATE POLICY wall_owner_select ON privacy_policies FOR SELECT TO %I USING (true)', current_user);
  EXECUTE format('CREATE POLICY wall_owner_select ON consent_records FOR SELECT TO %I USING (true)', current_user);
END $owner$;

DO $walls$
DECLARE
  reader text;
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_service') THEN
    REVOKE ALL ON privacy_policies, consent_records, subject_keys FROM app_service;
    GRANT SELECT, INSERT ON privacy_policies TO app_service;
    GRANT SELECT, INSERT ON consent_records TO app_service;
    GRANT SELECT, INSERT ON subject_keys TO app_service;
  END IF;
  FOREACH reader IN ARRAY ARRAY['read_only', 'compliance_officer', 'data_processor'] LOOP
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = reader) THEN
      EXECUTE format('REVOKE ALL ON privacy_policies, consent_records, subject_keys FROM %I', reader);
    END IF;
  END LOOP;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'compliance_officer') THEN
    GRANT SELECT ON privacy_policies TO compliance_officer;
    GRANT SELECT (id, tenant_id, user_id, seq, purpose, policy_version, granted, source, recorded_at)
        ON consent_records TO compliance_officer;
    CREATE POLICY wall_compliance_officer_select ON privacy_policies FOR SELECT TO compliance_officer USING (true);
    CREATE POLICY wall_compliance_officer_select ON consent_records FOR SELECT TO compliance_officer USING (true);
  END IF;
END
$walls$;
"#;

fn integer(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).integer().not_null().take()
}

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
        let int_reason = (
            "prefer-bigint-over-int",
            "a policy version or a user's decision count in one tenant: far below 2^31",
        );

        let subject_keys = create_table(backend, SubjectKeys::Table)
            .col(uuid(SubjectKeys::UserId).primary_key())
            // A sealed 32-byte key: 2 + key id + 12 + 32 + 16 bytes.
            .col(binary(SubjectKeys::WrappedKey, 128))
            .col(timestamp_default_now(backend, SubjectKeys::CreatedAt))
            // Users are pseudonymised, never deleted, while they have history.
            .foreign_key(&mut foreign_key(
                SubjectKeys::Table,
                SubjectKeys::UserId,
                Users::Table,
                Users::Id,
                ForeignKeyAction::Restrict,
            ))
            .to_owned();
        manager.create_table(subject_keys).await?;

        let policies = create_table(backend, PrivacyPolicies::Table)
            .col(uuid_pk(PrivacyPolicies::Id))
            .col(uuid(PrivacyPolicies::TenantId))
            .col(integer(PrivacyPolicies::Version))
            .col(string(PrivacyPolicies::Title, 200))
            .col(string(PrivacyPolicies::DocumentUrl, 2048))
            .col(timestamp(backend, PrivacyPolicies::EffectiveAt))
            .col(uuid_null(PrivacyPolicies::PublishedBy))
            .col(timestamp_default_now(backend, PrivacyPolicies::CreatedAt))
            .check(Check::named(
                Alias::new("ck_privacy_policies_version"),
                Expr::cust("version >= 1"),
            ))
            .check(Check::named(
                Alias::new("ck_privacy_policies_title_length"),
                Expr::cust(length("title", "1 AND 200")),
            ))
            .check(Check::named(
                Alias::new("ck_privacy_policies_document_url_length"),
                Expr::cust(length("document_url", "1 AND 2048")),
            ))
            // Consent history names the version it was given under.
            .foreign_key(&mut foreign_key(
                PrivacyPolicies::Table,
                PrivacyPolicies::TenantId,
                Tenants::Table,
                Tenants::Id,
                ForeignKeyAction::Restrict,
            ))
            .foreign_key(&mut foreign_key(
                PrivacyPolicies::Table,
                PrivacyPolicies::PublishedBy,
                Users::Table,
                Users::Id,
                ForeignKeyAction::SetNull,
            ))
            .to_owned();
        accept_lints(manager, &[text_reason, int_reason], &policies).await?;
        manager
            .create_index(unique_index(
                PrivacyPolicies::Table,
                [PrivacyPolicies::TenantId, PrivacyPolicies::Version],
            ))
            .await?;

        let consents = create_table(backend, ConsentRecords::Table)
            .col(uuid_pk(ConsentRecords::Id))
            .col(uuid(ConsentRecords::TenantId))
            .col(uuid(ConsentRecords::UserId))
            .col(integer(ConsentRecords::Seq))
            .col(string(ConsentRecords::Purpose, 64))
            .col(integer(ConsentRecords::PolicyVersion))
            .col(ColumnDef::new(ConsentRecords::Granted).boolean().not_null())
            .col(string(ConsentRecords::Source, 16))
            // Sealed under the subject's data key.
            .col(
                ColumnDef::new(ConsentRecords::IpAddress)
                    .var_binary(255)
                    .null(),
            )
            .col(timestamp(backend, ConsentRecords::RecordedAt))
            .check(Check::named(
                Alias::new("ck_consent_records_seq"),
                Expr::cust("seq >= 1"),
            ))
            .check(Check::named(
                Alias::new("ck_consent_records_purpose_length"),
                Expr::cust(length("purpose", "1 AND 64")),
            ))
            .check(check_in(
                "ck_consent_records_source",
                ConsentRecords::Source,
                CONSENT_SOURCES,
            ))
            .foreign_key(&mut foreign_key(
                ConsentRecords::Table,
                ConsentRecords::TenantId,
                Tenants::Table,
                Tenants::Id,
                ForeignKeyAction::Restrict,
            ))
            .foreign_key(&mut foreign_key(
                ConsentRecords::Table,
                ConsentRecords::UserId,
                Users::Table,
                Users::Id,
                ForeignKeyAction::Restrict,
            ))
            // The version the consent was given under, of the same tenant.
            .foreign_key(&mut composite_foreign_key(
                ConsentRecords::Table,
                [ConsentRecords::TenantId, ConsentRecords::PolicyVersion],
                PrivacyPolicies::Table,
                [PrivacyPolicies::TenantId, PrivacyPolicies::Version],
                ForeignKeyAction::Restrict,
            ))
            .to_owned();
        accept_lints(manager, &[text_reason, int_reason], &consents).await?;
        // A user's history in a tenant, in order; two decisions cannot share a place.
        manager
            .create_index(unique_index(
                ConsentRecords::Table,
                [
                    ConsentRecords::TenantId,
                    ConsentRecords::UserId,
                    ConsentRecords::Seq,
                ],
            ))
            .await?;
        // Withdrawals and grants of a period, for the compliance report.
        manager
            .create_index(index(
                ConsentRecords::Table,
                [ConsentRecords::TenantId, ConsentRecords::RecordedAt],
            ))
            .await?;
        // The user's own foreign key (erasure and export look rows up by user).
        manager
            .create_index(index(ConsentRecords::Table, [ConsentRecords::UserId]))
            .await?;

        make_append_only(
            manager,
            "consent_records",
            "a changed decision is a new row; erasure deletes the subject key instead",
        )
        .await?;
        if backend == DbBackend::Postgres {
            db.execute_unprepared(POSTGRES_UP).await?;
        }
        Ok(())
    }

    /// Drops the three tables with their rows: consent history, policy versions and
    /// the subject keys (so addresses sealed under them are gone for good). For
    /// development databases; a production rollback exports the history first.
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_append_only(manager, "consent_records").await?;
        for table in [
            ConsentRecords::Table.into_iden(),
            PrivacyPolicies::Table.into_iden(),
            SubjectKeys::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
