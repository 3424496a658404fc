//! Stream: the stream type (Redis 7.0 semantics).
//!
//! Entries live in blocks keyed by the block's first ("master") ID in a
//! `BTreeMap`. A block packs many entries into one `Vec<u8>`: per entry a
//! flag byte (live / deleted), a varint giving the length of the rest of
//! the entry (so a scan skips an entry without walking its fields), the ms
//! part as a varint delta from the master ID, the seq as a varint, the
//! field count and the length-prefixed fields and values. So a stream of N small entries costs N/100 allocations, not
//! one per field. Deleting an entry only flags it (like Redis's listpack
//! nodes); a block whose entries are all deleted is dropped. Approximate
//! trimming (`~`) removes whole blocks only, exactly like Redis.
//!
//! Consumer groups keep Redis's two views of pending entries: the group PEL
//! (ID → owner, delivery time, delivery count) and each consumer's own PEL.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::storage::cowmap::{CowMap, CowSet};
use crate::storage::shared::Shared;

/// A stream entry ID: `<ms>-<seq>`, ordered numerically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    /// `<ms>-<seq>`.
    pub fn new(ms: u64, seq: u64) -> Self {
        StreamId { ms, seq }
    }

    /// The next ID (None at the maximum).
    pub fn incr(self) -> Option<StreamId> {
        if self.seq < u64::MAX {
            Some(StreamId::new(self.ms, self.seq + 1))
        } else if self.ms < u64::MAX {
            Some(StreamId::new(self.ms + 1, 0))
        } else {
            None
        }
    }

    /// The previous ID (None at 0-0).
    pub fn decr(self) -> Option<StreamId> {
        if self.seq > 0 {
            Some(StreamId::new(self.ms, self.seq - 1))
        } else if self.ms > 0 {
            Some(StreamId::new(self.ms - 1, u64::MAX))
        } else {
            None
        }
    }

    /// 0-0, which Redis uses for "none".
    pub fn is_zero(self) -> bool {
        self.ms == 0 && self.seq == 0
    }

    /// `<ms>-<seq>` text.
    pub fn to_bytes(self) -> Bytes {
        let mut buf = [0u8; 41];
        let mut ib = itoa::Buffer::new();
        let ms = ib.format(self.ms).as_bytes();
        let n = ms.len();
        buf[..n].copy_from_slice(ms);
        buf[n] = b'-';
        let seq = ib.format(self.seq).as_bytes();
        buf[n + 1..n + 1 + seq.len()].copy_from_slice(seq);
        Bytes::copy_from_slice(&buf[..n + 1 + seq.len()])
    }
}

/// One entry as read out of the stream: its ID and the flat field/value list.
pub type StreamEntry = (StreamId, Vec<Bytes>);

/// A block of packed entries (see the module docs).
#[derive(Debug, Clone, PartialEq, Default)]
struct Block {
    data: Vec<u8>,
    /// Entries not deleted.
    live: u32,
    /// Entries ever written into the block (live + deleted).
    total: u32,
    /// Highest ID in the block (deleted or not).
    last: StreamId,
    /// Bytes of `data` taken by the per-entry skip lengths: the block-size
    /// limit (stream-node-max-bytes) is applied to the size without them,
    /// so blocks split where they did before the skip lengths existed.
    skip_bytes: usize,
}

