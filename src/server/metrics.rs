//! The metrics Azure Monitor shows for a cache, computed as Azure computes
//! them: from INFO's fields, per one-minute grain. Served by `AZURE
//! METRICS` and, on `metrics-port`, over HTTP in Prometheus's text format
//! (`GET /metrics`), under Azure's metric names (the "Name in REST API"
//! column of Azure's list) with an `azure_redis_` prefix.
//!
//! Every value covers the last minute, as a point of Azure's charts does:
//! counts (hits, misses, gets, sets, operations, evicted and expired keys,
//! errors) are what happened in that minute, rates are averaged over it,
//! and levels (clients, keys, memory) are the minute's maximum (Azure's
//! default aggregation for them). A sampler takes INFO's counters every
//! second and keeps a minute of them; a request compares the present with
//! the oldest sample of that minute (with the start, in a server's first
//! minute).
//!
//! Server Load is the share of the async workers' time spent running
//! connections' work rather than waiting for it (tokio's per-worker busy
//! time), plus the time the script thread spends running scripts, over
//! the workers' capacity: the analogue of Redis's main thread not waiting
//! idle in its event loop. CPU is the process's CPU time over the host's.
//!
//! Errors, with Azure's error types: `Failover` (a replica promoted, and
//! the failovers `AZURE MAINTENANCE` / `AZURE REBOOT PRIMARY|ALL`
//! rehearse), `Dataloss` (a rehearsed reboot that came back with fewer
//! keys), `UnresponsiveClients` (a client whose pending output went over
//! 1,000,000 bytes, counted once per episode at the sampler's one-second
//! resolution), `AOF` (a failed AOF write or rewrite), `RDB` (a failed
//! background save), `MicrosoftEntraAuthenticationFailure` and
//! `MicrosoftEntraTokenExpired`. Azure's `Import` and `Export` concern the
//! portal's RDB import/export, which has no counterpart here.

use std::collections::{HashSet, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::Server;

/// Azure's error types (the `ErrorType` dimension of `errors`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorType {
    Failover = 0,
    Dataloss,
    UnresponsiveClients,
    Aof,
    Rdb,
    EntraAuthenticationFailure,
    EntraTokenExpired,
}

impl ErrorType {
    const ALL: [ErrorType; 7] = [
        ErrorType::Failover,
        ErrorType::Dataloss,
        ErrorType::UnresponsiveClients,
        ErrorType::Aof,
        ErrorType::Rdb,
        ErrorType::EntraAuthenticationFailure,
        ErrorType::EntraTokenExpired,
    ];

    /// Azure's name of the type.
    pub fn name(self) -> &'static str {
        match self {
            ErrorType::Failover => "Failover",
            ErrorType::Dataloss => "Dataloss",
            ErrorType::UnresponsiveClients => "UnresponsiveClients",
            ErrorType::Aof => "AOF",
            ErrorType::Rdb => "RDB",
            ErrorType::EntraAuthenticationFailure => "MicrosoftEntraAuthenticationFailure",
            ErrorType::EntraTokenExpired => "MicrosoftEntraTokenExpired",
        }
    }
}

/// Azure's threshold for an unresponsive client's pending output.
pub const UNRESPONSIVE_BYTES: u64 = 1_000_000;
/// Azure's grain.
const WINDOW: Duration = Duration::from_secs(60);
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// At most this many scrapes served at once.
const MAX_HTTP: usize = 16;

/// Accumulated busy time of the script thread (ns): scripts run there
/// while the worker that asked waits without being busy.
pub static SCRIPT_BUSY_NS: AtomicU64 = AtomicU64::new(0);

/// The counters, a minute of samples and the error counts.
#[derive(Default)]
pub struct Metrics {
    errors: [AtomicU64; 7],
    samples: Mutex<VecDeque<Sample>>,
    /// Clients over [`UNRESPONSIVE_BYTES`] at the last sample.
    over: Mutex<HashSet<u64>>,
}

