//! Field encryption: sealing binds a value to its row and column, keys rotate without
//! losing old values, re-encryption moves stored values to the current key, and no key
//! material is ever printed.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use service::crypto::{
    CryptoError, EncryptedColumn, FieldSlot, KeyRing, KeyRingError, reencrypt, sealed_key_id,
};
use service::environment::AppEnv;
use std::collections::HashMap;
use tests::{Backend, TestDb};
use uuid::Uuid;

tests::backend_tests!(Empty: reencrypt_moves_stored_values_to_the_current_key_and_reports_moved_ones);

const K1: [u8; 32] = [0x11; 32];
const K2: [u8; 32] = [0x22; 32];

fn ring(env: AppEnv, vars: &[(&str, String)]) -> Result<KeyRing, KeyRingError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    KeyRing::from_lookup(env, &move |name| map.get(name).cloned())
}

fn keys(entries: &[(&str, [u8; 32])]) -> String {
    entries
        .iter()
        .map(|(id, key)| format!("{id}:{}", STANDARD.encode(key)))
        .collect::<Vec<_>>()
        .join(",")
}

fn slot<'a>(row: &'a str) -> FieldSlot<'a> {
    FieldSlot {
        table: "mfa_factors",
        column: "secret",
        row,
    }
}

#[test]
fn sealed_values_open_only_in_their_own_slot_and_unchanged() {
    let ring = ring(
        AppEnv::Production,
        &[("FIELD_ENCRYPTION_KEYS", keys(&[("k1", K1)]))],
    )
    .expect("one key");
    let row = Uuid::now_v7().to_string();
    let sealed = ring.seal(slot(&row), b"JBSWY3DPEHPK3PXP").expect("seals");
    assert_eq!(sealed_key_id(&sealed), Ok("k1"));
    assert_eq!(
        ring.open(slot(&row), &sealed).expect("opens").as_slice(),
        b"JBSWY3DPEHPK3PXP"
    );
    assert_ne!(
        ring.seal(slot(&row), b"JBSWY3DPEHPK3PXP").expect("seals"),
        sealed,
        "a fresh nonce every time"
    );

    // Moved to another row, column or table: refused.
    let other_row = Uuid::now_v7().to_string();
    assert_eq!(
        ring.open(slot(&other_row), &sealed).err(),
        Some(CryptoError::Undecryptable)
    );
    let other_column = FieldSlot {
        column: "backup",
        ..slot(&row)
    };
    assert_eq!(
        ring.open(other_column, &sealed).err(),
        Some(CryptoError::Undecryptable)
    );
    let other_table = FieldSlot {
        table: "users",
        ..slot(&row)
    };
    assert_eq!(
        ring.open(other_table, &sealed).err(),
        Some(CryptoError::Undecryptable)
    );

    // Any changed byte after the header: refused.
    for at in [2 + 2, sealed.len() / 2, sealed.len() - 1] {
        let mut tampered = sealed.clone();
        tampered[at] ^= 0x01;
        assert_eq!(
            ring.open(slot(&row), &tampered).err(),
            Some(CryptoError::Undecryptable),
            "byte {at}"
        );
    }
    // A damaged header is named as such.
    assert_eq!(
        ring.open(slot(&row), &sealed[..10]).err(),
        Some(CryptoError::Malformed)
    );
    let mut version = sealed.clone();
    version[0] = 9;
    assert_eq!(
        ring.open(slot(&row), &version).err(),
        Some(CryptoError::UnsupportedVersion(9))
    );
    let mut renamed = sealed.clone();
    renamed[2] = b'x';
    assert_eq!(
        ring.open(slot(&row), &renamed).err(),
        Some(CryptoError::UnknownKey("x1".into()))
    );
    assert_eq!(ring.seal(slot(""), b"x").err(), Some(CryptoError::BadSlot));
    assert_eq!(
        ring.seal(slot("a\0b"), b"x").err(),
        Some(CryptoError::BadSlot)
    );
}

