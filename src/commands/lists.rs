//! List commands.
//!
//! Placeholder: the commands land with the lists work.

use crate::commands::spec::CommandSpec;

pub const SPECS: &[CommandSpec] = &[];
