//! Dispatch: the guard pipeline every command passes, then execution.
//!
//! lookup → arity → authentication → (later: ACL, MULTI queueing, cluster
//! slot, OOM, read-only replica, loading) → lock the shards the command
//! table says it touches, in ascending order → run the handler (a panic is
//! caught and answered with an error) → record statistics.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;

use bytes::Bytes;
use smallvec::SmallVec;

use crate::commands::ctx::{Ctx, Locks};
use crate::commands::spec::{CmdFlags, CommandSpec, KeySpec, LockScope};
use crate::commands::table::{CommandEntry, Lookup};
use crate::commands::transaction;
use crate::connection::client::Client;
use crate::protocol::{CmdError, Reply};
use crate::server::monitor::Origin;
use crate::server::{eviction, Server, Stats};

/// The process-wide calibrated TSC clock used to time commands.
fn clock() -> &'static quanta::Clock {
    static CLOCK: std::sync::OnceLock<quanta::Clock> = std::sync::OnceLock::new();
    CLOCK.get_or_init(quanta::Clock::new)
}

/// Calibrates the command clock on a thread of its own, at startup.
/// Calibration spins reading the system clock until the TSC rate settles,
/// which on a busy virtual machine takes up to quanta's 200 ms limit
/// (a profile of startup loading put ~170 ms of the first PING there,
/// against under 1 ms on an idle machine): done lazily,
/// the first client's command waited for it, holding its worker.
pub fn warm_clock() {
    let _ = std::thread::Builder::new()
        .name("cinnabar-clock".into())
        .spawn(|| {
            clock();
        });
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The table entry for `argv`, through the client's one-entry cache of
/// plain (subcommand-less) commands.
#[inline]
fn lookup_cached(srv: &Server, client: &mut Client, argv: &[Bytes]) -> Lookup<'static> {
    let Some(name) = argv.first() else {
        return Lookup::Unknown;
    };
    if let Some(e) = client.cmd_cache.get(name) {
        return Lookup::Found(e);
    }
    let found = srv.lookup_command(argv);
    if let Lookup::Found(e) = found {
        if e.parent.is_none() && !e.spec.is_container() {
            client.cmd_cache.put(name, e);
        }
    }
    found
}

