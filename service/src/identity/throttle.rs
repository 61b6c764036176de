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
use sea_orm::sea_query::{CaseStatement, Expr, ExprTrait, OnConflict};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait,
    QueryFilter, QuerySelect,
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
    let txn = begin_write(db).await?;
    let claim = claim_in(&txn, deps, email, meta).await?;
    txn.commit().await?;
    Ok(claim)
}

/// [`claim`] in `txn`, a write transaction the caller opened for the claim (and at
/// most other reads) and commits before checking the secret. Three statements
/// whatever the number of keys: create the missing rows, read them locked, count the
/// attempt.
pub(crate) async fn claim_in<C: ConnectionTrait>(
    txn: &C,
    deps: &Deps,
    email: &Email,
    meta: &RequestMeta,
) -> Result<Claim> {
    let now = deps.now();
    let keys = keys(email, meta);
    let rows = locked_rows(txn, &keys, now).await?;
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
    let account_row = rows
        .iter()
        .find(|row| row.scope == ThrottleScope::AccountAddress);
    let mut claim = Claim {
        keys,
        refused,
        blocked_until: None,
        failures: account_row.map_or(0, current),
    };
    if refused {
        return Ok(claim);
    }
    // Each row's new count and block, set by one statement: CASE on the row's key.
    let (mut failures, mut blocked) = (None, None);
    for row in &rows {
        let count = current(row).saturating_add(1);
        let blocked_until = policy(deps, row.scope)
            .delay_after(count)
            .map(|delay| now + delay);
        let this = is_row(row.scope, &row.key_hash);
        failures = Some(arm(failures, this.clone(), Expr::value(count)));
        blocked = Some(arm(blocked, this, Expr::value(blocked_until)));
        if row.scope == ThrottleScope::AccountAddress {
            claim.failures = count;
            claim.blocked_until = blocked_until;
        }
    }
    sign_in_throttles::Entity::update_many()
        .col_expr(
            sign_in_throttles::Column::Failures,
            otherwise(failures, sign_in_throttles::Column::Failures),
        )
        .col_expr(
            sign_in_throttles::Column::BlockedUntil,
            otherwise(blocked, sign_in_throttles::Column::BlockedUntil),
        )
        .col_expr(sign_in_throttles::Column::LastFailureAt, Expr::value(now))
        .col_expr(sign_in_throttles::Column::UpdatedAt, Expr::value(now))
        .filter(any_row(&claim.keys))
        .exec(txn)
        .await?;
    Ok(claim)
}

/// `case` with one more `WHEN condition THEN value`.
fn arm(case: Option<CaseStatement>, condition: Condition, value: impl Into<Expr>) -> CaseStatement {
    match case {
        None => Expr::case(condition, value),
        Some(case) => case.case(condition, value),
    }
}

/// `case`, or when no arm matches (or there is none) the column's current value.
fn otherwise(case: Option<CaseStatement>, column: sign_in_throttles::Column) -> Expr {
    match case {
        Some(case) => case.finally(Expr::col(column)).into(),
        None => Expr::col(column),
    }
}

/// The condition naming one key's row.
fn is_row(scope: ThrottleScope, hash: &str) -> Condition {
    Condition::all()
        .add(sign_in_throttles::Column::Scope.eq(scope))
        .add(sign_in_throttles::Column::KeyHash.eq(hash))
}

fn any_row(keys: &[Key]) -> Condition {
    keys.iter().fold(Condition::any(), |any, key| {
        any.add(is_row(key.scope, &key.hash))
    })
}

/// The keys' rows, created if missing, locked until the transaction ends (SQLite's
/// `BEGIN IMMEDIATE` already holds the whole database). The upsert locks existing
/// rows in the keys' order, the same in every attempt, so attempts sharing a key
/// queue instead of deadlocking.
async fn locked_rows<C: ConnectionTrait>(
    db: &C,
    keys: &[Key],
    now: DateTime<Utc>,
) -> Result<Vec<sign_in_throttles::Model>> {
    let inserted = sign_in_throttles::Entity::insert_many(keys.iter().map(|key| {
        sign_in_throttles::ActiveModel {
            scope: Set(key.scope),
            key_hash: Set(key.hash.clone()),
            failures: Set(0),
            last_failure_at: Set(None),
            blocked_until: Set(None),
            updated_at: Set(now),
        }
    }))
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
    let mut find = sign_in_throttles::Entity::find().filter(any_row(keys));
    if db.get_database_backend() != DbBackend::Sqlite {
        find = find.lock_exclusive();
    }
    let rows = find.all(db).await?;
    if rows.len() != keys.len() {
        return Err(DbErr::RecordNotFound("sign_in_throttles rows just upserted".into()).into());
    }
    Ok(rows)
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
    let failures = Expr::col(sign_in_throttles::Column::Failures);
    // Down by `attempts`, never below zero.
    let given_back = Expr::case(failures.clone().gt(attempts), failures.sub(attempts)).finally(0);
    let (mut new_failures, mut new_block) = (None, None);
    let mut rows = Condition::any();
    for key in &claim.keys {
        let row = is_row(key.scope, &key.hash);
        match key.scope {
            ThrottleScope::AccountAddress => {
                new_failures = Some(arm(new_failures, row.clone(), Expr::value(0)));
                new_block = Some(arm(
                    new_block,
                    row.clone(),
                    Expr::value(Option::<DateTime<Utc>>::None),
                ));
                rows = rows.add(row);
            }
            ThrottleScope::Address => {
                new_failures = Some(arm(new_failures, row.clone(), given_back.clone()));
                rows = rows.add(row.add(sign_in_throttles::Column::Failures.gt(0)));
            }
        }
    }
    sign_in_throttles::Entity::update_many()
        .col_expr(sign_in_throttles::Column::UpdatedAt, Expr::value(now))
        .col_expr(
            sign_in_throttles::Column::Failures,
            otherwise(new_failures, sign_in_throttles::Column::Failures),
        )
        .col_expr(
            sign_in_throttles::Column::BlockedUntil,
            otherwise(new_block, sign_in_throttles::Column::BlockedUntil),
        )
        .filter(rows)
        .exec(db)
        .await?;
    Ok(())
}
