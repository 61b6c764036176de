//! Access-control benchmarks. Prints figures; asserts nothing about time.
//!
//! 1. `has_permission` for a user whose role inherits through three roles, asked in a
//!    team five levels below the team the role was given on, against the same answer
//!    from a hand-written SQL query run through sqlx directly (no ORM), in the same
//!    process, on the same connection pool: PostgreSQL and SQLite.
//!    Both run as the runtime role inside the tenant's context on PostgreSQL.
//! 2. A tenant-scoped list (one tenant's newest audit events among 100 tenants) as
//!    the runtime role under row-level security, against the same query as the owner
//!    (a superuser, who bypasses it): PostgreSQL.
//! 3. Sign-in (argon2 at its cheapest, so the database work shows) and session
//!    validation (a refresh-token exchange) as the runtime role behind the walls,
//!    against the same calls as the owner: PostgreSQL.
//!
//! Run: `cargo bench -p tests --bench access` (PostgreSQL at TEST_POSTGRES_URL).

use entity::{TeamId, TenantId, UserId};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, TransactionTrait};
use service::access::{
    NewAssignment, Scope, add_role_parent, assign_role, create_role, grant_permission,
    has_permission,
};
use service::input::{RoleName, TeamName};
use service::tenancy::{TenantCtx, add_member, create_team};
use service::{Deps, RequestMeta};
use std::time::Instant;
use tests::fixtures;
use tests::{Backend, Start, TestDb, run_case};

const WARMUP: usize = 200;
const ROUNDS: usize = 3000;

fn main() {
    // SAFETY: set before any thread starts; the harness reads it to fail loudly
    // instead of skipping when a server is missing.
    unsafe { std::env::set_var("REQUIRE_BACKENDS", "sqlite,postgres") };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        for backend in [Backend::Postgres, Backend::Sqlite] {
            run_case(
                backend,
                "bench_has_permission",
                Start::Migrated,
                |t| async move {
                    bench_has_permission(&t).await;
                },
            )
            .await;
        }
        run_case(
            Backend::Postgres,
            "bench_identity_walls",
            Start::Migrated,
            |t| async move {
                bench_identity_walls(&t).await;
            },
        )
        .await;
        run_case(
            Backend::Postgres,
            "bench_rls_overhead",
            Start::Migrated,
            |t| async move {
                bench_rls_overhead(&t).await;
            },
        )
        .await;
    });
}

struct Setup {
    deps: Deps,
    ctx: TenantCtx,
    tenant: TenantId,
    user: UserId,
    deepest: TeamId,
}

/// A tenant with 200 members, 30 roles, a team chain five deep, and the user under test
/// holding `lead` on the top team, where lead -> senior -> junior -> (docs:read).
async fn setup(t: &TestDb) -> Setup {
    let (deps, _) = fixtures::deps_with(service::ServiceConfig {
        // Hashing is not what is measured; keep the set-up quick.
        argon2_memory_kib: 1024,
        argon2_iterations: 1,
        ..service::ServiceConfig::default()
    });
    let meta = RequestMeta::system();
    let owner = fixtures::user(&t.db, &deps, "owner").await;
    let tenant = fixtures::tenant(&t.db, &deps, "bench", &owner).await;
    let ctx = TenantCtx::for_member(&t.db, tenant.id, owner.id)
        .await
        .expect("owner");
    let mut teams = Vec::new();
    for name in ["L1", "L2", "L3", "L4", "L5"] {
        let team = create_team(
            &t.db,
            &deps,
            &ctx,
            &TeamName::parse(name).expect("valid"),
            teams.last().copied(),
            &meta,
        )
        .await
        .expect("team");
        teams.push(team.id);
    }
    let mut roles = Vec::new();
    for i in 0..30 {
        let role = create_role(
            &t.db,
            &deps,
            &ctx,
            &RoleName::parse(&format!("role{i}")).expect("valid"),
            None,
            &meta,
        )
        .await
        .expect("role");
        grant_permission(
            &t.db,
            &deps,
            &ctx,
            role.id,
            &format!("res{i}"),
            "read",
            &meta,
        )
        .await
        .expect("grant");
        roles.push(role);
    }
    let junior = &roles[0];
    grant_permission(&t.db, &deps, &ctx, junior.id, "docs", "read", &meta)
        .await
        .expect("grant");
    add_role_parent(&t.db, &deps, &ctx, roles[1].id, roles[0].id, &meta)
        .await
        .expect("senior -> junior");
    add_role_parent(&t.db, &deps, &ctx, roles[2].id, roles[1].id, &meta)
        .await
        .expect("lead -> senior");
    let mut user = None;
    for i in 0..200 {
        let member = fixtures::user(&t.db, &deps, &format!("member{i}")).await;
        add_member(
            &t.db,
            &deps,
            &ctx,
            member.id,
            entity::tenancy::memberships::MembershipRole::Member,
            &meta,
        )
        .await
        .expect("member");
        let role = &roles[if i == 0 { 2 } else { 3 + i % 27 }];
        let input = NewAssignment {
            scope: Scope::Team(teams[0]),
            ..NewAssignment::tenant_wide(member.id, role.id)
        };
        assign_role(&t.db, &deps, &ctx, input, &meta)
            .await
            .expect("assign");
        if i == 0 {
            user = Some(member.id);
        }
    }
    Setup {
        deps,
        ctx,
        tenant: tenant.id,
        user: user.expect("member0"),
        deepest: teams[4],
    }
}

