//! Migration lint: each migration rendered to PostgreSQL SQL (see [`crate::plan`]) and
//! checked by [squawk](https://squawkhq.com) for statements that lock or rewrite
//! tables in production.
//!
//! A finding fails the lint unless it is accepted:
//!
//! - next to its statement, by a migration that runs the statement through
//!   [`accept_lint`] (or [`accept_lint_sql`]) with the rule and the reason; the SQL then
//!   starts with squawk's own comment, `-- squawk-ignore <rule> -- <reason>`, which
//!   counts only there, before the statement's SQL;
//! - or by the baseline (`migration/lint-baseline.toml`), which covers only the
//!   migrations released before the lint existed ([`RELEASED_BEFORE_LINT`]), by name,
//!   and only while their findings stay exactly what it counts.
//!
//! The acceptance is matched here, not by squawk: every finding squawk reports inside
//! the statement the comment was executed with is accepted, and an acceptance that
//! accepts nothing fails, so a stale one cannot linger.

use crate::plan::{self, Direction};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, StatementBuilder};
use sea_orm_migration::{MigrationTrait, SchemaManager};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The squawk release the baseline was counted with; CI installs this one.
pub const SQUAWK_VERSION: &str = "2.70.0";

/// The PostgreSQL release the migrations target.
const PG_VERSION: &str = "15";

/// The migrations released before the lint existed, in the order they apply: the only
/// ones the baseline may list. Pinned by name, so that a later migration cannot be
/// baselined whatever its name is or wherever it sorts; it states its accepted
/// findings next to the statement.
pub const RELEASED_BEFORE_LINT: &[&str] = &[
    "m20261122_000001_platform_create_database_metadata",
    "m20261122_000002_tenancy_create_tenants",
    "m20261122_000003_identity_create_users",
    "m20261122_000004_identity_create_user_profiles",
    "m20261122_000005_tenancy_create_memberships",
    "m20261122_000006_identity_create_sessions",
    "m20261122_000007_identity_create_refresh_tokens",
    "m20261122_000008_audit_create_audit_event_types",
    "m20261122_000009_audit_create_audit_logs",
    "m20261122_000010_access_create_permissions",
    "m20261122_000011_access_create_roles",
    "m20261122_000012_access_create_role_inheritance",
    "m20261122_000013_access_create_role_permissions",
    "m20261122_000014_tenancy_create_teams",
    "m20261122_000015_tenancy_create_team_members",
    "m20261122_000016_tenancy_create_invitations",
    "m20261122_000017_access_create_role_assignments",
    "m20261122_000018_access_create_policies",
    "m20261122_000019_audit_add_access_event_types",
    "m20261122_000020_platform_postgres_row_security",
    "m20261123_000021_identity_create_sign_in_throttles",
    "m20261123_000022_platform_postgres_walls",
    "m20261123_000023_tenancy_check_tenant_slug",
];

/// The newest migration the baseline may list, by the order migrations apply.
pub const BASELINE_COVERS_THROUGH: &str = RELEASED_BEFORE_LINT[RELEASED_BEFORE_LINT.len() - 1];

/// The project's baseline, compiled in so the lint runs from any directory.
const PROJECT_BASELINE: &str = include_str!("../lint-baseline.toml");

/// Rules switched off for every migration, each with the reason.
const EXCLUDED_RULES: &[(&str, &str)] = &[(
    "require-statement-timeout",
    "the migrator bounds how long a statement waits for a lock (lock_timeout), not how \
     long it runs: an index build or a data fix may rightly take minutes, and the \
     statements that hold a lock while they scan or rewrite a table have their own rules",
)];

/// The session setting the migrator applies before every PostgreSQL migration
/// ([`crate::cli`], `--table-lock-timeout-ms`); squawk is told so it does not ask for it.
const SESSION_PREAMBLE: &str = "SET lock_timeout = '5000ms';\n";

/// The comment squawk reads as "accept this rule here".
const IGNORE_MARK: &str = "squawk-ignore";

/// The same comment made inert in the copy squawk lints, so that squawk reports every
/// finding and this module decides which are accepted.
const INERT_MARK: &str = "lint-accepts";

