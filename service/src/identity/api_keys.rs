//! API keys: a tenant's credentials for machine clients.
//!
//! A key reads `sk_<env>_<body>_<check>`: `env` is `live` or `test`
//! ([`ServiceConfig::api_key_environment`](crate::ServiceConfig)), `body` is 32 bytes
//! of randomness in base62 (43 characters), `check` the SHA-256 of everything before
//! it, its first 8 bytes as a big-endian number written as its lowest 6 base62 digits. The checksum lets [`parse_api_key`] refuse a
//! mistyped or truncated key before any query. Only the SHA-256 of the whole key and
//! its visible prefix (`sk_test_` and 8 characters of the body) are stored; the key
//! itself is returned once, as an [`ApiKeySecret`].
//!
//! Rotation issues a successor and leaves the old key working until a grace deadline;
//! revocation ends a key at once. Keys are managed by the tenant's owners and admins,
//! as the rest of access is, so no permission gates its own administration. What a
//! key's scopes allow is for the application to enforce on each request: they come
//! back from [`authenticate_api_key`].

use super::tokens::{ClearToken, TokenKind, sha256_hex};
use crate::audit::{AuditEntry, AuditEvent, record};
use crate::deps::{ApiKeyEnvironment, Deps};
use crate::error::{ServiceError, conflict_on_unique};
use crate::input::ApiKeyName;
use crate::request::RequestMeta;
use crate::sql::{backend_of, read_in_one_round_trip};
use crate::tenancy::{TenantCtx, set_row_security_context};
use crate::{Result, begin_write};
use chrono::{DateTime, Duration, Utc};
use entity::access::permissions;
use entity::audit::audit_logs::AuditOutcome;
use entity::identity::api_keys;
use entity::tenancy::tenants;
use entity::{ApiKeyId, TenantId, TokenHash, UserId};
use sea_orm::sea_query::{Asterisk, Expr, Func, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend, DbErr,
    DerivePartialModel, EntityTrait, FromQueryResult, IdenStatic, PartialModelTrait, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, TransactionTrait,
};
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use subtle::ConstantTimeEq;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// 62^43 > 2^256: 43 characters hold 32 bytes.
const BODY_LEN: usize = 43;
const CHECK_LEN: usize = 6;
/// Characters of the body shown in the stored prefix: enough to tell keys apart,
/// far too few (48 bits of 256) to help guess one.
const PREFIX_BODY_LEN: usize = 8;
/// Longer input is refused before it is even hashed.
const MAX_KEY_LEN: usize = 64;
const MAX_SCOPES: usize = 64;
/// `last_used_at` is written at most this often per key, so a busy key does not turn
/// every request into a row update.
const LAST_USED_RESOLUTION: Duration = Duration::minutes(1);

/// Why a presented string is not an API key. Each is decided without the database.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyFormatError {
    #[error("it is longer than any key")]
    TooLong,
    #[error("it does not have the shape sk_<env>_<body>_<check>")]
    Shape,
    #[error("its environment is neither live nor test")]
    UnknownEnvironment,
    #[error("it is a {found} key, and this service accepts {expected} keys")]
    WrongEnvironment {
        found: &'static str,
        expected: &'static str,
    },
    #[error("its body or checksum has the wrong length or a character outside base62")]
    Encoding,
    #[error("its checksum does not match (mistyped or truncated)")]
    Checksum,
}

/// Marks a [`ClearToken`] as an API key.
#[derive(Debug)]
pub enum ApiKeyKind {}

impl TokenKind for ApiKeyKind {
    const NAME: &'static str = "ApiKeySecret";
}

/// An API key in the clear, returned once when a key is created or rotated.
pub type ApiKeySecret = ClearToken<ApiKeyKind>;

/// A presented key that has the right shape, environment and checksum.
#[derive(Clone, PartialEq, Eq)]
pub struct ParsedApiKey {
    hash: TokenHash,
    prefix: String,
}

