//! Registration, sign-in, sessions and refresh-token rotation, on every backend
//! (sign-in throttling: `sign_in_throttling.rs`).

use chrono::Duration;
use entity::audit::audit_logs::{self, AuditOutcome};
use entity::identity::{refresh_tokens, sessions, user_profiles, users};
use sea_orm::ActiveValue::Set;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    TransactionTrait,
};
use service::identity::{
    NewUser, authenticate, create_session, list_sessions, refresh_session, register_user,
    revoke_all_sessions, revoke_session,
};
use service::{ServiceConfig, ServiceError};
use tests::fixtures::{self, PASSWORD, email, meta, password};
use tests::{TestDb, inspect};

tests::backend_tests!(
    Migrated: register_user_valid_input_creates_user_profile_and_audit_row,
    register_user_same_email_other_case_conflicts_and_writes_nothing,
    authenticate_correct_password_resets_failures_and_records_login,
    authenticate_unknown_email_is_invalid_credentials_and_audited,
    authenticate_inactive_user_is_refused,
    register_user_lookalike_email_forms_are_one_account,
    authenticate_outdated_hash_parameters_are_upgraded,
    create_session_stores_only_the_token_hash,
    refresh_session_rotates_the_token,
    refresh_session_reused_token_after_the_reuse_interval_revokes_the_session,
    refresh_session_reused_token_within_the_reuse_interval_gets_the_same_successor,
    refresh_session_concurrent_refreshes_within_the_reuse_interval_share_one_successor,
    refresh_session_expired_token_or_session_is_rejected,
    refresh_session_malformed_or_unknown_token_is_invalid,
    revoke_session_of_another_user_is_not_found,
    revoke_all_sessions_signs_out_everywhere,
    list_sessions_shows_only_own_live_sessions,
    audit_row_rolls_back_with_its_change,
);

/// The whole row, as the owner reads it (the runtime role cannot read hashes).
async fn stored_user(t: &TestDb, id: entity::UserId) -> users::Model {
    users::Entity::find_by_id(id)
        .one(&t.owner)
        .await
        .expect("query")
        .expect("the user exists")
}

async fn register_user_valid_input_creates_user_profile_and_audit_row(t: TestDb) {
    let (deps, _) = fixtures::deps();
    let input = NewUser::parse("  Alice@Acme.COM ", PASSWORD, "Alice Anderson").expect("valid");
    let user = register_user(&t.db, &deps, input, &meta())
        .await
        .expect("registers");
    assert_eq!(
        user.email, "alice@acme.com",
        "stored trimmed and lowercased"
    );
    let stored = stored_user(&t, user.id).await;
    assert!(
        stored
            .password_hash
            .expose()
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$")
    );
    assert!(
        !format!("{stored:?}").contains("argon2"),
        "Debug never shows the hash"
    );

    let profile = user_profiles::Entity::find()
        .filter(user_profiles::Column::UserId.eq(user.id))
        .one(&t.owner)
        .await
        .expect("query")
        .expect("profile exists");
    assert_eq!(profile.display_name, "Alice Anderson");
    assert_eq!(
        (profile.timezone.as_str(), profile.language.as_str()),
        ("UTC", "en")
    );

    let event = audit_logs::Entity::find()
        .filter(audit_logs::Column::EventType.eq("user_created"))
        .one(&t.owner)
        .await
        .expect("query")
        .expect("audited");
    assert_eq!(event.actor_user_id, Some(user.id));
    assert_eq!(event.resource_id, Some(user.id.to_string()));
    assert_eq!(event.ip_address.as_deref(), Some("203.0.113.7"));
    assert_eq!(event.occurred_at, fixtures::start_time());
}

async fn register_user_same_email_other_case_conflicts_and_writes_nothing(t: TestDb) {
    let (deps, _) = fixtures::deps();
    fixtures::user(&t.db, &deps, "alice").await;
    let before = inspect::row_counts(&t.owner).await;
    let again = NewUser::parse("ALICE@example.com", PASSWORD, "Another Alice").expect("valid");
    let err = register_user(&t.db, &deps, again, &meta())
        .await
        .expect_err("duplicate");
    assert!(
        matches!(err, ServiceError::Conflict { entity: "user", .. }),
        "{err:?}"
    );
    assert_eq!(inspect::row_counts(&t.owner).await, before);
}

