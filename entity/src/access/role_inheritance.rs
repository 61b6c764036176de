//! `role_inheritance`: `role_id` has every permission of `parent_role_id`.

use crate::ids::RoleId;
use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "role_inheritance")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub role_id: RoleId,
    #[sea_orm(primary_key, auto_increment = false)]
    pub parent_role_id: RoleId,
    pub created_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
