//! Payment records: a tenant's customer at a payment provider, its payment methods and
//! its payment intents, created through a [`PaymentProvider`] chosen by the customer's
//! country ([`ProviderRouter`]).
//!
//! No real provider is called here. [`RecordingProvider`] stands in for Stripe and for
//! Conekta in process: it makes up provider ids from [`Deps`]'s randomness (a
//! deterministic source gives the same ids every run) and keeps a log of the calls it
//! was asked to make. Calling Stripe's or
//! Conekta's API is out of scope; a real client implements [`PaymentProvider`] and is
//! handed to the same [`ProviderRouter`].
//!
//! The provider is called inside the tenant's transaction, after the input and the
//! permission were checked, and its answer is stored in the same transaction: a provider
//! failure writes nothing. Intents pass their idempotency key to the provider, so a
//! retry after a failure between the provider's answer and the commit finds the same
//! provider intent.

use super::input::{Country, IdempotencyKey, Money, NewPaymentMethod};
use super::provider::ProviderRouter;
use super::{Need, begin};
use crate::Result;
use crate::audit::{AuditEntry, AuditEvent, record};
use crate::deps::Deps;
use crate::error::{ServiceError, conflict_on_unique};
use crate::input::Email;
use crate::request::RequestMeta;
use crate::tenancy::{TenantCtx, TenantTxn};
use entity::billing::payment_customers::{self};
use entity::billing::payment_intents::{self, PaymentIntentStatus};
use entity::billing::payment_methods::{self};
use entity::{PaymentCustomerId, PaymentIntentId, PaymentMethodId};
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect,
    TransactionTrait,
};
use serde_json::json;

/// The idempotency key a provider sees: providers scope keys to the platform's
/// account, not to a tenant, so the tenant's own key (which another tenant may use
/// too) is hashed with the tenant's id. The same tenant and key give the same provider
/// key, so a retry after a lost answer finds the provider's first intent.
fn provider_key(tenant: entity::TenantId, key: &IdempotencyKey) -> IdempotencyKey {
    let hex = crate::identity::sha256_hex(&format!("{tenant}/{}", key.as_str()));
    IdempotencyKey::parse(&format!("saasdb:{hex}")).expect("71 ASCII letters, digits and ':'")
}

async fn find_customer(
    txn: &TenantTxn<impl ConnectionTrait + Send>,
    id: PaymentCustomerId,
) -> Result<payment_customers::Model> {
    payment_customers::Entity::find_by_id(id)
        .filter(payment_customers::Column::TenantId.eq(txn.tenant_id()))
        .one(txn)
        .await?
        .ok_or_else(|| ServiceError::not_found("payment customer", id))
}

/// Registers the context's tenant with the provider its `country` routes to, and
/// stores the customer. Records `payment_customer_created`.
///
/// # Errors
/// `PaymentProvider` when the router has no client for the routed provider or the
/// provider fails (nothing is stored); `Forbidden` without `billing:manage`; `Db`.
pub async fn create_customer<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    router: &ProviderRouter,
    country: &Country,
    email: Option<&Email>,
    meta: &RequestMeta,
) -> Result<payment_customers::Model>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = begin(db, deps, ctx, Need::Manage).await?;
    let provider = router.provider(router.route(country))?;
    let email = email.map(|e| e.as_str().to_owned());
    let created = provider.create_customer(country, email.as_deref()).await?;
    let now = deps.now();
    let id = PaymentCustomerId(deps.new_id(
        "payment_customers",
        &format!("{}/{}", ctx.tenant_id(), created.id),
    ));
    let model = payment_customers::Model {
        id,
        tenant_id: ctx.tenant_id(),
        provider: provider.name(),
        provider_customer_id: created.id,
        country: country.as_str().to_owned(),
        email,
        created_at: now,
    };
    payment_customers::Entity::insert(payment_customers::ActiveModel::from(model.clone()))
        .exec_without_returning(&txn)
        .await
        .map_err(conflict_on_unique(
            "payment customer",
            "the provider's customer is recorded already",
        ))?;
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::PaymentCustomerCreated, meta)
            .resource("payment_customer", id)
            .details(json!({
                "provider": model.provider,
                "provider_customer_id": model.provider_customer_id,
                "country": model.country,
            })),
    )
    .await?;
    txn.commit().await?;
    Ok(model)
}

