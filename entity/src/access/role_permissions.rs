//! `role_permissions`: the permissions a role grants directly.

use crate::ids::{PermissionId, RoleId};
use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "role_permissions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub role_id: RoleId,
    #[sea_orm(primary_key, auto_increment = false)]
    pub permission_id: PermissionId,
    pub created_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "role_id", to = "id", on_delete = "Cascade")]
    pub role: BelongsTo<super::roles::Entity>,
    #[sea_orm(belongs_to, from = "permission_id", to = "id", on_delete = "Cascade")]
    pub permission: BelongsTo<super::permissions::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
