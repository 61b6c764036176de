//! Reading a database back: its schema as comparable text, its data as JSON.

use entity::access::{
    permissions, policies, role_assignments, role_inheritance, role_permissions, roles,
};
use entity::agents::{agent_results, agent_tasks};
use entity::audit::{audit_chain_heads, audit_logs};
use entity::billing::{
    billing_plans, billing_subscriptions, payment_customers, payment_intents, payment_methods,
    usage_records,
};
use entity::compliance::{
    consent_records, data_residency_log, deletion_requests, privacy_policies, security_incidents,
    subject_keys,
};
use entity::identity::{
    mfa_backup_codes, mfa_factors, passkeys, refresh_tokens, sessions, user_profiles, users,
};
use entity::rental::properties;
use entity::tenancy::{invitations, memberships, team_members, teams, tenants};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, PaginatorTrait, QueryOrder,
    Statement,
};
use serde_json::Value;

/// Every table, column, index and constraint, one line each, sorted: two databases
/// with equal dumps have equal schemas. On PostgreSQL also what guards them: row-level
/// security flags and policies, functions (with their security and settings), and the
/// privileges of the database roles (default privileges included); on MariaDB the
/// columns of each foreign key.
pub async fn schema(db: &DatabaseConnection) -> Vec<String> {
    let backend = db.get_database_backend();
    let queries: &[&str] = match backend {
        DbBackend::Postgres => &[
            "SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || \
             coalesce('(' || character_maximum_length || ')', '') || ' null=' || is_nullable || \
             ' default=' || coalesce(column_default, '') AS line \
             FROM information_schema.columns WHERE table_schema = 'public'",
            "SELECT 'index ' || indexdef AS line FROM pg_indexes WHERE schemaname = 'public'",
            "SELECT 'constraint ' || rel.relname || '.' || con.conname || ' ' || pg_get_constraintdef(con.oid) AS line \
             FROM pg_constraint con JOIN pg_class rel ON rel.oid = con.conrelid \
             JOIN pg_namespace ns ON ns.oid = rel.relnamespace WHERE ns.nspname = 'public'",
            "SELECT 'rls ' || c.relname || ' enabled=' || c.relrowsecurity || ' forced=' || c.relforcerowsecurity AS line \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND c.relkind = 'r'",
            "SELECT 'policy ' || tablename || '.' || policyname || ' ' || cmd || ' to ' || array_to_string(roles, ',') || \
             ' using ' || coalesce(qual, '-') || ' check ' || coalesce(with_check, '-') AS line \
             FROM pg_policies WHERE schemaname = 'public'",
            "SELECT 'function ' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ') returns ' || \
             pg_get_function_result(p.oid) || ' definer=' || p.prosecdef || ' config=' || \
             coalesce(array_to_string(p.proconfig, ','), '-') || ' acl=' || coalesce(array_to_string(p.proacl, ','), '-') || \
             ' body=' || md5(p.prosrc) AS line \
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'",
            "SELECT 'grant ' || table_name || ' ' || grantee || ' ' || privilege_type AS line \
             FROM information_schema.role_table_grants \
             WHERE table_schema = 'public' AND grantee IN ('app_service', 'read_only', 'compliance_officer', 'data_processor', 'admin')",
            "SELECT 'column grant ' || table_name || '.' || column_name || ' ' || grantee || ' ' || privilege_type AS line \
             FROM information_schema.column_privileges \
             WHERE table_schema = 'public' AND grantee IN ('app_service', 'read_only', 'compliance_officer', 'data_processor', 'admin') \
               AND (table_name, grantee, privilege_type) NOT IN \
                   (SELECT table_name, grantee, privilege_type FROM information_schema.role_table_grants WHERE table_schema = 'public')",
            "SELECT 'default acl ' || d.defaclobjtype::text || ' ' || array_to_string(d.defaclacl, ',') AS line \
             FROM pg_default_acl d JOIN pg_namespace n ON n.oid = d.defaclnamespace WHERE n.nspname = 'public'",
        ],
        DbBackend::MySql => &[
            "SELECT CONCAT('column ', table_name, '.', column_name, ' ', column_type, ' null=', is_nullable, \
             ' default=', COALESCE(column_default, '')) AS line \
             FROM information_schema.columns WHERE table_schema = DATABASE()",
            "SELECT CONCAT('index ', table_name, '.', index_name, ' unique=', 1 - non_unique, ' ', \
             GROUP_CONCAT(column_name ORDER BY seq_in_index)) AS line \
             FROM information_schema.statistics WHERE table_schema = DATABASE() \
             GROUP BY table_name, index_name, non_unique",
            "SELECT CONCAT('fk ', r.table_name, '.', r.constraint_name, ' (', \
             GROUP_CONCAT(k.column_name ORDER BY k.ordinal_position), ') -> ', r.referenced_table_name, ' (', \
             GROUP_CONCAT(k.referenced_column_name ORDER BY k.ordinal_position), ') ', r.delete_rule) AS line \
             FROM information_schema.referential_constraints r \
             JOIN information_schema.key_column_usage k ON k.constraint_schema = r.constraint_schema \
              AND k.table_name = r.table_name AND k.constraint_name = r.constraint_name \
             WHERE r.constraint_schema = DATABASE() \
             GROUP BY r.table_name, r.constraint_name, r.referenced_table_name, r.delete_rule",
            "SELECT CONCAT('check ', table_name, '.', constraint_name, ' ', check_clause) AS line \
             FROM information_schema.check_constraints WHERE constraint_schema = DATABASE()",
        ],
        _ => &[
            "SELECT type || ' ' || name || ' ' || coalesce(sql, '') AS line FROM sqlite_master \
                WHERE name NOT LIKE 'sqlite_%'",
        ],
    };
    let mut lines = Vec::new();
    for sql in queries {
        let rows = db
            .query_all_raw(Statement::from_string(backend, (*sql).to_owned()))
            .await
            .expect("catalogue queries succeed");
        for row in rows {
            lines.push(row.try_get::<String>("", "line").expect("a text line"));
        }
    }
    lines.sort();
    lines
}

