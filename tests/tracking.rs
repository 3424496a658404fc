//! Client-side caching (CLIENT TRACKING) through the real server: raw RESP3
//! connections for the exact push frames and their order relative to
//! replies, a RESP2 Pub/Sub connection for REDIRECT, and the `redis` crate
//! as the writer.

mod common;
use common::{resp, Raw, TestServer};
use std::time::Duration;

/// `>2 invalidate [key]` as a RESP3 push.
fn inv(key: &[u8]) -> Vec<u8> {
    let mut v = b">2\r\n$10\r\ninvalidate\r\n*1\r\n".to_vec();
    bulk(&mut v, key);
    v
}

/// `>2 invalidate [k1 k2 …]` (BCAST).
fn inv_many(keys: &[&[u8]]) -> Vec<u8> {
    let mut v = format!(">2\r\n$10\r\ninvalidate\r\n*{}\r\n", keys.len()).into_bytes();
    for k in keys {
        bulk(&mut v, k);
    }
    v
}

const INV_NULL: &[u8] = b">2\r\n$10\r\ninvalidate\r\n_\r\n";

fn bulk(v: &mut Vec<u8>, b: &[u8]) {
    v.extend_from_slice(format!("${}\r\n", b.len()).as_bytes());
    v.extend_from_slice(b);
    v.extend_from_slice(b"\r\n");
}

fn bulk_of(b: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    bulk(&mut v, b);
    v
}

async fn resp3(srv: &TestServer) -> Raw {
    let mut c = srv.raw().await;
    c.send(&resp(&[b"HELLO", b"3"])).await;
    c.read_until(b"modules\r\n*0\r\n").await;
    c
}

async fn client_id(c: &mut Raw) -> i64 {
    c.send(&resp(&[b"CLIENT", b"ID"])).await;
    let r = c.read_until(b"\r\n").await;
    String::from_utf8_lossy(&r[1..])
        .trim()
        .parse()
        .expect("client id")
}

async fn ok(c: &mut Raw, cmd: &[&[u8]]) {
    c.expect(&resp(cmd), b"+OK\r\n").await;
}

/// Asserts nothing is pending for `c`: a PING answers exactly +PONG.
async fn quiet(c: &mut Raw) {
    c.expect(&resp(&[b"PING"]), b"+PONG\r\n").await;
}

async fn set(w: &mut redis::aio::MultiplexedConnection, k: &str, v: &str) {
    let _: () = redis::cmd("SET")
        .arg(k)
        .arg(v)
        .query_async(w)
        .await
        .unwrap();
}

#[tokio::test]
async fn default_mode_invalidates_once_per_read() {
    let srv = TestServer::start();
    let mut w = srv.conn().await;
    let mut c = resp3(&srv).await;
    ok(&mut c, &[b"CLIENT", b"TRACKING", b"on"]).await;
    set(&mut w, "k", "1").await;
    set(&mut w, "other", "1").await;
    c.expect(&resp(&[b"GET", b"k"]), &bulk_of(b"1")).await;
    set(&mut w, "other", "2").await; // never read: no message
    set(&mut w, "k", "2").await;
    c.expect(b"", &inv(b"k")).await;
    // Forgotten after one invalidation until read again.
    set(&mut w, "k", "3").await;
    quiet(&mut c).await;
    c.expect(&resp(&[b"GET", b"k"]), &bulk_of(b"3")).await;
    let _: i64 = redis::cmd("DEL")
        .arg("k")
        .query_async(&mut w)
        .await
        .unwrap();
    c.expect(b"", &inv(b"k")).await;
    // Multi-key reads track every key.
    c.expect(&resp(&[b"MGET", b"a", b"b"]), b"*2\r\n_\r\n_\r\n")
        .await;
    let _: () = redis::cmd("MSET")
        .arg("b")
        .arg(1)
        .arg("a")
        .arg(1)
        .query_async(&mut w)
        .await
        .unwrap();
    let mut both = inv(b"b");
    both.extend(inv(b"a"));
    c.expect(b"", &both).await;
}

