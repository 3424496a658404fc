//! ZSet: the sorted set type.
//!
//! Two encodings, as in Redis:
//!
//! * **listpack** — a `Vec<(score, member)>` kept sorted. Small sets are the
//!   common case; a flat vector is compact and its O(n) inserts are cheap at
//!   the sizes it is allowed to reach (`zset-max-listpack-entries` elements,
//!   members up to `zset-max-listpack-value` bytes).
//! * **skiplist** — elements (score, member, hash-chain link) in a chunked
//!   arena where they never move, ordered by an order-statistic B+ tree
//!   whose leaves hold (score, element slot) pairs and whose inner nodes
//!   hold each child's element count and first element, and chained into
//!   a hash index on the member. The tree gives rank, select-by-rank and
//!   "how many elements precede this bound" in one descent of four or
//!   five nodes for a million members (each read front to back; a binary
//!   tree is some 25 dependent cache misses), which is everything
//!   range-by-rank, by-score and by-lex need; the index ([`HashIndex`],
//!   rehashed incrementally) gives O(1) ZSCORE and membership for 4 bytes
//!   of link per element plus 4-8 bytes of buckets. Everything lives in
//!   [`ChunkVec`] arenas addressed by `u32`: no per-element allocation
//!   beyond the member's bytes, no copying on growth, and a snapshot's
//!   clone shares the chunks. The name "skiplist" is what OBJECT ENCODING
//!   reports, for compatibility.
//!
//! Ordering is by score, then by member bytes (memcmp order), exactly as
//! Redis. Scores are never NaN (callers reject NaN before inserting).
//!
//! A set converts from listpack to skiplist when it outgrows the limits and
//! never converts back on its own; store commands (ZUNIONSTORE…) may build a
//! result and then ask for the compact encoding with
//! [`ZSet::shrink_if_fits`], as Redis 7.0 does.

use std::cmp::Ordering;

use bytes::Bytes;
use smallvec::SmallVec;

use crate::storage::chunked::ChunkVec;
use crate::storage::hindex::{hash_bytes, Chains, HashIndex};
use crate::storage::shared::Shared;
use crate::util::edit_exact;

/// The conversion thresholds (`zset-max-listpack-entries`,
/// `zset-max-listpack-value`), read from the configuration by callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZLimits {
    /// Maximum number of elements in the listpack encoding.
    pub entries: usize,
    /// Maximum member length in bytes in the listpack encoding.
    pub value: usize,
}

/// Compares two (score, member) pairs in sorted-set order.
#[inline]
pub fn cmp_entry(a_score: f64, a_member: &[u8], b_score: f64, b_member: &[u8]) -> Ordering {
    if a_score < b_score {
        Ordering::Less
    } else if a_score > b_score {
        Ordering::Greater
    } else {
        a_member.cmp(b_member)
    }
}

const NIL: u32 = u32::MAX;

/// Entries per tree node: elements in a leaf, children in an inner node.
/// A leaf's scores are four cache lines read front to back (the loads
/// overlap), so a 1M-member set is five levels deep, the upper three of
/// which stay cached; a binary tree is about 25 levels of dependent
/// cache misses.
const B: usize = 32;

/// A node with fewer entries than this after a removal takes entries from
/// a sibling or merges with it, so a shrinking set keeps its nodes at
/// least a quarter full.
const MIN_FILL: usize = B / 4;

/// One element: its member, its score and the member index's chain link.
/// Elements never move in the arena while they are in the set, so the
/// member index and the tree's leaves both name them by slot. 32 bytes
/// (the member is a boxed slice, not a 32-byte `Bytes`), so two share a
/// cache line and none straddles two: a lookup reads one line.
#[derive(Debug, Clone)]
struct Node {
    score: f64,
    member: Box<[u8]>,
    /// Hash chain link (see [`Chains`]).
    next: u32,
}

/// Elements per arena chunk (log2): 64 elements, 2 KB. While a snapshot
/// shares the set, the first write to an element copies its chunk.
const NODE_CHUNK_BITS: u32 = 6;

type Nodes = ChunkVec<Node, NODE_CHUNK_BITS>;

impl Chains for Nodes {
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
        hash_bytes(&self[i as usize].member)
    }
}

/// A leaf: up to `B` elements in order, as (score, element slot).
#[derive(Debug, Clone)]
struct Leaf {
    len: u32,
    score: [f64; B],
    id: [u32; B],
}

/// An inner node: up to `B` children, each with its number of elements
/// and its first element (score and slot), which routes searches.
#[derive(Debug, Clone)]
struct Inner {
    len: u32,
    count: [u32; B],
    kid: [u32; B],
    score: [f64; B],
    id: [u32; B],
}

/// The entries of a leaf or inner node, moved as units when nodes split,
/// merge or lend entries.
trait Slots: Clone {
    type E: Copy;
    fn len(&self) -> usize;
    fn set_len(&mut self, n: usize);
    fn get(&self, i: usize) -> Self::E;
    fn set(&mut self, i: usize, e: Self::E);
    /// Elements below entry `i`.
    fn weight(&self, i: usize) -> usize;
    /// First element (score, slot) below entry `i`.
    fn first(&self, i: usize) -> (f64, u32);

    fn insert(&mut self, at: usize, e: Self::E) {
        let n = self.len();
        for i in (at..n).rev() {
            let v = self.get(i);
            self.set(i + 1, v);
        }
        self.set(at, e);
        self.set_len(n + 1);
    }

    /// Removes entries `[a, b)`.
    fn remove(&mut self, a: usize, b: usize) {
        let n = self.len();
        for i in b..n {
            let v = self.get(i);
            self.set(i - (b - a), v);
        }
        self.set_len(n - (b - a));
    }

    fn total(&self) -> usize {
        (0..self.len()).map(|i| self.weight(i)).sum()
    }
}

impl Slots for Leaf {
    type E = (f64, u32);
    #[inline]
    fn len(&self) -> usize {
        self.len as usize
    }
    fn set_len(&mut self, n: usize) {
        self.len = n as u32;
    }
    #[inline]
    fn get(&self, i: usize) -> (f64, u32) {
        (self.score[i], self.id[i])
    }
    #[inline]
    fn set(&mut self, i: usize, e: (f64, u32)) {
        self.score[i] = e.0;
        self.id[i] = e.1;
    }
    fn weight(&self, _: usize) -> usize {
        1
    }
    fn first(&self, i: usize) -> (f64, u32) {
        (self.score[i], self.id[i])
    }
}

impl Slots for Inner {
    type E = (u32, u32, f64, u32);
    #[inline]
    fn len(&self) -> usize {
        self.len as usize
    }
    fn set_len(&mut self, n: usize) {
        self.len = n as u32;
    }
    #[inline]
    fn get(&self, i: usize) -> Self::E {
        (self.count[i], self.kid[i], self.score[i], self.id[i])
    }
    #[inline]
    fn set(&mut self, i: usize, e: Self::E) {
        self.count[i] = e.0;
        self.kid[i] = e.1;
        self.score[i] = e.2;
        self.id[i] = e.3;
    }
    fn weight(&self, i: usize) -> usize {
        self.count[i] as usize
    }
    fn first(&self, i: usize) -> (f64, u32) {
        (self.score[i], self.id[i])
    }
}

impl Default for Leaf {
    fn default() -> Self {
        Leaf {
            len: 0,
            score: [0.0; B],
            id: [NIL; B],
        }
    }
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            len: 0,
            count: [0; B],
            kid: [NIL; B],
            score: [0.0; B],
            id: [NIL; B],
        }
    }
}

/// The first index in `lo..hi` at which the monotone `pred` (true on a
/// prefix of the range) is false.
fn partition(mut lo: usize, mut hi: usize, pred: impl Fn(usize) -> bool) -> usize {
    while lo < hi {
        let mid = (lo + hi) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// The inner nodes from the root down to a leaf, each with the index of
/// the child the path takes.
type Path = SmallVec<[(u32, usize); 12]>;

/// Arena of tree nodes of one kind, with a free list.
#[derive(Debug, Clone, Default)]
struct Pool<T> {
    slots: ChunkVec<T, 3>,
    free: ChunkVec<u32>,
}

impl<T: Clone + Default> Pool<T> {
    fn alloc(&mut self) -> u32 {
        match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = T::default();
                i
            }
            None => self.slots.push(T::default()) as u32,
        }
    }

    fn release(&mut self, i: u32) {
        self.free.push(i);
    }

    fn heap_bytes(&self) -> usize {
        self.slots.heap_bytes() + self.free.heap_bytes()
    }
}

