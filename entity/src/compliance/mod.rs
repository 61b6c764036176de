//! Privacy compliance: policy versions and consent history, erasable subject keys, and
//! requests to be erased.

pub mod consent_records;
pub mod deletion_requests;
pub mod privacy_policies;
pub mod subject_keys;
