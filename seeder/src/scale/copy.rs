//! The PostgreSQL writer: each batch as one transaction of `COPY ... FROM STDIN`, one
//! per table, in COPY's text format, on one connection taken from SeaORM's pool.
//!
//! Values are rendered from the same `sea_orm::Value`s the insert path binds, so both
//! store the same data: text escaped as COPY's text format requires (backslash, tab,
//! newline, carriage return), `\N` for NULL, JSON as serde_json writes it, timestamps
//! in UTC with microseconds (PostgreSQL's precision; the binary encoding truncates the
//! same way), booleans as `t`/`f`, enums as their stored string.
//!
//! PostgreSQL refuses `COPY FROM` into a table whose row-level security applies to the
//! caller ("COPY FROM not supported with row-level security"), even when an INSERT
//! policy would admit the rows. Every tenant table forces row-level security, so COPY
//! works only for a superuser or a BYPASSRLS role: the role the seeder needs anyway to
//! write every tenant's rows. [`check_copy_allowed`] says so before anything is written.

use super::Batch;
use crate::SeedError;
use chrono::{DateTime, Datelike, Timelike, Utc};
use entity::agents::agent_tasks;
use entity::audit::{audit_chain_heads, audit_logs};
use entity::billing::usage_records;
use entity::identity::{refresh_tokens, sessions, user_profiles, users};
use entity::records::{access_grants, records};
use entity::tenancy::{memberships, tenants};
use sea_orm::sqlx::{self, PgConnection};
use sea_orm::{
    ActiveModelTrait, ActiveValue, ConnectionTrait, DatabaseConnection, DbBackend, DbErr,
    EntityTrait, IdenStatic, Iterable, RuntimeErr, Statement, Value,
};
use std::fmt::Write as _;
use std::sync::Arc;

/// The tables `--scale` writes, parent before child.
const TABLES: [&str; 12] = [
    "tenants",
    "users",
    "user_profiles",
    "memberships",
    "sessions",
    "refresh_tokens",
    "audit_logs",
    "audit_chain_heads",
    "records",
    "access_grants",
    "agent_tasks",
    "usage_records",
];

/// Refuses COPY where PostgreSQL would: off PostgreSQL, or when row-level security is
/// active on a table `--scale` writes for the connecting role.
pub(super) async fn check_copy_allowed(db: &DatabaseConnection) -> Result<(), SeedError> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Err(not_postgres());
    }
    let tables = TABLES
        .iter()
        .map(|t| format!("'{t}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            format!(
                "SELECT current_user::text AS role, \
                 coalesce(string_agg(t, ', ' ORDER BY t) FILTER (WHERE row_security_active(t::regclass)), '') AS walled \
                 FROM unnest(ARRAY[{tables}]) AS t"
            ),
        ))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("the row-level security check".into()))?;
    let role: String = row.try_get("", "role")?;
    let walled: String = row.try_get("", "walled")?;
    if walled.is_empty() {
        Ok(())
    } else {
        Err(SeedError::Scale(format!(
            "--scale writes with COPY, which PostgreSQL refuses where row-level security \
             applies, and it applies to {role} on {walled}: connect as a superuser or a \
             BYPASSRLS role (as the seeder needs anyway to write every tenant's rows)"
        )))
    }
}

/// A batch as COPY text, one entry per table, parents first.
pub(super) struct CopyTables([CopyData; 12]);

/// Renders `batch`; a value COPY cannot carry fails here, before anything is sent.
pub(super) fn render(batch: Batch) -> Result<CopyTables, SeedError> {
    Ok(CopyTables([
        render_table::<tenants::Entity>(batch.tenants)?,
        render_table::<users::Entity>(batch.users)?,
        render_table::<user_profiles::Entity>(batch.profiles)?,
        render_table::<memberships::Entity>(batch.memberships)?,
        render_table::<sessions::Entity>(batch.sessions)?,
        render_table::<refresh_tokens::Entity>(batch.tokens)?,
        render_table::<audit_logs::Entity>(batch.events)?,
        render_table::<audit_chain_heads::Entity>(batch.chain_heads)?,
        render_table::<records::Entity>(batch.records)?,
        render_table::<access_grants::Entity>(batch.grants)?,
        render_table::<agent_tasks::Entity>(batch.tasks)?,
        render_table::<usage_records::Entity>(batch.usage)?,
    ]))
}

fn not_postgres() -> SeedError {
    SeedError::Scale("--scale writes with COPY only on PostgreSQL".into())
}