#[test]
fn a_rotated_out_key_still_opens_until_reencryption_and_a_removed_one_is_named() {
    let old = ring(
        AppEnv::Staging,
        &[("FIELD_ENCRYPTION_KEYS", keys(&[("k1", K1)]))],
    )
    .expect("k1");
    let row = Uuid::now_v7().to_string();
    let sealed = old.seal(slot(&row), b"secret").expect("seals");

    let rotated = ring(
        AppEnv::Staging,
        &[
            ("FIELD_ENCRYPTION_KEYS", keys(&[("k1", K1), ("k2", K2)])),
            ("FIELD_ENCRYPTION_CURRENT_KEY", "k2".to_owned()),
        ],
    )
    .expect("k1 and k2");
    assert_eq!(rotated.current().id(), "k2");
    assert_eq!(
        rotated
            .open(slot(&row), &sealed)
            .expect("k1 still opens")
            .as_slice(),
        b"secret"
    );
    assert_eq!(rotated.is_stale(&sealed), Ok(true));
    let resealed = rotated.seal(slot(&row), b"secret").expect("seals");
    assert_eq!(sealed_key_id(&resealed), Ok("k2"));
    assert_eq!(rotated.is_stale(&resealed), Ok(false));

    let without_k1 = ring(
        AppEnv::Staging,
        &[("FIELD_ENCRYPTION_KEYS", keys(&[("k2", K2)]))],
    )
    .expect("k2");
    assert_eq!(
        without_k1.open(slot(&row), &sealed).err(),
        Some(CryptoError::UnknownKey("k1".into()))
    );
    assert!(without_k1.open(slot(&row), &resealed).is_ok());

    // The same id with other material: refused, not garbage.
    let impostor = ring(
        AppEnv::Staging,
        &[("FIELD_ENCRYPTION_KEYS", keys(&[("k1", K2)]))],
    )
    .expect("k1'");
    assert_eq!(
        impostor.open(slot(&row), &sealed).err(),
        Some(CryptoError::Undecryptable)
    );
}

#[test]
fn the_key_ring_refuses_to_start_without_real_keys_outside_local_and_test() {
    for env in [AppEnv::Local, AppEnv::Test] {
        let ring = ring(env, &[]).expect("the development key");
        assert_eq!(ring.current().id(), service::crypto::DEVELOPMENT_KEY_ID);
    }
    for env in [AppEnv::Development, AppEnv::Staging, AppEnv::Production] {
        assert_eq!(
            ring(env, &[]).err(),
            Some(KeyRingError::Missing(env)),
            "{env}"
        );
    }
    // Configuring the public development key by hand is refused too.
    let dev = KeyRing::development();
    let row = "r";
    let sealed = dev.seal(slot(row), b"x").expect("seals");
    assert!(dev.open(slot(row), &sealed).is_ok());
    let dev_id = ring(
        AppEnv::Production,
        &[("FIELD_ENCRYPTION_KEYS", keys(&[("dev", K1)]))],
    );
    assert_eq!(
        dev_id.err(),
        Some(KeyRingError::DevelopmentKeyOutsideDevelopment(
            AppEnv::Production
        ))
    );

    let bad = |value: &str| {
        ring(
            AppEnv::Production,
            &[("FIELD_ENCRYPTION_KEYS", value.to_owned())],
        )
        .err()
    };
    assert!(matches!(
        bad("k1"),
        Some(KeyRingError::BadEntry { entry: 1, .. })
    ));
    assert!(matches!(
        bad("k1:not base64!"),
        Some(KeyRingError::BadEntry { .. })
    ));
    assert!(matches!(
        bad(&format!("k1:{}", STANDARD.encode([1u8; 16]))),
        Some(KeyRingError::BadEntry { .. })
    ));
    assert!(matches!(
        bad(&format!("bad id:{}", STANDARD.encode(K1))),
        Some(KeyRingError::BadEntry { .. })
    ));
    assert_eq!(
        bad(&keys(&[("k1", K1), ("k1", K2)])),
        Some(KeyRingError::DuplicateId("k1".into()))
    );
    assert_eq!(
        bad(&keys(&[("k1", K1), ("k2", K2)])),
        Some(KeyRingError::NoCurrent)
    );
    let unknown = ring(
        AppEnv::Production,
        &[
            ("FIELD_ENCRYPTION_KEYS", keys(&[("k1", K1)])),
            ("FIELD_ENCRYPTION_CURRENT_KEY", "k9".to_owned()),
        ],
    );
    assert_eq!(
        unknown.err(),
        Some(KeyRingError::UnknownCurrent("k9".into()))
    );
    // No error message repeats key material.
    let short = STANDARD.encode([7u8; 16]);
    let message = bad(&format!("k1:{short}")).expect("refused").to_string();
    assert!(!message.contains(&short), "{message}");
}

