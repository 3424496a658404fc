//! A shard: one slice of one database. Owns its hash table, object slab,
//! expiry index and counters; always used under its mutex, so nothing here is
//! synchronised.
//!
//! Expiry: entries carry their absolute deadline; the shard also keeps an
//! ordered index `(deadline, ord) -> count` so the active cycle removes due
//! keys in deadline order without sampling, and volatile-ttl eviction can take
//! the nearest deadline. Lookups expire lazily.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use bytes::Bytes;
use foldhash::fast::FixedState;
use std::hash::BuildHasher;

use crate::protocol::codec::parse_i64;
use crate::storage::entry::{Entry, Payload, INLINE_MAX, KIND_EMBSTR, KIND_INT, KIND_OBJ};
use crate::storage::table::{Table, TableEntry};
use crate::storage::value::{Obj, Value, ValueRef};

/// How a write treats the key's existing TTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    /// Keep the current TTL (KEEPTTL, in-place updates).
    Keep,
    /// Remove any TTL (plain SET).
    Clear,
    /// Set this absolute deadline (unix ms).
    At(u64),
}

/// Per-shard counters, summed for INFO.
#[derive(Debug, Default, Clone, Copy)]
pub struct ShardStats {
    pub hits: u64,
    pub misses: u64,
    pub expired: u64,
    /// Keys whose deadline had passed when found by the active cycle
    /// (used for expired_stale_perc).
    pub expired_stale: u64,
}

use crate::storage::access;
pub use crate::storage::access::lru_clock;
use crate::storage::chunked::{ChunkVec, Slab};

/// Does this string have the canonical integer form Redis int-encodes?
fn as_canonical_int(s: &[u8]) -> Option<i64> {
    if s.len() > 20 {
        return None;
    }
    parse_i64(s)
}