impl ParsedApiKey {
    /// The visible prefix, as stored (`sk_test_AbCd1234`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

impl std::fmt::Debug for ParsedApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParsedApiKey")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Checks a presented key's shape, environment and checksum, without the database.
///
/// # Errors
/// [`ApiKeyFormatError`], saying what is wrong (never echoing the key).
pub fn parse_api_key(
    presented: &str,
    environment: ApiKeyEnvironment,
) -> std::result::Result<ParsedApiKey, ApiKeyFormatError> {
    if presented.len() > MAX_KEY_LEN {
        return Err(ApiKeyFormatError::TooLong);
    }
    let mut parts = presented.split('_');
    let (Some("sk"), Some(env), Some(body), Some(check), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(ApiKeyFormatError::Shape);
    };
    let found = match env {
        "live" => ApiKeyEnvironment::Live,
        "test" => ApiKeyEnvironment::Test,
        _ => return Err(ApiKeyFormatError::UnknownEnvironment),
    };
    if found != environment {
        return Err(ApiKeyFormatError::WrongEnvironment {
            found: found.as_str(),
            expected: environment.as_str(),
        });
    }
    let base62 = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric());
    if body.len() != BODY_LEN || check.len() != CHECK_LEN || !base62(body) || !base62(check) {
        return Err(ApiKeyFormatError::Encoding);
    }
    let unchecked = &presented[..presented.len() - CHECK_LEN - 1];
    if !bool::from(checksum(unchecked).as_bytes().ct_eq(check.as_bytes())) {
        return Err(ApiKeyFormatError::Checksum);
    }
    Ok(ParsedApiKey {
        hash: TokenHash::new(sha256_hex(presented)),
        prefix: visible_prefix(found, body),
    })
}

fn visible_prefix(environment: ApiKeyEnvironment, body: &str) -> String {
    format!("sk_{}_{}", environment.as_str(), &body[..PREFIX_BODY_LEN])
}

/// The SHA-256 of `text`: its first 8 bytes as a big-endian number, written as its
/// lowest 6 base62 digits (the number modulo 62^6), zero-padded.
fn checksum(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    base62(&digest[..8], CHECK_LEN)
}

/// `bytes` as a big-endian number in base62, the lowest `width` digits, zero-padded.
fn base62(bytes: &[u8], width: usize) -> String {
    let mut number = bytes.to_vec();
    let mut digits = Vec::with_capacity(width);
    for _ in 0..width {
        // One long division of the whole number by 62.
        let mut remainder = 0u32;
        for byte in number.iter_mut() {
            let value = (remainder << 8) | u32::from(*byte);
            *byte = (value / 62) as u8;
            remainder = value % 62;
        }
        digits.push(BASE62[remainder as usize]);
    }
    digits.reverse();
    String::from_utf8(digits).unwrap_or_default()
}

fn generate(deps: &Deps) -> (ApiKeySecret, String) {
    let environment = deps.config.api_key_environment;
    let bytes: [u8; 32] = deps.random_bytes();
    let body = base62(&bytes, BODY_LEN);
    let unchecked = format!("sk_{}_{body}", environment.as_str());
    let check = checksum(&unchecked);
    (
        ApiKeySecret::new(format!("{unchecked}_{check}")),
        visible_prefix(environment, &body),
    )
}

/// An API key as the service shows it: every column but the hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub tenant_id: TenantId,
    pub created_by: Option<UserId>,
    pub name: String,
    pub prefix: String,
    pub scopes: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub replaced_by: Option<ApiKeyId>,
    pub grace_ends_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ApiKey {
    /// Why the key does not work at `now`, if it does not.
    fn refusal(&self, now: DateTime<Utc>) -> Option<(ServiceError, &'static str)> {
        if self.revoked_at.is_some() {
            return Some((ServiceError::ApiKeyRevoked, "revoked"));
        }
        if let Some(at) = self.grace_ends_at.filter(|at| *at <= now) {
            return Some((ServiceError::ApiKeyReplaced { at }, "replaced"));
        }
        if let Some(at) = self.expires_at.filter(|at| *at <= now) {
            return Some((
                ServiceError::Expired {
                    what: "API key",
                    at,
                },
                "expired",
            ));
        }
        None
    }
}

/// A key's row without its hash: what the runtime role may read.
#[derive(Clone, Debug, DerivePartialModel)]
#[sea_orm(entity = "api_keys::Entity")]
struct ApiKeyRow {
    id: ApiKeyId,
    tenant_id: TenantId,
    created_by: Option<UserId>,
    name: String,
    prefix: String,
    scopes: Json,
    expires_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    replaced_by: Option<ApiKeyId>,
    grace_ends_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = ServiceError;

