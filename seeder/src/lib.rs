//! The deterministic fixture loader behind `cargo run -p seeder`.
//!
//! Order of a run, each step before the next:
//! 1. refuse production on the process signals (`APP_ENV`, `MIGRATION_ENV`);
//! 2. connect and read the database's own environment marker, refusing production or
//!    a mismatch, and on PostgreSQL a role that row-level security applies to: all of
//!    this reads only;
//! 3. outside `local` and `test`, list what the reset deletes and ask for the migration
//!    CLI's confirmation phrase;
//! 4. take the seeder lock (one seeder at a time per database);
//! 5. migrate (local and test only) through the migration CLI's own code path
//!    (`migration::cli::apply_pending`: its lock, checksums and environment marker);
//! 6. reset and load the profile in one transaction, through the `service` operations,
//!    with a fixed clock, labelled UUID v5 ids and a seeded ChaCha RNG.

pub mod access;
mod agents;
mod billing;
pub mod compliance;
mod identity;
pub mod profile;
mod records;
mod rental;
mod reset;
pub mod scale;
pub mod summary;
mod tenancy;

pub use identity::SecondFactorLine;
pub use reset::{KEPT_TABLES, RESET_TABLES, table_names};

use chrono::{DateTime, Duration, TimeZone, Utc};
use entity::audit::audit_logs;
use entity::identity::{refresh_tokens, sessions, user_profiles, users};
use entity::tenancy::{memberships, tenants};
use entity::{TenantId, UserId};
use migration::cli::safety::confirm_environment;
use migration::cli::{CliError, NoTerminal, Prompt, RunSettings};
use migration::environment::{AppEnv, RecordedEnv, read_recorded_env, record_env_if_absent};
use migration::lock::{LockError, LockPurpose, MigrationLock};
use migration::{Migrator, MigratorTrait};
use profile::{Profile, ProfileName};
use sea_orm::{
    ActiveEnum, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, PaginatorTrait,
    SqlErr, TransactionTrait,
};
use service::connection::{self, ConnectError, DbTarget, PoolSettings, TargetError};
use service::crypto::KeyRing;
use service::{Deps, RequestMeta, ServiceConfig, ServiceError};
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

/// The namespace of every fixture id: `Uuid::new_v5(FIXTURE_NAMESPACE, "<profile>")`
/// is the profile's namespace, and ids are v5 of `<table>/<key>#<n>` inside it.
pub const FIXTURE_NAMESPACE: Uuid = Uuid::from_u128(0x6d1f_0c4e_5b7a_4c55_9a3e_2f1d_7c00_5eed);

/// The service configuration fixtures are created under: the defaults, but the
/// strength check of new passwords is off, because every fixture user shares one
/// published demo password (the seeder refuses production databases).
pub fn fixture_config() -> ServiceConfig {
    let mut config = ServiceConfig::default();
    config.password_policy.min_score = 0;
    config
}

/// The fixed clock's start: fixtures are "created" at this instant.
pub fn fixture_epoch() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0)
        .single()
        .expect("a valid literal date")
}

/// The namespace for a profile's ids.
pub fn profile_namespace(profile: ProfileName) -> Uuid {
    Uuid::new_v5(&FIXTURE_NAMESPACE, profile.as_str().as_bytes())
}

