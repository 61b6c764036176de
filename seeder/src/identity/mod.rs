//! The people of a profile: registration, sign-ins and extra sessions, through
//! `service::identity` like any application.

use crate::profile::{SHARED_PASSWORD, UserFixture};
use crate::{SeedError, fixture_error};
use entity::UserId;
use sea_orm::{ConnectionTrait, TransactionTrait};
use service::identity::{
    Account, NewPasskey, NewUser, confirm_totp, create_session, enrol_totp, es256_cose_key,
    generate_backup_codes, register_passkey, register_user,
};
use service::input::{Language, Timezone};
use service::{Deps, RequestMeta};

/// Registers the fixture's user with the shared password.
pub(crate) async fn register<C>(
    db: &C,
    deps: &Deps,
    fixture: &UserFixture,
    meta: &RequestMeta,
) -> Result<Account, SeedError>
where
    C: ConnectionTrait + TransactionTrait,
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
    C: ConnectionTrait + TransactionTrait,
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
    C: ConnectionTrait + TransactionTrait,
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
}

/// Enrols a TOTP factor for the user, confirms it with the code of the fixture clock's
/// time, and generates the backup codes.
pub(crate) async fn second_factor<C>(
    db: &C,
    deps: &Deps,
    user: UserId,
    email: &'static str,
    meta: &RequestMeta,
) -> Result<SecondFactorLine, SeedError>
where
    C: ConnectionTrait + TransactionTrait,
{
    let on_err = fixture_error(email);
    let enrolment = enrol_totp(db, deps, user, "Authenticator (seeded)", meta)
        .await
        .map_err(&on_err)?;
    let now = u64::try_from(deps.now().timestamp()).unwrap_or_default();
    confirm_totp(db, deps, user, &enrolment.code_at(now), meta)
        .await
        .map_err(&on_err)?;
    let codes = generate_backup_codes(db, deps, user, meta)
        .await
        .map_err(&on_err)?;
    Ok(SecondFactorLine {
        email,
        secret_base32: enrolment.secret_base32().to_owned(),
        otpauth_uri: enrolment.otpauth_uri().to_owned(),
        backup_codes: codes.expose().map(str::to_owned).collect(),
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
    C: ConnectionTrait + TransactionTrait,
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
    register_passkey(db, deps, user, new, meta)
        .await
        .map_err(&on_err)?;
    Ok(())
}
