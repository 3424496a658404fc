//! Bitmap commands.
//!
//! Placeholder: the commands land with the bitmaps work.

use crate::commands::spec::CommandSpec;

pub const SPECS: &[CommandSpec] = &[];
