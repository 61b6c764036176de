//! API keys: shown once and stored as SHA-256 and prefix; a mistyped key refused
//! before any query; revoked, expired and rotated-out keys refused; `last_used_at`
//! written at most once a minute; scopes checked against the catalogue; another
//! tenant's members see and change nothing.

use chrono::Duration;
use entity::audit::audit_logs;
use entity::identity::api_keys;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter};
use service::identity::{
    ApiKeyFormatError, IssuedApiKey, NewApiKey, authenticate_api_key, create_api_key,
    list_api_keys, parse_api_key, revoke_api_key, rotate_api_key,
};
use service::tenancy::TenantCtx;
use service::{ApiKeyEnvironment, ServiceError};
use sha2::{Digest, Sha256};
use tests::TestDb;
use tests::access_world::{World, role, world};
use tests::fixtures::{self, meta};

tests::backend_tests!(Migrated:
    api_keys_of_a_deactivated_tenant_are_refused_and_not_stamped,
    api_keys_are_shown_once_and_stored_as_hash_and_prefix,
    api_keys_authenticate_and_a_mistyped_key_is_refused_without_a_query,
    api_keys_revoked_and_expired_are_refused,
    api_keys_rotation_keeps_the_old_key_until_the_grace_period_ends,
    api_keys_last_used_at_is_written_at_most_once_a_minute,
    api_keys_scopes_are_checked_and_a_refusal_writes_nothing,
    api_keys_of_a_tenant_are_out_of_reach_of_other_tenants_and_plain_members,
);

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Acme with the permissions the keys below name in the catalogue.
async fn acme(t: &TestDb) -> World {
    let w = world(t).await;
    role(t, &w, "deployer", &[("agents", "read"), ("agents", "run")]).await;
    w
}

async fn create(t: &TestDb, w: &World, name: &str) -> IssuedApiKey {
    create_api_key(
        &t.db,
        &w.deps,
        &w.owner,
        NewApiKey {
            name: name.to_owned(),
            scopes: vec!["agents:run".to_owned(), "agents:read".to_owned()],
            expires_at: None,
        },
        &meta(),
    )
    .await
    .expect("created")
}

async fn authenticate(
    t: &TestDb,
    w: &World,
    key: &str,
) -> Result<service::identity::AuthenticatedApiKey, ServiceError> {
    authenticate_api_key(&t.db, &w.deps, key, &meta()).await
}

async fn stored(t: &TestDb, issued: &IssuedApiKey) -> api_keys::Model {
    api_keys::Entity::find_by_id(issued.key.id)
        .one(&t.owner)
        .await
        .expect("query")
        .expect("the key's row")
}

async fn api_keys_are_shown_once_and_stored_as_hash_and_prefix(t: TestDb) {
    let w = acme(&t).await;
    let issued = create(&t, &w, "CI deploy").await;
    let key = issued.secret.expose().to_owned();
    assert!(key.starts_with("sk_test_"), "{}", issued.key.prefix);
    assert_eq!(key.len(), "sk_test_".len() + 43 + 1 + 6);
    assert!(!format!("{issued:?}").contains(&key), "Debug hides the key");
    assert!(!format!("{:?}", issued.secret).contains(&key[8..]));
    assert_eq!(issued.key.scopes, ["agents:read", "agents:run"], "sorted");

    let row = stored(&t, &issued).await;
    assert_eq!(row.key_hash.expose(), sha256_hex(&key));
    assert_eq!(row.prefix, &key[..16]);
    assert_eq!(issued.key.prefix, row.prefix);
    let row_text = format!(
        "{} {} {} {}",
        row.name,
        row.prefix,
        row.scopes,
        row.key_hash.expose()
    );
    assert!(
        !row_text.contains(&key[8..]),
        "the key is nowhere in its row"
    );

    let events = audit_logs::Entity::find()
        .filter(audit_logs::Column::EventType.eq("api_key_created"))
        .all(&t.owner)
        .await
        .expect("audit");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].tenant_id, Some(w.acme.id));
    assert_eq!(events[0].actor_user_id, Some(w.alice));
    let all = audit_logs::Entity::find()
        .all(&t.owner)
        .await
        .expect("audit");
    assert!(
        all.iter()
            .all(|e| !e.details.to_string().contains(&key[8..])),
        "the key is in no audit row"
    );

    let listed = list_api_keys(&t.db, &w.owner).await.expect("lists");
    assert_eq!(listed, vec![issued.key.clone()]);
    assert!(
        !format!("{listed:?}").contains(row.key_hash.expose()),
        "no hash listed"
    );
}

