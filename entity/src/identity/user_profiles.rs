//! `user_profiles`: the 1:1 personal details of a user.

use crate::ids::{UserId, UserProfileId};
use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "user_profiles")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: UserProfileId,
    #[sea_orm(unique)]
    pub user_id: UserId,
    pub display_name: String,
    pub phone: Option<String>,
    pub avatar_url: Option<String>,
    /// An IANA zone name, `UTC` by default.
    pub timezone: String,
    /// A BCP 47 language tag, `en` by default.
    pub language: String,
    #[sea_orm(column_type = "JsonBinary")]
    pub preferences: Json,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "user_id", to = "id", on_delete = "Cascade")]
    pub user: BelongsTo<super::users::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
