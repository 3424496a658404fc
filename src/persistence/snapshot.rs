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

use std::fs::File;
use std::io::{self, BufReader};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::MutexGuard;

use crate::config::SnapshotMethod;
use crate::connection::client::{Client, ClientInfo};
use crate::persistence::aof::{self, Manifest};
use crate::persistence::rdb;
use crate::persistence::{Child, ChildKind};
use crate::server::Server;
use crate::storage::entry::prefetch_at;
use crate::storage::shard::{CaptureStep, RecordEncoder, CAPTURED_BYTES};
use crate::storage::value::ValueRef;
use crate::storage::{Keyspace, Shard};

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
    let nice = libc::c_int::try_from(srv.config.child_nice()).unwrap_or(0);
    let oom_mode = srv.config.oom_score_adj();
    let oom_values = srv.config.oom_score_adj_values();
    let t0 = std::time::Instant::now();
    let dbs = crate::commands::ctx::lock_everything(srv);
    let frozen = Frozen {
        dbs,
        now: crate::commands::dispatch::unix_ms(),
    };
    at_fork();
    crate::storage::access::set_fork_child(true);
    // SAFETY: fork() in a multi-threaded process: the child only touches
    // memory reachable through the guards it holds (no other thread can be
    // inside those shards), the allocator (fork-safe: jemalloc's atfork
    // handlers) and the file system, then leaves with _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        let e = io::Error::last_os_error();
        crate::storage::access::set_fork_child(false);
        return Err(e);
    }
    if pid == 0 {
        // The child needs no inherited descriptor (it opens its output by
        // path): closing them all lets the listening sockets go with the
        // parent (a server restarted while a child still writes can bind
        // its port) and keeps client sockets from lingering.
        // SAFETY: close_range on our own descriptor table; nothing in the
        // child uses an inherited descriptor above stderr.
        if unsafe { libc::close_range(3, libc::c_uint::MAX, 0) } != 0 {
            for fd in 3..1024 {
                // SAFETY: as above, closing descriptors the child never uses.
                unsafe { libc::close(fd) };
            }
        }
        // The child's class of oom-score-adj-values (failure leaves the
        // parent's score, which is harmless).
        let _ = crate::server::process::apply_oom_score_adj(
            oom_mode,
            oom_values,
            crate::server::process::OOM_BGCHILD,
        );
        if nice > 0 {
            // SAFETY: setpriority on this (child) process only; failure
            // leaves the priority unchanged, which is harmless.
            unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
        }
        let ok = matches!(
            catch_unwind(AssertUnwindSafe(|| child(&frozen))),
            Ok(Ok(()))
        );
        // SAFETY: leaving the child without running the parent's
        // destructors or atexit handlers.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    drop(frozen);
    // INFO's latest_fork_usec: how long clients were held (the locks and
    // the fork itself).
    let p = &srv.persist;
    let usec = t0.elapsed().as_micros() as u64;
    p.latest_fork_usec.store(usec, Ordering::Relaxed);
    p.total_forks.fetch_add(1, Ordering::Relaxed);
    srv.latency
        .add_if_needed(srv.config.latency_monitor_threshold(), "fork", usec / 1000);
    Ok(pid)
}

/// Waits for a child to exit; true if it succeeded.
pub fn wait_child(pid: i32) -> bool {
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: plain waitpid on our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            crate::storage::access::set_fork_child(false);
            return libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
        }
        if r < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            crate::storage::access::set_fork_child(false);
            return false;
        }
    }
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

/// The AOF directory and its manifest as on disk now.
pub fn aof_manifest_on_disk(srv: &Server) -> Result<(PathBuf, Manifest), String> {
    let dir = aof_dir(srv);
    let mpath = dir.join(aof::manifest_name(&srv.config.appendfilename()));
    let m = std::fs::read_to_string(&mpath)
        .map_err(|e| format!("{}: {e}", mpath.display()))
        .and_then(|t| Manifest::parse(&t))?;
    Ok((dir, m))
}

/// Replays the files of an AOF manifest into the keyspace. Every file may
/// start with an RDB (an RDB base, or the preamble of a Redis 4-6 AOF
/// moved in as the base) followed by commands, as Redis reads them; a
/// truncated tail is tolerated (per `aof-load-truncated`) only in the last
/// file.
pub fn load_aof(srv: &Server, dir: &Path, m: &Manifest) -> Result<u64, String> {
    let _no_expiry = crate::storage::suspend_expiry();
    let mut client = loader_client();
    let mut total = 0;
    let files: Vec<&aof::AofFile> = m.base.iter().chain(m.incrs.iter()).collect();
    let n = files.len();
    for (i, f) in files.into_iter().enumerate() {
        let last = i + 1 == n;
        let ok_trunc = last && srv.config.aof_load_truncated();
        total += load_aof_file(srv, &mut client, &dir.join(&f.name), ok_trunc)?;
    }
    crate::commands::transaction::discard_state(srv, &mut client);
    Ok(total)
}

/// Loads one AOF file: its RDB part if it starts with one (keys count as
/// loaded items), then the commands that follow.
fn load_aof_file(
    srv: &Server,
    client: &mut Client,
    path: &Path,
    truncate_ok: bool,
) -> Result<u64, String> {
    if !aof::is_rdb_file(path) {
        return replay(srv, client, path, None, truncate_ok);
    }
    let f = File::open(path).map_err(|e| aof::open_error(path, &e))?;
    let mut br = BufReader::with_capacity(1 << 20, f);
    let keys = load_rdb_reader(srv, &mut br, path, Dup::Replace)?.keys_loaded;
    let at = std::io::Seek::stream_position(&mut br)
        .map_err(|e| format!("Error reading the append only file {}: {e}", path.display()))?;
    Ok(keys + replay(srv, client, path, Some((&mut br, at)), truncate_ok)?)
}

/// Replays the commands of `path`, from the start or (`from`) from an
/// offset a reader is already positioned at.
fn replay(
    srv: &Server,
    client: &mut Client,
    path: &Path,
    from: Option<(&mut dyn io::BufRead, u64)>,
    truncate_ok: bool,
) -> Result<u64, String> {
    let mut exec = |argv: &[Bytes]| {
        // Redis serves clients at the first command of an AOF, then every
        // 1024 (see `State::holds_clients`).
        srv.persist.load_progressed();
        client.now = crate::commands::dispatch::unix_ms();
        let reply = crate::commands::dispatch::execute(srv, client, argv);
        // As Redis: a command this server does not know stops the load
        // (skipping it would silently load a different dataset).
        match &reply {
            crate::protocol::Reply::Error(e) if e.as_str().starts_with("ERR unknown command") => {
                Err(format!(
                    "Unknown command '{}' reading the append only file {}",
                    String::from_utf8_lossy(&argv[0]),
                    path.display()
                ))
            }
            crate::protocol::Reply::Error(_) => {
                srv.stats.unexpected_errors.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            _ => Ok(()),
        }
    };
    let mut discard = || {};
    let r = match from {
        Some((rd, at)) => aof::replay_from(path, rd, at, truncate_ok, &mut exec, &mut discard)?,
        None => aof::replay_file(path, truncate_ok, &mut exec, &mut discard)?,
    };
    crate::commands::transaction::discard_state(srv, client);
    Ok(r.commands)
}

/// Startup with `appendonly yes`: loads the AOF (creating the directory
/// and manifest when there is none), then starts appending to it.
pub fn start_aof_at_boot(srv: &Arc<Server>) -> Result<(), String> {
    let dir = aof_dir(srv);
    let dir_existed = dir.is_dir();
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
    if needs_upgrade(&dir, dir_existed, &name, &manifest) {
        manifest = upgrade_legacy_aof(&dir, &mpath, &name)?;
    }
    let t0 = std::time::Instant::now();
    let n = load_aof(srv, &dir, &manifest)?;
    if n > 0 {
        tracing::info!(
            "DB loaded from append only file: {:.3} seconds ({n} commands)",
            t0.elapsed().as_secs_f64()
        );
    }
    if manifest.base.is_none() && manifest.incrs.is_empty() {
        // Nothing to load: Redis starts the AOF with a base of the (empty)
        // dataset, so the directory has the usual base + incr layout.
        manifest.base = Some(write_empty_base(srv, &dir, &name)?);
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
    gc_aof_history(srv);
    Ok(())
}

/// Writes the base of an AOF started on an empty dataset (an RDB or, with
/// `aof-use-rdb-preamble no`, an empty command file), as Redis does at
/// startup when there is no AOF yet.
fn write_empty_base(srv: &Server, dir: &Path, name: &str) -> Result<aof::AofFile, String> {
    let rdb_base = srv.config.aof_use_rdb_preamble();
    let f = aof::AofFile {
        name: aof::base_name(name, 1, rdb_base),
        seq: 1,
        kind: aof::FileType::Base,
    };
    let tmp = dir.join(format!("temp-rewriteaof-{}.aof", std::process::id()));
    let empty = Frozen {
        dbs: Vec::new(),
        now: crate::commands::dispatch::unix_ms(),
    };
    let params = SaveParams::of(srv);
    let r = if rdb_base {
        write_rdb(&empty, &params, &tmp, true)
    } else {
        crate::persistence::rewrite::write_commands(&empty, &params, &tmp)
    };
    r.and_then(|_| std::fs::rename(&tmp, dir.join(&f.name)))
        .and_then(|_| aof::fsync_dir(dir))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("Can't create the AOF base file {}: {e}", f.name)
        })?;
    tracing::info!("Creating AOF base file {} on server start", f.name);
    Ok(f)
}

/// Is there a Redis 4-6 single-file AOF (`appendfilename` in `dir`) to
/// take over? As Redis 7 decides: the file exists and the AOF directory did
/// not, or its manifest lists nothing, or lists only that file as the base
/// while the file is not in the directory yet (a crash between writing the
/// manifest and moving the file).
fn needs_upgrade(dir: &Path, dir_existed: bool, name: &str, m: &Manifest) -> bool {
    if !Path::new(name).is_file() {
        return false;
    }
    !dir_existed
        || (m.base.is_none() && m.incrs.is_empty())
        || (m.incrs.is_empty()
            && m.base.as_ref().is_some_and(|b| b.name == name)
            && !dir.join(name).exists())
}

