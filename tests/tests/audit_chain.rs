//! The tamper-evident audit trail: every append links a per-tenant hash chain, history
//! cannot be changed through a connection, and verification (alone, or against a
//! signed checkpoint) finds what someone with the owner's access changed anyway.

use entity::TenantId;
use entity::audit::audit_chain_heads;
use entity::audit::audit_logs::{self, AuditOutcome};
use entity::audit::chain::ANONYMOUS_CHAIN;
use migration::MigratorTrait;
use sea_orm::sea_query::{Alias, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};
use serde_json::json;
use service::audit::checkpoint::{self, CheckpointKey, CheckpointKeyError};
use service::audit::verify::{self, ChainScope, Finding, VerifyReport};
use service::audit::{AuditEntry, AuditEvent, record};
use service::deps::Deps;
use service::environment::AppEnv;
use service::tenancy::TenantCtx;
use std::sync::Arc;
use std::time::Duration;
use tests::fixtures::{self, meta};
use tests::tamper::{self, as_owner_bypassing_triggers, uuid_literal};
use tests::{Backend, TestDb};
use uuid::Uuid;

tests::backend_tests!(Migrated:
    appends_link_each_tenants_chain_and_verify,
    a_changed_row_is_found_at_its_sequence,
    a_deleted_row_is_a_gap,
    update_and_delete_of_audit_rows_fail_through_a_connection,
    a_recomputed_chain_passes_alone_and_fails_against_the_checkpoint,
    a_truncated_chain_fails_against_the_checkpoint,
    a_checkpoint_is_refused_for_a_broken_trail_and_for_a_forged_file,
    eight_concurrent_writers_to_one_tenant_keep_one_unbroken_chain,
    eight_new_chains_started_at_once_all_commit,
    rows_outside_their_chain_are_refused_or_reported,
);

mod before_the_chain {
    use super::rows_written_before_the_chain_are_chained_by_the_migration as case;
    use tests::{Backend, Start, run_case};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_rows_written_before_the_chain_are_chained_by_the_migration() {
        run_case(Backend::Sqlite, "pre_chain_rows", Start::Empty, case).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_rows_written_before_the_chain_are_chained_by_the_migration() {
        run_case(Backend::Postgres, "pre_chain_rows", Start::Empty, case).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mysql_rows_written_before_the_chain_are_chained_by_the_migration() {
        run_case(Backend::MySql, "pre_chain_rows", Start::Empty, case).await;
    }
}

async fn verify_all(t: &TestDb) -> VerifyReport {
    verify::verify(&t.owner, ChainScope::All, None, |_| {})
        .await
        .expect("verifies")
}

/// `n` role_created events in `ctx`'s tenant, one transaction each.
async fn append(t: &TestDb, deps: &Deps, ctx: &TenantCtx, n: usize) {
    for i in 0..n {
        let txn = ctx.begin(&t.db).await.expect("begins");
        record(
            &txn,
            deps,
            AuditEntry::by_member(ctx, AuditEvent::RoleCreated, &meta())
                .resource("role", format!("r{i}"))
                .details(
                    json!({ "name": format!("role {i}"), "nested": { "b": 2, "a": [1, 2.5] } }),
                ),
        )
        .await
        .expect("records");
        txn.commit().await.expect("commits");
    }
}

struct Tenant {
    deps: Deps,
    id: TenantId,
    ctx: Arc<TenantCtx>,
}

async fn tenant_with_events(t: &TestDb, n: usize) -> Tenant {
    let (deps, _) = fixtures::deps();
    let alice = fixtures::user(&t.db, &deps, "alice").await;
    let acme = fixtures::tenant(&t.db, &deps, "acme", &alice).await;
    let ctx = TenantCtx::for_member(&t.db, acme.id, alice.id)
        .await
        .expect("member");
    append(t, &deps, &ctx, n).await;
    Tenant {
        deps,
        id: acme.id,
        ctx: Arc::new(ctx),
    }
}

async fn row_at(t: &TestDb, chain: Uuid, seq: i64) -> audit_logs::Model {
    audit_logs::Entity::find()
        .filter(audit_logs::Column::ChainId.eq(chain))
        .filter(audit_logs::Column::ChainSeq.eq(seq))
        .one(&t.owner)
        .await
        .expect("query")
        .expect("the row")
}

async fn appends_link_each_tenants_chain_and_verify(t: TestDb) {
    let acme = tenant_with_events(&t, 5).await;
    let rows = audit_logs::Entity::find()
        .filter(audit_logs::Column::ChainId.eq(acme.id.0))
        .order_by_asc(audit_logs::Column::ChainSeq)
        .all(&t.owner)
        .await
        .expect("rows");
    // tenant_created, member_added (the owner) and the five appended.
    assert!(rows.len() >= 6, "{}", rows.len());
    let mut prev = vec![0u8; 32];
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row.chain_seq, i as i64 + 1, "numbered without gaps");
        assert_eq!(row.tenant_id, Some(acme.id));
        assert_eq!(row.prev_hash, prev, "links to the previous row");
        prev = row.hash.clone();
    }
    let head = audit_chain_heads::Entity::find_by_id(acme.id.0)
        .one(&t.owner)
        .await
        .expect("query")
        .expect("the tenant's head");
    assert_eq!((head.last_seq, head.last_hash), (rows.len() as i64, prev));