    fn try_from(row: ApiKeyRow) -> Result<Self> {
        let scopes = serde_json::from_value(row.scopes).map_err(|e| {
            DbErr::Type(format!(
                "api_keys.scopes of {} is not a list of names: {e}",
                row.id
            ))
        })?;
        Ok(Self {
            id: row.id,
            tenant_id: row.tenant_id,
            created_by: row.created_by,
            name: row.name,
            prefix: row.prefix,
            scopes,
            expires_at: row.expires_at,
            last_used_at: row.last_used_at,
            revoked_at: row.revoked_at,
            replaced_by: row.replaced_by,
            grace_ends_at: row.grace_ends_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// A key just created or rotated: its stored state, and the key itself, to hand to
/// its holder now (it cannot be shown again).
#[derive(Debug)]
pub struct IssuedApiKey {
    pub key: ApiKey,
    pub secret: ApiKeySecret,
}

/// What to create. `scopes` are permission names, `resource:action`, each naming a
/// permission of the catalogue, or `*` in place of a catalogued resource or action
/// (`agents:*`, `*:read`), or `*:*`.
#[derive(Clone, Debug)]
pub struct NewApiKey {
    pub name: String,
    pub scopes: Vec<String>,
    /// `None`: the key works until revoked.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A key that authenticated: whose it is and what it may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthenticatedApiKey {
    pub key_id: ApiKeyId,
    pub tenant_id: TenantId,
    pub scopes: Vec<String>,
}

/// The shape checks of scopes: deduplicated and sorted, so equal sets store equally.
fn parse_scopes(raw: &[String]) -> Result<Vec<String>> {
    if raw.is_empty() {
        return Err(ServiceError::validation(
            "scopes",
            "name at least one scope",
        ));
    }
    if raw.len() > MAX_SCOPES {
        return Err(ServiceError::validation(
            "scopes",
            format!("at most {MAX_SCOPES} scopes"),
        ));
    }
    let mut scopes = BTreeSet::new();
    for scope in raw {
        let scope = scope.trim();
        let Some((resource, action)) = scope.split_once(':') else {
            return Err(ServiceError::validation(
                "scopes",
                format!("{scope:?} is not resource:action"),
            ));
        };
        crate::input::PermissionPart::parse("scopes", resource)?;
        crate::input::PermissionPart::parse("scopes", action)?;
        scopes.insert(scope.to_owned());
    }
    Ok(scopes.into_iter().collect())
}

/// Refuses scopes that name nothing the catalogue knows: a typo would otherwise make
/// a key that silently cannot do what it was made for.
async fn check_scopes_exist<C: ConnectionTrait>(db: &C, scopes: &[String]) -> Result<()> {
    let catalogue: Vec<(String, String)> = permissions::Entity::find()
        .select_only()
        .column(permissions::Column::Resource)
        .column(permissions::Column::Action)
        .into_tuple()
        .all(db)
        .await?;
    let names: BTreeSet<String> = catalogue.iter().map(|(r, a)| format!("{r}:{a}")).collect();
    let resources: BTreeSet<&str> = catalogue.iter().map(|(r, _)| r.as_str()).collect();
    let actions: BTreeSet<&str> = catalogue.iter().map(|(_, a)| a.as_str()).collect();
    for scope in scopes {
        let known = names.contains(scope)
            || match scope.split_once(':') {
                Some(("*", "*")) => true,
                Some((resource, "*")) => resources.contains(resource),
                Some(("*", action)) => actions.contains(action),
                _ => false,
            };
        if !known {
            return Err(ServiceError::validation(
                "scopes",
                format!("{scope:?} names no permission of the catalogue"),
            ));
        }
    }
    Ok(())
}

async fn find_key<C: ConnectionTrait>(db: &C, tenant: TenantId, id: ApiKeyId) -> Result<ApiKey> {
    api_keys::Entity::find_by_id(id)
        .filter(api_keys::Column::TenantId.eq(tenant))
        .into_partial_model::<ApiKeyRow>()
        .one(db)
        .await?
        .ok_or_else(|| ServiceError::not_found("API key", id))?
        .try_into()
}

/// Inserts a new key (without RETURNING: the runtime role cannot read the hash back).
async fn insert_key<C: ConnectionTrait>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    name: &str,
    scopes: &[String],
    expires_at: Option<DateTime<Utc>>,
) -> Result<IssuedApiKey> {
    use sea_orm::ActiveValue::Set;
    let now = deps.now();
    let (secret, prefix) = generate(deps);
    let id = ApiKeyId(deps.new_id("api_keys", &format!("{}/{name}", ctx.tenant_id())));
    api_keys::Entity::insert(api_keys::ActiveModel {
        id: Set(id),
        tenant_id: Set(ctx.tenant_id()),
        created_by: Set(Some(ctx.actor())),
        name: Set(name.to_owned()),
        prefix: Set(prefix),
        key_hash: Set(secret.hash()),
        scopes: Set(json!(scopes)),
        expires_at: Set(expires_at),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    })
    .exec_without_returning(db)
    .await
    .map_err(conflict_on_unique(
        "API key",
        "the generated key exists already",
    ))?;
    let key = find_key(db, ctx.tenant_id(), id).await?;
    Ok(IssuedApiKey { key, secret })
}

/// Creates a key for the context's tenant. Only owners and admins may. Records
/// `api_key_created` (name, prefix and scopes; never the key).
///
/// # Errors
/// `Validation` for a bad name, malformed or unknown scopes, or an expiry in the
/// past (nothing is written); `Forbidden` unless owner or admin; `Db`.
pub async fn create_api_key<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    input: NewApiKey,
    meta: &RequestMeta,
) -> Result<IssuedApiKey>
where
    C: ConnectionTrait + TransactionTrait,
{
    let name = ApiKeyName::parse(&input.name)?;
    let scopes = parse_scopes(&input.scopes)?;
    if input.expires_at.is_some_and(|at| at <= deps.now()) {
        return Err(ServiceError::validation(
            "expires_at",
            "must be in the future",
        ));
    }
    let txn = ctx.begin(db).await?;
    txn.require_member_manager()?;
    check_scopes_exist(&txn, &scopes).await?;
    let issued = insert_key(&txn, deps, ctx, name.as_str(), &scopes, input.expires_at).await?;
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::ApiKeyCreated, meta)
            .resource("api_key", issued.key.id)
            .risk(30)
            .details(json!({
                "name": issued.key.name,
                "prefix": issued.key.prefix,
                "scopes": issued.key.scopes,
                "expires_at": issued.key.expires_at,
            })),
    )
    .await?;
    txn.commit().await?;
    Ok(issued)
}

