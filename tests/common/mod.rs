//! Test harness: starts the real `cinnabar` binary on an OS-chosen port and
//! talks to it with the `redis` crate and with raw TCP for exact bytes.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub mod dataset;
pub mod diff;

/// A running server, killed on drop.
pub struct TestServer {
    child: Child,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl TestServer {
    /// Starts a server with test defaults plus `extra` Redis-style arguments.
    pub fn start_with(extra: &[&str]) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let (child, addr) = spawn_in(dir.path(), extra);
        TestServer { child, addr, dir }
    }

    /// Starts a server on an existing data directory (files prepared by
    /// the test) with `extra` arguments.
    pub fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> TestServer {
        let (child, addr) = spawn_in(dir.path(), extra);
        TestServer { child, addr, dir }
    }

    /// Kills the server with SIGKILL (no chance to flush anything).
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills the server (SIGKILL) and starts a new one on the same data
    /// directory with `extra` arguments.
    pub fn restart_with(&mut self, extra: &[&str]) {
        self.kill9();
        let (child, addr) = spawn_in(self.dir.path(), extra);
        self.child = child;
        self.addr = addr;
    }

    pub fn start() -> TestServer {
        Self::start_with(&[])
    }

    pub fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    /// A multiplexed async connection (RESP2).
    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        let client = redis::Client::open(self.url()).expect("client");
        client
            .get_multiplexed_async_connection()
            .await
            .expect("connect")
    }

    /// A raw TCP connection for exact-byte tests.
    pub async fn raw(&self) -> Raw {
        Raw {
            s: TcpStream::connect(self.addr).await.expect("raw connect"),
            buf: Vec::new(),
        }
    }

    /// The process id (for signal tests).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the server has logged so far (its stdout; the last
    /// [`LOG_KEPT`] bytes).
    pub fn log(&self) -> String {
        log_of(self.child.id())
    }

    /// Waits for the process to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

/// Spawns a server on data directory `dir`; waits for its address.
pub fn spawn_in(dir: &std::path::Path, extra: &[&str]) -> (Child, SocketAddr) {
    spawn_in_env(dir, extra, &[])
}

/// [`spawn_in`] with extra environment variables for the server.
pub fn spawn_in_env(
    dir: &std::path::Path,
    extra: &[&str],
    env: &[(&str, &std::ffi::OsStr)],
) -> (Child, SocketAddr) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cinnabar"));
    cmd.envs(env.iter().copied());
    // Two async workers whatever the machine (the default on a 2-core host
    // is one), so the suite keeps exercising hand-offs between workers;
    // `extra` may set another count (the last one given wins).
    cmd.args([
        "--bind",
        "127.0.0.1",
        "--ephemeral-port",
        "yes",
        "--enable-debug-command",
        "yes",
        "--worker-threads",
        "2",
        // Full resyncs start at once (Redis's test suite sets the same):
        // tests of the delay itself set another value.
        "--repl-diskless-sync-delay",
        "0",
        "--dir",
    ])
    .arg(dir)
    .args(extra)
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    await_address(cmd.spawn().expect("spawn cinnabar"))
}

/// Spawns a server with the configuration file `conf` (first argument, as
/// redis-server takes it) and nothing else; waits for its address. The
/// file should bind 127.0.0.1 with `ephemeral-port yes`.
pub fn spawn_conf(conf: &std::path::Path) -> (Child, SocketAddr) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cinnabar"));
    cmd.arg(conf)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    await_address(cmd.spawn().expect("spawn cinnabar"))
}

/// How much of each server's log the harness keeps, in bytes.
pub const LOG_KEPT: usize = 1 << 20;

/// The logs of the servers this test process started, by pid.
static LOGS: std::sync::Mutex<Vec<(u32, std::sync::Arc<std::sync::Mutex<String>>)>> =
    std::sync::Mutex::new(Vec::new());

/// The log kept for the server with process id `pid` (empty if unknown).
pub fn log_of(pid: u32) -> String {
    let logs = LOGS.lock().unwrap_or_else(|e| e.into_inner());
    logs.iter()
        .rev()
        .find(|(p, _)| *p == pid)
        .map(|(_, l)| l.lock().unwrap_or_else(|e| e.into_inner()).clone())
        .unwrap_or_default()
}

/// Reads the server's log until it reports its TCP address, and keeps it.
fn await_address(mut child: Child) -> (Child, SocketAddr) {
    let stdout = child.stdout.take().expect("stdout");
    let kept = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    LOGS.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((child.id(), kept.clone()));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            {
                let mut k = kept.lock().unwrap_or_else(|e| e.into_inner());
                if k.len() + line.len() > LOG_KEPT {
                    let cut = (k.len() + line.len() - LOG_KEPT).min(k.len());
                    let cut = (cut..=k.len())
                        .find(|&i| k.is_char_boundary(i))
                        .unwrap_or(k.len());
                    k.drain(..cut);
                }
                k.push_str(&line);
                k.push('\n');
            }
            if let Some(rest) = line.split("accept connections tcp on ").nth(1) {
                if let (Some(t), Ok(a)) = (tx.take(), rest.trim().parse::<SocketAddr>()) {
                    let _ = t.send(a);
                }
            }
            // keep draining so the server never blocks on a full pipe
        }
    });
    let addr = match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(a) => a,
        Err(_) => {
            let _ = child.kill();
            panic!("server did not report its address");
        }
    };
    (child, addr)
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw client.
pub struct Raw {
    pub s: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    /// A raw connection to `addr` ("host:port").
    pub async fn connect(addr: &str) -> Raw {
        Raw {
            s: TcpStream::connect(addr).await.expect("raw connect"),
            buf: Vec::new(),
        }
    }

