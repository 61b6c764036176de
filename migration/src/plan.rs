//! Migrations rendered to SQL without touching a database: each migration runs against
//! a connection that records what it would execute. This is what `--dry-run` prints and
//! what checksums are computed from, so a migration written in Rust is covered as
//! well as one written in SQL.

use sea_orm::{DbBackend, DbErr, MockDatabase, MockExecResult};
use sea_orm_migration::{MigrationTrait, SchemaManager};
use sha2::{Digest, Sha256};

/// One migration's statements for one backend, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub name: String,
    pub statements: Vec<String>,
}

impl Rendered {
    /// The statements as a script psql or mysql can run.
    pub fn script(&self) -> String {
        let mut out = String::new();
        for statement in &self.statements {
            out.push_str(statement.trim_end().trim_end_matches(';'));
            out.push_str(";\n");
        }
        out
    }

    /// SHA-256 (hex) of the script: changes whenever the SQL would.
    pub fn checksum(&self) -> String {
        hex::encode(Sha256::digest(self.script().as_bytes()))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Up,
    Down,
}

/// Renders one migration in one direction for `backend`.
///
/// SeaORM's mock connection serves as the recorder: it accepts every statement and
/// keeps a log. (It is used for nothing else; the tests run on real databases.)
pub async fn render(
    backend: DbBackend,
    migration: &dyn MigrationTrait,
    direction: Direction,
) -> Result<Rendered, DbErr> {
    const ENOUGH: usize = 10_000;
    let connection = MockDatabase::new(backend)
        .append_exec_results(std::iter::repeat_n(
            MockExecResult {
                last_insert_id: 0,
                rows_affected: 0,
            },
            ENOUGH,
        ))
        // A migration that reads (to rewrite existing rows) reads nothing here: its
        // SELECT is recorded, the work it would do per row depends on the data.
        .append_query_results(std::iter::repeat_n(
            Vec::<std::collections::BTreeMap<&str, sea_orm::Value>>::new(),
            ENOUGH,
        ))
        .into_connection();
    {
        let manager = SchemaManager::new(&connection);
        match direction {
            Direction::Up => migration.up(&manager).await?,
            Direction::Down => migration.down(&manager).await?,
        }
    }
    let statements = connection
        .into_transaction_log()
        .iter()
        .flat_map(|transaction| transaction.statements().iter().map(ToString::to_string))
        .collect();
    Ok(Rendered {
        name: migration.name().to_owned(),
        statements,
    })
}

/// Every migration rendered up, in order: the checksums of the code as it is now.
pub async fn render_all_up(backend: DbBackend) -> Result<Vec<Rendered>, DbErr> {
    use sea_orm_migration::MigratorTrait;
    let mut out = Vec::new();
    for migration in crate::Migrator::migrations() {
        out.push(render(backend, migration.as_ref(), Direction::Up).await?);
    }
    Ok(out)
}
