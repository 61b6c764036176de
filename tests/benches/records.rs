//! Protected record read benchmark (PostgreSQL). Prints figures; asserts only that
//! every side read the record.
//!
//! A nurse holding a read grant opens one record, 2,000 times, interleaved with three
//! hand-written reads of the same row:
//! - `read_record`: the runtime role, in the tenant's transaction (membership proved
//!   again), the grant checked by the service and by the records' row-level security,
//!   the body opened, and the read appended to the tenant's audit chain;
//! - hand-written, like for like: one transaction as the runtime role, the context set
//!   and the membership proved in one statement, the row read with the same grant check
//!   (and row-level security), the read appended to the audit chain by one hand-written
//!   statement (lock the head, insert the linked row, move the head), the body opened;
//! - hand-written without the audit row: the same, minus the append. Its commit writes
//!   nothing, so it also skips the WAL flush a durable audit row costs;
//! - hand-written, bare: the owner's single SELECT of the row by id, no check at all.
//!
//! p50 and p99 of each, and the ratios. Run: `cargo bench -p tests --bench records`.

use chrono::Duration;
use entity::audit::chain::{self, ChainedRow};
use entity::records::access_grants::GrantAccess;
use entity::records::records::RecordType;
use entity::tenancy::memberships::MembershipRole;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, TransactionTrait};
use service::access::Scope;
use service::crypto::FieldSlot;
use service::records::{NewGrant, NewRecord, create_record, grant_access, read_record};
use service::tenancy::{TenantCtx, add_member};
use std::time::Instant;
use tests::access_world::{give, role, world};
use tests::fixtures::{self, meta};
use tests::{Backend, Start, TestDb, run_case};
use uuid::Uuid;

const READS: usize = 2_000;
const WARM_UP: usize = 100;

fn main() {
    // SAFETY: set before any thread starts; fail instead of skipping a missing server.
    unsafe { std::env::set_var("REQUIRE_BACKENDS", "postgres") };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        run_case(
            Backend::Postgres,
            "bench_record_read",
            Start::Migrated,
            |t| async move { bench(&t).await },
        )
        .await;
    });
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

const HAND_WRITTEN_READ: &str = "
SELECT r.body FROM records r
 WHERE r.tenant_id = $1 AND r.id = $2
   AND (r.subject_id = $3 OR r.author_id = $3
        OR EXISTS (SELECT 1 FROM access_grants g
                    WHERE g.tenant_id = r.tenant_id AND g.grantee_id = $3
                      AND g.subject_id = r.subject_id AND (g.record_id IS NULL OR g.record_id = r.id)
                      AND g.revoked_at IS NULL AND g.starts_at <= $4 AND g.expires_at > $4))";

/// The context set (the settings the row-level security reads) and the membership
/// proved in one statement: the settings first (a materialised CTE), then the
/// membership under them.
const HAND_WRITTEN_CONTEXT: &str = "
WITH context AS MATERIALIZED (
  SELECT set_config('app.current_tenant_id', $1, true) AS tenant,
         set_config('app.current_user_id', $2, true) AS actor,
         set_config('app.current_time', $3, true) AS at)
SELECT (SELECT m.role FROM memberships m JOIN tenants t ON t.id = m.tenant_id
         WHERE m.tenant_id = $4 AND m.user_id = $5 AND m.status = 'active' AND t.is_active
           AND context.tenant IS NOT NULL)
  FROM context";

/// The audit append written by hand: the head locked, the row numbered and hashed from
/// it by the database, the head moved, in one statement.
const HAND_WRITTEN_APPEND: &str = "
WITH head AS (
  SELECT chain_id, last_seq + 1 AS seq, last_hash AS prev_hash,
         sha256(last_hash || $1 || int8send(last_seq + 1) || $2) AS hash
    FROM audit_chain_heads WHERE chain_id = $3 FOR UPDATE),
