//! SORT / SORT_RO commands.
//!
//! Placeholder: the commands land with the sort work.

use crate::commands::spec::CommandSpec;

pub const SPECS: &[CommandSpec] = &[];
