//! Per-client state. [`Client`] is owned by the connection task and handed
//! to handlers as `&mut`; [`ClientInfo`] is the part other clients may read or
//! act on (CLIENT LIST, CLIENT KILL), shared through the server's registry.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;

use crate::commands::table::CommandEntry;

/// CLIENT REPLY mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyMode {
    On,
    Off,
    /// Skip the reply of the next command only.
    SkipNext,
    /// Set while the command after SKIP runs.
    Skipping,
}

/// Shared, observable client data.
pub struct ClientInfo {
    pub id: u64,
    pub addr: String,
    pub laddr: String,
    /// Connected over loopback (`enable-debug-command local`, protected mode).
    pub local: bool,
    /// Connected through `unixsocket` (CLIENT LIST flag `U`).
    pub unix: bool,
    pub created: Instant,
    pub name: Mutex<Option<Bytes>>,
    pub lib_name: Mutex<Option<String>>,
    pub lib_ver: Mutex<Option<String>>,
    pub db: AtomicUsize,
    pub resp: AtomicU8,
    /// Id (table position) of the last command run.
    pub last_cmd: AtomicUsize,
    /// Unix ms of the last command.
    pub last_interaction: AtomicU64,
    pub no_evict: AtomicBool,
    /// In MONITOR mode (CLIENT LIST flag `O`).
    pub monitor: AtomicBool,
    /// A replica's link (CLIENT LIST flag `S`, output class `replica`).
    pub replica: AtomicBool,
    /// Our link to the primary we replicate (CLIENT LIST flag `M`).
    pub master: AtomicBool,
    /// Bytes waiting in the query buffer (CLIENT LIST qbuf).
    pub qbuf: AtomicUsize,
    /// Capacity of the query buffer (CLIENT LIST qbuf-free is this minus
    /// `qbuf`); 0 once released while idle.
    pub qbuf_cap: AtomicUsize,
    /// Bytes of a partially received command already cut out of the
    /// query buffer (the parser's pending arguments): counted in `qbuf`
    /// and, beside the buffer's capacity, in tot-mem (Redis's argv-mem).
    pub qbuf_args: AtomicUsize,
    /// Largest `qbuf` since the cron last looked (Redis's querybuf_peak).
    pub qbuf_peak: AtomicUsize,
    /// The cron's request to the connection: 0 none, else the capacity to
    /// trim the query buffer to (see `server::limits`), applied when the
    /// connection next wakes ([`ClientInfo::push_wake`]).
    pub qbuf_trim: AtomicUsize,
    /// Reply bytes being written and not yet taken by the socket (CLIENT
    /// LIST omem, with a subscriber's queued messages).
    pub omem: AtomicUsize,
    pub user: Mutex<String>,
    /// Set by CLIENT KILL / shutdown; the connection task closes.
    pub killed: AtomicBool,
    pub kill: crate::util::signal::Signal,
    /// Channel / pattern / shard-channel subscription counts (CLIENT LIST).
    pub sub: AtomicUsize,
    pub psub: AtomicUsize,
    pub ssub: AtomicUsize,
    /// CLIENT TRACKING mode bits (`server::tracking::flags`; 0 = off).
    pub tracking: AtomicU8,
    /// CLIENT TRACKING REDIRECT target id (0 = none).
    pub tracking_redir: AtomicU64,
    /// The client's outbound push queue once it has one, so tracking
    /// invalidations can reach a redirect target. Created by its own
    /// connection (SUBSCRIBE, CLIENT TRACKING) or by a tracking client
    /// redirecting to it (then [`ClientInfo::push_wake`] makes the idle
    /// connection adopt it). Cleared when the client leaves (breaks the
    /// Outbox → ClientInfo reference cycle).
    pub outbox: Mutex<Option<Arc<crate::server::pubsub::Outbox>>>,
    /// Wakes an idle connection that has no outbox yet (see `outbox`).
    pub push_wake: crate::util::signal::Signal,
    /// Capacity of the reply buffer (CLIENT LIST rbs), as of the last
    /// accounting.
    pub rbuf_cap: AtomicUsize,
    /// Bytes held by queued MULTI commands (CLIENT LIST multi-mem) and
    /// their number (`multi`, -1 outside a transaction).
    pub multi_mem: AtomicUsize,
    pub multi_len: AtomicI64,
    /// Memory of the client's other state: WATCHed keys, subscriptions,
    /// tracking prefixes (published by the connection after each batch;
    /// tracking prefixes by the tracking table).
    pub mem_other: AtomicUsize,
    pub tracking_mem: AtomicUsize,
    /// The `tot_mem` last added to the server's total of client memory
    /// (`maxmemory-clients`); taken back when the client leaves.
    pub mem_counted: AtomicUsize,
    /// What the client held when client eviction closed it, counted in
    /// [`crate::server::limits::ClientMem::closing`] until it is gone.
    pub mem_closing: AtomicUsize,
}

