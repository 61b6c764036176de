//! The committed schema snapshot and the entities both agree with what the
//! migrations build.
//!
//! How the entities are compared: each entity goes through SeaORM's own schema
//! builder (`Schema::create_table_from_entity` and `create_index_from_entity`), which
//! turns its columns, `unique`/`unique_key` attributes and `belongs_to` relations into
//! the `CREATE TABLE`, foreign keys and unique indexes SeaORM would build from it. That
//! is the entities' complete statement of the schema, read through public API rather
//! than re-derived by hand, and it is compared with the database catalogue of the
//! backend under test, table by table for every table the migrations created. A
//! table, column, foreign key or unique key on one side only fails the test, so a new
//! migration needs its entity counterpart (or an entity its migration).

use entity::access::{
    permissions, policies, role_assignments, role_inheritance, role_permissions, roles,
};
use entity::agents::{agent_results, agent_tasks};
use entity::audit::{audit_chain_heads, audit_event_types, audit_logs};
use entity::billing::{
    billing_plans, billing_subscriptions, payment_customers, payment_intents, payment_methods,
    usage_records,
};
use entity::compliance::{
    consent_records, data_residency_log, deletion_requests, privacy_policies, security_incidents,
    subject_keys,
};
use entity::identity::{
    api_keys, mfa_backup_codes, mfa_challenges, mfa_factors, passkeys, refresh_tokens,
    session_anomaly_reports, sessions, sign_in_throttles, user_profiles, users,
};
use entity::rental::properties;
use entity::tenancy::{invitations, memberships, team_members, teams, tenants};
use sea_orm::sea_query::{ForeignKeyAction, StringLen, TableName, TableRef};
use sea_orm::{
    ColumnTrait, ColumnType, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait,
    IdenStatic, Iterable, PrimaryKeyToColumn, QueryResult, Schema, Statement,
};
use std::collections::{BTreeMap, BTreeSet};
use tests::{Backend, Start, TestDb, run_case};

tests::backend_tests!(
    Migrated: entities_match_the_migrated_schema,
    each_kind_of_drift_is_reported,
);

/// Written by migrations and the CLI and read through the migration crate, by design:
/// these tables have no entity.
const TABLES_WITHOUT_ENTITY: &[&str] = &[
    "seaql_migrations",
    "migration_checksums",
    "migration_lock",
    "database_metadata",
];

/// One table as either side describes it.
#[derive(Debug, Default)]
struct TableShape {
    /// Column name -> (nullable, declared type).
    columns: BTreeMap<String, (bool, ColumnKind)>,
    /// Column sets that are unique, the primary key included (order is irrelevant
    /// to uniqueness).
    unique_keys: BTreeSet<BTreeSet<String>>,
    /// The entity's primary key (not read from the database: it is among the
    /// database's unique keys).
    primary_key: BTreeSet<String>,
    foreign_keys: BTreeSet<ForeignKey>,
}

/// A foreign key: (column, referenced column) pairs, sorted, so a composite key
/// compares by what points to what, whatever the column order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct ForeignKey {
    references: String,
    pairs: Vec<(String, String)>,
    on_delete: &'static str,
    on_update: &'static str,
}

impl std::fmt::Display for ForeignKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (from, to): (Vec<_>, Vec<_>) = self.pairs.iter().cloned().unzip();
        write!(
            f,
            "({}) -> {} ({}) on delete {}, on update {}",
            from.join(", "),
            self.references,
            to.join(", "),
            self.on_delete,
            self.on_update
        )
    }
}

/// A column type, loosely: the family each backend stores it as, and a length
/// where one is declared. Backends spell types differently (`uuid`, `binary(16)`,
/// `uuid_text`), so each side is mapped to a family rather than compared as text.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ColumnKind {
    family: String,
    length: Option<u32>,
}

impl ColumnKind {
    fn new(family: &str, length: Option<u32>) -> Self {
        Self {
            family: family.to_owned(),
            length,
        }
    }

    /// Same family; lengths agree where the entity states one.
    fn accepts(&self, database: &ColumnKind) -> bool {
        self.family == database.family && (self.length.is_none() || self.length == database.length)
    }
}

