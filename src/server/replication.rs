//! Replication, the primary's side: Redis replicas (and anything speaking
//! SYNC/PSYNC, such as Redis's test harness) follow Cinnabar.
//!
//! * **The backlog.** Once a replica attaches, every record of the
//!   propagation stream (`server::propagate`) is also appended, encoded
//!   with its own SELECT state, to the [`Backlog`]: a queue of byte chunks
//!   numbered by replication offset (the first byte ever is offset 1, as in
//!   Redis; `master_repl_offset` is the last). It keeps at least
//!   `repl-backlog-size` bytes for partial resyncs, and whatever an
//!   attached replica has not yet copied out (Redis 7's shared replication
//!   buffer: one copy of the stream, whatever the number of replicas).
//! * **Full resync.** `PSYNC ? -1` (or a PSYNC that the backlog cannot
//!   serve, or the old SYNC) takes a snapshot; at its instant, under every
//!   shard lock, the replica's link is pinned in the backlog at the
//!   current offset, so the snapshot plus the stream from that offset is
//!   exactly the dataset. The reply is `+FULLRESYNC <replid> <offset>`,
//!   newlines as keep-alives while the snapshot is written, then the RDB
//!   as a bulk (`$<len>\r\n<bytes>`, the disk-based format every Redis
//!   replica reads), then the stream.
//! * **Partial resync.** `PSYNC <replid> <offset>` with our replication id
//!   and an offset the backlog still holds: `+CONTINUE <replid>` and the
//!   stream from there.
//! * **Acknowledgements.** Replicas send `REPLCONF ACK <offset>` every
//!   second; WAIT counts the replicas whose acknowledged offset reached the
//!   client's last write, asking for fresh ones with `REPLCONF GETACK *`.
//!   The primary sends `PING` every `repl-ping-replica-period` seconds and
//!   drops replicas silent for `repl-timeout`; a replica more than the
//!   `client-output-buffer-limit replica` hard limit behind is dropped.
//!
//! * **Replication ids.** `replid` names the history of the stream; a
//!   promoted replica starts a new one and keeps the old as `replid2`, valid
//!   up to `second_repl_offset`, so its former primary's other replicas
//!   continue partially. A primary without replicas for `repl-backlog-ttl`
//!   seconds frees its backlog and takes a new id.
//!
//! The replica's side (REPLICAOF) is in `server::replica`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::connection::client::{Client, ClientInfo};
use crate::protocol::codec::{Limits, RequestParser};
use crate::server::Server;
use crate::util::signal::Signal;

/// Chunks of the backlog are filled up to this size (a record larger than
/// the room left starts a chunk of its own size).
const CHUNK: usize = 16 * 1024;
/// At most this much of the stream is copied out per write to a replica.
const READ_MAX: usize = 1 << 20;

/// What a replica asked for: PSYNC's replication id and offset, or none
/// (the old SYNC, which always gets a full resync and no `+FULLRESYNC`
/// line).
#[derive(Debug, Clone)]
pub struct SyncRequest {
    pub psync: Option<(Bytes, i64)>,
    /// `REPLCONF listening-port` sent earlier on this connection.
    pub listening_port: u16,
    /// `REPLCONF ip-address` sent earlier on this connection.
    pub announced_ip: Option<String>,
    /// `REPLCONF capa eof` sent earlier: it can take a diskless snapshot.
    pub capa_eof: bool,
    /// `REPLCONF rdb-filter-only` sent earlier: a snapshot without keys,
    /// with the functions if `Some(true)`.
    pub filter: Option<bool>,
}

/// A replica's progress through its synchronisation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum LinkState {
    /// Waiting for its snapshot to be written.
    WaitBgsave = 0,
    /// Receiving the snapshot.
    SendBulk = 1,
    /// Receiving the stream.
    Online = 2,
}

/// One attached replica.
pub struct Link {
    pub info: Arc<ClientInfo>,
    /// The address to show (the connection's, or REPLCONF ip-address).
    pub ip: String,
    pub port: u16,
    /// The last offset copied out for sending (the backlog keeps what
    /// comes after it).
    pub sent: AtomicU64,
    /// The full resync this replica waits for (shared with the replicas
    /// that arrived with it; see `fullsync`), until it is sent.
    pub job: Mutex<Option<Arc<super::fullsync::SyncJob>>>,
    /// The last offset the replica acknowledged.
    pub ack: AtomicU64,
    /// Unix ms of the last acknowledgement (or of the attach).
    pub ack_ms: AtomicU64,
    /// An acknowledgement arrived (a diskless sync waits for the first).
    acked: AtomicBool,
    state: AtomicU8,
    /// The old SYNC: no acknowledgements will come (no timeout applies).
    pub pre_psync: bool,
    /// Pinned in the backlog (its data is being kept for it).
    pinned: AtomicBool,
    /// Wakes the link's writer when the stream grows.
    wake: Signal,
}

/// A replica's name in logs, as Redis writes it: `ip:port` with the port
/// it announced (`[ip]:port` for IPv6), `ip:<unknown-replica-port>`
/// without one.
pub fn replica_name(ip: &str, port: u16) -> String {
    match (port, ip.contains(':')) {
        (0, _) => format!("{ip}:<unknown-replica-port>"),
        (p, true) => format!("[{ip}]:{p}"),
        (p, false) => format!("{ip}:{p}"),
    }
}

/// The host part of a client address (`ip:port`, `[ip6]:port`).
pub fn host_of(addr: &str) -> String {
    addr.rsplit_once(':')
        .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']').to_string())
        .unwrap_or_default()
}

impl Link {
    /// The replica as Redis names it in logs ([`replica_name`]).
    pub fn name(&self) -> String {
        replica_name(&self.ip, self.port)
    }

    pub fn state(&self) -> LinkState {
        match self.state.load(Ordering::Relaxed) {
            0 => LinkState::WaitBgsave,
            1 => LinkState::SendBulk,
            _ => LinkState::Online,
        }
    }
    fn set_state(&self, s: LinkState) {
        self.state.store(s as u8, Ordering::Relaxed);
    }
}

/// What one chunk of the backlog occupies: it is allocated at [`CHUNK`]
/// bytes and never grows past it, plus its queue slot. The backlog
/// publishes its chunks to [`crate::server::memory::repl_buffer`] (Redis's
/// `repl_buffer_mem`, shared by the backlog and the replicas) as it adds
/// and drops them.
const CHUNK_MEM: u64 = (CHUNK + std::mem::size_of::<Vec<u8>>()) as u64;

