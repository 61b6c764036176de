//! Argon2id hashing (OWASP parameters by default). Both hashing and verification are CPU-bound for tens
//! of milliseconds, so they run on Tokio's blocking pool, never on the async workers.

use crate::deps::{Deps, ServiceConfig};
use crate::error::ServiceError;
use crate::input::Password;
use argon2::password_hash::{PasswordHash as Phc, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use entity::PasswordHash;

pub(crate) enum Verification {
    Match {
        /// The stored hash used other parameters than the configured ones.
        needs_rehash: bool,
    },
    Mismatch,
}

fn hasher(config: &ServiceConfig) -> Result<Argon2<'static>, ServiceError> {
    let params = Params::new(
        config.argon2_memory_kib,
        config.argon2_iterations,
        config.argon2_parallelism,
        None,
    )
    .map_err(|_| ServiceError::Crypto("invalid argon2 parameters in ServiceConfig"))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes a password with the configured argon2id parameters and a fresh salt, on the
/// blocking pool. For importing users; `register_user` does this itself.
///
/// # Errors
/// `Crypto` if the parameters are invalid.
pub async fn hash(deps: &Deps, password: &Password) -> Result<PasswordHash, ServiceError> {
    let salt_bytes: [u8; 16] = deps.random_bytes();
    let config = deps.config.clone();
    let password = password.clone();
    run_blocking(deps, move || {
        let salt = SaltString::encode_b64(&salt_bytes)
            .map_err(|_| ServiceError::Crypto("salt encoding"))?;
        let phc = hasher(&config)?
            .hash_password(password.expose().as_bytes(), &salt)
            .map_err(|_| ServiceError::Crypto("argon2 hashing"))?;
        Ok(PasswordHash::new(phc.to_string()))
    })
    .await
}

pub(crate) async fn verify(
    deps: &Deps,
    password: &Password,
    stored: &PasswordHash,
) -> Result<Verification, ServiceError> {
    let config = deps.config.clone();
    let password = password.clone();
    let stored = stored.expose().to_owned();
    run_blocking(deps, move || verify_blocking(&config, &password, &stored)).await
}

/// Spends the time of a real verification against a hash nobody knows the password
/// of, so "unknown email" and "wrong password" cannot be told apart by timing.
pub(crate) async fn decoy_verify(deps: &Deps, password: &Password) -> Result<(), ServiceError> {
    let decoy = match deps.decoy_hash.get() {
        Some(hash) => hash.clone(),
        None => {
            let random: [u8; 24] = deps.random_bytes();
            let throwaway = Password::for_verification(&hex::encode(random))?;
            let hash = hash(deps, &throwaway).await?.expose().to_owned();
            deps.decoy_hash.get_or_init(|| hash).clone()
        }
    };
    let config = deps.config.clone();
    let password = password.clone();
    run_blocking(deps, move || {
        verify_blocking(&config, &password, &decoy).map(|_| ())
    })
    .await
}

fn verify_blocking(
    config: &ServiceConfig,
    password: &Password,
    stored: &str,
) -> Result<Verification, ServiceError> {
    let parsed = Phc::new(stored)
        .map_err(|_| ServiceError::Crypto("stored password hash is not a PHC string"))?;
    let argon = hasher(config)?;
    match argon.verify_password(password.expose().as_bytes(), &parsed) {
        Ok(()) => Ok(Verification::Match {
            needs_rehash: !matches_config(config, &parsed),
        }),
        Err(argon2::password_hash::Error::Password) => Ok(Verification::Mismatch),
        Err(_) => Err(ServiceError::Crypto("argon2 verification")),
    }
}

fn matches_config(config: &ServiceConfig, parsed: &Phc<'_>) -> bool {
    if parsed.algorithm.as_str() != "argon2id" {
        return false;
    }
    match Params::try_from(parsed) {
        Ok(params) => {
            params.m_cost() == config.argon2_memory_kib
                && params.t_cost() == config.argon2_iterations
                && params.p_cost() == config.argon2_parallelism
        }
        Err(_) => false,
    }
}

/// Runs argon2 work on Tokio's blocking pool (never on the runtime's own threads),
/// once one of the deps' hashing turns is free.
async fn run_blocking<T: Send + 'static>(
    deps: &Deps,
    work: impl FnOnce() -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ServiceError> {
    let turn = deps
        .hashing_turns
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| ServiceError::Crypto("password hashing turns were closed"))?;
    tokio::task::spawn_blocking(move || {
        let _turn = turn;
        work()
    })
    .await
    .map_err(|_| ServiceError::Crypto("password hashing task did not finish"))?
}

#[cfg(test)]
mod unit {
    use super::*;
    use chrono::{TimeZone, Utc};
    use std::time::Duration;

    #[tokio::test]
    async fn hashing_waits_for_a_free_turn() {
        let config = ServiceConfig {
            argon2_memory_kib: 1024,
            argon2_iterations: 1,
            argon2_max_concurrent: 1,
            ..ServiceConfig::default()
        };
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let (deps, _) = Deps::deterministic(config, start, uuid::Uuid::nil(), 1);
        let password = Password::new("correct horse battery staple").unwrap();
        let held = deps.hashing_turns.clone().acquire_owned().await.unwrap();
        let waiting =
            tokio::time::timeout(Duration::from_millis(300), hash(&deps, &password)).await;
        assert!(waiting.is_err(), "a hash ran while the only turn was taken");
        drop(held);
        let hashed = tokio::time::timeout(Duration::from_secs(30), hash(&deps, &password)).await;
        assert!(
            matches!(hashed, Ok(Ok(_))),
            "the hash runs once the turn is free"
        );
    }
}
