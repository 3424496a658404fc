//! Redis's RDB format (version 10, as redis-server 7.0 writes it; older
//! versions are read too): the snapshot file and the DUMP/RESTORE payload,
//! which is one RDB-encoded value with a version and CRC64 footer.
//!
//! Writing follows Redis's choices so a file or payload is what Redis would
//! produce for the same data: strings are integer-encoded when they are
//! short canonical integers and LZF-compressed when that saves space, small
//! collections are written as the listpack/intset blob of their compact
//! encoding, lists as quicklist nodes split by `list-max-listpack-size`,
//! streams as one listpack per node with Redis's master-entry layout.
//!
//! Loading builds Cinnabar's values through the storage constructors and
//! picks encodings by the configured thresholds, as Redis's loader does, so
//! OBJECT ENCODING after a load matches. The loader streams: only one value
//! is in memory at a time, and lengths read from the input never size an
//! allocation beyond a cap (a corrupt length just runs into end of file).
//!
//! No tokio and no locks here: the snapshot child and startup loading call
//! it directly.

use std::io::{self, BufRead, Write};

use bytes::Bytes;
use crc::{Crc, Digest, Table, CRC_64_REDIS};

use crate::persistence::blobs::{
    intset_decode, intset_encode, lp_decode, lp_entry_size, ziplist_decode, zipmap_decode, Item,
    LpWriter, LP_EMPTY_BYTES,
};
use crate::protocol::codec::parse_i64;
use crate::storage::hash::{Hash, HashLimits};
use crate::storage::list::{List, ListBuilder};
use crate::storage::set::{Member, Set};
use crate::storage::shared::Shared;
use crate::storage::stream::{Consumer, Group, Nack, RawStreamEntry, Stream, StreamId};
use crate::storage::zset::{ZLimits, ZSet};
use crate::storage::{Obj, Value, ValueRef};

/// The RDB version written (Redis 7.0).
pub const RDB_VERSION: u16 = 10;

/// CRC-64/Jones as Redis computes it (reflected, init 0, no final xor),
/// sixteen bytes per step (the byte-at-a-time table was half the time of
/// a snapshot).
static CRC64: Crc<u64, Table<16>> = Crc::<u64, Table<16>>::new(&CRC_64_REDIS);

/// Redis's CRC64 of `data` (RDB files, DUMP payloads, FUNCTION DUMP).
pub fn crc64(data: &[u8]) -> u64 {
    CRC64.checksum(data)
}

/// Largest allocation made up front from a length read from the input;
/// beyond it buffers grow only as bytes actually arrive.
const PREALLOC_CAP: usize = 1 << 20;

// Value types.
/// Largest element count a collection is sized for before its elements
/// are read (a corrupt count must not become a huge allocation; larger
/// collections grow incrementally past it).
const PRESIZE_MAX: usize = 1 << 20;
const T_STRING: u8 = 0;
const T_LIST: u8 = 1;
const T_SET: u8 = 2;
const T_ZSET: u8 = 3;
const T_HASH: u8 = 4;
const T_ZSET_2: u8 = 5;
const T_HASH_ZIPMAP: u8 = 9;
const T_LIST_ZIPLIST: u8 = 10;
const T_SET_INTSET: u8 = 11;
const T_ZSET_ZIPLIST: u8 = 12;
const T_HASH_ZIPLIST: u8 = 13;
const T_LIST_QUICKLIST: u8 = 14;
const T_STREAM_LISTPACKS: u8 = 15;
const T_HASH_LISTPACK: u8 = 16;
const T_ZSET_LISTPACK: u8 = 17;
const T_LIST_QUICKLIST_2: u8 = 18;
const T_STREAM_LISTPACKS_2: u8 = 19;

// Opcodes.
const OP_FUNCTION2: u8 = 245;
const OP_FUNCTION: u8 = 246;
const OP_MODULE_AUX: u8 = 247;
const OP_IDLE: u8 = 248;
const OP_FREQ: u8 = 249;
const OP_AUX: u8 = 250;
const OP_RESIZEDB: u8 = 251;
const OP_EXPIRETIME_MS: u8 = 252;
const OP_EXPIRETIME: u8 = 253;
const OP_SELECTDB: u8 = 254;
const OP_EOF: u8 = 255;

// Special string encodings (length byte 11xxxxxx).
const ENC_INT8: u8 = 0;
const ENC_INT16: u8 = 1;
const ENC_INT32: u8 = 2;
const ENC_LZF: u8 = 3;

const NODE_PLAIN: u64 = 1;
const NODE_PACKED: u64 = 2;

const STREAM_FLAG_DELETED: i64 = 1;
const STREAM_FLAG_SAMEFIELDS: i64 = 2;

/// Why an RDB file or payload could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RdbError {
    /// The underlying reader failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// The data ended inside a value or before EOF (a truncated file).
    #[error("unexpected end of RDB data")]
    Eof,
    /// Not an RDB file (no `REDIS` magic).
    #[error("wrong signature trying to load DB from file")]
    Signature,
    /// Written by a newer Redis (or garbage): versions 1..=10 are read.
    #[error("can't handle RDB format version {0}")]
    Version(u32),
    /// The trailing CRC64 does not match the content (Redis's words, so
    /// that tools grepping the log for "CRC error" find it).
    #[error("Wrong RDB checksum expected: ({expected:x}) but got ({got:x}): RDB CRC error")]
    Checksum {
        /// The checksum stored in the file.
        expected: u64,
        /// The checksum of the content read.
        got: u64,
    },
    /// Structurally invalid data; the text says what was wrong.
    #[error("{}", corrupt_text(.0))]
    Corrupt(&'static str),
    /// A collection with no elements (Redis skips these when loading and
    /// refuses them in RESTORE).
    #[error("empty key")]
    EmptyKey,
    /// Raised by the caller's sink to abort a load.
    #[error("{0}")]
    Sink(String),
}

/// Redis's own sentences ("Ziplist integrity check failed.") are shown
/// as they are; a short description gets a prefix.
fn corrupt_text(what: &str) -> String {
    if what.ends_with('.') {
        what.to_string()
    } else {
        format!("corrupt RDB data: {what}")
    }
}

fn corrupt<T>(what: &'static str) -> Result<T, RdbError> {
    Err(RdbError::Corrupt(what))
}

/// The encoding thresholds the loader converts by and the list node size
/// the writer splits by (Redis's config parameters of the same names).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `hash-max-listpack-entries`.
    pub hash_max_listpack_entries: usize,
    /// `hash-max-listpack-value`.
    pub hash_max_listpack_value: usize,
    /// `set-max-intset-entries`.
    pub set_max_intset_entries: usize,
    /// `zset-max-listpack-entries`.
    pub zset_max_listpack_entries: usize,
    /// `zset-max-listpack-value`.
    pub zset_max_listpack_value: usize,
    /// `list-max-listpack-size` (node size class when negative, entries
    /// per node when positive).
    pub list_max_listpack_size: i64,
}

impl Default for Limits {
    /// Redis's defaults.
    fn default() -> Self {
        Limits {
            hash_max_listpack_entries: 512,
            hash_max_listpack_value: 64,
            set_max_intset_entries: 512,
            zset_max_listpack_entries: 128,
            zset_max_listpack_value: 64,
            list_max_listpack_size: -2,
        }
    }
}

impl Limits {
    /// The thresholds currently configured.
    pub fn from_config(c: &crate::config::Config) -> Self {
        Limits {
            hash_max_listpack_entries: c.hash_max_listpack_entries(),
            hash_max_listpack_value: c.hash_max_listpack_value(),
            set_max_intset_entries: c.set_max_intset_entries(),
            zset_max_listpack_entries: c.zset_max_listpack_entries(),
            zset_max_listpack_value: c.zset_max_listpack_value(),
            list_max_listpack_size: c.list_max_listpack_size(),
        }
    }

    fn hash(&self) -> HashLimits {
        HashLimits {
            max_entries: self.hash_max_listpack_entries,
            max_value: self.hash_max_listpack_value,
        }
    }

    fn zset(&self) -> ZLimits {
        ZLimits {
            entries: self.zset_max_listpack_entries,
            value: self.zset_max_listpack_value,
        }
    }
}

/// Per-key access metadata saved with a key: Redis writes `IDLE` (seconds)
/// under an LRU maxmemory policy and `FREQ` (the LFU counter) under an LFU
/// one, nothing otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryMeta {
    /// Seconds since the last access (LRU policies).
    Idle(u64),
    /// The logarithmic access counter (LFU policies).
    Freq(u8),
}

impl EntryMeta {
    /// The metadata Redis would save for a key with access word `meta`,
    /// given whether the maxmemory policy is an LRU or an LFU one.
    pub fn for_policy(meta: u32, now_ms: u64, lru: bool, lfu: bool) -> Option<EntryMeta> {
        if lfu {
            Some(EntryMeta::Freq(
                crate::storage::access::freq(meta, now_ms).min(255) as u8,
            ))
        } else if lru {
            Some(EntryMeta::Idle(crate::storage::access::idle_secs(
                meta, now_ms,
            )))
        } else {
            None
        }
    }
}

// ---- encoding ------------------------------------------------------------------

/// Where encoded bytes go: a file writer (with its running CRC) or a
/// buffer (DUMP).
trait Sink {
    fn put(&mut self, b: &[u8]) -> io::Result<()>;
}

