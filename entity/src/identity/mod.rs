//! Global identities and how they sign in (password, second factor, passkeys), and the keys
//! machine clients sign in with.

pub mod api_keys;
pub mod mfa_backup_codes;
pub mod mfa_challenges;
pub mod mfa_factors;
pub mod passkeys;
pub mod refresh_tokens;
pub mod session_anomaly_reports;
pub mod sessions;
pub mod sign_in_throttles;
pub mod user_profiles;
pub mod users;
