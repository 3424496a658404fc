//! Transactions: MULTI EXEC DISCARD WATCH UNWATCH.
//!
//! Queueing happens in dispatch (`dispatch::execute`): while a client is in
//! MULTI, every command except EXEC/DISCARD/MULTI/WATCH/QUIT/RESET passes the
//! queue-time checks (unknown command, arity, authentication, `no-multi`) and
//! is stored; a failed check marks the transaction aborted (EXECABORT).
//!
//! EXEC computes the union of the lock plans of every queued command (the
//! same plans dispatch uses one command at a time, following SELECTs inside
//! the transaction), acquires it once in ascending (db, shard) order, checks
//! the WATCH flag under those locks, and runs the commands back to back with
//! one context: no other client can observe part of the transaction, also
//! when its keys live on different shards or databases.
//!
//! WATCH registers a shared flag on each key in the shard that owns it; any
//! change to the key (write, delete, expiry, eviction, FLUSHDB/FLUSHALL,
//! SWAPDB) sets the flag. Checking it after EXEC has locked its shards makes
//! the check and the execution one atomic step.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use crate::commands::ctx::{Ctx, Locks};
use crate::commands::dispatch::{lock_plan, run_in_ctx, LockPlan};
use crate::commands::spec::{cmd, Acl, CmdFlags as F, CommandSpec, LockScope};
use crate::connection::client::{Client, MultiState};
use crate::protocol::args::int_arg;
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::server::Server;

const T: Acl = Acl::TRANSACTION;
const BASE: F = F::NOSCRIPT.union(F::LOADING).union(F::STALE);
const FAST: F = BASE.union(F::FAST).union(F::ALLOW_BUSY);

pub const SPECS: &[CommandSpec] = &[
    cmd("multi", 1, FAST, multi)
        .acl(T)
        .doc("transactions", "1.2.0", "Starts a transaction."),
    cmd("exec", 1, BASE.union(F::SKIP_SLOWLOG), exec)
        .acl(T)
        .doc(
            "transactions",
            "1.2.0",
            "Executes all commands in a transaction.",
        ),
    cmd("discard", 1, FAST, discard)
        .acl(T)
        .doc("transactions", "2.0.0", "Discards a transaction."),
    cmd("watch", -2, FAST, watch).keys(1, -1, 1).acl(T).doc(
        "transactions",
        "2.2.0",
        "Monitors changes to keys to determine the execution of a transaction.",
    ),
    cmd("unwatch", 1, FAST, unwatch).acl(T).doc(
        "transactions",
        "2.2.0",
        "Forgets about watched keys of a transaction.",
    ),
];

/// Commands a client in MULTI runs at once instead of queueing.
pub fn runs_immediately_in_multi(name: &str) -> bool {
    matches!(
        name,
        "exec" | "discard" | "multi" | "watch" | "quit" | "reset"
    )
}

/// Unregisters every WATCH of `client`, locking one shard at a time. Must be
/// called with no shard lock held by the caller.
pub fn unwatch_all(srv: &Server, client: &mut Client) {
    client.watched_bytes = 0;
    let Some(flag) = client.watch_flag.take() else {
        client.watched.clear();
        return;
    };
    for (db, key) in client.watched.drain(..) {
        if let Some(d) = srv.keyspace.db(db as usize) {
            let sh = srv.keyspace.shard_index(&key);
            d.shard(sh).lock().unwatch(&key, &flag);
        }
    }
}

/// Leaves MULTI state and forgets watches (DISCARD, RESET, disconnect).
pub fn discard_state(srv: &Server, client: &mut Client) {
    client.multi = None;
    unwatch_all(srv, client);
}

/// ```text
/// MULTI
/// ```
fn multi(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    if ctx.client.multi.is_some() {
        return Err(CmdError::err("MULTI calls can not be nested"));
    }
    ctx.client.multi = Some(MultiState::default());
    Ok(Reply::OK)
}

/// ```text
/// DISCARD
/// ```
fn discard(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    if ctx.client.multi.is_none() {
        return Err(CmdError::err("DISCARD without MULTI"));
    }
    discard_state(ctx.srv, ctx.client);
    Ok(Reply::OK)
}