/// `NO ACTION` and `RESTRICT` behave the same for constraints that are not
/// deferred (ours never are), and MariaDB reports an unspecified rule as `RESTRICT`.
fn referential_rule(rule: Option<ForeignKeyAction>) -> &'static str {
    match rule {
        Some(ForeignKeyAction::Cascade) => "cascade",
        Some(ForeignKeyAction::SetNull) => "set null",
        Some(ForeignKeyAction::SetDefault) => "set default",
        Some(ForeignKeyAction::Restrict | ForeignKeyAction::NoAction) | None => "restrict",
        Some(other) => panic!("unknown referential action {other:?}"),
    }
}

fn referential_rule_named(rule: &str) -> &'static str {
    referential_rule(match rule.to_ascii_uppercase().as_str() {
        "CASCADE" => Some(ForeignKeyAction::Cascade),
        "SET NULL" => Some(ForeignKeyAction::SetNull),
        "SET DEFAULT" => Some(ForeignKeyAction::SetDefault),
        "RESTRICT" | "NO ACTION" => None,
        other => panic!("unknown referential action {other}"),
    })
}

fn entity_column_kind(column_type: &ColumnType) -> ColumnKind {
    match column_type {
        ColumnType::Uuid => ColumnKind::new("uuid", None),
        ColumnType::String(StringLen::N(n)) | ColumnType::Char(Some(n)) => {
            ColumnKind::new("text", Some(*n))
        }
        ColumnType::String(_) | ColumnType::Char(None) | ColumnType::Text => {
            ColumnKind::new("text", None)
        }
        ColumnType::SmallInteger => ColumnKind::new("int16", None),
        ColumnType::Integer => ColumnKind::new("int32", None),
        ColumnType::BigInteger => ColumnKind::new("int64", None),
        ColumnType::Double => ColumnKind::new("float64", None),
        ColumnType::Boolean => ColumnKind::new("boolean", None),
        ColumnType::TimestampWithTimeZone => ColumnKind::new("timestamp", None),
        ColumnType::Json | ColumnType::JsonBinary => ColumnKind::new("json", None),
        ColumnType::VarBinary(_) => ColumnKind::new("bytes", None),
        other => ColumnKind::new(&format!("unmapped entity type {other:?}"), None),
    }
}

/// The family of a type as the catalogue of `backend` spells it, e.g.
/// `character varying(16)`, `binary(16)`, `timestamp_with_timezone_text`.
fn database_column_kind(backend: DbBackend, declared: &str) -> ColumnKind {
    let declared = declared.to_ascii_lowercase();
    let (base, length) = match declared.split_once('(') {
        Some((base, rest)) => (
            base.trim(),
            rest.trim_end_matches(')').trim().parse::<u32>().ok(),
        ),
        None => (declared.trim(), None),
    };
    let family = match (backend, base, length) {
        (DbBackend::Postgres, "uuid", _)
        | (DbBackend::MySql, "binary", Some(16))
        | (DbBackend::Sqlite, "uuid_text" | "blob", _) => "uuid",
        (_, "character varying" | "character" | "varchar" | "char" | "text", _) => "text",
        (_, "smallint", _) => "int16",
        (DbBackend::MySql, "int", _) | (DbBackend::Postgres | DbBackend::Sqlite, "integer", _) => {
            "int32"
        }
        (_, "bigint", _) => "int64",
        (DbBackend::Postgres, "double precision", _) | (_, "double" | "real", _) => "float64",
        (DbBackend::MySql, "tinyint", Some(1)) | (_, "boolean", _) => "boolean",
        (DbBackend::Postgres, "timestamp with time zone", _)
        | (DbBackend::MySql, "datetime" | "timestamp", _)
        | (DbBackend::Sqlite, "timestamp_with_timezone_text", _) => "timestamp",
        // MariaDB's JSON is an alias of LONGTEXT (with a validity check).
        (DbBackend::Postgres, "jsonb" | "json", _)
        | (DbBackend::MySql, "longtext" | "json", _)
        | (DbBackend::Sqlite, "jsonb_text" | "json_text", _) => "json",
        (DbBackend::Postgres, "bytea", _)
        | (DbBackend::MySql, "varbinary" | "blob", _)
        | (DbBackend::Sqlite, "varbinary_blob", _) => "bytes",
        _ => return ColumnKind::new(&format!("unmapped database type {declared}"), length),
    };
    let length = if family == "text" { length } else { None };
    ColumnKind::new(family, length)
}

