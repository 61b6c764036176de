//! Privacy policy versions and consent (APPI, GDPR): a user's decisions per purpose as
//! append-only history, the current consent derived from it, and the check an
//! application runs before using data for a purpose. Every step is audited.

use super::subject_keys;
use crate::Result;
use crate::audit::{AuditEntry, AuditEvent, record};
use crate::crypto::{DataKey, FieldSlot};
use crate::deps::Deps;
use crate::error::{ServiceError, conflict_on_unique};
use crate::input::plain_text;
use crate::request::RequestMeta;
use crate::tenancy::{TenantCtx, TenantTxn};
use chrono::{DateTime, Utc};
use entity::compliance::consent_records::{self, ConsentSource};
use entity::compliance::privacy_policies;
use entity::{ConsentRecordId, PrivacyPolicyId, SealedBytes, UserId};
use sea_orm::ActiveValue::Set;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, TransactionTrait,
};
use serde::Serialize;
use serde_json::json;
use std::net::IpAddr;

/// The longest purpose name.
pub const MAX_PURPOSE_CHARS: usize = 64;

/// What data is used for (`marketing_email`, `analytics`): 1 to 64 lowercase ASCII
/// letters, digits and underscores, starting with a letter, so one purpose has one
/// spelling.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConsentPurpose(String);

impl ConsentPurpose {
    /// # Errors
    /// `Validation` naming what is wrong.
    pub fn parse(raw: &str) -> Result<Self> {
        let purpose = raw.trim();
        if purpose.is_empty() {
            return Err(ServiceError::validation("purpose", "must not be empty"));
        }
        if purpose.len() > MAX_PURPOSE_CHARS {
            return Err(ServiceError::validation(
                "purpose",
                format!("must be at most {MAX_PURPOSE_CHARS} characters"),
            ));
        }
        if !purpose.starts_with(|c: char| c.is_ascii_lowercase())
            || !purpose
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(ServiceError::validation(
                "purpose",
                "lowercase letters, digits and underscores, starting with a letter",
            ));
        }
        Ok(Self(purpose.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A policy version to publish, checked.
#[derive(Clone, Debug)]
pub struct NewPrivacyPolicy {
    title: String,
    document_url: String,
    effective_at: DateTime<Utc>,
}

impl NewPrivacyPolicy {
    /// # Errors
    /// `Validation` for an empty or overlong title, or a document URL that is not an
    /// absolute `https://` (or `http://`) URL of at most 2048 characters.
    pub fn parse(title: &str, document_url: &str, effective_at: DateTime<Utc>) -> Result<Self> {
        let title = plain_text("title", title, 200)?;
        let url = document_url.trim();
        let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
        if !scheme_ok
            || url.len() > 2048
            || url
                .split_once("://")
                .is_none_or(|(_, rest)| rest.is_empty())
            || url.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(ServiceError::validation(
                "document_url",
                "an absolute http(s) URL without spaces, at most 2048 characters",
            ));
        }
        Ok(Self {
            title,
            document_url: url.to_owned(),
            effective_at,
        })
    }
}

/// One decision of a user about one purpose.
#[derive(Clone, Debug)]
pub struct ConsentDecision {
    pub purpose: ConsentPurpose,
    pub granted: bool,
    pub source: ConsentSource,
}

/// A row of a user's consent history, with its client address opened when the reader
/// is the user themselves and the address is still readable (not erased).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConsentEntry {
    pub id: ConsentRecordId,
    pub seq: i32,
    pub purpose: String,
    pub granted: bool,
    pub policy_version: i32,
    pub source: ConsentSource,
    pub ip_address: Option<IpAddr>,
    pub recorded_at: DateTime<Utc>,
}

/// The current consent to one purpose: the newest decision about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CurrentConsent {
    pub purpose: String,
    pub granted: bool,
    pub policy_version: i32,
    pub recorded_at: DateTime<Utc>,
}

/// The answer to "may this user's data be used for this purpose now?".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ConsentCheck {
    /// Granted under the policy in effect.
    Granted { policy_version: i32 },
    /// The user never decided about the purpose.
    NotGiven,
    /// The newest decision withdrew (or refused) consent.
    Withdrawn,
    /// Granted under an earlier policy version: ask again under the current one.
    OutdatedPolicy { granted_under: i32, current: i32 },
    /// The tenant has no policy in effect, so no consent can be valid.
    NoPolicy,
}

impl ConsentCheck {
    pub fn is_granted(self) -> bool {
        matches!(self, ConsentCheck::Granted { .. })
    }

    fn reason(self) -> &'static str {
        match self {
            ConsentCheck::Granted { .. } => "granted",
            ConsentCheck::NotGiven => "not_given",
            ConsentCheck::Withdrawn => "withdrawn",
            ConsentCheck::OutdatedPolicy { .. } => "outdated_policy",
            ConsentCheck::NoPolicy => "no_policy",
        }
    }
}

