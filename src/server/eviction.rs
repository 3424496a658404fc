//! Eviction under `maxmemory`: Redis's approximated LRU/LFU with an eviction
//! pool, random and nearest-TTL policies, and per-database overrides.
//!
//! Before every command (when `maxmemory` is set) dispatch calls
//! [`perform_evictions`]. While the allocator reports more than `maxmemory`
//! it picks victims and deletes them, taking one shard lock at a time (the
//! caller holds none). Candidates come from sampling `maxmemory-samples`
//! keys per database and keeping the best 16 across rounds in a pool, as
//! Redis does: the pool makes the approximation close to true LRU at a
//! sampling cost. volatile-ttl reads each shard's deadline index directly,
//! so it takes the truly nearest deadline. Work per call is bounded by
//! `maxmemory-eviction-tenacity`; past the bound the command proceeds and
//! the server cron continues evicting.
//!
//! Per-database policies (`db-maxmemory-policy 1 noeviction`, a Cinnabar
//! extension) let sessions in one database survive while a cache in another
//! is evicted under one shared limit: databases whose policy is
//! `noeviction` are never sampled.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;

use crate::config::MaxmemoryPolicy;
use crate::server::Server;
use crate::storage::access;

/// What a call achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Under the limit (or no limit).
    Ok,
    /// Still over the limit but the time budget ran out; the cron goes on.
    Running,
    /// Over the limit with nothing evictable: denyoom commands get OOM.
    Fail,
}

const POOL_SIZE: usize = 16;

/// A candidate in the eviction pool: higher `score` = evict sooner.
#[derive(Debug, Clone)]
struct Candidate {
    score: u64,
    db: usize,
    key: Bytes,
}

/// Process-wide eviction state (one evictor at a time).
#[derive(Default)]
pub struct Evictor {
    /// Held for a whole eviction pass (see [`perform_evictions`]).
    pass: Mutex<()>,
    pool: Mutex<Vec<Candidate>>,
    /// Non-empty databases whose policy evicts, with that policy; refreshed
    /// at most every 100 ms so evicting does not lock every shard of every
    /// database each time to find out which ones hold keys.
    targets: Mutex<Option<(Instant, Targets)>>,
}

/// Databases to evict from, with their policy.
type Targets = Vec<(usize, MaxmemoryPolicy)>;

const TARGETS_TTL: Duration = Duration::from_millis(100);

fn targets(srv: &Server) -> Vec<(usize, MaxmemoryPolicy)> {
    let mut t = srv.evictor.targets.lock();
    if let Some((at, v)) = t.as_ref() {
        // An empty answer is always re-checked: keys may have arrived.
        if at.elapsed() < TARGETS_TTL && !v.is_empty() {
            return v.clone();
        }
    }
    let ks = &srv.keyspace;
    let v: Vec<(usize, MaxmemoryPolicy)> = (0..ks.num_dbs())
        .filter_map(|db| {
            let p = srv.config.policy_of_db(db);
            let d = ks.db(db)?;
            (p.evicts() && d.shards().iter().any(|sh| !sh.lock().is_empty())).then_some((db, p))
        })
        .collect();
    *t = Some((Instant::now(), v.clone()));
    v
}

/// Redis's time limit per call for a `maxmemory-eviction-tenacity` value.
fn time_limit(tenacity: u64) -> Option<Duration> {
    if tenacity <= 10 {
        return Some(Duration::from_micros(50 * tenacity.max(1)));
    }
    if tenacity < 100 {
        let us = 500.0 * 1.15f64.powi(tenacity as i32 - 10);
        return Some(Duration::from_micros(us as u64));
    }
    None
}

fn score(policy: MaxmemoryPolicy, meta: u32, expire: Option<u64>, now: u64) -> u64 {
    match policy {
        MaxmemoryPolicy::AllkeysLru | MaxmemoryPolicy::VolatileLru => {
            access::idle_ticks(meta, now) as u64
        }
        MaxmemoryPolicy::AllkeysLfu | MaxmemoryPolicy::VolatileLfu => {
            255 - access::freq(meta, now).min(255) as u64
        }
        MaxmemoryPolicy::VolatileTtl => u64::MAX - expire.unwrap_or(u64::MAX),
        _ => 0,
    }
}

