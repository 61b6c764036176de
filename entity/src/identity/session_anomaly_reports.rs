//! `session_anomaly_reports`: what anomaly detection found at a sign-in or refresh
//! (a new device, impossible travel, a burst of failed sign-ins), with its risk score.
//! `session_id` is empty when the sign-in it describes opened no session.

use crate::ids::{SessionAnomalyReportId, SessionId, UserId};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "session_anomaly_reports")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: SessionAnomalyReportId,
    pub user_id: UserId,
    pub session_id: Option<SessionId>,
    pub kind: AnomalyKind,
    /// 0 to 100.
    pub risk_score: i32,
    /// What was compared: distances, speeds, counts.
    pub details: Json,
    #[sea_orm(column_type = "String(StringLen::N(45))")]
    pub ip_address: Option<String>,
    #[sea_orm(column_type = "String(StringLen::N(2))")]
    pub country: Option<String>,
    #[sea_orm(column_type = "String(StringLen::N(100))")]
    pub city: Option<String>,
    pub created_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "user_id", to = "id", on_delete = "Cascade")]
    pub user: BelongsTo<super::users::Entity>,
    #[sea_orm(belongs_to, from = "session_id", to = "id", on_delete = "SetNull")]
    pub session: BelongsTo<Option<super::sessions::Entity>>,
}

impl ActiveModelBehavior for ActiveModel {}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    /// A device fingerprint the user never signed in with.
    #[sea_orm(string_value = "new_device")]
    NewDevice,
    /// Faster than the configured speed from the previous session's location.
    #[sea_orm(string_value = "impossible_travel")]
    ImpossibleTravel,
    /// Many failed sign-ins for the account shortly before this one.
    #[sea_orm(string_value = "failed_sign_in_burst")]
    FailedSignInBurst,
}

impl AnomalyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyKind::NewDevice => "new_device",
            AnomalyKind::ImpossibleTravel => "impossible_travel",
            AnomalyKind::FailedSignInBurst => "failed_sign_in_burst",
        }
    }
}