/// What a connection costs besides its buffers and state: its structures,
/// task and socket bookkeeping (counted in tot-mem, as Redis counts the
/// size of its client struct).
pub const CLIENT_BASE_MEM: usize =
    std::mem::size_of::<ClientInfo>() + std::mem::size_of::<Client>() + 1024;

/// Per-item overheads counted in a client's memory: a WATCHed key, a
/// subscription, a queued MULTI command, a tracking prefix (table entries
/// and argument vectors; key and argument bytes are counted beside them;
/// a subscription's name is shared with the server's channel table).
pub const WATCH_ITEM_MEM: usize = 64;
pub const SUB_ITEM_MEM: usize = 64;
pub const MULTI_ITEM_MEM: usize = 48;
pub const TRACKING_PREFIX_MEM: usize = 64;

impl ClientInfo {
    /// CLIENT LIST tot-mem: buffers, queued transaction, watched keys,
    /// subscriptions, tracking prefixes and the connection's own structures
    /// (what `maxmemory-clients` limits).
    pub fn tot_mem(&self) -> usize {
        let pushed = self.outbox.lock().as_ref().map_or(0, |o| o.pending());
        self.mem_besides_pushed() + pushed
    }

    /// [`Self::tot_mem`] without the messages queued in the client's
    /// outbox (which its connection reads without the lock).
    pub fn mem_besides_pushed(&self) -> usize {
        let out = self
            .rbuf_cap
            .load(Ordering::Relaxed)
            .max(self.omem.load(Ordering::Relaxed));
        CLIENT_BASE_MEM
            + self.qbuf_cap.load(Ordering::Relaxed)
            + self.qbuf_args.load(Ordering::Relaxed)
            + out
            + self.multi_mem.load(Ordering::Relaxed)
            + self.mem_other.load(Ordering::Relaxed)
            + self.tracking_mem.load(Ordering::Relaxed)
    }

    /// Subscribed to any channel, pattern or shard channel (the pub/sub
    /// output-buffer class; exempt from `timeout`).
    pub fn subscribed(&self) -> bool {
        self.sub.load(Ordering::Relaxed)
            + self.psub.load(Ordering::Relaxed)
            + self.ssub.load(Ordering::Relaxed)
            > 0
    }

    /// Its `client-output-buffer-limit` class for pushed messages.
    pub fn obuf_class(&self) -> crate::config::ClientClass {
        if self.replica.load(Ordering::Relaxed) {
            crate::config::ClientClass::Replica
        } else if self.subscribed() {
            crate::config::ClientClass::Pubsub
        } else {
            crate::config::ClientClass::Normal
        }
    }

