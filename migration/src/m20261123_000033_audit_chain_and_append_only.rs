//! The audit trail becomes tamper-evident: every row a link of a hash chain, and the
//! table append-only on every backend.
//!
//! - `audit_logs` gains `chain_id`, `chain_seq`, `chain_version`, `prev_hash` and
//!   `hash` (what they mean, and the frozen canonical encoding the hash covers:
//!   `entity::audit::chain`), unique on `(chain_id, chain_seq)`.
//! - `audit_chain_heads` holds each chain's last link; an append locks it.
//! - The rows already written are chained here, in the order they happened
//!   (`occurred_at`, then `id`), one `UPDATE` per row: on a large trail this migration
//!   takes minutes, under an exclusive lock on PostgreSQL. Plan it like a table
//!   rewrite.
//! - Triggers then refuse every `UPDATE` and `DELETE` of an audit row (and `TRUNCATE`
//!   on PostgreSQL; MariaDB runs no trigger on `TRUNCATE`, which needs the `DROP`
//!   privilege there: keep it from every account but the schema owner's). Nobody,
//!   the owner included, changes history without first dropping a trigger, which is
//!   DDL that an operator's own logs show (on PostgreSQL the triggers fire `ALWAYS`, also
//!   under `session_replication_role = replica`). The runtime role lacks the privileges
//!   too. A CHECK keeps each row in the chain its tenant and actor name (PostgreSQL,
//!   MariaDB; SQLite cannot add one to an existing table, and verification reports it).
//! - PostgreSQL walls of `audit_chain_heads`: row-level security forced; the runtime
//!   role reads, inserts and updates (the sequence and hash only) the head of
//!   the current tenant's chain, of the acting user's chain and of the anonymous one,
//!   creates heads only at sequence 0, and deletes nothing; the reading roles read.
//!
//! Not for a rolling deploy: once it ran, the previous release's audit writes fail (they
//! carry no chain, and the columns have no default, so no row lands outside a chain).
//! Stop the old release's writers, migrate, start the release that chains.
//!
//! `down` drops the triggers, the heads and the chain columns; the rows stay.

use crate::lint::{accept_lint, accept_lint_sql, accept_lints};
use crate::schema_helpers::*;
use entity::audit::chain::{self, ChainedRow, GENESIS};
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::prelude::{DateTimeUtc, Json, Uuid};
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, QueryResult};
use std::collections::HashMap;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum AuditLogs {
    Table,
    Id,
    TenantId,
    ActorUserId,
    EventType,
    ResourceType,
    ResourceId,
    Outcome,
    RiskScore,
    IpAddress,
    UserAgent,
    Details,
    OccurredAt,
    ChainId,
    ChainSeq,
    ChainVersion,
    PrevHash,
    Hash,
}

#[derive(DeriveIden)]
enum AuditChainHeads {
    Table,
    ChainId,
    LastSeq,
    LastHash,
}

/// Rows chained per round trip of the backfill's reads.
const BACKFILL_PAGE: u64 = 1000;

/// Chain heads per INSERT statement (3 bound values each).
const HEADS_PER_INSERT: usize = 1000;

const POSTGRES_TRIGGERS: &str = r#"
CREATE FUNCTION app_audit_logs_append_only() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$
BEGIN
  RAISE EXCEPTION 'audit_logs is append-only: % refused', TG_OP
    USING ERRCODE = 'insufficient_privilege',
          HINT = 'audit rows are never changed or removed; erasure pseudonymises the subject elsewhere';
END
$$;
CREATE TRIGGER audit_logs_append_only BEFORE UPDATE OR DELETE ON audit_logs
    FOR EACH ROW EXECUTE FUNCTION app_audit_logs_append_only();
CREATE TRIGGER audit_logs_no_truncate BEFORE TRUNCATE ON audit_logs
    FOR EACH STATEMENT EXECUTE FUNCTION app_audit_logs_append_only();
-- Also in a session with session_replication_role = replica, which skips ordinary
-- triggers without any DDL.
ALTER TABLE audit_logs ENABLE ALWAYS TRIGGER audit_logs_append_only;
ALTER TABLE audit_logs ENABLE ALWAYS TRIGGER audit_logs_no_truncate;
"#;

