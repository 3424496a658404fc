//! The ordered propagation stream: every write that succeeded, as the
//! commands that reproduce it, in one total order consistent with the
//! keyspace.
//!
//! Dispatch turns a command that changed data into records (its own argv,
//! or the deterministic form the handler asked for with
//! `Ctx::propagate_as`, e.g. `EXPIRE k 10` → `PEXPIREAT k <ms>`), gathers
//! the records of one top-level command (a whole EXEC or script wraps them
//! in MULTI/EXEC) and appends them here *while it still holds the shard
//! locks*: two writes to the same key are therefore recorded in the order
//! they happened, and writes to different keys commute. Active expiry and
//! eviction append their DELs the same way. Consumers (the AOF writer, and
//! later the replication backlog) read the encoded RESP bytes in order.
//!
//! When nothing consumes the stream (`appendonly no`, no replicas) the feed
//! is inactive and dispatch does not even build records: one relaxed load
//! on the write path.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};

/// One command to propagate, in database `db`.
pub type Record = (usize, Vec<Bytes>);

/// A unit of work for the AOF writer.
pub enum Segment {
    /// Encoded commands to append to the current file.
    Data(Vec<u8>),
    /// Close (after fsync) the current incremental file and continue in a
    /// new one (an AOF rewrite started: everything before this point is in
    /// the rewrite's snapshot).
    Rotate(PathBuf),
}

#[derive(Default)]
struct State {
    /// Segments not yet taken by the writer (the last one may still grow).
    segments: VecDeque<Segment>,
    /// The database the stream last SELECTed (`None` after a rotation: the
    /// next record selects again).
    db: Option<usize>,
    /// The writer thread should stop after draining.
    stop: bool,
    /// Someone waits for everything written so far to be fsynced
    /// (shutdown), whatever `appendfsync` says.
    fsync: bool,
}

/// The stream shared by dispatch, background deletions and consumers.
#[derive(Default)]
pub struct Feed {
    active: AtomicBool,
    state: Mutex<State>,
    cond: Condvar,
    /// Bytes appended since start (the end offset of the last record).
    appended: AtomicU64,
    /// Bytes written to the AOF file / made durable by fsync (offsets in
    /// the same numbering as `appended`).
    written: AtomicU64,
    synced: AtomicU64,
    /// Wakes connections waiting for `appendfsync always` durability.
    synced_notify: tokio::sync::Notify,
    /// Wake the writer on every append (`appendfsync always`: replies wait
    /// for it). Otherwise the writer polls every few milliseconds, which
    /// batches writes and spares a futex wake per command.
    eager: AtomicBool,
}

