//! Memory accounting from the allocator's own statistics (jemalloc's
//! `stats.allocated`, the bytes the application holds), the figure
//! `used_memory` reports and `maxmemory` is checked against.
//!
//! Reading jemalloc's statistics needs an epoch advance (a few
//! microseconds), so the value is refreshed at most once per millisecond;
//! between refreshes, writes add their argument bytes and evictions subtract
//! what they freed, so a burst of writes within one millisecond cannot run
//! far past the limit unnoticed.
//!
//! The replication buffer (the backlog and the copies replica links hold
//! for sending) is published here as it changes ([`repl_buffer`]), and
//! pushed messages in transit are published by the Pub/Sub queues
//! ([`crate::server::pubsub::pushes_in_transit`]): eviction leaves them
//! out (the replication buffer beyond `repl-backlog-size`), and the
//! estimate between refreshes follows both, so the figure and what
//! eviction subtracts from it never disagree by a buffer allocated or
//! freed since the last refresh.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Noted write bytes past which the allocator is read again (see
/// [`MemoryMeter::used`]).
const PENDING_REFRESH: i64 = 64 * 1024;

/// The cached `used_memory` and the adjustments since it was read.
#[derive(Default)]
pub struct MemoryMeter {
    cached: AtomicU64,
    pending: AtomicI64,
    refreshed_at_ms: AtomicU64,
    /// [`followed`] when `cached` was read.
    followed_at_refresh: AtomicU64,
}

/// The figures the estimate follows between refreshes (see the module
/// docs): the replication buffer and pushed messages in transit.
fn followed() -> u64 {
    repl_buffer().saturating_add(crate::server::pubsub::pushes_in_transit())
}

/// Bytes of the replication buffer (see the module docs).
static REPL_BUFFER: AtomicU64 = AtomicU64::new(0);

/// Bytes the replication backlog and the replica links' send buffers hold
/// now (Redis's `repl_buffer_mem`).
pub fn repl_buffer() -> u64 {
    REPL_BUFFER.load(Ordering::Relaxed)
}

/// A part of the replication buffer went from `was` to `now` bytes.
pub fn repl_buffer_changed(was: u64, now: u64) {
    if now >= was {
        REPL_BUFFER.fetch_add(now - was, Ordering::Relaxed);
    } else {
        REPL_BUFFER.fetch_sub(was - now, Ordering::Relaxed);
    }
}

/// One replica link's send buffer (what it copied out of the backlog and
/// has not written yet), counted in [`repl_buffer`] while it lives.
#[derive(Default)]
pub struct ReplCopy {
    bytes: u64,
}

impl ReplCopy {
    /// The buffer now holds `bytes`.
    pub fn set(&mut self, bytes: usize) {
        repl_buffer_changed(self.bytes, bytes as u64);
        self.bytes = bytes as u64;
    }
}

impl Drop for ReplCopy {
    fn drop(&mut self) {
        self.set(0);
    }
}

/// Bytes the application holds through jemalloc now (0 when another
/// allocator is in use, as in unit tests): `stats.allocated` minus what the
/// threads' caches hold. jemalloc counts a freed block that waits in a
/// thread cache as allocated; with several worker threads those caches
/// move the figure by hundreds of kilobytes without any data changing,
/// which a small `maxmemory` (or a test that adds 100 KB to the current
/// figure) would read as growth.
pub fn allocated_now() -> u64 {
    let _ = tikv_jemalloc_ctl::epoch::advance();
    allocated_at_epoch()
}

/// [`allocated_now`] as of the last epoch advance (for a caller reading
/// several statistics after one advance).
pub fn allocated_at_epoch() -> u64 {
    let allocated = tikv_jemalloc_ctl::stats::allocated::read().map_or(0, |v| v as u64);
    allocated.saturating_sub(thread_cache_bytes())
}

/// What the allocator really sets aside for a request of `n` bytes (its
/// size class: up to a quarter more for large buffers), as Redis counts a
/// client's buffers by their usable size.
pub fn usable_size(n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    // SAFETY: nallocx only computes a size class; flags 0 is valid.
    let u = unsafe { tikv_jemalloc_sys::nallocx(n, 0) };
    if u >= n {
        u
    } else {
        n
    }
}

