//! Moving stored values to the current key, after a key is added and made current.
//!
//! An operator's batch job, run as the schema owner with BYPASSRLS (it must read every
//! tenant's rows; it refuses a role that row-level security applies to):
//! rows are read in primary-key order, a batch per transaction, and each stale value is
//! rewritten only if it is still the value that was read, so a concurrent write wins.
//! The old key stays in the ring until a run reports nothing left under it.

use super::{FieldSlot, KeyRing};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Order, Query};
use sea_orm::{ConnectionTrait, DbErr, TransactionSession, TransactionTrait, Value};
use uuid::Uuid;

/// A column of sealed values, in a table keyed by a UUID column.
#[derive(Clone, Copy, Debug)]
pub struct EncryptedColumn {
    pub table: &'static str,
    pub id_column: &'static str,
    pub column: &'static str,
}

/// What a run did to one column.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReencryptReport {
    pub scanned: u64,
    /// Rewritten under the current key.
    pub rewritten: u64,
    /// Stale when read, changed by someone else before the rewrite: left as they were.
    pub changed_meanwhile: u64,
    /// Rows whose value does not open (unknown key, damaged, moved): left as they were,
    /// named so an operator can look.
    pub unreadable: Vec<Uuid>,
}

/// Re-encrypts every value of `column` not under the ring's current key, `batch` rows
/// per transaction; `progress` is told after each batch.
///
/// # Errors
/// `Db`, also when row-level security applies to the connected role on PostgreSQL:
/// it would see some rows only, report the rest as done, and the old key could be
/// removed with values still under it. Values that do not open are reported, not errors.
pub async fn reencrypt<C>(
    db: &C,
    ring: &KeyRing,
    column: EncryptedColumn,
    batch: u64,
    mut progress: impl FnMut(&ReencryptReport),
) -> Result<ReencryptReport, DbErr>
where
    C: ConnectionTrait + TransactionTrait,
{
    let (table, id, col) = (
        Alias::new(column.table),
        Alias::new(column.id_column),
        Alias::new(column.column),
    );
    if db.get_database_backend() == sea_orm::DbBackend::Postgres {
        let walled = db
            .query_one_raw(sea_orm::Statement::from_sql_and_values(
                sea_orm::DbBackend::Postgres,
                "SELECT row_security_active(to_regclass($1)), current_user::text",
                [column.table.into()],
            ))
            .await?
            .map(|row| {
                Ok::<_, DbErr>((
                    row.try_get_by_index::<Option<bool>>(0)?.unwrap_or(false),
                    row.try_get_by_index::<String>(1)?,
                ))
            })
            .transpose()?;
        if let Some((true, role)) = walled {
            return Err(DbErr::Custom(format!(
                "row-level security applies to {role} on {}: re-encryption must see every \
                 row; run it as the schema owner with BYPASSRLS (or a superuser)",
                column.table
            )));
        }
    }
    let mut report = ReencryptReport::default();
    let mut after: Option<Uuid> = None;
    loop {
        let txn = db.begin().await?;
        let mut select = Query::select();
        select
            .column(id.clone())
            .column(col.clone())
            .from(table.clone())
            .and_where(Expr::col(col.clone()).is_not_null())
            .order_by(id.clone(), Order::Asc)
            .limit(Ord::max(batch, 1));
        if let Some(after) = after {
            select.and_where(Expr::col(id.clone()).gt(after));
        }
        let rows = txn.query_all(&select).await?;
        if rows.is_empty() {
            txn.commit().await?;
            break;
        }
        for row in &rows {
            let row_id: Uuid = row.try_get_by_index(0)?;
            let sealed: Vec<u8> = row.try_get_by_index(1)?;
            after = Some(row_id);
            report.scanned += 1;
            if !ring.is_stale(&sealed).unwrap_or(true) {
                continue;
            }
            let row_text = row_id.to_string();
            let slot = FieldSlot {
                table: column.table,
                column: column.column,
                row: &row_text,
            };
            let Ok(plain) = ring.open(slot, &sealed) else {
                report.unreadable.push(row_id);
                continue;
            };
            let resealed = ring
                .seal(slot, &plain)
                .map_err(|e| DbErr::Custom(e.to_string()))?;
            let mut update = Query::update();
            update
                .table(table.clone())
                .value(col.clone(), Value::Bytes(Some(resealed)))
                .and_where(Expr::col(id.clone()).eq(row_id))
                .and_where(Expr::col(col.clone()).eq(Value::Bytes(Some(sealed))));
            if txn.execute(&update).await?.rows_affected() == 1 {
                report.rewritten += 1;
            } else {
                report.changed_meanwhile += 1;
            }
        }
        txn.commit().await?;
        progress(&report);
    }
    Ok(report)
}
