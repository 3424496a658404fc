//! Blocking commands' shared machinery: timeout parsing, parking a client
//! on keys, and serving it when a writer makes one of them ready.
//!
//! Model (the same observable behaviour as Redis 7.0's blocking lists):
//!
//! * A handler that finds nothing to serve calls [`Ctx::block`]. That
//!   registers a [`Waiter`] for the client's keys while the command still
//!   holds its shard locks, so no write can slip between "found nothing" and
//!   "registered". The waiter joins each key's queue in global arrival
//!   order (first come, first served).
//! * Writers call [`Ctx::signal_ready`] for keys they create or grow; the
//!   keys are collected on the client and, once the command has finished
//!   and released its locks, [`handle_ready_keys`] serves the waiters of
//!   each ready key in FIFO order *on the writer's thread*: it runs the
//!   blocked client's command again on its behalf and hands the reply to
//!   the parked connection. The writer's own reply is sent afterwards, so
//!   like Redis the effects of served waiters (an element moved by BLMOVE,
//!   a chain of waiters fed by it) are visible before the writer hears back.
//!   A waiter whose re-run finds nothing (someone else emptied the key)
//!   stays queued at its position.
//! * The parked connection task ([`park`]) holds no lock and no thread: it
//!   awaits a `Notify`, a timer for the deadline, CLIENT KILL and its socket
//!   (a disconnect removes the waiter). Ten thousand blocked clients are
//!   ten thousand idle tasks.
//! * Inside MULTI/EXEC (`Client::deny_blocking`) `block` answers the
//!   timeout reply at once, as Redis does.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::Notify;

use crate::commands::ctx::Ctx;
use crate::connection::client::{Client, ClientInfo};
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::server::{Server, Stats};

/// The error a client unblocked with `CLIENT UNBLOCK … ERROR` receives.
pub const UNBLOCKED: CmdError =
    CmdError::from_static("UNBLOCKED client unblocked via CLIENT UNBLOCK");

/// Parses a timeout in milliseconds (an integer, never negative), with
/// Redis's errors: WAIT, XREAD/XREADGROUP BLOCK, CLIENT PAUSE.
pub fn timeout_ms(raw: &[u8]) -> CmdResult<u64> {
    let ms = crate::protocol::codec::parse_i64(raw).ok_or(CmdError::TIMEOUT_NOT_INT)?;
    u64::try_from(ms).map_err(|_| CmdError::TIMEOUT_NEG)
}

/// [`timeout_ms`] as an absolute unix-ms deadline, 0 = forever (`None`).
pub fn deadline_ms(raw: &[u8], now_ms: u64) -> CmdResult<Option<u64>> {
    let ms = timeout_ms(raw)?;
    Ok((ms > 0).then(|| now_ms.saturating_add(ms)))
}

/// Parses a blocking command's timeout in seconds (fractions allowed;
/// 0 = forever) into an absolute unix-ms deadline (`None` = forever), with
/// Redis's errors.
pub fn parse_timeout(raw: &[u8], now_ms: u64) -> CmdResult<Option<u64>> {
    // Redis: (long long) ceill(secs * 1000) in long double, so ±inf and
    // anything past the 64-bit range come out negative.
    let ms = crate::util::ldouble::timeout_ms(raw).ok_or(CmdError::TIMEOUT_INVALID)?;
    if ms < 0 {
        return Err(CmdError::TIMEOUT_NEG);
    }
    if ms == 0 {
        return Ok(None);
    }
    // Redis adds the clock with a signed overflow into the past, so such a
    // wait times out at once.
    Ok(Some(
        now_ms
            .checked_add(ms as u64)
            .filter(|d| *d <= i64::MAX as u64)
            .unwrap_or(now_ms),
    ))
}

/// Blocking-related state of one connection (lives in [`Client`]).
#[derive(Default)]
pub struct ClientBlockState {
    /// Set by [`Ctx::block`]: the waiter the connection must park on once
    /// the command has returned.
    pub waiter: Option<Arc<Waiter>>,
    /// Keys signalled ready by this client's commands, not yet served.
    pub ready_keys: Vec<(u32, Bytes)>,
    /// This client is a stand-in running a blocked client's command on its
    /// behalf (see [`handle_ready_keys`]): `block` must not register.
    pub serving: bool,
    /// Set when a command run in `serving` mode found nothing to serve.
    pub would_block: bool,
    /// The argv to store for the waiter instead of the command's own, set by
    /// a handler that resolves arguments at block time (XREAD's `$`).
    pub argv_override: Option<Vec<Bytes>>,
}

