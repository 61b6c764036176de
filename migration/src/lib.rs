//! Versioned, reversible schema changes, and the environment-safe CLI that applies them.
//!
//! Migrations are frozen DDL: each file declares its own identifiers and never imports
//! `entity`, so editing an entity can never rewrite history. Their order is time; the
//! file name carries the domain (`m20261122_000003_identity_create_users`).
//!
//! `sea-orm-cli migrate generate` (and our `generate`) rewrite the migration list below with
//! a regex: keep it the only vec! literal in this file, and the last bracketed list.

pub use sea_orm_migration::prelude::*;

pub mod cli;
pub mod environment;
pub mod lint;
pub mod lock;
pub mod plan;
pub mod snapshot;
pub mod tenant_schemas;
pub mod tracking;

mod schema_helpers;

mod m20261122_000001_platform_create_database_metadata;
mod m20261122_000002_tenancy_create_tenants;
mod m20261122_000003_identity_create_users;
mod m20261122_000004_identity_create_user_profiles;
mod m20261122_000005_tenancy_create_memberships;
mod m20261122_000006_identity_create_sessions;
mod m20261122_000007_identity_create_refresh_tokens;
mod m20261122_000008_audit_create_audit_event_types;
mod m20261122_000009_audit_create_audit_logs;
mod m20261122_000010_access_create_permissions;
mod m20261122_000011_access_create_roles;
mod m20261122_000012_access_create_role_inheritance;
mod m20261122_000013_access_create_role_permissions;
mod m20261122_000014_tenancy_create_teams;
mod m20261122_000015_tenancy_create_team_members;
mod m20261122_000016_tenancy_create_invitations;
mod m20261122_000017_access_create_role_assignments;
mod m20261122_000018_access_create_policies;
mod m20261122_000019_audit_add_access_event_types;
mod m20261122_000020_platform_postgres_row_security;
mod m20261123_000021_identity_create_sign_in_throttles;
mod m20261123_000022_platform_postgres_walls;
mod m20261123_000023_tenancy_check_tenant_slug;
mod m20261123_000024_identity_create_api_keys;
mod m20261123_000025_audit_add_api_key_event_types;
mod m20261123_000026_identity_create_mfa;
mod m20261123_000027_audit_add_mfa_event_types;
mod m20261123_000028_identity_session_security;
mod m20261123_000029_audit_add_session_security_event_types;
mod m20261123_000030_identity_create_passkeys;
mod m20261123_000031_audit_add_passkey_event_types;
mod m20261123_000032_identity_request_check_functions;
mod m20261123_000033_audit_chain_and_append_only;
mod m20261124_000034_audit_add_catalogue_event_types;
mod m20261124_000035_compliance_create_consent;
mod m20261124_000036_compliance_create_deletion_requests;
mod m20261124_000037_compliance_residency_and_incidents;
mod m20261125_000038_agents_create_agent_tasks;
mod m20261125_000039_rental_create_properties;
mod m20261126_000040_records_create_protected_records;
mod m20261126_000041_billing_create_billing;
mod m20261127_000042_records_grant_check_in_plpgsql;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_platform_create_database_metadata::Migration),
            Box::new(m20261122_000002_tenancy_create_tenants::Migration),
            Box::new(m20261122_000003_identity_create_users::Migration),
            Box::new(m20261122_000004_identity_create_user_profiles::Migration),
            Box::new(m20261122_000005_tenancy_create_memberships::Migration),
            Box::new(m20261122_000006_identity_create_sessions::Migration),
            Box::new(m20261122_000007_identity_create_refresh_tokens::Migration),
            Box::new(m20261122_000008_audit_create_audit_event_types::Migration),
            Box::new(m20261122_000009_audit_create_audit_logs::Migration),
            Box::new(m20261122_000010_access_create_permissions::Migration),
            Box::new(m20261122_000011_access_create_roles::Migration),
            Box::new(m20261122_000012_access_create_role_inheritance::Migration),
            Box::new(m20261122_000013_access_create_role_permissions::Migration),
            Box::new(m20261122_000014_tenancy_create_teams::Migration),
            Box::new(m20261122_000015_tenancy_create_team_members::Migration),
            Box::new(m20261122_000016_tenancy_create_invitations::Migration),
            Box::new(m20261122_000017_access_create_role_assignments::Migration),
            Box::new(m20261122_000018_access_create_policies::Migration),
            Box::new(m20261122_000019_audit_add_access_event_types::Migration),
            Box::new(m20261122_000020_platform_postgres_row_security::Migration),
            Box::new(m20261123_000021_identity_create_sign_in_throttles::Migration),
            Box::new(m20261123_000022_platform_postgres_walls::Migration),
            Box::new(m20261123_000023_tenancy_check_tenant_slug::Migration),
            Box::new(m20261123_000024_identity_create_api_keys::Migration),
            Box::new(m20261123_000025_audit_add_api_key_event_types::Migration),
            Box::new(m20261123_000026_identity_create_mfa::Migration),
            Box::new(m20261123_000027_audit_add_mfa_event_types::Migration),
            Box::new(m20261123_000028_identity_session_security::Migration),
            Box::new(m20261123_000029_audit_add_session_security_event_types::Migration),
            Box::new(m20261123_000030_identity_create_passkeys::Migration),
            Box::new(m20261123_000031_audit_add_passkey_event_types::Migration),
            Box::new(m20261123_000032_identity_request_check_functions::Migration),
            Box::new(m20261123_000033_audit_chain_and_append_only::Migration),
            Box::new(m20261124_000034_audit_add_catalogue_event_types::Migration),
            Box::new(m20261124_000035_compliance_create_consent::Migration),
            Box::new(m20261124_000036_compliance_create_deletion_requests::Migration),
            Box::new(m20261124_000037_compliance_residency_and_incidents::Migration),
            Box::new(m20261125_000038_agents_create_agent_tasks::Migration),
            Box::new(m20261125_000039_rental_create_properties::Migration),
            Box::new(m20261126_000040_records_create_protected_records::Migration),
            Box::new(m20261126_000041_billing_create_billing::Migration),
            Box::new(m20261127_000042_records_grant_check_in_plpgsql::Migration),
        ]
    }
}
