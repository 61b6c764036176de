//! Billing and usage: the plan catalogue, each tenant's subscription, metered usage,
//! and the records of a payment provider's customers, payment methods and payment
//! intents.
//!
//! `billing_plans` is a global catalogue, not a tenant table: a plan (free, pro,
//! enterprise) is the same offer for every tenant, and a tenant's own copy of it could
//! drift from what it is billed. Its rows are reference data, like `permissions`: the
//! runtime role reads them and writes none; the owner (the seeder, an operator) defines
//! them. A plan's `code` is unique; its price is in minor units of its currency (ISO
//! 4217, three uppercase letters) per `billing_interval` (month or year); `limits` is a JSON object from metric name to the
//! most of that metric one billing period allows (a metric it does not name is
//! unlimited). A JSON object rather than a child table: limits are read whole with their
//! plan, never queried across plans, and the database checks they are an object.
//!
//! `billing_subscriptions`: a tenant's subscription to a plan, `trialing` | `active` |
//! `past_due` | `canceled`, with its current period, the end of its trial, and whether
//! it ends with the current period. A tenant has at most one live (not canceled)
//! subscription: a unique index on a generated column that holds the tenant id only
//! while the subscription is live (portable, unlike partial indexes). Canceled ones stay
//! as history.
//!
//! `usage_records`: metered usage (a metric, a positive quantity, when it happened, who
//! recorded it). `(tenant_id, idempotency_key)` is unique, so a retried report counts
//! once, also when the retries race. Sums per metric and period are computed by a
//! GROUP BY over `(tenant_id, metric, occurred_at)`, which an index serves, rather than
//! kept in a summary table that could disagree with the records.
//!
//! `payment_customers`, `payment_methods`, `payment_intents`: what a payment provider
//! (Stripe or Conekta) knows the tenant by, the tenant's ways to pay, and its payment
//! attempts with their provider ids. Methods and intents name a customer of the same
//! tenant (composite foreign keys); a customer has at most one default method (a unique
//! generated column, as above); an intent's idempotency key is unique per tenant.
//!
//! PostgreSQL: row-level security forced on every tenant table, per command, for the
//! current tenant; the owner reads every row; the reading roles read none of the tenant
//! tables. The runtime role reads and inserts the tenant tables' rows, a usage record
//! only in the acting user's name, a subscription only live and a payment intent only
//! before it settled; it updates only the state columns the service changes (a
//! subscription's status, plan, periods and cancellation; a method's default flag; an
//! intent's status), never a row's tenant, customer, amount or provider ids, and deletes
//! nothing (a subscription is canceled, not removed). Triggers keep a subscription's
//! status changes to the state machine's transitions and a settled intent settled,
//! whoever updates.

