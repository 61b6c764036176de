//! `policies`: deny rules that override any grant.

use crate::ids::{PolicyId, RoleId, TenantId, UserId};
use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "policies")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: PolicyId,
    #[sea_orm(unique_key = "tenant_name")]
    pub tenant_id: TenantId,
    #[sea_orm(unique_key = "tenant_name")]
    pub name: String,
    /// A resource, or `*`.
    pub resource: String,
    /// An action, or `*`.
    pub action: String,
    /// Only this user; `None` for everyone (narrowed by `role_id`).
    pub user_id: Option<UserId>,
    /// Only holders of this role; `None` for everyone (narrowed by `user_id`).
    pub role_id: Option<RoleId>,
    pub created_by: Option<UserId>,
    pub created_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "tenant_id", to = "id", on_delete = "Cascade")]
    pub tenant: BelongsTo<crate::tenancy::tenants::Entity>,
    #[sea_orm(belongs_to, from = "user_id", to = "id", on_delete = "Cascade")]
    pub user: BelongsTo<Option<crate::identity::users::Entity>>,
    #[sea_orm(belongs_to, from = "role_id", to = "id", on_delete = "Cascade")]
    pub role: BelongsTo<Option<super::roles::Entity>>,
}

impl ActiveModelBehavior for ActiveModel {}