written AS (
  INSERT INTO audit_logs (id, tenant_id, actor_user_id, event_type, resource_type, resource_id,
                          outcome, risk_score, ip_address, user_agent, details, occurred_at,
                          chain_id, chain_seq, chain_version, prev_hash, hash)
  SELECT $4, $3, $5, 'record_read', 'record', $6, 'success', 0, $7, $8, $9, $10,
         head.chain_id, head.seq, 1, head.prev_hash, head.hash FROM head)
UPDATE audit_chain_heads AS moved SET last_seq = head.seq, last_hash = head.hash
  FROM head WHERE moved.chain_id = head.chain_id";

/// Who reads what, for the hand-written reads.
struct HandRead<'a> {
    db: &'a DatabaseConnection,
    tenant: Uuid,
    reader: Uuid,
    record: Uuid,
    grant: Uuid,
    now: chrono::DateTime<chrono::Utc>,
}

impl HandRead<'_> {
    /// The sealed body, read as the runtime role with the service's checks by hand,
    /// the read appended to the audit chain when `audited`.
    async fn read(&self, audited: bool) -> Vec<u8> {
        let txn = self.db.begin().await.expect("begins");
        let member: Option<MembershipRole> = txn
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                HAND_WRITTEN_CONTEXT,
                [
                    self.tenant.to_string().into(),
                    self.reader.to_string().into(),
                    self.now.to_rfc3339().into(),
                    self.tenant.into(),
                    self.reader.into(),
                ],
            ))
            .await
            .expect("context and membership")
            .expect("one row")
            .try_get_by_index(0)
            .expect("the role");
        assert!(member.is_some());
        let sealed: Vec<u8> = txn
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                HAND_WRITTEN_READ,
                [
                    self.tenant.into(),
                    self.record.into(),
                    self.reader.into(),
                    self.now.into(),
                ],
            ))
            .await
            .expect("reads")
            .expect("the grant lets it through")
            .try_get_by_index(0)
            .expect("bytes");
        if audited {
            let id = Uuid::now_v7();
            let details = serde_json::json!({ "basis": "grant", "grant_id": self.grant });
            let resource_id = self.record.to_string();
            let at = chain::to_stored_precision(self.now);
            let row = ChainedRow {
                chain_id: self.tenant,
                chain_seq: 0,
                id,
                tenant_id: Some(self.tenant),
                actor_user_id: Some(self.reader),
                event_type: "record_read",
                resource_type: Some("record"),
                resource_id: Some(&resource_id),
                outcome: "success",
                risk_score: 0,
                ip_address: Some("203.0.113.7"),
                user_agent: Some("tests/1.0"),
                details: &details,
                occurred_at: at,
            };
            let split = row.canonical_split_at_seq(1).expect("version 1");
            let moved = txn
                .execute_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    HAND_WRITTEN_APPEND,
                    [
                        split.before.into(),
                        split.after.into(),
                        self.tenant.into(),
                        id.into(),
                        self.reader.into(),
                        resource_id.into(),
                        "203.0.113.7".into(),
                        "tests/1.0".into(),
                        details.into(),
                        at.into(),
                    ],
                ))
                .await
                .expect("appends")
                .rows_affected();
            assert_eq!(moved, 1, "the head moved");
        }
        txn.commit().await.expect("commits");
        sealed
    }
}

