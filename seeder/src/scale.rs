//! `--scale N`: N synthetic tenants on top of the profile, for benchmarks and load
//! tests. Each gets 10 users (profile, membership, a session with its refresh token)
//! and 20 audit events. Names come from `fake` driven by a ChaCha RNG seeded with
//! `--seed`; emails and ids from the row index; so the same N and seed give the same
//! rows.
//!
//! One generator makes the rows; the writer depends on the backend ([`ScaleWriter`]):
//! PostgreSQL takes them through `COPY ... FROM STDIN`, the others as multi-row inserts.
//! Either way each transaction holds whole tenants, so a failure halfway leaves only
//! complete tenants behind.
//!
//! Every synthetic user shares one password hash (of the shared fixture password):
//! hashing a million passwords would measure argon2, not the database.

use crate::SeedError;
use crate::profile::SHARED_PASSWORD;
use chrono::{DateTime, Duration, Utc};
use entity::agents::agent_tasks::{self, TaskStatus};
use entity::audit::audit_logs::{self, AuditOutcome};
use entity::audit::{audit_chain_heads, chain};
use entity::billing::usage_records;
use entity::identity::sessions::AssuranceLevel;
use entity::identity::{refresh_tokens, sessions, user_profiles, users};
use entity::records::access_grants::{self, GrantAccess, GrantKind};
use entity::records::records::{self, RecordType};
use entity::tenancy::memberships::{self, MembershipRole, MembershipStatus};
use entity::tenancy::tenants::{self, DataRegion, IsolationLevel, PlanTier};
use entity::{
    AccessGrantId, AgentTaskId, AuditLogId, MembershipId, PasswordHash, RecordId, RefreshTokenId,
    SealedBytes, SessionId, TenantId, TokenHash, UsageRecordId, UserId, UserProfileId,
};
use fake::Fake;
use fake::faker::company::raw::CompanyName;
use fake::faker::name::raw::Name;
use fake::locales::{EN, JA_JP};
use fake::rand::{Rng, RngExt, SeedableRng};
use fake_chacha::ChaCha8Rng;
use sea_orm::ActiveValue::Set;
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, IntoActiveModel,
};
use serde_json::json;
use service::crypto::{FieldSlot, KeyRing};
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

mod copy;

pub use copy::copy_text_field;

pub const USERS_PER_TENANT: usize = 10;
pub const EVENTS_PER_TENANT: usize = 20;
/// Protected records per tenant: the owner's notes about its first members.
pub const RECORDS_PER_TENANT: usize = 2;
/// Queued agent tasks per tenant.
pub const TASKS_PER_TENANT: usize = 3;
/// Usage records per tenant.
pub const USAGE_PER_TENANT: usize = 5;
/// Rows one synthetic tenant adds: the tenant, five rows per user, the audit events and
/// their chain's head, its records and one access grant, its tasks and its usage.
pub const ROWS_PER_TENANT: u64 = 1
    + 5 * USERS_PER_TENANT as u64
    + EVENTS_PER_TENANT as u64
    + 1
    + RECORDS_PER_TENANT as u64
    + 1
    + TASKS_PER_TENANT as u64
    + USAGE_PER_TENANT as u64;
/// A generous upper bound of bytes on disk per tenant (rows plus indexes).
const BYTES_PER_TENANT: u64 = 64 * 1024;
/// The most tenants one run adds: beyond this, write a purpose-built loader.
pub const MAX_SCALE: u32 = 1_000_000;

/// How the synthetic rows reach the database. The rows are the same either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaleWriter {
    /// Multi-row `INSERT`s: every backend.
    Inserts {
        rows_per_statement: usize,
        tenants_per_transaction: u32,
    },
    /// `COPY ... FROM STDIN`, one per table per transaction: PostgreSQL only, and only
    /// for a role that row-level security does not apply to (PostgreSQL refuses
    /// `COPY FROM` into a table whose policies apply to the caller).
    Copy { tenants_per_transaction: u32 },
}

impl ScaleWriter {
    /// The fastest writer for `backend`, with its measured batch sizes.
    pub fn for_backend(backend: DbBackend) -> Self {
        match backend {
            DbBackend::Postgres => Self::Copy {
                tenants_per_transaction: COPY_TENANTS_PER_TRANSACTION,
            },
            other => Self::inserts_for(other),
        }
    }

