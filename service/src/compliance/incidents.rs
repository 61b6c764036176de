//! Security incidents (GDPR art. 33-34, APPI art. 26): what happened, how bad, whom it
//! affected, and the times a regulator asks for: detected, reported, resolved.

use crate::Result;
use crate::audit::{AuditEntry, AuditEvent, record};
use crate::deps::Deps;
use crate::error::ServiceError;
use crate::input::plain_text;
use crate::request::RequestMeta;
use crate::tenancy::TenantCtx;
use chrono::{DateTime, Utc};
use entity::compliance::security_incidents::{self, IncidentSeverity, IncidentStatus};
use entity::tenancy::memberships;
use entity::{SecurityIncidentId, UserId};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait,
};
use serde_json::json;
use std::collections::BTreeSet;

/// The most subjects one incident lists by id (a larger breach is described by count
/// in its description, and its subjects exported separately).
pub const MAX_AFFECTED_SUBJECTS: usize = 10_000;

/// An incident to report, checked.
#[derive(Clone, Debug)]
pub struct NewIncident {
    title: String,
    description: String,
    severity: IncidentSeverity,
    detected_at: DateTime<Utc>,
    affected: Vec<UserId>,
}

impl NewIncident {
    /// # Errors
    /// `Validation` for an empty or overlong title (200) or description (4000), or
    /// more than [`MAX_AFFECTED_SUBJECTS`] subjects.
    pub fn parse(
        title: &str,
        description: &str,
        severity: IncidentSeverity,
        detected_at: DateTime<Utc>,
        affected: &[UserId],
    ) -> Result<Self> {
        let affected: BTreeSet<UserId> = affected.iter().copied().collect();
        if affected.len() > MAX_AFFECTED_SUBJECTS {
            return Err(ServiceError::validation(
                "affected_subjects",
                format!("at most {MAX_AFFECTED_SUBJECTS} ids"),
            ));
        }
        Ok(Self {
            title: plain_text("title", title, 200)?,
            description: description_text(description)?,
            severity,
            detected_at,
            affected: affected.into_iter().collect(),
        })
    }
}

/// Like `plain_text`, but line breaks are welcome in a description.
fn description_text(raw: &str) -> Result<String> {
    let text = raw.trim();
    if text.is_empty() {
        return Err(ServiceError::validation("description", "must not be empty"));
    }
    if text.chars().count() > 4000 {
        return Err(ServiceError::validation(
            "description",
            "must be at most 4000 characters",
        ));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err(ServiceError::validation(
            "description",
            "must not contain control characters",
        ));
    }
    Ok(text.to_owned())
}

/// Files an incident in the context's tenant, `open`. Records
/// `security_incident_reported`.
///
/// # Errors
/// `Forbidden` unless owner or admin; `Validation` for a detection time in the future;
/// `NotFound` if an affected id is not a member of the tenant; `Db`.
pub async fn report_incident<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    incident: NewIncident,
    meta: &RequestMeta,
) -> Result<security_incidents::Model>
where
    C: ConnectionTrait + TransactionTrait,
{
    let now = deps.now();
    if incident.detected_at > now {
        return Err(ServiceError::validation(
            "detected_at",
            "an incident cannot be detected in the future",
        ));
    }
    let txn = ctx.begin(db).await?;
    txn.require_member_manager()?;
    if !incident.affected.is_empty() {
        // Members of this tenant only (an id from elsewhere would put this tenant's
        // incident into a stranger's data export).
        let known = memberships::Entity::find()
            .select_only()
            .column(memberships::Column::UserId)
            .filter(memberships::Column::TenantId.eq(ctx.tenant_id()))
            .filter(memberships::Column::UserId.is_in(incident.affected.clone()))
            .count(&txn)
            .await?;
        if known != incident.affected.len() as u64 {
            return Err(ServiceError::not_found(
                "affected subject",
                "one of the ids given",
            ));
        }
    }
    let id = SecurityIncidentId(deps.new_id(
        "security_incidents",
        &format!("{}/{}", ctx.tenant_id(), now.timestamp_micros()),
    ));
    security_incidents::Entity::insert(security_incidents::ActiveModel {
        id: Set(id),
        tenant_id: Set(ctx.tenant_id()),
        title: Set(incident.title),
        description: Set(incident.description),
        severity: Set(incident.severity),
        status: Set(IncidentStatus::Open),
        affected_subjects: Set(json!(incident.affected)),
        detected_at: Set(incident.detected_at),
        reported_at: Set(None),
        resolved_at: Set(None),
        reported_by: Set(Some(ctx.actor())),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .exec_without_returning(&txn)
    .await?;
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::SecurityIncidentReported, meta)
            .resource("security_incident", id)
            .risk(match incident.severity {
                IncidentSeverity::Low => 20,
                IncidentSeverity::Medium => 40,
                IncidentSeverity::High => 70,
                IncidentSeverity::Critical => 90,
            })
            .details(json!({
                "severity": incident.severity,
                "affected_subjects": incident.affected.len(),
                "detected_at": incident.detected_at,
            })),
    )
    .await?;
    let filed = find(&txn, id).await?;
    txn.commit().await?;
    Ok(filed)
}