async fn api_keys_authenticate_and_a_mistyped_key_is_refused_without_a_query(t: TestDb) {
    let w = acme(&t).await;
    let issued = create(&t, &w, "CI deploy").await;
    let key = issued.secret.expose().to_owned();
    let ok = authenticate(&t, &w, &key).await.expect("authenticates");
    assert_eq!(ok.key_id, issued.key.id);
    assert_eq!(ok.tenant_id, w.acme.id);
    assert_eq!(ok.scopes, ["agents:read", "agents:run"]);

    // One character of the body changed: the checksum no longer matches.
    let mut typo: Vec<char> = key.chars().collect();
    typo[20] = if typo[20] == 'a' { 'b' } else { 'a' };
    let typo: String = typo.into_iter().collect();
    assert_eq!(
        parse_api_key(&typo, ApiKeyEnvironment::Test),
        Err(ApiKeyFormatError::Checksum)
    );
    // A connection that cannot run any statement: the answer comes before one.
    let nowhere = DatabaseConnection::default();
    for (presented, expected) in [
        (typo.as_str(), ApiKeyFormatError::Checksum),
        (&key[..key.len() - 1], ApiKeyFormatError::Encoding),
        ("sk_test_short", ApiKeyFormatError::Shape),
        ("rt_0123", ApiKeyFormatError::Shape),
        (
            &key.replacen("sk_test_", "sk_prod_", 1),
            ApiKeyFormatError::UnknownEnvironment,
        ),
        (&"x".repeat(500), ApiKeyFormatError::TooLong),
    ] {
        let result = authenticate_api_key(&nowhere, &w.deps, presented, &meta()).await;
        assert!(
            matches!(&result, Err(ServiceError::MalformedApiKey(e)) if *e == expected),
            "{expected:?}: {result:?}"
        );
    }
    // The same key presented to a live deployment.
    assert!(matches!(
        parse_api_key(&key, ApiKeyEnvironment::Live),
        Err(ApiKeyFormatError::WrongEnvironment {
            found: "test",
            expected: "live"
        })
    ));
    // A well-formed key: only now is the database asked.
    let other = create(&t, &w, "throwaway").await;
    let result = authenticate_api_key(&nowhere, &w.deps, other.secret.expose(), &meta()).await;
    assert!(
        matches!(result, Err(ServiceError::Db(_))),
        "this one needs the database: {result:?}"
    );
}

async fn api_keys_revoked_and_expired_are_refused(t: TestDb) {
    let w = acme(&t).await;
    let revoked = create(&t, &w, "revoked").await;
    revoke_api_key(&t.db, &w.deps, &w.owner, revoked.key.id, &meta())
        .await
        .expect("revoked");
    let result = authenticate(&t, &w, revoked.secret.expose()).await;
    assert!(
        matches!(result, Err(ServiceError::ApiKeyRevoked)),
        "{result:?}"
    );
    let again = revoke_api_key(&t.db, &w.deps, &w.owner, revoked.key.id, &meta()).await;
    assert!(
        matches!(again, Err(ServiceError::Conflict { .. })),
        "{again:?}"
    );

    let expiring = create_api_key(
        &t.db,
        &w.deps,
        &w.owner,
        NewApiKey {
            name: "expiring".to_owned(),
            scopes: vec!["agents:read".to_owned()],
            expires_at: Some(w.deps.now() + Duration::hours(1)),
        },
        &meta(),
    )
    .await
    .expect("created");
    authenticate(&t, &w, expiring.secret.expose())
        .await
        .expect("works before its expiry");
    w.clock.advance(Duration::hours(1));
    let result = authenticate(&t, &w, expiring.secret.expose()).await;
    assert!(
        matches!(
            result,
            Err(ServiceError::Expired {
                what: "API key",
                ..
            })
        ),
        "{result:?}"
    );

    let rejected = audit_logs::Entity::find()
        .filter(audit_logs::Column::EventType.eq("api_key_rejected"))
        .filter(audit_logs::Column::TenantId.eq(w.acme.id))
        .count(&t.owner)
        .await
        .expect("audit");
    assert_eq!(
        rejected, 2,
        "each refusal of a known key is in the tenant's trail"
    );
}

