//! Geospatial commands.
//!
//! Placeholder: the commands land with the geo work.

use crate::commands::spec::CommandSpec;

pub const SPECS: &[CommandSpec] = &[];
