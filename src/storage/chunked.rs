//! `ChunkVec<T>`: an indexed vector stored in chunks of [`CHUNK`] elements,
//! for the arenas that grow with one value or one shard: a shard's object
//! slots ([`Slab`]), the entries of a large hash or set, the nodes of a
//! large sorted set.
//!
//! A `Vec` that doubles copies all of itself in one step, under the shard
//! lock (measured: 11-14 ms stalls on HSETs that pushed a shard's object
//! vector past 524,288 slots; 20-150 ms on ZADDs into one 2M-member sorted
//! set). Here a push allocates at most one chunk and never moves an
//! element; only the first chunk grows by reallocation, up to `CHUNK`
//! elements, so a small collection does not pay for a whole chunk.

use std::ops::{Index, IndexMut};
use std::sync::Arc;

/// Elements per chunk (log2) unless a `ChunkVec` says otherwise.
pub const CHUNK_BITS: u32 = 12;
/// Elements per chunk by default.
pub const CHUNK: usize = 1 << CHUNK_BITS;

/// A shard's object slots: a free slot is `None`.
pub type Slab<T> = ChunkVec<Option<T>>;

/// Chunks are shared between clones and copied on a clone's first write
/// to them ([`Arc::make_mut`]): cloning costs one reference per chunk, so a
/// snapshot's reference to a large collection (see `storage::shared`)
/// makes a writer copy only the chunks it touches, 4096 elements at a time,
/// as a forked Redis copies the pages its writes touch. An unshared chunk
/// costs one load of its reference count per mutable access.
///
/// Each chunk's element buffer is also kept in `ptrs`, so an access is one
/// dependent memory load (the element) instead of two (the chunk's `Arc`
/// header, which holds the `Vec`'s buffer pointer, then the element): in a
/// tree of millions of nodes, where every step of a descent lands in
/// another chunk, the header was a second cache miss per step (ZADD into
/// a 2M-member sorted set: 20% of its time).
///
/// `BITS` sets the chunk size (2^BITS elements): smaller chunks make a
/// copied chunk cheaper where one operation touches many scattered
/// elements (a tree path), at one chunk reference per 2^BITS elements.
#[derive(Debug)]
pub struct ChunkVec<T, const BITS: u32 = CHUNK_BITS> {
    /// Every chunk but the last holds exactly `CHUNK` elements.
    chunks: Vec<Arc<Vec<T>>>,
    /// `ptrs[c]` is `chunks[c]`'s element buffer. Kept in step by every
    /// method that can move a buffer: a push that reallocates the (first)
    /// chunk, and a write that copies a shared chunk.
    ptrs: Vec<*mut T>,
    len: usize,
}

// SAFETY: the raw pointers only alias buffers owned by the `Arc<Vec<T>>`s
// beside them; shared chunks are only read, and a chunk is written only
// through `&mut self` after its reference count was seen to be 1. So the
// vector is exactly as thread-safe as `Vec<Arc<Vec<T>>>`.
unsafe impl<T: Send + Sync, const BITS: u32> Send for ChunkVec<T, BITS> {}
// SAFETY: as above; `&self` methods only read.
unsafe impl<T: Send + Sync, const BITS: u32> Sync for ChunkVec<T, BITS> {}

impl<T, const BITS: u32> Default for ChunkVec<T, BITS> {
    fn default() -> Self {
        ChunkVec {
            chunks: Vec::new(),
            ptrs: Vec::new(),
            len: 0,
        }
    }
}

impl<T, const BITS: u32> Clone for ChunkVec<T, BITS> {
    /// Shares every chunk (see the type's documentation).
    fn clone(&self) -> Self {
        ChunkVec {
            chunks: self.chunks.clone(),
            ptrs: self.ptrs.clone(),
            len: self.len,
        }
    }
}

/// Iterator over a [`ChunkVec`]'s elements in index order.
pub struct Iter<'a, T> {
    chunks: std::slice::Iter<'a, Arc<Vec<T>>>,
    cur: std::slice::Iter<'a, T>,
}

impl<'a, T> Iterator for Iter<'a, T> {
    type Item = &'a T;

    #[inline]
    fn next(&mut self) -> Option<&'a T> {
        loop {
            if let Some(v) = self.cur.next() {
                return Some(v);
            }
            self.cur = self.chunks.next()?.iter();
        }
    }
}

impl<T, const BITS: u32> ChunkVec<T, BITS> {
    /// Elements per chunk.
    const SIZE: usize = 1 << BITS;

