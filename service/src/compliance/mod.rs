//! Privacy compliance (GDPR, APPI): consent under versioned privacy policies, erasure
//! on request with pseudonymisation and crypto-shredding, data export, data residency,
//! security incidents and the compliance report.
//!
//! Tenant-scoped steps (policies, consent) run in the tenant's transaction like every
//! tenant operation. A user's own steps (filing or cancelling a deletion request) run
//! acting for that user. The operator jobs (the erasure batch, exports) read every
//! tenant's rows: on PostgreSQL they run as a role that bypasses row-level security.

pub mod consent;
pub mod deletion;
pub mod export;
pub mod incidents;
pub mod report;
pub mod residency;
mod subject_keys;

pub use consent::{
    ConsentCheck, ConsentDecision, ConsentEntry, ConsentPurpose, CurrentConsent, NewPrivacyPolicy,
    check_consent, consent_history, current_consents, has_consented, privacy_policy_in_effect,
    publish_privacy_policy, record_consent,
};
pub use deletion::{
    DeletionBatchReport, ERASED_DISPLAY_NAME, ErasedUser, FailedErasure, cancel_deletion,
    erased_email, list_deletion_requests, process_due_deletions, request_deletion,
};
pub use export::{EXPORT_FORMAT, EXPORT_SECTIONS, ExportSection, export_user_data};
pub use incidents::{NewIncident, list_incidents, report_incident, update_incident};
pub use report::{REPORT_FORMAT, compliance_report};
pub use residency::{record_transfer, set_transfer_regions, transfer_regions};