/// Moves a legacy AOF into the AOF directory as the base (sequence 1, its
/// name unchanged), manifest first, so a crash in between is retried at the
/// next start. Loading then reads it as any base: an RDB preamble if it
/// starts with one, then commands.
fn upgrade_legacy_aof(dir: &Path, mpath: &Path, name: &str) -> Result<Manifest, String> {
    let m = Manifest {
        base: Some(aof::AofFile {
            name: name.to_string(),
            seq: 1,
            kind: aof::FileType::Base,
        }),
        ..Manifest::default()
    };
    aof::write_atomic(mpath, m.render().as_bytes())
        .map_err(|e| format!("Can't write the AOF manifest {}: {e}", mpath.display()))?;
    std::fs::rename(name, dir.join(name))
        .and_then(|_| aof::fsync_dir(dir))
        .and_then(|_| aof::fsync_dir(Path::new(".")))
        .map_err(|e| {
            format!(
                "Error trying to move the old AOF file {name} into dir {}: {e}",
                dir.display()
            )
        })?;
    tracing::info!(
        "Successfully migrated an old-style AOF file ({name}) into the AOF directory ({}).",
        dir.display()
    );
    Ok(m)
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
    srv.feed.set_aof_active(true);
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
    srv.persist.aof_initial.store(false, Ordering::SeqCst);
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
    srv.feed.set_aof_active(false);
}

/// Loads the dataset at startup on a blocking thread while clients get
/// `-LOADING`; then starts the AOF if enabled.
///
/// With the AOF off and no dump file there is nothing to load: clients are
/// served from the first moment, as by Redis (whose load of nothing takes
/// no time), instead of meeting `-LOADING` in the instant the loader
/// thread takes to start. With the AOF on, the flag stays up while the
/// first base file is created, so no write can slip in before the AOF
/// records.
pub fn load_at_startup(srv: Arc<Server>) -> tokio::task::JoinHandle<Result<(), String>> {
    let aof = srv.config.appendonly();
    let loaded = |srv: &Server| {
        srv.persist.lastsave.store(unix_secs(), Ordering::Relaxed);
        srv.persist
            .dirty_at_save
            .store(srv.stats.dirty.load(Ordering::Relaxed), Ordering::Relaxed);
    };
    if !aof && !PathBuf::from(srv.config.dbfilename()).exists() {
        loaded(&srv);
        return tokio::task::spawn_blocking(|| Ok(()));
    }
    srv.persist.begin_loading();
    tokio::task::spawn_blocking(move || {
        let r = if aof {
            start_aof_at_boot(&srv)
        } else {
            load_rdb_at_boot(&srv)
        };
        loaded(&srv);
        srv.persist.loading.store(false, Ordering::SeqCst);
        r
    })
}

// ---- RDB snapshots -------------------------------------------------------------

/// Everything the snapshot child needs, computed before the fork (the child
/// must not take locks the parent's other threads might hold).
#[derive(Clone)]
pub struct SaveParams {
    pub compress: bool,
    pub checksum: bool,
    pub limits: rdb::Limits,
    pub lru: bool,
    pub lfu: bool,
    pub used_mem: u64,
    pub functions: Vec<Vec<u8>>,
    /// `rdb-key-save-delay`: microseconds to sleep after each key (a
    /// testing aid as in Redis; negative: 1 µs with probability 1/|n|).
    pub key_save_delay: i64,
    /// `aof-timestamp-enabled`: a command base starts with `#TS:`.
    pub aof_timestamps: bool,
    /// `snapshot-cpu-share` as a fraction: how much of one core a
    /// versioned snapshot's walk may take while clients keep the server
    /// busy (1.0: as fast as it can; SAVE, whose caller waits, is never
    /// paced). See [`Pacer`].
    pub cpu_share: f64,
    /// fdatasync every this many bytes while writing an RDB file / a
    /// command-form AOF base (`rdb-save-incremental-fsync`,
    /// `aof-rewrite-incremental-fsync`; 0: off).
    pub rdb_fsync_every: u64,
    pub aof_fsync_every: u64,
    /// The replication position at the snapshot's instant (filled in under
    /// every shard lock, see [`repl_aux_now`]); RDB files (not AOF bases)
    /// record it as Redis does.
    pub repl: Arc<parking_lot::Mutex<Option<ReplAux>>>,
}

/// What an RDB file records of replication (`repl-stream-db`, `repl-id`,
/// `repl-offset`): after a restart a replica continues its primary from
/// there, and a primary lets its replicas continue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplAux {
    pub stream_db: u64,
    pub replid: String,
    pub offset: u64,
}

/// The replication position now, if there is one to record: a primary's
/// or replica's with a backlog (a replica has one once it synced). Called
/// with every shard held, where the stream's offset matches the dataset
/// (commands append to it under their shard locks).
pub fn repl_aux_now(srv: &Server) -> Option<ReplAux> {
    let repl = &srv.repl;
    let backlog_db = srv.feed.backlog(|b| b.db.unwrap_or(0) as u64)?;
    let stream_db = if repl.is_replica() {
        repl.master_db.load(Ordering::Relaxed) as u64
    } else {
        backlog_db
    };
    Some(ReplAux {
        stream_db,
        replid: repl.replid(),
        offset: srv.feed.repl_offset(),
    })
}

impl ReplAux {
    /// Reads the three fields from a loaded file's AUX pairs.
    pub fn from_aux(aux: &[(Vec<u8>, Vec<u8>)]) -> Option<ReplAux> {
        let get = |k: &str| {
            aux.iter()
                .rev()
                .find(|(a, _)| a == k.as_bytes())
                .and_then(|(_, v)| std::str::from_utf8(v).ok())
        };
        let replid =
            get("repl-id").filter(|r| r.len() == 40 && r.bytes().all(|b| b.is_ascii_hexdigit()))?;
        Some(ReplAux {
            stream_db: get("repl-stream-db")?.parse().ok()?,
            replid: replid.to_string(),
            offset: get("repl-offset")?.parse().ok()?,
        })
    }
}

impl SaveParams {
    pub fn of(srv: &Server) -> SaveParams {
        let policy = srv.config.maxmemory_policy();
        SaveParams {
            compress: srv.config.rdbcompression(),
            checksum: srv.config.rdbchecksum(),
            limits: rdb::Limits::from_config(&srv.config),
            lru: policy.is_lru(),
            lfu: policy.is_lfu(),
            used_mem: srv.memory.used(crate::commands::dispatch::unix_ms()),
            functions: library_codes(srv),
            key_save_delay: srv.config.rdb_key_save_delay(),
            aof_timestamps: srv.config.aof_timestamp_enabled(),
            cpu_share: srv.config.snapshot_cpu_share() as f64 / 100.0,
            rdb_fsync_every: incremental(srv.config.rdb_save_incremental_fsync()),
            aof_fsync_every: incremental(srv.config.aof_rewrite_incremental_fsync()),
            repl: Default::default(),
        }
    }
}

fn incremental(on: bool) -> u64 {
    if on {
        super::INCREMENTAL_FSYNC_BYTES
    } else {
        0
    }
}

/// Function libraries to persist with the data (FUNCTION LOAD sources).
fn library_codes(srv: &Server) -> Vec<Vec<u8>> {
    srv.functions.library_codes()
}

/// Serialises `frozen` as an RDB file at `tmp` and fsyncs it.
pub fn write_rdb(
    frozen: &Frozen<'_>,
    p: &SaveParams,
    tmp: &Path,
    aof_base: bool,
) -> io::Result<()> {
    let mut w = open_rdb(tmp, p, frozen.now, aof_base)?;
    let now = frozen.now;
    for (db, shards) in frozen.dbs.iter().enumerate() {
        let keys: u64 = shards.iter().map(|s| s.len() as u64).sum();
        if keys == 0 {
            continue;
        }
        let expires: u64 = shards.iter().map(|s| s.volatile_len() as u64).sum();
        w.select_db(db, keys, expires)?;
        for sh in shards {
            let mut err = None;
            // An RDB keeps keys already past their deadline, as Redis 7
            // saves them: a restarted primary loads them as expired and
            // tells the replicas that continue it to delete them (the
            // replicas still hold them). An AOF base leaves them out.
            let walk_now = if aof_base { now } else { 0 };
            sh.for_each_entry(walk_now, |k, v, exp, meta| {
                if err.is_none() {
                    let m = rdb::EntryMeta::for_policy(meta, now, p.lru, p.lfu);
                    if let Err(e) = w.entry(k, v, exp, m) {
                        err = Some(e);
                    }
                    key_save_delay(p.key_save_delay);
                }
            });
            if let Some(e) = err {
                return Err(e);
            }
        }
    }
    close_rdb(w)
}

type FileRdbWriter = rdb::RdbWriter<super::SyncedFile>;

/// Counts bytes in `CAPTURED_BYTES` (memory a snapshot holds, left out of
/// `maxmemory`) while alive.
struct HeldBytes(u64);

impl HeldBytes {
    fn new(n: usize) -> Self {
        CAPTURED_BYTES.fetch_add(n as u64, Ordering::Relaxed);
        HeldBytes(n as u64)
    }
}

impl Drop for HeldBytes {
    fn drop(&mut self) {
        CAPTURED_BYTES.fetch_sub(self.0, Ordering::Relaxed);
    }
}

/// Creates `tmp` and writes an RDB's header, AUX fields (ctime `now`) and
/// function libraries.
fn open_rdb(tmp: &Path, p: &SaveParams, now: u64, aof_base: bool) -> io::Result<FileRdbWriter> {
    open_rdb_on(open_sink(tmp, p, aof_base)?, p, now, aof_base)
}

/// The file a save at `tmp` writes, synced as the parameters say.
fn open_sink(tmp: &Path, p: &SaveParams, aof_base: bool) -> io::Result<super::SyncedFile> {
    // An AOF's RDB base is part of a rewrite: `aof-rewrite-incremental-fsync`.
    let every = if aof_base {
        p.aof_fsync_every
    } else {
        p.rdb_fsync_every
    };
    Ok(super::SyncedFile::new(File::create(tmp)?, every))
}