/// Writes a rendered batch in one transaction; returns the rows written.
pub(super) async fn write(db: &DatabaseConnection, tables: &CopyTables) -> Result<u64, SeedError> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Err(not_postgres());
    }
    // A transaction sqlx knows about: dropped on an error, it rolls back before its
    // connection goes back to the pool.
    let mut txn = db
        .get_postgres_connection_pool()
        .begin()
        .await
        .map_err(db_err)?;
    let mut rows = 0;
    for table in &tables.0 {
        rows += copy_in(&mut txn, table).await?;
    }
    txn.commit().await.map_err(db_err)?;
    Ok(rows)
}

/// One table's rows as COPY text, with the statement that reads them.
struct CopyData {
    statement: String,
    data: String,
}

async fn copy_in(conn: &mut PgConnection, table: &CopyData) -> Result<u64, SeedError> {
    let mut copy = conn.copy_in_raw(&table.statement).await.map_err(db_err)?;
    if let Err(e) = copy.send(table.data.as_bytes()).await {
        // The connection is unusable until the COPY ends; the abort's own error is
        // less telling than the one that caused it.
        let _ = copy.abort("the seeder could not send the rows").await;
        return Err(db_err(e).into());
    }
    Ok(copy.finish().await.map_err(db_err)?)
}

/// As SeaORM reports driver errors, so a unique or foreign-key violation is recognised
/// (`DbErr::sql_err`) the same way on both paths.
fn db_err(e: sqlx::Error) -> DbErr {
    DbErr::Exec(RuntimeErr::SqlxError(Arc::new(e)))
}

fn render_table<E: EntityTrait>(models: Vec<E::ActiveModel>) -> Result<CopyData, SeedError> {
    let table = E::default().table_name();
    let columns: Vec<E::Column> = E::Column::iter().collect();
    let names: Vec<String> = columns
        .iter()
        .map(|c| format!("\"{}\"", c.as_str()))
        .collect();
    let statement = format!(
        "COPY \"{table}\" ({}) FROM STDIN (FORMAT text)",
        names.join(", ")
    );
    let mut data = String::with_capacity(models.len() * 64 * columns.len());
    for mut model in models {
        for (i, column) in columns.iter().enumerate() {
            if i > 0 {
                data.push('\t');
            }
            let value = match model.take(*column) {
                ActiveValue::Set(v) | ActiveValue::Unchanged(v) => v,
                // Every column is set: COPY has no "use the default" for one row.
                ActiveValue::NotSet => {
                    return Err(unsupported(table, column.as_str(), "the value is not set"));
                }
            };
            push_value(&mut data, &value)
                .map_err(|reason| unsupported(table, column.as_str(), reason))?;
        }
        data.push('\n');
    }
    Ok(CopyData { statement, data })
}

fn unsupported(table: &str, column: &str, reason: &str) -> SeedError {
    SeedError::ScaleCopy {
        table: table.to_owned(),
        column: column.to_owned(),
        reason: reason.to_owned(),
    }
}

const NULL: &str = "\\N";

/// One value as a field of COPY's text format: what the PostgreSQL writer sends.
pub fn copy_text_field(value: &Value) -> Result<String, &'static str> {
    let mut out = String::new();
    push_value(&mut out, value)?;
    Ok(out)
}

/// Appends `value` in COPY's text format.
fn push_value(out: &mut String, value: &Value) -> Result<(), &'static str> {
    // Writing to a String cannot fail.
    match value {
        Value::Bool(v) => out.push_str(v.map_or(NULL, |b| if b { "t" } else { "f" })),
        Value::SmallInt(v) => push_display(out, v),
        Value::Int(v) => push_display(out, v),
        Value::BigInt(v) => push_display(out, v),
        Value::String(v) => match v {
            Some(s) => push_text(out, s)?,
            None => out.push_str(NULL),
        },
        Value::Enum(v) => match v {
            sea_orm::sea_query::OptionEnum::Some(e) => push_text(out, &e.value)?,
            sea_orm::sea_query::OptionEnum::None(_) => out.push_str(NULL),
        },
        Value::Double(v) => match v {
            Some(x) if x.is_finite() => push_display(out, &Some(*x)),
            Some(_) => return Err("it is not a finite number"),
            None => out.push_str(NULL),
        },
        // bytea's hex input, its backslash escaped for COPY's text format.
        Value::Bytes(v) => match v {
            Some(bytes) => {
                out.push_str("\\\\x");
                for byte in bytes {
                    let _ = write!(out, "{byte:02x}");
                }
            }
            None => out.push_str(NULL),
        },
        Value::Uuid(v) => push_display(out, v),
        Value::ChronoDateTimeUtc(v) => match v {
            Some(at) => push_timestamp(out, at)?,
            None => out.push_str(NULL),
        },
        Value::Json(v) => match v {
            Some(json) => push_text(out, &json.to_string())?,
            None => out.push_str(NULL),
        },
        _ => return Err("its type has no COPY rendering here"),
    }
    Ok(())
}

