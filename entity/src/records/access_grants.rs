//! `access_grants`: who else may open a subject's records: one record, or all of
//! them, to read or to read and write, for a stated reason, from `starts_at` until
//! `expires_at` (always set), unless revoked. A break-glass opening is a grant of
//! kind `break_glass`: the opener's own, on one record, to read, for a short time.

use crate::ids::{AccessGrantId, RecordId, TenantId, UserId};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "access_grants")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: AccessGrantId,
    pub tenant_id: TenantId,
    pub grantee_id: UserId,
    /// Whose records.
    pub subject_id: UserId,
    /// One record of the subject; `None`: all of them.
    pub record_id: Option<RecordId>,
    pub access: GrantAccess,
    pub kind: GrantKind,
    /// 1 to 500 characters.
    pub reason: String,
    pub granted_by: UserId,
    pub starts_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    pub revoked_at: Option<DateTimeUtc>,
    pub revoked_by: Option<UserId>,
    pub revoke_reason: Option<String>,
    pub created_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "tenant_id", to = "id", on_delete = "Restrict")]
    pub tenant: BelongsTo<crate::tenancy::tenants::Entity>,
    /// Composite, so a grant on one record names that record's subject, in the
    /// same tenant.
    #[sea_orm(
        belongs_to,
        from = "(tenant_id, record_id, subject_id)",
        to = "(tenant_id, id, subject_id)",
        on_delete = "Restrict"
    )]
    pub record: BelongsTo<Option<super::records::Entity>>,
    #[sea_orm(
        belongs_to,
        relation_enum = "Grantee",
        from = "grantee_id",
        to = "id",
        on_delete = "Restrict"
    )]
    pub grantee: BelongsTo<crate::identity::users::Entity>,
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
        relation_enum = "Granter",
        from = "granted_by",
        to = "id",
        on_delete = "Restrict"
    )]
    pub granter: BelongsTo<crate::identity::users::Entity>,
    #[sea_orm(
        belongs_to,
        relation_enum = "Revoker",
        from = "revoked_by",
        to = "id",
        on_delete = "Restrict"
    )]
    pub revoker: BelongsTo<Option<crate::identity::users::Entity>>,
}

impl ActiveModelBehavior for ActiveModel {}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(8))")]
#[serde(rename_all = "snake_case")]
pub enum GrantAccess {
    #[sea_orm(string_value = "read")]
    Read,
    /// Read and write.
    #[sea_orm(string_value = "write")]
    Write,
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum GrantKind {
    #[sea_orm(string_value = "grant")]
    Grant,
    #[sea_orm(string_value = "break_glass")]
    BreakGlass,
}