impl<T> std::ops::Index<u32> for Pool<T> {
    type Output = T;
    #[inline]
    fn index(&self, i: u32) -> &T {
        &self.slots[i as usize]
    }
}

impl<T: Clone> std::ops::IndexMut<u32> for Pool<T> {
    #[inline]
    fn index_mut(&mut self, i: u32) -> &mut T {
        &mut self.slots[i as usize]
    }
}

/// Order-statistic B+ tree over (score, member), the elements in an
/// arena. Inner nodes carry their children's element counts (rank and
/// select in one descent) and their children's first elements (search).
#[derive(Debug, Clone)]
struct Tree {
    nodes: Nodes,
    free: ChunkVec<u32>,
    leaves: Pool<Leaf>,
    inners: Pool<Inner>,
    root: u32,
    /// Inner levels above the leaves (0: the root is a leaf).
    height: usize,
    len: usize,
}

impl Default for Tree {
    fn default() -> Self {
        Tree {
            nodes: Nodes::default(),
            free: ChunkVec::default(),
            leaves: Pool::default(),
            inners: Pool::default(),
            root: NIL,
            height: 0,
            len: 0,
        }
    }
}

impl Tree {
    fn len(&self) -> usize {
        self.len
    }

    /// True if element (score `s`, slot `id`) sorts before or equal to
    /// the key (`ks`, `km`); members are read only on equal scores.
    #[inline]
    fn le(&self, s: f64, id: u32, ks: f64, km: &[u8]) -> bool {
        s < ks || (s == ks && self.nodes[id as usize].member[..] <= *km)
    }

    /// True if element (`s`, `id`) sorts strictly before the key.
    #[inline]
    fn lt(&self, s: f64, id: u32, ks: f64, km: &[u8]) -> bool {
        s < ks || (s == ks && self.nodes[id as usize].member[..] < *km)
    }

    /// Descends to the leaf where key (`s`, `m`) is or belongs, recording
    /// the path; returns the leaf and the first position holding an
    /// element not before the key.
    fn descend_key(&self, s: f64, m: &[u8], path: &mut Path) -> (u32, usize) {
        let mut n = self.root;
        for _ in 0..self.height {
            let inner = &self.inners[n];
            let len = inner.len as usize;
            let mut i = 1;
            while i < len && self.le(inner.score[i], inner.id[i], s, m) {
                i += 1;
            }
            path.push((n, i - 1));
            n = inner.kid[i - 1];
        }
        let leaf = &self.leaves[n];
        let len = leaf.len as usize;
        let mut p = 0;
        while p < len && self.lt(leaf.score[p], leaf.id[p], s, m) {
            p += 1;
        }
        (n, p)
    }

    /// Descends to the leaf holding the element of rank `k` (< len).
    fn descend_rank(&self, mut k: usize, path: &mut Path) -> (u32, usize) {
        let mut n = self.root;
        for _ in 0..self.height {
            let inner = &self.inners[n];
            let mut i = 0;
            while i + 1 < inner.len as usize && k >= inner.count[i] as usize {
                k -= inner.count[i] as usize;
                i += 1;
            }
            path.push((n, i));
            n = inner.kid[i];
        }
        (n, k)
    }

    /// Writes `first` as the first element of the subtree the path's
    /// last step leads to, in every ancestor for which it is the first.
    fn set_first(&mut self, path: &[(u32, usize)], first: (f64, u32)) {
        for &(n, i) in path.iter().rev() {
            let inner = &mut self.inners[n];
            inner.score[i] = first.0;
            inner.id[i] = first.1;
            if i != 0 {
                break;
            }
        }
    }

