//! Passkeys: registration, listing, renaming and removal; WebAuthn assertions from a
//! software authenticator in the test (a P-256 key signing authenticator data and
//! client data as a browser and authenticator would), each check refusing what it
//! should and recording the refusal; the signature counter's clone rule, which
//! disables the passkey for good; input refused before any query; no key material in
//! any `Debug` output.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::Duration;
use entity::audit::audit_logs::{self, AuditOutcome};
use entity::identity::passkeys::{self, PasskeyDisabledReason};
use entity::identity::sessions::AssuranceLevel;
use entity::{PasskeyId, UserId};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, TransactionTrait};
use service::error::StepUp;
use service::identity::{
    ExpectedCeremony, NewPasskey, PasskeyAssertion, PasskeyRegistration, PasskeyRejection, SignIn,
    VerifiedPasskey, change_password, check_registration, complete_sign_in_with_passkey,
    es256_cose_key, list_passkeys, login, reauthenticate_with_passkey, register_passkey,
    remove_passkey, rename_passkey, verify_passkey_assertion,
};
use service::input::Password;
use service::{Deps, ServiceError};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use tests::fixtures::{self, meta};
use tests::{TestDb, inspect};

tests::backend_tests!(Migrated:
    passkeys_register_list_rename_remove,
    passkeys_a_registration_response_is_checked_and_its_credential_then_signs_in,
    passkeys_an_assertion_from_a_software_authenticator_passes_and_raises_the_count,
    passkeys_wrong_type_challenge_origin_rp_flags_or_signature_is_refused_and_recorded,
    passkeys_a_counter_regression_disables_the_passkey_and_is_recorded_at_high_risk,
    passkeys_two_concurrent_assertions_with_one_count_exactly_one_passes,
    passkeys_malformed_input_is_refused_before_any_query_and_writes_nothing,
    passkeys_no_key_material_in_debug_output_or_audit_details,
    passkeys_complete_a_two_step_sign_in_and_step_up_a_session,
);

const ORIGIN: &str = "https://app.example.com";
const RP_ID: &str = "example.com";

const UP: u8 = 0x01;
const UV: u8 = 0x04;
const BE: u8 = 0x08;
const BS: u8 = 0x10;

/// A software authenticator: one P-256 key and credential id, made from `tag`.
struct Authenticator {
    key: SigningKey,
    credential_id: Vec<u8>,
}

/// What the browser hands back from `navigator.credentials.get()`.
struct Signed {
    credential_id: Vec<u8>,
    authenticator_data: Vec<u8>,
    client_data_json: Vec<u8>,
    signature: Vec<u8>,
}

impl Signed {
    fn assertion(&self) -> PasskeyAssertion<'_> {
        PasskeyAssertion {
            credential_id: &self.credential_id,
            authenticator_data: &self.authenticator_data,
            client_data_json: &self.client_data_json,
            signature: &self.signature,
        }
    }
}

/// What one assertion is made of; [`Ceremony::default`] is a good one.
#[derive(Clone)]
struct Ceremony {
    kind: &'static str,
    challenge: Vec<u8>,
    origin: String,
    rp_id: String,
    flags: u8,
    counter: u32,
}

impl Default for Ceremony {
    fn default() -> Self {
        Self {
            kind: "webauthn.get",
            challenge: CHALLENGE.to_vec(),
            origin: ORIGIN.to_owned(),
            rp_id: RP_ID.to_owned(),
            flags: UP | UV,
            counter: 1,
        }
    }
}

const CHALLENGE: &[u8; 32] = b"challenge-issued-by-the-app-0001";

fn expected() -> ExpectedCeremony<'static> {
    ExpectedCeremony {
        challenge: CHALLENGE,
        origin: ORIGIN,
        rp_id: RP_ID,
    }
}

impl Authenticator {
    fn new(tag: u8) -> Self {
        Self {
            key: SigningKey::from_slice(&[tag; 32]).expect("a scalar below the order"),
            credential_id: (0..32).map(|i| tag ^ i).collect(),
        }
    }

    fn point(&self) -> Vec<u8> {
        self.key
            .verifying_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec()
    }

    fn registration(&self, name: &str) -> NewPasskey {
        NewPasskey {
            credential_id: self.credential_id.clone(),
            public_key_cose: es256_cose_key(&self.point()).expect("a P-256 point"),
            sign_count: 0,
            aaguid: uuid::Uuid::from_u128(0xadce_0002_35bc_c60a_648b_0b25_f1f0_5503),
            transports: vec!["usb".to_owned(), "nfc".to_owned()],
            backup_eligible: false,
            backup_state: false,
            name: name.to_owned(),
        }
    }

    /// `navigator.credentials.create()`: the attestation object (format `fmt`, with
    /// `att_stmt` as its statement, CBOR) and the client data.
    fn create(&self, c: &Ceremony, fmt: &str, att_stmt: &[u8], cose: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let mut auth = Sha256::digest(c.rp_id.as_bytes()).to_vec();
        auth.push(c.flags | AT);
        auth.extend_from_slice(&c.counter.to_be_bytes());
        auth.extend_from_slice(AAGUID.as_bytes());
        let id_len = u16::try_from(self.credential_id.len()).expect("short");
        auth.extend_from_slice(&id_len.to_be_bytes());
        auth.extend_from_slice(&self.credential_id);
        auth.extend_from_slice(cose);
        let mut object = vec![0xa3];
        object.extend(cbor_text("fmt"));
        object.extend(cbor_text(fmt));
        object.extend(cbor_text("attStmt"));
        object.extend_from_slice(att_stmt);
        object.extend(cbor_text("authData"));
        object.extend(cbor_bytes(&auth));
        (object, client_data(c))
    }