#[derive(Debug, thiserror::Error)]
pub enum LintError {
    #[error(
        "squawk is not installed: install it with `pip install squawk-cli=={SQUAWK_VERSION}` \
         (it must then be on PATH), or point the SQUAWK environment variable at its binary"
    )]
    SquawkMissing,
    #[error("SQUAWK={path} is not an executable file; unset it or point it at squawk's binary")]
    SquawkNotExecutable { path: String },
    #[error("cannot run squawk ({path}): {source}")]
    SquawkRun { path: String, source: io::Error },
    #[error("squawk failed ({status}) without a report: {stderr}")]
    SquawkFailed { status: String, stderr: String },
    #[error("squawk's JSON report is not what this lint reads ({source}); squawk said: {stdout}")]
    SquawkOutput {
        stdout: String,
        source: serde_json::Error,
    },
    #[error("cannot render {migration} to PostgreSQL SQL: {source}")]
    Render { migration: String, source: DbErr },
    #[error("the lint baseline is not valid TOML: {0}")]
    BaselineSyntax(#[from] toml::de::Error),
    #[error("the lint baseline is refused: {0}")]
    BaselineInvalid(String),
    #[error("cannot write the SQL for squawk: {0}")]
    Scratch(#[from] io::Error),
}

/// Why [`accept_lint`] refuses to run a statement.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AcceptanceError {
    #[error("{rule:?} is not a squawk rule name (lowercase words joined by '-')")]
    NotARuleName { rule: String },
    #[error("accepting {rule} needs a reason: say why the finding is harmless here")]
    NoReason { rule: String },
    #[error("the reason for accepting {rule} must be one line")]
    MultilineReason { rule: String },
}

impl From<AcceptanceError> for DbErr {
    fn from(error: AcceptanceError) -> Self {
        DbErr::Migration(error.to_string())
    }
}

/// Runs `statement`, accepting squawk's finding `rule` on it for `reason`. Use it for a
/// statement squawk flags that is safe where this migration runs it, e.g. an index
/// built without `CONCURRENTLY` on a table too small to matter. The comment it adds is
/// harmless on every backend.
///
/// ```ignore
/// accept_lint(
///     manager,
///     "require-concurrent-index-creation",
///     "teams has at most a few hundred rows per tenant; the build takes milliseconds",
///     &index(Teams::Table, [Teams::CreatedAt]),
/// )
/// .await?;
/// ```
pub async fn accept_lint<S: StatementBuilder>(
    manager: &SchemaManager<'_>,
    rule: &str,
    reason: &str,
    statement: &S,
) -> Result<(), DbErr> {
    let built = manager.get_database_backend().build(statement);
    execute_accepted(manager, rule, reason, built).await
}

/// [`accept_lint`] for a statement written in SQL.
pub async fn accept_lint_sql(
    manager: &SchemaManager<'_>,
    rule: &str,
    reason: &str,
    sql: &str,
) -> Result<(), DbErr> {
    let built = Statement::from_string(manager.get_database_backend(), sql);
    execute_accepted(manager, rule, reason, built).await
}

/// [`accept_lint`] for a statement with several findings: `(rule, reason)` each, all
/// acceptances in front of it.
pub async fn accept_lints<S: StatementBuilder>(
    manager: &SchemaManager<'_>,
    findings: &[(&str, &str)],
    statement: &S,
) -> Result<(), DbErr> {
    let mut built = manager.get_database_backend().build(statement);
    let mut comments = Vec::with_capacity(findings.len());
    for (rule, reason) in findings {
        comments.push(acceptance_comment(rule, reason)?);
    }
    built.sql = format!("{}\n{}", comments.join("\n"), built.sql);
    manager.get_connection().execute_raw(built).await?;
    Ok(())
}

async fn execute_accepted(
    manager: &SchemaManager<'_>,
    rule: &str,
    reason: &str,
    mut statement: Statement,
) -> Result<(), DbErr> {
    let comment = acceptance_comment(rule, reason)?;
    statement.sql = format!("{comment}\n{}", statement.sql);
    manager.get_connection().execute_raw(statement).await?;
    Ok(())
}

/// `-- squawk-ignore <rule> -- <reason>`: squawk's syntax, so squawk run by hand on
/// the dry-run output agrees. The space after `--` is what MariaDB needs to read it as
/// a comment.
pub fn acceptance_comment(rule: &str, reason: &str) -> Result<String, AcceptanceError> {
    let rule = rule.trim();
    if !is_rule_name(rule) {
        return Err(AcceptanceError::NotARuleName {
            rule: rule.to_owned(),
        });
    }
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(AcceptanceError::NoReason {
            rule: rule.to_owned(),
        });
    }
    if reason.contains(['\n', '\r']) {
        return Err(AcceptanceError::MultilineReason {
            rule: rule.to_owned(),
        });
    }
    Ok(format!("-- {IGNORE_MARK} {rule} -- {reason}"))
}

