//! TCP listeners and the accept loops (maxclients is enforced here): plain
//! connections on `port`, TLS connections on `tls-port`.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::server::Server;

/// How long a TLS client may take to finish its handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a listener accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Plain RESP on `port`.
    Tcp,
    /// RESP inside TLS on `tls-port`.
    Tls,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Tcp => "tcp",
            Kind::Tls => "tls",
        }
    }
}

/// Binds every address of `bind` on `port` (plain) and on `tls-port` (TLS).
/// A port of 0 turns that listener off; the Cinnabar-only `ephemeral-port`
/// replaces every non-zero port with an OS-chosen one. `server::run` logs
/// each bound address as `Ready to accept connections tcp on ADDR` (or `tls
/// on ADDR`) once the dataset is loaded; test harnesses read that line.
pub fn bind_all(srv: &Arc<Server>) -> std::io::Result<Vec<(Kind, TcpListener)>> {
    let mut out = Vec::new();
    for kind in [Kind::Tcp, Kind::Tls] {
        for l in bind_kind(srv, kind, true)? {
            out.push((kind, TcpListener::from_std(l)?));
        }
    }
    Ok(out)
}

/// The configured port of `kind` (0: off; `ephemeral-port`: OS-chosen at
/// startup; a port set later with CONFIG SET is taken as given).
fn port_of(srv: &Server, kind: Kind, startup: bool) -> Option<u16> {
    let port = match kind {
        Kind::Tcp => srv.config.port(),
        Kind::Tls => srv.config.tls_port(),
    };
    match port {
        0 => None,
        _ if startup && srv.config.ephemeral_port() => Some(0),
        p => Some(p),
    }
}

/// Binds every address of `bind` for `kind` (none when its port is 0).
/// Plain std sockets, non-blocking, so CONFIG SET can bind synchronously
/// and report a failure before anything changes.
fn bind_kind(
    srv: &Server,
    kind: Kind,
    startup: bool,
) -> std::io::Result<Vec<std::net::TcpListener>> {
    let Some(port) = port_of(srv, kind, startup) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    // As Redis 7, `bind ""` listens on no address (unix socket only).
    for b in srv.config.bind() {
        let optional = b.starts_with('-');
        let addr = bind_address(&b, port)?;
        match std::net::TcpListener::bind(addr).and_then(|l| {
            l.set_nonblocking(true)?;
            set_backlog(&l, srv.config.tcp_backlog());
            Ok(l)
        }) {
            Ok(l) => out.push(l),
            Err(e) if optional => {
                tracing::warn!("could not bind optional address {addr}: {e}");
            }
            Err(e) => {
                let what = if kind == Kind::Tls { "TLS " } else { "" };
                // Redis's last words too ("Failed listening on port"), which
                // test harnesses read to retry on another port.
                return Err(std::io::Error::new(
                    e.kind(),
                    format!(
                        "could not create server {what}TCP listening socket {addr}: {e}; Failed listening on port {} ({}), aborting.",
                        addr.port(),
                        if kind == Kind::Tls { "tls" } else { "tcp" }
                    ),
                ));
            }
        }
    }
    Ok(out)
}

/// The socket address of one `bind` entry at `port`: a leading `-`
/// (optional address) is dropped, and redis.conf's wildcards `*` and `::*`
/// mean every IPv4 / every IPv6 address.
pub fn bind_address(entry: &str, port: u16) -> std::io::Result<SocketAddr> {
    let host = match entry.trim_start_matches('-') {
        "*" => "0.0.0.0",
        "::*" => "::",
        h => h,
    };
    format!("{host}:{port}")
        .parse()
        .or_else(|_| format!("[{host}]:{port}").parse())
        .map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("invalid bind address '{host}'"),
            )
        })
}