/// The replication backlog (see the module docs).
pub struct Backlog {
    chunks: VecDeque<Vec<u8>>,
    /// Offset of the first byte held (`end + 1` when nothing is held).
    first: u64,
    /// Offset of the last byte appended (`master_repl_offset`).
    end: u64,
    held: usize,
    /// The database the stream last SELECTed.
    pub db: Option<usize>,
    /// Links whose unsent data is kept, and woken on appends.
    links: Vec<Arc<Link>>,
    limit: usize,
}

impl Drop for Backlog {
    fn drop(&mut self) {
        let held = self.chunks.len() as u64 * CHUNK_MEM;
        crate::server::memory::repl_buffer_changed(held, 0);
    }
}

impl Backlog {
    /// An empty backlog whose next byte is offset `end + 1`.
    pub fn new(end: u64, limit: usize) -> Backlog {
        Backlog {
            chunks: VecDeque::new(),
            first: end + 1,
            end,
            held: 0,
            db: None,
            links: Vec::new(),
            limit: limit.max(1),
        }
    }

    /// Appends encoded stream bytes; returns the new end offset.
    pub fn append(&mut self, bytes: &[u8]) -> u64 {
        if bytes.is_empty() {
            return self.end;
        }
        // Chunks hold at most CHUNK bytes, also when one append is larger
        // (a big value, a whole transaction): trimming drops whole chunks,
        // so the history kept stays within a chunk of `limit`, as Redis's
        // 16 KB replication buffer blocks keep it.
        let mut rest = bytes;
        if let Some(c) = self.chunks.back_mut() {
            let n = rest.len().min(CHUNK.saturating_sub(c.len()));
            c.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
        }
        for part in rest.chunks(CHUNK) {
            // Published before it is allocated (see `read`).
            crate::server::memory::repl_buffer_changed(0, CHUNK_MEM);
            let mut c = Vec::with_capacity(CHUNK);
            c.extend_from_slice(part);
            self.chunks.push_back(c);
        }
        self.end += bytes.len() as u64;
        self.held += bytes.len();
        self.trim();
        for l in &self.links {
            l.wake.notify();
        }
        self.end
    }

    /// Drops whole chunks from the front while more than the backlog's
    /// size is held and no attached replica still needs them.
    fn trim(&mut self) {
        let pin = self
            .links
            .iter()
            .map(|l| l.sent.load(Ordering::Relaxed))
            .min()
            .unwrap_or(u64::MAX);
        while self.chunks.len() > 1 {
            let len = self.chunks[0].len();
            if self.held - len < self.limit || self.first + len as u64 - 1 > pin {
                break;
            }
            self.chunks.pop_front();
            crate::server::memory::repl_buffer_changed(CHUNK_MEM, 0);
            self.first += len as u64;
            self.held -= len;
        }
    }

    /// Sets the size kept for partial resyncs (`repl-backlog-size`).
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit.max(1);
        self.trim();
    }

    pub fn end(&self) -> u64 {
        self.end
    }
    pub fn first(&self) -> u64 {
        self.first
    }
    /// What counts as the backlog's own memory for a `repl-backlog-size`
    /// of `limit`: that size and a queue slot per chunk, as Redis counts
    /// it. The partly filled chunks at either end are left to the
    /// replicas' share.
    pub fn allocation_for(limit: u64) -> u64 {
        limit + (limit / CHUNK as u64 + 1) * std::mem::size_of::<Vec<u8>>() as u64
    }
    /// Replicas attached (their unsent data is kept here).
    pub fn attached(&self) -> usize {
        self.links.len()
    }
    /// Bytes of history held.
    pub fn histlen(&self) -> u64 {
        self.end + 1 - self.first
    }
    /// Can a replica that has everything up to `off` continue from here?
    pub fn can_continue_from(&self, off: u64) -> bool {
        off + 1 >= self.first && off <= self.end
    }

    /// Pins `link` at offset `off` (the last byte it already has).
    pub(super) fn attach(&mut self, link: &Arc<Link>, off: u64) {
        link.sent.store(off, Ordering::Relaxed);
        link.pinned.store(true, Ordering::Relaxed);
        self.links.push(link.clone());
    }

    fn detach(&mut self, link: &Link) {
        self.links.retain(|l| !std::ptr::eq(l.as_ref(), link));
        link.pinned.store(false, Ordering::Relaxed);
        self.trim();
    }

    /// Copies the stream after `link.sent` (at most [`READ_MAX`] bytes) to
    /// `out` (empty) and advances `link.sent`. `held` publishes `out`'s
    /// size: when it must grow, the new size is published before the
    /// buffer is allocated, so that no eviction check made meanwhile on
    /// another thread sees the allocation as data (the copy is the
    /// replica's output buffer, which eviction leaves out). Grown in place,
    /// a megabyte-sized copy was unaccounted while it was being made. The
    /// size is rounded up to the allocator's size class, which is what the
    /// allocation really takes: an exact request of 600 KB occupies 640 KB,
    /// and those unpublished 40 KB alone pushed Redis's "replica buffer
    /// don't induce eviction" test (32 KB of headroom) into evicting.
    fn read(&self, link: &Link, out: &mut Vec<u8>, held: &mut crate::server::memory::ReplCopy) {
        let from = link.sent.load(Ordering::Relaxed) + 1;
        if from > self.end || from < self.first {
            return;
        }
        let want = ((self.end + 1 - from) as usize).min(READ_MAX);
        if want > out.capacity() {
            let cap = crate::server::memory::usable_size(want);
            held.set(cap);
            // The old buffer goes before the new one is allocated.
            *out = Vec::new();
            out.reserve_exact(cap);
        }
        // Walk back from the end to the chunk holding `from`.
        let mut start = self.end + 1;
        let mut idx = self.chunks.len();
        while idx > 0 {
            idx -= 1;
            start -= self.chunks[idx].len() as u64;
            if start <= from {
                break;
            }
        }
        let mut skip = (from - start) as usize;
        for c in self.chunks.iter().skip(idx) {
            let part = &c[skip.min(c.len())..];
            let room = READ_MAX.saturating_sub(out.len());
            out.extend_from_slice(&part[..part.len().min(room)]);
            skip = 0;
            if out.len() >= READ_MAX {
                break;
            }
        }
        link.sent
            .store(from - 1 + out.len() as u64, Ordering::Relaxed);
    }
}

