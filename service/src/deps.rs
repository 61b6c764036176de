//! What every operation runs with: a clock, an id source, randomness, the field
//! encryption key ring and settings.
//!
//! Production uses [`Deps::new`], with the key ring passed in (`KeyRing::from_env`), so
//! no deployment falls back to the development key by omission. Tests and the seeder
//! swap in a [`ManualClock`], [`LabelledIds`] and [`SeededRandom`] so that expiry is
//! tested without sleeping and fixtures come out byte-identical.

use crate::crypto::KeyRing;
use crate::identity::{BreachedPasswords, PasswordPolicy, TotpParams};
use chrono::{DateTime, Duration, DurationRound, TimeDelta, Utc};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use uuid::Uuid;

/// The current time. Values are truncated to microseconds, the finest precision
/// PostgreSQL and MariaDB store, so a model read back equals the one written.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        truncate_to_micros(Utc::now())
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self(Mutex::new(truncate_to_micros(start)))
    }

    pub fn set(&self, to: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = truncate_to_micros(to);
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn truncate_to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::microseconds(1)).unwrap_or(t)
}

/// Where primary keys come from.
pub trait IdSource: Send + Sync {
    /// A new id for a row of `table`. `natural_key` names the row when it has a
    /// natural identity (a user's email, a tenant's slug); sources may ignore it.
    fn new_id(&self, table: &'static str, natural_key: &str) -> Uuid;
}

/// UUID v7: time-ordered, so inserts stay at the right edge of the primary key index.
#[derive(Debug, Default)]
pub struct TimeOrderedIds;

impl IdSource for TimeOrderedIds {
    fn new_id(&self, _table: &'static str, _natural_key: &str) -> Uuid {
        Uuid::now_v7()
    }
}

/// UUID v5 of `"<table>/<natural key>#<n>"` in a namespace, where `n` counts earlier
/// ids with the same table and key. Ids depend on labels, not on order, so adding a
/// fixture does not renumber the others.
#[derive(Debug)]
pub struct LabelledIds {
    namespace: Uuid,
    seen: Mutex<HashMap<(String, String), u32>>,
}

impl LabelledIds {
    pub fn new(namespace: Uuid) -> Self {
        Self {
            namespace,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// The id the `n`-th request for (`table`, `natural_key`) gets, for documentation
    /// and tests that need to know a fixture's id in advance.
    pub fn id_for(namespace: Uuid, table: &str, natural_key: &str, n: u32) -> Uuid {
        Uuid::new_v5(&namespace, format!("{table}/{natural_key}#{n}").as_bytes())
    }
}

impl IdSource for LabelledIds {
    fn new_id(&self, table: &'static str, natural_key: &str) -> Uuid {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let n = seen
            .entry((table.to_owned(), natural_key.to_owned()))
            .or_insert(0);
        let id = Self::id_for(self.namespace, table, natural_key, *n);
        *n += 1;
        id
    }
}

/// Random bytes for salts and tokens.
pub trait RandomSource: Send + Sync {
    fn fill(&self, dest: &mut [u8]);
}

/// The operating system's CSPRNG (through rand's thread-local generator, which it seeds).
#[derive(Debug, Default)]
pub struct OsRandom;

impl RandomSource for OsRandom {
    fn fill(&self, dest: &mut [u8]) {
        rand::rng().fill_bytes(dest);
    }
}

/// ChaCha20 from a fixed seed: the same bytes every run. For fixtures and tests only:
/// tokens drawn from it are predictable by anyone who knows the seed.
#[derive(Debug)]
pub struct SeededRandom(Mutex<ChaCha20Rng>);

impl SeededRandom {
    pub fn new(seed: u64) -> Self {
        Self(Mutex::new(ChaCha20Rng::seed_from_u64(seed)))
    }
}

impl RandomSource for SeededRandom {
    fn fill(&self, dest: &mut [u8]) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .fill_bytes(dest);
    }
}

/// Tunables, with production defaults.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// Argon2id memory in KiB (OWASP: 19456).
    pub argon2_memory_kib: u32,
    /// Argon2id passes (OWASP: 2).
    pub argon2_iterations: u32,
    /// Argon2id lanes (OWASP: 1).
    pub argon2_parallelism: u32,
    /// At most this many argon2 computations run at once (default: the cores the
    /// process may use); more wait their turn. On the cores, hashes beyond that only
    /// slow each other down (their memory no longer fits the caches) and each holds
    /// `argon2_memory_kib`, so a burst of sign-ins cannot exhaust memory either.
    pub argon2_max_concurrent: usize,
    /// Sign-in throttling for one account as seen from one client address: a
    /// stranger elsewhere cannot slow the account's owner down.
    pub sign_in_per_account_address: ThrottlePolicy,
    /// Sign-in throttling for one client address across accounts (password spraying).
    pub sign_in_per_address: ThrottlePolicy,
    /// Failures older than this are forgotten.
    pub sign_in_forget_after: Duration,
    /// Absolute lifetime of a session, however often it is refreshed.
    pub session_lifetime: Duration,
    /// How long an unused refresh token stays valid (never past its session's end).
    pub refresh_token_lifetime: Duration,
    /// Which API keys this deployment issues and accepts (`sk_live_...` or
    /// `sk_test_...`): a test key is refused in production and the other way round.
    pub api_key_environment: ApiKeyEnvironment,
    /// The longest an old API key may keep working after its rotation.
    pub api_key_max_rotation_grace: Duration,
    /// Algorithm, digits and period of new TOTP factors (existing ones keep theirs).
    pub totp: TotpParams,
    /// The issuer authenticator apps show next to a TOTP factor.
    pub totp_issuer: String,
    /// What a new password must be beyond its length (see `check_new_password`).
    pub password_policy: PasswordPolicy,
    /// A rotated refresh token presented again within this long, from its session's
    /// device, gets the same successor instead of revoking the session (browser tabs
    /// refreshing together). Zero turns the allowance off.
    pub refresh_reuse_interval: Duration,
    /// How long the second step of a sign-in may take.
    pub mfa_challenge_lifetime: Duration,
    /// Wrong codes one challenge accepts before it is spent (each also counts toward
    /// the sign-in throttle).
    pub mfa_challenge_max_failures: i32,
    /// How recently the user must have proved who they are (signed in or stepped up)
    /// for a sensitive operation: changing the password, the second factor or API
    /// keys, closing the account.
    pub reauthentication_window: Duration,
    /// Scores of anomaly detection, and what they lead to.
    pub anomaly: AnomalyPolicy,
    /// How long a deletion request waits before the erasure job takes it; the user
    /// may cancel it until then.
    pub deletion_grace_period: Duration,
    /// Retries and liveness of the agent task queue.
    pub agent_queue: AgentQueuePolicy,
    /// How long access grants to protected records and break-glass openings last.
    pub records: RecordsPolicy,
    /// Which payment provider serves a customer of which country.
    pub payment_routing: crate::billing::PaymentRouting,
}

/// Time limits of access to protected records.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RecordsPolicy {
    /// The longest a grant may run (every grant has an expiry; this bounds it).
    pub longest_grant: Duration,
    /// How long a break-glass opening gives access: fixed, short, not the opener's
    /// choice.
    pub break_glass_for: Duration,
}

