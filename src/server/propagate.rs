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
//! the replication backlog, see `server::replication`) read the encoded RESP
//! bytes in order. Each keeps its own SELECT state: the AOF's restarts at
//! every file rotation, the replication stream's runs from the backlog's
//! creation.
//!
//! When nothing consumes the stream (`appendonly no`, no replicas) the feed
//! is inactive and dispatch does not even build records: one relaxed load
//! on the write path.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};

/// Where a record goes (bits): the AOF, the replicas, or both.
pub mod to {
    pub const AOF: u8 = 1;
    pub const REPL: u8 = 2;
    pub const ALL: u8 = 3;
}

/// One command to propagate, in database `db`, to the consumers in its
/// [`to`] mask.
pub type Record = (usize, Vec<Bytes>, u8);

thread_local! {
    /// Where the running script's writes go (`redis.set_repl`): every
    /// record made on this thread takes this mask; [`to::ALL`] outside
    /// scripts.
    static TARGETS: std::cell::Cell<u8> = const { std::cell::Cell::new(to::ALL) };
}

/// The mask records made now on this thread take.
#[inline]
pub fn current_targets() -> u8 {
    TARGETS.with(|t| t.get())
}

/// Sets the mask of the records made on this thread (`redis.set_repl`;
/// reset to [`to::ALL`] when a script starts and ends).
pub fn set_current_targets(mask: u8) {
    TARGETS.with(|t| t.set(mask));
}

/// A unit of work for the AOF writer.
pub enum Segment {
    /// Encoded commands to append to the current file.
    Data(Vec<u8>),
    /// Close (after fsync) the current incremental file and continue in a
    /// new one (an AOF rewrite started: everything before this point is in
    /// the rewrite's snapshot).
    Rotate(PathBuf),
}

/// The open AOF file and how far into the stream it is written. Shared by
/// the writer thread and the connections: whoever writes drains the queued
/// segments and writes them under this lock, so the file gets the stream
/// in order (see [`Feed::sink`]).
pub struct AofSink {
    pub file: std::fs::File,
    /// Stream offset written so far (the same numbering as `appended`).
    pub off: u64,
    /// The second of the last `#TS:` annotation (aof-timestamp-enabled).
    pub last_ts: u64,
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
    /// The replication backlog, once a replica has attached.
    repl: Option<crate::server::replication::Backlog>,
    /// The end offset of a backlog freed by `repl-backlog-ttl` (a new one
    /// continues the numbering).
    repl_end: u64,
}

/// The stream shared by dispatch, background deletions and consumers.
#[derive(Default)]
pub struct Feed {
    /// Anything consumes the stream (`aof` or `repl`).
    active: AtomicBool,
    /// The AOF writer consumes it.
    aof: AtomicBool,
    /// The replication backlog consumes it.
    repl: AtomicBool,
    /// This server is a replica: its backlog holds its primary's stream,
    /// byte for byte ([`Feed::proxy`]), and nothing of its own.
    proxy: AtomicBool,
    state: Mutex<State>,
    cond: Condvar,
    /// Bytes appended since start (the end offset of the last record).
    appended: AtomicU64,
    /// Bytes written to the AOF file / made durable by fsync (offsets in
    /// the same numbering as `appended`).
    written: AtomicU64,
    synced: AtomicU64,
    /// Wakes connections waiting for their writes to be written (or, with
    /// `appendfsync always`, fsynced).
    synced_notify: tokio::sync::Notify,
    /// The AOF file while the writer runs. A connection whose replies
    /// acknowledge writes not yet in the file writes the queued data itself
    /// before sending them (`aof::write_through`), as Redis writes its AOF
    /// buffer before replying: a crash of the process then loses no write
    /// a client saw acknowledged. Lock order: `sink`, then `state`.
    pub sink: Mutex<Option<AofSink>>,
    /// Wake the writer on every append (`appendfsync always`: replies wait
    /// for it). Otherwise the writer polls every few milliseconds, which
    /// batches writes and spares a futex wake per command.
    eager: AtomicBool,
}

/// Where one top-level command's records ended in each consumer's
/// numbering (0 for a consumer that is off).
#[derive(Clone, Copy, Default, Debug)]
pub struct Emitted {
    /// The AOF stream's end offset (for `appendfsync always`).
    pub aof: u64,
    /// The replication offset (for WAIT).
    pub repl: u64,
}

