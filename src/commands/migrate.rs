//! MIGRATE: moves (or copies) keys to another Redis-protocol server, as
//! Redis 7.0 does. For each key that exists, a `RESTORE key ttl payload
//! [REPLACE]` with its DUMP payload goes to the target, pipelined after an
//! optional AUTH and a SELECT, on a connection cached per target for 10 s
//! (INFO `migrate_cached_sockets`). Keys the target acknowledged are
//! deleted here (unless COPY), and the command propagates as a DEL of
//! exactly those keys.
//!
//! Like Redis, the command is synchronous: it holds its keys' shards for
//! the round trip, bounded by its timeout. The worker thread's other
//! connections move to another thread meanwhile (`block_in_place`).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::commands::ctx::Ctx;
use crate::commands::spec::{cmd, Acl, CmdFlags as F, CommandSpec};
use crate::persistence::rdb;
use crate::protocol::args::{eq_ic, int_arg};
use crate::protocol::{CmdError, CmdResult, Reply};

pub const SPECS: &[CommandSpec] = &[cmd("migrate", -6, F::WRITE, migrate)
    .find_keys(migrate_keys)
    .movable_range(3, 3, 1)
    .acl(Acl::KEYSPACE.union(Acl::DANGEROUS))
    .doc(
        "generic",
        "2.6.0",
        "Atomically transfer a key from a Redis instance to another one.",
    )];

/// How long an unused cached connection stays open (Redis's
/// MIGRATE_SOCKET_CACHE_TTL).
const CACHE_TTL: Duration = Duration::from_secs(10);
/// At most this many cached connections (Redis's MIGRATE_SOCKET_CACHE_ITEMS).
const CACHE_MAX: usize = 64;

/// The key positions of a MIGRATE command line (Redis's migrateGetKeys):
/// argument 3, or with `KEYS` (and an empty argument 3) every argument
/// after it. AUTH and AUTH2 values are skipped while looking for `KEYS`.
pub fn migrate_keys(argv: &[Bytes]) -> Vec<usize> {
    let (mut first, mut num) = (3usize, 1usize);
    if argv.len() > 6 {
        let mut i = 6;
        while i < argv.len() {
            let a = &argv[i];
            if eq_ic(a, "keys") {
                if argv[3].is_empty() {
                    first = i + 1;
                    num = argv.len() - first;
                } else {
                    num = 0;
                }
                break;
            }
            if eq_ic(a, "auth") {
                i += 1;
            } else if eq_ic(a, "auth2") {
                i += 2;
            }
            i += 1;
        }
    }
    (first..first + num).filter(|&i| i < argv.len()).collect()
}

/// One cached connection to a MIGRATE target.
struct Cached {
    stream: TcpStream,
    /// The database the connection has selected, if known.
    dbid: Option<i64>,
    last_use: Instant,
}

/// Connections MIGRATE keeps open, by `host:port`.
#[derive(Default)]
pub struct SocketCache(parking_lot::Mutex<HashMap<String, Cached>>);

impl SocketCache {
    /// Cached connections (INFO `migrate_cached_sockets`).
    pub fn len(&self) -> usize {
        self.0.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Closes the connections unused for longer than [`CACHE_TTL`].
    pub fn prune(&self) {
        self.0
            .lock()
            .retain(|_, c| c.last_use.elapsed() <= CACHE_TTL);
    }

    fn take(&self, name: &str) -> Option<Cached> {
        self.0.lock().remove(name)
    }

    fn put(&self, name: String, c: Cached) {
        let mut m = self.0.lock();
        if m.len() >= CACHE_MAX && !m.contains_key(&name) {
            // Full: close one (Redis closes a random one).
            if let Some(k) = m.keys().next().cloned() {
                m.remove(&k);
            }
        }
        m.insert(name, c);
    }
}

/// Parsed MIGRATE options.
struct Options<'a> {
    copy: bool,
    replace: bool,
    user: Option<&'a Bytes>,
    password: Option<&'a Bytes>,
    keys: &'a [Bytes],
}