    pub fn new(id: u64, addr: SocketAddr, laddr: SocketAddr) -> Self {
        ClientInfo {
            id,
            addr: addr.to_string(),
            laddr: laddr.to_string(),
            local: addr.ip().is_loopback() || addr.ip().to_canonical().is_loopback(),
            unix: false,
            created: Instant::now(),
            name: Mutex::new(None),
            lib_name: Mutex::new(None),
            lib_ver: Mutex::new(None),
            db: AtomicUsize::new(0),
            resp: AtomicU8::new(2),
            last_cmd: AtomicUsize::new(usize::MAX),
            last_interaction: AtomicU64::new(crate::commands::dispatch::unix_ms()),
            no_evict: AtomicBool::new(false),
            monitor: AtomicBool::new(false),
            replica: AtomicBool::new(false),
            master: AtomicBool::new(false),
            qbuf: AtomicUsize::new(0),
            qbuf_cap: AtomicUsize::new(0),
            qbuf_args: AtomicUsize::new(0),
            qbuf_peak: AtomicUsize::new(0),
            qbuf_trim: AtomicUsize::new(0),
            omem: AtomicUsize::new(0),
            user: Mutex::new("default".to_string()),
            killed: AtomicBool::new(false),
            kill: crate::util::signal::Signal::new(),
            sub: AtomicUsize::new(0),
            psub: AtomicUsize::new(0),
            ssub: AtomicUsize::new(0),
            tracking: AtomicU8::new(0),
            tracking_redir: AtomicU64::new(0),
            outbox: Mutex::new(None),
            push_wake: crate::util::signal::Signal::new(),
            rbuf_cap: AtomicUsize::new(0),
            multi_mem: AtomicUsize::new(0),
            multi_len: AtomicI64::new(-1),
            mem_other: AtomicUsize::new(0),
            tracking_mem: AtomicUsize::new(0),
            mem_counted: AtomicUsize::new(0),
            mem_closing: AtomicUsize::new(0),
        }
    }

    /// A client connected through the unix socket at `path`: its address
    /// and local address are both `path:0`, as Redis shows them.
    pub fn new_unix(id: u64, path: &str) -> Self {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut info = ClientInfo::new(id, any, any);
        info.addr = format!("{path}:0");
        info.laddr = info.addr.clone();
        info.local = true;
        info.unix = true;
        info
    }

    /// Asks the connection to close (takes effect at its next wake-up).
    pub fn request_kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
        self.kill.notify();
    }
}

