//! MULTI / EXEC / DISCARD / WATCH / UNWATCH through the real server.

mod common;
use common::{resp, TestServer};
use redis::AsyncCommands;

#[tokio::test]
async fn exec_runs_queued_commands_and_reports_runtime_errors_in_place() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    c.expect(&resp(&[b"MULTI"]), b"+OK\r\n").await;
    c.expect(&resp(&[b"SET", b"s", b"abc"]), b"+QUEUED\r\n")
        .await;
    c.expect(&resp(&[b"INCR", b"s"]), b"+QUEUED\r\n").await;
    c.expect(&resp(&[b"APPEND", b"s", b"d"]), b"+QUEUED\r\n")
        .await;
    c.expect(&resp(&[b"GET", b"s"]), b"+QUEUED\r\n").await;
    // A runtime error inside EXEC does not stop the other commands.
    c.expect(
        &resp(&[b"EXEC"]),
        b"*4\r\n+OK\r\n-ERR value is not an integer or out of range\r\n:4\r\n$4\r\nabcd\r\n",
    )
    .await;
    // Empty transaction.
    c.expect(&resp(&[b"MULTI"]), b"+OK\r\n").await;
    c.expect(&resp(&[b"EXEC"]), b"*0\r\n").await;
}

#[tokio::test]
async fn queue_time_errors_abort_the_transaction() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    c.expect(&resp(&[b"MULTI"]), b"+OK\r\n").await;
    c.expect(&resp(&[b"SET", b"k", b"1"]), b"+QUEUED\r\n").await;
    c.expect(
        &resp(&[b"GET"]),
        b"-ERR wrong number of arguments for 'get' command\r\n",
    )
    .await;
    c.expect(
        &resp(&[b"EXEC"]),
        b"-EXECABORT Transaction discarded because of previous errors.\r\n",
    )
    .await;
    c.expect(&resp(&[b"GET", b"k"]), b"$-1\r\n").await;

    c.expect(&resp(&[b"MULTI"]), b"+OK\r\n").await;
    c.expect(
        &resp(&[b"NOSUCHCMD", b"x"]),
        b"-ERR unknown command 'NOSUCHCMD', with args beginning with: 'x' \r\n",
    )
    .await;
    c.expect(
        &resp(&[b"EXEC"]),
        b"-EXECABORT Transaction discarded because of previous errors.\r\n",
    )
    .await;
    // The client is out of MULTI afterwards.
    c.expect(&resp(&[b"EXEC"]), b"-ERR EXEC without MULTI\r\n")
        .await;
}

#[tokio::test]
async fn multi_state_errors_and_discard() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    c.expect(&resp(&[b"EXEC"]), b"-ERR EXEC without MULTI\r\n")
        .await;
    c.expect(&resp(&[b"DISCARD"]), b"-ERR DISCARD without MULTI\r\n")
        .await;
    c.expect(&resp(&[b"MULTI"]), b"+OK\r\n").await;
    c.expect(
        &resp(&[b"MULTI"]),
        b"-ERR MULTI calls can not be nested\r\n",
    )
    .await;
    c.expect(
        &resp(&[b"WATCH", b"x"]),
        b"-ERR WATCH inside MULTI is not allowed\r\n",
    )
    .await;
    c.expect(&resp(&[b"SET", b"d", b"1"]), b"+QUEUED\r\n").await;
    c.expect(&resp(&[b"DISCARD"]), b"+OK\r\n").await;
    c.expect(&resp(&[b"EXISTS", b"d"]), b":0\r\n").await;
    // Nesting and WATCH errors do not abort: EXEC still runs.
    c.expect(&resp(&[b"MULTI"]), b"+OK\r\n").await;
    c.expect(
        &resp(&[b"MULTI"]),
        b"-ERR MULTI calls can not be nested\r\n",
    )
    .await;
    c.expect(&resp(&[b"PING"]), b"+QUEUED\r\n").await;
    c.expect(&resp(&[b"EXEC"]), b"*1\r\n+PONG\r\n").await;
    // RESET leaves MULTI.
    c.expect(&resp(&[b"MULTI"]), b"+OK\r\n").await;
    c.expect(&resp(&[b"RESET"]), b"+RESET\r\n").await;
    c.expect(&resp(&[b"EXEC"]), b"-ERR EXEC without MULTI\r\n")
        .await;
}