fn is_rule_name(rule: &str) -> bool {
    !rule.is_empty()
        && !rule.starts_with('-')
        && !rule.ends_with('-')
        && rule
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The squawk binary, found and asked for its version.
#[derive(Clone, Debug)]
pub struct Squawk {
    path: PathBuf,
    version: String,
}

impl Squawk {
    /// `$SQUAWK` if set, else `squawk` on PATH.
    pub fn locate() -> Result<Self, LintError> {
        let path = match std::env::var_os("SQUAWK").filter(|v| !v.is_empty()) {
            Some(path) => {
                let path = PathBuf::from(path);
                which::which(&path).map_err(|_| LintError::SquawkNotExecutable {
                    path: path.display().to_string(),
                })?
            }
            None => which::which("squawk").map_err(|_| LintError::SquawkMissing)?,
        };
        Self::at(path)
    }

    /// The squawk binary at `path`.
    pub fn at(path: PathBuf) -> Result<Self, LintError> {
        let output = Command::new(&path)
            .arg("--version")
            .output()
            .map_err(|source| LintError::SquawkRun {
                path: path.display().to_string(),
                source,
            })?;
        // "squawk 2.70.0"
        let version = String::from_utf8_lossy(&output.stdout)
            .trim()
            .rsplit(' ')
            .next()
            .unwrap_or_default()
            .to_owned();
        Ok(Self { path, version })
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    /// Lints `files` (relative to `dir`) and returns squawk's findings.
    fn run(&self, dir: &Path, files: &[String]) -> Result<Vec<SquawkFinding>, LintError> {
        let config = dir.join(".squawk.toml");
        // An empty configuration, so that a stray .squawk.toml cannot change the rules.
        std::fs::write(&config, "")?;
        let excluded: Vec<&str> = EXCLUDED_RULES.iter().map(|(rule, _)| *rule).collect();
        let output = Command::new(&self.path)
            .current_dir(dir)
            .arg("--config")
            .arg(&config)
            .args(["--reporter", "json", "--pg-version", PG_VERSION])
            // Every migration runs in one transaction on PostgreSQL.
            .arg("--assume-in-transaction")
            .arg(format!("--exclude={}", excluded.join(",")))
            .args(files)
            .output()
            .map_err(|source| LintError::SquawkRun {
                path: self.path.display().to_string(),
                source,
            })?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if stdout.trim().is_empty() {
            // squawk exits non-zero on findings, but always prints a report when it ran.
            return Err(LintError::SquawkFailed {
                status: output.status.to_string(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        serde_json::from_str(&stdout).map_err(|source| LintError::SquawkOutput {
            stdout: stdout.chars().take(2000).collect(),
            source,
        })
    }
}

/// One entry of squawk's `--reporter json`.
#[derive(Debug, Deserialize)]
struct SquawkFinding {
    file: String,
    /// 0-based, as are the others.
    line: usize,
    column: usize,
    line_end: usize,
    column_end: usize,
    message: String,
    help: Option<String>,
    rule_name: String,
}

/// The findings accepted in migrations released before the lint, per migration and
/// rule, and why each rule is accepted there.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    /// Rule -> why its findings in the migrations below are accepted.
    #[serde(default)]
    rules: BTreeMap<String, String>,
    #[serde(default)]
    migrations: BTreeMap<String, BaselineMigration>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BaselineMigration {
    /// One line on this migration's findings.
    why: String,
    /// Rule -> how many findings.
    #[serde(default)]
    findings: BTreeMap<String, usize>,
}

impl Baseline {
    /// `migration/lint-baseline.toml`.
    pub fn project() -> Result<Self, LintError> {
        Self::parse(PROJECT_BASELINE)
    }

    /// No accepted findings: every finding must be accepted next to its statement.
    pub fn empty() -> Self {
        Self::default()
    }

    pub fn parse(text: &str) -> Result<Self, LintError> {
        let baseline: Baseline = toml::from_str(text)?;
        baseline.validate()?;
        Ok(baseline)
    }

    fn validate(&self) -> Result<(), LintError> {
        released_apply_first().map_err(LintError::BaselineInvalid)?;
        for (name, entry) in &self.migrations {
            if !RELEASED_BEFORE_LINT.contains(&name.as_str()) {
                return Err(LintError::BaselineInvalid(format!(
                    "{name} is not one of the migrations released through \
                     {BASELINE_COVERS_THROUGH}: a new migration states its accepted findings \
                     next to the statement (accept_lint)"
                )));
            }
            if entry.why.trim().is_empty() {
                return Err(LintError::BaselineInvalid(format!("{name} has no why")));
            }
            for rule in entry.findings.keys() {
                if self.rules.get(rule).is_none_or(|why| why.trim().is_empty()) {
                    return Err(LintError::BaselineInvalid(format!(
                        "{name} accepts {rule}, but [rules] says nothing on why"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Why `rule` is accepted in the baseline's migrations.
    pub fn why(&self, rule: &str) -> Option<&str> {
        self.rules.get(rule).map(String::as_str)
    }
}

/// Checks that [`RELEASED_BEFORE_LINT`] is what the migrator applies first, in that
/// order: a migration placed among them would apply before released ones, and the
/// baseline's "released" would no longer mean "applied before the lint".
fn released_apply_first() -> Result<(), String> {
    use sea_orm_migration::MigratorTrait;
    let migrations = crate::Migrator::migrations();
    let applied: Vec<&str> = migrations.iter().map(|m| m.name()).collect();
    match applied
        .iter()
        .position(|name| *name == BASELINE_COVERS_THROUGH)
    {
        None => Err(format!(
            "{BASELINE_COVERS_THROUGH}, the last migration the baseline may cover, is not \
             among the migrations"
        )),
        Some(last) if applied[..=last] != *RELEASED_BEFORE_LINT => Err(format!(
            "the migrations up to {BASELINE_COVERS_THROUGH} are not the released ones, in \
             their order: {:?}",
            &applied[..=last]
        )),
        Some(_) => Ok(()),
    }
}

/// A migration's statement that accepts a rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Acceptance {
    pub rule: String,
    pub reason: String,
    /// Index of the statement in the migration.
    pub statement: usize,
}

/// What accepts a finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum AcceptedBy {
    /// The statement's own acceptance.
    Statement { reason: String },
    /// The baseline of migrations released before the lint.
    Baseline { why: String },
}

#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub rule: String,
    pub message: String,
    pub help: Option<String>,
    /// Index of the statement in the migration.
    pub statement_index: usize,
    pub statement: String,
    /// The part of the statement squawk points at, e.g. one column definition.
    pub flagged: Option<String>,
    /// `None`: the finding fails the lint.
    pub accepted: Option<AcceptedBy>,
}

/// Something wrong with how a migration accepts findings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Problem {
    #[error(
        "statement {statement} accepts {rule} without a reason: write why it is harmless after `--`"
    )]
    NoReason { rule: String, statement: usize },
    #[error("statement {statement} has a squawk-ignore naming no rule: name the rules it accepts")]
    NoRule { statement: usize },
    #[error(
        "statement {statement} has squawk-ignore where it accepts nothing: only a \
         `-- squawk-ignore <rule> -- <reason>` line before the statement's SQL does; write it \
         with accept_lint"
    )]
    Misplaced { statement: usize },
    #[error(
        "statement {statement} accepts findings for the whole file (squawk-ignore-file): accept each rule next to its statement"
    )]
    WholeFile { statement: usize },
    #[error(
        "statement {statement} accepts {rule}, but squawk finds no {rule} there: remove the acceptance"
    )]
    Unused { rule: String, statement: usize },
    #[error(
        "the baseline counts {expected} {rule} finding(s), squawk finds {found}: the SQL of a released migration changed, or squawk did (the baseline was counted with squawk {SQUAWK_VERSION})"
    )]
    BaselineMismatch {
        rule: String,
        expected: usize,
        found: usize,
    },
}

