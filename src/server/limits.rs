//! Connection limits besides `maxclients` (enforced in `listener`):
//! `timeout` (idle clients are closed by a once-a-second sweep, with
//! Redis's exceptions), `tcp-keepalive` (SO_KEEPALIVE with Redis's probe
//! timing on every accepted socket), and `client-output-buffer-limit`
//! for normal clients (a cached copy of the limits read by
//! `connection::serve`, which closes a client whose pending replies exceed
//! the hard limit, or whose output stays above the soft limit for the soft
//! time while the peer does not read).
//!
//! Replies are written as far as the socket takes them, and the rest while
//! the connection goes on reading and running what the client sends (a
//! client may write a whole pipeline before it reads anything). A client
//! that sends but does not read therefore accumulates output, as in Redis,
//! and these limits and `maxmemory-clients` ([`ClientMem`]) are what bound
//! it.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{ClientClass, Config};
use crate::server::Server;

/// Applies `tcp-keepalive` to an accepted socket: SO_KEEPALIVE, first
/// probe after `secs` idle seconds, then every `secs / 3` seconds, 3
/// probes (as Redis's anetKeepAlive). 0 leaves keepalive off.
pub fn set_keepalive(stream: &tokio::net::TcpStream, secs: u64) {
    if secs == 0 {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let fd = stream.as_raw_fd();
        let idle = secs.min(i32::MAX as u64) as libc::c_int;
        let opts: [(libc::c_int, libc::c_int, libc::c_int); 4] = [
            (libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1),
            (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, idle),
            (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, (idle / 3).max(1)),
            (libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 3),
        ];
        for (level, name, val) in opts {
            // SAFETY: fd is a live socket owned by `stream`; the option
            // value is a c_int whose size is passed.
            let rc = unsafe {
                libc::setsockopt(
                    fd,
                    level,
                    name,
                    &val as *const libc::c_int as *const libc::c_void,
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if rc != 0 {
                tracing::debug!("setsockopt keepalive: {}", std::io::Error::last_os_error());
                return;
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (stream, secs);
    }
}

/// `client-output-buffer-limit normal …`, cached in atomics so the
/// connection loop reads it without the configuration's lock.
#[derive(Default)]
pub struct ObufNormal {
    hard: AtomicU64,
    soft: AtomicU64,
    soft_seconds: AtomicU64,
}

impl ObufNormal {
    /// Copies the current normal-class limits from the configuration.
    pub fn sync(&self, cfg: &Config) {
        let l = cfg.client_output_buffer_limit(ClientClass::Normal);
        self.hard.store(l.hard, Ordering::Relaxed);
        self.soft.store(l.soft, Ordering::Relaxed);
        self.soft_seconds.store(l.soft_seconds, Ordering::Relaxed);
    }

    /// Does `pending` bytes of output exceed the hard limit?
    #[inline]
    pub fn over_hard(&self, pending: usize) -> bool {
        let h = self.hard.load(Ordering::Relaxed);
        h != 0 && pending as u64 > h
    }

    /// How long a write of `pending` bytes may take before the client is
    /// closed (None: no soft limit applies to that much output).
    #[inline]
    pub fn soft_deadline(&self, pending: usize) -> Option<Duration> {
        let s = self.soft.load(Ordering::Relaxed);
        if s == 0 || pending as u64 <= s {
            return None;
        }
        // Redis needs the limit exceeded across two checks at least a
        // second apart even with 0 seconds.
        let secs = self.soft_seconds.load(Ordering::Relaxed).max(1);
        Some(Duration::from_secs(secs))
    }
}

/// `maxmemory-clients`: client eviction, as in Redis 7. Every connection
/// publishes its memory (`ClientInfo::tot_mem`: query and reply buffers,
/// queued transaction, watched keys, subscriptions, tracking prefixes)
/// after each read and each batch; the server keeps their sum. Once the sum
/// passes the limit, clients are closed from the largest down until it is
/// within it again (Redis evicts at equality too; a limit set to exactly
/// what some clients use keeps them here). Clients with CLIENT NO-EVICT on count in the sum but are
/// never chosen.
#[derive(Default)]
pub struct ClientMem {
    /// Sum of the clients' published memory.
    total: AtomicUsize,
    /// The limit in bytes (0: none), from `maxmemory-clients` and
    /// `maxmemory`.
    limit: AtomicU64,
    /// One eviction pass at a time.
    pass: parking_lot::Mutex<()>,
    /// Memory of clients that client eviction closed and whose
    /// connections have not let go of it yet.
    closing: AtomicUsize,
}

/// Redis never lets a percentage or byte limit go below this (so that a
/// tiny setting still leaves room to talk to the server).
const MIN_CLIENT_EVICTION_LIMIT: u64 = 128 * 1024;

impl ClientMem {
    /// Recomputes the limit from the configuration.
    pub fn sync(&self, cfg: &Config) {
        let raw = cfg.maxmemory_clients();
        let limit = if raw < 0 {
            cfg.maxmemory().saturating_mul(raw.unsigned_abs()) / 100
        } else {
            raw as u64
        };
        let limit = if limit > 0 {
            limit.max(MIN_CLIENT_EVICTION_LIMIT)
        } else {
            0
        };
        self.limit.store(limit, Ordering::Relaxed);
    }

    /// Is `maxmemory-clients` set?
    #[inline]
    pub fn enabled(&self) -> bool {
        self.limit.load(Ordering::Relaxed) != 0
    }

    /// Sum of the clients' memory (INFO mem_clients_normal).
    pub fn total(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// Publishes a client's current memory, `mem` (its connection is the
    /// only writer of `mem_counted`); true if the clients' total has
    /// passed the limit (the caller then runs [`evict_clients`]).
    #[inline]
    pub fn update(&self, info: &crate::connection::client::ClientInfo, mem: usize) -> bool {
        let before = info.mem_counted.load(Ordering::Relaxed);
        let total = if mem == before {
            self.total.load(Ordering::Relaxed)
        } else {
            info.mem_counted.store(mem, Ordering::Relaxed);
            if mem > before {
                self.total.fetch_add(mem - before, Ordering::Relaxed) + (mem - before)
            } else {
                self.total
                    .fetch_sub(before - mem, Ordering::Relaxed)
                    .saturating_sub(before - mem)
            }
        };
        let limit = self.limit.load(Ordering::Relaxed);
        limit != 0 && total as u64 > limit
    }

    /// Takes a leaving client's memory out of the total (once its buffers
    /// are freed). True if it was one client eviction closed.
    pub fn release(&self, info: &crate::connection::client::ClientInfo) -> bool {
        let before = info.mem_counted.swap(0, Ordering::Relaxed);
        self.total.fetch_sub(before, Ordering::Relaxed);
        let closing = info.mem_closing.swap(0, Ordering::Relaxed);
        self.closing.fetch_sub(closing, Ordering::Relaxed);
        closing != 0
    }

    /// Memory still held by clients that client eviction closed: Redis
    /// frees an evicted client at once, so key eviction leaves this out
    /// rather than evict keys for memory that is on its way back.
    pub fn closing(&self) -> u64 {
        self.closing.load(Ordering::Relaxed) as u64
    }
}

/// Closes the largest evictable clients until the clients' memory is within
/// `maxmemory-clients` (Redis's evictClients). Each client's memory is
/// read afresh; clients already closing are left out of the sum.
pub fn evict_clients(srv: &Server) {
    let cm = &srv.client_mem;
    let limit = cm.limit.load(Ordering::Relaxed);
    if limit == 0 {
        return;
    }
    let _pass = cm.pass.lock();
    let mut total: u64 = 0;
    let mut candidates: Vec<(usize, Arc<crate::connection::client::ClientInfo>)> = Vec::new();
    for c in srv.clients.iter() {
        // Replica links are neither counted nor evicted (as in Redis: only
        // normal and pub/sub clients).
        if c.killed.load(Ordering::Relaxed) || c.replica.load(Ordering::Relaxed) {
            continue;
        }
        let mem = c.tot_mem();
        total += mem as u64;
        if !c.no_evict.load(Ordering::Relaxed) {
            candidates.push((mem, c.value().clone()));
        }
    }
    if total <= limit {
        return;
    }
    candidates.sort_unstable_by_key(|c| std::cmp::Reverse(c.0));
    for (mem, c) in candidates {
        if total <= limit {
            return;
        }
        tracing::info!(
            "Evicting client: {}",
            crate::commands::connection::client_line(srv, &c)
        );
        c.request_kill();
        let dropped = c.outbox.lock().as_ref().map_or(0, |o| o.discard());
        let lingering = mem.saturating_sub(dropped);
        c.mem_closing.store(lingering, Ordering::Relaxed);
        cm.closing.fetch_add(lingering, Ordering::Relaxed);
        srv.stats.evicted_clients.fetch_add(1, Ordering::Relaxed);
        total -= mem as u64;
    }
    if total > limit {
        tracing::warn!("Over client maxmemory after evicting all evictable clients");
    }
}

/// Closes clients idle for more than `timeout` seconds, checked once a
/// second (Redis checks from its cron too). As in Redis, clients blocked
/// in BLPOP & co. and Pub/Sub subscribers are never closed for idleness.
/// The same tick closes MIGRATE connections unused for 10 s. Every 100 ms
/// it also resizes query buffers ([`resize_query_buffers`]), as Redis's
/// clientsCron visits every client about ten times a second when there
/// are few.
pub async fn idle_timeout_task(srv: Arc<Server>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rx = srv.shutdown_receiver();
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = rx.changed() => return,
        }
        resize_query_buffers(&srv);
        // Messages queued for subscribers grow their memory without their
        // connections running: the cron looks at every client's total.
        if !srv.cron_paused.load(Ordering::Relaxed) {
            evict_clients(&srv);
            srv.repl.cron(&srv);
        }
        n += 1;
        if !n.is_multiple_of(10) {
            continue;
        }
        // MIGRATE's connections unused for 10 s are closed (Redis's cron).
        srv.migrate.prune();
        let timeout = srv.config.timeout();
        if timeout == 0 {
            continue;
        }
        let now_s = crate::commands::dispatch::unix_ms() / 1000;
        let idle: Vec<u64> = srv
            .clients
            .iter()
            .filter(|c| {
                let last_s = c.last_interaction.load(Ordering::Relaxed) / 1000;
                now_s.saturating_sub(last_s) > timeout
                    && !c.subscribed()
                    && !c.replica.load(Ordering::Relaxed)
            })
            .map(|c| c.id)
            .collect();
        for id in idle {
            if srv.blocking.is_blocked(id) || srv.repl.is_waiting(id) {
                continue;
            }
            if let Some((_, c)) = srv.clients.remove(&id) {
                tracing::debug!(client = id, "Closing idle client");
                c.request_kill();
            }
        }
    }
}

/// Redis's clientsCronResizeQueryBuffer: a query buffer wasting more than
/// 4 KB is released when its client has been idle over 2 seconds, or
/// trimmed to its recent peak when it is over 32 KB and more than twice
/// that peak (a big value came and went). The connection applies the
/// request when it wakes; the peak restarts from the current length.
fn resize_query_buffers(srv: &Server) {
    use crate::connection::QBUF_RELEASE;
    let now = crate::commands::dispatch::unix_ms();
    for c in srv.clients.iter() {
        let len = c.qbuf.load(Ordering::Relaxed);
        let cap = c.qbuf_cap.load(Ordering::Relaxed);
        let peak = c.qbuf_peak.swap(len, Ordering::Relaxed);
        if cap.saturating_sub(len) <= 4096 || c.qbuf_trim.load(Ordering::Relaxed) != 0 {
            continue;
        }
        let idle_s = now.saturating_sub(c.last_interaction.load(Ordering::Relaxed)) / 1000;
        let target = if idle_s > 2 {
            QBUF_RELEASE
        } else if cap > 32 * 1024 && cap / 2 > peak {
            len.max(peak).max(1)
        } else {
            continue;
        };
        c.qbuf_trim.store(target, Ordering::Relaxed);
        c.push_wake.notify();
    }
}
