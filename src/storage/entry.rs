//! The in-table representation of one key: 24 bytes in the table plus one
//! exact-size heap blob holding the key and, for small values, the value.
//!
//! Memory per key is a first-class goal (see design notes), so a string key
//! with a short value costs one allocation: no separate key allocation, no
//! object header, no per-key `Bytes` handle.
//!
//! | field | size | meaning |
//! |---|---|---|
//! | `ord` | u32 | hash prefix: the table's sort key and SCAN cursor unit |
//! | `meta` | u32 | bits 0–27 LRU clock / LFU data, bits 28–29 kind, bit 30 snapshot mark, bit 31 has-expire |
//! | `blob` | Box<[u8]> | `[expire: u64 LE if has-expire][key len: LEB128][key][payload]` |
//!
//! Payload by kind: `EMBSTR` the string bytes (≤ [`INLINE_MAX`]); `INT` an
//! i64 LE (strings that are canonical integers); `OBJ` a u32 LE index into the
//! shard's object slab, where raw (long or mutated) strings and collections
//! live.

use crate::storage::table::TableEntry;

/// Longest string OBJECT ENCODING reports as "embstr" (Redis's 44).
pub const EMBSTR_MAX: usize = 44;

/// Longest string stored inline in the entry's blob. Longer than Redis's
/// embstr on purpose: a mid-size value (a few hundred bytes of JSON) then
/// costs one allocation instead of a blob, a slab slot and a buffer, which
/// is what decides how many keys fit under maxmemory. Inline strings longer
/// than [`EMBSTR_MAX`] report "raw", as Redis's do.
pub const INLINE_MAX: usize = 1024;

pub const KIND_EMBSTR: u32 = 0;
pub const KIND_INT: u32 = 1;
pub const KIND_OBJ: u32 = 2;

const LRU_MASK: u32 = crate::storage::access::META_MASK;
const KIND_SHIFT: u32 = 28;
const KIND_MASK: u32 = 0x3 << KIND_SHIFT;
/// The snapshot mark (see `Shard`'s capture): equal to the shard's mark
/// once the entry's state at a running snapshot's start has been saved (or
/// when the entry did not exist then).
const SNAP_BIT: u32 = 1 << 30;
const EXPIRE_BIT: u32 = 1 << 31;

/// What an entry's payload is, for construction.
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    Embstr(&'a [u8]),
    Int(i64),
    Obj(u32),
}

/// One key of the keyspace.
#[derive(Debug)]
pub struct Entry {
    ord: u32,
    meta: u32,
    blob: Box<[u8]>,
}

fn varint_len(mut n: usize) -> usize {
    let mut l = 1;
    while n >= 0x80 {
        n >>= 7;
        l += 1;
    }
    l
}

fn put_varint(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7F) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn get_varint(b: &[u8]) -> (usize, usize) {
    let mut n = 0usize;
    let mut shift = 0;
    for (i, &c) in b.iter().enumerate() {
        n |= ((c & 0x7F) as usize) << shift;
        if c & 0x80 == 0 {
            return (n, i + 1);
        }
        shift += 7;
    }
    (n, b.len())
}

impl Entry {
    /// Builds an entry. `lru` is the 24-bit access clock/LFU data.
    pub fn new(ord: u32, key: &[u8], payload: Payload<'_>, expire: Option<u64>, lru: u32) -> Self {
        let plen = match payload {
            Payload::Embstr(s) => s.len(),
            Payload::Int(_) => 8,
            Payload::Obj(_) => 4,
        };
        let cap = expire.map_or(0, |_| 8) + varint_len(key.len()) + key.len() + plen;
        let mut b = Vec::with_capacity(cap);
        let mut meta = lru & LRU_MASK;
        if let Some(at) = expire {
            b.extend_from_slice(&at.to_le_bytes());
            meta |= EXPIRE_BIT;
        }
        put_varint(&mut b, key.len());
        b.extend_from_slice(key);
        let kind = match payload {
            Payload::Embstr(s) => {
                b.extend_from_slice(s);
                KIND_EMBSTR
            }
            Payload::Int(n) => {
                b.extend_from_slice(&n.to_le_bytes());
                KIND_INT
            }
            Payload::Obj(i) => {
                b.extend_from_slice(&i.to_le_bytes());
                KIND_OBJ
            }
        };
        meta |= kind << KIND_SHIFT;
        Entry {
            ord,
            meta,
            blob: b.into_boxed_slice(),
        }
    }

    fn key_start(&self) -> usize {
        if self.has_expire() {
            8
        } else {
            0
        }
    }

    /// (offset of key, key length)
    fn key_span(&self) -> (usize, usize) {
        let s = self.key_start();
        let (len, n) = get_varint(&self.blob[s..]);
        (s + n, len)
    }

    fn payload(&self) -> &[u8] {
        let (off, len) = self.key_span();
        &self.blob[off + len..]
    }

    pub fn kind(&self) -> u32 {
        (self.meta & KIND_MASK) >> KIND_SHIFT
    }

    pub fn has_expire(&self) -> bool {
        self.meta & EXPIRE_BIT != 0
    }

    /// Absolute expiry time in unix milliseconds.
    pub fn expire(&self) -> Option<u64> {
        if self.has_expire() {
            let mut b = [0u8; 8];
            b.copy_from_slice(&self.blob[..8]);
            Some(u64::from_le_bytes(b))
        } else {
            None
        }
    }