fn ip_slot(row: &str) -> FieldSlot<'_> {
    FieldSlot {
        table: "consent_records",
        column: "ip_address",
        row,
    }
}

/// A consent's client address, opened with its subject's data key; `None` when none
/// was recorded or it no longer opens (sealed under a key since destroyed: erased).
pub(super) fn open_address(key: &DataKey, row: &consent_records::Model) -> Option<String> {
    let sealed = row.ip_address.as_ref()?;
    let slot_row = row.id.to_string();
    let opened = key.open(ip_slot(&slot_row), sealed.expose()).ok()?;
    String::from_utf8(opened.to_vec()).ok()
}

/// Publishes the tenant's next policy version (1 for the first). Versions take effect
/// in order: a version may not take effect before the one it follows. Records
/// `privacy_policy_updated`.
///
/// # Errors
/// `Forbidden` unless owner or admin; `Validation` for an effective instant before
/// the previous version's; `Conflict` if another version was published at the same
/// moment (retry); `Db`.
pub async fn publish_privacy_policy<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    policy: NewPrivacyPolicy,
    meta: &RequestMeta,
) -> Result<privacy_policies::Model>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = ctx.begin(db).await?;
    txn.require_member_manager()?;
    let latest = privacy_policies::Entity::find()
        .filter(privacy_policies::Column::TenantId.eq(ctx.tenant_id()))
        .order_by_desc(privacy_policies::Column::Version)
        .one(&txn)
        .await?;
    if let Some(latest) = &latest
        && policy.effective_at < latest.effective_at
    {
        return Err(ServiceError::validation(
            "effective_at",
            format!(
                "version {} takes effect at {}; the next may not take effect earlier",
                latest.version, latest.effective_at
            ),
        ));
    }
    let version = latest.map_or(1, |p| p.version + 1);
    let now = deps.now();
    let id = PrivacyPolicyId(deps.new_id(
        "privacy_policies",
        &format!("{}/{version}", ctx.tenant_id()),
    ));
    privacy_policies::Entity::insert(privacy_policies::ActiveModel {
        id: Set(id),
        tenant_id: Set(ctx.tenant_id()),
        version: Set(version),
        title: Set(policy.title),
        document_url: Set(policy.document_url),
        effective_at: Set(policy.effective_at),
        published_by: Set(Some(ctx.actor())),
        created_at: Set(now),
    })
    .exec_without_returning(&txn)
    .await
    .map_err(conflict_on_unique(
        "privacy policy",
        "another version was published at the same moment; retry",
    ))?;
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::PrivacyPolicyUpdated, meta)
            .resource("privacy_policy", id)
            .details(json!({ "version": version, "effective_at": policy.effective_at })),
    )
    .await?;
    let published = find_policy(&txn, id).await?;
    txn.commit().await?;
    Ok(published)
}

async fn find_policy<C: ConnectionTrait>(
    db: &C,
    id: PrivacyPolicyId,
) -> Result<privacy_policies::Model> {
    privacy_policies::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| ServiceError::not_found("privacy policy", id))
}

/// The policy in effect at `at`: the highest version effective by then.
///
/// # Errors
/// `Forbidden` if the context's membership ended; `Db`.
pub async fn privacy_policy_in_effect<C>(
    db: &C,
    ctx: &TenantCtx,
    at: DateTime<Utc>,
) -> Result<Option<privacy_policies::Model>>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = ctx.begin(db).await?;
    let policy = in_effect(&txn, ctx, at).await?;
    txn.commit().await?;
    Ok(policy)
}

async fn in_effect<C: ConnectionTrait>(
    db: &C,
    ctx: &TenantCtx,
    at: DateTime<Utc>,
) -> Result<Option<privacy_policies::Model>> {
    Ok(privacy_policies::Entity::find()
        .filter(privacy_policies::Column::TenantId.eq(ctx.tenant_id()))
        .filter(privacy_policies::Column::EffectiveAt.lte(at))
        .order_by_desc(privacy_policies::Column::Version)
        .one(db)
        .await?)
}

