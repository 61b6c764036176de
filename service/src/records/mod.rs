//! Protected records (health records and the like): written by an author about a
//! subject, the body sealed at rest, every change keeping the version it replaces,
//! and opened only by those with a reason to.
//!
//! Who may read a record: its subject, its author, a holder of a live access grant
//! (on the record, or on all of the subject's records), or a holder of
//! `records:read_all`. Who may change it: a holder of `records:write` who is its
//! author or holds a live write grant. Grants are given and revoked by holders of
//! `records:grant`, and by the subject for their own records; every grant expires.
//!
//! Break-glass: a holder of `records:break_glass`, signed in at `aal2`, may open a
//! record without a grant by saying why. That gives a read grant on the record for
//! [`RecordsPolicy::break_glass_for`](crate::RecordsPolicy), fixed, is audited at
//! high risk, and is listed by [`break_glass_report`] for review.
//!
//! Every read (with the reason access was given), every refused read or change,
//! every grant and revocation is audited. A refusal does not say whether the
//! record exists: on PostgreSQL the service could not tell, because the same rule is
//! the records' row-level security policy there, with the acting user and the
//! application's clock set per transaction. Within the context the service set, SQL
//! of the runtime role's own cannot read a record the acting user may not open. The
//! policy trusts that context (`set_config`, as the tenant wall trusts the tenant):
//! SQL that can set it can also act as someone else.

use crate::Result;
use crate::access::{Scope, has_permission};
use crate::audit::{AuditEntry, AuditEvent, record};
use crate::crypto::FieldSlot;
use crate::deps::Deps;
use crate::error::ServiceError;
use crate::request::RequestMeta;
use crate::sql::named;
use crate::tenancy::{TenantCtx, TenantTxn, find_membership};
use chrono::{DateTime, Utc};
use entity::audit::audit_logs::AuditOutcome;
use entity::records::record_versions;
use entity::records::records;
use entity::tenancy::memberships::MembershipStatus;
use entity::{AccessGrantId, RecordId, RecordVersionId, SealedBytes, UserId};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult,
    QueryFilter, QueryOrder, TransactionTrait,
};
use serde_json::json;
use uuid::Uuid;
use zeroize::Zeroizing;

mod grants;
mod input;

pub use grants::{BreakGlassUse, break_glass, break_glass_report, grant_access, revoke_access};

pub use input::{
    MAX_BODY_BYTES, MAX_REASON_CHARS, MAX_TITLE_CHARS, MIN_BREAK_GLASS_REASON_CHARS, NewGrant,
    NewRecord, RecordBody, RecordChange,
};

/// Why the acting user could open a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessBasis {
    Subject,
    Author,
    /// A live grant (a break-glass opening is one too, of kind `break_glass`).
    Grant(AccessGrantId),
    /// `records:read_all`.
    Role,
}

impl AccessBasis {
    fn as_json(self) -> serde_json::Value {
        match self {
            Self::Subject => json!({ "basis": "subject" }),
            Self::Author => json!({ "basis": "author" }),
            Self::Grant(id) => json!({ "basis": "grant", "grant_id": id }),
            Self::Role => json!({ "basis": "role" }),
        }
    }
}

/// A record as opened: its body in clear (zeroed when dropped; never printed).
pub struct OpenedRecord {
    pub record: records::Model,
    pub body: Zeroizing<String>,
    pub access: AccessBasis,
}

impl std::fmt::Debug for OpenedRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedRecord")
            .field("record", &self.record)
            .field("body", &format_args!("[{} bytes]", self.body.len()))
            .field("access", &self.access)
            .finish()
    }
}

/// A replaced version, opened.
pub struct OpenedVersion {
    pub version: record_versions::Model,
    pub body: Zeroizing<String>,
}

impl std::fmt::Debug for OpenedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedVersion")
            .field("version", &self.version)
            .field("body", &format_args!("[{} bytes]", self.body.len()))
            .finish()
    }
}

const RECORD_SLOT: (&str, &str) = ("records", "body");
const VERSION_SLOT: (&str, &str) = ("record_versions", "body");

