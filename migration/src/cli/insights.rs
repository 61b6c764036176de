//! `insights`: what the database server knows about this database's health (sizes,
//! indexes, cache, sessions, locks, slow statements), as tables or JSON. It only
//! reads: every query runs in its own READ ONLY transaction. A section the server
//! does not offer, or the connected role may not read, is reported unavailable with
//! the reason; the other sections are still shown.

use super::text_table::{align_right, one_line, text_table};
use super::{CliError, Invocation};
use bytesize::ByteSize;
use sea_orm::FromQueryResult;
use sea_orm_migration::sea_orm::{
    AccessMode, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, RuntimeErr, Statement,
    TransactionTrait, sqlx,
};
use serde::Serialize;
use std::io::{self, Write};
use std::time::Duration;

/// How `insights` prints its report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum InsightsFormat {
    Table,
    Json,
}

/// What `insights` looks for, from its flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InsightsOptions {
    pub format: InsightsFormat,
    /// Queries running, or transactions left open, at least this long are listed.
    pub long_running: Duration,
    /// Rows per list (largest tables, slowest statements, ...).
    pub limit: u32,
}

/// Every query of the report gives up after this long, so a busy catalogue cannot
/// keep a session open on a production server.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// How PostgreSQL's statement statistics are switched on, for the unavailable message.
const ENABLE_PG_STAT_STATEMENTS: &str = "add pg_stat_statements to shared_preload_libraries \
    (ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'; then restart the \
    server) and run CREATE EXTENSION pg_stat_statements in this database";

/// How MariaDB's performance schema is switched on, for the unavailable message.
const ENABLE_PERFORMANCE_SCHEMA: &str = "performance_schema is OFF on this server; set \
    performance_schema=ON in the server's configuration and restart it";

#[derive(Debug, Serialize)]
pub struct InsightsReport {
    pub backend: &'static str,
    pub database: String,
    pub long_running_threshold_secs: u64,
    pub table_sizes: Section<TableSize>,
    pub index_sizes: Section<IndexSize>,
    pub unused_indexes: Section<IndexSize>,
    pub duplicate_indexes: Section<DuplicateIndexes>,
    pub cache_hit_ratio: Section<CacheHits>,
    pub connections: Section<Connections>,
    pub long_running_queries: Section<Session>,
    pub idle_in_transaction: Section<Session>,
    pub lock_waits: Section<LockWait>,
    pub slow_statements: Section<SlowStatement>,
}

/// One part of the report: its rows, or why there are none to show.
#[derive(Debug, Serialize)]
pub struct Section<T> {
    pub available: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub rows: Vec<T>,
}

impl<T> Section<T> {
    fn rows(rows: Vec<T>) -> Self {
        Self {
            available: true,
            reason: None,
            rows,
        }
    }

    fn unavailable(reason: impl Into<String>) -> Self {
        Self {
            available: false,
            reason: Some(reason.into()),
            rows: Vec::new(),
        }
    }

    fn from_result(result: Result<Vec<T>, DbErr>) -> Self {
        match result {
            Ok(rows) => Self::rows(rows),
            Err(error) => Self::unavailable(unavailable_reason(&error)),
        }
    }
}

/// A row that prints as a line of a table.
pub trait TableRow {
    const HEADER: &'static [&'static str];
    /// Columns aligned right (numbers).
    const NUMERIC: &'static [usize] = &[];
    fn cells(&self) -> Vec<String>;
}

#[derive(Debug, Serialize, FromQueryResult)]
pub struct TableSize {
    pub schema_name: String,
    pub table_name: String,
    /// The planner's or the storage engine's estimate, not a count.
    pub rows_estimate: Option<i64>,
    pub table_bytes: Option<i64>,
    pub index_bytes: Option<i64>,
    pub total_bytes: Option<i64>,
}

impl TableRow for TableSize {
    const HEADER: &'static [&'static str] = &["table", "rows (est.)", "data", "indexes", "total"];
    const NUMERIC: &'static [usize] = &[1, 2, 3, 4];
    fn cells(&self) -> Vec<String> {
        vec![
            qualified(&self.schema_name, &self.table_name),
            number(self.rows_estimate),
            bytes(self.table_bytes),
            bytes(self.index_bytes),
            bytes(self.total_bytes),
        ]
    }
}

#[derive(Debug, Serialize, FromQueryResult)]
pub struct IndexSize {
    pub schema_name: String,
    pub table_name: String,
    pub index_name: String,
    pub bytes: Option<i64>,
    /// Scans since the server's statistics were last reset.
    pub scans: Option<i64>,
}

