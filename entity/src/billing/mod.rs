//! Billing and usage: the plan catalogue, tenants' subscriptions, metered usage, and
//! the records of payment providers' customers, payment methods and payment intents.

pub mod billing_plans;
pub mod billing_subscriptions;
pub mod payment_customers;
pub mod payment_intents;
pub mod payment_methods;
pub mod usage_records;
