//! Registration and password sign-in.

use super::password::{self, Verification};
use super::password_policy::check_new_password;
use super::throttle::{self, Claim};
use crate::Result;
use crate::audit::{AuditEntry, AuditEvent, record};
use crate::begin_write;
use crate::deps::Deps;
use crate::error::{ServiceError, conflict_on_unique};
use crate::input::{DisplayName, Email, Language, Password, Timezone};
use crate::request::RequestMeta;
use crate::sql::find_before_acting;
use crate::tenancy::set_row_security_context;
use crate::transaction::InTransaction;
use chrono::{DateTime, Utc};
use entity::audit::audit_logs::AuditOutcome;
use entity::identity::{user_profiles, users};
use entity::{PasswordHash, UserId, UserProfileId};
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DerivePartialModel, EntityTrait,
    QueryFilter, QuerySelect, QueryTrait, Statement, TransactionSession, TransactionTrait,
};
use serde_json::json;

/// A user as the service hands it out: every column of `users` but the password
/// hash, which never leaves the sign-in path (on PostgreSQL the runtime role cannot
/// even read it).
#[derive(Clone, Debug, PartialEq, Eq, DerivePartialModel)]
#[sea_orm(entity = "users::Entity")]
pub struct Account {
    pub id: UserId,
    pub email: String,
    pub is_active: bool,
    pub is_verified: bool,
    pub last_login_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A sign-up, already validated.
#[derive(Clone, Debug)]
pub struct NewUser {
    pub email: Email,
    pub password: Password,
    pub display_name: DisplayName,
    pub timezone: Timezone,
    pub language: Language,
}

impl NewUser {
    /// Parses the three required fields; timezone `UTC` and language `en` by default.
    ///
    /// # Errors
    /// `Validation` naming the first bad field.
    pub fn parse(email: &str, password: &str, display_name: &str) -> Result<Self> {
        Ok(Self {
            email: Email::parse(email)?,
            password: Password::new(password)?,
            display_name: DisplayName::parse(display_name)?,
            timezone: Timezone::utc(),
            language: Language::english(),
        })
    }
}

/// Opens a write transaction acting for `user`: on PostgreSQL the walls then show
/// that user's own identity rows (and no tenant's).
pub(crate) async fn begin_for_user<C: TransactionTrait>(
    db: &C,
    user: UserId,
) -> Result<C::Transaction> {
    let txn = crate::begin_write(db).await?;
    set_row_security_context(&txn, None, Some(user)).await?;
    Ok(txn)
}

/// Creates a user and their profile, and records `user_created`.
///
/// # Errors
/// `Conflict` if the email is taken (emails are normalised, so look-alike forms are
/// one address); `Crypto` if hashing fails; `Db`.
pub async fn register_user<C>(
    db: &C,
    deps: &Deps,
    input: NewUser,
    meta: &RequestMeta,
) -> Result<Account>
where
    C: ConnectionTrait + TransactionTrait,
{
    check_new_password(
        &deps.config.password_policy,
        deps.breached_passwords.as_deref(),
        &input.password,
        &input.email,
        Some(&input.display_name),
    )
    .await?;
    // Hash before opening the transaction: it takes tens of milliseconds. Whether the
    // email is taken is the unique index's answer (the runtime role cannot see other
    // users to ask first).
    let password_hash = password::hash(deps, &input.password).await?;
    let now = deps.now();
    let user_id = UserId(deps.new_id("users", input.email.as_str()));

    let txn = begin_for_user(db, user_id).await?;
    let account = Account {
        id: user_id,
        email: input.email.as_str().to_owned(),
        is_active: true,
        is_verified: false,
        last_login_at: None,
        created_at: now,
        updated_at: now,
    };
    // Without RETURNING: the row's hash is not the caller's to read back.
    users::Entity::insert(users::ActiveModel {
        id: Set(account.id),
        email: Set(account.email.clone()),
        password_hash: Set(password_hash),
        // Active, unverified, never signed in: the column defaults, which the runtime
        // role on PostgreSQL cannot override.
        is_active: NotSet,
        is_verified: NotSet,
        last_login_at: NotSet,
        failed_login_count: NotSet,
        locked_until: NotSet,
        created_at: Set(now),
        updated_at: Set(now),
    })
    .exec_without_returning(&txn)
    .await
    .map_err(conflict_on_unique("user", "email is already registered"))?;

    user_profiles::Entity::insert(user_profiles::ActiveModel {
        id: Set(UserProfileId(
            deps.new_id("user_profiles", input.email.as_str()),
        )),
        user_id: Set(user_id),
        display_name: Set(input.display_name.as_str().to_owned()),
        phone: Set(None),
        avatar_url: Set(None),
        timezone: Set(input.timezone.as_str().to_owned()),
        language: Set(input.language.as_str().to_owned()),
        preferences: Set(json!({})),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .exec_without_returning(&txn)
    .await?;

    record(
        &txn,
        deps,
        AuditEntry::new(AuditEvent::UserCreated, AuditOutcome::Success, meta)
            .actor(user_id)
            .resource("user", user_id),
    )
    .await?;
    txn.commit().await?;
    Ok(account)
}

/// The user `user_id`, who must exist and be active and be visible to `db`'s
/// context (the acting user, or a member of the current tenant).
///
/// # Errors
/// `NotFound`; `AccountDisabled`; `Db`.
pub(crate) async fn find_active_user<C: ConnectionTrait>(
    db: &C,
    user_id: UserId,
) -> Result<Account> {
    let user = users::Entity::find_by_id(user_id)
        .into_partial_model::<Account>()
        .one(db)
        .await?
        .ok_or_else(|| ServiceError::not_found("user", user_id))?;
    if !user.is_active {
        return Err(ServiceError::AccountDisabled);
    }
    Ok(user)
}

/// Checks that `user_id` exists and is active, whoever it is: adding a member
/// names a user the tenant cannot see yet. PostgreSQL answers through
/// `app_user_is_active`, which tells this and nothing more.
///
/// # Errors
/// `NotFound`; `AccountDisabled`; `Db`.
pub(crate) async fn ensure_active_user<C: ConnectionTrait>(db: &C, user_id: UserId) -> Result<()> {
    if db.get_database_backend() != DbBackend::Postgres {
        return find_active_user(db, user_id).await.map(|_| ());
    }
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT app_user_is_active($1)",
            [user_id.0.into()],
        ))
        .await?;
    match row
        .map(|r| r.try_get_by_index::<Option<bool>>(0))
        .transpose()?
        .flatten()
    {
        None => Err(ServiceError::not_found("user", user_id)),
        Some(false) => Err(ServiceError::AccountDisabled),
        Some(true) => Ok(()),
    }
}

/// Looks a user up by (normalised) email, among the users `db`'s context may see.
/// Reads in a transaction of its own (a savepoint inside yours), like every statement
/// of the service.
///
/// # Errors
/// `Db` only.
pub async fn find_user_by_email<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    email: &Email,
) -> Result<Option<Account>> {
    let txn = db.begin().await?;
    let found = users::Entity::find()
        .filter(users::Column::Email.eq(email.as_str()))
        .into_partial_model::<Account>()
        .one(&txn)
        .await?;
    txn.commit().await?;
    Ok(found)
}

