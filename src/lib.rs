//! # Cinnabar
//!
//! A Redis-protocol-compatible in-memory data server.
//!
//! ## The life of a command
//! 1. [`server::listener`] accepts a TCP connection and spawns
//!    [`connection::serve`], one tokio task per client.
//! 2. The task reads into a buffer; [`protocol::codec::RequestParser`] yields
//!    every complete command (RESP multibulk or inline), enforcing the bulk,
//!    multibulk and query-buffer limits.
//! 3. [`commands::dispatch::execute`] looks the name up in the declarative
//!    command table ([`commands::table`]), checks arity and authentication,
//!    computes the set of shards the command touches from its key spec,
//!    locks them in ascending order, and runs the handler.
//! 4. The handler (one file per family under [`commands`]) works on the
//!    locked [`storage::Shard`]s and returns a typed [`protocol::Reply`] or
//!    a [`protocol::CmdError`] carrying Redis's exact text.
//! 5. The connection encodes the reply for the client's protocol (RESP2 or
//!    RESP3) into its output buffer; after the whole batch read from the
//!    socket is executed, one write flushes every reply.
//!
//! See ARCHITECTURE.md for the module map and the decisions behind it.

pub mod acl;
pub mod commands;
pub mod config;
pub mod connection;
pub mod devcert;
pub mod entra;
pub mod functions;
pub mod lua_libs;
pub mod persistence;
pub mod protocol;
pub mod scripting;
pub mod server;
pub mod storage;
pub mod util;

/// The Redis version whose semantics Cinnabar implements (reported as
/// `redis_version`, because client libraries choose features by it).
pub const REDIS_VERSION: &str = "7.0.15";
