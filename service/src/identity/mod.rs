//! Identity: registration, sign-in, sessions and refresh-token rotation.

mod password;
mod sessions;
mod throttle;
mod tokens;
mod users;

pub use password::hash as hash_password;
pub use sessions::{
    IssuedSession, create_session, list_sessions, login, refresh_session, revoke_all_sessions,
    revoke_session,
};
pub(crate) use tokens::hash_token;
pub use tokens::{ClearToken, RefreshToken, TokenKind};
pub use users::{Account, NewUser, authenticate, find_user_by_email, register_user};
pub(crate) use users::{begin_for_user, ensure_active_user, find_active_user};