    fn sign(&self, c: &Ceremony) -> Signed {
        let mut authenticator_data = Sha256::digest(c.rp_id.as_bytes()).to_vec();
        authenticator_data.push(c.flags);
        authenticator_data.extend_from_slice(&c.counter.to_be_bytes());
        let client_data_json = client_data(c);
        let mut signed = authenticator_data.clone();
        signed.extend_from_slice(&Sha256::digest(&client_data_json));
        let signature: Signature = self.key.sign(&signed);
        Signed {
            credential_id: self.credential_id.clone(),
            authenticator_data,
            client_data_json,
            signature: signature.to_der().as_bytes().to_vec(),
        }
    }
}

const AT: u8 = 0x40;
const ED: u8 = 0x80;
const AAGUID: uuid::Uuid = uuid::Uuid::from_u128(0xfbfc_3007_154e_4ecc_8c0b_6e02_0557_d7bd);

fn client_data(c: &Ceremony) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "type": c.kind,
        "challenge": URL_SAFE_NO_PAD.encode(&c.challenge),
        "origin": c.origin,
        "crossOrigin": false,
    }))
    .expect("serialises")
}

/// CBOR heads for lengths under 65536, which is all these tests write.
fn cbor_head(major: u8, len: usize) -> Vec<u8> {
    match len {
        0..=23 => vec![(major << 5) | u8::try_from(len).expect("small")],
        24..=255 => vec![(major << 5) | 24, u8::try_from(len).expect("small")],
        _ => {
            let mut head = vec![(major << 5) | 25];
            head.extend_from_slice(&u16::try_from(len).expect("short").to_be_bytes());
            head
        }
    }
}

fn cbor_text(text: &str) -> Vec<u8> {
    let mut out = cbor_head(3, text.len());
    out.extend_from_slice(text.as_bytes());
    out
}

fn cbor_bytes(bytes: &[u8]) -> Vec<u8> {
    let mut out = cbor_head(2, bytes.len());
    out.extend_from_slice(bytes);
    out
}

async fn verify(t: &TestDb, deps: &Deps, signed: &Signed) -> Result<VerifiedPasskey, ServiceError> {
    verify_passkey_assertion(&t.db, deps, signed.assertion(), expected(), &meta()).await
}

fn rejection(result: Result<VerifiedPasskey, ServiceError>) -> PasskeyRejection {
    match result {
        Err(ServiceError::PasskeyRejected { reason }) => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn events(t: &TestDb, user: UserId) -> Vec<audit_logs::Model> {
    audit_logs::Entity::find()
        .filter(audit_logs::Column::ActorUserId.eq(user))
        .all(&t.owner)
        .await
        .expect("reads the audit trail")
}

fn of_type<'a>(events: &'a [audit_logs::Model], code: &str) -> Vec<&'a audit_logs::Model> {
    events.iter().filter(|e| e.event_type == code).collect()
}

async fn stored(t: &TestDb, id: PasskeyId) -> passkeys::Model {
    passkeys::Entity::find_by_id(id)
        .one(&t.owner)
        .await
        .expect("reads")
        .expect("the row")
}

async fn passkeys_register_list_rename_remove(t: TestDb) {
    let (deps, clock) = fixtures::deps();
    let user = fixtures::user(&t.db, &deps, "pia").await;
    let other = fixtures::user(&t.db, &deps, "quinn").await;
    let (laptop, key) = (Authenticator::new(1), Authenticator::new(2));

    let first = register_passkey(
        &t.db,
        &deps,
        &fixtures::current_session(&t.db, &deps, user.id).await,
        laptop.registration(" Laptop "),
        &meta(),
    )
    .await
    .expect("registers");
    assert_eq!(first.name, "Laptop", "the name is trimmed");
    assert_eq!(first.credential_id, laptop.credential_id);
    assert_eq!(first.sign_count, 0);
    assert_eq!(first.algorithm, -7);
    assert_eq!(first.transport_names().collect::<Vec<_>>(), ["usb", "nfc"]);
    assert!(first.last_used_at.is_none() && first.disabled_at.is_none());
    assert_eq!(
        stored(&t, first.id).await.public_key.expose(),
        laptop.point().as_slice(),
        "the key is stored as its SEC1 point"
    );
    clock.advance(Duration::seconds(1));
    let second = register_passkey(
        &t.db,
        &deps,
        &fixtures::current_session(&t.db, &deps, user.id).await,
        key.registration("Security key"),
        &meta(),
    )
    .await
    .expect("registers");

    // A credential id belongs to one passkey, whoever registers it again.
    for who in [user.id, other.id] {
        let again = register_passkey(
            &t.db,
            &deps,
            &fixtures::current_session(&t.db, &deps, who).await,
            laptop.registration("Again"),
            &meta(),
        )
        .await;
        assert!(
            matches!(
                again,
                Err(ServiceError::Conflict {
                    entity: "passkey",
                    ..
                })
            ),
            "{again:?}"
        );
    }

    let listed = list_passkeys(&t.db, user.id).await.expect("lists");
    assert_eq!(listed, vec![first.clone(), second.clone()], "oldest first");
    assert!(
        list_passkeys(&t.db, other.id)
            .await
            .expect("lists")
            .is_empty()
    );

    let renamed = rename_passkey(&t.db, &deps, user.id, second.id, "YubiKey 5", &meta())
        .await
        .expect("renames");
    assert_eq!(renamed.name, "YubiKey 5");
    // Another user's passkey is not found, neither to rename nor to remove.
    assert!(matches!(
        rename_passkey(&t.db, &deps, other.id, second.id, "Mine", &meta()).await,
        Err(ServiceError::NotFound { .. })
    ));
    assert!(matches!(
        remove_passkey(
            &t.db,
            &deps,
            &fixtures::current_session(&t.db, &deps, other.id).await,
            second.id,
            &meta()
        )
        .await,
        Err(ServiceError::NotFound { .. })
    ));
    assert_eq!(stored(&t, second.id).await.name, "YubiKey 5");

    remove_passkey(
        &t.db,
        &deps,
        &fixtures::current_session(&t.db, &deps, user.id).await,
        first.id,
        &meta(),
    )
    .await
    .expect("removes");
    assert!(matches!(
        remove_passkey(
            &t.db,
            &deps,
            &fixtures::current_session(&t.db, &deps, user.id).await,
            first.id,
            &meta()
        )
        .await,
        Err(ServiceError::NotFound { .. })
    ));
    assert_eq!(
        list_passkeys(&t.db, user.id).await.expect("lists"),
        vec![renamed]
    );
    // Its credential is free again.
    register_passkey(
        &t.db,
        &deps,
        &fixtures::current_session(&t.db, &deps, other.id).await,
        laptop.registration("Laptop"),
        &meta(),
    )
    .await
    .expect("a removed credential can be registered again");

    let trail = events(&t, user.id).await;
    assert_eq!(of_type(&trail, "passkey_registered").len(), 2);
    assert_eq!(of_type(&trail, "passkey_renamed").len(), 1);
    let removed = of_type(&trail, "passkey_removed");
    assert_eq!(removed.len(), 1);
    assert_eq!(
        removed[0].resource_id.as_deref(),
        Some(first.id.to_string().as_str())
    );
}

