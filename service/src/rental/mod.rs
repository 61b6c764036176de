//! Rental listings: list a property, unlist it, and search a tenant's listings by rent,
//! place, distance from a point and required features, a page at a time.
//!
//! Pages are ordered by rent, then id, and continue after a cursor (the last row's
//! rent and id: keyset pagination, so a page costs the same wherever it is). A radius
//! is searched as a bounding box on the indexed coordinates, then the exact great-circle
//! distance ([`distance_km`]) in Rust. Required features use PostgreSQL's GIN index
//! (`features @> '[...]'`), MariaDB's `JSON_CONTAINS` and SQLite's `json_each`.

use crate::Result;
use crate::access::{Scope, has_permission};
use crate::audit::{AuditEntry, AuditEvent, record};
use crate::deps::Deps;
use crate::error::ServiceError;
use crate::input::plain_text;
use crate::request::RequestMeta;
use crate::tenancy::{TenantCtx, TenantTxn};
use entity::PropertyId;
use entity::rental::properties;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait, Value,
};
use serde_json::json;

/// The most features one listing or one search names.
pub const MAX_FEATURES: usize = 32;
/// The largest page.
pub const MAX_PAGE: u16 = 100;
/// The most rows one page looks at before it returns, short, with a cursor: a wide
/// radius admits many rows its box cannot tell from the circle.
pub const MAX_EXAMINED: usize = 2000;
/// The widest radius a search may ask for, in km.
pub const MAX_RADIUS_KM: f64 = 500.0;

/// Mean Earth radius (IUGG), in km.
const EARTH_RADIUS_KM: f64 = 6371.0088;

/// The great-circle distance between two points in km (haversine).
pub fn distance_km((lat1, lng1): (f64, f64), (lat2, lng2): (f64, f64)) -> f64 {
    let (phi1, phi2) = (lat1.to_radians(), lat2.to_radians());
    let d_phi = (lat2 - lat1).to_radians();
    let d_lambda = (lng2 - lng1).to_radians();
    let a = (d_phi / 2.0).sin().powi(2) + phi1.cos() * phi2.cos() * (d_lambda / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * a.sqrt().min(1.0).asin()
}

/// A listing to create, checked.
#[derive(Clone, Debug)]
pub struct NewProperty {
    title: String,
    rent: i64,
    deposit: i64,
    currency: String,
    prefecture: String,
    city: String,
    address: String,
    latitude: f64,
    longitude: f64,
    features: Vec<String>,
}

/// What a listing is made of, before checking.
#[derive(Clone, Debug)]
pub struct PropertyInput<'a> {
    pub title: &'a str,
    pub rent: i64,
    pub deposit: i64,
    /// ISO 4217 (three uppercase letters).
    pub currency: &'a str,
    pub prefecture: &'a str,
    pub city: &'a str,
    pub address: &'a str,
    pub latitude: f64,
    pub longitude: f64,
    pub features: &'a [&'a str],
}

impl NewProperty {
    /// # Errors
    /// `Validation` for an empty or overlong title (200), prefecture (50), city (100) or
    /// address (200); a negative rent or deposit; a currency that is not three
    /// uppercase letters; coordinates off the globe; or a malformed feature name
    /// (lowercase letters, digits, `_`; at most [`MAX_FEATURES`]).
    pub fn parse(input: &PropertyInput<'_>) -> Result<Self> {
        if input.rent < 0 || input.deposit < 0 {
            return Err(ServiceError::validation(
                "rent",
                "rent and deposit must not be negative",
            ));
        }
        if input.currency.len() != 3 || !input.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(ServiceError::validation(
                "currency",
                "must be an ISO 4217 code (three uppercase letters)",
            ));
        }
        check_point(input.latitude, input.longitude)?;
        Ok(Self {
            title: plain_text("title", input.title, 200)?,
            rent: input.rent,
            deposit: input.deposit,
            currency: input.currency.to_owned(),
            prefecture: plain_text("prefecture", input.prefecture, 50)?,
            city: plain_text("city", input.city, 100)?,
            address: plain_text("address", input.address, 200)?,
            latitude: input.latitude,
            longitude: input.longitude,
            features: features(input.features)?,
        })
    }
}

fn check_point(latitude: f64, longitude: f64) -> Result<()> {
    if !(-90.0..=90.0).contains(&latitude) || !(-180.0..=180.0).contains(&longitude) {
        return Err(ServiceError::validation(
            "coordinates",
            "latitude must be -90 to 90 and longitude -180 to 180",
        ));
    }
    Ok(())
}

