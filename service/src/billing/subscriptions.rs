//! A tenant's subscription: subscribing, the status state machine, scheduled
//! cancellation, period rollover and plan changes.

use super::input::{PlanCode, trial_days};
use super::plans::find_plan;
use super::{Need, begin};
use crate::Result;
use crate::audit::{AuditEntry, AuditEvent, record};
use crate::deps::Deps;
use crate::error::{ServiceError, conflict_on_unique};
use crate::request::RequestMeta;
use crate::tenancy::{TenantCtx, TenantTxn};
use chrono::{DateTime, Datelike, Duration, Months, Utc};
use entity::BillingSubscriptionId;
use entity::billing::billing_plans::{self, PlanInterval};
use entity::billing::billing_subscriptions::{self, SubscriptionStatus};
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, TransactionTrait,
};
use serde_json::json;

/// The most periods one renewal rolls over (a subscription left alone for longer
/// needs several calls).
const MAX_PERIODS_PER_RENEWAL: u32 = 120;

/// `at` plus one period of `interval`, in calendar months (the end of a month that is
/// too short for the day is its last day).
fn next_period_end(at: DateTime<Utc>, interval: PlanInterval) -> DateTime<Utc> {
    at.checked_add_months(Months::new(interval.months()))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The first period boundary after `after`, counted in whole periods from `anchor` (the
/// start of the subscription's first paid period), so a short month does not move
/// later periods: from January 31 the ends are February 28, March 31, April 30, ...
fn period_end_after(
    anchor: DateTime<Utc>,
    after: DateTime<Utc>,
    interval: PlanInterval,
) -> DateTime<Utc> {
    let step = interval.months();
    // Whole months from the anchor to `after`, rounded down, as a first guess.
    let months = (after.year() - anchor.year()) * 12 + after.month() as i32 - anchor.month() as i32;
    let mut periods = u32::try_from(months.max(0)).unwrap_or(0) / step;
    loop {
        let end = anchor
            .checked_add_months(Months::new(periods.saturating_mul(step)))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        if end > after || end == DateTime::<Utc>::MAX_UTC {
            return end;
        }
        periods += 1;
    }
}

/// Where a subscription's paid periods are counted from: the end of its trial, else
/// its start.
fn period_anchor(subscription: &billing_subscriptions::Model) -> DateTime<Utc> {
    subscription.trial_end.unwrap_or(subscription.created_at)
}

pub(super) fn no_live_subscription() -> ServiceError {
    ServiceError::Conflict {
        entity: "billing subscription",
        reason: "the tenant has no live subscription",
    }
}

fn already_subscribed() -> ServiceError {
    ServiceError::Conflict {
        entity: "billing subscription",
        reason: "the tenant already has a live subscription",
    }
}

/// Subscription `id` of the transaction's tenant, locked for the rest of the
/// transaction.
async fn find_locked(
    txn: &TenantTxn<impl ConnectionTrait + Send>,
    id: BillingSubscriptionId,
) -> Result<billing_subscriptions::Model> {
    billing_subscriptions::Entity::find_by_id(id)
        .filter(billing_subscriptions::Column::TenantId.eq(txn.tenant_id()))
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or_else(|| ServiceError::not_found("billing subscription", id))
}

async fn reload(
    txn: &TenantTxn<impl ConnectionTrait + Send>,
    id: BillingSubscriptionId,
) -> Result<billing_subscriptions::Model> {
    billing_subscriptions::Entity::find_by_id(id)
        .filter(billing_subscriptions::Column::TenantId.eq(txn.tenant_id()))
        .one(txn)
        .await?
        .ok_or_else(|| ServiceError::not_found("billing subscription", id))
}

pub(super) async fn plan_of(
    txn: &TenantTxn<impl ConnectionTrait + Send>,
    subscription: &billing_subscriptions::Model,
) -> Result<billing_plans::Model> {
    billing_plans::Entity::find_by_id(subscription.plan_id)
        .one(txn)
        .await?
        .ok_or_else(|| ServiceError::not_found("billing plan", subscription.plan_id))
}

/// An update of subscription `id` of `txn`'s tenant.
fn update(
    txn: &TenantTxn<impl ConnectionTrait + Send>,
    id: BillingSubscriptionId,
    now: DateTime<Utc>,
) -> sea_orm::UpdateMany<billing_subscriptions::Entity> {
    billing_subscriptions::Entity::update_many()
        .col_expr(billing_subscriptions::Column::UpdatedAt, Expr::value(now))
        .filter(billing_subscriptions::Column::Id.eq(id))
        .filter(billing_subscriptions::Column::TenantId.eq(txn.tenant_id()))
}

/// Subscribes the context's tenant to the active plan `plan`: `trialing` for
/// `trial_days` (its first period is the trial), else `active` with a first period of
/// the plan's interval from now. Records `billing_subscription_created`.
///
/// # Errors
/// `Validation` for more than [`super::MAX_TRIAL_DAYS`] days or an unknown (or
/// inactive) plan; `Conflict` when the tenant has a live subscription; `Forbidden`
/// without `billing:manage`; `Db`.
pub async fn subscribe<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    plan: &PlanCode,
    trial_days_requested: u16,
    meta: &RequestMeta,
) -> Result<billing_subscriptions::Model>
where
    C: ConnectionTrait + TransactionTrait,
{
    let days = trial_days(trial_days_requested)?;
    let txn = begin(db, deps, ctx, Need::Manage).await?;
    let plan = find_plan(&txn, plan).await?;
    if live_subscription(&txn).await?.is_some() {
        return Err(already_subscribed());
    }
    let now = deps.now();
    let (status, trial_end, period_end) = if days > 0 {
        let end = now + Duration::days(i64::from(days));
        (SubscriptionStatus::Trialing, Some(end), end)
    } else {
        (
            SubscriptionStatus::Active,
            None,
            next_period_end(now, plan.billing_interval),
        )
    };
    let id = BillingSubscriptionId(deps.new_id(
        "billing_subscriptions",
        &format!("{}/{}", ctx.tenant_id(), now.timestamp_micros()),
    ));
    billing_subscriptions::Entity::insert(billing_subscriptions::ActiveModel {
        id: Set(id),
        tenant_id: Set(ctx.tenant_id()),
        plan_id: Set(plan.id),
        status: Set(status),
        current_period_start: Set(now),
        current_period_end: Set(period_end),
        trial_end: Set(trial_end),
        cancel_at_period_end: Set(false),
        canceled_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        live_tenant_id: NotSet,
    })
    .exec_without_returning(&txn)
    .await
    // Another subscribe won the race.
    .map_err(conflict_on_unique(
        "billing subscription",
        "the tenant already has a live subscription",
    ))?;
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::BillingSubscriptionCreated, meta)
            .resource("billing_subscription", id)
            .details(json!({
                "plan": plan.code,
                "status": status,
                "trial_end": trial_end,
                "current_period_end": period_end,
            })),
    )
    .await?;
    let created = reload(&txn, id).await?;
    txn.commit().await?;
    Ok(created)
}

