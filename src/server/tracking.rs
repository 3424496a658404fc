//! Client-side caching (CLIENT TRACKING): which clients may hold which keys
//! in a local cache, and the invalidation messages that tell them to drop
//! a key when it changes.
//!
//! # Design
//! * **Nothing costs anything while no client tracks.** The storage layer
//!   records modified keys ([`note_modified`], called from the shards'
//!   write paths next to the WATCH hook) only while [`TRACK_WRITES`] is
//!   set, which is exactly while at least one client has tracking on;
//!   dispatch checks [`Tracking::in_use`] (one relaxed load) before doing
//!   any tracking work after a command.
//! * Modified keys are collected in a **thread-local** log: a command runs
//!   start to finish on one thread, so the log after a command holds that
//!   command's keys, in order, attributed to its client (needed for NOLOOP
//!   and for delivering the client's own invalidations after its reply).
//!   Background deleters (active expiry, eviction) drain it themselves.
//! * When tracking is on, one mutex guards the tracking table (key → ids of
//!   clients that read it, keyed by name across databases as Redis does),
//!   the BCAST prefix table and the per-client registrations. Delivery only
//!   appends to the receivers' outboxes (the pub/sub queues), so it is safe
//!   under shard locks.
//! * Messages for the client whose command caused them are collected in its
//!   [`Local::pending`] buffer and written after the command's reply (after
//!   EXEC's or a script's reply as a whole), as Redis defers them.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use hashbrown::{HashMap, HashSet};
use parking_lot::Mutex;

use crate::connection::client::ClientInfo;
use crate::protocol::CmdError;
use crate::server::Server;

/// Flag bits kept in `ClientInfo::tracking` (readable by CLIENT LIST and by
/// dispatch without taking the tracking lock).
pub mod flags {
    /// Tracking is on.
    pub const ON: u8 = 1;
    /// Broadcasting mode.
    pub const BCAST: u8 = 2;
    /// Keys are tracked only after `CLIENT CACHING yes`.
    pub const OPTIN: u8 = 4;
    /// Keys are tracked unless `CLIENT CACHING no`.
    pub const OPTOUT: u8 = 8;
    /// No invalidations for the client's own writes.
    pub const NOLOOP: u8 = 16;
    /// The redirect client disappeared.
    pub const BROKEN_REDIR: u8 = 32;
}

/// Set while any client has tracking on: the shards then log the keys they
/// modify (see [`note_modified`]).
pub static TRACK_WRITES: AtomicBool = AtomicBool::new(false);

thread_local! {
    static MODIFIED: RefCell<Vec<Bytes>> = const { RefCell::new(Vec::new()) };
}

/// Called by the storage layer for every key it modifies (the WATCH hook):
/// one relaxed load while nobody tracks.
#[inline]
pub fn note_modified(key: &[u8]) {
    if TRACK_WRITES.load(Ordering::Relaxed) {
        MODIFIED.with(|m| m.borrow_mut().push(Bytes::copy_from_slice(key)));
    }
}

/// Takes the keys this thread modified since the last call.
pub fn take_modified() -> Vec<Bytes> {
    MODIFIED.with(|m| std::mem::take(&mut *m.borrow_mut()))
}

/// Connection-private tracking state (in `Client`).
#[derive(Default)]
pub struct Local {
    /// `CLIENT CACHING yes|no` was given for the next command.
    pub caching: bool,
    /// A script this client runs called a read-only command: its declared
    /// keys are remembered when it finishes (as Redis does for scripts).
    pub script_read: bool,
    /// Invalidation frames for this client caused by its own command,
    /// written right after that command's reply.
    pub pending: BytesMut,
    /// Set by the connection while it executes a batch of pipelined
    /// commands: BCAST keys are then sent once, by [`end_batch`], instead
    /// of after each command (Redis sends them once per event-loop turn,
    /// so a pipeline's writes arrive in one message).
    pub batching: bool,
}

/// The client running the current command: its id and the buffer for
/// messages to itself (delivered after its reply).
pub struct Current<'a> {
    pub id: u64,
    pub pending: &'a mut BytesMut,
}

#[derive(Default)]
struct Bcast {
    clients: BTreeSet<u64>,
    /// Keys modified since the last broadcast → id of the last writer.
    keys: BTreeMap<Bytes, u64>,
}

struct Tracked {
    info: Arc<ClientInfo>,
    prefixes: BTreeSet<Bytes>,
}

