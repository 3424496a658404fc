//! Replication, the replica's side: `REPLICAOF host port` (or `replicaof`
//! in the configuration) makes Cinnabar follow a primary, Redis or
//! Cinnabar.
//!
//! One task per primary ([`follow`]) loops: connect, handshake (`PING`,
//! `AUTH` with `masteruser`/`masterauth`, `REPLCONF listening-port`,
//! `ip-address`, `capa psync2`), then `PSYNC <our replid> <our offset+1>`:
//!
//! * `+FULLRESYNC <replid> <offset>`: the snapshot arrives as a bulk
//!   (newlines before it are the primary's keep-alives) and is written to a
//!   temporary file; then, on a blocking thread while clients get
//!   `-LOADING`, the dataset and function libraries are emptied, the file
//!   is loaded and renamed to `dbfilename` (as Redis keeps the last
//!   received snapshot), our replicas are dropped (they must resync from
//!   the new dataset), the backlog restarts at `<offset>` and we take the
//!   primary's replication id.
//! * `+CONTINUE [<replid>]`: the stream continues after our offset (a new
//!   id means the primary was promoted: ours shifts to it, the old one
//!   stays valid up to here).
//!
//! Then the stream: every command runs as the *master client* (flag `M`),
//! which is obeyed without the refusals others meet (READONLY, OOM,
//! MISCONF), sees keys this machine's clock thinks expired (the primary
//! sends the DELs), and whose replies are dropped. `REPLCONF GETACK` is
//! answered with `REPLCONF ACK <offset>`, also sent every second. The
//! primary's bytes go to our own backlog unchanged (see
//! `Feed::emit_proxied`), so our replicas follow the same stream at the
//! same offsets. A link silent for `repl-timeout` is dropped and retried
//! after a second, with a partial resync when the primary's backlog allows.
//!
//! `REPLICAOF NO ONE` ends the task and promotes: a new replication id,
//! the old one kept as `replid2` so the other replicas of our former
//! primary can continue from us partially.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::connection::client::Client;
use crate::protocol::codec::{Limits, RequestParser};
use crate::server::replication::{MasterAddr, MasterLinkState};
use crate::server::Server;

/// Follow `addr` from now on (REPLICAOF host port). Returns false if it
/// already was the primary followed.
pub fn follow(srv: &Arc<Server>, addr: MasterAddr) -> bool {
    let repl = &srv.repl;
    {
        let mut m = repl.master.lock();
        if m.as_ref() == Some(&addr) && repl.is_replica() {
            return false;
        }
        *m = Some(addr.clone());
    }
    let was_master = !repl.is_replica();
    let gen = repl.master_gen.fetch_add(1, Ordering::SeqCst) + 1;
    repl.master_changed.notify_waiters();
    drop_master_client(srv);
    repl.set_replica(true);
    if let Err(e) = srv.apply_oom_class() {
        tracing::warn!("Unable to write oom_score_adj: {e}");
    }
    srv.feed.set_proxy(true);
    repl.link_state
        .store(MasterLinkState::Connect as u8, Ordering::Relaxed);
    if was_master {
        // What we have is where a partial resync would start from.
        repl.applied.store(repl.offset(srv), Ordering::Relaxed);
    }
    repl.link_down_since_ms
        .store(crate::commands::dispatch::unix_ms(), Ordering::Relaxed);
    // Our replicas stay (as Redis 7's): they follow our stream, which a
    // partial resync with the new primary continues. A full resync drops
    // them once its snapshot is about to be installed, and a continued
    // stream under a new id once that id is known.
    tracing::info!(
        "Connecting to MASTER {}:{}; REPLICAOF {}:{} enabled (user request)",
        addr.host,
        addr.port,
        addr.host,
        addr.port
    );
    let srv = srv.clone();
    tokio::spawn(async move { run(srv, addr, gen).await });
    true
}

/// Stop following a primary (REPLICAOF NO ONE): promoted to primary with
/// a new replication id. Returns false if this server was no replica.
pub fn promote(srv: &Server) -> bool {
    let repl = &srv.repl;
    if !repl.is_replica() {
        return false;
    }
    *repl.master.lock() = None;
    repl.master_gen.fetch_add(1, Ordering::SeqCst);
    repl.master_changed.notify_waiters();
    drop_master_client(srv);
    // The new history starts after what we applied (our backlog's end).
    repl.shift_id(crate::server::replication::random_id(), repl.offset(srv));
    repl.set_replica(false);
    if let Err(e) = srv.apply_oom_class() {
        tracing::warn!("Unable to write oom_score_adj: {e}");
    }
    repl.own_keys.lock().clear();
    srv.feed.set_proxy(false);
    repl.link_state
        .store(MasterLinkState::Connect as u8, Ordering::Relaxed);
    repl.link_down_since_ms.store(0, Ordering::Relaxed);
    // They learn the new id on reconnecting (and continue partially).
    repl.disconnect_replicas();
    srv.metrics
        .count(crate::server::metrics::ErrorType::Failover);
    tracing::info!("MASTER MODE enabled (user request)");
    true
}