#[tokio::test]
async fn own_write_invalidation_follows_reply() {
    let srv = TestServer::start();
    let mut c = resp3(&srv).await;
    ok(&mut c, &[b"CLIENT", b"TRACKING", b"on"]).await;
    c.expect(&resp(&[b"GET", b"k"]), b"_\r\n").await;
    let mut want = b"+OK\r\n".to_vec();
    want.extend(inv(b"k"));
    c.expect(&resp(&[b"SET", b"k", b"v"]), &want).await;
    // HDEL on a tracked hash: reply first, then the message.
    c.expect(&resp(&[b"HSET", b"h", b"f", b"v"]), b":1\r\n")
        .await;
    c.expect(&resp(&[b"HGET", b"h", b"f"]), &bulk_of(b"v"))
        .await;
    let mut want = b":1\r\n".to_vec();
    want.extend(inv(b"h"));
    c.expect(&resp(&[b"HDEL", b"h", b"f"]), &want).await;
}

#[tokio::test]
async fn multi_exec_invalidations_after_exec_reply() {
    let srv = TestServer::start();
    let mut c = resp3(&srv).await;
    ok(&mut c, &[b"CLIENT", b"TRACKING", b"on"]).await;
    c.expect(&resp(&[b"MGET", b"a", b"b"]), b"*2\r\n_\r\n_\r\n")
        .await;
    ok(&mut c, &[b"MULTI"]).await;
    c.expect(&resp(&[b"SET", b"a", b"1"]), b"+QUEUED\r\n").await;
    c.expect(&resp(&[b"SET", b"b", b"1"]), b"+QUEUED\r\n").await;
    let mut want = b"*2\r\n+OK\r\n+OK\r\n".to_vec();
    want.extend(inv(b"a"));
    want.extend(inv(b"b"));
    c.expect(&resp(&[b"EXEC"]), &want).await;
}

#[tokio::test]
async fn expiry_and_flush() {
    let srv = TestServer::start();
    let mut w = srv.conn().await;
    let mut c = resp3(&srv).await;
    ok(&mut c, &[b"CLIENT", b"TRACKING", b"on"]).await;
    let _: () = redis::cmd("SET")
        .arg("e")
        .arg("v")
        .arg("PX")
        .arg(50)
        .query_async(&mut w)
        .await
        .unwrap();
    c.expect(&resp(&[b"GET", b"e"]), &bulk_of(b"v")).await;
    // Active expiry removes it and the reader is told.
    c.expect(b"", &inv(b"e")).await;
    // FLUSHALL by another client: a null invalidation for every tracker.
    let _: () = redis::cmd("FLUSHALL").query_async(&mut w).await.unwrap();
    c.expect(b"", INV_NULL).await;
    // FLUSHDB by the tracking client itself: after its reply.
    let mut want = b"+OK\r\n".to_vec();
    want.extend_from_slice(INV_NULL);
    c.expect(&resp(&[b"FLUSHDB"]), &want).await;
}

#[tokio::test]
async fn bcast_with_prefixes() {
    let srv = TestServer::start();
    let mut w = srv.conn().await;
    let mut c = resp3(&srv).await;
    ok(
        &mut c,
        &[
            b"CLIENT",
            b"TRACKING",
            b"on",
            b"BCAST",
            b"PREFIX",
            b"a:",
            b"PREFIX",
            b"b:",
        ],
    )
    .await;
    let _: () = redis::cmd("MSET")
        .arg("a:1")
        .arg(1)
        .arg("c:1")
        .arg(1)
        .arg("b:2")
        .arg(1)
        .arg("a:0")
        .arg(1)
        .query_async(&mut w)
        .await
        .unwrap();
    // One message per prefix, keys in order; c:1 matches none.
    let mut want = inv_many(&[b"a:0", b"a:1"]);
    want.extend(inv_many(&[b"b:2"]));
    c.expect(b"", &want).await;
    c.expect(
        &resp(&[b"CLIENT", b"TRACKINGINFO"]),
        b"%3\r\n$5\r\nflags\r\n~2\r\n$2\r\non\r\n$5\r\nbcast\r\n$8\r\nredirect\r\n:0\r\n$8\r\nprefixes\r\n*2\r\n$2\r\na:\r\n$2\r\nb:\r\n",
    )
    .await;
    // Empty prefix (no PREFIX): every key, no read needed.
    let mut d = resp3(&srv).await;
    ok(&mut d, &[b"CLIENT", b"TRACKING", b"on", b"BCAST"]).await;
    set(&mut w, "zz", "1").await;
    d.expect(b"", &inv_many(&[b"zz"])).await;
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(&mut w)
        .await
        .unwrap();
    assert!(info.contains("tracking_total_prefixes:3"), "{info}");
}