/// Encoded length of a varint.
fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(data: &[u8], pos: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    while let Some(&b) = data.get(*pos) {
        *pos += 1;
        if shift < 64 {
            v |= ((b & 0x7f) as u64) << shift;
        }
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    v
}

/// A decoded entry header inside a block.
struct RawEntry {
    /// Offset of the flag byte.
    at: usize,
    deleted: bool,
    id: StreamId,
    /// Offset of the first field.
    body: usize,
    nitems: usize,
    /// Offset of the next entry.
    end: usize,
}

impl Block {
    /// Appends one entry (`id` >= `master`, above every entry in the block).
    fn push_entry(&mut self, master: StreamId, id: StreamId, deleted: bool, items: &[Bytes]) {
        let dms = id.ms - master.ms;
        let mut rest = varint_len(dms) + varint_len(id.seq) + varint_len(items.len() as u64);
        for it in items {
            rest += varint_len(it.len() as u64) + it.len();
        }
        let skip = varint_len(rest as u64);
        self.data.reserve(1 + skip + rest);
        self.data.push(deleted as u8);
        put_varint(&mut self.data, rest as u64);
        put_varint(&mut self.data, dms);
        put_varint(&mut self.data, id.seq);
        put_varint(&mut self.data, items.len() as u64);
        for it in items {
            put_varint(&mut self.data, it.len() as u64);
            self.data.extend_from_slice(it);
        }
        self.skip_bytes += skip;
        self.total += 1;
        if !deleted {
            self.live += 1;
        }
        self.last = id;
    }

    fn decode(&self, master: StreamId, at: usize) -> Option<RawEntry> {
        let d = &self.data;
        if at >= d.len() {
            return None;
        }
        let deleted = d[at] != 0;
        let mut p = at + 1;
        let rest = get_varint(d, &mut p) as usize;
        let end = p.saturating_add(rest).min(d.len());
        let ms = master.ms.wrapping_add(get_varint(d, &mut p));
        let seq = get_varint(d, &mut p);
        let nitems = get_varint(d, &mut p) as usize;
        Some(RawEntry {
            at,
            deleted,
            id: StreamId::new(ms, seq),
            body: p,
            nitems,
            end,
        })
    }

    fn items(&self, e: &RawEntry) -> Vec<Bytes> {
        let mut out = Vec::with_capacity(e.nitems);
        let mut p = e.body;
        for _ in 0..e.nitems {
            let l = get_varint(&self.data, &mut p) as usize;
            let end = (p + l).min(self.data.len());
            out.push(Bytes::copy_from_slice(&self.data[p..end]));
            p = end;
        }
        out
    }

    /// Headers of every entry (deleted included), in order.
    fn all(&self, master: StreamId) -> Vec<RawEntry> {
        let mut v = Vec::with_capacity(self.total as usize);
        let mut at = 0;
        while let Some(e) = self.decode(master, at) {
            at = e.end;
            v.push(e);
        }
        v
    }
}

/// One stored entry with its tombstone flag (see [`Stream::raw_blocks`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RawStreamEntry {
    pub id: StreamId,
    pub deleted: bool,
    /// Flat field, value, field, value… list.
    pub items: Vec<Bytes>,
}

/// A pending (delivered, not acknowledged) entry of a group.
#[derive(Debug, Clone, PartialEq)]
pub struct Nack {
    /// Unix ms of the last delivery.
    pub delivery_time: u64,
    pub delivery_count: u64,
    /// Owning consumer.
    pub consumer: Bytes,
}

/// A consumer of a group.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Consumer {
    /// Unix ms the consumer was last active (read or claimed).
    pub seen_time: u64,
    /// IDs of the entries pending for this consumer.
    pub pel: CowSet<StreamId>,
}

/// A consumer group.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Group {
    pub last_id: StreamId,
    /// Logical read counter; -1 when unknown.
    pub entries_read: i64,
    /// Pending entries, in chunks shared copy-on-write (see
    /// `storage::cowmap`): an edit during a snapshot copies one chunk.
    pub pel: CowMap<StreamId, Nack>,
    pub consumers: BTreeMap<Bytes, Consumer>,
}

