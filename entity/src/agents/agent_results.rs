//! `agent_results`: the end of one attempt of a task: its output, or its error.

use crate::ids::{AgentResultId, AgentTaskId, TenantId};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "agent_results")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: AgentResultId,
    #[sea_orm(unique_key = "task_attempt")]
    pub tenant_id: TenantId,
    #[sea_orm(unique_key = "task_attempt")]
    pub task_id: AgentTaskId,
    /// Which attempt of the task (1, 2, ...).
    #[sea_orm(unique_key = "task_attempt")]
    pub attempt: i16,
    pub outcome: ResultOutcome,
    /// A success's output.
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub output: Option<Json>,
    /// A failure's error.
    pub error: Option<String>,
    /// The worker that ran the attempt.
    pub worker: String,
    pub started_at: DateTimeUtc,
    pub finished_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "tenant_id", to = "id", on_delete = "Restrict")]
    pub tenant: BelongsTo<crate::tenancy::tenants::Entity>,
    /// Composite, so a result always belongs to a task of the same tenant.
    #[sea_orm(
        belongs_to,
        from = "(tenant_id, task_id)",
        to = "(tenant_id, id)",
        on_delete = "Cascade"
    )]
    pub task: BelongsTo<super::agent_tasks::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum ResultOutcome {
    #[sea_orm(string_value = "succeeded")]
    Succeeded,
    #[sea_orm(string_value = "failed")]
    Failed,
}
