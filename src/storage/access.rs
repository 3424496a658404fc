//! Per-key access metadata for eviction: the 28 bits each entry keeps hold
//! either an LRU clock or, under an LFU policy, Redis's LFU pair: the last
//! decrement time in minutes (16 bits) and a logarithmic access counter
//! (8 bits).
//!
//! The LRU clock ticks every 100 ms, not every second as Redis's 24-bit
//! clock does: sampled LRU can only rank keys by idle time as finely as the
//! clock, and with one-second ticks every key touched within the last
//! second looks equally fresh, which at 100k+ operations per second turns
//! "approximated LRU" into random eviction for the hot part of the
//! keyspace. 28 bits of 100 ms wrap after 310 days (Redis: 194 days).
//! OBJECT IDLETIME still reports seconds.
//!
//! Which one is kept follows `maxmemory-policy`; the mode and the LFU
//! tunables live in process-wide atomics ([`set_tracking`]) so a shard can
//! update an entry on access without reaching the configuration.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// The mask of the metadata bits in an entry.
pub const META_MASK: u32 = 0x0FFF_FFFF;
/// LRU clock ticks per second.
pub const LRU_TICKS_PER_SEC: u64 = 10;
/// Counter of a new key under LFU (so it is not evicted at once).
pub const LFU_INIT_VAL: u32 = 5;

static LFU_MODE: AtomicBool = AtomicBool::new(false);
/// A fork child (BGSAVE, AOF rewrite) is running: reads leave the access
/// metadata alone, as Redis does, so that they do not dirty pages the
/// parent shares copy-on-write with the child.
static FORK_CHILD: AtomicBool = AtomicBool::new(false);
static LFU_LOG_FACTOR: AtomicU32 = AtomicU32::new(10);
static LFU_DECAY_TIME: AtomicU32 = AtomicU32::new(1);

/// Sets the tracking mode (LFU when an LFU policy is active) and the LFU
/// tunables (`lfu-log-factor`, `lfu-decay-time`).
pub fn set_tracking(lfu: bool, log_factor: u64, decay_time: u64) {
    LFU_MODE.store(lfu, Ordering::Relaxed);
    LFU_LOG_FACTOR.store(log_factor.min(u32::MAX as u64) as u32, Ordering::Relaxed);
    LFU_DECAY_TIME.store(decay_time.min(u32::MAX as u64) as u32, Ordering::Relaxed);
}

/// Records whether a fork child is running (see [`FORK_CHILD`]).
pub fn set_fork_child(running: bool) {
    FORK_CHILD.store(running, Ordering::Relaxed);
}

/// The metadata an access turns `meta` into, or None when it must stay as
/// it is: unchanged, or a fork child is running.
#[inline]
pub fn accessed(meta: u32, now_ms: u64) -> Option<u32> {
    if FORK_CHILD.load(Ordering::Relaxed) {
        return None;
    }
    let m = on_access(meta, now_ms);
    (m != meta).then_some(m)
}

/// Is LFU data being kept?
#[inline]
pub fn lfu_mode() -> bool {
    LFU_MODE.load(Ordering::Relaxed)
}

/// The LRU clock (100 ms ticks, 28 bits).
#[inline]
pub fn lru_clock(now_ms: u64) -> u32 {
    ((now_ms / (1000 / LRU_TICKS_PER_SEC)) as u32) & META_MASK
}

/// Ticks since the access recorded in `meta` (LRU mode), with wraparound.
pub fn idle_ticks(meta: u32, now_ms: u64) -> u32 {
    lru_clock(now_ms).wrapping_sub(meta) & META_MASK
}

/// Seconds since the access recorded in `meta` (OBJECT IDLETIME).
pub fn idle_secs(meta: u32, now_ms: u64) -> u64 {
    idle_ticks(meta, now_ms) as u64 / LRU_TICKS_PER_SEC
}