    // Events outside any tenant chain by actor, or anonymously.
    let user_rows = audit_logs::Entity::find()
        .filter(audit_logs::Column::TenantId.is_null())
        .all(&t.owner)
        .await
        .expect("rows");
    assert!(!user_rows.is_empty());
    for row in &user_rows {
        let expected = row.actor_user_id.map_or(ANONYMOUS_CHAIN, |u| u.0);
        assert_eq!(row.chain_id, expected);
    }

    let report = verify_all(&t).await;
    assert!(report.is_intact(), "{:?}", report.findings);
    let total = audit_logs::Entity::find()
        .count(&t.owner)
        .await
        .expect("count");
    assert_eq!(report.rows, total, "every row was walked");
    let one = verify::verify(&t.owner, ChainScope::One(acme.id.0), None, |_| {})
        .await
        .expect("verifies");
    assert_eq!((one.chains, one.rows), (1, rows.len() as u64));
    assert!(one.is_intact());
}

async fn a_changed_row_is_found_at_its_sequence(t: TestDb) {
    let acme = tenant_with_events(&t, 6).await;
    let victim = row_at(&t, acme.id.0, 4).await;
    as_owner_bypassing_triggers(
        &t,
        &[format!(
            "UPDATE audit_logs SET outcome = 'denied' WHERE id = {}",
            uuid_literal(t.backend, victim.id.0)
        )],
    )
    .await;
    let report = verify_all(&t).await;
    assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
    match &report.findings[0] {
        Finding::BrokenLink {
            chain_id,
            sequence,
            row_id,
            found_hash,
            expected_hash,
        } => {
            assert_eq!((*chain_id, *sequence, *row_id), (acme.id.0, 4, victim.id.0));
            assert_eq!(found_hash, &hex::encode(&victim.hash));
            assert_ne!(expected_hash, found_hash);
        }
        other => panic!("expected a broken link, got {other:?}"),
    }
    // Other chains are untouched, and the tenant's alone reports the same.
    let one = verify::verify(&t.owner, ChainScope::One(acme.id.0), None, |_| {})
        .await
        .expect("verifies");
    assert_eq!(one.findings, report.findings);
}

async fn a_deleted_row_is_a_gap(t: TestDb) {
    let acme = tenant_with_events(&t, 6).await;
    let victim = row_at(&t, acme.id.0, 3).await;
    as_owner_bypassing_triggers(
        &t,
        &[format!(
            "DELETE FROM audit_logs WHERE id = {}",
            uuid_literal(t.backend, victim.id.0)
        )],
    )
    .await;
    let report = verify_all(&t).await;
    assert_eq!(
        report.findings,
        vec![Finding::Gap {
            chain_id: acme.id.0,
            expected_sequence: 3,
            found_sequence: 4,
        }]
    );
}

