//! Agent task queue fixtures for Acme and Healthy Stellar, through `service::agents`
//! like any worker: a finished task with its result, one that failed once and waits
//! for its retry, and one a worker holds.

use crate::{SeedError, fixture_error};
use chrono::Duration;
use entity::{TenantId, UserId};
use sea_orm::{ConnectionTrait, TransactionTrait};
use serde_json::json;
use service::agents::{Lease, NewTask, WorkerId, claim_next, complete, enqueue, fail};
use service::tenancy::TenantCtx;
use service::{Deps, ManualClock, RequestMeta, ServiceError};
use std::collections::HashMap;

/// Each tenant's tasks: its agent and three inputs.
const TASKS: [(&str, &str, [&str; 3]); 2] = [
    (
        "acme",
        "summarize",
        [
            "Q3 board deck",
            "Support tickets, week 47",
            "Release notes 4.2",
        ],
    ),
    (
        "healthy-stellar",
        "transcribe",
        ["Dictation 0142", "Dictation 0143", "Dictation 0144"],
    ),
];

/// Loads the tasks of each tenant the profile has, enqueued by its owner.
pub(crate) async fn load<C>(
    db: &C,
    deps: &Deps,
    clock: &ManualClock,
    tenants: &HashMap<&str, TenantId>,
    owners: &HashMap<&str, UserId>,
) -> Result<(), SeedError>
where
    C: ConnectionTrait + TransactionTrait + 'static,
{
    let step = Duration::seconds(1);
    let meta = RequestMeta::system();
    for (slug, agent, inputs) in TASKS {
        let (Some(&tenant), Some(&owner)) = (tenants.get(slug), owners.get(slug)) else {
            continue;
        };
        let on_err = fixture_error(format!("{slug} agent tasks"));
        let ctx = TenantCtx::for_member(db, tenant, owner)
            .await
            .map_err(&on_err)?;
        let worker = WorkerId::parse(&format!("{slug}-worker-1")).map_err(&on_err)?;
        for (n, input) in inputs.iter().enumerate() {
            let task = NewTask::parse(agent, json!({ "input": input }))
                .and_then(|task| task.priority(if n == 0 { 50 } else { 10 }))
                .map_err(&on_err)?;
            enqueue(db, deps, &ctx, task, &meta)
                .await
                .map_err(&on_err)?;
            clock.advance(step);
        }
        let missing = |which: &str| {
            on_err(ServiceError::NotFound {
                entity: "agent task",
                id: which.to_owned(),
            })
        };
        // The first (highest priority) finished; the next failed once and waits for
        // its retry; the last is held by the worker.
        let done = claim_next(db, deps, &ctx, &worker, &meta)
            .await
            .map_err(&on_err)?
            .ok_or_else(|| missing("first"))?;
        let output = json!({ "output": format!("{} (done)", inputs[0]) });
        complete(db, deps, &ctx, &Lease::of(&done), &worker, output, &meta)
            .await
            .map_err(&on_err)?;
        clock.advance(step);
        let retried = claim_next(db, deps, &ctx, &worker, &meta)
            .await
            .map_err(&on_err)?
            .ok_or_else(|| missing("second"))?;
        fail(
            db,
            deps,
            &ctx,
            &Lease::of(&retried),
            &worker,
            "upstream model timed out",
            &meta,
        )
        .await
        .map_err(&on_err)?;
        clock.advance(step);
        claim_next(db, deps, &ctx, &worker, &meta)
            .await
            .map_err(&on_err)?
            .ok_or_else(|| missing("third"))?;
        clock.advance(step);
    }
    Ok(())
}
