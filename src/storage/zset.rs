//! ZSet: the sorted set type.
//!
//! Two encodings, as in Redis:
//!
//! * **listpack** — a `Vec<(score, member)>` kept sorted. Small sets are the
//!   common case; a flat vector is compact and its O(n) inserts are cheap at
//!   the sizes it is allowed to reach (`zset-max-listpack-entries` elements,
//!   members up to `zset-max-listpack-value` bytes).
//! * **skiplist** — an order-statistic treap (a randomized balanced binary
//!   search tree whose nodes carry subtree sizes) plus a member → score hash
//!   map. The tree gives rank, select-by-rank and "how many elements precede
//!   this bound" in O(log n), which is everything range-by-rank, by-score and
//!   by-lex need; the map gives O(1) ZSCORE and membership. Nodes live in an
//!   arena (`Vec` + free list) addressed by `u32`, so there is no `unsafe`
//!   and no per-node allocation beyond the member's bytes. The name
//!   "skiplist" is what OBJECT ENCODING reports, for compatibility.
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
}

/// Order-statistic treap over (score, member), stored in an arena.
#[derive(Debug, Clone)]
struct Tree {
    nodes: Vec<Node>,
    free: Vec<u32>,
    root: u32,
    rng: u64,
}

impl Default for Tree {
    fn default() -> Self {
        Tree {
            nodes: Vec::new(),
            free: Vec::new(),
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

    #[inline]
    fn update(&mut self, t: u32) {
        let n = &self.nodes[t as usize];
        let s = 1 + self.sz(n.left) + self.sz(n.right);
        self.nodes[t as usize].size = s as u32;
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
        };
        match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = node;
                i
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
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
            self.nodes[t as usize].right = a;
            self.update(t);
            (t, b)
        } else {
            let l = n.left;
            let (a, b) = self.split_by(l, pred);
            self.nodes[t as usize].left = b;
            self.update(t);
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
            self.nodes[t as usize].left = b;
            self.update(t);
            (a, t)
        } else {
            let r = self.nodes[t as usize].right;
            let (a, b) = self.split_at(r, k - ls - 1);
            self.nodes[t as usize].right = a;
            self.update(t);
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
            self.nodes[a as usize].right = m;
            self.update(a);
            a
        } else {
            let l = self.nodes[b as usize].left;
            let m = self.merge(a, l);
            self.nodes[b as usize].left = m;
            self.update(b);
            b
        }
    }

    fn insert(&mut self, score: f64, member: Bytes) {
        let root = self.root;
        let (l, r) = self.split_by(root, &|s, m| {
            cmp_entry(s, m, score, &member) == Ordering::Less
        });
        let n = self.alloc(score, member);
        let lm = self.merge(l, n);
        self.root = self.merge(lm, r);
    }

