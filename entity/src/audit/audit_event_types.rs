//! `audit_event_types`: the catalogue every audit row's `event_type` must be in.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_event_types")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub event_type: String,
    pub category: AuditCategory,
    pub description: String,
    pub created_at: DateTimeUtc,
    #[sea_orm(has_many)]
    pub audit_logs: HasMany<super::audit_logs::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
#[serde(rename_all = "snake_case")]
pub enum AuditCategory {
    #[sea_orm(string_value = "data_access")]
    DataAccess,
    #[sea_orm(string_value = "consent_management")]
    ConsentManagement,
    #[sea_orm(string_value = "user_management")]
    UserManagement,
    #[sea_orm(string_value = "profile_management")]
    ProfileManagement,
    #[sea_orm(string_value = "deletion_management")]
    DeletionManagement,
    #[sea_orm(string_value = "authentication")]
    Authentication,
    #[sea_orm(string_value = "compliance")]
    Compliance,
    #[sea_orm(string_value = "system")]
    System,
    #[sea_orm(string_value = "tenant_management")]
    TenantManagement,
    #[sea_orm(string_value = "security")]
    Security,
}
