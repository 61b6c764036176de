//! The little CBOR a WebAuthn ceremony needs (RFC 8949: heads, integers, byte and text
//! strings, skipping what is not read) and ES256 COSE keys (RFC 9053 EC2 on P-256),
//! read from attestation objects and written for software authenticators.

use super::ES256;
use crate::Result;
use crate::error::ServiceError;
use p256::ecdsa::VerifyingKey;

/// A CBOR item of the few kinds a COSE EC2 key holds.
pub(super) enum Cbor<'a> {
    Int(i64),
    Bytes(&'a [u8]),
}

/// Reads a CBOR head (RFC 8949 §3): major type and argument. Indefinite lengths are
/// not used by COSE keys and refused.
pub(super) fn cbor_head(input: &mut &[u8]) -> Option<(u8, u64)> {
    let (&first, rest) = input.split_first()?;
    *input = rest;
    let (major, info) = (first >> 5, first & 0x1f);
    let width = match info {
        0..=23 => return Some((major, u64::from(info))),
        24 => 1,
        25 => 2,
        26 => 4,
        27 => 8,
        _ => return None,
    };
    if input.len() < width {
        return None;
    }
    let (bytes, rest) = input.split_at(width);
    *input = rest;
    Some((
        major,
        bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)),
    ))
}

pub(super) fn cbor_item<'a>(input: &mut &'a [u8]) -> Option<Cbor<'a>> {
    match cbor_head(input)? {
        (0, n) => i64::try_from(n).ok().map(Cbor::Int),
        (1, n) => i64::try_from(n).ok().map(|n| Cbor::Int(-1 - n)),
        (2, len) => {
            let len = usize::try_from(len).ok()?;
            if input.len() < len {
                return None;
            }
            let (bytes, rest) = input.split_at(len);
            *input = rest;
            Some(Cbor::Bytes(bytes))
        }
        _ => None,
    }
}

/// Skips one CBOR item of any kind (an attestation statement, an unknown COSE
/// parameter), nested at most `depth` deep.
pub(super) fn cbor_skip(input: &mut &[u8], depth: u8) -> Option<()> {
    let (major, n) = cbor_head(input)?;
    match major {
        0 | 1 | 7 => Some(()),
        2 | 3 => {
            let len = usize::try_from(n).ok()?;
            if input.len() < len {
                return None;
            }
            *input = &input[len..];
            Some(())
        }
        4 | 5 => {
            let items = if major == 5 { n.checked_mul(2)? } else { n };
            // Each item takes a byte at least: a count beyond the input is a lie.
            if depth == 0 || items > input.len() as u64 {
                return None;
            }
            (0..items).try_for_each(|_| cbor_skip(input, depth - 1))
        }
        6 if depth > 0 => cbor_skip(input, depth - 1),
        _ => None,
    }
}

pub(super) fn cbor_text<'a>(input: &mut &'a [u8]) -> Option<&'a str> {
    let (major, len) = cbor_head(input)?;
    let len = usize::try_from(len).ok()?;
    if major != 3 || input.len() < len {
        return None;
    }
    let (text, rest) = input.split_at(len);
    *input = rest;
    std::str::from_utf8(text).ok()
}

/// Reads an ES256 COSE key (kty 2 = EC2, alg -7, crv 1 = P-256, x and y of 32 bytes)
/// from the front of `input` and returns its uncompressed SEC1 point, checked to be on
/// the curve. Anything else is refused.
pub(super) fn read_es256_cose(input: &mut &[u8]) -> Option<Vec<u8>> {
    let (major, entries) = cbor_head(input)?;
    if major != 5 || entries > 16 {
        return None;
    }
    let (mut kty, mut alg, mut crv, mut x, mut y) = (None, None, None, None, None);
    for _ in 0..entries {
        let Cbor::Int(label) = cbor_item(input)? else {
            return None;
        };
        if !matches!(label, 1 | 3 | -1 | -2 | -3) {
            // Other parameters (a key id, key operations) say nothing the check needs.
            cbor_skip(input, 4)?;
            continue;
        }
        let twice = match (label, cbor_item(input)?) {
            (1, Cbor::Int(v)) => kty.replace(v).is_some(),
            (3, Cbor::Int(v)) => alg.replace(v).is_some(),
            (-1, Cbor::Int(v)) => crv.replace(v).is_some(),
            (-2, Cbor::Bytes(v)) => x.replace(v).is_some(),
            (-3, Cbor::Bytes(v)) => y.replace(v).is_some(),
            _ => return None,
        };
        if twice {
            return None;
        }
    }
    if (kty, alg, crv) != (Some(2), Some(i64::from(ES256)), Some(1)) {
        return None;
    }
    let (x, y) = (x?, y?);
    if x.len() != 32 || y.len() != 32 {
        return None;
    }
    let mut point = Vec::with_capacity(65);
    point.push(0x04);
    point.extend_from_slice(x);
    point.extend_from_slice(y);
    VerifyingKey::from_sec1_bytes(&point).ok()?;
    Some(point)
}

/// [`read_es256_cose`] of a whole value: nothing may follow the key.
pub(super) fn es256_point_from_cose(cose: &[u8]) -> Option<Vec<u8>> {
    let mut input = cose;
    let point = read_es256_cose(&mut input)?;
    input.is_empty().then_some(point)
}

/// The COSE_Key of an ES256 public key given as an uncompressed SEC1 point: what an
/// authenticator puts in `attestedCredentialData`. For software authenticators (the
/// tests, the seeder).
///
/// # Errors
/// `Validation` if `point` is not an uncompressed P-256 point.
pub fn es256_cose_key(point: &[u8]) -> Result<Vec<u8>> {
    if point.len() != 65 || point[0] != 0x04 || VerifyingKey::from_sec1_bytes(point).is_err() {
        return Err(ServiceError::validation(
            "public_key",
            "an uncompressed P-256 point",
        ));
    }
    let mut cose = vec![0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 0x20];
    cose.extend_from_slice(&point[1..33]);
    cose.extend_from_slice(&[0x22, 0x58, 0x20]);
    cose.extend_from_slice(&point[33..65]);
    Ok(cose)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cose_keys_round_trip_and_others_are_refused() {
        let key = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).expect("a valid scalar");
        let point = key.verifying_key().to_encoded_point(false);
        let cose = es256_cose_key(point.as_bytes()).expect("encodes");
        assert_eq!(
            es256_point_from_cose(&cose).as_deref(),
            Some(point.as_bytes())
        );
        let mut other_alg = cose.clone();
        other_alg[4] = 0x27; // -8, EdDSA
        assert!(es256_point_from_cose(&other_alg).is_none());
        let mut trailing = cose.clone();
        trailing.push(0);
        assert!(es256_point_from_cose(&trailing).is_none());
        assert!(es256_point_from_cose(&cose[..cose.len() - 1]).is_none());
        let mut off_curve = cose;
        let last = off_curve.len() - 1;
        off_curve[last] ^= 1;
        assert!(es256_point_from_cose(&off_curve).is_none());
    }
}
