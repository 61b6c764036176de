//! Protected records: who may read and write them, grants that expire and are
//! revoked, break-glass, kept versions, refusals that write nothing but their audit
//! row, and (PostgreSQL) the same rule as the runtime role's wall.

use chrono::Duration;
use entity::audit::audit_logs::{self, AuditOutcome};
use entity::records::access_grants::{self, GrantAccess, GrantKind};
use entity::records::record_versions;
use entity::records::records::{self as record_rows, RecordType};
use entity::tenancy::memberships::MembershipRole;
use entity::{RecordId, UserId};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use service::access::Scope;
use service::error::StepUp;
use service::identity::{SessionAuth, confirm_totp, enrol_totp};
use service::records::{
    self as records, AccessBasis, NewGrant, NewRecord, RecordChange, break_glass, grant_access,
    read_record, revoke_access, update_record,
};
use service::tenancy::{TenantCtx, add_member};
use service::{Deps, ServiceError};
use tests::access_world::{World, give, role, world};
use tests::fixtures::{self, meta};
use tests::inspect::count_events;
use tests::runtime::count_as_runtime;
use tests::{Backend, TestDb};

tests::backend_tests!(Migrated:
    records_a_nurse_with_a_read_grant_reads_cannot_write_and_loses_access,
    records_a_physician_without_a_grant_is_denied_and_the_denial_is_audited,
    records_break_glass_needs_a_reason_aal2_and_the_permission,
    records_versions_are_kept_in_order,
    records_bad_input_and_other_tenants_write_nothing,
    records_the_runtime_role_reads_no_record_without_access,
    records_bodies_move_to_a_new_key,
    records_break_glass_with_a_moving_clock_and_on_an_unknown_record,
);

/// A clinic in Acme: Alice (owner) keeps the records (grants, review, reads all),
/// Bob and Dr. Jones are physicians, Nora a nurse, Pat a patient.
struct Clinic {
    w: World,
    smith: UserId,
    jones: UserId,
    nurse: UserId,
    patient: UserId,
}

async fn clinic(t: &TestDb) -> Clinic {
    let w = world(t).await;
    let mut members = Vec::new();
    for name in ["jones", "nora", "pat"] {
        let user = fixtures::user(&t.db, &w.deps, name).await;
        add_member(
            &t.db,
            &w.deps,
            &w.owner,
            user.id,
            MembershipRole::Member,
            &meta(),
        )
        .await
        .expect("joins");
        members.push(user.id);
    }
    let physician = role(
        t,
        &w,
        "physician",
        &[("records", "write"), ("records", "break_glass")],
    )
    .await;
    let nurse = role(t, &w, "nurse", &[("records", "read")]).await;
    let keeper = role(
        t,
        &w,
        "records-keeper",
        &[
            ("records", "grant"),
            ("records", "review"),
            ("records", "read_all"),
        ],
    )
    .await;
    give(t, &w, w.bob, &physician, Scope::Tenant).await;
    give(t, &w, members[0], &physician, Scope::Tenant).await;
    give(t, &w, members[1], &nurse, Scope::Tenant).await;
    give(t, &w, w.alice, &keeper, Scope::Tenant).await;
    Clinic {
        smith: w.bob,
        jones: members[0],
        nurse: members[1],
        patient: members[2],
        w,
    }
}

async fn ctx(t: &TestDb, c: &Clinic, user: UserId) -> TenantCtx {
    TenantCtx::for_member(&t.db, c.w.acme.id, user)
        .await
        .expect("member")
}

async fn write(t: &TestDb, c: &Clinic, title: &str, body: &str) -> RecordId {
    let smith = ctx(t, c, c.smith).await;
    records::create_record(
        &t.db,
        &c.w.deps,
        &smith,
        NewRecord::new(c.patient, RecordType::Consultation, title, body).expect("valid"),
        &meta(),
    )
    .await
    .expect("written")
}

async fn read(
    t: &TestDb,
    c: &Clinic,
    user: UserId,
    id: RecordId,
) -> Result<records::OpenedRecord, ServiceError> {
    read_record(&t.db, &c.w.deps, &ctx(t, c, user).await, id, &meta()).await
}

