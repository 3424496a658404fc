//! Connection limits through the real server: `timeout` (idle clients
//! closed; subscribers, blocked clients and active clients kept; CONFIG
//! SET), `tcp-keepalive` (SO_KEEPALIVE on the server's sockets, seen in
//! /proc/net/tcp; CONFIG GET/SET), and `client-output-buffer-limit` for
//! normal clients (hard limit: no reply, connection closed, EXEC still
//! runs completely; soft limit: closed when output stays above it while
//! the peer does not read). maxclients is tested in tests/server.rs.

mod common;
use common::diff::Conn;
use common::{resp, TestServer};

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn call(c: &mut Conn, args: &[&str]) -> String {
    let v: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    String::from_utf8_lossy(&c.call(&v).await).into_owned()
}

/// Reads until EOF (true) or `within` passes (false); returns the bytes.
async fn drain(s: &mut TcpStream, within: Duration) -> (usize, bool) {
    let mut n = 0;
    let fut = async {
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(k) => n += k,
            }
        }
    };
    let closed = tokio::time::timeout(within, fut).await.unwrap_or(false);
    (n, closed)
}

#[tokio::test]
async fn idle_clients_are_closed_after_timeout() {
    let srv = TestServer::start_with(&["--timeout", "1"]);
    let mut admin = Conn::connect(srv.addr.port()).await;
    assert_eq!(
        call(&mut admin, &["CONFIG", "GET", "timeout"]).await,
        "*2\r\n$7\r\ntimeout\r\n$1\r\n1\r\n"
    );
    let mut idle = TcpStream::connect(srv.addr).await.expect("idle");
    let mut sub = TcpStream::connect(srv.addr).await.expect("sub");
    sub.write_all(&resp(&[b"SUBSCRIBE", b"ch"]))
        .await
        .expect("w");
    let mut blocked = TcpStream::connect(srv.addr).await.expect("blocked");
    blocked
        .write_all(&resp(&[b"BLPOP", b"nolist", b"0"]))
        .await
        .expect("w");
    let mut active = Conn::connect(srv.addr.port()).await;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(3500) {
        assert_eq!(call(&mut active, &["PING"]).await, "+PONG\r\n");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The idle one was closed (2 s after its last command at the latest
    // plus the once-a-second sweep).
    let (n, closed) = drain(&mut idle, Duration::from_millis(500)).await;
    assert!(closed && n == 0, "idle client should be closed silently");
    // Subscribers and blocked clients are exempt, as in Redis.
    // (the admin connection idled too and is gone: use the active one)
    assert_eq!(
        call(&mut active, &["PUBLISH", "ch", "hi"]).await,
        ":1\r\n",
        "subscriber still connected"
    );
    assert_eq!(call(&mut active, &["RPUSH", "nolist", "x"]).await, ":1\r\n");
    let mut buf = vec![0u8; 256];
    let k = tokio::time::timeout(Duration::from_secs(2), blocked.read(&mut buf))
        .await
        .expect("blocked client served")
        .expect("read");
    assert!(String::from_utf8_lossy(&buf[..k]).contains("nolist"));

    // timeout 0 turns it off at run time.
    assert_eq!(
        call(&mut active, &["CONFIG", "SET", "timeout", "0"]).await,
        "+OK\r\n"
    );
    let mut idle2 = TcpStream::connect(srv.addr).await.expect("idle2");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (_, closed) = drain(&mut idle2, Duration::from_millis(300)).await;
    assert!(!closed, "timeout 0 keeps idle clients");
}

/// The keepalive timer of the server's end of a connection, from
/// /proc/net/tcp: (timer kind, remaining ticks). Kind 2 is keepalive.
fn server_socket_timer(server_port: u16, client_port: u16) -> Option<(u32, u64)> {
    let text = std::fs::read_to_string("/proc/net/tcp").ok()?;
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 6 {
            continue;
        }
        let port = |a: &str| {
            a.rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok())
        };
        if port(f[1]) == Some(server_port) && port(f[2]) == Some(client_port) {
            let (kind, when) = f[5].split_once(':')?;
            return Some((
                u32::from_str_radix(kind, 16).ok()?,
                u64::from_str_radix(when, 16).ok()?,
            ));
        }
    }
    None
}

async fn keepalive_of_new_connection(srv: &TestServer) -> Option<(u32, u64)> {
    let mut c = Conn::connect(srv.addr.port()).await;
    assert_eq!(call(&mut c, &["PING"]).await, "+PONG\r\n");
    // Conn does not expose its socket: find it by a second, raw one.
    let s = TcpStream::connect(srv.addr).await.expect("connect");
    let mut s = s;
    s.write_all(b"PING\r\n").await.expect("w");
    let mut b = [0u8; 7];
    s.read_exact(&mut b).await.expect("r");
    let local = s.local_addr().expect("addr").port();
    server_socket_timer(srv.addr.port(), local)
}