/// The part of the replication buffer that `maxmemory` does not count
/// (Redis's `freeMemoryGetNotCountedMemory`): what is held beyond
/// `repl-backlog-size` belongs to replicas that lag, and evicting keys
/// for it would only make the stream they lag on longer. Also while no
/// replica is attached any more, until trimming gives it back.
pub fn mem_not_counted(srv: &Server) -> u64 {
    let held = crate::server::memory::repl_buffer();
    held.saturating_sub(Backlog::allocation_for(srv.config.repl_backlog_size()))
}

/// The replication ids (Redis's PSYNC2): `replid` names the history this
/// server's stream belongs to; `replid2` the one it followed before, valid
/// up to `second_off` (a promoted replica still continues its former
/// primary's other replicas from their offsets).
#[derive(Clone)]
pub struct Ids {
    pub replid: String,
    pub replid2: String,
    /// Last offset (plus one) of `replid2`'s history; -1 when none.
    pub second_off: i64,
}

/// Where a replica's link to its primary stands (ROLE, INFO).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum MasterLinkState {
    /// Waiting to (re)connect.
    Connect = 0,
    Connecting = 1,
    /// PING, AUTH, REPLCONF, PSYNC.
    Handshake = 2,
    /// Receiving the snapshot.
    Transfer = 3,
    Connected = 4,
}

/// The primary this server replicates, when it is a replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MasterAddr {
    pub host: String,
    pub port: u16,
}

/// A FAILOVER under way: writes are paused until a replica has the whole
/// stream, then this server follows it, asking it (`PSYNC … FAILOVER`) to
/// become the primary.
#[derive(Debug, Clone)]
pub struct Failover {
    /// The replica to hand over to (found once one caught up, if none
    /// was named).
    pub target: Option<MasterAddr>,
    /// Unix ms after which the failover is aborted, or forced (0: never).
    pub end_ms: u64,
    pub force: bool,
    /// `failover-in-progress`: following the target, PSYNC FAILOVER sent.
    pub in_progress: bool,
}

/// A client blocked in WAIT: CLIENT UNBLOCK leaves its wish here.
#[derive(Default)]
struct WaitSlot {
    /// `Some(error)` once unblocked.
    unblock: Mutex<Option<bool>>,
    signal: Signal,
}

/// Removes a WAIT's slot when the wait ends, whichever way.
struct WaitRegistration<'a> {
    waits: &'a Mutex<std::collections::HashMap<u64, Arc<WaitSlot>>>,
    id: u64,
}

impl Drop for WaitRegistration<'_> {
    fn drop(&mut self) {
        self.waits.lock().remove(&self.id);
    }
}

/// The replicas and the replication id (INFO, ROLE, WAIT), and the
/// replica's side: which primary it follows and how its link stands.
pub struct Replication {
    ids: parking_lot::RwLock<Ids>,
    links: Mutex<Vec<Arc<Link>>>,
    /// Woken by every acknowledgement (WAIT's waiters).
    acks: tokio::sync::Notify,
    /// Clients blocked in WAIT, by client id (INFO blocked_clients, CLIENT
    /// LIST flag `b`, CLIENT UNBLOCK).
    waits: Mutex<std::collections::HashMap<u64, Arc<WaitSlot>>>,
    /// Unix ms of the last PING sent down the stream.
    last_ping_ms: AtomicU64,
    /// `repl_backlog_size` last applied.
    applied_limit: AtomicU64,
    /// INFO stats: full resyncs, partial resyncs accepted / refused.
    pub sync_full: AtomicU64,
    pub sync_partial_ok: AtomicU64,
    pub sync_partial_err: AtomicU64,
    /// This server follows a primary (the fast check dispatch makes).
    replica: AtomicBool,
    /// The primary followed (REPLICAOF), and a generation bumped at every
    /// change: a link task whose generation is no longer current ends.
    pub(crate) master: Mutex<Option<MasterAddr>>,
    pub(crate) master_gen: AtomicU64,
    pub(crate) master_changed: tokio::sync::Notify,
    pub(crate) link_state: AtomicU8,
    /// Unix ms of the last byte from the primary.
    pub(crate) master_last_io_ms: AtomicU64,
    /// Unix ms the link went down (0: up, or never connected).
    pub(crate) link_down_since_ms: AtomicU64,
    /// The snapshot being received: total and read bytes.
    pub(crate) transfer_size: AtomicU64,
    pub(crate) transfer_read: AtomicU64,
    /// The offset of the primary's stream applied so far
    /// (`slave_repl_offset`, what REPLCONF ACK reports).
    pub(crate) applied: AtomicU64,
    /// The offset of the primary's stream read so far, applied or not
    /// (`slave_read_repl_offset`: ahead of `applied` while a command is
    /// incomplete, a transaction open, or CLIENT PAUSE holds the stream).
    pub(crate) read_upto: AtomicU64,
    /// The database the primary's stream last SELECTed (carried over to
    /// the next link's master client on a partial resync).
    pub(crate) master_db: std::sync::atomic::AtomicUsize,
    /// Unix ms since when no replica is attached (0: some are, or none
    /// ever was): `repl-backlog-ttl` counts from here.
    pub(crate) no_replicas_since_ms: AtomicU64,
    /// Keys written by this replica's own clients (`replica-read-only
    /// no`), which it expires itself (see `replica::expire_own_keys`).
    pub(crate) own_keys: Mutex<std::collections::HashSet<(usize, Bytes)>>,
    /// Our link to the primary while connected (CLIENT KILL TYPE master).
    pub(crate) master_client: Mutex<Option<Arc<ClientInfo>>>,
    /// A coordinated failover (FAILOVER) under way, if any.
    pub(crate) failover: Mutex<Option<Failover>>,
    /// The full-resync snapshot replicas can still join (see `fullsync`).
    pub(crate) pending_sync: Mutex<Option<Arc<super::fullsync::SyncJob>>>,
}

impl Default for Replication {
    fn default() -> Self {
        Replication {
            ids: parking_lot::RwLock::new(Ids {
                replid: random_id(),
                replid2: NO_ID.into(),
                second_off: -1,
            }),
            links: Mutex::new(Vec::new()),
            acks: tokio::sync::Notify::new(),
            waits: Mutex::new(std::collections::HashMap::new()),
            last_ping_ms: AtomicU64::new(0),
            applied_limit: AtomicU64::new(0),
            sync_full: AtomicU64::new(0),
            sync_partial_ok: AtomicU64::new(0),
            sync_partial_err: AtomicU64::new(0),
            replica: AtomicBool::new(false),
            master: Mutex::new(None),
            master_gen: AtomicU64::new(0),
            master_changed: tokio::sync::Notify::new(),
            link_state: AtomicU8::new(MasterLinkState::Connect as u8),
            master_last_io_ms: AtomicU64::new(0),
            link_down_since_ms: AtomicU64::new(0),
            transfer_size: AtomicU64::new(0),
            transfer_read: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            read_upto: AtomicU64::new(0),
            master_db: std::sync::atomic::AtomicUsize::new(0),
            no_replicas_since_ms: AtomicU64::new(0),
            own_keys: Mutex::new(std::collections::HashSet::new()),
            master_client: Mutex::new(None),
            failover: Mutex::new(None),
            pending_sync: Mutex::new(None),
        }
    }
}