    /// Inserts (score, member) and returns its slot.
    fn insert(&mut self, score: f64, member: &[u8]) -> u32 {
        let node = Node {
            score,
            member: member.into(),
            next: 0,
        };
        let t = match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = node;
                i
            }
            None => self.nodes.push(node) as u32,
        };
        self.link(t);
        t
    }

    /// Puts element `t` (in the arena, not in the tree) in its place.
    fn link(&mut self, t: u32) {
        let s = self.nodes[t as usize].score;
        self.len += 1;
        if self.root == NIL {
            let l = self.leaves.alloc();
            self.leaves[l].insert(0, (s, t));
            self.root = l;
            self.height = 0;
            return;
        }
        let mut path = Path::new();
        // Borrowed, not cloned: cloning a member `Bytes` made from a `Vec`
        // allocates a shared header that then stays with it.
        let (leaf, pos) = self.descend_key(s, &self.nodes[t as usize].member, &mut path);
        for &(n, i) in &path {
            self.inners[n].count[i] += 1;
        }
        if pos == 0 {
            self.set_first(&path, (s, t));
        }
        let mut split = if self.leaves[leaf].len() < B {
            self.leaves[leaf].insert(pos, (s, t));
            None
        } else {
            let r = Self::insert_split(&mut self.leaves, leaf, pos, (s, t), 0);
            let right = &self.leaves[r];
            Some((r, right.total(), right.first(0)))
        };
        // A split node's new right half goes in beside it, which can
        // split the parent in turn, up to a new root.
        let mut level = path.len();
        while let Some((kid, count, first)) = split {
            if level == 0 {
                let old = self.root;
                let (old_count, old_first) = self.summary(old, self.height);
                let r = self.inners.alloc();
                let inner = &mut self.inners[r];
                inner.insert(0, (old_count as u32, old, old_first.0, old_first.1));
                inner.insert(1, (count as u32, kid, first.0, first.1));
                self.root = r;
                self.height += 1;
                break;
            }
            level -= 1;
            let (n, i) = path[level];
            self.inners[n].count[i] -= count as u32;
            let e = (count as u32, kid, first.0, first.1);
            split = if self.inners[n].len() < B {
                self.inners[n].insert(i + 1, e);
                None
            } else {
                // A new child always goes after an existing one: the
                // front insert here is at 1.
                let r = Self::insert_split(&mut self.inners, n, i + 1, e, 1);
                let right = &self.inners[r];
                Some((r, right.total(), right.first(0)))
            };
        }
    }

    /// Inserts `e` at `at` into full node `n`, moving its later entries
    /// to a new node (returned), which goes right after `n`. An insert at
    /// either end (`front`, the first position an insert can take, or the
    /// end) keeps the full node's entries together and leaves the new
    /// element with the node's head or alone: members added in order, or
    /// in descending order as an RDB file lists a large set, keep the
    /// nodes full. Elsewhere the node splits in halves.
    fn insert_split<T: Slots + Default>(
        pool: &mut Pool<T>,
        n: u32,
        at: usize,
        e: T::E,
        front: usize,
    ) -> u32 {
        let cut = if at == B || at == front { at } else { B / 2 };
        let r = pool.alloc();
        let mut right = T::default();
        let left = &mut pool[n];
        for i in cut..B {
            right.insert(i - cut, left.get(i));
        }
        left.set_len(cut);
        if at <= cut && cut < B {
            left.insert(at, e);
        } else {
            right.insert(at - cut, e);
        }
        pool[r] = right;
        r
    }

    /// Elements below node `n` at `level` (0: a leaf) and its first one.
    fn summary(&self, n: u32, level: usize) -> (usize, (f64, u32)) {
        if level == 0 {
            let l = &self.leaves[n];
            (l.total(), l.first(0))
        } else {
            let i = &self.inners[n];
            (i.total(), i.first(0))
        }
    }

    /// Takes element `t` out of the tree (it stays in the arena).
    fn unlink(&mut self, t: u32) {
        let n = &self.nodes[t as usize];
        let mut path = Path::new();
        let (leaf, pos) = self.descend_key(n.score, &n.member, &mut path);
        debug_assert_eq!(self.leaves[leaf].id.get(pos), Some(&t));
        self.remove_at(&path, leaf, pos, 1);
    }

    /// Removes entries `[pos, pos + m)` of `leaf`, reached by `path`, then
    /// restores the counts, first elements and fill of the nodes above.
    fn remove_at(&mut self, path: &Path, leaf: u32, pos: usize, m: usize) {
        for &(n, i) in path {
            self.inners[n].count[i] -= m as u32;
        }
        self.len -= m;
        self.leaves[leaf].remove(pos, pos + m);
        if pos == 0 && self.leaves[leaf].len() > 0 {
            let first = self.leaves[leaf].first(0);
            self.set_first(path, first);
        }
        // Bottom-up: an empty node leaves its parent; a thin one merges
        // with or borrows from a sibling.
        let mut level = path.len();
        let mut node = leaf;
        let mut at_leaves = true;
        loop {
            if level == 0 {
                self.shrink_root();
                return;
            }
            let (parent, i) = path[level - 1];
            let len = if at_leaves {
                self.leaves[node].len()
            } else {
                self.inners[node].len()
            };
            if len == 0 {
                if at_leaves {
                    self.leaves.release(node);
                } else {
                    self.inners.release(node);
                }
                self.inners[parent].remove(i, i + 1);
                if i == 0 && self.inners[parent].len() > 0 {
                    let first = self.inners[parent].first(0);
                    self.set_first(&path[..level - 1], first);
                }
            } else if len < MIN_FILL && self.inners[parent].len() > 1 {
                let li = if i + 1 < self.inners[parent].len() {
                    i
                } else {
                    i - 1
                };
                let (a, b) = (self.inners[parent].kid[li], self.inners[parent].kid[li + 1]);
                let r = if at_leaves {
                    Self::rebalance(&mut self.leaves, a, b)
                } else {
                    Self::rebalance(&mut self.inners, a, b)
                };
                let p = &mut self.inners[parent];
                match r {
                    None => {
                        p.count[li] += p.count[li + 1];
                        p.remove(li + 1, li + 2);
                    }
                    Some((lc, rc, first)) => {
                        p.count[li] = lc as u32;
                        p.count[li + 1] = rc as u32;
                        p.score[li + 1] = first.0;
                        p.id[li + 1] = first.1;
                    }
                }
            } else {
                // Nothing changed in the parent's entry count.
                self.shrink_root();
                return;
            }
            node = parent;
            at_leaves = false;
            level -= 1;
        }
    }

    /// Evens out siblings `a` and `b` (in that order) of `pool`, or
    /// merges `b` into `a` when together they fill at most three quarters
    /// of a node. Returns None after a merge (`b` is freed), else the two
    /// new element counts and `b`'s new first element.
    fn rebalance<T: Slots + Default>(
        pool: &mut Pool<T>,
        a: u32,
        b: u32,
    ) -> Option<(usize, usize, (f64, u32))> {
        let (nx, ny) = (pool[a].len(), pool[b].len());
        if nx + ny <= B * 3 / 4 {
            let y = pool[b].clone();
            let x = &mut pool[a];
            for j in 0..ny {
                x.insert(nx + j, y.get(j));
            }
            pool.release(b);
            return None;
        }
        let mut all: SmallVec<[T::E; 2 * B]> = SmallVec::new();
        all.extend((0..nx).map(|j| pool[a].get(j)));
        all.extend((0..ny).map(|j| pool[b].get(j)));
        let half = all.len() / 2;
        let (mut l, mut r) = (T::default(), T::default());
        for (j, e) in all.iter().enumerate() {
            if j < half {
                l.insert(j, *e);
            } else {
                r.insert(j - half, *e);
            }
        }
        let out = (l.total(), r.total(), r.first(0));
        pool[a] = l;
        pool[b] = r;
        Some(out)
    }

    /// Makes a root inner node with a single child give way to it.
    fn shrink_root(&mut self) {
        while self.height > 0 && self.inners[self.root].len() == 1 {
            let old = self.root;
            self.root = self.inners[old].kid[0];
            self.inners.release(old);
            self.height -= 1;
        }
        let empty = if self.height == 0 {
            self.root != NIL && self.leaves[self.root].len() == 0
        } else {
            self.inners[self.root].len() == 0
        };
        if empty {
            // The elements' arena stays: callers still read the slot of
            // the element just unlinked.
            self.leaves = Pool::default();
            self.inners = Pool::default();
            self.root = NIL;
            self.height = 0;
        }
    }

    /// Frees element `t`'s slot, returning its member and score.
    fn release(&mut self, t: u32) -> (Bytes, f64) {
        let n = &mut self.nodes[t as usize];
        let member = Bytes::from(std::mem::take(&mut n.member));
        let score = n.score;
        self.free.push(t);
        (member, score)
    }

    /// Gives element `t` a new score. In place when it keeps its place
    /// among its leaf neighbours (ZINCRBY by small steps, a timestamp that
    /// moves less than its neighbours' gap), as Redis updates a skiplist
    /// node in place; else it is taken out and put back.
    fn rescore(&mut self, t: u32, score: f64) {
        let n = &self.nodes[t as usize];
        let member = &n.member[..];
        let mut path = Path::new();
        let (leaf, pos) = self.descend_key(n.score, member, &mut path);
        let l = &self.leaves[leaf];
        let len = l.len();
        let stays = pos > 0
            && pos + 1 < len
            && self.lt(l.score[pos - 1], l.id[pos - 1], score, member)
            && !self.le(l.score[pos + 1], l.id[pos + 1], score, member);
        if stays {
            self.leaves[leaf].score[pos] = score;
            self.nodes[t as usize].score = score;
            return;
        }
        self.remove_at(&path, leaf, pos, 1);
        self.nodes[t as usize].score = score;
        self.link(t);
    }

    /// Number of leading elements whose score satisfies the monotone
    /// `pred` (members are not read).
    fn count_prefix_score<F: Fn(f64) -> bool>(&self, pred: F) -> usize {
        if self.root == NIL {
            return 0;
        }
        let mut acc = 0;
        let mut n = self.root;
        for _ in 0..self.height {
            let inner = &self.inners[n];
            let len = inner.len as usize;
            let mut i = 0;
            while i + 1 < len && pred(inner.score[i + 1]) {
                acc += inner.count[i] as usize;
                i += 1;
            }
            n = inner.kid[i];
        }
        let leaf = &self.leaves[n];
        acc + leaf.score[..leaf.len as usize]
            .iter()
            .take_while(|s| pred(**s))
            .count()
    }

    /// Number of leading elements satisfying the monotone `pred`
    /// (binary searches: members are read at few positions).
    fn count_prefix<F: Fn(f64, &[u8]) -> bool>(&self, pred: F) -> usize {
        if self.root == NIL {
            return 0;
        }
        let ok = |s: f64, id: u32| pred(s, &self.nodes[id as usize].member);
        let mut acc = 0;
        let mut n = self.root;
        for _ in 0..self.height {
            let inner = &self.inners[n];
            // Children 1.. whose first element satisfies `pred` (a prefix):
            // every child before the last of them is wholly inside.
            let k = partition(1, inner.len as usize, |i| ok(inner.score[i], inner.id[i]));
            acc += inner.count[..k - 1]
                .iter()
                .map(|c| *c as usize)
                .sum::<usize>();
            n = inner.kid[k - 1];
        }
        let leaf = &self.leaves[n];
        acc + partition(0, leaf.len as usize, |i| ok(leaf.score[i], leaf.id[i]))
    }

    /// 0-based rank of element `t`.
    fn rank(&self, t: u32) -> usize {
        let n = &self.nodes[t as usize];
        let mut path = Path::new();
        let (_, pos) = self.descend_key(n.score, &n.member, &mut path);
        pos + path
            .iter()
            .map(|&(p, i)| {
                let c = &self.inners[p].count[..i];
                c.iter().map(|c| *c as usize).sum::<usize>()
            })
            .sum::<usize>()
    }

    /// The element at 0-based rank `k`.
    fn select(&self, k: usize) -> Option<u32> {
        if k >= self.len {
            return None;
        }
        let mut path = Path::new();
        let (leaf, pos) = self.descend_rank(k, &mut path);
        Some(self.leaves[leaf].id[pos])
    }

    /// Calls `f(member, score)` for the elements with ranks in
    /// `[start, end)`, ascending, or descending when `rev`.
    fn visit<F: FnMut(&[u8], f64)>(&self, start: usize, end: usize, rev: bool, f: &mut F) {
        let end = end.min(self.len);
        if start < end {
            self.visit_node(self.root, self.height, start, end, rev, f);
        }
    }

    fn visit_node<F: FnMut(&[u8], f64)>(
        &self,
        n: u32,
        level: usize,
        start: usize,
        end: usize,
        rev: bool,
        f: &mut F,
    ) {
        if level == 0 {
            let leaf = &self.leaves[n];
            let mut each = |i: usize| f(&self.nodes[leaf.id[i] as usize].member, leaf.score[i]);
            if rev {
                (start..end).rev().for_each(&mut each);
            } else {
                (start..end).for_each(&mut each);
            }
            return;
        }
        let inner = &self.inners[n];
        let mut spans: SmallVec<[(u32, usize, usize); B]> = SmallVec::new();
        let mut off = 0;
        for i in 0..inner.len as usize {
            let c = inner.count[i] as usize;
            let (a, b) = (start.max(off), end.min(off + c));
            if a < b {
                spans.push((inner.kid[i], a - off, b - off));
            }
            off += c;
            if off >= end {
                break;
            }
        }
        if rev {
            spans.reverse();
        }
        for (kid, a, b) in spans {
            self.visit_node(kid, level - 1, a, b, rev, f);
        }
    }

    /// Removes and returns the elements with ranks in `[start, end)`;
    /// `before_free` sees each removed element just before it is freed.
    fn remove_range<F: FnMut(&mut Nodes, u32)>(
        &mut self,
        start: usize,
        end: usize,
        mut before_free: F,
    ) -> Vec<(Bytes, f64)> {
        let end = end.min(self.len);
        let mut out = Vec::with_capacity(end.saturating_sub(start));
        let mut left = end.saturating_sub(start);
        while left > 0 {
            let mut path = Path::new();
            let (leaf, pos) = self.descend_rank(start, &mut path);
            let m = left.min(self.leaves[leaf].len() - pos);
            for j in pos..pos + m {
                let t = self.leaves[leaf].id[j];
                before_free(&mut self.nodes, t);
                out.push(self.release(t));
            }
            self.remove_at(&path, leaf, pos, m);
            left -= m;
        }
        if self.len == 0 {
            // Drops the elements' arena too.
            *self = Tree::default();
        }
        out
    }

    /// Checks every count, first element, fill and the order below the
    /// root, returning the number of elements (tests only).
    #[cfg(test)]
    fn check(&self) -> usize {
        if self.root == NIL {
            assert_eq!(self.len, 0);
            return 0;
        }
        let mut seq = Vec::new();
        let (count, _) = self.check_node(self.root, self.height, true, &mut seq);
        assert_eq!(count, self.len, "len");
        for w in seq.windows(2) {
            let (a, b) = (&self.nodes[w[0] as usize], &self.nodes[w[1] as usize]);
            assert_eq!(
                cmp_entry(a.score, &a.member, b.score, &b.member),
                Ordering::Less,
                "order"
            );
        }
        count
    }

    #[cfg(test)]
    fn check_node(
        &self,
        n: u32,
        level: usize,
        root: bool,
        seq: &mut Vec<u32>,
    ) -> (usize, (f64, u32)) {
        if level == 0 {
            let l = &self.leaves[n];
            assert!(l.len() > 0, "leaf fill");
            for i in 0..l.len() {
                assert_eq!(l.score[i], self.nodes[l.id[i] as usize].score, "leaf score");
                seq.push(l.id[i]);
            }
            return (l.len(), l.first(0));
        }
        let inner = &self.inners[n];
        assert!(inner.len() >= if root { 2 } else { 1 }, "inner fill");
        let mut total = 0;
        for i in 0..inner.len() {
            let (c, first) = self.check_node(inner.kid[i], level - 1, false, seq);
            assert_eq!(c, inner.count[i] as usize, "count");
            assert_eq!(first, inner.first(i), "first element");
            total += c;
        }
        (total, inner.first(0))
    }
}

