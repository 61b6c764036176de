//! `tenants.slug` may hold only what `service::input::Slug` accepts: lowercase ASCII
//! letters, digits and `-`, neither first nor last (its length, 3 to 63, is checked
//! since the table was created). Slugs name PostgreSQL schemas and databases of
//! isolated tenants, so the database refuses anything else whoever writes the row.
//!
//! - PostgreSQL: a `CHECK` with a regular expression.
//! - MariaDB: the same `CHECK`; `(?-i)` makes `REGEXP` case-sensitive whatever the
//!   column's collation, and the second test catches a trailing newline, which `$`
//!   would let through.
//! - SQLite cannot add a `CHECK` to an existing table without rebuilding it, and
//!   rebuilding `tenants` means rebuilding every table that references it. Two triggers
//!   (insert, update of `slug`) refuse the same values with the same constraint name
//!   in the message; `GLOB` is case-sensitive.
//!
//! Existing rows are checked too: the migration fails, and changes nothing, while a
//! tenant has a slug the rule refuses.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

const CONSTRAINT: &str = "ck_tenants_slug_format";

const POSTGRES_RULE: &str = "slug ~ '^[a-z0-9]([a-z0-9-]*[a-z0-9])?$'";

const MARIADB_RULE: &str =
    "slug REGEXP '(?-i)^[a-z0-9]([a-z0-9-]*[a-z0-9])?$' AND slug NOT REGEXP '(?-i)[^a-z0-9-]'";

/// `NEW.slug` passes: no character outside `[a-z0-9-]`, no `-` at either end.
const SQLITE_RULE: &str =
    "NEW.slug NOT GLOB '*[^a-z0-9-]*' AND NEW.slug NOT GLOB '-*' AND NEW.slug NOT GLOB '*-'";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                db.execute_unprepared(&format!(
                    "ALTER TABLE tenants ADD CONSTRAINT {CONSTRAINT} CHECK ({POSTGRES_RULE})"
                ))
                .await?;
            }
            DbBackend::MySql => {
                db.execute_unprepared(&format!(
                    "ALTER TABLE tenants ADD CONSTRAINT {CONSTRAINT} CHECK ({MARIADB_RULE})"
                ))
                .await?;
            }
            _ => {
                for (suffix, event) in [("insert", "INSERT"), ("update", "UPDATE OF slug")] {
                    db.execute_unprepared(&format!(
                        "CREATE TRIGGER {CONSTRAINT}_{suffix} BEFORE {event} ON tenants
                         WHEN NOT ({SQLITE_RULE})
                         BEGIN
                           SELECT RAISE(ABORT, 'CHECK constraint failed: {CONSTRAINT}');
                         END"
                    ))
                    .await?;
                }
                // Existing rows: rewriting a bad slug with itself fires the update trigger.
                db.execute_unprepared(&format!(
                    "UPDATE tenants SET slug = slug WHERE NOT ({})",
                    SQLITE_RULE.replace("NEW.", "")
                ))
                .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DbBackend::Postgres | DbBackend::MySql => {
                db.execute_unprepared(&format!("ALTER TABLE tenants DROP CONSTRAINT {CONSTRAINT}"))
                    .await?;
            }
            _ => {
                for suffix in ["insert", "update"] {
                    db.execute_unprepared(&format!("DROP TRIGGER {CONSTRAINT}_{suffix}"))
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// On SQLite the triggers and the check of existing rows are one unit: without a
    /// transaction a bad row would leave the triggers behind and the migration
    /// unrecorded. (PostgreSQL runs every migration in one anyway; MariaDB commits DDL
    /// implicitly, and its single statement either applies or fails whole.)
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
