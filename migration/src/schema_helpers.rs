//! Column and table builders shared by the migrations.
//!
//! A migration is frozen once released, and so is everything it calls: never change
//! what an existing helper renders; add a new helper instead.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

/// `CREATE TABLE` with the options every table needs on this backend.
pub fn create_table(backend: DbBackend, table: impl IntoIden) -> TableCreateStatement {
    let mut stmt = Table::create();
    stmt.table(table);
    if backend == DbBackend::MySql {
        // MariaDB's server default may be latin1; names in Japanese need utf8mb4.
        stmt.engine("InnoDB")
            .character_set("utf8mb4")
            .collate("utf8mb4_unicode_ci");
    }
    stmt
}

pub fn uuid_pk(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).uuid().not_null().primary_key().take()
}

pub fn uuid(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).uuid().not_null().take()
}

pub fn uuid_null(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).uuid().null().take()
}

pub fn string(col: impl IntoIden, len: u32) -> ColumnDef {
    ColumnDef::new(col).string_len(len).not_null().take()
}

pub fn string_null(col: impl IntoIden, len: u32) -> ColumnDef {
    ColumnDef::new(col).string_len(len).null().take()
}

pub fn json(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).json_binary().not_null().take()
}

pub fn boolean(col: impl IntoIden, default: bool) -> ColumnDef {
    ColumnDef::new(col)
        .boolean()
        .not_null()
        .default(default)
        .take()
}

/// A UTC timestamp, written by the application.
///
/// PostgreSQL: `timestamptz`. MariaDB: `DATETIME(6)`, because its `TIMESTAMP` drops
/// microseconds and ends in 2038. SQLite: text in the one format sqlx writes.
pub fn timestamp(backend: DbBackend, col: impl IntoIden) -> ColumnDef {
    let mut def = ColumnDef::new(col);
    match backend {
        DbBackend::MySql => def.custom(Alias::new("DATETIME(6)")),
        _ => def.timestamp_with_time_zone(),
    };
    def.not_null().take()
}

pub fn timestamp_null(backend: DbBackend, col: impl IntoIden) -> ColumnDef {
    let mut def = timestamp(backend, col);
    def.null();
    def
}

/// A UTC timestamp that defaults to the current time, for rows inserted in bulk
/// (bulk inserts skip the application's own clock).
pub fn timestamp_default_now(backend: DbBackend, col: impl IntoIden) -> ColumnDef {
    let mut def = timestamp(backend, col);
    def.default(now_expr(backend));
    def
}

fn now_expr(backend: DbBackend) -> Expr {
    match backend {
        DbBackend::MySql => Expr::cust("CURRENT_TIMESTAMP(6)"),
        // The same text format sqlx writes for DateTime<Utc>, so ordering by the
        // column stays correct whichever side wrote the value.
        DbBackend::Sqlite => Expr::cust("(strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))"),
        _ => Expr::current_timestamp(),
    }
}

/// `CHECK (col IN (...))`: enums are portable strings, checked by the database.
pub fn check_in(name: &str, col: impl IntoIden, values: &[&str]) -> Check {
    Check::named(
        Alias::new(name),
        Expr::col(col).is_in(values.iter().copied()),
    )
}

/// A foreign key named `fk_<table>_<column>` with an explicit ON DELETE rule.
pub fn foreign_key(
    table: impl IntoIden,
    col: impl IntoIden,
    ref_table: impl IntoIden,
    ref_col: impl IntoIden,
    on_delete: ForeignKeyAction,
) -> ForeignKeyCreateStatement {
    let (table, col) = (table.into_iden(), col.into_iden());
    ForeignKey::create()
        .name(format!("fk_{}_{}", table, col))
        .from(table, col)
        .to(ref_table, ref_col)
        .on_delete(on_delete)
        .take()
}

/// A plain index named `ix_<table>_<col>_<col>...`.
pub fn index<C: IntoIden>(
    table: impl IntoIden,
    cols: impl IntoIterator<Item = C>,
) -> IndexCreateStatement {
    index_named("ix", table, cols)
}

/// A unique index named `uq_<table>_<col>_<col>...`.
pub fn unique_index<C: IntoIden>(
    table: impl IntoIden,
    cols: impl IntoIterator<Item = C>,
) -> IndexCreateStatement {
    index_named("uq", table, cols).unique().take()
}

