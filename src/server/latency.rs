//! Latency tracking, as Redis 7 offers it:
//!
//! * **Per-command latency histograms** (`latency-tracking yes`): every
//!   call's duration goes into its command's histogram; LATENCY HISTOGRAM
//!   reports the cumulative distribution in power-of-two microsecond
//!   buckets and INFO `latencystats` the percentiles chosen by
//!   `latency-tracking-info-percentiles`. Redis uses HdrHistogram with two
//!   significant digits; this is a log-linear histogram with 16 linear
//!   sub-buckets per power of two (values within 6.25%), striped per
//!   thread so recording is one relaxed atomic add, and allocated on a
//!   command's first call (about 10 KB per command used).
//! * **The latency monitor** (`latency-monitor-threshold` ms, 0 = off):
//!   events at or above the threshold (`command`, `fast-command`, `fork`,
//!   `expire-cycle`) are kept per event as at most 160 samples, one per
//!   second (the highest), with the all-time maximum: LATENCY LATEST,
//!   HISTORY, RESET, GRAPH, DOCTOR.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use parking_lot::Mutex;

/// Exactly represented values below this; then 16 sub-buckets per octave.
const SUB: u64 = 16;
const SUB_BITS: u32 = 4;
/// Octaves kept above the linear part (up to 2^40 ns ≈ 18 minutes).
const MAX_EXP: u32 = 40;
const BUCKETS: usize = (SUB + (MAX_EXP as u64 - SUB_BITS as u64 + 1) * SUB) as usize;

fn bucket_of(ns: u64) -> usize {
    if ns < SUB {
        return ns as usize;
    }
    let e = (63 - ns.leading_zeros()).min(MAX_EXP);
    let sub = if e == MAX_EXP && ns >> MAX_EXP > 1 {
        SUB - 1
    } else {
        (ns >> (e - SUB_BITS)) & (SUB - 1)
    };
    (SUB + (e - SUB_BITS) as u64 * SUB + sub) as usize
}

/// The first value above bucket `i` (its exclusive upper bound).
fn bucket_end(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB {
        return i + 1;
    }
    let e = (i - SUB) / SUB + SUB_BITS as u64;
    let sub = (i - SUB) % SUB;
    (SUB + sub + 1) << (e - SUB_BITS as u64)
}

struct Stripe(Box<[AtomicU64]>);

/// A command's latency histogram (nanoseconds).
#[derive(Default)]
pub struct Histogram {
    stripes: OnceLock<Box<[Stripe]>>,
}