/// FAILOVER: waits (every 10 ms) until a replica (the named one, or any)
/// acknowledged the whole stream, then follows it with `PSYNC … FAILOVER`;
/// at the deadline aborts, or with FORCE hands over anyway. Ends when the
/// failover is over or aborted.
pub async fn run_failover(srv: Arc<Server>) {
    loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let now = crate::commands::dispatch::unix_ms();
        let target =
            {
                let mut g = srv.repl.failover.lock();
                let Some(f) = g.as_mut() else {
                    return;
                };
                if f.in_progress {
                    return;
                }
                if f.end_ms != 0 && f.end_ms <= now {
                    if f.force {
                        if let Some(t) = f.target.clone() {
                            tracing::info!(
                                "FAILOVER to {}:{} time out exceeded, failing over.",
                                t.host,
                                t.port
                            );
                            f.in_progress = true;
                            Some(t)
                        } else {
                            None
                        }
                    } else {
                        drop(g);
                        abort_failover(&srv, "Replica never caught up before timeout");
                        return;
                    }
                } else {
                    let off = srv.repl.offset(&srv);
                    let synced = |l: &crate::server::replication::Link| {
                        l.state() == crate::server::replication::LinkState::Online
                            && l.ack.load(Ordering::Relaxed) == off
                    };
                    let caught_up =
                        match &f.target {
                            Some(t) => srv
                                .repl
                                .find_link(&t.host, t.port)
                                .filter(|l| synced(l))
                                .map(|_| t.clone()),
                            None => srv.repl.links().into_iter().find(|l| synced(l)).map(|l| {
                                MasterAddr {
                                    host: l.ip.clone(),
                                    port: l.port,
                                }
                            }),
                        };
                    if let Some(t) = &caught_up {
                        tracing::info!(
                            "Failover target {}:{} is synced, failing over.",
                            t.host,
                            t.port
                        );
                        f.target = Some(t.clone());
                        f.in_progress = true;
                    }
                    caught_up
                }
            };
        if let Some(t) = target {
            follow(&srv, t.clone());
            srv.config.set_replicaof(Some((t.host, t.port)));
            return;
        }
    }
}

/// The failover is over (or abandoned): writes resume.
pub fn clear_failover(srv: &Server) {
    if srv.repl.failover.lock().take().is_some() {
        srv.pause.unpause();
    }
}

/// FAILOVER ABORT, a timeout, or a target refusing the hand-over: back
/// to being the primary if this server already followed the target.
pub fn abort_failover(srv: &Server, why: &str) {
    let Some(f) = srv.repl.failover.lock().clone() else {
        return;
    };
    match &f.target {
        Some(t) => tracing::info!("FAILOVER to {}:{} aborted: {why}", t.host, t.port),
        None => tracing::info!("FAILOVER to any replica aborted: {why}"),
    }
    if f.in_progress && promote(srv) {
        srv.config.set_replicaof(None);
    }
    clear_failover(srv);
}

fn drop_master_client(srv: &Server) {
    if let Some(info) = srv.repl.master_client.lock().take() {
        info.request_kill();
    }
}

fn current(srv: &Server, gen: u64) -> bool {
    srv.repl.master_gen.load(Ordering::SeqCst) == gen
}

/// The link task: connect, sync, stream; on failure retry every second
/// until the primary changes.
async fn run(srv: Arc<Server>, addr: MasterAddr, gen: u64) {
    loop {
        let changed = srv.repl.master_changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        if !current(&srv, gen) {
            return;
        }
        tokio::select! {
            r = link(&srv, &addr, gen) => {
                if let Err(e) = r {
                    tracing::warn!("Replication with MASTER {}:{}: {e}", addr.host, addr.port);
                }
            }
            _ = &mut changed => return,
        }
        if !current(&srv, gen) {
            return;
        }
        let was_up = srv.repl.link_state() == MasterLinkState::Connected;
        srv.repl
            .link_state
            .store(MasterLinkState::Connect as u8, Ordering::Relaxed);
        if was_up || srv.repl.link_down_since_ms.load(Ordering::Relaxed) == 0 {
            srv.repl
                .link_down_since_ms
                .store(crate::commands::dispatch::unix_ms(), Ordering::Relaxed);
        }
        drop_master_client(&srv);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = &mut changed => return,
        }
    }
}

/// The link's byte stream: TCP, or TLS over it (`tls-replication yes`).
trait LinkIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> LinkIo for T {}

/// A connection to the primary with a read buffer.
struct Conn {
    sock: Box<dyn LinkIo>,
    buf: BytesMut,
    timeout: Duration,
}

impl Conn {
    async fn send(&mut self, argv: &[&[u8]]) -> Result<(), String> {
        let mut out = Vec::new();
        crate::server::propagate::encode_command(&mut out, argv);
        self.sock
            .write_all(&out)
            .await
            .map_err(|e| format!("write error: {e}"))
    }

    /// Reads more input (at least one byte) within the timeout.
    async fn fill(&mut self) -> Result<(), String> {
        self.buf.reserve(16 * 1024);
        match tokio::time::timeout(self.timeout, self.sock.read_buf(&mut self.buf)).await {
            Err(_) => Err("Timeout connecting to the MASTER...".into()),
            Ok(Ok(0)) => Err("the MASTER closed the connection".into()),
            Ok(Err(e)) => Err(format!("read error: {e}")),
            Ok(Ok(_)) => Ok(()),
        }
    }

    /// One reply line, without its CRLF; empty lines (keep-alives) are
    /// skipped when `skip_empty`.
    async fn line(&mut self, skip_empty: bool) -> Result<String, String> {
        loop {
            if let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
                let raw = self.buf.split_to(nl + 1);
                let text = String::from_utf8_lossy(&raw[..nl]);
                let text = text.trim_end_matches('\r').to_string();
                if text.is_empty() && skip_empty {
                    continue;
                }
                return Ok(text);
            }
            if self.buf.len() > 64 * 1024 {
                return Err("the MASTER's reply line is too long".into());
            }
            self.fill().await?;
        }
    }

    /// Sends a command and reads its one-line reply.
    async fn call(&mut self, argv: &[&[u8]]) -> Result<String, String> {
        self.send(argv).await?;
        self.line(false).await
    }
}