fn index_named<C: IntoIden>(
    prefix: &str,
    table: impl IntoIden,
    cols: impl IntoIterator<Item = C>,
) -> IndexCreateStatement {
    let table = table.into_iden();
    let mut name = format!("{prefix}_{}", table);
    let mut stmt = Index::create();
    stmt.table(table);
    for col in cols {
        let col = col.into_iden();
        name.push('_');
        name.push_str(&col.to_string());
        stmt.col(col);
    }
    stmt.name(name).take()
}

/// A composite foreign key named `fk_<table>_<col>_<col>...`, e.g. `(tenant_id, team_id)
/// -> teams (tenant_id, id)`, so a row can never point into another tenant.
pub fn composite_foreign_key<C: IntoIden, R: IntoIden>(
    table: impl IntoIden,
    cols: impl IntoIterator<Item = C>,
    ref_table: impl IntoIden,
    ref_cols: impl IntoIterator<Item = R>,
    on_delete: ForeignKeyAction,
) -> ForeignKeyCreateStatement {
    let table = table.into_iden();
    let mut name = format!("fk_{table}");
    let mut stmt = ForeignKey::create();
    for col in cols {
        let col = col.into_iden();
        name.push('_');
        name.push_str(&col.to_string());
        stmt.from_col(col);
    }
    for col in ref_cols {
        stmt.to_col(col);
    }
    stmt.name(name)
        .from_tbl(table)
        .to_tbl(ref_table)
        .on_delete(on_delete)
        .take()
}

/// Bytes of at most `len` (sealed values). PostgreSQL: `bytea` (unbounded; the
/// service writes the bound). MariaDB: `VARBINARY(len)`. SQLite: a blob.
pub fn binary(col: impl IntoIden, len: u32) -> ColumnDef {
    ColumnDef::new(col).var_binary(len).not_null().take()
}

pub fn small_integer(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).small_integer().not_null().take()
}

/// A nullable 64-bit integer. SQLite is told `bigint` (sea-query writes `integer`, the
/// same storage), so its catalogue names the width the entity declares.
pub fn big_integer_null(backend: DbBackend, col: impl IntoIden) -> ColumnDef {
    let mut def = ColumnDef::new(col);
    match backend {
        DbBackend::Sqlite => def.custom(Alias::new("bigint")),
        _ => def.big_integer(),
    };
    def.null().take()
}

/// A 64-bit integer, like [`big_integer_null`] but required.
pub fn big_integer(backend: DbBackend, col: impl IntoIden) -> ColumnDef {
    let mut def = big_integer_null(backend, col);
    def.not_null();
    def
}

/// Adds audit event types to the catalogue: `(event_type, category, description)`.
pub async fn add_audit_event_types(
    manager: &SchemaManager<'_>,
    events: &[(&str, &str, &str)],
) -> Result<(), DbErr> {
    let mut insert = Query::insert();
    insert.into_table(Alias::new("audit_event_types")).columns([
        Alias::new("event_type"),
        Alias::new("category"),
        Alias::new("description"),
    ]);
    for (event_type, category, description) in events {
        insert.values_panic([
            (*event_type).into(),
            (*category).into(),
            (*description).into(),
        ]);
    }
    manager.exec_stmt(insert).await
}

/// [`add_audit_event_types`] that keeps the event types already in the catalogue: a
/// `down` keeps the types audit rows use, so `up` after `down` on a database with
/// history finds them there.
pub async fn add_missing_audit_event_types(
    manager: &SchemaManager<'_>,
    events: &[(&str, &str, &str)],
) -> Result<(), DbErr> {
    let mut insert = Query::insert();
    insert.into_table(Alias::new("audit_event_types")).columns([
        Alias::new("event_type"),
        Alias::new("category"),
        Alias::new("description"),
    ]);
    for (event_type, category, description) in events {
        insert.values_panic([
            (*event_type).into(),
            (*category).into(),
            (*description).into(),
        ]);
    }
    let mut keep = OnConflict::column(Alias::new("event_type"));
    if manager.get_database_backend() == DbBackend::MySql {
        // MariaDB has no DO NOTHING: a no-op update.
        keep.update_column(Alias::new("event_type"));
    } else {
        keep.do_nothing();
    }
    insert.on_conflict(keep);
    manager.exec_stmt(insert).await
}