#[tokio::test]
async fn select_inside_multi_and_introspection_under_exec_locks() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    c.expect(&resp(&[b"MULTI"]), b"+OK\r\n").await;
    c.expect(&resp(&[b"SET", b"k", b"db0"]), b"+QUEUED\r\n")
        .await;
    c.expect(&resp(&[b"SELECT", b"5"]), b"+QUEUED\r\n").await;
    c.expect(&resp(&[b"SET", b"k", b"db5"]), b"+QUEUED\r\n")
        .await;
    c.expect(&resp(&[b"DBSIZE"]), b"+QUEUED\r\n").await;
    c.expect(&resp(&[b"INFO", b"keyspace"]), b"+QUEUED\r\n")
        .await;
    c.send(&resp(&[b"EXEC"])).await;
    let got = c.read_until(b"\r\n\r\n").await;
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("*5\r\n+OK\r\n+OK\r\n+OK\r\n:1\r\n"),
        "{text}"
    );
    assert!(text.contains("db0:keys=1"), "{text}");
    assert!(text.contains("db5:keys=1"), "{text}");
    // The SELECT stays in effect after EXEC.
    c.expect(&resp(&[b"GET", b"k"]), b"$3\r\ndb5\r\n").await;
}

#[tokio::test]
async fn watch_is_invalidated_by_another_clients_write() {
    let srv = TestServer::start();
    let mut a = srv.raw().await;
    let mut b = srv.conn().await;
    a.expect(&resp(&[b"SET", b"w", b"1"]), b"+OK\r\n").await;
    a.expect(&resp(&[b"WATCH", b"w"]), b"+OK\r\n").await;
    let _: () = b.set("w", "2").await.unwrap();
    a.expect(&resp(&[b"MULTI"]), b"+OK\r\n").await;
    a.expect(&resp(&[b"SET", b"w", b"3"]), b"+QUEUED\r\n").await;
    a.expect(&resp(&[b"EXEC"]), b"*-1\r\n").await;
    a.expect(&resp(&[b"GET", b"w"]), b"$1\r\n2\r\n").await;
    // EXEC unwatched everything: the next transaction succeeds.
    let _: () = b.set("w", "4").await.unwrap();
    a.expect(&resp(&[b"MULTI"]), b"+OK\r\n").await;
    a.expect(&resp(&[b"GET", b"w"]), b"+QUEUED\r\n").await;
    a.expect(&resp(&[b"EXEC"]), b"*1\r\n$1\r\n4\r\n").await;
}

#[tokio::test]
async fn watch_unaffected_by_other_keys_reads_and_unwatch() {
    let srv = TestServer::start();
    let mut a = srv.raw().await;
    let mut b = srv.conn().await;
    a.expect(&resp(&[b"WATCH", b"w", b"missing"]), b"+OK\r\n")
        .await;
    let _: () = b.set("other", "x").await.unwrap();
    let _: Option<String> = b.get("w").await.unwrap();
    a.expect(&resp(&[b"MULTI"]), b"+OK\r\n").await;
    a.expect(&resp(&[b"PING"]), b"+QUEUED\r\n").await;
    a.expect(&resp(&[b"EXEC"]), b"*1\r\n+PONG\r\n").await;

    // UNWATCH forgets the watch; a later write no longer matters.
    a.expect(&resp(&[b"WATCH", b"w"]), b"+OK\r\n").await;
    a.expect(&resp(&[b"UNWATCH"]), b"+OK\r\n").await;
    let _: () = b.set("w", "changed").await.unwrap();
    a.expect(&resp(&[b"MULTI"]), b"+OK\r\n").await;
    a.expect(&resp(&[b"PING"]), b"+QUEUED\r\n").await;
    a.expect(&resp(&[b"EXEC"]), b"*1\r\n+PONG\r\n").await;

    // Creating a watched key that did not exist counts as a change.
    a.expect(&resp(&[b"WATCH", b"newkey"]), b"+OK\r\n").await;
    let _: () = b.set("newkey", "1").await.unwrap();
    a.expect(&resp(&[b"MULTI"]), b"+OK\r\n").await;
    a.expect(&resp(&[b"PING"]), b"+QUEUED\r\n").await;
    a.expect(&resp(&[b"EXEC"]), b"*-1\r\n").await;

    // DISCARD also unwatches.
    a.expect(&resp(&[b"WATCH", b"w"]), b"+OK\r\n").await;
    a.expect(&resp(&[b"MULTI"]), b"+OK\r\n").await;
    a.expect(&resp(&[b"DISCARD"]), b"+OK\r\n").await;
    let _: () = b.set("w", "again").await.unwrap();
    a.expect(&resp(&[b"MULTI"]), b"+OK\r\n").await;
    a.expect(&resp(&[b"PING"]), b"+QUEUED\r\n").await;
    a.expect(&resp(&[b"EXEC"]), b"*1\r\n+PONG\r\n").await;
}

