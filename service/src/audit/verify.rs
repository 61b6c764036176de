//! Verifying the audit chains: every link recomputed in sequence order, streamed from
//! one query, so memory stays flat whatever the trail's size.
//!
//! Inside one chain a row is checked for: belonging to the chain its tenant and actor
//! name, the next sequence number (a gap is a deleted row), a `prev_hash` equal to the
//! previous row's hash, a known encoding version, and a stored `hash` equal to the one
//! recomputed. Each chain's end is then compared with its head in
//! `audit_chain_heads` (rows removed from the end leave the head ahead). The first
//! finding of a chain is reported and the rest of that chain skipped: after one broken
//! link every later one differs too.
//!
//! The walk reads one snapshot (a read-only `REPEATABLE READ` transaction; SQLite's
//! read transaction), so writers appending meanwhile cause no false finding. On
//! PostgreSQL, connect as the schema owner or a reading role: the runtime role sees
//! its tenant's rows only.

use crate::Result;
use entity::audit::chain::{self, GENESIS};
use entity::audit::{audit_chain_heads as heads, audit_logs};
use futures::StreamExt;
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    AccessMode, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait,
    FromQueryResult, IsolationLevel, QueryFilter, QueryOrder, QueryTrait, StreamTrait,
    TransactionTrait,
};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use uuid::Uuid;

/// Which chains to walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainScope {
    All,
    /// One chain: a tenant's id, a user's id (their events outside any tenant), or
    /// [`chain::ANONYMOUS_CHAIN`].
    One(Uuid),
}

/// How often (in rows) the progress callback hears of the walk.
const PROGRESS_EVERY: u64 = 10_000;

/// What is wrong with a chain, at the first place it goes wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    /// The stored hash is not the hash of the row as it is: the row (or one before it,
    /// through `prev_hash`) was changed.
    BrokenLink {
        chain_id: Uuid,
        sequence: i64,
        row_id: Uuid,
        expected_hash: String,
        found_hash: String,
    },
    /// The row does not point at the previous row's hash.
    PreviousHashMismatch {
        chain_id: Uuid,
        sequence: i64,
        row_id: Uuid,
        expected_hash: String,
        found_hash: String,
    },
    /// A sequence number is missing (a deleted row) or repeated.
    Gap {
        chain_id: Uuid,
        expected_sequence: i64,
        found_sequence: i64,
    },
    /// The row sits in another chain than its tenant and actor say.
    WrongChain {
        chain_id: Uuid,
        sequence: i64,
        row_id: Uuid,
        expected_chain_id: Uuid,
    },
    /// Written with an encoding this build does not know.
    UnknownVersion {
        chain_id: Uuid,
        sequence: i64,
        version: i16,
    },
    /// The chain ends elsewhere than its head says: rows were removed from its end, or
    /// the head was altered.
    HeadMismatch {
        chain_id: Uuid,
        head_sequence: i64,
        head_hash: String,
        chain_sequence: i64,
        chain_hash: String,
    },
    /// Rows without a head.
    MissingHead { chain_id: Uuid, chain_sequence: i64 },
    /// The chain no longer holds the link a signed checkpoint recorded: truncated,
    /// reordered or recomputed since.
    CheckpointMismatch {
        chain_id: Uuid,
        signed_sequence: i64,
        signed_hash: String,
        /// `None` when the chain no longer has that many rows.
        found_hash: Option<String>,
    },
}

