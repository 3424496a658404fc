//! Set commands.
//!
//! Placeholder: the commands land with the sets work.

use crate::commands::spec::CommandSpec;

pub const SPECS: &[CommandSpec] = &[];