/// Runs one command for `client` and returns its reply.
pub fn execute(srv: &Server, client: &mut Client, argv: &[Bytes]) -> Reply {
    let entry = match lookup_cached(srv, client, argv) {
        Lookup::Found(e) => e,
        Lookup::Unknown => {
            let name = argv.first().map(|b| &b[..]).unwrap_or(b"");
            return reject(
                srv,
                client,
                None,
                CmdError::unknown_command(name, argv.get(1..).unwrap_or(&[])),
            );
        }
        Lookup::UnknownSub(parent) if !srv.is_disabled(parent) => {
            let sub = argv.get(1).map(|b| &b[..]).unwrap_or(b"");
            return reject(
                srv,
                client,
                None,
                CmdError::unknown_subcommand(parent.spec.name, sub),
            );
        }
        Lookup::UnknownSub(parent) => parent,
    };
    // A disabled command looks exactly like one that does not exist (before
    // arity and authentication, as Redis checks unknown commands).
    if srv.is_disabled(entry) {
        let name = argv.first().map(|b| &b[..]).unwrap_or(b"");
        return reject(
            srv,
            client,
            None,
            CmdError::unknown_command(name, argv.get(1..).unwrap_or(&[])),
        );
    }
    if !entry.spec.arity_ok(argv.len()) {
        return reject(srv, client, Some(entry), CmdError::arity(&entry.full_name));
    }
    if auth_refuses(srv, client, entry) {
        return reject(srv, client, Some(entry), CmdError::NOAUTH);
    }
    // ACL: one flag test for a user allowed everything (the default user).
    if client.user.as_ref().is_some_and(|u| !u.unrestricted()) {
        let ctx = if client.multi.is_some() {
            crate::acl::LogContext::Multi
        } else {
            crate::acl::LogContext::Toplevel
        };
        if let Err(d) = crate::commands::acl::check(srv, client, entry, argv, ctx) {
            return reject(srv, client, Some(entry), d.error(entry));
        }
    }
    // Cluster mode: keys served elsewhere are redirected, keys in several
    // slots refused (after ACL, before anything else, as Redis does); the
    // primary's stream and the AOF are obeyed as they come.
    if !client.master && !client.loader {
        let refused = if let Some(cl) = srv.cluster.get() {
            cluster_route(srv, cl, client, entry, argv)
                .map_err(|r| r.error(cl, &srv.config, crate::server::cluster::on_tls(srv, client)))
        } else if srv.enterprise_policy {
            enterprise_cross_slot(client, entry, argv)
        } else {
            Ok(())
        };
        if let Err(e) = refused {
            // A refused EXEC ends its transaction (Redis's discardTransaction).
            if entry.spec.name == "exec" && client.multi.is_some() {
                transaction::discard_state(srv, client);
            }
            return reject(srv, client, Some(entry), e);
        }
    }
    if loading_refuses(srv, client, entry) {
        return reject(srv, client, Some(entry), CmdError::LOADING);
    }
    if subscribed_refuses(client, entry) {
        return reject(
            srv,
            client,
            Some(entry),
            crate::commands::pubsub::subscribed_mode_error(&entry.full_name),
        );
    }
    if crate::scripting::busy() && !entry.spec.flags.contains(CmdFlags::ALLOW_BUSY) {
        return reject_busy(srv, client, entry);
    }
    // While a script holds every shard, eviction would wait for it. The
    // primary's stream is never refused (the replica would diverge).
    if srv.config.maxmemory() > 0 && !crate::scripting::running() && !client.master {
        let is_exec = entry.spec.name == "exec";
        // Scripts that declare flags (shebang, functions) are deny-oom
        // unless they declare allow-oom or no-writes.
        // Inside MULTI every command but EXEC/DISCARD/QUIT/RESET is
        // refused (queueing takes memory), as Redis does.
        let denyoom = entry.spec.flags.contains(CmdFlags::DENYOOM)
            || (is_exec && client.multi.as_ref().is_some_and(|m| m.denyoom))
            || (client.multi.is_some()
                && !matches!(entry.spec.name, "exec" | "discard" | "quit" | "reset"))
            || crate::scripting::declared_cmd_flags(srv, entry.spec.name, argv)
                .is_some_and(|f| f.deny_oom);
        let now = if client.now > 0 {
            client.now
        } else {
            unix_ms()
        };
        let outcome = eviction::perform_evictions(srv, now);
        if denyoom {
            if outcome == eviction::Outcome::Fail {
                return reject_command(srv, client, entry, CmdError::OOM);
            }
            srv.memory
                .note_alloc(argv.iter().map(|a| a.len() as u64 + 16).sum());
        }
    }
    // MISCONF: writes (and an EXEC of queued writes, and PING, so health
    // checks see it) are refused while the data cannot be persisted.
    if let Some(e) = srv
        .persist
        .disk_error(&srv.config)
        .filter(|_| !client.master)
    {
        if entry.spec.flags.contains(CmdFlags::WRITE)
            || entry.spec.name == "ping"
            || (entry.spec.name == "exec"
                && client.multi.as_ref().is_some_and(|m| m.write && !m.aborted))
        {
            return reject_command(srv, client, entry, e);
        }
    }
    // Does the command (an EXEC: its queue; a script: its declared flags)
    // write?
    let writes = || {
        entry.spec.flags.contains(CmdFlags::WRITE)
            || crate::scripting::declared_cmd_flags(srv, entry.spec.name, argv)
                .is_some_and(|f| f.write)
            || (entry.spec.name == "exec"
                && client.multi.as_ref().is_some_and(|m| m.write && !m.aborted))
    };
    // A replica: writes are refused unless `replica-read-only no`, and
    // with the link to the primary down and `replica-serve-stale-data no`
    // only the commands flagged `stale` run (the primary's stream itself
    // is obeyed).
    if srv.repl.is_replica() && !client.master && !client.loader {
        if srv.config.replica_read_only() && writes() {
            return reject_command(srv, client, entry, CmdError::READONLY);
        }
        if !srv.config.replica_serve_stale_data() && !srv.repl.master_link_up() {
            // A script's declared flags replace the command's (only
            // `allow-stale` ones run).
            let stale_ok = match crate::scripting::declared_cmd_flags(srv, entry.spec.name, argv) {
                Some(f) => f.stale,
                None => entry.spec.flags.contains(CmdFlags::STALE),
            };
            let exec_nonstale =
                entry.spec.name == "exec" && client.multi.as_ref().is_some_and(|m| m.nonstale);
            if !stale_ok || exec_nonstale {
                return reject_command(srv, client, entry, CmdError::MASTERDOWN);
            }
        }
    }
    // min-replicas-to-write: on a primary, writes are refused while fewer
    // good replicas are attached.
    if !crate::scripting::enough_replicas(srv) && !srv.repl.is_replica() && writes() {
        return reject_command(srv, client, entry, crate::scripting::NOREPLICAS);
    }
    // A MONITOR connection is a replica to Redis: it may not touch keys.
    if client.info.monitor.load(Ordering::Relaxed)
        && entry
            .spec
            .flags
            .intersects(CmdFlags::READONLY | CmdFlags::WRITE | CmdFlags::MAY_REPLICATE)
    {
        return reject(
            srv,
            client,
            Some(entry),
            CmdError::err("Replica can't interact with the keyspace"),
        );
    }
    // Tracking: keep the table within tracking-table-max-keys before each
    // command (also one that is only queued), as Redis does.
    if srv.tracking.in_use() {
        srv.tracking.enforce_limit(srv);
    }
    if client.multi.is_some() && !transaction::runs_immediately_in_multi(entry.spec.name) {
        if entry.spec.flags.contains(CmdFlags::NO_MULTI) {
            return reject(
                srv,
                client,
                Some(entry),
                CmdError::err("Command not allowed inside a transaction"),
            );
        }
        if let Some(m) = client.multi.as_mut() {
            let declared = crate::scripting::declared_cmd_flags(srv, entry.spec.name, argv);
            m.denyoom |= entry.spec.flags.contains(CmdFlags::DENYOOM)
                || declared.as_ref().is_some_and(|f| f.deny_oom);
            m.write |= entry.spec.flags.contains(CmdFlags::WRITE)
                || declared.as_ref().is_some_and(|f| f.write);
            m.may_replicate |= may_replicate(srv, entry, argv);
            m.nonstale |= !declared
                .as_ref()
                .map_or(entry.spec.flags.contains(CmdFlags::STALE), |f| f.stale);
            m.bytes += argv.iter().map(|a| a.len()).sum::<usize>();
            m.queue.push((entry, argv.to_vec()));
        }
        return Reply::Status("QUEUED");
    }
    call(srv, client, entry, argv)
}

