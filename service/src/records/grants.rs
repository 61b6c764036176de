//! Access grants, their revocation, break-glass and its review (see the module above
//! for who may do what).

use super::{
    NewGrant, OpenedRecord, allowed, begin, input, is_member, on_record, read_in, readable, refuse,
    refuse_outside,
};
use crate::Result;
use crate::audit::{AuditEntry, AuditEvent, record};
use crate::deps::Deps;
use crate::error::ServiceError;
use crate::identity::{SessionAuth, load_session, set_assurance_context};
use crate::request::RequestMeta;
use crate::tenancy::{TenantCtx, TenantTxn};
use chrono::{DateTime, Utc};
use entity::audit::audit_logs;
use entity::identity::sessions::AssuranceLevel;
use entity::records::access_grants::{self, GrantAccess, GrantKind};
use entity::records::records;
use entity::{AccessGrantId, RecordId, UserId};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, SqlErr, TransactionSession, TransactionTrait,
};
use serde_json::json;
use uuid::Uuid;

/// One break-glass opening, for review.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BreakGlassUse {
    pub grant: access_grants::Model,
    /// Reads of the record by the opener while the opening lasted.
    pub reads: u64,
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
