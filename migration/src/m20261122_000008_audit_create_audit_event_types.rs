//! `audit_event_types`: the catalogue of audit events, loaded here because it is
//! reference data the schema depends on (every audit row points into it).
//!
//! The first block is the starting set (an APPI-oriented catalogue: consent, user,
//! profile, deletion, data access, authentication and compliance events); the
//! second is what the platform's own services record. A later event type gets its
//! own migration, so a catalogue change is versioned like any schema change.

use crate::schema_helpers::*;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AuditEventTypes {
    Table,
    EventType,
    Category,
    Description,
    CreatedAt,
}

const CATEGORIES: &[&str] = &[
    "data_access",
    "consent_management",
    "user_management",
    "profile_management",
    "deletion_management",
    "authentication",
    "compliance",
    "system",
    "tenant_management",
    "security",
];

/// (event_type, category, description)
const CATALOGUE: &[(&str, &str, &str)] = &[
    // Consent management.
    (
        "consent_read",
        "consent_management",
        "User consent data accessed",
    ),
    (
        "consent_validation_failed",
        "consent_management",
        "Consent validation check failed",
    ),
    (
        "consent_validated",
        "consent_management",
        "Consent validation check passed",
    ),
    (
        "consent_history_accessed",
        "consent_management",
        "User consent history accessed",
    ),
    (
        "consent_recorded",
        "consent_management",
        "Initial user consent recorded",
    ),
    (
        "consent_updated",
        "consent_management",
        "User consent preferences updated",
    ),
    (
        "consent_withdrawn",
        "consent_management",
        "User consent withdrawn",
    ),
    (
        "consent_change",
        "consent_management",
        "Generic consent change event",
    ),
    // User management.
    ("user_data_access", "user_management", "User data accessed"),
    (
        "user_created",
        "user_management",
        "New user account created",
    ),
    (
        "user_updated",
        "user_management",
        "User account information updated",
    ),
    ("user_deleted", "user_management", "User account deleted"),
    // Profile management.
    (
        "profile_data_access",
        "profile_management",
        "User profile data accessed",
    ),
    (
        "profile_created",
        "profile_management",
        "User profile created",
    ),
    (
        "profile_updated",
        "profile_management",
        "User profile information updated",
    ),
    // Deletion management.
    (
        "deletion_request",
        "deletion_management",
        "Data deletion request submitted",
    ),
    (
        "deletion_processing",
        "deletion_management",
        "Data deletion request being processed",
    ),
    (
        "deletion_completed",
        "deletion_management",
        "Data deletion request completed",
    ),
    (
        "deletion_cancelled",
        "deletion_management",
        "Data deletion request cancelled",
    ),
    // Data access.
    ("data_access", "data_access", "Generic data access event"),
    (
        "data_export",
        "data_access",
        "User data exported for download",
    ),
    // Authentication.
    ("login", "authentication", "User login event"),
    ("logout", "authentication", "User logout event"),
    (
        "login_failed",
        "authentication",
        "User login attempt failed",
    ),
    // Compliance.
    (
        "audit_trail_generated",
        "compliance",
        "Compliance audit trail generated",
    ),
    (
        "privacy_policy_updated",
        "compliance",
        "Privacy policy version updated",
    ),
    (
        "compliance_report_generated",
        "compliance",
        "Compliance report generated",
    ),
    // The platform's identity and tenancy services.
    (
        "account_locked",
        "authentication",
        "Account locked after repeated failed logins",
    ),
    (
        "session_created",
        "authentication",
        "Session opened and first refresh token issued",
    ),
    (
        "session_refreshed",
        "authentication",
        "Refresh token rotated",
    ),
    (
        "sessions_revoked_all",
        "authentication",
        "All of a user's sessions revoked",
    ),
    (
        "refresh_token_reused",
        "security",
        "Rotated refresh token presented again; session revoked",
    ),
    ("tenant_created", "tenant_management", "Tenant created"),
    (
        "member_added",
        "tenant_management",
        "User added to a tenant",
    ),
    (
        "member_removed",
        "tenant_management",
        "User removed from a tenant",
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        manager
            .create_table(
                create_table(backend, AuditEventTypes::Table)
                    .col(
                        ColumnDef::new(AuditEventTypes::EventType)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(string(AuditEventTypes::Category, 32))
                    .col(string(AuditEventTypes::Description, 255))
                    .col(timestamp_default_now(backend, AuditEventTypes::CreatedAt))
                    .check(check_in(
                        "ck_audit_event_types_category",
                        AuditEventTypes::Category,
                        CATEGORIES,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(AuditEventTypes::Table, [AuditEventTypes::Category]))
            .await?;

        let mut insert = Query::insert();
        insert.into_table(AuditEventTypes::Table).columns([
            AuditEventTypes::EventType,
            AuditEventTypes::Category,
            AuditEventTypes::Description,
        ]);
        for (event_type, category, description) in CATALOGUE {
            insert.values_panic([
                (*event_type).into(),
                (*category).into(),
                (*description).into(),
            ]);
        }
        manager.exec_stmt(insert).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AuditEventTypes::Table).to_owned())
            .await
    }
}