/// A stream value.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Stream {
    /// Each block shared copy-on-write ([`Shared`]): a copy of the stream
    /// (its first edit after a snapshot took it by reference) costs one
    /// reference per block, and the edit copies only the block it changes.
    blocks: BTreeMap<StreamId, Shared<Block>>,
    len: usize,
    bytes: usize,
    /// Highest ID ever added (or set by XSETID): new IDs must exceed it.
    pub last_id: StreamId,
    /// First live entry's ID (0-0 when empty); XINFO recorded-first-entry-id.
    pub first_id: StreamId,
    /// Highest ID removed by XDEL: lets groups know whether their read
    /// counter is still exact (lag).
    pub max_deleted: StreamId,
    /// Entries ever added (XINFO entries-added, group lag).
    pub entries_added: u64,
    /// Consumer groups by name, ordered as Redis lists them. Each shared
    /// copy-on-write like the blocks: a copy of the stream (an XADD after
    /// a snapshot took it) costs one reference per group, and an edit of
    /// a group copies one reference per chunk of its pending entries.
    pub groups: BTreeMap<Bytes, Shared<Group>>,
    /// Where the last [`Stream::read_after`] stopped (a cache).
    read_hint: ReadHint,
}

/// The position of the entry following `after`: block `master`, byte `at`.
#[derive(Debug, Clone, Copy)]
struct ReadPos {
    after: StreamId,
    master: StreamId,
    at: usize,
}

/// A cache of the stream's layout, not part of its value: two streams with
/// the same contents compare equal whatever their hints.
#[derive(Debug, Clone, Copy, Default)]
struct ReadHint(Option<ReadPos>);

impl PartialEq for ReadHint {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Stream {
    /// An empty stream (XADD creating the key, XGROUP CREATE MKSTREAM).
    pub fn new() -> Self {
        Self::default()
    }

    /// Roughly how many allocations freeing the stream takes (Redis's
    /// estimate: its blocks, plus every group as big as the first one).
    pub fn free_effort(&self) -> usize {
        let groups = self.groups.len();
        let pel = self.groups.values().next().map_or(0, |g| g.pel.len());
        self.blocks.len() + groups * (1 + pel)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// No entries (an empty stream still exists, unlike other types).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Redis's OBJECT ENCODING name.
    pub fn encoding(&self) -> &'static str {
        "stream"
    }

    /// Number of blocks (XINFO STREAM radix-tree-keys).
    pub fn block_count(&self) -> usize {
        self.blocks.len()
    }

    /// Nodes of the radix tree Redis would index these blocks with (XINFO
    /// STREAM radix-tree-nodes): its keys are the blocks' first IDs as 16
    /// big-endian bytes, and a rax is canonical for its key set. A node
    /// starts at the root, at each branch, at each child of a branch and at
    /// each key's end; a run of single-child bytes between them is one
    /// compressed node.
    pub fn radix_tree_nodes(&self) -> usize {
        fn nodes(keys: &[[u8; 16]], depth: usize) -> usize {
            if depth == 16 || keys.is_empty() {
                return 1;
            }
            let (first, last) = (&keys[0], &keys[keys.len() - 1]);
            let common = (depth..16).find(|&i| first[i] != last[i]).unwrap_or(16);
            if common > depth {
                // A compressed node down to the branch or the key's end.
                return 1 + nodes(keys, common);
            }
            let mut n = 1;
            let mut rest = keys;
            while let Some(head) = rest.first() {
                let split = rest.partition_point(|k| k[depth] == head[depth]);
                n += nodes(&rest[..split], depth + 1);
                rest = &rest[split..];
            }
            n
        }
        let keys: Vec<[u8; 16]> = self
            .blocks
            .keys()
            .map(|id| {
                let mut k = [0u8; 16];
                k[..8].copy_from_slice(&id.ms.to_be_bytes());
                k[8..].copy_from_slice(&id.seq.to_be_bytes());
                k
            })
            .collect();
        nodes(&keys, 0)
    }

    /// Approximate heap bytes (MEMORY USAGE, accounting).
    pub fn memory_usage(&self) -> usize {
        // Per block: its slot in the map and its own allocation (the
        // header and the two reference counts).
        let per_block = 64 + std::mem::size_of::<Block>() + 16;
        let mut n = std::mem::size_of::<Self>() + self.bytes + self.blocks.len() * per_block;
        for (name, g) in &self.groups {
            n += 96 + name.len() + g.pel.len() * 80;
            for (c, cons) in &g.consumers {
                n += 64 + c.len() + cons.pel.len() * 24;
            }
        }
        n
    }

