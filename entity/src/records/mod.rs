//! Protected records: a subject's records, their earlier versions, and the grants
//! that let others open them.

pub mod access_grants;
pub mod record_versions;
// The table is `records`, in the domain of the same name: one module per table.
#[allow(clippy::module_inception)]
pub mod records;