#[test]
fn key_material_never_appears_in_debug_output() {
    let ring = ring(
        AppEnv::Production,
        &[
            ("FIELD_ENCRYPTION_KEYS", keys(&[("k1", K1), ("k2", K2)])),
            ("FIELD_ENCRYPTION_CURRENT_KEY", "k2".to_owned()),
        ],
    )
    .expect("two keys");
    let printed = format!("{ring:?} {:?} {:#?}", ring.current(), ring.key("k1"));
    for key in [K1, K2] {
        assert!(!printed.contains(&STANDARD.encode(key)), "{printed}");
        assert!(!printed.contains(&format!("{:?}", key)), "{printed}");
        assert!(
            !printed.contains("17, 17, 17") && !printed.contains("34, 34, 34"),
            "{printed}"
        );
    }
    assert!(
        printed.contains("k1") && printed.contains("<redacted>"),
        "{printed}"
    );
}

/// Rows sealed under k1; one row's value copied into another row; then k2 made current
/// and `reencrypt` run: every readable value ends under k2 and still opens, the copied
/// one is reported and left alone, and a second run finds nothing to do.
async fn reencrypt_moves_stored_values_to_the_current_key_and_reports_moved_ones(t: TestDb) {
    let ddl = match t.backend {
        Backend::Postgres => "CREATE TABLE sealed_notes (id uuid PRIMARY KEY, body bytea)",
        Backend::MySql => "CREATE TABLE sealed_notes (id binary(16) PRIMARY KEY, body longblob)",
        Backend::Sqlite => "CREATE TABLE sealed_notes (id blob PRIMARY KEY, body blob)",
    };
    t.owner.execute_unprepared(ddl).await.expect("a table");
    let backend: DbBackend = t.db_backend();
    let column = EncryptedColumn {
        table: "sealed_notes",
        id_column: "id",
        column: "body",
    };
    let old = ring(
        AppEnv::Production,
        &[("FIELD_ENCRYPTION_KEYS", keys(&[("k1", K1)]))],
    )
    .expect("k1");
    let mut ids: Vec<Uuid> = (0..25).map(|_| Uuid::now_v7()).collect();
    ids.sort();
    let insert = match backend {
        DbBackend::Postgres => "INSERT INTO sealed_notes (id, body) VALUES ($1, $2)",
        _ => "INSERT INTO sealed_notes (id, body) VALUES (?, ?)",
    };
    for (n, id) in ids.iter().enumerate() {
        let text = id.to_string();
        let sealed = old
            .seal(
                FieldSlot {
                    table: "sealed_notes",
                    column: "body",
                    row: &text,
                },
                format!("note {n}").as_bytes(),
            )
            .expect("seals");
        t.owner
            .execute_raw(Statement::from_sql_and_values(
                backend,
                insert,
                [(*id).into(), sealed.into()],
            ))
            .await
            .expect("inserts");
    }
    // A value moved by hand from row 0 to row 1.
    let (update, select) = match backend {
        DbBackend::Postgres => (
            "UPDATE sealed_notes SET body = (SELECT body FROM sealed_notes WHERE id = $1) WHERE id = $2",
            "SELECT body FROM sealed_notes WHERE id = $1",
        ),
        _ => (
            "UPDATE sealed_notes SET body = ? WHERE id = ?",
            "SELECT body FROM sealed_notes WHERE id = ?",
        ),
    };
    let body_of = |id: Uuid| {
        let owner = t.owner.clone();
        async move {
            owner
                .query_one_raw(Statement::from_sql_and_values(backend, select, [id.into()]))
                .await
                .expect("reads")
                .expect("a row")
                .try_get_by_index::<Vec<u8>>(0)
                .expect("bytes")
        }
    };
    let moved_value = body_of(ids[0]).await;
    let values: Vec<sea_orm::Value> = match backend {
        DbBackend::Postgres => vec![ids[0].into(), ids[1].into()],
        _ => vec![moved_value.clone().into(), ids[1].into()],
    };
    t.owner
        .execute_raw(Statement::from_sql_and_values(backend, update, values))
        .await
        .expect("moves a value");

    let rotated = ring(
        AppEnv::Production,
        &[
            ("FIELD_ENCRYPTION_KEYS", keys(&[("k1", K1), ("k2", K2)])),
            ("FIELD_ENCRYPTION_CURRENT_KEY", "k2".to_owned()),
        ],
    )
    .expect("k1 and k2");
    let mut batches = 0;
    let report = reencrypt(&t.owner, &rotated, column, 10, |_| batches += 1)
        .await
        .expect("runs");
    assert_eq!(report.scanned, 25);
    assert_eq!(report.rewritten, 24);
    assert_eq!(
        report.unreadable,
        vec![ids[1]],
        "the moved value is named, not rewritten"
    );
    assert_eq!(batches, 3, "25 rows in batches of 10");

    let only_k2 = ring(
        AppEnv::Production,
        &[("FIELD_ENCRYPTION_KEYS", keys(&[("k2", K2)]))],
    )
    .expect("k2");
    for (n, id) in ids.iter().enumerate().filter(|(n, _)| *n != 1) {
        let body = body_of(*id).await;
        assert_eq!(sealed_key_id(&body), Ok("k2"));
        let text = id.to_string();
        let plain = only_k2
            .open(
                FieldSlot {
                    table: "sealed_notes",
                    column: "body",
                    row: &text,
                },
                &body,
            )
            .expect("opens under k2 alone");
        assert_eq!(plain.as_slice(), format!("note {n}").as_bytes());
    }
    assert_eq!(body_of(ids[1]).await, moved_value, "left as it was");

    let again = reencrypt(&t.owner, &rotated, column, 10, |_| {})
        .await
        .expect("runs");
    assert_eq!((again.scanned, again.rewritten), (25, 0));
}