impl Sink for Vec<u8> {
    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        self.extend_from_slice(b);
        Ok(())
    }
}

/// What an [`RdbWriter`] buffers before it checksums and writes: values
/// arrive in pieces of a few bytes, and the CRC runs fast only over long
/// runs.
pub const RDB_OUT_BUF: usize = 1 << 20;

struct Out<W: Write> {
    w: W,
    buf: Vec<u8>,
    crc: Digest<'static, u64, Table<16>>,
}

impl<W: Write> Out<W> {
    fn drain(&mut self) -> io::Result<()> {
        self.crc.update(&self.buf);
        self.w.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }
}

impl<W: Write> Sink for Out<W> {
    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        if self.buf.len() + b.len() > self.buf.capacity() {
            self.drain()?;
            if b.len() >= self.buf.capacity() {
                self.crc.update(b);
                return self.w.write_all(b);
            }
        }
        self.buf.extend_from_slice(b);
        Ok(())
    }
}

fn put_len<S: Sink>(s: &mut S, n: u64) -> io::Result<()> {
    if n < 1 << 6 {
        s.put(&[n as u8])
    } else if n < 1 << 14 {
        s.put(&[0x40 | (n >> 8) as u8, n as u8])
    } else if n <= u32::MAX as u64 {
        let mut b = [0x80u8; 5];
        b[1..].copy_from_slice(&(n as u32).to_be_bytes());
        s.put(&b)
    } else {
        let mut b = [0x81u8; 9];
        b[1..].copy_from_slice(&n.to_be_bytes());
        s.put(&b)
    }
}

/// The integer encoding of `v` if it fits 32 bits (Redis's
/// `rdbEncodeInteger`).
fn int_enc(v: i64, b: &mut [u8; 5]) -> Option<usize> {
    if (i8::MIN as i64..=i8::MAX as i64).contains(&v) {
        b[0] = 0xC0 | ENC_INT8;
        b[1] = v as i8 as u8;
        Some(2)
    } else if (i16::MIN as i64..=i16::MAX as i64).contains(&v) {
        b[0] = 0xC0 | ENC_INT16;
        b[1..3].copy_from_slice(&(v as i16).to_le_bytes());
        Some(3)
    } else if (i32::MIN as i64..=i32::MAX as i64).contains(&v) {
        b[0] = 0xC0 | ENC_INT32;
        b[1..5].copy_from_slice(&(v as i32).to_le_bytes());
        Some(5)
    } else {
        None
    }
}

/// LZF-compresses `s` the way Redis does: only when the result is at most
/// `len - 4` bytes.
fn lzf_compress(s: &[u8]) -> Option<Vec<u8>> {
    if s.len() <= 4 {
        return None;
    }
    crate::persistence::lzf::compress(s, s.len() - 4)
}

/// A string as `rdbSaveRawString` writes it.
fn put_string<S: Sink>(s: &mut S, v: &[u8], compress: bool) -> io::Result<()> {
    if v.len() <= 11 {
        if let Some(n) = parse_i64(v) {
            let mut b = [0u8; 5];
            if let Some(l) = int_enc(n, &mut b) {
                return s.put(&b[..l]);
            }
        }
    }
    if compress && v.len() > 20 {
        if let Some(c) = lzf_compress(v) {
            s.put(&[0xC0 | ENC_LZF])?;
            put_len(s, c.len() as u64)?;
            put_len(s, v.len() as u64)?;
            return s.put(&c);
        }
    }
    put_len(s, v.len() as u64)?;
    s.put(v)
}

fn put_int_string<S: Sink>(s: &mut S, n: i64) -> io::Result<()> {
    let mut b = [0u8; 5];
    match int_enc(n, &mut b) {
        Some(l) => s.put(&b[..l]),
        None => {
            let mut buf = itoa::Buffer::new();
            let t = buf.format(n).as_bytes();
            put_len(s, t.len() as u64)?;
            s.put(t)
        }
    }
}

fn put_ms<S: Sink>(s: &mut S, t: u64) -> io::Result<()> {
    s.put(&t.to_le_bytes())
}

fn put_stream_id<S: Sink>(s: &mut S, id: StreamId) -> io::Result<()> {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&id.ms.to_be_bytes());
    b[8..].copy_from_slice(&id.seq.to_be_bytes());
    s.put(&b)
}

/// Redis's `d2string`: integral values in range print as integers, others
/// as `%.17g`.
fn d2string(d: f64) -> String {
    if d.is_finite() && d != 0.0 {
        let lim = (i64::MAX / 2) as f64;
        if d >= -lim && d <= lim && (d as i64) as f64 == d {
            return itoa::Buffer::new().format(d as i64).to_string();
        }
    }
    crate::util::float::format_g17(d)
}

/// List elements of at least this many bytes are written as quicklist
/// PLAIN nodes of their own (Redis's packed_threshold, 1 GB; DEBUG
/// QUICKLIST-PACKED-THRESHOLD changes it, as in Redis, to test them).
pub static PACKED_THRESHOLD: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(1 << 30);

/// Splits list elements into quicklist nodes as Redis's tail pushes do
/// (`_quicklistNodeAllowInsert`), calling `node(first, count, plain)`.
fn quicklist_split<'a>(
    items: impl Iterator<Item = &'a [u8]>,
    fill: i64,
    mut node: impl FnMut(usize, usize, bool),
) {
    const LEVELS: [usize; 5] = [4096, 8192, 16384, 32768, 65536];
    let plain_from = PACKED_THRESHOLD.load(std::sync::atomic::Ordering::Relaxed);
    let mut start = 0;
    let mut count = 0usize;
    let mut sz = 0usize; // current node's listpack bytes; 0 = no open node
    let mut plain = false;
    for (i, it) in items.enumerate() {
        let allow = sz > 0 && !plain && it.len() < plain_from && {
            let new_sz = sz + it.len() + 8;
            if fill < 0 && ((-fill - 1) as usize) < LEVELS.len() {
                new_sz <= LEVELS[(-fill - 1) as usize]
            } else {
                new_sz <= 8192 && fill > 0 && (count as i64) < fill
            }
        };
        if allow {
            count += 1;
            sz += lp_entry_size(it);
            continue;
        }
        if count > 0 {
            node(start, count, plain);
        }
        start = i;
        count = 1;
        plain = it.len() >= plain_from;
        sz = if plain {
            it.len()
        } else {
            LP_EMPTY_BYTES + lp_entry_size(it)
        };
    }
    if count > 0 {
        node(start, count, plain);
    }
}

/// The RDB type byte for a value.
fn type_of(v: ValueRef<'_>) -> u8 {
    match v {
        ValueRef::Str(_) | ValueRef::Int(_) | ValueRef::Obj(Obj::Raw(_)) => T_STRING,
        ValueRef::Obj(Obj::List(_)) => T_LIST_QUICKLIST_2,
        ValueRef::Obj(Obj::Set(s)) => {
            if s.encoding() == "intset" {
                T_SET_INTSET
            } else {
                T_SET
            }
        }
        ValueRef::Obj(Obj::ZSet(z)) => {
            if z.encoding() == "listpack" {
                T_ZSET_LISTPACK
            } else {
                T_ZSET_2
            }
        }
        ValueRef::Obj(Obj::Hash(h)) => {
            if h.encoding() == "listpack" {
                T_HASH_LISTPACK
            } else {
                T_HASH
            }
        }
        ValueRef::Obj(Obj::Stream(_)) => T_STREAM_LISTPACKS_2,
    }
}

/// Writes a value's payload (after its type byte).
fn put_object<S: Sink>(s: &mut S, v: ValueRef<'_>, compress: bool, lim: &Limits) -> io::Result<()> {
    match v {
        ValueRef::Str(b) => put_string(s, b, compress),
        ValueRef::Int(n) => put_int_string(s, n),
        ValueRef::Obj(Obj::Raw(b)) => put_string(s, b, compress),
        ValueRef::Obj(Obj::List(l)) => put_list(s, l, compress, lim),
        ValueRef::Obj(Obj::Set(set)) => {
            if set.encoding() == "intset" {
                let mut ints: Vec<i64> = set
                    .iter()
                    .filter_map(|m| match m {
                        Member::Int(n) => Some(n),
                        Member::Bytes(b) => parse_i64(b),
                    })
                    .collect();
                ints.sort_unstable();
                put_string(s, &intset_encode(&ints), compress)
            } else {
                put_len(s, set.len() as u64)?;
                for m in set.iter() {
                    match m {
                        Member::Bytes(b) => put_string(s, b, compress)?,
                        Member::Int(n) => put_int_string(s, n)?,
                    }
                }
                Ok(())
            }
        }
        ValueRef::Obj(Obj::ZSet(z)) => {
            if z.encoding() == "listpack" {
                let mut lp = LpWriter::new();
                for (m, sc) in z.to_vec() {
                    lp.str(&m);
                    lp.str(d2string(sc).as_bytes());
                }
                put_string(s, &lp.finish(), compress)
            } else {
                // Highest score first, as Redis walks its skiplist from the
                // tail; visited in place (no copy of the members, which in
                // a forked child would also write to pages it shares).
                let n = z.len();
                put_len(s, n as u64)?;
                let mut r = Ok(());
                z.for_each_in(0, n, true, |m, sc| {
                    if r.is_ok() {
                        r = put_string(s, m, compress).and_then(|_| s.put(&sc.to_le_bytes()));
                    }
                });
                r
            }
        }
        ValueRef::Obj(Obj::Hash(h)) => {
            if h.encoding() == "listpack" {
                let mut lp = LpWriter::new();
                for (f, v) in h.iter() {
                    lp.str(f);
                    lp.str(v);
                }
                put_string(s, &lp.finish(), compress)
            } else {
                put_len(s, h.len() as u64)?;
                for (f, v) in h.iter() {
                    put_string(s, f, compress)?;
                    put_string(s, v, compress)?;
                }
                Ok(())
            }
        }
        ValueRef::Obj(Obj::Stream(st)) => put_stream(s, st, compress),
    }
}