fn features(names: &[&str]) -> Result<Vec<String>> {
    if names.len() > MAX_FEATURES {
        return Err(ServiceError::validation(
            "features",
            format!("at most {MAX_FEATURES}"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for name in names {
        let ok = !name.is_empty()
            && name.len() <= 50
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !ok {
            return Err(ServiceError::validation(
                "features",
                "each 1 to 50 lowercase letters, digits or '_'",
            ));
        }
        if !out.iter().any(|seen| seen == name) {
            out.push((*name).to_owned());
        }
    }
    out.sort();
    Ok(out)
}

/// Where a page ends: the last row's rent and id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PropertyCursor {
    pub rent: i64,
    pub id: PropertyId,
}

/// Within `radius_km` of a point.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Near {
    pub latitude: f64,
    pub longitude: f64,
    pub radius_km: f64,
}

/// A search, checked.
#[derive(Clone, Debug)]
pub struct PropertySearch {
    rent_min: Option<i64>,
    rent_max: Option<i64>,
    prefecture: Option<String>,
    city: Option<String>,
    near: Option<Near>,
    features: Vec<String>,
    limit: u16,
}

/// A search before checking; everything optional but the page size.
#[derive(Clone, Debug, Default)]
pub struct SearchInput<'a> {
    pub rent_min: Option<i64>,
    pub rent_max: Option<i64>,
    pub prefecture: Option<&'a str>,
    pub city: Option<&'a str>,
    pub near: Option<Near>,
    pub features: &'a [&'a str],
    /// 1 to [`MAX_PAGE`].
    pub limit: u16,
}

impl PropertySearch {
    /// # Errors
    /// `Validation` for a page size outside 1..=[`MAX_PAGE`], a rent range that is
    /// negative or upside down, an empty or overlong place, a point off the globe, a
    /// radius outside (0, [`MAX_RADIUS_KM`]], or malformed feature names.
    pub fn parse(input: &SearchInput<'_>) -> Result<Self> {
        if !(1..=MAX_PAGE).contains(&input.limit) {
            return Err(ServiceError::validation(
                "limit",
                format!("must be 1 to {MAX_PAGE}"),
            ));
        }
        if input.rent_min.is_some_and(|r| r < 0)
            || input.rent_max.is_some_and(|r| r < 0)
            || matches!((input.rent_min, input.rent_max), (Some(lo), Some(hi)) if lo > hi)
        {
            return Err(ServiceError::validation(
                "rent",
                "the range must be non-negative, minimum at most maximum",
            ));
        }
        if let Some(near) = input.near {
            check_point(near.latitude, near.longitude)?;
            if !(near.radius_km > 0.0 && near.radius_km <= MAX_RADIUS_KM) {
                return Err(ServiceError::validation(
                    "radius_km",
                    format!("must be more than 0 and at most {MAX_RADIUS_KM}"),
                ));
            }
        }
        Ok(Self {
            rent_min: input.rent_min,
            rent_max: input.rent_max,
            prefecture: input
                .prefecture
                .map(|p| plain_text("prefecture", p, 50))
                .transpose()?,
            city: input.city.map(|c| plain_text("city", c, 100)).transpose()?,
            near: input.near,
            features: features(input.features)?,
            limit: input.limit,
        })
    }

    /// Whether `property` matches, as the database and the distance check together
    /// decide (the listing flag included).
    pub fn matches(&self, property: &properties::Model) -> bool {
        let has_features = self.features.iter().all(|wanted| {
            property
                .features
                .as_array()
                .is_some_and(|have| have.iter().any(|f| f.as_str() == Some(wanted)))
        });
        property.listed
            && self.rent_min.is_none_or(|lo| property.rent >= lo)
            && self.rent_max.is_none_or(|hi| property.rent <= hi)
            && self
                .prefecture
                .as_ref()
                .is_none_or(|p| *p == property.prefecture)
            && self.city.as_ref().is_none_or(|c| *c == property.city)
            && has_features
            && self.within_radius(property)
    }

    fn within_radius(&self, property: &properties::Model) -> bool {
        self.near.is_none_or(|near| {
            distance_km(
                (near.latitude, near.longitude),
                (property.latitude, property.longitude),
            ) <= near.radius_km
        })
    }