async fn api_keys_rotation_keeps_the_old_key_until_the_grace_period_ends(t: TestDb) {
    let w = acme(&t).await;
    let old = create(&t, &w, "CI deploy").await;
    let new = rotate_api_key(
        &t.db,
        &w.deps,
        &w.owner,
        old.key.id,
        Duration::hours(1),
        &meta(),
    )
    .await
    .expect("rotated");
    assert_ne!(new.secret.expose(), old.secret.expose());
    assert_eq!(new.key.scopes, old.key.scopes);
    assert_eq!(new.key.name, old.key.name);
    let replaced = stored(&t, &old).await;
    assert_eq!(replaced.replaced_by, Some(new.key.id));

    w.clock.advance(Duration::minutes(59));
    authenticate(&t, &w, old.secret.expose())
        .await
        .expect("the old key works during the grace period");
    authenticate(&t, &w, new.secret.expose())
        .await
        .expect("the new key works");
    let twice = rotate_api_key(
        &t.db,
        &w.deps,
        &w.owner,
        old.key.id,
        Duration::hours(1),
        &meta(),
    )
    .await;
    assert!(
        matches!(twice, Err(ServiceError::Conflict { .. })),
        "{twice:?}"
    );

    w.clock.advance(Duration::minutes(1));
    let result = authenticate(&t, &w, old.secret.expose()).await;
    assert!(
        matches!(result, Err(ServiceError::ApiKeyReplaced { .. })),
        "{result:?}"
    );
    authenticate(&t, &w, new.secret.expose())
        .await
        .expect("the new key still works");

    let too_long = rotate_api_key(
        &t.db,
        &w.deps,
        &w.owner,
        new.key.id,
        Duration::days(30),
        &meta(),
    )
    .await;
    assert!(
        matches!(
            too_long,
            Err(ServiceError::Validation { field: "grace", .. })
        ),
        "{too_long:?}"
    );
}

async fn api_keys_last_used_at_is_written_at_most_once_a_minute(t: TestDb) {
    let w = acme(&t).await;
    let issued = create(&t, &w, "CI deploy").await;
    let key = issued.secret.expose();
    assert_eq!(stored(&t, &issued).await.last_used_at, None);
    let first = w.deps.now();
    authenticate(&t, &w, key).await.expect("works");
    assert_eq!(stored(&t, &issued).await.last_used_at, Some(first));
    w.clock.advance(Duration::seconds(59));
    authenticate(&t, &w, key).await.expect("works");
    assert_eq!(
        stored(&t, &issued).await.last_used_at,
        Some(first),
        "not within the minute"
    );
    w.clock.advance(Duration::seconds(2));
    authenticate(&t, &w, key).await.expect("works");
    assert_eq!(
        stored(&t, &issued).await.last_used_at,
        Some(w.deps.now()),
        "after it"
    );
}

