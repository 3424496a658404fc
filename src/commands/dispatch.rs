//! Dispatch: the guard pipeline every command passes, then execution.
//!
//! lookup → arity → authentication → (later: ACL, MULTI queueing, cluster
//! slot, OOM, read-only replica, loading) → lock the shards the command
//! table says it touches, in ascending order → run the handler (a panic is
//! caught and answered with an error) → record statistics.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use smallvec::SmallVec;

use crate::commands::ctx::{Ctx, Locks};
use crate::commands::spec::{CmdFlags, CommandSpec, KeySpec, LockScope};
use crate::commands::table::{table, CommandEntry, Lookup};
use crate::connection::client::Client;
use crate::protocol::{CmdError, Reply};
use crate::server::{Server, Stats};

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Runs one command for `client` and returns its reply.
pub fn execute(srv: &Server, client: &mut Client, argv: &[Bytes]) -> Reply {
    let entry = match table().lookup(argv) {
        Lookup::Found(e) => e,
        Lookup::Unknown => {
            let name = argv.first().map(|b| &b[..]).unwrap_or(b"");
            return reject(
                srv,
                None,
                CmdError::unknown_command(name, argv.get(1..).unwrap_or(&[])),
            );
        }
        Lookup::UnknownSub(parent) => {
            let sub = argv.get(1).map(|b| &b[..]).unwrap_or(b"");
            return reject(
                srv,
                None,
                CmdError::unknown_subcommand(parent.spec.name, sub),
            );
        }
    };
    if !entry.spec.arity_ok(argv.len()) {
        return reject(srv, Some(entry), CmdError::arity(&entry.full_name));
    }
    if !client.authenticated && !entry.spec.flags.contains(CmdFlags::NO_AUTH) {
        return reject(srv, Some(entry), CmdError::NOAUTH);
    }
    if srv.is_disabled(entry) {
        return reject(
            srv,
            Some(entry),
            CmdError::unknown_command(argv.first().map(|b| &b[..]).unwrap_or(b""), &argv[1..]),
        );
    }
    call(srv, client, entry, argv)
}

fn reject(srv: &Server, entry: Option<&CommandEntry>, e: CmdError) -> Reply {
    if let Some(en) = entry {
        en.stats.record_rejected();
    }
    srv.stats.count_error(&e);
    Reply::Error(e)
}

/// The (db, shard) pairs a command must hold, sorted and deduplicated.
/// Inline storage: the common single-key command allocates nothing.
pub type LockPlan = SmallVec<[(u32, u32); 4]>;

pub fn lock_plan(srv: &Server, db: usize, spec: &CommandSpec, argv: &[Bytes]) -> LockPlan {
    let ks = &srv.keyspace;
    let mut v: LockPlan = SmallVec::new();
    match spec.lock {
        LockScope::Keys => match spec.keys {
            KeySpec::Range { first, last, step } if first > 0 => {
                let argc = argv.len() as i32;
                let last = if last < 0 {
                    argc + last
                } else {
                    last.min(argc - 1)
                };
                let mut i = first;
                while i <= last && i < argc {
                    v.push((db as u32, ks.shard_index(&argv[i as usize]) as u32));
                    i += step.max(1);
                }
            }
            KeySpec::Find(_) => {
                for i in spec.key_positions(argv) {
                    if let Some(k) = argv.get(i) {
                        v.push((db as u32, ks.shard_index(k) as u32));
                    }
                }
            }
            _ => {}
        },
        LockScope::Db => v.extend((0..ks.num_shards() as u32).map(|s| (db as u32, s))),
        LockScope::All => v.extend(
            (0..ks.num_dbs() as u32).flat_map(|d| (0..ks.num_shards() as u32).map(move |s| (d, s))),
        ),
        LockScope::Custom(f) => v.extend(f(srv, db, argv)),
    }
    if v.len() > 1 {
        v.sort_unstable();
        v.dedup();
    }
    v
}

/// Executes a command that passed the guards.
pub fn call(srv: &Server, client: &mut Client, entry: &CommandEntry, argv: &[Bytes]) -> Reply {
    // CLIENT LIST/INFO report the command being run (as Redis does).
    client.info.last_cmd.store(entry.id, Ordering::Relaxed);
    let plan = lock_plan(srv, client.db, entry.spec, argv);
    let start = Instant::now();
    let result = {
        let locks = if plan.is_empty() {
            Locks::none()
        } else {
            Locks::acquire(srv, &plan)
        };
        let mut ctx = Ctx {
            srv,
            now: if client.now > 0 {
                client.now
            } else {
                unix_ms()
            },
            client: &mut *client,
            locks,
            dirty: 0,
        };
        let handler = entry.spec.handler;
        let r = catch_unwind(AssertUnwindSafe(|| handler(&mut ctx, argv)));
        let dirty = ctx.dirty;
        drop(ctx);
        if dirty > 0 {
            srv.stats.dirty.fetch_add(dirty, Ordering::Relaxed);
        }
        r
    };
    let usec = start.elapsed().as_micros() as u64;
    // Blocking: park bookkeeping and serving clients blocked on keys this
    // command made ready (locks are released at this point).
    crate::commands::blocking::after_command(srv, client, argv);
    // A command that blocked is counted once, when it finally completes.
    if client.blocking.waiter.is_none() {
        entry.stats.record_call(usec);
        srv.stats.hot.add(Stats::COMMANDS, 1);
    }
    match result {
        Ok(Ok(reply)) => {
            if let Reply::Error(e) = &reply {
                srv.stats.count_error(e);
            }
            reply
        }
        Ok(Err(e)) => {
            entry.stats.record_failed();
            srv.stats.count_error(&e);
            Reply::Error(e)
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            tracing::error!(command = %entry.full_name, panic = %what, "command panicked; connection kept");
            entry.stats.record_failed();
            srv.stats.count_error(&CmdError::INTERNAL);
            Reply::Error(CmdError::INTERNAL)
        }
    }
}