    /// An empty vector whose first chunk has room for `n` elements (at
    /// most `CHUNK`).
    pub fn with_capacity(n: usize) -> Self {
        let mut v = Self::default();
        if n > 0 {
            v.add_chunk(Vec::with_capacity(n.min(Self::SIZE)));
        }
        v
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The element at `i`, if it exists.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&T> {
        if i >= self.len {
            return None;
        }
        // SAFETY: `i < len`: every chunk before the last is full and the
        // last holds the rest, so chunk `i >> BITS` exists and holds
        // element `i & (SIZE - 1)`; `ptrs` is that chunk's live buffer.
        Some(unsafe { &*self.ptrs.get_unchecked(i >> BITS).add(i & (Self::SIZE - 1)) })
    }

    /// Appends a chunk and records its buffer.
    fn add_chunk(&mut self, mut c: Vec<T>) {
        self.ptrs.push(c.as_mut_ptr());
        self.chunks.push(Arc::new(c));
    }

    /// Elements in index order.
    pub fn iter(&self) -> Iter<'_, T> {
        Iter {
            chunks: self.chunks.iter(),
            cur: [].iter(),
        }
    }

    /// Removes every element (keeps nothing allocated).
    pub fn clear(&mut self) {
        self.chunks = Vec::new();
        self.ptrs = Vec::new();
        self.len = 0;
    }

    /// Heap bytes held (element capacity plus the chunk tables; a chunk
    /// shared with a clone is counted by both).
    pub fn heap_bytes(&self) -> usize {
        self.chunks
            .iter()
            .map(|c| c.capacity() * std::mem::size_of::<T>())
            .sum::<usize>()
            + self.chunks.capacity() * std::mem::size_of::<Arc<Vec<T>>>()
            + self.ptrs.capacity() * std::mem::size_of::<*mut T>()
    }
}

impl<T: Clone, const BITS: u32> ChunkVec<T, BITS> {
    /// Makes chunk `c` (which must exist) this vector's own, copying it if
    /// a clone shares it, and returns its buffer.
    #[inline]
    fn own(&mut self, c: usize) -> *mut T {
        let chunk = &mut self.chunks[c];
        // A load, not `Arc::make_mut`'s compare-and-swap: no `Weak` to a
        // chunk is ever made, and new references are only made by cloning
        // the vector, which `&mut self` excludes; so a count of 1 stays 1.
        // The fence pairs with the `Release` decrement of a clone dropped
        // on another thread, so its reads come before our writes.
        if Arc::strong_count(chunk) == 1 {
            std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
        } else {
            self.ptrs[c] = Arc::make_mut(chunk).as_mut_ptr();
        }
        self.ptrs[c]
    }

    /// Chunk `c`'s `Vec`, owned (copied first if a clone shares it); the
    /// caller updates `ptrs[c]` if it may reallocate.
    fn own_vec(&mut self, c: usize) -> &mut Vec<T> {
        let v = Arc::make_mut(&mut self.chunks[c]);
        self.ptrs[c] = v.as_mut_ptr();
        v
    }

    /// The element at `i`, mutably, if it exists (copying its chunk first
    /// if a clone shares it).
    #[inline]
    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        if i >= self.len {
            return None;
        }
        let p = self.own(i >> BITS);
        // SAFETY: as in `get`; `own` made the chunk this vector's alone.
        Some(unsafe { &mut *p.add(i & (Self::SIZE - 1)) })
    }

    /// Appends `v`; returns its index.
    pub fn push(&mut self, v: T) -> usize {
        match self.chunks.last() {
            Some(c) if c.len() < Self::SIZE => {
                let last = self.chunks.len() - 1;
                let vec = self.own_vec(last);
                vec.push(v);
                // Only the first chunk grows by reallocation.
                self.ptrs[last] = vec.as_mut_ptr();
            }
            _ => {
                // Later chunks are allocated whole (no reallocation ever
                // copies a full chunk); the first one grows from small.
                let mut c = if self.chunks.is_empty() {
                    Vec::new()
                } else {
                    Vec::with_capacity(Self::SIZE)
                };
                c.push(v);
                self.add_chunk(c);
            }
        }
        self.len += 1;
        self.len - 1
    }

    /// Removes and returns the last element.
    pub fn pop(&mut self) -> Option<T> {
        let last = self.chunks.len().checked_sub(1)?;
        let vec = self.own_vec(last);
        let v = vec.pop()?;
        if vec.is_empty() && self.chunks.len() > 1 {
            self.chunks.pop();
            self.ptrs.pop();
        }
        self.len -= 1;
        Some(v)
    }

    /// Removes the element at `i` (which must exist), moving the last
    /// element into its place, as `Vec::swap_remove`.
    pub fn swap_remove(&mut self, i: usize) -> T {
        assert!(i < self.len, "swap_remove index {i} out of {}", self.len);
        let Some(last) = self.pop() else {
            unreachable!("len > 0 checked above")
        };
        if i == self.len {
            last
        } else {
            std::mem::replace(&mut self[i], last)
        }
    }
}