async fn update_and_delete_of_audit_rows_fail_through_a_connection(t: TestDb) {
    let acme = tenant_with_events(&t, 2).await;
    let before = audit_logs::Entity::find()
        .all(&t.owner)
        .await
        .expect("rows");
    let id = uuid_literal(t.backend, before[0].id.0);
    // The owner's own connection: the triggers refuse it too.
    for sql in [
        format!("UPDATE audit_logs SET risk_score = 99 WHERE id = {id}"),
        format!("DELETE FROM audit_logs WHERE id = {id}"),
        "DELETE FROM audit_logs".to_owned(),
    ] {
        let result = t.owner.execute_unprepared(&sql).await;
        let error = result.expect_err(&sql).to_string();
        assert!(error.contains("append-only"), "{sql}: {error}");
    }
    if t.backend == Backend::Postgres {
        let result = t
            .owner
            .execute_unprepared("TRUNCATE audit_logs CASCADE")
            .await;
        assert!(
            result
                .expect_err("truncate")
                .to_string()
                .contains("append-only"),
            "TRUNCATE is refused by its trigger"
        );
    }
    // The service's connection (the runtime role on PostgreSQL), in a tenant's
    // transaction.
    let txn = acme.ctx.begin(&t.db).await.expect("begins");
    let result = txn
        .execute_unprepared(&format!(
            "UPDATE audit_logs SET risk_score = 99 WHERE id = {id}"
        ))
        .await;
    assert!(result.is_err(), "{result:?}");
    drop(txn);
    let after = audit_logs::Entity::find()
        .all(&t.owner)
        .await
        .expect("rows");
    assert_eq!(before, after, "nothing changed");
    assert!(verify_all(&t).await.is_intact());
}

async fn a_recomputed_chain_passes_alone_and_fails_against_the_checkpoint(t: TestDb) {
    let acme = tenant_with_events(&t, 5).await;
    let key = CheckpointKey::development();
    let (signed, _) = checkpoint::sign_checkpoint(&t.owner, &key, acme.deps.now())
        .await
        .expect("signs");
    let signed_head = signed
        .chains
        .iter()
        .find(|h| h.chain_id == acme.id.0)
        .expect("the tenant's chain is signed")
        .clone();
    // The file round-trips.
    let signed =
        checkpoint::Checkpoint::parse(&serde_json::to_string(&signed).unwrap()).expect("parses");

    tamper::recompute_chain(&t, acme.id.0, 2, 77).await;
    assert_eq!(row_at(&t, acme.id.0, 2).await.risk_score, 77);
    let alone = verify_all(&t).await;
    assert!(
        alone.is_intact(),
        "a recomputed chain is consistent: {:?}",
        alone.findings
    );

    let against = checkpoint::verify_against_checkpoint(
        &t.owner,
        ChainScope::All,
        &signed,
        &key.verifying_key(),
        |_| {},
    )
    .await
    .expect("verifies");
    let now = row_at(&t, acme.id.0, signed_head.sequence).await;
    assert_eq!(
        against.findings,
        vec![Finding::CheckpointMismatch {
            chain_id: acme.id.0,
            signed_sequence: signed_head.sequence,
            signed_hash: signed_head.hash.clone(),
            found_hash: Some(hex::encode(&now.hash)),
        }]
    );
}

