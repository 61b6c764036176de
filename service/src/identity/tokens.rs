//! Refresh tokens: 256 random bits, shown to the client once; only their SHA-256
//! is stored (DESIGN §5). A SHA-256 suffices because the input has full entropy:
//! there is nothing to brute-force, unlike a password.

use crate::deps::Deps;
use entity::TokenHash;
use sha2::{Digest, Sha256};
use std::fmt;

/// Prefix that makes leaked tokens recognisable to secret scanners.
const PREFIX: &str = "rt_";

/// A refresh token in the clear. Give it to the client; never log or store it.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken(String);

impl RefreshToken {
    pub(crate) fn generate(deps: &Deps) -> Self {
        let bytes: [u8; 32] = deps.random_bytes();
        Self(format!("{PREFIX}{}", hex::encode(bytes)))
    }

    /// The token text, to send to the client.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub(crate) fn hash(&self) -> TokenHash {
        hash_token(&self.0)
    }
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken([redacted])")
    }
}

pub(crate) fn hash_token(token: &str) -> TokenHash {
    TokenHash::new(hex::encode(Sha256::digest(token.as_bytes())))
}

/// Cheap shape check before any query: prefix plus 64 hex digits.
pub(crate) fn looks_like_refresh_token(token: &str) -> bool {
    token
        .strip_prefix(PREFIX)
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}