#[derive(Clone, Debug)]
pub struct SeedOptions {
    /// `None`: `DATABASE_URL`, the `DB_*` variables, or else the SQLite default file.
    pub database_url: Option<String>,
    pub profile: ProfileName,
    pub seed: u64,
    /// Empty the fixture tables before loading (the default).
    pub reset: bool,
    /// Synthetic tenants to add after the profile (`--scale N`).
    pub scale: u32,
    /// How `--scale` writes; `None`: the backend's fastest ([`scale::ScaleWriter::for_backend`]).
    /// Tests set it to compare the writers; the rows are the same.
    pub scale_writer: Option<scale::ScaleWriter>,
    /// The confirmation phrase for `development` and `staging` without a terminal
    /// (`--confirm "MIGRATE STAGING"`), as the migration CLI takes it.
    pub confirm: Option<String>,
    /// How long to wait for another seeder (or migrator) holding the database.
    pub lock_timeout: std::time::Duration,
    /// The key ring sealed fixtures (TOTP secrets) are sealed with. `None` reads
    /// `FIELD_ENCRYPTION_KEYS` from the process (`KeyRing::for_tool`): the development
    /// key in `local` and `test`, the environment's own keys elsewhere, so the
    /// application there can open what the seeder sealed.
    pub field_keys: Option<Arc<KeyRing>>,
}

impl Default for SeedOptions {
    fn default() -> Self {
        Self {
            database_url: None,
            profile: ProfileName::Demo,
            seed: DEFAULT_SEED,
            reset: true,
            scale: 0,
            scale_writer: None,
            confirm: None,
            lock_timeout: std::time::Duration::from_secs(120),
            field_keys: None,
        }
    }
}

pub const DEFAULT_SEED: u64 = 2026;

/// The process's environment signals, read once by `main` (tests build their own).
#[derive(Clone, Debug, Default)]
pub struct EnvSignals {
    pub app_env: Option<String>,
    pub migration_env: Option<String>,
}

impl EnvSignals {
    pub fn from_process() -> Self {
        Self {
            app_env: std::env::var("APP_ENV")
                .ok()
                .filter(|v| !v.trim().is_empty()),
            migration_env: std::env::var("MIGRATION_ENV")
                .ok()
                .filter(|v| !v.trim().is_empty()),
        }
    }

    /// The environment they name; both must agree when both are set. An unknown value
    /// or a disagreement refuses, because neither proves the target is safe.
    pub fn environment(&self) -> Result<AppEnv, SeedError> {
        let parse = |var: &'static str,
                     value: &Option<String>|
         -> Result<Option<AppEnv>, SeedError> {
            value
                .as_deref()
                .map(|v| {
                    v.parse().map_err(|_| SeedError::Refused {
                        signal: format!("{var}={v:?}"),
                        reason: "is not a known environment (local, test, development, staging, production)".into(),
                    })
                })
                .transpose()
        };
        let app = parse("APP_ENV", &self.app_env)?;
        let migration = parse("MIGRATION_ENV", &self.migration_env)?;
        for (var, env) in [("APP_ENV", app), ("MIGRATION_ENV", migration)] {
            if env == Some(AppEnv::Production) {
                return Err(SeedError::Refused {
                    signal: format!("{var}=production"),
                    reason: "the seeder never writes to production".into(),
                });
            }
        }
        match (app, migration) {
            (Some(a), Some(m)) if a != m => Err(SeedError::Refused {
                signal: format!("APP_ENV={a}, MIGRATION_ENV={m}"),
                reason: "the two variables disagree".into(),
            }),
            (a, m) => Ok(a.or(m).unwrap_or(AppEnv::Local)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// A safety signal stopped the run before anything was written.
    #[error("refused by {signal}: {reason}; nothing was written")]
    Refused { signal: String, reason: String },
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("cannot connect to {target}: {source}")]
    Connect { target: String, source: DbErr },
    #[error(
        "{count} migration(s) pending in {env}; the seeder migrates only local and test \
         databases. Run `cargo run -p migration -- up` first"
    )]
    PendingMigrations { env: AppEnv, count: usize },
    #[error(
        "the database already holds fixture tenants ({0}); run again without --no-reset to replace them"
    )]
    AlreadySeeded(String),
    /// A reset that would rebuild the schema of a database holding tables the
    /// migrations did not create (they would be dropped or block the rebuild).
    #[error(
        "the reset must rebuild the schema (the audit trail is append-only), and the database \
         holds tables the migrations did not create: {0}. Nothing was changed; move them \
         elsewhere, or run with --no-reset"
    )]
    UnknownTables(String),
    #[error("cannot create {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("fixture {fixture}: {source}")]
    Fixture {
        fixture: String,
        source: ServiceError,
    },
    #[error("{0}")]
    Scale(String),
    /// A synthetic value that COPY's text format cannot carry (nothing was sent).
    #[error("--scale cannot write {table}.{column} with COPY: {reason}")]
    ScaleCopy {
        table: String,
        column: String,
        reason: String,
    },
    /// Migrating through the migration CLI's code path failed.
    #[error("migrating: {0}")]
    Migrate(CliError),
    /// Another seeder kept the database locked for longer than `--lock-timeout`.
    #[error("{0}")]
    Lock(#[from] LockError),
    /// The load collided with rows it did not write; it was rolled back.
    #[error(
        "the load collides with rows this seeder did not write ({check} failed: {detail}): \
         another process wrote to the seeded tables while it ran, or a table the reset does \
         not empty refers to them. The load was rolled back and nothing of it was written; \
         stop the other writer, or remove those rows, and run again"
    )]
    Collision { check: &'static str, detail: String },
    #[error("cannot write to the terminal: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Db(#[from] DbErr),
}