fn grant(
    c: &Clinic,
    grantee: UserId,
    record: Option<RecordId>,
    access: GrantAccess,
    hours: i64,
) -> NewGrant {
    NewGrant::new(
        grantee,
        c.patient,
        record,
        access,
        "ward round",
        None,
        c.w.deps.now() + Duration::hours(hours),
    )
    .expect("valid")
}

async fn give_grant(t: &TestDb, c: &Clinic, new: NewGrant) -> entity::AccessGrantId {
    grant_access(&t.db, &c.w.deps, &c.w.owner, new, &meta())
        .await
        .expect("granted")
}

fn refused<T: std::fmt::Debug>(result: Result<T, ServiceError>) {
    assert!(
        matches!(result, Err(ServiceError::Forbidden { .. })),
        "expected a refusal, got {result:?}"
    );
}

async fn records_a_nurse_with_a_read_grant_reads_cannot_write_and_loses_access(t: TestDb) {
    let c = clinic(&t).await;
    let id = write(&t, &c, "Chest pain", "ECG normal. Follow up in 2 weeks.").await;

    refused(read(&t, &c, c.nurse, id).await);
    let first = give_grant(&t, &c, grant(&c, c.nurse, None, GrantAccess::Read, 8)).await;
    let opened = read(&t, &c, c.nurse, id).await.expect("the grant opens it");
    assert_eq!(opened.body.as_str(), "ECG normal. Follow up in 2 weeks.");
    assert_eq!(opened.access, AccessBasis::Grant(first));

    // Reading is not writing.
    let nurse = ctx(&t, &c, c.nurse).await;
    let change = RecordChange::new(None, None, Some("Altered.")).expect("valid");
    refused(update_record(&t.db, &c.w.deps, &nurse, id, 1, change, &meta()).await);
    let kept = records::read_record(&t.db, &c.w.deps, &ctx(&t, &c, c.smith).await, id, &meta())
        .await
        .expect("the author reads");
    assert_eq!(kept.record.version, 1);
    assert_eq!(kept.body.as_str(), "ECG normal. Follow up in 2 weeks.");

    // The grant ends at its expiry, by the service's clock.
    c.w.clock.advance(Duration::hours(8));
    refused(read(&t, &c, c.nurse, id).await);

    // A grant on the record itself, then revoked.
    let second = give_grant(&t, &c, grant(&c, c.nurse, Some(id), GrantAccess::Read, 24)).await;
    assert_eq!(
        read(&t, &c, c.nurse, id).await.expect("opens").access,
        AccessBasis::Grant(second)
    );
    revoke_access(&t.db, &c.w.deps, &c.w.owner, second, "shift ended", &meta())
        .await
        .expect("revoked");
    refused(read(&t, &c, c.nurse, id).await);
    let again = revoke_access(&t.db, &c.w.deps, &c.w.owner, second, "shift ended", &meta()).await;
    assert!(
        matches!(again, Err(ServiceError::Conflict { .. })),
        "{again:?}"
    );
    let revoked = access_grants::Entity::find_by_id(second)
        .one(&t.owner)
        .await
        .expect("reads")
        .expect("kept");
    assert_eq!(revoked.revoked_by, Some(c.w.alice));
    assert_eq!(revoked.revoke_reason.as_deref(), Some("shift ended"));

    // The subject reads their own.
    assert_eq!(
        read(&t, &c, c.patient, id).await.expect("own").access,
        AccessBasis::Subject
    );
    assert_eq!(count_events(&t.owner, "record_access_granted").await, 2);
    assert_eq!(count_events(&t.owner, "record_access_revoked").await, 1);
    // Refused: before the grant, the write, after expiry, after revocation.
    assert_eq!(count_events(&t.owner, "record_access_denied").await, 4);
}

