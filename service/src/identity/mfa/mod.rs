//! A user's second factor: TOTP (RFC 6238) and single-use backup codes. Once a factor
//! is confirmed, sign-in takes two steps (see `sign_in`): the password, then a code.
//!
//! The application calls, in order: [`enrol_totp`] (shows the `otpauth://` URI once,
//! as a QR code), [`confirm_totp`] with the first code the app shows, then
//! [`generate_backup_codes`] (shown once). Later, [`verify_totp`] or
//! [`use_backup_code`] for each second-factor check, and [`disable_totp`] with a
//! current code or a backup code.
//!
//! Replay: a factor stores the newest time step a code was accepted for
//! (`last_used_step`), and a code is accepted only for a later step, by a conditional
//! `UPDATE ... WHERE last_used_step IS NULL OR last_used_step < :step` whose affected
//! row count decides; of two concurrent submissions of one code exactly one passes on
//! every backend (PostgreSQL and MariaDB re-check the condition on the locked row,
//! SQLite serialises writers). Backup codes are claimed the same way (`used_at`).
//!
//! Records: every accepted code is audited with its operation. A refused code on
//! [`verify_totp`], [`use_backup_code`] and [`disable_totp`] records
//! `mfa_verification_failed` on a transaction of its own, committed before the error
//! returns (those take a connection, not a transaction, like `authenticate`); no code
//! or secret is ever in an audit row.

mod backup_codes;
mod totp;

pub use backup_codes::{BACKUP_CODE_COUNT, BackupCodes, generate_backup_codes, use_backup_code};
use backup_codes::{claim_backup_code, parse_backup_code};
pub use totp::{TotpParams, totp};
use totp::{hotp, secret_len};

use super::assurance::{SessionAuth, begin_sensitive, factor_added, revoke_other_sessions};
use super::users::{begin_for_user, find_active_user};
use crate::Result;
use crate::audit::{AuditEntry, AuditEvent, record};
use crate::crypto::FieldSlot;
use crate::deps::Deps;
use crate::error::ServiceError;
use crate::input::plain_text;
use crate::request::RequestMeta;
use chrono::{DateTime, Utc};
use data_encoding::BASE32_NOPAD;
use entity::audit::audit_logs::AuditOutcome;
use entity::identity::mfa_factors::{self, MfaKind, TotpAlgorithm};
use entity::identity::{mfa_backup_codes, passkeys};
use entity::{MfaFactorId, SealedBytes, UserId};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::sea_query::{Expr, Query, SimpleExpr};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DerivePartialModel, EntityTrait,
    QueryFilter, TransactionSession, TransactionTrait,
};
use serde_json::json;
use std::fmt;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// What the `otpauth://` URI escapes: everything but RFC 3986's unreserved characters.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// Steps accepted either side of the current one, for clock drift and typing time.
const WINDOW: i64 = 1;

/// A factor as the application sees it: every column but the sealed secret.
#[derive(Clone, Debug, PartialEq, Eq, DerivePartialModel)]
#[sea_orm(entity = "mfa_factors::Entity")]
pub struct MfaFactor {
    pub id: MfaFactorId,
    pub user_id: UserId,
    pub kind: MfaKind,
    pub name: String,
    pub algorithm: TotpAlgorithm,
    pub digits: i16,
    pub period: i16,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub last_used_step: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A new TOTP factor's secret, in the clear once: show the URI as a QR code (and the
/// base32 secret for typing), then drop it. `Debug` shows the factor id only.
pub struct TotpEnrolment {
    pub factor_id: MfaFactorId,
    pub params: TotpParams,
    secret: Zeroizing<Vec<u8>>,
    secret_base32: Zeroizing<String>,
    otpauth_uri: Zeroizing<String>,
}

impl TotpEnrolment {
    /// The code an authenticator app shows at `unix_seconds`: for set-up screens that
    /// check the app, for the seeder and for tests.
    pub fn code_at(&self, unix_seconds: u64) -> String {
        totp(&self.secret, self.params, unix_seconds)
    }