    /// Appends an entry with `id` (> last_id, checked by the caller).
    /// `node_max_entries`/`node_max_bytes` decide when a new block starts.
    pub fn append(
        &mut self,
        id: StreamId,
        items: &[Bytes],
        node_max_entries: u64,
        node_max_bytes: usize,
    ) {
        let need_new = match self.blocks.iter().next_back() {
            None => true,
            Some((_, b)) => {
                let size: usize = items.iter().map(|i| i.len() + 2).sum();
                let maxb = if node_max_bytes == 0 {
                    usize::MAX
                } else {
                    node_max_bytes
                };
                b.data.len() - b.skip_bytes + size >= maxb
                    || (node_max_entries > 0 && b.total as u64 >= node_max_entries)
            }
        };
        if need_new {
            self.blocks.insert(id, Shared::default());
        }
        let Some((master, b)) = self.blocks.iter_mut().next_back() else {
            return;
        };
        let b: &mut Block = b;
        let before = b.data.capacity();
        b.push_entry(*master, id, false, items);
        self.bytes = self.bytes + b.data.capacity() - before;
        if self.len == 0 {
            self.first_id = id;
        }
        self.len += 1;
        self.last_id = id;
        self.entries_added += 1;
    }

    /// Entries with `start <= id <= end`, at most `count` (0 = all), in
    /// ascending order or descending with `rev`.
    pub fn range(
        &self,
        start: StreamId,
        end: StreamId,
        count: usize,
        rev: bool,
    ) -> Vec<StreamEntry> {
        let mut out = Vec::new();
        if start > end {
            return out;
        }
        let full = |out: &Vec<StreamEntry>| count > 0 && out.len() >= count;
        if !rev {
            self.scan_forward(None, start, end, count, &mut out);
        } else {
            for (master, b) in self.blocks.range(..=end).rev() {
                if b.last < start {
                    break;
                }
                for e in b.all(*master).into_iter().rev() {
                    if e.id < start {
                        return out;
                    }
                    if e.deleted || e.id > end {
                        continue;
                    }
                    out.push((e.id, b.items(&e)));
                    if full(&out) {
                        return out;
                    }
                }
            }
        }
        out
    }

    /// The forward part of [`Stream::range`]: pushes entries with
    /// `start <= id <= end` (at most `count`, 0 = all) onto `out`, starting
    /// at `from` (a block and an offset in it, known to precede every entry
    /// `>= start` in that block) or else at the block holding `start`.
    /// Returns where the entry after the last one pushed starts.
    fn scan_forward(
        &self,
        from: Option<(StreamId, usize)>,
        start: StreamId,
        end: StreamId,
        count: usize,
        out: &mut Vec<StreamEntry>,
    ) -> Option<(StreamId, usize)> {
        let (first, mut at) = match from {
            Some(f) => f,
            None => (
                self.blocks
                    .range(..=start)
                    .next_back()
                    .map(|(k, _)| *k)
                    .unwrap_or(start),
                0,
            ),
        };
        let mut stop = None;
        for (master, b) in self.blocks.range(first..) {
            if *master > end {
                break;
            }
            if b.last < start {
                at = 0;
                continue;
            }
            while let Some(e) = b.decode(*master, at) {
                at = e.end;
                if e.id > end {
                    return stop;
                }
                if e.deleted || e.id < start {
                    continue;
                }
                out.push((e.id, b.items(&e)));
                stop = Some((*master, e.end));
                if count > 0 && out.len() >= count {
                    return stop;
                }
            }
            at = 0;
        }
        stop
    }