/// INFO's counters at one instant.
#[derive(Clone, Debug, Default)]
struct Sample {
    at: Option<Instant>,
    hits: u64,
    misses: u64,
    gets: u64,
    sets: u64,
    commands: u64,
    evicted: u64,
    expired: u64,
    received: u64,
    connected: u64,
    net_in: u64,
    net_out: u64,
    busy_ns: u64,
    workers: u64,
    cpu_secs: f64,
    keys: u64,
    used: u64,
    rss: u64,
    /// maxmemory, else the host's memory.
    limit: u64,
    ops_per_sec: u64,
    errors: [u64; 7],
}

/// Azure's Gets: these commands' calls (its definition, from INFO's
/// commandstats).
const GETS: &[&str] = &[
    "get", "hget", "hgetall", "hmget", "mget", "getbit", "getrange",
];
/// Azure's Sets.
const SETS: &[&str] = &[
    "set", "hset", "hmset", "hsetnx", "lset", "mset", "msetnx", "setbit", "setex", "setrange",
    "setnx",
];

/// One metric's value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Count(u64),
    Real(f64),
    /// Per error type.
    Errors(Vec<(&'static str, u64)>),
}

/// One metric: Azure's REST name, its portal name, and the value.
#[derive(Clone, Debug)]
pub struct Metric {
    pub name: &'static str,
    pub display: &'static str,
    pub value: Value,
}

impl Metrics {
    /// One more error of `kind`.
    pub fn count(&self, kind: ErrorType) {
        self.errors[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    fn error_counts(&self) -> [u64; 7] {
        let mut e = [0; 7];
        for (i, c) in self.errors.iter().enumerate() {
            e[i] = c.load(Ordering::Relaxed);
        }
        e
    }

    /// Takes a sample, keeps a minute of them, and notes clients whose
    /// pending output went over Azure's threshold.
    pub fn sample(&self, srv: &Server) {
        self.note_unresponsive(srv);
        let s = take(srv, self.error_counts());
        let mut q = self.samples.lock();
        q.push_back(s);
        // The oldest kept sample is at most a minute old (the window's
        // base), and one more from before it while the minute is young.
        while q.len() > 2
            && q.get(1)
                .and_then(|s| s.at)
                .is_some_and(|t| t.elapsed() >= WINDOW)
        {
            q.pop_front();
        }
    }

    fn note_unresponsive(&self, srv: &Server) {
        let mut now_over = HashSet::new();
        for c in srv.clients.iter() {
            let c = c.value();
            let pushed = c.outbox.lock().as_ref().map_or(0, |o| o.pending()) as u64;
            if c.omem.load(Ordering::Relaxed) as u64 + pushed > UNRESPONSIVE_BYTES {
                now_over.insert(c.id);
            }
        }
        let mut over = self.over.lock();
        for id in &now_over {
            if !over.contains(id) {
                self.count(ErrorType::UnresponsiveClients);
            }
        }
        *over = now_over;
    }

    /// The metrics of the last minute.
    pub fn current(&self, srv: &Server) -> Vec<Metric> {
        let now = take(srv, self.error_counts());
        let q = self.samples.lock();
        let in_window = |s: &&Sample| s.at.is_some_and(|t| t.elapsed() <= WINDOW);
        // In the first minute, everything since the start (counters start
        // at zero; clients may come before the first sample); later the
        // oldest sample within the minute (the newest, if the sampler
        // stalled).
        let base = if srv.uptime() <= WINDOW {
            Sample {
                at: Some(srv.started),
                ..Sample::default()
            }
        } else {
            q.iter()
                .find(in_window)
                .or(q.back())
                .cloned()
                .unwrap_or_else(|| now.clone())
        };
        let mut window: Vec<Sample> = q.iter().filter(in_window).cloned().collect();
        drop(q);
        window.push(now);
        derive(&base, &window)
    }
}

/// What the window's base and its samples (the present last) give.
fn derive(base: &Sample, window: &[Sample]) -> Vec<Metric> {
    let Some(now) = window.last() else {
        return Vec::new();
    };
    // Levels: the minute's maximum (Azure's default aggregation).
    let max_of = |f: fn(&Sample) -> u64| window.iter().map(f).max().unwrap_or(0);
    let (connected, keys) = (max_of(|s| s.connected), max_of(|s| s.keys));
    let (used, rss) = (max_of(|s| s.used), max_of(|s| s.rss));
    let used_perc = window
        .iter()
        .map(|s| {
            if s.limit > 0 {
                s.used as f64 * 100.0 / s.limit as f64
            } else {
                0.0
            }
        })
        .fold(0.0, f64::max);
    let secs = match (base.at, now.at) {
        (Some(a), Some(b)) => b.saturating_duration_since(a).as_secs_f64(),
        _ => 0.0,
    };
    let d = |f: fn(&Sample) -> u64| f(now).saturating_sub(f(base));
    let rate = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
    let (hits, misses) = (d(|s| s.hits), d(|s| s.misses));
    let miss_rate = if hits + misses > 0 {
        misses as f64 * 100.0 / (hits + misses) as f64
    } else {
        0.0
    };
    let received = d(|s| s.received);
    // connected(now) = connected(base) + created - closed.
    let closed = (received as i64 - (now.connected as i64 - base.connected as i64)).max(0) as u64;
    let workers = now.workers.max(1);
    let load = if secs > 0.0 {
        (d(|s| s.busy_ns) as f64 / 1e9 / (secs * workers as f64) * 100.0).clamp(0.0, 100.0)
    } else {
        0.0
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let cpu = if secs > 0.0 {
        ((now.cpu_secs - base.cpu_secs).max(0.0) / (secs * cores) * 100.0).clamp(0.0, 100.0)
    } else {
        0.0
    };
    let errors = ErrorType::ALL
        .iter()
        .map(|&t| {
            let i = t as usize;
            (t.name(), now.errors[i].saturating_sub(base.errors[i]))
        })
        .collect();
    let m = |name, display, value| Metric {
        name,
        display,
        value,
    };
    use Value::{Count, Real};
    vec![
        m("cachehits", "Cache Hits", Count(hits)),
        m("cachemisses", "Cache Misses", Count(misses)),
        m("cachemissrate", "Cache Miss Rate", Real(miss_rate)),
        m("getcommands", "Gets", Count(d(|s| s.gets))),
        m("setcommands", "Sets", Count(d(|s| s.sets))),
        m(
            "totalcommandsprocessed",
            "Total Operations",
            Count(d(|s| s.commands)),
        ),
        m(
            "operationsPerSecond",
            "Operations Per Second",
            Count(now.ops_per_sec),
        ),
        m("evictedkeys", "Evicted Keys", Count(d(|s| s.evicted))),
        m("expiredkeys", "Expired Keys", Count(d(|s| s.expired))),
        m("totalkeys", "Total Keys", Count(keys)),
        m("connectedclients", "Connected Clients", Count(connected)),
        m(
            "allConnectionsCreatedPerSecond",
            "Connections Created Per Second",
            Real(rate(received)),
        ),
        m(
            "allConnectionsClosedPerSecond",
            "Connections Closed Per Second",
            Real(rate(closed)),
        ),
        m("usedmemory", "Used Memory", Count(used)),
        m("usedmemoryRss", "Used Memory RSS", Count(rss)),
        m(
            "usedmemorypercentage",
            "Used Memory Percentage",
            Real(used_perc),
        ),
        m("serverLoad", "Server Load", Real(load)),
        m("percentProcessorTime", "CPU", Real(cpu)),
        // Azure's Cache Read is what leaves the cache, Cache Write what
        // clients send it (network bytes, replication included).
        m("cacheRead", "Cache Read", Real(rate(d(|s| s.net_out)))),
        m("cacheWrite", "Cache Write", Real(rate(d(|s| s.net_in)))),
        m("errors", "Errors", Value::Errors(errors)),
    ]
}

/// INFO's fields as `name -> value` (numbers only).
fn info_fields(text: &str) -> std::collections::HashMap<&str, &str> {
    text.lines()
        .filter_map(|l| l.trim_end().split_once(':'))
        .collect()
}

/// The present sample: INFO's counters (as Azure reads them), the
/// workers' busy time, the process's CPU time.
fn take(srv: &Server, errors: [u64; 7]) -> Sample {
    let sections: Vec<String> = ["clients", "memory", "stats", "commandstats", "cpu"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let totals = crate::commands::server::keyspace_totals_of(srv);
    let keys: u64 = totals.0.iter().map(|r| r.1 as u64).sum();
    let text = crate::commands::server::render_info(srv, &sections, totals);
    let f = info_fields(&text);
    let num = |k: &str| f.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let real = |k: &str| f.get(k).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let calls = |names: &[&str]| -> u64 {
        names
            .iter()
            .filter_map(|n| f.get(format!("cmdstat_{n}").as_str()))
            .filter_map(|v| {
                v.split(',')
                    .find_map(|kv| kv.strip_prefix("calls="))
                    .and_then(|n| n.parse::<u64>().ok())
            })
            .sum()
    };
    let (busy_ns, workers) = match tokio::runtime::Handle::try_current() {
        Ok(h) => {
            let m = h.metrics();
            let n = m.num_workers();
            let busy: u128 = (0..n)
                .map(|i| m.worker_total_busy_duration(i).as_nanos())
                .sum();
            (busy as u64, n as u64)
        }
        Err(_) => (0, 1),
    };
    let maxmemory = num("maxmemory");
    Sample {
        at: Some(Instant::now()),
        hits: num("keyspace_hits"),
        misses: num("keyspace_misses"),
        gets: calls(GETS),
        sets: calls(SETS),
        commands: num("total_commands_processed"),
        evicted: num("evicted_keys"),
        expired: num("expired_keys"),
        received: num("total_connections_received"),
        connected: num("connected_clients"),
        net_in: num("total_net_input_bytes") + num("total_net_repl_input_bytes"),
        net_out: num("total_net_output_bytes") + num("total_net_repl_output_bytes"),
        busy_ns: busy_ns + SCRIPT_BUSY_NS.load(Ordering::Relaxed),
        workers,
        cpu_secs: real("used_cpu_sys") + real("used_cpu_user"),
        keys,
        used: num("used_memory"),
        rss: num("used_memory_rss"),
        limit: if maxmemory > 0 {
            maxmemory
        } else {
            num("total_system_memory")
        },
        ops_per_sec: num("instantaneous_ops_per_sec"),
        errors,
    }
}

/// Samples every second for the life of the server. A sample waits for
/// each shard's lock (as INFO does), so it is taken on a blocking thread:
/// a slow command holding a shard must not stall an async worker's other
/// connections behind the sampler.
pub async fn sampler_task(srv: Arc<Server>) {
    let mut rx = srv.shutdown_receiver();
    loop {
        let s = srv.clone();
        let _ = tokio::task::spawn_blocking(move || s.metrics.sample(&s)).await;
        tokio::select! {
            _ = tokio::time::sleep(SAMPLE_EVERY) => {}
            _ = rx.changed() => return,
        }
    }
}

/// Prometheus's text format (0.0.4): every metric a gauge over the last
/// minute, `errors` with an `errortype` label per Azure error type.
pub fn prometheus(metrics: &[Metric]) -> String {
    let mut o = String::new();
    for m in metrics {
        let name = format!("azure_redis_{}", m.name);
        let _ = writeln!(
            o,
            "# HELP {name} Azure Monitor's \"{}\" over the last minute.",
            m.display
        );
        let _ = writeln!(o, "# TYPE {name} gauge");
        match &m.value {
            Value::Count(n) => {
                let _ = writeln!(o, "{name} {n}");
            }
            Value::Real(x) => {
                let _ = writeln!(o, "{name} {x}");
            }
            Value::Errors(v) => {
                for (t, n) in v {
                    let _ = writeln!(o, "{name}{{errortype=\"{t}\"}} {n}");
                }
            }
        }
    }
    o
}

/// Binds the metrics endpoint on every `bind` address at `metrics-port`
/// (an OS-chosen port with `ephemeral-port yes`); nothing when it is 0.
pub fn bind(srv: &Server) -> std::io::Result<Vec<std::net::TcpListener>> {
    let port = match srv.config.metrics_port() {
        0 => return Ok(Vec::new()),
        _ if srv.config.ephemeral_port() => 0,
        p => p,
    };
    let mut out = Vec::new();
    for b in srv.config.bind() {
        let addr = super::listener::bind_address(&b, port)?;
        match std::net::TcpListener::bind(addr).and_then(|l| {
            l.set_nonblocking(true)?;
            Ok(l)
        }) {
            Ok(l) => out.push(l),
            Err(e) if b.starts_with('-') => {
                tracing::warn!("could not bind optional metrics address {addr}: {e}");
            }
            Err(e) => {
                return Err(std::io::Error::new(
                    e.kind(),
                    format!("could not listen for metrics-port on {addr}: {e}"),
                ))
            }
        }
    }
    Ok(out)
}

/// Serves `GET /metrics` on `listener` until shutdown.
pub async fn serve(srv: Arc<Server>, listener: TcpListener) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_HTTP));
    let mut rx = srv.shutdown_receiver();
    loop {
        let (sock, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(_) => {
                    // Out of descriptors and the like: try again shortly.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = rx.changed() => return,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            // Too many scrapes at once: this one is closed unanswered.
            continue;
        };
        let srv = srv.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(5), answer(&srv, sock)).await;
            drop(permit);
        });
    }
}

