//! The Pub/Sub registry: who listens to which channel, shard channel and
//! pattern, and each subscriber's outbound message queue.
//!
//! # Design
//! * Channels (and shard channels) live in [`CHANNEL_SHARDS`] independently
//!   locked maps; patterns in one map. PUBLISH only takes read locks, so
//!   publishers never serialize on each other, and subscribing to one
//!   channel only write-locks that channel's map shard.
//! * A subscribed client owns an [`Outbox`]: a byte buffer of encoded
//!   messages plus a wake-up. Publishing appends to the buffers of the
//!   receivers and never waits on a socket or locks a keyspace shard, so it
//!   is safe to call while shard locks are held (keyspace notifications).
//!   The client's connection task writes the buffer out when woken.
//! * The buffer is bounded by `client-output-buffer-limit pubsub`: bytes
//!   queued plus bytes handed to the socket but not yet written count
//!   against the hard limit (exceeded → disconnect at once) and the soft
//!   limit (exceeded continuously for its seconds → disconnect), so a
//!   subscriber that never reads cannot grow memory without bound.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use foldhash::fast::FixedState;
use hashbrown::{HashMap, HashSet};
use parking_lot::{Mutex, RwLock};

use crate::config::{notify, ClientClass, Config, ObufLimit};
use crate::connection::client::ClientInfo;
use crate::util::glob::glob_match;

/// Independent locks over the channel maps (PUBLISH contention is per shard).
pub const CHANNEL_SHARDS: usize = 16;

/// Global channels (SUBSCRIBE/PUBLISH) or shard channels (SSUBSCRIBE/SPUBLISH).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Global,
    Shard,
}

struct OutboxInner {
    /// Encoded frames not yet taken by the connection task.
    buf: BytesMut,
    /// Bytes taken by the connection task but not yet written to the socket.
    inflight: usize,
    /// When the pending output first exceeded the soft limit.
    soft_since: Option<Instant>,
    /// Over a limit: the client is being disconnected, messages are dropped.
    dead: bool,
    /// The allocation of what was queued while the connection was not
    /// busy writing: in transit until it has written it
    /// ([`PUSHES_IN_TRANSIT`]).
    transit: usize,
}

/// Pushed messages queued for connections that are free to take them at
/// once (not stuck writing earlier ones), summed over all clients. Key
/// eviction leaves them out: Redis writes what a command queued for other
/// clients before it runs the next command, so such messages never count
/// there unless the client cannot take them. Counted here, the
/// invalidations that evicting tracked keys sends would make the next
/// command evict more, and so on until the database is empty.
pub static PUSHES_IN_TRANSIT: AtomicUsize = AtomicUsize::new(0);

/// Bytes of pushed messages in transit (see [`PUSHES_IN_TRANSIT`]).
pub fn pushes_in_transit() -> u64 {
    PUSHES_IN_TRANSIT.load(Ordering::Relaxed) as u64
}

impl OutboxInner {
    /// Frames were queued: in transit (by the queue's allocation, which
    /// grows by doubling) if the connection is not busy writing.
    fn queued(&mut self) {
        let cap = crate::server::memory::usable_size(self.buf.capacity());
        if self.inflight == 0 && cap > self.transit {
            PUSHES_IN_TRANSIT.fetch_add(cap - self.transit, Ordering::Relaxed);
            self.transit = cap;
        }
    }

    /// The connection wrote what it took (or the queue was dropped, or
    /// moved into the client's own replies).
    fn arrived(&mut self) {
        if self.transit != 0 {
            PUSHES_IN_TRANSIT.fetch_sub(self.transit, Ordering::Relaxed);
            self.transit = 0;
        }
    }
}

impl Drop for OutboxInner {
    fn drop(&mut self) {
        self.arrived();
    }
}

/// A subscriber's outbound queue of pushed messages.
pub struct Outbox {
    pub info: Arc<ClientInfo>,
    inner: Mutex<OutboxInner>,
    /// Signalled when frames are queued (the connection task waits on it).
    pub ready: crate::util::signal::Signal,
}

/// Set when a client's queued pushes grew past another
/// [`PUSHED_CHECK_STEP`] bytes: the connection whose command queued them
/// runs the `maxmemory-clients` check after it (see
/// `connection::account_mem`; the cron catches the rest).
pub static PUSHED_GROWTH: AtomicBool = AtomicBool::new(false);
const PUSHED_CHECK_STEP: u64 = 64 * 1024;

