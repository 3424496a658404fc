//! Server commands: INFO CONFIG COMMAND TIME DEBUG SHUTDOWN.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use crate::commands::connection::help_reply;
use crate::commands::ctx::Ctx;
use crate::commands::spec::{cmd, container, Acl, CmdFlags as F, CommandSpec, KeySpec, LockScope};
use crate::commands::table::{table, CommandEntry, Lookup};
use crate::protocol::args::{eq_ic, Args};
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::server::Server;
use crate::util::glob::glob_match;

const ADM: F = F::ADMIN
    .union(F::NOSCRIPT)
    .union(F::LOADING)
    .union(F::STALE);
const CMDF: F = F::LOADING.union(F::STALE);

pub const SPECS: &[CommandSpec] = &[
    cmd("info", -1, F::LOADING.union(F::STALE), info)
        .acl(Acl::DANGEROUS)
        .doc(
            "server",
            "1.0.0",
            "Returns information and statistics about the server.",
        ),
    cmd("monitor", 1, ADM, monitor).doc(
        "server",
        "1.0.0",
        "Listens for all requests received by the server in real-time.",
    ),
    container("config", CONFIG_SUBS).doc(
        "server",
        "2.0.0",
        "A container for server configuration commands.",
    ),
    container("command", COMMAND_SUBS_LIST)
        .flags(CMDF)
        .acl(Acl::CONNECTION)
        .arity(-1)
        .handler(command_bare)
        .doc(
            "server",
            "2.8.13",
            "Returns detailed information about all commands.",
        ),
    cmd("time", 1, F::LOADING.union(F::STALE).union(F::FAST), time).doc(
        "server",
        "2.6.0",
        "Returns the server time.",
    ),
    // Redis lists DEBUG as one command (no subcommand entries).
    cmd("debug", -2, ADM, debug)
        .lock(LockScope::Custom(debug_locks))
        .doc("server", "1.0.0", "A container for debugging commands."),
    container("module", MODULE_SUBS).doc("server", "4.0.0", "A container for module commands."),
    cmd(
        "shutdown",
        -1,
        ADM.union(F::ALLOW_BUSY).union(F::NO_MULTI),
        shutdown,
    )
    .doc(
        "server",
        "1.0.0",
        "Synchronously saves the database(s) to disk and shuts down the Redis server.",
    ),
];

/// Cinnabar loads no Redis modules (they link against Redis's own module
/// API), so MODULE has only what is true without one: an empty list.
/// LOAD, LOADEX and UNLOAD stay unknown subcommands.
const MODULE_SUBS: &[CommandSpec] = &[
    cmd("list", 2, F::ADMIN.union(F::NOSCRIPT), module_list).doc(
        "server",
        "4.0.0",
        "Returns all loaded modules.",
    ),
    cmd("help", 2, CMDF, module_help).doc(
        "server",
        "5.0.0",
        "Returns helpful text about the different subcommands.",
    ),
];

/// `MODULE LIST`: no module is ever loaded.
fn module_list(_ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    Ok(Reply::Array(Vec::new()))
}

fn module_help(_ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    Ok(help_reply(
        "MODULE",
        &[
            "LIST",
            "    Return a list of loaded modules (Cinnabar loads none).",
        ],
    ))
}

const CONFIG_SUBS: &[CommandSpec] = &[
    cmd("get", -3, ADM, config_get).doc(
        "server",
        "2.0.0",
        "Returns the effective values of configuration parameters.",
    ),
    cmd("set", -4, ADM, config_set).doc(
        "server",
        "2.0.0",
        "Sets configuration parameters in-flight.",
    ),
    cmd("resetstat", 2, ADM, config_resetstat).doc(
        "server",
        "2.0.0",
        "Resets the server's statistics.",
    ),
    cmd("rewrite", 2, ADM, config_rewrite).doc(
        "server",
        "2.8.0",
        "Persists the effective configuration to file.",
    ),
    cmd("help", 2, CMDF, config_help).doc(
        "server",
        "5.0.0",
        "Returns helpful text about the different subcommands.",
    ),
];

/// `COMMAND <sub>` goes through the container; bare `COMMAND` runs the
/// container's own handler, [`command_bare`].
const COMMAND_SUBS_LIST: &[CommandSpec] = &[
    cmd("count", 2, CMDF, command_count)
        .acl(Acl::CONNECTION)
        .doc("server", "2.8.13", "Returns a count of commands."),
    cmd("info", -2, CMDF, command_info)
        .acl(Acl::CONNECTION)
        .doc(
            "server",
            "2.8.13",
            "Returns information about one, multiple or all commands.",
        ),
    cmd("docs", -2, CMDF, command_docs)
        .acl(Acl::CONNECTION)
        .doc(
            "server",
            "7.0.0",
            "Returns documentary information about one, multiple or all commands.",
        ),
    cmd("getkeys", -4, CMDF, command_getkeys)
        .acl(Acl::CONNECTION)
        .doc(
            "server",
            "2.8.13",
            "Extracts the key names from an arbitrary command.",
        ),
    cmd("getkeysandflags", -4, CMDF, command_getkeysandflags)
        .acl(Acl::CONNECTION)
        .doc(
            "server",
            "7.0.0",
            "Extracts the key names and access flags for an arbitrary command.",
        ),
    cmd("list", -2, CMDF, command_list)
        .acl(Acl::CONNECTION)
        .doc("server", "7.0.0", "Returns a list of command names."),
    cmd("help", 2, CMDF, command_help).acl(Acl::CONNECTION).doc(
        "server",
        "5.0.0",
        "Returns helpful text about the different subcommands.",
    ),
];

const DEBUG_SUBS: &[CommandSpec] = &[
    cmd("sleep", 3, ADM, debug_sleep).doc(
        "server",
        "1.0.0",
        "Blocks the calling connection for the given number of seconds.",
    ),
    cmd("segfault", 2, ADM, debug_segfault).doc(
        "server",
        "1.0.0",
        "Crashes the server with SIGSEGV (to see the crash report in the log).",
    ),
    cmd("log", 3, ADM, debug_log).doc(
        "server",
        "7.0.0",
        "Writes the message to the server log (a marker for tests and operators).",
    ),
    cmd("object", 3, ADM, debug_object).keys(2, 2, 1).doc(
        "server",
        "1.0.0",
        "Shows low-level information about a key.",
    ),
    cmd("aof-flush-sleep", 3, ADM, debug_aof_flush_sleep).doc(
        "server",
        "6.2.0",
        "Makes the AOF writer sleep the given microseconds before each write (0 turns it off).",
    ),
    cmd("set-active-expire", 3, ADM, debug_set_active_expire).doc(
        "server",
        "1.0.0",
        "Enables or disables the active expiry cycle.",
    ),
    cmd(
        "set-disable-deny-scripts",
        3,
        ADM,
        debug_set_disable_deny_scripts,
    )
    .doc(
        "server",
        "7.0.0",
        "Lets scripts call commands flagged noscript (1) or not (0, the default).",
    ),
    cmd(
        "set-skip-checksum-validation",
        3,
        ADM,
        debug_set_skip_checksum_validation,
    )
    .doc(
        "server",
        "7.0.0",
        "Makes RESTORE skip (1) or verify (0, the default) the payload's checksum.",
    ),
    cmd("pause-cron", 3, ADM, debug_pause_cron).doc(
        "server",
        "7.0.0",
        "Stops (1) or resumes (0) the periodic tasks (active expiry, tracking table limit).",
    ),
    cmd("quicklist-packed-threshold", 3, ADM, debug_packed_threshold).doc(
        "server",
        "7.0.0",
        "List elements of at least <size> are saved (RDB, DUMP) as plain quicklist nodes of their own; 0 restores 1gb.",
    ),
    cmd("replybuffer", 4, ADM, debug_replybuffer).doc(
        "server",
        "7.0.0",
        "RESIZING 0|1: stops (0) or restores (1) the shrinking of large reply buffers after they are written.",
    ),
    cmd("populate", -3, ADM, debug_populate).doc(
        "server",
        "1.0.0",
        "Creates <count> string keys named key:<num> (or <prefix>:<num>), skipping existing ones.",
    ),
    cmd("reload", -2, ADM, debug_reload).doc(
        "server",
        "1.0.0",
        "Saves the RDB file, flushes the dataset and the functions and loads the file back; NOSAVE: load the existing file; NOFLUSH: keep the dataset (a key or library in both fails the load); MERGE: the file's copies replace them.",
    ),
    cmd("protocol", 3, ADM, debug_protocol).doc(
        "server",
        "6.0.0",
        "Replies with a value of the named RESP type (string, integer, double, bignum, null, array, set, map, attrib, push, verbatim, true, false).",
    ),
    cmd(
        "config-rewrite-force-all",
        2,
        ADM,
        debug_config_rewrite_force_all,
    )
    .doc(
        "server",
        "7.0.0",
        "CONFIG REWRITE, writing every parameter including the defaults.",
    ),
    cmd("loadaof", 2, ADM, debug_loadaof).doc(
        "server",
        "1.0.0",
        "Flushes the AOF to disk, empties the dataset and loads it back from the AOF files.",
    ),
    cmd("digest", 2, ADM, debug_digest).doc(
        "server",
        "1.0.0",
        "Outputs a hex signature of the whole dataset (40 zeros when empty); equal datasets give equal digests.",
    ),
    cmd("digest-value", -2, ADM, debug_digest_value).doc(
        "server",
        "1.0.0",
        "Outputs a hex signature of the values of the given keys.",
    ),
    cmd("replicate", -3, ADM, debug_replicate).doc(
        "server",
        "7.0.0",
        "Sends the given command down the replication stream only (not run here), outside any database.",
    ),
    cmd("panic-in-handler", 2, ADM, debug_panic).doc(
        "server",
        "1.0.0",
        "Cinnabar only: panics inside the command handler, to show that a panic is contained to one command.",
    ),
    cmd("htstats", -3, ADM, debug_htstats).doc(
        "server",
        "2.2.0",
        "Statistics of a database's keyspace tables (sizes summed over its shards; how many are growing).",
    ),
    cmd("htstats-key", 3, ADM, debug_htstats_key)
        .keys(2, 2, 1)
        .doc(
            "server",
            "2.2.0",
            "Statistics of the hash table holding a hash, set or sorted set value (both arrays while it rehashes).",
        ),
    cmd("error", 3, ADM, debug_error).doc(
        "server",
        "1.0.0",
        "Replies with the given text as an error reply (its first word is the error code).",
    ),
    cmd("help", 2, ADM, debug_help).doc(
        "server",
        "1.0.0",
        "Returns helpful text about the different subcommands.",
    ),
];