/// The context's tenant's live (not canceled) subscription, if any.
///
/// # Errors
/// `Forbidden` without `billing:read`; `Db`.
pub async fn current_subscription<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
) -> Result<Option<billing_subscriptions::Model>>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = begin(db, deps, ctx, Need::Read).await?;
    let live = live_subscription(&txn).await?;
    txn.commit().await?;
    Ok(live)
}

pub(super) async fn live_subscription(
    txn: &TenantTxn<impl ConnectionTrait + Send>,
) -> Result<Option<billing_subscriptions::Model>> {
    Ok(billing_subscriptions::Entity::find()
        .filter(billing_subscriptions::Column::LiveTenantId.eq(txn.tenant_id()))
        .filter(billing_subscriptions::Column::TenantId.eq(txn.tenant_id()))
        .one(txn)
        .await?)
}

/// Why a status change is refused, or `None` when the state machine allows it.
fn refusal(from: SubscriptionStatus, to: SubscriptionStatus) -> Option<&'static str> {
    if from.can_move_to(to) {
        None
    } else if from == SubscriptionStatus::Canceled {
        Some("a canceled subscription stays canceled")
    } else if from == to {
        Some("the subscription already has this status")
    } else {
        Some("the subscription's state machine has no such transition")
    }
}

/// Moves subscription `id` to `to`, if the state machine allows it: `trialing` ->
/// `active` ends the trial now and starts a first full period; `past_due` -> `active`
/// keeps the period; `canceled` ends it now. Records
/// `billing_subscription_status_changed`.
///
/// # Errors
/// `Conflict` for a change the state machine does not allow (nothing is written);
/// `NotFound` for a subscription of another tenant or none; `Forbidden` without
/// `billing:manage`; `Db`.
pub async fn set_subscription_status<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    id: BillingSubscriptionId,
    to: SubscriptionStatus,
    meta: &RequestMeta,
) -> Result<billing_subscriptions::Model>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = begin(db, deps, ctx, Need::Manage).await?;
    let subscription = find_locked(&txn, id).await?;
    let from = subscription.status;
    if let Some(reason) = refusal(from, to) {
        return Err(ServiceError::Conflict {
            entity: "billing subscription",
            reason,
        });
    }
    let now = deps.now();
    let mut change =
        update(&txn, id, now).col_expr(billing_subscriptions::Column::Status, Expr::value(to));
    match (from, to) {
        (SubscriptionStatus::Trialing, SubscriptionStatus::Active) => {
            let plan = plan_of(&txn, &subscription).await?;
            change = change
                .col_expr(
                    billing_subscriptions::Column::CurrentPeriodStart,
                    Expr::value(now),
                )
                .col_expr(
                    billing_subscriptions::Column::CurrentPeriodEnd,
                    Expr::value(next_period_end(now, plan.billing_interval)),
                )
                // The trial ends now: later periods count from here.
                .col_expr(billing_subscriptions::Column::TrialEnd, Expr::value(now));
        }
        (_, SubscriptionStatus::Canceled) => {
            change = change.col_expr(billing_subscriptions::Column::CanceledAt, Expr::value(now));
        }
        _ => {}
    }
    change.exec(&txn).await?;
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::BillingSubscriptionStatusChanged, meta)
            .resource("billing_subscription", id)
            .details(json!({ "from": from, "to": to })),
    )
    .await?;
    let changed = reload(&txn, id).await?;
    txn.commit().await?;
    Ok(changed)
}

