//! Passkeys: a user's WebAuthn credentials (ES256), the check of a registration
//! response and of each assertion.
//!
//! The application calls, in order: [`check_registration`] with what the browser
//! returned from `navigator.credentials.create()` and what the application expected,
//! then [`register_passkey`] with the credential it returns (or with the public data of
//! a registration the application checked itself); [`list_passkeys`],
//! [`rename_passkey`] and [`remove_passkey`] for the user's settings; and for each
//! sign-in, [`verify_passkey_assertion`] with what the browser returned and what the
//! application expected (the single-use challenge it issued, its origin, its RP id).
//! Attestation statements are skipped, not verified (`attestation: "none"`, what most
//! sites ask for): the AAGUID is the client's word.
//!
//! An assertion is checked as WebAuthn Level 2 §7.2 says: clientDataJSON's type is
//! `webauthn.get`, its challenge and origin are the expected ones, the authenticator
//! data's RP id hash is SHA-256 of the RP id, the user-present flag is set, and the
//! ES256 signature over `authenticatorData || SHA-256(clientDataJSON)` verifies with
//! the stored key. Only then the counter: once the stored or the presented count is
//! non-zero, the presented one must be greater. One that is not means two
//! authenticators hold the key; the passkey is disabled for good and
//! `passkey_clone_detected` recorded at risk 90. The signature comes first, so nobody
//! without the key can disable a passkey with a low count. The update that stores the
//! new count repeats the condition, so of two concurrent assertions with one count,
//! one passes and the other reads as the regression it is.
//!
//! Replays: the challenge is what stops them, and keeping it single-use is the
//! application's job: consume it (delete it where it is kept) before calling
//! [`verify_passkey_assertion`]. Authenticators that keep no counter (most synced
//! passkeys report zero every time) give no second line of defence, and one assertion
//! presented twice under a still-valid challenge carries the same count, which reads as
//! a clone and disables the passkey.
//!
//! Records: register, rename, remove and each accepted assertion are audited with
//! their change. A refused assertion of a known credential records
//! `passkey_assertion_failed` (and a detected clone disables the passkey) on a
//! transaction of its own, committed before the error returns, so
//! [`verify_passkey_assertion`] takes a connection, not a transaction. An unknown
//! credential id is not recorded: anyone can make them up.

mod assertion;
mod ceremony;
mod cose;

pub use assertion::verify_passkey_assertion;

pub use ceremony::{CheckedRegistration, PasskeyRegistration, check_registration};

pub use cose::es256_cose_key;
use cose::es256_point_from_cose;

use super::assurance::{SessionAuth, begin_sensitive, factor_added, revoke_other_sessions};
use super::users::{begin_for_user, find_active_user};
use crate::Result;
use crate::audit::{AuditEntry, AuditEvent, record};
use crate::deps::Deps;
use crate::error::{ServiceError, conflict_on_unique};
use crate::input::plain_text;
use crate::request::RequestMeta;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use entity::audit::audit_logs::AuditOutcome;
use entity::identity::passkeys::{self, PasskeyDisabledReason};
use entity::{PasskeyId, PublicKeyBytes, UserId};
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DerivePartialModel, EntityTrait, QueryFilter, QueryOrder,
    TransactionSession, TransactionTrait,
};
use serde_json::json;
use std::fmt;
use uuid::Uuid;

/// COSE algorithm -7: ECDSA over P-256 with SHA-256, the one every authenticator
/// supports and the only one accepted here.
pub const ES256: i32 = -7;
/// WebAuthn's bounds on a credential id; authenticators make them of 16+ random bytes.
const CREDENTIAL_ID_LEN: std::ops::RangeInclusive<usize> = 16..=1023;
/// The longest name, in characters (the column's limit).
const NAME_MAX_CHARS: usize = 64;
/// The longest transports list as stored (`a,b,c`).
const TRANSPORTS_MAX_LEN: usize = 128;
/// rpIdHash (32), flags (1), signCount (4): the authenticator data of an assertion.
const AUTH_DATA_MIN_LEN: usize = 37;
/// Generous for authenticator data with extensions; refuses megabytes before hashing.
const AUTH_DATA_MAX_LEN: usize = 4096;
/// clientDataJSON is a small object; browsers add a few fields at most.
const CLIENT_DATA_MAX_LEN: usize = 16 * 1024;
/// A DER ECDSA P-256 signature is 8 to 72 bytes.
const SIGNATURE_LEN: std::ops::RangeInclusive<usize> = 8..=72;

