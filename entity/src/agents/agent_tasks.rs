//! `agent_tasks`: work for one of a tenant's agents, taken by workers in priority
//! order once `run_after` has passed: `queued` -> `running` -> `succeeded` | `failed` |
//! `cancelled`, back to `queued` after a failed attempt while attempts remain.

use crate::ids::{AgentTaskId, TenantId, UserId};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "agent_tasks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: AgentTaskId,
    /// `(tenant_id, id)` is a unique key too, declared by the relation of
    /// `agent_results` that references it.
    pub tenant_id: TenantId,
    /// The agent that runs it (lowercase letters, digits, `_`, `-`, `.`; 1 to 100).
    pub agent: String,
    /// The agent's input.
    #[sea_orm(column_type = "JsonBinary")]
    pub payload: Json,
    pub status: TaskStatus,
    /// 0 to 100; higher runs first.
    pub priority: i16,
    /// Attempts started so far.
    pub attempts: i16,
    /// 1 to 25.
    pub max_attempts: i16,
    /// Not taken before this instant (a retry's backoff moves it).
    pub run_after: DateTimeUtc,
    /// The worker holding it, exactly while it is `running`.
    pub locked_by: Option<String>,
    pub locked_at: Option<DateTimeUtc>,
    /// The holder's last sign of life; a task whose holder went quiet is taken back.
    pub heartbeat_at: Option<DateTimeUtc>,
    /// The last failed attempt's error.
    pub last_error: Option<String>,
    /// Who enqueued it; `None` once their account is gone.
    pub created_by: Option<UserId>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// Set exactly when it succeeded, failed for good or was cancelled.
    pub finished_at: Option<DateTimeUtc>,
    #[sea_orm(belongs_to, from = "tenant_id", to = "id", on_delete = "Restrict")]
    pub tenant: BelongsTo<crate::tenancy::tenants::Entity>,
    #[sea_orm(belongs_to, from = "created_by", to = "id", on_delete = "SetNull")]
    pub creator: BelongsTo<Option<crate::identity::users::Entity>>,
    #[sea_orm(has_many)]
    pub results: HasMany<super::agent_results::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    #[sea_orm(string_value = "queued")]
    Queued,
    #[sea_orm(string_value = "running")]
    Running,
    #[sea_orm(string_value = "succeeded")]
    Succeeded,
    /// Its last attempt failed and none remain.
    #[sea_orm(string_value = "failed")]
    Failed,
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
}

impl TaskStatus {
    /// Succeeded, failed for good or cancelled: nothing more happens to it.
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}