/// The same question with the same rules (active membership, expiry, daily window,
/// team ancestry, inheritance, wildcards, deny policies), written by hand with
/// numbered parameters and run through sqlx directly.
const RAW: &str = "
WITH RECURSIVE up (id, parent_id) AS (
    SELECT id, parent_id FROM teams WHERE tenant_id = $1 AND id = $3
    UNION SELECT t.id, t.parent_id FROM teams t JOIN up ON t.id = up.parent_id WHERE t.tenant_id = $1
), held (role_id) AS (
    SELECT ra.role_id FROM role_assignments ra
     WHERE ra.tenant_id = $1 AND ra.user_id = $2 AND ra.revoked_at IS NULL
       AND (ra.expires_at IS NULL OR ra.expires_at > $6)
       AND (ra.window_start_minute IS NULL
            OR (ra.window_start_minute < ra.window_end_minute AND $7 >= ra.window_start_minute AND $7 < ra.window_end_minute)
            OR (ra.window_start_minute > ra.window_end_minute AND ($7 >= ra.window_start_minute OR $7 < ra.window_end_minute)))
       AND (ra.scope_type = 'tenant' OR (ra.scope_type = 'team' AND ra.scope_id IN (SELECT id FROM up)))
       AND EXISTS (SELECT 1 FROM memberships m WHERE m.tenant_id = ra.tenant_id AND m.user_id = ra.user_id AND m.status = 'active')
    UNION SELECT ri.parent_role_id FROM role_inheritance ri JOIN held h ON ri.role_id = h.role_id
)
SELECT CASE WHEN EXISTS (
    SELECT 1 FROM role_permissions rp JOIN permissions p ON p.id = rp.permission_id
     WHERE rp.role_id IN (SELECT role_id FROM held) AND p.resource IN ($4, '*') AND p.action IN ($5, '*')
) AND NOT EXISTS (
    SELECT 1 FROM policies d WHERE d.tenant_id = $1 AND d.resource IN ($4, '*') AND d.action IN ($5, '*')
       AND (d.user_id IS NULL OR d.user_id = $2) AND (d.role_id IS NULL OR d.role_id IN (SELECT role_id FROM held))
) THEN 1 ELSE 0 END";

/// One pooled connection kept for the whole run, as the runtime role sees the
/// tenant: the context is set once for the session, so each check is one statement,
/// like the service's inside its transaction.
enum RawChecker {
    Postgres(sea_orm::sqlx::pool::PoolConnection<sea_orm::sqlx::Postgres>),
    Sqlite(sea_orm::sqlx::pool::PoolConnection<sea_orm::sqlx::Sqlite>),
}

impl RawChecker {
    async fn new(db: &DatabaseConnection, s: &Setup) -> Self {
        match db.get_database_backend() {
            DbBackend::Postgres => {
                let mut conn = db
                    .get_postgres_connection_pool()
                    .acquire()
                    .await
                    .expect("a connection");
                sea_orm::sqlx::query("SELECT set_config('app.current_tenant_id', $1, false)")
                    .bind(s.tenant.to_string())
                    .execute(&mut *conn)
                    .await
                    .expect("context");
                Self::Postgres(conn)
            }
            _ => Self::Sqlite(
                db.get_sqlite_connection_pool()
                    .acquire()
                    .await
                    .expect("a connection"),
            ),
        }
    }

