//! Billing fixtures, through `service::billing` like any caller: the plan catalogue
//! (free, pro, enterprise), a subscription per tenant matching its tier (Tech Startup
//! still in its trial), usage for Acme, Tech Startup and Healthy Stellar, and payment
//! records for Acme (a US customer, routed to Stripe) and Healthy Stellar, whose
//! billing country is set to Mexico so that one demo customer is routed to Conekta (no
//! demo tenant is Mexican). The payment providers are the in-process
//! `RecordingProvider`s: no real provider is called.

use crate::{SeedError, fixture_error};
use chrono::Duration;
use entity::billing::billing_plans::PlanInterval;
use entity::billing::payment_methods::PaymentMethodKind;
use entity::tenancy::tenants::PlanTier;
use entity::{TenantId, UserId};
use sea_orm::{ConnectionTrait, TransactionTrait};
use service::billing::{
    self, Country, Currency, IdempotencyKey, Money, NewPaymentMethod, NewPlan, NewUsage, PlanCode,
    PlanInput, ProviderRouter, RecordingProvider,
};
use service::input::Email;
use service::tenancy::TenantCtx;
use service::{Deps, ManualClock, RequestMeta};
use std::collections::HashMap;
use std::sync::Arc;

/// A plan of the catalogue: code, name, description, monthly price in US cents, limits
/// per period (a metric not named is unlimited).
type PlanFixture = (
    &'static str,
    &'static str,
    &'static str,
    i64,
    &'static [(&'static str, i64)],
);

const PLANS: [PlanFixture; 3] = [
    (
        "free",
        "Free",
        "For trying it out: 3 seats, 1,000 API calls and 100 agent tasks a month",
        0,
        &[("seats", 3), ("api_calls", 1_000), ("agent_tasks", 100)],
    ),
    (
        "pro",
        "Pro",
        "For growing teams: 25 seats, 100,000 API calls and 10,000 agent tasks a month",
        4_900,
        &[
            ("seats", 25),
            ("api_calls", 100_000),
            ("agent_tasks", 10_000),
        ],
    ),
    (
        "enterprise",
        "Enterprise",
        "Unlimited seats and agent tasks, 10,000,000 API calls a month",
        99_900,
        &[("api_calls", 10_000_000)],
    ),
];

/// Each tenant's subscription: its plan (its tier's) and trial days.
const SUBSCRIPTIONS: [(&str, PlanTier, u16); 5] = [
    ("acme", PlanTier::Enterprise, 0),
    ("techstartup", PlanTier::Pro, 14),
    ("healthcare", PlanTier::Free, 0),
    ("healthy-stellar", PlanTier::Enterprise, 0),
    ("rento", PlanTier::Pro, 0),
];

/// Usage reported by each tenant: metric and quantity per report.
const USAGE: [(&str, &[(&str, i64)]); 3] = [
    (
        "acme",
        &[("api_calls", 1_200), ("agent_tasks", 3), ("api_calls", 800)],
    ),
    ("techstartup", &[("api_calls", 450), ("agent_tasks", 12)]),
    ("healthy-stellar", &[("api_calls", 300), ("seats", 14)]),
];

fn plan_code(tier: PlanTier) -> &'static str {
    match tier {
        PlanTier::Free => "free",
        PlanTier::Pro => "pro",
        PlanTier::Enterprise => "enterprise",
    }
}

