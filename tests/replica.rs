//! Replication, the replica's side, through real servers: a Cinnabar
//! replica follows a Cinnabar primary (started with `--replicaof`) and a
//! real redis-server primary (with REPLICAOF at runtime): full resync,
//! the live stream, read-only refusals, partial resync after the link is
//! killed, and a failover rehearsal (REPLICAOF NO ONE, the old primary
//! rejoining the promoted one with a partial resync).

mod common;

use std::time::{Duration, Instant};

use common::diff::RedisRef;
use common::{info_field, wait_value, TestServer};
use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;

async fn connect(port: u16, db: u32) -> MultiplexedConnection {
    redis::Client::open(format!("redis://127.0.0.1:{port}/{db}"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Waits until INFO replication says `field:value`.
async fn wait_info(c: &mut MultiplexedConnection, field: &str, value: &str) {
    wait_info_in(c, "replication", field, value).await;
}

async fn wait_acked(c: &mut MultiplexedConnection, n: i64) {
    let got: i64 = redis::cmd("WAIT")
        .arg(n)
        .arg(10_000)
        .query_async(c)
        .await
        .unwrap();
    assert_eq!(got, n, "WAIT {n}");
}

async fn digest(c: &mut MultiplexedConnection) -> String {
    redis::cmd("DEBUG")
        .arg("DIGEST")
        .query_async(c)
        .await
        .unwrap()
}

/// Asserts two servers hold the same dataset (DEBUG DIGEST), naming the
/// keys of db 0 that differ when they do not.
async fn same_data(a: &mut MultiplexedConnection, b: &mut MultiplexedConnection) {
    if digest(a).await == digest(b).await {
        return;
    }
    let mut keys: Vec<String> = a.keys("*").await.unwrap();
    let more: Vec<String> = b.keys("*").await.unwrap();
    keys.extend(more);
    keys.sort();
    keys.dedup();
    let mut differ = Vec::new();
    for k in keys {
        let da: Vec<String> = redis::cmd("DEBUG")
            .arg("DIGEST-VALUE")
            .arg(&k)
            .query_async(a)
            .await
            .unwrap();
        let db: Vec<String> = redis::cmd("DEBUG")
            .arg("DIGEST-VALUE")
            .arg(&k)
            .query_async(b)
            .await
            .unwrap();
        if da != db {
            differ.push(k);
        }
    }
    panic!("the datasets differ; keys of db 0: {differ:?}");
}

async fn fill(c: &mut MultiplexedConnection) {
    let _: () = c.set("s", "1").await.unwrap();
    let _: () = c.hset("h", "f", "v").await.unwrap();
    let _: () = c.rpush("l", &["a", "b", "c"]).await.unwrap();
    let _: () = c.zadd("z", "m", 1.5).await.unwrap();
    let _: () = c.sadd("set", &["x", "y"]).await.unwrap();
    let _: () = c.set_ex("ttl", "v", 1000).await.unwrap();
    let big: Vec<(String, String)> = (0..600)
        .map(|i| (format!("f{i}"), format!("v{i}")))
        .collect();
    let _: () = c.hset_multiple("bighash", &big).await.unwrap();
    let _: () = redis::cmd("XADD")
        .arg("st")
        .arg("1-1")
        .arg("f")
        .arg("v")
        .query_async(c)
        .await
        .unwrap();
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg("st")
        .arg("g")
        .arg("0")
        .query_async(c)
        .await
        .unwrap();
    let _: i64 = redis::cmd("PFADD")
        .arg("hll")
        .arg(&["a", "b", "c"])
        .query_async(c)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_cinnabar_replica_follows_fails_over_and_is_followed_back() {
    let primary = TestServer::start();
    let mut p = primary.conn().await;
    fill(&mut p).await;
    let pport = primary.addr.port().to_string();
    let replica = TestServer::start_with(&["--replicaof", "127.0.0.1", &pport]);
    let rport = replica.addr.port();
    let mut r = replica.conn().await;
    wait_info(&mut r, "master_link_status", "up").await;
    assert_eq!(info_field(&mut r, "replication", "role").await, "slave");
    assert_eq!(
        info_field(&mut r, "replication", "master_port").await,
        pport
    );
    // The full resync brought every type.
    same_data(&mut r, &mut p).await;
    let ttl: i64 = r.ttl("ttl").await.unwrap();
    assert!((900..=1000).contains(&ttl), "ttl {ttl}");

    // The live stream: plain writes, a transaction, a script touching an
    // undeclared key, another database, expiry, a stream's group.
    let _: () = p.incr("s", 1).await.unwrap();
    let _: () = p.del("set").await.unwrap();
    let _: () = redis::pipe()
        .atomic()
        .set("a", 1)
        .ignore()
        .lpush("l", "z")
        .ignore()
        .query_async(&mut p)
        .await
        .unwrap();
    let _: () = redis::cmd("EVAL")
        .arg("redis.call('set', KEYS[1], ARGV[1]); redis.call('set', 'undeclared', 'yes')")
        .arg(1)
        .arg("scripted")
        .arg("v")
        .query_async(&mut p)
        .await
        .unwrap();
    let _: () = p.expire("s", 500).await.unwrap();
    let _: () = p.pset_ex("short", "gone", 50).await.unwrap();
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("g")
        .arg("c1")
        .arg("STREAMS")
        .arg("st")
        .arg(">")
        .query_async(&mut p)
        .await
        .unwrap();
    let mut p3 = connect(primary.addr.port(), 3).await;
    let _: () = p3.set("in3", "x").await.unwrap();
    wait_acked(&mut p3, 1).await;
    // `short` expires on the primary, whose DEL reaches the replica.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let gone: bool = p.exists("short").await.unwrap();
    assert!(!gone);
    wait_acked(&mut p, 1).await;
    same_data(&mut r, &mut p).await;
    let mut r3 = connect(rport, 3).await;
    let v: String = r3.get("in3").await.unwrap();
    assert_eq!(v, "x");
    let pending: redis::Value = redis::cmd("XPENDING")
        .arg("st")
        .arg("g")
        .query_async(&mut r)
        .await
        .unwrap();
    assert!(format!("{pending:?}").contains("c1"), "{pending:?}");
    // Offsets agree once acknowledged.
    let poff = info_field(&mut p, "replication", "master_repl_offset").await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while info_field(&mut r, "replication", "slave_repl_offset").await != poff {
        assert!(Instant::now() < deadline, "offsets never met");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A read-only replica refuses writes, also queued in a transaction.
    let e = r.set::<_, _, ()>("x", 1).await.unwrap_err();
    assert_eq!(e.code(), Some("READONLY"), "{e:?}");
    let mut raw = replica.raw().await;
    raw.send(b"MULTI\r\nSET x 1\r\nEXEC\r\n").await;
    let got = raw.read_until(b"previous errors.\r\n").await;
    assert!(
        String::from_utf8_lossy(&got)
            .contains("-READONLY You can't write against a read only replica."),
        "{}",
        String::from_utf8_lossy(&got)
    );
    // Reads and the roles.
    let v: String = r.get("s").await.unwrap();
    assert_eq!(v, "2");
    let role: redis::Value = redis::cmd("ROLE").query_async(&mut r).await.unwrap();
    let role = format!("{role:?}");
    assert!(
        role.contains("slave") && role.contains("connected") && role.contains(&pport),
        "{role}"
    );
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("TYPE")
        .arg("master")
        .query_async(&mut r)
        .await
        .unwrap();
    assert!(list.contains("flags=M"), "{list}");

    // Kill the link: the replica reconnects and continues where it was.
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("master")
        .query_async(&mut r)
        .await
        .unwrap();
    assert_eq!(killed, 1);
    let _: () = p.set("after_kill", "1").await.unwrap();
    wait_info(&mut r, "master_link_status", "up").await;
    wait_acked(&mut p, 1).await;
    let v: String = r.get("after_kill").await.unwrap();
    assert_eq!(v, "1");
    assert_eq!(info_field(&mut p, "stats", "sync_full").await, "1");
    assert_eq!(info_field(&mut p, "stats", "sync_partial_ok").await, "1");

    // Failover: the replica is promoted...
    let old_id = info_field(&mut p, "replication", "master_replid").await;
    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query_async(&mut r)
        .await
        .unwrap();
    assert_eq!(info_field(&mut r, "replication", "role").await, "master");
    assert_eq!(
        info_field(&mut r, "replication", "master_replid2").await,
        old_id
    );
    let _: () = r.set("promoted", "yes").await.unwrap();
    // ... and the old primary follows it, continuing its own history.
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(rport)
        .query_async(&mut p)
        .await
        .unwrap();
    wait_info(&mut p, "master_link_status", "up").await;
    wait_acked(&mut r, 1).await;
    let v: String = p.get("promoted").await.unwrap();
    assert_eq!(v, "yes");
    assert_eq!(info_field(&mut r, "stats", "sync_partial_ok").await, "1");
    assert_eq!(info_field(&mut r, "stats", "sync_full").await, "0");
    let e = p.set::<_, _, ()>("x", 1).await.unwrap_err();
    assert_eq!(e.code(), Some("READONLY"));
    same_data(&mut r, &mut p).await;
    let again: String = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(rport)
        .query_async(&mut p)
        .await
        .unwrap();
    assert_eq!(again, "OK Already connected to specified master");
    let e = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg("notaport")
        .query_async::<()>(&mut p)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("Invalid master port"), "{e}");
}

/// SHUTDOWN SAVE, as a restart does it.
async fn shut_down(srv: &mut TestServer, c: &mut MultiplexedConnection) {
    let _ = redis::cmd("SHUTDOWN")
        .arg("SAVE")
        .query_async::<()>(c)
        .await;
    assert!(
        srv.wait_exit(Duration::from_secs(20)).is_some(),
        "still running after SHUTDOWN"
    );
}

#[tokio::test]
async fn restarted_servers_continue_replication_partially() {
    let mut primary = TestServer::start();
    let mut p = primary.conn().await;
    fill(&mut p).await;
    let pport = primary.addr.port().to_string();
    let mut replica = TestServer::start_with(&["--replicaof", "127.0.0.1", &pport]);
    let mut r = replica.conn().await;
    wait_info(&mut r, "master_link_status", "up").await;
    let _: () = redis::cmd("SELECT")
        .arg(3)
        .query_async(&mut p)
        .await
        .unwrap();
    let _: () = p.set("in-db3", "x").await.unwrap();
    wait_acked(&mut p, 1).await;

    // The replica restarts: its RDB holds the primary's id and offset
    // (and the stream's database), so it continues where it was.
    shut_down(&mut replica, &mut r).await;
    let _: () = p.set("while-down", "1").await.unwrap();
    replica.restart_with(&["--replicaof", "127.0.0.1", &pport]);
    let mut r = replica.conn().await;
    wait_info(&mut r, "master_link_status", "up").await;
    assert_eq!(info_field(&mut p, "stats", "sync_full").await, "1");
    assert_eq!(info_field(&mut p, "stats", "sync_partial_ok").await, "1");
    wait_acked(&mut p, 1).await;
    let mut r3 = connect(replica.addr.port(), 3).await;
    let v: String = r3.get("while-down").await.unwrap();
    assert_eq!(v, "1", "the continued stream kept its database");
    same_data(&mut r, &mut p).await;

    // The primary restarts: SHUTDOWN waits for the replica to have
    // everything (no WAIT here), the RDB keeps the position, and the
    // restarted primary lets the replica continue under its old id.
    let old_id = info_field(&mut p, "replication", "master_replid").await;
    let old_offset: u64 = info_field(&mut p, "replication", "master_repl_offset")
        .await
        .parse()
        .unwrap();
    let _: () = p.set("last-before-restart", "1").await.unwrap();
    shut_down(&mut primary, &mut p).await;
    primary.restart_with(&[]);
    let mut p = primary.conn().await;
    assert_eq!(
        info_field(&mut p, "replication", "master_replid2").await,
        old_id
    );
    let second: u64 = info_field(&mut p, "replication", "second_repl_offset")
        .await
        .parse()
        .unwrap();
    assert!(
        second > old_offset,
        "second_repl_offset {second} <= {old_offset}"
    );
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(primary.addr.port())
        .query_async(&mut r)
        .await
        .unwrap();
    wait_info(&mut r, "master_link_status", "up").await;
    assert_eq!(info_field(&mut p, "stats", "sync_full").await, "0");
    assert_eq!(info_field(&mut p, "stats", "sync_partial_ok").await, "1");
    let v: String = r3.get("last-before-restart").await.unwrap_or_default();
    assert_eq!(v, "1", "the replica had the last write before the restart");
    let _: () = p.set("after-restart", "1").await.unwrap();
    wait_acked(&mut p, 1).await;
    same_data(&mut r, &mut p).await;
}

/// WAIT counts replicas that attach while it waits, as Redis does: issued
/// when no replica is connected (or while one reconnects), it returns as
/// soon as the newcomer acknowledges, not at its timeout; meanwhile the
/// client counts as blocked.
#[tokio::test]
async fn wait_counts_a_replica_that_attaches_while_it_waits() {
    let primary = TestServer::start();
    let mut p = primary.conn().await;
    let _: () = p.set("k", 1).await.unwrap();
    let mut waiting = primary.conn().await;
    let started = Instant::now();
    let wait = tokio::spawn(async move {
        let _: () = waiting.set("k2", 2).await.unwrap();
        redis::cmd("WAIT")
            .arg(1)
            .arg(20_000)
            .query_async::<i64>(&mut waiting)
            .await
            .unwrap()
    });
    wait_info_in(&mut p, "clients", "blocked_clients", "1").await;
    let pport = primary.addr.port().to_string();
    let replica = TestServer::start_with(&["--replicaof", "127.0.0.1", &pport]);
    let got = tokio::time::timeout(Duration::from_secs(15), wait)
        .await
        .expect("WAIT still blocked once the replica acknowledged")
        .unwrap();
    assert_eq!(got, 1);
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(info_field(&mut p, "clients", "blocked_clients").await, "0");
    let mut r = replica.conn().await;
    let v: i64 = r.get("k2").await.unwrap();
    assert_eq!(v, 2);
}

#[tokio::test]
async fn shutdown_waits_for_a_lagging_replica_until_aborted() {
    let primary = TestServer::start_with(&["--shutdown-timeout", "30"]);
    let mut p = primary.conn().await;
    let pport = primary.addr.port().to_string();
    let replica = TestServer::start_with(&["--replicaof", "127.0.0.1", &pport]);
    let mut r = replica.conn().await;
    wait_info(&mut r, "master_link_status", "up").await;
    let _: () = p.set("k", 1).await.unwrap();
    wait_acked(&mut p, 1).await;

    // A stopped replica cannot acknowledge the next write.
    // SAFETY: signalling a child process this test started.
    unsafe { libc::kill(replica.pid() as i32, libc::SIGSTOP) };
    let _: () = p.incr("k", 1).await.unwrap();
    let mut waiting = primary.conn().await;
    let shut = tokio::spawn(async move {
        redis::cmd("SHUTDOWN")
            .query_async::<()>(&mut waiting)
            .await
            .unwrap_err()
            .to_string()
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: u64 = info_field(&mut p, "server", "shutdown_in_milliseconds")
            .await
            .parse()
            .unwrap();
        if left > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the shutdown never waited");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(info_field(&mut p, "clients", "blocked_clients").await, "1");
    // Writes wait meanwhile (CLIENT PAUSE WRITE); reads go on.
    let v: i64 = p.get("k").await.unwrap();
    assert_eq!(v, 2);
    let ok: String = redis::cmd("SHUTDOWN")
        .arg("ABORT")
        .query_async(&mut p)
        .await
        .unwrap();
    assert_eq!(ok, "OK");
    let e = tokio::time::timeout(Duration::from_secs(10), shut)
        .await
        .expect("SHUTDOWN still waiting after ABORT")
        .unwrap();
    assert!(e.contains("Errors trying to SHUTDOWN"), "{e}");
    // Still serving, writes again.
    let _: () = p.set("after", 1).await.unwrap();
    assert_eq!(
        info_field(&mut p, "server", "shutdown_in_milliseconds").await,
        "0"
    );
    // SAFETY: as above.
    unsafe { libc::kill(replica.pid() as i32, libc::SIGCONT) };
    wait_acked(&mut p, 1).await;
    let v: i64 = r.get("k").await.unwrap();
    assert_eq!(v, 2);
}

#[tokio::test]
async fn client_pause_write_holds_the_primary_stream_on_a_replica() {
    let primary = TestServer::start_with(&["--repl-ping-replica-period", "3600"]);
    let replica =
        TestServer::start_with(&["--replicaof", "127.0.0.1", &primary.addr.port().to_string()]);
    let mut p = primary.conn().await;
    let mut r = replica.conn().await;
    wait_info(&mut r, "master_link_status", "up").await;
    let _: () = p.set("foo", "bar").await.unwrap();
    wait_acked(&mut p, 1).await;
    let before = info_field(&mut r, "replication", "slave_repl_offset").await;

    // A paused replica reads its primary's writes but does not apply them.
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(100_000)
        .arg("WRITE")
        .query_async(&mut r)
        .await
        .unwrap();
    let _: () = p.set("foo2", "bar2").await.unwrap();
    let end = info_field(&mut p, "replication", "master_repl_offset").await;
    wait_info(&mut r, "slave_read_repl_offset", &end).await;
    assert_eq!(
        info_field(&mut r, "replication", "slave_repl_offset").await,
        before
    );
    let v: Option<String> = r.get("foo2").await.unwrap();
    assert_eq!(v, None, "reads still run, and the write is held");

    // Unpaused, it catches up.
    let _: () = redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query_async(&mut r)
        .await
        .unwrap();
    wait_info(&mut r, "slave_repl_offset", &end).await;
    let v: Option<String> = r.get("foo2").await.unwrap();
    assert_eq!(v.as_deref(), Some("bar2"));
}

/// WAIT issued while a replica is still in its full sync counts it once
/// it is online (Redis's own tests WAIT right after REPLICAOF).
#[tokio::test]
async fn wait_counts_a_replica_still_in_its_full_sync() {
    let primary = TestServer::start_with(&["--rdb-key-save-delay", "100000"]);
    let mut p = primary.conn().await;
    for i in 0..5 {
        let _: () = p.set(format!("k{i}"), i).await.unwrap();
    }
    let replica =
        TestServer::start_with(&["--replicaof", "127.0.0.1", &primary.addr.port().to_string()]);
    let mut r = replica.conn().await;
    wait_info(&mut r, "master_sync_in_progress", "1").await;
    let _: () = p.set("after", "1").await.unwrap();
    let got: i64 = tokio::time::timeout(
        Duration::from_secs(20),
        redis::cmd("WAIT").arg(1).arg(0).query_async(&mut p),
    )
    .await
    .expect("WAIT 1 0 never returned")
    .unwrap();
    assert_eq!(got, 1);
    let v: Option<String> = r.get("after").await.unwrap();
    assert_eq!(v.as_deref(), Some("1"));
}

/// A big value from the primary leaves no oversized buffers on the
/// replica: once applied, the replica uses about the memory the primary
/// does (before, the read buffers kept up to three times the value).
#[tokio::test]
async fn a_big_value_leaves_no_oversized_stream_buffers() {
    let (_primary, _replica, mut p, mut r) = primary_and_replica().await;
    let big = vec![b'x'; 32 << 20];
    let _: () = p.set("key", big).await.unwrap();
    wait_acked(&mut p, 1).await;
    let used = |s: String| s.parse::<u64>().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pm = used(info_field(&mut p, "memory", "used_memory").await);
        let rm = used(info_field(&mut r, "memory", "used_memory").await);
        if rm <= pm + (10 << 20) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "replica uses {rm} bytes, primary {pm}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `bind-source-addr`: the replica's link leaves from that address, which
/// the primary sees as the replica's.
#[tokio::test]
async fn the_replica_link_leaves_from_bind_source_addr() {
    let primary = TestServer::start();
    let replica = TestServer::start_with(&[
        "--bind-source-addr",
        "127.0.0.2",
        "--replicaof",
        "127.0.0.1",
        &primary.addr.port().to_string(),
    ]);
    let mut p = primary.conn().await;
    let mut r = replica.conn().await;
    wait_info(&mut r, "master_link_status", "up").await;
    let slave0 = info_field(&mut p, "replication", "slave0").await;
    assert!(slave0.starts_with("ip=127.0.0.2,"), "{slave0}");
}

/// Reads one RESP command (an array of bulk strings) from a replica's
/// link; `None` when it closed.
async fn read_command(s: &mut tokio::io::BufReader<tokio::net::TcpStream>) -> Option<Vec<String>> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let mut line = String::new();
    loop {
        line.clear();
        if s.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        if line.starts_with('*') {
            break;
        }
    }
    let n: usize = line[1..].trim().parse().ok()?;
    let mut out = Vec::new();
    for _ in 0..n {
        line.clear();
        s.read_line(&mut line).await.ok()?;
        let len: usize = line.trim().strip_prefix('$')?.parse().ok()?;
        let mut b = vec![0u8; len + 2];
        s.read_exact(&mut b).await.ok()?;
        b.truncate(len);
        out.push(String::from_utf8_lossy(&b).into_owned());
    }
    Some(out)
}

#[tokio::test]
async fn a_diskless_snapshot_whose_mark_arrives_in_pieces() {
    use tokio::io::AsyncWriteExt;
    // A real RDB, from a server asked for a disk-based sync.
    let src = TestServer::start_with(&["--repl-diskless-sync", "no"]);
    let mut sc = src.conn().await;
    let _: () = sc.set("k", "v").await.unwrap();
    let mut link = src.raw().await;
    link.send(b"PSYNC ? -1\r\n").await;
    // `+FULLRESYNC …`, keep-alive newlines, then `$<len>`, byte by byte.
    let mut head = Vec::new();
    while !(head.contains(&b'$') && head.ends_with(b"\r\n")) {
        let b = link.read_exact_n(1).await;
        assert_eq!(b.len(), 1, "the link closed before the payload");
        head.extend(b);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let len: usize = text
        .rsplit('$')
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("{text:?}"));
    let rdb = link.read_exact_n(len).await;
    assert!(rdb.starts_with(b"REDIS0"));

    // A primary played by hand: it answers the handshake, sends the
    // snapshot diskless with its closing mark cut into single bytes, and
    // the first command of the stream right behind the mark's last byte.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mark = "0123456789abcdef0123456789abcdef01234567";
    let fake = tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        let mut s = tokio::io::BufReader::new(sock);
        let mut saw_eof_capa = false;
        while let Some(cmd) = read_command(&mut s).await {
            let name = cmd[0].to_ascii_lowercase();
            let w = s.get_mut();
            match name.as_str() {
                "ping" => w.write_all(b"+PONG\r\n").await.unwrap(),
                // REPLCONF ACK gets no reply (it would be stream data).
                "replconf" if !cmd[1].eq_ignore_ascii_case("ack") => {
                    saw_eof_capa |= cmd.iter().any(|a| a.eq_ignore_ascii_case("eof"));
                    w.write_all(b"+OK\r\n").await.unwrap();
                }
                "psync" => {
                    assert!(saw_eof_capa, "the replica announces capa eof");
                    let id = "f".repeat(40);
                    w.write_all(format!("+FULLRESYNC {id} 0\r\n$EOF:{mark}\r\n").as_bytes())
                        .await
                        .unwrap();
                    w.write_all(&rdb).await.unwrap();
                    let m = mark.as_bytes();
                    for b in &m[..m.len() - 1] {
                        w.write_all(&[*b]).await.unwrap();
                        w.flush().await.unwrap();
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    let mut last = vec![m[m.len() - 1]];
                    last.extend_from_slice(b"*3\r\n$3\r\nSET\r\n$5\r\nafter\r\n$1\r\n1\r\n");
                    w.write_all(&last).await.unwrap();
                    w.flush().await.unwrap();
                }
                _ => {} // REPLCONF ACK and the like
            }
        }
    });
    let replica = TestServer::start_with(&["--replicaof", "127.0.0.1", &port.to_string()]);
    let mut r = replica.conn().await;
    wait_info(&mut r, "master_link_status", "up").await;
    wait_value(
        &mut r,
        "after",
        "1",
        Duration::from_secs(10),
        "the command after the mark was lost",
    )
    .await;
    let v: Option<String> = r.get("k").await.unwrap();
    assert_eq!(v.as_deref(), Some("v"));
    assert_eq!(
        info_field(&mut r, "replication", "slave_repl_offset").await,
        "31"
    );
    drop(replica);
    let _ = tokio::time::timeout(Duration::from_secs(5), fake).await;
}

#[tokio::test]
async fn serve_stale_data_no_answers_masterdown_while_the_link_is_down() {
    // A primary that is not there: the link never comes up.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let replica = TestServer::start_with(&[
        "--replicaof",
        "127.0.0.1",
        &free.to_string(),
        "--replica-serve-stale-data",
        "no",
    ]);
    let mut r = replica.conn().await;
    let e = r.get::<_, Option<String>>("k").await.unwrap_err();
    assert_eq!(e.code(), Some("MASTERDOWN"), "{e:?}");
    // Commands flagged stale still run.
    assert_eq!(
        info_field(&mut r, "replication", "master_link_status").await,
        "down"
    );
    let role: redis::Value = redis::cmd("ROLE").query_async(&mut r).await.unwrap();
    assert!(format!("{role:?}").contains("connect"), "{role:?}");
    // PING is not flagged stale (as in Redis).
    let e = redis::cmd("PING")
        .query_async::<String>(&mut r)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("MASTERDOWN"), "{e:?}");
    // A transaction queued while stale data was allowed, run after it is
    // no longer: its
    // EXEC is refused whole.
    let mut raw = replica.raw().await;
    raw.send(b"MULTI\r\n").await;
    let _ = raw.read_until(b"OK\r\n").await;
    common::config_set(&mut r, "replica-serve-stale-data", "yes").await;
    raw.send(b"GET k\r\n").await;
    let _ = raw.read_until(b"QUEUED\r\n").await;
    common::config_set(&mut r, "replica-serve-stale-data", "no").await;
    raw.send(b"EXEC\r\n").await;
    let got = raw.read_until(b"'no'.\r\n").await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        "-EXECABORT Transaction discarded because of: MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.\r\n"
    );
    // Stale data is served again once allowed.
    common::config_set(&mut r, "replica-serve-stale-data", "yes").await;
    let v: Option<String> = r.get("k").await.unwrap();
    assert_eq!(v, None);
    // A replica whose link is down refuses to feed replicas of its own.
    let mut raw = replica.raw().await;
    raw.send(b"PSYNC ? -1\r\n").await;
    let got = raw.read_until(b"my master\r\n").await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        "-NOMASTERLINK Can't SYNC while not connected with my master\r\n"
    );
}

