//! `CowMap<K, V>` and `CowSet<K>`: ordered maps kept in chunks of at most
//! [`MAX`] entries, each chunk shared copy-on-write.
//!
//! A stream consumer group's pending entries list can hold millions of
//! IDs. The group is shared with a running snapshot (see
//! `storage::shared`), so the first edit of a group during a save used to
//! copy the whole list (about 140 ms for 1M pending entries, under the
//! shard lock). Here a copy costs one reference per chunk, and an edit
//! copies only the chunk it touches, as a forked Redis copies the pages
//! its writes touch. Lookups descend two small B-trees instead of one
//! large one; an unshared chunk costs one check of its reference count per
//! mutable access.

use std::collections::BTreeMap;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

/// Entries per chunk at most; a fuller chunk splits in two.
const MAX: usize = 512;
/// A chunk that falls below this after a removal joins its successor when
/// both fit in one.
const MIN: usize = MAX / 4;

/// An ordered map whose chunks are shared between clones.
#[derive(Clone)]
pub struct CowMap<K, V> {
    /// Chunks by their smallest key; none is empty.
    chunks: BTreeMap<K, Arc<BTreeMap<K, V>>>,
    len: usize,
}

impl<K, V> Default for CowMap<K, V> {
    fn default() -> Self {
        CowMap {
            chunks: BTreeMap::new(),
            len: 0,
        }
    }
}

impl<K: Ord + std::fmt::Debug, V: std::fmt::Debug> std::fmt::Debug for CowMap<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.chunks.values().flat_map(|c| c.iter()))
            .finish()
    }
}

/// Equal contents, whatever the chunk layout.
impl<K: Ord, V: PartialEq> PartialEq for CowMap<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len
            && self
                .chunks
                .values()
                .flat_map(|c| c.iter())
                .eq(other.chunks.values().flat_map(|c| c.iter()))
    }
}

