//! Typed replies, encoded per client as RESP2 or RESP3.
//!
//! Handlers return a [`Reply`]; they never write bytes. The connection encodes
//! it for the protocol version the client negotiated with HELLO. Where RESP3
//! has a richer type (null, map, set, double, boolean, verbatim, push) the
//! RESP2 encoding is what Redis 7 sends to RESP2 clients.

use bytes::{BufMut, Bytes, BytesMut};

use crate::protocol::error::CmdError;
use crate::util::float::format_g17;

/// A reply value.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+OK`-style status line.
    Status(&'static str),
    /// A status line built at run time (must not contain CR/LF).
    StatusOwned(String),
    /// `-ERR …`.
    Error(CmdError),
    /// `:n`.
    Int(i64),
    /// `$len\r\n…` binary-safe string.
    Bulk(Bytes),
    /// Null bulk (`$-1` in RESP2, `_` in RESP3).
    Null,
    /// Null array (`*-1` in RESP2, `_` in RESP3).
    NullArray,
    /// `*n` array.
    Array(Vec<Reply>),
    /// RESP3 map (`%n`); a flat array of 2n elements in RESP2.
    Map(Vec<(Reply, Reply)>),
    /// RESP3 set (`~n`); an array in RESP2.
    Set(Vec<Reply>),
    /// RESP3 double (`,d`); a bulk string formatted `%.17g` in RESP2.
    Double(f64),
    /// RESP3 boolean (`#t`/`#f`); `:1`/`:0` in RESP2.
    Bool(bool),
    /// RESP3 verbatim string (`=len\r\ntxt:…`, the format's three
    /// letters first); a bulk string in RESP2.
    Verbatim([u8; 3], Bytes),
    /// RESP3 big number (`(digits`); a bulk string in RESP2.
    BigNumber(Bytes),
    /// RESP3 push (`>n`); an array in RESP2.
    Push(Vec<Reply>),
    /// Bytes already encoded in RESP (identical for both protocols).
    Raw(Bytes),
}

impl Reply {
    pub const OK: Reply = Reply::Status("OK");

    /// A bulk string from anything byte-like.
    pub fn bulk(b: impl Into<Bytes>) -> Reply {
        Reply::Bulk(b.into())
    }

    /// A bulk string copied from a slice.
    pub fn bulk_copy(b: &[u8]) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(b))
    }

    /// A bulk string holding the decimal form of an integer.
    pub fn bulk_int(n: i64) -> Reply {
        let mut buf = itoa::Buffer::new();
        Reply::Bulk(Bytes::copy_from_slice(buf.format(n).as_bytes()))
    }

    /// An array of bulk strings.
    pub fn bulk_array<I, B>(items: I) -> Reply
    where
        I: IntoIterator<Item = B>,
        B: Into<Bytes>,
    {
        Reply::Array(items.into_iter().map(|b| Reply::Bulk(b.into())).collect())
    }

    /// `Bulk` or `Null`.
    pub fn opt_bulk(b: Option<Bytes>) -> Reply {
        b.map(Reply::Bulk).unwrap_or(Reply::Null)
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }
}

impl From<CmdError> for Reply {
    fn from(e: CmdError) -> Self {
        Reply::Error(e)
    }
}

/// Appends `\r\n`-terminated `<prefix><n>` to `out`.
pub fn put_len(out: &mut BytesMut, prefix: u8, n: i64) {
    let mut buf = itoa::Buffer::new();
    out.put_u8(prefix);
    out.extend_from_slice(buf.format(n).as_bytes());
    out.extend_from_slice(b"\r\n");
}

