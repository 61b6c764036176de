//! Property search benchmark. Prints figures and query plans; asserts only that both
//! sides found the same rows.
//!
//! 100,000 listings of one tenant (random rents, places, points around Tokyo and
//! features, from a fixed seed), then 300 random searches' first pages through
//! `search_properties` (as the runtime role on PostgreSQL, in its tenant transaction)
//! against the same first page hand-written for sqlx (one SELECT; on PostgreSQL as the
//! owner), interleaved: p50 and p99 of each. Then the plans of a place search, a
//! radius search and a features search, to show the indexes at work. PostgreSQL and
//! SQLite.
//!
//! Run: `cargo bench -p tests --bench rental`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use service::rental::{Near, PropertySearch, SearchInput, search_properties};
use std::time::Instant;
use tests::access_world::world;
use tests::{Backend, Start, TestDb, run_case};

const LISTINGS: usize = 100_000;
const SEARCHES: usize = 300;
const FEATURES: [&str; 5] = [
    "pets_allowed",
    "balcony",
    "auto_lock",
    "furnished",
    "parking",
];
const PLACES: [(&str, &str); 6] = [
    ("東京都", "渋谷区"),
    ("東京都", "新宿区"),
    ("東京都", "世田谷区"),
    ("東京都", "港区"),
    ("神奈川県", "川崎市"),
    ("神奈川県", "横浜市"),
];

fn main() {
    // SAFETY: set before any thread starts; fail instead of skipping a missing server.
    unsafe { std::env::set_var("REQUIRE_BACKENDS", "sqlite,postgres") };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        for backend in [Backend::Postgres, Backend::Sqlite] {
            run_case(
                backend,
                "bench_property_search",
                Start::Migrated,
                |t| async move {
                    search(&t).await;
                },
            )
            .await;
        }
    });
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The listings, inserted by the owner a thousand rows a statement.
async fn fill(t: &TestDb, tenant: entity::TenantId) {
    use entity::rental::properties;
    use sea_orm::EntityTrait;
    let backend = t.owner.get_database_backend();
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let now = tests::fixtures::start_time();
    for chunk in 0..LISTINGS / 1000 {
        let mut rows = Vec::with_capacity(1000);
        for n in 0..1000 {
            let (prefecture, city) = PLACES[rng.random_range(0..PLACES.len())];
            let rent: i64 = 40_000 + 1_000 * rng.random_range(0..260i64);
            let features: Vec<&str> = FEATURES
                .iter()
                .copied()
                .filter(|_| rng.random_bool(0.3))
                .collect();
            rows.push(properties::ActiveModel::from(properties::Model {
                id: entity::PropertyId(uuid::Uuid::from_u128(rng.random())),
                tenant_id: tenant,
                title: format!("物件 {}", chunk * 1000 + n),
                rent,
                deposit: rent,
                currency: "JPY".to_owned(),
                prefecture: prefecture.to_owned(),
                city: city.to_owned(),
                address: "1-2-3".to_owned(),
                latitude: rng.random_range(35.40..35.90),
                longitude: rng.random_range(139.40..139.90),
                features: serde_json::json!(features),
                listed: rng.random_bool(0.95),
                created_at: now,
                updated_at: now,
            }));
        }
        properties::Entity::insert_many(rows)
            .exec_without_returning(&t.owner)
            .await
            .expect("listings");
    }
    let analyze = if backend == DbBackend::Postgres {
        "VACUUM ANALYZE properties"
    } else {
        "ANALYZE"
    };
    t.owner
        .execute_raw(Statement::from_string(backend, analyze.to_owned()))
        .await
        .expect("analyzed");
}

/// The first page of `search` as one hand-written SELECT (without the exact distance,
/// which the box approximates; the service checks it in Rust).
fn hand_written(
    backend: DbBackend,
    tenant: entity::TenantId,
    input: &SearchInput<'_>,
) -> Statement {
    let placeholder = if backend == DbBackend::Postgres {
        "$1"
    } else {
        "?"
    };
    let mut sql = format!("SELECT * FROM properties WHERE tenant_id = {placeholder} AND listed");
    if let Some(lo) = input.rent_min {
        sql.push_str(&format!(" AND rent >= {lo}"));
    }
    if let Some(hi) = input.rent_max {
        sql.push_str(&format!(" AND rent <= {hi}"));
    }
    if let Some(p) = input.prefecture {
        sql.push_str(&format!(" AND prefecture = {}", quote(p)));
    }
    if let Some(c) = input.city {
        sql.push_str(&format!(" AND city = {}", quote(c)));
    }
    if let Some(near) = input.near {
        let d_lat = near.radius_km / 111.2 * 1.01;
        let d_lng = d_lat / (near.latitude.abs() + d_lat).to_radians().cos();
        sql.push_str(&format!(
            " AND latitude BETWEEN {} AND {} AND longitude BETWEEN {} AND {}",
            near.latitude - d_lat,
            near.latitude + d_lat,
            near.longitude - d_lng,
            near.longitude + d_lng
        ));
    }
    // As the service writes it: one containment on PostgreSQL, one EXISTS per feature
    // on SQLite.
    if !input.features.is_empty() {
        match backend {
            DbBackend::Postgres => sql.push_str(&format!(
                " AND features @> '{}'",
                serde_json::json!(input.features)
            )),
            _ => {
                for feature in input.features {
                    sql.push_str(&format!(
                        " AND EXISTS (SELECT 1 FROM json_each(properties.features) AS f WHERE f.value = '{feature}')"
                    ));
                }
            }
        }
    }
    sql.push_str(&format!(" ORDER BY rent, id LIMIT {}", input.limit));
    Statement::from_sql_and_values(backend, sql, [tenant.into_uuid().into()])
}