/// The keys of a request: the command's own, or (EXEC) those of every
/// queued command.
fn request_keys<'a>(client: &'a Client, entry: &CommandEntry, argv: &'a [Bytes]) -> Vec<&'a [u8]> {
    if entry.spec.name == "exec" {
        return match &client.multi {
            Some(m) => queued_keys(m).collect(),
            None => Vec::new(),
        };
    }
    entry.spec.key_args(argv).collect()
}

/// The keys of every command queued in a transaction.
fn queued_keys(m: &crate::connection::client::MultiState) -> impl Iterator<Item = &[u8]> {
    m.queue.iter().flat_map(|(e, a)| e.spec.key_args(a))
}

/// Cluster mode's routing of one request (Redis's getNodeByQuery).
fn cluster_route(
    srv: &Server,
    cl: &crate::server::cluster::Cluster,
    client: &Client,
    entry: &CommandEntry,
    argv: &[Bytes],
) -> Result<(), crate::server::cluster::Refusal> {
    let keys = request_keys(client, entry, argv);
    if keys.is_empty() {
        return Ok(());
    }
    let write = if entry.spec.name == "exec" {
        client.multi.as_ref().is_some_and(|m| m.write)
    } else {
        entry.spec.flags.contains(CmdFlags::WRITE)
            || crate::scripting::declared_cmd_flags(srv, entry.spec.name, argv)
                .is_some_and(|f| f.write)
    };
    let shard_pubsub = crate::server::cluster::is_shard_pubsub(entry.spec.name);
    cl.check(&srv.config, keys, write, shard_pubsub).map(|_| ())
}