    /// Multi-row inserts with the batch sizes measured for `backend`.
    pub fn inserts_for(backend: DbBackend) -> Self {
        let (rows_per_statement, tenants_per_transaction) = match backend {
            DbBackend::Postgres => POSTGRES_INSERT_BATCH,
            DbBackend::MySql => MYSQL_INSERT_BATCH,
            _ => SQLITE_INSERT_BATCH,
        };
        Self::Inserts {
            rows_per_statement,
            tenants_per_transaction,
        }
    }

    fn tenants_per_transaction(self) -> u32 {
        match self {
            Self::Inserts {
                tenants_per_transaction,
                ..
            }
            | Self::Copy {
                tenants_per_transaction,
            } => tenants_per_transaction.max(1),
        }
    }
}

// Batch sizes, measured with the seeder on 1,000 to 2,000 synthetic tenants (71 rows
// each) on fresh databases, TCP_NODELAY on, on a shared 2-core machine (figures vary
// by about 15% between runs). Rows per INSERT statement matter little once the client
// no longer waits on Nagle's algorithm (what used to look like a cliff above ~64 rows
// per statement on PostgreSQL was SQLx 0.9 leaving TCP_NODELAY off: a statement larger
// than one TCP segment stalled ~40 ms on the delayed ACK). Fewer, larger transactions
// help where each commit syncs to disk; a transaction is still whole tenants.
//
// (rows per statement, tenants per transaction) -> rows/s:
// - PostgreSQL 15 inserts: (50, 50) 51k; (250, 50) 57k; (250, 200) 55-60k; (1000, 200) 55k.
// - MariaDB 10.11: (50, 50) 57-72k; (250, 50) 65-68k; (250, 200) 82-84k; (250, 1000) 79-84k;
//   (500, 200) 47k and (1000, 200) 52k in a noisier run.
// - SQLite: (50, 50) 51k; (250, 50) 68k; (100, 200) 97k; (250, 200) 105k;
//   (250, 1000) 119-123k; (500, 1000) 110k.
// - PostgreSQL COPY, tenants per transaction: 50: 55-64k; 200: 63-74k; 500: 71-73k;
//   1000: 64-70k; 2000: 71-83k. Past 200 the commits cost less than the noise.
const POSTGRES_INSERT_BATCH: (usize, u32) = (250, 200);
const MYSQL_INSERT_BATCH: (usize, u32) = (250, 200);
const SQLITE_INSERT_BATCH: (usize, u32) = (250, 1000);
const COPY_TENANTS_PER_TRANSACTION: u32 = 200;

#[derive(Debug, Clone, Copy)]
pub struct ScaleReport {
    pub tenants: u32,
    pub rows: u64,
    pub elapsed: std::time::Duration,
}