/// One migration's lint.
#[derive(Clone, Debug, Serialize)]
pub struct MigrationLint {
    pub name: String,
    /// Whether the baseline lists this migration.
    pub in_baseline: bool,
    pub findings: Vec<Finding>,
    pub acceptances: Vec<Acceptance>,
    pub problems: Vec<Problem>,
}

impl MigrationLint {
    pub fn passed(&self) -> bool {
        self.problems.is_empty() && self.findings.iter().all(|f| f.accepted.is_some())
    }

    pub fn failing_findings(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.accepted.is_none())
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct LintReport {
    pub squawk_version: String,
    pub pinned_squawk_version: &'static str,
    pub migrations: Vec<MigrationLint>,
    /// Baseline entries for migrations not among those linted: stale when every
    /// migration was linted.
    #[serde(skip_serializing)]
    pub baseline_not_linted: Vec<String>,
    /// Rules off for every migration, and why.
    pub excluded_rules: BTreeMap<&'static str, &'static str>,
}

impl LintReport {
    pub fn passed(&self) -> bool {
        self.migrations.iter().all(MigrationLint::passed)
    }

    pub fn failed(&self) -> impl Iterator<Item = &MigrationLint> {
        self.migrations.iter().filter(|m| !m.passed())
    }

    /// Findings by rule over every linted migration, accepted or not.
    pub fn findings_by_rule(&self) -> BTreeMap<&str, usize> {
        let mut counts = BTreeMap::new();
        for finding in self.migrations.iter().flat_map(|m| &m.findings) {
            *counts.entry(finding.rule.as_str()).or_default() += 1;
        }
        counts
    }