/// Sets whether subscription `id` ends with its current period (`true`) or renews
/// (`false`). Records `billing_subscription_cancel_scheduled` when the setting changes;
/// asking for the setting it has writes nothing.
///
/// # Errors
/// `Conflict` for a canceled subscription; `NotFound`; `Forbidden` without
/// `billing:manage`; `Db`.
pub async fn schedule_cancel<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    id: BillingSubscriptionId,
    at_period_end: bool,
    meta: &RequestMeta,
) -> Result<billing_subscriptions::Model>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = begin(db, deps, ctx, Need::Manage).await?;
    let subscription = find_locked(&txn, id).await?;
    if !subscription.status.is_live() {
        return Err(ServiceError::Conflict {
            entity: "billing subscription",
            reason: "a canceled subscription stays canceled",
        });
    }
    if subscription.cancel_at_period_end == at_period_end {
        txn.commit().await?;
        return Ok(subscription);
    }
    update(&txn, id, deps.now())
        .col_expr(
            billing_subscriptions::Column::CancelAtPeriodEnd,
            Expr::value(at_period_end),
        )
        .exec(&txn)
        .await?;
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::BillingSubscriptionCancelScheduled, meta)
            .resource("billing_subscription", id)
            .details(json!({
                "cancel_at_period_end": at_period_end,
                "current_period_end": subscription.current_period_end,
            })),
    )
    .await?;
    let changed = reload(&txn, id).await?;
    txn.commit().await?;
    Ok(changed)
}

