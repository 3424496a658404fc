//! Differential testing against a real redis-server 7.x, when one is
//! installed (`.ci/run` installs it): the same commands go to both servers
//! and the raw reply bytes must be identical.
#![allow(dead_code)]

use std::net::TcpListener as StdListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::resp;

/// A redis-server child process, killed on drop.
pub struct RedisRef {
    child: Child,
    pub port: u16,
    dir: std::path::PathBuf,
}

impl RedisRef {
    /// Starts `redis-server` on a free loopback port, or returns `None`
    /// (with a note on stderr) when it is not installed.
    pub fn start() -> Option<RedisRef> {
        Self::start_with(&[])
    }

    /// [`RedisRef::start`] with extra arguments (later ones win, e.g.
    /// `--appendonly yes --dir D` to load a data directory).
    pub fn start_with(extra: &[&str]) -> Option<RedisRef> {
        let port = StdListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        // Its own empty directory: a stray dump.rdb in the working
        // directory must not be loaded (the server would answer LOADING).
        let dir = std::env::temp_dir().join(format!("cinnabar-ref-{port}"));
        let _ = std::fs::create_dir_all(&dir);
        let dir_arg = dir.to_string_lossy().into_owned();
        let child = Command::new("redis-server")
            .args([
                "--dir",
                &dir_arg,
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--enable-debug-command",
                "yes",
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(child) = child else {
            eprintln!("note: redis-server not installed; differential checks skipped");
            return None;
        };
        let r = RedisRef { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(r);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not start");
    }
}

impl Drop for RedisRef {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Length of the first complete RESP2/RESP3 value in `b`, if complete.
pub fn reply_len(b: &[u8]) -> Option<usize> {
    fn line(b: &[u8]) -> Option<usize> {
        b.windows(2).position(|w| w == b"\r\n").map(|p| p + 2)
    }
    let first = *b.first()?;
    let l = line(b)?;
    let num = || -> Option<i64> { std::str::from_utf8(&b[1..l - 2]).ok()?.parse().ok() };
    match first {
        b'+' | b'-' | b':' | b',' | b'#' | b'_' | b'(' => Some(l),
        b'$' | b'=' | b'!' => {
            let n = num()?;
            if n < 0 {
                return Some(l);
            }
            let end = l + n as usize + 2;
            (b.len() >= end).then_some(end)
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = num()?;
            if n < 0 {
                return Some(l);
            }
            let count = if first == b'%' || first == b'|' {
                2 * n
            } else {
                n
            };
            let mut off = l;
            for _ in 0..count {
                off += reply_len(&b[off..])?;
            }
            Some(off)
        }
        _ => None,
    }
}

/// A raw connection that reads whole replies.
pub struct Conn {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub async fn connect(port: u16) -> Conn {
        Conn {
            s: TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect"),
            buf: Vec::new(),
        }
    }

    /// Sends one command and returns its raw reply bytes.
    /// [`Conn::call`], or `None` once the server closed the connection.
    pub async fn try_call(&mut self, args: &[&[u8]]) -> Option<Vec<u8>> {
        self.s.write_all(&resp(args)).await.ok()?;
        let fut = async {
            loop {
                if let Some(n) = reply_len(&self.buf) {
                    return Some(self.buf.drain(..n).collect::<Vec<u8>>());
                }
                let mut tmp = [0u8; 16384];
                match self.s.read(&mut tmp).await {
                    Ok(0) | Err(_) => return None,
                    Ok(k) => self.buf.extend_from_slice(&tmp[..k]),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), fut)
            .await
            .expect("reply timeout")
    }

    /// Reads the next reply (or push) without sending anything.
    pub async fn read_reply(&mut self) -> Vec<u8> {
        let fut = async {
            loop {
                if let Some(n) = reply_len(&self.buf) {
                    return self.buf.drain(..n).collect::<Vec<u8>>();
                }
                let mut tmp = [0u8; 16384];
                let k = self.s.read(&mut tmp).await.expect("read");
                assert!(k > 0, "connection closed");
                self.buf.extend_from_slice(&tmp[..k]);
            }
        };
        tokio::time::timeout(Duration::from_secs(10), fut)
            .await
            .expect("reply timeout")
    }

    pub async fn call(&mut self, args: &[&[u8]]) -> Vec<u8> {
        self.s.write_all(&resp(args)).await.expect("write");
        self.read_reply().await
    }
}

/// Runs `script` (commands as whitespace-free argument lists) against both
/// Cinnabar (`ours`) and the reference server and asserts identical raw
/// replies, command by command. Returns false when no redis-server exists.
pub async fn same_replies(ours_port: u16, script: &[Vec<&[u8]>]) -> bool {
    compare(ours_port, script, false).await
}

/// [`same_replies`] on RESP3 connections (HELLO 3 sent to both servers
/// first; its reply carries the client id, so it is not compared).
pub async fn same_replies_resp3(ours_port: u16, script: &[Vec<&[u8]>]) -> bool {
    compare(ours_port, script, true).await
}

async fn compare(ours_port: u16, script: &[Vec<&[u8]>], resp3: bool) -> bool {
    let Some(reference) = RedisRef::start() else {
        return false;
    };
    let mut a = Conn::connect(ours_port).await;
    let mut b = Conn::connect(reference.port).await;
    if resp3 {
        a.call(&[b"HELLO", b"3"]).await;
        b.call(&[b"HELLO", b"3"]).await;
    }
    let mut diffs = Vec::new();
    for cmd in script {
        let ra = a.call(cmd).await;
        let rb = b.call(cmd).await;
        if ra != rb {
            diffs.push(format!(
                "{:?}\n   cinnabar: {:?}\n   redis:    {:?}",
                cmd.iter()
                    .map(|x| String::from_utf8_lossy(x))
                    .collect::<Vec<_>>(),
                String::from_utf8_lossy(&ra),
                String::from_utf8_lossy(&rb)
            ));
        }
    }
    let proto = if resp3 { "RESP3 " } else { "" };
    assert!(
        diffs.is_empty(),
        "{proto}replies differ from redis-server:\n{}",
        diffs.join("\n")
    );
    true
}

/// Splits a script written one command per line (arguments separated by
/// spaces; `''` is the empty string).
pub fn script(text: &str) -> Vec<Vec<&[u8]>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            l.split(' ')
                .map(|a| if a == "''" { &b""[..] } else { a.as_bytes() })
                .collect()
        })
        .collect()
}