async fn authenticate_correct_password_resets_failures_and_records_login(t: TestDb) {
    let (deps, clock) = fixtures::deps();
    let alice = fixtures::user(&t.db, &deps, "alice").await;
    let wrong = authenticate(
        &t.db,
        &deps,
        &email("alice@example.com"),
        &password("nope-nope"),
        &meta(),
    )
    .await;
    assert!(matches!(wrong, Err(ServiceError::InvalidCredentials)));
    clock.advance(Duration::minutes(1));
    let user = authenticate(
        &t.db,
        &deps,
        &email("ALICE@example.com"),
        &password(PASSWORD),
        &meta(),
    )
    .await
    .expect("signs in");
    assert_eq!(user.id, alice.id);
    assert_eq!(
        user.last_login_at,
        Some(fixtures::start_time() + Duration::minutes(1))
    );
    assert_eq!(inspect::count_events(&t.owner, "login").await, 1);
    assert_eq!(inspect::count_events(&t.owner, "login_failed").await, 1);
}

async fn authenticate_unknown_email_is_invalid_credentials_and_audited(t: TestDb) {
    let (deps, _) = fixtures::deps();
    let err = authenticate(
        &t.db,
        &deps,
        &email("ghost@example.com"),
        &password(PASSWORD),
        &meta(),
    )
    .await
    .expect_err("unknown");
    assert!(matches!(err, ServiceError::InvalidCredentials), "{err:?}");
    let event = audit_logs::Entity::find()
        .one(&t.owner)
        .await
        .expect("query")
        .expect("audited");
    assert_eq!(event.event_type, "login_failed");
    assert_eq!(event.actor_user_id, None);
    assert_eq!(event.outcome, AuditOutcome::Failure);
    assert!(
        !event.details.to_string().contains("ghost"),
        "the attempted email is not stored"
    );
}

async fn authenticate_inactive_user_is_refused(t: TestDb) {
    let (deps, _) = fixtures::deps();
    let carol = fixtures::user(&t.db, &deps, "carol").await;
    let mut active: users::ActiveModel = stored_user(&t, carol.id).await.into();
    active.is_active = Set(false);
    active.update(&t.owner).await.expect("deactivates");
    let err = authenticate(
        &t.db,
        &deps,
        &email("carol@example.com"),
        &password(PASSWORD),
        &meta(),
    )
    .await
    .expect_err("inactive");
    assert!(matches!(err, ServiceError::AccountDisabled), "{err:?}");
    assert_eq!(inspect::count_events(&t.owner, "login").await, 0);
}

async fn authenticate_outdated_hash_parameters_are_upgraded(t: TestDb) {
    let weak = ServiceConfig {
        argon2_memory_kib: 8 * 1024,
        argon2_iterations: 1,
        ..ServiceConfig::default()
    };
    let (old_deps, _) = fixtures::deps_with(weak);
    let dave = fixtures::user(&t.db, &old_deps, "dave").await;
    assert!(
        stored_user(&t, dave.id)
            .await
            .password_hash
            .expose()
            .contains("m=8192,t=1,p=1")
    );

    let (deps, _) = fixtures::deps();
    let user = authenticate(
        &t.db,
        &deps,
        &email("dave@example.com"),
        &password(PASSWORD),
        &meta(),
    )
    .await
    .expect("old hash still verifies");
    assert!(
        stored_user(&t, user.id)
            .await
            .password_hash
            .expose()
            .contains("m=19456,t=2,p=1"),
        "rehashed on login"
    );
    authenticate(
        &t.db,
        &deps,
        &email("dave@example.com"),
        &password(PASSWORD),
        &meta(),
    )
    .await
    .expect("new hash verifies");
}

