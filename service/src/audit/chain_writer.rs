//! Appending to an audit chain: lock the chain's head, write the row linked to it,
//! move the head. The head's lock is held until the writer's transaction ends.

use crate::Result;
use crate::transaction::InTransaction;
use entity::audit::audit_chain_heads as heads;
use entity::audit::audit_logs;
use entity::audit::chain::{self, GENESIS};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Alias, Expr, OnConflict, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DbBackend, DbErr, EntityTrait, IntoActiveModel, Iterable,
    ModelTrait, QueryFilter, QuerySelect, Statement,
};
use uuid::Uuid;

/// Numbers and hashes `row` as the next link of its chain and writes it, moving the
/// chain's head to it. `chain_seq`, `prev_hash` and `hash` of `row` are ignored.
///
/// PostgreSQL takes one round trip (see [`append_in_one_statement`]), and two more
/// for a chain's first row, which creates its head. MariaDB and SQLite lock the head,
/// then write the row and move the head.
pub(super) async fn append(txn: &impl InTransaction, mut row: audit_logs::Model) -> Result<()> {
    if txn.get_database_backend() == DbBackend::Postgres {
        if append_in_one_statement(txn, &row).await? {
            return Ok(());
        }
        create_head(txn, row.chain_id).await?;
        if append_in_one_statement(txn, &row).await? {
            return Ok(());
        }
        // The head created (or another writer's, committed meanwhile) is hidden.
        return Err(DbErr::RecordNotFound(format!("audit chain head {}", row.chain_id)).into());
    }
    let (last_seq, prev_hash) = lock_head(txn, row.chain_id).await?;
    row.chain_seq = last_seq + 1;
    row.hash = row
        .chained()
        .hash(chain::CURRENT_VERSION, &prev_hash)
        .ok_or_else(unknown_version)?
        .to_vec();
    row.prev_hash = prev_hash.to_vec();
    let (chain_id, seq, hash) = (row.chain_id, row.chain_seq, row.hash.clone());
    // Without RETURNING: on PostgreSQL the runtime role may write rows it may not
    // read back (a failed sign-in of nobody in particular).
    audit_logs::Entity::insert(row.into_active_model().reset_all())
        .exec_without_returning(txn)
        .await?;
    let moved = heads::Entity::update_many()
        .col_expr(heads::Column::LastSeq, Expr::value(seq))
        .col_expr(heads::Column::LastHash, Expr::value(hash))
        .filter(heads::Column::ChainId.eq(chain_id))
        .exec(txn)
        .await?
        .rows_affected;
    if moved != 1 {
        // The head locked above is gone or hidden: never leave it behind its chain.
        return Err(DbErr::RecordNotUpdated.into());
    }
    Ok(())
}

fn unknown_version() -> DbErr {
    DbErr::Custom(format!(
        "audit chain encoding version {} is unknown to this build",
        chain::CURRENT_VERSION
    ))
}

