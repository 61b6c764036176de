//! The one-time password algorithms: RFC 4226 HOTP and RFC 6238 TOTP over HMAC-SHA-1,
//! SHA-256 or SHA-512. Pure functions, no storage.

use entity::identity::mfa_factors::TotpAlgorithm;
use hmac::{Hmac, Mac};

/// The parameters new TOTP factors get. Authenticator apps support SHA-1, 6 digits and
/// 30 seconds everywhere; some ignore other values and show wrong codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TotpParams {
    pub algorithm: TotpAlgorithm,
    /// 6 to 8.
    pub digits: u8,
    /// Seconds per step, 15 to 120.
    pub period: u8,
}

impl Default for TotpParams {
    fn default() -> Self {
        Self {
            algorithm: TotpAlgorithm::Sha1,
            digits: 6,
            period: 30,
        }
    }
}

/// The RFC 6238 code of `secret` at Unix time `unix_seconds`.
pub fn totp(secret: &[u8], params: TotpParams, unix_seconds: u64) -> String {
    hotp(
        secret,
        params.algorithm,
        params.digits,
        unix_seconds / u64::from(params.period.max(1)),
    )
}

/// RFC 4226 HOTP: HMAC of the big-endian counter, dynamically truncated to `digits`.
pub(super) fn hotp(secret: &[u8], algorithm: TotpAlgorithm, digits: u8, counter: u64) -> String {
    let message = counter.to_be_bytes();
    // HMAC takes keys of any length, so `new_from_slice` cannot fail here.
    let digest: Vec<u8> = match algorithm {
        TotpAlgorithm::Sha1 => mac::<Hmac<sha1::Sha1>>(secret, &message),
        TotpAlgorithm::Sha256 => mac::<Hmac<sha2::Sha256>>(secret, &message),
        TotpAlgorithm::Sha512 => mac::<Hmac<sha2::Sha512>>(secret, &message),
    };
    let offset = usize::from(digest[digest.len() - 1] & 0x0f);
    let binary = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    let digits = u32::from(digits.clamp(6, 8));
    format!(
        "{:0width$}",
        binary % 10u32.pow(digits),
        width = digits as usize
    )
}

fn mac<M: Mac + hmac::digest::KeyInit>(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key)
        .expect("HMAC accepts keys of every length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// Secret length per algorithm: the hash's output size, as RFC 4226 and 6238 advise.
pub(super) fn secret_len(algorithm: TotpAlgorithm) -> usize {
    match algorithm {
        TotpAlgorithm::Sha1 => 20,
        TotpAlgorithm::Sha256 => 32,
        TotpAlgorithm::Sha512 => 64,
    }
}
