//! Replication, the primary's side, through the real server: a raw
//! SYNC/PSYNC client checks the protocol byte by byte (full resync, the
//! stream, partial resync, acknowledgements and WAIT), and a real
//! redis-server replica (when installed; `.ci/run` installs it) follows
//! Cinnabar through a full resync, live writes of every kind and a partial
//! resync after its link is killed.

mod common;

use std::time::{Duration, Instant};

use common::diff::RedisRef;
use common::{config_set, info_field, resp, wait_value, Raw, TestServer};
use redis::AsyncCommands;

/// Reads one `\r\n`-terminated line from a raw link (skipping the bare
/// newlines a primary sends as keep-alives before the payload).
async fn line(r: &mut Raw) -> String {
    let mut out = Vec::new();
    while !out.ends_with(b"\r\n") {
        let b = r.read_exact_n(1).await;
        assert_eq!(b.len(), 1, "the link closed mid-line");
        if out.is_empty() && b[0] == b'\n' {
            continue; // keep-alive
        }
        out.push(b[0]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads the `$<len>\r\n<payload>` of a full resync; returns the payload.
async fn rdb_payload(r: &mut Raw) -> Vec<u8> {
    let mut head = Vec::new();
    loop {
        let b = r.read_exact_n(1).await;
        assert_eq!(b.len(), 1, "the link closed before the payload");
        if head.is_empty() && b[0] == b'\n' {
            continue; // keep-alive
        }
        head.push(b[0]);
        if head.ends_with(b"\r\n") {
            break;
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let len: usize = head
        .trim_end()
        .strip_prefix('$')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("bad payload header {head:?}"));
    let body = r.read_exact_n(len).await;
    assert_eq!(body.len(), len, "short payload");
    body
}

/// A raw link that took a full resync (`PSYNC ? -1`), then one write
/// after it: returns the link, the replication id and the stream's offset.
async fn synced_link(
    srv: &TestServer,
    c: &mut redis::aio::MultiplexedConnection,
) -> (Raw, String, u64) {
    let mut link = srv.raw().await;
    link.send(b"PSYNC ? -1\r\n").await;
    let full = line(&mut link).await;
    let replid = full.split(' ').nth(1).unwrap().to_string();
    let _ = rdb_payload(&mut link).await;
    let _: () = c.set("k", "v").await.unwrap();
    let off: u64 = info_field(c, "replication", "master_repl_offset")
        .await
        .parse()
        .unwrap();
    (link, replid, off)
}

fn cmd_bytes(args: &[&str]) -> Vec<u8> {
    let v: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    resp(&v)
}

#[tokio::test]
async fn psync_full_then_stream_then_partial_resync_and_wait() {
    let srv = TestServer::start();
    let mut c = srv.conn().await;
    let _: () = c.set("before", "1").await.unwrap();

    // Full resync: +FULLRESYNC <replid> <offset>, then the RDB.
    let mut link = srv.raw().await;
    link.send(b"REPLCONF listening-port 7777\r\n").await;
    assert_eq!(line(&mut link).await, "+OK\r\n");
    link.send(b"PSYNC ? -1\r\n").await;
    let full = line(&mut link).await;
    let parts: Vec<&str> = full.trim_end().split(' ').collect();
    assert_eq!(parts.len(), 3, "{full:?}");
    assert_eq!(parts[0], "+FULLRESYNC");
    let replid = parts[1].to_string();
    assert_eq!(replid.len(), 40);
    let start: u64 = parts[2].parse().unwrap();
    let rdb = rdb_payload(&mut link).await;
    assert!(rdb.starts_with(b"REDIS0"), "not an RDB");
    assert!(
        rdb.windows(6).any(|w| w == b"before"),
        "the snapshot holds the key written before the sync"
    );
    assert_eq!(
        info_field(&mut c, "replication", "master_replid").await,
        replid
    );

    // The stream: a SELECT, then the write, byte for byte.
    let _: () = c.set("k2", "v2").await.unwrap();
    let want = [cmd_bytes(&["SELECT", "0"]), cmd_bytes(&["SET", "k2", "v2"])].concat();
    let got = link.read_exact_n(want.len()).await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&want)
    );
    let off = start + want.len() as u64;
    assert_eq!(
        info_field(&mut c, "replication", "master_repl_offset").await,
        off.to_string()
    );
    assert_eq!(
        info_field(&mut c, "replication", "connected_slaves").await,
        "1"
    );
    let slave0 = info_field(&mut c, "replication", "slave0").await;
    assert!(
        slave0.contains("port=7777") && slave0.contains("state=online"),
        "{slave0}"
    );

    // WAIT: not acknowledged yet, so it times out with 0 (and asks the
    // replica for an ACK down the stream); after the ACK, 1 at once.
    let t0 = Instant::now();
    let n: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(300)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(n, 0);
    assert!(t0.elapsed() >= Duration::from_millis(250));
    let getack = cmd_bytes(&["REPLCONF", "GETACK", "*"]);
    let got = link.read_exact_n(getack.len()).await;
    assert_eq!(got, getack);
    let off = off + getack.len() as u64;
    link.send(&cmd_bytes(&["REPLCONF", "ACK", &off.to_string()]))
        .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let n: i64 = redis::cmd("WAIT")
            .arg(1)
            .arg(100)
            .query_async(&mut c)
            .await
            .unwrap();
        if n == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the ACK never counted");
    }
    let slave0 = info_field(&mut c, "replication", "slave0").await;
    assert!(slave0.contains(&format!("offset={off}")), "{slave0}");
    let role: redis::Value = redis::cmd("ROLE").query_async(&mut c).await.unwrap();
    let text = format!("{role:?}");
    assert!(text.contains("master") && text.contains("7777"), "{text}");
    // Inside MULTI, WAIT answers at once.
    let (n,): (i64,) = redis::pipe()
        .atomic()
        .cmd("WAIT")
        .arg(5)
        .arg(0)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(n, 1);
    // Any WAIT above may have sent another GETACK down the stream.
    let off: u64 = info_field(&mut c, "replication", "master_repl_offset")
        .await
        .parse()
        .unwrap();
    drop(link);

    // The link is gone; the backlog still holds the stream.
    let deadline = Instant::now() + Duration::from_secs(5);
    while info_field(&mut c, "replication", "connected_slaves").await != "0" {
        assert!(Instant::now() < deadline, "the closed link was not removed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _: () = c.set("k3", "v3").await.unwrap();

    // Partial resync from the offset after what the link had received.
    let mut link = srv.raw().await;
    link.send(format!("PSYNC {replid} {}\r\n", off + 1).as_bytes())
        .await;
    assert_eq!(line(&mut link).await, format!("+CONTINUE {replid}\r\n"));
    let want = cmd_bytes(&["SET", "k3", "v3"]);
    let got = link.read_exact_n(want.len()).await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&want)
    );
    assert_eq!(info_field(&mut c, "stats", "sync_partial_ok").await, "1");
    assert_eq!(info_field(&mut c, "stats", "sync_full").await, "1");
    drop(link);

    // An unknown replication id, or an offset the backlog does not hold,
    // gets a full resync.
    for req in [
        "PSYNC 0123456789012345678901234567890123456789 1\r\n".to_string(),
        format!("PSYNC {replid} {}\r\n", off + 1_000_000),
    ] {
        let mut link = srv.raw().await;
        link.send(req.as_bytes()).await;
        let reply = line(&mut link).await;
        assert!(
            reply.starts_with(&format!("+FULLRESYNC {replid} ")),
            "{reply}"
        );
        let rdb = rdb_payload(&mut link).await;
        assert!(rdb.windows(2).any(|w| w == b"k3"));
    }
    assert_eq!(info_field(&mut c, "stats", "sync_partial_err").await, "2");
    assert_eq!(info_field(&mut c, "stats", "sync_full").await, "3");
}

/// The old SYNC (what Redis's test suite uses to watch propagation): the
/// RDB straight away, then the stream, with deterministic forms of
/// relative expirations and MULTI/EXEC around transactions.
#[tokio::test]
async fn diskless_full_sync_streams_the_snapshot_and_waits_for_the_ack() {
    let srv = TestServer::start();
    let mut c = srv.conn().await;
    let _: () = c.set("before", "1").await.unwrap();

    // A replica that reads `$EOF:` gets the snapshot with no length, ended
    // by the 40-byte mark (repl-diskless-sync is yes by default, as Redis 7).
    let mut link = srv.raw().await;
    link.send(b"REPLCONF listening-port 7778 capa eof capa psync2\r\n")
        .await;
    assert_eq!(line(&mut link).await, "+OK\r\n");
    link.send(b"PSYNC ? -1\r\n").await;
    let full = line(&mut link).await;
    let start: u64 = full
        .trim_end()
        .rsplit(' ')
        .next()
        .and_then(|o| o.parse().ok())
        .unwrap_or_else(|| panic!("{full:?}"));
    let head = line(&mut link).await;
    let mark = head
        .trim_end()
        .strip_prefix("$EOF:")
        .unwrap_or_else(|| panic!("not a diskless header: {head:?}"))
        .to_string();
    assert_eq!(mark.len(), 40);
    let body = link.read_until(mark.as_bytes()).await;
    assert!(
        body.ends_with(mark.as_bytes()),
        "the mark ends the snapshot"
    );
    let rdb = &body[..body.len() - 40];
    assert!(rdb.starts_with(b"REDIS0"), "not an RDB");
    assert_eq!(rdb[rdb.len() - 9], 0xFF, "ends with EOF and checksum");
    assert!(rdb.windows(6).any(|w| w == b"before"));

    // The stream waits for the replica's first acknowledgement (it finds
    // the snapshot's end by the mark, so nothing may follow it unasked).
    let _: () = c.set("k2", "v2").await.unwrap();
    let slave0 = info_field(&mut c, "replication", "slave0").await;
    assert!(slave0.contains("state=send_bulk"), "{slave0}");
    link.send(format!("REPLCONF ACK {start}\r\n").as_bytes())
        .await;
    let want = [cmd_bytes(&["SELECT", "0"]), cmd_bytes(&["SET", "k2", "v2"])].concat();
    let got = link.read_exact_n(want.len()).await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&want)
    );
    let slave0 = info_field(&mut c, "replication", "slave0").await;
    assert!(slave0.contains("state=online"), "{slave0}");
    // Replication traffic is counted apart from the clients'.
    let out: usize = info_field(&mut c, "stats", "total_net_repl_output_bytes")
        .await
        .parse()
        .unwrap();
    assert!(out >= rdb.len() + want.len(), "{out}");

    // With repl-diskless-sync no, the same kind of replica gets the file
    // with its length.
    config_set(&mut c, "repl-diskless-sync", "no").await;
    let mut disk = srv.raw().await;
    disk.send(b"REPLCONF capa eof capa psync2\r\n").await;
    assert_eq!(line(&mut disk).await, "+OK\r\n");
    disk.send(b"PSYNC ? -1\r\n").await;
    assert!(line(&mut disk).await.starts_with("+FULLRESYNC "));
    let rdb = rdb_payload(&mut disk).await;
    assert!(rdb.windows(2).any(|w| w == b"k2"));
}