    fn remove(&mut self, score: f64, member: &[u8]) -> bool {
        let root = self.root;
        let (l, r) = self.split_by(root, &|s, m| {
            cmp_entry(s, m, score, member) == Ordering::Less
        });
        let (mid, rest) = self.split_at(r, 1);
        let found = mid != NIL && {
            let n = &self.nodes[mid as usize];
            n.score == score && &n.member[..] == member
        };
        let rest = if found {
            self.release(mid);
            rest
        } else {
            self.merge(mid, rest)
        };
        self.root = self.merge(l, rest);
        found
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

    /// Frees every node of subtree `t`, appending the elements in order.
    fn drain(&mut self, t: u32, out: &mut Vec<(Bytes, f64)>) {
        if t == NIL {
            return;
        }
        let (l, r) = (self.nodes[t as usize].left, self.nodes[t as usize].right);
        self.drain(l, out);
        out.push(self.release(t));
        self.drain(r, out);
    }

    /// Removes and returns the elements with ranks in `[start, end)`.
    fn remove_range(&mut self, start: usize, end: usize) -> Vec<(Bytes, f64)> {
        let root = self.root;
        let (l, r) = self.split_at(root, start);
        let (mid, rest) = self.split_at(r, end.saturating_sub(start));
        let mut out = Vec::with_capacity(self.sz(mid));
        self.drain(mid, &mut out);
        self.root = self.merge(l, rest);
        if self.root == NIL {
            self.nodes.clear();
            self.free.clear();
        }
        out
    }
}

type Dict = hashbrown::HashMap<Bytes, f64, foldhash::fast::RandomState>;

#[derive(Debug, Clone)]
enum Repr {
    Listpack(Vec<(f64, Bytes)>),
    Skiplist { tree: Tree, dict: Dict },
}

/// A sorted set value.
#[derive(Debug, Clone)]
pub struct ZSet {
    repr: Repr,
    /// Sum of member lengths, kept up to date so that [`ZSet::memory_usage`]
    /// and the conversion checks never walk the set.
    member_bytes: usize,
}

impl Default for ZSet {
    fn default() -> Self {
        ZSet {
            repr: Repr::Listpack(Vec::new()),
            member_bytes: 0,
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

impl ZSet {
    /// An empty set in the compact encoding.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty set in the encoding Redis would create for `size_hint`
    /// elements whose longest member is `max_member_len` bytes.
    pub fn with_hint(size_hint: usize, max_member_len: usize, lim: ZLimits) -> Self {
        if lim.entries == 0 || size_hint > lim.entries || max_member_len > lim.value {
            ZSet {
                repr: Repr::Skiplist {
                    tree: Tree::default(),
                    dict: Dict::default(),
                },
                member_bytes: 0,
            }
        } else {
            Self::default()
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Listpack(v) => v.len(),
            Repr::Skiplist { tree, .. } => tree.len(),
        }
    }

    /// True when the set has no elements (callers then delete the key).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Total bytes of all members.
    pub fn member_bytes(&self) -> usize {
        self.member_bytes
    }

    /// Redis's OBJECT ENCODING name for the encoding in use.
    pub fn encoding(&self) -> &'static str {
        match &self.repr {
            Repr::Listpack(_) => "listpack",
            Repr::Skiplist { .. } => "skiplist",
        }
    }

    /// Approximate heap bytes (MEMORY USAGE, accounting).
    pub fn memory_usage(&self) -> usize {
        let base = std::mem::size_of::<Self>();
        match &self.repr {
            Repr::Listpack(v) => {
                base + v.capacity() * std::mem::size_of::<(f64, Bytes)>() + self.member_bytes
            }
            Repr::Skiplist { tree, dict } => {
                base + tree.nodes.capacity() * std::mem::size_of::<Node>()
                    + tree.free.capacity() * 4
                    + dict.capacity() * (std::mem::size_of::<(Bytes, f64)>() + 1)
                    + self.member_bytes
            }
        }
    }

    /// Switches to the skiplist encoding (no-op if already there).
    pub fn convert_to_skiplist(&mut self) {
        if let Repr::Listpack(v) = &mut self.repr {
            let items = std::mem::take(v);
            let mut tree = Tree::default();
            let mut dict = Dict::default();
            dict.reserve(items.len());
            for (s, m) in items {
                dict.insert(m.clone(), s);
                tree.insert(s, m);
            }
            self.repr = Repr::Skiplist { tree, dict };
        }
    }

    /// Converts back to listpack when the set fits the limits (the store
    /// commands do this after building a result, as Redis 7.0 does).
    pub fn shrink_if_fits(&mut self, lim: ZLimits) {
        if let Repr::Skiplist { tree, dict } = &self.repr {
            if tree.len() <= lim.entries && dict.keys().all(|m| m.len() <= lim.value) {
                let mut items = Vec::with_capacity(tree.len());
                tree.collect(tree.root, 0, tree.len(), &mut items);
                self.repr = Repr::Listpack(
                    items
                        .into_iter()
                        .map(|(m, s)| (if s == 0.0 { 0.0 } else { s }, m))
                        .collect(),
                );
            }
        }
    }

    /// The score of `member`.
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match &self.repr {
            Repr::Listpack(v) => v.iter().find(|(_, m)| &m[..] == member).map(|(s, _)| *s),
            Repr::Skiplist { dict, .. } => dict.get(member).copied(),
        }
    }

    /// Sets `member`'s score, adding it if missing (converting to skiplist
    /// when the listpack limits would be exceeded). Returns true if added.
    pub fn insert(&mut self, member: &[u8], score: f64, lim: ZLimits) -> bool {
        debug_assert!(!score.is_nan());
        if let Repr::Listpack(v) = &self.repr {
            let exists = v.iter().any(|(_, m)| &m[..] == member);
            if !exists && (v.len() + 1 > lim.entries || member.len() > lim.value) {
                self.convert_to_skiplist();
            }
        }
        match &mut self.repr {
            Repr::Listpack(v) => {
                // Redis's listpack stores the score as text and reads "-0"
                // back as the integer 0: a listpack never holds -0.
                let score = if score == 0.0 { 0.0 } else { score };
                if let Some(i) = v.iter().position(|(_, m)| &m[..] == member) {
                    if v[i].0 == score {
                        return false;
                    }
                    let (_, m) = v.remove(i);
                    let at =
                        v.partition_point(|(s, mm)| cmp_entry(*s, mm, score, &m) == Ordering::Less);
                    v.insert(at, (score, m));
                    false
                } else {
                    let at = v.partition_point(|(s, mm)| {
                        cmp_entry(*s, mm, score, member) == Ordering::Less
                    });
                    v.insert(at, (score, Bytes::copy_from_slice(member)));
                    self.member_bytes += member.len();
                    true
                }
            }
            Repr::Skiplist { tree, dict } => match dict.get_mut(member) {
                Some(cur) => {
                    if *cur != score {
                        let old = *cur;
                        *cur = score;
                        tree.remove(old, member);
                        tree.insert(score, Bytes::copy_from_slice(member));
                    }
                    false
                }
                None => {
                    let m = Bytes::copy_from_slice(member);
                    dict.insert(m.clone(), score);
                    tree.insert(score, m);
                    self.member_bytes += member.len();
                    true
                }
            },
        }
    }

    /// Removes `member`, returning its score.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let r = self.remove_inner(member);
        if r.is_some() {
            self.member_bytes -= member.len();
        }
        r
    }