    /// `otpauth://totp/<issuer>:<email>?secret=...`, for a QR code.
    pub fn otpauth_uri(&self) -> &str {
        &self.otpauth_uri
    }

    /// The secret in base32, for apps that cannot scan.
    pub fn secret_base32(&self) -> &str {
        &self.secret_base32
    }
}

impl fmt::Debug for TotpEnrolment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TotpEnrolment")
            .field("factor_id", &self.factor_id)
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// What proves the user holds the factor, for [`disable_totp`]. `Debug` is redacted.
#[derive(Clone, Copy)]
pub enum MfaProof<'a> {
    Totp(&'a str),
    BackupCode(&'a str),
}

impl fmt::Debug for MfaProof<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MfaProof::Totp(_) => f.write_str("Totp([redacted])"),
            MfaProof::BackupCode(_) => f.write_str("BackupCode([redacted])"),
        }
    }
}

/// A second-factor proof whose shape was checked, before any query.
pub(crate) enum ParsedProof {
    Totp(Zeroizing<String>),
    /// The hash the code is stored under.
    BackupCode(String),
}

impl ParsedProof {
    /// # Errors
    /// `Validation` for a code not shaped like a TOTP code or a backup code.
    pub(crate) fn parse(proof: MfaProof<'_>) -> Result<Self> {
        Ok(match proof {
            MfaProof::Totp(code) => Self::Totp(parse_totp_code(code)?),
            MfaProof::BackupCode(code) => Self::BackupCode(parse_backup_code(code)?),
        })
    }

    /// How the user proved it, as sessions and audit rows name it.
    pub(crate) fn method(&self) -> &'static str {
        match self {
            Self::Totp(_) => "totp",
            Self::BackupCode(_) => "backup_code",
        }
    }
}

/// Checks a proof against the user's factor and spends it inside `db`'s transaction:
/// the TOTP step is claimed, or the backup code marked used. Nothing is recorded here.
pub(crate) async fn spend_proof<C: ConnectionTrait>(
    db: &C,
    deps: &Deps,
    user: UserId,
    factor: &mfa_factors::Model,
    proof: &ParsedProof,
) -> Result<std::result::Result<(), Refusal>> {
    Ok(match proof {
        ParsedProof::Totp(code) => match match_step(deps, factor, code)? {
            Ok(step) if claim_step(db, deps, factor.id, step, false).await? => Ok(()),
            // Another submission claimed this step (or a later one) first.
            Ok(_) => Err(Refusal::Replayed),
            Err(refusal) => Err(refusal),
        },
        ParsedProof::BackupCode(hash) => claim_backup_code(db, deps, user, hash).await?.map(|_| ()),
    })
}

/// Whether the user has a second factor: a confirmed TOTP factor or a passkey that is
/// not disabled. What makes sign-in take two steps and sensitive operations need aal2.
pub(crate) async fn has_second_factor<C: ConnectionTrait>(db: &C, user: UserId) -> Result<bool> {
    let row = db
        .query_one(Query::select().expr(second_factor_exists(user)))
        .await?;
    Ok(row
        .map(|r| r.try_get_by_index::<bool>(0))
        .transpose()?
        .unwrap_or(false))
}

/// SQL for "`user` has a second factor", to ask inside a larger statement.
pub(crate) fn second_factor_exists(user: UserId) -> SimpleExpr {
    use sea_orm::sea_query::ExprTrait;
    let confirmed_totp = Query::select()
        .expr(Expr::val(1))
        .from(mfa_factors::Entity)
        .and_where(Expr::col((mfa_factors::Entity, mfa_factors::Column::UserId)).eq(user))
        .and_where(Expr::col((mfa_factors::Entity, mfa_factors::Column::ConfirmedAt)).is_not_null())
        .to_owned();
    let enabled_passkey = Query::select()
        .expr(Expr::val(1))
        .from(passkeys::Entity)
        .and_where(Expr::col((passkeys::Entity, passkeys::Column::UserId)).eq(user))
        .and_where(Expr::col((passkeys::Entity, passkeys::Column::DisabledAt)).is_null())
        .to_owned();
    Expr::exists(confirmed_totp).or(Expr::exists(enabled_passkey))
}

