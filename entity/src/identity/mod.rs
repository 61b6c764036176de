//! Global identities and how they sign in, and the keys machine clients sign in with.

pub mod api_keys;
pub mod refresh_tokens;
pub mod sessions;
pub mod sign_in_throttles;
pub mod user_profiles;
pub mod users;
