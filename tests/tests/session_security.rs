//! Session security: sign-in in two steps when a second factor is active (wrong codes
//! lock out like wrong passwords); anomaly detection (impossible travel with the test
//! clock, new devices) and what a risky sign-in leads to; step-up for sensitive
//! operations (aal2, re-authentication window); the password policy; security changes
//! ending the user's other sessions.

use chrono::Duration;
use entity::UserId;
use entity::identity::mfa_challenges::ChallengeReason;
use entity::identity::session_anomaly_reports::{self, AnomalyKind};
use entity::identity::sessions::{self, AssuranceLevel};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter};
use service::error::StepUp;
use service::identity::{
    MfaProof, NewUser, SignIn, TotpEnrolment, WeakPasswordReason, change_password,
    complete_sign_in, confirm_totp, deactivate_account, enrol_totp, generate_backup_codes,
    list_sessions, login, reauthenticate, register_user, validate_session,
};
use service::input::Password;
use service::request::Location;
use service::{Deps, ManualClock, RequestMeta, ServiceError};
use tests::TestDb;
use tests::fixtures::{self, PASSWORD, email, meta, password};
use tests::inspect;

tests::backend_tests!(Migrated:
    sign_in_takes_two_steps_with_a_factor_and_opens_an_aal2_session,
    sign_in_wrong_second_steps_lock_out_like_wrong_passwords,
    sign_in_challenge_is_single_use_and_expires,
    anomaly_impossible_travel_is_flagged_with_the_test_clock,
    anomaly_new_device_is_reported_and_a_risky_sign_in_without_factor_is_refused,
    anomaly_a_burst_of_failed_sign_ins_is_reported,
    step_up_aal1_session_of_a_user_with_a_factor_is_refused_until_it_verifies,
    step_up_outside_the_reauthentication_window_is_refused_until_reauthenticated,
    password_change_checks_the_policy_and_ends_other_sessions,
    password_weak_or_email_like_is_refused_with_the_reason,
    deactivate_account_ends_every_session_and_sign_in,
);

fn now(deps: &Deps) -> u64 {
    u64::try_from(deps.now().timestamp()).expect("after 1970")
}

fn located(country: &str, city: &str, at: (f64, f64)) -> RequestMeta {
    meta().with_location(
        Location::parse(Some(country), Some(city), Some(at.0), Some(at.1)).expect("a location"),
    )
}

const TOKYO: (f64, f64) = (35.6762, 139.6503);
const OSAKA: (f64, f64) = (34.6937, 135.5023);
const PARIS: (f64, f64) = (48.8566, 2.3522);

/// A user with a confirmed TOTP factor; the clock moved past the confirming step.
async fn with_factor(
    db: &DatabaseConnection,
    deps: &Deps,
    clock: &ManualClock,
    name: &str,
) -> (UserId, TotpEnrolment) {
    let user = fixtures::user(db, deps, name).await;
    let session = fixtures::session_of(db, deps, user.id).await;
    let enrolment = enrol_totp(db, deps, &session, "Phone", &meta())
        .await
        .expect("enrols");
    confirm_totp(db, deps, &session, &enrolment.code_at(now(deps)), &meta())
        .await
        .expect("confirms");
    clock.advance(Duration::seconds(30));
    (user.id, enrolment)
}

async fn sign_in_with_password(t: &TestDb, deps: &Deps, name: &str, meta: &RequestMeta) -> SignIn {
    login(
        &t.db,
        deps,
        &email(&format!("{name}@example.com")),
        &password(PASSWORD),
        meta,
    )
    .await
    .expect("the password is right")
}