#[tokio::test]
async fn optin_optout_and_caching() {
    let srv = TestServer::start();
    let mut w = srv.conn().await;
    let mut c = resp3(&srv).await;
    ok(&mut c, &[b"CLIENT", b"TRACKING", b"on", b"OPTIN"]).await;
    c.expect(&resp(&[b"GET", b"k"]), b"_\r\n").await;
    set(&mut w, "k", "1").await;
    quiet(&mut c).await; // not tracked without CACHING yes
    ok(&mut c, &[b"CLIENT", b"CACHING", b"yes"]).await;
    c.expect(&resp(&[b"GET", b"k"]), &bulk_of(b"1")).await;
    set(&mut w, "k", "2").await;
    c.expect(b"", &inv(b"k")).await;
    // CACHING applies to the next command only.
    ok(&mut c, &[b"CLIENT", b"CACHING", b"yes"]).await;
    c.expect(&resp(&[b"PING"]), b"+PONG\r\n").await;
    c.expect(&resp(&[b"GET", b"k"]), &bulk_of(b"2")).await;
    set(&mut w, "k", "3").await;
    quiet(&mut c).await;
    c.expect(
        &resp(&[b"CLIENT", b"CACHING", b"no"]),
        b"-ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.\r\n",
    )
    .await;

    let mut d = resp3(&srv).await;
    ok(&mut d, &[b"CLIENT", b"TRACKING", b"on", b"OPTOUT"]).await;
    ok(&mut d, &[b"CLIENT", b"CACHING", b"no"]).await;
    d.expect(&resp(&[b"GET", b"x"]), b"_\r\n").await;
    set(&mut w, "x", "1").await;
    quiet(&mut d).await; // opted out for that read
    d.expect(&resp(&[b"GET", b"x"]), &bulk_of(b"1")).await;
    set(&mut w, "x", "2").await;
    d.expect(b"", &inv(b"x")).await;
}

#[tokio::test]
async fn noloop_skips_own_writes() {
    let srv = TestServer::start();
    let mut w = srv.conn().await;
    let mut c = resp3(&srv).await;
    ok(&mut c, &[b"CLIENT", b"TRACKING", b"on", b"NOLOOP"]).await;
    c.expect(&resp(&[b"MGET", b"mine", b"theirs"]), b"*2\r\n_\r\n_\r\n")
        .await;
    ok(&mut c, &[b"SET", b"mine", b"1"]).await;
    set(&mut w, "theirs", "1").await;
    c.expect(b"", &inv(b"theirs")).await;
    quiet(&mut c).await;
    // BCAST + NOLOOP.
    ok(&mut c, &[b"CLIENT", b"TRACKING", b"off"]).await;
    ok(
        &mut c,
        &[b"CLIENT", b"TRACKING", b"on", b"BCAST", b"NOLOOP"],
    )
    .await;
    ok(&mut c, &[b"SET", b"mine", b"2"]).await;
    quiet(&mut c).await;
    set(&mut w, "theirs", "2").await;
    c.expect(b"", &inv_many(&[b"theirs"])).await;
}