#[tokio::test]
async fn a_replica_that_stops_reading_a_full_sync_is_dropped() {
    for diskless in ["yes", "no"] {
        stuck_replica_is_dropped(diskless).await;
    }
}

async fn stuck_replica_is_dropped(diskless: &str) {
    let srv = TestServer::start_with(&["--repl-timeout", "1", "--repl-diskless-sync", diskless]);
    let mut c = srv.conn().await;
    // ~12 MB of snapshot: more than the socket buffers hold.
    let _: () = redis::cmd("DEBUG")
        .arg("POPULATE")
        .arg(100_000)
        .arg("key")
        .arg(100)
        .query_async(&mut c)
        .await
        .unwrap();
    let mut link = srv.raw().await;
    link.send(b"REPLCONF capa eof\r\n").await;
    assert_eq!(line(&mut link).await, "+OK\r\n");
    link.send(b"PSYNC ? -1\r\n").await;
    assert!(line(&mut link).await.starts_with("+FULLRESYNC "));
    // It reads nothing more: dropped after repl-timeout, and the save it
    // held up ends, so the next BGSAVE runs.
    let deadline = Instant::now() + Duration::from_secs(15);
    while info_field(&mut c, "replication", "connected_slaves").await != "0" {
        assert!(
            Instant::now() < deadline,
            "the stuck replica was never dropped (diskless {diskless})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    while info_field(&mut c, "persistence", "rdb_bgsave_in_progress").await != "0" {
        assert!(Instant::now() < deadline, "the snapshot never ended");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r: String = redis::cmd("BGSAVE").query_async(&mut c).await.unwrap();
    assert_eq!(r, "Background saving started");
    assert!(link.is_closed().await);
}

#[tokio::test]
async fn sync_streams_what_writes_propagate() {
    let srv = TestServer::start();
    let mut c = srv.conn().await;
    let mut link = srv.raw().await;
    link.send(b"SYNC\r\n").await;
    let rdb = rdb_payload(&mut link).await;
    assert!(rdb.starts_with(b"REDIS0"));
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("TYPE")
        .arg("replica")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(
        list.contains("flags=S") && list.contains("cmd=sync"),
        "{list}"
    );
    let normal: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("TYPE")
        .arg("normal")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(!normal.contains("flags=S"), "{normal}");

    let _: () = redis::pipe()
        .atomic()
        .cmd("SET")
        .arg("a")
        .arg("1")
        .ignore()
        .cmd("INCR")
        .arg("a")
        .ignore()
        .query_async(&mut c)
        .await
        .unwrap();
    let _: () = redis::cmd("SELECT")
        .arg(3)
        .query_async(&mut c)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("b")
        .arg("x")
        .arg("EX")
        .arg(100)
        .query_async(&mut c)
        .await
        .unwrap();
    let want_head = [
        cmd_bytes(&["SELECT", "0"]),
        cmd_bytes(&["MULTI"]),
        cmd_bytes(&["SET", "a", "1"]),
        cmd_bytes(&["INCR", "a"]),
        cmd_bytes(&["EXEC"]),
        cmd_bytes(&["SELECT", "3"]),
    ]
    .concat();
    let got = link.read_exact_n(want_head.len()).await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&want_head)
    );
    // SET ... EX becomes SET ... PXAT <absolute ms>.
    let rest = link.read_until(b"\r\n").await;
    let mut rest = rest;
    while rest.iter().filter(|&&b| b == b'\n').count() < 11 {
        rest.extend(link.read_until(b"\r\n").await);
    }
    let text = String::from_utf8_lossy(&rest).into_owned();
    assert!(
        text.starts_with("*5\r\n$3\r\nSET\r\n$1\r\nb\r\n$1\r\nx\r\n"),
        "{text}"
    );
    assert!(text.to_ascii_uppercase().contains("PXAT"), "{text}");

    // Blocking commands, GETSET and the float increments reach replicas as
    // what they did (as Redis 7 rewrites them): a replica never blocks,
    // and float arithmetic is not redone.
    let _: () = redis::cmd("RPUSH")
        .arg("q")
        .arg(&["1", "2", "3", "4"])
        .query_async(&mut c)
        .await
        .unwrap();
    let _: redis::Value = redis::cmd("BLPOP")
        .arg("q")
        .arg(1)
        .query_async(&mut c)
        .await
        .unwrap();
    let _: redis::Value = redis::cmd("BRPOPLPUSH")
        .arg("q")
        .arg("r")
        .arg(1)
        .query_async(&mut c)
        .await
        .unwrap();
    let _: redis::Value = redis::cmd("BLMOVE")
        .arg("q")
        .arg("r")
        .arg("LEFT")
        .arg("RIGHT")
        .arg(1)
        .query_async(&mut c)
        .await
        .unwrap();
    let _: redis::Value = redis::cmd("GETSET")
        .arg("g")
        .arg("v")
        .query_async(&mut c)
        .await
        .unwrap();
    let _: String = redis::cmd("INCRBYFLOAT")
        .arg("f")
        .arg("1.5")
        .query_async(&mut c)
        .await
        .unwrap();
    let _: String = redis::cmd("HINCRBYFLOAT")
        .arg("h")
        .arg("x")
        .arg("2.25")
        .query_async(&mut c)
        .await
        .unwrap();
    // GETDEL is replicated as DEL, LMPOP and ZMPOP as the pops they did,
    // with the count they popped.
    let _: () = redis::cmd("ZADD")
        .arg("z")
        .arg(&["1", "a", "2", "b"])
        .query_async(&mut c)
        .await
        .unwrap();
    // PFCOUNT that refreshes the cached count changes the string: it is
    // propagated (once; the second finds the cache valid).
    for cmd in [
        &["GETDEL", "g"][..],
        &["LMPOP", "2", "nokey", "r", "RIGHT", "COUNT", "5"],
        &["ZMPOP", "1", "z", "MAX", "COUNT", "1"],
        &["PFADD", "hll", "a", "b"],
        &["PFCOUNT", "hll"],
        &["PFCOUNT", "hll"],
    ] {
        let _: redis::Value = redis::cmd(cmd[0])
            .arg(&cmd[1..])
            .query_async(&mut c)
            .await
            .unwrap();
    }
    let want = [
        cmd_bytes(&["RPUSH", "q", "1", "2", "3", "4"]),
        cmd_bytes(&["LPOP", "q"]),
        cmd_bytes(&["RPOPLPUSH", "q", "r"]),
        cmd_bytes(&["LMOVE", "q", "r", "LEFT", "RIGHT"]),
        cmd_bytes(&["SET", "g", "v"]),
        cmd_bytes(&["SET", "f", "1.5", "KEEPTTL"]),
        cmd_bytes(&["HSET", "h", "x", "2.25"]),
        cmd_bytes(&["ZADD", "z", "1", "a", "2", "b"]),
        cmd_bytes(&["DEL", "g"]),
        cmd_bytes(&["RPOP", "r", "2"]),
        cmd_bytes(&["ZPOPMAX", "z", "1"]),
        cmd_bytes(&["PFADD", "hll", "a", "b"]),
        cmd_bytes(&["PFCOUNT", "hll"]),
    ]
    .concat();
    let got = link.read_exact_n(want.len()).await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&want)
    );
    // Nothing more: the second PFCOUNT found its cache valid.
    let _: () = redis::cmd("SET")
        .arg("end")
        .arg("1")
        .query_async(&mut c)
        .await
        .unwrap();
    let want = cmd_bytes(&["SET", "end", "1"]);
    let got = link.read_exact_n(want.len()).await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&want)
    );
}