impl Outbox {
    pub fn new(info: Arc<ClientInfo>) -> Arc<Self> {
        Arc::new(Outbox {
            info,
            inner: Mutex::new(OutboxInner {
                buf: BytesMut::new(),
                inflight: 0,
                soft_since: None,
                dead: false,
                transit: 0,
            }),
            ready: crate::util::signal::Signal::new(),
        })
    }

    /// Queues one frame (`header` then `body`), enforcing the output buffer
    /// limit; false when the client is over its limit (and being closed).
    fn push(&self, header: &[u8], body: &[u8], limit: ObufLimit) -> bool {
        let mut g = self.inner.lock();
        if g.dead {
            return false;
        }
        let added = header.len() + body.len();
        g.buf.reserve(added);
        g.buf.put_slice(header);
        g.buf.put_slice(body);
        g.queued();
        let pending = (g.buf.len() + g.inflight) as u64;
        if pending / PUSHED_CHECK_STEP != (pending - added as u64) / PUSHED_CHECK_STEP {
            PUSHED_GROWTH.store(true, Ordering::Relaxed);
        }
        let mut over = limit.hard > 0 && pending >= limit.hard;
        if !over && limit.soft > 0 && pending >= limit.soft {
            match g.soft_since {
                None => g.soft_since = Some(Instant::now()),
                Some(t) => over = t.elapsed() > Duration::from_secs(limit.soft_seconds),
            }
        } else if !over {
            g.soft_since = None;
        }
        if over {
            self.close_over_limit(g);
            return false;
        }
        drop(g);
        self.ready.notify();
        true
    }

    /// The periodic check (as Redis's clientsCron): a client whose queue
    /// has stayed above the soft limit for longer than its seconds is
    /// closed even when no new message arrives to notice it. True when it
    /// was closed now.
    pub fn enforce_soft_limit(&self, limit: ObufLimit) -> bool {
        let mut g = self.inner.lock();
        if g.dead || limit.soft == 0 {
            return false;
        }
        let pending = (g.buf.len() + g.inflight) as u64;
        let Some(t) = g.soft_since else {
            return false;
        };
        if pending < limit.soft {
            g.soft_since = None;
            return false;
        }
        if t.elapsed() <= Duration::from_secs(limit.soft_seconds) {
            return false;
        }
        self.close_over_limit(g);
        true
    }

    /// Over a limit: drops the queue, and closes the client.
    fn close_over_limit(&self, mut g: parking_lot::MutexGuard<'_, OutboxInner>) {
        g.dead = true;
        g.buf = BytesMut::new();
        g.arrived();
        drop(g);
        tracing::warn!(
            client = self.info.id,
            "Client scheduled to be closed ASAP for overcoming of output buffer limits."
        );
        self.info.request_kill();
    }

    /// Drops everything queued and refuses more: the client is being
    /// closed (client eviction), and what it held is given back now rather
    /// than when its connection task gets to run (Redis frees an evicted
    /// client at once). Returns the bytes dropped.
    pub fn discard(&self) -> usize {
        let mut g = self.inner.lock();
        g.dead = true;
        g.arrived();
        std::mem::take(&mut g.buf).capacity()
    }

    /// Queues frames for the owning client itself (subscription
    /// confirmations while its replies are switched off: pushes are
    /// delivered regardless of CLIENT REPLY, as in Redis).
    pub fn push_own(&self, frames: &[u8]) {
        let mut g = self.inner.lock();
        if g.dead {
            return;
        }
        g.buf.extend_from_slice(frames);
        g.queued();
        drop(g);
        self.ready.notify();
    }

    /// Queues one pre-encoded frame (a tracking invalidation) under
    /// `limit`; false when the client is over it.
    pub fn push_frame(&self, frame: &[u8], limit: ObufLimit) -> bool {
        self.push(frame, &[], limit)
    }

    /// Takes the queued frames for writing to the socket; they keep counting
    /// against the limit until [`Outbox::written`].
    pub fn take(&self) -> Option<BytesMut> {
        let mut g = self.inner.lock();
        if g.buf.is_empty() {
            return None;
        }
        let b = std::mem::take(&mut g.buf);
        g.inflight += b.len();
        Some(b)
    }

    /// `n` bytes taken with [`Outbox::take`] reached the socket.
    pub fn written(&self, n: usize) {
        let mut g = self.inner.lock();
        g.inflight = g.inflight.saturating_sub(n);
        if g.inflight == 0 {
            g.arrived();
        }
        if g.inflight + g.buf.len() == 0 {
            g.soft_since = None;
        }
    }

