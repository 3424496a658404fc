//! Generic key commands through the real server: expiry options, renames,
//! copies, moves, OBJECT, SCAN's guarantee, active expiry; plus a
//! differential run against redis-server (when installed).

mod common;
use std::collections::HashSet;
use std::time::Duration;

use common::diff::{same_replies, script};
use common::{resp, TestServer};
use redis::AsyncCommands;

#[tokio::test]
async fn expire_options_and_ttls() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    c.expect(&resp(&[b"SET", b"k", b"v"]), b"+OK\r\n").await;
    c.expect(&resp(&[b"TTL", b"k"]), b":-1\r\n").await;
    c.expect(&resp(&[b"TTL", b"nokey"]), b":-2\r\n").await;
    c.expect(&resp(&[b"EXPIRETIME", b"k"]), b":-1\r\n").await;
    c.expect(&resp(&[b"EXPIRE", b"k", b"100", b"XX"]), b":0\r\n")
        .await;
    c.expect(&resp(&[b"EXPIRE", b"k", b"100", b"NX"]), b":1\r\n")
        .await;
    c.expect(&resp(&[b"EXPIRE", b"k", b"50", b"NX"]), b":0\r\n")
        .await;
    c.expect(&resp(&[b"EXPIRE", b"k", b"50", b"GT"]), b":0\r\n")
        .await;
    c.expect(&resp(&[b"EXPIRE", b"k", b"200", b"GT"]), b":1\r\n")
        .await;
    c.expect(&resp(&[b"EXPIRE", b"k", b"300", b"LT"]), b":0\r\n")
        .await;
    c.expect(&resp(&[b"PEXPIRE", b"k", b"150000", b"LT"]), b":1\r\n")
        .await;
    c.expect(
        &resp(&[b"EXPIRE", b"k", b"1", b"NX", b"XX"]),
        b"-ERR NX and XX, GT or LT options at the same time are not compatible\r\n",
    )
    .await;
    c.expect(
        &resp(&[b"EXPIRE", b"k", b"1", b"GT", b"LT"]),
        b"-ERR GT and LT options at the same time are not compatible\r\n",
    )
    .await;
    c.expect(
        &resp(&[b"EXPIRE", b"k", b"1", b"YY"]),
        b"-ERR Unsupported option YY\r\n",
    )
    .await;
    c.expect(
        &resp(&[b"EXPIRE", b"k", b"9223372036854775807"]),
        b"-ERR invalid expire time in 'expire' command\r\n",
    )
    .await;
    c.expect(&resp(&[b"PERSIST", b"k"]), b":1\r\n").await;
    c.expect(&resp(&[b"PERSIST", b"k"]), b":0\r\n").await;
    c.expect(&resp(&[b"EXPIREAT", b"k", b"4102444800"]), b":1\r\n")
        .await;
    c.expect(&resp(&[b"EXPIRETIME", b"k"]), b":4102444800\r\n")
        .await;
    c.expect(&resp(&[b"PEXPIRETIME", b"k"]), b":4102444800000\r\n")
        .await;
    // A deadline in the past deletes the key.
    c.expect(&resp(&[b"EXPIRE", b"k", b"-1"]), b":1\r\n").await;
    c.expect(&resp(&[b"EXISTS", b"k"]), b":0\r\n").await;
    c.expect(&resp(&[b"SET", b"p", b"v", b"PX", b"80"]), b"+OK\r\n")
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    c.expect(&resp(&[b"GET", b"p"]), b"$-1\r\n").await;
}