/// Appends `argv` to `out` as a RESP array of bulk strings.
pub fn encode_command(out: &mut Vec<u8>, argv: &[impl AsRef<[u8]>]) {
    let mut ib = itoa::Buffer::new();
    out.push(b'*');
    out.extend_from_slice(ib.format(argv.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for a in argv {
        let a = a.as_ref();
        out.push(b'$');
        out.extend_from_slice(ib.format(a.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

impl Feed {
    /// Should every append wake the writer at once (see `eager`)?
    pub fn set_eager(&self, on: bool) {
        self.eager.store(on, Ordering::Relaxed);
    }

    /// Is anything consuming the stream?
    #[inline]
    pub fn active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    pub fn set_active(&self, on: bool) {
        let mut st = self.state.lock();
        self.active.store(on, Ordering::SeqCst);
        if !on {
            st.segments.clear();
            st.db = None;
        }
        st.stop = false;
    }

    /// Appends the records of one top-level command; more than one are
    /// wrapped in MULTI/EXEC so a consumer applies them atomically. Returns
    /// the end offset of what was appended. Call while still holding the
    /// shard locks of the keys involved.
    pub fn emit(&self, records: &[Record]) -> u64 {
        if records.is_empty() || !self.active() {
            return self.appended.load(Ordering::Relaxed);
        }
        let mut st = self.state.lock();
        let mut buf = match st.segments.back_mut() {
            Some(Segment::Data(_)) => match st.segments.pop_back() {
                Some(Segment::Data(b)) => b,
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        let before = buf.len();
        let wrap = records.len() > 1;
        // The SELECT goes before MULTI, as Redis writes it.
        if let Some((db0, _)) = records.first() {
            if st.db != Some(*db0) {
                encode_command(
                    &mut buf,
                    &[
                        b"SELECT" as &[u8],
                        itoa::Buffer::new().format(*db0).as_bytes(),
                    ],
                );
                st.db = Some(*db0);
            }
        }
        if wrap {
            encode_command(&mut buf, &[b"MULTI"]);
        }
        for (db, argv) in records {
            if st.db != Some(*db) {
                encode_command(
                    &mut buf,
                    &[
                        b"SELECT" as &[u8],
                        itoa::Buffer::new().format(*db).as_bytes(),
                    ],
                );
                st.db = Some(*db);
            }
            encode_command(&mut buf, argv);
        }
        if wrap {
            encode_command(&mut buf, &[b"EXEC"]);
        }
        let added = (buf.len() - before) as u64;
        st.segments.push_back(Segment::Data(buf));
        let end = self.appended.fetch_add(added, Ordering::SeqCst) + added;
        drop(st);
        if self.eager.load(Ordering::Relaxed) {
            self.cond.notify_one();
        }
        end
    }

    /// Appends a single command (active expiry, eviction).
    pub fn emit_one(&self, db: usize, argv: Vec<Bytes>) {
        if self.active() {
            self.emit(&[(db, argv)]);
        }
    }

    /// Inserts a file rotation at the current point of the stream (see
    /// [`Segment::Rotate`]); the next record re-selects its database.
    pub fn rotate(&self, path: PathBuf) {
        let mut st = self.state.lock();
        st.segments.push_back(Segment::Rotate(path));
        st.db = None;
        drop(st);
        self.cond.notify_one();
    }

    /// The writer's side: waits up to `timeout` for segments and takes them
    /// all. Returns `None` once asked to stop and drained.
    /// With `batch`, waits the whole `timeout` (unless stopped or rotated)
    /// even if segments are queued, so each write(2) carries a batch.
    pub fn take(&self, timeout: std::time::Duration, batch: bool) -> Option<Vec<Segment>> {
        let mut st = self.state.lock();
        if (batch || st.segments.is_empty()) && !st.stop && !st.fsync {
            self.cond.wait_for(&mut st, timeout);
        }
        if st.segments.is_empty() && st.stop {
            return None;
        }
        Some(st.segments.drain(..).collect())
    }

    /// Asks the writer to write and fsync what is queued now (see
    /// [`Feed::synced`] for when it has).
    pub fn request_fsync(&self) {
        let mut st = self.state.lock();
        st.fsync = true;
        drop(st);
        self.cond.notify_all();
    }

    /// The writer's side: was an fsync asked for since the last call?
    pub fn take_fsync_request(&self) -> bool {
        std::mem::take(&mut self.state.lock().fsync)
    }

    /// Asks the writer to finish what is queued and stop.
    pub fn stop_writer(&self) {
        let mut st = self.state.lock();
        st.stop = true;
        drop(st);
        self.cond.notify_all();
    }

    /// End offset of everything appended so far.
    pub fn appended(&self) -> u64 {
        self.appended.load(Ordering::SeqCst)
    }

    /// End offset of what the writer has written (not necessarily synced).
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::SeqCst)
    }

    /// End offset of what is durable on disk.
    pub fn synced(&self) -> u64 {
        self.synced.load(Ordering::SeqCst)
    }

    /// The writer reports progress.
    pub fn set_written(&self, off: u64, synced: bool) {
        self.written.fetch_max(off, Ordering::SeqCst);
        if synced {
            self.synced.fetch_max(off, Ordering::SeqCst);
            self.synced_notify.notify_waiters();
        }
    }

    /// Waits until everything up to `off` is durable (`appendfsync
    /// always`), or the feed is turned off.
    pub async fn wait_synced(&self, off: u64) {
        loop {
            let notified = self.synced_notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.synced() >= off || !self.active() {
                return;
            }
            // The writer may have stopped (AOF turned off); re-check often.
            let _ = tokio::time::timeout(std::time::Duration::from_millis(50), notified).await;
        }
    }
}
