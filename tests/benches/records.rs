//! Protected record read benchmark (PostgreSQL). Prints figures; asserts only that
//! every side read the record.
//!
//! A nurse holding a read grant opens one record, 2,000 times, interleaved with two
//! hand-written reads of the same row:
//! - `read_record`: the runtime role, in the tenant's transaction (membership proved
//!   again), the grant checked by the service and by the records' row-level security,
//!   the body opened, and the read appended to the tenant's audit chain;
//! - hand-written, like for like but without the audit row: one transaction as the
//!   runtime role, the context set in one statement, the membership checked, the row
//!   read with the same grant check (and row-level security), the body opened;
//! - hand-written, bare: the owner's single SELECT of the row by id, no check at all.
//!
//! p50 and p99 of each, and the ratios. Run: `cargo bench -p tests --bench records`.

use chrono::Duration;
use entity::records::access_grants::GrantAccess;
use entity::records::records::RecordType;
use entity::tenancy::memberships::MembershipRole;
use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};
use service::access::Scope;
use service::crypto::FieldSlot;
use service::records::{NewGrant, NewRecord, create_record, grant_access, read_record};
use service::tenancy::{TenantCtx, add_member};
use std::time::Instant;
use tests::access_world::{give, role, world};
use tests::fixtures::{self, meta};
use tests::{Backend, Start, TestDb, run_case};

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
    grant_access(&t.db, deps, &w.owner, grant, &meta())
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

    let (mut ours, mut like, mut bare) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..READS + WARM_UP {
        let start = Instant::now();
        let opened = read_record(&t.db, deps, &nurse_ctx, id, &meta())
            .await
            .expect("the grant opens it");
        let ours_micros = start.elapsed().as_secs_f64() * 1e6;
        assert_eq!(opened.body.as_str(), body);

        let start = Instant::now();
        let txn = t.db.begin().await.expect("begins");
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT set_config('app.current_tenant_id', $1, true), set_config('app.current_user_id', $2, true), set_config('app.current_time', $3, true)",
            [
                w.acme.id.to_string().into(),
                nurse.to_string().into(),
                deps.now().to_rfc3339().into(),
            ],
        ))
        .await
        .expect("context");
        let member = txn
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT m.role FROM memberships m JOIN tenants t ON t.id = m.tenant_id
                  WHERE m.tenant_id = $1 AND m.user_id = $2 AND m.status = 'active' AND t.is_active",
                [w.acme.id.into(), nurse.into()],
            ))
            .await
            .expect("membership");
        assert!(member.is_some());
        let sealed: Vec<u8> = txn
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                HAND_WRITTEN_READ,
                [w.acme.id.into(), id.into(), nurse.into(), deps.now().into()],
            ))
            .await
            .expect("reads")
            .expect("the grant lets it through")
            .try_get_by_index(0)
            .expect("bytes");
        txn.commit().await.expect("commits");
        let opened = deps.keys.open(slot, &sealed).expect("opens");
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
            like.push(like_micros);
            bare.push(bare_micros);
        }
    }
    for list in [&mut ours, &mut like, &mut bare] {
        list.sort_by(f64::total_cmp);
    }
    println!(
        "protected record read on PostgreSQL: a nurse with a read grant, {READS} reads after {WARM_UP} to warm up"
    );
    for (name, list) in [
        ("read_record (runtime role, audited)", &ours),
        ("hand-written, same checks, no audit row", &like),
        ("hand-written bare SELECT (owner)", &bare),
    ] {
        println!(
            "  {name:<42} p50 {:>7.0} µs   p99 {:>7.0} µs",
            percentile(list, 0.5),
            percentile(list, 0.99)
        );
    }
    println!(
        "  ratio p50: {:.2}x the same checks by hand, {:.2}x the bare SELECT",
        percentile(&ours, 0.5) / percentile(&like, 0.5),
        percentile(&ours, 0.5) / percentile(&bare, 0.5)
    );
}
