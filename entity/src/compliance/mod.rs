//! Privacy compliance: policy versions and consent history, erasable subject keys,
//! requests to be erased, cross-region transfers and security incidents.

pub mod consent_records;
pub mod data_residency_log;
pub mod deletion_requests;
pub mod privacy_policies;
pub mod security_incidents;
pub mod subject_keys;