impl TableRow for IndexSize {
    const HEADER: &'static [&'static str] = &["index", "table", "size", "scans"];
    const NUMERIC: &'static [usize] = &[2, 3];
    fn cells(&self) -> Vec<String> {
        vec![
            self.index_name.clone(),
            qualified(&self.schema_name, &self.table_name),
            bytes(self.bytes),
            number(self.scans),
        ]
    }
}

#[derive(Debug, Serialize, FromQueryResult)]
pub struct DuplicateIndexes {
    pub schema_name: String,
    pub table_name: String,
    /// The indexes that cover the same key, comma-separated.
    pub indexes: String,
    /// What they index: method, columns or expressions, predicate.
    pub definition: String,
}

impl TableRow for DuplicateIndexes {
    const HEADER: &'static [&'static str] = &["table", "indexes", "same definition"];
    fn cells(&self) -> Vec<String> {
        vec![
            qualified(&self.schema_name, &self.table_name),
            self.indexes.clone(),
            one_line(&self.definition, 80),
        ]
    }
}

#[derive(Debug, Serialize, FromQueryResult)]
pub struct CacheHits {
    pub scope: String,
    /// Reads served from memory.
    pub hits: Option<i64>,
    /// Reads that went to disk (or the OS cache).
    pub reads: Option<i64>,
    /// hits / (hits + reads); none before the first read.
    pub ratio: Option<f64>,
}

impl TableRow for CacheHits {
    const HEADER: &'static [&'static str] = &["scope", "hits", "disk reads", "hit ratio"];
    const NUMERIC: &'static [usize] = &[1, 2, 3];
    fn cells(&self) -> Vec<String> {
        vec![
            self.scope.clone(),
            number(self.hits),
            number(self.reads),
            self.ratio
                .map_or_else(|| "-".to_owned(), |r| format!("{:.2} %", r * 100.0)),
        ]
    }
}

#[derive(Debug, Serialize, FromQueryResult)]
pub struct Connections {
    pub database_name: Option<String>,
    pub user_name: Option<String>,
    pub state: Option<String>,
    pub connections: i64,
}

impl TableRow for Connections {
    const HEADER: &'static [&'static str] = &["database", "user", "state", "connections"];
    const NUMERIC: &'static [usize] = &[3];
    fn cells(&self) -> Vec<String> {
        vec![
            text(&self.database_name),
            text(&self.user_name),
            text(&self.state),
            self.connections.to_string(),
        ]
    }
}

/// A session running a query, or holding a transaction open, past the threshold.
#[derive(Debug, Serialize, FromQueryResult)]
pub struct Session {
    pub pid: i64,
    pub user_name: Option<String>,
    pub database_name: Option<String>,
    pub state: Option<String>,
    pub seconds: Option<f64>,
    pub query: Option<String>,
}

impl TableRow for Session {
    const HEADER: &'static [&'static str] = &["pid", "user", "database", "state", "for", "query"];
    const NUMERIC: &'static [usize] = &[0, 4];
    fn cells(&self) -> Vec<String> {
        vec![
            self.pid.to_string(),
            text(&self.user_name),
            text(&self.database_name),
            text(&self.state),
            seconds(self.seconds),
            one_line(self.query.as_deref().unwrap_or("-"), 60),
        ]
    }
}

#[derive(Debug, Serialize, FromQueryResult)]
pub struct LockWait {
    pub waiting_pid: i64,
    pub waiting_user: Option<String>,
    pub seconds: Option<f64>,
    /// The lock asked for: its kind and mode.
    pub lock: Option<String>,
    pub relation: Option<String>,
    /// The sessions it waits for, comma-separated.
    pub blocking_pids: Option<String>,
    pub query: Option<String>,
}

impl TableRow for LockWait {
    const HEADER: &'static [&'static str] = &[
        "waiting pid",
        "user",
        "waited",
        "lock",
        "on",
        "blocked by",
        "query",
    ];
    const NUMERIC: &'static [usize] = &[0, 2];
    fn cells(&self) -> Vec<String> {
        vec![
            self.waiting_pid.to_string(),
            text(&self.waiting_user),
            seconds(self.seconds),
            text(&self.lock),
            text(&self.relation),
            text(&self.blocking_pids),
            one_line(self.query.as_deref().unwrap_or("-"), 50),
        ]
    }
}

#[derive(Debug, Serialize, FromQueryResult)]
pub struct SlowStatement {
    pub calls: i64,
    pub total_ms: f64,
    pub mean_ms: f64,
    pub rows: Option<i64>,
    pub query: Option<String>,
}

