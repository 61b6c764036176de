//! What callers hand billing, checked before any query: plan codes, metric names,
//! idempotency keys, quantities, amounts, currencies, countries, periods, and the plans
//! and payment methods to create.

use crate::Result;
use crate::error::ServiceError;
use crate::input::plain_text;
use chrono::{DateTime, Utc};
use entity::billing::billing_plans::PlanInterval;
use entity::billing::billing_subscriptions;
use entity::billing::payment_methods::PaymentMethodKind;
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;

/// The largest quantity one usage record carries: a million records at most this
/// much still sum within a 64-bit integer.
pub const MAX_QUANTITY: i64 = 1_000_000_000_000;
/// The largest amount of one payment, in minor units.
pub const MAX_AMOUNT_MINOR: i64 = 100_000_000_000;
/// The longest idempotency key.
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 128;
/// The longest trial.
pub const MAX_TRIAL_DAYS: u16 = 90;
/// The most metrics one plan limits.
pub const MAX_PLAN_LIMITS: usize = 32;

fn ascii_name(
    field: &'static str,
    raw: &str,
    max: usize,
    allowed: impl Fn(u8) -> bool,
    rule: &'static str,
) -> Result<String> {
    let ok = !raw.is_empty()
        && raw.len() <= max
        && raw.as_bytes()[0].is_ascii_alphanumeric()
        && raw.bytes().all(allowed);
    if !ok {
        return Err(ServiceError::validation(field, rule));
    }
    Ok(raw.to_owned())
}

/// A plan's code: 1 to 32 lowercase letters, digits, `_` and `-`, starting with a
/// letter or digit (e.g. `pro`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PlanCode(String);

