//! `passkeys`: a user's WebAuthn credentials (discoverable or not), for signing in
//! without a password or as a second factor.
//!
//! Only public data is stored: the credential id the authenticator chose (16 to 1023
//! bytes, unique), the public key as an uncompressed SEC1 point (`0x04 || X || Y`,
//! 65 bytes for P-256; the service turns the COSE key of a registration into it), the
//! COSE algorithm (-7, ES256), the AAGUID of the authenticator's model, its transports
//! as comma-separated text (`internal,hybrid`: the same on every backend, and short),
//! and the backup flags. `sign_count` is the authenticator's signature counter: an
//! assertion must raise it once it is non-zero, and one that does not reveals a
//! cloned authenticator, after which the credential is disabled (`disabled_at`,
//! `disabled_reason`) and refused for good.
//!
//! PostgreSQL: global identity rows visible to the acting user only
//! (`app.current_user_id`), with per-command policies; RLS enabled and forced, so
//! the owner sees rows only through its own read policy (the lookup below). An
//! assertion names a credential before its user is known: `app_passkey_lookup`, a
//! `SECURITY DEFINER` function with a pinned `search_path`, returns the credential's
//! row id and user, nothing more. The runtime role reads every column (nothing here
//! is secret), inserts whole rows without the usage and disabling columns, updates
//! only the name, the counter, the backup state, the usage and the disabling, and
//! deletes (removal). A trigger keeps `sign_count` growing and a disabled credential
//! disabled, whoever updates. The reading roles read every column and write nothing.

use crate::lint::accept_lints;
use crate::schema_helpers::*;
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Passkeys {
    Table,
    Id,
    UserId,
    CredentialId,
    PublicKey,
    Algorithm,
    SignCount,
    Aaguid,
    Transports,
    BackupEligible,
    BackupState,
    Name,
    CreatedAt,
    LastUsedAt,
    DisabledAt,
    DisabledReason,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

const POSTGRES_UP: &str = r#"
ALTER TABLE passkeys ENABLE ROW LEVEL SECURITY;
ALTER TABLE passkeys FORCE ROW LEVEL SECURITY;
CREATE POLICY wall_select ON passkeys FOR SELECT USING (user_id = app_current_user());
CREATE POLICY wall_insert ON passkeys FOR INSERT WITH CHECK (user_id = app_current_user());
CREATE POLICY wall_update ON passkeys FOR UPDATE USING (user_id = app_current_user()) WITH CHECK (user_id = app_current_user());
-- A passkey disabled as a cloned authenticator stays on record: deleting it would let
-- its credential be registered again with a fresh counter.
CREATE POLICY wall_delete ON passkeys FOR DELETE USING (user_id = app_current_user() AND disabled_at IS NULL);

-- The lookup below runs as the owner, whom the forced row-level security binds too.
DO $owner$ BEGIN
  EXECUTE format('CREATE POLICY wall_owner_select ON passkeys FOR SELECT TO %I USING (true)', current_user);
END $owner$;

-- Clone detection cannot be undone by the role that verifies assertions: the counter
-- only grows, and a disabled credential stays disabled.
CREATE FUNCTION app_passkeys_one_way() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$
BEGIN
  IF NEW.sign_count < OLD.sign_count THEN
    RAISE EXCEPTION 'passkey %: sign_count only grows', OLD.id USING ERRCODE = 'check_violation';
  END IF;
  IF OLD.disabled_at IS NOT NULL AND (NEW.disabled_at IS DISTINCT FROM OLD.disabled_at
                                      OR NEW.disabled_reason IS DISTINCT FROM OLD.disabled_reason) THEN
    RAISE EXCEPTION 'passkey % is disabled and stays disabled', OLD.id USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER passkeys_one_way BEFORE UPDATE ON passkeys
    FOR EACH ROW EXECUTE FUNCTION app_passkeys_one_way();

DO $functions$
BEGIN
  EXECUTE replace($body$
-- Assertion: whose credential a presented credential id is.
CREATE FUNCTION app_passkey_lookup(p_credential_id bytea)
    RETURNS TABLE (passkey_id uuid, user_id uuid)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, {schema}, pg_temp
    AS $$ SELECT p.id, p.user_id FROM passkeys p WHERE p.credential_id = p_credential_id $$;
$body$, '{schema}', quote_ident(current_schema()));
END
$functions$;
REVOKE ALL ON FUNCTION app_passkey_lookup(bytea) FROM PUBLIC;

DO $walls$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_service') THEN
    GRANT SELECT ON passkeys TO app_service;
    GRANT INSERT (id, user_id, credential_id, public_key, algorithm, sign_count, aaguid, transports, backup_eligible, backup_state, name, created_at) ON passkeys TO app_service;
    GRANT UPDATE (name, sign_count, backup_state, last_used_at, disabled_at, disabled_reason) ON passkeys TO app_service;
    GRANT DELETE ON passkeys TO app_service;
    GRANT EXECUTE ON FUNCTION app_passkey_lookup(bytea) TO app_service;
  END IF;
END
$walls$;

-- The reading roles got SELECT (data_processor also writes) on the new table by
-- default: they keep reading it, public keys are public, and nobody of them has
-- business writing credentials.
DO $readers$
DECLARE
  reader text;
BEGIN
  FOREACH reader IN ARRAY ARRAY['read_only', 'compliance_officer', 'data_processor'] LOOP
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = reader) THEN
      EXECUTE format('REVOKE ALL ON passkeys FROM %I', reader);
      EXECUTE format('GRANT SELECT ON passkeys TO %I', reader);
    END IF;
  END LOOP;