/// Writes the header (aux fields, function libraries) into `f`.
fn open_rdb_on(
    f: super::SyncedFile,
    p: &SaveParams,
    now: u64,
    aof_base: bool,
) -> io::Result<FileRdbWriter> {
    let mut w = rdb::RdbWriter::new(f, p.compress, p.checksum).with_limits(p.limits);
    let mut aux = rdb::standard_aux(now / 1000, p.used_mem, aof_base);
    if let Some(r) = p.repl.lock().clone().filter(|_| !aof_base) {
        aux.push(("repl-stream-db", r.stream_db.to_string().into_bytes()));
        aux.push(("repl-id", r.replid.into_bytes()));
        aux.push(("repl-offset", r.offset.to_string().into_bytes()));
    }
    let aux_refs: Vec<(&str, &[u8])> = aux.iter().map(|(k, v)| (*k, &v[..])).collect();
    w.header(&aux_refs)?;
    for code in &p.functions {
        w.function(code)?;
    }
    Ok(w)
}

/// EOF, checksum, flush and fsync.
fn close_rdb(w: FileRdbWriter) -> io::Result<()> {
    w.finish()?.finish()
}

/// Redis's debugDelay: sleeps `usec` µs; a negative value sleeps 1 µs
/// with probability 1/|usec| (short delays without a syscall per key).
fn key_save_delay(usec: i64) {
    let usec = match usec {
        0 => return,
        n if n < 0 => u64::from(rand::random::<u64>().is_multiple_of(n.unsigned_abs())),
        n => n.unsigned_abs(),
    };
    if usec > 0 {
        std::thread::sleep(std::time::Duration::from_micros(usec));
    }
}

/// What loading an RDB does with a key or function library the dataset
/// already holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Dup {
    /// The loaded one replaces it (startup, DEBUG RELOAD MERGE).
    Replace,
    /// The load fails (DEBUG RELOAD NOFLUSH without MERGE, where Redis
    /// refuses a library that exists and stops at a duplicated key).
    Refuse,
}

/// Inserts one loaded key into the keyspace (startup, DEBUG RELOAD).
fn insert_loaded(ks: &Keyspace, k: rdb::Loaded, now: u64, dup: Dup) -> Result<(), rdb::RdbError> {
    let Some(d) = ks.db(k.db) else {
        return Ok(());
    };
    let mut sh = d.shard(ks.shard_index(&k.key)).lock();
    if dup == Dup::Refuse && sh.contains(&k.key, now) {
        return Err(rdb::RdbError::Sink(format!(
            "RDB has duplicated key '{}' in DB {}",
            String::from_utf8_lossy(&k.key),
            k.db
        )));
    }
    let ttl = match k.expire_ms {
        Some(at) => crate::storage::shard::Ttl::At(at),
        None => crate::storage::shard::Ttl::Clear,
    };
    sh.set(&k.key, k.value, ttl, now);
    let meta = match (k.freq, k.idle_secs) {
        (Some(f), _) => Some(crate::storage::access::meta_from_freq(f, now)),
        (None, Some(i)) => Some(crate::storage::access::meta_from_idle(i, now)),
        _ => None,
    };
    if let Some(m) = meta {
        sh.set_meta(&k.key, m, now);
    }
    Ok(())
}

/// Loads an RDB file into the keyspace (what it already holds handled per
/// `dup`). Returns keys loaded.
pub fn load_rdb_file(srv: &Server, path: &Path, dup: Dup) -> Result<rdb::LoadSummary, String> {
    let s = load_rdb_file_keys(srv, &srv.keyspace, path, dup)?;
    load_rdb_functions(srv, &s, dup)?;
    Ok(s)
}

/// Loads an RDB from `r` (positioned at its `REDIS` signature) into the
/// keyspace, leaving `r` just after the RDB's checksum.
fn load_rdb_reader(
    srv: &Server,
    r: impl std::io::BufRead,
    path: &Path,
    dup: Dup,
) -> Result<rdb::LoadSummary, String> {
    let summary = load_rdb_keys(srv, &srv.keyspace, r, path, dup)?;
    load_rdb_functions(srv, &summary, dup)?;
    Ok(summary)
}

/// Loads an RDB file's keys into `ks` (the live keyspace, or one being
/// filled aside to be swapped in); its function libraries are left in the
/// summary for the caller.
pub fn load_rdb_file_keys(
    srv: &Server,
    ks: &Keyspace,
    path: &Path,
    dup: Dup,
) -> Result<rdb::LoadSummary, String> {
    let f = File::open(path).map_err(|e| format!("Can't open {}: {e}", path.display()))?;
    load_rdb_stream_keys(srv, ks, BufReader::with_capacity(1 << 20, f), path, dup)
}

/// [`load_rdb_file_keys`] from a reader (a replica's snapshot as it
/// arrives from the primary); `name` stands for it in errors.
pub fn load_rdb_stream_keys(
    srv: &Server,
    ks: &Keyspace,
    r: impl std::io::BufRead,
    name: &Path,
    dup: Dup,
) -> Result<rdb::LoadSummary, String> {
    let s = load_rdb_keys(srv, ks, r, name, dup)?;
    let p = &srv.persist;
    p.last_load_keys_loaded
        .store(s.keys_loaded, Ordering::Relaxed);
    p.last_load_keys_expired
        .store(s.expired_skipped, Ordering::Relaxed);
    Ok(s)
}

/// Restores the function libraries an RDB file held (after
/// [`load_rdb_file_keys`]).
pub fn load_rdb_functions(
    srv: &Server,
    summary: &rdb::LoadSummary,
    dup: Dup,
) -> Result<(), String> {
    for code in &summary.functions {
        load_function_library(srv, code, dup)?;
    }
    Ok(())
}

fn load_rdb_keys(
    srv: &Server,
    ks: &Keyspace,
    r: impl std::io::BufRead,
    path: &Path,
    dup: Dup,
) -> Result<rdb::LoadSummary, String> {
    let now = crate::commands::dispatch::unix_ms();
    let lim = rdb::Limits::from_config(&srv.config);
    // `key-load-delay` (microseconds per key, read per key so CONFIG SET
    // during the load applies; negative -n: one microsecond every n keys,
    // as Redis's debugDelay; a test knob).
    let mut keys_seen: u64 = 0;
    // Clients are served (told -LOADING) once this much has been read,
    // where Redis's load first processes events (see
    // `State::holds_clients`).
    let serve_after = srv.config.loading_process_events_interval_bytes();
    let mut sink = |k: rdb::Loaded| -> Result<(), rdb::RdbError> {
        if k.read_bytes >= serve_after {
            srv.persist.load_progressed();
        }
        keys_seen += 1;
        match srv.config.key_load_delay() {
            d if d > 0 => std::thread::sleep(std::time::Duration::from_micros(d as u64)),
            d if d < 0 && keys_seen.is_multiple_of(d.unsigned_abs()) => {
                std::thread::sleep(std::time::Duration::from_micros(1))
            }
            _ => {}
        }
        if k.db >= ks.num_dbs() {
            return Err(rdb::RdbError::Sink(format!(
                "FATAL: Data file was created with a Redis server configured to handle more than {} databases. Exiting",
                ks.num_dbs()
            )));
        }
        insert_loaded(ks, k, now, dup)
    };
    // An AOF's RDB part keeps keys already past their deadline: the
    // commands after it may touch them (as Redis loads a preamble).
    let skip_expired_before = if crate::storage::expiry_suspended() {
        0
    } else {
        now
    };
    let summary = rdb::load(r, skip_expired_before, &lim, &mut sink).map_err(|e| match e {
        rdb::RdbError::Eof | rdb::RdbError::Io(_) => {
            format!("Short read or OOM loading DB {}: {e}", path.display())
        }
        e => format!("Error loading DB {}: {e}", path.display()),
    })?;
    tracing::info!(
        "Done loading RDB, keys loaded: {}, keys expired: {}, empty keys skipped: {}.",
        summary.keys_loaded,
        summary.expired_skipped,
        summary.empty_skipped
    );
    Ok(summary)
}

/// Restores a function library saved in an RDB file: one of the same name
/// is replaced (`Dup::Replace`) or fails the load (`Dup::Refuse`). A
/// library that does not compile is logged and skipped.
fn load_function_library(srv: &Server, code: &[u8], dup: Dup) -> Result<(), String> {
    if let Err(e) = srv.functions.load_library(code, dup == Dup::Replace) {
        if dup == Dup::Refuse && e.contains("already exists") {
            return Err(format!("Failed loading library from the RDB file: {e}"));
        }
        tracing::warn!("Failed loading a function library from the RDB file: {e}");
    }
    Ok(())
}

/// Startup with `appendonly no`: loads `dbfilename` from `dir` if present.
pub fn load_rdb_at_boot(srv: &Server) -> Result<(), String> {
    let path = PathBuf::from(srv.config.dbfilename());
    if !path.exists() {
        return Ok(());
    }
    let t0 = std::time::Instant::now();
    let follows = srv.config.replicaof().is_some();
    let s = {
        // A replica keeps keys already past their deadline, as Redis's
        // does: its primary's DELs follow.
        let _keep = follows.then(crate::storage::apply_as_master);
        load_rdb_file(srv, &path, Dup::Replace)
            .map_err(|e| format!("{e} Terminating server after rdb file reading failure."))?
    };
    tracing::info!(
        "DB loaded from disk: {:.3} seconds ({} keys, {} expired keys skipped)",
        t0.elapsed().as_secs_f64(),
        s.keys_loaded,
        s.expired_skipped
    );
    if let Some(r) = ReplAux::from_aux(&s.aux) {
        restore_repl_position(srv, r, follows);
        if !follows {
            // Replicas that continue this history still hold the keys that
            // expired while it was down: they are told to delete them (as
            // Redis 7.0 does; too many for the backlog means a full resync).
            let del: &'static [u8] = if srv.config.lazyfree_lazy_expire() {
                b"UNLINK"
            } else {
                b"DEL"
            };
            for (db, key) in s.expired_keys {
                srv.feed
                    .emit_one(db, vec![bytes::Bytes::from_static(del), key]);
            }
        }
    }
    Ok(())
}