/// Redis's `lru_clock` INFO field (24-bit seconds clock).
pub fn redis_lru_clock(now_ms: u64) -> u32 {
    ((now_ms / 1000) as u32) & 0x00FF_FFFF
}

/// Minutes clock (16 bits) for LFU decay.
fn minutes(now_ms: u64) -> u32 {
    ((now_ms / 60_000) as u32) & 0xFFFF
}

/// Metadata for a newly created key.
#[inline]
pub fn initial(now_ms: u64) -> u32 {
    if lfu_mode() {
        (minutes(now_ms) << 8) | LFU_INIT_VAL
    } else {
        lru_clock(now_ms)
    }
}

/// The LFU counter after applying the decay for the elapsed minutes
/// (one step per `lfu-decay-time` minutes).
pub fn lfu_decayed(meta: u32, now_ms: u64) -> u32 {
    let ldt = (meta >> 8) & 0xFFFF;
    let counter = meta & 0xFF;
    let now = minutes(now_ms);
    let elapsed = if now >= ldt {
        now - ldt
    } else {
        65535 - ldt + now
    };
    let period = LFU_DECAY_TIME.load(Ordering::Relaxed);
    let steps = elapsed.checked_div(period).unwrap_or(0);
    counter.saturating_sub(steps)
}

/// Logarithmic increment: the higher the counter, the less likely a hit
/// raises it (probability 1 / ((counter - INIT) * factor + 1)).
fn lfu_log_incr(counter: u32, rand01: f64) -> u32 {
    if counter >= 255 {
        return 255;
    }
    let base = counter.saturating_sub(LFU_INIT_VAL) as f64;
    let factor = LFU_LOG_FACTOR.load(Ordering::Relaxed) as f64;
    let p = 1.0 / (base * factor + 1.0);
    if rand01 < p {
        counter + 1
    } else {
        counter
    }
}

/// Metadata after one access at `now_ms`.
#[inline]
pub fn on_access(meta: u32, now_ms: u64) -> u32 {
    if lfu_mode() {
        let c = lfu_decayed(meta, now_ms);
        let c = lfu_log_incr(c, rand::random::<f64>());
        (minutes(now_ms) << 8) | c
    } else {
        lru_clock(now_ms)
    }
}

/// Metadata recording a last access `idle_secs` seconds before `now_ms`
/// (RESTORE IDLETIME, RDB LRU info).
pub fn meta_from_idle(idle_secs: u64, now_ms: u64) -> u32 {
    let ticks = idle_secs
        .saturating_mul(LRU_TICKS_PER_SEC)
        .min(META_MASK as u64) as u32;
    lru_clock(now_ms).wrapping_sub(ticks) & META_MASK
}

/// Metadata holding LFU counter `freq` as of `now_ms` (RESTORE FREQ, RDB
/// LFU info).
pub fn meta_from_freq(freq: u8, now_ms: u64) -> u32 {
    (minutes(now_ms) << 8) | freq as u32
}

/// The counter OBJECT FREQ reports (decayed, without incrementing).
pub fn freq(meta: u32, now_ms: u64) -> u32 {
    lfu_decayed(meta, now_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_counter_saturates_slowly() {
        // With factor 10, reaching 255 takes on the order of a million hits.
        let mut c = LFU_INIT_VAL;
        let mut seed = 1u64;
        for _ in 0..100_000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = (seed >> 11) as f64 / (1u64 << 53) as f64;
            c = lfu_log_incr(c, r);
        }
        assert!(c > 100 && c < 255, "{c}");
    }

    #[test]
    fn decay_one_step_per_period() {
        set_tracking(true, 10, 1);
        let t0 = 600_000_000u64;
        let meta = (minutes(t0) << 8) | 20;
        assert_eq!(lfu_decayed(meta, t0), 20);
        assert_eq!(lfu_decayed(meta, t0 + 3 * 60_000), 17);
        assert_eq!(lfu_decayed(meta, t0 + 300 * 60_000), 0);
        set_tracking(false, 10, 1);
    }
}
