//! Event types added at run time: validated, refused when taken, audited, and then
//! recordable like the catalogue's own, on the chain of whoever records them.

use entity::audit::audit_event_types::{self, AuditCategory};
use entity::audit::audit_logs::{self, AuditOutcome};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use service::ServiceError;
use service::audit::{
    AuditEntry, NewEventType, add_event_type, added_event_type, record,
    verify::{self, ChainScope},
};
use tests::TestDb;
use tests::fixtures::{self, meta};

tests::backend_tests!(Migrated: an_added_event_type_is_audited_and_recordable, bad_or_taken_event_types_are_refused_and_write_nothing);

async fn an_added_event_type_is_audited_and_recordable(t: TestDb) {
    let (deps, _) = fixtures::deps();
    let admin = fixtures::user(&t.db, &deps, "admin").await;
    let new = NewEventType::parse(
        "report_downloaded",
        "data_access",
        "  A report was downloaded  ",
    )
    .expect("valid");
    // Platform work: on the schema owner's connection.
    let added = add_event_type(&t.owner, &deps, Some(admin.id), new, &meta())
        .await
        .expect("adds");
    assert_eq!(added.code(), "report_downloaded");
    assert_eq!(added.category(), AuditCategory::DataAccess);
    let row = audit_event_types::Entity::find_by_id("report_downloaded".to_owned())
        .one(&t.owner)
        .await
        .expect("query")
        .expect("in the catalogue");
    assert_eq!(row.description, "A report was downloaded");

    let audited = audit_logs::Entity::find()
        .filter(audit_logs::Column::EventType.eq("audit_event_type_added"))
        .one(&t.owner)
        .await
        .expect("query")
        .expect("the addition is audited");
    assert_eq!(audited.actor_user_id, Some(admin.id));
    assert_eq!(audited.resource_id.as_deref(), Some("report_downloaded"));
    assert_eq!(audited.chain_id, admin.id.0, "on the admin's chain");

    // Found again by code, and recorded like any event.
    let found = added_event_type(&t.owner, "report_downloaded")
        .await
        .expect("found");
    assert_eq!(found, added);
    let txn = service::begin_write(&t.owner).await.expect("begins");
    record(
        &txn,
        &deps,
        AuditEntry::of_added_type(&found, AuditOutcome::Success, &meta()).resource("report", 7),
    )
    .await
    .expect("records");
    sea_orm::TransactionSession::commit(txn)
        .await
        .expect("commits");
    assert_eq!(
        audit_logs::Entity::find()
            .filter(audit_logs::Column::EventType.eq("report_downloaded"))
            .count(&t.owner)
            .await
            .expect("count"),
        1
    );
    let report = verify::verify(&t.owner, ChainScope::All, None, |_| {})
        .await
        .expect("verifies");
    assert!(report.is_intact(), "{:?}", report.findings);
    assert!(matches!(
        added_event_type(&t.owner, "login").await,
        Err(ServiceError::Validation {
            field: "event_type",
            ..
        })
    ));
    assert!(matches!(
        added_event_type(&t.owner, "never_added").await,
        Err(ServiceError::NotFound { .. })
    ));
}

async fn bad_or_taken_event_types_are_refused_and_write_nothing(t: TestDb) {
    let (deps, _) = fixtures::deps();
    let catalogue = || async {
        (
            audit_event_types::Entity::find()
                .count(&t.owner)
                .await
                .expect("count"),
            audit_logs::Entity::find()
                .count(&t.owner)
                .await
                .expect("count"),
        )
    };
    let before = catalogue().await;
    for (code, category, description, field) in [
        ("Report", "data_access", "x", "event_type"),
        ("ab", "data_access", "x", "event_type"),
        ("1report", "data_access", "x", "event_type"),
        ("report-downloaded", "data_access", "x", "event_type"),
        (
            "report_downloaded'; DROP TABLE users; --",
            "data_access",
            "x",
            "event_type",
        ),
        (&*"a".repeat(65), "data_access", "x", "event_type"),
        ("report_downloaded", "marketing", "x", "category"),
        ("report_downloaded", "data_access", "   ", "description"),
        (
            "report_downloaded",
            "data_access",
            &*"d".repeat(256),
            "description",
        ),
        (
            "report_downloaded",
            "data_access",
            "line\nbreak",
            "description",
        ),
    ] {
        match NewEventType::parse(code, category, description) {
            Err(ServiceError::Validation { field: got, .. }) => assert_eq!(got, field, "{code}"),
            other => panic!("{code:?}/{category:?}/{description:?}: {other:?}"),
        }
    }
    // Taken: one of the catalogue's own, or added before.
    for code in ["login", "role_created"] {
        let new = NewEventType::parse(code, "security", "again").expect("well-formed");
        assert!(matches!(
            add_event_type(&t.owner, &deps, None, new, &meta()).await,
            Err(ServiceError::Conflict { .. })
        ));
    }
    assert_eq!(catalogue().await, before, "nothing written");
    let new = || {
        NewEventType::parse("export_scheduled", "compliance", "An export was scheduled")
            .expect("valid")
    };
    add_event_type(&t.owner, &deps, None, new(), &meta())
        .await
        .expect("adds");
    let after_one = catalogue().await;
    assert!(matches!(
        add_event_type(&t.owner, &deps, None, new(), &meta()).await,
        Err(ServiceError::Conflict { .. })
    ));
    assert_eq!(
        catalogue().await,
        after_one,
        "the second attempt wrote nothing"
    );
}
