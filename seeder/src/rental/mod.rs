//! Rental listings, through `service::rental`: Rento's properties in Tokyo and
//! Kanagawa (Japanese addresses), and one company flat each for Acme and Healthy
//! Stellar.

use crate::{SeedError, fixture_error};
use chrono::Duration;
use entity::{TenantId, UserId};
use sea_orm::{ConnectionTrait, TransactionTrait};
use service::rental::{NewProperty, PropertyInput, create_property};
use service::tenancy::TenantCtx;
use service::{Deps, ManualClock, RequestMeta};
use std::collections::HashMap;

/// (tenant, title, rent, prefecture, city, address, latitude, longitude, features)
type Listing = (
    &'static str,
    &'static str,
    i64,
    &'static str,
    &'static str,
    &'static str,
    f64,
    f64,
    &'static [&'static str],
);

const LISTINGS: &[Listing] = &[
    (
        "rento",
        "渋谷駅徒歩7分 1LDK",
        185_000,
        "東京都",
        "渋谷区",
        "神南一丁目2-3",
        35.6640,
        139.6982,
        &["auto_lock", "balcony"],
    ),
    (
        "rento",
        "代々木公園そば ペット可 2DK",
        210_000,
        "東京都",
        "渋谷区",
        "富ヶ谷二丁目14-5",
        35.6695,
        139.6880,
        &["pets_allowed", "balcony"],
    ),
    (
        "rento",
        "新宿御苑前 ワンルーム",
        98_000,
        "東京都",
        "新宿区",
        "新宿二丁目5-10",
        35.6880,
        139.7100,
        &["auto_lock", "furnished"],
    ),
    (
        "rento",
        "三軒茶屋 ファミリー向け 3LDK",
        265_000,
        "東京都",
        "世田谷区",
        "三軒茶屋一丁目30-8",
        35.6436,
        139.6708,
        &["parking", "balcony", "pets_allowed"],
    ),
    (
        "rento",
        "武蔵小杉 タワーマンション 1LDK",
        160_000,
        "神奈川県",
        "川崎市",
        "中原区小杉町三丁目",
        35.5760,
        139.6595,
        &["auto_lock", "parking"],
    ),
    (
        "rento",
        "吉祥寺 井の頭公園近く 1K",
        88_000,
        "東京都",
        "武蔵野市",
        "吉祥寺南町一丁目",
        35.7003,
        139.5800,
        &["furnished"],
    ),
    (
        "acme",
        "Acme corporate flat, Shibuya",
        150_000,
        "東京都",
        "渋谷区",
        "道玄坂一丁目",
        35.6580,
        139.6982,
        &["furnished", "auto_lock"],
    ),
    (
        "healthy-stellar",
        "On-call room near the clinic",
        70_000,
        "東京都",
        "港区",
        "芝公園四丁目",
        35.6586,
        139.7454,
        &["furnished"],
    ),
];

pub(crate) async fn load<C>(
    db: &C,
    deps: &Deps,
    clock: &ManualClock,
    tenants: &HashMap<&str, TenantId>,
    owners: &HashMap<&str, UserId>,
) -> Result<(), SeedError>
where
    C: ConnectionTrait + TransactionTrait,
{
    let meta = RequestMeta::system();
    for &(slug, title, rent, prefecture, city, address, latitude, longitude, features) in LISTINGS {
        let (Some(&tenant), Some(&owner)) = (tenants.get(slug), owners.get(slug)) else {
            continue;
        };
        let on_err = fixture_error(format!("{slug} property {title}"));
        let ctx = TenantCtx::for_member(db, tenant, owner)
            .await
            .map_err(&on_err)?;
        let listing = NewProperty::parse(&PropertyInput {
            title,
            rent,
            deposit: rent,
            currency: "JPY",
            prefecture,
            city,
            address,
            latitude,
            longitude,
            features,
        })
        .map_err(&on_err)?;
        create_property(db, deps, &ctx, listing, &meta)
            .await
            .map_err(&on_err)?;
        clock.advance(Duration::seconds(1));
    }
    Ok(())
}
