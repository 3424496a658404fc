//! Persistence: RDB snapshots and the append-only file.
//!
//! - [`snapshot`]: point-in-time copies of the whole keyspace, either
//!   versioned (the default: a thread of this process walks the shards
//!   while commands save an entry's old state before changing it; see
//!   `storage::shard::Capture`) or by `fork()` (every shard is locked for
//!   the instant of the fork only, and the child serialises its
//!   copy-on-write view while the parent keeps serving).
//! - [`aof`]: Redis 7's multi-part append-only file fed from the
//!   propagation stream; [`rewrite`] writes its base as commands when
//!   `aof-use-rdb-preamble` is `no`.
//!
//! - [`rdb`]: the RDB snapshot/DUMP codec, with [`blobs`] (the packed
//!   listpack, ziplist, intset and zipmap blobs it embeds) and [`lzf`]
//!   (compresses exactly as Redis's bundled liblzf does — the `lzf` crate's
//!   compressor differs at the end of inputs — and decompresses with the
//!   `lzf` crate). CRC64 is the `crc` crate's CRC-64/REDIS (Jones).
//!
//! [`State`] holds what INFO persistence reports and the AOF runtime.

pub mod aof;
pub mod blobs;
pub mod lzf;
pub mod rdb;
pub mod rewrite;
pub mod snapshot;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

/// Redis's text for writes refused after a failed background save.
pub const MISCONF_RDB: &str = "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.";

/// The AOF's files and writer while `appendonly` is on.
#[derive(Default)]
pub struct AofRuntime {
    pub on: bool,
    pub dir: PathBuf,
    pub manifest: aof::Manifest,
    pub writer: Option<std::thread::JoinHandle<()>>,
}

