//! What `--reset` empties, what the seeder says about it before asking, and what
//! `--no-reset` refuses.

use crate::profile::Profile;
use crate::{SeedError, SeedOptions};
use entity::tenancy::tenants;
use migration::environment::AppEnv;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};

/// The tables the reset empties, children first. The audit catalogue, migration
/// bookkeeping and environment marker are kept.
pub const RESET_TABLES: [&str; 22] = [
    "audit_logs",
    "api_keys",
    "session_anomaly_reports",
    "mfa_challenges",
    "passkeys",
    "mfa_backup_codes",
    "mfa_factors",
    "role_assignments",
    "policies",
    "invitations",
    "team_members",
    "teams",
    "role_inheritance",
    "role_permissions",
    "roles",
    "permissions",
    "refresh_tokens",
    "sessions",
    "memberships",
    "user_profiles",
    "users",
    "tenants",
];

/// What a run is about to change, for the confirmation question: every table the
/// reset empties and how many rows it holds now.
pub(crate) async fn describe_changes(
    db: &DatabaseConnection,
    options: &SeedOptions,
    env: AppEnv,
) -> Result<String, SeedError> {
    let profile = options.profile.as_str();
    if !options.reset {
        return Ok(format!(
            "The seeder will add the {profile} profile's rows to the {env} database (--no-reset: it deletes nothing).\n"
        ));
    }
    let mut text = format!(
        "The seeder will DELETE EVERY ROW of these tables of the {env} database, then load the {profile} profile:\n"
    );
    for (table, rows) in reset_counts(db).await? {
        text.push_str(&format!("  {table:<18} {rows} row(s)\n"));
    }
    text.push_str(
        "(kept: the audit event catalogue, migration bookkeeping and the environment marker)\n",
    );
    Ok(text)
}

async fn reset_counts(db: &DatabaseConnection) -> Result<Vec<(&'static str, i64)>, DbErr> {
    use sea_orm::Statement;
    let backend = db.get_database_backend();
    let mut out = Vec::new();
    for table in RESET_TABLES {
        let row = db
            .query_one_raw(Statement::from_string(
                backend,
                format!("SELECT COUNT(*) FROM {table}"),
            ))
            .await?;
        let rows = match row {
            Some(row) => row
                .try_get_by_index::<i64>(0)
                .or_else(|_| row.try_get_by_index::<i32>(0).map(i64::from))?,
            None => 0,
        };
        out.push((table, rows));
    }
    Ok(out)
}

/// Empties every table of [`RESET_TABLES`], in its order.
pub(crate) async fn reset<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    use entity::tenancy::teams;
    use sea_orm::sea_query::{Alias, Expr, Query};
    for table in RESET_TABLES {
        if table == "teams" {
            // MariaDB checks the parent key row by row: detach the tree before deleting it.
            teams::Entity::update_many()
                .col_expr(
                    teams::Column::ParentId,
                    Expr::value(Option::<uuid::Uuid>::None),
                )
                .exec(db)
                .await?;
        }
        db.execute(&Query::delete().from_table(Alias::new(table)).to_owned())
            .await?;
    }
    Ok(())
}

pub(crate) async fn refuse_if_seeded<C: ConnectionTrait>(
    db: &C,
    profile: &Profile,
) -> Result<(), SeedError> {
    let slugs: Vec<&str> = profile.tenants.iter().map(|t| t.slug).collect();
    let existing: Vec<String> = tenants::Entity::find()
        .filter(tenants::Column::Slug.is_in(slugs))
        .all(db)
        .await?
        .into_iter()
        .map(|t| t.slug)
        .collect();
    if existing.is_empty() {
        Ok(())
    } else {
        Err(SeedError::AlreadySeeded(existing.join(", ")))
    }
}
