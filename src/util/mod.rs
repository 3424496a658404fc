//! Small helpers with no dependencies on the rest of the crate.

pub mod float;
pub mod geohash;
pub mod glob;
pub mod hll;
pub mod ldouble;
pub mod repr;
pub mod signal;

/// An owned copy of a command argument, for anything kept past the
/// command (a consumer or group name, a subscribed channel, a tracked key,
/// a slow-log entry). Arguments are zero-copy slices of the connection's
/// read buffer (`protocol::codec`): keeping one alive keeps the whole
/// buffer (16 KiB or more) allocated, and a request-reply client then pins
/// a new buffer with every command it sends.
pub fn detach(arg: &bytes::Bytes) -> bytes::Bytes {
    bytes::Bytes::copy_from_slice(arg)
}

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