use crate::lint::accept_lints;
use crate::schema_helpers::*;
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum BillingPlans {
    Table,
    Id,
    Code,
    Name,
    Description,
    PriceMinor,
    Currency,
    BillingInterval,
    Limits,
    IsActive,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum BillingSubscriptions {
    Table,
    Id,
    TenantId,
    PlanId,
    Status,
    CurrentPeriodStart,
    CurrentPeriodEnd,
    TrialEnd,
    CancelAtPeriodEnd,
    CanceledAt,
    CreatedAt,
    UpdatedAt,
    LiveTenantId,
}

#[derive(DeriveIden)]
enum UsageRecords {
    Table,
    Id,
    TenantId,
    Metric,
    Quantity,
    IdempotencyKey,
    OccurredAt,
    RecordedBy,
    CreatedAt,
}

#[derive(DeriveIden)]
enum PaymentCustomers {
    Table,
    Id,
    TenantId,
    Provider,
    ProviderCustomerId,
    Country,
    Email,
    CreatedAt,
}

#[derive(DeriveIden)]
enum PaymentMethods {
    Table,
    Id,
    TenantId,
    CustomerId,
    Provider,
    ProviderMethodId,
    Kind,
    Brand,
    Last4,
    IsDefault,
    CreatedAt,
    UpdatedAt,
    DefaultCustomerId,
}

#[derive(DeriveIden)]
enum PaymentIntents {
    Table,
    Id,
    TenantId,
    CustomerId,
    AmountMinor,
    Currency,
    Status,
    Provider,
    ProviderIntentId,
    IdempotencyKey,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

/// The event types billing is audited with.
const EVENT_TYPES: &[(&str, &str, &str)] = &[
    (
        "billing_plan_defined",
        "system",
        "Billing plan added to the catalogue",
    ),
    (
        "billing_subscription_created",
        "tenant_management",
        "Tenant subscribed to a plan",
    ),
    (
        "billing_subscription_status_changed",
        "tenant_management",
        "Subscription moved to another status (activated, past due, canceled)",
    ),
    (
        "billing_subscription_plan_changed",
        "tenant_management",
        "Subscription moved to another plan",
    ),
    (
        "billing_subscription_cancel_scheduled",
        "tenant_management",
        "Subscription set (or no longer set) to end with its current period",
    ),
    (
        "billing_subscription_renewed",
        "tenant_management",
        "Subscription rolled over into its next period",
    ),
    (
        "payment_customer_created",
        "tenant_management",
        "Tenant registered with a payment provider",
    ),
    (
        "payment_method_added",
        "tenant_management",
        "Payment method added",
    ),
    (
        "payment_method_default_changed",
        "tenant_management",
        "Default payment method changed",
    ),
    (
        "payment_intent_created",
        "tenant_management",
        "Payment intent created",
    ),
    (
        "payment_intent_status_changed",
        "tenant_management",
        "Payment intent moved to another status",
    ),
];

const LIVE_TENANT_ID: &str =
    "GENERATED ALWAYS AS (CASE WHEN status <> 'canceled' THEN tenant_id END) STORED";
const DEFAULT_CUSTOMER_ID: &str =
    "GENERATED ALWAYS AS (CASE WHEN is_default THEN customer_id END) STORED";

const POSTGRES_UP: &str = r#"
ALTER TABLE billing_subscriptions ENABLE ROW LEVEL SECURITY;
ALTER TABLE billing_subscriptions FORCE ROW LEVEL SECURITY;
CREATE POLICY wall_select ON billing_subscriptions FOR SELECT USING (tenant_id = app_current_tenant());
CREATE POLICY wall_insert ON billing_subscriptions FOR INSERT
    WITH CHECK (tenant_id = app_current_tenant() AND status IN ('trialing', 'active')
                AND canceled_at IS NULL);
CREATE POLICY wall_update ON billing_subscriptions FOR UPDATE
    USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant());

ALTER TABLE usage_records ENABLE ROW LEVEL SECURITY;
ALTER TABLE usage_records FORCE ROW LEVEL SECURITY;
CREATE POLICY wall_select ON usage_records FOR SELECT USING (tenant_id = app_current_tenant());
CREATE POLICY wall_insert ON usage_records FOR INSERT
    WITH CHECK (tenant_id = app_current_tenant() AND recorded_by = app_current_user());

ALTER TABLE payment_customers ENABLE ROW LEVEL SECURITY;
ALTER TABLE payment_customers FORCE ROW LEVEL SECURITY;
CREATE POLICY wall_select ON payment_customers FOR SELECT USING (tenant_id = app_current_tenant());
CREATE POLICY wall_insert ON payment_customers FOR INSERT WITH CHECK (tenant_id = app_current_tenant());

ALTER TABLE payment_methods ENABLE ROW LEVEL SECURITY;
ALTER TABLE payment_methods FORCE ROW LEVEL SECURITY;
CREATE POLICY wall_select ON payment_methods FOR SELECT USING (tenant_id = app_current_tenant());
CREATE POLICY wall_insert ON payment_methods FOR INSERT WITH CHECK (tenant_id = app_current_tenant());
CREATE POLICY wall_update ON payment_methods FOR UPDATE
    USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant());

ALTER TABLE payment_intents ENABLE ROW LEVEL SECURITY;
ALTER TABLE payment_intents FORCE ROW LEVEL SECURITY;
CREATE POLICY wall_select ON payment_intents FOR SELECT USING (tenant_id = app_current_tenant());
CREATE POLICY wall_insert ON payment_intents FOR INSERT
    WITH CHECK (tenant_id = app_current_tenant()
                AND status IN ('requires_payment_method', 'processing'));
CREATE POLICY wall_update ON payment_intents FOR UPDATE
    USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant());