/// The user's confirmed TOTP factor, if any.
pub(crate) async fn confirmed_factor<C: ConnectionTrait>(
    db: &C,
    user: UserId,
) -> Result<Option<mfa_factors::Model>> {
    Ok(find_factor(db, user)
        .await?
        .filter(|f| f.confirmed_at.is_some()))
}

/// A TOTP code as typed: digits, spaces allowed (apps show `123 456`).
fn parse_totp_code(code: &str) -> Result<Zeroizing<String>> {
    let digits: Zeroizing<String> = Zeroizing::new(code.chars().filter(|c| *c != ' ').collect());
    if !(6..=8).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ServiceError::validation("code", "expected 6 to 8 digits"));
    }
    Ok(digits)
}

fn parse_name(name: &str) -> Result<String> {
    plain_text("name", name, 100)
}

fn slot_row(id: MfaFactorId) -> String {
    id.to_string()
}

fn open_secret(deps: &Deps, factor: &mfa_factors::Model) -> Result<Zeroizing<Vec<u8>>> {
    let row = slot_row(factor.id);
    deps.keys
        .open(
            FieldSlot {
                table: "mfa_factors",
                column: "secret",
                row: &row,
            },
            factor.secret.expose(),
        )
        .map_err(|_| ServiceError::Crypto("the TOTP secret does not open with the key ring"))
}

async fn find_factor<C: ConnectionTrait>(
    db: &C,
    user: UserId,
) -> Result<Option<mfa_factors::Model>> {
    Ok(mfa_factors::Entity::find()
        .filter(mfa_factors::Column::UserId.eq(user))
        .filter(mfa_factors::Column::Kind.eq(MfaKind::Totp))
        .one(db)
        .await?)
}

/// Why a code was refused, for the audit row only (the caller hears `InvalidMfaCode`).
#[derive(Clone, Copy)]
pub(crate) enum Refusal {
    WrongCode,
    Replayed,
}

impl Refusal {
    fn as_str(self) -> &'static str {
        match self {
            Refusal::WrongCode => "wrong_code",
            Refusal::Replayed => "already_used",
        }
    }
}

/// Which step of the window `code` belongs to, if any, and whether it is newer than
/// the factor's last used step. Compares in constant time.
fn match_step(
    deps: &Deps,
    factor: &mfa_factors::Model,
    code: &str,
) -> Result<std::result::Result<i64, Refusal>> {
    let secret = open_secret(deps, factor)?;
    let period = i64::from(factor.period.max(1));
    let current = deps.now().timestamp().div_euclid(period);
    let digits = u8::try_from(factor.digits).unwrap_or(6);
    let mut matched = None;
    for step in current - WINDOW..=current + WINDOW {
        let Ok(counter) = u64::try_from(step) else {
            continue;
        };
        let expected = Zeroizing::new(hotp(&secret, factor.algorithm, digits, counter));
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) {
            matched = Some(step);
        }
    }
    Ok(match matched {
        None => Err(Refusal::WrongCode),
        Some(step) if factor.last_used_step.is_some_and(|last| step <= last) => {
            Err(Refusal::Replayed)
        }
        Some(step) => Ok(step),
    })
}

/// Claims `step` for the factor: only one transaction can move `last_used_step` past it.
async fn claim_step<C: ConnectionTrait>(
    db: &C,
    deps: &Deps,
    factor: MfaFactorId,
    step: i64,
    confirm: bool,
) -> Result<bool> {
    let now = deps.now();
    let mut update = mfa_factors::Entity::update_many()
        .col_expr(mfa_factors::Column::LastUsedStep, Expr::value(step))
        .col_expr(mfa_factors::Column::UpdatedAt, Expr::value(now))
        .filter(mfa_factors::Column::Id.eq(factor))
        .filter(
            Condition::any()
                .add(mfa_factors::Column::LastUsedStep.is_null())
                .add(mfa_factors::Column::LastUsedStep.lt(step)),
        );
    if confirm {
        update = update
            .col_expr(mfa_factors::Column::ConfirmedAt, Expr::value(now))
            .filter(mfa_factors::Column::ConfirmedAt.is_null());
    }
    Ok(update.exec(db).await?.rows_affected == 1)
}