/// Every key of db 0 as (type, canonical value) read through commands, for
/// comparing two servers whose encodings may differ.
/// XADD and XTRIM with approximate trims and LIMIT (also inside MULTI),
/// on a stream of 300 entries in nodes of 10.
async fn stream_trims_with_limit(p: &mut MultiplexedConnection) {
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("stream-node-max-entries")
        .arg("10")
        .query_async(p)
        .await
        .unwrap();
    for i in 1..=300 {
        let _: String = redis::cmd("XADD")
            .arg("trimmed")
            .arg(format!("{i}-1"))
            .arg("f")
            .arg(i)
            .query_async(p)
            .await
            .unwrap();
    }
    let _: String = redis::cmd("XADD")
        .arg("trimmed")
        .arg("MINID")
        .arg("~")
        .arg("150")
        .arg("LIMIT")
        .arg("30")
        .arg("*")
        .arg("f")
        .arg("x")
        .query_async(p)
        .await
        .unwrap();
    let _: () = redis::pipe()
        .atomic()
        .cmd("XADD")
        .arg("trimmed")
        .arg("MAXLEN")
        .arg("~")
        .arg("100")
        .arg("LIMIT")
        .arg("20")
        .arg("*")
        .arg("f")
        .arg("y")
        .ignore()
        .cmd("XTRIM")
        .arg("trimmed")
        .arg("MAXLEN")
        .arg("~")
        .arg("50")
        .arg("LIMIT")
        .arg("40")
        .ignore()
        .query_async(p)
        .await
        .unwrap();
    let len: i64 = redis::cmd("XLEN")
        .arg("trimmed")
        .query_async(p)
        .await
        .unwrap();
    assert!((50..301).contains(&len), "{len}");
}

