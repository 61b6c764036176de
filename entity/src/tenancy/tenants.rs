//! `tenants`: one row per customer organisation.

use crate::ids::TenantId;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tenants")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: TenantId,
    /// Lowercase `[a-z0-9-]`, 3 to 63 characters: usable as a subdomain or schema name.
    #[sea_orm(unique)]
    pub slug: String,
    pub name: String,
    pub plan_tier: PlanTier,
    pub isolation_level: IsolationLevel,
    pub data_region: DataRegion,
    /// Feature flags, e.g. `{"sso": true}`.
    #[sea_orm(column_type = "JsonBinary")]
    pub features: Json,
    pub is_active: bool,
    /// Regions besides `data_region` its data may be transferred to (region codes as a
    /// JSON array; empty: none). Its owner decides.
    #[sea_orm(column_type = "JsonBinary", default_value = "[]")]
    pub transfer_regions: Json,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(has_many)]
    pub memberships: HasMany<super::memberships::Entity>,
    #[sea_orm(has_many)]
    pub teams: HasMany<super::teams::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum PlanTier {
    #[sea_orm(string_value = "free")]
    Free,
    #[sea_orm(string_value = "pro")]
    Pro,
    #[sea_orm(string_value = "enterprise")]
    Enterprise,
}

/// Where a tenant's rows live: shared tables behind row-level security,
/// a dedicated PostgreSQL schema, or a dedicated database.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum IsolationLevel {
    #[sea_orm(string_value = "shared")]
    Shared,
    #[sea_orm(string_value = "schema")]
    Schema,
    #[sea_orm(string_value = "database")]
    Database,
}

/// The jurisdiction whose law governs the tenant's personal data (GDPR, APPI, ...).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(8))")]
#[serde(rename_all = "snake_case")]
pub enum DataRegion {
    #[sea_orm(string_value = "us")]
    Us,
    #[sea_orm(string_value = "eu")]
    Eu,
    #[sea_orm(string_value = "jp")]
    Jp,
}