/// After loading a file that recorded a replication position (as Redis
/// 7.0 does at startup): a server configured to follow a primary asks to
/// continue from there (`PSYNC <repl-id> <repl-offset+1>`); a primary
/// starts a new history whose previous id is the file's, valid up to its
/// offset, with an empty backlog there, so its replicas continue without
/// a full resync.
fn restore_repl_position(srv: &Server, r: ReplAux, follows: bool) {
    let repl = &srv.repl;
    tracing::info!(
        "Replication position restored from the RDB file: id {}, offset {}",
        r.replid,
        r.offset
    );
    let limit = srv.config.repl_backlog_size() as usize;
    srv.feed.reset_backlog(r.offset, limit);
    repl.adopt_id(r.replid);
    if follows {
        repl.applied.store(r.offset, Ordering::Relaxed);
        repl.master_db
            .store(r.stream_db as usize, Ordering::Relaxed);
    } else {
        repl.shift_id(crate::server::replication::random_id(), r.offset);
        repl.no_replicas_since_ms
            .store(crate::commands::dispatch::unix_ms(), Ordering::Relaxed);
    }
}

fn unix_secs() -> u64 {
    crate::commands::dispatch::unix_ms() / 1000
}

/// Claims the child slot (pid 0 until forked) and releases the mutex: it
/// must not be held while `fork_with` takes every shard lock, or a command
/// holding a shard (INFO inside EXEC) and waiting for it would deadlock.
fn reserve(
    p: &super::State,
    mut slot: parking_lot::MutexGuard<'_, Option<Child>>,
    kind: ChildKind,
    snapshot: u64,
) {
    p.save_keys_total.store(0, Ordering::Relaxed);
    p.save_keys_processed.store(0, Ordering::Relaxed);
    crate::storage::shard::COPIED_BYTES.store(0, Ordering::Relaxed);
    match kind {
        ChildKind::Rdb => p.rdb_saves.fetch_add(1, Ordering::Relaxed),
        ChildKind::AofRewrite => p.aof_rewrites.fetch_add(1, Ordering::Relaxed),
    };
    *slot = Some(Child {
        pid: 0,
        kind,
        started: std::time::Instant::now(),
        snapshot,
    });
}

fn set_child_pid(srv: &Server, pid: i32) {
    if let Some(c) = srv.persist.child.lock().as_mut() {
        c.pid = pid;
    }
}

/// Error text when a child already runs.
fn busy_text(kind: ChildKind) -> &'static str {
    match kind {
        ChildKind::Rdb => "ERR Background save already in progress",
        ChildKind::AofRewrite => {
            "ERR Another child process is active (AOF?): can't BGSAVE right now. Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible."
        }
    }
}

/// Kills the running child (of `kind`, or of any kind) on purpose: its
/// reaper neither installs its result nor records a failure, and deletes
/// its temporary file. Returns at once, with the child killed, if any
/// (FLUSHALL, `appendonly no`, shutdown).
pub fn kill_child(srv: &Server, kind: Option<ChildKind>) -> Option<crate::persistence::Child> {
    let child = srv.persist.child.lock();
    let c = (*child)?;
    if kind.is_some_and(|k| k != c.kind) {
        return None;
    }
    if c.snapshot != 0 {
        // A versioned snapshot: its thread stops saving at its next step,
        // finishes walking (only marking) and deletes its file.
        ABORT_SNAPSHOT.store(c.snapshot, Ordering::SeqCst);
        return Some(c);
    }
    if c.pid <= 0 {
        return None;
    }
    srv.persist.killed_child.store(c.pid, Ordering::SeqCst);
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(c.pid, libc::SIGKILL) };
    Some(c)
}

/// `p` resolved in the current directory (unchanged if that cannot be
/// read).
fn in_current_dir(p: PathBuf) -> PathBuf {
    match std::env::current_dir() {
        Ok(d) => d.join(p),
        Err(_) => p,
    }
}

/// The temporary RDB file of process `pid`: what a snapshot child writes,
/// or this process for an in-process save (Redis's names).
pub fn temp_rdb(pid: u32) -> PathBuf {
    PathBuf::from(format!("temp-{pid}.rdb"))
}

/// Writes `dbfilename` from this process, from shards the caller holds
/// (the final save of a shutdown): through `tmp`, fsynced, renamed, the
/// directory fsynced. Updates LASTSAVE and the changes counter on success.
pub fn save_in_process(srv: &Server, frozen: &Frozen<'_>, tmp: &Path) -> Result<(), String> {
    srv.persist.rdb_saves.fetch_add(1, Ordering::Relaxed);
    let params = SaveParams::of(srv);
    // The caller holds the dataset still.
    *params.repl.lock() = repl_aux_now(srv);
    let final_path = PathBuf::from(srv.config.dbfilename());
    let dirty = srv.stats.dirty.load(Ordering::Relaxed);
    let written = write_rdb(frozen, &params, tmp, false)
        .map_err(|e| format!("writing {}: {e}", tmp.display()))
        .and_then(|()| {
            std::fs::rename(tmp, &final_path).map_err(|e| {
                format!(
                    "renaming {} to {}: {e}",
                    tmp.display(),
                    final_path.display()
                )
            })
        })
        .and_then(|()| {
            aof::fsync_dir(final_path.parent().unwrap_or(Path::new(".")))
                .map_err(|e| format!("fsync of the directory: {e}"))
        });
    let p = &srv.persist;
    match written {
        Ok(()) => {
            p.lastsave.store(unix_secs(), Ordering::Relaxed);
            p.dirty_at_save.store(dirty, Ordering::Relaxed);
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_file(tmp);
            Err(e)
        }
    }
}

