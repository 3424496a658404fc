//! List: the list type.
//!
//! Redis 7.0 keeps every list in a quicklist (a deque of listpacks) and
//! reports `quicklist` as its OBJECT ENCODING whatever its size (the
//! listpack encoding for small lists only arrived in 7.2). This is the same
//! shape: a ring of *nodes*, each one buffer of packed entries up to
//! [`NODE_BYTES`], so a list of small elements costs a few bytes per element
//! instead of a pointer plus an allocation each:
//!
//! ```text
//! entry = varint(len) · bytes · reversed-varint(len)
//! ```
//!
//! The trailing reversed length lets iterators walk a node backwards
//! (LRANGE from the tail, LPOS with a negative rank, LREM with a negative
//! count) without decoding it from the front. Push and pop at either end
//! touch one node (a bounded memmove at the head, as a listpack insert at
//! its head does); index access walks nodes from the nearer end, then
//! entries inside one node. An element larger than a node gets a node of
//! its own (Redis's "plain" nodes).

use std::collections::VecDeque;

use bytes::Bytes;

use crate::storage::shared::Shared;
use crate::util::edit_exact;

/// Target size of one node's buffer: Redis's default
/// `list-max-listpack-size -2` (8 KB).
pub const NODE_BYTES: usize = 8 * 1024;

/// One packed node: an exact-size buffer (no growth slack; a write that
/// stays within jemalloc's size class reallocates in place, as a listpack
/// realloc does in Redis).
#[derive(Debug, Clone, PartialEq, Default)]
struct Node {
    buf: Box<[u8]>,
    count: u32,
}

/// A list of more than one node: the node ring with the totals.
///
/// Each node is shared copy-on-write ([`Shared`]): a copy of the ring (the
/// first edit after a snapshot took the list by reference) costs one
/// reference per node, and the edit then copies only the node it changes,
/// as a forked Redis copies the pages its writes touch.
#[derive(Debug, Clone, Default)]
struct Quick {
    nodes: VecDeque<Shared<Node>>,
    len: usize,
    /// Sum of the node buffers' lengths (memory accounting without a walk).
    bytes: usize,
}

#[derive(Debug, Clone)]
enum Repr {
    /// Zero or one node (`count == 0` means empty), held inline: most lists
    /// are small, and a small list then costs its one buffer and nothing
    /// else (length and byte count are the node's).
    One(Node),
    Many(Shared<Quick>),
}

/// A list value. Equality is by content, whatever the node layout. 24
/// bytes, so it sits inline in an object slot.
#[derive(Debug, Clone)]
pub struct List {
    repr: Repr,
}

impl Default for List {
    fn default() -> Self {
        List {
            repr: Repr::One(Node::default()),
        }
    }
}

impl PartialEq for List {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

/// Which end of a list (LEFT = head, RIGHT = tail).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Head,
    Tail,
}

// ---- entry encoding -----------------------------------------------------------

fn varint_len(mut n: usize) -> usize {
    let mut k = 1;
    while n >= 0x80 {
        n >>= 7;
        k += 1;
    }
    k
}

/// Encoded size of an element of `n` bytes.
fn enc_len(n: usize) -> usize {
    n + 2 * varint_len(n)
}

fn varint_bytes(mut n: usize, out: &mut [u8; 10]) -> usize {
    let mut k = 0;
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out[k] = b;
            return k + 1;
        }
        out[k] = b | 0x80;
        k += 1;
    }
}

/// Appends the encoding of `v` to `out`.
fn encode_into(out: &mut Vec<u8>, v: &[u8]) {
    let mut tmp = [0u8; 10];
    let k = varint_bytes(v.len(), &mut tmp);
    out.extend_from_slice(&tmp[..k]);
    out.extend_from_slice(v);
    out.extend(tmp[..k].iter().rev());
}

fn encode(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(enc_len(v.len()));
    encode_into(&mut out, v);
    out
}

