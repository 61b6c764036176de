//! Billing and usage: permissions and bad input, usage counted once per idempotency key
//! under concurrency, the subscription state machine (refused changes write nothing),
//! cancellation at the period's end and renewal, plan changes and limits, payment
//! routing by country (and by configuration), and tenant isolation.

use chrono::{Duration, Months};
use entity::billing::billing_plans::PlanInterval;
use entity::billing::billing_subscriptions::{self, SubscriptionStatus};
use entity::billing::payment_customers::{self, ProviderName};
use entity::billing::payment_intents::{self, PaymentIntentStatus};
use entity::billing::payment_methods::{self, PaymentMethodKind};
use entity::billing::usage_records;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use service::access::Scope;
use service::billing::{
    self, Country, Currency, IdempotencyKey, Metric, Money, NewPaymentMethod, NewPlan, NewUsage,
    PaymentRouting, PlanCode, PlanInput, ProviderCall, ProviderRouter, RecordingProvider, Renewal,
    UsagePeriod,
};
use service::input::Email;
use service::tenancy::TenantCtx;
use service::{Deps, ServiceConfig, ServiceError};
use std::collections::BTreeMap;
use std::sync::Arc;
use tests::access_world::{World, give, role, world};
use tests::fixtures::{self, meta};
use tests::inspect::count_events;
use tests::{Backend, TestDb};

tests::backend_tests!(Migrated:
    billing_needs_permissions_and_bad_input_writes_nothing,
    billing_usage_counts_once_per_key_under_concurrency,
    billing_refused_transitions_write_nothing,
    billing_cancel_at_period_end_and_renewal,
    billing_plan_changes_and_limits,
    billing_payments_route_by_country_and_configuration,
    billing_other_tenants_rows_are_out_of_reach,
    billing_usage_dates_exact_keys_and_overdue_periods,
);

/// Every billing event type, for "nothing was audited" checks.
const BILLING_EVENTS: &[&str] = &[
    "billing_subscription_created",
    "billing_subscription_status_changed",
    "billing_subscription_plan_changed",
    "billing_subscription_cancel_scheduled",
    "billing_subscription_renewed",
    "payment_customer_created",
    "payment_method_added",
    "payment_method_default_changed",
    "payment_intent_created",
    "payment_intent_status_changed",
];

async fn billing_events(t: &TestDb) -> u64 {
    let mut total = 0;
    for code in BILLING_EVENTS {
        total += count_events(&t.owner, code).await;
    }
    total
}

/// Rows of every billing tenant table.
async fn billing_rows(t: &TestDb) -> [u64; 5] {
    [
        billing_subscriptions::Entity::find()
            .count(&t.owner)
            .await
            .expect("counts"),
        usage_records::Entity::find()
            .count(&t.owner)
            .await
            .expect("counts"),
        payment_customers::Entity::find()
            .count(&t.owner)
            .await
            .expect("counts"),
        payment_methods::Entity::find()
            .count(&t.owner)
            .await
            .expect("counts"),
        payment_intents::Entity::find()
            .count(&t.owner)
            .await
            .expect("counts"),
    ]
}

/// The catalogue: `free` (1,000 API calls a month), `pro` (100,000), `enterprise`
/// (API calls limited, seats not), all monthly; and `yearly` (a year).
async fn plans(t: &TestDb, w: &World) {
    for (code, price, interval, limits) in [
        (
            "free",
            0,
            PlanInterval::Month,
            &[("api_calls", 1_000), ("seats", 3)][..],
        ),
        (
            "pro",
            4_900,
            PlanInterval::Month,
            &[("api_calls", 100_000), ("seats", 25)][..],
        ),
        (
            "enterprise",
            99_900,
            PlanInterval::Month,
            &[("api_calls", 10_000_000)][..],
        ),
        ("yearly", 49_000, PlanInterval::Year, &[][..]),
    ] {
        let plan = NewPlan::parse(&PlanInput {
            code,
            name: code,
            description: "A plan",
            price_minor: price,
            currency: "USD",
            interval,
            limits,
        })
        .expect("valid plan");
        billing::define_plan(&t.owner, &w.deps, plan, &meta())
            .await
            .expect("plan defined");
    }
}

fn plan(code: &str) -> PlanCode {
    PlanCode::parse(code).expect("valid")
}

fn metric(name: &str) -> Metric {
    Metric::parse(name).expect("valid")
}

fn usage(name: &str, quantity: i64, key: &str, w: &World) -> NewUsage {
    NewUsage::parse(name, quantity, key, w.deps.now()).expect("valid")
}

async fn alice(t: &TestDb, w: &World) -> TenantCtx {
    TenantCtx::for_member(&t.db, w.acme.id, w.alice)
        .await
        .expect("owner")
}

async fn bob(t: &TestDb, w: &World) -> TenantCtx {
    TenantCtx::for_member(&t.db, w.acme.id, w.bob)
        .await
        .expect("member")
}

fn recording_router(
    deps: &Deps,
) -> (
    ProviderRouter,
    Arc<RecordingProvider>,
    Arc<RecordingProvider>,
) {
    let stripe = Arc::new(RecordingProvider::stripe(deps));
    let conekta = Arc::new(RecordingProvider::conekta(deps));
    let router = ProviderRouter::from_config(deps, vec![stripe.clone(), conekta.clone()]);
    (router, stripe, conekta)
}