pub struct Shard {
    table: Table<Entry>,
    objs: Slab<Obj>,
    free_objs: ChunkVec<u32>,
    expires: BTreeMap<(u64, u32), u32>,
    volatile: usize,
    hasher: FixedState,
    shard_bits: u32,
    pub stats: ShardStats,
    /// WATCHed keys of this shard → the flags of the transactions watching
    /// them. Any change to a watched key (write, delete, expiry, eviction,
    /// flush) sets the flags, which makes those EXECs fail.
    watchers: hashbrown::HashMap<Box<[u8]>, Vec<Weak<AtomicBool>>>,
    /// Keyspace events the storage layer itself causes (lazy `expired`,
    /// `new` key, `keymiss`) since the last [`Shard::take_event_log`], as
    /// (class, event, key); kept only for the classes in [`RECORD_EVENTS`].
    /// The command holding this shard publishes them (storage knows nothing
    /// of pub/sub).
    event_log: Vec<(u32, &'static str, Bytes)>,
    /// The snapshot mark entries carry once a running snapshot has their
    /// state (or when they were created after its start); see [`Capture`].
    mark: bool,
    /// A versioned snapshot that has not yet visited all of this shard.
    capture: Option<Box<Capture>>,
}

/// Bytes a running snapshot holds (the capacity of the side buffers of
/// old values, all shards, and the snapshot thread's write buffers): not
/// counted against `maxmemory`, as Redis leaves its forked child's memory
/// and copy-on-write pages out, or evicting a key during a snapshot would
/// free nothing (its value moves to the side buffer) and eviction would
/// run on.
pub static CAPTURED_BYTES: AtomicU64 = AtomicU64::new(0);

/// Bytes of old values running snapshots have set aside because a command
/// changed them before the walk saved them, since the last reset (at each
/// background job's start): what a forked child's copy-on-write size
/// measures, reported as INFO's `current_cow_size`. Unlike
/// [`CAPTURED_BYTES`] it only grows while a snapshot runs.
pub static COPIED_BYTES: AtomicU64 = AtomicU64::new(0);

/// Encodes one entry (key, value, deadline, access metadata) as a snapshot
/// record, appending to the buffer; false if it was left out (expired at
/// the snapshot's start). Supplied by `persistence`: the storage layer
/// knows nothing of the file format.
pub type RecordEncoder =
    dyn Fn(&mut Vec<u8>, &[u8], ValueRef<'_>, Option<u64>, u32) -> bool + Send + Sync;

/// A versioned (fork-less) snapshot in progress in one shard.
///
/// At the snapshot's start every shard flips its `mark` while all shards
/// are locked, so every existing entry differs from it, and new entries are
/// always created with the current mark. The snapshot thread walks the
/// table (by SCAN cursor, a chunk per lock hold) saving entries that differ
/// and marking them; a command about to change or remove an entry that
/// still differs saves its state first ([`Shard::preserve`]) into `side`.
/// Either way each entry's state at the start is saved exactly once, and
/// the shard leaves capture mode when the walk ends.
pub struct Capture {
    id: u64,
    /// The database (as numbered at the snapshot's start: SWAPDB moves
    /// whole shards, this with them).
    db: u32,
    /// The walk's next ord; `None` once the table has been walked.
    cursor: Option<u32>,
    /// Records of entries saved before their first change.
    side: Vec<u8>,
    side_keys: u64,
    /// Large values saved before their first change, by reference: the
    /// command that changes one copies it (see `storage::shared`), the
    /// snapshot thread encodes this one outside the lock.
    side_large: Vec<Deferred>,
    /// `memory_usage` of `side_large`, counted in [`CAPTURED_BYTES`].
    side_large_bytes: u64,
    /// Contents removed wholesale (FLUSHDB) before the walk reached them.
    detached: Vec<Detached>,
    enc: Arc<RecordEncoder>,
}

/// A table taken out of a shard under capture (FLUSHDB during a
/// snapshot): the snapshot thread saves its unsaved entries, then drops it.
pub struct Detached {
    table: Table<Entry>,
    objs: Slab<Obj>,
    mark: bool,
}

impl Detached {
    /// Visits the entries the snapshot has not saved yet.
    pub fn for_each_unsaved<F: FnMut(&[u8], ValueRef<'_>, Option<u64>, u32)>(&self, mut f: F) {
        for e in self.table.iter() {
            if e.snap_mark() != self.mark {
                if let Some(v) = value_of(e, &self.objs) {
                    f(e.key(), v, e.expire(), e.lru());
                }
            }
        }
    }
}

/// A large value whose state the snapshot needs, taken under the shard
/// lock (by reference for a collection held in a `Shared`, by copy for a
/// long string) and encoded after it is released: encoding a
/// million-member set takes ~100 ms, and holding the shard that long would
/// stall every command on it.
pub struct Deferred {
    pub key: Box<[u8]>,
    pub obj: Obj,
    pub expire: Option<u64>,
    pub meta: u32,
}

impl Deferred {
    fn of(e: &Entry, obj: Obj) -> Self {
        Deferred {
            key: e.key().into(),
            obj,
            expire: e.expire(),
            meta: e.lru(),
        }
    }
}

/// What one step of a snapshot's walk over a shard produced.
pub struct CaptureStep {
    /// The database the records belong to.
    pub db: u32,
    /// Records written into the caller's buffer.
    pub keys: u64,
    /// The shard has been walked: it left capture mode.
    pub done: bool,
    pub detached: Vec<Detached>,
    /// Large values to encode outside the lock.
    pub deferred: Vec<Deferred>,
}

fn value_of<'a>(e: &'a Entry, objs: &'a Slab<Obj>) -> Option<ValueRef<'a>> {
    Some(match e.kind() {
        KIND_EMBSTR => ValueRef::Str(e.embstr()),
        KIND_INT => ValueRef::Int(e.int()),
        _ => ValueRef::Obj(objs.get(e.obj_index() as usize)?.as_ref()?),
    })
}

/// Strings from this length on are kept by reference and encoded (LZF)
/// after the shard lock is released.
const LARGE_STRING: usize = 16 << 10;

/// What a snapshot keeps of a large value `v` to encode outside the lock:
/// a second reference to a collection in its large representation
/// ([`Obj::share`]: an edit of the value then copies only the table
/// chunks, tree chunks, list nodes or stream blocks it touches), or to a
/// long string (an edit copies it then, but a copy is ~10x cheaper than
/// encoding).
fn share_large(v: ValueRef<'_>) -> Option<Obj> {
    match v {
        ValueRef::Obj(o @ Obj::Raw(b)) if b.len() >= LARGE_STRING => Some(o.clone()),
        ValueRef::Obj(o) => o.share(),
        _ => None,
    }
}

/// The `config::notify` classes (EXPIRED, NEW, KEY_MISS) the shards record
/// in their event log (one server per process; dispatch keeps it in sync
/// with `notify-keyspace-events`).
pub static RECORD_EVENTS: AtomicU32 = AtomicU32::new(0);

/// Is `class` being recorded?
#[inline]
fn recording(class: u32) -> bool {
    RECORD_EVENTS.load(Ordering::Relaxed) & class != 0
}

/// Whether an expired key found by a lookup stays in place (reading as
/// absent) instead of being deleted: CLIENT PAUSE keeps the dataset still
/// until the pause ends, and a replica keeps it until its primary's DEL
/// arrives (as Redis).
fn expired_keys_stay(now: u64) -> bool {
    crate::storage::replica_keeps_expired() || crate::server::pause::paused_until(now)
}

impl Shard {
    pub fn new(hasher: FixedState, shard_bits: u32) -> Self {
        Shard {
            table: Table::new(),
            objs: Slab::default(),
            free_objs: ChunkVec::default(),
            expires: BTreeMap::new(),
            volatile: 0,
            hasher,
            shard_bits,
            stats: ShardStats::default(),
            watchers: hashbrown::HashMap::new(),
            event_log: Vec::new(),
            mark: false,
            capture: None,
        }
    }

    // ---- versioned snapshots ----------------------------------------------

    /// Enters capture mode for snapshot `id` of database `db` (under the
    /// lock of every shard, at the snapshot's instant). An empty shard has
    /// nothing to save and stays out of it.
    pub fn begin_capture(&mut self, id: u64, db: u32, enc: Arc<RecordEncoder>) {
        if self.table.is_empty() {
            return;
        }
        self.mark = !self.mark;
        self.capture = Some(Box::new(Capture {
            id,
            db,
            cursor: Some(0),
            side: Vec::new(),
            side_keys: 0,
            side_large: Vec::new(),
            side_large_bytes: 0,
            detached: Vec::new(),
            enc,
        }));
    }

    /// Is snapshot `id` still walking this shard?
    pub fn capturing(&self, id: u64) -> bool {
        self.capture.as_ref().is_some_and(|c| c.id == id)
    }

    /// One step of snapshot `id`'s walk: moves the records saved by
    /// commands into `out`, then saves (`save`) or only marks (an abandoned
    /// snapshot must still leave every entry marked) up to `max` entries.
    /// `None` when the shard is not in capture mode for `id`.
    ///
    /// `ahead` gets the blob addresses of the entries the next step will
    /// read, for the caller to prefetch after letting the lock go
    /// ([`crate::storage::entry::prefetch_at`]): the entries lie at random
    /// addresses, and loading them (a cache and TLB miss each) was most of
    /// a step's time under the lock. The next step reads whatever is there
    /// by then; the addresses are only hints.
    pub fn capture_step(
        &mut self,
        id: u64,
        max: usize,
        out: &mut Vec<u8>,
        save: bool,
        ahead: &mut Vec<usize>,
    ) -> Option<CaptureStep> {
        ahead.clear();
        let mark = self.mark;
        let cap = self.capture.as_mut().filter(|c| c.id == id)?;
        let mut keys = std::mem::take(&mut cap.side_keys);
        // Taken whole, so its memory goes with it (what `CAPTURED_BYTES`
        // counts is the buffer's capacity).
        let side = std::mem::take(&mut cap.side);
        CAPTURED_BYTES.fetch_sub(side.capacity() as u64, Ordering::Relaxed);
        if save {
            out.extend_from_slice(&side);
        } else {
            keys = 0;
        }
        drop(side);
        let detached = std::mem::take(&mut cap.detached);
        let mut deferred = std::mem::take(&mut cap.side_large);
        CAPTURED_BYTES.fetch_sub(std::mem::take(&mut cap.side_large_bytes), Ordering::Relaxed);
        if !save {
            deferred.clear();
        }
        if let Some(c) = cap.cursor {
            let mut at = Vec::with_capacity(max);
            cap.cursor = self
                .table
                .scan_positions(c, max, max.saturating_mul(8), |p| at.push(p));
            // The blobs sit at random addresses: start loading a few ahead
            // (as `for_each_entry` does) so the misses overlap.
            const AHEAD: usize = 8;
            for &p in at.iter().take(AHEAD) {
                if let Some(e) = self.table.get(p) {
                    e.prefetch();
                }
            }
            for (i, &p) in at.iter().enumerate() {
                if let Some(e) = at.get(i + AHEAD).and_then(|&q| self.table.get(q)) {
                    e.prefetch();
                }
                let Some(e) = self.table.get_mut(p) else {
                    continue;
                };
                if e.snap_mark() == mark {
                    continue;
                }
                e.set_snap_mark(mark);
                if save {
                    let e = &*e;
                    let v = value_of(e, &self.objs);
                    if let Some(large) = v.and_then(share_large) {
                        deferred.push(Deferred::of(e, large));
                    } else if let Some(v) = v {
                        if (cap.enc)(out, e.key(), v, e.expire(), e.lru()) {
                            keys += 1;
                        }
                    }
                }
            }
        }
        let db = cap.db;
        let done = cap.cursor.is_none();
        if let Some(c) = cap.cursor.filter(|_| save) {
            let table = &self.table;
            table.scan_positions(c, max, max.saturating_mul(8), |p| {
                if let Some(e) = table.get(p) {
                    ahead.push(e.blob_addr());
                }
            });
        }
        if done {
            self.capture = None;
        }
        Some(CaptureStep {
            db,
            keys,
            done,
            detached,
            deferred,
        })
    }

    /// Before an entry changes, goes, or is edited in place: if a snapshot
    /// still needs its state, saves it now. One predictable branch when no
    /// snapshot runs. A large collection is kept by reference even when
    /// it is about to be edited: its copy shares its parts (table chunks,
    /// tree chunks, list nodes, stream blocks), so the edit copies a few of
    /// them (a 1M-field HSET during BGSAVE stalled 35-45 ms before chunk
    /// sharing, now well under 1 ms).
    #[inline]
    fn preserve(&mut self, pos: usize) {
        if self.capture.is_some() {
            self.preserve_slow(pos);
        }
    }

    #[cold]
    fn preserve_slow(&mut self, pos: usize) {
        let mark = self.mark;
        let (Some(cap), Some(e)) = (self.capture.as_mut(), self.table.get_mut(pos)) else {
            return;
        };
        if e.snap_mark() == mark {
            return;
        }
        e.set_snap_mark(mark);
        let e = &*e;
        if let Some(large) = value_of(e, &self.objs).and_then(share_large) {
            // A collection removed, replaced or re-timed stays as it is, and
            // an edited one copies only the parts it touches; a long string
            // is copied rather than encoded here.
            let bytes = large.memory_usage() as u64;
            cap.side_large.push(Deferred::of(e, large));
            cap.side_large_bytes += bytes;
            CAPTURED_BYTES.fetch_add(bytes, Ordering::Relaxed);
            COPIED_BYTES.fetch_add(bytes, Ordering::Relaxed);
            return;
        }
        if let Some(v) = value_of(e, &self.objs) {
            let before = cap.side.capacity();
            let len = cap.side.len();
            if (cap.enc)(&mut cap.side, e.key(), v, e.expire(), e.lru()) {
                cap.side_keys += 1;
            }
            COPIED_BYTES.fetch_add((cap.side.len() - len) as u64, Ordering::Relaxed);
            let grown = cap.side.capacity().saturating_sub(before);
            if grown > 0 {
                CAPTURED_BYTES.fetch_add(grown as u64, Ordering::Relaxed);
            }
        }
    }

    /// The whole contents are about to go (FLUSHDB/FLUSHALL): under
    /// capture they move to the snapshot, which saves what it has not yet
    /// and frees the rest. True if they were taken.
    fn detach_for_capture(&mut self) -> bool {
        let Some(cap) = self.capture.as_mut() else {
            return false;
        };
        cap.detached.push(Detached {
            table: std::mem::take(&mut self.table),
            objs: std::mem::take(&mut self.objs),
            mark: self.mark,
        });
        // The new table only gets entries created after the start.
        cap.cursor = None;
        self.free_objs = ChunkVec::default();
        self.expires.clear();
        self.volatile = 0;
        true
    }

    /// Are storage-level keyspace events waiting to be announced?
    pub fn has_event_log(&self) -> bool {
        !self.event_log.is_empty()
    }

    /// Takes the recorded (class, event, key) events since the last call.
    pub fn take_event_log(&mut self) -> Vec<(u32, &'static str, Bytes)> {
        std::mem::take(&mut self.event_log)
    }

    /// The key's hash prefix within this shard (its sort position).
    #[inline]
    pub fn ord_of(&self, key: &[u8]) -> u32 {
        let h = self.hasher.hash_one(key);
        ((h << self.shard_bits) >> 32) as u32
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Keys with a TTL.
    pub fn volatile_len(&self) -> usize {
        self.volatile
    }

    // ---- slab -----------------------------------------------------------

    fn alloc_obj(&mut self, o: Obj) -> u32 {
        if let Some(i) = self.free_objs.pop() {
            if let Some(slot) = self.objs.get_mut(i as usize) {
                *slot = Some(o);
            }
            i
        } else {
            self.objs.push(Some(o)) as u32
        }
    }

    fn free_obj(&mut self, i: u32) -> Option<Obj> {
        let o = self.objs.get_mut(i as usize)?.take();
        self.free_objs.push(i);
        if self.free_objs.len() == self.objs.len() {
            // Everything is free: give the slab's memory back.
            self.objs = Slab::default();
            self.free_objs = ChunkVec::default();
        }
        o
    }

    // ---- expiry index ---------------------------------------------------

    fn idx_add(&mut self, when: u64, ord: u32) {
        *self.expires.entry((when, ord)).or_insert(0) += 1;
        self.volatile += 1;
    }

    fn idx_del(&mut self, when: u64, ord: u32) {
        if let Some(c) = self.expires.get_mut(&(when, ord)) {
            *c -= 1;
            if *c == 0 {
                self.expires.remove(&(when, ord));
            }
            self.volatile = self.volatile.saturating_sub(1);
        }
    }

    // ---- WATCH ------------------------------------------------------------

    /// Registers `flag` as watching `key`.
    pub fn watch(&mut self, key: &[u8], flag: &Arc<AtomicBool>) {
        let v = self.watchers.entry(key.into()).or_default();
        v.retain(|w| w.strong_count() > 0);
        v.push(Arc::downgrade(flag));
    }

    /// Removes `flag` (and any dead registration) from `key`.
    pub fn unwatch(&mut self, key: &[u8], flag: &Arc<AtomicBool>) {
        if let Some(v) = self.watchers.get_mut(key) {
            v.retain(|w| w.strong_count() > 0 && !std::ptr::eq(w.as_ptr(), Arc::as_ptr(flag)));
            if v.is_empty() {
                self.watchers.remove(key);
            }
        }
    }

    /// Marks every transaction watching `key` as failed, and (while some
    /// client uses CLIENT TRACKING) logs the key for invalidation.
    #[inline]
    pub fn touch(&mut self, key: &[u8]) {
        crate::server::tracking::note_modified(key);
        if self.watchers.is_empty() {
            return;
        }
        if let Some(v) = self.watchers.get(key) {
            for w in v {
                if let Some(f) = w.upgrade() {
                    f.store(true, Ordering::Release);
                }
            }
        }
    }

    /// Whether `key` has an entry (live or not yet reclaimed), without
    /// expiring it.
    fn has_entry(&self, key: &[u8]) -> bool {
        self.table.find(self.ord_of(key), key).is_some()
    }

    /// Before this shard's contents are emptied or replaced (FLUSHDB,
    /// FLUSHALL, SWAPDB): marks the watchers of keys that exist here or, for
    /// SWAPDB, in `incoming` (the contents about to take their place). As in
    /// Redis, a watched key that exists on neither side is not touched.
    pub fn touch_present(&mut self, incoming: Option<&Shard>) {
        if self.watchers.is_empty() {
            return;
        }
        for (key, v) in &self.watchers {
            if self.has_entry(key) || incoming.is_some_and(|o| o.has_entry(key)) {
                for w in v {
                    if let Some(f) = w.upgrade() {
                        f.store(true, Ordering::Release);
                    }
                }
            }
        }
    }

    /// The keys some transaction watches in this shard.
    pub fn watched_keys(&self) -> impl Iterator<Item = &[u8]> {
        self.watchers.keys().map(|k| &k[..])
    }

    /// Exchanges the watcher registrations of two shards (SWAPDB swaps the
    /// data but watches stay with their database).
    pub fn swap_watchers(&mut self, other: &mut Shard) {
        std::mem::swap(&mut self.watchers, &mut other.watchers);
    }

    // ---- lookup ---------------------------------------------------------

    /// Position of a live key, expiring it lazily if its deadline passed.
    fn find_live(&mut self, key: &[u8], now: u64) -> Option<usize> {
        self.find_live_in(key, now, false)
    }

    /// [`Self::find_live`] for a lookup that may create the key: an expired
    /// entry is removed even under CLIENT PAUSE (the new one replaces it).
    fn find_live_in(&mut self, key: &[u8], now: u64, creating: bool) -> Option<usize> {
        let ord = self.ord_of(key);
        let pos = self.table.find(ord, key)?;
        let e = self.table.get(pos)?;
        if let Some(at) = e.expire() {
            if crate::storage::already_expired(at, now) {
                // Unless a write recreates it, it reads as gone but stays
                // (see `expired_keys_stay`).
                if !creating && expired_keys_stay(now) {
                    return None;
                }
                if recording(crate::config::notify::EXPIRED) {
                    self.event_log.push((
                        crate::config::notify::EXPIRED,
                        "expired",
                        Bytes::copy_from_slice(key),
                    ));
                }
                if let Some((_, Some(obj))) = self.remove_pos(pos) {
                    crate::storage::lazyfree::free_expired(obj);
                }
                self.stats.expired += 1;
                return None;
            }
        }
        Some(pos)
    }

    /// A writable replica's own key: removed if its deadline passed (as a
    /// primary's expiry would); returns its deadline if it stays, `None`
    /// when it is gone or has none.
    pub fn reap_own_key(&mut self, key: &[u8], now: u64) -> Option<u64> {
        let pos = self.find_live_in(key, now, true)?;
        self.table.get(pos)?.expire()
    }

    fn value_at(&self, pos: usize) -> Option<ValueRef<'_>> {
        let e = self.table.get(pos)?;
        Some(match e.kind() {
            KIND_EMBSTR => ValueRef::Str(e.embstr()),
            KIND_INT => ValueRef::Int(e.int()),
            _ => ValueRef::Obj(self.objs.get(e.obj_index() as usize)?.as_ref()?),
        })
    }

    /// Read lookup: counts a keyspace hit or miss and refreshes the LRU clock.
    pub fn get(&mut self, key: &[u8], now: u64) -> Option<ValueRef<'_>> {
        match self.find_live(key, now) {
            Some(pos) => {
                self.stats.hits += 1;
                if let Some(e) = self.table.get_mut(pos) {
                    if let Some(m) = access::accessed(e.lru(), now) {
                        e.set_lru(m);
                    }
                }
                self.value_at(pos)
            }
            None => {
                self.stats.misses += 1;
                if recording(crate::config::notify::KEY_MISS) {
                    self.event_log.push((
                        crate::config::notify::KEY_MISS,
                        "keymiss",
                        Bytes::copy_from_slice(key),
                    ));
                }
                None
            }
        }
    }

    /// Lookup without touching statistics or the LRU clock (TYPE-like
    /// introspection, write paths).
    pub fn peek(&mut self, key: &[u8], now: u64) -> Option<ValueRef<'_>> {
        let pos = self.find_live(key, now)?;
        self.value_at(pos)
    }

