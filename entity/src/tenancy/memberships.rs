//! `memberships`: a user's place in a tenant. Unique per (tenant, user).

use crate::ids::{MembershipId, TenantId, UserId};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "memberships")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: MembershipId,
    #[sea_orm(unique_key = "tenant_user")]
    pub tenant_id: TenantId,
    #[sea_orm(unique_key = "tenant_user")]
    pub user_id: UserId,
    pub role: MembershipRole,
    pub status: MembershipStatus,
    pub joined_at: DateTimeUtc,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "tenant_id", to = "id", on_delete = "Cascade")]
    pub tenant: BelongsTo<super::tenants::Entity>,
    #[sea_orm(belongs_to, from = "user_id", to = "id", on_delete = "Cascade")]
    pub user: BelongsTo<crate::identity::users::Entity>,
    #[sea_orm(has_many)]
    pub role_assignments: HasMany<crate::access::role_assignments::Entity>,
    #[sea_orm(has_many)]
    pub team_memberships: HasMany<super::team_members::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}

/// The coarse role a member holds in the tenant: who may manage the membership list.
/// Fine-grained permissions are a separate concern (role assignments).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum MembershipRole {
    #[sea_orm(string_value = "owner")]
    Owner,
    #[sea_orm(string_value = "admin")]
    Admin,
    #[sea_orm(string_value = "member")]
    Member,
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum MembershipStatus {
    #[sea_orm(string_value = "active")]
    Active,
    #[sea_orm(string_value = "suspended")]
    Suspended,
}
