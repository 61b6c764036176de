//! Data export on request (GDPR art. 15 and 20, APPI art. 33): one JSON document with
//! every row held about a user, without secrets.
//!
//! [`EXPORT_SECTIONS`] names each table that holds a user id, the columns that hold
//! it, and the columns left out because they are secrets (hashes, sealed values, key
//! material). A test checks it against the schema's foreign keys to `users`, so a new
//! table that names a user cannot be forgotten here.

use super::deletion::require_role_beyond_row_security;
use super::subject_keys;
use crate::Result;
use crate::audit::{AuditEntry, AuditEvent, record};
use crate::deps::Deps;
use crate::error::ServiceError;
use crate::request::RequestMeta;
use entity::UserId;
use entity::access::{policies, role_assignments};
use entity::agents::agent_tasks;
use entity::audit::audit_logs;
use entity::audit::audit_logs::AuditOutcome;
use entity::billing::usage_records;
use entity::compliance::{
    consent_records, data_residency_log, deletion_requests, privacy_policies, security_incidents,
    subject_keys as keys,
};
use entity::identity::{
    api_keys, mfa_backup_codes, mfa_challenges, mfa_factors, passkeys, refresh_tokens,
    session_anomaly_reports, sessions, user_profiles, users,
};
use entity::records::{access_grants, record_versions, records};
use entity::tenancy::{invitations, memberships, team_members};
use sea_orm::sea_query::{Value, sea_value_to_json_value};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult, IdenStatic,
    Iterable, JsonValue, ModelTrait, QueryFilter, QueryOrder, Statement, TransactionSession,
    TransactionTrait,
};
use serde_json::{Map, Value as Json, json};
use std::str::FromStr;

/// The export's format name, first in every document.
pub const EXPORT_FORMAT: &str = "user-data-export-v1";

/// A table in the export: which of its columns name the user, and which are secrets.
#[derive(Clone, Copy, Debug)]
pub struct ExportSection {
    pub table: &'static str,
    /// A row is the user's if any of these holds their id.
    pub user_columns: &'static [&'static str],
    /// Never exported.
    pub secret_columns: &'static [&'static str],
}

const fn section(
    table: &'static str,
    user_columns: &'static [&'static str],
    secret_columns: &'static [&'static str],
) -> ExportSection {
    ExportSection {
        table,
        user_columns,
        secret_columns,
    }
}

/// Every table holding a user id, in the order the export lists them.
pub const EXPORT_SECTIONS: &[ExportSection] = &[
    section("users", &["id"], &["password_hash"]),
    section("user_profiles", &["user_id"], &[]),
    section("memberships", &["user_id"], &[]),
    section("team_members", &["user_id"], &[]),
    // Rows about the user; rows they merely granted or created are other people's.
    section("role_assignments", &["user_id"], &[]),
    section("policies", &["user_id"], &[]),
    section(
        "invitations",
        &["invited_by", "accepted_by"],
        &["token_hash"],
    ),
    section("sessions", &["user_id"], &["device_hash"]),
    // Found through the user's sessions; the token hashes stay behind.
    section("refresh_tokens", &[], &["token_hash", "reissue_sealed"]),
    section("session_anomaly_reports", &["user_id"], &[]),
    section("mfa_factors", &["user_id"], &["secret"]),
    section("mfa_backup_codes", &["user_id"], &["code_hash"]),
    section("mfa_challenges", &["user_id"], &["token_hash"]),
    section("passkeys", &["user_id"], &["credential_id", "public_key"]),
    section("api_keys", &["created_by"], &["key_hash"]),
    section("privacy_policies", &["published_by"], &[]),
    section("consent_records", &["user_id"], &[]),
    section("deletion_requests", &["user_id"], &[]),
    section("data_residency_log", &["requested_by"], &[]),
    // Also the incidents that list the user among the affected subjects; the list
    // itself names other people, so it stays behind.
    section(
        "security_incidents",
        &["reported_by"],
        &["affected_subjects"],
    ),
    section("subject_keys", &["user_id"], &["wrapped_key"]),
    // The tasks the user enqueued (their results are the agents' work, not about
    // the user).
    section("agent_tasks", &["created_by"], &[]),
    // The usage the user reported for their tenants.
    section("usage_records", &["recorded_by"], &[]),
    // Protected records about, by or changed by the user, and grants that concern
    // them. Bodies are sealed to their rows: the subject reads them in clear through
    // `records::read_record`, not in this dump.
    section(
        "records",
        &["subject_id", "author_id", "updated_by"],
        &["body"],
    ),
    section(
        "record_versions",
        &["written_by", "superseded_by"],
        &["body"],
    ),
    section(
        "access_grants",
        &["grantee_id", "subject_id", "granted_by", "revoked_by"],
        &[],
    ),
    section("audit_logs", &["actor_user_id"], &["prev_hash", "hash"]),
];

