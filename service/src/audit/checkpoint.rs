//! Signed checkpoints: every chain's head, signed with Ed25519, in a file the operator
//! keeps outside the database.
//!
//! A hash chain alone shows that rows were changed by someone who did not recompute
//! the hashes after them. Someone with full database access can recompute a whole
//! chain (or truncate it, or reorder it) and move its head. A checkpoint signed
//! earlier still names the link each chain had then: verifying against it finds the
//! chain no longer holding that link, and nobody without the signing key can make a
//! checkpoint that agrees with the rewrite.
//!
//! # The file (format `audit-checkpoint-v1`)
//!
//! JSON: `format`, `signed_at` (RFC 3339), `public_key` (hex, the signer's Ed25519
//! key, for reference only: verification uses the key the operator configures),
//! `chains` (`chain_id`, `sequence`, `hash` in hex, sorted by chain id) and
//! `signature` (hex). The signed message is the ASCII line `audit-checkpoint-v1\n`, the
//! signing time in microseconds since the epoch (8 bytes, big-endian), then per chain
//! its 16 id bytes, its sequence (8 bytes, big-endian) and its 32 hash bytes.
//!
//! # The key
//!
//! `AUDIT_CHECKPOINT_KEY` (64 hex digits: the 32-byte Ed25519 seed) or
//! `AUDIT_CHECKPOINT_KEY_FILE` (a file holding them). `local` and `test` fall back to a
//! fixed development key, derived from a public phrase; every other environment
//! refuses without a key of its own.

use super::verify::{self, ChainScope, VerifyReport};
use crate::Result;
use crate::environment::AppEnv;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use entity::audit::audit_chain_heads as heads;
use sea_orm::{ConnectionTrait, DatabaseTransaction, EntityTrait, QueryOrder, TransactionTrait};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;
use uuid::Uuid;
use zeroize::Zeroizing;

pub const FORMAT: &str = "audit-checkpoint-v1";

/// The Ed25519 key checkpoints are signed with. `Debug` shows the public half only;
/// the secret is zeroised on drop.
pub struct CheckpointKey {
    signing: SigningKey,
}

impl fmt::Debug for CheckpointKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckpointKey")
            .field("public_key", &self.public_key_hex())
            .field("secret", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckpointKeyError {
    #[error(
        "APP_ENV={0} needs a checkpoint signing key of its own: set AUDIT_CHECKPOINT_KEY \
         (64 hex digits, e.g. `$(openssl rand -hex 32)`) or AUDIT_CHECKPOINT_KEY_FILE; the \
         development key is for local and test only"
    )]
    Missing(AppEnv),
    #[error("APP_ENV={0} may not use the development checkpoint key: it is public")]
    DevelopmentKeyOutsideDevelopment(AppEnv),
    #[error("{source_name}: expected 64 hex digits (a 32-byte Ed25519 seed)")]
    Malformed { source_name: String },
    #[error("cannot read AUDIT_CHECKPOINT_KEY_FILE {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("not an Ed25519 public key: expected 64 hex digits of a valid point")]
    BadPublicKey,
}

impl CheckpointKey {
    /// From `AUDIT_CHECKPOINT_KEY` or `AUDIT_CHECKPOINT_KEY_FILE`; the development key
    /// for `local` and `test` when neither is set.
    pub fn from_env(env: AppEnv) -> std::result::Result<Self, CheckpointKeyError> {
        Self::from_lookup(env, &|name| std::env::var(name).ok())
    }

