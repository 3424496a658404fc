//! Float formatting and parsing with Redis's exact rules.
//!
//! Redis 7.0 replies doubles (ZSCORE, RESP3 doubles, ZRANGE WITHSCORES…) with
//! printf's `%.17g`, so `0.1` reads back as `0.10000000000000001`; INCRBYFLOAT
//! and HINCRBYFLOAT print in "human friendly" fixed notation without trailing
//! zeros. Rust has no `%g`, so [`format_g17`] rebuilds it from the `{:e}`
//! formatter, which is exact.

/// Formats `d` exactly as C's `printf("%.17g", d)` does.
pub fn format_g17(d: f64) -> String {
    if d.is_nan() {
        return if d.is_sign_negative() { "-nan" } else { "nan" }.to_string();
    }
    if d.is_infinite() {
        return if d > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    if d == 0.0 {
        return if d.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    // 17 significant digits: one before the point, sixteen after.
    let sci = format!("{:.16e}", d);
    let (mantissa, exp) = match sci.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (sci.as_str(), 0),
    };
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let mut out = String::with_capacity(24);
    if negative {
        out.push('-');
    }
    if !(-4..17).contains(&exp) {
        // Exponential form: d.ddd…e±XX with trailing zeros removed.
        let (first, rest) = digits.split_at(1);
        out.push_str(first);
        let rest = rest.trim_end_matches('0');
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let e = exp.unsigned_abs();
        if e < 10 {
            out.push('0');
        }
        out.push_str(&e.to_string());
    } else if exp >= 0 {
        let point = (exp + 1) as usize;
        let (int_part, frac) = digits.split_at(point.min(digits.len()));
        out.push_str(int_part);
        let frac = frac.trim_end_matches('0');
        if !frac.is_empty() {
            out.push('.');
            out.push_str(frac);
        }
    } else {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(digits.trim_end_matches('0'));
    }
    out
}

/// Formats a double the way Redis's INCRBYFLOAT/HINCRBYFLOAT reply does
/// ("human friendly": fixed notation, no exponent, no trailing zeros).
///
/// Redis computes these with `long double` and prints `%.17Lf`; Rust has no
/// 80-bit float, so we use the shortest representation that round-trips the
/// f64, which agrees with Redis for the values users write (10.5 + 0.1 = 10.6).
pub fn format_human(d: f64) -> String {
    if d == 0.0 {
        return "0".to_string();
    }
    let s = format!("{}", d);
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// C's `strtod` on `s` (as Redis calls it on an argument): returns the value,
/// how many bytes it consumed and whether it set `ERANGE`. It accepts what
/// Rust's parser does not (hexadecimal `0x1p4`, leading spaces, `infinity`,
/// `nan(…)`), and an embedded NUL ends the text, as in Redis's C strings.
/// The C library runs in the "C" locale (Cinnabar never calls
/// `setlocale`), so the decimal point is always `.`.
fn c_strtod(s: &[u8]) -> (f64, usize, bool) {
    let mut small = [0u8; 64];
    let mut big = Vec::new();
    let buf: &mut [u8] = if s.len() < small.len() {
        small[..s.len()].copy_from_slice(s);
        &mut small[..s.len() + 1]
    } else {
        big.reserve_exact(s.len() + 1);
        big.extend_from_slice(s);
        big.push(0);
        &mut big
    };
    let start = buf.as_ptr() as *const libc::c_char;
    let mut end: *mut libc::c_char = std::ptr::null_mut();
    // SAFETY: `buf` is NUL-terminated and outlives the call; errno is
    // thread-local, cleared first as the C idiom requires.
    let (value, erange) = unsafe {
        *libc::__errno_location() = 0;
        let v = libc::strtod(start, &mut end);
        (v, *libc::__errno_location() == libc::ERANGE)
    };
    let used = (end as usize).saturating_sub(start as usize);
    (value, used, erange)
}

/// Whether `strtod` stopped at the end of the argument (or at a NUL in it).
fn ended(s: &[u8], used: usize) -> bool {
    s.get(used).is_none_or(|&b| b == 0)
}

/// Parses a float argument as Redis's `getDoubleFromObject` does: strtod
/// over the whole argument, no leading space, NaN rejected, and an overflow
/// to ±inf or an underflow to zero rejected (`1e400`, `1e-400`), while the
/// literal `inf`/`-inf`, denormals and hexadecimal floats are accepted.
pub fn parse_f64(s: &[u8]) -> Option<f64> {
    if s.is_empty() || s[0].is_ascii_whitespace() || s[0] == 0x0b {
        return None;
    }
    // Fast path: a finite non-zero result from Rust's (correctly rounded)
    // parser is what strtod returns too; zero, infinities and anything Rust
    // rejects go to strtod for its exact rules.
    if let Some(v) = std::str::from_utf8(s)
        .ok()
        .and_then(|t| t.parse::<f64>().ok())
    {
        if v.is_finite() && v != 0.0 {
            return Some(v);
        }
    }
    let (v, used, erange) = c_strtod(s);
    if used == 0 || used != s.len() || v.is_nan() {
        return None;
    }
    if erange && (v.is_infinite() || v == 0.0) {
        return None;
    }
    Some(v)
}

/// C's `(long long)` cast of a double as x86-64 performs it: truncation
/// toward zero, and `LLONG_MIN` for NaN and anything out of range (where
/// Rust's `as` saturates). Redis's results follow it (a Lua number 2^63 is
/// returned as -2^63).
pub fn c_cast_i64(n: f64) -> i64 {
    if n.is_nan() || !(-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&n) {
        i64::MIN
    } else {
        n as i64
    }
}

/// Parses a score bound's number as Redis's `zslParseRange` does: plain
/// strtod up to the end of the text, so an empty string is 0, leading space
/// is skipped, an overflow is ±inf; only NaN and trailing text are errors.
pub fn parse_f64_lenient(s: &[u8]) -> Option<f64> {
    let (v, used, _) = c_strtod(s);
    (ended(s, used) && !v.is_nan()).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g17_matches_printf() {
        let cases: &[(f64, &str)] = &[
            (0.1, "0.10000000000000001"),
            (1.5, "1.5"),
            (3.0, "3"),
            (-3.0, "-3"),
            (1e20, "1e+20"),
            (1e16, "10000000000000000"),
            (1e17, "1e+17"),
            (1.0 / 3.0, "0.33333333333333331"),
            (1e-5, "1.0000000000000001e-05"),
            (0.0001, "0.0001"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (5e-324, "4.9406564584124654e-324"),
            (-0.0, "-0"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (2.5, "2.5"),
            (100.0, "100"),
        ];
        for (d, want) in cases {
            assert_eq!(format_g17(*d), *want, "formatting {d:e}");
        }
    }

    #[test]
    fn human_format() {
        assert_eq!(format_human(10.5 + 0.1), "10.6");
        assert_eq!(format_human(3000.0), "3000");
        assert_eq!(format_human(-1.5), "-1.5");
        assert_eq!(format_human(0.0), "0");
        assert_eq!(format_human(1e20), "100000000000000000000");
    }

    #[test]
    fn parse_rules() {
        assert_eq!(parse_f64(b"1.5"), Some(1.5));
        assert_eq!(parse_f64(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_f64(b"+inf"), Some(f64::INFINITY));
        assert_eq!(parse_f64(b"nan"), None);
        assert_eq!(parse_f64(b" 1"), None);
        assert_eq!(parse_f64(b"1 "), None);
        assert_eq!(parse_f64(b""), None);
        assert_eq!(parse_f64(b"1e3"), Some(1000.0));
        assert_eq!(parse_f64(b"abc"), None);
        // strtod's rules where Rust's parser differs
        assert_eq!(parse_f64(b"0x10"), Some(16.0));
        assert_eq!(parse_f64(b"0x1p-2"), Some(0.25));
        assert_eq!(parse_f64(b"infinity"), Some(f64::INFINITY));
        assert_eq!(parse_f64(b"1e400"), None);
        assert_eq!(parse_f64(b"-1e400"), None);
        assert_eq!(parse_f64(b"1e-400"), None);
        assert_eq!(parse_f64(b"0"), Some(0.0));
        assert_eq!(parse_f64(b"-0.0e10"), Some(0.0));
        assert!(parse_f64(b"1e-320").is_some_and(|v| v > 0.0));
        assert_eq!(parse_f64(b"1e"), None);
        assert_eq!(parse_f64(b"nan(1)"), None);
        assert_eq!(parse_f64(b"1\x002"), None);
        let long = format!("{}1", "0".repeat(100));
        assert_eq!(parse_f64(long.as_bytes()), Some(1.0));
    }

    #[test]
    fn c_cast_rules() {
        assert_eq!(c_cast_i64(-3.9), -3);
        assert_eq!(c_cast_i64(f64::INFINITY), i64::MIN);
        assert_eq!(c_cast_i64(9.3e18), i64::MIN);
        assert_eq!(c_cast_i64(-9_223_372_036_854_775_808.0), i64::MIN);
        assert_eq!(c_cast_i64(f64::NAN), i64::MIN);
    }

    #[test]
    fn lenient_rules() {
        assert_eq!(parse_f64_lenient(b""), Some(0.0));
        assert_eq!(parse_f64_lenient(b" 2"), Some(2.0));
        assert_eq!(parse_f64_lenient(b"2 "), None);
        assert_eq!(parse_f64_lenient(b"1e400"), Some(f64::INFINITY));
        assert_eq!(parse_f64_lenient(b"0x10"), Some(16.0));
        assert_eq!(parse_f64_lenient(b"nan"), None);
        assert_eq!(parse_f64_lenient(b"2\x00junk"), Some(2.0));
    }
}