/// A real redis-server follows Cinnabar: full resync of every type, live
/// writes, and a partial resync after its link is killed.
#[tokio::test]
async fn a_redis_replica_follows_cinnabar() {
    let srv = TestServer::start();
    let mut c = srv.conn().await;
    let _: () = c.set("s", "1").await.unwrap();
    let _: () = c.hset("h", "f", "v").await.unwrap();
    let _: () = c.rpush("l", &["a", "b", "c"]).await.unwrap();
    let _: () = c.zadd("z", "m", 1.5).await.unwrap();
    let _: () = c.sadd("set", "x").await.unwrap();
    let _: () = c.set_ex("ttl", "v", 1000).await.unwrap();
    let big: Vec<(String, String)> = (0..1000)
        .map(|i| (format!("f{i}"), format!("v{i}")))
        .collect();
    let _: () = c.hset_multiple("bighash", &big).await.unwrap();
    let _: () = redis::cmd("XADD")
        .arg("st")
        .arg("1-1")
        .arg("f")
        .arg("v")
        .query_async(&mut c)
        .await
        .unwrap();

    let port = srv.addr.port().to_string();
    let Some(replica) = RedisRef::start_with(&["--replicaof", "127.0.0.1", &port]) else {
        return;
    };
    let rc = redis::Client::open(format!("redis://127.0.0.1:{}/", replica.port)).unwrap();
    let mut r = rc.get_multiplexed_async_connection().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while info_field(&mut r, "replication", "master_link_status").await != "up" {
        assert!(Instant::now() < deadline, "the replica never linked up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let v: String = r.get("s").await.unwrap();
    assert_eq!(v, "1");
    let v: String = r.hget("h", "f").await.unwrap();
    assert_eq!(v, "v");
    let v: Vec<String> = r.lrange("l", 0, -1).await.unwrap();
    assert_eq!(v, ["a", "b", "c"]);
    let v: f64 = r.zscore("z", "m").await.unwrap();
    assert_eq!(v, 1.5);
    let v: bool = r.sismember("set", "x").await.unwrap();
    assert!(v);
    let v: i64 = r.ttl("ttl").await.unwrap();
    assert!((900..=1000).contains(&v), "ttl {v}");
    let v: i64 = r.hlen("bighash").await.unwrap();
    assert_eq!(v, 1000);
    let v: i64 = redis::cmd("XLEN")
        .arg("st")
        .query_async(&mut r)
        .await
        .unwrap();
    assert_eq!(v, 1);

    // Live writes of several kinds.
    let _: () = c.incr("s", 1).await.unwrap();
    let _: () = c.del("set").await.unwrap();
    let _: () = redis::pipe()
        .atomic()
        .set("a", 1)
        .ignore()
        .set("b", 2)
        .ignore()
        .query_async(&mut c)
        .await
        .unwrap();
    let _: () = redis::cmd("EVAL")
        .arg("redis.call('set', KEYS[1], ARGV[1]); redis.call('set', 'undeclared', 'yes')")
        .arg(1)
        .arg("scripted")
        .arg("v")
        .query_async(&mut c)
        .await
        .unwrap();
    let _: () = c.expire("s", 500).await.unwrap();
    let _: () = c.hset("bighash", "f0", "changed").await.unwrap();
    let mut c3 = redis::Client::open(format!("{}3", srv.url()))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = c3.set("in3", "x").await.unwrap();
    let n: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query_async(&mut c3)
        .await
        .unwrap();
    assert_eq!(n, 1);
    let v: String = r.get("s").await.unwrap();
    assert_eq!(v, "2");
    let v: i64 = r.ttl("s").await.unwrap();
    assert!((400..=500).contains(&v), "ttl {v}");
    let v: bool = r.exists("set").await.unwrap();
    assert!(!v);
    let v: (String, String, String, String) = redis::pipe()
        .get("a")
        .get("b")
        .get("scripted")
        .get("undeclared")
        .query_async(&mut r)
        .await
        .unwrap();
    assert_eq!(v, ("1".into(), "2".into(), "v".into(), "yes".into()));
    let v: String = r.hget("bighash", "f0").await.unwrap();
    assert_eq!(v, "changed");
    let mut r3 = redis::Client::open(format!("redis://127.0.0.1:{}/3", replica.port))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let v: String = r3.get("in3").await.unwrap();
    assert_eq!(v, "x");
    assert_eq!(
        info_field(&mut c, "replication", "connected_slaves").await,
        "1"
    );
    let role: redis::Value = redis::cmd("ROLE").query_async(&mut c).await.unwrap();
    assert!(
        format!("{role:?}").contains(&replica.port.to_string()),
        "{role:?}"
    );

    // Kill the link: the replica reconnects and continues (partial).
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("replica")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(killed, 1);
    let _: () = c.set("after", "kill").await.unwrap();
    wait_value(
        &mut r,
        "after",
        "kill",
        Duration::from_secs(20),
        "the replica did not catch up",
    )
    .await;
    assert_eq!(info_field(&mut c, "stats", "sync_partial_ok").await, "1");
    assert_eq!(info_field(&mut c, "stats", "sync_full").await, "1");
    let primary: i64 = redis::cmd("DBSIZE").query_async(&mut c).await.unwrap();
    let copy: i64 = redis::cmd("DBSIZE").query_async(&mut r).await.unwrap();
    assert_eq!(primary, copy);
}

/// `repl-backlog-ttl`: a primary left without replicas frees its backlog
/// after that many seconds and takes a new replication id; the offsets
/// continue, and a returning replica gets a full resync.
#[tokio::test]
async fn the_backlog_is_freed_after_repl_backlog_ttl_without_replicas() {
    let srv = TestServer::start_with(&["--repl-backlog-ttl", "1"]);
    let mut c = srv.conn().await;
    let (link, old_id, off) = synced_link(&srv, &mut c).await;
    assert!(off > 0);
    assert_eq!(
        info_field(&mut c, "replication", "repl_backlog_active").await,
        "1"
    );
    drop(link);
    let deadline = Instant::now() + Duration::from_secs(10);
    while info_field(&mut c, "replication", "repl_backlog_active").await != "0" {
        assert!(Instant::now() < deadline, "the backlog was never freed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_ne!(
        info_field(&mut c, "replication", "master_replid").await,
        old_id
    );
    assert_eq!(
        info_field(&mut c, "replication", "master_repl_offset").await,
        off.to_string()
    );
    // The old history cannot be continued: a full resync at the offset
    // where the stream stands.
    let mut link = srv.raw().await;
    link.send(format!("PSYNC {old_id} {}\r\n", off + 1).as_bytes())
        .await;
    let again = line(&mut link).await;
    assert!(again.starts_with("+FULLRESYNC "), "{again}");
    assert!(again.trim_end().ends_with(&format!(" {off}")), "{again}");
}

/// `redis.set_repl` sends a script's following writes to the AOF, the
/// replicas, both or neither; PUBLISH goes to replicas only, in its place
/// inside a transaction.
#[tokio::test]
async fn set_repl_and_publish_reach_the_consumers_they_name() {
    // `appendfsync always`: each reply waits for its write to the file.
    let srv = TestServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let mut c = srv.conn().await;
    let mut link = srv.raw().await;
    link.send(b"SYNC\r\n").await;
    let _ = rdb_payload(&mut link).await;
    let _: () = redis::cmd("EVAL")
        .arg(
            "redis.call('set','a','1'); redis.set_repl(redis.REPL_NONE); \
             redis.call('set','b','2'); redis.set_repl(redis.REPL_AOF); \
             redis.call('set','c','3'); redis.set_repl(redis.REPL_REPLICA); \
             redis.call('set','d','4'); redis.set_repl(redis.REPL_ALL); \
             redis.call('set','e','5')",
        )
        .arg(0)
        .query_async(&mut c)
        .await
        .unwrap();
    let _: () = redis::pipe()
        .atomic()
        .cmd("SET")
        .arg("f")
        .arg("6")
        .ignore()
        .cmd("PUBLISH")
        .arg("ch")
        .arg("msg")
        .ignore()
        .query_async(&mut c)
        .await
        .unwrap();
    let want = [
        cmd_bytes(&["SELECT", "0"]),
        cmd_bytes(&["MULTI"]),
        cmd_bytes(&["set", "a", "1"]),
        cmd_bytes(&["set", "d", "4"]),
        cmd_bytes(&["set", "e", "5"]),
        cmd_bytes(&["EXEC"]),
        cmd_bytes(&["MULTI"]),
        cmd_bytes(&["SET", "f", "6"]),
        cmd_bytes(&["PUBLISH", "ch", "msg"]),
        cmd_bytes(&["EXEC"]),
    ]
    .concat();
    let got = link.read_exact_n(want.len()).await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&want)
    );
    // The AOF has a, c, e and f, never b or d, nor the PUBLISH.
    let n: i64 = redis::cmd("DBSIZE").query_async(&mut c).await.unwrap();
    assert_eq!(n, 6);
    let dir = srv.dir.path().join("appendonlydir");
    let mut aof = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.to_string_lossy().ends_with(".incr.aof") {
            aof.extend(std::fs::read(&p).unwrap());
        }
    }
    let text = String::from_utf8_lossy(&aof);
    for k in ["$1\r\na\r\n", "$1\r\nc\r\n", "$1\r\ne\r\n", "$1\r\nf\r\n"] {
        assert!(text.contains(k), "{k:?} missing from {text:?}");
    }
    for k in ["$1\r\nb\r\n", "$1\r\nd\r\n", "PUBLISH"] {
        assert!(!text.contains(k), "{k:?} in {text:?}");
    }
}

