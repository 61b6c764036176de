//! PostgreSQL: the two checks every request makes, each one statement the runtime
//! role runs without a transaction.
//!
//! Every other read of the service runs in a transaction that first sets the
//! row-security context: `BEGIN`, the context, the read, `COMMIT`, four round trips
//! where a request needs one row. These `SECURITY DEFINER` functions (pinned
//! `search_path`, executable by `app_service` only) read that row as the owner
//! instead, so the service sends a single statement:
//!
//! - `app_session_check(session, user)`: the session's assurance and state, its user's
//!   `is_active`, and whether the user has a second factor (a confirmed TOTP factor
//!   or an enabled passkey). No row unless the session belongs to that user. No token
//!   hash is returned.
//! - `app_api_key_authenticate(key_hash)`: the key's row without its hash, and whether
//!   its tenant is active. It supersedes `app_api_key_lookup`, which returned only the
//!   key's id and tenant and needed a second read in the tenant's context. That one
//!   stays for now: during a rolling deploy the previous release's instances still
//!   call it. A later migration drops it (expand, then contract).
//!
//! Neither widens what the runtime role can learn: it may set any acting user or
//! tenant itself, and the key's hash is what only the key's holder can compute. Both
//! only read; the caller decides and writes (the usage stamp, refusals) in a
//! transaction of its own. Other backends have no row-level security and read the
//! tables directly.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

const POSTGRES_UP: &str = r#"
DO $functions$
BEGIN
  EXECUTE replace($body$
CREATE FUNCTION app_session_check(p_session uuid, p_user uuid)
    RETURNS TABLE (aal varchar, auth_methods varchar, authenticated_at timestamptz,
                   created_at timestamptz, expires_at timestamptz, revoked_at timestamptz,
                   user_active boolean, has_second_factor boolean)
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, {schema}, pg_temp
    AS $$
BEGIN
  -- plpgsql rather than sql: its plan is kept per connection, not made per call.
  RETURN QUERY
    SELECT s.aal, s.auth_methods, s.authenticated_at, s.created_at, s.expires_at,
           s.revoked_at, u.is_active,
           EXISTS (SELECT 1 FROM mfa_factors f
                    WHERE f.user_id = p_user AND f.confirmed_at IS NOT NULL)
           OR EXISTS (SELECT 1 FROM passkeys k
                       WHERE k.user_id = p_user AND k.disabled_at IS NULL)
      FROM sessions s JOIN users u ON u.id = s.user_id
     WHERE s.id = p_session AND s.user_id = p_user;
END
$$;

CREATE FUNCTION app_api_key_authenticate(p_key_hash text)
    RETURNS TABLE (id uuid, tenant_id uuid, created_by uuid, name varchar, prefix varchar,
                   scopes jsonb, expires_at timestamptz, last_used_at timestamptz,
                   revoked_at timestamptz, replaced_by uuid, grace_ends_at timestamptz,
                   created_at timestamptz, updated_at timestamptz, tenant_active boolean)
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, {schema}, pg_temp
    AS $$
BEGIN
  RETURN QUERY
    SELECT k.id, k.tenant_id, k.created_by, k.name, k.prefix, k.scopes, k.expires_at,
           k.last_used_at, k.revoked_at, k.replaced_by, k.grace_ends_at, k.created_at,
           k.updated_at, t.is_active
      FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
     WHERE k.key_hash = p_key_hash;
END
$$;
$body$, '{schema}', quote_ident(current_schema()));
END
$functions$;
REVOKE ALL ON FUNCTION app_session_check(uuid, uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION app_api_key_authenticate(text) FROM PUBLIC;
COMMENT ON FUNCTION app_api_key_lookup(text) IS
  'Superseded by app_api_key_authenticate; kept for the previous release during a rolling deploy, to be dropped by a later migration.';

DO $walls$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_service') THEN
    GRANT EXECUTE ON FUNCTION app_session_check(uuid, uuid) TO app_service;
    GRANT EXECUTE ON FUNCTION app_api_key_authenticate(text) TO app_service;
  END IF;
END
$walls$;
"#;

const POSTGRES_DOWN: &str = r#"
COMMENT ON FUNCTION app_api_key_lookup(text) IS NULL;
DROP FUNCTION IF EXISTS app_api_key_authenticate(text);
DROP FUNCTION IF EXISTS app_session_check(uuid, uuid);
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(POSTGRES_UP)
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(POSTGRES_DOWN)
                .await?;
        }
        Ok(())
    }
}
