//! `mfa_challenges`: the half-way point of a two-step sign-in. The password step
//! issues one (only its SHA-256 is stored); the second step completes it once, before
//! it expires. `failures` counts wrong second steps.

use crate::ids::{MfaChallengeId, UserId};
use crate::secret::TokenHash;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "mfa_challenges")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: MfaChallengeId,
    pub user_id: UserId,
    #[sea_orm(unique)]
    pub token_hash: TokenHash,
    pub reason: ChallengeReason,
    /// The sign-in's risk score when it was issued (0 to 100).
    pub risk_score: i32,
    pub failures: i32,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    pub completed_at: Option<DateTimeUtc>,
    #[sea_orm(belongs_to, from = "user_id", to = "id", on_delete = "Cascade")]
    pub user: BelongsTo<super::users::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}

/// Why the password alone did not open a session.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum ChallengeReason {
    /// The user has a confirmed second factor.
    #[sea_orm(string_value = "factor")]
    Factor,
    /// Anomaly detection scored the sign-in above the step-up threshold.
    #[sea_orm(string_value = "risk")]
    Risk,
}
