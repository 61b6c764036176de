//! Column types for secret material. They store and compare like strings but never
//! print: `Debug` shows a placeholder and they have no `Serialize`, so a logged or
//! serialised model cannot leak a hash.

use sea_orm::entity::prelude::*;

macro_rules! redacted_string {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {$(
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, DeriveValueType)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The stored text. Call it only where the secret is used, never to log it.
            pub fn expose(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }
    )*};
}

redacted_string!(
    /// An argon2id PHC string (`$argon2id$v=19$m=...`).
    PasswordHash,
    /// The hex SHA-256 of a high-entropy token; the token itself is never stored.
    TokenHash,
);

/// A value sealed by the service's field encryption (key id, nonce, ciphertext, tag).
/// Useless without the key ring, but its `Debug` is redacted all the same, so a logged
/// model shows no key ids or lengths either.
#[derive(Clone, PartialEq, Eq, DeriveValueType)]
pub struct SealedBytes(Vec<u8>);

impl SealedBytes {
    pub fn new(value: Vec<u8>) -> Self {
        Self(value)
    }

    /// The stored bytes, to open with the key ring.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SealedBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealedBytes([redacted])")
    }
}

/// A public key as stored (a passkey's SEC1 point). Not secret, but it is key
/// material: `Debug` shows its length only, so logs carry no keys to correlate.
#[derive(Clone, PartialEq, Eq, DeriveValueType)]
pub struct PublicKeyBytes(Vec<u8>);

impl PublicKeyBytes {
    pub fn new(value: Vec<u8>) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for PublicKeyBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKeyBytes({} bytes, [redacted])", self.0.len())
    }
}