/// The application tables (everything but sea-orm's bookkeeping), by name.
pub async fn table_names(db: &DatabaseConnection) -> Vec<String> {
    schema(db)
        .await
        .iter()
        .filter_map(|line| table_of(line))
        .filter(|name| name != "seaql_migrations")
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

fn table_of(line: &str) -> Option<String> {
    if let Some(rest) = line.strip_prefix("column ") {
        return rest.split('.').next().map(str::to_owned);
    }
    if let Some(rest) = line.strip_prefix("table ") {
        return rest.split(' ').next().map(str::to_owned);
    }
    None
}

async fn dump<E: EntityTrait>(db: &DatabaseConnection, order: E::Column) -> Vec<Value> {
    E::find()
        .order_by_asc(order)
        .into_json()
        .all(db)
        .await
        .expect("dumping a table succeeds")
}

/// All rows of every table operations write, as JSON, each in primary-key order.
/// (The audit catalogue belongs to the migrations: its `created_at` is migration time.)
pub async fn data(db: &DatabaseConnection) -> Vec<(&'static str, Vec<Value>)> {
    vec![
        (
            "tenants",
            dump::<tenants::Entity>(db, tenants::Column::Id).await,
        ),
        ("users", dump::<users::Entity>(db, users::Column::Id).await),
        (
            "user_profiles",
            dump::<user_profiles::Entity>(db, user_profiles::Column::Id).await,
        ),
        (
            "memberships",
            dump::<memberships::Entity>(db, memberships::Column::Id).await,
        ),
        (
            "sessions",
            dump::<sessions::Entity>(db, sessions::Column::Id).await,
        ),
        (
            "refresh_tokens",
            dump::<refresh_tokens::Entity>(db, refresh_tokens::Column::Id).await,
        ),
        (
            "permissions",
            dump::<permissions::Entity>(db, permissions::Column::Id).await,
        ),
        ("roles", dump::<roles::Entity>(db, roles::Column::Id).await),
        (
            "role_permissions",
            dump2::<role_permissions::Entity>(
                db,
                role_permissions::Column::RoleId,
                role_permissions::Column::PermissionId,
            )
            .await,
        ),
        (
            "role_inheritance",
            dump2::<role_inheritance::Entity>(
                db,
                role_inheritance::Column::RoleId,
                role_inheritance::Column::ParentRoleId,
            )
            .await,
        ),
        ("teams", dump::<teams::Entity>(db, teams::Column::Id).await),
        (
            "team_members",
            dump2::<team_members::Entity>(
                db,
                team_members::Column::TeamId,
                team_members::Column::UserId,
            )
            .await,
        ),
        (
            "role_assignments",
            dump::<role_assignments::Entity>(db, role_assignments::Column::Id).await,
        ),
        (
            "policies",
            dump::<policies::Entity>(db, policies::Column::Id).await,
        ),
        (
            "invitations",
            dump::<invitations::Entity>(db, invitations::Column::Id).await,
        ),
        ("mfa_factors", dump_mfa_factors(db).await),
        (
            "mfa_backup_codes",
            dump::<mfa_backup_codes::Entity>(db, mfa_backup_codes::Column::Id).await,
        ),
        ("passkeys", dump_passkeys(db).await),
        (
            "audit_logs",
            dump::<audit_logs::Entity>(db, audit_logs::Column::Id).await,
        ),
        (
            "audit_chain_heads",
            dump::<audit_chain_heads::Entity>(db, audit_chain_heads::Column::ChainId).await,
        ),
        (
            "privacy_policies",
            dump::<privacy_policies::Entity>(db, privacy_policies::Column::Id).await,
        ),
        ("consent_records", dump_consent_records(db).await),
        (
            "deletion_requests",
            dump::<deletion_requests::Entity>(db, deletion_requests::Column::Id).await,
        ),
        ("subject_keys", dump_subject_keys(db).await),
        (
            "data_residency_log",
            dump::<data_residency_log::Entity>(db, data_residency_log::Column::Id).await,
        ),
        (
            "security_incidents",
            dump::<security_incidents::Entity>(db, security_incidents::Column::Id).await,
        ),
        (
            "agent_tasks",
            dump::<agent_tasks::Entity>(db, agent_tasks::Column::Id).await,
        ),
        (
            "agent_results",
            dump::<agent_results::Entity>(db, agent_results::Column::Id).await,
        ),
        (
            "properties",
            dump::<properties::Entity>(db, properties::Column::Id).await,
        ),
        (
            "billing_plans",
            dump::<billing_plans::Entity>(db, billing_plans::Column::Id).await,
        ),
        (
            "billing_subscriptions",
            dump::<billing_subscriptions::Entity>(db, billing_subscriptions::Column::Id).await,
        ),
        (
            "usage_records",
            dump::<usage_records::Entity>(db, usage_records::Column::Id).await,
        ),
        (
            "payment_customers",
            dump::<payment_customers::Entity>(db, payment_customers::Column::Id).await,
        ),
        (
            "payment_methods",
            dump::<payment_methods::Entity>(db, payment_methods::Column::Id).await,
        ),
        (
            "payment_intents",
            dump::<payment_intents::Entity>(db, payment_intents::Column::Id).await,
        ),
        (
            "records",
            dump_sealed::<entity::records::records::Entity>(
                db,
                entity::records::records::Column::Id,
                "records",
            )
            .await,
        ),
        (
            "record_versions",
            dump_sealed::<entity::records::record_versions::Entity>(
                db,
                entity::records::record_versions::Column::Id,
                "record_versions",
            )
            .await,
        ),
        (
            "access_grants",
            dump::<entity::records::access_grants::Entity>(
                db,
                entity::records::access_grants::Column::Id,
            )
            .await,
        ),
    ]
}

/// The rows of a table with a sealed `body` column, each body replaced by the text it
/// opens to (sealing draws a fresh nonce every time). Opened with the development key
/// or the tests' other one ([`crate::fixtures::field_keys`]).
async fn dump_sealed<E: EntityTrait>(
    db: &DatabaseConnection,
    order: E::Column,
    table: &'static str,
) -> Vec<Value> {
    let (development, other) = (
        service::crypto::KeyRing::development(),
        crate::fixtures::field_keys(),
    );
    dump::<E>(db, order)
        .await
        .into_iter()
        .map(|mut row| {
            let id = row["id"].as_str().expect("a uuid id").to_owned();
            // SeaORM renders bytes as an array of numbers.
            let sealed: Vec<u8> = row["body"]
                .as_array()
                .unwrap_or_else(|| panic!("{table}.body is not bytes"))
                .iter()
                .map(|b| u8::try_from(b.as_u64().expect("a byte")).expect("a byte"))
                .collect();
            let slot = service::crypto::FieldSlot {
                table,
                column: "body",
                row: &id,
            };
            let opened = development
                .open(slot, &sealed)
                .or_else(|_| other.open(slot, &sealed))
                .expect("a sealed body opens with one of the tests' keys");
            row["body"] = Value::String(String::from_utf8(opened.to_vec()).expect("UTF-8"));
            row
        })
        .collect()
}

/// `consent_records` without the sealed address (its nonce is random): whether one is
/// held.
async fn dump_consent_records(db: &DatabaseConnection) -> Vec<Value> {
    consent_records::Entity::find()
        .order_by_asc(consent_records::Column::Id)
        .all(db)
        .await
        .expect("dumping a table succeeds")
        .into_iter()
        .map(|c| {
            serde_json::json!({
                "id": c.id,
                "tenant_id": c.tenant_id,
                "user_id": c.user_id,
                "seq": c.seq,
                "purpose": c.purpose,
                "policy_version": c.policy_version,
                "granted": c.granted,
                "source": c.source,
                "ip_address_held": c.ip_address.is_some(),
                "recorded_at": c.recorded_at,
            })
        })
        .collect()
}

/// `subject_keys` with each key opened (the sealing nonce is random; the key is not).
async fn dump_subject_keys(db: &DatabaseConnection) -> Vec<Value> {
    let (development, other) = (
        service::crypto::KeyRing::development(),
        crate::fixtures::field_keys(),
    );
    subject_keys::Entity::find()
        .order_by_asc(subject_keys::Column::UserId)
        .all(db)
        .await
        .expect("dumping a table succeeds")
        .into_iter()
        .map(|k| {
            let row = k.user_id.to_string();
            let slot = service::crypto::FieldSlot {
                table: "subject_keys",
                column: "wrapped_key",
                row: &row,
            };
            let opened = development
                .open(slot, k.wrapped_key.expose())
                .or_else(|_| other.open(slot, k.wrapped_key.expose()))
                .expect("a test subject key opens with one of the tests' keys");
            serde_json::json!({
                "user_id": k.user_id,
                "key": hex::encode(&*opened),
                "created_at": k.created_at,
            })
        })
        .collect()
}

/// `passkeys` with its byte columns in hex: JSON has no bytes, and the backends'
/// drivers would each render them their own way.
async fn dump_passkeys(db: &DatabaseConnection) -> Vec<Value> {
    passkeys::Entity::find()
        .order_by_asc(passkeys::Column::Id)
        .all(db)
        .await
        .expect("dumping a table succeeds")
        .into_iter()
        .map(|p| {
            serde_json::json!({
                "id": p.id,
                "user_id": p.user_id,
                "credential_id": hex::encode(&p.credential_id),
                "public_key": hex::encode(p.public_key.expose()),
                "algorithm": p.algorithm,
                "sign_count": p.sign_count,
                "aaguid": p.aaguid,
                "transports": p.transports,
                "backup_eligible": p.backup_eligible,
                "backup_state": p.backup_state,
                "name": p.name,
                "created_at": p.created_at,
                "last_used_at": p.last_used_at,
                "disabled_at": p.disabled_at,
                "disabled_reason": p.disabled_reason,
            })
        })
        .collect()
}

/// `mfa_factors` with each sealed secret replaced by what it opens to (hex): sealing
/// draws a fresh nonce every time, so equal data has different sealed bytes. Opened
/// with the development key or the tests' other one ([`crate::fixtures::field_keys`]).
async fn dump_mfa_factors(db: &DatabaseConnection) -> Vec<Value> {
    let (development, other) = (
        service::crypto::KeyRing::development(),
        crate::fixtures::field_keys(),
    );
    mfa_factors::Entity::find()
        .order_by_asc(mfa_factors::Column::Id)
        .all(db)
        .await
        .expect("dumping a table succeeds")
        .into_iter()
        .map(|factor| {
            let row = factor.id.to_string();
            let slot = service::crypto::FieldSlot {
                table: "mfa_factors",
                column: "secret",
                row: &row,
            };
            let opened = development
                .open(slot, factor.secret.expose())
                .or_else(|_| other.open(slot, factor.secret.expose()))
                .expect("a test secret opens with one of the tests' keys");
            serde_json::json!({
                "id": factor.id,
                "user_id": factor.user_id,
                "kind": factor.kind,
                "name": factor.name,
                "secret_opened": hex::encode(&*opened),
                "algorithm": factor.algorithm,
                "digits": factor.digits,
                "period": factor.period,
                "confirmed_at": factor.confirmed_at,
                "last_used_step": factor.last_used_step,
                "created_at": factor.created_at,
                "updated_at": factor.updated_at,
            })
        })
        .collect()
}

async fn dump2<E: EntityTrait>(
    db: &DatabaseConnection,
    first: E::Column,
    second: E::Column,
) -> Vec<Value> {
    E::find()
        .order_by_asc(first)
        .order_by_asc(second)
        .into_json()
        .all(db)
        .await
        .expect("dumping a table succeeds")
}

/// Row counts of the tables operations write, to assert that a refused call wrote nothing.
pub async fn row_counts(db: &DatabaseConnection) -> Vec<(&'static str, u64)> {
    vec![
        (
            "tenants",
            tenants::Entity::find().count(db).await.expect("count"),
        ),
        (
            "users",
            users::Entity::find().count(db).await.expect("count"),
        ),
        (
            "user_profiles",
            user_profiles::Entity::find()
                .count(db)
                .await
                .expect("count"),
        ),
        (
            "memberships",
            memberships::Entity::find().count(db).await.expect("count"),
        ),
        (
            "sessions",
            sessions::Entity::find().count(db).await.expect("count"),
        ),
        (
            "refresh_tokens",
            refresh_tokens::Entity::find()
                .count(db)
                .await
                .expect("count"),
        ),
        (
            "permissions",
            permissions::Entity::find().count(db).await.expect("count"),
        ),
        (
            "roles",
            roles::Entity::find().count(db).await.expect("count"),
        ),
        (
            "role_permissions",
            role_permissions::Entity::find()
                .count(db)
                .await
                .expect("count"),
        ),
        (
            "role_inheritance",
            role_inheritance::Entity::find()
                .count(db)
                .await
                .expect("count"),
        ),
        (
            "role_assignments",
            role_assignments::Entity::find()
                .count(db)
                .await
                .expect("count"),
        ),
        (
            "policies",
            policies::Entity::find().count(db).await.expect("count"),
        ),
        (
            "teams",
            teams::Entity::find().count(db).await.expect("count"),
        ),
        (
            "team_members",
            team_members::Entity::find().count(db).await.expect("count"),
        ),
        (
            "invitations",
            invitations::Entity::find().count(db).await.expect("count"),
        ),
        (
            "mfa_factors",
            mfa_factors::Entity::find().count(db).await.expect("count"),
        ),
        (
            "mfa_backup_codes",
            mfa_backup_codes::Entity::find()
                .count(db)
                .await
                .expect("count"),
        ),
        (
            "passkeys",
            passkeys::Entity::find().count(db).await.expect("count"),
        ),
        (
            "audit_logs",
            audit_logs::Entity::find().count(db).await.expect("count"),
        ),
    ]
}

/// Asserts two data dumps are equal, naming the first differing table and row
/// (a full dump is too long to read in a failure message).
#[track_caller]
pub fn assert_same_data(left: &[(&'static str, Vec<Value>)], right: &[(&'static str, Vec<Value>)]) {
    assert_eq!(left.len(), right.len(), "different table lists");
    for ((table, a), (_, b)) in left.iter().zip(right) {
        assert_eq!(
            a.len(),
            b.len(),
            "{table}: {} rows against {}",
            a.len(),
            b.len()
        );
        for (row_a, row_b) in a.iter().zip(b) {
            assert_eq!(row_a, row_b, "{table}: first differing row");
        }
    }
}

/// How many audit rows of one event type there are (read as whoever `db` is: the owner
/// sees them all).
pub async fn count_events(db: &DatabaseConnection, code: &str) -> u64 {
    use sea_orm::{ColumnTrait, QueryFilter};
    audit_logs::Entity::find()
        .filter(audit_logs::Column::EventType.eq(code))
        .count(db)
        .await
        .expect("count")
}

/// The tables `seeder --scale` writes, parent before child.
pub const SCALE_TABLES: [&str; 12] = [
    "tenants",
    "users",
    "user_profiles",
    "memberships",
    "sessions",
    "refresh_tokens",
    "audit_logs",
    "audit_chain_heads",
    "records",
    "access_grants",
    "agent_tasks",
    "usage_records",
];

/// Columns of [`SCALE_TABLES`] holding sealed values: a fresh random nonce each time they
/// are sealed, so two loads of the same rows differ there (compare what they open to).
pub const SCALE_SEALED_COLUMNS: [(&str, &str); 1] = [("records", "body")];

/// PostgreSQL's own checksum of a table: row count and the md5 of every row's text
/// form in primary-key order. Independent of any Rust rendering of the values.
/// Sealed columns ([`SCALE_SEALED_COLUMNS`]) are left out.
pub async fn postgres_table_checksum(db: &DatabaseConnection, table: &str) -> (i64, String) {
    let text = match SCALE_SEALED_COLUMNS.iter().find(|(t, _)| *t == table) {
        Some((_, column)) => format!("(to_jsonb(r) - '{column}')::text"),
        None => "r::text".to_owned(),
    };
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            format!(
                "SELECT count(*) AS n, md5(coalesce(string_agg({text}, E'\\n' ORDER BY {text}), '')) AS sum \
                 FROM \"{table}\" r"
            ),
        ))
        .await
        .expect("the checksum query runs")
        .expect("one row");
    (
        row.try_get("", "n").expect("a count"),
        row.try_get("", "sum").expect("a checksum"),
    )
}