// ---- INFO ------------------------------------------------------------------

fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b < 1024.0 {
        format!("{bytes}B")
    } else if b < 1024.0 * 1024.0 {
        format!("{:.2}K", b / 1024.0)
    } else if b < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2}M", b / (1024.0 * 1024.0))
    } else if b < 1024.0 * 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2}G", b / (1024.0 * 1024.0 * 1024.0))
    } else {
        format!("{:.2}T", b / (1024.0 * 1024.0 * 1024.0 * 1024.0))
    }
}

const DEFAULT_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "modules",
    "errorstats",
    "cluster",
    "keyspace",
];
const ALL_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "modules",
    "commandstats",
    "errorstats",
    "latencystats",
    "cluster",
    "keyspace",
];

/// ```text
/// INFO [section [section ...]]
/// ```
fn info(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let mut sections: Vec<String> = Vec::new();
    if argv.len() == 1 {
        sections.extend(DEFAULT_SECTIONS.iter().map(|s| s.to_string()));
    }
    for a in &argv[1..] {
        let s = String::from_utf8_lossy(a).to_ascii_lowercase();
        match s.as_str() {
            "default" => sections.extend(DEFAULT_SECTIONS.iter().map(|s| s.to_string())),
            "all" | "everything" => sections.extend(ALL_SECTIONS.iter().map(|s| s.to_string())),
            _ => sections.push(s),
        }
    }
    let mut seen = std::collections::HashSet::new();
    sections.retain(|s| seen.insert(s.clone()));
    let totals = keyspace_totals(ctx);
    let text = render_info(ctx.srv, &sections, totals);
    Ok(Reply::Verbatim(*b"txt", Bytes::from(text)))
}

/// Per-shard totals: (keys, volatile, hits, misses, expired, expired_stale)
pub type KeyspaceTotals = (Vec<(usize, usize, usize)>, [u64; 4]);

fn keyspace_totals(ctx: &mut Ctx<'_>) -> KeyspaceTotals {
    let mut per_db: Vec<(usize, usize, usize)> = (0..ctx.srv.keyspace.num_dbs())
        .map(|db| (db, 0, 0))
        .collect();
    let mut t = [0u64; 4];
    ctx.visit_all_shards(|db, s| add_totals(&mut per_db, &mut t, db, s));
    (per_db, t)
}

/// [`keyspace_totals`] outside a command (the metrics sampler): each
/// shard locked in turn, those a busy script holds skipped.
pub fn keyspace_totals_of(srv: &Server) -> KeyspaceTotals {
    let ks = &srv.keyspace;
    let mut per_db: Vec<(usize, usize, usize)> = (0..ks.num_dbs()).map(|db| (db, 0, 0)).collect();
    let mut t = [0u64; 4];
    for db in 0..ks.num_dbs() {
        let Some(d) = ks.db(db) else { continue };
        for sh in d.shards() {
            if let Some(s) = crate::commands::ctx::lock_for_visit(sh, false) {
                add_totals(&mut per_db, &mut t, db, &s);
            }
        }
    }
    (per_db, t)
}

fn add_totals(
    per_db: &mut [(usize, usize, usize)],
    t: &mut [u64; 4],
    db: usize,
    s: &crate::storage::shard::Shard,
) {
    if let Some(row) = per_db.get_mut(db) {
        row.1 += s.len();
        row.2 += s.volatile_len();
    }
    t[0] += s.stats.hits;
    t[1] += s.stats.misses;
    t[2] += s.stats.expired;
    t[3] += s.stats.expired_stale;
}

/// Allocator statistics: (allocated, active, resident).
pub fn allocator_stats() -> (u64, u64, u64) {
    use tikv_jemalloc_ctl::{epoch, stats};
    let _ = epoch::advance();
    (
        crate::server::memory::allocated_at_epoch(),
        stats::active::read().unwrap_or(0) as u64,
        stats::resident::read().unwrap_or(0) as u64,
    )
}

/// Resident set size from /proc (0 where unavailable).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

fn cpu_times() -> (f64, f64) {
    // utime and stime are fields 14 and 15 of /proc/self/stat, in clock ticks.
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let tick = 100.0;
    let ut = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / tick;
    let st = f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / tick;
    (st, ut)
}

