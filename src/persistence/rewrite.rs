//! The AOF base as commands (`aof-use-rdb-preamble no`): the dataset of a
//! snapshot child written as the commands that rebuild it, in the form
//! Redis 7.0's `rewriteAppendOnlyFileRio` writes, so the file is the same
//! kind of `<name>.<seq>.base.aof` a redis-server would produce and load.
//!
//! - Functions first: `FUNCTION LOAD <code>` per library.
//! - Per non-empty database `SELECT <db>`, then per key: `SET` (strings),
//!   `RPUSH` / `SADD` / `ZADD` / `HMSET` with at most 64 elements per
//!   command (Redis's AOF_REWRITE_ITEMS_PER_CMD, so no command is huge),
//!   streams as `XADD <id>` per entry (an empty stream via `XADD MAXLEN 0`)
//!   and `XSETID` with entries-added and max-deleted-id, and per group
//!   `XGROUP CREATE … ENTRIESREAD`, one `XCLAIM … TIME RETRYCOUNT JUSTID
//!   FORCE` per pending entry and `XGROUP CREATECONSUMER` for consumers
//!   with nothing pending; then `PEXPIREAT` if the key has a TTL.
//!
//! Runs in the forked child: only reads the frozen shards and writes a file.

use std::io::{self, BufWriter, Write};
use std::path::Path;

use crate::persistence::snapshot::{Frozen, SaveParams};
use crate::storage::set::Member;
use crate::storage::stream::{Stream, StreamId};
use crate::storage::value::Obj;
use crate::storage::ValueRef;

/// Redis's AOF_REWRITE_ITEMS_PER_CMD.
const ITEMS_PER_CMD: usize = 64;

/// Writes RESP arrays of bulk strings.
struct Out<W: Write> {
    w: W,
    ib: itoa::Buffer,
}

impl<W: Write> Out<W> {
    fn header(&mut self, n: usize) -> io::Result<()> {
        self.w.write_all(b"*")?;
        self.w.write_all(self.ib.format(n).as_bytes())?;
        self.w.write_all(b"\r\n")
    }

    fn bulk(&mut self, b: &[u8]) -> io::Result<()> {
        self.w.write_all(b"$")?;
        self.w.write_all(self.ib.format(b.len()).as_bytes())?;
        self.w.write_all(b"\r\n")?;
        self.w.write_all(b)?;
        self.w.write_all(b"\r\n")
    }

    fn int(&mut self, n: impl itoa::Integer) -> io::Result<()> {
        let mut ib = itoa::Buffer::new();
        let s = ib.format(n);
        self.bulk(s.as_bytes())
    }

    fn id(&mut self, id: StreamId) -> io::Result<()> {
        self.bulk(format!("{}-{}", id.ms, id.seq).as_bytes())
    }

    fn command(&mut self, args: &[&[u8]]) -> io::Result<()> {
        self.header(args.len())?;
        for a in args {
            self.bulk(a)?;
        }
        Ok(())
    }
}

/// Writes the commands rebuilding `frozen` (and the function libraries in
/// `p`) to `tmp` and fsyncs it.
pub fn write_commands(frozen: &Frozen<'_>, p: &SaveParams, tmp: &Path) -> io::Result<()> {
    let f = super::SyncedFile::new(std::fs::File::create(tmp)?, p.aof_fsync_every);
    let mut o = Out {
        w: BufWriter::with_capacity(1 << 20, f),
        ib: itoa::Buffer::new(),
    };
    if p.aof_timestamps {
        // As Redis: a command base starts with the time of the rewrite.
        o.w.write_all(&crate::persistence::aof::timestamp_annotation(
            frozen.now / 1000,
        ))?;
    }
    for code in &p.functions {
        o.command(&[b"FUNCTION", b"LOAD", code])?;
    }
    let now = frozen.now;
    for (db, shards) in frozen.dbs.iter().enumerate() {
        if shards.iter().all(|s| s.is_empty()) {
            continue;
        }
        o.header(2)?;
        o.bulk(b"SELECT")?;
        o.int(db)?;
        for sh in shards {
            let mut err = None;
            sh.for_each_entry(now, |k, v, exp, _| {
                if err.is_none() {
                    if let Err(e) = write_key(&mut o, k, v, exp) {
                        err = Some(e);
                    }
                }
            });
            if let Some(e) = err {
                return Err(e);
            }
        }
    }
    let bw = o.w;
    let f = bw.into_inner().map_err(|e| e.into_error())?;
    f.finish()
}

/// Writes `items` as commands `<cmd> <key> <item>…` of at most
/// [`ITEMS_PER_CMD`] items; `width` is the arguments per item.
fn chunked<W: Write, I, F>(
    o: &mut Out<W>,
    cmd: &[u8],
    key: &[u8],
    total: usize,
    width: usize,
    items: I,
    mut put: F,
) -> io::Result<()>
where
    I: Iterator,
    F: FnMut(&mut Out<W>, I::Item) -> io::Result<()>,
{
    let mut left = total;
    let mut in_cmd = 0;
    for it in items {
        if in_cmd == 0 {
            let n = left.min(ITEMS_PER_CMD);
            o.header(2 + n * width)?;
            o.bulk(cmd)?;
            o.bulk(key)?;
        }
        put(o, it)?;
        left = left.saturating_sub(1);
        in_cmd += 1;
        if in_cmd == ITEMS_PER_CMD {
            in_cmd = 0;
        }
    }
    Ok(())
}

