//! `mfa_factors` and `mfa_backup_codes`: a user's second factor (TOTP, RFC 6238) and
//! the single-use codes that stand in for it.
//!
//! A factor's secret is stored sealed by the service's field encryption (AES-256-GCM,
//! bound to `mfa_factors.secret.<id>`), never in clear. `last_used_step` is the newest
//! time step a code was accepted for: a code is accepted only for a later step, decided
//! by a conditional update, so a code works once. A user has at most one factor of a
//! kind (`uq_mfa_factors_user_id_kind`); disabling deletes it.
//!
//! Backup codes are stored as the hex SHA-256 of the code, one row each; `used_at` is
//! set by a conditional update, so a code works once.
//!
//! PostgreSQL: like `sessions`, global identity rows visible to the acting user only
//! (`app.current_user_id`), with per-command policies; RLS enabled, not forced (nothing
//! reads these tables as the owner at run time, and the owner's tools, re-encryption
//! and the seeder's reset, need to see every row). The runtime role reads the sealed
//! secret (it must open it to verify a code, and it is useless without the key ring)
//! and the code hashes (a backup code is looked up by its hash; 80 random bits make
//! the hash useless to whoever reads it), inserts whole rows, updates only what
//! verification changes, and deletes (disabling, replacing the codes). Triggers keep
//! `last_used_step`, `confirmed_at` and `used_at` one-way, whoever updates. The roles
//! that read every table read these without `secret` and `code_hash`.

