//! The audit trail's hash chains: which chain a row belongs to, and what its `hash`
//! covers.
//!
//! Every row belongs to one chain: its tenant's; outside any tenant, its actor's; and
//! with neither, the anonymous chain ([`ANONYMOUS_CHAIN`], the nil UUID). Rows of a
//! chain are numbered 1, 2, 3, ... (`chain_seq`, no gaps), and
//!
//! ```text
//! hash = SHA-256(prev_hash || canonical encoding of the row)
//! ```
//!
//! where `prev_hash` is the previous row's `hash` (32 zero bytes, [`GENESIS`], for the
//! first row). `audit_chain_heads` holds each chain's last sequence number and hash.
//!
//! # Canonical encoding, version 1
//!
//! Frozen: rows written with `chain_version = 1` are verified with it forever; a
//! change of what is hashed is a version 2 next to it. The encoding is a sequence of
//! fields, each a 4-byte big-endian length followed by that many bytes; a SQL `NULL`
//! is the length `0xFFFFFFFF` with no bytes. The fields, in this order:
//!
//! | # | field | bytes |
//! |---|---|---|
//! | 1 | the tag | ASCII `audit-v1` |
//! | 2 | `chain_id` | 16 (the UUID's bytes) |
//! | 3 | `chain_seq` | 8, big-endian two's complement |
//! | 4 | `id` | 16 |
//! | 5 | `tenant_id` | 16, or NULL |
//! | 6 | `actor_user_id` | 16, or NULL |
//! | 7 | `event_type` | UTF-8 |
//! | 8 | `resource_type` | UTF-8, or NULL |
//! | 9 | `resource_id` | UTF-8, or NULL |
//! | 10 | `outcome` | UTF-8 (`success`, `failure`, `denied`) |
//! | 11 | `risk_score` | 2, big-endian |
//! | 12 | `ip_address` | UTF-8, or NULL |
//! | 13 | `user_agent` | UTF-8, or NULL |
//! | 14 | `details` | canonical JSON: no whitespace, object keys sorted by their UTF-8 bytes, strings as `serde_json` writes them, numbers as below |
//! | 15 | `occurred_at` | 8: microseconds since 1970-01-01 UTC, big-endian |
//!
//! A number is written as a decimal integer when it is one (`1.0` and `1e16` too) and
//! lies in -2^63 ..= 2^64 - 1; otherwise as the shortest text that reads back as the
//! same double (`0.1`, `1e+20`... as `serde_json` writes an `f64`). The JSON is
//! canonicalised from the value as stored, because PostgreSQL's `jsonb` reorders keys
//! and respells numbers (`1e16` comes back as `10000000000000000`); timestamps count
//! whole microseconds, the precision every backend keeps.

use chrono::{DateTime, Utc};
use sea_orm::prelude::Uuid;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The encoding version new rows are written with.
pub const CURRENT_VERSION: i16 = 1;

/// The chain of events with neither a tenant nor an actor (a failed sign-in for an
/// unknown email).
pub const ANONYMOUS_CHAIN: Uuid = Uuid::nil();

/// The `prev_hash` of a chain's first row.
pub const GENESIS: [u8; 32] = [0; 32];

/// The chain an event belongs to.
pub fn chain_of(tenant_id: Option<Uuid>, actor_user_id: Option<Uuid>) -> Uuid {
    tenant_id.or(actor_user_id).unwrap_or(ANONYMOUS_CHAIN)
}

/// The hashed fields of one audit row, borrowed from wherever the row is.
#[derive(Clone, Copy, Debug)]
pub struct ChainedRow<'a> {
    pub chain_id: Uuid,
    pub chain_seq: i64,
    pub id: Uuid,
    pub tenant_id: Option<Uuid>,
    pub actor_user_id: Option<Uuid>,
    pub event_type: &'a str,
    pub resource_type: Option<&'a str>,
    pub resource_id: Option<&'a str>,
    pub outcome: &'a str,
    pub risk_score: i16,
    pub ip_address: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub details: &'a Value,
    pub occurred_at: DateTime<Utc>,
}