/// Persistence state shared by commands, the cron and the children's
/// reapers.
pub struct State {
    /// Loading the dataset at startup: commands without the `loading` flag
    /// get `-LOADING`.
    pub loading: AtomicBool,
    /// The current load reached a point where Redis processes events
    /// (`loading-process-events-interval-bytes` of RDB read, or the first
    /// command of an AOF): until then, clients wait instead of being told
    /// `-LOADING`, as Redis, loading before it serves anything, makes
    /// them wait (see [`State::holds_clients`]).
    load_serving: AtomicBool,
    /// A replica loads a full resync's snapshot aside (`repl-diskless-load
    /// swapdb`, the primary's history unchanged) while clients keep
    /// reading the old dataset: only commands flagged `no-async-loading`
    /// get `-LOADING` (Redis's async_loading).
    pub async_loading: AtomicBool,
    pub aof: Mutex<AofRuntime>,
    aof_write_ok: AtomicBool,
    /// Why the last AOF write/fsync failed (for MISCONF).
    aof_last_error: Mutex<String>,
    incr_size: AtomicU64,
    /// Size of the AOF (base + incremental) after the last rewrite, for
    /// `auto-aof-rewrite-percentage`.
    pub aof_base_size: AtomicU64,
    /// Unix seconds of the last successful save.
    pub lastsave: AtomicU64,
    /// `stats.dirty` when the last successful save started.
    pub dirty_at_save: AtomicU64,
    pub last_bgsave_ok: AtomicBool,
    pub last_bgsave_secs: AtomicI64,
    /// `dbfilename` was last written by a disk-target replication sync
    /// while `rdb-del-sync-files` was on (Redis's
    /// `RDBGeneratedByReplication`): removed once no replica needs it, if
    /// persistence is off.
    pub rdb_from_sync: AtomicBool,
    pub last_rewrite_ok: AtomicBool,
    pub last_rewrite_secs: AtomicI64,
    /// The running child (at most one, as Redis): its kind and start time.
    pub child: Mutex<Option<Child>>,
    /// BGSAVE SCHEDULE / a rewrite asked for while a child ran.
    /// The snapshot child killed on purpose (FLUSHALL): its end is
    /// neither a success (its file is stale) nor a failed save.
    pub killed_child: std::sync::atomic::AtomicI32,
    pub bgsave_scheduled: AtomicBool,
    pub rewrite_scheduled: AtomicBool,
    /// Unix seconds of the last attempt that failed (save points retry
    /// after 5 s, as Redis's CONFIG_BGSAVE_RETRY_DELAY).
    pub last_bgsave_try: AtomicU64,
    /// Microseconds the last fork held clients (INFO latest_fork_usec).
    pub latest_fork_usec: AtomicU64,
    pub total_forks: AtomicU64,
    /// INFO rdb_last_load_keys_loaded / _expired: keys the last RDB load
    /// inserted, and keys it skipped as already expired.
    pub last_load_keys_loaded: AtomicU64,
    pub last_load_keys_expired: AtomicU64,
    /// INFO rdb_saves / aof_rewrites: saves and rewrites started (as
    /// Redis counts them: every BGSAVE, SAVE and replica snapshot; every
    /// rewrite), and rewrites failed in a row.
    pub rdb_saves: AtomicU64,
    pub aof_rewrites: AtomicU64,
    pub aofrw_consecutive_failures: AtomicU64,
    /// Automatic rewrites held back after repeated failures: the current
    /// delay in minutes and the unix second they may start again (0: not
    /// held), see `snapshot::aof_rewrite_limited`.
    pub aofrw_limit: parking_lot::Mutex<(u64, u64)>,
    /// `DEBUG AOF-FLUSH-SLEEP <µs>`: the AOF writer sleeps this long
    /// before writing each batch (a test aid, as Redis's aof_flush_sleep:
    /// it widens the window between a write and its fsync).
    pub aof_flush_sleep_us: AtomicU64,
    /// `appendonly` was turned on and its first rewrite has not finished:
    /// until it does, no AOF on disk holds the dataset (Redis's
    /// AOF_WAIT_REWRITE), so SHUTDOWN without FORCE refuses to exit.
    pub aof_initial: AtomicBool,
    /// The running background save's progress (INFO
    /// current_save_keys_total / _processed, current_fork_perc): keys at
    /// its instant, keys written so far. Versioned snapshots only.
    pub save_keys_total: AtomicU64,
    pub save_keys_processed: AtomicU64,
    /// The old values the last RDB save and AOF rewrite set aside for
    /// their point-in-time copy (`storage::shard::COPIED_BYTES` at their
    /// end): INFO rdb_last_cow_size / aof_last_cow_size.
    pub rdb_last_cow: AtomicU64,
    pub aof_last_cow: AtomicU64,
}

/// What a forked child is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildKind {
    Rdb,
    AofRewrite,
}

#[derive(Debug, Clone, Copy)]
pub struct Child {
    /// The forked process (0 until forked, and for a versioned snapshot).
    pub pid: i32,
    pub kind: ChildKind,
    pub started: std::time::Instant,
    /// A versioned snapshot's id (a thread of this process), 0 for a fork.
    pub snapshot: u64,
}

impl Default for State {
    fn default() -> Self {
        State {
            loading: AtomicBool::new(false),
            load_serving: AtomicBool::new(false),
            async_loading: AtomicBool::new(false),
            aof: Mutex::new(AofRuntime::default()),
            aof_write_ok: AtomicBool::new(true),
            incr_size: AtomicU64::new(0),
            aof_base_size: AtomicU64::new(0),
            lastsave: AtomicU64::new(0),
            dirty_at_save: AtomicU64::new(0),
            last_bgsave_ok: AtomicBool::new(true),
            last_bgsave_secs: AtomicI64::new(-1),
            rdb_from_sync: AtomicBool::new(false),
            last_rewrite_ok: AtomicBool::new(true),
            last_rewrite_secs: AtomicI64::new(-1),
            child: Mutex::new(None),
            aof_last_error: Mutex::new(String::new()),
            killed_child: std::sync::atomic::AtomicI32::new(0),
            bgsave_scheduled: AtomicBool::new(false),
            rewrite_scheduled: AtomicBool::new(false),
            last_bgsave_try: AtomicU64::new(0),
            latest_fork_usec: AtomicU64::new(0),
            total_forks: AtomicU64::new(0),
            last_load_keys_loaded: AtomicU64::new(0),
            last_load_keys_expired: AtomicU64::new(0),
            rdb_saves: AtomicU64::new(0),
            aof_rewrites: AtomicU64::new(0),
            aofrw_consecutive_failures: AtomicU64::new(0),
            aofrw_limit: parking_lot::Mutex::new((0, 0)),
            aof_flush_sleep_us: AtomicU64::new(0),
            aof_initial: AtomicBool::new(false),
            save_keys_total: AtomicU64::new(0),
            save_keys_processed: AtomicU64::new(0),
            rdb_last_cow: AtomicU64::new(0),
            aof_last_cow: AtomicU64::new(0),
        }
    }
}

