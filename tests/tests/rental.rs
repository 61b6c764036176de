//! Rental listings: search against a filter in Rust over the same randomised data,
//! keyset pages, Japanese text, bad input, who may list.

use entity::rental::properties;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sea_orm::{EntityTrait, PaginatorTrait};
use service::ServiceError;
use service::rental::{
    Near, NewProperty, PropertyInput, PropertySearch, SearchInput, create_property,
    search_properties, set_property_listed,
};
use service::tenancy::TenantCtx;
use tests::TestDb;
use tests::access_world::world;
use tests::fixtures::meta;

tests::backend_tests!(Migrated:
    rental_search_returns_exactly_what_a_filter_in_rust_returns,
    rental_japanese_text_round_trips_unchanged,
    rental_bad_input_is_refused_and_writes_nothing,
    rental_members_search_but_only_managers_list,
    rental_a_radius_across_the_antimeridian_finds_both_sides,
);

const FEATURES: [&str; 5] = [
    "pets_allowed",
    "balcony",
    "auto_lock",
    "furnished",
    "parking",
];
const PLACES: [(&str, &str); 4] = [
    ("東京都", "渋谷区"),
    ("東京都", "新宿区"),
    ("東京都", "世田谷区"),
    ("神奈川県", "川崎市"),
];

fn input<'a>(
    title: &'a str,
    rent: i64,
    place: (&'a str, &'a str),
    point: (f64, f64),
    features: &'a [&'a str],
) -> PropertyInput<'a> {
    PropertyInput {
        title,
        rent,
        deposit: rent,
        currency: "JPY",
        prefecture: place.0,
        city: place.1,
        address: "1-2-3",
        latitude: point.0,
        longitude: point.1,
        features,
    }
}

async fn all_pages(t: &TestDb, ctx: &TenantCtx, search: &PropertySearch) -> Vec<properties::Model> {
    let mut found = Vec::new();
    let mut after = None;
    for _ in 0..1000 {
        let page = search_properties(&t.db, ctx, search, after)
            .await
            .expect("searches");
        found.extend(page.items);
        match page.next {
            Some(next) => after = Some(next),
            None => return found,
        }
    }
    panic!("the pages never end");
}