impl From<CliError> for SeedError {
    fn from(error: CliError) -> Self {
        match error {
            CliError::Refused(reason) => SeedError::Refused {
                signal: "the confirmation".into(),
                reason,
            },
            other => SeedError::Migrate(other),
        }
    }
}

impl SeedError {
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            SeedError::Refused { .. } | SeedError::UnknownTables(_)
        )
    }
}

/// What a run did, for printing.
#[derive(Debug)]
pub struct SeedReport {
    pub environment: AppEnv,
    pub target: String,
    pub backend: DbBackend,
    pub profile: ProfileName,
    pub migrations_applied: usize,
    pub tenants: Vec<TenantLine>,
    pub users: Vec<UserLine>,
    pub access: access::AccessReport,
    /// Second factors of the demo users (Alice's), with their secrets and backup codes.
    pub second_factors: Vec<identity::SecondFactorLine>,
    /// Rento's privacy fixtures: policy versions, consents, erasures.
    pub compliance: compliance::ComplianceLine,
    pub row_counts: Vec<(&'static str, u64)>,
    pub scale: Option<scale::ScaleReport>,
    /// Whoever held the database when this run started, if it had to wait.
    pub waited_for: Option<String>,
    pub elapsed: std::time::Duration,
}

#[derive(Debug)]
pub struct TenantLine {
    pub id: TenantId,
    pub slug: &'static str,
    pub name: &'static str,
    pub plan_tier: String,
    pub data_region: String,
    pub origin: &'static str,
}

#[derive(Debug)]
pub struct UserLine {
    pub id: UserId,
    pub email: &'static str,
    pub display_name: &'static str,
    pub tenant: &'static str,
    pub role: String,
    pub persona: &'static str,
}

/// The SQLite file used when nothing else is configured: `data/dev.sqlite` in the
/// workspace, wherever the command runs from.
pub fn default_sqlite_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(|root| root.join("data").join("dev.sqlite"))
        .unwrap_or_else(|| PathBuf::from("data/dev.sqlite"))
}

/// Resolves the target: the explicit URL, `DATABASE_URL`/`DB_*`, else the default file.
pub fn resolve_target(explicit: Option<&str>) -> Result<DbTarget, SeedError> {
    match DbTarget::from_env(explicit) {
        Ok(target) => Ok(target),
        Err(TargetError::Missing) => {
            let path = default_sqlite_path();
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|source| SeedError::DataDir {
                    path: dir.to_owned(),
                    source,
                })?;
            }
            Ok(DbTarget::from_url(&format!(
                "sqlite://{}?mode=rwc",
                path.display()
            ))?)
        }
        Err(e) => Err(e.into()),
    }
}