impl PlanCode {
    /// # Errors
    /// `Validation` (`plan`) for anything else.
    pub fn parse(raw: &str) -> Result<Self> {
        ascii_name(
            "plan",
            raw,
            32,
            |b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-',
            "1 to 32 lowercase letters, digits, '_' or '-'",
        )
        .map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A usage metric's name: 1 to 64 lowercase letters, digits, `_` and `.`, starting with
/// a letter or digit (e.g. `api_calls`, `storage.gb_hours`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Metric(String);

impl Metric {
    /// # Errors
    /// `Validation` (`metric`) for anything else.
    pub fn parse(raw: &str) -> Result<Self> {
        ascii_name(
            "metric",
            raw,
            64,
            |b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.',
            "1 to 64 lowercase letters, digits, '_' or '.'",
        )
        .map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A caller's key for one request, so that repeating it changes nothing: 1 to
/// [`MAX_IDEMPOTENCY_KEY_CHARS`] letters, digits, `_`, `-`, `.` and `:` (a UUID, or
/// `invoice-42:line-3`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// # Errors
    /// `Validation` (`idempotency_key`) for an empty, overlong or otherwise malformed key.
    pub fn parse(raw: &str) -> Result<Self> {
        ascii_name(
            "idempotency_key",
            raw,
            MAX_IDEMPOTENCY_KEY_CHARS,
            |b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'),
            "1 to 128 letters, digits, '_', '-', '.' or ':'",
        )
        .map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An ISO 4217 currency code: three uppercase letters (e.g. `USD`, `MXN`, `JPY`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Currency(String);

impl Currency {
    /// # Errors
    /// `Validation` (`currency`) for anything but three uppercase ASCII letters.
    pub fn parse(raw: &str) -> Result<Self> {
        if raw.len() != 3 || !raw.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(ServiceError::validation(
                "currency",
                "must be an ISO 4217 code (three uppercase letters)",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An ISO 3166-1 alpha-2 country code: two uppercase letters (e.g. `MX`, `US`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Country(String);

impl Country {
    /// # Errors
    /// `Validation` (`country`) for anything but two uppercase ASCII letters.
    pub fn parse(raw: &str) -> Result<Self> {
        if raw.len() != 2 || !raw.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(ServiceError::validation(
                "country",
                "must be an ISO 3166-1 alpha-2 code (two uppercase letters)",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An amount of money in minor units of a currency, positive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Money {
    pub(super) minor: i64,
    pub(super) currency: Currency,
}

impl Money {
    /// # Errors
    /// `Validation` (`amount`) outside 1..=[`MAX_AMOUNT_MINOR`].
    pub fn new(minor: i64, currency: Currency) -> Result<Self> {
        if !(1..=MAX_AMOUNT_MINOR).contains(&minor) {
            return Err(ServiceError::validation(
                "amount",
                format!("must be 1 to {MAX_AMOUNT_MINOR} minor units"),
            ));
        }
        Ok(Self { minor, currency })
    }

    pub fn minor(&self) -> i64 {
        self.minor
    }

    pub fn currency(&self) -> &Currency {
        &self.currency
    }
}

/// One report of usage, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewUsage {
    pub(super) metric: Metric,
    pub(super) quantity: i64,
    pub(super) key: IdempotencyKey,
    pub(super) occurred_at: DateTime<Utc>,
}

impl NewUsage {
    /// `quantity` of `metric`, at `occurred_at`, under the caller's `key`.
    ///
    /// # Errors
    /// `Validation` for a malformed metric or key, or a quantity outside
    /// 1..=[`MAX_QUANTITY`].
    pub fn parse(
        metric: &str,
        quantity: i64,
        key: &str,
        occurred_at: DateTime<Utc>,
    ) -> Result<Self> {
        let metric = Metric::parse(metric)?;
        if !(1..=MAX_QUANTITY).contains(&quantity) {
            return Err(ServiceError::validation(
                "quantity",
                format!("must be 1 to {MAX_QUANTITY}"),
            ));
        }
        Ok(Self {
            metric,
            quantity,
            key: IdempotencyKey::parse(key)?,
            occurred_at,
        })
    }

    pub fn metric(&self) -> &Metric {
        &self.metric
    }

    pub fn quantity(&self) -> i64 {
        self.quantity
    }
}

/// A half-open span of time, `[start, end)`, that usage is summed over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UsagePeriod {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl UsagePeriod {
    /// # Errors
    /// `Validation` (`period`) unless `start < end`.
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Self> {
        if start >= end {
            return Err(ServiceError::validation(
                "period",
                "its start must come before its end",
            ));
        }
        Ok(Self { start, end })
    }

    /// A subscription's current billing period.
    pub fn current(subscription: &billing_subscriptions::Model) -> Self {
        Self {
            start: subscription.current_period_start,
            end: subscription.current_period_end,
        }
    }
}

/// A plan to add to the catalogue, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewPlan {
    pub(super) code: PlanCode,
    pub(super) name: String,
    pub(super) description: String,
    pub(super) price_minor: i64,
    pub(super) currency: Currency,
    pub(super) interval: PlanInterval,
    pub(super) limits: BTreeMap<Metric, i64>,
}

/// What a plan is made of, before checking.
#[derive(Clone, Debug)]
pub struct PlanInput<'a> {
    pub code: &'a str,
    pub name: &'a str,
    pub description: &'a str,
    /// Per interval, in minor units of `currency`; 0 for a free plan.
    pub price_minor: i64,
    pub currency: &'a str,
    pub interval: PlanInterval,
    /// The most of each metric one period allows (0 forbids the metric); a metric not
    /// listed is unlimited.
    pub limits: &'a [(&'a str, i64)],
}

impl NewPlan {
    /// # Errors
    /// `Validation` for a malformed code or currency, an empty or overlong name (100) or
    /// description (500), a negative or too large price, more than
    /// [`MAX_PLAN_LIMITS`] limits, a malformed or repeated metric, or a negative limit.
    pub fn parse(input: &PlanInput<'_>) -> Result<Self> {
        if !(0..=MAX_AMOUNT_MINOR).contains(&input.price_minor) {
            return Err(ServiceError::validation(
                "price",
                format!("must be 0 to {MAX_AMOUNT_MINOR} minor units"),
            ));
        }
        if input.limits.len() > MAX_PLAN_LIMITS {
            return Err(ServiceError::validation(
                "limits",
                format!("at most {MAX_PLAN_LIMITS} metrics"),
            ));
        }
        let mut limits = BTreeMap::new();
        for (metric, max) in input.limits {
            if *max < 0 {
                return Err(ServiceError::validation("limits", "must not be negative"));
            }
            if limits.insert(Metric::parse(metric)?, *max).is_some() {
                return Err(ServiceError::validation(
                    "limits",
                    "each metric is limited once",
                ));
            }
        }
        Ok(Self {
            code: PlanCode::parse(input.code)?,
            name: plain_text("name", input.name, 100)?,
            description: plain_text("description", input.description, 500)?,
            price_minor: input.price_minor,
            currency: Currency::parse(input.currency)?,
            interval: input.interval,
            limits,
        })
    }

    pub(super) fn limits_json(&self) -> Json {
        let mut object = Map::new();
        for (metric, max) in &self.limits {
            object.insert(metric.as_str().to_owned(), Json::from(*max));
        }
        Json::Object(object)
    }
}

/// A payment method to attach to a customer, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewPaymentMethod {
    pub(super) kind: PaymentMethodKind,
    pub(super) brand: Option<String>,
    pub(super) last4: Option<String>,
}

impl NewPaymentMethod {
    /// A card: its brand (lowercase letters, e.g. `visa`) and last four digits.
    ///
    /// # Errors
    /// `Validation` for a malformed brand or last four digits.
    pub fn card(brand: &str, last4: &str) -> Result<Self> {
        let brand = ascii_name(
            "brand",
            brand,
            32,
            |b| b.is_ascii_lowercase() || b == b'_',
            "1 to 32 lowercase letters or '_'",
        )?;
        if last4.len() != 4 || !last4.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ServiceError::validation("last4", "must be four digits"));
        }
        Ok(Self {
            kind: PaymentMethodKind::Card,
            brand: Some(brand),
            last4: Some(last4.to_owned()),
        })
    }

    /// A method without card details: an OXXO voucher, a SPEI or other bank transfer.
    ///
    /// # Errors
    /// `Validation` (`kind`) for `Card`, which needs [`NewPaymentMethod::card`].
    pub fn other(kind: PaymentMethodKind) -> Result<Self> {
        if kind == PaymentMethodKind::Card {
            return Err(ServiceError::validation(
                "kind",
                "a card needs its brand and last four digits",
            ));
        }
        Ok(Self {
            kind,
            brand: None,
            last4: None,
        })
    }

    pub fn kind(&self) -> PaymentMethodKind {
        self.kind
    }
}

/// Days of trial: 0 (none) to [`MAX_TRIAL_DAYS`].
pub(super) fn trial_days(days: u16) -> Result<u16> {
    if days > MAX_TRIAL_DAYS {
        return Err(ServiceError::validation(
            "trial_days",
            format!("must be 0 to {MAX_TRIAL_DAYS}"),
        ));
    }
    Ok(days)
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn names_and_codes_are_checked() {
        assert!(Metric::parse("api_calls").is_ok());
        assert!(Metric::parse("storage.gb_hours").is_ok());
        for bad in ["", "API", "a b", "_x", &"x".repeat(65), "calls;--"] {
            assert!(Metric::parse(bad).is_err(), "{bad:?}");
        }
        assert!(PlanCode::parse("pro").is_ok());
        assert!(PlanCode::parse("Pro").is_err());
        assert!(IdempotencyKey::parse("invoice-42:line-3").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(129)).is_err());
        assert!(IdempotencyKey::parse("a b").is_err());
        assert!(Currency::parse("MXN").is_ok());
        for bad in ["mxn", "MX", "MXNN", "M1N"] {
            assert!(Currency::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Country::parse("MX").is_ok());
        assert!(Country::parse("mx").is_err());
        assert!(Country::parse("MEX").is_err());
    }

    #[test]
    fn quantities_amounts_and_methods_are_bounded() {
        let now = Utc::now();
        assert!(NewUsage::parse("api_calls", 1, "k", now).is_ok());
        assert!(NewUsage::parse("api_calls", 0, "k", now).is_err());
        assert!(NewUsage::parse("api_calls", -5, "k", now).is_err());
        assert!(NewUsage::parse("api_calls", MAX_QUANTITY + 1, "k", now).is_err());
        let usd = Currency::parse("USD").expect("valid");
        assert!(Money::new(0, usd.clone()).is_err());
        assert!(Money::new(1999, usd).is_ok());
        assert!(NewPaymentMethod::card("visa", "4242").is_ok());
        assert!(NewPaymentMethod::card("visa", "42x2").is_err());
        assert!(NewPaymentMethod::other(PaymentMethodKind::Card).is_err());
        assert!(NewPaymentMethod::other(PaymentMethodKind::Oxxo).is_ok());
        assert!(UsagePeriod::new(now, now).is_err());
        assert!(trial_days(91).is_err());
    }
}