/// ```text
/// WATCH key [key ...]
/// ```
fn watch(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    if ctx.client.multi.is_some() {
        return Err(CmdError::err("WATCH inside MULTI is not allowed"));
    }
    let flag = ctx
        .client
        .watch_flag
        .get_or_insert_with(|| Arc::new(AtomicBool::new(false)))
        .clone();
    let db = ctx.client.db as u32;
    let now = ctx.now;
    for key in &argv[1..] {
        if ctx.client.watched.iter().any(|(d, k)| *d == db && k == key) {
            continue;
        }
        let sh = ctx.shard(key)?;
        // Expire a logically dead key now, so its later removal does not
        // count as a change (Redis treats an already-expired key as absent).
        sh.contains(key, now);
        sh.watch(key, &flag);
        ctx.client.watched_bytes += key.len();
        ctx.client.watched.push((db, crate::util::detach(key)));
    }
    Ok(Reply::OK)
}

/// ```text
/// UNWATCH
/// ```
fn unwatch(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    // Inside EXEC the transaction's locks are held and EXEC unwatches
    // everything right after, so there is nothing to do there.
    if ctx.locks.is_empty() {
        unwatch_all(ctx.srv, ctx.client);
    }
    Ok(Reply::OK)
}

/// ```text
/// EXEC
/// ```
fn exec(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    let Some(state) = ctx.client.multi.take() else {
        return Err(CmdError::err("EXEC without MULTI"));
    };
    if state.aborted {
        unwatch_all(ctx.srv, ctx.client);
        return Err(CmdError::from_static(
            "EXECABORT Transaction discarded because of previous errors.",
        ));
    }
    let srv = ctx.srv;
    // Union of every queued command's lock plan, following SELECTs.
    let mut plan = LockPlan::new();
    let mut db = ctx.client.db;
    for (entry, argv) in &state.queue {
        plan.extend(lock_plan(srv, db, entry.spec, argv));
        if entry.spec.name == "select" {
            if let Some(n) = argv.get(1).and_then(|a| int_arg(a).ok()) {
                if n >= 0 && (n as usize) < srv.keyspace.num_dbs() {
                    db = n as usize;
                }
            }
        }
    }
    // The watched keys' shards too: EXEC looks at them (below).
    for (wdb, key) in &ctx.client.watched {
        plan.push((*wdb, srv.keyspace.shard_index(key) as u32));
    }
    plan.sort_unstable();
    plan.dedup();
    ctx.locks = match Locks::acquire_unless_busy(srv, &plan) {
        Some(mut l) => {
            if state
                .queue
                .iter()
                .any(|(e, _)| matches!(e.spec.lock, LockScope::OnDemand))
            {
                l.make_lazy(srv);
            }
            l
        }
        None => {
            // A script passed busy-reply-threshold while EXEC waited.
            unwatch_all(srv, ctx.client);
            return Err(CmdError::new(format!(
                "EXECABORT Transaction discarded because of: {}",
                crate::scripting::busy_error().as_str()
            )));
        }
    };
    // A watched key that has expired since WATCH (past its deadline, not
    // yet removed) fails the transaction, as Redis's isWatchedKeyExpired:
    // expiring it now touches its watchers. (A key already expired at
    // WATCH time was removed then, so it counts as absent.)
    let watched = std::mem::take(&mut ctx.client.watched);
    let now = ctx.now;
    for (wdb, key) in &watched {
        if let Ok(sh) = ctx.shard_in(*wdb, key) {
            sh.contains(key, now);
        }
    }
    ctx.client.watched = watched;
    let touched = ctx
        .client
        .watch_flag
        .as_ref()
        .is_some_and(|f| f.load(Ordering::Acquire));
    let reply = if touched {
        Reply::NullArray
    } else {
        let mut replies = Vec::with_capacity(state.queue.len());
        // Blocking commands answer at once inside a transaction; clients
        // blocked on keys it fills are served after it (see dispatch::call).
        ctx.client.deny_blocking = true;
        for (entry, argv) in &state.queue {
            ctx.client.info.last_cmd.store(entry.id, Ordering::Relaxed);
            if let Some(denied) = crate::commands::acl::exec_check(srv, ctx.client, entry, argv) {
                replies.push(denied);
                continue;
            }
            replies.push(run_in_ctx(ctx, entry, argv, false));
        }
        ctx.client.deny_blocking = false;
        Reply::Array(replies)
    };
    ctx.locks = Locks::none();
    unwatch_all(srv, ctx.client);
    Ok(reply)
}