fn seal(deps: &Deps, (table, column): (&str, &str), row: Uuid, text: &str) -> Result<SealedBytes> {
    let row = row.to_string();
    deps.keys
        .seal(
            FieldSlot {
                table,
                column,
                row: &row,
            },
            text.as_bytes(),
        )
        .map(SealedBytes::new)
        .map_err(|_| ServiceError::Crypto("sealing a record body failed"))
}

fn open(
    deps: &Deps,
    (table, column): (&str, &str),
    row: Uuid,
    sealed: &SealedBytes,
) -> Result<Zeroizing<String>> {
    let row = row.to_string();
    let bytes = deps
        .keys
        .open(
            FieldSlot {
                table,
                column,
                row: &row,
            },
            sealed.expose(),
        )
        .map_err(|_| ServiceError::Crypto("a record body does not open with the key ring"))?;
    String::from_utf8(bytes.to_vec())
        .map(Zeroizing::new)
        .map_err(|_| ServiceError::Crypto("a record body is not UTF-8"))
}

/// Opens the tenant's transaction with the application's clock set for the
/// records' row-level security (grants expire at the service's time, not the
/// server's).
/// Each operation reads the clock once: the grants the database lets through and the
/// times the service writes and compares are then of the same instant.
async fn begin<C>(db: &C, ctx: &TenantCtx, now: DateTime<Utc>) -> Result<TenantTxn<C::Transaction>>
where
    C: ConnectionTrait + TransactionTrait,
{
    ctx.begin_at(db, now).await
}

async fn allowed<T: ConnectionTrait + Send>(
    txn: &TenantTxn<T>,
    deps: &Deps,
    actor: UserId,
    action: &str,
) -> Result<bool> {
    has_permission(txn, deps, actor, "records", action, Scope::Tenant).await
}

/// The record `id` of the transaction's tenant with the acting user's best live
/// grant on it (for writing when `write`), in one statement; locked for update when
/// `write`. `None` when there is no such record, or (PostgreSQL) the acting user may
/// not see it.
async fn find_with_grant<T: ConnectionTrait + Send>(
    txn: &TenantTxn<T>,
    now: DateTime<Utc>,
    id: RecordId,
    write: bool,
) -> Result<Option<(records::Model, Option<AccessGrantId>)>> {
    let backend = txn.get_database_backend();
    let sql = format!(
        "SELECT r.*,
                (SELECT g.id FROM access_grants g
                  WHERE g.tenant_id = r.tenant_id AND g.grantee_id = :user
                    AND g.subject_id = r.subject_id AND (g.record_id IS NULL OR g.record_id = r.id)
                    {access} AND g.revoked_at IS NULL
                    AND g.starts_at <= :now AND g.expires_at > :now
                  ORDER BY g.expires_at DESC, g.id LIMIT 1) AS live_grant_id
           FROM records r
          WHERE r.tenant_id = :tenant AND r.id = :id{lock}",
        access = if write { "AND g.access = 'write'" } else { "" },
        lock = if write && backend != DbBackend::Sqlite {
            " FOR UPDATE OF r"
        } else {
            ""
        },
    );
    // MariaDB has no `FOR UPDATE OF`.
    let sql = if backend == DbBackend::MySql {
        sql.replace(" FOR UPDATE OF r", " FOR UPDATE")
    } else {
        sql
    };
    let params = [
        ("user", txn.actor().into()),
        ("now", now.into()),
        ("tenant", txn.tenant_id().into()),
        ("id", id.into()),
    ];
    let Some(row) = txn.query_one_raw(named(backend, &sql, &params)).await? else {
        return Ok(None);
    };
    let model = records::Model::from_query_result(&row, "")?;
    let grant: Option<Uuid> = row.try_get("", "live_grant_id")?;
    Ok(Some((model, grant.map(AccessGrantId))))
}

/// Why the acting user may read `model`, short of `records:read_all`.
fn read_basis(
    model: &records::Model,
    actor: UserId,
    grant: Option<AccessGrantId>,
) -> Option<AccessBasis> {
    if model.subject_id == actor {
        Some(AccessBasis::Subject)
    } else if model.author_id == actor {
        Some(AccessBasis::Author)
    } else {
        grant.map(AccessBasis::Grant)
    }
}