/// Where a waiter is in its life.
#[derive(Debug)]
enum Phase {
    /// Registered by `block` but the command has not returned yet (its
    /// argv is not attached). Writers that find it here set `missed`.
    Pending,
    /// Parked, may be served.
    Waiting,
    /// A writer is running its command right now.
    Serving,
    /// Finished; the reply (None when abandoned) awaits the connection.
    Done(Option<Reply>),
}

#[derive(Debug)]
struct WaitState {
    phase: Phase,
    /// A ready signal arrived while `Pending`: re-check on activation.
    missed: bool,
    /// The client went away while being served.
    abandoned: bool,
    /// CLIENT UNBLOCK arrived while being served.
    unblock: Option<Reply>,
    /// Where the served command's propagation ended (AOF, replication):
    /// its reply waits for that much of the AOF to be durable, and WAIT
    /// counts replicas up to it, as for a command run directly.
    served_at: (u64, u64),
}

/// One blocked client.
pub struct Waiter {
    seq: u64,
    client_id: u64,
    db: u32,
    /// The keys it waits on (deduplicated).
    keys: Vec<Bytes>,
    argv: Mutex<Vec<Bytes>>,
    resp: u8,
    info: Arc<ClientInfo>,
    deadline: Option<u64>,
    on_timeout: Reply,
    state: Mutex<WaitState>,
    notify: Notify,
}

impl Waiter {
    /// Pending/Waiting → Serving. False if it cannot be served now.
    fn claim(&self) -> bool {
        let mut st = self.state.lock();
        match st.phase {
            Phase::Waiting if !st.abandoned && st.unblock.is_none() => {
                st.phase = Phase::Serving;
                true
            }
            Phase::Pending => {
                st.missed = true;
                false
            }
            _ => false,
        }
    }

    /// Serving → Done with the command's reply.
    fn finish_served(&self, srv: &Server, reply: Reply, served_at: (u64, u64)) {
        {
            let mut st = self.state.lock();
            st.phase = Phase::Done(Some(reply));
            st.served_at = served_at;
        }
        srv.blocking.remove(self);
        self.notify.notify_one();
    }

    /// Serving → Waiting again (nothing to serve), unless the client left or
    /// was unblocked meanwhile.
    fn finish_unserved(&self, srv: &Server) {
        let done = {
            let mut st = self.state.lock();
            if st.abandoned {
                st.phase = Phase::Done(None);
                true
            } else if let Some(r) = st.unblock.take() {
                st.phase = Phase::Done(Some(r));
                true
            } else {
                st.phase = Phase::Waiting;
                false
            }
        };
        if done {
            srv.blocking.remove(self);
        }
        // Wakes a connection whose deadline passed while we were serving.
        self.notify.notify_one();
    }
}

/// All blocked clients, by key and by client id.
#[derive(Default)]
pub struct BlockRegistry {
    inner: Mutex<Reg>,
    /// Number of blocked clients (INFO blocked_clients); also the cheap
    /// "does anybody wait at all" test writers make on every push.
    count: AtomicUsize,
    seq: AtomicU64,
}

#[derive(Default)]
struct Reg {
    by_key: HashMap<(u32, Bytes), BTreeMap<u64, Arc<Waiter>>>,
    by_client: HashMap<u64, Arc<Waiter>>,
}