/// The context's tenant's keys, newest first, revoked and replaced ones included.
/// Never returns a hash. Only owners and admins may list them.
///
/// # Errors
/// `Forbidden`; `Db`.
pub async fn list_api_keys<C>(db: &C, ctx: &TenantCtx) -> Result<Vec<ApiKey>>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = ctx.begin(db).await?;
    txn.require_member_manager()?;
    let rows = api_keys::Entity::find()
        .filter(api_keys::Column::TenantId.eq(ctx.tenant_id()))
        .order_by_desc(api_keys::Column::CreatedAt)
        .order_by_desc(api_keys::Column::Id)
        .into_partial_model::<ApiKeyRow>()
        .all(&txn)
        .await?;
    txn.commit().await?;
    rows.into_iter().map(ApiKey::try_from).collect()
}

/// Revokes a key of the context's tenant at once (a key in its rotation grace period
/// too). Records `api_key_revoked`.
///
/// # Errors
/// `Forbidden`; `NotFound` for no such key in this tenant; `Conflict` if it was
/// revoked already; `Db`.
pub async fn revoke_api_key<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    key_id: ApiKeyId,
    meta: &RequestMeta,
) -> Result<ApiKey>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = ctx.begin(db).await?;
    txn.require_member_manager()?;
    let key = find_key(&txn, ctx.tenant_id(), key_id).await?;
    let now = deps.now();
    // Conditional, so two revocations cannot both succeed and both be recorded.
    let changed = api_keys::Entity::update_many()
        .col_expr(api_keys::Column::RevokedAt, Expr::value(now))
        .col_expr(api_keys::Column::UpdatedAt, Expr::value(now))
        .filter(api_keys::Column::Id.eq(key.id))
        .filter(api_keys::Column::TenantId.eq(ctx.tenant_id()))
        .filter(api_keys::Column::RevokedAt.is_null())
        .exec(&txn)
        .await?;
    if changed.rows_affected != 1 {
        return Err(ServiceError::Conflict {
            entity: "API key",
            reason: "it is revoked already",
        });
    }
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::ApiKeyRevoked, meta)
            .resource("api_key", key.id)
            .details(json!({ "name": key.name, "prefix": key.prefix })),
    )
    .await?;
    let key = find_key(&txn, ctx.tenant_id(), key_id).await?;
    txn.commit().await?;
    Ok(key)
}