async fn a_truncated_chain_fails_against_the_checkpoint(t: TestDb) {
    let acme = tenant_with_events(&t, 4).await;
    let key = CheckpointKey::development();
    let (signed, _) = checkpoint::sign_checkpoint(&t.owner, &key, acme.deps.now())
        .await
        .expect("signs");
    let head = signed
        .chains
        .iter()
        .find(|h| h.chain_id == acme.id.0)
        .unwrap()
        .clone();
    let last = row_at(&t, acme.id.0, head.sequence).await;
    let kept = row_at(&t, acme.id.0, head.sequence - 1).await;
    // The last row removed and the head moved back: the chain alone is consistent.
    as_owner_bypassing_triggers(
        &t,
        &[
            format!(
                "DELETE FROM audit_logs WHERE id = {}",
                uuid_literal(t.backend, last.id.0)
            ),
            format!(
                "UPDATE audit_chain_heads SET last_seq = {}, last_hash = {} WHERE chain_id = {}",
                kept.chain_seq,
                tamper::bytes_literal(t.backend, &kept.hash),
                uuid_literal(t.backend, acme.id.0)
            ),
        ],
    )
    .await;
    assert!(verify_all(&t).await.is_intact());
    let against = checkpoint::verify_against_checkpoint(
        &t.owner,
        ChainScope::One(acme.id.0),
        &signed,
        &key.verifying_key(),
        |_| {},
    )
    .await
    .expect("verifies");
    assert_eq!(
        against.findings,
        vec![Finding::CheckpointMismatch {
            chain_id: acme.id.0,
            signed_sequence: head.sequence,
            signed_hash: head.hash,
            found_hash: None,
        }]
    );
}

async fn a_checkpoint_is_refused_for_a_broken_trail_and_for_a_forged_file(t: TestDb) {
    let acme = tenant_with_events(&t, 3).await;
    let key = CheckpointKey::development();
    let (signed, _) = checkpoint::sign_checkpoint(&t.owner, &key, acme.deps.now())
        .await
        .expect("signs");

    // A head edited in the file, or the file checked with another key.
    let mut forged = signed.clone();
    forged.chains[0].sequence -= 1;
    for (file, verifying) in [
        (&forged, key.verifying_key()),
        (
            &signed,
            CheckpointKey::from_lookup(AppEnv::Production, &|name| {
                (name == "AUDIT_CHECKPOINT_KEY").then(|| "11".repeat(32))
            })
            .expect("a key")
            .verifying_key(),
        ),
    ] {
        let result = checkpoint::verify_against_checkpoint(
            &t.owner,
            ChainScope::All,
            file,
            &verifying,
            |_| {},
        )
        .await;
        assert!(
            matches!(
                result,
                Err(service::ServiceError::Checkpoint(
                    checkpoint::CheckpointError::BadSignature(_)
                ))
            ),
            "{result:?}"
        );
    }

    // Broken trails are not signed.
    let victim = row_at(&t, acme.id.0, 2).await;
    as_owner_bypassing_triggers(
        &t,
        &[format!(
            "UPDATE audit_logs SET risk_score = 50 WHERE id = {}",
            uuid_literal(t.backend, victim.id.0)
        )],
    )
    .await;
    let result = checkpoint::sign_checkpoint(&t.owner, &key, acme.deps.now()).await;
    assert!(
        matches!(
            result,
            Err(service::ServiceError::Checkpoint(
                checkpoint::CheckpointError::ChainsBroken(1)
            ))
        ),
        "{result:?}"
    );
}

async fn eight_concurrent_writers_to_one_tenant_keep_one_unbroken_chain(t: TestDb) {
    let acme = tenant_with_events(&t, 0).await;
    let before = chain_length(&t, acme.id.0).await;
    let per_writer = 12;
    let mut writers = Vec::new();
    for _ in 0..8 {
        let (db, deps, ctx) = (t.db.clone(), acme.deps.clone(), acme.ctx.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..per_writer {
                let txn = ctx.begin(&db).await.expect("begins");
                record(
                    &txn,
                    &deps,
                    AuditEntry::by_member(&ctx, AuditEvent::RoleCreated, &meta())
                        .resource("role", i),
                )
                .await
                .expect("records");
                txn.commit().await.expect("commits");
            }
        }));
    }
    for writer in writers {
        writer.await.expect("writer finished");
    }
    let report = verify::verify(&t.owner, ChainScope::One(acme.id.0), None, |_| {})
        .await
        .expect("verifies");
    assert!(report.is_intact(), "{:?}", report.findings);
    assert_eq!(report.rows, before + 8 * per_writer);
}

/// PostgreSQL numbers and hashes an appended row in the database: the service checks
/// that hash against its own, and a link that differs fails the append and cannot be
/// committed, even by a caller that commits after the error. Here the database's
/// `sha256` is shadowed for one transaction by a function that answers something else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_link_hashed_otherwise_by_the_database_is_refused() {
    tests::run_case(
        Backend::Postgres,
        "chain_hash_check",
        tests::Start::Migrated,
        link_hashed_otherwise,
    )
    .await;
}