    /// Asks the CPU to start loading this entry's blob into the cache: a
    /// walk over a whole table (snapshots, DEBUG RELOAD) touches each blob
    /// once, at a random address, and overlapping those misses instead of
    /// taking them one at a time makes the walk several times faster.
    #[inline]
    pub fn prefetch(&self) {
        prefetch_at(self.blob_addr());
    }

    /// Where this entry's blob starts, for [`prefetch_at`] once the lock
    /// that guards the entry has been let go.
    pub fn blob_addr(&self) -> usize {
        self.blob.as_ptr() as usize
    }

    /// The inline string (kind EMBSTR).
    pub fn embstr(&self) -> &[u8] {
        self.payload()
    }

    /// The integer (kind INT).
    pub fn int(&self) -> i64 {
        let mut b = [0u8; 8];
        let p = self.payload();
        let n = p.len().min(8);
        b[..n].copy_from_slice(&p[..n]);
        i64::from_le_bytes(b)
    }

    /// The slab index (kind OBJ).
    pub fn obj_index(&self) -> u32 {
        let mut b = [0u8; 4];
        let p = self.payload();
        let n = p.len().min(4);
        b[..n].copy_from_slice(&p[..n]);
        u32::from_le_bytes(b)
    }

    pub fn lru(&self) -> u32 {
        self.meta & LRU_MASK
    }

    pub fn set_lru(&mut self, lru: u32) {
        self.meta = (self.meta & !LRU_MASK) | (lru & LRU_MASK);
    }

    /// The snapshot mark bit.
    #[inline]
    pub fn snap_mark(&self) -> bool {
        self.meta & SNAP_BIT != 0
    }

    #[inline]
    pub fn set_snap_mark(&mut self, on: bool) {
        if on {
            self.meta |= SNAP_BIT;
        } else {
            self.meta &= !SNAP_BIT;
        }
    }

    /// Rebuilds the blob with a new expiry (the payload and the snapshot
    /// mark are kept).
    pub fn with_expire(&self, expire: Option<u64>) -> Entry {
        let mut e = self.rebuilt(expire);
        e.set_snap_mark(self.snap_mark());
        e
    }

    fn rebuilt(&self, expire: Option<u64>) -> Entry {
        let key = self.key();
        match self.kind() {
            KIND_INT => Entry::new(self.ord, key, Payload::Int(self.int()), expire, self.lru()),
            KIND_OBJ => Entry::new(
                self.ord,
                key,
                Payload::Obj(self.obj_index()),
                expire,
                self.lru(),
            ),
            _ => Entry::new(
                self.ord,
                key,
                Payload::Embstr(self.embstr()),
                expire,
                self.lru(),
            ),
        }
    }

    /// Heap bytes used by this entry's blob (for MEMORY USAGE).
    pub fn blob_len(&self) -> usize {
        self.blob.len()
    }
}

impl TableEntry for Entry {
    #[inline]
    fn ord(&self) -> u32 {
        self.ord
    }
    #[inline]
    fn key(&self) -> &[u8] {
        let (off, len) = self.key_span();
        &self.blob[off..off + len]
    }
}

/// Asks the CPU to start loading the cache line at `addr`, an address
/// [`Entry::blob_addr`] gave earlier. The entry may have been freed since:
/// a prefetch reads nothing the program sees and never faults, so a stale
/// address costs at most a wasted memory access.
#[inline]
pub fn prefetch_at(addr: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint; it never faults, even on an
    // invalid address.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(addr as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_all_kinds() {
        let e = Entry::new(7, b"key:1", Payload::Embstr(b"value"), None, 5);
        assert_eq!(e.key(), b"key:1");
        assert_eq!(e.embstr(), b"value");
        assert_eq!(e.kind(), KIND_EMBSTR);
        assert_eq!(e.expire(), None);
        assert_eq!(e.lru(), 5);
        let e = Entry::new(7, b"k", Payload::Int(-42), Some(123456789), 0);
        assert_eq!(e.int(), -42);
        assert_eq!(e.expire(), Some(123456789));
        assert_eq!(e.key(), b"k");
        let long_key = vec![b'x'; 300];
        let e = Entry::new(1, &long_key, Payload::Obj(99), None, 0);
        assert_eq!(e.key(), &long_key[..]);
        assert_eq!(e.obj_index(), 99);
        let e2 = e.with_expire(Some(5));
        assert_eq!(e2.key(), &long_key[..]);
        assert_eq!(e2.obj_index(), 99);
        assert_eq!(e2.expire(), Some(5));
        assert_eq!(e2.with_expire(None).expire(), None);
        let mut e3 = e2.with_expire(Some(9));
        assert!(!e3.snap_mark());
        e3.set_snap_mark(true);
        e3.set_lru(0x0FFF_FFFF);
        assert!(e3.snap_mark());
        assert_eq!(e3.kind(), KIND_OBJ);
        assert_eq!(e3.expire(), Some(9));
        let e4 = e3.with_expire(None);
        assert!(e4.snap_mark());
        assert_eq!(e4.lru(), 0x0FFF_FFFF);
    }

    #[test]
    fn entry_is_24_bytes() {
        assert_eq!(std::mem::size_of::<Entry>(), 24);
        assert_eq!(std::mem::size_of::<Option<Entry>>(), 24);
    }
}