/// Records a refused code on a transaction of its own and returns the caller's error.
pub(crate) async fn refuse(
    db: &DatabaseConnection,
    deps: &Deps,
    user: UserId,
    method: &'static str,
    refusal: Refusal,
    meta: &RequestMeta,
) -> Result<ServiceError> {
    let txn = begin_for_user(db, user).await?;
    record(
        &txn,
        deps,
        AuditEntry::new(
            AuditEvent::MfaVerificationFailed,
            AuditOutcome::Failure,
            meta,
        )
        .actor(user)
        .resource("user", user)
        .risk(30)
        .details(json!({ "method": method, "reason": refusal.as_str() })),
    )
    .await?;
    txn.commit().await?;
    Ok(ServiceError::InvalidMfaCode)
}

/// Starts a TOTP enrolment: a new secret from `deps.random`, sealed for its row with
/// `deps.keys`, under the parameters of `deps.config.totp`. An unconfirmed earlier
/// enrolment is replaced (its QR code was lost). Records `mfa_enrolled`.
///
/// # Errors
/// `Validation` for a bad name (before any query); `Conflict` if the user has a
/// confirmed TOTP factor (disable it first); `NotFound`, `AccountDisabled`; `Crypto`;
/// `Db`.
pub async fn enrol_totp<C>(
    db: &C,
    deps: &Deps,
    session: &SessionAuth,
    name: &str,
    meta: &RequestMeta,
) -> Result<TotpEnrolment>
where
    C: ConnectionTrait + TransactionTrait,
{
    let name = parse_name(name)?;
    let params = deps.config.totp;
    let user = session.user_id();
    let txn = begin_sensitive(db, deps, session, "enrol_totp", meta).await?;
    let account = find_active_user(&txn, user).await?;
    let replaced = match find_factor(&txn, user).await? {
        Some(f) if f.confirmed_at.is_some() => {
            return Err(ServiceError::Conflict {
                entity: "TOTP factor",
                reason: "the user has a confirmed TOTP factor; disable it first",
            });
        }
        Some(f) => {
            mfa_factors::Entity::delete_by_id(f.id).exec(&txn).await?;
            true
        }
        None => false,
    };
    let now = deps.now();
    let id = MfaFactorId(deps.new_id("mfa_factors", &user.to_string()));
    let mut secret = Zeroizing::new(vec![0u8; secret_len(params.algorithm)]);
    deps.random.fill(&mut secret);
    let row = slot_row(id);
    let sealed = deps
        .keys
        .seal(
            FieldSlot {
                table: "mfa_factors",
                column: "secret",
                row: &row,
            },
            &secret,
        )
        .map_err(|_| ServiceError::Crypto("sealing the TOTP secret failed"))?;
    mfa_factors::Entity::insert(mfa_factors::ActiveModel {
        id: Set(id),
        user_id: Set(user),
        kind: Set(MfaKind::Totp),
        name: Set(name),
        secret: Set(SealedBytes::new(sealed)),
        algorithm: Set(params.algorithm),
        digits: Set(i16::from(params.digits)),
        period: Set(i16::from(params.period)),
        // Left out of the INSERT: new factors start unconfirmed and unused, and the
        // runtime role may not insert these columns.
        confirmed_at: NotSet,
        last_used_step: NotSet,
        created_at: Set(now),
        updated_at: Set(now),
    })
    .exec_without_returning(&txn)
    .await?;
    record(
        &txn,
        deps,
        AuditEntry::new(AuditEvent::MfaEnrolled, AuditOutcome::Success, meta)
            .actor(user)
            .resource("mfa_factor", id)
            .details(json!({
                "kind": "totp",
                "algorithm": algorithm_name(params.algorithm),
                "digits": params.digits,
                "period": params.period,
                "replaced_unconfirmed": replaced,
            })),
    )
    .await?;
    txn.commit().await?;

    let secret_base32 = Zeroizing::new(BASE32_NOPAD.encode(&secret));
    let issuer = utf8_percent_encode(&deps.config.totp_issuer, URI_COMPONENT).to_string();
    let label = utf8_percent_encode(&account.email, URI_COMPONENT);
    let otpauth_uri = Zeroizing::new(format!(
        "otpauth://totp/{issuer}:{label}?secret={}&issuer={issuer}&algorithm={}&digits={}&period={}",
        secret_base32.as_str(),
        algorithm_name(params.algorithm),
        params.digits,
        params.period,
    ));
    Ok(TotpEnrolment {
        factor_id: id,
        params,
        secret,
        secret_base32,
        otpauth_uri,
    })
}

