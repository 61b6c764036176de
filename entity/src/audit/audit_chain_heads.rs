//! `audit_chain_heads`: each audit chain's last link. An append locks its chain's head
//! row in the writer's transaction, so the writers of one chain take turns and never
//! fork it, while other chains' writers do not wait. There is no foreign key: a chain
//! is a tenant's or a user's (see [`super::chain::chain_of`]) and outlives both.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_chain_heads")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub chain_id: Uuid,
    /// The chain's last `chain_seq`; 0 before its first row.
    pub last_seq: i64,
    /// The chain's last `hash`; 32 zero bytes before its first row.
    #[sea_orm(column_type = "VarBinary(StringLen::N(32))")]
    pub last_hash: Vec<u8>,
    #[sea_orm(has_many)]
    pub audit_logs: HasMany<super::audit_logs::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