fn rng() -> impl FnMut() -> u64 {
    let mut r = rand::random::<u64>() | 1;
    move || {
        // xorshift64*: cheap, good enough for sampling.
        r ^= r >> 12;
        r ^= r << 25;
        r ^= r >> 27;
        r.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Fills the pool with fresh samples from every evictable database.
fn populate(srv: &Server, dbs: &[(usize, MaxmemoryPolicy)], pool: &mut Vec<Candidate>, now: u64) {
    let ks = &srv.keyspace;
    let samples = srv.config.maxmemory_samples().max(1) as usize;
    let mut next = rng();
    for &(db, policy) in dbs {
        if !policy.is_lru() && !policy.is_lfu() && policy != MaxmemoryPolicy::VolatileTtl {
            continue;
        }
        let Some(d) = ks.db(db) else { continue };
        let nshards = d.shards().len();
        let found: Vec<(Bytes, u64)> = if policy == MaxmemoryPolicy::VolatileTtl {
            // The nearest deadlines of every shard: exact, not sampled.
            let mut all = Vec::new();
            for sh in d.shards() {
                let sh = sh.lock();
                all.extend(
                    sh.nearest_deadlines(1, now)
                        .into_iter()
                        .map(|(k, at)| (k, u64::MAX - at)),
                );
            }
            all
        } else {
            let start = (next() as usize) % nshards;
            let mut got = Vec::new();
            // Sample shards starting at a random one until enough keys.
            for i in 0..nshards {
                if got.len() >= samples {
                    break;
                }
                let mut sh = d.shard((start + i) % nshards).lock();
                if sh.is_empty() {
                    continue;
                }
                let need = samples - got.len();
                for (k, meta, exp) in sh.sample(need, policy.is_volatile(), now, &mut next) {
                    got.push((k, score(policy, meta, exp, now)));
                }
            }
            got
        };
        for (key, s) in found {
            if pool.iter().any(|c| c.db == db && c.key == key) {
                continue;
            }
            if pool.len() < POOL_SIZE {
                pool.push(Candidate { score: s, db, key });
            } else if let Some(min) = pool.iter_mut().min_by_key(|c| c.score) {
                if min.score < s {
                    *min = Candidate { score: s, db, key };
                }
            }
        }
    }
}

/// Picks one random evictable key (the random policies).
fn random_victim(
    srv: &Server,
    targets: &[(usize, MaxmemoryPolicy)],
    now: u64,
) -> Option<(usize, Bytes)> {
    let ks = &srv.keyspace;
    let mut next = rng();
    let dbs: Vec<(usize, MaxmemoryPolicy)> = targets
        .iter()
        .copied()
        .filter(|&(_, p)| !p.is_lru() && !p.is_lfu() && p != MaxmemoryPolicy::VolatileTtl)
        .collect();
    for _ in 0..16 {
        if dbs.is_empty() {
            return None;
        }
        let (db, policy) = dbs[(next() as usize) % dbs.len()];
        let volatile = policy.is_volatile();
        let d = ks.db(db)?;
        let n = d.shards().len();
        let start = (next() as usize) % n;
        for i in 0..n {
            let mut sh = d.shard((start + i) % n).lock();
            if let Some((k, _, _)) = sh.sample(1, volatile, now, &mut next).pop() {
                return Some((db, k));
            }
        }
    }
    None
}

/// Deletes `key` from `db` if it still exists; returns the bytes freed.
fn evict(srv: &Server, db: usize, key: &[u8], now: u64) -> Option<u64> {
    let d = srv.keyspace.db(db)?;
    let mut sh = d.shard(srv.keyspace.shard_index(key)).lock();
    let bytes = sh.memory_of(key, now)? as u64;
    if sh.delete(key, now) {
        srv.feed.emit_one(
            db,
            vec![
                bytes::Bytes::from_static(b"DEL"),
                bytes::Bytes::copy_from_slice(key),
            ],
        );
        drop(sh);
        srv.notify_keyspace(db, crate::config::notify::EVICTED, "evicted", key);
        Some(bytes)
    } else {
        None
    }
}

/// The allocator figure that counts as reaching `max`: what `used_memory`
/// includes but eviction leaves out is added to it. That is what a running
/// snapshot holds of old values (as Redis leaves out its fork's
/// copy-on-write pages), the replication buffer held beyond
/// `repl-backlog-size` for lagging replicas
/// ([`crate::server::replication::mem_not_counted`]), what clients
/// closed by client eviction still hold until their connections end, and
/// pushed messages on their way to connections free to take them
/// ([`crate::server::pubsub::PUSHES_IN_TRANSIT`]).
pub fn effective_limit(srv: &Server, max: u64) -> u64 {
    max.saturating_add(crate::storage::shard::CAPTURED_BYTES.load(Ordering::Relaxed))
        .saturating_add(crate::server::replication::mem_not_counted(srv))
        .saturating_add(srv.client_mem.closing())
        .saturating_add(crate::server::pubsub::pushes_in_transit())
}

/// Is `used_memory` past `maxmemory` as eviction counts it (false when no
/// limit is set)?
pub fn over_maxmemory(srv: &Server, now: u64) -> bool {
    let max = srv.config.maxmemory();
    max > 0 && srv.memory.confirmed_over(now, || effective_limit(srv, max))
}

/// Evicts until under `maxmemory`, nothing is evictable, or the time budget
/// runs out. Called with no shard lock held.
pub fn perform_evictions(srv: &Server, now: u64) -> Outcome {
    if !over_maxmemory(srv, now) {
        return Outcome::Ok;
    }
    // One pass at a time, invalidations included: a check made while
    // another pass is still queueing them would count their transient
    // buffers and evict again for them.
    let _pass = srv.evictor.pass.lock();
    let outcome = evict_until_under(srv, now);
    if srv.tracking.in_use() {
        // Invalidation messages for the evicted keys are queued once the
        // call is done, as Redis measures what a deletion freed before
        // signalling it: measured inside the loop, the messages (a key
        // name for every client that read it) can outgrow what the
        // deletions free, and eviction would feed on itself until the
        // database is empty. BCAST keys go out with the triggering
        // command's (after it, or at the tracking cron for background
        // eviction), in one message as Redis sends them once per
        // event-loop turn.
        let keys = crate::server::tracking::take_modified();
        if !keys.is_empty() {
            srv.tracking.invalidate(srv, &keys, None);
            // The next check reads what is left of that work afresh.
            srv.memory.mark_stale();
        }
    }
    outcome
}

fn evict_until_under(srv: &Server, now: u64) -> Outcome {
    let max = srv.config.maxmemory();
    // A replica leaves eviction to its primary (whose DELs it applies)
    // under `replica-ignore-maxmemory yes`, Redis's default.
    if max == 0 || (srv.repl.is_replica() && srv.config.replica_ignore_maxmemory()) {
        return Outcome::Ok;
    }
    // Read afresh at each check: every key evicted during a snapshot adds
    // its old value to what the snapshot holds.
    let limit_now = || effective_limit(srv, max);
    if !srv.memory.confirmed_over(now, limit_now) {
        return Outcome::Ok;
    }
    // CLIENT PAUSE keeps the dataset still (as Redis, no eviction).
    if crate::server::pause::paused_until(now) {
        return Outcome::Ok;
    }
    let dbs = targets(srv);
    if dbs.is_empty() {
        return Outcome::Fail;
    }
    let mut pool = srv.evictor.pool.lock();
    let limit = time_limit(srv.config.maxmemory_eviction_tenacity());
    let start = Instant::now();
    let mut evicted = 0u64;
    loop {
        if srv.memory.estimate() <= limit_now() {
            return Outcome::Ok;
        }
        // Prefer pool candidates (LRU/LFU/TTL); fall back to random picks.
        populate(srv, &dbs, &mut pool, now);
        let victim = if pool.is_empty() {
            random_victim(srv, &dbs, now)
        } else {
            pool.sort_by_key(|c| c.score);
            pool.pop().map(|c| (c.db, c.key))
        };
        let Some((db, key)) = victim else {
            // Nothing to evict: make sure the figure is current first.
            if srv.memory.refresh(now) <= limit_now() {
                return Outcome::Ok;
            }
            return Outcome::Fail;
        };
        if let Some(bytes) = evict(srv, db, &key, now) {
            srv.memory.note_free(bytes);
            srv.stats.evicted_keys.fetch_add(1, Ordering::Relaxed);
            evicted += 1;
            // What the deletions free is counted from their sizes, not
            // read back from the allocator in the loop (as Redis measures
            // each deletion alone): everything else allocated meanwhile,
            // such as the evicted key names kept for invalidation messages,
            // would otherwise count against the evictions and keep them
            // going. The next check reads the allocator again.
            if evicted.is_multiple_of(16) && limit.is_some_and(|l| start.elapsed() > l) {
                return if srv.memory.estimate() <= limit_now() {
                    Outcome::Ok
                } else {
                    Outcome::Running
                };
            }
        }
    }
}