/// Starts a background save to `dbfilename`. `wait` makes the caller wait
/// for the child (SAVE, SHUTDOWN, DEBUG RELOAD). Returns an error text as
/// Redis words it.
pub fn bgsave(srv: &Server, wait: bool) -> Result<(), String> {
    let child = srv.persist.child.lock();
    if let Some(c) = *child {
        return Err(busy_text(c.kind).to_string());
    }
    let params = SaveParams::of(srv);
    // Absolute: a CONFIG SET dir during the save moves the process, not
    // this save, which finishes where it started.
    let final_path = in_current_dir(PathBuf::from(srv.config.dbfilename()));
    let dirty = srv.stats.dirty.load(Ordering::Relaxed);
    srv.persist
        .last_bgsave_try
        .store(unix_secs(), Ordering::Relaxed);
    if srv.config.snapshot_method() == SnapshotMethod::Versioned {
        return bgsave_versioned(srv, child, wait, params, final_path, dirty);
    }
    reserve(&srv.persist, child, ChildKind::Rdb, 0);
    let cell = params.repl.clone();
    // The child writes `temp-<its pid>.rdb`, as Redis's child does.
    let pid = fork_with(
        srv,
        move || *cell.lock() = repl_aux_now(srv),
        move |frozen| write_rdb(frozen, &params, &temp_rdb(std::process::id()), false),
    )
    .map_err(|e| {
        *srv.persist.child.lock() = None;
        format!("ERR Can't save in background: fork: {e}")
    })?;
    let tmp = final_path.with_file_name(temp_rdb(pid.unsigned_abs()));
    set_child_pid(srv, pid);
    tracing::info!("Background saving started by pid {pid}");
    let finish = move |srv: &Server, ok: bool| {
        let killed = srv
            .persist
            .killed_child
            .compare_exchange(pid, 0, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        finish_bgsave(srv, ok, killed, &tmp, &final_path, dirty);
    };
    if wait {
        let ok = wait_child(pid);
        finish(srv, ok);
        *srv.persist.child.lock() = None;
        if !ok || !srv.persist.last_bgsave_ok.load(Ordering::Relaxed) {
            return Err("ERR".into());
        }
        return Ok(());
    }
    let Some(arc) = srv.arc() else {
        return Ok(());
    };
    std::thread::spawn(move || {
        let ok = wait_child(pid);
        finish(&arc, ok);
        *arc.persist.child.lock() = None;
    });
    Ok(())
}

/// Installs (or discards) the file of a finished background save and
/// records its outcome for INFO, LASTSAVE and the save points.
fn finish_bgsave(srv: &Server, ok: bool, killed: bool, tmp: &Path, final_path: &Path, dirty: u64) {
    let p = &srv.persist;
    if killed {
        // Killed on purpose: its file must not replace dump.rdb, and it
        // is not a failed save (as Redis's SIGUSR1 kill).
        let _ = std::fs::remove_file(tmp);
        tracing::warn!("Background saving terminated by signal");
        return;
    }
    let ok = ok
        && std::fs::rename(tmp, final_path).is_ok()
        && aof::fsync_dir(final_path.parent().unwrap_or(Path::new("."))).is_ok();
    if ok {
        p.lastsave.store(unix_secs(), Ordering::Relaxed);
        p.dirty_at_save.store(dirty, Ordering::Relaxed);
        tracing::info!("Background saving terminated with success");
    } else {
        let _ = std::fs::remove_file(tmp);
        tracing::warn!("Background saving error");
        srv.metrics.count(crate::server::metrics::ErrorType::Rdb);
    }
    p.last_bgsave_ok.store(ok, Ordering::Relaxed);
    p.rdb_last_cow.store(
        crate::storage::shard::COPIED_BYTES.load(Ordering::Relaxed),
        Ordering::Relaxed,
    );
    if let Some(c) = *p.child.lock() {
        p.last_bgsave_secs
            .store(c.started.elapsed().as_secs() as i64, Ordering::Relaxed);
    }
}

/// Where a snapshot for a replica goes: a file sent afterwards with its
/// length, or (diskless) straight to the replica's connection.
pub enum ReplSaveTo {
    Disk(PathBuf),
    /// The replicas' channels (filled at the snapshot's instant).
    Pipe(super::PipeTargets),
}

/// The snapshot of a replica's full resync (see `server::replication`):
/// waits until no other save or rewrite runs (or the replica's connection
/// is killed), then writes the dataset to `to`, running `at_start` at the
/// snapshot's instant under every shard lock. A disk-target one is also a
/// save of `dbfilename`, as Redis's BGSAVE for SYNC is
/// ([`install_sync_file`]). A diskless one needs the versioned snapshot
/// (a forked child would need the pipe as a descriptor). Blocking: runs
/// on its own thread.
pub fn save_for_replica(
    srv: &Server,
    alive: &dyn Fn() -> bool,
    slot: &AtomicU64,
    to: ReplSaveTo,
    filter: Option<bool>,
    at_start: impl FnOnce(),
) -> Result<(), String> {
    if let Some(functions) = filter {
        return save_without_keys(srv, to, functions, at_start);
    }
    let child = loop {
        if !alive() {
            return Err("the replicas disconnected".into());
        }
        let child = srv.persist.child.lock();
        if child.is_none() {
            break child;
        }
        drop(child);
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let params = SaveParams::of(srv);
    let cell = params.repl.clone();
    let started = std::time::Instant::now();
    // The changes the file holds: those made before its instant.
    let dirty_cell = AtomicU64::new(0);
    let dirty = &dirty_cell;
    // The backlog the replica attaches to exists once `at_start` ran.
    let at_start = move || {
        at_start();
        *cell.lock() = repl_aux_now(srv);
        dirty.store(srv.stats.dirty.load(Ordering::Relaxed), Ordering::Relaxed);
    };
    if srv.config.snapshot_method() != SnapshotMethod::Versioned {
        let ReplSaveTo::Disk(tmp) = to else {
            return Err("a diskless sync needs snapshot-method versioned".into());
        };
        reserve(&srv.persist, child, ChildKind::Rdb, 0);
        let out = tmp.to_path_buf();
        let pid = fork_with(srv, at_start, move |frozen| {
            write_rdb(frozen, &params, &out, false)
        });
        let ok = match pid {
            Ok(pid) => {
                set_child_pid(srv, pid);
                tracing::info!("Starting BGSAVE for SYNC with target: disk (pid {pid})");
                wait_child(pid)
            }
            Err(_) => false,
        };
        if ok {
            install_sync_file(srv, &tmp, dirty.load(Ordering::Relaxed), started);
        }
        *srv.persist.child.lock() = None;
        return if ok {
            Ok(())
        } else {
            Err("fork failed or the child failed".into())
        };
    }
    let id = NEXT_SNAPSHOT.fetch_add(1, Ordering::Relaxed);
    reserve(&srv.persist, child, ChildKind::Rdb, id);
    // Published for the replicas' links, the last of which aborts the
    // snapshot if they all leave; checked again here in case they did.
    slot.store(id, Ordering::SeqCst);
    if !alive() {
        ABORT_SNAPSHOT.store(id, Ordering::SeqCst);
    }
    let now = crate::commands::dispatch::unix_ms();
    let held = begin_versioned(srv, id, &params, now, false, at_start);
    let (target, tmp, sink) = match to {
        ReplSaveTo::Disk(tmp) => {
            let sink = open_sink(&tmp, &params, false);
            ("disk", Some(tmp), sink)
        }
        ReplSaveTo::Pipe(tx) => ("replicas sockets", None, Ok(super::SyncedFile::pipe(tx))),
    };
    tracing::info!(
        "Starting BGSAVE for SYNC with target: {target} (versioned snapshot {id}, no fork; shards held {held} µs)"
    );
    let ok = write_versioned_into(srv, id, &params, now, sink, false).is_ok();
    slot.store(0, Ordering::SeqCst);
    let killed = {
        // Under the child's lock, as `abort_snapshot_of` looks: no abort
        // is left behind for a snapshot that is over.
        let mut child = srv.persist.child.lock();
        *child = None;
        take_abort(id)
    };
    if ok && !killed {
        if let Some(tmp) = &tmp {
            install_sync_file(srv, tmp, dirty.load(Ordering::Relaxed), started);
        }
        Ok(())
    } else {
        if let Some(tmp) = tmp {
            let _ = std::fs::remove_file(tmp);
        }
        Err("the snapshot failed".into())
    }
}

/// A disk-target sync's file becomes `dbfilename` too, as Redis's BGSAVE
/// for SYNC writes it: linked there (the replicas go on reading their own
/// name for it, deleted once sent), fsynced, and counted as a background
/// save (LASTSAVE, the changes since the last save, INFO's status). With
/// `rdb-del-sync-files yes`, [`remove_rdb_used_to_sync`] takes it away
/// again once no replica needs it if persistence is off.
fn install_sync_file(srv: &Server, tmp: &Path, dirty: u64, started: std::time::Instant) {
    let final_path = PathBuf::from(srv.config.dbfilename());
    let mut name = tmp.as_os_str().to_owned();
    name.push(".dump");
    let link = PathBuf::from(name);
    let _ = std::fs::remove_file(&link);
    let made = std::fs::hard_link(tmp, &link)
        .or_else(|_| std::fs::copy(tmp, &link).map(|_| ()))
        .and_then(|()| std::fs::File::open(&link)?.sync_all());
    if let Err(e) = &made {
        tracing::warn!(
            "Could not write {} from the sync's file: {e}",
            final_path.display()
        );
    }
    finish_bgsave(srv, made.is_ok(), false, &link, &final_path, dirty);
    srv.persist
        .last_bgsave_secs
        .store(started.elapsed().as_secs() as i64, Ordering::Relaxed);
    if made.is_ok() && srv.config.rdb_del_sync_files() {
        srv.persist.rdb_from_sync.store(true, Ordering::Relaxed);
    }
}

/// No save points and the AOF off (Redis's `allPersistenceDisabled`).
pub fn all_persistence_disabled(srv: &Server) -> bool {
    srv.config.save_points().is_empty() && !srv.config.appendonly()
}

/// `rdb-del-sync-files`: the `dbfilename` a disk-target sync wrote is
/// removed once no replica waits for or reads a snapshot, if persistence
/// is off (Redis's `removeRDBUsedToSyncReplicas`, from the replication
/// cron). Turning the parameter off forgets the file.
pub fn remove_rdb_used_to_sync(srv: &Server, replicas_syncing: bool) {
    let p = &srv.persist;
    if !srv.config.rdb_del_sync_files() {
        p.rdb_from_sync.store(false, Ordering::Relaxed);
        return;
    }
    if replicas_syncing
        || !p.rdb_from_sync.load(Ordering::Relaxed)
        || !all_persistence_disabled(srv)
    {
        return;
    }
    let path = PathBuf::from(srv.config.dbfilename());
    if path.exists() {
        p.rdb_from_sync.store(false, Ordering::Relaxed);
        tracing::info!(
            "Removing the RDB file used to feed replicas in a persistence-less instance"
        );
        let _ = std::fs::remove_file(&path);
    }
}

/// The snapshot of a replica that asked for no keys (`REPLCONF
/// rdb-filter-only`): the header, the aux fields with the replication
/// position, and the functions if `functions`. Nothing of the keyspace is
/// walked, so no background save needs to end first.
fn save_without_keys(
    srv: &Server,
    to: ReplSaveTo,
    functions: bool,
    at_start: impl FnOnce(),
) -> Result<(), String> {
    let mut params = SaveParams::of(srv);
    if !functions {
        params.functions.clear();
    }
    at_start();
    *params.repl.lock() = repl_aux_now(srv);
    let now = crate::commands::dispatch::unix_ms();
    let (sink, tmp) = match to {
        ReplSaveTo::Disk(tmp) => (open_sink(&tmp, &params, false), Some(tmp)),
        ReplSaveTo::Pipe(tx) => (Ok(super::SyncedFile::pipe(tx)), None),
    };
    let written = sink
        .and_then(|f| open_rdb_on(f, &params, now, false))
        .and_then(close_rdb);
    written.map_err(|e| {
        if let Some(tmp) = tmp {
            let _ = std::fs::remove_file(tmp);
        }
        format!("the snapshot failed: {e}")
    })
}

// ---- versioned snapshots -------------------------------------------------------

/// Ids of versioned snapshots (0 means none).
static NEXT_SNAPSHOT: AtomicU64 = AtomicU64::new(1);
/// The versioned snapshot asked to stop ([`kill_child`]), 0 if none.
static ABORT_SNAPSHOT: AtomicU64 = AtomicU64::new(0);
/// Entries a versioned snapshot saves per hold of a shard lock (a few
/// tens of microseconds).
const STEP_KEYS: usize = 64;

/// The file a versioned snapshot writes (not `temp-<pid>.rdb`, which an
/// in-process save such as FLUSHALL's may be writing meanwhile).
pub fn temp_rdb_versioned() -> PathBuf {
    PathBuf::from(format!("temp-{}-bg.rdb", std::process::id()))
}

/// The instant of versioned snapshot `id`: under every shard lock, each
/// non-empty shard enters capture mode (see `storage::shard::Capture`) and
/// `at_start` runs. Costs one pass over the shards, not over the data.
/// Returns how long the shards were held, in microseconds (also reported
/// as INFO's latest_fork_usec).
fn begin_versioned(
    srv: &Server,
    id: u64,
    p: &SaveParams,
    now: u64,
    aof_base: bool,
    at_start: impl FnOnce(),
) -> u64 {
    let (compress, limits, lru, lfu) = (p.compress, p.limits, p.lru, p.lfu);
    let enc: Arc<RecordEncoder> = Arc::new(
        move |out: &mut Vec<u8>, k: &[u8], v: ValueRef<'_>, exp: Option<u64>, meta: u32| {
            // As `write_rdb`: only an AOF base leaves expired keys out.
            if aof_base && exp.is_some_and(|at| at <= now) {
                return false;
            }
            let m = rdb::EntryMeta::for_policy(meta, now, lru, lfu);
            rdb::encode_entry(out, k, v, exp, m, compress, &limits);
            true
        },
    );
    let t0 = std::time::Instant::now();
    let mut dbs = crate::commands::ctx::lock_everything(srv);
    let mut keys = 0u64;
    for (db, shards) in dbs.iter_mut().enumerate() {
        for g in shards.iter_mut() {
            keys += g.len() as u64;
            g.begin_capture(id, db as u32, enc.clone());
        }
    }
    at_start();
    drop(dbs);
    srv.persist.save_keys_total.store(keys, Ordering::Relaxed);
    // INFO's latest_fork_usec (and the latency monitor's "fork" event):
    // how long clients were held at the snapshot's instant, what a fork's
    // time means to an operator. total_forks counts these instants too: it
    // is how operators and tools (Redis's own tests among them) see that a
    // background save or rewrite has started.
    let usec = (t0.elapsed().as_nanos() as u64).div_ceil(1000);
    srv.persist.latest_fork_usec.store(usec, Ordering::Relaxed);
    srv.persist.total_forks.fetch_add(1, Ordering::Relaxed);
    srv.latency
        .add_if_needed(srv.config.latency_monitor_threshold(), "fork", usec / 1000);
    usec
}

/// Writes versioned snapshot `id` to `tmp` (header, functions, the records
/// of every shard as its walk and its commands produce them, EOF, checksum)
/// and fsyncs it. Every shard is walked to the end even when the snapshot
/// fails or is abandoned (then only marking), so none stays in capture
/// mode.
fn write_versioned(
    srv: &Server,
    id: u64,
    p: &SaveParams,
    now: u64,
    tmp: &Path,
    aof_base: bool,
) -> io::Result<()> {
    write_versioned_into(srv, id, p, now, open_sink(tmp, p, aof_base), aof_base)
}

/// [`write_versioned`] into an opened sink (a file, or a diskless
/// replica's pipe); a sink that failed to open still walks, only marking.
fn write_versioned_into(
    srv: &Server,
    id: u64,
    p: &SaveParams,
    now: u64,
    sink: io::Result<super::SyncedFile>,
    aof_base: bool,
) -> io::Result<()> {
    let (mut w, mut err) = match sink.and_then(|f| open_rdb_on(f, p, now, aof_base)) {
        Ok(w) => (Some(w), None),
        Err(e) => (None, Some(e)),
    };
    let all: Vec<(u32, u32)> = srv.keyspace.all_shards().collect();
    let mut buf = Vec::with_capacity(64 << 10);
    // The file and record buffers are the snapshot's own, as a forked
    // child's are: left out of maxmemory with the side buffers.
    let _held = HeldBytes::new(rdb::RDB_OUT_BUF + buf.capacity());
    let mut cur_db = None;
    let mut pacer = Pacer::new(p.cpu_share);
    let mut ahead = Vec::with_capacity(STEP_KEYS);
    loop {
        for &(db, sh) in &all {
            let Some(d) = srv.keyspace.db(db as usize) else {
                continue;
            };
            let m = d.shard(sh as usize);
            loop {
                let save = w.is_some() && ABORT_SNAPSHOT.load(Ordering::Relaxed) != id;
                let step = m
                    .lock()
                    .capture_step(id, STEP_KEYS, &mut buf, save, &mut ahead);
                let Some(step) = step else {
                    break;
                };
                // The next step's entries load while this one is written
                // out, with no lock held.
                ahead.iter().for_each(|&a| prefetch_at(a));
                if let Some(wr) = w.as_mut().filter(|_| save) {
                    match write_step(wr, &mut cur_db, &buf, &step, p, now, id) {
                        Ok(keys) => {
                            srv.persist
                                .save_keys_processed
                                .fetch_add(keys, Ordering::Relaxed);
                        }
                        Err(e) => {
                            err = Some(e);
                            w = None;
                        }
                    }
                }
                buf.clear();
                if step.done {
                    break;
                }
                if save {
                    // An abandoned walk only marks: let it finish at once.
                    pacer.after_step();
                }
            }
        }
        // SWAPDB moves whole shards: one still walking may now sit behind
        // the pass.
        let left = all.iter().any(|&(db, sh)| {
            srv.keyspace
                .db(db as usize)
                .is_some_and(|d| d.shard(sh as usize).lock().capturing(id))
        });
        if !left {
            break;
        }
    }
    if let Some(e) = err {
        return Err(e);
    }
    let Some(w) = w.filter(|_| ABORT_SNAPSHOT.load(Ordering::SeqCst) != id) else {
        return Err(io::Error::other("snapshot abandoned"));
    };
    close_rdb(w)
}

/// Keeps a background snapshot's walk to a share of one core while the
/// server's other threads are busy, so that a save running beside a full
/// client load takes longer instead of taking the clients' CPU. On a
/// machine with few cores the walk otherwise competes with the workers
/// (and the clients) for the same cores: at full speed a 1M-key BGSAVE
/// back to back cut GET/SET throughput to ~0.7× on two cores. With the
/// server otherwise idle the walk runs at full speed. The pause falls
/// between steps, never under a shard lock.
struct Pacer {
    share: f64,
    steps: u32,
    since: std::time::Instant,
    process_cpu: Duration,
    thread_cpu: Duration,
}

/// Microseconds versioned snapshots have paused for busy clients since
/// startup (INFO persistence `snapshot_paced_ms`, Cinnabar-only).
pub static PACED_US: AtomicU64 = AtomicU64::new(0);

/// How often the pacer looks at the CPU clocks.
const PACE_WINDOW: Duration = Duration::from_millis(1);
/// Other threads using at least this much of a core count as busy.
const PACE_BUSY_CORES: f64 = 0.2;
/// The longest single pause (a step that ran long is not paid back at once).
const PACE_MAX_PAUSE: Duration = Duration::from_millis(50);

impl Pacer {
    fn new(share: f64) -> Pacer {
        Pacer {
            share: share.clamp(0.01, 1.0),
            steps: 0,
            since: std::time::Instant::now(),
            process_cpu: cpu_clock(libc::CLOCK_PROCESS_CPUTIME_ID),
            thread_cpu: cpu_clock(libc::CLOCK_THREAD_CPUTIME_ID),
        }
    }

    /// Called after each step, with no lock held.
    fn after_step(&mut self) {
        if self.share >= 1.0 {
            return;
        }
        self.steps = self.steps.wrapping_add(1);
        if !self.steps.is_multiple_of(4) {
            return;
        }
        let wall = self.since.elapsed();
        if wall < PACE_WINDOW {
            return;
        }
        let process = cpu_clock(libc::CLOCK_PROCESS_CPUTIME_ID);
        let thread = cpu_clock(libc::CLOCK_THREAD_CPUTIME_ID);
        let mine = thread.saturating_sub(self.thread_cpu);
        let others = process
            .saturating_sub(self.process_cpu)
            .saturating_sub(mine);
        if others.as_secs_f64() >= PACE_BUSY_CORES * wall.as_secs_f64() {
            // Sleep so that this window's CPU is `share` of its length.
            let due = mine.as_secs_f64() / self.share - wall.as_secs_f64();
            if due > 0.0 {
                let pause = Duration::from_secs_f64(due).min(PACE_MAX_PAUSE);
                std::thread::sleep(pause);
                PACED_US.fetch_add(pause.as_micros() as u64, Ordering::Relaxed);
            }
        }
        self.since = std::time::Instant::now();
        self.process_cpu = cpu_clock(libc::CLOCK_PROCESS_CPUTIME_ID);
        self.thread_cpu = cpu_clock(libc::CLOCK_THREAD_CPUTIME_ID);
    }
}

/// A CPU-time clock (the process's or this thread's); zero if unreadable.
fn cpu_clock(clock: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// Stops versioned snapshot `id` at its next step if it is still the
/// one running: it finishes walking (only marking) and deletes its file;
/// its reaper records no failure.
pub fn abort_snapshot_of(srv: &Server, id: u64) {
    let child = srv.persist.child.lock();
    if child.is_some_and(|c| c.snapshot == id) {
        ABORT_SNAPSHOT.store(id, Ordering::SeqCst);
    }
}

/// Whether snapshot `id` was stopped on purpose ([`kill_child`]); clears
/// the request.
fn take_abort(id: u64) -> bool {
    ABORT_SNAPSHOT
        .compare_exchange(id, 0, Ordering::SeqCst, Ordering::SeqCst)
        .is_ok()
}

/// Appends one step's records (then its large values, and the unsaved
/// entries of contents a FLUSHDB took away) to the file, under a SELECTDB
/// when the database changes; then `rdb-key-save-delay`, outside any lock.
fn write_step(
    w: &mut FileRdbWriter,
    cur_db: &mut Option<u32>,
    records: &[u8],
    step: &CaptureStep,
    p: &SaveParams,
    now: u64,
    id: u64,
) -> io::Result<u64> {
    if records.is_empty() && step.detached.is_empty() && step.deferred.is_empty() {
        return Ok(0);
    }
    if *cur_db != Some(step.db) {
        w.select_db_only(step.db as usize)?;
        *cur_db = Some(step.db);
    }
    w.raw(records)?;
    let mut keys = step.keys;
    for d in &step.deferred {
        if d.expire.is_none_or(|at| at > now) {
            let m = rdb::EntryMeta::for_policy(d.meta, now, p.lru, p.lfu);
            w.entry(&d.key, ValueRef::Obj(&d.obj), d.expire, m)?;
            keys += 1;
        }
    }
    for d in &step.detached {
        let mut r = Ok(());
        d.for_each_unsaved(|k, v, exp, meta| {
            if r.is_ok() && exp.is_none_or(|at| at > now) {
                let m = rdb::EntryMeta::for_policy(meta, now, p.lru, p.lfu);
                r = w.entry(k, v, exp, m);
                keys += 1;
            }
        });
        r?;
    }
    match p.key_save_delay {
        0 => {}
        d if d > 0 => {
            // In slices, so an aborted snapshot stops at once.
            let end = std::time::Instant::now()
                + std::time::Duration::from_micros(keys.saturating_mul(d.unsigned_abs()));
            loop {
                let now = std::time::Instant::now();
                if now >= end || ABORT_SNAPSHOT.load(Ordering::Relaxed) == id {
                    break;
                }
                std::thread::sleep((end - now).min(std::time::Duration::from_millis(10)));
            }
        }
        d => (0..keys).for_each(|_| key_save_delay(d)),
    }
    Ok(keys)
}

/// Ends snapshot `id`'s capture mode everywhere without saving (its
/// thread could not start).
fn abandon_capture(srv: &Server, id: u64) {
    let mut scratch = Vec::new();
    for (db, sh) in srv.keyspace.all_shards() {
        let Some(d) = srv.keyspace.db(db as usize) else {
            continue;
        };
        let m = d.shard(sh as usize);
        while let Some(step) = m
            .lock()
            .capture_step(id, 4096, &mut scratch, false, &mut Vec::new())
        {
            if step.done {
                break;
            }
        }
    }
}

/// Starts the thread that writes versioned snapshot `id`, at `child-nice`
/// (Linux nice values are per thread). If it cannot start, the snapshot's
/// capture mode is ended here and the error returned.
fn spawn_snapshot_thread(
    srv: &Server,
    id: u64,
    name: &str,
    run: impl FnOnce() + Send + 'static,
) -> Result<(), String> {
    let nice = libc::c_int::try_from(srv.config.child_nice()).unwrap_or(0);
    let spawned = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            if nice > 0 {
                // SAFETY: setpriority on this thread only; failure leaves
                // the priority unchanged, which is harmless.
                unsafe {
                    let tid = libc::gettid();
                    libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice);
                }
            }
            run()
        });
    if let Err(e) = spawned {
        abandon_capture(srv, id);
        *srv.persist.child.lock() = None;
        return Err(format!("ERR Can't save in background: {e}"));
    }
    Ok(())
}

