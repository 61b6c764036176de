//! Input newtypes. Each is parsed once, at the boundary, with a typed error naming
//! the field; once you hold one, it is valid.

use crate::error::ServiceError;
use email_address::{EmailAddress, Options};
use std::fmt;
use unicode_normalization::UnicodeNormalization;

/// Longest email accepted: the 254 characters an SMTP path can carry (RFC 5321).
pub const MAX_EMAIL_CHARS: usize = 254;
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Argon2 accepts far more; the cap stops multi-megabyte "passwords" from costing CPU.
pub const MAX_PASSWORD_CHARS: usize = 128;
pub const MAX_DISPLAY_NAME_CHARS: usize = 100;
pub const MAX_TENANT_NAME_CHARS: usize = 255;

/// A syntactically valid email address, normalised: Unicode NFKC (so full-width and
/// other compatibility forms of one address are one address), trimmed, lowercased.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, ServiceError> {
        // Cap before normalising: NFKC may expand a string, and unbounded input should
        // not cost unbounded work.
        if raw.chars().count() > 4 * MAX_EMAIL_CHARS {
            return Err(ServiceError::validation(
                "email",
                format!("must be at most {MAX_EMAIL_CHARS} characters"),
            ));
        }
        let normalised: String = raw.nfkc().collect();
        let trimmed = normalised.trim();
        if trimmed.is_empty() {
            return Err(ServiceError::validation("email", "must not be empty"));
        }
        if trimmed.chars().count() > MAX_EMAIL_CHARS {
            return Err(ServiceError::validation(
                "email",
                format!("must be at most {MAX_EMAIL_CHARS} characters"),
            ));
        }
        // A bare address with a dotted domain: "Name <a@b.c>", "a@[1.2.3.4]" and
        // "a@localhost" are valid RFC 5322 but not addresses users sign up with.
        let options = Options::default()
            .without_display_text()
            .without_domain_literal()
            .with_required_tld();
        EmailAddress::parse_with_options(trimmed, options).map_err(|e| {
            ServiceError::validation("email", format!("is not a valid address ({e})"))
        })?;
        Ok(Self(trimmed.to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({:?})", self.0)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A password as typed. Never printed.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Checks the length policy; use for new passwords.
    pub fn new(raw: &str) -> Result<Self, ServiceError> {
        let chars = raw.chars().count();
        if chars < MIN_PASSWORD_CHARS {
            return Err(ServiceError::validation(
                "password",
                format!("must be at least {MIN_PASSWORD_CHARS} characters"),
            ));
        }
        Self::for_verification(raw)
    }

    /// Only caps the length; use for a password being checked, so that a policy
    /// change never locks out an account with an older, shorter password.
    pub fn for_verification(raw: &str) -> Result<Self, ServiceError> {
        if raw.is_empty() {
            return Err(ServiceError::validation("password", "must not be empty"));
        }
        if raw.chars().count() > MAX_PASSWORD_CHARS {
            return Err(ServiceError::validation(
                "password",
                format!("must be at most {MAX_PASSWORD_CHARS} characters"),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

/// Trimmed, non-empty, at most `max` characters, no control characters.
pub(crate) fn plain_text(
    field: &'static str,
    raw: &str,
    max: usize,
) -> Result<String, ServiceError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(ServiceError::validation(field, "must not be empty"));
    }
    if trimmed.chars().count() > max {
        return Err(ServiceError::validation(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(ServiceError::validation(
            field,
            "must not contain control characters",
        ));
    }
    Ok(trimmed.to_owned())
}

/// How a person is shown to others, e.g. "Alice Anderson" or "佐藤 花子".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(raw: &str) -> Result<Self, ServiceError> {
        plain_text("display_name", raw, MAX_DISPLAY_NAME_CHARS).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantName(String);

impl TenantName {
    pub fn parse(raw: &str) -> Result<Self, ServiceError> {
        plain_text("name", raw, MAX_TENANT_NAME_CHARS).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A tenant's handle: 3 to 63 of `a-z`, `0-9` and inner `-`, so it is usable as a
/// DNS label and a PostgreSQL schema name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Slug(String);

impl Slug {
    pub fn parse(raw: &str) -> Result<Self, ServiceError> {
        let s = raw.trim();
        let len = s.chars().count();
        if !(3..=63).contains(&len) {
            return Err(ServiceError::validation(
                "slug",
                "must be 3 to 63 characters",
            ));
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(ServiceError::validation(
                "slug",
                "may contain only lowercase letters, digits and '-'",
            ));
        }
        if s.starts_with('-') || s.ends_with('-') {
            return Err(ServiceError::validation(
                "slug",
                "must not start or end with '-'",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An IANA time zone name such as `Asia/Tokyo` (checked for shape, not against tzdata).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timezone(String);

impl Timezone {
    pub fn parse(raw: &str) -> Result<Self, ServiceError> {
        let s = raw.trim();
        let shaped = !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "/_+-".contains(c))
            && !s.starts_with('/')
            && !s.ends_with('/');
        if !shaped {
            return Err(ServiceError::validation(
                "timezone",
                "must be an IANA zone name such as UTC or Asia/Tokyo",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn utc() -> Self {
        Self("UTC".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A BCP 47 language tag such as `en` or `ja-JP` (checked for shape).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Language(String);

impl Language {
    pub fn parse(raw: &str) -> Result<Self, ServiceError> {
        let s = raw.trim();
        let shaped = !s.is_empty()
            && s.len() <= 35
            && s.split('-').all(|part| {
                (1..=8).contains(&part.len()) && part.chars().all(|c| c.is_ascii_alphanumeric())
            })
            && s.split('-')
                .next()
                .is_some_and(|p| p.chars().all(|c| c.is_ascii_alphabetic()));
        if !shaped {
            return Err(ServiceError::validation(
                "language",
                "must be a language tag such as en or ja-JP",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn english() -> Self {
        Self("en".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A resource or action name in a permission, such as `agents` or `run`, or the
/// wildcard `*`: 1 to 64 of `a-z`, `0-9`, `_`, `-`, `.`, `:`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PermissionPart(String);

impl PermissionPart {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, ServiceError> {
        let s = raw.trim();
        let shaped = s == "*"
            || ((1..=64).contains(&s.len())
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-.:".contains(c)));
        if !shaped {
            return Err(ServiceError::validation(
                field,
                "must be `*` or 1 to 64 of a-z, 0-9, '_', '-', '.', ':'",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A role's name: 1 to 64 of `a-z`, `0-9`, `_`, `-` (e.g. `org_admin`, `physician`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RoleName(String);

impl RoleName {
    pub fn parse(raw: &str) -> Result<Self, ServiceError> {
        let s = raw.trim();
        let shaped = (1..=64).contains(&s.len())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !shaped {
            return Err(ServiceError::validation(
                "role",
                "must be 1 to 64 of a-z, 0-9, '_', '-'",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A team's name, unique within its tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TeamName(String);

impl TeamName {
    pub fn parse(raw: &str) -> Result<Self, ServiceError> {
        plain_text("team", raw, 100).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A deny policy's name, unique within its tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyName(String);

impl PolicyName {
    pub fn parse(raw: &str) -> Result<Self, ServiceError> {
        plain_text("name", raw, 100).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An API key's name, for people telling keys apart (e.g. "CI deploy").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKeyName(String);

impl ApiKeyName {
    pub fn parse(raw: &str) -> Result<Self, ServiceError> {
        plain_text("name", raw, 100).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}
