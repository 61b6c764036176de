//! Newtype primary keys, so a `UserId` can never be passed where a `TenantId` is meant.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

macro_rules! uuid_id {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {$(
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
            DeriveValueType,
        )]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn into_uuid(self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        // SeaORM asks every primary key type whether it can come from an
        // auto-increment value; a UUID never does.
        impl sea_orm::TryFromU64 for $name {
            fn try_from_u64(_: u64) -> Result<Self, DbErr> {
                Err(DbErr::ConvertFromU64(stringify!($name)))
            }
        }
    )*};
}

uuid_id!(
    /// `tenants.id`
    TenantId,
    /// `users.id`
    UserId,
    /// `user_profiles.id`
    UserProfileId,
    /// `memberships.id`
    MembershipId,
    /// `sessions.id`
    SessionId,
    /// `refresh_tokens.id`
    RefreshTokenId,
    /// `mfa_factors.id`
    MfaFactorId,
    /// `mfa_challenges.id`
    MfaChallengeId,
    /// `session_anomaly_reports.id`
    SessionAnomalyReportId,
    /// `mfa_backup_codes.id`
    MfaBackupCodeId,
    /// `audit_logs.id`
    AuditLogId,
    /// `permissions.id`
    PermissionId,
    /// `roles.id`
    RoleId,
    /// `role_assignments.id`
    RoleAssignmentId,
    /// `policies.id`
    PolicyId,
    /// `teams.id`
    TeamId,
    /// `invitations.id`
    InvitationId,
    /// `api_keys.id`
    ApiKeyId,
    /// `passkeys.id`
    PasskeyId,
    /// `privacy_policies.id`
    PrivacyPolicyId,
    /// `consent_records.id`
    ConsentRecordId,
    /// `deletion_requests.id`
    DeletionRequestId,
    /// `data_residency_log.id`
    DataTransferId,
    /// `security_incidents.id`
    SecurityIncidentId,
    /// `agent_tasks.id`
    AgentTaskId,
    /// `agent_results.id`
    AgentResultId,
    /// `properties.id`
    PropertyId,
    /// `records.id`
    RecordId,
    /// `record_versions.id`
    RecordVersionId,
    /// `access_grants.id`
    AccessGrantId,
    /// `billing_plans.id`
    BillingPlanId,
    /// `billing_subscriptions.id`
    BillingSubscriptionId,
    /// `usage_records.id`
    UsageRecordId,
    /// `payment_customers.id`
    PaymentCustomerId,
    /// `payment_methods.id`
    PaymentMethodId,
    /// `payment_intents.id`
    PaymentIntentId,
);