// ---- listpack -----------------------------------------------------------------

/// Largest listpack buffer before a set converts to skiplist regardless of
/// the configured limits (Redis's listpack "safe size" is 1 GiB too); keeps
/// the `u32` counters of [`Lp`] from overflowing.
const LP_SAFE_BYTES: usize = 1 << 30;

/// Header bytes below this are "tiny" entries: score `h >> 4` (0..=11) and
/// member length `h & 15` (0..=15) in the one byte, the member right after.
/// Small non-negative integer scores (ranks, counters, flags) with short
/// members are common enough to deserve a 1-byte header, as Redis's
/// listpack has its 7-bit integers and 6-bit string lengths.
const TAG_TINY_END: u8 = 0xC0;
/// `TAG_TINY_END..TAG_SMALL_END`: a small integer score in the tag byte
/// itself (zigzag, so -24..=23), then the member length.
const TAG_SMALL_END: u8 = 0xF0;
/// `TAG_INT_BASE + k` (k = 1..=8): a k-byte little-endian zigzag integer.
const TAG_INT_BASE: u8 = 0xF0;
/// An 8-byte little-endian IEEE double follows.
const TAG_F64: u8 = 0xFF;

/// Integral scores up to 2^53 in magnitude round-trip exactly through i64.
const MAX_EXACT_INT: f64 = 9_007_199_254_740_992.0;

#[inline]
fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

#[inline]
fn unzigzag(z: u64) -> i64 {
    ((z >> 1) as i64) ^ -((z & 1) as i64)
}

/// The score part of an entry's encoding: (bytes, their count, whether the
/// member length is folded into the first byte).
fn score_header(score: f64, mlen: usize) -> ([u8; 9], usize, bool) {
    let mut h = [0u8; 9];
    if score.fract() == 0.0 && score.abs() <= MAX_EXACT_INT {
        if (0.0..=11.0).contains(&score) && mlen < 16 {
            h[0] = ((score as u8) << 4) | mlen as u8;
            return (h, 1, true);
        }
        let z = zigzag(score as i64);
        if z < (TAG_SMALL_END - TAG_TINY_END) as u64 {
            h[0] = TAG_TINY_END + z as u8;
            (h, 1, false)
        } else {
            let k = 8 - (z.leading_zeros() as usize / 8);
            h[0] = TAG_INT_BASE + k as u8;
            h[1..=k].copy_from_slice(&z.to_le_bytes()[..k]);
            (h, 1 + k, false)
        }
    } else {
        h[0] = TAG_F64;
        h[1..].copy_from_slice(&score.to_le_bytes());
        (h, 9, false)
    }
}

/// Appends the encoding of one (score, member) entry:
/// `[score][member length, LEB128][member]`, or `[tiny header][member]`.
/// Integral scores (the common case: ranks, counters, timestamps) take 1–9
/// bytes, like Redis's listpack integer encodings; others take 9.
fn put_entry(out: &mut Vec<u8>, score: f64, member: &[u8]) {
    let (h, n, tiny) = score_header(score, member.len());
    out.extend_from_slice(&h[..n]);
    if !tiny {
        let mut n = member.len();
        while n >= 0x80 {
            out.push((n as u8 & 0x7F) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }
    out.extend_from_slice(member);
}

/// Encoded size of an entry (see [`put_entry`]).
fn entry_size(score: f64, member: &[u8]) -> usize {
    let (_, s, tiny) = score_header(score, member.len());
    let mut l = 0;
    if !tiny {
        let mut n = member.len();
        l = 1;
        while n >= 0x80 {
            n >>= 7;
            l += 1;
        }
    }
    s + l + member.len()
}

/// One decoded entry: its score, member byte range and where the next
/// entry starts.
struct LpEntry {
    score: f64,
    m_start: usize,
    m_end: usize,
}

/// Decodes the entry at `pos` (which must be an entry boundary).
#[inline]
fn read_entry(buf: &[u8], mut pos: usize) -> LpEntry {
    let tag = buf[pos];
    pos += 1;
    if tag < TAG_TINY_END {
        return LpEntry {
            score: (tag >> 4) as f64,
            m_start: pos,
            m_end: pos + (tag & 0x0F) as usize,
        };
    }
    let score = if tag < TAG_SMALL_END {
        unzigzag((tag - TAG_TINY_END) as u64) as f64
    } else if tag == TAG_F64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&buf[pos..pos + 8]);
        pos += 8;
        f64::from_le_bytes(a)
    } else {
        let k = (tag - TAG_INT_BASE) as usize;
        let mut a = [0u8; 8];
        a[..k].copy_from_slice(&buf[pos..pos + k]);
        pos += k;
        unzigzag(u64::from_le_bytes(a)) as f64
    };
    let mut n = 0usize;
    let mut shift = 0;
    loop {
        let b = buf[pos];
        pos += 1;
        n |= ((b & 0x7F) as usize) << shift;
        if b < 0x80 {
            break;
        }
        shift += 7;
    }
    LpEntry {
        score,
        m_start: pos,
        m_end: pos + n,
    }
}