/// Every row sits in the chain its tenant and actor name.
const POSTGRES_CHAIN_CHECK: &str = "ALTER TABLE audit_logs ADD CONSTRAINT ck_audit_logs_chain_id \
     CHECK (chain_id = COALESCE(tenant_id, actor_user_id, '00000000-0000-0000-0000-000000000000'::uuid))";

const POSTGRES_WALLS: &str = r#"
ALTER TABLE audit_logs FORCE ROW LEVEL SECURITY;

ALTER TABLE audit_chain_heads ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_chain_heads FORCE ROW LEVEL SECURITY;
CREATE POLICY wall_select ON audit_chain_heads FOR SELECT
    USING (chain_id IN (app_current_tenant(), app_current_user(), '00000000-0000-0000-0000-000000000000'::uuid));
-- A head starts at the beginning of its chain.
CREATE POLICY wall_insert ON audit_chain_heads FOR INSERT
    WITH CHECK (chain_id IN (app_current_tenant(), app_current_user(), '00000000-0000-0000-0000-000000000000'::uuid)
                AND last_seq = 0);
CREATE POLICY wall_update ON audit_chain_heads FOR UPDATE
    USING (chain_id IN (app_current_tenant(), app_current_user(), '00000000-0000-0000-0000-000000000000'::uuid))
    WITH CHECK (chain_id IN (app_current_tenant(), app_current_user(), '00000000-0000-0000-0000-000000000000'::uuid));
-- The owner (verify, checkpoints, migrations) reads every head.
DO $owner$ BEGIN
  EXECUTE format('CREATE POLICY wall_owner_select ON audit_chain_heads FOR SELECT TO %I USING (true)', current_user);
END $owner$;

DO $walls$
DECLARE
  reader text;
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_service') THEN
    GRANT SELECT, INSERT (chain_id, last_seq, last_hash) ON audit_chain_heads TO app_service;
    GRANT UPDATE (last_seq, last_hash) ON audit_chain_heads TO app_service;
  END IF;
  FOREACH reader IN ARRAY ARRAY['read_only', 'compliance_officer', 'data_processor'] LOOP
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = reader) THEN
      EXECUTE format('REVOKE ALL ON audit_chain_heads FROM %I', reader);
      EXECUTE format('GRANT SELECT ON audit_chain_heads TO %I', reader);
      EXECUTE format('CREATE POLICY %I ON audit_chain_heads FOR SELECT TO %I USING (true)', 'wall_' || reader || '_select', reader);
    END IF;
  END LOOP;
END
$walls$;
"#;

const SQLITE_TRIGGERS: &[&str] = &[
    "CREATE TRIGGER audit_logs_no_update BEFORE UPDATE ON audit_logs \
     BEGIN SELECT RAISE(ABORT, 'audit_logs is append-only: UPDATE refused'); END",
    "CREATE TRIGGER audit_logs_no_delete BEFORE DELETE ON audit_logs \
     BEGIN SELECT RAISE(ABORT, 'audit_logs is append-only: DELETE refused'); END",
];