/// The id and password hash behind an email: the one read of a password hash. On
/// PostgreSQL through `app_sign_in_credentials` (the runtime role cannot select the
/// column).
async fn sign_in_credentials<C: InTransaction>(
    db: &C,
    email: &Email,
) -> Result<Option<(UserId, PasswordHash)>> {
    let elsewhere = users::Entity::find()
        .select_only()
        .column(users::Column::Id)
        .column(users::Column::PasswordHash)
        .filter(users::Column::Email.eq(email.as_str()))
        .into_query();
    find_before_acting(
        db,
        ("app_sign_in_credentials", &["user_id", "password_hash"]),
        email.as_str(),
        elsewhere,
    )
    .await
}

/// A password that matched: whose, the throttle slot it claimed (given back only
/// when the whole sign-in succeeds) and, if its hash is outdated, the new hash.
pub(crate) struct PasswordChecked {
    pub(crate) user_id: UserId,
    pub(crate) claim: Claim,
    pub(crate) rehash: Option<PasswordHash>,
}

/// Checks an email and password, behind sign-in throttling (see
/// [`ServiceConfig::sign_in_per_account_address`](crate::ServiceConfig)): every attempt
/// claims a slot before the password is checked, and a blocked key refuses without
/// checking. Success stamps `last_login_at`, upgrades an outdated hash and records
/// `login`. Failure records `login_failed` (and `account_locked` when it starts a
/// block).
///
/// This is the first factor only: to sign a user in, call
/// [`login`](crate::identity::login), which asks for the second factor when the user
/// has one and opens the session.
///
/// Takes a connection, not a transaction: the throttle counters and the failure
/// records commit on transactions of their own, so no caller's rollback undoes them.
///
/// # Errors
/// `InvalidCredentials` for an unknown email, a wrong password or a throttled
/// attempt: indistinguishable, also by timing (each runs one argon2 verification);
/// `AccountDisabled` for the right password of a disabled account; `Validation` for
/// an empty or overlong password; `Crypto`; `Db`.
pub async fn authenticate(
    db: &DatabaseConnection,
    deps: &Deps,
    email: &Email,
    password: &Password,
    meta: &RequestMeta,
) -> Result<Account> {
    let checked = check_password(db, deps, email, password, meta).await?;
    let txn = begin_for_user(db, checked.user_id).await?;
    let account = match active_account(&txn, deps, checked.user_id, meta).await? {
        Ok(account) => account,
        Err(refused) => {
            txn.commit().await?;
            return Err(refused);
        }
    };
    throttle::settle_success(&txn, deps, &checked.claim, 1).await?;
    let account = stamp_sign_in(&txn, deps, account, checked.rehash, &["password"], meta).await?;
    txn.commit().await?;
    Ok(account)
}