async fn records_a_physician_without_a_grant_is_denied_and_the_denial_is_audited(t: TestDb) {
    let c = clinic(&t).await;
    let id = write(&t, &c, "Arrhythmia", "Holter monitor for 24 h.").await;
    refused(read(&t, &c, c.jones, id).await);
    let denial = audit_logs::Entity::find()
        .filter(audit_logs::Column::EventType.eq("record_access_denied"))
        .one(&t.owner)
        .await
        .expect("reads")
        .expect("the refusal is audited");
    assert_eq!(denial.actor_user_id, Some(c.jones));
    assert_eq!(denial.outcome, AuditOutcome::Denied);
    assert_eq!(denial.resource_id, Some(id.to_string()));
    assert_eq!(count_events(&t.owner, "record_read").await, 0);

    // Writing needs access to the record, not only the permission.
    let jones = ctx(&t, &c, c.jones).await;
    let change = RecordChange::new(None, Some("Changed"), None).expect("valid");
    refused(update_record(&t.db, &c.w.deps, &jones, id, 1, change.clone(), &meta()).await);
    // A write grant lets him.
    give_grant(&t, &c, grant(&c, c.jones, Some(id), GrantAccess::Write, 2)).await;
    let version = update_record(&t.db, &c.w.deps, &jones, id, 1, change, &meta())
        .await
        .expect("the write grant lets him");
    assert_eq!(version, 2);
    // Holders of records:read_all read without a grant.
    assert_eq!(
        read(&t, &c, c.w.alice, id).await.expect("reads").access,
        AccessBasis::Role
    );
}

fn unix(deps: &Deps) -> u64 {
    u64::try_from(deps.now().timestamp()).expect("after 1970")
}

/// A session of `user` at `aal2` (a TOTP factor confirmed in it).
async fn aal2_session(t: &TestDb, c: &Clinic, user: UserId) -> SessionAuth {
    let deps = &c.w.deps;
    let session = fixtures::session_of(&t.db, deps, user).await;
    let enrolment = enrol_totp(&t.db, deps, &session, "Phone", &meta())
        .await
        .expect("enrols");
    confirm_totp(
        &t.db,
        deps,
        &session,
        &enrolment.code_at(unix(deps)),
        &meta(),
    )
    .await
    .expect("confirms");
    fixtures::current_session(&t.db, deps, user).await
}

async fn grants(t: &TestDb) -> u64 {
    access_grants::Entity::find()
        .count(&t.owner)
        .await
        .expect("counts")
}

