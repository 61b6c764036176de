//! The Healthy Stellar clinic's protected records, through `service::records` like
//! the clinic's own staff: six records of its three patients written by its two
//! physicians (one changed since, so it has a kept version), and three access grants
//! from the clinic admin: each physician to the other's patient, and a nurse's read.
//! Acme keeps one occupational health record of Bob's, so that every records table
//! has rows in two tenants.

use crate::{SeedError, fixture_error};
use chrono::Duration;
use entity::records::access_grants::GrantAccess;
use entity::records::records::RecordType;
use entity::{RecordId, TenantId, UserId};
use sea_orm::{ConnectionTrait, TransactionTrait};
use service::records::{
    NewGrant, NewRecord, RecordChange, create_record, grant_access, update_record,
};
use service::tenancy::TenantCtx;
use service::{Deps, ManualClock, RequestMeta, ServiceError};
use std::collections::HashMap;

pub(crate) const CLINIC: &str = "healthy-stellar";
const ADMIN: &str = "admin@healthystellar.com";

/// (author, patient, type, title, body)
const RECORDS: [(&str, &str, RecordType, &str, &str); 6] = [
    (
        "dr.smith@healthystellar.com",
        "patient1@example.com",
        RecordType::Consultation,
        "Cardiology consultation",
        "Intermittent chest tightness on exertion for 3 weeks. BP 138/86, HR 72 regular. \
         ECG: sinus rhythm, no ST changes. Plan: exercise stress test, lipid panel.",
    ),
    (
        "dr.smith@healthystellar.com",
        "patient1@example.com",
        RecordType::LabResult,
        "Lipid panel",
        "Total cholesterol 6.1 mmol/L, LDL 4.0 mmol/L, HDL 1.1 mmol/L, triglycerides 1.9 mmol/L.",
    ),
    (
        "dr.smith@healthystellar.com",
        "patient1@example.com",
        RecordType::Prescription,
        "Atorvastatin",
        "Atorvastatin 20 mg once daily at night. Review liver function in 3 months.",
    ),
    (
        "dr.smith@healthystellar.com",
        "patient2@example.com",
        RecordType::Diagnosis,
        "Essential hypertension",
        "Three readings above 140/90 over four weeks. Stage 1 essential hypertension.",
    ),
    (
        "dr.johnson@healthystellar.com",
        "patient3@example.com",
        RecordType::Consultation,
        "Neurology consultation",
        "Recurrent unilateral headaches with visual aura, 2-3 per month. Neurological exam normal.",
    ),
    (
        "dr.johnson@healthystellar.com",
        "patient3@example.com",
        RecordType::Imaging,
        "MRI brain",
        "MRI brain with and without contrast: no structural abnormality.",
    ),
];

/// The consultation's findings after the stress test: its version 2.
const AMENDED_BODY: &str = "Intermittent chest tightness on exertion for 3 weeks. BP 138/86, HR 72 \
     regular. ECG: sinus rhythm, no ST changes. Stress test: negative for ischaemia at 10 METs. \
     Plan: lipid panel, lifestyle advice.";

/// (grantee, subject, access, reason)
const GRANTS: [(&str, &str, GrantAccess, &str); 3] = [
    (
        "dr.johnson@healthystellar.com",
        "patient1@example.com",
        GrantAccess::Write,
        "Referred to neurology for exertional dizziness",
    ),
    (
        "dr.smith@healthystellar.com",
        "patient3@example.com",
        GrantAccess::Write,
        "Cardiac work-up before migraine prophylaxis",
    ),
    (
        "nurse.williams@healthystellar.com",
        "patient2@example.com",
        GrantAccess::Read,
        "Blood pressure monitoring clinic",
    ),
];

/// Who may open which of the clinic's records, for the seeder's summary.
pub(crate) fn who_opens_what() -> Vec<String> {
    fn distinct<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
        items.fold(Vec::new(), |mut seen, item| {
            if !seen.contains(&item) {
                seen.push(item);
            }
            seen
        })
    }
    let mut lines = Vec::new();
    for author in distinct(RECORDS.iter().map(|r| r.0)) {
        let patients = distinct(RECORDS.iter().filter(|r| r.0 == author).map(|r| r.1));
        lines.push(format!(
            "{author} wrote the records of {}",
            patients.join(", ")
        ));
    }
    for (grantee, subject, access, reason) in GRANTS {
        let access = match access {
            GrantAccess::Read => "reads",
            GrantAccess::Write => "reads and writes",
        };
        lines.push(format!("{grantee} {access} {subject}'s records ({reason})"));
    }
    lines.push("patient1..3@example.com read their own; dr.smith and dr.johnson may break the glass (at aal2, with a reason)".to_owned());
    lines.push(format!(
        "{ADMIN} reads all of them and reviews break-glass openings"
    ));
    lines
}