impl ScaleReport {
    pub fn rows_per_second(&self) -> f64 {
        self.rows as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Refuses sizes that cannot fit: over [`MAX_SCALE`], or (for a local SQLite file) over
/// the free space of its disk.
pub fn check_scale(n: u32, sqlite_file: Option<&std::path::Path>) -> Result<(), SeedError> {
    if n > MAX_SCALE {
        return Err(SeedError::Scale(format!(
            "--scale {n} is over the maximum of {MAX_SCALE} tenants"
        )));
    }
    if let Some(file) = sqlite_file {
        let dir = file.parent().unwrap_or(std::path::Path::new("."));
        if let Ok(free) = fs4::available_space(dir) {
            let needed = u64::from(n) * BYTES_PER_TENANT;
            if needed > free {
                return Err(SeedError::Scale(format!(
                    "--scale {n} needs about {} MiB and {} has {} MiB free",
                    needed / (1024 * 1024),
                    dir.display(),
                    free / (1024 * 1024)
                )));
            }
        }
    }
    Ok(())
}

fn id(namespace: &Uuid, label: String) -> Uuid {
    Uuid::new_v5(namespace, label.as_bytes())
}

/// Refuses a writer the connection cannot use, before the seeder writes anything:
/// COPY off PostgreSQL, or COPY as a role that row-level security applies to.
pub async fn check_writer(db: &DatabaseConnection, writer: ScaleWriter) -> Result<(), SeedError> {
    if let ScaleWriter::Copy { .. } = writer {
        copy::check_copy_allowed(db).await?;
    }
    Ok(())
}

/// Adds `n` synthetic tenants with `writer`. `start` is the fixed clock's reading for
/// the first.
pub async fn load_scale(
    db: &DatabaseConnection,
    deps: &service::Deps,
    namespace: Uuid,
    seed: u64,
    n: u32,
    start: DateTime<Utc>,
    writer: ScaleWriter,
) -> Result<ScaleReport, SeedError> {
    let started = Instant::now();
    let password = service::input::Password::for_verification(SHARED_PASSWORD)
        .expect("the fixture password is valid");
    let shared_hash = service::identity::hash_password(deps, &password)
        .await
        .map_err(|source| SeedError::Fixture {
            fixture: "scale password".into(),
            source,
        })?;
    let progress = indicatif::ProgressBar::new(u64::from(n)).with_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:40}] {pos}/{len} tenants, {per_sec}, eta {eta}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    progress.set_message("scale");
    // Rows are generated (and, for COPY, rendered) on a blocking thread while the
    // database writes the previous batch: the client's work hides behind the server's.
    let (sender, mut batches) = tokio::sync::mpsc::channel(2);
    let keys = Arc::clone(&deps.keys);
    let generator = tokio::task::spawn_blocking(move || {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5ca1_e5ca_1e00_0000);
        let per_transaction = writer.tenants_per_transaction();
        let mut first = 1;
        while first <= n {
            let last = first.saturating_add(per_transaction - 1).min(n);
            let batch = Batch::generate(
                &namespace,
                &mut rng,
                &shared_hash,
                &keys,
                first..=last,
                start,
            );
            let prepared = match writer {
                ScaleWriter::Inserts {
                    rows_per_statement, ..
                } => Ok(Prepared::Rows {
                    batch: Box::new(batch),
                    rows_per_statement: rows_per_statement.max(1),
                }),
                ScaleWriter::Copy { .. } => {
                    copy::render(batch).map(|tables| Prepared::Copy(Box::new(tables)))
                }
            };
            // A closed channel: the writer stopped on an error, which it reports.
            if sender.blocking_send((last - first + 1, prepared)).is_err() || last == n {
                break;
            }
            first = last + 1;
        }
    });
    let mut rows = 0;
    while let Some((tenants, prepared)) = batches.recv().await {
        rows += match prepared? {
            Prepared::Rows {
                batch,
                rows_per_statement,
            } => {
                let txn = service::begin_write(db).await?;
                let written = batch.insert(&txn, rows_per_statement).await?;
                txn.commit().await?;
                written
            }
            Prepared::Copy(tables) => copy::write(db, &tables).await?,
        };
        progress.inc(u64::from(tenants));
    }
    generator
        .await
        .map_err(|e| SeedError::Scale(format!("the row generator stopped: {e}")))?;
    progress.finish_and_clear();
    Ok(ScaleReport {
        tenants: n,
        rows,
        elapsed: started.elapsed(),
    })
}

/// A batch ready for its writer.
enum Prepared {
    Rows {
        batch: Box<Batch>,
        rows_per_statement: usize,
    },
    Copy(Box<copy::CopyTables>),
}

#[derive(Default)]
struct Batch {
    tenants: Vec<tenants::ActiveModel>,
    users: Vec<users::ActiveModel>,
    profiles: Vec<user_profiles::ActiveModel>,
    memberships: Vec<memberships::ActiveModel>,
    sessions: Vec<sessions::ActiveModel>,
    tokens: Vec<refresh_tokens::ActiveModel>,
    events: Vec<audit_logs::ActiveModel>,
    chain_heads: Vec<audit_chain_heads::ActiveModel>,
    records: Vec<records::ActiveModel>,
    grants: Vec<access_grants::ActiveModel>,
    tasks: Vec<agent_tasks::ActiveModel>,
    usage: Vec<usage_records::ActiveModel>,
}