impl ChainedRow<'_> {
    /// The row's canonical encoding of `version`, or `None` for a version this build
    /// does not know.
    pub fn canonical(&self, version: i16) -> Option<Vec<u8>> {
        let SplitAtSeq { mut before, after } = self.canonical_split_at_seq(version)?;
        before.extend_from_slice(&self.chain_seq.to_be_bytes());
        before.extend_from_slice(&after);
        Some(before)
    }

    /// The canonical encoding of `version` without the 8 bytes of `chain_seq`, cut
    /// where they go (`chain_seq` itself is not read). A writer that lets the database
    /// number the row under the chain head's lock sends these two parts and has it
    /// compute `SHA-256(prev_hash || before || seq || after)`, which is [`Self::hash`]
    /// of the same row. `None` for an unknown version.
    pub fn canonical_split_at_seq(&self, version: i16) -> Option<SplitAtSeq> {
        (version == 1).then(|| self.canonical_v1_split())
    }

    fn canonical_v1_split(&self) -> SplitAtSeq {
        let mut before = Vec::with_capacity(48);
        field(&mut before, Some(b"audit-v1"));
        field(&mut before, Some(self.chain_id.as_bytes()));
        // The sequence number's field: its length here, its 8 bytes between the parts.
        before.extend_from_slice(&8u32.to_be_bytes());
        let mut after = Vec::with_capacity(256);
        let mut json = Vec::with_capacity(64);
        write_canonical_json(self.details, &mut json);
        field(&mut after, Some(self.id.as_bytes()));
        field(
            &mut after,
            self.tenant_id.as_ref().map(|u| u.as_bytes().as_slice()),
        );
        field(
            &mut after,
            self.actor_user_id.as_ref().map(|u| u.as_bytes().as_slice()),
        );
        field(&mut after, Some(self.event_type.as_bytes()));
        field(&mut after, self.resource_type.map(str::as_bytes));
        field(&mut after, self.resource_id.map(str::as_bytes));
        field(&mut after, Some(self.outcome.as_bytes()));
        field(&mut after, Some(&self.risk_score.to_be_bytes()));
        field(&mut after, self.ip_address.map(str::as_bytes));
        field(&mut after, self.user_agent.map(str::as_bytes));
        field(&mut after, Some(&json));
        field(
            &mut after,
            Some(&self.occurred_at.timestamp_micros().to_be_bytes()),
        );
        SplitAtSeq { before, after }
    }

    /// `SHA-256(prev_hash || canonical(version))`, or `None` for an unknown version.
    pub fn hash(&self, version: i16, prev_hash: &[u8]) -> Option<[u8; 32]> {
        Some(
            self.canonical_split_at_seq(version)?
                .hash(prev_hash, self.chain_seq),
        )
    }
}

/// A row's canonical encoding with the 8 bytes of its `chain_seq` left out, see
/// [`ChainedRow::canonical_split_at_seq`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitAtSeq {
    /// The tag, `chain_id`, and the length of the `chain_seq` field.
    pub before: Vec<u8>,
    /// Every field after `chain_seq`.
    pub after: Vec<u8>,
}

impl SplitAtSeq {
    /// `SHA-256(prev_hash || before || seq || after)`: the hash of the row numbered
    /// `seq`.
    pub fn hash(&self, prev_hash: &[u8], seq: i64) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(prev_hash);
        hasher.update(&self.before);
        hasher.update(seq.to_be_bytes());
        hasher.update(&self.after);
        hasher.finalize().into()
    }
}

/// A timestamp cut to whole microseconds, what every backend stores: the writer
/// hashes what a reader will read back.
pub fn to_stored_precision(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at)
}

fn field(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(bytes) => {
            // Every field is far below 4 GiB (the columns bound them).
            let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX - 1);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(bytes);
        }
        None => out.extend_from_slice(&u32::MAX.to_be_bytes()),
    }
}

/// Compact JSON with object keys sorted by their bytes, whatever order the value's
/// map keeps (`serde_json`'s `preserve_order` feature may be on in a dependency).
fn write_canonical_json(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(&Value::String(key.clone()), out);
                out.push(b':');
                write_canonical_json(item, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical_json(item, out);
            }
            out.push(b']');
        }
        scalar => write_scalar(scalar, out),
    }
}