impl TableRow for SlowStatement {
    const HEADER: &'static [&'static str] = &["calls", "total ms", "mean ms", "rows", "statement"];
    const NUMERIC: &'static [usize] = &[0, 1, 2, 3];
    fn cells(&self) -> Vec<String> {
        vec![
            self.calls.to_string(),
            format!("{:.1}", self.total_ms),
            format!("{:.2}", self.mean_ms),
            number(self.rows),
            one_line(self.query.as_deref().unwrap_or("-"), 70),
        ]
    }
}

fn qualified(schema: &str, name: &str) -> String {
    format!("{schema}.{name}")
}

fn number(value: Option<i64>) -> String {
    value.map_or_else(|| "-".to_owned(), |n| n.to_string())
}

fn bytes(value: Option<i64>) -> String {
    match value.and_then(|n| u64::try_from(n).ok()) {
        Some(n) => ByteSize::b(n).display().iec().to_string(),
        None => "-".to_owned(),
    }
}

fn seconds(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |s| format!("{s:.0} s"))
}

fn text(value: &Option<String>) -> String {
    value.clone().unwrap_or_else(|| "-".to_owned())
}

/// Why a section's query failed, in the operator's terms.
fn unavailable_reason(error: &DbErr) -> String {
    if is_permission_denied(error) {
        format!("the connected role may not read it ({error})")
    } else {
        format!("the server could not answer ({error})")
    }
}

/// PostgreSQL `insufficient_privilege` (42501); MariaDB/MySQL access denied to a
/// database (1044), table (1142), column (1143), or for lack of a global privilege
/// such as PROCESS (1227).
fn is_permission_denied(error: &DbErr) -> bool {
    let (DbErr::Query(RuntimeErr::SqlxError(e))
    | DbErr::Exec(RuntimeErr::SqlxError(e))
    | DbErr::Conn(RuntimeErr::SqlxError(e))) = error
    else {
        return false;
    };
    let sqlx::Error::Database(db) = e.as_ref() else {
        return false;
    };
    if db.code().as_deref() == Some("42501") {
        return true;
    }
    db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
        .is_some_and(|mysql| matches!(mysql.number(), 1044 | 1142 | 1143 | 1227))
}

/// Runs `sql` in a READ ONLY transaction of its own (rolled back after), so a
/// failing section leaves nothing behind for the next one.
async fn read_only<T: FromQueryResult>(
    db: &DatabaseConnection,
    sql: &str,
) -> Result<Vec<T>, DbErr> {
    let backend = db.get_database_backend();
    let txn = match backend {
        // SQLite has no read-only transactions; the report's SQLite queries only read.
        DbBackend::Sqlite => db.begin().await?,
        _ => {
            db.begin_with_config(None, Some(AccessMode::ReadOnly))
                .await?
        }
    };
    let result = async {
        if backend == DbBackend::Postgres {
            txn.execute_unprepared(&format!(
                "SET LOCAL statement_timeout = '{}s'",
                STATEMENT_TIMEOUT.as_secs()
            ))
            .await?;
        }
        T::find_by_statement(Statement::from_string(backend, sql))
            .all(&txn)
            .await
    }
    .await;
    txn.rollback().await?;
    result
}

async fn section<T: FromQueryResult>(db: &DatabaseConnection, sql: &str) -> Section<T> {
    Section::from_result(read_only(db, sql).await)
}

/// Reads the report; writes nothing. A section that cannot be read is marked
/// unavailable in it, so this does not fail.
pub async fn collect(
    db: &DatabaseConnection,
    inv: &Invocation,
    options: &InsightsOptions,
) -> InsightsReport {
    let threshold = options.long_running.as_secs();
    let limit = options.limit.max(1);
    match db.get_database_backend() {
        DbBackend::Postgres => postgres(db, inv, threshold, limit).await,
        DbBackend::MySql => mariadb(db, inv, threshold, limit).await,
        _ => sqlite(db, inv, threshold, limit).await,
    }
}

pub(super) async fn print_insights(
    db: &DatabaseConnection,
    inv: &Invocation,
    options: &InsightsOptions,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let report = collect(db, inv, options).await;
    match options.format {
        InsightsFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, &report).map_err(io::Error::from)?;
            writeln!(out)?;
        }
        InsightsFormat::Table => write_tables(&report, options, out)?,
    }
    Ok(())
}