/// The null replication id (`master_replid2` when there is none).
pub const NO_ID: &str = "0000000000000000000000000000000000000000";

/// 40 random hex digits (a run id, a replication id).
pub fn random_id() -> String {
    (0..40)
        .map(|_| char::from_digit(u32::from(rand::random::<u8>() % 16), 16).unwrap_or('0'))
        .collect()
}

impl Replication {
    /// INFO's `master_failover_state`.
    pub fn failover_state(&self) -> &'static str {
        match &*self.failover.lock() {
            None => "no-failover",
            Some(f) if f.in_progress => "failover-in-progress",
            Some(_) => "waiting-for-sync",
        }
    }

    /// Is a FAILOVER under way?
    pub fn failing_over(&self) -> bool {
        self.failover.lock().is_some()
    }

    /// The attached replica listening at `host:port`.
    pub fn find_link(&self, host: &str, port: u16) -> Option<Arc<Link>> {
        self.links
            .lock()
            .iter()
            .find(|l| l.ip == host && l.port == port)
            .cloned()
    }

    /// The current replication id.
    pub fn replid(&self) -> String {
        self.ids.read().replid.clone()
    }

    /// The replication ids.
    pub fn ids(&self) -> Ids {
        self.ids.read().clone()
    }

    /// Does this server follow a primary?
    #[inline]
    pub fn is_replica(&self) -> bool {
        self.replica.load(Ordering::Relaxed)
    }

    /// Sets the role, and with it the keyspace's replica rule for expired
    /// keys (see `storage::set_replica_mode`).
    pub(crate) fn set_replica(&self, on: bool) {
        self.replica.store(on, Ordering::SeqCst);
        crate::storage::set_replica_mode(on);
    }

    /// The primary followed, if any.
    pub fn master_addr(&self) -> Option<MasterAddr> {
        self.master.lock().clone()
    }

    /// How the link to the primary stands.
    pub fn link_state(&self) -> MasterLinkState {
        match self.link_state.load(Ordering::Relaxed) {
            1 => MasterLinkState::Connecting,
            2 => MasterLinkState::Handshake,
            3 => MasterLinkState::Transfer,
            4 => MasterLinkState::Connected,
            _ => MasterLinkState::Connect,
        }
    }

    /// Is the link to the primary up (synchronised and streaming)?
    pub fn master_link_up(&self) -> bool {
        self.link_state() == MasterLinkState::Connected
    }

    /// Takes the primary's replication id after a full resync at `off`
    /// (no older history is continued).
    pub(crate) fn adopt_id(&self, replid: String) {
        let mut ids = self.ids.write();
        ids.replid = replid;
        ids.replid2 = NO_ID.into();
        ids.second_off = -1;
    }

    /// Starts a new history after `off` (promotion, or a primary that
    /// continued us under a new id): the old id stays valid up to `off`.
    pub(crate) fn shift_id(&self, new_id: String, off: u64) {
        let mut ids = self.ids.write();
        ids.replid2 = std::mem::replace(&mut ids.replid, new_id);
        ids.second_off = off as i64 + 1;
    }

    /// A writable replica's client wrote `keys` of `db`: they are expired
    /// here if they get a deadline.
    pub fn note_own_keys(&self, db: usize, keys: impl Iterator<Item = Bytes>) {
        let mut own = self.own_keys.lock();
        for k in keys {
            own.insert((db, k));
        }
    }

    /// Drops every attached replica (they reconnect and resync: the
    /// stream they followed changed).
    pub(crate) fn disconnect_replicas(&self) {
        for l in self.links() {
            l.info.request_kill();
        }
    }

    /// The attached replicas, oldest first.
    pub fn links(&self) -> Vec<Arc<Link>> {
        self.links.lock().clone()
    }

    /// How many replicas are attached (any state).
    pub fn count(&self) -> usize {
        self.links.lock().len()
    }

    /// Replicas whose acknowledged offset reached `off`, whatever their
    /// state (SHUTDOWN's wait: Redis's isReadyToShutdown compares every
    /// replica's acknowledged offset, so one still waiting for its first
    /// snapshot holds a shutdown only once the stream has moved).
    pub fn acked_any_state(&self, off: u64) -> usize {
        self.links
            .lock()
            .iter()
            .filter(|l| l.ack.load(Ordering::Relaxed) >= off)
            .count()
    }

    /// Online replicas whose acknowledged offset reached `off`.
    pub fn acked(&self, off: u64) -> i64 {
        self.links
            .lock()
            .iter()
            .filter(|l| l.state() == LinkState::Online && l.ack.load(Ordering::Relaxed) >= off)
            .count() as i64
    }

    /// Online replicas that acknowledged within `max_lag` seconds
    /// (`min-replicas-to-write`).
    pub fn good(&self, max_lag: u64) -> u64 {
        let now = crate::commands::dispatch::unix_ms();
        self.links
            .lock()
            .iter()
            .filter(|l| {
                l.state() == LinkState::Online
                    && !l.pre_psync
                    && now.saturating_sub(l.ack_ms.load(Ordering::Relaxed)) <= max_lag * 1000
            })
            .count() as u64
    }

    /// INFO's replication section.
    pub fn info(&self, srv: &Server) -> String {
        use std::fmt::Write as _;
        let links = self.links();
        let now = crate::commands::dispatch::unix_ms();
        let (active, end, first, hist) = srv
            .feed
            .backlog(|b| (1, b.end(), b.first(), b.histlen()))
            .unwrap_or_else(|| (0, srv.feed.repl_offset(), 0, 0));
        let mut o = String::with_capacity(512);
        match self.master_addr().filter(|_| self.is_replica()) {
            None => o.push_str("# Replication\r\nrole:master\r\n"),
            Some(m) => {
                let state = self.link_state();
                let up = state == MasterLinkState::Connected;
                let last_io = self.master_last_io_ms.load(Ordering::Relaxed);
                let applied = self.applied.load(Ordering::Relaxed);
                let read = self.read_upto.load(Ordering::Relaxed).max(applied);
                let io_ago = |since: u64| {
                    if since == 0 {
                        -1
                    } else {
                        (now.saturating_sub(since) / 1000) as i64
                    }
                };
                let _ = write!(
                    o,
                    "# Replication\r\nrole:slave\r\nmaster_host:{}\r\nmaster_port:{}\r\nmaster_link_status:{}\r\nmaster_last_io_seconds_ago:{}\r\nmaster_sync_in_progress:{}\r\nslave_read_repl_offset:{read}\r\nslave_repl_offset:{applied}\r\n",
                    m.host,
                    m.port,
                    if up { "up" } else { "down" },
                    if up { io_ago(last_io) } else { -1 },
                    u8::from(state == MasterLinkState::Transfer),
                );
                if state == MasterLinkState::Transfer {
                    // A diskless snapshot's size is unknown (u64::MAX):
                    // -1, as Redis.
                    let total = match self.transfer_size.load(Ordering::Relaxed) {
                        u64::MAX => -1,
                        n => n as i64,
                    };
                    let read = self.transfer_read.load(Ordering::Relaxed) as i64;
                    let perc = if total > 0 {
                        read as f64 * 100.0 / total as f64
                    } else {
                        0.0
                    };
                    let _ = write!(
                        o,
                        "master_sync_total_bytes:{total}\r\nmaster_sync_read_bytes:{read}\r\nmaster_sync_left_bytes:{}\r\nmaster_sync_perc:{perc:.2}\r\nmaster_sync_last_io_seconds_ago:{}\r\n",
                        total - read,
                        io_ago(last_io)
                    );
                }
                if !up {
                    let since = self.link_down_since_ms.load(Ordering::Relaxed);
                    let _ = write!(o, "master_link_down_since_seconds:{}\r\n", io_ago(since));
                }
                let _ = write!(
                    o,
                    "slave_priority:{}\r\nslave_read_only:{}\r\nreplica_announced:{}\r\n",
                    srv.config.replica_priority(),
                    u8::from(srv.config.replica_read_only()),
                    u8::from(srv.config.replica_announced()),
                );
            }
        }
        let _ = write!(o, "connected_slaves:{}\r\n", links.len());
        for (i, l) in links.iter().enumerate() {
            let state = match l.state() {
                LinkState::WaitBgsave => "wait_bgsave",
                LinkState::SendBulk => "send_bulk",
                LinkState::Online => "online",
            };
            let _ = write!(
                o,
                "slave{i}:ip={},port={},state={state},offset={},lag={}\r\n",
                l.ip,
                l.port,
                l.ack.load(Ordering::Relaxed),
                now.saturating_sub(l.ack_ms.load(Ordering::Relaxed)) / 1000
            );
        }
        let ids = self.ids();
        let _ = write!(
            o,
            "master_failover_state:{}\r\nmaster_replid:{}\r\nmaster_replid2:{}\r\nmaster_repl_offset:{end}\r\nsecond_repl_offset:{}\r\nrepl_backlog_active:{active}\r\nrepl_backlog_size:{}\r\nrepl_backlog_first_byte_offset:{first}\r\nrepl_backlog_histlen:{hist}\r\n",
            self.failover_state(),
            ids.replid,
            ids.replid2,
            ids.second_off,
            srv.config.repl_backlog_size()
        );
        o
    }

    /// The stream's end offset (`master_repl_offset`; 0 before any
    /// replica attached).
    pub fn offset(&self, srv: &Server) -> u64 {
        srv.feed.repl_offset()
    }

    /// Asks every replica for an acknowledgement (WAIT).
    pub fn request_acks(&self, srv: &Server) {
        srv.feed
            .emit_repl_only(&[b"REPLCONF" as &[u8], b"GETACK", b"*"]);
    }

    /// Waits until `n` replicas acknowledged `off`, until `deadline` (unix
    /// ms, `None`: no limit), until CLIENT UNBLOCK, or until the client is
    /// killed; answers how many had (or UNBLOCKED). Replicas that attach
    /// meanwhile count as soon as they acknowledge, also when there were
    /// none at the start (a replica reconnecting), as in Redis.
    pub async fn wait_acks(
        &self,
        info: &ClientInfo,
        off: u64,
        n: i64,
        deadline: Option<u64>,
    ) -> crate::protocol::Reply {
        use crate::protocol::Reply;
        let slot = Arc::new(WaitSlot::default());
        self.waits.lock().insert(info.id, slot.clone());
        // Unregistered however this ends (also when the connection's
        // future is dropped).
        let _registered = WaitRegistration {
            waits: &self.waits,
            id: info.id,
        };
        loop {
            let notified = self.acks.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let got = self.acked(off);
            let now = crate::commands::dispatch::unix_ms();
            if got >= n || deadline.is_some_and(|d| d <= now) || info.killed.load(Ordering::Relaxed)
            {
                return Reply::Int(got);
            }
            let left = deadline.map_or(Duration::from_secs(3600), |d| {
                Duration::from_millis(d.saturating_sub(now))
            });
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(left) => {}
                _ = info.kill.wait() => return Reply::Int(self.acked(off)),
                _ = slot.signal.wait() => {
                    if let Some(error) = slot.unblock.lock().take() {
                        return if error {
                            Reply::Error(crate::commands::blocking::UNBLOCKED)
                        } else {
                            Reply::Int(self.acked(off))
                        };
                    }
                }
            }
        }
    }

    /// CLIENT UNBLOCK of a client blocked in WAIT (`error`: answered
    /// UNBLOCKED, else as at its timeout). False if it is not.
    pub fn unblock_wait(&self, id: u64, error: bool) -> bool {
        let Some(slot) = self.waits.lock().get(&id).cloned() else {
            return false;
        };
        *slot.unblock.lock() = Some(error);
        slot.signal.notify();
        true
    }

    /// Clients blocked in WAIT now.
    pub fn waiting(&self) -> usize {
        self.waits.lock().len()
    }

    /// Is client `id` blocked in WAIT?
    pub fn is_waiting(&self, id: u64) -> bool {
        self.waits.lock().contains_key(&id)
    }

    /// The periodic work (called every 100 ms): PING down the stream every
    /// `repl-ping-replica-period`, drop replicas silent for `repl-timeout`
    /// or too far behind, apply a changed `repl-backlog-size`.
    pub fn cron(&self, srv: &Server) {
        let limit = srv.config.repl_backlog_size();
        if self.applied_limit.swap(limit, Ordering::Relaxed) != limit {
            srv.feed.backlog(|b| b.set_limit(limit as usize));
        }
        let links = self.links();
        let now = crate::commands::dispatch::unix_ms();
        let syncing = links
            .iter()
            .any(|l| !l.info.killed.load(Ordering::Relaxed) && l.state() != LinkState::Online);
        crate::persistence::snapshot::remove_rdb_used_to_sync(srv, syncing);
        if links.is_empty() {
            self.expire_backlog(srv, now);
            return;
        }
        let period = srv.config.repl_ping_replica_period().max(1) * 1000;
        let last = self.last_ping_ms.load(Ordering::Relaxed);
        if last == 0 {
            // The first PING a period after the first replica attached.
            self.last_ping_ms.store(now, Ordering::Relaxed);
        } else if now.saturating_sub(last) >= period {
            self.last_ping_ms.store(now, Ordering::Relaxed);
            srv.feed.emit_repl_only(&[b"PING" as &[u8]]);
        }
        let timeout = srv.config.repl_timeout() * 1000;
        let obuf = srv
            .config
            .client_output_buffer_limit(crate::config::ClientClass::Replica);
        // A hard limit below repl-backlog-size counts as that size (as
        // Redis 7): the lag it allows is history the backlog keeps anyway,
        // and a replica dropped for it would only continue partially.
        let hard = if obuf.hard > 0 {
            obuf.hard.max(srv.config.repl_backlog_size())
        } else {
            0
        };
        let end = self.offset(srv);
        for l in links {
            if l.info.killed.load(Ordering::Relaxed) {
                continue;
            }
            if l.state() == LinkState::Online
                && !l.pre_psync
                && now.saturating_sub(l.ack_ms.load(Ordering::Relaxed)) > timeout
            {
                tracing::warn!(
                    "Disconnecting timedout replica (streaming sync): {}",
                    l.name()
                );
                l.info.request_kill();
                continue;
            }
            let lag = end.saturating_sub(l.sent.load(Ordering::Relaxed));
            if l.pinned.load(Ordering::Relaxed) && hard > 0 && lag >= hard {
                tracing::warn!(
                    "Client {} scheduled to be closed ASAP for overcoming of output buffer limits.",
                    l.info.id
                );
                l.info.request_kill();
            }
        }
    }

    fn add(&self, link: &Arc<Link>) {
        self.links.lock().push(link.clone());
        self.no_replicas_since_ms.store(0, Ordering::Relaxed);
    }

    fn remove(&self, link: &Link) {
        let mut links = self.links.lock();
        links.retain(|l| !std::ptr::eq(l.as_ref(), link));
        if links.is_empty() {
            self.no_replicas_since_ms
                .store(crate::commands::dispatch::unix_ms(), Ordering::Relaxed);
        }
        drop(links);
        self.acks.notify_waiters();
    }

    /// `repl-backlog-ttl`: a primary without replicas for that long frees
    /// its backlog and takes a new replication id (as Redis: a replica
    /// coming back later cannot continue from it anyway).
    fn expire_backlog(&self, srv: &Server, now: u64) {
        let ttl = srv.config.repl_backlog_ttl();
        let since = self.no_replicas_since_ms.load(Ordering::Relaxed);
        if ttl == 0 || since == 0 || self.is_replica() || !self.links.lock().is_empty() {
            return;
        }
        if now.saturating_sub(since) / 1000 <= ttl {
            return;
        }
        if srv.feed.backlog(|_| ()).is_none() {
            return;
        }
        srv.feed.drop_backlog();
        self.adopt_id(random_id());
        self.no_replicas_since_ms.store(0, Ordering::Relaxed);
        tracing::info!("Replication backlog freed after {ttl} seconds without connected replicas.");
    }
}