async fn sign_in_takes_two_steps_with_a_factor_and_opens_an_aal2_session(t: TestDb) {
    let (deps, clock) = fixtures::deps();
    let (user, enrolment) = with_factor(&t.db, &deps, &clock, "tara").await;
    let sessions_before = list_sessions(&t.db, &deps, user)
        .await
        .expect("lists")
        .len();

    let SignIn::SecondFactorRequired(challenge) =
        sign_in_with_password(&t, &deps, "tara", &meta()).await
    else {
        panic!("a user with a factor gets a challenge, not a session");
    };
    assert_eq!(challenge.user_id, user);
    assert_eq!(challenge.reason, ChallengeReason::Factor);
    assert!(
        !format!("{challenge:?}").contains(challenge.token.expose()),
        "redacted"
    );
    assert_eq!(
        list_sessions(&t.db, &deps, user)
            .await
            .expect("lists")
            .len(),
        sessions_before,
        "the password alone opened no session"
    );

    let (account, issued) = complete_sign_in(
        &t.db,
        &deps,
        challenge.token.expose(),
        MfaProof::Totp(&enrolment.code_at(now(&deps))),
        &meta(),
    )
    .await
    .expect("the second step completes the sign-in");
    assert_eq!(account.id, user);
    assert_eq!(issued.session.aal, AssuranceLevel::Aal2);
    assert_eq!(issued.session.auth_methods, "password,totp");
    let auth = validate_session(&t.db, &deps, user, issued.session.id)
        .await
        .expect("live");
    assert_eq!(auth.aal(), AssuranceLevel::Aal2);
    assert_eq!(auth.step_up_needed(&deps), None);
    assert_eq!(
        inspect::count_events(&t.owner, "mfa_challenge_issued").await,
        1
    );

    // A backup code completes a sign-in too.
    let codes = generate_backup_codes(&t.db, &deps, &auth, &meta())
        .await
        .expect("codes");
    let backup = codes.expose().next().expect("a code").to_owned();
    let SignIn::SecondFactorRequired(second) =
        sign_in_with_password(&t, &deps, "tara", &meta()).await
    else {
        panic!("a challenge again");
    };
    let (_, by_code) = complete_sign_in(
        &t.db,
        &deps,
        second.token.expose(),
        MfaProof::BackupCode(&backup),
        &meta(),
    )
    .await
    .expect("a backup code completes it");
    assert_eq!(by_code.session.auth_methods, "password,backup_code");
}

async fn sign_in_wrong_second_steps_lock_out_like_wrong_passwords(t: TestDb) {
    let (deps, clock) = fixtures::deps();
    let (user, enrolment) = with_factor(&t.db, &deps, &clock, "uma").await;
    let free = deps.config.sign_in_per_account_address.free_failures;
    let max = deps.config.mfa_challenge_max_failures;
    let wrong = |code: &str| {
        let last = code
            .chars()
            .last()
            .and_then(|c| c.to_digit(10))
            .unwrap_or(0);
        format!("{}{}", &code[..code.len() - 1], (last + 1) % 10)
    };
    let mut locked = false;
    // Each challenge takes `max` wrong codes; the throttle counts every one of them
    // (and the password steps), so the account is blocked long before the attacker
    // runs out of challenges.
    for _ in 0..=(free / max + 1) {
        let challenge = match login(
            &t.db,
            &deps,
            &email("uma@example.com"),
            &password(PASSWORD),
            &meta(),
        )
        .await
        {
            Ok(SignIn::SecondFactorRequired(challenge)) => challenge,
            Ok(SignIn::Complete { .. }) => panic!("never one step with a factor"),
            Err(ServiceError::InvalidCredentials) => {
                locked = true;
                break;
            }
            Err(other) => panic!("unexpected {other:?}"),
        };
        for _ in 0..max {
            let result = complete_sign_in(
                &t.db,
                &deps,
                challenge.token.expose(),
                MfaProof::Totp(&wrong(&enrolment.code_at(now(&deps)))),
                &meta(),
            )
            .await;
            assert!(
                matches!(result, Err(ServiceError::InvalidMfaCode)),
                "{result:?}"
            );
        }
        // The challenge is spent: even the right code is refused on it now.
        let spent = complete_sign_in(
            &t.db,
            &deps,
            challenge.token.expose(),
            MfaProof::Totp(&enrolment.code_at(now(&deps))),
            &meta(),
        )
        .await;
        assert!(
            matches!(spent, Err(ServiceError::InvalidToken)),
            "{spent:?}"
        );
    }
    assert!(locked, "wrong second steps led to the sign-in block");
    assert!(inspect::count_events(&t.owner, "account_locked").await >= 1);
    assert!(inspect::count_events(&t.owner, "mfa_verification_failed").await > 0);
    // No session was opened by any of it.
    assert_eq!(
        sessions::Entity::find()
            .filter(sessions::Column::UserId.eq(user))
            .filter(sessions::Column::Aal.eq(AssuranceLevel::Aal2))
            .count(&t.owner)
            .await
            .expect("count"),
        1,
        "only the enrolment's session is aal2"
    );
}