async fn passkeys_a_registration_response_is_checked_and_its_credential_then_signs_in(t: TestDb) {
    let (deps, _clock) = fixtures::deps();
    let user = fixtures::user(&t.db, &deps, "olga").await;
    let phone = Authenticator::new(15);
    let cose = es256_cose_key(&phone.point()).expect("a P-256 point");
    let create = Ceremony {
        kind: "webauthn.create",
        counter: 0,
        flags: UP | UV | BE | BS,
        ..Ceremony::default()
    };
    let transports = vec!["internal".to_owned(), "hybrid".to_owned()];
    let (object, client) = phone.create(&create, "none", &[0xa0], &cose);
    let checked = check_registration(
        PasskeyRegistration {
            attestation_object: &object,
            client_data_json: &client,
            transports: &transports,
        },
        expected(),
        "Phone",
    )
    .expect("a good registration holds");
    assert!(checked.user_verified);
    assert_eq!(checked.attestation_format, "none");
    let new = &checked.passkey;
    assert_eq!(new.credential_id, phone.credential_id);
    assert_eq!(new.public_key_cose, cose);
    assert_eq!((new.sign_count, new.aaguid), (0, AAGUID));
    assert!(new.backup_eligible && new.backup_state);
    let passkey = register_passkey(
        &t.db,
        &deps,
        &fixtures::current_session(&t.db, &deps, user.id).await,
        checked.passkey,
        &meta(),
    )
    .await
    .expect("registers");
    assert_eq!(
        passkey.transport_names().collect::<Vec<_>>(),
        ["internal", "hybrid"]
    );
    let get = Ceremony {
        counter: 0,
        flags: UP | UV | BE | BS,
        ..Ceremony::default()
    };
    let verified = verify(&t, &deps, &phone.sign(&get))
        .await
        .expect("signs in");
    assert_eq!(verified.passkey_id, passkey.id);

    // A statement of another format is skipped, not verified; extensions too.
    let packed_stmt = [
        vec![0xa2],
        cbor_text("alg"),
        vec![0x26],
        cbor_text("sig"),
        cbor_bytes(&[0x30; 70]),
    ]
    .concat();
    let key = Authenticator::new(16);
    let key_cose = es256_cose_key(&key.point()).expect("a P-256 point");
    let mut extended = key_cose.clone();
    extended.extend([vec![0xa1], cbor_text("credProtect"), vec![0x02]].concat());
    let flagged = Ceremony {
        flags: UP | ED,
        ..create.clone()
    };
    let (object, client) = key.create(&flagged, "packed", &packed_stmt, &extended);
    let checked = check_registration(
        PasskeyRegistration {
            attestation_object: &object,
            client_data_json: &client,
            transports: &[],
        },
        expected(),
        "Key",
    )
    .expect("holds");
    assert_eq!(checked.attestation_format, "packed");
    assert!(!checked.user_verified && !checked.passkey.backup_eligible);
    assert_eq!(checked.passkey.public_key_cose, key_cose);

    // What does not hold.
    let mut eddsa = cose.clone();
    eddsa[4] = 0x27;
    let refused: Vec<(&str, Ceremony, Vec<u8>, PasskeyRejection)> = vec![
        (
            "an assertion's client data",
            Ceremony {
                kind: "webauthn.get",
                ..create.clone()
            },
            cose.clone(),
            PasskeyRejection::WrongType,
        ),
        (
            "another challenge",
            Ceremony {
                challenge: b"challenge-issued-by-the-app-0003".to_vec(),
                ..create.clone()
            },
            cose.clone(),
            PasskeyRejection::ChallengeMismatch,
        ),
        (
            "another origin",
            Ceremony {
                origin: "https://evil.test".to_owned(),
                ..create.clone()
            },
            cose.clone(),
            PasskeyRejection::OriginMismatch,
        ),
        (
            "another relying party",
            Ceremony {
                rp_id: "evil.test".to_owned(),
                ..create.clone()
            },
            cose.clone(),
            PasskeyRejection::RpIdMismatch,
        ),
        (
            "no user presence",
            Ceremony {
                flags: UV,
                ..create.clone()
            },
            cose.clone(),
            PasskeyRejection::UserNotPresent,
        ),
        (
            "backed up but not eligible",
            Ceremony {
                flags: UP | BS,
                ..create.clone()
            },
            cose.clone(),
            PasskeyRejection::BackupFlags,
        ),
        (
            "an EdDSA key",
            create.clone(),
            eddsa,
            PasskeyRejection::UnsupportedAlgorithm,
        ),
    ];
    for (what, ceremony, key_cose, want) in refused {
        let (object, client) = phone.create(&ceremony, "none", &[0xa0], &key_cose);
        let result = check_registration(
            PasskeyRegistration {
                attestation_object: &object,
                client_data_json: &client,
                transports: &[],
            },
            expected(),
            "Phone",
        );
        assert!(
            matches!(&result, Err(ServiceError::PasskeyRejected { reason }) if *reason == want),
            "{what}: {result:?}"
        );
    }
    let (object, client) = phone.create(&create, "none", &[0xa0], &cose);
    for cut in [0, 1, 10, object.len() / 2, object.len() - 1] {
        let result = check_registration(
            PasskeyRegistration {
                attestation_object: &object[..cut],
                client_data_json: &client,
                transports: &[],
            },
            expected(),
            "Phone",
        );
        assert!(
            matches!(&result, Err(ServiceError::Validation { .. })),
            "cut at {cut}: {result:?}"
        );
    }
    let mut trailing = object.clone();
    trailing.push(0);
    assert!(matches!(
        check_registration(
            PasskeyRegistration {
                attestation_object: &trailing,
                client_data_json: &client,
                transports: &[],
            },
            expected(),
            "Phone",
        ),
        Err(ServiceError::Validation { .. })
    ));
}

