//! `sessions`: one signed-in device. Its refresh tokens rotate; the session stays.
//! It records how strongly the user was authenticated (assurance level and methods,
//! and when they last proved it) and where the device was (a fingerprint's hash and a
//! coarse location supplied by the application), for step-up and anomaly detection.

use crate::ids::{SessionId, UserId};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "sessions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: SessionId,
    pub user_id: UserId,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: DateTimeUtc,
    pub last_used_at: DateTimeUtc,
    /// Absolute end of the session, however often it is refreshed.
    pub expires_at: DateTimeUtc,
    pub revoked_at: Option<DateTimeUtc>,
    pub revoked_reason: Option<RevokedReason>,
    /// Authenticator assurance level: `aal2` once a second factor was verified.
    pub aal: AssuranceLevel,
    /// The methods that authenticated the session, comma-separated in the order used
    /// (`password`, `password,totp`, `password,backup_code`).
    #[sea_orm(column_type = "String(StringLen::N(64))")]
    pub auth_methods: String,
    /// When the user last proved who they are in this session (sign-in or step-up);
    /// `None` only for sessions opened before the column existed, which count from
    /// `created_at`.
    pub authenticated_at: Option<DateTimeUtc>,
    /// Hex SHA-256 of the device fingerprint the application supplied.
    #[sea_orm(column_type = "String(StringLen::N(64))")]
    pub device_hash: Option<String>,
    /// ISO 3166-1 alpha-2 country code, as a CDN reports it.
    #[sea_orm(column_type = "String(StringLen::N(2))")]
    pub country: Option<String>,
    #[sea_orm(column_type = "String(StringLen::N(100))")]
    pub city: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    #[sea_orm(belongs_to, from = "user_id", to = "id", on_delete = "Cascade")]
    pub user: BelongsTo<super::users::Entity>,
    #[sea_orm(has_many)]
    pub refresh_tokens: HasMany<super::refresh_tokens::Entity>,
    #[sea_orm(has_many)]
    pub anomaly_reports: HasMany<super::session_anomaly_reports::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(24))")]
#[serde(rename_all = "snake_case")]
pub enum RevokedReason {
    /// The user signed out of this session.
    #[sea_orm(string_value = "logout")]
    Logout,
    /// The user signed out everywhere.
    #[sea_orm(string_value = "logout_all")]
    LogoutAll,
    /// A rotated refresh token was presented again: the session is presumed stolen.
    #[sea_orm(string_value = "token_reuse")]
    TokenReuse,
}

/// Authenticator assurance level (NIST SP 800-63B), as Supabase and Ory name them.
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
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(8))")]
#[serde(rename_all = "snake_case")]
pub enum AssuranceLevel {
    /// One factor: the password.
    #[sea_orm(string_value = "aal1")]
    Aal1,
    /// The password and a second factor.
    #[sea_orm(string_value = "aal2")]
    Aal2,
}

impl AssuranceLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            AssuranceLevel::Aal1 => "aal1",
            AssuranceLevel::Aal2 => "aal2",
        }
    }
}
