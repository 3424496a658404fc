//! The cluster bus, for what Cinnabar needs of it: PUBLISH reaching every
//! node.
//!
//! In Redis Cluster a message published on any node is delivered to the
//! subscribers of every node (the bus carries it), and cluster clients
//! rely on that: ioredis subscribes on a random node, redis-py on the
//! node of the channel's slot, and publishers use whichever node they hold.
//! Cinnabar's topology is static (server/cluster.rs), so the bus carries
//! nothing else: each node listens on its bus port (`cport` in nodes.conf:
//! `cluster-port`, else the node's port + 10000) and keeps one connection
//! to every other node's bus port, over which it sends each PUBLISH as a
//! RESP command. A receiving node delivers it to its own subscribers
//! (channels and patterns) and does not pass it on. PUBLISH still answers
//! how many clients of the node it ran on received the message, as in
//! Redis.
//!
//! A link connects when it first has a message to carry. As on Redis's
//! bus, delivery is best effort: a message for a node whose link is down
//! is dropped (the link is retried after a pause growing to a second), and
//! so is one that would take a link's queue past [`QUEUE_LIMIT`] bytes. With
//! `tls-cluster yes` the links use TLS (the node's certificate both as
//! server and as client, verified against `tls-ca-cert-file`). Like
//! Redis's bus port, the port takes no password: bind it where only the
//! cluster's nodes reach it. A bus port that cannot be bound is logged and
//! the node serves on, trying again every second (until then its
//! subscribers hear only what is published on it).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::server::pubsub::Kind;
use crate::server::Server;