#[tokio::test]
async fn watch_is_invalidated_by_expiry_flush_and_swapdb() {
    let srv = TestServer::start();
    let mut a = srv.raw().await;
    let mut b = srv.raw().await;

    // Expiry: the key expires between WATCH and EXEC (a deadline long
    // enough that WATCH still finds the key on a loaded CI machine).
    a.expect(&resp(&[b"SET", b"e", b"1", b"PX", b"1000"]), b"+OK\r\n")
        .await;
    a.expect(&resp(&[b"WATCH", b"e"]), b"+OK\r\n").await;
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    b.expect(&resp(&[b"GET", b"e"]), b"$-1\r\n").await;
    a.expect(&resp(&[b"MULTI"]), b"+OK\r\n").await;
    a.expect(&resp(&[b"PING"]), b"+QUEUED\r\n").await;
    a.expect(&resp(&[b"EXEC"]), b"*-1\r\n").await;

    // FLUSHDB from another client.
    a.expect(&resp(&[b"SET", b"f", b"1"]), b"+OK\r\n").await;
    a.expect(&resp(&[b"WATCH", b"f"]), b"+OK\r\n").await;
    b.expect(&resp(&[b"FLUSHDB"]), b"+OK\r\n").await;
    a.expect(&resp(&[b"MULTI"]), b"+OK\r\n").await;
    a.expect(&resp(&[b"PING"]), b"+QUEUED\r\n").await;
    a.expect(&resp(&[b"EXEC"]), b"*-1\r\n").await;

    // FLUSHALL.
    a.expect(&resp(&[b"SET", b"f", b"1"]), b"+OK\r\n").await;
    a.expect(&resp(&[b"WATCH", b"f"]), b"+OK\r\n").await;
    b.expect(&resp(&[b"FLUSHALL"]), b"+OK\r\n").await;
    a.expect(&resp(&[b"MULTI"]), b"+OK\r\n").await;
    a.expect(&resp(&[b"PING"]), b"+QUEUED\r\n").await;
    a.expect(&resp(&[b"EXEC"]), b"*-1\r\n").await;

    // SWAPDB of the watched key's database.
    a.expect(&resp(&[b"SET", b"s", b"1"]), b"+OK\r\n").await;
    a.expect(&resp(&[b"WATCH", b"s"]), b"+OK\r\n").await;
    b.expect(&resp(&[b"SWAPDB", b"0", b"1"]), b"+OK\r\n").await;
    a.expect(&resp(&[b"MULTI"]), b"+OK\r\n").await;
    a.expect(&resp(&[b"PING"]), b"+QUEUED\r\n").await;
    a.expect(&resp(&[b"EXEC"]), b"*-1\r\n").await;

    // RESP3: a failed EXEC is the null type.
    a.send(&resp(&[b"HELLO", b"3"])).await;
    let _ = a.read_until(b"\r\n").await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let _ = a.read_until(b"\r\n").await;
    a.expect(&resp(&[b"WATCH", b"s"]), b"+OK\r\n").await;
    b.expect(&resp(&[b"DEL", b"s"]), b":0\r\n").await;
    b.expect(&resp(&[b"SET", b"s", b"2"]), b"+OK\r\n").await;
    a.expect(&resp(&[b"MULTI"]), b"+OK\r\n").await;
    a.expect(&resp(&[b"PING"]), b"+QUEUED\r\n").await;
    a.expect(&resp(&[b"EXEC"]), b"_\r\n").await;
}

