//! The execution context a handler receives: the server, the calling client,
//! the shard locks dispatch acquired for this command, and the time.
//!
//! Handlers reach keys only through [`Ctx::shard`], which hands out the
//! already-locked shard for a key. Dispatch computed the lock set from the
//! command table before calling the handler and acquired it in ascending
//! (db, shard) order, so there is no lock-order deadlock and no other client
//! sees a multi-key command half-done.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::MutexGuard;
use smallvec::SmallVec;

use crate::connection::client::Client;
use crate::protocol::{CmdError, CmdResult};
use crate::server::Server;
use crate::storage::Shard;

/// The shard guards held for one command (sorted by (db, shard)).
///
/// Ordinary commands lock their whole set up front, in ascending order.
/// A script instead locks *on demand* (`lazy`): it may touch keys it did not
/// declare, and locking every shard of every database for each EVALSHA
/// cost more than the script. On-demand locking is out of order, so it is
/// allowed only to the holder of the script gate (`scripting::holds_gate`:
/// one script at a time, on the script thread or inline), and every
/// ordered acquirer that finds a lock contended while holding others backs
/// off — releases everything and waits for the script to end — whenever a
/// lazy holder exists (see [`acquire_ordered`]). The script keeps every lock
/// it took until it ends (two-phase locking), so it stays atomic.
/// Held guards with their (db, shard), sorted.
type Held<'a> = SmallVec<[(u32, u32, MutexGuard<'a, Shard>); 4]>;

pub struct Locks<'a> {
    held: Held<'a>,
    /// `Some` while on-demand locking is on (declared after `held`: the
    /// shards are released before the gate opens).
    lazy: Option<LazyGuard<'a>>,
}

/// The on-demand locking state of a script: the server (to find shards)
/// and the gate that ordered acquirers wait on after backing off.
struct LazyGuard<'a> {
    srv: &'a Server,
    _gate: parking_lot::RwLockWriteGuard<'static, ()>,
}

impl Drop for LazyGuard<'_> {
    fn drop(&mut self) {
        LAZY_ACTIVE.store(false, Ordering::SeqCst);
    }
}

/// True while a script holds shard locks it took on demand.
static LAZY_ACTIVE: AtomicBool = AtomicBool::new(false);
/// Write-held by that script for its whole run; backed-off acquirers wait
/// for it with a read attempt.
static LAZY_GATE: parking_lot::RwLock<()> = parking_lot::const_rwlock(());

/// How long a contended wait sleeps before re-checking whether it must
/// give up (busy script) or back off (on-demand holder).
const WAIT_SLICE: Duration = Duration::from_millis(1);

/// Locks `set` (sorted, deduplicated (db, shard) pairs) in ascending order.
/// With `busy_aware`, gives up (`None`, nothing held) when a script passes
/// `busy-reply-threshold` meanwhile. While holding some shards and waiting
/// for another, it backs off whenever a script holds shards it locked on
/// demand (that script may be waiting for one of ours), then starts over.
fn acquire_ordered<'a>(srv: &'a Server, set: &[(u32, u32)], busy_aware: bool) -> Option<Held<'a>> {
    let mut held: Held<'a> = SmallVec::with_capacity(set.len());
    acquire_into(srv, set, busy_aware, &mut held).then_some(held)
}

/// [`acquire_ordered`] into `held` (empty), where the guards stay: the
/// per-command path builds its context first and locks into it, rather
/// than moving the guards through return values (a profile of pipelined
/// GETs put 2% of the server's CPU in those moves). False (nothing held)
/// if it gave up.
fn acquire_into<'a>(
    srv: &'a Server,
    set: &[(u32, u32)],
    busy_aware: bool,
    held: &mut Held<'a>,
) -> bool {
    'retry: loop {
        held.clear();
        for &(db, sh) in set {
            let Some(d) = srv.keyspace.db(db as usize) else {
                continue;
            };
            let m = d.shard(sh as usize);
            let g = match m.try_lock() {
                Some(g) => g,
                None => loop {
                    if busy_aware && crate::scripting::busy() {
                        held.clear();
                        return false;
                    }
                    if !held.is_empty() && LAZY_ACTIVE.load(Ordering::SeqCst) {
                        held.clear();
                        if wait_lazy_end(busy_aware).is_none() {
                            return false;
                        }
                        continue 'retry;
                    }
                    if let Some(g) = m.try_lock_for(WAIT_SLICE) {
                        break g;
                    }
                },
            };
            held.push((db, sh, g));
        }
        return true;
    }
}

