//! `security_incidents`: a tenant's incidents, `open` -> `investigating` ->
//! `contained` -> `resolved`, with when they were detected, reported to the authority
//! and resolved, and whom they affected. Never deleted.

use crate::ids::{SecurityIncidentId, TenantId, UserId};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "security_incidents")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: SecurityIncidentId,
    pub tenant_id: TenantId,
    pub title: String,
    pub description: String,
    pub severity: IncidentSeverity,
    pub status: IncidentStatus,
    /// The affected users' ids, as a JSON array.
    #[sea_orm(column_type = "JsonBinary")]
    pub affected_subjects: Json,
    pub detected_at: DateTimeUtc,
    /// When the authority (a data protection regulator) was told.
    pub reported_at: Option<DateTimeUtc>,
    /// Set exactly when the status is `resolved`.
    pub resolved_at: Option<DateTimeUtc>,
    /// Who filed it; `None` once their account is gone.
    pub reported_by: Option<UserId>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "tenant_id", to = "id", on_delete = "Restrict")]
    pub tenant: BelongsTo<crate::tenancy::tenants::Entity>,
    #[sea_orm(belongs_to, from = "reported_by", to = "id", on_delete = "SetNull")]
    pub reporter: BelongsTo<Option<crate::identity::users::Entity>>,
}

impl ActiveModelBehavior for ActiveModel {}

#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum IncidentSeverity {
    #[sea_orm(string_value = "low")]
    Low,
    #[sea_orm(string_value = "medium")]
    Medium,
    #[sea_orm(string_value = "high")]
    High,
    #[sea_orm(string_value = "critical")]
    Critical,
}

#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    #[sea_orm(string_value = "open")]
    Open,
    #[sea_orm(string_value = "investigating")]
    Investigating,
    #[sea_orm(string_value = "contained")]
    Contained,
    #[sea_orm(string_value = "resolved")]
    Resolved,
}