    fn remove_inner(&mut self, member: &[u8]) -> Option<f64> {
        match &mut self.repr {
            Repr::Listpack(v) => {
                let i = v.iter().position(|(_, m)| &m[..] == member)?;
                Some(v.remove(i).0)
            }
            Repr::Skiplist { tree, dict } => {
                let s = dict.remove(member)?;
                tree.remove(s, member);
                Some(s)
            }
        }
    }

    /// 0-based rank of `member` in ascending order.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        match &self.repr {
            Repr::Listpack(v) => v.iter().position(|(_, m)| &m[..] == member),
            Repr::Skiplist { tree, dict } => {
                let score = *dict.get(member)?;
                Some(tree.count_prefix(|s, m| cmp_entry(s, m, score, member) == Ordering::Less))
            }
        }
    }

    /// The element at 0-based ascending rank `r`.
    pub fn get(&self, r: usize) -> Option<(Bytes, f64)> {
        match &self.repr {
            Repr::Listpack(v) => v.get(r).map(|(s, m)| (m.clone(), *s)),
            Repr::Skiplist { tree, .. } => {
                let n = &tree.nodes[tree.select(r)? as usize];
                Some((n.member.clone(), n.score))
            }
        }
    }

    /// How many leading elements (in ascending order) satisfy `pred`, which
    /// must be monotone (true for a prefix). Turns score and lex bounds into
    /// ranks in O(log n).
    pub fn count_prefix<F: Fn(f64, &[u8]) -> bool>(&self, pred: F) -> usize {
        match &self.repr {
            Repr::Listpack(v) => v.partition_point(|(s, m)| pred(*s, m)),
            Repr::Skiplist { tree, .. } => tree.count_prefix(pred),
        }
    }

    /// Elements with ascending ranks in `[start, end)`, as (member, score).
    pub fn range(&self, start: usize, end: usize) -> Vec<(Bytes, f64)> {
        let end = end.min(self.len());
        if start >= end {
            return Vec::new();
        }
        match &self.repr {
            Repr::Listpack(v) => v[start..end].iter().map(|(s, m)| (m.clone(), *s)).collect(),
            Repr::Skiplist { tree, .. } => {
                let mut out = Vec::with_capacity(end - start);
                tree.collect(tree.root, start, end, &mut out);
                out
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
        let out = self.remove_range_inner(start, end);
        self.member_bytes -= out.iter().map(|(m, _)| m.len()).sum::<usize>();
        out
    }

    fn remove_range_inner(&mut self, start: usize, end: usize) -> Vec<(Bytes, f64)> {
        let end = end.min(self.len());
        if start >= end {
            return Vec::new();
        }
        match &mut self.repr {
            Repr::Listpack(v) => v.drain(start..end).map(|(s, m)| (m, s)).collect(),
            Repr::Skiplist { tree, dict } => {
                let out = tree.remove_range(start, end);
                for (m, _) in &out {
                    dict.remove(m);
                }
                out
            }
        }
    }
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
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let mut z = ZSet::new();
        let mut model: Vec<(f64, Vec<u8>)> = Vec::new();
        for i in 0..20000 {
            let m = format!("m{}", rng.gen_range(0..300)).into_bytes();
            let s = rng.gen_range(0..50) as f64;
            match rng.gen_range(0..10) {
                0..=5 => {
                    let added = z.insert(&m, s, LIM);
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
            }
        }
    }
}