    /// The conditions the database checks: everything but the exact distance, which
    /// the bounding box only over-approximates.
    fn condition(&self, backend: DbBackend) -> Condition {
        let mut all = Condition::all().add(properties::Column::Listed.eq(true));
        if let Some(lo) = self.rent_min {
            all = all.add(properties::Column::Rent.gte(lo));
        }
        if let Some(hi) = self.rent_max {
            all = all.add(properties::Column::Rent.lte(hi));
        }
        if let Some(prefecture) = &self.prefecture {
            all = all.add(properties::Column::Prefecture.eq(prefecture.as_str()));
        }
        if let Some(city) = &self.city {
            all = all.add(properties::Column::City.eq(city.as_str()));
        }
        if let Some(near) = self.near {
            // Degrees of latitude per km are constant; of longitude they grow towards
            // the poles: the box takes the widest at its pole-ward edge, with 1% to
            // spare for rounding. A box over the antimeridian is two ranges of
            // longitude; near a pole (or wider than the globe) longitude is left to the
            // exact check.
            let d_lat = near.radius_km / (EARTH_RADIUS_KM.to_radians()) * 1.01;
            let (south, north) = (near.latitude - d_lat, near.latitude + d_lat);
            all = all.add(properties::Column::Latitude.between(south, north));
            let widest = south.abs().max(north.abs());
            let d_lng = d_lat / widest.to_radians().cos();
            if widest < 89.0 && d_lng < 180.0 {
                let (west, east) = (near.longitude - d_lng, near.longitude + d_lng);
                let longitude = properties::Column::Longitude;
                all = all.add(if west < -180.0 {
                    Condition::any()
                        .add(longitude.gte(west + 360.0))
                        .add(longitude.lte(east))
                } else if east > 180.0 {
                    Condition::any()
                        .add(longitude.gte(west))
                        .add(longitude.lte(east - 360.0))
                } else {
                    Condition::all().add(longitude.between(west, east))
                });
            }
        }
        if !self.features.is_empty() {
            all = all.add(features_condition(backend, &self.features));
        }
        all
    }
}

/// The listing holds every one of `wanted`.
fn features_condition(backend: DbBackend, wanted: &[String]) -> Condition {
    let array = json!(wanted);
    match backend {
        DbBackend::Postgres => Condition::all().add(Expr::cust_with_values(
            "features @> $1",
            [Value::Json(Some(Box::new(array)))],
        )),
        DbBackend::MySql => Condition::all().add(Expr::cust_with_values(
            "JSON_CONTAINS(features, ?)",
            [Value::String(Some(array.to_string()))],
        )),
        _ => wanted.iter().fold(Condition::all(), |all, name| {
            all.add(Expr::cust_with_values(
                "EXISTS (SELECT 1 FROM json_each(properties.features) AS f WHERE f.value = ?)",
                [Value::String(Some(name.clone()))],
            ))
        }),
    }
}

/// One page of a search.
#[derive(Clone, Debug)]
pub struct PropertyPage {
    pub items: Vec<properties::Model>,
    /// Where the next page starts; `None` when no row can follow. A page may be short
    /// (at most [`MAX_EXAMINED`] rows are looked at per call) or, ending exactly at the
    /// last row, be followed by an empty one: follow `next` until it is `None`.
    pub next: Option<PropertyCursor>,
}

/// Opens the tenant's transaction for someone who may list properties: an owner or
/// admin, or a holder of `properties:write`.
async fn begin_lister<C>(db: &C, deps: &Deps, ctx: &TenantCtx) -> Result<TenantTxn<C::Transaction>>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = ctx.begin(db).await?;
    let manager = txn.is_owner_or_admin();
    if !manager
        && !has_permission(
            &txn,
            deps,
            ctx.actor(),
            "properties",
            "write",
            Scope::Tenant,
        )
        .await?
    {
        return Err(ServiceError::Forbidden {
            reason: "listing properties needs properties:write",
        });
    }
    Ok(txn)
}

/// Lists a property in the context's tenant. Records `property_listed`.
///
/// # Errors
/// `Forbidden` unless an owner or admin, or holding `properties:write`; `Db`.
pub async fn create_property<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    property: NewProperty,
    meta: &RequestMeta,
) -> Result<properties::Model>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = begin_lister(db, deps, ctx).await?;
    let now = deps.now();
    let id = PropertyId(deps.new_id(
        "properties",
        &format!(
            "{}/{}/{}",
            ctx.tenant_id(),
            property.address,
            now.timestamp_micros()
        ),
    ));
    let model = properties::Model {
        id,
        tenant_id: ctx.tenant_id(),
        title: property.title,
        rent: property.rent,
        deposit: property.deposit,
        currency: property.currency,
        prefecture: property.prefecture,
        city: property.city,
        address: property.address,
        latitude: property.latitude,
        longitude: property.longitude,
        features: json!(property.features),
        listed: true,
        created_at: now,
        updated_at: now,
    };
    properties::Entity::insert(properties::ActiveModel::from(model.clone()))
        .exec_without_returning(&txn)
        .await?;
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::PropertyListed, meta)
            .resource("property", id)
            .details(
                json!({ "rent": model.rent, "prefecture": model.prefecture, "city": model.city }),
            ),
    )
    .await?;
    txn.commit().await?;
    Ok(model)
}

