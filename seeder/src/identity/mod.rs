//! The people of a profile: registration, sign-ins and extra sessions, through
//! `service::identity` like any application.

use crate::profile::{SHARED_PASSWORD, UserFixture};
use crate::{SeedError, fixture_error};
use entity::UserId;
use entity::identity::users;
use sea_orm::{ConnectionTrait, TransactionTrait};
use service::identity::{NewUser, create_session, login, register_user};
use service::input::{Email, Language, Password, Timezone};
use service::{Deps, RequestMeta};

/// Registers the fixture's user with the shared password.
pub(crate) async fn register<C>(
    db: &C,
    deps: &Deps,
    fixture: &UserFixture,
    meta: &RequestMeta,
) -> Result<users::Model, SeedError>
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

/// Signs the user in once with the shared password (a session and its audit row).
pub(crate) async fn sign_in<C>(
    db: &C,
    deps: &Deps,
    email: &'static str,
    meta: &RequestMeta,
) -> Result<(), SeedError>
where
    C: ConnectionTrait + TransactionTrait,
{
    let on_err = fixture_error(email);
    let email = Email::parse(email).map_err(&on_err)?;
    let password = Password::for_verification(SHARED_PASSWORD).map_err(&on_err)?;
    login(db, deps, &email, &password, meta)
        .await
        .map_err(&on_err)?;
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
