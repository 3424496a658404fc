//! Polling before sleeping (`busy-poll-us`): while clients keep the server
//! busy, the worker looks for new input for a short while before it goes
//! to sleep in `epoll_wait`.
//!
//! Why: a request that reaches a sleeping server pays for waking it, and on
//! virtual machines most of that is paid by the sender (an inter-processor
//! interrupt to the idle core) and by the request's latency. Under a steady
//! stream of small requests the server otherwise sleeps and is woken
//! thousands of times per second; TLS at pipeline 1 served 0.87-0.91×
//! Redis's requests while using less CPU per request (BENCHMARKS.md, stops
//! 52 and 53).
//!
//! How: one task (started by `server::run`) that, once a connection has
//! read something, keeps yielding to the scheduler. A worker whose only
//! runnable task has yielded polls the I/O driver without blocking
//! (`epoll_wait` with a zero timeout) instead of sleeping, so input that
//! arrives meanwhile is picked up without a wake-up. Activity is the
//! connections' read counter (`Stats::READS`, already counted per read);
//! the task gives up once no read happened for `window`, and then sleeps
//! until the next read wakes it (a connection pays one relaxed load of a
//! flag per read). With `busy-poll-us 0` the task only looks at the
//! setting every 100 ms and is never woken by reads.
//!
//! The window adapts as the cpuidle "haltpoll" governor's does, so that an
//! idle or lightly loaded server does not burn CPU: when the idle period
//! that followed a give-up was shorter than `busy-poll-us` (a longer window
//! would have caught it), the window doubles, up to `busy-poll-us`; when it
//! was longer, the window halves, down to 0 (then the task stops at the
//! first quiet pass). A server that is idle costs nothing; one that
//! answers requests further apart than `busy-poll-us` soon polls not at all.
//! Polling time counts as CPU time of the process, not in the `serverLoad`
//! metric (which counts command execution). INFO stats shows what polling
//! did: `cinnabar_busy_poll_hits` (passes that found input), `_misses`
//! (passes that gave up and slept) and `_usec` (time polled without input).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::server::stats::Stats;
use crate::server::Server;

/// Where the window starts when it grows from 0: this fraction of
/// `busy-poll-us`.
const GROW_START_DIV: u32 = 4;

#[derive(Default)]
pub struct BusyPoll {
    /// True while the polling task sleeps: the next read wakes it.
    asleep: AtomicBool,
    wake: tokio::sync::Notify,
    hits: AtomicU64,
    misses: AtomicU64,
    quiet_ns: AtomicU64,
}

impl BusyPoll {
    /// Called by a connection after each read.
    #[inline]
    pub fn on_read(&self) {
        if self.asleep.load(Ordering::Relaxed) {
            self.wake_up();
        }
    }

    /// INFO stats lines.
    pub fn info(&self) -> String {
        format!(
            "cinnabar_busy_poll_hits:{}\r\ncinnabar_busy_poll_misses:{}\r\ncinnabar_busy_poll_usec:{}\r\n",
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
            self.quiet_ns.load(Ordering::Relaxed) / 1000
        )
    }

    /// CONFIG RESETSTAT.
    pub fn reset_stats(&self) {
        for c in [&self.hits, &self.misses, &self.quiet_ns] {
            c.store(0, Ordering::Relaxed);
        }
    }

    fn count(&self, which: &AtomicU64, quiet: Duration) {
        which.fetch_add(1, Ordering::Relaxed);
        self.quiet_ns
            .fetch_add(quiet.as_nanos() as u64, Ordering::Relaxed);
    }

    #[cold]
    fn wake_up(&self) {
        if self.asleep.swap(false, Ordering::Relaxed) {
            self.wake.notify_one();
        }
    }
}

/// The next window after an idle period of `gap` that followed a give-up
/// with window `window` (`max` = `busy-poll-us`).
fn adapt(window: Duration, gap: Duration, max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    let start = max / GROW_START_DIV;
    if gap <= max {
        // A longer window would have caught this input.
        (window * 2).max(start).min(max)
    } else {
        let w = window / 2;
        if w < start {
            Duration::ZERO
        } else {
            w
        }
    }
}

/// The polling task: runs for the server's lifetime.
pub async fn run(srv: Arc<Server>) {
    let reads = || srv.stats.hot.get(Stats::READS);
    let bp = &srv.busy_poll;
    let mut window = Duration::ZERO;
    // When the last polling pass gave up (the last read before it).
    let mut gave_up: Option<Instant> = None;
    loop {
        if srv.config.busy_poll_us() == 0 {
            // Off: `asleep` stays false (cleared by the wake-up that
            // started the last pass), so reads never wake this task.
            gave_up = None;
            window = Duration::ZERO;
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        bp.asleep.store(true, Ordering::Relaxed);
        // A read between the store and this wait leaves a permit: no
        // wake-up is lost.
        bp.wake.notified().await;
        let mut max = Duration::from_micros(srv.config.busy_poll_us());
        if let Some(t) = gave_up.take() {
            window = adapt(window, t.elapsed(), max);
        }
        let mut seen = reads();
        let mut quiet_since: Option<Instant> = None;
        loop {
            tokio::task::yield_now().await;
            let r = reads();
            if r != seen {
                seen = r;
                if let Some(t) = quiet_since.take() {
                    bp.count(&bp.hits, t.elapsed());
                }
                continue;
            }
            let since = match quiet_since {
                Some(t) => t,
                None => {
                    // (A CONFIG SET applies from the next quiet pass.)
                    max = Duration::from_micros(srv.config.busy_poll_us());
                    *quiet_since.insert(Instant::now())
                }
            };
            let quiet = since.elapsed();
            if quiet >= window.min(max) {
                bp.count(&bp.misses, quiet);
                break;
            }
        }
        gave_up = quiet_since;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_grows_for_short_gaps_and_shrinks_to_zero_for_long_ones() {
        let max = Duration::from_micros(40);
        let us = Duration::from_micros;
        // From 0, a gap a poll could have caught opens the window at max/4.
        assert_eq!(adapt(Duration::ZERO, us(20), max), us(10));
        assert_eq!(adapt(us(10), us(30), max), us(20));
        assert_eq!(adapt(us(20), us(30), max), us(40));
        assert_eq!(adapt(us(40), us(40), max), us(40));
        // Gaps longer than max halve it, then close it.
        assert_eq!(adapt(us(40), us(500), max), us(20));
        assert_eq!(adapt(us(20), us(500), max), us(10));
        assert_eq!(adapt(us(10), us(500), max), Duration::ZERO);
        assert_eq!(adapt(Duration::ZERO, us(500), max), Duration::ZERO);
        // busy-poll-us 0: never polls.
        assert_eq!(adapt(us(40), us(1), Duration::ZERO), Duration::ZERO);
    }
}
