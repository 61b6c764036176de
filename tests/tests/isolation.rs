//! PostgreSQL tenant isolation, run as the runtime role `app_service`: row-level
//! security is the second wall behind the service's own tenant filters.
//!
//! The tenant-scoped tables are found in the catalogue, not listed here, so a new
//! table is covered (and must get a policy) the day it is added.

use chrono::{DateTime, Utc};
use entity::{TenantId, UserId};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, ExecResult, Statement, TransactionTrait,
};
use service::access::{Scope, has_permission};
use service::connection;
use service::crypto::KeyRing;
use service::tenancy::{TenantCtx, list_members, list_user_tenants};
use service::{Deps, ManualClock, ServiceConfig};
use std::sync::Arc;
use tests::runtime::{as_runtime, count, count_as_runtime, runtime_txn, seed, tenant, user};
use tests::{Backend, Start, run_case};

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

/// Runs `sql` as `app_service` and, if it succeeded, counts `other`'s rows of `table`
/// as the owner inside the same transaction (which sees the statement's effect),
/// before rolling everything back.
async fn as_runtime_then_count(
    db: &DatabaseConnection,
    tenant: Option<TenantId>,
    sql: &str,
    table: &str,
    other: TenantId,
) -> (Result<ExecResult, DbErr>, Option<i64>) {
    let txn = runtime_txn(db, tenant, None)
        .await
        .expect("the runtime role");
    let result = txn.execute_unprepared(sql).await;
    let after = if result.is_ok() {
        txn.execute_unprepared("RESET ROLE")
            .await
            .expect("back to the owner");
        Some(
            count(
                &txn,
                &format!("SELECT count(*) FROM {table} WHERE tenant_id = '{other}'"),
            )
            .await,
        )
    } else {
        None
    };
    txn.rollback().await.expect("rolls back");
    (result, after)
}

/// The database's `now()`: inside a transaction, the instant it started.
async fn database_now<C: ConnectionTrait>(db: &C) -> DateTime<Utc> {
    db.query_one_raw(Statement::from_string(
        DbBackend::Postgres,
        "SELECT now()".to_owned(),
    ))
    .await
    .expect("now")
    .expect("row")
    .try_get_by_index(0)
    .expect("timestamp")
}

/// What the SQL function `user_has_permission` answers, tenant-wide.
async fn sql_function_says<C: ConnectionTrait>(
    db: &C,
    user: UserId,
    tenant: TenantId,
    resource: &str,
    action: &str,
) -> bool {
    db.query_one_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT user_has_permission($1, $2, $3, $4)",
        [
            user.into_uuid().into(),
            tenant.into_uuid().into(),
            resource.into(),
            action.into(),
        ],
    ))
    .await
    .expect("calls")
    .expect("row")
    .try_get_by_index(0)
    .expect("bool")
}