/// A primary and a replica of it with the link up, and a connection to
/// each.
async fn primary_and_replica() -> (
    TestServer,
    TestServer,
    MultiplexedConnection,
    MultiplexedConnection,
) {
    let primary = TestServer::start();
    let replica =
        TestServer::start_with(&["--replicaof", "127.0.0.1", &primary.addr.port().to_string()]);
    let p = primary.conn().await;
    let mut r = replica.conn().await;
    wait_info(&mut r, "master_link_status", "up").await;
    (primary, replica, p, r)
}

/// A Cinnabar replica of a Cinnabar primary keeps streams trimmed
/// approximately with LIMIT exactly as the primary trimmed them (the
/// rewritten `= <threshold> LIMIT n` used to be refused on the replica).
#[tokio::test]
async fn approximate_stream_trims_with_limit_replicate_exactly() {
    let (_primary, _replica, mut p, mut r) = primary_and_replica().await;
    stream_trims_with_limit(&mut p).await;
    wait_acked(&mut p, 1).await;
    assert_eq!(contents(&mut r).await, contents(&mut p).await);
}

async fn contents(c: &mut MultiplexedConnection) -> Vec<(String, String, String)> {
    let mut keys: Vec<String> = c.keys("*").await.unwrap();
    keys.sort();
    let mut out = Vec::new();
    for k in keys {
        let t: String = redis::cmd("TYPE").arg(&k).query_async(c).await.unwrap();
        let v = match t.as_str() {
            "string" => {
                let v: Vec<u8> = c.get(&k).await.unwrap();
                format!("{v:?}")
            }
            "hash" => {
                let mut v: Vec<(String, String)> = c.hgetall(&k).await.unwrap();
                v.sort();
                format!("{v:?}")
            }
            "list" => {
                let v: Vec<String> = c.lrange(&k, 0, -1).await.unwrap();
                format!("{v:?}")
            }
            "set" => {
                let mut v: Vec<String> = c.smembers(&k).await.unwrap();
                v.sort();
                format!("{v:?}")
            }
            "zset" => {
                let v: Vec<(String, f64)> = c.zrange_withscores(&k, 0, -1).await.unwrap();
                format!("{v:?}")
            }
            "stream" => {
                let v: redis::Value = redis::cmd("XRANGE")
                    .arg(&k)
                    .arg("-")
                    .arg("+")
                    .query_async(c)
                    .await
                    .unwrap();
                let g: redis::Value = redis::cmd("XINFO")
                    .arg("GROUPS")
                    .arg(&k)
                    .query_async(c)
                    .await
                    .unwrap();
                format!("{v:?} {g:?}")
            }
            other => panic!("type {other}"),
        };
        let ttl: i64 = c.ttl(&k).await.unwrap();
        out.push((k, t, format!("{v} ttl>0:{}", ttl > 0)));
    }
    out
}