/// Bytes a link may hold queued for a slow or unreachable peer.
const QUEUE_LIMIT: usize = 32 << 20;
/// How long a link waits before connecting again, at first and at most.
const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Inbound bus connections served at once (Redis advises at most 1000
/// nodes per cluster).
const MAX_INBOUND: usize = 1024;

/// The links to the other nodes.
pub struct Bus {
    links: Vec<Link>,
    /// Messages dropped because a link was down or full.
    dropped: AtomicU64,
    /// Messages written to other nodes, and delivered from them.
    sent: AtomicU64,
    received: AtomicU64,
    /// Links other nodes opened to this one: (key, node id, opened at ms).
    inbound: parking_lot::Mutex<Vec<(u64, String, u64)>>,
    next_inbound: AtomicU64,
    /// Inbound connections open (named or not), at most [`MAX_INBOUND`].
    open_inbound: AtomicUsize,
}

struct Link {
    tx: mpsc::UnboundedSender<Bytes>,
    queued: Arc<AtomicUsize>,
    node: String,
    /// When the link connected (Unix ms); 0 while it is down.
    since: Arc<AtomicU64>,
}

/// One link, for CLUSTER LINKS.
pub struct LinkInfo {
    /// "to" (opened by this node) or "from" (by the other node).
    pub direction: &'static str,
    pub node: String,
    pub create_time: u64,
    /// Bytes waiting to be written.
    pub queued: usize,
}

impl Bus {
    /// Sends PUBLISH `channel` `msg` to every other node.
    pub fn publish(&self, channel: &[u8], msg: &[u8]) {
        if self.links.is_empty() {
            return;
        }
        let frame = encode(channel, msg);
        for l in &self.links {
            let len = frame.len();
            if l.queued.fetch_add(len, Ordering::Relaxed) + len > QUEUE_LIMIT
                || l.tx.send(frame.clone()).is_err()
            {
                l.queued.fetch_sub(len, Ordering::Relaxed);
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Messages not sent to some node (its link was down or full).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// PUBLISH messages written to other nodes.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// PUBLISH messages received from other nodes.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// The links up now, outbound first.
    pub fn links(&self) -> Vec<LinkInfo> {
        let mut out: Vec<LinkInfo> = self
            .links
            .iter()
            .filter_map(|l| {
                let since = l.since.load(Ordering::Relaxed);
                (since != 0).then(|| LinkInfo {
                    direction: "to",
                    node: l.node.clone(),
                    create_time: since,
                    queued: l.queued.load(Ordering::Relaxed),
                })
            })
            .collect();
        out.extend(self.inbound.lock().iter().map(|(_, node, since)| LinkInfo {
            direction: "from",
            node: node.clone(),
            create_time: *since,
            queued: 0,
        }));
        out
    }
}

/// Unregisters an inbound link when its connection ends.
struct InboundGuard<'a>(&'a Bus, u64);

impl Drop for InboundGuard<'_> {
    fn drop(&mut self) {
        self.0.inbound.lock().retain(|(k, _, _)| *k != self.1);
    }
}

/// `*3 PUBLISH channel msg` as RESP.
fn encode(channel: &[u8], msg: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(channel.len() + msg.len() + 48);
    b.extend_from_slice(b"*3\r\n$7\r\nPUBLISH\r\n");
    for part in [channel, msg] {
        b.extend_from_slice(b"$");
        b.extend_from_slice(itoa::Buffer::new().format(part.len()).as_bytes());
        b.extend_from_slice(b"\r\n");
        b.extend_from_slice(part);
        b.extend_from_slice(b"\r\n");
    }
    b.freeze()
}

/// The first frame of a link: `NODE <id>`, naming the sender.
fn node_frame(id: &str) -> Bytes {
    let mut b = BytesMut::with_capacity(id.len() + 24);
    b.extend_from_slice(b"*2\r\n$4\r\nNODE\r\n$");
    b.extend_from_slice(itoa::Buffer::new().format(id.len()).as_bytes());
    b.extend_from_slice(b"\r\n");
    b.extend_from_slice(id.as_bytes());
    b.extend_from_slice(b"\r\n");
    b.freeze()
}

/// Starts the bus of a cluster node: its listener on `bind` at the node's
/// bus port, and a link to every other node. Call once the cluster's
/// topology is set.
pub fn start(srv: &Arc<Server>) {
    let Some(cluster) = srv.cluster.get() else {
        return;
    };
    let nodes = cluster.nodes();
    let me = cluster.myself();
    let tls = cluster.tls_cluster() && srv.config.tls_port() != 0;
    let connector = if tls {
        match crate::server::tls::client_config(&srv.config) {
            Ok(c) => Some(tokio_rustls::TlsConnector::from(c)),
            Err(e) => {
                tracing::warn!("cluster bus: no TLS client ({e}); PUBLISH stays on this node");
                return;
            }
        }
    } else {
        None
    };
    let mut links = Vec::new();
    let mut peers = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        if i == me || n.cport == 0 {
            continue;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let since = Arc::new(AtomicU64::new(0));
        let peer = Peer {
            host: n.ip.clone(),
            port: n.cport,
            connector: connector.clone(),
            hello: node_frame(&cluster.my_id()),
            since: since.clone(),
        };
        peers.push((peer, rx, queued.clone()));
        links.push(Link {
            tx,
            queued,
            node: n.id.clone(),
            since,
        });
    }
    let _ = srv.bus.set(Bus {
        links,
        dropped: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        received: AtomicU64::new(0),
        inbound: parking_lot::Mutex::new(Vec::new()),
        next_inbound: AtomicU64::new(0),
        open_inbound: AtomicUsize::new(0),
    });
    match cluster.bus_port(&srv.config) {
        Some(port) => listen(srv, port, tls),
        None => tracing::warn!(
            "cluster bus: the node's port + 10000 is past 65535 (set cluster-port); messages published on other nodes will not reach this node's subscribers"
        ),
    }
    for (peer, rx, queued) in peers {
        tokio::spawn(run_link(srv.clone(), peer, rx, queued));
    }
}

/// Listens on the bus port at every `bind` address. An address whose
/// port is taken (by another process, or by an outgoing connection that
/// happened to get that port) is logged and tried again every second, so
/// the bus comes up once the port is free.
fn listen(srv: &Arc<Server>, port: u16, tls: bool) {
    for b in srv.config.bind() {
        let addr = match crate::server::listener::bind_address(&b, port) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("cluster bus: {e}");
                continue;
            }
        };
        let bind = move || {
            std::net::TcpListener::bind(addr).and_then(|l| {
                l.set_nonblocking(true)?;
                TcpListener::from_std(l)
            })
        };
        match bind() {
            Ok(l) => {
                tokio::spawn(accept_loop(srv.clone(), l, tls));
            }
            Err(e) => {
                tracing::warn!(
                    "cluster bus: cannot listen on {addr} ({e}); trying again every second, and until then messages published on other nodes do not reach this node's subscribers"
                );
                let srv = srv.clone();
                tokio::spawn(async move {
                    let mut shutdown = srv.shutdown_receiver();
                    loop {
                        tokio::select! {
                            _ = tokio::time::sleep(RETRY) => {}
                            _ = shutdown.changed() => return,
                        }
                        if let Ok(l) = bind() {
                            tracing::info!("cluster bus: listening on {addr}");
                            return accept_loop(srv, l, tls).await;
                        }
                    }
                });
            }
        }
    }
}