END
$readers$;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        // Characters, not bytes: MariaDB's LENGTH counts bytes, SQLite has no
        // CHAR_LENGTH (its LENGTH counts characters of text).
        let name_length = match backend {
            DbBackend::Sqlite => "LENGTH(name) BETWEEN 1 AND 64",
            _ => "CHAR_LENGTH(name) BETWEEN 1 AND 64",
        };
        let mut sign_count = ColumnDef::new(Passkeys::SignCount);
        match backend {
            // As `big_integer_null`: SQLite's catalogue then names the entity's width.
            DbBackend::Sqlite => sign_count.custom(Alias::new("bigint")),
            _ => sign_count.big_integer(),
        };
        sign_count.not_null().default(0);
        let passkeys = create_table(backend, Passkeys::Table)
            .col(uuid_pk(Passkeys::Id))
            .col(uuid(Passkeys::UserId))
            .col(binary(Passkeys::CredentialId, 1023))
            // An uncompressed SEC1 point: 65 bytes for P-256; room for larger curves.
            .col(binary(Passkeys::PublicKey, 255))
            .col(ColumnDef::new(Passkeys::Algorithm).integer().not_null())
            .col(sign_count)
            .col(uuid(Passkeys::Aaguid))
            .col(string(Passkeys::Transports, 128))
            .col(boolean(Passkeys::BackupEligible, false))
            .col(boolean(Passkeys::BackupState, false))
            .col(string(Passkeys::Name, 64))
            .col(timestamp_default_now(backend, Passkeys::CreatedAt))
            .col(timestamp_null(backend, Passkeys::LastUsedAt))
            .col(timestamp_null(backend, Passkeys::DisabledAt))
            .col(string_null(Passkeys::DisabledReason, 32))
            // WebAuthn: a credential id is at most 1023 bytes; authenticators make them
            // of at least 16 random bytes.
            .check(Check::named(
                Alias::new("ck_passkeys_credential_id_length"),
                Expr::cust("LENGTH(credential_id) BETWEEN 16 AND 1023"),
            ))
            .check(Check::named(
                Alias::new("ck_passkeys_public_key_length"),
                Expr::cust("LENGTH(public_key) BETWEEN 1 AND 255"),
            ))
            // The authenticator's counter is 32 bits unsigned.
            .check(Check::named(
                Alias::new("ck_passkeys_sign_count"),
                Expr::cust("sign_count BETWEEN 0 AND 4294967295"),
            ))
            .check(Check::named(
                Alias::new("ck_passkeys_name_length"),
                Expr::cust(name_length),
            ))
            // A backed-up credential is one that may be.
            .check(Check::named(
                Alias::new("ck_passkeys_backup"),
                Expr::cust("backup_eligible OR NOT backup_state"),
            ))
            .check(check_in(
                "ck_passkeys_disabled_reason",
                Passkeys::DisabledReason,
                &["cloned_authenticator"],
            ))
            // Disabled means both: when, and why.
            .check(Check::named(
                Alias::new("ck_passkeys_disabled"),
                Expr::cust(
                    "(disabled_at IS NULL AND disabled_reason IS NULL) OR (disabled_at IS NOT NULL AND disabled_reason IS NOT NULL)",
                ),
            ))
            .foreign_key(&mut foreign_key(
                Passkeys::Table,
                Passkeys::UserId,
                Users::Table,
                Users::Id,
                ForeignKeyAction::Cascade,
            ))
            .to_owned();
        accept_lints(
            manager,
            &[
                (
                    "prefer-text-field",
                    "varchar(n) is the input limit, enforced by the database",
                ),
                (
                    "prefer-bigint-over-int",
                    "a COSE algorithm identifier from the IANA registry (-7, -8, -257), not a counter",
                ),
            ],
            &passkeys,
        )
        .await?;
        manager
            .create_index(unique_index(Passkeys::Table, [Passkeys::CredentialId]))
            .await?;
        // A user's passkeys: listed, and deleted with the user.
        manager
            .create_index(index(Passkeys::Table, [Passkeys::UserId]))
            .await?;

        if backend == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(POSTGRES_UP)
                .await?;
        }
        Ok(())
    }

    /// Drops the passkeys with their table: they are credentials, not history (the
    /// audit trail names them by id and keeps its rows). Their users sign in with
    /// their passwords afterwards, as they did before.
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Passkeys::Table).to_owned())
            .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(
                    "DROP FUNCTION IF EXISTS app_passkey_lookup(bytea);
                     DROP FUNCTION IF EXISTS app_passkeys_one_way();",
                )
                .await?;
        }
        Ok(())
    }
}