/// Decodes the entry starting at `off`: (data start, data end, next entry).
fn read_fwd(buf: &[u8], off: usize) -> (usize, usize, usize) {
    let (mut n, mut shift, mut p) = (0usize, 0u32, off);
    loop {
        let b = buf[p];
        p += 1;
        n |= ((b & 0x7f) as usize) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    let end = p + n;
    (p, end, end + varint_len(n))
}

/// Decodes the entry ending at `end`: (entry start, data start, data end).
fn read_back(buf: &[u8], end: usize) -> (usize, usize, usize) {
    let (mut n, mut shift, mut p) = (0usize, 0u32, end);
    loop {
        p -= 1;
        let b = buf[p];
        n |= ((b & 0x7f) as usize) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    let data_end = p;
    let data_start = data_end - n;
    (data_start - varint_len(n), data_start, data_end)
}

impl Node {
    fn with(v: &[u8]) -> Node {
        Node {
            buf: encode(v).into_boxed_slice(),
            count: 1,
        }
    }

    fn count(&self) -> usize {
        self.count as usize
    }

    /// Replaces the bytes `range` with the encoding of `v`.
    fn splice_in(&mut self, range: std::ops::Range<usize>, v: &[u8]) {
        let new = encode(v);
        edit_exact(&mut self.buf, |b| {
            let removed = range.end - range.start;
            if new.len() > removed {
                b.reserve_exact(new.len() - removed);
            }
            if range.start == b.len() {
                b.extend_from_slice(&new);
            } else {
                b.splice(range, new);
            }
        });
    }

    /// Inserts the encoding of `v` before the first entry: one memmove of
    /// the node, no temporary buffer.
    fn prepend(&mut self, v: &[u8]) {
        let need = enc_len(v.len());
        edit_exact(&mut self.buf, |b| {
            let old = b.len();
            b.reserve_exact(need);
            b.resize(old + need, 0);
            b.copy_within(0..old, need);
            let mut tmp = [0u8; 10];
            let k = varint_bytes(v.len(), &mut tmp);
            b[..k].copy_from_slice(&tmp[..k]);
            b[k..k + v.len()].copy_from_slice(v);
            for (i, x) in tmp[..k].iter().rev().enumerate() {
                b[k + v.len() + i] = *x;
            }
        });
    }

    /// Byte offset of entry `i` (walking from the nearer end).
    fn offset_of(&self, i: usize) -> usize {
        if i <= self.count() / 2 {
            let mut off = 0;
            for _ in 0..i {
                off = read_fwd(&self.buf, off).2;
            }
            off
        } else {
            let mut end = self.buf.len();
            for _ in i..self.count() {
                end = read_back(&self.buf, end).0;
            }
            end
        }
    }
}

/// Builds a list at its tail, element by element, filling each node's
/// buffer before boxing it: one allocation per node, where [`List::push`]
/// resizes its exact-size node buffer for every element. For loading
/// (RDB, RESTORE), which receives whole lists at once. Nodes end up as
/// `push` would have made them.
pub struct ListBuilder {
    list: List,
    buf: Vec<u8>,
    count: u32,
    /// Bytes the elements still to come are expected to take (sizes the
    /// next node's buffer).
    hint: usize,
}

impl Default for ListBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ListBuilder {
    pub fn new() -> Self {
        ListBuilder {
            list: List::new(),
            buf: Vec::new(),
            count: 0,
            hint: 0,
        }
    }

    /// Expects about `bytes` more of encoded elements (e.g. the size of
    /// the node being loaded), so small lists do not start with a whole
    /// node's buffer.
    pub fn expect(&mut self, bytes: usize) {
        self.hint = bytes;
    }

    pub fn push(&mut self, v: &[u8]) {
        let need = enc_len(v.len());
        if self.count > 0 && self.buf.len() + need > NODE_BYTES {
            self.flush();
        }
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(need.max(self.hint.min(NODE_BYTES)));
        }
        encode_into(&mut self.buf, v);
        self.count += 1;
    }

    fn flush(&mut self) {
        if self.count == 0 {
            return;
        }
        let node = Node {
            buf: std::mem::take(&mut self.buf).into_boxed_slice(),
            count: std::mem::take(&mut self.count),
        };
        let (n, bytes) = (node.count as isize, node.buf.len() as isize);
        self.list.add_node(End::Tail, node);
        self.list.account(n, bytes);
    }

    pub fn finish(mut self) -> List {
        self.flush();
        self.list
    }
}

impl List {
    pub fn new() -> Self {
        Self::default()
    }

    // ---- node storage: one inline node, or the ring -----------------------

    fn nodes_len(&self) -> usize {
        match &self.repr {
            Repr::One(n) => usize::from(n.count > 0),
            Repr::Many(q) => q.nodes.len(),
        }
    }

    fn node(&self, k: usize) -> &Node {
        match &self.repr {
            Repr::One(n) => n,
            Repr::Many(q) => &q.nodes[k],
        }
    }

    fn node_mut(&mut self, k: usize) -> &mut Node {
        match &mut self.repr {
            Repr::One(n) => n,
            Repr::Many(q) => &mut q.nodes[k],
        }
    }

    fn end_node_mut(&mut self, end: End) -> Option<&mut Node> {
        match &mut self.repr {
            Repr::One(n) => (n.count > 0).then_some(n),
            Repr::Many(q) => match end {
                End::Head => q.nodes.front_mut().map(|n| &mut **n),
                End::Tail => q.nodes.back_mut().map(|n| &mut **n),
            },
        }
    }

    fn end_node(&self, end: End) -> Option<&Node> {
        match &self.repr {
            Repr::One(n) => (n.count > 0).then_some(n),
            Repr::Many(q) => match end {
                End::Head => q.nodes.front().map(|n| &**n),
                End::Tail => q.nodes.back().map(|n| &**n),
            },
        }
    }

    /// The ring, made from the inline node if need be (before adding a
    /// node; the totals are taken from the node as it is).
    fn quick(&mut self) -> &mut Quick {
        if let Repr::One(n) = &mut self.repr {
            let n = std::mem::take(n);
            let mut q = Quick {
                nodes: VecDeque::with_capacity(2),
                len: n.count(),
                bytes: n.buf.len(),
            };
            if n.count > 0 {
                q.nodes.push_back(Shared::new(n));
            }
            self.repr = Repr::Many(Shared::new(q));
        }
        match &mut self.repr {
            Repr::Many(q) => q,
            Repr::One(_) => unreachable!("just converted"),
        }
    }

    /// Adds a node at `end`.
    fn add_node(&mut self, end: End, n: Node) {
        if let Repr::One(one) = &mut self.repr {
            if one.count == 0 {
                *one = n;
                return;
            }
        }
        let q = self.quick();
        match end {
            End::Head => q.nodes.push_front(Shared::new(n)),
            End::Tail => q.nodes.push_back(Shared::new(n)),
        }
    }

    /// Removes the node at `end` (which exists).
    fn remove_end_node(&mut self, end: End) {
        match &mut self.repr {
            Repr::One(n) => *n = Node::default(),
            Repr::Many(q) => {
                match end {
                    End::Head => q.nodes.pop_front(),
                    End::Tail => q.nodes.pop_back(),
                };
                if q.nodes.len() <= 1 {
                    let last = q
                        .nodes
                        .pop_front()
                        .map(Shared::into_inner)
                        .unwrap_or_default();
                    self.repr = Repr::One(last);
                } else if q.nodes.capacity() > 16 && q.nodes.len() < q.nodes.capacity() / 4 {
                    q.nodes.shrink_to_fit();
                }
            }
        }
    }

    /// Keeps the totals of a multi-node list in step after a change of
    /// `dlen` elements and `dbytes` encoded bytes (a single node's totals
    /// are the node's own).
    fn account(&mut self, dlen: isize, dbytes: isize) {
        if let Repr::Many(q) = &mut self.repr {
            q.len = q.len.wrapping_add_signed(dlen);
            q.bytes = q.bytes.wrapping_add_signed(dbytes);
        }
    }

    // ---- the list -----------------------------------------------------------

    /// Number of nodes (the allocations freeing the list takes).
    pub fn node_count(&self) -> usize {
        self.nodes_len()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::One(n) => n.count(),
            Repr::Many(q) => q.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Held in a [`Shared`] (the large representation): cloning is O(1),
    /// and the first edit of a clone copies the node ring (one reference
    /// per node) and the node it changes, not the elements.
    pub fn is_shared(&self) -> bool {
        matches!(self.repr, Repr::Many(_))
    }

    /// Redis's OBJECT ENCODING name: 7.0 always says `quicklist` for lists.
    pub fn encoding(&self) -> &'static str {
        "quicklist"
    }

    /// Approximate heap bytes (MEMORY USAGE, accounting).
    pub fn memory_usage(&self) -> usize {
        std::mem::size_of::<Self>()
            + match &self.repr {
                Repr::One(n) => n.buf.len(),
                Repr::Many(q) => {
                    std::mem::size_of::<Quick>()
                        + q.nodes.capacity() * std::mem::size_of::<Shared<Node>>()
                        // Each node's own allocation: its header and the
                        // two reference counts.
                        + q.nodes.len() * (std::mem::size_of::<Node>() + 16)
                        + q.bytes
                }
            }
    }

    /// Pushes one element at `end`.
    pub fn push(&mut self, end: End, v: &[u8]) {
        let need = enc_len(v.len());
        match self.end_node_mut(end) {
            Some(n) if n.buf.len() + need <= NODE_BYTES => {
                match end {
                    End::Tail => edit_exact(&mut n.buf, |b| {
                        b.reserve_exact(need);
                        encode_into(b, v);
                    }),
                    End::Head => n.prepend(v),
                }
                n.count += 1;
            }
            _ => self.add_node(end, Node::with(v)),
        }
        self.account(1, need as isize);
    }

    /// Pops one element from `end`.
    pub fn pop(&mut self, end: End) -> Option<Bytes> {
        let (v, emptied, used) = {
            let n = self.end_node_mut(end)?;
            let (v, used) = match end {
                End::Head => {
                    let (s, e, next) = read_fwd(&n.buf, 0);
                    let v = Bytes::copy_from_slice(&n.buf[s..e]);
                    edit_exact(&mut n.buf, |b| {
                        b.drain(..next);
                    });
                    (v, next)
                }
                End::Tail => {
                    let len = n.buf.len();
                    let (start, s, e) = read_back(&n.buf, len);
                    let v = Bytes::copy_from_slice(&n.buf[s..e]);
                    edit_exact(&mut n.buf, |b| b.truncate(start));
                    (v, len - start)
                }
            };
            n.count -= 1;
            (v, n.count == 0, used)
        };
        self.account(-1, -(used as isize));
        if emptied {
            self.remove_end_node(end);
        }
        Some(v)
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

    /// (node index, index inside the node) of element `i < len`.
    fn locate(&self, i: usize) -> (usize, usize) {
        let nodes = self.nodes_len();
        if i < self.len() / 2 {
            let mut i = i;
            for k in 0..nodes {
                let c = self.node(k).count();
                if i < c {
                    return (k, i);
                }
                i -= c;
            }
        } else {
            let mut from_end = self.len() - i; // >= 1
            for k in (0..nodes).rev() {
                let c = self.node(k).count();
                if from_end <= c {
                    return (k, c - from_end);
                }
                from_end -= c;
            }
        }
        (0, 0)
    }

    /// The element at `i` (0-based from the head).
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        if i >= self.len() {
            return None;
        }
        let (k, j) = self.locate(i);
        let n = self.node(k);
        let (s, e, _) = read_fwd(&n.buf, n.offset_of(j));
        Some(&n.buf[s..e])
    }

    /// Resolves a Redis index (negative counts from the tail) to a position.
    pub fn resolve(&self, index: i64) -> Option<usize> {
        let len = self.len() as i64;
        let i = if index < 0 { len + index } else { index };
        (0..len).contains(&i).then_some(i as usize)
    }

    /// Splits node `k` in two when it grew well past the node size.
    fn maybe_split(&mut self, k: usize) {
        let n = self.node(k);
        if n.count < 2 || n.buf.len() <= 2 * NODE_BYTES {
            return;
        }
        // Make the ring first: an inline node becomes its first node with
        // the totals taken from the node while it still holds everything
        // (splitting first lost the tail's elements from the totals).
        let q = self.quick();
        let n: &mut Node = &mut q.nodes[k];
        let half = n.buf.len() / 2;
        let (mut off, mut c) = (0, 0);
        while off < half && c < n.count - 1 {
            off = read_fwd(&n.buf, off).2;
            c += 1;
        }
        let mut head = std::mem::take(&mut n.buf).into_vec();
        let tail = Node {
            buf: head.split_off(off).into_boxed_slice(),
            count: n.count - c,
        };
        n.buf = head.into_boxed_slice();
        n.count = c;
        q.nodes.insert(k + 1, Shared::new(tail));
    }

    /// Replaces the element at `i`. False if out of range.
    pub fn set(&mut self, i: usize, v: &[u8]) -> bool {
        if i >= self.len() {
            return false;
        }
        let (k, j) = self.locate(i);
        let n = self.node_mut(k);
        let off = n.offset_of(j);
        let next = read_fwd(&n.buf, off).2;
        n.splice_in(off..next, v);
        self.account(0, enc_len(v.len()) as isize - (next - off) as isize);
        self.maybe_split(k);
        true
    }

    /// Inserts `v` so that it ends up at position `i` (0..=len).
    pub fn insert(&mut self, i: usize, v: &[u8]) {
        if i == 0 {
            return self.push(End::Head, v);
        }
        if i >= self.len() {
            return self.push(End::Tail, v);
        }
        let (k, j) = self.locate(i);
        let n = self.node_mut(k);
        let off = n.offset_of(j);
        n.splice_in(off..off, v);
        n.count += 1;
        self.account(1, enc_len(v.len()) as isize);
        self.maybe_split(k);
    }

    /// Position of the first element equal to `v`, from the head.
    pub fn position(&self, v: &[u8]) -> Option<usize> {
        self.iter().position(|e| e == v)
    }

    /// Iterates from head to tail (double-ended).
    pub fn iter(&self) -> Iter<'_> {
        let nodes = self.nodes_len();
        Iter {
            list: self,
            f_node: 0,
            f_off: 0,
            b_node: nodes.saturating_sub(1),
            b_off: if nodes == 0 {
                0
            } else {
                self.node(nodes - 1).buf.len()
            },
            remaining: self.len(),
        }
    }

    /// Elements `start..=end` (already clamped to the list).
    pub fn range(&self, start: usize, end: usize) -> Iter<'_> {
        if start > end || end >= self.len() {
            return Iter {
                list: self,
                f_node: 0,
                f_off: 0,
                b_node: 0,
                b_off: 0,
                remaining: 0,
            };
        }
        let (fk, fj) = self.locate(start);
        let (bk, bj) = self.locate(end);
        let bn = self.node(bk);
        let b_off = read_fwd(&bn.buf, bn.offset_of(bj)).2;
        Iter {
            list: self,
            f_node: fk,
            f_off: self.node(fk).offset_of(fj),
            b_node: bk,
            b_off,
            remaining: end - start + 1,
        }
    }

    /// Rebuilds the list from `kept` (head to tail).
    fn rebuild(&mut self, kept: &[&[u8]]) {
        let mut l = List::new();
        for v in kept {
            l.push(End::Tail, v);
        }
        *self = l;
    }

    /// Removes up to `count` elements equal to `v` (0 = all), scanning from
    /// the head, or from the tail when `from_tail`. Returns how many.
    pub fn remove_matching(&mut self, v: &[u8], count: usize, from_tail: bool) -> usize {
        let limit = if count == 0 { usize::MAX } else { count };
        let mut removed = 0usize;
        let kept: Vec<Vec<u8>> = {
            let mut keep = |e: &[u8]| {
                if removed < limit && e == v {
                    removed += 1;
                    false
                } else {
                    true
                }
            };
            if from_tail {
                let mut k: Vec<Vec<u8>> = self
                    .iter()
                    .rev()
                    .filter(|e| keep(e))
                    .map(<[u8]>::to_vec)
                    .collect();
                k.reverse();
                k
            } else {
                self.iter()
                    .filter(|e| keep(e))
                    .map(<[u8]>::to_vec)
                    .collect()
            }
        };
        if removed > 0 {
            let refs: Vec<&[u8]> = kept.iter().map(|e| &e[..]).collect();
            self.rebuild(&refs);
        }
        removed
    }

    /// Drops `front` elements from the head and `back` from the tail.
    pub fn trim(&mut self, front: usize, back: usize) {
        for (mut n, end) in [(front, End::Head), (back, End::Tail)] {
            n = n.min(self.len());
            // Whole nodes first, then single entries.
            while n > 0 {
                let Some(node) = self.end_node(end) else {
                    break;
                };
                if node.count() <= n {
                    let (c, b) = (node.count(), node.buf.len());
                    self.account(-(c as isize), -(b as isize));
                    self.remove_end_node(end);
                    n -= c;
                } else {
                    self.pop(end);
                    n -= 1;
                }
            }
        }
    }
}