/// `YYYY-MM-DD hh:mm:ss.ffffff+00`, microseconds truncated as the binary encoding
/// truncates them. Written field by field: `format` parses its pattern every call,
/// and timestamps are most of the bytes.
fn push_timestamp(out: &mut String, at: &DateTime<Utc>) -> Result<(), &'static str> {
    if !(1..=9999).contains(&at.year()) {
        return Err("its year is outside 1..=9999");
    }
    let nanos = at.nanosecond();
    if nanos >= 1_000_000_000 {
        return Err("it is a leap second");
    }
    let _ = write!(
        out,
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}+00",
        at.year(),
        at.month(),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        nanos / 1000
    );
    Ok(())
}

fn push_display<T: std::fmt::Display>(out: &mut String, value: &Option<T>) {
    match value {
        Some(v) => {
            let _ = write!(out, "{v}");
        }
        None => out.push_str(NULL),
    }
}

/// Text with COPY's escapes. PostgreSQL text cannot hold NUL, on either path.
fn push_text(out: &mut String, text: &str) -> Result<(), &'static str> {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\0' => return Err("it holds a NUL character, which PostgreSQL text cannot store"),
            c => out.push(c),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn timestamps_keep_microseconds_and_truncate_below() {
        let at = chrono::Utc
            .with_ymd_and_hms(999, 12, 31, 23, 59, 59)
            .single()
            .expect("valid")
            + chrono::Duration::nanoseconds(123_456_789);
        assert_eq!(
            rendered(Value::ChronoDateTimeUtc(Some(at))),
            "0999-12-31 23:59:59.123456+00"
        );
    }

    fn rendered(value: Value) -> String {
        let mut out = String::new();
        push_value(&mut out, &value).expect("renders");
        out
    }

    #[test]
    fn text_escapes_what_copy_text_format_reads_as_special() {
        assert_eq!(
            rendered(Value::String(Some("a\\b\tc\nd\re 日本語 \\N".into()))),
            "a\\\\b\\tc\\nd\\re 日本語 \\\\N"
        );
        assert_eq!(rendered(Value::String(None)), "\\N");
    }

    #[test]
    fn json_timestamps_and_booleans_render_as_postgresql_reads_them() {
        let json = serde_json::json!({"k": "tab\there", "名前": "\\"});
        assert_eq!(
            rendered(Value::Json(Some(Box::new(json)))),
            "{\"k\":\"tab\\\\there\",\"名前\":\"\\\\\\\\\"}"
        );
        let at = chrono::Utc
            .with_ymd_and_hms(2026, 1, 2, 9, 0, 1)
            .single()
            .expect("valid");
        assert_eq!(
            rendered(Value::ChronoDateTimeUtc(Some(at))),
            "2026-01-02 09:00:01.000000+00"
        );
        assert_eq!(rendered(Value::Bool(Some(false))), "f");
        assert_eq!(rendered(Value::Uuid(None)), "\\N");
    }

    #[test]
    fn nul_and_unrendered_types_are_errors_not_bad_rows() {
        let mut out = String::new();
        assert!(push_value(&mut out, &Value::String(Some("a\0b".into()))).is_err());
        assert!(push_value(&mut out, &Value::Float(Some(1.5))).is_err());
        assert!(push_value(&mut out, &Value::Double(Some(f64::NAN))).is_err());
    }

    #[test]
    fn doubles_and_bytes_render_as_copy_text() {
        let mut out = String::new();
        push_value(&mut out, &Value::Double(Some(35.6762))).expect("renders");
        out.push('|');
        push_value(&mut out, &Value::Bytes(Some(vec![0xde, 0xad]))).expect("renders");
        out.push('|');
        push_value(&mut out, &Value::Bytes(None)).expect("renders");
        assert_eq!(out, "35.6762|\\\\xdead|\\N");
    }
}