/// Commands Azure Managed Redis's Enterprise clustering policy lets span
/// hash slots.
const ENTERPRISE_CROSS_SLOT: &[&str] = &["del", "mset", "mget", "exists", "unlink", "touch"];

/// `cluster-policy enterprise`: every other command must keep its keys in
/// one hash slot, and so must a transaction as a whole: the command that
/// queues a key of another slot is refused (so EXEC answers EXECABORT), as
/// Redis Enterprise's proxy refuses it "within MULTI".
fn enterprise_cross_slot(
    client: &Client,
    entry: &CommandEntry,
    argv: &[Bytes],
) -> crate::protocol::CmdResult<()> {
    if entry.spec.name == "exec" {
        return Ok(());
    }
    let queued = client
        .multi
        .as_ref()
        .filter(|_| !transaction::runs_immediately_in_multi(entry.spec.name));
    if queued.is_none() && ENTERPRISE_CROSS_SLOT.contains(&entry.spec.name) {
        return Ok(());
    }
    let all = entry
        .spec
        .key_args(argv)
        .chain(queued.into_iter().flat_map(queued_keys));
    crate::server::cluster::single_slot(all)
        .map(|_| ())
        .map_err(|_| crate::server::cluster::CROSSSLOT)
}

/// Must this command wait for a CLIENT PAUSE to end? Asked by the
/// connection loop before [`execute`] while a pause may be in force. A
/// command refused anyway (unknown, disabled, wrong arity, not
/// authenticated, loading, not allowed in subscribed mode) is answered at
/// once, as Redis answers those before its pause check. Under `WRITE`, the
/// commands held are those that may write or replicate: write and
/// may-replicate commands, scripts unless they declare `no-writes`, and an
/// EXEC whose queue holds such a command.
pub fn must_postpone(srv: &Server, client: &Client, argv: &[Bytes]) -> bool {
    use crate::server::pause::PauseKind;
    let kind = srv.pause.current(unix_ms());
    if kind == PauseKind::Off || client.loader {
        return false;
    }
    let Lookup::Found(entry) = srv.lookup_command(argv) else {
        return false;
    };
    if srv.is_disabled(entry)
        || !entry.spec.arity_ok(argv.len())
        || auth_refuses(srv, client, entry)
        || loading_refuses(srv, client, entry)
        || subscribed_refuses(client, entry)
    {
        return false;
    }
    if kind == PauseKind::All {
        return true;
    }
    if entry.spec.name == "exec" {
        return client.multi.as_ref().is_some_and(|m| m.may_replicate);
    }
    may_replicate(srv, entry, argv)
}

/// NOAUTH: authentication is required and the command needs it.
fn auth_refuses(srv: &Server, client: &Client, entry: &CommandEntry) -> bool {
    !client.authenticated
        && srv.acl.auth_required()
        && !entry.spec.flags.contains(CmdFlags::NO_AUTH)
}

/// -LOADING: the dataset is loading and the command may not run meanwhile
/// (while a replica loads aside, only the `no-async-loading` commands, and
/// an EXEC that queued one, are refused).
fn loading_refuses(srv: &Server, client: &Client, entry: &CommandEntry) -> bool {
    if client.loader {
        return false;
    }
    if srv.persist.async_loading() {
        let denied = |e: &CommandEntry| e.spec.flags.contains(CmdFlags::NO_ASYNC_LOADING);
        return denied(entry)
            || (entry.spec.name == "exec"
                && client
                    .multi
                    .as_ref()
                    .is_some_and(|m| m.queue.iter().any(|(e, _)| denied(e))));
    }
    srv.persist.loading() && !entry.spec.flags.contains(CmdFlags::LOADING)
}

/// A RESP2 client in subscribed mode may only run the pub/sub commands.
fn subscribed_refuses(client: &Client, entry: &CommandEntry) -> bool {
    client.resp == 2
        && client.pubsub.active()
        && !crate::commands::pubsub::allowed_in_subscribed_mode(entry.spec.name)
}

