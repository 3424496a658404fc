//! Full resynchronisations shared by replicas that arrive together.
//!
//! Redis starts one snapshot for every replica waiting for one when it
//! starts: replicas that ask while another save runs, or during
//! `repl-diskless-sync-delay` (a diskless sync waits that long, or until
//! `repl-diskless-sync-max-replicas` have arrived, so that more replicas
//! can share it). A [`SyncJob`] is that snapshot: replicas join it until
//! its instant, then all of them are attached to the stream at the same
//! offset and receive the same bytes (one file, or one pipe whose chunks
//! go to every replica, as fast as the slowest one reads them). A job
//! all of whose replicas left is abandoned, or its snapshot aborted.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

use super::replication::{Backlog, Link};
use super::Server;
use crate::persistence::snapshot::{self, ReplSaveTo};

/// One snapshot for the replicas that joined it.
pub struct SyncJob {
    /// Sent as `$EOF:` streams (else written to a file first).
    diskless: bool,
    /// `REPLCONF rdb-filter-only` (replicas share only the same request).
    filter: Option<bool>,
    /// The versioned snapshot writing it, for aborting (0: none yet).
    snapshot: AtomicU64,
    /// "last replica dropped" was logged (by the last replica's link, or
    /// by the save that found every pipe closed first).
    dropped_logged: AtomicBool,
    /// The file of a disk-target job, deleted once nobody holds it.
    file: Option<Arc<TempFile>>,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// The snapshot's instant passed: nobody joins any more.
    started: bool,
    /// Replicas that joined and have not left.
    alive: usize,
    /// Replicas waiting for the instant.
    waiting: Vec<Member>,
    /// Replicas waiting for the end of the save.
    done: Vec<oneshot::Sender<Result<(), String>>>,
}

struct Member {
    link: Arc<Link>,
    off: oneshot::Sender<u64>,
    pipe: Option<mpsc::Sender<Bytes>>,
}

/// What a replica that joined a job waits on.
pub struct Joined {
    pub job: Arc<SyncJob>,
    /// The offset the snapshot stands for (its `+FULLRESYNC` offset),
    /// sent at the snapshot's instant; the link is then attached there.
    pub off: oneshot::Receiver<u64>,
    /// The save's result.
    pub done: oneshot::Receiver<Result<(), String>>,
    /// A diskless job's bytes.
    pub pipe: Option<mpsc::Receiver<Bytes>>,
}

