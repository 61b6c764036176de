//! What callers hand the queue, checked before any query: a task to enqueue, a
//! worker's name, the lease a claim gives; and what a failed attempt led to.

use crate::Result;
use crate::error::ServiceError;
use chrono::{DateTime, Utc};
use entity::AgentTaskId;
use entity::agents::agent_tasks;
use serde_json::Value as Json;

/// The longest payload or output, as JSON text.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;
/// The longest error message kept (longer ones are cut).
pub const MAX_ERROR_CHARS: usize = 2000;

/// A task to enqueue, checked.
#[derive(Clone, Debug)]
pub struct NewTask {
    pub(super) agent: String,
    pub(super) payload: Json,
    pub(super) priority: i16,
    pub(super) max_attempts: i16,
    pub(super) run_after: Option<DateTime<Utc>>,
}

impl NewTask {
    /// A task for `agent` with `payload`, priority 0, 3 attempts, due now.
    ///
    /// # Errors
    /// `Validation` for an agent name that is empty, longer than 100 or not made of
    /// lowercase letters, digits, `_`, `-` and `.`; or a payload over
    /// [`MAX_PAYLOAD_BYTES`].
    pub fn parse(agent: &str, payload: Json) -> Result<Self> {
        Ok(Self {
            agent: name("agent", agent)?,
            payload: bounded_json("payload", payload)?,
            priority: 0,
            max_attempts: 3,
            run_after: None,
        })
    }

    /// 0 to 100; higher runs first.
    ///
    /// # Errors
    /// `Validation` outside 0..=100.
    pub fn priority(mut self, priority: i16) -> Result<Self> {
        if !(0..=100).contains(&priority) {
            return Err(ServiceError::validation("priority", "must be 0 to 100"));
        }
        self.priority = priority;
        Ok(self)
    }

    /// 1 to 25 attempts in all.
    ///
    /// # Errors
    /// `Validation` outside 1..=25.
    pub fn max_attempts(mut self, attempts: i16) -> Result<Self> {
        if !(1..=25).contains(&attempts) {
            return Err(ServiceError::validation("max_attempts", "must be 1 to 25"));
        }
        self.max_attempts = attempts;
        Ok(self)
    }

    /// Not taken before `at` (default: now).
    pub fn run_after(mut self, at: DateTime<Utc>) -> Self {
        self.run_after = Some(at);
        self
    }
}

/// A worker's name as it appears in `locked_by` and results: 1 to 100 characters,
/// letters, digits, `_`, `-`, `.`, `:` (e.g. `host-3:pid-412`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerId(pub(super) String);

impl WorkerId {
    /// # Errors
    /// `Validation` for an empty, overlong or otherwise malformed name.
    pub fn parse(raw: &str) -> Result<Self> {
        let ok = !raw.is_empty()
            && raw.len() <= 100
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
        if !ok {
            return Err(ServiceError::validation(
                "worker",
                "1 to 100 letters, digits, '_', '-', '.' or ':'",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One claim of a task: the task and which attempt the claim started. A worker
/// reports on its lease, so an attempt that was taken back (and the task claimed again,
/// maybe by the same worker) can no longer heartbeat, complete or fail it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    pub task: AgentTaskId,
    pub attempt: i16,
}

impl Lease {
    /// The lease of a task [`claim_next`] returned.
    pub fn of(task: &agent_tasks::Model) -> Self {
        Self {
            task: task.id,
            attempt: task.attempts,
        }
    }
}

/// What became of a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptFailed {
    /// Back in the queue, not before this instant.
    Retried { run_after: DateTime<Utc> },
    /// Its attempts are used up: the task is `failed`.
    GaveUp,
}

fn name(field: &'static str, raw: &str) -> Result<String> {
    let ok = !raw.is_empty()
        && raw.len() <= 100
        && raw.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.')
        });
    if !ok {
        return Err(ServiceError::validation(
            field,
            "1 to 100 lowercase letters, digits, '_', '-' or '.'",
        ));
    }
    Ok(raw.to_owned())
}

pub(super) fn bounded_json(field: &'static str, value: Json) -> Result<Json> {
    if value.to_string().len() > MAX_PAYLOAD_BYTES {
        return Err(ServiceError::validation(
            field,
            format!("must be at most {MAX_PAYLOAD_BYTES} bytes of JSON"),
        ));
    }
    Ok(value)
}

/// An error message as stored: trimmed, at most [`MAX_ERROR_CHARS`], never empty.
pub(super) fn error_text(raw: &str) -> String {
    let text: String = raw.trim().chars().take(MAX_ERROR_CHARS).collect();
    if text.is_empty() {
        "unspecified error".to_owned()
    } else {
        text
    }
}

#[cfg(test)]
mod unit {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_are_checked() {
        assert!(NewTask::parse("summarize", json!({})).is_ok());
        for bad in ["", "Summarize", "a b", &"x".repeat(101), "naïve"] {
            assert!(NewTask::parse(bad, json!({})).is_err(), "{bad:?}");
        }
        assert!(WorkerId::parse("host-3:pid-412").is_ok());
        assert!(WorkerId::parse("").is_err());
        assert!(WorkerId::parse("a;DROP TABLE x").is_err());
    }

    #[test]
    fn payloads_and_errors_are_bounded() {
        let big = json!("x".repeat(MAX_PAYLOAD_BYTES));
        assert!(NewTask::parse("a", big).is_err());
        assert_eq!(error_text("  "), "unspecified error");
        assert_eq!(
            error_text(&"é".repeat(3000)).chars().count(),
            MAX_ERROR_CHARS
        );
    }
}