impl<T, const BITS: u32> Index<usize> for ChunkVec<T, BITS> {
    type Output = T;

    #[inline]
    fn index(&self, i: usize) -> &T {
        match self.get(i) {
            Some(v) => v,
            None => panic!("index {i} out of range for ChunkVec of length {}", self.len),
        }
    }
}

impl<T: Clone, const BITS: u32> IndexMut<usize> for ChunkVec<T, BITS> {
    #[inline]
    fn index_mut(&mut self, i: usize) -> &mut T {
        let len = self.len;
        match self.get_mut(i) {
            Some(v) => v,
            None => panic!("index {i} out of range for ChunkVec of length {len}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_across_chunks() {
        let mut s: Slab<u64> = Slab::default();
        assert!(s.is_empty());
        assert_eq!(s.get(0), None);
        let n = 3 * CHUNK + 17;
        for i in 0..n {
            assert_eq!(s.push(Some(i as u64 * 3)), i);
        }
        assert_eq!(s.len(), n);
        for i in [0, 1, CHUNK - 1, CHUNK, 2 * CHUNK + 5, n - 1] {
            assert_eq!(s.get(i), Some(&Some(i as u64 * 3)));
        }
        assert_eq!(s.get(n), None);
        assert_eq!(
            s.get_mut(CHUNK).and_then(Option::take),
            Some(CHUNK as u64 * 3)
        );
        assert_eq!(s.get(CHUNK), Some(&None));
        s[CHUNK] = Some(1);
        assert_eq!(s.get(CHUNK), Some(&Some(1)));
        // Full chunks never reallocate.
        assert!(s.chunks[1..].iter().all(|c| c.capacity() == CHUNK));
    }

    #[test]
    fn clones_share_chunks_until_written() {
        let mut a: ChunkVec<u64> = ChunkVec::default();
        for i in 0..3 * CHUNK as u64 {
            a.push(i);
        }
        let b = a.clone();
        assert!(a
            .chunks
            .iter()
            .zip(&b.chunks)
            .all(|(x, y)| Arc::ptr_eq(x, y)));
        // A write copies only the chunk it touches.
        a[CHUNK + 1] = 0;
        a.push(7);
        assert!(Arc::ptr_eq(&a.chunks[0], &b.chunks[0]));
        assert!(!Arc::ptr_eq(&a.chunks[1], &b.chunks[1]));
        // The push opened a fourth chunk; the full third is still shared.
        assert!(Arc::ptr_eq(&a.chunks[2], &b.chunks[2]));
        assert_eq!((a.chunks.len(), b.chunks.len()), (4, 3));
        assert_eq!((a[CHUNK + 1], b[CHUNK + 1]), (0, CHUNK as u64 + 1));
        assert_eq!((a.len(), b.len()), (3 * CHUNK + 1, 3 * CHUNK));
        assert_eq!(a.swap_remove(5), 5);
        assert_eq!((a[5], b[5]), (7, 5));
        assert!(!Arc::ptr_eq(&a.chunks[0], &b.chunks[0]));
        assert!(b.iter().copied().eq(0..3 * CHUNK as u64));
        // Once the clone is gone (here on another thread), a write to a
        // chunk it shared happens in place.
        let shared = a.ptrs[2];
        std::thread::spawn(move || drop(b))
            .join()
            .expect("drop thread");
        a[2 * CHUNK] = 9;
        assert_eq!(a.ptrs[2], shared);
        assert_eq!(
            (a[2 * CHUNK], a.get(2 * CHUNK + 1)),
            (9, Some(&(2 * CHUNK as u64 + 1)))
        );
        assert_eq!(a.get(a.len()), None);
    }

    #[test]
    fn swap_remove_and_pop_match_vec() {
        let mut c: ChunkVec<usize> = ChunkVec::default();
        let mut v = Vec::new();
        let mut x = 7u64;
        for i in 0..3 * CHUNK {
            c.push(i);
            v.push(i);
        }
        while !v.is_empty() {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let i = (x >> 33) as usize % v.len();
            if x & 1 == 0 {
                assert_eq!(c.swap_remove(i), v.swap_remove(i));
            } else {
                assert_eq!(c.pop(), v.pop());
            }
            assert_eq!(c.len(), v.len());
            if v.len() % 997 == 0 {
                assert!(c.iter().eq(v.iter()));
                // Emptied chunks are released.
                assert!(c.chunks.len() <= v.len() / CHUNK + 1);
            }
        }
        assert_eq!(c.pop(), None);
    }
}
