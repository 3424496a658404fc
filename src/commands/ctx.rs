//! The execution context a handler receives: the server, the calling client,
//! the shard locks dispatch acquired for this command, and the time.
//!
//! Handlers reach keys only through [`Ctx::shard`], which hands out the
//! already-locked shard for a key. Dispatch computed the lock set from the
//! command table before calling the handler and acquired it in ascending
//! (db, shard) order, so there is no lock-order deadlock and no other client
//! sees a multi-key command half-done.

use parking_lot::MutexGuard;
use smallvec::SmallVec;

use crate::connection::client::Client;
use crate::protocol::{CmdError, CmdResult};
use crate::server::Server;
use crate::storage::Shard;

/// The shard guards held for one command (sorted by (db, shard)).
pub struct Locks<'a> {
    held: SmallVec<[(u32, u32, MutexGuard<'a, Shard>); 4]>,
}

impl<'a> Locks<'a> {
    pub fn none() -> Self {
        Locks {
            held: SmallVec::new(),
        }
    }

    /// Locks `set` (sorted, deduplicated (db, shard) pairs) in order.
    pub fn acquire(srv: &'a Server, set: &[(u32, u32)]) -> Self {
        let mut held = SmallVec::with_capacity(set.len());
        for &(db, sh) in set {
            if let Some(d) = srv.keyspace.db(db as usize) {
                held.push((db, sh, d.shard(sh as usize).lock()));
            }
        }
        Locks { held }
    }

    /// [`Locks::acquire`] for client commands: gives up (releasing what it
    /// took) when a script that holds the shards passes
    /// `busy-reply-threshold`, so the command can be answered `-BUSY`
    /// instead of parking an async worker until the script ends.
    pub fn acquire_unless_busy(srv: &'a Server, set: &[(u32, u32)]) -> Option<Self> {
        let mut held = SmallVec::with_capacity(set.len());
        for &(db, sh) in set {
            if let Some(d) = srv.keyspace.db(db as usize) {
                held.push((db, sh, lock_unless_busy(d.shard(sh as usize))?));
            }
        }
        Some(Locks { held })
    }

    fn find(&mut self, db: u32, sh: u32) -> Option<&mut Shard> {
        let i = self
            .held
            .binary_search_by(|(d, s, _)| (*d, *s).cmp(&(db, sh)))
            .ok()?;
        Some(&mut self.held[i].2)
    }

    /// Every held shard of `db`, in order.
    pub fn of_db<'s>(&'s mut self, db: u32) -> impl Iterator<Item = &'s mut Shard> + use<'s, 'a> {
        self.held
            .iter_mut()
            .filter(move |(d, _, _)| *d == db)
            .map(|(_, _, g)| &mut **g)
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Swaps the contents of every shard of database `a` with database `b`
    /// (SWAPDB). Both databases must be fully locked.
    pub fn swap_dbs(&mut self, a: u32, b: u32) {
        let (a, b) = if a < b { (a, b) } else { (b, a) };
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
        if let Some(g) = m.try_lock_for(std::time::Duration::from_millis(2)) {
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
}

impl<'a> Ctx<'a> {
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
                match self.locks.find(db as u32, i as u32) {
                    Some(held) => f(db, held),
                    // A busy script holds it: skip rather than stall.
                    None => {
                        if let Some(mut g) = lock_unless_busy(sh) {
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
                    if class == crate::config::notify::EXPIRED && self.srv.feed.active() {
                        // A key found expired is deleted everywhere the
                        // stream goes, before the command that found it.
                        self.prop.push((
                            *db as usize,
                            vec![bytes::Bytes::from_static(b"DEL"), key.clone()],
                        ));
                    }
                    self.srv.notify_keyspace(*db as usize, class, event, &key);
                }
            }
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
