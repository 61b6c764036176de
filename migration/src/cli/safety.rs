//! What the operator sees and must agree to before anything is written (DESIGN §6).

use super::{CliError, Invocation, Prompt};
use crate::environment::{AppEnv, RecordedEnv, backend_name};
use sea_orm_migration::sea_orm::DbBackend;
use std::io::{self, Write};

pub(super) fn write_banner(
    err: &mut dyn Write,
    inv: &Invocation,
    recorded: &RecordedEnv,
    pending: &[String],
) -> io::Result<()> {
    let target = &inv.target;
    writeln!(
        err,
        "== {} on {} ==",
        inv.command.name(),
        inv.env.as_str().to_uppercase()
    )?;
    writeln!(err, "  environment   {}", inv.env)?;
    writeln!(err, "  recorded env  {recorded}")?;
    writeln!(err, "  backend       {}", backend_name(target.backend))?;
    writeln!(err, "  host          {}", target.host())?;
    writeln!(err, "  database      {}", target.database())?;
    writeln!(err, "  user          {}", target.user())?;
    writeln!(err, "  url           {}", target.masked_url())?;
    if target.backend != DbBackend::Sqlite {
        writeln!(
            err,
            "  tls           {}",
            if target.tls() {
                "verified (DB_SSL_*)"
            } else {
                "off"
            }
        )?;
    }
    if pending.is_empty() {
        writeln!(err, "  pending       none")?;
    } else {
        writeln!(err, "  pending       {}", pending.len())?;
        for name in pending {
            writeln!(err, "    - {name}")?;
        }
    }
    if recorded.conflicts_with(inv.env) {
        writeln!(
            err,
            "  WARNING: this database belongs to {recorded}, not to {}.",
            inv.env
        )?;
    }
    Ok(())
}

/// The rules of DESIGN §6, in order. Nothing has been written when this fails.
pub(super) fn check_safety(
    inv: &Invocation,
    recorded: &RecordedEnv,
    prompt: &mut dyn Prompt,
    err: &mut dyn Write,
) -> Result<(), CliError> {
    let command = &inv.command;
    if command.is_destructive() && (inv.env == AppEnv::Production || recorded.is_production()) {
        return Err(CliError::Refused(format!(
            "`{}` drops tables and is never run against production (APP_ENV={}, database records {recorded}); \
             roll back with `down -n N` instead",
            command.name(),
            inv.env
        )));
    }
    if command.writes() && recorded.conflicts_with(inv.env) {
        return Err(CliError::Refused(format!(
            "the database records environment {recorded} but APP_ENV is {}; point at the right \
             database, or run with APP_ENV set to the database's environment",
            inv.env
        )));
    }
    let Some(phrase) = inv.env.confirmation_phrase() else {
        return Ok(());
    };
    let answer = match &inv.confirm {
        Some(given) => given.clone(),
        None if prompt.is_interactive() => {
            writeln!(err)?;
            prompt.ask(&format!(
                "This changes the {} database. Type {phrase} to continue: ",
                inv.env
            ))?
        }
        None => {
            return Err(CliError::Refused(format!(
                "{} needs confirmation and there is no terminal; pass --confirm \"{phrase}\"",
                inv.env
            )));
        }
    };
    if answer.trim() != phrase {
        return Err(CliError::Refused(format!(
            "confirmation did not match; expected exactly \"{phrase}\""
        )));
    }
    Ok(())
}