    pub fn from_lookup(
        env: AppEnv,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> std::result::Result<Self, CheckpointKeyError> {
        let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let (text, source_name) = if let Some(text) = var("AUDIT_CHECKPOINT_KEY") {
            (Zeroizing::new(text), "AUDIT_CHECKPOINT_KEY".to_owned())
        } else if let Some(path) = var("AUDIT_CHECKPOINT_KEY_FILE") {
            let text =
                std::fs::read_to_string(&path).map_err(|e| CheckpointKeyError::Unreadable {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            (
                Zeroizing::new(text),
                format!("AUDIT_CHECKPOINT_KEY_FILE {path}"),
            )
        } else if env.is_disposable() {
            return Ok(Self::development());
        } else {
            return Err(CheckpointKeyError::Missing(env));
        };
        let key =
            Self::from_hex(text.trim()).ok_or(CheckpointKeyError::Malformed { source_name })?;
        if !env.is_disposable() && key.signing.as_bytes() == Self::development().signing.as_bytes()
        {
            return Err(CheckpointKeyError::DevelopmentKeyOutsideDevelopment(env));
        }
        Ok(key)
    }

    fn from_hex(text: &str) -> Option<Self> {
        let mut seed = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text, seed.as_mut()).ok()?;
        Some(CheckpointKey {
            signing: SigningKey::from_bytes(&seed),
        })
    }

    /// The fixed development key: public, so local and test only.
    pub fn development() -> Self {
        let seed: [u8; 32] =
            Sha256::digest(b"saas-db audit checkpoints: development key, not a secret").into();
        CheckpointKey {
            signing: SigningKey::from_bytes(&seed),
        }
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    pub fn public_key_hex(&self) -> String {
        hex::encode(self.verifying_key().as_bytes())
    }
}

/// A public key given as hex (to verify a checkpoint without holding the secret).
pub fn public_key_from_hex(text: &str) -> std::result::Result<VerifyingKey, CheckpointKeyError> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut bytes).map_err(|_| CheckpointKeyError::BadPublicKey)?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| CheckpointKeyError::BadPublicKey)
}

/// One chain's head as signed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedHead {
    pub chain_id: Uuid,
    pub sequence: i64,
    /// Hex.
    pub hash: String,
}

/// A checkpoint file's content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub format: String,
    pub signed_at: DateTime<Utc>,
    pub public_key: String,
    pub chains: Vec<SignedHead>,
    pub signature: String,
}

/// Why a checkpoint cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckpointError {
    #[error("the chains do not verify ({0} finding(s)): a checkpoint would sign a broken trail")]
    ChainsBroken(usize),
    #[error("not a checkpoint file: {0}")]
    Unreadable(String),
    #[error("checkpoint format {0:?} is not {FORMAT:?}")]
    UnknownFormat(String),
    #[error(
        "the checkpoint's signature does not verify with the configured key {0}: the file was \
         changed, or signed with another key"
    )]
    BadSignature(String),
}

impl Checkpoint {
    fn message(signed_at: DateTime<Utc>, chains: &[SignedHead]) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(32 + chains.len() * 56);
        out.extend_from_slice(FORMAT.as_bytes());
        out.push(b'\n');
        out.extend_from_slice(&signed_at.timestamp_micros().to_be_bytes());
        for head in chains {
            let mut hash = [0u8; 32];
            hex::decode_to_slice(&head.hash, &mut hash).ok()?;
            out.extend_from_slice(head.chain_id.as_bytes());
            out.extend_from_slice(&head.sequence.to_be_bytes());
            out.extend_from_slice(&hash);
        }
        Some(out)
    }

    /// Parses a checkpoint file's text.
    pub fn parse(text: &str) -> std::result::Result<Self, CheckpointError> {
        let checkpoint: Checkpoint =
            serde_json::from_str(text).map_err(|e| CheckpointError::Unreadable(e.to_string()))?;
        if checkpoint.format != FORMAT {
            return Err(CheckpointError::UnknownFormat(checkpoint.format));
        }
        Ok(checkpoint)
    }

    /// Checks the signature with `key` (never with the key the file names) and returns
    /// the signed heads by chain.
    pub fn verified_heads(
        &self,
        key: &VerifyingKey,
    ) -> std::result::Result<BTreeMap<Uuid, (i64, [u8; 32])>, CheckpointError> {
        let bad = || CheckpointError::BadSignature(hex::encode(key.as_bytes()));
        let message = Self::message(self.signed_at, &self.chains).ok_or_else(bad)?;
        let mut signature = [0u8; 64];
        hex::decode_to_slice(&self.signature, &mut signature).map_err(|_| bad())?;
        key.verify_strict(&message, &Signature::from_bytes(&signature))
            .map_err(|_| bad())?;
        let mut heads = BTreeMap::new();
        for head in &self.chains {
            let mut hash = [0u8; 32];
            hex::decode_to_slice(&head.hash, &mut hash).map_err(|_| bad())?;
            heads.insert(head.chain_id, (head.sequence, hash));
        }
        Ok(heads)
    }
}