impl Batch {
    fn generate(
        ns: &Uuid,
        rng: &mut ChaCha8Rng,
        shared_hash: &PasswordHash,
        keys: &KeyRing,
        range: std::ops::RangeInclusive<u32>,
        start: DateTime<Utc>,
    ) -> Self {
        let mut b = Batch::default();
        for t in range {
            let tenant_id = TenantId(id(ns, format!("scale/tenant/{t}")));
            let at = start + Duration::seconds(i64::from(t));
            let region = [
                DataRegion::Us,
                DataRegion::Eu,
                DataRegion::Us,
                DataRegion::Us,
                DataRegion::Jp,
            ][t as usize % 5];
            let japanese = region == DataRegion::Jp;
            let company: String = if japanese {
                CompanyName(JA_JP).fake_with_rng(rng)
            } else {
                CompanyName(EN).fake_with_rng(rng)
            };
            b.tenants.push(tenants::ActiveModel {
                id: Set(tenant_id),
                slug: Set(format!("scale-{t:06}")),
                name: Set(company.chars().take(255).collect()),
                plan_tier: Set(
                    [PlanTier::Free, PlanTier::Pro, PlanTier::Enterprise][t as usize % 3]
                ),
                isolation_level: Set(IsolationLevel::Shared),
                data_region: Set(region),
                features: Set(json!({})),
                is_active: Set(true),
                transfer_regions: Set(json!([])),
                created_at: Set(at),
                updated_at: Set(at),
            });
            let mut user_ids = Vec::with_capacity(USERS_PER_TENANT);
            for i in 0..USERS_PER_TENANT {
                let user_id = UserId(id(ns, format!("scale/user/{t}/{i}")));
                user_ids.push(user_id);
                let name: String = if japanese {
                    Name(JA_JP).fake_with_rng(rng)
                } else {
                    Name(EN).fake_with_rng(rng)
                };
                b.users.push(users::ActiveModel {
                    id: Set(user_id),
                    email: Set(format!("user{i:02}@scale-{t:06}.example")),
                    password_hash: Set(shared_hash.clone()),
                    is_active: Set(true),
                    is_verified: Set(rng.random_bool(0.8)),
                    last_login_at: Set(None),
                    failed_login_count: Set(0),
                    locked_until: Set(None),
                    created_at: Set(at),
                    updated_at: Set(at),
                });
                b.profiles.push(user_profiles::ActiveModel {
                    id: Set(UserProfileId(id(ns, format!("scale/profile/{t}/{i}")))),
                    user_id: Set(user_id),
                    display_name: Set(name.chars().take(100).collect()),
                    phone: Set(None),
                    avatar_url: Set(None),
                    timezone: Set(if japanese { "Asia/Tokyo" } else { "UTC" }.to_owned()),
                    language: Set(if japanese { "ja" } else { "en" }.to_owned()),
                    preferences: Set(json!({})),
                    created_at: Set(at),
                    updated_at: Set(at),
                });
                b.memberships.push(memberships::ActiveModel {
                    id: Set(MembershipId(id(ns, format!("scale/membership/{t}/{i}")))),
                    tenant_id: Set(tenant_id),
                    user_id: Set(user_id),
                    role: Set(if i == 0 {
                        MembershipRole::Owner
                    } else {
                        MembershipRole::Member
                    }),
                    status: Set(MembershipStatus::Active),
                    joined_at: Set(at),
                    created_at: Set(at),
                    updated_at: Set(at),
                });
                let session_id = SessionId(id(ns, format!("scale/session/{t}/{i}")));
                b.sessions.push(sessions::ActiveModel {
                    id: Set(session_id),
                    user_id: Set(user_id),
                    ip_address: Set(Some(format!("198.51.100.{}", rng.random_range(1..255)))),
                    user_agent: Set(Some("scale-seeder/1.0".to_owned())),
                    created_at: Set(at),
                    last_used_at: Set(at),
                    expires_at: Set(at + Duration::days(30)),
                    revoked_at: Set(None),
                    revoked_reason: Set(None),
                    aal: Set(AssuranceLevel::Aal1),
                    auth_methods: Set("password".to_owned()),
                    authenticated_at: Set(Some(at)),
                    device_hash: Set(None),
                    country: Set(None),
                    city: Set(None),
                    latitude: Set(None),
                    longitude: Set(None),
                });
                // A hash with no token behind it: synthetic sessions cannot be refreshed.
                let mut digest = [0u8; 32];
                rng.fill_bytes(&mut digest);
                b.tokens.push(refresh_tokens::ActiveModel {
                    id: Set(RefreshTokenId(id(ns, format!("scale/token/{t}/{i}")))),
                    session_id: Set(session_id),
                    token_hash: Set(TokenHash::new(
                        digest
                            .iter()
                            .map(|b| format!("{b:02x}"))
                            .collect::<String>(),
                    )),
                    parent_id: Set(None),
                    created_at: Set(at),
                    expires_at: Set(at + Duration::days(14)),
                    used_at: Set(None),
                    revoked_at: Set(None),
                    reissue_sealed: Set(None),
                });
            }
            // A new tenant's chain: links 1..=EVENTS_PER_TENANT, then its head.
            let mut prev_hash = chain::GENESIS;
            for k in 0..EVENTS_PER_TENANT {
                let event = [
                    "login",
                    "data_access",
                    "profile_data_access",
                    "data_export",
                    "logout",
                ][k % 5];
                let mut row = audit_logs::Model {
                    id: AuditLogId(id(ns, format!("scale/event/{t}/{k}"))),
                    tenant_id: Some(tenant_id),
                    actor_user_id: Some(user_ids[rng.random_range(0..USERS_PER_TENANT)]),
                    event_type: event.to_owned(),
                    resource_type: Some("user".to_owned()),
                    resource_id: Some(user_ids[rng.random_range(0..USERS_PER_TENANT)].to_string()),
                    outcome: AuditOutcome::Success,
                    risk_score: rng.random_range(0..20),
                    ip_address: None,
                    user_agent: None,
                    details: json!({ "synthetic": true }),
                    occurred_at: at + Duration::seconds(k as i64),
                    chain_id: tenant_id.0,
                    chain_seq: k as i64 + 1,
                    chain_version: chain::CURRENT_VERSION,
                    prev_hash: prev_hash.to_vec(),
                    hash: Vec::new(),
                };
                prev_hash = row
                    .chained()
                    .hash(chain::CURRENT_VERSION, &prev_hash)
                    .expect("the current chain version hashes");
                row.hash = prev_hash.to_vec();
                b.events.push(row.into_active_model().reset_all());
            }
            b.chain_heads.push(audit_chain_heads::ActiveModel {
                chain_id: Set(tenant_id.0),
                last_seq: Set(EVENTS_PER_TENANT as i64),
                last_hash: Set(prev_hash.to_vec()),
            });
            b.domain_rows(ns, rng, keys, t, tenant_id, &user_ids, at);
        }
        b
    }

