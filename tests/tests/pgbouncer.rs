//! The service through PgBouncer in transaction pooling mode: consecutive transactions
//! of one client run on different server connections, and one server connection serves
//! many clients. Nothing set for one transaction (tenant, acting user, schema) may be
//! seen by the next, and statements prepared in one must not be needed by the next.

use entity::{TenantId, UserId};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, TransactionTrait, Value};
use service::connection::{self, PoolSettings};
use service::input::TeamName;
use service::tenancy::{TenantCtx, create_team};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tests::fixtures;
use tests::runtime::seed;
use tests::{Backend, Start, run_case};

const CLIENTS: usize = 24;
const ROUNDS: usize = 6;

/// What the server says about the transaction it is running.
struct Seen {
    tenant: Option<String>,
    user: Option<String>,
    server_pid: i32,
    foreign_rows: i64,
}

/// The context settings, the server connection, and the rows of other tenants (not
/// the actor's own memberships) this transaction can see.
async fn look<C: ConnectionTrait>(db: &C, tenant: Option<TenantId>) -> Seen {
    let tenant_value: Value = tenant.map(|t| t.0.to_string()).unwrap_or_default().into();
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT NULLIF(current_setting('app.current_tenant_id', true), ''),
                    NULLIF(current_setting('app.current_user_id', true), ''),
                    pg_backend_pid(),
                    (SELECT count(*) FROM memberships m
                      WHERE m.tenant_id::text <> $1
                        AND m.user_id::text <> COALESCE(NULLIF(current_setting('app.current_user_id', true), ''), '-'))
                  + (SELECT count(*) FROM teams WHERE tenant_id::text <> $1)",
            [tenant_value],
        ))
        .await
        .expect("the probe runs")
        .expect("one row");
    Seen {
        tenant: row.try_get_by_index(0).expect("tenant"),
        user: row.try_get_by_index(1).expect("user"),
        server_pid: row.try_get_by_index(2).expect("pid"),
        foreign_rows: row.try_get_by_index(3).expect("count"),
    }
}

