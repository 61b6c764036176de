//! Anomaly detection at sign-in and refresh: a new device, impossible travel, a burst
//! of failed sign-ins. Each finding becomes a `session_anomaly_reports` row and a
//! `session_anomaly_detected` audit event with its risk score; a sign-in whose summed
//! score reaches [`AnomalyPolicy::step_up_score`](crate::deps::AnomalyPolicy) needs the
//! second factor, or is refused without one.
//!
//! The inputs are what the application passes in [`RequestMeta`]: a device fingerprint
//! (kept as its hash) and a coarse location from its CDN's headers. Nothing is looked
//! up elsewhere; without them, the device and travel checks find nothing.

use super::users::begin_for_user;
use crate::Result;
use crate::audit::{AuditEntry, AuditEvent, record};
use crate::deps::Deps;
use crate::request::RequestMeta;
use crate::transaction::InTransaction;
use chrono::{DateTime, Utc};
use entity::audit::audit_logs::{self, AuditOutcome};
use entity::identity::session_anomaly_reports::{self, AnomalyKind};
use entity::identity::sessions;
use entity::{SessionAnomalyReportId, SessionId, UserId};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Statement, TransactionSession, TransactionTrait,
};
use serde_json::{Value, json};

/// One finding of anomaly detection.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub kind: AnomalyKind,
    /// 0 to 100.
    pub risk_score: i32,
    /// What was compared (distances, speeds, counts); stored with the report.
    pub details: Value,
}

/// Runs sign-in anomaly detection for `user` as `meta` describes the request, and
/// writes what it finds (reports, naming no session, and audit events), in a
/// transaction acting as the user. Call it before opening the session the sign-in
/// leads to, which would otherwise count as the user's history. [`login`](crate::identity::login) does this itself;
/// this is for sign-ins the application completes elsewhere (single sign-on, a
/// federated provider), so they are compared with the user's sessions too.
///
/// # Errors
/// `Db` only.
pub async fn detect_sign_in_anomalies<C>(
    db: &C,
    deps: &Deps,
    user: UserId,
    meta: &RequestMeta,
) -> Result<Vec<Finding>>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = begin_for_user(db, user).await?;
    let findings = assess_sign_in(&txn, deps, user, meta).await?;
    write_reports(&txn, deps, user, None, &findings, meta).await?;
    txn.commit().await?;
    Ok(findings)
}

/// The summed score of a sign-in's findings, at most 100.
pub(crate) fn total_score(findings: &[Finding]) -> i32 {
    findings
        .iter()
        .map(|f| f.risk_score)
        .sum::<i32>()
        .clamp(0, 100)
}

/// Great-circle distance in kilometres (haversine, mean Earth radius).
pub(crate) fn distance_km(from: (f64, f64), to: (f64, f64)) -> f64 {
    const EARTH_RADIUS_KM: f64 = 6371.0;
    let (lat1, lng1) = (from.0.to_radians(), from.1.to_radians());
    let (lat2, lng2) = (to.0.to_radians(), to.1.to_radians());
    let a = ((lat2 - lat1) / 2.0).sin().powi(2)
        + lat1.cos() * lat2.cos() * ((lng2 - lng1) / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * a.sqrt().min(1.0).asin()
}

/// Where and when a user was last seen, to compare a new location with.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LastSeen {
    pub(crate) coordinates: (f64, f64),
    pub(crate) at: DateTime<Utc>,
}

/// Impossible travel from `last` to the request's location, if any.
pub(crate) fn travel_finding(deps: &Deps, last: LastSeen, meta: &RequestMeta) -> Option<Finding> {
    let policy = deps.config.anomaly;
    let here = meta.location()?.coordinates()?;
    let km = distance_km(last.coordinates, here);
    if km < policy.impossible_travel_min_km {
        return None;
    }
    // A second at least: two requests in the same instant are still a jump.
    let seconds = Ord::max((deps.now() - last.at).num_seconds(), 1);
    #[allow(clippy::cast_precision_loss)] // seconds since a recent sign-in: far below 2^52
    let kmh = km / (seconds as f64 / 3600.0);
    (kmh > policy.impossible_travel_kmh).then(|| Finding {
        kind: AnomalyKind::ImpossibleTravel,
        risk_score: policy.impossible_travel_score,
        details: json!({
            "distance_km": km.round(),
            "elapsed_seconds": seconds,
            "speed_kmh": kmh.round(),
            "threshold_kmh": policy.impossible_travel_kmh,
            "from": { "latitude": last.coordinates.0, "longitude": last.coordinates.1 },
            "to": { "latitude": here.0, "longitude": here.1 },
        }),
    })
}

