//! Small helpers with no dependencies on the rest of the crate.

pub mod float;
pub mod geohash;
pub mod glob;
pub mod hll;
pub mod ldouble;
pub mod repr;
