//! `users`: one global identity per person, whatever tenants they belong to.

use crate::ids::UserId;
use crate::secret::PasswordHash;
use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: UserId,
    /// Always stored lowercased (a CHECK enforces it), so the unique index is
    /// case-insensitive on every backend.
    #[sea_orm(unique)]
    pub email: String,
    pub password_hash: PasswordHash,
    pub is_active: bool,
    pub is_verified: bool,
    pub last_login_at: Option<DateTimeUtc>,
    pub failed_login_count: i32,
    pub locked_until: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(has_one)]
    pub profile: HasOne<super::user_profiles::Entity>,
    #[sea_orm(has_many)]
    pub sessions: HasMany<super::sessions::Entity>,
    #[sea_orm(has_many)]
    pub memberships: HasMany<crate::tenancy::memberships::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