pub fn put_bulk(out: &mut BytesMut, data: &[u8]) {
    put_len(out, b'$', data.len() as i64);
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// A double: `,d` in RESP3, a bulk string formatted `%.17g` in RESP2.
pub fn put_double(out: &mut BytesMut, d: f64, v3: bool) {
    let s = format_g17(d);
    if v3 {
        out.put_u8(b',');
        out.extend_from_slice(s.as_bytes());
        out.extend_from_slice(b"\r\n");
    } else {
        put_bulk(out, s.as_bytes());
    }
}

/// Encodes `reply` for a client speaking protocol `resp` (2 or 3).
pub fn encode(reply: &Reply, resp: u8, out: &mut BytesMut) {
    let v3 = resp >= 3;
    match reply {
        Reply::Status(s) => {
            out.put_u8(b'+');
            out.extend_from_slice(s.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Reply::StatusOwned(s) => {
            out.put_u8(b'+');
            out.extend_from_slice(s.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Reply::Error(e) => {
            out.put_u8(b'-');
            out.extend_from_slice(e.as_str().as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Reply::Int(n) => put_len(out, b':', *n),
        Reply::Bulk(b) => put_bulk(out, b),
        Reply::Null => out.extend_from_slice(if v3 { b"_\r\n" } else { b"$-1\r\n" }),
        Reply::NullArray => out.extend_from_slice(if v3 { b"_\r\n" } else { b"*-1\r\n" }),
        Reply::Array(items) => {
            put_len(out, b'*', items.len() as i64);
            for it in items {
                encode(it, resp, out);
            }
        }
        Reply::Map(pairs) => {
            if v3 {
                put_len(out, b'%', pairs.len() as i64);
            } else {
                put_len(out, b'*', 2 * pairs.len() as i64);
            }
            for (k, v) in pairs {
                encode(k, resp, out);
                encode(v, resp, out);
            }
        }
        Reply::Set(items) => {
            put_len(out, if v3 { b'~' } else { b'*' }, items.len() as i64);
            for it in items {
                encode(it, resp, out);
            }
        }
        Reply::Push(items) => {
            put_len(out, if v3 { b'>' } else { b'*' }, items.len() as i64);
            for it in items {
                encode(it, resp, out);
            }
        }
        Reply::Double(d) => put_double(out, *d, v3),
        Reply::Bool(b) => {
            if v3 {
                out.extend_from_slice(if *b { b"#t\r\n" } else { b"#f\r\n" });
            } else {
                out.extend_from_slice(if *b { b":1\r\n" } else { b":0\r\n" });
            }
        }
        Reply::Verbatim(fmt, data) => {
            if v3 {
                put_len(out, b'=', (data.len() + 4) as i64);
                out.extend_from_slice(fmt);
                out.put_u8(b':');
                out.extend_from_slice(data);
                out.extend_from_slice(b"\r\n");
            } else {
                put_bulk(out, data);
            }
        }
        Reply::BigNumber(n) => {
            if v3 {
                out.put_u8(b'(');
                out.extend_from_slice(n);
                out.extend_from_slice(b"\r\n");
            } else {
                put_bulk(out, n);
            }
        }
        Reply::Raw(b) => out.extend_from_slice(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(r: &Reply, resp: u8) -> String {
        let mut b = BytesMut::new();
        encode(r, resp, &mut b);
        String::from_utf8_lossy(&b).into_owned()
    }

    #[test]
    fn resp2_and_resp3_differ_where_redis_does() {
        assert_eq!(enc(&Reply::Null, 2), "$-1\r\n");
        assert_eq!(enc(&Reply::Null, 3), "_\r\n");
        assert_eq!(enc(&Reply::NullArray, 2), "*-1\r\n");
        assert_eq!(enc(&Reply::Double(1.5), 2), "$3\r\n1.5\r\n");
        assert_eq!(enc(&Reply::Double(1.5), 3), ",1.5\r\n");
        assert_eq!(enc(&Reply::Bool(true), 2), ":1\r\n");
        assert_eq!(enc(&Reply::Bool(false), 3), "#f\r\n");
        let m = Reply::Map(vec![(Reply::bulk("a"), Reply::Int(1))]);
        assert_eq!(enc(&m, 2), "*2\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&m, 3), "%1\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&Reply::Set(vec![Reply::Int(1)]), 3), "~1\r\n:1\r\n");
        assert_eq!(
            enc(&Reply::Verbatim(*b"txt", Bytes::from("hi")), 3),
            "=6\r\ntxt:hi\r\n"
        );
        assert_eq!(
            enc(&Reply::Verbatim(*b"txt", Bytes::from("hi")), 2),
            "$2\r\nhi\r\n"
        );
        assert_eq!(enc(&Reply::Push(vec![Reply::Int(1)]), 3), ">1\r\n:1\r\n");
        assert_eq!(
            enc(&Reply::Error(CmdError::SYNTAX), 2),
            "-ERR syntax error\r\n"
        );
    }
}