fn total_system_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse::<u64>().ok())
                })
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Renders INFO for the given (lower-case) section names.
pub fn render_info(srv: &Server, sections: &[String], keyspace: KeyspaceTotals) -> String {
    let mut o = String::new();
    let cfg = &srv.config;
    let (per_db, totals) = keyspace;
    let st = &srv.stats;
    for sec in sections {
        match sec.as_str() {
            "server" => {
                let up = srv.uptime().as_secs();
                let now_us = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_micros())
                    .unwrap_or(0);
                let port = srv.bound.lock().first().map(|a| a.port()).unwrap_or(0);
                let _ = write!(
                    o,
                    "# Server\r\nredis_version:{}\r\nredis_git_sha1:00000000\r\nredis_git_dirty:0\r\nredis_build_id:0\r\nredis_mode:{}\r\nos:{} {}\r\narch_bits:{}\r\nmonotonic_clock:POSIX clock_gettime\r\nmultiplexing_api:epoll\r\natomicvar_api:c11-builtin\r\ngcc_version:0.0.0\r\nprocess_id:{}\r\nprocess_supervised:no\r\nrun_id:{}\r\ntcp_port:{}\r\nserver_time_usec:{}\r\nuptime_in_seconds:{}\r\nuptime_in_days:{}\r\nhz:{}\r\nconfigured_hz:{}\r\nlru_clock:{}\r\nexecutable:{}\r\nconfig_file:{}\r\nio_threads_active:0\r\nshutdown_in_milliseconds:{}\r\ncinnabar_version:{}\r\ncinnabar_worker_threads:{}\r\n",
                    crate::REDIS_VERSION,
                    srv.mode(),
                    std::env::consts::OS,
                    std::env::consts::ARCH,
                    usize::BITS,
                    std::process::id(),
                    srv.run_id,
                    port,
                    now_us,
                    up,
                    up / 86400,
                    cfg.hz(),
                    cfg.hz(),
                    crate::storage::access::redis_lru_clock(crate::commands::dispatch::unix_ms()),
                    srv.executable,
                    srv.config_file,
                    srv.shutdown.wait_left_ms(),
                    env!("CARGO_PKG_VERSION"),
                    tokio::runtime::Handle::try_current()
                        .map(|h| h.metrics().num_workers())
                        .unwrap_or(0),
                );
            }
            "clients" => {
                let _ = write!(
                    o,
                    "# Clients\r\nconnected_clients:{}\r\ncluster_connections:0\r\nmaxclients:{}\r\nclient_recent_max_input_buffer:0\r\nclient_recent_max_output_buffer:0\r\nblocked_clients:{}\r\ntracking_clients:{}\r\nclients_in_timeout_table:{}\r\n",
                    // Replica links are not counted (as Redis), the link
                    // to our own primary is.
                    srv.clients.len().saturating_sub(srv.repl.count()),
                    cfg.maxclients(),
                    srv.blocking.blocked_clients()
                        + srv.repl.waiting()
                        + srv.pause.held.load(Ordering::Relaxed)
                        + srv.shutdown.blocked.load(Ordering::Relaxed) as usize,
                    srv.tracking.clients(),
                    0,
                );
            }
            "memory" => {
                let (alloc, active, resident) = allocator_stats();
                // The backlog holds what lagging replicas still need: the
                // replication buffer Redis 7 shares between the two. What
                // goes past repl-backlog-size is the replicas' (while any
                // is attached), and eviction does not count it.
                let replicas = srv.feed.backlog(|b| b.attached()).unwrap_or(0);
                let repl_buf = crate::server::memory::repl_buffer();
                let backlog_size = cfg.repl_backlog_size();
                let (backlog, replica_bufs) = if replicas > 0 && repl_buf > backlog_size {
                    (backlog_size, repl_buf - backlog_size)
                } else {
                    (repl_buf, 0)
                };
                let not_counted = crate::server::replication::mem_not_counted(srv);
                let rss = rss_bytes();
                let peak = st.note_peak_memory(alloc);
                let maxmem = cfg.maxmemory();
                let sysmem = total_system_memory();
                let frag = if alloc > 0 {
                    rss as f64 / alloc as f64
                } else {
                    0.0
                };
                let _ = write!(
                    o,
                    "# Memory\r\nused_memory:{alloc}\r\nused_memory_human:{}\r\nused_memory_rss:{rss}\r\nused_memory_rss_human:{}\r\nused_memory_peak:{peak}\r\nused_memory_peak_human:{}\r\nused_memory_peak_perc:{:.2}%\r\nused_memory_overhead:0\r\nused_memory_startup:0\r\nused_memory_dataset:{alloc}\r\nused_memory_dataset_perc:100.00%\r\nallocator_allocated:{alloc}\r\nallocator_active:{active}\r\nallocator_resident:{resident}\r\ntotal_system_memory:{sysmem}\r\ntotal_system_memory_human:{}\r\nused_memory_lua:0\r\nused_memory_scripts_eval:0\r\nnumber_of_cached_scripts:{}\r\nnumber_of_functions:{}\r\nnumber_of_libraries:{}\r\nused_memory_scripts:0\r\nmaxmemory:{maxmem}\r\nmaxmemory_human:{}\r\nmaxmemory_policy:{}\r\nallocator_frag_ratio:{:.2}\r\nmem_fragmentation_ratio:{frag:.2}\r\nmem_not_counted_for_evict:{not_counted}\r\nmem_replication_backlog:{backlog}\r\nmem_total_replication_buffers:{repl_buf}\r\nmem_clients_slaves:{replica_bufs}\r\nmem_clients_normal:{}\r\nmem_allocator:jemalloc-5.3.0\r\nlazyfree_pending_objects:{}\r\nlazyfreed_objects:{}\r\n",
                    human(alloc),
                    human(rss),
                    human(peak),
                    if peak > 0 { alloc as f64 * 100.0 / peak as f64 } else { 0.0 },
                    human(sysmem),
                    srv.scripts.len(),
                    srv.functions.counts().1,
                    srv.functions.counts().0,
                    human(maxmem),
                    cfg.maxmemory_policy().name(),
                    if alloc > 0 { active as f64 / alloc as f64 } else { 0.0 },
                    srv.client_mem.total(),
                    crate::storage::lazyfree::pending(),
                    crate::storage::lazyfree::freed(),
                );
            }
            "persistence" => {
                use crate::persistence::ChildKind;
                let p = &srv.persist;
                let child = *p.child.lock();
                let aof_on = p.aof.lock().on;
                let ok = |b: bool| if b { "ok" } else { "err" };
                let running = |k: ChildKind| match child {
                    Some(c) if c.kind == k => c.started.elapsed().as_secs() as i64,
                    _ => -1,
                };
                // The running job's progress and the old values its
                // point-in-time copy had to set aside (a versioned
                // snapshot's copy-on-write); zero when none runs.
                let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
                // COPIED_BYTES only grows while a job runs: its current
                // value is also its peak.
                let (cow, done, total) = if child.is_some() {
                    (
                        get(&crate::storage::shard::COPIED_BYTES),
                        get(&p.save_keys_processed),
                        get(&p.save_keys_total),
                    )
                } else {
                    (0, 0, 0)
                };
                let done = done.min(total);
                let perc = if total > 0 {
                    done as f64 * 100.0 / total as f64
                } else {
                    0.0
                };
                let (rdb_saves, rdb_cow) = (get(&p.rdb_saves), get(&p.rdb_last_cow));
                let (aof_rewrites, aof_fails, aof_cow) = (
                    get(&p.aof_rewrites),
                    get(&p.aofrw_consecutive_failures),
                    get(&p.aof_last_cow),
                );
                let _ = write!(
                    o,
                    "# Persistence\r\nloading:{}\r\nasync_loading:{}\r\ncurrent_cow_peak:{cow}\r\ncurrent_cow_size:{cow}\r\ncurrent_cow_size_age:0\r\ncurrent_fork_perc:{perc:.2}\r\ncurrent_save_keys_processed:{done}\r\ncurrent_save_keys_total:{total}\r\nrdb_changes_since_last_save:{}\r\nrdb_bgsave_in_progress:{}\r\nrdb_last_save_time:{}\r\nrdb_last_bgsave_status:{}\r\nrdb_last_bgsave_time_sec:{}\r\nrdb_current_bgsave_time_sec:{}\r\nrdb_saves:{rdb_saves}\r\nrdb_last_cow_size:{rdb_cow}\r\nrdb_last_load_keys_expired:{}\r\nrdb_last_load_keys_loaded:{}\r\naof_enabled:{}\r\naof_rewrite_in_progress:{}\r\naof_rewrite_scheduled:{}\r\naof_last_rewrite_time_sec:{}\r\naof_current_rewrite_time_sec:{}\r\naof_last_bgrewrite_status:{}\r\naof_rewrites:{aof_rewrites}\r\naof_rewrites_consecutive_failures:{aof_fails}\r\naof_last_write_status:{}\r\naof_last_cow_size:{aof_cow}\r\nmodule_fork_in_progress:0\r\nmodule_fork_last_cow_size:0\r\nsnapshot_paced_ms:{}\r\n",
                    p.loading() as u8,
                    p.async_loading() as u8,
                    st.dirty.load(Ordering::Relaxed).saturating_sub(p.dirty_at_save.load(Ordering::Relaxed)),
                    (child.map(|c| c.kind) == Some(ChildKind::Rdb)) as u8,
                    p.lastsave.load(Ordering::Relaxed),
                    ok(p.last_bgsave_ok.load(Ordering::Relaxed)),
                    p.last_bgsave_secs.load(Ordering::Relaxed),
                    running(ChildKind::Rdb),
                    p.last_load_keys_expired.load(Ordering::Relaxed),
                    p.last_load_keys_loaded.load(Ordering::Relaxed),
                    aof_on as u8,
                    (child.map(|c| c.kind) == Some(ChildKind::AofRewrite)) as u8,
                    p.rewrite_scheduled.load(Ordering::Relaxed) as u8,
                    p.last_rewrite_secs.load(Ordering::Relaxed),
                    running(ChildKind::AofRewrite),
                    ok(p.last_rewrite_ok.load(Ordering::Relaxed)),
                    ok(p.aof_write_ok()),
                    crate::persistence::snapshot::PACED_US.load(Ordering::Relaxed) / 1000,
                );
                if aof_on {
                    let _ = write!(
                        o,
                        "aof_current_size:{}\r\naof_base_size:{}\r\naof_pending_rewrite:0\r\naof_buffer_length:{}\r\naof_pending_bio_fsync:0\r\naof_delayed_fsync:0\r\n",
                        p.aof_base_size.load(Ordering::Relaxed) + p.incr_size(),
                        p.aof_base_size.load(Ordering::Relaxed),
                        srv.feed.appended().saturating_sub(srv.feed.written()),
                    );
                }
            }
            "stats" => {
                let inst = st.instantaneous();
                let (ops, ikbps, okbps) = (inst.ops, inst.input_kbps, inst.output_kbps);
                let (rikbps, rokbps) = (inst.repl_input_kbps, inst.repl_output_kbps);
                let repl_in = st.repl_input.load(Ordering::Relaxed);
                let repl_out = st.repl_output.load(Ordering::Relaxed);
                let (tk, ti, tp) = srv.tracking.totals();
                let unexpected = st.unexpected_errors.load(Ordering::Relaxed);
                let expired = totals[2];
                let stale_perc = if expired > 0 {
                    totals[3] as f64 * 100.0 / expired as f64
                } else {
                    0.0
                };
                let _ = write!(
                    o,
                    "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\ninstantaneous_ops_per_sec:{ops}\r\ntotal_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\ntotal_net_repl_input_bytes:{repl_in}\r\ntotal_net_repl_output_bytes:{repl_out}\r\ninstantaneous_input_kbps:{ikbps:.2}\r\ninstantaneous_output_kbps:{okbps:.2}\r\ninstantaneous_input_repl_kbps:{rikbps:.2}\r\ninstantaneous_output_repl_kbps:{rokbps:.2}\r\nrejected_connections:{}\r\nsync_full:{}\r\nsync_partial_ok:{}\r\nsync_partial_err:{}\r\nexpired_keys:{expired}\r\nexpired_stale_perc:{stale_perc:.2}\r\nexpired_time_cap_reached_count:0\r\nexpire_cycle_cpu_milliseconds:0\r\nevicted_keys:{}\r\nevicted_clients:{}\r\ntotal_eviction_exceeded_time:0\r\ncurrent_eviction_exceeded_time:0\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\npubsub_channels:{}\r\npubsub_patterns:{}\r\npubsubshard_channels:{}\r\nlatest_fork_usec:{}\r\ntotal_forks:{}\r\nmigrate_cached_sockets:{}\r\nslave_expires_tracked_keys:0\r\nactive_defrag_hits:0\r\nactive_defrag_misses:0\r\nactive_defrag_key_hits:0\r\nactive_defrag_key_misses:0\r\ntotal_active_defrag_time:0\r\ncurrent_active_defrag_time:0\r\ntracking_total_keys:{tk}\r\ntracking_total_items:{ti}\r\ntracking_total_prefixes:{tp}\r\nunexpected_error_replies:{unexpected}\r\ntotal_error_replies:{}\r\ndump_payload_sanitizations:0\r\ntotal_reads_processed:{}\r\ntotal_writes_processed:{}\r\nio_threaded_reads_processed:0\r\nio_threaded_writes_processed:0\r\nreply_buffer_shrinks:0\r\nreply_buffer_expands:0\r\n",
                    st.connections_received.load(Ordering::Relaxed),
                    st.commands(),
                    st.net_input(),
                    st.net_output(),
                    st.rejected_connections.load(Ordering::Relaxed),
                    srv.repl.sync_full.load(Ordering::Relaxed),
                    srv.repl.sync_partial_ok.load(Ordering::Relaxed),
                    srv.repl.sync_partial_err.load(Ordering::Relaxed),
                    st.evicted_keys.load(Ordering::Relaxed),
                    st.evicted_clients.load(Ordering::Relaxed),
                    totals[0],
                    totals[1],
                    srv.pubsub.numchannels(crate::server::pubsub::Kind::Global),
                    srv.pubsub.numpat(),
                    srv.pubsub.numchannels(crate::server::pubsub::Kind::Shard),
                    srv.persist.latest_fork_usec.load(Ordering::Relaxed),
                    srv.persist.total_forks.load(Ordering::Relaxed),
                    srv.migrate.len(),
                    st.error_replies.load(Ordering::Relaxed),
                    st.hot.get(crate::server::Stats::READS),
                    st.hot.get(crate::server::Stats::WRITES),
                );
                o.push_str(&srv.busy_poll.info());
            }
            "replication" => o.push_str(&srv.repl.info(srv)),
            "cpu" => {
                let (sys, user) = cpu_times();
                let _ = write!(
                    o,
                    "# CPU\r\nused_cpu_sys:{sys:.6}\r\nused_cpu_user:{user:.6}\r\nused_cpu_sys_children:0.000000\r\nused_cpu_user_children:0.000000\r\nused_cpu_sys_main_thread:{sys:.6}\r\nused_cpu_user_main_thread:{user:.6}\r\n"
                );
            }
            "modules" => o.push_str("# Modules\r\n"),
            "commandstats" => {
                o.push_str("# Commandstats\r\n");
                for e in table().all() {
                    let calls = e.calls();
                    let rej = e.stats.rejected();
                    let failed = e.stats.failed();
                    if calls == 0 && rej == 0 && failed == 0 {
                        continue;
                    }
                    let usec = e.stats.usec();
                    let per = if calls > 0 {
                        usec as f64 / calls as f64
                    } else {
                        0.0
                    };
                    let _ = write!(
                        o,
                        "cmdstat_{}:calls={calls},usec={usec},usec_per_call={per:.2},rejected_calls={rej},failed_calls={failed}\r\n",
                        e.full_name
                    );
                }
            }
            "errorstats" => {
                o.push_str("# Errorstats\r\n");
                for (code, n) in st.error_counts() {
                    let _ = write!(o, "errorstat_{code}:count={n}\r\n");
                }
            }
            "latencystats" => {
                o.push_str("# Latencystats\r\n");
                if srv.config.latency_tracking() {
                    let pcts = srv.config.latency_tracking_info_percentiles();
                    for e in table().all() {
                        let Some(vals) = e.latency.percentiles(&pcts) else {
                            continue;
                        };
                        let _ = write!(o, "latency_percentiles_usec_{}:", e.full_name);
                        for (i, (p, ns)) in pcts.iter().zip(vals).enumerate() {
                            if i > 0 {
                                o.push(',');
                            }
                            // Labels as Redis prints them: p50, p99, p99.9.
                            let _ = write!(o, "p{}={:.3}", p, ns as f64 / 1000.0);
                        }
                        o.push_str("\r\n");
                    }
                }
            }
            "cluster" => {
                let on = u8::from(srv.cluster.get().is_some());
                let _ = write!(o, "# Cluster\r\ncluster_enabled:{on}\r\n");
            }
            "keyspace" => {
                o.push_str("# Keyspace\r\n");
                for (db, keys, vol) in &per_db {
                    if *keys > 0 {
                        let _ = write!(o, "db{db}:keys={keys},expires={vol},avg_ttl=0\r\n");
                    }
                }
            }
            _ => continue,
        }
        o.push_str("\r\n");
    }
    while o.ends_with("\r\n\r\n") {
        o.truncate(o.len() - 2);
    }
    o
}

