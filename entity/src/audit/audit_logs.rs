//! `audit_logs`: append-only record of who did what, to what, with which outcome.
//!
//! `actor_user_id` deliberately has no foreign key: the trail must outlive the
//! user it names (erasure anonymises users; it never rewrites history).

use crate::ids::{AuditLogId, TenantId, UserId};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_logs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: AuditLogId,
    /// `None` for events outside any tenant (sign-up, sign-in).
    pub tenant_id: Option<TenantId>,
    pub actor_user_id: Option<UserId>,
    pub event_type: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub outcome: AuditOutcome,
    /// 0 (routine) to 100 (certainly hostile).
    pub risk_score: i16,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    #[sea_orm(column_type = "JsonBinary")]
    pub details: Json,
    pub occurred_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "tenant_id", to = "id", on_delete = "Restrict")]
    pub tenant: BelongsTo<Option<crate::tenancy::tenants::Entity>>,
    #[sea_orm(
        belongs_to,
        from = "event_type",
        to = "event_type",
        on_delete = "Restrict"
    )]
    pub event_type_entry: BelongsTo<super::audit_event_types::Entity>,
    /// Who acted, for joins only: `skip_fk` because the column has no foreign key
    /// (see above), so the user may be gone.
    #[sea_orm(belongs_to, from = "actor_user_id", to = "id", skip_fk)]
    pub actor: BelongsTo<Option<crate::identity::users::Entity>>,
}

impl ActiveModelBehavior for ActiveModel {}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    #[sea_orm(string_value = "success")]
    Success,
    #[sea_orm(string_value = "failure")]
    Failure,
    /// Refused by policy (locked account, missing permission).
    #[sea_orm(string_value = "denied")]
    Denied,
}
