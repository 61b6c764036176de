//! Second factor: TOTP codes as RFC 6238 computes them; enrolment shown once and
//! confirmed by a first code; each time step accepted once, also under concurrency;
//! single-use backup codes; disabling needs a code; the secret stored sealed; no secret
//! or code in any `Debug` output or audit row.

use chrono::Duration;
use data_encoding::BASE32_NOPAD;
use entity::audit::audit_logs;
use entity::identity::mfa_factors::TotpAlgorithm;
use entity::identity::{mfa_backup_codes, mfa_factors};
use entity::{MfaFactorId, UserId};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, TransactionTrait,
};
use service::crypto::{CryptoError, FieldSlot, KeyRing};
use service::identity::{
    BACKUP_CODE_COUNT, MfaProof, TotpEnrolment, TotpParams, confirm_totp, disable_totp, enrol_totp,
    generate_backup_codes, totp, totp_factor, use_backup_code, verify_totp,
};
use service::{Deps, ManualClock, ServiceError};
use std::sync::Arc;
use tests::fixtures::{self, meta};
use tests::{TestDb, inspect};

tests::backend_tests!(Migrated:
    mfa_enrol_confirm_verify,
    mfa_wrong_code_is_refused_and_recorded_and_malformed_input_writes_nothing,
    mfa_a_used_step_is_refused_when_replayed,
    mfa_two_concurrent_verifications_of_one_code_exactly_one_passes,
    mfa_backup_codes_are_single_use_and_replaced_as_a_set,
    mfa_disable_needs_a_current_code_or_a_backup_code,
    mfa_enrolment_is_replaced_until_confirmed_and_then_conflicts,
    mfa_secret_is_stored_sealed_for_its_row,
    mfa_no_secret_or_code_in_debug_output_or_audit_details,
);

/// RFC 6238 appendix B: the seeds are the ASCII digits "1234567890" repeated to the
/// hash's length, 8-digit codes, 30-second steps.
#[test]
fn mfa_totp_matches_the_rfc_6238_test_vectors() {
    let sha1 = b"12345678901234567890".as_slice();
    let sha256 = b"12345678901234567890123456789012".as_slice();
    let sha512 = b"1234567890123456789012345678901234567890123456789012345678901234".as_slice();
    let vectors: [(u64, &str, &str, &str); 6] = [
        (59, "94287082", "46119246", "90693936"),
        (1_111_111_109, "07081804", "68084774", "25091201"),
        (1_111_111_111, "14050471", "67062674", "99943326"),
        (1_234_567_890, "89005924", "91819424", "93441116"),
        (2_000_000_000, "69279037", "90698825", "38618901"),
        (20_000_000_000, "65353130", "77737706", "47863826"),
    ];
    let params = |algorithm| TotpParams {
        algorithm,
        digits: 8,
        period: 30,
    };
    for (time, want_sha1, want_sha256, want_sha512) in vectors {
        assert_eq!(
            totp(sha1, params(TotpAlgorithm::Sha1), time),
            want_sha1,
            "SHA-1 at {time}"
        );
        assert_eq!(
            totp(sha256, params(TotpAlgorithm::Sha256), time),
            want_sha256,
            "SHA-256 at {time}"
        );
        assert_eq!(
            totp(sha512, params(TotpAlgorithm::Sha512), time),
            want_sha512,
            "SHA-512 at {time}"
        );
    }
    // Six digits are the last six of the same number.
    assert_eq!(totp(sha1, TotpParams::default(), 59), "287082");
}

fn now(deps: &Deps) -> u64 {
    u64::try_from(deps.now().timestamp()).expect("after 1970")
}

/// A user with a confirmed factor; the clock moved one step past the confirmation.
async fn confirmed(t: &TestDb, name: &str) -> (Deps, Arc<ManualClock>, UserId, TotpEnrolment) {
    let (deps, clock) = fixtures::deps();
    let (user, enrolment) = confirmed_with(t, &deps, &clock, name).await;
    (deps, clock, user, enrolment)
}