async fn create_session_stores_only_the_token_hash(t: TestDb) {
    let (deps, _) = fixtures::deps();
    let erin = fixtures::user(&t.db, &deps, "erin").await;
    let issued = create_session(&t.db, &deps, erin.id, &meta())
        .await
        .expect("opens");
    let token = issued.refresh_token.expose().to_owned();
    assert!(
        token.starts_with("rt_") && token.len() == 67,
        "256 random bits, hex"
    );
    assert!(
        !format!("{issued:?}").contains(&token),
        "Debug never shows the token"
    );
    let stored = refresh_tokens::Entity::find()
        .all(&t.owner)
        .await
        .expect("query");
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0].token_hash.expose(), token);
    assert_eq!(stored[0].token_hash.expose().len(), 64);
    assert_eq!(
        issued.session.expires_at,
        fixtures::start_time() + deps.config.session_lifetime
    );
    assert_eq!(
        issued.refresh_expires_at,
        fixtures::start_time() + deps.config.refresh_token_lifetime
    );
}

async fn refresh_session_rotates_the_token(t: TestDb) {
    let (deps, clock) = fixtures::deps();
    let frank = fixtures::user(&t.db, &deps, "frank").await;
    let first = create_session(&t.db, &deps, frank.id, &meta())
        .await
        .expect("opens");
    clock.advance(Duration::hours(1));
    let second = refresh_session(&t.db, &deps, first.refresh_token.expose(), &meta())
        .await
        .expect("refreshes");
    assert_eq!(second.session.id, first.session.id, "same session");
    assert_ne!(second.refresh_token, first.refresh_token, "new token");
    assert_eq!(
        second.session.last_used_at,
        fixtures::start_time() + Duration::hours(1)
    );
    let third = refresh_session(&t.db, &deps, second.refresh_token.expose(), &meta())
        .await
        .expect("the new token works");
    assert_eq!(third.session.id, first.session.id);
    let chain = refresh_tokens::Entity::find()
        .filter(refresh_tokens::Column::SessionId.eq(first.session.id))
        .count(&t.owner)
        .await
        .expect("count");
    assert_eq!(chain, 3);
    assert_eq!(
        inspect::count_events(&t.owner, "session_refreshed").await,
        2
    );
}

async fn refresh_session_reused_token_after_the_reuse_interval_revokes_the_session(t: TestDb) {
    let (deps, clock) = fixtures::deps();
    let gina = fixtures::user(&t.db, &deps, "gina").await;
    let first = create_session(&t.db, &deps, gina.id, &meta())
        .await
        .expect("opens");
    let second = refresh_session(&t.db, &deps, first.refresh_token.expose(), &meta())
        .await
        .expect("refreshes");

    clock.advance(deps.config.refresh_reuse_interval + Duration::seconds(1));
    let reuse = refresh_session(&t.db, &deps, first.refresh_token.expose(), &meta()).await;
    assert!(matches!(reuse, Err(ServiceError::TokenReused)), "{reuse:?}");
    let session = sessions::Entity::find_by_id(first.session.id)
        .one(&t.owner)
        .await
        .expect("query")
        .expect("exists");
    assert!(session.revoked_at.is_some(), "the whole session is revoked");
    assert_eq!(
        session.revoked_reason,
        Some(sessions::RevokedReason::TokenReuse)
    );
    assert_eq!(
        inspect::count_events(&t.owner, "refresh_token_reused").await,
        1
    );

    // The thief's and the owner's newest token are both dead now.
    let after = refresh_session(&t.db, &deps, second.refresh_token.expose(), &meta()).await;
    assert!(
        matches!(after, Err(ServiceError::SessionRevoked)),
        "{after:?}"
    );
}