const MYSQL_TRIGGERS: &[&str] = &[
    "ALTER TABLE audit_logs ADD CONSTRAINT ck_audit_logs_chain_id \
     CHECK (chain_id = COALESCE(tenant_id, actor_user_id, x'00000000000000000000000000000000'))",
    "CREATE TRIGGER audit_logs_no_update BEFORE UPDATE ON audit_logs FOR EACH ROW \
     SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'audit_logs is append-only: UPDATE refused'",
    "CREATE TRIGGER audit_logs_no_delete BEFORE DELETE ON audit_logs FOR EACH ROW \
     SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'audit_logs is append-only: DELETE refused'",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let db = manager.get_connection();
        add_chain_columns(manager, backend).await?;
        let heads = create_table(backend, AuditChainHeads::Table)
            .col(
                ColumnDef::new(AuditChainHeads::ChainId)
                    .uuid()
                    .not_null()
                    .primary_key(),
            )
            .col(big_integer(backend, AuditChainHeads::LastSeq))
            .col(binary(AuditChainHeads::LastHash, 32))
            .check(Check::named(
                Alias::new("ck_audit_chain_heads_last_seq"),
                Expr::cust("last_seq >= 0"),
            ))
            .to_owned();
        manager.create_table(heads).await?;

        if backend == DbBackend::Postgres {
            // Forced row-level security binds the owner too; the backfill reads and
            // chains every tenant's rows. Forced again below, in this transaction.
            db.execute_unprepared("ALTER TABLE audit_logs NO FORCE ROW LEVEL SECURITY")
                .await?;
        }
        chain_existing_rows(db).await?;
        if backend != DbBackend::Sqlite {
            // From here on the writer states every chain field; SQLite cannot drop a
            // column default, and a row left at its defaults fails verification.
            for column in [
                AuditLogs::ChainId,
                AuditLogs::ChainSeq,
                AuditLogs::ChainVersion,
                AuditLogs::PrevHash,
                AuditLogs::Hash,
            ] {
                let sql = match backend {
                    DbBackend::Postgres => format!(
                        "ALTER TABLE audit_logs ALTER COLUMN {} DROP DEFAULT",
                        column.to_string()
                    ),
                    _ => format!(
                        "ALTER TABLE audit_logs ALTER COLUMN `{}` DROP DEFAULT",
                        column.to_string()
                    ),
                };
                accept_lint_sql(
                    manager,
                    "ban-drop-default",
                    "on purpose: a writer that does not chain its rows (the previous release) must fail, not land rows outside the chain",
                    &sql,
                )
                .await?;
            }
        }
        // One link per position: two writers that both read the same head cannot
        // both commit. Also the index verification walks a chain by.
        accept_lint(
            manager,
            "require-concurrent-index-creation",
            "built right after the backfill rewrote every row in this same transaction, \
             where CONCURRENTLY cannot run; the table is locked for the backfill anyway",
            &unique_index(AuditLogs::Table, [AuditLogs::ChainId, AuditLogs::ChainSeq]),
        )
        .await?;

        match backend {
            DbBackend::Postgres => {
                accept_lint_sql(
                    manager,
                    "constraint-missing-not-valid",
                    "checked right after the backfill wrote every chain_id, in this transaction, under the lock it already holds",
                    POSTGRES_CHAIN_CHECK,
                )
                .await?;
                db.execute_unprepared(POSTGRES_TRIGGERS).await?;
                db.execute_unprepared(POSTGRES_WALLS).await?;
            }
            DbBackend::MySql => {
                for sql in MYSQL_TRIGGERS {
                    db.execute_unprepared(sql).await?;
                }
            }
            _ => {
                for sql in SQLITE_TRIGGERS {
                    db.execute_unprepared(sql).await?;
                }
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let db = manager.get_connection();
        match backend {
            DbBackend::Postgres => {
                db.execute_unprepared(
                    "DROP TRIGGER IF EXISTS audit_logs_append_only ON audit_logs;
                     DROP TRIGGER IF EXISTS audit_logs_no_truncate ON audit_logs;
                     ALTER TABLE audit_logs DROP CONSTRAINT IF EXISTS ck_audit_logs_chain_id;
                     DROP FUNCTION IF EXISTS app_audit_logs_append_only();",
                )
                .await?;
            }
            backend => {
                for trigger in ["audit_logs_no_update", "audit_logs_no_delete"] {
                    db.execute_unprepared(&format!("DROP TRIGGER IF EXISTS {trigger}"))
                        .await?;
                }
                if backend == DbBackend::MySql {
                    db.execute_unprepared(
                        "ALTER TABLE audit_logs DROP CONSTRAINT IF EXISTS ck_audit_logs_chain_id",
                    )
                    .await?;
                }
            }
        }
        manager
            .drop_table(Table::drop().table(AuditChainHeads::Table).to_owned())
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("uq_audit_logs_chain_id_chain_seq")
                    .table(AuditLogs::Table)
                    .to_owned(),
            )
            .await?;
        for column in [
            AuditLogs::ChainId,
            AuditLogs::ChainSeq,
            AuditLogs::ChainVersion,
            AuditLogs::PrevHash,
            AuditLogs::Hash,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(AuditLogs::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

/// A `BIGINT NOT NULL`; SQLite is told `bigint` so its catalogue names the width.
fn big_integer(backend: DbBackend, col: impl IntoIden) -> ColumnDef {
    let mut def = big_integer_null(backend, col);
    def.not_null();
    def
}

/// The five chain columns, `NOT NULL` with placeholder defaults so the table's rows
/// get them at once (a metadata change on PostgreSQL and MariaDB); one `ALTER` each,
/// as SQLite requires.
async fn add_chain_columns(manager: &SchemaManager<'_>, backend: DbBackend) -> Result<(), DbErr> {
    let (nil_uuid, no_bytes) = match backend {
        DbBackend::Postgres => ("'00000000-0000-0000-0000-000000000000'", "''"),
        DbBackend::MySql => ("x'00000000000000000000000000000000'", "''"),
        _ => ("x'00000000000000000000000000000000'", "x''"),
    };
    let columns = [
        ColumnDef::new(AuditLogs::ChainId)
            .uuid()
            .not_null()
            .default(Expr::cust(nil_uuid))
            .take(),
        big_integer(backend, AuditLogs::ChainSeq)
            .default(Expr::cust("0"))
            .take(),
        small_integer(AuditLogs::ChainVersion)
            .default(Expr::cust("1"))
            .take(),
        binary(AuditLogs::PrevHash, 32)
            .default(Expr::cust(no_bytes))
            .take(),
        binary(AuditLogs::Hash, 32)
            .default(Expr::cust(no_bytes))
            .take(),
    ];
    const CONSTANT_DEFAULT: (&str, &str) = (
        "adding-field-with-default",
        "a constant default, which PostgreSQL 11+ keeps in the catalogue without rewriting the table; the backfill below rewrites every row anyway",
    );
    for mut column in columns {
        let is_version = column.get_column_name() == AuditLogs::ChainVersion.to_string();
        let mut findings = vec![CONSTANT_DEFAULT];
        if is_version {
            findings.push((
                "prefer-bigint-over-smallint",
                "the canonical encoding's version number: 1 today, a handful ever",
            ));
        }
        accept_lints(
            manager,
            &findings,
            &Table::alter()
                .table(AuditLogs::Table)
                .add_column(&mut column)
                .to_owned(),
        )
        .await?;
    }
    Ok(())
}

/// Chains the rows written before the chain existed, in the order they happened,
/// keeping only each chain's running head in memory; then writes the heads.
async fn chain_existing_rows<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    let mut heads: HashMap<Uuid, (i64, [u8; 32])> = HashMap::new();
    let mut after: Option<(DateTimeUtc, Uuid)> = None;
    let mut offset = 0;
    loop {
        let mut page = Query::select();
        page.columns([
            AuditLogs::Id,
            AuditLogs::TenantId,
            AuditLogs::ActorUserId,
            AuditLogs::EventType,
            AuditLogs::ResourceType,
            AuditLogs::ResourceId,
            AuditLogs::Outcome,
            AuditLogs::RiskScore,
            AuditLogs::IpAddress,
            AuditLogs::UserAgent,
            AuditLogs::Details,
            AuditLogs::OccurredAt,
        ])
        .from(AuditLogs::Table)
        .order_by(AuditLogs::OccurredAt, Order::Asc)
        .order_by(AuditLogs::Id, Order::Asc)
        .limit(BACKFILL_PAGE);
        if db.get_database_backend() == DbBackend::Sqlite {
            // SQLite keeps timestamps as text in more than one spelling of an instant
            // (`05+00:00`, `05.000+00:00`): a cursor of parsed values could read a row
            // twice. Offsets are exact; the table is locked while this runs.
            page.offset(offset);
        } else if let Some((at, id)) = after {
            page.cond_where(
                Cond::any()
                    .add(Expr::col(AuditLogs::OccurredAt).gt(at))
                    .add(
                        Cond::all()
                            .add(Expr::col(AuditLogs::OccurredAt).eq(at))
                            .add(Expr::col(AuditLogs::Id).gt(id)),
                    ),
            );
        }
        let rows = db.query_all(&page).await?;
        let Some(last) = rows.last() else {
            break;
        };
        after = Some((last.try_get("", "occurred_at")?, last.try_get("", "id")?));
        offset += rows.len() as u64;
        for row in &rows {
            chain_one(db, row, &mut heads).await?;
        }
        if (rows.len() as u64) < BACKFILL_PAGE {
            break;
        }
    }
    // The anonymous chain's head exists from the start: its first two writers (failed
    // sign-ins for unknown emails, say) then never race to create it. A tenant's or a
    // user's head is created by the event that creates the tenant or user.
    heads.entry(chain::ANONYMOUS_CHAIN).or_insert((0, GENESIS));
    // A statement's bound parameters are limited (SQLite: 32,766): chunks of heads.
    let heads: Vec<(Uuid, (i64, [u8; 32]))> = heads.into_iter().collect();
    for chunk in heads.chunks(HEADS_PER_INSERT) {
        let mut insert = Query::insert();
        insert.into_table(AuditChainHeads::Table).columns([
            AuditChainHeads::ChainId,
            AuditChainHeads::LastSeq,
            AuditChainHeads::LastHash,
        ]);
        for (chain_id, (seq, hash)) in chunk {
            insert.values_panic([(*chain_id).into(), (*seq).into(), hash.to_vec().into()]);
        }
        db.execute(&insert).await?;
    }
    Ok(())
}

async fn chain_one<C: ConnectionTrait>(
    db: &C,
    row: &QueryResult,
    heads: &mut HashMap<Uuid, (i64, [u8; 32])>,
) -> Result<(), DbErr> {
    let id: Uuid = row.try_get("", "id")?;
    let tenant_id: Option<Uuid> = row.try_get("", "tenant_id")?;
    let actor_user_id: Option<Uuid> = row.try_get("", "actor_user_id")?;
    let event_type: String = row.try_get("", "event_type")?;
    let resource_type: Option<String> = row.try_get("", "resource_type")?;
    let resource_id: Option<String> = row.try_get("", "resource_id")?;
    let outcome: String = row.try_get("", "outcome")?;
    let risk_score: i16 = row.try_get("", "risk_score")?;
    let ip_address: Option<String> = row.try_get("", "ip_address")?;
    let user_agent: Option<String> = row.try_get("", "user_agent")?;
    let details: Json = row.try_get("", "details")?;
    let occurred_at: DateTimeUtc = row.try_get("", "occurred_at")?;

    let chain_id = chain::chain_of(tenant_id, actor_user_id);
    let (last_seq, prev_hash) = heads.get(&chain_id).copied().unwrap_or((0, GENESIS));
    let linked = ChainedRow {
        chain_id,
        chain_seq: last_seq + 1,
        id,
        tenant_id,
        actor_user_id,
        event_type: &event_type,
        resource_type: resource_type.as_deref(),
        resource_id: resource_id.as_deref(),
        outcome: &outcome,
        risk_score,
        ip_address: ip_address.as_deref(),
        user_agent: user_agent.as_deref(),
        details: &details,
        occurred_at: chain::to_stored_precision(occurred_at),
    };
    let hash = linked
        .hash(chain::CURRENT_VERSION, &prev_hash)
        .ok_or_else(|| DbErr::Migration("unknown audit chain version".into()))?;
    db.execute(
        &Query::update()
            .table(AuditLogs::Table)
            .values([
                (AuditLogs::ChainId, chain_id.into()),
                (AuditLogs::ChainSeq, linked.chain_seq.into()),
                (AuditLogs::ChainVersion, chain::CURRENT_VERSION.into()),
                (AuditLogs::PrevHash, prev_hash.to_vec().into()),
                (AuditLogs::Hash, hash.to_vec().into()),
            ])
            .and_where(Expr::col(AuditLogs::Id).eq(id))
            .to_owned(),
    )
    .await?;
    heads.insert(chain_id, (linked.chain_seq, hash));
    Ok(())
}
