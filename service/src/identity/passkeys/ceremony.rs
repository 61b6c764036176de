//! The checks of a WebAuthn ceremony that need no database (WebAuthn Level 2 §7.1 and
//! §7.2): the shapes of what the browser returned, the client data, the authenticator
//! data, the registration response as a whole, the signature, and the counter rule.

use super::cose::{
    Cbor, cbor_head, cbor_item, cbor_skip, cbor_text, es256_cose_key, read_es256_cose,
};
use super::{
    AUTH_DATA_MAX_LEN, AUTH_DATA_MIN_LEN, CLIENT_DATA_MAX_LEN, ES256, ExpectedCeremony,
    FLAG_ATTESTED_CREDENTIAL, FLAG_BACKUP_ELIGIBLE, FLAG_BACKUP_STATE, FLAG_EXTENSIONS,
    FLAG_USER_PRESENT, FLAG_USER_VERIFIED, NewPasskey, PasskeyAssertion, PasskeyRejection,
    SIGNATURE_LEN, check_credential_id,
};
use crate::Result;
use crate::error::ServiceError;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use entity::identity::passkeys;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// The fields of clientDataJSON the check reads (WebAuthn §5.8.1).
pub(super) struct ClientData {
    kind: String,
    challenge: String,
    origin: String,
    cross_origin: bool,
}

pub(super) fn parse_client_data(json: &[u8]) -> Result<ClientData> {
    let malformed = || ServiceError::validation("client_data_json", "not WebAuthn client data");
    let value: serde_json::Value = serde_json::from_slice(json).map_err(|_| malformed())?;
    let text = |key: &str| value.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    Ok(ClientData {
        kind: text("type").ok_or_else(malformed)?,
        challenge: text("challenge").ok_or_else(malformed)?,
        origin: text("origin").ok_or_else(malformed)?,
        cross_origin: value
            .get("crossOrigin")
            .and_then(|v| v.as_bool())
            .unwrap_or(false),
    })
}

/// Shape checks, before any query: lengths, and client data that parses.
pub(super) fn check_shapes(
    assertion: &PasskeyAssertion<'_>,
    expected: &ExpectedCeremony<'_>,
) -> Result<ClientData> {
    check_credential_id(assertion.credential_id)?;
    if !(AUTH_DATA_MIN_LEN..=AUTH_DATA_MAX_LEN).contains(&assertion.authenticator_data.len()) {
        return Err(ServiceError::validation(
            "authenticator_data",
            "37 to 4096 bytes",
        ));
    }
    if !SIGNATURE_LEN.contains(&assertion.signature.len()) {
        return Err(ServiceError::validation(
            "signature",
            "a DER ECDSA signature (8 to 72 bytes)",
        ));
    }
    if assertion.client_data_json.len() > CLIENT_DATA_MAX_LEN {
        return Err(ServiceError::validation(
            "client_data_json",
            "at most 16 KiB",
        ));
    }
    check_expected(expected)?;
    parse_client_data(assertion.client_data_json)
}

pub(super) fn check_expected(expected: &ExpectedCeremony<'_>) -> Result<()> {
    if expected.challenge.len() < 16 {
        return Err(ServiceError::validation(
            "expected challenge",
            "at least 16 random bytes",
        ));
    }
    if expected.origin.is_empty() || expected.rp_id.is_empty() {
        return Err(ServiceError::validation(
            "expected origin and RP id",
            "both are required",
        ));
    }
    Ok(())
}