/// Waits (holding nothing) until no script holds on-demand locks; `None`
/// if `busy_aware` and the script passes `busy-reply-threshold`.
fn wait_lazy_end(busy_aware: bool) -> Option<()> {
    while LAZY_ACTIVE.load(Ordering::SeqCst) {
        if busy_aware && crate::scripting::busy() {
            return None;
        }
        if let Some(g) = LAZY_GATE.try_read_for(WAIT_SLICE) {
            drop(g);
            break;
        }
    }
    Some(())
}

/// Every shard of every database, locked in the global order (a fork for
/// a snapshot). Backs off from on-demand script holders as
/// [`acquire_ordered`] does; never gives up.
pub fn lock_everything(srv: &Server) -> Vec<Vec<MutexGuard<'_, Shard>>> {
    let ks = &srv.keyspace;
    let all: Vec<(u32, u32)> = ks.all_shards().collect();
    let held = acquire_ordered(srv, &all, false).unwrap_or_default();
    let mut dbs: Vec<Vec<MutexGuard<'_, Shard>>> = (0..ks.num_dbs()).map(|_| Vec::new()).collect();
    for (db, _, g) in held {
        if let Some(v) = dbs.get_mut(db as usize) {
            v.push(g);
        }
    }
    dbs
}

impl<'a> Locks<'a> {
    pub fn none() -> Self {
        Locks {
            held: SmallVec::new(),
            lazy: None,
        }
    }

    /// Locks `set` (sorted, deduplicated (db, shard) pairs) in order.
    pub fn acquire(srv: &'a Server, set: &[(u32, u32)]) -> Self {
        Locks {
            held: acquire_ordered(srv, set, false).unwrap_or_default(),
            lazy: None,
        }
    }

    /// [`Locks::acquire_unless_busy`] into locks that hold nothing yet;
    /// false (still holding nothing) if it gave up.
    pub fn take_unless_busy(&mut self, srv: &'a Server, set: &[(u32, u32)]) -> bool {
        debug_assert!(self.held.is_empty() && self.lazy.is_none());
        acquire_into(srv, set, true, &mut self.held)
    }

    /// [`Locks::acquire`] for client commands: gives up (releasing what it
    /// took) when a script that holds the shards passes
    /// `busy-reply-threshold`, so the command can be answered `-BUSY`
    /// instead of parking an async worker until the script ends.
    pub fn acquire_unless_busy(srv: &'a Server, set: &[(u32, u32)]) -> Option<Self> {
        Some(Locks {
            held: acquire_ordered(srv, set, true)?,
            lazy: None,
        })
    }

    /// Turns on on-demand locking for a script (keeping what is held).
    /// Without the script gate (the script thread could not be started)
    /// on-demand locking is not safe, so every shard is locked now instead,
    /// in order.
    pub fn make_lazy(&mut self, srv: &'a Server) {
        if self.lazy.is_some() {
            return;
        }
        if !crate::scripting::holds_gate() {
            let mut all: SmallVec<[(u32, u32); 4]> = srv.keyspace.all_shards().collect();
            // Already-held shards stay; take the rest in order. Only
            // reachable when nothing is held yet (scripts outside EXEC) or
            // on this same thread, so there is no one to deadlock with.
            all.retain(|p| self.find_held(p.0, p.1).is_none());
            self.held
                .extend(acquire_ordered(srv, &all, false).unwrap_or_default());
            self.held.sort_unstable_by_key(|(d, s, _)| (*d, *s));
            return;
        }
        let gate = LAZY_GATE.write();
        LAZY_ACTIVE.store(true, Ordering::SeqCst);
        self.lazy = Some(LazyGuard { srv, _gate: gate });
    }