fn write_tables(
    report: &InsightsReport,
    options: &InsightsOptions,
    out: &mut dyn Write,
) -> io::Result<()> {
    let limit = options.limit;
    let threshold = report.long_running_threshold_secs;
    write_section(
        out,
        &format!(
            "Table sizes (largest {limit}; row counts are estimates, - where none was made yet)"
        ),
        &report.table_sizes,
    )?;
    write_section(
        out,
        &format!("Index sizes (largest {limit})"),
        &report.index_sizes,
    )?;
    write_section(
        out,
        "Unused indexes (no scans since statistics were last reset; primary keys and unique indexes excluded)",
        &report.unused_indexes,
    )?;
    write_section(
        out,
        "Duplicate indexes (same table, same definition: all but one can go)",
        &report.duplicate_indexes,
    )?;
    write_section(out, "Cache hit ratio", &report.cache_hit_ratio)?;
    write_section(out, "Connections by state and user", &report.connections)?;
    write_section(
        out,
        &format!("Queries running for {threshold} s or more"),
        &report.long_running_queries,
    )?;
    write_section(
        out,
        &format!("Sessions idle in a transaction for {threshold} s or more"),
        &report.idle_in_transaction,
    )?;
    write_section(out, "Lock waits", &report.lock_waits)?;
    write_section(
        out,
        &format!("Slowest statements (top {limit} by total time)"),
        &report.slow_statements,
    )
}

fn write_section<T: TableRow>(
    out: &mut dyn Write,
    title: &str,
    section: &Section<T>,
) -> io::Result<()> {
    writeln!(out, "{title}")?;
    if !section.available {
        writeln!(
            out,
            "  not available: {}",
            section.reason.as_deref().unwrap_or("unknown")
        )?;
    } else if section.rows.is_empty() {
        writeln!(out, "  none")?;
    } else {
        let mut table = text_table(T::HEADER.iter().copied());
        align_right(&mut table, T::NUMERIC);
        for row in &section.rows {
            table.add_row(row.cells());
        }
        writeln!(out, "{table}")?;
    }
    writeln!(out)
}