impl Histogram {
    /// Records one call of `ns` nanoseconds.
    #[inline]
    pub fn record(&self, ns: u64) {
        let s = self.stripes.get_or_init(|| {
            (0..crate::server::stats::stripe_count())
                .map(|_| Stripe((0..BUCKETS).map(|_| AtomicU64::new(0)).collect()))
                .collect()
        });
        // my_stripe() < stripe_count() == s.len().
        if let Some(stripe) = s.get(crate::server::stats::my_stripe()) {
            if let Some(c) = stripe.0.get(bucket_of(ns)) {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Counts per bucket (None if never recorded into).
    fn counts(&self) -> Option<Vec<u64>> {
        let s = self.stripes.get()?;
        let mut out = vec![0u64; BUCKETS];
        for st in s.iter() {
            for (o, c) in out.iter_mut().zip(st.0.iter()) {
                *o += c.load(Ordering::Relaxed);
            }
        }
        Some(out)
    }

    /// Calls recorded.
    pub fn total(&self) -> u64 {
        self.stripes.get().map_or(0, |s| {
            s.iter()
                .flat_map(|st| st.0.iter())
                .map(|c| c.load(Ordering::Relaxed))
                .sum()
        })
    }

    pub fn reset(&self) {
        if let Some(s) = self.stripes.get() {
            for st in s.iter() {
                for c in st.0.iter() {
                    c.store(0, Ordering::Relaxed);
                }
            }
        }
    }

    /// Total calls and the cumulative distribution at 1024·2^k ns,
    /// reported in µs as Redis's LATENCY HISTOGRAM does (a point only
    /// where the count grew). None when no call was recorded.
    pub fn cdf(&self) -> Option<(u64, Vec<(u64, u64)>)> {
        let counts = self.counts()?;
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let mut points = Vec::new();
        let mut cum = 0u64;
        let mut prev = 0u64;
        let mut bound = 1024u64;
        let mut i = 0;
        while prev < total {
            while i < BUCKETS && bucket_end(i) <= bound {
                cum += counts[i];
                i += 1;
            }
            if bound >= 1 << MAX_EXP {
                cum = total;
            }
            if cum > prev {
                points.push((bound / 1000, cum));
            }
            prev = cum;
            bound *= 2;
        }
        Some((total, points))
    }

    /// The value (ns) at or below which `pct` percent of the calls fell,
    /// as the upper end of its bucket (HdrHistogram reports the highest
    /// value equivalent to it). None when no call was recorded.
    pub fn percentiles(&self, pcts: &[f64]) -> Option<Vec<u64>> {
        let counts = self.counts()?;
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        Some(
            pcts.iter()
                .map(|&p| {
                    let want = ((p.clamp(0.0, 100.0) / 100.0 * total as f64).round() as u64).max(1);
                    let mut cum = 0;
                    for (i, c) in counts.iter().enumerate() {
                        cum += c;
                        if cum >= want {
                            return bucket_end(i) - 1;
                        }
                    }
                    bucket_end(BUCKETS - 1) - 1
                })
                .collect(),
        )
    }
}

/// Samples kept per event (Redis's LATENCY_TS_LEN).
const TS_LEN: usize = 160;

#[derive(Default, Clone)]
pub struct EventLog {
    /// (unix seconds, ms), oldest first.
    pub samples: VecDeque<(u64, u64)>,
    /// All-time maximum (ms).
    pub max: u64,
}

/// The latency monitor's events.
#[derive(Default)]
pub struct Monitor {
    events: Mutex<BTreeMap<&'static str, EventLog>>,
}

impl Monitor {
    /// Records `ms` for `event`, now, when it reaches `threshold` (0: the
    /// monitor is off).
    #[inline]
    pub fn add_if_needed(&self, threshold: u64, event: &'static str, ms: u64) {
        if threshold == 0 || ms < threshold {
            return;
        }
        self.add_at(event, ms, crate::commands::dispatch::unix_ms() / 1000);
    }

    /// Records `ms` for `event` at unix second `now_secs`.
    fn add_at(&self, event: &'static str, ms: u64, now_secs: u64) {
        let mut ev = self.events.lock();
        let log = ev.entry(event).or_default();
        log.max = log.max.max(ms);
        match log.samples.back_mut() {
            // One sample per second: the highest.
            Some(last) if last.0 == now_secs => last.1 = last.1.max(ms),
            _ => {
                if log.samples.len() == TS_LEN {
                    log.samples.pop_front();
                }
                log.samples.push_back((now_secs, ms));
            }
        }
    }

    pub fn snapshot(&self) -> BTreeMap<&'static str, EventLog> {
        self.events.lock().clone()
    }

    pub fn history(&self, event: &[u8]) -> Option<EventLog> {
        let ev = self.events.lock();
        ev.iter()
            .find(|(k, _)| k.as_bytes().eq_ignore_ascii_case(event))
            .map(|(_, v)| v.clone())
    }

    /// Clears the named events (all if none named); how many were cleared.
    pub fn reset(&self, names: &[&[u8]]) -> usize {
        let mut ev = self.events.lock();
        if names.is_empty() {
            let n = ev.len();
            ev.clear();
            return n;
        }
        let before = ev.len();
        ev.retain(|k, _| !names.iter().any(|n| k.as_bytes().eq_ignore_ascii_case(n)));
        before - ev.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_values_in_order() {
        let mut prev_end = 0;
        for i in 0..BUCKETS {
            let end = bucket_end(i);
            assert!(end > prev_end, "bucket {i}");
            // Every value in [prev_end, end) maps to bucket i.
            assert_eq!(bucket_of(prev_end), i, "start of bucket {i}");
            assert_eq!(bucket_of(end - 1), i, "end of bucket {i}");
            prev_end = end;
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn cdf_and_percentiles() {
        let h = Histogram::default();
        assert!(h.cdf().is_none());
        for _ in 0..90 {
            h.record(500); // < 1.024 µs
        }
        for _ in 0..10 {
            h.record(3_000); // < 4.096 µs
        }
        let (total, pts) = h.cdf().unwrap();
        assert_eq!(total, 100);
        assert_eq!(pts, vec![(1, 90), (4, 100)]);
        let p = h.percentiles(&[50.0, 99.0]).unwrap();
        assert!((500..=532).contains(&p[0]), "{p:?}");
        assert!((3_000..=3_200).contains(&p[1]), "{p:?}");
        h.reset();
        assert!(h.cdf().is_none());
    }

    #[test]
    fn monitor_keeps_one_sample_per_second_and_the_max() {
        let m = Monitor::default();
        m.add_if_needed(0, "command", 500);
        m.add_if_needed(100, "command", 50);
        assert!(m.snapshot().is_empty());
        m.add_at("command", 150, 1);
        m.add_at("command", 300, 1);
        m.add_at("command", 200, 2);
        let h = m.history(b"COMMAND").unwrap();
        assert_eq!(Vec::from(h.samples), vec![(1, 300), (2, 200)]);
        assert_eq!(h.max, 300);
        for s in 3..200 {
            m.add_at("fork", 100, s);
        }
        assert_eq!(m.history(b"fork").unwrap().samples.len(), TS_LEN);
        assert_eq!(m.reset(&[b"fork", b"nope"]), 1);
        assert_eq!(m.reset(&[]), 1);
    }
}