async fn bench(t: &TestDb) {
    let w = world(t).await;
    let deps = &w.deps;
    let mut people = Vec::new();
    for name in ["nora", "pat"] {
        let user = fixtures::user(&t.db, deps, name).await;
        add_member(
            &t.db,
            deps,
            &w.owner,
            user.id,
            MembershipRole::Member,
            &meta(),
        )
        .await
        .expect("joins");
        people.push(user.id);
    }
    let (nurse, patient) = (people[0], people[1]);
    let physician = role(t, &w, "physician", &[("records", "write")]).await;
    let keeper = role(t, &w, "keeper", &[("records", "grant")]).await;
    give(t, &w, w.bob, &physician, Scope::Tenant).await;
    give(t, &w, w.alice, &keeper, Scope::Tenant).await;
    let bob = TenantCtx::for_member(&t.db, w.acme.id, w.bob)
        .await
        .expect("member");
    let body = "Blood pressure 128/82 mmHg, resting heart rate 64. Continue current plan.";
    let id = create_record(
        &t.db,
        deps,
        &bob,
        NewRecord::new(patient, RecordType::Consultation, "Check-up", body).expect("valid"),
        &meta(),
    )
    .await
    .expect("written");
    let grant = NewGrant::new(
        nurse,
        patient,
        None,
        GrantAccess::Read,
        "ward round",
        None,
        deps.now() + Duration::days(30),
    )
    .expect("valid");
    let grant = grant_access(&t.db, deps, &w.owner, grant, &meta())
        .await
        .expect("granted");
    let nurse_ctx = TenantCtx::for_member(&t.db, w.acme.id, nurse)
        .await
        .expect("member");
    let row = id.to_string();
    let slot = FieldSlot {
        table: "records",
        column: "body",
        row: &row,
    };

    let by_hand = HandRead {
        db: &t.db,
        tenant: w.acme.id.0,
        reader: nurse.0,
        record: id.0,
        grant: grant.0,
        now: deps.now(),
    };
    let (mut ours, mut audited, mut like, mut bare) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..READS + WARM_UP {
        let start = Instant::now();
        let opened = read_record(&t.db, deps, &nurse_ctx, id, &meta())
            .await
            .expect("the grant opens it");
        let ours_micros = start.elapsed().as_secs_f64() * 1e6;
        assert_eq!(opened.body.as_str(), body);

        let start = Instant::now();
        let opened = deps
            .keys
            .open(slot, &by_hand.read(true).await)
            .expect("opens");
        let audited_micros = start.elapsed().as_secs_f64() * 1e6;
        assert_eq!(&*opened, body.as_bytes());

        let start = Instant::now();
        let opened = deps
            .keys
            .open(slot, &by_hand.read(false).await)
            .expect("opens");
        let like_micros = start.elapsed().as_secs_f64() * 1e6;
        assert_eq!(&*opened, body.as_bytes());

        let start = Instant::now();
        let row = t
            .owner
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT body FROM records WHERE id = $1",
                [id.into()],
            ))
            .await
            .expect("reads");
        let bare_micros = start.elapsed().as_secs_f64() * 1e6;
        assert!(row.is_some());
        if round >= WARM_UP {
            ours.push(ours_micros);
            audited.push(audited_micros);
            like.push(like_micros);
            bare.push(bare_micros);
        }
    }
    for list in [&mut ours, &mut audited, &mut like, &mut bare] {
        list.sort_by(f64::total_cmp);
    }
    println!(
        "protected record read on PostgreSQL: a nurse with a read grant, {READS} reads after {WARM_UP} to warm up"
    );
    for (name, list) in [
        ("read_record (runtime role, audited)", &ours),
        ("hand-written, same checks, audited", &audited),
        ("hand-written, same checks, no audit row", &like),
        ("hand-written bare SELECT (owner)", &bare),
    ] {
        println!(
            "  {name:<42} p50 {:>7.0} µs   p99 {:>7.0} µs",
            percentile(list, 0.5),
            percentile(list, 0.99)
        );
    }
    let p50 = |list: &[f64]| percentile(list, 0.5);
    println!(
        "  ratio p50: {:.2}x the same read by hand (audited), {:.2}x without the audit row, {:.2}x the bare SELECT",
        p50(&ours) / p50(&audited),
        p50(&ours) / p50(&like),
        p50(&ours) / p50(&bare)
    );
    println!(
        "  the audit row by hand costs {:.0} µs at p50 (its insert, and the commit's WAL flush)",
        p50(&audited) - p50(&like)
    );
}