async fn link_hashed_otherwise(t: TestDb) {
    let acme = tenant_with_events(&t, 2).await;
    let before = chain_length(&t, acme.id.0).await;
    t.owner
        .execute_unprepared(
            "CREATE FUNCTION public.sha256(bytea) RETURNS bytea LANGUAGE sql IMMUTABLE
               AS $$ SELECT pg_catalog.sha256($1 || '\\x00'::bytea) $$;
             GRANT EXECUTE ON FUNCTION public.sha256(bytea) TO PUBLIC;",
        )
        .await
        .expect("a shadowing sha256");
    let txn = acme.ctx.begin(&t.db).await.expect("begins");
    txn.execute_unprepared("SET LOCAL search_path = public, pg_catalog")
        .await
        .expect("the shadow first");
    let refused = record(
        &txn,
        &acme.deps,
        AuditEntry::by_member(&acme.ctx, AuditEvent::RoleCreated, &meta()),
    )
    .await
    .expect_err("the hashes differ");
    assert!(refused.to_string().contains("hash differs"), "{refused}");
    // A careless caller commits anyway: the transaction was aborted, nothing lands.
    let _ = txn.commit().await;
    assert_eq!(
        chain_length(&t, acme.id.0).await,
        before,
        "nothing appended"
    );
    let head = audit_chain_heads::Entity::find_by_id(acme.id.0)
        .one(&t.owner)
        .await
        .expect("query")
        .expect("the head");
    assert_eq!(head.last_seq, before as i64, "the head did not move");
    t.owner
        .execute_unprepared("DROP FUNCTION public.sha256(bytea)")
        .await
        .expect("dropped");
    append(&t, &acme.deps, &acme.ctx, 1).await;
    assert!(
        verify_all(&t).await.is_intact(),
        "the chain goes on unbroken"
    );
}

async fn chain_length(t: &TestDb, chain: Uuid) -> u64 {
    audit_logs::Entity::find()
        .filter(audit_logs::Column::ChainId.eq(chain))
        .count(&t.owner)
        .await
        .expect("count")
}

/// PostgreSQL and MariaDB lock one head row per chain: a writer holding one tenant's
/// chain does not hold up another tenant's writers, and does hold up its own tenant's.
/// (SQLite has one writer at a time for the whole database.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_writers_to_different_tenants_do_not_wait_for_each_other() {
    tests::run_case(
        Backend::Postgres,
        "chain_locks",
        tests::Start::Migrated,
        chain_locks,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_writers_to_different_tenants_do_not_wait_for_each_other() {
    tests::run_case(
        Backend::MySql,
        "chain_locks",
        tests::Start::Migrated,
        chain_locks,
    )
    .await;
}

async fn chain_locks(t: TestDb) {
    let (deps, _) = fixtures::deps();
    let alice = fixtures::user(&t.db, &deps, "alice").await;
    let mut tenants = Vec::new();
    for i in 0..8 {
        let tenant = fixtures::tenant(&t.db, &deps, &format!("tenant-{i}"), &alice).await;
        tenants.push(Arc::new(
            TenantCtx::for_member(&t.db, tenant.id, alice.id)
                .await
                .expect("member"),
        ));
    }
    // Tenant 0's chain is held by an open transaction.
    let holder = tenants[0].begin(&t.db).await.expect("begins");
    record(
        &holder,
        &deps,
        AuditEntry::by_member(&tenants[0], AuditEvent::RoleCreated, &meta()),
    )
    .await
    .expect("records");

    // The seven others append meanwhile, concurrently.
    let mut others = Vec::new();
    for ctx in &tenants[1..] {
        let (db, deps, ctx) = (t.db.clone(), deps.clone(), ctx.clone());
        others.push(tokio::spawn(async move {
            let txn = ctx.begin(&db).await.expect("begins");
            record(
                &txn,
                &deps,
                AuditEntry::by_member(&ctx, AuditEvent::RoleCreated, &meta()),
            )
            .await
            .expect("records");
            txn.commit().await.expect("commits");
        }));
    }
    for other in others {
        tokio::time::timeout(Duration::from_secs(10), other)
            .await
            .expect("another tenant's writer did not wait for tenant 0's")
            .expect("finished");
    }

    // A second writer of tenant 0 waits until the holder commits.
    let (db, deps2, ctx0) = (t.db.clone(), deps.clone(), tenants[0].clone());
    let mut same = tokio::spawn(async move {
        let txn = ctx0.begin(&db).await.expect("begins");
        record(
            &txn,
            &deps2,
            AuditEntry::by_member(&ctx0, AuditEvent::RoleCreated, &meta()),
        )
        .await
        .expect("records");
        txn.commit().await.expect("commits");
    });
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut same)
            .await
            .is_err(),
        "the same tenant's writer waits for the chain's head"
    );
    holder.commit().await.expect("commits");
    tokio::time::timeout(Duration::from_secs(10), same)
        .await
        .expect("then goes on")
        .expect("finished");
    assert!(verify_all(&t).await.is_intact());
}

