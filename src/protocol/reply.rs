//! Typed replies, encoded per client as RESP2 or RESP3.
//!
//! Handlers return a [`Reply`]; they never write bytes. The connection encodes
//! it for the protocol version the client negotiated with HELLO. Where RESP3
//! has a richer type (null, map, set, double, boolean, verbatim, push) the
//! RESP2 encoding is what Redis 7 sends to RESP2 clients.

use bytes::{Buf, BufMut, Bytes, BytesMut};

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
    /// Bytes already encoded in RESP for the client that receives them
    /// (built for its protocol version; never inside a script, which
    /// converts replies to Lua values).
    Raw(Bytes),
}

/// The aggregate a [`Bulks`] reply is sent as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Agg {
    Array,
    /// A RESP3 set (`~`); an array in RESP2.
    Set,
    /// A RESP3 map (`%`) of the elements taken in pairs; a flat array in
    /// RESP2.
    Map,
}

/// Builds a reply of `n` bulk strings (LRANGE, HGETALL, SMEMBERS, …).
/// With `Some(resp)` the elements are encoded for that protocol into one
/// buffer as they come: no allocation per element. With `None` (a
/// script's call, which needs values) they become structured replies.
pub struct Bulks {
    agg: Agg,
    v3: bool,
    raw: Option<BytesMut>,
    vals: Vec<Reply>,
    /// Elements pushed so far, when the header waits for [`Bulks::finish`]
    /// ([`Bulks::uncounted`]).
    count: Option<usize>,
}

impl Bulks {
    /// `n` is the exact number of elements that will be pushed (for a map,
    /// keys and values both count).
    pub fn new(resp: Option<u8>, agg: Agg, n: usize) -> Self {
        let mut b = Self::start(resp, agg, n);
        if let Some(out) = &mut b.raw {
            put_header(out, agg, b.v3, n);
        }
        b
    }

    /// For a count known only at the end (KEYS): `finish` writes the
    /// header into room left for it in front of the elements.
    pub fn uncounted(resp: Option<u8>, agg: Agg) -> Self {
        let mut b = Self::start(resp, agg, 16);
        if let Some(out) = &mut b.raw {
            out.extend_from_slice(&[0; HEADER_ROOM]);
        }
        b.count = Some(0);
        b
    }

    fn start(resp: Option<u8>, agg: Agg, n: usize) -> Self {
        let raw = resp.map(|_| BytesMut::with_capacity(16 + n.min(1 << 16) * 24));
        let vals = if raw.is_some() {
            Vec::new()
        } else {
            Vec::with_capacity(n)
        };
        Bulks {
            agg,
            v3: resp.is_some_and(|r| r >= 3),
            raw,
            vals,
            count: None,
        }
    }

    pub fn push(&mut self, b: &[u8]) {
        if let Some(c) = &mut self.count {
            *c += 1;
        }
        match &mut self.raw {
            Some(out) => put_bulk(out, b),
            None => self.vals.push(Reply::bulk_copy(b)),
        }
    }

    /// A null element (MGET of a missing key).
    pub fn push_null(&mut self) {
        if let Some(c) = &mut self.count {
            *c += 1;
        }
        match &mut self.raw {
            Some(out) => out.extend_from_slice(if self.v3 { b"_\r\n" } else { b"$-1\r\n" }),
            None => self.vals.push(Reply::Null),
        }
    }

    /// An integer, as the bulk string of its decimal form.
    pub fn push_int(&mut self, i: i64) {
        self.push(itoa::Buffer::new().format(i).as_bytes());
    }