/// Lists or unlists property `id` of the context's tenant. Records `property_updated`.
///
/// # Errors
/// `NotFound`; `Forbidden` as for [`create_property`]; `Db`.
pub async fn set_property_listed<C>(
    db: &C,
    deps: &Deps,
    ctx: &TenantCtx,
    id: PropertyId,
    listed: bool,
    meta: &RequestMeta,
) -> Result<()>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = begin_lister(db, deps, ctx).await?;
    let done = properties::Entity::update_many()
        .col_expr(properties::Column::Listed, Expr::value(listed))
        .col_expr(properties::Column::UpdatedAt, Expr::value(deps.now()))
        .filter(properties::Column::Id.eq(id))
        .filter(properties::Column::TenantId.eq(ctx.tenant_id()))
        .exec(&txn)
        .await?;
    if done.rows_affected == 0 {
        return Err(ServiceError::not_found("property", id));
    }
    record(
        &txn,
        deps,
        AuditEntry::by_member(ctx, AuditEvent::PropertyUpdated, meta)
            .resource("property", id)
            .details(json!({ "listed": listed })),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// One page of the context's tenant's listed properties matching `search`, after
/// `after` (the previous page's `next`). Any member may search.
///
/// # Errors
/// `Forbidden` for a non-member; `Db`.
pub async fn search_properties<C>(
    db: &C,
    ctx: &TenantCtx,
    search: &PropertySearch,
    after: Option<PropertyCursor>,
) -> Result<PropertyPage>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = ctx.begin(db).await?;
    let backend = txn.get_database_backend();
    let limit = usize::from(search.limit);
    // Rows the box admits but the radius does not are dropped here, so a page may take
    // more than one batch.
    let batch = if search.near.is_some() {
        limit * 4
    } else {
        limit
    };
    let mut items = Vec::with_capacity(limit);
    let mut cursor = after;
    let mut examined = 0;
    let filters = search.condition(backend);
    loop {
        let mut query = properties::Entity::find()
            .filter(properties::Column::TenantId.eq(ctx.tenant_id()))
            .filter(filters.clone());
        if let Some(at) = cursor {
            query = query.filter(
                Condition::any()
                    .add(properties::Column::Rent.gt(at.rent))
                    .add(
                        Condition::all()
                            .add(properties::Column::Rent.eq(at.rent))
                            .add(properties::Column::Id.gt(at.id)),
                    ),
            );
        }
        let rows = query
            .order_by_asc(properties::Column::Rent)
            .order_by_asc(properties::Column::Id)
            .limit(batch as u64)
            .all(&txn)
            .await?;
        let exhausted = rows.len() < batch;
        examined += rows.len();
        for row in rows {
            cursor = Some(PropertyCursor {
                rent: row.rent,
                id: row.id,
            });
            if search.within_radius(&row) {
                items.push(row);
                if items.len() == limit {
                    txn.commit().await?;
                    return Ok(PropertyPage {
                        items,
                        next: cursor,
                    });
                }
            }
        }
        if exhausted {
            txn.commit().await?;
            return Ok(PropertyPage { items, next: None });
        }
        if examined >= MAX_EXAMINED {
            // A short page, so one call's cost stays bounded; the next continues.
            txn.commit().await?;
            return Ok(PropertyPage {
                items,
                next: cursor,
            });
        }
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn distances_match_known_ones() {
        // Tokyo Station to Shin-Osaka: about 403 km.
        let d = distance_km((35.6812, 139.7671), (34.7335, 135.5003));
        assert!((d - 403.0).abs() < 5.0, "{d}");
        assert!(distance_km((35.0, 139.0), (35.0, 139.0)) < 1e-9);
    }

    #[test]
    fn searches_are_checked() {
        let ok = SearchInput {
            limit: 10,
            ..SearchInput::default()
        };
        assert!(PropertySearch::parse(&ok).is_ok());
        for bad in [
            SearchInput {
                limit: 0,
                ..ok.clone()
            },
            SearchInput {
                rent_min: Some(10),
                rent_max: Some(5),
                ..ok.clone()
            },
            SearchInput {
                near: Some(Near {
                    latitude: 95.0,
                    longitude: 0.0,
                    radius_km: 1.0,
                }),
                ..ok.clone()
            },
            SearchInput {
                near: Some(Near {
                    latitude: 35.0,
                    longitude: 139.0,
                    radius_km: f64::NAN,
                }),
                ..ok.clone()
            },
            SearchInput {
                features: &["Pets"],
                ..ok.clone()
            },
        ] {
            assert!(PropertySearch::parse(&bad).is_err(), "{bad:?}");
        }
    }
}
