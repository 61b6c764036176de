//! `records`: one protected record of a subject (a patient), written by its author.
//! The body is stored sealed for its row (`records.body.<id>`); `version` starts at 1
//! and grows by one with each change, the replaced version kept in `record_versions`.

use crate::ids::{RecordId, TenantId, UserId};
use crate::secret::SealedBytes;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "records")]
pub struct Model {
    /// `(tenant_id, id, subject_id)` is a unique key: what a grant on one record
    /// references.
    #[sea_orm(primary_key, auto_increment = false, unique_key = "record_subject")]
    pub id: RecordId,
    /// `(tenant_id, id)` is a unique key too, declared by the relation of
    /// `record_versions` that references it.
    #[sea_orm(unique_key = "record_subject")]
    pub tenant_id: TenantId,
    /// The patient the record is about.
    #[sea_orm(unique_key = "record_subject")]
    pub subject_id: UserId,
    pub author_id: UserId,
    pub record_type: RecordType,
    /// 1 to 200 characters; not sealed (lists show it), so keep findings out of it.
    pub title: String,
    #[sea_orm(column_type = "VarBinary(StringLen::N(60100))")]
    pub body: SealedBytes,
    pub version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// Who wrote the current version; `None` for the first.
    pub updated_by: Option<UserId>,
    #[sea_orm(belongs_to, from = "tenant_id", to = "id", on_delete = "Restrict")]
    pub tenant: BelongsTo<crate::tenancy::tenants::Entity>,
    #[sea_orm(
        belongs_to,
        relation_enum = "Subject",
        from = "subject_id",
        to = "id",
        on_delete = "Restrict"
    )]
    pub subject: BelongsTo<crate::identity::users::Entity>,
    #[sea_orm(
        belongs_to,
        relation_enum = "Author",
        from = "author_id",
        to = "id",
        on_delete = "Restrict"
    )]
    pub author: BelongsTo<crate::identity::users::Entity>,
    #[sea_orm(
        belongs_to,
        relation_enum = "Editor",
        from = "updated_by",
        to = "id",
        on_delete = "Restrict"
    )]
    pub editor: BelongsTo<Option<crate::identity::users::Entity>>,
    #[sea_orm(has_many)]
    pub versions: HasMany<super::record_versions::Entity>,
    #[sea_orm(has_many)]
    pub grants: HasMany<super::access_grants::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum RecordType {
    #[sea_orm(string_value = "consultation")]
    Consultation,
    #[sea_orm(string_value = "diagnosis")]
    Diagnosis,
    #[sea_orm(string_value = "treatment")]
    Treatment,
    #[sea_orm(string_value = "lab_result")]
    LabResult,
    #[sea_orm(string_value = "prescription")]
    Prescription,
    #[sea_orm(string_value = "imaging")]
    Imaging,
    #[sea_orm(string_value = "other")]
    Other,
}