/// BGSAVE/SAVE as a versioned snapshot: the instant is taken here, a
/// thread writes the file (SAVE: this thread, and only the caller waits).
fn bgsave_versioned(
    srv: &Server,
    child: parking_lot::MutexGuard<'_, Option<Child>>,
    wait: bool,
    mut params: SaveParams,
    final_path: PathBuf,
    dirty: u64,
) -> Result<(), String> {
    let id = NEXT_SNAPSHOT.fetch_add(1, Ordering::Relaxed);
    // Released before taking the shards (see `reserve`).
    reserve(&srv.persist, child, ChildKind::Rdb, id);
    let now = crate::commands::dispatch::unix_ms();
    if wait {
        // SAVE: the caller waits for it; nothing to leave the CPU to.
        params.cpu_share = 1.0;
    }
    let cell = params.repl.clone();
    let held = begin_versioned(srv, id, &params, now, false, move || {
        *cell.lock() = repl_aux_now(srv)
    });
    tracing::info!(
        "Background saving started (versioned snapshot {id}, no fork; shards held {held} µs)"
    );
    let run = move |srv: &Server| {
        let tmp = final_path.with_file_name(temp_rdb_versioned());
        let ok = write_versioned(srv, id, &params, now, &tmp, false).is_ok();
        let killed = take_abort(id);
        finish_bgsave(srv, ok, killed, &tmp, &final_path, dirty);
        *srv.persist.child.lock() = None;
    };
    match srv.arc() {
        Some(arc) if !wait => spawn_snapshot_thread(srv, id, "cinnabar-bgsave", move || run(&arc)),
        _ => {
            run(srv);
            if srv.persist.last_bgsave_ok.load(Ordering::Relaxed) {
                Ok(())
            } else {
                Err("ERR".into())
            }
        }
    }
}

