//! The tenants of a profile and their memberships, through `service::tenancy`. (Teams
//! and invitations are loaded with the access fixtures, which they serve.)

use crate::profile::TenantFixture;
use crate::{SeedError, TenantLine, fixture_error};
use entity::tenancy::memberships::MembershipRole;
use entity::{TenantId, UserId};
use sea_orm::{ActiveEnum, ConnectionTrait, TransactionTrait};
use service::tenancy::{NewTenant, TenantCtx, add_member, create_tenant};
use service::{Deps, RequestMeta};

/// Creates the fixture's tenant with `owner` as its owner; `fixture` names the owner's
/// row in errors.
pub(crate) async fn create_owned<C>(
    db: &C,
    deps: &Deps,
    owner: UserId,
    tenant: &TenantFixture,
    fixture: &'static str,
    meta: &RequestMeta,
) -> Result<TenantLine, SeedError>
where
    C: ConnectionTrait + TransactionTrait,
{
    let on_err = fixture_error(fixture);
    let mut new_tenant = NewTenant::parse(tenant.slug, tenant.name).map_err(&on_err)?;
    new_tenant.plan_tier = tenant.plan_tier;
    new_tenant.data_region = tenant.data_region;
    new_tenant.features =
        serde_json::from_str(tenant.features).expect("fixture features are valid JSON");
    let (created, _) = create_tenant(db, deps, owner, new_tenant, meta)
        .await
        .map_err(&on_err)?;
    Ok(TenantLine {
        id: created.id,
        slug: tenant.slug,
        name: tenant.name,
        plan_tier: tenant.plan_tier.to_value(),
        data_region: tenant.data_region.to_value(),
        origin: tenant.origin,
    })
}

/// The tenant's owner adds `user` with `role`; `fixture` names the user's row in errors.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn join<C>(
    db: &C,
    deps: &Deps,
    tenant: TenantId,
    owner: UserId,
    user: UserId,
    role: MembershipRole,
    fixture: &'static str,
    meta: &RequestMeta,
) -> Result<(), SeedError>
where
    C: ConnectionTrait + TransactionTrait,
{
    let on_err = fixture_error(fixture);
    let ctx = TenantCtx::for_member(db, tenant, owner)
        .await
        .map_err(&on_err)?;
    add_member(db, deps, &ctx, user, role, meta)
        .await
        .map_err(&on_err)?;
    Ok(())
}
