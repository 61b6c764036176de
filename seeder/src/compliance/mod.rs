//! Every tenant's everyday compliance rows (a privacy policy, a consent, an allowed
//! transfer, a resolved incident), and Rento's privacy story, through
//! `service::compliance` like any application: two
//! privacy policy versions, consent history (one withdrawal), a user erased at their
//! request, a deletion request still in its grace period, cross-region transfers (one
//! refused) and a security incident.

use crate::{SeedError, fixture_error};
use chrono::Duration;
use entity::compliance::consent_records::ConsentSource;
use entity::compliance::security_incidents::{IncidentSeverity, IncidentStatus};
use entity::tenancy::tenants::DataRegion;
use entity::{TenantId, UserId};
use sea_orm::{ConnectionTrait, TransactionTrait};
use service::compliance::{
    ConsentDecision, ConsentPurpose, NewIncident, NewPrivacyPolicy, process_due_deletions,
    publish_privacy_policy, record_consent, record_transfer, report_incident, request_deletion,
    set_transfer_regions, update_incident,
};
use service::identity::{NewUser, create_session, register_user, validate_session};
use service::tenancy::TenantCtx;
use service::{Deps, ManualClock, RequestMeta, ServiceError};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

/// A renter who asked to be erased; the seeder erases them, so nobody signs in as them.
pub const ERASED_FIXTURE_EMAIL: &str = "kobayashi.former@example.jp";
/// The renter whose deletion request is still in its grace period.
pub const PENDING_DELETION_EMAIL: &str = "suzuki.ichiro@example.jp";

/// What the fixtures hold, for the summary.
#[derive(Clone, Debug, Default)]
pub struct ComplianceLine {
    pub policy_versions: usize,
    pub consents: usize,
    pub withdrawals: usize,
    pub erased: usize,
    pub pending_deletions: usize,
    pub transfers: usize,
    pub refused_transfers: usize,
    pub incidents: usize,
    pub incidents_resolved: usize,
}

fn from(address: [u8; 4], agent: &str) -> RequestMeta {
    RequestMeta::new(Some(IpAddr::V4(Ipv4Addr::from(address))), Some(agent))
}

fn purpose(name: &str) -> ConsentPurpose {
    ConsentPurpose::parse(name).expect("fixture purposes are valid")
}

