//! Hash commands.
//!
//! Placeholder: the commands land with the hashes work.

use crate::commands::spec::CommandSpec;

pub const SPECS: &[CommandSpec] = &[];