// ---- CONFIG ----------------------------------------------------------------

/// ```text
/// CONFIG GET parameter [parameter ...]
/// ```
fn config_get(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let pats: Vec<&[u8]> = argv[2..].iter().map(|b| &b[..]).collect();
    let pairs = ctx.srv.config.get_many(&pats);
    Ok(Reply::Map(
        pairs
            .into_iter()
            .map(|(k, v)| (Reply::bulk(Bytes::from(k)), Reply::bulk(Bytes::from(v))))
            .collect(),
    ))
}

/// ```text
/// CONFIG SET parameter value [parameter value ...]
/// ```
/// ```text
/// MONITOR
/// ```
/// See `server::monitor`. A connection already monitoring gets no reply,
/// as in Redis; RESET (or disconnecting) ends the mode.
fn monitor(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    if ctx.client.deny_blocking && !ctx.client.loader {
        return Err(CmdError::err(
            "MONITOR isn't allowed for DENY BLOCKING client",
        ));
    }
    let info = ctx.client.info.clone();
    if info.monitor.swap(true, Ordering::Relaxed) {
        return Ok(Reply::Raw(Bytes::new()));
    }
    let ob = ctx.client.pubsub.outbox(&info);
    ctx.srv.monitors.add(info.id, ob);
    Ok(Reply::OK)
}

fn config_set(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    if !argv.len().is_multiple_of(2) {
        return Err(CmdError::arity("config|set"));
    }
    let pairs: Vec<(&[u8], &[u8])> = argv[2..]
        .chunks(2)
        .map(|c| (&c[0][..], &c[1][..]))
        .collect();
    // Values of sensitive parameters (requirepass, masterauth) never reach
    // the slow log, even when the CONFIG SET fails.
    for (i, (name, _)) in pairs.iter().enumerate() {
        if crate::config::Config::is_sensitive(name) {
            ctx.client.redact(3 + 2 * i);
        }
    }
    // Turning the AOF on forks a snapshot, which needs every shard: inside
    // EXEC (shard locks held) the cron starts it right after.
    let defer = !ctx.locks.is_empty();
    ctx.srv
        .config_set(&pairs, defer, ctx.client.info.local)
        .map_err(CmdError::new)?;
    Ok(Reply::OK)
}

fn config_resetstat(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    ctx.srv.stats.reset();
    let repl = &ctx.srv.repl;
    let persist = &ctx.srv.persist;
    for n in [
        &repl.sync_full,
        &repl.sync_partial_ok,
        &repl.sync_partial_err,
        &persist.total_forks,
        &persist.rdb_saves,
        &persist.aof_rewrites,
        &persist.aofrw_consecutive_failures,
    ] {
        n.store(0, Ordering::Relaxed);
    }
    crate::storage::lazyfree::reset_stats();
    ctx.srv.busy_poll.reset_stats();
    for e in table().all() {
        e.reset_stats();
    }
    ctx.visit_all_shards(|_, sh| sh.stats = Default::default());
    Ok(Reply::OK)
}

fn config_rewrite(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    rewrite_config(ctx.srv, false)
}

/// CONFIG REWRITE (and DEBUG CONFIG-REWRITE-FORCE-ALL with `force_all`):
/// the parameters and, without an aclfile, the ACL users.
fn rewrite_config(srv: &Server, force_all: bool) -> CmdResult {
    let users = if srv.config.aclfile().is_empty() {
        crate::config::UserLines::Lines(crate::commands::acl::config_lines(srv))
    } else {
        crate::config::UserLines::Drop
    };
    srv.config
        .rewrite_with_users(&users, force_all)
        .map_err(CmdError::new)?;
    Ok(Reply::OK)
}