async fn billing_needs_permissions_and_bad_input_writes_nothing(t: TestDb) {
    let w = world(&t).await;
    plans(&t, &w).await;
    let bob = bob(&t, &w).await;
    let now = w.deps.now();

    // A member without billing permissions.
    let refused = billing::subscribe(&t.db, &w.deps, &bob, &plan("pro"), 0, &meta()).await;
    assert!(
        matches!(refused, Err(ServiceError::Forbidden { .. })),
        "{refused:?}"
    );
    let refused =
        billing::record_usage(&t.db, &w.deps, &bob, &usage("api_calls", 1, "k1", &w)).await;
    assert!(
        matches!(refused, Err(ServiceError::Forbidden { .. })),
        "{refused:?}"
    );
    let refused = billing::check_limit(&t.db, &w.deps, &bob, &metric("api_calls"), 1).await;
    assert!(
        matches!(refused, Err(ServiceError::Forbidden { .. })),
        "{refused:?}"
    );
    let (router, _, _) = recording_router(&w.deps);
    let us = Country::parse("US").expect("valid");
    let refused = billing::create_customer(&t.db, &w.deps, &bob, &router, &us, None, &meta()).await;
    assert!(
        matches!(refused, Err(ServiceError::Forbidden { .. })),
        "{refused:?}"
    );

    // Bad input is refused before any query, with the field it is about.
    for (raw, quantity, key, field) in [
        ("API calls", 1, "k", "metric"),
        ("", 1, "k", "metric"),
        ("api_calls", 0, "k", "quantity"),
        ("api_calls", -3, "k", "quantity"),
        ("api_calls", billing::MAX_QUANTITY + 1, "k", "quantity"),
        ("api_calls", 1, "", "idempotency_key"),
        ("api_calls", 1, &"k".repeat(129), "idempotency_key"),
        ("api_calls", 1, "key with spaces", "idempotency_key"),
    ] {
        let err = NewUsage::parse(raw, quantity, key, now).expect_err("refused");
        assert!(
            matches!(&err, ServiceError::Validation { field: f, .. } if *f == field),
            "{raw:?} {quantity} {key:?}: {err:?}"
        );
    }
    for bad in ["usd", "US", "USDX", "U$D"] {
        assert!(
            matches!(
                Currency::parse(bad),
                Err(ServiceError::Validation {
                    field: "currency",
                    ..
                })
            ),
            "{bad:?}"
        );
    }
    for bad in ["mx", "MEX", "M", "1X"] {
        assert!(
            matches!(
                Country::parse(bad),
                Err(ServiceError::Validation {
                    field: "country",
                    ..
                })
            ),
            "{bad:?}"
        );
    }
    let usd = Currency::parse("USD").expect("valid");
    assert!(matches!(
        Money::new(0, usd.clone()),
        Err(ServiceError::Validation {
            field: "amount",
            ..
        })
    ));
    assert!(matches!(
        PlanCode::parse("Pro!"),
        Err(ServiceError::Validation { field: "plan", .. })
    ));
    assert!(NewPaymentMethod::card("visa", "42").is_err());
    assert!(NewPaymentMethod::other(PaymentMethodKind::Card).is_err());

    // Parsed but refused by what the database holds, or by its bounds: still nothing
    // written.
    let owner = alice(&t, &w).await;
    let unknown = billing::subscribe(&t.db, &w.deps, &owner, &plan("platinum"), 0, &meta()).await;
    assert!(
        matches!(unknown, Err(ServiceError::Validation { field: "plan", .. })),
        "{unknown:?}"
    );
    let long_trial = billing::subscribe(&t.db, &w.deps, &owner, &plan("pro"), 91, &meta()).await;
    assert!(
        matches!(
            long_trial,
            Err(ServiceError::Validation {
                field: "trial_days",
                ..
            })
        ),
        "{long_trial:?}"
    );
    let no_subscription =
        billing::check_limit(&t.db, &w.deps, &owner, &metric("api_calls"), 1).await;
    assert!(
        matches!(no_subscription, Err(ServiceError::Conflict { .. })),
        "{no_subscription:?}"
    );
    let negative = billing::check_limit(&t.db, &w.deps, &owner, &metric("api_calls"), -1).await;
    assert!(
        matches!(
            negative,
            Err(ServiceError::Validation {
                field: "additional",
                ..
            })
        ),
        "{negative:?}"
    );
    assert_eq!(billing_rows(&t).await, [0; 5]);
    assert_eq!(billing_events(&t).await, 0);

    // The catalogue belongs to the schema owner: the runtime role cannot write it.
    if t.backend == Backend::Postgres {
        let plan = NewPlan::parse(&PlanInput {
            code: "rogue",
            name: "Rogue",
            description: "Free forever",
            price_minor: 0,
            currency: "USD",
            interval: PlanInterval::Month,
            limits: &[],
        })
        .expect("valid");
        let refused = billing::define_plan(&t.db, &w.deps, plan, &meta()).await;
        assert!(
            matches!(refused, Err(ServiceError::Forbidden { .. })),
            "{refused:?}"
        );
    }

    // With the permissions, the same member may.
    let managers = role(
        &t,
        &w,
        "billing-manager",
        &[("billing", "manage"), ("usage", "record")],
    )
    .await;
    give(&t, &w, w.bob, &managers, Scope::Tenant).await;
    let subscription = billing::subscribe(&t.db, &w.deps, &bob, &plan("pro"), 0, &meta())
        .await
        .expect("subscribed");
    assert_eq!(subscription.status, SubscriptionStatus::Active);
    assert_eq!(subscription.live_tenant_id, Some(w.acme.id));
    let recorded = billing::record_usage(&t.db, &w.deps, &bob, &usage("api_calls", 1, "k1", &w))
        .await
        .expect("recorded");
    assert_eq!(recorded.record.recorded_by, Some(w.bob));
    assert!(!recorded.duplicate);
    // billing:manage reads, too.
    billing::check_limit(&t.db, &w.deps, &bob, &metric("api_calls"), 1)
        .await
        .expect("read with billing:manage");
    assert_eq!(billing_rows(&t).await, [1, 1, 0, 0, 0]);
    assert_eq!(
        count_events(&t.owner, "billing_subscription_created").await,
        1
    );
}