async fn records_break_glass_needs_a_reason_aal2_and_the_permission(t: TestDb) {
    let c = clinic(&t).await;
    let deps = &c.w.deps;
    let id = write(&t, &c, "Allergy", "Penicillin: anaphylaxis.").await;
    let jones = ctx(&t, &c, c.jones).await;

    // Below aal2: refused, nothing granted.
    let aal1 = fixtures::session_of(&t.db, deps, c.jones).await;
    let low = break_glass(
        &t.db,
        deps,
        &jones,
        &aal1,
        id,
        "unconscious in the ER",
        &meta(),
    )
    .await;
    assert!(
        matches!(
            low,
            Err(ServiceError::StepUpRequired {
                needs: StepUp::SecondFactor
            })
        ),
        "{low:?}"
    );
    let session = aal2_session(&t, &c, c.jones).await;
    // No reason, or too short a one: refused before anything is written.
    let denied_before = count_events(&t.owner, "record_access_denied").await;
    for reason in ["", "   ", "urgent"] {
        let none = break_glass(&t.db, deps, &jones, &session, id, reason, &meta()).await;
        assert!(
            matches!(none, Err(ServiceError::Validation { .. })),
            "{none:?}"
        );
    }
    assert_eq!(grants(&t).await, 0);
    assert_eq!(
        count_events(&t.owner, "record_access_denied").await,
        denied_before
    );
    assert_eq!(count_events(&t.owner, "record_break_glass").await, 0);

    // Without the permission (the nurse at aal2): refused and audited.
    let nurse_session = aal2_session(&t, &c, c.nurse).await;
    let nurse = ctx(&t, &c, c.nurse).await;
    refused(
        break_glass(
            &t.db,
            deps,
            &nurse,
            &nurse_session,
            id,
            "unconscious in the ER",
            &meta(),
        )
        .await,
    );
    assert_eq!(grants(&t).await, 0);

    let opened = break_glass(
        &t.db,
        deps,
        &jones,
        &session,
        id,
        "unconscious in the ER, no contact",
        &meta(),
    )
    .await
    .expect("break-glass opens it");
    assert_eq!(opened.body.as_str(), "Penicillin: anaphylaxis.");
    let glass = audit_logs::Entity::find()
        .filter(audit_logs::Column::EventType.eq("record_break_glass"))
        .one(&t.owner)
        .await
        .expect("reads")
        .expect("audited");
    assert!(glass.risk_score >= 80, "high risk: {}", glass.risk_score);
    assert_eq!(glass.actor_user_id, Some(c.jones));
    let given = access_grants::Entity::find()
        .one(&t.owner)
        .await
        .expect("reads")
        .expect("a grant");
    assert_eq!(given.kind, GrantKind::BreakGlass);
    assert_eq!(given.record_id, Some(id));
    assert_eq!(given.expires_at - given.starts_at, Duration::hours(1));

    // Within the hour the grant opens it again; after it, nothing.
    c.w.clock.advance(Duration::minutes(30));
    assert!(read(&t, &c, c.jones, id).await.is_ok());
    c.w.clock.advance(Duration::minutes(31));
    refused(read(&t, &c, c.jones, id).await);

    let report = records::break_glass_report(
        &t.db,
        deps,
        &c.w.owner,
        fixtures::start_time(),
        deps.now(),
        &meta(),
    )
    .await
    .expect("the keeper reviews");
    assert_eq!(report.len(), 1);
    assert_eq!(report[0].grant.grantee_id, c.jones);
    assert_eq!(report[0].grant.reason, "unconscious in the ER, no contact");
    assert_eq!(
        report[0].reads, 2,
        "the opening and the read within the hour"
    );
    refused(
        records::break_glass_report(
            &t.db,
            deps,
            &jones,
            fixtures::start_time(),
            deps.now(),
            &meta(),
        )
        .await,
    );
}