/// Applies `tcp-backlog` to a listening socket (std listens with its own
/// fixed backlog; listening again on Linux just changes it). The kernel
/// caps it at net.core.somaxconn, which is logged once, as Redis does.
fn set_backlog(l: &std::net::TcpListener, backlog: u32) {
    use std::os::fd::AsRawFd;
    let backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
    // SAFETY: listen(2) on a socket this listener owns.
    if unsafe { libc::listen(l.as_raw_fd(), backlog) } != 0 {
        tracing::warn!(
            "tcp-backlog {backlog}: listen failed: {}",
            std::io::Error::last_os_error()
        );
    }
    static WARNED: std::sync::Once = std::sync::Once::new();
    if let Some(max) = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .filter(|&max| max < backlog)
    {
        WARNED.call_once(|| {
            tracing::warn!(
                "WARNING: The TCP backlog setting of {backlog} cannot be enforced because /proc/sys/net/core/somaxconn is set to the lower value of {max}."
            )
        });
    }
}

/// A running accept loop, as CONFIG SET of `port`/`tls-port`/`bind`
/// needs it: the task to stop, and a duplicate of its listening socket so
/// the socket stops accepting before CONFIG SET answers (aborting the
/// task alone drops the listener later, on the runtime's schedule, and a
/// client could still connect to the old address meanwhile).
pub struct AcceptLoop {
    kind: Kind,
    task: tokio::task::AbortHandle,
    socket: Option<std::os::fd::OwnedFd>,
}

impl AcceptLoop {
    /// Stops the loop and closes its socket for new connections now
    /// (shutdown(2) acts on the socket, not on this duplicate descriptor;
    /// connections already accepted are unaffected).
    fn stop(self) {
        self.task.abort();
        if let Some(fd) = self.socket {
            use std::os::fd::AsRawFd;
            // SAFETY: shutdown(2) on a descriptor this value owns.
            unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_RDWR) };
        }
    }
}

/// Starts the accept loops of `listeners`, remembering them so a later
/// CONFIG SET of `port`/`tls-port`/`bind` can replace them.
pub fn start(srv: &Arc<Server>, listeners: Vec<(Kind, TcpListener)>) {
    use std::os::fd::AsFd;
    let mut tasks = srv.accept_tasks.lock();
    for (kind, l) in listeners {
        if let Ok(local) = l.local_addr() {
            if kind == Kind::Tcp {
                srv.bound.lock().push(local);
            }
        }
        let socket = l.as_fd().try_clone_to_owned().ok();
        let task = tokio::spawn(accept_loop(srv.clone(), kind, l));
        tasks.push(AcceptLoop {
            kind,
            task: task.abort_handle(),
            socket,
        });
    }
}

/// CONFIG SET of `port`, `tls-port` or `bind`: binds the new sockets of
/// `kinds` first (an error changes nothing and is returned), then stops
/// the old accept loops (closing their sockets; connected clients stay)
/// and starts new ones, as Redis's changeListenPort does.
pub fn rebind(srv: &Arc<Server>, kinds: &[Kind]) -> std::io::Result<()> {
    let mut fresh = Vec::new();
    for &kind in kinds {
        for l in bind_kind(srv, kind, false)? {
            fresh.push((kind, l));
        }
    }
    let mut converted = Vec::with_capacity(fresh.len());
    for (kind, l) in fresh {
        converted.push((kind, TcpListener::from_std(l)?));
    }
    {
        let mut tasks = srv.accept_tasks.lock();
        let (stop, keep): (Vec<_>, Vec<_>) = tasks.drain(..).partition(|a| kinds.contains(&a.kind));
        *tasks = keep;
        stop.into_iter().for_each(AcceptLoop::stop);
        if kinds.contains(&Kind::Tcp) {
            srv.bound.lock().clear();
        }
    }
    start(srv, converted);
    Ok(())
}

/// A committed shutdown: every TCP/TLS listening socket stops accepting
/// now, as Redis closes its listeners before exiting, so a client that saw
/// its connection close cannot reach a server that is still going away.
pub fn stop_all(srv: &Server) {
    let stop: Vec<AcceptLoop> = srv.accept_tasks.lock().drain(..).collect();
    stop.into_iter().for_each(AcceptLoop::stop);
}