fn put_list<S: Sink>(s: &mut S, l: &List, compress: bool, lim: &Limits) -> io::Result<()> {
    let fill = lim.list_max_listpack_size;
    let mut nodes = Vec::new();
    quicklist_split(l.iter(), fill, |start, count, plain| {
        nodes.push((start, count, plain))
    });
    put_len(s, nodes.len() as u64)?;
    let mut it = l.iter();
    for (_, count, plain) in nodes {
        if plain {
            put_len(s, NODE_PLAIN)?;
            let v = it.next().unwrap_or_default();
            put_string(s, v, compress)?;
        } else {
            put_len(s, NODE_PACKED)?;
            let mut lp = LpWriter::new();
            for v in it.by_ref().take(count) {
                lp.str(v);
            }
            put_string(s, &lp.finish(), compress)?;
        }
    }
    Ok(())
}

fn put_stream<S: Sink>(s: &mut S, st: &Stream, compress: bool) -> io::Result<()> {
    // One block decoded at a time: a huge stream is never copied whole.
    put_len(s, st.block_count() as u64)?;
    for (master, entries) in st.raw_blocks() {
        // A block always holds at least one entry (empty ones are dropped).
        let Some(first) = entries.first() else {
            continue;
        };
        let master_fields: Vec<&Bytes> = first.items.iter().step_by(2).collect();
        let live = entries.iter().filter(|e| !e.deleted).count();
        let mut lp = LpWriter::new();
        lp.int(live as i64);
        lp.int((entries.len() - live) as i64);
        lp.int(master_fields.len() as i64);
        for f in &master_fields {
            lp.str(f);
        }
        lp.int(0);
        for e in &entries {
            let nf = e.items.len() / 2;
            let same = nf == master_fields.len()
                && e.items
                    .iter()
                    .step_by(2)
                    .zip(&master_fields)
                    .all(|(a, b)| a == *b);
            let mut flags = 0;
            if e.deleted {
                flags |= STREAM_FLAG_DELETED;
            }
            if same {
                flags |= STREAM_FLAG_SAMEFIELDS;
            }
            lp.int(flags);
            lp.int(e.id.ms.wrapping_sub(master.ms) as i64);
            lp.int(e.id.seq.wrapping_sub(master.seq) as i64);
            if same {
                for v in e.items.iter().skip(1).step_by(2) {
                    lp.str(v);
                }
            } else {
                lp.int(nf as i64);
                for it in &e.items {
                    lp.str(it);
                }
            }
            let mut lp_count = nf as i64 + 3;
            if !same {
                lp_count += nf as i64 + 1;
            }
            lp.int(lp_count);
        }
        let mut key = Vec::with_capacity(16);
        put_stream_id(&mut key, master)?;
        put_string(s, &key, compress)?;
        put_string(s, &lp.finish(), compress)?;
    }
    put_len(s, st.len() as u64)?;
    put_len(s, st.last_id.ms)?;
    put_len(s, st.last_id.seq)?;
    put_len(s, st.first_id.ms)?;
    put_len(s, st.first_id.seq)?;
    put_len(s, st.max_deleted.ms)?;
    put_len(s, st.max_deleted.seq)?;
    put_len(s, st.entries_added)?;
    put_len(s, st.groups.len() as u64)?;
    for (name, g) in &st.groups {
        put_string(s, name, compress)?;
        put_len(s, g.last_id.ms)?;
        put_len(s, g.last_id.seq)?;
        put_len(s, g.entries_read as u64)?;
        put_len(s, g.pel.len() as u64)?;
        for (id, n) in &g.pel {
            put_stream_id(s, *id)?;
            put_ms(s, n.delivery_time)?;
            put_len(s, n.delivery_count)?;
        }
        put_len(s, g.consumers.len() as u64)?;
        for (cname, c) in &g.consumers {
            put_string(s, cname, compress)?;
            put_ms(s, c.seen_time)?;
            put_len(s, c.pel.len() as u64)?;
            for id in &c.pel {
                put_stream_id(s, *id)?;
            }
        }
    }
    Ok(())
}

/// Writes an RDB file: header and AUX fields, function libraries, then
/// per database SELECTDB/RESIZEDB and its keys, then EOF and the CRC64.
pub struct RdbWriter<W: Write> {
    out: Out<W>,
    compress: bool,
    checksum: bool,
    limits: Limits,
}

impl<W: Write> RdbWriter<W> {
    /// `compress` is `rdbcompression`, `checksum` is `rdbchecksum`. The
    /// writer buffers ([`RDB_OUT_BUF`]); `w` needs no buffer of its own.
    pub fn new(w: W, compress: bool, checksum: bool) -> Self {
        RdbWriter {
            out: Out {
                w,
                buf: Vec::with_capacity(RDB_OUT_BUF),
                crc: CRC64.digest(),
            },
            compress,
            checksum,
            limits: Limits::default(),
        }
    }

    /// Uses the configured list node size (`list-max-listpack-size`) when
    /// splitting lists into quicklist nodes.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The magic `REDIS0010` and the given AUX fields (see
    /// [`standard_aux`] for the ones Redis writes).
    pub fn header(&mut self, aux: &[(&str, &[u8])]) -> io::Result<()> {
        self.out
            .put(format!("REDIS{:04}", RDB_VERSION).as_bytes())?;
        for (k, v) in aux {
            self.out.put(&[OP_AUX])?;
            put_string(&mut self.out, k.as_bytes(), self.compress)?;
            put_string(&mut self.out, v, self.compress)?;
        }
        Ok(())
    }

    /// One function library (its full source, shebang line included).
    pub fn function(&mut self, library_code: &[u8]) -> io::Result<()> {
        self.out.put(&[OP_FUNCTION2])?;
        put_string(&mut self.out, library_code, self.compress)
    }

    /// Starts database `db`, with its key and volatile-key counts as the
    /// resize hint.
    pub fn select_db(&mut self, db: usize, keys: u64, expires: u64) -> io::Result<()> {
        self.out.put(&[OP_SELECTDB])?;
        put_len(&mut self.out, db as u64)?;
        self.out.put(&[OP_RESIZEDB])?;
        put_len(&mut self.out, keys)?;
        put_len(&mut self.out, expires)
    }

    /// One key: expiry (unix ms), access metadata, type, key, value.
    pub fn entry(
        &mut self,
        key: &[u8],
        v: ValueRef<'_>,
        expire_ms: Option<u64>,
        meta: Option<EntryMeta>,
    ) -> io::Result<()> {
        put_entry(
            &mut self.out,
            key,
            v,
            expire_ms,
            meta,
            self.compress,
            &self.limits,
        )
    }

    /// Starts database `db` without a resize hint (RESIZEDB is optional;
    /// a versioned snapshot does not know the counts up front and may
    /// return to a database).
    pub fn select_db_only(&mut self, db: usize) -> io::Result<()> {
        self.out.put(&[OP_SELECTDB])?;
        put_len(&mut self.out, db as u64)
    }

    /// Records encoded beforehand with [`encode_entry`].
    pub fn raw(&mut self, records: &[u8]) -> io::Result<()> {
        self.out.put(records)
    }

    /// EOF and the checksum (zero when checksums are off); returns the
    /// inner writer (flush it).
    pub fn finish(mut self) -> io::Result<W> {
        self.out.put(&[OP_EOF])?;
        self.out.drain()?;
        let crc = if self.checksum {
            self.out.crc.clone().finalize()
        } else {
            0
        };
        self.out.w.write_all(&crc.to_le_bytes())?;
        Ok(self.out.w)
    }
}

fn put_entry<S: Sink>(
    s: &mut S,
    key: &[u8],
    v: ValueRef<'_>,
    expire_ms: Option<u64>,
    meta: Option<EntryMeta>,
    compress: bool,
    lim: &Limits,
) -> io::Result<()> {
    if let Some(t) = expire_ms {
        s.put(&[OP_EXPIRETIME_MS])?;
        put_ms(s, t)?;
    }
    match meta {
        Some(EntryMeta::Idle(secs)) => {
            s.put(&[OP_IDLE])?;
            put_len(s, secs)?;
        }
        Some(EntryMeta::Freq(f)) => s.put(&[OP_FREQ, f])?,
        None => {}
    }
    s.put(&[type_of(v)])?;
    put_string(s, key, compress)?;
    put_object(s, v, compress, lim)
}