    pub fn finish(self) -> Reply {
        if let Some(mut out) = self.raw {
            if let Some(n) = self.count {
                let mut hdr = BytesMut::with_capacity(HEADER_ROOM);
                put_header(&mut hdr, self.agg, self.v3, n);
                let at = HEADER_ROOM - hdr.len();
                out[at..HEADER_ROOM].copy_from_slice(&hdr);
                out.advance(at);
            }
            return Reply::Raw(out.freeze());
        }
        match self.agg {
            Agg::Array => Reply::Array(self.vals),
            Agg::Set => Reply::Set(self.vals),
            Agg::Map => {
                let mut it = self.vals.into_iter();
                let mut pairs = Vec::with_capacity(it.len() / 2);
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    pairs.push((k, v));
                }
                Reply::Map(pairs)
            }
        }
    }
}

/// Room for the longest aggregate header: a type byte, 20 digits, CRLF.
const HEADER_ROOM: usize = 23;

/// The aggregate header for `n` elements (a map's keys and values both
/// count; RESP3 counts its pairs). [`encode`] writes its headers so too.
fn put_header(out: &mut BytesMut, agg: Agg, v3: bool, n: usize) {
    match agg {
        Agg::Map if v3 => put_len(out, b'%', (n / 2) as i64),
        Agg::Set if v3 => put_len(out, b'~', n as i64),
        _ => put_len(out, b'*', n as i64),
    }
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
    // Reserve once; a header for a length under 100 is written as one
    // fixed-size copy (members and field names are mostly that short).
    let n = data.len();
    out.reserve(n + 24);
    if n < 10 {
        out.extend_from_slice(&[b'$', b'0' + n as u8, b'\r', b'\n']);
    } else if n < 100 {
        let (t, u) = (n / 10, n % 10);
        out.extend_from_slice(&[b'$', b'0' + t as u8, b'0' + u as u8, b'\r', b'\n']);
    } else {
        put_len(out, b'$', n as i64);
    }
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
            put_header(out, Agg::Array, v3, items.len());
            for it in items {
                encode(it, resp, out);
            }
        }
        Reply::Map(pairs) => {
            put_header(out, Agg::Map, v3, 2 * pairs.len());
            for (k, v) in pairs {
                encode(k, resp, out);
                encode(v, resp, out);
            }
        }
        Reply::Set(items) => {
            put_header(out, Agg::Set, v3, items.len());
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

    /// A pre-encoded reply is byte for byte what the same elements as
    /// values encode to, for every aggregate, protocol and way of counting.
    #[test]
    fn prebuilt_bulk_replies_encode_as_their_values_do() {
        let elems: Vec<Option<Vec<u8>>> = (0..40)
            .map(|i| (i % 7 != 3).then(|| vec![b'a' + (i % 26) as u8; i * 5]))
            .collect();
        for agg in [Agg::Array, Agg::Set, Agg::Map] {
            for resp in [2u8, 3] {
                for counted in [true, false] {
                    let build = |r: Option<u8>| {
                        let mut b = if counted {
                            Bulks::new(r, agg, elems.len() + 2)
                        } else {
                            Bulks::uncounted(r, agg)
                        };
                        for e in &elems {
                            match e {
                                Some(v) => b.push(v),
                                None => b.push_null(),
                            }
                        }
                        b.push_int(-17);
                        b.push_int(4);
                        b.finish()
                    };
                    let Reply::Raw(raw) = build(Some(resp)) else {
                        panic!("not pre-encoded");
                    };
                    let vals = build(None);
                    assert!(!matches!(vals, Reply::Raw(_)));
                    let mut want = BytesMut::new();
                    encode(&vals, resp, &mut want);
                    assert_eq!(raw[..], want[..], "{agg:?} resp{resp} counted {counted}");
                }
            }
        }
    }

    #[test]
    fn bulk_headers_at_every_digit_boundary() {
        for n in [0usize, 1, 9, 10, 11, 99, 100, 101, 999, 1000, 65536] {
            let data = vec![b'x'; n];
            let mut b = BytesMut::new();
            put_bulk(&mut b, &data);
            let want = format!("${n}\r\n{}\r\n", "x".repeat(n));
            assert_eq!(String::from_utf8_lossy(&b), want, "length {n}");
        }
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
