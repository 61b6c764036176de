//! `privacy_policies`: a tenant's published policy versions (1, 2, ...), each with the
//! instant it takes effect. A version never changes; a new text is a new version. The
//! policy in effect at an instant is the highest version effective by then.

use crate::ids::{PrivacyPolicyId, TenantId, UserId};
use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "privacy_policies")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: PrivacyPolicyId,
    #[sea_orm(unique_key = "tenant_version")]
    pub tenant_id: TenantId,
    #[sea_orm(unique_key = "tenant_version")]
    pub version: i32,
    pub title: String,
    /// Where the published text is (the document itself is not stored here).
    pub document_url: String,
    pub effective_at: DateTimeUtc,
    /// Who published it; `None` once their account is gone.
    pub published_by: Option<UserId>,
    pub created_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "tenant_id", to = "id", on_delete = "Restrict")]
    pub tenant: BelongsTo<crate::tenancy::tenants::Entity>,
    #[sea_orm(belongs_to, from = "published_by", to = "id", on_delete = "SetNull")]
    pub publisher: BelongsTo<Option<crate::identity::users::Entity>>,
    #[sea_orm(has_many)]
    pub consents: HasMany<super::consent_records::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