/// The compact encoding: entries packed back to back in one exact-size
/// allocation, in (score, member) order, like Redis's listpack. A set of
/// ten short members with integer scores costs about 10 bytes per element
/// and one allocation; every operation is a linear scan, bounded by
/// `zset-max-listpack-entries`.
#[derive(Debug, Clone, Default)]
struct Lp {
    /// Exactly as long as its contents (`Box<[u8]>`, not `Vec`): no growth
    /// slack, and the struct stays 24 bytes.
    buf: Box<[u8]>,
    len: u32,
    member_bytes: u32,
}

/// Iterator over a listpack's entries: (entry start, entry).
struct LpIter<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for LpIter<'a> {
    type Item = (usize, LpEntry);
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let start = self.pos;
        let e = read_entry(self.buf, start);
        self.pos = e.m_end;
        Some((start, e))
    }
}

impl Lp {
    fn iter(&self) -> LpIter<'_> {
        LpIter {
            buf: &self.buf,
            pos: 0,
        }
    }

    #[inline]
    fn member(&self, e: &LpEntry) -> &[u8] {
        &self.buf[e.m_start..e.m_end]
    }

    /// (rank, entry start, entry) of `member`.
    fn find(&self, member: &[u8]) -> Option<(usize, usize, LpEntry)> {
        self.iter()
            .enumerate()
            .find(|(_, (_, e))| &self.buf[e.m_start..e.m_end] == member)
            .map(|(r, (start, e))| (r, start, e))
    }

    /// Byte offset of the entry with rank `r` (the buffer's end when
    /// `r >= len`).
    fn offset_of_rank(&self, r: usize) -> usize {
        self.iter()
            .nth(r)
            .map(|(start, _)| start)
            .unwrap_or(self.buf.len())
    }

    /// Inserts an entry (not present) at its sorted position.
    fn insert(&mut self, score: f64, member: &[u8]) {
        let at = self
            .iter()
            .find(|(_, e)| {
                cmp_entry(e.score, &self.buf[e.m_start..e.m_end], score, member) != Ordering::Less
            })
            .map(|(start, _)| start)
            .unwrap_or(self.buf.len());
        let n = entry_size(score, member);
        edit_exact(&mut self.buf, |v| {
            v.reserve_exact(n);
            put_entry(v, score, member);
            v[at..].rotate_right(n);
        });
        self.len += 1;
        self.member_bytes += member.len() as u32;
    }

    /// Removes the entries in bytes `[a, b)` (`count` of them, with
    /// `mbytes` member bytes in total).
    fn remove_bytes(&mut self, a: usize, b: usize, count: usize, mbytes: usize) {
        edit_exact(&mut self.buf, |v| {
            v.drain(a..b);
        });
        self.len -= count as u32;
        self.member_bytes -= mbytes as u32;
    }
}

/// The large encoding, boxed so that a `ZSet` (and so every `Obj` slot of
/// the keyspace, whatever its type) stays small.
#[derive(Debug, Clone, Default)]
struct Skip {
    tree: Tree,
    /// Member → node, chained through the nodes.
    index: HashIndex,
    member_bytes: usize,
}

impl Skip {
    /// The node holding `member`.
    fn find(&self, member: &[u8]) -> Option<u32> {
        let nodes = &self.tree.nodes;
        self.index.find(nodes, hash_bytes(member), |i| {
            &nodes[i as usize].member[..] == member
        })
    }

    /// Adds a member known to be absent.
    fn add(&mut self, score: f64, member: &[u8]) {
        let h = hash_bytes(member);
        self.member_bytes += member.len();
        let t = self.tree.insert(score, member);
        let len = self.tree.len();
        self.index.insert(&mut self.tree.nodes, t, h, len);
    }

    /// Removes the member held by element `t`, returning its score.
    fn delete(&mut self, t: u32) -> f64 {
        self.tree.unlink(t);
        let nodes = &mut self.tree.nodes;
        let h = nodes.hash(t);
        self.index.unlink(nodes, t, h);
        let (member, score) = self.tree.release(t);
        self.member_bytes -= member.len();
        let len = self.tree.len();
        self.index.removed(&mut self.tree.nodes, len);
        score
    }

    /// Gives the member held by element `t` a new score: it moves in the
    /// tree and keeps its slot (and its place in the member index).
    fn rescore(&mut self, t: u32, score: f64) {
        self.index.advance(&mut self.tree.nodes);
        self.tree.rescore(t, score);
    }
}

#[derive(Debug, Clone)]
enum Repr {
    Listpack(Lp),
    Skiplist(Shared<Skip>),
}

/// A sorted set value.
#[derive(Debug, Clone)]
pub struct ZSet {
    repr: Repr,
}

impl Default for ZSet {
    fn default() -> Self {
        ZSet {
            repr: Repr::Listpack(Lp::default()),
        }
    }
}

impl PartialEq for ZSet {
    /// Content equality: the same (member, score) pairs, whatever the
    /// encodings.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self
                .range(0, self.len())
                .iter()
                .zip(other.range(0, other.len()).iter())
                .all(|(a, b)| a.0 == b.0 && a.1 == b.1)
    }
}

/// Redis's listpack stores the score as text and reads "-0" back as the
/// integer 0: a listpack never holds -0.
#[inline]
fn lp_score(score: f64) -> f64 {
    if score == 0.0 {
        0.0
    } else {
        score
    }
}

impl ZSet {
    /// An empty set in the compact encoding.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty set in the encoding Redis would create for `size_hint`
    /// elements whose longest member is `max_member_len` bytes.
    pub fn with_hint(size_hint: usize, max_member_len: usize, lim: ZLimits) -> Self {
        if lim.entries == 0 || size_hint > lim.entries || max_member_len > lim.value {
            // The member index sized for the hint: it then never rehashes
            // while the set fills (RDB loading, ZUNIONSTORE and friends).
            let skip = Skip {
                index: HashIndex::with_buckets(size_hint.max(4)),
                ..Skip::default()
            };
            ZSet {
                repr: Repr::Skiplist(Shared::new(skip)),
            }
        } else {
            Self::default()
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Listpack(lp) => lp.len as usize,
            Repr::Skiplist(sk) => sk.tree.len(),
        }
    }

    /// True when the set has no elements (callers then delete the key).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Total bytes of all members.
    pub fn member_bytes(&self) -> usize {
        match &self.repr {
            Repr::Listpack(lp) => lp.member_bytes as usize,
            Repr::Skiplist(sk) => sk.member_bytes,
        }
    }

    /// Held in a [`Shared`] (the large representation): cloning is O(1).
    pub fn is_shared(&self) -> bool {
        matches!(self.repr, Repr::Skiplist(_))
    }