/// What [`renew_period`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Renewal {
    /// The current period has not ended: nothing changed.
    NotDue(billing_subscriptions::Model),
    /// Rolled into the period that contains now (a trial that ended became `active`).
    Renewed(billing_subscriptions::Model),
    /// It was set to end with its period: now `canceled`, as of the period's end.
    Canceled(billing_subscriptions::Model),
}

/// Rolls subscription `id` over once its current period has ended: canceled (as of the
/// period's end) when it was set to cancel at period end; otherwise into the period of
/// the plan's interval that contains now (back-to-back periods from the old end; a
/// trial that ended becomes `active`). Records `billing_subscription_renewed` or
/// `billing_subscription_status_changed`.
///
/// # Errors
/// `Conflict` for a canceled or past-due subscription (a past-due one renews once it is
/// paid and `active` again); `NotFound`; `Forbidden` without `billing:manage`; `Db`.
pub async fn renew_period<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    id: BillingSubscriptionId,
    meta: &RequestMeta,
) -> Result<Renewal>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = begin(db, deps, ctx, Need::Manage).await?;
    let subscription = find_locked(&txn, id).await?;
    let now = deps.now();
    match subscription.status {
        SubscriptionStatus::Canceled => {
            return Err(ServiceError::Conflict {
                entity: "billing subscription",
                reason: "a canceled subscription stays canceled",
            });
        }
        // Set to end with its period, it ends then, paid or not.
        SubscriptionStatus::PastDue if !subscription.cancel_at_period_end => {
            return Err(ServiceError::Conflict {
                entity: "billing subscription",
                reason: "a past-due subscription renews once it is paid and active again",
            });
        }
        SubscriptionStatus::PastDue | SubscriptionStatus::Trialing | SubscriptionStatus::Active => {
        }
    }
    if now < subscription.current_period_end {
        txn.commit().await?;
        return Ok(Renewal::NotDue(subscription));
    }
    let from = subscription.status;
    if subscription.cancel_at_period_end {
        let ended = subscription.current_period_end;
        update(&txn, id, now)
            .col_expr(
                billing_subscriptions::Column::Status,
                Expr::value(SubscriptionStatus::Canceled),
            )
            .col_expr(
                billing_subscriptions::Column::CanceledAt,
                Expr::value(ended),
            )
            .exec(&txn)
            .await?;
        record(
            &txn,
            deps,
            AuditEntry::by_member(ctx, AuditEvent::BillingSubscriptionStatusChanged, meta)
                .resource("billing_subscription", id)
                .details(json!({
                    "from": from,
                    "to": SubscriptionStatus::Canceled,
                    "at_period_end": ended,
                })),
        )
        .await?;
        let canceled = reload(&txn, id).await?;
        txn.commit().await?;
        return Ok(Renewal::Canceled(canceled));
    }
    let plan = plan_of(&txn, &subscription).await?;
    let anchor = period_anchor(&subscription);
    let (mut start, mut end) = (
        subscription.current_period_end,
        period_end_after(
            anchor,
            subscription.current_period_end,
            plan.billing_interval,
        ),
    );
    let mut rolled = 1;
    while end <= now && rolled < MAX_PERIODS_PER_RENEWAL {
        start = end;
        end = period_end_after(anchor, end, plan.billing_interval);
        rolled += 1;
    }
    update(&txn, id, now)
        .col_expr(
            billing_subscriptions::Column::Status,
            Expr::value(SubscriptionStatus::Active),
        )
        .col_expr(
            billing_subscriptions::Column::CurrentPeriodStart,
            Expr::value(start),
        )
        .col_expr(
            billing_subscriptions::Column::CurrentPeriodEnd,
            Expr::value(end),
        )
        .exec(&txn)
        .await?;
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::BillingSubscriptionRenewed, meta)
            .resource("billing_subscription", id)
            .details(json!({
                "from_status": from,
                "status": SubscriptionStatus::Active,
                "periods": rolled,
                "current_period_start": start,
                "current_period_end": end,
            })),
    )
    .await?;
    let renewed = reload(&txn, id).await?;
    txn.commit().await?;
    Ok(Renewal::Renewed(renewed))
}