/// Accepts connections until shutdown.
pub async fn accept_loop(srv: Arc<Server>, kind: Kind, listener: TcpListener) {
    let mut rx = srv.shutdown_receiver();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = rx.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if srv.rehearsal.turning_away() {
            // A rehearsed failover or reboot: the node is not there.
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        crate::server::limits::set_keepalive(&stream, srv.config.tcp_keepalive());
        let srv2 = srv.clone();
        match kind {
            Kind::Tcp => start_client(srv2, stream, peer),
            Kind::Tls => {
                let Some(tls_cfg) = srv.tls.current() else {
                    continue;
                };
                tokio::spawn(async move {
                    let local = stream.local_addr().unwrap_or(peer);
                    let acceptor = tokio_rustls::TlsAcceptor::from(tls_cfg);
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    {
                        Ok(Ok(tls)) => serve_or_reject(srv2, tls, peer, local).await,
                        Ok(Err(e)) => {
                            tracing::debug!(
                                "Error accepting a client connection: {e} (addr={peer})"
                            )
                        }
                        Err(_) => tracing::debug!("TLS handshake timed out (addr={peer})"),
                    }
                });
            }
        }
    }
}

/// Serves a plain connection in its own task.
fn start_client(srv: Arc<Server>, stream: TcpStream, peer: SocketAddr) {
    let local = stream.local_addr().unwrap_or(peer);
    tokio::spawn(serve_or_reject(srv, stream, peer, local));
}

/// Listens on `unixsocket` when it is set (a stale socket file left by an
/// earlier run is removed first, as Redis does), with `unixsocketperm`
/// applied when non-zero. Returns the path, to remove at shutdown.
pub fn start_unix(srv: &Arc<Server>) -> std::io::Result<Option<String>> {
    let Some(path) = srv.config.unixsocket().filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path).map_err(|e| {
        std::io::Error::new(e.kind(), format!("Failed opening Unix socket {path}: {e}"))
    })?;
    let perm = srv.config.unixsocketperm();
    if perm != 0 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(perm))?;
    }
    let srv2 = srv.clone();
    let path2 = path.clone();
    // Stops at shutdown; `unixsocket` cannot change at run time.
    tokio::spawn(async move {
        let mut rx = srv2.shutdown_receiver();
        loop {
            let accepted = tokio::select! {
                r = listener.accept() => r,
                _ = rx.changed() => return,
            };
            match accepted {
                Ok((stream, _)) => {
                    let srv3 = srv2.clone();
                    let path3 = path2.clone();
                    tokio::spawn(async move {
                        if let Some(stream) = admit(&srv3, stream, true).await {
                            let info = srv3.register_unix_client(&path3);
                            crate::connection::serve(srv3, stream, info).await;
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!("accept on the unix socket failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    });
    Ok(Some(path))
}

/// Refuses the client when `maxclients` is reached, else serves it.
async fn serve_or_reject<S>(srv: Arc<Server>, stream: S, peer: SocketAddr, local: SocketAddr)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let loopback = peer.ip().is_loopback() || peer.ip().to_canonical().is_loopback();
    if let Some(stream) = admit(&srv, stream, loopback).await {
        let info = srv.register_client(peer, local);
        crate::connection::serve(srv, stream, info).await;
    }
}

/// The checks before a connection is served: `maxclients`, and protected
/// mode (Redis 7.0: no password for the default user means only loopback
/// and unix-socket clients are served; others get the explanation). A
/// refused client gets its error and the stream is closed (`None`).
async fn admit<S>(srv: &Server, mut stream: S, local: bool) -> Option<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let refusal: &[u8] = if srv.clients.len() as u64 >= srv.config.maxclients() {
        b"-ERR max number of clients reached\r\n"
    } else if crate::acl::protected_mode_denies(
        srv.config.protected_mode(),
        srv.acl.default_nopass(),
        local,
    ) {
        crate::acl::PROTECTED_MODE_ERROR.as_bytes()
    } else {
        return Some(stream);
    };
    srv.stats
        .rejected_connections
        .fetch_add(1, Ordering::Relaxed);
    let _ = stream.write_all(refusal).await;
    let _ = stream.shutdown().await;
    None
}
