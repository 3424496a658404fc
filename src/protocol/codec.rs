//! The request parser: RESP multibulk and inline commands, with Redis's limits.
//!
//! A server only ever receives two request shapes: arrays of bulk strings
//! (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`) and inline commands (`PING\r\n` typed in
//! telnet). This parser handles exactly those, resumably: partial input keeps
//! its state (args already parsed, the bulk length announced) so a large
//! multibulk arriving slowly is never re-scanned, and every length is checked
//! against its limit as soon as its header arrives, before the body is
//! buffered. Arguments are zero-copy slices of the read buffer.
//!
//! The full RESP3 grammar (maps, doubles, attributes…) is never sent by
//! clients, which is why this is not built on a general RESP decoder; see
//! ARCHITECTURE.md.

use bytes::{Buf, Bytes, BytesMut};

/// Longest header or inline line Redis accepts (PROTO_INLINE_MAX_SIZE).
pub const MAX_INLINE: usize = 64 * 1024;
/// Largest multibulk count (Redis: INT_MAX).
pub const MAX_MULTIBULK: i64 = i32::MAX as i64;
/// Limits that apply before a client has authenticated.
pub const UNAUTH_MAX_MULTIBULK: i64 = 10;
pub const UNAUTH_MAX_BULK: i64 = 16384;

/// A protocol violation: the server replies `-ERR Protocol error: <msg>` and
/// closes the connection, as Redis does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl ProtocolError {
    fn new(msg: &str) -> Self {
        ProtocolError(msg.to_string())
    }
    /// The error line sent to the client (without `-` and CRLF).
    pub fn line(&self) -> String {
        format!("ERR Protocol error: {}", self.0)
    }
}

/// Per-client limits the parser enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `proto-max-bulk-len`.
    pub max_bulk_len: u64,
    /// Unauthenticated clients get Redis's much smaller limits.
    pub authenticated: bool,
}

/// Resumable parser state for one connection.
#[derive(Debug, Default)]
pub struct RequestParser {
    argv: Vec<Bytes>,
    /// Arguments still expected in the current multibulk (0 = between commands).
    remaining: usize,
    /// Length of the bulk whose `$` header was already consumed.
    bulk_len: Option<usize>,
    /// Bytes held by `argv` (counted against the query buffer limit).
    pending_bytes: usize,
    /// See [`RequestParser::take_fat_arg`].
    fat_arg: usize,
    /// A finished command's argument vector handed back for the next
    /// command ([`RequestParser::recycle`]): one allocation less per
    /// command.
    spare: Vec<Bytes>,
}

/// Argument vectors at most this long are kept for reuse.
const SPARE_MAX: usize = 64;

/// Redis's PROTO_MBULK_BIG_ARG: an argument this long is a "fat" one.
pub const BIG_ARG: usize = 32 * 1024;

fn find_crlf(buf: &[u8]) -> Option<usize> {
    // Redis looks for '\r' and needs one more byte after it.
    let pos = memchr_cr(buf)?;
    if pos + 1 < buf.len() {
        Some(pos)
    } else {
        None
    }
}

fn memchr_cr(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == b'\r')
}

/// Strict decimal parse as Redis's string2ll: optional '-', no '+', no
/// spaces, no leading zeros.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (neg, digits) = match s[0] {
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || digits[0] == b'0' {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    if neg {
        if v > i64::MAX as u64 + 1 {
            None
        } else {
            Some((v as i64).wrapping_neg())
        }
    } else if v > i64::MAX as u64 {
        None
    } else {
        Some(v as i64)
    }
}

