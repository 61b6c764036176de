//! Sign-in throttling: exponential delays per account-and-address and per address.
//!
//! Every attempt first claims a slot, atomically, in a transaction of its own: under
//! a row lock it reads the keys' counters and, unless a key is blocked, counts the
//! attempt as a failure before the password is checked. Parallel guesses therefore
//! cannot all be verified: once a key's free failures are claimed, the rest are
//! refused without looking at the password. A success gives the slot back.
//!
//! Refused, unknown-email and wrong-password attempts look the same from outside:
//! `InvalidCredentials`, after one argon2 verification each.

use super::tokens::sha256_hex;
use crate::Result;
use crate::begin_write;
use crate::deps::{Deps, ThrottlePolicy};
use crate::input::Email;
use crate::request::RequestMeta;
use chrono::{DateTime, Utc};
use entity::identity::sign_in_throttles::{self, ThrottleScope};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, QueryFilter,
    QuerySelect,
};
use std::net::IpAddr;

/// One throttled key of an attempt.
#[derive(Clone, Debug)]
struct Key {
    scope: ThrottleScope,
    hash: String,
}

/// What claiming a slot decided.
#[derive(Clone, Debug)]
pub(crate) struct Claim {
    keys: Vec<Key>,
    /// A key was blocked: the attempt must fail whatever the password.
    pub(crate) refused: bool,
    /// This attempt's failure started a block on the account-and-address key.
    pub(crate) blocked_until: Option<DateTime<Utc>>,
    /// The account-and-address key's failures, this attempt included.
    pub(crate) failures: i32,
}