/// `DEBUG PROTOCOL <type>`: a reply of each RESP type, as Redis's (for
/// testing clients and the scripts' conversions); RESP2 clients get the
/// RESP2 form.
fn debug_protocol(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    debug_allowed(ctx)?;
    let name = String::from_utf8_lossy(&argv[2]).to_ascii_lowercase();
    let ints = |n: i64| (0..n).map(Reply::Int).collect::<Vec<_>>();
    let resp3 = ctx.client.resp >= 3;
    Ok(match name.as_str() {
        "string" => Reply::Bulk(Bytes::from_static(b"Hello World")),
        "integer" => Reply::Int(12345),
        // Redis's own value (not meant as pi).
        #[allow(clippy::approx_constant)]
        "double" => Reply::Double(3.141),
        "bignum" => Reply::BigNumber(Bytes::from_static(b"1234567999999999999999999999999999999")),
        "null" => Reply::Null,
        "array" => Reply::Array(ints(3)),
        "set" => Reply::Set(ints(3)),
        "map" => Reply::Map((0..3).map(|j| (Reply::Int(j), Reply::Bool(j == 1))).collect()),
        "attrib" => {
            let real = Reply::Bulk(Bytes::from_static(b"Some real reply following the attribute"));
            if !resp3 || ctx.in_script {
                real
            } else {
                // An attribute is metadata before the real reply.
                let mut out = bytes::BytesMut::new();
                out.extend_from_slice(b"|1\r\n$14\r\nkey-popularity\r\n*2\r\n$7\r\nkey:123\r\n:90\r\n");
                crate::protocol::reply::encode(&real, 3, &mut out);
                Reply::Raw(out.freeze())
            }
        }
        "push" => {
            if !resp3 {
                return Err(CmdError::err("RESP2 is not supported by this command"));
            }
            let real = Reply::Bulk(Bytes::from_static(b"Some real reply following the push reply"));
            if ctx.in_script {
                real
            } else {
                // A push, then a normal reply for clients that skip pushes.
                let mut out = bytes::BytesMut::new();
                let push = Reply::Push(vec![
                    Reply::Bulk(Bytes::from_static(b"server-cpu-usage")),
                    Reply::Int(42),
                ]);
                crate::protocol::reply::encode(&push, 3, &mut out);
                crate::protocol::reply::encode(&real, 3, &mut out);
                Reply::Raw(out.freeze())
            }
        }
        "verbatim" => Reply::Verbatim(*b"txt", Bytes::from_static(b"This is a verbatim\nstring")),
        "true" => Reply::Bool(true),
        "false" => Reply::Bool(false),
        _ => {
            return Err(CmdError::err(
                "Wrong protocol type name. Please use one of the following: string|integer|double|bignum|null|array|set|map|attrib|push|verbatim|true|false",
            ))
        }
    })
}

/// `DEBUG CONFIG-REWRITE-FORCE-ALL`: CONFIG REWRITE writing every
/// parameter, defaults included (Redis's test of the rewrite round trip).
fn debug_config_rewrite_force_all(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    debug_allowed(ctx)?;
    rewrite_config(ctx.srv, true)
}

fn config_help(_ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    Ok(help_reply(
        "CONFIG",
        &[
            "GET <pattern>",
            "    Return parameters matching the glob-like <pattern> and their values.",
            "SET <directive> <value>",
            "    Set the configuration <directive> to <value>.",
            "RESETSTAT",
            "    Reset statistics reported by the INFO command.",
            "REWRITE",
            "    Rewrite the configuration file.",
        ],
    ))
}

// ---- COMMAND ---------------------------------------------------------------

fn status_set(names: Vec<&'static str>) -> Reply {
    Reply::Set(names.into_iter().map(Reply::Status).collect())
}

fn key_specs(spec: &CommandSpec) -> Reply {
    let (first, last, step) = spec.legacy_range();
    // Movable keys are not one range: COMMAND GETKEYS finds them.
    if first == 0 || matches!(spec.keys, crate::commands::spec::KeySpec::Find { .. }) {
        return Reply::Array(vec![]);
    }
    let st = |s: &'static str| Reply::bulk(Bytes::from_static(s.as_bytes()));
    let access = if spec.flags.contains(F::WRITE) {
        "RW"
    } else {
        "RO"
    };
    let lastkey = if last < 0 { last } else { last - first };
    Reply::Array(vec![Reply::Map(vec![
        (st("flags"), Reply::Set(vec![Reply::Status(access)])),
        (
            st("begin_search"),
            Reply::Map(vec![
                (st("type"), st("index")),
                (
                    st("spec"),
                    Reply::Map(vec![(st("index"), Reply::Int(first))]),
                ),
            ]),
        ),
        (
            st("find_keys"),
            Reply::Map(vec![
                (st("type"), st("range")),
                (
                    st("spec"),
                    Reply::Map(vec![
                        (st("lastkey"), Reply::Int(lastkey)),
                        (st("keystep"), Reply::Int(step)),
                        (st("limit"), Reply::Int(0)),
                    ]),
                ),
            ]),
        ),
    ])])
}

/// One COMMAND INFO entry (Redis 7 layout, ten elements).
fn command_reply(e_name: &str, spec: &'static CommandSpec) -> Reply {
    let (first, last, step) = spec.legacy_range();
    let cats: Vec<Reply> = spec
        .acl_categories()
        .names()
        .into_iter()
        .map(|c| Reply::StatusOwned(format!("@{c}")))
        .collect();
    let subs: Vec<Reply> = spec
        .subcommands
        .iter()
        .map(|s| command_reply(&format!("{}|{}", spec.name, s.name), s))
        .collect();
    Reply::Array(vec![
        Reply::bulk(Bytes::from(e_name.to_string())),
        Reply::Int(spec.arity as i64),
        status_set(spec.flags.names()),
        Reply::Int(first),
        Reply::Int(last),
        Reply::Int(step),
        Reply::Set(cats),
        Reply::Array(vec![]),
        key_specs(spec),
        Reply::Array(subs),
    ])
}

/// `COMMAND` alone: every command. Routed here by the container when no
/// subcommand is given (see `command_info` with no names).
fn command_all() -> Reply {
    Reply::Array(
        table()
            .top_level()
            .map(|e| command_reply(&e.full_name, e.spec))
            .collect(),
    )
}

fn command_count(_ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(table().top_level().count() as i64))
}

fn find_entry(name: &[u8]) -> Option<&'static CommandEntry> {
    let lname = String::from_utf8_lossy(name).to_ascii_lowercase();
    table().get(&lname)
}

/// ```text
/// COMMAND INFO [command-name [command-name ...]]
/// ```
fn command_info(_ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    if argv.len() == 2 {
        return Ok(command_all());
    }
    Ok(Reply::Array(
        argv[2..]
            .iter()
            .map(|n| match find_entry(n) {
                Some(e) => command_reply(&e.full_name, e.spec),
                None => Reply::NullArray,
            })
            .collect(),
    ))
}

fn docs_reply(spec: &'static CommandSpec, full: &str) -> Reply {
    let st = |s: &'static str| Reply::bulk(Bytes::from_static(s.as_bytes()));
    let mut m = vec![
        (
            st("summary"),
            Reply::bulk(Bytes::from_static(spec.summary.as_bytes())),
        ),
        (
            st("since"),
            Reply::bulk(Bytes::from_static(spec.since.as_bytes())),
        ),
        (
            st("group"),
            Reply::bulk(Bytes::from_static(spec.group.as_bytes())),
        ),
    ];
    if !spec.complexity.is_empty() {
        m.push((
            st("complexity"),
            Reply::bulk(Bytes::from_static(spec.complexity.as_bytes())),
        ));
    }
    if !spec.subcommands.is_empty() {
        let subs = spec
            .subcommands
            .iter()
            .map(|s| {
                let n = format!("{full}|{}", s.name);
                (Reply::bulk(Bytes::from(n.clone())), docs_reply(s, &n))
            })
            .collect();
        m.push((st("subcommands"), Reply::Map(subs)));
    }
    Reply::Map(m)
}

/// ```text
/// COMMAND DOCS [command-name [command-name ...]]
/// ```
fn command_docs(_ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let entries: Vec<&CommandEntry> = if argv.len() == 2 {
        table().top_level().collect()
    } else {
        argv[2..].iter().filter_map(|n| find_entry(n)).collect()
    };
    Ok(Reply::Map(
        entries
            .into_iter()
            .map(|e| {
                (
                    Reply::bulk(Bytes::from(e.full_name.clone())),
                    docs_reply(e.spec, &e.full_name),
                )
            })
            .collect(),
    ))
}

fn getkeys_entry(argv: &[Bytes]) -> CmdResult<(&'static CommandEntry, Vec<usize>)> {
    let target = &argv[2..];
    let e = match table().lookup(target) {
        Lookup::Found(e) => e,
        _ => return Err(CmdError::err("Invalid command specified")),
    };
    if !e.spec.arity_ok(target.len()) {
        return Err(CmdError::err(
            "Invalid number of arguments specified for command",
        ));
    }
    let pos = e.spec.key_positions(target);
    if pos.is_empty() && matches!(e.spec.keys, KeySpec::None) {
        return Err(CmdError::err("The command has no key arguments"));
    }
    Ok((e, pos))
}

/// ```text
/// COMMAND GETKEYS command [arg [arg ...]]
/// ```
fn command_getkeys(_ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let (_, pos) = getkeys_entry(argv)?;
    let target = &argv[2..];
    Ok(Reply::Array(
        pos.into_iter()
            .map(|i| Reply::Bulk(target[i].clone()))
            .collect(),
    ))
}

fn command_getkeysandflags(_ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let (e, pos) = getkeys_entry(argv)?;
    let target = &argv[2..];
    let keys = crate::acl::keys_and_flags(e, target).unwrap_or_else(|| {
        // Not a Redis command: the access its flags imply.
        let access = if e.spec.flags.contains(F::WRITE) {
            "RW"
        } else {
            "RO"
        };
        pos.into_iter().map(|i| (i, vec![access])).collect()
    });
    Ok(Reply::Array(
        keys.into_iter()
            .filter_map(|(i, flags)| {
                Some(Reply::Array(vec![
                    Reply::Bulk(target.get(i)?.clone()),
                    Reply::Set(flags.into_iter().map(Reply::Status).collect()),
                ]))
            })
            .collect(),
    ))
}