/// The checks a registration and an assertion share: the client data's type, challenge
/// and origin; the authenticator data's RP id hash, user presence and backup flags.
/// `auth` has its 37 fixed bytes.
pub(super) fn check_ceremony(
    kind: &str,
    client: &ClientData,
    auth: &[u8],
    expected: &ExpectedCeremony<'_>,
) -> std::result::Result<(), PasskeyRejection> {
    if client.kind != kind {
        return Err(PasskeyRejection::WrongType);
    }
    let challenge_ok = URL_SAFE_NO_PAD
        .decode(client.challenge.as_bytes())
        .is_ok_and(|c| bool::from(c.as_slice().ct_eq(expected.challenge)));
    if !challenge_ok {
        return Err(PasskeyRejection::ChallengeMismatch);
    }
    if client.origin != expected.origin {
        return Err(PasskeyRejection::OriginMismatch);
    }
    if client.cross_origin {
        return Err(PasskeyRejection::CrossOrigin);
    }
    let rp_id_hash = Sha256::digest(expected.rp_id.as_bytes());
    if !bool::from(auth[..32].ct_eq(rp_id_hash.as_slice())) {
        return Err(PasskeyRejection::RpIdMismatch);
    }
    let flags = auth[32];
    if flags & FLAG_USER_PRESENT == 0 {
        return Err(PasskeyRejection::UserNotPresent);
    }
    if flags & FLAG_BACKUP_STATE != 0 && flags & FLAG_BACKUP_ELIGIBLE == 0 {
        return Err(PasskeyRejection::BackupFlags);
    }
    Ok(())
}

/// What the browser returned from `navigator.credentials.create()`, decoded from
/// base64url. `Debug` shows lengths only.
#[derive(Clone, Copy)]
pub struct PasskeyRegistration<'a> {
    pub attestation_object: &'a [u8],
    pub client_data_json: &'a [u8],
    /// `response.getTransports()`.
    pub transports: &'a [String],
}

impl fmt::Debug for PasskeyRegistration<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasskeyRegistration")
            .field("attestation_object_len", &self.attestation_object.len())
            .field("client_data_json_len", &self.client_data_json.len())
            .field("transports", &self.transports)
            .finish()
    }
}

/// A registration response that holds: the credential to store, and what the
/// ceremony said about it.
#[derive(Clone, Debug)]
pub struct CheckedRegistration {
    pub passkey: NewPasskey,
    /// The authenticator verified the user (PIN, biometrics).
    pub user_verified: bool,
    /// The attestation statement's format (`none`, `packed`, ...); its content is not
    /// verified.
    pub attestation_format: String,
}

