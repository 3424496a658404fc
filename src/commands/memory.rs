//! MEMORY USAGE / STATS / DOCTOR / PURGE / HELP.
//!
//! Figures come from the allocator (jemalloc's allocated/active/resident)
//! and from each key's own size estimate (entry, key, value and collection
//! internals), the same sources `used_memory` and eviction use.

use bytes::Bytes;

use crate::commands::connection::help_reply;
use crate::commands::ctx::Ctx;
use crate::commands::server::{allocator_stats, rss_bytes};
use crate::commands::spec::{cmd, container, CmdFlags as F, CommandSpec, LockScope};
use crate::protocol::args::{eq_ic, int_arg};
use crate::protocol::{CmdError, CmdResult, Reply};

pub const SPECS: &[CommandSpec] = &[container("memory", MEMORY_SUBS).doc(
    "server",
    "4.0.0",
    "A container for memory diagnostics commands.",
)];

const MEMORY_SUBS: &[CommandSpec] = &[
    cmd("usage", -3, F::READONLY, usage).keys(2, 2, 1).doc(
        "server",
        "4.0.0",
        "Estimates the memory usage of a key.",
    ),
    cmd("stats", 2, F::empty(), stats)
        .lock(LockScope::Keys)
        .doc("server", "4.0.0", "Returns details about memory usage."),
    cmd("doctor", 2, F::empty(), doctor).doc(
        "server",
        "4.0.0",
        "Outputs a memory problems report.",
    ),
    cmd("malloc-stats", 2, F::empty(), malloc_stats).doc(
        "server",
        "4.0.0",
        "Returns the allocator's internal statistics.",
    ),
    cmd("purge", 2, F::empty(), purge).doc(
        "server",
        "4.0.0",
        "Asks the allocator to release memory.",
    ),
    cmd("help", 2, F::LOADING.union(F::STALE), help).doc(
        "server",
        "4.0.0",
        "Returns helpful text about the different subcommands.",
    ),
];

