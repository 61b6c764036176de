//! `payment_intents`: a payment attempt of a customer with its provider:
//! `requires_payment_method` -> `processing` -> `succeeded` | `failed`, or `canceled`
//! before it settles. A settled intent stays settled. Its idempotency key is unique
//! per tenant.

use super::payment_customers::ProviderName;
use crate::ids::{PaymentCustomerId, PaymentIntentId, TenantId};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "payment_intents")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: PaymentIntentId,
    #[sea_orm(unique_key = "idempotency")]
    pub tenant_id: TenantId,
    pub customer_id: PaymentCustomerId,
    /// In minor units of `currency`; positive.
    pub amount_minor: i64,
    /// ISO 4217, e.g. `MXN`.
    pub currency: String,
    pub status: PaymentIntentStatus,
    /// The customer's provider.
    pub provider: ProviderName,
    /// The provider's id of the intent (e.g. `pi_...`).
    pub provider_intent_id: String,
    /// The caller's key for this payment: asking again returns the same intent.
    #[sea_orm(unique_key = "idempotency")]
    pub idempotency_key: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "tenant_id", to = "id", on_delete = "Restrict")]
    pub tenant: BelongsTo<crate::tenancy::tenants::Entity>,
    /// Composite, so an intent always belongs to a customer of the same tenant.
    #[sea_orm(
        belongs_to,
        from = "(tenant_id, customer_id)",
        to = "(tenant_id, id)",
        on_delete = "Restrict"
    )]
    pub customer: BelongsTo<super::payment_customers::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
#[serde(rename_all = "snake_case")]
pub enum PaymentIntentStatus {
    #[sea_orm(string_value = "requires_payment_method")]
    RequiresPaymentMethod,
    #[sea_orm(string_value = "processing")]
    Processing,
    #[sea_orm(string_value = "succeeded")]
    Succeeded,
    #[sea_orm(string_value = "canceled")]
    Canceled,
    #[sea_orm(string_value = "failed")]
    Failed,
}

impl PaymentIntentStatus {
    /// Succeeded, failed or canceled: nothing more happens to it.
    pub fn is_settled(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Canceled)
    }

    /// Whether an intent may move from `self` to `to`.
    pub fn can_move_to(self, to: Self) -> bool {
        use PaymentIntentStatus::*;
        matches!(
            (self, to),
            (RequiresPaymentMethod, Processing)
                | (RequiresPaymentMethod, Canceled)
                | (Processing, Succeeded)
                | (Processing, Failed)
                | (Processing, Canceled)
        )
    }
}
