//! ZSet: the sorted set type.
//!
//! Two encodings, as in Redis:
//!
//! * **listpack** — a `Vec<(score, member)>` kept sorted. Small sets are the
//!   common case; a flat vector is compact and its O(n) inserts are cheap at
//!   the sizes it is allowed to reach (`zset-max-listpack-entries` elements,
//!   members up to `zset-max-listpack-value` bytes).
//! * **skiplist** — an order-statistic treap (a randomized balanced binary
//!   search tree whose nodes carry subtree sizes) whose nodes are also the
//!   entries of a chained hash index on the member. The tree gives rank,
//!   select-by-rank and "how many elements precede this bound" in O(log n),
//!   which is everything range-by-rank, by-score and by-lex need; the index
//!   ([`HashIndex`], rehashed incrementally) gives O(1) ZSCORE and
//!   membership for 4 bytes of link per node plus 4-8 bytes of buckets,
//!   where a separate member → score map cost about 46-90 bytes per
//!   element and resized in one O(n) step. Nodes live in a chunked arena
//!   ([`ChunkVec`] + free list) addressed by `u32`, so there is no `unsafe`,
//!   no per-node allocation beyond the member's bytes, and growing never
//!   copies the nodes. The name "skiplist" is what OBJECT ENCODING reports,
//!   for compatibility.
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

/// A root-to-node path in the tree: (ancestor, left?) pairs. A treap of
/// a few million nodes is about 2 ln n deep, well inside the inline part.
type Path = SmallVec<[(u32, bool); 64]>;

#[derive(Debug, Clone)]
struct Node {
    score: f64,
    member: Bytes,
    left: u32,
    right: u32,
    /// Number of nodes in this subtree (including itself).
    size: u32,
    /// Heap priority: parents have priority >= children.
    prio: u32,
    /// Hash chain link (see [`Chains`]).
    next: u32,
}

/// Tree nodes per arena chunk (log2): 64 nodes, 4 KB. An insert touches
/// a root-to-leaf path of nodes scattered over the arena, so while a
/// snapshot shares the set the first writes copy a chunk per node on the
/// path: 4 KB chunks keep that to a page-sized copy per node, as a forked
/// Redis copies the pages its skiplist writes touch.
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

/// Order-statistic treap over (score, member), stored in an arena.
#[derive(Debug, Clone)]
struct Tree {
    nodes: Nodes,
    free: ChunkVec<u32>,
    root: u32,
    rng: u64,
}

impl Default for Tree {
    fn default() -> Self {
        Tree {
            nodes: Nodes::default(),
            free: ChunkVec::default(),
            root: NIL,
            rng: 0x9E37_79B9_7F4A_7C15,
        }
    }
}

impl Tree {
    #[inline]
    fn sz(&self, t: u32) -> usize {
        if t == NIL {
            0
        } else {
            self.nodes[t as usize].size as usize
        }
    }

    fn len(&self) -> usize {
        self.sz(self.root)
    }

    /// Makes `c` the left child of `t` and recomputes `t`'s size, with
    /// one mutable access (each costs a copy-on-write check).
    #[inline]
    fn set_left(&mut self, t: u32, c: u32) {
        let s = 1 + self.sz(c) + self.sz(self.nodes[t as usize].right);
        let n = &mut self.nodes[t as usize];
        n.left = c;
        n.size = s as u32;
    }

    /// Makes `c` the right child of `t` and recomputes `t`'s size.
    #[inline]
    fn set_right(&mut self, t: u32, c: u32) {
        let s = 1 + self.sz(self.nodes[t as usize].left) + self.sz(c);
        let n = &mut self.nodes[t as usize];
        n.right = c;
        n.size = s as u32;
    }

    fn next_prio(&mut self) -> u32 {
        // xorshift64*: cheap, good enough to keep the treap balanced.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32
    }

