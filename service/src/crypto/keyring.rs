//! The key ring: every key that may have sealed a stored value, and the one that seals
//! new ones.

use crate::environment::AppEnv;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use std::fmt;
use zeroize::Zeroizing;

/// The id of the fixed development key: values sealed under it are readable by anyone
/// with this source code, so only `local` and `test` may use it.
pub const DEVELOPMENT_KEY_ID: &str = "dev";

/// One AES-256 key and its id. The material is zeroised on drop and never printed.
pub struct FieldKey {
    id: String,
    material: Zeroizing<[u8; 32]>,
}

impl FieldKey {
    pub fn id(&self) -> &str {
        &self.id
    }

    pub(super) fn material(&self) -> &[u8; 32] {
        &self.material
    }
}

impl fmt::Debug for FieldKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FieldKey")
            .field("id", &self.id)
            .field("material", &"<redacted>")
            .finish()
    }
}

/// Several keys, one current. `Debug` lists ids only.
pub struct KeyRing {
    keys: Vec<FieldKey>,
    current: usize,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("current", &self.current().id)
            .field(
                "keys",
                &self.keys.iter().map(|k| k.id.as_str()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyRingError {
    #[error(
        "APP_ENV={0} needs field-encryption keys of its own: set FIELD_ENCRYPTION_KEYS \
         (id:base64 of 32 random bytes, comma-separated; e.g. `k2026:$(openssl rand -base64 32)`); \
         the built-in development key is for local and test only"
    )]
    Missing(AppEnv),
    #[error(
        "no FIELD_ENCRYPTION_KEYS and no APP_ENV: the development key is used only when \
         APP_ENV names local or test, so a deployment that forgot APP_ENV never seals real \
         data with it"
    )]
    EnvironmentNotNamed,
    #[error("APP_ENV={0} may not use the development key: it is public")]
    DevelopmentKeyOutsideDevelopment(AppEnv),
    /// Says which entry and why; never the key material.
    #[error("FIELD_ENCRYPTION_KEYS entry {entry}: {reason}")]
    BadEntry { entry: usize, reason: String },
    #[error("FIELD_ENCRYPTION_KEYS names key {0:?} twice")]
    DuplicateId(String),
    #[error(
        "FIELD_ENCRYPTION_KEYS holds several keys: set FIELD_ENCRYPTION_CURRENT_KEY to the id \
         of the one that seals new values"
    )]
    NoCurrent,
    #[error("FIELD_ENCRYPTION_CURRENT_KEY={0:?} is not one of the keys in FIELD_ENCRYPTION_KEYS")]
    UnknownCurrent(String),
}

impl KeyRing {
    /// Reads `FIELD_ENCRYPTION_KEYS` and `FIELD_ENCRYPTION_CURRENT_KEY` from the process
    /// environment; see [`KeyRing::from_lookup`]. For applications.
    pub fn from_env(env: AppEnv) -> Result<Self, KeyRingError> {
        Self::from_lookup(env, &|name| std::env::var(name).ok())
    }

    /// [`KeyRing::from_env`] for a tool that resolved `env` itself and showed it to the
    /// operator (the seeder): `local`, also when it is only the default of an unset
    /// `APP_ENV`, gets the development key, so the seeder works with no configuration.
    pub fn for_tool(env: AppEnv) -> Result<Self, KeyRingError> {
        Self::from_lookup(env, &|name| match name {
            "APP_ENV" => Some(env.as_str().to_owned()),
            _ => std::env::var(name).ok(),
        })
    }

    /// `FIELD_ENCRYPTION_KEYS` is `id:base64,id:base64,...`: ids of 1 to 32 letters,
    /// digits, `-` or `_`; each key 32 bytes, standard base64. With one key it is current;
    /// with several, `FIELD_ENCRYPTION_CURRENT_KEY` names the one that seals. Unset, the
    /// development key serves `local` and `test` when `APP_ENV` (or `MIGRATION_ENV`) names
    /// them explicitly, and every other case refuses. `env` is the environment the caller
    /// resolved (usually from the same variables).
    pub fn from_lookup(
        env: AppEnv,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, KeyRingError> {
        let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        // Every key of the ring, in base64: cleared when dropped.
        let Some(list) = var("FIELD_ENCRYPTION_KEYS").map(Zeroizing::new) else {
            // `local` is also what an unset APP_ENV means; a deployment that forgot
            // APP_ENV must not seal production data with the public key.
            let named = var("APP_ENV").or_else(|| var("MIGRATION_ENV")).is_some();
            return match (env.is_disposable(), named) {
                (true, true) => Ok(Self::development()),
                (true, false) => Err(KeyRingError::EnvironmentNotNamed),
                (false, _) => Err(KeyRingError::Missing(env)),
            };
        };
        let mut keys: Vec<FieldKey> = Vec::new();
        for (index, entry) in list.split(',').enumerate() {
            let entry_no = index + 1;
            let bad = |reason: &str| KeyRingError::BadEntry {
                entry: entry_no,
                reason: reason.to_owned(),
            };
            let (id, encoded) = entry
                .trim()
                .split_once(':')
                .ok_or_else(|| bad("expected id:base64"))?;
            if id.is_empty()
                || id.len() > 32
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(bad("the id must be 1 to 32 letters, digits, - or _"));
            }
            if id == super::DATA_KEY_ID {
                return Err(bad(
                    "the id `subject` is reserved for the subjects' data keys",
                ));
            }
            let decoded = Zeroizing::new(
                STANDARD
                    .decode(encoded.trim())
                    .map_err(|_| bad("the key is not standard base64"))?,
            );
            if decoded.len() != 32 {
                return Err(bad("the key must be exactly 32 bytes"));
            }
            if keys.iter().any(|k| k.id == id) {
                return Err(KeyRingError::DuplicateId(id.to_owned()));
            }
            let mut material = Zeroizing::new([0u8; 32]);
            material.copy_from_slice(&decoded);
            let key = FieldKey {
                id: id.to_owned(),
                material,
            };
            if !env.is_disposable()
                && (key.id == DEVELOPMENT_KEY_ID
                    || key.material() == Self::development().current().material())
            {
                return Err(KeyRingError::DevelopmentKeyOutsideDevelopment(env));
            }
            keys.push(key);
        }
        let current = match var("FIELD_ENCRYPTION_CURRENT_KEY") {
            Some(id) => keys
                .iter()
                .position(|k| k.id == id.trim())
                .ok_or(KeyRingError::UnknownCurrent(id))?,
            None if keys.len() == 1 => 0,
            None => return Err(KeyRingError::NoCurrent),
        };
        Ok(Self { keys, current })
    }

    /// The fixed development key: derived from a public phrase, so anything sealed with
    /// it is as good as plain text. Local and test databases only.
    pub fn development() -> Self {
        let digest = Sha256::digest(b"saas-db field encryption: development key, not a secret");
        Self {
            keys: vec![FieldKey {
                id: DEVELOPMENT_KEY_ID.to_owned(),
                material: Zeroizing::new(digest.into()),
            }],
            current: 0,
        }
    }

    /// The key that seals new values.
    pub fn current(&self) -> &FieldKey {
        &self.keys[self.current]
    }

    pub fn key(&self, id: &str) -> Option<&FieldKey> {
        self.keys.iter().find(|k| k.id == id)
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.id.as_str())
    }
}
