//! Breach corpora: where [`check_new_password`](super::check_new_password) asks whether
//! a new password has leaked. A local list (passwords or their SHA-1 digests, from
//! memory or files) and, behind the `breached-password-api` feature, the public
//! k-anonymity range API, which is sent only the first five hex digits of the SHA-1.

use crate::input::Password;
use async_trait::async_trait;
use sha1::{Digest, Sha1};
use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::io::BufRead;
use std::path::Path;

/// A breached-password source could not answer (unreachable API, unreadable list).
#[derive(Clone, Debug, thiserror::Error)]
#[error("breached-password check: {message}")]
pub struct BreachCheckError {
    message: Cow<'static, str>,
}

impl BreachCheckError {
    pub fn new(message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// A corpus of passwords known from data breaches.
///
/// An `async_trait` rather than a native async method so that
/// [`check_new_password`] can take any source as `&dyn BreachedPasswords`.
#[async_trait]
pub trait BreachedPasswords: Send + Sync {
    async fn is_breached(&self, password: &Password) -> Result<bool, BreachCheckError>;
}

/// The uppercase hex SHA-1 of a password, the key breach corpora are published
/// under: for implementing [`BreachedPasswords`] outside this crate. It identifies a
/// common password as surely as the text does, so never log or store it.
pub fn password_sha1_hex(password: &Password) -> String {
    hex::encode_upper(sha1_of(password.expose().as_bytes()))
}

fn sha1_of(bytes: &[u8]) -> [u8; 20] {
    Sha1::digest(bytes).into()
}

/// A breach corpus held in memory as SHA-1 digests (20 bytes an entry, so lists of
/// millions fit; the full public corpus does not, use the range API for that).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct LocalBreachedList {
    sha1s: HashSet<[u8; 20]>,
}

impl LocalBreachedList {
    /// From plain passwords, compared exactly (case-sensitive, as corpora are).
    pub fn from_passwords<I, S>(passwords: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self {
            sha1s: passwords
                .into_iter()
                .map(|p| sha1_of(p.as_ref().as_bytes()))
                .collect(),
        }
    }

    /// From SHA-1 hex digests, either case, each optionally followed by `:COUNT` as
    /// in the downloadable corpus; blank lines are skipped.
    ///
    /// # Errors
    /// If an entry is not a SHA-1 hex digest (naming its position, not its text).
    pub fn from_sha1_hex<I, S>(digests: I) -> Result<Self, BreachCheckError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut sha1s = HashSet::new();
        for (i, line) in digests.into_iter().enumerate() {
            if let Some(digest) = parse_sha1_entry(line.as_ref(), i + 1)? {
                sha1s.insert(digest);
            }
        }
        Ok(Self { sha1s })
    }

    /// From a file of plain passwords, one a line (any bytes but `\n`; a trailing
    /// `\r` is dropped); blank lines are skipped.
    ///
    /// # Errors
    /// If the file cannot be read.
    pub fn from_password_file(path: impl AsRef<Path>) -> Result<Self, BreachCheckError> {
        let path = path.as_ref();
        let mut sha1s = HashSet::new();
        for line in open(path)?.split(b'\n') {
            let line = line.map_err(|e| read_error(path, &e))?;
            let line = line.strip_suffix(b"\r").unwrap_or(&line);
            if !line.is_empty() {
                sha1s.insert(sha1_of(line));
            }
        }
        Ok(Self { sha1s })
    }

    /// From a file of SHA-1 hex digests, one a line, as [`Self::from_sha1_hex`].
    ///
    /// # Errors
    /// If the file cannot be read or a line is not a digest.
    pub fn from_sha1_file(path: impl AsRef<Path>) -> Result<Self, BreachCheckError> {
        let path = path.as_ref();
        let mut sha1s = HashSet::new();
        for (i, line) in open(path)?.lines().enumerate() {
            let line = line.map_err(|e| read_error(path, &e))?;
            if let Some(digest) = parse_sha1_entry(&line, i + 1)? {
                sha1s.insert(digest);
            }
        }
        Ok(Self { sha1s })
    }

    pub fn len(&self) -> usize {
        self.sha1s.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sha1s.is_empty()
    }
}

impl fmt::Debug for LocalBreachedList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalBreachedList")
            .field("entries", &self.sha1s.len())
            .finish()
    }
}

#[async_trait]
impl BreachedPasswords for LocalBreachedList {
    async fn is_breached(&self, password: &Password) -> Result<bool, BreachCheckError> {
        Ok(self.sha1s.contains(&sha1_of(password.expose().as_bytes())))
    }
}

fn open(path: &Path) -> Result<std::io::BufReader<std::fs::File>, BreachCheckError> {
    std::fs::File::open(path)
        .map(std::io::BufReader::new)
        .map_err(|e| read_error(path, &e))
}

fn read_error(path: &Path, e: &std::io::Error) -> BreachCheckError {
    BreachCheckError::new(format!("reading {}: {e}", path.display()))
}

fn parse_sha1_entry(line: &str, number: usize) -> Result<Option<[u8; 20]>, BreachCheckError> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(None);
    }
    let hex_part = line.split_once(':').map_or(line, |(digest, _count)| digest);
    let mut digest = [0u8; 20];
    hex::decode_to_slice(hex_part, &mut digest)
        .map_err(|_| BreachCheckError::new(format!("entry {number} is not a SHA-1 hex digest")))?;
    Ok(Some(digest))
}

