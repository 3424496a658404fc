//! CLIENT PAUSE / UNPAUSE: holding clients' commands for a while (a
//! failover rehearsal, or a consistent moment for an external copy).
//!
//! `WRITE` holds commands that may change data or feed the replication
//! stream (write and may-replicate commands, EXEC of such a transaction,
//! scripts unless they declare `no-writes`); `ALL` holds every command.
//! A held client waits in its connection task (no thread, no lock): the
//! gate in `connection::serve` asks [`crate::commands::dispatch::must_postpone`]
//! before each command and, while it says so, waits here for the pause to
//! change or end, then asks again (a pause relaxed from ALL to WRITE lets
//! reads through). As in Redis, the dataset stays still meanwhile: keys
//! past their TTL read as missing but are not deleted (storage consults
//! [`paused_until`]), the active expire cycle and eviction skip their turns.
//! On a replica the primary's stream is held the same way (its master
//! client asks the same question per command, `server::replica`): it is
//! still read (`slave_read_repl_offset` grows) but not applied
//! (`slave_repl_offset` stays), as Redis postpones its master client.

use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

/// What a pause holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum PauseKind {
    Off = 0,
    Write = 1,
    All = 2,
}

/// Unix ms until which the dataset stays still (0: not paused). Read by
/// storage on every expired-key lookup, so kept outside the server struct.
static FROZEN_UNTIL: AtomicU64 = AtomicU64::new(0);

/// Is the dataset held still at `now_ms` (expired keys are not deleted)?
#[inline]
pub fn paused_until(now_ms: u64) -> bool {
    let end = FROZEN_UNTIL.load(Ordering::Relaxed);
    end != 0 && now_ms <= end
}

#[derive(Default)]
pub struct Pause {
    kind: AtomicU8,
    end_ms: AtomicU64,
    /// Serializes PAUSE/UNPAUSE (the two atomics change together).
    update: Mutex<()>,
    changed: Notify,
    /// Clients currently held (counted in INFO blocked_clients).
    pub held: AtomicUsize,
    /// Unix ms until which a DEBUG SLEEP holds every command (0: none).
    sleep_end: AtomicU64,
}

impl Pause {
    /// Is any pause set (possibly already elapsed)? One relaxed load: the
    /// connection loop asks before every command.
    #[inline]
    pub fn maybe_active(&self) -> bool {
        self.kind.load(Ordering::Relaxed) != PauseKind::Off as u8
            || self.sleep_end.load(Ordering::Relaxed) != 0
    }

    /// The pause in force at `now_ms` (a DEBUG SLEEP counts as ALL).
    pub fn current(&self, now_ms: u64) -> PauseKind {
        let sleep = self.sleep_end.load(Ordering::Acquire);
        if sleep != 0 {
            if now_ms <= sleep {
                return PauseKind::All;
            }
            // Over: cleared unless a new sleep has begun meanwhile.
            let _ = self
                .sleep_end
                .compare_exchange(sleep, 0, Ordering::AcqRel, Ordering::Relaxed);
        }
        let k = self.kind.load(Ordering::Acquire);
        if k == PauseKind::Off as u8 {
            return PauseKind::Off;
        }
        if self.end_ms.load(Ordering::Acquire) < now_ms {
            // Elapsed: switch it off so the connection loop's one-load
            // check sees that (unless a PAUSE/UNPAUSE is under way).
            if let Some(_g) = self.update.try_lock() {
                if self.end_ms.load(Ordering::Acquire) < now_ms {
                    self.kind.store(PauseKind::Off as u8, Ordering::Release);
                    FROZEN_UNTIL.store(0, Ordering::Relaxed);
                }
            }
            return PauseKind::Off;
        }
        if k == PauseKind::All as u8 {
            PauseKind::All
        } else {
            PauseKind::Write
        }
    }

    /// CLIENT PAUSE: until `end_ms`, holding `kind`. A pause already in
    /// force is only extended and made stricter, never shortened or
    /// relaxed (Redis's rule for repeated pauses).
    pub fn pause(&self, end_ms: u64, kind: PauseKind, now_ms: u64) {
        let _g = self.update.lock();
        let (kind, end) = match self.current(now_ms) {
            PauseKind::Off => (kind, end_ms),
            cur => (
                cur.max(kind),
                self.end_ms.load(Ordering::Acquire).max(end_ms),
            ),
        };
        self.end_ms.store(end, Ordering::Release);
        self.kind.store(kind as u8, Ordering::Release);
        FROZEN_UNTIL.store(end.max(1), Ordering::Relaxed);
        self.changed.notify_waiters();
    }

    /// DEBUG SLEEP: every client's commands wait until `end_ms`, as a
    /// sleeping single-threaded server answers none. Kept apart from
    /// CLIENT PAUSE: the dataset is not frozen, and a pause in force keeps
    /// its own kind and end.
    pub fn hold_all(&self, end_ms: u64) {
        self.sleep_end.fetch_max(end_ms, Ordering::AcqRel);
    }

    /// CLIENT UNPAUSE: held clients run their commands.
    pub fn unpause(&self) {
        let _g = self.update.lock();
        self.kind.store(PauseKind::Off as u8, Ordering::Release);
        self.end_ms.store(0, Ordering::Release);
        FROZEN_UNTIL.store(0, Ordering::Relaxed);
        self.changed.notify_waiters();
    }

    /// Waits until the pause changes (UNPAUSE, a new PAUSE) or ends.
    pub async fn wait_change(&self, now_ms: u64) {
        let notified = self.changed.notified();
        tokio::pin!(notified);
        // Registered before re-checking, so no change is missed.
        notified.as_mut().enable();
        if self.current(now_ms) == PauseKind::Off {
            return;
        }
        let sleep = self.sleep_end.load(Ordering::Acquire);
        let end = if sleep >= now_ms {
            sleep
        } else {
            self.end_ms.load(Ordering::Acquire)
        };
        let left = end.saturating_sub(now_ms) + 1;
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep(Duration::from_millis(left)) => {}
        }
    }
}