/// Verifies every chain, then signs every head as of one snapshot. Refuses to sign a
/// trail that does not verify.
///
/// # Errors
/// `Checkpoint(ChainsBroken)` when verification finds anything; `Db`.
pub async fn sign_checkpoint<C>(
    db: &C,
    key: &CheckpointKey,
    now: DateTime<Utc>,
) -> Result<(Checkpoint, VerifyReport)>
where
    C: ConnectionTrait + TransactionTrait<Transaction = DatabaseTransaction>,
{
    let txn = verify::begin_snapshot(db).await?;
    // Verified and signed in the same snapshot: what is signed is what was checked.
    let report = verify::verify_in(&txn, ChainScope::All, None, |_| {}).await?;
    if !report.is_intact() {
        return Err(CheckpointError::ChainsBroken(report.findings.len()).into());
    }
    let chains: Vec<SignedHead> = heads::Entity::find()
        .order_by_asc(heads::Column::ChainId)
        .all(&txn)
        .await?
        .into_iter()
        .filter(|h| h.last_seq > 0)
        .map(|h| SignedHead {
            chain_id: h.chain_id,
            sequence: h.last_seq,
            hash: hex::encode(&h.last_hash),
        })
        .collect();
    txn.commit().await?;
    let signed_at = entity::audit::chain::to_stored_precision(now);
    let message = Checkpoint::message(signed_at, &chains)
        .ok_or_else(|| CheckpointError::Unreadable("a head holds a malformed hash".into()))?;
    let signature = key.signing.sign(&message);
    Ok((
        Checkpoint {
            format: FORMAT.to_owned(),
            signed_at,
            public_key: key.public_key_hex(),
            chains,
            signature: hex::encode(signature.to_bytes()),
        },
        report,
    ))
}

/// Verifies the chains of `scope` and, beyond that, that each still holds the link the
/// checkpoint signed for it (a chain missing since counts too).
///
/// # Errors
/// `Checkpoint(BadSignature)` when the file does not verify with `key`; `Db`.
pub async fn verify_against_checkpoint<C>(
    db: &C,
    scope: ChainScope,
    checkpoint: &Checkpoint,
    key: &VerifyingKey,
    progress: impl FnMut(u64),
) -> Result<VerifyReport>
where
    C: ConnectionTrait + TransactionTrait<Transaction = DatabaseTransaction>,
{
    let mut signed = checkpoint.verified_heads(key)?;
    if let ChainScope::One(chain_id) = scope {
        signed.retain(|id, _| *id == chain_id);
    }
    verify::verify(db, scope, Some(&signed), progress).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_development_key_is_refused_outside_local_and_test() {
        let development = hex::encode(CheckpointKey::development().signing.as_bytes());
        let lookup = |name: &str| (name == "AUDIT_CHECKPOINT_KEY").then(|| development.clone());
        assert!(CheckpointKey::from_lookup(AppEnv::Test, &lookup).is_ok());
        assert_eq!(
            CheckpointKey::from_lookup(AppEnv::Staging, &lookup).unwrap_err(),
            CheckpointKeyError::DevelopmentKeyOutsideDevelopment(AppEnv::Staging)
        );
    }

    #[test]
    fn a_signed_message_binds_every_head_and_the_time() {
        let key = CheckpointKey::development();
        let at = DateTime::from_timestamp_micros(1_700_000_000_000_000).unwrap();
        let heads = vec![SignedHead {
            chain_id: Uuid::from_u128(7),
            sequence: 3,
            hash: hex::encode([9u8; 32]),
        }];
        let message = Checkpoint::message(at, &heads).unwrap();
        let signature = key.signing.sign(&message);
        let checkpoint = Checkpoint {
            format: FORMAT.to_owned(),
            signed_at: at,
            public_key: key.public_key_hex(),
            chains: heads,
            signature: hex::encode(signature.to_bytes()),
        };
        assert!(checkpoint.verified_heads(&key.verifying_key()).is_ok());
        let mut later = checkpoint.clone();
        later.signed_at = at + chrono::Duration::microseconds(1);
        assert!(later.verified_heads(&key.verifying_key()).is_err());
        let mut other_hash = checkpoint.clone();
        other_hash.chains[0].hash = hex::encode([8u8; 32]);
        assert!(other_hash.verified_heads(&key.verifying_key()).is_err());
    }
}