impl State {
    pub fn add_incr_size(&self, n: u64) {
        self.incr_size.fetch_add(n, Ordering::Relaxed);
    }
    pub fn reset_incr_size(&self) {
        self.incr_size.store(0, Ordering::Relaxed);
    }
    pub fn incr_size(&self) -> u64 {
        self.incr_size.load(Ordering::Relaxed)
    }
    pub fn set_aof_write_status(&self, ok: bool) {
        self.aof_write_ok.store(ok, Ordering::Relaxed);
    }
    /// A write or fsync of the AOF failed with `e` (MISCONF names it).
    /// True when the status was fine until now (a new failure, not a
    /// retry of the same one).
    pub fn aof_write_failed(&self, e: &std::io::Error) -> bool {
        let text = e.to_string();
        // strerror's words, without Rust's " (os error N)".
        let text = match text.rfind(" (os error ") {
            Some(i) => text[..i].to_string(),
            None => text,
        };
        *self.aof_last_error.lock() = text;
        self.aof_write_ok.swap(false, Ordering::Relaxed)
    }
    /// Redis's MISCONF refusal of writes (and PING) while the data cannot
    /// be persisted: the last background save failed, save points exist
    /// and `stop-writes-on-bgsave-error` is on; or the AOF is on and its
    /// last write failed. Two relaxed loads when all is well.
    pub fn disk_error(&self, cfg: &crate::config::Config) -> Option<crate::protocol::CmdError> {
        let rdb_failed = !self.last_bgsave_ok.load(Ordering::Relaxed);
        let aof_failed = !self.aof_write_ok.load(Ordering::Relaxed);
        if !rdb_failed && !aof_failed {
            return None;
        }
        if rdb_failed && cfg.stop_writes_on_bgsave_error() && !cfg.save_points().is_empty() {
            return Some(crate::protocol::CmdError::from_static(MISCONF_RDB));
        }
        if aof_failed && self.aof.lock().on {
            return Some(crate::protocol::CmdError::new(format!(
                "MISCONF Errors writing to the AOF file: {}",
                self.aof_last_error.lock()
            )));
        }
        None
    }
    pub fn aof_write_ok(&self) -> bool {
        self.aof_write_ok.load(Ordering::Relaxed)
    }
    pub fn loading(&self) -> bool {
        self.loading.load(Ordering::Relaxed)
    }
    /// A load starts: `-LOADING` for commands without the `loading` flag,
    /// after clients have waited for its first progress point.
    pub fn begin_loading(&self) {
        self.load_serving.store(false, Ordering::SeqCst);
        self.loading.store(true, Ordering::SeqCst);
    }
    /// The load reached a point where Redis processes events.
    pub fn load_progressed(&self) {
        if !self.load_serving.load(Ordering::Relaxed) {
            self.load_serving.store(true, Ordering::Relaxed);
        }
    }
    /// Commands wait rather than run: a load is in progress and has not
    /// reached its first progress point. Redis loads before its event loop
    /// runs, and during a load serves clients only at those points, so a
    /// short load (an empty AOF being created at startup, a small RDB)
    /// is never seen as `-LOADING`.
    pub fn holds_clients(&self) -> bool {
        self.loading() && !self.load_serving.load(Ordering::Relaxed)
    }
    pub fn async_loading(&self) -> bool {
        self.async_loading.load(Ordering::Relaxed)
    }
    pub fn child_kind(&self) -> Option<ChildKind> {
        self.child.lock().map(|c| c.kind)
    }
}