-- Whoever updates: a subscription's status moves only along the state machine.
DO $transitions$
BEGIN
  EXECUTE replace($body$
CREATE FUNCTION app_billing_subscriptions_transitions() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, {schema}, pg_temp
    AS $$
BEGIN
  IF NEW.status <> OLD.status AND NOT (
       (OLD.status = 'trialing' AND NEW.status IN ('active', 'canceled'))
    OR (OLD.status = 'active' AND NEW.status IN ('past_due', 'canceled'))
    OR (OLD.status = 'past_due' AND NEW.status IN ('active', 'canceled'))) THEN
    RAISE EXCEPTION 'billing subscription %: % -> % is not a transition', OLD.id, OLD.status, NEW.status
      USING ERRCODE = 'check_violation';
  END IF;
  IF OLD.status = 'canceled' THEN
    RAISE EXCEPTION 'billing subscription %: a canceled subscription stays as it ended', OLD.id
      USING ERRCODE = 'check_violation';
  END IF;
  IF NEW.plan_id <> OLD.plan_id
     AND NOT EXISTS (SELECT 1 FROM billing_plans p WHERE p.id = NEW.plan_id AND p.is_active) THEN
    RAISE EXCEPTION 'billing subscription %: a plan change needs a plan on offer', OLD.id
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END
$$;
$body$, '{schema}', quote_ident(current_schema()));
END
$transitions$;
CREATE TRIGGER billing_subscriptions_transitions BEFORE UPDATE ON billing_subscriptions
    FOR EACH ROW EXECUTE FUNCTION app_billing_subscriptions_transitions();

-- Whoever updates: an intent moves only along its state machine
-- (requires_payment_method -> processing | canceled; processing -> succeeded | failed |
-- canceled), so a settled (succeeded, failed or canceled) intent stays settled.
CREATE FUNCTION app_payment_intents_settled() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$
BEGIN
  IF OLD.status IN ('succeeded', 'failed', 'canceled') AND NEW.status IS DISTINCT FROM OLD.status THEN
    RAISE EXCEPTION 'payment intent %: a settled intent stays settled', OLD.id
      USING ERRCODE = 'check_violation';
  END IF;
  IF NEW.status <> OLD.status AND NOT (
       (OLD.status = 'requires_payment_method' AND NEW.status IN ('processing', 'canceled'))
    OR (OLD.status = 'processing' AND NEW.status IN ('succeeded', 'failed', 'canceled'))) THEN
    RAISE EXCEPTION 'payment intent %: % -> % is not a transition', OLD.id, OLD.status, NEW.status
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER payment_intents_settled BEFORE UPDATE ON payment_intents
    FOR EACH ROW EXECUTE FUNCTION app_payment_intents_settled();

DO $owner$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['billing_subscriptions', 'usage_records', 'payment_customers',
                           'payment_methods', 'payment_intents'] LOOP
    EXECUTE format('CREATE POLICY wall_owner_select ON %I FOR SELECT TO %I USING (true)', t, current_user);
  END LOOP;
END $owner$;

DO $walls$
DECLARE
  reader text;
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_service') THEN
    REVOKE ALL ON billing_plans, billing_subscriptions, usage_records, payment_customers,
                  payment_methods, payment_intents FROM app_service;
    GRANT SELECT ON billing_plans TO app_service;
    GRANT SELECT, INSERT ON billing_subscriptions, usage_records, payment_customers,
                            payment_methods, payment_intents TO app_service;
    GRANT UPDATE (plan_id, status, current_period_start, current_period_end, trial_end,
                  cancel_at_period_end, canceled_at, updated_at) ON billing_subscriptions TO app_service;
    GRANT UPDATE (is_default, updated_at) ON payment_methods TO app_service;
    GRANT UPDATE (status, updated_at) ON payment_intents TO app_service;
  END IF;
  FOREACH reader IN ARRAY ARRAY['read_only', 'compliance_officer', 'data_processor'] LOOP
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = reader) THEN
      EXECUTE format('REVOKE ALL ON billing_subscriptions, usage_records, payment_customers, '
                     'payment_methods, payment_intents FROM %I', reader);
      -- The plan catalogue is reference data: readable, written by the owner only.
      EXECUTE format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON billing_plans FROM %I', reader);
    END IF;
  END LOOP;
END
$walls$;
"#;