/// ```text
/// MIGRATE host port key|"" destination-db timeout [COPY] [REPLACE]
///   [AUTH password | AUTH2 username password] [KEYS key [key ...]]
/// ```
fn migrate(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let o = parse(ctx, argv)?;
    let mut timeout = int_arg(&argv[5])?;
    let dbid = int_arg(&argv[4])?;
    if timeout <= 0 {
        timeout = 1000;
    }
    let timeout = Duration::from_millis(timeout as u64);

    // The keys that exist, with their payloads and remaining TTLs.
    let now = ctx.now;
    let compress = ctx.srv.config.rdbcompression();
    let lim = rdb::Limits::from_config(&ctx.srv.config);
    // (key, remaining TTL in ms as RESTORE takes it, payload)
    let mut found: Vec<(&Bytes, String, Vec<u8>)> = Vec::new();
    for k in o.keys {
        let sh = ctx.shard(k)?;
        let ttl = match sh.expire_of(k, now) {
            None => continue,
            Some(None) => 0,
            Some(Some(at)) => at.saturating_sub(now).max(1),
        };
        if let Some(v) = sh.get(k, now) {
            found.push((
                k,
                ttl.to_string(),
                rdb::dump_payload_with(v, compress, &lim),
            ));
        }
    }
    if found.is_empty() {
        return Ok(Reply::Status("NOKEY"));
    }

    let mut req = Vec::new();
    if let Some(p) = o.password {
        match o.user {
            Some(u) => put_command(&mut req, &[b"AUTH", u, p]),
            None => put_command(&mut req, &[b"AUTH", p]),
        }
    }
    let host = String::from_utf8_lossy(&argv[1]).into_owned();
    let port = String::from_utf8_lossy(&argv[2]).into_owned();
    let name = format!("{host}:{port}");
    let cache = &ctx.srv.migrate;

    // One attempt on a cached connection may fail because the target
    // closed it meanwhile: then once more on a fresh one (as Redis retries).
    let mut retried = false;
    let outcome = loop {
        let (mut conn, cached) = match cache.take(&name) {
            Some(c) => (c, true),
            None => match crate::util::blocking(|| connect(&host, &port, timeout)) {
                Some(s) => (
                    Cached {
                        stream: s,
                        dbid: None,
                        last_use: Instant::now(),
                    },
                    false,
                ),
                None => {
                    return Err(CmdError::new(
                        "IOERR error or timeout connecting to the client",
                    ))
                }
            },
        };
        let mut buf = req.clone();
        let select = conn.dbid != Some(dbid);
        if select {
            put_command(&mut buf, &[b"SELECT", dbid.to_string().as_bytes()]);
        }
        for (k, ttl, payload) in &found {
            let restore: [&[u8]; 5] = [b"RESTORE", k, ttl.as_bytes(), payload, b"REPLACE"];
            put_command(&mut buf, &restore[..if o.replace { 5 } else { 4 }]);
        }
        let expect = usize::from(o.password.is_some()) + usize::from(select) + found.len();
        let r = crate::util::blocking(|| exchange(&mut conn.stream, &buf, expect, timeout));
        match r {
            Exchange::Replies(lines) => break (conn, select, lines),
            Exchange::Failed { writing, read_any } => {
                if cached && !read_any && !retried {
                    retried = true;
                    continue;
                }
                return Err(CmdError::new(format!(
                    "IOERR error or timeout {} to target instance",
                    if writing { "writing" } else { "reading" }
                )));
            }
        }
    };
    let (mut conn, select, lines) = outcome;
    let mut lines = lines.into_iter();
    let auth_reply = if o.password.is_some() {
        lines.next()
    } else {
        None
    };
    let select_reply = if select { lines.next() } else { None };
    let setup_error = [auth_reply, select_reply]
        .into_iter()
        .flatten()
        .find(|l| l.starts_with('-'));

    let lazy = ctx.srv.config.lazyfree_lazy_server_del();
    // After a failed AUTH or SELECT no RESTORE counts as acknowledged.
    let setup_failed = setup_error.is_some();
    let mut error = setup_error;
    let mut moved: Vec<Bytes> = vec![Bytes::from_static(b"DEL")];
    for ((k, _, _), line) in found.iter().zip(lines) {
        if setup_failed || line.starts_with('-') {
            error.get_or_insert(line);
            continue;
        }
        if !o.copy && ctx.shard(k)?.delete_with(k, now, lazy) {
            ctx.notify(crate::config::notify::GENERIC, "del", k);
            ctx.changed(1);
            moved.push((*k).clone());
        }
    }
    if moved.len() > 1 {
        ctx.propagate_as(moved);
    }
    // After an error the target's state is unknown: SELECT again next time.
    conn.dbid = error.is_none().then_some(dbid);
    conn.last_use = Instant::now();
    cache.put(name, conn);
    match error {
        Some(e) => Err(CmdError::new(format!(
            "ERR Target instance replied with error: {}",
            e.get(1..).unwrap_or("")
        ))),
        None => Ok(Reply::OK),
    }
}

