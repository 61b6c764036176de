//! Walls for every table the runtime role `app_service` can reach (PostgreSQL): each
//! table of the schema, found in the catalogue, has a class, and each class is
//! attacked with raw SQL inside one tenant's transaction acting for one of its
//! members, the way an SQL injection there would try. A table without a class fails
//! the test, so a new table states its wall the day it is added.

use entity::UserId;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, ExecResult, Statement, TransactionTrait,
};
use tests::runtime::{as_runtime, count, count_as_runtime, runtime_txn, seed, tenant, user};
use tests::{Backend, Start, run_case};

/// What the runtime role may do with a table: every table of the schema has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    /// Rows of the current tenant only (checked table by table above).
    Tenant,
    /// Tenant rows, append-only.
    TenantAppendOnly,
    /// A tenant's policy versions, consent history and transfer log: its own rows
    /// only, never changed or removed; a consent or a transfer only in the acting
    /// user's own name.
    Consent,
    /// A user's data key and deletion requests: the acting user's own only; a key never
    /// changed, a request filed as `requested` and only cancelled.
    UserPrivacy,
    /// The current tenant's rows, plus shared system rows that are read-only.
    TenantOrSystem,
    /// Grants and inheritance of roles: written only for the current tenant's roles.
    RoleGraph,
    /// Reference data: readable, never changed at run time.
    Catalogue,
    /// Global identity rows: as far as the acting user and the tenant's members need.
    Identity,
    /// Sign-in counters, before anyone is known.
    Throttle,
    /// A tenant's credentials: its own rows only, the hash unreadable, only usage,
    /// revocation and rotation changeable, nothing deleted.
    TenantCredentials,
    /// A user's second factor and passkeys: the acting user's own rows only; the sealed
    /// secret, the code hashes and the public keys readable there (verification needs
    /// them), replay state (used steps and codes, signature counters, a disabled
    /// passkey) one-way.
    UserCredentials,
    /// A user's sign-in state and security findings (MFA challenges, anomaly reports):
    /// the acting user's own rows only, the challenge hash unreadable, challenges
    /// one-way, reports append-only, nothing deleted.
    UserSecurity,
    /// The audit chains' heads: the current tenant's, the acting user's and the
    /// anonymous chain's readable and movable (an append moves them), nothing else;
    /// never deleted, never renamed to another chain.
    ChainHeads,
    /// Protected records: the current tenant's, and of those only what the acting
    /// user may open (as subject, author, grantee or holder of `records:read_all`);
    /// changed one kept version at a time; grants only revoked; nothing deleted.
    ProtectedRecords,
    /// The platform's own bookkeeping: out of reach.
    Platform,
}

fn class_of(table: &str) -> Option<Class> {
    Some(match table {
        "teams" | "team_members" | "invitations" | "role_assignments" | "policies"
        | "memberships" => Class::Tenant,
        "audit_logs" => Class::TenantAppendOnly,
        "audit_chain_heads" => Class::ChainHeads,
        "roles" => Class::TenantOrSystem,
        "role_inheritance" | "role_permissions" => Class::RoleGraph,
        "permissions" | "audit_event_types" | "billing_plans" => Class::Catalogue,
        "tenants" | "users" | "user_profiles" | "sessions" | "refresh_tokens" => Class::Identity,
        "mfa_factors" | "mfa_backup_codes" | "passkeys" => Class::UserCredentials,
        "mfa_challenges" | "session_anomaly_reports" => Class::UserSecurity,
        "sign_in_throttles" => Class::Throttle,
        "api_keys" => Class::TenantCredentials,
        "privacy_policies" | "consent_records" | "data_residency_log" => Class::Consent,
        "security_incidents" | "agent_tasks" | "properties" => Class::Tenant,
        "agent_results" => Class::TenantAppendOnly,
        "billing_subscriptions" | "payment_methods" | "payment_intents" => Class::Tenant,
        "usage_records" | "payment_customers" => Class::TenantAppendOnly,
        "records" | "record_versions" | "access_grants" => Class::ProtectedRecords,
        "subject_keys" | "deletion_requests" => Class::UserPrivacy,
        "database_metadata" | "seaql_migrations" | "migration_checksums" | "migration_lock" => {
            Class::Platform
        }
        _ => return None,
    })
}

/// The statement changed nothing: either no row was visible to it, or the database
/// refused it (no privilege, or a row-level security check).
fn changed_nothing(result: &Result<ExecResult, DbErr>) -> bool {
    match result {
        Ok(done) => done.rows_affected() == 0,
        Err(e) => {
            let text = e.to_string();
            text.contains("permission denied") || text.contains("row-level security")
        }
    }
}

fn denied(result: &Result<ExecResult, DbErr>) -> bool {
    matches!(result, Err(e) if e.to_string().contains("permission denied"))
}

fn rls_refused(result: &Result<ExecResult, DbErr>) -> bool {
    matches!(result, Err(e) if e.to_string().contains("row-level security"))
}

