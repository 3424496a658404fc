//! The keyspace: `databases` logical databases, each split into a power of
//! two of shards behind their own mutex. No global lock: a command locks the
//! shards its keys hash to (see `commands::dispatch`), in ascending order.
//!
//! Knows nothing of RESP or the network.

pub mod access;
pub mod chunked;
pub mod cowmap;
pub mod entry;
pub mod hash;
pub mod hindex;
pub mod intset;
pub mod lazyfree;
pub mod list;
pub mod set;
pub mod shard;
pub mod shared;
pub mod stream;
pub mod table;
pub mod value;
pub mod zset;

use std::hash::BuildHasher;

use foldhash::fast::FixedState;
use parking_lot::Mutex;

pub use shard::{Shard, Ttl};

/// While an AOF is replayed no key counts as expired, and a deadline in the
/// past is stored rather than deleting the key (as Redis while loading):
/// the commands that follow in the file were recorded while the key was
/// alive, so `RPUSH l a`, `PEXPIREAT l <past>`, `RPUSH l b` must load as
/// one list that then expires, not as a new list `[b]` without a TTL.
static EXPIRY_SUSPENDED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// This server is a replica: a key past its deadline reads as absent to
/// clients but stays until the primary's DEL (or a write that recreates
/// it) removes it, as Redis's replicas keep them.
static REPLICA_KEEPS_EXPIRED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Turns the replica's handling of expired keys on or off.
pub fn set_replica_mode(on: bool) {
    REPLICA_KEEPS_EXPIRED.store(on, std::sync::atomic::Ordering::SeqCst);
}

/// Does an expired key stay in place when found (see
/// [`set_replica_mode`])?
pub fn replica_keeps_expired() -> bool {
    REPLICA_KEEPS_EXPIRED.load(std::sync::atomic::Ordering::Relaxed)
}

