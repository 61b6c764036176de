//! Metered usage: recording it once per idempotency key, summing it per metric and
//! period, and checking it against the plan's limits.

use super::input::{Metric, NewUsage, UsagePeriod};
use super::subscriptions::{live_subscription, no_live_subscription, plan_of};
use super::{Need, begin};
use crate::Result;
use crate::deps::Deps;
use crate::error::ServiceError;
use crate::tenancy::{TenantCtx, TenantTxn};
use chrono::{DateTime, Duration, Utc};
use entity::UsageRecordId;
use entity::billing::usage_records;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait,
};

/// What [`record_usage`] stored, or found stored under the same key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedUsage {
    pub record: usage_records::Model,
    /// The key was used before: `record` is the earlier report, nothing was added.
    pub duplicate: bool,
}

/// How far ahead of the service's clock usage may be dated (the reporter's clock may run
/// a little fast).
pub const USAGE_CLOCK_SKEW: Duration = Duration::minutes(5);
/// How late usage may be reported: older usage would change periods already billed.
pub const USAGE_REPORTING_WINDOW: Duration = Duration::days(35);

/// Usage is dated between [`USAGE_REPORTING_WINDOW`] ago and [`USAGE_CLOCK_SKEW`] from
/// now: a future date would escape the current period's limit, an old one rewrite a
/// closed period.
fn check_occurred_at(occurred_at: DateTime<Utc>, now: DateTime<Utc>) -> Result<()> {
    if occurred_at > now + USAGE_CLOCK_SKEW || occurred_at < now - USAGE_REPORTING_WINDOW {
        return Err(ServiceError::validation(
            "occurred_at",
            format!(
                "must be within the last {} days and at most {} minutes ahead",
                USAGE_REPORTING_WINDOW.num_days(),
                USAGE_CLOCK_SKEW.num_minutes()
            ),
        ));
    }
    Ok(())
}

/// Records `usage` for the context's tenant in the acting user's name, once per
/// idempotency key: a report with a key the tenant used before adds nothing and returns
/// the stored record (`duplicate`), also when the two race (the database's unique key on
/// `(tenant_id, idempotency_key)` decides, and the loser reads the winner's row).
/// Not audited: the record itself says who reported what and when.
///
/// # Errors
/// `Validation` (`occurred_at`) for usage dated more than [`USAGE_CLOCK_SKEW`] ahead or
/// [`USAGE_REPORTING_WINDOW`] back; `Conflict` when the key was used for another
/// metric or quantity (nothing is written); `Forbidden` without `usage:record`; `Db`.
pub async fn record_usage<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    usage: &NewUsage,
) -> Result<RecordedUsage>
where
    C: ConnectionTrait + TransactionTrait,
{
    let now = deps.now();
    check_occurred_at(usage.occurred_at, now)?;
    let txn = begin(db, deps, ctx, Need::RecordUsage).await?;
    let id = UsageRecordId(deps.new_id(
        "usage_records",
        &format!("{}/{}", ctx.tenant_id(), usage.key.as_str()),
    ));
    let model = usage_records::Model {
        id,
        tenant_id: ctx.tenant_id(),
        metric: usage.metric.as_str().to_owned(),
        quantity: usage.quantity,
        idempotency_key: usage.key.as_str().to_owned(),
        occurred_at: usage.occurred_at,
        recorded_by: Some(ctx.actor()),
        created_at: now,
    };
    let backend = txn.get_database_backend();
    let mut keep = OnConflict::columns([
        usage_records::Column::TenantId,
        usage_records::Column::IdempotencyKey,
    ]);
    if backend == DbBackend::MySql {
        // MariaDB has no DO NOTHING: a no-op update (PostgreSQL's runtime role may not
        // update usage records, so not there).
        keep.update_column(usage_records::Column::IdempotencyKey);
    } else {
        keep.do_nothing();
    }
    let inserted = usage_records::Entity::insert(usage_records::ActiveModel::from(model))
        .on_conflict(keep)
        .exec_without_returning(&txn)
        .await;
    match inserted {
        Ok(_) | Err(DbErr::RecordNotInserted) => {}
        Err(e) => return Err(e.into()),
    }
    let stored = stored_under_key(&txn, usage).await?;
    let duplicate = stored.id != id;
    if duplicate && (stored.metric != usage.metric.as_str() || stored.quantity != usage.quantity) {
        return Err(ServiceError::Conflict {
            entity: "usage record",
            reason: "this idempotency key was used for another metric or quantity",
        });
    }
    txn.commit().await?;
    Ok(RecordedUsage {
        record: stored,
        duplicate,
    })
}