/// ```text
/// MEMORY USAGE key [SAMPLES count]
/// ```
///
/// Sizes are computed exactly, so SAMPLES is validated and otherwise has
/// no effect.
fn usage(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let mut i = 3;
    while i < argv.len() {
        if eq_ic(&argv[i], "SAMPLES") && i + 1 < argv.len() {
            if int_arg(&argv[i + 1])? < 0 {
                return Err(CmdError::SYNTAX);
            }
            i += 2;
        } else {
            return Err(CmdError::SYNTAX);
        }
    }
    let now = ctx.now;
    let key = &argv[2];
    Ok(match ctx.shard(key)?.memory_of(key, now) {
        Some(n) => Reply::Int(n as i64),
        None => Reply::Null,
    })
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// ```text
/// MEMORY STATS
/// ```
fn stats(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    let (alloc, active, resident) = allocator_stats();
    let rss = rss_bytes();
    let peak = ctx.srv.stats.note_peak_memory(alloc);
    let mut per_db: Vec<(usize, usize, usize)> = Vec::new();
    let mut keys = 0usize;
    let ndb = ctx.srv.keyspace.num_dbs();
    let mut counts = vec![(0usize, 0usize); ndb];
    ctx.visit_all_shards(|db, sh| {
        if let Some(c) = counts.get_mut(db) {
            c.0 += sh.len();
            c.1 += sh.volatile_len();
        }
        keys += sh.len();
    });
    for (db, (k, v)) in counts.into_iter().enumerate() {
        if k > 0 {
            per_db.push((db, k, v));
        }
    }
    // O(1) like Redis: overhead = the keyspace's own structures (24-byte
    // table slots, ~40 bytes per expiry record); the rest is the dataset.
    let volatile: usize = per_db.iter().map(|&(_, _, v)| v).sum();
    let overhead = (keys * 24 + volatile * 40) as u64;
    let dataset = alloc.saturating_sub(overhead);
    let mut m = vec![
        ("peak.allocated", Reply::Int(peak as i64)),
        ("total.allocated", Reply::Int(alloc as i64)),
        ("startup.allocated", Reply::Int(0)),
        (
            "replication.backlog",
            Reply::Int(ctx.srv.feed.backlog(|b| b.histlen()).unwrap_or(0) as i64),
        ),
        ("clients.slaves", Reply::Int(0)),
        ("clients.normal", Reply::Int(0)),
        ("cluster.links", Reply::Int(0)),
        ("aof.buffer", Reply::Int(0)),
        ("lua.caches", Reply::Int(0)),
        ("functions.caches", Reply::Int(0)),
    ];
    let mut out: Vec<(Reply, Reply)> = m
        .drain(..)
        .map(|(k, v)| (Reply::bulk(k.as_bytes().to_vec()), v))
        .collect();
    for (db, k, v) in per_db {
        // Entries are 24 bytes in the table; the expiry index costs about
        // 40 bytes per volatile key.
        out.push((
            Reply::bulk(format!("db.{db}").into_bytes()),
            Reply::Map(vec![
                (
                    Reply::bulk(&b"overhead.hashtable.main"[..]),
                    Reply::Int((k * 24) as i64),
                ),
                (
                    Reply::bulk(&b"overhead.hashtable.expires"[..]),
                    Reply::Int((v * 40) as i64),
                ),
            ]),
        ));
    }
    let kv = |k: &str, v: Reply| (Reply::bulk(k.as_bytes().to_vec()), v);
    out.extend([
        kv("overhead.total", Reply::Int(overhead as i64)),
        kv("keys.count", Reply::Int(keys as i64)),
        kv(
            "keys.bytes-per-key",
            Reply::Int(if keys > 0 {
                (alloc / keys as u64) as i64
            } else {
                0
            }),
        ),
        kv("dataset.bytes", Reply::Int(dataset as i64)),
        kv(
            "dataset.percentage",
            Reply::Double(ratio(dataset, alloc) * 100.0),
        ),
        kv("peak.percentage", Reply::Double(ratio(alloc, peak) * 100.0)),
        kv("allocator.allocated", Reply::Int(alloc as i64)),
        kv("allocator.active", Reply::Int(active as i64)),
        kv("allocator.resident", Reply::Int(resident as i64)),
        kv(
            "allocator-fragmentation.ratio",
            Reply::Double(ratio(active, alloc)),
        ),
        kv(
            "allocator-fragmentation.bytes",
            Reply::Int(active.saturating_sub(alloc) as i64),
        ),
        kv(
            "allocator.rss-ratio",
            Reply::Double(ratio(resident, active)),
        ),
        kv(
            "allocator.rss-bytes",
            Reply::Int(resident.saturating_sub(active) as i64),
        ),
        kv("rss-overhead.ratio", Reply::Double(ratio(rss, resident))),
        kv(
            "rss-overhead.bytes",
            Reply::Int(rss as i64 - resident as i64),
        ),
        kv("fragmentation", Reply::Double(ratio(rss, alloc))),
        kv("fragmentation.bytes", Reply::Int(rss as i64 - alloc as i64)),
    ]);
    Ok(Reply::Map(out))
}

/// ```text
/// MEMORY DOCTOR
/// ```
fn doctor(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    let (alloc, _, _) = allocator_stats();
    let rss = rss_bytes();
    let peak = ctx.srv.stats.note_peak_memory(alloc);
    let text = if alloc < 5 << 20 {
        "Hi Sam, this instance is empty or is using very little memory, my issues detector can't be used in these conditions. Please, leave for your mission on Earth and fill it with some data. The new Sam and I will be back to our programming as soon as I finished rebooting.".to_string()
    } else {
        let mut issues = Vec::new();
        if peak as f64 > alloc as f64 * 1.5 {
            issues.push(" * Peak memory: In the past this instance used more than 150% the memory that is currently using. The allocator is normally not able to release memory after a peak, so you can expect to see a big fragmentation ratio, however this is actually harmless and is only due to the memory peak, and if the Redis instance Resident Set Size (RSS) is currently bigger than expected, the memory will be used as soon as you fill the Redis instance with more data. If the memory peak was only occasional and you want to try to reclaim memory, please try the MEMORY PURGE command, otherwise the only other option is to shutdown and restart the instance.".to_string());
        }
        let frag = ratio(rss, alloc);
        if frag > 1.4 {
            issues.push(format!(" * High total RSS: This instance has a memory fragmentation and RSS overhead greater than 1.4 (this means that the Resident Set Size of the Redis process is much larger than the sum of the logical allocations Redis performed). This problem is usually due either to a large peak memory (check if there is a peak memory entry above in the report) or may result from a workload that causes the allocator to fragment memory a lot. If the problem is a large peak memory, then there is no issue. Otherwise, make sure you are using the Jemalloc allocator and not the default libc malloc. Note: The currently used allocator is \"jemalloc-5.3.0\" (fragmentation {frag:.2})."));
        }
        if issues.is_empty() {
            "Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base.".to_string()
        } else {
            format!(
                "Sam, I detected a few issues in this Redis instance memory implants:\n\n{}\n\nI'm here to keep you safe, Sam. I want to help you.\n",
                issues.join("\n\n")
            )
        }
    };
    Ok(Reply::Verbatim(*b"txt", Bytes::from(text)))
}

/// ```text
/// MEMORY MALLOC-STATS
/// ```
///
/// jemalloc's own report (`malloc_stats_print`), as Redis built with
/// jemalloc prints it.
fn malloc_stats(_ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    unsafe extern "C" fn append(out: *mut std::ffi::c_void, text: *const std::ffi::c_char) {
        // SAFETY: `out` is the `Vec<u8>` passed below, alive for the whole
        // call; jemalloc passes NUL-terminated text.
        let (out, text) = unsafe { (&mut *(out as *mut Vec<u8>), std::ffi::CStr::from_ptr(text)) };
        out.extend_from_slice(text.to_bytes());
    }
    let mut out: Vec<u8> = Vec::with_capacity(64 << 10);
    // SAFETY: the callback only appends to `out`, which outlives the call;
    // a null options pointer asks for the default report.
    unsafe {
        tikv_jemalloc_sys::malloc_stats_print(
            Some(append),
            &mut out as *mut Vec<u8> as *mut std::ffi::c_void,
            std::ptr::null(),
        );
    }
    Ok(Reply::Verbatim(*b"txt", Bytes::from(out)))
}

/// ```text
/// MEMORY PURGE
/// ```
///
/// Asks jemalloc to return every arena's unused dirty pages to the system.
fn purge(_ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    // "arena.<MALLCTL_ARENAS_ALL>.purge"; MALLCTL_ARENAS_ALL is 4096.
    let name = b"arena.4096.purge\0";
    // SAFETY: a void mallctl: no old or new value pointers, lengths zero;
    // `name` is NUL-terminated.
    let rc = unsafe {
        tikv_jemalloc_sys::mallctl(
            name.as_ptr() as *const _,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        )
    };
    if rc != 0 {
        return Err(CmdError::err("Error purging dirty pages"));
    }
    Ok(Reply::OK)
}

fn help(_ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    Ok(help_reply(
        "MEMORY",
        &[
            "DOCTOR",
            "    Return memory problems reports.",
            "MALLOC-STATS",
            "    Return internal statistics report from the memory allocator.",
            "PURGE",
            "    Attempt to purge dirty pages for reclamation by the allocator.",
            "STATS",
            "    Return information about the memory usage of the server.",
            "USAGE <key> [SAMPLES <count>]",
            "    Return memory in bytes used by <key> and its value. Nested values are",
            "    sampled up to <count> times (default: 5, 0 means sample all).",
        ],
    ))
}