/// Two refreshes of one token at once. On PostgreSQL and MariaDB the test makes them
/// overlap for real: a third transaction holds the token's row, both refreshes read
/// it as unused and queue at the guarded `UPDATE`, and only when the database shows
/// both waiting is the row let go. SQLite serialises writers (`BEGIN IMMEDIATE`), so
/// there the second one reads the token as used.
async fn refresh_session_reused_token_within_the_reuse_interval_gets_the_same_successor(t: TestDb) {
    let (deps, clock) = fixtures::deps();
    let tab = fixtures::user(&t.db, &deps, "tabby").await;
    let first = create_session(&t.db, &deps, tab.id, &meta())
        .await
        .expect("opens");
    let second = refresh_session(&t.db, &deps, first.refresh_token.expose(), &meta())
        .await
        .expect("refreshes");
    clock.advance(deps.config.refresh_reuse_interval - Duration::seconds(1));
    let again = refresh_session(&t.db, &deps, first.refresh_token.expose(), &meta())
        .await
        .expect("another tab, within the interval");
    assert_eq!(
        again.refresh_token, second.refresh_token,
        "the same successor"
    );
    assert_eq!(again.refresh_expires_at, second.refresh_expires_at);
    assert_eq!(
        inspect::count_events(&t.owner, "refresh_token_reused").await,
        0,
        "no reuse recorded"
    );
    // The successor moves on: its parent no longer gets it back, and is reuse.
    let third = refresh_session(&t.db, &deps, second.refresh_token.expose(), &meta())
        .await
        .expect("the successor refreshes");
    let late = refresh_session(&t.db, &deps, first.refresh_token.expose(), &meta()).await;
    assert!(matches!(late, Err(ServiceError::TokenReused)), "{late:?}");
    let after = refresh_session(&t.db, &deps, third.refresh_token.expose(), &meta()).await;
    assert!(
        matches!(after, Err(ServiceError::SessionRevoked)),
        "{after:?}"
    );
    // The sealed successors are gone once used or revoked.
    let sealed = refresh_tokens::Entity::find()
        .filter(refresh_tokens::Column::ReissueSealed.is_not_null())
        .count(&t.owner)
        .await
        .expect("count");
    assert_eq!(sealed, 0, "no sealed token outlives its use or its session");

    // From another device than the session's, a used token is theft, interval or not.
    let laptop = meta().with_device("laptop").expect("a fingerprint");
    let phone = meta().with_device("phone").expect("a fingerprint");
    let opened = create_session(&t.db, &deps, tab.id, &laptop)
        .await
        .expect("opens on the laptop");
    refresh_session(&t.db, &deps, opened.refresh_token.expose(), &laptop)
        .await
        .expect("refreshes on the laptop");
    let stolen = refresh_session(&t.db, &deps, opened.refresh_token.expose(), &phone).await;
    assert!(
        matches!(stolen, Err(ServiceError::TokenReused)),
        "{stolen:?}"
    );
}