/// Bytes waiting in all threads' caches (`stats.arenas.<all>.tcache_bytes`).
fn thread_cache_bytes() -> u64 {
    use std::sync::OnceLock;
    use tikv_jemalloc_ctl::raw;
    // 4096 is MALLCTL_ARENAS_ALL: the sum over every arena.
    static MIB: OnceLock<Option<[usize; 4]>> = OnceLock::new();
    let mib = MIB.get_or_init(|| {
        let mut mib = [0usize; 4];
        raw::name_to_mib(b"stats.arenas.4096.tcache_bytes\0", &mut mib)
            .ok()
            .map(|_| mib)
    });
    match mib {
        // SAFETY: the MIB names a size_t statistic.
        Some(m) => unsafe { raw::read_mib::<usize>(m) }.map_or(0, |v| v as u64),
        None => 0,
    }
}

impl MemoryMeter {
    /// Reads the allocator's figure now; returns the estimate from it.
    pub fn refresh(&self, now_ms: u64) -> u64 {
        // A buffer is allocated before it is published, and freed before
        // it is withdrawn. Read before and after the allocator, the larger
        // figure includes every published buffer the allocator can still
        // show: one freed and withdrawn while the allocator was being read
        // would otherwise count as held and not published.
        let before = followed();
        let v = allocated_now();
        let followed_at = before.max(followed());
        self.followed_at_refresh
            .store(followed_at, Ordering::Relaxed);
        self.cached.store(v, Ordering::Relaxed);
        self.pending.store(0, Ordering::Relaxed);
        self.refreshed_at_ms.store(now_ms, Ordering::Relaxed);
        self.estimate()
    }

    /// The best current estimate, refreshing when the cached figure is from
    /// an earlier millisecond, or when the writes noted since add up to
    /// [`PENDING_REFRESH`]: argument bytes are an upper bound (a write
    /// that overwrites in place allocates nothing), and a fast pipelined
    /// client can send many batches within one millisecond.
    pub fn used(&self, now_ms: u64) -> u64 {
        if self.refreshed_at_ms.load(Ordering::Relaxed) != now_ms
            || self.pending.load(Ordering::Relaxed) > PENDING_REFRESH
        {
            return self.refresh(now_ms);
        }
        self.estimate()
    }

    /// Makes the next [`MemoryMeter::used`] read the allocator again (after
    /// a write whose growth the argument bytes do not show, e.g. SETBIT far
    /// past the end, when the next command's eviction must see it).
    pub fn mark_stale(&self) {
        self.refreshed_at_ms.store(0, Ordering::Relaxed);
    }

    /// The figure a decision to evict rests on: [`MemoryMeter::used`]
    /// when that is under `limit`, else read afresh from the allocator
    /// (unless nothing was noted since this millisecond's reading). Noted
    /// argument bytes are an upper bound: a client doing a hundred
    /// in-place writes a millisecond (SETRANGE over a big string) looks
    /// 15 KB larger than it is until the next reading, and evicting on
    /// that would take keys for memory nobody allocated. Costs an
    /// allocator reading per check only while the estimate is over the
    /// limit.
    pub fn confirmed_over(&self, now_ms: u64, limit: impl Fn() -> u64) -> bool {
        if self.used(now_ms) <= limit() {
            return false;
        }
        if self.pending.load(Ordering::Relaxed) == 0
            && self.refreshed_at_ms.load(Ordering::Relaxed) == now_ms
        {
            return true;
        }
        self.refresh(now_ms) > limit()
    }

    /// Cached figure plus adjustments, without refreshing.
    pub fn estimate(&self) -> u64 {
        let c = self.cached.load(Ordering::Relaxed) as i64;
        let moved = followed() as i64 - self.followed_at_refresh.load(Ordering::Relaxed) as i64;
        (c + self.pending.load(Ordering::Relaxed) + moved).max(0) as u64
    }

    /// Records bytes about to be written (a write command's arguments).
    pub fn note_alloc(&self, bytes: u64) {
        self.pending.fetch_add(bytes as i64, Ordering::Relaxed);
    }

    /// Records bytes released (an evicted key's estimated size).
    pub fn note_free(&self, bytes: u64) {
        self.pending.fetch_sub(bytes as i64, Ordering::Relaxed);
    }
}
