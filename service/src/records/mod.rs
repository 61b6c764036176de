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
use crate::identity::{SessionAuth, load_session, set_assurance_context};
use crate::request::RequestMeta;
use crate::sql::named;
use crate::tenancy::{TenantCtx, TenantTxn};
use chrono::{DateTime, Utc};
use entity::audit::audit_logs::{self, AuditOutcome};
use entity::identity::sessions::AssuranceLevel;
use entity::records::access_grants::{self, GrantAccess, GrantKind};
use entity::records::record_versions;
use entity::records::records;
use entity::tenancy::memberships::{self, MembershipStatus};
use entity::{AccessGrantId, RecordId, RecordVersionId, SealedBytes, UserId};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult,
    PaginatorTrait, QueryFilter, QueryOrder, SqlErr, TransactionSession, TransactionTrait,
};
use serde_json::json;
use uuid::Uuid;
use zeroize::Zeroizing;

mod input;

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

/// One break-glass opening, for review.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BreakGlassUse {
    pub grant: access_grants::Model,
    /// Reads of the record by the opener while the opening lasted.
    pub reads: u64,
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
    Ok(memberships::Entity::find()
        .filter(memberships::Column::TenantId.eq(txn.tenant_id()))
        .filter(memberships::Column::UserId.eq(user))
        .filter(memberships::Column::Status.eq(MembershipStatus::Active))
        .count(txn)
        .await?
        > 0)
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

/// How far back a grant may be dated to start (the caller's clock may lag).
const GRANT_START_SKEW: chrono::Duration = chrono::Duration::minutes(5);

/// Gives a grant. Needs `records:grant`, or being the subject (who may share their
/// own records); nobody grants themselves (a holder of `records:grant` in an
/// emergency uses [`break_glass`]). Grantee and subject must be active members; a
/// grant on one record must name that record's subject; it starts between now (a few
/// minutes' skew allowed) and [`RecordsPolicy::longest_grant`](crate::RecordsPolicy)
/// ahead, and runs at most that long. Records `record_access_granted` (naming the
/// grantee and the record, not the subject or the reason: the tenant's trail is read
/// more widely than the grants), or `record_access_denied`.
///
/// # Errors
/// `Forbidden`; `Validation`; `Db`.
pub async fn grant_access<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    grant: NewGrant,
    meta: &RequestMeta,
) -> Result<AccessGrantId>
where
    C: ConnectionTrait + TransactionTrait,
{
    let now = deps.now();
    let longest = deps.config.records.longest_grant;
    let starts_at = grant.starts_at.unwrap_or(now);
    if starts_at < now - GRANT_START_SKEW || starts_at > now + longest {
        return Err(ServiceError::validation(
            "starts_at",
            format!("must be from now to {} days ahead", longest.num_days()),
        ));
    }
    if grant.expires_at <= now || grant.expires_at <= starts_at {
        return Err(ServiceError::validation(
            "expires_at",
            "must be in the future and after the start",
        ));
    }
    if grant.expires_at - starts_at > longest {
        return Err(ServiceError::validation(
            "expires_at",
            format!("a grant runs at most {} days", longest.num_days()),
        ));
    }
    if grant.grantee == ctx.actor() {
        return Err(ServiceError::validation(
            "grantee",
            "nobody grants themselves access (in an emergency, break the glass)",
        ));
    }
    let txn = begin(db, ctx, now).await?;
    let id = AccessGrantId(deps.new_id("access_grants", &grant.grantee.to_string()));
    if ctx.actor() != grant.subject && !allowed(&txn, deps, ctx.actor(), "grant").await? {
        let refusal = ServiceError::Forbidden {
            reason: "giving access to records needs records:grant (or being their subject)",
        };
        let resource = ("access_grant", id.to_string());
        return Err(refuse(txn, deps, ctx, resource, "grant", refusal, meta).await);
    }
    for (field, user) in [("grantee", grant.grantee), ("subject", grant.subject)] {
        if !is_member(&txn, user).await? {
            return Err(ServiceError::validation(
                field,
                "is not an active member of this tenant",
            ));
        }
    }
    access_grants::Entity::insert(access_grants::ActiveModel {
        id: Set(id),
        tenant_id: Set(ctx.tenant_id()),
        grantee_id: Set(grant.grantee),
        subject_id: Set(grant.subject),
        record_id: Set(grant.record),
        access: Set(grant.access),
        kind: Set(GrantKind::Grant),
        reason: Set(grant.reason.clone()),
        granted_by: Set(ctx.actor()),
        starts_at: Set(starts_at),
        expires_at: Set(grant.expires_at),
        revoked_at: Set(None),
        revoked_by: Set(None),
        revoke_reason: Set(None),
        created_at: Set(now),
    })
    .exec_without_returning(&txn)
    .await
    .map_err(|err| match err.sql_err() {
        Some(SqlErr::ForeignKeyConstraintViolation(_)) => {
            ServiceError::validation("record", "is not a record of this subject in this tenant")
        }
        _ => ServiceError::Db(err),
    })?;
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::RecordAccessGranted, meta)
            .resource("access_grant", id)
            .details(json!({
                "grantee_id": grant.grantee,
                "record_id": grant.record,
                "access": grant.access,
                "starts_at": starts_at,
                "expires_at": grant.expires_at,
            })),
    )
    .await?;
    txn.commit().await?;
    Ok(id)
}

