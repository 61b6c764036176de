//! Protected records: a subject's records, their earlier versions, and the grants
//! that let others open them.

pub mod access_grants;
pub mod record_versions;
pub mod records;