/// The throttled password check of every sign-in: claims a slot, verifies (or runs a
/// decoy verification), and on failure records it on a transaction of its own.
pub(crate) async fn check_password(
    db: &DatabaseConnection,
    deps: &Deps,
    email: &Email,
    password: &Password,
    meta: &RequestMeta,
) -> Result<PasswordChecked> {
    // The claim and the credentials in one transaction, committed before the
    // password is checked (round trips count on a path every sign-in takes).
    let txn = begin_write(db).await?;
    let claim = throttle::claim_in(&txn, deps, email, meta).await?;
    let credentials = sign_in_credentials(&txn, email).await?;
    txn.commit().await?;
    let verification = match (&credentials, claim.refused) {
        (Some((_, hash)), false) => password::verify(deps, password, hash).await?,
        _ => {
            password::decoy_verify(deps, password).await?;
            Verification::Mismatch
        }
    };
    let user_id = credentials.as_ref().map(|(id, _)| *id);
    let reason = match (user_id, claim.refused, &verification) {
        (_, true, _) => "throttled",
        (None, false, _) => "unknown_email",
        (Some(_), false, Verification::Mismatch) => "wrong_password",
        (Some(user_id), false, Verification::Match { needs_rehash }) => {
            let rehash = if *needs_rehash {
                Some(password::hash(deps, password).await?)
            } else {
                None
            };
            return Ok(PasswordChecked {
                user_id,
                claim,
                rehash,
            });
        }
    };
    record_failure(db, deps, user_id, reason, &claim, meta).await?;
    Err(ServiceError::InvalidCredentials)
}