async fn postgres(
    db: &DatabaseConnection,
    inv: &Invocation,
    threshold: u64,
    limit: u32,
) -> InsightsReport {
    let table_sizes = section(
        db,
        &format!(
            "SELECT n.nspname AS schema_name, c.relname AS table_name,
                    CASE WHEN c.reltuples >= 0 THEN c.reltuples::bigint END AS rows_estimate,
                    pg_table_size(c.oid) AS table_bytes,
                    pg_indexes_size(c.oid) AS index_bytes,
                    pg_total_relation_size(c.oid) AS total_bytes
             FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p', 'm')
               AND n.nspname NOT IN ('pg_catalog', 'information_schema')
               AND n.nspname NOT LIKE 'pg_toast%'
             ORDER BY pg_total_relation_size(c.oid) DESC, 1, 2
             LIMIT {limit}"
        ),
    )
    .await;
    let index_sizes = section(
        db,
        &format!(
            "SELECT s.schemaname AS schema_name, s.relname AS table_name,
                    s.indexrelname AS index_name,
                    pg_relation_size(s.indexrelid) AS bytes, s.idx_scan AS scans
             FROM pg_stat_user_indexes s
             ORDER BY pg_relation_size(s.indexrelid) DESC, 1, 2, 3
             LIMIT {limit}"
        ),
    )
    .await;
    let unused_indexes = section(
        db,
        "SELECT s.schemaname AS schema_name, s.relname AS table_name,
                s.indexrelname AS index_name,
                pg_relation_size(s.indexrelid) AS bytes, s.idx_scan AS scans
         FROM pg_stat_user_indexes s
         JOIN pg_index i ON i.indexrelid = s.indexrelid
         WHERE s.idx_scan = 0 AND NOT i.indisunique AND NOT i.indisprimary
         ORDER BY pg_relation_size(s.indexrelid) DESC, 1, 2, 3",
    )
    .await;
    // Everything after USING in the index's definition: method, columns or
    // expressions, operator classes, INCLUDE columns and predicate.
    let duplicate_indexes = section(
        db,
        "SELECT n.nspname AS schema_name, t.relname AS table_name,
                string_agg(ic.relname, ', ' ORDER BY ic.relname) AS indexes,
                d.definition
         FROM pg_index i
         JOIN pg_class ic ON ic.oid = i.indexrelid
         JOIN pg_class t ON t.oid = i.indrelid
         JOIN pg_namespace n ON n.oid = t.relnamespace
         CROSS JOIN LATERAL (
           SELECT substring(pg_get_indexdef(i.indexrelid) FROM ' USING .*$') AS definition
         ) d
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND n.nspname NOT LIKE 'pg_toast%'
         GROUP BY n.nspname, t.relname, i.indrelid, d.definition
         HAVING count(*) > 1
         ORDER BY 1, 2, 3",
    )
    .await;
    let cache_hit_ratio = section(
        db,
        "SELECT 'tables' AS scope,
                sum(heap_blks_hit)::bigint AS hits, sum(heap_blks_read)::bigint AS reads,
                (sum(heap_blks_hit) / NULLIF(sum(heap_blks_hit) + sum(heap_blks_read), 0))::float8 AS ratio
         FROM pg_statio_user_tables
         UNION ALL
         SELECT 'indexes',
                sum(idx_blks_hit)::bigint, sum(idx_blks_read)::bigint,
                (sum(idx_blks_hit) / NULLIF(sum(idx_blks_hit) + sum(idx_blks_read), 0))::float8
         FROM pg_statio_user_indexes
         UNION ALL
         SELECT 'database (all reads)', blks_hit, blks_read,
                (blks_hit::numeric / NULLIF(blks_hit + blks_read, 0))::float8
         FROM pg_stat_database WHERE datname = current_database()",
    )
    .await;
    let connections = section(
        db,
        "SELECT datname AS database_name, usename AS user_name,
                COALESCE(state, 'unknown') AS state, count(*) AS connections
         FROM pg_stat_activity
         WHERE backend_type = 'client backend'
         GROUP BY 1, 2, 3
         ORDER BY 4 DESC, 1, 2, 3",
    )
    .await;
    let long_running_queries = section(
        db,
        &format!(
            "SELECT pid::bigint AS pid, usename AS user_name, datname AS database_name, state,
                    extract(epoch FROM now() - query_start)::float8 AS seconds, query
             FROM pg_stat_activity
             WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
               AND state = 'active' AND now() - query_start >= interval '{threshold} seconds'
             ORDER BY seconds DESC
             LIMIT {limit}"
        ),
    )
    .await;
    let idle_in_transaction = section(
        db,
        &format!(
            "SELECT pid::bigint AS pid, usename AS user_name, datname AS database_name, state,
                    extract(epoch FROM now() - xact_start)::float8 AS seconds, query
             FROM pg_stat_activity
             WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
               AND state LIKE 'idle in transaction%'
               AND now() - xact_start >= interval '{threshold} seconds'
             ORDER BY seconds DESC
             LIMIT {limit}"
        ),
    )
    .await;
    let lock_waits = section(
        db,
        &format!(
            "SELECT l.pid::bigint AS waiting_pid, a.usename AS waiting_user,
                    extract(epoch FROM now() - l.waitstart)::float8 AS seconds,
                    l.locktype || ' ' || l.mode AS \"lock\",
                    l.relation::regclass::text AS relation,
                    array_to_string(pg_blocking_pids(l.pid), ', ') AS blocking_pids,
                    a.query
             FROM pg_locks l
             JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE NOT l.granted
             ORDER BY seconds DESC NULLS LAST
             LIMIT {limit}"
        ),
    )
    .await;
    let slow_statements = postgres_slow_statements(db, limit).await;
    InsightsReport {
        backend: "postgres",
        database: inv.target.database(),
        long_running_threshold_secs: threshold,
        table_sizes,
        index_sizes,
        unused_indexes,
        duplicate_indexes,
        cache_hit_ratio,
        connections,
        long_running_queries,
        idle_in_transaction,
        lock_waits,
        slow_statements,
    }
}

#[derive(FromQueryResult)]
struct ExtensionSchema {
    schema_name: String,
}

async fn postgres_slow_statements(db: &DatabaseConnection, limit: u32) -> Section<SlowStatement> {
    let installed = read_only::<ExtensionSchema>(
        db,
        "SELECT n.nspname AS schema_name FROM pg_extension e
         JOIN pg_namespace n ON n.oid = e.extnamespace
         WHERE e.extname = 'pg_stat_statements'",
    )
    .await;
    let schema = match installed {
        Err(error) => return Section::unavailable(unavailable_reason(&error)),
        Ok(rows) => match rows.into_iter().next() {
            Some(row) => row.schema_name,
            None => {
                return Section::unavailable(format!(
                    "pg_stat_statements is not installed in this database; to enable it, \
                     {ENABLE_PG_STAT_STATEMENTS}"
                ));
            }
        },
    };
    // The view itself says whether the server loaded the library: the setting that
    // lists preloaded libraries is hidden from roles without pg_read_all_settings.
    let view = format!("\"{}\".pg_stat_statements", schema.replace('"', "\"\""));
    let statements = read_only(
        db,
        &format!(
            "SELECT calls, total_exec_time::float8 AS total_ms, mean_exec_time::float8 AS mean_ms,
                    rows, query
             FROM {view}
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
             ORDER BY total_exec_time DESC
             LIMIT {limit}"
        ),
    )
    .await;
    match statements {
        Err(error) if is_not_preloaded(&error) => Section::unavailable(format!(
            "the pg_stat_statements extension exists but the server has not loaded its \
             library (it is not in shared_preload_libraries); to enable it, \
             {ENABLE_PG_STAT_STATEMENTS}"
        )),
        result => Section::from_result(result),
    }
}

