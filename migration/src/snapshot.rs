//! `docs/schema.md`: the schema as the migrations build it on PostgreSQL, written for
//! people: a mermaid ER diagram, then every table's columns, indexes, keys, checks and
//! row-level security. A test regenerates it and fails when the committed copy differs.

use sea_orm_migration::sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement,
};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Tables that are the migrator's own bookkeeping, not the application's schema.
const BOOKKEEPING: &[&str] = &["seaql_migrations", "migration_checksums", "migration_lock"];

async fn rows(db: &DatabaseConnection, sql: &str) -> Result<Vec<Vec<String>>, DbErr> {
    let result = db
        .query_all_raw(Statement::from_string(DbBackend::Postgres, sql.to_owned()))
        .await?;
    result
        .iter()
        .map(|row| {
            let mut values = Vec::new();
            let mut i = 0;
            while let Ok(value) = row.try_get_by_index::<Option<String>>(i) {
                values.push(value.unwrap_or_default());
                i += 1;
            }
            Ok(values)
        })
        .collect()
}

struct Column {
    name: String,
    kind: String,
    nullable: bool,
    default: String,
}

/// Renders the snapshot of the current schema of `db`, which must be PostgreSQL.
pub async fn markdown(db: &DatabaseConnection) -> Result<String, DbErr> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Err(DbErr::Custom(
            "the schema snapshot is taken from PostgreSQL".into(),
        ));
    }
    let skip = BOOKKEEPING
        .iter()
        .map(|t| format!("'{t}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut tables: BTreeMap<String, Vec<Column>> = BTreeMap::new();
    for r in rows(
        db,
        &format!(
            "SELECT c.relname::text, a.attname::text, format_type(a.atttypid, a.atttypmod),
                    CASE WHEN a.attnotnull THEN 'no' ELSE 'yes' END,
                    coalesce(pg_get_expr(d.adbin, d.adrelid), ''),
                    CASE WHEN a.attgenerated = 's' THEN 'generated' ELSE '' END
               FROM pg_attribute a
               JOIN pg_class c ON c.oid = a.attrelid AND c.relkind = 'r'
               JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
               LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
              WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relname NOT IN ({skip})
              ORDER BY c.relname, a.attnum"
        ),
    )
    .await?
    {
        let generated = r[5] == "generated";
        tables.entry(r[0].clone()).or_default().push(Column {
            name: r[1].clone(),
            kind: r[2].clone(),
            nullable: r[3] == "yes",
            default: if generated {
                format!("generated: {}", r[4])
            } else {
                r[4].clone()
            },
        });
    }
    let constraints = rows(
        db,
        &format!(
            "SELECT c.relname::text, con.conname::text, con.contype::text, pg_get_constraintdef(con.oid),
                    coalesce(f.relname::text, '')
               FROM pg_constraint con
               JOIN pg_class c ON c.oid = con.conrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
               LEFT JOIN pg_class f ON f.oid = con.confrelid
              WHERE c.relname NOT IN ({skip})
              ORDER BY c.relname, con.contype, con.conname"
        ),
    )
    .await?;
    let indexes = rows(
        db,
        &format!(
            "SELECT tablename::text, indexname::text, indexdef FROM pg_indexes
              WHERE schemaname = current_schema() AND tablename NOT IN ({skip})
              ORDER BY tablename, indexname"
        ),
    )
    .await?;
    let security = rows(
        db,
        "SELECT c.relname::text, p.polname::text, coalesce(pg_get_expr(p.polqual, p.polrelid), ''),
                coalesce(pg_get_expr(p.polwithcheck, p.polrelid), ''), c.relforcerowsecurity::text
           FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
          ORDER BY c.relname, p.polname",
    )
    .await?;

    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "# Database schema\n");
    let _ = writeln!(
        w,
        "Generated from a PostgreSQL database migrated to the latest version; do not edit.\n\
         Regenerate with `cargo run -p migration -- -u <postgres url> snapshot > docs/schema.md`\n\
         after changing a migration (a test fails until you do). MariaDB and SQLite get the\n\
         same tables with their own types (see ARCHITECTURE.md, backend differences).\n"
    );
    let _ = writeln!(w, "```mermaid\nerDiagram");
    for (table, columns) in &tables {
        let _ = writeln!(w, "    {table} {{");
        for column in columns {
            let kind = short_type(&column.kind);
            let _ = writeln!(w, "        {kind} {}", column.name);
        }
        let _ = writeln!(w, "    }}");
    }
    for c in constraints.iter().filter(|c| c[2] == "f") {
        let nullable_fk = tables
            .get(&c[0])
            .map(|cols| {
                fk_columns(&c[3])
                    .iter()
                    .any(|name| cols.iter().any(|col| &col.name == name && col.nullable))
            })
            .unwrap_or(false);
        let cardinality = if nullable_fk { "|o--o{" } else { "||--o{" };
        let _ = writeln!(w, "    {} {cardinality} {} : \"{}\"", c[4], c[0], c[1]);
    }
    let _ = writeln!(w, "```\n");

    for (table, columns) in &tables {
        let _ = writeln!(w, "## {table}\n");
        let _ = writeln!(w, "| column | type | null | default |\n|---|---|---|---|");
        for c in columns {
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} |",
                c.name,
                c.kind,
                if c.nullable { "yes" } else { "no" },
                escape(&c.default)
            );
        }
        let _ = writeln!(w);
        for (label, kind) in [
            ("Primary key", "p"),
            ("Unique", "u"),
            ("Foreign keys", "f"),
            ("Checks", "c"),
        ] {
            let list: Vec<&Vec<String>> = constraints
                .iter()
                .filter(|c| &c[0] == table && c[2] == kind)
                .collect();
            if list.is_empty() {
                continue;
            }
            let _ = writeln!(w, "{label}:");
            for c in list {
                let _ = writeln!(w, "- `{}`: `{}`", c[1], c[3]);
            }
            let _ = writeln!(w);
        }
        let table_indexes: Vec<&Vec<String>> = indexes.iter().filter(|i| &i[0] == table).collect();
        if !table_indexes.is_empty() {
            let _ = writeln!(w, "Indexes:");
            for i in table_indexes {
                let _ = writeln!(w, "- `{}`: `{}`", i[1], i[2]);
            }
            let _ = writeln!(w);
        }
        let policies: Vec<&Vec<String>> = security.iter().filter(|p| &p[0] == table).collect();
        if !policies.is_empty() {
            // Forced binds the table's owner too (and so its SECURITY DEFINER functions).
            let forced = if policies[0][4] == "true" {
                "forced"
            } else {
                "not forced"
            };
            let _ = writeln!(w, "Row-level security (enabled, {forced}):");
            for p in policies {
                let _ = writeln!(w, "- `{}`: USING `{}` WITH CHECK `{}`", p[1], p[2], p[3]);
            }
            let _ = writeln!(w);
        }
    }
    Ok(out)
}

/// The local columns of `FOREIGN KEY (a, b) REFERENCES ...`.
fn fk_columns(definition: &str) -> Vec<String> {
    definition
        .strip_prefix("FOREIGN KEY (")
        .and_then(|rest| rest.split_once(')'))
        .map(|(cols, _)| cols.split(',').map(|c| c.trim().to_owned()).collect())
        .unwrap_or_default()
}

fn escape(text: &str) -> String {
    text.replace('|', "\\|")
}

/// A one-word type for the diagram (mermaid attribute types cannot contain spaces).
fn short_type(kind: &str) -> String {
    let kind = kind
        .replace("character varying", "varchar")
        .replace("timestamp with time zone", "timestamptz")
        .replace("character", "char");
    kind.split(['(', ' ']).next().unwrap_or("").to_owned()
}