/// Whether a command may change data or feed the replication stream
/// (what CLIENT PAUSE WRITE holds): a script that declares its flags is
/// judged by them (`no-writes` or not), anything else by its table flags.
pub fn may_replicate(srv: &Server, entry: &CommandEntry, argv: &[Bytes]) -> bool {
    match crate::scripting::declared_cmd_flags(srv, entry.spec.name, argv) {
        Some(f) => f.write,
        None => entry
            .spec
            .flags
            .intersects(CmdFlags::WRITE.union(CmdFlags::MAY_REPLICATE)),
    }
}

/// Answers a command refused before execution; inside MULTI the refusal
/// also dooms the transaction (EXEC then answers EXECABORT), as in Redis.
fn reject(srv: &Server, client: &mut Client, entry: Option<&CommandEntry>, e: CmdError) -> Reply {
    if let Some(en) = entry {
        en.stats.record_rejected();
    }
    if let Some(m) = client.multi.as_mut() {
        m.aborted = true;
    }
    srv.stats.count_error(&e);
    Reply::Error(e)
}

/// Refuses a command before it runs (Redis's rejectCommand): an EXEC so
/// refused also ends its transaction, answering `-EXECABORT … <error>`.
fn reject_command(srv: &Server, client: &mut Client, entry: &CommandEntry, e: CmdError) -> Reply {
    if entry.spec.name == "exec" && client.multi.is_some() {
        transaction::discard_state(srv, client);
        let e = CmdError::new(format!(
            "EXECABORT Transaction discarded because of: {}",
            e.as_str()
        ));
        return reject(srv, client, Some(entry), e);
    }
    reject(srv, client, Some(entry), e)
}

/// `-BUSY` for a command refused while a script runs past
/// `busy-reply-threshold` (an EXEC gets `-EXECABORT … BUSY …`).
pub fn reject_busy(srv: &Server, client: &mut Client, entry: &CommandEntry) -> Reply {
    reject_command(srv, client, entry, crate::scripting::busy_error())
}

/// The (db, shard) pairs a command must hold, sorted and deduplicated.
/// Inline storage: the common single-key command allocates nothing.
pub type LockPlan = SmallVec<[(u32, u32); 4]>;

pub fn lock_plan(srv: &Server, db: usize, spec: &CommandSpec, argv: &[Bytes]) -> LockPlan {
    let mut v = LockPlan::new();
    lock_plan_into(srv, db, spec, argv, &mut v);
    v
}

/// [`lock_plan`] into `v` (empty): the per-command path keeps the plan
/// where it is built (returning it by value showed up as 1% of the
/// server's CPU in a profile of pipelined GETs).
pub fn lock_plan_into(
    srv: &Server,
    db: usize,
    spec: &CommandSpec,
    argv: &[Bytes],
    v: &mut LockPlan,
) {
    let ks = &srv.keyspace;
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
            KeySpec::Find { .. } => {
                for i in spec.key_positions(argv) {
                    if let Some(k) = argv.get(i) {
                        v.push((db as u32, ks.shard_index(k) as u32));
                    }
                }
            }
            _ => {}
        },
        LockScope::Db => v.extend((0..ks.num_shards() as u32).map(|s| (db as u32, s))),
        LockScope::All => v.extend(ks.all_shards()),
        LockScope::Custom(f) => v.extend(f(srv, db, argv)),
        LockScope::OnDemand => {}
    }
    if v.len() > 1 {
        v.sort_unstable();
        v.dedup();
    }
}

