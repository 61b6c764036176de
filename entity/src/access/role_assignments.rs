//! `role_assignments`: a member holds a role in a scope, possibly for a while and
//! possibly only within a daily window.

use crate::ids::{RoleAssignmentId, RoleId, TenantId, UserId};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "role_assignments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: RoleAssignmentId,
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub role_id: RoleId,
    pub scope_type: ScopeType,
    /// The team (for `Team`) or record (for `Record`); `None` for `Tenant`.
    pub scope_id: Option<Uuid>,
    /// Start of the daily window, minutes after midnight UTC.
    pub window_start_minute: Option<i16>,
    /// End of the daily window (exclusive); before the start for a window past midnight.
    pub window_end_minute: Option<i16>,
    pub expires_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
    pub revoked_by: Option<UserId>,
    pub granted_by: Option<UserId>,
    pub created_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "role_id", to = "id", on_delete = "Cascade")]
    pub role: BelongsTo<super::roles::Entity>,
    /// The membership that holds the role: no assignment outlives it.
    #[sea_orm(
        belongs_to,
        from = "(tenant_id, user_id)",
        to = "(tenant_id, user_id)",
        on_delete = "Cascade"
    )]
    pub membership: BelongsTo<crate::tenancy::memberships::Entity>,
    /// The team of a `Team` scope. `scope_id` also holds record ids, so the database
    /// has no foreign key here (`skip_fk`); a record id simply matches no team.
    #[sea_orm(
        belongs_to,
        from = "(tenant_id, scope_id)",
        to = "(tenant_id, id)",
        skip_fk
    )]
    pub team: BelongsTo<Option<crate::tenancy::teams::Entity>>,
}

impl ActiveModelBehavior for ActiveModel {}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum ScopeType {
    /// The whole tenant.
    #[sea_orm(string_value = "tenant")]
    Tenant,
    /// One team and every team below it.
    #[sea_orm(string_value = "team")]
    Team,
    /// One record (or any other resource with an id).
    #[sea_orm(string_value = "record")]
    Record,
}