/// Connects to the primary, from `bind-source-addr` when set (as Redis
/// binds its replication link's socket before connecting).
async fn connect_from(addr: &MasterAddr, source: Option<&str>) -> std::io::Result<TcpStream> {
    let Some(source) = source.filter(|s| !s.is_empty()) else {
        return TcpStream::connect((addr.host.as_str(), addr.port)).await;
    };
    let ip: std::net::IpAddr = source.parse().map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("bind-source-addr {source} is not an IP address"),
        )
    })?;
    let mut last = None;
    for target in tokio::net::lookup_host((addr.host.as_str(), addr.port)).await? {
        if target.is_ipv4() != ip.is_ipv4() {
            continue;
        }
        let sock = if ip.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        sock.bind(std::net::SocketAddr::new(ip, 0))?;
        match sock.connect(target).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            format!("no address of the primary matches bind-source-addr {source}"),
        )
    }))
}

/// One connection to the primary, from connecting to the link's end.
async fn link(srv: &Arc<Server>, addr: &MasterAddr, gen: u64) -> Result<(), String> {
    let repl = &srv.repl;
    let timeout = Duration::from_secs(srv.config.repl_timeout().max(1));
    repl.link_state
        .store(MasterLinkState::Connecting as u8, Ordering::Relaxed);
    let source = srv.config.bind_source_addr();
    let sock = tokio::time::timeout(timeout, connect_from(addr, source.as_deref()))
        .await
        .map_err(|_| "Timeout connecting to the MASTER...".to_string())?
        .map_err(|e| format!("Error condition on socket for SYNC: {e}"))?;
    let _ = sock.set_nodelay(true);
    let local = sock.local_addr().ok();
    let peer = sock.peer_addr().ok();
    let sock: Box<dyn LinkIo> = if srv.config.tls_replication() {
        let cc = crate::server::tls::client_config(&srv.config)
            .map_err(|e| format!("TLS replication is misconfigured: {e}"))?;
        let name = crate::server::tls::server_name(&addr.host);
        let tls = tokio::time::timeout(
            timeout,
            tokio_rustls::TlsConnector::from(cc).connect(name, sock),
        )
        .await
        .map_err(|_| "Timeout connecting to the MASTER...".to_string())?
        .map_err(|e| format!("TLS handshake with the MASTER failed: {e}"))?;
        Box::new(tls)
    } else {
        Box::new(sock)
    };
    tracing::info!("MASTER <-> REPLICA sync started");
    repl.link_state
        .store(MasterLinkState::Handshake as u8, Ordering::Relaxed);
    let mut c = Conn {
        sock,
        buf: BytesMut::with_capacity(16 * 1024),
        timeout,
    };
    // PING: an error other than "authentication needed" stops here.
    let r = c.call(&[b"PING"]).await?;
    if r.starts_with('-')
        && !r.starts_with("-NOAUTH")
        && !r.starts_with("-NOPERM")
        && !r.starts_with("-ERR operation not permitted")
    {
        return Err(format!("Error reply to PING from master: '{r}'"));
    }
    if let Some(pass) = srv.config.masterauth() {
        let r = match srv.config.masteruser() {
            Some(user) => c.call(&[b"AUTH", user.as_bytes(), pass.as_bytes()]).await?,
            None => c.call(&[b"AUTH", pass.as_bytes()]).await?,
        };
        if r.starts_with('-') {
            return Err(format!("Unable to AUTH to MASTER: {r}"));
        }
    }
    // The port replicas of ours would be reached on: over TLS when our
    // links use it (as Redis announces `tls-port` then).
    let port = match srv.config.replica_announce_port() {
        0 if srv.config.tls_replication() && srv.config.tls_port() != 0 => srv.config.tls_port(),
        0 => srv.bound.lock().first().map_or_else(
            || srv.config.port().max(srv.config.tls_port()),
            |a| a.port(),
        ),
        p => p,
    };
    let r = c
        .call(&[
            b"REPLCONF",
            b"listening-port",
            itoa::Buffer::new().format(port).as_bytes(),
        ])
        .await?;
    if r.starts_with('-') {
        tracing::info!("(Non critical) Master does not understand REPLCONF listening-port: {r}");
    }
    if let Some(ip) = srv.config.replica_announce_ip() {
        let r = c.call(&[b"REPLCONF", b"ip-address", ip.as_bytes()]).await?;
        if r.starts_with('-') {
            tracing::info!("(Non critical) Master does not understand REPLCONF ip-address: {r}");
        }
    }
    // `eof`: we read a diskless snapshot (`$EOF:<mark>`), which a Redis 7
    // primary sends by default.
    let r = c
        .call(&[b"REPLCONF", b"capa", b"eof", b"capa", b"psync2"])
        .await?;
    if r.starts_with('-') {
        tracing::info!("(Non critical) Master does not understand REPLCONF capa: {r}");
    }
    // PSYNC from what we have (our own history if we were a primary: a
    // primary that was our replica continues us).
    let ids = repl.ids();
    let from = repl.applied.load(Ordering::Relaxed) + 1;
    // A FAILOVER hands over: the target becomes the primary on this PSYNC.
    let handing_over = repl.failover.lock().as_ref().is_some_and(|f| f.in_progress);
    let from_text = itoa::Buffer::new().format(from).to_string();
    let mut psync: Vec<&[u8]> = vec![b"PSYNC", ids.replid.as_bytes(), from_text.as_bytes()];
    if handing_over {
        psync.push(b"FAILOVER");
    }
    let r = c.call(&psync).await;
    let r = match r {
        Ok(r) if r.is_empty() => c.line(true).await?,
        other => other?,
    };
    if !current(srv, gen) {
        return Ok(());
    }
    if handing_over {
        if r.starts_with("+CONTINUE") || r.starts_with("+FULLRESYNC") {
            clear_failover(srv);
        } else {
            abort_failover(srv, "Failover target rejected psync request");
            return Err(format!("Failover target rejected PSYNC FAILOVER: {r}"));
        }
    }
    if let Some(rest) = r.strip_prefix("+FULLRESYNC ") {
        let mut it = rest.split_whitespace();
        let (Some(id), Some(off)) = (it.next(), it.next().and_then(|o| o.parse::<u64>().ok()))
        else {
            return Err(format!("Bad +FULLRESYNC reply from the MASTER: '{r}'"));
        };
        tracing::info!("Full resync from master: {id}:{off}");
        full_sync(srv, &mut c, id.to_string(), off, gen).await?;
    } else if let Some(rest) = r.strip_prefix("+CONTINUE") {
        let new_id = rest.trim();
        tracing::info!("Successful partial resynchronization with master.");
        if !new_id.is_empty() && new_id != ids.replid {
            repl.shift_id(new_id.to_string(), from - 1);
            tracing::info!("Master replication ID changed to {new_id}");
            // Our replicas learn the new id by reconnecting (they
            // continue partially under the old one, as with Redis).
            repl.disconnect_replicas();
        }
    } else if r.starts_with("-NOMASTERLINK") || r.starts_with("-LOADING") {
        return Err(format!(
            "Master is currently unable to PSYNC but should be in the future: {r}"
        ));
    } else {
        return Err(format!("Unexpected reply to PSYNC from master: {r}"));
    }
    if !current(srv, gen) {
        return Ok(());
    }
    stream(srv, c, gen, local, peer).await
}