    /// Entries with IDs above `after`, at most `count` (0 = all), in
    /// ascending order: XREADGROUP `>`. Remembers where it stopped, so the
    /// next read after the last entry returned starts there instead of
    /// scanning its block from the beginning.
    pub fn read_after(&mut self, after: StreamId, count: usize) -> Vec<StreamEntry> {
        let mut out = Vec::new();
        let Some(start) = after.incr() else {
            return out;
        };
        // Offsets in a block never move (entries are only appended or
        // flagged), and IDs only grow, so a position recorded after `after`
        // still precedes every entry above it while its block exists.
        let from = self.read_hint.0.filter(|h| {
            h.after == after
                && self
                    .blocks
                    .get(&h.master)
                    .is_some_and(|b| h.at <= b.data.len())
        });
        let stop = self.scan_forward(
            from.map(|h| (h.master, h.at)),
            start,
            StreamId::MAX,
            count,
            &mut out,
        );
        if let (Some((master, at)), Some((id, _))) = (stop, out.last()) {
            self.read_hint.0 = Some(ReadPos {
                after: *id,
                master,
                at,
            });
        }
        out
    }

    /// The entry with exactly `id`, if present.
    pub fn get(&self, id: StreamId) -> Option<Vec<Bytes>> {
        self.range(id, id, 1, false).pop().map(|(_, v)| v)
    }

    /// Does an entry with `id` exist?
    pub fn contains(&self, id: StreamId) -> bool {
        let Some((master, b)) = self.blocks.range(..=id).next_back() else {
            return false;
        };
        if b.last < id {
            return false;
        }
        let mut at = 0;
        while let Some(e) = b.decode(*master, at) {
            at = e.end;
            if e.id == id {
                return !e.deleted;
            }
            if e.id > id {
                break;
            }
        }
        false
    }

    /// First live entry.
    pub fn first_entry(&self) -> Option<StreamEntry> {
        self.range(StreamId::MIN, StreamId::MAX, 1, false).pop()
    }
    /// Last live entry.
    pub fn last_entry(&self) -> Option<StreamEntry> {
        let id = self.last_entry_id()?;
        self.range(id, id, 1, false).pop()
    }

    /// ID of the last live entry (Redis's streamLastValidID), without
    /// decoding fields: the last block's highest ID when it has no
    /// tombstones, otherwise a forward scan of entry headers.
    pub fn last_entry_id(&self) -> Option<StreamId> {
        for (master, b) in self.blocks.iter().rev() {
            if b.live == 0 {
                continue;
            }
            if b.live == b.total {
                return Some(b.last);
            }
            let mut last = None;
            let mut at = 0;
            while let Some(e) = b.decode(*master, at) {
                at = e.end;
                if !e.deleted {
                    last = Some(e.id);
                }
            }
            if last.is_some() {
                return last;
            }
        }
        None
    }

    /// ID of the first live entry, without decoding its fields.
    fn first_entry_id(&self) -> Option<StreamId> {
        for (master, b) in &self.blocks {
            let mut at = 0;
            while let Some(e) = b.decode(*master, at) {
                at = e.end;
                if !e.deleted {
                    return Some(e.id);
                }
            }
        }
        None
    }

    fn refresh_first(&mut self) {
        self.first_id = self.first_entry_id().unwrap_or(StreamId::MIN);
    }

    /// Deletes the entry `id` (XDEL). Returns whether it existed.
    pub fn delete(&mut self, id: StreamId) -> bool {
        let Some((&master, b)) = self.blocks.range(..=id).next_back() else {
            return false;
        };
        if b.last < id {
            return false;
        }
        let mut at = 0;
        let mut found = None;
        while let Some(e) = b.decode(master, at) {
            at = e.end;
            if e.id == id {
                if !e.deleted {
                    found = Some(e.at);
                }
                break;
            }
            if e.id > id {
                break;
            }
        }
        let Some(pos) = found else { return false };
        // Only now the block is written (and copied if a snapshot shares it).
        let Some(b) = self.blocks.get_mut(&master) else {
            return false;
        };
        let b: &mut Block = b;
        b.data[pos] = 1;
        b.live -= 1;
        if b.live == 0 {
            let cap = b.data.capacity();
            self.blocks.remove(&master);
            self.bytes -= cap.min(self.bytes);
        }
        self.len -= 1;
        if id > self.max_deleted {
            self.max_deleted = id;
        }
        if self.len == 0 {
            self.first_id = StreamId::MIN;
        } else if id == self.first_id {
            self.refresh_first();
        }
        true
    }

