//! `permissions`: (resource, action) pairs; `*` in either is a wildcard.

use crate::ids::PermissionId;
use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "permissions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: PermissionId,
    #[sea_orm(unique_key = "resource_action")]
    pub resource: String,
    #[sea_orm(unique_key = "resource_action")]
    pub action: String,
    pub description: Option<String>,
    pub created_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