fn write_scalar(value: &Value, out: &mut Vec<u8>) {
    if let Value::Number(number) = value {
        write_number(number, out);
        return;
    }
    // Writing a string, bool or null into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}

/// Integers (however spelled) as integers, other numbers as their double.
fn write_number(number: &serde_json::Number, out: &mut Vec<u8>) {
    const LOW: f64 = -9_223_372_036_854_775_808.0; // -2^63
    const HIGH: f64 = 18_446_744_073_709_551_616.0; // 2^64
    if let Some(i) = number.as_i64() {
        out.extend_from_slice(i.to_string().as_bytes());
    } else if let Some(u) = number.as_u64() {
        out.extend_from_slice(u.to_string().as_bytes());
    } else if let Some(f) = number.as_f64() {
        if f.fract() == 0.0 && (LOW..HIGH).contains(&f) {
            // Exact: every double in this range with no fraction is an integer that
            // i128 holds.
            out.extend_from_slice((f as i128).to_string().as_bytes());
        } else {
            let _ = serde_json::to_writer(&mut *out, &f);
        }
    } else {
        out.extend_from_slice(number.to_string().as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(details: &Value) -> ChainedRow<'_> {
        ChainedRow {
            chain_id: Uuid::from_u128(1),
            chain_seq: 1,
            id: Uuid::from_u128(2),
            tenant_id: Some(Uuid::from_u128(1)),
            actor_user_id: None,
            event_type: "login",
            resource_type: None,
            resource_id: Some(""),
            outcome: "success",
            risk_score: 0,
            ip_address: None,
            user_agent: None,
            details,
            occurred_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
        }
    }

    #[test]
    fn key_order_does_not_change_the_hash() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":{"y":[1,2],"x":"é"}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{ "a": {"x":"é","y":[1,2]}, "b": 1 }"#).unwrap();
        assert_eq!(row(&a).hash(1, &GENESIS), row(&b).hash(1, &GENESIS));
        let mut out = Vec::new();
        write_canonical_json(&a, &mut out);
        assert_eq!(out, r#"{"a":{"x":"é","y":[1,2]},"b":1}"#.as_bytes());
    }

    #[test]
    fn numbers_are_spelled_the_same_however_they_come_back() {
        // What a writer holds, and what PostgreSQL's jsonb hands back for it.
        for (written, read_back) in [
            ("1.0", "1"),
            ("1e16", "10000000000000000"),
            ("1.5e19", "15000000000000000000"),
            ("-9.2e18", "-9200000000000000000"),
            ("1e20", "100000000000000000000"),
            ("0.30000000000000004", "0.30000000000000004"),
            ("2.5", "2.50"),
            ("-0.0", "0"),
        ] {
            let mut a = Vec::new();
            let mut b = Vec::new();
            write_canonical_json(&serde_json::from_str(written).unwrap(), &mut a);
            write_canonical_json(&serde_json::from_str(read_back).unwrap(), &mut b);
            assert_eq!(a, b, "{written} / {read_back}");
        }
    }

    #[test]
    fn null_and_empty_are_different_fields() {
        let details = json!({});
        let empty = row(&details);
        let null = ChainedRow {
            resource_id: None,
            ..empty
        };
        assert_ne!(empty.hash(1, &GENESIS), null.hash(1, &GENESIS));
    }

    #[test]
    fn every_field_and_the_previous_hash_count() {
        let details = json!({"k": 1});
        let base = row(&details);
        let other_details = json!({"k": 2});
        let h = |r: ChainedRow<'_>| r.hash(1, &GENESIS).unwrap();
        let variants = [
            ChainedRow {
                chain_seq: 2,
                ..base
            },
            ChainedRow {
                risk_score: 1,
                ..base
            },
            ChainedRow {
                event_type: "logout",
                ..base
            },
            ChainedRow {
                details: &other_details,
                ..base
            },
            ChainedRow {
                occurred_at: base.occurred_at + chrono::Duration::microseconds(1),
                ..base
            },
            ChainedRow {
                tenant_id: None,
                ..base
            },
        ];
        for variant in variants {
            assert_ne!(h(base), h(variant), "{variant:?}");
        }
        assert_ne!(base.hash(1, &GENESIS), base.hash(1, &[1; 32]));
        assert_eq!(
            base.hash(2, &GENESIS),
            None,
            "an unknown version hashes nothing"
        );
    }

    #[test]
    fn version_1_is_frozen() {
        // The hash of `row` as the table in the module's documentation spells it,
        // computed outside this code.
        let details = json!({"k": 1});
        let hash = row(&details).hash(1, &GENESIS).unwrap();
        let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "f2782f9566bcc51622540d9c71704bc7f0e76bc9fe74935e79534a765e8e0e8e"
        );
    }

    #[test]
    fn the_split_encoding_is_the_encoding_without_the_sequence_number() {
        let details = json!({"k": [1, "two"], "a": null});
        let base = row(&details);
        for seq in [1, 2, 255, i64::MAX] {
            let numbered = ChainedRow {
                chain_seq: seq,
                ..base
            };
            let split = numbered.canonical_split_at_seq(1).unwrap();
            assert_eq!(split, base.canonical_split_at_seq(1).unwrap());
            let joined = [&split.before[..], &seq.to_be_bytes(), &split.after[..]].concat();
            assert_eq!(Some(joined), numbered.canonical(1));
        }
        assert_eq!(base.canonical_split_at_seq(2), None);
    }

    #[test]
    fn stored_precision_drops_nanoseconds_only() {
        let at = DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap();
        assert_eq!(
            to_stored_precision(at).timestamp_nanos_opt(),
            Some(1_700_000_000_123_456_000)
        );
    }
}
