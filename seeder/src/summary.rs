//! What the seeder prints after a run: the tenants, the demo logins, the access
//! fixtures and the API keys, as tables whose columns line up whatever the script of a name.

use crate::SeedReport;
use crate::profile::SHARED_PASSWORD;
use migration::cli::text_table::{align_right, text_table};
use std::io::{self, Write};

/// Writes the report of a run for the person who ran it.
pub fn write_summary(report: &SeedReport, out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "Seeded the {} profile into {} ({:?})",
        report.profile.as_str(),
        report.target,
        report.backend
    )?;
    writeln!(
        out,
        "  environment {}, {} migration(s) applied, {:.2}s",
        report.environment,
        report.migrations_applied,
        report.elapsed.as_secs_f64()
    )?;
    writeln!(out)?;

    writeln!(out, "Tenants")?;
    let mut tenants = text_table(["slug", "name", "plan", "region", "system"]);
    for t in &report.tenants {
        tenants.add_row(vec![
            t.slug.to_owned(),
            t.name.to_owned(),
            t.plan_tier.clone(),
            t.data_region.clone(),
            t.origin.to_owned(),
        ]);
    }
    writeln!(out, "{tenants}\n")?;

    writeln!(out, "Users (password for all: {SHARED_PASSWORD})")?;
    writeln!(out, "{}\n", users_table(report))?;

    writeln!(out, "Roles (system roles are shared by every tenant)")?;
    let mut roles = text_table(["tenant", "role", "permissions", "inherits"]);
    for r in &report.access.roles {
        roles.add_row(vec![
            r.tenant.unwrap_or("system").to_owned(),
            r.name.to_owned(),
            r.permissions.join(" "),
            r.parents.join(", "),
        ]);
    }
    writeln!(out, "{roles}\n")?;

    writeln!(out, "Teams")?;
    let mut teams = text_table(["tenant", "team"]);
    for (tenant, path) in &report.access.teams {
        teams.add_row(vec![tenant.to_string(), path.clone()]);
    }
    writeln!(out, "{teams}\n")?;

    writeln!(out, "Pending invitations (token, valid 14 days)")?;
    let mut invitations = text_table(["tenant", "email", "role", "token"]);
    for i in &report.access.invitations {
        invitations.add_row(vec![
            i.tenant.to_owned(),
            i.email.to_owned(),
            i.role.to_owned(),
            i.token.clone(),
        ]);
    }
    writeln!(out, "{invitations}\n")?;

    writeln!(
        out,
        "API keys (shown once; the database keeps their SHA-256)"
    )?;
    let mut api_keys = text_table(["tenant", "name", "scopes", "key"]);
    for k in &report.access.api_keys {
        api_keys.add_row(vec![
            k.tenant.to_owned(),
            k.name.to_owned(),
            k.scopes.join(" "),
            k.key.clone(),
        ]);
    }
    writeln!(out, "{api_keys}\n")?;

    for f in &report.second_factors {
        writeln!(
            out,
            "Second factor of {} (TOTP; demo credentials, the same for the same --seed: add the secret or the URI to an authenticator app)",
            f.email
        )?;
        writeln!(out, "  secret        {}", f.secret_base32)?;
        writeln!(out, "  otpauth URI   {}", f.otpauth_uri)?;
        writeln!(
            out,
            "  backup codes  {} (single use)",
            f.backup_codes.join(" ")
        )?;
        writeln!(
            out,
            "  signing in takes two steps (password, then a code); {} anomaly report(s) on file (Tokyo, then Paris an hour later)\n",
            f.anomaly_reports
        )?;
    }

    let privacy = &report.compliance;
    if privacy.policy_versions > 0 {
        writeln!(
            out,
            "Privacy: {} policy versions, {} consent decisions ({} withdrawn), {} user erased at their request ({}), {} deletion request in its grace period ({}), {} cross-region transfer(s) logged and {} refused, {} open and {} resolved security incident(s)\n",
            privacy.policy_versions,
            privacy.consents,
            privacy.withdrawals,
            privacy.erased,
            crate::compliance::ERASED_FIXTURE_EMAIL,
            privacy.pending_deletions,
            crate::compliance::PENDING_DELETION_EMAIL,
            privacy.transfers,
            privacy.refused_transfers,
            privacy.incidents,
            privacy.incidents_resolved,
        )?;
    }

    if report
        .tenants
        .iter()
        .any(|t| t.slug == crate::records::CLINIC)
    {
        writeln!(
            out,
            "Protected records (Healthy Stellar; sign in as any of them)"
        )?;
        for line in crate::records::who_opens_what() {
            writeln!(out, "  {line}")?;
        }
        writeln!(out)?;
    }

    if let Some(scale) = &report.scale {
        writeln!(
            out,
            "Scale: {} synthetic tenants, {} rows in {:.2}s ({:.0} rows/s)",
            scale.tenants,
            scale.rows,
            scale.elapsed.as_secs_f64(),
            scale.rows_per_second()
        )?;
    }
    let mut rows = text_table(["table", "rows"]);
    align_right(&mut rows, &[1]);
    for (table, n) in &report.row_counts {
        rows.add_row(vec![table.to_string(), n.to_string()]);
    }
    writeln!(out, "Rows\n{rows}")
}

/// The demo logins: email, name, tenant, membership and roles of every user.
pub fn users_table(report: &SeedReport) -> comfy_table::Table {
    let mut users = text_table(["email", "name", "tenant", "member", "roles"]);
    for u in &report.users {
        let roles = report
            .access
            .assignments
            .get(u.email)
            .map(|r| r.join(", "))
            .unwrap_or_default();
        users.add_row(vec![
            u.email.to_owned(),
            u.display_name.to_owned(),
            u.tenant.to_owned(),
            u.role.clone(),
            roles,
        ]);
    }
    users
}
