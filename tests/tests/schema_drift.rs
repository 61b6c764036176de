//! The committed schema snapshot and the entities both agree with what the
//! migrations build.

use entity::access::{
    permissions, policies, role_assignments, role_inheritance, role_permissions, roles,
};
use entity::audit::{audit_event_types, audit_logs};
use entity::identity::{refresh_tokens, sessions, sign_in_throttles, user_profiles, users};
use entity::tenancy::{invitations, memberships, team_members, teams, tenants};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, IdenStatic, Iterable, Statement,
};
use std::collections::BTreeMap;
use tests::{Backend, Start, TestDb, run_case};

tests::backend_tests!(Migrated: entities_match_the_migrated_schema);

/// (column, nullable) per table, as the database has them.
async fn database_columns(db: &DatabaseConnection) -> BTreeMap<String, BTreeMap<String, bool>> {
    let backend = db.get_database_backend();
    let sql = match backend {
        sea_orm::DbBackend::Sqlite => {
            "SELECT m.name, p.name, CASE WHEN p.\"notnull\" = 1 OR p.pk > 0 THEN 0 ELSE 1 END
               FROM sqlite_master m JOIN pragma_table_xinfo(m.name) p
              WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND p.hidden = 0"
        }
        sea_orm::DbBackend::Postgres => {
            "SELECT table_name::text, column_name::text, CASE WHEN is_nullable = 'YES' THEN 1 ELSE 0 END
               FROM information_schema.columns WHERE table_schema = current_schema() AND is_generated = 'NEVER'"
        }
        _ => {
            "SELECT table_name, column_name, CASE WHEN is_nullable = 'YES' THEN 1 ELSE 0 END
               FROM information_schema.columns WHERE table_schema = DATABASE() AND extra NOT LIKE '%GENERATED%'"
        }
    };
    let rows = db
        .query_all_raw(Statement::from_string(backend, sql.to_owned()))
        .await
        .expect("catalogue");
    let mut out: BTreeMap<String, BTreeMap<String, bool>> = BTreeMap::new();
    for row in rows {
        let table: String = row.try_get_by_index(0).expect("table");
        let column: String = row.try_get_by_index(1).expect("column");
        let nullable = row
            .try_get_by_index::<i64>(2)
            .or_else(|_| row.try_get_by_index::<i32>(2).map(i64::from))
            .expect("flag")
            == 1;
        out.entry(table).or_default().insert(column, nullable);
    }
    for bookkeeping in ["seaql_migrations", "migration_checksums", "migration_lock"] {
        out.remove(bookkeeping);
    }
    out
}

fn entity_columns<E: EntityTrait>() -> (String, BTreeMap<String, bool>) {
    let columns = E::Column::iter()
        .map(|c| (c.as_str().to_owned(), c.def().is_null()))
        .collect();
    (E::default().table_name().to_owned(), columns)
}

async fn entities_match_the_migrated_schema(t: TestDb) {
    let entities: BTreeMap<String, BTreeMap<String, bool>> = [
        entity_columns::<tenants::Entity>(),
        entity_columns::<memberships::Entity>(),
        entity_columns::<teams::Entity>(),
        entity_columns::<team_members::Entity>(),
        entity_columns::<invitations::Entity>(),
        entity_columns::<users::Entity>(),
        entity_columns::<user_profiles::Entity>(),
        entity_columns::<sessions::Entity>(),
        entity_columns::<refresh_tokens::Entity>(),
        entity_columns::<sign_in_throttles::Entity>(),
        entity_columns::<permissions::Entity>(),
        entity_columns::<roles::Entity>(),
        entity_columns::<role_inheritance::Entity>(),
        entity_columns::<role_permissions::Entity>(),
        entity_columns::<role_assignments::Entity>(),
        entity_columns::<policies::Entity>(),
        entity_columns::<audit_event_types::Entity>(),
        entity_columns::<audit_logs::Entity>(),
    ]
    .into_iter()
    .collect();
    let mut database = database_columns(&t.db).await;
    // Written by migrations and the CLI, read through the migration crate, by design.
    database.remove("database_metadata");
    assert_eq!(
        database.keys().collect::<Vec<_>>(),
        entities.keys().collect::<Vec<_>>(),
        "every table has an entity and every entity a table"
    );
    for (table, columns) in &entities {
        assert_eq!(
            &database[table], columns,
            "{table}: column names and nullability"
        );
    }
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