/// Ends grant `id` now, saying why. Needs `records:grant`, or having given it, or
/// being its subject. Records `record_access_revoked` (or `record_access_denied`).
///
/// # Errors
/// `Validation` for a blank or overlong reason; `NotFound` for a grant the acting
/// user may not see (on every backend the same answer as for no grant at all);
/// `Conflict` when it was revoked already; `Forbidden`; `Db`.
pub async fn revoke_access<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    id: AccessGrantId,
    reason: &str,
    meta: &RequestMeta,
) -> Result<()>
where
    C: ConnectionTrait + TransactionTrait,
{
    let reason = input::revoke_reason(reason)?;
    let now = deps.now();
    let txn = begin(db, ctx, now).await?;
    let actor = ctx.actor();
    let may_manage = allowed(&txn, deps, actor, "grant").await?;
    let may_review = may_manage || allowed(&txn, deps, actor, "review").await?;
    let grant = access_grants::Entity::find_by_id(id)
        .filter(access_grants::Column::TenantId.eq(ctx.tenant_id()))
        .one(&txn)
        .await?
        // As PostgreSQL's policy shows grants: to those they concern, to managers and
        // to reviewers.
        .filter(|g| may_review || [g.grantee_id, g.subject_id, g.granted_by].contains(&actor));
    let Some(grant) = grant else {
        return Err(ServiceError::not_found("access grant", id));
    };
    if actor != grant.granted_by && actor != grant.subject_id && !may_manage {
        let refusal = ServiceError::Forbidden {
            reason: "revoking access needs records:grant (or having given it, or being the subject)",
        };
        let resource = ("access_grant", id.to_string());
        return Err(refuse(txn, deps, ctx, resource, "revoke", refusal, meta).await);
    }
    let revoked = access_grants::Entity::update_many()
        .col_expr(access_grants::Column::RevokedAt, Expr::value(now))
        .col_expr(access_grants::Column::RevokedBy, Expr::value(actor))
        .col_expr(
            access_grants::Column::RevokeReason,
            Expr::value(reason.clone()),
        )
        .filter(access_grants::Column::TenantId.eq(ctx.tenant_id()))
        .filter(access_grants::Column::Id.eq(id))
        .filter(access_grants::Column::RevokedAt.is_null())
        .exec(&txn)
        .await?;
    if revoked.rows_affected != 1 {
        return Err(ServiceError::Conflict {
            entity: "access grant",
            reason: "it was revoked already",
        });
    }
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::RecordAccessRevoked, meta)
            .resource("access_grant", id)
            .details(json!({
                "grantee_id": grant.grantee_id,
                "record_id": grant.record_id,
                "was_live": grant.expires_at > now && grant.starts_at <= now,
            })),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// The subject to name in a break-glass grant on record `id`, before the record is