/// ```text
/// COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN pattern]
/// ```
fn command_list(_ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let mut a = Args::new(argv, 2);
    let mut filter: Option<(String, Bytes)> = None;
    if a.eat("filterby") {
        let kind = String::from_utf8_lossy(a.next_arg()?).to_ascii_lowercase();
        if !["module", "aclcat", "pattern"].contains(&kind.as_str()) {
            return Err(CmdError::SYNTAX);
        }
        filter = Some((kind, a.next_arg()?.clone()));
    }
    a.finish()?;
    let mut out = Vec::new();
    for e in table().all() {
        let keep = match &filter {
            None => true,
            Some((k, _)) if k == "module" => false,
            Some((k, v)) if k == "aclcat" => {
                e.spec.acl_categories().names().iter().any(|c| eq_ic(v, c))
            }
            Some((_, p)) => glob_match(p, e.full_name.as_bytes(), true),
        };
        if keep {
            out.push(Reply::bulk(Bytes::from(e.full_name.clone())));
        }
    }
    Ok(Reply::Array(out))
}

fn command_help(_ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    Ok(help_reply(
        "COMMAND",
        &[
            "(no subcommand)",
            "    Return details about all Redis commands.",
            "COUNT",
            "    Return the total number of commands in this Redis server.",
            "LIST",
            "    Return a list of all commands in this Redis server.",
            "INFO [<command-name> ...]",
            "    Return details about multiple Redis commands.",
            "DOCS [<command-name> ...]",
            "    Return documentation details about multiple Redis commands.",
            "GETKEYS <full-command>",
            "    Return the keys from a full Redis command.",
            "GETKEYSANDFLAGS <full-command>",
            "    Return the keys and the access flags from a full Redis command.",
        ],
    ))
}

/// `COMMAND` without a subcommand (the container's own handler).
pub fn command_bare(_ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    Ok(command_all())
}

// ---- TIME, DEBUG, SHUTDOWN -------------------------------------------------

fn time(_ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Ok(Reply::Array(vec![
        Reply::bulk(Bytes::from(d.as_secs().to_string())),
        Reply::bulk(Bytes::from(d.subsec_micros().to_string())),
    ]))
}

/// The shard DEBUG OBJECT and DEBUG HTSTATS-KEY read; other subcommands
/// lock nothing.
fn debug_locks(srv: &Server, db: usize, argv: &[Bytes]) -> Vec<(u32, u32)> {
    match argv.get(2) {
        Some(key)
            if argv.len() == 3 && (eq_ic(&argv[1], "object") || eq_ic(&argv[1], "htstats-key")) =>
        {
            vec![(db as u32, srv.keyspace.shard_index(key) as u32)]
        }
        _ => Vec::new(),
    }
}

/// ```text
/// DEBUG subcommand [arg ...]
/// ```
fn debug(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let sub = DEBUG_SUBS
        .iter()
        .find(|s| eq_ic(&argv[1], s.name) && s.arity_ok(argv.len()));
    match sub {
        Some(s) => (s.handler)(ctx, argv),
        None => Err(CmdError::err(format!(
            "unknown subcommand or wrong number of arguments for '{}'. Try DEBUG HELP.",
            String::from_utf8_lossy(&argv[1][..argv[1].len().min(128)])
        ))),
    }
}

/// ```text
/// DEBUG POPULATE count [prefix] [size]
/// ```
/// Values are `value:<num>`, cut or zero-padded to `size` when given (as
/// Redis). Keys that exist are left alone. Locks one shard at a time (the
/// command holds no locks of its own), so other clients keep running.
fn debug_populate(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    debug_allowed(ctx)?;
    if argv.len() > 5 {
        return Err(CmdError::SYNTAX);
    }
    let count = crate::protocol::args::int_arg(&argv[2])?;
    if count < 0 {
        return Err(CmdError::err("count must be positive"));
    }
    let prefix: &[u8] = argv.get(3).map(|b| &b[..]).unwrap_or(b"key");
    let size = match argv.get(4) {
        Some(a) => {
            let n = crate::protocol::args::int_arg(a)?;
            if n < 0 {
                return Err(CmdError::err("value size must be positive"));
            }
            Some(n as usize)
        }
        None => None,
    };
    let ks = &ctx.srv.keyspace;
    let Some(d) = ks.db(ctx.client.db) else {
        return Err(CmdError::INTERNAL);
    };
    let now = ctx.now;
    let mut key = Vec::with_capacity(prefix.len() + 21);
    for i in 0..count {
        key.clear();
        key.extend_from_slice(prefix);
        key.push(b':');
        key.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
        let mut val = format!("value:{i}").into_bytes();
        if let Some(n) = size {
            val.resize(n, 0);
        }
        let mut sh = d.shard(ks.shard_index(&key)).lock();
        if !sh.contains(&key, now) {
            sh.set(
                &key,
                crate::storage::Value::Str(Bytes::from(val)),
                crate::storage::shard::Ttl::Clear,
                now,
            );
        }
    }
    Ok(Reply::OK)
}

/// ```text
/// DEBUG RELOAD [MERGE] [NOFLUSH] [NOSAVE]
/// ```
/// As Redis: saves (unless NOSAVE), empties the dataset and the function
/// libraries (unless NOFLUSH) and loads the file back. With NOFLUSH, what
/// the dataset already holds makes the load fail (a library of the same
/// name, a duplicated key), unless MERGE lets the file's copy replace it.
fn debug_reload(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    debug_allowed(ctx)?;
    let (mut save, mut flush, mut merge) = (true, true, false);
    for a in &argv[2..] {
        if eq_ic(a, "nosave") {
            save = false;
        } else if eq_ic(a, "noflush") {
            flush = false;
        } else if eq_ic(a, "merge") {
            merge = true;
        } else {
            return Err(CmdError::err(
                "DEBUG RELOAD only supports the MERGE, NOFLUSH and NOSAVE options.",
            ));
        }
    }
    if !ctx.locks.is_empty() {
        return Err(CmdError::err(
            "DEBUG RELOAD is not allowed inside a transaction",
        ));
    }
    let srv = ctx.srv;
    if save {
        crate::persistence::snapshot::bgsave(srv, true)
            .map_err(|_| CmdError::err("Error trying to save the DB"))?;
    }
    if flush {
        srv.keyspace.clear_all();
        srv.functions.flush();
    }
    let path = std::path::PathBuf::from(srv.config.dbfilename());
    let dup = if flush || merge {
        crate::persistence::snapshot::Dup::Replace
    } else {
        crate::persistence::snapshot::Dup::Refuse
    };
    // Other clients get -LOADING meanwhile, as during a load at startup,
    // and keep being served.
    srv.persist.begin_loading();
    let loaded =
        crate::util::blocking(|| crate::persistence::snapshot::load_rdb_file(srv, &path, dup));
    srv.persist
        .loading
        .store(false, std::sync::atomic::Ordering::SeqCst);
    loaded.map_err(|e| {
        tracing::warn!("DEBUG RELOAD: {e}");
        CmdError::err("Error trying to load the RDB dump")
    })?;
    Ok(Reply::OK)
}

/// ```text
/// DEBUG LOADAOF
/// ```
/// As Redis: the AOF is written and fsynced, the dataset (and the function
/// libraries) emptied and loaded back from the AOF files on disk, and the
/// change counter reset. A test aid: what the AOF holds is what the
/// dataset becomes.
fn debug_loadaof(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    debug_allowed(ctx)?;
    if !ctx.locks.is_empty() {
        return Err(CmdError::err(
            "DEBUG LOADAOF is not allowed inside a transaction",
        ));
    }
    let srv = ctx.srv;
    crate::persistence::snapshot::flush_aof(srv)
        .map_err(|e| CmdError::err(format!("Error flushing the AOF: {e}")))?;
    crate::persistence::snapshot::gc_aof_history(srv);
    let (dir, manifest) = crate::persistence::snapshot::aof_manifest_on_disk(srv)
        .map_err(|e| CmdError::err(format!("Error reading the AOF manifest: {e}")))?;
    srv.keyspace.clear_all();
    srv.functions.flush();
    // Other clients get -LOADING meanwhile, as during a load at startup.
    srv.persist.begin_loading();
    // The other connections keep being served (and told -LOADING).
    let loaded =
        crate::util::blocking(|| crate::persistence::snapshot::load_aof(srv, &dir, &manifest));
    srv.persist
        .loading
        .store(false, std::sync::atomic::Ordering::SeqCst);
    loaded.map_err(|e| {
        tracing::warn!("DEBUG LOADAOF: {e}");
        CmdError::err("Error loading the AOF, check server logs.")
    })?;
    let dirty = srv.stats.dirty.load(std::sync::atomic::Ordering::Relaxed);
    srv.persist
        .dirty_at_save
        .store(dirty, std::sync::atomic::Ordering::Relaxed);
    tracing::warn!("Append Only File loaded by DEBUG LOADAOF");
    Ok(Reply::OK)
}