#[tokio::test]
async fn resp2_redirect_to_pubsub_and_broken_redirect() {
    let srv = TestServer::start();
    let mut w = srv.conn().await;
    let mut sub = srv.raw().await;
    let sid = client_id(&mut sub).await;
    sub.expect(
        &resp(&[b"SUBSCRIBE", b"__redis__:invalidate"]),
        b"*3\r\n$9\r\nsubscribe\r\n$20\r\n__redis__:invalidate\r\n:1\r\n",
    )
    .await;
    // A RESP2 tracking client redirecting to the subscriber.
    let mut c = srv.raw().await;
    let sid_s = sid.to_string();
    ok(
        &mut c,
        &[b"CLIENT", b"TRACKING", b"on", b"REDIRECT", sid_s.as_bytes()],
    )
    .await;
    c.expect(
        &resp(&[b"CLIENT", b"GETREDIR"]),
        format!(":{sid}\r\n").as_bytes(),
    )
    .await;
    c.expect(&resp(&[b"GET", b"k"]), b"$-1\r\n").await;
    set(&mut w, "k", "1").await;
    sub.expect(
        b"",
        b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$1\r\nk\r\n",
    )
    .await;
    // FLUSHALL: a RESP2 null in the message.
    let _: () = redis::cmd("FLUSHALL").query_async(&mut w).await.unwrap();
    sub.expect(
        b"",
        b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n$-1\r\n",
    )
    .await;
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut w)
        .await
        .unwrap();
    assert!(
        list.lines()
            .any(|l| l.contains("flags=t ") && l.contains(&format!("redir={sid} "))),
        "{list}"
    );

    // A RESP3 client redirecting to it; the subscriber leaves.
    let mut d = resp3(&srv).await;
    ok(
        &mut d,
        &[b"CLIENT", b"TRACKING", b"on", b"REDIRECT", sid_s.as_bytes()],
    )
    .await;
    d.expect(&resp(&[b"GET", b"j"]), b"_\r\n").await;
    drop(sub);
    tokio::time::sleep(Duration::from_millis(200)).await;
    set(&mut w, "j", "1").await;
    let mut want = format!(">2\r\n$21\r\ntracking-redir-broken\r\n:{sid}\r\n").into_bytes();
    want.extend_from_slice(b"+PONG\r\n");
    d.expect(&resp(&[b"PING"]), &want).await;
    d.send(&resp(&[b"CLIENT", b"TRACKINGINFO"])).await;
    let info = d.read_until(b"*0\r\n").await;
    assert!(
        String::from_utf8_lossy(&info).contains("broken_redirect"),
        "{}",
        String::from_utf8_lossy(&info)
    );
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut w)
        .await
        .unwrap();
    assert!(list.contains("flags=tR "), "{list}");
}

#[tokio::test]
async fn redirect_to_resp3_client_without_subscription() {
    let srv = TestServer::start();
    let mut w = srv.conn().await;
    let mut target = resp3(&srv).await;
    let tid = client_id(&mut target).await.to_string();
    let mut c = srv.raw().await;
    ok(
        &mut c,
        &[b"CLIENT", b"TRACKING", b"on", b"REDIRECT", tid.as_bytes()],
    )
    .await;
    c.expect(&resp(&[b"GET", b"k"]), b"$-1\r\n").await;
    set(&mut w, "k", "1").await;
    // The idle target receives the push without sending anything.
    target.expect(b"", &inv(b"k")).await;
    quiet(&mut target).await;
}