/// A temporary snapshot file, deleted when the last holder drops it.
pub struct TempFile(pub PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Ids for temporary file names.
static NEXT_JOB: AtomicU64 = AtomicU64::new(1);

impl SyncJob {
    /// A disk-target job's file, held (it is deleted once nobody does).
    pub fn hold_file(&self) -> Option<Arc<TempFile>> {
        self.file.clone()
    }

    /// Redis's text (logs are read by operators' tooling), once.
    fn log_last_dropped(&self) {
        if !self.dropped_logged.swap(true, Ordering::SeqCst) {
            tracing::warn!("Diskless rdb transfer, last replica dropped, killing fork child.");
        }
    }

    fn alive(&self) -> bool {
        self.inner.lock().alive > 0
    }

    /// A replica's link ended (its `info.killed` already set). The last
    /// one to leave aborts a snapshot already running, as Redis kills an
    /// RDB child no replica waits for.
    pub fn leave(&self, srv: &Server) {
        let last = {
            let mut i = self.inner.lock();
            i.alive = i.alive.saturating_sub(1);
            i.alive == 0
        };
        if last {
            let id = self.snapshot.load(Ordering::SeqCst);
            if id != 0 {
                // Redis's texts (logs are read by operators' tooling).
                if self.diskless {
                    self.log_last_dropped();
                } else {
                    tracing::info!(
                        "Background RDB for the lost replicas is not needed any more: aborting it"
                    );
                }
                snapshot::abort_snapshot_of(srv, id);
            }
        }
    }
}

/// Joins the job that has not reached its instant yet (same kind of
/// snapshot), or starts one.
pub fn join(srv: &Arc<Server>, link: &Arc<Link>, diskless: bool, filter: Option<bool>) -> Joined {
    let (off_tx, off) = oneshot::channel();
    let (done_tx, done) = oneshot::channel();
    let (pipe_tx, pipe) = if diskless {
        let (t, r) = mpsc::channel::<Bytes>(8);
        (Some(t), Some(r))
    } else {
        (None, None)
    };
    let member = Member {
        link: link.clone(),
        off: off_tx,
        pipe: pipe_tx,
    };
    let mut pending = srv.repl.pending_sync.lock();
    if let Some(job) = pending
        .as_ref()
        .filter(|j| j.diskless == diskless && j.filter == filter)
    {
        let mut i = job.inner.lock();
        if !i.started {
            i.waiting.push(member);
            i.done.push(done_tx);
            i.alive += 1;
            tracing::info!(
                "Replica {} waits for the next snapshot, shared with {} other replica(s)",
                link.name(),
                i.alive - 1
            );
            drop(i);
            return Joined {
                job: job.clone(),
                off,
                done,
                pipe,
            };
        }
    }
    let file = (!diskless).then(|| {
        Arc::new(TempFile(PathBuf::from(format!(
            "temp-repl-{}-{}.rdb",
            std::process::id(),
            NEXT_JOB.fetch_add(1, Ordering::Relaxed)
        ))))
    });
    let inner = Inner {
        waiting: vec![member],
        done: vec![done_tx],
        alive: 1,
        ..Inner::default()
    };
    let job = Arc::new(SyncJob {
        diskless,
        filter,
        snapshot: AtomicU64::new(0),
        dropped_logged: AtomicBool::new(false),
        file,
        inner: Mutex::new(inner),
    });
    *pending = Some(job.clone());
    drop(pending);
    let (srv2, job2) = (srv.clone(), job.clone());
    let spawned = std::thread::Builder::new()
        .name("cinnabar-replsync".into())
        .spawn(move || run(&srv2, &job2));
    if spawned.is_err() {
        // Nothing will serve it: its replicas see their channels close.
        forget(srv, &job);
        job.inner.lock().waiting.clear();
    }
    Joined {
        job,
        off,
        done,
        pipe,
    }
}

/// No replica may join `job` any more.
fn forget(srv: &Server, job: &Arc<SyncJob>) {
    let mut pending = srv.repl.pending_sync.lock();
    if pending.as_ref().is_some_and(|p| Arc::ptr_eq(p, job)) {
        *pending = None;
    }
}

/// The job's thread: the diskless delay, then the save.
fn run(srv: &Arc<Server>, job: &Arc<SyncJob>) {
    if job.diskless {
        let t0 = Instant::now();
        let mut logged = false;
        loop {
            let alive = job.inner.lock().alive;
            if alive == 0 {
                break;
            }
            let delay = Duration::from_secs(srv.config.repl_diskless_sync_delay());
            let max = srv.config.repl_diskless_sync_max_replicas() as usize;
            if t0.elapsed() >= delay || (max > 0 && alive >= max) {
                break;
            }
            if !logged {
                tracing::info!(
                    "Delay next BGSAVE for diskless SYNC (repl-diskless-sync-delay {}s)",
                    delay.as_secs()
                );
                logged = true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let limit = srv.config.repl_backlog_size() as usize;
    let fanout: Arc<Mutex<Vec<mpsc::Sender<Bytes>>>> = Arc::default();
    let to = match &job.file {
        Some(f) => ReplSaveTo::Disk(f.0.clone()),
        None => ReplSaveTo::Pipe(fanout.clone()),
    };
    let result = if job.alive() {
        snapshot::save_for_replica(srv, &|| job.alive(), &job.snapshot, to, job.filter, || {
            // The snapshot's instant, under every shard lock: every
            // replica still there is attached to the stream here.
            srv.feed.with_backlog(
                |end| Backlog::new(end, limit),
                |b| {
                    let end = b.end();
                    let mut i = job.inner.lock();
                    i.started = true;
                    for m in i.waiting.drain(..) {
                        // A link that ended detached itself already.
                        if m.link.info.killed.load(Ordering::SeqCst) {
                            continue;
                        }
                        b.attach(&m.link, end);
                        if let Some(p) = m.pipe {
                            fanout.lock().push(p);
                        }
                        let _ = m.off.send(end);
                    }
                    // The new replicas' stream must SELECT before its
                    // first command (they start in db 0).
                    b.db = None;
                },
            );
        })
    } else {
        Err("every replica left".to_string())
    };
    forget(srv, job);
    if job.diskless {
        let up = fanout.lock().len();
        if result.is_ok() {
            tracing::info!(
                "Diskless rdb transfer, done reading from pipe, {up} replicas still up."
            );
        } else if up == 0 && job.inner.lock().started {
            // The save found every replica's pipe closed before the last
            // link had left.
            job.log_last_dropped();
        }
    }
    let done = {
        let mut i = job.inner.lock();
        i.started = true;
        i.waiting.clear();
        std::mem::take(&mut i.done)
    };
    for tx in done {
        let _ = tx.send(result.clone());
    }
}