/// Connection-private state, passed to handlers.
pub struct Client {
    pub id: u64,
    pub db: usize,
    /// 2 or 3 (HELLO).
    pub resp: u8,
    pub authenticated: bool,
    pub reply_mode: ReplyMode,
    /// Close after the reply is written (QUIT).
    pub close_after_reply: bool,
    /// The command's reply would pass the output buffer hard limit: the
    /// connection is closed without it (see `Ctx::reply_overflows`).
    pub obuf_overflow: bool,
    /// Unix ms when the current batch of input was read; commands of one
    /// batch share it (Redis likewise caches the time per command call).
    pub now: u64,
    pub info: Arc<ClientInfo>,
    /// Blocking commands answer their timeout reply at once instead of
    /// blocking (set while EXEC runs the queued commands, and for scripts).
    pub deny_blocking: bool,
    /// Blocked-command bookkeeping (see `commands::blocking`).
    pub blocking: crate::commands::blocking::ClientBlockState,
    /// Commands queued since MULTI (`None` outside a transaction).
    pub multi: Option<MultiState>,
    /// Set by any change to a WATCHed key; EXEC then fails. Created on the
    /// first WATCH and shared (weakly) with the shards holding the keys.
    pub watch_flag: Option<Arc<AtomicBool>>,
    /// The WATCHed keys, as (db, key), to unregister them later.
    pub watched: Vec<(u32, Bytes)>,
    /// Bytes of the WATCHed keys' names.
    pub watched_bytes: usize,
    /// Pub/Sub subscriptions and the outbound message queue.
    pub pubsub: crate::server::pubsub::ClientSubs,
    /// End offset in the propagation stream of this client's last write:
    /// with `appendfsync always` its replies wait until that is on disk.
    pub durable_upto: u64,
    /// Replication offset of this client's last write (WAIT).
    pub repl_off: u64,
    /// SYNC/PSYNC was accepted: the connection becomes a replica link
    /// once the reply so far is sent (see `server::replication`).
    pub sync: Option<crate::server::replication::SyncRequest>,
    /// WAIT with replicas attached: (offset, replicas, deadline) the
    /// connection waits for before replying.
    pub wait_repl: Option<(u64, i64, Option<u64>)>,
    /// `REPLCONF listening-port` / `ip-address` of a replica-to-be.
    pub repl_port: u16,
    pub repl_ip: Option<String>,
    /// `REPLCONF capa eof`: the replica reads a snapshot streamed without
    /// its length (`$EOF:<mark>`), so it can be sent diskless.
    pub repl_capa_eof: bool,
    /// `REPLCONF rdb-filter-only`: the snapshot leaves the keys out, and
    /// keeps the functions only if the filter names them (`Some(true)`).
    pub repl_filter: Option<bool>,
    /// The client replaying the AOF at startup (runs while others get
    /// `-LOADING`).
    pub loader: bool,
    /// The link to our primary applying its stream (a replica's master
    /// client): obeyed without the refusals other clients meet (READONLY,
    /// OOM, MISCONF, NOREPLICAS), and its replies are dropped.
    pub master: bool,
    /// The master client's bytes of the primary's stream not yet in our
    /// backlog (the command running, or an open transaction's commands).
    pub master_raw: Vec<u8>,
    /// The ACL user the connection runs as; `None` for internal clients
    /// whose commands were already checked (they may run anything).
    pub user: Option<Arc<crate::acl::UserHandle>>,
    /// CLIENT TRACKING: CACHING flag and invalidations for after the reply.
    pub tracking: crate::server::tracking::Local,
    /// Unix ms when the Entra ID-style token this connection logged in
    /// with expires (0: no token login). Checked per command and by an
    /// idle timer in `connection::serve`; see `crate::entra`.
    pub auth_deadline: u64,
    /// Positions of the current command's arguments that it marked as
    /// sensitive (passwords): the slow log shows `(redacted)` instead.
    pub redacted: Vec<usize>,
    /// The last plain command this client ran, by the exact bytes it was
    /// named with (see [`CommandCache`]).
    pub cmd_cache: CommandCache,
    /// Command timing (see `dispatch::invoke`): the clock reading at which
    /// the next command's time starts, when its connection set one (0:
    /// the command reads the clock itself); taken by the command.
    pub clock_mark: u64,
    /// The clock reading at which this client's last command ended.
    pub last_end: u64,
}

/// One remembered command-name lookup: the bytes a client named a plain
/// command with (no subcommands) and the table entry they resolved to.
/// Clients, pipelines above all, mostly repeat the command they just
/// sent, and comparing a few bytes is cheaper than lower-casing and
/// hashing the name (a profile of pipelined GETs put 4% of the server's
/// CPU in the table lookup). The name-to-entry mapping never changes
/// while the process runs (`rename-command` and `disabled-commands` are
/// fixed at startup, and dispatch still checks `disabled-commands` after
/// the lookup), so an entry never goes stale.
#[derive(Default)]
pub struct CommandCache {
    name: [u8; CommandCache::MAX],
    len: u8,
    entry: Option<&'static CommandEntry>,
}

impl CommandCache {
    const MAX: usize = 24;

    /// The entry remembered for exactly these name bytes.
    #[inline]
    pub fn get(&self, name: &[u8]) -> Option<&'static CommandEntry> {
        let e = self.entry?;
        (name.len() == usize::from(self.len) && self.name.get(..name.len()) == Some(name))
            .then_some(e)
    }

    /// Remembers `entry` (a plain command, found under `name`).
    #[inline]
    pub fn put(&mut self, name: &[u8], entry: &'static CommandEntry) {
        if let (Some(dst), Ok(len)) = (self.name.get_mut(..name.len()), u8::try_from(name.len())) {
            dst.copy_from_slice(name);
            self.len = len;
            self.entry = Some(entry);
        }
    }
}

