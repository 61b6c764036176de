//! Named actors and a deterministic service environment for tests.

use chrono::{DateTime, TimeZone, Utc};
use entity::UserId;
use entity::tenancy::tenants;
use sea_orm::DatabaseConnection;
use service::identity::{
    Account, IssuedSession, NewUser, SessionAuth, SignIn, create_session, list_sessions, login,
    register_user, validate_session,
};
use service::input::{Email, Password};
use service::tenancy::{NewTenant, create_tenant};
use service::{Deps, ManualClock, RequestMeta, ServiceConfig};
use std::sync::Arc;

pub const PASSWORD: &str = "correct horse battery";

pub fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
        .single()
        .expect("valid date")
}

/// Deps with a manual clock (returned, to move time) and seeded randomness.
pub fn deps() -> (Deps, Arc<ManualClock>) {
    deps_with(ServiceConfig::default())
}

pub fn deps_with(config: ServiceConfig) -> (Deps, Arc<ManualClock>) {
    Deps::deterministic(config, start_time(), uuid::Uuid::from_u128(0x7e57), 7)
}

pub fn meta() -> RequestMeta {
    RequestMeta::new(Some([203, 0, 113, 7].into()), Some("tests/1.0"))
}

/// Registers `name@example.com` with [`PASSWORD`].
pub async fn user(db: &DatabaseConnection, deps: &Deps, name: &str) -> Account {
    let input =
        NewUser::parse(&format!("{name}@example.com"), PASSWORD, name).expect("valid fixture");
    register_user(db, deps, input, &meta())
        .await
        .expect("fixture user registers")
}

/// Creates tenant `slug` owned by `owner`.
pub async fn tenant(
    db: &DatabaseConnection,
    deps: &Deps,
    slug: &str,
    owner: &Account,
) -> tenants::Model {
    let input = NewTenant::parse(slug, &format!("{slug} Inc")).expect("valid fixture");
    create_tenant(db, deps, owner.id, input, &meta())
        .await
        .expect("fixture tenant is created")
        .0
}

/// A parsed email, for tests that hold valid input.
pub fn email(s: &str) -> Email {
    Email::parse(s).expect("valid email")
}

/// A password as typed at sign-in.
pub fn password(s: &str) -> Password {
    Password::for_verification(s).expect("valid password")
}

/// A key ring for seeding outside `local` and `test`, where the development key is
/// refused: a fixed key, so [`crate::inspect::data`] can open what it sealed.
pub fn field_keys() -> Arc<service::crypto::KeyRing> {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    let material = Sha256::digest(b"tests: a field key for environments other than local and test");
    let entry = format!(
        "tests:{}",
        base64::engine::general_purpose::STANDARD.encode(material)
    );
    let ring =
        service::crypto::KeyRing::from_lookup(service::environment::AppEnv::Staging, &|name| {
            (name == "FIELD_ENCRYPTION_KEYS").then(|| entry.clone())
        })
        .expect("a valid key ring");
    Arc::new(ring)
}

/// Signs in a user without a second factor (one step) and returns the session.
pub async fn login_one_step(
    db: &DatabaseConnection,
    deps: &Deps,
    email: &Email,
    password: &Password,
    meta: &RequestMeta,
) -> Result<(Account, IssuedSession), service::ServiceError> {
    match login(db, deps, email, password, meta).await? {
        SignIn::Complete { account, session } => Ok((account, session)),
        SignIn::SecondFactorRequired(challenge) => {
            panic!(
                "expected a one-step sign-in, got a challenge ({:?})",
                challenge.reason
            )
        }
    }
}

/// A validated session of `user`, opened now: what sensitive operations take.
pub async fn session_of(db: &DatabaseConnection, deps: &Deps, user: UserId) -> SessionAuth {
    let issued = create_session(db, deps, user, &meta())
        .await
        .expect("fixture session opens");
    validate_session(db, deps, user, issued.session.id)
        .await
        .expect("fixture session is live")
}

/// The user's newest live session, validated (one is opened if there is none): the
/// session a user keeps working in. Adding a second factor in it makes it `aal2` and
/// ends the others, so operations that change factors can follow in it.
pub async fn current_session(db: &DatabaseConnection, deps: &Deps, user: UserId) -> SessionAuth {
    let live = list_sessions(db, deps, user).await.expect("lists sessions");
    match live.first() {
        Some(newest) => validate_session(db, deps, user, newest.id)
            .await
            .expect("the newest session is live"),
        None => session_of(db, deps, user).await,
    }
}
