//! `record_versions`: a record as it was before a change, one row per replaced
//! version. The body is sealed again for this row (`record_versions.body.<id>`).

use super::records::RecordType;
use crate::ids::{RecordId, RecordVersionId, TenantId, UserId};
use crate::secret::SealedBytes;
use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "record_versions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: RecordVersionId,
    #[sea_orm(unique_key = "record_version")]
    pub tenant_id: TenantId,
    #[sea_orm(unique_key = "record_version")]
    pub record_id: RecordId,
    #[sea_orm(unique_key = "record_version")]
    pub version: i32,
    pub record_type: RecordType,
    pub title: String,
    #[sea_orm(column_type = "VarBinary(StringLen::N(60100))")]
    pub body: SealedBytes,
    /// Who wrote this version, and when.
    pub written_by: UserId,
    pub written_at: DateTimeUtc,
    /// Who replaced it, and when.
    pub superseded_by: UserId,
    pub superseded_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "tenant_id", to = "id", on_delete = "Restrict")]
    pub tenant: BelongsTo<crate::tenancy::tenants::Entity>,
    /// Composite, so a version always belongs to a record of the same tenant.
    #[sea_orm(
        belongs_to,
        from = "(tenant_id, record_id)",
        to = "(tenant_id, id)",
        on_delete = "Restrict"
    )]
    pub record: BelongsTo<super::records::Entity>,
    #[sea_orm(
        belongs_to,
        relation_enum = "Writer",
        from = "written_by",
        to = "id",
        on_delete = "Restrict"
    )]
    pub writer: BelongsTo<crate::identity::users::Entity>,
    #[sea_orm(
        belongs_to,
        relation_enum = "Superseder",
        from = "superseded_by",
        to = "id",
        on_delete = "Restrict"
    )]
    pub superseder: BelongsTo<crate::identity::users::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
