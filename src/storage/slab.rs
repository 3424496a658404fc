//! `Slab<T>`: the indexed store behind a shard's object slots (collections
//! and long strings; entries hold their index). Chunks of [`CHUNK`] slots
//! instead of one vector: a vector that doubles copies all of itself under
//! the shard lock (measured: 11-14 ms stalls on HSETs that pushed a shard's
//! slab past 524,288 objects), whereas here a push allocates at most one
//! chunk, and only the first chunk grows by reallocation (up to `CHUNK`
//! slots, so a small shard does not pay for a whole chunk).

/// Slots per chunk (log2).
const CHUNK_BITS: u32 = 12;
/// Slots per chunk.
const CHUNK: usize = 1 << CHUNK_BITS;

#[derive(Debug)]
pub struct Slab<T> {
    /// Every chunk but the last holds exactly `CHUNK` slots.
    chunks: Vec<Vec<Option<T>>>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slab<T> {
    /// Number of slots (occupied or not).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if there are no slots.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The slot at `i`, if it exists.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&Option<T>> {
        self.chunks.get(i >> CHUNK_BITS)?.get(i & (CHUNK - 1))
    }

    /// The slot at `i`, mutably, if it exists.
    #[inline]
    pub fn get_mut(&mut self, i: usize) -> Option<&mut Option<T>> {
        self.chunks
            .get_mut(i >> CHUNK_BITS)?
            .get_mut(i & (CHUNK - 1))
    }

    /// Appends a slot holding `v`; returns its index.
    pub fn push(&mut self, v: T) -> usize {
        match self.chunks.last_mut() {
            Some(c) if c.len() < CHUNK => c.push(Some(v)),
            _ => {
                // Later chunks are allocated whole (no reallocation ever
                // copies a full chunk); the first one grows from small.
                let mut c = if self.chunks.is_empty() {
                    Vec::new()
                } else {
                    Vec::with_capacity(CHUNK)
                };
                c.push(Some(v));
                self.chunks.push(c);
            }
        }
        self.len += 1;
        self.len - 1
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
            assert_eq!(s.push(i as u64 * 3), i);
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
        *s.get_mut(CHUNK).unwrap() = Some(1);
        assert_eq!(s.get(CHUNK), Some(&Some(1)));
        // Full chunks never reallocate.
        assert!(s.chunks[1..].iter().all(|c| c.capacity() == CHUNK));
    }
}