fn algorithm_name(algorithm: TotpAlgorithm) -> &'static str {
    match algorithm {
        TotpAlgorithm::Sha1 => "SHA1",
        TotpAlgorithm::Sha256 => "SHA256",
        TotpAlgorithm::Sha512 => "SHA512",
    }
}

/// Confirms an enrolment with the first code the app shows; from then on the factor
/// counts. Records `mfa_confirmed`. A wrong code writes nothing: the factor protects
/// nothing yet, and whoever can call this already acts as the user.
///
/// # Errors
/// `Validation` for a code that is not 6 to 8 digits (before any query); `NotFound`
/// without an enrolment; `Conflict` if already confirmed; `InvalidMfaCode`;
/// `AccountDisabled`; `Crypto`; `Db`.
pub async fn confirm_totp<C>(
    db: &C,
    deps: &Deps,
    session: &SessionAuth,
    code: &str,
    meta: &RequestMeta,
) -> Result<MfaFactor>
where
    C: ConnectionTrait + TransactionTrait,
{
    let code = parse_totp_code(code)?;
    let user = session.user_id();
    let txn = begin_sensitive(db, deps, session, "confirm_totp", meta).await?;
    find_active_user(&txn, user).await?;
    let factor = find_factor(&txn, user)
        .await?
        .ok_or_else(|| ServiceError::not_found("TOTP factor of user", user))?;
    if factor.confirmed_at.is_some() {
        return Err(ServiceError::Conflict {
            entity: "TOTP factor",
            reason: "already confirmed",
        });
    }
    let Ok(step) = match_step(deps, &factor, &code)? else {
        return Err(ServiceError::InvalidMfaCode);
    };
    if !claim_step(&txn, deps, factor.id, step, true).await? {
        return Err(ServiceError::InvalidMfaCode);
    }
    record(
        &txn,
        deps,
        AuditEntry::new(AuditEvent::MfaConfirmed, AuditOutcome::Success, meta)
            .actor(user)
            .resource("mfa_factor", factor.id),
    )
    .await?;
    // The user just proved the factor in this session.
    factor_added(&txn, deps, session, "totp", meta).await?;
    let confirmed = view(&txn, factor.id).await?;
    txn.commit().await?;
    Ok(confirmed)
}

async fn view<C: ConnectionTrait>(db: &C, id: MfaFactorId) -> Result<MfaFactor> {
    mfa_factors::Entity::find_by_id(id)
        .into_partial_model::<MfaFactor>()
        .one(db)
        .await?
        .ok_or_else(|| ServiceError::not_found("TOTP factor", id))
}

/// The user's TOTP factor, confirmed or not, without its secret.
///
/// # Errors
/// `Db` only.
pub async fn totp_factor<C>(db: &C, user: UserId) -> Result<Option<MfaFactor>>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = begin_for_user(db, user).await?;
    let factor = mfa_factors::Entity::find()
        .filter(mfa_factors::Column::UserId.eq(user))
        .filter(mfa_factors::Column::Kind.eq(MfaKind::Totp))
        .into_partial_model::<MfaFactor>()
        .one(&txn)
        .await?;
    txn.commit().await?;
    Ok(factor)
}

