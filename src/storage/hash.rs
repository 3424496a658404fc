//! Hash: the hash type, plus [`Dict`], the chained hash table shared with
//! sets.
//!
//! Small hashes use a flat byte buffer of length-prefixed field/value pairs
//! ("listpack" in OBJECT ENCODING), which costs a few bytes per entry instead
//! of a table slot, two allocations and a hash. Lookups there are linear,
//! which is fine because the buffer is bounded by `hash-max-listpack-entries`
//! and `hash-max-listpack-value`; past those a hash converts to a [`Dict`]
//! ("hashtable") and, as in Redis, never converts back.
//!
//! [`Dict`] is a separately chained table whose entries live in one dense
//! chunked vector (chains link entry indexes). The dense vector makes
//! uniform random sampling O(1) (HRANDFIELD, SRANDMEMBER, SPOP); the
//! buckets ([`HashIndex`]) rehash incrementally, as Redis's dict, and give
//! SCAN Redis's reverse-binary cursor, which returns every element present
//! for the whole iteration even when the table grows or shrinks between
//! calls.

use crate::storage::chunked::ChunkVec;
use crate::storage::hindex::{hash_bytes, Chains, HashIndex, MAX_ENTRIES};
use crate::storage::shared::Shared;
use crate::util::edit_exact;

/// One table entry (24 bytes): key and value share one allocation (`data`
/// is the key followed by the value), which saves an allocation and 16
/// bytes per field over separate boxes. Hashes are recomputed when needed
/// (rehash, unlink) rather than stored: foldhash is cheap next to 8 bytes
/// per element.
#[derive(Debug, Clone)]
pub struct DictEntry {
    data: Box<[u8]>,
    /// Chain link (see [`Chains`]).
    next: u32,
    klen: u32,
}

impl DictEntry {
    #[inline]
    fn key(&self) -> &[u8] {
        &self.data[..self.klen as usize]
    }

    #[inline]
    fn val(&self) -> &[u8] {
        &self.data[self.klen as usize..]
    }
}

/// Entries per arena chunk (log2): 1024. While a snapshot shares the
/// table, a write copies the chunk it touches, one allocation per entry
/// (the key and value bytes), so chunks stay small enough for that copy
/// to take tens of microseconds.
const ENTRY_CHUNK_BITS: u32 = 10;

type Entries = ChunkVec<DictEntry, ENTRY_CHUNK_BITS>;

impl Chains for Entries {
    #[inline]
    fn link(&self, i: u32) -> u32 {
        self[i as usize].next
    }

    #[inline]
    fn set_link(&mut self, i: u32, link: u32) {
        self[i as usize].next = link;
    }

    #[inline]
    fn hash(&self, i: u32) -> u64 {
        hash_bytes(self[i as usize].key())
    }
}

fn join(key: &[u8], val: &[u8]) -> Box<[u8]> {
    let mut v = Vec::with_capacity(key.len() + val.len());
    v.extend_from_slice(key);
    v.extend_from_slice(val);
    v.into_boxed_slice()
}

/// A chained hash table from byte strings to byte strings (sets store
/// empty values), with O(1) uniform random access (dense entry vector),
/// Redis-style SCAN cursors and incremental rehashing ([`HashIndex`]).
/// Entries sit in a [`ChunkVec`], so growing never copies them either.
#[derive(Debug, Clone, Default)]
pub struct Dict {
    entries: Entries,
    index: HashIndex,
    /// Key and value bytes of all entries, kept so that
    /// [`Dict::memory_usage`] is O(1) (a snapshot asks it under the lock).
    bytes: usize,
}

impl PartialEq for Dict {
    /// Content equality, independent of insertion order.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self
                .entries
                .iter()
                .all(|e| other.get(e.key()) == Some(e.val()))
    }
}

