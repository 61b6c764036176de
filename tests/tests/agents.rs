//! The agent task queue: permission, order, exactly-once claims under concurrency,
//! retries with backoff, recovery from dead workers, cancellation, tenant isolation.

use chrono::Duration;
use entity::agents::agent_results::ResultOutcome;
use entity::agents::agent_tasks::{self, TaskStatus};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;
use service::ServiceError;
use service::access::Scope;
use service::agents::{self, AttemptFailed, Lease, NewTask, WorkerId};
use service::tenancy::TenantCtx;
use std::collections::HashSet;
use tests::TestDb;
use tests::access_world::{World, give, role, world};
use tests::fixtures::{self, meta};
use tests::inspect::count_events;

tests::backend_tests!(Migrated:
    agents_need_the_run_permission_and_bad_input_writes_nothing,
    agents_claims_follow_priority_then_due_time,
    agents_eight_workers_claim_a_thousand_tasks_exactly_once,
    agents_failures_back_off_and_a_success_keeps_its_result,
    agents_a_dead_workers_task_is_retried_then_given_up,
    agents_cancelled_tasks_are_never_run,
    agents_other_tenants_tasks_are_out_of_reach,
);

/// Acme, with Bob holding `agents:run`; his context.
async fn runner(t: &TestDb) -> (World, TenantCtx) {
    let w = world(t).await;
    let runners = role(t, &w, "agent-runner", &[("agents", "run")]).await;
    give(t, &w, w.bob, &runners, Scope::Tenant).await;
    let bob = TenantCtx::for_member(&t.db, w.acme.id, w.bob)
        .await
        .expect("member");
    (w, bob)
}

fn worker(name: &str) -> WorkerId {
    WorkerId::parse(name).expect("valid")
}

async fn task_count(t: &TestDb) -> u64 {
    agent_tasks::Entity::find()
        .count(&t.owner)
        .await
        .expect("counts")
}

async fn agents_need_the_run_permission_and_bad_input_writes_nothing(t: TestDb) {
    let w = world(&t).await;
    let bob = TenantCtx::for_member(&t.db, w.acme.id, w.bob)
        .await
        .expect("member");
    let task = NewTask::parse("summarize", json!({ "doc": 1 })).expect("valid");
    let refused = agents::enqueue(&t.db, &w.deps, &bob, task.clone(), &meta()).await;
    assert!(
        matches!(refused, Err(ServiceError::Forbidden { .. })),
        "{refused:?}"
    );
    let refused = agents::claim_next(&t.db, &w.deps, &bob, &worker("w1"), &meta()).await;
    assert!(
        matches!(refused, Err(ServiceError::Forbidden { .. })),
        "{refused:?}"
    );
    for (agent, field) in [("", "agent"), ("Summarize", "agent"), ("a b", "agent")] {
        let err = NewTask::parse(agent, json!({})).expect_err("refused");
        assert!(
            matches!(err, ServiceError::Validation { field: f, .. } if f == field),
            "{agent:?}: {err:?}"
        );
    }
    let big = json!("x".repeat(agents::MAX_PAYLOAD_BYTES));
    assert!(matches!(
        NewTask::parse("summarize", big),
        Err(ServiceError::Validation {
            field: "payload",
            ..
        })
    ));
    assert!(task.clone().priority(101).is_err());
    assert!(task.clone().max_attempts(0).is_err());
    assert!(WorkerId::parse("w1; DROP TABLE agent_tasks").is_err());
    assert_eq!(task_count(&t).await, 0);
    assert_eq!(count_events(&t.owner, "agent_task_enqueued").await, 0);

    let runners = role(&t, &w, "agent-runner", &[("agents", "run")]).await;
    give(&t, &w, w.bob, &runners, Scope::Tenant).await;
    let queued = agents::enqueue(&t.db, &w.deps, &bob, task, &meta())
        .await
        .expect("enqueued");
    assert_eq!(queued.status, TaskStatus::Queued);
    assert_eq!(queued.created_by, Some(w.bob));
    assert_eq!(task_count(&t).await, 1);
    assert_eq!(count_events(&t.owner, "agent_task_enqueued").await, 1);
}