/// A transaction being queued.
#[derive(Default)]
pub struct MultiState {
    pub queue: Vec<(&'static CommandEntry, Vec<Bytes>)>,
    /// A command was rejected while queueing: EXEC answers EXECABORT.
    pub aborted: bool,
    /// Some queued command may grow memory (EXEC is refused under OOM).
    pub denyoom: bool,
    /// Some queued command may write (EXEC is refused with NOREPLICAS
    /// when min-replicas-to-write is not met, as Redis does).
    pub write: bool,
    /// Bytes of the queued commands' arguments.
    pub bytes: usize,
    /// Some queued command may write or replicate (EXEC waits under
    /// CLIENT PAUSE WRITE).
    pub may_replicate: bool,
    /// Some queued command is not flagged `stale` (EXEC is refused with
    /// MASTERDOWN on a replica whose link is down and that may not serve
    /// stale data).
    pub nonstale: bool,
}

impl Client {
    /// The primary's link or the AOF loader: commands whose effects the
    /// server must apply as given (Redis's mustObeyClient).
    pub fn must_obey(&self) -> bool {
        self.master || self.loader
    }

    pub fn new(info: Arc<ClientInfo>, authenticated: bool) -> Self {
        Client {
            id: info.id,
            db: 0,
            resp: 2,
            authenticated,
            reply_mode: ReplyMode::On,
            close_after_reply: false,
            obuf_overflow: false,
            now: 0,
            info,
            multi: None,
            watch_flag: None,
            watched: Vec::new(),
            watched_bytes: 0,
            deny_blocking: false,
            blocking: Default::default(),
            pubsub: Default::default(),
            durable_upto: 0,
            repl_off: 0,
            sync: None,
            wait_repl: None,
            repl_port: 0,
            repl_ip: None,
            repl_capa_eof: false,
            repl_filter: None,
            loader: false,
            master: false,
            master_raw: Vec::new(),
            user: None,
            tracking: Default::default(),
            auth_deadline: 0,
            redacted: Vec::new(),
            cmd_cache: CommandCache::default(),
            clock_mark: 0,
            last_end: 0,
        }
    }

    /// Marks argument `pos` of the running command as sensitive (Redis's
    /// redactClientCommandArgument).
    pub fn redact(&mut self, pos: usize) {
        self.redacted.push(pos);
    }

    /// Publishes the memory of the client's transaction, watched keys and
    /// subscriptions to its [`ClientInfo`] (for CLIENT LIST and
    /// `maxmemory-clients`). A few field reads; stores only on change.
    pub fn publish_state_mem(&self) {
        let (multi_len, multi_mem) = match &self.multi {
            Some(m) => (
                m.queue.len() as i64,
                m.bytes + m.queue.len() * MULTI_ITEM_MEM,
            ),
            None => (-1, 0),
        };
        let subs = &self.pubsub;
        let other = self.watched_bytes
            + self.watched.len() * WATCH_ITEM_MEM
            + (subs.channels.len() + subs.patterns.len() + subs.shard_channels.len())
                * SUB_ITEM_MEM;
        let info = &self.info;
        if info.multi_mem.load(Ordering::Relaxed) != multi_mem {
            info.multi_mem.store(multi_mem, Ordering::Relaxed);
        }
        if info.multi_len.load(Ordering::Relaxed) != multi_len {
            info.multi_len.store(multi_len, Ordering::Relaxed);
        }
        if info.mem_other.load(Ordering::Relaxed) != other {
            info.mem_other.store(other, Ordering::Relaxed);
        }
    }

    pub fn select(&mut self, db: usize) {
        self.db = db;
        self.info.db.store(db, Ordering::Relaxed);
    }

    pub fn set_resp(&mut self, resp: u8) {
        self.resp = resp;
        self.info.resp.store(resp, Ordering::Relaxed);
    }
}