impl Dict {
    /// An empty table sized for `n` entries (avoids rehashing while a
    /// compact encoding converts).
    pub fn with_capacity(n: usize) -> Self {
        Dict {
            entries: Entries::with_capacity(n),
            bytes: 0,
            index: if n > 0 {
                HashIndex::with_buckets(n.max(4))
            } else {
                HashIndex::default()
            },
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn find_hashed(&self, key: &[u8], hash: u64) -> Option<usize> {
        let entries = &self.entries;
        self.index
            .find(entries, hash, |i| entries[i as usize].key() == key)
            .map(|i| i as usize)
    }

    /// Index of `key` in the dense entry vector.
    pub fn find(&self, key: &[u8]) -> Option<usize> {
        self.find_hashed(key, hash_bytes(key))
    }

    /// The value stored for `key`.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.find(key).map(|i| self.entries[i].val())
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        self.find(key).is_some()
    }

    /// Inserts or replaces. Returns true if `key` is new.
    pub fn insert(&mut self, key: &[u8], val: &[u8]) -> bool {
        let hash = hash_bytes(key);
        if let Some(i) = self.find_hashed(key, hash) {
            let e = &mut self.entries[i];
            if e.val() != val {
                self.bytes = self.bytes - e.data.len() + key.len() + val.len();
                e.data = join(key, val);
            }
            return false;
        }
        if self.entries.len() >= MAX_ENTRIES {
            // Chains index entries with u32; a table this large cannot be
            // built within any realistic memory, but never corrupt it.
            return false;
        }
        self.bytes += key.len() + val.len();
        let i = self.entries.push(DictEntry {
            data: join(key, val),
            next: 0,
            klen: key.len() as u32,
        }) as u32;
        let len = self.entries.len();
        self.index.insert(&mut self.entries, i, hash, len);
        true
    }

    /// Removes `key`; true if it was present.
    pub fn remove(&mut self, key: &[u8]) -> bool {
        match self.find(key) {
            Some(i) => {
                self.remove_at(i);
                true
            }
            None => false,
        }
    }

    /// Removes the entry at dense index `i` (which exists): unlinks it,
    /// moves the last entry into its slot, and lets the index step.
    fn remove_at(&mut self, i: usize) -> DictEntry {
        let h = self.entries.hash(i as u32);
        self.index.unlink(&mut self.entries, i as u32, h);
        let last = self.entries.len() - 1;
        if i != last {
            let hl = self.entries.hash(last as u32);
            self.index
                .relink(&mut self.entries, last as u32, i as u32, hl);
        }
        let e = self.entries.swap_remove(i);
        self.bytes -= e.data.len();
        let len = self.entries.len();
        self.index.removed(&mut self.entries, len);
        e
    }

    /// Removes the entry at dense index `i` (random pops), returning its key.
    pub fn remove_index(&mut self, i: usize) -> Option<Box<[u8]>> {
        if i >= self.entries.len() {
            return None;
        }
        let mut e = self.remove_at(i);
        let klen = e.klen as usize;
        if klen == e.data.len() {
            return Some(e.data);
        }
        let mut v = std::mem::take(&mut e.data).into_vec();
        v.truncate(klen);
        Some(v.into_boxed_slice())
    }

    /// The (key, value) at dense index `i` (`i < len()`), for random
    /// sampling.
    pub fn entry_at(&self, i: usize) -> Option<(&[u8], &[u8])> {
        self.entries.get(i).map(|e| (e.key(), e.val()))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.entries.iter().map(|e| (e.key(), e.val()))
    }

    /// One SCAN step from `cursor` (see [`HashIndex::scan`]): every element
    /// present for the whole iteration is returned, even when the table
    /// grows or shrinks between calls.
    pub fn scan(&self, cursor: u64, count: usize, mut f: impl FnMut(&[u8], &[u8])) -> u64 {
        let entries = &self.entries;
        self.index.scan(entries, cursor, count, |i| {
            let e = &entries[i as usize];
            f(e.key(), e.val())
        })
    }

    /// DEBUG HTSTATS-KEY's text.
    pub fn stats(&self) -> String {
        self.index.stats(&self.entries)
    }

    /// Approximate heap bytes.
    pub fn memory_usage(&self) -> usize {
        self.index.heap_bytes() + self.entries.heap_bytes() + self.bytes
    }
}

// ---- listpack ---------------------------------------------------------------

/// Encodes a length prefix into `out`, returning its size: one byte below
/// 128, else four bytes big-endian with the top bit set.
fn enc_len(out: &mut [u8; 4], n: usize) -> usize {
    if n < 0x80 {
        out[0] = n as u8;
        1
    } else {
        *out = ((n as u32) | 0x8000_0000).to_be_bytes();
        4
    }
}

/// Reads a length prefix at `pos`: (length, prefix size).
#[inline]
fn get_len(buf: &[u8], pos: usize) -> (usize, usize) {
    let b = buf[pos];
    if b < 0x80 {
        (b as usize, 1)
    } else {
        let mut a = [0u8; 4];
        a.copy_from_slice(&buf[pos..pos + 4]);
        ((u32::from_be_bytes(a) & 0x7FFF_FFFF) as usize, 4)
    }
}

/// Largest element the listpack can frame (31-bit lengths).
const LP_MAX_ELEMENT: usize = 0x7FFF_FFFF;

/// A flat buffer of length-prefixed field/value pairs.
#[derive(Debug, Clone, Default)]
struct Listpack {
    /// Exactly as long as its contents (`Box<[u8]>`, not `Vec`): no growth
    /// slack, and with the box's niche a `Hash` (so every `Obj` slot) stays
    /// 24 bytes.
    buf: Box<[u8]>,
    pairs: u32,
}

/// A located pair: byte ranges within the buffer.
struct LpPos {
    start: usize,
    val_start: usize,
    val_end: usize,
}

impl Listpack {
    fn iter(&self) -> LpIter<'_> {
        LpIter {
            buf: &self.buf,
            pos: 0,
        }
    }