fn table_name(table: &TableRef) -> String {
    match table {
        TableRef::Table(TableName(_, name), _) => name.to_string(),
        other => panic!("a foreign key references a table, not {other:?}"),
    }
}

/// What an entity declares, as SeaORM's schema builder renders it for `backend`.
fn entity_shape<E: EntityTrait>(backend: DbBackend) -> (String, TableShape) {
    let entity = E::default();
    let schema = Schema::new(backend);
    let mut shape = TableShape::default();
    for column in E::Column::iter() {
        let def = column.def();
        shape.columns.insert(
            column.as_str().to_owned(),
            (def.is_null(), entity_column_kind(def.get_column_type())),
        );
        if def.is_unique() {
            shape
                .unique_keys
                .insert(BTreeSet::from([column.as_str().to_owned()]));
        }
    }
    shape.primary_key = E::PrimaryKey::iter()
        .map(|key| key.into_column().as_str().to_owned())
        .collect();
    shape.unique_keys.insert(shape.primary_key.clone());
    // `unique_key = "..."` groups become one unique index each.
    for index in schema.create_index_from_entity(entity) {
        if index.is_unique_key() {
            shape.unique_keys.insert(
                index
                    .get_index_spec()
                    .get_column_names()
                    .into_iter()
                    .collect(),
            );
        }
    }
    // Every `belongs_to` relation without `skip_fk` becomes a foreign key.
    for statement in schema
        .create_table_from_entity(entity)
        .get_foreign_key_create_stmts()
    {
        let key = statement.get_foreign_key();
        let mut pairs: Vec<_> = key
            .get_columns()
            .into_iter()
            .zip(key.get_ref_columns())
            .collect();
        pairs.sort();
        shape.foreign_keys.insert(ForeignKey {
            references: table_name(key.get_ref_table().expect("a referenced table")),
            pairs,
            on_delete: referential_rule(key.get_on_delete()),
            on_update: referential_rule(key.get_on_update()),
        });
    }
    (entity.table_name().to_owned(), shape)
}

fn entity_shapes(backend: DbBackend) -> BTreeMap<String, TableShape> {
    [
        entity_shape::<tenants::Entity>(backend),
        entity_shape::<memberships::Entity>(backend),
        entity_shape::<teams::Entity>(backend),
        entity_shape::<team_members::Entity>(backend),
        entity_shape::<invitations::Entity>(backend),
        entity_shape::<users::Entity>(backend),
        entity_shape::<user_profiles::Entity>(backend),
        entity_shape::<sessions::Entity>(backend),
        entity_shape::<refresh_tokens::Entity>(backend),
        entity_shape::<api_keys::Entity>(backend),
        entity_shape::<mfa_factors::Entity>(backend),
        entity_shape::<mfa_challenges::Entity>(backend),
        entity_shape::<session_anomaly_reports::Entity>(backend),
        entity_shape::<mfa_backup_codes::Entity>(backend),
        entity_shape::<passkeys::Entity>(backend),
        entity_shape::<sign_in_throttles::Entity>(backend),
        entity_shape::<permissions::Entity>(backend),
        entity_shape::<roles::Entity>(backend),
        entity_shape::<role_inheritance::Entity>(backend),
        entity_shape::<role_permissions::Entity>(backend),
        entity_shape::<role_assignments::Entity>(backend),
        entity_shape::<policies::Entity>(backend),
        entity_shape::<audit_event_types::Entity>(backend),
        entity_shape::<audit_logs::Entity>(backend),
        entity_shape::<audit_chain_heads::Entity>(backend),
        entity_shape::<subject_keys::Entity>(backend),
        entity_shape::<privacy_policies::Entity>(backend),
        entity_shape::<consent_records::Entity>(backend),
        entity_shape::<deletion_requests::Entity>(backend),
        entity_shape::<data_residency_log::Entity>(backend),
        entity_shape::<security_incidents::Entity>(backend),
        entity_shape::<agent_tasks::Entity>(backend),
        entity_shape::<agent_results::Entity>(backend),
        entity_shape::<properties::Entity>(backend),
        entity_shape::<entity::records::records::Entity>(backend),
        entity_shape::<entity::records::record_versions::Entity>(backend),
        entity_shape::<entity::records::access_grants::Entity>(backend),
        entity_shape::<billing_plans::Entity>(backend),
        entity_shape::<billing_subscriptions::Entity>(backend),
        entity_shape::<usage_records::Entity>(backend),
        entity_shape::<payment_customers::Entity>(backend),
        entity_shape::<payment_methods::Entity>(backend),
        entity_shape::<payment_intents::Entity>(backend),
    ]
    .into_iter()
    .collect()
}