impl RequestParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes of a partially received command held outside the read buffer.
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// Takes back a command's argument vector once the command is done
    /// with it (its arguments are dropped; a small vector's allocation is
    /// kept for the next command).
    pub fn recycle(&mut self, mut argv: Vec<Bytes>) {
        if argv.capacity() <= SPARE_MAX && argv.capacity() > self.spare.capacity() {
            argv.clear();
            self.spare = argv;
        }
    }

    /// The longest fat argument ([`BIG_ARG`] bytes or more) completed
    /// since the last call, with its CRLF; 0 if none.
    pub fn take_fat_arg(&mut self) -> usize {
        std::mem::take(&mut self.fat_arg)
    }

    /// How many bytes the next read should make room for (a large bulk whose
    /// header was seen), so big values arrive without repeated reallocation.
    pub fn wanted(&self, buf: &BytesMut) -> usize {
        match self.bulk_len {
            Some(n) => (n + 2).saturating_sub(buf.len()),
            None => 0,
        }
    }

    /// Parses the next complete command out of `buf`. `Ok(None)` means more
    /// input is needed. Empty commands (`*0`, blank inline lines) are skipped.
    pub fn next(
        &mut self,
        buf: &mut BytesMut,
        limits: Limits,
    ) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        loop {
            if self.remaining == 0 {
                if buf.is_empty() {
                    return Ok(None);
                }
                if buf[0] == b'*' {
                    match self.start_multibulk(buf, limits)? {
                        None => return Ok(None),
                        Some(0) => continue, // empty multibulk: ignored
                        Some(_) => {}
                    }
                } else {
                    match parse_inline(buf)? {
                        None => return Ok(None),
                        Some(args) if args.is_empty() => continue,
                        Some(args) => return Ok(Some(args)),
                    }
                }
            }
            // Inside a multibulk: read bulk strings.
            while self.remaining > 0 {
                let len = match self.bulk_len {
                    Some(n) => n,
                    None => {
                        if buf.is_empty() {
                            return Ok(None);
                        }
                        if buf[0] != b'$' {
                            return Err(ProtocolError(format!(
                                "expected '$', got '{}'",
                                buf[0] as char
                            )));
                        }
                        let Some(cr) = find_crlf(buf) else {
                            if buf.len() > MAX_INLINE {
                                return Err(ProtocolError::new("too big bulk count string"));
                            }
                            return Ok(None);
                        };
                        let n = parse_i64(&buf[1..cr]);
                        let n = match n {
                            Some(n) if n >= 0 && (n as u64) <= limits.max_bulk_len => n,
                            _ => return Err(ProtocolError::new("invalid bulk length")),
                        };
                        if !limits.authenticated && n > UNAUTH_MAX_BULK {
                            return Err(ProtocolError::new("unauthenticated bulk length"));
                        }
                        buf.advance(cr + 2);
                        self.bulk_len = Some(n as usize);
                        n as usize
                    }
                };
                if buf.len() < len + 2 {
                    return Ok(None);
                }
                if len >= BIG_ARG {
                    self.fat_arg = self.fat_arg.max(len + 2);
                }
                let arg = buf.split_to(len).freeze();
                buf.advance(2); // CRLF (not verified, as Redis)
                self.bulk_len = None;
                self.remaining -= 1;
                self.pending_bytes += arg.len();
                self.argv.push(arg);
            }
            self.pending_bytes = 0;
            return Ok(Some(std::mem::take(&mut self.argv)));
        }
    }

    /// Consumes a `*<n>` header. Returns the count (0 if empty/negative).
    fn start_multibulk(
        &mut self,
        buf: &mut BytesMut,
        limits: Limits,
    ) -> Result<Option<usize>, ProtocolError> {
        let Some(cr) = find_crlf(buf) else {
            if buf.len() > MAX_INLINE {
                return Err(ProtocolError::new("too big mbulk count string"));
            }
            return Ok(None);
        };
        let n = match parse_i64(&buf[1..cr]) {
            Some(n) if n <= MAX_MULTIBULK => n,
            _ => return Err(ProtocolError::new("invalid multibulk length")),
        };
        if !limits.authenticated && n > UNAUTH_MAX_MULTIBULK {
            return Err(ProtocolError::new("unauthenticated multibulk length"));
        }
        buf.advance(cr + 2);
        if n <= 0 {
            return Ok(Some(0));
        }
        self.remaining = n as usize;
        // Do not trust the client's count for preallocation.
        let want = (n as usize).min(1024);
        self.argv = if self.spare.capacity() >= want {
            std::mem::take(&mut self.spare)
        } else {
            Vec::with_capacity(want)
        };
        Ok(Some(n as usize))
    }
}

/// Parses one inline command line. `Ok(None)`: no complete line yet.
fn parse_inline(buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() > MAX_INLINE {
            return Err(ProtocolError::new("too big inline request"));
        }
        return Ok(None);
    };
    let line = buf.split_to(nl + 1);
    let mut line = &line[..nl];
    if line.last() == Some(&b'\r') {
        line = &line[..line.len() - 1];
    }
    match split_args(line) {
        Some(args) => Ok(Some(args.into_iter().map(Bytes::from).collect())),
        None => Err(ProtocolError::new("unbalanced quotes in request")),
    }
}

