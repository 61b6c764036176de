//! [`TenantCtx`]: proof that an actor is an active member of an active tenant.
//!
//! It can only be built by checking the database, so a tenant-scoped operation that
//! takes one cannot be called on behalf of an outsider ("wrong tenant" is a
//! `Forbidden` here, before any tenant data is read).

use crate::Result;
use crate::error::ServiceError;
use entity::tenancy::memberships::{self, MembershipRole, MembershipStatus};
use entity::tenancy::tenants;
use entity::{TenantId, UserId};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantCtx {
    tenant_id: TenantId,
    actor: UserId,
    role: MembershipRole,
}

impl TenantCtx {
    /// Checks that `actor` is an active member of the active tenant `tenant_id`.
    ///
    /// # Errors
    /// `Forbidden` if not (an unknown tenant gives the same answer as someone else's,
    /// so tenant ids cannot be probed); `Db`.
    pub async fn for_member<C: ConnectionTrait>(
        db: &C,
        tenant_id: TenantId,
        actor: UserId,
    ) -> Result<Self> {
        let found = memberships::Entity::find()
            .filter(memberships::Column::TenantId.eq(tenant_id))
            .filter(memberships::Column::UserId.eq(actor))
            .find_also_related(tenants::Entity)
            .one(db)
            .await?;
        match found {
            Some((membership, Some(tenant)))
                if membership.status == MembershipStatus::Active && tenant.is_active =>
            {
                Ok(Self {
                    tenant_id,
                    actor,
                    role: membership.role,
                })
            }
            _ => Err(ServiceError::Forbidden {
                reason: "not an active member of this tenant",
            }),
        }
    }

    pub fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }

    pub fn actor(&self) -> UserId {
        self.actor
    }

    pub fn role(&self) -> MembershipRole {
        self.role
    }

    /// Owners and admins manage the member list; members do not.
    pub(crate) fn require_member_manager(&self) -> Result<()> {
        match self.role {
            MembershipRole::Owner | MembershipRole::Admin => Ok(()),
            MembershipRole::Member => Err(ServiceError::Forbidden {
                reason: "only owners and admins manage members",
            }),
        }
    }
}