async fn accept_loop(srv: Arc<Server>, listener: TcpListener, tls: bool) {
    let mut rx = srv.shutdown_receiver();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = rx.changed() => return,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!("cluster bus: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // One link per other node is all a cluster opens; the port takes
        // no password, so strangers cannot hold more than this.
        let Some(bus) = srv.bus.get() else { return };
        if bus.open_inbound.fetch_add(1, Ordering::Relaxed) >= MAX_INBOUND {
            bus.open_inbound.fetch_sub(1, Ordering::Relaxed);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let srv = srv.clone();
        tokio::spawn(async move {
            let _open = OpenGuard(&srv);
            if !tls {
                return receive(&srv, stream).await;
            }
            let Some(cfg) = srv.tls.current() else {
                return;
            };
            let accept = tokio_rustls::TlsAcceptor::from(cfg).accept(stream);
            if let Ok(Ok(s)) = tokio::time::timeout(CONNECT_TIMEOUT, accept).await {
                receive(&srv, s).await;
            }
        });
    }
}

/// Counts an inbound connection until it ends.
struct OpenGuard<'a>(&'a Server);

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        if let Some(bus) = self.0.bus.get() {
            bus.open_inbound.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Delivers the messages another node sends until it disconnects; anything
/// but a well-formed PUBLISH closes the link.
async fn receive<S: AsyncRead + Unpin>(srv: &Server, mut stream: S) {
    let Some(bus) = srv.bus.get() else { return };
    let mut parser = crate::protocol::codec::RequestParser::new();
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut named: Option<InboundGuard<'_>> = None;
    let mut first_read = true;
    loop {
        let limits = crate::protocol::codec::Limits {
            max_bulk_len: srv.config.proto_max_bulk_len(),
            authenticated: true,
        };
        loop {
            match parser.next(&mut buf, limits) {
                Ok(Some(argv)) => match argv.as_slice() {
                    [cmd, channel, msg] if cmd.eq_ignore_ascii_case(b"publish") => {
                        srv.pubsub.publish(&srv.config, Kind::Global, channel, msg);
                        bus.received.fetch_add(1, Ordering::Relaxed);
                    }
                    [cmd, id] if cmd.eq_ignore_ascii_case(b"node") && named.is_none() => {
                        let key = bus.next_inbound.fetch_add(1, Ordering::Relaxed);
                        let id = String::from_utf8_lossy(id).into_owned();
                        let now = crate::commands::dispatch::unix_ms();
                        bus.inbound.lock().push((key, id, now));
                        named = Some(InboundGuard(bus, key));
                    }
                    _ => {
                        tracing::warn!("cluster bus: unexpected message; link closed");
                        return;
                    }
                },
                Ok(None) => break,
                Err(_) => {
                    tracing::warn!("cluster bus: protocol error; link closed");
                    return;
                }
            }
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(16 * 1024);
        }
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        // Links speak RESP arrays from the first byte (not inline
        // commands): anything else, such as a TLS hello sent to a node
        // without `tls-cluster`, is not a node of this cluster.
        if first_read && buf.first().is_some_and(|&b| b != b'*') {
            tracing::warn!("cluster bus: a connection that is not a cluster link; closed");
            return;
        }
        first_read = false;
    }
}

/// Where a link goes.
struct Peer {
    host: String,
    port: u16,
    connector: Option<tokio_rustls::TlsConnector>,
    /// Sent first on every connection ([`node_frame`]).
    hello: Bytes,
    /// The link's [`Link::since`].
    since: Arc<AtomicU64>,
}

/// Keeps the link to one node: connects when there is a message to send,
/// then writes what is queued until the link breaks. While it cannot
/// connect it tries again after a pause that grows from [`RETRY_FIRST`] to
/// [`RETRY`]; messages queued meanwhile are dropped.
async fn run_link(
    srv: Arc<Server>,
    peer: Peer,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
    queued: Arc<AtomicUsize>,
) {
    let mut shutdown = srv.shutdown_receiver();
    let mut pause = RETRY_FIRST;
    let mut failures = 0u32;
    let count_dropped = |n: u64| {
        if let Some(bus) = srv.bus.get() {
            bus.dropped.fetch_add(n, Ordering::Relaxed);
        }
    };
    loop {
        let first = tokio::select! {
            f = rx.recv() => f,
            _ = shutdown.changed() => return,
        };
        let Some(first) = first else { return };
        let link = tokio::select! {
            l = connect(&peer) => l,
            _ = shutdown.changed() => return,
        };
        if link.is_ok() {
            let now = crate::commands::dispatch::unix_ms();
            peer.since.store(now.max(1), Ordering::Relaxed);
        }
        let sent = match link {
            Ok(Conn::Plain(s)) => send(&srv, s, &peer.hello, first, &mut rx, &queued).await,
            Ok(Conn::Tls(s)) => send(&srv, *s, &peer.hello, first, &mut rx, &queued).await,
            Err(e) => {
                queued.fetch_sub(first.len(), Ordering::Relaxed);
                count_dropped(1);
                failures += 1;
                // Nodes of a cluster start together: a few refusals at
                // first are the others still starting.
                if failures == 3 {
                    tracing::warn!(
                        "cluster bus: cannot reach {}:{} ({e}); messages published here do not reach that node until it answers",
                        peer.host,
                        peer.port
                    );
                }
                Sent::Failed
            }
        };
        peer.since.store(0, Ordering::Relaxed);
        match sent {
            Sent::Closed => return,
            Sent::Failed => pause = (pause * 2).min(RETRY),
            Sent::WasUp => {
                if failures >= 3 {
                    tracing::info!("cluster bus: {}:{} reached", peer.host, peer.port);
                }
                failures = 0;
                pause = RETRY_FIRST;
            }
        }
        // Down: what was queued for the link is lost, as on Redis's bus.
        count_dropped(discard(&mut rx, &queued));
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.changed() => return,
        }
        count_dropped(discard(&mut rx, &queued));
    }
}