thread_local! {
    /// This thread applies its primary's stream (see [`apply_as_master`]).
    static MASTER_APPLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether expiry is suspended (an AOF replay is running, or this thread
/// applies the primary's stream on a replica).
pub fn expiry_suspended() -> bool {
    EXPIRY_SUSPENDED.load(std::sync::atomic::Ordering::Relaxed) || MASTER_APPLY.with(|m| m.get())
}

/// Suspends expiry on this thread until the guard is dropped: a replica
/// applying its primary's commands sees every key the primary still has
/// (expired or not by this machine's clock; the primary sends the DELs),
/// as Redis's replicas obey their master.
pub fn apply_as_master() -> MasterApply {
    MASTER_APPLY.with(|m| m.set(true));
    MasterApply(())
}

/// Ends [`apply_as_master`] when dropped.
pub struct MasterApply(());

impl Drop for MasterApply {
    fn drop(&mut self) {
        MASTER_APPLY.with(|m| m.set(false));
    }
}

/// Whether a deadline `at` has passed at `now` so that a command setting it
/// deletes the key instead (Redis's checkAlreadyExpired): never while an
/// AOF replays.
pub fn already_expired(at: u64, now: u64) -> bool {
    at <= now && !expiry_suspended()
}

/// Suspends expiry until the guard is dropped.
pub fn suspend_expiry() -> ExpirySuspension {
    EXPIRY_SUSPENDED.store(true, std::sync::atomic::Ordering::SeqCst);
    ExpirySuspension(())
}

/// Resumes expiry when dropped (see [`suspend_expiry`]).
pub struct ExpirySuspension(());

impl Drop for ExpirySuspension {
    fn drop(&mut self) {
        EXPIRY_SUSPENDED.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}
pub use value::{Obj, StrRef, Value, ValueRef};

/// One logical database.
pub struct Db {
    shards: Box<[Mutex<Shard>]>,
}

impl Db {
    pub fn shard(&self, i: usize) -> &Mutex<Shard> {
        &self.shards[i]
    }
    pub fn shards(&self) -> &[Mutex<Shard>] {
        &self.shards
    }
}

/// All databases.
pub struct Keyspace {
    dbs: Vec<Db>,
    shard_bits: u32,
    hasher: FixedState,
}

impl Keyspace {
    /// `shards` is rounded up to a power of two.
    pub fn new(databases: usize, shards: usize) -> Self {
        let shard_bits = shards.max(1).next_power_of_two().trailing_zeros();
        Self::shaped(
            databases.max(1),
            shard_bits,
            FixedState::with_seed(rand::random()),
        )
    }

    fn shaped(databases: usize, shard_bits: u32, hasher: FixedState) -> Self {
        let dbs = (0..databases)
            .map(|_| Db {
                shards: (0..1usize << shard_bits)
                    .map(|_| Mutex::new(Shard::new(hasher, shard_bits)))
                    .collect(),
            })
            .collect();
        Keyspace {
            dbs,
            shard_bits,
            hasher,
        }
    }

    pub fn num_dbs(&self) -> usize {
        self.dbs.len()
    }

    pub fn num_shards(&self) -> usize {
        1 << self.shard_bits
    }

    /// Every (db, shard) pair in the global lock order.
    pub fn all_shards(&self) -> impl Iterator<Item = (u32, u32)> + use<> {
        let shards = self.num_shards() as u32;
        (0..self.num_dbs() as u32).flat_map(move |d| (0..shards).map(move |s| (d, s)))
    }

    pub fn shard_bits(&self) -> u32 {
        self.shard_bits
    }

    /// Which shard `key` lives in.
    #[inline]
    pub fn shard_index(&self, key: &[u8]) -> usize {
        if self.shard_bits == 0 {
            return 0;
        }
        (self.hasher.hash_one(key) >> (64 - self.shard_bits)) as usize
    }

    pub fn db(&self, i: usize) -> Option<&Db> {
        self.dbs.get(i)
    }

    /// Removes every key of every database, one shard lock at a time
    /// (transactions watching present keys fail, as on FLUSHALL).
    pub fn clear_all(&self) {
        for d in &self.dbs {
            for sh in d.shards.iter() {
                sh.lock().clear();
            }
        }
    }

    /// An empty keyspace of the same shape (databases, shards, key
    /// hashing), to load a dataset into aside and then swap in whole
    /// ([`Keyspace::swap_data_with`]).
    pub fn empty_like(&self) -> Keyspace {
        Self::shaped(self.num_dbs(), self.shard_bits, self.hasher)
    }

    /// Exchanges the data of every shard with `other`'s (a keyspace from
    /// [`Keyspace::empty_like`] that no client reaches), holding every
    /// shard at once so no command sees part of each; WATCHed keys present
    /// on either side are touched, statistics and watches stay. Does
    /// nothing and returns false while a snapshot is capturing any shard
    /// (its walk must finish first).
    pub fn swap_data_with(&self, other: &Keyspace) -> bool {
        debug_assert!(other.num_dbs() == self.num_dbs() && other.shard_bits == self.shard_bits);
        // The global lock order: (db, shard) ascending.
        let mut live: Vec<_> = self
            .dbs
            .iter()
            .flat_map(|d| d.shards.iter().map(|s| s.lock()))
            .collect();
        if live.iter().any(|s| s.in_capture()) {
            return false;
        }
        for (l, o) in live
            .iter_mut()
            .zip(other.dbs.iter().flat_map(|d| d.shards.iter()))
        {
            l.swap_data(&mut o.lock());
        }
        true
    }

    /// Total keys in a database (locks each shard briefly).
    pub fn db_len(&self, db: usize) -> usize {
        self.dbs
            .get(db)
            .map(|d| d.shards.iter().map(|s| s.lock().len()).sum())
            .unwrap_or(0)
    }

    /// Total keys in every database.
    pub fn total_keys(&self) -> usize {
        (0..self.num_dbs()).map(|d| self.db_len(d)).sum()
    }
}
