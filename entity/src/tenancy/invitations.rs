//! `invitations`: an email invited into a tenant with a role, by token.
//!
//! The table also has a generated `pending_email` column, maintained by the database
//! for the one-pending-per-email index; it is not part of the model.

use crate::ids::{InvitationId, RoleId, TeamId, TenantId, UserId};
use crate::secret::TokenHash;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "invitations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: InvitationId,
    pub tenant_id: TenantId,
    /// Lowercased, like `users.email`.
    pub email: String,
    pub role_id: RoleId,
    pub team_id: Option<TeamId>,
    #[sea_orm(unique)]
    pub token_hash: TokenHash,
    pub status: InvitationStatus,
    pub invited_by: Option<UserId>,
    pub expires_at: DateTimeUtc,
    pub accepted_at: Option<DateTimeUtc>,
    pub accepted_by: Option<UserId>,
    pub revoked_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum InvitationStatus {
    #[sea_orm(string_value = "pending")]
    Pending,
    #[sea_orm(string_value = "accepted")]
    Accepted,
    #[sea_orm(string_value = "expired")]
    Expired,
    #[sea_orm(string_value = "revoked")]
    Revoked,
}