/// A backend-neutral checksum of each table `--scale` writes: every row read back
/// through its entity, each column as the typed value the entity gives, rows sorted.
/// Equal on two backends when they hold the same data, whatever their column types.
/// Sealed columns ([`SCALE_SEALED_COLUMNS`]) are left out.
pub async fn scale_table_digests(db: &DatabaseConnection) -> Vec<(&'static str, usize, String)> {
    vec![
        ("tenants", digest::<tenants::Entity>(db).await),
        ("users", digest::<users::Entity>(db).await),
        ("user_profiles", digest::<user_profiles::Entity>(db).await),
        ("memberships", digest::<memberships::Entity>(db).await),
        ("sessions", digest::<sessions::Entity>(db).await),
        ("refresh_tokens", digest::<refresh_tokens::Entity>(db).await),
        ("audit_logs", digest::<audit_logs::Entity>(db).await),
        (
            "audit_chain_heads",
            digest::<audit_chain_heads::Entity>(db).await,
        ),
        (
            "records",
            digest::<entity::records::records::Entity>(db).await,
        ),
        (
            "access_grants",
            digest::<entity::records::access_grants::Entity>(db).await,
        ),
        ("agent_tasks", digest::<agent_tasks::Entity>(db).await),
        (
            "usage_records",
            digest::<entity::billing::usage_records::Entity>(db).await,
        ),
    ]
    .into_iter()
    .map(|(table, (rows, sum))| (table, rows, sum))
    .collect()
}

