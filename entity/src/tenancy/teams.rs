//! `teams`: the team tree of a tenant.

use crate::ids::{TeamId, TenantId};
use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "teams")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: TeamId,
    pub tenant_id: TenantId,
    /// `None` for a top-level team.
    pub parent_id: Option<TeamId>,
    pub name: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
