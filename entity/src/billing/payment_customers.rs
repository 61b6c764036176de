//! `payment_customers`: what a payment provider knows a tenant by.

use crate::ids::{PaymentCustomerId, TenantId};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "payment_customers")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: PaymentCustomerId,
    /// `(tenant_id, id)` is a unique key too, declared by the relations of
    /// `payment_methods` and `payment_intents` that reference it.
    #[sea_orm(unique_key = "provider_customer")]
    pub tenant_id: TenantId,
    #[sea_orm(unique_key = "provider_customer")]
    pub provider: ProviderName,
    /// The provider's id of the customer (e.g. `cus_...`).
    #[sea_orm(unique_key = "provider_customer")]
    pub provider_customer_id: String,
    /// ISO 3166-1 alpha-2, e.g. `MX`: it chose the provider.
    pub country: String,
    /// Where the provider sends receipts, lowercase.
    pub email: Option<String>,
    pub created_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "tenant_id", to = "id", on_delete = "Restrict")]
    pub tenant: BelongsTo<crate::tenancy::tenants::Entity>,
    #[sea_orm(has_many)]
    pub methods: HasMany<super::payment_methods::Entity>,
    #[sea_orm(has_many)]
    pub intents: HasMany<super::payment_intents::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}

/// A payment provider the records name.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum ProviderName {
    #[sea_orm(string_value = "stripe")]
    Stripe,
    #[sea_orm(string_value = "conekta")]
    Conekta,
}

impl ProviderName {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stripe => "stripe",
            Self::Conekta => "conekta",
        }
    }
}