#[tokio::test]
async fn rename_copy_move() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    c.expect(&resp(&[b"RENAME", b"nokey", b"x"]), b"-ERR no such key\r\n")
        .await;
    c.expect(&resp(&[b"SET", b"a", b"1", b"EX", b"100"]), b"+OK\r\n")
        .await;
    c.expect(&resp(&[b"RENAME", b"a", b"b"]), b"+OK\r\n").await;
    c.expect(&resp(&[b"EXISTS", b"a", b"b", b"b"]), b":2\r\n")
        .await;
    c.send(&resp(&[b"TTL", b"b"])).await;
    assert_ne!(
        c.read_until(b"\r\n").await,
        b":-1\r\n",
        "RENAME keeps the TTL"
    );
    c.expect(&resp(&[b"SET", b"c", b"2"]), b"+OK\r\n").await;
    c.expect(&resp(&[b"RENAMENX", b"b", b"c"]), b":0\r\n").await;
    c.expect(&resp(&[b"RENAME", b"b", b"b"]), b"+OK\r\n").await;
    c.expect(&resp(&[b"COPY", b"b", b"c"]), b":0\r\n").await;
    c.expect(&resp(&[b"COPY", b"b", b"c", b"REPLACE"]), b":1\r\n")
        .await;
    c.expect(&resp(&[b"GET", b"c"]), b"$1\r\n1\r\n").await;
    c.expect(
        &resp(&[b"COPY", b"b", b"b"]),
        b"-ERR source and destination objects are the same\r\n",
    )
    .await;
    c.expect(&resp(&[b"COPY", b"b", b"b", b"DB", b"3"]), b":1\r\n")
        .await;
    c.expect(
        &resp(&[b"COPY", b"b", b"x", b"DB", b"99"]),
        b"-ERR DB index is out of range\r\n",
    )
    .await;
    c.expect(&resp(&[b"MOVE", b"c", b"3"]), b":1\r\n").await;
    c.expect(&resp(&[b"MOVE", b"b", b"3"]), b":0\r\n").await;
    c.expect(
        &resp(&[b"MOVE", b"b", b"0"]),
        b"-ERR source and destination objects are the same\r\n",
    )
    .await;
    c.expect(&resp(&[b"SELECT", b"3"]), b"+OK\r\n").await;
    c.expect(
        &resp(&[b"MGET", b"b", b"c"]),
        b"*2\r\n$1\r\n1\r\n$1\r\n1\r\n",
    )
    .await;
    c.expect(&resp(&[b"DBSIZE"]), b":2\r\n").await;
    c.expect(&resp(&[b"SWAPDB", b"3", b"0"]), b"+OK\r\n").await;
    c.expect(&resp(&[b"DBSIZE"]), b":1\r\n").await;
    c.expect(
        &resp(&[b"SELECT", b"16"]),
        b"-ERR DB index is out of range\r\n",
    )
    .await;
    c.expect(&resp(&[b"FLUSHDB", b"ASYNC"]), b"+OK\r\n").await;
    c.expect(&resp(&[b"DBSIZE"]), b":0\r\n").await;
    c.expect(&resp(&[b"FLUSHALL", b"SYNC"]), b"+OK\r\n").await;
    c.expect(&resp(&[b"SELECT", b"0"]), b"+OK\r\n").await;
    c.expect(&resp(&[b"DBSIZE"]), b":0\r\n").await;
}

