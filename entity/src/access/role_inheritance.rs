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
    /// The inheriting role. Two relations lead to `roles`, so each is named and
    /// joined by its `Relation` variant.
    #[sea_orm(
        belongs_to,
        relation_enum = "Role",
        from = "role_id",
        to = "id",
        on_delete = "Cascade"
    )]
    pub role: BelongsTo<super::roles::Entity>,
    /// The role whose permissions are inherited.
    #[sea_orm(
        belongs_to,
        relation_enum = "ParentRole",
        from = "parent_role_id",
        to = "id",
        on_delete = "Cascade"
    )]
    pub parent_role: BelongsTo<super::roles::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