/// Runs a connection that asked for SYNC/PSYNC as a replica link until it
/// disconnects or is killed: the resync, then the stream, reading its
/// acknowledgements meanwhile. `inbuf`/`parser` hold what it sent after
/// the request.
pub async fn serve_replica<S>(
    srv: &Arc<Server>,
    stream: &mut S,
    client: &mut Client,
    req: SyncRequest,
    mut inbuf: BytesMut,
    mut parser: RequestParser,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let info = client.info.clone();
    info.replica.store(true, Ordering::Relaxed);
    let ip = req
        .announced_ip
        .clone()
        .unwrap_or_else(|| host_of(&info.addr));
    let link = Arc::new(Link {
        info: info.clone(),
        ip,
        port: req.listening_port,
        sent: AtomicU64::new(0),
        job: Mutex::new(None),
        ack: AtomicU64::new(0),
        ack_ms: AtomicU64::new(crate::commands::dispatch::unix_ms()),
        acked: AtomicBool::new(false),
        state: AtomicU8::new(LinkState::WaitBgsave as u8),
        pre_psync: req.psync.is_none(),
        pinned: AtomicBool::new(false),
        wake: Signal::new(),
    });
    srv.repl.add(&link);
    let (mut rd, mut wr) = tokio::io::split(stream);
    let reader = async {
        loop {
            loop {
                let limits = Limits {
                    max_bulk_len: srv.config.proto_max_bulk_len(),
                    authenticated: true,
                };
                match parser.next(&mut inbuf, limits) {
                    Ok(Some(argv)) => {
                        if !on_replica_command(srv, &link, &argv) {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(_) => return,
                }
            }
            if inbuf.capacity() - inbuf.len() < 1024 {
                inbuf.reserve(4096);
            }
            match rd.read_buf(&mut inbuf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    let writer = feed_replica(srv, &link, &req, &mut wr);
    tokio::select! {
        _ = reader => {}
        _ = writer => {}
        _ = info.kill.wait() => {}
    }
    // First marked gone: a snapshot's instant (under the backlog's lock)
    // then no longer attaches it, so the detach below is the last word.
    link.info.killed.store(true, Ordering::SeqCst);
    let job = link.job.lock().take();
    if let Some(job) = job {
        job.leave(srv);
    }
    srv.feed.backlog(|b| b.detach(&link));
    srv.repl.remove(&link);
    tracing::info!("Connection with replica {} lost.", link.name());
}

/// A command a replica sent on its link. `REPLCONF ACK <offset>` is
/// recorded and `REPLCONF GETACK` ignored: neither has a reply. Anything
/// else would put a reply into the stream, which the replica would take
/// for data: as Redis 7.0.15 does, the link is dropped and the command
/// named in the log, with the error it would have answered when it was
/// one (a keyspace command, an unknown one, a wrong arity). Nothing is
/// executed. Returns whether the link goes on.
fn on_replica_command(srv: &Server, link: &Link, argv: &[Bytes]) -> bool {
    let is = |i: usize, s: &str| {
        argv.get(i)
            .is_some_and(|a| a.eq_ignore_ascii_case(s.as_bytes()))
    };
    if is(0, "replconf") && is(1, "ack") {
        if let Some(off) = argv
            .get(2)
            .and_then(|a| crate::protocol::codec::parse_i64(a))
            .and_then(|v| u64::try_from(v).ok())
        {
            link.ack.fetch_max(off, Ordering::Relaxed);
            link.acked.store(true, Ordering::Relaxed);
            link.ack_ms
                .store(crate::commands::dispatch::unix_ms(), Ordering::Relaxed);
            link.info
                .last_interaction
                .store(crate::commands::dispatch::unix_ms(), Ordering::Relaxed);
            srv.repl.acks.notify_waiters();
        }
        return true;
    }
    // An empty line is a keep-alive (a replica loading from the link sends
    // newlines, as Redis's do).
    // SYNC or PSYNC again is ignored, as Redis's syncCommand does for a
    // replica.
    if argv.is_empty() || (is(0, "replconf") && is(1, "getack")) || is(0, "sync") || is(0, "psync")
    {
        return true;
    }
    use crate::commands::spec::CmdFlags;
    use crate::commands::table::{table, Lookup};
    use crate::protocol::error::CmdError;
    let unknown = "<unknown>".to_string();
    let (name, error) = match table().lookup(argv) {
        Lookup::Found(e) if !e.spec.arity_ok(argv.len()) => {
            (e.full_name.clone(), Some(CmdError::arity(&e.full_name)))
        }
        Lookup::Found(e)
            if e.spec
                .flags
                .intersects(CmdFlags::READONLY | CmdFlags::WRITE | CmdFlags::MAY_REPLICATE) =>
        {
            (
                e.full_name.clone(),
                Some(CmdError::err("Replica can't interact with the keyspace")),
            )
        }
        Lookup::Found(e) => (e.full_name.clone(), None),
        Lookup::UnknownSub(e) => (
            unknown,
            Some(CmdError::unknown_subcommand(
                e.spec.name,
                argv.get(1).map_or(&b""[..], |b| &b[..]),
            )),
        ),
        Lookup::Unknown => (
            unknown,
            Some(CmdError::unknown_command(
                argv.first().map_or(&b""[..], |b| &b[..]),
                argv.get(1..).unwrap_or(&[]),
            )),
        ),
    };
    tracing::warn!(
        "Replica generated a reply to command '{name}', disconnecting it: {}",
        crate::commands::connection::client_line(srv, &link.info)
    );
    if let Some(e) = error {
        let text = e.as_str();
        tracing::warn!(
            "== CRITICAL == This master is sending an error to its replica: '{}' after processing the command '{name}'",
            text.strip_prefix("ERR ").unwrap_or(text)
        );
    }
    false
}

/// The writing side of a replica link: resync, then the stream.
async fn feed_replica<W: AsyncWrite + Unpin>(
    srv: &Arc<Server>,
    link: &Arc<Link>,
    req: &SyncRequest,
    wr: &mut W,
) -> std::io::Result<()> {
    // Partial resync when the backlog holds what the replica lacks.
    if let Some((id, off)) = &req.psync {
        let want = u64::try_from(*off).ok().filter(|&o| o > 0);
        let ids = srv.repl.ids();
        let ours = id.as_ref() == ids.replid.as_bytes()
            || (id.as_ref() == ids.replid2.as_bytes()
                && want.is_some_and(|o| o as i64 <= ids.second_off));
        let continued = match want {
            Some(o) if ours => srv
                .feed
                .backlog(|b| {
                    if b.can_continue_from(o - 1) {
                        b.attach(link, o - 1);
                        true
                    } else {
                        false
                    }
                })
                .unwrap_or(false),
            _ => false,
        };
        if continued {
            srv.repl.sync_partial_ok.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                "Partial resynchronization request from {} accepted.",
                link.name()
            );
            link.set_state(LinkState::Online);
            wr.write_all(format!("+CONTINUE {}\r\n", ids.replid).as_bytes())
                .await?;
            wr.flush().await?;
            return stream_to(srv, link, wr).await;
        }
        // `PSYNC ? -1` asks for a full resync; anything else was refused.
        if id.as_ref() != b"?" {
            srv.repl.sync_partial_err.fetch_add(1, Ordering::Relaxed);
        }
    }
    srv.repl.sync_full.fetch_add(1, Ordering::Relaxed);
    tracing::info!(
        "Replica {} asks for synchronization; starting a full resynchronization",
        link.name()
    );
    // Diskless (Redis 7's default, `repl-diskless-sync yes`) when the
    // replica reads the `$EOF:` form: the snapshot goes straight to it.
    let diskless = req.capa_eof
        && srv.config.repl_diskless_sync()
        && srv.config.snapshot_method() == crate::config::SnapshotMethod::Versioned;
    let joined = super::fullsync::join(srv, link, diskless, req.filter);
    *link.job.lock() = Some(joined.job.clone());
    let r = full_sync(srv, link, req, wr, joined).await;
    // Failed (once sent, `go_online` let it go already).
    link.job.lock().take();
    r
}

/// Sends the snapshot of the job the replica joined, then the stream.
async fn full_sync<W: AsyncWrite + Unpin>(
    srv: &Arc<Server>,
    link: &Arc<Link>,
    req: &SyncRequest,
    wr: &mut W,
    joined: super::fullsync::Joined,
) -> std::io::Result<()> {
    let super::fullsync::Joined {
        job,
        mut off,
        mut done,
        pipe,
    } = joined;
    // The snapshot's instant, after the diskless delay or any save already
    // running. Newlines keep the link alive meanwhile (a replica waiting
    // for its PSYNC reply skips them, as Redis's replicas do).
    let off = loop {
        tokio::select! {
            r = &mut off => match r {
                Ok(o) => break o,
                Err(_) => return Ok(()),
            },
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                wr.write_all(b"\n").await?;
                wr.flush().await?;
            }
        }
    };
    if req.psync.is_some() {
        wr.write_all(format!("+FULLRESYNC {} {}\r\n", srv.repl.replid(), off).as_bytes())
            .await?;
        wr.flush().await?;
    }
    if let Some(mut pipe) = pipe {
        drop(job);
        return send_diskless(srv, link, wr, &mut pipe, done).await;
    }
    // Newlines keep the replica's link alive while the file is written.
    let saved = loop {
        tokio::select! {
            r = &mut done => break r.unwrap_or_else(|_| Err("the snapshot thread ended".into())),
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                wr.write_all(b"\n").await?;
                wr.flush().await?;
            }
        }
    };
    if let Err(e) = saved {
        tracing::warn!("Replica sync snapshot failed: {e}");
        return Ok(());
    }
    let Some(file) = job.hold_file() else {
        return Ok(());
    };
    drop(job);
    link.set_state(LinkState::SendBulk);
    let sent = send_file(srv, link, &file.0, wr).await;
    drop(file);
    sent?;
    go_online(srv, link, wr).await
}

/// After its snapshot, a replica is online: the stream follows.
async fn go_online<W: AsyncWrite + Unpin>(
    srv: &Arc<Server>,
    link: &Arc<Link>,
    wr: &mut W,
) -> std::io::Result<()> {
    tracing::info!("Synchronization with replica {} succeeded", link.name());
    link.set_state(LinkState::Online);
    // Its snapshot is sent: the job (and a file it shares) is let go.
    link.job.lock().take();
    link.ack_ms
        .store(crate::commands::dispatch::unix_ms(), Ordering::Relaxed);
    stream_to(srv, link, wr).await
}

/// Writes part of a full sync's snapshot, counted as replication output;
/// a replica that reads nothing for `repl-timeout` is given up (logged
/// with Redis's message).
async fn write_snapshot_part<W: AsyncWrite + Unpin>(
    srv: &Server,
    link: &Link,
    wr: &mut W,
    part: &[u8],
) -> std::io::Result<()> {
    // The timeout counts from the last byte the replica took, against
    // `repl-timeout` as it is now (CONFIG SET applies to a transfer under
    // way, as Redis's cron checks it).
    let mut last_progress = std::time::Instant::now();
    let mut at = 0;
    while at < part.len() {
        match tokio::time::timeout(Duration::from_millis(250), wr.write(&part[at..])).await {
            Ok(Ok(0)) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(Ok(n)) => {
                at += n;
                last_progress = std::time::Instant::now();
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                let timeout = Duration::from_secs(srv.config.repl_timeout().max(1));
                if last_progress.elapsed() >= timeout {
                    tracing::warn!(
                        "Disconnecting timedout replica (full sync): {}",
                        link.name()
                    );
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "replica timed out",
                    ));
                }
            }
        }
    }
    srv.stats
        .repl_output
        .fetch_add(part.len() as u64, Ordering::Relaxed);
    Ok(())
}