#[tokio::test]
async fn object_type_and_encodings() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    c.expect(&resp(&[b"SET", b"i", b"12345"]), b"+OK\r\n").await;
    c.expect(&resp(&[b"SET", b"e", b"short"]), b"+OK\r\n").await;
    c.expect(&resp(&[b"SET", b"r", &[b'x'; 100]]), b"+OK\r\n")
        .await;
    c.expect(&resp(&[b"OBJECT", b"ENCODING", b"i"]), b"$3\r\nint\r\n")
        .await;
    c.expect(&resp(&[b"OBJECT", b"ENCODING", b"e"]), b"$6\r\nembstr\r\n")
        .await;
    c.expect(&resp(&[b"OBJECT", b"ENCODING", b"r"]), b"$3\r\nraw\r\n")
        .await;
    c.expect(&resp(&[b"APPEND", b"e", b"x"]), b":6\r\n").await;
    c.expect(&resp(&[b"OBJECT", b"ENCODING", b"e"]), b"$3\r\nraw\r\n")
        .await;
    c.expect(&resp(&[b"OBJECT", b"ENCODING", b"none"]), b"$-1\r\n")
        .await;
    // Encodings as Redis 7.0 leaves them (found by tests/differential.rs):
    // INCRBYFLOAT stores its result as text, even an integer's; a SETBIT
    // that changes nothing still leaves the string raw; SORT converts a
    // listpack sorted set to a skiplist and keeps it so; RENAME keeps the
    // encoding.
    let cases: &[(&[&[u8]], &[u8])] = &[
        (&[b"SET", b"f", b"10"], b"+OK\r\n"),
        (&[b"INCRBYFLOAT", b"f", b"0"], b"$2\r\n10\r\n"),
        (&[b"OBJECT", b"ENCODING", b"f"], b"$6\r\nembstr\r\n"),
        (&[b"RENAME", b"f", b"g"], b"+OK\r\n"),
        (&[b"OBJECT", b"ENCODING", b"g"], b"$6\r\nembstr\r\n"),
        (&[b"INCR", b"g"], b":11\r\n"),
        (&[b"OBJECT", b"ENCODING", b"g"], b"$3\r\nint\r\n"),
        (&[b"SETBIT", b"g", b"0", b"0"], b":0\r\n"),
        (&[b"GET", b"g"], b"$2\r\n11\r\n"),
        (&[b"OBJECT", b"ENCODING", b"g"], b"$3\r\nraw\r\n"),
        (&[b"ZADD", b"z", b"2", b"1", b"1", b"2"], b":2\r\n"),
        (&[b"OBJECT", b"ENCODING", b"z"], b"$8\r\nlistpack\r\n"),
        (&[b"SORT_RO", b"z"], b"*2\r\n$1\r\n1\r\n$1\r\n2\r\n"),
        (&[b"OBJECT", b"ENCODING", b"z"], b"$8\r\nskiplist\r\n"),
    ];
    for (cmd, want) in cases {
        c.expect(&resp(cmd), want).await;
    }
    // Those conversions change no data: a WATCH on the key holds.
    let mut w = srv.raw().await;
    c.expect(&resp(&[b"ZADD", b"z2", b"1", b"1"]), b":1\r\n")
        .await;
    c.expect(&resp(&[b"SET", b"g2", b"5"]), b"+OK\r\n").await;
    w.expect(&resp(&[b"WATCH", b"z2", b"g2"]), b"+OK\r\n").await;
    c.expect(&resp(&[b"SORT", b"z2"]), b"*1\r\n$1\r\n1\r\n")
        .await;
    c.expect(&resp(&[b"SETBIT", b"g2", b"0", b"0"]), b":0\r\n")
        .await;
    w.expect(&resp(&[b"MULTI"]), b"+OK\r\n").await;
    w.expect(&resp(&[b"PING"]), b"+QUEUED\r\n").await;
    w.expect(&resp(&[b"EXEC"]), b"*1\r\n+PONG\r\n").await;
    c.expect(
        &resp(&[b"OBJECT", b"ENCODING", b"z2"]),
        b"$8\r\nskiplist\r\n",
    )
    .await;
    c.expect(&resp(&[b"TYPE", b"i"]), b"+string\r\n").await;
    c.expect(&resp(&[b"TYPE", b"none"]), b"+none\r\n").await;
    c.expect(&resp(&[b"OBJECT", b"IDLETIME", b"i"]), b":0\r\n")
        .await;
    c.expect(
        &resp(&[b"OBJECT", b"FREQ", b"i"]),
        b"-ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.\r\n",
    )
    .await;
    c.expect(
        &resp(&[b"CONFIG", b"SET", b"maxmemory-policy", b"allkeys-lfu"]),
        b"+OK\r\n",
    )
    .await;
    c.send(&resp(&[b"OBJECT", b"FREQ", b"i"])).await;
    let f = c.read_until(b"\r\n").await;
    assert!(f.starts_with(b":"), "{f:?}");
    c.expect(&resp(&[b"TOUCH", b"i", b"e", b"none"]), b":2\r\n")
        .await;
    c.expect(&resp(&[b"UNLINK", b"i", b"e", b"none"]), b":2\r\n")
        .await;
}