#[tokio::test]
async fn table_limit_evicts_keys_with_invalidations() {
    let srv = TestServer::start();
    let mut w = srv.conn().await;
    let mut c = resp3(&srv).await;
    ok(&mut c, &[b"CLIENT", b"TRACKING", b"on"]).await;
    c.expect(
        &resp(&[b"MGET", b"k1", b"k2", b"k3"]),
        b"*3\r\n_\r\n_\r\n_\r\n",
    )
    .await;
    let info: String = redis::cmd("INFO").query_async(&mut w).await.unwrap();
    assert!(info.contains("tracking_clients:1"), "{info}");
    assert!(info.contains("tracking_total_keys:3"), "{info}");
    assert!(info.contains("tracking_total_items:3"), "{info}");
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("tracking-table-max-keys")
        .arg(1)
        .query_async(&mut w)
        .await
        .unwrap();
    // Two of the three keys are invalidated (by the periodic task).
    let got = c.read_exact_n(2 * inv(b"k1").len()).await;
    let s = String::from_utf8_lossy(&got);
    assert_eq!(s.matches("invalidate").count(), 2, "{s}");
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(&mut w)
        .await
        .unwrap();
    assert!(info.contains("tracking_total_keys:1"), "{info}");
}

#[tokio::test]
async fn scripts_track_declared_keys_only_when_reading() {
    let srv = TestServer::start();
    let mut w = srv.conn().await;
    let mut c = resp3(&srv).await;
    ok(&mut c, &[b"CLIENT", b"TRACKING", b"on"]).await;
    // A script that only writes tracks nothing.
    c.expect(
        &resp(&[b"EVAL", b"redis.call('set', 'x', 'bar')", b"1", b"k1"]),
        b"_\r\n",
    )
    .await;
    set(&mut w, "k1", "1").await;
    quiet(&mut c).await;
    // A script that reads tracks its declared keys.
    c.expect(
        &resp(&[b"EVAL", b"redis.call('get', 'x')", b"2", b"k1", b"k2"]),
        b"_\r\n",
    )
    .await;
    let _: () = redis::cmd("MSET")
        .arg("k2")
        .arg(2)
        .arg("k1")
        .arg(2)
        .query_async(&mut w)
        .await
        .unwrap();
    let mut want = inv(b"k2");
    want.extend(inv(b"k1"));
    c.expect(b"", &want).await;
}

#[tokio::test]
async fn errors_match_redis() {
    let srv = TestServer::start();
    let mut c = resp3(&srv).await;
    let cases: &[(&[&[u8]], &[u8])] = &[
        (
            &[b"CLIENT", b"TRACKING", b"on", b"PREFIX", b"a"],
            b"-ERR PREFIX option requires BCAST mode to be enabled\r\n",
        ),
        (
            &[b"CLIENT", b"TRACKING", b"on", b"OPTIN", b"OPTOUT"],
            b"-ERR You can't specify both OPTIN mode and OPTOUT mode\r\n",
        ),
        (
            &[b"CLIENT", b"TRACKING", b"on", b"BCAST", b"OPTIN"],
            b"-ERR OPTIN and OPTOUT are not compatible with BCAST\r\n",
        ),
        (
            &[b"CLIENT", b"TRACKING", b"on", b"REDIRECT", b"9999"],
            b"-ERR The client ID you want redirect to does not exist\r\n",
        ),
        (
            &[b"CLIENT", b"TRACKING", b"on", b"REDIRECT", b"x"],
            b"-ERR value is not an integer or out of range\r\n",
        ),
        (
            &[b"CLIENT", b"TRACKING", b"maybe"],
            b"-ERR syntax error\r\n",
        ),
        (
            &[b"CLIENT", b"TRACKING", b"on", b"bogus"],
            b"-ERR syntax error\r\n",
        ),
        (
            &[b"CLIENT", b"CACHING", b"yes"],
            b"-ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled\r\n",
        ),
        (
            &[b"CLIENT", b"TRACKING", b"on", b"BCAST", b"PREFIX", b"foo", b"PREFIX", b"fo"],
            b"-ERR Prefix 'foo' overlaps with another provided prefix 'fo'. Prefixes for a single client must not overlap.\r\n",
        ),
        (&[b"CLIENT", b"GETREDIR"], b":-1\r\n"),
    ];
    for (cmd, want) in cases {
        c.expect(&resp(cmd), want).await;
    }
    ok(
        &mut c,
        &[b"CLIENT", b"TRACKING", b"on", b"BCAST", b"PREFIX", b"abc"],
    )
    .await;
    c.expect(
        &resp(&[b"CLIENT", b"TRACKING", b"on", b"BCAST", b"PREFIX", b"ab"]),
        b"-ERR Prefix 'ab' overlaps with an existing prefix 'abc'. Prefixes for a single client must not overlap.\r\n",
    )
    .await;
    c.expect(
        &resp(&[b"CLIENT", b"TRACKING", b"on"]),
        b"-ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.\r\n",
    )
    .await;
    c.expect(
        &resp(&[b"CLIENT", b"CACHING", b"yes"]),
        b"-ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.\r\n",
    )
    .await;
    ok(&mut c, &[b"CLIENT", b"TRACKING", b"off"]).await;
    ok(&mut c, &[b"CLIENT", b"TRACKING", b"on", b"OPTIN"]).await;
    c.expect(
        &resp(&[b"CLIENT", b"TRACKING", b"on", b"OPTOUT"]),
        b"-ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.\r\n",
    )
    .await;
    c.expect(&resp(&[b"CLIENT", b"GETREDIR"]), b":0\r\n").await;
    // RESET turns tracking off.
    c.expect(&resp(&[b"RESET"]), b"+RESET\r\n").await;
    c.expect(&resp(&[b"CLIENT", b"GETREDIR"]), b":-1\r\n").await;
}