    /// A tenant's protected records (by its owner, about its next members, sealed like
    /// the service seals them) and a read grant on the first member's, its queued agent
    /// tasks and its usage.
    #[allow(clippy::too_many_arguments)]
    fn domain_rows(
        &mut self,
        ns: &Uuid,
        rng: &mut ChaCha8Rng,
        keys: &KeyRing,
        t: u32,
        tenant_id: TenantId,
        user_ids: &[UserId],
        at: DateTime<Utc>,
    ) {
        const TYPES: [RecordType; 4] = [
            RecordType::Consultation,
            RecordType::LabResult,
            RecordType::Prescription,
            RecordType::Diagnosis,
        ];
        let owner = user_ids[0];
        for k in 0..RECORDS_PER_TENANT {
            let record_id = RecordId(id(ns, format!("scale/record/{t}/{k}")));
            let row = record_id.to_string();
            let body = format!(
                "Synthetic note {k}: blood pressure {}/{} mmHg.",
                rng.random_range(100..160),
                rng.random_range(60..100)
            );
            let sealed = keys
                .seal(
                    FieldSlot {
                        table: "records",
                        column: "body",
                        row: &row,
                    },
                    body.as_bytes(),
                )
                .expect("a uuid row id is a valid slot");
            self.records.push(records::ActiveModel {
                id: Set(record_id),
                tenant_id: Set(tenant_id),
                subject_id: Set(user_ids[1 + k]),
                author_id: Set(owner),
                record_type: Set(TYPES[(t as usize + k) % TYPES.len()]),
                title: Set(format!("Synthetic record {k}")),
                body: Set(SealedBytes::new(sealed)),
                version: Set(1),
                created_at: Set(at),
                updated_at: Set(at),
                updated_by: Set(None),
            });
        }
        self.grants.push(access_grants::ActiveModel {
            id: Set(AccessGrantId(id(ns, format!("scale/grant/{t}")))),
            tenant_id: Set(tenant_id),
            grantee_id: Set(user_ids[USERS_PER_TENANT - 1]),
            subject_id: Set(user_ids[1]),
            record_id: Set(None),
            access: Set(GrantAccess::Read),
            kind: Set(GrantKind::Grant),
            reason: Set("Synthetic care team".to_owned()),
            granted_by: Set(owner),
            starts_at: Set(at),
            expires_at: Set(at + Duration::days(90)),
            revoked_at: Set(None),
            revoked_by: Set(None),
            revoke_reason: Set(None),
            created_at: Set(at),
        });
        for k in 0..TASKS_PER_TENANT {
            self.tasks.push(agent_tasks::ActiveModel {
                id: Set(AgentTaskId(id(ns, format!("scale/task/{t}/{k}")))),
                tenant_id: Set(tenant_id),
                agent: Set(["summarize", "transcribe", "classify"][k % 3].to_owned()),
                payload: Set(json!({ "input": format!("synthetic {k}") })),
                status: Set(TaskStatus::Queued),
                priority: Set(rng.random_range(0..=100)),
                attempts: Set(0),
                max_attempts: Set(3),
                run_after: Set(at + Duration::minutes(k as i64)),
                locked_by: Set(None),
                locked_at: Set(None),
                heartbeat_at: Set(None),
                last_error: Set(None),
                created_by: Set(Some(owner)),
                created_at: Set(at),
                updated_at: Set(at),
                finished_at: Set(None),
            });
        }
        for k in 0..USAGE_PER_TENANT {
            self.usage.push(usage_records::ActiveModel {
                id: Set(UsageRecordId(id(ns, format!("scale/usage/{t}/{k}")))),
                tenant_id: Set(tenant_id),
                metric: Set(["api_calls", "agent_runs", "storage_gb"][k % 3].to_owned()),
                quantity: Set(rng.random_range(1..1_000)),
                idempotency_key: Set(format!("scale-{t}-{k}")),
                occurred_at: Set(at + Duration::hours(k as i64)),
                recorded_by: Set(Some(owner)),
                created_at: Set(at + Duration::hours(k as i64)),
            });
        }
    }