#[tokio::test]
async fn tcp_keepalive_is_applied_to_new_sockets() {
    if !std::path::Path::new("/proc/net/tcp").exists() {
        return;
    }
    let srv = TestServer::start();
    let mut admin = Conn::connect(srv.addr.port()).await;
    assert_eq!(
        call(&mut admin, &["CONFIG", "GET", "tcp-keepalive"]).await,
        "*2\r\n$13\r\ntcp-keepalive\r\n$3\r\n300\r\n"
    );
    // Default 300 s: the keepalive timer runs, due in ~300 s.
    let (kind, when) = keepalive_of_new_connection(&srv).await.expect("socket");
    assert_eq!(kind, 2, "keepalive timer armed");
    let hz = 100; // /proc/net/tcp reports clock ticks (USER_HZ)
    assert!(when > 250 * hz && when <= 300 * hz, "due in {when} ticks");
    // CONFIG SET applies to new connections.
    assert_eq!(
        call(&mut admin, &["CONFIG", "SET", "tcp-keepalive", "60"]).await,
        "+OK\r\n"
    );
    let (kind, when) = keepalive_of_new_connection(&srv).await.expect("socket");
    assert_eq!(kind, 2);
    assert!(when > 50 * hz && when <= 60 * hz, "due in {when} ticks");
    assert_eq!(
        call(&mut admin, &["CONFIG", "SET", "tcp-keepalive", "0"]).await,
        "+OK\r\n"
    );
    let (kind, _) = keepalive_of_new_connection(&srv).await.expect("socket");
    assert_eq!(kind, 0, "no keepalive timer with tcp-keepalive 0");
}

#[tokio::test]
async fn normal_output_buffer_hard_limit_closes_the_client() {
    let srv = TestServer::start();
    let mut admin = Conn::connect(srv.addr.port()).await;
    let big = "A".repeat(200_000);
    assert_eq!(call(&mut admin, &["SET", "bigkey", &big]).await, "+OK\r\n");
    assert_eq!(
        call(
            &mut admin,
            &[
                "CONFIG",
                "SET",
                "client-output-buffer-limit",
                "normal 100000 0 0"
            ]
        )
        .await,
        "+OK\r\n"
    );
    // A single reply over the hard limit: no reply, connection closed.
    let mut c = TcpStream::connect(srv.addr).await.expect("c");
    c.write_all(&resp(&[b"GET", b"bigkey"])).await.expect("w");
    let (n, closed) = drain(&mut c, Duration::from_secs(3)).await;
    assert!(closed, "closed at the hard limit");
    assert_eq!(n, 0, "no part of the reply is sent");
    // Small replies in one pipeline that add up past it.
    assert_eq!(
        call(&mut admin, &["SET", "mid", &"B".repeat(10_000)]).await,
        "+OK\r\n"
    );
    let mut c = TcpStream::connect(srv.addr).await.expect("c");
    let mut pipe = Vec::new();
    for _ in 0..20 {
        pipe.extend_from_slice(&resp(&[b"GET", b"mid"]));
    }
    c.write_all(&pipe).await.expect("w");
    let (n, closed) = drain(&mut c, Duration::from_secs(3)).await;
    assert!(closed && n < 100_000, "pipeline closed ({n} bytes)");
    // A transaction still runs completely before the client is closed.
    let mut c = TcpStream::connect(srv.addr).await.expect("c");
    let mut pipe = resp(&[b"MULTI"]);
    pipe.extend_from_slice(&resp(&[b"SET", b"k1", b"v1"]));
    pipe.extend_from_slice(&resp(&[b"GET", b"bigkey"]));
    pipe.extend_from_slice(&resp(&[b"SET", b"k2", b"v2"]));
    pipe.extend_from_slice(&resp(&[b"EXEC"]));
    c.write_all(&pipe).await.expect("w");
    let (_, closed) = drain(&mut c, Duration::from_secs(3)).await;
    assert!(closed);
    assert_eq!(
        call(&mut admin, &["MGET", "k1", "k2"]).await,
        "*2\r\n$2\r\nv1\r\n$2\r\nv2\r\n"
    );
    // Replies under the limit are unaffected; 0 removes the limit.
    assert_eq!(call(&mut admin, &["STRLEN", "bigkey"]).await, ":200000\r\n");
    assert_eq!(
        call(
            &mut admin,
            &[
                "CONFIG",
                "SET",
                "client-output-buffer-limit",
                "normal 0 0 0"
            ]
        )
        .await,
        "+OK\r\n"
    );
    let r = admin.call(&[b"GET", b"bigkey"]).await;
    assert_eq!(r.len(), 200_000 + "$200000\r\n\r\n".len());
}

