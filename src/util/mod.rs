//! Small helpers with no dependencies on the rest of the crate.

pub mod float;
pub mod geohash;
pub mod glob;
pub mod hll;
pub mod ldouble;
pub mod repr;
pub mod signal;

/// Runs `f`, which blocks its thread for a while (network I/O, a load
/// from disk), on the calling async worker: on a multi-threaded runtime
/// (also with a single worker) the worker's other tasks move to another
/// thread meanwhile, so every other connection keeps being served. Runs
/// `f` directly elsewhere (unit tests, plain threads).
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Changes an exact-size buffer as a `Vec`, then stores it back at its
/// exact length. The packed encodings (hash and sorted-set listpacks, list
/// nodes) keep `Box<[u8]>` so they carry no growth slack; callers reserve
/// exactly what they add, so the realloc stays in place within the
/// allocator's size class, as a listpack realloc does in Redis.
pub fn edit_exact(buf: &mut Box<[u8]>, f: impl FnOnce(&mut Vec<u8>)) {
    let mut v = std::mem::take(buf).into_vec();
    f(&mut v);
    *buf = v.into_boxed_slice();
}