/// Double-ended iterator over a list's elements.
pub struct Iter<'a> {
    list: &'a List,
    f_node: usize,
    f_off: usize,
    b_node: usize,
    b_off: usize,
    remaining: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.remaining == 0 {
            return None;
        }
        let list = self.list;
        while self.f_off >= list.node(self.f_node).buf.len() {
            self.f_node += 1;
            self.f_off = 0;
        }
        let buf = &list.node(self.f_node).buf;
        let (s, e, next) = read_fwd(buf, self.f_off);
        self.f_off = next;
        self.remaining -= 1;
        Some(&buf[s..e])
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        let list = self.list;
        while self.b_off == 0 {
            self.b_node -= 1;
            self.b_off = list.node(self.b_node).buf.len();
        }
        let buf = &list.node(self.b_node).buf;
        let (start, s, e) = read_back(buf, self.b_off);
        self.b_off = start;
        self.remaining -= 1;
        Some(&buf[s..e])
    }
}

impl ExactSizeIterator for Iter<'_> {}

#[cfg(test)]
impl List {
    /// Total encoded bytes (the ring's running total, or the one node's).
    fn bytes(&self) -> usize {
        match &self.repr {
            Repr::One(n) => n.buf.len(),
            Repr::Many(q) => q.bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
    fn a_list_fits_an_object_slot() {
        // Inline in `Obj` (32-byte slots) and a small list in one buffer.
        assert_eq!(std::mem::size_of::<List>(), 24);
        let mut l = List::new();
        for i in 0..10 {
            l.push(End::Tail, format!("item:{i}").as_bytes());
        }
        assert!(matches!(l.repr, Repr::One(_)));
        assert_eq!(l.memory_usage(), 24 + 10 * 8);
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
        assert_eq!(l.bytes(), 3);
        l.trim(5, 5);
        assert!(l.is_empty());
        assert_eq!(l.bytes(), 0);
    }

    /// A copy (what a snapshot's reference turns into on the first edit)
    /// shares every node; an edit copies the nodes it changes, and the
    /// original keeps its contents.
    #[test]
    fn a_copy_shares_its_nodes_until_an_edit_copies_one() {
        let mut a = List::new();
        for i in 0..20_000u32 {
            a.push(End::Tail, format!("element-{i}").as_bytes());
        }
        let before: Vec<Vec<u8>> = a.iter().map(<[u8]>::to_vec).collect();
        let nodes: std::collections::HashSet<*const Node> = (0..a.node_count())
            .map(|k| a.node(k) as *const Node)
            .collect();
        assert!(nodes.len() > 20, "{} nodes", nodes.len());
        let mut b = a.clone();
        b.set(10_000, b"changed");
        b.push(End::Tail, b"tail");
        let shared = (0..b.node_count())
            .filter(|&k| nodes.contains(&(b.node(k) as *const Node)))
            .count();
        assert!(
            shared >= nodes.len() - 2,
            "{shared} of {} nodes still shared",
            nodes.len()
        );
        assert_eq!(b.get(10_000), Some(&b"changed"[..]));
        assert_eq!(b.len(), 20_001);
        let after: Vec<Vec<u8>> = a.iter().map(<[u8]>::to_vec).collect();
        assert_eq!(after, before, "the original is untouched");
    }

    #[test]
    fn equality_ignores_node_layout() {
        let mut a = List::new();
        let mut b = List::new();
        for i in 0..3000u32 {
            a.push(End::Tail, &i.to_be_bytes());
            b.push(End::Head, &(2999 - i).to_be_bytes());
        }
        b.insert(1500, b"x");
        a.insert(1500, b"x");
        assert_eq!(a, b);
        b.set(0, b"y");
        assert_ne!(a, b);
    }

    /// A one-node list that an insert (or set) pushes past twice the node
    /// size splits into two nodes and keeps its length and byte count.
    #[test]
    fn splitting_the_inline_node_keeps_the_totals() {
        let mut l = List::new();
        let mut want = Vec::new();
        for i in 0..6u8 {
            l.push(End::Tail, &[i]);
            want.push(vec![i]);
        }
        let big = vec![7u8; 6000];
        l.insert(3, &big);
        want.insert(3, big.clone());
        assert_eq!(l.node_count(), 1);
        l.insert(2, &big);
        want.insert(2, big.clone());
        l.insert(5, &big);
        want.insert(5, big);
        assert!(l.node_count() >= 2, "split");
        assert_eq!(l.len(), want.len());
        let got: Vec<Vec<u8>> = l.iter().map(<[u8]>::to_vec).collect();
        assert_eq!(got, want);
        let mut copy = List::new();
        for v in &want {
            copy.push(End::Tail, v);
        }
        assert_eq!(l, copy);
    }

    #[test]
    fn big_elements_get_their_own_node() {
        let big = vec![b'x'; 3 * NODE_BYTES];
        let mut l = list(&["a"]);
        l.push(End::Tail, &big);
        l.push(End::Head, &big);
        l.push(End::Tail, b"z");
        assert_eq!(l.len(), 4);
        assert_eq!(l.get(1), Some(&b"a"[..]));
        assert_eq!(l.get(2).map(|v| v.len()), Some(big.len()));
        assert_eq!(l.iter().next_back(), Some(&b"z"[..]));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push(bool, Vec<u8>),
        Pop(bool),
        Set(usize, Vec<u8>),
        Insert(usize, Vec<u8>),
        Remove(u8, usize, bool),
        Trim(usize, usize),
    }

    fn elem() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            8 => proptest::collection::vec(0u8..4, 0..3),
            1 => proptest::collection::vec(any::<u8>(), 100..400),
            1 => proptest::collection::vec(any::<u8>(), 5000..9000),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (any::<bool>(), elem()).prop_map(|(h, v)| Op::Push(h, v)),
            2 => any::<bool>().prop_map(Op::Pop),
            1 => (0usize..300, elem()).prop_map(|(i, v)| Op::Set(i, v)),
            1 => (0usize..300, elem()).prop_map(|(i, v)| Op::Insert(i, v)),
            1 => (0u8..4, 0usize..3, any::<bool>()).prop_map(|(b, c, t)| Op::Remove(b, c, t)),
            1 => (0usize..4, 0usize..4).prop_map(|(a, b)| Op::Trim(a, b)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn builder_makes_the_nodes_push_makes(
            sizes in proptest::collection::vec(prop_oneof![0usize..40, 0usize..3000, 8000usize..9000], 0..60),
            hint in 0usize..20000,
        ) {
            let mut pushed = List::new();
            let mut b = ListBuilder::new();
            b.expect(hint);
            for (i, n) in sizes.iter().enumerate() {
                let v = vec![b'a' + (i % 26) as u8; *n];
                pushed.push(End::Tail, &v);
                b.push(&v);
            }
            let built = b.finish();
            prop_assert_eq!(built.len(), sizes.len());
            prop_assert_eq!(built.node_count(), pushed.node_count());
            prop_assert_eq!(built.bytes(), pushed.bytes());
            for k in 0..built.nodes_len() {
                prop_assert_eq!(built.node(k), pushed.node(k));
            }
            prop_assert!(built == pushed);
        }

        #[test]
        fn behaves_like_a_vecdeque(ops in proptest::collection::vec(op(), 1..300)) {
            let mut l = List::new();
            let mut m: VecDeque<Vec<u8>> = VecDeque::new();
            for o in ops {
                match o {
                    Op::Push(h, v) => {
                        if h { l.push(End::Head, &v); m.push_front(v) } else { l.push(End::Tail, &v); m.push_back(v) }
                    }
                    Op::Pop(h) => {
                        let (a, b) = if h { (l.pop(End::Head), m.pop_front()) } else { (l.pop(End::Tail), m.pop_back()) };
                        prop_assert_eq!(a.map(|x| x.to_vec()), b);
                    }
                    Op::Set(i, v) => {
                        let ok = l.set(i, &v);
                        prop_assert_eq!(ok, i < m.len());
                        if ok { m[i] = v; }
                    }
                    Op::Insert(i, v) => {
                        let i = i.min(m.len());
                        l.insert(i, &v);
                        m.insert(i, v);
                    }
                    Op::Remove(b, c, t) => {
                        let v = vec![b];
                        let n = l.remove_matching(&v, c, t);
                        let limit = if c == 0 { usize::MAX } else { c };
                        let mut removed = 0;
                        let mut out: Vec<Vec<u8>> = m.iter().cloned().collect();
                        if t { out.reverse(); }
                        out.retain(|e| if removed < limit && *e == v { removed += 1; false } else { true });
                        if t { out.reverse(); }
                        m = out.into();
                        prop_assert_eq!(n, removed);
                    }
                    Op::Trim(a, b) => {
                        l.trim(a, b);
                        for _ in 0..a.min(m.len()) { m.pop_front(); }
                        for _ in 0..b.min(m.len()) { m.pop_back(); }
                    }
                }
                prop_assert_eq!(l.len(), m.len());
            }
            let fwd: Vec<Vec<u8>> = l.iter().map(<[u8]>::to_vec).collect();
            let want: Vec<Vec<u8>> = m.iter().cloned().collect();
            prop_assert_eq!(&fwd, &want);
            let mut back: Vec<Vec<u8>> = l.iter().rev().map(<[u8]>::to_vec).collect();
            back.reverse();
            prop_assert_eq!(&back, &want);
            for (i, v) in m.iter().enumerate() {
                prop_assert_eq!(l.get(i), Some(&v[..]));
            }
            if !m.is_empty() {
                let (s, e) = (m.len() / 3, m.len() - 1 - m.len() / 4);
                if s <= e {
                    let r: Vec<Vec<u8>> = l.range(s, e).map(<[u8]>::to_vec).collect();
                    prop_assert_eq!(&r[..], &want[s..=e]);
                    let mut rr: Vec<Vec<u8>> = l.range(s, e).rev().map(<[u8]>::to_vec).collect();
                    rr.reverse();
                    prop_assert_eq!(&rr[..], &want[s..=e]);
                }
            }
            let nodes: Vec<&Node> = (0..l.nodes_len()).map(|k| l.node(k)).collect();
            let total: usize = nodes.iter().map(|n| n.buf.len()).sum();
            prop_assert_eq!(total, l.bytes());
            let counts: usize = nodes.iter().map(|n| n.count()).sum();
            prop_assert_eq!(counts, l.len());
            prop_assert!(nodes.iter().all(|n| n.count > 0));
            // A ring only while there is more than one node.
            prop_assert_eq!(matches!(l.repr, Repr::Many(_)), nodes.len() > 1);
        }
    }
}