async fn billing_usage_counts_once_per_key_under_concurrency(t: TestDb) {
    let w = world(&t).await;
    plans(&t, &w).await;
    let ctx = Arc::new(alice(&t, &w).await);
    billing::subscribe(&t.db, &w.deps, &ctx, &plan("pro"), 0, &meta())
        .await
        .expect("subscribed");
    let period = UsagePeriod::new(
        w.deps.now() - Duration::days(1),
        w.deps.now() + Duration::days(1),
    )
    .expect("valid");

    // Eight writers report the same usage under one key at once: it counts once.
    let same = usage("api_calls", 5, "request-1", &w);
    let mut writers = Vec::new();
    for _ in 0..8 {
        let (db, deps, ctx, same) = (t.db.clone(), w.deps.clone(), ctx.clone(), same.clone());
        writers.push(tokio::spawn(async move {
            billing::record_usage(&db, &deps, &ctx, &same)
                .await
                .expect("recorded or found")
        }));
    }
    let mut answers = Vec::new();
    for writer in writers {
        answers.push(writer.await.expect("writer"));
    }
    let first: Vec<_> = answers.iter().filter(|a| !a.duplicate).collect();
    assert_eq!(first.len(), 1, "exactly one writer stored it: {answers:?}");
    assert!(
        answers.iter().all(|a| a.record == first[0].record),
        "every writer got the stored record"
    );
    let summary = billing::usage_summary(&t.db, &w.deps, &ctx, &metric("api_calls"), period)
        .await
        .expect("summary");
    assert_eq!((summary.total, summary.records), (5, 1));

    // Eight writers with distinct keys: all count, exactly.
    let mut writers = Vec::new();
    for k in 0..8i64 {
        let (db, deps, ctx) = (t.db.clone(), w.deps.clone(), ctx.clone());
        let report = usage("api_calls", k + 1, &format!("request-distinct-{k}"), &w);
        writers.push(tokio::spawn(async move {
            billing::record_usage(&db, &deps, &ctx, &report)
                .await
                .expect("recorded")
        }));
    }
    for writer in writers {
        assert!(!writer.await.expect("writer").duplicate);
    }
    let summary = billing::usage_summary(&t.db, &w.deps, &ctx, &metric("api_calls"), period)
        .await
        .expect("summary");
    assert_eq!((summary.total, summary.records), (5 + 36, 9));

    // The same key for other usage is a conflict, and adds nothing.
    for other in [
        usage("api_calls", 6, "request-1", &w),
        usage("seats", 5, "request-1", &w),
    ] {
        let refused = billing::record_usage(&t.db, &w.deps, &ctx, &other).await;
        assert!(
            matches!(
                refused,
                Err(ServiceError::Conflict {
                    entity: "usage record",
                    ..
                })
            ),
            "{refused:?}"
        );
    }
    // A retry of the same report, later, is still the same record.
    w.clock.advance(Duration::minutes(5));
    let retried = billing::record_usage(&t.db, &w.deps, &ctx, &same)
        .await
        .expect("found");
    assert!(retried.duplicate);
    assert_eq!(retried.record, first[0].record);
    assert_eq!(
        usage_records::Entity::find()
            .count(&t.owner)
            .await
            .expect("counts"),
        9
    );
    let by_metric = billing::usage_by_metric(&t.db, &w.deps, &ctx, period)
        .await
        .expect("by metric");
    assert_eq!(by_metric.len(), 1);
    assert_eq!(
        (by_metric[0].metric.as_str(), by_metric[0].total),
        ("api_calls", 41)
    );
    // Usage outside the period is not in its sum.
    let later = UsagePeriod::new(period.end, period.end + Duration::days(1)).expect("valid");
    let none = billing::usage_summary(&t.db, &w.deps, &ctx, &metric("api_calls"), later)
        .await
        .expect("summary");
    assert_eq!((none.total, none.records), (0, 0));
}

