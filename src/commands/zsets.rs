//! Sorted set commands.
//!
//! Placeholder: the commands land with the zsets work.

use crate::commands::spec::CommandSpec;

pub const SPECS: &[CommandSpec] = &[];
