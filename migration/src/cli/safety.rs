//! What the operator sees and must agree to before anything is written. The
//! confirmation is also what the seeder asks before it empties a shared database.

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

/// The environment rules, in order. Nothing has been written when this fails.
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
    confirm_environment(
        inv.env,
        inv.confirm.as_deref(),
        prompt,
        err,
        &format!("This changes the {} database.", inv.env),
    )
}

/// Asks for the environment's confirmation phrase (`MIGRATE DEV`, `MIGRATE STAGING`,
/// `MIGRATE PRODUCTION`), or checks the one given with `--confirm`; `local` and `test`
/// need none. `what` says what is about to happen, before the question.
///
/// The phrase must match exactly: `--confirm "MIGRATE STAGING "` is refused. A typed
/// answer loses only its line ending.
pub fn confirm_environment(
    env: AppEnv,
    given: Option<&str>,
    prompt: &mut dyn Prompt,
    err: &mut dyn Write,
    what: &str,
) -> Result<(), CliError> {
    let Some(phrase) = env.confirmation_phrase() else {
        return Ok(());
    };
    let answer = match given {
        Some(given) => given.to_owned(),
        None if prompt.is_interactive() => {
            writeln!(err)?;
            let typed = prompt.ask(&format!("{what} Type {phrase} to continue: "))?;
            typed
                .strip_suffix('\n')
                .map(|line| line.strip_suffix('\r').unwrap_or(line))
                .unwrap_or(&typed)
                .to_owned()
        }
        None => {
            return Err(CliError::Refused(format!(
                "{env} needs confirmation and there is no terminal; pass --confirm \"{phrase}\""
            )));
        }
    };
    if answer != phrase {
        return Err(CliError::Refused(format!(
            "confirmation did not match; expected exactly \"{phrase}\""
        )));
    }
    Ok(())
}
