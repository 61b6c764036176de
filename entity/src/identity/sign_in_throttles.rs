//! `sign_in_throttles`: failed sign-in attempts per key, behind exponential delays.
//! A key is an account seen from one client address, or one client address across
//! accounts; only its SHA-256 is stored.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sign_in_throttles")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub scope: ThrottleScope,
    /// Hex SHA-256 of the key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub key_hash: String,
    /// Failed (or still undecided) attempts since the last success or since the
    /// count was forgotten.
    pub failures: i32,
    pub last_failure_at: Option<DateTimeUtc>,
    /// No attempt under this key is verified before this instant.
    pub blocked_until: Option<DateTimeUtc>,
    pub updated_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum ThrottleScope {
    /// One account (normalised email) as seen from one client address.
    #[sea_orm(string_value = "account_address")]
    AccountAddress,
    /// One client address, whatever the account.
    #[sea_orm(string_value = "address")]
    Address,
}
