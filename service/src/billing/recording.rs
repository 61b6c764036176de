//! [`RecordingProvider`]: an in-process stand-in for Stripe and Conekta that calls no
//! network, for development, tests and the seeder.

use super::input::{Country, IdempotencyKey, Money, NewPaymentMethod};
use super::provider::{PaymentProvider, ProviderCustomer, ProviderIntent, ProviderMethod};
use crate::Result;
use crate::deps::{Deps, RandomSource};
use crate::error::ServiceError;
use entity::billing::payment_customers::ProviderName;
use entity::billing::payment_intents::PaymentIntentStatus;
use entity::billing::payment_methods::PaymentMethodKind;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// One call a [`RecordingProvider`] answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProviderCall {
    CreateCustomer {
        country: String,
    },
    AttachMethod {
        customer: String,
        kind: PaymentMethodKind,
    },
    CreateIntent {
        customer: String,
        amount_minor: i64,
        currency: String,
        key: String,
    },
}

/// An in-process stand-in for a payment provider: it calls no network, answers every
/// call with ids made up from the randomness source (`cus_...`, `pm_...`, `pi_...`, as
/// Stripe names them, or `cus_...`, `src_...`, `ord_...` as Conekta does) and logs the
/// calls. For development, tests and the seeder; not a client of the real API.
pub struct RecordingProvider {
    name: ProviderName,
    random: Arc<dyn RandomSource>,
    calls: Mutex<Vec<ProviderCall>>,
    /// Intents by idempotency key, with the parameters they were asked with: the same
    /// key gives the same intent, and with other parameters an error.
    intents: Mutex<BTreeMap<String, (String, ProviderIntent)>>,
    /// When set, every call fails with this reason.
    failing: Mutex<Option<String>>,
}

impl RecordingProvider {
    pub fn new(name: ProviderName, random: Arc<dyn RandomSource>) -> Self {
        Self {
            name,
            random,
            calls: Mutex::new(Vec::new()),
            intents: Mutex::new(BTreeMap::new()),
            failing: Mutex::new(None),
        }
    }

    /// A stand-in for Stripe drawing from `deps`' randomness.
    pub fn stripe(deps: &Deps) -> Self {
        Self::new(ProviderName::Stripe, deps.random.clone())
    }

    /// A stand-in for Conekta drawing from `deps`' randomness.
    pub fn conekta(deps: &Deps) -> Self {
        Self::new(ProviderName::Conekta, deps.random.clone())
    }

    /// The calls answered so far, in order.
    pub fn calls(&self) -> Vec<ProviderCall> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Makes every later call fail with `reason` (`None`: succeed again), to see what a
    /// provider outage does.
    pub fn fail_with(&self, reason: Option<&str>) {
        *self.failing.lock().unwrap_or_else(|p| p.into_inner()) = reason.map(str::to_owned);
    }

    fn answer(&self, call: ProviderCall) -> Result<()> {
        if let Some(reason) = self
            .failing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return Err(ServiceError::PaymentProvider {
                provider: self.name.as_str(),
                reason,
            });
        }
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(call);
        Ok(())
    }

    fn new_id(&self, prefix: &str) -> String {
        let mut bytes = [0u8; 12];
        self.random.fill(&mut bytes);
        format!("{prefix}_{}", hex::encode(bytes))
    }

    fn prefixes(&self) -> (&'static str, &'static str, &'static str) {
        match self.name {
            ProviderName::Stripe => ("cus", "pm", "pi"),
            ProviderName::Conekta => ("cus", "src", "ord"),
        }
    }
}

impl std::fmt::Debug for RecordingProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingProvider")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl PaymentProvider for RecordingProvider {
    fn name(&self) -> ProviderName {
        self.name
    }

    async fn create_customer(
        &self,
        country: &Country,
        _email: Option<&str>,
    ) -> Result<ProviderCustomer> {
        self.answer(ProviderCall::CreateCustomer {
            country: country.as_str().to_owned(),
        })?;
        Ok(ProviderCustomer {
            id: self.new_id(self.prefixes().0),
        })
    }

    async fn attach_method(
        &self,
        customer: &str,
        method: &NewPaymentMethod,
    ) -> Result<ProviderMethod> {
        self.answer(ProviderCall::AttachMethod {
            customer: customer.to_owned(),
            kind: method.kind,
        })?;
        Ok(ProviderMethod {
            id: self.new_id(self.prefixes().1),
        })
    }

    async fn create_intent(
        &self,
        customer: &str,
        amount: &Money,
        key: &IdempotencyKey,
    ) -> Result<ProviderIntent> {
        self.answer(ProviderCall::CreateIntent {
            customer: customer.to_owned(),
            amount_minor: amount.minor,
            currency: amount.currency.as_str().to_owned(),
            key: key.as_str().to_owned(),
        })?;
        let mut intents = self.intents.lock().unwrap_or_else(|p| p.into_inner());
        // Keyed like a provider account's idempotency keys: by the key alone, and the
        // same key with other parameters is refused, as Stripe refuses it.
        let memo = key.as_str().to_owned();
        let asked = format!("{customer}/{}/{}", amount.minor, amount.currency.as_str());
        if let Some((params, intent)) = intents.get(&memo) {
            if *params != asked {
                return Err(ServiceError::PaymentProvider {
                    provider: self.name.as_str(),
                    reason: "this idempotency key was used with other parameters".into(),
                });
            }
            return Ok(intent.clone());
        }
        let intent = ProviderIntent {
            id: self.new_id(self.prefixes().2),
            status: PaymentIntentStatus::RequiresPaymentMethod,
        };
        intents.insert(memo, (asked, intent.clone()));
        Ok(intent)
    }
}