/// Checks a TOTP code of the user's confirmed factor: the current step or one either
/// side, each step accepted once. Records `mfa_verified`; a refused code records
/// `mfa_verification_failed` on a transaction of its own (so this takes a connection).
///
/// # Errors
/// `Validation` for a code that is not 6 to 8 digits (before any query); `NotFound`
/// without a confirmed factor; `InvalidMfaCode` for a wrong or used code;
/// `AccountDisabled`; `Crypto`; `Db`.
pub async fn verify_totp(
    db: &DatabaseConnection,
    deps: &Deps,
    user: UserId,
    code: &str,
    meta: &RequestMeta,
) -> Result<()> {
    let proof = ParsedProof::Totp(parse_totp_code(code)?);
    let txn = begin_for_user(db, user).await?;
    find_active_user(&txn, user).await?;
    let factor = confirmed_factor(&txn, user)
        .await?
        .ok_or_else(|| ServiceError::not_found("confirmed TOTP factor of user", user))?;
    if let Err(refusal) = spend_proof(&txn, deps, user, &factor, &proof).await? {
        txn.rollback().await?;
        return Err(refuse(db, deps, user, "totp", refusal, meta).await?);
    }
    record(
        &txn,
        deps,
        AuditEntry::new(AuditEvent::MfaVerified, AuditOutcome::Success, meta)
            .actor(user)
            .resource("mfa_factor", factor.id)
            .details(json!({ "method": "totp" })),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// Removes the user's TOTP factor and backup codes, proven by a current TOTP code or a
/// backup code (a stolen session alone cannot turn the factor off). Records
/// `mfa_disabled`; a refused proof records `mfa_verification_failed` on a transaction
/// of its own.
///
/// # Errors
/// `Validation` for a malformed code (before any query); `NotFound` without a factor;
/// `InvalidMfaCode`; `AccountDisabled`; `Crypto`; `Db`.
pub async fn disable_totp(
    db: &DatabaseConnection,
    deps: &Deps,
    session: &SessionAuth,
    proof: MfaProof<'_>,
    meta: &RequestMeta,
) -> Result<()> {
    let parsed = ParsedProof::parse(proof)?;
    let user = session.user_id();
    let txn = begin_sensitive(db, deps, session, "disable_totp", meta).await?;
    find_active_user(&txn, user).await?;
    let factor = find_factor(&txn, user)
        .await?
        .ok_or_else(|| ServiceError::not_found("TOTP factor of user", user))?;
    let method = parsed.method();
    let outcome = spend_proof(&txn, deps, user, &factor, &parsed).await?;
    if let Err(refusal) = outcome {
        txn.rollback().await?;
        return Err(refuse(db, deps, user, method, refusal, meta).await?);
    }
    let codes_deleted = mfa_backup_codes::Entity::delete_many()
        .filter(mfa_backup_codes::Column::UserId.eq(user))
        .exec(&txn)
        .await?
        .rows_affected;
    mfa_factors::Entity::delete_by_id(factor.id)
        .exec(&txn)
        .await?;
    record(
        &txn,
        deps,
        AuditEntry::new(AuditEvent::MfaDisabled, AuditOutcome::Success, meta)
            .actor(user)
            .resource("mfa_factor", factor.id)
            .details(json!({ "method": method, "backup_codes_deleted": codes_deleted })),
    )
    .await?;
    // The session stays at the level it had: it did verify a factor once.
    revoke_other_sessions(
        &txn,
        deps,
        user,
        Some(session.session_id()),
        "mfa_disabled",
        meta,
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_parsed_before_any_query() {
        assert!(parse_totp_code("123 456").is_ok());
        assert!(parse_totp_code("12345").is_err());
        assert!(parse_totp_code("12345a").is_err());
        assert!(parse_backup_code("ABCD-efgh-2345-67ab").is_ok());
        assert!(parse_backup_code("abcd-efgh-2345-6781").is_err());
        assert!(parse_name(" ").is_err());
    }
}