/// Starts an AOF rewrite: a child writes a new base (an RDB, or commands
/// with `aof-use-rdb-preamble no`) of the dataset at
/// the fork while the parent continues in a fresh incremental file; the
/// manifest switches to them when the child succeeds. Also turns the AOF on
/// (CONFIG SET appendonly yes), the base then holding the data so far.
pub fn rewrite_aof(srv: &Server, enable: bool) -> Result<(), String> {
    let child = srv.persist.child.lock();
    if let Some(c) = *child {
        return Err(match c.kind {
            ChildKind::AofRewrite => {
                "ERR Background append only file rewriting already in progress".into()
            }
            ChildKind::Rdb => {
                srv.persist.rewrite_scheduled.store(true, Ordering::Relaxed);
                if enable {
                    tracing::warn!(
                        "AOF was enabled but there is already another background operation. An AOF background was scheduled to start when possible."
                    );
                }
                "SCHEDULED".into()
            }
        });
    }
    let dir = aof_dir(srv);
    std::fs::create_dir_all(&dir)
        .map_err(|e| format!("ERR Can't create the AOF directory: {e}"))?;
    if enable && !srv.persist.aof.lock().on {
        srv.persist.aof_initial.store(true, Ordering::SeqCst);
    }
    let name = srv.config.appendfilename();
    let mpath = dir.join(aof::manifest_name(&name));
    let (on, mut manifest) = {
        let rt = srv.persist.aof.lock();
        (rt.on, rt.manifest.clone())
    };
    // The rewrite that turns the AOF on (or its retry after a failure: the
    // writer is then running, and the AOF still waits for its first
    // rewrite). As Redis, its stream goes to a temporary incremental file,
    // made the first incremental file only once the base exists: no
    // manifest is written until then.
    let initial = (enable && !on) || (on && srv.persist.aof_initial.load(Ordering::SeqCst));
    if !on || initial {
        // Continue numbering after whatever a previous run left.
        if let Ok(text) = std::fs::read_to_string(&mpath) {
            if let Ok(m) = Manifest::parse(&text) {
                manifest = m;
            }
        }
    }
    // `aof-use-rdb-preamble no`: the base is commands (`.base.aof`).
    let rdb_base = srv.config.aof_use_rdb_preamble();
    let base = aof::AofFile {
        name: aof::base_name(&name, manifest.next_base_seq(), rdb_base),
        seq: manifest.next_base_seq(),
        kind: aof::FileType::Base,
    };
    let incr = aof::AofFile {
        name: aof::incr_name(&name, manifest.next_incr_seq()),
        seq: manifest.next_incr_seq(),
        kind: aof::FileType::Incr,
    };
    let incr_path = if initial {
        dir.join(aof::temp_incr_name(&name))
    } else {
        dir.join(&incr.name)
    };
    let incr_file = if initial {
        aof::create_temp_incr(&incr_path)
    } else {
        aof::open_incr(&incr_path)
    }
    .map_err(|e| format!("ERR Can't open the AOF file: {e}"))?;
    if on && !initial {
        // A crash during the rewrite must still replay everything: list the
        // new incremental file before the stream switches to it.
        let mut during = manifest.clone();
        during.incrs.push(incr.clone());
        aof::write_atomic(&mpath, during.render().as_bytes())
            .map_err(|e| format!("ERR Can't write the AOF manifest: {e}"))?;
        srv.persist.aof.lock().manifest = during;
    }
    let params = SaveParams::of(srv);
    let tmp = dir.join(format!(
        "temp-rewriteaof-{}-{}.{}",
        std::process::id(),
        unix_secs(),
        if rdb_base { "rdb" } else { "aof" }
    ));
    let t2 = tmp.clone();
    // Turning the AOF on: the files an earlier run left (the manifest on
    // disk) are retired once this rewrite succeeds, as Redis makes them
    // history (the writer starts from an empty manifest).
    let retire = if initial {
        manifest.clone()
    } else {
        Manifest::default()
    };
    let temp_incr = initial.then(|| incr_path.clone());
    let mut incr_file = Some(incr_file);
    let writer_dir = dir.clone();
    let at_fork = move || {
        if on {
            // A retry of the first rewrite switches to a new temporary
            // file, as any rewrite to its incremental file.
            srv.feed.rotate(incr_path.clone());
        } else if enable {
            if let (Some(f), Some(arc)) = (incr_file.take(), srv.arc()) {
                start_writer(&arc, f, writer_dir.clone(), Manifest::default());
            }
        }
    };
    // What the rewrite's end does, whichever way the base was written.
    let complete = move |srv: &Server, ok: bool, killed: bool| {
        let p = &srv.persist;
        if killed {
            // Killed on purpose (appendonly turned off): not a failure.
            p.aof_initial.store(false, Ordering::SeqCst);
            let _ = std::fs::remove_file(&tmp);
            if let Some(t) = &temp_incr {
                remove_temp_incr(t);
            }
            *p.child.lock() = None;
            return;
        }
        let done = ok
            && finish_rewrite(
                srv,
                &dir,
                &mpath,
                &tmp,
                base,
                (incr, temp_incr.as_deref()),
                &retire,
            )
            .is_ok();
        if !done {
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!("Background AOF rewrite failed");
            srv.metrics.count(crate::server::metrics::ErrorType::Aof);
            if let Some(t) = &temp_incr {
                // What was written meanwhile is in no manifest; the retry
                // (scheduled, as Redis's) snapshots it again.
                remove_temp_incr(t);
                if p.aof_initial.load(Ordering::SeqCst) {
                    p.rewrite_scheduled.store(true, Ordering::Relaxed);
                }
            }
        } else {
            tracing::info!("Background AOF rewrite finished successfully");
        }
        p.last_rewrite_ok.store(done, Ordering::Relaxed);
        if done {
            p.aof_initial.store(false, Ordering::SeqCst);
            p.aofrw_consecutive_failures.store(0, Ordering::Relaxed);
        } else {
            p.aofrw_consecutive_failures.fetch_add(1, Ordering::Relaxed);
        }
        p.aof_last_cow.store(
            crate::storage::shard::COPIED_BYTES.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
        if let Some(c) = *p.child.lock() {
            p.last_rewrite_secs
                .store(c.started.elapsed().as_secs() as i64, Ordering::Relaxed);
        }
        *p.child.lock() = None;
    };
    if rdb_base && srv.config.snapshot_method() == SnapshotMethod::Versioned {
        // The base as a versioned snapshot; the stream rotates at its
        // instant, under every shard lock, as at a fork.
        let id = NEXT_SNAPSHOT.fetch_add(1, Ordering::Relaxed);
        reserve(&srv.persist, child, ChildKind::AofRewrite, id);
        let now = crate::commands::dispatch::unix_ms();
        let held = begin_versioned(srv, id, &params, now, true, at_fork);
        tracing::info!(
            "Background append only file rewriting started (versioned snapshot {id}, no fork; shards held {held} µs)"
        );
        let run = move |srv: &Server| {
            let ok = write_versioned(srv, id, &params, now, &t2, true).is_ok();
            let killed = take_abort(id);
            complete(srv, ok, killed);
        };
        match srv.arc() {
            Some(arc) => spawn_snapshot_thread(srv, id, "cinnabar-aofrw", move || run(&arc))?,
            None => run(srv),
        }
        return Ok(());
    }
    reserve(&srv.persist, child, ChildKind::AofRewrite, 0);
    let pid = fork_with(srv, at_fork, move |frozen| {
        if rdb_base {
            write_rdb(frozen, &params, &t2, true)
        } else {
            crate::persistence::rewrite::write_commands(frozen, &params, &t2)
        }
    })
    .map_err(|e| {
        *srv.persist.child.lock() = None;
        format!("ERR Can't rewrite append only file in background: fork: {e}")
    })?;
    set_child_pid(srv, pid);
    tracing::info!("Background append only file rewriting started by pid {pid}");
    let Some(arc) = srv.arc() else {
        return Ok(());
    };
    std::thread::spawn(move || {
        let ok = wait_child(pid);
        let killed = arc
            .persist
            .killed_child
            .compare_exchange(pid, 0, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        complete(&arc, ok, killed);
    });
    Ok(())
}

/// Installs a finished rewrite: the new base and incremental file become
/// the manifest, older files are deleted.
fn finish_rewrite(
    srv: &Server,
    dir: &Path,
    mpath: &Path,
    tmp: &Path,
    base: aof::AofFile,
    (incr, temp_incr): (aof::AofFile, Option<&Path>),
    retire: &Manifest,
) -> io::Result<()> {
    std::fs::rename(tmp, dir.join(&base.name))?;
    if let Some(t) = temp_incr {
        // The first rewrite's stream becomes the first incremental file
        // (the writer keeps appending to it under its new name).
        std::fs::rename(t, dir.join(&incr.name))?;
    }
    aof::fsync_dir(dir)?;
    let mut rt = srv.persist.aof.lock();
    // The files the new base covers become history (Redis's order: those
    // of an earlier run retired by turning the AOF on, then the old base
    // and the incremental files before the one opened for this rewrite),
    // deleted right away unless `aof-disable-auto-gc yes` keeps them.
    // With the AOF off (BGREWRITEAOF with appendonly no) the manifest gets
    // the new base alone, as Redis does; the incremental file opened for
    // the rewrite was never used and goes.
    let (old, mut new, unused) = if rt.on {
        let new = Manifest {
            base: Some(base),
            history: Vec::new(),
            incrs: vec![incr],
        };
        (rt.manifest.clone(), new, None)
    } else {
        let old = std::fs::read_to_string(mpath)
            .ok()
            .and_then(|t| Manifest::parse(&t).ok())
            .unwrap_or_default();
        let new = Manifest {
            base: Some(base),
            ..Manifest::default()
        };
        (old, new, Some(incr))
    };
    new.history = old.history.clone();
    for h in &retire.history {
        if !new.history.iter().any(|x| x.name == h.name) {
            new.history.push(h.clone());
        }
    }
    new.retire(retire.base.as_ref(), &retire.incrs);
    new.retire(old.base.as_ref(), &old.incrs);
    let drop_history = !srv.config.aof_disable_auto_gc();
    let gone = if drop_history {
        std::mem::take(&mut new.history)
    } else {
        Vec::new()
    };
    aof::write_atomic(mpath, new.render().as_bytes())?;
    rt.manifest = new.clone();
    drop(rt);
    remove_history(dir, &gone);
    if let Some(f) = unused {
        let _ = std::fs::remove_file(dir.join(&f.name));
    }
    srv.persist
        .aof_base_size
        .store(aof_total_size(dir, &new), Ordering::Relaxed);
    Ok(())
}

/// Deletes the temporary incremental file of a first rewrite that failed
/// or was stopped.
fn remove_temp_incr(path: &Path) {
    if let Some(n) = path.file_name() {
        tracing::info!(
            "Removing the temp incr aof file {} in the background",
            n.to_string_lossy()
        );
    }
    let _ = std::fs::remove_file(path);
}

/// Deletes history files (Redis does it in the background; these are
/// unlinks).
fn remove_history(dir: &Path, files: &[aof::AofFile]) {
    for f in files {
        tracing::info!("Removing the history file {} in the background", f.name);
        let _ = std::fs::remove_file(dir.join(&f.name));
    }
}

/// Deletes the history files the AOF manifest lists, unless
/// `aof-disable-auto-gc yes` keeps them (Redis's `aofDelHistoryFiles`: at
/// startup, on DEBUG LOADAOF and when the setting goes back to `no`).
pub fn gc_aof_history(srv: &Server) {
    if srv.config.aof_disable_auto_gc() {
        return;
    }
    let mut rt = srv.persist.aof.lock();
    let (dir, mut m) = if rt.on {
        (rt.dir.clone(), rt.manifest.clone())
    } else {
        match aof_manifest_on_disk(srv) {
            Ok(x) => x,
            Err(_) => return,
        }
    };
    if m.history.is_empty() {
        return;
    }
    let gone = std::mem::take(&mut m.history);
    let mpath = dir.join(aof::manifest_name(&srv.config.appendfilename()));
    if let Err(e) = aof::write_atomic(&mpath, m.render().as_bytes()) {
        tracing::warn!("Can't write the AOF manifest {}: {e}", mpath.display());
        return;
    }
    if rt.on {
        rt.manifest = m;
    }
    drop(rt);
    remove_history(&dir, &gone);
}

/// Background duties, ten times a second: scheduled BGSAVE/rewrite, save
/// points, automatic AOF rewrite.
pub async fn cron(srv: Arc<Server>) {
    let mut rx = srv.shutdown_receiver();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(100)) => {}
            _ = rx.changed() => return,
        }
        if srv.persist.loading() || srv.persist.child.lock().is_some() {
            continue;
        }
        let p = &srv.persist;
        // As Redis, a scheduled rewrite waits out the limit repeated
        // failures set (the retries of a failing first rewrite too).
        if p.rewrite_scheduled.load(Ordering::Relaxed) && !aof_rewrite_limited(p, unix_secs()) {
            p.rewrite_scheduled.store(false, Ordering::Relaxed);
            let enable = srv.config.appendonly() && !p.aof.lock().on;
            let _ = rewrite_aof(&srv, enable);
            continue;
        }
        if p.bgsave_scheduled.swap(false, Ordering::Relaxed) {
            let _ = bgsave(&srv, false);
            continue;
        }
        let now = unix_secs();
        let changes = srv
            .stats
            .dirty
            .load(Ordering::Relaxed)
            .saturating_sub(p.dirty_at_save.load(Ordering::Relaxed));
        let since = now.saturating_sub(p.lastsave.load(Ordering::Relaxed));
        let retry_ok = p.last_bgsave_ok.load(Ordering::Relaxed)
            || now.saturating_sub(p.last_bgsave_try.load(Ordering::Relaxed)) >= 5;
        if retry_ok
            && srv
                .config
                .save_points()
                .iter()
                .any(|&(secs, n)| changes >= n && since >= secs)
        {
            tracing::info!("{changes} changes in {since} seconds. Saving...");
            let _ = bgsave(&srv, false);
            continue;
        }
        let pct = srv.config.auto_aof_rewrite_percentage();
        if pct > 0 && p.aof.lock().on {
            let base = p.aof_base_size.load(Ordering::Relaxed).max(1);
            let size = p.incr_size() + p.aof_base_size.load(Ordering::Relaxed);
            if size >= srv.config.auto_aof_rewrite_min_size()
                && (size - base) * 100 / base >= pct
                && !aof_rewrite_limited(p, now)
            {
                tracing::info!(
                    "Starting automatic rewriting of AOF on {}% growth",
                    (size - base) * 100 / base
                );
                let _ = rewrite_aof(&srv, false);
            }
        }
    }
}