/// Bytes between two fdatasyncs of a file a save is writing (Redis's
/// REDIS_AUTOSYNC_BYTES, used with `rdb-save-incremental-fsync` and
/// `aof-rewrite-incremental-fsync`).
pub const INCREMENTAL_FSYNC_BYTES: u64 = 4 << 20;

/// A file being written by a save, fdatasync'ed every `every` bytes
/// (0: only when the caller syncs it at the end). Without it a save leaves
/// its whole file dirty in the page cache: the kernel's flusher threads
/// (at normal priority, where the save's own thread runs at `child-nice`)
/// write it back in bursts, and the final fsync waits for all of it.
///
/// Or, for a diskless replica sync, no file at all: the bytes go as chunks
/// through bounded channels to the replicas' connection tasks (a slow
/// replica slows the save, as a full pipe slows Redis's child).
pub struct SyncedFile {
    out: SaveOut,
    every: u64,
    pending: u64,
}

enum SaveOut {
    File(std::fs::File),
    Pipe(PipeTargets),
}

/// The channels of the replicas a diskless snapshot goes to.
pub type PipeTargets = Arc<Mutex<Vec<tokio::sync::mpsc::Sender<bytes::Bytes>>>>;

impl SyncedFile {
    pub fn new(file: std::fs::File, every: u64) -> SyncedFile {
        SyncedFile {
            out: SaveOut::File(file),
            every,
            pending: 0,
        }
    }

    /// A save into `tx` (from a thread outside the async runtime: sends
    /// block while the channel is full).
    pub fn pipe(to: PipeTargets) -> SyncedFile {
        SyncedFile {
            out: SaveOut::Pipe(to),
            every: 0,
            pending: 0,
        }
    }

    /// The end of the save: a file is fsynced; a pipe closes, which tells
    /// the reader everything arrived.
    pub fn finish(self) -> std::io::Result<()> {
        match self.out {
            SaveOut::File(f) => f.sync_all(),
            SaveOut::Pipe(_) => Ok(()),
        }
    }
}

impl std::io::Write for SyncedFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = match &mut self.out {
            SaveOut::File(f) => f.write(buf)?,
            SaveOut::Pipe(to) => {
                // Every replica gets each chunk, at the pace of the
                // slowest (as Redis feeds its replicas from one pipe); one
                // that left is dropped, and with none left the save ends.
                let chunk = bytes::Bytes::copy_from_slice(buf);
                let mut to = to.lock();
                to.retain(|tx| tx.blocking_send(chunk.clone()).is_ok());
                if to.is_empty() {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::BrokenPipe,
                        "the replicas went away",
                    ));
                }
                buf.len()
            }
        };
        self.pending += n as u64;
        if let SaveOut::File(f) = &self.out {
            if self.every > 0 && self.pending >= self.every {
                f.sync_data()?;
                self.pending = 0;
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.out {
            SaveOut::File(f) => f.flush(),
            SaveOut::Pipe(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SyncedFile;
    use std::io::Write;

    #[test]
    fn a_synced_file_writes_every_byte_across_its_syncs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        let mut f = SyncedFile::new(std::fs::File::create(&path).expect("create"), 1000);
        let chunk: Vec<u8> = (0..=255u8).collect();
        for _ in 0..40 {
            f.write_all(&chunk).expect("write");
        }
        f.flush().expect("flush");
        // The byte count restarts at every sync.
        assert!(f.pending < 1000);
        f.finish().expect("sync");
        let back = std::fs::read(&path).expect("read");
        assert_eq!(back.len(), 40 * 256);
        assert!(back.chunks(256).all(|c| c == chunk.as_slice()));
    }
}