    /// Trims from the head: keep at most `maxlen` entries (`Some`) or remove
    /// entries below `minid`. `approx` removes whole blocks only; `limit`
    /// (0 = none) caps the number of removed entries. Returns the count.
    pub fn trim(
        &mut self,
        maxlen: Option<u64>,
        minid: Option<StreamId>,
        approx: bool,
        limit: u64,
    ) -> u64 {
        let mut removed: u64 = 0;
        while let Some((&master, b)) = self.blocks.iter().next() {
            let live = b.live as u64;
            let whole = match (maxlen, minid) {
                (Some(m), _) => (self.len as u64).saturating_sub(live) >= m,
                (_, Some(id)) => b.last < id,
                _ => return removed,
            };
            if whole {
                if limit > 0 && removed + live > limit {
                    break;
                }
                let cap = b.data.capacity();
                self.blocks.remove(&master);
                self.bytes -= cap.min(self.bytes);
                self.len -= live as usize;
                removed += live;
                continue;
            }
            if approx {
                break;
            }
            // Partial: flag entries one by one (only now is the block
            // written, and copied if a snapshot shares it).
            let Some(b) = self.blocks.get_mut(&master) else {
                break;
            };
            let b: &mut Block = b;
            let mut at = 0;
            while let Some(e) = b.decode(master, at) {
                at = e.end;
                if e.deleted {
                    continue;
                }
                let stop = match (maxlen, minid) {
                    (Some(m), _) => self.len as u64 <= m,
                    (_, Some(id)) => e.id >= id,
                    _ => true,
                };
                if stop || (limit > 0 && removed >= limit) {
                    break;
                }
                b.data[e.at] = 1;
                b.live -= 1;
                self.len -= 1;
                removed += 1;
            }
            if b.live == 0 {
                // Only deleted entries were left past the threshold.
                let cap = b.data.capacity();
                self.blocks.remove(&master);
                self.bytes -= cap.min(self.bytes);
            }
            break;
        }
        if removed > 0 {
            self.refresh_first();
        }
        removed
    }

    /// Every block with all its entries, deleted ones included, in order:
    /// `(master id, entries)`. RDB snapshots write one Redis listpack node
    /// per block, so node boundaries and tombstones survive a restart.
    pub fn raw_blocks(&self) -> impl Iterator<Item = (StreamId, Vec<RawStreamEntry>)> + '_ {
        self.blocks.iter().map(|(master, b)| {
            let entries = b
                .all(*master)
                .into_iter()
                .map(|e| RawStreamEntry {
                    id: e.id,
                    deleted: e.deleted,
                    items: b.items(&e),
                })
                .collect();
            (*master, entries)
        })
    }

    /// Appends a whole block as loaded from an RDB node (deleted entries
    /// kept as tombstones). IDs must ascend and follow every existing
    /// entry; returns false (adding nothing) otherwise. Only the entry
    /// count changes: `last_id`, `first_id`, `entries_added` and
    /// `max_deleted` are restored by the loader from the saved metadata.
    pub fn push_raw_block(&mut self, entries: &[RawStreamEntry]) -> bool {
        let Some(first) = entries.first() else {
            return false;
        };
        if let Some((_, b)) = self.blocks.iter().next_back() {
            if first.id <= b.last {
                return false;
            }
        }
        if entries.windows(2).any(|w| w[0].id >= w[1].id) {
            return false;
        }
        let master = first.id;
        let mut b = Block::default();
        for e in entries {
            b.push_entry(master, e.id, e.deleted, &e.items);
        }
        if b.live == 0 {
            return true;
        }
        b.data.shrink_to_fit();
        self.len += b.live as usize;
        self.bytes += b.data.capacity();
        self.blocks.insert(master, Shared::new(b));
        true
    }