    pub async fn send(&mut self, b: &[u8]) {
        self.s.write_all(b).await.expect("send");
    }

    /// Reads until `n` bytes are buffered (5 s timeout) and returns them.
    pub async fn read_exact_n(&mut self, n: usize) -> Vec<u8> {
        let fut = async {
            while self.buf.len() < n {
                let mut tmp = vec![0u8; 65536];
                let k = self.s.read(&mut tmp).await.expect("read");
                if k == 0 {
                    break;
                }
                self.buf.extend_from_slice(&tmp[..k]);
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), fut).await;
        let take = n.min(self.buf.len());
        self.buf.drain(..take).collect()
    }

    /// Sends `cmd` and asserts the reply is exactly `want`.
    pub async fn expect(&mut self, cmd: &[u8], want: &[u8]) {
        self.send(cmd).await;
        let got = self.read_exact_n(want.len()).await;
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(want),
            "reply to {:?}",
            String::from_utf8_lossy(cmd)
        );
    }

    /// Reads until the buffered bytes end with `suffix`; returns them all.
    pub async fn read_until(&mut self, suffix: &[u8]) -> Vec<u8> {
        let fut = async {
            while !self.buf.ends_with(suffix) {
                let mut tmp = vec![0u8; 4096];
                let k = self.s.read(&mut tmp).await.expect("read");
                if k == 0 {
                    break;
                }
                self.buf.extend_from_slice(&tmp[..k]);
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), fut).await;
        std::mem::take(&mut self.buf)
    }

    /// True if the server closes the connection within 5 s.
    pub async fn is_closed(&mut self) -> bool {
        let fut = async {
            let mut tmp = [0u8; 1024];
            loop {
                match self.s.read(&mut tmp).await {
                    Ok(0) | Err(_) => return true,
                    Ok(_) => continue,
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(5), fut)
            .await
            .unwrap_or(false)
    }
}

/// Polls `GET key` until it returns `want`; fails with `what` once
/// `within` has passed (a write reaching a replica, say).
pub async fn wait_value(
    c: &mut redis::aio::MultiplexedConnection,
    key: &str,
    want: &str,
    within: std::time::Duration,
    what: &str,
) {
    let deadline = std::time::Instant::now() + within;
    loop {
        let v: Option<String> = redis::cmd("GET")
            .arg(key)
            .query_async(c)
            .await
            .expect("GET");
        if v.as_deref() == Some(want) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The value of `field` in INFO `section`.
pub async fn info_field(
    c: &mut redis::aio::MultiplexedConnection,
    section: &str,
    field: &str,
) -> String {
    let info: String = redis::cmd("INFO")
        .arg(section)
        .query_async(c)
        .await
        .expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(|v| v.to_string()))
        .unwrap_or_else(|| panic!("INFO {section} lacks {field}:\n{info}"))
}

/// CONFIG SET one parameter, which must succeed.
pub async fn config_set(c: &mut redis::aio::MultiplexedConnection, k: &str, v: &str) {
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg(k)
        .arg(v)
        .query_async(c)
        .await
        .expect("CONFIG SET");
}

/// Encodes a command as a RESP multibulk.
pub fn resp(args: &[&[u8]]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        v.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        v.extend_from_slice(a);
        v.extend_from_slice(b"\r\n");
    }
    v
}

/// The PIDs of a process's children (from /proc), e.g. a server's
/// snapshot child.
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            }
        }
    }
    out
}

/// DEBUG HTSTATS-KEY's (table sizes, element counts), one pair per bucket
/// array of the value at `key`: two while its table rehashes (an empty
/// array prints no size, as in Redis).
pub async fn htstats_key(
    c: &mut redis::aio::MultiplexedConnection,
    key: &str,
) -> (Vec<u64>, Vec<u64>) {
    let s: String = redis::cmd("DEBUG")
        .arg("HTSTATS-KEY")
        .arg(key)
        .query_async(c)
        .await
        .unwrap();
    let nums = |prefix: &str| -> Vec<u64> {
        s.lines()
            .filter_map(|l| l.strip_prefix(prefix))
            .map(|v| v.parse().unwrap_or_else(|_| panic!("bad line in {s}")))
            .collect()
    };
    (nums(" table size: "), nums(" number of elements: "))
}

/// `n` consecutive free loopback ports for the nodes of a cluster (fixed
/// ports, as `cinnabar cluster` takes), whose cluster bus ports (each
/// port + 10000) are free too.
pub fn free_cluster_ports(n: u16) -> u16 {
    for _ in 0..200 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = l.local_addr().expect("addr").port();
        drop(l);
        if u32::from(base) + 10000 + u32::from(n) > 65000 {
            continue;
        }
        let all_free = [base, base + 10000].iter().all(|&first| {
            (0..n).all(|i| std::net::TcpListener::bind(("127.0.0.1", first + i)).is_ok())
        });
        if all_free {
            return base;
        }
    }
    panic!("no {n} consecutive free ports");
}

/// A child process (a helper server, redis-server in sentinel mode …)
/// killed and reaped when dropped.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
