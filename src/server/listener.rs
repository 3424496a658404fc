//! TCP listeners and the accept loop (maxclients is enforced here).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::server::Server;

/// Binds every address of `bind` on `port` (or an OS-chosen port when the
/// Cinnabar-only `ephemeral-port` is on). Logs each bound address as
/// `Ready to accept connections tcp on ADDR`, which test harnesses read.
pub async fn bind_all(srv: &Arc<Server>) -> std::io::Result<Vec<TcpListener>> {
    let cfg = &srv.config;
    let port = if cfg.ephemeral_port() { 0 } else { cfg.port() };
    if port == 0 && !cfg.ephemeral_port() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let mut binds = cfg.bind();
    if binds.is_empty() {
        binds = vec!["0.0.0.0".to_string()];
    }
    for b in binds {
        let optional = b.starts_with('-');
        let host = match b.trim_start_matches('-') {
            // redis.conf's wildcards: every IPv4 / every IPv6 address.
            "*" => "0.0.0.0",
            "::*" => "::",
            h => h,
        };
        let addr: SocketAddr = match format!("{host}:{port}").parse() {
            Ok(a) => a,
            Err(_) => match format!("[{host}]:{port}").parse() {
                Ok(a) => a,
                Err(_) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("invalid bind address '{host}'"),
                    ))
                }
            },
        };
        match TcpListener::bind(addr).await {
            Ok(l) => {
                let local = l.local_addr()?;
                tracing::info!("Ready to accept connections tcp on {local}");
                srv.bound.lock().push(local);
                out.push(l);
            }
            Err(e) if optional => {
                tracing::warn!("could not bind optional address {addr}: {e}");
            }
            Err(e) => {
                return Err(std::io::Error::new(
                    e.kind(),
                    format!("could not create server TCP listening socket {addr}: {e}"),
                ))
            }
        }
    }
    Ok(out)
}

/// Accepts connections until shutdown.
pub async fn accept_loop(srv: Arc<Server>, listener: TcpListener) {
    let mut rx = srv.shutdown_receiver();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = rx.changed() => return,
        };
        let (mut stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        if srv.clients.len() as u64 >= srv.config.maxclients() {
            srv.stats
                .rejected_connections
                .fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let _ = stream
                    .write_all(b"-ERR max number of clients reached\r\n")
                    .await;
                let _ = stream.shutdown().await;
            });
            continue;
        }
        let local = stream.local_addr().unwrap_or(peer);
        let info = srv.register_client(peer, local);
        let srv2 = srv.clone();
        tokio::spawn(async move {
            crate::connection::serve(srv2, stream, info).await;
        });
    }
}
