//! Bearer tokens in the clear (refresh tokens, invitation tokens): 256 random bits,
//! shown to their holder once; only their SHA-256 is stored. A SHA-256 suffices
//! because the input has full entropy: there is nothing to brute-force, unlike a
//! password.

use crate::deps::Deps;
use entity::TokenHash;
use sha2::{Digest, Sha256};
use std::fmt;
use std::marker::PhantomData;

/// Prefix that makes leaked tokens recognisable to secret scanners.
const PREFIX: &str = "rt_";

/// What a [`ClearToken`] is for; its name is all that `Debug` shows.
pub trait TokenKind {
    const NAME: &'static str;
}

/// A token in the clear. Give it to its holder; never log or store it (`Debug` is
/// redacted and there is no `Serialize`). The database keeps only its hash.
pub struct ClearToken<K>(String, PhantomData<K>);

impl<K> ClearToken<K> {
    pub(crate) fn new(text: String) -> Self {
        Self(text, PhantomData)
    }

    /// The token text, to send to its holder.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub(crate) fn hash(&self) -> TokenHash {
        hash_token(&self.0)
    }
}

impl<K> Clone for ClearToken<K> {
    fn clone(&self) -> Self {
        Self::new(self.0.clone())
    }
}

impl<K> PartialEq for ClearToken<K> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<K> Eq for ClearToken<K> {}

impl<K: TokenKind> fmt::Debug for ClearToken<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}([redacted])", K::NAME)
    }
}

/// The hash stored for a token, and looked up when one is presented.
pub(crate) fn hash_token(token: &str) -> TokenHash {
    TokenHash::new(sha256_hex(token))
}

/// The hex SHA-256 of `text`: how a token, or any key that should not be stored in
/// clear (the sign-in throttle's), is kept.
pub(crate) fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// A bearer token of 256 random bits: `prefix` (which makes a leaked token
/// recognisable to secret scanners) and 64 hex digits.
pub(crate) fn generate_prefixed<K>(deps: &Deps, prefix: &str) -> ClearToken<K> {
    let bytes: [u8; 32] = deps.random_bytes();
    ClearToken::new(format!("{prefix}{}", hex::encode(bytes)))
}

/// Cheap shape check of a [`generate_prefixed`] token, before any query.
pub(crate) fn looks_prefixed(token: &str, prefix: &str) -> bool {
    token
        .strip_prefix(prefix)
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Marks a [`ClearToken`] as a refresh token.
#[derive(Debug)]
pub enum RefreshTokenKind {}

impl TokenKind for RefreshTokenKind {
    const NAME: &'static str = "RefreshToken";
}

/// A refresh token in the clear, returned once when a session is issued or rotated.
pub type RefreshToken = ClearToken<RefreshTokenKind>;

impl RefreshToken {
    pub(crate) fn generate(deps: &Deps) -> Self {
        generate_prefixed(deps, PREFIX)
    }
}

pub(crate) fn looks_like_refresh_token(token: &str) -> bool {
    looks_prefixed(token, PREFIX)
}