async fn find<C: ConnectionTrait>(
    db: &C,
    id: SecurityIncidentId,
) -> Result<security_incidents::Model> {
    security_incidents::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| ServiceError::not_found("security incident", id))
}

/// Moves an incident on (statuses only go forward: open, investigating, contained,
/// resolved) and records when it was reported to the authority (once). Records
/// `security_incident_updated`.
///
/// # Errors
/// `Forbidden` unless owner or admin; `NotFound` for an incident of another tenant;
/// `Conflict` for a step back, a resolved incident, or a second report time;
/// `Validation` for a report time in the future or before detection; `Db`.
pub async fn update_incident<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    id: SecurityIncidentId,
    status: IncidentStatus,
    reported_at: Option<DateTime<Utc>>,
    meta: &RequestMeta,
) -> Result<security_incidents::Model>
where
    C: ConnectionTrait + TransactionTrait,
{
    let now = deps.now();
    let txn = ctx.begin(db).await?;
    txn.require_member_manager()?;
    let incident = security_incidents::Entity::find_by_id(id)
        .filter(security_incidents::Column::TenantId.eq(ctx.tenant_id()))
        .one(&txn)
        .await?
        .ok_or_else(|| ServiceError::not_found("security incident", id))?;
    if incident.status == IncidentStatus::Resolved {
        return Err(ServiceError::Conflict {
            entity: "security incident",
            reason: "it is resolved; a new finding is a new incident",
        });
    }
    if status < incident.status {
        return Err(ServiceError::Conflict {
            entity: "security incident",
            reason: "an incident's status only moves forward",
        });
    }
    if let Some(at) = reported_at {
        if incident.reported_at.is_some() {
            return Err(ServiceError::Conflict {
                entity: "security incident",
                reason: "its report to the authority is already recorded",
            });
        }
        if at > now || at < incident.detected_at {
            return Err(ServiceError::validation(
                "reported_at",
                "between the detection and now",
            ));
        }
    }
    let resolved_at = (status == IncidentStatus::Resolved).then_some(now);
    // Conditional on the status read above: two updates at once cannot both move it.
    let changed = security_incidents::Entity::update_many()
        .col_expr(security_incidents::Column::Status, Expr::value(status))
        .col_expr(
            security_incidents::Column::ReportedAt,
            Expr::value(reported_at.or(incident.reported_at)),
        )
        .col_expr(
            security_incidents::Column::ResolvedAt,
            Expr::value(resolved_at),
        )
        .col_expr(security_incidents::Column::UpdatedAt, Expr::value(now))
        .filter(security_incidents::Column::Id.eq(id))
        .filter(security_incidents::Column::Status.eq(incident.status))
        .exec(&txn)
        .await?;
    if changed.rows_affected != 1 {
        return Err(ServiceError::Conflict {
            entity: "security incident",
            reason: "it changed meanwhile; read it again",
        });
    }
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::SecurityIncidentUpdated, meta)
            .resource("security_incident", id)
            .details(json!({
                "from": incident.status,
                "to": status,
                "reported_at": reported_at,
            })),
    )
    .await?;
    let updated = find(&txn, id).await?;
    txn.commit().await?;
    Ok(updated)
}

/// The tenant's incidents, newest detection first.
///
/// # Errors
/// `Forbidden` if the membership ended; `Db`.
pub async fn list_incidents<C>(db: &C, ctx: &TenantCtx) -> Result<Vec<security_incidents::Model>>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = ctx.begin(db).await?;
    let incidents = security_incidents::Entity::find()
        .filter(security_incidents::Column::TenantId.eq(ctx.tenant_id()))
        .order_by_desc(security_incidents::Column::DetectedAt)
        .all(&txn)
        .await?;
    txn.commit().await?;
    Ok(incidents)
}
