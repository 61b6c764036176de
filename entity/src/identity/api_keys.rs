//! `api_keys`: a tenant's keys for machine clients. Only a SHA-256 of each key and
//! its visible prefix are stored. A rotated key names its successor and works until
//! `grace_ends_at`; a revoked one never again. Rows are never deleted at run time.

use crate::ids::{ApiKeyId, TenantId, UserId};
use crate::secret::TokenHash;
use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: ApiKeyId,
    /// `(tenant_id, id)` is a unique key too, the target of `replaced_by`; it is
    /// declared by the relation that references it.
    pub tenant_id: TenantId,
    /// Who created the key; `None` once their account is gone.
    pub created_by: Option<UserId>,
    pub name: String,
    /// The visible start of the key (`sk_test_AbCd1234`), to tell keys apart.
    pub prefix: String,
    #[sea_orm(unique)]
    pub key_hash: TokenHash,
    /// Permission names (`resource:action`, `*` allowed) the key may use, as a JSON
    /// array of strings.
    #[sea_orm(column_type = "JsonBinary")]
    pub scopes: Json,
    pub expires_at: Option<DateTimeUtc>,
    pub last_used_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
    /// The key that replaced this one at rotation.
    pub replaced_by: Option<ApiKeyId>,
    /// Set with `replaced_by`: when this key stops working.
    pub grace_ends_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "tenant_id", to = "id", on_delete = "Cascade")]
    pub tenant: BelongsTo<crate::tenancy::tenants::Entity>,
    #[sea_orm(belongs_to, from = "created_by", to = "id", on_delete = "SetNull")]
    pub creator: BelongsTo<Option<super::users::Entity>>,
    /// Composite, so a successor is always a key of the same tenant.
    #[sea_orm(
        self_ref,
        relation_enum = "Successor",
        relation_reverse = "Replaced",
        from = "(tenant_id, replaced_by)",
        to = "(tenant_id, id)",
        on_delete = "Cascade"
    )]
    pub successor: BelongsTo<Option<Entity>>,
    #[sea_orm(self_ref, relation_enum = "Replaced", relation_reverse = "Successor")]
    pub replaced: HasMany<Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
