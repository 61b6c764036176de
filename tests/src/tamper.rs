//! What an attacker with the schema owner's access does to the audit trail: switch
//! the append-only triggers off, change history, switch them on again. Tests use it
//! to prove that verification notices.

use crate::{Backend, TestDb};
use entity::audit::audit_logs;
use entity::audit::chain::GENESIS;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, Statement,
    TransactionTrait,
};
use uuid::Uuid;

/// Runs `sqls` as the owner with the audit triggers out of the way.
pub async fn as_owner_bypassing_triggers(t: &TestDb, sqls: &[String]) {
    let db = &t.owner;
    match t.backend {
        Backend::Postgres => {
            // The triggers fire ALWAYS (also under session_replication_role = replica):
            // the owner switches them off with DDL, in one transaction.
            let mut script = String::from(
                "BEGIN; ALTER TABLE audit_logs DISABLE TRIGGER audit_logs_append_only;",
            );
            for sql in sqls {
                script.push_str(sql);
                script.push(';');
            }
            script.push_str(
                "ALTER TABLE audit_logs ENABLE ALWAYS TRIGGER audit_logs_append_only; COMMIT;",
            );
            db.execute_unprepared(&script).await.expect("tampers");
        }
        Backend::Sqlite => {
            // One connection, one transaction: SQLite's DDL is transactional, and a
            // pool would spread the statements over connections.
            let txn = db.begin().await.expect("begins");
            let db = &txn;
            let triggers = db
                .query_all_raw(Statement::from_string(
                    DbBackend::Sqlite,
                    "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_logs'",
                ))
                .await
                .expect("triggers");
            let triggers: Vec<(String, String)> = triggers
                .iter()
                .map(|r| {
                    (
                        r.try_get("", "name").unwrap(),
                        r.try_get("", "sql").unwrap(),
                    )
                })
                .collect();
            assert!(!triggers.is_empty(), "the append-only triggers exist");
            for (name, _) in &triggers {
                db.execute_unprepared(&format!("DROP TRIGGER {name}"))
                    .await
                    .expect("drops");
            }
            for sql in sqls {
                db.execute_unprepared(sql).await.expect("tampers");
            }
            for (_, sql) in &triggers {
                db.execute_unprepared(sql).await.expect("restores");
            }
            txn.commit().await.expect("commits");
        }
        Backend::MySql => {
            // One connection (MariaDB commits each DDL statement anyway).
            let txn = db.begin().await.expect("begins");
            let db = &txn;
            let triggers = db
                .query_all_raw(Statement::from_string(
                    DbBackend::MySql,
                    "SELECT TRIGGER_NAME AS name, ACTION_TIMING AS timing, \
                     EVENT_MANIPULATION AS event, ACTION_STATEMENT AS body \
                     FROM information_schema.TRIGGERS \
                     WHERE EVENT_OBJECT_SCHEMA = DATABASE() AND EVENT_OBJECT_TABLE = 'audit_logs'",
                ))
                .await
                .expect("triggers");
            let triggers: Vec<[String; 4]> = triggers
                .iter()
                .map(|r| ["name", "timing", "event", "body"].map(|c| r.try_get("", c).unwrap()))
                .collect();
            assert!(!triggers.is_empty(), "the append-only triggers exist");
            for [name, ..] in &triggers {
                db.execute_unprepared(&format!("DROP TRIGGER {name}"))
                    .await
                    .expect("drops");
            }
            for sql in sqls {
                db.execute_unprepared(sql).await.expect("tampers");
            }
            for [name, timing, event, body] in &triggers {
                db.execute_unprepared(&format!(
                    "CREATE TRIGGER {name} {timing} {event} ON audit_logs FOR EACH ROW {body}"
                ))
                .await
                .expect("restores");
            }
            txn.commit().await.expect("commits");
        }
    }
}

/// A literal for `bytes` in this backend's SQL.
pub fn bytes_literal(backend: Backend, bytes: &[u8]) -> String {
    match backend {
        Backend::Postgres => format!("'\\x{}'", hex::encode(bytes)),
        _ => format!("x'{}'", hex::encode(bytes)),
    }
}

/// A literal for a UUID in this backend's SQL (16 bytes off PostgreSQL).
pub fn uuid_literal(backend: Backend, id: Uuid) -> String {
    match backend {
        Backend::Postgres => format!("'{id}'"),
        _ => bytes_literal(backend, id.as_bytes()),
    }
}

/// Rewrites a chain from `from_seq` on the way someone with full access and this
/// source code would: that row's risk score changed, its hash and every later one
/// recomputed, the head moved. The chain then verifies on its own.
pub async fn recompute_chain(t: &TestDb, chain_id: Uuid, from_seq: i64, risk_score: i16) {
    let rows = audit_logs::Entity::find()
        .filter(audit_logs::Column::ChainId.eq(chain_id))
        .order_by_asc(audit_logs::Column::ChainSeq)
        .all(&t.owner)
        .await
        .expect("chain");
    let mut prev = GENESIS.to_vec();
    let mut sqls = Vec::new();
    for mut row in rows {
        if row.chain_seq == from_seq {
            row.risk_score = risk_score;
            sqls.push(format!(
                "UPDATE audit_logs SET risk_score = {} WHERE id = {}",
                row.risk_score,
                uuid_literal(t.backend, row.id.0)
            ));
        }
        if row.chain_seq >= from_seq {
            let hash = row
                .chained()
                .hash(row.chain_version, &prev)
                .expect("known version");
            sqls.push(format!(
                "UPDATE audit_logs SET prev_hash = {}, hash = {} WHERE id = {}",
                bytes_literal(t.backend, &prev),
                bytes_literal(t.backend, &hash),
                uuid_literal(t.backend, row.id.0)
            ));
            prev = hash.to_vec();
        } else {
            prev = row.hash.clone();
        }
    }
    sqls.push(format!(
        "UPDATE audit_chain_heads SET last_hash = {} WHERE chain_id = {}",
        bytes_literal(t.backend, &prev),
        uuid_literal(t.backend, chain_id)
    ));
    as_owner_bypassing_triggers(t, &sqls).await;
}
