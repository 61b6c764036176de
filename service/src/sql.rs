//! Raw SQL with named parameters, for the few queries the query builder cannot say
//! well (recursive CTEs). `:name` becomes `$n` on PostgreSQL (one number per name)
//! or `?` elsewhere (the value repeated for every use).

use sea_orm::{DbBackend, Statement, Value};

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