/// The same with the caller's `Deps`, for a second user in one test (ids come from
/// one labelled source).
async fn confirmed_with(
    t: &TestDb,
    deps: &Deps,
    clock: &ManualClock,
    name: &str,
) -> (UserId, TotpEnrolment) {
    let deps = deps.clone();
    let user = fixtures::user(&t.db, &deps, name).await;
    let enrolment = enrol_totp(
        &t.db,
        &deps,
        &fixtures::current_session(&t.db, &deps, user.id).await,
        "Phone",
        &meta(),
    )
    .await
    .expect("enrols");
    confirm_totp(
        &t.db,
        &deps,
        &fixtures::current_session(&t.db, &deps, user.id).await,
        &enrolment.code_at(now(&deps)),
        &meta(),
    )
    .await
    .expect("confirms with the current code");
    clock.advance(Duration::seconds(30));
    (user.id, enrolment)
}

async fn events(t: &TestDb, user: UserId) -> Vec<audit_logs::Model> {
    audit_logs::Entity::find()
        .filter(audit_logs::Column::ActorUserId.eq(user))
        .all(&t.owner)
        .await
        .expect("reads the audit trail")
}

/// Audit rows come back in id order, which is not time order.
fn sorted(mut reasons: Vec<String>) -> Vec<String> {
    reasons.sort();
    reasons
}

fn count_of(events: &[audit_logs::Model], code: &str) -> usize {
    events.iter().filter(|e| e.event_type == code).count()
}

fn wrong(code: &str) -> String {
    let digit = (code.as_bytes()[0] - b'0' + 1) % 10;
    format!("{digit}{}", &code[1..])
}

async fn mfa_enrol_confirm_verify(t: TestDb) {
    let (deps, clock) = fixtures::deps();
    let user = fixtures::user(&t.db, &deps, "ivy").await;
    let enrolment = enrol_totp(
        &t.db,
        &deps,
        &fixtures::current_session(&t.db, &deps, user.id).await,
        "  Phone ",
        &meta(),
    )
    .await
    .expect("enrols");
    let uri = enrolment.otpauth_uri();
    assert!(
        uri.starts_with("otpauth://totp/saas-db:ivy%40example.com?secret="),
        "{uri}"
    );
    assert!(uri.contains(&format!("secret={}&", enrolment.secret_base32())));
    assert!(
        uri.ends_with("&issuer=saas-db&algorithm=SHA1&digits=6&period=30"),
        "{uri}"
    );
    assert_eq!(enrolment.secret_base32().len(), 32, "160 bits in base32");

    let pending = totp_factor(&t.db, user.id)
        .await
        .expect("reads")
        .expect("a factor");
    assert_eq!(pending.name, "Phone");
    assert!(pending.confirmed_at.is_none());
    let before = wrong(&enrolment.code_at(now(&deps)));
    assert!(
        matches!(
            verify_totp(&t.db, &deps, user.id, &before, &meta()).await,
            Err(ServiceError::NotFound { .. })
        ),
        "an unconfirmed factor verifies nothing"
    );

    let factor = confirm_totp(
        &t.db,
        &deps,
        &fixtures::current_session(&t.db, &deps, user.id).await,
        &enrolment.code_at(now(&deps)),
        &meta(),
    )
    .await
    .expect("confirms");
    assert!(factor.confirmed_at.is_some());
    assert_eq!(factor.last_used_step, Some(deps.now().timestamp() / 30));

    clock.advance(Duration::seconds(30));
    let code = enrolment.code_at(now(&deps));
    verify_totp(&t.db, &deps, user.id, &code, &meta())
        .await
        .expect("the next step's code verifies");
    // Typed with the space apps show.
    clock.advance(Duration::seconds(30));
    let code = enrolment.code_at(now(&deps));
    verify_totp(
        &t.db,
        &deps,
        user.id,
        &format!("{} {}", &code[..3], &code[3..]),
        &meta(),
    )
    .await
    .expect("spaces are ignored");
    // One step of drift either way is accepted.
    clock.advance(Duration::seconds(90));
    let late = enrolment.code_at(now(&deps) - 30);
    verify_totp(&t.db, &deps, user.id, &late, &meta())
        .await
        .expect("the previous step's code, not used before");
    let early = enrolment.code_at(now(&deps) + 30);
    verify_totp(&t.db, &deps, user.id, &early, &meta())
        .await
        .expect("the next step's code");
    clock.advance(Duration::seconds(120));
    let stale = enrolment.code_at(now(&deps) - 60);
    assert!(matches!(
        verify_totp(&t.db, &deps, user.id, &stale, &meta()).await,
        Err(ServiceError::InvalidMfaCode)
    ));

    let trail = events(&t, user.id).await;
    assert_eq!(count_of(&trail, "mfa_enrolled"), 1);
    assert_eq!(count_of(&trail, "mfa_confirmed"), 1);
    assert_eq!(count_of(&trail, "mfa_verified"), 4);
    assert_eq!(count_of(&trail, "mfa_verification_failed"), 1);
}