    /// Moves the queued frames into `out` (the reply buffer), so that
    /// messages a command caused for its own client precede its reply.
    pub fn drain_into(&self, out: &mut BytesMut) {
        let mut g = self.inner.lock();
        if !g.buf.is_empty() {
            out.extend_from_slice(&g.buf);
            g.buf.clear();
        }
        g.arrived();
    }

    /// Bytes pending (queued + in flight), for CLIENT LIST omem.
    pub fn pending(&self) -> usize {
        let g = self.inner.lock();
        g.buf.len() + g.inflight
    }
}

/// One client's subscriptions (owned by its connection, in `Client`).
#[derive(Default)]
pub struct ClientSubs {
    pub outbox: Option<Arc<Outbox>>,
    pub channels: HashSet<Bytes>,
    pub patterns: Vec<Bytes>,
    pub shard_channels: HashSet<Bytes>,
}

impl ClientSubs {
    /// Channels + patterns (what (P)SUBSCRIBE confirmations count).
    pub fn count(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }

    /// In subscribed mode at all (RESP2 command restrictions apply).
    pub fn active(&self) -> bool {
        self.count() + self.shard_channels.len() > 0
    }

    fn kind_count(&self, kind: Kind) -> usize {
        match kind {
            Kind::Global => self.count(),
            Kind::Shard => self.shard_channels.len(),
        }
    }

    /// The client's queue, created on first use.
    pub fn outbox(&mut self, info: &Arc<ClientInfo>) -> Arc<Outbox> {
        self.outbox
            .get_or_insert_with(|| {
                // Reachable by id (tracking redirection) while it lives.
                info.outbox
                    .lock()
                    .get_or_insert_with(|| Outbox::new(info.clone()))
                    .clone()
            })
            .clone()
    }

    fn publish_counts(&self) {
        if let Some(o) = &self.outbox {
            o.info.sub.store(self.channels.len(), Ordering::Relaxed);
            o.info.psub.store(self.patterns.len(), Ordering::Relaxed);
            o.info
                .ssub
                .store(self.shard_channels.len(), Ordering::Relaxed);
        }
    }
}

type Subscribers = HashMap<u64, Arc<Outbox>>;
type ChannelMap = RwLock<HashMap<Bytes, Subscribers>>;

/// The server-wide registry.
pub struct PubSub {
    hasher: FixedState,
    channels: Vec<ChannelMap>,
    shard_channels: Vec<ChannelMap>,
    patterns: RwLock<HashMap<Bytes, Subscribers>>,
    n_channels: AtomicUsize,
    n_shard_channels: AtomicUsize,
    n_patterns: AtomicUsize,
}

impl Default for PubSub {
    fn default() -> Self {
        PubSub {
            hasher: FixedState::with_seed(rand::random()),
            channels: (0..CHANNEL_SHARDS).map(|_| RwLock::default()).collect(),
            shard_channels: (0..CHANNEL_SHARDS).map(|_| RwLock::default()).collect(),
            patterns: RwLock::default(),
            n_channels: AtomicUsize::new(0),
            n_shard_channels: AtomicUsize::new(0),
            n_patterns: AtomicUsize::new(0),
        }
    }
}

/// Encodes the body of a `message`-style frame (everything after the
/// array/push header): `kind`, then each bulk.
fn frame_body(kind: &[u8], parts: &[&[u8]]) -> BytesMut {
    let mut b = BytesMut::with_capacity(
        16 + kind.len() + parts.iter().map(|p| p.len() + 16).sum::<usize>(),
    );
    for p in std::iter::once(kind).chain(parts.iter().copied()) {
        b.put_u8(b'$');
        b.put_slice(itoa::Buffer::new().format(p.len()).as_bytes());
        b.put_slice(b"\r\n");
        b.put_slice(p);
        b.put_slice(b"\r\n");
    }
    b
}

/// The array (RESP2) or push (RESP3) header for `n` elements.
fn header(resp: u8, n: usize) -> [u8; 4] {
    [
        if resp >= 3 { b'>' } else { b'*' },
        b'0' + n as u8,
        b'\r',
        b'\n',
    ]
}

impl PubSub {
    fn map(&self, kind: Kind, channel: &[u8]) -> &ChannelMap {
        let i = (self.hasher.hash_one(channel) as usize) % CHANNEL_SHARDS;
        match kind {
            Kind::Global => &self.channels[i],
            Kind::Shard => &self.shard_channels[i],
        }
    }