impl Default for RecordsPolicy {
    fn default() -> Self {
        Self {
            longest_grant: Duration::days(365),
            break_glass_for: Duration::hours(1),
        }
    }
}

/// How the agent task queue retries failed attempts and notices workers that stopped.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AgentQueuePolicy {
    /// The wait before the second attempt; each later one waits twice the one before.
    pub retry_base: Duration,
    /// The longest wait between attempts.
    pub retry_cap: Duration,
    /// A running task whose worker sent no heartbeat for this long is taken back.
    pub stall_after: Duration,
}

impl AgentQueuePolicy {
    /// The wait after failed attempt number `attempt` (1, 2, ...): exponential, capped.
    pub fn backoff(&self, attempt: i16) -> Duration {
        let doublings = u32::try_from(attempt.saturating_sub(1))
            .unwrap_or(0)
            .min(30);
        self.retry_base
            .checked_mul(1 << doublings)
            .map_or(self.retry_cap, |wait| wait.min(self.retry_cap))
    }
}

impl Default for AgentQueuePolicy {
    fn default() -> Self {
        Self {
            retry_base: Duration::seconds(10),
            retry_cap: Duration::hours(1),
            stall_after: Duration::minutes(5),
        }
    }
}

/// Anomaly detection at sign-in and refresh: what each finding scores (0 to 100) and
/// the summed score from which a sign-in needs a second factor (or is refused without
/// one).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AnomalyPolicy {
    /// A device fingerprint none of the user's earlier sessions had.
    pub new_device_score: i32,
    /// Travel between consecutive locations faster than this is impossible.
    pub impossible_travel_kmh: f64,
    /// Shorter hops are ignored: coarse locations of one place jitter by tens of km.
    pub impossible_travel_min_km: f64,
    pub impossible_travel_score: i32,
    /// This many failed sign-ins of the account within `failed_burst_window`...
    pub failed_burst_count: u64,
    pub failed_burst_window: Duration,
    /// ...score this much.
    pub failed_burst_score: i32,
    /// From this summed score a sign-in needs the second factor, or is refused.
    pub step_up_score: i32,
}