fn text(row: &QueryResult, index: usize) -> String {
    row.try_get_by_index::<String>(index)
        .unwrap_or_else(|e| panic!("catalogue column {index}: {e:?}"))
}

fn flag(row: &QueryResult, index: usize) -> bool {
    row.try_get_by_index::<i64>(index)
        .or_else(|_| row.try_get_by_index::<i32>(index).map(i64::from))
        .expect("a 0/1 flag")
        == 1
}

async fn catalogue(db: &DatabaseConnection, sql: &str) -> Vec<QueryResult> {
    let backend = db.get_database_backend();
    db.query_all_raw(Statement::from_string(backend, sql.to_owned()))
        .await
        .unwrap_or_else(|e| panic!("catalogue query failed: {e}\n{sql}"))
}

/// Every table as the database has it: columns, unique keys (primary key included)
/// and foreign keys, read from the catalogue of each backend.
async fn database_shapes(db: &DatabaseConnection) -> BTreeMap<String, TableShape> {
    let backend = db.get_database_backend();
    let (columns, unique_keys, foreign_keys) = match backend {
        DbBackend::Postgres => (
            "SELECT table_name::text, column_name::text,
                    data_type || coalesce('(' || character_maximum_length || ')', ''),
                    CASE WHEN is_nullable = 'YES' THEN 1 ELSE 0 END
               FROM information_schema.columns WHERE table_schema = current_schema()",
            // Partial and expression indexes are conditional rules, not keys: SeaORM
            // cannot declare them, so they are left out on every backend.
            "SELECT t.relname::text, i.relname::text, a.attname::text
               FROM pg_index x
               JOIN pg_class t ON t.oid = x.indrelid
               JOIN pg_class i ON i.oid = x.indexrelid
               JOIN pg_namespace n ON n.oid = t.relnamespace
               JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ANY (x.indkey)
              WHERE n.nspname = current_schema() AND x.indisunique
                AND x.indpred IS NULL AND x.indexprs IS NULL",
            "SELECT t.relname::text, c.conname::text, a.attname::text, r.relname::text,
                    ra.attname::text,
                    CASE c.confdeltype WHEN 'c' THEN 'CASCADE' WHEN 'n' THEN 'SET NULL'
                         WHEN 'd' THEN 'SET DEFAULT' WHEN 'r' THEN 'RESTRICT' ELSE 'NO ACTION' END,
                    CASE c.confupdtype WHEN 'c' THEN 'CASCADE' WHEN 'n' THEN 'SET NULL'
                         WHEN 'd' THEN 'SET DEFAULT' WHEN 'r' THEN 'RESTRICT' ELSE 'NO ACTION' END
               FROM pg_constraint c
               JOIN pg_class t ON t.oid = c.conrelid
               JOIN pg_namespace n ON n.oid = t.relnamespace
               JOIN pg_class r ON r.oid = c.confrelid
               CROSS JOIN LATERAL unnest(c.conkey, c.confkey) AS k(attnum, ref_attnum)
               JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
               JOIN pg_attribute ra ON ra.attrelid = c.confrelid AND ra.attnum = k.ref_attnum
              WHERE c.contype = 'f' AND n.nspname = current_schema()",
        ),
        DbBackend::MySql => (
            "SELECT table_name, column_name, column_type,
                    CASE WHEN is_nullable = 'YES' THEN 1 ELSE 0 END
               FROM information_schema.columns WHERE table_schema = DATABASE()",
            "SELECT table_name, index_name, column_name FROM information_schema.statistics
              WHERE table_schema = DATABASE() AND non_unique = 0",
            "SELECT k.table_name, k.constraint_name, k.column_name, k.referenced_table_name,
                    k.referenced_column_name, r.delete_rule, r.update_rule
               FROM information_schema.key_column_usage k
               JOIN information_schema.referential_constraints r
                 ON r.constraint_schema = k.constraint_schema
                AND r.constraint_name = k.constraint_name AND r.table_name = k.table_name
              WHERE k.table_schema = DATABASE() AND k.referenced_table_name IS NOT NULL",
        ),
        DbBackend::Sqlite => (
            // `hidden` 2 and 3 are generated columns; 1 would be a virtual table's.
            "SELECT m.name, p.name, p.type,
                    CASE WHEN p.\"notnull\" = 1 OR p.pk > 0 THEN 0 ELSE 1 END
               FROM sqlite_master m JOIN pragma_table_xinfo(m.name) p
              WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND p.hidden IN (0, 2, 3)",
            "SELECT m.name, l.name, i.name
               FROM sqlite_master m JOIN pragma_index_list(m.name) l JOIN pragma_index_info(l.name) i
              WHERE m.type = 'table' AND l.\"unique\" = 1 AND l.partial = 0
             UNION ALL
             SELECT m.name, 'primary key', p.name
               FROM sqlite_master m JOIN pragma_table_info(m.name) p
              WHERE m.type = 'table' AND p.pk > 0",
            "SELECT m.name, CAST(f.id AS TEXT), f.\"from\", f.\"table\", f.\"to\",
                    f.on_delete, f.on_update
               FROM sqlite_master m JOIN pragma_foreign_key_list(m.name) f
              WHERE m.type = 'table'",
        ),
        other => panic!("no catalogue queries for {other:?}"),
    };

    let mut shapes: BTreeMap<String, TableShape> = BTreeMap::new();
    for row in catalogue(db, columns).await {
        let kind = database_column_kind(backend, &text(&row, 2));
        shapes
            .entry(text(&row, 0))
            .or_default()
            .columns
            .insert(text(&row, 1), (flag(&row, 3), kind));
    }

    let mut keys: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for row in catalogue(db, unique_keys).await {
        keys.entry((text(&row, 0), text(&row, 1)))
            .or_default()
            .insert(text(&row, 2));
    }
    for ((table, _), columns) in keys {
        shapes.entry(table).or_default().unique_keys.insert(columns);
    }

    let mut references: BTreeMap<(String, String), ForeignKey> = BTreeMap::new();
    for row in catalogue(db, foreign_keys).await {
        let key = references
            .entry((text(&row, 0), text(&row, 1)))
            .or_insert_with(|| ForeignKey {
                references: text(&row, 3),
                pairs: Vec::new(),
                on_delete: referential_rule_named(&text(&row, 5)),
                on_update: referential_rule_named(&text(&row, 6)),
            });
        key.pairs.push((text(&row, 2), text(&row, 4)));
    }
    for ((table, _), mut key) in references {
        key.pairs.sort();
        shapes.entry(table).or_default().foreign_keys.insert(key);
    }

    for table in TABLES_WITHOUT_ENTITY {
        shapes.remove(*table);
    }
    shapes
}