async fn passkeys_an_assertion_from_a_software_authenticator_passes_and_raises_the_count(
    t: TestDb,
) {
    let (deps, clock) = fixtures::deps();
    let user = fixtures::user(&t.db, &deps, "rita").await;
    let laptop = Authenticator::new(3);
    let passkey = register_passkey(
        &t.db,
        &deps,
        &fixtures::current_session(&t.db, &deps, user.id).await,
        laptop.registration("Laptop"),
        &meta(),
    )
    .await
    .expect("registers");

    clock.advance(Duration::seconds(5));
    let verified = verify(&t, &deps, &laptop.sign(&Ceremony::default()))
        .await
        .expect("a good assertion passes");
    assert_eq!(
        verified,
        VerifiedPasskey {
            passkey_id: passkey.id,
            user_id: user.id,
            sign_count: 1,
            user_verified: true,
            backup_state: false,
        }
    );
    let row = stored(&t, passkey.id).await;
    assert_eq!(row.sign_count, 1);
    assert_eq!(row.last_used_at, Some(deps.now()));

    clock.advance(Duration::seconds(5));
    let next = Ceremony {
        counter: 7,
        flags: UP,
        ..Ceremony::default()
    };
    let verified = verify(&t, &deps, &laptop.sign(&next))
        .await
        .expect("passes");
    assert_eq!((verified.sign_count, verified.user_verified), (7, false));
    assert_eq!(stored(&t, passkey.id).await.sign_count, 7);

    // An authenticator that keeps no counter (synced passkeys) reports zero each time.
    let phone = Authenticator::new(4);
    let mut synced = phone.registration("Phone");
    (synced.backup_eligible, synced.backup_state) = (true, false);
    let synced = register_passkey(
        &t.db,
        &deps,
        &fixtures::current_session(&t.db, &deps, user.id).await,
        synced,
        &meta(),
    )
    .await
    .expect("registers");
    for _ in 0..2 {
        let zero = Ceremony {
            counter: 0,
            flags: UP | UV | BE | BS,
            ..Ceremony::default()
        };
        let verified = verify(&t, &deps, &phone.sign(&zero)).await.expect("passes");
        assert!(verified.backup_state, "the backup state is reported");
    }
    let row = stored(&t, synced.id).await;
    assert_eq!((row.sign_count, row.backup_state), (0, true));

    let trail = events(&t, user.id).await;
    let used = of_type(&trail, "passkey_used");
    assert_eq!(used.len(), 4);
    assert!(used.iter().all(|e| e.outcome == AuditOutcome::Success));
    assert!(of_type(&trail, "passkey_assertion_failed").is_empty());
}

