//! The compliance report: what a data protection officer checks daily, as one JSON
//! document. Open incidents, deletion requests past their due date, consent
//! withdrawals and refused transfers of the period, and the audit chains' verification.

use super::deletion::require_role_beyond_row_security;
use crate::Result;
use crate::audit::verify::{self, ChainScope};
use crate::audit::{AuditEntry, AuditEvent, record};
use crate::deps::Deps;
use crate::request::RequestMeta;
use chrono::Duration;
use entity::audit::audit_logs::AuditOutcome;
use entity::compliance::consent_records;
use entity::compliance::data_residency_log::{self, TransferOutcome};
use entity::compliance::deletion_requests::{self, DeletionStatus};
use entity::compliance::security_incidents::{self, IncidentStatus};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;

/// The report's format name, first in every document.
pub const REPORT_FORMAT: &str = "compliance-report-v1";

/// Builds the report over every tenant, for the `period` before now (consent
/// withdrawals, refused transfers), and records `compliance_report_generated`.
/// `audit_chains.intact` is false when verification found anything: the findings
/// are listed.
///
/// An operator job: on PostgreSQL it runs as a role that bypasses row-level
/// security.
///
/// # Errors
/// `Forbidden` for a PostgreSQL role behind row-level security; `Db`.
pub async fn compliance_report(
    db: &DatabaseConnection,
    deps: &Deps,
    period: Duration,
    meta: &RequestMeta,
) -> Result<Json> {
    require_role_beyond_row_security(db).await?;
    let now = deps.now();
    let since = now - period;

    let mut open = security_incidents::Entity::find()
        .filter(security_incidents::Column::Status.ne(IncidentStatus::Resolved))
        .all(db)
        .await?;
    // Worst first (severity is text in the database: sorted here, by its order).
    open.sort_by_key(|i| (std::cmp::Reverse(i.severity), i.detected_at, i.id));
    let open_incidents: Vec<Json> = open
        .into_iter()
        .map(|i| {
            json!({
                "id": i.id,
                "tenant_id": i.tenant_id,
                "title": i.title,
                "severity": i.severity,
                "status": i.status,
                "detected_at": i.detected_at,
                "reported_at": i.reported_at,
                "affected_subjects": i.affected_subjects.as_array().map_or(0, Vec::len),
                "open_for_hours": (now - i.detected_at).num_hours(),
            })
        })
        .collect();

    let overdue_deletions: Vec<Json> = deletion_requests::Entity::find()
        .filter(
            deletion_requests::Column::Status
                .is_in([DeletionStatus::Requested, DeletionStatus::Processing]),
        )
        .filter(deletion_requests::Column::DueAt.lte(now))
        .order_by_asc(deletion_requests::Column::DueAt)
        .all(db)
        .await?
        .into_iter()
        .map(|r| {
            json!({
                "id": r.id,
                "user_id": r.user_id,
                "status": r.status,
                "due_at": r.due_at,
                "overdue_hours": (now - r.due_at).num_hours(),
            })
        })
        .collect();

    // A withdrawal takes back a grant: a first decision that refuses is not one.
    let mut withdrawals: BTreeMap<(String, String), u64> = BTreeMap::new();
    for row in consent_records::Entity::find()
        .filter(consent_records::Column::Granted.eq(false))
        .filter(consent_records::Column::RecordedAt.gte(since))
        .all(db)
        .await?
    {
        let before = consent_records::Entity::find()
            .filter(consent_records::Column::TenantId.eq(row.tenant_id))
            .filter(consent_records::Column::UserId.eq(row.user_id))
            .filter(consent_records::Column::Purpose.eq(row.purpose.as_str()))
            .filter(consent_records::Column::Seq.lt(row.seq))
            .order_by_desc(consent_records::Column::Seq)
            .one(db)
            .await?;
        if before.is_some_and(|b| b.granted) {
            *withdrawals
                .entry((row.tenant_id.to_string(), row.purpose))
                .or_default() += 1;
        }
    }
    let consent_withdrawals: Vec<Json> = withdrawals
        .into_iter()
        .map(|((tenant_id, purpose), count)| {
            json!({ "tenant_id": tenant_id, "purpose": purpose, "withdrawals": count })
        })
        .collect();

    let refused_transfers: Vec<Json> = data_residency_log::Entity::find()
        .filter(data_residency_log::Column::Outcome.eq(TransferOutcome::Refused))
        .filter(data_residency_log::Column::RecordedAt.gte(since))
        .order_by_asc(data_residency_log::Column::RecordedAt)
        .all(db)
        .await?
        .into_iter()
        .map(|t| {
            json!({
                "id": t.id,
                "tenant_id": t.tenant_id,
                "from": t.from_region,
                "to": t.to_region,
                "purpose": t.purpose,
                "requested_by": t.requested_by,
                "recorded_at": t.recorded_at,
            })
        })
        .collect();

    let chains = verify::verify(db, ChainScope::All, None, |_| {}).await?;
    let findings: Vec<String> = chains.findings.iter().map(ToString::to_string).collect();

    let txn = crate::begin_write(db).await?;
    record(
        &txn,
        deps,
        AuditEntry::new(
            AuditEvent::ComplianceReportGenerated,
            AuditOutcome::Success,
            meta,
        )
        .details(json!({
            "open_incidents": open_incidents.len(),
            "overdue_deletion_requests": overdue_deletions.len(),
            "consent_withdrawals": consent_withdrawals.len(),
            "refused_transfers": refused_transfers.len(),
            "audit_chains_intact": chains.is_intact(),
        })),
    )
    .await?;
    txn.commit().await?;

    Ok(json!({
        "format": REPORT_FORMAT,
        "generated_at": now,
        "period": { "from": since, "to": now },
        "open_incidents": open_incidents,
        "overdue_deletion_requests": overdue_deletions,
        "consent_withdrawals": consent_withdrawals,
        "refused_transfers": refused_transfers,
        "audit_chains": {
            "intact": chains.is_intact(),
            "chains": chains.chains,
            "rows": chains.rows,
            "findings": findings,
        },
    }))
}