/// A diskless full sync: `$EOF:<mark>`, the snapshot's bytes as the save
/// produces them, the mark again; then, as Redis, the stream starts only
/// once the replica acknowledged (it knows the snapshot's end only by the
/// mark, so nothing may follow it before it has loaded).
async fn send_diskless<W: AsyncWrite + Unpin>(
    srv: &Arc<Server>,
    link: &Arc<Link>,
    wr: &mut W,
    pipe: &mut tokio::sync::mpsc::Receiver<Bytes>,
    done: tokio::sync::oneshot::Receiver<Result<(), String>>,
) -> std::io::Result<()> {
    // Newlines keep the link alive until the save starts writing (it
    // waits for any other save to finish first).
    let first = loop {
        tokio::select! {
            c = pipe.recv() => break c,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                wr.write_all(b"\n").await?;
                wr.flush().await?;
            }
        }
    };
    let mark = random_id();
    link.set_state(LinkState::SendBulk);
    wr.write_all(format!("$EOF:{mark}\r\n").as_bytes()).await?;
    // A replica that stops reading is given up (the save then sees the
    // pipe closed and only finishes marking).
    let mut chunk = first;
    while let Some(c) = chunk {
        write_snapshot_part(srv, link, wr, &c).await?;
        chunk = pipe.recv().await;
    }
    // The channel closed: the save ended, well or not.
    let saved = done
        .await
        .unwrap_or_else(|_| Err("the snapshot thread ended".into()));
    if let Err(e) = saved {
        // Closing the link without the mark: the replica retries.
        tracing::warn!("Diskless sync to replica {} failed: {e}", link.name());
        return Ok(());
    }
    wr.write_all(mark.as_bytes()).await?;
    wr.flush().await?;
    tracing::info!(
        "Streamed RDB transfer with replica {} succeeded (socket). Waiting for REPLCONF ACK from replica to enable streaming",
        link.name()
    );
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs(srv.config.repl_timeout().max(1));
    while !link.acked.load(Ordering::Relaxed) {
        let notified = srv.repl.acks.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if link.acked.load(Ordering::Relaxed) {
            break;
        }
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep_until(deadline) => {
                tracing::warn!("Replica {} sent no REPLCONF ACK after its diskless sync", link.name());
                return Ok(());
            }
        }
    }
    go_online(srv, link, wr).await
}

