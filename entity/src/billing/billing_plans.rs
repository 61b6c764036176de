//! `billing_plans`: the global plan catalogue (free, pro, enterprise, ...), the same
//! offer for every tenant. Reference data: read at run time, defined by the owner.

use crate::ids::BillingPlanId;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "billing_plans")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: BillingPlanId,
    /// Lowercase letters, digits, `_` and `-`; 1 to 32 (e.g. `pro`).
    #[sea_orm(unique)]
    pub code: String,
    pub name: String,
    pub description: String,
    /// The price per `billing_interval`, in minor units of `currency` (cents; yen
    /// have none, so yen).
    pub price_minor: i64,
    /// ISO 4217, e.g. `USD`.
    pub currency: String,
    pub billing_interval: PlanInterval,
    /// The most of each metric one billing period allows, a JSON object
    /// (`{"api_calls": 10000}`); a metric it does not name is unlimited.
    #[sea_orm(column_type = "JsonBinary")]
    pub limits: Json,
    /// New subscriptions may choose it; existing ones keep it either way.
    pub is_active: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(has_many)]
    pub subscriptions: HasMany<super::billing_subscriptions::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(8))")]
#[serde(rename_all = "snake_case")]
pub enum PlanInterval {
    #[sea_orm(string_value = "month")]
    Month,
    #[sea_orm(string_value = "year")]
    Year,
}

impl PlanInterval {
    /// Calendar months in one period.
    pub fn months(self) -> u32 {
        match self {
            Self::Month => 1,
            Self::Year => 12,
        }
    }
}