/// One key's record as [`RdbWriter::entry`] writes it, appended to `out`
/// (for [`RdbWriter::raw`]).
pub fn encode_entry(
    out: &mut Vec<u8>,
    key: &[u8],
    v: ValueRef<'_>,
    expire_ms: Option<u64>,
    meta: Option<EntryMeta>,
    compress: bool,
    lim: &Limits,
) {
    // Writing to a Vec cannot fail.
    let _ = put_entry(out, key, v, expire_ms, meta, compress, lim);
}

/// The AUX fields Redis 7.0 writes at the head of a snapshot.
pub fn standard_aux(
    ctime_secs: u64,
    used_mem: u64,
    aof_base: bool,
) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("redis-ver", crate::REDIS_VERSION.as_bytes().to_vec()),
        ("redis-bits", b"64".to_vec()),
        ("ctime", ctime_secs.to_string().into_bytes()),
        ("used-mem", used_mem.to_string().into_bytes()),
        (
            "aof-base",
            if aof_base {
                b"1".to_vec()
            } else {
                b"0".to_vec()
            },
        ),
    ]
}

/// The DUMP payload of a value: type, payload, RDB version (2 bytes LE),
/// CRC64 of all that (8 bytes LE). Compressed as with `rdbcompression yes`
/// and lists split with the default node size.
pub fn dump_payload(v: ValueRef<'_>) -> Vec<u8> {
    dump_payload_with(v, true, &Limits::default())
}

/// [`dump_payload`] with explicit compression and limits.
pub fn dump_payload_with(v: ValueRef<'_>, compress: bool, lim: &Limits) -> Vec<u8> {
    let mut buf = vec![type_of(v)];
    // Writing into a Vec cannot fail.
    let _ = put_object(&mut buf, v, compress, lim);
    buf.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = CRC64.checksum(&buf);
    buf.extend_from_slice(&crc.to_le_bytes());
    buf
}

/// Why RESTORE refused a payload (each maps to one of Redis's replies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreError {
    /// "ERR DUMP payload version or checksum are wrong"
    VersionOrChecksum,
    /// "ERR Bad data format"
    BadFormat,
}