    /// Redis's OBJECT ENCODING name for the encoding in use.
    pub fn encoding(&self) -> &'static str {
        match &self.repr {
            Repr::Listpack(_) => "listpack",
            Repr::Skiplist(_) => "skiplist",
        }
    }

    /// DEBUG HTSTATS-KEY's text, when the value is held in a hash table.
    pub fn table_stats(&self) -> Option<String> {
        match &self.repr {
            Repr::Skiplist(sk) => Some(sk.index.stats(&sk.tree.nodes)),
            Repr::Listpack(_) => None,
        }
    }

    /// Approximate heap bytes (MEMORY USAGE, accounting).
    pub fn memory_usage(&self) -> usize {
        let base = std::mem::size_of::<Self>();
        match &self.repr {
            Repr::Listpack(lp) => base + lp.buf.len(),
            Repr::Skiplist(sk) => {
                base + std::mem::size_of::<Skip>()
                    + sk.tree.nodes.heap_bytes()
                    + sk.tree.free.heap_bytes()
                    + sk.tree.leaves.heap_bytes()
                    + sk.tree.inners.heap_bytes()
                    + sk.index.heap_bytes()
                    + sk.member_bytes
            }
        }
    }

    /// Switches to the skiplist encoding (no-op if already there).
    pub fn convert_to_skiplist(&mut self) {
        if let Repr::Listpack(lp) = &self.repr {
            let mut sk = Skip {
                index: HashIndex::with_buckets((lp.len as usize).max(4)),
                ..Skip::default()
            };
            for (_, e) in lp.iter() {
                sk.add(e.score, lp.member(&e));
            }
            self.repr = Repr::Skiplist(Shared::new(sk));
        }
    }

    /// Converts back to listpack when the set fits the limits (the store
    /// commands do this after building a result, as Redis 7.0 does).
    pub fn shrink_if_fits(&mut self, lim: ZLimits) {
        if let Repr::Skiplist(sk) = &self.repr {
            if sk.tree.len() <= lim.entries
                && sk.member_bytes < LP_SAFE_BYTES / 2
                && sk.tree.nodes.iter().all(|n| n.member.len() <= lim.value)
            {
                let mut items = Vec::with_capacity(sk.tree.len());
                sk.tree.visit(0, sk.tree.len(), false, &mut |m, s| {
                    items.push((Bytes::copy_from_slice(m), s))
                });
                let size = items.iter().map(|(m, s)| entry_size(lp_score(*s), m)).sum();
                let mut v = Vec::with_capacity(size);
                for (m, s) in &items {
                    put_entry(&mut v, lp_score(*s), m);
                }
                self.repr = Repr::Listpack(Lp {
                    buf: v.into_boxed_slice(),
                    len: items.len() as u32,
                    member_bytes: sk.member_bytes as u32,
                });
            }
        }
    }

    /// The score of `member`.
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match &self.repr {
            Repr::Listpack(lp) => lp.find(member).map(|(_, _, e)| e.score),
            Repr::Skiplist(sk) => sk.find(member).map(|t| sk.tree.nodes[t as usize].score),
        }
    }

    /// Sets `member`'s score, adding it if missing (converting to skiplist
    /// when the listpack limits would be exceeded). Returns true if added.
    pub fn insert(&mut self, member: &[u8], score: f64, lim: ZLimits) -> bool {
        debug_assert!(!score.is_nan());
        if let Repr::Listpack(lp) = &mut self.repr {
            let score = lp_score(score);
            match lp.find(member) {
                Some((_, start, e)) => {
                    if e.score == score {
                        return false;
                    }
                    let mlen = member.len();
                    lp.remove_bytes(start, e.m_end, 1, mlen);
                    lp.insert(score, member);
                    return false;
                }
                None => {
                    if (lp.len as usize) < lim.entries
                        && member.len() <= lim.value
                        && lp.buf.len() + entry_size(score, member) <= LP_SAFE_BYTES
                    {
                        lp.insert(score, member);
                        return true;
                    }
                    self.convert_to_skiplist();
                }
            }
        }
        match &mut self.repr {
            Repr::Listpack(_) => unreachable!("converted above"),
            Repr::Skiplist(sk) => match sk.find(member) {
                Some(t) => {
                    if sk.tree.nodes[t as usize].score != score {
                        sk.rescore(t, score);
                    }
                    false
                }
                None => {
                    sk.add(score, member);
                    true
                }
            },
        }
    }

    /// Removes `member`, returning its score.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        match &mut self.repr {
            Repr::Listpack(lp) => {
                let (_, start, e) = lp.find(member)?;
                lp.remove_bytes(start, e.m_end, 1, member.len());
                Some(e.score)
            }
            Repr::Skiplist(sk) => {
                let t = sk.find(member)?;
                Some(sk.delete(t))
            }
        }
    }

    /// 0-based rank of `member` in ascending order.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        match &self.repr {
            Repr::Listpack(lp) => lp.find(member).map(|(r, _, _)| r),
            Repr::Skiplist(sk) => Some(sk.tree.rank(sk.find(member)?)),
        }
    }

    /// The element at 0-based ascending rank `r`.
    pub fn get(&self, r: usize) -> Option<(Bytes, f64)> {
        match &self.repr {
            Repr::Listpack(lp) => lp
                .iter()
                .nth(r)
                .map(|(_, e)| (Bytes::copy_from_slice(lp.member(&e)), e.score)),
            Repr::Skiplist(sk) => {
                // A copy: cloning the stored `Bytes` would allocate a
                // shared header that stays with the member.
                let n = &sk.tree.nodes[sk.tree.select(r)? as usize];
                Some((Bytes::copy_from_slice(&n.member), n.score))
            }
        }
    }

    /// How many leading elements (in ascending order) satisfy `pred`, which
    /// must be monotone (true for a prefix). Turns score and lex bounds into
    /// ranks in O(log n).
    pub fn count_prefix<F: Fn(f64, &[u8]) -> bool>(&self, pred: F) -> usize {
        match &self.repr {
            Repr::Listpack(lp) => lp
                .iter()
                .take_while(|(_, e)| pred(e.score, lp.member(e)))
                .count(),
            Repr::Skiplist(sk) => sk.tree.count_prefix(pred),
        }
    }

    /// [`ZSet::count_prefix`] for a predicate on the score alone, which
    /// then reads no member.
    pub fn count_prefix_score<F: Fn(f64) -> bool>(&self, pred: F) -> usize {
        match &self.repr {
            Repr::Listpack(lp) => lp.iter().take_while(|(_, e)| pred(e.score)).count(),
            Repr::Skiplist(sk) => sk.tree.count_prefix_score(pred),
        }
    }

    /// Elements with ascending ranks in `[start, end)`, as (member, score).
    pub fn range(&self, start: usize, end: usize) -> Vec<(Bytes, f64)> {
        let end = end.min(self.len());
        if start >= end {
            return Vec::new();
        }
        match &self.repr {
            Repr::Listpack(lp) => self_range_lp(lp, start, end),
            Repr::Skiplist(sk) => {
                let mut out = Vec::with_capacity(end - start);
                sk.tree.visit(start, end, false, &mut |m, s| {
                    out.push((Bytes::copy_from_slice(m), s))
                });
                out
            }
        }
    }

    /// Calls `f(member, score)` for the elements with ascending ranks in
    /// `[start, end)`, in ascending order, or descending when `rev`: a
    /// range read without copying members (ZRANGE's reply is encoded
    /// straight from the set).
    pub fn for_each_in<F: FnMut(&[u8], f64)>(&self, start: usize, end: usize, rev: bool, mut f: F) {
        let end = end.min(self.len());
        if start >= end {
            return;
        }
        match &self.repr {
            Repr::Listpack(lp) => {
                let it = lp.iter().skip(start).take(end - start);
                if rev {
                    let v: Vec<LpEntry> = it.map(|(_, e)| e).collect();
                    for e in v.iter().rev() {
                        f(lp.member(e), e.score);
                    }
                } else {
                    for (_, e) in it {
                        f(lp.member(&e), e.score);
                    }
                }
            }
            Repr::Skiplist(sk) => sk.tree.visit(start, end, rev, &mut f),
        }
    }

    /// One ZSCAN step over the skiplist encoding (see
    /// [`HashIndex::scan`]: Redis's cursor, which returns every member
    /// present for the whole iteration whatever happens to scores and to
    /// the table between calls). The listpack encoding returns everything
    /// with cursor 0, as Redis does.
    pub fn scan(&self, cursor: u64, count: usize, mut f: impl FnMut(&[u8], f64)) -> u64 {
        match &self.repr {
            Repr::Listpack(lp) => {
                for (_, e) in lp.iter() {
                    f(lp.member(&e), e.score);
                }
                0
            }
            Repr::Skiplist(sk) => {
                let nodes = &sk.tree.nodes;
                sk.index.scan(nodes, cursor, count, |i| {
                    let n = &nodes[i as usize];
                    f(&n.member, n.score)
                })
            }
        }
    }

    /// Every element in ascending order.
    pub fn to_vec(&self) -> Vec<(Bytes, f64)> {
        self.range(0, self.len())
    }

    /// Removes the elements with ascending ranks in `[start, end)` and
    /// returns them in order.
    pub fn remove_range(&mut self, start: usize, end: usize) -> Vec<(Bytes, f64)> {
        let end = end.min(self.len());
        if start >= end {
            return Vec::new();
        }
        match &mut self.repr {
            Repr::Listpack(lp) => {
                let out = self_range_lp(lp, start, end);
                let a = lp.offset_of_rank(start);
                let b = lp.offset_of_rank(end);
                let mbytes = out.iter().map(|(m, _)| m.len()).sum();
                lp.remove_bytes(a, b, out.len(), mbytes);
                out
            }
            Repr::Skiplist(sk) => {
                let Skip { tree, index, .. } = &mut **sk;
                let out = tree.remove_range(start, end, |nodes, t| {
                    let h = nodes.hash(t);
                    index.unlink(nodes, t, h);
                });
                let len = tree.len();
                index.removed(&mut tree.nodes, len);
                sk.member_bytes -= out.iter().map(|(m, _)| m.len()).sum::<usize>();
                out
            }
        }
    }
}