    fn find(&self, field: &[u8]) -> Option<LpPos> {
        let mut pos = 0;
        while pos < self.buf.len() {
            let start = pos;
            let (fl, fp) = get_len(&self.buf, pos);
            let f = &self.buf[pos + fp..pos + fp + fl];
            pos += fp + fl;
            let (vl, vp) = get_len(&self.buf, pos);
            let val_start = pos;
            pos += vp + vl;
            if f == field {
                return Some(LpPos {
                    start,
                    val_start,
                    val_end: pos,
                });
            }
        }
        None
    }

    fn get(&self, field: &[u8]) -> Option<&[u8]> {
        let p = self.find(field)?;
        let (vl, vp) = get_len(&self.buf, p.val_start);
        Some(&self.buf[p.val_start + vp..p.val_start + vp + vl])
    }

    /// Sets `field`; true if it was new.
    ///
    /// The buffer is resized to exactly what the write needs, as Redis's
    /// listpack reallocs do: with jemalloc's size classes ~25% apart that
    /// wastes far less than a `Vec`'s doubling, which could leave a small
    /// hash with ~2x its size (a realloc within the same size class stays
    /// in place).
    fn set(&mut self, field: &[u8], value: &[u8]) -> bool {
        let mut pre = [0u8; 4];
        let pl = enc_len(&mut pre, value.len());
        match self.find(field) {
            Some(p) => {
                let old = p.val_end - p.val_start;
                let new = pl + value.len();
                edit_exact(&mut self.buf, |buf| {
                    if new > old {
                        buf.reserve_exact(new - old);
                    }
                    buf.splice(
                        p.val_start..p.val_end,
                        pre[..pl].iter().chain(value.iter()).copied(),
                    );
                });
                false
            }
            None => {
                let mut fpre = [0u8; 4];
                let fl = enc_len(&mut fpre, field.len());
                edit_exact(&mut self.buf, |buf| {
                    buf.reserve_exact(fl + field.len() + pl + value.len());
                    buf.extend_from_slice(&fpre[..fl]);
                    buf.extend_from_slice(field);
                    buf.extend_from_slice(&pre[..pl]);
                    buf.extend_from_slice(value);
                });
                self.pairs += 1;
                true
            }
        }
    }

    fn remove(&mut self, field: &[u8]) -> bool {
        match self.find(field) {
            Some(p) => {
                edit_exact(&mut self.buf, |buf| {
                    buf.drain(p.start..p.val_end);
                });
                self.pairs -= 1;
                true
            }
            None => false,
        }
    }
}

/// Iterator over a listpack's pairs.
pub struct LpIter<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for LpIter<'a> {
    type Item = (&'a [u8], &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let (fl, fp) = get_len(self.buf, self.pos);
        let f = &self.buf[self.pos + fp..self.pos + fp + fl];
        self.pos += fp + fl;
        let (vl, vp) = get_len(self.buf, self.pos);
        let v = &self.buf[self.pos + vp..self.pos + vp + vl];
        self.pos += vp + vl;
        Some((f, v))
    }
}

// ---- Hash -------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Repr {
    Listpack(Listpack),
    /// Behind one pointer (a copy-on-write `Shared`, see
    /// `storage::shared`) so a `Hash` (and so every `Obj` slot) stays 24
    /// bytes.
    Table(Shared<Dict>),
}