/// `DEBUG SET-SKIP-CHECKSUM-VALIDATION 1`: RESTORE accepts payloads whose
/// CRC64 does not match (a test aid, as in Redis: it lets corrupted
/// payloads reach the decoder, which must refuse them without crashing).
pub static SKIP_RESTORE_CHECKSUM: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Decodes a DUMP payload, verifying its footer as Redis does (version at
/// most 10, CRC64 over everything before the checksum).
pub fn restore_payload(p: &[u8], lim: &Limits) -> Result<Value, RestoreError> {
    if p.len() < 10 {
        return Err(RestoreError::VersionOrChecksum);
    }
    let body = p.len() - 10;
    let ver = u16::from_le_bytes([p[body], p[body + 1]]);
    if ver > RDB_VERSION {
        return Err(RestoreError::VersionOrChecksum);
    }
    let crc = CRC64.checksum(&p[..p.len() - 8]);
    if crc.to_le_bytes() != p[p.len() - 8..]
        && !SKIP_RESTORE_CHECKSUM.load(std::sync::atomic::Ordering::Relaxed)
    {
        return Err(RestoreError::VersionOrChecksum);
    }
    let mut rd = Rd::new(&p[..body], false);
    let t = rd.u8().map_err(|_| RestoreError::BadFormat)?;
    rd.object(t, lim).map_err(|e| {
        // As Redis, which reports a corrupt payload in its log too.
        tracing::warn!("Bad data format in a DUMP payload: {e} (integrity check failed)");
        RestoreError::BadFormat
    })
}

// ---- decoding ------------------------------------------------------------------

struct Rd<R: BufRead> {
    r: R,
    crc: Option<Digest<'static, u64, Table<16>>>,
    /// Bytes of `r`'s current buffer already read but not yet consumed:
    /// they are checksummed and consumed together when the buffer runs
    /// out (one CRC call per buffer, not one per length byte).
    off: usize,
    /// Bytes consumed from `r` so far.
    consumed: u64,
}

/// Leaves the reader just after the last byte read (an AOF's RDB
/// preamble is followed by commands).
impl<R: BufRead> Drop for Rd<R> {
    fn drop(&mut self) {
        self.settle();
    }
}

impl<R: BufRead> Rd<R> {
    fn new(r: R, track_crc: bool) -> Self {
        Rd {
            r,
            crc: track_crc.then(|| CRC64.digest()),
            off: 0,
            consumed: 0,
        }
    }

    fn exact(&mut self, buf: &mut [u8]) -> Result<(), RdbError> {
        let mut done = 0;
        while done < buf.len() {
            let avail = self.r.fill_buf().map_err(RdbError::Io)?;
            let rest = avail.get(self.off..).unwrap_or_default();
            if rest.is_empty() {
                if self.off == 0 {
                    return Err(RdbError::Eof);
                }
                self.settle();
                continue;
            }
            let n = rest.len().min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&rest[..n]);
            done += n;
            self.off += n;
        }
        Ok(())
    }

    /// Checksums and consumes what has been read from the current buffer.
    fn settle(&mut self) {
        if self.off == 0 {
            return;
        }
        // The unconsumed buffer is returned again, without reading.
        if let (Ok(avail), Some(c)) = (self.r.fill_buf(), self.crc.as_mut()) {
            c.update(&avail[..self.off.min(avail.len())]);
        }
        self.r.consume(self.off);
        self.consumed += self.off as u64;
        self.off = 0;
    }

    /// Bytes read so far.
    fn position(&self) -> u64 {
        self.consumed + self.off as u64
    }

    /// The checksum of everything read so far.
    fn checksum(&mut self) -> u64 {
        self.settle();
        self.crc.take().map(|c| c.finalize()).unwrap_or(0)
    }

    fn u8(&mut self) -> Result<u8, RdbError> {
        let mut b = [0u8; 1];
        self.exact(&mut b)?;
        Ok(b[0])
    }

    fn arr<const N: usize>(&mut self) -> Result<[u8; N], RdbError> {
        let mut b = [0u8; N];
        self.exact(&mut b)?;
        Ok(b)
    }

    /// `n` bytes, growing the buffer as they arrive (a corrupt length
    /// cannot force a huge allocation).
    fn bytes(&mut self, n: u64) -> Result<Vec<u8>, RdbError> {
        let n = usize::try_from(n).map_err(|_| RdbError::Corrupt("length"))?;
        let mut v = Vec::with_capacity(n.min(PREALLOC_CAP));
        let mut got = 0;
        while got < n {
            let step = (n - got).min(PREALLOC_CAP);
            v.resize(got + step, 0);
            self.exact(&mut v[got..got + step])?;
            got += step;
        }
        Ok(v)
    }

    /// A length, or `Err(enc)` for a special string encoding.
    fn len_or_enc(&mut self) -> Result<Result<u64, u8>, RdbError> {
        let b = self.u8()?;
        Ok(match b >> 6 {
            0 => Ok((b & 0x3F) as u64),
            1 => Ok((((b & 0x3F) as u64) << 8) | self.u8()? as u64),
            2 => match b {
                0x80 => Ok(u32::from_be_bytes(self.arr()?) as u64),
                0x81 => Ok(u64::from_be_bytes(self.arr()?)),
                _ => return corrupt("unknown length encoding"),
            },
            _ => Err(b & 0x3F),
        })
    }

    fn len(&mut self) -> Result<u64, RdbError> {
        match self.len_or_enc()? {
            Ok(n) => Ok(n),
            Err(_) => corrupt("encoded value where a length was expected"),
        }
    }

    /// A collection length, as usize.
    fn count(&mut self) -> Result<usize, RdbError> {
        usize::try_from(self.len()?).map_err(|_| RdbError::Corrupt("length"))
    }

    fn string(&mut self) -> Result<Vec<u8>, RdbError> {
        match self.len_or_enc()? {
            Ok(n) => self.bytes(n),
            Err(ENC_INT8) => Ok(itoa_vec(self.u8()? as i8 as i64)),
            Err(ENC_INT16) => Ok(itoa_vec(i16::from_le_bytes(self.arr()?) as i64)),
            Err(ENC_INT32) => Ok(itoa_vec(i32::from_le_bytes(self.arr()?) as i64)),
            Err(ENC_LZF) => {
                let clen = self.len()?;
                let ulen = self.len()?;
                // LZF expands at most ~132x; anything claiming more is corrupt.
                if ulen == 0 || ulen > clen.saturating_mul(140).saturating_add(64) {
                    return corrupt("LZF lengths");
                }
                let c = self.bytes(clen)?;
                let ulen = usize::try_from(ulen).map_err(|_| RdbError::Corrupt("length"))?;
                crate::persistence::lzf::decompress(&c, ulen).ok_or(RdbError::Corrupt("LZF data"))
            }
            Err(_) => corrupt("unknown string encoding"),
        }
    }

    fn ms(&mut self) -> Result<u64, RdbError> {
        Ok(u64::from_le_bytes(self.arr()?))
    }

    fn stream_id(&mut self) -> Result<StreamId, RdbError> {
        let b: [u8; 16] = self.arr()?;
        Ok(id_from_raw(&b))
    }

    fn old_double(&mut self) -> Result<f64, RdbError> {
        let n = self.u8()?;
        match n {
            253 => Ok(f64::NAN),
            254 => Ok(f64::INFINITY),
            255 => Ok(f64::NEG_INFINITY),
            _ => {
                let b = self.bytes(n as u64)?;
                std::str::from_utf8(&b)
                    .ok()
                    .and_then(|t| t.trim().parse::<f64>().ok())
                    .ok_or(RdbError::Corrupt("score"))
            }
        }
    }

    /// Reads a value of RDB type `t` and builds it.
    fn object(&mut self, t: u8, lim: &Limits) -> Result<Value, RdbError> {
        Ok(match t {
            T_STRING => Value::Str(Bytes::from(self.string()?)),
            T_LIST => {
                let n = self.count()?;
                let mut l = ListBuilder::new();
                for _ in 0..n {
                    l.push(&self.string()?);
                }
                non_empty(Obj::List(l.finish()), n)?
            }
            T_SET => {
                let n = self.count()?;
                let mut s = if n > lim.set_max_intset_entries {
                    // Not an intset whatever its members: sized up front.
                    Set::table_with_capacity(n.min(PRESIZE_MAX))
                } else {
                    Set::default()
                };
                for _ in 0..n {
                    if !s.add(&self.string()?, lim.set_max_intset_entries) {
                        return corrupt("duplicate set member");
                    }
                }
                non_empty(Obj::Set(s), n)?
            }
            T_ZSET | T_ZSET_2 => {
                let n = self.count()?;
                let mut z = ZSet::with_hint(n.min(PRESIZE_MAX), 0, lim.zset());
                for _ in 0..n {
                    let m = self.string()?;
                    let sc = if t == T_ZSET_2 {
                        f64::from_le_bytes(self.arr()?)
                    } else {
                        self.old_double()?
                    };
                    if sc.is_nan() {
                        return corrupt("NaN score");
                    }
                    if !z.insert(&m, sc, lim.zset()) {
                        return corrupt("duplicate zset member");
                    }
                }
                non_empty(Obj::ZSet(z), n)?
            }
            T_HASH => {
                let n = self.count()?;
                let mut h = if n > lim.hash_max_listpack_entries {
                    Hash::table_with_capacity(n.min(PRESIZE_MAX))
                } else {
                    Hash::default()
                };
                for _ in 0..n {
                    let f = self.string()?;
                    let v = self.string()?;
                    if !h.set(&f, &v, lim.hash()) {
                        return corrupt("duplicate hash field");
                    }
                }
                non_empty(Obj::Hash(h), n)?
            }
            T_LIST_QUICKLIST | T_LIST_QUICKLIST_2 => {
                let nodes = self.count()?;
                let mut l = ListBuilder::new();
                for _ in 0..nodes {
                    let container = if t == T_LIST_QUICKLIST_2 {
                        self.len()?
                    } else {
                        NODE_PACKED
                    };
                    let data = self.string()?;
                    if data.is_empty() {
                        return corrupt("empty quicklist node");
                    }
                    match container {
                        NODE_PLAIN => l.push(&data),
                        NODE_PACKED => {
                            l.expect(data.len());
                            let items = if t == T_LIST_QUICKLIST_2 {
                                lp_decode(&data)
                            } else {
                                ziplist_decode(&data)
                            }
                            .ok_or(RdbError::Corrupt(
                                if t == T_LIST_QUICKLIST_2 {
                                    "Listpack integrity check failed."
                                } else {
                                    "Ziplist integrity check failed."
                                },
                            ))?;
                            for it in items {
                                push_item(&mut l, it);
                            }
                        }
                        _ => return corrupt("quicklist container"),
                    }
                }
                let l = l.finish();
                let n = l.len();
                non_empty(Obj::List(l), n)?
            }
            T_HASH_ZIPMAP | T_LIST_ZIPLIST | T_SET_INTSET | T_ZSET_ZIPLIST | T_ZSET_LISTPACK
            | T_HASH_ZIPLIST | T_HASH_LISTPACK => {
                let blob = self.string()?;
                blob_object(t, &blob, lim)?
            }
            T_STREAM_LISTPACKS | T_STREAM_LISTPACKS_2 => Value::Obj(Obj::Stream(Shared::new(
                self.stream(t == T_STREAM_LISTPACKS_2)?,
            ))),
            6 | 7 => return corrupt("module values are not supported"),
            _ => return corrupt("unknown value type"),
        })
    }

    fn stream(&mut self, v2: bool) -> Result<Stream, RdbError> {
        let mut st = Stream::new();
        let nodes = self.len()?;
        for _ in 0..nodes {
            let key = self.string()?;
            if key.len() != 16 {
                return corrupt("stream node key");
            }
            let master = id_from_raw(&key);
            let lp = self.string()?;
            let entries = stream_node(master, &lp)
                .ok_or(RdbError::Corrupt("Stream listpack integrity check failed."))?;
            if entries.is_empty() {
                return corrupt("empty stream node");
            }
            if !st.push_raw_block(&entries) {
                return corrupt("stream node order");
            }
        }
        let length = self.len()?;
        st.last_id = StreamId::new(self.len()?, self.len()?);
        if v2 {
            st.first_id = StreamId::new(self.len()?, self.len()?);
            st.max_deleted = StreamId::new(self.len()?, self.len()?);
            st.entries_added = self.len()?;
        } else {
            st.first_id = st.first_entry().map(|e| e.0).unwrap_or_default();
            st.max_deleted = StreamId::MIN;
            st.entries_added = length;
        }
        if length != st.len() as u64 {
            return corrupt("stream length");
        }
        // Invariants every Redis-written stream has (XSETID enforces them);
        // the lag arithmetic relies on them.
        if st.entries_added < length {
            return corrupt("stream entries-added below its length");
        }
        // New IDs must follow every live entry (XSETID enforces the same).
        if st.last_entry_id().is_some_and(|id| st.last_id < id) {
            return corrupt("stream last ID below its entries");
        }
        let groups = self.len()?;
        for _ in 0..groups {
            let name = Bytes::from(self.string()?);
            let last_id = StreamId::new(self.len()?, self.len()?);
            let entries_read = if v2 {
                self.len()? as i64
            } else {
                st.estimate_distance(last_id)
            };
            if entries_read < -1 {
                return corrupt("group entries-read");
            }
            let mut g = Group {
                last_id,
                entries_read,
                ..Group::default()
            };
            let pel = self.len()?;
            let mut pending: std::collections::BTreeMap<StreamId, (u64, u64)> = Default::default();
            for _ in 0..pel {
                let id = self.stream_id()?;
                let t = self.ms()?;
                let c = self.len()?;
                if pending.insert(id, (t, c)).is_some() {
                    return corrupt("duplicate PEL entry");
                }
            }
            let consumers = self.len()?;
            for _ in 0..consumers {
                let cname = Bytes::from(self.string()?);
                let seen = self.ms()?;
                let mut c = Consumer {
                    seen_time: seen,
                    ..Consumer::default()
                };
                let n = self.len()?;
                for _ in 0..n {
                    let id = self.stream_id()?;
                    let Some((t, cnt)) = pending.remove(&id) else {
                        return corrupt("consumer PEL entry not in group PEL");
                    };
                    c.pel.insert(id);
                    g.pel.insert(
                        id,
                        Nack {
                            delivery_time: t,
                            delivery_count: cnt,
                            consumer: cname.clone(),
                        },
                    );
                }
                if g.consumers.insert(cname, c).is_some() {
                    return corrupt("Duplicate stream consumer detected.");
                }
            }
            if !pending.is_empty() {
                return corrupt("group PEL entry without consumer");
            }
            if st.groups.insert(name, Shared::new(g)).is_some() {
                return corrupt("duplicate consumer group");
            }
        }
        Ok(st)
    }
}

fn itoa_vec(n: i64) -> Vec<u8> {
    itoa::Buffer::new().format(n).as_bytes().to_vec()
}

fn id_from_raw(b: &[u8]) -> StreamId {
    let mut ms = [0u8; 8];
    let mut seq = [0u8; 8];
    ms.copy_from_slice(&b[..8]);
    seq.copy_from_slice(&b[8..16]);
    StreamId::new(u64::from_be_bytes(ms), u64::from_be_bytes(seq))
}

fn non_empty(o: Obj, n: usize) -> Result<Value, RdbError> {
    if n == 0 {
        Err(RdbError::EmptyKey)
    } else {
        Ok(Value::Obj(o))
    }
}

fn push_item(l: &mut ListBuilder, it: Item<'_>) {
    match it {
        Item::Str(s) => l.push(s),
        Item::Int(n) => l.push(itoa::Buffer::new().format(n).as_bytes()),
    }
}

fn score_of(it: Item<'_>) -> Result<f64, RdbError> {
    let v = match it {
        Item::Int(n) => n as f64,
        Item::Str(s) => std::str::from_utf8(s)
            .ok()
            .and_then(|t| t.parse::<f64>().ok())
            .ok_or(RdbError::Corrupt("zset score"))?,
    };
    if v.is_nan() {
        return corrupt("NaN score");
    }
    Ok(v)
}

fn pairs(items: Vec<Item<'_>>) -> Result<Vec<(Vec<u8>, Item<'_>)>, RdbError> {
    if !items.len().is_multiple_of(2) {
        return corrupt("odd number of elements");
    }
    Ok(items
        .chunks_exact(2)
        .map(|c| (c[0].to_vec(), c[1]))
        .collect())
}