async fn passkeys_wrong_type_challenge_origin_rp_flags_or_signature_is_refused_and_recorded(
    t: TestDb,
) {
    let (deps, _clock) = fixtures::deps();
    let user = fixtures::user(&t.db, &deps, "sam").await;
    let laptop = Authenticator::new(5);
    let passkey = register_passkey(
        &t.db,
        &deps,
        &fixtures::current_session(&t.db, &deps, user.id).await,
        laptop.registration("Laptop"),
        &meta(),
    )
    .await
    .expect("registers");
    let good = Ceremony {
        counter: 10,
        ..Ceremony::default()
    };
    let cases: Vec<(&str, Signed, PasskeyRejection)> = vec![
        (
            "registration client data",
            laptop.sign(&Ceremony {
                kind: "webauthn.create",
                ..good.clone()
            }),
            PasskeyRejection::WrongType,
        ),
        (
            "another challenge",
            laptop.sign(&Ceremony {
                challenge: b"challenge-issued-by-the-app-0002".to_vec(),
                ..good.clone()
            }),
            PasskeyRejection::ChallengeMismatch,
        ),
        (
            "another origin",
            laptop.sign(&Ceremony {
                origin: "https://app.example.com.evil.test".to_owned(),
                ..good.clone()
            }),
            PasskeyRejection::OriginMismatch,
        ),
        (
            "another relying party",
            laptop.sign(&Ceremony {
                rp_id: "evil.test".to_owned(),
                ..good.clone()
            }),
            PasskeyRejection::RpIdMismatch,
        ),
        (
            "no user presence",
            laptop.sign(&Ceremony {
                flags: UV,
                ..good.clone()
            }),
            PasskeyRejection::UserNotPresent,
        ),
        (
            "backed up but not eligible",
            laptop.sign(&Ceremony {
                flags: UP | BS,
                ..good.clone()
            }),
            PasskeyRejection::BackupFlags,
        ),
        (
            "signed by another key",
            Signed {
                credential_id: laptop.credential_id.clone(),
                ..Authenticator::new(6).sign(&good)
            },
            PasskeyRejection::BadSignature,
        ),
        (
            "authenticator data changed after signing",
            {
                let mut s = laptop.sign(&good);
                s.authenticator_data[36] ^= 1;
                s
            },
            PasskeyRejection::BadSignature,
        ),
        (
            // Without the key nobody can trigger the clone rule: a low count with a
            // bad signature is a bad signature, and the passkey stays enabled.
            "a low count signed by another key",
            Signed {
                credential_id: laptop.credential_id.clone(),
                ..Authenticator::new(6).sign(&Ceremony {
                    counter: 0,
                    ..good.clone()
                })
            },
            PasskeyRejection::BadSignature,
        ),
    ];
    for (what, signed, want) in &cases {
        assert_eq!(rejection(verify(&t, &deps, signed).await), *want, "{what}");
    }
    // The right challenge under the wrong expectation fails the same way.
    let signed = laptop.sign(&good);
    for (what, expect, want) in [
        (
            "expected another origin",
            ExpectedCeremony {
                origin: "https://other.example.com",
                ..expected()
            },
            PasskeyRejection::OriginMismatch,
        ),
        (
            "expected another RP id",
            ExpectedCeremony {
                rp_id: "app.example.com",
                ..expected()
            },
            PasskeyRejection::RpIdMismatch,
        ),
    ] {
        let result =
            verify_passkey_assertion(&t.db, &deps, signed.assertion(), expect, &meta()).await;
        assert_eq!(rejection(result), want, "{what}");
    }
    // An unknown credential is refused and not recorded: anyone can make them up.
    let stranger = Authenticator::new(9).sign(&good);
    assert_eq!(
        rejection(verify(&t, &deps, &stranger).await),
        PasskeyRejection::UnknownCredential
    );

    let row = stored(&t, passkey.id).await;
    assert_eq!(row.sign_count, 0, "no refused assertion moved the counter");
    assert!(row.disabled_at.is_none() && row.last_used_at.is_none());
    let trail = events(&t, user.id).await;
    let failed = of_type(&trail, "passkey_assertion_failed");
    assert_eq!(
        failed.len(),
        cases.len() + 2,
        "every refusal leaves its record"
    );
    assert!(
        failed
            .iter()
            .all(|e| e.risk_score == 30 && e.outcome == AuditOutcome::Failure)
    );
    let mut reasons: Vec<&str> = failed
        .iter()
        .map(|e| e.details["reason"].as_str().expect("a reason"))
        .collect();
    reasons.sort_unstable();
    let mut want: Vec<&str> = cases
        .iter()
        .map(|(_, _, r)| r.as_str())
        .chain(["origin_mismatch", "rp_id_mismatch"])
        .collect();
    want.sort_unstable();
    assert_eq!(reasons, want);
    assert!(of_type(&trail, "passkey_clone_detected").is_empty());

    verify(&t, &deps, &signed)
        .await
        .expect("the good assertion still passes");
}