#[tokio::test]
async fn cinnabar_follows_a_redis_primary() {
    // Diskless, as Redis 7 syncs by default (without its 5 s wait for more
    // replicas): the snapshot arrives as `$EOF:<mark>`.
    let Some(primary) = RedisRef::start_with(&["--repl-diskless-sync-delay", "0"]) else {
        return;
    };
    let mut p = connect(primary.port, 0).await;
    fill(&mut p).await;
    // Encodings Redis writes compactly (listpack, intset, quicklist) and
    // large ones.
    let _: () = p.sadd("ints", &[1, 2, 3]).await.unwrap();
    let many: Vec<String> = (0..2000).map(|i| format!("m{i}")).collect();
    let _: () = p.rpush("biglist", &many).await.unwrap();
    let _: () = p.sadd("bigset", &many).await.unwrap();
    let scored: Vec<(f64, String)> = many
        .iter()
        .enumerate()
        .map(|(i, m)| (i as f64 / 3.0, m.clone()))
        .collect();
    let _: () = p.zadd_multiple("bigzset", &scored).await.unwrap();

    let replica = TestServer::start();
    let mut r = replica.conn().await;
    let _: () = r.set("stale", "gone after the sync").await.unwrap();
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(primary.port)
        .query_async(&mut r)
        .await
        .unwrap();
    wait_info(&mut r, "master_link_status", "up").await;
    assert_eq!(contents(&mut r).await, contents(&mut p).await);

    // Live writes from Redis, a transaction included.
    let _: () = p.incr("s", 5).await.unwrap();
    let _: () = redis::pipe()
        .atomic()
        .hset("h", "g", "w")
        .ignore()
        .zincr("bigzset", "m7", 100)
        .ignore()
        .query_async(&mut p)
        .await
        .unwrap();
    let _: () = p.srem("bigset", "m1").await.unwrap();
    // Approximate trims with LIMIT: Redis propagates them as `= <what it
    // left>` with the LIMIT still there, which a replica must accept.
    stream_trims_with_limit(&mut p).await;
    let _: () = redis::cmd("EVAL")
        .arg("redis.call('lpop', KEYS[1]); redis.call('set', 'fromlua', '1')")
        .arg(1)
        .arg("biglist")
        .query_async(&mut p)
        .await
        .unwrap();
    wait_acked(&mut p, 1).await;
    assert_eq!(contents(&mut r).await, contents(&mut p).await);
    let roff = info_field(&mut r, "replication", "slave_repl_offset").await;
    let poff = info_field(&mut p, "replication", "master_repl_offset").await;
    assert_eq!(roff, poff);
    // What the replica read from Redis (snapshot and stream) is counted as
    // replication input, apart from the clients' traffic.
    let rin: u64 = info_field(&mut r, "stats", "total_net_repl_input_bytes")
        .await
        .parse()
        .unwrap();
    let rout: u64 = info_field(&mut p, "stats", "total_net_repl_output_bytes")
        .await
        .parse()
        .unwrap();
    // (Redis also counts the `$EOF:<mark>` header line it wrote.)
    assert!(rin > 10_000 && rin + 64 >= rout, "{rin} vs {rout}");

    // A partial resync after the link is killed.
    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("master")
        .query_async(&mut r)
        .await
        .unwrap();
    let _: () = p.set("later", "1").await.unwrap();
    wait_info(&mut r, "master_link_status", "up").await;
    wait_acked(&mut p, 1).await;
    let v: String = r.get("later").await.unwrap();
    assert_eq!(v, "1");
    assert_eq!(info_field(&mut p, "stats", "sync_partial_ok").await, "1");

    // A Redis replica of our replica gets the same stream (chained).
    let Some(sub) =
        RedisRef::start_with(&["--replicaof", "127.0.0.1", &replica.addr.port().to_string()])
    else {
        return;
    };
    let mut s = connect(sub.port, 0).await;
    wait_info(&mut s, "master_link_status", "up").await;
    let _: () = p.set("chained", "yes").await.unwrap();
    wait_acked(&mut p, 1).await;
    wait_value(
        &mut s,
        "chained",
        "yes",
        Duration::from_secs(10),
        "the sub-replica never got it",
    )
    .await;
    assert_eq!(contents(&mut s).await, contents(&mut p).await);
}

