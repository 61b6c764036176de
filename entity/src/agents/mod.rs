//! The agent task queue: tasks for a tenant's agents, and the result of each attempt.

pub mod agent_results;
pub mod agent_tasks;