/// The whole run, from the environment signals on, without a terminal: outside
/// `local` and `test` only `options.confirm` confirms. Notices go to stderr.
pub async fn seed(signals: &EnvSignals, options: &SeedOptions) -> Result<SeedReport, SeedError> {
    seed_with(signals, options, &mut NoTerminal, &mut std::io::stderr()).await
}

/// [`seed`] asking `prompt` for the confirmation phrase and writing notices (what the
/// reset deletes, lock waits) to `log`: what `main` calls after loading the `.env` files.
pub async fn seed_with(
    signals: &EnvSignals,
    options: &SeedOptions,
    prompt: &mut (dyn Prompt + Send),
    log: &mut (dyn Write + Send),
) -> Result<SeedReport, SeedError> {
    let env = signals.environment()?;
    let target = resolve_target(options.database_url.as_deref())?;
    run_with(options, env, &target, prompt, log).await
}

/// Runs the seeder against `target` in environment `env` (already checked by
/// [`EnvSignals::environment`]), without a terminal.
pub async fn run(
    options: &SeedOptions,
    env: AppEnv,
    target: &DbTarget,
) -> Result<SeedReport, SeedError> {
    run_with(
        options,
        env,
        target,
        &mut NoTerminal,
        &mut std::io::stderr(),
    )
    .await
}

/// [`run`] with a prompt and a log; see [`seed_with`].
pub async fn run_with(
    options: &SeedOptions,
    env: AppEnv,
    target: &DbTarget,
    prompt: &mut (dyn Prompt + Send),
    log: &mut (dyn Write + Send),
) -> Result<SeedReport, SeedError> {
    let started = Instant::now();
    let sqlite_file =
        (target.backend == DbBackend::Sqlite).then(|| PathBuf::from(target.database()));
    scale::check_scale(options.scale, sqlite_file.as_deref())?;
    if env == AppEnv::Production {
        return Err(SeedError::Refused {
            signal: "environment production".into(),
            reason: "the seeder never writes to production".into(),
        });
    }
    let settings = PoolSettings {
        // The seeder runs one step at a time; a spare connection or two serve the
        // service's own short transactions (throttle counters) beside an open one.
        max_connections: 4,
        schema: Some("public".to_owned()),
        ..PoolSettings::tool("seeder")
    };
    let db = connection::connect(target, &settings)
        .await
        .map_err(|error| match error {
            ConnectError::Connect { target, source } => SeedError::Connect { target, source },
            ConnectError::Config(config) => SeedError::Target(config),
        })?;
    let result = run_on(&db, options, env, target, started, prompt, log).await;
    db.close().await.ok();
    result
}

/// PostgreSQL: the seeder writes system roles and every tenant's rows, which row-level
/// security forbids to any role but a superuser or a BYPASSRLS one (such as the schema
/// owner of the migrations). Said before anything is written, in those words, rather than
/// as a permission error halfway.
async fn refuse_a_role_behind_row_security(db: &DatabaseConnection) -> Result<(), SeedError> {
    let Some((role, bound)) = service::connection::row_security_role(db).await? else {
        return Ok(());
    };
    if !bound {
        return Ok(());
    }
    Err(SeedError::Refused {
        signal: format!("the database role {role}"),
        reason: "it is neither a superuser nor BYPASSRLS, and the seeder writes system roles \
                 and every tenant's rows: connect as the schema owner the migrations run as"
            .into(),
    })
}

