//! Commands: the declarative table, dispatch, and one file per family.
//! This module only puts families together; it holds no command logic.

pub mod acl;
pub mod azure;
pub mod bitmaps;
pub mod blocking;
pub mod cluster;
pub mod connection;
pub mod ctx;
pub mod dispatch;
pub mod functions;
pub mod geo;
pub mod hashes;
pub mod hyperloglog;
pub mod keys;
pub mod latency;
pub mod lists;
pub mod lolwut;
pub mod memory;
pub mod migrate;
pub mod persist;
pub mod pubsub;
pub mod replication;
pub mod scripting;
pub mod server;
pub mod sets;
pub mod slowlog;
pub mod sort;
pub mod spec;
pub mod streams;
pub mod strings;
pub mod table;
pub mod tracking;
pub mod transaction;
pub mod zsets;
