//! Stopping the server: SHUTDOWN and SIGTERM/SIGINT, as Redis 7 does it.
//!
//! A shutdown is an attempt that can fail. [`finish`] kills a running
//! snapshot or AOF-rewrite child (deleting its temporary file), then locks
//! every shard, so no command can change data from here on, and makes the
//! dataset durable: the AOF is flushed and fsynced, and the final RDB is
//! written *in this process* while the locks are held (no fork: the file
//! holds exactly what clients were acknowledged, as Redis's synchronous
//! save). If that save fails and `FORCE` was not given, the locks are
//! released, the error is logged ("Error trying to save the DB, can't
//! exit.") and the server goes on serving: SHUTDOWN answers `-ERR Errors
//! trying to SHUTDOWN. Check logs.`, a signal is logged and forgotten.
//! On success the process exits from here with the locks still held, after
//! removing the pidfile and the unix socket: a command that was waiting for
//! a shard never runs, so no client is told of a write that the files miss.
//!
//! A second SIGTERM/SIGINT while a shutdown is under way exits at once
//! (status 1) after deleting the temporary RDB file ("You insist on
//! killing Redis"). With `DEBUG PAUSE-CRON 1` a signal is only recorded,
//! as Redis handles it in its cron; `SHUTDOWN ABORT` cancels it then.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::process::{self, Supervisor};
use super::Server;
use crate::config::ShutdownFlags as SF;

/// What the process leaves behind and removes on the way out.
#[derive(Debug, Clone)]
pub struct Teardown {
    pub pidfile: Option<String>,
    pub unix_socket: Option<String>,
    pub supervisor: Supervisor,
}

/// Shutdown state shared by the SHUTDOWN command and the signal listener.
#[derive(Default)]
pub struct State {
    teardown: Mutex<Option<Teardown>>,
    /// Serializes attempts (two SHUTDOWN commands, or one and a signal).
    attempt: Mutex<()>,
    /// An attempt is under way: a second signal means "exit now".
    in_progress: AtomicBool,
    /// A signal received while the cron is paused, not yet acted upon.
    pending: Mutex<Option<(SF, &'static str)>>,
    /// Bumped by SHUTDOWN ABORT: an attempt waiting for its replicas, or
    /// queued behind one, that started under an older value gives up.
    abort_gen: AtomicU64,
    /// SHUTDOWN commands waiting (INFO `blocked_clients`, as Redis counts
    /// them).
    pub blocked: AtomicU64,
    /// When an attempt waiting for its replicas (`shutdown-timeout`)
    /// gives up (unix ms; 0 when none is waiting).
    wait_until_ms: AtomicU64,
}

impl State {
    /// Records what the running server created (called once at start).
    pub fn set_teardown(&self, t: Teardown) {
        *self.teardown.lock() = Some(t);
    }

    /// INFO's `shutdown_in_milliseconds`: how long a shutdown waiting for
    /// its replicas may still wait (0 when none is waiting).
    pub fn wait_left_ms(&self) -> u64 {
        match self.wait_until_ms.load(Ordering::Relaxed) {
            0 => 0,
            until => until
                .saturating_sub(crate::commands::dispatch::unix_ms())
                .max(1),
        }
    }

    pub fn in_progress(&self) -> bool {
        self.in_progress.load(Ordering::SeqCst)
    }

    /// Keeps a signal's shutdown for later (the cron is paused).
    pub fn set_pending(&self, flags: SF, signal: &'static str) {
        *self.pending.lock() = Some((flags, signal));
    }

    pub fn take_pending(&self) -> Option<(SF, &'static str)> {
        self.pending.lock().take()
    }