/// Records the acting user's decision about a purpose under the policy in effect:
/// `consent_recorded` for a first decision, `consent_updated` for a grant after an
/// earlier decision, `consent_withdrawn` for a withdrawal of a grant. The client
/// address is sealed under the user's data key, so erasure makes it unreadable.
///
/// # Errors
/// `Conflict` if the tenant has no policy in effect, or another decision of this user
/// was recorded at the same moment (retry); `Forbidden` if the membership ended;
/// `Crypto`; `Db`.
pub async fn record_consent<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    decision: ConsentDecision,
    meta: &RequestMeta,
) -> Result<ConsentEntry>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = ctx.begin(db).await?;
    let now = deps.now();
    let user = ctx.actor();
    let policy = in_effect(&txn, ctx, now)
        .await?
        .ok_or(ServiceError::Conflict {
            entity: "consent",
            reason: "the tenant has no privacy policy in effect to consent under",
        })?;
    let history = history_rows(&txn, ctx, user).await?;
    let seq = history.last().map_or(1, |row| row.seq + 1);
    let previous = history
        .iter()
        .rev()
        .find(|row| row.purpose == decision.purpose.as_str());
    let event = match (previous, decision.granted) {
        (None, _) => AuditEvent::ConsentRecorded,
        (Some(before), false) if before.granted => AuditEvent::ConsentWithdrawn,
        (Some(_), _) => AuditEvent::ConsentUpdated,
    };
    let id = ConsentRecordId(deps.new_id(
        "consent_records",
        &format!("{}/{user}/{seq}", ctx.tenant_id()),
    ));
    let ip_address = match meta.ip_address {
        Some(ip) => {
            let key = subject_keys::find_or_create(&txn, deps, user).await?;
            let row = id.to_string();
            let sealed = key
                .seal(ip_slot(&row), ip.to_string().as_bytes())
                .map_err(|_| ServiceError::Crypto("sealing a consent's address failed"))?;
            Some(SealedBytes::new(sealed))
        }
        None => None,
    };
    consent_records::Entity::insert(consent_records::ActiveModel {
        id: Set(id),
        tenant_id: Set(ctx.tenant_id()),
        user_id: Set(user),
        seq: Set(seq),
        purpose: Set(decision.purpose.as_str().to_owned()),
        policy_version: Set(policy.version),
        granted: Set(decision.granted),
        source: Set(decision.source),
        ip_address: Set(ip_address),
        recorded_at: Set(now),
    })
    .exec_without_returning(&txn)
    .await
    .map_err(conflict_on_unique(
        "consent",
        "another decision of this user was recorded at the same moment; retry",
    ))?;
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, event, meta)
            .resource("consent_record", id)
            .details(json!({
                "purpose": decision.purpose.as_str(),
                "granted": decision.granted,
                "policy_version": policy.version,
                "source": decision.source,
            })),
    )
    .await?;
    txn.commit().await?;
    Ok(ConsentEntry {
        id,
        seq,
        purpose: decision.purpose.as_str().to_owned(),
        granted: decision.granted,
        policy_version: policy.version,
        source: decision.source,
        ip_address: meta.ip_address,
        recorded_at: now,
    })
}

async fn history_rows<C: ConnectionTrait>(
    db: &C,
    ctx: &TenantCtx,
    user: UserId,
) -> Result<Vec<consent_records::Model>> {
    Ok(consent_records::Entity::find()
        .filter(consent_records::Column::TenantId.eq(ctx.tenant_id()))
        .filter(consent_records::Column::UserId.eq(user))
        .order_by_asc(consent_records::Column::Seq)
        .all(db)
        .await?)
}

/// The user themselves, or an owner or admin of the tenant.
fn require_self_or_manager<T>(txn: &TenantTxn<T>, user: UserId) -> Result<()> {
    if txn.actor() == user || txn.is_owner_or_admin() {
        Ok(())
    } else {
        Err(ServiceError::Forbidden {
            reason: "only the user, or an owner or admin of the tenant, reads their consent",
        })
    }
}

/// The user's whole consent history in the tenant, oldest first. Records
/// `consent_history_accessed`.
///
/// # Errors
/// `Forbidden` unless the actor is the user or an owner or admin; `Crypto` if the
/// user's data key does not open; `Db`.
pub async fn consent_history<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    user: UserId,
    meta: &RequestMeta,
) -> Result<Vec<ConsentEntry>>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = ctx.begin(db).await?;
    require_self_or_manager(&txn, user)?;
    let rows = history_rows(&txn, ctx, user).await?;
    // Only the user reads their own addresses; others see the decisions.
    let key = if user == ctx.actor() {
        subject_keys::find(&txn, deps, user).await?
    } else {
        None
    };
    let entries: Vec<ConsentEntry> = rows
        .into_iter()
        .map(|row| {
            let ip_address = key
                .as_ref()
                .and_then(|key| open_address(key, &row))
                .and_then(|address| address.parse().ok());
            ConsentEntry {
                id: row.id,
                seq: row.seq,
                purpose: row.purpose,
                granted: row.granted,
                policy_version: row.policy_version,
                source: row.source,
                ip_address,
                recorded_at: row.recorded_at,
            }
        })
        .collect();
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::ConsentHistoryAccessed, meta)
            .resource("user", user)
            .details(json!({ "records": entries.len() })),
    )
    .await?;
    txn.commit().await?;
    Ok(entries)
}

