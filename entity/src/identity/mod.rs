//! Global identities and how they sign in.

pub mod refresh_tokens;
pub mod sessions;
pub mod sign_in_throttles;
pub mod user_profiles;
pub mod users;