#[tokio::test]
async fn normal_output_buffer_soft_limit_closes_a_client_that_does_not_read() {
    let srv = TestServer::start();
    let mut admin = Conn::connect(srv.addr.port()).await;
    let big = "A".repeat(1_000_000);
    assert_eq!(call(&mut admin, &["SET", "bigkey", &big]).await, "+OK\r\n");
    assert_eq!(
        call(
            &mut admin,
            &[
                "CONFIG",
                "SET",
                "client-output-buffer-limit",
                "normal 0 100000 1"
            ]
        )
        .await,
        "+OK\r\n"
    );
    // 40 MB of replies requested; the client reads nothing for 3 s.
    let mut c = TcpStream::connect(srv.addr).await.expect("c");
    let mut pipe = Vec::new();
    for _ in 0..40 {
        pipe.extend_from_slice(&resp(&[b"GET", b"bigkey"]));
    }
    c.write_all(&pipe).await.expect("w");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (n, closed) = drain(&mut c, Duration::from_secs(5)).await;
    assert!(closed, "closed after the soft limit time");
    assert!(n < 40_000_000, "not every reply was sent ({n} bytes)");
    // A client that reads gets everything.
    let mut r = Conn::connect(srv.addr.port()).await;
    for _ in 0..3 {
        assert_eq!(r.call(&[b"GET", b"bigkey"]).await.len(), 1_000_000 + 12);
    }
}

/// CLIENT LIST's qbuf + qbuf-free (the query buffer's capacity) for the
/// client named `name`.
async fn query_buffer_of(c: &mut redis::aio::MultiplexedConnection, name: &str) -> usize {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(c)
        .await
        .unwrap();
    let line = list
        .lines()
        .find(|l| l.contains(&format!(" name={name} ")))
        .unwrap_or_else(|| panic!("no client {name} in {list}"));
    let field = |k: &str| -> usize {
        line.split(' ')
            .find_map(|f| f.strip_prefix(k))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {k} in {line}"))
    };
    field("qbuf=") + field("qbuf-free=")
}

