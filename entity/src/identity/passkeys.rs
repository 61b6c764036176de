//! `passkeys`: a user's WebAuthn credentials. Public data only: the credential id the
//! authenticator chose, its public key as an uncompressed SEC1 point, the COSE
//! algorithm, the signature counter (an assertion must raise it once non-zero; one
//! that does not disables the passkey as a cloned authenticator), the model's AAGUID,
//! the transports, and the backup flags.

use crate::ids::{PasskeyId, UserId};
use crate::secret::PublicKeyBytes;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "passkeys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: PasskeyId,
    pub user_id: UserId,
    /// Chosen by the authenticator: 16 to 1023 bytes.
    #[sea_orm(unique, column_type = "VarBinary(StringLen::N(1023))")]
    pub credential_id: Vec<u8>,
    /// `0x04 || X || Y` (65 bytes for P-256).
    #[sea_orm(column_type = "VarBinary(StringLen::N(255))")]
    pub public_key: PublicKeyBytes,
    /// The COSE algorithm: -7 (ES256).
    pub algorithm: i32,
    /// The authenticator's signature counter at the last accepted assertion.
    pub sign_count: i64,
    /// The authenticator model (all zeros when it does not say).
    pub aaguid: Uuid,
    /// Comma-separated WebAuthn transports (`internal,hybrid`), possibly empty.
    pub transports: String,
    pub backup_eligible: bool,
    pub backup_state: bool,
    /// The user's label ("Laptop"), 1 to 64 characters.
    pub name: String,
    pub created_at: DateTimeUtc,
    pub last_used_at: Option<DateTimeUtc>,
    /// Set once, with the reason; a disabled passkey is refused for good.
    pub disabled_at: Option<DateTimeUtc>,
    pub disabled_reason: Option<PasskeyDisabledReason>,
    #[sea_orm(belongs_to, from = "user_id", to = "id", on_delete = "Cascade")]
    pub user: BelongsTo<super::users::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
#[serde(rename_all = "snake_case")]
pub enum PasskeyDisabledReason {
    /// An assertion's signature counter did not increase.
    #[sea_orm(string_value = "cloned_authenticator")]
    ClonedAuthenticator,
}
