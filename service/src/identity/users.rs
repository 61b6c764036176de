//! Registration and password sign-in.

use super::password::{self, Verification};
use crate::Result;
use crate::audit::{AuditEntry, AuditEvent, record};
use crate::deps::Deps;
use crate::error::{ServiceError, conflict_on_unique};
use crate::input::{DisplayName, Email, Language, Password, Timezone};
use crate::request::RequestMeta;
use entity::audit::audit_logs::AuditOutcome;
use entity::identity::{user_profiles, users};
use entity::{UserId, UserProfileId};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, TransactionSession,
    TransactionTrait,
};
use serde_json::json;

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

/// Creates a user and their profile, and records `user_created`.
///
/// # Errors
/// `Conflict` if the email is taken (checked case-insensitively); `Crypto` if hashing
/// fails; `Db`.
pub async fn register_user<C>(
    db: &C,
    deps: &Deps,
    input: NewUser,
    meta: &RequestMeta,
) -> Result<users::Model>
where
    C: ConnectionTrait + TransactionTrait,
{
    if find_user_by_email(db, &input.email).await?.is_some() {
        return Err(ServiceError::Conflict {
            entity: "user",
            reason: "email is already registered",
        });
    }
    // Hash before opening the transaction: it takes tens of milliseconds.
    let password_hash = password::hash(deps, &input.password).await?;
    let now = deps.now();
    let user_id = UserId(deps.new_id("users", input.email.as_str()));

    let txn = crate::begin_write(db).await?;
    let user = users::ActiveModel {
        id: Set(user_id),
        email: Set(input.email.as_str().to_owned()),
        password_hash: Set(password_hash),
        is_active: Set(true),
        is_verified: Set(false),
        last_login_at: Set(None),
        failed_login_count: Set(0),
        locked_until: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await
    .map_err(conflict_on_unique("user", "email is already registered"))?;

    user_profiles::ActiveModel {
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
    }
    .insert(&txn)
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
    Ok(user)
}

/// The user `user_id`, who must exist and be active; for operations acting on behalf
/// of, or upon, a user.
///
/// # Errors
/// `NotFound`; `AccountDisabled`; `Db`.
pub(crate) async fn find_active_user<C: ConnectionTrait>(
    db: &C,
    user_id: UserId,
) -> Result<users::Model> {
    let user = users::Entity::find_by_id(user_id)
        .one(db)
        .await?
        .ok_or_else(|| ServiceError::not_found("user", user_id))?;
    if !user.is_active {
        return Err(ServiceError::AccountDisabled);
    }
    Ok(user)
}

/// Looks a user up by email, case-insensitively.
///
/// # Errors
/// `Db` only.
pub async fn find_user_by_email<C: ConnectionTrait>(
    db: &C,
    email: &Email,
) -> Result<Option<users::Model>> {
    Ok(users::Entity::find()
        .filter(users::Column::Email.eq(email.as_str()))
        .one(db)
        .await?)
}

/// Checks an email and password. Success resets the failure counter, stamps
/// `last_login_at`, upgrades an outdated hash and records `login`. Failure records
/// `login_failed`; the `max_failed_logins`-th failure in a row locks the account for
/// `lockout` and records `account_locked`. Those records commit even though the call
/// returns an error.
///
/// # Errors
/// `InvalidCredentials` for an unknown email or a wrong password (indistinguishable,
/// also by timing); `AccountLocked`; `AccountDisabled`; `Validation` for an empty or
/// overlong password; `Crypto`; `Db`.
pub async fn authenticate<C>(
    db: &C,
    deps: &Deps,
    email: &Email,
    password: &Password,
    meta: &RequestMeta,
) -> Result<users::Model>
where
    C: ConnectionTrait + TransactionTrait,
{
    let Some(user) = find_user_by_email(db, email).await? else {
        password::decoy_verify(deps, password).await?;
        record(
            db,
            deps,
            AuditEntry::new(AuditEvent::LoginFailed, AuditOutcome::Failure, meta)
                .risk(20)
                .details(json!({ "reason": "unknown_email" })),
        )
        .await?;
        return Err(ServiceError::InvalidCredentials);
    };

    let now = deps.now();
    if let Some(until) = user.locked_until.filter(|until| *until > now) {
        record(
            db,
            deps,
            AuditEntry::new(AuditEvent::LoginFailed, AuditOutcome::Denied, meta)
                .actor(user.id)
                .resource("user", user.id)
                .risk(40)
                .details(json!({ "reason": "locked" })),
        )
        .await?;
        return Err(ServiceError::AccountLocked { until });
    }

    let verification = password::verify(deps, password, &user.password_hash).await?;
    // Any upgraded hash is computed before the transaction opens, like every hash.
    let upgraded_hash = match verification {
        Verification::Match { needs_rehash: true } if user.is_active => {
            Some(password::hash(deps, password).await?)
        }
        _ => None,
    };
    let txn = crate::begin_write(db).await?;
    let result = match verification {
        Verification::Mismatch => {
            let locked_until = register_failure(&txn, deps, &user, meta).await?;
            match locked_until {
                Some(until) => Err(ServiceError::AccountLocked { until }),
                None => Err(ServiceError::InvalidCredentials),
            }
        }
        Verification::Match { .. } if !user.is_active => {
            record(
                &txn,
                deps,
                AuditEntry::new(AuditEvent::LoginFailed, AuditOutcome::Denied, meta)
                    .actor(user.id)
                    .resource("user", user.id)
                    .details(json!({ "reason": "inactive" })),
            )
            .await?;
            Err(ServiceError::AccountDisabled)
        }
        Verification::Match { needs_rehash } => {
            let mut active: users::ActiveModel = user.clone().into();
            if let Some(hash) = upgraded_hash {
                active.password_hash = Set(hash);
            }
            active.failed_login_count = Set(0);
            active.locked_until = Set(None);
            active.last_login_at = Set(Some(now));
            active.updated_at = Set(now);
            let user = active.update(&txn).await?;
            record(
                &txn,
                deps,
                AuditEntry::new(AuditEvent::Login, AuditOutcome::Success, meta)
                    .actor(user.id)
                    .resource("user", user.id)
                    .details(json!({ "method": "password", "rehashed": needs_rehash })),
            )
            .await?;
            Ok(user)
        }
    };
    txn.commit().await?;
    result
}

/// Counts a failed attempt atomically and locks the account when the limit is hit.
/// Returns the lock's end if this attempt locked it.
async fn register_failure<C: ConnectionTrait>(
    db: &C,
    deps: &Deps,
    user: &users::Model,
    meta: &RequestMeta,
) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
    let now = deps.now();
    // An increment in SQL, not read-modify-write, so concurrent failures all count.
    users::Entity::update_many()
        .col_expr(
            users::Column::FailedLoginCount,
            Expr::col(users::Column::FailedLoginCount).add(1),
        )
        .col_expr(users::Column::UpdatedAt, Expr::value(now))
        .filter(users::Column::Id.eq(user.id))
        .exec(db)
        .await?;
    let failures = users::Entity::find_by_id(user.id)
        .one(db)
        .await?
        .map_or(0, |u| u.failed_login_count);

    record(
        db,
        deps,
        AuditEntry::new(AuditEvent::LoginFailed, AuditOutcome::Failure, meta)
            .actor(user.id)
            .resource("user", user.id)
            .risk(20)
            .details(json!({ "reason": "wrong_password", "consecutive_failures": failures })),
    )
    .await?;

    if failures < deps.config.max_failed_logins {
        return Ok(None);
    }
    let until = now + deps.config.lockout;
    // The counter restarts, so after the lock the user gets the full number of tries.
    users::Entity::update_many()
        .col_expr(users::Column::LockedUntil, Expr::value(until))
        .col_expr(users::Column::FailedLoginCount, Expr::value(0))
        .filter(users::Column::Id.eq(user.id))
        .exec(db)
        .await?;
    record(
        db,
        deps,
        AuditEntry::new(AuditEvent::AccountLocked, AuditOutcome::Denied, meta)
            .actor(user.id)
            .resource("user", user.id)
            .risk(60)
            .details(json!({ "locked_until": until, "failures": failures })),
    )
    .await?;
    Ok(Some(until))
}