async fn records_versions_are_kept_in_order(t: TestDb) {
    let c = clinic(&t).await;
    let deps = &c.w.deps;
    let id = write(&t, &c, "Blood panel", "HbA1c 7.9%").await;
    let smith = ctx(&t, &c, c.smith).await;
    let changes = [
        RecordChange::new(Some(RecordType::LabResult), None, None),
        RecordChange::new(None, None, Some("HbA1c 7.2% (repeat)")),
        RecordChange::new(None, Some("Blood panel, repeated"), Some("HbA1c 6.9%")),
    ];
    for (expected, change) in (1..).zip(changes) {
        c.w.clock.advance(Duration::minutes(5));
        let next = update_record(
            &t.db,
            deps,
            &smith,
            id,
            expected,
            change.expect("valid"),
            &meta(),
        )
        .await
        .expect("changed");
        assert_eq!(next, expected + 1);
    }
    // A change from a version that was replaced meanwhile is refused, nothing kept.
    let stale = RecordChange::new(None, None, Some("lost update")).expect("valid");
    let lost = update_record(&t.db, deps, &smith, id, 2, stale, &meta()).await;
    assert!(
        matches!(lost, Err(ServiceError::Conflict { .. })),
        "{lost:?}"
    );

    let history = records::record_history(&t.db, deps, &smith, id, &meta())
        .await
        .expect("the author reads the history");
    let seen: Vec<_> = history
        .iter()
        .map(|v| {
            (
                v.version.version,
                v.version.record_type,
                v.version.title.as_str(),
                v.body.as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (1, RecordType::Consultation, "Blood panel", "HbA1c 7.9%"),
            (2, RecordType::LabResult, "Blood panel", "HbA1c 7.9%"),
            (
                3,
                RecordType::LabResult,
                "Blood panel",
                "HbA1c 7.2% (repeat)"
            ),
        ]
    );
    assert!(
        history
            .windows(2)
            .all(|w| w[0].version.superseded_at < w[1].version.superseded_at)
    );
    let current = read(&t, &c, c.smith, id).await.expect("reads");
    assert_eq!(current.record.version, 4);
    assert_eq!(current.body.as_str(), "HbA1c 6.9%");
    assert_eq!(current.record.updated_by, Some(c.smith));

    // At rest, bodies are sealed: no clear text in either table.
    let raw = record_rows::Entity::find_by_id(id)
        .one(&t.owner)
        .await
        .expect("reads")
        .expect("row");
    let sealed = std::iter::once(raw.body.expose().to_vec())
        .chain(
            record_versions::Entity::find()
                .all(&t.owner)
                .await
                .expect("reads")
                .into_iter()
                .map(|v| v.body.expose().to_vec()),
        )
        .collect::<Vec<_>>();
    assert_eq!(sealed.len(), 4);
    for bytes in sealed {
        assert!(
            !bytes.windows(5).any(|w| w == b"HbA1c"),
            "a body is stored in clear"
        );
    }
}

async fn records_bad_input_and_other_tenants_write_nothing(t: TestDb) {
    let c = clinic(&t).await;
    let deps = &c.w.deps;
    let id = write(&t, &c, "Baseline", "Fit.").await;
    for (title, body) in [("", "x"), ("ok", ""), ("ok", "   "), ("bad\u{7}title", "x")] {
        assert!(
            NewRecord::new(c.patient, RecordType::Other, title, body).is_err(),
            "{title:?} {body:?}"
        );
    }
    assert!(NewRecord::new(c.patient, RecordType::Other, &"t".repeat(201), "x").is_err());
    assert!(NewRecord::new(c.patient, RecordType::Other, "ok", &"x".repeat(60_001)).is_err());
    assert!(NewRecord::new(c.patient, RecordType::Other, "nul", "a\0b").is_err());
    assert!(RecordChange::new(None, None, None).is_err());
    let now = deps.now();
    assert!(
        NewGrant::new(
            c.nurse,
            c.patient,
            None,
            GrantAccess::Read,
            "",
            None,
            now + Duration::hours(1)
        )
        .is_err()
    );
    assert!(
        NewGrant::new(
            c.patient,
            c.patient,
            None,
            GrantAccess::Read,
            "self",
            None,
            now + Duration::hours(1)
        )
        .is_err()
    );
    assert!(
        NewGrant::new(
            c.nurse,
            c.patient,
            None,
            GrantAccess::Read,
            "r",
            Some(now),
            now
        )
        .is_err()
    );

    // Checked against the clock and the tenant by the service.
    let past = NewGrant::new(
        c.nurse,
        c.patient,
        None,
        GrantAccess::Read,
        "late",
        None,
        now - Duration::hours(1),
    )
    .expect("shape");
    let too_long = NewGrant::new(
        c.nurse,
        c.patient,
        None,
        GrantAccess::Read,
        "long",
        None,
        now + Duration::days(400),
    )
    .expect("shape");
    let outsider = fixtures::user(&t.db, deps, "olga").await;
    let stranger = NewGrant::new(
        outsider.id,
        c.patient,
        None,
        GrantAccess::Read,
        "who",
        None,
        now + Duration::hours(1),
    )
    .expect("shape");
    let other_id = write(&t, &c, "Follow-up", "Stable.").await;
    let jones_record = records::create_record(
        &t.db,
        deps,
        &ctx(&t, &c, c.jones).await,
        NewRecord::new(c.nurse, RecordType::Other, "Nurse's own", "Flu shot.").expect("valid"),
        &meta(),
    )
    .await
    .expect("jones writes one for the nurse");
    let mismatched = NewGrant::new(
        c.jones,
        c.patient,
        Some(jones_record),
        GrantAccess::Read,
        "wrong subject",
        None,
        now + Duration::hours(1),
    )
    .expect("shape");
    for bad in [past, too_long, stranger, mismatched] {
        let result = grant_access(&t.db, deps, &c.w.owner, bad, &meta()).await;
        assert!(
            matches!(result, Err(ServiceError::Validation { .. })),
            "{result:?}"
        );
    }
    assert_eq!(grants(&t).await, 0);
    // Without records:grant (a physician), and not the subject: refused.
    let jones = ctx(&t, &c, c.jones).await;
    let by_jones = grant_access(
        &t.db,
        deps,
        &jones,
        grant(&c, c.nurse, Some(other_id), GrantAccess::Read, 1),
        &meta(),
    )
    .await;
    refused(by_jones);
    // Nobody grants themselves, not even a holder of records:grant.
    let to_herself = grant_access(
        &t.db,
        deps,
        &c.w.owner,
        grant(&c, c.w.alice, Some(other_id), GrantAccess::Read, 1),
        &meta(),
    )
    .await;
    assert!(
        matches!(
            to_herself,
            Err(ServiceError::Validation {
                field: "grantee",
                ..
            })
        ),
        "{to_herself:?}"
    );
    // The subject shares their own.
    let pat = ctx(&t, &c, c.patient).await;
    grant_access(
        &t.db,
        deps,
        &pat,
        grant(&c, c.nurse, Some(id), GrantAccess::Read, 1),
        &meta(),
    )
    .await
    .expect("a subject shares their own record");
    // Creating needs records:write; the nurse has none.
    let nurse = ctx(&t, &c, c.nurse).await;
    let by_nurse = records::create_record(
        &t.db,
        deps,
        &nurse,
        NewRecord::new(c.patient, RecordType::Other, "Note", "Text").expect("valid"),
        &meta(),
    )
    .await;
    refused(by_nurse);
    let subject_outside = records::create_record(
        &t.db,
        deps,
        &ctx(&t, &c, c.smith).await,
        NewRecord::new(outsider.id, RecordType::Other, "Note", "Text").expect("valid"),
        &meta(),
    )
    .await;
    assert!(
        matches!(subject_outside, Err(ServiceError::Validation { .. })),
        "{subject_outside:?}"
    );
    assert_eq!(
        record_rows::Entity::find()
            .count(&t.owner)
            .await
            .expect("counts"),
        3
    );

    // Another tenant's owner, even holding records:read_all there, cannot open it.
    let globex = fixtures::tenant(&t.db, deps, "globex", &outsider).await;
    let globex_owner = TenantCtx::for_member(&t.db, globex.id, outsider.id)
        .await
        .expect("owner");
    refused(read_record(&t.db, deps, &globex_owner, id, &meta()).await);
    // An unknown record gets the same answer as a forbidden one.
    refused(read(&t, &c, c.jones, RecordId(uuid::Uuid::from_u128(42))).await);
}

async fn records_the_runtime_role_reads_no_record_without_access(t: TestDb) {
    if t.backend != Backend::Postgres {
        return;
    }
    let c = clinic(&t).await;
    // Raw SQL sets no clock: the policy then uses the server's, so move the test's
    // clock to it for the grant to be live for both.
    c.w.clock.advance(chrono::Utc::now() - c.w.deps.now());
    let id = write(&t, &c, "Scan", "MRI: no findings.").await;
    give_grant(&t, &c, grant(&c, c.nurse, Some(id), GrantAccess::Read, 24)).await;
    let tenant = Some(c.w.acme.id);
    let rows = "SELECT count(*) FROM records";
    // Dr. Jones holds records:write and records:break_glass, but no grant.
    assert_eq!(
        count_as_runtime(&t.owner, tenant, Some(c.jones), rows).await,
        0
    );
    assert_eq!(
        count_as_runtime(
            &t.owner,
            tenant,
            Some(c.jones),
            "SELECT count(*) FROM record_versions"
        )
        .await,
        0
    );
    assert_eq!(
        count_as_runtime(&t.owner, tenant, Some(c.nurse), rows).await,
        1
    );
    assert_eq!(
        count_as_runtime(&t.owner, tenant, Some(c.patient), rows).await,
        1
    );
    assert_eq!(
        count_as_runtime(&t.owner, tenant, Some(c.smith), rows).await,
        1
    );
    assert_eq!(
        count_as_runtime(&t.owner, tenant, Some(c.w.alice), rows).await,
        1,
        "records:read_all"
    );
    assert_eq!(
        count_as_runtime(&t.owner, None, Some(c.patient), rows).await,
        0,
        "no tenant"
    );
    // The nurse's read grant does not let her change it.
    let update = format!(
        "UPDATE records SET title = 'x', version = version + 1, updated_by = '{}' WHERE id = '{id}'",
        c.nurse
    );
    let changed = tests::runtime::as_runtime(&t.owner, tenant, Some(c.nurse), &update)
        .await
        .expect("runs");
    assert_eq!(changed.rows_affected(), 0);
    // Even the author cannot change it without keeping the old version first.
    let by_author = format!(
        "UPDATE records SET title = 'x', version = version + 1, updated_by = '{}' WHERE id = '{id}'",
        c.smith
    );
    assert!(
        tests::runtime::as_runtime(&t.owner, tenant, Some(c.smith), &by_author)
            .await
            .is_err()
    );
    // A grant in someone else's name, or a record by another author: refused.
    let forged = format!(
        "INSERT INTO access_grants (id, tenant_id, grantee_id, subject_id, access, kind, reason, granted_by, starts_at, expires_at, created_at)
         VALUES (gen_random_uuid(), '{}', '{}', '{}', 'read', 'grant', 'x', '{}', now(), now() + interval '1 day', now())",
        c.w.acme.id, c.jones, c.patient, c.w.alice
    );
    assert!(
        tests::runtime::as_runtime(&t.owner, tenant, Some(c.jones), &forged)
            .await
            .is_err()
    );
    // Nor a grant to oneself without records:grant.
    let to_herself = format!(
        "INSERT INTO access_grants (id, tenant_id, grantee_id, subject_id, access, kind, reason, granted_by, starts_at, expires_at, created_at)
         VALUES (gen_random_uuid(), '{}', '{}', '{}', 'read', 'grant', 'x', '{}', now(), now() + interval '1 day', now())",
        c.w.acme.id, c.nurse, c.patient, c.nurse
    );
    assert!(
        tests::runtime::as_runtime(&t.owner, tenant, Some(c.nurse), &to_herself)
            .await
            .is_err()
    );
    assert!(
        tests::runtime::as_runtime(
            &t.owner,
            tenant,
            Some(c.jones),
            &format!("DELETE FROM records WHERE id = '{id}'")
        )
        .await
        .is_err()
    );
    // A break-glass grant by raw SQL below aal2 (nothing set it): refused.
    let glass = format!(
        "INSERT INTO access_grants (id, tenant_id, grantee_id, subject_id, record_id, access, kind, reason, granted_by, starts_at, expires_at, created_at)
         VALUES (gen_random_uuid(), '{}', '{}', '{}', '{id}', 'read', 'break_glass', 'emergency!', '{}', now(), now() + interval '1 hour', now())",
        c.w.acme.id, c.jones, c.jones, c.jones
    );
    let refused_glass = tests::runtime::as_runtime(&t.owner, tenant, Some(c.jones), &glass).await;
    assert!(
        matches!(&refused_glass, Err(e) if e.to_string().contains("row-level security")),
        "{refused_glass:?}"
    );
}

fn ring(entries: &str, current: Option<&str>) -> std::sync::Arc<service::crypto::KeyRing> {
    let ring =
        service::crypto::KeyRing::from_lookup(service::environment::AppEnv::Staging, &|name| {
            match name {
                "FIELD_ENCRYPTION_KEYS" => Some(entries.to_owned()),
                "FIELD_ENCRYPTION_CURRENT_KEY" => current.map(str::to_owned),
                _ => None,
            }
        })
        .expect("a key ring");
    std::sync::Arc::new(ring)
}

/// After a key rotation, `reencrypt` (as the owner) moves every record body and kept
/// version to the new key, and a ring holding the new key alone opens them all.
async fn records_bodies_move_to_a_new_key(t: TestDb) {
    const K1: &str = "k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    const K2: &str = "k2:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    let mut c = clinic(&t).await;
    c.w.deps = c.w.deps.clone().with_keys(ring(K1, None));
    let id = write(&t, &c, "Scan", "Before the rotation.").await;
    let smith = ctx(&t, &c, c.smith).await;
    let change = RecordChange::new(None, None, Some("Still before.")).expect("valid");
    update_record(&t.db, &c.w.deps, &smith, id, 1, change, &meta())
        .await
        .expect("changed");

    let rotated = ring(&format!("{K1},{K2}"), Some("k2"));
    for table in ["records", "record_versions"] {
        let column = service::crypto::EncryptedColumn {
            table,
            id_column: "id",
            column: "body",
        };
        let report = service::crypto::reencrypt(&t.owner, &rotated, column, 10, |_| {})
            .await
            .expect("re-encrypts");
        assert_eq!((report.scanned, report.rewritten), (1, 1), "{table}");
        assert!(report.unreadable.is_empty());
    }
    c.w.deps = c.w.deps.clone().with_keys(ring(K2, None));
    let current = read(&t, &c, c.smith, id).await.expect("opens under k2");
    assert_eq!(current.body.as_str(), "Still before.");
    assert_eq!(current.record.version, 2, "a rotation is not a change");
    let history = records::record_history(&t.db, &c.w.deps, &smith, id, &meta())
        .await
        .expect("opens under k2");
    assert_eq!(history[0].body.as_str(), "Before the rotation.");
}

/// A clock that moves on by a millisecond every time it is read, as a real one does
/// between two calls.
struct TickingClock(std::sync::Mutex<chrono::DateTime<chrono::Utc>>);

impl service::Clock for TickingClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        let mut now = self.0.lock().expect("not poisoned");
        *now += Duration::milliseconds(1);
        *now
    }
}

