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