use crate::lint::{accept_lint, acceptance_comment};
use crate::schema_helpers::*;
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum MfaFactors {
    Table,
    Id,
    UserId,
    Kind,
    Name,
    Secret,
    Algorithm,
    Digits,
    Period,
    ConfirmedAt,
    LastUsedStep,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum MfaBackupCodes {
    Table,
    Id,
    UserId,
    CodeHash,
    UsedAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

/// Every column but the secret: what the reading roles see.
const FACTORS_READABLE: &str = "id, user_id, kind, name, algorithm, digits, period, confirmed_at, last_used_step, created_at, updated_at";
/// Every column but the hash.
const CODES_READABLE: &str = "id, user_id, used_at, created_at";

const POSTGRES_UP: &str = r#"
ALTER TABLE mfa_factors ENABLE ROW LEVEL SECURITY;
CREATE POLICY wall_select ON mfa_factors FOR SELECT USING (user_id = app_current_user());
CREATE POLICY wall_insert ON mfa_factors FOR INSERT WITH CHECK (user_id = app_current_user());
CREATE POLICY wall_update ON mfa_factors FOR UPDATE USING (user_id = app_current_user()) WITH CHECK (user_id = app_current_user());
CREATE POLICY wall_delete ON mfa_factors FOR DELETE USING (user_id = app_current_user());

ALTER TABLE mfa_backup_codes ENABLE ROW LEVEL SECURITY;
CREATE POLICY wall_select ON mfa_backup_codes FOR SELECT USING (user_id = app_current_user());
CREATE POLICY wall_insert ON mfa_backup_codes FOR INSERT WITH CHECK (user_id = app_current_user());
CREATE POLICY wall_update ON mfa_backup_codes FOR UPDATE USING (user_id = app_current_user()) WITH CHECK (user_id = app_current_user());
CREATE POLICY wall_delete ON mfa_backup_codes FOR DELETE USING (user_id = app_current_user());

-- Replay protection cannot be undone by the role that verifies codes: the last used
-- step only grows, a confirmation stays, a used backup code stays used.
CREATE FUNCTION app_mfa_factors_one_way() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$
BEGIN
  IF OLD.last_used_step IS NOT NULL
     AND (NEW.last_used_step IS NULL OR NEW.last_used_step < OLD.last_used_step) THEN
    RAISE EXCEPTION 'MFA factor %: last_used_step only grows', OLD.id USING ERRCODE = 'check_violation';
  END IF;
  IF OLD.confirmed_at IS NOT NULL AND NEW.confirmed_at IS DISTINCT FROM OLD.confirmed_at THEN
    RAISE EXCEPTION 'MFA factor % is confirmed and stays confirmed', OLD.id USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER mfa_factors_one_way BEFORE UPDATE ON mfa_factors
    FOR EACH ROW EXECUTE FUNCTION app_mfa_factors_one_way();

CREATE FUNCTION app_mfa_backup_codes_one_way() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$
BEGIN
  IF OLD.used_at IS NOT NULL AND NEW.used_at IS DISTINCT FROM OLD.used_at THEN
    RAISE EXCEPTION 'backup code % was used and stays used', OLD.id USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER mfa_backup_codes_one_way BEFORE UPDATE ON mfa_backup_codes
    FOR EACH ROW EXECUTE FUNCTION app_mfa_backup_codes_one_way();

DO $walls$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_service') THEN
    GRANT SELECT ({factors_readable}, secret) ON mfa_factors TO app_service;
    GRANT INSERT (id, user_id, kind, name, secret, algorithm, digits, period, created_at, updated_at) ON mfa_factors TO app_service;
    GRANT UPDATE (confirmed_at, last_used_step, updated_at) ON mfa_factors TO app_service;
    GRANT DELETE ON mfa_factors TO app_service;
    GRANT SELECT ({codes_readable}, code_hash) ON mfa_backup_codes TO app_service;
    GRANT INSERT (id, user_id, code_hash, created_at) ON mfa_backup_codes TO app_service;
    GRANT UPDATE (used_at) ON mfa_backup_codes TO app_service;
    GRANT DELETE ON mfa_backup_codes TO app_service;
  END IF;
END
$walls$;

-- The reading roles got SELECT on the new tables by default; not on the secrets.
DO $readers$
DECLARE
  reader text;
BEGIN
  FOREACH reader IN ARRAY ARRAY['read_only', 'compliance_officer', 'data_processor'] LOOP
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = reader) THEN
      -- ALL, not SELECT: data_processor's default privileges include writes, and no
      -- processor of personal data has business writing second factors.
      EXECUTE format('REVOKE ALL ON mfa_factors, mfa_backup_codes FROM %I', reader);
      EXECUTE format('GRANT SELECT ({factors_readable}) ON mfa_factors TO %I', reader);
      EXECUTE format('GRANT SELECT ({codes_readable}) ON mfa_backup_codes TO %I', reader);
    END IF;
  END LOOP;
END
$readers$;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let factors = create_table(backend, MfaFactors::Table)
            .col(uuid_pk(MfaFactors::Id))
            .col(uuid(MfaFactors::UserId))
            .col(string(MfaFactors::Kind, 16))
            .col(string(MfaFactors::Name, 100))
            // A sealed value: a header naming the key, a nonce, the secret (at most 64
            // bytes, for HMAC-SHA-512) and a tag; well under 255 bytes.
            .col(binary(MfaFactors::Secret, 255))
            .col(string(MfaFactors::Algorithm, 8))
            .col(small_integer(MfaFactors::Digits))
            .col(small_integer(MfaFactors::Period))
            .col(timestamp_null(backend, MfaFactors::ConfirmedAt))
            .col(big_integer_null(backend, MfaFactors::LastUsedStep))
            .col(timestamp_default_now(backend, MfaFactors::CreatedAt))
            .col(timestamp_default_now(backend, MfaFactors::UpdatedAt))
            .check(check_in("ck_mfa_factors_kind", MfaFactors::Kind, &["totp"]))
            .check(check_in(
                "ck_mfa_factors_algorithm",
                MfaFactors::Algorithm,
                &["SHA1", "SHA256", "SHA512"],
            ))
            .check(Check::named(
                Alias::new("ck_mfa_factors_name_not_empty"),
                Expr::cust("LENGTH(name) > 0"),
            ))
            // RFC 4226 codes have 6 to 8 digits; periods outside 15 s to 2 min are
            // either unusable to type or too long-lived.
            .check(Check::named(
                Alias::new("ck_mfa_factors_digits"),
                Expr::cust("digits BETWEEN 6 AND 8"),
            ))
            .check(Check::named(
                Alias::new("ck_mfa_factors_period"),
                Expr::cust("period BETWEEN 15 AND 120"),
            ))
            .check(Check::named(
                Alias::new("ck_mfa_factors_last_used_step"),
                Expr::cust("last_used_step IS NULL OR last_used_step >= 0"),
            ))
            .foreign_key(&mut foreign_key(
                MfaFactors::Table,
                MfaFactors::UserId,
                Users::Table,
                Users::Id,
                ForeignKeyAction::Cascade,
            ))
            .to_owned();
        // Two findings on one statement: both acceptances go in front of it.
        let mut statement = backend.build(&factors);
        statement.sql = format!(
            "{}\n{}\n{}",
            acceptance_comment(
                "prefer-text-field",
                "varchar(n) is the input limit, enforced by the database",
            )?,
            acceptance_comment(
                "prefer-bigint-over-smallint",
                "digits and period are checked to 6-8 and 15-120; they are not counters",
            )?,
            statement.sql
        );
        manager.get_connection().execute_raw(statement).await?;
        // One factor of each kind per user; also the index of "this user's factors".
        manager
            .create_index(unique_index(
                MfaFactors::Table,
                [MfaFactors::UserId, MfaFactors::Kind],
            ))
            .await?;

        let codes = create_table(backend, MfaBackupCodes::Table)
            .col(uuid_pk(MfaBackupCodes::Id))
            .col(uuid(MfaBackupCodes::UserId))
            // varchar with a length check rather than char(64), as for API keys.
            .col(string(MfaBackupCodes::CodeHash, 64))
            .col(timestamp_null(backend, MfaBackupCodes::UsedAt))
            .col(timestamp_default_now(backend, MfaBackupCodes::CreatedAt))
            .check(Check::named(
                Alias::new("ck_mfa_backup_codes_code_hash_length"),
                Expr::cust("LENGTH(code_hash) = 64"),
            ))
            .foreign_key(&mut foreign_key(
                MfaBackupCodes::Table,
                MfaBackupCodes::UserId,
                Users::Table,
                Users::Id,
                ForeignKeyAction::Cascade,
            ))
            .to_owned();
        accept_lint(
            manager,
            "prefer-text-field",
            "varchar(n) is the input limit, enforced by the database; MariaDB needs a bounded length to index code_hash",
            &codes,
        )
        .await?;
        manager
            .create_index(unique_index(
                MfaBackupCodes::Table,
                [MfaBackupCodes::CodeHash],
            ))
            .await?;
        // A user's codes: replaced as a set, counted, and deleted with the user.
        manager
            .create_index(index(MfaBackupCodes::Table, [MfaBackupCodes::UserId]))
            .await?;

        if backend == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(
                    &POSTGRES_UP
                        .replace("{factors_readable}", FACTORS_READABLE)
                        .replace("{codes_readable}", CODES_READABLE),
                )
                .await?;
        }
        Ok(())
    }

    /// Drops the factors and codes with their tables: they are credentials, not
    /// history (the audit trail names factors by id and keeps its rows). Users who had
    /// a factor sign in with their password alone afterwards, as they did before.
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(MfaBackupCodes::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(MfaFactors::Table).to_owned())
            .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(
                    "DROP FUNCTION IF EXISTS app_mfa_backup_codes_one_way();
                     DROP FUNCTION IF EXISTS app_mfa_factors_one_way();",
                )
                .await?;
        }
        Ok(())
    }
}