/// `REPLCONF rdb-filter-only` (redis-cli --functions-rdb, --replica): the
/// snapshot leaves every key out and keeps the functions only when the
/// filter names them; an unknown filter is refused.
#[tokio::test]
async fn rdb_filter_only_leaves_the_keys_out() {
    let srv = TestServer::start();
    let mut c = srv.conn().await;
    let _: () = redis::cmd("DEBUG")
        .arg("POPULATE")
        .arg(1000)
        .query_async(&mut c)
        .await
        .unwrap();
    let _: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("#!lua name=lib1\nredis.register_function('func1', function() return 123 end)")
        .query_async(&mut c)
        .await
        .unwrap();
    let mut bad = srv.raw().await;
    bad.expect(
        &cmd_bytes(&["REPLCONF", "rdb-filter-only", "functions keys"]),
        b"-ERR Unsupported rdb-filter-only option: keys\r\n",
    )
    .await;
    for (filter, libs) in [("functions", 1), ("", 0)] {
        let mut link = srv.raw().await;
        link.expect(
            &cmd_bytes(&["REPLCONF", "rdb-filter-only", filter]),
            b"+OK\r\n",
        )
        .await;
        link.send(b"SYNC\r\n").await;
        let rdb = rdb_payload(&mut link).await;
        // Loaded by a fresh server: no keys, and the functions if asked.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("dump.rdb"), &rdb).unwrap();
        let (mut child, addr) = common::spawn_in(dir.path(), &[]);
        let mut loaded = redis::Client::open(format!("redis://{addr}"))
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let n: i64 = redis::cmd("DBSIZE").query_async(&mut loaded).await.unwrap();
        let list: Vec<redis::Value> = redis::cmd("FUNCTION")
            .arg("LIST")
            .query_async(&mut loaded)
            .await
            .unwrap();
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(n, 0, "filter {filter:?}");
        assert_eq!(list.len(), libs, "filter {filter:?}");
    }
}

