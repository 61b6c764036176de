//! The plan catalogue: global reference data, defined by an operator (the schema owner,
//! e.g. the seeder) and read by every tenant.

use super::input::{NewPlan, PlanCode};
use crate::Result;
use crate::audit::{AuditEntry, AuditEvent, record};
use crate::deps::Deps;
use crate::error::{ServiceError, conflict_on_unique};
use crate::request::RequestMeta;
use entity::BillingPlanId;
use entity::audit::audit_logs::AuditOutcome;
use entity::billing::billing_plans;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, TransactionSession,
    TransactionTrait,
};
use serde_json::json;

/// Adds `plan` to the catalogue, active. Records `billing_plan_defined`.
///
/// An operator job: on PostgreSQL the runtime role may only read the catalogue, so run
/// it as the schema owner.
///
/// # Errors
/// `Forbidden` for a PostgreSQL role behind row-level security; `Conflict` when a plan
/// with this code exists; `Db`.
pub async fn define_plan<C>(
    db: &C,
    deps: &Deps,
    plan: NewPlan,
    meta: &RequestMeta,
) -> Result<billing_plans::Model>
where
    C: ConnectionTrait + TransactionTrait,
{
    let bound = crate::connection::row_security_role(db)
        .await?
        .is_some_and(|(_, bound)| bound);
    if bound {
        return Err(ServiceError::Forbidden {
            reason: "the plan catalogue is written by the schema owner, not the runtime role",
        });
    }
    let txn = crate::begin_write(db).await?;
    let now = deps.now();
    let id = BillingPlanId(deps.new_id("billing_plans", plan.code.as_str()));
    let model = billing_plans::Model {
        id,
        code: plan.code.as_str().to_owned(),
        name: plan.name.clone(),
        description: plan.description.clone(),
        price_minor: plan.price_minor,
        currency: plan.currency.as_str().to_owned(),
        billing_interval: plan.interval,
        limits: plan.limits_json(),
        is_active: true,
        created_at: now,
        updated_at: now,
    };
    billing_plans::Entity::insert(billing_plans::ActiveModel::from(model.clone()))
        .exec_without_returning(&txn)
        .await
        .map_err(conflict_on_unique(
            "billing plan",
            "a plan with this code exists",
        ))?;
    record(
        &txn,
        deps,
        AuditEntry::new(AuditEvent::BillingPlanDefined, AuditOutcome::Success, meta)
            .resource("billing_plan", id)
            .details(json!({
                "code": model.code,
                "price_minor": model.price_minor,
                "currency": model.currency,
                "interval": model.billing_interval,
                "limits": model.limits,
            })),
    )
    .await?;
    txn.commit().await?;
    Ok(model)
}

/// The active plan with `code`.
///
/// # Errors
/// `Validation` (`plan`) when no active plan has it; `Db`.
pub async fn find_plan<C: ConnectionTrait>(
    db: &C,
    code: &PlanCode,
) -> Result<billing_plans::Model> {
    billing_plans::Entity::find()
        .filter(billing_plans::Column::Code.eq(code.as_str()))
        .filter(billing_plans::Column::IsActive.eq(true))
        .one(db)
        .await?
        .ok_or_else(|| ServiceError::validation("plan", "no active plan has this code"))
}

/// The active plans, cheapest first.
///
/// # Errors
/// `Db`.
pub async fn list_plans<C: ConnectionTrait>(db: &C) -> Result<Vec<billing_plans::Model>> {
    Ok(billing_plans::Entity::find()
        .filter(billing_plans::Column::IsActive.eq(true))
        .order_by_asc(billing_plans::Column::PriceMinor)
        .order_by_asc(billing_plans::Column::Code)
        .all(db)
        .await?)
}
