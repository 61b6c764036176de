//! The checked inputs of protected records: what a caller may write, refused with a
//! `Validation` error before anything is read or written.

use crate::Result;
use crate::error::ServiceError;
use crate::input::plain_text;
use chrono::{DateTime, Utc};
use entity::records::access_grants::GrantAccess;
use entity::records::records::RecordType;
use entity::{RecordId, UserId};

/// The longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// The largest body, in bytes of UTF-8 (a sealed body adds its header and tag, and
/// must fit MariaDB's `BLOB`).
pub const MAX_BODY_BYTES: usize = 60_000;
/// The longest reason of a grant, a revocation or a break-glass opening.
pub const MAX_REASON_CHARS: usize = 500;
/// A break-glass opening says what the emergency is: at least this many characters.
pub const MIN_BREAK_GLASS_REASON_CHARS: usize = 10;

/// The text of a record: any characters but NUL, not blank, at most
/// [`MAX_BODY_BYTES`]. Kept as given (line breaks and indentation are content).
#[derive(Clone, PartialEq, Eq)]
pub struct RecordBody(String);

impl RecordBody {
    pub fn parse(raw: &str) -> Result<Self> {
        if raw.trim().is_empty() {
            return Err(ServiceError::validation("body", "must not be empty"));
        }
        if raw.len() > MAX_BODY_BYTES {
            return Err(ServiceError::validation(
                "body",
                format!("must be at most {MAX_BODY_BYTES} bytes"),
            ));
        }
        if raw.contains('\0') {
            return Err(ServiceError::validation("body", "must not contain NUL"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Protected health information: never printed.
impl std::fmt::Debug for RecordBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RecordBody([{} bytes])", self.0.len())
    }
}

fn title(raw: &str) -> Result<String> {
    plain_text("title", raw, MAX_TITLE_CHARS)
}

fn reason(field: &'static str, raw: &str, min_chars: usize) -> Result<String> {
    let text = plain_text(field, raw, MAX_REASON_CHARS)?;
    if text.chars().count() < min_chars {
        return Err(ServiceError::validation(
            field,
            format!("must say why in at least {min_chars} characters"),
        ));
    }
    Ok(text)
}

/// A new record of `subject`, written by the acting user.
#[derive(Clone, Debug)]
pub struct NewRecord {
    pub(super) subject: UserId,
    pub(super) record_type: RecordType,
    pub(super) title: String,
    pub(super) body: RecordBody,
}

impl NewRecord {
    /// # Errors
    /// `Validation`: a blank or overlong title (control characters too), a blank,
    /// overlong or NUL-holding body.
    pub fn new(
        subject: UserId,
        record_type: RecordType,
        title_text: &str,
        body: &str,
    ) -> Result<Self> {
        Ok(Self {
            subject,
            record_type,
            title: title(title_text)?,
            body: RecordBody::parse(body)?,
        })
    }
}

/// What a change of a record replaces; at least one part.
#[derive(Clone, Debug, Default)]
pub struct RecordChange {
    pub(super) record_type: Option<RecordType>,
    pub(super) title: Option<String>,
    pub(super) body: Option<RecordBody>,
}

impl RecordChange {
    /// # Errors
    /// `Validation` as for [`NewRecord::new`], or when nothing would change.
    pub fn new(
        record_type: Option<RecordType>,
        title_text: Option<&str>,
        body: Option<&str>,
    ) -> Result<Self> {
        if record_type.is_none() && title_text.is_none() && body.is_none() {
            return Err(ServiceError::validation(
                "change",
                "name at least one of type, title and body",
            ));
        }
        Ok(Self {
            record_type,
            title: title_text.map(title).transpose()?,
            body: body.map(RecordBody::parse).transpose()?,
        })
    }
}

/// What a grant gives: to `grantee`, `access` to one record of `subject` or to all
/// of them, from `starts_at` (now when `None`) until `expires_at`.
#[derive(Clone, Debug)]
pub struct NewGrant {
    pub(super) grantee: UserId,
    pub(super) subject: UserId,
    pub(super) record: Option<RecordId>,
    pub(super) access: GrantAccess,
    pub(super) reason: String,
    pub(super) starts_at: Option<DateTime<Utc>>,
    pub(super) expires_at: DateTime<Utc>,
}

impl NewGrant {
    /// # Errors
    /// `Validation`: a blank or overlong reason; the subject as grantee (subjects
    /// read their own records already); an expiry not after the start. The
    /// service checks the expiry against the clock and the longest grant.
    pub fn new(
        grantee: UserId,
        subject: UserId,
        record: Option<RecordId>,
        access: GrantAccess,
        reason_text: &str,
        starts_at: Option<DateTime<Utc>>,
        expires_at: DateTime<Utc>,
    ) -> Result<Self> {
        if grantee == subject {
            return Err(ServiceError::validation(
                "grantee",
                "a subject reads their own records without a grant",
            ));
        }
        if starts_at.is_some_and(|start| expires_at <= start) {
            return Err(ServiceError::validation(
                "expires_at",
                "must be after the start",
            ));
        }
        Ok(Self {
            grantee,
            subject,
            record,
            access,
            reason: reason("reason", reason_text, 1)?,
            starts_at,
            expires_at,
        })
    }
}

/// Why a grant ends early: 1 to 500 characters.
pub(super) fn revoke_reason(raw: &str) -> Result<String> {
    reason("reason", raw, 1)
}

/// Why a record is opened without a grant: the emergency, in 10 to 500 characters.
pub(super) fn break_glass_reason(raw: &str) -> Result<String> {
    reason("reason", raw, MIN_BREAK_GLASS_REASON_CHARS)
}
