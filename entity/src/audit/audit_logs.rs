//! `audit_logs`: append-only record of who did what, to what, with which outcome.
//!
//! `actor_user_id` deliberately has no foreign key: the trail must outlive the
//! user it names (erasure anonymises users; it never rewrites history).
//!
//! Rows are never updated or deleted (triggers refuse it on every backend). Each row
//! is a link of a hash chain, `chain_id`/`chain_seq`/`prev_hash`/`hash`; see
//! [`super::chain`] for what the hash covers.

use crate::ids::{AuditLogId, TenantId, UserId};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_logs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: AuditLogId,
    /// `None` for events outside any tenant (sign-up, sign-in).
    pub tenant_id: Option<TenantId>,
    pub actor_user_id: Option<UserId>,
    pub event_type: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub outcome: AuditOutcome,
    /// 0 (routine) to 100 (certainly hostile).
    pub risk_score: i16,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    #[sea_orm(column_type = "JsonBinary")]
    pub details: Json,
    pub occurred_at: DateTimeUtc,
    /// The chain: the tenant, else the actor, else the anonymous chain (nil UUID).
    #[sea_orm(unique_key = "chain_link")]
    pub chain_id: Uuid,
    /// 1, 2, 3, ... within the chain, without gaps.
    #[sea_orm(unique_key = "chain_link")]
    pub chain_seq: i64,
    /// Which canonical encoding `hash` covers ([`super::chain`]).
    pub chain_version: i16,
    /// The previous row's `hash`; 32 zero bytes for a chain's first row.
    #[sea_orm(column_type = "VarBinary(StringLen::N(32))")]
    pub prev_hash: Vec<u8>,
    /// SHA-256(`prev_hash` || canonical encoding of this row).
    #[sea_orm(column_type = "VarBinary(StringLen::N(32))")]
    pub hash: Vec<u8>,
    #[sea_orm(belongs_to, from = "tenant_id", to = "id", on_delete = "Restrict")]
    pub tenant: BelongsTo<Option<crate::tenancy::tenants::Entity>>,
    #[sea_orm(
        belongs_to,
        from = "event_type",
        to = "event_type",
        on_delete = "Restrict"
    )]
    pub event_type_entry: BelongsTo<super::audit_event_types::Entity>,
    /// Who acted, for joins only: `skip_fk` because the column has no foreign key
    /// (see above), so the user may be gone.
    #[sea_orm(belongs_to, from = "actor_user_id", to = "id", skip_fk)]
    pub actor: BelongsTo<Option<crate::identity::users::Entity>>,
    /// The head of the row's chain, for joins: `skip_fk`, as a chain outlives the
    /// tenant or user it is named after and has no foreign key.
    #[sea_orm(belongs_to, from = "chain_id", to = "chain_id", skip_fk)]
    pub chain_head: BelongsTo<super::audit_chain_heads::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    /// The fields the row's `hash` covers.
    pub fn chained(&self) -> super::chain::ChainedRow<'_> {
        super::chain::ChainedRow {
            chain_id: self.chain_id,
            chain_seq: self.chain_seq,
            id: self.id.0,
            tenant_id: self.tenant_id.map(|t| t.0),
            actor_user_id: self.actor_user_id.map(|u| u.0),
            event_type: &self.event_type,
            resource_type: self.resource_type.as_deref(),
            resource_id: self.resource_id.as_deref(),
            outcome: self.outcome.as_str(),
            risk_score: self.risk_score,
            ip_address: self.ip_address.as_deref(),
            user_agent: self.user_agent.as_deref(),
            details: &self.details,
            occurred_at: self.occurred_at,
        }
    }
}

impl AuditOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Success => "success",
            AuditOutcome::Failure => "failure",
            AuditOutcome::Denied => "denied",
        }
    }
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    #[sea_orm(string_value = "success")]
    Success,
    #[sea_orm(string_value = "failure")]
    Failure,
    /// Refused by policy (locked account, missing permission).
    #[sea_orm(string_value = "denied")]
    Denied,
}
