//! Appending to an audit chain: lock the chain's head, write the row, move the head.

use crate::Result;
use crate::transaction::InTransaction;
use entity::audit::audit_chain_heads as heads;
use entity::audit::audit_logs;
use entity::audit::chain::GENESIS;
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DbBackend, DbErr, EntityTrait, IntoActiveModel, QueryFilter,
    QuerySelect, QueryTrait, Statement,
};
use uuid::Uuid;

/// The chain's last sequence number and hash, with its head row locked until `txn`
/// ends. A chain's first event creates its head.
///
/// MariaDB: a locking read of a missing row locks the gap around it, and two such
/// writers then deadlock on their inserts (also of different chains whose ids share
/// the gap): the head is upserted first there, which locks an existing row alone, and
/// read after. PostgreSQL and SQLite read first and create only a missing head.
pub(super) async fn lock_head(txn: &impl InTransaction, chain_id: Uuid) -> Result<(i64, [u8; 32])> {
    let mysql = txn.get_database_backend() == DbBackend::MySql;
    if !mysql && let Some(head) = locked(txn, chain_id).await? {
        return Ok(head);
    }
    // MariaDB cannot say DO NOTHING: a no-op update there (PostgreSQL's runtime role
    // may not update `chain_id`, so not there). Two first writers both get past here;
    // the lock below orders them.
    let mut on_conflict = OnConflict::column(heads::Column::ChainId);
    if mysql {
        on_conflict.update_column(heads::Column::ChainId);
    } else {
        on_conflict.do_nothing();
    }
    let created = heads::Entity::insert(heads::ActiveModel {
        chain_id: Set(chain_id),
        last_seq: Set(0),
        last_hash: Set(GENESIS.to_vec()),
    })
    .on_conflict(on_conflict)
    .exec_without_returning(txn)
    .await;
    match created {
        Ok(_) | Err(DbErr::RecordNotInserted) => {}
        Err(e) => return Err(e.into()),
    }
    locked(txn, chain_id)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("audit chain head {chain_id}")).into())
}

/// Reads and locks one head. SQLite has no row locks: a no-op write takes the
/// database's write lock instead, which a plain read would only ask for later (and,
/// with another writer ahead, fail to get).
async fn locked(txn: &impl InTransaction, chain_id: Uuid) -> Result<Option<(i64, [u8; 32])>> {
    let head = if txn.get_database_backend() == DbBackend::Sqlite {
        heads::Entity::update_many()
            .col_expr(heads::Column::LastSeq, Expr::col(heads::Column::LastSeq))
            .filter(heads::Column::ChainId.eq(chain_id))
            .exec_with_returning(txn)
            .await?
            .into_iter()
            .next()
    } else {
        heads::Entity::find_by_id(chain_id)
            .lock_exclusive()
            .one(txn)
            .await?
    };
    let Some(head) = head else {
        return Ok(None);
    };
    let hash: [u8; 32] = head.last_hash.as_slice().try_into().map_err(|_| {
        DbErr::Custom(format!(
            "audit chain head {chain_id} holds a {}-byte hash, not 32: the head was altered",
            head.last_hash.len()
        ))
    })?;
    Ok(Some((head.last_seq, hash)))
}

/// Writes the linked row and moves its chain's head to it.
pub(super) async fn append(txn: &impl InTransaction, row: audit_logs::Model) -> Result<()> {
    let (chain_id, seq, hash) = (row.chain_id, row.chain_seq, row.hash.clone());
    // Without RETURNING: on PostgreSQL the runtime role may write rows it may not
    // read back (a failed sign-in of nobody in particular).
    let insert = audit_logs::Entity::insert(row.into_active_model().reset_all());
    let move_head = heads::Entity::update_many()
        .col_expr(heads::Column::LastSeq, Expr::value(seq))
        .col_expr(heads::Column::LastHash, Expr::value(hash))
        .filter(heads::Column::ChainId.eq(chain_id));
    let backend = txn.get_database_backend();
    let moved = if backend == DbBackend::Postgres {
        // One round trip: the row is written by a data-modifying WITH that runs
        // whether or not the head's UPDATE reads it.
        let insert = backend.build(&insert.into_query());
        let update = backend.build(&move_head.into_query());
        let mut values = insert.values.map(|v| v.0).unwrap_or_default();
        let update_sql = shift_placeholders(&update.sql, values.len());
        values.extend(update.values.map(|v| v.0).unwrap_or_default());
        txn.execute_raw(Statement::from_sql_and_values(
            backend,
            format!("WITH written AS ({}) {update_sql}", insert.sql),
            values,
        ))
        .await?
        .rows_affected()
    } else {
        insert.exec_without_returning(txn).await?;
        move_head.exec(txn).await?.rows_affected
    };
    if moved != 1 {
        // The head locked above is gone or hidden: never leave it behind its chain.
        return Err(DbErr::RecordNotUpdated.into());
    }
    Ok(())
}

/// `$1`, `$2`, ... of a PostgreSQL statement renumbered from `$offset + 1`, so it can
/// follow another statement's parameters. sea-query binds every value, so the text
/// holds no `$` but its placeholders.
fn shift_placeholders(sql: &str, offset: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' || !chars.peek().is_some_and(char::is_ascii_digit) {
            out.push(c);
            continue;
        }
        let mut number = 0usize;
        while let Some(digit) = chars.peek().and_then(|d| d.to_digit(10)) {
            number = number * 10 + digit as usize;
            chars.next();
        }
        out.push('$');
        out.push_str(&(number + offset).to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::shift_placeholders;

    #[test]
    fn placeholders_follow_the_ones_before() {
        assert_eq!(
            shift_placeholders("UPDATE h SET a = $1, b = $2 WHERE c = $10", 12),
            "UPDATE h SET a = $13, b = $14 WHERE c = $22"
        );
    }
}
