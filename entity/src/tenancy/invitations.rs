//! `invitations`: an email invited into a tenant with a role, by token.

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
    #[sea_orm(unique_key = "tenant_pending_email")]
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
    /// `email` while the invitation is pending, else `None`: computed by the database
    /// so that a unique key allows one pending invitation per tenant and email.
    /// Read it; never set it (the database refuses a written value).
    #[sea_orm(
        unique_key = "tenant_pending_email",
        extra = "GENERATED ALWAYS AS (CASE WHEN status = 'pending' THEN email END) STORED"
    )]
    pub pending_email: Option<String>,
    #[sea_orm(belongs_to, from = "tenant_id", to = "id", on_delete = "Cascade")]
    pub tenant: BelongsTo<super::tenants::Entity>,
    #[sea_orm(belongs_to, from = "role_id", to = "id", on_delete = "Cascade")]
    pub role: BelongsTo<crate::access::roles::Entity>,
    /// The team the invitee joins on acceptance, in the invitation's own tenant.
    #[sea_orm(
        belongs_to,
        from = "(tenant_id, team_id)",
        to = "(tenant_id, id)",
        on_delete = "Cascade"
    )]
    pub team: BelongsTo<Option<super::teams::Entity>>,
    /// Who invited: kept as history, so the invitation outlives their account.
    #[sea_orm(belongs_to, from = "invited_by", to = "id", on_delete = "SetNull")]
    pub inviter: BelongsTo<Option<crate::identity::users::Entity>>,
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
