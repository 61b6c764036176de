//! `subject_keys`: one data key per user, sealed by the key ring for its slot
//! (`subject_keys.wrapped_key.<user id>`). Personal fields sealed under it stay
//! readable while it exists; erasure deletes the row, which makes them unreadable
//! everywhere they were copied, backups of later dates included.

use crate::ids::UserId;
use crate::secret::SealedBytes;
use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "subject_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: UserId,
    #[sea_orm(column_type = "VarBinary(StringLen::N(128))")]
    pub wrapped_key: SealedBytes,
    pub created_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "user_id", to = "id", on_delete = "Restrict")]
    pub user: BelongsTo<crate::identity::users::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