    fn counter(&self, kind: Kind) -> &AtomicUsize {
        match kind {
            Kind::Global => &self.n_channels,
            Kind::Shard => &self.n_shard_channels,
        }
    }

    /// Subscribes; returns the client's subscription count for the reply.
    pub fn subscribe(
        &self,
        subs: &mut ClientSubs,
        info: &Arc<ClientInfo>,
        kind: Kind,
        channel: &Bytes,
    ) -> usize {
        let set = match kind {
            Kind::Global => &mut subs.channels,
            Kind::Shard => &mut subs.shard_channels,
        };
        if !set.contains(channel) {
            let channel = crate::util::detach(channel);
            set.insert(channel.clone());
            let ob = subs.outbox(info);
            let mut m = self.map(kind, &channel).write();
            let e = m.entry(channel).or_insert_with(|| {
                self.counter(kind).fetch_add(1, Ordering::Relaxed);
                HashMap::new()
            });
            e.insert(info.id, ob);
        }
        subs.publish_counts();
        subs.kind_count(kind)
    }

    /// Unsubscribes; returns the new count for the reply.
    pub fn unsubscribe(&self, subs: &mut ClientSubs, id: u64, kind: Kind, channel: &[u8]) -> usize {
        let set = match kind {
            Kind::Global => &mut subs.channels,
            Kind::Shard => &mut subs.shard_channels,
        };
        if set.remove(channel) {
            let mut m = self.map(kind, channel).write();
            if let Some(e) = m.get_mut(channel) {
                e.remove(&id);
                if e.is_empty() {
                    m.remove(channel);
                    self.counter(kind).fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
        subs.publish_counts();
        subs.kind_count(kind)
    }

    /// Pattern subscription; returns the count for the reply.
    pub fn psubscribe(
        &self,
        subs: &mut ClientSubs,
        info: &Arc<ClientInfo>,
        pattern: &Bytes,
    ) -> usize {
        if !subs.patterns.contains(pattern) {
            let pattern = crate::util::detach(pattern);
            subs.patterns.push(pattern.clone());
            let ob = subs.outbox(info);
            let mut m = self.patterns.write();
            let e = m.entry(pattern).or_insert_with(|| {
                self.n_patterns.fetch_add(1, Ordering::Relaxed);
                HashMap::new()
            });
            e.insert(info.id, ob);
        }
        subs.publish_counts();
        subs.count()
    }

    pub fn punsubscribe(&self, subs: &mut ClientSubs, id: u64, pattern: &[u8]) -> usize {
        if let Some(i) = subs.patterns.iter().position(|p| p[..] == *pattern) {
            subs.patterns.remove(i);
            let mut m = self.patterns.write();
            if let Some(e) = m.get_mut(pattern) {
                e.remove(&id);
                if e.is_empty() {
                    m.remove(pattern);
                    self.n_patterns.fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
        subs.publish_counts();
        subs.count()
    }

    /// Drops every subscription of a disconnecting (or RESET) client.
    pub fn remove_client(&self, subs: &mut ClientSubs, id: u64) {
        for c in std::mem::take(&mut subs.channels) {
            subs.channels.insert(c.clone());
            self.unsubscribe(subs, id, Kind::Global, &c);
        }
        for c in std::mem::take(&mut subs.shard_channels) {
            subs.shard_channels.insert(c.clone());
            self.unsubscribe(subs, id, Kind::Shard, &c);
        }
        for p in subs.patterns.clone() {
            self.punsubscribe(subs, id, &p);
        }
        if let Some(ob) = subs.outbox.take() {
            *ob.info.outbox.lock() = None;
        }
    }

    /// Calls `f(client id, is_pattern, channel)` for every subscription of
    /// every client (ACL: finding subscribers whose access was revoked).
    pub fn for_each_subscription(&self, mut f: impl FnMut(u64, bool, &[u8])) {
        for m in self.channels.iter().chain(self.shard_channels.iter()) {
            for (ch, subs) in m.read().iter() {
                for id in subs.keys() {
                    f(*id, false, ch);
                }
            }
        }
        for (p, subs) in self.patterns.read().iter() {
            for id in subs.keys() {
                f(*id, true, p);
            }
        }
    }

    /// Any subscription at all (fast path for keyspace notifications).
    pub fn is_idle(&self) -> bool {
        self.n_channels.load(Ordering::Relaxed) == 0 && self.n_patterns.load(Ordering::Relaxed) == 0
    }

    /// Delivers `msg` to the subscribers of `channel` (and, for global
    /// channels, of matching patterns); returns the number of receivers.
    /// Only appends to their queues: never blocks on a socket.
    pub fn publish(&self, config: &Config, kind: Kind, channel: &[u8], msg: &[u8]) -> usize {
        let limit = config.client_output_buffer_limit(ClientClass::Pubsub);
        let mut receivers = 0;
        {
            let m = self.map(kind, channel).read();
            if let Some(subs) = m.get(channel) {
                let tag: &[u8] = match kind {
                    Kind::Global => b"message",
                    Kind::Shard => b"smessage",
                };
                let body = frame_body(tag, &[channel, msg]);
                for ob in subs.values() {
                    let h = header(ob.info.resp.load(Ordering::Relaxed), 3);
                    ob.push(&h, &body, limit);
                    receivers += 1;
                }
            }
        }
        if kind == Kind::Global && self.n_patterns.load(Ordering::Relaxed) > 0 {
            let m = self.patterns.read();
            for (pat, subs) in m.iter() {
                if !glob_match(pat, channel, false) {
                    continue;
                }
                let body = frame_body(b"pmessage", &[pat, channel, msg]);
                for ob in subs.values() {
                    let h = header(ob.info.resp.load(Ordering::Relaxed), 4);
                    ob.push(&h, &body, limit);
                    receivers += 1;
                }
            }
        }
        receivers
    }

    /// Active channels matching `pattern` (all when None).
    pub fn channels(&self, kind: Kind, pattern: Option<&[u8]>) -> Vec<Bytes> {
        let maps = match kind {
            Kind::Global => &self.channels,
            Kind::Shard => &self.shard_channels,
        };
        let mut out = Vec::new();
        for m in maps {
            for c in m.read().keys() {
                if pattern.is_none_or(|p| glob_match(p, c, false)) {
                    out.push(c.clone());
                }
            }
        }
        out
    }

    /// Subscribers of one channel (patterns excluded).
    pub fn numsub(&self, kind: Kind, channel: &[u8]) -> usize {
        self.map(kind, channel)
            .read()
            .get(channel)
            .map_or(0, |s| s.len())
    }

    /// Distinct patterns subscribed (PUBSUB NUMPAT, INFO pubsub_patterns).
    pub fn numpat(&self) -> usize {
        self.n_patterns.load(Ordering::Relaxed)
    }

    /// Distinct channels with subscribers (INFO pubsub_channels).
    pub fn numchannels(&self, kind: Kind) -> usize {
        self.counter(kind).load(Ordering::Relaxed)
    }

    /// Publishes a keyspace notification (Redis's notifyKeyspaceEvent):
    /// `class` is a `config::notify` bit, `event` Redis's event name.
    pub fn notify_keyspace(&self, config: &Config, db: usize, class: u32, event: &str, key: &[u8]) {
        let flags = config.notify_keyspace_events();
        if flags & class == 0 || self.is_idle() {
            return;
        }
        if flags & notify::KEYSPACE != 0 {
            let mut ch = Vec::with_capacity(20 + key.len());
            ch.extend_from_slice(b"__keyspace@");
            ch.extend_from_slice(itoa::Buffer::new().format(db).as_bytes());
            ch.extend_from_slice(b"__:");
            ch.extend_from_slice(key);
            self.publish(config, Kind::Global, &ch, event.as_bytes());
        }
        if flags & notify::KEYEVENT != 0 {
            let mut ch = Vec::with_capacity(20 + event.len());
            ch.extend_from_slice(b"__keyevent@");
            ch.extend_from_slice(itoa::Buffer::new().format(db).as_bytes());
            ch.extend_from_slice(b"__:");
            ch.extend_from_slice(event.as_bytes());
            self.publish(config, Kind::Global, &ch, key);
        }
    }
}

/// Runs [`Outbox::enforce_soft_limit`] over every client with a queue, each
/// under its class's limit (pub/sub when subscribed, else normal).
pub fn enforce_soft_limits(srv: &crate::server::Server) {
    for entry in srv.clients.iter() {
        let info = entry.value();
        let Some(ob) = info.outbox.lock().clone() else {
            continue;
        };
        ob.enforce_soft_limit(srv.config.client_output_buffer_limit(info.obuf_class()));
    }
}