async fn passkeys_a_counter_regression_disables_the_passkey_and_is_recorded_at_high_risk(
    t: TestDb,
) {
    let (deps, clock) = fixtures::deps();
    let user = fixtures::user(&t.db, &deps, "tess").await;
    let laptop = Authenticator::new(7);
    let passkey = register_passkey(
        &t.db,
        &deps,
        &fixtures::current_session(&t.db, &deps, user.id).await,
        laptop.registration("Laptop"),
        &meta(),
    )
    .await
    .expect("registers");
    let at = |counter| Ceremony {
        counter,
        ..Ceremony::default()
    };
    verify(&t, &deps, &laptop.sign(&at(5)))
        .await
        .expect("5 passes");

    // The same count again: the key signs on two authenticators.
    clock.advance(Duration::seconds(1));
    assert_eq!(
        rejection(verify(&t, &deps, &laptop.sign(&at(5))).await),
        PasskeyRejection::ClonedAuthenticator
    );
    let row = stored(&t, passkey.id).await;
    assert_eq!(
        row.disabled_at,
        Some(deps.now()),
        "disabled, committed before the error"
    );
    assert_eq!(
        row.disabled_reason,
        Some(PasskeyDisabledReason::ClonedAuthenticator)
    );
    assert_eq!(row.sign_count, 5, "the counter is kept as it was");
    let trail = events(&t, user.id).await;
    let clone = of_type(&trail, "passkey_clone_detected");
    assert_eq!(clone.len(), 1);
    assert_eq!(clone[0].risk_score, 90);
    assert_eq!(clone[0].outcome, AuditOutcome::Denied);
    assert_eq!(
        clone[0].resource_id.as_deref(),
        Some(passkey.id.to_string().as_str())
    );
    assert_eq!(clone[0].details["stored_sign_count"], 5);
    assert_eq!(clone[0].details["presented_sign_count"], 5);

    // From now on every assertion is refused, a good count included.
    for counter in [6, 100] {
        assert_eq!(
            rejection(verify(&t, &deps, &laptop.sign(&at(counter))).await),
            PasskeyRejection::Disabled
        );
    }
    let listed = list_passkeys(&t.db, user.id).await.expect("lists");
    assert_eq!(
        listed[0].disabled_reason,
        Some(PasskeyDisabledReason::ClonedAuthenticator)
    );
    let trail = events(&t, user.id).await;
    assert_eq!(of_type(&trail, "passkey_clone_detected").len(), 1);
    assert_eq!(of_type(&trail, "passkey_assertion_failed").len(), 2);

    // A lower count is a regression too; so is a counter that falls back to zero.
    let key = Authenticator::new(8);
    let second = register_passkey(
        &t.db,
        &deps,
        &fixtures::current_session(&t.db, &deps, user.id).await,
        key.registration("Key"),
        &meta(),
    )
    .await
    .expect("registers");
    verify(&t, &deps, &key.sign(&at(3)))
        .await
        .expect("3 passes");
    assert_eq!(
        rejection(verify(&t, &deps, &key.sign(&at(0))).await),
        PasskeyRejection::ClonedAuthenticator
    );
    assert!(stored(&t, second.id).await.disabled_at.is_some());
    // A disabled passkey stays on record: removed, its credential could be registered
    // again with a fresh counter.
    let removal = remove_passkey(
        &t.db,
        &deps,
        &fixtures::current_session(&t.db, &deps, user.id).await,
        second.id,
        &meta(),
    )
    .await;
    assert!(
        matches!(
            removal,
            Err(ServiceError::Conflict {
                entity: "passkey",
                ..
            })
        ),
        "{removal:?}"
    );
    assert!(
        stored(&t, second.id).await.disabled_at.is_some(),
        "still there"
    );
    let again = register_passkey(
        &t.db,
        &deps,
        &fixtures::current_session(&t.db, &deps, user.id).await,
        key.registration("Key again"),
        &meta(),
    )
    .await;
    assert!(
        matches!(
            again,
            Err(ServiceError::Conflict {
                entity: "passkey",
                ..
            })
        ),
        "the cloned credential cannot come back: {again:?}"
    );
}

/// Both read the stored count before either writes; the counter's condition is checked
/// again by the update, on the locked row, so the second reads as the regression it is.
/// (An application that consumes its challenge before verifying never sends one
/// assertion twice.)
async fn passkeys_two_concurrent_assertions_with_one_count_exactly_one_passes(t: TestDb) {
    let (deps, _clock) = fixtures::deps();
    let user = fixtures::user(&t.db, &deps, "walt").await;
    let laptop = Authenticator::new(14);
    let passkey = register_passkey(
        &t.db,
        &deps,
        &fixtures::current_session(&t.db, &deps, user.id).await,
        laptop.registration("Laptop"),
        &meta(),
    )
    .await
    .expect("registers");
    let holder = match t.backend {
        tests::Backend::Sqlite => None,
        _ => {
            let txn = t.owner.begin().await.expect("begins");
            let id = match t.backend {
                tests::Backend::Postgres => {
                    // The owner too sees the row for update only as its user.
                    txn.execute_unprepared(&format!(
                        "SELECT set_config('app.current_user_id', '{}', true)",
                        user.id
                    ))
                    .await
                    .expect("acts as the user");
                    format!("'{}'", passkey.id)
                }
                _ => format!("x'{}'", passkey.id.0.simple()),
            };
            // Whether the row was locked shows below: both assertions wait on it.
            txn.execute_unprepared(&format!(
                "SELECT id FROM passkeys WHERE id = {id} FOR UPDATE"
            ))
            .await
            .expect("holds the passkey's row");
            Some(txn)
        }
    };
    let signed = Arc::new(laptop.sign(&Ceremony::default()));
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let attempts: Vec<_> = (0..2)
        .map(|_| {
            let (db, deps, signed, barrier) =
                (t.db.clone(), deps.clone(), signed.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                verify_passkey_assertion(&db, &deps, signed.assertion(), expected(), &meta()).await
            })
        })
        .collect();
    if let Some(holder) = holder {
        let waiting = match t.backend {
            tests::Backend::Postgres => {
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            }
            _ => {
                "SELECT count(*) FROM information_schema.processlist
                  WHERE db = DATABASE() AND info LIKE 'UPDATE `passkeys` SET `sign_count`%'"
            }
        };
        let mut both_waited = false;
        for _ in 0..200 {
            let row = t
                .owner
                .query_one_raw(sea_orm::Statement::from_string(t.db_backend(), waiting))
                .await
                .expect("reads the server's state")
                .expect("a row");
            if row.try_get_by_index::<i64>(0).expect("a count") >= 2 {
                both_waited = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        assert!(
            both_waited,
            "both assertions passed the checks and queued at the update"
        );
        holder.rollback().await.expect("lets go");
    }
    let results: Vec<_> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|joined| joined.expect("task finished"))
        .collect();
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "exactly one assertion passes: {results:?}"
    );
    assert!(
        results.iter().any(|r| matches!(
            r,
            Err(ServiceError::PasskeyRejected {
                reason: PasskeyRejection::ClonedAuthenticator
            })
        )),
        "{results:?}"
    );
    let row = stored(&t, passkey.id).await;
    assert_eq!(row.sign_count, 1);
    assert!(row.disabled_at.is_some());
    let trail = events(&t, user.id).await;
    assert_eq!(of_type(&trail, "passkey_used").len(), 1);
    assert_eq!(of_type(&trail, "passkey_clone_detected").len(), 1);
}