    async fn check(&mut self, s: &Setup) -> bool {
        use chrono::Timelike;
        use sea_orm::sqlx;
        let (tenant, user, team) = (
            s.tenant.into_uuid(),
            s.user.into_uuid(),
            s.deepest.into_uuid(),
        );
        let now = s.deps.now();
        let minute = (now.hour() * 60 + now.minute()) as i32;
        macro_rules! run {
            ($conn:expr) => {
                sqlx::query_scalar::<_, i32>(RAW)
                    .bind(tenant)
                    .bind(user)
                    .bind(team)
                    .bind("docs")
                    .bind("read")
                    .bind(now)
                    .bind(minute)
                    .fetch_one($conn)
                    .await
                    .expect("raw query")
            };
        }
        let allowed = match self {
            Self::Postgres(conn) => run!(&mut **conn),
            Self::Sqlite(conn) => run!(&mut **conn),
        };
        allowed == 1
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn summary(label: &str, mut micros: Vec<f64>) -> f64 {
    micros.sort_by(|a, b| a.total_cmp(b));
    let p50 = percentile(&micros, 0.50);
    println!(
        "  {label:<34} p50 {p50:>8.1} µs   p99 {:>8.1} µs   mean {:>8.1} µs",
        percentile(&micros, 0.99),
        micros.iter().sum::<f64>() / micros.len() as f64
    );
    p50
}

async fn bench_has_permission(t: &TestDb) {
    let s = setup(t).await;
    let txn = s
        .ctx
        .begin(&t.db)
        .await
        .expect("the owner's tenant transaction");
    let service = || {
        has_permission(
            &txn,
            &s.deps,
            s.user,
            "docs",
            "read",
            Scope::Team(s.deepest),
        )
    };
    let mut raw = RawChecker::new(&t.db, &s).await;
    assert!(service().await.expect("checks"), "the user may read docs");
    assert!(raw.check(&s).await, "the raw query agrees");
    assert!(
        !has_permission(
            &txn,
            &s.deps,
            s.user,
            "docs",
            "write",
            Scope::Team(s.deepest)
        )
        .await
        .expect("checks"),
        "and denies what is not granted"
    );
    for _ in 0..WARMUP {
        service().await.expect("checks");
        raw.check(&s).await;
    }
    let (mut ours, mut hand) = (Vec::with_capacity(ROUNDS), Vec::with_capacity(ROUNDS));
    // Interleaved, so drift in the machine's load hits both equally.
    for _ in 0..ROUNDS {
        let start = Instant::now();
        service().await.expect("checks");
        ours.push(start.elapsed().as_secs_f64() * 1e6);
        let start = Instant::now();
        raw.check(&s).await;
        hand.push(start.elapsed().as_secs_f64() * 1e6);
    }
    drop(raw);
    txn.commit().await.expect("commits");
    println!(
        "has_permission on {} (3 inherited roles, team depth 5, {ROUNDS} calls each):",
        t.backend.name()
    );
    let a = summary("service::access::has_permission", ours);
    let b = summary("hand-written SQL through sqlx", hand);
    println!(
        "  ratio (p50): {:.2}x   (target: within 1.2x; one statement per call)",
        a / b
    );
}

async fn bench_rls_overhead(t: &TestDb) {
    // 100 tenants x 500 events, written in bulk by the owner.
    t.owner.execute_unprepared(
        "INSERT INTO tenants (id, slug, name, features)
         SELECT gen_random_uuid(), 'tenant-' || g, 'Tenant ' || g, '{}'::jsonb FROM generate_series(1, 100) g;
         INSERT INTO audit_logs (id, tenant_id, event_type, outcome, details, occurred_at)
         SELECT gen_random_uuid(), t.id, 'data_access', 'success', '{}'::jsonb,
                now() - (g || ' minutes')::interval
           FROM tenants t CROSS JOIN generate_series(1, 500) g;
         ANALYZE audit_logs;",
    )
    .await
    .expect("bulk data");
    let tenant: uuid::Uuid = t
        .owner
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT id FROM tenants WHERE slug = 'tenant-42'".to_owned(),
        ))
        .await
        .expect("query")
        .expect("row")
        .try_get_by_index(0)
        .expect("id");
    // The application's own pool: connected as (here: switched once, for the whole
    // session, to) the runtime role, as in production. The owner's pool is t.owner.
    let runtime = service::connection::connect(&t.target(), &tests::pool(1))
        .await
        .expect("connects");
    runtime
        .execute_unprepared("SET ROLE app_service")
        .await
        .expect("becomes app_service");
    let list = "SELECT * FROM audit_logs WHERE tenant_id = $1 ORDER BY occurred_at DESC LIMIT 50";
    // Both sides run the same transaction (set the tenant, then the timed list); the
    // owner bypasses row-level security, so the only difference is the policy.
    let timed = |db: &DatabaseConnection| {
        let db = db.clone();
        async move {
            let txn = db.begin().await.expect("begins");
            txn.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT set_config('app.current_tenant_id', $1, true)",
                [tenant.to_string().into()],
            ))
            .await
            .expect("context");
            let start = Instant::now();
            let rows = txn
                .query_all_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    list,
                    [tenant.into()],
                ))
                .await
                .expect("lists");
            let elapsed = start.elapsed().as_secs_f64() * 1e6;
            txn.commit().await.expect("commits");
            assert_eq!(rows.len(), 50);
            elapsed
        }
    };
    let as_runtime = || timed(&runtime);
    let as_owner = || timed(&t.owner);
    for _ in 0..WARMUP {
        as_runtime().await;
        as_owner().await;
    }
    let (mut rls, mut owner) = (Vec::with_capacity(ROUNDS), Vec::with_capacity(ROUNDS));
    for _ in 0..ROUNDS {
        rls.push(as_runtime().await);
        owner.push(as_owner().await);
    }
    println!(
        "tenant-scoped list on postgres (50 newest of 500 events, 100 tenants, {ROUNDS} queries each):"
    );
    let a = summary("app_service under RLS", rls);
    let b = summary("owner (superuser, no RLS)", owner);
    println!(
        "  overhead (p50): {:+.1}%   (target: under 10%)",
        (a / b - 1.0) * 100.0
    );
}