/// visible. On PostgreSQL none is needed: the grant's trigger fills in the record's
/// subject; the nil id stands in until then, and for an unknown record the foreign
/// key refuses it.
async fn subject_for_break_glass<T: ConnectionTrait + Send>(
    txn: &TenantTxn<T>,
    id: RecordId,
) -> Result<Option<UserId>> {
    if txn.get_database_backend() == DbBackend::Postgres {
        return Ok(Some(UserId(Uuid::nil())));
    }
    Ok(records::Entity::find_by_id(id)
        .filter(records::Column::TenantId.eq(txn.tenant_id()))
        .one(txn)
        .await?
        .map(|r| r.subject_id))
}

/// Break-glass: opens record `id` without a grant, in an emergency, saying why.
/// Needs `records:break_glass` and a session at `aal2` of the acting user. Gives the
/// opener a read grant on the record for
/// [`RecordsPolicy::break_glass_for`](crate::RecordsPolicy) (further reads within it
/// need no new opening), records `record_break_glass` at risk 90 and then
/// `record_read`. Every refusal records `record_access_denied`.
///
/// # Errors
/// `Validation` for a reason under 10 characters (nothing is written);
/// `Forbidden` for another user's session or without the permission;
/// `StepUpRequired` below `aal2`; `NotFound` for an unknown record; session errors
/// (`SessionRevoked`, `Expired`); `Db`.
pub async fn break_glass<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    session: &SessionAuth,
    id: RecordId,
    reason: &str,
    meta: &RequestMeta,
) -> Result<OpenedRecord>
where
    C: ConnectionTrait + TransactionTrait,
{
    let reason = input::break_glass_reason(reason)?;
    let lasts = deps.config.records.break_glass_for;
    if lasts <= chrono::Duration::zero() || lasts > chrono::Duration::days(1) {
        return Err(ServiceError::Conflict {
            entity: "configuration",
            reason: "records.break_glass_for must be more than zero and at most a day",
        });
    }
    if session.user_id() != ctx.actor() {
        let refusal = ServiceError::Forbidden {
            reason: "break-glass needs the acting user's own session",
        };
        return Err(refuse_outside(db, deps, ctx, id, "break_glass", refusal, meta).await);
    }
    let now = deps.now();
    let txn = begin(db, ctx, now).await?;
    let current = match load_session(&txn, deps, session.user_id(), session.session_id()).await {
        Ok(current) => current,
        Err(err @ ServiceError::Db(_)) => return Err(err),
        Err(err) => {
            return Err(refuse(txn, deps, ctx, on_record(id), "break_glass", err, meta).await);
        }
    };
    set_assurance_context(&txn, current.aal()).await?;
    if current.aal() < AssuranceLevel::Aal2 {
        let refusal = ServiceError::StepUpRequired {
            needs: crate::error::StepUp::SecondFactor,
        };
        let operation = "break_glass_without_aal2";
        return Err(refuse(txn, deps, ctx, on_record(id), operation, refusal, meta).await);
    }
    if !allowed(&txn, deps, ctx.actor(), "break_glass").await? {
        let refusal = ServiceError::Forbidden {
            reason: "breaking the glass needs records:break_glass",
        };
        return Err(refuse(txn, deps, ctx, on_record(id), "break_glass", refusal, meta).await);
    }
    // Who may open it anyway (its subject, author, a grantee) needs no glass broken.
    if let Some((model, basis)) = readable(&txn, deps, now, id).await? {
        let opened = read_in(&txn, deps, ctx, model, basis, json!({}), meta).await?;
        txn.commit().await?;
        return Ok(opened);
    }
    let Some(subject) = subject_for_break_glass(&txn, id).await? else {
        let refusal = ServiceError::not_found("record", id);
        return Err(refuse(txn, deps, ctx, on_record(id), "break_glass", refusal, meta).await);
    };
    let expires_at = now + lasts;
    let grant = AccessGrantId(deps.new_id("access_grants", &format!("break-glass/{id}")));
    // A savepoint, so an unknown record (refused by the grant's foreign key or, on
    // PostgreSQL, its trigger) leaves the transaction usable for the refusal's record.
    let inserted = async {
        let savepoint = txn.begin().await?;
        access_grants::Entity::insert(access_grants::ActiveModel {
            id: Set(grant),
            tenant_id: Set(ctx.tenant_id()),
            grantee_id: Set(ctx.actor()),
            subject_id: Set(subject),
            record_id: Set(Some(id)),
            access: Set(GrantAccess::Read),
            kind: Set(GrantKind::BreakGlass),
            reason: Set(reason.clone()),
            granted_by: Set(ctx.actor()),
            starts_at: Set(now),
            expires_at: Set(expires_at),
            revoked_at: Set(None),
            revoked_by: Set(None),
            revoke_reason: Set(None),
            created_at: Set(now),
        })
        .exec_without_returning(&savepoint)
        .await?;
        savepoint.commit().await
    }
    .await;
    match inserted {
        Ok(()) => {}
        Err(err)
            if matches!(
                err.sql_err(),
                Some(SqlErr::ForeignKeyConstraintViolation(_))
            ) =>
        {
            let refusal = ServiceError::not_found("record", id);
            return Err(refuse(txn, deps, ctx, on_record(id), "break_glass", refusal, meta).await);
        }
        Err(err) => return Err(err.into()),
    }
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::RecordBreakGlass, meta)
            .resource("record", id)
            .risk(90)
            .details(json!({
                "grant_id": grant,
                "expires_at": expires_at,
                "session_id": session.session_id(),
            })),
    )
    .await?;
    let (model, basis) = readable(&txn, deps, now, id)
        .await?
        .ok_or(ServiceError::Forbidden {
            reason: "the break-glass grant did not open the record",
        })?;
    let opened = read_in(
        &txn,
        deps,
        ctx,
        model,
        basis,
        json!({ "break_glass": true }),
        meta,
    )
    .await?;
    txn.commit().await?;
    Ok(opened)
}