/// Reads one request head (at most 8 KiB) and answers it.
async fn answer(srv: &Arc<Server>, mut sock: TcpStream) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = sock.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > 8192 {
            return respond(&mut sock, "431 Request Header Fields Too Large", "", "").await;
        }
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or(&[]);
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    if method != "GET" && method != "HEAD" {
        return respond(
            &mut sock,
            "405 Method Not Allowed",
            "Allow: GET, HEAD\r\n",
            "",
        )
        .await;
    }
    if path != "/metrics" {
        return respond(&mut sock, "404 Not Found", "", "not found; try /metrics\n").await;
    }
    // Off the async workers, as the sampler (shard locks).
    let s = srv.clone();
    let body = tokio::task::spawn_blocking(move || prometheus(&s.metrics.current(&s)))
        .await
        .unwrap_or_default();
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    sock.write_all(head.as_bytes()).await?;
    // HEAD: the same head (its length included), no body.
    if method == "GET" {
        sock.write_all(body.as_bytes()).await?;
    }
    sock.shutdown().await
}

async fn respond(
    sock: &mut TcpStream,
    status: &str,
    extra: &str,
    body: &str,
) -> std::io::Result<()> {
    let msg = format!(
        "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    sock.write_all(msg.as_bytes()).await?;
    sock.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: Sample, t: Instant) -> Sample {
        Sample { at: Some(t), ..s }
    }

    #[test]
    fn rates_and_shares_come_from_the_window() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(10);
        let base = at(
            Sample {
                hits: 100,
                misses: 50,
                received: 10,
                connected: 5,
                busy_ns: 0,
                workers: 2,
                errors: [1, 0, 0, 0, 0, 0, 0],
                ..Sample::default()
            },
            t0,
        );
        let now = at(
            Sample {
                hits: 130,
                misses: 60,
                received: 30,
                connected: 15,
                // 5 s busy out of 2 workers x 10 s.
                busy_ns: 5_000_000_000,
                workers: 2,
                errors: [3, 0, 0, 0, 0, 0, 0],
                ..Sample::default()
            },
            t1,
        );
        let m = derive(&base, &[now]);
        let get = |n: &str| m.iter().find(|x| x.name == n).map(|x| x.value.clone());
        assert_eq!(get("cachehits"), Some(Value::Count(30)));
        assert_eq!(get("cachemisses"), Some(Value::Count(10)));
        assert_eq!(get("cachemissrate"), Some(Value::Real(25.0)));
        // 20 connections in 10 s, 10 more connected: 10 closed.
        assert_eq!(
            get("allConnectionsCreatedPerSecond"),
            Some(Value::Real(2.0))
        );
        assert_eq!(get("allConnectionsClosedPerSecond"), Some(Value::Real(1.0)));
        assert_eq!(get("serverLoad"), Some(Value::Real(25.0)));
        match get("errors") {
            Some(Value::Errors(e)) => assert_eq!(e[0], ("Failover", 2)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn prometheus_text_names_every_metric_once() {
        let t = Instant::now();
        let s = at(Sample::default(), t);
        let text = prometheus(&derive(&s, std::slice::from_ref(&s)));
        assert!(text.contains("# TYPE azure_redis_serverLoad gauge\n"));
        assert!(text.contains("azure_redis_errors{errortype=\"MicrosoftEntraTokenExpired\"} 0\n"));
        let types = text.lines().filter(|l| l.starts_with("# TYPE")).count();
        assert_eq!(types, 21);
    }
}
