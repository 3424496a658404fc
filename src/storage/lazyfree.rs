//! Freeing big values off the command path (UNLINK, FLUSHALL ASYNC,
//! `lazyfree-lazy-user-del` / `-user-flush`): dropping a collection of a
//! million elements takes tens of milliseconds, which a client would wait
//! for while its shard stays locked. Values whose free effort exceeds
//! Redis's threshold (64 allocations: list nodes, hashtable or skiplist
//! elements, stream blocks and group entries) go to one background thread
//! instead; small ones are freed at once, which is cheaper than a hand-off.
//! INFO shows `lazyfree_pending_objects` and `lazyfreed_objects` as Redis
//! does.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::OnceLock;

use crate::storage::value::Obj;

/// Redis's LAZYFREE_THRESHOLD.
pub const THRESHOLD: usize = 64;

static PENDING: AtomicU64 = AtomicU64::new(0);
/// `lazyfree-lazy-expire` and `lazyfree-lazy-server-del`, mirrored here so
/// storage can consult them (the server syncs them every cron tick).
static LAZY_EXPIRE: AtomicBool = AtomicBool::new(false);
static LAZY_SERVER_DEL: AtomicBool = AtomicBool::new(false);
static FREED: AtomicU64 = AtomicU64::new(0);

type Garbage = (Box<dyn Send>, u64);

fn sender() -> Option<&'static Sender<Garbage>> {
    static TX: OnceLock<Option<Sender<Garbage>>> = OnceLock::new();
    TX.get_or_init(|| {
        let (tx, rx) = channel::<Garbage>();
        std::thread::Builder::new()
            .name("lazyfree".into())
            .spawn(move || {
                for (item, n) in rx {
                    drop(item);
                    PENDING.fetch_sub(n, Ordering::Relaxed);
                    FREED.fetch_add(n, Ordering::Relaxed);
                }
            })
            .ok()
            .map(|_| tx)
    })
    .as_ref()
}

/// Frees `item` (counting as `objects` objects) on the background thread;
/// in place if that thread could not be started.
pub fn defer<T: Send + 'static>(item: T, objects: u64) {
    match sender() {
        Some(tx) => {
            PENDING.fetch_add(objects, Ordering::Relaxed);
            if let Err(e) = tx.send((Box::new(item), objects)) {
                PENDING.fetch_sub(objects, Ordering::Relaxed);
                drop(e);
            }
        }
        None => drop(item),
    }
}

/// Redis's lazyfreeGetFreeEffort: roughly how many allocations freeing
/// the value takes.
pub fn effort(obj: &Obj) -> usize {
    match obj {
        Obj::Raw(_) => 1,
        Obj::List(l) => l.node_count(),
        Obj::Set(s) if s.encoding() == "hashtable" => s.len(),
        Obj::Hash(h) if h.encoding() == "hashtable" => h.len(),
        Obj::ZSet(z) if z.encoding() == "skiplist" => z.len(),
        Obj::Stream(s) => s.free_effort(),
        _ => 1,
    }
}

/// Frees a deleted value: in the background when it is big.
pub fn free_obj(obj: Obj) {
    if effort(&obj) > THRESHOLD {
        defer(obj, 1);
    }
}

/// Mirrors `lazyfree-lazy-expire` / `lazyfree-lazy-server-del`.
pub fn set_modes(expire: bool, server_del: bool) {
    LAZY_EXPIRE.store(expire, Ordering::Relaxed);
    LAZY_SERVER_DEL.store(server_del, Ordering::Relaxed);
}

/// Frees the value of a key that expired (lazily or by the active cycle):
/// in the background when big and `lazyfree-lazy-expire` is on.
pub fn free_expired(obj: Obj) {
    if LAZY_EXPIRE.load(Ordering::Relaxed) {
        free_obj(obj);
    }
}

/// Frees a value the server itself replaced (SET over an existing key,
/// RENAME onto one, …): in the background when big and
/// `lazyfree-lazy-server-del` is on.
pub fn free_replaced(obj: Obj) {
    if LAZY_SERVER_DEL.load(Ordering::Relaxed) {
        free_obj(obj);
    }
}

/// Objects waiting for the background thread (INFO lazyfree_pending_objects).
pub fn pending() -> u64 {
    PENDING.load(Ordering::Relaxed)
}

/// Objects freed in the background since the last CONFIG RESETSTAT.
pub fn freed() -> u64 {
    FREED.load(Ordering::Relaxed)
}

pub fn reset_stats() {
    FREED.store(0, Ordering::Relaxed);
}
