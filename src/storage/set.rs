//! Set: the set type.
//!
//! All-integer sets up to `set-max-intset-entries` members are an
//! [`IntSet`] ("intset"): sorted, packed at 2, 4 or 8 bytes per member as
//! Redis's intset, binary-search lookups.
//! Adding a non-integer member or growing past the limit converts to a
//! [`Dict`] ("hashtable") for good, as in Redis 7.0 (which has no listpack
//! sets). Members count as integers only in their canonical decimal form
//! ("12", not "012" or "+12"), so the set always replies with the exact
//! bytes it was given.
//!
//! A set of a few short members that are not all integers is kept packed
//! in one buffer (`Small`: a length byte then the bytes, per member) until
//! it passes [`SMALL_MAX_ENTRIES`] members or gets one longer than
//! [`SMALL_MAX_VALUE`], then becomes the [`Dict`]. The table's chunked
//! arena and bucket index take eight allocations for one member (450
//! bytes per key for 100k one-member sets, Redis 7.0's dict 211); packed,
//! one. OBJECT ENCODING still says "hashtable", the only name Redis 7.0
//! has for a set that is not an intset (its test suite and tools check
//! it), and the RDB type is a plain set as Redis writes for one.

use bytes::Bytes;

use crate::protocol::codec::parse_i64;
use crate::storage::hash::Dict;
use crate::storage::intset::{IntSet, IntSetIter};
use crate::storage::shared::Shared;

/// Members a packed small set holds at most.
pub const SMALL_MAX_ENTRIES: usize = 32;
/// Longest member a packed small set holds (its length is one byte).
pub const SMALL_MAX_VALUE: usize = 64;

#[derive(Debug, Clone)]
enum Repr {
    Intset(IntSet),
    /// Packed members: `[len: u8][bytes]`, in insertion order.
    Small(Box<[u8]>),
    /// Behind one pointer (a copy-on-write `Shared`, see
    /// `storage::shared`) so a `Set` (and so every `Obj` slot) stays small.
    Table(Shared<Dict>),
}

/// A set value.
#[derive(Debug, Clone)]
pub struct Set {
    repr: Repr,
}

impl Set {
    /// An empty set in the hashtable encoding sized for `n` members (RDB
    /// loading of a large set: its table then never rehashes while it
    /// fills); packed while `n` is small (it converts as it fills if a
    /// member is too long).
    pub fn table_with_capacity(n: usize) -> Set {
        if n <= SMALL_MAX_ENTRIES {
            return Set {
                repr: Repr::Small(Box::default()),
            };
        }
        Set {
            repr: Repr::Table(Shared::new(Dict::with_capacity(n))),
        }
    }
}

impl Default for Set {
    fn default() -> Self {
        Set {
            repr: Repr::Intset(IntSet::default()),
        }
    }
}

impl PartialEq for Set {
    /// Content equality, whatever the encodings.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|m| other.contains(&m.to_vec()))
    }
}

/// A member as stored: an intset integer or table bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Member<'a> {
    Int(i64),
    Bytes(&'a [u8]),
}

impl Member<'_> {
    /// The member's string form.
    pub fn to_bytes(self) -> Bytes {
        match self {
            Member::Int(n) => Bytes::copy_from_slice(itoa::Buffer::new().format(n).as_bytes()),
            Member::Bytes(b) => Bytes::copy_from_slice(b),
        }
    }

    pub fn to_vec(self) -> Vec<u8> {
        match self {
            Member::Int(n) => itoa::Buffer::new().format(n).as_bytes().to_vec(),
            Member::Bytes(b) => b.to_vec(),
        }
    }
}

/// Iterator over a set's members.
pub enum SetIter<'a> {
    Int(IntSetIter<'a>),
    Small(SmallIter<'a>),
    Table(Box<dyn Iterator<Item = &'a [u8]> + 'a>),
}

impl<'a> Iterator for SetIter<'a> {
    type Item = Member<'a>;
    fn next(&mut self) -> Option<Member<'a>> {
        match self {
            SetIter::Int(it) => it.next().map(Member::Int),
            SetIter::Small(it) => it.next().map(|(_, m)| Member::Bytes(m)),
            SetIter::Table(it) => it.next().map(Member::Bytes),
        }
    }
}