const FLAG_USER_PRESENT: u8 = 0x01;
const FLAG_USER_VERIFIED: u8 = 0x04;
const FLAG_BACKUP_ELIGIBLE: u8 = 0x08;
const FLAG_BACKUP_STATE: u8 = 0x10;
const FLAG_ATTESTED_CREDENTIAL: u8 = 0x40;
const FLAG_EXTENSIONS: u8 = 0x80;

/// A passkey as the application sees it: no public key. `Debug` shows the credential
/// id in base64url, an identifier the browser sends in the clear anyway.
#[derive(Clone, PartialEq, Eq, DerivePartialModel)]
#[sea_orm(entity = "passkeys::Entity")]
pub struct Passkey {
    pub id: PasskeyId,
    pub user_id: UserId,
    pub credential_id: Vec<u8>,
    pub algorithm: i32,
    pub sign_count: i64,
    pub aaguid: Uuid,
    /// Comma-separated; see [`Passkey::transport_names`].
    pub transports: String,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub disabled_reason: Option<PasskeyDisabledReason>,
}

impl Passkey {
    /// The transports, for `allowCredentials` (`["internal", "hybrid"]`).
    pub fn transport_names(&self) -> impl Iterator<Item = &str> {
        self.transports.split(',').filter(|t| !t.is_empty())
    }

    /// The credential id in base64url without padding, as WebAuthn's JSON writes it.
    pub fn credential_id_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(&self.credential_id)
    }
}

impl fmt::Debug for Passkey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Passkey")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("credential_id", &self.credential_id_base64url())
            .field("algorithm", &self.algorithm)
            .field("sign_count", &self.sign_count)
            .field("aaguid", &self.aaguid)
            .field("transports", &self.transports)
            .field("backup_eligible", &self.backup_eligible)
            .field("backup_state", &self.backup_state)
            .field("name", &self.name)
            .field("created_at", &self.created_at)
            .field("last_used_at", &self.last_used_at)
            .field("disabled_at", &self.disabled_at)
            .field("disabled_reason", &self.disabled_reason)
            .finish()
    }
}

/// The public data of a credential a registration ceremony produced, as the
/// application read it from `attestedCredentialData` and the response's transports.
/// `Debug` leaves the key out.
#[derive(Clone)]
pub struct NewPasskey {
    pub credential_id: Vec<u8>,
    /// The credential's COSE_Key (RFC 9052 §7): an EC2 key on P-256 for ES256.
    pub public_key_cose: Vec<u8>,
    /// The signature counter of the registration's authenticator data.
    pub sign_count: u32,
    pub aaguid: Uuid,
    /// `usb`, `nfc`, `ble`, `smart-card`, `hybrid`, `internal`, ...
    pub transports: Vec<String>,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub name: String,
}

impl fmt::Debug for NewPasskey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewPasskey")
            .field(
                "credential_id",
                &URL_SAFE_NO_PAD.encode(&self.credential_id),
            )
            .field("public_key_cose", &"[redacted]")
            .field("sign_count", &self.sign_count)
            .field("aaguid", &self.aaguid)
            .field("transports", &self.transports)
            .field("name", &self.name)
            .finish()
    }
}

/// What the browser returned from `navigator.credentials.get()`, decoded from
/// base64url. `Debug` shows lengths only.
#[derive(Clone, Copy)]
pub struct PasskeyAssertion<'a> {
    /// `rawId`.
    pub credential_id: &'a [u8],
    pub authenticator_data: &'a [u8],
    pub client_data_json: &'a [u8],
    /// DER-encoded ECDSA signature.
    pub signature: &'a [u8],
}

impl fmt::Debug for PasskeyAssertion<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasskeyAssertion")
            .field("credential_id", &URL_SAFE_NO_PAD.encode(self.credential_id))
            .field("authenticator_data_len", &self.authenticator_data.len())
            .field("client_data_json_len", &self.client_data_json.len())
            .field("signature", &"[redacted]")
            .finish()
    }
}

/// What the application expects of a ceremony (a registration or an assertion): the
/// challenge it issued for it (single use is the application's to keep), its origin
/// (`https://app.example.com`) and its RP id (`example.com`).
#[derive(Clone, Copy, Debug)]
pub struct ExpectedCeremony<'a> {
    pub challenge: &'a [u8],
    pub origin: &'a str,
    pub rp_id: &'a str,
}