async fn digest<E: EntityTrait>(db: &DatabaseConnection) -> (usize, String) {
    use sea_orm::IdenStatic;
    use sea_orm::{Iterable, ModelTrait};
    use sha2::{Digest, Sha256};
    let table = E::default().table_name().to_owned();
    let sealed =
        |column: &E::Column| SCALE_SEALED_COLUMNS.contains(&(table.as_str(), column.as_str()));
    let models = E::find().all(db).await.expect("reading a table succeeds");
    let mut rows: Vec<String> = models
        .iter()
        .map(|model| {
            E::Column::iter()
                .filter(|column| !sealed(column))
                .map(|column| format!("{:?}", model.get(column)))
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect();
    rows.sort();
    let mut hasher = Sha256::new();
    for row in &rows {
        hasher.update(row.as_bytes());
        hasher.update(b"\n");
    }
    (rows.len(), hex::encode(hasher.finalize()))
}

/// How many rows `table` holds.
pub async fn count_rows(db: &DatabaseConnection, table: &str) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT COUNT(*) FROM {table}"),
        ))
        .await
        .expect("counts")
        .expect("one row");
    row.try_get_by_index::<i64>(0)
        .or_else(|_| row.try_get_by_index::<i32>(0).map(i64::from))
        .expect("a count")
}