/// The listpack's elements with ranks in `[start, end)`.
fn self_range_lp(lp: &Lp, start: usize, end: usize) -> Vec<(Bytes, f64)> {
    lp.iter()
        .skip(start)
        .take(end.saturating_sub(start))
        .map(|(_, e)| (Bytes::copy_from_slice(lp.member(&e)), e.score))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    const LIM: ZLimits = ZLimits {
        entries: 16,
        value: 64,
    };

    /// Limits under which every set is a tree from its first member.
    const ALWAYS_TREE: ZLimits = ZLimits {
        entries: 0,
        value: 64,
    };

    #[test]
    fn model_check() {
        model_check_with(LIM, 7, |rng| rng.gen_range(0..50) as f64);
    }

    /// Small score steps, as ZINCRBY on a leaderboard: most changes keep
    /// the member between its neighbours (updated in place), some cross
    /// one or several (moved); equal scores order by member.
    #[test]
    fn small_score_steps_keep_the_order() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(5);
        let mut z = ZSet::new();
        let mut model: Vec<(f64, Vec<u8>)> = Vec::new();
        for i in 0..2000 {
            let m = format!("p{i}").into_bytes();
            z.insert(&m, (i * 10) as f64, LIM);
            model.push(((i * 10) as f64, m));
        }
        for round in 0..20000 {
            let k = rng.gen_range(0..model.len());
            let step = [rng.gen_range(-3..4), rng.gen_range(-25..26)][round % 2];
            model[k].0 += step as f64;
            let (s, m) = model[k].clone();
            assert!(!z.insert(&m, s, LIM));
            if round % 500 == 0 {
                let mut sorted = model.clone();
                sorted.sort_by(|x, y| cmp_entry(x.0, &x.1, y.0, &y.1));
                let all = z.to_vec();
                assert_eq!(all.len(), sorted.len());
                for (r, ((m, s), want)) in all.iter().zip(&sorted).enumerate() {
                    assert_eq!((&m[..], *s), (&want.1[..], want.0));
                    if r % 97 == 0 {
                        assert_eq!(z.rank(m), Some(r));
                    }
                }
                if let Repr::Skiplist(sk) = &z.repr {
                    assert_eq!(sk.tree.check(), z.len());
                }
            }
        }
    }

    /// Limits large enough that the set stays a listpack, with scores that
    /// exercise every score encoding.
    #[test]
    fn model_check_listpack() {
        let lim = ZLimits {
            entries: 1000,
            value: 64,
        };
        model_check_with(lim, 11, |rng| match rng.gen_range(0..6) {
            0 => rng.gen_range(-200..200) as f64,
            1 => rng.gen_range(-1e15..1e15f64).round(),
            2 => rng.gen_range(-50.0..50.0f64),
            3 => [f64::INFINITY, f64::NEG_INFINITY, -0.0, 0.0][rng.gen_range(0..4)],
            4 => [
                9007199254740992.0,
                -9007199254740992.0,
                9007199254740994.0,
                1e300,
            ][rng.gen_range(0..4)],
            _ => rng.gen_range(0..50) as f64,
        });
    }

    fn model_check_with(
        lim: ZLimits,
        seed: u64,
        gen_score: impl Fn(&mut rand::rngs::SmallRng) -> f64,
    ) {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
        let mut z = ZSet::new();
        let mut model: Vec<(f64, Vec<u8>)> = Vec::new();
        for i in 0..20000 {
            let m = format!("m{}", rng.gen_range(0..300)).into_bytes();
            let s = gen_score(&mut rng);
            let s = if s == 0.0 { 0.0 } else { s };
            match rng.gen_range(0..10) {
                0..=5 => {
                    let added = z.insert(&m, s, lim);
                    let pos = model.iter().position(|(_, x)| *x == m);
                    assert_eq!(added, pos.is_none());
                    if let Some(p) = pos {
                        model.remove(p);
                    }
                    model.push((s, m.clone()));
                }
                6..=7 => {
                    let r = z.remove(&m);
                    let pos = model.iter().position(|(_, x)| *x == m);
                    assert_eq!(r.is_some(), pos.is_some());
                    if let Some(p) = pos {
                        model.remove(p);
                    }
                }
                8 => {
                    let a = rng.gen_range(0..20);
                    let b = a + rng.gen_range(0..5);
                    model.sort_by(|x, y| cmp_entry(x.0, &x.1, y.0, &y.1));
                    let got = z.remove_range(a, b);
                    let want: Vec<_> = model
                        .drain(a.min(model.len())..b.min(model.len()))
                        .collect();
                    assert_eq!(got.len(), want.len());
                }
                _ => {}
            }
            model.sort_by(|x, y| cmp_entry(x.0, &x.1, y.0, &y.1));
            assert_eq!(z.len(), model.len());
            assert_eq!(
                z.member_bytes(),
                model.iter().map(|x| x.1.len()).sum::<usize>()
            );
            if i % 97 == 0 {
                let all = z.to_vec();
                for (k, (m, s)) in all.iter().enumerate() {
                    assert_eq!((&m[..], *s), (&model[k].1[..], model[k].0));
                    assert_eq!(z.rank(m), Some(k));
                    assert_eq!(z.get(k).map(|x| x.1), Some(*s));
                }
                let c = z.count_prefix(|s, _| s < 25.0);
                assert_eq!(c, model.iter().filter(|x| x.0 < 25.0).count());
                for (k, x) in model.iter().enumerate() {
                    assert_eq!(z.score(&x.1), Some(x.0));
                    assert_eq!(z.range(k, k + 2).len(), (model.len() - k).min(2));
                }
                if let Repr::Skiplist(sk) = &z.repr {
                    assert_eq!(sk.tree.check(), z.len());
                }
                let mut copy = z.clone();
                copy.convert_to_skiplist();
                assert!(copy == z);
                copy.shrink_if_fits(lim);
                assert!(copy == z);
                assert_eq!(copy.member_bytes(), z.member_bytes());
            }
        }
    }

    /// Tens of thousands of members: the member index grows and shrinks
    /// through many incremental rehashes (each spread over later writes)
    /// while scores change and ranges are removed; every lookup agrees
    /// with the tree throughout.
    #[test]
    fn member_index_follows_the_tree_through_rehashes() {
        let lim = ALWAYS_TREE;
        let mut rng = rand::rngs::SmallRng::seed_from_u64(5);
        let mut z = ZSet::new();
        let mut model = std::collections::HashMap::new();
        let mut saw_rehash = false;
        for round in 0..60_000u32 {
            let m = format!("member:{}", rng.gen_range(0..40_000));
            let op = if round < 30_000 {
                0
            } else {
                rng.gen_range(0..4)
            };
            match op {
                0 | 1 => {
                    let s = f64::from(rng.gen_range(0..1000));
                    assert_eq!(z.insert(m.as_bytes(), s, lim), !model.contains_key(&m));
                    model.insert(m, s);
                }
                2 => assert_eq!(z.remove(m.as_bytes()), model.remove(&m)),
                _ => {
                    let a = rng.gen_range(0..z.len().max(1));
                    for (m, _) in z.remove_range(a, a + 50) {
                        assert!(model.remove(std::str::from_utf8(&m).unwrap()).is_some());
                    }
                }
            }
            if let Repr::Skiplist(sk) = &z.repr {
                saw_rehash |= sk.index.is_rehashing();
            }
            assert_eq!(z.len(), model.len());
            if round % 5000 == 0 {
                for (m, s) in &model {
                    assert_eq!(z.score(m.as_bytes()), Some(*s), "{m}");
                }
            }
        }
        assert!(saw_rehash);
        for (m, s) in &model {
            assert_eq!(z.score(m.as_bytes()), Some(*s), "{m}");
            let r = z.rank(m.as_bytes()).unwrap();
            assert_eq!(z.get(r), Some((Bytes::from(m.clone()), *s)));
        }
        assert_eq!(z.score(b"member:absent"), None);
        let mut seen = std::collections::HashSet::new();
        let mut cur = 0;
        loop {
            cur = z.scan(cur, 100, |m, _| {
                seen.insert(m.to_vec());
            });
            if cur == 0 {
                break;
            }
        }
        assert_eq!(seen.len(), model.len());
        let n = z.len();
        z.remove_range(0, n);
        assert!(z.is_empty());
    }

    #[test]
    fn score_encodings_round_trip() {
        let lim = ZLimits {
            entries: 128,
            value: 64,
        };
        let scores = [
            0.0,
            -0.0,
            1.0,
            -1.0,
            11.0,
            12.0,
            23.0,
            -24.0,
            24.0,
            -25.0,
            119.0,
            -120.0,
            120.0,
            -121.0,
            255.0,
            65536.0,
            -1e15,
            9007199254740992.0,
            -9007199254740992.0,
            9007199254740994.0,
            1.5,
            -2.25,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::MIN,
        ];
        let mut z = ZSet::new();
        for (i, s) in scores.iter().enumerate() {
            assert!(z.insert(format!("m{i}").as_bytes(), *s, lim));
        }
        assert_eq!(z.encoding(), "listpack");
        for (i, s) in scores.iter().enumerate() {
            let got = z.score(format!("m{i}").as_bytes()).unwrap();
            assert_eq!(got, *s);
            // A listpack never holds -0.
            assert!(!(got == 0.0 && got.is_sign_negative()));
        }
        let all = z.to_vec();
        for w in all.windows(2) {
            assert_ne!(
                cmp_entry(w[0].1, &w[0].0, w[1].1, &w[1].0),
                Ordering::Greater
            );
        }
        // A long member gets a multi-byte length prefix.
        let long = vec![b'x'; 300];
        let big = ZLimits {
            entries: 128,
            value: 1000,
        };
        assert!(z.insert(&long, 3.5, big));
        assert_eq!(z.score(&long), Some(3.5));
        assert_eq!(z.encoding(), "listpack");
        assert_eq!(z.remove(&long), Some(3.5));
        assert_eq!(z.len(), scores.len());
    }

    /// A set grown to tens of thousands of members (several tree levels),
    /// then changed at random (moves, deletions, removed rank ranges) and
    /// emptied again in random order: every count, first element, fill
    /// and the order stay right (`Tree::check`), and the set agrees with
    /// an ordered model on contents, ranks and prefix counts.
    #[test]
    fn tree_keeps_its_invariants_through_growth_and_shrinkage() {
        use std::collections::{BTreeSet, HashMap};
        let lim = ALWAYS_TREE;
        let mut rng = rand::rngs::SmallRng::seed_from_u64(17);
        let mut z = ZSet::new();
        let mut order: BTreeSet<(i64, Vec<u8>)> = BTreeSet::new();
        let mut score_of: HashMap<Vec<u8>, i64> = HashMap::new();
        let verify = |z: &ZSet,
                      order: &BTreeSet<(i64, Vec<u8>)>,
                      rng: &mut rand::rngs::SmallRng| {
            if let Repr::Skiplist(sk) = &z.repr {
                assert_eq!(sk.tree.check(), order.len());
            }
            let all = z.to_vec();
            assert_eq!(all.len(), order.len());
            for ((m, s), (ws, wm)) in all.iter().zip(order.iter()) {
                assert_eq!((&m[..], *s), (&wm[..], *ws as f64));
            }
            for _ in 0..50 {
                if order.is_empty() {
                    break;
                }
                let r = rng.gen_range(0..order.len());
                let (_, m) = order.iter().nth(r).unwrap();
                assert_eq!(z.rank(m), Some(r));
                let cut = rng.gen_range(-5..105) as f64;
                let want = order.iter().filter(|(s, _)| (*s as f64) < cut).count();
                assert_eq!(z.count_prefix_score(|s| s < cut), want);
                let lex = format!("m{}", rng.gen_range(0..60000)).into_bytes();
                // A lex predicate is monotone only among equal scores: ask
                // it of the members sharing the lowest score.
                let low = order.iter().next().unwrap().0;
                let want_low = order.iter().filter(|(s, m)| *s == low && *m < lex).count();
                let got = z.count_prefix(|s, m| s < low as f64 || (s == low as f64 && *m < *lex));
                assert_eq!(got, want_low);
            }
        };
        for round in 0..120_000u32 {
            let grow = round < 50_000;
            let op = if grow { 0 } else { rng.gen_range(0..5) };
            let m = format!("m{}", rng.gen_range(0..60000)).into_bytes();
            match op {
                0 | 1 => {
                    let s = rng.gen_range(0..100i64);
                    let added = z.insert(&m, s as f64, lim);
                    assert_eq!(added, !score_of.contains_key(&m));
                    if let Some(old) = score_of.insert(m.clone(), s) {
                        order.remove(&(old, m.clone()));
                    }
                    order.insert((s, m));
                }
                2 | 3 => {
                    let got = z.remove(&m);
                    let want = score_of.remove(&m);
                    assert_eq!(got, want.map(|s| s as f64));
                    if let Some(s) = want {
                        order.remove(&(s, m));
                    }
                }
                _ => {
                    let a = rng.gen_range(0..order.len().max(1));
                    let b = a + rng.gen_range(0..300);
                    let got = z.remove_range(a, b);
                    let want: Vec<_> = order.iter().skip(a).take(b - a).cloned().collect();
                    assert_eq!(got.len(), want.len());
                    for ((gm, gs), (ws, wm)) in got.iter().zip(&want) {
                        assert_eq!((&gm[..], *gs), (&wm[..], *ws as f64));
                        order.remove(&(*ws, wm.clone()));
                        score_of.remove(wm);
                    }
                }
            }
            assert_eq!(z.len(), order.len());
            if round % 10_000 == 0 {
                verify(&z, &order, &mut rng);
            }
        }
        verify(&z, &order, &mut rng);
        // Empty it one member at a time, in random order.
        let mut members: Vec<Vec<u8>> = score_of.keys().cloned().collect();
        members.sort();
        for i in (1..members.len()).rev() {
            members.swap(i, rng.gen_range(0..=i));
        }
        for (k, m) in members.iter().enumerate() {
            let s = score_of[m];
            assert_eq!(z.remove(m), Some(s as f64));
            order.remove(&(s, m.clone()));
            if k % 5000 == 0 {
                verify(&z, &order, &mut rng);
            }
        }
        assert!(z.is_empty());
        verify(&z, &order, &mut rng);
    }

    /// Members added in ascending order (a time-ordered feed) or in
    /// descending order (an RDB file lists a large set from the highest
    /// score down) fill the leaves, not half of them.
    #[test]
    fn ordered_loads_fill_the_leaves() {
        for descending in [false, true] {
            let mut z = ZSet::with_hint(100_000, 16, ALWAYS_TREE);
            for k in 0..100_000u32 {
                let i = if descending { 99_999 - k } else { k };
                z.insert(format!("m{i:06}").as_bytes(), f64::from(i), ALWAYS_TREE);
            }
            let Repr::Skiplist(sk) = &z.repr else {
                panic!("not a tree")
            };
            assert_eq!(sk.tree.check(), 100_000);
            let leaves = sk.tree.leaves.slots.len() - sk.tree.leaves.free.len();
            assert!(
                leaves <= 100_000 / B + 2,
                "{leaves} leaves, descending {descending}"
            );
        }
    }

    /// Two elements per cache line, none across two (see [`Node`]).
    #[test]
    fn an_element_is_half_a_cache_line() {
        assert_eq!(std::mem::size_of::<Node>(), 32);
    }

    #[test]
    fn small_sets_stay_small() {
        // Every Obj slot in the keyspace slab is as large as the largest
        // type, whatever the key's type: keep the big encodings boxed. (The
        // skiplist inline made every slot over 100 bytes; today `List`, 48
        // bytes, is the largest variant.)
        assert!(std::mem::size_of::<ZSet>() <= 24);
        assert!(std::mem::size_of::<crate::storage::value::Obj>() <= 48);
        let lim = ZLimits {
            entries: 128,
            value: 64,
        };
        let mut z = ZSet::new();
        for j in 0..10 {
            z.insert(format!("member:{j}").as_bytes(), j as f64, lim);
        }
        // 1 header byte (score and length) + 8 member bytes per element.
        assert_eq!(z.memory_usage(), std::mem::size_of::<ZSet>() + 90);
        // Larger scores or longer members take a separate length byte.
        z.insert(b"member:10", 12.0, lim);
        z.insert(b"a-longer-member:11", 3.0, lim);
        z.insert(b"m", -3.0, lim);
        assert_eq!(
            z.memory_usage(),
            std::mem::size_of::<ZSet>() + 90 + (2 + 9) + (2 + 18) + (2 + 1)
        );
    }
}