    fn find_held(&self, db: u32, sh: u32) -> Option<usize> {
        self.held
            .binary_search_by(|(d, s, _)| (*d, *s).cmp(&(db, sh)))
            .ok()
    }

    /// Locks every shard of `db` that is not held yet (on-demand mode).
    fn ensure_db(&mut self, db: u32) {
        if let Some(srv) = self.lazy.as_ref().map(|l| l.srv) {
            for sh in 0..srv.keyspace.num_shards() as u32 {
                let _ = self.find(db, sh);
            }
        }
    }

    fn find(&mut self, db: u32, sh: u32) -> Option<&mut Shard> {
        let i = match self
            .held
            .binary_search_by(|(d, s, _)| (*d, *s).cmp(&(db, sh)))
        {
            Ok(i) => i,
            Err(at) => {
                let srv = self.lazy.as_ref()?.srv;
                // Blocking is safe here: whoever holds it either finishes
                // its command or, waiting while holding, backs off.
                let g = srv.keyspace.db(db as usize)?.shard(sh as usize).lock();
                self.held.insert(at, (db, sh, g));
                at
            }
        };
        Some(&mut self.held[i].2)
    }

    /// Every held shard of `db`, in order.
    pub fn of_db<'s>(&'s mut self, db: u32) -> impl Iterator<Item = &'s mut Shard> + use<'s, 'a> {
        self.ensure_db(db);
        self.held
            .iter_mut()
            .filter(move |(d, _, _)| *d == db)
            .map(|(_, _, g)| &mut **g)
    }

    /// No shard held and none to be taken on demand (not inside EXEC or a
    /// script).
    pub fn is_empty(&self) -> bool {
        self.held.is_empty() && self.lazy.is_none()
    }

    /// Swaps the contents of every shard of database `a` with database `b`
    /// (SWAPDB). Both databases must be fully locked.
    pub fn swap_dbs(&mut self, a: u32, b: u32, now: u64) {
        let (a, b) = if a < b { (a, b) } else { (b, a) };
        self.ensure_db(a);
        self.ensure_db(b);
        let pos = |held: &[(u32, u32, MutexGuard<'a, Shard>)], db: u32, sh: u32| {
            held.binary_search_by(|(d, s, _)| (*d, *s).cmp(&(db, sh)))
                .ok()
        };
        let shards: Vec<u32> = self
            .held
            .iter()
            .filter(|(d, _, _)| *d == a)
            .map(|(_, s, _)| *s)
            .collect();
        for sh in shards {
            if let (Some(i), Some(j)) = (pos(&self.held, a, sh), pos(&self.held, b, sh)) {
                let (lo, hi) = self.held.split_at_mut(j);
                let (x, y) = (&mut *lo[i].2, &mut *hi[0].2);
                // A watched key past its deadline is absent to Redis's
                // WATCH (swapping it in or out is no change): expire such
                // keys on both sides first, as an access would.
                let watched: Vec<Box<[u8]>> = x
                    .watched_keys()
                    .chain(y.watched_keys())
                    .map(Box::from)
                    .collect();
                for k in &watched {
                    x.contains(k, now);
                    y.contains(k, now);
                }
                x.touch_present(Some(y));
                y.touch_present(Some(x));
                std::mem::swap(x, y);
                // Watches belong to the database, not to the data.
                x.swap_watchers(y);
            }
        }
    }
}

/// Locks `m`, unless it is (or becomes) held by a script running past
/// `busy-reply-threshold` (then `None`). Uncontended, this is one
/// `try_lock`.
pub fn lock_unless_busy<T>(m: &parking_lot::Mutex<T>) -> Option<MutexGuard<'_, T>> {
    if let Some(g) = m.try_lock() {
        return Some(g);
    }
    loop {
        if crate::scripting::busy() {
            return None;
        }
        if let Some(g) = m.try_lock_for(WAIT_SLICE) {
            return Some(g);
        }
    }
}