    /// Lookup that neither expires nor counts anything: an entry past its
    /// deadline is still returned (DEBUG OBJECT, as Redis's dictFind).
    pub fn peek_stored(&self, key: &[u8]) -> Option<ValueRef<'_>> {
        let pos = self.table.find(self.ord_of(key), key)?;
        self.value_at(pos)
    }

    pub fn contains(&mut self, key: &[u8], now: u64) -> bool {
        self.find_live(key, now).is_some()
    }

    /// The key's deadline: `None` if the key is missing, `Some(None)` if it
    /// has no TTL.
    pub fn expire_of(&mut self, key: &[u8], now: u64) -> Option<Option<u64>> {
        let pos = self.find_live(key, now)?;
        Some(self.table.get(pos)?.expire())
    }

    /// The entry's LRU clock value (OBJECT IDLETIME).
    /// The access clock of an entry, expired or not (DEBUG OBJECT).
    pub fn lru_stored(&self, key: &[u8]) -> Option<u32> {
        let pos = self.table.find(self.ord_of(key), key)?;
        Some(self.table.get(pos)?.lru())
    }

    pub fn lru_of(&mut self, key: &[u8], now: u64) -> Option<u32> {
        let pos = self.find_live(key, now)?;
        Some(self.table.get(pos)?.lru())
    }

    /// Mutable access to an out-of-line object.
    pub fn obj_mut(&mut self, key: &[u8], now: u64) -> Option<&mut Obj> {
        self.touch(key);
        self.obj_mut_quiet(key, now)
    }

    /// [`Shard::obj_mut`] for a change of representation only: watchers
    /// and tracking clients are not told (Redis's encoding conversions
    /// do not signal the key).
    pub fn obj_mut_quiet(&mut self, key: &[u8], now: u64) -> Option<&mut Obj> {
        let pos = self.find_live(key, now)?;
        let e = self.table.get(pos)?;
        if e.kind() != KIND_OBJ {
            return None;
        }
        let i = e.obj_index() as usize;
        self.preserve(pos);
        self.objs.get_mut(i)?.as_mut()
    }

    /// Mutable access to the object at `key`, inserting `make()` (with no
    /// TTL) when the key is missing. `None` if the key holds an inline
    /// string or integer (callers answer WRONGTYPE; a raw string comes back
    /// as `Obj::Raw` for the caller's type check).
    pub fn obj_or_insert(
        &mut self,
        key: &[u8],
        now: u64,
        make: impl FnOnce() -> Obj,
    ) -> Option<&mut Obj> {
        if self.find_live(key, now).is_none() {
            self.set(key, Value::Obj(make()), Ttl::Clear, now);
        }
        self.obj_mut(key, now)
    }

    /// Mutable access to a string as raw bytes, converting inline and
    /// integer encodings to raw. `Err(())` if the key holds another type.
    pub fn string_mut(&mut self, key: &[u8], now: u64) -> Option<Result<&mut Vec<u8>, ()>> {
        self.touch(key);
        self.string_mut_quiet(key, now)
    }

    /// [`Shard::string_mut`] without telling watchers and tracking clients:
    /// for converting a string to raw when nothing else changes (as Redis
    /// unshares a string before SETBIT looks at it).
    pub fn string_mut_quiet(&mut self, key: &[u8], now: u64) -> Option<Result<&mut Vec<u8>, ()>> {
        let pos = self.find_live(key, now)?;
        self.preserve(pos);
        let e = self.table.get(pos)?;
        let idx = match e.kind() {
            KIND_OBJ => e.obj_index(),
            _ => {
                let bytes = match e.kind() {
                    KIND_INT => itoa::Buffer::new().format(e.int()).as_bytes().to_vec(),
                    _ => e.embstr().to_vec(),
                };
                let (ord, expire, lru) = (e.ord(), e.expire(), e.lru());
                let key = e.key().to_vec();
                let i = self.alloc_obj(Obj::raw(bytes));
                let mut ne = Entry::new(ord, &key, Payload::Obj(i), expire, lru);
                ne.set_snap_mark(self.mark);
                self.table.replace_at(pos, ne);
                i
            }
        };
        match self.objs.get_mut(idx as usize)?.as_mut()? {
            Obj::Raw(v) => Some(Ok(&mut **v)),
            #[allow(unreachable_patterns)]
            _ => Some(Err(())),
        }
    }

    // ---- writes ---------------------------------------------------------

    fn payload_for(&mut self, v: Value) -> PayloadOwned {
        let (b, try_int) = match v {
            Value::Int(n) => return PayloadOwned::Int(n),
            Value::Obj(o) => return PayloadOwned::Obj(self.alloc_obj(o)),
            Value::Str(b) => (b, true),
            Value::Text(b) => (b, false),
        };
        if let Some(n) = try_int.then(|| as_canonical_int(&b)).flatten() {
            PayloadOwned::Int(n)
        } else if b.len() <= INLINE_MAX {
            PayloadOwned::Embstr(b)
        } else {
            PayloadOwned::Obj(self.alloc_obj(Obj::raw(b.to_vec())))
        }
    }

    /// Sets `key` to `v`, replacing any value. Returns true if the key existed.
    pub fn set(&mut self, key: &[u8], v: Value, ttl: Ttl, now: u64) -> bool {
        self.touch(key);
        let ord = self.ord_of(key);
        let existing = self.find_live_in(key, now, true);
        let mut keep = None;
        let mut old_meta = None;
        if let Some(pos) = existing {
            self.preserve(pos);
            // Overwrite in place: release the old value's object and index
            // record, then replace the slot (no second lookup, no shifting).
            if let Some(e) = self.table.get(pos) {
                let (old_exp, old_obj) =
                    (e.expire(), (e.kind() == KIND_OBJ).then(|| e.obj_index()));
                if ttl == Ttl::Keep {
                    keep = old_exp;
                }
                old_meta = Some(e.lru());
                if let Some(at) = old_exp {
                    self.idx_del(at, ord);
                }
                if let Some(obj) = old_obj.and_then(|i| self.free_obj(i)) {
                    crate::storage::lazyfree::free_replaced(obj);
                }
            }
        }
        let expire = match ttl {
            Ttl::Keep => keep,
            Ttl::Clear => None,
            Ttl::At(t) => Some(t),
        };
        let p = self.payload_for(v);
        // An overwritten key keeps its access frequency under LFU (as Redis).
        let lru = match old_meta {
            Some(m) if access::lfu_mode() => access::on_access(m, now),
            _ => access::initial(now),
        };
        let mut e = match &p {
            PayloadOwned::Int(n) => Entry::new(ord, key, Payload::Int(*n), expire, lru),
            PayloadOwned::Embstr(b) => Entry::new(ord, key, Payload::Embstr(b), expire, lru),
            PayloadOwned::Obj(i) => Entry::new(ord, key, Payload::Obj(*i), expire, lru),
        };
        e.set_snap_mark(self.mark);
        if let Some(at) = expire {
            self.idx_add(at, ord);
        }
        match existing {
            Some(pos) => {
                self.table.replace_at(pos, e);
                true
            }
            None => {
                self.table.insert(e);
                if recording(crate::config::notify::NEW) {
                    self.event_log.push((
                        crate::config::notify::NEW,
                        "new",
                        Bytes::copy_from_slice(key),
                    ));
                }
                false
            }
        }
    }

    /// Removes the entry at `pos`, freeing its object and index entry.
    fn remove_pos(&mut self, pos: usize) -> Option<(Entry, Option<Obj>)> {
        self.preserve(pos);
        let e = self.table.remove_at(pos)?;
        self.touch(e.key());
        if let Some(at) = e.expire() {
            self.idx_del(at, e.ord());
        }
        let obj = if e.kind() == KIND_OBJ {
            self.free_obj(e.obj_index())
        } else {
            None
        };
        Some((e, obj))
    }

    /// Deletes a live key. Returns true if it existed.
    pub fn delete(&mut self, key: &[u8], now: u64) -> bool {
        self.delete_with(key, now, false)
    }

    /// [`Self::delete`]; with `lazy`, a big value is freed in the background
    /// (UNLINK, `lazyfree-lazy-user-del`).
    pub fn delete_with(&mut self, key: &[u8], now: u64, lazy: bool) -> bool {
        let Some(pos) = self.find_live(key, now) else {
            return false;
        };
        if let Some((_, Some(obj))) = self.remove_pos(pos) {
            if lazy {
                crate::storage::lazyfree::free_obj(obj);
            }
        }
        self.table.shrink_to_fit_if_sparse();
        true
    }

    /// Removes a live key and returns its value and deadline (RENAME, MOVE,
    /// GETDEL).
    pub fn take(&mut self, key: &[u8], now: u64) -> Option<(Value, Option<u64>)> {
        let pos = self.find_live(key, now)?;
        let (e, obj) = self.remove_pos(pos)?;
        let v = match e.kind() {
            KIND_INT => Value::Int(e.int()),
            KIND_EMBSTR => Value::Text(Bytes::copy_from_slice(e.embstr())),
            _ => match obj {
                Some(o) => Value::Obj(o),
                None => return None,
            },
        };
        Some((v, e.expire()))
    }

    /// Sets or clears the deadline of a live key. Returns false if missing.
    pub fn set_expire(&mut self, key: &[u8], at: Option<u64>, now: u64) -> bool {
        self.touch(key);
        let Some(pos) = self.find_live(key, now) else {
            return false;
        };
        let Some(e) = self.table.get(pos) else {
            return false;
        };
        let old = e.expire();
        if old == at {
            return true;
        }
        self.preserve(pos);
        let Some(e) = self.table.get(pos) else {
            return false;
        };
        let ord = e.ord();
        let ne = e.with_expire(at);
        if let Some(o) = old {
            self.idx_del(o, ord);
        }
        if let Some(n) = at {
            self.idx_add(n, ord);
        }
        self.table.replace_at(pos, ne);
        true
    }

    /// Is a versioned snapshot walking this shard?
    pub fn in_capture(&self) -> bool {
        self.capture.is_some()
    }

    /// Exchanges this shard's data (entries, values, the expiry index) with
    /// `other`'s, a shard of the same shape; watches, statistics and the
    /// event log stay where they are, and watched keys present on either
    /// side are touched. Neither shard may be capturing a snapshot.
    pub fn swap_data(&mut self, other: &mut Shard) {
        debug_assert!(self.capture.is_none() && other.capture.is_none());
        self.touch_present(Some(other));
        std::mem::swap(&mut self.table, &mut other.table);
        std::mem::swap(&mut self.objs, &mut other.objs);
        std::mem::swap(&mut self.free_objs, &mut other.free_objs);
        std::mem::swap(&mut self.expires, &mut other.expires);
        std::mem::swap(&mut self.volatile, &mut other.volatile);
        std::mem::swap(&mut self.mark, &mut other.mark);
    }

    /// Removes every key.
    pub fn clear(&mut self) {
        self.touch_present(None);
        if self.detach_for_capture() {
            return;
        }
        self.table.clear();
        self.objs = Slab::default();
        self.free_objs = ChunkVec::default();
        self.expires.clear();
        self.volatile = 0;
    }

    /// [`Self::clear`]; with `lazy`, the old contents are freed by the
    /// background thread (FLUSHALL/FLUSHDB ASYNC), counted as one object
    /// per key.
    pub fn flush(&mut self, lazy: bool) {
        if !lazy {
            self.clear();
            return;
        }
        self.touch_present(None);
        let keys = self.table.len() as u64;
        if keys == 0 || self.detach_for_capture() {
            return;
        }
        let old = (
            std::mem::take(&mut self.table),
            std::mem::take(&mut self.objs),
            std::mem::take(&mut self.free_objs),
            std::mem::take(&mut self.expires),
        );
        self.volatile = 0;
        crate::storage::lazyfree::defer(old, keys);
    }

    // ---- iteration --------------------------------------------------------

    /// Visits keys from `cursor` (an ord) on; see [`Table::scan_bounded`].
    /// Logically expired keys are skipped (and deleted afterwards).
    pub fn scan<F: FnMut(&[u8], ValueRef<'_>)>(
        &mut self,
        cursor: u32,
        count: usize,
        now: u64,
        mut f: F,
    ) -> Option<u32> {
        let mut expired: Vec<Vec<u8>> = Vec::new();
        let objs = &self.objs;
        let next = self
            .table
            .scan_bounded(cursor, count, count.saturating_mul(10).max(100), |e| {
                if e.expire().is_some_and(|at| at <= now) {
                    expired.push(e.key().to_vec());
                    return;
                }
                let v = match e.kind() {
                    KIND_EMBSTR => ValueRef::Str(e.embstr()),
                    KIND_INT => ValueRef::Int(e.int()),
                    _ => match objs.get(e.obj_index() as usize).and_then(|o| o.as_ref()) {
                        Some(o) => ValueRef::Obj(o),
                        None => return,
                    },
                };
                f(e.key(), v);
            });
        for k in expired {
            if self.find_live(&k, now).is_none() {
                // find_live removed it and counted the expiry
            }
        }
        next
    }

    /// Visits every entry not expired at `now` with its value, deadline and
    /// access metadata, without changing anything (snapshots, DEBUG
    /// DIGEST-like walks). Expired entries are skipped, not removed: this
    /// runs under a shared view (e.g. in a forked snapshot child).
    pub fn for_each_entry<F: FnMut(&[u8], ValueRef<'_>, Option<u64>, u32)>(
        &self,
        now: u64,
        mut f: F,
    ) {
        // Entries this many slots ahead are prefetched (see Entry::prefetch).
        const AHEAD: usize = 16;
        for pos in 0..self.table.slot_len() {
            if let Some(a) = self.table.get(pos + AHEAD) {
                a.prefetch();
            }
            let Some(e) = self.table.get(pos) else {
                continue;
            };
            let exp = e.expire();
            if exp.is_some_and(|at| at <= now) {
                continue;
            }
            let v = match e.kind() {
                KIND_EMBSTR => ValueRef::Str(e.embstr()),
                KIND_INT => ValueRef::Int(e.int()),
                _ => match self
                    .objs
                    .get(e.obj_index() as usize)
                    .and_then(|o| o.as_ref())
                {
                    Some(o) => ValueRef::Obj(o),
                    None => continue,
                },
            };
            f(e.key(), v, exp, e.lru());
        }
    }

    /// Overwrites a live key's access metadata (RESTORE IDLETIME/FREQ, RDB
    /// loading); see `access::meta_from_idle` / `meta_from_freq`.
    pub fn set_meta(&mut self, key: &[u8], meta: u32, now: u64) -> bool {
        let Some(pos) = self.find_live(key, now) else {
            return false;
        };
        match self.table.get_mut(pos) {
            Some(e) => {
                e.set_lru(meta);
                true
            }
            None => false,
        }
    }

    /// Visits every live key (KEYS). Expired keys are skipped and removed.
    pub fn for_each_key<F: FnMut(&[u8])>(&mut self, now: u64, mut f: F) {
        let mut expired: Vec<Vec<u8>> = Vec::new();
        for e in self.table.iter() {
            if e.expire().is_some_and(|at| at <= now) {
                expired.push(e.key().to_vec());
            } else {
                f(e.key());
            }
        }
        for k in expired {
            let _ = self.find_live(&k, now);
        }
    }

    /// A random live key (RANDOMKEY), trying a bounded number of samples.
    pub fn random_key(&mut self, rng: &mut impl FnMut() -> u64, now: u64) -> Option<Bytes> {
        for _ in 0..32 {
            let pos = self.table.random_pos(rng())?;
            let e = self.table.get(pos)?;
            match e.expire() {
                Some(at) if at <= now => {
                    // Deleted as any lookup deletes an expired key: with
                    // its `expired` event (notification, propagated DEL).
                    if expired_keys_stay(now) {
                        continue;
                    }
                    if recording(crate::config::notify::EXPIRED) {
                        let key = Bytes::copy_from_slice(e.key());
                        self.event_log
                            .push((crate::config::notify::EXPIRED, "expired", key));
                    }
                    if let Some((_, Some(obj))) = self.remove_pos(pos) {
                        crate::storage::lazyfree::free_expired(obj);
                    }
                    self.stats.expired += 1;
                }
                _ => return Some(Bytes::copy_from_slice(e.key())),
            }
        }
        None
    }

    /// The keyspace table's nominal capacity, and whether it is growing
    /// (DEBUG HTSTATS).
    pub fn table_stats(&self) -> (usize, bool) {
        (self.table.capacity(), self.table.is_growing())
    }

    /// Moves up to `n` entries of a keyspace table that is growing into
    /// its new layout (`activerehashing`: the growth also progresses
    /// without inserts, and the old layout's memory is released). True
    /// while it is still growing.
    pub fn grow_step(&mut self, n: usize) -> bool {
        self.table.migrate_step(n)
    }

    /// Active expiry: removes up to `max` keys whose deadline is `<= now`, in
    /// deadline order. Returns the keys removed (for propagation as DEL)
    /// and their values that own allocations, for the caller to free with
    /// [`crate::storage::lazyfree::free_expired`] once it has released
    /// this shard: freeing a big value takes time that grows with its
    /// size, and other clients of the shard need not wait for it.
    pub fn expire_due(&mut self, now: u64, max: usize) -> (Vec<Bytes>, Vec<Obj>) {
        let mut removed = Vec::new();
        let mut values = Vec::new();
        while removed.len() < max {
            let Some((&(when, ord), _)) = self.expires.first_key_value() else {
                break;
            };
            if when > now {
                break;
            }
            let pos = self
                .table
                .positions_with_ord(ord)
                .find(|&p| self.table.get(p).is_some_and(|e| e.expire() == Some(when)));
            match pos {
                Some(p) => {
                    if let Some((e, obj)) = self.remove_pos(p) {
                        values.extend(obj);
                        removed.push(Bytes::copy_from_slice(e.key()));
                        self.stats.expired += 1;
                        self.stats.expired_stale += 1;
                    }
                }
                None => {
                    // Index out of sync (should not happen): drop the record.
                    if let Some(c) = self.expires.remove(&(when, ord)) {
                        self.volatile = self.volatile.saturating_sub(c as usize);
                    }
                }
            }
        }
        if !removed.is_empty() {
            self.table.shrink_to_fit_if_sparse();
        }
        (removed, values)
    }

    // ---- eviction sampling ------------------------------------------------

    /// Up to `n` random live keys with their access metadata and deadline,
    /// only keys with a TTL when `volatile_only` (eviction candidates).
    pub fn sample(
        &mut self,
        n: usize,
        volatile_only: bool,
        now: u64,
        rng: &mut impl FnMut() -> u64,
    ) -> Vec<(Bytes, u32, Option<u64>)> {
        let mut out = Vec::with_capacity(n);
        if self.table.is_empty() || (volatile_only && self.volatile == 0) {
            return out;
        }
        let through_index = volatile_only && self.volatile * 4 < self.table.len();
        for _ in 0..n * 4 {
            if out.len() >= n {
                break;
            }
            let pos = if through_index {
                // Few keys have a TTL: pick a random deadline in the index's
                // span and take the first record at or after it.
                let (Some((&(lo, _), _)), Some((&(hi, _), _))) = (
                    self.expires.first_key_value(),
                    self.expires.last_key_value(),
                ) else {
                    break;
                };
                let d = lo + rng() % (hi - lo + 1);
                let Some((&(when, ord), _)) = self.expires.range((d, 0)..).next() else {
                    continue;
                };
                self.table
                    .positions_with_ord(ord)
                    .find(|&p| self.table.get(p).is_some_and(|e| e.expire() == Some(when)))
            } else {
                self.table.random_pos(rng())
            };
            let Some(e) = pos.and_then(|p| self.table.get(p)) else {
                continue;
            };
            let exp = e.expire();
            if (volatile_only && exp.is_none()) || exp.is_some_and(|at| at <= now) {
                continue;
            }
            if out
                .iter()
                .any(|(k, _, _): &(Bytes, u32, Option<u64>)| k[..] == *e.key())
            {
                continue;
            }
            out.push((Bytes::copy_from_slice(e.key()), e.lru(), exp));
        }
        out
    }

    /// The `n` live keys with the nearest deadlines (volatile-ttl).
    pub fn nearest_deadlines(&self, n: usize, now: u64) -> Vec<(Bytes, u64)> {
        let mut out = Vec::with_capacity(n);
        for (&(when, ord), _) in self.expires.range((now + 1, 0)..) {
            if out.len() >= n {
                break;
            }
            for p in self.table.positions_with_ord(ord) {
                if let Some(e) = self.table.get(p) {
                    if e.expire() == Some(when) && out.len() < n {
                        out.push((Bytes::copy_from_slice(e.key()), when));
                    }
                }
            }
        }
        out
    }

    /// Access metadata of a live key without touching it.
    pub fn meta_of(&mut self, key: &[u8], now: u64) -> Option<u32> {
        self.lru_of(key, now)
    }

    /// The nearest deadline in this shard, if any key has a TTL.
    pub fn next_deadline(&self) -> Option<u64> {
        self.expires.first_key_value().map(|(&(w, _), _)| w)
    }

    /// Approximate heap bytes of a key's entry and value (MEMORY USAGE).
    pub fn memory_of(&mut self, key: &[u8], now: u64) -> Option<usize> {
        let pos = self.find_live(key, now)?;
        let e = self.table.get(pos)?;
        let mut n = std::mem::size_of::<Entry>() + e.blob_len();
        if e.kind() == KIND_OBJ {
            if let Some(Some(o)) = self.objs.get(e.obj_index() as usize) {
                n += o.memory_usage();
            }
        }
        Some(n)
    }
}

