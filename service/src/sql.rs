//! SQL the query builder alone does not cover: raw statements with named parameters
//! (recursive CTEs), and reads on a request's hot path in one round trip.

use crate::Result;
use sea_orm::sea_query::{Alias, Expr, Func, PostgresQueryBuilder, Query, SelectStatement};
use sea_orm::sqlx::Connection;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseConnectionType, DbBackend, DbErr, QueryResult,
    RuntimeErr, Statement, TryGetableMany, Value,
};
use std::any::Any;
use std::sync::Arc;

/// Raw SQL with named parameters: `:name` becomes `$n` on PostgreSQL (one number per
/// name) or `?` elsewhere (the value repeated for every use).
pub(crate) fn named(backend: DbBackend, sql: &str, params: &[(&str, Value)]) -> Statement {
    let mut out = String::with_capacity(sql.len());
    let mut values: Vec<Value> = Vec::new();
    let mut numbered: Vec<&str> = Vec::new();
    let bytes = sql.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let starts_param = bytes[i] == b':'
            && bytes.get(i + 1).is_some_and(|b| b.is_ascii_lowercase())
            && (i == 0 || bytes[i - 1] != b':');
        if !starts_param {
            out.push(bytes[i] as char);
            i += 1;
            continue;
        }
        let end = (i + 1..bytes.len())
            .find(|&j| !(bytes[j].is_ascii_lowercase() || bytes[j] == b'_'))
            .unwrap_or(bytes.len());
        let name = &sql[i + 1..end];
        let value = params
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| {
                panic!("SQL parameter :{name} has no value (a bug in the query text)")
            });
        if backend == DbBackend::Postgres {
            let n = match numbered.iter().position(|n| *n == name) {
                Some(pos) => pos + 1,
                None => {
                    numbered.push(name);
                    values.push(value);
                    numbered.len()
                }
            };
            out.push_str(&format!("${n}"));
        } else {
            out.push('?');
            values.push(value);
        }
        i = end;
    }
    Statement::from_sql_and_values(backend, out, values)
}

/// The backend behind `db`; an error, not a panic, for a connection that was never
/// opened.
pub(crate) fn backend_of(db: &DatabaseConnection) -> Result<DbBackend> {
    if matches!(db.inner, DatabaseConnectionType::Disconnected) {
        return Err(DbErr::Conn(RuntimeErr::Internal(
            "not connected to a database".to_owned(),
        ))
        .into());
    }
    Ok(db.get_database_backend())
}

/// Runs one read statement in one round trip, outside any transaction, for the
/// checks every request makes (a session, an API key). Every other read runs in a
/// transaction that sets the row-security context first; these statements need no
/// context (on PostgreSQL they call `SECURITY DEFINER` functions), and a transaction
/// would cost three round trips more than the row.
///
/// On a PostgreSQL pool with a statement cache the statement is prepared once per
/// connection and then sent as one Bind/Execute: one round trip, a cached plan and
/// binary rows. Without a cache (PgBouncer's transaction pooling, where a statement
/// prepared outside a transaction takes two round trips that PgBouncer may send to
/// different server connections) it goes as one simple-protocol message instead. That
/// protocol has no bind parameters: sea-query's PostgreSQL builder writes the values
/// as escaped literals, and the callers pass only ids and hashes the service produced
/// itself. In a caller's transaction, or on another backend, it is an ordinary
/// statement.
pub(crate) async fn read_in_one_round_trip<C>(
    db: &C,
    query: &SelectStatement,
) -> Result<Vec<QueryResult>>
where
    C: ConnectionTrait + 'static,
{
    let pool = (db as &dyn Any).downcast_ref::<DatabaseConnection>();
    let Some(pool) = pool.filter(|pool| backend_of(pool).ok() == Some(DbBackend::Postgres)) else {
        return Ok(db.query_all(query).await?);
    };
    let sqlx_error = |e| DbErr::Query(RuntimeErr::SqlxError(Arc::new(e)));
    let mut connection = pool
        .get_postgres_connection_pool()
        .acquire()
        .await
        .map_err(sqlx_error)?;
    // A connection holding cached statements has a cache (its capacity is not
    // readable); one that holds none yet, or cannot hold any, gets the simple
    // protocol, which is one round trip either way.
    if connection.cached_statements_size() > 0 {
        let (sql, values) = query.build(PostgresQueryBuilder);
        if let Some(prepared) = bind_all(
            sea_orm::sqlx::query(sea_orm::sqlx::AssertSqlSafe(sql)),
            values,
        ) {
            match prepared.fetch_all(&mut *connection).await {
                Ok(rows) => return Ok(rows.into_iter().map(QueryResult::from).collect()),
                // A function replaced since this connection prepared the statement
                // (`cached plan must not change result type`, or a statement the
                // server no longer has): forget the connection's statements, and send
                // this one as text below.
                Err(sea_orm::sqlx::Error::Database(e))
                    if matches!(e.code().as_deref(), Some("0A000" | "26000")) =>
                {
                    connection
                        .clear_cached_statements()
                        .await
                        .map_err(sqlx_error)?;
                }
                Err(e) => return Err(sqlx_error(e).into()),
            }
        }
    }
    let rows = sea_orm::sqlx::raw_sql(sea_orm::sqlx::AssertSqlSafe(
        query.to_string(PostgresQueryBuilder),
    ))
    .fetch_all(&mut *connection)
    .await
    .map_err(sqlx_error)?;
    Ok(rows.into_iter().map(QueryResult::from).collect())
}

type PgQuery = sea_orm::sqlx::query::Query<
    'static,
    sea_orm::sqlx::Postgres,
    sea_orm::sqlx::postgres::PgArguments,
>;

/// `query` with `values` bound, or `None` when one is of a type these reads never
/// pass (the caller then sends the statement with the values written in).
fn bind_all(mut query: PgQuery, values: sea_orm::sea_query::Values) -> Option<PgQuery> {
    for value in values {
        query = match value {
            Value::Uuid(Some(id)) => query.bind(id),
            Value::String(Some(text)) => query.bind(text),
            _ => return None,
        };
    }
    Some(query)
}

/// A row named by a secret's hash (or a credential id) before anyone is acting, when
/// row-level security would show no row yet: on PostgreSQL the `columns` of the
/// `SECURITY DEFINER` function `function(key)` (which never returns a hash), on the
/// other backends `elsewhere`, selecting the same values in the same order.
pub(crate) async fn find_before_acting<C, T>(
    db: &C,
    (function, columns): (&'static str, &[&'static str]),
    key: impl Into<Value>,
    elsewhere: SelectStatement,
) -> Result<Option<T>>
where
    C: ConnectionTrait,
    T: TryGetableMany,
{
    let query = if db.get_database_backend() == DbBackend::Postgres {
        Query::select()
            .columns(columns.iter().map(|column| Alias::new(*column)))
            .from_function(Func::cust(function).arg(Expr::val(key)), "found")
            .to_owned()
    } else {
        elsewhere
    };
    let row = db.query_one(&query).await?;
    Ok(row
        .map(|row| row.try_get_many_by_index::<T>())
        .transpose()?)
}