/// The backlog keeps about `repl-backlog-size` of history also when the
/// stream grows by one large append (a transaction, a big value): a
/// replica whose offset fell out of that gets a full resync, as from
/// Redis, whose backlog is made of 16 KB blocks (Redis's
/// integration/replication "diskless load swapdb" tests rely on it).
#[tokio::test]
async fn a_large_append_does_not_keep_more_history_than_the_backlog_size() {
    let srv = TestServer::start();
    let mut c = srv.conn().await;
    let (link, replid, off) = synced_link(&srv, &mut c).await;
    drop(link);
    let deadline = Instant::now() + Duration::from_secs(5);
    while info_field(&mut c, "replication", "connected_slaves").await != "0" {
        assert!(Instant::now() < deadline, "the closed link was not removed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    config_set(&mut c, "repl-backlog-size", "16384").await;
    // One transaction: one append of ~160 KB to the stream.
    let big = "A".repeat(16384);
    let mut p = redis::pipe();
    p.atomic();
    for i in 0..10 {
        p.cmd("SET").arg(format!("big{i}")).arg(&big).ignore();
    }
    let () = p.query_async(&mut c).await.unwrap();
    // The new size applies within the 100 ms replication tick.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let hist: u64 = info_field(&mut c, "replication", "repl_backlog_histlen")
            .await
            .parse()
            .unwrap();
        if hist <= 2 * 16384 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the backlog still holds {hist} bytes with repl-backlog-size 16384"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first: u64 = info_field(&mut c, "replication", "repl_backlog_first_byte_offset")
        .await
        .parse()
        .unwrap();
    assert!(first > off + 1, "first byte {first}, old offset {off}");
    let mut link = srv.raw().await;
    link.send(format!("PSYNC {replid} {}\r\n", off + 1).as_bytes())
        .await;
    let reply = line(&mut link).await;
    assert!(reply.starts_with("+FULLRESYNC "), "{reply}");
    assert_eq!(info_field(&mut c, "stats", "sync_partial_err").await, "1");
}

/// A replica that leaves during its full resync takes its snapshot with
/// it: the save stops at once instead of walking the dataset for nobody
/// (and holding back every other save meanwhile), as Redis kills an RDB
/// child no replica waits for.
#[tokio::test]
async fn a_snapshot_for_a_replica_that_left_is_aborted() {
    for diskless in ["no", "yes"] {
        let srv = TestServer::start_with(&[
            "--repl-diskless-sync",
            diskless,
            "--rdb-key-save-delay",
            "1000000",
        ]);
        let mut c = srv.conn().await;
        for i in 0..10 {
            let _: () = c.set(i, i).await.unwrap();
        }
        let mut link = srv.raw().await;
        let capa: &[u8] = if diskless == "yes" {
            b"REPLCONF capa eof\r\n"
        } else {
            b"REPLCONF capa psync2\r\n"
        };
        link.send(capa).await;
        assert_eq!(line(&mut link).await, "+OK\r\n");
        link.send(b"PSYNC ? -1\r\n").await;
        let deadline = Instant::now() + Duration::from_secs(5);
        while info_field(&mut c, "persistence", "rdb_bgsave_in_progress").await != "1" {
            assert!(
                Instant::now() < deadline,
                "the sync's snapshot never started"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(link);
        // Ten keys at a second each: a save left to run takes ten seconds.
        let deadline = Instant::now() + Duration::from_secs(3);
        while info_field(&mut c, "persistence", "rdb_bgsave_in_progress").await != "0" {
            assert!(
                Instant::now() < deadline,
                "diskless {diskless}: the snapshot went on without its replica"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The next save starts at once.
        let _: String = redis::cmd("BGSAVE").query_async(&mut c).await.unwrap();
    }
}

/// `PSYNC ? -1` with `capa eof` on a raw link; returns the link.
async fn ask_full_sync(srv: &TestServer, port: u16) -> Raw {
    let mut link = srv.raw().await;
    link.send(format!("REPLCONF listening-port {port} capa eof capa psync2\r\n").as_bytes())
        .await;
    assert_eq!(line(&mut link).await, "+OK\r\n");
    link.send(b"PSYNC ? -1\r\n").await;
    link
}

/// The offset of a `+FULLRESYNC <id> <offset>` line.
fn fullresync_offset(l: &str) -> u64 {
    l.strip_prefix("+FULLRESYNC ")
        .and_then(|r| r.trim_end().rsplit(' ').next())
        .and_then(|o| o.parse().ok())
        .unwrap_or_else(|| panic!("not a full resync: {l:?}"))
}

async fn rdb_saves(c: &mut redis::aio::MultiplexedConnection) -> u64 {
    info_field(c, "persistence", "rdb_saves")
        .await
        .parse()
        .unwrap()
}

/// Replicas that arrive together share one snapshot, as with Redis: a
/// diskless sync waits `repl-diskless-sync-delay` for more replicas, or
/// until `repl-diskless-sync-max-replicas` have come (here long before
/// the 60 s delay); replicas that ask while another save runs share the
/// snapshot that follows it. Each group gets one save, one offset and the
/// same bytes.
#[tokio::test]
async fn replicas_that_arrive_together_share_one_snapshot() {
    let srv = TestServer::start();
    let mut c = srv.conn().await;
    for i in 0..5 {
        let _: () = c.set(format!("k{i}"), "v").await.unwrap();
    }
    config_set(&mut c, "repl-diskless-sync-delay", "60").await;
    config_set(&mut c, "repl-diskless-sync-max-replicas", "2").await;
    let saves = rdb_saves(&mut c).await;
    let t0 = Instant::now();
    let mut a = ask_full_sync(&srv, 7001).await;
    // The first waits for company: no save yet.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        info_field(&mut c, "persistence", "rdb_bgsave_in_progress").await,
        "0"
    );
    assert_eq!(rdb_saves(&mut c).await, saves);
    let slave0 = info_field(&mut c, "replication", "slave0").await;
    assert!(slave0.contains("state=wait_bgsave"), "{slave0}");
    let mut b = ask_full_sync(&srv, 7002).await;
    let mut bodies = Vec::new();
    let mut offsets = Vec::new();
    for link in [&mut a, &mut b] {
        offsets.push(fullresync_offset(&line(link).await));
        let head = line(link).await;
        let mark = head.trim_end().strip_prefix("$EOF:").unwrap().to_string();
        let body = link.read_until(mark.as_bytes()).await;
        assert!(
            body.ends_with(mark.as_bytes()),
            "the mark ends the snapshot"
        );
        bodies.push(body[..body.len() - 40].to_vec());
    }
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
    assert_eq!(offsets[0], offsets[1]);
    assert!(bodies[0].starts_with(b"REDIS0") && bodies[0] == bodies[1]);
    assert_eq!(rdb_saves(&mut c).await, saves + 1);
    drop((a, b));

    // Disk target: two replicas ask while a BGSAVE runs (5 keys, 0.2 s
    // each), then share the snapshot after it.
    config_set(&mut c, "repl-diskless-sync", "no").await;
    config_set(&mut c, "rdb-key-save-delay", "200000").await;
    let _: () = redis::cmd("BGSAVE").query_async(&mut c).await.unwrap();
    let saves = rdb_saves(&mut c).await;
    let mut a = ask_full_sync(&srv, 7003).await;
    let mut b = ask_full_sync(&srv, 7004).await;
    let mut payloads = Vec::new();
    let mut offsets = Vec::new();
    for link in [&mut a, &mut b] {
        offsets.push(fullresync_offset(&line(link).await));
        payloads.push(rdb_payload(link).await);
    }
    assert_eq!(offsets[0], offsets[1]);
    assert!(payloads[0].starts_with(b"REDIS0") && payloads[0] == payloads[1]);
    assert_eq!(rdb_saves(&mut c).await, saves + 1);
    // Both replicas online: their shared file is gone.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left: Vec<String> = std::fs::read_dir(srv.dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("temp-repl-"))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "left behind: {left:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        info_field(&mut c, "replication", "connected_slaves").await,
        "2"
    );
}

/// A replica's `client-output-buffer-limit` hard limit below
/// `repl-backlog-size` counts as that size (Redis 7): a replica behind by
/// less than the backlog keeps its link; one behind by more is dropped.
/// (20 MB behind: more than the socket buffers can hold for it.)
#[tokio::test]
async fn a_replica_hard_limit_below_the_backlog_size_counts_as_the_backlog_size() {
    let srv = TestServer::start();
    let mut c = srv.conn().await;
    config_set(&mut c, "repl-backlog-size", "40mb").await;
    config_set(&mut c, "client-output-buffer-limit", "replica 64kb 0 0").await;
    // A raw link that never reads what follows its snapshot.
    let (_link, _, _) = synced_link(&srv, &mut c).await;
    let value = "x".repeat(1 << 20);
    for _ in 0..20 {
        let _: () = c.set("big", &value).await.unwrap();
    }
    // Several cron passes (10 a second) see it far behind.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        info_field(&mut c, "replication", "connected_slaves").await,
        "1"
    );
    // 60 MB behind: more than the backlog.
    for _ in 0..40 {
        let _: () = c.set("big", &value).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while info_field(&mut c, "replication", "connected_slaves").await != "0" {
        assert!(Instant::now() < deadline, "the replica was not dropped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A replica's link carries acknowledgements only: `REPLCONF ACK`,
/// `REPLCONF GETACK`, keep-alive newlines and a repeated PSYNC are taken
/// silently, while any command that would answer (its reply would land in
/// the replica's stream as data) drops the link, logged with Redis
/// 7.0.15's texts, without running it.
#[tokio::test]
async fn a_replica_link_that_sends_a_command_with_a_reply_is_dropped() {
    let srv = TestServer::start();
    let mut c = srv.conn().await;
    for (cmd, logged) in [
        (
            &["PING"][..],
            vec!["Replica generated a reply to command 'ping', disconnecting it: id="],
        ),
        (
            &["SLOWLOG", "GET"],
            vec!["Replica generated a reply to command 'slowlog|get', disconnecting it: "],
        ),
        (
            &["SET", "taken", "1"],
            vec![
                "Replica generated a reply to command 'set', disconnecting it: ",
                "== CRITICAL == This master is sending an error to its replica: 'Replica can't interact with the keyspace' after processing the command 'set'",
            ],
        ),
        (
            &["NOSUCHCMD", "x"],
            vec!["== CRITICAL == This master is sending an error to its replica: 'unknown command 'NOSUCHCMD', with args beginning with: 'x' ' after processing the command '<unknown>'"],
        ),
    ] {
        let (mut link, _, off) = synced_link(&srv, &mut c).await;
        link.send(format!("REPLCONF ACK {off}\r\n\nREPLCONF GETACK *\r\nPSYNC ? -1\r\n").as_bytes())
            .await;
        // Still attached, its acknowledgement recorded.
        let want = format!("offset={off},");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let slave0 = info_field(&mut c, "replication", "slave0").await;
            if slave0.contains(&want) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{slave0:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        link.send(&cmd_bytes(cmd)).await;
        assert!(link.is_closed().await, "{cmd:?}: the link stayed open");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        for l in logged {
            while !srv.log().contains(l) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{cmd:?}: no {l:?} in the log"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    // Nothing ran: the SET did not happen.
    let v: Option<String> = c.get("taken").await.unwrap();
    assert_eq!(v, None);
    // A replica that announced no port is named as Redis names it.
    let log = srv.log();
    assert!(
        log.contains(
            "Replica 127.0.0.1:<unknown-replica-port> asks for synchronization; starting a full resynchronization"
        ),
        "{log}"
    );
}
