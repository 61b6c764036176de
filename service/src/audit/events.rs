//! The audit event catalogue in code: every event type and its category, the same
//! set as the `audit_event_types` table (a test checks both directions). Event types
//! added at run time ([`super::add_event_type`]) live in the table only and are
//! recorded with [`super::AuditEntry::of_added_type`].

use entity::audit::audit_event_types::AuditCategory;

macro_rules! audit_events {
    ($($variant:ident => ($code:literal, $category:ident),)+) => {
        /// Every event type of the catalogue the migrations load. Codes are stable.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum AuditEvent {
            $($variant,)+
        }

        impl AuditEvent {
            pub const ALL: &'static [AuditEvent] = &[$(AuditEvent::$variant,)+];

            /// The `event_type` stored in audit rows and the catalogue.
            pub fn code(self) -> &'static str {
                match self {
                    $(AuditEvent::$variant => $code,)+
                }
            }

            pub fn category(self) -> AuditCategory {
                match self {
                    $(AuditEvent::$variant => AuditCategory::$category,)+
                }
            }
        }
    };
}

audit_events! {
    ConsentRead => ("consent_read", ConsentManagement),
    ConsentValidationFailed => ("consent_validation_failed", ConsentManagement),
    ConsentValidated => ("consent_validated", ConsentManagement),
    ConsentHistoryAccessed => ("consent_history_accessed", ConsentManagement),
    ConsentRecorded => ("consent_recorded", ConsentManagement),
    ConsentUpdated => ("consent_updated", ConsentManagement),
    ConsentWithdrawn => ("consent_withdrawn", ConsentManagement),
    ConsentChange => ("consent_change", ConsentManagement),
    UserDataAccess => ("user_data_access", UserManagement),
    UserCreated => ("user_created", UserManagement),
    UserUpdated => ("user_updated", UserManagement),
    UserDeleted => ("user_deleted", UserManagement),
    ProfileDataAccess => ("profile_data_access", ProfileManagement),
    ProfileCreated => ("profile_created", ProfileManagement),
    ProfileUpdated => ("profile_updated", ProfileManagement),
    DeletionRequest => ("deletion_request", DeletionManagement),
    DeletionProcessing => ("deletion_processing", DeletionManagement),
    DeletionCompleted => ("deletion_completed", DeletionManagement),
    DeletionCancelled => ("deletion_cancelled", DeletionManagement),
    DataAccess => ("data_access", DataAccess),
    DataExport => ("data_export", DataAccess),
    Login => ("login", Authentication),
    Logout => ("logout", Authentication),
    LoginFailed => ("login_failed", Authentication),
    AuditTrailGenerated => ("audit_trail_generated", Compliance),
    PrivacyPolicyUpdated => ("privacy_policy_updated", Compliance),
    ComplianceReportGenerated => ("compliance_report_generated", Compliance),
    AccountLocked => ("account_locked", Authentication),
    SessionCreated => ("session_created", Authentication),
    SessionRefreshed => ("session_refreshed", Authentication),
    SessionsRevokedAll => ("sessions_revoked_all", Authentication),
    RefreshTokenReused => ("refresh_token_reused", Security),
    TenantCreated => ("tenant_created", TenantManagement),
    MemberAdded => ("member_added", TenantManagement),
    MemberRemoved => ("member_removed", TenantManagement),
    RoleCreated => ("role_created", Security),
    RolePermissionGranted => ("role_permission_granted", Security),
    RolePermissionRevoked => ("role_permission_revoked", Security),
    RoleInheritanceAdded => ("role_inheritance_added", Security),
    RoleInheritanceRemoved => ("role_inheritance_removed", Security),
    RoleAssigned => ("role_assigned", Security),
    RoleAssignmentRevoked => ("role_assignment_revoked", Security),
    PolicyCreated => ("policy_created", Security),
    PolicyDeleted => ("policy_deleted", Security),
    TeamCreated => ("team_created", TenantManagement),
    TeamMoved => ("team_moved", TenantManagement),
    TeamMemberAdded => ("team_member_added", TenantManagement),
    TeamMemberRemoved => ("team_member_removed", TenantManagement),
    InvitationCreated => ("invitation_created", TenantManagement),
    InvitationAccepted => ("invitation_accepted", TenantManagement),
    InvitationRevoked => ("invitation_revoked", TenantManagement),
    ApiKeyCreated => ("api_key_created", Security),
    ApiKeyRevoked => ("api_key_revoked", Security),
    ApiKeyRotated => ("api_key_rotated", Security),
    ApiKeyRejected => ("api_key_rejected", Security),
    MfaEnrolled => ("mfa_enrolled", Security),
    MfaConfirmed => ("mfa_confirmed", Security),
    MfaVerified => ("mfa_verified", Authentication),
    MfaVerificationFailed => ("mfa_verification_failed", Authentication),
    MfaDisabled => ("mfa_disabled", Security),
    BackupCodesGenerated => ("backup_codes_generated", Security),
    BackupCodeUsed => ("backup_code_used", Authentication),
    MfaChallengeIssued => ("mfa_challenge_issued", Authentication),
    Reauthenticated => ("reauthenticated", Authentication),
    StepUpRequired => ("step_up_required", Security),
    SessionAnomalyDetected => ("session_anomaly_detected", Security),
    PasswordChanged => ("password_changed", Security),
    OtherSessionsRevoked => ("other_sessions_revoked", Security),
    UserDeactivated => ("user_deactivated", UserManagement),
    PasskeyRegistered => ("passkey_registered", Security),
    PasskeyRenamed => ("passkey_renamed", Security),
    PasskeyRemoved => ("passkey_removed", Security),
    PasskeyUsed => ("passkey_used", Authentication),
    PasskeyAssertionFailed => ("passkey_assertion_failed", Authentication),
    PasskeyCloneDetected => ("passkey_clone_detected", Security),
    AuditEventTypeAdded => ("audit_event_type_added", System),
    DataTransferRecorded => ("data_transfer_recorded", Compliance),
    DataTransferRefused => ("data_transfer_refused", Compliance),
    DataResidencyChanged => ("data_residency_changed", Compliance),
    SecurityIncidentReported => ("security_incident_reported", Compliance),
    SecurityIncidentUpdated => ("security_incident_updated", Compliance),
    AgentTaskEnqueued => ("agent_task_enqueued", System),
    AgentTaskClaimed => ("agent_task_claimed", System),
    AgentTaskSucceeded => ("agent_task_succeeded", System),
    AgentTaskFailed => ("agent_task_failed", System),
    AgentTaskCancelled => ("agent_task_cancelled", System),
    AgentTasksRecovered => ("agent_tasks_recovered", System),
    RecordCreated => ("record_created", DataAccess),
    RecordUpdated => ("record_updated", DataAccess),
    RecordRead => ("record_read", DataAccess),
    RecordAccessDenied => ("record_access_denied", DataAccess),
    RecordAccessGranted => ("record_access_granted", DataAccess),
    RecordAccessRevoked => ("record_access_revoked", DataAccess),
    RecordBreakGlass => ("record_break_glass", DataAccess),
    RecordBreakGlassReviewed => ("record_break_glass_reviewed", DataAccess),
    PropertyListed => ("property_listed", System),
    PropertyUpdated => ("property_updated", System),
    BillingPlanDefined => ("billing_plan_defined", System),
    BillingSubscriptionCreated => ("billing_subscription_created", TenantManagement),
    BillingSubscriptionStatusChanged => ("billing_subscription_status_changed", TenantManagement),
    BillingSubscriptionPlanChanged => ("billing_subscription_plan_changed", TenantManagement),
    BillingSubscriptionCancelScheduled => ("billing_subscription_cancel_scheduled", TenantManagement),
    BillingSubscriptionRenewed => ("billing_subscription_renewed", TenantManagement),
    PaymentCustomerCreated => ("payment_customer_created", TenantManagement),
    PaymentMethodAdded => ("payment_method_added", TenantManagement),
    PaymentMethodDefaultChanged => ("payment_method_default_changed", TenantManagement),
    PaymentIntentCreated => ("payment_intent_created", TenantManagement),
    PaymentIntentStatusChanged => ("payment_intent_status_changed", TenantManagement),
}

impl AuditEvent {
    /// The event of `code`, if it is one of the catalogue's own (not one added at run
    /// time).
    pub fn from_code(code: &str) -> Option<AuditEvent> {
        AuditEvent::ALL.iter().copied().find(|e| e.code() == code)
    }
}