async fn sign_in_challenge_is_single_use_and_expires(t: TestDb) {
    let (deps, clock) = fixtures::deps();
    let (_, enrolment) = with_factor(&t.db, &deps, &clock, "vera").await;
    let SignIn::SecondFactorRequired(challenge) =
        sign_in_with_password(&t, &deps, "vera", &meta()).await
    else {
        panic!("a challenge");
    };
    complete_sign_in(
        &t.db,
        &deps,
        challenge.token.expose(),
        MfaProof::Totp(&enrolment.code_at(now(&deps))),
        &meta(),
    )
    .await
    .expect("completes");
    clock.advance(Duration::seconds(30));
    let again = complete_sign_in(
        &t.db,
        &deps,
        challenge.token.expose(),
        MfaProof::Totp(&enrolment.code_at(now(&deps))),
        &meta(),
    )
    .await;
    assert!(
        matches!(again, Err(ServiceError::InvalidToken)),
        "{again:?}"
    );

    let SignIn::SecondFactorRequired(late) =
        sign_in_with_password(&t, &deps, "vera", &meta()).await
    else {
        panic!("a challenge");
    };
    clock.advance(deps.config.mfa_challenge_lifetime + Duration::seconds(1));
    let expired = complete_sign_in(
        &t.db,
        &deps,
        late.token.expose(),
        MfaProof::Totp(&enrolment.code_at(now(&deps))),
        &meta(),
    )
    .await;
    assert!(
        matches!(expired, Err(ServiceError::Expired { .. })),
        "{expired:?}"
    );
    for bad in ["", "mfa_", "rt_0000", &format!("mfa_{}", "0".repeat(64))] {
        let result = complete_sign_in(&t.db, &deps, bad, MfaProof::Totp("123456"), &meta()).await;
        assert!(
            matches!(result, Err(ServiceError::InvalidToken)),
            "{bad:?}: {result:?}"
        );
    }
}

async fn reports(db: &DatabaseConnection, user: UserId) -> Vec<session_anomaly_reports::Model> {
    session_anomaly_reports::Entity::find()
        .filter(session_anomaly_reports::Column::UserId.eq(user))
        .all(db)
        .await
        .expect("reports")
}

async fn anomaly_impossible_travel_is_flagged_with_the_test_clock(t: TestDb) {
    let (deps, clock) = fixtures::deps();
    let (user, enrolment) = with_factor(&t.db, &deps, &clock, "wren").await;
    let complete = |challenge: SignIn, deps: Deps, meta: RequestMeta| {
        let db = t.db.clone();
        let code = enrolment.code_at(now(&deps));
        async move {
            let SignIn::SecondFactorRequired(challenge) = challenge else {
                panic!("a challenge");
            };
            complete_sign_in(
                &db,
                &deps,
                challenge.token.expose(),
                MfaProof::Totp(&code),
                &meta,
            )
            .await
            .expect("completes")
        }
    };
    let tokyo = located("JP", "東京", TOKYO);
    let first = sign_in_with_password(&t, &deps, "wren", &tokyo).await;
    complete(first, deps.clone(), tokyo.clone()).await;
    assert!(
        reports(&t.owner, user).await.is_empty(),
        "a first location is no anomaly"
    );

    // Osaka three hours later: 400 km at 130 km/h, plausible.
    clock.advance(Duration::hours(3));
    let osaka = located("JP", "大阪", OSAKA);
    let second = sign_in_with_password(&t, &deps, "wren", &osaka).await;
    complete(second, deps.clone(), osaka.clone()).await;
    assert!(
        reports(&t.owner, user).await.is_empty(),
        "plausible travel is no anomaly"
    );

    // Paris one hour later: 9,600 km in an hour.
    clock.advance(Duration::hours(1));
    let paris = located("FR", "Paris", PARIS);
    let SignIn::SecondFactorRequired(challenge) =
        sign_in_with_password(&t, &deps, "wren", &paris).await
    else {
        panic!("a challenge");
    };
    assert_eq!(challenge.reason, ChallengeReason::Risk, "scored risky");
    assert!(challenge.risk_score >= deps.config.anomaly.impossible_travel_score);
    let found = reports(&t.owner, user).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].kind, AnomalyKind::ImpossibleTravel);
    assert_eq!(found[0].country.as_deref(), Some("FR"));
    assert!(found[0].details["speed_kmh"].as_f64().expect("a speed") > 900.0);
    assert_eq!(
        inspect::count_events(&t.owner, "session_anomaly_detected").await,
        1
    );
}

