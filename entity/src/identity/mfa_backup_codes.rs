//! `mfa_backup_codes`: single-use codes that stand in for a user's second factor. Only
//! the SHA-256 of each code is stored; a used code keeps its row (`used_at`) until the
//! set is replaced.

use crate::ids::{MfaBackupCodeId, UserId};
use crate::secret::TokenHash;
use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "mfa_backup_codes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: MfaBackupCodeId,
    pub user_id: UserId,
    #[sea_orm(unique)]
    pub code_hash: TokenHash,
    pub used_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "user_id", to = "id", on_delete = "Cascade")]
    pub user: BelongsTo<super::users::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