/// The client address as throttled: IPv6 clients usually hold a whole /64, so the
/// /64 is one address here; IPv4-mapped IPv6 counts as the IPv4 address.
fn address_key(meta: &RequestMeta) -> String {
    match meta.ip_address {
        None => "unknown".to_owned(),
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

fn hashed(scope: ThrottleScope, key: &str) -> Key {
    Key {
        scope,
        hash: sha256_hex(key),
    }
}

fn keys(email: &Email, meta: &RequestMeta) -> Vec<Key> {
    let address = address_key(meta);
    vec![
        // A newline cannot occur in a parsed email, so the pair is unambiguous.
        hashed(
            ThrottleScope::AccountAddress,
            &format!("{}\n{address}", email.as_str()),
        ),
        hashed(ThrottleScope::Address, &address),
    ]
}

fn policy(deps: &Deps, scope: ThrottleScope) -> ThrottlePolicy {
    match scope {
        ThrottleScope::AccountAddress => deps.config.sign_in_per_account_address,
        ThrottleScope::Address => deps.config.sign_in_per_address,
    }
}

/// Claims a slot for one attempt, committing before the password is checked, on a
/// transaction of its own (never the caller's: the count must survive a rollback).
pub(crate) async fn claim(
    db: &DatabaseConnection,
    deps: &Deps,
    email: &Email,
    meta: &RequestMeta,
) -> Result<Claim> {
    let now = deps.now();
    let keys = keys(email, meta);
    let txn = begin_write(db).await?;
    let mut rows = Vec::with_capacity(keys.len());
    for key in &keys {
        rows.push(locked_row(&txn, key, now).await?);
    }
    let forget_before = now - deps.config.sign_in_forget_after;
    let current = |row: &sign_in_throttles::Model| {
        if row.last_failure_at.is_some_and(|at| at < forget_before) {
            0
        } else {
            row.failures
        }
    };
    let refused = rows
        .iter()
        .any(|row| row.blocked_until.is_some_and(|until| until > now));
    let mut claim = Claim {
        keys: keys.clone(),
        refused,
        blocked_until: None,
        failures: rows.first().map_or(0, current),
    };
    if !refused {
        for row in &rows {
            let failures = current(row).saturating_add(1);
            let blocked_until = policy(deps, row.scope)
                .delay_after(failures)
                .map(|delay| now + delay);
            sign_in_throttles::Entity::update_many()
                .col_expr(sign_in_throttles::Column::Failures, Expr::value(failures))
                .col_expr(sign_in_throttles::Column::LastFailureAt, Expr::value(now))
                .col_expr(
                    sign_in_throttles::Column::BlockedUntil,
                    Expr::value(blocked_until),
                )
                .col_expr(sign_in_throttles::Column::UpdatedAt, Expr::value(now))
                .filter(sign_in_throttles::Column::Scope.eq(row.scope))
                .filter(sign_in_throttles::Column::KeyHash.eq(row.key_hash.as_str()))
                .exec(&txn)
                .await?;
            if row.scope == ThrottleScope::AccountAddress {
                claim.failures = failures;
                claim.blocked_until = blocked_until;
            }
        }
    }
    txn.commit().await?;
    Ok(claim)
}

/// The key's row, created if missing, locked until the transaction ends (SQLite's
/// `BEGIN IMMEDIATE` already holds the whole database).
async fn locked_row<C: ConnectionTrait>(
    db: &C,
    key: &Key,
    now: DateTime<Utc>,
) -> Result<sign_in_throttles::Model> {
    let inserted = sign_in_throttles::Entity::insert(sign_in_throttles::ActiveModel {
        scope: Set(key.scope),
        key_hash: Set(key.hash.clone()),
        failures: Set(0),
        last_failure_at: Set(None),
        blocked_until: Set(None),
        updated_at: Set(now),
    })
    // A no-op update rather than DO NOTHING, which MariaDB cannot say.
    .on_conflict(
        OnConflict::columns([
            sign_in_throttles::Column::Scope,
            sign_in_throttles::Column::KeyHash,
        ])
        .update_column(sign_in_throttles::Column::Scope)
        .to_owned(),
    )
    .exec_without_returning(db)
    .await;
    match inserted {
        Ok(_) | Err(DbErr::RecordNotInserted) => {}
        Err(e) => return Err(e.into()),
    }
    let mut find = sign_in_throttles::Entity::find_by_id((key.scope, key.hash.clone()));
    if db.get_database_backend() != DbBackend::Sqlite {
        find = find.lock_exclusive();
    }
    find.one(db)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("sign_in_throttles row just upserted".into()).into())
}

/// A verified success: the account-and-address key starts over, and the address
/// key gets back the failures the sign-in's `attempts` were counted as (two for a
/// sign-in in two steps).
pub(crate) async fn settle_success<C: ConnectionTrait>(
    db: &C,
    deps: &Deps,
    claim: &Claim,
    attempts: i32,
) -> Result<()> {
    let now = deps.now();
    let attempts = Ord::max(attempts, 1);
    for key in &claim.keys {
        let update = sign_in_throttles::Entity::update_many()
            .col_expr(sign_in_throttles::Column::UpdatedAt, Expr::value(now))
            .filter(sign_in_throttles::Column::Scope.eq(key.scope))
            .filter(sign_in_throttles::Column::KeyHash.eq(key.hash.as_str()));
        let update = match key.scope {
            ThrottleScope::AccountAddress => update
                .col_expr(sign_in_throttles::Column::Failures, Expr::value(0))
                .col_expr(
                    sign_in_throttles::Column::BlockedUntil,
                    Expr::value(Option::<DateTime<Utc>>::None),
                ),
            // Down by `attempts`, never below zero.
            ThrottleScope::Address => update
                .col_expr(
                    sign_in_throttles::Column::Failures,
                    Expr::case(
                        Expr::col(sign_in_throttles::Column::Failures).gt(attempts),
                        Expr::col(sign_in_throttles::Column::Failures).sub(attempts),
                    )
                    .finally(0)
                    .into(),
                )
                .filter(sign_in_throttles::Column::Failures.gt(0)),
        };
        update.exec(db).await?;
    }
    Ok(())
}