/// The `down` of [`add_audit_event_types`]: removes those of `events` no audit row
/// uses; the others stay, with the rows that name them (a rollback never deletes
/// audit history).
pub async fn remove_unused_audit_event_types(
    manager: &SchemaManager<'_>,
    events: &[(&str, &str, &str)],
) -> Result<(), DbErr> {
    let (types, logs) = (Alias::new("audit_event_types"), Alias::new("audit_logs"));
    let codes: Vec<&str> = events.iter().map(|(code, _, _)| *code).collect();
    let used = Query::select()
        .expr(Expr::val(1))
        .from(logs.clone())
        .and_where(
            Expr::col((logs, Alias::new("event_type")))
                .equals((types.clone(), Alias::new("event_type"))),
        )
        .to_owned();
    manager
        .exec_stmt(
            Query::delete()
                .from_table(types)
                .and_where(Expr::col(Alias::new("event_type")).is_in(codes))
                .and_where(Expr::exists(used).not())
                .to_owned(),
        )
        .await
}

/// Makes `table` append-only for everyone, its owner included: triggers refuse UPDATE
/// and DELETE on every backend, and TRUNCATE on PostgreSQL, where they fire `ALWAYS`
/// (also under `session_replication_role = replica`). MariaDB fires no trigger on
/// TRUNCATE, which needs `DROP` there: keep that from every account but the owner.
/// `hint` is what PostgreSQL adds to the refusal. Undo with [`drop_append_only`].
pub async fn make_append_only(
    manager: &SchemaManager<'_>,
    table: &str,
    hint: &str,
) -> Result<(), DbErr> {
    let db = manager.get_connection();
    match manager.get_database_backend() {
        DbBackend::Postgres => {
            let hint = hint.replace('\'', "''");
            db.execute_unprepared(&format!(
                r#"CREATE FUNCTION app_{table}_append_only() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$
BEGIN
  RAISE EXCEPTION '{table} is append-only: % refused', TG_OP
    USING ERRCODE = 'insufficient_privilege',
          HINT = '{hint}';
END
$$;
CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION app_{table}_append_only();
CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION app_{table}_append_only();
ALTER TABLE {table} ENABLE ALWAYS TRIGGER {table}_append_only;
ALTER TABLE {table} ENABLE ALWAYS TRIGGER {table}_no_truncate;"#
            ))
            .await?;
        }
        DbBackend::MySql => {
            for op in ["UPDATE", "DELETE"] {
                db.execute_unprepared(&format!(
                    "CREATE TRIGGER {table}_no_{lower} BEFORE {op} ON {table} FOR EACH ROW \
                     SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '{table} is append-only: {op} refused'",
                    lower = op.to_lowercase(),
                ))
                .await?;
            }
        }
        _ => {
            for op in ["UPDATE", "DELETE"] {
                db.execute_unprepared(&format!(
                    "CREATE TRIGGER {table}_no_{lower} BEFORE {op} ON {table} \
                     BEGIN SELECT RAISE(ABORT, '{table} is append-only: {op} refused'); END",
                    lower = op.to_lowercase(),
                ))
                .await?;
            }
        }
    }
    Ok(())
}

/// The `down` of [`make_append_only`]: drops its triggers (and function), so the table
/// can be dropped or changed again.
pub async fn drop_append_only(manager: &SchemaManager<'_>, table: &str) -> Result<(), DbErr> {
    let db = manager.get_connection();
    match manager.get_database_backend() {
        DbBackend::Postgres => {
            db.execute_unprepared(&format!(
                "DROP TRIGGER IF EXISTS {table}_append_only ON {table};
                 DROP TRIGGER IF EXISTS {table}_no_truncate ON {table};
                 DROP FUNCTION IF EXISTS app_{table}_append_only();"
            ))
            .await?;
        }
        _ => {
            for trigger in [format!("{table}_no_update"), format!("{table}_no_delete")] {
                db.execute_unprepared(&format!("DROP TRIGGER IF EXISTS {trigger}"))
                    .await?;
            }
        }
    }
    Ok(())
}