async fn rental_search_returns_exactly_what_a_filter_in_rust_returns(t: TestDb) {
    let w = world(&t).await;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut created = Vec::new();
    for n in 0..300 {
        // Few distinct rents, so pages break inside runs of equal rent.
        let rent = 50_000 + 5_000 * rng.random_range(0..20i64);
        let place = PLACES[rng.random_range(0..PLACES.len())];
        let point = (
            rng.random_range(35.45..35.85),
            rng.random_range(139.45..139.85),
        );
        let features: Vec<&str> = FEATURES
            .iter()
            .copied()
            .filter(|_| rng.random_bool(0.4))
            .collect();
        let title = format!("物件 {n}");
        let listing =
            NewProperty::parse(&input(&title, rent, place, point, &features)).expect("valid");
        let mut model = create_property(&t.db, &w.deps, &w.owner, listing, &meta())
            .await
            .expect("listed");
        if rng.random_bool(0.1) {
            set_property_listed(&t.db, &w.deps, &w.owner, model.id, false, &meta())
                .await
                .expect("unlisted");
            model.listed = false;
        }
        created.push(model);
    }
    // Another tenant's listings in the same streets, which no search here may return.
    let carol = tests::fixtures::user(&t.db, &w.deps, "carol").await;
    let globex = tests::fixtures::tenant(&t.db, &w.deps, "globex", &carol).await;
    let globex_owner = TenantCtx::for_member(&t.db, globex.id, carol.id)
        .await
        .expect("owner");
    for n in 0..30i64 {
        let point = (
            rng.random_range(35.45..35.85),
            rng.random_range(139.45..139.85),
        );
        let title = format!("他社物件 {n}");
        let listing = NewProperty::parse(&input(
            &title,
            50_000 + 5_000 * (n % 20),
            PLACES[(n % 4) as usize],
            point,
            &FEATURES,
        ))
        .expect("valid");
        create_property(&t.db, &w.deps, &globex_owner, listing, &meta())
            .await
            .expect("listed");
    }
    created.sort_by_key(|p| (p.rent, p.id));
    let mut compared = 0;
    let (mut radius_hits, mut feature_hits) = (0, 0);
    for _ in 0..40 {
        let lo = rng
            .random_bool(0.5)
            .then(|| 50_000 + 5_000 * rng.random_range(0..10i64));
        let hi = rng
            .random_bool(0.5)
            .then(|| 100_000 + 5_000 * rng.random_range(0..10i64));
        let place = rng
            .random_bool(0.4)
            .then(|| PLACES[rng.random_range(0..PLACES.len())]);
        let city_too = rng.random_bool(0.5);
        let near = rng.random_bool(0.5).then(|| Near {
            latitude: rng.random_range(35.5..35.8),
            longitude: rng.random_range(139.5..139.8),
            radius_km: rng.random_range(1.0..15.0),
        });
        let wanted: Vec<&str> = FEATURES
            .iter()
            .copied()
            .filter(|_| rng.random_bool(0.25))
            .collect();
        let search = PropertySearch::parse(&SearchInput {
            rent_min: lo,
            rent_max: hi,
            prefecture: place.map(|p| p.0),
            city: place.filter(|_| city_too).map(|p| p.1),
            near,
            features: &wanted,
            limit: rng.random_range(1..8),
        })
        .expect("valid");
        let expected: Vec<_> = created
            .iter()
            .filter(|p| search.matches(p))
            .map(|p| p.id)
            .collect();
        let found: Vec<_> = all_pages(&t, &w.owner, &search)
            .await
            .into_iter()
            .map(|p| p.id)
            .collect();
        assert_eq!(found, expected, "{search:?}");
        compared += expected.len();
        if near.is_some() {
            radius_hits += expected.len();
        }
        if !wanted.is_empty() {
            feature_hits += expected.len();
        }
    }
    assert!(
        compared > 100,
        "the searches found enough to compare ({compared})"
    );
    assert!(
        radius_hits > 10 && feature_hits > 10,
        "radius {radius_hits}, features {feature_hits}"
    );
}

async fn rental_japanese_text_round_trips_unchanged(t: TestDb) {
    let w = world(&t).await;
    let title = "渋谷の1LDK・ペット可 🏠「南向き」";
    let address = "神南一丁目２番３号 グランドメゾン渋谷 ５０１号室";
    let listing = NewProperty::parse(&PropertyInput {
        address,
        ..input(
            title,
            128_000,
            ("東京都", "渋谷区"),
            (35.6640, 139.6982),
            &["pets_allowed"],
        )
    })
    .expect("valid");
    create_property(&t.db, &w.deps, &w.owner, listing, &meta())
        .await
        .expect("listed");
    let search = PropertySearch::parse(&SearchInput {
        prefecture: Some("東京都"),
        city: Some("渋谷区"),
        limit: 10,
        ..SearchInput::default()
    })
    .expect("valid");
    let page = search_properties(&t.db, &w.owner, &search, None)
        .await
        .expect("searches");
    assert_eq!(page.items.len(), 1);
    let found = &page.items[0];
    assert_eq!(found.title, title);
    assert_eq!(found.address, address);
    assert_eq!(
        (found.prefecture.as_str(), found.city.as_str()),
        ("東京都", "渋谷区")
    );
    // Places compare exactly on every backend: another kana or case is another place.
    let listing = NewProperty::parse(&input(
        "ハイツ",
        70_000,
        ("Hokkaido", "ハコダテ"),
        (41.77, 140.73),
        &[],
    ))
    .expect("valid");
    create_property(&t.db, &w.deps, &w.owner, listing, &meta())
        .await
        .expect("listed");
    for (prefecture, city, found) in [
        ("Hokkaido", "ハコダテ", 1),
        ("hokkaido", "ハコダテ", 0),
        ("Hokkaido", "バコダテ", 0),
        ("Hokkaido", "はこだて", 0),
    ] {
        let search = PropertySearch::parse(&SearchInput {
            prefecture: Some(prefecture),
            city: Some(city),
            limit: 10,
            ..SearchInput::default()
        })
        .expect("valid");
        let page = search_properties(&t.db, &w.owner, &search, None)
            .await
            .expect("searches");
        assert_eq!(page.items.len(), found, "{prefecture} {city}");
    }
}