/// Builds a value from one of the blob encodings.
fn blob_object(t: u8, blob: &[u8], lim: &Limits) -> Result<Value, RdbError> {
    match t {
        T_SET_INTSET => {
            let ints =
                intset_decode(blob).ok_or(RdbError::Corrupt("Intset integrity check failed."))?;
            let mut s = Set::default();
            for n in &ints {
                s.add(
                    itoa::Buffer::new().format(*n).as_bytes(),
                    lim.set_max_intset_entries,
                );
            }
            non_empty(Obj::Set(s), ints.len())
        }
        T_LIST_ZIPLIST => {
            let items = ziplist_decode(blob)
                .ok_or(RdbError::Corrupt("List ziplist integrity check failed."))?;
            let mut l = ListBuilder::new();
            l.expect(blob.len());
            for it in items {
                push_item(&mut l, it);
            }
            let l = l.finish();
            let n = l.len();
            non_empty(Obj::List(l), n)
        }
        T_HASH_ZIPMAP | T_HASH_ZIPLIST | T_HASH_LISTPACK => {
            let kv: Vec<(Vec<u8>, Vec<u8>)> = if t == T_HASH_ZIPMAP {
                zipmap_decode(blob)
                    .ok_or(RdbError::Corrupt("Zipmap integrity check failed."))?
                    .into_iter()
                    .map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .collect()
            } else {
                let items = if t == T_HASH_ZIPLIST {
                    ziplist_decode(blob)
                } else {
                    lp_decode(blob)
                }
                .ok_or(RdbError::Corrupt(if t == T_HASH_ZIPLIST {
                    "Hash ziplist integrity check failed."
                } else {
                    "Hash listpack integrity check failed."
                }))?;
                pairs(items)?
                    .into_iter()
                    .map(|(k, v)| (k, v.to_vec()))
                    .collect()
            };
            let mut h = Hash::default();
            let longest = kv
                .iter()
                .map(|(k, v)| k.len().max(v.len()))
                .max()
                .unwrap_or(0);
            // The blob's encoding is kept unless it has too many fields (a
            // zipmap also converts for a too-long element), as Redis does.
            if kv.len() > lim.hash_max_listpack_entries
                || (t == T_HASH_ZIPMAP && longest > lim.hash_max_listpack_value)
            {
                h.convert_to_table();
            }
            let keep = HashLimits {
                max_entries: usize::MAX,
                max_value: usize::MAX,
            };
            for (k, v) in &kv {
                if !h.set(k, v, keep) {
                    return corrupt("duplicate hash field");
                }
            }
            non_empty(Obj::Hash(h), kv.len())
        }
        T_ZSET_ZIPLIST | T_ZSET_LISTPACK => {
            let items = if t == T_ZSET_ZIPLIST {
                ziplist_decode(blob)
            } else {
                lp_decode(blob)
            }
            .ok_or(RdbError::Corrupt(if t == T_ZSET_ZIPLIST {
                "Zset ziplist integrity check failed."
            } else {
                "Zset listpack integrity check failed."
            }))?;
            let kv = pairs(items)?;
            let keep = ZLimits {
                entries: usize::MAX,
                value: usize::MAX,
            };
            let mut z = ZSet::with_hint(
                kv.len(),
                0,
                ZLimits {
                    entries: lim.zset_max_listpack_entries,
                    value: usize::MAX,
                },
            );
            for (m, s) in &kv {
                if !z.insert(m, score_of(*s)?, keep) {
                    return corrupt("duplicate zset member");
                }
            }
            non_empty(Obj::ZSet(z), kv.len())
        }
        _ => corrupt("unknown blob type"),
    }
}

/// Decodes one stream listpack node (Redis's master-entry layout).
fn stream_node(master: StreamId, lp: &[u8]) -> Option<Vec<RawStreamEntry>> {
    let items = lp_decode(lp)?;
    let mut it = items.into_iter();
    let count = it.next()?.as_int()?;
    let deleted = it.next()?.as_int()?;
    let nmaster = usize::try_from(it.next()?.as_int()?).ok()?;
    if nmaster > lp.len() {
        return None;
    }
    let mut master_fields = Vec::with_capacity(nmaster);
    for _ in 0..nmaster {
        master_fields.push(Bytes::from(it.next()?.to_vec()));
    }
    if it.next()?.as_int()? != 0 {
        return None;
    }
    let mut out = Vec::new();
    while let Some(flags) = it.next() {
        let flags = flags.as_int()?;
        let ms = master.ms.wrapping_add(it.next()?.as_int()? as u64);
        let seq = master.seq.wrapping_add(it.next()?.as_int()? as u64);
        let same = flags & STREAM_FLAG_SAMEFIELDS != 0;
        let mut items = Vec::new();
        let nf = if same {
            for f in &master_fields {
                items.push(f.clone());
                items.push(Bytes::from(it.next()?.to_vec()));
            }
            master_fields.len()
        } else {
            let nf = usize::try_from(it.next()?.as_int()?).ok()?;
            if nf > lp.len() {
                return None;
            }
            for _ in 0..nf * 2 {
                items.push(Bytes::from(it.next()?.to_vec()));
            }
            nf
        };
        let lp_count = it.next()?.as_int()?;
        let want = nf as i64 + 3 + if same { 0 } else { nf as i64 + 1 };
        if lp_count != want {
            return None;
        }
        out.push(RawStreamEntry {
            id: StreamId::new(ms, seq),
            deleted: flags & STREAM_FLAG_DELETED != 0,
            items,
        });
    }
    let live = out.iter().filter(|e| !e.deleted).count() as i64;
    if live != count || out.len() as i64 - live != deleted {
        return None;
    }
    Some(out)
}

// ---- file loading ----------------------------------------------------------------

/// One key read from a file.
#[derive(Debug)]
pub struct Loaded {
    /// Database number (from the last SELECTDB).
    pub db: usize,
    pub key: Bytes,
    pub value: Value,
    /// Absolute expiry, unix ms.
    pub expire_ms: Option<u64>,
    /// Saved LRU idle time (`access::meta_from_idle`).
    pub idle_secs: Option<u64>,
    /// Saved LFU counter (`access::meta_from_freq`).
    pub freq: Option<u8>,
    /// Bytes of the file read once this key was (loading progress).
    pub read_bytes: u64,
}

/// What a load found besides the keys.
#[derive(Debug, Default)]
pub struct LoadSummary {
    /// The file's RDB version (1..=10).
    pub rdb_version: u32,
    /// AUX fields in file order.
    pub aux: Vec<(Vec<u8>, Vec<u8>)>,
    /// Function library sources (FUNCTION LOAD payloads), in file order.
    pub functions: Vec<Vec<u8>>,
    /// Keys handed to the sink.
    pub keys_loaded: u64,
    /// Keys skipped because their expiry had passed.
    pub expired_skipped: u64,
    /// Those keys' databases and names (a restarted primary tells its
    /// replicas to delete them).
    pub expired_keys: Vec<(usize, Bytes)>,
    /// Empty collections skipped (Redis skips them too).
    pub empty_skipped: u64,
}