/// The providers payment records may name.
fn provider_check(name: &str, column: impl IntoIden) -> Check {
    check_in(name, column, &["stripe", "conekta"])
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        // Keys and provider ids compare exactly: MariaDB's default collation equates
        // `Key-1` and `key-1`.
        let exact = |mut def: ColumnDef| {
            if backend == DbBackend::MySql {
                def.extra("COLLATE utf8mb4_bin");
            }
            def
        };
        let length = |column: &str, range: &str| match backend {
            DbBackend::Sqlite => format!("LENGTH({column}) BETWEEN {range}"),
            _ => format!("CHAR_LENGTH({column}) BETWEEN {range}"),
        };
        // `n` uppercase ASCII letters: a currency (ISO 4217) or a country (ISO 3166-1
        // alpha-2). SQLite's GLOB and MariaDB's REGEXP on a binary collation are
        // case-sensitive, as PostgreSQL's `~` is.
        let upper_letters = |column: &str, n: usize| match backend {
            DbBackend::Sqlite => format!(
                "LENGTH({column}) = {n} AND {column} GLOB '{}'",
                "[A-Z]".repeat(n)
            ),
            DbBackend::MySql => {
                format!("{column} COLLATE utf8mb4_bin REGEXP '^[A-Z]{{{n}}}$'")
            }
            _ => format!("{column} ~ '^[A-Z]{{{n}}}$'"),
        };
        let is_object = |column: &str| match backend {
            DbBackend::Postgres => format!("jsonb_typeof({column}) = 'object'"),
            DbBackend::MySql => format!("JSON_TYPE({column}) = 'OBJECT'"),
            _ => format!("json_type({column}) = 'object'"),
        };
        let text_reason = (
            "prefer-text-field",
            "varchar(n) is the input limit, enforced by the database",
        );
        let plans = create_table(backend, BillingPlans::Table)
            .col(uuid_pk(BillingPlans::Id))
            .col(string(BillingPlans::Code, 32))
            .col(string(BillingPlans::Name, 100))
            .col(string(BillingPlans::Description, 500))
            .col(big_integer(backend, BillingPlans::PriceMinor))
            .col(string(BillingPlans::Currency, 3))
            .col(string(BillingPlans::BillingInterval, 8))
            .col(json(BillingPlans::Limits))
            .col(boolean(BillingPlans::IsActive, true))
            .col(timestamp_default_now(backend, BillingPlans::CreatedAt))
            .col(timestamp_default_now(backend, BillingPlans::UpdatedAt))
            .check(Check::named(
                Alias::new("ck_billing_plans_code"),
                Expr::cust(length("code", "1 AND 32")),
            ))
            .check(Check::named(
                Alias::new("ck_billing_plans_name"),
                Expr::cust(length("name", "1 AND 100")),
            ))
            .check(Check::named(
                Alias::new("ck_billing_plans_price"),
                Expr::cust("price_minor >= 0"),
            ))
            .check(Check::named(
                Alias::new("ck_billing_plans_currency"),
                Expr::cust(upper_letters("currency", 3)),
            ))
            .check(check_in(
                "ck_billing_plans_billing_interval",
                BillingPlans::BillingInterval,
                &["month", "year"],
            ))
            .check(Check::named(
                Alias::new("ck_billing_plans_limits_object"),
                Expr::cust(is_object("limits")),
            ))
            .to_owned();
        accept_lints(manager, &[text_reason], &plans).await?;
        manager
            .create_index(unique_index(BillingPlans::Table, [BillingPlans::Code]))
            .await?;

        let subscriptions = create_table(backend, BillingSubscriptions::Table)
            .col(uuid_pk(BillingSubscriptions::Id))
            .col(uuid(BillingSubscriptions::TenantId))
            .col(uuid(BillingSubscriptions::PlanId))
            .col(string(BillingSubscriptions::Status, 16))
            .col(timestamp(backend, BillingSubscriptions::CurrentPeriodStart))
            .col(timestamp(backend, BillingSubscriptions::CurrentPeriodEnd))
            .col(timestamp_null(backend, BillingSubscriptions::TrialEnd))
            .col(boolean(BillingSubscriptions::CancelAtPeriodEnd, false))
            .col(timestamp_null(backend, BillingSubscriptions::CanceledAt))
            .col(timestamp_default_now(
                backend,
                BillingSubscriptions::CreatedAt,
            ))
            .col(timestamp_default_now(
                backend,
                BillingSubscriptions::UpdatedAt,
            ))
            .col(
                ColumnDef::new(BillingSubscriptions::LiveTenantId)
                    .uuid()
                    .extra(LIVE_TENANT_ID),
            )
            .check(check_in(
                "ck_billing_subscriptions_status",
                BillingSubscriptions::Status,
                &["trialing", "active", "past_due", "canceled"],
            ))
            .check(Check::named(
                Alias::new("ck_billing_subscriptions_period"),
                Expr::cust("current_period_end > current_period_start"),
            ))
            // Canceled means when; a trial has its end.
            .check(Check::named(
                Alias::new("ck_billing_subscriptions_canceled"),
                Expr::cust("(status = 'canceled') = (canceled_at IS NOT NULL)"),
            ))
            .check(Check::named(
                Alias::new("ck_billing_subscriptions_trial"),
                Expr::cust("status <> 'trialing' OR trial_end IS NOT NULL"),
            ))
            .foreign_key(&mut foreign_key(
                BillingSubscriptions::Table,
                BillingSubscriptions::TenantId,
                Tenants::Table,
                Tenants::Id,
                ForeignKeyAction::Restrict,
            ))
            .foreign_key(&mut foreign_key(
                BillingSubscriptions::Table,
                BillingSubscriptions::PlanId,
                BillingPlans::Table,
                BillingPlans::Id,
                ForeignKeyAction::Restrict,
            ))
            .to_owned();
        accept_lints(manager, &[text_reason], &subscriptions).await?;
        // One live subscription per tenant, and how the service finds it.
        manager
            .create_index(unique_index(
                BillingSubscriptions::Table,
                [BillingSubscriptions::LiveTenantId],
            ))
            .await?;
        // A tenant's subscriptions, newest first (its history).
        manager
            .create_index(index(
                BillingSubscriptions::Table,
                [
                    BillingSubscriptions::TenantId,
                    BillingSubscriptions::CreatedAt,
                ],
            ))
            .await?;
        manager
            .create_index(index(
                BillingSubscriptions::Table,
                [BillingSubscriptions::PlanId],
            ))
            .await?;

        let usage = create_table(backend, UsageRecords::Table)
            .col(uuid_pk(UsageRecords::Id))
            .col(uuid(UsageRecords::TenantId))
            .col(string(UsageRecords::Metric, 64))
            .col(big_integer(backend, UsageRecords::Quantity))
            .col(exact(string(UsageRecords::IdempotencyKey, 128)))
            .col(timestamp(backend, UsageRecords::OccurredAt))
            .col(uuid_null(UsageRecords::RecordedBy))
            .col(timestamp_default_now(backend, UsageRecords::CreatedAt))
            .check(Check::named(
                Alias::new("ck_usage_records_quantity"),
                Expr::cust("quantity > 0"),
            ))
            .check(Check::named(
                Alias::new("ck_usage_records_metric"),
                Expr::cust(length("metric", "1 AND 64")),
            ))
            .check(Check::named(
                Alias::new("ck_usage_records_idempotency_key"),
                Expr::cust(length("idempotency_key", "1 AND 128")),
            ))
            .foreign_key(&mut foreign_key(
                UsageRecords::Table,
                UsageRecords::TenantId,
                Tenants::Table,
                Tenants::Id,
                ForeignKeyAction::Restrict,
            ))
            .foreign_key(&mut foreign_key(
                UsageRecords::Table,
                UsageRecords::RecordedBy,
                Users::Table,
                Users::Id,
                ForeignKeyAction::SetNull,
            ))
            .to_owned();
        accept_lints(manager, &[text_reason], &usage).await?;
        // A key counts once per tenant.
        manager
            .create_index(unique_index(
                UsageRecords::Table,
                [UsageRecords::TenantId, UsageRecords::IdempotencyKey],
            ))
            .await?;
        // Sums of one metric over a period.
        manager
            .create_index(index(
                UsageRecords::Table,
                [
                    UsageRecords::TenantId,
                    UsageRecords::Metric,
                    UsageRecords::OccurredAt,
                ],
            ))
            .await?;
        manager
            .create_index(index(UsageRecords::Table, [UsageRecords::RecordedBy]))
            .await?;

        let customers = create_table(backend, PaymentCustomers::Table)
            .col(uuid_pk(PaymentCustomers::Id))
            .col(uuid(PaymentCustomers::TenantId))
            .col(string(PaymentCustomers::Provider, 16))
            .col(exact(string(PaymentCustomers::ProviderCustomerId, 255)))
            .col(string(PaymentCustomers::Country, 2))
            .col(exact(string_null(PaymentCustomers::Email, 320)))
            .col(timestamp_default_now(backend, PaymentCustomers::CreatedAt))
            .check(provider_check(
                "ck_payment_customers_provider",
                PaymentCustomers::Provider,
            ))
            .check(Check::named(
                Alias::new("ck_payment_customers_country"),
                Expr::cust(upper_letters("country", 2)),
            ))
            .check(Check::named(
                Alias::new("ck_payment_customers_provider_customer_id"),
                Expr::cust(length("provider_customer_id", "1 AND 255")),
            ))
            .check(Check::named(
                Alias::new("ck_payment_customers_email_lowercase"),
                Expr::cust("email = LOWER(email)"),
            ))
            .foreign_key(&mut foreign_key(
                PaymentCustomers::Table,
                PaymentCustomers::TenantId,
                Tenants::Table,
                Tenants::Id,
                ForeignKeyAction::Restrict,
            ))
            .to_owned();
        accept_lints(manager, &[text_reason], &customers).await?;
        // The parent key of methods' and intents' composite foreign keys.
        manager
            .create_index(unique_index(
                PaymentCustomers::Table,
                [PaymentCustomers::TenantId, PaymentCustomers::Id],
            ))
            .await?;
        // A provider's customer is recorded once per tenant (and found by its id).
        manager
            .create_index(unique_index(
                PaymentCustomers::Table,
                [
                    PaymentCustomers::TenantId,
                    PaymentCustomers::Provider,
                    PaymentCustomers::ProviderCustomerId,
                ],
            ))
            .await?;

        let methods = create_table(backend, PaymentMethods::Table)
            .col(uuid_pk(PaymentMethods::Id))
            .col(uuid(PaymentMethods::TenantId))
            .col(uuid(PaymentMethods::CustomerId))
            .col(string(PaymentMethods::Provider, 16))
            .col(exact(string(PaymentMethods::ProviderMethodId, 255)))
            .col(string(PaymentMethods::Kind, 16))
            .col(string_null(PaymentMethods::Brand, 32))
            .col(string_null(PaymentMethods::Last4, 4))
            .col(boolean(PaymentMethods::IsDefault, false))
            .col(timestamp_default_now(backend, PaymentMethods::CreatedAt))
            .col(timestamp_default_now(backend, PaymentMethods::UpdatedAt))
            .col(
                ColumnDef::new(PaymentMethods::DefaultCustomerId)
                    .uuid()
                    .extra(DEFAULT_CUSTOMER_ID),
            )
            .check(provider_check(
                "ck_payment_methods_provider",
                PaymentMethods::Provider,
            ))
            .check(check_in(
                "ck_payment_methods_kind",
                PaymentMethods::Kind,
                &["card", "oxxo", "spei", "bank_transfer"],
            ))
            .check(Check::named(
                Alias::new("ck_payment_methods_provider_method_id"),
                Expr::cust(length("provider_method_id", "1 AND 255")),
            ))
            // A card shows its brand and last four digits; nothing else has them.
            .check(Check::named(
                Alias::new("ck_payment_methods_card"),
                Expr::cust(format!(
                    "(kind = 'card') = (brand IS NOT NULL AND last4 IS NOT NULL) \
                     AND (last4 IS NULL OR ({}))",
                    match backend {
                        DbBackend::Sqlite =>
                            "LENGTH(last4) = 4 AND last4 GLOB '[0-9][0-9][0-9][0-9]'",
                        DbBackend::MySql => "last4 REGEXP '^[0-9]{4}$'",
                        _ => "last4 ~ '^[0-9]{4}$'",
                    }
                )),
            ))
            .foreign_key(&mut foreign_key(
                PaymentMethods::Table,
                PaymentMethods::TenantId,
                Tenants::Table,
                Tenants::Id,
                ForeignKeyAction::Restrict,
            ))
            .foreign_key(&mut composite_foreign_key(
                PaymentMethods::Table,
                [PaymentMethods::TenantId, PaymentMethods::CustomerId],
                PaymentCustomers::Table,
                [PaymentCustomers::TenantId, PaymentCustomers::Id],
                ForeignKeyAction::Restrict,
            ))
            .to_owned();
        accept_lints(manager, &[text_reason], &methods).await?;
        // At most one default method per customer.
        manager
            .create_index(unique_index(
                PaymentMethods::Table,
                [PaymentMethods::DefaultCustomerId],
            ))
            .await?;
        // A provider's method is recorded once per tenant.
        manager
            .create_index(unique_index(
                PaymentMethods::Table,
                [
                    PaymentMethods::TenantId,
                    PaymentMethods::Provider,
                    PaymentMethods::ProviderMethodId,
                ],
            ))
            .await?;
        // A customer's methods.
        manager
            .create_index(index(
                PaymentMethods::Table,
                [PaymentMethods::TenantId, PaymentMethods::CustomerId],
            ))
            .await?;

        let intents = create_table(backend, PaymentIntents::Table)
            .col(uuid_pk(PaymentIntents::Id))
            .col(uuid(PaymentIntents::TenantId))
            .col(uuid(PaymentIntents::CustomerId))
            .col(big_integer(backend, PaymentIntents::AmountMinor))
            .col(string(PaymentIntents::Currency, 3))
            .col(string(PaymentIntents::Status, 32))
            .col(string(PaymentIntents::Provider, 16))
            .col(exact(string(PaymentIntents::ProviderIntentId, 255)))
            .col(exact(string(PaymentIntents::IdempotencyKey, 128)))
            .col(timestamp_default_now(backend, PaymentIntents::CreatedAt))
            .col(timestamp_default_now(backend, PaymentIntents::UpdatedAt))
            .check(Check::named(
                Alias::new("ck_payment_intents_amount"),
                Expr::cust("amount_minor > 0"),
            ))
            .check(Check::named(
                Alias::new("ck_payment_intents_currency"),
                Expr::cust(upper_letters("currency", 3)),
            ))
            .check(check_in(
                "ck_payment_intents_status",
                PaymentIntents::Status,
                &[
                    "requires_payment_method",
                    "processing",
                    "succeeded",
                    "canceled",
                    "failed",
                ],
            ))
            .check(provider_check(
                "ck_payment_intents_provider",
                PaymentIntents::Provider,
            ))
            .check(Check::named(
                Alias::new("ck_payment_intents_provider_intent_id"),
                Expr::cust(length("provider_intent_id", "1 AND 255")),
            ))
            .check(Check::named(
                Alias::new("ck_payment_intents_idempotency_key"),
                Expr::cust(length("idempotency_key", "1 AND 128")),
            ))
            .foreign_key(&mut foreign_key(
                PaymentIntents::Table,
                PaymentIntents::TenantId,
                Tenants::Table,
                Tenants::Id,
                ForeignKeyAction::Restrict,
            ))
            .foreign_key(&mut composite_foreign_key(
                PaymentIntents::Table,
                [PaymentIntents::TenantId, PaymentIntents::CustomerId],
                PaymentCustomers::Table,
                [PaymentCustomers::TenantId, PaymentCustomers::Id],
                ForeignKeyAction::Restrict,
            ))
            .to_owned();
        accept_lints(manager, &[text_reason], &intents).await?;
        // A retried request creates one intent.
        manager
            .create_index(unique_index(
                PaymentIntents::Table,
                [PaymentIntents::TenantId, PaymentIntents::IdempotencyKey],
            ))
            .await?;
        // A customer's intents, and an intent found by its provider id.
        manager
            .create_index(index(
                PaymentIntents::Table,
                [PaymentIntents::TenantId, PaymentIntents::CustomerId],
            ))
            .await?;
        manager
            .create_index(index(
                PaymentIntents::Table,
                [PaymentIntents::Provider, PaymentIntents::ProviderIntentId],
            ))
            .await?;

        if backend == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(POSTGRES_UP)
                .await?;
        }
        add_missing_audit_event_types(manager, EVENT_TYPES).await
    }

    /// Drops the billing tables with their rows (development databases; a production
    /// rollback exports them first). Event types audit rows use stay in the catalogue.
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(
                    "DROP TRIGGER IF EXISTS billing_subscriptions_transitions ON billing_subscriptions;
                     DROP FUNCTION IF EXISTS app_billing_subscriptions_transitions();
                     DROP TRIGGER IF EXISTS payment_intents_settled ON payment_intents;
                     DROP FUNCTION IF EXISTS app_payment_intents_settled();",
                )
                .await?;
        }
        for table in [
            PaymentIntents::Table.into_iden(),
            PaymentMethods::Table.into_iden(),
            PaymentCustomers::Table.into_iden(),
            UsageRecords::Table.into_iden(),
            BillingSubscriptions::Table.into_iden(),
            BillingPlans::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        remove_unused_audit_event_types(manager, EVENT_TYPES).await
    }
}