fn hex_val(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Splits a line into arguments with redis-cli/sdssplitargs quoting rules:
/// `"…"` with `\n \r \t \b \a \\ \" \xHH` escapes, `'…'` with `\'`; a closing
/// quote must be followed by a space or the end. `None` on unbalanced quotes.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut args = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= n {
            return Some(args);
        }
        let mut cur = Vec::new();
        let mut in_dq = false;
        let mut in_sq = false;
        loop {
            if in_dq {
                if i >= n {
                    return None;
                }
                if line[i] == b'\\'
                    && i + 3 < n
                    && line[i + 1] == b'x'
                    && hex_val(line[i + 2]).is_some()
                    && hex_val(line[i + 3]).is_some()
                {
                    let hi = hex_val(line[i + 2]).unwrap_or(0);
                    let lo = hex_val(line[i + 3]).unwrap_or(0);
                    cur.push(hi * 16 + lo);
                    i += 3;
                } else if line[i] == b'\\' && i + 1 < n {
                    i += 1;
                    cur.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        c => c,
                    });
                } else if line[i] == b'"' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(line[i]);
                }
            } else if in_sq {
                if i >= n {
                    return None;
                }
                if line[i] == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    i += 1;
                    cur.push(b'\'');
                } else if line[i] == b'\'' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(line[i]);
                }
            } else {
                if i >= n {
                    break;
                }
                match line[i] {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => {
                        i += 1;
                        break;
                    }
                    b'"' => in_dq = true,
                    b'\'' => in_sq = true,
                    c => cur.push(c),
                }
            }
            i += 1;
        }
        args.push(cur);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limits = Limits {
        max_bulk_len: 512 * 1024 * 1024,
        authenticated: true,
    };

    fn parse_all(input: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, ProtocolError> {
        let mut p = RequestParser::new();
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(cmd) = p.next(&mut buf, L)? {
            out.push(cmd.iter().map(|b| b.to_vec()).collect());
        }
        Ok(out)
    }

    #[test]
    fn multibulk_and_inline() {
        let cmds = parse_all(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\nset a \"b c\"\n").unwrap();
        assert_eq!(cmds.len(), 3);
        assert_eq!(cmds[0], vec![b"GET".to_vec(), b"k".to_vec()]);
        assert_eq!(cmds[1], vec![b"PING".to_vec()]);
        assert_eq!(
            cmds[2],
            vec![b"set".to_vec(), b"a".to_vec(), b"b c".to_vec()]
        );
    }

    #[test]
    fn byte_by_byte_is_resumable() {
        let input = b"*3\r\n$3\r\nSET\r\n$5\r\nhello\r\n$5\r\nworld\r\n";
        let mut p = RequestParser::new();
        let mut buf = BytesMut::new();
        let mut got = None;
        for &b in input.iter() {
            buf.extend_from_slice(&[b]);
            if let Some(c) = p.next(&mut buf, L).unwrap() {
                got = Some(c);
            }
        }
        let got = got.unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(&got[2][..], b"world");
    }

    #[test]
    fn errors_have_redis_texts() {
        assert_eq!(
            parse_all(b"*2\r\n+foo\r\n").unwrap_err().0,
            "expected '$', got '+'"
        );
        assert_eq!(
            parse_all(b"*x\r\n").unwrap_err().0,
            "invalid multibulk length"
        );
        assert_eq!(
            parse_all(b"*1\r\n$-5\r\n").unwrap_err().0,
            "invalid bulk length"
        );
        assert_eq!(
            parse_all(b"*3000000000\r\n").unwrap_err().0,
            "invalid multibulk length"
        );
        assert_eq!(
            parse_all(b"set \"a\n").unwrap_err().0,
            "unbalanced quotes in request"
        );
        let big = vec![b'a'; MAX_INLINE + 10];
        assert_eq!(parse_all(&big).unwrap_err().0, "too big inline request");
        let mut big = b"*1\r\n$".to_vec();
        big.extend(vec![b'1'; MAX_INLINE + 10]);
        assert_eq!(parse_all(&big).unwrap_err().0, "too big bulk count string");
        let limits = Limits {
            max_bulk_len: 10,
            authenticated: true,
        };
        let mut p = RequestParser::new();
        let mut buf = BytesMut::from(&b"*1\r\n$11\r\n"[..]);
        assert_eq!(
            p.next(&mut buf, limits).unwrap_err().0,
            "invalid bulk length"
        );
    }

    #[test]
    fn unauthenticated_limits() {
        let limits = Limits {
            max_bulk_len: 1 << 29,
            authenticated: false,
        };
        let mut p = RequestParser::new();
        let mut buf = BytesMut::from(&b"*11\r\n"[..]);
        assert_eq!(
            p.next(&mut buf, limits).unwrap_err().0,
            "unauthenticated multibulk length"
        );
        let mut p = RequestParser::new();
        let mut buf = BytesMut::from(&b"*1\r\n$16385\r\n"[..]);
        assert_eq!(
            p.next(&mut buf, limits).unwrap_err().0,
            "unauthenticated bulk length"
        );
    }

    #[test]
    fn empty_commands_skipped() {
        let cmds = parse_all(b"*0\r\n\r\n*-1\r\n   \r\nPING\r\n").unwrap();
        assert_eq!(cmds, vec![vec![b"PING".to_vec()]]);
    }

    #[test]
    fn split_args_escapes() {
        assert_eq!(
            split_args(b"a \"\\x41\\n\" 'it\\'s'").unwrap(),
            vec![b"a".to_vec(), b"A\n".to_vec(), b"it's".to_vec()]
        );
        assert!(split_args(b"\"a\"b").is_none());
        assert!(split_args(b"'abc").is_none());
    }

    #[test]
    fn strict_integers() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        assert_eq!(parse_i64(b"01"), None);
        assert_eq!(parse_i64(b"+1"), None);
        assert_eq!(parse_i64(b"-0"), None);
        assert_eq!(parse_i64(b" 1"), None);
        assert_eq!(parse_i64(b""), None);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let mut p = RequestParser::new();
            let mut buf = BytesMut::from(&data[..]);
            for _ in 0..600 {
                match p.next(&mut buf, L) {
                    Ok(Some(_)) => continue,
                    _ => break,
                }
            }
        }
    }
}