impl Finding {
    pub fn chain_id(&self) -> Uuid {
        match self {
            Finding::BrokenLink { chain_id, .. }
            | Finding::PreviousHashMismatch { chain_id, .. }
            | Finding::Gap { chain_id, .. }
            | Finding::WrongChain { chain_id, .. }
            | Finding::UnknownVersion { chain_id, .. }
            | Finding::HeadMismatch { chain_id, .. }
            | Finding::MissingHead { chain_id, .. }
            | Finding::CheckpointMismatch { chain_id, .. } => *chain_id,
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::BrokenLink {
                chain_id,
                sequence,
                row_id,
                expected_hash,
                found_hash,
            } => write!(
                f,
                "chain {chain_id}: broken link at sequence {sequence} (row {row_id}): the row hashes to {expected_hash}, its stored hash is {found_hash}"
            ),
            Finding::PreviousHashMismatch {
                chain_id,
                sequence,
                row_id,
                expected_hash,
                found_hash,
            } => write!(
                f,
                "chain {chain_id}: sequence {sequence} (row {row_id}) points at {found_hash}, the previous row's hash is {expected_hash}"
            ),
            Finding::Gap {
                chain_id,
                expected_sequence,
                found_sequence,
            } => write!(
                f,
                "chain {chain_id}: gap: expected sequence {expected_sequence}, found {found_sequence}"
            ),
            Finding::WrongChain {
                chain_id,
                sequence,
                row_id,
                expected_chain_id,
            } => write!(
                f,
                "chain {chain_id}: sequence {sequence} (row {row_id}) belongs to chain {expected_chain_id}"
            ),
            Finding::UnknownVersion {
                chain_id,
                sequence,
                version,
            } => write!(
                f,
                "chain {chain_id}: sequence {sequence} uses encoding version {version}, unknown to this build"
            ),
            Finding::HeadMismatch {
                chain_id,
                head_sequence,
                head_hash,
                chain_sequence,
                chain_hash,
            } => write!(
                f,
                "chain {chain_id}: ends at sequence {chain_sequence} ({chain_hash}) but its head says {head_sequence} ({head_hash})"
            ),
            Finding::MissingHead {
                chain_id,
                chain_sequence,
            } => write!(f, "chain {chain_id}: {chain_sequence} row(s) and no head"),
            Finding::CheckpointMismatch {
                chain_id,
                signed_sequence,
                signed_hash,
                found_hash,
            } => match found_hash {
                Some(found) => write!(
                    f,
                    "chain {chain_id}: the checkpoint signed sequence {signed_sequence} as {signed_hash}; it is now {found}"
                ),
                None => write!(
                    f,
                    "chain {chain_id}: the checkpoint signed sequence {signed_sequence} ({signed_hash}); the chain no longer reaches it"
                ),
            },
        }
    }
}

/// What a verification walked and found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub chains: u64,
    pub rows: u64,
    /// At most one per chain, in chain order.
    pub findings: Vec<Finding>,
}