/// A 20-byte digest of one value, independent of its encoding and of the
/// storage order of unordered types (sets and hashes XOR their elements'
/// digests), so a dataset and its reloaded copy digest alike. Not Redis's
/// exact numbers: digests are only compared with the same server's.
fn value_digest(v: crate::storage::ValueRef<'_>) -> [u8; 20] {
    use crate::storage::value::Obj;
    use crate::storage::ValueRef;
    fn sha(parts: &[&[u8]]) -> [u8; 20] {
        let mut h = sha1_smol::Sha1::new();
        for p in parts {
            h.update(&(p.len() as u64).to_le_bytes());
            h.update(p);
        }
        h.digest().bytes()
    }
    fn xor(a: &mut [u8; 20], b: [u8; 20]) {
        for (x, y) in a.iter_mut().zip(b) {
            *x ^= y;
        }
    }
    match v {
        ValueRef::Str(_) | ValueRef::Int(_) | ValueRef::Obj(Obj::Raw(_)) => {
            let s = v.as_string().map(|s| s.to_vec()).unwrap_or_default();
            sha(&[b"string", &s])
        }
        ValueRef::Obj(Obj::List(l)) => {
            let mut h = sha1_smol::Sha1::new();
            h.update(b"list");
            for e in l.iter() {
                h.update(&(e.len() as u64).to_le_bytes());
                h.update(e);
            }
            h.digest().bytes()
        }
        ValueRef::Obj(Obj::Set(set)) => {
            let mut acc = sha(&[b"set"]);
            for m in set.iter() {
                xor(&mut acc, sha(&[&m.to_bytes()]));
            }
            acc
        }
        ValueRef::Obj(Obj::Hash(hash)) => {
            let mut acc = sha(&[b"hash"]);
            for (f, val) in hash.iter() {
                xor(&mut acc, sha(&[f, val]));
            }
            acc
        }
        ValueRef::Obj(Obj::ZSet(z)) => {
            let mut h = sha1_smol::Sha1::new();
            h.update(b"zset");
            for (m, score) in z.range(0, z.len()) {
                h.update(&(m.len() as u64).to_le_bytes());
                h.update(&m);
                h.update(&score.to_le_bytes());
            }
            h.digest().bytes()
        }
        ValueRef::Obj(Obj::Stream(st)) => {
            // Entries, IDs and consumer groups with their pending entries;
            // not the consumers' last-seen times, which a replica sets by
            // its own clock (as Redis's digest leaves them out).
            use crate::storage::stream::StreamId;
            let mut h = sha1_smol::Sha1::new();
            h.update(b"stream");
            for (id, fields) in st.range(StreamId::MIN, StreamId::MAX, 0, false) {
                h.update(&id.to_bytes());
                for f in fields {
                    h.update(&(f.len() as u64).to_le_bytes());
                    h.update(&f);
                }
            }
            for id in [st.last_id, st.first_id, st.max_deleted] {
                h.update(&id.to_bytes());
            }
            h.update(&st.entries_added.to_le_bytes());
            for (name, g) in &st.groups {
                h.update(name);
                h.update(&g.last_id.to_bytes());
                h.update(&g.entries_read.to_le_bytes());
                for (id, n) in g.pel.iter() {
                    h.update(&id.to_bytes());
                    h.update(&n.consumer);
                    h.update(&n.delivery_time.to_le_bytes());
                    h.update(&n.delivery_count.to_le_bytes());
                }
                for c in g.consumers.keys() {
                    h.update(c);
                }
            }
            h.digest().bytes()
        }
    }
}

