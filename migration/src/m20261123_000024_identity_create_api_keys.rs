//! `api_keys`: a tenant's keys for machine clients. Only the SHA-256 of a key and its
//! visible prefix (`sk_test_AbCd1234`) are stored.
//!
//! Rotation makes a new key and leaves the old one working until `grace_ends_at`:
//! `replaced_by` names its successor, in the same tenant (a composite foreign key).
//! Revocation is an update (`revoked_at`); keys are never deleted at run time, so the
//! audit trail can always name them.
//!
//! The table stays in the main schema for every isolation level: a presented key is
//! looked up by its hash before its tenant is known.
//!
//! PostgreSQL: row-level security forced, with per-command policies for the current
//! tenant (read, insert, update; no delete policy and no DELETE privilege). The
//! runtime role `app_service` reads every column but `key_hash`, inserts whole rows
//! and updates only the usage, revocation and rotation columns. Authentication finds
//! a key by hash through `app_api_key_lookup`, a `SECURITY DEFINER` function with a
//! pinned `search_path` that returns the key's id and tenant, never the hash. The
//! roles that read every table read this one without `key_hash` too.

use crate::lint::accept_lint;
use crate::schema_helpers::*;
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    TenantId,
    CreatedBy,
    Name,
    Prefix,
    KeyHash,
    Scopes,
    ExpiresAt,
    LastUsedAt,
    RevokedAt,
    ReplacedBy,
    GraceEndsAt,
    CreatedAt,
    UpdatedAt,
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

/// Every column but the hash: what the runtime role and the reading roles may see.
const READABLE: &str = "id, tenant_id, created_by, name, prefix, scopes, expires_at, last_used_at, revoked_at, replaced_by, grace_ends_at, created_at, updated_at";

const POSTGRES_UP: &str = r#"
ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY wall_select ON api_keys FOR SELECT USING (tenant_id = app_current_tenant());
CREATE POLICY wall_insert ON api_keys FOR INSERT WITH CHECK (tenant_id = app_current_tenant());
CREATE POLICY wall_update ON api_keys FOR UPDATE USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant());

-- Revocation and rotation are one-way, whoever updates: the runtime role needs UPDATE on
-- these columns to revoke and rotate, and must not be able to undo either.
CREATE FUNCTION app_api_keys_one_way() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$
BEGIN
  IF OLD.revoked_at IS NOT NULL AND NEW.revoked_at IS DISTINCT FROM OLD.revoked_at THEN
    RAISE EXCEPTION 'API key % is revoked and stays revoked', OLD.id USING ERRCODE = 'check_violation';
  END IF;
  IF OLD.replaced_by IS NOT NULL AND (NEW.replaced_by IS DISTINCT FROM OLD.replaced_by
                                      OR NEW.grace_ends_at IS NULL
                                      OR NEW.grace_ends_at > OLD.grace_ends_at) THEN
    RAISE EXCEPTION 'API key % was rotated: its successor stays and its grace period can only end sooner', OLD.id
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER api_keys_one_way BEFORE UPDATE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION app_api_keys_one_way();

-- The lookup below runs as the owner, whom the forced row-level security binds too.
DO $owner$ BEGIN
  EXECUTE format('CREATE POLICY wall_owner_select ON api_keys FOR SELECT TO %I USING (true)', current_user);
END $owner$;

DO $functions$
BEGIN
  EXECUTE replace($body$
-- Authentication: which key and tenant a presented key's hash names.
CREATE FUNCTION app_api_key_lookup(p_key_hash text)
    RETURNS TABLE (key_id uuid, tenant_id uuid)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, {schema}, pg_temp
    AS $$ SELECT k.id, k.tenant_id FROM api_keys k WHERE k.key_hash = p_key_hash $$;
$body$, '{schema}', quote_ident(current_schema()));
END
$functions$;
REVOKE ALL ON FUNCTION app_api_key_lookup(text) FROM PUBLIC;

DO $walls$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_service') THEN
    GRANT SELECT ({readable}) ON api_keys TO app_service;
    GRANT INSERT (id, tenant_id, created_by, name, prefix, key_hash, scopes, expires_at, created_at, updated_at) ON api_keys TO app_service;
    GRANT UPDATE (last_used_at, revoked_at, replaced_by, grace_ends_at, updated_at) ON api_keys TO app_service;
    GRANT EXECUTE ON FUNCTION app_api_key_lookup(text) TO app_service;
  END IF;
END
$walls$;

-- The reading roles got SELECT on the new table by default; not on the hash.
DO $readers$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'read_only') THEN
    REVOKE SELECT ON api_keys FROM read_only;
    GRANT SELECT ({readable}) ON api_keys TO read_only;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'compliance_officer') THEN
    REVOKE SELECT ON api_keys FROM compliance_officer;
    GRANT SELECT ({readable}) ON api_keys TO compliance_officer;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'data_processor') THEN
    -- Its default privileges include writes: a processor of personal data has no
    -- business writing credentials, whose hash or scopes it could otherwise replace.
    REVOKE ALL ON api_keys FROM data_processor;
    GRANT SELECT ({readable}) ON api_keys TO data_processor;
  END IF;
