//! Commands: the declarative table, dispatch, and one file per family.
//! This module only puts families together; it holds no command logic.

pub mod connection;
pub mod ctx;
pub mod dispatch;
pub mod keys;
pub mod server;
pub mod spec;
pub mod strings;
pub mod table;