async fn agents_claims_follow_priority_then_due_time(t: TestDb) {
    let (w, bob) = runner(&t).await;
    let now = fixtures::start_time();
    let mut ids = Vec::new();
    for (label, priority, delay) in [
        ("low", 0, 0),
        ("high-later", 50, 0),
        ("high", 50, 0),
        ("future", 100, 60),
    ] {
        w.clock.advance(Duration::seconds(1));
        let task = NewTask::parse("summarize", json!({ "label": label }))
            .and_then(|t| t.priority(priority))
            .expect("valid")
            .run_after(now + Duration::seconds(delay));
        ids.push(
            agents::enqueue(&t.db, &w.deps, &bob, task, &meta())
                .await
                .expect("enqueued")
                .id,
        );
    }
    // Equal priority: the earlier run_after first (all three are due at `now`), then
    // the id; the future task waits, whatever its priority.
    let mut order = Vec::new();
    while let Some(task) = agents::claim_next(&t.db, &w.deps, &bob, &worker("w1"), &meta())
        .await
        .expect("claims")
    {
        assert_eq!(task.status, TaskStatus::Running);
        assert_eq!(task.attempts, 1);
        assert_eq!(task.locked_by.as_deref(), Some("w1"));
        order.push(task.payload["label"].as_str().expect("label").to_owned());
    }
    let (first, second) = (&order[0], &order[1]);
    assert!(
        [first.as_str(), second.as_str()].contains(&"high")
            && [first.as_str(), second.as_str()].contains(&"high-later"),
        "{order:?}"
    );
    assert_eq!(order.len(), 3, "{order:?}");
    assert_eq!(order[2], "low");
    w.clock.advance(Duration::seconds(60));
    let future = agents::claim_next(&t.db, &w.deps, &bob, &worker("w1"), &meta())
        .await
        .expect("claims")
        .expect("due now");
    assert_eq!(future.id, ids[3]);
    assert_eq!(count_events(&t.owner, "agent_task_claimed").await, 4);
}

async fn agents_eight_workers_claim_a_thousand_tasks_exactly_once(t: TestDb) {
    let (w, bob) = runner(&t).await;
    for n in 0..1000 {
        let task = NewTask::parse("embed", json!({ "n": n })).expect("valid");
        agents::enqueue(&t.db, &w.deps, &bob, task, &meta())
            .await
            .expect("enqueued");
    }
    let bob = std::sync::Arc::new(bob);
    let mut workers = Vec::new();
    for k in 0..8 {
        let (db, deps, ctx) = (t.db.clone(), w.deps.clone(), bob.clone());
        let owner = t.owner.clone();
        workers.push(tokio::spawn(async move {
            let me = worker(&format!("worker-{k}"));
            let mut claimed = Vec::new();
            while let Some(task) = agents::claim_next(&db, &deps, &ctx, &me, &meta())
                .await
                .expect("claims")
            {
                assert_eq!(task.locked_by.as_deref(), Some(me.as_str()));
                claimed.push(task.id);
            }
            // Nothing was due for this worker: at most the other workers' candidates
            // (one locked row each) were left.
            let left = agent_tasks::Entity::find()
                .filter(agent_tasks::Column::Status.eq(TaskStatus::Queued))
                .count(&owner)
                .await
                .expect("counts");
            assert!(
                left < 8,
                "worker-{k} found nothing while {left} tasks were due"
            );
            claimed
        }));
    }
    let mut all = Vec::new();
    let mut busy_workers = 0;
    for handle in workers {
        let claimed = handle.await.expect("worker");
        busy_workers += usize::from(!claimed.is_empty());
        all.extend(claimed);
    }
    let distinct: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), 1000, "every task claimed once in all");
    assert_eq!(distinct.len(), 1000, "no task claimed twice");
    assert!(busy_workers >= 2, "the claims were concurrent");
    let rows = agent_tasks::Entity::find()
        .all(&t.owner)
        .await
        .expect("rows");
    assert!(
        rows.iter()
            .all(|r| r.status == TaskStatus::Running && r.attempts == 1)
    );
}