/// Sends the snapshot file as `$<len>\r\n<bytes>`.
async fn send_file<W: AsyncWrite + Unpin>(
    srv: &Server,
    link: &Link,
    path: &std::path::Path,
    wr: &mut W,
) -> std::io::Result<()> {
    let mut f = tokio::fs::File::open(path).await?;
    let len = f.metadata().await?.len();
    wr.write_all(format!("${len}\r\n").as_bytes()).await?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut left = len;
    while left > 0 {
        let n = f.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the snapshot file shrank",
            ));
        }
        let n = n.min(left as usize);
        write_snapshot_part(srv, link, wr, &buf[..n]).await?;
        left -= n as u64;
    }
    wr.flush().await
}

/// Streams the backlog to the replica from its pinned offset, as it grows.
async fn stream_to<W: AsyncWrite + Unpin>(
    srv: &Server,
    link: &Link,
    wr: &mut W,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    // What is copied out of the backlog is the replica's output buffer
    // until written: it counts with the backlog's excess, not against
    // maxmemory.
    let mut held = crate::server::memory::ReplCopy::default();
    loop {
        buf.clear();
        let read = srv.feed.backlog(|b| b.read(link, &mut buf, &mut held));
        held.set(buf.capacity());
        if read.is_none() {
            return Ok(());
        }
        // A link dropped (our id changed: `disconnect_replicas`) sends
        // nothing appended after that, or the replica would come back
        // past the end of the history it may continue.
        if link.info.killed.load(Ordering::SeqCst) {
            return Ok(());
        }
        if buf.is_empty() {
            link.wake.wait().await;
            continue;
        }
        wr.write_all(&buf).await?;
        wr.flush().await?;
        srv.stats
            .repl_output
            .fetch_add(buf.len() as u64, Ordering::Relaxed);
        if buf.capacity() > 4 * CHUNK {
            buf = Vec::new();
            held.set(0);
        }
    }
}