impl Default for AnomalyPolicy {
    fn default() -> Self {
        Self {
            new_device_score: 30,
            impossible_travel_kmh: 900.0,
            impossible_travel_min_km: 100.0,
            impossible_travel_score: 70,
            failed_burst_count: 5,
            failed_burst_window: Duration::minutes(15),
            failed_burst_score: 40,
            step_up_score: 70,
        }
    }
}

/// The environment an API key belongs to, written into the key itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ApiKeyEnvironment {
    Live,
    #[default]
    Test,
}

impl ApiKeyEnvironment {
    pub fn as_str(self) -> &'static str {
        match self {
            ApiKeyEnvironment::Live => "live",
            ApiKeyEnvironment::Test => "test",
        }
    }
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            argon2_memory_kib: 19_456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            argon2_max_concurrent: std::thread::available_parallelism()
                .map_or(1, std::num::NonZeroUsize::get),
            sign_in_per_account_address: ThrottlePolicy {
                free_failures: 5,
                base_delay: Duration::seconds(1),
                max_delay: Duration::minutes(15),
            },
            sign_in_per_address: ThrottlePolicy {
                free_failures: 50,
                base_delay: Duration::seconds(1),
                max_delay: Duration::minutes(15),
            },
            sign_in_forget_after: Duration::hours(24),
            session_lifetime: Duration::days(30),
            refresh_token_lifetime: Duration::days(14),
            api_key_environment: ApiKeyEnvironment::Test,
            api_key_max_rotation_grace: Duration::days(7),
            totp: TotpParams::default(),
            totp_issuer: "saas-db".to_owned(),
            password_policy: PasswordPolicy::default(),
            refresh_reuse_interval: Duration::seconds(10),
            mfa_challenge_lifetime: Duration::minutes(5),
            mfa_challenge_max_failures: 5,
            reauthentication_window: Duration::minutes(15),
            anomaly: AnomalyPolicy::default(),
            deletion_grace_period: Duration::days(30),
            agent_queue: AgentQueuePolicy::default(),
            records: RecordsPolicy::default(),
            payment_routing: crate::billing::PaymentRouting::default(),
        }
    }
}

