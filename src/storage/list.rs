//! List: the list type.
//!
//! Redis 7.0 keeps every list in a quicklist (a linked list of listpacks)
//! and reports `quicklist` as its OBJECT ENCODING whatever its size (the
//! listpack encoding for small lists only arrived in 7.2). What clients rely
//! on is the complexity: O(1) push and pop at both ends, O(n) walks for the
//! middle. A ring buffer of owned elements gives exactly that, plus O(1)
//! index access, with one allocation per element. Elements are copied out
//! of the request buffer on insertion so a stored list never pins a whole
//! network read chunk.

use std::collections::VecDeque;

use bytes::Bytes;

/// One stored element (owned, exactly sized).
type Elem = Box<[u8]>;

/// Per-element bookkeeping beyond the bytes themselves, for memory
/// accounting: the slot in the ring (pointer + length) plus allocator
/// rounding on average.
const ELEM_OVERHEAD: usize = std::mem::size_of::<Elem>() + 8;

/// A list value.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct List {
    items: VecDeque<Elem>,
    /// Sum of the element lengths (memory accounting without a walk).
    bytes: usize,
}

/// Which end of a list (LEFT = head, RIGHT = tail).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Head,
    Tail,
}

impl List {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Redis's OBJECT ENCODING name for the encoding in use: 7.0 always
    /// says `quicklist` for lists.
    pub fn encoding(&self) -> &'static str {
        "quicklist"
    }

    /// Approximate heap bytes (MEMORY USAGE, accounting).
    pub fn memory_usage(&self) -> usize {
        std::mem::size_of::<Self>() + self.items.capacity() * ELEM_OVERHEAD + self.bytes
    }

    fn own(v: &[u8]) -> Elem {
        Box::from(v)
    }

    /// Pushes one element at `end`.
    pub fn push(&mut self, end: End, v: &[u8]) {
        self.bytes += v.len();
        match end {
            End::Head => self.items.push_front(Self::own(v)),
            End::Tail => self.items.push_back(Self::own(v)),
        }
    }

    /// Pops one element from `end`.
    pub fn pop(&mut self, end: End) -> Option<Bytes> {
        let e = match end {
            End::Head => self.items.pop_front(),
            End::Tail => self.items.pop_back(),
        }?;
        self.bytes -= e.len();
        self.maybe_shrink();
        Some(Bytes::from(Vec::from(e)))
    }

    /// Pops up to `n` elements from `end`, in pop order.
    pub fn pop_n(&mut self, end: End, n: usize) -> Vec<Bytes> {
        let n = n.min(self.len());
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            match self.pop(end) {
                Some(v) => out.push(v),
                None => break,
            }
        }
        out
    }

    /// The element at `i` (0-based from the head).
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        self.items.get(i).map(|e| &e[..])
    }

    /// Resolves a Redis index (negative counts from the tail) to a position.
    pub fn resolve(&self, index: i64) -> Option<usize> {
        let len = self.len() as i64;
        let i = if index < 0 { len + index } else { index };
        (0..len).contains(&i).then_some(i as usize)
    }

    /// Replaces the element at `i`. False if out of range.
    pub fn set(&mut self, i: usize, v: &[u8]) -> bool {
        match self.items.get_mut(i) {
            Some(slot) => {
                self.bytes = self.bytes - slot.len() + v.len();
                *slot = Self::own(v);
                true
            }
            None => false,
        }
    }

    /// Inserts `v` so that it ends up at position `i` (0..=len).
    pub fn insert(&mut self, i: usize, v: &[u8]) {
        self.bytes += v.len();
        self.items.insert(i.min(self.items.len()), Self::own(v));
    }

    /// Position of the first element equal to `v`, from the head.
    pub fn position(&self, v: &[u8]) -> Option<usize> {
        self.items.iter().position(|e| &e[..] == v)
    }

    /// Iterates from head to tail.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &[u8]> + ExactSizeIterator + '_ {
        self.items.iter().map(|e| &e[..])
    }

    /// Elements `start..=end` (already clamped to the list) as replies' bytes.
    pub fn range(&self, start: usize, end: usize) -> impl DoubleEndedIterator<Item = &[u8]> + '_ {
        self.items.range(start..=end).map(|e| &e[..])
    }

    /// Removes up to `count` elements equal to `v` (0 = all), scanning from
    /// the head, or from the tail when `from_tail`. Returns how many.
    pub fn remove_matching(&mut self, v: &[u8], count: usize, from_tail: bool) -> usize {
        let mut removed = 0usize;
        let limit = if count == 0 { usize::MAX } else { count };
        if from_tail {
            let mut i = self.items.len();
            while i > 0 && removed < limit {
                i -= 1;
                if &self.items[i][..] == v {
                    if let Some(e) = self.items.remove(i) {
                        self.bytes -= e.len();
                    }
                    removed += 1;
                }
            }
        } else {
            // Single compaction pass: O(n) however many match.
            let mut bytes = self.bytes;
            let mut seen = 0usize;
            self.items.retain(|e| {
                if seen < limit && &e[..] == v {
                    seen += 1;
                    bytes -= e.len();
                    false
                } else {
                    true
                }
            });
            self.bytes = bytes;
            removed = seen;
        }
        self.maybe_shrink();
        removed
    }

    /// Drops `front` elements from the head and `back` from the tail.
    pub fn trim(&mut self, front: usize, back: usize) {
        let front = front.min(self.len());
        for e in self.items.drain(..front) {
            self.bytes -= e.len();
        }
        let back = back.min(self.len());
        let keep = self.len() - back;
        for e in self.items.drain(keep..) {
            self.bytes -= e.len();
        }
        self.maybe_shrink();
    }

    /// Returns memory after a list shrank to a small fraction of its peak.
    fn maybe_shrink(&mut self) {
        let cap = self.items.capacity();
        if cap > 64 && self.items.len() < cap / 4 {
            self.items.shrink_to(self.items.len() * 2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> List {
        let mut l = List::new();
        for i in items {
            l.push(End::Tail, i.as_bytes());
        }
        l
    }

    fn items(l: &List) -> Vec<String> {
        l.iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect()
    }

    #[test]
    fn push_pop_both_ends() {
        let mut l = List::new();
        l.push(End::Head, b"b");
        l.push(End::Head, b"a");
        l.push(End::Tail, b"c");
        assert_eq!(items(&l), ["a", "b", "c"]);
        assert_eq!(l.pop(End::Tail).as_deref(), Some(&b"c"[..]));
        assert_eq!(l.pop(End::Head).as_deref(), Some(&b"a"[..]));
        assert_eq!(l.len(), 1);
        assert_eq!(l.encoding(), "quicklist");
    }

    #[test]
    fn resolve_indexes() {
        let l = list(&["a", "b", "c"]);
        assert_eq!(l.resolve(0), Some(0));
        assert_eq!(l.resolve(-1), Some(2));
        assert_eq!(l.resolve(-3), Some(0));
        assert_eq!(l.resolve(-4), None);
        assert_eq!(l.resolve(3), None);
    }

    #[test]
    fn remove_and_trim_keep_byte_count() {
        let mut l = list(&["a", "x", "b", "x", "c", "x"]);
        assert_eq!(l.remove_matching(b"x", 2, true), 2);
        assert_eq!(items(&l), ["a", "x", "b", "c"]);
        assert_eq!(l.remove_matching(b"x", 0, false), 1);
        assert_eq!(items(&l), ["a", "b", "c"]);
        l.trim(1, 1);
        assert_eq!(items(&l), ["b"]);
        assert_eq!(l.bytes, 1);
        l.trim(5, 5);
        assert!(l.is_empty());
        assert_eq!(l.bytes, 0);
    }
}