/// The break-glass openings of the tenant that started in `[since, until)`, oldest
/// first, each with the opener's reads of the record until the opening expired (an
/// early revocation does not hide reads from the review): what a privacy officer
/// reviews. Needs `records:review`. Records `record_break_glass_reviewed`.
///
/// # Errors
/// `Forbidden`; `Validation` for an empty period; `Db`.
pub async fn break_glass_report<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    meta: &RequestMeta,
) -> Result<Vec<BreakGlassUse>>
where
    C: ConnectionTrait + TransactionTrait,
{
    if until <= since {
        return Err(ServiceError::validation("until", "must be after since"));
    }
    let txn = begin(db, ctx, deps.now()).await?;
    if !allowed(&txn, deps, ctx.actor(), "review").await? {
        return Err(ServiceError::Forbidden {
            reason: "reviewing break-glass openings needs records:review",
        });
    }
    let grants = access_grants::Entity::find()
        .filter(access_grants::Column::TenantId.eq(ctx.tenant_id()))
        .filter(access_grants::Column::Kind.eq(GrantKind::BreakGlass))
        .filter(access_grants::Column::StartsAt.gte(since))
        .filter(access_grants::Column::StartsAt.lt(until))
        .order_by_asc(access_grants::Column::StartsAt)
        .order_by_asc(access_grants::Column::Id)
        .all(&txn)
        .await?;
    let mut uses = Vec::with_capacity(grants.len());
    for grant in grants {
        let reads = audit_logs::Entity::find()
            .filter(audit_logs::Column::TenantId.eq(ctx.tenant_id()))
            .filter(audit_logs::Column::EventType.eq(AuditEvent::RecordRead.code()))
            .filter(audit_logs::Column::ActorUserId.eq(grant.grantee_id))
            .filter(audit_logs::Column::ResourceType.eq("record"))
            .filter(
                audit_logs::Column::ResourceId
                    .eq(grant.record_id.map(|r| r.to_string()).unwrap_or_default()),
            )
            .filter(audit_logs::Column::OccurredAt.gte(grant.starts_at))
            .filter(audit_logs::Column::OccurredAt.lt(grant.expires_at))
            .count(&txn)
            .await?;
        uses.push(BreakGlassUse { grant, reads });
    }
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::RecordBreakGlassReviewed, meta)
            .resource("tenant", ctx.tenant_id())
            .details(json!({ "since": since, "until": until, "openings": uses.len() })),
    )
    .await?;
    txn.commit().await?;
    Ok(uses)
}
