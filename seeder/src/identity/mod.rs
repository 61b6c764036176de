//! The people of a profile: registration, sign-ins and extra sessions, through
//! `service::identity` like any application.

use crate::profile::{SHARED_PASSWORD, UserFixture};
use crate::{SeedError, fixture_error};
use entity::UserId;
use sea_orm::{ConnectionTrait, TransactionTrait};
use service::identity::{
    Account, NewPasskey, NewUser, confirm_totp, create_session, detect_sign_in_anomalies,
    enrol_totp, es256_cose_key, generate_backup_codes, list_sessions, register_passkey,
    register_user, validate_session,
};
use service::input::{Language, Timezone};
use service::request::Location;
use service::{Deps, ManualClock, RequestMeta, ServiceError};
use std::sync::Arc;

/// Registers the fixture's user with the shared password.
pub(crate) async fn register<C>(
    db: &C,
    deps: &Deps,
    fixture: &UserFixture,
    meta: &RequestMeta,
) -> Result<Account, SeedError>
where
    C: ConnectionTrait + TransactionTrait + 'static,
{
    let on_err = fixture_error(fixture.email);
    let mut new_user =
        NewUser::parse(fixture.email, SHARED_PASSWORD, fixture.display_name).map_err(&on_err)?;
    new_user.timezone = Timezone::parse(fixture.timezone).map_err(&on_err)?;
    new_user.language = Language::parse(fixture.language).map_err(&on_err)?;
    register_user(db, deps, new_user, meta)
        .await
        .map_err(&on_err)
}

/// A session, as a sign-in leaves one. Not `login` itself: sign-in keeps its throttle
/// counters and failure records out of any caller's transaction, and the whole load is
/// one transaction.
pub(crate) async fn sign_in<C>(
    db: &C,
    deps: &Deps,
    user: UserId,
    email: &'static str,
    meta: &RequestMeta,
) -> Result<(), SeedError>
where
    C: ConnectionTrait + TransactionTrait + 'static,
{
    create_session(db, deps, user, meta)
        .await
        .map_err(fixture_error(email))?;
    Ok(())
}

/// A session from a second ("mobile") device, so "list my sessions" has something to list.
pub(crate) async fn sign_in_on_mobile<C>(
    db: &C,
    deps: &Deps,
    user: UserId,
    email: &'static str,
) -> Result<(), SeedError>
where
    C: ConnectionTrait + TransactionTrait + 'static,
{
    let mobile = RequestMeta::new(None, Some("AcmeMobile/1.0 (seeded)"));
    create_session(db, deps, user, &mobile)
        .await
        .map_err(fixture_error(email))?;
    Ok(())
}

/// A confirmed TOTP factor and its backup codes, in the clear: demo credentials,
/// deterministic for a given `--seed`, printed so a developer can add the factor to an
/// authenticator app.
#[derive(Debug)]
pub struct SecondFactorLine {
    pub email: &'static str,
    pub secret_base32: String,
    pub otpauth_uri: String,
    pub backup_codes: Vec<String>,
    /// Anomaly reports written about the user (an impossible journey, Tokyo to Paris).
    pub anomaly_reports: usize,
}

/// Where the fixtures sign Alice in from: her laptop, in Tokyo, then in Paris.
fn from_laptop(
    meta: &RequestMeta,
    country: &str,
    city: &str,
    (latitude, longitude): (f64, f64),
) -> Result<RequestMeta, ServiceError> {
    Ok(meta
        .clone()
        .with_device("seeded-laptop")?
        .with_location(Location::parse(
            Some(country),
            Some(city),
            Some(latitude),
            Some(longitude),
        )?))
}

/// Enrols a TOTP factor for the user in a session of theirs (the operations that change
/// a second factor need one), confirms it with the code of the fixture clock's time,
/// and generates the backup codes.
pub(crate) async fn second_factor<C>(
    db: &C,
    deps: &Deps,
    user: UserId,
    email: &'static str,
    meta: &RequestMeta,
) -> Result<SecondFactorLine, SeedError>
where
    C: ConnectionTrait + TransactionTrait + 'static,
{
    let on_err = fixture_error(email);
    // Signed in from Tokyo on her laptop...
    let laptop = from_laptop(meta, "JP", "東京", (35.6762, 139.6503)).map_err(&on_err)?;
    let issued = create_session(db, deps, user, &laptop)
        .await
        .map_err(&on_err)?;
    let session = validate_session(db, deps, user, issued.session.id)
        .await
        .map_err(&on_err)?;
    let enrolment = enrol_totp(db, deps, &session, "Authenticator (seeded)", meta)
        .await
        .map_err(&on_err)?;
    let now = u64::try_from(deps.now().timestamp()).unwrap_or_default();
    confirm_totp(db, deps, &session, &enrolment.code_at(now), meta)
        .await
        .map_err(&on_err)?;
    let codes = generate_backup_codes(db, deps, &session, meta)
        .await
        .map_err(&on_err)?;
    // ...and, an hour later, from Paris on the same laptop: impossible travel, reported.
    let paris = from_laptop(meta, "FR", "Paris", (48.8566, 2.3522)).map_err(&on_err)?;
    let later = deps.now() + chrono::Duration::hours(1);
    let anomalies = detect_sign_in_anomalies(
        db,
        &deps.clone().with_clock(Arc::new(ManualClock::new(later))),
        user,
        &paris,
    )
    .await
    .map_err(&on_err)?;
    Ok(SecondFactorLine {
        email,
        secret_base32: enrolment.secret_base32().to_owned(),
        otpauth_uri: enrolment.otpauth_uri().to_owned(),
        backup_codes: codes.expose().map(str::to_owned).collect(),
        anomaly_reports: anomalies.len(),
    })
}

/// A passkey, as a platform authenticator registers one: its P-256 key and credential
/// id drawn from the fixture randomness, so the same `--seed` gives the same row, and a
/// counter that has not started (as synced passkeys keep it).
pub(crate) async fn passkey<C>(
    db: &C,
    deps: &Deps,
    user: UserId,
    email: &'static str,
    meta: &RequestMeta,
) -> Result<(), SeedError>
where
    C: ConnectionTrait + TransactionTrait + 'static,
{
    let on_err = fixture_error(email);
    // A scalar outside 1..n fails (odds of about 2^-32): draw again.
    let key = loop {
        let mut scalar = [0u8; 32];
        deps.random.fill(&mut scalar);
        if let Ok(key) = p256::ecdsa::SigningKey::from_slice(&scalar) {
            break key;
        }
    };
    let mut credential_id = vec![0u8; 16];
    deps.random.fill(&mut credential_id);
    let point = key.verifying_key().to_encoded_point(false);
    let new = NewPasskey {
        credential_id,
        public_key_cose: es256_cose_key(point.as_bytes()).map_err(&on_err)?,
        sign_count: 0,
        aaguid: uuid::Uuid::nil(),
        transports: vec!["internal".to_owned(), "hybrid".to_owned()],
        backup_eligible: true,
        backup_state: true,
        name: "Laptop (fixture)".to_owned(),
    };
    // In the session she turned her second factor on in (now aal2): registering a
    // passkey is a sensitive operation.
    let newest = list_sessions(db, deps, user)
        .await
        .map_err(&on_err)?
        .into_iter()
        .next()
        .ok_or_else(|| {
            on_err(ServiceError::NotFound {
                entity: "session of user",
                id: user.to_string(),
            })
        })?;
    let session = validate_session(db, deps, user, newest.id)
        .await
        .map_err(&on_err)?;
    register_passkey(db, deps, &session, new, meta)
        .await
        .map_err(&on_err)?;
    Ok(())
}