/// Loads the story when the profile has Rento; nothing otherwise.
#[allow(clippy::too_many_lines)]
pub(crate) async fn load<C>(
    db: &C,
    deps: &Deps,
    clock: &ManualClock,
    tenants: &HashMap<&str, TenantId>,
    owners: &HashMap<&str, UserId>,
    users: &HashMap<&str, UserId>,
    password: &str,
) -> Result<ComplianceLine, SeedError>
where
    C: ConnectionTrait + TransactionTrait + 'static,
{
    let mut line = ComplianceLine::default();
    // Acme and Healthy Stellar: a policy, their owner's consent, a transfer their
    // rules allow, and an incident already resolved.
    for slug in ["acme", "healthy-stellar"] {
        if let (Some(&tenant), Some(&owner)) = (tenants.get(slug), owners.get(slug)) {
            baseline(db, deps, clock, slug, tenant, owner, &mut line).await?;
        }
    }
    let Some(&rento) = tenants.get("rento") else {
        return Ok(line);
    };
    let (Some(&owner), Some(&sato), Some(&suzuki)) = (
        users.get("tanaka@rento.jp"),
        users.get("sato.hanako@example.jp"),
        users.get(PENDING_DELETION_EMAIL),
    ) else {
        return Ok(line);
    };
    let step = Duration::seconds(1);
    let office = from([203, 0, 113, 10], "Mozilla/5.0 (seeded; Rento office)");

    // Two policy versions: the first in effect from now, the second a day later.
    let as_owner = TenantCtx::for_member(db, rento, owner)
        .await
        .map_err(fixture_error("rento privacy policy"))?;
    let v1 = NewPrivacyPolicy::parse(
        "Rento プライバシーポリシー",
        "https://rento.example.jp/privacy/v1",
        deps.now(),
    )
    .map_err(fixture_error("rento privacy policy v1"))?;
    publish_privacy_policy(db, deps, &as_owner, v1, &office)
        .await
        .map_err(fixture_error("rento privacy policy v1"))?;
    line.policy_versions += 1;
    clock.advance(step);

    // Under version 1, Hanako consents to marketing email and analytics.
    let from_home = from([198, 51, 100, 23], "Mozilla/5.0 (seeded; Hanako's phone)");
    let hanako = TenantCtx::for_member(db, rento, sato)
        .await
        .map_err(fixture_error("sato.hanako@example.jp consent"))?;
    for name in ["marketing_email", "analytics"] {
        let decision = ConsentDecision {
            purpose: purpose(name),
            granted: true,
            source: ConsentSource::Web,
        };
        record_consent(db, deps, &hanako, decision, &from_home)
            .await
            .map_err(fixture_error("sato.hanako@example.jp consent"))?;
        line.consents += 1;
        clock.advance(step);
    }

    let v2 = NewPrivacyPolicy::parse(
        "Rento プライバシーポリシー（第2版）",
        "https://rento.example.jp/privacy/v2",
        deps.now() + Duration::days(1),
    )
    .map_err(fixture_error("rento privacy policy v2"))?;
    publish_privacy_policy(db, deps, &as_owner, v2, &office)
        .await
        .map_err(fixture_error("rento privacy policy v2"))?;
    line.policy_versions += 1;
    clock.advance(Duration::days(1) + step);

    // Under version 2: Hanako renews her marketing consent (analytics stays under
    // version 1, so its check fails as outdated); Ichiro consents, then withdraws.
    record_consent(
        db,
        deps,
        &hanako,
        ConsentDecision {
            purpose: purpose("marketing_email"),
            granted: true,
            source: ConsentSource::Mobile,
        },
        &from_home,
    )
    .await
    .map_err(fixture_error("sato.hanako@example.jp consent"))?;
    line.consents += 1;
    clock.advance(step);
    let from_ichiro = from([192, 0, 2, 77], "Mozilla/5.0 (seeded; Ichiro's laptop)");
    let ichiro = TenantCtx::for_member(db, rento, suzuki)
        .await
        .map_err(fixture_error("suzuki.ichiro@example.jp consent"))?;
    for granted in [true, false] {
        let decision = ConsentDecision {
            purpose: purpose("marketing_email"),
            granted,
            source: ConsentSource::Web,
        };
        record_consent(db, deps, &ichiro, decision, &from_ichiro)
            .await
            .map_err(fixture_error("suzuki.ichiro@example.jp consent"))?;
        line.consents += 1;
        clock.advance(step);
    }
    line.withdrawals += 1;

    // A former renter who consented, then asked to be erased; the erasure job takes
    // the request once its grace period is over.
    let former = NewUser::parse(ERASED_FIXTURE_EMAIL, password, "小林 元")
        .map_err(fixture_error(ERASED_FIXTURE_EMAIL))?;
    let former = register_user(db, deps, former, &office)
        .await
        .map_err(fixture_error(ERASED_FIXTURE_EMAIL))?;
    clock.advance(step);
    service::tenancy::add_member(
        db,
        deps,
        &as_owner,
        former.id,
        entity::tenancy::memberships::MembershipRole::Member,
        &office,
    )
    .await
    .map_err(fixture_error(ERASED_FIXTURE_EMAIL))?;
    clock.advance(step);
    let former_ctx = TenantCtx::for_member(db, rento, former.id)
        .await
        .map_err(fixture_error(ERASED_FIXTURE_EMAIL))?;
    let from_former = from([198, 51, 100, 99], "Mozilla/5.0 (seeded; former renter)");
    record_consent(
        db,
        deps,
        &former_ctx,
        ConsentDecision {
            purpose: purpose("marketing_email"),
            granted: true,
            source: ConsentSource::Web,
        },
        &from_former,
    )
    .await
    .map_err(fixture_error(ERASED_FIXTURE_EMAIL))?;
    line.consents += 1;
    clock.advance(step);
    file_request(db, deps, former.id, ERASED_FIXTURE_EMAIL, &from_former).await?;
    clock.advance(deps.config.deletion_grace_period + step);
    let report = process_due_deletions(db, deps, &RequestMeta::system())
        .await
        .map_err(fixture_error("the erasure job"))?;
    line.erased = report.completed.len();
    clock.advance(step);

    // Ichiro, having withdrawn his consent, asks to be erased too: still cancellable.
    file_request(db, deps, suzuki, PENDING_DELETION_EMAIL, &from_ichiro).await?;
    line.pending_deletions += 1;
    clock.advance(step);

    // Rento's data stays in Japan, save for its US support desk: one transfer there,
    // and one to the EU that its rules refuse.
    set_transfer_regions(db, deps, &as_owner, &[DataRegion::Us], &office)
        .await
        .map_err(fixture_error("rento transfer regions"))?;
    clock.advance(step);
    record_transfer(
        db,
        deps,
        &as_owner,
        DataRegion::Us,
        "support ticket escalated to the US support desk",
        &office,
    )
    .await
    .map_err(fixture_error("rento transfer to us"))?;
    line.transfers += 1;
    clock.advance(step);
    match record_transfer(
        db,
        deps,
        &as_owner,
        DataRegion::Eu,
        "analytics export to the EU data warehouse",
        &office,
    )
    .await
    {
        Err(ServiceError::TransferRefused { .. }) => line.refused_transfers += 1,
        other => {
            return Err(fixture_error("rento transfer to eu")(match other {
                Err(e) => e,
                Ok(_) => ServiceError::Conflict {
                    entity: "fixture",
                    reason: "the transfer to the EU should have been refused",
                },
            }));
        }
    }
    clock.advance(step);

    // A phishing campaign against renters, under investigation.
    let phishing = NewIncident::parse(
        "Phishing emails impersonating Rento",
        "Renters received emails linking to a fake sign-in page. One renter reported \
         entering their password there; their sessions were revoked.",
        IncidentSeverity::Medium,
        deps.now() - Duration::hours(6),
        &[suzuki],
    )
    .map_err(fixture_error("rento incident"))?;
    let incident = report_incident(db, deps, &as_owner, phishing, &office)
        .await
        .map_err(fixture_error("rento incident"))?;
    clock.advance(step);
    update_incident(
        db,
        deps,
        &as_owner,
        incident.id,
        IncidentStatus::Investigating,
        None,
        &office,
    )
    .await
    .map_err(fixture_error("rento incident"))?;
    line.incidents += 1;
    clock.advance(step);
    Ok(line)
}