fn discard(rx: &mut mpsc::UnboundedReceiver<Bytes>, queued: &AtomicUsize) -> u64 {
    let mut n = 0;
    while let Ok(f) = rx.try_recv() {
        queued.fetch_sub(f.len(), Ordering::Relaxed);
        n += 1;
    }
    n
}

enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

async fn connect(peer: &Peer) -> std::io::Result<Conn> {
    let addr = (peer.host.as_str(), peer.port);
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    let _ = tcp.set_nodelay(true);
    let Some(c) = &peer.connector else {
        return Ok(Conn::Plain(tcp));
    };
    let name = crate::server::tls::server_name(&peer.host);
    let tls = tokio::time::timeout(CONNECT_TIMEOUT, c.connect(name, tcp))
        .await
        .map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out")
        })??;
    Ok(Conn::Tls(Box::new(tls)))
}

enum Sent {
    /// The queue closed (the server is going away).
    Closed,
    /// The link could not be used at all.
    Failed,
    /// The link worked, then broke.
    WasUp,
}

/// Writes `hello`, `first` and then the queued messages, several per write when
/// they are waiting, until the link breaks.
async fn send<S: AsyncRead + AsyncWrite + Unpin>(
    srv: &Server,
    stream: S,
    hello: &[u8],
    first: Bytes,
    rx: &mut mpsc::UnboundedReceiver<Bytes>,
    queued: &AtomicUsize,
) -> Sent {
    let mut shutdown = srv.shutdown_receiver();
    // The other node never writes: its side closing (a restart, a
    // rehearsed outage) shows as the read ending, so a link idle at that
    // moment notices before it loses a message to the dead socket.
    let (mut closed, mut stream) = tokio::io::split(stream);
    let mut probe = [0u8; 1];
    let mut out = BytesMut::from(hello);
    let mut next = Some(first);
    loop {
        let first = match next.take() {
            Some(f) => f,
            None => {
                let f = tokio::select! {
                    f = rx.recv() => f,
                    _ = closed.read(&mut probe) => return Sent::WasUp,
                    _ = shutdown.changed() => return Sent::Closed,
                };
                match f {
                    Some(f) => f,
                    None => return Sent::Closed,
                }
            }
        };
        queued.fetch_sub(first.len(), Ordering::Relaxed);
        out.extend_from_slice(&first);
        let mut batch = 1u64;
        while out.len() < 256 * 1024 {
            match rx.try_recv() {
                Ok(f) => {
                    queued.fetch_sub(f.len(), Ordering::Relaxed);
                    out.extend_from_slice(&f);
                    batch += 1;
                }
                Err(_) => break,
            }
        }
        if stream.write_all(&out).await.is_err() || stream.flush().await.is_err() {
            if let Some(bus) = srv.bus.get() {
                bus.dropped.fetch_add(batch, Ordering::Relaxed);
            }
            return Sent::WasUp;
        }
        if let Some(bus) = srv.bus.get() {
            bus.sent.fetch_add(batch, Ordering::Relaxed);
        }
        out.clear();
    }
}