/// The user's current consent per purpose (the newest decision about each), by
/// purpose name. Records `consent_read`.
///
/// # Errors
/// `Forbidden` unless the actor is the user or an owner or admin; `Db`.
pub async fn current_consents<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    user: UserId,
    meta: &RequestMeta,
) -> Result<Vec<CurrentConsent>>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = ctx.begin(db).await?;
    require_self_or_manager(&txn, user)?;
    let current = derive_current(history_rows(&txn, ctx, user).await?);
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::ConsentRead, meta)
            .resource("user", user)
            .details(json!({ "purposes": current.len() })),
    )
    .await?;
    txn.commit().await?;
    Ok(current)
}

/// The newest decision per purpose, by purpose name; `rows` in `seq` order.
fn derive_current(rows: Vec<consent_records::Model>) -> Vec<CurrentConsent> {
    let mut by_purpose = std::collections::BTreeMap::new();
    for row in rows {
        by_purpose.insert(row.purpose.clone(), row);
    }
    by_purpose
        .into_values()
        .map(|row| CurrentConsent {
            purpose: row.purpose,
            granted: row.granted,
            policy_version: row.policy_version,
            recorded_at: row.recorded_at,
        })
        .collect()
}

/// Whether the user's data may be used for `purpose` now: their newest decision about
/// it grants it, under the policy version in effect. Records `consent_validated` or
/// `consent_validation_failed` (with the reason), in the caller's tenant.
///
/// # Errors
/// `Forbidden` unless the actor is the user or an owner or admin; `Db`.
pub async fn check_consent<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    user: UserId,
    purpose: &ConsentPurpose,
    meta: &RequestMeta,
) -> Result<ConsentCheck>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = ctx.begin(db).await?;
    require_self_or_manager(&txn, user)?;
    let check = evaluate(&txn, ctx, user, purpose, deps.now()).await?;
    let event = if check.is_granted() {
        AuditEvent::ConsentValidated
    } else {
        AuditEvent::ConsentValidationFailed
    };
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, event, meta)
            .resource("user", user)
            .details(json!({ "purpose": purpose.as_str(), "result": check.reason() })),
    )
    .await?;
    txn.commit().await?;
    Ok(check)
}

/// [`check_consent`] as a yes or no.
///
/// # Errors
/// As [`check_consent`].
pub async fn has_consented<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    user: UserId,
    purpose: &ConsentPurpose,
    meta: &RequestMeta,
) -> Result<bool>
where
    C: ConnectionTrait + TransactionTrait,
{
    Ok(check_consent(db, deps, ctx, user, purpose, meta)
        .await?
        .is_granted())
}

async fn evaluate<C: ConnectionTrait>(
    txn: &C,
    ctx: &TenantCtx,
    user: UserId,
    purpose: &ConsentPurpose,
    now: DateTime<Utc>,
) -> Result<ConsentCheck> {
    let Some(policy) = in_effect(txn, ctx, now).await? else {
        return Ok(ConsentCheck::NoPolicy);
    };
    let newest = consent_records::Entity::find()
        .filter(consent_records::Column::TenantId.eq(ctx.tenant_id()))
        .filter(consent_records::Column::UserId.eq(user))
        .filter(consent_records::Column::Purpose.eq(purpose.as_str()))
        .order_by_desc(consent_records::Column::Seq)
        .one(txn)
        .await?;
    Ok(match newest {
        None => ConsentCheck::NotGiven,
        Some(row) if !row.granted => ConsentCheck::Withdrawn,
        Some(row) if row.policy_version != policy.version => ConsentCheck::OutdatedPolicy {
            granted_under: row.policy_version,
            current: policy.version,
        },
        Some(row) => ConsentCheck::Granted {
            policy_version: row.policy_version,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purposes_have_one_spelling() {
        assert_eq!(
            ConsentPurpose::parse(" marketing_email ").unwrap().as_str(),
            "marketing_email"
        );
        for bad in [
            "",
            "Marketing",
            "1st",
            "_x",
            "a-b",
            "émail",
            &"a".repeat(65),
        ] {
            assert!(ConsentPurpose::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn policy_urls_are_absolute() {
        let at = Utc::now();
        assert!(NewPrivacyPolicy::parse("Privacy", "https://example.com/p/2", at).is_ok());
        for bad in ["example.com", "https://", "ftp://x", "https://a b", ""] {
            assert!(
                NewPrivacyPolicy::parse("Privacy", bad, at).is_err(),
                "{bad:?}"
            );
        }
        assert!(NewPrivacyPolicy::parse(" ", "https://example.com", at).is_err());
    }
}