async fn passkeys_malformed_input_is_refused_before_any_query_and_writes_nothing(t: TestDb) {
    let (deps, _clock) = fixtures::deps();
    let user = fixtures::user(&t.db, &deps, "uma").await;
    let session = fixtures::session_of(&t.db, &deps, user.id).await;
    let laptop = Authenticator::new(10);
    let passkey = register_passkey(
        &t.db,
        &deps,
        &session,
        laptop.registration("Laptop"),
        &meta(),
    )
    .await
    .expect("registers");

    for name in ["", "   ", &"x".repeat(65), "a\u{7}b"] {
        let result = register_passkey(
            &t.db,
            &deps,
            &session,
            Authenticator::new(11).registration(name),
            &meta(),
        )
        .await;
        assert!(
            matches!(result, Err(ServiceError::Validation { field: "name", .. })),
            "{name:?}: {result:?}"
        );
        assert!(matches!(
            rename_passkey(&t.db, &deps, user.id, passkey.id, name, &meta()).await,
            Err(ServiceError::Validation { field: "name", .. })
        ));
    }
    // 64 characters of two bytes each fit.
    let long = "é".repeat(64);
    let renamed = rename_passkey(&t.db, &deps, user.id, passkey.id, &long, &meta())
        .await
        .expect("64 characters are a valid name");
    assert_eq!(renamed.name, long);
    // Counted after the one valid rename, which wrote its audit row.
    let before = inspect::row_counts(&t.owner).await;

    let base = Authenticator::new(12).registration("Key");
    let mut bad: Vec<(&str, NewPasskey)> = Vec::new();
    for len in [0usize, 15, 1024] {
        bad.push((
            "credential_id",
            NewPasskey {
                credential_id: vec![1; len],
                ..base.clone()
            },
        ));
    }
    let mut eddsa = base.public_key_cose.clone();
    eddsa[4] = 0x27;
    let mut off_curve = base.public_key_cose.clone();
    let last = off_curve.len() - 1;
    off_curve[last] ^= 1;
    for cose in [Vec::new(), vec![0xa0], eddsa, off_curve, laptop.point()] {
        bad.push((
            "public_key",
            NewPasskey {
                public_key_cose: cose,
                ..base.clone()
            },
        ));
    }
    for transports in [
        vec!["USB".to_owned()],
        vec![String::new()],
        vec!["a,b".to_owned()],
    ] {
        bad.push((
            "transports",
            NewPasskey {
                transports,
                ..base.clone()
            },
        ));
    }
    bad.push((
        "backup_state",
        NewPasskey {
            backup_eligible: false,
            backup_state: true,
            ..base.clone()
        },
    ));
    for (field, new) in bad {
        let result = register_passkey(&t.db, &deps, &session, new, &meta()).await;
        assert!(
            matches!(&result, Err(ServiceError::Validation { field: f, .. }) if *f == field),
            "{field}: {result:?}"
        );
    }

    let good = laptop.sign(&Ceremony::default());
    let short_id = vec![1u8; 15];
    let short_data = good.authenticator_data[..36].to_vec();
    let not_json = b"{\"type\":".to_vec();
    let no_challenge = br#"{"type":"webauthn.get","origin":"https://app.example.com"}"#.to_vec();
    let long_signature = vec![0x30; 73];
    let cases: [(&str, PasskeyAssertion<'_>); 6] = [
        (
            "credential_id",
            PasskeyAssertion {
                credential_id: &short_id,
                ..good.assertion()
            },
        ),
        (
            "authenticator_data",
            PasskeyAssertion {
                authenticator_data: &short_data,
                ..good.assertion()
            },
        ),
        (
            "client_data_json",
            PasskeyAssertion {
                client_data_json: &not_json,
                ..good.assertion()
            },
        ),
        (
            "client_data_json",
            PasskeyAssertion {
                client_data_json: &no_challenge,
                ..good.assertion()
            },
        ),
        (
            "signature",
            PasskeyAssertion {
                signature: &[],
                ..good.assertion()
            },
        ),
        (
            "signature",
            PasskeyAssertion {
                signature: &long_signature,
                ..good.assertion()
            },
        ),
    ];
    for (field, assertion) in cases {
        let result = verify_passkey_assertion(&t.db, &deps, assertion, expected(), &meta()).await;
        assert!(
            matches!(&result, Err(ServiceError::Validation { field: f, .. }) if *f == field),
            "{field}: {result:?}"
        );
    }
    let weak = ExpectedCeremony {
        challenge: b"short",
        ..expected()
    };
    assert!(matches!(
        verify_passkey_assertion(&t.db, &deps, good.assertion(), weak, &meta()).await,
        Err(ServiceError::Validation { .. })
    ));
    assert_eq!(
        inspect::row_counts(&t.owner).await,
        before,
        "bad input writes nothing"
    );
    verify(&t, &deps, &good)
        .await
        .expect("the good assertion still passes");
}

async fn passkeys_no_key_material_in_debug_output_or_audit_details(t: TestDb) {
    let (deps, _clock) = fixtures::deps();
    let user = fixtures::user(&t.db, &deps, "vera").await;
    let laptop = Authenticator::new(13);
    let registration = laptop.registration("Laptop");
    let passkey = register_passkey(
        &t.db,
        &deps,
        &fixtures::current_session(&t.db, &deps, user.id).await,
        registration.clone(),
        &meta(),
    )
    .await
    .expect("registers");
    let signed = laptop.sign(&Ceremony::default());
    verify(&t, &deps, &signed).await.expect("passes");
    let _ = verify(&t, &deps, &signed).await; // the same count again: a clone
    let listed = list_passkeys(&t.db, user.id).await.expect("lists");
    let model = stored(&t, passkey.id).await;

    let debug = format!(
        "{registration:?} {passkey:?} {listed:?} {model:?} {:?} {:?}",
        signed.assertion(),
        expected()
    );
    let details: Vec<String> = events(&t, user.id)
        .await
        .iter()
        .map(|e| e.details.to_string())
        .collect();
    assert!(details.len() >= 3, "{details:?}");
    let point = laptop.point();
    let x = &point[1..33];
    let decimal = |bytes: &[u8]| {
        bytes
            .iter()
            .map(u8::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let forbidden = [
        hex::encode(x),
        hex::encode(&point),
        URL_SAFE_NO_PAD.encode(x),
        STANDARD.encode(&point),
        decimal(&x[..12]),
        decimal(&registration.public_key_cose[..12]),
        hex::encode(&signed.signature),
        decimal(&signed.signature[..12]),
    ];
    for text in details.iter().chain(std::iter::once(&debug)) {
        for needle in &forbidden {
            assert!(
                !text.contains(needle.as_str()),
                "{needle:?} appears in {text}"
            );
        }
    }
    assert!(debug.contains("[redacted]"), "{debug}");
}

/// A passkey is a second factor: with one, signing in takes two steps, the second an
/// assertion over the challenge token; a session opened with the password alone must
/// step up with it before a sensitive operation.
async fn passkeys_complete_a_two_step_sign_in_and_step_up_a_session(t: TestDb) {
    let (deps, _clock) = fixtures::deps();
    let user = fixtures::user(&t.db, &deps, "pia").await;
    let laptop = Authenticator::new(21);
    register_passkey(
        &t.db,
        &deps,
        &fixtures::session_of(&t.db, &deps, user.id).await,
        laptop.registration("Laptop"),
        &meta(),
    )
    .await
    .expect("registers");
    let password = fixtures::password(fixtures::PASSWORD);
    let pia = fixtures::email("pia@example.com");
    let SignIn::SecondFactorRequired(challenge) = login(&t.db, &deps, &pia, &password, &meta())
        .await
        .expect("the password is right")
    else {
        panic!("a passkey makes sign-in two steps");
    };
    let over_the_token = |counter| Ceremony {
        challenge: challenge.token.expose().as_bytes().to_vec(),
        counter,
        ..Ceremony::default()
    };

    // Someone else's passkey, even over the right token, proves nothing.
    let stranger = fixtures::user(&t.db, &deps, "quentin").await;
    let theirs = Authenticator::new(22);
    register_passkey(
        &t.db,
        &deps,
        &fixtures::session_of(&t.db, &deps, stranger.id).await,
        theirs.registration("Theirs"),
        &meta(),
    )
    .await
    .expect("registers");
    let foreign = theirs.sign(&over_the_token(1));
    let refused = complete_sign_in_with_passkey(
        &t.db,
        &deps,
        challenge.token.expose(),
        foreign.assertion(),
        ORIGIN,
        RP_ID,
        &meta(),
    )
    .await;
    assert_eq!(rejection_of(refused), PasskeyRejection::UnknownCredential);
    // An assertion over another challenge does not complete this one.
    let elsewhere = laptop.sign(&Ceremony::default());
    let refused = complete_sign_in_with_passkey(
        &t.db,
        &deps,
        challenge.token.expose(),
        elsewhere.assertion(),
        ORIGIN,
        RP_ID,
        &meta(),
    )
    .await;
    assert_eq!(rejection_of(refused), PasskeyRejection::ChallengeMismatch);

    let signed = laptop.sign(&over_the_token(2));
    let (_, issued) = complete_sign_in_with_passkey(
        &t.db,
        &deps,
        challenge.token.expose(),
        signed.assertion(),
        ORIGIN,
        RP_ID,
        &meta(),
    )
    .await
    .expect("the passkey completes the sign-in");
    assert_eq!(issued.session.aal, AssuranceLevel::Aal2);
    assert_eq!(issued.session.auth_methods, "password,passkey");
    let again = laptop.sign(&over_the_token(3));
    let reused = complete_sign_in_with_passkey(
        &t.db,
        &deps,
        challenge.token.expose(),
        again.assertion(),
        ORIGIN,
        RP_ID,
        &meta(),
    )
    .await;
    assert!(
        matches!(reused, Err(ServiceError::InvalidToken)),
        "single use: {reused:?}"
    );

    // A password-only session of a user with a passkey must step up with it.
    let weak = fixtures::session_of(&t.db, &deps, user.id).await;
    let new_password = Password::new("violet harbour 93 lantern quietly").expect("valid");
    let refused = change_password(&t.db, &deps, &weak, &new_password, &meta()).await;
    assert!(
        matches!(
            refused,
            Err(ServiceError::StepUpRequired {
                needs: StepUp::SecondFactor
            })
        ),
        "{refused:?}"
    );
    let step_up = laptop.sign(&Ceremony {
        counter: 4,
        ..Ceremony::default()
    });
    let strong = reauthenticate_with_passkey(
        &t.db,
        &deps,
        &weak,
        &password,
        step_up.assertion(),
        expected(),
        &meta(),
    )
    .await
    .expect("steps up with the passkey");
    assert_eq!(strong.aal(), AssuranceLevel::Aal2);
    assert_eq!(strong.auth_methods(), "password,passkey");
    change_password(&t.db, &deps, &strong, &new_password, &meta())
        .await
        .expect("allowed after the step-up");
}

fn rejection_of<T: std::fmt::Debug>(result: Result<T, ServiceError>) -> PasskeyRejection {
    match result {
        Err(ServiceError::PasskeyRejected { reason }) => reason,
        other => panic!("expected a passkey refusal, got {other:?}"),
    }
}