/// Rows of an earlier release (before the chain) are chained when the chain's
/// migration runs, in the order they happened; then appends continue the chains.
async fn rows_written_before_the_chain_are_chained_by_the_migration(t: TestDb) {
    let all = migration::Migrator::migrations();
    let chain_migration = all
        .iter()
        .position(|m| m.name() == "m20261123_000033_audit_chain_and_append_only")
        .expect("the chain migration");
    migration::Migrator::up(&t.owner, Some(chain_migration as u32))
        .await
        .expect("migrates to just before the chain");
    let (alice, bob) = (Uuid::from_u128(0xa11ce), Uuid::from_u128(0xb0b));
    let base = chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05.123456Z")
        .unwrap()
        .to_utc();
    // Inserted out of time order, with details whose keys are unsorted.
    let rows = [
        (3, Some(alice), "logout"),
        (1, Some(alice), "login"),
        (2, None, "login_failed"),
        (4, Some(bob), "login"),
        (5, None, "login_failed"),
    ];
    let mut insert = Query::insert();
    insert.into_table(Alias::new("audit_logs")).columns(
        [
            "id",
            "actor_user_id",
            "event_type",
            "outcome",
            "risk_score",
            "details",
            "occurred_at",
        ]
        .map(Alias::new),
    );
    for (minute, actor, event) in rows {
        insert.values_panic([
            Uuid::from_u128(minute).into(),
            actor.into(),
            event.into(),
            "success".into(),
            0i16.into(),
            json!({ "z": minute, "a": { "y": true, "b": null } }).into(),
            (base + chrono::Duration::minutes(minute as i64)).into(),
        ]);
    }
    t.owner.execute(&insert).await.expect("old rows");

    migration::Migrator::up(&t.owner, None)
        .await
        .expect("migrates");
    let report = verify_all(&t).await;
    assert!(report.is_intact(), "{:?}", report.findings);
    assert_eq!(report.rows, 5);
    let order = |chain: Uuid| {
        let owner = t.owner.clone();
        async move {
            audit_logs::Entity::find()
                .filter(audit_logs::Column::ChainId.eq(chain))
                .order_by_asc(audit_logs::Column::ChainSeq)
                .all(&owner)
                .await
                .expect("rows")
                .into_iter()
                .map(|r| (r.chain_seq, r.id.0.as_u128()))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        order(alice).await,
        vec![(1, 1), (2, 3)],
        "by time, not insertion"
    );
    assert_eq!(order(bob).await, vec![(1, 4)]);
    assert_eq!(order(ANONYMOUS_CHAIN).await, vec![(1, 2), (2, 5)]);

    // The service continues a chain the migration built.
    let (deps, _) = fixtures::deps();
    let txn = service::begin_write(&t.owner).await.expect("begins");
    record(
        &txn,
        &deps,
        AuditEntry::new(AuditEvent::LoginFailed, AuditOutcome::Failure, &meta()),
    )
    .await
    .expect("records");
    txn.commit().await.expect("commits");
    assert_eq!(order(ANONYMOUS_CHAIN).await.last().map(|r| r.0), Some(3));
    assert!(verify_all(&t).await.is_intact());
}

#[test]
fn checkpoint_keys_are_required_outside_local_and_test() {
    let none = |_: &str| None;
    assert!(CheckpointKey::from_lookup(AppEnv::Local, &none).is_ok());
    assert!(CheckpointKey::from_lookup(AppEnv::Test, &none).is_ok());
    for env in [AppEnv::Development, AppEnv::Staging, AppEnv::Production] {
        assert_eq!(
            CheckpointKey::from_lookup(env, &none).unwrap_err(),
            CheckpointKeyError::Missing(env)
        );
    }
    let malformed = |_: &str| Some("not hex".to_owned());
    assert!(matches!(
        CheckpointKey::from_lookup(AppEnv::Production, &malformed),
        Err(CheckpointKeyError::Malformed { .. })
    ));
    let key = CheckpointKey::from_lookup(AppEnv::Production, &|name| {
        (name == "AUDIT_CHECKPOINT_KEY").then(|| "ab".repeat(32))
    })
    .expect("a production key");
    assert!(
        !format!("{key:?}").contains(&"ab".repeat(32)),
        "Debug hides the secret"
    );
}

/// Eight users registering at once start eight chains (their first events): on
/// MariaDB a locking read of a missing head would lock a gap and deadlock them.
async fn eight_new_chains_started_at_once_all_commit(t: TestDb) {
    let (deps, _) = fixtures::deps();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (db, deps) = (t.db.clone(), deps.clone());
        tasks.push(tokio::spawn(async move {
            let input = service::identity::NewUser::parse(
                &format!("new{i}@example.com"),
                fixtures::PASSWORD,
                "New",
            )
            .expect("valid");
            service::identity::register_user(&db, &deps, input, &meta())
                .await
                .expect("registers")
        }));
    }
    for task in tasks {
        let account = task.await.expect("finished");
        let head = audit_chain_heads::Entity::find_by_id(account.id.0)
            .one(&t.owner)
            .await
            .expect("query")
            .expect("the user's chain has a head");
        assert_eq!(head.last_seq, 1);
    }
    assert!(verify_all(&t).await.is_intact());
}

