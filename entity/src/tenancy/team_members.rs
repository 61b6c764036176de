//! `team_members`: tenant members placed in a team.

use crate::ids::{TeamId, TenantId, UserId};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "team_members")]
pub struct Model {
    pub tenant_id: TenantId,
    #[sea_orm(primary_key, auto_increment = false)]
    pub team_id: TeamId,
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: UserId,
    pub role: TeamRole,
    pub created_at: DateTimeUtc,
    /// Composite, so a member can only be placed in a team of their own tenant.
    #[sea_orm(
        belongs_to,
        from = "(tenant_id, team_id)",
        to = "(tenant_id, id)",
        on_delete = "Cascade"
    )]
    pub team: BelongsTo<super::teams::Entity>,
    #[sea_orm(
        belongs_to,
        from = "(tenant_id, user_id)",
        to = "(tenant_id, user_id)",
        on_delete = "Cascade"
    )]
    pub membership: BelongsTo<super::memberships::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum TeamRole {
    #[sea_orm(string_value = "owner")]
    Owner,
    #[sea_orm(string_value = "admin")]
    Admin,
    #[sea_orm(string_value = "member")]
    Member,
}
