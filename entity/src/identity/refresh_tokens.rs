//! `refresh_tokens`: the rotation chain of a session. Only a SHA-256 of each token
//! is stored; a token is used at most once.

use crate::ids::{RefreshTokenId, SessionId};
use crate::secret::{SealedBytes, TokenHash};
use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "refresh_tokens")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: RefreshTokenId,
    pub session_id: SessionId,
    #[sea_orm(unique)]
    pub token_hash: TokenHash,
    /// The token this one replaced; `None` for the first token of a session.
    pub parent_id: Option<RefreshTokenId>,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    /// Set when the token is exchanged for its successor.
    pub used_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
    /// This token in clear, sealed for `refresh_tokens.reissue_sealed.<id>`, while it
    /// is unused: its parent presented again within the reuse interval gets it back.
    #[sea_orm(column_type = "VarBinary(StringLen::N(255))")]
    pub reissue_sealed: Option<SealedBytes>,
    #[sea_orm(belongs_to, from = "session_id", to = "id", on_delete = "Cascade")]
    pub session: BelongsTo<super::sessions::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