/// Attaches `method` to customer `customer` at its provider and stores it; it becomes
/// the customer's default when `make_default` or when it is the customer's first method.
/// Records `payment_method_added`.
///
/// # Errors
/// `NotFound` for a customer of another tenant or none; `PaymentProvider` (nothing is
/// stored); `Conflict` when another default was set at the same moment; `Forbidden`
/// without `billing:manage`; `Db`.
#[allow(clippy::too_many_arguments)]
pub async fn add_payment_method<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    router: &ProviderRouter,
    customer: PaymentCustomerId,
    method: &NewPaymentMethod,
    make_default: bool,
    meta: &RequestMeta,
) -> Result<payment_methods::Model>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = begin(db, deps, ctx, Need::Manage).await?;
    let owner = find_customer(&txn, customer).await?;
    let provider = router.provider(owner.provider)?;
    let first = payment_methods::Entity::find()
        .filter(payment_methods::Column::TenantId.eq(ctx.tenant_id()))
        .filter(payment_methods::Column::CustomerId.eq(customer))
        .count(&txn)
        .await?
        == 0;
    let is_default = make_default || first;
    let attached = provider
        .attach_method(&owner.provider_customer_id, method)
        .await?;
    let now = deps.now();
    if is_default && !first {
        clear_default(&txn, customer, now).await?;
    }
    let id = PaymentMethodId(deps.new_id(
        "payment_methods",
        &format!("{}/{}", ctx.tenant_id(), attached.id),
    ));
    payment_methods::Entity::insert(payment_methods::ActiveModel {
        id: Set(id),
        tenant_id: Set(ctx.tenant_id()),
        customer_id: Set(customer),
        provider: Set(owner.provider),
        provider_method_id: Set(attached.id.clone()),
        kind: Set(method.kind),
        brand: Set(method.brand.clone()),
        last4: Set(method.last4.clone()),
        is_default: Set(is_default),
        created_at: Set(now),
        updated_at: Set(now),
        default_customer_id: NotSet,
    })
    .exec_without_returning(&txn)
    .await
    .map_err(conflict_on_unique(
        "payment method",
        "another default method was set at the same moment, or the provider's method is recorded already",
    ))?;
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::PaymentMethodAdded, meta)
            .resource("payment_method", id)
            .details(json!({
                "customer": customer,
                "provider": owner.provider,
                "kind": method.kind,
                "is_default": is_default,
            })),
    )
    .await?;
    let stored = payment_methods::Entity::find_by_id(id)
        .filter(payment_methods::Column::TenantId.eq(ctx.tenant_id()))
        .one(&txn)
        .await?
        .ok_or_else(|| ServiceError::not_found("payment method", id))?;
    txn.commit().await?;
    Ok(stored)
}

async fn clear_default(
    txn: &TenantTxn<impl ConnectionTrait + Send>,
    customer: PaymentCustomerId,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    payment_methods::Entity::update_many()
        .col_expr(payment_methods::Column::IsDefault, Expr::value(false))
        .col_expr(payment_methods::Column::UpdatedAt, Expr::value(now))
        .filter(payment_methods::Column::TenantId.eq(txn.tenant_id()))
        .filter(payment_methods::Column::CustomerId.eq(customer))
        .filter(payment_methods::Column::IsDefault.eq(true))
        .exec(txn)
        .await?;
    Ok(())
}

/// Makes method `id` its customer's default (the previous default no longer is).
/// Records `payment_method_default_changed` when it was not the default already.
///
/// # Errors
/// `NotFound` for a method of another tenant or none; `Conflict` when another default
/// was set at the same moment; `Forbidden` without `billing:manage`; `Db`.
pub async fn set_default_payment_method<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    id: PaymentMethodId,
    meta: &RequestMeta,
) -> Result<payment_methods::Model>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = begin(db, deps, ctx, Need::Manage).await?;
    let find = || {
        payment_methods::Entity::find_by_id(id)
            .filter(payment_methods::Column::TenantId.eq(ctx.tenant_id()))
    };
    let method = find()
        .lock_exclusive()
        .one(&txn)
        .await?
        .ok_or_else(|| ServiceError::not_found("payment method", id))?;
    if method.is_default {
        txn.commit().await?;
        return Ok(method);
    }
    let now = deps.now();
    clear_default(&txn, method.customer_id, now).await?;
    payment_methods::Entity::update_many()
        .col_expr(payment_methods::Column::IsDefault, Expr::value(true))
        .col_expr(payment_methods::Column::UpdatedAt, Expr::value(now))
        .filter(payment_methods::Column::Id.eq(id))
        .filter(payment_methods::Column::TenantId.eq(ctx.tenant_id()))
        .exec(&txn)
        .await
        .map_err(conflict_on_unique(
            "payment method",
            "another default method was set at the same moment",
        ))?;
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::PaymentMethodDefaultChanged, meta)
            .resource("payment_method", id)
            .details(json!({ "customer": method.customer_id })),
    )
    .await?;
    let changed = find()
        .one(&txn)
        .await?
        .ok_or_else(|| ServiceError::not_found("payment method", id))?;
    txn.commit().await?;
    Ok(changed)
}