fn section_of(table: &str) -> &'static ExportSection {
    EXPORT_SECTIONS
        .iter()
        .find(|s| s.table == table)
        .expect("every exported table has a section")
}

/// A stored value as JSON: bytes as hex (sea-query's own conversion assumes text),
/// instants in RFC 3339.
fn value_json(value: Value) -> Json {
    match value {
        Value::Bytes(Some(bytes)) => Json::String(hex::encode(bytes)),
        Value::Bytes(None) => Json::Null,
        // RFC 3339, not the SQL literal sea-query would write.
        Value::ChronoDateTimeUtc(Some(at)) => {
            Json::String(at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        }
        Value::ChronoDateTimeWithTimeZone(Some(at)) => {
            Json::String(at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        }
        other => sea_value_to_json_value(&other),
    }
}

fn model_json<M: ModelTrait>(model: &M, secret_columns: &[&str]) -> Json {
    let mut object = Map::new();
    for column in <M::Entity as EntityTrait>::Column::iter() {
        let name = column.as_str();
        if secret_columns.contains(&name) {
            continue;
        }
        object.insert(name.to_owned(), value_json(model.get(column)));
    }
    Json::Object(object)
}

/// The rows of `E` whose user columns (by its section) hold `user`, or that `extra`
/// selects.
async fn rows<E, C>(
    db: &C,
    table: &str,
    user: UserId,
    extra: Option<Condition>,
) -> Result<Vec<E::Model>>
where
    E: EntityTrait,
    C: ConnectionTrait,
{
    let section = section_of(table);
    let mut condition = Condition::any();
    for name in section.user_columns {
        let column = E::Column::from_str(name).map_err(|_| {
            ServiceError::Crypto("an export section names a column its table lacks")
        })?;
        condition = condition.add(column.eq(user));
    }
    if let Some(extra) = extra {
        condition = condition.add(extra);
    }
    Ok(E::find().filter(condition).all(db).await?)
}

fn as_json<M: ModelTrait>(table: &str, models: &[M]) -> Json {
    let secret = section_of(table).secret_columns;
    Json::Array(models.iter().map(|m| model_json(m, secret)).collect())
}

/// Everything held about `user`, as one JSON document: `format`, `user_id`,
/// `exported_at`, and one array of rows per table of [`EXPORT_SECTIONS`] under
/// `tables`. Secrets are left out; a consent's client address is opened while the
/// user's data key exists. Records `data_export`.
///
/// An operator job (the request arrives through support, identity checked there): on
/// PostgreSQL it runs as a role that bypasses row-level security, so it sees every
/// tenant's rows about the user.
///
/// # Errors
/// `NotFound` for an unknown user; `Forbidden` for a PostgreSQL role behind row-level
/// security; `Crypto` if the user's data key does not open; `Db`.
pub async fn export_user_data<C>(
    db: &C,
    deps: &Deps,
    user: UserId,
    meta: &RequestMeta,
) -> Result<Json>
where
    C: ConnectionTrait + TransactionTrait,
{
    require_role_beyond_row_security(db).await?;
    let txn = crate::begin_write(db).await?;
    let account = users::Entity::find_by_id(user)
        .one(&txn)
        .await?
        .ok_or_else(|| ServiceError::not_found("user", user))?;
    let mut tables = Map::new();
    macro_rules! put {
        ($table:literal, $entity:path) => {{
            let found = rows::<$entity, _>(&txn, $table, user, None).await?;
            tables.insert($table.to_owned(), as_json($table, &found));
        }};
    }
    tables.insert(
        "users".to_owned(),
        as_json("users", std::slice::from_ref(&account)),
    );
    put!("user_profiles", user_profiles::Entity);
    put!("memberships", memberships::Entity);
    put!("team_members", team_members::Entity);
    put!("role_assignments", role_assignments::Entity);
    put!("policies", policies::Entity);
    let addressed = invitations::Column::Email.eq(account.email.clone());
    let found = rows::<invitations::Entity, _>(
        &txn,
        "invitations",
        user,
        Some(Condition::all().add(addressed)),
    )
    .await?;
    tables.insert("invitations".to_owned(), as_json("invitations", &found));
    let own_sessions = rows::<sessions::Entity, _>(&txn, "sessions", user, None).await?;
    let session_ids: Vec<_> = own_sessions.iter().map(|s| s.id).collect();
    tables.insert("sessions".to_owned(), as_json("sessions", &own_sessions));
    let tokens = refresh_tokens::Entity::find()
        .filter(refresh_tokens::Column::SessionId.is_in(session_ids))
        .all(&txn)
        .await?;
    tables.insert(
        "refresh_tokens".to_owned(),
        as_json("refresh_tokens", &tokens),
    );
    put!("session_anomaly_reports", session_anomaly_reports::Entity);
    put!("mfa_factors", mfa_factors::Entity);
    put!("mfa_backup_codes", mfa_backup_codes::Entity);
    put!("mfa_challenges", mfa_challenges::Entity);
    put!("passkeys", passkeys::Entity);
    put!("api_keys", api_keys::Entity);
    put!("privacy_policies", privacy_policies::Entity);
    put!("deletion_requests", deletion_requests::Entity);
    put!("subject_keys", keys::Entity);
    put!("data_residency_log", data_residency_log::Entity);
    put!("agent_tasks", agent_tasks::Entity);
    put!("usage_records", usage_records::Entity);
    put!("records", records::Entity);
    put!("record_versions", record_versions::Entity);
    put!("access_grants", access_grants::Entity);
    let affected = serde_json::Value::String(user.to_string());
    let incidents: Vec<security_incidents::Model> = security_incidents::Entity::find()
        .order_by_asc(security_incidents::Column::DetectedAt)
        .all(&txn)
        .await?
        .into_iter()
        .filter(|i| {
            i.reported_by == Some(user)
                || i.affected_subjects
                    .as_array()
                    .is_some_and(|ids| ids.contains(&affected))
        })
        .collect();
    let incidents: Vec<Json> = incidents
        .iter()
        .map(|incident| {
            let mut row = model_json(incident, section_of("security_incidents").secret_columns);
            row["affected"] = json!(
                incident
                    .affected_subjects
                    .as_array()
                    .is_some_and(|ids| ids.contains(&affected))
            );
            if incident.reported_by != Some(user) {
                row["reported_by"] = Json::Null;
            }
            row
        })
        .collect();
    tables.insert("security_incidents".to_owned(), Json::Array(incidents));

    // Tenants in a schema of their own keep these tables there (PostgreSQL).
    for schema in super::deletion::tenant_schemas(&txn).await? {
        for (table, condition) in [
            (
                "invitations",
                "email = $2 OR invited_by = $1 OR accepted_by = $1",
            ),
            ("team_members", "user_id = $1"),
            ("role_assignments", "user_id = $1"),
            ("policies", "user_id = $1"),
        ] {
            let found = JsonValue::find_by_statement(Statement::from_sql_and_values(
                DbBackend::Postgres,
                format!(r#"SELECT * FROM "{schema}".{table} WHERE {condition}"#),
                [user.into_uuid().into(), account.email.clone().into()],
            ))
            .all(&txn)
            .await?;
            let secret = section_of(table).secret_columns;
            if let Some(rows) = tables.get_mut(table).and_then(Json::as_array_mut) {
                for mut row in found {
                    if let Some(object) = row.as_object_mut() {
                        object.retain(|column, _| !secret.contains(&column.as_str()));
                    }
                    rows.push(row);
                }
            }
        }
    }

    // Consents, with their addresses opened while the data key exists (erased, or
    // never recorded: null).
    let consents = rows::<consent_records::Entity, _>(&txn, "consent_records", user, None).await?;
    let key = subject_keys::find(&txn, deps, user).await?;
    let mut consent_json = Vec::with_capacity(consents.len());
    for consent in &consents {
        let mut row = model_json(consent, section_of("consent_records").secret_columns);
        let address = key
            .as_ref()
            .and_then(|key| super::consent::open_address(key, consent))
            .map_or(Json::Null, Json::String);
        row["ip_address"] = address;
        consent_json.push(row);
    }
    tables.insert("consent_records".to_owned(), Json::Array(consent_json));

    // What the user did, and what was done to them as a resource.
    let about = Condition::all()
        .add(audit_logs::Column::ResourceType.eq("user"))
        .add(audit_logs::Column::ResourceId.eq(user.to_string()));
    let events = audit_logs::Entity::find()
        .filter(
            Condition::any()
                .add(audit_logs::Column::ActorUserId.eq(user))
                .add(about),
        )
        .order_by_asc(audit_logs::Column::OccurredAt)
        .order_by_asc(audit_logs::Column::Id)
        .all(&txn)
        .await?;
    // Events others performed about the user: what was done, not who did it from where.
    let events: Vec<Json> = events
        .iter()
        .map(|event| {
            let mut row = model_json(event, section_of("audit_logs").secret_columns);
            if event.actor_user_id != Some(user) {
                for column in ["actor_user_id", "ip_address", "user_agent"] {
                    row[column] = Json::Null;
                }
            }
            row
        })
        .collect();
    tables.insert("audit_logs".to_owned(), Json::Array(events));

    let counts: Map<String, Json> = tables
        .iter()
        .map(|(table, rows)| (table.clone(), json!(rows.as_array().map_or(0, Vec::len))))
        .collect();
    let exported_at = deps.now();
    record(
        &txn,
        deps,
        AuditEntry::new(AuditEvent::DataExport, AuditOutcome::Success, meta)
            .resource("user", user)
            .details(json!({ "rows": counts })),
    )
    .await?;
    txn.commit().await?;
    Ok(json!({
        "format": EXPORT_FORMAT,
        "user_id": user,
        "exported_at": exported_at,
        "tables": tables,
    }))
}
