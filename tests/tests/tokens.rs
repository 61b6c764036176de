//! Refresh and invitation tokens are one kind of secret: `Debug` names the kind and
//! hides the text, and the database stores exactly the SHA-256 of the token.

use chrono::Duration;
use entity::identity::refresh_tokens;
use entity::tenancy::invitations;
use sea_orm::EntityTrait;
use service::identity::create_session;
use service::input::Email;
use service::tenancy::{NewInvitation, invite};
use sha2::{Digest, Sha256};
use tests::TestDb;
use tests::access_world::{role, world};
use tests::fixtures::meta;

tests::backend_tests!(Migrated: tokens_print_redacted_and_are_stored_as_their_sha256);

fn sha256_hex(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

async fn tokens_print_redacted_and_are_stored_as_their_sha256(t: TestDb) {
    let w = world(&t).await;
    let issued = create_session(&t.db, &w.deps, w.bob, &meta())
        .await
        .expect("opens");
    let refresh = issued.refresh_token.expose();
    assert_eq!(
        format!("{:?}", issued.refresh_token),
        "RefreshToken([redacted])"
    );
    let stored = refresh_tokens::Entity::find()
        .one(&t.owner)
        .await
        .expect("query")
        .expect("a refresh token row");
    assert_eq!(stored.token_hash.expose(), sha256_hex(refresh));

    let member = role(&t, &w, "member", &[("agents", "read")]).await;
    let (invitation, token) = invite(
        &t.db,
        &w.deps,
        &w.owner,
        NewInvitation {
            email: Email::parse("dan@example.com").expect("valid"),
            role_id: member.id,
            team_id: None,
            valid_for: Duration::days(7),
        },
        &meta(),
    )
    .await
    .expect("invited");
    assert_eq!(format!("{token:?}"), "InvitationToken([redacted])");
    assert!(token.expose().starts_with("inv_"));
    let stored = invitations::Entity::find_by_id(invitation.id)
        .one(&t.owner)
        .await
        .expect("query")
        .expect("the invitation row");
    assert_eq!(stored.token_hash.expose(), sha256_hex(token.expose()));
}