    /// SHUTDOWN ABORT: cancels a shutdown that has not started yet, or
    /// one still waiting for its replicas.
    pub fn abort(&self) -> bool {
        let waiting = self.wait_until_ms.load(Ordering::SeqCst) != 0
            || self.blocked.load(Ordering::SeqCst) > 0;
        if waiting {
            self.abort_gen.fetch_add(1, Ordering::SeqCst);
        }
        let cancelled = self.pending.lock().take().is_some() || waiting;
        if cancelled {
            tracing::warn!("Shutdown manually aborted.");
        }
        cancelled
    }
}

/// The temporary file of the in-process final save (Redis's name).
fn temp_rdb() -> PathBuf {
    crate::persistence::snapshot::temp_rdb(std::process::id())
}

/// Why an attempt failed (already logged).
#[derive(Debug)]
pub struct Refused;

/// Tries to shut down with SHUTDOWN's `flags`. Returns only if that
/// failed: on success the process exits with status 0. `caller` is the
/// client that asked (its connection is not waited for).
pub fn finish(srv: &Server, mut flags: SF, caller: Option<u64>) -> Refused {
    let gen = srv.shutdown.abort_gen.load(Ordering::SeqCst);
    let _attempt = srv.shutdown.attempt.lock();
    if srv.shutdown.abort_gen.load(Ordering::SeqCst) != gen {
        // SHUTDOWN ABORT while this one waited for the attempt before it.
        return Refused;
    }
    srv.shutdown.in_progress.store(true, Ordering::SeqCst);
    let paused = !flags.has(SF::NOW) && !srv.persist.loading() && needs_wait(srv);
    if paused && !wait_for_replicas(srv, gen) {
        srv.pause.unpause();
        srv.shutdown.in_progress.store(false, Ordering::SeqCst);
        return Refused;
    }
    let r = attempt(srv, &mut flags, caller);
    tracing::warn!("Errors trying to shut down the server. Check the logs for more information.");
    if paused {
        srv.pause.unpause();
    }
    srv.shutdown.in_progress.store(false, Ordering::SeqCst);
    r
}

fn needs_wait(srv: &Server) -> bool {
    srv.config.shutdown_timeout() > 0 && srv.repl.count() > 0
}

/// Redis 7's `shutdown-timeout`: writes are paused and the replicas get up
/// to that many seconds to acknowledge the whole stream, so none misses a
/// write and, with the replication position in the final RDB, they all
/// continue the restarted server partially. A lagging replica does not
/// stop the shutdown once the time is up. Returns false when SHUTDOWN
/// ABORT cancelled the wait.
fn wait_for_replicas(srv: &Server, gen: u64) -> bool {
    use crate::commands::dispatch::unix_ms;
    let now = unix_ms();
    let deadline = now + srv.config.shutdown_timeout().saturating_mul(1000);
    tracing::info!("Waiting for replicas before shutting down.");
    srv.pause
        .pause(deadline + 1000, super::pause::PauseKind::Write, now);
    srv.shutdown
        .wait_until_ms
        .store(deadline.max(1), Ordering::SeqCst);
    // Writes that passed the pause check before it was set land first.
    std::thread::sleep(Duration::from_millis(10));
    let target = srv.repl.offset(srv);
    // Only lagging replicas are asked (a GETACK moves the offset).
    let mut asked = Instant::now();
    if srv.repl.acked_any_state(target) < srv.repl.count() {
        srv.repl.request_acks(srv);
    }
    let ok = loop {
        if srv.shutdown.abort_gen.load(Ordering::SeqCst) != gen {
            break false;
        }
        if srv.repl.acked_any_state(target) >= srv.repl.count() {
            break true;
        }
        if unix_ms() >= deadline {
            for l in srv.repl.links() {
                let ack = l.ack.load(Ordering::Relaxed);
                if ack < target {
                    tracing::warn!(
                        "Lagging replica {} reported offset {ack} behind master, lag={}, state={:?}.",
                        l.name(),
                        target - ack,
                        l.state()
                    );
                }
            }
            break true;
        }
        if asked.elapsed() >= Duration::from_secs(1) {
            srv.repl.request_acks(srv);
            asked = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    if ok {
        tracing::info!(
            "{} of {} replicas are in sync when shutting down.",
            srv.repl.acked_any_state(target),
            srv.repl.count()
        );
    }
    srv.shutdown.wait_until_ms.store(0, Ordering::SeqCst);
    ok
}

fn attempt(srv: &Server, flags: &mut SF, caller: Option<u64>) -> Refused {
    // A half-loaded dataset is never saved over the file it comes from.
    if srv.persist.loading() {
        *flags = SF((flags.0 & !SF::SAVE) | SF::NOSAVE);
    }
    let save =
        !flags.has(SF::NOSAVE) && (flags.has(SF::SAVE) || !srv.config.save_points().is_empty());
    // An AOF just turned on exists only once its first rewrite is done:
    // exiting before would lose the dataset (Redis's AOF_WAIT_REWRITE).
    if srv.persist.aof_initial.load(Ordering::SeqCst)
        && srv.persist.child_kind() == Some(crate::persistence::ChildKind::AofRewrite)
    {
        if !flags.has(SF::FORCE) {
            tracing::warn!("Writing initial AOF, can't exit.");
            return Refused;
        }
        tracing::warn!("Writing initial AOF. Exit anyway.");
    }
    kill_child(srv);
    // Hold every shard: from here no command changes the dataset. A script
    // holding them all (SHUTDOWN NOSAVE while busy) is not waited for.
    let frozen = if crate::scripting::running() && !save {
        None
    } else {
        Some(crate::persistence::snapshot::Frozen {
            dbs: crate::commands::ctx::lock_everything(srv),
            now: crate::commands::dispatch::unix_ms(),
        })
    };
    if crate::persistence::snapshot::aof_writing(srv) {
        tracing::info!("Calling fsync() on the AOF file.");
        if let Err(e) = crate::persistence::snapshot::flush_aof(srv) {
            tracing::warn!("Error flushing the AOF file on shutdown: {e}");
            if !flags.has(SF::FORCE) {
                tracing::warn!("Error trying to flush the AOF, can't exit.");
                return Refused;
            }
        }
    }
    if save {
        tracing::info!("Saving the final RDB snapshot before exiting.");
        let result = match &frozen {
            Some(f) => crate::persistence::snapshot::save_in_process(srv, f, &temp_rdb()),
            None => Err("the dataset is held by a running script".to_string()),
        };
        match result {
            Ok(()) => tracing::info!("DB saved on disk"),
            Err(e) => {
                tracing::warn!("Error trying to save the DB: {e}");
                if flags.has(SF::FORCE) {
                    tracing::warn!("Error trying to save the DB. Exit anyway.");
                } else {
                    tracing::warn!("Error trying to save the DB, can't exit.");
                    return Refused;
                }
            }
        }
    }
    // Committed. Nothing below can fail the shutdown.
    crate::persistence::snapshot::stop_aof(srv);
    srv.request_shutdown();
    super::listener::stop_all(srv);
    for c in srv.clients.iter() {
        if Some(c.id) != caller {
            c.request_kill();
        }
    }
    // Let connections flush the replies of commands that completed.
    let others = |srv: &Server| srv.clients.iter().filter(|c| Some(c.id) != caller).count();
    let deadline = Instant::now() + Duration::from_millis(200);
    while others(srv) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let teardown = srv.shutdown.teardown.lock().clone();
    if let Some(t) = &teardown {
        process::notify_stopping(&t.supervisor);
        if let Some(p) = &t.pidfile {
            tracing::info!("Removing the pid file.");
            process::remove_pidfile(p);
        }
        if let Some(p) = &t.unix_socket {
            tracing::info!("Removing the unix socket file.");
            let _ = std::fs::remove_file(p);
        }
    }
    tracing::info!("Cinnabar is now ready to exit, bye bye...");
    // The shard locks go with the process: a command still waiting for
    // one never runs (its client was not answered).
    std::mem::forget(frozen);
    std::process::exit(0);
}

/// A second signal during a shutdown: leave now, without the final save.
pub fn insist(srv: &Server) -> ! {
    tracing::warn!("You insist... exiting now.");
    // Exiting before the child's reaper runs: delete its file here.
    if let Some(c) = crate::persistence::snapshot::kill_child(srv, None) {
        let _ = std::fs::remove_file(crate::persistence::snapshot::temp_rdb(c.pid.unsigned_abs()));
    }
    let _ = std::fs::remove_file(crate::persistence::snapshot::temp_rdb_versioned());
    let _ = std::fs::remove_file(temp_rdb());
    std::process::exit(1);
}

/// Kills a snapshot/rewrite child and waits for its reaper to clean up
/// (its temporary file is deleted there).
fn kill_child(srv: &Server) {
    let Some(c) = crate::persistence::snapshot::kill_child(srv, None) else {
        return;
    };
    let what = match c.kind {
        crate::persistence::ChildKind::Rdb => "saving an .rdb",
        crate::persistence::ChildKind::AofRewrite => "rewriting the AOF",
    };
    tracing::warn!("There is a child {what}. Killing it!");
    let deadline = Instant::now() + Duration::from_secs(5);
    while srv.persist.child.lock().is_some() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}
