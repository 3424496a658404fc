//! Copy-on-write ownership of the large representations of collections
//! (hash and set tables, the sorted-set tree, multi-node lists, streams).
//!
//! A versioned snapshot must not encode a million-member value while it
//! holds the value's shard: every command on that shard (and the worker
//! thread running it) would wait the whole encoding out. Instead it takes
//! a second reference under the lock, in O(1), and encodes after releasing
//! the shard. A command that changes the value meanwhile gets its own copy
//! on its first mutable access ([`Arc::make_mut`]); when nobody else holds
//! it, that access costs one atomic check. Hash and set tables and sorted
//! sets keep their elements in chunked arenas that are themselves shared
//! copy-on-write (`storage::chunked`), and list nodes and stream blocks are
//! each in a `Shared` of their own, so a copy costs one reference per chunk,
//! node or block and the writer then copies only what it touches (a
//! stream's consumer groups are shared one by one too, and their pending
//! entries lists are chunked the same way, `storage::cowmap`). Cloning a `Shared` is shallow,
//! which keeps value semantics (COPY's copy is separated on first write).
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

#[derive(Debug, Default, PartialEq)]
pub struct Shared<T>(Arc<T>);

impl<T> Shared<T> {
    pub fn new(v: T) -> Self {
        Shared(Arc::new(v))
    }
}

impl<T: Clone> Shared<T> {
    /// The value, copied only if someone else still holds it.
    pub fn into_inner(self) -> T {
        Arc::try_unwrap(self.0).unwrap_or_else(|a| (*a).clone())
    }
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared(Arc::clone(&self.0))
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: Clone> DerefMut for Shared<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        Arc::make_mut(&mut self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_separates_a_shared_value() {
        let mut a = Shared::new(vec![1, 2, 3]);
        let b = a.clone();
        a.push(4);
        assert_eq!(*a, vec![1, 2, 3, 4]);
        assert_eq!(*b, vec![1, 2, 3]);
        let mut c = Shared::new(vec![1]);
        let p: *const Vec<i32> = &*c;
        c.push(2);
        assert!(
            std::ptr::eq(&*c, p),
            "an unshared value is changed in place"
        );
        assert_eq!(b.into_inner(), vec![1, 2, 3]);
    }
}