/// Parses the options after the timeout (Redis's errors and order).
fn parse<'a>(ctx: &mut Ctx<'_>, argv: &'a [Bytes]) -> Result<Options<'a>, CmdError> {
    let mut o = Options {
        copy: false,
        replace: false,
        user: None,
        password: None,
        keys: &argv[3..4],
    };
    let mut j = 6;
    while j < argv.len() {
        let more = argv.len() - 1 - j;
        let a = &argv[j];
        if eq_ic(a, "copy") {
            o.copy = true;
        } else if eq_ic(a, "replace") {
            o.replace = true;
        } else if eq_ic(a, "auth") {
            if more < 1 {
                return Err(CmdError::SYNTAX);
            }
            j += 1;
            ctx.client.redact(j);
            o.password = Some(&argv[j]);
        } else if eq_ic(a, "auth2") {
            if more < 2 {
                return Err(CmdError::SYNTAX);
            }
            ctx.client.redact(j + 1);
            ctx.client.redact(j + 2);
            o.user = Some(&argv[j + 1]);
            o.password = Some(&argv[j + 2]);
            j += 2;
        } else if eq_ic(a, "keys") {
            if !argv[3].is_empty() {
                return Err(CmdError::err(
                    "When using MIGRATE KEYS option, the key argument must be set to the empty string",
                ));
            }
            o.keys = &argv[j + 1..];
            break;
        } else {
            return Err(CmdError::SYNTAX);
        }
        j += 1;
    }
    Ok(o)
}

/// Appends `args` as one RESP command.
fn put_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// Connects to the target within `timeout`.
fn connect(host: &str, port: &str, timeout: Duration) -> Option<TcpStream> {
    let port: u16 = port.parse().ok()?;
    let addrs = (host, port).to_socket_addrs().ok()?;
    for a in addrs {
        if let Ok(s) = TcpStream::connect_timeout(&a, timeout) {
            let _ = s.set_nodelay(true);
            return Some(s);
        }
    }
    None
}

/// What one request/replies round trip gave.
enum Exchange {
    /// One status or error line per command sent.
    Replies(Vec<String>),
    /// A socket error or timeout, while writing or reading, and whether
    /// any reply had arrived.
    Failed { writing: bool, read_any: bool },
}

/// Writes `buf` and reads `expect` one-line replies, each step within
/// `timeout`.
fn exchange(stream: &mut TcpStream, buf: &[u8], expect: usize, timeout: Duration) -> Exchange {
    let failed = |writing, read_any| Exchange::Failed { writing, read_any };
    if stream.set_write_timeout(Some(timeout)).is_err()
        || stream.set_read_timeout(Some(timeout)).is_err()
        || stream.write_all(buf).is_err()
    {
        return failed(true, false);
    }
    let mut r = BufReader::new(&*stream);
    let mut lines = Vec::with_capacity(expect);
    for _ in 0..expect {
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(n) if n > 0 && line.ends_with('\n') => {
                lines.push(line.trim_end_matches(['\r', '\n']).to_string())
            }
            _ => return failed(false, !lines.is_empty()),
        }
    }
    Exchange::Replies(lines)
}