/// A hash value.
#[derive(Debug, Clone)]
pub struct Hash {
    repr: Repr,
}

impl Default for Hash {
    fn default() -> Self {
        Hash {
            repr: Repr::Listpack(Listpack::default()),
        }
    }
}

impl PartialEq for Hash {
    /// Content equality, whatever the encodings.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(f, v)| other.get(f) == Some(v))
    }
}

/// The conversion thresholds (`hash-max-listpack-entries`,
/// `hash-max-listpack-value`), read from the configuration per command.
#[derive(Debug, Clone, Copy)]
pub struct HashLimits {
    pub max_entries: usize,
    pub max_value: usize,
}

/// Iterator over a hash's (field, value) pairs.
pub enum HashIter<'a> {
    Lp(LpIter<'a>),
    Table(crate::storage::chunked::Iter<'a, DictEntry>),
}

impl<'a> Iterator for HashIter<'a> {
    type Item = (&'a [u8], &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            HashIter::Lp(it) => it.next(),
            HashIter::Table(it) => it.next().map(|e| (e.key(), e.val())),
        }
    }
}

/// Index-addressable view of a hash for random sampling: the listpack is
/// decoded once (it is small), the table is addressed directly.
pub enum Indexed<'a> {
    Pairs(Vec<(&'a [u8], &'a [u8])>),
    Table(&'a Dict),
}

impl<'a> Indexed<'a> {
    pub fn len(&self) -> usize {
        match self {
            Indexed::Pairs(v) => v.len(),
            Indexed::Table(d) => d.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The pair at `i` (`i < len()`; out of range yields empty strings).
    pub fn get(&self, i: usize) -> (&'a [u8], &'a [u8]) {
        match self {
            Indexed::Pairs(v) => v.get(i).copied().unwrap_or((&[], &[])),
            Indexed::Table(d) => d.entry_at(i).unwrap_or((&[], &[])),
        }
    }
}

impl Hash {
    /// Number of fields.
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Listpack(lp) => lp.pairs as usize,
            Repr::Table(d) => d.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Held in a [`Shared`] (the large representation): cloning is O(1).
    pub fn is_shared(&self) -> bool {
        matches!(self.repr, Repr::Table(_))
    }

    /// Redis's OBJECT ENCODING name for the encoding in use.
    pub fn encoding(&self) -> &'static str {
        match &self.repr {
            Repr::Listpack(_) => "listpack",
            Repr::Table(_) => "hashtable",
        }
    }

    /// DEBUG HTSTATS-KEY's text, when the value is held in a hash table.
    pub fn table_stats(&self) -> Option<String> {
        match &self.repr {
            Repr::Table(d) => Some(d.stats()),
            Repr::Listpack(_) => None,
        }
    }

    /// Approximate heap bytes (MEMORY USAGE, accounting).
    pub fn memory_usage(&self) -> usize {
        std::mem::size_of::<Self>()
            + match &self.repr {
                Repr::Listpack(lp) => lp.buf.len(),
                // Dict::memory_usage already counts keys and values.
                Repr::Table(d) => std::mem::size_of::<Dict>() + d.memory_usage(),
            }
    }

    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match &self.repr {
            Repr::Listpack(lp) => lp.get(field),
            Repr::Table(d) => d.get(field),
        }
    }

    pub fn contains(&self, field: &[u8]) -> bool {
        self.get(field).is_some()
    }

    fn convert(&mut self) {
        if let Repr::Listpack(lp) = &self.repr {
            let mut d = Dict::with_capacity(lp.pairs as usize);
            for (f, v) in lp.iter() {
                d.insert(f, v);
            }
            self.repr = Repr::Table(Shared::new(d));
        }
    }

    /// An empty hash in the hashtable encoding sized for `n` fields (RDB
    /// loading of a large hash: its table then never rehashes while it
    /// fills).
    pub fn table_with_capacity(n: usize) -> Hash {
        Hash {
            repr: Repr::Table(Shared::new(Dict::with_capacity(n))),
        }
    }

    /// Switches to the hashtable encoding for good (RDB loading: a
    /// listpack blob with more fields than `hash-max-listpack-entries`).
    pub fn convert_to_table(&mut self) {
        self.convert();
    }