/// Shards of thousands of keys grow incrementally (the old layout is moved a
/// few entries per insert and by the active cycle); every command must see
/// one keyspace meanwhile: lookups on either side of the move, SCAN's
/// guarantee, removals, RANDOMKEY, DBSIZE.
#[tokio::test]
async fn large_keyspace_grows_incrementally_without_losing_keys() {
    async fn rehashing(c: &mut redis::aio::MultiplexedConnection) -> u64 {
        let s: String = redis::cmd("DEBUG")
            .arg("HTSTATS")
            .arg(0)
            .query_async(c)
            .await
            .unwrap();
        s.lines()
            .find_map(|l| l.trim().strip_prefix("shards rehashing: "))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no rehashing line in {s}"))
    }
    let srv = TestServer::start();
    let mut c = srv.conn().await;
    // Only inserts move entries while the scan runs.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("activerehashing")
        .arg("no")
        .query_async(&mut c)
        .await
        .unwrap();
    let n = 200_000u64;
    let _: () = redis::cmd("DEBUG")
        .arg("POPULATE")
        .arg(n)
        .arg("base")
        .query_async(&mut c)
        .await
        .unwrap();
    let mut seen = HashSet::new();
    let mut cursor: u64 = 0;
    let mut round = 0u64;
    let mut added = 0u64;
    let mut scanned_while_growing = 0;
    loop {
        if rehashing(&mut c).await > 0 {
            scanned_while_growing += 1;
        }
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut c)
            .await
            .unwrap();
        seen.extend(keys.into_iter().filter(|k| k.starts_with("base:")));
        // New keys between calls: every shard grows (some more than once)
        // during the scan, each move spread over many calls.
        let mut p = redis::pipe();
        for i in 0..1000 {
            p.cmd("SET")
                .arg(format!("grow:{round}:{i}"))
                .arg(i)
                .ignore();
        }
        let _: () = p.query_async(&mut c).await.unwrap();
        added += 1000;
        // Keys on both sides of a move in progress answer.
        for j in (0..n).step_by(7919) {
            let v: Option<String> = c.get(format!("base:{j}")).await.unwrap();
            assert_eq!(v, Some(format!("value:{j}")), "base:{j}");
        }
        let v: Option<u32> = c.get(format!("grow:{round}:999")).await.unwrap();
        assert_eq!(v, Some(999));
        round += 1;
        cursor = next;
        if cursor == 0 {
            break;
        }
        assert!(round < 100_000, "SCAN did not terminate");
    }
    assert!(scanned_while_growing > 10, "{scanned_while_growing}");
    assert_eq!(seen.len() as u64, n, "SCAN missed populated keys");
    let size: u64 = redis::cmd("DBSIZE").query_async(&mut c).await.unwrap();
    assert_eq!(size, n + added);
    // Removals wherever the keys now live, then the count and a random key.
    let mut p = redis::pipe();
    for j in (0..n).step_by(2) {
        p.cmd("UNLINK").arg(format!("base:{j}")).ignore();
    }
    let _: () = p.query_async(&mut c).await.unwrap();
    let size: u64 = redis::cmd("DBSIZE").query_async(&mut c).await.unwrap();
    assert_eq!(size, n / 2 + added);
    for j in (1..n).step_by(7919 * 2) {
        let v: Option<String> = c.get(format!("base:{j}")).await.unwrap();
        assert_eq!(v, Some(format!("value:{j}")), "base:{j}");
        let gone: bool = c.exists(format!("base:{}", j - 1)).await.unwrap();
        assert!(!gone);
    }
    let k: Option<String> = redis::cmd("RANDOMKEY").query_async(&mut c).await.unwrap();
    assert!(k.is_some());
    // Growth left half done finishes in the background once allowed.
    let mut p = redis::pipe();
    while rehashing(&mut c).await == 0 {
        for i in 0..2000 {
            p.cmd("SET").arg(format!("more:{added}")).arg(i).ignore();
            added += 1;
        }
        let _: () = p.query_async(&mut c).await.unwrap();
        p.clear();
    }
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("activerehashing")
        .arg("yes")
        .query_async(&mut c)
        .await
        .unwrap();
    let t0 = std::time::Instant::now();
    while rehashing(&mut c).await > 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "growth never finished"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn scan_returns_every_key_present_throughout_while_the_table_grows() {
    let srv = TestServer::start();
    let mut c = srv.conn().await;
    let stable: Vec<String> = (0..2000).map(|i| format!("stable:{i}")).collect();
    for chunk in stable.chunks(500) {
        let pairs: Vec<(&String, i32)> = chunk.iter().map(|k| (k, 1)).collect();
        let _: () = c.mset(&pairs).await.unwrap();
    }
    let mut seen = HashSet::new();
    let mut cursor: u64 = 0;
    let mut round = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(100)
            .query_async(&mut c)
            .await
            .unwrap();
        seen.extend(keys);
        // Grow the keyspace a lot between calls (forces table growth).
        let pairs: Vec<(String, i32)> =
            (0..100).map(|i| (format!("grow:{round}:{i}"), 1)).collect();
        let _: () = c.mset(&pairs).await.unwrap();
        round += 1;
        cursor = next;
        if cursor == 0 {
            break;
        }
        assert!(round < 10_000, "SCAN did not terminate");
    }
    for k in &stable {
        assert!(seen.contains(k), "SCAN missed {k}");
    }
    // MATCH and TYPE filters.
    let (_, keys): (u64, Vec<String>) = redis::cmd("SCAN")
        .arg(0)
        .arg("MATCH")
        .arg("stable:1*")
        .arg("COUNT")
        .arg(1_000_000)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1111);
    assert!(keys.iter().all(|k| k.starts_with("stable:1")));
    let (_, keys): (u64, Vec<String>) = redis::cmd("SCAN")
        .arg(0)
        .arg("TYPE")
        .arg("list")
        .arg("COUNT")
        .arg(1_000_000)
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(keys.is_empty());
    let keys: Vec<String> = c.keys("stable:19?").await.unwrap();
    assert_eq!(keys.len(), 10);
    let k: Option<String> = redis::cmd("RANDOMKEY").query_async(&mut c).await.unwrap();
    assert!(k.is_some());
}

