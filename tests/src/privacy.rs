//! Shared setup of the privacy-compliance tests: a tenant with a policy in effect, a
//! member with distinctive personal data, a due deletion request, and a scan of every
//! cell of every table.

use crate::TestDb;
use crate::fixtures::{self, PASSWORD, meta};
use chrono::Duration;
use entity::UserId;
use entity::compliance::consent_records::ConsentSource;
use entity::compliance::deletion_requests::DeletionStatus;
use entity::identity::user_profiles;
use entity::tenancy::memberships::MembershipRole;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, Statement,
};
use serde_json::json;
use service::compliance::{
    self, ConsentDecision, ConsentPurpose, NewPrivacyPolicy, record_consent,
};
use service::deps::Deps;
use service::tenancy::{TenantCtx, add_member};

pub fn marketing() -> ConsentPurpose {
    ConsentPurpose::parse("marketing_email").expect("valid")
}

pub fn decide(granted: bool) -> ConsentDecision {
    ConsentDecision {
        purpose: marketing(),
        granted,
        source: ConsentSource::Web,
    }
}

/// A tenant owned by `owner` with policy version 1 in effect, and `member` in it.
pub async fn tenant_with_policy(
    t: &TestDb,
    deps: &Deps,
    owner: &str,
    member: &str,
) -> (TenantCtx, TenantCtx, UserId) {
    let slug = format!("{owner}-co");
    let owner = fixtures::user(&t.db, deps, owner).await;
    let tenant = fixtures::tenant(&t.db, deps, &slug, &owner).await;
    let member = fixtures::user(&t.db, deps, member).await;
    let as_owner = TenantCtx::for_member(&t.db, tenant.id, owner.id)
        .await
        .expect("owner ctx");
    add_member(
        &t.db,
        deps,
        &as_owner,
        member.id,
        MembershipRole::Member,
        &meta(),
    )
    .await
    .expect("member joins");
    let v1 = NewPrivacyPolicy::parse("Privacy", "https://example.com/privacy/1", deps.now())
        .expect("valid policy");
    compliance::publish_privacy_policy(&t.db, deps, &as_owner, v1, &meta())
        .await
        .expect("publishes v1");
    let as_member = TenantCtx::for_member(&t.db, tenant.id, member.id)
        .await
        .expect("member ctx");
    (as_owner, as_member, member.id)
}

/// Distinctive personal data, so a scan of every table finds any copy left behind.
pub const CAROL_EMAIL: &str = "carolyn.quixote@example.com";
pub const CAROL_NAME: &str = "Carolyn Quixote-Zed";
pub const CAROL_PHONE: &str = "+81-90-5555-0199";
pub const CAROL_AVATAR: &str = "https://cdn.example.com/avatars/carolyn-quixote.png";
pub const CAROL_PREFERENCE: &str = "quixote-dark-theme";

/// Carol, a member of a tenant with a policy, with a profile, a consent (with her
/// address) and a session.
pub async fn carol(t: &TestDb, deps: &Deps) -> (TenantCtx, UserId) {
    let owner = fixtures::user(&t.db, deps, "erin").await;
    let tenant = fixtures::tenant(&t.db, deps, "erin-co", &owner).await;
    let input =
        service::identity::NewUser::parse(CAROL_EMAIL, PASSWORD, CAROL_NAME).expect("valid");
    let carol = service::identity::register_user(&t.db, deps, input, &meta())
        .await
        .expect("registers");
    user_profiles::Entity::update_many()
        .col_expr(user_profiles::Column::Phone, Expr::value(CAROL_PHONE))
        .col_expr(user_profiles::Column::AvatarUrl, Expr::value(CAROL_AVATAR))
        .col_expr(
            user_profiles::Column::Preferences,
            Expr::value(json!({ "theme": CAROL_PREFERENCE })),
        )
        .filter(user_profiles::Column::UserId.eq(carol.id))
        .exec(&t.owner)
        .await
        .expect("a filled profile");
    let as_owner = TenantCtx::for_member(&t.db, tenant.id, owner.id)
        .await
        .expect("ctx");
    add_member(
        &t.db,
        deps,
        &as_owner,
        carol.id,
        MembershipRole::Admin,
        &meta(),
    )
    .await
    .expect("joins");
    let v1 = NewPrivacyPolicy::parse("Privacy", "https://example.com/privacy/1", deps.now())
        .expect("valid");
    compliance::publish_privacy_policy(&t.db, deps, &as_owner, v1, &meta())
        .await
        .expect("publishes");
    let as_carol = TenantCtx::for_member(&t.db, tenant.id, carol.id)
        .await
        .expect("ctx");
    record_consent(&t.db, deps, &as_carol, decide(true), &meta())
        .await
        .expect("consents");
    (as_carol, carol.id)
}

/// Every cell of every table of the schema (found in the catalogue, so a new table is
/// scanned too), as text.
pub async fn every_cell(db: &DatabaseConnection) -> String {
    use sea_orm::{FromQueryResult, JsonValue};
    let backend = db.get_database_backend();
    let mut text = String::new();
    for table in seeder::table_names(db).await.expect("the catalogue") {
        let rows = JsonValue::find_by_statement(Statement::from_string(
            backend,
            format!("SELECT * FROM {table}"),
        ))
        .all(db)
        .await
        .unwrap_or_else(|e| panic!("{table}: {e}"));
        text.push_str(&format!("{table}: {}\n", JsonValue::Array(rows)));
    }
    text
}

pub async fn count_rows_of(
    db: &DatabaseConnection,
    table: &str,
    column: &str,
    user: UserId,
) -> u64 {
    let query = Query::select()
        .expr(Expr::col(Alias::new(column)).count())
        .from(Alias::new(table))
        .and_where(Expr::col(Alias::new(column)).eq(user.into_uuid()))
        .to_owned();
    let row = db.query_one(&query).await.expect("counts").expect("a row");
    row.try_get_by_index::<i64>(0)
        .map(|n| n as u64)
        .expect("a count")
}

/// A request already due, filed directly: for tests of the erasure job (filing through
/// the service is tested in `erasure.rs`, and needs a fresh session at `aal2`).
pub async fn due_request(t: &TestDb, user: UserId, n: u128) {
    use entity::compliance::deletion_requests;
    use sea_orm::ActiveValue::{NotSet, Set};
    deletion_requests::Entity::insert(deletion_requests::ActiveModel {
        id: Set(entity::DeletionRequestId(uuid::Uuid::from_u128(n))),
        user_id: Set(user),
        status: Set(DeletionStatus::Requested),
        requested_at: Set(seeder::fixture_epoch() + Duration::days(40)),
        due_at: Set(seeder::fixture_epoch() + Duration::days(70)),
        cancelled_at: NotSet,
        processing_started_at: NotSet,
        completed_at: NotSet,
        open_user_id: NotSet,
    })
    .exec_without_returning(&t.owner)
    .await
    .expect("a due request");
}