/// An accepted assertion: whose passkey, and what the authenticator said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedPasskey {
    pub passkey_id: PasskeyId,
    pub user_id: UserId,
    pub sign_count: u32,
    /// The authenticator verified the user (PIN, biometrics), not only their presence.
    pub user_verified: bool,
    pub backup_state: bool,
}

/// Why an assertion was refused. The application decides what its user hears; none of
/// these says anything about another user's credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PasskeyRejection {
    /// No passkey has this credential id.
    UnknownCredential,
    /// Disabled earlier (a detected clone); refused for good.
    Disabled,
    /// clientDataJSON is not JSON of `webauthn.get`.
    WrongType,
    ChallengeMismatch,
    OriginMismatch,
    /// Cross-origin iframes are not accepted.
    CrossOrigin,
    RpIdMismatch,
    UserNotPresent,
    /// The backup flags contradict each other or the registration.
    BackupFlags,
    UnsupportedAlgorithm,
    BadSignature,
    /// The signature counter did not increase: the passkey is now disabled.
    ClonedAuthenticator,
}

impl PasskeyRejection {
    pub fn as_str(self) -> &'static str {
        match self {
            PasskeyRejection::UnknownCredential => "unknown_credential",
            PasskeyRejection::Disabled => "disabled",
            PasskeyRejection::WrongType => "wrong_type",
            PasskeyRejection::ChallengeMismatch => "challenge_mismatch",
            PasskeyRejection::OriginMismatch => "origin_mismatch",
            PasskeyRejection::CrossOrigin => "cross_origin",
            PasskeyRejection::RpIdMismatch => "rp_id_mismatch",
            PasskeyRejection::UserNotPresent => "user_not_present",
            PasskeyRejection::BackupFlags => "backup_flags",
            PasskeyRejection::UnsupportedAlgorithm => "unsupported_algorithm",
            PasskeyRejection::BadSignature => "bad_signature",
            PasskeyRejection::ClonedAuthenticator => "cloned_authenticator",
        }
    }
}

impl fmt::Display for PasskeyRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn parse_name(name: &str) -> Result<String> {
    plain_text("name", name, NAME_MAX_CHARS)
}

fn check_credential_id(id: &[u8]) -> Result<()> {
    if !CREDENTIAL_ID_LEN.contains(&id.len()) {
        return Err(ServiceError::validation(
            "credential_id",
            "16 to 1023 bytes",
        ));
    }
    Ok(())
}

/// Transports as stored: known-shaped tokens (lowercase letters and hyphens, as
/// WebAuthn names them), without duplicates, comma-separated. Unknown names are kept:
/// browsers add new ones and want them back in `allowCredentials`.
fn parse_transports(transports: &[String]) -> Result<String> {
    let mut seen: Vec<&str> = Vec::with_capacity(transports.len());
    for t in transports {
        let t = t.as_str();
        let well_formed = !t.is_empty()
            && t.len() <= 32
            && t.bytes().all(|b| b.is_ascii_lowercase() || b == b'-');
        if !well_formed {
            return Err(ServiceError::validation(
                "transports",
                "lowercase names such as \"usb\" or \"internal\"",
            ));
        }
        if !seen.contains(&t) {
            seen.push(t);
        }
    }
    let joined = seen.join(",");
    if joined.len() > TRANSPORTS_MAX_LEN {
        return Err(ServiceError::validation("transports", "too many"));
    }
    Ok(joined)
}

async fn view<C: ConnectionTrait>(db: &C, user: UserId, id: PasskeyId) -> Result<Passkey> {
    passkeys::Entity::find_by_id(id)
        .filter(passkeys::Column::UserId.eq(user))
        .into_partial_model::<Passkey>()
        .one(db)
        .await?
        .ok_or_else(|| ServiceError::not_found("passkey", id))
}