    /// The group read counter Redis derives for `id` (-1 when unknown).
    pub fn estimate_distance(&self, id: StreamId) -> i64 {
        if self.entries_added == 0 {
            return 0;
        }
        if self.len == 0 && id <= self.last_id {
            return self.entries_added as i64;
        }
        if id == self.last_id {
            return self.entries_added as i64;
        } else if id > self.last_id {
            return -1;
        }
        if self.max_deleted.is_zero() || self.max_deleted < self.first_id {
            if id < self.first_id {
                return (self.entries_added - self.len as u64) as i64;
            } else if id == self.first_id {
                return (self.entries_added - self.len as u64 + 1) as i64;
            }
        }
        -1
    }

    /// Are there deleted entries (tombstones) in `start..=end`?
    pub fn has_tombstones(&self, start: StreamId, end: StreamId) -> bool {
        if self.len == 0 || self.max_deleted.is_zero() {
            return false;
        }
        if self.first_id > self.max_deleted {
            return false;
        }
        start <= self.max_deleted && self.max_deleted <= end
    }

    /// A group's lag (None when it cannot be known).
    pub fn group_lag(&self, g: &Group) -> Option<i64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if g.entries_read != -1 && !self.has_tombstones(g.last_id, StreamId::MAX) {
            return Some(self.entries_added as i64 - g.entries_read);
        }
        let er = self.estimate_distance(g.last_id);
        (er != -1).then(|| self.entries_added as i64 - er)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    /// A copy shares every block; appending, deleting and trimming copy
    /// only the blocks they write, and the original keeps its contents.
    #[test]
    fn a_copy_shares_its_blocks_until_an_edit_copies_one() {
        let mut s = Stream::new();
        // 49 full blocks of 100 and a last one of 50.
        for i in 1..=4950u64 {
            s.append(StreamId::new(i, 0), &[b("f"), b(&i.to_string())], 100, 4096);
        }
        let before = s.range(StreamId::MIN, StreamId::MAX, 0, false);
        let blocks: std::collections::HashSet<*const Block> =
            s.blocks.values().map(|b| &**b as *const Block).collect();
        assert_eq!(blocks.len(), 50);
        let mut c = s.clone();
        c.append(StreamId::new(6000, 0), &[b("f"), b("new")], 100, 4096);
        assert!(c.delete(StreamId::new(2500, 0)));
        assert_eq!(c.trim(None, Some(StreamId::new(51, 0)), false, 0), 50);
        let shared = c
            .blocks
            .values()
            .filter(|b| blocks.contains(&(&***b as *const Block)))
            .count();
        // Written: the last block (append), the one holding 2500 (delete)
        // and the first (its first half flagged by the trim).
        assert_eq!(shared, 50 - 3);
        assert_eq!(c.len(), 4950 + 1 - 1 - 50);
        assert_eq!(s.range(StreamId::MIN, StreamId::MAX, 0, false), before);
    }

    /// A copy shares its consumer groups: appending copies none of them,
    /// an edit of one group copies that group only, and the original's
    /// pending entries stay as they were.
    #[test]
    fn a_copy_shares_its_groups_until_one_is_edited() {
        let mut s = Stream::new();
        for i in 1..=1000u64 {
            s.append(StreamId::new(i, 0), &[b("f"), b("v")], 100, 4096);
        }
        for name in ["g1", "g2"] {
            let mut g = Group::default();
            for i in 1..=1000u64 {
                g.pel.insert(
                    StreamId::new(i, 0),
                    Nack {
                        delivery_time: 1,
                        delivery_count: 1,
                        consumer: b("c"),
                    },
                );
            }
            s.groups.insert(b(name), Shared::new(g));
        }
        let addr = |s: &Stream, g: &str| &*s.groups[&b(g)] as *const Group;
        let mut c = s.clone();
        c.append(StreamId::new(2000, 0), &[b("f"), b("new")], 100, 4096);
        assert!(std::ptr::eq(addr(&c, "g1"), addr(&s, "g1")));
        assert!(std::ptr::eq(addr(&c, "g2"), addr(&s, "g2")));
        if let Some(g) = c.groups.get_mut(&b("g1")) {
            g.pel.remove(&StreamId::new(1, 0));
        }
        assert!(!std::ptr::eq(addr(&c, "g1"), addr(&s, "g1")));
        assert!(std::ptr::eq(addr(&c, "g2"), addr(&s, "g2")));
        assert_eq!(c.groups[&b("g1")].pel.len(), 999);
        assert_eq!(s.groups[&b("g1")].pel.len(), 1000);
    }