impl VerifyReport {
    pub fn is_intact(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Signed heads by chain: `(sequence, hash)`.
pub type SignedHeads = BTreeMap<Uuid, (i64, [u8; 32])>;

/// One chain's walk so far.
struct Walk {
    chain_id: Uuid,
    last_seq: i64,
    last_hash: [u8; 32],
    broken: bool,
    /// The link a checkpoint signed for this chain.
    signed: Option<(i64, [u8; 32])>,
}

impl Walk {
    fn new(chain_id: Uuid, signed: Option<&SignedHeads>) -> Self {
        Walk {
            chain_id,
            last_seq: 0,
            last_hash: GENESIS,
            broken: false,
            signed: signed.and_then(|s| s.get(&chain_id).copied()),
        }
    }

    fn signed_mismatch(&self, found_hash: Option<&[u8]>) -> Option<Finding> {
        let (signed_sequence, signed_hash) = self.signed?;
        Some(Finding::CheckpointMismatch {
            chain_id: self.chain_id,
            signed_sequence,
            signed_hash: hex::encode(signed_hash),
            found_hash: found_hash.map(hex::encode),
        })
    }

    /// Checks the next row; the first problem is returned and ends the walk's checks.
    fn step(&mut self, row: &audit_logs::Model) -> Option<Finding> {
        if self.broken {
            return None;
        }
        let finding = self.check(row);
        if finding.is_some() {
            self.broken = true;
        } else {
            self.last_seq = row.chain_seq;
            self.last_hash.copy_from_slice(&row.hash);
        }
        finding
    }

    fn check(&self, row: &audit_logs::Model) -> Option<Finding> {
        let (chain_id, sequence, row_id) = (self.chain_id, row.chain_seq, row.id.0);
        if row.chain_seq != self.last_seq + 1 {
            return Some(Finding::Gap {
                chain_id,
                expected_sequence: self.last_seq + 1,
                found_sequence: row.chain_seq,
            });
        }
        let expected_chain_id =
            chain::chain_of(row.tenant_id.map(|t| t.0), row.actor_user_id.map(|u| u.0));
        if expected_chain_id != chain_id {
            return Some(Finding::WrongChain {
                chain_id,
                sequence,
                row_id,
                expected_chain_id,
            });
        }
        if row.prev_hash != self.last_hash {
            return Some(Finding::PreviousHashMismatch {
                chain_id,
                sequence,
                row_id,
                expected_hash: hex::encode(self.last_hash),
                found_hash: hex::encode(&row.prev_hash),
            });
        }
        let Some(expected) = row.chained().hash(row.chain_version, &row.prev_hash) else {
            return Some(Finding::UnknownVersion {
                chain_id,
                sequence,
                version: row.chain_version,
            });
        };
        if row.hash != expected {
            return Some(Finding::BrokenLink {
                chain_id,
                sequence,
                row_id,
                expected_hash: hex::encode(expected),
                found_hash: hex::encode(&row.hash),
            });
        }
        match self.signed {
            Some((signed_seq, signed_hash))
                if signed_seq == sequence && signed_hash != expected =>
            {
                self.signed_mismatch(Some(&row.hash))
            }
            _ => None,
        }
    }

    /// The chain's end against its head (`None`: no head).
    fn finish(&self, head: Option<&heads::Model>) -> Option<Finding> {
        if self.broken {
            return None;
        }
        if self.signed.is_some_and(|(seq, _)| seq > self.last_seq) {
            return self.signed_mismatch(None);
        }
        let Some(head) = head else {
            return (self.last_seq > 0).then_some(Finding::MissingHead {
                chain_id: self.chain_id,
                chain_sequence: self.last_seq,
            });
        };
        if head.last_seq != self.last_seq || head.last_hash != self.last_hash {
            return Some(Finding::HeadMismatch {
                chain_id: self.chain_id,
                head_sequence: head.last_seq,
                head_hash: hex::encode(&head.last_hash),
                chain_sequence: self.last_seq,
                chain_hash: hex::encode(self.last_hash),
            });
        }
        None
    }
}

/// Walks the chains of `scope` in one read-only snapshot and reports what is wrong
/// with them. With `signed` (a checkpoint's heads, already checked), a chain must also
/// still hold the link signed for it.
///
/// `progress` hears the number of rows checked so far, every 10,000 rows and at the end.
///
/// # Errors
/// `Db` only: findings are the report's, not errors.
pub async fn verify<C>(
    db: &C,
    scope: ChainScope,
    signed: Option<&SignedHeads>,
    progress: impl FnMut(u64),
) -> Result<VerifyReport>
where
    C: ConnectionTrait + TransactionTrait<Transaction = DatabaseTransaction>,
{
    let txn = begin_snapshot(db).await?;
    let report = verify_in(&txn, scope, signed, progress).await?;
    txn.commit().await?;
    Ok(report)
}

/// A read-only transaction that reads one snapshot throughout: `REPEATABLE READ` on
/// PostgreSQL and MariaDB; on SQLite every read transaction does.
pub(super) async fn begin_snapshot<C: TransactionTrait + ConnectionTrait>(
    db: &C,
) -> Result<C::Transaction> {
    Ok(match db.get_database_backend() {
        DbBackend::Sqlite => db.begin().await?,
        _ => {
            db.begin_with_config(
                Some(IsolationLevel::RepeatableRead),
                Some(AccessMode::ReadOnly),
            )
            .await?
        }
    })
}

/// [`verify`] in the caller's transaction (whose snapshot it reads).
///
/// One query streams the rows in chain order, each with its chain's head joined, so
/// the database produces rows while this side hashes them, and memory holds one row
/// at a time. A second query finds the heads whose chains have no rows left.
pub async fn verify_in<C: ConnectionTrait + StreamTrait>(
    txn: &C,
    scope: ChainScope,
    signed: Option<&SignedHeads>,
    mut progress: impl FnMut(u64),
) -> Result<VerifyReport> {
    let backend = ConnectionTrait::get_database_backend(txn);
    let mut report = VerifyReport::default();
    let mut walked_signed: HashSet<Uuid> = HashSet::new();

    let mut rows = audit_logs::Entity::find()
        .order_by_asc(audit_logs::Column::ChainId)
        .order_by_asc(audit_logs::Column::ChainSeq);
    if let ChainScope::One(chain_id) = scope {
        rows = rows.filter(audit_logs::Column::ChainId.eq(chain_id));
    }
    let mut rows = rows.into_query();
    rows.expr_as(
        Expr::col((heads::Entity, heads::Column::LastSeq)),
        "head_last_seq",
    )
    .expr_as(
        Expr::col((heads::Entity, heads::Column::LastHash)),
        "head_last_hash",
    )
    .left_join(
        heads::Entity,
        Expr::col((heads::Entity, heads::Column::ChainId))
            .equals((audit_logs::Entity, audit_logs::Column::ChainId)),
    );
    // The chain being walked, and its head as joined to its rows.
    let mut walk: Option<(Walk, Option<heads::Model>)> = None;
    {
        let mut stream = std::pin::pin!(txn.stream_raw(backend.build(&rows)).await?);
        while let Some(result) = stream.next().await {
            let result = result?;
            let row = audit_logs::Model::from_query_result(&result, "")?;
            if walk.as_ref().map(|(w, _)| w.chain_id) != Some(row.chain_id) {
                if let Some((done, head)) = walk.take()
                    && let Some(finding) = done.finish(head.as_ref())
                {
                    report.findings.push(finding);
                }
                let head = match result.try_get::<Option<i64>>("", "head_last_seq")? {
                    Some(last_seq) => Some(heads::Model {
                        chain_id: row.chain_id,
                        last_seq,
                        last_hash: result.try_get("", "head_last_hash")?,
                    }),
                    None => None,
                };
                let next = Walk::new(row.chain_id, signed);
                if next.signed.is_some() {
                    walked_signed.insert(row.chain_id);
                }
                walk = Some((next, head));
                report.chains += 1;
            }
            if let Some(finding) = walk.as_mut().and_then(|(w, _)| w.step(&row)) {
                report.findings.push(finding);
            }
            report.rows += 1;
            if report.rows % PROGRESS_EVERY == 0 {
                progress(report.rows);
            }
        }
    }
    if let Some((done, head)) = walk.take()
        && let Some(finding) = done.finish(head.as_ref())
    {
        report.findings.push(finding);
    }
    progress(report.rows);

    // Heads without a single row: every row of those chains is gone.
    let mut orphans = heads::Entity::find()
        .filter(
            Expr::exists(
                Query::select()
                    .expr(Expr::val(1))
                    .from(audit_logs::Entity)
                    .and_where(
                        Expr::col((audit_logs::Entity, audit_logs::Column::ChainId))
                            .equals((heads::Entity, heads::Column::ChainId)),
                    )
                    .to_owned(),
            )
            .not(),
        )
        .order_by_asc(heads::Column::ChainId);
    if let ChainScope::One(chain_id) = scope {
        orphans = orphans.filter(heads::Column::ChainId.eq(chain_id));
    }
    for head in orphans.all(txn).await? {
        let orphan = Walk::new(head.chain_id, signed);
        if orphan.signed.is_some() {
            walked_signed.insert(head.chain_id);
        }
        if let Some(finding) = orphan.finish(Some(&head)) {
            report.chains += 1;
            report.findings.push(finding);
        }
    }
    // Signed chains that have neither rows nor a head any more.
    for (chain_id, _) in signed.into_iter().flatten() {
        if !walked_signed.contains(chain_id)
            && let Some(finding) = Walk::new(*chain_id, signed).signed_mismatch(None)
        {
            report.findings.push(finding);
        }
    }
    report.findings.sort_by_key(Finding::chain_id);
    Ok(report)
}
