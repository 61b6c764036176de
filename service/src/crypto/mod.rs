//! Field encryption: AES-256-GCM under a key ring, for values stored encrypted in a
//! column (TOTP secrets, protected records, personal data).
//!
//! A sealed value is self-describing, so keys can rotate while old values stay readable:
//!
//! ```text
//! [version = 1] [key id length] [key id] [nonce, 12 bytes] [ciphertext + 16-byte tag]
//! ```
//!
//! The associated data binds it to where it is stored ([`FieldSlot`]: table, column and
//! row id), so a value copied into another row or column fails to decrypt. The nonce is
//! random (96 bits from the OS): with one key, stay well under 2^32 encryptions before
//! rotating, which a key ring of dated keys does as a matter of course.
//!
//! Keys come from `FIELD_ENCRYPTION_KEYS` (see [`KeyRing::from_env`]); `local` and `test`
//! fall back to a fixed development key, every other environment refuses to start
//! without keys of its own. [`reencrypt`] moves stored values to the current key.

mod keyring;
mod reencrypt;

pub use keyring::{DEVELOPMENT_KEY_ID, FieldKey, KeyRing, KeyRingError};
pub use reencrypt::{EncryptedColumn, ReencryptReport, reencrypt};

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use zeroize::Zeroizing;

/// Every column that holds sealed values: what `keys reencrypt` walks. A migration that
/// adds one adds it here.
pub const ENCRYPTED_COLUMNS: &[EncryptedColumn] = &[
    EncryptedColumn {
        table: "mfa_factors",
        id_column: "id",
        column: "secret",
    },
    // Protected records' bodies, current and kept versions (on PostgreSQL the
    // records' trigger lets the owner rewrite a body in place, not the runtime role).
    EncryptedColumn {
        table: "records",
        id_column: "id",
        column: "body",
    },
    EncryptedColumn {
        table: "record_versions",
        id_column: "id",
        column: "body",
    },
    // Each user's data key; the fields sealed under it are not re-encrypted.
    EncryptedColumn {
        table: "subject_keys",
        id_column: "user_id",
        column: "wrapped_key",
    },
];

/// The layout written by [`KeyRing::seal`]; readers refuse any other.
pub const FORMAT_VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Where a sealed value lives: part of what it is sealed to.
#[derive(Clone, Copy, Debug)]
pub struct FieldSlot<'a> {
    pub table: &'a str,
    pub column: &'a str,
    /// The row's primary key as text (a UUID's hyphenated form).
    pub row: &'a str,
}

impl FieldSlot<'_> {
    /// `field/v1`, then table, column and row, each ended by a NUL (none may hold one,
    /// so no two slots give the same bytes).
    fn associated_data(&self) -> Vec<u8> {
        let mut aad =
            Vec::with_capacity(16 + self.table.len() + self.column.len() + self.row.len());
        aad.extend_from_slice(b"field/v1\0");
        for part in [self.table, self.column, self.row] {
            aad.extend_from_slice(part.as_bytes());
            aad.push(0);
        }
        aad
    }

    fn check(&self) -> Result<(), CryptoError> {
        if [self.table, self.column, self.row]
            .iter()
            .any(|part| part.is_empty() || part.contains('\0'))
        {
            return Err(CryptoError::BadSlot);
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    /// Named so an operator knows which key to restore; the value itself is not shown.
    #[error("the value was sealed with key {0:?}, which is not in the key ring")]
    UnknownKey(String),
    #[error("the value is not a sealed field (too short or its header is damaged)")]
    Malformed,
    #[error("the value is sealed in format version {0}; this build reads version 1")]
    UnsupportedVersion(u8),
    /// Wrong key material under the right id, a changed byte, or a value moved from
    /// another row or column: AES-GCM cannot tell these apart, and says nothing more.
    #[error(
        "the value does not decrypt: it was changed, or belongs to another row or column, \
         or the key under its id is not the one it was sealed with"
    )]
    Undecryptable,
    #[error("a field slot needs a table, a column and a row id, none empty or holding NUL")]
    BadSlot,
}

impl KeyRing {
    /// Seals `plaintext` for `slot` under the current key.
    ///
    /// # Errors
    /// `BadSlot` for an empty table, column or row id.
    pub fn seal(&self, slot: FieldSlot<'_>, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let key = self.current();
        seal_with(key.material(), key.id(), slot, plaintext)
    }

    /// Opens a value sealed for `slot`, under whichever key of the ring it names.
    ///
    /// # Errors
    /// `Malformed`, `UnsupportedVersion`, `UnknownKey`, `Undecryptable`, `BadSlot`.
    pub fn open(
        &self,
        slot: FieldSlot<'_>,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        slot.check()?;
        let parts = Sealed::parse(sealed)?;
        let key = self
            .key(parts.key_id)
            .ok_or_else(|| CryptoError::UnknownKey(parts.key_id.to_owned()))?;
        open_with(key.material(), slot, &parts)
    }

