//! `policies`: deny rules that override any grant.

use crate::ids::{PolicyId, RoleId, TenantId, UserId};
use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "policies")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: PolicyId,
    pub tenant_id: TenantId,
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
}

impl ActiveModelBehavior for ActiveModel {}
