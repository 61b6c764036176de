//! Billing and usage: the plan catalogue, each tenant's subscription and its state
//! machine, metered usage with idempotent recording, sums and plan limits, and payment
//! records kept through a [`PaymentProvider`].
//!
//! Every tenant operation runs in the tenant's transaction ([`TenantCtx::begin`]). The
//! tenant's owners and admins may do all of it; other members need, tenant-wide
//! ([`has_permission`]):
//! - `billing:manage` to subscribe, change a subscription (status, plan, cancellation,
//!   renewal) and to create payment customers, methods and intents;
//! - `billing:read` (or `billing:manage`) to read the subscription, usage sums and
//!   limits;
//! - `usage:record` to record usage.
//!
//! Subscriptions move `trialing` -> `active` | `canceled`, `active` -> `past_due` |
//! `canceled`, `past_due` -> `active` | `canceled`; any other change is refused with
//! `Conflict` and writes nothing. One subscription per tenant is live (not canceled);
//! canceled ones stay as history. Plans change at once, without proration.
//!
//! Audited: every change of a subscription and every payment record. Usage records are
//! not: each one is its own record of who reported what and when, and the volume of
//! metering would drown the trail.
//!
//! Payments: no real provider is called. [`RecordingProvider`] is an in-process
//! stand-in that answers with made-up provider ids (from [`Deps`]'s randomness) and
//! keeps a log of the calls; talking to Stripe's or Conekta's API is out of scope, and a
//! real client would implement [`PaymentProvider`].

use crate::Result;
use crate::access::{Scope, has_permission};
use crate::deps::Deps;
use crate::error::ServiceError;
use crate::tenancy::{TenantCtx, TenantTxn};
use sea_orm::{ConnectionTrait, TransactionTrait};

mod input;
mod payments;
mod plans;
mod provider;
mod recording;
mod subscriptions;
mod usage;

pub use input::{
    Country, Currency, IdempotencyKey, MAX_AMOUNT_MINOR, MAX_IDEMPOTENCY_KEY_CHARS,
    MAX_PLAN_LIMITS, MAX_QUANTITY, MAX_TRIAL_DAYS, Metric, Money, NewPaymentMethod, NewPlan,
    NewUsage, PlanCode, PlanInput, UsagePeriod,
};
pub use payments::{
    add_payment_method, create_customer, create_payment_intent, set_default_payment_method,
    set_payment_intent_status,
};
pub use plans::{define_plan, find_plan, list_plans};
pub use provider::{
    PaymentProvider, PaymentRouting, ProviderCustomer, ProviderIntent, ProviderMethod,
    ProviderRouter,
};
pub use recording::{ProviderCall, RecordingProvider};
pub use subscriptions::{
    Renewal, change_plan, current_subscription, renew_period, schedule_cancel,
    set_subscription_status, subscribe,
};
pub use usage::{
    LimitCheck, RecordedUsage, UsageSummary, check_limit, record_usage, usage_by_metric,
    usage_summary,
};

/// What an operation needs beyond membership.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Need {
    /// `billing:manage`.
    Manage,
    /// `billing:read` or `billing:manage`.
    Read,
    /// `usage:record`.
    RecordUsage,
}

/// Opens the tenant's transaction and checks, in it, that the actor is an owner or
/// admin, or holds what `need` names.
async fn begin<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    need: Need,
) -> Result<TenantTxn<C::Transaction>>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = ctx.begin(db).await?;
    if txn.is_owner_or_admin() {
        return Ok(txn);
    }
    let holds = |resource: &'static str, action: &'static str| {
        has_permission(&txn, deps, ctx.actor(), resource, action, Scope::Tenant)
    };
    let (allowed, reason) = match need {
        Need::Manage => (
            holds("billing", "manage").await?,
            "managing billing needs billing:manage",
        ),
        Need::Read => (
            holds("billing", "read").await? || holds("billing", "manage").await?,
            "reading billing needs billing:read",
        ),
        Need::RecordUsage => (
            holds("usage", "record").await?,
            "recording usage needs usage:record",
        ),
    };
    if !allowed {
        return Err(ServiceError::Forbidden { reason });
    }
    Ok(txn)
}