/// The record the tenant holds under `usage`'s key. MariaDB reads it with a lock: a
/// plain read there sees the transaction's snapshot, taken before a concurrent writer
/// committed the row; PostgreSQL's READ COMMITTED and SQLite's single writer see it as
/// it is.
async fn stored_under_key(
    txn: &TenantTxn<impl ConnectionTrait + Send>,
    usage: &NewUsage,
) -> Result<usage_records::Model> {
    let mut find = usage_records::Entity::find()
        .filter(usage_records::Column::TenantId.eq(txn.tenant_id()))
        .filter(usage_records::Column::IdempotencyKey.eq(usage.key.as_str()));
    if txn.get_database_backend() == DbBackend::MySql {
        find = find.lock_exclusive();
    }
    find.one(txn).await?.ok_or_else(|| {
        DbErr::RecordNotFound(format!("usage record under key {}", usage.key.as_str())).into()
    })
}

/// The usage of one metric in one period.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageSummary {
    pub metric: String,
    pub period: UsagePeriod,
    /// The sum of the quantities recorded with `occurred_at` in the period.
    pub total: i64,
    /// How many records that sum has.
    pub records: i64,
}

/// `SUM(quantity)` as a 64-bit integer on every backend (PostgreSQL sums `bigint` into
/// `numeric`, MariaDB into `DECIMAL`), 0 when nothing matched.
fn total_expr(backend: DbBackend) -> Expr {
    Expr::cust(match backend {
        DbBackend::Postgres => "CAST(COALESCE(SUM(quantity), 0) AS BIGINT)",
        DbBackend::MySql => "CAST(COALESCE(SUM(quantity), 0) AS SIGNED)",
        _ => "COALESCE(SUM(quantity), 0)",
    })
}

fn in_period(
    txn: &TenantTxn<impl ConnectionTrait + Send>,
    period: UsagePeriod,
) -> sea_orm::Select<usage_records::Entity> {
    usage_records::Entity::find()
        .filter(usage_records::Column::TenantId.eq(txn.tenant_id()))
        .filter(usage_records::Column::OccurredAt.gte(period.start))
        .filter(usage_records::Column::OccurredAt.lt(period.end))
}

async fn sum(
    txn: &TenantTxn<impl ConnectionTrait + Send>,
    metric: &str,
    period: UsagePeriod,
) -> Result<(i64, i64)> {
    let (total, records) = in_period(txn, period)
        .filter(usage_records::Column::Metric.eq(metric))
        .select_only()
        .column_as(total_expr(txn.get_database_backend()), "total")
        .column_as(Expr::cust("COUNT(*)"), "records")
        .into_tuple::<(i64, i64)>()
        .one(txn)
        .await?
        .unwrap_or((0, 0));
    Ok((total, records))
}

/// The context's tenant's usage of `metric` with `occurred_at` in `period`.
///
/// # Errors
/// `Forbidden` without `billing:read`; `Db`.
pub async fn usage_summary<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    metric: &Metric,
    period: UsagePeriod,
) -> Result<UsageSummary>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = begin(db, deps, ctx, Need::Read).await?;
    let (total, records) = sum(&txn, metric.as_str(), period).await?;
    txn.commit().await?;
    Ok(UsageSummary {
        metric: metric.as_str().to_owned(),
        period,
        total,
        records,
    })
}

