//! PostgreSQL tenant isolation, run as the runtime role `app_service`: row-level
//! security is the second wall behind the service's own tenant filters.
//!
//! The tenant-scoped tables are found in the catalogue, not listed here, so a new
//! table is covered (and must get a policy) the day it is added.

use chrono::{DateTime, Utc};
use entity::{TenantId, UserId};
use sea_orm::{
    ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, ExecResult, Statement,
    TransactionTrait,
};
use service::access::{Scope, has_permission};
use service::tenancy::{TenantCtx, list_members, list_user_tenants};
use service::{Deps, ManualClock, ServiceConfig};
use std::sync::Arc;
use tests::{Backend, Start, TestDb, run_case};

async fn tenant_tables(db: &DatabaseConnection) -> Vec<String> {
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT c.table_name FROM information_schema.columns c
               JOIN information_schema.tables t ON t.table_name = c.table_name AND t.table_schema = c.table_schema
              WHERE c.table_schema = current_schema() AND c.column_name = 'tenant_id' AND t.table_type = 'BASE TABLE'
              ORDER BY 1",
        ))
        .await
        .expect("catalogue");
    rows.iter()
        .map(|r| r.try_get_by_index::<String>(0).expect("name"))
        .collect()
}

/// Runs `sql` as `app_service` in a transaction that is rolled back, with the tenant
/// context set (or not).
async fn as_runtime(
    db: &DatabaseConnection,
    tenant: Option<TenantId>,
    sql: &str,
) -> Result<ExecResult, DbErr> {
    let txn = db.begin().await?;
    txn.execute_unprepared("SET LOCAL ROLE app_service").await?;
    if let Some(tenant) = tenant {
        txn.execute_unprepared(&format!(
            "SELECT set_config('app.current_tenant_id', '{tenant}', true)"
        ))
        .await?;
    }
    let result = txn.execute_unprepared(sql).await;
    txn.rollback().await?;
    result
}

async fn count_as_runtime(db: &DatabaseConnection, tenant: Option<TenantId>, sql: &str) -> i64 {
    let txn = db.begin().await.expect("begins");
    txn.execute_unprepared("SET LOCAL ROLE app_service")
        .await
        .expect("role");
    if let Some(tenant) = tenant {
        txn.execute_unprepared(&format!(
            "SELECT set_config('app.current_tenant_id', '{tenant}', true)"
        ))
        .await
        .expect("context");
    }
    let row = txn
        .query_one_raw(Statement::from_string(DbBackend::Postgres, sql.to_owned()))
        .await
        .expect("counts")
        .expect("one row");
    txn.rollback().await.expect("rolls back");
    row.try_get_by_index::<i64>(0).expect("a count")
}

async fn count<C: ConnectionTrait>(db: &C, sql: &str) -> i64 {
    db.query_one_raw(Statement::from_string(DbBackend::Postgres, sql.to_owned()))
        .await
        .expect("counts")
        .expect("one row")
        .try_get_by_index::<i64>(0)
        .expect("a count")
}

async fn seed(t: &TestDb) -> seeder::SeedReport {
    seeder::run(
        &seeder::SeedOptions {
            database_url: Some(t.url.clone()),
            ..seeder::SeedOptions::default()
        },
        migration::environment::AppEnv::Test,
        &t.target(),
    )
    .await
    .expect("seeds")
}

fn tenant(report: &seeder::SeedReport, slug: &str) -> TenantId {
    report
        .tenants
        .iter()
        .find(|t| t.slug == slug)
        .expect("fixture tenant")
        .id
}

fn user(report: &seeder::SeedReport, email: &str) -> UserId {
    report
        .users
        .iter()
        .find(|u| u.email == email)
        .expect("fixture user")
        .id
}