#[tokio::test]
async fn blocked_client_gets_invalidation_after_its_reply() {
    let srv = TestServer::start();
    let mut w = srv.conn().await;
    let _: i64 = redis::cmd("RPUSH")
        .arg("dst")
        .arg("a")
        .query_async(&mut w)
        .await
        .unwrap();
    let mut c = resp3(&srv).await;
    ok(&mut c, &[b"CLIENT", b"TRACKING", b"on"]).await;
    c.expect(
        &resp(&[b"LRANGE", b"dst", b"0", b"-1"]),
        b"*1\r\n$1\r\na\r\n",
    )
    .await;
    c.send(&resp(&[b"BLMOVE", b"src", b"dst", b"LEFT", b"LEFT", b"0"]))
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _: i64 = redis::cmd("RPUSH")
        .arg("src")
        .arg("foo")
        .query_async(&mut w)
        .await
        .unwrap();
    let mut want = bulk_of(b"foo");
    want.extend(inv(b"dst"));
    c.expect(b"", &want).await;
}

#[tokio::test]
async fn caching_lasts_through_a_transaction_and_disconnect_cleans_up() {
    let srv = TestServer::start();
    let mut w = srv.conn().await;
    let mut c = resp3(&srv).await;
    ok(&mut c, &[b"CLIENT", b"TRACKING", b"on", b"OPTIN"]).await;
    ok(&mut c, &[b"CLIENT", b"CACHING", b"yes"]).await;
    ok(&mut c, &[b"MULTI"]).await;
    c.expect(&resp(&[b"GET", b"a"]), b"+QUEUED\r\n").await;
    c.expect(&resp(&[b"GET", b"b"]), b"+QUEUED\r\n").await;
    c.expect(&resp(&[b"EXEC"]), b"*2\r\n_\r\n_\r\n").await;
    let _: () = redis::cmd("MSET")
        .arg("a")
        .arg(1)
        .arg("b")
        .arg(1)
        .query_async(&mut w)
        .await
        .unwrap();
    let mut want = inv(b"a");
    want.extend(inv(b"b"));
    c.expect(b"", &want).await;
    let info: String = redis::cmd("INFO")
        .arg("clients")
        .query_async(&mut w)
        .await
        .unwrap();
    assert!(info.contains("tracking_clients:1"), "{info}");
    drop(c);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let info: String = redis::cmd("INFO")
        .arg("clients")
        .query_async(&mut w)
        .await
        .unwrap();
    assert!(info.contains("tracking_clients:0"), "{info}");
}

