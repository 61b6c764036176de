//! `properties`: a tenant's rental listings, searched by rent, place, distance from a
//! point and features.

use crate::ids::{PropertyId, TenantId};
use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "properties")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: PropertyId,
    pub tenant_id: TenantId,
    pub title: String,
    /// Monthly rent in whole units of `currency` (yen have no minor unit).
    pub rent: i64,
    pub deposit: i64,
    /// ISO 4217, e.g. `JPY`.
    pub currency: String,
    /// e.g. `東京都`.
    pub prefecture: String,
    /// e.g. `渋谷区`.
    pub city: String,
    pub address: String,
    pub latitude: f64,
    pub longitude: f64,
    /// Feature names, as a JSON array (`["pets_allowed", "balcony"]`).
    #[sea_orm(column_type = "JsonBinary")]
    pub features: Json,
    /// Shown in searches; an unlisted property stays on record.
    pub listed: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "tenant_id", to = "id", on_delete = "Restrict")]
    pub tenant: BelongsTo<crate::tenancy::tenants::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