/// The record `id` and why the acting user may read it, or `None` if they may not
/// (or there is no such record).
async fn readable<T: ConnectionTrait + Send>(
    txn: &TenantTxn<T>,
    deps: &Deps,
    now: DateTime<Utc>,
    id: RecordId,
) -> Result<Option<(records::Model, AccessBasis)>> {
    let actor = txn.actor();
    let found = find_with_grant(txn, now, id, false).await?;
    if let Some((model, grant)) = &found
        && let Some(basis) = read_basis(model, actor, *grant)
    {
        return Ok(Some((model.clone(), basis)));
    }
    if !allowed(txn, deps, actor, "read_all").await? {
        return Ok(None);
    }
    // On PostgreSQL the row was hidden without a grant; the policy lets it through
    // for the same permission.
    let found = match found {
        Some((model, _)) => Some(model),
        None => find_with_grant(txn, now, id, false).await?.map(|(m, _)| m),
    };
    Ok(found.map(|model| (model, AccessBasis::Role)))
}

/// Records the refusal of `operation` on `resource` (it commits `txn` with it) and
/// returns `refusal`, the error to give.
async fn refuse<T>(
    txn: TenantTxn<T>,
    deps: &Deps,
    ctx: &TenantCtx,
    resource: (&'static str, String),
    operation: &'static str,
    refusal: ServiceError,
    meta: &RequestMeta,
) -> ServiceError
where
    T: ConnectionTrait + sea_orm::TransactionSession + Send,
{
    let recorded = async {
        record(
            &txn,
            deps,
            AuditEntry::new(AuditEvent::RecordAccessDenied, AuditOutcome::Denied, meta)
                .tenant(ctx.tenant_id())
                .actor(ctx.actor())
                .resource(resource.0, resource.1)
                .risk(40)
                .details(json!({ "operation": operation })),
        )
        .await?;
        txn.commit().await?;
        Ok::<_, ServiceError>(())
    }
    .await;
    match recorded {
        Ok(()) => refusal,
        Err(err) => err,
    }
}

/// The refusal of an operation on a record, the same whether the record exists or not.
fn no_access() -> ServiceError {
    ServiceError::Forbidden {
        reason: "no access to this record (or there is no such record)",
    }
}

fn on_record(id: RecordId) -> (&'static str, String) {
    ("record", id.to_string())
}

/// Records a refusal that happened before a tenant transaction could be used (another
/// user's session, a session no longer live) on a transaction of its own.
async fn refuse_outside<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    id: RecordId,
    operation: &'static str,
    refusal: ServiceError,
    meta: &RequestMeta,
) -> ServiceError
where
    C: ConnectionTrait + TransactionTrait,
{
    match begin(db, ctx, deps.now()).await {
        Ok(txn) => refuse(txn, deps, ctx, on_record(id), operation, refusal, meta).await,
        Err(err) => err,
    }
}

/// Opens `model`'s body and records `record_read` with why access was given and
/// `extra` details.
async fn read_in<T>(
    txn: &TenantTxn<T>,
    deps: &Deps,
    ctx: &TenantCtx,
    model: records::Model,
    access: AccessBasis,
    extra: serde_json::Value,
    meta: &RequestMeta,
) -> Result<OpenedRecord>
where
    T: crate::transaction::InTransaction + Send,
{
    let body = open(deps, RECORD_SLOT, model.id.0, &model.body)?;
    let mut details = access.as_json();
    if let (Some(map), serde_json::Value::Object(extra)) = (details.as_object_mut(), extra) {
        map.extend(extra);
        map.insert("version".to_owned(), json!(model.version));
    }
    record(
        txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::RecordRead, meta)
            .resource("record", model.id)
            .details(details),
    )
    .await?;
    Ok(OpenedRecord {
        record: model,
        body,
        access,
    })
}