    /// Inserts in parent-to-child order, `rows_per_statement` rows per statement (under
    /// every backend's limit of bound parameters for the sizes measured).
    async fn insert<C: ConnectionTrait>(
        self,
        db: &C,
        rows_per_statement: usize,
    ) -> Result<u64, sea_orm::DbErr> {
        let n = rows_per_statement;
        let mut rows = 0;
        rows += insert_chunks::<tenants::Entity, _>(db, self.tenants, n).await?;
        rows += insert_chunks::<users::Entity, _>(db, self.users, n).await?;
        rows += insert_chunks::<user_profiles::Entity, _>(db, self.profiles, n).await?;
        rows += insert_chunks::<memberships::Entity, _>(db, self.memberships, n).await?;
        rows += insert_chunks::<sessions::Entity, _>(db, self.sessions, n).await?;
        rows += insert_chunks::<refresh_tokens::Entity, _>(db, self.tokens, n).await?;
        rows += insert_chunks::<audit_logs::Entity, _>(db, self.events, n).await?;
        rows += insert_chunks::<audit_chain_heads::Entity, _>(db, self.chain_heads, n).await?;
        rows += insert_chunks::<records::Entity, _>(db, self.records, n).await?;
        rows += insert_chunks::<access_grants::Entity, _>(db, self.grants, n).await?;
        rows += insert_chunks::<agent_tasks::Entity, _>(db, self.tasks, n).await?;
        rows += insert_chunks::<usage_records::Entity, _>(db, self.usage, n).await?;
        Ok(rows)
    }
}

async fn insert_chunks<E, C>(
    db: &C,
    models: Vec<E::ActiveModel>,
    rows_per_statement: usize,
) -> Result<u64, sea_orm::DbErr>
where
    E: EntityTrait,
    C: ConnectionTrait,
{
    let total = models.len() as u64;
    let mut models = models.into_iter().peekable();
    while models.peek().is_some() {
        let chunk: Vec<E::ActiveModel> = models.by_ref().take(rows_per_statement).collect();
        E::insert_many(chunk).exec_without_returning(db).await?;
    }
    Ok(total)
}
