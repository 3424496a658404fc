//! Redis's INCRBYFLOAT arithmetic: C `long double` addition, `strtold`
//! parsing and `%.17Lf` formatting, done in src/util/ldouble.c so results
//! match redis-server on the same platform digit for digit (Rust has no
//! long double type, and f64 gives 0.30000000000000004 for 0.1 + 0.2 where
//! Redis answers 0.3).

use std::os::raw::{c_char, c_int, c_long, c_longlong};

extern "C" {
    fn cinnabar_ld_incr(
        current: *const c_char,
        current_len: usize,
        incr: *const c_char,
        incr_len: usize,
        out: *mut c_char,
        out_len: usize,
    ) -> c_long;
    fn cinnabar_ld_classify(s: *const c_char, len: usize) -> c_int;
    fn cinnabar_ld_timeout_ms(s: *const c_char, len: usize, ms: *mut c_longlong) -> c_int;
}

/// A timeout in seconds as Redis reads it: `(long long) ceill(s * 1000)` of
/// the long double, `LLONG_MIN` when out of range (as on x86-64); `None` if
/// `s` is not a float.
pub fn timeout_ms(s: &[u8]) -> Option<i64> {
    let mut ms: c_longlong = 0;
    // SAFETY: the pointer is valid for `s.len()` bytes, which is all the C
    // side reads; `ms` is a valid place for it to write.
    let ok = unsafe { cinnabar_ld_timeout_ms(s.as_ptr() as *const c_char, s.len(), &mut ms) };
    (ok == 1).then_some(ms)
}

/// Parses `s` as Redis parses a long double: `None` if invalid, otherwise
/// whether the value is finite (HINCRBYFLOAT refuses an infinite increment
/// before looking at the field).
pub fn is_finite(s: &[u8]) -> Option<bool> {
    // SAFETY: the pointer is valid for `s.len()` bytes, which is all the C
    // side reads.
    match unsafe { cinnabar_ld_classify(s.as_ptr() as *const c_char, s.len()) } {
        0 => Some(true),
        1 => Some(false),
        _ => None,
    }
}

/// Why an increment failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncrError {
    /// The stored value is not a valid float.
    CurrentNotFloat,
    /// The increment is not a valid float.
    IncrNotFloat,
    /// The result is NaN or infinite.
    NanOrInf,
}

/// `current` (None = missing, i.e. 0) plus `incr`, formatted as Redis does.
pub fn incr(current: Option<&[u8]>, incr: &[u8]) -> Result<Vec<u8>, IncrError> {
    // %.17Lf of the largest long double is under 5,000 characters.
    let mut out = vec![0u8; 5 * 1024 + 64];
    let (cp, cl) = match current {
        Some(c) => (c.as_ptr() as *const c_char, c.len()),
        None => (std::ptr::null(), 0),
    };
    // SAFETY: every pointer is valid for the length passed with it; the C
    // side writes at most `out.len()` bytes into `out` and reads only the
    // given lengths of `current` and `incr`.
    let n = unsafe {
        cinnabar_ld_incr(
            cp,
            cl,
            incr.as_ptr() as *const c_char,
            incr.len(),
            out.as_mut_ptr() as *mut c_char,
            out.len(),
        )
    };
    match n {
        -1 => Err(IncrError::CurrentNotFloat),
        -2 => Err(IncrError::IncrNotFloat),
        n if n < 0 => Err(IncrError::NanOrInf),
        n => {
            out.truncate(n as usize);
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_redis_formatting() {
        let r = |c: Option<&str>, i: &str| incr(c.map(str::as_bytes), i.as_bytes());
        assert_eq!(r(Some("0.1"), "0.2").unwrap(), b"0.3");
        assert_eq!(r(None, "10.5").unwrap(), b"10.5");
        assert_eq!(r(Some("10.5"), "0.1").unwrap(), b"10.6");
        assert_eq!(r(Some("5"), "-5").unwrap(), b"0");
        assert_eq!(r(Some("-1"), "1").unwrap(), b"0");
        assert_eq!(r(Some("1"), "5e3").unwrap(), b"5001");
        assert_eq!(r(Some("abc"), "1"), Err(IncrError::CurrentNotFloat));
        assert_eq!(r(Some("1"), " 1"), Err(IncrError::IncrNotFloat));
        assert_eq!(r(Some("1"), "1 "), Err(IncrError::IncrNotFloat));
        assert_eq!(r(Some("1"), "nan"), Err(IncrError::IncrNotFloat));
        assert_eq!(r(Some("1"), ""), Err(IncrError::IncrNotFloat));
        assert_eq!(r(Some("1"), "inf"), Err(IncrError::NanOrInf));
    }
}