async fn run_on(
    db: &DatabaseConnection,
    options: &SeedOptions,
    env: AppEnv,
    target: &DbTarget,
    started: Instant,
    prompt: &mut (dyn Prompt + Send),
    log: &mut (dyn Write + Send),
) -> Result<SeedReport, SeedError> {
    // Read-only checks first: the database's own word on its environment.
    let recorded = read_recorded_env(db).await?;
    if recorded.is_production() {
        return Err(SeedError::Refused {
            signal:
                "the database's environment marker (database_metadata.environment = production)"
                    .into(),
            reason: "the seeder never writes to production".into(),
        });
    }
    if recorded.conflicts_with(env) {
        return Err(SeedError::Refused {
            signal: format!("the database's environment marker ({recorded})"),
            reason: format!("it does not match APP_ENV={env}"),
        });
    }
    if let RecordedEnv::Unknown(value) = &recorded {
        return Err(SeedError::Refused {
            signal: format!("the database's environment marker ({value:?})"),
            reason: "it is not a known environment".into(),
        });
    }

    refuse_a_role_behind_row_security(db).await?;

    let pending = Migrator::get_pending_migrations_read_only(db).await?.len();
    if pending > 0 && !env.is_disposable() {
        return Err(SeedError::PendingMigrations {
            env,
            count: pending,
        });
    }
    if options.reset && !env.is_disposable() {
        reset::refuse_to_delete_audit_history(db, env).await?;
    }
    if !env.is_disposable() {
        // Said before asking, and also when the phrase comes from --confirm, so the
        // job's log records what was deleted.
        write!(log, "{}", reset::describe_changes(db, options, env).await?)?;
        let question = if options.reset {
            format!("This deletes the rows listed above from the {env} database.")
        } else {
            format!("This writes to the {env} database.")
        };
        confirm_environment(env, options.confirm.as_deref(), prompt, log, &question)?;
    }

    // One seeder at a time: a second one waits here, then reloads the same rows.
    let mut waited_for = None;
    let lock = SeedLock::acquire(target, options.lock_timeout, |holder| {
        let _ = writeln!(log, "seeder: waiting for another seeder ({holder})");
        waited_for = Some(holder.to_owned());
    })
    .await?;
    // The rows are counted before the lock is released: a seeder waiting for it may
    // rebuild the schema, and a table dropped under the count would fail this run.
    let result = match seed_locked(db, options, env, target, log).await {
        Ok(loaded) => row_counts(db)
            .await
            .map(|counts| (loaded, counts))
            .map_err(SeedError::from),
        Err(e) => Err(e),
    };
    let released = lock.release().await;
    let result = result.and_then(|done| released.map(|()| done));
    let (
        (migrations_applied, tenants, users, (access, second_factors, compliance), scale),
        row_counts,
    ) = result?;

    Ok(SeedReport {
        environment: env,
        target: target.masked_url(),
        backend: target.backend,
        profile: options.profile,
        migrations_applied,
        tenants,
        users,
        access,
        second_factors,
        compliance,
        row_counts,
        scale,
        waited_for,
        elapsed: started.elapsed(),
    })
}

/// Held for a whole run, so seeders of one database take turns: the seeder's
/// [`LockPurpose::Seed`] lock (a session lock on PostgreSQL and MariaDB, a file lock on
/// SQLite; all freed if the process dies) on a connection of its own.
struct SeedLock {
    lock: MigrationLock,
    connection: DatabaseConnection,
}

impl SeedLock {
    async fn acquire(
        target: &DbTarget,
        timeout: std::time::Duration,
        on_wait: impl FnMut(&str),
    ) -> Result<Self, SeedError> {
        let connection = migration::cli::connect(target, None).await?;
        match MigrationLock::acquire_for(&connection, LockPurpose::Seed, timeout, on_wait).await {
            Ok(lock) => Ok(SeedLock { lock, connection }),
            Err(e) => {
                connection.close().await.ok();
                Err(e.into())
            }
        }
    }

    async fn release(self) -> Result<(), SeedError> {
        let released = self.lock.release(&self.connection).await;
        self.connection.close().await.ok();
        Ok(released?)
    }
}

type Loaded = (
    usize,
    Vec<TenantLine>,
    Vec<UserLine>,
    (
        access::AccessReport,
        Vec<identity::SecondFactorLine>,
        compliance::ComplianceLine,
    ),
    Option<scale::ScaleReport>,
);