/// The operator's commands: `keys status` names the ring without material, refuses an
/// environment without keys; `keys reencrypt` walks the registered columns.
#[tokio::test]
async fn keys_commands_show_the_ring_and_refuse_production_without_keys() {
    use migration::cli::{CliError, Command, Invocation, KeysAction, NoTerminal, execute};
    tests::run_case(Backend::Sqlite, "keys_commands", tests::Start::Migrated, |t| async move {
        let run = |env: AppEnv, action: KeysAction, confirm: Option<&str>| {
            let target = t.target();
            let confirm = confirm.map(str::to_owned);
            async move {
                let invocation = Invocation {
                    env,
                    target,
                    schema: None,
                    command: Command::Keys { action },
                    confirm,
                    lock_timeout: std::time::Duration::from_secs(10),
                    table_locks: migration::cli::TableLocks::DEFAULT,
                };
                let (mut out, mut err) = (Vec::new(), Vec::new());
                let result = execute(&invocation, &mut NoTerminal, &mut out, &mut err).await;
                (result, String::from_utf8(out).expect("utf-8"))
            }
        };
        let (result, out) = run(AppEnv::Test, KeysAction::Status, None).await;
        result.expect("status");
        assert!(out.contains("current key   dev"), "{out}");
        let (result, out) = run(AppEnv::Test, KeysAction::Reencrypt { batch: 100 }, None).await;
        result.expect("reencrypt");
        // The registered column is walked; an empty one has nothing to rewrite.
        assert!(out.contains("mfa_factors.secret: 0 scanned, 0 rewritten"), "{out}");
        let (result, _) = run(AppEnv::Production, KeysAction::Status, None).await;
        assert!(
            matches!(&result, Err(CliError::Config(why)) if why.contains("FIELD_ENCRYPTION_KEYS")),
            "{result:?}"
        );
    })
    .await;
}