/// The account of a verified credential, if it is active. An inactive one records
/// `login_failed` in `db`'s transaction (commit it) and yields `AccountDisabled`.
pub(crate) async fn active_account<C: InTransaction>(
    db: &C,
    deps: &Deps,
    user_id: UserId,
    meta: &RequestMeta,
) -> Result<std::result::Result<Account, ServiceError>> {
    let user = users::Entity::find_by_id(user_id)
        .into_partial_model::<Account>()
        .one(db)
        .await?
        .ok_or_else(|| ServiceError::not_found("user", user_id))?;
    if user.is_active {
        return Ok(Ok(user));
    }
    record(
        db,
        deps,
        AuditEntry::new(AuditEvent::LoginFailed, AuditOutcome::Denied, meta)
            .actor(user.id)
            .resource("user", user.id)
            .details(json!({ "reason": "inactive" })),
    )
    .await?;
    Ok(Err(ServiceError::AccountDisabled))
}

/// Stores a new password hash for `user` (a changed password, or an upgraded one).
pub(crate) async fn set_password_hash<C: InTransaction>(
    db: &C,
    deps: &Deps,
    user: UserId,
    hash: PasswordHash,
) -> Result<()> {
    users::Entity::update_many()
        .col_expr(users::Column::PasswordHash, Expr::value(hash))
        .col_expr(users::Column::UpdatedAt, Expr::value(deps.now()))
        .filter(users::Column::Id.eq(user))
        .exec(db)
        .await?;
    Ok(())
}

/// A completed sign-in: stamps `last_login_at` (and stores an upgraded hash), records
/// `login` with the methods used.
pub(crate) async fn stamp_sign_in<C: InTransaction>(
    db: &C,
    deps: &Deps,
    user: Account,
    rehash: Option<PasswordHash>,
    methods: &[&str],
    meta: &RequestMeta,
) -> Result<Account> {
    let now = deps.now();
    let rehashed = rehash.is_some();
    let mut update = users::Entity::update_many()
        .col_expr(users::Column::LastLoginAt, Expr::value(now))
        .col_expr(users::Column::UpdatedAt, Expr::value(now))
        .filter(users::Column::Id.eq(user.id));
    if let Some(hash) = rehash {
        update = update.col_expr(users::Column::PasswordHash, Expr::value(hash));
    }
    update.exec(db).await?;
    record(
        db,
        deps,
        AuditEntry::new(AuditEvent::Login, AuditOutcome::Success, meta)
            .actor(user.id)
            .resource("user", user.id)
            .details(json!({ "method": methods.join(","), "rehashed": rehashed })),
    )
    .await?;
    Ok(Account {
        last_login_at: Some(now),
        updated_at: now,
        ..user
    })
}

/// Records a failed attempt on its own transaction: `login_failed`, and
/// `account_locked` if this failure started a block.
pub(crate) async fn record_failure(
    db: &DatabaseConnection,
    deps: &Deps,
    user_id: Option<UserId>,
    reason: &'static str,
    claim: &Claim,
    meta: &RequestMeta,
) -> Result<()> {
    let txn = crate::begin_write(db).await?;
    // Whatever a pooled connection carries, this row is written outside any tenant,
    // for the user it names (if any).
    set_row_security_context(&txn, None, user_id).await?;
    fn with_user(entry: AuditEntry<'_>, user_id: Option<UserId>) -> AuditEntry<'_> {
        match user_id {
            Some(id) => entry.actor(id).resource("user", id),
            None => entry,
        }
    }
    let outcome = if claim.refused {
        AuditOutcome::Denied
    } else {
        AuditOutcome::Failure
    };
    record(
        &txn,
        deps,
        with_user(
            AuditEntry::new(AuditEvent::LoginFailed, outcome, meta),
            user_id,
        )
        .risk(if claim.refused { 40 } else { 20 })
        .details(json!({ "reason": reason, "consecutive_failures": claim.failures })),
    )
    .await?;
    if let Some(until) = claim.blocked_until {
        record(
            &txn,
            deps,
            with_user(
                AuditEntry::new(AuditEvent::AccountLocked, AuditOutcome::Denied, meta),
                user_id,
            )
            .risk(60)
            .details(json!({
                "blocked_until": until,
                "failures": claim.failures,
                "scope": "account_address",
            })),
        )
        .await?;
    }
    txn.commit().await?;
    Ok(())
}
