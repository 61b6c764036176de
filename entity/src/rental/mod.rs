//! Rental listings.

pub mod properties;