/// PostgreSQL's head lock, numbering and hashing, in the statement that writes the
/// row: `head` locks the chain's head and computes the link from it (SHA-256 of the
/// previous hash and the row's canonical encoding, which this build sends in two
/// parts around the sequence number), `written` inserts the row, and the statement
/// moves the head. A concurrent writer's commit is waited for by the lock, and the
/// link computed from the head it left.
///
/// The database's hash is checked against this build's before the row can commit, so
/// a link that [`super::verify`] would reject is an error here, not a broken chain.
/// `false`, having written nothing, when the chain has no head yet.
async fn append_in_one_statement(
    txn: &impl InTransaction,
    row: &audit_logs::Model,
) -> Result<bool> {
    let split = row
        .chained()
        .canonical_split_at_seq(chain::CURRENT_VERSION)
        .ok_or_else(unknown_version)?;
    let head = Alias::new("head");
    let mut linked = Query::select();
    for column in audit_logs::Column::iter() {
        linked.expr(match column {
            audit_logs::Column::ChainSeq => Expr::col((head.clone(), Alias::new("seq"))),
            audit_logs::Column::PrevHash => Expr::col((head.clone(), Alias::new("prev_hash"))),
            audit_logs::Column::Hash => Expr::col((head.clone(), Alias::new("hash"))),
            other => Expr::val(row.get(other)),
        });
    }
    linked.from(head);
    let mut insert = Query::insert();
    insert
        .into_table(audit_logs::Entity)
        .columns(audit_logs::Column::iter())
        .select_from(linked)
        .map_err(|e| DbErr::Custom(format!("audit row: {e}")))?;
    let backend = DbBackend::Postgres;
    let insert = backend.build(&insert);
    let mut values = vec![
        split.before.clone().into(),
        split.after.clone().into(),
        row.chain_id.into(),
    ];
    let insert_sql = shift_placeholders(&insert.sql, values.len());
    values.extend(insert.values.map(|v| v.0).unwrap_or_default());
    let sql = format!(
        "WITH head AS (
           SELECT chain_id, last_seq + 1 AS seq, last_hash AS prev_hash,
                  sha256(last_hash || $1 || int8send(last_seq + 1) || $2) AS hash
             FROM audit_chain_heads WHERE chain_id = $3 FOR UPDATE),
         written AS ({insert_sql})
         UPDATE audit_chain_heads AS moved SET last_seq = head.seq, last_hash = head.hash
           FROM head WHERE moved.chain_id = head.chain_id
         RETURNING head.seq, head.prev_hash, head.hash"
    );
    let Some(linked) = txn
        .query_one_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?
    else {
        return Ok(false);
    };
    let seq: i64 = linked.try_get_by_index(0)?;
    let prev_hash = head_hash(row.chain_id, linked.try_get_by_index(1)?)?;
    let hash: Vec<u8> = linked.try_get_by_index(2)?;
    if hash != split.hash(&prev_hash, seq) {
        // The statement succeeded, so the transaction could still commit the link:
        // an error raised in it aborts it, and a commit after this error rolls back.
        let _ = txn
            .execute_unprepared(
                "DO $$ BEGIN RAISE EXCEPTION 'audit append refused: the hashes differ'; END $$",
            )
            .await;
        return Err(DbErr::Custom(format!(
            "audit row {} (chain {}, link {seq}): the database's hash differs from this build's",
            row.id, row.chain_id
        ))
        .into());
    }
    Ok(true)
}

/// The chain's last sequence number and hash, with its head row locked until `txn`
/// ends. A chain's first event creates its head.
///
/// MariaDB: a locking read of a missing row locks the gap around it, and two such
/// writers then deadlock on their inserts (also of different chains whose ids share
/// the gap): the head is upserted first there, which locks an existing row alone, and
/// read after. SQLite reads first and creates only a missing head.
async fn lock_head(txn: &impl InTransaction, chain_id: Uuid) -> Result<(i64, [u8; 32])> {
    let mysql = txn.get_database_backend() == DbBackend::MySql;
    if !mysql && let Some(head) = locked(txn, chain_id).await? {
        return Ok(head);
    }
    create_head(txn, chain_id).await?;
    locked(txn, chain_id)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("audit chain head {chain_id}")).into())
}

/// Creates the chain's head at its beginning unless it exists. Two first writers both
/// get past here (the second waits for the first's insert to commit or roll back); the
/// head's lock, taken after, orders them.
async fn create_head(txn: &impl InTransaction, chain_id: Uuid) -> Result<()> {
    let mysql = txn.get_database_backend() == DbBackend::MySql;
    // MariaDB cannot say DO NOTHING: a no-op update there (PostgreSQL's runtime role
    // may not update `chain_id`, so not there).
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
        Ok(_) | Err(DbErr::RecordNotInserted) => Ok(()),
        Err(e) => Err(e.into()),
    }
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
    Ok(Some((head.last_seq, head_hash(chain_id, head.last_hash)?)))
}

/// A head's last hash, which must be 32 bytes.
fn head_hash(chain_id: Uuid, last_hash: Vec<u8>) -> Result<[u8; 32]> {
    last_hash.as_slice().try_into().map_err(|_| {
        DbErr::Custom(format!(
            "audit chain head {chain_id} holds a {}-byte hash, not 32: the head was altered",
            last_hash.len()
        ))
        .into()
    })
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