enum PayloadOwned {
    Int(i64),
    Embstr(Bytes),
    Obj(u32),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard() -> Shard {
        Shard::new(FixedState::with_seed(1), 4)
    }

    #[test]
    fn set_get_delete_and_encodings() {
        let mut s = shard();
        s.set(b"a", Value::Str(Bytes::from("hello")), Ttl::Clear, 0);
        s.set(b"n", Value::Str(Bytes::from("123")), Ttl::Clear, 0);
        s.set(b"z", Value::Str(Bytes::from("0123")), Ttl::Clear, 0);
        s.set(
            b"big",
            Value::Str(Bytes::from(vec![b'x'; 100])),
            Ttl::Clear,
            0,
        );
        assert_eq!(s.get(b"a", 0).map(|v| v.encoding()), Some("embstr"));
        assert_eq!(s.get(b"n", 0).map(|v| v.encoding()), Some("int"));
        assert_eq!(s.get(b"z", 0).map(|v| v.encoding()), Some("embstr"));
        assert_eq!(s.get(b"big", 0).map(|v| v.encoding()), Some("raw"));
        assert_eq!(s.len(), 4);
        assert!(s.delete(b"big", 0));
        assert!(!s.delete(b"big", 0));
        assert_eq!(s.len(), 3);
        assert_eq!(s.stats.hits, 4);
    }

