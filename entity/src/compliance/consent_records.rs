//! `consent_records`: append-only history of a user's decisions about a purpose
//! (granted or withdrawn) in a tenant, under the policy version then in effect. The
//! current consent to a purpose is its row with the highest `seq`. UPDATE and DELETE
//! are refused by triggers.

use crate::ids::{ConsentRecordId, TenantId, UserId};
use crate::secret::SealedBytes;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "consent_records")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: ConsentRecordId,
    #[sea_orm(unique_key = "tenant_user_seq")]
    pub tenant_id: TenantId,
    #[sea_orm(unique_key = "tenant_user_seq")]
    pub user_id: UserId,
    /// 1, 2, ... over the user's decisions in the tenant.
    #[sea_orm(unique_key = "tenant_user_seq")]
    pub seq: i32,
    /// What the data is used for (`marketing_email`, `analytics`): lowercase letters,
    /// digits and underscores.
    pub purpose: String,
    pub policy_version: i32,
    pub granted: bool,
    pub source: ConsentSource,
    /// The client address, sealed under the user's subject key: gone with the key.
    #[sea_orm(column_type = "VarBinary(StringLen::N(255))")]
    pub ip_address: Option<SealedBytes>,
    pub recorded_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "tenant_id", to = "id", on_delete = "Restrict")]
    pub tenant: BelongsTo<crate::tenancy::tenants::Entity>,
    #[sea_orm(belongs_to, from = "user_id", to = "id", on_delete = "Restrict")]
    pub user: BelongsTo<crate::identity::users::Entity>,
    /// The policy version, of the same tenant.
    #[sea_orm(
        belongs_to,
        from = "(tenant_id, policy_version)",
        to = "(tenant_id, version)",
        on_delete = "Restrict"
    )]
    pub policy: BelongsTo<super::privacy_policies::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum ConsentSource {
    #[sea_orm(string_value = "web")]
    Web,
    #[sea_orm(string_value = "mobile")]
    Mobile,
    #[sea_orm(string_value = "api")]
    Api,
    /// Recorded by support staff on the user's instruction.
    #[sea_orm(string_value = "support")]
    Support,
    /// Carried over from an earlier system.
    #[sea_orm(string_value = "import")]
    Import,
}