/// [`lock_unless_busy`] for a command that may already hold other shards
/// (`holding`): it also gives up while a script holds shards on demand, as
/// that script may be waiting for one of ours.
pub(crate) fn lock_for_visit<T>(
    m: &parking_lot::Mutex<T>,
    holding: bool,
) -> Option<MutexGuard<'_, T>> {
    if let Some(g) = m.try_lock() {
        return Some(g);
    }
    loop {
        if crate::scripting::busy()
            || (holding && LAZY_ACTIVE.load(Ordering::SeqCst) && !crate::scripting::holds_gate())
        {
            return None;
        }
        if let Some(g) = m.try_lock_for(WAIT_SLICE) {
            return Some(g);
        }
    }
}

/// What a handler sees.
pub struct Ctx<'a> {
    pub srv: &'a Server,
    pub client: &'a mut Client,
    pub locks: Locks<'a>,
    /// Unix time in milliseconds, fixed for the whole command (as Redis).
    pub now: u64,
    /// Number of changes made; > 0 means the command is propagated.
    pub dirty: u64,
    /// Records of this top-level command for the propagation stream (only
    /// gathered while the stream is active; see `server::propagate`).
    pub prop: Vec<crate::server::propagate::Record>,
    /// The commands to propagate instead of the running command's argv
    /// (set by its handler through [`Ctx::propagate_as`]).
    pub rewrite: Option<Vec<Vec<bytes::Bytes>>>,
    /// Commands run by a script: replies must stay structured values (the
    /// script converts them to Lua), never pre-encoded `Reply::Raw` bytes.
    pub in_script: bool,
}

impl<'a> Ctx<'a> {
    /// The protocol a reply may be pre-encoded for ([`Reply::Raw`]):
    /// the client's, except inside a script (`None`: it needs values).
    pub fn raw_resp(&self) -> Option<u8> {
        (!self.in_script).then_some(self.client.resp)
    }

    /// For a reply of `count` repeated picks of at least `min_each` bytes
    /// each from the `kind` collection at `key` (HRANDFIELD, SRANDMEMBER,
    /// ZRANDMEMBER with a negative count): whether it would pass the normal
    /// clients' output buffer hard limit. Then the client is marked to be
    /// closed without a reply, as Redis stops such a command mid-run and
    /// closes the client, instead of building a reply that could only be
    /// thrown away. A missing key or one of another type is never over
    /// (it gets its usual reply).
    pub fn reply_overflows(
        &mut self,
        key: &[u8],
        kind: &str,
        count: u64,
        min_each: u64,
    ) -> Result<bool, CmdError> {
        let bytes = usize::try_from(count.saturating_mul(min_each)).unwrap_or(usize::MAX);
        if self.in_script || !self.srv.obuf_normal.over_hard(bytes) {
            return Ok(false);
        }
        let now = self.now;
        let matches = self
            .shard(key)?
            .peek(key, now)
            .is_some_and(|v| v.type_name() == kind);
        if matches {
            self.client.obuf_overflow = true;
        }
        Ok(matches)
    }

    /// The locked shard holding `key` in the client's current database.
    pub fn shard(&mut self, key: &[u8]) -> CmdResult<&mut Shard> {
        let db = self.client.db as u32;
        self.shard_in(db, key)
    }

    /// The locked shard holding `key` in database `db`.
    pub fn shard_in(&mut self, db: u32, key: &[u8]) -> CmdResult<&mut Shard> {
        let sh = self.srv.keyspace.shard_index(key) as u32;
        self.locks.find(db, sh).ok_or(CmdError::INTERNAL)
    }