async fn anomaly_new_device_is_reported_and_a_risky_sign_in_without_factor_is_refused(t: TestDb) {
    let mut config = service::ServiceConfig::default();
    // A new device alone reaches the threshold here.
    config.anomaly.step_up_score = config.anomaly.new_device_score;
    let (deps, _clock) = fixtures::deps_with(config);
    let user = fixtures::user(&t.db, &deps, "xena").await;
    let laptop = meta().with_device("laptop-1").expect("a fingerprint");
    let SignIn::Complete { .. } = sign_in_with_password(&t, &deps, "xena", &laptop).await else {
        panic!("no factor, first device: one step");
    };
    let SignIn::Complete { .. } = sign_in_with_password(&t, &deps, "xena", &laptop).await else {
        panic!("a known device: one step");
    };
    assert!(reports(&t.owner, user.id).await.is_empty());

    let phone = meta().with_device("phone-9").expect("a fingerprint");
    let refused = login(
        &t.db,
        &deps,
        &email("xena@example.com"),
        &password(PASSWORD),
        &phone,
    )
    .await;
    assert!(
        matches!(refused, Err(ServiceError::RiskySignInRefused { risk_score }) if risk_score == deps.config.anomaly.new_device_score),
        "{refused:?}"
    );
    let found = reports(&t.owner, user.id).await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].kind, AnomalyKind::NewDevice);
    assert_eq!(found[0].session_id, None, "no session was opened");
}

async fn anomaly_a_burst_of_failed_sign_ins_is_reported(t: TestDb) {
    let (deps, _clock) = fixtures::deps();
    let user = fixtures::user(&t.db, &deps, "bea").await;
    let burst = deps.config.anomaly.failed_burst_count;
    for _ in 0..burst {
        let wrong = login(
            &t.db,
            &deps,
            &email("bea@example.com"),
            &password("not her password"),
            &meta(),
        )
        .await;
        assert!(
            matches!(wrong, Err(ServiceError::InvalidCredentials)),
            "{wrong:?}"
        );
    }
    let SignIn::Complete { session, .. } = sign_in_with_password(&t, &deps, "bea", &meta()).await
    else {
        panic!("a burst alone is below the step-up score: one step");
    };
    let found = reports(&t.owner, user.id).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].kind, AnomalyKind::FailedSignInBurst);
    assert_eq!(found[0].details["failed_sign_ins"], burst);
    assert_eq!(found[0].session_id, Some(session.session.id));
}

async fn step_up_aal1_session_of_a_user_with_a_factor_is_refused_until_it_verifies(t: TestDb) {
    let (deps, clock) = fixtures::deps();
    let (user, enrolment) = with_factor(&t.db, &deps, &clock, "yara").await;
    // A session opened with the password alone (e.g. before the factor existed).
    let weak = fixtures::session_of(&t.db, &deps, user).await;
    assert_eq!(weak.aal(), AssuranceLevel::Aal1);
    assert_eq!(weak.step_up_needed(&deps), Some(StepUp::SecondFactor));
    let before = inspect::count_events(&t.owner, "password_changed").await;
    let refused = change_password(
        &t.db,
        &deps,
        &weak,
        &Password::new("a much longer and stranger passphrase 7").expect("valid"),
        &meta(),
    )
    .await;
    assert!(
        matches!(
            refused,
            Err(ServiceError::StepUpRequired {
                needs: StepUp::SecondFactor
            })
        ),
        "{refused:?}"
    );
    assert_eq!(
        inspect::count_events(&t.owner, "password_changed").await,
        before
    );
    assert_eq!(inspect::count_events(&t.owner, "step_up_required").await, 1);
    let refused = generate_backup_codes(&t.db, &deps, &weak, &meta()).await;
    assert!(
        matches!(refused, Err(ServiceError::StepUpRequired { .. })),
        "{refused:?}"
    );

    // Without a code, re-authenticating a user with a factor asks for it.
    let no_code = reauthenticate(&t.db, &deps, &weak, &password(PASSWORD), None, &meta()).await;
    assert!(
        matches!(
            no_code,
            Err(ServiceError::StepUpRequired {
                needs: StepUp::SecondFactor
            })
        ),
        "{no_code:?}"
    );
    let strong = reauthenticate(
        &t.db,
        &deps,
        &weak,
        &password(PASSWORD),
        Some(MfaProof::Totp(&enrolment.code_at(now(&deps)))),
        &meta(),
    )
    .await
    .expect("steps up");
    assert_eq!(strong.aal(), AssuranceLevel::Aal2);
    assert_eq!(strong.auth_methods(), "password,totp");
    change_password(
        &t.db,
        &deps,
        &strong,
        &Password::new("a much longer and stranger passphrase 7").expect("valid"),
        &meta(),
    )
    .await
    .expect("allowed at aal2, just authenticated");
}