/// pg_stat_statements' own error when its view is read but the server did not preload
/// the library: object_not_in_prerequisite_state (55000), naming the setting.
fn is_not_preloaded(error: &DbErr) -> bool {
    let (DbErr::Query(RuntimeErr::SqlxError(e)) | DbErr::Exec(RuntimeErr::SqlxError(e))) = error
    else {
        return false;
    };
    let sqlx::Error::Database(db) = e.as_ref() else {
        return false;
    };
    db.code().as_deref() == Some("55000") && db.message().contains("shared_preload_libraries")
}

#[derive(FromQueryResult)]
struct Flag {
    enabled: Option<i64>,
}

async fn mariadb(
    db: &DatabaseConnection,
    inv: &Invocation,
    threshold: u64,
    limit: u32,
) -> InsightsReport {
    // MariaDB's statement limit, for this session. MySQL has no such variable; its
    // error changes nothing, so it is ignored.
    db.execute_unprepared(&format!(
        "SET SESSION max_statement_time = {}",
        STATEMENT_TIMEOUT.as_secs()
    ))
    .await
    .ok();
    let performance_schema =
        read_only::<Flag>(db, "SELECT CAST(@@performance_schema AS SIGNED) AS enabled")
            .await
            .map(|rows| rows.first().and_then(|r| r.enabled) == Some(1));
    let table_sizes = section(
        db,
        &format!(
            "SELECT TABLE_SCHEMA AS schema_name, TABLE_NAME AS table_name,
                    CAST(TABLE_ROWS AS SIGNED) AS rows_estimate,
                    CAST(DATA_LENGTH AS SIGNED) AS table_bytes,
                    CAST(INDEX_LENGTH AS SIGNED) AS index_bytes,
                    CAST(DATA_LENGTH + INDEX_LENGTH AS SIGNED) AS total_bytes
             FROM information_schema.TABLES
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'
             ORDER BY DATA_LENGTH + INDEX_LENGTH DESC, 1, 2
             LIMIT {limit}"
        ),
    )
    .await;
    // InnoDB's persistent statistics hold each index's size in pages.
    let index_sizes = section(
        db,
        &format!(
            "SELECT database_name AS schema_name, table_name, index_name,
                    CAST(stat_value * @@innodb_page_size AS SIGNED) AS bytes,
                    CAST(NULL AS SIGNED) AS scans
             FROM mysql.innodb_index_stats
             WHERE database_name = DATABASE() AND stat_name = 'size'
             ORDER BY stat_value DESC, 1, 2, 3
             LIMIT {limit}"
        ),
    )
    .await;
    let unused_indexes = match &performance_schema {
        Ok(true) => {
            section(
                db,
                "SELECT u.OBJECT_SCHEMA AS schema_name, u.OBJECT_NAME AS table_name,
                        u.INDEX_NAME AS index_name, CAST(NULL AS SIGNED) AS bytes,
                        CAST(u.COUNT_STAR AS SIGNED) AS scans
                 FROM performance_schema.table_io_waits_summary_by_index_usage u
                 WHERE u.OBJECT_SCHEMA = DATABASE() AND u.INDEX_NAME IS NOT NULL
                   AND u.INDEX_NAME <> 'PRIMARY' AND u.COUNT_STAR = 0
                   AND NOT EXISTS (
                     SELECT 1 FROM information_schema.STATISTICS s
                     WHERE s.TABLE_SCHEMA = u.OBJECT_SCHEMA AND s.TABLE_NAME = u.OBJECT_NAME
                       AND s.INDEX_NAME = u.INDEX_NAME AND s.NON_UNIQUE = 0)
                 ORDER BY 1, 2, 3",
            )
            .await
        }
        Ok(false) => Section::unavailable(ENABLE_PERFORMANCE_SCHEMA),
        Err(error) => Section::unavailable(unavailable_reason(error)),
    };
    let duplicate_indexes = section(
        db,
        "SELECT schema_name, table_name,
                GROUP_CONCAT(index_name ORDER BY index_name SEPARATOR ', ') AS indexes,
                definition
         FROM (
           SELECT TABLE_SCHEMA AS schema_name, TABLE_NAME AS table_name,
                  INDEX_NAME AS index_name,
                  CONCAT('USING ', INDEX_TYPE, ' (',
                         GROUP_CONCAT(CONCAT(COLUMN_NAME, IFNULL(CONCAT('(', SUB_PART, ')'), ''))
                                      ORDER BY SEQ_IN_INDEX SEPARATOR ', '),
                         ')') AS definition
           FROM information_schema.STATISTICS
           WHERE TABLE_SCHEMA = DATABASE()
           GROUP BY TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, INDEX_TYPE
         ) keyed
         GROUP BY schema_name, table_name, definition
         HAVING COUNT(*) > 1
         ORDER BY 1, 2, 3",
    )
    .await;
    let cache_hit_ratio = section(
        db,
        "SELECT 'InnoDB buffer pool' AS scope,
                CAST(requests.VARIABLE_VALUE - disk.VARIABLE_VALUE AS SIGNED) AS hits,
                CAST(disk.VARIABLE_VALUE AS SIGNED) AS `reads`,
                CAST((requests.VARIABLE_VALUE - disk.VARIABLE_VALUE)
                     / NULLIF(requests.VARIABLE_VALUE, 0) AS DOUBLE) AS ratio
         FROM information_schema.GLOBAL_STATUS requests
         JOIN information_schema.GLOBAL_STATUS disk
           ON disk.VARIABLE_NAME = 'INNODB_BUFFER_POOL_READS'
         WHERE requests.VARIABLE_NAME = 'INNODB_BUFFER_POOL_READ_REQUESTS'",
    )
    .await;
    let connections = section(
        db,
        "SELECT DB AS database_name, USER AS user_name, COMMAND AS state,
                COUNT(*) AS connections
         FROM information_schema.PROCESSLIST
         WHERE COMMAND <> 'Daemon'
         GROUP BY 1, 2, 3
         ORDER BY 4 DESC, 1, 2, 3",
    )
    .await;
    let long_running_queries = section(
        db,
        &format!(
            "SELECT CAST(ID AS SIGNED) AS pid, USER AS user_name, DB AS database_name,
                    COMMAND AS state, CAST(TIME_MS / 1000 AS DOUBLE) AS seconds, INFO AS query
             FROM information_schema.PROCESSLIST
             WHERE ID <> CONNECTION_ID() AND COMMAND NOT IN ('Sleep', 'Daemon', 'Binlog Dump')
               AND TIME >= {threshold}
             ORDER BY TIME DESC
             LIMIT {limit}"
        ),
    )
    .await;
    let idle_in_transaction = section(
        db,
        &format!(
            "SELECT CAST(p.ID AS SIGNED) AS pid, p.USER AS user_name, p.DB AS database_name,
                    'idle in transaction' AS state,
                    CAST(TIMESTAMPDIFF(SECOND, t.trx_started, NOW()) AS DOUBLE) AS seconds,
                    t.trx_query AS query
             FROM information_schema.INNODB_TRX t
             JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id
             WHERE p.COMMAND = 'Sleep' AND p.ID <> CONNECTION_ID()
               AND t.trx_started <= NOW() - INTERVAL {threshold} SECOND
             ORDER BY t.trx_started
             LIMIT {limit}"
        ),
    )
    .await;
    let lock_waits = mariadb_lock_waits(db, limit).await;
    let slow_statements = match &performance_schema {
        Ok(true) => {
            section(
                db,
                &format!(
                    "SELECT CAST(COUNT_STAR AS SIGNED) AS calls,
                            CAST(SUM_TIMER_WAIT / 1000000000 AS DOUBLE) AS total_ms,
                            CAST(AVG_TIMER_WAIT / 1000000000 AS DOUBLE) AS mean_ms,
                            CAST(SUM_ROWS_SENT + SUM_ROWS_AFFECTED AS SIGNED) AS `rows`,
                            DIGEST_TEXT AS query
                     FROM performance_schema.events_statements_summary_by_digest
                     WHERE SCHEMA_NAME = DATABASE()
                     ORDER BY SUM_TIMER_WAIT DESC
                     LIMIT {limit}"
                ),
            )
            .await
        }
        Ok(false) => Section::unavailable(ENABLE_PERFORMANCE_SCHEMA),
        Err(error) => Section::unavailable(unavailable_reason(error)),
    };
    InsightsReport {
        backend: "mysql",
        database: inv.target.database(),
        long_running_threshold_secs: threshold,
        table_sizes,
        index_sizes,
        unused_indexes,
        duplicate_indexes,
        cache_hit_ratio,
        connections,
        long_running_queries,
        idle_in_transaction,
        lock_waits,
        slow_statements,
    }
}