/// Migrate, reset and load, under the seeder lock.
async fn seed_locked(
    db: &DatabaseConnection,
    options: &SeedOptions,
    env: AppEnv,
    target: &DbTarget,
    log: &mut (dyn Write + Send),
) -> Result<Loaded, SeedError> {
    // Read before anything is written: outside local and test, sealed fixtures need the
    // environment's own keys, and a missing key ring refuses the run here.
    let keys = match &options.field_keys {
        Some(keys) => keys.clone(),
        None => Arc::new(KeyRing::for_tool(env).map_err(|e| SeedError::Refused {
            signal: "FIELD_ENCRYPTION_KEYS".to_owned(),
            reason: e.to_string(),
        })?),
    };
    let migrations_applied = if env.is_disposable() {
        let settings = RunSettings {
            lock_timeout: options.lock_timeout,
            ..RunSettings::new(env)
        };
        // The audit trail is append-only, so a reset that would empty it rebuilds the
        // schema instead: every migration rolled back and applied again (local and test
        // only; refused above elsewhere). Decided under the lock: another seeder may
        // have written the trail while this one waited.
        let rebuild = options.reset && reset::audit_rows(db).await? > 0;
        let rebuilt = if rebuild {
            reset::refuse_unknown_tables(db).await?;
            writeln!(
                log,
                "seeder: the audit trail is append-only; rebuilding the {env} schema to reset it"
            )?;
            migration::cli::rebuild(target, None, &settings, &mut std::io::sink(), log).await?
        } else {
            0
        };
        rebuilt
            + migration::cli::apply_pending(target, None, &settings, &mut std::io::sink(), log)
                .await?
    } else {
        // Checked again under the lock: the trail may have been written meanwhile.
        if options.reset {
            reset::refuse_to_delete_audit_history(db, env).await?;
        }
        // Nothing is pending here (checked above): only the marker may be missing.
        record_env_if_absent(db, env).await?;
        0
    };

    let scale_writer = options
        .scale_writer
        .unwrap_or_else(|| scale::ScaleWriter::for_backend(target.backend));
    if options.scale > 0 {
        scale::check_writer(db, scale_writer).await?;
    }

    let profile = options.profile.profile();
    let loaded = async {
        let txn = service::begin_write(db).await?;
        if options.reset {
            reset::reset(&txn).await?;
        } else {
            reset::refuse_if_seeded(&txn, &profile).await?;
        }
        let loaded = load(&txn, options, &profile, keys).await?;
        txn.commit().await?;
        Ok(loaded)
    }
    .await
    .map_err(explain_collision)?;
    let (tenants, users, access) = loaded;

    let scale = if options.scale > 0 {
        let (deps, _) = Deps::deterministic(
            fixture_config(),
            fixture_epoch(),
            profile_namespace(options.profile),
            options.seed,
        );
        let start = fixture_epoch() + Duration::days(1);
        Some(
            scale::load_scale(
                db,
                &deps,
                profile_namespace(options.profile),
                options.seed,
                options.scale,
                start,
                scale_writer,
            )
            .await
            .map_err(explain_collision)?,
        )
    } else {
        None
    };
    Ok((migrations_applied, tenants, users, access, scale))
}

/// A unique or foreign-key violation during the reset or load means rows the seeder did
/// not write are in the way (its own rows never collide): say so, not just the driver.
fn explain_collision(error: SeedError) -> SeedError {
    let db_error = match &error {
        SeedError::Db(e) => e,
        SeedError::Fixture {
            source: ServiceError::Db(e),
            ..
        } => e,
        _ => return error,
    };
    let check = match db_error.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => "a uniqueness check",
        Some(SqlErr::ForeignKeyConstraintViolation(_)) => "a foreign-key check",
        _ => return error,
    };
    SeedError::Collision {
        check,
        detail: db_error.to_string(),
    }
}