/// The members of a packed small set, in order, each with its byte range
/// in the buffer (length byte included).
pub struct SmallIter<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Iterator for SmallIter<'a> {
    type Item = (std::ops::Range<usize>, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        let start = self.at;
        let n = *self.buf.get(start)? as usize;
        let end = (start + 1 + n).min(self.buf.len());
        self.at = end;
        Some((start..end, &self.buf[start + 1..end]))
    }
}

fn small_iter(b: &[u8]) -> SmallIter<'_> {
    SmallIter { buf: b, at: 0 }
}

/// The members of a packed small set.
fn small_members(b: &[u8]) -> impl Iterator<Item = &[u8]> {
    small_iter(b).map(|(_, m)| m)
}

/// Byte range of member `m`, if present.
fn small_find(b: &[u8], m: &[u8]) -> Option<std::ops::Range<usize>> {
    small_iter(b).find(|(_, x)| *x == m).map(|(r, _)| r)
}

/// The table a packed set becomes, with room for `extra` more members.
fn small_to_dict(b: &[u8], extra: usize) -> Dict {
    let mut d = Dict::with_capacity(small_iter(b).count() + extra);
    for m in small_members(b) {
        d.insert(m, &[]);
    }
    d
}

/// The integer an intset may hold for `m`, if `m` is canonical.
#[inline]
fn as_int(m: &[u8]) -> Option<i64> {
    parse_i64(m)
}