async fn billing_refused_transitions_write_nothing(t: TestDb) {
    let w = world(&t).await;
    plans(&t, &w).await;
    let ctx = alice(&t, &w).await;
    let trialing = billing::subscribe(&t.db, &w.deps, &ctx, &plan("pro"), 14, &meta())
        .await
        .expect("subscribed");
    assert_eq!(trialing.status, SubscriptionStatus::Trialing);
    assert_eq!(
        trialing.trial_end,
        Some(fixtures::start_time() + Duration::days(14))
    );
    assert_eq!(
        trialing.current_period_end,
        fixtures::start_time() + Duration::days(14)
    );
    let again = billing::subscribe(&t.db, &w.deps, &ctx, &plan("free"), 0, &meta()).await;
    assert!(
        matches!(again, Err(ServiceError::Conflict { .. })),
        "one live subscription per tenant: {again:?}"
    );

    let stored = |id| billing_subscriptions::Entity::find_by_id(id).one(&t.owner);
    let id = trialing.id;
    let m = meta();
    let set = |to| billing::set_subscription_status(&t.db, &w.deps, &ctx, id, to, &m);

    // trialing -> past_due and trialing -> trialing are not transitions.
    let events = billing_events(&t).await;
    for to in [SubscriptionStatus::PastDue, SubscriptionStatus::Trialing] {
        let refused = set(to).await;
        assert!(
            matches!(
                refused,
                Err(ServiceError::Conflict {
                    entity: "billing subscription",
                    ..
                })
            ),
            "trialing -> {to:?}: {refused:?}"
        );
        assert_eq!(
            stored(id).await.expect("reads").expect("exists"),
            trialing,
            "nothing changed"
        );
        assert_eq!(billing_events(&t).await, events, "nothing audited");
    }

    // trialing -> active -> past_due -> active -> canceled.
    w.clock.advance(Duration::days(2));
    let active = set(SubscriptionStatus::Active).await.expect("activated");
    assert_eq!(active.status, SubscriptionStatus::Active);
    assert_eq!(active.current_period_start, w.deps.now());
    assert_eq!(
        active.current_period_end,
        w.deps
            .now()
            .checked_add_months(Months::new(1))
            .expect("date")
    );
    assert_eq!(
        set(SubscriptionStatus::PastDue)
            .await
            .expect("past due")
            .status,
        SubscriptionStatus::PastDue
    );
    assert_eq!(
        set(SubscriptionStatus::Active).await.expect("paid").status,
        SubscriptionStatus::Active
    );
    let canceled = set(SubscriptionStatus::Canceled).await.expect("canceled");
    assert_eq!(canceled.canceled_at, Some(w.deps.now()));
    assert_eq!(canceled.live_tenant_id, None);
    assert_eq!(
        count_events(&t.owner, "billing_subscription_status_changed").await,
        4
    );

    // Nothing leaves canceled, and a canceled subscription is not changed further.
    let events = billing_events(&t).await;
    for to in [
        SubscriptionStatus::Active,
        SubscriptionStatus::Trialing,
        SubscriptionStatus::PastDue,
        SubscriptionStatus::Canceled,
    ] {
        let refused = set(to).await;
        assert!(
            matches!(refused, Err(ServiceError::Conflict { .. })),
            "canceled -> {to:?}: {refused:?}"
        );
    }
    let refused = billing::change_plan(&t.db, &w.deps, &ctx, id, &plan("free"), &meta()).await;
    assert!(
        matches!(refused, Err(ServiceError::Conflict { .. })),
        "{refused:?}"
    );
    let refused = billing::schedule_cancel(&t.db, &w.deps, &ctx, id, true, &meta()).await;
    assert!(
        matches!(refused, Err(ServiceError::Conflict { .. })),
        "{refused:?}"
    );
    let refused = billing::renew_period(&t.db, &w.deps, &ctx, id, &meta()).await;
    assert!(
        matches!(refused, Err(ServiceError::Conflict { .. })),
        "{refused:?}"
    );
    assert_eq!(
        stored(id).await.expect("reads").expect("exists"),
        canceled,
        "nothing changed"
    );
    assert_eq!(billing_events(&t).await, events, "nothing audited");

    // A tenant whose subscription was canceled may subscribe again; the old one stays.
    let renewed = billing::subscribe(&t.db, &w.deps, &ctx, &plan("free"), 0, &meta())
        .await
        .expect("subscribes again");
    assert_ne!(renewed.id, id);
    assert_eq!(
        billing::current_subscription(&t.db, &w.deps, &ctx)
            .await
            .expect("reads")
            .map(|s| s.id),
        Some(renewed.id)
    );
    assert_eq!(billing_rows(&t).await[0], 2);
}