/// Every difference between the migrated database and the entities, in words.
fn differences(
    backend: DbBackend,
    database: &BTreeMap<String, TableShape>,
    entities: &BTreeMap<String, TableShape>,
) -> Vec<String> {
    let mut found = Vec::new();
    for table in database.keys().filter(|t| !entities.contains_key(*t)) {
        found.push(format!(
            "table {table} has no entity (or its entity is not listed in entity_shapes here)"
        ));
    }
    for table in entities.keys().filter(|t| !database.contains_key(*t)) {
        found.push(format!("entity {table} has no table"));
    }
    // The keys that entities' foreign keys point at. A composite foreign key needs a
    // unique key on its target, e.g. `teams (tenant_id, id)`; SeaORM lets a column
    // carry one `unique_key`, so where that key contains the primary key (and is
    // therefore unique anyway) the relations pointing at it are its declaration.
    let referenced: BTreeSet<(String, BTreeSet<String>)> = entities
        .values()
        .flat_map(|shape| &shape.foreign_keys)
        .map(|key| {
            (
                key.references.clone(),
                key.pairs.iter().map(|(_, to)| to.clone()).collect(),
            )
        })
        .collect();

    for (table, db) in database {
        let Some(entity) = entities.get(table) else {
            continue;
        };
        let db_columns: BTreeSet<_> = db.columns.keys().collect();
        let entity_columns: BTreeSet<_> = entity.columns.keys().collect();
        for column in db_columns.difference(&entity_columns) {
            found.push(format!("{table}.{column}: a column the entity lacks"));
        }
        for column in entity_columns.difference(&db_columns) {
            found.push(format!(
                "{table}.{column}: an entity column the table lacks"
            ));
        }
        for (column, (entity_null, entity_kind)) in &entity.columns {
            let Some((db_null, db_kind)) = db.columns.get(column) else {
                continue;
            };
            if entity_null != db_null {
                found.push(format!(
                    "{table}.{column}: nullable {db_null} in the database, {entity_null} in the entity"
                ));
            }
            if !entity_kind.accepts(db_kind) {
                found.push(format!(
                    "{table}.{column}: {db_kind:?} on {backend:?}, but the entity declares {entity_kind:?}"
                ));
            }
        }
        for key in db.foreign_keys.difference(&entity.foreign_keys) {
            found.push(format!(
                "{table}: foreign key {key} has no belongs_to relation in the entity"
            ));
        }
        for key in entity.foreign_keys.difference(&db.foreign_keys) {
            found.push(format!(
                "{table}: the entity's relation {key} has no foreign key in the database (use skip_fk for a join-only relation)"
            ));
        }
        for key in db.unique_keys.difference(&entity.unique_keys) {
            let implied = key.is_superset(&entity.primary_key)
                && referenced.contains(&(table.clone(), key.clone()));
            if !implied {
                found.push(format!(
                    "{table}: unique key {key:?} is not declared in the entity (`unique` or `unique_key`)"
                ));
            }
        }
        for key in entity.unique_keys.difference(&db.unique_keys) {
            found.push(format!(
                "{table}: the entity declares unique key {key:?}, the database has no such key"
            ));
        }
    }
    found
}