async fn step_up_outside_the_reauthentication_window_is_refused_until_reauthenticated(t: TestDb) {
    let (deps, clock) = fixtures::deps();
    let user = fixtures::user(&t.db, &deps, "zora").await;
    let session = fixtures::session_of(&t.db, &deps, user.id).await;
    clock.advance(deps.config.reauthentication_window + Duration::seconds(1));
    let refused = enrol_totp(&t.db, &deps, &session, "Phone", &meta()).await;
    assert!(
        matches!(
            refused,
            Err(ServiceError::StepUpRequired {
                needs: StepUp::Reauthentication
            })
        ),
        "{refused:?}"
    );
    let wrong = reauthenticate(
        &t.db,
        &deps,
        &session,
        &password("not the password"),
        None,
        &meta(),
    )
    .await;
    assert!(
        matches!(wrong, Err(ServiceError::InvalidCredentials)),
        "{wrong:?}"
    );
    let fresh = reauthenticate(&t.db, &deps, &session, &password(PASSWORD), None, &meta())
        .await
        .expect("re-authenticates");
    assert_eq!(fresh.authenticated_at(), deps.now());
    enrol_totp(&t.db, &deps, &fresh, "Phone", &meta())
        .await
        .expect("allowed right after");
    assert_eq!(inspect::count_events(&t.owner, "reauthenticated").await, 1);
}

async fn password_change_checks_the_policy_and_ends_other_sessions(t: TestDb) {
    let (deps, _clock) = fixtures::deps();
    let user = fixtures::user(&t.db, &deps, "ada").await;
    let other = fixtures::session_of(&t.db, &deps, user.id).await;
    let current = fixtures::session_of(&t.db, &deps, user.id).await;
    let weak = change_password(
        &t.db,
        &deps,
        &current,
        &Password::new("password1").expect("long enough"),
        &meta(),
    )
    .await;
    assert!(
        matches!(
            weak,
            Err(ServiceError::WeakPassword {
                reason: WeakPasswordReason::TooGuessable { .. }
            })
        ),
        "{weak:?}"
    );
    let revoked = change_password(
        &t.db,
        &deps,
        &current,
        &Password::new("lantern orbit quietly 47 mosaic").expect("valid"),
        &meta(),
    )
    .await
    .expect("changes");
    assert_eq!(revoked, 1, "the other session ended");
    let ended = validate_session(&t.db, &deps, user.id, other.session_id()).await;
    assert!(
        matches!(ended, Err(ServiceError::SessionRevoked)),
        "{ended:?}"
    );
    validate_session(&t.db, &deps, user.id, current.session_id())
        .await
        .expect("the current session stays");
    let old = login(
        &t.db,
        &deps,
        &email("ada@example.com"),
        &password(PASSWORD),
        &meta(),
    )
    .await;
    assert!(
        matches!(old, Err(ServiceError::InvalidCredentials)),
        "{old:?}"
    );
    fixtures::login_one_step(
        &t.db,
        &deps,
        &email("ada@example.com"),
        &password("lantern orbit quietly 47 mosaic"),
        &meta(),
    )
    .await
    .expect("the new password signs in");
}

