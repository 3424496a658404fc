//! AZURE MAINTENANCE / REBOOT / STATUS: rehearsing Azure's maintenance
//! notices, failovers and reboots through the real server.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{resp, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A raw connection that reads whole RESP2 replies (enough of RESP for
/// the replies these tests meet: simple strings, errors, integers, bulk
/// strings and arrays of them).
struct Conn {
    s: TcpStream,
    buf: Vec<u8>,
}

#[derive(Debug, PartialEq)]
enum V {
    Str(String),
    Int(i64),
    Err(String),
    Arr(Vec<V>),
    Nil,
}

impl V {
    fn text(&self) -> &str {
        match self {
            V::Str(s) | V::Err(s) => s,
            other => panic!("not a string: {other:?}"),
        }
    }
}

fn parse(b: &[u8]) -> Option<(V, usize)> {
    let end = b.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&b[1..end]).ok()?;
    let rest = end + 2;
    match b.first()? {
        b'+' => Some((V::Str(line.into()), rest)),
        b'-' => Some((V::Err(line.into()), rest)),
        b':' => Some((V::Int(line.parse().ok()?), rest)),
        b'$' => {
            let n: i64 = line.parse().ok()?;
            if n < 0 {
                return Some((V::Nil, rest));
            }
            let n = n as usize;
            if b.len() < rest + n + 2 {
                return None;
            }
            let s = String::from_utf8_lossy(&b[rest..rest + n]).into_owned();
            Some((V::Str(s), rest + n + 2))
        }
        b'*' => {
            let n: i64 = line.parse().ok()?;
            let mut at = rest;
            let mut items = Vec::new();
            for _ in 0..n.max(0) {
                let (v, used) = parse(&b[at..])?;
                items.push(v);
                at += used;
            }
            Some((V::Arr(items), at))
        }
        _ => panic!("unexpected reply byte in {:?}", String::from_utf8_lossy(b)),
    }
}

impl Conn {
    async fn connect(addr: SocketAddr) -> Conn {
        Conn {
            s: TcpStream::connect(addr).await.expect("connect"),
            buf: Vec::new(),
        }
    }

    /// The next reply, or `None` if the server closed the connection (or
    /// nothing came within `wait`).
    async fn next(&mut self, wait: Duration) -> Option<V> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some((v, used)) = parse(&self.buf) {
                self.buf.drain(..used);
                return Some(v);
            }
            let mut tmp = [0u8; 4096];
            match tokio::time::timeout_at(deadline, self.s.read(&mut tmp)).await {
                Ok(Ok(n)) if n > 0 => self.buf.extend_from_slice(&tmp[..n]),
                _ => return None,
            }
        }
    }

    async fn call(&mut self, args: &[&str]) -> Option<V> {
        let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        self.s.write_all(&resp(&a)).await.ok()?;
        self.next(Duration::from_secs(5)).await
    }
}

/// A subscriber to AzureRedisEvents.
async fn subscriber(addr: SocketAddr) -> Conn {
    let mut c = Conn::connect(addr).await;
    let confirm = c.call(&["SUBSCRIBE", "AzureRedisEvents"]).await;
    assert_eq!(
        confirm,
        Some(V::Arr(vec![
            V::Str("subscribe".into()),
            V::Str("AzureRedisEvents".into()),
            V::Int(1)
        ]))
    );
    c
}

/// The next notice as its key|value pairs, in order, or `None` when the
/// connection closed.
async fn notice(c: &mut Conn) -> Option<Vec<(String, String)>> {
    let V::Arr(m) = c.next(Duration::from_secs(10)).await? else {
        panic!("not a message");
    };
    assert_eq!(m[0].text(), "message");
    assert_eq!(m[1].text(), "AzureRedisEvents");
    let parts: Vec<&str> = m[2].text().split('|').collect();
    assert_eq!(parts.len() % 2, 0, "{:?}", m[2]);
    Some(
        parts
            .chunks(2)
            .map(|p| (p[0].to_string(), p[1].to_string()))
            .collect(),
    )
}