    /// A human summary: failing migrations in full, passing ones in a line.
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        if self.squawk_version != SQUAWK_VERSION {
            writeln!(
                out,
                "note: squawk {} is installed; the baseline was counted with {SQUAWK_VERSION} \
                 (pip install squawk-cli=={SQUAWK_VERSION})",
                self.squawk_version
            )?;
        }
        for migration in &self.migrations {
            write_migration(migration, out)?;
        }
        let failed = self.failed().count();
        writeln!(
            out,
            "lint: {} migration(s) checked with squawk {}, {failed} failed",
            self.migrations.len(),
            self.squawk_version
        )
    }
}

fn write_migration(migration: &MigrationLint, out: &mut dyn Write) -> io::Result<()> {
    let mut baseline_counts: BTreeMap<&str, usize> = BTreeMap::new();
    for finding in &migration.findings {
        if let Some(AcceptedBy::Baseline { .. }) = finding.accepted {
            *baseline_counts.entry(&finding.rule).or_default() += 1;
        }
    }
    let status = if migration.passed() { "ok" } else { "FAILED" };
    let mut summary = Vec::new();
    if !baseline_counts.is_empty() {
        let counts: Vec<String> = baseline_counts
            .iter()
            .map(|(rule, n)| format!("{rule} x{n}"))
            .collect();
        summary.push(format!("baseline: {}", counts.join(", ")));
    }
    let accepted_here = migration
        .findings
        .iter()
        .filter(|f| matches!(f.accepted, Some(AcceptedBy::Statement { .. })))
        .count();
    if accepted_here > 0 {
        summary.push(format!("{accepted_here} accepted by the migration"));
    }
    if summary.is_empty() {
        writeln!(out, "{status} {}", migration.name)?;
    } else {
        writeln!(out, "{status} {} ({})", migration.name, summary.join("; "))?;
    }
    for finding in &migration.findings {
        if let Some(AcceptedBy::Statement { reason }) = &finding.accepted {
            writeln!(
                out,
                "  accepted {}: {reason}\n    statement: {}",
                finding.rule,
                one_line(&finding.statement)
            )?;
        }
    }
    for finding in migration.failing_findings() {
        writeln!(out, "  {}: {}", finding.rule, finding.message)?;
        writeln!(out, "    statement: {}", one_line(&finding.statement))?;
        if let Some(flagged) = &finding.flagged {
            writeln!(out, "    at: {flagged}")?;
        }
        if let Some(help) = &finding.help {
            writeln!(out, "    help: {help}")?;
        }
    }
    for problem in &migration.problems {
        writeln!(out, "  {problem}")?;
    }
    Ok(())
}

/// The statement's SQL without comments, on one line, shortened.
fn one_line(statement: &str) -> String {
    const LIMIT: usize = 160;
    let text = statement
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("--"))
        .collect::<Vec<_>>()
        .join(" ");
    if text.chars().count() > LIMIT {
        format!("{}...", text.chars().take(LIMIT).collect::<String>())
    } else {
        text
    }
}

/// Lints `migrations` (their `up`, rendered for PostgreSQL) with the project's
/// baseline and the squawk found by [`Squawk::locate`].
pub async fn lint_migrations(migrations: &[&dyn MigrationTrait]) -> Result<LintReport, LintError> {
    lint(&Squawk::locate()?, &Baseline::project()?, migrations).await
}