async fn api_keys_scopes_are_checked_and_a_refusal_writes_nothing(t: TestDb) {
    let w = acme(&t).await;
    let rows = |t: &TestDb| {
        let owner = t.owner.clone();
        async move {
            (
                api_keys::Entity::find().count(&owner).await.expect("count"),
                audit_logs::Entity::find()
                    .count(&owner)
                    .await
                    .expect("count"),
            )
        }
    };
    let before = rows(&t).await;
    for scopes in [
        vec!["agents:fly"],
        vec!["spaceships:*"],
        vec!["agents"],
        vec!["Agents:Read"],
        vec![],
    ] {
        let result = create_api_key(
            &t.db,
            &w.deps,
            &w.owner,
            NewApiKey {
                name: "bad".to_owned(),
                scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
                expires_at: None,
            },
            &meta(),
        )
        .await;
        assert!(
            matches!(
                result,
                Err(ServiceError::Validation {
                    field: "scopes",
                    ..
                })
            ),
            "{scopes:?}: {result:?}"
        );
    }
    let past = create_api_key(
        &t.db,
        &w.deps,
        &w.owner,
        NewApiKey {
            name: "past".to_owned(),
            scopes: vec!["agents:read".to_owned()],
            expires_at: Some(w.deps.now()),
        },
        &meta(),
    )
    .await;
    assert!(
        matches!(
            past,
            Err(ServiceError::Validation {
                field: "expires_at",
                ..
            })
        ),
        "{past:?}"
    );
    assert_eq!(rows(&t).await, before, "nothing written");

    // Wildcards over catalogued names are scopes too.
    let wide = create_api_key(
        &t.db,
        &w.deps,
        &w.owner,
        NewApiKey {
            name: "wide".to_owned(),
            scopes: vec!["agents:*".to_owned(), "*:read".to_owned()],
            expires_at: None,
        },
        &meta(),
    )
    .await
    .expect("created");
    assert_eq!(wide.key.scopes, ["*:read", "agents:*"]);
}

async fn api_keys_of_a_tenant_are_out_of_reach_of_other_tenants_and_plain_members(t: TestDb) {
    let w = acme(&t).await;
    let issued = create(&t, &w, "CI deploy").await;
    let carol = fixtures::user(&t.db, &w.deps, "carol").await;
    let globex = fixtures::tenant(&t.db, &w.deps, "globex", &carol).await;

    let outsider = TenantCtx::for_member(&t.db, w.acme.id, carol.id).await;
    assert!(
        matches!(outsider, Err(ServiceError::Forbidden { .. })),
        "{outsider:?}"
    );
    let own = TenantCtx::for_member(&t.db, globex.id, carol.id)
        .await
        .expect("her own tenant");
    assert!(list_api_keys(&t.db, &own).await.expect("lists").is_empty());
    let result = revoke_api_key(&t.db, &w.deps, &own, issued.key.id, &meta()).await;
    assert!(
        matches!(result, Err(ServiceError::NotFound { .. })),
        "{result:?}"
    );
    let result = rotate_api_key(
        &t.db,
        &w.deps,
        &own,
        issued.key.id,
        Duration::hours(1),
        &meta(),
    )
    .await;
    assert!(
        matches!(result, Err(ServiceError::NotFound { .. })),
        "{result:?}"
    );

    let bob = TenantCtx::for_member(&t.db, w.acme.id, w.bob)
        .await
        .expect("a member");
    let result = list_api_keys(&t.db, &bob).await;
    assert!(
        matches!(result, Err(ServiceError::Forbidden { .. })),
        "{result:?}"
    );
    let result = revoke_api_key(&t.db, &w.deps, &bob, issued.key.id, &meta()).await;
    assert!(
        matches!(result, Err(ServiceError::Forbidden { .. })),
        "{result:?}"
    );

    assert_eq!(stored(&t, &issued).await.revoked_at, None, "untouched");
    authenticate(&t, &w, issued.secret.expose())
        .await
        .expect("still works");
}

async fn api_keys_of_a_deactivated_tenant_are_refused_and_not_stamped(t: TestDb) {
    use entity::tenancy::tenants;
    use sea_orm::sea_query::Expr;
    let w = acme(&t).await;
    let issued = create(&t, &w, "CI deploy").await;
    tenants::Entity::update_many()
        .col_expr(tenants::Column::IsActive, Expr::value(false))
        .filter(tenants::Column::Id.eq(w.acme.id))
        .exec(&t.owner)
        .await
        .expect("deactivates the tenant");
    let result = authenticate(&t, &w, issued.secret.expose()).await;
    assert!(
        matches!(result, Err(ServiceError::Forbidden { .. })),
        "{result:?}"
    );
    assert_eq!(
        stored(&t, &issued).await.last_used_at,
        None,
        "a refused key is not marked as used"
    );
}