    #[test]
    fn append_range_delete_trim() {
        let mut s = Stream::new();
        for i in 1..=250u64 {
            s.append(StreamId::new(i, 0), &[b("f"), b(&i.to_string())], 100, 4096);
        }
        assert_eq!(s.len(), 250);
        assert_eq!(s.block_count(), 3);
        let r = s.range(StreamId::new(99, 0), StreamId::new(102, 0), 0, false);
        assert_eq!(r.len(), 4);
        assert_eq!(r[0].1[1], b("99"));
        let r = s.range(StreamId::new(99, 0), StreamId::new(102, 0), 2, true);
        assert_eq!(r[0].0, StreamId::new(102, 0));
        assert!(s.delete(StreamId::new(1, 0)));
        assert!(!s.delete(StreamId::new(1, 0)));
        assert_eq!(s.first_id, StreamId::new(2, 0));
        assert_eq!(s.trim(Some(200), None, true, 0), 0);
        assert_eq!(s.trim(Some(150), None, true, 0), 99);
        assert_eq!(s.len(), 150);
        assert_eq!(s.trim(Some(120), None, false, 0), 30);
        assert_eq!(s.first_entry().map(|e| e.0), Some(StreamId::new(131, 0)));
        assert_eq!(s.trim(None, Some(StreamId::new(240, 0)), false, 0), 109);
        assert_eq!(s.len(), 11);
        // MINID past a deleted tail: the emptied block goes away.
        let mut s = Stream::new();
        for i in 1..=3u64 {
            s.append(StreamId::new(i, 0), &[b("f"), b("v")], 100, 4096);
        }
        assert!(s.delete(StreamId::new(3, 0)));
        assert_eq!(s.trim(None, Some(StreamId::new(3, 0)), false, 0), 2);
        assert_eq!((s.len(), s.block_count()), (0, 0));
        assert_eq!(s.first_id, StreamId::MIN);
    }

    /// `read_after` (which resumes from a remembered position) answers
    /// exactly what a fresh range scan answers, across appends, deletions,
    /// trims that drop blocks, and cursors moved back and forth.
    #[test]
    fn read_after_matches_range() {
        let mut s = Stream::new();
        let mut rng: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut id = 0u64;
        let mut cursor = StreamId::MIN;
        for step in 0..20_000u64 {
            match next() % 10 {
                0..=3 => {
                    id += 1 + next() % 3;
                    let v = b(&step.to_string());
                    s.append(StreamId::new(id, next() % 2), &[b("f"), v], 7, 4096);
                }
                4 => {
                    let victim = StreamId::new(next() % (id + 1), next() % 2);
                    s.delete(victim);
                }
                5 if next() % 20 == 0 => {
                    s.trim(Some(next() % 60), None, next() % 2 == 0, 0);
                }
                6 if next() % 10 == 0 => {
                    cursor = StreamId::new(next() % (id + 1), 0);
                }
                _ => {
                    let count = (next() % 4) as usize;
                    let want = match cursor.incr() {
                        Some(st) => s.range(st, StreamId::MAX, count, false),
                        None => Vec::new(),
                    };
                    let got = s.read_after(cursor, count);
                    assert_eq!(got, want, "step {step}");
                    if let Some((last, _)) = got.last() {
                        cursor = *last;
                    }
                }
            }
        }
    }
}