impl BlockRegistry {
    /// Number of clients currently blocked.
    pub fn blocked_clients(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Is client `id` blocked (CLIENT LIST flag `b`)?
    pub fn is_blocked(&self, id: u64) -> bool {
        self.blocked_clients() > 0 && self.inner.lock().by_client.contains_key(&id)
    }

    fn register(&self, w: Arc<Waiter>) {
        let mut reg = self.inner.lock();
        for k in &w.keys {
            reg.by_key
                .entry((w.db, k.clone()))
                .or_default()
                .insert(w.seq, w.clone());
        }
        if let Some(old) = reg.by_client.insert(w.client_id, w.clone()) {
            // Cannot happen (a parked connection runs no command), but never
            // leave a stale waiter behind.
            for k in &old.keys {
                if let Some(q) = reg.by_key.get_mut(&(old.db, k.clone())) {
                    q.remove(&old.seq);
                }
            }
        } else {
            self.count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Forgets `w` everywhere (idempotent).
    fn remove(&self, w: &Waiter) {
        let mut reg = self.inner.lock();
        for k in &w.keys {
            let key = (w.db, k.clone());
            if let Some(q) = reg.by_key.get_mut(&key) {
                q.remove(&w.seq);
                if q.is_empty() {
                    reg.by_key.remove(&key);
                }
            }
        }
        if reg
            .by_client
            .get(&w.client_id)
            .is_some_and(|c| c.seq == w.seq)
        {
            reg.by_client.remove(&w.client_id);
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Is a client blocked on `key` of `db` running command `name` (e.g.
    /// XREADGROUP, which must hear of its stream's deletion)?
    pub fn has_waiter_running(&self, db: u32, key: &[u8], name: &str) -> bool {
        let reg = self.inner.lock();
        reg.by_key
            .get(&(db, Bytes::copy_from_slice(key)))
            .is_some_and(|q| {
                q.values().any(|w| {
                    w.argv
                        .lock()
                        .first()
                        .is_some_and(|a| a.eq_ignore_ascii_case(name.as_bytes()))
                })
            })
    }

    /// The waiters of one key, oldest first.
    fn waiters_of(&self, db: u32, key: &Bytes) -> Vec<Arc<Waiter>> {
        let reg = self.inner.lock();
        reg.by_key
            .get(&(db, key.clone()))
            .map(|q| q.values().cloned().collect())
            .unwrap_or_default()
    }

    /// CLIENT UNBLOCK: ends client `id`'s wait with the timeout reply, or
    /// with the UNBLOCKED error. False if it is not blocked.
    pub fn unblock(&self, srv: &Server, id: u64, error: bool) -> bool {
        let Some(w) = self.inner.lock().by_client.get(&id).cloned() else {
            return false;
        };
        let reply = if error {
            Reply::Error(UNBLOCKED)
        } else {
            w.on_timeout.clone()
        };
        let done = {
            let mut st = w.state.lock();
            match st.phase {
                Phase::Waiting | Phase::Pending => {
                    st.phase = Phase::Done(Some(reply));
                    true
                }
                Phase::Serving => {
                    st.unblock = Some(reply);
                    false
                }
                Phase::Done(_) => return false,
            }
        };
        if done {
            self.remove(&w);
            count_unserved(srv, &w, error);
            w.notify.notify_one();
        }
        true
    }
}

impl Ctx<'_> {
    /// Parks the client until one of `keys` (in its current database) is
    /// signalled ready or `deadline` (unix ms, `None` = forever) passes;
    /// then the command runs again from the start. `on_timeout` is the reply
    /// sent if the deadline passes, and is returned at once where a client
    /// may not block (inside MULTI/EXEC or a script).
    pub fn block(&mut self, keys: &[Bytes], deadline: Option<u64>, on_timeout: Reply) -> CmdResult {
        self.block_or(keys, deadline, on_timeout.clone(), on_timeout)
    }

    /// [`Ctx::block`] with a different reply where the client may not
    /// block: BLMOVE and BRPOPLPUSH answer a null bulk there but a null
    /// array on timeout, as Redis 7.0 does.
    pub fn block_or(
        &mut self,
        keys: &[Bytes],
        deadline: Option<u64>,
        on_deny: Reply,
        on_timeout: Reply,
    ) -> CmdResult {
        if self.client.blocking.serving {
            self.client.blocking.would_block = true;
            return Ok(on_timeout);
        }
        if self.client.deny_blocking {
            return Ok(on_deny);
        }
        let mut uniq: Vec<Bytes> = Vec::with_capacity(keys.len());
        for k in keys {
            if !uniq.contains(k) {
                uniq.push(Bytes::copy_from_slice(k));
            }
        }
        let reg = &self.srv.blocking;
        let w = Arc::new(Waiter {
            seq: reg.seq.fetch_add(1, Ordering::Relaxed),
            client_id: self.client.id,
            db: self.client.db as u32,
            keys: uniq,
            argv: Mutex::new(Vec::new()),
            resp: self.client.resp,
            info: self.client.info.clone(),
            deadline,
            on_timeout: on_timeout.clone(),
            state: Mutex::new(WaitState {
                phase: Phase::Pending,
                missed: false,
                abandoned: false,
                unblock: None,
                served_at: (0, 0),
            }),
            notify: Notify::new(),
        });
        // Registered while this command still holds the keys' shard locks:
        // any writer of these keys runs after us and will find the waiter.
        reg.register(w.clone());
        self.client.blocking.waiter = Some(w);
        // Placeholder; the connection parks instead of sending it.
        Ok(on_timeout)
    }

    /// Records that `key` (in the client's current database) may now satisfy
    /// clients blocked on it (a push, an add). Waiters are woken after the
    /// command (or the whole transaction) completes.
    pub fn signal_ready(&mut self, key: &[u8]) {
        let db = self.client.db as u32;
        self.signal_ready_in(db, key);
    }

    /// [`Ctx::signal_ready`] for a key of database `db` (MOVE, COPY … DB).
    pub fn signal_ready_in(&mut self, db: u32, key: &[u8]) {
        if self.srv.blocking.blocked_clients() == 0 {
            return;
        }
        let ready = &mut self.client.blocking.ready_keys;
        if !ready.iter().any(|(d, k)| *d == db && k[..] == *key) {
            ready.push((db, Bytes::copy_from_slice(key)));
        }
    }

    /// Signals every key clients of database `db` are blocked on (SWAPDB:
    /// the whole content of the database changed).
    pub fn signal_blocked_keys_of_db(&mut self, db: u32) {
        if self.srv.blocking.blocked_clients() == 0 {
            return;
        }
        let keys: Vec<Bytes> = {
            let reg = self.srv.blocking.inner.lock();
            reg.by_key
                .keys()
                .filter(|(d, _)| *d == db)
                .map(|(_, k)| k.clone())
                .collect()
        };
        for k in keys {
            self.signal_ready_in(db, &k);
        }
    }
}

/// Dispatch calls this after every command, once the command's locks are
/// released: attaches the argv to a waiter the command just registered,
/// then (unless the client defers it, inside EXEC) serves ready keys.
pub fn after_command(srv: &Server, client: &mut Client, argv_in: &[Bytes]) {
    if let Some(w) = &client.blocking.waiter {
        // Own copies: slices of the request would pin its read buffer.
        let argv = client.blocking.argv_override.take();
        let argv = argv.as_deref().unwrap_or(argv_in);
        *w.argv.lock() = argv.iter().map(|a| Bytes::copy_from_slice(a)).collect();
        let missed = {
            let mut st = w.state.lock();
            let missed = st.missed;
            if matches!(st.phase, Phase::Pending) {
                st.phase = Phase::Waiting;
            }
            missed
        };
        if missed {
            // A writer came by before we could be served: try again now.
            let (db, keys) = (w.db, w.keys.clone());
            for k in keys {
                client.blocking.ready_keys.push((db, k));
            }
        }
    }
    if !client.deny_blocking && !client.blocking.serving {
        handle_ready_keys(srv, client);
    }
}

/// Serves clients blocked on the keys `client`'s commands signalled ready,
/// first come first served, including keys made ready by the served
/// commands themselves (BLMOVE into a key others wait on). Call with no
/// shard lock held. EXEC calls this once after the whole transaction.
pub fn handle_ready_keys(srv: &Server, client: &mut Client) {
    if client.blocking.ready_keys.is_empty() {
        return;
    }
    let durable = serve_ready(srv, client.blocking.ready_keys.drain(..).collect());
    // The writer hears back once what it served is durable too (as
    // Redis's one fsync before any reply of the event loop's round).
    client.durable_upto = client.durable_upto.max(durable);
}

/// Serves the clients blocked on any key: the whole dataset was replaced
/// (a replica installed a full resync), as Redis scans a swapped-in
/// database for ready keys. A waiter whose key is still not ready stays
/// blocked.
pub fn serve_all_blocked(srv: &Server) {
    if srv.blocking.blocked_clients() == 0 {
        return;
    }
    let keys: VecDeque<(u32, Bytes)> = srv.blocking.inner.lock().by_key.keys().cloned().collect();
    serve_ready(srv, keys);
}

/// Returns where the served commands' AOF records end (0: none).
fn serve_ready(srv: &Server, mut queue: VecDeque<(u32, Bytes)>) -> u64 {
    let mut durable = 0;
    while let Some((db, key)) = queue.pop_front() {
        for w in srv.blocking.waiters_of(db, &key) {
            if !w.claim() {
                continue;
            }
            let mut tmp = Client::new(w.info.clone(), true);
            tmp.db = w.db as usize;
            tmp.resp = w.resp;
            tmp.blocking.serving = true;
            let argv = w.argv.lock().clone();
            let mut reply = crate::commands::dispatch::execute(srv, &mut tmp, &argv);
            crate::server::tracking::attach_pending(srv, &mut tmp, &mut reply);
            if tmp.blocking.would_block {
                w.finish_unserved(srv);
                // If the key is gone nobody else queued on it can be served.
                if !key_exists(srv, db, &key) {
                    break;
                }
            } else {
                durable = durable.max(tmp.durable_upto);
                w.finish_served(srv, reply, (tmp.durable_upto, tmp.repl_off));
                for rk in tmp.blocking.ready_keys.drain(..) {
                    if !queue.contains(&rk) {
                        queue.push_back(rk);
                    }
                }
            }
        }
    }
    durable
}

fn key_exists(srv: &Server, db: u32, key: &[u8]) -> bool {
    let Some(d) = srv.keyspace.db(db as usize) else {
        return false;
    };
    let sh = srv.keyspace.shard_index(key);
    let now = crate::commands::dispatch::unix_ms();
    d.shard(sh).lock().contains(key, now)
}

/// Counts a blocked command that ended without being served (timeout,
/// CLIENT UNBLOCK) in the command statistics, as Redis does on unblock.
fn count_unserved(srv: &Server, w: &Waiter, failed: bool) {
    let argv = w.argv.lock().clone();
    if let crate::commands::table::Lookup::Found(e) = crate::commands::table::table().lookup(&argv)
    {
        e.record_call(0, srv.config.latency_tracking());
        if failed {
            e.stats.record_failed();
            srv.stats.count_error(&UNBLOCKED);
        }
    }
    srv.stats.hot.add(Stats::COMMANDS, 1);
}

/// Ends a wait because the client is leaving (disconnect, CLIENT KILL).
fn abandon(srv: &Server, w: &Waiter) {
    {
        let mut st = w.state.lock();
        match st.phase {
            Phase::Serving => {
                st.abandoned = true;
                return;
            }
            Phase::Done(_) => {}
            _ => st.phase = Phase::Done(None),
        }
    }
    srv.blocking.remove(w);
}

/// The connection failed before it could park: drop the waiter.
pub fn park_abort(srv: &Server, client: &mut Client) {
    if let Some(w) = client.blocking.waiter.take() {
        abandon(srv, &w);
    }
}

/// Waits, in the connection task, for the blocked command's final reply.
/// Keeps reading the socket (buffering input into `inbuf`, as Redis buffers
/// a blocked client's pipeline) to notice disconnects. `None` means the
/// connection must close.
pub async fn park<S: AsyncRead + Unpin>(
    srv: &Server,
    client: &mut Client,
    stream: &mut S,
    inbuf: &mut BytesMut,
) -> Option<Reply> {
    let w = client.blocking.waiter.take()?;
    let info = client.info.clone();
    let mut eof = false;
    loop {
        let notified = w.notify.notified();
        {
            let mut st = w.state.lock();
            if let Phase::Done(r) = &mut st.phase {
                let r = r.take();
                let (aof, repl) = st.served_at;
                client.durable_upto = client.durable_upto.max(aof);
                client.repl_off = client.repl_off.max(repl);
                drop(st);
                srv.blocking.remove(&w);
                return if eof { None } else { r };
            }
            if matches!(st.phase, Phase::Waiting) {
                let now = crate::commands::dispatch::unix_ms();
                if w.deadline.is_some_and(|d| d <= now) {
                    st.phase = Phase::Done(None);
                    drop(st);
                    srv.blocking.remove(&w);
                    count_unserved(srv, &w, false);
                    return Some(w.on_timeout.clone());
                }
            }
        }
        if eof || info.killed.load(Ordering::Relaxed) {
            abandon(srv, &w);
            // Wait for an in-flight serve to settle so it never outlives us.
            if matches!(w.state.lock().phase, Phase::Serving) {
                notified.await;
                continue;
            }
            return None;
        }
        let sleep = async {
            match w.deadline {
                Some(d) => {
                    let now = crate::commands::dispatch::unix_ms();
                    tokio::time::sleep(Duration::from_millis(d.saturating_sub(now))).await
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = notified => {}
            _ = sleep => {}
            _ = info.kill.wait() => { eof = true; }
            // An Entra ID-style token login ended (the caller tells the
            // client and closes).
            _ = crate::connection::token_expiry(client.auth_deadline) => { eof = true; }
            r = stream.read_buf(inbuf) => match r {
                Ok(0) | Err(_) => eof = true,
                Ok(n) => {
                    srv.stats.hot.add(Stats::NET_INPUT, n as u64);
                    if inbuf.len() as u64 > srv.config.client_query_buffer_limit() {
                        eof = true;
                    }
                }
            },
        }
    }
}