async fn mfa_wrong_code_is_refused_and_recorded_and_malformed_input_writes_nothing(t: TestDb) {
    let (deps, _clock, user, enrolment) = confirmed(&t, "jack").await;
    let code = enrolment.code_at(now(&deps));
    assert!(matches!(
        verify_totp(&t.db, &deps, user, &wrong(&code), &meta()).await,
        Err(ServiceError::InvalidMfaCode)
    ));
    let failed: Vec<_> = events(&t, user)
        .await
        .into_iter()
        .filter(|e| e.event_type == "mfa_verification_failed")
        .collect();
    assert_eq!(failed.len(), 1, "a refused code leaves its record");
    assert_eq!(failed[0].details["reason"], "wrong_code");
    assert_eq!(failed[0].details["method"], "totp");

    let auth = fixtures::current_session(&t.db, &deps, user).await;
    let before = inspect::row_counts(&t.owner).await;
    for bad in ["", "12345", "123456789", "12a456", "１２３４５６"] {
        assert!(
            matches!(
                verify_totp(&t.db, &deps, user, bad, &meta()).await,
                Err(ServiceError::Validation { field: "code", .. })
            ),
            "{bad:?}"
        );
        assert!(matches!(
            use_backup_code(&t.db, &deps, user, bad, &meta()).await,
            Err(ServiceError::Validation { .. })
        ));
        assert!(matches!(
            disable_totp(&t.db, &deps, &auth, MfaProof::Totp(bad), &meta()).await,
            Err(ServiceError::Validation { .. })
        ));
    }
    for bad in ["", " ", &"x".repeat(101), "a\u{7}b"] {
        let (other_deps, _) = fixtures::deps();
        assert!(matches!(
            enrol_totp(&t.db, &other_deps, &auth, bad, &meta()).await,
            Err(ServiceError::Validation { field: "name", .. })
        ));
    }
    assert_eq!(
        inspect::row_counts(&t.owner).await,
        before,
        "bad input writes nothing"
    );
    verify_totp(&t.db, &deps, user, &code, &meta())
        .await
        .expect("the right code still works");
}