/// Receives the snapshot into a temporary file and loads it.
async fn full_sync(
    srv: &Arc<Server>,
    c: &mut Conn,
    replid: String,
    off: u64,
    gen: u64,
) -> Result<(), String> {
    let repl = &srv.repl;
    repl.link_state
        .store(MasterLinkState::Transfer as u8, Ordering::Relaxed);
    // `$<len>` (newlines before it keep the link alive while the primary
    // writes its snapshot).
    let head = c.line(true).await?;
    repl.master_last_io_ms
        .store(crate::commands::dispatch::unix_ms(), Ordering::Relaxed);
    if head.starts_with("-") {
        return Err(format!("MASTER aborted replication with an error: {head}"));
    }
    let size = match head.strip_prefix('$') {
        Some(l) if l.starts_with("EOF:") => {
            // Diskless: the end is the 40-byte mark, sent again.
            let mark = &l.as_bytes()[4..];
            if mark.len() != EOF_MARK_LEN {
                return Err(format!("Bad $EOF mark from MASTER: '{head}'"));
            }
            Size::UntilMark(mark.to_vec())
        }
        Some(l) => match l.parse::<u64>() {
            Ok(n) => Size::Len(n),
            Err(_) => return Err(format!("Bad bulk length from MASTER: '{head}'")),
        },
        None => return Err(format!("Bad protocol from MASTER, the first byte is not '$' (we received '{head}'), are you sure the host and port are right?")),
    };
    repl.transfer_size.store(
        match &size {
            Size::Len(n) => *n,
            // Unknown: INFO shows -1, as Redis.
            Size::UntilMark(_) => u64::MAX,
        },
        Ordering::Relaxed,
    );
    repl.transfer_read.store(0, Ordering::Relaxed);
    // `repl-diskless-load swapdb`, and `on-empty-db` with nothing to lose:
    // the snapshot is loaded as it arrives (no file, and a replica slow to
    // load reads slowly, as Redis's parser reading the socket does).
    // Otherwise it is received into a file first and loaded from there.
    let mode = srv.config.repl_diskless_load();
    let streamed = match mode {
        crate::config::ReplDisklessLoad::Swapdb => true,
        crate::config::ReplDisklessLoad::OnEmptyDb => srv.keyspace.total_keys() == 0,
        crate::config::ReplDisklessLoad::Disabled => false,
    };
    // `swapdb`: from here to the swap, clients keep the old dataset, with
    // Redis's states (see `load_aside`).
    let aside = (mode == crate::config::ReplDisklessLoad::Swapdb)
        .then(|| LoadFlag::raise(srv, srv.repl.replid() == replid));
    if streamed {
        let (tx, rx) = tokio::sync::mpsc::channel(STREAMED_CHUNKS);
        let source = Source::Link(LinkReader {
            srv: srv.clone(),
            rx,
            cur: Bytes::new(),
            ended: false,
        });
        let srv2 = srv.clone();
        let loader =
            tokio::task::spawn_blocking(move || load_received(&srv2, source, replid, off, aside));
        let pumped = receive(srv, c, &size, &mut Sink::Loader(tx), gen).await;
        let loaded = loader
            .await
            .map_err(|e| format!("the loading thread failed: {e}"))?;
        return match (pumped, loaded) {
            // The link failed first (the load then failed for want of it).
            (Err(e), _) if e != LOADING_STOPPED => Err(e),
            (_, Err(e)) => Err(e),
            (pumped, Ok(())) => pumped,
        };
    }
    let tmp = std::path::PathBuf::from(format!(
        "temp-{}.{}.rdb",
        crate::commands::dispatch::unix_ms() / 1000,
        std::process::id()
    ));
    let file = match tokio::fs::File::create(&tmp).await {
        Ok(f) => f,
        Err(e) => {
            return Err(format!(
                "Opening the temp file needed for MASTER <-> REPLICA synchronization: {e}"
            ))
        }
    };
    let received = receive(srv, c, &size, &mut Sink::File(file), gen).await;
    if let Err(e) = received {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if !current(srv, gen) {
        let _ = std::fs::remove_file(&tmp);
        return Ok(());
    }
    tracing::info!(
        "MASTER <-> REPLICA sync: received {} bytes of the snapshot",
        repl.transfer_read.load(Ordering::Relaxed)
    );
    let srv2 = srv.clone();
    tokio::task::spawn_blocking(move || load_received(&srv2, Source::File(tmp), replid, off, aside))
        .await
        .map_err(|e| format!("the loading thread failed: {e}"))?
}

/// Chunks of a streamed snapshot in flight between the link and the
/// loading thread (each one read from the socket, 16 KiB or more): the
/// link stops reading when the loader is this far behind.
const STREAMED_CHUNKS: usize = 64;

/// Why the link stopped feeding a loader that is no longer there.
const LOADING_STOPPED: &str = "the loading stopped";

/// What the link hands a loading thread.
enum Piece {
    Data(Bytes),
    /// The snapshot ended as announced (its length, or the EOF mark).
    End,
}

/// Where a received snapshot goes.
enum Sink {
    File(tokio::fs::File),
    Loader(tokio::sync::mpsc::Sender<Piece>),
}

impl Sink {
    async fn put(&mut self, data: Bytes) -> Result<(), String> {
        match self {
            Sink::File(f) => f
                .write_all(&data)
                .await
                .map_err(|e| format!("Write error writing to the DB file: {e}")),
            Sink::Loader(tx) => tx
                .send(Piece::Data(data))
                .await
                .map_err(|_| LOADING_STOPPED.to_string()),
        }
    }

    async fn finish(&mut self) -> Result<(), String> {
        match self {
            Sink::File(f) => f
                .sync_all()
                .await
                .map_err(|e| format!("Failed trying to sync the temp DB to disk: {e}")),
            Sink::Loader(tx) => tx
                .send(Piece::End)
                .await
                .map_err(|_| LOADING_STOPPED.to_string()),
        }
    }
}

/// The snapshot as a loading thread reads it from the link: a link that
/// ends before the snapshot does is a read error, so a load never
/// succeeds on part of a snapshot.
struct LinkReader {
    srv: Arc<Server>,
    rx: tokio::sync::mpsc::Receiver<Piece>,
    cur: Bytes,
    ended: bool,
}

impl LinkReader {
    /// After a load: the snapshot must end where the RDB did.
    fn finish(&mut self) -> Result<(), String> {
        use std::io::BufRead;
        match self.fill_buf() {
            Ok([]) => Ok(()),
            Ok(_) => Err("the MASTER sent more than the RDB it announced".into()),
            Err(e) => Err(e.to_string()),
        }
    }
}

impl std::io::Read for LinkReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        use std::io::BufRead;
        let n = {
            let have = self.fill_buf()?;
            let n = have.len().min(out.len());
            out[..n].copy_from_slice(&have[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl std::io::BufRead for LinkReader {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        while self.cur.is_empty() && !self.ended {
            match self.rx.blocking_recv() {
                Some(Piece::Data(b)) => {
                    self.cur = b;
                    // Loading progress is the link's activity (as Redis's
                    // load callback refreshes the transfer's last I/O).
                    self.srv
                        .repl
                        .master_last_io_ms
                        .store(crate::commands::dispatch::unix_ms(), Ordering::Relaxed);
                }
                Some(Piece::End) => self.ended = true,
                None => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the link to the MASTER ended during the transfer",
                    ))
                }
            }
        }
        Ok(&self.cur)
    }

    fn consume(&mut self, n: usize) {
        self.cur.advance(n.min(self.cur.len()));
    }
}

