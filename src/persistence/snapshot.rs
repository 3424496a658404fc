//! Forked snapshots, startup loading and the AOF's lifecycle.
//!
//! **Why fork.** A snapshot must hold exactly the dataset of one instant
//! (BGSAVE is point-in-time) without stopping clients for a time that grows
//! with the dataset. `fork()` gives the child a copy-on-write view of the
//! whole heap in time proportional to the page tables (milliseconds per GB),
//! and is what Redis itself does, so the behaviour operators know carries
//! over. To make that instant consistent across shards, the forking thread
//! takes every shard lock (in the global (db, shard) order, so it cannot
//! deadlock with commands), forks, and releases them: no command is half
//! done in the child's view. The child only reads memory through the guards
//! it inherited, writes a file with plain `std::fs`, and leaves with
//! `_exit` (no destructors, no tokio, no logging locks). jemalloc installs
//! its own fork handlers, so allocating in the child is safe.

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::MutexGuard;

use crate::connection::client::{Client, ClientInfo};
use crate::persistence::aof::{self, Manifest};
use crate::persistence::{Child, ChildKind};
use crate::server::Server;
use crate::storage::Shard;

/// Every shard of every database, locked: what a snapshot child reads.
pub struct Frozen<'a> {
    pub dbs: Vec<Vec<MutexGuard<'a, Shard>>>,
    /// Unix ms at the fork (keys already expired then are not saved).
    pub now: u64,
}

/// Locks every shard, runs `at_fork` (still under the locks: e.g. rotate
/// the AOF at exactly this point), forks, and runs `child` in the child
/// process, which exits with 0 on success. Returns the child's pid.
pub fn fork_with<C>(srv: &Server, at_fork: impl FnOnce(), child: C) -> io::Result<i32>
where
    C: FnOnce(&Frozen<'_>) -> io::Result<()>,
{
    let ks = &srv.keyspace;
    let mut dbs = Vec::with_capacity(ks.num_dbs());
    for db in 0..ks.num_dbs() {
        let Some(d) = ks.db(db) else { continue };
        dbs.push(d.shards().iter().map(|m| m.lock()).collect::<Vec<_>>());
    }
    let frozen = Frozen {
        dbs,
        now: crate::commands::dispatch::unix_ms(),
    };
    at_fork();
    // SAFETY: fork() in a multi-threaded process: the child only touches
    // memory reachable through the guards it holds (no other thread can be
    // inside those shards), the allocator (fork-safe: jemalloc's atfork
    // handlers) and the file system, then leaves with _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        let ok = matches!(
            catch_unwind(AssertUnwindSafe(|| child(&frozen))),
            Ok(Ok(()))
        );
        // SAFETY: leaving the child without running the parent's
        // destructors or atexit handlers.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    drop(frozen);
    Ok(pid)
}

/// Waits for a child to exit; true if it succeeded.
pub fn wait_child(pid: i32) -> bool {
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: plain waitpid on our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
        }
        if r < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return false;
        }
    }
}

/// Registers `pid` as the running child and reaps it on a thread, then runs
/// `done(success)`.
pub fn watch_child(
    srv: &Arc<Server>,
    pid: i32,
    kind: ChildKind,
    done: impl FnOnce(&Server, bool) + Send + 'static,
) {
    *srv.persist.child.lock() = Some(Child {
        pid,
        kind,
        started: std::time::Instant::now(),
    });
    let srv = srv.clone();
    std::thread::spawn(move || {
        let ok = wait_child(pid);
        done(&srv, ok);
        *srv.persist.child.lock() = None;
    });
}

/// The directory of the AOF files (`dir` is the working directory).
pub fn aof_dir(srv: &Server) -> PathBuf {
    PathBuf::from(srv.config.appenddirname())
}

/// A client that replays commands while loading (authenticated, not
/// listed, allowed to run while `-LOADING` is answered to others).
pub fn loader_client() -> Client {
    let any: std::net::SocketAddr = ([0, 0, 0, 0], 0).into();
    let info = Arc::new(ClientInfo::new(u64::MAX, any, any));
    let mut c = Client::new(info, true);
    c.loader = true;
    c.deny_blocking = true;
    c
}

/// Replays the files of an AOF manifest into the keyspace.
pub fn load_aof(srv: &Server, dir: &Path, m: &Manifest) -> Result<u64, String> {
    let mut client = loader_client();
    let mut total = 0;
    if let Some(b) = &m.base {
        if b.name.ends_with(".rdb") {
            return Err(format!(
                "The AOF base file {} is an RDB file, which this build cannot load yet",
                b.name
            ));
        }
        total += replay(srv, &mut client, &dir.join(&b.name), false)?;
    }
    let n = m.incrs.len();
    for (i, f) in m.incrs.iter().enumerate() {
        let last = i + 1 == n;
        let ok_trunc = last && srv.config.aof_load_truncated();
        total += replay(srv, &mut client, &dir.join(&f.name), ok_trunc)?;
    }
    crate::commands::transaction::discard_state(srv, &mut client);
    Ok(total)
}