#[derive(Default)]
struct State {
    table: HashMap<Bytes, HashSet<u64>>,
    items: u64,
    prefixes: BTreeMap<Bytes, Bcast>,
    clients: HashMap<u64, Tracked>,
    /// Rounds the table stayed over `tracking-table-max-keys`.
    over_rounds: u32,
}

/// The server-wide tracking registry.
#[derive(Default)]
pub struct Tracking {
    clients_on: AtomicUsize,
    /// Some prefix has keys waiting to be broadcast (checked without the
    /// lock after every command).
    bcast_dirty: AtomicBool,
    /// Keys in the table (mirrors `State::table.len()`, for the limit check
    /// after every command without the lock).
    table_len: AtomicUsize,
    state: Mutex<State>,
}

/// What an invalidation message carries.
enum Payload<'a> {
    Key(&'a [u8]),
    /// Flush: null (all keys).
    Null,
    /// A pre-encoded array of keys (BCAST).
    Proto(&'a [u8]),
}

/// The options of `CLIENT TRACKING on`.
pub struct EnableOpts {
    pub redirect: u64,
    pub bcast: bool,
    pub optin: bool,
    pub optout: bool,
    pub noloop: bool,
    pub prefixes: Vec<Bytes>,
}

fn overlaps(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

fn put_bulk(b: &mut BytesMut, s: &[u8]) {
    b.put_u8(b'$');
    b.put_slice(itoa::Buffer::new().format(s.len()).as_bytes());
    b.put_slice(b"\r\n");
    b.put_slice(s);
    b.put_slice(b"\r\n");
}

fn put_len(b: &mut BytesMut, tag: u8, n: usize) {
    b.put_u8(tag);
    b.put_slice(itoa::Buffer::new().format(n).as_bytes());
    b.put_slice(b"\r\n");
}

impl Tracking {
    /// Does any client track (the hot-path check)?
    #[inline]
    pub fn in_use(&self) -> bool {
        self.clients_on.load(Ordering::Relaxed) > 0
    }

    /// Clients with tracking on (INFO tracking_clients).
    pub fn clients(&self) -> usize {
        self.clients_on.load(Ordering::Relaxed)
    }

    /// (tracking_total_keys, tracking_total_items, tracking_total_prefixes).
    pub fn totals(&self) -> (usize, u64, usize) {
        let st = self.state.lock();
        (st.table.len(), st.items, st.prefixes.len())
    }

    /// The client's BCAST prefixes (CLIENT TRACKINGINFO), in order.
    pub fn prefixes_of(&self, id: u64) -> Vec<Bytes> {
        let st = self.state.lock();
        st.clients
            .get(&id)
            .map(|t| t.prefixes.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// `CLIENT TRACKING on …` after its options were parsed: checks them
    /// against each other and the client's current mode (Redis's errors),
    /// then enables tracking.
    pub fn enable(&self, info: &Arc<ClientInfo>, o: EnableOpts) -> Result<(), CmdError> {
        let cur = info.tracking.load(Ordering::Relaxed);
        let on = cur & flags::ON != 0;
        if !o.bcast && !o.prefixes.is_empty() {
            return Err(CmdError::err(
                "PREFIX option requires BCAST mode to be enabled",
            ));
        }
        if on && (cur & flags::BCAST != 0) != o.bcast {
            return Err(CmdError::err("You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode."));
        }
        if o.bcast && (o.optin || o.optout) {
            return Err(CmdError::err(
                "OPTIN and OPTOUT are not compatible with BCAST",
            ));
        }
        if o.optin && o.optout {
            return Err(CmdError::err(
                "You can't specify both OPTIN mode and OPTOUT mode",
            ));
        }
        if (o.optin && cur & flags::OPTOUT != 0) || (o.optout && cur & flags::OPTIN != 0) {
            return Err(CmdError::err("You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode."));
        }
        let mut st = self.state.lock();
        if o.bcast {
            let existing = st.clients.get(&info.id).map(|t| &t.prefixes);
            for (i, p) in o.prefixes.iter().enumerate() {
                if let Some(ex) = existing {
                    if let Some(c) = ex.iter().find(|e| overlaps(e, p)) {
                        return Err(CmdError::new(format!(
                            "ERR Prefix '{}' overlaps with an existing prefix '{}'. Prefixes for a single client must not overlap.",
                            String::from_utf8_lossy(p),
                            String::from_utf8_lossy(c)
                        )));
                    }
                }
                if let Some(q) = o.prefixes[i + 1..].iter().find(|q| overlaps(p, q)) {
                    return Err(CmdError::new(format!(
                        "ERR Prefix '{}' overlaps with another provided prefix '{}'. Prefixes for a single client must not overlap.",
                        String::from_utf8_lossy(p),
                        String::from_utf8_lossy(q)
                    )));
                }
            }
        }
        if !on {
            self.clients_on.fetch_add(1, Ordering::Relaxed);
            TRACK_WRITES.store(true, Ordering::Relaxed);
        }
        let t = st.clients.entry(info.id).or_insert_with(|| Tracked {
            info: info.clone(),
            prefixes: BTreeSet::new(),
        });
        let mut add = Vec::new();
        if o.bcast {
            if o.prefixes.is_empty() {
                add.push(Bytes::new());
            }
            add.extend(o.prefixes.iter().cloned());
            for p in &add {
                if t.prefixes.insert(p.clone()) {
                    info.tracking_mem.fetch_add(
                        p.len() + crate::connection::client::TRACKING_PREFIX_MEM,
                        Ordering::Relaxed,
                    );
                }
            }
        }
        for p in add {
            st.prefixes.entry(p).or_default().clients.insert(info.id);
        }
        let mut f = flags::ON;
        if o.bcast {
            f |= flags::BCAST;
        }
        if o.optin {
            f |= flags::OPTIN;
        }
        if o.optout {
            f |= flags::OPTOUT;
        }
        if o.noloop {
            f |= flags::NOLOOP;
        }
        info.tracking_redir.store(o.redirect, Ordering::Relaxed);
        info.tracking.store(f, Ordering::Relaxed);
        Ok(())
    }

    /// Turns tracking off for a client (CLIENT TRACKING off, RESET,
    /// disconnect). Its ids left in the table are skipped and dropped
    /// lazily, as in Redis.
    pub fn disable(&self, info: &ClientInfo) {
        if info.tracking.load(Ordering::Relaxed) & flags::ON == 0 {
            return;
        }
        let mut st = self.state.lock();
        if let Some(t) = st.clients.remove(&info.id) {
            for p in t.prefixes {
                if let Some(b) = st.prefixes.get_mut(&p) {
                    b.clients.remove(&info.id);
                    if b.clients.is_empty() {
                        st.prefixes.remove(&p);
                    }
                }
            }
        }
        info.tracking.store(0, Ordering::Relaxed);
        info.tracking_mem.store(0, Ordering::Relaxed);
        if self.clients_on.fetch_sub(1, Ordering::Relaxed) == 1 {
            TRACK_WRITES.store(false, Ordering::Relaxed);
            // Nobody tracks: free the table (entries would only be dropped).
            st.table = HashMap::new();
            st.items = 0;
            self.table_len.store(0, Ordering::Relaxed);
        }
    }

    /// Remembers that client `id` read `keys` (after a read-only command).
    pub fn remember<'k>(&self, id: u64, keys: impl Iterator<Item = &'k [u8]>) {
        let mut st = self.state.lock();
        for k in keys {
            let added = match st.table.get_mut(k) {
                Some(ids) => ids.insert(id),
                None => {
                    let mut ids = HashSet::new();
                    ids.insert(id);
                    st.table.insert(Bytes::copy_from_slice(k), ids);
                    true
                }
            };
            if added {
                st.items += 1;
            }
        }
        self.table_len.store(st.table.len(), Ordering::Relaxed);
    }

    /// Invalidates `keys` (modified by the client `cur`, or by the server
    /// itself when `None`): every client that read one is told once and
    /// forgotten for it; BCAST prefixes collect them for [`Self::broadcast`].
    pub fn invalidate(&self, srv: &Server, keys: &[Bytes], mut cur: Option<Current<'_>>) {
        if keys.is_empty() {
            return;
        }
        let mut st = self.state.lock();
        let writer = cur.as_ref().map_or(0, |c| c.id);
        for key in keys {
            if !st.prefixes.is_empty() {
                let mut hit = false;
                for (p, b) in st.prefixes.iter_mut() {
                    if key.starts_with(p) {
                        b.keys.insert(key.clone(), writer);
                        hit = true;
                    }
                }
                if hit {
                    self.bcast_dirty.store(true, Ordering::Relaxed);
                }
            }
            let Some(ids) = st.table.remove(&key[..]) else {
                continue;
            };
            st.items = st.items.saturating_sub(ids.len() as u64);
            for id in ids {
                let Some(t) = st.clients.get(&id) else {
                    continue;
                };
                let f = t.info.tracking.load(Ordering::Relaxed);
                if f & flags::ON == 0 || f & flags::BCAST != 0 {
                    continue;
                }
                if f & flags::NOLOOP != 0 && id == writer {
                    continue;
                }
                let info = t.info.clone();
                send(srv, &info, Payload::Key(key), cur.as_mut());
            }
        }
        self.table_len.store(st.table.len(), Ordering::Relaxed);
    }

    /// Sends the keys BCAST prefixes collected to their clients (Redis does
    /// this once per event-loop turn; here after each top-level command).
    pub fn broadcast(&self, srv: &Server, mut cur: Option<Current<'_>>) {
        if !self.bcast_dirty.load(Ordering::Relaxed) {
            return;
        }
        let mut st = self.state.lock();
        self.bcast_dirty.store(false, Ordering::Relaxed);
        let mut sends: Vec<(Arc<ClientInfo>, BytesMut)> = Vec::new();
        let st = &mut *st;
        for b in st.prefixes.values_mut() {
            if b.keys.is_empty() {
                continue;
            }
            let keys = std::mem::take(&mut b.keys);
            let mut common: Option<BytesMut> = None;
            for id in &b.clients {
                let Some(t) = st.clients.get(id) else {
                    continue;
                };
                let noloop = t.info.tracking.load(Ordering::Relaxed) & flags::NOLOOP != 0;
                let proto = if noloop {
                    let mine: Vec<&Bytes> = keys
                        .iter()
                        .filter(|(_, w)| **w != *id)
                        .map(|(k, _)| k)
                        .collect();
                    if mine.is_empty() {
                        continue;
                    }
                    let mut p = BytesMut::new();
                    put_len(&mut p, b'*', mine.len());
                    for k in mine {
                        put_bulk(&mut p, k);
                    }
                    p
                } else {
                    common
                        .get_or_insert_with(|| {
                            let mut p = BytesMut::new();
                            put_len(&mut p, b'*', keys.len());
                            for k in keys.keys() {
                                put_bulk(&mut p, k);
                            }
                            p
                        })
                        .clone()
                };
                sends.push((t.info.clone(), proto));
            }
        }
        for (info, proto) in sends {
            send(srv, &info, Payload::Proto(&proto), cur.as_mut());
        }
    }

    /// FLUSHDB/FLUSHALL: every tracking client is told that all its keys
    /// are invalid (a null), and the table is emptied.
    pub fn flush(&self, srv: &Server, mut cur: Option<Current<'_>>) {
        let mut st = self.state.lock();
        let infos: Vec<Arc<ClientInfo>> = st.clients.values().map(|t| t.info.clone()).collect();
        st.table = HashMap::new();
        st.items = 0;
        self.table_len.store(0, Ordering::Relaxed);
        drop(st);
        for info in infos {
            send(srv, &info, Payload::Null, cur.as_mut());
        }
    }

    /// Keeps the table within `tracking-table-max-keys` by invalidating
    /// keys (their readers are told, as for a write). The effort grows
    /// each round the table stays over the limit, as in Redis.
    pub fn enforce_limit(&self, srv: &Server) {
        let max = srv.config.tracking_table_max_keys() as usize;
        if max == 0 || self.table_len.load(Ordering::Relaxed) <= max {
            return;
        }
        let victims: Vec<Bytes> = {
            let mut st = self.state.lock();
            if st.table.len() <= max {
                st.over_rounds = 0;
                return;
            }
            let effort = 100 * (st.over_rounds as usize + 1);
            let n = (st.table.len() - max).min(effort);
            if st.table.len() - n > max {
                st.over_rounds += 1;
            } else {
                st.over_rounds = 0;
            }
            st.table.keys().take(n).cloned().collect()
        };
        self.invalidate_by_server(srv, &victims);
    }

    /// Invalidations caused by the server (active expiry, eviction, table
    /// limit): no writer, so NOLOOP does not apply.
    pub fn invalidate_by_server(&self, srv: &Server, keys: &[Bytes]) {
        self.invalidate(srv, keys, None);
        self.broadcast(srv, None);
    }

    /// The periodic task: table limit, and keys a background deleter left
    /// in this thread's log.
    pub fn cron(&self, srv: &Server) {
        if !self.in_use() {
            return;
        }
        let keys = take_modified();
        self.invalidate_by_server(srv, &keys);
        self.enforce_limit(srv);
    }
}

/// Sends one invalidation message for tracking client `t` (Redis's
/// sendTrackingMessage): to its redirect client if it has one (a RESP2
/// redirect client gets it as a `__redis__:invalidate` Pub/Sub message when
/// subscribed), else as a RESP3 push to itself; nothing for a RESP2 client
/// without redirection. A vanished redirect client marks the redirection
/// broken and the client (RESP3) is told `tracking-redir-broken`.
fn send(srv: &Server, t: &Arc<ClientInfo>, payload: Payload<'_>, cur: Option<&mut Current<'_>>) {
    let redir = t.tracking_redir.load(Ordering::Relaxed);
    let t_resp = t.resp.load(Ordering::Relaxed);
    let mut frame = BytesMut::new();
    let dest: Arc<ClientInfo> = if redir != 0 {
        match srv.clients.get(&redir).map(|e| e.value().clone()) {
            Some(d) => d,
            None => {
                t.tracking.fetch_or(flags::BROKEN_REDIR, Ordering::Relaxed);
                if t_resp > 2 {
                    frame.put_slice(b">2\r\n$21\r\ntracking-redir-broken\r\n");
                    put_len(&mut frame, b':', redir as usize);
                    deliver(srv, t, &frame, cur);
                }
                return;
            }
        }
    } else {
        t.clone()
    };
    let d_resp = dest.resp.load(Ordering::Relaxed);
    let subscribed = dest.subscribed();
    if d_resp > 2 {
        frame.put_slice(b">2\r\n$10\r\ninvalidate\r\n");
    } else if redir != 0 && subscribed {
        frame.put_slice(b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n");
    } else {
        return;
    }
    match payload {
        Payload::Key(k) => {
            frame.put_slice(b"*1\r\n");
            put_bulk(&mut frame, k);
        }
        Payload::Null => frame.put_slice(if t_resp > 2 { b"_\r\n" } else { b"$-1\r\n" }),
        Payload::Proto(p) => frame.put_slice(p),
    }
    deliver(srv, &dest, &frame, cur);
}

/// Queues `frame` for `dest`: into the current client's after-reply buffer
/// when it is the client running the command, else into its outbox.
fn deliver(srv: &Server, dest: &Arc<ClientInfo>, frame: &[u8], cur: Option<&mut Current<'_>>) {
    if let Some(c) = cur {
        if c.id == dest.id {
            c.pending.extend_from_slice(frame);
            return;
        }
    }
    let (ob, created) = {
        let mut slot = dest.outbox.lock();
        match &*slot {
            Some(ob) => (ob.clone(), false),
            // A client that left gets nothing (and no queue).
            None if !srv.clients.contains_key(&dest.id) => return,
            None => {
                let ob = crate::server::pubsub::Outbox::new(dest.clone());
                *slot = Some(ob.clone());
                (ob, true)
            }
        }
    };
    {
        let limit = srv.config.client_output_buffer_limit(dest.obuf_class());
        ob.push_frame(frame, limit);
    }
    if created {
        // Its idle connection adopts the new queue.
        dest.push_wake.notify();
    }
}

/// The tracking id of a client for CLIENT LIST's `redir=` (-1 when off).
pub fn redir_field(info: &ClientInfo) -> i64 {
    if info.tracking.load(Ordering::Relaxed) & flags::ON != 0 {
        info.tracking_redir.load(Ordering::Relaxed) as i64
    } else {
        -1
    }
}

/// Dispatch's hook after every command (top-level or inside EXEC or a
/// script), called only while tracking is in use: invalidates the keys the
/// command modified, sends flush invalidations, and remembers the keys a
/// tracking client read.
pub fn after_command(
    ctx: &mut crate::commands::ctx::Ctx<'_>,
    entry: &crate::commands::table::CommandEntry,
    argv: &[Bytes],
    ok: bool,
    nested: bool,
) {
    use crate::commands::spec::CmdFlags;
    let srv = ctx.srv;
    let client = &mut *ctx.client;
    let keys = take_modified();
    if !keys.is_empty() {
        let cur = Some(Current {
            id: client.id,
            pending: &mut client.tracking.pending,
        });
        srv.tracking.invalidate(srv, &keys, cur);
    }
    if ok && matches!(entry.spec.name, "flushall" | "flushdb") {
        let cur = Some(Current {
            id: client.id,
            pending: &mut client.tracking.pending,
        });
        srv.tracking.flush(srv, cur);
    }
    let f = client.info.tracking.load(Ordering::Relaxed);
    if f & flags::ON == 0 || f & flags::BCAST != 0 {
        return;
    }
    let script_cmd = matches!(
        entry.spec.name,
        "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro"
    );
    if client.tracking.script_read && script_cmd && !crate::scripting::running() {
        // The script read something: its declared keys are remembered.
        client.tracking.script_read = false;
        remember_keys(srv, client, entry, argv, f);
        return;
    }
    if !entry.spec.flags.contains(CmdFlags::READONLY)
        || entry.spec.flags.contains(CmdFlags::PUBSUB)
        || script_cmd
    {
        return;
    }
    // Inside a script (only the script thread runs scripts, one at a time;
    // other threads may run commands meanwhile).
    if nested && crate::scripting::holds_gate() && crate::scripting::running() {
        client.tracking.script_read = true;
        return;
    }
    remember_keys(srv, client, entry, argv, f);
}

fn remember_keys(
    srv: &Server,
    client: &crate::connection::client::Client,
    entry: &crate::commands::table::CommandEntry,
    argv: &[Bytes],
    f: u8,
) {
    let caching = client.tracking.caching;
    if (f & flags::OPTIN != 0 && !caching) || (f & flags::OPTOUT != 0 && caching) {
        return;
    }
    let pos = entry.spec.key_positions(argv);
    if pos.is_empty() {
        return;
    }
    srv.tracking.remember(
        client.id,
        pos.iter().filter_map(|&i| argv.get(i)).map(|k| &k[..]),
    );
}

/// Dispatch's hook after a top-level command: broadcasts BCAST keys,
/// keeps the table within its limit, and ends a `CLIENT CACHING` that
/// applied to this command (it lasts through a transaction).
pub fn after_top_level(
    srv: &Server,
    client: &mut crate::connection::client::Client,
    entry: &crate::commands::table::CommandEntry,
) {
    let is_client = entry.parent.is_some_and(|p| p.name == "client");
    if client.tracking.caching && client.multi.is_none() && !is_client {
        client.tracking.caching = false;
    }
    if !srv.tracking.in_use() {
        return;
    }
    // Keys evicted before the next command are invalidated before its
    // reply (as Redis, whose used_memory is exact): let that command's
    // eviction check see what this write allocated.
    if srv.config.maxmemory() > 0
        && entry
            .spec
            .flags
            .contains(crate::commands::spec::CmdFlags::DENYOOM)
    {
        srv.memory.mark_stale();
    }
    if !client.tracking.batching {
        let cur = Some(Current {
            id: client.id,
            pending: &mut client.tracking.pending,
        });
        srv.tracking.broadcast(srv, cur);
    }
    srv.tracking.enforce_limit(srv);
}

/// The end of a batch of pipelined commands (see [`Local::batching`]):
/// sends the BCAST keys the batch collected, in one message per prefix;
/// the client's own ones land in its `pending` buffer, to be written after
/// the batch's replies.
pub fn end_batch(srv: &Server, client: &mut crate::connection::client::Client) {
    client.tracking.batching = false;
    if !srv.tracking.in_use() {
        return;
    }
    let cur = Some(Current {
        id: client.id,
        pending: &mut client.tracking.pending,
    });
    srv.tracking.broadcast(srv, cur);
}

/// A blocked client's command re-run on a writer's thread (see
/// `blocking::handle_ready_keys`): the invalidations it caused for the
/// client itself follow its reply, so they are appended to the encoded
/// reply; when it stays blocked they go to its queue.
pub fn attach_pending(
    srv: &Server,
    tmp: &mut crate::connection::client::Client,
    reply: &mut crate::protocol::Reply,
) {
    if tmp.tracking.pending.is_empty() {
        return;
    }
    let pending = std::mem::take(&mut tmp.tracking.pending);
    if tmp.blocking.would_block {
        let info = tmp.info.clone();
        deliver(srv, &info, &pending, None);
        return;
    }
    let mut b = BytesMut::new();
    crate::protocol::reply::encode(reply, tmp.resp, &mut b);
    b.extend_from_slice(&pending);
    *reply = crate::protocol::Reply::Raw(b.freeze());
}
