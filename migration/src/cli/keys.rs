//! `keys status` and `keys reencrypt`: the field-encryption key ring as this process
//! reads it (`FIELD_ENCRYPTION_KEYS`, `FIELD_ENCRYPTION_CURRENT_KEY`), and moving the
//! stored values of every encrypted column to the current key.

use super::{CliError, Invocation};
use clap::Subcommand;
use sea_orm_migration::sea_orm::DatabaseConnection;
use service::crypto::{ENCRYPTED_COLUMNS, KeyRing, reencrypt};
use std::io::Write;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Subcommand)]
pub enum KeysAction {
    /// Show the key ids and the current one (never key material); changes nothing.
    Status,
    /// Rewrite every stored value not under the current key, a batch per transaction.
    /// Values that do not open are listed and left alone; exit code 1 if there are any.
    Reencrypt {
        /// Rows per transaction.
        #[arg(long, default_value_t = 500)]
        batch: u64,
    },
}

impl KeysAction {
    pub fn name(self) -> &'static str {
        match self {
            KeysAction::Status => "keys status",
            KeysAction::Reencrypt { .. } => "keys reencrypt",
        }
    }
}

pub(super) fn ring(inv: &Invocation) -> Result<KeyRing, CliError> {
    KeyRing::from_env(inv.env).map_err(|e| CliError::Config(e.to_string()))
}

pub(super) fn status(inv: &Invocation, out: &mut dyn Write) -> Result<(), CliError> {
    let ring = ring(inv)?;
    writeln!(out, "current key   {}", ring.current().id())?;
    writeln!(
        out,
        "keys          {}",
        ring.ids().collect::<Vec<_>>().join(", ")
    )?;
    if ENCRYPTED_COLUMNS.is_empty() {
        writeln!(out, "columns       none hold sealed values yet")?;
    }
    for column in ENCRYPTED_COLUMNS {
        writeln!(out, "column        {}.{}", column.table, column.column)?;
    }
    Ok(())
}

pub(super) async fn run_reencrypt(
    db: &DatabaseConnection,
    inv: &Invocation,
    batch: u64,
    out: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    let ring = ring(inv)?;
    if ENCRYPTED_COLUMNS.is_empty() {
        writeln!(out, "no column holds sealed values yet; nothing to do")?;
        return Ok(());
    }
    let mut unreadable = 0;
    for column in ENCRYPTED_COLUMNS {
        let report = reencrypt(db, &ring, *column, batch, |_| {}).await?;
        writeln!(
            out,
            "{}.{}: {} scanned, {} rewritten under {}, {} changed meanwhile (left as they were)",
            column.table,
            column.column,
            report.scanned,
            report.rewritten,
            ring.current().id(),
            report.changed_meanwhile
        )?;
        for row in &report.unreadable {
            writeln!(
                out,
                "  does not open, left alone: {} = {row}",
                column.id_column
            )?;
        }
        unreadable += report.unreadable.len();
    }
    if unreadable > 0 {
        return Err(CliError::Config(format!(
            "{unreadable} value(s) do not open with this key ring: restore the key they name, \
             or find how they were changed"
        )));
    }
    Ok(())
}