/// Executes a command that passed the guards.
pub fn call(srv: &Server, client: &mut Client, entry: &CommandEntry, argv: &[Bytes]) -> Reply {
    // CLIENT LIST/INFO report the command being run (as Redis does).
    client.info.last_cmd.store(entry.id, Ordering::Relaxed);
    sync_expired_recording(srv);
    let mut plan = LockPlan::new();
    lock_plan_into(srv, client.db, entry.spec, argv, &mut plan);
    let mut ctx = Ctx {
        srv,
        now: if client.now > 0 {
            client.now
        } else {
            unix_ms()
        },
        client: &mut *client,
        locks: Locks::none(),
        dirty: 0,
        prop: Vec::new(),
        rewrite: None,
        in_script: false,
    };
    // The guards go straight into the context (see ctx::acquire_into).
    if matches!(entry.spec.lock, LockScope::OnDemand) {
        ctx.locks.make_lazy(srv);
    } else if !plan.is_empty() && !ctx.locks.take_unless_busy(srv, &plan) {
        drop(ctx);
        return reject_busy(srv, client, entry);
    }
    let script_first = feed_script_first(srv, ctx.client, entry, argv);
    let (result, nanos) = invoke(&mut ctx, entry, argv);
    ctx.flush_expired();
    if srv.tracking.in_use() {
        crate::server::tracking::after_command(&mut ctx, entry, argv, succeeded(&result), false);
    }
    let dirty = ctx.dirty;
    if dirty > 0
        && !ctx.client.master
        && srv.repl.is_replica()
        && entry.spec.flags.contains(CmdFlags::WRITE)
    {
        // A writable replica's own writes: it expires these keys itself.
        srv.repl.note_own_keys(
            ctx.client.db,
            entry
                .spec
                .key_positions(argv)
                .into_iter()
                .filter_map(|i| argv.get(i).map(crate::util::detach)),
        );
    }
    // (What the AOF loader replays is already in the stream's files.)
    if ctx.client.master && ctx.client.multi.is_none() {
        // The primary's stream: its bytes for this command (a whole
        // transaction at its EXEC) go to our backlog with the records.
        let raw = std::mem::take(&mut ctx.client.master_raw);
        let end = srv.feed.emit_proxied(&ctx.prop, &raw);
        ctx.client.durable_upto = end.aof;
    } else if !ctx.prop.is_empty() && !ctx.client.loader {
        // Appended under the command's locks: the stream's order is the
        // keyspace's order.
        let end = srv.feed.emit(&ctx.prop);
        ctx.client.durable_upto = end.aof;
        if end.repl > 0 {
            ctx.client.repl_off = end.repl;
        }
    }
    drop(ctx);
    if dirty > 0 {
        srv.stats.dirty.fetch_add(dirty, Ordering::Relaxed);
    }
    // Blocking: park bookkeeping and serving clients blocked on keys this
    // command made ready (locks are released at this point).
    crate::commands::blocking::after_command(srv, client, argv);
    if client.tracking.caching || srv.tracking.in_use() {
        crate::server::tracking::after_top_level(srv, client, entry);
    }
    if !script_first {
        feed_monitors(srv, client, Some(entry), argv, false);
    }
    // A command that blocked is counted once, when it finally completes.
    if client.blocking.waiter.is_none() {
        note_latency(srv, entry, nanos);
        srv.stats.hot.add(Stats::COMMANDS, 1);
        note_slow(srv, client, entry, argv, nanos / 1000);
    } else {
        client.redacted.clear();
    }
    finish(srv, entry, result)
}

/// Counts a call with its duration (command statistics, and its latency
/// histogram under `latency-tracking`) and, past
/// `latency-monitor-threshold`, records a `command` / `fast-command`
/// latency event.
#[inline]
fn note_latency(srv: &Server, entry: &CommandEntry, nanos: u64) {
    entry.record_call(nanos, srv.config.latency_tracking());
    let event = if entry.spec.flags.contains(CmdFlags::FAST) {
        "fast-command"
    } else {
        "command"
    };
    srv.latency.add_if_needed(
        srv.config.latency_monitor_threshold(),
        event,
        nanos / 1_000_000,
    );
}

/// Shows a command that ran to the MONITOR clients (not admin or
/// Scripts (EVAL/EVALSHA/FCALL …) are shown to monitors before the
/// commands they run, as Redis feeds them from their handlers: feeds one
/// now and says so; the caller then skips the usual feed after the command.
#[inline]
fn feed_script_first(
    srv: &Server,
    client: &mut Client,
    entry: &CommandEntry,
    argv: &[Bytes],
) -> bool {
    let first =
        srv.monitors.any() && crate::scripting::is_script_command(entry.spec.name.as_bytes());
    if first {
        feed_monitors(srv, client, None, argv, false);
    }
    first
}

