//! Backup codes: ten single-use codes shown once, for when the authenticator app is
//! out of reach. Each is stored as its SHA-256 in a row of its own and claimed by a
//! conditional update of `used_at`, so one code passes once even under concurrency.

use super::{Refusal, find_factor, refuse};
use crate::Result;
use crate::audit::{AuditEntry, AuditEvent, record};
use crate::deps::Deps;
use crate::error::ServiceError;
use crate::identity::assurance::{SessionAuth, begin_sensitive};
use crate::identity::tokens::sha256_hex;
use crate::identity::users::{begin_for_user, find_active_user};
use crate::request::RequestMeta;
use chrono::{DateTime, Utc};
use data_encoding::BASE32_NOPAD;
use entity::audit::audit_logs::AuditOutcome;
use entity::identity::mfa_backup_codes;
use entity::{MfaBackupCodeId, UserId};
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QuerySelect, TransactionSession, TransactionTrait,
};
use serde_json::json;
use std::fmt;
use zeroize::Zeroizing;

/// How many backup codes a set has.
pub const BACKUP_CODE_COUNT: usize = 10;
/// Random bytes per backup code: 80 bits, 16 base32 characters.
const BACKUP_CODE_BYTES: usize = 10;
/// A fresh set of backup codes, in the clear once (`xxxx-xxxx-xxxx-xxxx`). `Debug`
/// shows how many there are, nothing else.
pub struct BackupCodes(Vec<Zeroizing<String>>);

impl BackupCodes {
    pub fn expose(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|c| c.as_str())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for BackupCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BackupCodes({} codes, [redacted])", self.0.len())
    }
}

/// A backup code as typed: 16 base32 characters, any case, hyphens and spaces allowed.
/// Returns the hash it is stored under.
pub(super) fn parse_backup_code(code: &str) -> Result<String> {
    let normal: Zeroizing<String> = Zeroizing::new(
        code.chars()
            .filter(|c| *c != '-' && *c != ' ')
            .map(|c| c.to_ascii_lowercase())
            .collect(),
    );
    if normal.len() != BACKUP_CODE_BYTES * 8 / 5
        || !normal
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
    {
        return Err(ServiceError::validation(
            "backup code",
            "expected 16 letters and digits, as printed",
        ));
    }
    Ok(backup_code_hash(&normal))
}

/// SHA-256, not argon2: a code is 80 random bits, so its hash cannot be searched, and
/// verification stays a single indexed lookup.
fn backup_code_hash(normal: &str) -> String {
    sha256_hex(normal)
}

/// Replaces the user's backup codes with [`BACKUP_CODE_COUNT`] new ones, stored as
/// their SHA-256. Needs a confirmed TOTP factor. Records `backup_codes_generated`.
///
/// # Errors
/// `Conflict` without a confirmed factor; `NotFound`, `AccountDisabled`; `Db`.
pub async fn generate_backup_codes<C>(
    db: &C,
    deps: &Deps,
    session: &SessionAuth,
    meta: &RequestMeta,
) -> Result<BackupCodes>
where
    C: ConnectionTrait + TransactionTrait,
{
    let user = session.user_id();
    let txn = begin_sensitive(db, deps, session, "generate_backup_codes", meta).await?;
    find_active_user(&txn, user).await?;
    let confirmed = find_factor(&txn, user)
        .await?
        .is_some_and(|f| f.confirmed_at.is_some());
    if !confirmed {
        return Err(ServiceError::Conflict {
            entity: "backup codes",
            reason: "enrol and confirm a TOTP factor first",
        });
    }
    let replaced = mfa_backup_codes::Entity::delete_many()
        .filter(mfa_backup_codes::Column::UserId.eq(user))
        .exec(&txn)
        .await?
        .rows_affected;
    let now = deps.now();
    let mut codes = Vec::with_capacity(BACKUP_CODE_COUNT);
    let mut rows = Vec::with_capacity(BACKUP_CODE_COUNT);
    for _ in 0..BACKUP_CODE_COUNT {
        let bytes = Zeroizing::new(deps.random_bytes::<BACKUP_CODE_BYTES>());
        let normal = Zeroizing::new(BASE32_NOPAD.encode(&*bytes).to_ascii_lowercase());
        rows.push(mfa_backup_codes::ActiveModel {
            id: Set(MfaBackupCodeId(
                deps.new_id("mfa_backup_codes", &user.to_string()),
            )),
            user_id: Set(user),
            code_hash: Set(entity::TokenHash::new(backup_code_hash(&normal))),
            used_at: NotSet,
            created_at: Set(now),
        });
        let grouped: Vec<&str> = (0..normal.len())
            .step_by(4)
            .map(|i| &normal[i..i + 4])
            .collect();
        codes.push(Zeroizing::new(grouped.join("-")));
    }
    mfa_backup_codes::Entity::insert_many(rows)
        .exec_without_returning(&txn)
        .await?;
    record(
        &txn,
        deps,
        AuditEntry::new(
            AuditEvent::BackupCodesGenerated,
            AuditOutcome::Success,
            meta,
        )
        .actor(user)
        .resource("user", user)
        .details(json!({ "count": BACKUP_CODE_COUNT, "replaced": replaced })),
    )
    .await?;
    txn.commit().await?;
    Ok(BackupCodes(codes))
}