/// Opens record `id` for the acting user. Records `record_read` with the reason
/// access was given, or `record_access_denied`.
///
/// # Errors
/// `Forbidden` without access (also for an unknown record); `Crypto` if the body
/// does not open; `Db`.
pub async fn read_record<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    id: RecordId,
    meta: &RequestMeta,
) -> Result<OpenedRecord>
where
    C: ConnectionTrait + TransactionTrait,
{
    let now = deps.now();
    let txn = begin(db, ctx, now).await?;
    let Some((model, access)) = readable(&txn, deps, now, id).await? else {
        return Err(refuse(txn, deps, ctx, on_record(id), "read", no_access(), meta).await);
    };
    let opened = read_in(&txn, deps, ctx, model, access, json!({}), meta).await?;
    txn.commit().await?;
    Ok(opened)
}

/// The versions record `id` had before its current one, oldest first, opened.
/// Access as for [`read_record`]; records `record_read` (`"history": true`).
///
/// # Errors
/// As [`read_record`].
pub async fn record_history<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    id: RecordId,
    meta: &RequestMeta,
) -> Result<Vec<OpenedVersion>>
where
    C: ConnectionTrait + TransactionTrait,
{
    let now = deps.now();
    let txn = begin(db, ctx, now).await?;
    let Some((model, access)) = readable(&txn, deps, now, id).await? else {
        return Err(refuse(txn, deps, ctx, on_record(id), "history", no_access(), meta).await);
    };
    let versions = record_versions::Entity::find()
        .filter(record_versions::Column::TenantId.eq(ctx.tenant_id()))
        .filter(record_versions::Column::RecordId.eq(id))
        .order_by_asc(record_versions::Column::Version)
        .all(&txn)
        .await?;
    let opened = versions
        .into_iter()
        .map(|version| {
            let body = open(deps, VERSION_SLOT, version.id.0, &version.body)?;
            Ok(OpenedVersion { version, body })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut details = access.as_json();
    if let Some(map) = details.as_object_mut() {
        map.insert("history".to_owned(), json!(true));
        map.insert("versions".to_owned(), json!(opened.len()));
    }
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::RecordRead, meta)
            .resource("record", model.id)
            .details(details),
    )
    .await?;
    txn.commit().await?;
    Ok(opened)
}

/// Is `user` an active member of the transaction's tenant?
async fn is_member<T: ConnectionTrait + Send>(txn: &TenantTxn<T>, user: UserId) -> Result<bool> {
    Ok(find_membership(txn, txn.tenant_id(), user)
        .await?
        .is_some_and(|m| m.status == MembershipStatus::Active))
}

/// Writes a new record in the acting user's name. Needs `records:write`; the subject
/// must be an active member of the tenant. Records `record_created` (or
/// `record_access_denied`). The audit row names the record, not its subject: the
/// tenant's trail is read more widely than the records.
///
/// # Errors
/// `Forbidden` without `records:write`; `Validation` for a subject outside the
/// tenant; `Db`.
pub async fn create_record<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    new: NewRecord,
    meta: &RequestMeta,
) -> Result<RecordId>
where
    C: ConnectionTrait + TransactionTrait,
{
    let now = deps.now();
    let txn = begin(db, ctx, now).await?;
    let id = RecordId(deps.new_id("records", &new.subject.to_string()));
    if !allowed(&txn, deps, ctx.actor(), "write").await? {
        let refusal = ServiceError::Forbidden {
            reason: "writing records needs records:write",
        };
        return Err(refuse(txn, deps, ctx, on_record(id), "create", refusal, meta).await);
    }
    if !is_member(&txn, new.subject).await? {
        return Err(ServiceError::validation(
            "subject",
            "is not an active member of this tenant",
        ));
    }
    records::Entity::insert(records::ActiveModel {
        id: Set(id),
        tenant_id: Set(ctx.tenant_id()),
        subject_id: Set(new.subject),
        author_id: Set(ctx.actor()),
        record_type: Set(new.record_type),
        title: Set(new.title),
        body: Set(seal(deps, RECORD_SLOT, id.0, new.body.as_str())?),
        version: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
        updated_by: Set(None),
    })
    .exec_without_returning(&txn)
    .await?;
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::RecordCreated, meta)
            .resource("record", id)
            .details(json!({ "record_type": new.record_type, "version": 1 })),
    )
    .await?;
    txn.commit().await?;
    Ok(id)
}