/// Replaces a key with a new one (same name, scopes and expiry); the old key keeps
/// working for `grace` (zero ends it now), so clients can switch without downtime.
/// Records `api_key_rotated`.
///
/// # Errors
/// `Validation` for a negative grace or one longer than
/// `ServiceConfig::api_key_max_rotation_grace`; `Forbidden`; `NotFound`;
/// `Conflict` for a key that is revoked, expired or replaced already; `Db`.
pub async fn rotate_api_key<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    key_id: ApiKeyId,
    grace: Duration,
    meta: &RequestMeta,
) -> Result<IssuedApiKey>
where
    C: ConnectionTrait + TransactionTrait,
{
    let max = deps.config.api_key_max_rotation_grace;
    if grace < Duration::zero() || grace > max {
        return Err(ServiceError::validation(
            "grace",
            format!("must be between 0 and {} hours", max.num_hours()),
        ));
    }
    let txn = ctx.begin(db).await?;
    txn.require_member_manager()?;
    let old = find_key(&txn, ctx.tenant_id(), key_id).await?;
    let now = deps.now();
    if old.replaced_by.is_some() || old.refusal(now).is_some() {
        return Err(ServiceError::Conflict {
            entity: "API key",
            reason: "only a working key that was not replaced yet can be rotated",
        });
    }
    let issued = insert_key(&txn, deps, ctx, &old.name, &old.scopes, old.expires_at).await?;
    let grace_ends_at = now + grace;
    // Conditional, so of two concurrent rotations one fails (and rolls back its key).
    let changed = api_keys::Entity::update_many()
        .col_expr(api_keys::Column::ReplacedBy, Expr::value(issued.key.id))
        .col_expr(api_keys::Column::GraceEndsAt, Expr::value(grace_ends_at))
        .col_expr(api_keys::Column::UpdatedAt, Expr::value(now))
        .filter(api_keys::Column::Id.eq(old.id))
        .filter(api_keys::Column::TenantId.eq(ctx.tenant_id()))
        .filter(api_keys::Column::ReplacedBy.is_null())
        .filter(api_keys::Column::RevokedAt.is_null())
        .exec(&txn)
        .await?;
    if changed.rows_affected != 1 {
        return Err(ServiceError::Conflict {
            entity: "API key",
            reason: "only a working key that was not replaced yet can be rotated",
        });
    }
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::ApiKeyRotated, meta)
            .resource("api_key", old.id)
            .risk(30)
            .details(json!({
                "name": old.name,
                "old_prefix": old.prefix,
                "new_key_id": issued.key.id,
                "new_prefix": issued.key.prefix,
                "grace_ends_at": grace_ends_at,
            })),
    )
    .await?;
    txn.commit().await?;
    Ok(issued)
}

/// A presented key's state, and whether its tenant is active, by the key's hash: one
/// round trip (see [`read_in_one_round_trip`]). On PostgreSQL through
/// `app_api_key_authenticate`: the runtime role cannot read hashes, and no tenant is
/// known before the key is. Elsewhere the stored hash is read too and compared in
/// constant time.
async fn presented_key(
    db: &DatabaseConnection,
    hash: &TokenHash,
) -> Result<Option<(ApiKey, bool)>> {
    let postgres = backend_of(db)? == DbBackend::Postgres;
    let query = if postgres {
        Query::select()
            .column(Asterisk)
            .from_function(
                Func::cust("app_api_key_authenticate").arg(Expr::val(hash.expose())),
                "api_key",
            )
            .to_owned()
    } else {
        ApiKeyRow::select_cols(api_keys::Entity::find().select_only())
            .column_as(tenants::Column::IsActive, "tenant_active")
            .column(api_keys::Column::KeyHash)
            .inner_join(tenants::Entity)
            .filter(api_keys::Column::KeyHash.eq(hash.clone()))
            .into_query()
    };
    let rows = read_in_one_round_trip(db, &query).await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    if !postgres {
        let stored: TokenHash = row.try_get("", api_keys::Column::KeyHash.as_str())?;
        if !bool::from(stored.expose().as_bytes().ct_eq(hash.expose().as_bytes())) {
            return Ok(None);
        }
    }
    let key = ApiKeyRow::from_query_result(row, "")?.try_into()?;
    Ok(Some((key, row.try_get("", "tenant_active")?)))
}

