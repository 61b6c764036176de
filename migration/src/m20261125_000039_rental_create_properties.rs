//! Rental listings.
//!
//! `properties`: a tenant's listings with monthly rent and deposit (whole units of
//! the currency, e.g. yen), prefecture, city and address, coordinates, and features (a
//! JSON array of feature names such as `pets_allowed`). Search filters by rent,
//! prefecture and city, a radius around a point and required features, ordered by rent
//! then id for keyset pagination; the indexes lead with the tenant:
//! - `(tenant_id, rent, id)`: a rent range, and every page's order;
//! - `(tenant_id, prefecture, city, rent)`: a place;
//! - `(tenant_id, latitude, longitude)`: the bounding box around a point;
//! - PostgreSQL: a GIN index (`jsonb_path_ops`) on `features` for containment (`@>`).
//!   MariaDB and SQLite cannot index inside a JSON array; the other filters narrow the
//!   rows first there.
//!
//! PostgreSQL: row-level security forced, per command, for the current tenant; the
//! runtime role reads, lists and changes the listing columns, never a listing's tenant
//! or id, and deletes none (a listing is unlisted).

use crate::lint::accept_lints;
use crate::schema_helpers::*;
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Properties {
    Table,
    Id,
    TenantId,
    Title,
    Rent,
    Deposit,
    Currency,
    Prefecture,
    City,
    Address,
    Latitude,
    Longitude,
    Features,
    Listed,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
}

const EVENT_TYPES: &[(&str, &str, &str)] = &[
    ("property_listed", "system", "Rental property listed"),
    (
        "property_updated",
        "system",
        "Rental property changed or unlisted",
    ),
];

const POSTGRES_UP: &str = r#"
CREATE INDEX ix_properties_features ON properties USING gin (features jsonb_path_ops);

ALTER TABLE properties ENABLE ROW LEVEL SECURITY;
ALTER TABLE properties FORCE ROW LEVEL SECURITY;
CREATE POLICY wall_select ON properties FOR SELECT USING (tenant_id = app_current_tenant());
CREATE POLICY wall_insert ON properties FOR INSERT WITH CHECK (tenant_id = app_current_tenant());
CREATE POLICY wall_update ON properties FOR UPDATE
    USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant());

DO $owner$ BEGIN
  EXECUTE format('CREATE POLICY wall_owner_select ON properties FOR SELECT TO %I USING (true)', current_user);
END $owner$;

DO $walls$
DECLARE
  reader text;
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_service') THEN
    REVOKE ALL ON properties FROM app_service;
    GRANT SELECT, INSERT ON properties TO app_service;
    GRANT UPDATE (title, rent, deposit, currency, prefecture, city, address, latitude, longitude,
                  features, listed, updated_at) ON properties TO app_service;
  END IF;
  FOREACH reader IN ARRAY ARRAY['read_only', 'compliance_officer', 'data_processor'] LOOP
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = reader) THEN
      EXECUTE format('REVOKE ALL ON properties FROM %I', reader);
    END IF;
  END LOOP;
END
$walls$;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let length = |column: &str, range: &str| match backend {
            DbBackend::Sqlite => format!("LENGTH({column}) BETWEEN {range}"),
            _ => format!("CHAR_LENGTH({column}) BETWEEN {range}"),
        };
        let text_reason = (
            "prefer-text-field",
            "varchar(n) is the input limit, enforced by the database",
        );
        // Places compare exactly, as on the other backends: MariaDB's default
        // collation would equate case and kana variants (ハ, バ, パ).
        let place = |column: Properties, len: u32| {
            let mut def = string(column, len);
            if backend == DbBackend::MySql {
                def.extra("COLLATE utf8mb4_bin");
            }
            def
        };
        let features_array = match backend {
            DbBackend::Postgres => "jsonb_typeof(features) = 'array'",
            DbBackend::MySql => "JSON_TYPE(features) = 'ARRAY'",
            _ => "json_type(features) = 'array'",
        };
        let table = create_table(backend, Properties::Table)
            .col(uuid_pk(Properties::Id))
            .col(uuid(Properties::TenantId))
            .col(string(Properties::Title, 200))
            .col(big_integer(backend, Properties::Rent))
            .col(big_integer(backend, Properties::Deposit))
            .col(string(Properties::Currency, 3))
            .col(place(Properties::Prefecture, 50))
            .col(place(Properties::City, 100))
            .col(string(Properties::Address, 200))
            .col(
                ColumnDef::new(Properties::Latitude)
                    .double()
                    .not_null()
                    .take(),
            )
            .col(
                ColumnDef::new(Properties::Longitude)
                    .double()
                    .not_null()
                    .take(),
            )
            .col(json(Properties::Features))
            .col(boolean(Properties::Listed, true))
            .col(timestamp_default_now(backend, Properties::CreatedAt))
            .col(timestamp_default_now(backend, Properties::UpdatedAt))
            .check(Check::named(
                Alias::new("ck_properties_amounts"),
                Expr::cust("rent >= 0 AND deposit >= 0"),
            ))
            .check(Check::named(
                Alias::new("ck_properties_coordinates"),
                Expr::cust("latitude BETWEEN -90 AND 90 AND longitude BETWEEN -180 AND 180"),
            ))
            .check(Check::named(
                Alias::new("ck_properties_title_length"),
                Expr::cust(length("title", "1 AND 200")),
            ))
            .check(Check::named(
                Alias::new("ck_properties_place_length"),
                Expr::cust(format!(
                    "{} AND {}",
                    length("prefecture", "1 AND 50"),
                    length("city", "1 AND 100")
                )),
            ))
            .check(Check::named(
                Alias::new("ck_properties_features_array"),
                Expr::cust(features_array),
            ))
            .check(Check::named(
                Alias::new("ck_properties_currency"),
                Expr::cust(length("currency", "3 AND 3")),
            ))
            .foreign_key(&mut foreign_key(
                Properties::Table,
                Properties::TenantId,
                Tenants::Table,
                Tenants::Id,
                ForeignKeyAction::Restrict,
            ))
            .to_owned();
        accept_lints(manager, &[text_reason], &table).await?;
        manager
            .create_index(index(
                Properties::Table,
                [Properties::TenantId, Properties::Rent, Properties::Id],
            ))
            .await?;
        manager
            .create_index(index(
                Properties::Table,
                [
                    Properties::TenantId,
                    Properties::Prefecture,
                    Properties::City,
                    Properties::Rent,
                ],
            ))
            .await?;
        manager
            .create_index(index(
                Properties::Table,
                [
                    Properties::TenantId,
                    Properties::Latitude,
                    Properties::Longitude,
                ],
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

    /// Drops the listings (development databases; a production rollback exports them
    /// first). Event types audit rows use stay in the catalogue.
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Properties::Table).to_owned())
            .await?;
        remove_unused_audit_event_types(manager, EVENT_TYPES).await
    }
}