/// Encodes the records of one top-level command: more than one are
/// wrapped in MULTI/EXEC so a consumer applies them atomically; a SELECT
/// precedes a record whose database differs from `db` (the consumer's
/// current one, updated), before MULTI as Redis writes it.
fn encode_records(buf: &mut Vec<u8>, db: &mut Option<usize>, records: &[Record], target: u8) {
    let mine = || records.iter().filter(|r| r.2 & target != 0);
    let n = mine().count();
    if n == 0 {
        return;
    }
    let wrap = n > 1;
    let select = |buf: &mut Vec<u8>, d: usize, db: &mut Option<usize>| {
        if *db != Some(d) {
            encode_command(
                buf,
                &[b"SELECT" as &[u8], itoa::Buffer::new().format(d).as_bytes()],
            );
            *db = Some(d);
        }
    };
    if let Some((db0, _, _)) = mine().next() {
        select(buf, *db0, db);
    }
    if wrap {
        encode_command(buf, &[b"MULTI"]);
    }
    for (d, argv, _) in mine() {
        select(buf, *d, db);
        encode_command(buf, argv);
    }
    if wrap {
        encode_command(buf, &[b"EXEC"]);
    }
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

    /// Is the AOF writer consuming the stream?
    #[inline]
    pub fn aof_active(&self) -> bool {
        self.aof.load(Ordering::Relaxed)
    }

    /// Turns the AOF's side of the stream on or off (the writer starts or
    /// stopped).
    pub fn set_aof_active(&self, on: bool) {
        let mut st = self.state.lock();
        self.aof.store(on, Ordering::SeqCst);
        self.active
            .store(on || self.repl.load(Ordering::SeqCst), Ordering::SeqCst);
        if !on {
            st.segments.clear();
            st.db = None;
        }
        st.stop = false;
    }

    /// Runs `f` on the replication backlog under the stream's lock,
    /// creating the backlog first (`create`) if there is none. Records
    /// appended before `f` returns are in the backlog at offsets past what
    /// `f` saw; none is lost in between.
    pub fn with_backlog<R>(
        &self,
        create: impl FnOnce(u64) -> crate::server::replication::Backlog,
        f: impl FnOnce(&mut crate::server::replication::Backlog) -> R,
    ) -> R {
        let mut st = self.state.lock();
        if st.repl.is_none() {
            let end = st.repl_end;
            st.repl = Some(create(end));
            self.repl.store(true, Ordering::SeqCst);
            self.active.store(true, Ordering::SeqCst);
        }
        match st.repl.as_mut() {
            Some(b) => f(b),
            None => unreachable!("the backlog was just created"),
        }
    }

    /// Frees the replication backlog (`repl-backlog-ttl` passed with no
    /// replica attached): the stream stops being encoded for it. A later
    /// backlog continues the offsets from here.
    pub fn drop_backlog(&self) {
        let mut st = self.state.lock();
        if let Some(b) = st.repl.take() {
            st.repl_end = b.end();
        }
        self.repl.store(false, Ordering::SeqCst);
        self.active
            .store(self.aof.load(Ordering::SeqCst), Ordering::SeqCst);
    }

    /// The replication stream's end offset (`master_repl_offset`): the
    /// backlog's end, or where a freed one ended.
    pub fn repl_offset(&self) -> u64 {
        let st = self.state.lock();
        st.repl.as_ref().map_or(st.repl_end, |b| b.end())
    }

    /// Runs `f` on the replication backlog if there is one.
    pub fn backlog<R>(
        &self,
        f: impl FnOnce(&mut crate::server::replication::Backlog) -> R,
    ) -> Option<R> {
        self.state.lock().repl.as_mut().map(f)
    }

    /// Appends one command to the replication stream only, outside any
    /// database (PING, REPLCONF GETACK). Returns the stream's end offset.
    pub fn emit_repl_only(&self, argv: &[&[u8]]) -> Option<u64> {
        if !self.repl.load(Ordering::Relaxed) || self.proxy.load(Ordering::Relaxed) {
            return None;
        }
        let mut st = self.state.lock();
        let b = st.repl.as_mut()?;
        let mut buf = Vec::with_capacity(64);
        encode_command(&mut buf, argv);
        Some(b.append(&buf))
    }

    /// Appends the records of one top-level command; more than one are
    /// wrapped in MULTI/EXEC so a consumer applies them atomically. Returns
    /// the end offset of what was appended. Call while still holding the
    /// shard locks of the keys involved.
    pub fn emit(&self, records: &[Record]) -> Emitted {
        self.emit_inner(records, None)
    }

    /// A replica applying its primary's stream: the records of one command
    /// (or transaction) go to the AOF, and the primary's own bytes for it
    /// (`raw`) to the backlog, in one step under the command's locks (a
    /// snapshot for a replica of ours sees either both or neither).
    pub fn emit_proxied(&self, records: &[Record], raw: &[u8]) -> Emitted {
        self.emit_inner(records, Some(raw))
    }

    fn emit_inner(&self, records: &[Record], raw: Option<&[u8]>) -> Emitted {
        if (records.is_empty() && raw.is_none_or(|r| r.is_empty())) || !self.active() {
            return Emitted::default();
        }
        let mut st = self.state.lock();
        let mut out = Emitted::default();
        let proxy = self.proxy.load(Ordering::Relaxed);
        if let (Some(b), Some(raw)) = (st.repl.as_mut(), raw) {
            out.repl = b.append(raw);
        }
        if records.is_empty() {
            return out;
        }
        if let Some(b) = st.repl.as_mut().filter(|_| !proxy) {
            let mut buf = Vec::with_capacity(64);
            let mut db = b.db;
            encode_records(&mut buf, &mut db, records, to::REPL);
            b.db = db;
            out.repl = b.append(&buf);
        }
        if !self.aof_active() {
            return out;
        }
        let mut buf = match st.segments.back_mut() {
            Some(Segment::Data(_)) => match st.segments.pop_back() {
                Some(Segment::Data(b)) => b,
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        let before = buf.len();
        let mut db = st.db;
        encode_records(&mut buf, &mut db, records, to::AOF);
        st.db = db;
        let added = (buf.len() - before) as u64;
        st.segments.push_back(Segment::Data(buf));
        out.aof = self.appended.fetch_add(added, Ordering::SeqCst) + added;
        drop(st);
        if self.eager.load(Ordering::Relaxed) {
            self.cond.notify_one();
        }
        out
    }

    /// Makes the backlog follow a primary's stream (`on`, this server
    /// became a replica) or this server's own writes again (promoted: the
    /// next record SELECTs its database).
    pub fn set_proxy(&self, on: bool) {
        let mut st = self.state.lock();
        self.proxy.store(on, Ordering::SeqCst);
        if let Some(b) = st.repl.as_mut() {
            b.db = None;
        }
    }

    /// A replica's side: appends bytes of its primary's stream (whole
    /// commands it applied) to the backlog, so its own replicas receive
    /// the same stream at the same offsets. Returns the new end offset.
    pub fn proxy(&self, bytes: &[u8]) -> Option<u64> {
        let mut st = self.state.lock();
        st.repl.as_mut().map(|b| b.append(bytes))
    }

    /// Replaces the backlog with an empty one ending at `end` (a replica
    /// took a full resync: its stream starts there). Replica links pinned
    /// in the old one must be dropped by the caller.
    pub fn reset_backlog(&self, end: u64, limit: usize) {
        let mut st = self.state.lock();
        st.repl = Some(crate::server::replication::Backlog::new(end, limit));
        self.repl.store(true, Ordering::SeqCst);
        self.active.store(true, Ordering::SeqCst);
    }

    /// Appends a single command (active expiry, eviction).
    pub fn emit_one(&self, db: usize, argv: Vec<Bytes>) {
        if self.active() {
            self.emit(&[(db, argv, to::ALL)]);
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

    /// The writer's side: waits up to `timeout` for segments (with
    /// `batch`, the whole `timeout` unless stopped or rotated, so each
    /// write(2) carries a batch). False once asked to stop and drained.
    pub fn wait(&self, timeout: std::time::Duration, batch: bool) -> bool {
        let mut st = self.state.lock();
        if (batch || st.segments.is_empty()) && !st.stop && !st.fsync {
            self.cond.wait_for(&mut st, timeout);
        }
        !(st.segments.is_empty() && st.stop)
    }

    /// Takes the queued segments: all of them (the writer), or only the data
    /// before the first rotation (a connection writing through: a rotation
    /// is the writer's to do). Call with [`Feed::sink`] locked, so what is
    /// taken is written before anything queued after it.
    pub fn drain(&self, all: bool) -> Vec<Segment> {
        let mut st = self.state.lock();
        let n = if all {
            st.segments.len()
        } else {
            st.segments
                .iter()
                .position(|s| matches!(s, Segment::Rotate(_)))
                .unwrap_or(st.segments.len())
        };
        st.segments.drain(..n).collect()
    }

    /// Wakes the writer (a connection found a rotation in its way).
    pub fn wake_writer(&self) {
        self.cond.notify_one();
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
        let before = self.written.fetch_max(off, Ordering::SeqCst);
        if synced {
            self.synced.fetch_max(off, Ordering::SeqCst);
        }
        if synced || before < off {
            self.synced_notify.notify_waiters();
        }
    }

    /// Waits until everything up to `off` is written to the AOF file, or
    /// the feed is turned off.
    pub async fn wait_written(&self, off: u64) {
        self.wait_until(|f| f.written() >= off).await
    }

    /// Waits until everything up to `off` is durable (`appendfsync
    /// always`), or the feed is turned off.
    pub async fn wait_synced(&self, off: u64) {
        self.wait_until(|f| f.synced() >= off).await
    }

    /// Waits until `done` holds, woken by the writer's progress (or the feed
    /// is turned off).
    async fn wait_until(&self, done: impl Fn(&Self) -> bool) {
        loop {
            let notified = self.synced_notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if done(self) || !self.aof_active() {
                return;
            }
            // The writer may have stopped (AOF turned off); re-check often.
            let _ = tokio::time::timeout(std::time::Duration::from_millis(50), notified).await;
        }
    }
}