/// MariaDB (and MySQL 5.7) list lock waits in information_schema; MySQL 8 moved
/// them to performance_schema.data_lock_waits.
async fn mariadb_lock_waits(db: &DatabaseConnection, limit: u32) -> Section<LockWait> {
    // The CASTs: in this join MariaDB 10.11 cuts a CONCAT of the ENUM columns
    // lock_type and lock_mode to five characters ("RECOR").
    let information_schema = read_only(
        db,
        &format!(
            "SELECT CAST(r.trx_mysql_thread_id AS SIGNED) AS waiting_pid,
                    p.USER AS waiting_user,
                    CAST(TIMESTAMPDIFF(SECOND, r.trx_wait_started, NOW()) AS DOUBLE) AS seconds,
                    CONCAT(CAST(l.lock_type AS CHAR(16)), ' ', CAST(l.lock_mode AS CHAR(16)))
                      AS `lock`,
                    l.lock_table AS relation,
                    (SELECT GROUP_CONCAT(DISTINCT b.trx_mysql_thread_id
                                         ORDER BY b.trx_mysql_thread_id SEPARATOR ', ')
                     FROM information_schema.INNODB_LOCK_WAITS w
                     JOIN information_schema.INNODB_TRX b ON b.trx_id = w.blocking_trx_id
                     WHERE w.requesting_trx_id = r.trx_id) AS blocking_pids,
                    r.trx_query AS query
             FROM information_schema.INNODB_TRX r
             LEFT JOIN information_schema.INNODB_LOCKS l ON l.lock_id = r.trx_requested_lock_id
             LEFT JOIN information_schema.PROCESSLIST p ON p.ID = r.trx_mysql_thread_id
             WHERE r.trx_state = 'LOCK WAIT'
             ORDER BY r.trx_wait_started
             LIMIT {limit}"
        ),
    )
    .await;
    match information_schema {
        Ok(rows) => Section::rows(rows),
        Err(error) if is_permission_denied(&error) => {
            Section::unavailable(unavailable_reason(&error))
        }
        Err(_) => {
            section(
                db,
                &format!(
                    "SELECT CAST(w.REQUESTING_THREAD_ID AS SIGNED) AS waiting_pid,
                            CAST(NULL AS CHAR) AS waiting_user,
                            CAST(NULL AS DOUBLE) AS seconds,
                            CONCAT(l.LOCK_TYPE, ' ', l.LOCK_MODE) AS `lock`,
                            CONCAT(l.OBJECT_SCHEMA, '.', l.OBJECT_NAME) AS relation,
                            CAST(w.BLOCKING_THREAD_ID AS CHAR) AS blocking_pids,
                            CAST(NULL AS CHAR) AS query
                     FROM performance_schema.data_lock_waits w
                     JOIN performance_schema.data_locks l
                       ON l.ENGINE_LOCK_ID = w.REQUESTING_ENGINE_LOCK_ID
                     LIMIT {limit}"
                ),
            )
            .await
        }
    }
}