/// With a clock that moves between reads, the break-glass grant written in an
/// operation opens the record in that same operation (one instant per operation); an
/// unknown record is `NotFound`, refused on the record and audited.
async fn records_break_glass_with_a_moving_clock_and_on_an_unknown_record(t: TestDb) {
    let c = clinic(&t).await;
    let id = write(&t, &c, "Allergy", "Latex.").await;
    let session = aal2_session(&t, &c, c.jones).await;
    let ticking =
        c.w.deps
            .clone()
            .with_clock(std::sync::Arc::new(TickingClock(std::sync::Mutex::new(
                c.w.deps.now(),
            ))));
    let jones = ctx(&t, &c, c.jones).await;
    let opened = break_glass(
        &t.db,
        &ticking,
        &jones,
        &session,
        id,
        "collapsed in the lobby",
        &meta(),
    )
    .await
    .expect("opens under a moving clock");
    assert_eq!(opened.body.as_str(), "Latex.");
    let denied_before = count_events(&t.owner, "record_access_denied").await;
    let unknown = RecordId(uuid::Uuid::from_u128(7));
    let missing = break_glass(
        &t.db,
        &ticking,
        &jones,
        &session,
        unknown,
        "collapsed in the lobby",
        &meta(),
    )
    .await;
    assert!(
        matches!(
            missing,
            Err(ServiceError::NotFound {
                entity: "record",
                ..
            })
        ),
        "{missing:?}"
    );
    assert_eq!(
        count_events(&t.owner, "record_access_denied").await,
        denied_before + 1
    );
    assert_eq!(grants(&t).await, 1, "only the first opening left a grant");
    // Another user's session is refused, and audited.
    let other = fixtures::session_of(&t.db, &c.w.deps, c.smith).await;
    refused(
        break_glass(
            &t.db,
            &c.w.deps,
            &jones,
            &other,
            id,
            "collapsed in the lobby",
            &meta(),
        )
        .await,
    );
    assert_eq!(
        count_events(&t.owner, "record_access_denied").await,
        denied_before + 2
    );
}