/// Keys removed by one active-expiry cycle reach a BCAST client in one
/// message (Redis sends BCAST keys once per event-loop turn), and an
/// EXPIRE of a missing tracked key changes nothing, so sends nothing.
#[tokio::test]
async fn bcast_batches_expired_keys_and_noop_expire_is_silent() {
    let srv = TestServer::start();
    let mut w = srv.conn().await;
    let _: () = redis::cmd("DEBUG")
        .arg("SET-ACTIVE-EXPIRE")
        .arg(0)
        .query_async(&mut w)
        .await
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    for k in ["a1", "a2", "a3", "b1"] {
        set(&mut w, k, "v").await;
        let _: i64 = redis::cmd("PEXPIREAT")
            .arg(k)
            .arg(now + 50)
            .query_async(&mut w)
            .await
            .unwrap();
    }
    let mut c = resp3(&srv).await;
    ok(
        &mut c,
        &[b"CLIENT", b"TRACKING", b"on", b"BCAST", b"PREFIX", b"a"],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _: () = redis::cmd("DEBUG")
        .arg("SET-ACTIVE-EXPIRE")
        .arg(1)
        .query_async(&mut w)
        .await
        .unwrap();
    c.expect(b"", &inv_many(&[b"a1", b"a2", b"a3"])).await;
    quiet(&mut c).await;

    // Default mode: EXPIRE/PEXPIRE/PERSIST of a missing key, or PERSIST
    // of a key without TTL, leave the reader's cache valid.
    let mut d = resp3(&srv).await;
    ok(&mut d, &[b"CLIENT", b"TRACKING", b"on"]).await;
    d.expect(&resp(&[b"GET", b"missing"]), b"_\r\n").await;
    set(&mut w, "plain", "1").await;
    d.expect(&resp(&[b"GET", b"plain"]), &bulk_of(b"1")).await;
    for (cmd, key, arg) in [
        ("EXPIRE", "missing", Some("100")),
        ("PEXPIRE", "missing", Some("100")),
        ("PERSIST", "missing", None),
        ("PERSIST", "plain", None),
        ("EXPIRE", "plain", Some("100")),
    ] {
        let mut q = redis::cmd(cmd);
        q.arg(key);
        if let Some(a) = arg {
            q.arg(a);
        }
        let _: i64 = q.query_async(&mut w).await.unwrap();
        if key == "plain" && cmd == "EXPIRE" {
            d.expect(b"", &inv(b"plain")).await;
        }
    }
    quiet(&mut d).await;
}

/// A pipeline of writes sent in one packet reaches a BCAST client as one
/// invalidation message (Redis sends BCAST keys once per event-loop turn),
/// and the writer's own BCAST invalidation follows its replies.
#[tokio::test]
async fn bcast_batches_a_pipeline_of_writes() {
    let srv = TestServer::start();
    let mut c = resp3(&srv).await;
    ok(
        &mut c,
        &[b"CLIENT", b"TRACKING", b"on", b"BCAST", b"PREFIX", b"p:"],
    )
    .await;
    let mut w = resp3(&srv).await;
    ok(
        &mut w,
        &[b"CLIENT", b"TRACKING", b"on", b"BCAST", b"PREFIX", b"p:"],
    )
    .await;
    let mut pipeline = Vec::new();
    for k in [&b"p:1"[..], b"q:1", b"p:2", b"p:3"] {
        pipeline.extend(resp(&[b"SET", k, b"v"]));
    }
    let mut want_w = b"+OK\r\n+OK\r\n+OK\r\n+OK\r\n".to_vec();
    want_w.extend(inv_many(&[b"p:1", b"p:2", b"p:3"]));
    w.expect(&pipeline, &want_w).await;
    c.expect(b"", &inv_many(&[b"p:1", b"p:2", b"p:3"])).await;
    quiet(&mut c).await;
    // Unbatched again for the next single command.
    w.expect(&resp(&[b"SET", b"p:4", b"v"]), &{
        let mut v = b"+OK\r\n".to_vec();
        v.extend(inv_many(&[b"p:4"]));
        v
    })
    .await;
    c.expect(b"", &inv_many(&[b"p:4"])).await;
}