/// Moves subscription `id` to the active plan `plan`, at once and without proration
/// (the current period and status stay). Records `billing_subscription_plan_changed`.
///
/// # Errors
/// `Validation` for an unknown (or inactive) plan; `Conflict` for a canceled
/// subscription or the plan it has; `NotFound`; `Forbidden` without `billing:manage`;
/// `Db`.
pub async fn change_plan<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    id: BillingSubscriptionId,
    plan: &PlanCode,
    meta: &RequestMeta,
) -> Result<billing_subscriptions::Model>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = begin(db, deps, ctx, Need::Manage).await?;
    let to = find_plan(&txn, plan).await?;
    let subscription = find_locked(&txn, id).await?;
    if !subscription.status.is_live() {
        return Err(no_live_subscription());
    }
    if subscription.plan_id == to.id {
        return Err(ServiceError::Conflict {
            entity: "billing subscription",
            reason: "the subscription is on this plan already",
        });
    }
    let from = plan_of(&txn, &subscription).await?;
    update(&txn, id, deps.now())
        .col_expr(billing_subscriptions::Column::PlanId, Expr::value(to.id))
        .exec(&txn)
        .await?;
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::BillingSubscriptionPlanChanged, meta)
            .resource("billing_subscription", id)
            .details(json!({ "from": from.code, "to": to.code })),
    )
    .await?;
    let changed = reload(&txn, id).await?;
    txn.commit().await?;
    Ok(changed)
}

#[cfg(test)]
mod unit {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_state_machine_allows_only_its_transitions() {
        use SubscriptionStatus::*;
        let all = [Trialing, Active, PastDue, Canceled];
        let allowed = [
            (Trialing, Active),
            (Trialing, Canceled),
            (Active, PastDue),
            (Active, Canceled),
            (PastDue, Active),
            (PastDue, Canceled),
        ];
        for from in all {
            for to in all {
                assert_eq!(
                    refusal(from, to).is_none(),
                    allowed.contains(&(from, to)),
                    "{from:?} -> {to:?}"
                );
            }
        }
    }

    #[test]
    fn periods_count_from_their_anchor_and_do_not_drift() {
        let at = |y, m, d| Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap();
        let anchor = at(2026, 1, 31);
        let mut end = anchor;
        let mut ends = Vec::new();
        for _ in 0..4 {
            end = period_end_after(anchor, end, PlanInterval::Month);
            ends.push(end);
        }
        assert_eq!(
            ends,
            [
                at(2026, 2, 28),
                at(2026, 3, 31),
                at(2026, 4, 30),
                at(2026, 5, 31)
            ]
        );
        let leap = at(2028, 2, 29);
        let once = period_end_after(leap, leap, PlanInterval::Year);
        assert_eq!(once, at(2029, 2, 28));
        assert_eq!(
            period_end_after(leap, once, PlanInterval::Year),
            at(2030, 2, 28)
        );
        assert_eq!(
            period_end_after(leap, at(2031, 6, 1), PlanInterval::Year),
            at(2032, 2, 29),
            "back to the 29th in the next leap year"
        );
    }

    #[test]
    fn periods_are_calendar_months() {
        let jan31 = Utc.with_ymd_and_hms(2026, 1, 31, 12, 0, 0).unwrap();
        assert_eq!(
            next_period_end(jan31, PlanInterval::Month),
            Utc.with_ymd_and_hms(2026, 2, 28, 12, 0, 0).unwrap()
        );
        assert_eq!(
            next_period_end(jan31, PlanInterval::Year),
            Utc.with_ymd_and_hms(2027, 1, 31, 12, 0, 0).unwrap()
        );
    }
}