/// Loads the catalogue, then the rows of each tenant the profile has, by its owner.
pub(crate) async fn load<C>(
    db: &C,
    deps: &Deps,
    clock: &ManualClock,
    tenants: &HashMap<&str, TenantId>,
    owners: &HashMap<&str, UserId>,
) -> Result<(), SeedError>
where
    C: ConnectionTrait + TransactionTrait + 'static,
{
    let step = Duration::seconds(1);
    let meta = RequestMeta::system();
    for (code, name, description, price, limits) in PLANS {
        let on_err = fixture_error(format!("billing plan {code}"));
        let plan = NewPlan::parse(&PlanInput {
            code,
            name,
            description,
            price_minor: price,
            currency: "USD",
            interval: PlanInterval::Month,
            limits,
        })
        .map_err(&on_err)?;
        billing::define_plan(db, deps, plan, &meta)
            .await
            .map_err(&on_err)?;
        clock.advance(step);
    }

    let member = |slug: &str| -> Option<(TenantId, UserId)> {
        Some((*tenants.get(slug)?, *owners.get(slug)?))
    };
    for (slug, tier, trial_days) in SUBSCRIPTIONS {
        let Some((tenant, owner)) = member(slug) else {
            continue;
        };
        let on_err = fixture_error(format!("{slug} subscription"));
        let ctx = TenantCtx::for_member(db, tenant, owner)
            .await
            .map_err(&on_err)?;
        let plan = PlanCode::parse(plan_code(tier)).map_err(&on_err)?;
        billing::subscribe(db, deps, &ctx, &plan, trial_days, &meta)
            .await
            .map_err(&on_err)?;
        clock.advance(step);
    }

    for (slug, reports) in USAGE {
        let Some((tenant, owner)) = member(slug) else {
            continue;
        };
        let on_err = fixture_error(format!("{slug} usage"));
        let ctx = TenantCtx::for_member(db, tenant, owner)
            .await
            .map_err(&on_err)?;
        for (n, (metric, quantity)) in reports.iter().enumerate() {
            let usage = NewUsage::parse(
                metric,
                *quantity,
                &format!("{slug}-usage-{n}"),
                // In the subscription's current period, which began moments ago.
                deps.now(),
            )
            .map_err(&on_err)?;
            billing::record_usage(db, deps, &ctx, &usage)
                .await
                .map_err(&on_err)?;
            clock.advance(step);
        }
    }

    let router = ProviderRouter::from_config(
        deps,
        vec![
            Arc::new(RecordingProvider::stripe(deps)),
            Arc::new(RecordingProvider::conekta(deps)),
        ],
    );
    // Acme pays by card in dollars; Healthy Stellar, billed in Mexico, by OXXO voucher in
    // pesos.
    let payers = [
        ("acme", "US", "billing@acme.com", None, "USD", 99_900),
        (
            "healthy-stellar",
            "MX",
            "billing@healthystellar.com",
            Some(PaymentMethodKind::Oxxo),
            "MXN",
            1_698_300,
        ),
    ];
    for (slug, country, email, kind, currency, amount) in payers {
        let Some((tenant, owner)) = member(slug) else {
            continue;
        };
        let on_err = fixture_error(format!("{slug} payments"));
        let ctx = TenantCtx::for_member(db, tenant, owner)
            .await
            .map_err(&on_err)?;
        let country = Country::parse(country).map_err(&on_err)?;
        let email = Email::parse(email).map_err(&on_err)?;
        let customer =
            billing::create_customer(db, deps, &ctx, &router, &country, Some(&email), &meta)
                .await
                .map_err(&on_err)?;
        clock.advance(step);
        let method = match kind {
            Some(kind) => NewPaymentMethod::other(kind),
            None => NewPaymentMethod::card("visa", "4242"),
        }
        .map_err(&on_err)?;
        billing::add_payment_method(db, deps, &ctx, &router, customer.id, &method, true, &meta)
            .await
            .map_err(&on_err)?;
        clock.advance(step);
        let amount =
            Money::new(amount, Currency::parse(currency).map_err(&on_err)?).map_err(&on_err)?;
        let key = IdempotencyKey::parse(&format!("{slug}-invoice-2026-01")).map_err(&on_err)?;
        billing::create_payment_intent(db, deps, &ctx, &router, customer.id, &amount, &key, &meta)
            .await
            .map_err(&on_err)?;
        clock.advance(step);
    }
    Ok(())
}