/// How often the range API's response body lists the hash `suffix` (the 35 hex
/// digits after the 5 sent), or `None` if it does not. Lines are `SUFFIX:COUNT`;
/// hex is compared case-insensitively, and entries with count 0 are the padding
/// the API adds on request so response sizes do not hint at the prefix, not matches.
pub fn count_in_range_response(body: &str, suffix: &str) -> Option<u64> {
    body.lines().find_map(|line| {
        let (candidate, count) = line.trim().split_once(':')?;
        if !candidate.trim().eq_ignore_ascii_case(suffix) {
            return None;
        }
        count.trim().parse::<u64>().ok().filter(|&n| n > 0)
    })
}

/// The 5-hex-digit prefix sent to the range API and the 35-digit suffix looked for
/// in its answer: the service learns only the prefix, shared by hundreds of hashes.
#[cfg_attr(not(feature = "breached-password-api"), allow(dead_code))]
fn range_key(password: &Password) -> (String, String) {
    let mut hex = password_sha1_hex(password);
    let suffix = hex.split_off(5);
    (hex, suffix)
}

#[cfg(feature = "breached-password-api")]
pub use range_api::PwnedPasswordsRange;

#[cfg(feature = "breached-password-api")]
mod range_api {
    use super::{BreachCheckError, BreachedPasswords, count_in_range_response, range_key};
    use crate::input::Password;
    use async_trait::async_trait;
    use std::time::Duration;

    /// A range response is a few thousand short lines; anything far larger is not one.
    const MAX_RESPONSE_BYTES: u64 = 1024 * 1024;

    /// The public breached-password range API (k-anonymity: only the first five hex
    /// digits of the password's SHA-1 leave the process). Requests are blocking
    /// `ureq` calls run on Tokio's blocking pool.
    #[derive(Clone, Debug)]
    pub struct PwnedPasswordsRange {
        agent: ureq::Agent,
        base_url: String,
    }

    impl PwnedPasswordsRange {
        pub const DEFAULT_BASE_URL: &'static str = "https://api.pwnedpasswords.com/range/";

        /// A client of the public API; `timeout` bounds each whole request.
        pub fn new(timeout: Duration) -> Self {
            let agent = ureq::Agent::config_builder()
                .timeout_global(Some(timeout))
                .user_agent(concat!("saas-db-service/", env!("CARGO_PKG_VERSION")))
                .build()
                .new_agent();
            Self {
                agent,
                base_url: Self::DEFAULT_BASE_URL.to_owned(),
            }
        }

        /// The same against another server with the same interface (a mirror or a
        /// test double); the hash prefix is appended to `base_url`.
        pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
            self.base_url = base_url.into();
            self
        }
    }

    #[async_trait]
    impl BreachedPasswords for PwnedPasswordsRange {
        async fn is_breached(&self, password: &Password) -> Result<bool, BreachCheckError> {
            let (prefix, suffix) = range_key(password);
            let agent = self.agent.clone();
            let url = format!("{}{prefix}", self.base_url);
            let body = tokio::task::spawn_blocking(move || {
                agent
                    .get(&url)
                    .header("Add-Padding", "true")
                    .call()?
                    .body_mut()
                    .with_config()
                    .limit(MAX_RESPONSE_BYTES)
                    .read_to_string()
            })
            .await
            .map_err(|_| BreachCheckError::new("the range request task did not finish"))?
            .map_err(|e| BreachCheckError::new(format!("range request failed: {e}")))?;
            Ok(count_in_range_response(&body, &suffix).is_some())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breached_lists_load_from_files() {
        let dir = std::env::temp_dir().join(format!("password-policy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let plain = dir.join("plain.txt");
        std::fs::write(&plain, "first one\r\n\nsecond one\n").unwrap();
        let list = LocalBreachedList::from_password_file(&plain).unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(
            list,
            LocalBreachedList::from_passwords(["first one", "second one"])
        );

        let hashes = dir.join("sha1.txt");
        std::fs::write(
            &hashes,
            format!(
                "{}:3\n\n",
                password_sha1_hex(&Password::new("first one").unwrap())
            ),
        )
        .unwrap();
        assert_eq!(LocalBreachedList::from_sha1_file(&hashes).unwrap().len(), 1);

        std::fs::write(&hashes, "not a digest\n").unwrap();
        let err = LocalBreachedList::from_sha1_file(&hashes).unwrap_err();
        assert!(err.to_string().contains("entry 1"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_range_response_parser_finds_suffixes_and_ignores_padding() {
        let body = "0018A45C4D1DEF81644B54AB7F969B88D65:1\r\n\
                    00D4F6E8FA6EECAD2A3AA415EEC418D38EC:2\r\n\
                    011053FD0102E94D6AE2F8B83D76FAF94F6:0\r\n\
                    1E4C9B93F3F0682250B6CF8331B7EE68FD8:3861493\r\n";
        assert_eq!(
            count_in_range_response(body, "1E4C9B93F3F0682250B6CF8331B7EE68FD8"),
            Some(3_861_493)
        );
        // Hex case does not matter, on either side.
        assert_eq!(
            count_in_range_response(body, "00d4f6e8fa6eecad2a3aa415eec418d38ec"),
            Some(2)
        );
        assert_eq!(
            count_in_range_response(&body.to_lowercase(), "0018A45C4D1DEF81644B54AB7F969B88D65"),
            Some(1)
        );
        // A padding line (count 0) is not a match.
        assert_eq!(
            count_in_range_response(body, "011053FD0102E94D6AE2F8B83D76FAF94F6"),
            None
        );
        assert_eq!(
            count_in_range_response(body, "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"),
            None
        );
        assert_eq!(count_in_range_response("", "0018A"), None);
    }

    #[test]
    fn the_range_key_splits_the_uppercase_sha1() {
        // SHA-1("password") = 5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8
        let (prefix, suffix) = range_key(&Password::new("password").unwrap());
        assert_eq!(prefix, "5BAA6");
        assert_eq!(suffix, "1E4C9B93F3F0682250B6CF8331B7EE68FD8");
    }
}