impl<K: Ord + Clone, V: Clone> CowMap<K, V> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The chunk that holds `k` if anything does.
    fn chunk_of(&self, k: &K) -> Option<&BTreeMap<K, V>> {
        self.chunks.range(..=k).next_back().map(|(_, c)| &**c)
    }

    pub fn get(&self, k: &K) -> Option<&V> {
        self.chunk_of(k)?.get(k)
    }

    pub fn contains_key(&self, k: &K) -> bool {
        self.get(k).is_some()
    }

    /// The value of `k`, its chunk copied first if shared (not for a miss).
    pub fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        let (_, c) = self.chunks.range_mut(..=k).next_back()?;
        if !c.contains_key(k) {
            return None;
        }
        Arc::make_mut(c).get_mut(k)
    }

    pub fn insert(&mut self, k: K, v: V) -> Option<V> {
        let ck = match self.chunks.range(..=&k).next_back() {
            Some((ck, _)) => ck.clone(),
            None => match self.chunks.pop_first() {
                // Below every key: the first chunk takes it, under its new
                // smallest key.
                Some((_, c)) => {
                    self.chunks.insert(k.clone(), c);
                    k.clone()
                }
                None => {
                    let mut m = BTreeMap::new();
                    m.insert(k.clone(), v);
                    self.chunks.insert(k, Arc::new(m));
                    self.len = 1;
                    return None;
                }
            },
        };
        let c = self.chunks.get_mut(&ck)?;
        let m = Arc::make_mut(c);
        let old = m.insert(k, v);
        if old.is_none() {
            self.len += 1;
        }
        if m.len() > MAX {
            if let Some(mid) = m.keys().nth(m.len() / 2).cloned() {
                let upper = m.split_off(&mid);
                self.chunks.insert(mid, Arc::new(upper));
            }
        }
        old
    }

    pub fn remove(&mut self, k: &K) -> Option<V> {
        let (ck, c) = self.chunks.range_mut(..=k).next_back()?;
        if !c.contains_key(k) {
            return None;
        }
        let ck = ck.clone();
        let m = Arc::make_mut(c);
        let old = m.remove(k)?;
        self.len -= 1;
        let left = m.len();
        if left == 0 {
            self.chunks.remove(&ck);
            return Some(old);
        }
        // Keep chunks keyed by their smallest key.
        let mut key = ck;
        if *k == key {
            if let Some(c) = self.chunks.remove(&key) {
                if let Some(first) = c.keys().next().cloned() {
                    key = first.clone();
                    self.chunks.insert(first, c);
                }
            }
        }
        if left < MIN {
            self.join_with_next(&key);
        }
        Some(old)
    }

    /// Moves the chunk after `key`'s into it when both fit in one chunk.
    fn join_with_next(&mut self, key: &K) {
        let next = self
            .chunks
            .range((Bound::Excluded(key), Bound::Unbounded))
            .next()
            .map(|(nk, nc)| (nk.clone(), nc.len()));
        let Some((nk, nlen)) = next else { return };
        let fits = self.chunks.get(key).is_some_and(|c| c.len() + nlen <= MAX);
        if !fits {
            return;
        }
        let Some(nc) = self.chunks.remove(&nk) else {
            return;
        };
        if let Some(c) = self.chunks.get_mut(key) {
            let m = Arc::make_mut(c);
            match Arc::try_unwrap(nc) {
                Ok(mut owned) => m.append(&mut owned),
                Err(shared) => m.extend(shared.iter().map(|(k, v)| (k.clone(), v.clone()))),
            }
        }
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&K, &V)> + '_ {
        self.chunks.values().flat_map(|c| c.iter())
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &K> + '_ {
        self.iter().map(|(k, _)| k)
    }

    /// The entries in `r`, in order (the bounds must be valid for
    /// `BTreeMap::range`).
    pub fn range<R: RangeBounds<K>>(&self, r: R) -> impl Iterator<Item = (&K, &V)> + '_ {
        let start = r.start_bound().cloned();
        let end = r.end_bound().cloned();
        // From the chunk that may hold the start (the last one starting at
        // or before it), to the last chunk starting within the range.
        let from = match &start {
            Bound::Included(s) | Bound::Excluded(s) => self
                .chunks
                .range(..=s)
                .next_back()
                .map_or(Bound::Unbounded, |(ck, _)| Bound::Included(ck.clone())),
            Bound::Unbounded => Bound::Unbounded,
        };
        let last = end.clone();
        self.chunks
            .range((from, Bound::Unbounded))
            .take_while(move |(ck, _)| match &last {
                Bound::Included(e) => *ck <= e,
                Bound::Excluded(e) => *ck < e,
                Bound::Unbounded => true,
            })
            .flat_map(move |(_, c)| c.range((start.clone(), end.clone())))
    }
}

impl<'a, K: Ord + Clone, V: Clone> IntoIterator for &'a CowMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = Box<dyn Iterator<Item = (&'a K, &'a V)> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

/// An ordered set with [`CowMap`]'s sharing.
#[derive(Clone, Default)]
pub struct CowSet<K>(CowMap<K, ()>);

impl<K: Ord> PartialEq for CowSet<K> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<K: Ord + std::fmt::Debug> std::fmt::Debug for CowSet<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set()
            .entries(self.0.chunks.values().flat_map(|c| c.keys()))
            .finish()
    }
}

impl<K: Ord + Clone> CowSet<K> {
    pub fn new() -> Self {
        CowSet(CowMap::new())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, k: &K) -> bool {
        self.0.contains_key(k)
    }

    /// True if `k` was not there.
    pub fn insert(&mut self, k: K) -> bool {
        self.0.insert(k, ()).is_none()
    }

    /// True if `k` was there.
    pub fn remove(&mut self, k: &K) -> bool {
        self.0.remove(k).is_some()
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &K> + '_ {
        self.0.keys()
    }

    pub fn range<R: RangeBounds<K>>(&self, r: R) -> impl Iterator<Item = &K> + '_ {
        self.0.range(r).map(|(k, _)| k)
    }
}