/// Is this the refusal we expect: a row-level security violation, or (for the
/// append-only tables, and for API keys and incidents, whose tenant is unchangeable)
/// no privilege at all?
fn refused(result: &Result<ExecResult, DbErr>, table: &str) -> bool {
    match result {
        Err(e) => {
            let text = e.to_string();
            text.contains("row-level security")
                || (matches!(
                    table,
                    "audit_logs"
                        | "api_keys"
                        | "privacy_policies"
                        | "consent_records"
                        | "data_residency_log"
                        | "security_incidents"
                        | "agent_tasks"
                        | "agent_results"
                        | "billing_subscriptions"
                        | "usage_records"
                        | "payment_customers"
                        | "payment_methods"
                        | "payment_intents"
                        | "properties"
                        | "records"
                        | "record_versions"
                        | "access_grants"
                ) && text.contains("permission denied"))
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

        // Protected records are visible only to an acting user who may open them: the
        // clinic's admin (records:*) acts there; elsewhere no one needs to.
        let admin = tests::runtime::user(&report, "admin@healthystellar.com");
        for table in &tables {
            let acting = matches!(table.as_str(), "records" | "record_versions" | "access_grants").then_some(admin);
            // The fixtures must give both tenants rows here, or the checks prove nothing.
            for (name, id) in [("own", own), ("other", other)] {
                let rows = count(&t.db, &format!("SELECT count(*) FROM {table} WHERE tenant_id = '{id}'")).await;
                assert!(rows > 0, "{table}: the {name} tenant has no fixture rows");
            }
            let seen = count_as_runtime(&t.db, Some(own), acting, &format!("SELECT count(*) FROM {table} WHERE tenant_id = '{other}'")).await;
            assert_eq!(seen, 0, "{table}: another tenant's rows are invisible");
            let own_seen = count_as_runtime(&t.db, Some(own), acting, &format!("SELECT count(*) FROM {table} WHERE tenant_id = '{own}'")).await;
            assert!(own_seen > 0, "{table}: the own tenant's rows are visible");
            let unset = count_as_runtime(&t.db, None, None, &format!("SELECT count(*) FROM {table} WHERE tenant_id IS NOT NULL")).await;
            assert_eq!(unset, 0, "{table}: no tenant set, no rows");

            for (tenant_ctx, sql) in [
                (Some(own), format!("UPDATE {table} SET tenant_id = tenant_id WHERE tenant_id = '{other}'")),
                (Some(own), format!("DELETE FROM {table} WHERE tenant_id = '{other}'")),
                (None, format!("UPDATE {table} SET tenant_id = tenant_id WHERE tenant_id IS NOT NULL")),
                (None, format!("DELETE FROM {table} WHERE tenant_id IS NOT NULL")),
            ] {
                let before = count(&t.db, &format!("SELECT count(*) FROM {table} WHERE tenant_id = '{other}'")).await;
                let (result, after) = as_runtime_then_count(&t.db, tenant_ctx, &sql, table, other).await;
                match &result {
                    Ok(done) => assert_eq!(done.rows_affected(), 0, "{table}: {sql}"),
                    Err(_) => assert!(refused(&result, table), "{table}: {sql}: {result:?}"),
                }
                if let Some(after) = after {
                    assert_eq!(after, before, "{table}: {sql} left the other tenant's rows as they were");
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
            let result = as_runtime(&t.db, Some(own), acting, &insert).await;
            assert!(
                refused(&result, table), "{table}: cross-tenant insert: {result:?}");
            let moved = as_runtime(&t.db, Some(own), acting, &format!("UPDATE {table} SET tenant_id = '{other}' WHERE tenant_id = '{own}'")).await;
            assert!(refused(&moved, table), "{table}: moving a row to another tenant: {moved:?}");
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
            let deps = Deps::new(ServiceConfig::default(), KeyRing::development());
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
                    // One instant for both sides: the SQL function reads now(), the
                    // transaction's start, and the service clock is set to the same.
                    let now = database_now(&txn).await;
                    let deps = deps.clone().with_clock(Arc::new(ManualClock::new(now)));
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
                        let sql =
                            sql_function_says(&txn, u.id, tenant_line.id, resource, action).await;
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
            let runtime = connection::connect(&t.target(), &tests::pool(1))
                .await
                .expect("connects");
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
            assert!(
                matches!(err, Err(service::ServiceError::Forbidden { .. })),
                "charlie is not in acme: {err:?}"
            );

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
        // What an agents table would do: only users allowed to run agents may
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
        let runtime = connection::connect(&t.target(), &tests::pool(1)).await.expect("connects");
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

        // Both tenants in one caller's transaction: the tenant schema put on the search
        // path for the first operation (local to the transaction, not to its savepoint)
        // is gone for the second, so acme's team lands in the shared table.
        let outer = runtime.begin().await.expect("the caller's transaction");
        let green = service::input::TeamName::parse("Green").expect("valid");
        create_team(&outer, &deps, &ctx, &green, None, &meta).await.expect("creates in the tenant's schema");
        let acme_team = create_team(&outer, &deps, &acme_ctx, &green, None, &meta).await.expect("creates for acme");
        outer.commit().await.expect("commits");
        let shared = count(&t.db, &format!("SELECT count(*) FROM public.teams WHERE id = '{}' AND tenant_id = '{acme}'", acme_team.id)).await;
        let misplaced = count(&t.db, &format!("SELECT count(*) FROM tenant_isolated_co.teams WHERE id = '{}'", acme_team.id)).await;
        assert_eq!((shared, misplaced), (1, 0), "acme's team is in the shared table, not in the tenant schema");
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

/// The daily window, on both sides of the SQL function and the service, for windows
/// that wrap midnight and windows that do not, with the instant inside and outside:
/// windows are placed around the current minute, and both sides are asked in one
/// transaction whose `now()` the service clock is set to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_sql_function_and_service_agree_on_both_sides_of_daily_windows() {
    use chrono::Timelike;
    use service::access::{NewAssignment, TimeWindow, assign_role, create_role, grant_permission};
    const DAY: i32 = 24 * 60;
    run_case(
        Backend::Postgres,
        "isolation_windows",
        Start::Migrated,
        |t| async move {
            let (deps, _) = tests::fixtures::deps();
            let meta = tests::fixtures::meta();
            let owner = tests::fixtures::user(&t.db, &deps, "owner").await;
            let tenant = tests::fixtures::tenant(&t.db, &deps, "clinic", &owner).await;
            let ctx = TenantCtx::for_member(&t.db, tenant.id, owner.id)
                .await
                .expect("owner");
            let role = create_role(
                &t.db,
                &deps,
                &ctx,
                &service::input::RoleName::parse("shift").expect("valid"),
                None,
                &meta,
            )
            .await
            .expect("role");
            grant_permission(&t.db, &deps, &ctx, role.id, "ward", "enter", &meta)
                .await
                .expect("grant");

            let minute_of =
                |at: DateTime<Utc>| i32::try_from(at.hour() * 60 + at.minute()).expect("a minute");
            let m = minute_of(database_now(&t.owner).await);
            let hhmm = |x: i32| {
                format!(
                    "{:02}:{:02}",
                    x.rem_euclid(DAY) / 60,
                    x.rem_euclid(DAY) % 60
                )
            };
            // For the current minute and the next two (the transaction below may start a
            // minute or two later): a window holding it and one not, wrapping midnight and
            // not, wherever such a window exists.
            let mut windows = std::collections::BTreeSet::new();
            for x in [m, m + 1, m + 2].map(|x| x.rem_euclid(DAY)) {
                if x < DAY - 1 {
                    windows.insert((x, x + 1)); // plain, holds x
                    windows.insert((x + 1, x)); // wraps, misses x
                }
                windows.insert(if x >= 1 { (x, 0) } else { (DAY - 1, 1) }); // wraps, holds x
                windows.insert(if x + 2 < DAY { (x + 1, x + 2) } else { (0, 1) }); // plain, misses x
            }
            let mut users = Vec::new();
            for (i, (start, end)) in windows.into_iter().enumerate() {
                let user = tests::fixtures::user(&t.db, &deps, &format!("nurse{i}")).await;
                add_member(&t.db, &deps, &ctx, user.id).await;
                assign_role(
                    &t.db,
                    &deps,
                    &ctx,
                    NewAssignment {
                        window: Some(TimeWindow::parse(&hhmm(start), &hhmm(end)).expect("valid")),
                        ..NewAssignment::tenant_wide(user.id, role.id)
                    },
                    &meta,
                )
                .await
                .expect("assigned");
                users.push((user.id, start, end));
            }

            let txn = ctx.begin(&t.db).await.expect("begins");
            let at = database_now(&txn).await;
            let n = minute_of(at);
            let deps = deps.clone().with_clock(Arc::new(ManualClock::new(at)));
            let mut kinds = std::collections::BTreeSet::new();
            for (user, start, end) in users {
                let wraps = start > end;
                let inside = if wraps {
                    n >= start || n < end
                } else {
                    start <= n && n < end
                };
                kinds.insert((wraps, inside));
                let service = has_permission(&txn, &deps, user, "ward", "enter", Scope::Tenant)
                    .await
                    .expect("checks");
                let sql = sql_function_says(&txn, user, tenant.id, "ward", "enter").await;
                let window = format!("{}-{} at {}", hhmm(start), hhmm(end), hhmm(n));
                assert_eq!(service, inside, "service, {window}");
                assert_eq!(sql, inside, "SQL function, {window}");
            }
            txn.rollback().await.expect("rolls back");
            // At 23:59 no plain window holds the minute and no wrapping one misses it.
            let possible = if n == DAY - 1 { 2 } else { 4 };
            assert_eq!(
                kinds.len(),
                possible,
                "both sides of wrapping and plain windows at {}: {kinds:?}",
                hhmm(n)
            );
        },
    )
    .await;
}

async fn add_member(db: &DatabaseConnection, deps: &Deps, ctx: &TenantCtx, user: UserId) {
    service::tenancy::add_member(
        db,
        deps,
        ctx,
        user,
        entity::tenancy::memberships::MembershipRole::Member,
        &tests::fixtures::meta(),
    )
    .await
    .expect("joins");
}