#[tokio::test]
async fn active_expiry_removes_unread_keys() {
    let srv = TestServer::start();
    let mut c = srv.conn().await;
    for batch in 0..100 {
        let mut p = redis::pipe();
        for i in 0..1000 {
            p.cmd("SET")
                .arg(format!("ttl:{batch}:{i}"))
                .arg("v")
                .arg("PX")
                .arg(1000)
                .ignore();
        }
        let _: () = p.query_async(&mut c).await.unwrap();
    }
    let n: usize = redis::cmd("DBSIZE").query_async(&mut c).await.unwrap();
    assert!(n > 90_000, "{n}");
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    loop {
        let n: usize = redis::cmd("DBSIZE").query_async(&mut c).await.unwrap();
        if n == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{n} keys still present"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(&mut c)
        .await
        .unwrap();
    let expired: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("expired_keys:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    assert!(expired >= 100_000, "expired_keys {expired}");
}

/// Edge cases against redis-server: replies must be byte-identical.
#[tokio::test]
async fn key_edge_cases_match_redis() {
    let srv = TestServer::start();
    let s = script(
        "
        FLUSHALL
        SET a 1
        SET b 2
        DEL a a b c
        EXISTS a a
        SET a 1
        EXPIRE a 100 nx xx
        EXPIRE a 100 gt lt
        EXPIRE a 100 nx gt
        EXPIRE a abc
        EXPIRE a 100 gt
        EXPIRE a 100 lt
        TTL a
        PEXPIREAT a 99999999999999 gt
        PEXPIRE a 9223372036854775807
        EXPIREAT a -9223372036854775808
        EXPIRE missing 10
        PERSIST missing
        RENAME missing x
        RENAMENX missing x
        SET x 1
        RENAMENX x x
        COPY x y DB
        COPY x y DB abc
        COPY x y FOO
        MOVE x abc
        MOVE x 100
        SWAPDB 0 100
        SWAPDB abc 0
        SELECT -1
        SELECT abc
        FLUSHDB FOO
        FLUSHALL ASYNC SYNC
        OBJECT HELP_NOPE
        OBJECT ENCODING
        OBJECT REFCOUNT x
        OBJECT REFCOUNT missing
        TYPE x
        SCAN abc
        SCAN 0 COUNT 0
        SCAN 0 COUNT -1
        SCAN 0 MATCH
        SCAN 0 FOO bar
        KEYS nomatch*
        TOUCH missing
        DBSIZE
        ",
    );
    same_replies(srv.addr.port(), &s).await;
}

/// INFO memory's lazyfreed_objects, once lazyfree_pending_objects is 0.
async fn lazyfreed_after_drain(c: &mut redis::aio::MultiplexedConnection) -> u64 {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while common::info_field(c, "memory", "lazyfree_pending_objects").await != "0" {
        assert!(
            std::time::Instant::now() < deadline,
            "lazyfree never drained"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    common::info_field(c, "memory", "lazyfreed_objects")
        .await
        .parse()
        .unwrap()
}

/// UNLINK, DEL under lazyfree-lazy-user-del and FLUSHALL ASYNC free big
/// values on the background thread (counted in lazyfreed_objects as
/// Redis counts them), small ones at once; the keys are gone immediately
/// either way.
#[tokio::test]
async fn lazyfree_of_big_values() {
    let srv = TestServer::start();
    let mut c = srv.conn().await;
    let members: Vec<i64> = (0..1000).collect();
    let _: () = c.sadd("big", &members).await.unwrap();
    let _: () = c.sadd("small", 1).await.unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut c)
        .await
        .unwrap();
    let n: i64 = redis::cmd("UNLINK")
        .arg("big")
        .arg("small")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(n, 2);
    let n: i64 = c.exists("big").await.unwrap();
    assert_eq!(n, 0);
    assert_eq!(
        lazyfreed_after_drain(&mut c).await,
        1,
        "only the big set goes to the background"
    );

    // DEL frees in place unless lazyfree-lazy-user-del.
    let _: () = c.sadd("big", &members).await.unwrap();
    let _: () = c.del("big").await.unwrap();
    assert_eq!(lazyfreed_after_drain(&mut c).await, 1);
    common::config_set(&mut c, "lazyfree-lazy-user-del", "yes").await;
    let _: () = c.sadd("big", &members).await.unwrap();
    let _: () = c.del("big").await.unwrap();
    assert_eq!(lazyfreed_after_drain(&mut c).await, 2);

    // FLUSHALL ASYNC counts one object per key; the dataset is empty at once.
    for i in 0..100 {
        let _: () = c.set(format!("k{i}"), i).await.unwrap();
    }
    let _: () = redis::cmd("FLUSHALL")
        .arg("ASYNC")
        .query_async(&mut c)
        .await
        .unwrap();
    let n: i64 = redis::cmd("DBSIZE").query_async(&mut c).await.unwrap();
    assert_eq!(n, 0);
    assert_eq!(lazyfreed_after_drain(&mut c).await, 102);
    // And the emptied shards take new keys normally.
    let _: () = c.set("again", 1).await.unwrap();
    let v: i64 = c.get("again").await.unwrap();
    assert_eq!(v, 1);

    // lazyfree-lazy-server-del: a big value replaced by SET; and
    // lazyfree-lazy-expire: a big value that expires (found by EXISTS).
    for (param, want) in [
        ("lazyfree-lazy-server-del", 103),
        ("lazyfree-lazy-expire", 104),
    ] {
        common::config_set(&mut c, param, "yes").await;
        let _: () = c.del("big").await.unwrap();
        let _: () = c.sadd("big", &members).await.unwrap();
        if param == "lazyfree-lazy-server-del" {
            let _: () = c.set("big", "now a string").await.unwrap();
        } else {
            let _: () = c.pexpire("big", 1).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
            let n: i64 = c.exists("big").await.unwrap();
            assert_eq!(n, 0);
        }
        assert_eq!(lazyfreed_after_drain(&mut c).await, want, "{param}");
    }
}

/// OBJECT REFCOUNT of a small integer as Redis reports it: shared (INT_MAX)
/// unless a maxmemory with an LRU or LFU policy is set.
#[tokio::test]
async fn object_refcount_of_small_integers_follows_the_policy() {
    let srv = TestServer::start();
    let s = common::diff::script(
        "
        SET a 1
        OBJECT REFCOUNT a
        CONFIG SET maxmemory 1073741824
        CONFIG SET maxmemory-policy allkeys-random
        SET a 1
        OBJECT REFCOUNT a
        CONFIG SET maxmemory-policy allkeys-lru
        SET a 1
        CONFIG SET maxmemory-policy volatile-lfu
        SET b 1
        OBJECT REFCOUNT a
        OBJECT REFCOUNT b
        SET c 10000
        OBJECT REFCOUNT c
        CONFIG SET maxmemory 0
        CONFIG SET maxmemory-policy noeviction
        ",
    );
    assert!(common::diff::same_replies(srv.addr.port(), &s).await);
}

/// KEYS builds its reply in one buffer, counting as it goes: an array in
/// both protocols (never a RESP3 set), empty when nothing matches, and
/// values inside a script.
#[tokio::test]
async fn keys_reply_in_both_protocols_and_in_scripts() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    c.expect(&resp(&[b"SET", b"only:1", b"x"]), b"+OK\r\n")
        .await;
    c.expect(&resp(&[b"KEYS", b"only:*"]), b"*1\r\n$6\r\nonly:1\r\n")
        .await;
    c.expect(&resp(&[b"KEYS", b"none:*"]), b"*0\r\n").await;
    c.expect(
        &resp(&[b"EVAL", b"return #redis.call('keys', 'only:*')", b"0"]),
        b":1\r\n",
    )
    .await;
    c.send(&resp(&[b"HELLO", b"3"])).await;
    c.read_until(b"modules\r\n*0\r\n").await;
    c.expect(&resp(&[b"KEYS", b"only:*"]), b"*1\r\n$6\r\nonly:1\r\n")
        .await;
    c.expect(&resp(&[b"KEYS", b"none:*"]), b"*0\r\n").await;
}