/// Transfers between keys on (almost certainly) different shards while a
/// reader checks the invariant: no client ever sees half a transaction.
#[tokio::test]
async fn exec_is_atomic_across_shards() {
    let srv = TestServer::start();
    let keys: Vec<String> = (0..8).map(|i| format!("acct:{i}")).collect();
    let mut setup = srv.conn().await;
    for k in &keys {
        let _: () = setup.set(k, 1000).await.unwrap();
    }
    let mut writers = Vec::new();
    for w in 0..4usize {
        let mut c = srv.conn().await;
        let keys = keys.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..300usize {
                let from = &keys[(i + w) % keys.len()];
                let to = &keys[(i * 3 + w + 1) % keys.len()];
                let _: () = redis::pipe()
                    .atomic()
                    .cmd("DECRBY")
                    .arg(from)
                    .arg(7)
                    .ignore()
                    .cmd("INCRBY")
                    .arg(to)
                    .arg(7)
                    .ignore()
                    .query_async(&mut c)
                    .await
                    .unwrap();
            }
        }));
    }
    let mut reader = srv.conn().await;
    let mut checks = 0;
    while writers.iter().any(|h| !h.is_finished()) || checks == 0 {
        let vals: Vec<i64> = reader.mget(&keys).await.unwrap();
        assert_eq!(vals.iter().sum::<i64>(), 8000, "saw a partial transaction");
        checks += 1;
    }
    for h in writers {
        h.await.unwrap();
    }
    let vals: Vec<i64> = reader.mget(&keys).await.unwrap();
    assert_eq!(vals.iter().sum::<i64>(), 8000);
    assert!(checks > 0);
}