async fn password_weak_or_email_like_is_refused_with_the_reason(t: TestDb) {
    let (deps, _clock) = fixtures::deps();
    let before = inspect::row_counts(&t.owner).await;
    for (pass, expect) in [
        ("password123", "too easy to guess"),
        ("xX-bellatrix-Xx-2026", "email"),
        ("Bellatrix Lestrange 1", "name"),
    ] {
        let input =
            NewUser::parse("bellatrix@example.com", pass, "Bellatrix Lestrange").expect("parses");
        let refused = register_user(&t.db, &deps, input, &meta()).await;
        let Err(ServiceError::WeakPassword { reason }) = &refused else {
            panic!("{pass:?}: {refused:?}");
        };
        let text = reason.to_string();
        assert!(text.contains(expect), "{pass:?}: {text}");
        assert!(
            !text.contains(pass),
            "the reason never repeats the password"
        );
    }
    assert_eq!(
        inspect::row_counts(&t.owner).await,
        before,
        "nothing written"
    );
}

async fn deactivate_account_ends_every_session_and_sign_in(t: TestDb) {
    let (deps, _clock) = fixtures::deps();
    let user = fixtures::user(&t.db, &deps, "ida").await;
    let other = fixtures::session_of(&t.db, &deps, user.id).await;
    let current = fixtures::session_of(&t.db, &deps, user.id).await;
    assert_eq!(
        deactivate_account(&t.db, &deps, &current, &meta())
            .await
            .expect("closes"),
        2
    );
    for session in [&other, &current] {
        let ended = validate_session(&t.db, &deps, user.id, session.session_id()).await;
        assert!(ended.is_err(), "{ended:?}");
    }
    let refused = login(
        &t.db,
        &deps,
        &email("ida@example.com"),
        &password(PASSWORD),
        &meta(),
    )
    .await;
    assert!(
        matches!(refused, Err(ServiceError::AccountDisabled)),
        "{refused:?}"
    );
    assert_eq!(inspect::count_events(&t.owner, "user_deactivated").await, 1);
}

/// PostgreSQL: the checks every request makes ([`validate_session`], API-key
/// authentication) run outside any transaction of the service's; they must leave no
/// row-security context behind, neither on a pooled connection (a pool of one, so the
/// next statement is on the same connection) nor in a caller's transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_request_checks_leave_no_context_behind() {
    tests::run_case(
        tests::Backend::Postgres,
        "request_checks_leave_no_context",
        tests::Start::Migrated,
        |t| async move {
            use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};
            async fn context_left<C: ConnectionTrait>(db: &C) -> (String, String) {
                db.query_one_raw(Statement::from_string(
                    DbBackend::Postgres,
                    "SELECT coalesce(current_setting('app.current_tenant_id', true), ''), \
                            coalesce(current_setting('app.current_user_id', true), '')",
                ))
                .await
                .expect("reads")
                .expect("a row")
                .try_get_many_by_index()
                .expect("two texts")
            }
            let none = (String::new(), String::new());
            let (deps, _) = fixtures::deps();
            let user = fixtures::user(&t.db, &deps, "alice").await;
            let tenant = fixtures::tenant(&t.db, &deps, "acme", &user).await;
            let ctx = service::tenancy::TenantCtx::for_member(&t.db, tenant.id, user.id)
                .await
                .expect("a member");
            let key = service::identity::create_api_key(
                &t.db,
                &deps,
                &ctx,
                service::identity::NewApiKey {
                    name: "ci".to_owned(),
                    scopes: vec!["*:*".to_owned()],
                    expires_at: None,
                },
                &meta(),
            )
            .await
            .expect("a key");
            let one = service::connection::connect(&t.runtime_target(None), &tests::pool(1))
                .await
                .expect("connects as the runtime login");
            let session = fixtures::session_of(&one, &deps, user.id).await;

            validate_session(&one, &deps, user.id, session.session_id())
                .await
                .expect("validates");
            assert_eq!(context_left(&one).await, none, "after validate_session");
            service::identity::authenticate_api_key(&one, &deps, key.secret.expose(), &meta())
                .await
                .expect("authenticates");
            assert_eq!(context_left(&one).await, none, "after authenticate_api_key");

            let txn = one.begin().await.expect("begins");
            validate_session(&txn, &deps, user.id, session.session_id())
                .await
                .expect("validates in a transaction");
            assert_eq!(
                context_left(&txn).await,
                none,
                "in the caller's transaction"
            );
            txn.commit().await.expect("commits");
        },
    )
    .await;
}