async fn entities_match_the_migrated_schema(t: TestDb) {
    let backend = t.db_backend();
    // The owner sees every table; the runtime role only what it is granted.
    let database = database_shapes(&t.owner).await;
    assert!(
        database.contains_key("teams") && !database["teams"].foreign_keys.is_empty(),
        "the catalogue queries found the migrated tables and their foreign keys"
    );
    let found = differences(backend, &database, &entity_shapes(backend));
    assert!(
        found.is_empty(),
        "the entities and the migrated {backend:?} schema differ:\n  {}",
        found.join("\n  ")
    );
}

/// The comparison itself can fail: entities that each miss one thing the migrated
/// database has are reported, one line per difference.
async fn each_kind_of_drift_is_reported(t: TestDb) {
    let backend = t.db_backend();
    let database = database_shapes(&t.owner).await;
    let mut entities = entity_shapes(backend);
    let teams = entities.get_mut("teams").expect("teams entity");
    teams.foreign_keys.retain(|key| key.references != "teams");
    teams.unique_keys.retain(|key| !key.contains("name"));
    teams.columns.get_mut("parent_id").expect("column").1 = ColumnKind::new("text", None);
    teams.columns.get_mut("name").expect("column").0 = true;
    entities
        .get_mut("memberships")
        .expect("memberships entity")
        .columns
        .get_mut("role")
        .expect("column")
        .1 = ColumnKind::new("text", Some(17));
    entities.remove("policies");

    let found = differences(backend, &database, &entities);
    let expected = [
        "table policies has no entity",
        "memberships.role: ColumnKind { family: \"text\", length: Some(16) }",
        "teams.name: nullable false in the database, true in the entity",
        "teams.parent_id: ColumnKind { family: \"uuid\"",
        "teams: foreign key (parent_id, tenant_id) -> teams (id, tenant_id)",
        "teams: unique key {\"name\", \"tenant_id\"} is not declared",
    ];
    for line in expected {
        assert!(
            found.iter().any(|f| f.starts_with(line)),
            "{line:?} is reported among {found:#?}"
        );
    }
    assert_eq!(found.len(), expected.len(), "nothing else: {found:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_snapshot_in_docs_is_current() {
    run_case(Backend::Postgres, "schema_snapshot", Start::Migrated, |t| async move {
        let current = migration::snapshot::markdown(&t.db).await.expect("renders");
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/schema.md");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        if committed != current {
            let first_difference = committed
                .lines()
                .zip(current.lines())
                .position(|(a, b)| a != b)
                .map_or_else(|| "length".to_owned(), |line| format!("line {}", line + 1));
            panic!(
                "docs/schema.md is out of date (first difference at {first_difference}). Regenerate it:\n  \
                 cargo run -p migration -- -u postgres://postgres@127.0.0.1:5432/<a migrated database> snapshot > docs/schema.md"
            );
        }
    })
    .await;
}