async fn rental_bad_input_is_refused_and_writes_nothing(t: TestDb) {
    let _w = world(&t).await;
    let ok = input("部屋", 80_000, ("東京都", "渋谷区"), (35.66, 139.70), &[]);
    for (bad, field) in [
        (
            PropertyInput {
                title: "",
                ..ok.clone()
            },
            "title",
        ),
        (
            PropertyInput {
                rent: -1,
                ..ok.clone()
            },
            "rent",
        ),
        (
            PropertyInput {
                currency: "yen",
                ..ok.clone()
            },
            "currency",
        ),
        (
            PropertyInput {
                latitude: 91.0,
                ..ok.clone()
            },
            "coordinates",
        ),
        (
            PropertyInput {
                longitude: f64::NAN,
                ..ok.clone()
            },
            "coordinates",
        ),
        (
            PropertyInput {
                features: &["Pets Allowed"],
                ..ok.clone()
            },
            "features",
        ),
        (
            PropertyInput {
                city: &"区".repeat(101),
                ..ok.clone()
            },
            "city",
        ),
    ] {
        let err = NewProperty::parse(&bad).expect_err("refused");
        assert!(
            matches!(err, ServiceError::Validation { field: f, .. } if f == field),
            "{field}: {err:?}"
        );
    }
    assert_eq!(
        properties::Entity::find()
            .count(&t.owner)
            .await
            .expect("counts"),
        0
    );
}

async fn rental_members_search_but_only_managers_list(t: TestDb) {
    let w = world(&t).await;
    let bob = TenantCtx::for_member(&t.db, w.acme.id, w.bob)
        .await
        .expect("member");
    let listing = NewProperty::parse(&input(
        "部屋",
        80_000,
        ("東京都", "渋谷区"),
        (35.66, 139.70),
        &[],
    ))
    .expect("valid");
    let refused = create_property(&t.db, &w.deps, &bob, listing.clone(), &meta()).await;
    assert!(
        matches!(refused, Err(ServiceError::Forbidden { .. })),
        "{refused:?}"
    );
    let listed = create_property(&t.db, &w.deps, &w.owner, listing, &meta())
        .await
        .expect("the owner lists");
    let search = PropertySearch::parse(&SearchInput {
        limit: 5,
        ..SearchInput::default()
    })
    .expect("valid");
    let page = search_properties(&t.db, &bob, &search, None)
        .await
        .expect("members search");
    assert_eq!(
        page.items.iter().map(|p| p.id).collect::<Vec<_>>(),
        [listed.id]
    );
    let refused = set_property_listed(&t.db, &w.deps, &bob, listed.id, false, &meta()).await;
    assert!(
        matches!(refused, Err(ServiceError::Forbidden { .. })),
        "{refused:?}"
    );
}

async fn rental_a_radius_across_the_antimeridian_finds_both_sides(t: TestDb) {
    let w = world(&t).await;
    let mut ids = Vec::new();
    for (title, longitude) in [("east", 179.95), ("west", -179.95), ("far", 170.0)] {
        let listing = NewProperty::parse(&input(
            title,
            60_000,
            ("Fiji", "Taveuni"),
            (-16.8, longitude),
            &[],
        ))
        .expect("valid");
        ids.push(
            create_property(&t.db, &w.deps, &w.owner, listing, &meta())
                .await
                .expect("listed")
                .id,
        );
    }
    for longitude in [179.99, -179.99] {
        let search = PropertySearch::parse(&SearchInput {
            near: Some(Near {
                latitude: -16.8,
                longitude,
                radius_km: 30.0,
            }),
            limit: 1,
            ..SearchInput::default()
        })
        .expect("valid");
        let mut found: Vec<_> = all_pages(&t, &w.owner, &search)
            .await
            .into_iter()
            .map(|p| p.id)
            .collect();
        found.sort();
        let mut expected = vec![ids[0], ids[1]];
        expected.sort();
        assert_eq!(found, expected, "around {longitude}");
    }
}
