//! Data residency (APPI art. 28, GDPR chapter V): a tenant's data lives in its
//! `data_region`; its owner lists the other regions it may be transferred to. Every
//! transfer the application is about to make is checked and logged here first: one
//! out of the allowed regions is refused, logged and audited.

use crate::Result;
use crate::audit::{AuditEntry, AuditEvent, record};
use crate::deps::Deps;
use crate::error::ServiceError;
use crate::input::plain_text;
use crate::request::RequestMeta;
use crate::tenancy::TenantCtx;
use entity::DataTransferId;
use entity::audit::audit_logs::AuditOutcome;
use entity::compliance::data_residency_log::{self, TransferOutcome};
use entity::tenancy::memberships::MembershipRole;
use entity::tenancy::tenants::{self, DataRegion};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, TransactionTrait};
use serde_json::json;

/// The regions besides its own that `tenant` allows transfers to.
pub fn transfer_regions(tenant: &tenants::Model) -> Vec<DataRegion> {
    serde_json::from_value(tenant.transfer_regions.clone()).unwrap_or_default()
}

async fn current_tenant<C: ConnectionTrait>(db: &C, ctx: &TenantCtx) -> Result<tenants::Model> {
    tenants::Entity::find_by_id(ctx.tenant_id())
        .one(db)
        .await?
        .ok_or_else(|| ServiceError::not_found("tenant", ctx.tenant_id()))
}

/// Sets the regions besides its own that the tenant's data may be transferred to
/// (the owner's decision: it is what the tenant's contracts with its customers say).
/// Records `data_residency_changed`.
///
/// # Errors
/// `Forbidden` unless the actor owns the tenant; `Db`.
pub async fn set_transfer_regions<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    regions: &[DataRegion],
    meta: &RequestMeta,
) -> Result<tenants::Model>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = ctx.begin(db).await?;
    if txn.role() != MembershipRole::Owner {
        return Err(ServiceError::Forbidden {
            reason: "only the tenant's owner decides where its data may go",
        });
    }
    let tenant = current_tenant(&txn, ctx).await?;
    let before = transfer_regions(&tenant);
    let mut after: Vec<DataRegion> = regions
        .iter()
        .copied()
        .filter(|r| *r != tenant.data_region)
        .collect();
    after.sort_by_key(|r| format!("{r:?}"));
    after.dedup();
    tenants::Entity::update_many()
        .col_expr(tenants::Column::TransferRegions, Expr::value(json!(after)))
        .filter(tenants::Column::Id.eq(ctx.tenant_id()))
        .exec(&txn)
        .await?;
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::DataResidencyChanged, meta)
            .resource("tenant", ctx.tenant_id())
            .details(json!({
                "data_region": tenant.data_region,
                "before": before,
                "after": after,
            })),
    )
    .await?;
    let updated = current_tenant(&txn, ctx).await?;
    txn.commit().await?;
    Ok(updated)
}

/// Checks and logs a transfer of the tenant's data to `to`, for `purpose`, before the
/// application makes it. Allowed (to a region the owner listed): logged, and
/// `data_transfer_recorded`. Refused: logged and audited (`data_transfer_refused`, at
/// risk 60) all the same, then [`ServiceError::TransferRefused`].
///
/// # Errors
/// `Validation` for an empty or overlong purpose, or `to` being the tenant's own
/// region (no transfer), before anything is written; `TransferRefused`; `Forbidden`
/// if the membership ended; `Db`.
pub async fn record_transfer<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    to: DataRegion,
    purpose: &str,
    meta: &RequestMeta,
) -> Result<data_residency_log::Model>
where
    C: ConnectionTrait + TransactionTrait,
{
    let purpose = plain_text("purpose", purpose, 200)?;
    let txn = ctx.begin(db).await?;
    let tenant = current_tenant(&txn, ctx).await?;
    if to == tenant.data_region {
        return Err(ServiceError::validation(
            "to_region",
            "is the tenant's own region: that is no transfer",
        ));
    }
    let allowed = transfer_regions(&tenant).contains(&to);
    let now = deps.now();
    let id = DataTransferId(deps.new_id(
        "data_residency_log",
        &format!("{}/{}", ctx.tenant_id(), now.timestamp_micros()),
    ));
    let row = data_residency_log::Model {
        id,
        tenant_id: ctx.tenant_id(),
        from_region: tenant.data_region,
        to_region: to,
        purpose: purpose.clone(),
        outcome: if allowed {
            TransferOutcome::Allowed
        } else {
            TransferOutcome::Refused
        },
        requested_by: Some(ctx.actor()),
        recorded_at: now,
    };
    data_residency_log::Entity::insert(data_residency_log::ActiveModel {
        id: Set(row.id),
        tenant_id: Set(row.tenant_id),
        from_region: Set(row.from_region),
        to_region: Set(row.to_region),
        purpose: Set(row.purpose.clone()),
        outcome: Set(row.outcome),
        requested_by: Set(row.requested_by),
        recorded_at: Set(row.recorded_at),
    })
    .exec_without_returning(&txn)
    .await?;
    let details = json!({ "from": tenant.data_region, "to": to, "purpose": purpose });
    let entry = if allowed {
        AuditEntry::by_member(ctx, AuditEvent::DataTransferRecorded, meta)
    } else {
        AuditEntry::new(AuditEvent::DataTransferRefused, AuditOutcome::Denied, meta)
            .tenant(ctx.tenant_id())
            .actor(ctx.actor())
            .risk(60)
    };
    record(
        &txn,
        deps,
        entry.resource("data_transfer", id).details(details),
    )
    .await?;
    txn.commit().await?;
    if allowed {
        Ok(row)
    } else {
        Err(ServiceError::TransferRefused {
            from: tenant.data_region,
            to,
        })
    }
}