    /// Whether `sealed` is under another key than the current one (so [`reencrypt`]
    /// would rewrite it).
    ///
    /// # Errors
    /// `Malformed`, `UnsupportedVersion`.
    pub fn is_stale(&self, sealed: &[u8]) -> Result<bool, CryptoError> {
        Ok(Sealed::parse(sealed)?.key_id != self.current().id())
    }
}

/// The key id written into values sealed under a [`DataKey`]: they are opened with
/// their subject's key, never with the ring, and re-encryption leaves them alone (the
/// data key itself is what the ring re-wraps).
pub const DATA_KEY_ID: &str = "subject";

/// A data key of one subject (a user): personal fields sealed under it are erased
/// by destroying it. Stored only sealed by the key ring. Zeroised on drop, never
/// printed.
pub struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    /// A key from 32 random bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The key as unsealed from storage.
    ///
    /// # Errors
    /// `Malformed` unless exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, CryptoError> {
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::Malformed)?;
        Ok(Self::from_bytes(bytes))
    }

    /// The key material, to be sealed by the key ring and nowhere else.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// Seals `plaintext` for `slot` under this key, in the layout of the key ring's
    /// values with [`DATA_KEY_ID`] as the key id.
    ///
    /// # Errors
    /// `BadSlot`.
    pub fn seal(&self, slot: FieldSlot<'_>, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        seal_with(&self.0, DATA_KEY_ID, slot, plaintext)
    }

    /// Opens a value this key sealed for `slot`.
    ///
    /// # Errors
    /// `Malformed`, `UnsupportedVersion`, `UnknownKey` (a value of the key ring),
    /// `Undecryptable`, `BadSlot`.
    pub fn open(
        &self,
        slot: FieldSlot<'_>,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        slot.check()?;
        let parts = Sealed::parse(sealed)?;
        if parts.key_id != DATA_KEY_ID {
            return Err(CryptoError::UnknownKey(parts.key_id.to_owned()));
        }
        open_with(&self.0, slot, &parts)
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey([redacted])")
    }
}

fn seal_with(
    material: &[u8; 32],
    key_id: &str,
    slot: FieldSlot<'_>,
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    slot.check()?;
    let cipher = Aes256Gcm::new_from_slice(material).expect("a 32-byte key");
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let aad = slot.associated_data();
    let sealed = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        // AES-GCM fails only on inputs over 64 GiB.
        .map_err(|_| CryptoError::Malformed)?;
    let id = key_id.as_bytes();
    let mut out = Vec::with_capacity(2 + id.len() + NONCE_LEN + sealed.len());
    out.push(FORMAT_VERSION);
    out.push(u8::try_from(id.len()).expect("key ids are at most 32 bytes"));
    out.extend_from_slice(id);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

fn open_with(
    material: &[u8; 32],
    slot: FieldSlot<'_>,
    parts: &Sealed<'_>,
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let cipher = Aes256Gcm::new_from_slice(material).expect("a 32-byte key");
    let aad = slot.associated_data();
    cipher
        .decrypt(
            Nonce::from_slice(parts.nonce),
            Payload {
                msg: parts.ciphertext,
                aad: &aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::Undecryptable)
}

/// The key id a sealed value names, without opening it.
///
/// # Errors
/// `Malformed`, `UnsupportedVersion`.
pub fn sealed_key_id(sealed: &[u8]) -> Result<&str, CryptoError> {
    Ok(Sealed::parse(sealed)?.key_id)
}

struct Sealed<'a> {
    key_id: &'a str,
    nonce: &'a [u8],
    ciphertext: &'a [u8],
}

impl<'a> Sealed<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Self, CryptoError> {
        let (&version, rest) = bytes.split_first().ok_or(CryptoError::Malformed)?;
        if version != FORMAT_VERSION {
            return Err(CryptoError::UnsupportedVersion(version));
        }
        let (&id_len, rest) = rest.split_first().ok_or(CryptoError::Malformed)?;
        let id_len = usize::from(id_len);
        if id_len == 0 || rest.len() < id_len + NONCE_LEN + TAG_LEN {
            return Err(CryptoError::Malformed);
        }
        let (id, rest) = rest.split_at(id_len);
        let key_id = std::str::from_utf8(id).map_err(|_| CryptoError::Malformed)?;
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        Ok(Self {
            key_id,
            nonce,
            ciphertext,
        })
    }
}
