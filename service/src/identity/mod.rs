//! Identity: registration, sign-in, sessions and refresh-token rotation, a second
//! factor (TOTP and backup codes), passkeys (WebAuthn), and the API keys machine
//! clients authenticate with.

mod api_keys;
mod mfa;
mod passkeys;
mod password;
mod sessions;
mod throttle;
mod tokens;
mod users;

pub use api_keys::{
    ApiKey, ApiKeyFormatError, ApiKeyKind, ApiKeySecret, AuthenticatedApiKey, IssuedApiKey,
    NewApiKey, ParsedApiKey, authenticate_api_key, create_api_key, list_api_keys, parse_api_key,
    revoke_api_key, rotate_api_key,
};
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
pub use sessions::{
    IssuedSession, create_session, list_sessions, login, refresh_session, revoke_all_sessions,
    revoke_session,
};
pub(crate) use tokens::hash_token;
pub use tokens::{ClearToken, RefreshToken, TokenKind};
pub use users::{Account, NewUser, authenticate, find_user_by_email, register_user};
pub(crate) use users::{begin_for_user, ensure_active_user, find_active_user};