/// Lints `migrations` with `squawk`, accepting what `baseline` accepts.
pub async fn lint(
    squawk: &Squawk,
    baseline: &Baseline,
    migrations: &[&dyn MigrationTrait],
) -> Result<LintReport, LintError> {
    let mut rendered = Vec::with_capacity(migrations.len());
    for migration in migrations {
        let r = plan::render(DbBackend::Postgres, *migration, Direction::Up)
            .await
            .map_err(|source| LintError::Render {
                migration: migration.name().to_owned(),
                source,
            })?;
        rendered.push(r);
    }

    let scratch = tempfile::tempdir()?;
    let mut files = Vec::with_capacity(rendered.len());
    let mut layouts = Vec::with_capacity(rendered.len());
    for (index, migration) in rendered.iter().enumerate() {
        let (sql, starts) = squawk_file(&migration.statements);
        let file = format!("{index:04}-{}.sql", file_safe(&migration.name));
        std::fs::write(scratch.path().join(&file), &sql)?;
        files.push(file);
        layouts.push((sql, starts));
    }
    let mut by_file: BTreeMap<String, Vec<SquawkFinding>> = BTreeMap::new();
    if !files.is_empty() {
        for finding in squawk.run(scratch.path(), &files)? {
            by_file
                .entry(finding.file.trim_start_matches("./").to_owned())
                .or_default()
                .push(finding);
        }
    }

    let mut report = LintReport {
        squawk_version: squawk.version().to_owned(),
        pinned_squawk_version: SQUAWK_VERSION,
        migrations: Vec::with_capacity(rendered.len()),
        baseline_not_linted: baseline
            .migrations
            .keys()
            .filter(|name| !rendered.iter().any(|r| &r.name == *name))
            .cloned()
            .collect(),
        excluded_rules: EXCLUDED_RULES.iter().copied().collect(),
    };
    for ((migration, file), (sql, starts)) in rendered.iter().zip(&files).zip(&layouts) {
        let raw = by_file.remove(file).unwrap_or_default();
        report.migrations.push(judge(
            &migration.name,
            &migration.statements,
            SquawkInput { sql, starts },
            raw,
            baseline,
        ));
    }
    Ok(report)
}

/// The file squawk reads for one migration: the migrator's session preamble, then each
/// statement as [`plan::Rendered::script`] writes it, with acceptance comments inert.
/// Returns it with the first line of each statement (0-based, as squawk counts).
fn squawk_file(statements: &[String]) -> (String, Vec<usize>) {
    let mut sql = String::from(SESSION_PREAMBLE);
    let mut starts = Vec::with_capacity(statements.len());
    let mut line = SESSION_PREAMBLE.lines().count();
    for statement in statements {
        starts.push(line);
        let text = statement.trim_end().trim_end_matches(';');
        // Everywhere, not only where an acceptance may stand: squawk must honour no
        // comment, and the marker in a literal changes nothing squawk checks.
        sql.push_str(&text.replace(IGNORE_MARK, INERT_MARK));
        line += text.lines().count().max(1);
        // After a trailing line comment, a `;` on the same line would be commented out
        // and the next statement run into this one.
        if text.lines().last().is_some_and(|last| last.contains("--")) {
            sql.push('\n');
            line += 1;
        }
        sql.push_str(";\n");
    }
    (sql, starts)
}

/// The file squawk read for one migration, and the line each statement starts on.
struct SquawkInput<'a> {
    sql: &'a str,
    starts: &'a [usize],
}

impl SquawkInput<'_> {
    /// The statement a finding is in. The preamble's own findings, if any, count
    /// against the first statement.
    fn statement_of(&self, finding: &SquawkFinding) -> usize {
        self.starts
            .iter()
            .rposition(|start| *start <= finding.line)
            .unwrap_or(0)
    }

    /// The text a finding points at, when it is on one line.
    fn flagged(&self, finding: &SquawkFinding) -> Option<String> {
        if finding.line != finding.line_end {
            return None;
        }
        let line = self.sql.lines().nth(finding.line)?;
        let text = line.get(finding.column..finding.column_end)?.trim();
        (!text.is_empty() && text.len() < line.trim().len()).then(|| text.to_owned())
    }
}

fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Sorts one migration's findings into accepted and failing.
fn judge(
    name: &str,
    statements: &[String],
    input: SquawkInput<'_>,
    raw: Vec<SquawkFinding>,
    baseline: &Baseline,
) -> MigrationLint {
    let mut problems = Vec::new();
    let mut acceptances = Vec::new();
    for (index, statement) in statements.iter().enumerate() {
        let (found, wrong) = acceptances_in(statement, index);
        acceptances.extend(found);
        problems.extend(wrong);
    }

    let mut findings: Vec<Finding> = raw
        .into_iter()
        .map(|f| {
            let index = input.statement_of(&f);
            let accepted = acceptances
                .iter()
                .find(|a| a.statement == index && a.rule == f.rule_name)
                .map(|a| AcceptedBy::Statement {
                    reason: a.reason.clone(),
                });
            Finding {
                flagged: input.flagged(&f),
                statement: statements.get(index).cloned().unwrap_or_default(),
                statement_index: index,
                rule: f.rule_name,
                message: f.message,
                help: f.help,
                accepted,
            }
        })
        .collect();

    for acceptance in &acceptances {
        let used = findings
            .iter()
            .any(|f| f.statement_index == acceptance.statement && f.rule == acceptance.rule);
        if !used {
            problems.push(Problem::Unused {
                rule: acceptance.rule.clone(),
                statement: acceptance.statement,
            });
        }
    }

    let entry = baseline.migrations.get(name);
    if let Some(entry) = entry {
        let mut found: BTreeMap<&str, usize> = BTreeMap::new();
        for finding in findings.iter().filter(|f| f.accepted.is_none()) {
            *found.entry(finding.rule.as_str()).or_default() += 1;
        }
        let rules: BTreeSet<&str> = found
            .keys()
            .copied()
            .chain(entry.findings.keys().map(String::as_str))
            .collect();
        let mut matching = BTreeSet::new();
        for rule in rules {
            let expected = entry.findings.get(rule).copied().unwrap_or(0);
            let actual = found.get(rule).copied().unwrap_or(0);
            if expected == actual {
                matching.insert(rule.to_owned());
            } else {
                problems.push(Problem::BaselineMismatch {
                    rule: rule.to_owned(),
                    expected,
                    found: actual,
                });
            }
        }
        for finding in findings
            .iter_mut()
            .filter(|f| f.accepted.is_none() && matching.contains(&f.rule))
        {
            finding.accepted = Some(AcceptedBy::Baseline {
                why: baseline.why(&finding.rule).unwrap_or_default().to_owned(),
            });
        }
    }

    MigrationLint {
        name: name.to_owned(),
        in_baseline: entry.is_some(),
        findings,
        acceptances,
        problems,
    }
}

/// The acceptances a statement states, and what is wrong with any of them. Only a
/// `-- squawk-ignore <rules> -- <reason>` line before the statement's SQL, as
/// [`accept_lint`] writes it, accepts: the marker anywhere else (a comment after the
/// SQL starts, a block comment, a string literal) accepts nothing, and is reported so
/// that it cannot pass for an acceptance.
fn acceptances_in(statement: &str, index: usize) -> (Vec<Acceptance>, Vec<Problem>) {
    let mut found = Vec::new();
    let mut problems = Vec::new();
    let mut misplaced = false;
    let mut leading = true;
    for line in statement.lines() {
        let trimmed = line.trim_start();
        let comment = trimmed.strip_prefix("--").filter(|_| leading);
        if comment.is_none() && !trimmed.is_empty() {
            leading = false;
        }
        let Some(rest) = comment.and_then(|body| body.trim_start().strip_prefix(IGNORE_MARK))
        else {
            misplaced |= line.contains(IGNORE_MARK);
            continue;
        };
        if rest.starts_with("-file") {
            problems.push(Problem::WholeFile { statement: index });
            continue;
        }
        if !rest.is_empty() && !rest.starts_with(char::is_whitespace) {
            misplaced = true;
            continue;
        }
        let (rules, reason) = match rest.find("--") {
            Some(split) => (&rest[..split], rest[split + 2..].trim()),
            None => (rest, ""),
        };
        let rules: Vec<&str> = rules
            .split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .collect();
        if rules.is_empty() {
            problems.push(Problem::NoRule { statement: index });
        }
        for rule in rules {
            if reason.is_empty() {
                problems.push(Problem::NoReason {
                    rule: rule.to_owned(),
                    statement: index,
                });
            } else {
                found.push(Acceptance {
                    rule: rule.to_owned(),
                    reason: reason.to_owned(),
                    statement: index,
                });
            }
        }
    }
    if misplaced {
        problems.push(Problem::Misplaced { statement: index });
    }
    (found, problems)
}