/// Exponential delay after repeated failed sign-ins under one key: the first
/// `free_failures` cost nothing; from then on the n-th failure blocks the key for
/// `base_delay * 2^(n - free_failures - 1)`, at most `max_delay`. A blocked
/// attempt is answered like a wrong password and does not extend the block, so
/// nobody is locked out for longer than `max_delay` after the last verified guess.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThrottlePolicy {
    pub free_failures: i32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl ThrottlePolicy {
    /// How long a key is blocked after its `failures`-th failure in a row, if at all.
    pub fn delay_after(&self, failures: i32) -> Option<Duration> {
        let over = failures.checked_sub(self.free_failures)?;
        if over <= 0 {
            return None;
        }
        // 2^20 seconds is twelve days: any cap of interest is reached long before.
        let factor = 1i32 << (over - 1).min(20);
        Some(
            self.base_delay
                .checked_mul(factor)
                .map_or(self.max_delay, |d| d.min(self.max_delay)),
        )
    }
}

/// The dependencies every operation takes. Cheap to clone.
#[derive(Clone)]
pub struct Deps {
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdSource>,
    pub random: Arc<dyn RandomSource>,
    pub config: Arc<ServiceConfig>,
    /// Seals and opens encrypted columns (TOTP secrets).
    pub keys: Arc<KeyRing>,
    /// Where new passwords are looked up when the policy's `check_breached` is on.
    pub breached_passwords: Option<Arc<dyn BreachedPasswords>>,
    /// The hash verified against when an email is unknown, so that answer takes as
    /// long as a wrong password (built on first use).
    pub(crate) decoy_hash: Arc<OnceLock<String>>,
    /// Turns for argon2 computations: `config.argon2_max_concurrent` of them.
    pub(crate) hashing_turns: Arc<tokio::sync::Semaphore>,
}

fn hashing_turns(config: &ServiceConfig) -> Arc<tokio::sync::Semaphore> {
    Arc::new(tokio::sync::Semaphore::new(Ord::max(
        config.argon2_max_concurrent,
        1,
    )))
}

impl Deps {
    /// Production: system clock, UUID v7 ids, the OS random generator, and the key ring
    /// the caller read (`KeyRing::from_env(AppEnv::from_process_env()?)`).
    pub fn new(config: ServiceConfig, keys: KeyRing) -> Self {
        Self {
            clock: Arc::new(SystemClock),
            ids: Arc::new(TimeOrderedIds),
            random: Arc::new(OsRandom),
            hashing_turns: hashing_turns(&config),
            config: Arc::new(config),
            keys: Arc::new(keys),
            breached_passwords: None,
            decoy_hash: Arc::new(OnceLock::new()),
        }
    }

    /// Deterministic: a manual clock at `start`, labelled ids in `namespace`,
    /// randomness from `seed` and the development key ring (see [`Deps::with_keys`]).
    /// Returns the clock too, so tests can move it.
    pub fn deterministic(
        config: ServiceConfig,
        start: DateTime<Utc>,
        namespace: Uuid,
        seed: u64,
    ) -> (Self, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(start));
        let deps = Self {
            clock: clock.clone(),
            ids: Arc::new(LabelledIds::new(namespace)),
            random: Arc::new(SeededRandom::new(seed)),
            hashing_turns: hashing_turns(&config),
            config: Arc::new(config),
            keys: Arc::new(KeyRing::development()),
            breached_passwords: None,
            decoy_hash: Arc::new(OnceLock::new()),
        };
        (deps, clock)
    }

    /// The same, with another clock (e.g. a [`ManualClock`] set to the database's time).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The same, with another key ring (the seeder outside `local` and `test`).
    pub fn with_keys(mut self, keys: Arc<KeyRing>) -> Self {
        self.keys = keys;
        self
    }

    /// The same, looking new passwords up in `source` (with the policy's
    /// `check_breached` on).
    pub fn with_breached_passwords(mut self, source: Arc<dyn BreachedPasswords>) -> Self {
        self.breached_passwords = Some(source);
        self
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub(crate) fn new_id(&self, table: &'static str, natural_key: &str) -> Uuid {
        self.ids.new_id(table, natural_key)
    }

    pub(crate) fn random_bytes<const N: usize>(&self) -> [u8; N] {
        let mut bytes = [0u8; N];
        self.random.fill(&mut bytes);
        bytes
    }
}

impl std::fmt::Debug for Deps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deps")
            .field("config", &self.config)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}