/// Changes record `id`, which must still be at `expected_version`: the version it
/// replaces is kept in `record_versions` first. Needs `records:write`, and being the
/// author or holding a live write grant. Records `record_updated`, or
/// `record_access_denied`. Returns the new version.
///
/// # Errors
/// `Forbidden` without `records:write` or without write access (also for an
/// unknown record); `Conflict` when the record moved past `expected_version`;
/// `Crypto`; `Db`.
pub async fn update_record<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    id: RecordId,
    expected_version: i32,
    change: RecordChange,
    meta: &RequestMeta,
) -> Result<i32>
where
    C: ConnectionTrait + TransactionTrait,
{
    let now = deps.now();
    let txn = begin(db, ctx, now).await?;
    let actor = ctx.actor();
    let found = find_with_grant(&txn, now, id, true).await?;
    let basis = match &found {
        Some((model, _)) if model.author_id == actor => Some(AccessBasis::Author),
        Some((_, Some(grant))) => Some(AccessBasis::Grant(*grant)),
        _ => None,
    };
    let (Some((current, _)), Some(basis)) = (found, basis) else {
        return Err(refuse(txn, deps, ctx, on_record(id), "write", no_access(), meta).await);
    };
    if !allowed(&txn, deps, actor, "write").await? {
        return Err(refuse(txn, deps, ctx, on_record(id), "write", no_access(), meta).await);
    }
    if current.version != expected_version {
        return Err(ServiceError::Conflict {
            entity: "record",
            reason: "it was changed since that version was read; read it again",
        });
    }
    let kept =
        RecordVersionId(deps.new_id("record_versions", &format!("{id}/{}", current.version)));
    let old_body = open(deps, RECORD_SLOT, id.0, &current.body)?;
    record_versions::Entity::insert(record_versions::ActiveModel {
        id: Set(kept),
        tenant_id: Set(ctx.tenant_id()),
        record_id: Set(id),
        version: Set(current.version),
        record_type: Set(current.record_type),
        title: Set(current.title.clone()),
        body: Set(seal(deps, VERSION_SLOT, kept.0, &old_body)?),
        written_by: Set(current.updated_by.unwrap_or(current.author_id)),
        written_at: Set(current.updated_at),
        superseded_by: Set(actor),
        superseded_at: Set(now),
    })
    .exec_without_returning(&txn)
    .await?;
    let next = current.version + 1;
    let body = match &change.body {
        Some(body) => seal(deps, RECORD_SLOT, id.0, body.as_str())?,
        None => current.body.clone(),
    };
    let updated = records::Entity::update_many()
        .col_expr(
            records::Column::RecordType,
            Expr::value(change.record_type.unwrap_or(current.record_type)),
        )
        .col_expr(
            records::Column::Title,
            Expr::value(change.title.clone().unwrap_or(current.title)),
        )
        .col_expr(records::Column::Body, Expr::value(body))
        .col_expr(records::Column::Version, Expr::value(next))
        .col_expr(records::Column::UpdatedAt, Expr::value(now))
        .col_expr(records::Column::UpdatedBy, Expr::value(actor))
        .filter(records::Column::TenantId.eq(ctx.tenant_id()))
        .filter(records::Column::Id.eq(id))
        .filter(records::Column::Version.eq(expected_version))
        .exec(&txn)
        .await?;
    if updated.rows_affected != 1 {
        // The row is locked, so its version cannot have moved: on PostgreSQL the write
        // grant ended (a revocation committed) between the read and the update.
        txn.rollback().await?;
        return Err(refuse_outside(db, deps, ctx, id, "write", no_access(), meta).await);
    }
    let mut details = basis.as_json();
    if let Some(map) = details.as_object_mut() {
        map.insert("from_version".to_owned(), json!(expected_version));
        map.insert("to_version".to_owned(), json!(next));
        map.insert(
            "changed".to_owned(),
            json!(
                [
                    change.record_type.map(|_| "record_type"),
                    change.title.as_ref().map(|_| "title"),
                    change.body.as_ref().map(|_| "body"),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
            ),
        );
    }
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::RecordUpdated, meta)
            .resource("record", id)
            .details(details),
    )
    .await?;
    txn.commit().await?;
    Ok(next)
}
