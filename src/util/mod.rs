//! Small helpers with no dependencies on the rest of the crate.

pub mod float;
pub mod geohash;
pub mod glob;
pub mod hll;
pub mod ldouble;
pub mod repr;
pub mod signal;

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
