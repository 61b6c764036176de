//! `mfa_factors`: a user's second factor. For TOTP (RFC 6238) the shared secret is
//! stored sealed for its slot (`mfa_factors.secret.<id>`); `last_used_step` is the
//! newest time step a code was accepted for, so no code works twice. One factor of a
//! kind per user; disabling deletes the row.

use crate::ids::{MfaFactorId, UserId};
use crate::secret::SealedBytes;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "mfa_factors")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: MfaFactorId,
    #[sea_orm(unique_key = "user_kind")]
    pub user_id: UserId,
    #[sea_orm(unique_key = "user_kind")]
    pub kind: MfaKind,
    /// The user's label for the device ("Phone").
    pub name: String,
    #[sea_orm(column_type = "VarBinary(StringLen::N(255))")]
    pub secret: SealedBytes,
    pub algorithm: TotpAlgorithm,
    /// Digits per code (6 to 8).
    pub digits: i16,
    /// Seconds per time step.
    pub period: i16,
    /// When the first valid code was presented; until then the factor protects nothing.
    pub confirmed_at: Option<DateTimeUtc>,
    /// The newest time step (Unix time / period) a code was accepted for.
    pub last_used_step: Option<i64>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "user_id", to = "id", on_delete = "Cascade")]
    pub user: BelongsTo<super::users::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum MfaKind {
    /// Time-based one-time passwords from an authenticator app.
    #[sea_orm(string_value = "totp")]
    Totp,
}

/// The HMAC a TOTP factor computes its codes with (RFC 6238 allows these three).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(8))")]
pub enum TotpAlgorithm {
    /// What authenticator apps support everywhere, and assume when none is named.
    #[sea_orm(string_value = "SHA1")]
    Sha1,
    #[sea_orm(string_value = "SHA256")]
    Sha256,
    #[sea_orm(string_value = "SHA512")]
    Sha512,
}