/// A row whose chain disagrees with its tenant and actor: refused by a CHECK on
/// PostgreSQL and MariaDB; SQLite cannot add one to an existing table, and verify
/// reports it there.
async fn rows_outside_their_chain_are_refused_or_reported(t: TestDb) {
    let acme = tenant_with_events(&t, 1).await;
    let victim = row_at(&t, acme.id.0, 2).await;
    let other_chain = uuid_literal(t.backend, Uuid::from_u128(99));
    let sql = format!(
        "UPDATE audit_logs SET chain_id = {other_chain}, chain_seq = 1 WHERE id = {}",
        uuid_literal(t.backend, victim.id.0)
    );
    match t.backend {
        Backend::Sqlite => {
            as_owner_bypassing_triggers(&t, &[sql]).await;
            let findings = verify_all(&t).await.findings;
            assert!(
                findings.iter().any(
                    |f| matches!(f, Finding::WrongChain { row_id, .. } if *row_id == victim.id.0)
                ),
                "{findings:?}"
            );
        }
        _ => {
            let insert = format!(
                "INSERT INTO audit_logs (id, tenant_id, event_type, outcome, risk_score, details, occurred_at, chain_id, chain_seq, chain_version, prev_hash, hash) \
                 SELECT {}, tenant_id, event_type, outcome, risk_score, details, occurred_at, {other_chain}, 1, 1, prev_hash, hash FROM audit_logs WHERE id = {}",
                uuid_literal(t.backend, Uuid::from_u128(98)),
                uuid_literal(t.backend, victim.id.0)
            );
            let error = t
                .owner
                .execute_unprepared(&insert)
                .await
                .expect_err("refused");
            assert!(
                error.to_string().contains("ck_audit_logs_chain_id"),
                "{error}"
            );
        }
    }
}