/// The context's tenant's usage of every metric it recorded in `period`, by metric
/// name.
///
/// # Errors
/// `Forbidden` without `billing:read`; `Db`.
pub async fn usage_by_metric<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    period: UsagePeriod,
) -> Result<Vec<UsageSummary>>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = begin(db, deps, ctx, Need::Read).await?;
    let rows = in_period(&txn, period)
        .select_only()
        .column(usage_records::Column::Metric)
        .column_as(total_expr(txn.get_database_backend()), "total")
        .column_as(Expr::cust("COUNT(*)"), "records")
        .group_by(usage_records::Column::Metric)
        .order_by_asc(usage_records::Column::Metric)
        .into_tuple::<(String, i64, i64)>()
        .all(&txn)
        .await?;
    txn.commit().await?;
    Ok(rows
        .into_iter()
        .map(|(metric, total, records)| UsageSummary {
            metric,
            period,
            total,
            records,
        })
        .collect())
}

/// The answer of [`check_limit`] when `additional` fits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitCheck {
    pub metric: String,
    /// The plan's limit per period; `None`: unlimited.
    pub limit: Option<i64>,
    /// Recorded so far in the current period.
    pub used: i64,
    /// What is left after `additional`; `None`: unlimited.
    pub remaining: Option<i64>,
    /// The subscription's current period.
    pub period: UsagePeriod,
}

/// Would `additional` more of `metric` stay within the plan of the tenant's live
/// subscription, counting what was recorded in its current period? A metric the plan
/// does not limit is unlimited.
///
/// The answer holds at the instant it is given: two callers may both be told yes
/// before either records.
///
/// # Errors
/// `LimitExceeded` when it would not; `Validation` (`additional`) for a negative
/// amount; `Conflict` when the tenant has no live subscription; `Forbidden` without
/// `billing:read`; `Db`.
pub async fn check_limit<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    metric: &Metric,
    additional: i64,
) -> Result<LimitCheck>
where
    C: ConnectionTrait + TransactionTrait,
{
    if additional < 0 {
        return Err(ServiceError::validation(
            "additional",
            "must not be negative",
        ));
    }
    let txn = begin(db, deps, ctx, Need::Read).await?;
    let subscription = live_subscription(&txn)
        .await?
        .ok_or_else(no_live_subscription)?;
    let plan = plan_of(&txn, &subscription).await?;
    // A period whose renewal is overdue lasts until it is renewed: usage recorded
    // meanwhile counts against it, not against nothing.
    let period = UsagePeriod::current(&subscription);
    let now = deps.now();
    let counted = if now >= period.end {
        UsagePeriod {
            start: period.start,
            end: now + USAGE_CLOCK_SKEW + Duration::microseconds(1),
        }
    } else {
        period
    };
    let (used, _) = sum(&txn, metric.as_str(), counted).await?;
    txn.commit().await?;
    let limit = match plan.limits.get(metric.as_str()) {
        None => None,
        Some(max) => Some(max.as_i64().ok_or(ServiceError::Conflict {
            entity: "billing plan",
            reason: "its limit for this metric is not a whole number; fix the plan",
        })?),
    };
    let Some(limit) = limit else {
        return Ok(LimitCheck {
            metric: metric.as_str().to_owned(),
            limit: None,
            used,
            remaining: None,
            period,
        });
    };
    let after = used.saturating_add(additional);
    if after > limit {
        return Err(ServiceError::LimitExceeded {
            metric: metric.as_str().to_owned(),
            limit,
            used,
            requested: additional,
        });
    }
    Ok(LimitCheck {
        metric: metric.as_str().to_owned(),
        limit: Some(limit),
        used,
        remaining: Some(limit - after),
        period,
    })
}