    /// All shards of the client's database (commands with `LockScope::Db`).
    pub fn db_shards<'s>(&'s mut self) -> impl Iterator<Item = &'s mut Shard> + use<'s, 'a> {
        let db = self.client.db as u32;
        self.locks.of_db(db)
    }

    /// Visits every shard of every database: through the guard this command
    /// already holds when it has one (inside EXEC), otherwise locking each
    /// shard briefly on its own. For introspection (INFO, RESETSTAT) that
    /// must not deadlock against the caller's own locks.
    pub fn visit_all_shards(&mut self, mut f: impl FnMut(usize, &mut Shard)) {
        let ks = &self.srv.keyspace;
        for db in 0..ks.num_dbs() {
            let Some(d) = ks.db(db) else { continue };
            for (i, sh) in d.shards().iter().enumerate() {
                match self.locks.find_held(db as u32, i as u32) {
                    Some(at) => f(db, &mut self.locks.held[at].2),
                    // A busy script holds it: skip rather than stall.
                    None => {
                        let holding = !self.locks.held.is_empty();
                        if let Some(mut g) = lock_for_visit(sh, holding) {
                            f(db, &mut g)
                        }
                    }
                }
            }
        }
    }

    /// Publishes a keyspace notification for `key` in the client's current
    /// database: `class` is one of `config::notify` (STRING, LIST, GENERIC,
    /// …), `event` Redis's event name ("set", "lpush", "del", "expired"…).
    /// Only enqueues to subscribers' queues (never locks a shard), so it is
    /// safe with this command's shard locks held. Keys the command's shards
    /// expired lazily are announced first (`expired` precedes the event of
    /// the command that found them, as in Redis).
    pub fn notify(&mut self, class: u32, event: &str, key: &[u8]) {
        let db = self.client.db;
        self.notify_in(db, class, event, key);
    }

    /// [`Ctx::notify`] for a key of database `db` (MOVE, COPY … DB).
    pub fn notify_in(&mut self, db: usize, class: u32, event: &str, key: &[u8]) {
        self.flush_expired();
        self.srv.notify_keyspace(db, class, event, key);
    }

    /// Publishes the events the held shards' storage layer recorded (lazy
    /// `expired`, `new`, `keymiss`; see `Shard::take_event_log`).
    pub fn flush_expired(&mut self) {
        for (db, _, sh) in self.locks.held.iter_mut() {
            if sh.has_event_log() {
                for (class, event, key) in sh.take_event_log() {
                    if class == crate::config::notify::EXPIRED && !self.client.loader {
                        // A key found expired is deleted everywhere the
                        // stream goes, at once (under its shard's lock),
                        // before the command that found it and never
                        // inside its MULTI/EXEC, as Redis's propagateNow.
                        self.srv.feed.emit_one(
                            *db as usize,
                            vec![bytes::Bytes::from_static(b"DEL"), key.clone()],
                        );
                    }
                    self.srv.notify_keyspace(*db as usize, class, event, &key);
                }
            }
        }
    }

    /// Sends `argv` to the replicas only (not the AOF), in the running
    /// command's place in the stream (inside its transaction or script):
    /// PUBLISH and SPUBLISH, as Redis propagates them.
    pub fn propagate_to_replicas(&mut self, argv: Vec<bytes::Bytes>) {
        if self.srv.feed.active() {
            let db = self.client.db;
            self.prop
                .push((db, argv, crate::server::propagate::to::REPL));
        }
    }

    /// Propagates `argv` instead of the running command's own arguments (a
    /// deterministic form: absolute expiry times, the members SPOP chose,
    /// the ID XADD generated …). Called more than once, every form is
    /// propagated in order; with an empty `argv` list nothing is.
    pub fn propagate_as(&mut self, argv: Vec<bytes::Bytes>) {
        if !self.srv.feed.active() {
            return;
        }
        let list = self.rewrite.get_or_insert_with(Vec::new);
        if !argv.is_empty() {
            list.push(argv);
        }
    }

    /// Is the propagation stream being consumed (so rewrites are worth
    /// building)?
    pub fn propagating(&self) -> bool {
        self.srv.feed.active()
    }

    /// Marks `n` changes (drives propagation and the dirty counter).
    pub fn changed(&mut self, n: u64) {
        self.dirty += n;
    }
}