/// Stores a credential a registration ceremony produced, in the user's session: a
/// sensitive operation (a recent sign-in, at `aal2` when the user has a second factor;
/// see `validate_session`). Like confirming a TOTP factor, it makes the session `aal2`
/// and ends the user's other sessions. Records `passkey_registered` and
/// `other_sessions_revoked`.
///
/// # Errors
/// `StepUpRequired`; and
/// `Validation` for a bad name, credential id, key (not an ES256 COSE key on P-256),
/// transports, or a backed-up credential that is not backup eligible, all before any
/// query; `Conflict` if the credential id is registered (to anyone); `NotFound`,
/// `AccountDisabled`; `Db`.
pub async fn register_passkey<C>(
    db: &C,
    deps: &Deps,
    session: &SessionAuth,
    new: NewPasskey,
    meta: &RequestMeta,
) -> Result<Passkey>
where
    C: ConnectionTrait + TransactionTrait,
{
    let name = parse_name(&new.name)?;
    check_credential_id(&new.credential_id)?;
    let point = es256_point_from_cose(&new.public_key_cose).ok_or_else(|| {
        ServiceError::validation(
            "public_key",
            "an ES256 COSE key (EC2, P-256); other algorithms are not supported",
        )
    })?;
    let transports = parse_transports(&new.transports)?;
    if new.backup_state && !new.backup_eligible {
        return Err(ServiceError::validation(
            "backup_state",
            "a credential that is not backup eligible cannot be backed up",
        ));
    }
    let user = session.user_id();
    let txn = begin_sensitive(db, deps, session, "register_passkey", meta).await?;
    let id = PasskeyId(deps.new_id("passkeys", &user.to_string()));
    passkeys::Entity::insert(passkeys::ActiveModel {
        id: Set(id),
        user_id: Set(user),
        credential_id: Set(new.credential_id),
        public_key: Set(PublicKeyBytes::new(point)),
        algorithm: Set(ES256),
        sign_count: Set(i64::from(new.sign_count)),
        aaguid: Set(new.aaguid),
        transports: Set(transports.clone()),
        backup_eligible: Set(new.backup_eligible),
        backup_state: Set(new.backup_state),
        name: Set(name),
        created_at: Set(deps.now()),
        // Left out of the INSERT: a new passkey is unused and enabled, and the runtime
        // role may not insert these columns.
        last_used_at: NotSet,
        disabled_at: NotSet,
        disabled_reason: NotSet,
    })
    .exec_without_returning(&txn)
    .await
    .map_err(conflict_on_unique(
        "passkey",
        "this credential is already registered",
    ))?;
    record(
        &txn,
        deps,
        AuditEntry::new(AuditEvent::PasskeyRegistered, AuditOutcome::Success, meta)
            .actor(user)
            .resource("passkey", id)
            .details(json!({
                "algorithm": ES256,
                "aaguid": new.aaguid,
                "transports": transports,
                "backup_eligible": new.backup_eligible,
            })),
    )
    .await?;
    // The user just created the credential in this session: it proves the factor.
    factor_added(&txn, deps, session, "passkey", meta).await?;
    let registered = view(&txn, user, id).await?;
    txn.commit().await?;
    Ok(registered)
}

/// The user's passkeys, oldest first, without their keys.
///
/// # Errors
/// `Db` only.
pub async fn list_passkeys<C>(db: &C, user: UserId) -> Result<Vec<Passkey>>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = begin_for_user(db, user).await?;
    let list = passkeys::Entity::find()
        .filter(passkeys::Column::UserId.eq(user))
        .order_by_asc(passkeys::Column::CreatedAt)
        .order_by_asc(passkeys::Column::Id)
        .into_partial_model::<Passkey>()
        .all(&txn)
        .await?;
    txn.commit().await?;
    Ok(list)
}

/// Renames one of the user's passkeys. Records `passkey_renamed`.
///
/// # Errors
/// `Validation` for a bad name (before any query); `NotFound` for a passkey that is
/// not the user's; `AccountDisabled`; `Db`.
pub async fn rename_passkey<C>(
    db: &C,
    deps: &Deps,
    user: UserId,
    id: PasskeyId,
    name: &str,
    meta: &RequestMeta,
) -> Result<Passkey>
where
    C: ConnectionTrait + TransactionTrait,
{
    let name = parse_name(name)?;
    let txn = begin_for_user(db, user).await?;
    find_active_user(&txn, user).await?;
    let renamed = passkeys::Entity::update_many()
        .col_expr(passkeys::Column::Name, Expr::value(name))
        .filter(passkeys::Column::Id.eq(id))
        .filter(passkeys::Column::UserId.eq(user))
        .exec(&txn)
        .await?;
    if renamed.rows_affected == 0 {
        return Err(ServiceError::not_found("passkey", id));
    }
    record(
        &txn,
        deps,
        AuditEntry::new(AuditEvent::PasskeyRenamed, AuditOutcome::Success, meta)
            .actor(user)
            .resource("passkey", id),
    )
    .await?;
    let passkey = view(&txn, user, id).await?;
    txn.commit().await?;
    Ok(passkey)
}

