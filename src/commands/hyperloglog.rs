//! HyperLogLog commands.
//!
//! Placeholder: the commands land with the hyperloglog work.

use crate::commands::spec::CommandSpec;

pub const SPECS: &[CommandSpec] = &[];