fn write_key<W: Write>(
    o: &mut Out<W>,
    key: &[u8],
    v: ValueRef<'_>,
    exp: Option<u64>,
) -> io::Result<()> {
    match v {
        ValueRef::Str(b) => o.command(&[b"SET", key, b])?,
        ValueRef::Int(n) => {
            o.header(3)?;
            o.bulk(b"SET")?;
            o.bulk(key)?;
            o.int(n)?;
        }
        ValueRef::Obj(Obj::Raw(b)) => o.command(&[b"SET", key, b])?,
        ValueRef::Obj(Obj::List(l)) => {
            chunked(o, b"RPUSH", key, l.len(), 1, l.iter(), |o, e| o.bulk(e))?
        }
        ValueRef::Obj(Obj::Set(s)) => {
            chunked(o, b"SADD", key, s.len(), 1, s.iter(), |o, m| match m {
                Member::Int(n) => o.int(n),
                Member::Bytes(b) => o.bulk(b),
            })?
        }
        ValueRef::Obj(Obj::ZSet(z)) => {
            // In rank order, a slice at a time (a huge set is never
            // copied whole).
            let n = z.len();
            let mut at = 0;
            let chunks = std::iter::from_fn(|| {
                if at >= n {
                    return None;
                }
                let part = z.range(at, at + ITEMS_PER_CMD);
                at += ITEMS_PER_CMD;
                Some(part)
            });
            chunked(o, b"ZADD", key, n, 2, chunks.flatten(), |o, (m, sc)| {
                o.bulk(crate::util::float::format_g17(sc).as_bytes())?;
                o.bulk(&m)
            })?
        }
        ValueRef::Obj(Obj::Hash(h)) => {
            chunked(o, b"HMSET", key, h.len(), 2, h.iter(), |o, (f, v)| {
                o.bulk(f)?;
                o.bulk(v)
            })?
        }
        ValueRef::Obj(Obj::Stream(s)) => write_stream(o, key, s)?,
    }
    if let Some(at) = exp {
        o.header(3)?;
        o.bulk(b"PEXPIREAT")?;
        o.bulk(key)?;
        o.int(at)?;
    }
    Ok(())
}

/// A stream as Redis's `rewriteStreamObject` writes it.
fn write_stream<W: Write>(o: &mut Out<W>, key: &[u8], s: &Stream) -> io::Result<()> {
    if s.is_empty() {
        // XADD MAXLEN 0 leaves an empty stream (XSETID then restores its
        // last ID and counters).
        o.command(&[b"XADD", key, b"MAXLEN", b"0", b"0-1", b"x", b"y"])?;
    } else {
        let mut from = Some(StreamId::MIN);
        while let Some(start) = from {
            let part = s.range(start, StreamId::MAX, 256, false);
            from = match part.last() {
                Some((id, _)) if part.len() == 256 => id.incr(),
                _ => None,
            };
            for (id, fields) in part {
                o.header(3 + fields.len())?;
                o.bulk(b"XADD")?;
                o.bulk(key)?;
                o.id(id)?;
                for f in &fields {
                    o.bulk(f)?;
                }
            }
        }
    }
    o.header(7)?;
    o.bulk(b"XSETID")?;
    o.bulk(key)?;
    o.id(s.last_id)?;
    o.bulk(b"ENTRIESADDED")?;
    o.int(s.entries_added)?;
    o.bulk(b"MAXDELETEDID")?;
    o.id(s.max_deleted)?;
    for (gname, g) in &s.groups {
        o.header(7)?;
        o.bulk(b"XGROUP")?;
        o.bulk(b"CREATE")?;
        o.bulk(key)?;
        o.bulk(gname)?;
        o.id(g.last_id)?;
        o.bulk(b"ENTRIESREAD")?;
        o.int(g.entries_read)?;
        for (cname, c) in &g.consumers {
            if c.pel.is_empty() {
                o.command(&[b"XGROUP", b"CREATECONSUMER", key, gname, cname])?;
                continue;
            }
            for id in &c.pel {
                let Some(n) = g.pel.get(id) else { continue };
                o.header(12)?;
                o.bulk(b"XCLAIM")?;
                o.bulk(key)?;
                o.bulk(gname)?;
                o.bulk(cname)?;
                o.bulk(b"0")?;
                o.id(*id)?;
                o.bulk(b"TIME")?;
                o.int(n.delivery_time)?;
                o.bulk(b"RETRYCOUNT")?;
                o.int(n.delivery_count)?;
                o.bulk(b"JUSTID")?;
                o.bulk(b"FORCE")?;
            }
        }
    }
    Ok(())
}
