//! Stream commands.
//!
//! Placeholder: the commands land with the streams work.

use crate::commands::spec::CommandSpec;

pub const SPECS: &[CommandSpec] = &[];
