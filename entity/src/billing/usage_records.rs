//! `usage_records`: metered usage of a tenant: a metric, a positive quantity, when it
//! happened and who recorded it. An idempotency key counts once per tenant.

use crate::ids::{TenantId, UsageRecordId, UserId};
use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "usage_records")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: UsageRecordId,
    #[sea_orm(unique_key = "idempotency")]
    pub tenant_id: TenantId,
    /// Lowercase letters, digits, `_` and `.`; 1 to 64 (e.g. `api_calls`).
    pub metric: String,
    /// Always positive.
    pub quantity: i64,
    /// The reporter's key for this usage: reporting it again changes nothing.
    #[sea_orm(unique_key = "idempotency")]
    pub idempotency_key: String,
    pub occurred_at: DateTimeUtc,
    /// Who recorded it; `None` once their account is gone.
    pub recorded_by: Option<UserId>,
    pub created_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "tenant_id", to = "id", on_delete = "Restrict")]
    pub tenant: BelongsTo<crate::tenancy::tenants::Entity>,
    #[sea_orm(belongs_to, from = "recorded_by", to = "id", on_delete = "SetNull")]
    pub recorder: BelongsTo<Option<crate::identity::users::Entity>>,
}

impl ActiveModelBehavior for ActiveModel {}