    fn alloc(&mut self, score: f64, member: Bytes) -> u32 {
        let prio = self.next_prio();
        let node = Node {
            score,
            member,
            left: NIL,
            right: NIL,
            size: 1,
            prio,
            next: 0,
        };
        match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = node;
                i
            }
            None => self.nodes.push(node) as u32,
        }
    }

    fn release(&mut self, t: u32) -> (Bytes, f64) {
        let n = &mut self.nodes[t as usize];
        let member = std::mem::take(&mut n.member);
        let score = n.score;
        n.left = NIL;
        n.right = NIL;
        self.free.push(t);
        (member, score)
    }

    /// Splits `t` into (the prefix whose elements satisfy `pred`, the rest).
    /// `pred` must be monotone: true for a prefix of the order.
    fn split_by<F: Fn(f64, &[u8]) -> bool>(&mut self, t: u32, pred: &F) -> (u32, u32) {
        if t == NIL {
            return (NIL, NIL);
        }
        let n = &self.nodes[t as usize];
        if pred(n.score, &n.member) {
            let r = n.right;
            let (a, b) = self.split_by(r, pred);
            self.set_right(t, a);
            (t, b)
        } else {
            let l = n.left;
            let (a, b) = self.split_by(l, pred);
            self.set_left(t, b);
            (a, t)
        }
    }

    /// Splits `t` into (its first `k` elements, the rest).
    fn split_at(&mut self, t: u32, k: usize) -> (u32, u32) {
        if t == NIL {
            return (NIL, NIL);
        }
        let l = self.nodes[t as usize].left;
        let ls = self.sz(l);
        if k <= ls {
            let (a, b) = self.split_at(l, k);
            self.set_left(t, b);
            (a, t)
        } else {
            let r = self.nodes[t as usize].right;
            let (a, b) = self.split_at(r, k - ls - 1);
            self.set_right(t, a);
            (t, b)
        }
    }

    /// Joins two trees where every element of `a` precedes every one of `b`.
    fn merge(&mut self, a: u32, b: u32) -> u32 {
        if a == NIL {
            return b;
        }
        if b == NIL {
            return a;
        }
        if self.nodes[a as usize].prio >= self.nodes[b as usize].prio {
            let r = self.nodes[a as usize].right;
            let m = self.merge(r, b);
            self.set_right(a, m);
            a
        } else {
            let l = self.nodes[b as usize].left;
            let m = self.merge(a, l);
            self.set_left(b, m);
            b
        }
    }

    /// Inserts (score, member) and returns its node.
    fn insert(&mut self, score: f64, member: Bytes) -> u32 {
        let n = self.alloc(score, member);
        self.attach(n);
        n
    }

    /// Links the detached node `n` (no children, size 1) into the tree at
    /// its (score, member) position. One descent: every node above the
    /// insertion point gains one in size, and only the subtree the new
    /// node takes over (expected O(1) nodes) is split.
    fn attach(&mut self, n: u32) {
        let (score, prio) = {
            let node = &self.nodes[n as usize];
            (node.score, node.prio)
        };
        let mut parent = NIL;
        let mut went_left = false;
        let mut t = self.root;
        while t != NIL {
            let less = {
                let tn = &self.nodes[t as usize];
                if tn.prio < prio {
                    break;
                }
                let m = &self.nodes[n as usize].member;
                cmp_entry(score, m, tn.score, &tn.member) == Ordering::Less
            };
            let tn = &mut self.nodes[t as usize];
            tn.size += 1;
            parent = t;
            went_left = less;
            t = if less { tn.left } else { tn.right };
        }
        let member = self.nodes[n as usize].member.clone();
        let (a, b) = self.split_by(t, &|s, m| cmp_entry(s, m, score, &member) == Ordering::Less);
        let size = 1 + self.sz(a) + self.sz(b);
        let node = &mut self.nodes[n as usize];
        node.left = a;
        node.right = b;
        node.size = size as u32;
        self.relink(parent, went_left, n);
    }

    /// Points `parent`'s left (or right) link, or the root, at `c`.
    #[inline]
    fn relink(&mut self, parent: u32, left: bool, c: u32) {
        if parent == NIL {
            self.root = c;
        } else if left {
            self.nodes[parent as usize].left = c;
        } else {
            self.nodes[parent as usize].right = c;
        }
    }

    /// The ancestors of node `t` (which must be in the tree), root first,
    /// each with the side the path leaves it by (true: left).
    fn path_to(&self, t: u32) -> Path {
        let n = &self.nodes[t as usize];
        let (score, member) = (n.score, &n.member[..]);
        let mut path = Path::new();
        let mut c = self.root;
        while c != t && c != NIL {
            let cn = &self.nodes[c as usize];
            let left = cmp_entry(score, member, cn.score, &cn.member) == Ordering::Less;
            path.push((c, left));
            c = if left { cn.left } else { cn.right };
        }
        debug_assert!(c == t, "path_to: node not in the tree");
        path
    }

    /// True if node `t`, reached by `path`, keeps its place in the order
    /// with score `score`: its predecessor and successor stay on either
    /// side. Then a score change is a write to the node alone, as Redis
    /// updates a skiplist node in place (ZINCRBY by small steps, a
    /// timestamp that moves less than its neighbours' gap).
    fn keeps_place(&self, t: u32, path: &Path, score: f64) -> bool {
        let n = &self.nodes[t as usize];
        let member = &n.member[..];
        // The closest ancestors the path leaves rightwards (predecessor)
        // and leftwards (successor), unless a subtree of `t` holds closer.
        let mut pred = path.iter().rev().find(|p| !p.1).map_or(NIL, |p| p.0);
        let mut succ = path.iter().rev().find(|p| p.1).map_or(NIL, |p| p.0);
        let mut l = n.left;
        while l != NIL {
            pred = l;
            l = self.nodes[l as usize].right;
        }
        let mut r = n.right;
        while r != NIL {
            succ = r;
            r = self.nodes[r as usize].left;
        }
        let before = |a: u32| {
            let an = &self.nodes[a as usize];
            cmp_entry(an.score, &an.member, score, member) == Ordering::Less
        };
        let after = |b: u32| {
            let bn = &self.nodes[b as usize];
            cmp_entry(score, member, bn.score, &bn.member) == Ordering::Less
        };
        (pred == NIL || before(pred)) && (succ == NIL || after(succ))
    }

    /// Unlinks node `t`, reached by `path`, leaving it with no children:
    /// every ancestor loses one in size and `t`'s two subtrees are merged
    /// in its place.
    fn detach(&mut self, t: u32, path: &Path) {
        for &(c, _) in path {
            self.nodes[c as usize].size -= 1;
        }
        let (l, r) = (self.nodes[t as usize].left, self.nodes[t as usize].right);
        let m = self.merge(l, r);
        let (parent, left) = path.last().copied().unwrap_or((NIL, false));
        self.relink(parent, left, m);
        let n = &mut self.nodes[t as usize];
        n.left = NIL;
        n.right = NIL;
        n.size = 1;
    }

    /// Checks every node's size and heap priority below `t`, returning
    /// the subtree's size (tests only).
    #[cfg(test)]
    fn check(&self, t: u32) -> usize {
        if t == NIL {
            return 0;
        }
        let n = &self.nodes[t as usize];
        for c in [n.left, n.right] {
            if c != NIL {
                assert!(self.nodes[c as usize].prio <= n.prio, "heap order");
            }
        }
        let size = 1 + self.check(n.left) + self.check(n.right);
        assert_eq!(n.size as usize, size, "subtree size");
        size
    }

    /// Number of leading elements satisfying the monotone `pred`.
    fn count_prefix<F: Fn(f64, &[u8]) -> bool>(&self, pred: F) -> usize {
        let mut t = self.root;
        let mut acc = 0;
        while t != NIL {
            let n = &self.nodes[t as usize];
            if pred(n.score, &n.member) {
                acc += self.sz(n.left) + 1;
                t = n.right;
            } else {
                t = n.left;
            }
        }
        acc
    }

    /// The node at 0-based rank `k`.
    fn select(&self, mut k: usize) -> Option<u32> {
        let mut t = self.root;
        while t != NIL {
            let n = &self.nodes[t as usize];
            let ls = self.sz(n.left);
            match k.cmp(&ls) {
                Ordering::Less => t = n.left,
                Ordering::Equal => return Some(t),
                Ordering::Greater => {
                    k -= ls + 1;
                    t = n.right;
                }
            }
        }
        None
    }

    /// Appends elements with ranks in `[start, end)` of subtree `t` to `out`
    /// (ranks relative to the subtree).
    fn collect(&self, t: u32, start: usize, end: usize, out: &mut Vec<(Bytes, f64)>) {
        if t == NIL || start >= end {
            return;
        }
        let n = &self.nodes[t as usize];
        let ls = self.sz(n.left);
        if start < ls {
            self.collect(n.left, start, end.min(ls), out);
        }
        if start <= ls && ls < end {
            out.push((n.member.clone(), n.score));
        }
        if end > ls + 1 {
            self.collect(n.right, start.saturating_sub(ls + 1), end - ls - 1, out);
        }
    }

    /// Calls `f(member, score)` for the elements of subtree `t` with ranks
    /// (within `t`) in `[start, end)`, ascending, or descending when `rev`.
    fn visit<F: FnMut(&[u8], f64)>(&self, t: u32, start: usize, end: usize, rev: bool, f: &mut F) {
        if t == NIL || start >= end {
            return;
        }
        let n = &self.nodes[t as usize];
        let ls = self.sz(n.left);
        let left = |f: &mut F| {
            if start < ls {
                self.visit(n.left, start, end.min(ls), rev, f);
            }
        };
        let right = |f: &mut F| {
            if end > ls + 1 {
                self.visit(n.right, start.saturating_sub(ls + 1), end - ls - 1, rev, f);
            }
        };
        if rev {
            right(f);
        } else {
            left(f);
        }
        if start <= ls && ls < end {
            f(&n.member, n.score);
        }
        if rev {
            left(f);
        } else {
            right(f);
        }
    }

    /// Frees every node of subtree `t`, appending the elements in order;
    /// `before_free` sees each node just before it is freed.
    fn drain<F: FnMut(&mut Nodes, u32)>(
        &mut self,
        t: u32,
        out: &mut Vec<(Bytes, f64)>,
        before_free: &mut F,
    ) {
        if t == NIL {
            return;
        }
        let (l, r) = (self.nodes[t as usize].left, self.nodes[t as usize].right);
        self.drain(l, out, before_free);
        before_free(&mut self.nodes, t);
        out.push(self.release(t));
        self.drain(r, out, before_free);
    }

    /// Removes and returns the elements with ranks in `[start, end)`;
    /// `before_free` sees each removed node just before it is freed.
    fn remove_range<F: FnMut(&mut Nodes, u32)>(
        &mut self,
        start: usize,
        end: usize,
        mut before_free: F,
    ) -> Vec<(Bytes, f64)> {
        let root = self.root;
        let (l, r) = self.split_at(root, start);
        let (mid, rest) = self.split_at(r, end.saturating_sub(start));
        let mut out = Vec::with_capacity(self.sz(mid));
        self.drain(mid, &mut out, &mut before_free);
        self.root = self.merge(l, rest);
        if self.root == NIL {
            self.nodes.clear();
            self.free.clear();
        }
        out
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
    fn add(&mut self, score: f64, member: Bytes) {
        let h = hash_bytes(&member);
        self.member_bytes += member.len();
        let t = self.tree.insert(score, member);
        let len = self.tree.len();
        self.index.insert(&mut self.tree.nodes, t, h, len);
    }

    /// Removes the member held by node `t`, returning its score.
    fn delete(&mut self, t: u32) -> f64 {
        let path = self.tree.path_to(t);
        self.tree.detach(t, &path);
        let nodes = &mut self.tree.nodes;
        let h = nodes.hash(t);
        self.index.unlink(nodes, t, h);
        let (member, score) = self.tree.release(t);
        self.member_bytes -= member.len();
        let len = self.tree.len();
        self.index.removed(&mut self.tree.nodes, len);
        score
    }

    /// Gives the member held by node `t` a new score: the node moves in
    /// the tree and keeps its place in the member index.
    fn rescore(&mut self, t: u32, score: f64) {
        self.index.advance(&mut self.tree.nodes);
        let path = self.tree.path_to(t);
        if self.tree.keeps_place(t, &path, score) {
            self.tree.nodes[t as usize].score = score;
            return;
        }
        self.tree.detach(t, &path);
        self.tree.nodes[t as usize].score = score;
        self.tree.attach(t);
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
                sk.add(e.score, Bytes::copy_from_slice(lp.member(&e)));
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
                sk.tree.collect(sk.tree.root, 0, sk.tree.len(), &mut items);
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
                    sk.add(score, Bytes::copy_from_slice(member));
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
            Repr::Skiplist(sk) => {
                let score = sk.tree.nodes[sk.find(member)? as usize].score;
                Some(
                    sk.tree
                        .count_prefix(|s, m| cmp_entry(s, m, score, member) == Ordering::Less),
                )
            }
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
                let n = &sk.tree.nodes[sk.tree.select(r)? as usize];
                Some((n.member.clone(), n.score))
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
                sk.tree.collect(sk.tree.root, start, end, &mut out);
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
            Repr::Skiplist(sk) => sk.tree.visit(sk.tree.root, start, end, rev, &mut f),
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
                    assert_eq!(sk.tree.check(sk.tree.root), z.len());
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
                    assert_eq!(sk.tree.check(sk.tree.root), z.len());
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
        let lim = ZLimits {
            entries: 0,
            value: 64,
        };
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
