//! `data_residency_log`: every cross-region transfer asked for a tenant's data,
//! allowed or refused. Append-only (UPDATE and DELETE refused by triggers).

use crate::ids::{DataTransferId, TenantId, UserId};
use crate::tenancy::tenants::DataRegion;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "data_residency_log")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: DataTransferId,
    pub tenant_id: TenantId,
    pub from_region: DataRegion,
    pub to_region: DataRegion,
    /// Why the data moves ("support ticket 123 escalated to the EU team").
    pub purpose: String,
    pub outcome: TransferOutcome,
    /// Who asked; `None` for the system's own jobs.
    pub requested_by: Option<UserId>,
    pub recorded_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "tenant_id", to = "id", on_delete = "Restrict")]
    pub tenant: BelongsTo<crate::tenancy::tenants::Entity>,
    #[sea_orm(belongs_to, from = "requested_by", to = "id", on_delete = "Restrict")]
    pub requester: BelongsTo<Option<crate::identity::users::Entity>>,
}

impl ActiveModelBehavior for ActiveModel {}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum TransferOutcome {
    #[sea_orm(string_value = "allowed")]
    Allowed,
    #[sea_orm(string_value = "refused")]
    Refused,
}