/// Claims an unused backup code of the user, by hash: only one transaction can set its
/// `used_at`.
pub(super) async fn claim_backup_code<C: ConnectionTrait>(
    db: &C,
    deps: &Deps,
    user: UserId,
    code_hash: &str,
) -> Result<std::result::Result<MfaBackupCodeId, Refusal>> {
    let found = mfa_backup_codes::Entity::find()
        .select_only()
        .column(mfa_backup_codes::Column::Id)
        .column(mfa_backup_codes::Column::UsedAt)
        .filter(mfa_backup_codes::Column::UserId.eq(user))
        .filter(mfa_backup_codes::Column::CodeHash.eq(code_hash))
        .into_tuple::<(MfaBackupCodeId, Option<DateTime<Utc>>)>()
        .one(db)
        .await?;
    let id = match found {
        None => return Ok(Err(Refusal::WrongCode)),
        Some((_, Some(_))) => return Ok(Err(Refusal::Replayed)),
        Some((id, None)) => id,
    };
    let claimed = mfa_backup_codes::Entity::update_many()
        .col_expr(mfa_backup_codes::Column::UsedAt, Expr::value(deps.now()))
        .filter(mfa_backup_codes::Column::Id.eq(id))
        .filter(mfa_backup_codes::Column::UsedAt.is_null())
        .exec(db)
        .await?;
    Ok(if claimed.rows_affected == 1 {
        Ok(id)
    } else {
        Err(Refusal::Replayed)
    })
}

/// Uses one backup code in place of a TOTP code. Records `backup_code_used`; a refused
/// code records `mfa_verification_failed` on a transaction of its own. Returns how many
/// unused codes are left.
///
/// # Errors
/// `Validation` for a code not shaped like one (before any query); `InvalidMfaCode`
/// for an unknown or used code; `AccountDisabled`; `Db`.
pub async fn use_backup_code(
    db: &DatabaseConnection,
    deps: &Deps,
    user: UserId,
    code: &str,
    meta: &RequestMeta,
) -> Result<u64> {
    let code_hash = parse_backup_code(code)?;
    let txn = begin_for_user(db, user).await?;
    find_active_user(&txn, user).await?;
    let id = match claim_backup_code(&txn, deps, user, &code_hash).await? {
        Ok(id) => id,
        Err(refusal) => {
            txn.rollback().await?;
            return Err(refuse(db, deps, user, "backup_code", refusal, meta).await?);
        }
    };
    let remaining = mfa_backup_codes::Entity::find()
        .filter(mfa_backup_codes::Column::UserId.eq(user))
        .filter(mfa_backup_codes::Column::UsedAt.is_null())
        .count(&txn)
        .await?;
    record(
        &txn,
        deps,
        AuditEntry::new(AuditEvent::BackupCodeUsed, AuditOutcome::Success, meta)
            .actor(user)
            .resource("mfa_backup_code", id)
            .details(json!({ "remaining": remaining })),
    )
    .await?;
    txn.commit().await?;
    Ok(remaining)
}