async fn refresh_session_concurrent_refreshes_within_the_reuse_interval_share_one_successor(
    t: TestDb,
) {
    let (deps, _) = fixtures::deps();
    let hank = fixtures::user(&t.db, &deps, "hank").await;
    let issued = create_session(&t.db, &deps, hank.id, &meta())
        .await
        .expect("opens");
    let token = issued.refresh_token.expose().to_owned();
    let holder = match t.backend {
        tests::Backend::Sqlite => None,
        _ => {
            let txn = t.owner.begin().await.expect("begins");
            txn.execute_unprepared(&format!(
                "SELECT id FROM refresh_tokens WHERE session_id = {} FOR UPDATE",
                match t.backend {
                    tests::Backend::Postgres => format!("'{}'", issued.session.id),
                    _ => format!("x'{}'", issued.session.id.0.simple()),
                }
            ))
            .await
            .expect("holds the token's row");
            Some(txn)
        }
    };
    let attempts: Vec<_> = (0..2)
        .map(|_| {
            let (db, deps, token) = (t.db.clone(), deps.clone(), token.clone());
            tokio::spawn(async move { refresh_session(&db, &deps, &token, &meta()).await })
        })
        .collect();
    if let Some(holder) = holder {
        let waiting = match t.backend {
            tests::Backend::Postgres => {
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            }
            // Statements in progress on the held row: they are waiting for it.
            _ => {
                "SELECT count(*) FROM information_schema.processlist
                  WHERE db = DATABASE() AND info LIKE 'UPDATE `refresh_tokens` SET `used_at`%'"
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
        if !both_waited {
            let state = t
                .owner
                .query_all_raw(sea_orm::Statement::from_string(
                    t.db_backend(),
                    match t.backend {
                        tests::Backend::Postgres => "SELECT state || ' ' || coalesce(wait_event_type, '-') || ' ' || left(query, 80) FROM pg_stat_activity WHERE datname = current_database()",
                        _ => "SELECT CONCAT(COALESCE(state, '-'), ' ', COALESCE(LEFT(info, 80), '-')) FROM information_schema.processlist WHERE db = DATABASE()",
                    },
                ))
                .await
                .expect("reads the server's state");
            let state: Vec<String> = state
                .iter()
                .map(|r| r.try_get_by_index::<String>(0).unwrap_or_default())
                .collect();
            panic!("both refreshes read the token and queued at the update: {state:#?}");
        }
        holder.rollback().await.expect("lets go");
    }
    let results: Vec<_> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|joined| joined.expect("task finished"))
        .collect();
    let issued: Vec<_> = results
        .iter()
        .map(|r| r.as_ref().expect("both tabs refresh within the interval"))
        .collect();
    assert_eq!(
        issued[0].refresh_token, issued[1].refresh_token,
        "both get the one successor"
    );
    assert_eq!(
        inspect::count_events(&t.owner, "refresh_token_reused").await,
        0,
        "no reuse recorded"
    );
    let successors = refresh_tokens::Entity::find()
        .filter(refresh_tokens::Column::ParentId.is_not_null())
        .count(&t.owner)
        .await
        .expect("count");
    assert_eq!(successors, 1, "only one successor token was issued");
}

async fn refresh_session_expired_token_or_session_is_rejected(t: TestDb) {
    let (deps, clock) = fixtures::deps();
    let ivan = fixtures::user(&t.db, &deps, "ivan").await;
    let issued = create_session(&t.db, &deps, ivan.id, &meta())
        .await
        .expect("opens");
    clock.advance(deps.config.refresh_token_lifetime + Duration::seconds(1));
    let err = refresh_session(&t.db, &deps, issued.refresh_token.expose(), &meta())
        .await
        .expect_err("expired");
    assert!(
        matches!(
            err,
            ServiceError::Expired {
                what: "refresh token",
                ..
            }
        ),
        "{err:?}"
    );

    // A session past its absolute end cannot be refreshed with a fresh token either.
    clock.set(fixtures::start_time());
    let other = create_session(&t.db, &deps, ivan.id, &meta())
        .await
        .expect("opens");
    let mut token = other.refresh_token;
    for _ in 0..3 {
        clock.advance(Duration::days(9));
        token = refresh_session(&t.db, &deps, token.expose(), &meta())
            .await
            .expect("refreshes")
            .refresh_token;
    }
    clock.advance(Duration::days(4));
    let err = refresh_session(&t.db, &deps, token.expose(), &meta())
        .await
        .expect_err("session over");
    assert!(
        matches!(
            err,
            ServiceError::Expired {
                what: "session",
                ..
            }
        ),
        "{err:?}"
    );
}

async fn refresh_session_malformed_or_unknown_token_is_invalid(t: TestDb) {
    let (deps, _) = fixtures::deps();
    let before = inspect::row_counts(&t.owner).await;
    let unknown = format!("rt_{}", "ab".repeat(32));
    let overlong = "rt_".to_owned() + &"a".repeat(10_000);
    for token in ["", "garbage", "rt_xyz", overlong.as_str(), unknown.as_str()] {
        let err = refresh_session(&t.db, &deps, token, &meta())
            .await
            .expect_err("invalid");
        assert!(
            matches!(err, ServiceError::InvalidToken),
            "{token:.20}: {err:?}"
        );
    }
    assert_eq!(
        inspect::row_counts(&t.owner).await,
        before,
        "nothing written"
    );
}

async fn revoke_session_of_another_user_is_not_found(t: TestDb) {
    let (deps, _) = fixtures::deps();
    let judy = fixtures::user(&t.db, &deps, "judy").await;
    let mallory = fixtures::user(&t.db, &deps, "mallory").await;
    let issued = create_session(&t.db, &deps, judy.id, &meta())
        .await
        .expect("opens");
    let err = revoke_session(&t.db, &deps, mallory.id, issued.session.id, &meta())
        .await
        .expect_err("not hers");
    assert!(
        matches!(
            err,
            ServiceError::NotFound {
                entity: "session",
                ..
            }
        ),
        "{err:?}"
    );
    revoke_session(&t.db, &deps, judy.id, issued.session.id, &meta())
        .await
        .expect("own session");
    let again = revoke_session(&t.db, &deps, judy.id, issued.session.id, &meta()).await;
    assert!(
        matches!(again, Err(ServiceError::SessionRevoked)),
        "{again:?}"
    );
    let refresh = refresh_session(&t.db, &deps, issued.refresh_token.expose(), &meta()).await;
    assert!(
        matches!(refresh, Err(ServiceError::SessionRevoked)),
        "{refresh:?}"
    );
    assert_eq!(inspect::count_events(&t.owner, "logout").await, 1);
}

async fn revoke_all_sessions_signs_out_everywhere(t: TestDb) {
    let (deps, _) = fixtures::deps();
    let kim = fixtures::user(&t.db, &deps, "kim").await;
    let lee = fixtures::user(&t.db, &deps, "lee").await;
    for _ in 0..3 {
        create_session(&t.db, &deps, kim.id, &meta())
            .await
            .expect("opens");
    }
    create_session(&t.db, &deps, lee.id, &meta())
        .await
        .expect("opens");
    let revoked = revoke_all_sessions(&t.db, &deps, kim.id, &meta())
        .await
        .expect("revokes");
    assert_eq!(revoked, 3);
    assert!(
        list_sessions(&t.db, &deps, kim.id)
            .await
            .expect("lists")
            .is_empty()
    );
    assert_eq!(
        list_sessions(&t.db, &deps, lee.id)
            .await
            .expect("lists")
            .len(),
        1,
        "others untouched"
    );
    let open_tokens = refresh_tokens::Entity::find()
        .filter(refresh_tokens::Column::RevokedAt.is_null())
        .count(&t.owner)
        .await
        .expect("count");
    assert_eq!(open_tokens, 1, "only lee's token is still open");
}

async fn list_sessions_shows_only_own_live_sessions(t: TestDb) {
    let (deps, clock) = fixtures::deps();
    let (_, issued) = {
        fixtures::user(&t.db, &deps, "max").await;
        fixtures::login_one_step(
            &t.db,
            &deps,
            &email("max@example.com"),
            &password(PASSWORD),
            &meta(),
        )
        .await
        .expect("logs in")
    };
    let max_id = issued.session.user_id;
    clock.advance(Duration::minutes(5));
    let second = create_session(&t.db, &deps, max_id, &meta())
        .await
        .expect("opens");
    let listed = list_sessions(&t.db, &deps, max_id).await.expect("lists");
    assert_eq!(
        listed.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![second.session.id, issued.session.id],
        "newest first"
    );
    // Past the first session's end, before the second's.
    clock.advance(deps.config.session_lifetime - Duration::minutes(4));
    let listed = list_sessions(&t.db, &deps, max_id).await.expect("lists");
    assert_eq!(
        listed.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![second.session.id],
        "expired one hidden"
    );
}

async fn audit_row_rolls_back_with_its_change(t: TestDb) {
    use sea_orm::TransactionTrait;
    let (deps, _) = fixtures::deps();
    let txn = t.db.begin().await.expect("begins");
    let input = NewUser::parse("nina@example.com", PASSWORD, "Nina").expect("valid");
    register_user(&txn, &deps, input, &meta())
        .await
        .expect("registers inside the caller's transaction");
    txn.rollback().await.expect("rolls back");
    assert_eq!(
        inspect::row_counts(&t.owner)
            .await
            .iter()
            .map(|(_, n)| n)
            .sum::<u64>(),
        0,
        "user, profile and audit row are all gone"
    );
}

async fn register_user_lookalike_email_forms_are_one_account(t: TestDb) {
    let (deps, _) = fixtures::deps();
    // Full-width letters and at sign (NFKC folds them), upper case.
    let input = NewUser::parse("ＦＲＡＮ＠Example.com", PASSWORD, "Fran").expect("valid");
    let fran = register_user(&t.db, &deps, input, &meta())
        .await
        .expect("registers");
    assert_eq!(fran.email, "fran@example.com");
    let again = NewUser::parse("fran@EXAMPLE.com", PASSWORD, "Fran again").expect("valid");
    let err = register_user(&t.db, &deps, again, &meta())
        .await
        .expect_err("the same address");
    assert!(
        matches!(err, ServiceError::Conflict { entity: "user", .. }),
        "{err:?}"
    );
    let user = authenticate(
        &t.db,
        &deps,
        &email("ｆｒａｎ@example.com"),
        &password(PASSWORD),
        &meta(),
    )
    .await
    .expect("signs in with another form of the address");
    assert_eq!(user.id, fran.id);
}