impl Set {
    /// Number of members.
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Intset(v) => v.len(),
            Repr::Small(b) => small_iter(b).count(),
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
            Repr::Intset(_) => "intset",
            Repr::Small(_) | Repr::Table(_) => "hashtable",
        }
    }

    /// DEBUG HTSTATS-KEY's text, when the value is held in a hash table.
    pub fn table_stats(&self) -> Option<String> {
        match &self.repr {
            Repr::Table(d) => Some(d.stats()),
            // Reported as a hashtable: the table it would be.
            Repr::Small(b) => Some(small_to_dict(b, 0).stats()),
            Repr::Intset(_) => None,
        }
    }

    /// Approximate heap bytes (MEMORY USAGE, accounting).
    pub fn memory_usage(&self) -> usize {
        std::mem::size_of::<Self>()
            + match &self.repr {
                Repr::Intset(v) => v.bytes(),
                Repr::Small(b) => b.len(),
                Repr::Table(d) => d.memory_usage(),
            }
    }

    pub fn contains(&self, m: &[u8]) -> bool {
        match &self.repr {
            Repr::Intset(v) => as_int(m).is_some_and(|n| v.contains(n)),
            Repr::Small(b) => small_find(b, m).is_some(),
            Repr::Table(d) => d.contains(m),
        }
    }

    /// Leaves the intset for the packed form when `m` (about to be added)
    /// and every member fit it, else for the table.
    fn convert(&mut self, m: &[u8]) {
        let Repr::Intset(v) = &self.repr else { return };
        let mut buf = itoa::Buffer::new();
        if v.len() < SMALL_MAX_ENTRIES && m.len() <= SMALL_MAX_VALUE {
            // (An integer's decimal form is at most 20 bytes.)
            let mut b = Vec::with_capacity(v.len() * 4);
            for n in v.iter() {
                let d = buf.format(n).as_bytes();
                b.push(d.len() as u8);
                b.extend_from_slice(d);
            }
            self.repr = Repr::Small(b.into_boxed_slice());
            return;
        }
        let mut d = Dict::with_capacity(v.len() + 1);
        for n in v.iter() {
            d.insert(buf.format(n).as_bytes(), &[]);
        }
        self.repr = Repr::Table(Shared::new(d));
    }

    /// The packed form becomes the table (too many members, or one too
    /// long), sized for one more.
    fn small_to_table(&mut self) {
        let Repr::Small(b) = &self.repr else { return };
        self.repr = Repr::Table(Shared::new(small_to_dict(b, 1)));
    }

    /// Adds `m`; true if it is new. `max_intset` is
    /// `set-max-intset-entries`.
    pub fn add(&mut self, m: &[u8], max_intset: usize) -> bool {
        if let Repr::Intset(v) = &mut self.repr {
            match as_int(m) {
                // (At the limit, only a member already there stays.)
                Some(n) if v.len() < max_intset || v.contains(n) => return v.insert(n),
                _ => self.convert(m),
            }
        }
        if let Repr::Small(b) = &self.repr {
            let mut count = 0;
            for x in small_members(b) {
                if x == m {
                    return false;
                }
                count += 1;
            }
            if m.len() > SMALL_MAX_VALUE || count >= SMALL_MAX_ENTRIES {
                self.small_to_table();
            }
        }
        match &mut self.repr {
            Repr::Small(b) => {
                crate::util::edit_exact(b, |v| {
                    v.reserve_exact(1 + m.len());
                    v.push(m.len() as u8);
                    v.extend_from_slice(m);
                });
                true
            }
            Repr::Table(d) => d.insert(m, &[]),
            Repr::Intset(_) => false,
        }
    }

    /// Removes `m`; true if it was a member.
    pub fn remove(&mut self, m: &[u8]) -> bool {
        match &mut self.repr {
            Repr::Intset(v) => as_int(m).is_some_and(|n| v.remove(n)),
            Repr::Small(b) => match small_find(b, m) {
                Some(r) => {
                    crate::util::edit_exact(b, |v| {
                        v.drain(r);
                    });
                    true
                }
                None => false,
            },
            Repr::Table(d) => d.remove(m),
        }
    }

    /// Members (intsets in ascending order).
    pub fn iter(&self) -> SetIter<'_> {
        match &self.repr {
            Repr::Intset(v) => SetIter::Int(v.iter()),
            Repr::Small(b) => SetIter::Small(small_iter(b)),
            Repr::Table(d) => SetIter::Table(Box::new(d.iter().map(|(k, _)| k))),
        }
    }

    /// The member at index `i` (`i < len()`), for uniform random sampling
    /// in O(1).
    pub fn member_at(&self, i: usize) -> Option<Member<'_>> {
        match &self.repr {
            Repr::Intset(v) => v.get(i).map(Member::Int),
            Repr::Small(b) => small_members(b).nth(i).map(Member::Bytes),
            Repr::Table(d) => d.entry_at(i).map(|(k, _)| Member::Bytes(k)),
        }
    }

    /// Removes and returns the member at index `i`.
    pub fn remove_at(&mut self, i: usize) -> Option<Bytes> {
        match &mut self.repr {
            Repr::Intset(v) => v.remove_at(i).map(|n| Member::Int(n).to_bytes()),
            Repr::Small(b) => {
                let (r, m) = small_iter(b).nth(i)?;
                let m = Bytes::copy_from_slice(m);
                crate::util::edit_exact(b, |v| {
                    v.drain(r);
                });
                Some(m)
            }
            Repr::Table(d) => d.remove_index(i).map(|k| Bytes::from(Vec::from(k))),
        }
    }

    /// One SSCAN step (see [`Dict::scan`]); an intset (and a packed set)
    /// returns everything at once with cursor 0, as Redis does.
    pub fn scan(&self, cursor: u64, count: usize, mut f: impl FnMut(Member<'_>)) -> u64 {
        match &self.repr {
            Repr::Intset(v) => {
                v.iter().for_each(|n| f(Member::Int(n)));
                0
            }
            Repr::Small(b) => {
                for m in small_members(b) {
                    f(Member::Bytes(m));
                }
                0
            }
            Repr::Table(d) => d.scan(cursor, count, |k, _| f(Member::Bytes(k))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_stay_small() {
        assert!(std::mem::size_of::<Set>() <= 24);
        assert!(std::mem::size_of::<crate::storage::hash::Hash>() <= 24);
    }

    #[test]
    fn intset_converts_on_string_and_size() {
        let mut s = Set::default();
        assert!(s.add(b"3", 4));
        assert!(s.add(b"-1", 4));
        assert!(!s.add(b"3", 4));
        assert_eq!(s.encoding(), "intset");
        assert!(s.contains(b"-1"));
        assert!(!s.contains(b"03"));
        assert!(s.add(b"03", 4));
        assert_eq!(s.encoding(), "hashtable");
        assert!(s.contains(b"03") && s.contains(b"3") && s.contains(b"-1"));

        let mut s = Set::default();
        for i in 0..4 {
            s.add(i.to_string().as_bytes(), 4);
        }
        assert_eq!(s.encoding(), "intset");
        s.add(b"4", 4);
        assert_eq!(s.encoding(), "hashtable");
        assert_eq!(s.len(), 5);
        assert!(s.remove(b"4"));
        assert_eq!(s.len(), 4);
    }

    #[test]
    fn small_sets_are_packed_until_too_many_or_too_long() {
        let mut s = Set::default();
        assert!(s.add(b"alpha", 512));
        assert!(matches!(s.repr, Repr::Small(_)));
        assert_eq!(s.encoding(), "hashtable");
        assert!(!s.add(b"alpha", 512));
        assert!(s.add(b"7", 512) && s.contains(b"7") && !s.contains(b"07"));
        assert_eq!(s.len(), 2);
        assert!(s.remove(b"alpha") && !s.remove(b"alpha"));
        assert_eq!(
            s.iter().map(|m| m.to_vec()).collect::<Vec<_>>(),
            [b"7".to_vec()]
        );
        // An intset with a string added becomes packed, integers as text.
        let mut s = Set::default();
        for i in 0..5 {
            s.add(i.to_string().as_bytes(), 512);
        }
        s.add(b"x", 512);
        assert!(matches!(s.repr, Repr::Small(_)));
        assert_eq!(s.len(), 6);
        assert!(s.contains(b"4") && s.contains(b"x"));
        // One member too many, or too long: the table.
        for i in 0..(SMALL_MAX_ENTRIES - 6) {
            s.add(format!("m{i}").as_bytes(), 512);
        }
        assert!(matches!(s.repr, Repr::Small(_)));
        assert_eq!(s.len(), SMALL_MAX_ENTRIES);
        s.add(b"one-more", 512);
        assert!(matches!(s.repr, Repr::Table(_)));
        assert_eq!(s.len(), SMALL_MAX_ENTRIES + 1);
        let mut s = Set::default();
        s.add(b"a", 512);
        s.add(&[b'z'; SMALL_MAX_VALUE], 512);
        assert!(matches!(s.repr, Repr::Small(_)));
        s.add(&[b'z'; SMALL_MAX_VALUE + 1], 512);
        assert!(matches!(s.repr, Repr::Table(_)));
        assert!(s.contains(b"a") && s.contains(&[b'z'; SMALL_MAX_VALUE]));
        assert!(s.table_stats().is_some());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Random adds/removes/pops against a HashSet model, integers and
        /// strings mixed so intset conversion happens mid-sequence.
        #[test]
        fn set_matches_model(ops in proptest::collection::vec((0u8..4, 0u16..80), 0..400)) {
            let mut s = Set::default();
            let mut m: std::collections::HashSet<Vec<u8>> = Default::default();
            for (op, k) in ops {
                let member = if k < 60 { k.to_string().into_bytes() } else { format!("s{k}").into_bytes() };
                match op {
                    0 | 1 => proptest::prop_assert_eq!(s.add(&member, 32), m.insert(member)),
                    2 => proptest::prop_assert_eq!(s.remove(&member), m.remove(&member)),
                    _ => {
                        if !s.is_empty() {
                            let i = k as usize % s.len();
                            let got = s.remove_at(i).map(|b| b.to_vec());
                            proptest::prop_assert!(got.is_some_and(|g| m.remove(&g)));
                        }
                    }
                }
                proptest::prop_assert_eq!(s.len(), m.len());
            }
            for x in &m {
                proptest::prop_assert!(s.contains(x));
            }
            let all: std::collections::HashSet<Vec<u8>> = s.iter().map(|x| x.to_vec()).collect();
            proptest::prop_assert_eq!(&all, &m);
            let mut seen = std::collections::HashSet::new();
            let mut cursor = 0;
            loop {
                cursor = s.scan(cursor, 2, |x| { seen.insert(x.to_vec()); });
                if cursor == 0 { break; }
            }
            proptest::prop_assert_eq!(&seen, &m);
        }
    }
}
