//! The deterministic fixture loader behind `cargo run -p seeder` (DESIGN §7).
//!
//! Order of a run, each step before the next:
//! 1. refuse production on the process signals (`APP_ENV`, `MIGRATION_ENV`);
//! 2. connect and read the database's own environment marker, refusing production or
//!    a mismatch: all of this reads only;
//! 3. migrate (local and test only) and record the environment;
//! 4. reset and load the profile in one transaction, through the `service` operations,
//!    with a fixed clock, labelled UUID v5 ids and a seeded ChaCha RNG.

pub mod access;
pub mod profile;
pub mod scale;

use chrono::{DateTime, Duration, TimeZone, Utc};
use entity::audit::audit_logs;
use entity::identity::{refresh_tokens, sessions, user_profiles, users};
use entity::tenancy::{memberships, tenants};
use entity::{TenantId, UserId};
use migration::environment::{AppEnv, RecordedEnv, read_recorded_env, record_env_if_absent};
use migration::target::{DbTarget, TargetError};
use migration::{Migrator, MigratorTrait};
use profile::{Profile, ProfileName, SHARED_PASSWORD};
use sea_orm::{
    ActiveEnum, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, EntityTrait,
    PaginatorTrait, TransactionTrait,
};
use service::identity::{NewUser, create_session, register_user};
use service::input::{Language, Timezone};
use service::tenancy::{NewTenant, TenantCtx, add_member, create_tenant};
use service::{Deps, RequestMeta, ServiceConfig, ServiceError};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;
use uuid::Uuid;

/// The namespace of every fixture id: `Uuid::new_v5(FIXTURE_NAMESPACE, "<profile>")`
/// is the profile's namespace, and ids are v5 of `<table>/<key>#<n>` inside it.
pub const FIXTURE_NAMESPACE: Uuid = Uuid::from_u128(0x6d1f_0c4e_5b7a_4c55_9a3e_2f1d_7c00_5eed);

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
}