async fn mfa_a_used_step_is_refused_when_replayed(t: TestDb) {
    let (deps, clock, user, enrolment) = confirmed(&t, "kim").await;
    let code = enrolment.code_at(now(&deps));
    verify_totp(&t.db, &deps, user, &code, &meta())
        .await
        .expect("first use");
    assert!(matches!(
        verify_totp(&t.db, &deps, user, &code, &meta()).await,
        Err(ServiceError::InvalidMfaCode)
    ));
    // Still inside the window a step later, and still refused.
    clock.advance(Duration::seconds(30));
    assert!(matches!(
        verify_totp(&t.db, &deps, user, &code, &meta()).await,
        Err(ServiceError::InvalidMfaCode)
    ));
    // An older step of the window than the one used is refused too.
    let older = enrolment.code_at(now(&deps) - 60);
    assert!(matches!(
        verify_totp(&t.db, &deps, user, &older, &meta()).await,
        Err(ServiceError::InvalidMfaCode)
    ));
    let replays: Vec<_> = events(&t, user)
        .await
        .into_iter()
        .filter(|e| e.event_type == "mfa_verification_failed")
        .map(|e| e.details["reason"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        sorted(replays),
        ["already_used", "already_used", "wrong_code"]
    );
    verify_totp(&t.db, &deps, user, &enrolment.code_at(now(&deps)), &meta())
        .await
        .expect("the new step's code works");
}

/// The factor's row is held by another transaction until both verifications have
/// read it and wait at the conditional update (PostgreSQL, MariaDB); on SQLite the
/// writers queue on the database lock.
async fn mfa_two_concurrent_verifications_of_one_code_exactly_one_passes(t: TestDb) {
    let (deps, _clock, user, enrolment) = confirmed(&t, "lou").await;
    let code = enrolment.code_at(now(&deps));
    let holder = match t.backend {
        tests::Backend::Sqlite => None,
        _ => {
            let txn = t.owner.begin().await.expect("begins");
            txn.execute_unprepared(&format!(
                "SELECT id FROM mfa_factors WHERE user_id = {} FOR UPDATE",
                match t.backend {
                    tests::Backend::Postgres => format!("'{user}'"),
                    _ => format!("x'{}'", user.0.simple()),
                }
            ))
            .await
            .expect("holds the factor's row");
            Some(txn)
        }
    };
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let attempts: Vec<_> = (0..2)
        .map(|_| {
            let (db, deps, code, barrier) =
                (t.db.clone(), deps.clone(), code.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                verify_totp(&db, &deps, user, &code, &meta()).await
            })
        })
        .collect();
    if let Some(holder) = holder {
        let waiting = match t.backend {
            tests::Backend::Postgres => {
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            }
            _ => {
                "SELECT count(*) FROM information_schema.processlist
                  WHERE db = DATABASE() AND info LIKE 'UPDATE `mfa_factors` SET `last_used_step`%'"
            }
        };
        let mut both_waited = false;
        for _ in 0..200 {
            let row = t
                .owner
                .query_one_raw(sea_orm::Statement::from_string(t.db_backend(), waiting))
                .await
                .expect("reads the server's state")
                .expect("a row");
            if row.try_get_by_index::<i64>(0).expect("a count") >= 2 {
                both_waited = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        assert!(
            both_waited,
            "both verifications read the factor and queued at the update"
        );
        holder.rollback().await.expect("lets go");
    }
    let results: Vec<_> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|joined| joined.expect("task finished"))
        .collect();
    let winners = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(winners, 1, "exactly one verification passes: {results:?}");
    assert!(
        results
            .iter()
            .any(|r| matches!(r, Err(ServiceError::InvalidMfaCode))),
        "{results:?}"
    );
    let trail = events(&t, user).await;
    assert_eq!(count_of(&trail, "mfa_verified"), 1);
    assert_eq!(count_of(&trail, "mfa_verification_failed"), 1);
}

async fn mfa_backup_codes_are_single_use_and_replaced_as_a_set(t: TestDb) {
    let (deps, clock) = fixtures::deps();
    let nobody = fixtures::user(&t.db, &deps, "mia").await;
    assert!(
        matches!(
            generate_backup_codes(
                &t.db,
                &deps,
                &fixtures::current_session(&t.db, &deps, nobody.id).await,
                &meta()
            )
            .await,
            Err(ServiceError::Conflict { .. })
        ),
        "no codes without a confirmed factor"
    );

    let (user, _) = confirmed_with(&t, &deps, &clock, "ned").await;
    let codes = generate_backup_codes(
        &t.db,
        &deps,
        &fixtures::current_session(&t.db, &deps, user).await,
        &meta(),
    )
    .await
    .expect("generates");
    let list: Vec<String> = codes.expose().map(str::to_owned).collect();
    assert_eq!(list.len(), BACKUP_CODE_COUNT);
    let distinct: std::collections::BTreeSet<&String> = list.iter().collect();
    assert_eq!(distinct.len(), BACKUP_CODE_COUNT);
    for code in &list {
        assert_eq!(code.len(), 19, "xxxx-xxxx-xxxx-xxxx: {code}");
    }
    let rows = mfa_backup_codes::Entity::find()
        .filter(mfa_backup_codes::Column::UserId.eq(user))
        .all(&t.owner)
        .await
        .expect("reads");
    assert_eq!(rows.len(), BACKUP_CODE_COUNT, "one row per code");
    for row in &rows {
        assert!(
            !list
                .iter()
                .any(|c| row.code_hash.expose().contains(c.as_str()))
        );
    }

    // Any case, without hyphens: as a person may type it.
    let typed = list[0].replace('-', "").to_uppercase();
    assert_eq!(
        use_backup_code(&t.db, &deps, user, &typed, &meta())
            .await
            .expect("first use"),
        (BACKUP_CODE_COUNT - 1) as u64
    );
    assert!(matches!(
        use_backup_code(&t.db, &deps, user, &list[0], &meta()).await,
        Err(ServiceError::InvalidMfaCode)
    ));
    assert!(matches!(
        use_backup_code(&t.db, &deps, user, "aaaa-aaaa-aaaa-aaaa", &meta()).await,
        Err(ServiceError::InvalidMfaCode)
    ));
    // Another user's code is not this user's.
    let (other, _) = confirmed_with(&t, &deps, &clock, "ola").await;
    let others = generate_backup_codes(
        &t.db,
        &deps,
        &fixtures::current_session(&t.db, &deps, other).await,
        &meta(),
    )
    .await
    .expect("generates");
    let others_first = others.expose().next().expect("a code").to_owned();
    assert!(matches!(
        use_backup_code(&t.db, &deps, user, &others_first, &meta()).await,
        Err(ServiceError::InvalidMfaCode)
    ));

    let replaced = generate_backup_codes(
        &t.db,
        &deps,
        &fixtures::current_session(&t.db, &deps, user).await,
        &meta(),
    )
    .await
    .expect("replaces");
    assert!(
        matches!(
            use_backup_code(&t.db, &deps, user, &list[1], &meta()).await,
            Err(ServiceError::InvalidMfaCode)
        ),
        "the old set is gone"
    );
    let fresh = replaced.expose().next().expect("a code").to_owned();
    use_backup_code(&t.db, &deps, user, &fresh, &meta())
        .await
        .expect("the new set works");

    let trail = events(&t, user).await;
    assert_eq!(count_of(&trail, "backup_codes_generated"), 2);
    assert_eq!(count_of(&trail, "backup_code_used"), 2);
    let reasons: Vec<String> = trail
        .iter()
        .filter(|e| e.event_type == "mfa_verification_failed")
        .map(|e| e.details["reason"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        sorted(reasons),
        ["already_used", "wrong_code", "wrong_code", "wrong_code"]
    );
}

async fn mfa_disable_needs_a_current_code_or_a_backup_code(t: TestDb) {
    let (deps, clock, user, enrolment) = confirmed(&t, "pia").await;
    generate_backup_codes(
        &t.db,
        &deps,
        &fixtures::current_session(&t.db, &deps, user).await,
        &meta(),
    )
    .await
    .expect("generates");
    let code = enrolment.code_at(now(&deps));
    assert!(matches!(
        disable_totp(
            &t.db,
            &deps,
            &fixtures::current_session(&t.db, &deps, user).await,
            MfaProof::Totp(&wrong(&code)),
            &meta()
        )
        .await,
        Err(ServiceError::InvalidMfaCode)
    ));
    assert!(matches!(
        disable_totp(
            &t.db,
            &deps,
            &fixtures::current_session(&t.db, &deps, user).await,
            MfaProof::BackupCode("aaaa-aaaa-aaaa-aaaa"),
            &meta()
        )
        .await,
        Err(ServiceError::InvalidMfaCode)
    ));
    assert!(
        totp_factor(&t.db, user).await.expect("reads").is_some(),
        "still there"
    );
    disable_totp(
        &t.db,
        &deps,
        &fixtures::current_session(&t.db, &deps, user).await,
        MfaProof::Totp(&code),
        &meta(),
    )
    .await
    .expect("a current code disables");
    assert!(totp_factor(&t.db, user).await.expect("reads").is_none());
    let left = mfa_backup_codes::Entity::find()
        .filter(mfa_backup_codes::Column::UserId.eq(user))
        .count(&t.owner)
        .await
        .expect("counts");
    assert_eq!(left, 0, "the backup codes go with the factor");

    // Again, then disabled with a backup code.
    let enrolment = enrol_totp(
        &t.db,
        &deps,
        &fixtures::current_session(&t.db, &deps, user).await,
        "Phone",
        &meta(),
    )
    .await
    .expect("enrols again");
    clock.advance(Duration::seconds(30));
    confirm_totp(
        &t.db,
        &deps,
        &fixtures::current_session(&t.db, &deps, user).await,
        &enrolment.code_at(now(&deps)),
        &meta(),
    )
    .await
    .expect("confirms");
    let codes = generate_backup_codes(
        &t.db,
        &deps,
        &fixtures::current_session(&t.db, &deps, user).await,
        &meta(),
    )
    .await
    .expect("generates");
    let backup = codes.expose().next().expect("a code").to_owned();
    disable_totp(
        &t.db,
        &deps,
        &fixtures::current_session(&t.db, &deps, user).await,
        MfaProof::BackupCode(&backup),
        &meta(),
    )
    .await
    .expect("a backup code disables");
    assert!(totp_factor(&t.db, user).await.expect("reads").is_none());
    assert!(matches!(
        disable_totp(
            &t.db,
            &deps,
            &fixtures::current_session(&t.db, &deps, user).await,
            MfaProof::BackupCode(&backup),
            &meta()
        )
        .await,
        Err(ServiceError::NotFound { .. })
    ));
    let trail = events(&t, user).await;
    assert_eq!(count_of(&trail, "mfa_disabled"), 2);
}

async fn mfa_enrolment_is_replaced_until_confirmed_and_then_conflicts(t: TestDb) {
    let (deps, _) = fixtures::deps();
    let user = fixtures::user(&t.db, &deps, "quinn").await;
    let first = enrol_totp(
        &t.db,
        &deps,
        &fixtures::current_session(&t.db, &deps, user.id).await,
        "Phone",
        &meta(),
    )
    .await
    .expect("enrols");
    assert!(matches!(
        confirm_totp(
            &t.db,
            &deps,
            &fixtures::current_session(&t.db, &deps, user.id).await,
            &wrong(&first.code_at(now(&deps))),
            &meta()
        )
        .await,
        Err(ServiceError::InvalidMfaCode)
    ));
    let second = enrol_totp(
        &t.db,
        &deps,
        &fixtures::current_session(&t.db, &deps, user.id).await,
        "Tablet",
        &meta(),
    )
    .await
    .expect("enrols again");
    assert_ne!(first.secret_base32(), second.secret_base32());
    let factors = mfa_factors::Entity::find()
        .filter(mfa_factors::Column::UserId.eq(user.id))
        .count(&t.owner)
        .await
        .expect("counts");
    assert_eq!(factors, 1, "the unconfirmed enrolment was replaced");
    assert!(
        matches!(
            confirm_totp(
                &t.db,
                &deps,
                &fixtures::current_session(&t.db, &deps, user.id).await,
                &first.code_at(now(&deps)),
                &meta()
            )
            .await,
            Err(ServiceError::InvalidMfaCode)
        ),
        "the first secret is gone"
    );
    confirm_totp(
        &t.db,
        &deps,
        &fixtures::current_session(&t.db, &deps, user.id).await,
        &second.code_at(now(&deps)),
        &meta(),
    )
    .await
    .expect("confirms");
    assert!(matches!(
        confirm_totp(
            &t.db,
            &deps,
            &fixtures::current_session(&t.db, &deps, user.id).await,
            &second.code_at(now(&deps)),
            &meta()
        )
        .await,
        Err(ServiceError::Conflict { .. })
    ));
    assert!(matches!(
        enrol_totp(
            &t.db,
            &deps,
            &fixtures::current_session(&t.db, &deps, user.id).await,
            "Another",
            &meta()
        )
        .await,
        Err(ServiceError::Conflict { .. })
    ));
    let trail = events(&t, user.id).await;
    assert_eq!(count_of(&trail, "mfa_enrolled"), 2);
    assert_eq!(count_of(&trail, "mfa_confirmed"), 1);
    assert_eq!(
        count_of(&trail, "mfa_verification_failed"),
        0,
        "set-up typos are not recorded"
    );
}

async fn mfa_secret_is_stored_sealed_for_its_row(t: TestDb) {
    let (deps, clock, user, enrolment) = confirmed(&t, "rae").await;
    let (other, _) = confirmed_with(&t, &deps, &clock, "sam").await;
    let stored = mfa_factors::Entity::find()
        .filter(mfa_factors::Column::UserId.eq(user))
        .one(&t.owner)
        .await
        .expect("reads")
        .expect("the factor");
    let raw = stored.secret.expose();
    let secret = BASE32_NOPAD
        .decode(enrolment.secret_base32().as_bytes())
        .expect("base32");
    assert_eq!(secret.len(), 20);
    let contains =
        |haystack: &[u8], needle: &[u8]| haystack.windows(needle.len()).any(|w| w == needle);
    assert!(!contains(raw, &secret), "the raw secret is not stored");
    assert!(
        !contains(raw, enrolment.secret_base32().as_bytes()),
        "nor its base32"
    );
    assert!(!contains(
        raw,
        enrolment.secret_base32().to_lowercase().as_bytes()
    ));

    let keys = KeyRing::development();
    let slot = |row: &str, column: &'static str| (row.to_owned(), column);
    let open = |(row, column): (String, &'static str)| {
        keys.open(
            FieldSlot {
                table: "mfa_factors",
                column,
                row: &row,
            },
            raw,
        )
        .map(|v| v.to_vec())
    };
    assert_eq!(open(slot(&stored.id.to_string(), "secret")), Ok(secret));
    let other_id: MfaFactorId = mfa_factors::Entity::find()
        .filter(mfa_factors::Column::UserId.eq(other))
        .one(&t.owner)
        .await
        .expect("reads")
        .expect("the other factor")
        .id;
    assert_eq!(
        open(slot(&other_id.to_string(), "secret")),
        Err(CryptoError::Undecryptable),
        "copied into another row it does not open"
    );
    assert_eq!(
        open(slot(&stored.id.to_string(), "name")),
        Err(CryptoError::Undecryptable)
    );
    assert!(
        service::crypto::ENCRYPTED_COLUMNS
            .iter()
            .any(|c| c.table == "mfa_factors" && c.column == "secret"),
        "re-encryption after a key rotation walks the column"
    );
}

async fn mfa_no_secret_or_code_in_debug_output_or_audit_details(t: TestDb) {
    let (deps, clock, user, enrolment) = confirmed(&t, "tia").await;
    let mut codes_used = vec![enrolment.code_at(now(&deps) - 30)];
    let code = enrolment.code_at(now(&deps));
    verify_totp(&t.db, &deps, user, &code, &meta())
        .await
        .expect("verifies");
    codes_used.push(code.clone());
    let _ = verify_totp(&t.db, &deps, user, &code, &meta()).await;
    let backup = generate_backup_codes(
        &t.db,
        &deps,
        &fixtures::current_session(&t.db, &deps, user).await,
        &meta(),
    )
    .await
    .expect("generates");
    let backup_list: Vec<String> = backup.expose().map(str::to_owned).collect();
    use_backup_code(&t.db, &deps, user, &backup_list[0], &meta())
        .await
        .expect("uses");
    let _ = use_backup_code(&t.db, &deps, user, &backup_list[0], &meta()).await;
    clock.advance(Duration::seconds(30));
    let factor = totp_factor(&t.db, user)
        .await
        .expect("reads")
        .expect("a factor");
    let model = mfa_factors::Entity::find_by_id(factor.id)
        .one(&t.owner)
        .await
        .expect("reads")
        .expect("the row");
    let code_rows = mfa_backup_codes::Entity::find()
        .filter(mfa_backup_codes::Column::UserId.eq(user))
        .all(&t.owner)
        .await
        .expect("reads");

    let debug = format!(
        "{enrolment:?} {backup:?} {factor:?} {model:?} {code_rows:?} {:?} {:?} {deps:?}",
        MfaProof::Totp(&codes_used[1]),
        MfaProof::BackupCode(&backup_list[1]),
    );
    let details: Vec<String> = events(&t, user)
        .await
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e.details,
                e.resource_type.clone().unwrap_or_default()
            )
        })
        .collect();
    assert!(details.len() >= 6, "{details:?}");
    let secret = enrolment.secret_base32().to_owned();
    let raw_hex = hex::encode(BASE32_NOPAD.decode(secret.as_bytes()).expect("base32"));
    let mut forbidden = vec![secret.clone(), secret.to_lowercase(), raw_hex];
    forbidden.extend(codes_used);
    for code in &backup_list {
        forbidden.push(code.clone());
        forbidden.push(code.replace('-', ""));
    }
    for text in details.iter().chain(std::iter::once(&debug)) {
        for needle in &forbidden {
            assert!(
                !text.contains(needle.as_str()),
                "{needle:?} appears in {text}"
            );
        }
    }
    assert!(debug.contains("[redacted]"), "{debug}");
}