async fn search(t: &TestDb) {
    let backend = t.owner.get_database_backend();
    let w = world(t).await;
    let started = Instant::now();
    fill(t, w.acme.id).await;
    println!(
        "property search on {backend:?}: {LISTINGS} listings of one tenant (loaded in {:.1} s), \
         {SEARCHES} random searches, first page of 20",
        started.elapsed().as_secs_f64()
    );
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let (mut ours, mut hand) = (Vec::new(), Vec::new());
    let mut wanted_sets: Vec<Vec<&str>> = Vec::new();
    for _ in 0..SEARCHES {
        wanted_sets.push(
            FEATURES
                .iter()
                .copied()
                .filter(|_| rng.random_bool(0.2))
                .collect(),
        );
    }
    for (round, wanted) in wanted_sets.iter().enumerate() {
        let place = rng
            .random_bool(0.5)
            .then(|| PLACES[rng.random_range(0..PLACES.len())]);
        let input = SearchInput {
            rent_min: rng
                .random_bool(0.5)
                .then(|| 40_000 + 1_000 * rng.random_range(0..100i64)),
            rent_max: rng
                .random_bool(0.5)
                .then(|| 150_000 + 1_000 * rng.random_range(0..150i64)),
            prefecture: place.map(|p| p.0),
            city: place.filter(|_| rng.random_bool(0.5)).map(|p| p.1),
            near: rng.random_bool(0.4).then(|| Near {
                latitude: rng.random_range(35.5..35.8),
                longitude: rng.random_range(139.5..139.8),
                radius_km: rng.random_range(1.0..10.0),
            }),
            features: wanted,
            limit: 20,
        };
        let search = PropertySearch::parse(&input).expect("valid");
        let start = Instant::now();
        let page = search_properties(&t.db, &w.owner, &search, None)
            .await
            .expect("searches");
        let service_micros = start.elapsed().as_secs_f64() * 1e6;
        let statement = hand_written(backend, w.acme.id, &input);
        let start = Instant::now();
        let rows = t
            .owner
            .query_all_raw(statement)
            .await
            .expect("hand-written");
        let hand_micros = start.elapsed().as_secs_f64() * 1e6;
        if input.near.is_none() {
            assert_eq!(page.items.len(), rows.len(), "the same first page");
        }
        if round >= 20 {
            ours.push(service_micros);
            hand.push(hand_micros);
        }
    }
    ours.sort_by(f64::total_cmp);
    hand.sort_by(f64::total_cmp);
    println!(
        "  search_properties (tenant transaction{})   p50 {:>8.0} µs   p99 {:>8.0} µs",
        if backend == DbBackend::Postgres {
            ", runtime role"
        } else {
            ""
        },
        percentile(&ours, 0.5),
        percentile(&ours, 0.99)
    );
    println!(
        "  the same SELECT hand-written                  p50 {:>8.0} µs   p99 {:>8.0} µs",
        percentile(&hand, 0.5),
        percentile(&hand, 0.99)
    );
    println!(
        "  ratio (p50): {:.2}x",
        percentile(&ours, 0.5) / percentile(&hand, 0.5)
    );
    let explain = if backend == DbBackend::Postgres {
        "EXPLAIN (COSTS OFF)"
    } else {
        "EXPLAIN QUERY PLAN"
    };
    for (what, input) in [
        (
            "a place and a rent range",
            SearchInput {
                prefecture: Some("東京都"),
                city: Some("渋谷区"),
                rent_max: Some(120_000),
                limit: 20,
                ..SearchInput::default()
            },
        ),
        (
            "a radius",
            SearchInput {
                near: Some(Near {
                    latitude: 35.66,
                    longitude: 139.70,
                    radius_km: 2.0,
                }),
                limit: 20,
                ..SearchInput::default()
            },
        ),
        (
            "required features",
            SearchInput {
                features: &["pets_allowed", "parking", "furnished", "balcony"],
                limit: 20,
                ..SearchInput::default()
            },
        ),
    ] {
        let mut statement = hand_written(backend, w.acme.id, &input);
        statement.sql = format!("{explain} {}", statement.sql);
        let plan: Vec<String> = t
            .owner
            .query_all_raw(statement)
            .await
            .expect("plan")
            .iter()
            .map(|row| {
                row.try_get_by_index::<String>(if backend == DbBackend::Postgres { 0 } else { 3 })
                    .unwrap_or_default()
            })
            .collect();
        println!("  plan of {what}:");
        for line in plan {
            println!("    {line}");
        }
    }
}