/// Authenticates a presented API key: its tenant, id and scopes. The key's format is
/// checked first, without the database; then the key and its tenant are read in one
/// round trip. `last_used_at` is brought up to date if it is more than a minute old.
/// A revoked, expired or replaced key records `api_key_rejected` in its tenant's
/// trail, committed before the error returns (this takes a connection, not a
/// transaction, so no caller can roll it back). A key nobody issued is not recorded:
/// anyone can make up well-formed keys, and each would cost a row.
///
/// # Errors
/// `MalformedApiKey` (no query ran); `InvalidToken` for a key never issued;
/// `ApiKeyRevoked`; `ApiKeyReplaced` after a rotation's grace period; `Expired`;
/// `Forbidden` for a key of a deactivated tenant; `Db`.
pub async fn authenticate_api_key(
    db: &DatabaseConnection,
    deps: &Deps,
    presented: &str,
    meta: &RequestMeta,
) -> Result<AuthenticatedApiKey> {
    let parsed = parse_api_key(presented, deps.config.api_key_environment)?;
    let Some((key, tenant_active)) = presented_key(db, &parsed.hash).await? else {
        return Err(ServiceError::InvalidToken);
    };
    let tenant_id = key.tenant_id;
    let now = deps.now();
    if let Some((error, reason)) = key.refusal(now) {
        let txn = begin_write(db).await?;
        set_row_security_context(&txn, Some(tenant_id), None).await?;
        record(
            &txn,
            deps,
            AuditEntry::new(AuditEvent::ApiKeyRejected, AuditOutcome::Denied, meta)
                .tenant(tenant_id)
                .resource("api_key", key.id)
                .risk(70)
                .details(json!({ "reason": reason, "prefix": key.prefix })),
        )
        .await?;
        txn.commit().await?;
        return Err(error);
    }
    if !tenant_active {
        return Err(ServiceError::Forbidden {
            reason: "the key's tenant is deactivated",
        });
    }
    // At most one write a minute per key, and no statement at all while the stamp is
    // fresh; concurrent requests race harmlessly (the condition lets one through).
    let stale_before = now - LAST_USED_RESOLUTION;
    if key.last_used_at.is_none_or(|at| at < stale_before) {
        let txn = begin_write(db).await?;
        set_row_security_context(&txn, Some(tenant_id), None).await?;
        api_keys::Entity::update_many()
            .col_expr(api_keys::Column::LastUsedAt, Expr::value(now))
            .filter(api_keys::Column::Id.eq(key.id))
            .filter(api_keys::Column::TenantId.eq(tenant_id))
            .filter(
                Condition::any()
                    .add(api_keys::Column::LastUsedAt.is_null())
                    .add(api_keys::Column::LastUsedAt.lt(stale_before)),
            )
            .exec(&txn)
            .await?;
        txn.commit().await?;
    }
    Ok(AuthenticatedApiKey {
        key_id: key.id,
        tenant_id,
        scopes: key.scopes,
    })
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn base62_is_fixed_width_and_covers_32_bytes() {
        assert_eq!(base62(&[0; 32], BODY_LEN), "0".repeat(BODY_LEN));
        let max = base62(&[0xff; 32], BODY_LEN);
        assert_eq!(max.len(), BODY_LEN);
        assert_ne!(&max[..1], "0", "2^256 - 1 needs all 43 digits");
        assert_eq!(base62(&[0, 61], 2), "0z");
        assert_eq!(base62(&[0, 62], 2), "10");
    }
}
