//! PostgreSQL: the records' grant check (`app_record_granted`, used by the row-level
//! security of `records` and `record_versions`) becomes a PL/pgSQL function, with the
//! same arguments, query and result.
//!
//! Why: a SQL function whose body holds a subquery is not inlined into the policy, and
//! PostgreSQL 15 plans a non-inlined SQL function's query again on every statement that
//! calls it. Planning the grant lookup (under `access_grants`' own row-level security)
//! cost about 0.4 ms of every record read. PL/pgSQL keeps the plan of its query for the
//! session (re-planned when the tables or the search path change), so the check costs
//! its execution only. Nothing else changes: the policies call the function by
//! identity, so they need no change, and it still runs as the caller (not `SECURITY
//! DEFINER`), seeing the current tenant's grants only.
//!
//! SQLite and MariaDB: nothing to do.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The lookup itself, the same in both versions.
const GRANT_LOOKUP: &str = "
    SELECT 1 FROM access_grants g
     WHERE g.tenant_id = app_current_tenant() AND g.grantee_id = app_current_user()
       AND g.subject_id = p_subject AND (g.record_id IS NULL OR g.record_id = p_record)
       AND (NOT p_write OR g.access = 'write')
       AND g.revoked_at IS NULL
       AND g.starts_at <= app_current_time() AND g.expires_at > app_current_time()";

const SIGNATURE: &str = "CREATE OR REPLACE FUNCTION app_record_granted(p_subject uuid, p_record uuid, p_write boolean) RETURNS boolean";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        replace_grant_check(
            manager,
            &format!("LANGUAGE plpgsql STABLE\n    AS $$\nBEGIN\n  RETURN EXISTS ({GRANT_LOOKUP});\nEND\n$$;"),
        )
        .await
    }

    /// The SQL function again, as the records migration created it.
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        replace_grant_check(
            manager,
            &format!("LANGUAGE sql STABLE\n    AS $$\nSELECT EXISTS ({GRANT_LOOKUP})\n$$;"),
        )
        .await
    }
}

/// Replaces `app_record_granted` with the function `definition` gives (its language
/// and body), on PostgreSQL.
async fn replace_grant_check(manager: &SchemaManager<'_>, definition: &str) -> Result<(), DbErr> {
    if manager.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    manager
        .get_connection()
        .execute_unprepared(&format!("{SIGNATURE}\n    {definition}"))
        .await?;
    Ok(())
}