END
$readers$;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let mut table = create_table(backend, ApiKeys::Table);
        table
            .col(uuid_pk(ApiKeys::Id))
            .col(uuid(ApiKeys::TenantId))
            .col(uuid_null(ApiKeys::CreatedBy))
            .col(string(ApiKeys::Name, 100))
            .col(string(ApiKeys::Prefix, 32))
            // varchar with a length check rather than char(64): the same 64 hex
            // digits, without char's padding semantics.
            .col(string(ApiKeys::KeyHash, 64))
            .col(json(ApiKeys::Scopes))
            .col(timestamp_null(backend, ApiKeys::ExpiresAt))
            .col(timestamp_null(backend, ApiKeys::LastUsedAt))
            .col(timestamp_null(backend, ApiKeys::RevokedAt))
            .col(uuid_null(ApiKeys::ReplacedBy))
            .col(timestamp_null(backend, ApiKeys::GraceEndsAt))
            .col(timestamp_default_now(backend, ApiKeys::CreatedAt))
            .col(timestamp_default_now(backend, ApiKeys::UpdatedAt))
            .check(Check::named(
                Alias::new("ck_api_keys_key_hash_length"),
                Expr::cust("LENGTH(key_hash) = 64"),
            ))
            .check(Check::named(
                Alias::new("ck_api_keys_name_not_empty"),
                Expr::cust("LENGTH(name) > 0"),
            ))
            // A replaced key always has a deadline, and only a replaced key has one.
            .check(Check::named(
                Alias::new("ck_api_keys_replacement"),
                Expr::cust(
                    "(replaced_by IS NULL AND grace_ends_at IS NULL) OR (replaced_by IS NOT NULL AND grace_ends_at IS NOT NULL AND replaced_by <> id)",
                ),
            ))
            .foreign_key(&mut foreign_key(
                ApiKeys::Table,
                ApiKeys::TenantId,
                Tenants::Table,
                Tenants::Id,
                ForeignKeyAction::Cascade,
            ))
            // Who created a key is history; the key belongs to the tenant and outlives
            // its creator's account.
            .foreign_key(&mut foreign_key(
                ApiKeys::Table,
                ApiKeys::CreatedBy,
                Users::Table,
                Users::Id,
                ForeignKeyAction::SetNull,
            ));
        // SQLite resolves the key when rows change, so it gets it inline; the others
        // need the unique (tenant_id, id) first and get it below.
        if backend == DbBackend::Sqlite {
            table.foreign_key(&mut successor_key());
        }
        accept_lint(
            manager,
            "prefer-text-field",
            "varchar(n) is the input limit, enforced by the database; MariaDB needs a bounded length to index key_hash",
            &table.to_owned(),
        )
        .await?;
        manager
            .create_index(unique_index(ApiKeys::Table, [ApiKeys::KeyHash]))
            .await?;
        // The target of the composite successor key.
        manager
            .create_index(unique_index(
                ApiKeys::Table,
                [ApiKeys::TenantId, ApiKeys::Id],
            ))
            .await?;
        // A tenant's keys, newest first.
        manager
            .create_index(index(
                ApiKeys::Table,
                [ApiKeys::TenantId, ApiKeys::CreatedAt],
            ))
            .await?;
        if backend != DbBackend::Sqlite {
            manager.create_foreign_key(successor_key()).await?;
        }
        if backend == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(&POSTGRES_UP.replace("{readable}", READABLE))
                .await?;
        }
        Ok(())
    }

    /// Drops the keys with the table: they are credentials, not history (the audit
    /// trail names them by id and keeps its rows).
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(
                    "DROP FUNCTION IF EXISTS app_api_key_lookup(text);
                     DROP TRIGGER IF EXISTS api_keys_one_way ON api_keys;
                     DROP FUNCTION IF EXISTS app_api_keys_one_way();",
                )
                .await?;
        }
        manager
            .drop_table(Table::drop().table(ApiKeys::Table).to_owned())
            .await
    }
}

/// A key's successor is a key of the same tenant. Deleting a successor deletes the
/// keys it replaced: they work only during its grace period, and the cascade lets a
/// tenant's deletion remove a rotation chain in any order on every backend.
fn successor_key() -> ForeignKeyCreateStatement {
    composite_foreign_key(
        ApiKeys::Table,
        [ApiKeys::TenantId, ApiKeys::ReplacedBy],
        ApiKeys::Table,
        [ApiKeys::TenantId, ApiKeys::Id],
        ForeignKeyAction::Cascade,
    )
}