fn hex20(d: &[u8; 20]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// ```text
/// DEBUG DIGEST
/// ```
fn debug_digest(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    debug_allowed(ctx)?;
    let now = ctx.now;
    let mut acc = [0u8; 20];
    let mut any = false;
    ctx.visit_all_shards(|db, sh| {
        sh.for_each_entry(now, |k, v, exp, _| {
            any = true;
            let mut h = sha1_smol::Sha1::new();
            h.update(&(db as u64).to_le_bytes());
            h.update(&(k.len() as u64).to_le_bytes());
            h.update(k);
            h.update(&value_digest(v));
            if let Some(at) = exp {
                h.update(&at.to_le_bytes());
            }
            for (x, y) in acc.iter_mut().zip(h.digest().bytes()) {
                *x ^= y;
            }
        });
    });
    if !any {
        acc = [0u8; 20];
    }
    Ok(Reply::StatusOwned(hex20(&acc)))
}

/// ```text
/// DEBUG REPLICATE command [arg ...]
/// ```
/// A test aid, as in Redis: appends the command to the replication
/// stream without running it (a replica then runs it, or logs that it
/// could not).
fn debug_replicate(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    debug_allowed(ctx)?;
    let args: Vec<&[u8]> = argv[2..].iter().map(|a| &a[..]).collect();
    ctx.srv.feed.emit_repl_only(&args);
    Ok(Reply::OK)
}

/// ```text
/// DEBUG DIGEST-VALUE [key ...]
/// ```
fn debug_digest_value(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    debug_allowed(ctx)?;
    let now = ctx.now;
    let ks = &ctx.srv.keyspace;
    let Some(d) = ks.db(ctx.client.db) else {
        return Err(CmdError::INTERNAL);
    };
    let mut out = Vec::with_capacity(argv.len().saturating_sub(2));
    for k in &argv[2..] {
        let mut sh = d.shard(ks.shard_index(k)).lock();
        let dg = sh.peek(k, now).map(value_digest).unwrap_or([0u8; 20]);
        out.push(Reply::StatusOwned(hex20(&dg)));
    }
    Ok(Reply::Array(out))
}

fn debug_allowed(ctx: &Ctx<'_>) -> CmdResult<()> {
    if ctx
        .srv
        .config
        .enable_debug_command()
        .allows(ctx.client.info.local)
    {
        Ok(())
    } else {
        Err(CmdError::err("DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server."))
    }
}

/// ```text
/// DEBUG SLEEP seconds
/// ```
fn debug_sleep(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    debug_allowed(ctx)?;
    let secs = crate::protocol::args::float_arg(&argv[2])?;
    if secs > 0.0 {
        let secs = secs.min(3600.0);
        // The whole server sleeps, as single-threaded Redis does (tests and
        // client libraries use this to make a server unresponsive): every
        // client's next command waits as under CLIENT PAUSE ALL (connection
        // handshakes included; a CLIENT PAUSE in force is left as it is;
        // the dataset is not frozen), and every shard is held, so commands
        // already under way finish first and nothing else runs. Inside a
        // transaction or a script, which already hold shards, only those
        // stay held.
        let now = crate::commands::dispatch::unix_ms();
        let end = now + (secs * 1000.0).ceil() as u64;
        ctx.srv.pause.hold_all(end);
        let _all = (ctx.locks.is_empty() && !ctx.in_script)
            .then(|| crate::commands::ctx::lock_everything(ctx.srv));
        std::thread::sleep(std::time::Duration::from_secs_f64(secs));
    }
    Ok(Reply::OK)
}

/// `DEBUG SEGFAULT`: ends the process with SIGSEGV, through the crash
/// report handler (as Redis).
fn debug_segfault(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    debug_allowed(ctx)?;
    // SAFETY: raising a signal in this process, on purpose.
    unsafe {
        libc::raise(libc::SIGSEGV);
    }
    Ok(Reply::OK)
}

/// `DEBUG ERROR <text>`: the text, verbatim, as an error reply (client
/// libraries test their handling of LOADING, READONLY, OOM … with it).
fn debug_error(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    debug_allowed(ctx)?;
    Err(CmdError::new(
        String::from_utf8_lossy(&argv[2]).into_owned(),
    ))
}

/// `DEBUG LOG <message>`: a warning line in the log, as Redis.
fn debug_log(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    debug_allowed(ctx)?;
    tracing::warn!("DEBUG LOG: {}", String::from_utf8_lossy(&argv[2]));
    Ok(Reply::OK)
}

fn debug_object(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    debug_allowed(ctx)?;
    let now = ctx.now;
    let sh = ctx.shard(&argv[2])?;
    // As Redis, a key past its deadline but not yet removed is shown (and
    // not expired by looking).
    let Some((enc, len)) = sh
        .peek_stored(&argv[2])
        .map(|v| (v.encoding(), v.as_string().map(|s| s.len()).unwrap_or(0)))
    else {
        return Err(CmdError::NO_SUCH_KEY);
    };
    let lru = sh.lru_stored(&argv[2]).unwrap_or(0);
    let idle = crate::storage::access::idle_secs(lru, now);
    Ok(Reply::StatusOwned(format!(
        "Value at:0x0 refcount:1 encoding:{enc} serializedlength:{len} lru:{lru} lru_seconds_idle:{idle}"
    )))
}

fn debug_set_active_expire(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    debug_allowed(ctx)?;
    let on = crate::protocol::args::int_arg(&argv[2])? != 0;
    ctx.srv.active_expire.store(on, Ordering::Relaxed);
    Ok(Reply::OK)
}

/// `DEBUG AOF-FLUSH-SLEEP <microseconds>`: a pause before every AOF
/// write, so a test can see that `appendfsync always` replies wait for
/// the fsync of what they wrote.
fn debug_aof_flush_sleep(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    debug_allowed(ctx)?;
    let us = crate::protocol::args::int_arg(&argv[2])?;
    let us = u64::try_from(us).unwrap_or(0);
    ctx.srv
        .persist
        .aof_flush_sleep_us
        .store(us, Ordering::Relaxed);
    Ok(Reply::OK)
}

/// `DEBUG SET-DISABLE-DENY-SCRIPTS <0|1>`: lets scripts call commands
/// flagged `noscript` (a test aid, as in Redis).
fn debug_set_disable_deny_scripts(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    debug_allowed(ctx)?;
    let on = crate::protocol::args::int_arg(&argv[2])? != 0;
    crate::scripting::DENY_SCRIPT_DISABLED.store(on, Ordering::Relaxed);
    Ok(Reply::OK)
}

/// `DEBUG SET-SKIP-CHECKSUM-VALIDATION <0|1>` (a test aid, as in Redis).
fn debug_set_skip_checksum_validation(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    debug_allowed(ctx)?;
    let on = crate::protocol::args::int_arg(&argv[2])? != 0;
    crate::persistence::rdb::SKIP_RESTORE_CHECKSUM.store(on, Ordering::Relaxed);
    Ok(Reply::OK)
}

fn debug_pause_cron(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    debug_allowed(ctx)?;
    let on = atoi_flag(&argv[2]);
    ctx.srv.cron_paused.store(on, Ordering::Relaxed);
    Ok(Reply::OK)
}

/// A DEBUG on/off argument read like Redis's atoi: anything but a
/// non-zero number is off.
fn atoi_flag(arg: &[u8]) -> bool {
    std::str::from_utf8(arg)
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .is_some_and(|n| n != 0)
}

/// `DEBUG QUICKLIST-PACKED-THRESHOLD <size>` (Redis's limits: 0 restores
/// the 1 GB default, at most 4 GB - 1 MB).
fn debug_packed_threshold(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    debug_allowed(ctx)?;
    let err =
        || CmdError::err("argument must be a memory value bigger than 1 and smaller than 4gb");
    let sz = std::str::from_utf8(&argv[2])
        .ok()
        .and_then(crate::config::parse_memory)
        .ok_or_else(err)?;
    if sz > (1u64 << 32) - (1 << 20) {
        return Err(err());
    }
    let sz = if sz == 0 { 1 << 30 } else { sz as usize };
    crate::persistence::rdb::PACKED_THRESHOLD.store(sz, Ordering::Relaxed);
    Ok(Reply::OK)
}

/// `DEBUG REPLYBUFFER RESIZING 0|1`. Redis also has PEAK-RESET-TIME, for
/// its cron's peak-based resizing; Cinnabar's reply buffers only shrink
/// after a write past 4 MiB, so that one is refused.
fn debug_replybuffer(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    debug_allowed(ctx)?;
    if !eq_ic(&argv[2], "resizing") {
        return Err(CmdError::err(
            "DEBUG REPLYBUFFER supports RESIZING only (reply buffers have no peak-based resizing here)",
        ));
    }
    let on = atoi_flag(&argv[3]);
    crate::connection::REPLY_BUFFER_RESIZING.store(on, Ordering::Relaxed);
    Ok(Reply::OK)
}

/// Cinnabar-only: a deliberate panic, caught by dispatch (see tests/server.rs).
fn debug_panic(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    debug_allowed(ctx)?;
    panic!("DEBUG PANIC-IN-HANDLER requested");
}

/// ```text
/// DEBUG HTSTATS <dbid> [full]
/// ```
/// Redis's headings over Cinnabar's layout: the main table's size and
/// element count are summed over the database's shards, and a growing
/// shard (see storage::table, incremental growth) is counted as Redis
/// reports a dict that is rehashing. Expiry deadlines live in an ordered
/// index, not a hash table: only their count is given.
fn debug_htstats(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    debug_allowed(ctx)?;
    if argv.len() > 4 || argv.get(3).is_some_and(|a| !eq_ic(a, "full")) {
        return Err(CmdError::SYNTAX);
    }
    let db = crate::protocol::args::int_arg(&argv[2])?;
    let d = usize::try_from(db)
        .ok()
        .and_then(|i| ctx.srv.keyspace.db(i))
        .ok_or_else(|| CmdError::err("Out of range database"))?;
    let (mut size, mut elements, mut volatile, mut growing, mut shards) = (0, 0, 0, 0, 0);
    for sh in d.shards() {
        let g = sh.lock();
        let (cap, grows) = g.table_stats();
        size += cap;
        elements += g.len();
        volatile += g.volatile_len();
        growing += usize::from(grows);
        shards += 1;
    }
    let mut out = String::from("[Dictionary HT]\n");
    if elements == 0 {
        out.push_str("No stats available for empty dictionaries\n");
    } else {
        out.push_str(&format!(
            "Hash table 0 stats (main hash table):\n table size: {size}\n number of elements: {elements}\n shards: {shards}\n shards rehashing: {growing}\n"
        ));
    }
    out.push_str("[Expires HT]\n");
    if volatile == 0 {
        out.push_str("No stats available for empty dictionaries\n");
    } else {
        out.push_str(&format!(
            "Ordered index stats (not a hash table):\n number of elements: {volatile}\n"
        ));
    }
    Ok(Reply::Verbatim(*b"txt", Bytes::from(out)))
}

/// ```text
/// DEBUG HTSTATS-KEY <key>
/// ```
/// Redis's dict statistics for a value held in a hash table: the main
/// bucket array and, while the table rehashes, the target array.
fn debug_htstats_key(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    use crate::storage::value::Obj;
    use crate::storage::ValueRef;
    debug_allowed(ctx)?;
    let sh = ctx.shard(&argv[2])?;
    let stats = match sh.peek_stored(&argv[2]) {
        None => return Err(CmdError::NO_SUCH_KEY),
        Some(ValueRef::Obj(Obj::Hash(h))) => h.table_stats(),
        Some(ValueRef::Obj(Obj::Set(s))) => s.table_stats(),
        Some(ValueRef::Obj(Obj::ZSet(z))) => z.table_stats(),
        Some(_) => None,
    };
    match stats {
        Some(text) => Ok(Reply::Verbatim(*b"txt", Bytes::from(text))),
        None => Err(CmdError::err(
            "The value stored at the specified key is not represented using an hash table",
        )),
    }
}

fn debug_help(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    // Like every DEBUG subcommand, refused unless enable-debug-command
    // allows it (as Redis).
    debug_allowed(ctx)?;
    Ok(help_reply(
        "DEBUG",
        &[
            "HTSTATS <dbid> [full]",
            "    Return hash table statistics of the specified Redis database.",
            "HTSTATS-KEY <key>",
            "    Like HTSTATS but for the hash table stored at <key>'s value.",
            "OBJECT <key>",
            "    Show low level info about the key and associated value.",
            "PAUSE-CRON <0|1>",
            "    Stop periodic cron job processing.",
            "SET-ACTIVE-EXPIRE <0|1>",
            "    Setting it to 0 disables expiring keys in background when they are not accessed.",
            "SLEEP <seconds>",
            "    Stop the server for <seconds>. Decimals allowed.",
        ],
    ))
}

/// ```text
/// SHUTDOWN [NOSAVE | SAVE] [NOW] [FORCE] [ABORT]
/// ```
fn shutdown(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    for a in &argv[1..] {
        if !["nosave", "save", "now", "force", "abort"]
            .iter()
            .any(|k| eq_ic(a, k))
        {
            return Err(CmdError::SYNTAX);
        }
    }
    use crate::config::ShutdownFlags as SF;
    let mut flags = 0;
    for (name, bit) in [
        ("save", SF::SAVE),
        ("nosave", SF::NOSAVE),
        ("now", SF::NOW),
        ("force", SF::FORCE),
    ] {
        if argv[1..].iter().any(|a| eq_ic(a, name)) {
            flags |= bit;
        }
    }
    let abort = argv[1..].iter().any(|a| eq_ic(a, "abort"));
    if (abort && flags != 0) || (flags & SF::SAVE != 0 && flags & SF::NOSAVE != 0) {
        return Err(CmdError::SYNTAX);
    }
    if abort {
        return if ctx.srv.shutdown.abort() {
            Ok(Reply::OK)
        } else {
            Err(CmdError::err("No shutdown in progress."))
        };
    }
    // A script past busy-reply-threshold allows only SHUTDOWN NOSAVE.
    if flags & SF::NOSAVE == 0 && crate::scripting::busy() {
        return Err(crate::scripting::busy_error());
    }
    tracing::info!(client = ctx.client.id, "User requested shutdown...");
    // Returns only if the shutdown failed (on success the process exits,
    // closing this connection without a reply, as Redis does).
    // It may wait for replicas (`shutdown-timeout`): this worker's other
    // tasks move to another thread meanwhile.
    // Counted as blocked before the worker's other connections move to
    // another thread (which takes a moment): a command that one of them
    // runs after this one already sees it.
    let blocked = &ctx.srv.shutdown.blocked;
    blocked.fetch_add(1, Ordering::SeqCst);
    let crate::server::shutdown::Refused = crate::util::blocking(|| {
        crate::server::shutdown::finish(ctx.srv, SF(flags), Some(ctx.client.id))
    });
    blocked.fetch_sub(1, Ordering::SeqCst);
    Err(CmdError::err("Errors trying to SHUTDOWN. Check logs."))
}