/// Loads the clinic's records and grants, if the profile has the clinic.
pub(crate) async fn load<C>(
    db: &C,
    deps: &Deps,
    clock: &ManualClock,
    tenants: &HashMap<&str, TenantId>,
    users: &HashMap<&str, UserId>,
) -> Result<(), SeedError>
where
    C: ConnectionTrait + TransactionTrait,
{
    if let Some(&acme) = tenants.get("acme") {
        load_acme(db, deps, clock, acme, users).await?;
    }
    let Some(&clinic) = tenants.get(CLINIC) else {
        return Ok(());
    };
    let on_err = fixture_error("Healthy Stellar records".to_owned());
    let user = |email: &str| {
        users.get(email).copied().ok_or_else(|| {
            on_err(ServiceError::NotFound {
                entity: "user",
                id: email.to_owned(),
            })
        })
    };
    let meta = RequestMeta::system();
    let step = Duration::seconds(1);
    let mut written: Vec<RecordId> = Vec::new();
    for (author, patient, record_type, title, body) in RECORDS {
        let ctx = TenantCtx::for_member(db, clinic, user(author)?)
            .await
            .map_err(&on_err)?;
        let new = NewRecord::new(user(patient)?, record_type, title, body).map_err(&on_err)?;
        written.push(
            create_record(db, deps, &ctx, new, &meta)
                .await
                .map_err(&on_err)?,
        );
        clock.advance(step);
    }
    let smith = TenantCtx::for_member(db, clinic, user(RECORDS[0].0)?)
        .await
        .map_err(&on_err)?;
    let change = RecordChange::new(None, None, Some(AMENDED_BODY)).map_err(&on_err)?;
    update_record(db, deps, &smith, written[0], 1, change, &meta)
        .await
        .map_err(&on_err)?;
    clock.advance(step);

    let admin = TenantCtx::for_member(db, clinic, user(ADMIN)?)
        .await
        .map_err(&on_err)?;
    // As long as a grant may run, so the demo's grants last.
    let expires_at = deps.now() + deps.config.records.longest_grant;
    for (grantee, subject, access, reason) in GRANTS {
        let grant = NewGrant::new(
            user(grantee)?,
            user(subject)?,
            None,
            access,
            reason,
            None,
            expires_at,
        )
        .map_err(&on_err)?;
        grant_access(db, deps, &admin, grant, &meta)
            .await
            .map_err(&on_err)?;
        clock.advance(step);
    }
    Ok(())
}

/// Alice writes Bob's pre-employment check and amends it; Bob lets her read his later
/// ones.
async fn load_acme<C>(
    db: &C,
    deps: &Deps,
    clock: &ManualClock,
    acme: TenantId,
    users: &HashMap<&str, UserId>,
) -> Result<(), SeedError>
where
    C: ConnectionTrait + TransactionTrait,
{
    let on_err = fixture_error("Acme records".to_owned());
    let (Some(&alice), Some(&bob)) = (users.get("alice@acme.com"), users.get("bob@acme.com"))
    else {
        return Ok(());
    };
    let meta = RequestMeta::system();
    let ctx = TenantCtx::for_member(db, acme, alice)
        .await
        .map_err(&on_err)?;
    let new = NewRecord::new(
        bob,
        RecordType::Other,
        "Pre-employment health check",
        "Fit for office work. Vision corrected; screen glasses advised.",
    )
    .map_err(&on_err)?;
    let id = create_record(db, deps, &ctx, new, &meta)
        .await
        .map_err(&on_err)?;
    clock.advance(Duration::seconds(1));
    let change = RecordChange::new(None, Some("Pre-employment health check (reviewed)"), None)
        .map_err(&on_err)?;
    update_record(db, deps, &ctx, id, 1, change, &meta)
        .await
        .map_err(&on_err)?;
    clock.advance(Duration::seconds(1));
    let grant = NewGrant::new(
        alice,
        bob,
        None,
        GrantAccess::Read,
        "Occupational health follow-up",
        None,
        deps.now() + Duration::days(90),
    )
    .map_err(&on_err)?;
    // Bob shares his own records: a subject needs no permission for that.
    let bob_ctx = TenantCtx::for_member(db, acme, bob)
        .await
        .map_err(&on_err)?;
    grant_access(db, deps, &bob_ctx, grant, &meta)
        .await
        .map_err(&on_err)?;
    clock.advance(Duration::seconds(1));
    Ok(())
}