async fn billing_cancel_at_period_end_and_renewal(t: TestDb) {
    let w = world(&t).await;
    plans(&t, &w).await;
    let ctx = alice(&t, &w).await;
    let start = w.deps.now();
    let monthly = billing::subscribe(&t.db, &w.deps, &ctx, &plan("pro"), 0, &meta())
        .await
        .expect("subscribed");
    let month_end = start.checked_add_months(Months::new(1)).expect("date");
    assert_eq!(
        (monthly.current_period_start, monthly.current_period_end),
        (start, month_end)
    );
    let id = monthly.id;

    // Before the period ends nothing renews.
    let early = billing::renew_period(&t.db, &w.deps, &ctx, id, &meta())
        .await
        .expect("renewal");
    assert_eq!(early, Renewal::NotDue(monthly.clone()));

    // Set to end with its period: it stays active until then, and ends as of then.
    let scheduled = billing::schedule_cancel(&t.db, &w.deps, &ctx, id, true, &meta())
        .await
        .expect("scheduled");
    assert!(scheduled.cancel_at_period_end);
    assert_eq!(scheduled.status, SubscriptionStatus::Active);
    // Asking again changes nothing and audits nothing.
    billing::schedule_cancel(&t.db, &w.deps, &ctx, id, true, &meta())
        .await
        .expect("unchanged");
    assert_eq!(
        count_events(&t.owner, "billing_subscription_cancel_scheduled").await,
        1
    );
    w.clock.set(month_end + Duration::hours(1));
    let Renewal::Canceled(ended) = billing::renew_period(&t.db, &w.deps, &ctx, id, &meta())
        .await
        .expect("renewal")
    else {
        panic!("a subscription set to cancel at period end is canceled");
    };
    assert_eq!(ended.status, SubscriptionStatus::Canceled);
    assert_eq!(ended.canceled_at, Some(month_end), "as of the period's end");
    assert!(
        billing::current_subscription(&t.db, &w.deps, &ctx)
            .await
            .expect("reads")
            .is_none()
    );

    // A trial that ended becomes active, with back-to-back periods from its end.
    let trial = billing::subscribe(&t.db, &w.deps, &ctx, &plan("pro"), 7, &meta())
        .await
        .expect("trial");
    let trial_end = trial.trial_end.expect("a trial end");
    w.clock.set(trial_end + Duration::days(1));
    let Renewal::Renewed(active) = billing::renew_period(&t.db, &w.deps, &ctx, trial.id, &meta())
        .await
        .expect("renewal")
    else {
        panic!("renewed");
    };
    assert_eq!(active.status, SubscriptionStatus::Active);
    assert_eq!(active.current_period_start, trial_end);
    assert_eq!(
        active.current_period_end,
        trial_end.checked_add_months(Months::new(1)).expect("date")
    );
    // Left alone for months, it rolls into the period that contains now.
    let in_three = trial_end.checked_add_months(Months::new(3)).expect("date");
    w.clock.set(in_three + Duration::days(2));
    let Renewal::Renewed(rolled) = billing::renew_period(&t.db, &w.deps, &ctx, trial.id, &meta())
        .await
        .expect("renewal")
    else {
        panic!("renewed");
    };
    assert_eq!(rolled.current_period_start, in_three);
    assert_eq!(
        rolled.current_period_end,
        trial_end.checked_add_months(Months::new(4)).expect("date")
    );
    assert_eq!(
        count_events(&t.owner, "billing_subscription_renewed").await,
        2
    );

    // Unscheduling keeps it renewing.
    billing::schedule_cancel(&t.db, &w.deps, &ctx, trial.id, true, &meta())
        .await
        .expect("scheduled");
    let kept = billing::schedule_cancel(&t.db, &w.deps, &ctx, trial.id, false, &meta())
        .await
        .expect("unscheduled");
    assert!(!kept.cancel_at_period_end);
    w.clock.set(rolled.current_period_end);
    let renewed = billing::renew_period(&t.db, &w.deps, &ctx, trial.id, &meta())
        .await
        .expect("renewal");
    assert!(matches!(renewed, Renewal::Renewed(ref s) if s.status == SubscriptionStatus::Active));

    // A past-due subscription renews only once paid.
    billing::set_subscription_status(
        &t.db,
        &w.deps,
        &ctx,
        trial.id,
        SubscriptionStatus::PastDue,
        &meta(),
    )
    .await
    .expect("past due");
    w.clock.advance(Duration::days(40));
    let refused = billing::renew_period(&t.db, &w.deps, &ctx, trial.id, &meta()).await;
    assert!(
        matches!(refused, Err(ServiceError::Conflict { .. })),
        "{refused:?}"
    );
}

async fn billing_plan_changes_and_limits(t: TestDb) {
    let w = world(&t).await;
    plans(&t, &w).await;
    let ctx = alice(&t, &w).await;
    let free = billing::subscribe(&t.db, &w.deps, &ctx, &plan("free"), 0, &meta())
        .await
        .expect("subscribed");
    let calls = metric("api_calls");

    let fits = billing::check_limit(&t.db, &w.deps, &ctx, &calls, 1_000)
        .await
        .expect("the whole allowance fits");
    assert_eq!(
        (fits.limit, fits.used, fits.remaining),
        (Some(1_000), 0, Some(0))
    );
    assert_eq!(fits.period, UsagePeriod::current(&free));
    // Usage before the period does not count toward it.
    let before =
        NewUsage::parse("api_calls", 700, "old", w.deps.now() - Duration::days(3)).expect("valid");
    billing::record_usage(&t.db, &w.deps, &ctx, &before)
        .await
        .expect("recorded");
    billing::record_usage(&t.db, &w.deps, &ctx, &usage("api_calls", 900, "now", &w))
        .await
        .expect("recorded");
    let over = billing::check_limit(&t.db, &w.deps, &ctx, &calls, 200).await;
    match over {
        Err(ServiceError::LimitExceeded {
            metric,
            limit,
            used,
            requested,
        }) => assert_eq!(
            (metric.as_str(), limit, used, requested),
            ("api_calls", 1_000, 900, 200)
        ),
        other => panic!("expected LimitExceeded, got {other:?}"),
    }
    let left = billing::check_limit(&t.db, &w.deps, &ctx, &calls, 100)
        .await
        .expect("fits");
    assert_eq!(left.remaining, Some(0));
    // A metric the plan does not name is unlimited.
    let unlimited =
        billing::check_limit(&t.db, &w.deps, &ctx, &metric("storage.gb_hours"), i64::MAX)
            .await
            .expect("unlimited");
    assert_eq!((unlimited.limit, unlimited.remaining), (None, None));

    // A bigger plan, at once: the same usage fits.
    let pro = billing::change_plan(&t.db, &w.deps, &ctx, free.id, &plan("pro"), &meta())
        .await
        .expect("changed");
    assert_ne!(pro.plan_id, free.plan_id);
    assert_eq!(
        (pro.status, pro.current_period_start, pro.current_period_end),
        (
            free.status,
            free.current_period_start,
            free.current_period_end
        ),
        "status and period stay"
    );
    let fits = billing::check_limit(&t.db, &w.deps, &ctx, &calls, 200)
        .await
        .expect("fits on pro");
    assert_eq!(fits.limit, Some(100_000));
    // Enterprise limits API calls but not seats.
    billing::change_plan(&t.db, &w.deps, &ctx, free.id, &plan("enterprise"), &meta())
        .await
        .expect("changed");
    let seats = billing::check_limit(&t.db, &w.deps, &ctx, &metric("seats"), 1_000)
        .await
        .expect("unlimited seats");
    assert_eq!(seats.limit, None);
    assert_eq!(
        count_events(&t.owner, "billing_subscription_plan_changed").await,
        2
    );

    // The plan it has, or one that does not exist: refused, nothing written.
    let events = billing_events(&t).await;
    let same =
        billing::change_plan(&t.db, &w.deps, &ctx, free.id, &plan("enterprise"), &meta()).await;
    assert!(
        matches!(same, Err(ServiceError::Conflict { .. })),
        "{same:?}"
    );
    let unknown =
        billing::change_plan(&t.db, &w.deps, &ctx, free.id, &plan("platinum"), &meta()).await;
    assert!(
        matches!(unknown, Err(ServiceError::Validation { field: "plan", .. })),
        "{unknown:?}"
    );
    assert_eq!(billing_events(&t).await, events);

    // A yearly plan's period is a year.
    billing::set_subscription_status(
        &t.db,
        &w.deps,
        &ctx,
        free.id,
        SubscriptionStatus::Canceled,
        &meta(),
    )
    .await
    .expect("canceled");
    let yearly = billing::subscribe(&t.db, &w.deps, &ctx, &plan("yearly"), 0, &meta())
        .await
        .expect("subscribed");
    assert_eq!(
        yearly.current_period_end,
        yearly
            .current_period_start
            .checked_add_months(Months::new(12))
            .expect("date")
    );
}