/// skip_monitor ones, nor what the AOF loader replays; `entry` None: a
/// script shown before it runs), sensitive arguments redacted.
#[inline]
fn feed_monitors(
    srv: &Server,
    client: &mut Client,
    entry: Option<&CommandEntry>,
    argv: &[Bytes],
    from_script: bool,
) {
    if !srv.monitors.any()
        || client.loader
        || entry.is_some_and(|e| {
            e.spec
                .flags
                .intersects(CmdFlags::ADMIN | CmdFlags::SKIP_MONITOR)
        })
    {
        return;
    }
    let origin = if from_script {
        Origin::Script
    } else {
        Origin::Client(&client.info.addr)
    };
    let own = client
        .info
        .monitor
        .load(Ordering::Relaxed)
        .then_some(client.id);
    let line = srv
        .monitors
        .feed(&srv.config, client.db, origin, argv, &client.redacted, own);
    if own.is_some() {
        // After this command's reply (with what else follows replies).
        client.tracking.pending.extend_from_slice(&line);
    }
}

/// Offers a finished command to the slow log (and forgets the arguments
/// it redacted).
#[inline]
fn note_slow(srv: &Server, client: &mut Client, entry: &CommandEntry, argv: &[Bytes], usec: u64) {
    let threshold = srv.config.slowlog_log_slower_than();
    if threshold >= 0
        && usec as i64 >= threshold
        && !entry.spec.flags.contains(CmdFlags::SKIP_SLOWLOG)
    {
        let max = srv.config.slowlog_max_len();
        srv.slowlog.push(max, client, argv, &client.redacted, usec);
    }
    if !client.redacted.is_empty() {
        client.redacted.clear();
    }
}

/// Runs one command's handler in an existing context (its locks already
/// held) and records its statistics. EXEC calls this for each queued
/// command under the transaction's locks (where nothing blocks).
pub fn run_in_ctx(
    ctx: &mut Ctx<'_>,
    entry: &CommandEntry,
    argv: &[Bytes],
    from_script: bool,
) -> Reply {
    // (A script queued in a transaction is shown first too.)
    let script_first = !from_script && feed_script_first(ctx.srv, ctx.client, entry, argv);
    let (result, nanos) = invoke(ctx, entry, argv);
    ctx.flush_expired();
    if ctx.srv.tracking.in_use() {
        crate::server::tracking::after_command(ctx, entry, argv, succeeded(&result), true);
    }
    note_latency(ctx.srv, entry, nanos);
    ctx.srv.stats.hot.add(Stats::COMMANDS, 1);
    if !script_first {
        feed_monitors(ctx.srv, ctx.client, Some(entry), argv, from_script);
    }
    note_slow(ctx.srv, ctx.client, entry, argv, nanos / 1000);
    finish(ctx.srv, entry, result)
}

/// Keeps the storage layer's event recording (lazy `expired`, `new`,
/// `keymiss`) in step with `notify-keyspace-events`: a class is recorded
/// only while it is on together with K or E.
fn sync_expired_recording(srv: &Server) {
    use crate::config::notify;
    let f = srv.config.notify_keyspace_events();
    let want = if f & (notify::KEYSPACE | notify::KEYEVENT) != 0 {
        f & (notify::EXPIRED | notify::NEW | notify::KEY_MISS)
    } else {
        0
    };
    // Lazily expired keys are also recorded while the propagation stream is
    // on (they are propagated as DEL).
    let want = if srv.feed.active() {
        want | notify::EXPIRED
    } else {
        want
    };
    let flag = &crate::storage::shard::RECORD_EVENTS;
    if flag.load(Ordering::Relaxed) != want {
        flag.store(want, Ordering::Relaxed);
    }
}

type Outcome = std::thread::Result<crate::protocol::CmdResult>;

/// Did the handler answer without an error?
fn succeeded(r: &Outcome) -> bool {
    matches!(r, Ok(Ok(reply)) if !matches!(reply, Reply::Error(_)))
}