/// Wraps a service error with the fixture row it came from.
pub(crate) fn fixture_error(fixture: impl Into<String>) -> impl Fn(ServiceError) -> SeedError {
    let fixture = fixture.into();
    move |source| SeedError::Fixture {
        fixture: fixture.clone(),
        source,
    }
}

async fn load<C>(
    db: &C,
    options: &SeedOptions,
    profile: &Profile,
    keys: Arc<KeyRing>,
) -> Result<
    (
        Vec<TenantLine>,
        Vec<UserLine>,
        (
            access::AccessReport,
            Vec<identity::SecondFactorLine>,
            compliance::ComplianceLine,
        ),
    ),
    SeedError,
>
where
    C: ConnectionTrait + TransactionTrait + 'static,
{
    let (deps, clock) = Deps::deterministic(
        fixture_config(),
        fixture_epoch(),
        profile_namespace(options.profile),
        options.seed,
    );
    let deps = deps.with_keys(keys);
    let meta = RequestMeta::system();
    let step = Duration::seconds(1);
    let mut tenant_ids: HashMap<&str, TenantId> = HashMap::new();
    let mut owners: HashMap<&str, UserId> = HashMap::new();
    let mut tenant_lines = Vec::new();
    let mut user_lines = Vec::new();

    for fixture in profile.users {
        let user = identity::register(db, &deps, fixture, &meta).await?;
        clock.advance(step);

        let tenant = profile
            .tenants
            .iter()
            .find(|t| t.slug == fixture.tenant)
            .expect("every fixture user names a tenant of its profile");
        if fixture.role == memberships::MembershipRole::Owner {
            let line =
                tenancy::create_owned(db, &deps, user.id, tenant, fixture.email, &meta).await?;
            tenant_ids.insert(tenant.slug, line.id);
            owners.insert(tenant.slug, user.id);
            tenant_lines.push(line);
        } else {
            let (tenant_id, owner) = (
                *tenant_ids
                    .get(tenant.slug)
                    .expect("owners are listed before members"),
                *owners
                    .get(tenant.slug)
                    .expect("owners are listed before members"),
            );
            tenancy::join(
                db,
                &deps,
                tenant_id,
                owner,
                user.id,
                fixture.role,
                fixture.email,
                &meta,
            )
            .await?;
        }
        clock.advance(step);

        if fixture.signs_in {
            identity::sign_in(db, &deps, user.id, fixture.email, &meta).await?;
            clock.advance(step);
        }
        user_lines.push(UserLine {
            id: user.id,
            email: fixture.email,
            display_name: fixture.display_name,
            tenant: fixture.tenant,
            role: fixture.role.to_value(),
            persona: fixture.persona,
        });
    }
    if let Some(alice) = user_lines.iter().find(|u| u.email == "alice@acme.com") {
        identity::sign_in_on_mobile(db, &deps, alice.id, alice.email).await?;
    }
    let tenants: access::Tenants = tenant_ids
        .iter()
        .map(|(slug, id)| (*slug, (*id, owners[slug])))
        .collect();
    let users: HashMap<&str, UserId> = user_lines.iter().map(|u| (u.email, u.id)).collect();
    let access = access::load_access(db, &deps, &clock, profile, &tenants, &users).await?;
    // Last, so the randomness drawn for everything above is what it was before.
    let mut second_factors = Vec::new();
    if let Some(alice) = user_lines.iter().find(|u| u.email == "alice@acme.com") {
        second_factors
            .push(identity::second_factor(db, &deps, alice.id, alice.email, &meta).await?);
        clock.advance(step);
        identity::passkey(db, &deps, alice.id, alice.email, &meta).await?;
        clock.advance(step);
    }
    let compliance = compliance::load(
        db,
        &deps,
        &clock,
        &tenant_ids,
        &owners,
        &users,
        profile::SHARED_PASSWORD,
    )
    .await?;
    agents::load(db, &deps, &clock, &tenant_ids, &owners).await?;
    rental::load(db, &deps, &clock, &tenant_ids, &owners).await?;
    records::load(db, &deps, &clock, &tenant_ids, &users).await?;
    billing::load(db, &deps, &clock, &tenant_ids, &owners).await?;
    Ok((
        tenant_lines,
        user_lines,
        (access, second_factors, compliance),
    ))
}