/// SQLite keeps no statistics of sessions, locks or statements; the page sizes of
/// its tables come from the `dbstat` table where the library was built with it.
async fn sqlite(
    db: &DatabaseConnection,
    inv: &Invocation,
    threshold: u64,
    limit: u32,
) -> InsightsReport {
    const ONLY_SERVERS: &str =
        "SQLite keeps no such statistics; insights are for PostgreSQL and MariaDB";
    let table_sizes = section(
        db,
        &format!(
            "SELECT 'main' AS schema_name, m.tbl_name AS table_name,
                    NULL AS rows_estimate,
                    SUM(CASE WHEN m.type = 'table' THEN s.pgsize ELSE 0 END) AS table_bytes,
                    SUM(CASE WHEN m.type = 'index' THEN s.pgsize ELSE 0 END) AS index_bytes,
                    SUM(s.pgsize) AS total_bytes
             FROM dbstat s
             JOIN sqlite_schema m ON m.name = s.name
             GROUP BY m.tbl_name
             ORDER BY total_bytes DESC, table_name
             LIMIT {limit}"
        ),
    )
    .await;
    InsightsReport {
        backend: "sqlite",
        database: inv.target.database(),
        long_running_threshold_secs: threshold,
        table_sizes,
        index_sizes: Section::unavailable(ONLY_SERVERS),
        unused_indexes: Section::unavailable(ONLY_SERVERS),
        duplicate_indexes: Section::unavailable(ONLY_SERVERS),
        cache_hit_ratio: Section::unavailable(ONLY_SERVERS),
        connections: Section::unavailable(ONLY_SERVERS),
        long_running_queries: Section::unavailable(ONLY_SERVERS),
        idle_in_transaction: Section::unavailable(ONLY_SERVERS),
        lock_waits: Section::unavailable(ONLY_SERVERS),
        slow_statements: Section::unavailable(ONLY_SERVERS),
    }
}