/// What a sign-in of `user` from `meta` looks like against the user's sessions and
/// recent failures. Reads only, in `db`'s transaction (acting as `user`).
pub(crate) async fn assess_sign_in<C: ConnectionTrait>(
    db: &C,
    deps: &Deps,
    user: UserId,
    meta: &RequestMeta,
) -> Result<Vec<Finding>> {
    let policy = deps.config.anomaly;
    let mut findings = Vec::new();

    if let Some(device) = meta.device_hash() {
        let sessions_with_device = |known: Option<&str>| {
            let mut find = Query::select()
                .expr(Expr::val(1))
                .from(sessions::Entity)
                .and_where(Expr::col((sessions::Entity, sessions::Column::UserId)).eq(user))
                .and_where(
                    Expr::col((sessions::Entity, sessions::Column::DeviceHash)).is_not_null(),
                )
                .to_owned();
            if let Some(known) = known {
                find.and_where(
                    Expr::col((sessions::Entity, sessions::Column::DeviceHash)).eq(known),
                );
            }
            find
        };
        // A first device ever is no anomaly; a device unlike all earlier ones is. Both
        // asked in one statement.
        let seen = Query::select()
            .expr(Expr::exists(sessions_with_device(None)))
            .expr(Expr::exists(sessions_with_device(Some(device))))
            .to_owned();
        let (any_device, this_device) = match db.query_one(&seen).await? {
            Some(row) => row.try_get_many_by_index::<(bool, bool)>()?,
            None => (false, false),
        };
        if any_device && !this_device {
            findings.push(Finding {
                kind: AnomalyKind::NewDevice,
                risk_score: policy.new_device_score,
                details: json!({ "user_agent": meta.user_agent() }),
            });
        }
    }

    if meta.location().and_then(|l| l.coordinates()).is_some() {
        let last = sessions::Entity::find()
            .select_only()
            .column(sessions::Column::Latitude)
            .column(sessions::Column::Longitude)
            .column(sessions::Column::LastUsedAt)
            .filter(sessions::Column::UserId.eq(user))
            .filter(sessions::Column::Latitude.is_not_null())
            .filter(sessions::Column::Longitude.is_not_null())
            .order_by_desc(sessions::Column::LastUsedAt)
            .into_tuple::<(f64, f64, DateTime<Utc>)>()
            .one(db)
            .await?;
        if let Some((lat, lng, at)) = last
            && let Some(found) = travel_finding(
                deps,
                LastSeen {
                    coordinates: (lat, lng),
                    at,
                },
                meta,
            )
        {
            findings.push(found);
        }
    }

    let failures = recent_failed_sign_ins(db, deps, user).await?;
    if failures >= policy.failed_burst_count {
        findings.push(Finding {
            kind: AnomalyKind::FailedSignInBurst,
            risk_score: policy.failed_burst_score,
            details: json!({
                "failed_sign_ins": failures,
                "window_seconds": policy.failed_burst_window.num_seconds(),
            }),
        });
    }
    Ok(findings)
}

/// The user's failed sign-ins within the burst window, from the audit trail.
async fn recent_failed_sign_ins<C: ConnectionTrait>(
    db: &C,
    deps: &Deps,
    user: UserId,
) -> Result<u64> {
    let policy = deps.config.anomaly;
    let since = deps.now() - policy.failed_burst_window;
    let code = AuditEvent::LoginFailed.code();
    if db.get_database_backend() == DbBackend::Postgres {
        // The runtime role counts its own global events through this function only.
        let row = db
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT app_own_security_event_count($1, $2)",
                [code.into(), since.into()],
            ))
            .await?;
        let count: i64 = row.map(|r| r.try_get_by_index(0)).transpose()?.unwrap_or(0);
        return Ok(u64::try_from(count).unwrap_or(0));
    }
    Ok(audit_logs::Entity::find()
        .filter(audit_logs::Column::ActorUserId.eq(user))
        .filter(audit_logs::Column::TenantId.is_null())
        .filter(audit_logs::Column::EventType.eq(code))
        .filter(audit_logs::Column::OccurredAt.gte(since))
        .count(db)
        .await?)
}

/// Writes each finding as a report (naming the session, if one was opened) and an
/// audit event, in `db`'s transaction.
pub(crate) async fn write_reports<C: InTransaction>(
    db: &C,
    deps: &Deps,
    user: UserId,
    session: Option<SessionId>,
    findings: &[Finding],
    meta: &RequestMeta,
) -> Result<()> {
    for finding in findings {
        let id = SessionAnomalyReportId(deps.new_id("session_anomaly_reports", &user.to_string()));
        let location = meta.location();
        session_anomaly_reports::Entity::insert(session_anomaly_reports::ActiveModel {
            id: Set(id),
            user_id: Set(user),
            session_id: Set(session),
            kind: Set(finding.kind),
            risk_score: Set(finding.risk_score),
            details: Set(finding.details.clone()),
            ip_address: Set(meta.ip_string()),
            country: Set(location.and_then(|l| l.country()).map(str::to_owned)),
            city: Set(location.and_then(|l| l.city()).map(str::to_owned)),
            created_at: Set(deps.now()),
        })
        .exec_without_returning(db)
        .await?;
        let entry = AuditEntry::new(
            AuditEvent::SessionAnomalyDetected,
            AuditOutcome::Success,
            meta,
        )
        .actor(user)
        .resource("session_anomaly_report", id)
        .risk(i16::try_from(finding.risk_score).unwrap_or(100))
        .details(json!({ "kind": finding.kind.as_str(), "session_id": session }));
        record(db, deps, entry).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_are_great_circle_kilometres() {
        let tokyo = (35.6762, 139.6503);
        let osaka = (34.6937, 135.5023);
        let paris = (48.8566, 2.3522);
        assert!((distance_km(tokyo, osaka) - 397.0).abs() < 10.0);
        assert!((distance_km(tokyo, paris) - 9_712.0).abs() < 50.0);
        assert!(distance_km(paris, paris).abs() < 1e-9);
    }

    #[test]
    fn scores_sum_and_cap_at_100() {
        let finding = |risk_score| Finding {
            kind: AnomalyKind::NewDevice,
            risk_score,
            details: json!({}),
        };
        assert_eq!(total_score(&[]), 0);
        assert_eq!(total_score(&[finding(30), finding(40)]), 70);
        assert_eq!(total_score(&[finding(70), finding(40)]), 100);
    }
}