async fn agents_failures_back_off_and_a_success_keeps_its_result(t: TestDb) {
    let (w, bob) = runner(&t).await;
    let policy = w.deps.config.agent_queue;
    let me = worker("w1");
    let task = NewTask::parse("translate", json!({ "text": "こんにちは" }))
        .and_then(|t| t.max_attempts(3))
        .expect("valid");
    let id = agents::enqueue(&t.db, &w.deps, &bob, task, &meta())
        .await
        .expect("enqueued")
        .id;
    for attempt in 1..=2i16 {
        let claimed = agents::claim_next(&t.db, &w.deps, &bob, &me, &meta())
            .await
            .expect("claims")
            .expect("due");
        assert_eq!(claimed.attempts, attempt);
        let outcome = agents::fail(
            &t.db,
            &w.deps,
            &bob,
            &Lease::of(&claimed),
            &me,
            "rate limited",
            &meta(),
        )
        .await
        .expect("fails");
        let wait = policy.backoff(attempt);
        assert_eq!(wait, policy.retry_base * (1 << (attempt - 1)));
        assert_eq!(
            outcome,
            AttemptFailed::Retried {
                run_after: w.deps.now() + wait
            }
        );
        // Not before the backoff has passed.
        assert!(
            agents::claim_next(&t.db, &w.deps, &bob, &me, &meta())
                .await
                .expect("claims")
                .is_none()
        );
        w.clock.advance(wait);
    }
    let third = agents::claim_next(&t.db, &w.deps, &bob, &me, &meta())
        .await
        .expect("claims")
        .expect("third attempt");
    // An earlier attempt's lease, from the same worker, is over.
    let stale = Lease {
        task: id,
        attempt: 2,
    };
    let late = agents::complete(&t.db, &w.deps, &bob, &stale, &me, json!({}), &meta()).await;
    assert!(
        matches!(late, Err(ServiceError::Conflict { .. })),
        "{late:?}"
    );
    let late = agents::heartbeat(&t.db, &w.deps, &bob, &stale, &me).await;
    assert!(
        matches!(late, Err(ServiceError::Conflict { .. })),
        "{late:?}"
    );
    let lease = Lease::of(&third);
    let result = agents::complete(
        &t.db,
        &w.deps,
        &bob,
        &lease,
        &me,
        json!({ "text": "hello" }),
        &meta(),
    )
    .await
    .expect("completes");
    assert_eq!(result.attempt, 3);
    let again = agents::complete(&t.db, &w.deps, &bob, &lease, &me, json!({}), &meta()).await;
    assert!(
        matches!(again, Err(ServiceError::Conflict { .. })),
        "{again:?}"
    );
    let done = agents::task(&t.db, &w.deps, &bob, id).await.expect("task");
    assert_eq!(done.status, TaskStatus::Succeeded);
    assert!(done.finished_at.is_some() && done.locked_by.is_none());
    assert_eq!(done.last_error.as_deref(), Some("rate limited"));
    let results = agents::results(&t.db, &w.deps, &bob, id)
        .await
        .expect("results");
    let outcomes: Vec<_> = results.iter().map(|r| (r.attempt, r.outcome)).collect();
    assert_eq!(
        outcomes,
        [
            (1, ResultOutcome::Failed),
            (2, ResultOutcome::Failed),
            (3, ResultOutcome::Succeeded)
        ]
    );
    assert_eq!(results[2].output, Some(json!({ "text": "hello" })));
    assert_eq!(count_events(&t.owner, "agent_task_failed").await, 2);
    assert_eq!(count_events(&t.owner, "agent_task_succeeded").await, 1);
}

async fn agents_a_dead_workers_task_is_retried_then_given_up(t: TestDb) {
    let (w, bob) = runner(&t).await;
    let policy = w.deps.config.agent_queue;
    let (dead, other) = (worker("dies-1"), worker("w2"));
    let task = NewTask::parse("crawl", json!({}))
        .and_then(|t| t.max_attempts(2))
        .expect("valid");
    let id = agents::enqueue(&t.db, &w.deps, &bob, task, &meta())
        .await
        .expect("enqueued")
        .id;
    let first = Lease::of(
        &agents::claim_next(&t.db, &w.deps, &bob, &dead, &meta())
            .await
            .expect("claims")
            .expect("due"),
    );
    // Alive for a while: a heartbeat keeps the task.
    w.clock.advance(policy.stall_after - Duration::seconds(1));
    agents::heartbeat(&t.db, &w.deps, &bob, &first, &dead)
        .await
        .expect("beats");
    w.clock.advance(Duration::seconds(2));
    assert_eq!(
        agents::recover_stalled(&t.db, &w.deps, &bob, &meta())
            .await
            .expect("recovers"),
        0,
        "a heartbeat within the limit"
    );
    // Then silence.
    w.clock.advance(policy.stall_after + Duration::seconds(1));
    assert_eq!(
        agents::recover_stalled(&t.db, &w.deps, &bob, &meta())
            .await
            .expect("recovers"),
        1
    );
    let back = agents::task(&t.db, &w.deps, &bob, id).await.expect("task");
    assert_eq!(back.status, TaskStatus::Queued);
    assert_eq!(back.run_after, w.deps.now() + policy.backoff(1));
    // The dead worker, waking up, finds it is no longer its task.
    let late = agents::heartbeat(&t.db, &w.deps, &bob, &first, &dead).await;
    assert!(
        matches!(late, Err(ServiceError::Conflict { .. })),
        "{late:?}"
    );
    let late = agents::complete(&t.db, &w.deps, &bob, &first, &dead, json!({}), &meta()).await;
    assert!(
        matches!(late, Err(ServiceError::Conflict { .. })),
        "{late:?}"
    );

    w.clock.advance(policy.backoff(1));
    let second = agents::claim_next(&t.db, &w.deps, &bob, &other, &meta())
        .await
        .expect("claims")
        .expect("retried");
    assert_eq!(second.attempts, 2);
    w.clock.advance(policy.stall_after + Duration::seconds(1));
    assert_eq!(
        agents::recover_stalled(&t.db, &w.deps, &bob, &meta())
            .await
            .expect("recovers"),
        1
    );
    let given_up = agents::task(&t.db, &w.deps, &bob, id).await.expect("task");
    assert_eq!(given_up.status, TaskStatus::Failed);
    assert!(given_up.finished_at.is_some());
    assert!(
        agents::claim_next(&t.db, &w.deps, &bob, &other, &meta())
            .await
            .expect("claims")
            .is_none(),
        "a failed task is never taken again"
    );
    let results = agents::results(&t.db, &w.deps, &bob, id)
        .await
        .expect("results");
    assert_eq!(results.len(), 2);
    assert!(results.iter().all(|r| r.outcome == ResultOutcome::Failed));
    assert!(
        results[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("dies-1"))
    );
    assert_eq!(count_events(&t.owner, "agent_tasks_recovered").await, 2);
}