    #[test]
    fn lazy_and_active_expiry() {
        let mut s = shard();
        for i in 0..100 {
            let k = format!("k{i}");
            s.set(k.as_bytes(), Value::Int(i), Ttl::At(1000 + i as u64), 0);
        }
        assert_eq!(s.volatile_len(), 100);
        assert!(s.get(b"k0", 1000).is_none());
        assert_eq!(s.len(), 99);
        let (gone, _) = s.expire_due(1049, 1000);
        assert_eq!(gone.len(), 49);
        assert_eq!(s.len(), 50);
        assert_eq!(s.volatile_len(), 50);
        assert!(s.set_expire(b"k99", None, 0));
        assert_eq!(s.volatile_len(), 49);
        assert_eq!(s.expire_due(u64::MAX, 1000).0.len(), 49);
        assert_eq!(s.len(), 1);
        assert_eq!(s.volatile_len(), 0);
    }

    #[test]
    fn string_mut_converts_to_raw() {
        let mut s = shard();
        s.set(b"k", Value::Int(5), Ttl::At(99), 0);
        match s.string_mut(b"k", 0) {
            Some(Ok(v)) => v.extend_from_slice(b"00"),
            _ => panic!("expected a string"),
        }
        let v = s
            .get(b"k", 0)
            .and_then(|v| v.as_string().map(|s| s.to_vec()));
        assert_eq!(v, Some(b"500".to_vec()));
        assert_eq!(s.expire_of(b"k", 0), Some(Some(99)));
        let (v, exp) = s.take(b"k", 0).unwrap();
        assert_eq!(v, Value::Obj(Obj::raw(b"500".to_vec())));
        assert_eq!(exp, Some(99));
        assert_eq!(s.volatile_len(), 0);
    }
}
