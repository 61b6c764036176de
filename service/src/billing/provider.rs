//! The payment provider's API as billing uses it ([`PaymentProvider`]), and which
//! provider serves which country ([`PaymentRouting`], [`ProviderRouter`]).

use super::input::{Country, IdempotencyKey, Money, NewPaymentMethod};
use crate::Result;
use crate::deps::Deps;
use crate::error::ServiceError;
use entity::billing::payment_customers::ProviderName;
use entity::billing::payment_intents::PaymentIntentStatus;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A customer as the provider created it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderCustomer {
    /// The provider's id of the customer.
    pub id: String,
}

/// A payment method as the provider attached it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderMethod {
    pub id: String,
}

/// A payment intent as the provider created it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderIntent {
    pub id: String,
    /// `requires_payment_method` or `processing`.
    pub status: PaymentIntentStatus,
}

/// A payment provider's API, as billing uses it. Object-safe: the router holds
/// `Arc<dyn PaymentProvider>`.
#[async_trait::async_trait]
pub trait PaymentProvider: Send + Sync {
    /// Which provider this is; stored with every record it creates.
    fn name(&self) -> ProviderName;

    /// Creates a customer for a tenant in `country`.
    async fn create_customer(
        &self,
        country: &Country,
        email: Option<&str>,
    ) -> Result<ProviderCustomer>;

    /// Attaches `method` to the provider's customer `customer`.
    async fn attach_method(
        &self,
        customer: &str,
        method: &NewPaymentMethod,
    ) -> Result<ProviderMethod>;

    /// Creates an intent to charge `amount` to the provider's customer `customer`; the
    /// same `key` gives the same intent.
    async fn create_intent(
        &self,
        customer: &str,
        amount: &Money,
        key: &IdempotencyKey,
    ) -> Result<ProviderIntent>;
}

/// Which provider serves customers of which country: `by_country` first, else
/// `default`. The default routing sends Mexico (`MX`) to Conekta and every other
/// country to Stripe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentRouting {
    /// ISO 3166-1 alpha-2 code -> provider.
    pub by_country: BTreeMap<String, ProviderName>,
    pub default: ProviderName,
}

impl Default for PaymentRouting {
    fn default() -> Self {
        Self {
            by_country: BTreeMap::from([("MX".to_owned(), ProviderName::Conekta)]),
            default: ProviderName::Stripe,
        }
    }
}

impl PaymentRouting {
    /// The provider for customers in `country`.
    pub fn provider_for(&self, country: &Country) -> ProviderName {
        self.by_country
            .get(country.as_str())
            .copied()
            .unwrap_or(self.default)
    }
}

/// The providers billing may call, and the routing that picks one.
#[derive(Clone)]
pub struct ProviderRouter {
    routing: PaymentRouting,
    providers: BTreeMap<&'static str, Arc<dyn PaymentProvider>>,
}

impl ProviderRouter {
    /// Routes by `routing` between `providers` (each answers for its [`PaymentProvider::name`]).
    pub fn new(routing: PaymentRouting, providers: Vec<Arc<dyn PaymentProvider>>) -> Self {
        Self {
            routing,
            providers: providers
                .into_iter()
                .map(|p| (p.name().as_str(), p))
                .collect(),
        }
    }

    /// The routing of `deps`' configuration between `providers`.
    pub fn from_config(deps: &Deps, providers: Vec<Arc<dyn PaymentProvider>>) -> Self {
        Self::new(deps.config.payment_routing.clone(), providers)
    }

    /// The provider name for customers in `country`.
    pub fn route(&self, country: &Country) -> ProviderName {
        self.routing.provider_for(country)
    }

    /// The provider called `name`.
    ///
    /// # Errors
    /// `PaymentProvider` when the router was given none of that name.
    pub fn provider(&self, name: ProviderName) -> Result<&dyn PaymentProvider> {
        self.providers
            .get(name.as_str())
            .map(|p| p.as_ref())
            .ok_or_else(|| ServiceError::PaymentProvider {
                provider: name.as_str(),
                reason: "this deployment has no client for it".to_owned(),
            })
    }
}

impl std::fmt::Debug for ProviderRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderRouter")
            .field("routing", &self.routing)
            .field("providers", &self.providers.keys().collect::<Vec<_>>())
            .finish()
    }
}