impl Default for SeedOptions {
    fn default() -> Self {
        Self {
            database_url: None,
            profile: ProfileName::Demo,
            seed: DEFAULT_SEED,
            reset: true,
            scale: 0,
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
    #[error(transparent)]
    Db(#[from] DbErr),
}

impl SeedError {
    pub fn is_refusal(&self) -> bool {
        matches!(self, SeedError::Refused { .. })
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
    pub row_counts: Vec<(&'static str, u64)>,
    pub scale: Option<scale::ScaleReport>,
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

/// The whole run, from the environment signals on: what `main` calls after loading
/// the `.env` files.
pub async fn seed(signals: &EnvSignals, options: &SeedOptions) -> Result<SeedReport, SeedError> {
    let env = signals.environment()?;
    let target = resolve_target(options.database_url.as_deref())?;
    run(options, env, &target).await
}

/// Runs the seeder against `target` in environment `env` (already checked by
/// [`EnvSignals::environment`]).
pub async fn run(
    options: &SeedOptions,
    env: AppEnv,
    target: &DbTarget,
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
    let db = Database::connect(target.connect_options(None))
        .await
        .map_err(|source| SeedError::Connect {
            target: target.masked_url(),
            source,
        })?;
    let result = run_on(&db, options, env, target, started).await;
    db.close().await.ok();
    result
}

async fn run_on(
    db: &DatabaseConnection,
    options: &SeedOptions,
    env: AppEnv,
    target: &DbTarget,
    started: Instant,
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

    let pending = Migrator::get_pending_migrations_read_only(db).await?.len();
    if pending > 0 && !env.is_disposable() {
        return Err(SeedError::PendingMigrations {
            env,
            count: pending,
        });
    }
    if pending > 0 {
        Migrator::up(db, None).await?;
    }
    record_env_if_absent(db, env).await?;

    let profile = options.profile.profile();
    let txn = service::begin_write(db).await?;
    if options.reset {
        reset(&txn).await?;
    } else {
        refuse_if_seeded(&txn, &profile).await?;
    }
    let (tenants, users, access) = load(&txn, options, &profile).await?;
    txn.commit().await?;

    let scale = if options.scale > 0 {
        let (deps, _) = Deps::deterministic(
            ServiceConfig::default(),
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
            )
            .await?,
        )
    } else {
        None
    };

    Ok(SeedReport {
        environment: env,
        target: target.masked_url(),
        backend: target.backend,
        profile: options.profile,
        migrations_applied: pending,
        tenants,
        users,
        access,
        row_counts: row_counts(db).await?,
        scale,
        elapsed: started.elapsed(),
    })
}

/// Empties every table the seeder fills, children first. The audit catalogue,
/// migration bookkeeping and environment marker are kept.
async fn reset<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    use entity::access::{
        permissions, policies, role_assignments, role_inheritance, role_permissions, roles,
    };
    use entity::tenancy::{invitations, team_members, teams};
    use sea_orm::sea_query::Expr;
    audit_logs::Entity::delete_many().exec(db).await?;
    role_assignments::Entity::delete_many().exec(db).await?;
    policies::Entity::delete_many().exec(db).await?;
    invitations::Entity::delete_many().exec(db).await?;
    team_members::Entity::delete_many().exec(db).await?;
    // MariaDB checks the parent key row by row: detach the tree before deleting it.
    teams::Entity::update_many()
        .col_expr(
            teams::Column::ParentId,
            Expr::value(Option::<uuid::Uuid>::None),
        )
        .exec(db)
        .await?;
    teams::Entity::delete_many().exec(db).await?;
    role_inheritance::Entity::delete_many().exec(db).await?;
    role_permissions::Entity::delete_many().exec(db).await?;
    roles::Entity::delete_many().exec(db).await?;
    permissions::Entity::delete_many().exec(db).await?;
    refresh_tokens::Entity::delete_many().exec(db).await?;
    sessions::Entity::delete_many().exec(db).await?;
    memberships::Entity::delete_many().exec(db).await?;
    user_profiles::Entity::delete_many().exec(db).await?;
    users::Entity::delete_many().exec(db).await?;
    tenants::Entity::delete_many().exec(db).await?;
    Ok(())
}

async fn refuse_if_seeded<C: ConnectionTrait>(db: &C, profile: &Profile) -> Result<(), SeedError> {
    use sea_orm::{ColumnTrait, QueryFilter};
    let slugs: Vec<&str> = profile.tenants.iter().map(|t| t.slug).collect();
    let existing: Vec<String> = tenants::Entity::find()
        .filter(tenants::Column::Slug.is_in(slugs))
        .all(db)
        .await?
        .into_iter()
        .map(|t| t.slug)
        .collect();
    if existing.is_empty() {
        Ok(())
    } else {
        Err(SeedError::AlreadySeeded(existing.join(", ")))
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
) -> Result<(Vec<TenantLine>, Vec<UserLine>, access::AccessReport), SeedError>
where
    C: ConnectionTrait + TransactionTrait,
{
    let (deps, clock) = Deps::deterministic(
        ServiceConfig::default(),
        fixture_epoch(),
        profile_namespace(options.profile),
        options.seed,
    );
    let meta = RequestMeta::system();
    let step = Duration::seconds(1);
    let mut tenant_ids: HashMap<&str, TenantId> = HashMap::new();
    let mut owners: HashMap<&str, UserId> = HashMap::new();
    let mut tenant_lines = Vec::new();
    let mut user_lines = Vec::new();

    for fixture in profile.users {
        let on_err = fixture_error(fixture.email);
        let mut new_user = NewUser::parse(fixture.email, SHARED_PASSWORD, fixture.display_name)
            .map_err(&on_err)?;
        new_user.timezone = Timezone::parse(fixture.timezone).map_err(&on_err)?;
        new_user.language = Language::parse(fixture.language).map_err(&on_err)?;
        let user = register_user(db, &deps, new_user, &meta)
            .await
            .map_err(&on_err)?;
        clock.advance(step);

        let tenant = profile
            .tenants
            .iter()
            .find(|t| t.slug == fixture.tenant)
            .expect("every fixture user names a tenant of its profile");
        if fixture.role == memberships::MembershipRole::Owner {
            let mut new_tenant = NewTenant::parse(tenant.slug, tenant.name).map_err(&on_err)?;
            new_tenant.plan_tier = tenant.plan_tier;
            new_tenant.data_region = tenant.data_region;
            new_tenant.features =
                serde_json::from_str(tenant.features).expect("fixture features are valid JSON");
            let (created, _) = create_tenant(db, &deps, user.id, new_tenant, &meta)
                .await
                .map_err(&on_err)?;
            tenant_ids.insert(tenant.slug, created.id);
            owners.insert(tenant.slug, user.id);
            tenant_lines.push(TenantLine {
                id: created.id,
                slug: tenant.slug,
                name: tenant.name,
                plan_tier: tenant.plan_tier.to_value(),
                data_region: tenant.data_region.to_value(),
                origin: tenant.origin,
            });
        } else {
            let (tenant_id, owner) = (
                *tenant_ids
                    .get(tenant.slug)
                    .expect("owners are listed before members"),
                *owners
                    .get(tenant.slug)
                    .expect("owners are listed before members"),
            );
            let ctx = TenantCtx::for_member(db, tenant_id, owner)
                .await
                .map_err(&on_err)?;
            add_member(db, &deps, &ctx, user.id, fixture.role, &meta)
                .await
                .map_err(&on_err)?;
        }
        clock.advance(step);

        if fixture.signs_in {
            // A session as a sign-in leaves one. Not `login` itself: sign-in keeps its
            // throttle counters and failure records out of any caller's transaction,
            // and this whole load is one transaction.
            create_session(db, &deps, user.id, &meta)
                .await
                .map_err(&on_err)?;
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
    // A second device for Alice, so "list my sessions" has something to list.
    if let Some(alice) = user_lines.iter().find(|u| u.email == "alice@acme.com") {
        let mobile = RequestMeta::new(None, Some("AcmeMobile/1.0 (seeded)"));
        create_session(db, &deps, alice.id, &mobile)
            .await
            .map_err(fixture_error(alice.email))?;
    }
    let tenants: access::Tenants = tenant_ids
        .iter()
        .map(|(slug, id)| (*slug, (*id, owners[slug])))
        .collect();
    let users: HashMap<&str, UserId> = user_lines.iter().map(|u| (u.email, u.id)).collect();
    let access = access::load_access(db, &deps, &clock, profile, &tenants, &users).await?;
    Ok((tenant_lines, user_lines, access))
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
        ("audit_logs", audit_logs::Entity::find().count(db).await?),
    ])
}
