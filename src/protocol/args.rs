//! Argument access for handlers: a cursor over argv with Redis's parse rules
//! and error texts, so handlers read options declaratively.

use bytes::Bytes;

use crate::protocol::codec::parse_i64;
use crate::protocol::error::{CmdError, CmdResult};
use crate::util::float::parse_f64;

/// ASCII case-insensitive comparison of an argument with a keyword.
#[inline]
pub fn eq_ic(arg: &[u8], keyword: &str) -> bool {
    arg.eq_ignore_ascii_case(keyword.as_bytes())
}

/// Parses an integer argument (`ERR value is not an integer or out of range`).
pub fn int_arg(arg: &[u8]) -> CmdResult<i64> {
    parse_i64(arg).ok_or(CmdError::NOT_INTEGER)
}

/// Redis's `getRangeLongFromObjectOrReply`: an integer within
/// `[min, max]`. With `msg`, both a non-integer and an out-of-range value
/// answer `ERR <msg>`; without, they answer `value is not an integer or
/// out of range` and `value is out of range, value must between <min> and
/// <max>`.
pub fn range_arg(arg: &[u8], min: i64, max: i64, msg: Option<&'static str>) -> CmdResult<i64> {
    let Some(v) = parse_i64(arg) else {
        return Err(msg.map_or(CmdError::NOT_INTEGER, CmdError::err));
    };
    if v < min || v > max {
        return Err(match msg {
            Some(m) => CmdError::err(m),
            None => CmdError::new(format!(
                "ERR value is out of range, value must between {min} and {max}"
            )),
        });
    }
    Ok(v)
}

/// Redis's `getPositiveLongFromObjectOrReply`: a non-negative integer, one
/// text for a non-integer and a negative value (`value is out of range, must
/// be positive` unless the command names its own).
pub fn positive_arg(arg: &[u8], msg: Option<&'static str>) -> CmdResult<i64> {
    range_arg(
        arg,
        0,
        i64::MAX,
        Some(msg.unwrap_or("value is out of range, must be positive")),
    )
}

/// Redis's `getIntFromObjectOrReply`: an integer that fits a C `int`.
pub fn c_int_arg(arg: &[u8], msg: Option<&'static str>) -> CmdResult<i64> {
    range_arg(arg, i32::MIN.into(), i32::MAX.into(), msg)
}

/// Parses a float argument (`ERR value is not a valid float`).
pub fn float_arg(arg: &[u8]) -> CmdResult<f64> {
    parse_f64(arg).ok_or(CmdError::NOT_FLOAT)
}

/// A cursor over a command's arguments.
pub struct Args<'a> {
    argv: &'a [Bytes],
    pos: usize,
}

impl<'a> Args<'a> {
    /// A cursor starting at `argv[start]` (1 to skip the command name).
    pub fn new(argv: &'a [Bytes], start: usize) -> Self {
        Args {
            argv,
            pos: start.min(argv.len()),
        }
    }

    pub fn remaining(&self) -> usize {
        self.argv.len() - self.pos
    }

    pub fn is_done(&self) -> bool {
        self.pos >= self.argv.len()
    }

    /// The rest of the arguments, without consuming them.
    pub fn rest(&self) -> &'a [Bytes] {
        &self.argv[self.pos..]
    }

    /// The next argument if any.
    pub fn next_opt(&mut self) -> Option<&'a Bytes> {
        let a = self.argv.get(self.pos)?;
        self.pos += 1;
        Some(a)
    }

    /// The next argument or `ERR syntax error`.
    pub fn next_arg(&mut self) -> CmdResult<&'a Bytes> {
        self.next_opt().ok_or(CmdError::SYNTAX)
    }

    pub fn next_i64(&mut self) -> CmdResult<i64> {
        int_arg(self.next_arg()?)
    }

    pub fn next_f64(&mut self) -> CmdResult<f64> {
        float_arg(self.next_arg()?)
    }

    /// Peeks whether the next argument is `keyword` (case-insensitive).
    pub fn peek_is(&self, keyword: &str) -> bool {
        self.argv.get(self.pos).is_some_and(|a| eq_ic(a, keyword))
    }

    /// Consumes the next argument if it is `keyword`.
    pub fn eat(&mut self, keyword: &str) -> bool {
        if self.peek_is(keyword) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Fails with `ERR syntax error` unless every argument was consumed.
    pub fn finish(&self) -> CmdResult<()> {
        if self.is_done() {
            Ok(())
        } else {
            Err(CmdError::SYNTAX)
        }
    }
}

/// Parses a SCAN-family cursor as Redis does (C `strtoul`: optional sign,
/// a negative value wraps; no leading space; `ERR invalid cursor`).
pub fn parse_cursor(raw: &[u8]) -> CmdResult<u64> {
    let bad = || CmdError::err("invalid cursor");
    if raw.is_empty() {
        return Ok(0);
    }
    let (neg, digits) = match raw[0] {
        b'-' => (true, &raw[1..]),
        b'+' => (false, &raw[1..]),
        _ => (false, raw),
    };
    if digits.is_empty() || !digits.iter().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let mut v: u64 = 0;
    for &c in digits {
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add((c - b'0') as u64))
            .ok_or_else(bad)?;
    }
    Ok(if neg { v.wrapping_neg() } else { v })
}
