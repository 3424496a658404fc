//! Pub/Sub commands.
//!
//! Placeholder: the commands land with the pubsub work.

use crate::commands::spec::CommandSpec;

pub const SPECS: &[CommandSpec] = &[];