async fn agents_cancelled_tasks_are_never_run(t: TestDb) {
    let (w, bob) = runner(&t).await;
    let me = worker("w1");
    let queued = agents::enqueue(
        &t.db,
        &w.deps,
        &bob,
        NewTask::parse("a", json!({})).expect("valid"),
        &meta(),
    )
    .await
    .expect("enqueued");
    agents::cancel(&t.db, &w.deps, &bob, queued.id, &meta())
        .await
        .expect("cancels");
    assert!(
        agents::claim_next(&t.db, &w.deps, &bob, &me, &meta())
            .await
            .expect("claims")
            .is_none()
    );
    let again = agents::cancel(&t.db, &w.deps, &bob, queued.id, &meta()).await;
    assert!(
        matches!(again, Err(ServiceError::Conflict { .. })),
        "{again:?}"
    );

    // A running task: its worker learns at its next heartbeat.
    let running = agents::enqueue(
        &t.db,
        &w.deps,
        &bob,
        NewTask::parse("b", json!({})).expect("valid"),
        &meta(),
    )
    .await
    .expect("enqueued");
    let held = agents::claim_next(&t.db, &w.deps, &bob, &me, &meta())
        .await
        .expect("claims")
        .expect("due");
    agents::cancel(&t.db, &w.deps, &bob, running.id, &meta())
        .await
        .expect("cancels");
    let beat = agents::heartbeat(&t.db, &w.deps, &bob, &Lease::of(&held), &me).await;
    assert!(
        matches!(beat, Err(ServiceError::Conflict { .. })),
        "{beat:?}"
    );
    let task = agents::task(&t.db, &w.deps, &bob, running.id)
        .await
        .expect("task");
    assert_eq!(task.status, TaskStatus::Cancelled);
    assert_eq!(count_events(&t.owner, "agent_task_cancelled").await, 2);
}

async fn agents_other_tenants_tasks_are_out_of_reach(t: TestDb) {
    let (w, bob) = runner(&t).await;
    let id = agents::enqueue(
        &t.db,
        &w.deps,
        &bob,
        NewTask::parse("a", json!({})).expect("valid"),
        &meta(),
    )
    .await
    .expect("enqueued")
    .id;
    // Carol owns another tenant, where she may run agents.
    let carol = fixtures::user(&t.db, &w.deps, "carol").await;
    let globex = fixtures::tenant(&t.db, &w.deps, "globex", &carol).await;
    let owner = TenantCtx::for_member(&t.db, globex.id, carol.id)
        .await
        .expect("owner");
    let runners = service::access::create_role(
        &t.db,
        &w.deps,
        &owner,
        &service::input::RoleName::parse("runner").expect("valid"),
        None,
        &meta(),
    )
    .await
    .expect("role");
    service::access::grant_permission(&t.db, &w.deps, &owner, runners.id, "agents", "run", &meta())
        .await
        .expect("granted");
    service::access::assign_role(
        &t.db,
        &w.deps,
        &owner,
        service::access::NewAssignment::tenant_wide(carol.id, runners.id),
        &meta(),
    )
    .await
    .expect("assigned");
    assert!(
        agents::claim_next(&t.db, &w.deps, &owner, &worker("w9"), &meta())
            .await
            .expect("claims")
            .is_none(),
        "Acme's task is not Globex's to run"
    );
    for refused in [
        agents::task(&t.db, &w.deps, &owner, id).await.map(|_| ()),
        agents::cancel(&t.db, &w.deps, &owner, id, &meta()).await,
    ] {
        assert!(
            matches!(refused, Err(ServiceError::NotFound { .. })),
            "{refused:?}"
        );
    }
    let still = agents::task(&t.db, &w.deps, &bob, id).await.expect("task");
    assert_eq!(still.status, TaskStatus::Queued);
}