/// Every table of the schema, found in the catalogue, has a class, and each class's
/// wall holds against raw SQL as the runtime role inside one tenant's transaction
/// acting for one of its members: what an SQL injection there could try.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_every_table_has_a_class_and_its_wall_holds_against_the_runtime_role() {
    run_case(Backend::Postgres, "isolation_classes", Start::Empty, |t| async move {
        let report = seed(&t).await;
        let (own, other) = (tenant(&report, "healthy-stellar"), tenant(&report, "acme"));
        let me = user(&report, "admin@healthystellar.com");
        let alice = user(&report, "alice@acme.com");
        let db = &t.db;

        let tables: Vec<String> = db
            .query_all_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT table_name FROM information_schema.tables
                  WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1",
            ))
            .await
            .expect("catalogue")
            .iter()
            .map(|r| r.try_get_by_index::<String>(0).expect("name"))
            .collect();
        let unclassified: Vec<&String> = tables.iter().filter(|t| class_of(t).is_none()).collect();
        assert!(unclassified.is_empty(), "tables without a wall class: {unclassified:?}");

        for table in &tables {
            let class = class_of(table).expect("classified");
            // Nothing here may be emptied or dropped by the runtime role.
            for sql in [format!("TRUNCATE {table}"), format!("DROP TABLE {table}")] {
                let result = as_runtime(db, Some(own), Some(me), &sql).await;
                assert!(
                    matches!(&result, Err(e) if e.to_string().contains("permission denied") || e.to_string().contains("must be owner")),
                    "{table} ({class:?}): {sql}: {result:?}"
                );
            }
            match class {
                Class::Platform => {
                    for sql in [
                        format!("SELECT count(*) FROM {table}"),
                        format!("DELETE FROM {table}"),
                    ] {
                        let result = as_runtime(db, Some(own), Some(me), &sql).await;
                        assert!(denied(&result), "{table} ({class:?}): {sql}: {result:?}");
                    }
                }
                Class::Catalogue => {
                    let readable = count_as_runtime(db, Some(own), Some(me), &format!("SELECT count(*) FROM {table}")).await;
                    assert!(readable > 0, "{table}: the catalogue is readable");
                    for sql in [
                        format!("DELETE FROM {table}"),
                        format!("UPDATE {table} SET description = 'pwned'"),
                    ] {
                        let result = as_runtime(db, Some(own), Some(me), &sql).await;
                        assert!(denied(&result), "{table} ({class:?}): {sql}: {result:?}");
                    }
                }
                _ => {}
            }
        }

        // Shared system roles: visible, never writable, never movable into a tenant.
        let system_roles = count(db, "SELECT count(*) FROM roles WHERE tenant_id IS NULL").await;
        assert!(system_roles >= 4, "the fixtures have system roles");
        assert_eq!(
            count_as_runtime(db, Some(own), Some(me), "SELECT count(*) FROM roles WHERE tenant_id IS NULL").await,
            system_roles,
            "system roles are readable"
        );
        for sql in [
            "UPDATE roles SET name = 'pwned' WHERE tenant_id IS NULL".to_owned(),
            format!("UPDATE roles SET tenant_id = '{own}' WHERE tenant_id IS NULL"),
            "DELETE FROM roles WHERE tenant_id IS NULL".to_owned(),
        ] {
            let result = as_runtime(db, Some(own), Some(me), &sql).await;
            assert!(changed_nothing(&result), "roles: {sql}: {result:?}");
        }
        let result = as_runtime(db, Some(own), Some(me), "INSERT INTO roles (id, tenant_id, name) VALUES (gen_random_uuid(), NULL, 'rogue_system_role')").await;
        assert!(rls_refused(&result), "a tenant cannot create a system role: {result:?}");

        // Role graph: a system role cannot be made to inherit super_admin, nor granted
        // more, and its existing grants cannot be removed.
        let escalate = "INSERT INTO role_inheritance (role_id, parent_role_id)
             SELECT c.id, p.id FROM roles c, roles p
              WHERE c.tenant_id IS NULL AND c.name = 'org_member' AND p.tenant_id IS NULL AND p.name = 'super_admin'";
        let result = as_runtime(db, Some(own), Some(me), escalate).await;
        assert!(rls_refused(&result), "org_member inheriting super_admin: {result:?}");
        let grant = "INSERT INTO role_permissions (role_id, permission_id)
             SELECT r.id, p.id FROM roles r, permissions p
              WHERE r.tenant_id IS NULL AND r.name = 'org_member'
                AND NOT EXISTS (SELECT 1 FROM role_permissions x WHERE x.role_id = r.id AND x.permission_id = p.id)
              LIMIT 1";
        let result = as_runtime(db, Some(own), Some(me), grant).await;
        assert!(rls_refused(&result), "a grant to a system role: {result:?}");
        for sql in [
            "DELETE FROM role_inheritance WHERE role_id IN (SELECT id FROM roles WHERE tenant_id IS NULL)",
            "DELETE FROM role_permissions WHERE role_id IN (SELECT id FROM roles WHERE tenant_id IS NULL)",
        ] {
            let result = as_runtime(db, Some(own), Some(me), sql).await;
            assert!(changed_nothing(&result), "{sql}: {result:?}");
        }
        let system_grants = count(db, "SELECT count(*) FROM role_permissions rp JOIN roles r ON r.id = rp.role_id WHERE r.tenant_id IS NULL").await;
        assert!(system_grants > 0, "the system roles' grants are intact");

        // Memberships: acting for Alice inside Healthy Stellar's transaction shows her
        // Acme membership (hers to read) but cannot delete or change it.
        assert_eq!(
            count_as_runtime(db, Some(own), Some(alice), &format!("SELECT count(*) FROM memberships WHERE tenant_id = '{other}' AND user_id = '{alice}'")).await,
            1,
            "one's own membership elsewhere is readable"
        );
        for sql in [
            format!("DELETE FROM memberships WHERE user_id = '{alice}'"),
            format!("UPDATE memberships SET role = 'member' WHERE user_id = '{alice}'"),
        ] {
            let result = as_runtime(db, Some(own), Some(alice), &sql).await;
            assert!(changed_nothing(&result), "memberships: {sql}: {result:?}");
        }
        assert_eq!(
            count(db, &format!("SELECT count(*) FROM memberships WHERE user_id = '{alice}' AND role = 'owner'")).await,
            1,
            "Alice still owns Acme"
        );

        // The audit trail: no row without a tenant, none for another tenant, none
        // changed or removed.
        for (sql, what) in [
            ("INSERT INTO audit_logs (id, tenant_id, event_type, outcome, details) VALUES (gen_random_uuid(), NULL, 'login', 'success', '{}')".to_owned(), "a global row from a tenant's transaction"),
            (format!("INSERT INTO audit_logs (id, tenant_id, event_type, outcome, details) VALUES (gen_random_uuid(), '{other}', 'login', 'success', '{{}}')"), "a row for another tenant"),
        ] {
            let result = as_runtime(db, Some(own), Some(me), &sql).await;
            assert!(rls_refused(&result), "audit_logs: {what}: {result:?}");
        }
        for sql in ["UPDATE audit_logs SET risk_score = 0", "DELETE FROM audit_logs"] {
            let result = as_runtime(db, Some(own), Some(me), sql).await;
            assert!(denied(&result), "audit_logs: {sql}: {result:?}");
        }

        // The chains' heads: the own tenant's, the acting user's and the anonymous
        // chain's only; another chain's head neither read, moved, created nor removed.
        let anonymous = "00000000-0000-0000-0000-000000000000";
        assert_eq!(
            count_as_runtime(db, Some(own), Some(me), &format!(
                "SELECT count(*) FROM audit_chain_heads WHERE chain_id NOT IN ('{own}', '{me}', '{anonymous}')"
            )).await,
            0,
            "audit_chain_heads: no other chain's head is visible"
        );
        assert!(
            count(db, &format!("SELECT count(*) FROM audit_chain_heads WHERE chain_id = '{other}'")).await == 1,
            "the other tenant has a chain"
        );
        for sql in [
            format!("UPDATE audit_chain_heads SET last_seq = 0 WHERE chain_id = '{other}'"),
            format!("DELETE FROM audit_chain_heads WHERE chain_id = '{other}'"),
        ] {
            let result = as_runtime(db, Some(own), Some(me), &sql).await;
            assert!(changed_nothing(&result), "audit_chain_heads: {sql}: {result:?}");
        }
        for sql in [
            format!("DELETE FROM audit_chain_heads WHERE chain_id = '{own}'"),
            format!("UPDATE audit_chain_heads SET chain_id = '{other}' WHERE chain_id = '{own}'"),
        ] {
            let result = as_runtime(db, Some(own), Some(me), &sql).await;
            assert!(denied(&result), "audit_chain_heads: {sql}: {result:?}");
        }
        let result = as_runtime(db, Some(own), Some(me), &format!(
            "INSERT INTO audit_chain_heads (chain_id, last_seq, last_hash) VALUES ('{alice}', 0, '\\x00')"
        )).await;
        assert!(rls_refused(&result), "audit_chain_heads: another user's chain: {result:?}");
        // A head is created at the start of its chain, never ahead of it (checked
        // before the key: a head of the own chain, which exists, is refused for that).
        let result = as_runtime(db, Some(own), Some(me), &format!(
            "INSERT INTO audit_chain_heads (chain_id, last_seq, last_hash) VALUES ('{me}', 5, '\\x00')"
        )).await;
        assert!(rls_refused(&result), "audit_chain_heads: a head ahead of its chain: {result:?}");

        // Privacy policies and consent: Rento's are invisible from Healthy Stellar, none
        // is written for another tenant or in another user's name, none changes.
        let rento = tenant(&report, "rento");
        let (hanako, ichiro) = (user(&report, "sato.hanako@example.jp"), user(&report, "suzuki.ichiro@example.jp"));
        for table in ["privacy_policies", "consent_records"] {
            assert!(count(db, &format!("SELECT count(*) FROM {table} WHERE tenant_id = '{rento}'")).await > 0, "fixture {table}");
            assert_eq!(
                count_as_runtime(db, Some(own), Some(me), &format!("SELECT count(*) FROM {table}")).await,
                count(db, &format!("SELECT count(*) FROM {table} WHERE tenant_id = '{own}'")).await,
                "{table}: the current tenant's only"
            );
            for sql in [format!("UPDATE {table} SET tenant_id = tenant_id"), format!("DELETE FROM {table}")] {
                let result = as_runtime(db, Some(rento), Some(hanako), &sql).await;
                assert!(denied(&result), "{table}: {sql}: {result:?}");
            }
        }
        for (sql, what) in [
            (format!("INSERT INTO privacy_policies (id, tenant_id, version, title, document_url, effective_at) VALUES (gen_random_uuid(), '{rento}', 99, 'x', 'https://x', now())"), "a policy for another tenant"),
            (format!("INSERT INTO consent_records (id, tenant_id, user_id, seq, purpose, policy_version, granted, source, recorded_at) VALUES (gen_random_uuid(), '{rento}', '{hanako}', 99, 'x', 1, false, 'web', now())"), "a consent in another tenant"),
        ] {
            let result = as_runtime(db, Some(own), Some(me), &sql).await;
            assert!(rls_refused(&result), "{what}: {result:?}");
        }
        let forged = format!("INSERT INTO consent_records (id, tenant_id, user_id, seq, purpose, policy_version, granted, source, recorded_at) VALUES (gen_random_uuid(), '{rento}', '{ichiro}', 99, 'marketing_email', 2, true, 'web', now())");
        let result = as_runtime(db, Some(rento), Some(hanako), &forged).await;
        assert!(rls_refused(&result), "a consent in another user's name: {result:?}");
        assert!(as_runtime(db, Some(rento), Some(hanako), "TRUNCATE consent_records").await.is_err());

        // The transfer log and incidents: Rento's invisible from Healthy Stellar, nothing
        // written for another tenant, no log row changed, no incident deleted, and a
        // tenant's transfer regions set for the current tenant only.
        for table in ["data_residency_log", "security_incidents"] {
            assert!(count(db, &format!("SELECT count(*) FROM {table} WHERE tenant_id = '{rento}'")).await > 0, "fixture {table}");
            assert_eq!(
                count_as_runtime(db, Some(own), Some(me), &format!("SELECT count(*) FROM {table}")).await,
                count(db, &format!("SELECT count(*) FROM {table} WHERE tenant_id = '{own}'")).await,
                "{table}: the current tenant's only"
            );
            let result = as_runtime(db, Some(rento), Some(hanako), &format!("DELETE FROM {table}")).await;
            assert!(denied(&result), "{table}: delete: {result:?}");
        }
        for sql in [
            "UPDATE data_residency_log SET outcome = 'allowed'".to_owned(),
            "UPDATE security_incidents SET severity = 'low', title = 'nothing'".to_owned(),
        ] {
            let result = as_runtime(db, Some(rento), Some(hanako), &sql).await;
            assert!(denied(&result), "{sql}: {result:?}");
        }
        let result = as_runtime(db, Some(own), Some(me), &format!("UPDATE security_incidents SET status = 'resolved', resolved_at = now() WHERE tenant_id = '{rento}'")).await;
        assert!(changed_nothing(&result), "resolving another tenant's incident: {result:?}");
        for (sql, what) in [
            (format!("INSERT INTO data_residency_log (id, tenant_id, from_region, to_region, purpose, outcome, requested_by, recorded_at) VALUES (gen_random_uuid(), '{own}', 'us', 'eu', 'x', 'allowed', '{alice}', now())"), "a transfer in another user's name"),
            (format!("INSERT INTO security_incidents (id, tenant_id, title, description, severity, status, affected_subjects, detected_at) VALUES (gen_random_uuid(), '{rento}', 'x', 'x', 'low', 'open', '[]', now())"), "an incident for another tenant"),
        ] {
            let result = as_runtime(db, Some(own), Some(me), &sql).await;
            assert!(rls_refused(&result), "{what}: {result:?}");
        }
        for (sql, what) in [
            (format!("INSERT INTO data_residency_log (id, tenant_id, from_region, to_region, purpose, outcome, requested_by, recorded_at) VALUES (gen_random_uuid(), '{own}', 'us', 'eu', 'x', 'allowed', NULL, now())"), "an unattributed transfer"),
            (format!("INSERT INTO security_incidents (id, tenant_id, title, description, severity, status, affected_subjects, detected_at, reported_by) VALUES (gen_random_uuid(), '{own}', 'x', 'x', 'low', 'open', '[]', now(), '{alice}')"), "an incident in another user's name"),
            (format!("INSERT INTO privacy_policies (id, tenant_id, version, title, document_url, effective_at, published_by) VALUES (gen_random_uuid(), '{own}', 99, 'x', 'https://x', now(), '{alice}')"), "a policy in another user's name"),
        ] {
            let result = as_runtime(db, Some(own), Some(me), &sql).await;
            assert!(rls_refused(&result), "{what}: {result:?}");
        }
        // Rento's phishing incident is under investigation: it cannot be reopened.
        let result = as_runtime(db, Some(rento), Some(hanako), "UPDATE security_incidents SET status = 'open', updated_at = now()").await;
        assert!(
            matches!(&result, Err(e) if e.to_string().contains("only moves forward")),
            "reopening an incident: {result:?}"
        );
        let result = as_runtime(db, Some(own), Some(me), &format!("UPDATE tenants SET transfer_regions = '[\"eu\"]' WHERE id = '{rento}'")).await;
        assert!(changed_nothing(&result), "another tenant's transfer regions: {result:?}");

        // The agent queue: Acme's tasks and results invisible from Healthy Stellar,
        // nothing written for another tenant or in another user's name, no task's
        // work (agent, payload, author, tenant) rewritten, nothing deleted, no result
        // changed.
        for table in ["agent_tasks", "agent_results"] {
            assert!(count(db, &format!("SELECT count(*) FROM {table} WHERE tenant_id = '{other}'")).await > 0, "fixture {table}");
            assert_eq!(
                count_as_runtime(db, Some(own), Some(me), &format!("SELECT count(*) FROM {table}")).await,
                count(db, &format!("SELECT count(*) FROM {table} WHERE tenant_id = '{own}'")).await,
                "{table}: the current tenant's only"
            );
            let result = as_runtime(db, Some(own), Some(me), &format!("DELETE FROM {table}")).await;
            assert!(denied(&result), "{table}: delete: {result:?}");
        }
        for sql in [
            "UPDATE agent_tasks SET payload = '{\"input\": \"pwned\"}'",
            "UPDATE agent_tasks SET agent = 'exfiltrate'",
            "UPDATE agent_tasks SET created_by = NULL",
            "UPDATE agent_results SET output = '{}'",
        ] {
            let result = as_runtime(db, Some(own), Some(me), sql).await;
            assert!(denied(&result), "{sql}: {result:?}");
        }
        for (sql, what) in [
            ("UPDATE agent_tasks SET status = 'queued', finished_at = NULL WHERE status = 'succeeded'", "a finished task re-queued"),
            ("UPDATE agent_tasks SET attempts = 0 WHERE attempts > 0", "attempts given back"),
        ] {
            let result = as_runtime(db, Some(own), Some(me), sql).await;
            assert!(
                matches!(&result, Err(e) if e.to_string().contains("stays finished")),
                "{what}: {result:?}"
            );
        }
        let result = as_runtime(db, Some(own), Some(me), &format!("INSERT INTO agent_tasks (id, tenant_id, agent, payload, status, priority, attempts, max_attempts, run_after, locked_by, locked_at, heartbeat_at, created_by) VALUES (gen_random_uuid(), '{own}', 'x', '{{}}', 'running', 0, 1, 1, now(), 'someone-else', now(), now(), '{me}')")).await;
        assert!(rls_refused(&result), "a task inserted already running: {result:?}");
        let result = as_runtime(db, Some(own), Some(me), &format!("UPDATE agent_tasks SET status = 'cancelled', finished_at = now() WHERE tenant_id = '{other}'")).await;
        assert!(changed_nothing(&result), "cancelling another tenant's task: {result:?}");
        for (sql, what) in [
            (format!("INSERT INTO agent_tasks (id, tenant_id, agent, payload, status, priority, attempts, max_attempts, run_after, created_by) VALUES (gen_random_uuid(), '{other}', 'x', '{{}}', 'queued', 0, 0, 1, now(), '{me}')"), "a task for another tenant"),
            (format!("INSERT INTO agent_tasks (id, tenant_id, agent, payload, status, priority, attempts, max_attempts, run_after, created_by) VALUES (gen_random_uuid(), '{own}', 'x', '{{}}', 'queued', 0, 0, 1, now(), '{alice}')"), "a task in another user's name"),
            (format!("INSERT INTO agent_results (id, tenant_id, task_id, attempt, outcome, output, worker, started_at, finished_at) SELECT gen_random_uuid(), tenant_id, id, 9, 'succeeded', '{{}}', 'w', now(), now() FROM agent_tasks WHERE tenant_id = '{own}' LIMIT 1"), "a result as another tenant's") ,
        ] {
            let sql = if what.starts_with("a result") { sql.replace("SELECT gen_random_uuid(), tenant_id,", &format!("SELECT gen_random_uuid(), '{other}'::uuid,")) } else { sql };
            let result = as_runtime(db, Some(own), Some(me), &sql).await;
            assert!(rls_refused(&result), "{what}: {result:?}");
        }

        {
        // Listings: Acme's invisible from Healthy Stellar, none written for another
        // tenant, none moved to another tenant or renumbered, none deleted.
        assert!(count(db, &format!("SELECT count(*) FROM properties WHERE tenant_id = '{other}'")).await > 0, "fixture properties");
        assert_eq!(
            count_as_runtime(db, Some(own), Some(me), "SELECT count(*) FROM properties").await,
            count(db, &format!("SELECT count(*) FROM properties WHERE tenant_id = '{own}'")).await,
            "properties: the current tenant's only"
        );
        for sql in [
            "DELETE FROM properties".to_owned(),
            format!("UPDATE properties SET tenant_id = '{other}'"),
            "UPDATE properties SET id = gen_random_uuid()".to_owned(),
        ] {
            let result = as_runtime(db, Some(own), Some(me), &sql).await;
            assert!(denied(&result), "{sql}: {result:?}");
        }
        let result = as_runtime(db, Some(own), Some(me), &format!("UPDATE properties SET rent = 1 WHERE tenant_id = '{other}'")).await;
        assert!(changed_nothing(&result), "another tenant's rent: {result:?}");
        let result = as_runtime(db, Some(own), Some(me), &format!("INSERT INTO properties (id, tenant_id, title, rent, deposit, currency, prefecture, city, address, latitude, longitude, features, listed, created_at, updated_at) VALUES (gen_random_uuid(), '{other}', 'x', 1, 0, 'JPY', '東京都', '港区', 'x', 35.6, 139.7, '[]', true, now(), now())")).await;
        assert!(rls_refused(&result), "a listing for another tenant: {result:?}");

        // Protected records: Acme's invisible from Healthy Stellar; inside the clinic
        // only what the acting user may open; no record changed without keeping its
        // version; no grant given by someone who may not, or to oneself by a nurse;
        // nothing deleted, no subject or author rewritten.
        // Just after the seeded clinic's grants began (they run a year), not at the
        // server's time: the wall is the same whatever the date the suite runs on.
        let seeded: chrono::DateTime<chrono::Utc> = db
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                format!("SELECT max(starts_at) FROM access_grants WHERE tenant_id = '{own}'"),
            ))
            .await
            .expect("reads")
            .expect("a row")
            .try_get_by_index(0)
            .expect("the clinic's grants");
        let at = Some(seeded + chrono::Duration::seconds(1));
        let as_runtime = |db, tenant, user, sql: &str| {
            let sql = sql.to_owned();
            async move { tests::runtime::as_runtime_at(db, tenant, user, at, &sql).await }
        };
        let count_as_runtime = |db, tenant, user, sql: &str| {
            let sql = sql.to_owned();
            async move { tests::runtime::count_as_runtime_at(db, tenant, user, at, &sql).await }
        };
        let garcia = user(&report, "nurse.garcia@healthystellar.com");
        let williams = user(&report, "nurse.williams@healthystellar.com");
        let johnson = user(&report, "dr.johnson@healthystellar.com");
        let patient1 = user(&report, "patient1@example.com");
        let patient2 = user(&report, "patient2@example.com");
        for table in ["records", "record_versions", "access_grants"] {
            assert!(count(db, &format!("SELECT count(*) FROM {table} WHERE tenant_id = '{other}'")).await > 0, "fixture {table}");
            assert_eq!(
                count_as_runtime(db, Some(own), Some(me), &format!("SELECT count(*) FROM {table}")).await,
                count(db, &format!("SELECT count(*) FROM {table} WHERE tenant_id = '{own}'")).await,
                "{table}: the clinic admin (records:*) reads the clinic's, only"
            );
            let result = as_runtime(db, Some(own), Some(me), &format!("DELETE FROM {table}")).await;
            assert!(denied(&result), "{table}: delete: {result:?}");
        }
        // A nurse without a grant sees no record, no version and no one's grants.
        for table in ["records", "record_versions", "access_grants"] {
            assert_eq!(count_as_runtime(db, Some(own), Some(garcia), &format!("SELECT count(*) FROM {table}")).await, 0, "{table} as a nurse without grants");
        }
        // The nurse with a read grant on patient 2 sees patient 2's records only.
        assert_eq!(
            count_as_runtime(db, Some(own), Some(williams), "SELECT count(*) FROM records").await,
            count(db, &format!("SELECT count(*) FROM records WHERE subject_id = '{patient2}'")).await,
        );
        assert_eq!(count_as_runtime(db, Some(own), Some(patient1), &format!("SELECT count(*) FROM records WHERE subject_id <> '{patient1}'")).await, 0, "a patient reads their own only");
        let result = as_runtime(db, Some(own), Some(williams), &format!("UPDATE records SET title = 'x', version = version + 1, updated_by = '{williams}'")).await;
        assert!(changed_nothing(&result), "a read grant writes: {result:?}");
        for sql in [
            format!("UPDATE records SET subject_id = '{garcia}'"),
            format!("UPDATE records SET author_id = '{me}'"),
            "UPDATE record_versions SET title = 'rewritten'".to_owned(),
            "UPDATE access_grants SET expires_at = expires_at + interval '10 years'".to_owned(),
            format!("UPDATE access_grants SET grantee_id = '{garcia}'"),
        ] {
            let result = as_runtime(db, Some(own), Some(me), &sql).await;
            assert!(denied(&result), "{sql}: {result:?}");
        }
        // Dr. Johnson may write patient 1's records, one kept version at a time.
        let result = as_runtime(db, Some(own), Some(johnson), &format!("UPDATE records SET title = 'x', version = version + 1, updated_by = '{johnson}', updated_at = now() WHERE subject_id = '{patient1}'")).await;
        assert!(matches!(&result, Err(e) if e.to_string().contains("must be kept")), "a change without its kept version: {result:?}");
        let result = as_runtime(db, Some(own), Some(johnson), &format!("UPDATE records SET title = 'x', version = version + 5, updated_by = '{johnson}' WHERE subject_id = '{patient1}'")).await;
        assert!(matches!(&result, Err(e) if e.to_string().contains("a change moves version")), "a version skipped: {result:?}");
        // Rewriting a body in place is the owner's re-encryption, not the runtime role's.
        let result = as_runtime(db, Some(own), Some(johnson), &format!("UPDATE records SET body = '\\x00' WHERE subject_id = '{patient1}'")).await;
        assert!(matches!(&result, Err(e) if e.to_string().contains("a change moves version")), "a body rewritten in place: {result:?}");
        let grant_sql = |by: UserId, grantee: UserId, kind: &str| format!(
            "INSERT INTO access_grants (id, tenant_id, grantee_id, subject_id, access, kind, reason, granted_by, starts_at, expires_at, created_at)
             VALUES (gen_random_uuid(), '{own}', '{grantee}', '{patient1}', 'read', '{kind}', 'x', '{by}', now(), now() + interval '1 day', now())"
        );
        for (sql, as_user, what) in [
            (grant_sql(garcia, garcia, "grant"), garcia, "a nurse granting herself"),
            (grant_sql(me, garcia, "grant"), garcia, "a grant in another user's name"),
            (format!("INSERT INTO access_grants (id, tenant_id, grantee_id, subject_id, record_id, access, kind, reason, granted_by, starts_at, expires_at, created_at) SELECT gen_random_uuid(), '{own}', '{johnson}', subject_id, id, 'read', 'break_glass', 'emergency', '{johnson}', now(), now() + interval '1 hour', now() FROM records WHERE subject_id = '{patient1}' LIMIT 1"), johnson, "break-glass below aal2"),
            (format!("INSERT INTO records (id, tenant_id, subject_id, author_id, record_type, title, body, version, created_at, updated_at) VALUES (gen_random_uuid(), '{own}', '{patient1}', '{me}', 'other', 'x', '\\x00', 1, now(), now())"), johnson, "a record by another author"),
            (format!("INSERT INTO records (id, tenant_id, subject_id, author_id, record_type, title, body, version, created_at, updated_at) VALUES (gen_random_uuid(), '{own}', '{patient1}', '{garcia}', 'other', 'x', '\\x00', 1, now(), now())"), garcia, "a record by a nurse (no records:write)"),
            (format!("INSERT INTO records (id, tenant_id, subject_id, author_id, record_type, title, body, version, created_at, updated_at) VALUES (gen_random_uuid(), '{other}', '{alice}', '{johnson}', 'other', 'x', '\\x00', 1, now(), now())"), johnson, "a record in another tenant"),
            (format!("INSERT INTO record_versions (id, tenant_id, record_id, version, record_type, title, body, written_by, written_at, superseded_by, superseded_at) SELECT gen_random_uuid(), tenant_id, id, version, record_type, title, body, author_id, updated_at, '{me}', now() FROM records WHERE subject_id = '{patient1}' LIMIT 1"), johnson, "a version kept in another user's name"),
            (format!("INSERT INTO record_versions (id, tenant_id, record_id, version, record_type, title, body, written_by, written_at, superseded_by, superseded_at) SELECT gen_random_uuid(), tenant_id, id, version, record_type, title, body, COALESCE(updated_by, author_id), updated_at, '{williams}', now() FROM records WHERE subject_id = '{patient2}' LIMIT 1"), williams, "a version kept by a reader (it would block the next change)"),
            (format!("INSERT INTO record_versions (id, tenant_id, record_id, version, record_type, title, body, written_by, written_at, superseded_by, superseded_at) SELECT gen_random_uuid(), tenant_id, id, version + 1, record_type, title, body, COALESCE(updated_by, author_id), updated_at, '{johnson}', now() FROM records WHERE subject_id = '{patient1}' LIMIT 1"), johnson, "a version kept ahead of the record"),
            (format!("INSERT INTO record_versions (id, tenant_id, record_id, version, record_type, title, body, written_by, written_at, superseded_by, superseded_at) SELECT gen_random_uuid(), tenant_id, id, version, record_type, 'forged', body, COALESCE(updated_by, author_id), updated_at, '{johnson}', now() FROM records WHERE subject_id = '{patient1}' LIMIT 1"), johnson, "a kept version that is not the record"),
        ] {
            let result = as_runtime(db, Some(own), Some(as_user), &sql).await;
            assert!(rls_refused(&result), "{what}: {result:?}");
        }
        // A break-glass grant naming another tenant's record, or no record: the same
        // refusal, so nothing tells whether it exists.
        for record in [
            format!("(SELECT id FROM records WHERE tenant_id = '{other}' LIMIT 1)"),
            "gen_random_uuid()".to_owned(),
        ] {
            let probe = format!("INSERT INTO access_grants (id, tenant_id, grantee_id, subject_id, record_id, access, kind, reason, granted_by, starts_at, expires_at, created_at) VALUES (gen_random_uuid(), '{other}', '{johnson}', '{johnson}', {record}, 'read', 'break_glass', 'probe', '{johnson}', now(), now() + interval '1 hour', now())");
            let result = as_runtime(db, Some(own), Some(johnson), &probe).await;
            assert!(rls_refused(&result), "a break-glass probe of another tenant: {result:?}");
        }
        let result = as_runtime(db, Some(own), Some(johnson), &format!("UPDATE access_grants SET revoked_at = now(), revoked_by = '{johnson}', revoke_reason = 'x' WHERE grantee_id <> '{johnson}'")).await;
        assert!(changed_nothing(&result), "revoking others' grants: {result:?}");
        let result = as_runtime(db, Some(own), Some(me), "UPDATE access_grants SET revoked_at = NULL, revoked_by = NULL, revoke_reason = NULL WHERE revoked_at IS NOT NULL").await;
        assert!(changed_nothing(&result), "un-revoking: {result:?}");

        }
        // Billing: Acme's subscription, usage and payment records invisible from Healthy
        // Stellar; nothing written for another tenant or in another user's name; only
        // the state columns change (a subscription's status, plan, periods and
        // cancellation, a method's default flag, an intent's status) and only along
        // their state machines; nothing deleted; the plan catalogue read-only.
        for table in ["billing_subscriptions", "usage_records", "payment_customers", "payment_methods", "payment_intents"] {
            assert!(count(db, &format!("SELECT count(*) FROM {table} WHERE tenant_id = '{other}'")).await > 0, "fixture {table}");
            assert_eq!(
                count_as_runtime(db, Some(own), Some(me), &format!("SELECT count(*) FROM {table}")).await,
                count(db, &format!("SELECT count(*) FROM {table} WHERE tenant_id = '{own}'")).await,
                "{table}: the current tenant's only"
            );
            let result = as_runtime(db, Some(own), Some(me), &format!("DELETE FROM {table}")).await;
            assert!(denied(&result), "{table}: delete: {result:?}");
        }
        for sql in [
            "UPDATE billing_subscriptions SET created_at = now()",
            "UPDATE usage_records SET quantity = 1",
            "UPDATE usage_records SET recorded_by = NULL",
            "UPDATE payment_customers SET provider_customer_id = 'cus_pwned'",
            "UPDATE payment_methods SET provider_method_id = 'pm_pwned'",
            "UPDATE payment_methods SET customer_id = customer_id",
            "UPDATE payment_intents SET amount_minor = 1",
            "UPDATE payment_intents SET provider_intent_id = 'pi_pwned'",
            "UPDATE billing_plans SET price_minor = 0",
            "INSERT INTO billing_plans (id, code, name, description, price_minor, currency, billing_interval, limits) VALUES (gen_random_uuid(), 'rogue', 'Rogue', 'x', 0, 'USD', 'month', '{}')",
        ] {
            let result = as_runtime(db, Some(own), Some(me), sql).await;
            assert!(denied(&result), "{sql}: {result:?}");
        }
        for sql in [
            format!("UPDATE billing_subscriptions SET status = 'canceled', canceled_at = now() WHERE tenant_id = '{other}'"),
            format!("UPDATE payment_methods SET is_default = false WHERE tenant_id = '{other}'"),
            format!("UPDATE payment_intents SET status = 'canceled' WHERE tenant_id = '{other}'"),
        ] {
            let result = as_runtime(db, Some(own), Some(me), &sql).await;
            assert!(changed_nothing(&result), "another tenant's billing: {sql}: {result:?}");
        }
        for (sql, what) in [
            (format!("INSERT INTO billing_subscriptions (id, tenant_id, plan_id, status, current_period_start, current_period_end) SELECT gen_random_uuid(), '{other}', id, 'active', now(), now() + interval '1 month' FROM billing_plans LIMIT 1"), "a subscription for another tenant"),
            (format!("INSERT INTO billing_subscriptions (id, tenant_id, plan_id, status, current_period_start, current_period_end, canceled_at) SELECT gen_random_uuid(), '{own}', id, 'canceled', now(), now() + interval '1 month', now() FROM billing_plans LIMIT 1"), "a subscription inserted already canceled"),
            (format!("INSERT INTO usage_records (id, tenant_id, metric, quantity, idempotency_key, occurred_at, recorded_by) VALUES (gen_random_uuid(), '{other}', 'api_calls', 1, 'pwned', now(), '{me}')"), "usage for another tenant"),
            (format!("INSERT INTO usage_records (id, tenant_id, metric, quantity, idempotency_key, occurred_at, recorded_by) VALUES (gen_random_uuid(), '{own}', 'api_calls', 1, 'pwned', now(), '{alice}')"), "usage in another user's name"),
            (format!("INSERT INTO payment_customers (id, tenant_id, provider, provider_customer_id, country) VALUES (gen_random_uuid(), '{other}', 'stripe', 'cus_pwned', 'US')"), "a customer for another tenant"),
            (format!("INSERT INTO payment_intents (id, tenant_id, customer_id, amount_minor, currency, status, provider, provider_intent_id, idempotency_key) SELECT gen_random_uuid(), '{own}', customer_id, 1, 'USD', 'succeeded', provider, 'pi_pwned', 'pwned' FROM payment_intents WHERE tenant_id = '{own}' LIMIT 1"), "an intent inserted already settled"),
        ] {
            let result = as_runtime(db, Some(own), Some(me), &sql).await;
            assert!(rls_refused(&result), "{what}: {result:?}");
        }
        let result = as_runtime(db, Some(own), Some(me), "UPDATE billing_subscriptions SET status = 'trialing'").await;
        assert!(
            matches!(&result, Err(e) if e.to_string().contains("is not a transition")),
            "a subscription moved back into its trial: {result:?}"
        );
        let result = as_runtime(db, Some(own), Some(me), "UPDATE billing_subscriptions SET status = 'canceled', canceled_at = now(); UPDATE billing_subscriptions SET status = 'active', canceled_at = NULL").await;
        assert!(
            matches!(&result, Err(e) if e.to_string().contains("is not a transition")),
            "a canceled subscription reactivated: {result:?}"
        );
        let result = as_runtime(db, Some(own), Some(me), "UPDATE payment_intents SET status = 'succeeded' WHERE status = 'requires_payment_method'").await;
        assert!(
            matches!(&result, Err(e) if e.to_string().contains("is not a transition")),
            "an intent settled without processing: {result:?}"
        );
        let result = as_runtime(db, Some(own), Some(me), "UPDATE payment_intents SET status = 'processing' WHERE status = 'requires_payment_method'; UPDATE payment_intents SET status = 'succeeded' WHERE status = 'processing'; UPDATE payment_intents SET status = 'processing' WHERE status = 'succeeded'").await;
        assert!(
            matches!(&result, Err(e) if e.to_string().contains("stays settled")),
            "a settled intent reopened: {result:?}"
        );
        let result = as_runtime(db, Some(own), Some(me), "UPDATE billing_subscriptions SET status = 'canceled', canceled_at = now() WHERE status <> 'canceled'; UPDATE billing_subscriptions SET current_period_start = now() WHERE status = 'canceled'").await;
        assert!(
            matches!(&result, Err(e) if e.to_string().contains("stays as it ended")),
            "a canceled subscription's history rewritten: {result:?}"
        );

        // Data keys and deletion requests: one's own only; a key never changes, a
        // request is only filed as requested and only cancelled.
        for table in ["subject_keys", "deletion_requests"] {
            assert!(count(db, &format!("SELECT count(*) FROM {table} WHERE user_id = '{ichiro}'")).await > 0, "fixture {table}");
            assert_eq!(
                count_as_runtime(db, Some(rento), Some(hanako), &format!("SELECT count(*) FROM {table} WHERE user_id <> '{hanako}'")).await,
                0,
                "{table}: nobody else's"
            );
            let result = as_runtime(db, Some(rento), Some(hanako), &format!("DELETE FROM {table}")).await;
            assert!(denied(&result), "{table}: delete: {result:?}");
        }
        for sql in [
            "UPDATE subject_keys SET wrapped_key = '\\x00'".to_owned(),
            format!("UPDATE deletion_requests SET due_at = now() WHERE user_id = '{ichiro}'"),
        ] {
            let result = as_runtime(db, Some(rento), Some(ichiro), &sql).await;
            assert!(denied(&result), "{sql}: {result:?}");
        }
        let result = as_runtime(db, Some(rento), Some(hanako), &format!("UPDATE deletion_requests SET status = 'cancelled', cancelled_at = now() WHERE user_id = '{ichiro}'")).await;
        assert!(changed_nothing(&result), "cancelling another's request: {result:?}");
        // Moving one's own request on: the policy allows cancelling only, and the
        // transitions trigger refuses skipping a state whoever updates.
        let result = as_runtime(db, Some(rento), Some(ichiro), &format!("UPDATE deletion_requests SET status = 'processing' WHERE user_id = '{ichiro}'")).await;
        assert!(rls_refused(&result), "starting one's own erasure: {result:?}");
        let result = as_runtime(db, Some(rento), Some(ichiro), &format!("UPDATE deletion_requests SET status = 'completed' WHERE user_id = '{ichiro}'")).await;
        assert!(matches!(&result, Err(e) if e.to_string().contains("is not a transition")), "completing one's own request: {result:?}");
        for (sql, what) in [
            (format!("INSERT INTO subject_keys (user_id, wrapped_key) VALUES ('{ichiro}', '\\x00')"), "a key for another user"),
            (format!("INSERT INTO deletion_requests (id, user_id, status, requested_at, due_at) VALUES (gen_random_uuid(), '{ichiro}', 'requested', now(), now())"), "a request for another user"),
            (format!("INSERT INTO deletion_requests (id, user_id, status, requested_at, due_at) VALUES (gen_random_uuid(), '{me}', 'processing', now(), now())"), "a request past its filing"),
        ] {
            let result = as_runtime(db, Some(own), Some(me), &sql).await;
            assert!(rls_refused(&result), "{what}: {result:?}");
        }

        // Global identity rows.
        let result = as_runtime(db, Some(own), Some(me), "SELECT password_hash FROM users").await;
        assert!(denied(&result), "password hashes are unreadable: {result:?}");
        let result = as_runtime(db, Some(own), Some(me), "SELECT token_hash FROM refresh_tokens").await;
        assert!(denied(&result), "token hashes are unreadable: {result:?}");
        let members_of_own = count(db, &format!("SELECT count(DISTINCT user_id) FROM memberships WHERE tenant_id = '{own}'")).await;
        assert_eq!(
            count_as_runtime(db, Some(own), Some(me), "SELECT count(*) FROM users").await,
            members_of_own,
            "users: the tenant's members, nobody else"
        );
        assert_eq!(
            count_as_runtime(db, Some(own), Some(me), &format!("SELECT count(*) FROM users WHERE id = '{alice}'")).await,
            0,
            "another tenant's user is invisible"
        );
        assert_eq!(
            count_as_runtime(db, Some(own), Some(me), &format!("SELECT count(*) FROM user_profiles WHERE user_id = '{alice}'")).await,
            0,
            "and so is their profile"
        );
        for sql in [
            format!("UPDATE users SET last_login_at = now() WHERE id = '{alice}'"),
            format!("UPDATE users SET password_hash = 'x' WHERE id <> '{me}'"),
            format!("UPDATE user_profiles SET display_name = 'pwned' WHERE user_id <> '{me}'"),
            format!("UPDATE sessions SET revoked_at = now() WHERE user_id <> '{me}'"),
            format!("UPDATE refresh_tokens SET revoked_at = now() WHERE session_id IN (SELECT id FROM sessions WHERE user_id = '{alice}')"),
            format!("UPDATE tenants SET is_active = false WHERE id = '{other}'"),
            "DELETE FROM users".to_owned(),
            "DELETE FROM sessions".to_owned(),
            "DELETE FROM tenants".to_owned(),
        ] {
            let result = as_runtime(db, Some(own), Some(me), &sql).await;
            assert!(changed_nothing(&result), "identity: {sql}: {result:?}");
        }
        let other_sessions = count(db, &format!("SELECT count(*) FROM sessions WHERE user_id = '{alice}'")).await;
        assert!(other_sessions > 0, "the fixtures give Alice sessions");
        assert_eq!(
            count_as_runtime(db, Some(own), Some(me), "SELECT count(*) FROM sessions").await,
            count(db, &format!("SELECT count(*) FROM sessions WHERE user_id = '{me}'")).await,
            "sessions: the acting user's own"
        );
        assert_eq!(
            count_as_runtime(db, Some(own), Some(me), &format!("SELECT count(*) FROM tenants WHERE id = '{other}'")).await,
            0,
            "another tenant is invisible"
        );
        for (sql, what) in [
            ("INSERT INTO users (id, email, password_hash) VALUES (gen_random_uuid(), 'rogue@example.com', 'x')".to_owned(), "a user other than the acting one"),
            ("INSERT INTO tenants (id, slug, name, features) VALUES (gen_random_uuid(), 'rogue', 'Rogue', '{}')".to_owned(), "a tenant other than the current one"),
            (format!("INSERT INTO sessions (id, user_id, expires_at) VALUES (gen_random_uuid(), '{alice}', now() + interval '1 day')"), "a session for someone else"),
        ] {
            let result = as_runtime(db, Some(own), Some(me), &sql).await;
            assert!(rls_refused(&result), "{what}: {result:?}");
        }

        // The narrow paths tell only what they are for.
        let result = as_runtime(db, Some(own), Some(me), "SELECT * FROM app_refresh_token_lookup(repeat('0', 64))").await;
        assert!(result.is_ok(), "the refresh lookup is callable: {result:?}");
        let columns = count(db, "SELECT count(*) FROM information_schema.parameters p JOIN information_schema.routines r ON r.specific_name = p.specific_name
                                   WHERE r.routine_name = 'app_refresh_token_lookup' AND p.parameter_mode = 'OUT' AND p.parameter_name LIKE '%hash%'").await;
        assert_eq!(columns, 0, "it returns no hash");

        // One's own security history: only the acting user's global events.
        let own_events = count_as_runtime(db, Some(own), Some(alice), "SELECT count(*) FROM app_own_security_events(1000)").await;
        let alices = count(db, &format!("SELECT count(*) FROM audit_logs WHERE tenant_id IS NULL AND actor_user_id = '{alice}'")).await;
        assert!(alices > 0, "the fixtures give Alice global events");
        assert_eq!(own_events, alices, "Alice's own global events, no one else's");
        assert_eq!(
            count_as_runtime(db, Some(own), Some(me), "SELECT count(*) FROM audit_logs WHERE tenant_id IS NULL").await,
            0,
            "global rows are not readable directly"
        );

        // Sign-in counters cannot be wiped, nor turned into a lockout for good.
        let result = as_runtime(db, Some(own), Some(me), "DELETE FROM sign_in_throttles").await;
        assert!(denied(&result), "sign_in_throttles: {result:?}");
        for sql in [
            "INSERT INTO sign_in_throttles (scope, key_hash, failures, blocked_until) VALUES ('address', repeat('a', 64), 1000, now() + interval '100 years')",
            "INSERT INTO sign_in_throttles (scope, key_hash, failures, blocked_until) VALUES ('address', repeat('b', 64), 0, NULL) ON CONFLICT DO NOTHING; UPDATE sign_in_throttles SET blocked_until = now() + interval '100 years'",
        ] {
            let result = as_runtime(db, Some(own), Some(me), sql).await;
            assert!(rls_refused(&result), "sign_in_throttles: {sql}: {result:?}");
        }

        // Audit rows name the acting user or nobody, never someone else.
        let result = as_runtime(db, Some(own), Some(me), &format!(
            "INSERT INTO audit_logs (id, tenant_id, actor_user_id, event_type, outcome, details) VALUES (gen_random_uuid(), '{own}', '{alice}', 'login', 'success', '{{}}')"
        )).await;
        assert!(rls_refused(&result), "an audit row in someone else's name: {result:?}");

        // What the platform decides about a tenant, and a new user's flags, are not the
        // runtime role's to set.
        for sql in [
            format!("UPDATE tenants SET slug = 'x\";GRANT admin TO app_service;CREATE SCHEMA \"y' WHERE id = '{own}'"),
            format!("UPDATE tenants SET isolation_level = 'schema', plan_tier = 'enterprise' WHERE id = '{own}'"),
            format!("INSERT INTO users (id, email, password_hash, is_verified) VALUES ('{me}', 'x@example.com', 'x', true)"),
        ] {
            let result = as_runtime(db, Some(own), Some(me), &sql).await;
            assert!(denied(&result), "{sql}: {result:?}");
        }

        // API keys: the fixtures give every tenant here one; none of another tenant's
        // is visible or changeable, no hash is readable, nothing is deleted, and a
        // key's scopes cannot be widened.
        let startup = tenant(&report, "techstartup");
        for id in [own, other, startup] {
            assert!(count(db, &format!("SELECT count(*) FROM api_keys WHERE tenant_id = '{id}'")).await > 0, "fixture keys");
        }
        assert_eq!(
            count_as_runtime(db, Some(own), Some(me), "SELECT count(*) FROM api_keys").await,
            count(db, &format!("SELECT count(*) FROM api_keys WHERE tenant_id = '{own}'")).await,
            "api_keys: the current tenant's, nobody else's"
        );
        for sql in [
            "SELECT key_hash FROM api_keys".to_owned(),
            "DELETE FROM api_keys".to_owned(),
            "UPDATE api_keys SET key_hash = repeat('b', 64)".to_owned(),
            r#"UPDATE api_keys SET scopes = '["*:*"]'"#.to_owned(),
            format!("UPDATE api_keys SET tenant_id = '{other}'"),
        ] {
            let result = as_runtime(db, Some(own), Some(me), &sql).await;
            assert!(denied(&result), "api_keys: {sql}: {result:?}");
        }
        let revoke_others = format!("UPDATE api_keys SET revoked_at = now() WHERE tenant_id <> '{own}'");
        let result = as_runtime(db, Some(own), Some(me), &revoke_others).await;
        assert!(changed_nothing(&result), "api_keys: {revoke_others}: {result:?}");
        let result = as_runtime(db, None, None, "UPDATE api_keys SET revoked_at = now()").await;
        assert!(changed_nothing(&result), "api_keys without a tenant: {result:?}");
        // Revocation is one-way even in the key's own tenant.
        let result = as_runtime(
            db,
            Some(own),
            Some(me),
            "UPDATE api_keys SET revoked_at = now(); UPDATE api_keys SET revoked_at = NULL",
        )
        .await;
        assert!(
            matches!(&result, Err(e) if e.to_string().contains("stays revoked")),
            "api_keys: un-revoking: {result:?}"
        );
        let result = as_runtime(db, Some(own), Some(me), &format!(
            "INSERT INTO api_keys (id, tenant_id, name, prefix, key_hash, scopes) VALUES (gen_random_uuid(), '{other}', 'rogue', 'sk_test_rogue', repeat('a', 64), '[\"*:*\"]')"
        )).await;
        assert!(rls_refused(&result), "api_keys: a key for another tenant: {result:?}");
        // The request checks run without a context, as the owner: they answer only
        // what the caller can name, and return no secret.
        let found = count_as_runtime(db, None, None, "SELECT count(*) FROM app_api_key_authenticate(repeat('0', 64))").await;
        assert_eq!(found, 0, "an unknown hash names no key");
        let alices_session = session_of(db, alice).await;
        let found = count_as_runtime(db, None, None, &format!(
            "SELECT count(*) FROM app_session_check('{alices_session}', '{alice}')"
        )).await;
        assert_eq!(found, 1, "the session check answers for the session's own user");
        let found = count_as_runtime(db, None, None, &format!(
            "SELECT count(*) FROM app_session_check('{alices_session}', '{me}')"
        )).await;
        assert_eq!(found, 0, "the session check says nothing of a session named with another user");
        for function in ["app_api_key_authenticate", "app_session_check"] {
            let secret_columns = count(db, &format!(
                "SELECT count(*) FROM information_schema.parameters p JOIN information_schema.routines r ON r.specific_name = p.specific_name
                  WHERE r.routine_name = '{function}' AND p.parameter_mode IN ('OUT', 'INOUT')
                    AND (p.parameter_name LIKE '%hash%' OR p.parameter_name LIKE '%token%' OR p.parameter_name LIKE '%secret%')"
            )).await;
            assert_eq!(secret_columns, 0, "{function} returns no hash, token or secret");
        }
        // Every function that runs as its owner: for the runtime role only, and with
        // its search path pinned (no object of the caller's can stand in for one of its).
        let definers = count(db, "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                                    WHERE n.nspname = current_schema() AND p.prosecdef").await;
        assert!(definers >= 10, "the lookups and checks are SECURITY DEFINER functions: {definers}");
        let unpinned = count(db, "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                                   WHERE n.nspname = current_schema() AND p.prosecdef
                                     AND NOT EXISTS (SELECT 1 FROM unnest(coalesce(p.proconfig, '{}')) c WHERE c LIKE 'search_path=%')").await;
        assert_eq!(unpinned, 0, "every SECURITY DEFINER function pins its search_path");
        // Trigger functions are not called: they run on their table's writes.
        let callable_definers = count(db, "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                                            WHERE n.nspname = current_schema() AND p.prosecdef
                                              AND p.prorettype <> 'trigger'::regtype").await;
        let for_runtime = count(db, "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                                      WHERE n.nspname = current_schema() AND p.prosecdef
                                        AND p.prorettype <> 'trigger'::regtype
                                        AND has_function_privilege('app_service', p.oid, 'EXECUTE')").await;
        assert_eq!(for_runtime, callable_definers, "the runtime role calls every SECURITY DEFINER function");
        for role in ["read_only", "compliance_officer", "data_processor", "public"] {
            let callable = count(db, &format!(
                "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                  WHERE n.nspname = current_schema() AND p.prosecdef
                    AND has_function_privilege('{role}', p.oid, 'EXECUTE')"
            )).await;
            assert_eq!(callable, 0, "{role} may call none of the SECURITY DEFINER functions");
        }

        // Second factors: the acting user's own rows, nobody else's; replay state and
        // used codes one-way even for their owner.
        let alices_factors = count(db, &format!("SELECT count(*) FROM mfa_factors WHERE user_id = '{alice}'")).await;
        let alices_codes = count(db, &format!("SELECT count(*) FROM mfa_backup_codes WHERE user_id = '{alice}'")).await;
        assert!(alices_factors == 1 && alices_codes > 0, "the fixtures give Alice a factor and backup codes");
        for table in ["mfa_factors", "mfa_backup_codes"] {
            assert_eq!(
                count_as_runtime(db, Some(own), Some(me), &format!("SELECT count(*) FROM {table}")).await,
                0,
                "{table}: another user's rows are invisible"
            );
            assert_eq!(
                count_as_runtime(db, Some(other), Some(alice), &format!("SELECT count(*) FROM {table}")).await,
                count(db, &format!("SELECT count(*) FROM {table} WHERE user_id = '{alice}'")).await,
                "{table}: the acting user's own rows"
            );
            assert_eq!(
                count_as_runtime(db, None, None, &format!("SELECT count(*) FROM {table}")).await,
                0,
                "{table}: nobody acting sees nothing"
            );
        }
        for sql in [
            "UPDATE mfa_factors SET last_used_step = 0, confirmed_at = NULL",
            "DELETE FROM mfa_factors",
            "UPDATE mfa_backup_codes SET used_at = NULL",
            "DELETE FROM mfa_backup_codes",
        ] {
            let result = as_runtime(db, Some(own), Some(me), sql).await;
            assert!(changed_nothing(&result), "{sql}: {result:?}");
        }
        for sql in [
            "UPDATE mfa_factors SET secret = '\\x00'".to_owned(),
            format!("UPDATE mfa_factors SET user_id = '{me}'"),
            "UPDATE mfa_backup_codes SET code_hash = repeat('a', 64)".to_owned(),
        ] {
            let result = as_runtime(db, Some(other), Some(alice), &sql).await;
            assert!(denied(&result), "{sql}: {result:?}");
        }
        for (sql, message) in [
            ("UPDATE mfa_factors SET last_used_step = 0", "only grows"),
            ("UPDATE mfa_factors SET confirmed_at = NULL", "stays confirmed"),
            ("UPDATE mfa_backup_codes SET used_at = now(); UPDATE mfa_backup_codes SET used_at = NULL", "stays used"),
        ] {
            let result = as_runtime(db, Some(other), Some(alice), sql).await;
            assert!(matches!(&result, Err(e) if e.to_string().contains(message)), "{sql}: {result:?}");
        }
        for (sql, what) in [
            (format!("INSERT INTO mfa_factors (id, user_id, kind, name, secret, algorithm, digits, period) VALUES (gen_random_uuid(), '{alice}', 'totp', 'rogue', '\\x00', 'SHA1', 6, 30)"), "a factor for someone else"),
            (format!("INSERT INTO mfa_backup_codes (id, user_id, code_hash) VALUES (gen_random_uuid(), '{alice}', repeat('a', 64))"), "a backup code for someone else"),
        ] {
            let result = as_runtime(db, Some(own), Some(me), &sql).await;
            assert!(rls_refused(&result), "{what}: {result:?}");
        }

        // Sign-in challenges and anomaly reports: the acting user's own, the challenge
        // hash unreadable, a completed challenge stays completed and failures only
        // grow, reports cannot be changed or removed, nothing is deleted.
        db.execute_unprepared(&format!(
            "INSERT INTO mfa_challenges (id, user_id, token_hash, reason, failures, expires_at, completed_at)
             VALUES (gen_random_uuid(), '{alice}', repeat('c', 64), 'factor', 2, now() + interval '5 minutes', now())"
        ))
        .await
        .expect("a completed challenge of Alice's");
        assert!(
            count(db, &format!("SELECT count(*) FROM session_anomaly_reports WHERE user_id = '{alice}'")).await > 0,
            "the fixtures give Alice an anomaly report"
        );
        for table in ["mfa_challenges", "session_anomaly_reports"] {
            assert_eq!(
                count_as_runtime(db, Some(own), Some(me), &format!("SELECT count(*) FROM {table}")).await,
                count(db, &format!("SELECT count(*) FROM {table} WHERE user_id = '{me}'")).await,
                "{table}: another user's rows are invisible"
            );
            assert_eq!(
                count_as_runtime(db, Some(other), Some(alice), &format!("SELECT count(*) FROM {table}")).await,
                count(db, &format!("SELECT count(*) FROM {table} WHERE user_id = '{alice}'")).await,
                "{table}: the acting user's own rows"
            );
            assert_eq!(
                count_as_runtime(db, None, None, &format!("SELECT count(*) FROM {table}")).await,
                0,
                "{table}: nobody acting sees nothing"
            );
        }
        for sql in [
            "SELECT token_hash FROM mfa_challenges".to_owned(),
            "DELETE FROM mfa_challenges".to_owned(),
            format!("UPDATE mfa_challenges SET user_id = '{me}'"),
            "UPDATE mfa_challenges SET expires_at = now() + interval '1 year'".to_owned(),
            "UPDATE session_anomaly_reports SET risk_score = 0".to_owned(),
            "DELETE FROM session_anomaly_reports".to_owned(),
        ] {
            let result = as_runtime(db, Some(other), Some(alice), &sql).await;
            assert!(denied(&result), "{sql}: {result:?}");
        }
        for (sql, message) in [
            ("UPDATE mfa_challenges SET completed_at = NULL", "stays completed"),
            ("UPDATE mfa_challenges SET failures = 0", "only grow"),
        ] {
            let result = as_runtime(db, Some(other), Some(alice), sql).await;
            assert!(matches!(&result, Err(e) if e.to_string().contains(message)), "{sql}: {result:?}");
        }
        for (sql, what) in [
            (format!("INSERT INTO mfa_challenges (id, user_id, token_hash, reason, expires_at) VALUES (gen_random_uuid(), '{alice}', repeat('d', 64), 'factor', now())"), "a challenge for someone else"),
            (format!("INSERT INTO session_anomaly_reports (id, user_id, kind, risk_score, details) VALUES (gen_random_uuid(), '{alice}', 'new_device', 0, '{{}}')"), "a report about someone else"),
        ] {
            let result = as_runtime(db, Some(own), Some(me), &sql).await;
            assert!(rls_refused(&result), "{what}: {result:?}");
        }
        // The sealed successor of a refresh token: the acting user's sessions' only.
        assert_eq!(
            count_as_runtime(db, Some(own), Some(me), "SELECT count(reissue_sealed) FROM refresh_tokens").await,
            0,
            "refresh_tokens: no other user's sealed tokens"
        );
        // A session's own user, as the runtime role, cannot bring it back from revocation,
        // push its end out, or move it; a report names only one's own session.
        let alices_session = count(db, &format!("SELECT count(*) FROM sessions WHERE user_id = '{alice}'")).await;
        assert!(alices_session > 0, "the fixtures give Alice sessions");
        for (sql, message) in [
            ("UPDATE sessions SET revoked_at = now(), revoked_reason = 'logout'; UPDATE sessions SET revoked_at = NULL, revoked_reason = NULL", "stays revoked"),
            ("UPDATE sessions SET expires_at = expires_at + interval '10 years'", "never moves later"),
            ("UPDATE sessions SET created_at = created_at - interval '1 day'", "fixed"),
        ] {
            let result = as_runtime(db, Some(other), Some(alice), sql).await;
            assert!(matches!(&result, Err(e) if e.to_string().contains(message)), "{sql}: {result:?}");
        }
        let result = as_runtime(db, Some(own), Some(me), &format!(
            "INSERT INTO session_anomaly_reports (id, user_id, session_id, kind, risk_score, details)
             SELECT gen_random_uuid(), '{me}', id, 'new_device', 0, '{{}}' FROM (SELECT '{alices}'::uuid AS id) s",
            alices = session_of(db, alice).await,
        )).await;
        assert!(rls_refused(&result), "a report naming someone else's session: {result:?}");
        // Passkeys: the same wall. Nobody else's are visible or changeable; the key,
        // the credential id, the owner and the backup eligibility are fixed once
        // registered; the counter only grows and a disabled passkey stays disabled,
        // even for its owner.
        let alices_passkeys = count(db, &format!("SELECT count(*) FROM passkeys WHERE user_id = '{alice}'")).await;
        assert_eq!(alices_passkeys, 1, "the fixtures give Alice a passkey");
        assert_eq!(
            count_as_runtime(db, Some(own), Some(me), "SELECT count(*) FROM passkeys").await,
            count(db, &format!("SELECT count(*) FROM passkeys WHERE user_id = '{me}'")).await,
            "passkeys: another user's rows are invisible"
        );
        assert_eq!(
            count_as_runtime(db, Some(other), Some(alice), "SELECT count(*) FROM passkeys").await,
            alices_passkeys,
            "passkeys: the acting user's own rows"
        );
        assert_eq!(
            count_as_runtime(db, None, None, "SELECT count(*) FROM passkeys").await,
            0,
            "passkeys: nobody acting sees nothing"
        );
        for sql in [
            format!("UPDATE passkeys SET sign_count = 0, name = 'pwned' WHERE user_id = '{alice}'"),
            format!("DELETE FROM passkeys WHERE user_id = '{alice}'"),
            "DELETE FROM passkeys".to_owned(),
        ] {
            let result = as_runtime(db, Some(own), Some(me), &sql).await;
            assert!(changed_nothing(&result), "passkeys: {sql}: {result:?}");
        }
        for sql in [
            "UPDATE passkeys SET public_key = '\\x04'".to_owned(),
            "UPDATE passkeys SET credential_id = '\\x00000000000000000000000000000000'".to_owned(),
            format!("UPDATE passkeys SET user_id = '{me}'"),
            "UPDATE passkeys SET backup_eligible = true".to_owned(),
            "UPDATE passkeys SET algorithm = -8".to_owned(),
            format!("INSERT INTO passkeys (id, user_id, credential_id, public_key, algorithm, aaguid, transports, name, disabled_at) VALUES (gen_random_uuid(), '{alice}', '\\x00000000000000000000000000000001', '\\x04', -7, gen_random_uuid(), '', 'rogue', NULL)"),
        ] {
            let result = as_runtime(db, Some(other), Some(alice), &sql).await;
            assert!(denied(&result), "passkeys: {sql}: {result:?}");
        }
        for (sql, message) in [
            ("UPDATE passkeys SET sign_count = 10; UPDATE passkeys SET sign_count = 9", "only grows"),
            ("UPDATE passkeys SET disabled_at = now(), disabled_reason = 'cloned_authenticator'; UPDATE passkeys SET disabled_at = NULL, disabled_reason = NULL", "stays disabled"),
        ] {
            let result = as_runtime(db, Some(other), Some(alice), sql).await;
            assert!(matches!(&result, Err(e) if e.to_string().contains(message)), "{sql}: {result:?}");
        }
        // A disabled passkey (a detected clone) stays as evidence: not even its owner
        // deletes it.
        let txn = runtime_txn(db, Some(other), Some(alice)).await.expect("a runtime transaction");
        txn.execute_unprepared("UPDATE passkeys SET disabled_at = now(), disabled_reason = 'cloned_authenticator'")
            .await
            .expect("the owner may disable a passkey");
        let deleted = txn.execute_unprepared("DELETE FROM passkeys").await;
        assert!(changed_nothing(&deleted), "a disabled passkey is deleted: {deleted:?}");
        txn.rollback().await.expect("rolls back");
        let result = as_runtime(db, Some(own), Some(me), &format!(
            "INSERT INTO passkeys (id, user_id, credential_id, public_key, algorithm, aaguid, transports, name) VALUES (gen_random_uuid(), '{alice}', '\\x00000000000000000000000000000002', '\\x04', -7, gen_random_uuid(), '', 'rogue')"
        )).await;
        assert!(rls_refused(&result), "a passkey for someone else: {result:?}");
        let result = as_runtime(db, Some(own), Some(me), "SELECT * FROM app_passkey_lookup('\\x00')").await;
        assert!(result.is_ok(), "the passkey lookup is callable: {result:?}");
        let columns = count(db, "SELECT count(*) FROM information_schema.parameters p JOIN information_schema.routines r ON r.specific_name = p.specific_name
                                   WHERE r.routine_name = 'app_passkey_lookup' AND p.parameter_mode = 'OUT'").await;
        assert_eq!(columns, 2, "the passkey lookup returns the row and its user, nothing else");

        // No temporary table can shadow a real one on a pooled connection.
        let result = as_runtime(db, Some(own), Some(me), "CREATE TEMP TABLE audit_logs (LIKE public.audit_logs)").await;
        assert!(denied(&result), "temporary tables: {result:?}");

        // The other database roles read everything but the secrets.
        for role in ["read_only", "compliance_officer", "data_processor"] {
            for sql in [
                "SELECT password_hash FROM users",
                "SELECT token_hash FROM refresh_tokens",
                "SELECT key_hash FROM api_keys",
                "SELECT secret FROM mfa_factors",
                "SELECT code_hash FROM mfa_backup_codes",
                "SELECT token_hash FROM mfa_challenges",
                "SELECT reissue_sealed FROM refresh_tokens",
                "DELETE FROM session_anomaly_reports",
                "UPDATE mfa_challenges SET failures = 0",
                "UPDATE sessions SET aal = 'aal2'",
                "UPDATE refresh_tokens SET revoked_at = NULL",
                // Nor write credentials, even with a tenant context they set themselves.
                r#"UPDATE api_keys SET scopes = '["*:*"]'"#,
                "INSERT INTO api_keys (id, tenant_id, name, prefix, key_hash, scopes) VALUES (gen_random_uuid(), gen_random_uuid(), 'x', 'sk_test_x', repeat('a', 64), '[]')",
                "DELETE FROM api_keys",
                "UPDATE mfa_factors SET last_used_step = 0",
                "DELETE FROM mfa_backup_codes",
                "UPDATE passkeys SET sign_count = 0",
                "DELETE FROM passkeys",
            ] {
                let txn = db.begin().await.expect("begins");
                txn.execute_unprepared(&format!("SET LOCAL ROLE {role}")).await.expect("role");
                let result = txn.execute_unprepared(sql).await;
                txn.rollback().await.expect("rolls back");
                assert!(denied(&result), "{role}: {sql}: {result:?}");
            }
        }
    })
    .await;
}

/// One of `user`'s sessions, read as the owner.
async fn session_of(db: &DatabaseConnection, user: impl std::fmt::Display) -> String {
    db.query_one_raw(Statement::from_string(
        DbBackend::Postgres,
        format!("SELECT id::text FROM sessions WHERE user_id = '{user}' LIMIT 1"),
    ))
    .await
    .expect("query")
    .expect("a session")
    .try_get_by_index::<String>(0)
    .expect("an id")
}