/// Is this the refusal we expect: a row-level security violation, or (for the
/// append-only audit trail) no privilege at all?
fn refused(result: &Result<ExecResult, DbErr>, table: &str) -> bool {
    match result {
        Err(e) => {
            let text = e.to_string();
            text.contains("row-level security")
                || (table == "audit_logs" && text.contains("permission denied"))
        }
        Ok(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_every_tenant_table_is_walled_off_for_the_runtime_role() {
    run_case(Backend::Postgres, "isolation_every_table", Start::Empty, |t| async move {
        let report = seed(&t).await;
        let (own, other) = (tenant(&report, "healthy-stellar"), tenant(&report, "acme"));
        let tables = tenant_tables(&t.db).await;
        assert!(tables.len() >= 8, "found the tenant tables: {tables:?}");

        for table in &tables {
            // The fixtures must give both tenants rows here, or the checks prove nothing.
            for (name, id) in [("own", own), ("other", other)] {
                let rows = count(&t.db, &format!("SELECT count(*) FROM {table} WHERE tenant_id = '{id}'")).await;
                assert!(rows > 0, "{table}: the {name} tenant has no fixture rows");
            }
            let seen = count_as_runtime(&t.db, Some(own), &format!("SELECT count(*) FROM {table} WHERE tenant_id = '{other}'")).await;
            assert_eq!(seen, 0, "{table}: another tenant's rows are invisible");
            let own_seen = count_as_runtime(&t.db, Some(own), &format!("SELECT count(*) FROM {table} WHERE tenant_id = '{own}'")).await;
            assert!(own_seen > 0, "{table}: the own tenant's rows are visible");
            let unset = count_as_runtime(&t.db, None, &format!("SELECT count(*) FROM {table} WHERE tenant_id IS NOT NULL")).await;
            assert_eq!(unset, 0, "{table}: no tenant set, no rows");

            for (tenant_ctx, sql) in [
                (Some(own), format!("UPDATE {table} SET tenant_id = tenant_id WHERE tenant_id = '{other}'")),
                (Some(own), format!("DELETE FROM {table} WHERE tenant_id = '{other}'")),
                (None, format!("UPDATE {table} SET tenant_id = tenant_id WHERE tenant_id IS NOT NULL")),
                (None, format!("DELETE FROM {table} WHERE tenant_id IS NOT NULL")),
            ] {
                let result = as_runtime(&t.db, tenant_ctx, &sql).await;
                match &result {
                    Ok(done) => assert_eq!(done.rows_affected(), 0, "{table}: {sql}"),
                    Err(_) => assert!(refused(&result, table), "{table}: {sql}: {result:?}"),
                }
            }

            // Writing into another tenant: a copy of an own row, retargeted; and an own
            // row moved over. Generated columns are left to the database.
            let columns: Vec<String> = t
                .db
                .query_all_raw(Statement::from_string(
                    DbBackend::Postgres,
                    format!(
                        "SELECT column_name FROM information_schema.columns
                          WHERE table_schema = current_schema() AND table_name = '{table}' AND is_generated = 'NEVER'
                          ORDER BY ordinal_position"
                    ),
                ))
                .await
                .expect("columns")
                .iter()
                .map(|r| r.try_get_by_index::<String>(0).expect("name"))
                .collect();
            let select: Vec<String> = columns
                .iter()
                .map(|c| if c == "tenant_id" { format!("'{other}'::uuid") } else { c.clone() })
                .collect();
            let insert = format!(
                "INSERT INTO {table} ({}) SELECT {} FROM {table} WHERE tenant_id = '{own}' LIMIT 1",
                columns.join(", "),
                select.join(", ")
            );
            let result = as_runtime(&t.db, Some(own), &insert).await;
            assert!(
                refused(&result, table), "{table}: cross-tenant insert: {result:?}");
            let moved = as_runtime(&t.db, Some(own), &format!("UPDATE {table} SET tenant_id = '{other}' WHERE tenant_id = '{own}'")).await;
            assert!(refused(&moved, table), "{table}: moving a row to another tenant: {moved:?}");
        }
        // Nothing above changed anything.
        for table in &tables {
            let as_owner = count(&t.db, &format!("SELECT count(*) FROM {table} WHERE tenant_id = '{other}'")).await;
            assert!(as_owner > 0, "{table}: the other tenant's rows are intact");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_schema_forces_rls_everywhere_and_the_runtime_role_owns_nothing() {
    run_case(Backend::Postgres, "isolation_schema", Start::Migrated, |t| async move {
        let tables = tenant_tables(&t.db).await;
        for table in &tables {
            let forced = count(
                &t.db,
                &format!(
                    "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                      WHERE n.nspname = current_schema() AND c.relname = '{table}'
                        AND c.relrowsecurity AND c.relforcerowsecurity"
                ),
            )
            .await;
            assert_eq!(forced, 1, "{table} has row-level security enabled and forced");
            let policies = count(&t.db, &format!("SELECT count(*) FROM pg_policies WHERE tablename = '{table}'")).await;
            assert!(policies >= 1, "{table} has a policy");
        }
        let privileged = count(
            &t.db,
            "SELECT count(*) FROM pg_roles WHERE rolname = 'app_service' AND (rolbypassrls OR rolsuper OR rolcanlogin)",
        )
        .await;
        assert_eq!(privileged, 0, "app_service: no BYPASSRLS, not superuser, NOLOGIN");
        let owned = count(
            &t.db,
            "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE r.rolname = 'app_service'",
        )
        .await;
        assert_eq!(owned, 0, "app_service owns nothing");
        let settings = count(
            &t.db,
            "SELECT count(*) FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole
              WHERE r.rolname = 'app_service' AND array_to_string(s.setconfig, ',') LIKE '%statement_timeout%'",
        )
        .await;
        assert_eq!(settings, 1, "app_service has a statement timeout");
        for role in ["app_service", "compliance_officer", "read_only", "data_processor", "admin"] {
            let exists = count(&t.db, &format!("SELECT count(*) FROM pg_roles WHERE rolname = '{role}' AND NOT rolcanlogin")).await;
            assert_eq!(exists, 1, "{role} exists, NOLOGIN");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_sql_function_agrees_with_the_service_check() {
    run_case(
        Backend::Postgres,
        "isolation_function",
        Start::Empty,
        |t| async move {
            let report = seed(&t).await;
            let now: DateTime<Utc> = t
                .owner
                .query_one_raw(Statement::from_string(
                    DbBackend::Postgres,
                    "SELECT now()".to_owned(),
                ))
                .await
                .expect("now")
                .expect("row")
                .try_get_by_index(0)
                .expect("timestamp");
            let clock = Arc::new(ManualClock::new(now));
            let deps = Deps::new(ServiceConfig::default()).with_clock(clock);
            let mut checked = 0;
            for u in &report.users {
                for tenant_line in &report.tenants {
                    // The tenant's owner asks about u, who may belong elsewhere.
                    let owner = report
                        .users
                        .iter()
                        .find(|o| o.tenant == tenant_line.slug && o.role == "owner")
                        .expect("every fixture tenant has an owner");
                    let asker = TenantCtx::for_member(&t.db, tenant_line.id, owner.id)
                        .await
                        .expect("the owner is a member");
                    let txn = asker.begin(&t.db).await.expect("begins");
                    for (resource, action) in [
                        ("agents", "run"),
                        ("agents", "delete"),
                        ("members", "update"),
                        ("records", "read"),
                        ("records", "export"),
                        ("records", "write"),
                        ("releases", "ship"),
                        ("properties", "list"),
                    ] {
                        let service =
                            has_permission(&txn, &deps, u.id, resource, action, Scope::Tenant)
                                .await
                                .expect("checks");
                        let sql: bool = t
                            .owner
                            .query_one_raw(Statement::from_sql_and_values(
                                DbBackend::Postgres,
                                "SELECT user_has_permission($1, $2, $3, $4)",
                                [
                                    u.id.into_uuid().into(),
                                    tenant_line.id.into_uuid().into(),
                                    resource.into(),
                                    action.into(),
                                ],
                            ))
                            .await
                            .expect("calls")
                            .expect("row")
                            .try_get_by_index(0)
                            .expect("bool");
                        assert_eq!(
                            sql, service,
                            "{} {}:{} in {}",
                            u.email, resource, action, tenant_line.slug
                        );
                        checked += 1;
                    }
                    txn.commit().await.expect("commits");
                }
            }
            assert!(checked > 500);
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_service_operations_work_as_the_runtime_role() {
    run_case(
        Backend::Postgres,
        "isolation_service",
        Start::Empty,
        |t| async move {
            let report = seed(&t).await;
            let (acme, alice, charlie) = (
                tenant(&report, "acme"),
                user(&report, "alice@acme.com"),
                user(&report, "charlie@techstartup.io"),
            );
            // One connection, switched to the runtime role for its whole session.
            let mut options = t.target().connect_options(None);
            options.max_connections(1).min_connections(1);
            let runtime = Database::connect(options).await.expect("connects");
            runtime
                .execute_unprepared("SET ROLE app_service")
                .await
                .expect("becomes app_service");

            let raw = count(&runtime, "SELECT count(*) FROM memberships").await;
            assert_eq!(raw, 0, "without a context, nothing");
            let tenants_of_alice = list_user_tenants(&runtime, alice).await.expect("lists");
            assert_eq!(tenants_of_alice.len(), 1);
            let ctx = TenantCtx::for_member(&runtime, acme, alice)
                .await
                .expect("alice is in acme");
            let members = list_members(&runtime, &ctx).await.expect("lists");
            assert!(members.len() >= 2 && members.iter().all(|m| m.tenant_id == acme));
            let err = TenantCtx::for_member(&runtime, acme, charlie).await;
            assert!(err.is_err(), "charlie is not in acme");

            let (deps, _) = Deps::deterministic(
                ServiceConfig::default(),
                seeder::fixture_epoch(),
                uuid::Uuid::from_u128(3),
                3,
            );
            let txn = ctx.begin(&runtime).await.expect("tenant transaction");
            assert!(
                has_permission(&txn, &deps, alice, "members", "update", Scope::Tenant)
                    .await
                    .expect("checks")
            );
            txn.commit().await.expect("commits");
            let team = service::tenancy::create_team(
                &runtime,
                &deps,
                &ctx,
                &service::input::TeamName::parse("Runtime").expect("valid"),
                None,
                &service::RequestMeta::system(),
            )
            .await
            .expect("writes through row-level security");
            assert_eq!(team.tenant_id, acme);
            let events = service::audit::list_tenant_events(&runtime, &ctx, 1000)
                .await
                .expect("lists");
            assert!(events.iter().any(|e| e.event_type == "team_created"));
            assert!(events.iter().all(|e| e.tenant_id == Some(acme)));
            runtime.close().await.ok();
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_policies_can_require_a_permission_with_the_sql_function() {
    run_case(Backend::Postgres, "isolation_policy_fn", Start::Empty, |t| async move {
        let report = seed(&t).await;
        let (acme, alice, bob) = (tenant(&report, "acme"), user(&report, "alice@acme.com"), user(&report, "bob@acme.com"));
        // What an agents table would do (seed 002): only users allowed to run agents may
        // queue agent work, checked by the database itself.
        t.owner.execute_unprepared(
            "CREATE TABLE agent_runs (id serial PRIMARY KEY, tenant_id uuid NOT NULL, requested_by uuid NOT NULL);
             ALTER TABLE agent_runs ENABLE ROW LEVEL SECURITY;
             ALTER TABLE agent_runs FORCE ROW LEVEL SECURITY;
             CREATE POLICY tenant_isolation ON agent_runs
                 USING (tenant_id = app_current_tenant())
                 WITH CHECK (tenant_id = app_current_tenant()
                             AND requested_by = app_current_user()
                             AND user_has_permission(requested_by, tenant_id, 'agents', 'run'));
             GRANT SELECT, INSERT ON agent_runs TO app_service;
             GRANT USAGE ON SEQUENCE agent_runs_id_seq TO app_service;",
        )
        .await
        .expect("creates the example table");
        let queue_as = |user: UserId| {
            let db = t.db.clone();
            async move {
                let txn = db.begin().await?;
                txn.execute_unprepared("SET LOCAL ROLE app_service").await?;
                txn.execute_unprepared(&format!(
                    "SELECT set_config('app.current_tenant_id', '{acme}', true), set_config('app.current_user_id', '{user}', true)"
                ))
                .await?;
                let done = txn
                    .execute_unprepared(&format!("INSERT INTO agent_runs (tenant_id, requested_by) VALUES ('{acme}', '{user}')"))
                    .await;
                txn.commit().await?;
                done
            }
        };
        queue_as(alice).await.expect("alice (org_admin) may run agents");
        let refused = queue_as(bob).await;
        assert!(
            matches!(&refused, Err(e) if e.to_string().contains("row-level security")),
            "bob may run agents only inside Engineering, not tenant-wide: {refused:?}"
        );
        assert_eq!(count(&t.db, "SELECT count(*) FROM agent_runs").await, 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_schema_tenants_rows_live_in_their_own_schema() {
    use entity::tenancy::tenants::IsolationLevel;
    use service::tenancy::{NewTenant, create_team, create_tenant, tenant_schema_name};
    run_case(Backend::Postgres, "isolation_schema_tenant", Start::Empty, |t| async move {
        assert_eq!(tenant_schema_name("isolated-co"), migration::tenant_schemas::schema_name("isolated-co"));
        let report = seed(&t).await;
        let (alice, acme) = (user(&report, "alice@acme.com"), tenant(&report, "acme"));
        let (deps, _) = Deps::deterministic(ServiceConfig::default(), seeder::fixture_epoch(), uuid::Uuid::from_u128(9), 9);
        let meta = service::RequestMeta::system();
        let mut input = NewTenant::parse("isolated-co", "Isolated Co").expect("valid");
        input.isolation_level = IsolationLevel::Schema;
        let (isolated, _) = create_tenant(&t.db, &deps, alice, input, &meta).await.expect("creates");
        let team_name = service::input::TeamName::parse("Blue").expect("valid");

        // Before provisioning, nothing may land in the shared tables by mistake.
        let ctx = TenantCtx::for_member(&t.db, isolated.id, alice).await.expect("owner");
        let early = create_team(&t.db, &deps, &ctx, &team_name, None, &meta).await;
        assert!(matches!(early, Err(service::ServiceError::Conflict { entity: "tenant", .. })), "{early:?}");

        for tenant in migration::tenant_schemas::isolated_tenants(&t.db, &t.target()).await.expect("lists") {
            migration::tenant_schemas::provision(&t.db, &t.target(), &tenant).await.expect("provisions");
        }

        // As the runtime role, through the service.
        let mut options = t.target().connect_options(None);
        options.max_connections(1).min_connections(1);
        let runtime = Database::connect(options).await.expect("connects");
        runtime.execute_unprepared("SET ROLE app_service").await.expect("becomes app_service");
        let ctx = TenantCtx::for_member(&runtime, isolated.id, alice).await.expect("owner");
        let team = create_team(&runtime, &deps, &ctx, &team_name, None, &meta).await.expect("creates in its schema");
        let in_schema = count(&t.db, &format!("SELECT count(*) FROM tenant_isolated_co.teams WHERE id = '{}'", team.id)).await;
        let in_public = count(&t.db, &format!("SELECT count(*) FROM public.teams WHERE id = '{}'", team.id)).await;
        assert_eq!((in_schema, in_public), (1, 0), "the row lives in the tenant's schema");
        let members = list_members(&runtime, &ctx).await.expect("global tables still resolve");
        assert_eq!(members.len(), 1);

        // Acme, shared, sees its own teams and not this one.
        let acme_ctx = TenantCtx::for_member(&runtime, acme, alice).await.expect("member");
        let txn = acme_ctx.begin(&runtime).await.expect("tenant transaction");
        let visible = count(&txn, "SELECT count(*) FROM teams").await;
        drop(txn);
        assert!(visible > 0, "acme's shared teams are visible");
        let leaked = count(&t.db, &format!("SELECT count(*) FROM public.teams WHERE tenant_id = '{}'", isolated.id)).await;
        assert_eq!(leaked, 0);
        // Row-level security holds inside the tenant schema too.
        let forced = count(
            &t.db,
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = 'tenant_isolated_co' AND c.relkind = 'r' AND c.relrowsecurity AND c.relforcerowsecurity",
        )
        .await;
        assert_eq!(forced, 5);
        runtime.close().await.ok();
    })
    .await;
}