impl<'a, K: Ord + Clone> IntoIterator for &'a CowSet<K> {
    type Item = &'a K;
    type IntoIter = Box<dyn Iterator<Item = &'a K> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u16, u32),
        Remove(u16),
        GetMut(u16, u32),
        Clone,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (any::<u16>(), any::<u32>()).prop_map(|(k, v)| Op::Insert(k % 4000, v)),
            3 => any::<u16>().prop_map(|k| Op::Remove(k % 4000)),
            1 => (any::<u16>(), any::<u32>()).prop_map(|(k, v)| Op::GetMut(k % 4000, v)),
            1 => Just(Op::Clone),
        ]
    }

    proptest! {
        /// Behaves as a BTreeMap, and a clone taken at any point keeps
        /// the contents it had whatever the original does afterwards.
        #[test]
        fn matches_a_btreemap_and_clones_stay_frozen(ops in proptest::collection::vec(op(), 1..3000)) {
            let mut m = CowMap::new();
            let mut model = BTreeMap::new();
            let mut frozen: Vec<(CowMap<u16, u32>, BTreeMap<u16, u32>)> = Vec::new();
            for op in ops {
                match op {
                    Op::Insert(k, v) => prop_assert_eq!(m.insert(k, v), model.insert(k, v)),
                    Op::Remove(k) => prop_assert_eq!(m.remove(&k), model.remove(&k)),
                    Op::GetMut(k, v) => {
                        let a = m.get_mut(&k).map(|x| { *x = v; });
                        let b = model.get_mut(&k).map(|x| { *x = v; });
                        prop_assert_eq!(a, b);
                    }
                    Op::Clone => frozen.push((m.clone(), model.clone())),
                }
                prop_assert_eq!(m.len(), model.len());
            }
            prop_assert!(m.iter().eq(model.iter()));
            prop_assert!(m.iter().rev().eq(model.iter().rev()));
            for k in [0u16, 1, 500, 1999, 3999] {
                prop_assert_eq!(m.get(&k), model.get(&k));
                prop_assert!(m.range(k..).eq(model.range(k..)));
                prop_assert!(m.range(..=k).eq(model.range(..=k)));
                prop_assert!(m.range(k..=k.saturating_add(700)).eq(model.range(k..=k.saturating_add(700))));
            }
            for c in m.chunks.values() {
                prop_assert!(!c.is_empty() && c.len() <= MAX);
            }
            for (ck, c) in &m.chunks {
                prop_assert_eq!(c.keys().next(), Some(ck));
            }
            for (f, fm) in &frozen {
                prop_assert!(f.iter().eq(fm.iter()));
                prop_assert_eq!(f.len(), fm.len());
            }
        }
    }

    #[test]
    fn a_clone_shares_chunks_until_one_is_edited() {
        let mut m = CowMap::new();
        for i in 0..100_000u32 {
            m.insert(i, i);
        }
        let snap = m.clone();
        m.remove(&50_000);
        let shared = m
            .chunks
            .values()
            .zip(snap.chunks.values())
            .filter(|(a, b)| Arc::ptr_eq(a, b))
            .count();
        assert!(
            shared >= m.chunks.len() - 2,
            "{shared} of {}",
            m.chunks.len()
        );
        assert_eq!(snap.len(), 100_000);
        assert!(snap.contains_key(&50_000));
        assert!(!m.contains_key(&50_000));
    }

    #[test]
    fn sets_insert_remove_and_range() {
        let mut s = CowSet::new();
        assert!(s.insert(5u32));
        assert!(!s.insert(5));
        for i in 0..2000 {
            s.insert(i * 2);
        }
        assert!(s.remove(&10));
        assert!(!s.remove(&11));
        assert_eq!(s.range(7..=13).copied().collect::<Vec<_>>(), vec![8, 12]);
        assert_eq!(s.len(), 2000);
        assert_eq!(s.iter().next_back(), Some(&3998));
    }
}