/// The redis crate's optimistic-locking helper (WATCH + MULTI/EXEC retry).
#[tokio::test]
async fn optimistic_increment_with_concurrent_clients() {
    let srv = TestServer::start();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let client = redis::Client::open(srv.url()).unwrap();
        tasks.push(tokio::spawn(async move {
            // WATCH state is per connection: use a dedicated one.
            let mut c = client.get_multiplexed_async_connection().await.unwrap();
            for _ in 0..50 {
                loop {
                    let _: () = redis::cmd("WATCH")
                        .arg("ctr")
                        .query_async(&mut c)
                        .await
                        .unwrap();
                    let v: Option<i64> = c.get("ctr").await.unwrap();
                    let r: Option<(i64,)> = redis::pipe()
                        .atomic()
                        .set("ctr", v.unwrap_or(0) + 1)
                        .ignore()
                        .get("ctr")
                        .query_async(&mut c)
                        .await
                        .unwrap();
                    if r.is_some() {
                        break;
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut c = srv.conn().await;
    let v: i64 = c.get("ctr").await.unwrap();
    assert_eq!(
        v, 200,
        "lost updates: WATCH did not protect the read-modify-write"
    );
}

/// Writes queued before `min-replicas-to-write` stopped being met: EXEC
/// answers EXECABORT with NOREPLICAS and discards the transaction (as
/// Redis); a read-only transaction still runs.
#[tokio::test]
async fn exec_of_queued_writes_is_refused_without_enough_replicas() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    let mut admin = srv.raw().await;
    c.expect(&resp(&[b"MULTI"]), b"+OK\r\n").await;
    c.expect(&resp(&[b"SET", b"a", b"1"]), b"+QUEUED\r\n").await;
    admin
        .expect(
            &resp(&[b"CONFIG", b"SET", b"min-replicas-to-write", b"1"]),
            b"+OK\r\n",
        )
        .await;
    c.expect(
        &resp(&[b"EXEC"]),
        b"-EXECABORT Transaction discarded because of: NOREPLICAS Not enough good replicas to write.\r\n",
    )
    .await;
    c.expect(&resp(&[b"GET", b"a"]), b"$-1\r\n").await;
    c.expect(&resp(&[b"MULTI"]), b"+OK\r\n").await;
    c.expect(&resp(&[b"GET", b"a"]), b"+QUEUED\r\n").await;
    c.expect(&resp(&[b"EXEC"]), b"*1\r\n$-1\r\n").await;
}

/// Expired-but-not-yet-removed keys, as Redis 7 treats them under WATCH
/// (active expiry off so the keys stay until someone looks): a watched key
/// that expires after WATCH fails EXEC; one already expired at WATCH is
/// absent, so deleting it or swapping it between databases changes
/// nothing.
#[tokio::test]
async fn watch_and_keys_that_expire_without_being_removed() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    c.expect(&resp(&[b"DEBUG", b"SET-ACTIVE-EXPIRE", b"0"]), b"+OK\r\n")
        .await;
    // Live at WATCH, expired (still stored) at EXEC: the transaction fails.
    c.expect(&resp(&[b"SET", b"key", b"1", b"PX", b"100"]), b"+OK\r\n")
        .await;
    c.expect(&resp(&[b"WATCH", b"key"]), b"+OK\r\n").await;
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    c.expect(&resp(&[b"MULTI"]), b"+OK\r\n").await;
    c.expect(&resp(&[b"INCR", b"key"]), b"+QUEUED\r\n").await;
    c.expect(&resp(&[b"EXEC"]), b"*-1\r\n").await;

    // Already expired at WATCH: no change, also when deleted.
    for del in [false, true] {
        c.expect(&resp(&[b"SET", b"x", b"foo", b"PX", b"1"]), b"+OK\r\n")
            .await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        c.expect(&resp(&[b"WATCH", b"x"]), b"+OK\r\n").await;
        if del {
            c.expect(&resp(&[b"DEL", b"x"]), b":0\r\n").await;
        }
        c.expect(&resp(&[b"MULTI"]), b"+OK\r\n").await;
        c.expect(&resp(&[b"PING"]), b"+QUEUED\r\n").await;
        c.expect(&resp(&[b"EXEC"]), b"*1\r\n+PONG\r\n").await;
    }

    // SWAPDB: a missing key replaced by an expired one, and an expired key
    // replaced by another expired one, are no change.
    for both_stale in [false, true] {
        c.expect(&resp(&[b"FLUSHALL"]), b"+OK\r\n").await;
        c.expect(&resp(&[b"SELECT", b"0"]), b"+OK\r\n").await;
        c.expect(&resp(&[b"SET", b"x", b"foo", b"PX", b"1"]), b"+OK\r\n")
            .await;
        c.expect(&resp(&[b"SELECT", b"1"]), b"+OK\r\n").await;
        if both_stale {
            c.expect(&resp(&[b"SET", b"x", b"bar", b"PX", b"1"]), b"+OK\r\n")
                .await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        c.expect(&resp(&[b"WATCH", b"x"]), b"+OK\r\n").await;
        c.expect(&resp(&[b"SWAPDB", b"0", b"1"]), b"+OK\r\n").await;
        c.expect(&resp(&[b"MULTI"]), b"+OK\r\n").await;
        c.expect(&resp(&[b"PING"]), b"+QUEUED\r\n").await;
        c.expect(&resp(&[b"EXEC"]), b"*1\r\n+PONG\r\n").await;
    }
    // But a live key swapped in is a change.
    c.expect(&resp(&[b"FLUSHALL"]), b"+OK\r\n").await;
    c.expect(&resp(&[b"SELECT", b"0"]), b"+OK\r\n").await;
    c.expect(&resp(&[b"SET", b"x", b"foo"]), b"+OK\r\n").await;
    c.expect(&resp(&[b"SELECT", b"1"]), b"+OK\r\n").await;
    c.expect(&resp(&[b"WATCH", b"x"]), b"+OK\r\n").await;
    c.expect(&resp(&[b"SWAPDB", b"0", b"1"]), b"+OK\r\n").await;
    c.expect(&resp(&[b"MULTI"]), b"+OK\r\n").await;
    c.expect(&resp(&[b"PING"]), b"+QUEUED\r\n").await;
    c.expect(&resp(&[b"EXEC"]), b"*-1\r\n").await;
}