/// As Redis's clientsCronResizeQueryBuffer: a connection holds a 16 KB
/// query buffer while active and gives it up after 2 idle seconds. A big
/// value being received shows in qbuf/qbuf-free; once complete it leaves
/// with the command (the argument is a slice of the buffer), and the
/// connection keeps room for another argument that size, as Redis gives
/// a client a fresh query buffer of bulklen + 2. Smaller commands then
/// let the cron trim that room to their peak, not to nothing.
#[tokio::test]
async fn query_buffers_are_released_when_idle_and_report_big_values_in_flight() {
    let srv = TestServer::start();
    let mut admin = srv.conn().await;
    let mut c = TcpStream::connect(srv.addr).await.unwrap();
    c.write_all(b"CLIENT SETNAME qb\r\n").await.unwrap();
    let mut buf = [0u8; 64];
    let n = c.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"+OK\r\n");
    let active = query_buffer_of(&mut admin, "qb").await;
    assert!((16384..32768).contains(&active), "active buffer {active}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while query_buffer_of(&mut admin, "qb").await != 0 {
        assert!(
            Instant::now() < deadline,
            "the idle buffer was not released"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The released connection still serves, and gets a buffer back.
    c.write_all(b"PING\r\n").await.unwrap();
    let n = c.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"+PONG\r\n");
    assert!(query_buffer_of(&mut admin, "qb").await >= 16384);

    // Half of a 400 KB value: queued, with room made for the rest.
    c.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$400000\r\n")
        .await
        .unwrap();
    c.write_all(&vec![b'A'; 200_000]).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let list: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query_async(&mut admin)
            .await
            .unwrap();
        let line = list
            .lines()
            .find(|l| l.contains(" name=qb "))
            .unwrap()
            .to_string();
        let qbuf: usize = line
            .split(' ')
            .find_map(|f| f.strip_prefix("qbuf="))
            .and_then(|v| v.parse().ok())
            .unwrap();
        if qbuf >= 200_000 {
            assert!(query_buffer_of(&mut admin, "qb").await >= 400_000, "{line}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the partial value never showed: {line}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.write_all(&vec![b'A'; 200_000]).await.unwrap();
    c.write_all(b"\r\n").await.unwrap();
    let n = c.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"+OK\r\n");
    let after = query_buffer_of(&mut admin, "qb").await;
    assert!(after >= 400_002, "buffer after the value: {after}");
    let len: u64 = redis::cmd("STRLEN")
        .arg("x")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(len, 400_000);
    // Small commands, never 2 s idle: the room shrinks, but not to 0.
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        c.write_all(b"PING\r\n").await.unwrap();
        let n = c.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"+PONG\r\n");
        let now = query_buffer_of(&mut admin, "qb").await;
        if now < 32768 {
            assert!(now > 0, "an active client's buffer was released");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the big buffer was never trimmed: {now}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The omem of the client named `name` in CLIENT LIST (None once gone).
async fn omem_of(admin: &mut Conn, name: &str) -> Option<u64> {
    client_field(admin, name, "omem").await.map(|v| v as u64)
}

/// The pub/sub soft limit closes a subscriber that stays above it for its
/// seconds even when no further message arrives (Redis checks in its
/// clients cron), and not before.
#[tokio::test]
async fn pubsub_soft_limit_closes_a_stalled_subscriber_without_new_traffic() {
    let srv = TestServer::start();
    let mut admin = Conn::connect(srv.addr.port()).await;
    assert_eq!(
        call(
            &mut admin,
            &[
                "CONFIG",
                "SET",
                "client-output-buffer-limit",
                "pubsub 0 100000 2"
            ]
        )
        .await,
        "+OK\r\n"
    );
    let mut sub = TcpStream::connect(srv.addr).await.expect("sub");
    sub.write_all(&resp(&[b"CLIENT", b"SETNAME", b"stalled"]))
        .await
        .unwrap();
    sub.write_all(&resp(&[b"SUBSCRIBE", b"ch"])).await.unwrap();
    // Wait for both replies, then never read again.
    let mut got = Vec::new();
    while !got.windows(3).any(|w| w == b":1\r") {
        let mut b = [0u8; 256];
        let n = sub.read(&mut b).await.unwrap();
        assert!(n > 0);
        got.extend_from_slice(&b[..n]);
    }
    let msg = "x".repeat(1000);
    let t0 = Instant::now();
    // Publish until the queue passes the soft limit and stays there with no
    // further traffic (on a loaded machine the queue can pass it only
    // because the writer task is late, then drain into the socket). The
    // first publish of a round resets the soft-limit clock, so the clock
    // starts inside the final round: after `round_start`, no later than
    // `over_seen`.
    let (round_start, over_seen) = loop {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the subscriber's queue never stayed past the soft limit"
        );
        let round_start = Instant::now();
        let over_seen = loop {
            assert!(t0.elapsed() < Duration::from_secs(20));
            call(&mut admin, &["PUBLISH", "ch", &msg]).await;
            match omem_of(&mut admin, "stalled").await {
                Some(m) if m > 100_000 => break Instant::now(),
                Some(_) => {}
                None => panic!("closed before reaching the soft limit"),
            }
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        match omem_of(&mut admin, "stalled").await {
            Some(m) if m > 100_000 => break (round_start, over_seen),
            Some(_) => {}
            None => panic!("closed before the soft limit time"),
        }
    };
    // No more traffic: still connected a little later, closed by 2 s + slack.
    let probe = round_start + Duration::from_millis(1500);
    tokio::time::sleep(probe.saturating_duration_since(Instant::now())).await;
    assert!(
        omem_of(&mut admin, "stalled").await.is_some()
            || round_start.elapsed() >= Duration::from_secs(2),
        "closed too early"
    );
    let deadline = over_seen + Duration::from_millis(3500);
    while omem_of(&mut admin, "stalled").await.is_some() {
        assert!(
            Instant::now() < deadline,
            "still connected after the soft limit time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        round_start.elapsed() >= Duration::from_secs(2),
        "closed before 2 s"
    );
}

/// A reply of many random picks (negative counts) that could only pass the
/// normal hard limit closes the client without a reply, as Redis stops such
/// a command mid-run, instead of building it first; the same command under
/// the limit, on a missing key or on a key of another type answers as usual.
#[tokio::test]
async fn random_picks_past_the_hard_limit_close_the_client_without_building_the_reply() {
    let srv = TestServer::start();
    let mut admin = Conn::connect(srv.addr.port()).await;
    call(&mut admin, &["HSET", "h", "a", "b"]).await;
    call(&mut admin, &["SADD", "s", "a"]).await;
    call(&mut admin, &["ZADD", "z", "1", "a"]).await;
    call(&mut admin, &["SET", "str", "v"]).await;
    assert_eq!(
        call(
            &mut admin,
            &[
                "CONFIG",
                "SET",
                "client-output-buffer-limit",
                "normal 1000000 0 0"
            ]
        )
        .await,
        "+OK\r\n"
    );
    for cmd in [
        &["HRANDFIELD", "h", "-999999999"][..],
        &["SRANDMEMBER", "s", "-999999999"],
        &["ZRANDMEMBER", "z", "-999999999"],
        &["HRANDFIELD", "h", "-999999999", "WITHVALUES"],
    ] {
        let mut c = TcpStream::connect(srv.addr).await.unwrap();
        let args: Vec<&[u8]> = cmd.iter().map(|a| a.as_bytes()).collect();
        c.write_all(&resp(&args)).await.unwrap();
        let t0 = Instant::now();
        let (n, closed) = drain(&mut c, Duration::from_secs(5)).await;
        assert!(closed && n == 0, "{cmd:?}: {n} bytes, closed {closed}");
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "{cmd:?} took {:?}",
            t0.elapsed()
        );
    }
    let mut c = Conn::connect(srv.addr.port()).await;
    assert_eq!(
        call(&mut c, &["SRANDMEMBER", "s", "-3"]).await,
        "*3\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n"
    );
    assert_eq!(
        call(&mut c, &["HRANDFIELD", "missing", "-999999999"]).await,
        "*0\r\n"
    );
    assert!(call(&mut c, &["ZRANDMEMBER", "str", "-999999999"])
        .await
        .starts_with("-WRONGTYPE"));
}

/// One client's field from CLIENT LIST (None when it is not connected).
async fn client_field(admin: &mut Conn, name: &str, field: &str) -> Option<i64> {
    let list = call(admin, &["CLIENT", "LIST"]).await;
    let line = list
        .lines()
        .find(|l| l.contains(&format!(" name={name} ")))?;
    line.split(' ')
        .find_map(|f| f.strip_prefix(field).and_then(|v| v.strip_prefix('=')))
        .and_then(|v| v.parse().ok())
}

/// A connection named `name` (exempt from client eviction with
/// `no_evict`) that sends the first `len` bytes of a `len`-byte argument
/// and nothing more (held in its query buffer).
async fn client_with_pending_bulk(
    srv: &TestServer,
    name: &str,
    len: usize,
    no_evict: bool,
) -> TcpStream {
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let mut setup = resp(&[b"CLIENT", b"SETNAME", name.as_bytes()]);
    if no_evict {
        setup.extend(resp(&[b"CLIENT", b"NO-EVICT", b"on"]));
    }
    s.write_all(&setup).await.unwrap();
    let mut ok = vec![0u8; if no_evict { 10 } else { 5 }];
    s.read_exact(&mut ok).await.unwrap();
    assert!(ok.starts_with(b"+OK\r\n"), "{ok:?}");
    let mut req = format!("*2\r\n$3\r\nGET\r\n${len}\r\n").into_bytes();
    req.resize(req.len() + len, b'v');
    s.write_all(&req).await.unwrap();
    s
}

async fn wait_for_qbuf(admin: &mut Conn, name: &str, at_least: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(q) = client_field(admin, name, "qbuf").await {
            if q >= at_least {
                return client_field(admin, name, "tot-mem").await.unwrap_or(0);
            }
        }
        assert!(
            Instant::now() < deadline,
            "{name} never buffered {at_least} bytes"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn evicted_clients(admin: &mut Conn) -> i64 {
    let info = call(admin, &["INFO", "stats"]).await;
    info.lines()
        .find_map(|l| l.strip_prefix("evicted_clients:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("evicted_clients in INFO stats")
}

/// `maxmemory-clients` (Redis 7's client eviction): CLIENT LIST's tot-mem
/// counts a client's query buffer; lowering the limit closes the largest
/// clients first and only until the total is within it; CLIENT NO-EVICT
/// clients are never chosen; INFO counts the evictions.
#[tokio::test]
async fn maxmemory_clients_evicts_the_largest_clients_first_and_only_until_within() {
    let srv = TestServer::start();
    let mut admin = Conn::connect(srv.addr.port()).await;
    call(&mut admin, &["CLIENT", "SETNAME", "admin"]).await;
    call(&mut admin, &["CLIENT", "NO-EVICT", "on"]).await;
    let mut clients = Vec::new();
    let mut mem = std::collections::HashMap::new();
    // keeper is the largest but exempt.
    for (name, len, no_evict) in [
        ("big0", 600_000, false),
        ("big1", 600_000, false),
        ("small0", 100_000, false),
        ("small1", 100_000, false),
        ("keeper", 900_000, true),
    ] {
        let s = client_with_pending_bulk(&srv, name, len, no_evict).await;
        let tot = wait_for_qbuf(&mut admin, name, len as i64 - 16).await;
        assert!(tot >= len as i64, "{name}: tot-mem {tot} < {len}");
        mem.insert(name, tot);
        clients.push((name, s));
    }
    // Twice, so the admin's reply buffer has the size of this reply.
    call(&mut admin, &["CLIENT", "LIST"]).await;
    let list = call(&mut admin, &["CLIENT", "LIST"]).await;
    let total: i64 = list
        .lines()
        .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("tot-mem=")))
        .filter_map(|v| v.parse::<i64>().ok())
        .sum();
    assert!(total > mem.values().sum::<i64>(), "{total} {mem:?}");
    let info = call(&mut admin, &["INFO", "memory"]).await;
    assert!(info.contains("mem_clients_normal:"), "{info}");

    // Room for all but one big client: exactly one of them goes.
    let limit = total - mem["big0"] + 1000;
    let r = call(
        &mut admin,
        &["CONFIG", "SET", "maxmemory-clients", &limit.to_string()],
    )
    .await;
    assert_eq!(r, "+OK\r\n");
    let mut gone = Vec::new();
    for n in ["big0", "big1", "small0", "small1", "keeper"] {
        if client_field(&mut admin, n, "tot-mem").await.is_none() {
            gone.push(n);
        }
    }
    assert_eq!(gone.len(), 1, "evicted {gone:?}");
    assert!(gone[0].starts_with("big"), "evicted {gone:?}");
    assert_eq!(evicted_clients(&mut admin).await, 1);
    // Its connection is closed.
    let idx = clients.iter().position(|(n, _)| *n == gone[0]).unwrap();
    let (_, mut s) = clients.remove(idx);
    assert!(
        drain(&mut s, Duration::from_secs(5)).await.1,
        "evicted socket stays open"
    );

    // Room for the small ones only: the other big one goes, keeper stays.
    let limit = total - mem["big0"] - mem["big1"] + 1000;
    call(
        &mut admin,
        &["CONFIG", "SET", "maxmemory-clients", &limit.to_string()],
    )
    .await;
    for (n, present) in [
        ("big0", false),
        ("big1", false),
        ("small0", true),
        ("small1", true),
        ("keeper", true),
    ] {
        assert_eq!(
            client_field(&mut admin, n, "tot-mem").await.is_some(),
            present,
            "{n}"
        );
    }
    assert_eq!(evicted_clients(&mut admin).await, 2);
}

/// A client whose next command would take the clients past
/// `maxmemory-clients` (here a percentage of `maxmemory`) is closed before
/// the command runs; with CLIENT NO-EVICT the same command runs; MULTI
/// queues and WATCHed keys count in the client's memory.
#[tokio::test]
async fn a_client_past_maxmemory_clients_is_closed_before_its_command_runs() {
    let srv = TestServer::start_with(&["--maxmemory", "20mb", "--maxmemory-clients", "5%"]);
    let mut admin = Conn::connect(srv.addr.port()).await;
    call(&mut admin, &["CLIENT", "NO-EVICT", "on"]).await;
    // 5% of 20 MB = 1 MB: a 1.5 MB value does not fit.
    let value = vec![b'x'; 1_500_000];
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    // The server may close the connection before the value is all sent
    // (the write then fails): that is the eviction.
    let _ = s.write_all(&resp(&[b"SET", b"big", &value])).await;
    let (n, closed) = drain(&mut s, Duration::from_secs(5)).await;
    assert!(closed && n == 0, "answered {n} bytes, closed {closed}");
    assert_eq!(call(&mut admin, &["EXISTS", "big"]).await, ":0\r\n");
    assert_eq!(evicted_clients(&mut admin).await, 1);
    // The exempt client may.
    let mut exempt = Conn::connect(srv.addr.port()).await;
    call(&mut exempt, &["CLIENT", "NO-EVICT", "on"]).await;
    call(&mut exempt, &["CLIENT", "SETNAME", "exempt"]).await;
    let r = exempt.call(&[b"SET", b"big", &value]).await;
    assert_eq!(r, b"+OK\r\n");
    // It keeps room for another value that size (as Redis does after a
    // fat argument), which counts toward maxmemory-clients: it leaves
    // before the next part.
    let held = client_field(&mut admin, "exempt", "qbuf-free").await;
    assert!(held >= Some(1_500_002), "{held:?}");
    drop(exempt);
    let deadline = Instant::now() + Duration::from_secs(5);
    while client_field(&mut admin, "exempt", "tot-mem")
        .await
        .is_some()
    {
        assert!(Instant::now() < deadline, "the exempt client stayed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Memory of a transaction and of watched keys shows in CLIENT LIST.
    let mut t = Conn::connect(srv.addr.port()).await;
    call(&mut t, &["CLIENT", "SETNAME", "tx"]).await;
    let base = client_field(&mut admin, "tx", "tot-mem").await.unwrap();
    assert_eq!(client_field(&mut admin, "tx", "multi").await, Some(-1));
    let keys: Vec<String> = (0..2000).map(|i| format!("watched-key-{i:06}")).collect();
    let mut watch: Vec<&str> = vec!["WATCH"];
    watch.extend(keys.iter().map(|k| k.as_str()));
    call(&mut t, &watch).await;
    let watched = client_field(&mut admin, "tx", "tot-mem").await.unwrap();
    assert!(watched >= base + 2000 * 17, "{base} -> {watched}");
    call(&mut t, &["MULTI"]).await;
    let arg = "y".repeat(10_000);
    for _ in 0..5 {
        call(&mut t, &["SET", "k", &arg]).await;
    }
    assert_eq!(client_field(&mut admin, "tx", "multi").await, Some(5));
    let mm = client_field(&mut admin, "tx", "multi-mem").await.unwrap();
    assert!(mm >= 50_000, "multi-mem {mm}");
    // 100 more queued SETs of 10 KB would be 1 MB: the client goes.
    let mut closed = false;
    for _ in 0..100 {
        if t.try_call(&[b"SET", b"k", arg.as_bytes()]).await.is_none() {
            closed = true;
            break;
        }
    }
    assert!(closed, "a 1 MB transaction queue was not evicted");
    assert!(client_field(&mut admin, "tx", "tot-mem").await.is_none());
    assert_eq!(evicted_clients(&mut admin).await, 2);
}

/// A command whose arguments arrive but never complete (a multibulk of 250
/// one-kilobyte arguments, one missing) holds them outside the read
/// buffer: CLIENT LIST's tot-mem counts them, so `maxmemory-clients`
/// evicts such a client (Redis counts them as argv-mem).
#[tokio::test]
async fn arguments_of_an_incomplete_command_count_toward_client_eviction() {
    let srv = TestServer::start();
    let mut admin = Conn::connect(srv.addr.port()).await;
    call(&mut admin, &["CLIENT", "NO-EVICT", "on"]).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let mut req = resp(&[b"CLIENT", b"SETNAME", b"partial"]);
    req.extend_from_slice(b"*250\r\n");
    for _ in 0..249 {
        req.extend_from_slice(b"$1000\r\n");
        req.extend(std::iter::repeat_n(b'x', 1000));
        req.extend_from_slice(b"\r\n");
    }
    s.write_all(&req).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let tot = client_field(&mut admin, "partial", "tot-mem").await;
        if tot.is_some_and(|t| t >= 249_000) {
            break;
        }
        assert!(Instant::now() < deadline, "tot-mem stayed {tot:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = call(
        &mut admin,
        &["CONFIG", "SET", "maxmemory-clients", "200000"],
    )
    .await;
    assert_eq!(r, "+OK\r\n");
    assert_eq!(evicted_clients(&mut admin).await, 1);
    // The evicted connection's task ends on its own schedule.
    let deadline = Instant::now() + Duration::from_secs(10);
    while client_field(&mut admin, "partial", "tot-mem")
        .await
        .is_some()
    {
        assert!(Instant::now() < deadline, "the evicted client stayed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        drain(&mut s, Duration::from_secs(5)).await.1,
        "its socket stays open"
    );
}

/// A client may send a whole pipeline before reading any reply (redis-py's
/// and Jedis's pipelines do): the server keeps reading and running its
/// commands while the replies wait in the output buffer, as Redis does,
/// instead of waiting for the client to read (each side would then wait
/// for the other). 60 MB of commands and 55 MB of replies: more than the
/// socket buffers hold either way.
#[tokio::test]
async fn a_pipeline_written_before_any_reply_is_read_completes() {
    let srv = TestServer::start();
    let arg = "x".repeat(100);
    let one = resp(&[b"ECHO", arg.as_bytes()]);
    let n = 500_000;
    let pipe = one.repeat(n);
    let reply_len = n * (arg.len() + "$100\r\n\r\n".len());
    let mut c = TcpStream::connect(srv.addr).await.expect("connect");
    tokio::time::timeout(Duration::from_secs(60), c.write_all(&pipe))
        .await
        .expect("the server stopped reading: the pipeline never got written")
        .expect("write");
    let mut got = 0;
    let mut buf = vec![0u8; 1 << 20];
    let deadline = Instant::now() + Duration::from_secs(60);
    while got < reply_len {
        let left = deadline.saturating_duration_since(Instant::now());
        let k = tokio::time::timeout(left, c.read(&mut buf))
            .await
            .expect("replies stopped")
            .expect("read");
        assert!(k > 0, "closed after {got} of {reply_len} bytes");
        got += k;
    }
    assert_eq!(got, reply_len);
}

/// A client whose replies piled up while it was not reading counts only
/// what it still holds once it has read them all (INFO
/// `mem_clients_normal`, CLIENT LIST `tot-mem`), also when it sends
/// nothing more: the figure is not left at the pipeline's peak.
#[tokio::test]
async fn a_clients_memory_falls_back_once_its_piled_up_replies_are_read() {
    let srv = TestServer::start();
    let mut admin = Conn::connect(srv.addr.port()).await;
    let value = "v".repeat(10_000);
    call(&mut admin, &["SET", "k", &value]).await;
    let mut c = TcpStream::connect(srv.addr).await.expect("connect");
    let mut req = resp(&[b"CLIENT", b"SETNAME", b"piler"]);
    // 2,000 replies of 10 KB: 20 MB the client does not read yet.
    req.extend(resp(&[b"GET", b"k"]).repeat(2_000));
    c.write_all(&req).await.expect("write");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let omem = client_field(&mut admin, "piler", "omem").await.unwrap_or(0);
        if omem > 2_000_000 {
            break;
        }
        assert!(Instant::now() < deadline, "replies never piled up: {omem}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let want = "+OK\r\n".len() + 2_000 * (value.len() + "$10000\r\n\r\n".len());
    let mut got = 0;
    let mut buf = vec![0u8; 1 << 20];
    while got < want {
        let k = tokio::time::timeout(Duration::from_secs(20), c.read(&mut buf))
            .await
            .expect("replies stopped")
            .expect("read");
        assert!(k > 0, "closed after {got} of {want} bytes");
        got += k;
    }
    // Nothing more is sent on `c`; its figure must still come down.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let tot = client_field(&mut admin, "piler", "tot-mem")
            .await
            .unwrap_or(-1);
        let info = call(&mut admin, &["INFO", "memory"]).await;
        let normal: i64 = info
            .lines()
            .find_map(|l| l.strip_prefix("mem_clients_normal:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("mem_clients_normal");
        if (0..1_000_000).contains(&tot) && normal < 1_000_000 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "tot-mem {tot}, mem_clients_normal {normal} after every reply was read: {}",
            call(&mut admin, &["CLIENT", "LIST"]).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(c);
}

async fn used_memory(c: &mut Conn) -> i64 {
    let info = call(c, &["INFO", "memory"]).await;
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no used_memory in {info}"))
}

/// What the server keeps past a command (a stream consumer's pending
/// entries, subscriptions, watched keys, slow-log entries) is its own copy
/// of the argument: command arguments are slices of the connection's read
/// buffer, and a kept slice kept the whole buffer (16 KiB) allocated, so a
/// request-reply client pinned a new buffer with every command: 2,000
/// XREADGROUPs held over 32 MB, 400k of them 6.6 GB, where Redis holds a
/// few hundred kilobytes.
#[tokio::test]
async fn kept_arguments_do_not_pin_the_read_buffer() {
    const N: usize = 2000;
    // Pinning would cost at least N × 16 KiB (32 MB); what is really kept
    // for N small items is well under a megabyte.
    const BOUND: i64 = 8 << 20;
    let srv = TestServer::start();
    let port = srv.addr.port();
    let mut admin = Conn::connect(port).await;
    let mut c = Conn::connect(port).await;
    let check = |what: &'static str, before: i64, after: i64| {
        assert!(
            after - before < BOUND,
            "{what}: used_memory grew by {} bytes for {N} commands",
            after - before
        );
    };

    // Stream consumers: XREADGROUP records each delivery for the consumer,
    // XCLAIM moves it to another.
    for i in 0..N {
        call(&mut c, &["XADD", "s", &format!("{}-1", i + 1), "f", "v"]).await;
    }
    assert_eq!(
        call(&mut c, &["XGROUP", "CREATE", "s", "g", "0"]).await,
        "+OK\r\n"
    );
    let m0 = used_memory(&mut admin).await;
    for _ in 0..N {
        let r = call(
            &mut c,
            &[
                "XREADGROUP",
                "GROUP",
                "g",
                "c1",
                "COUNT",
                "1",
                "STREAMS",
                "s",
                ">",
            ],
        )
        .await;
        assert!(r.starts_with("*1\r\n"), "{r}");
    }
    let m1 = used_memory(&mut admin).await;
    check("XREADGROUP", m0, m1);
    for i in 0..N {
        let r = call(
            &mut c,
            &[
                "XCLAIM",
                "s",
                "g",
                "c2",
                "0",
                &format!("{}-1", i + 1),
                "JUSTID",
            ],
        )
        .await;
        assert!(r.starts_with("*1\r\n"), "{r}");
    }
    let m2 = used_memory(&mut admin).await;
    // (from before the reads: each claim swapped one pinned buffer for
    // another, so the claims alone did not grow)
    check("XREADGROUP then XCLAIM", m0, m2);
    let pending = call(&mut c, &["XPENDING", "s", "g"]).await;
    assert!(pending.contains("$2\r\nc2\r\n$4\r\n2000\r\n"), "{pending}");

    // Watched keys.
    call(&mut c, &["MULTI"]).await;
    call(&mut c, &["DISCARD"]).await;
    for i in 0..N {
        assert_eq!(call(&mut c, &["WATCH", &format!("w:{i}")]).await, "+OK\r\n");
    }
    let m3 = used_memory(&mut admin).await;
    check("WATCH", m2, m3);
    call(&mut c, &["UNWATCH"]).await;

    // Slow-log entries (every command logged, room for all of them).
    call(
        &mut admin,
        &["CONFIG", "SET", "slowlog-max-len", &N.to_string()],
    )
    .await;
    call(
        &mut admin,
        &["CONFIG", "SET", "slowlog-log-slower-than", "0"],
    )
    .await;
    let m4 = used_memory(&mut admin).await;
    for i in 0..N {
        call(&mut c, &["EXISTS", &format!("x:{i}")]).await;
    }
    let m5 = used_memory(&mut admin).await;
    call(
        &mut admin,
        &["CONFIG", "SET", "slowlog-log-slower-than", "10000"],
    )
    .await;
    assert!(call(&mut admin, &["SLOWLOG", "LEN"])
        .await
        .starts_with(":2000"));
    check("slow log", m4, m5);
    call(&mut admin, &["SLOWLOG", "RESET"]).await;

    // Subscriptions, to channels and patterns.
    let mut sub = Conn::connect(port).await;
    let m6 = used_memory(&mut admin).await;
    for i in 0..N {
        let r = call(&mut sub, &["SUBSCRIBE", &format!("ch:{i}")]).await;
        assert!(r.ends_with(&format!(":{}\r\n", i + 1)), "{r}");
    }
    for i in 0..N {
        let r = call(&mut sub, &["PSUBSCRIBE", &format!("p:{i}:*")]).await;
        assert!(r.ends_with(&format!(":{}\r\n", N + i + 1)), "{r}");
    }
    let m7 = used_memory(&mut admin).await;
    check("SUBSCRIBE and PSUBSCRIBE", m6, m7);
    assert_eq!(call(&mut admin, &["PUBLISH", "ch:7", "x"]).await, ":1\r\n");
    assert_eq!(call(&mut admin, &["PUBLISH", "p:9:y", "x"]).await, ":1\r\n");
}