/// Failed rewrites in a row from which automatic rewrites are held back.
const AOFRW_LIMIT_THRESHOLD: u64 = 3;
/// The longest they are held back, in minutes.
const AOFRW_LIMIT_MAX_MINUTES: u64 = 60;

/// Whether an automatic AOF rewrite must wait (Redis 7's limit): after
/// three failures in a row each new attempt waits 1, 2, 4 … up to 60
/// minutes, so a rewrite that keeps failing (a full disk) does not retry
/// ten times a second, each time opening another incremental file. A
/// success (the count back to zero) lifts it; BGREWRITEAOF is never held.
fn aof_rewrite_limited(p: &crate::persistence::State, now_secs: u64) -> bool {
    let mut lim = p.aofrw_limit.lock();
    if p.aofrw_consecutive_failures.load(Ordering::Relaxed) < AOFRW_LIMIT_THRESHOLD {
        *lim = (0, 0);
        return false;
    }
    let (delay, next) = *lim;
    if next != 0 {
        if now_secs < next {
            return true;
        }
        lim.1 = 0;
        return false;
    }
    let delay = if delay == 0 {
        1
    } else {
        (delay * 2).min(AOFRW_LIMIT_MAX_MINUTES)
    };
    *lim = (delay, now_secs + delay * 60);
    tracing::warn!(
        "Background AOF rewrite has repeatedly failed and triggered the limit, will retry in {delay} minutes"
    );
    true
}

/// Is an AOF writer consuming the propagation stream?
pub fn aof_writing(srv: &Server) -> bool {
    let rt = srv.persist.aof.lock();
    rt.on && rt.writer.is_some() && srv.feed.aof_active()
}

/// Makes everything appended to the AOF so far durable (shutdown holds
/// every shard meanwhile, so nothing more is appended). Nothing to do
/// without an AOF writer.
pub fn flush_aof(srv: &Server) -> Result<(), String> {
    if !aof_writing(srv) {
        return Ok(());
    }
    let target = srv.feed.appended();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        srv.feed.request_fsync();
        if srv.feed.synced() >= target {
            break;
        }
        if std::time::Instant::now() >= deadline {
            return Err("the AOF writer did not fsync within 10 s".into());
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    if srv.persist.aof_write_ok() {
        Ok(())
    } else {
        Err("the last write or fsync of the AOF failed".into())
    }
}
