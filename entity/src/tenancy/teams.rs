//! `teams`: the team tree of a tenant.

use crate::ids::{TeamId, TenantId};
use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "teams")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: TeamId,
    /// `(tenant_id, id)` is a unique key too: composite foreign keys reference it, so
    /// no row points into another tenant. SeaORM gives a column one `unique_key` (here
    /// `tenant_name`); that key, implied by the primary key, is declared by the
    /// relations that reference it.
    #[sea_orm(unique_key = "tenant_name")]
    pub tenant_id: TenantId,
    /// `None` for a top-level team.
    pub parent_id: Option<TeamId>,
    #[sea_orm(unique_key = "tenant_name")]
    pub name: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "tenant_id", to = "id", on_delete = "Cascade")]
    pub tenant: BelongsTo<super::tenants::Entity>,
    /// Composite, so a parent is always a team of the same tenant.
    #[sea_orm(
        self_ref,
        relation_enum = "Parent",
        relation_reverse = "Children",
        from = "(tenant_id, parent_id)",
        to = "(tenant_id, id)"
    )]
    pub parent: BelongsTo<Option<Entity>>,
    #[sea_orm(self_ref, relation_enum = "Children", relation_reverse = "Parent")]
    pub children: HasMany<Entity>,
    #[sea_orm(has_many)]
    pub members: HasMany<super::team_members::Entity>,
}

impl ActiveModelBehavior for ActiveModel {}