    /// Converts to the hashtable encoding if writing elements of these
    /// sizes would exceed the listpack limits (checked before a batch of
    /// writes, as Redis does, so a multi-field HSET converts once).
    pub fn prepare(&mut self, lens: impl IntoIterator<Item = usize>, lim: HashLimits) {
        if let Repr::Listpack(_) = self.repr {
            if lens
                .into_iter()
                .any(|n| n > lim.max_value || n > LP_MAX_ELEMENT)
            {
                self.convert();
            }
        }
    }

    /// Sets `field` to `value`; true if the field is new.
    pub fn set(&mut self, field: &[u8], value: &[u8], lim: HashLimits) -> bool {
        self.prepare([field.len(), value.len()], lim);
        let created = match &mut self.repr {
            Repr::Listpack(lp) => lp.set(field, value),
            Repr::Table(d) => d.insert(field, value),
        };
        if let Repr::Listpack(lp) = &self.repr {
            if lp.pairs as usize > lim.max_entries {
                self.convert();
            }
        }
        created
    }

    /// Removes `field`; true if it existed.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match &mut self.repr {
            Repr::Listpack(lp) => lp.remove(field),
            Repr::Table(d) => d.remove(field),
        }
    }

    /// (field, value) pairs in storage order.
    pub fn iter(&self) -> HashIter<'_> {
        match &self.repr {
            Repr::Listpack(lp) => HashIter::Lp(lp.iter()),
            Repr::Table(d) => HashIter::Table(d.entries.iter()),
        }
    }

    /// An index-addressable view for random sampling.
    pub fn indexed(&self) -> Indexed<'_> {
        match &self.repr {
            Repr::Listpack(lp) => Indexed::Pairs(lp.iter().collect()),
            Repr::Table(d) => Indexed::Table(d),
        }
    }

    /// One HSCAN step (see [`Dict::scan`]); the listpack encoding returns
    /// everything at once with cursor 0, as Redis does.
    pub fn scan(&self, cursor: u64, count: usize, mut f: impl FnMut(&[u8], &[u8])) -> u64 {
        match &self.repr {
            Repr::Listpack(lp) => {
                for (k, v) in lp.iter() {
                    f(k, v);
                }
                0
            }
            Repr::Table(d) => d.scan(cursor, count, |k, v| f(k, v)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIM: HashLimits = HashLimits {
        max_entries: 4,
        max_value: 8,
    };

    #[test]
    fn listpack_set_get_remove_and_convert() {
        let mut h = Hash::default();
        assert!(h.set(b"a", b"1", LIM));
        assert!(!h.set(b"a", b"22", LIM));
        assert_eq!(h.get(b"a"), Some(&b"22"[..]));
        let long = vec![b'x'; 300];
        assert!(h.set(b"b", &long, LIM.max_value_unbounded()));
        assert_eq!(h.get(b"b"), Some(&long[..]));
        assert_eq!(h.encoding(), "listpack");
        assert!(h.remove(b"a"));
        assert!(!h.remove(b"a"));
        assert_eq!(h.len(), 1);
        for i in 0..5 {
            h.set(format!("f{i}").as_bytes(), b"v", LIM);
        }
        assert_eq!(h.encoding(), "hashtable");
        assert_eq!(h.len(), 6);
        assert_eq!(h.get(b"b"), Some(&long[..]));
    }

    #[test]
    fn listpack_grows_exactly() {
        let lim = HashLimits {
            max_entries: 128,
            max_value: 64,
        };
        let mut h = Hash::default();
        for j in 0..10 {
            h.set(format!("f{j}").as_bytes(), &[b'v'; 16], lim);
        }
        // 1 + 2 field bytes, 1 + 16 value bytes per pair, no slack.
        assert_eq!(
            h.memory_usage(),
            std::mem::size_of::<Hash>() + 10 * (3 + 17)
        );
        // Shrinking writes give the slack back.
        for j in 0..10 {
            h.set(format!("f{j}").as_bytes(), b"", lim);
        }
        assert!(h.memory_usage() <= std::mem::size_of::<Hash>() + 10 * 4 + 16 + 5);
        for j in 0..10 {
            h.set(format!("f{j}").as_bytes(), &[b'w'; 16], lim);
            assert_eq!(h.get(format!("f{j}").as_bytes()), Some(&[b'w'; 16][..]));
        }
        for j in 0..9 {
            assert!(h.remove(format!("f{j}").as_bytes()));
        }
        assert!(h.memory_usage() <= std::mem::size_of::<Hash>() + 20 + 16 + 3);
        assert_eq!(h.get(b"f9"), Some(&[b'w'; 16][..]));
        assert!(std::mem::size_of::<Hash>() <= 24);
        // Every key holding a collection pays one object slot.
        assert_eq!(std::mem::size_of::<crate::storage::value::Obj>(), 32);
        assert_eq!(
            std::mem::size_of::<Option<crate::storage::value::Obj>>(),
            32
        );
    }

    impl HashLimits {
        fn max_value_unbounded(self) -> Self {
            HashLimits {
                max_value: usize::MAX,
                ..self
            }
        }
    }

    #[test]
    fn dict_remove_keeps_chains_consistent() {
        let mut d = Dict::default();
        for i in 0..1000u32 {
            assert!(d.insert(i.to_string().as_bytes(), &i.to_le_bytes()));
        }
        for i in (0..1000u32).step_by(3) {
            assert!(d.remove(i.to_string().as_bytes()));
        }
        for i in 0..1000u32 {
            let v = d.get(i.to_string().as_bytes());
            assert_eq!(v.is_some(), i % 3 != 0);
            if let Some(v) = v {
                assert_eq!(v, i.to_le_bytes());
            }
        }
        // Popping by index returns keys and keeps the rest reachable.
        while let Some(k) = d.remove_index(d.len() / 2) {
            assert!(!d.contains(&k));
            for (k2, _) in d.iter() {
                assert!(d.contains(k2));
            }
            if d.len() < 600 {
                break;
            }
        }
    }

    #[test]
    fn dict_scan_complete_across_resizes() {
        let mut d = Dict::default();
        for i in 0..500 {
            d.insert(format!("k{i}").as_bytes(), &[]);
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        let mut step = 0;
        loop {
            cursor = d.scan(cursor, 7, |k, _| {
                seen.insert(k.to_vec());
            });
            step += 1;
            // Grow and shrink mid-iteration with unrelated keys.
            if step == 3 {
                for i in 0..2000 {
                    d.insert(format!("tmp{i}").as_bytes(), &[]);
                }
            }
            if step == 6 {
                for i in 0..2000 {
                    d.remove(format!("tmp{i}").as_bytes());
                }
            }
            if cursor == 0 {
                break;
            }
        }
        for i in 0..500 {
            assert!(seen.contains(format!("k{i}").as_bytes()));
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Random inserts/removes against a HashMap model, through both
        /// encodings (small limits force conversions mid-sequence).
        #[test]
        fn hash_matches_model(ops in proptest::collection::vec((0u8..3, 0u16..64, 0usize..12), 0..400)) {
            let lim = HashLimits { max_entries: 16, max_value: 8 };
            let mut h = Hash::default();
            let mut m: std::collections::HashMap<Vec<u8>, Vec<u8>> = Default::default();
            for (op, k, vlen) in ops {
                let key = format!("k{k}").into_bytes();
                match op {
                    0 | 1 => {
                        let val = vec![b'v'; vlen];
                        proptest::prop_assert_eq!(h.set(&key, &val, lim), m.insert(key, val).is_none());
                    }
                    _ => proptest::prop_assert_eq!(h.remove(&key), m.remove(&key).is_some()),
                }
                proptest::prop_assert_eq!(h.len(), m.len());
            }
            for (k, v) in &m {
                proptest::prop_assert_eq!(h.get(k), Some(&v[..]));
            }
            proptest::prop_assert_eq!(h.iter().count(), m.len());
            let ix = h.indexed();
            let mut from_index: Vec<Vec<u8>> = (0..ix.len()).map(|i| ix.get(i).0.to_vec()).collect();
            from_index.sort();
            let mut keys: Vec<Vec<u8>> = m.keys().cloned().collect();
            keys.sort();
            proptest::prop_assert_eq!(from_index, keys);
            let mut seen = std::collections::HashSet::new();
            let mut cursor = 0;
            loop {
                cursor = h.scan(cursor, 3, |f, _| { seen.insert(f.to_vec()); });
                if cursor == 0 { break; }
            }
            proptest::prop_assert_eq!(seen.len(), m.len());
        }
    }
}