/// Redis Sentinel (redis-server in sentinel mode, when installed) watches
/// a Cinnabar primary and its Cinnabar replica, finds the replica through
/// the primary's INFO, and when the primary dies promotes the replica.
#[tokio::test]
async fn sentinel_fails_over_from_a_dead_cinnabar_primary() {
    let mut primary = TestServer::start();
    let mut p = primary.conn().await;
    let pport = primary.addr.port();
    let replica = TestServer::start_with(&["--replicaof", "127.0.0.1", &pport.to_string()]);
    let mut r = replica.conn().await;
    wait_info(&mut r, "master_link_status", "up").await;
    let _: () = p.set("before", "1").await.unwrap();
    wait_acked(&mut p, 1).await;

    let sport = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("sentinel.conf");
    std::fs::write(
        &conf,
        format!(
            "port {sport}\nbind 127.0.0.1\ndir {}\nsentinel monitor mymaster 127.0.0.1 {pport} 1\n\
             sentinel down-after-milliseconds mymaster 1000\nsentinel failover-timeout mymaster 10000\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let Ok(child) = std::process::Command::new("redis-server")
        .arg(&conf)
        .arg("--sentinel")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    else {
        eprintln!("note: redis-server not installed; the Sentinel check is skipped");
        return;
    };
    let _sentinel = common::KillOnDrop(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut s = loop {
        if let Ok(c) = redis::Client::open(format!("redis://127.0.0.1:{sport}/")) {
            if let Ok(conn) = c.get_multiplexed_async_connection().await {
                break conn;
            }
        }
        assert!(Instant::now() < deadline, "Sentinel did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Sentinel learns of the replica from the primary's INFO replication.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v: redis::Value = redis::cmd("SENTINEL")
            .arg("REPLICAS")
            .arg("mymaster")
            .query_async(&mut s)
            .await
            .unwrap();
        let text = format!("{v:?}");
        if text.contains(&replica.addr.port().to_string()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Sentinel never found the replica: {text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The primary dies; Sentinel promotes the replica.
    primary.kill9();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let addr: Vec<String> = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg("mymaster")
            .query_async(&mut s)
            .await
            .unwrap();
        if addr.get(1) == Some(&replica.addr.port().to_string()) {
            break;
        }
        assert!(Instant::now() < deadline, "no failover: {addr:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Sentinel's failover ends with CLIENT KILL TYPE normal on the promoted
    // server (inside its MULTI with REPLICAOF NO ONE): reconnect.
    drop(r);
    let mut r = replica.conn().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while info_field(&mut r, "replication", "role").await != "master" {
        assert!(Instant::now() < deadline, "the replica was not promoted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let v: String = r.get("before").await.unwrap();
    assert_eq!(v, "1");
    let _: () = r.set("after", "2").await.unwrap();
}

async fn role(c: &mut MultiplexedConnection) -> String {
    info_field(c, "replication", "role").await
}

/// Waits until `c`'s role is `want` and no failover is under way.
async fn wait_role(c: &mut MultiplexedConnection, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if role(c).await == want
            && info_field(c, "replication", "master_failover_state").await == "no-failover"
        {
            return;
        }
        assert!(Instant::now() < deadline, "role never became {want}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn failover(c: &mut MultiplexedConnection, args: &[&str]) -> redis::RedisResult<String> {
    redis::cmd("FAILOVER").arg(args).query_async(c).await
}

#[tokio::test]
async fn failover_hands_over_and_back_also_with_redis() {
    let primary = TestServer::start();
    let mut p = primary.conn().await;
    fill(&mut p).await;
    let pport = primary.addr.port();
    let replica = TestServer::start_with(&["--replicaof", "127.0.0.1", &pport.to_string()]);
    let rport = replica.addr.port();
    let mut r = replica.conn().await;
    wait_info(&mut r, "master_link_status", "up").await;

    let err = |e: redis::RedisResult<String>| e.unwrap_err().to_string();
    assert!(err(failover(&mut r, &[]).await).contains("not valid when server is a replica"));
    assert!(err(failover(&mut p, &["ABORT"]).await).contains("No failover in progress"));
    assert!(err(failover(&mut p, &["FORCE"]).await).contains("requires both a timeout"));
    assert!(err(failover(&mut p, &["TIMEOUT", "0"]).await).contains("must be greater than 0"));
    assert!(err(failover(&mut p, &["TO", "127.0.0.1", "1"]).await).contains("is not a replica"));
    assert!(err(failover(&mut p, &["BOGUS"]).await).contains("syntax error"));

    // A timeout while the replica cannot catch up: aborted, writes resume.
    // SAFETY: signalling a child process this test started.
    unsafe { libc::kill(replica.pid() as i32, libc::SIGSTOP) };
    let _: () = p.set("lagging", 1).await.unwrap();
    assert_eq!(failover(&mut p, &["TIMEOUT", "300"]).await.unwrap(), "OK");
    assert_eq!(
        info_field(&mut p, "replication", "master_failover_state").await,
        "waiting-for-sync"
    );
    assert!(err(failover(&mut p, &[]).await).contains("already in progress"));
    wait_role(&mut p, "master").await;
    let _: () = p.set("after-abort", 1).await.unwrap();
    // SAFETY: as above.
    unsafe { libc::kill(replica.pid() as i32, libc::SIGCONT) };
    wait_acked(&mut p, 1).await;

    // The hand-over: the replica becomes the primary with a partial
    // resync of the old one, which now follows it.
    assert_eq!(failover(&mut p, &[]).await.unwrap(), "OK");
    wait_role(&mut p, "slave").await;
    wait_role(&mut r, "master").await;
    wait_info(&mut p, "master_link_status", "up").await;
    assert_eq!(
        info_field(&mut p, "replication", "master_port").await,
        rport.to_string()
    );
    assert_eq!(info_field(&mut r, "stats", "sync_partial_ok").await, "1");
    let e = p.set::<_, _, ()>("x", 1).await.unwrap_err();
    assert_eq!(e.code(), Some("READONLY"));
    let _: () = r.set("on-new-primary", 1).await.unwrap();
    wait_acked(&mut r, 1).await;
    same_data(&mut p, &mut r).await;

    // With a real redis-server: Cinnabar hands over to it, and it back.
    let Some(redis) = RedisRef::start_with(&["--replicaof", "127.0.0.1", &rport.to_string()])
    else {
        return;
    };
    let mut x = connect(redis.port, 0).await;
    wait_info(&mut x, "master_link_status", "up").await;
    wait_acked(&mut r, 2).await;
    let rp = redis.port.to_string();
    assert_eq!(
        failover(&mut r, &["TO", "127.0.0.1", &rp, "TIMEOUT", "10000"])
            .await
            .unwrap(),
        "OK"
    );
    wait_role(&mut r, "slave").await;
    wait_role(&mut x, "master").await;
    assert_eq!(info_field(&mut x, "stats", "sync_partial_ok").await, "1");
    let _: () = x.set("on-redis", 1).await.unwrap();
    wait_acked(&mut x, 1).await;
    // Digests are each server's own: compare contents across them.
    assert_eq!(contents(&mut r).await, contents(&mut x).await);
    let rs = rport.to_string();
    assert_eq!(
        failover(&mut x, &["TO", "127.0.0.1", &rs]).await.unwrap(),
        "OK"
    );
    wait_role(&mut x, "slave").await;
    wait_role(&mut r, "master").await;
    let _: () = r.set("back-on-cinnabar", 1).await.unwrap();
    wait_acked(&mut r, 2).await;
    assert_eq!(contents(&mut r).await, contents(&mut x).await);
    same_data(&mut r, &mut p).await;
}

/// Forces the primary's next sync with its replica to be a full one of
/// the same history: the link is killed while the backlog is shrunk below
/// what the same transaction then writes.
async fn force_full_resync(p: &mut MultiplexedConnection) {
    let big = "A".repeat(16384);
    let mut t = redis::pipe();
    t.atomic()
        .cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("replica")
        .ignore()
        .cmd("CONFIG")
        .arg("SET")
        .arg("repl-backlog-size")
        .arg("16384")
        .ignore();
    for i in 0..10 {
        t.set(format!("big{i}"), &big).ignore();
    }
    let () = t.query_async(p).await.unwrap();
}

/// `repl-diskless-load swapdb`: a full resync of the same history loads
/// aside while clients keep reading the old dataset (`async_loading:1`;
/// only `no-async-loading` commands and CONFIG SET of load-sensitive
/// parameters get -LOADING), then swaps in at once: watches fail, tracking
/// clients are told to drop everything, the new keys and functions are
/// there. A resync from another primary (a new history) loads under
/// -LOADING instead, and a load that fails keeps the old dataset.
#[tokio::test]
async fn swapdb_keeps_serving_the_old_dataset_while_a_resync_loads_aside() {
    let primary = TestServer::start();
    let mut p = primary.conn().await;
    let _: () = p.set("a", "old").await.unwrap();
    let _: () = redis::cmd("DEBUG")
        .arg("POPULATE")
        .arg(1000)
        .query_async(&mut p)
        .await
        .unwrap();
    let pport = primary.addr.port().to_string();
    let replica = TestServer::start_with(&[
        "--replicaof",
        "127.0.0.1",
        &pport,
        "--repl-diskless-load",
        "swapdb",
    ]);
    let mut r = replica.conn().await;
    wait_info(&mut r, "master_link_status", "up").await;
    let n: i64 = redis::cmd("DBSIZE").query_async(&mut r).await.unwrap();
    assert_eq!(n, 1001);
    let _: () = p.set("a", "new").await.unwrap();
    let _: () = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("#!lua name=lib\nredis.register_function{function_name='f', callback=function() return 'v2' end, flags={'no-writes'}}")
        .query_async(&mut p)
        .await
        .unwrap();
    wait_acked(&mut p, 1).await;

    // A watcher and a tracking client on the replica, before the resync.
    let mut w = replica.raw().await;
    w.expect(b"WATCH a\r\n", b"+OK\r\n").await;
    let mut t = replica.raw().await;
    t.send(b"HELLO 3\r\n").await;
    let _ = t.read_until(b"modules\r\n*0\r\n").await;
    t.expect(b"CLIENT TRACKING ON\r\n", b"+OK\r\n").await;
    t.expect(b"GET a\r\n", b"$3\r\nnew\r\n").await;

    // 1001 keys at 3 ms each: the load takes about 3 s.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("key-load-delay")
        .arg(3000)
        .query_async(&mut r)
        .await
        .unwrap();
    force_full_resync(&mut p).await;
    wait_info_in(&mut r, "persistence", "async_loading", "1").await;
    assert_eq!(info_field(&mut r, "persistence", "loading").await, "0");
    // The old dataset answers meanwhile.
    let a: String = r.get("a").await.unwrap();
    assert_eq!(a, "new");
    let big: Option<String> = r.get("big0").await.unwrap();
    assert_eq!(big, None);
    let v: String = redis::cmd("FCALL_RO")
        .arg("f")
        .arg(0)
        .query_async(&mut r)
        .await
        .unwrap();
    assert_eq!(v, "v2");
    for cmd in [
        &["REPLICAOF", "NO", "ONE"][..],
        &["CONFIG", "SET", "appendonly", "no"],
    ] {
        let e = redis::cmd(cmd[0])
            .arg(&cmd[1..])
            .query_async::<String>(&mut r)
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some("LOADING"), "{cmd:?}: {e}");
    }
    // The swap.
    wait_info(&mut r, "master_link_status", "up").await;
    wait_info_in(&mut r, "persistence", "async_loading", "0").await;
    let big: Option<String> = r.get("big9").await.unwrap();
    assert_eq!(big.map(|b| b.len()), Some(16384));
    let (np, nr): (i64, i64) = (
        redis::cmd("DBSIZE").query_async(&mut p).await.unwrap(),
        redis::cmd("DBSIZE").query_async(&mut r).await.unwrap(),
    );
    assert_eq!((np, nr), (1011, 1011));
    let v: String = redis::cmd("FCALL_RO")
        .arg("f")
        .arg(0)
        .query_async(&mut r)
        .await
        .unwrap();
    assert_eq!(v, "v2");
    w.send(b"MULTI\r\nGET a\r\nEXEC\r\n").await;
    let exec = w.read_until(b"*-1\r\n").await;
    assert_eq!(
        exec,
        b"+OK\r\n+QUEUED\r\n*-1\r\n",
        "{:?}",
        String::from_utf8_lossy(&exec)
    );
    // Tracking: everything this client cached is invalid (a null).
    let pushed = t.read_until(b">2\r\n$10\r\ninvalidate\r\n_\r\n").await;
    assert!(
        pushed.ends_with(b">2\r\n$10\r\ninvalidate\r\n_\r\n"),
        "{:?}",
        String::from_utf8_lossy(&pushed)
    );

    // A new history whose load fails (the snapshot holds database 5, this
    // replica has 4): -LOADING while it loads, then the old dataset and
    // its functions are still there.
    let mut p5 = connect(primary.addr.port(), 5).await;
    let _: () = p5.set("x", "1").await.unwrap();
    let other = TestServer::start_with(&["--databases", "4", "--repl-diskless-load", "swapdb"]);
    let mut o = other.conn().await;
    let _: () = o.set("mine", "1").await.unwrap();
    let _: () = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("#!lua name=own\nredis.register_function{function_name='g', callback=function() return 'mine' end, flags={'no-writes'}}")
        .query_async(&mut o)
        .await
        .unwrap();
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(&pport)
        .query_async(&mut o)
        .await
        .unwrap();
    // Each attempt is a full sync on the primary: a second one means the
    // first load ended (failed: the link never came up).
    let syncs = |v: String| v.parse::<u64>().unwrap();
    let before = syncs(info_field(&mut p, "stats", "sync_full").await);
    let deadline = Instant::now() + Duration::from_secs(20);
    while syncs(info_field(&mut p, "stats", "sync_full").await) < before + 2 {
        assert!(Instant::now() < deadline, "no second attempt");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        info_field(&mut o, "replication", "master_link_status").await,
        "down"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mine, g) = loop {
        let mine: redis::RedisResult<String> = o.get("mine").await;
        let g: redis::RedisResult<String> = redis::cmd("FCALL_RO")
            .arg("g")
            .arg(0)
            .query_async(&mut o)
            .await;
        match (mine, g) {
            (Ok(m), Ok(g)) => break (m, g),
            (Err(e), _) | (_, Err(e)) => {
                assert_eq!(e.code(), Some("LOADING"), "{e}");
                assert!(Instant::now() < deadline, "still loading");
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!((mine.as_str(), g.as_str()), ("1", "mine"));
    let n: i64 = redis::cmd("DBSIZE").query_async(&mut o).await.unwrap();
    assert_eq!(n, 1);
}

/// Waits until INFO `section` says `field:value`.
async fn wait_info_in(c: &mut MultiplexedConnection, section: &str, field: &str, value: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = info_field(c, section, field).await;
        if got == value {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{field} stayed {got:?}, wanted {value:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A full resync replaces the whole dataset: clients tracking keys on the
/// replica are told to drop everything (Redis's flush invalidation), and
/// a blocked XREAD whose stream the new dataset extends is served.
#[tokio::test]
async fn a_full_resync_invalidates_tracking_and_serves_blocked_readers() {
    let primary = TestServer::start();
    let mut p = primary.conn().await;
    let _: () = p.set("a", "1").await.unwrap();
    let _: String = redis::cmd("XADD")
        .arg("s")
        .arg("1-1")
        .arg("f")
        .arg("v")
        .query_async(&mut p)
        .await
        .unwrap();
    let pport = primary.addr.port().to_string();
    let replica = TestServer::start_with(&["--replicaof", "127.0.0.1", &pport]);
    let mut r = replica.conn().await;
    wait_info(&mut r, "master_link_status", "up").await;
    let mut t = replica.raw().await;
    t.send(b"HELLO 3\r\n").await;
    let _ = t.read_until(b"modules\r\n*0\r\n").await;
    t.expect(b"CLIENT TRACKING ON\r\n", b"+OK\r\n").await;
    t.expect(b"GET a\r\n", b"$1\r\n1\r\n").await;
    let mut b = replica.raw().await;
    b.send(b"XREAD BLOCK 0 STREAMS s 1-1\r\n").await;
    wait_info_in(&mut r, "clients", "blocked_clients", "1").await;
    // The new entry reaches the replica only through the full resync: the
    // link is down while it is written.
    force_full_resync(&mut p).await;
    let _: String = redis::cmd("XADD")
        .arg("s")
        .arg("2-1")
        .arg("f")
        .arg("w")
        .query_async(&mut p)
        .await
        .unwrap();
    wait_info(&mut r, "master_link_status", "up").await;
    let pushed = t.read_until(b">2\r\n$10\r\ninvalidate\r\n_\r\n").await;
    assert!(
        pushed.ends_with(b">2\r\n$10\r\ninvalidate\r\n_\r\n"),
        "{:?}",
        String::from_utf8_lossy(&pushed)
    );
    let served = b
        .read_until(b"$3\r\n2-1\r\n*2\r\n$1\r\nf\r\n$1\r\nw\r\n")
        .await;
    assert!(
        served.ends_with(b"$3\r\n2-1\r\n*2\r\n$1\r\nf\r\n$1\r\nw\r\n"),
        "{:?}",
        String::from_utf8_lossy(&served)
    );
}

/// REPLICAOF another primary keeps our own replicas attached (Redis 7):
/// until a new snapshot is installed the history is unchanged, so when
/// that primary dies mid-sync and we return to the first one, we continue
/// partially and our replica never notices. SHUTDOWN on the primary that
/// died does not wait for a replica still waiting for its first snapshot
/// while the stream has not moved (Redis compares acknowledged offsets).
#[tokio::test]
async fn a_sync_that_never_completes_changes_nothing_down_the_chain() {
    let m1 = TestServer::start();
    let mut c1 = m1.conn().await;
    let _: () = c1.set("a", "b").await.unwrap();
    let m2 = TestServer::start_with(&["--rdb-key-save-delay", "1000000"]);
    let mut c2 = m2.conn().await;
    let _: () = redis::cmd("DEBUG")
        .arg("POPULATE")
        .arg(10)
        .query_async(&mut c2)
        .await
        .unwrap();
    let r = TestServer::start_with(&["--replicaof", "127.0.0.1", &m1.addr.port().to_string()]);
    let mut cr = r.conn().await;
    wait_info(&mut cr, "master_link_status", "up").await;
    let sub = TestServer::start_with(&["--replicaof", "127.0.0.1", &r.addr.port().to_string()]);
    let mut cs = sub.conn().await;
    wait_info(&mut cs, "master_link_status", "up").await;
    let id1 = info_field(&mut c1, "replication", "master_replid").await;

    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(m2.addr.port())
        .query_async(&mut cr)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while info_field(&mut c2, "persistence", "rdb_bgsave_in_progress").await != "1" {
        assert!(Instant::now() < deadline, "m2's sync never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let t0 = Instant::now();
    let _ = redis::cmd("SHUTDOWN")
        .arg("NOSAVE")
        .query_async::<()>(&mut c2)
        .await;
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert_eq!(
        info_field(&mut cr, "replication", "master_replid").await,
        id1
    );

    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(m1.addr.port())
        .query_async(&mut cr)
        .await
        .unwrap();
    wait_info(&mut cr, "master_link_status", "up").await;
    assert_eq!(info_field(&mut c1, "stats", "sync_partial_ok").await, "1");
    assert_eq!(info_field(&mut c1, "stats", "sync_full").await, "1");
    // Our replica stayed attached all along: one full sync, no other.
    assert_eq!(info_field(&mut cr, "stats", "sync_full").await, "1");
    assert_eq!(info_field(&mut cr, "stats", "sync_partial_ok").await, "0");
    assert_eq!(
        info_field(&mut cs, "replication", "master_replid").await,
        id1
    );
    let _: () = c1.set("a", "c").await.unwrap();
    wait_value(
        &mut cs,
        "a",
        "c",
        Duration::from_secs(5),
        "the write never reached the sub-replica",
    )
    .await;
}

/// Files a server wrote into its directory (snapshots and their
/// temporaries), sorted.
fn rdb_files(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".rdb"))
        .collect();
    v.sort();
    v
}

/// A primary that syncs diskless at once, holding 100 MB uncompressed:
/// more than the socket buffers (loopback's autotuned receive buffer alone
/// may reach 32 MB) and a replica's loading queue hold.
async fn big_diskless_primary() -> (TestServer, MultiplexedConnection) {
    let primary =
        TestServer::start_with(&["--repl-diskless-sync-delay", "0", "--rdbcompression", "no"]);
    let mut p = primary.conn().await;
    let _: () = redis::cmd("DEBUG")
        .arg("POPULATE")
        .arg(10_000)
        .arg("key")
        .arg(10_000)
        .query_async(&mut p)
        .await
        .unwrap();
    (primary, p)
}

/// `repl-diskless-load on-empty-db` on an empty replica loads the
/// snapshot as it arrives, as Redis's parser reading the socket does:
/// nothing is written to the replica's disk, and a replica slow to load
/// keeps the primary's transfer going for as long as it loads (the link
/// is read only as fast as keys are loaded). A replica that holds data
/// receives the snapshot into a file first (which then becomes its
/// dump.rdb).
#[tokio::test]
async fn an_empty_replica_loads_a_diskless_snapshot_as_it_arrives() {
    let (primary, mut p) = big_diskless_primary().await;
    let pport = primary.addr.port().to_string();
    // 10,000 keys at 200 µs each: the load takes at least 2 s.
    let replica = TestServer::start_with(&[
        "--repl-diskless-load",
        "on-empty-db",
        "--key-load-delay",
        "200",
        "--replicaof",
        "127.0.0.1",
        &pport,
    ]);
    let mut r = replica.conn().await;
    wait_info_in(&mut r, "persistence", "loading", "1").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        info_field(&mut p, "persistence", "rdb_bgsave_in_progress").await,
        "1",
        "the primary's transfer ended while the replica was still loading"
    );
    assert_eq!(rdb_files(replica.dir.path()), Vec::<String>::new());
    wait_info(&mut r, "master_link_status", "up").await;
    same_data(&mut p, &mut r).await;
    assert_eq!(rdb_files(replica.dir.path()), Vec::<String>::new());

    // A replica with data of its own receives the snapshot into a file.
    let other = TestServer::start_with(&["--repl-diskless-load", "on-empty-db"]);
    let mut o = other.conn().await;
    let _: () = o.set("mine", "1").await.unwrap();
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(&pport)
        .query_async(&mut o)
        .await
        .unwrap();
    wait_info(&mut o, "master_link_status", "up").await;
    same_data(&mut p, &mut o).await;
    assert_eq!(rdb_files(other.dir.path()), vec!["dump.rdb".to_string()]);
}

/// A primary lost in the middle of a snapshot the replica is loading from
/// the link: with `swapdb` the replica keeps its old dataset whole (no
/// part of the new one shows), and with `on-empty-db` it is left empty,
/// never half loaded; either way it is out of the loading state.
#[tokio::test]
async fn a_link_lost_during_a_streamed_load_leaves_no_partial_dataset() {
    for mode in ["swapdb", "on-empty-db"] {
        let (mut primary, _p) = big_diskless_primary().await;
        let replica =
            TestServer::start_with(&["--repl-diskless-load", mode, "--key-load-delay", "300"]);
        let mut r = replica.conn().await;
        let before: i64 = if mode == "swapdb" {
            let _: () = r.set("mine", "1").await.unwrap();
            1
        } else {
            0
        };
        let _: () = redis::cmd("REPLICAOF")
            .arg("127.0.0.1")
            .arg(primary.addr.port())
            .query_async(&mut r)
            .await
            .unwrap();
        wait_info_in(&mut r, "persistence", "loading", "1").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        primary.kill9();
        wait_info_in(&mut r, "persistence", "loading", "0").await;
        let n: i64 = redis::cmd("DBSIZE").query_async(&mut r).await.unwrap();
        assert_eq!(n, before, "{mode}: a partial dataset was left");
        assert_eq!(
            info_field(&mut r, "replication", "master_link_status").await,
            "down",
            "{mode}"
        );
    }
}

/// A replica that stops reading its diskless snapshot is given up after
/// `repl-timeout` counted from the last byte it took, with the value the
/// setting has now (CONFIG SET during the transfer applies, as Redis's
/// cron reads it): the snapshot then ends, and the primary serves on.
#[tokio::test]
async fn a_replica_that_stops_reading_its_snapshot_is_dropped_after_repl_timeout() {
    let (primary, mut p) = big_diskless_primary().await;
    let replica = TestServer::start_with(&[
        "--repl-diskless-load",
        "swapdb",
        "--key-load-delay",
        "200",
        "--replicaof",
        "127.0.0.1",
        &primary.addr.port().to_string(),
    ]);
    let mut r = replica.conn().await;
    wait_info_in(&mut r, "persistence", "loading", "1").await;
    wait_info_in(&mut p, "persistence", "rdb_bgsave_in_progress", "1").await;
    // Stopped first: the write it leaves pending began under the default
    // 60 s timeout.
    unsafe { libc::kill(replica.pid() as i32, libc::SIGSTOP) };
    tokio::time::sleep(Duration::from_millis(300)).await;
    common::config_set(&mut p, "repl-timeout", "1").await;
    let t0 = Instant::now();
    wait_info_in(&mut p, "persistence", "rdb_bgsave_in_progress", "0").await;
    let waited = t0.elapsed();
    unsafe { libc::kill(replica.pid() as i32, libc::SIGCONT) };
    assert!(
        waited < Duration::from_secs(10),
        "the stalled replica was kept for {waited:?}"
    );
    assert_eq!(
        info_field(&mut p, "replication", "connected_slaves").await,
        "0"
    );
    let pong: String = redis::cmd("PING").query_async(&mut p).await.unwrap();
    assert_eq!(pong, "PONG");
}

/// A blocked XREADGROUP served by a later XADD counts as the reader's own
/// write: WAIT on the reader's connection waits for replicas to
/// acknowledge the delivery it propagated (and, with `appendfsync
/// always`, its reply waits for the delivery to be on disk, the same
/// bookkeeping).
#[tokio::test]
async fn wait_after_a_served_blocked_read_counts_its_propagation() {
    let primary = TestServer::start();
    let mut p = primary.conn().await;
    let replica =
        TestServer::start_with(&["--replicaof", "127.0.0.1", &primary.addr.port().to_string()]);
    let mut r = replica.conn().await;
    wait_info(&mut r, "master_link_status", "up").await;
    let _: () = redis::cmd("XGROUP")
        .arg(&["CREATE", "s", "g", "$", "MKSTREAM"])
        .query_async(&mut p)
        .await
        .unwrap();
    wait_acked(&mut p, 1).await;
    let mut reader = primary.conn().await;
    let read = tokio::spawn(async move {
        let v: redis::Value = redis::cmd("XREADGROUP")
            .arg(&["GROUP", "g", "c1", "BLOCK", "10000", "STREAMS", "s", ">"])
            .query_async(&mut reader)
            .await
            .unwrap();
        (reader, v)
    });
    wait_info_in(&mut p, "clients", "blocked_clients", "1").await;
    // The replica stops acknowledging; then the read is served.
    unsafe { libc::kill(replica.pid() as i32, libc::SIGSTOP) };
    let _: String = redis::cmd("XADD")
        .arg(&["s", "1-1", "f", "v"])
        .query_async(&mut p)
        .await
        .unwrap();
    let (mut reader, v) = read.await.unwrap();
    assert!(
        matches!(v, redis::Value::Array(ref a) if !a.is_empty()),
        "{v:?}"
    );
    let acked: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(300)
        .query_async(&mut reader)
        .await
        .unwrap();
    unsafe { libc::kill(replica.pid() as i32, libc::SIGCONT) };
    assert_eq!(
        acked, 0,
        "WAIT counted a replica that had not acknowledged the delivery"
    );
    wait_acked(&mut reader, 1).await;
}

/// As Redis's BGSAVE for SYNC, a disk-target full sync is a save of
/// `dbfilename`: the file appears, LASTSAVE moves and the changes since
/// the last save restart from the snapshot. With `rdb-del-sync-files yes`
/// and persistence off, the file goes once no replica needs it, on the
/// primary and on a replica that loaded it.
#[tokio::test]
async fn a_disk_sync_writes_dbfilename_and_rdb_del_sync_files_removes_it() {
    let srv = TestServer::start_with(&["--save", "", "--repl-diskless-sync", "no"]);
    let mut c = srv.conn().await;
    for i in 0..20 {
        let _: () = c.set(format!("key{i}"), "v").await.unwrap();
    }
    let dump = srv.dir.path().join("dump.rdb");
    assert!(!dump.exists());
    let before: u64 = redis::cmd("LASTSAVE").query_async(&mut c).await.unwrap();
    let changes = || async {
        let mut c = srv.conn().await;
        info_field(&mut c, "persistence", "rdb_changes_since_last_save").await
    };
    assert_eq!(changes().await, "20");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let port = srv.addr.port().to_string();
    let replica = TestServer::start_with(&["--replicaof", "127.0.0.1", &port, "--save", ""]);
    let mut r = replica.conn().await;
    wait_info(&mut r, "master_link_status", "up").await;
    let bytes = std::fs::read(&dump).expect("dump.rdb written by the sync");
    assert!(bytes.starts_with(b"REDIS0"));
    assert!(bytes.windows(5).any(|w| w == b"key19"));
    let after: u64 = redis::cmd("LASTSAVE").query_async(&mut c).await.unwrap();
    assert!(after > before, "LASTSAVE {before} -> {after}");
    assert_eq!(changes().await, "0");
    assert_eq!(
        info_field(&mut c, "persistence", "rdb_last_bgsave_status").await,
        "ok"
    );
    // The replica keeps what it loaded (rdb-del-sync-files is off).
    assert!(replica.dir.path().join("dump.rdb").exists());
    drop(r);
    drop(replica);

    // rdb-del-sync-files yes, no save points, no AOF: the primary's file
    // is gone once the new replica is online, and so is the replica's.
    std::fs::remove_file(&dump).unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("rdb-del-sync-files")
        .arg("yes")
        .query_async(&mut c)
        .await
        .unwrap();
    let replica = TestServer::start_with(&[
        "--replicaof",
        "127.0.0.1",
        &port,
        "--save",
        "",
        "--rdb-del-sync-files",
        "yes",
    ]);
    let mut r = replica.conn().await;
    wait_info(&mut r, "master_link_status", "up").await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while dump.exists() {
        assert!(Instant::now() < deadline, "dump.rdb kept");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(srv
        .log()
        .contains("Removing the RDB file used to feed replicas in a persistence-less instance"));
    assert!(!replica.dir.path().join("dump.rdb").exists());
    assert!(replica.log().contains(
        "Removing the RDB file obtained from the master. This replica has persistence disabled"
    ));
    let n: u64 = redis::cmd("DBSIZE").query_async(&mut r).await.unwrap();
    assert_eq!(n, 20);
}