/// One tenant's everyday compliance rows.
async fn baseline<C>(
    db: &C,
    deps: &Deps,
    clock: &ManualClock,
    slug: &'static str,
    tenant: TenantId,
    owner: UserId,
    line: &mut ComplianceLine,
) -> Result<(), SeedError>
where
    C: ConnectionTrait + TransactionTrait + 'static,
{
    let on_err = fixture_error(format!("{slug} compliance"));
    let step = Duration::seconds(1);
    let meta = from([203, 0, 113, 20], "Mozilla/5.0 (seeded; office)");
    let ctx = TenantCtx::for_member(db, tenant, owner)
        .await
        .map_err(&on_err)?;
    let policy = NewPrivacyPolicy::parse(
        "Privacy Policy",
        &format!("https://{slug}.example.com/privacy/v1"),
        deps.now(),
    )
    .map_err(&on_err)?;
    publish_privacy_policy(db, deps, &ctx, policy, &meta)
        .await
        .map_err(&on_err)?;
    line.policy_versions += 1;
    clock.advance(step);
    let decision = ConsentDecision {
        purpose: purpose("product_updates"),
        granted: true,
        source: ConsentSource::Web,
    };
    record_consent(db, deps, &ctx, decision, &meta)
        .await
        .map_err(&on_err)?;
    line.consents += 1;
    clock.advance(step);
    set_transfer_regions(db, deps, &ctx, &[DataRegion::Eu], &meta)
        .await
        .map_err(&on_err)?;
    clock.advance(step);
    record_transfer(
        db,
        deps,
        &ctx,
        DataRegion::Eu,
        "customer support from the EU office",
        &meta,
    )
    .await
    .map_err(&on_err)?;
    line.transfers += 1;
    clock.advance(step);
    let lost_laptop = NewIncident::parse(
        "Lost laptop",
        "An employee's laptop was lost; its disk is encrypted and its sessions were revoked.",
        IncidentSeverity::Low,
        deps.now() - Duration::hours(1),
        &[],
    )
    .map_err(&on_err)?;
    let incident = report_incident(db, deps, &ctx, lost_laptop, &meta)
        .await
        .map_err(&on_err)?;
    clock.advance(step);
    update_incident(
        db,
        deps,
        &ctx,
        incident.id,
        IncidentStatus::Resolved,
        None,
        &meta,
    )
    .await
    .map_err(&on_err)?;
    line.incidents_resolved += 1;
    clock.advance(step);
    Ok(())
}

async fn file_request<C>(
    db: &C,
    deps: &Deps,
    user: UserId,
    email: &'static str,
    meta: &RequestMeta,
) -> Result<(), SeedError>
where
    C: ConnectionTrait + TransactionTrait + 'static,
{
    let on_err = fixture_error(email);
    let issued = create_session(db, deps, user, meta)
        .await
        .map_err(&on_err)?;
    let session = validate_session(db, deps, user, issued.session.id)
        .await
        .map_err(&on_err)?;
    request_deletion(db, deps, &session, meta)
        .await
        .map_err(&on_err)?;
    Ok(())
}