/// Reads an RDB file from `r` (wrap files in a `BufReader`), handing every
/// live key to `sink`; keys already expired at `now_ms` are skipped as a
/// master does. Checks the trailing CRC64 unless it is zero.
pub fn load<R: BufRead>(
    r: R,
    now_ms: u64,
    lim: &Limits,
    sink: &mut dyn FnMut(Loaded) -> Result<(), RdbError>,
) -> Result<LoadSummary, RdbError> {
    let mut rd = Rd::new(r, true);
    let magic: [u8; 9] = rd.arr()?;
    if &magic[..5] != b"REDIS" {
        return Err(RdbError::Signature);
    }
    let ver = std::str::from_utf8(&magic[5..])
        .ok()
        .and_then(|t| t.parse::<u32>().ok())
        .ok_or(RdbError::Signature)?;
    if ver < 1 || ver > RDB_VERSION as u32 {
        return Err(RdbError::Version(ver));
    }
    let mut sum = LoadSummary {
        rdb_version: ver,
        ..Default::default()
    };
    let mut db = 0usize;
    let mut expire: Option<u64> = None;
    let mut idle: Option<u64> = None;
    let mut freq: Option<u8> = None;
    loop {
        let t = rd.u8()?;
        match t {
            OP_EXPIRETIME => {
                expire = Some(u32::from_le_bytes(rd.arr()?) as u64 * 1000);
                continue;
            }
            OP_EXPIRETIME_MS => {
                expire = Some(rd.ms()?);
                continue;
            }
            OP_FREQ => {
                freq = Some(rd.u8()?);
                continue;
            }
            OP_IDLE => {
                idle = Some(rd.len()?);
                continue;
            }
            OP_EOF => break,
            OP_SELECTDB => {
                db = usize::try_from(rd.len()?).map_err(|_| RdbError::Corrupt("db"))?;
                continue;
            }
            OP_RESIZEDB => {
                rd.len()?;
                rd.len()?;
                continue;
            }
            OP_AUX => {
                let k = rd.string()?;
                let v = rd.string()?;
                sum.aux.push((k, v));
                continue;
            }
            OP_MODULE_AUX => return corrupt("module data is not supported"),
            OP_FUNCTION2 => {
                sum.functions.push(rd.string()?);
                continue;
            }
            OP_FUNCTION => {
                // 7.0 release candidates: name, engine, optional
                // description, code; rebuilt into the final form.
                let name = rd.string()?;
                let engine = rd.string()?;
                if rd.len()? != 0 {
                    rd.string()?;
                }
                let code = rd.string()?;
                let mut full = b"#!".to_vec();
                full.extend_from_slice(&engine);
                full.extend_from_slice(b" name=");
                full.extend_from_slice(&name);
                full.push(b'\n');
                full.extend_from_slice(&code);
                sum.functions.push(full);
                continue;
            }
            _ => {}
        }
        let key = Bytes::from(rd.string()?);
        let value = match rd.object(t, lim) {
            Ok(v) => Some(v),
            Err(RdbError::EmptyKey) => None,
            Err(e) => return Err(e),
        };
        let (e, i, f) = (expire.take(), idle.take(), freq.take());
        let Some(value) = value else {
            // As Redis: an old bug could save empty collections; they
            // are skipped, not a reason to refuse the file.
            if sum.empty_skipped < 10 {
                tracing::warn!(
                    "rdbLoadObject skipping empty key: {}",
                    String::from_utf8_lossy(&key)
                );
            }
            sum.empty_skipped += 1;
            continue;
        };
        if e.is_some_and(|t| t < now_ms) {
            sum.expired_skipped += 1;
            sum.expired_keys.push((db, key));
            continue;
        }
        sink(Loaded {
            db,
            key,
            value,
            expire_ms: e,
            idle_secs: i,
            freq: f,
            read_bytes: rd.position(),
        })?;
        sum.keys_loaded += 1;
    }
    if ver >= 5 {
        let expect = rd.checksum();
        let stored = u64::from_le_bytes(rd.arr()?);
        if stored != 0 && stored != expect {
            return Err(RdbError::Checksum {
                expected: stored,
                got: expect,
            });
        }
    }
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::list::End;
    use proptest::prelude::*;

    fn lim() -> Limits {
        Limits::default()
    }

    fn as_ref(v: &Value) -> ValueRef<'_> {
        v.as_value_ref()
    }

    fn round_trip(v: &Value, compress: bool) -> Value {
        let p = dump_payload_with(as_ref(v), compress, &lim());
        restore_payload(&p, &lim()).expect("own payload")
    }

    fn same_string(a: &Value, b: &Value) -> bool {
        let s = |v: &Value| match v {
            Value::Str(b) | Value::Text(b) => b.to_vec(),
            Value::Int(n) => itoa_vec(*n),
            Value::Obj(Obj::Raw(r)) => r.to_vec(),
            _ => panic!("not a string"),
        };
        s(a) == s(b)
    }

    fn encoding(v: &Value) -> &'static str {
        match v {
            Value::Obj(o) => o.encoding(),
            _ => "string",
        }
    }

    fn sample_stream(groups: bool) -> Stream {
        let mut st = Stream::new();
        let b = |s: &str| Bytes::copy_from_slice(s.as_bytes());
        for i in 1..=250u64 {
            let fields = if i % 10 == 0 {
                vec![b("other"), b(&i.to_string())]
            } else {
                vec![b("f"), b(&i.to_string()), b("g"), b("-12")]
            };
            st.append(StreamId::new(1000 + i / 4, i % 4), &fields, 100, 4096);
        }
        st.delete(StreamId::new(1001, 1));
        st.delete(StreamId::new(1050, 2));
        st.trim(Some(220), None, false, 0);
        if groups {
            let mut g = Group {
                last_id: StreamId::new(1030, 0),
                entries_read: 120,
                ..Group::default()
            };
            for (i, id) in [StreamId::new(1010, 1), StreamId::new(1011, 2)]
                .into_iter()
                .enumerate()
            {
                let c = if i == 0 { b("alice") } else { b("bob") };
                g.pel.insert(
                    id,
                    Nack {
                        delivery_time: 1_700_000_000_000 + i as u64,
                        delivery_count: 3,
                        consumer: c.clone(),
                    },
                );
                g.consumers.entry(c).or_default().pel.insert(id);
            }
            g.consumers.insert(
                b("idle"),
                Consumer {
                    seen_time: 5,
                    ..Consumer::default()
                },
            );
            st.groups.insert(b("g1"), Shared::new(g));
            st.groups.insert(
                b("g0"),
                Shared::new(Group {
                    entries_read: -1,
                    ..Group::default()
                }),
            );
        }
        st
    }

    #[test]
    fn every_type_and_encoding_round_trips() {
        let l = lim();
        let mut values: Vec<Value> = vec![
            Value::Str(Bytes::from_static(b"hello")),
            Value::Str(Bytes::from_static(b"-123")),
            Value::Int(i64::MIN),
            Value::Int(42),
            Value::Obj(Obj::raw(b"xyz".repeat(100))),
        ];
        let mut small_list = List::new();
        let mut big_list = List::new();
        for i in 0..10_000 {
            big_list.push(End::Tail, format!("item{i}").as_bytes());
        }
        small_list.push(End::Tail, b"a");
        small_list.push(End::Tail, b"12");
        big_list.push(End::Tail, &vec![b'q'; 20_000]);
        values.push(Value::Obj(Obj::List(small_list)));
        values.push(Value::Obj(Obj::List(big_list)));
        let mut intset = Set::default();
        let mut table_set = Set::default();
        for n in [1i64, -5, 70_000, i64::MAX] {
            intset.add(n.to_string().as_bytes(), l.set_max_intset_entries);
        }
        for m in ["a", "b", "1"] {
            table_set.add(m.as_bytes(), l.set_max_intset_entries);
        }
        values.push(Value::Obj(Obj::Set(intset)));
        values.push(Value::Obj(Obj::Set(table_set)));
        let mut lp_hash = Hash::default();
        let mut ht_hash = Hash::default();
        lp_hash.set(b"f", b"v", l.hash());
        lp_hash.set(b"n", b"-77", l.hash());
        for i in 0..600 {
            ht_hash.set(
                format!("f{i}").as_bytes(),
                format!("{i}").as_bytes(),
                l.hash(),
            );
        }
        values.push(Value::Obj(Obj::Hash(lp_hash)));
        values.push(Value::Obj(Obj::Hash(ht_hash)));
        let mut lp_z = ZSet::new();
        let mut sk_z = ZSet::new();
        for (i, sc) in [1.5, f64::INFINITY, f64::NEG_INFINITY, 0.1, -3.0, 1e300]
            .iter()
            .enumerate()
        {
            lp_z.insert(format!("m{i}").as_bytes(), *sc, l.zset());
        }
        for i in 0..300 {
            sk_z.insert(format!("m{i}").as_bytes(), i as f64 / 7.0, l.zset());
        }
        values.push(Value::Obj(Obj::ZSet(lp_z)));
        values.push(Value::Obj(Obj::ZSet(sk_z)));
        values.push(Value::Obj(Obj::Stream(Shared::new(sample_stream(false)))));
        values.push(Value::Obj(Obj::Stream(Shared::new(sample_stream(true)))));
        values.push(Value::Obj(Obj::Stream(Shared::new(Stream::new()))));
        for v in &values {
            for compress in [false, true] {
                let back = round_trip(v, compress);
                match v {
                    Value::Obj(Obj::Stream(a)) => {
                        let Value::Obj(Obj::Stream(b)) = &back else {
                            panic!("type")
                        };
                        assert_eq!(
                            a.range(StreamId::MIN, StreamId::MAX, 0, false),
                            b.range(StreamId::MIN, StreamId::MAX, 0, false)
                        );
                        assert_eq!(
                            (
                                a.len(),
                                a.last_id,
                                a.first_id,
                                a.max_deleted,
                                a.entries_added
                            ),
                            (
                                b.len(),
                                b.last_id,
                                b.first_id,
                                b.max_deleted,
                                b.entries_added
                            )
                        );
                        assert_eq!(a.groups, b.groups);
                        assert_eq!(a.block_count(), b.block_count());
                        // Tombstones survive too.
                        let ra: Vec<_> = a.raw_blocks().collect();
                        let rb: Vec<_> = b.raw_blocks().collect();
                        assert_eq!(ra, rb);
                    }
                    Value::Obj(o) if !matches!(o, Obj::Raw(_)) => {
                        assert_eq!(&back, v);
                        assert_eq!(encoding(&back), encoding(v));
                    }
                    _ => assert!(same_string(v, &back)),
                }
                // The payload is stable: re-dumping gives the same bytes
                // (hash-table iteration order aside).
                if !matches!(encoding(v), "hashtable") {
                    assert_eq!(
                        dump_payload_with(as_ref(&back), compress, &l),
                        dump_payload_with(as_ref(v), compress, &l)
                    );
                }
            }
        }
    }

    #[test]
    fn encodings_follow_the_configured_limits() {
        let mut h = Hash::default();
        for i in 0..10 {
            h.set(format!("f{i}").as_bytes(), b"v", lim().hash());
        }
        let p = dump_payload(ValueRef::Obj(&Obj::Hash(h)));
        let tight = Limits {
            hash_max_listpack_entries: 5,
            ..lim()
        };
        let v = restore_payload(&p, &tight).expect("payload");
        assert_eq!(encoding(&v), "hashtable");
        let v = restore_payload(&p, &lim()).expect("payload");
        assert_eq!(encoding(&v), "listpack");
    }

    #[test]
    fn file_round_trip_with_metadata() {
        let mut w = RdbWriter::new(Vec::new(), true, true);
        let aux = standard_aux(1, 2, false);
        let aux: Vec<(&str, &[u8])> = aux.iter().map(|(k, v)| (*k, v.as_slice())).collect();
        w.header(&aux).expect("header");
        w.function(b"#!lua name=x\n").expect("function");
        w.select_db(0, 3, 2).expect("select");
        w.entry(
            b"a",
            ValueRef::Str(b"1"),
            Some(5_000),
            Some(EntryMeta::Idle(9)),
        )
        .expect("entry");
        w.entry(b"b", ValueRef::Int(7), Some(1_000), None)
            .expect("entry");
        w.select_db(2, 1, 0).expect("select");
        w.entry(b"c", ValueRef::Str(b"xx"), None, Some(EntryMeta::Freq(200)))
            .expect("entry");
        let file = w.finish().expect("finish");
        let mut got = Vec::new();
        let sum = load(&file[..], 2_000, &lim(), &mut |l| {
            got.push(l);
            Ok(())
        })
        .expect("load");
        assert_eq!(sum.functions, vec![b"#!lua name=x\n".to_vec()]);
        assert_eq!(sum.expired_skipped, 1);
        assert_eq!(sum.keys_loaded, 2);
        assert_eq!(got[0].key, Bytes::from_static(b"a"));
        assert_eq!((got[0].expire_ms, got[0].idle_secs), (Some(5_000), Some(9)));
        assert_eq!((got[1].db, got[1].freq), (2, Some(200)));
        // A flipped byte fails the checksum (or the parse), never panics.
        for i in 9..file.len() {
            let mut bad = file.clone();
            bad[i] ^= 0x41;
            assert!(
                load(&bad[..], 0, &lim(), &mut |_| Ok(())).is_err(),
                "byte {i}"
            );
        }
        for cut in 0..file.len() {
            assert!(load(&file[..cut], 0, &lim(), &mut |_| Ok(())).is_err());
        }
        // Checksum off writes zero, which the loader accepts.
        let mut w = RdbWriter::new(Vec::new(), false, false);
        w.header(&[]).expect("header");
        let f = w.finish().expect("finish");
        assert_eq!(&f[f.len() - 8..], &[0u8; 8]);
        assert!(load(&f[..], 0, &lim(), &mut |_| Ok(())).is_ok());
    }

    #[test]
    fn corrupt_lengths_do_not_allocate() {
        // A string claiming 2^40 bytes, and an LZF blob claiming a huge
        // uncompressed size: errors, quickly.
        let mut p = vec![T_STRING, 0x81];
        p.extend_from_slice(&(1u64 << 40).to_be_bytes());
        p.extend_from_slice(b"abc");
        assert!(Rd::new(&p[1..], false).string().is_err());
        let p = [
            0xC3u8, 0x05, 0x81, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        ];
        assert!(Rd::new(&p[..], false).string().is_err());
        // A list claiming 2^60 elements.
        let mut p = vec![0x81];
        p.extend_from_slice(&(1u64 << 60).to_be_bytes());
        assert!(Rd::new(&p[..], false).object(T_LIST, &lim()).is_err());
    }

    /// The plain list type of RDB versions before quicklists: a count,
    /// then each element as a string.
    #[test]
    fn plain_rdb_list_loads() {
        let p = [0x03u8, 0x01, b'a', 0x02, b'b', b'b', 0x03, b'c', b'c', b'c'];
        let Value::Obj(Obj::List(l)) = Rd::new(&p[..], false).object(T_LIST, &lim()).unwrap()
        else {
            panic!("not a list");
        };
        let items: Vec<&[u8]> = l.iter().collect();
        assert_eq!(items, [&b"a"[..], b"bb", b"ccc"]);
    }

    #[test]
    fn old_stream_format_derives_metadata() {
        // STREAM_LISTPACKS (RDB 9): no first/max-deleted/entries-added, no
        // group read counters. One node, master 5-0, entries 5-0 and
        // 5-1 (the latter deleted) and 6-0 with other fields.
        let mut lp = LpWriter::new();
        for v in [2, 1, 1] {
            lp.int(v);
        }
        lp.str(b"f");
        lp.int(0);
        for (flags, ms, seq, val) in [(2, 0, 0, "a"), (3, 0, 1, "b")] {
            lp.int(flags);
            lp.int(ms);
            lp.int(seq);
            lp.str(val.as_bytes());
            lp.int(4);
        }
        for v in [0, 1, 0, 1] {
            lp.int(v);
        }
        lp.str(b"g");
        lp.str(b"c");
        lp.int(6);
        let mut body = vec![T_STREAM_LISTPACKS];
        put_len(&mut body, 1).expect("vec");
        let mut key = Vec::new();
        put_stream_id(&mut key, StreamId::new(5, 0)).expect("vec");
        put_string(&mut body, &key, false).expect("vec");
        put_string(&mut body, &lp.finish(), false).expect("vec");
        for v in [2u64, 6, 0, 1] {
            // length, last id, one group
            put_len(&mut body, v).expect("vec");
        }
        put_string(&mut body, b"grp", false).expect("vec");
        put_len(&mut body, 5).expect("vec");
        put_len(&mut body, 0).expect("vec");
        put_len(&mut body, 0).expect("vec"); // PEL
        put_len(&mut body, 0).expect("vec"); // consumers
        let v = restore_payload(&with_footer(body), &lim()).expect("v9 stream");
        let Value::Obj(Obj::Stream(st)) = v else {
            panic!("type")
        };
        assert_eq!(st.len(), 2);
        assert_eq!(st.first_id, StreamId::new(5, 0));
        assert_eq!(st.entries_added, 2);
        assert_eq!(st.max_deleted, StreamId::MIN);
        let all = st.range(StreamId::MIN, StreamId::MAX, 0, false);
        assert_eq!(all[1].0, StreamId::new(6, 0));
        assert_eq!(
            all[1].1,
            vec![Bytes::from_static(b"g"), Bytes::from_static(b"c")]
        );
        assert_eq!(st.groups[&Bytes::from_static(b"grp")].entries_read, 1);
    }

    fn with_footer(mut body: Vec<u8>) -> Vec<u8> {
        body.extend_from_slice(&RDB_VERSION.to_le_bytes());
        let crc = CRC64.checksum(&body);
        body.extend_from_slice(&crc.to_le_bytes());
        body
    }

    proptest! {
        #[test]
        fn strings_round_trip(s in proptest::collection::vec(any::<u8>(), 0..300), rep in 1usize..20) {
            let v = Value::Str(Bytes::from(s.repeat(rep)));
            prop_assert!(same_string(&round_trip(&v, true), &v));
        }

        #[test]
        fn collections_round_trip(items in proptest::collection::vec("[a-c0-9]{0,12}", 0..700), scores in proptest::collection::vec(-1e6f64..1e6, 700)) {
            let l = lim();
            let mut list = List::new();
            let mut set = Set::default();
            let mut hash = Hash::default();
            let mut z = ZSet::new();
            for (i, it) in items.iter().enumerate() {
                list.push(End::Tail, it.as_bytes());
                set.add(it.as_bytes(), l.set_max_intset_entries);
                hash.set(it.as_bytes(), i.to_string().as_bytes(), l.hash());
                z.insert(it.as_bytes(), scores[i], l.zset());
            }
            for o in [Obj::List(list), Obj::Set(set), Obj::Hash(hash), Obj::ZSet(z)] {
                if o.type_name() != "list" && items.is_empty() {
                    continue;
                }
                let v = Value::Obj(o);
                if items.is_empty() {
                    continue;
                }
                let back = round_trip(&v, true);
                prop_assert_eq!(&back, &v);
                prop_assert_eq!(encoding(&back), encoding(&v));
            }
        }

        #[test]
        fn mutated_payloads_never_panic(which in 0usize..6, pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let l = lim();
            let mut z = ZSet::new();
            z.insert(b"m", 1.0, l.zset());
            let mut h = Hash::default();
            h.set(b"f", b"v", l.hash());
            let mut li = List::new();
            li.push(End::Tail, b"x");
            let vals = [
                Value::Obj(Obj::Stream(Shared::new(sample_stream(true)))),
                Value::Obj(Obj::ZSet(z)),
                Value::Obj(Obj::Hash(h)),
                Value::Obj(Obj::List(li)),
                Value::Obj(Obj::raw(b"abc".repeat(40))),
                Value::Str(Bytes::from_static(b"12")),
            ];
            let p = dump_payload(as_ref(&vals[which]));
            let mut body = p[..p.len() - 10].to_vec();
            let i = pos.index(body.len());
            body[i] = byte;
            if let Ok(v) = restore_payload(&with_footer(body), &l) {
                // Whatever loads must be usable: re-encode it and read it,
                // and its own payload must restore to the same payload.
                let d1 = dump_payload(as_ref(&v));
                let again = restore_payload(&d1, &l).expect("our own payload restores");
                prop_assert_eq!(dump_payload(as_ref(&again)), d1);
                if let Value::Obj(Obj::Stream(st)) = &v {
                    let _ = st.range(StreamId::MIN, StreamId::MAX, 0, true);
                    for g in st.groups.values() {
                        let _ = st.group_lag(g);
                    }
                }
            }
        }
    }
}