async fn billing_payments_route_by_country_and_configuration(t: TestDb) {
    let w = world(&t).await;
    let ctx = alice(&t, &w).await;
    let (router, stripe, conekta) = recording_router(&w.deps);
    let country = |c: &str| Country::parse(c).expect("valid");
    assert_eq!(router.route(&country("MX")), ProviderName::Conekta);
    for other in ["US", "JP", "DE", "BR"] {
        assert_eq!(
            router.route(&country(other)),
            ProviderName::Stripe,
            "{other}"
        );
    }

    let email = Email::parse("Billing@Acme.com").expect("valid");
    let mexican = billing::create_customer(
        &t.db,
        &w.deps,
        &ctx,
        &router,
        &country("MX"),
        Some(&email),
        &meta(),
    )
    .await
    .expect("customer");
    assert_eq!(mexican.provider, ProviderName::Conekta);
    assert!(
        mexican.provider_customer_id.starts_with("cus_"),
        "{mexican:?}"
    );
    assert_eq!(mexican.email.as_deref(), Some("billing@acme.com"));
    let american =
        billing::create_customer(&t.db, &w.deps, &ctx, &router, &country("US"), None, &meta())
            .await
            .expect("customer");
    assert_eq!(american.provider, ProviderName::Stripe);
    assert_eq!(
        conekta.calls(),
        vec![ProviderCall::CreateCustomer {
            country: "MX".into()
        }]
    );
    assert_eq!(
        stripe.calls(),
        vec![ProviderCall::CreateCustomer {
            country: "US".into()
        }]
    );

    // Routing is configuration: here everything but Brazil goes to Conekta.
    let config = ServiceConfig {
        payment_routing: PaymentRouting {
            by_country: BTreeMap::from([("BR".to_owned(), ProviderName::Stripe)]),
            default: ProviderName::Conekta,
        },
        ..ServiceConfig::default()
    };
    let (configured, _) = fixtures::deps_with(config);
    let (rerouted, _, _) = recording_router(&configured);
    assert_eq!(rerouted.route(&country("US")), ProviderName::Conekta);
    assert_eq!(rerouted.route(&country("BR")), ProviderName::Stripe);
    // A router without a client for the routed provider refuses, writing nothing.
    let stripe_only = ProviderRouter::new(
        PaymentRouting::default(),
        vec![Arc::new(RecordingProvider::stripe(&w.deps))],
    );
    let before = billing_rows(&t).await;
    let refused = billing::create_customer(
        &t.db,
        &w.deps,
        &ctx,
        &stripe_only,
        &country("MX"),
        None,
        &meta(),
    )
    .await;
    assert!(
        matches!(
            refused,
            Err(ServiceError::PaymentProvider {
                provider: "conekta",
                ..
            })
        ),
        "{refused:?}"
    );
    // A provider that fails: nothing stored either.
    stripe.fail_with(Some("connection reset"));
    let refused =
        billing::create_customer(&t.db, &w.deps, &ctx, &router, &country("US"), None, &meta())
            .await;
    assert!(
        matches!(
            refused,
            Err(ServiceError::PaymentProvider {
                provider: "stripe",
                ..
            })
        ),
        "{refused:?}"
    );
    stripe.fail_with(None);
    assert_eq!(billing_rows(&t).await, before);

    // Methods: the first is the default; a new default replaces it.
    let oxxo = NewPaymentMethod::other(PaymentMethodKind::Oxxo).expect("valid");
    let first = billing::add_payment_method(
        &t.db,
        &w.deps,
        &ctx,
        &router,
        mexican.id,
        &oxxo,
        false,
        &meta(),
    )
    .await
    .expect("added");
    assert!(first.is_default);
    assert_eq!(
        (first.brand.as_deref(), first.last4.as_deref()),
        (None, None)
    );
    let card = NewPaymentMethod::card("visa", "4242").expect("valid");
    let second = billing::add_payment_method(
        &t.db,
        &w.deps,
        &ctx,
        &router,
        mexican.id,
        &card,
        true,
        &meta(),
    )
    .await
    .expect("added");
    assert!(second.is_default);
    assert_eq!(second.provider, ProviderName::Conekta);
    let defaults = || async {
        payment_methods::Entity::find()
            .filter(payment_methods::Column::CustomerId.eq(mexican.id))
            .filter(payment_methods::Column::IsDefault.eq(true))
            .all(&t.owner)
            .await
            .expect("reads")
            .into_iter()
            .map(|m| m.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(defaults().await, vec![second.id]);
    billing::set_default_payment_method(&t.db, &w.deps, &ctx, first.id, &meta())
        .await
        .expect("default again");
    assert_eq!(defaults().await, vec![first.id]);

    // Intents: once per idempotency key.
    let mxn = Money::new(49_900, Currency::parse("MXN").expect("valid")).expect("valid");
    let key = IdempotencyKey::parse("invoice-2026-03").expect("valid");
    let intent = billing::create_payment_intent(
        &t.db,
        &w.deps,
        &ctx,
        &router,
        mexican.id,
        &mxn,
        &key,
        &meta(),
    )
    .await
    .expect("intent");
    assert_eq!(intent.status, PaymentIntentStatus::RequiresPaymentMethod);
    assert!(intent.provider_intent_id.starts_with("ord_"), "{intent:?}");
    let again = billing::create_payment_intent(
        &t.db,
        &w.deps,
        &ctx,
        &router,
        mexican.id,
        &mxn,
        &key,
        &meta(),
    )
    .await
    .expect("the same intent");
    assert_eq!(again, intent);
    let intent_calls = conekta
        .calls()
        .into_iter()
        .filter(|c| matches!(c, ProviderCall::CreateIntent { .. }))
        .count();
    assert_eq!(intent_calls, 1, "the provider was asked once");
    let other_amount = Money::new(1, Currency::parse("MXN").expect("valid")).expect("valid");
    let refused = billing::create_payment_intent(
        &t.db,
        &w.deps,
        &ctx,
        &router,
        mexican.id,
        &other_amount,
        &key,
        &meta(),
    )
    .await;
    assert!(
        matches!(
            refused,
            Err(ServiceError::Conflict {
                entity: "payment intent",
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(count_events(&t.owner, "payment_intent_created").await, 1);

    // The intent's state machine: a settled intent stays settled.
    let m = meta();
    let set = |to| billing::set_payment_intent_status(&t.db, &w.deps, &ctx, intent.id, to, &m);
    let refused = set(PaymentIntentStatus::Succeeded).await;
    assert!(
        matches!(refused, Err(ServiceError::Conflict { .. })),
        "{refused:?}"
    );
    set(PaymentIntentStatus::Processing)
        .await
        .expect("processing");
    let paid = set(PaymentIntentStatus::Succeeded)
        .await
        .expect("succeeded");
    assert_eq!(paid.status, PaymentIntentStatus::Succeeded);
    let events = billing_events(&t).await;
    for to in [
        PaymentIntentStatus::Canceled,
        PaymentIntentStatus::Processing,
        PaymentIntentStatus::Failed,
    ] {
        let refused = set(to).await;
        assert!(
            matches!(refused, Err(ServiceError::Conflict { .. })),
            "{to:?}: {refused:?}"
        );
    }
    assert_eq!(billing_events(&t).await, events);
    assert_eq!(
        payment_intents::Entity::find_by_id(intent.id)
            .one(&t.owner)
            .await
            .expect("reads")
            .expect("exists")
            .status,
        PaymentIntentStatus::Succeeded
    );
    assert_eq!(billing_rows(&t).await, [0, 0, 2, 2, 1]);
    assert_eq!(count_events(&t.owner, "payment_customer_created").await, 2);
    assert_eq!(count_events(&t.owner, "payment_method_added").await, 2);
    assert_eq!(
        count_events(&t.owner, "payment_method_default_changed").await,
        1
    );
}

fn not_found<T>(result: &Result<T, ServiceError>) -> bool {
    matches!(result, Err(ServiceError::NotFound { .. }))
}

async fn billing_other_tenants_rows_are_out_of_reach(t: TestDb) {
    let w = world(&t).await;
    plans(&t, &w).await;
    let acme = alice(&t, &w).await;
    let (router, _, _) = recording_router(&w.deps);
    let subscription = billing::subscribe(&t.db, &w.deps, &acme, &plan("pro"), 0, &meta())
        .await
        .expect("subscribed");
    billing::record_usage(
        &t.db,
        &w.deps,
        &acme,
        &usage("api_calls", 50, "shared-key", &w),
    )
    .await
    .expect("recorded");
    let customer = billing::create_customer(
        &t.db,
        &w.deps,
        &acme,
        &router,
        &Country::parse("US").expect("valid"),
        None,
        &meta(),
    )
    .await
    .expect("customer");
    let method = billing::add_payment_method(
        &t.db,
        &w.deps,
        &acme,
        &router,
        customer.id,
        &NewPaymentMethod::card("visa", "4242").expect("valid"),
        false,
        &meta(),
    )
    .await
    .expect("method");
    let usd = Money::new(100, Currency::parse("USD").expect("valid")).expect("valid");
    let key = IdempotencyKey::parse("acme-1").expect("valid");
    let intent = billing::create_payment_intent(
        &t.db,
        &w.deps,
        &acme,
        &router,
        customer.id,
        &usd,
        &key,
        &meta(),
    )
    .await
    .expect("intent");

    let carol = fixtures::user(&t.db, &w.deps, "carol").await;
    let globex = fixtures::tenant(&t.db, &w.deps, "globex", &carol).await;
    let other = TenantCtx::for_member(&t.db, globex.id, carol.id)
        .await
        .expect("owner");
    let before = billing_rows(&t).await;
    let events = billing_events(&t).await;

    // Acme's rows, named by id from Globex: not found, nothing changed.
    let r = billing::set_subscription_status(
        &t.db,
        &w.deps,
        &other,
        subscription.id,
        SubscriptionStatus::Canceled,
        &meta(),
    )
    .await;
    assert!(not_found(&r), "{r:?}");
    let r = billing::change_plan(
        &t.db,
        &w.deps,
        &other,
        subscription.id,
        &plan("free"),
        &meta(),
    )
    .await;
    assert!(not_found(&r), "{r:?}");
    let r = billing::schedule_cancel(&t.db, &w.deps, &other, subscription.id, true, &meta()).await;
    assert!(not_found(&r), "{r:?}");
    let r = billing::renew_period(&t.db, &w.deps, &other, subscription.id, &meta()).await;
    assert!(not_found(&r), "{r:?}");
    let r = billing::add_payment_method(
        &t.db,
        &w.deps,
        &other,
        &router,
        customer.id,
        &NewPaymentMethod::card("visa", "1111").expect("valid"),
        true,
        &meta(),
    )
    .await;
    assert!(not_found(&r), "{r:?}");
    let r = billing::create_payment_intent(
        &t.db,
        &w.deps,
        &other,
        &router,
        customer.id,
        &usd,
        &IdempotencyKey::parse("globex-1").expect("valid"),
        &meta(),
    )
    .await;
    assert!(not_found(&r), "{r:?}");
    let r = billing::set_default_payment_method(&t.db, &w.deps, &other, method.id, &meta()).await;
    assert!(not_found(&r), "{r:?}");
    let r = billing::set_payment_intent_status(
        &t.db,
        &w.deps,
        &other,
        intent.id,
        PaymentIntentStatus::Canceled,
        &meta(),
    )
    .await;
    assert!(not_found(&r), "{r:?}");
    assert_eq!(billing_rows(&t).await, before);
    assert_eq!(billing_events(&t).await, events);

    // Globex sees none of Acme's subscription or usage, and its keys are its own.
    assert!(
        billing::current_subscription(&t.db, &w.deps, &other)
            .await
            .expect("reads")
            .is_none()
    );
    let period = UsagePeriod::new(
        w.deps.now() - Duration::days(1),
        w.deps.now() + Duration::days(1),
    )
    .expect("valid");
    let summary = billing::usage_summary(&t.db, &w.deps, &other, &metric("api_calls"), period)
        .await
        .expect("summary");
    assert_eq!(summary.total, 0);
    let own = billing::record_usage(
        &t.db,
        &w.deps,
        &other,
        &usage("api_calls", 7, "shared-key", &w),
    )
    .await
    .expect("recorded");
    assert!(
        !own.duplicate,
        "the same key in another tenant is another report"
    );
    assert_eq!(own.record.tenant_id, globex.id);
    let acme_summary = billing::usage_summary(&t.db, &w.deps, &acme, &metric("api_calls"), period)
        .await
        .expect("summary");
    assert_eq!(acme_summary.total, 50);
    // Globex can still subscribe: Acme's live subscription is Acme's.
    billing::subscribe(&t.db, &w.deps, &other, &plan("free"), 0, &meta())
        .await
        .expect("subscribed");
}

/// Usage is dated near now (a future date would escape the period's limit, an old one
/// rewrite a billed period), idempotency keys compare exactly on every backend, and a
/// period whose renewal is overdue keeps counting usage toward its limit.
async fn billing_usage_dates_exact_keys_and_overdue_periods(t: TestDb) {
    let w = world(&t).await;
    plans(&t, &w).await;
    let ctx = alice(&t, &w).await;
    billing::subscribe(&t.db, &w.deps, &ctx, &plan("free"), 0, &meta())
        .await
        .expect("subscribed");
    let now = w.deps.now();
    for (when, what) in [
        (now + Duration::minutes(10), "ahead of the clock"),
        (now - Duration::days(40), "past the reporting window"),
    ] {
        let dated = NewUsage::parse("api_calls", 1, what.replace(' ', "-").as_str(), when)
            .expect("well-formed");
        let refused = billing::record_usage(&t.db, &w.deps, &ctx, &dated).await;
        assert!(
            matches!(
                refused,
                Err(ServiceError::Validation {
                    field: "occurred_at",
                    ..
                })
            ),
            "{what}: {refused:?}"
        );
    }
    assert_eq!(
        usage_records::Entity::find()
            .count(&t.owner)
            .await
            .expect("counts"),
        0
    );
    // `Key-1` and `key-1` are two keys (MariaDB's default collation would say one).
    for key in ["Key-1", "key-1"] {
        let recorded =
            billing::record_usage(&t.db, &w.deps, &ctx, &usage("api_calls", 300, key, &w))
                .await
                .expect("recorded");
        assert!(!recorded.duplicate, "{key} is a key of its own");
    }
    // The month ends and nobody renews: usage meanwhile still counts.
    w.clock.advance(Duration::days(40));
    billing::record_usage(&t.db, &w.deps, &ctx, &usage("api_calls", 300, "late", &w))
        .await
        .expect("recorded");
    let over = billing::check_limit(&t.db, &w.deps, &ctx, &metric("api_calls"), 200).await;
    assert!(
        matches!(over, Err(ServiceError::LimitExceeded { used: 900, .. })),
        "{over:?}"
    );
}