fn field<'a>(n: &'a [(String, String)], k: &str) -> Option<&'a str> {
    n.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str())
}

/// Checks a notice's type and its node fields.
fn check(n: &[(String, String)], kind: &str, replica: bool, port: u16, start_time: bool) {
    assert_eq!(n[0], ("NotificationType".into(), kind.into()), "{n:?}");
    assert_eq!(
        field(n, "IsReplica"),
        Some(if replica { "True" } else { "False" })
    );
    assert_eq!(field(n, "IPAddress"), Some("127.0.0.1"));
    assert_eq!(field(n, "SSLPort"), Some("0"));
    assert_eq!(field(n, "NonSSLPort"), Some(port.to_string().as_str()));
    let stamp = field(n, "StartTimeInUTC");
    assert_eq!(stamp.is_some(), start_time, "{n:?}");
    if let Some(s) = stamp {
        // yyyy-MM-ddTHH:mm:ss, as .NET's "s" format parses it.
        let b = s.as_bytes();
        assert_eq!(b.len(), 19, "{s}");
        assert_eq!(
            (b[4], b[7], b[10], b[13], b[16]),
            (b'-', b'-', b'T', b':', b':')
        );
        assert!(s.starts_with("20"), "{s}");
    }
}

/// Connects again and again until a PING is answered; returns how many
/// connections were closed unanswered first.
async fn reconnect(addr: SocketAddr) -> (Conn, u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut turned_away = 0;
    loop {
        assert!(Instant::now() < deadline, "the server never came back");
        if let Ok(s) = TcpStream::connect(addr).await {
            let mut c = Conn { s, buf: Vec::new() };
            if c.call(&["PING"]).await == Some(V::Str("PONG".into())) {
                return (c, turned_away);
            }
            turned_away += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn status(c: &mut Conn) -> HashMap<String, String> {
    let Some(V::Arr(items)) = c.call(&["AZURE", "STATUS"]).await else {
        panic!("AZURE STATUS");
    };
    items
        .chunks(2)
        .map(|p| {
            let v = match &p[1] {
                V::Int(i) => i.to_string(),
                other => other.text().to_string(),
            };
            (p[0].text().to_string(), v)
        })
        .collect()
}

async fn wait_idle(c: &mut Conn) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while status(c).await["rehearsal"] != "idle" {
        assert!(Instant::now() < deadline, "the rehearsal never ended");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn planned_maintenance_of_the_primary() {
    let srv = TestServer::start_with(&["--save", ""]);
    let port = srv.addr.port();
    let mut c = Conn::connect(srv.addr).await;
    assert_eq!(c.call(&["SET", "k", "v"]).await, Some(V::Str("OK".into())));
    let mut sub = subscriber(srv.addr).await;
    let mut idle = Conn::connect(srv.addr).await;
    assert_eq!(idle.call(&["PING"]).await, Some(V::Str("PONG".into())));

    let Some(V::Arr(plan)) = c
        .call(&[
            "AZURE",
            "MAINTENANCE",
            "IN",
            "1",
            "DOWNTIME",
            "600",
            "END",
            "3",
        ])
        .await
    else {
        panic!("no timeline");
    };
    let plan: Vec<&str> = plan.iter().map(V::text).collect();
    assert_eq!(
        plan,
        [
            "+0.000s NodeMaintenanceScheduled",
            "+0.000s NodeMaintenanceStarting",
            "+1.000s NodeMaintenanceStart",
            "+2.600s NodeMaintenanceFailoverComplete",
            "+4.000s NodeMaintenanceEnded"
        ]
    );
    // One rehearsal at a time.
    let again = c.call(&["AZURE", "MAINTENANCE"]).await.expect("reply");
    assert!(
        matches!(&again, V::Err(e) if e.contains("already running")),
        "{again:?}"
    );
    assert_eq!(status(&mut c).await["rehearsal"], "running");

    let scheduled = notice(&mut sub).await.expect("Scheduled");
    check(&scheduled, "NodeMaintenanceScheduled", false, port, true);
    let starting = notice(&mut sub).await.expect("Starting");
    check(&starting, "NodeMaintenanceStarting", false, port, true);
    assert_eq!(
        field(&starting, "StartTimeInUTC"),
        field(&scheduled, "StartTimeInUTC")
    );
    let start = notice(&mut sub).await.expect("Start");
    check(&start, "NodeMaintenanceStart", false, port, false);

    // The failover closes every connection, the subscriber's included.
    assert_eq!(notice(&mut sub).await, None);
    assert_eq!(idle.next(Duration::from_secs(5)).await, None);
    assert_eq!(c.call(&["PING"]).await, None);

    // New connections fail until the downtime is over.
    let (mut c, turned_away) = reconnect(srv.addr).await;
    assert!(turned_away > 0, "no connection was turned away");
    let mut sub = subscriber(srv.addr).await;
    let failover = notice(&mut sub).await.expect("FailoverComplete");
    check(
        &failover,
        "NodeMaintenanceFailoverComplete",
        false,
        port,
        false,
    );
    let ended = notice(&mut sub).await.expect("Ended");
    check(&ended, "NodeMaintenanceEnded", false, port, true);

    // The promoted replica had the data.
    assert_eq!(c.call(&["GET", "k"]).await, Some(V::Str("v".into())));
    wait_idle(&mut c).await;
    let st = status(&mut c).await;
    assert_eq!(st["turning-away-ms"], "0");
    assert!(st["turned-away-connections"].parse::<u32>().unwrap() >= turned_away);
}

#[tokio::test]
async fn maintenance_of_the_replica_keeps_connections() {
    let srv = TestServer::start_with(&["--save", ""]);
    let port = srv.addr.port();
    let mut c = Conn::connect(srv.addr).await;
    let mut sub = subscriber(srv.addr).await;
    let Some(V::Arr(plan)) = c
        .call(&["AZURE", "MAINTENANCE", "REPLICA", "IN", "0", "END", "1"])
        .await
    else {
        panic!("no timeline");
    };
    assert_eq!(plan.len(), 4, "{plan:?}");
    for kind in [
        "NodeMaintenanceScheduled",
        "NodeMaintenanceStarting",
        "NodeMaintenanceStart",
    ] {
        let n = notice(&mut sub).await.expect(kind);
        check(&n, kind, true, port, kind != "NodeMaintenanceStart");
    }
    // No failover: the next notice is the end, on the same connection.
    let ended = notice(&mut sub).await.expect("Ended");
    check(&ended, "NodeMaintenanceEnded", true, port, true);
    assert_eq!(c.call(&["PING"]).await, Some(V::Str("PONG".into())));
    wait_idle(&mut c).await;
    assert_eq!(status(&mut c).await["turned-away-connections"], "0");
}

#[tokio::test]
async fn reboot_of_the_primary_keeps_the_data() {
    let srv = TestServer::start_with(&["--save", ""]);
    let mut c = Conn::connect(srv.addr).await;
    let mut other = Conn::connect(srv.addr).await;
    assert_eq!(
        other.call(&["SET", "k", "v"]).await,
        Some(V::Str("OK".into()))
    );
    assert_eq!(
        c.call(&["AZURE", "REBOOT", "PRIMARY", "DOWNTIME", "400"])
            .await,
        Some(V::Str("OK".into()))
    );
    // The caller gets its reply, then both connections close.
    assert_eq!(c.next(Duration::from_secs(5)).await, None);
    assert_eq!(other.next(Duration::from_secs(5)).await, None);
    let (mut c, turned_away) = reconnect(srv.addr).await;
    assert!(turned_away > 0);
    assert_eq!(c.call(&["GET", "k"]).await, Some(V::Str("v".into())));
    wait_idle(&mut c).await;
}

/// Runs `AZURE REBOOT ALL` and returns a connection after it.
async fn reboot_all(addr: SocketAddr) -> Conn {
    let mut c = Conn::connect(addr).await;
    assert_eq!(
        c.call(&["AZURE", "REBOOT", "ALL", "DOWNTIME", "100"]).await,
        Some(V::Str("OK".into()))
    );
    assert_eq!(c.next(Duration::from_secs(5)).await, None);
    let (mut c, _) = reconnect(addr).await;
    wait_idle(&mut c).await;
    c
}

#[tokio::test]
async fn reboot_of_both_nodes_keeps_what_persistence_kept() {
    let srv = TestServer::start_with(&["--save", ""]);
    let mut c = Conn::connect(srv.addr).await;
    let ok = Some(V::Str("OK".into()));

    // Without persistence nothing survives.
    assert_eq!(c.call(&["SET", "gone", "1"]).await, ok);
    let mut c = reboot_all(srv.addr).await;
    assert_eq!(c.call(&["DBSIZE"]).await, Some(V::Int(0)));

    // With an RDB file: what the last save held.
    assert_eq!(c.call(&["SET", "saved", "1"]).await, ok);
    assert_eq!(c.call(&["SAVE"]).await, ok);
    assert_eq!(c.call(&["SET", "unsaved", "1"]).await, ok);
    let mut c = reboot_all(srv.addr).await;
    assert_eq!(c.call(&["GET", "saved"]).await, Some(V::Str("1".into())));
    assert_eq!(c.call(&["EXISTS", "unsaved"]).await, Some(V::Int(0)));

    // With the AOF: every acknowledged write.
    assert_eq!(c.call(&["CONFIG", "SET", "appendonly", "yes"]).await, ok);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let Some(V::Str(info)) = c.call(&["INFO", "persistence"]).await else {
            panic!("INFO");
        };
        if info.contains("aof_rewrite_in_progress:0") && info.contains("aof_rewrite_scheduled:0") {
            break;
        }
        assert!(Instant::now() < deadline, "the AOF never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(c.call(&["SET", "logged", "1"]).await, ok);
    assert_eq!(c.call(&["RPUSH", "list", "a", "b"]).await, Some(V::Int(2)));
    let mut c = reboot_all(srv.addr).await;
    assert_eq!(c.call(&["GET", "saved"]).await, Some(V::Str("1".into())));
    assert_eq!(c.call(&["GET", "logged"]).await, Some(V::Str("1".into())));
    assert_eq!(c.call(&["LLEN", "list"]).await, Some(V::Int(2)));
    assert_eq!(c.call(&["DBSIZE"]).await, Some(V::Int(3)));
}

#[tokio::test]
async fn rehearsal_errors() {
    let srv = TestServer::start_with(&["--save", ""]);
    let mut c = Conn::connect(srv.addr).await;
    let err = |v: Option<V>| match v {
        Some(V::Err(e)) => e,
        other => panic!("not an error: {other:?}"),
    };
    assert_eq!(
        err(c.call(&["AZURE", "REBOOT", "NODE"]).await),
        "ERR syntax error"
    );
    assert_eq!(
        err(c.call(&["AZURE", "MAINTENANCE", "IN", "-1"]).await),
        "ERR IN must be an integer between 0 and 86400"
    );
    assert_eq!(
        err(c.call(&["AZURE", "MAINTENANCE", "DOWNTIME"]).await),
        "ERR syntax error"
    );
    assert!(err(c.call(&["AZURE", "REBOOT"]).await).contains("wrong number of arguments"));
    assert_eq!(c.call(&["MULTI"]).await, Some(V::Str("OK".into())));
    assert!(err(c.call(&["AZURE", "STATUS"]).await).contains("not allowed"));
    assert_eq!(c.call(&["DISCARD"]).await, Some(V::Str("OK".into())));
    // Nothing started.
    let st = status(&mut c).await;
    assert_eq!(st["rehearsal"], "idle");
    assert_eq!(st["channel"], "AzureRedisEvents");
}

/// The metrics endpoint's address, from the server's log.
fn metrics_addr(srv: &TestServer) -> SocketAddr {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = srv.log();
        if let Some(a) = log
            .lines()
            .find_map(|l| l.split("Metrics endpoint listening on http://").nth(1))
        {
            return a
                .trim()
                .trim_end_matches("/metrics")
                .parse()
                .expect("metrics address");
        }
        assert!(Instant::now() < deadline, "no metrics endpoint in the log");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One HTTP request to the metrics endpoint: (status line, headers, body).
async fn http(addr: SocketAddr, request: &str) -> (String, String, String) {
    let mut s = TcpStream::connect(addr).await.expect("connect to metrics");
    s.write_all(request.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut raw))
        .await
        .expect("the endpoint answered and closed")
        .expect("read");
    let text = String::from_utf8(raw).expect("utf-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (status.to_string(), headers.to_string(), body.to_string())
}

/// `GET /metrics`: every sample line as `name{labels}` -> value.
async fn scrape(addr: SocketAddr) -> HashMap<String, f64> {
    let (status, headers, body) = http(addr, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        headers.contains("Content-Type: text/plain; version=0.0.4"),
        "{headers}"
    );
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').expect("name value");
            (k.to_string(), v.parse::<f64>().expect("a number"))
        })
        .collect()
}

fn metric(m: &HashMap<String, f64>, name: &str) -> f64 {
    *m.get(&format!("azure_redis_{name}"))
        .unwrap_or_else(|| panic!("no {name} in {m:?}"))
}

fn error_count(m: &HashMap<String, f64>, kind: &str) -> f64 {
    metric(m, &format!("errors{{errortype=\"{kind}\"}}"))
}

#[tokio::test]
async fn azure_metrics_count_what_info_counts() {
    let srv = TestServer::start_with(&["--save", "", "--metrics-port", "9", "--maxmemory", "64mb"]);
    let maddr = metrics_addr(&srv);
    let mut c = Conn::connect(srv.addr).await;
    let ok = Some(V::Str("OK".into()));
    // Sets: SET, SET, SETEX (Azure's list). Gets: GET x3, HGET.
    assert_eq!(c.call(&["SET", "a", "1"]).await, ok);
    assert_eq!(c.call(&["SET", "b", "2"]).await, ok);
    assert_eq!(c.call(&["SETEX", "c", "100", "3"]).await, ok);
    assert_eq!(c.call(&["GET", "a"]).await, Some(V::Str("1".into())));
    assert_eq!(c.call(&["GET", "b"]).await, Some(V::Str("2".into())));
    assert_eq!(c.call(&["GET", "nope"]).await, Some(V::Nil));
    assert_eq!(c.call(&["HGET", "h", "f"]).await, Some(V::Nil));
    // Not a get or a set, but an operation.
    assert_eq!(c.call(&["DEL", "nothing"]).await, Some(V::Int(0)));

    let m = scrape(maddr).await;
    assert_eq!(metric(&m, "cachehits"), 2.0);
    assert_eq!(metric(&m, "cachemisses"), 2.0);
    assert_eq!(metric(&m, "cachemissrate"), 50.0);
    assert_eq!(metric(&m, "getcommands"), 4.0);
    assert_eq!(metric(&m, "setcommands"), 3.0);
    assert!(metric(&m, "totalcommandsprocessed") >= 8.0);
    assert_eq!(metric(&m, "totalkeys"), 3.0);
    assert!(metric(&m, "connectedclients") >= 1.0);
    assert!(metric(&m, "allConnectionsCreatedPerSecond") > 0.0);
    let used = metric(&m, "usedmemory");
    assert!(used > 0.0);
    let perc = metric(&m, "usedmemorypercentage");
    assert!(
        (perc - used * 100.0 / (64.0 * 1024.0 * 1024.0)).abs() < 5.0,
        "{perc} vs {used}"
    );
    assert!(metric(&m, "usedmemoryRss") > 0.0);
    let load = metric(&m, "serverLoad");
    assert!(load > 0.0 && load <= 100.0, "{load}");
    let cpu = metric(&m, "percentProcessorTime");
    assert!((0.0..=100.0).contains(&cpu), "{cpu}");
    assert!(metric(&m, "cacheWrite") > 0.0);
    assert!(metric(&m, "cacheRead") > 0.0);
    for kind in [
        "Failover",
        "Dataloss",
        "UnresponsiveClients",
        "AOF",
        "RDB",
        "MicrosoftEntraAuthenticationFailure",
        "MicrosoftEntraTokenExpired",
    ] {
        assert_eq!(error_count(&m, kind), 0.0, "{kind}");
    }

    // The same figures from AZURE METRICS (a map; flat in RESP2).
    let Some(V::Arr(items)) = c.call(&["AZURE", "METRICS"]).await else {
        panic!("AZURE METRICS");
    };
    let names: Vec<&str> = items.iter().step_by(2).map(|v| v.text()).collect();
    assert_eq!(names.len(), 21, "{names:?}");
    let at = |n: &str| {
        let i = names.iter().position(|x| *x == n).expect(n);
        &items[2 * i + 1]
    };
    assert_eq!(at("cachehits"), &V::Int(2));
    assert_eq!(at("getcommands"), &V::Int(4));
    assert_eq!(at("cachemissrate"), &V::Str("50".into()));
    let V::Arr(errors) = at("errors") else {
        panic!("errors is a map");
    };
    assert_eq!(errors[0], V::Str("Failover".into()));
    assert_eq!(errors[1], V::Int(0));

    // HEAD: the head alone, with the body's length.
    let (status, headers, body) = http(maddr, "HEAD /metrics HTTP/1.1\r\n\r\n").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(body.is_empty());
    let len: usize = headers
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|n| n.trim().parse().ok())
        .expect("a length");
    assert!(len > 1000, "{len}");
    // Only GET /metrics is served.
    let (status, _, _) = http(maddr, "GET /other HTTP/1.1\r\n\r\n").await;
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    let (status, headers, _) = http(maddr, "POST /metrics HTTP/1.1\r\n\r\n").await;
    assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
    assert!(headers.contains("Allow: GET"), "{headers}");
    // A request head that never ends is cut off, and the endpoint serves on.
    let mut s = TcpStream::connect(maddr).await.expect("connect");
    s.write_all(&vec![b'a'; 10_000]).await.expect("send");
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(6), s.read_to_end(&mut rest)).await;
    assert!(
        String::from_utf8_lossy(&rest).starts_with("HTTP/1.1 431"),
        "{:?}",
        String::from_utf8_lossy(&rest)
    );
    assert_eq!(metric(&scrape(maddr).await, "cachehits"), 2.0);
}

#[tokio::test]
async fn azure_metrics_record_failovers_data_loss_and_unresponsive_clients() {
    let srv = TestServer::start_with(&["--save", "", "--metrics-port", "9"]);
    let maddr = metrics_addr(&srv);
    let mut c = Conn::connect(srv.addr).await;
    // A client asks for 32 MB and reads none of it: what the socket does
    // not take stays in its output buffer, over Azure's 1,000,000 bytes.
    assert_eq!(
        c.call(&["SETRANGE", "big", "33554431", "x"]).await,
        Some(V::Int(33_554_432))
    );
    let mut slow = TcpStream::connect(srv.addr).await.expect("connect");
    slow.write_all(&resp(&[b"GET", b"big"]))
        .await
        .expect("send");
    let deadline = Instant::now() + Duration::from_secs(10);
    while error_count(&scrape(maddr).await, "UnresponsiveClients") < 1.0 {
        assert!(Instant::now() < deadline, "the slow client was not counted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Counted once, however long it stays behind.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        error_count(&scrape(maddr).await, "UnresponsiveClients"),
        1.0
    );
    drop(slow);

    // A reboot of the primary is a failover; of both nodes without
    // persistence, a failover that loses the data.
    let mut c = reboot_all(srv.addr).await;
    assert_eq!(c.call(&["DBSIZE"]).await, Some(V::Int(0)));
    let m = scrape(maddr).await;
    assert_eq!(error_count(&m, "Failover"), 1.0);
    assert_eq!(error_count(&m, "Dataloss"), 1.0);
    // Nothing to lose: a failover only.
    let _ = reboot_all(srv.addr).await;
    let m = scrape(maddr).await;
    assert_eq!(error_count(&m, "Failover"), 2.0);
    assert_eq!(error_count(&m, "Dataloss"), 1.0);
    drop(c);
}