/// Runs the handler, catching a panic; returns its outcome and duration
/// (ns).
///
/// The duration normally runs from just before the handler to just after
/// it. Reading the clock cost 3.5% of the server's CPU per reading in a
/// profile of pipelined GETs (`rdtsc` is slow on virtual machines), so a
/// connection running a batch of commands without waiting in between
/// hands each command the previous one's end as its start
/// (`Client::clock_mark`): one reading per command, and the time between
/// two commands of a batch (parsing, lookup, locking, encoding the reply)
/// counts towards the second.
#[inline(always)]
fn invoke(ctx: &mut Ctx<'_>, entry: &CommandEntry, argv: &[Bytes]) -> (Outcome, u64) {
    let clock = clock();
    let start = match std::mem::take(&mut ctx.client.clock_mark) {
        0 => clock.raw(),
        mark => mark,
    };
    let handler = entry.spec.handler;
    let dirty_before = ctx.dirty;
    let outer_rewrite = ctx.rewrite.take();
    let watched = crate::server::watchdog::enter(
        entry.parent.map(|p| p.name),
        entry.spec.name,
        ctx.client.id,
    );
    let result = catch_unwind(AssertUnwindSafe(|| handler(ctx, argv)));
    drop(watched);
    let end = clock.raw();
    let nanos = clock.delta_as_nanos(start, end);
    ctx.client.last_end = end;
    if ctx.dirty > dirty_before {
        if ctx.srv.blocking.blocked_clients() > 0 {
            signal_written_keys(ctx, entry, argv);
        }
        if ctx.srv.feed.active() {
            record(ctx, entry, argv);
        }
    }
    ctx.rewrite = outer_rewrite;
    (result, nanos)
}

/// Adds the records of a command that changed data to the context's
/// propagation list: the handler's rewrite if it gave one, else the argv
/// of a write command. Lazily expired keys go first (their DELs precede
/// the command that found them). Commands that are not writes (EXEC, EVAL)
/// propagate only what the commands they ran recorded.
fn record(ctx: &mut Ctx<'_>, entry: &CommandEntry, argv: &[Bytes]) {
    ctx.flush_expired();
    let db = ctx.client.db;
    // All consumers, unless a script chose otherwise (`redis.set_repl`).
    let to = crate::server::propagate::current_targets();
    if to == 0 {
        ctx.rewrite = None;
        return;
    }
    match ctx.rewrite.take() {
        Some(list) => {
            for cmd in list {
                ctx.prop.push((db, cmd, to));
            }
        }
        None if entry.spec.flags.contains(CmdFlags::WRITE) => {
            // Slices of the request (refcounts, no copy): the records are
            // encoded and dropped before the command returns.
            ctx.prop.push((db, argv.to_vec(), to));
        }
        None => {}
    }
}

/// A write that changed a key an XREADGROUP blocks on wakes it (Redis
/// signals a stream key ready when it is overwritten or deleted): the
/// re-run learns that its stream was deleted or replaced. FLUSHDB/FLUSHALL
/// wake every waiter of the database (re-runs find their keys missing).
fn signal_written_keys(ctx: &mut Ctx<'_>, entry: &CommandEntry, argv: &[Bytes]) {
    if !entry.spec.flags.contains(CmdFlags::WRITE) {
        return;
    }
    match entry.spec.lock {
        LockScope::Db | LockScope::All => {
            let db = ctx.client.db as u32;
            ctx.signal_blocked_keys_of_db(db);
        }
        _ => {
            let db = ctx.client.db as u32;
            for i in entry.spec.key_positions(argv) {
                if let Some(k) = argv.get(i) {
                    if ctx.srv.blocking.has_waiter_running(db, k, "xreadgroup") {
                        ctx.signal_ready(k);
                    }
                }
            }
        }
    }
}

/// Turns a handler outcome into the reply, counting errors; a panic is
/// logged and answered with an error (the connection and server go on).
fn finish(srv: &Server, entry: &CommandEntry, result: Outcome) -> Reply {
    match result {
        Ok(Ok(reply)) => {
            if let Reply::Error(e) = &reply {
                srv.stats.count_error(e);
            }
            reply
        }
        Ok(Err(e)) => {
            entry.stats.record_failed();
            // A script's error from a command it called was counted then.
            if !crate::scripting::take_error_counted() {
                srv.stats.count_error(&e);
            }
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
