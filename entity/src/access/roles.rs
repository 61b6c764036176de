//! `roles`: system roles (`tenant_id` NULL) and tenants' custom roles.

use crate::ids::{RoleId, TenantId};
use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "roles")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: RoleId,
    /// `None` for a system role, shared by every tenant.
    #[sea_orm(unique_key = "tenant_name")]
    pub tenant_id: Option<TenantId>,
    #[sea_orm(unique_key = "tenant_name")]
    pub name: String,
    pub description: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "tenant_id", to = "id", on_delete = "Cascade")]
    pub tenant: BelongsTo<Option<crate::tenancy::tenants::Entity>>,
    /// The permissions granted directly (not those inherited).
    #[sea_orm(has_many, via = "role_permissions")]
    pub permissions: HasMany<super::permissions::Entity>,
    #[sea_orm(has_many)]
    pub assignments: HasMany<super::role_assignments::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
