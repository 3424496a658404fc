//! Transaction commands.
//!
//! Placeholder: the commands land with the transaction work.

use crate::commands::spec::CommandSpec;

pub const SPECS: &[CommandSpec] = &[];