impl fmt::Display for AcceptedBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AcceptedBy::Statement { reason } => write!(f, "accepted by the migration: {reason}"),
            AcceptedBy::Baseline { why } => write!(f, "accepted by the baseline: {why}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acceptance_comment_needs_a_rule_and_a_one_line_reason() {
        assert_eq!(
            acceptance_comment("require-concurrent-index-creation", " new table "),
            Ok("-- squawk-ignore require-concurrent-index-creation -- new table".to_owned())
        );
        assert!(matches!(
            acceptance_comment("require-concurrent-index-creation", "  "),
            Err(AcceptanceError::NoReason { .. })
        ));
        assert!(matches!(
            acceptance_comment("Require Index", "why"),
            Err(AcceptanceError::NotARuleName { .. })
        ));
        assert!(matches!(
            acceptance_comment("ban-drop-column", "one\nCREATE ROLE x"),
            Err(AcceptanceError::MultilineReason { .. })
        ));
    }

    #[test]
    fn acceptances_are_read_from_squawk_comments() {
        let (found, problems) = acceptances_in(
            "-- squawk-ignore ban-drop-column, renaming-column -- the column was never read\nALTER TABLE t DROP COLUMN c",
            3,
        );
        assert_eq!(found.len(), 2);
        assert_eq!(found[1].rule, "renaming-column");
        assert_eq!(found[1].reason, "the column was never read");
        assert!(problems.is_empty());

        let (found, problems) = acceptances_in("-- squawk-ignore ban-drop-column\nDROP", 0);
        assert!(found.is_empty());
        assert_eq!(
            problems,
            vec![Problem::NoReason {
                rule: "ban-drop-column".into(),
                statement: 0
            }]
        );
        let (_, problems) = acceptances_in("-- squawk-ignore -- why\nDROP", 0);
        assert_eq!(problems, vec![Problem::NoRule { statement: 0 }]);
        let (_, problems) = acceptances_in("-- squawk-ignore-file -- all fine\nDROP", 1);
        assert_eq!(problems, vec![Problem::WholeFile { statement: 1 }]);
    }

    #[test]
    fn only_a_leading_line_comment_accepts() {
        let (found, problems) = acceptances_in(
            "\n-- the index backs the new lookup\n-- squawk-ignore ban-drop-column -- never read\nALTER TABLE t DROP COLUMN c",
            2,
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(problems.is_empty(), "{problems:?}");
        for statement in [
            "/* squawk-ignore ban-drop-column -- never read */ ALTER TABLE t DROP COLUMN c",
            "ALTER TABLE t DROP COLUMN c -- squawk-ignore ban-drop-column -- never read",
            "ALTER TABLE t\n-- squawk-ignore ban-drop-column -- never read\nDROP COLUMN c",
            "UPDATE t SET c = 'squawk-ignore ban-drop-column -- a value'",
            "UPDATE t SET c = '\n-- squawk-ignore ban-drop-column -- a value\n'",
            "-- note: squawk-ignore ban-drop-column -- never read\nALTER TABLE t DROP COLUMN c",
            "-- squawk-ignoreban-drop-column -- never read\nALTER TABLE t DROP COLUMN c",
        ] {
            let (found, problems) = acceptances_in(statement, 1);
            assert!(found.is_empty(), "{statement}: {found:?}");
            assert_eq!(
                problems,
                vec![Problem::Misplaced { statement: 1 }],
                "{statement}"
            );
        }
    }

    #[test]
    fn the_squawk_file_maps_lines_to_statements() {
        let (sql, starts) = squawk_file(&[
            "CREATE TABLE a (id int)".into(),
            "-- squawk-ignore x -- y\nCREATE INDEX i ON a (id);".into(),
            "SELECT 1".into(),
        ]);
        assert_eq!(starts, vec![1, 2, 4]);
        assert!(!sql.contains(IGNORE_MARK));
        assert_eq!(sql.lines().nth(3), Some("CREATE INDEX i ON a (id);"));

        // Nothing squawk reads tells it to ignore a rule, not even text in a literal.
        let (sql, starts) = squawk_file(&[
            "SELECT 'squawk-ignore-file' -- squawk-ignore x -- y".into(),
            "SELECT 2".into(),
        ]);
        assert!(!sql.contains(IGNORE_MARK), "{sql}");
        assert_eq!(starts, vec![1, 3]);
        assert_eq!(sql.lines().nth(2), Some(";"));
    }

    #[test]
    fn the_project_baseline_is_valid() {
        Baseline::project().unwrap();
    }

    #[test]
    fn the_released_migrations_are_the_first_the_migrator_applies() {
        released_apply_first().unwrap();
    }

    #[test]
    fn the_baseline_cannot_cover_new_migrations() {
        let error = Baseline::parse(
            "[rules]\nban-drop-column = \"x\"\n[migrations.m20991231_000001_later]\nwhy = \"x\"\nfindings = { ban-drop-column = 1 }\n",
        )
        .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("not one of the migrations released"),
            "{error}"
        );
        let error = Baseline::parse(
            "[migrations.m20261122_000001_platform_create_database_metadata]\nwhy = \"x\"\nfindings = { ban-drop-column = 1 }\n",
        )
        .unwrap_err();
        assert!(error.to_string().contains("says nothing on why"), "{error}");
    }
}