/// Checks a registration ceremony's response as WebAuthn Level 2 §7.1 says: the
/// client data is of `webauthn.create` with the expected challenge and origin; the
/// authenticator data has the RP id's hash, user presence, consistent backup flags and
/// attested credential data with an ES256 key. The attestation statement is skipped,
/// not verified (what `attestation: "none"` asks for): the authenticator's model is
/// taken on the client's word. Pass the result's `passkey` to [`register_passkey`].
/// No query runs and nothing is recorded.
///
/// # Errors
/// `Validation` for input that is not a well-formed response (lengths, CBOR, JSON);
/// `PasskeyRejected` for a ceremony that does not hold, `UnsupportedAlgorithm` for a
/// key other than ES256.
pub fn check_registration(
    registration: PasskeyRegistration<'_>,
    expected: ExpectedCeremony<'_>,
    name: &str,
) -> Result<CheckedRegistration> {
    let malformed =
        || ServiceError::validation("attestation_object", "not a WebAuthn attestation object");
    check_expected(&expected)?;
    if registration.attestation_object.len() > AUTH_DATA_MAX_LEN * 4
        || registration.client_data_json.len() > CLIENT_DATA_MAX_LEN
    {
        return Err(ServiceError::validation(
            "registration",
            "larger than any authenticator makes",
        ));
    }
    let client = parse_client_data(registration.client_data_json)?;
    // The attestation object: a map of "fmt", "attStmt" and "authData" (§6.5.4).
    let mut input = registration.attestation_object;
    let (major, entries) = cbor_head(&mut input).ok_or_else(malformed)?;
    if major != 5 || entries != 3 {
        return Err(malformed());
    }
    let (mut format, mut auth) = (None, None);
    for _ in 0..entries {
        match cbor_text(&mut input).ok_or_else(malformed)? {
            "fmt" => format = Some(cbor_text(&mut input).ok_or_else(malformed)?.to_owned()),
            "authData" => match cbor_item(&mut input) {
                Some(Cbor::Bytes(bytes)) => auth = Some(bytes),
                _ => return Err(malformed()),
            },
            "attStmt" => cbor_skip(&mut input, 8).ok_or_else(malformed)?,
            _ => return Err(malformed()),
        }
    }
    let (Some(format), Some(auth)) = (format, auth) else {
        return Err(malformed());
    };
    if !input.is_empty() || auth.len() < AUTH_DATA_MIN_LEN {
        return Err(malformed());
    }
    check_ceremony("webauthn.create", &client, auth, &expected)
        .map_err(|reason| ServiceError::PasskeyRejected { reason })?;
    let flags = auth[32];
    if flags & FLAG_ATTESTED_CREDENTIAL == 0 {
        return Err(malformed());
    }
    let sign_count = u32::from_be_bytes([auth[33], auth[34], auth[35], auth[36]]);
    // attestedCredentialData: aaguid (16), credentialIdLength (2), credentialId,
    // credentialPublicKey (COSE); then extensions if the ED flag is set.
    let rest = &auth[AUTH_DATA_MIN_LEN..];
    if rest.len() < 18 {
        return Err(malformed());
    }
    let aaguid = Uuid::from_slice(&rest[..16]).map_err(|_| malformed())?;
    let id_len = usize::from(u16::from_be_bytes([rest[16], rest[17]]));
    let rest = &rest[18..];
    if rest.len() < id_len {
        return Err(malformed());
    }
    let (credential_id, mut rest) = rest.split_at(id_len);
    check_credential_id(credential_id)?;
    let point = read_es256_cose(&mut rest).ok_or(ServiceError::PasskeyRejected {
        reason: PasskeyRejection::UnsupportedAlgorithm,
    })?;
    if flags & FLAG_EXTENSIONS != 0 {
        cbor_skip(&mut rest, 8).ok_or_else(malformed)?;
    }
    if !rest.is_empty() {
        return Err(malformed());
    }
    Ok(CheckedRegistration {
        passkey: NewPasskey {
            credential_id: credential_id.to_vec(),
            public_key_cose: es256_cose_key(&point)?,
            sign_count,
            aaguid,
            transports: registration.transports.to_vec(),
            backup_eligible: flags & FLAG_BACKUP_ELIGIBLE != 0,
            backup_state: flags & FLAG_BACKUP_STATE != 0,
            name: name.to_owned(),
        },
        user_verified: flags & FLAG_USER_VERIFIED != 0,
        attestation_format: format,
    })
}

/// The checks that need the stored passkey but change nothing, in WebAuthn's order;
/// the counter is left to the caller.
pub(super) fn check_assertion(
    passkey: &passkeys::Model,
    assertion: &PasskeyAssertion<'_>,
    client: &ClientData,
    expected: &ExpectedCeremony<'_>,
) -> std::result::Result<(), PasskeyRejection> {
    if passkey.disabled_at.is_some() {
        return Err(PasskeyRejection::Disabled);
    }
    if passkey.algorithm != ES256 {
        return Err(PasskeyRejection::UnsupportedAlgorithm);
    }
    check_ceremony(
        "webauthn.get",
        client,
        assertion.authenticator_data,
        expected,
    )?;
    let auth = assertion.authenticator_data;
    if (auth[32] & FLAG_BACKUP_ELIGIBLE != 0) != passkey.backup_eligible {
        return Err(PasskeyRejection::BackupFlags);
    }
    let key = VerifyingKey::from_sec1_bytes(passkey.public_key.expose())
        .map_err(|_| PasskeyRejection::UnsupportedAlgorithm)?;
    let signature =
        Signature::from_der(assertion.signature).map_err(|_| PasskeyRejection::BadSignature)?;
    let mut signed = Vec::with_capacity(auth.len() + 32);
    signed.extend_from_slice(auth);
    signed.extend_from_slice(&Sha256::digest(assertion.client_data_json));
    // ECDSA with SHA-256 over the message: the verifier hashes `signed` itself.
    key.verify(&signed, &signature)
        .map_err(|_| PasskeyRejection::BadSignature)
}

/// The counter rule: counting starts when either side is non-zero, and from then on
/// each assertion's count must be greater than the last.
pub(super) fn counter_advances(stored: i64, presented: u32) -> bool {
    let presented = i64::from(presented);
    (stored == 0 && presented == 0) || presented > stored
}