async fn members(owner: &DatabaseConnection) -> Vec<(TenantId, UserId)> {
    owner
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT tenant_id, user_id FROM memberships WHERE status = 'active'
              ORDER BY tenant_id, user_id"
                .to_owned(),
        ))
        .await
        .expect("reads memberships")
        .iter()
        .map(|row| {
            (
                TenantId(row.try_get_by_index(0).expect("tenant")),
                UserId(row.try_get_by_index(1).expect("user")),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pgbouncer_interleaved_tenants_never_inherit_a_context() {
    let Some(bouncer) = tests::pgbouncer().await else {
        return;
    };
    run_case(
        Backend::Postgres,
        "pgbouncer_interleaved",
        Start::Migrated,
        |t| async move {
            let report = seed(&t).await;
            let pairs = members(&t.owner).await;
            let tenants: BTreeSet<TenantId> = pairs.iter().map(|(t, _)| *t).collect();
            assert!(tenants.len() >= 3, "the profile has several tenants");

            let settings = PoolSettings {
                max_connections: CLIENTS as u32 / 2,
                ..PoolSettings::application()
            }
            .through_pgbouncer();
            let pool = connection::connect(&t.runtime_target(Some(&bouncer)), &settings)
                .await
                .expect("connects through PgBouncer");
            let (deps, _) = fixtures::deps();
            // The checks every request makes read in one round trip, outside any
            // transaction (a session, an API key): they interleave with the rest.
            let acme = tests::runtime::tenant(&report, "acme");
            let alice_id = tests::runtime::user(&report, "alice@acme.com");
            let acme_key = service::identity::create_api_key(
                &t.db,
                &deps,
                &TenantCtx::for_member(&t.db, acme, alice_id)
                    .await
                    .expect("Alice is a member"),
                service::identity::NewApiKey {
                    name: "through the bouncer".to_owned(),
                    scopes: vec!["agents:read".to_owned()],
                    expires_at: None,
                },
                &fixtures::meta(),
            )
            .await
            .expect("a key")
            .secret
            .expose()
            .to_owned();

            let mut clients = Vec::new();
            for client in 0..CLIENTS {
                let (tenant, actor) = pairs[client * 7 % pairs.len()];
                let pool = pool.clone();
                let (deps, acme_key) = (deps.clone(), acme_key.clone());
                clients.push(tokio::spawn(async move {
                    let mut served_by = Vec::new();
                    let ctx = TenantCtx::for_member(&pool, tenant, actor)
                        .await
                        .expect("a member");
                    let session =
                        service::identity::create_session(&pool, &deps, actor, &fixtures::meta())
                            .await
                            .expect("a session")
                            .session
                            .id;
                    for round in 0..ROUNDS {
                        let auth =
                            service::identity::validate_session(&pool, &deps, actor, session)
                                .await
                                .expect("validates through PgBouncer");
                        assert_eq!(auth.user_id(), actor);
                        let key = service::identity::authenticate_api_key(
                            &pool,
                            &deps,
                            &acme_key,
                            &fixtures::meta(),
                        )
                        .await
                        .expect("authenticates through PgBouncer");
                        assert_eq!(key.tenant_id, acme);

                        // A bare transaction: whatever ran before on its server
                        // connection, it sees no context and no tenant rows.
                        let bare = pool.begin().await.expect("begins");
                        let seen = look(&bare, None).await;
                        assert_eq!(
                            (seen.tenant.as_deref(), seen.user.as_deref()),
                            (None, None),
                            "client {client} round {round}: a context carried over on server {}",
                            seen.server_pid
                        );
                        assert_eq!(seen.foreign_rows, 0, "no context shows no rows");
                        bare.commit().await.expect("commits");

                        let txn = ctx
                            .begin(&pool)
                            .await
                            .expect("opens the tenant's transaction");
                        let seen = look(&txn, Some(tenant)).await;
                        assert_eq!(seen.tenant, Some(tenant.0.to_string()), "client {client}");
                        assert_eq!(seen.user, Some(actor.0.to_string()), "client {client}");
                        assert_eq!(
                            seen.foreign_rows, 0,
                            "client {client} sees another tenant's rows on server {}",
                            seen.server_pid
                        );
                        // Hold the server connection a moment, so the clients interleave.
                        tokio::time::sleep(Duration::from_millis((client % 4) as u64)).await;
                        txn.commit().await.expect("commits");
                        served_by.push((seen.server_pid, tenant));
                    }
                    served_by
                }));
            }
            let mut tenants_by_server: BTreeMap<i32, BTreeSet<TenantId>> = BTreeMap::new();
            for client in clients {
                for (pid, tenant) in client.await.expect("the client finished") {
                    tenants_by_server.entry(pid).or_default().insert(tenant);
                }
            }
            eprintln!(
                "{} transactions of {} clients ran on {} server connections",
                CLIENTS * ROUNDS * 2,
                CLIENTS,
                tenants_by_server.len()
            );
            // The test only proves something if server connections were shared.
            assert!(
                tenants_by_server.len() < CLIENTS / 2,
                "{} server connections for {} client connections: not pooled",
                tenants_by_server.len(),
                CLIENTS / 2
            );
            assert!(
                tenants_by_server.values().any(|tenants| tenants.len() > 1),
                "no server connection served two tenants: {tenants_by_server:?}"
            );

            // The service works unchanged: sign-in in two steps (Alice has a second
            // factor), and a write with its audit row.
            let alice = fixtures::email("alice@acme.com");
            let service::identity::SignIn::SecondFactorRequired(challenge) =
                service::identity::login(
                    &pool,
                    &deps,
                    &alice,
                    &fixtures::password(seeder::profile::SHARED_PASSWORD),
                    &fixtures::meta(),
                )
                .await
                .expect("the password step through PgBouncer")
            else {
                panic!("Alice has a second factor: two steps");
            };
            let factor = report
                .second_factors
                .iter()
                .find(|f| f.email == "alice@acme.com")
                .expect("the seeder printed Alice's factor");
            let secret = data_encoding::BASE32_NOPAD
                .decode(factor.secret_base32.as_bytes())
                .expect("base32");
            let code = service::identity::totp(
                &secret,
                service::identity::TotpParams::default(),
                u64::try_from(deps.now().timestamp()).expect("after 1970"),
            );
            let (account, issued) = service::identity::complete_sign_in(
                &pool,
                &deps,
                challenge.token.expose(),
                service::identity::MfaProof::Totp(&code),
                &fixtures::meta(),
            )
            .await
            .expect("the second step through PgBouncer");
            service::identity::refresh_session(
                &pool,
                &deps,
                issued.refresh_token.expose(),
                &fixtures::meta(),
            )
            .await
            .expect("refreshes through PgBouncer");
            // The lookups taking any connection run in a transaction of their own too.
            let acme_slug = service::input::Slug::parse("acme").expect("a slug");
            for _ in 0..20 {
                service::tenancy::find_tenant_by_slug(&pool, &acme_slug)
                    .await
                    .expect("looks a tenant up through PgBouncer");
                service::identity::find_user_by_email(&pool, &alice)
                    .await
                    .expect("looks a user up through PgBouncer");
            }
            let ctx = TenantCtx::for_member(&pool, acme, account.id)
                .await
                .expect("member");
            let team = create_team(
                &pool,
                &deps,
                &ctx,
                &TeamName::parse("Through the bouncer").expect("a name"),
                None,
                &fixtures::meta(),
            )
            .await
            .expect("creates a team through PgBouncer");
            let txn = ctx.begin(&pool).await.expect("begins");
            let found = txn
                .query_one_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    "SELECT count(*) FROM teams WHERE id = $1",
                    [team.id.0.into()],
                ))
                .await
                .expect("reads")
                .expect("row")
                .try_get_by_index::<i64>(0)
                .expect("count");
            txn.commit().await.expect("commits");
            assert_eq!(found, 1);
            pool.close().await.ok();
        },
    )
    .await;
}
