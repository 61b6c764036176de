//! Creating and finding tenants.

use crate::Result;
use crate::audit::{AuditEntry, AuditEvent, record};
use crate::deps::Deps;
use crate::error::{ServiceError, conflict_on_unique};
use crate::identity::find_active_user;
use crate::input::{Slug, TenantName};
use crate::request::RequestMeta;
use crate::tenancy::{insert_membership, set_row_security_context};
use entity::audit::audit_logs::AuditOutcome;
use entity::tenancy::memberships::{self, MembershipRole};
use entity::tenancy::tenants::{self, DataRegion, IsolationLevel, PlanTier};
use entity::{TenantId, UserId};
use sea_orm::ActiveValue::Set;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, TransactionSession,
    TransactionTrait,
};
use serde_json::{Value as Json, json};

/// A tenant to create, already validated.
#[derive(Clone, Debug)]
pub struct NewTenant {
    pub slug: Slug,
    pub name: TenantName,
    pub plan_tier: PlanTier,
    pub isolation_level: IsolationLevel,
    pub data_region: DataRegion,
    /// Feature flags; must be a JSON object.
    pub features: Json,
}

impl NewTenant {
    /// A shared-isolation tenant on the free plan in the `us` region, no features.
    ///
    /// # Errors
    /// `Validation` for a bad slug or name.
    pub fn parse(slug: &str, name: &str) -> Result<Self> {
        Ok(Self {
            slug: Slug::parse(slug)?,
            name: TenantName::parse(name)?,
            plan_tier: PlanTier::Free,
            isolation_level: IsolationLevel::Shared,
            data_region: DataRegion::Us,
            features: json!({}),
        })
    }
}

/// Creates a tenant with `creator` as its owner. Records `tenant_created` and
/// `member_added`.
///
/// # Errors
/// `Validation` if `features` is not an object; `NotFound` for an unknown creator;
/// `AccountDisabled` for an inactive one; `Conflict` if the slug is taken; `Db`.
pub async fn create_tenant<C>(
    db: &C,
    deps: &Deps,
    creator: UserId,
    input: NewTenant,
    meta: &RequestMeta,
) -> Result<(tenants::Model, memberships::Model)>
where
    C: ConnectionTrait + TransactionTrait,
{
    if !input.features.is_object() {
        return Err(ServiceError::validation(
            "features",
            "must be a JSON object",
        ));
    }
    let now = deps.now();
    let tenant_id = TenantId(deps.new_id("tenants", input.slug.as_str()));
    let txn = crate::begin_write(db).await?;
    // The new tenant's context from the start: on PostgreSQL the walls let the
    // creator see itself and write this one tenant's rows, nothing else. Whether the
    // slug is taken elsewhere is the unique index's answer.
    set_row_security_context(&txn, Some(tenant_id), Some(creator)).await?;
    find_active_user(&txn, creator).await?;
    if find_tenant_by_slug(&txn, &input.slug).await?.is_some() {
        return Err(ServiceError::Conflict {
            entity: "tenant",
            reason: "slug is already taken",
        });
    }
    let tenant = tenants::ActiveModel {
        id: Set(tenant_id),
        slug: Set(input.slug.as_str().to_owned()),
        name: Set(input.name.as_str().to_owned()),
        plan_tier: Set(input.plan_tier),
        isolation_level: Set(input.isolation_level),
        data_region: Set(input.data_region),
        features: Set(input.features),
        is_active: Set(true),
        // None until its owner allows some (`compliance::set_transfer_regions`).
        transfer_regions: Set(serde_json::json!([])),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await
    .map_err(conflict_on_unique("tenant", "slug is already taken"))?;

    let membership =
        insert_membership(&txn, deps, tenant_id, creator, MembershipRole::Owner, now).await?;

    record(
        &txn,
        deps,
        AuditEntry::new(AuditEvent::TenantCreated, AuditOutcome::Success, meta)
            .tenant(tenant_id)
            .actor(creator)
            .resource("tenant", tenant_id)
            .details(json!({ "slug": tenant.slug, "plan_tier": tenant.plan_tier })),
    )
    .await?;
    record(
        &txn,
        deps,
        AuditEntry::new(AuditEvent::MemberAdded, AuditOutcome::Success, meta)
            .tenant(tenant_id)
            .actor(creator)
            .resource("membership", membership.id)
            .details(json!({ "user_id": creator, "role": MembershipRole::Owner })),
    )
    .await?;
    txn.commit().await?;
    Ok((tenant, membership))
}

/// The tenant with this slug, among those `db`'s context may see. Reads in a
/// transaction of its own (a savepoint inside yours), like every statement of the service.
///
/// # Errors
/// `Db` only.
pub async fn find_tenant_by_slug<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    slug: &Slug,
) -> Result<Option<tenants::Model>> {
    let txn = db.begin().await?;
    let found = tenants::Entity::find()
        .filter(tenants::Column::Slug.eq(slug.as_str()))
        .one(&txn)
        .await?;
    txn.commit().await?;
    Ok(found)
}
