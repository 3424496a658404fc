//! The wire protocol: request parsing, typed replies and errors.
//! Depends on nothing else in the crate but `util`.

pub mod args;
pub mod codec;
pub mod error;
pub mod reply;

pub use error::{CmdError, CmdResult};
pub use reply::Reply;