/// Removes one of the user's passkeys, in the user's session: a sensitive operation,
/// like registering one; the user's other sessions end. Records `passkey_removed`.
///
/// # Errors
/// `StepUpRequired`; `NotFound` for a passkey that is not the user's; `Conflict` for a
/// passkey disabled as a cloned authenticator (it stays on record, so its credential
/// cannot come back with a fresh counter); `AccountDisabled`; `Db`.
pub async fn remove_passkey<C>(
    db: &C,
    deps: &Deps,
    session: &SessionAuth,
    id: PasskeyId,
    meta: &RequestMeta,
) -> Result<()>
where
    C: ConnectionTrait + TransactionTrait,
{
    let user = session.user_id();
    let txn = begin_sensitive(db, deps, session, "remove_passkey", meta).await?;
    // The row is read first: a disabled passkey is refused with its reason, not as
    // missing.
    let passkey = view(&txn, user, id).await?;
    if passkey.disabled_at.is_some() {
        return Err(ServiceError::Conflict {
            entity: "passkey",
            reason: "it was disabled as a cloned authenticator and stays on record, so its \
                     credential cannot be registered again",
        });
    }
    let removed = passkeys::Entity::delete_many()
        .filter(passkeys::Column::Id.eq(id))
        .filter(passkeys::Column::UserId.eq(user))
        .filter(passkeys::Column::DisabledAt.is_null())
        .exec(&txn)
        .await?;
    if removed.rows_affected == 0 {
        // Disabled or removed meanwhile.
        return Err(ServiceError::not_found("passkey", id));
    }
    record(
        &txn,
        deps,
        AuditEntry::new(AuditEvent::PasskeyRemoved, AuditOutcome::Success, meta)
            .actor(user)
            .resource("passkey", id),
    )
    .await?;
    revoke_other_sessions(
        &txn,
        deps,
        user,
        Some(session.session_id()),
        "passkey_removed",
        meta,
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ceremony::counter_advances;
    use cose::cbor_skip;

    #[test]
    fn input_is_checked_before_any_query() {
        assert!(parse_name(" ").is_err());
        assert!(parse_name(&"x".repeat(65)).is_err());
        assert!(parse_name(&"é".repeat(64)).is_ok());
        assert!(parse_name("a\u{7}b").is_err());
        assert!(check_credential_id(&[0; 15]).is_err());
        assert!(check_credential_id(&[0; 1024]).is_err());
        assert!(parse_transports(&["USB".into()]).is_err());
        assert_eq!(
            parse_transports(&["internal".into(), "hybrid".into(), "internal".into()])
                .expect("parses"),
            "internal,hybrid"
        );
    }

    #[test]
    fn the_counter_rule() {
        assert!(counter_advances(0, 0), "authenticators without a counter");
        assert!(counter_advances(0, 1));
        assert!(counter_advances(5, 6));
        assert!(!counter_advances(5, 5), "equal and non-zero");
        assert!(!counter_advances(5, 4));
        assert!(!counter_advances(5, 0), "back to zero");
    }

    #[test]
    fn no_cbor_input_panics() {
        // A deterministic stream of bytes, biased towards CBOR heads that claim a lot.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        };
        let expected = ExpectedCeremony {
            challenge: &[1; 16],
            origin: "https://a.test",
            rp_id: "a.test",
        };
        let client = br#"{"type":"webauthn.create","challenge":"AQEBAQEBAQEBAQEBAQEBAQ","origin":"https://a.test"}"#;
        for len in 0..400 {
            let mut object: Vec<u8> = (0..len).map(|_| next()).collect();
            if len > 0 {
                object[0] = 0xa3;
            }
            let _ = es256_point_from_cose(&object);
            let _ = check_registration(
                PasskeyRegistration {
                    attestation_object: &object,
                    client_data_json: client,
                    transports: &[],
                },
                expected,
                "x",
            );
            let mut input = object.as_slice();
            let _ = cbor_skip(&mut input, 8);
        }
        // Deep nesting stops at the depth limit instead of the stack's.
        let nested = vec![0x81; 10_000];
        assert!(cbor_skip(&mut nested.as_slice(), 8).is_none());
    }
}