async fn row_counts(db: &DatabaseConnection) -> Result<Vec<(&'static str, u64)>, DbErr> {
    Ok(vec![
        ("tenants", tenants::Entity::find().count(db).await?),
        ("users", users::Entity::find().count(db).await?),
        (
            "user_profiles",
            user_profiles::Entity::find().count(db).await?,
        ),
        ("memberships", memberships::Entity::find().count(db).await?),
        ("sessions", sessions::Entity::find().count(db).await?),
        (
            "refresh_tokens",
            refresh_tokens::Entity::find().count(db).await?,
        ),
        (
            "roles",
            entity::access::roles::Entity::find().count(db).await?,
        ),
        (
            "role_assignments",
            entity::access::role_assignments::Entity::find()
                .count(db)
                .await?,
        ),
        (
            "teams",
            entity::tenancy::teams::Entity::find().count(db).await?,
        ),
        (
            "invitations",
            entity::tenancy::invitations::Entity::find()
                .count(db)
                .await?,
        ),
        (
            "api_keys",
            entity::identity::api_keys::Entity::find().count(db).await?,
        ),
        (
            "mfa_factors",
            entity::identity::mfa_factors::Entity::find()
                .count(db)
                .await?,
        ),
        (
            "session_anomaly_reports",
            entity::identity::session_anomaly_reports::Entity::find()
                .count(db)
                .await?,
        ),
        (
            "passkeys",
            entity::identity::passkeys::Entity::find().count(db).await?,
        ),
        ("audit_logs", audit_logs::Entity::find().count(db).await?),
        (
            "audit_chain_heads",
            entity::audit::audit_chain_heads::Entity::find()
                .count(db)
                .await?,
        ),
        (
            "privacy_policies",
            entity::compliance::privacy_policies::Entity::find()
                .count(db)
                .await?,
        ),
        (
            "consent_records",
            entity::compliance::consent_records::Entity::find()
                .count(db)
                .await?,
        ),
        (
            "deletion_requests",
            entity::compliance::deletion_requests::Entity::find()
                .count(db)
                .await?,
        ),
        (
            "agent_tasks",
            entity::agents::agent_tasks::Entity::find()
                .count(db)
                .await?,
        ),
        (
            "agent_results",
            entity::agents::agent_results::Entity::find()
                .count(db)
                .await?,
        ),
        (
            "properties",
            entity::rental::properties::Entity::find().count(db).await?,
        ),
        (
            "records",
            entity::records::records::Entity::find().count(db).await?,
        ),
        (
            "record_versions",
            entity::records::record_versions::Entity::find()
                .count(db)
                .await?,
        ),
        (
            "access_grants",
            entity::records::access_grants::Entity::find()
                .count(db)
                .await?,
        ),
        (
            "billing_plans",
            entity::billing::billing_plans::Entity::find()
                .count(db)
                .await?,
        ),
        (
            "billing_subscriptions",
            entity::billing::billing_subscriptions::Entity::find()
                .count(db)
                .await?,
        ),
        (
            "usage_records",
            entity::billing::usage_records::Entity::find()
                .count(db)
                .await?,
        ),
        (
            "payment_customers",
            entity::billing::payment_customers::Entity::find()
                .count(db)
                .await?,
        ),
        (
            "payment_methods",
            entity::billing::payment_methods::Entity::find()
                .count(db)
                .await?,
        ),
        (
            "payment_intents",
            entity::billing::payment_intents::Entity::find()
                .count(db)
                .await?,
        ),
    ])
}