/// Where a full resync's snapshot is loaded from.
enum Source {
    /// The temporary file it was received into.
    File(std::path::PathBuf),
    /// The link, as the snapshot arrives.
    Link(LinkReader),
}

impl Source {
    /// Loads the snapshot's keys into `ks`.
    fn load_keys(
        &mut self,
        srv: &Server,
        ks: &crate::storage::Keyspace,
    ) -> Result<crate::persistence::rdb::LoadSummary, String> {
        use crate::persistence::snapshot::{self, Dup};
        match self {
            Source::File(p) => snapshot::load_rdb_file_keys(srv, ks, p, Dup::Replace),
            Source::Link(r) => {
                let s = snapshot::load_rdb_stream_keys(
                    srv,
                    ks,
                    &mut *r,
                    std::path::Path::new("from the MASTER's socket"),
                    Dup::Replace,
                )?;
                r.finish()?;
                Ok(s)
            }
        }
    }

    fn remove_file(&self) {
        if let Source::File(p) = self {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Length of the mark that ends a diskless snapshot.
const EOF_MARK_LEN: usize = 40;

/// How the snapshot's end is known.
enum Size {
    /// `$<len>`: that many bytes.
    Len(u64),
    /// `$EOF:<mark>`: the bytes up to the mark.
    UntilMark(Vec<u8>),
}

/// Reads the snapshot off the link into `sink`, up to its announced end.
async fn receive(
    srv: &Server,
    c: &mut Conn,
    size: &Size,
    sink: &mut Sink,
    gen: u64,
) -> Result<(), String> {
    let mut left = match size {
        Size::Len(n) => *n,
        Size::UntilMark(_) => u64::MAX,
    };
    while left > 0 {
        if !current(srv, gen) {
            return Err("the replication was stopped".into());
        }
        if c.buf.is_empty() {
            c.fill().await?;
        }
        let (n, end) = match size {
            Size::Len(_) => ((c.buf.len() as u64).min(left) as usize, false),
            // The mark, once it has arrived whole, ends the snapshot (what
            // follows it is the stream); until then everything but the
            // last 39 bytes (a mark's possible start) is snapshot.
            Size::UntilMark(mark) => match find(&c.buf, mark) {
                Some(at) => (at, true),
                None => (c.buf.len().saturating_sub(EOF_MARK_LEN - 1), false),
            },
        };
        left -= n as u64;
        srv.repl
            .transfer_read
            .fetch_add(n as u64, Ordering::Relaxed);
        srv.stats.repl_input.fetch_add(
            (n + if end { EOF_MARK_LEN } else { 0 }) as u64,
            Ordering::Relaxed,
        );
        srv.repl
            .master_last_io_ms
            .store(crate::commands::dispatch::unix_ms(), Ordering::Relaxed);
        if n > 0 {
            sink.put(c.buf.split_to(n).freeze()).await?;
        }
        if end {
            c.buf.advance(EOF_MARK_LEN);
            break;
        }
        if matches!(size, Size::UntilMark(_)) {
            // What is left is shorter than a mark: read more.
            c.fill().await?;
        }
    }
    sink.finish().await
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Replaces the dataset with the received snapshot (on a blocking thread):
/// emptied then loaded under `-LOADING`, or, with `repl-diskless-load
/// swapdb`, loaded aside and swapped in (see [`load_aside`]).
fn load_received(
    srv: &Arc<Server>,
    mut source: Source,
    replid: String,
    off: u64,
    aside: Option<LoadFlag>,
) -> Result<(), String> {
    use crate::persistence::snapshot;
    let loaded = match aside {
        Some(flag) => load_aside(srv, &mut source, flag),
        None => load_in_place(srv, &mut source),
    };
    let aof = match loaded {
        Ok(aof) => aof,
        Err(e) => {
            source.remove_file();
            return Err(format!(
                "Failed trying to load the MASTER synchronization DB from {}: {e}",
                if matches!(source, Source::File(_)) {
                    "disk"
                } else {
                    "socket"
                }
            ));
        }
    };
    crate::commands::blocking::serve_all_blocked(srv);
    let repl = &srv.repl;
    if let Source::File(tmp) = &source {
        // The received file becomes our RDB (nothing is written for a
        // snapshot loaded from the link, as with Redis).
        let dest = std::path::PathBuf::from(srv.config.dbfilename());
        match std::fs::rename(tmp, &dest) {
            Ok(()) => {
                srv.persist.lastsave.store(
                    crate::commands::dispatch::unix_ms() / 1000,
                    Ordering::Relaxed,
                );
                srv.persist
                    .dirty_at_save
                    .store(srv.stats.dirty.load(Ordering::Relaxed), Ordering::Relaxed);
                if srv.config.rdb_del_sync_files() && snapshot::all_persistence_disabled(srv) {
                    // Redis's text (logs are read by operators' tooling).
                    tracing::info!(
                        "Removing the RDB file obtained from the master. This replica has persistence disabled"
                    );
                    let _ = std::fs::remove_file(&dest);
                }
            }
            Err(e) => {
                tracing::warn!(
                    "Failed trying to rename the temp DB into {}: {e}",
                    dest.display()
                );
                let _ = std::fs::remove_file(tmp);
            }
        }
    }
    // Our replicas resync from the new dataset; the stream restarts at the
    // primary's offset under its id.
    repl.disconnect_replicas();
    srv.feed
        .reset_backlog(off, srv.config.repl_backlog_size() as usize);
    repl.adopt_id(replid);
    repl.applied.store(off, Ordering::Relaxed);
    repl.master_db.store(0, Ordering::Relaxed);
    if aof {
        // The AOF restarts from a rewrite of the new dataset.
        if let Err(e) = snapshot::rewrite_aof(srv, true) {
            tracing::warn!("Failed to restart the AOF after a successful sync: {e}");
        }
    }
    tracing::info!("MASTER <-> REPLICA sync: Finished with success");
    Ok(())
}

/// Empties the dataset and loads the snapshot under `-LOADING` (Redis's
/// disk-based load). A failed load leaves the dataset empty. Returns
/// whether the AOF was on (stopped here, restarted by the caller).
fn load_in_place(srv: &Arc<Server>, source: &mut Source) -> Result<bool, String> {
    use crate::persistence::snapshot;
    // A snapshot of the old dataset would bring it back.
    snapshot::kill_child(srv, None);
    let aof = srv.feed.aof_active();
    if aof {
        snapshot::stop_aof(srv);
    }
    srv.persist.begin_loading();
    tracing::info!("MASTER <-> REPLICA sync: Flushing old data");
    srv.keyspace.clear_all();
    srv.functions.flush();
    srv.tracking.flush(srv, None);
    tracing::info!("MASTER <-> REPLICA sync: Loading DB in memory");
    let r = {
        // Keys already past their deadline stay: the primary's DELs follow.
        let _keep = crate::storage::apply_as_master();
        source
            .load_keys(srv, &srv.keyspace)
            .and_then(|summary| snapshot::load_rdb_functions(srv, &summary, snapshot::Dup::Replace))
    };
    if r.is_err() {
        // Emptied before the flag drops: no client sees part of it.
        srv.keyspace.clear_all();
    }
    srv.persist.loading.store(false, Ordering::SeqCst);
    r.map(|_| aof)
}

/// The state clients see while a `repl-diskless-load swapdb` resync is
/// received and loaded aside (lowered when dropped): `async_loading` when
/// the snapshot is a later point of the history our dataset belongs to
/// (reads go on), `loading` (-LOADING) for a new history, Redis's rule.
struct LoadFlag {
    srv: Arc<Server>,
    same_history: bool,
}

impl LoadFlag {
    fn raise(srv: &Arc<Server>, same_history: bool) -> LoadFlag {
        let f = LoadFlag {
            srv: srv.clone(),
            same_history,
        };
        if same_history {
            f.flag().store(true, Ordering::SeqCst);
        } else {
            // A load like any other: clients wait for its first progress
            // point, then get -LOADING.
            srv.persist.begin_loading();
        }
        f
    }

    fn flag(&self) -> &std::sync::atomic::AtomicBool {
        if self.same_history {
            &self.srv.persist.async_loading
        } else {
            &self.srv.persist.loading
        }
    }
}

impl Drop for LoadFlag {
    fn drop(&mut self) {
        self.flag().store(false, Ordering::SeqCst);
    }
}

/// `repl-diskless-load swapdb`: loads the snapshot into a keyspace of its
/// own while clients keep the old dataset (or wait, per `flag`), then
/// swaps it in with every shard held at once, with the function libraries
/// it carried. A failed load leaves the old dataset in place. Returns
/// whether the AOF was on (it is stopped for the swap and restarted by
/// the caller).
fn load_aside(srv: &Arc<Server>, source: &mut Source, flag: LoadFlag) -> Result<bool, String> {
    use crate::persistence::snapshot;
    tracing::info!("MASTER <-> REPLICA sync: Loading DB in memory (aside, swapdb)");
    let aside = srv.keyspace.empty_like();
    let r = {
        // Keys already past their deadline stay: the primary's DELs follow.
        let _keep = crate::storage::apply_as_master();
        source.load_keys(srv, &aside)
    };
    let summary = match r {
        Ok(s) => s,
        Err(e) => {
            drop(flag);
            tracing::info!("MASTER <-> REPLICA sync: Discarding temporary DB in background");
            discard(aside);
            return Err(e);
        }
    };
    let aof = srv.feed.aof_active();
    if aof {
        snapshot::stop_aof(srv);
    }
    tracing::info!("MASTER <-> REPLICA sync: Swapping active DB with loaded DB");
    // A snapshot walking the old dataset must end first (as Redis kills
    // its child): wait for it, and for any that started meanwhile.
    loop {
        snapshot::kill_child(srv, None);
        // The child's lock is released before the shards are taken
        // (commands holding shards take it: FLUSHALL, BGSAVE).
        let idle = srv.persist.child.lock().is_none();
        if idle && srv.keyspace.swap_data_with(&aside) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    srv.functions.flush();
    let functions = snapshot::load_rdb_functions(srv, &summary, snapshot::Dup::Replace);
    drop(flag);
    srv.tracking.flush(srv, None);
    tracing::info!("MASTER <-> REPLICA sync: Discarding old DB in background");
    discard(aside);
    functions.map(|()| aof)
}

/// Frees a keyspace no client reaches on the lazy-free thread.
fn discard(ks: crate::storage::Keyspace) {
    let keys = ks.total_keys() as u64;
    crate::storage::lazyfree::defer(ks, keys);
}

/// Applies the primary's stream until the link ends.
async fn stream(
    srv: &Arc<Server>,
    mut c: Conn,
    gen: u64,
    local: Option<std::net::SocketAddr>,
    peer: Option<std::net::SocketAddr>,
) -> Result<(), String> {
    let repl = &srv.repl;
    let any: std::net::SocketAddr = ([0, 0, 0, 0], 0).into();
    let info = srv.register_client(peer.unwrap_or(any), local.unwrap_or(any));
    info.master.store(true, Ordering::Relaxed);
    *repl.master_client.lock() = Some(info.clone());
    if !current(srv, gen) {
        srv.unregister_client(&info);
        return Ok(());
    }
    let mut client = Client::new(info.clone(), true);
    client.master = true;
    client.deny_blocking = true;
    // A continued stream does not SELECT again: the database its last
    // SELECT chose carries over from the previous link (a full resync
    // starts in db 0 and SELECTs first).
    client.select(repl.master_db.load(Ordering::Relaxed));
    repl.link_state
        .store(MasterLinkState::Connected as u8, Ordering::Relaxed);
    repl.link_down_since_ms.store(0, Ordering::Relaxed);
    let now = crate::commands::dispatch::unix_ms();
    repl.master_last_io_ms.store(now, Ordering::Relaxed);
    tracing::info!("MASTER <-> REPLICA sync: Master accepted a Partial Resynchronization or finished a full one; streaming.");
    let r = apply_stream(srv, &mut c, &mut client).await;
    crate::commands::transaction::discard_state(srv, &mut client);
    client.master_raw.clear();
    srv.unregister_client(&info);
    r
}

async fn apply_stream(srv: &Arc<Server>, c: &mut Conn, client: &mut Client) -> Result<(), String> {
    let repl = &srv.repl;
    let info = client.info.clone();
    let mut parser = RequestParser::new();
    let limits = Limits {
        max_bulk_len: u64::MAX,
        authenticated: true,
    };
    let mut ack_timer = tokio::time::interval(Duration::from_secs(1));
    ack_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A copy of the input not yet consumed by the parser (`c.buf` is
    // consumed as arguments are cut out of it): the primary's own bytes,
    // for our backlog. `partial`: bytes consumed past the applied offset
    // (a command not yet complete, an open transaction).
    let mut raw_in = BytesMut::from(&c.buf[..]);
    let mut partial: u64 = 0;
    repl.read_upto.store(
        repl.applied.load(Ordering::Relaxed) + raw_in.len() as u64,
        Ordering::Relaxed,
    );
    // A command CLIENT PAUSE holds (as Redis postpones the master client's
    // writes): the stream waits behind it, still read but not applied.
    let mut held: Option<Vec<Bytes>> = None;
    // The buffers were sized for a big argument (see size_stream_buffers).
    let mut grown = false;
    loop {
        // Run every complete command in the buffer.
        loop {
            let argv = match held.take() {
                Some(argv) => argv,
                None => {
                    let had = c.buf.len();
                    let item = parser.next(&mut c.buf, limits);
                    let used = had - c.buf.len();
                    client.master_raw.extend_from_slice(&raw_in.split_to(used));
                    partial += used as u64;
                    match item {
                        Ok(Some(argv)) => argv,
                        Ok(None) => break,
                        Err(e) => return Err(format!("Protocol error from the MASTER: {}", e.0)),
                    }
                }
            };
            if srv.pause.maybe_active()
                && crate::commands::dispatch::must_postpone(srv, client, &argv)
            {
                held = Some(argv);
                break;
            }
            // `partial` counts from the applied offset: it keeps
            // growing through an open transaction.
            let off = repl.applied.load(Ordering::Relaxed) + partial;
            if is_getack(&argv) {
                // Answered with what was applied before it.
                send_ack(c, repl.applied.load(Ordering::Relaxed)).await?;
            } else {
                client.now = crate::commands::dispatch::unix_ms();
                let reply = {
                    let _obey = crate::storage::apply_as_master();
                    crate::commands::dispatch::execute(srv, client, &argv)
                };
                if let crate::protocol::Reply::Error(e) = &reply {
                    srv.stats.unexpected_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        "== CRITICAL == This replica is sending an error to its master: '{}' after processing the command '{}'",
                        e.as_str(),
                        String::from_utf8_lossy(&argv[0])
                    );
                }
            }
            // What did not go to the backlog with a write (see
            // `Feed::emit_proxied`) goes now, unless a transaction
            // is open: it goes whole, at its EXEC. Nor does the
            // applied offset move inside a transaction (as Redis):
            // a link lost before its EXEC resumes from its MULTI.
            if client.multi.is_none() {
                partial = 0;
                if !client.master_raw.is_empty() {
                    srv.feed.proxy(&std::mem::take(&mut client.master_raw));
                }
                repl.applied.store(off, Ordering::Relaxed);
                repl.master_db.store(client.db, Ordering::Relaxed);
            }
        }
        if info.killed.load(Ordering::Relaxed) {
            return Err("the link was killed".into());
        }
        size_stream_buffers(&parser, &mut c.buf, &mut raw_in, &mut grown);
        tokio::select! {
            r = c.sock.read_buf(&mut c.buf) => {
                match r {
                    Ok(0) => return Err("the MASTER closed the connection".into()),
                    Err(e) => return Err(format!("read error: {e}")),
                    Ok(n) => {
                        raw_in.extend_from_slice(&c.buf[c.buf.len() - n..]);
                        repl.read_upto.fetch_add(n as u64, Ordering::Relaxed);
                        srv.stats.repl_input.fetch_add(n as u64, Ordering::Relaxed);
                        let now = crate::commands::dispatch::unix_ms();
                        repl.master_last_io_ms.store(now, Ordering::Relaxed);
                        info.last_interaction.store(now, Ordering::Relaxed);
                    }
                }
            }
            _ = ack_timer.tick() => {
                let last = repl.master_last_io_ms.load(Ordering::Relaxed);
                let timeout = srv.config.repl_timeout() * 1000;
                if crate::commands::dispatch::unix_ms().saturating_sub(last) > timeout {
                    return Err("MASTER timeout: no data nor PING received...".into());
                }
                send_ack(c, repl.applied.load(Ordering::Relaxed)).await?;
            }
            _ = info.kill.wait() => return Err("the link was killed".into()),
            _ = srv.pause.wait_change(crate::commands::dispatch::unix_ms()), if held.is_some() => {}
        }
    }
}

/// Room for the next read of the primary's stream. A big argument gets
/// exactly the room it still needs (`reserve` could double the
/// allocation), and once it is consumed both buffers start small again, as
/// Redis trims a master client's query buffer: an empty `BytesMut` still
/// pins its allocation, and a 32 MB value kept two such allocations alive
/// (the parser's, the copy kept for the backlog) until the next read.
fn size_stream_buffers(
    parser: &RequestParser,
    buf: &mut BytesMut,
    raw_in: &mut BytesMut,
    grown: &mut bool,
) {
    const CHUNK: usize = 16 * 1024;
    let rest = parser.wanted(buf);
    if rest > buf.capacity() - buf.len() {
        let mut b = BytesMut::with_capacity(buf.len() + rest.max(CHUNK));
        b.extend_from_slice(buf);
        *buf = b;
        let mut r = BytesMut::with_capacity(raw_in.len() + rest.max(CHUNK));
        r.extend_from_slice(raw_in);
        *raw_in = r;
        *grown = true;
        return;
    }
    if rest == 0 && *grown && buf.is_empty() && raw_in.is_empty() {
        *buf = BytesMut::with_capacity(CHUNK);
        *raw_in = BytesMut::new();
        *grown = false;
    }
    if buf.capacity() - buf.len() < CHUNK / 4 {
        buf.reserve(CHUNK);
    }
}

fn is_getack(argv: &[Bytes]) -> bool {
    argv.len() >= 2
        && argv[0].eq_ignore_ascii_case(b"replconf")
        && argv[1].eq_ignore_ascii_case(b"getack")
}

async fn send_ack(c: &mut Conn, off: u64) -> Result<(), String> {
    c.send(&[
        b"REPLCONF",
        b"ACK",
        itoa::Buffer::new().format(off).as_bytes(),
    ])
    .await
}

/// A writable replica expires the keys its own clients gave a deadline
/// (the primary knows nothing of them); called by the active expiry
/// cycle while this server is a replica.
pub fn expire_own_keys(srv: &Server, now: u64) {
    let keys: Vec<(usize, Bytes)> = srv.repl.own_keys.lock().iter().cloned().collect();
    if keys.is_empty() {
        return;
    }
    let mut done = Vec::new();
    for (db, key) in keys {
        let Some(d) = srv.keyspace.db(db) else {
            done.push((db, key));
            continue;
        };
        let stays = d
            .shard(srv.keyspace.shard_index(&key))
            .lock()
            .reap_own_key(&key, now)
            .is_some();
        if !stays {
            done.push((db, key));
        }
    }
    let mut own = srv.repl.own_keys.lock();
    for k in done {
        own.remove(&k);
    }
}