/// Creates an intent to charge `amount` to customer `customer` at its provider, once
/// per idempotency `key`: asking again with the same key and amount returns the stored
/// intent without calling the provider. Records `payment_intent_created`.
///
/// # Errors
/// `Conflict` when the key was used for another customer or amount (nothing is
/// written); `NotFound` for a customer of another tenant or none; `PaymentProvider`
/// (nothing is stored); `Forbidden` without `billing:manage`; `Db`.
#[allow(clippy::too_many_arguments)]
pub async fn create_payment_intent<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    router: &ProviderRouter,
    customer: PaymentCustomerId,
    amount: &Money,
    key: &IdempotencyKey,
    meta: &RequestMeta,
) -> Result<payment_intents::Model>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = begin(db, deps, ctx, Need::Manage).await?;
    let owner = find_customer(&txn, customer).await?;
    let by_key = || {
        payment_intents::Entity::find()
            .filter(payment_intents::Column::TenantId.eq(ctx.tenant_id()))
            .filter(payment_intents::Column::IdempotencyKey.eq(key.as_str()))
    };
    let key_reused = || ServiceError::Conflict {
        entity: "payment intent",
        reason: "this idempotency key was used for another customer or amount",
    };
    let same = |intent: &payment_intents::Model| {
        intent.customer_id == customer
            && intent.amount_minor == amount.minor
            && intent.currency == amount.currency.as_str()
    };
    if let Some(existing) = by_key().one(&txn).await? {
        if !same(&existing) {
            return Err(key_reused());
        }
        txn.commit().await?;
        return Ok(existing);
    }
    let provider = router.provider(owner.provider)?;
    let created = provider
        .create_intent(
            &owner.provider_customer_id,
            amount,
            &provider_key(ctx.tenant_id(), key),
        )
        .await?;
    let now = deps.now();
    let id = PaymentIntentId(deps.new_id(
        "payment_intents",
        &format!("{}/{}", ctx.tenant_id(), key.as_str()),
    ));
    let model = payment_intents::Model {
        id,
        tenant_id: ctx.tenant_id(),
        customer_id: customer,
        amount_minor: amount.minor,
        currency: amount.currency.as_str().to_owned(),
        status: created.status,
        provider: owner.provider,
        provider_intent_id: created.id,
        idempotency_key: key.as_str().to_owned(),
        created_at: now,
        updated_at: now,
    };
    payment_intents::Entity::insert(payment_intents::ActiveModel::from(model.clone()))
        .exec_without_returning(&txn)
        .await
        .map_err(conflict_on_unique(
            "payment intent",
            "another request with this idempotency key is being stored: retry it",
        ))?;
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::PaymentIntentCreated, meta)
            .resource("payment_intent", id)
            .details(json!({
                "customer": customer,
                "provider": model.provider,
                "provider_intent_id": model.provider_intent_id,
                "amount_minor": model.amount_minor,
                "currency": model.currency,
            })),
    )
    .await?;
    txn.commit().await?;
    Ok(model)
}

/// Moves intent `id` to `to` (what its provider reported): `requires_payment_method`
/// -> `processing` | `canceled`, `processing` -> `succeeded` | `failed` | `canceled`.
/// Records `payment_intent_status_changed`.
///
/// # Errors
/// `Conflict` for any other change, a settled intent's above all (nothing is written);
/// `NotFound`; `Forbidden` without `billing:manage`; `Db`.
pub async fn set_payment_intent_status<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    id: PaymentIntentId,
    to: PaymentIntentStatus,
    meta: &RequestMeta,
) -> Result<payment_intents::Model>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = begin(db, deps, ctx, Need::Manage).await?;
    let find = || {
        payment_intents::Entity::find_by_id(id)
            .filter(payment_intents::Column::TenantId.eq(ctx.tenant_id()))
    };
    let intent = find()
        .lock_exclusive()
        .one(&txn)
        .await?
        .ok_or_else(|| ServiceError::not_found("payment intent", id))?;
    let from = intent.status;
    if !from.can_move_to(to) {
        return Err(ServiceError::Conflict {
            entity: "payment intent",
            reason: if from.is_settled() {
                "a settled intent stays settled"
            } else {
                "the intent's state machine has no such transition"
            },
        });
    }
    payment_intents::Entity::update_many()
        .col_expr(payment_intents::Column::Status, Expr::value(to))
        .col_expr(payment_intents::Column::UpdatedAt, Expr::value(deps.now()))
        .filter(payment_intents::Column::Id.eq(id))
        .filter(payment_intents::Column::TenantId.eq(ctx.tenant_id()))
        .exec(&txn)
        .await?;
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::PaymentIntentStatusChanged, meta)
            .resource("payment_intent", id)
            .details(json!({ "from": from, "to": to })),
    )
    .await?;
    let changed = find()
        .one(&txn)
        .await?
        .ok_or_else(|| ServiceError::not_found("payment intent", id))?;
    txn.commit().await?;
    Ok(changed)
}
