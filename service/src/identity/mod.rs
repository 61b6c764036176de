//! Identity: registration, sign-in in one or two steps, sessions and refresh-token
//! rotation, assurance levels and step-up, anomaly detection, a second factor (TOTP and
//! backup codes), passkeys (WebAuthn), and the API keys machine clients authenticate
//! with.

mod anomalies;
mod api_keys;
mod assurance;
mod mfa;
mod passkeys;
mod password;
mod password_policy;
mod sessions;
mod sign_in;
mod throttle;
mod tokens;
mod users;

pub use anomalies::{Finding as AnomalyFinding, detect_sign_in_anomalies};
pub use api_keys::{
    ApiKey, ApiKeyFormatError, ApiKeyKind, ApiKeySecret, AuthenticatedApiKey, IssuedApiKey,
    NewApiKey, ParsedApiKey, authenticate_api_key, create_api_key, list_api_keys, parse_api_key,
    revoke_api_key, rotate_api_key,
};
pub use assurance::{
    SessionAuth, change_password, deactivate_account, reauthenticate, reauthenticate_with_passkey,
    validate_session,
};
pub(crate) use assurance::{begin_sensitive, load as load_session, set_assurance_context};
pub use mfa::{
    BACKUP_CODE_COUNT, BackupCodes, MfaFactor, MfaProof, TotpEnrolment, TotpParams, confirm_totp,
    disable_totp, enrol_totp, generate_backup_codes, totp, totp_factor, use_backup_code,
    verify_totp,
};
pub use passkeys::{
    CheckedRegistration, ES256, ExpectedCeremony, NewPasskey, Passkey, PasskeyAssertion,
    PasskeyRegistration, PasskeyRejection, VerifiedPasskey, check_registration, es256_cose_key,
    list_passkeys, register_passkey, remove_passkey, rename_passkey, verify_passkey_assertion,
};
pub use password::hash as hash_password;
#[cfg(feature = "breached-password-api")]
pub use password_policy::PwnedPasswordsRange;
pub use password_policy::{
    BreachCheckError, BreachedPasswords, LocalBreachedList, MAX_STRENGTH_SCORE, PasswordPolicy,
    WeakPasswordReason, check_new_password, count_in_range_response, password_sha1_hex,
};
pub use sessions::{
    IssuedSession, create_session, list_sessions, refresh_session, revoke_all_sessions,
    revoke_session,
};
pub use sign_in::{
    ChallengeToken, MfaChallenge, SignIn, complete_sign_in, complete_sign_in_with_passkey, login,
};
pub use tokens::{ClearToken, RefreshToken, TokenKind};
pub(crate) use tokens::{hash_token, sha256_hex};
pub use users::{Account, NewUser, authenticate, find_user_by_email, register_user};
pub(crate) use users::{begin_for_user, ensure_active_user, find_active_user};