/// Sign-in and session validation through the walls (the runtime role: throttle
/// rows, the credentials function, per-user policies on users, sessions, tokens and
/// audit rows) against the same calls as the owner, who bypasses row-level security.
async fn bench_identity_walls(t: &TestDb) {
    use service::identity::{authenticate, create_session, refresh_session};
    use service::input::{Email, Password};
    const CALLS: usize = 500;
    let (deps, _) = fixtures::deps_with(service::ServiceConfig {
        // The cheapest argon2 there is: what is measured is the database's part.
        argon2_memory_kib: 8,
        argon2_iterations: 1,
        ..service::ServiceConfig::default()
    });
    let meta = fixtures::meta();
    let mut rows = Vec::new();
    for (name, db) in [("runtime", &t.db), ("owner", &t.owner)] {
        let user = fixtures::user(db, &deps, name).await;
        let email = Email::parse(&format!("{name}@example.com")).expect("valid");
        let password = Password::for_verification(fixtures::PASSWORD).expect("valid");
        let issued = create_session(db, &deps, user.id, &meta)
            .await
            .expect("session");
        rows.push((db, email, password, issued.refresh_token));
    }
    let (mut sign_in, mut refresh) = (vec![Vec::new(), Vec::new()], vec![Vec::new(), Vec::new()]);
    for round in 0..(WARMUP / 4 + CALLS) {
        for (i, (db, email, password, token)) in rows.iter_mut().enumerate() {
            let start = Instant::now();
            authenticate(db, &deps, email, password, &meta)
                .await
                .expect("signs in");
            let signed_in = start.elapsed().as_secs_f64() * 1e6;
            let start = Instant::now();
            let next = refresh_session(db, &deps, token.expose(), &meta)
                .await
                .expect("refreshes");
            let refreshed = start.elapsed().as_secs_f64() * 1e6;
            *token = next.refresh_token;
            if round >= WARMUP / 4 {
                sign_in[i].push(signed_in);
                refresh[i].push(refreshed);
            }
        }
    }
    println!("identity on postgres behind the walls ({CALLS} calls each, interleaved):");
    let a = summary("sign-in as app_service", std::mem::take(&mut sign_in[0]));
    let b = summary("sign-in as owner", std::mem::take(&mut sign_in[1]));
    println!(
        "  sign-in overhead (p50): {:+.1}%   (target: under 10%)",
        (a / b - 1.0) * 100.0
    );
    let a = summary("refresh as app_service", std::mem::take(&mut refresh[0]));
    let b = summary("refresh as owner", std::mem::take(&mut refresh[1]));
    println!(
        "  refresh overhead (p50): {:+.1}%   (target: under 10%)",
        (a / b - 1.0) * 100.0
    );
}