fn replay(
    srv: &Server,
    client: &mut Client,
    path: &Path,
    truncate_ok: bool,
) -> Result<u64, String> {
    let mut exec = |argv: &[Bytes]| {
        client.now = crate::commands::dispatch::unix_ms();
        let reply = crate::commands::dispatch::execute(srv, client, argv);
        if let crate::protocol::Reply::Error(e) = &reply {
            if e.as_str().starts_with("ERR unknown command") {
                tracing::warn!(command = %String::from_utf8_lossy(&argv[0]), "unknown command in the AOF");
            }
        }
    };
    let mut discard = || {};
    let r = aof::replay_file(path, truncate_ok, &mut exec, &mut discard)?;
    crate::commands::transaction::discard_state(srv, client);
    Ok(r.commands)
}

/// Startup with `appendonly yes`: loads the AOF (creating the directory
/// and manifest when there is none), then starts appending to it.
pub fn start_aof_at_boot(srv: &Arc<Server>) -> Result<(), String> {
    let dir = aof_dir(srv);
    std::fs::create_dir_all(&dir)
        .map_err(|e| format!("Can't create the AOF directory {}: {e}", dir.display()))?;
    let name = srv.config.appendfilename();
    let mpath = dir.join(aof::manifest_name(&name));
    let mut manifest = match std::fs::read_to_string(&mpath) {
        Ok(text) => Manifest::parse(&text)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Manifest::default(),
        Err(e) => {
            return Err(format!(
                "Can't read the AOF manifest {}: {e}",
                mpath.display()
            ))
        }
    };
    let t0 = std::time::Instant::now();
    let n = load_aof(srv, &dir, &manifest)?;
    if n > 0 {
        tracing::info!(
            "DB loaded from append only file: {:.3} seconds ({n} commands)",
            t0.elapsed().as_secs_f64()
        );
    }
    if manifest.incrs.is_empty() {
        let seq = manifest.next_incr_seq();
        manifest.incrs.push(aof::AofFile {
            name: aof::incr_name(&name, seq),
            seq,
            kind: aof::FileType::Incr,
        });
    }
    let Some(last) = manifest.incrs.last() else {
        return Err("AOF manifest has no incremental file".into());
    };
    let incr_path = dir.join(&last.name);
    let file = aof::open_incr(&incr_path).map_err(|e| {
        format!(
            "Can't open the append-only file {}: {e}",
            incr_path.display()
        )
    })?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    aof::write_atomic(&mpath, manifest.render().as_bytes())
        .map_err(|e| format!("Can't write the AOF manifest {}: {e}", mpath.display()))?;
    srv.persist.reset_incr_size();
    srv.persist.add_incr_size(size);
    srv.persist
        .aof_base_size
        .store(aof_total_size(&dir, &manifest), Ordering::Relaxed);
    start_writer(srv, file, dir, manifest);
    Ok(())
}

/// Sum of the sizes of the files a manifest lists.
pub fn aof_total_size(dir: &Path, m: &Manifest) -> u64 {
    m.base
        .iter()
        .chain(m.incrs.iter())
        .filter_map(|f| std::fs::metadata(dir.join(&f.name)).ok())
        .map(|md| md.len())
        .sum()
}

/// Turns the propagation stream on and starts the writer thread.
fn start_writer(srv: &Arc<Server>, file: std::fs::File, dir: PathBuf, manifest: Manifest) {
    let mut rt = srv.persist.aof.lock();
    srv.feed.set_active(true);
    let start = srv.feed.appended();
    srv.feed.set_written(start, true);
    let s2 = srv.clone();
    rt.writer = Some(std::thread::spawn(move || {
        aof::writer_loop(s2, file, start)
    }));
    rt.on = true;
    rt.dir = dir;
    rt.manifest = manifest;
}

/// Stops appending (CONFIG SET appendonly no, shutdown): the writer drains
/// and fsyncs what is queued.
pub fn stop_aof(srv: &Server) {
    let handle = {
        let mut rt = srv.persist.aof.lock();
        if !rt.on {
            return;
        }
        rt.on = false;
        srv.feed.stop_writer();
        rt.writer.take()
    };
    if let Some(h) = handle {
        let _ = h.join();
    }
    srv.feed.set_active(false);
}

/// Loads the dataset at startup on a blocking thread while clients get
/// `-LOADING`; then starts the AOF if enabled.
pub fn load_at_startup(srv: Arc<Server>) -> tokio::task::JoinHandle<Result<(), String>> {
    srv.persist.loading.store(true, Ordering::SeqCst);
    tokio::task::spawn_blocking(move || {
        let r = if srv.config.appendonly() {
            start_aof_at_boot(&srv)
        } else {
            Ok(())
        };
        srv.persist.loading.store(false, Ordering::SeqCst);
        r
    })
}
