//! Stream commands through the real server: XADD ID rules and errors,
//! ranges, deletion and trimming, XREAD (blocking, `$`), consumer groups
//! with exact pending-entries bookkeeping, XCLAIM/XAUTOCLAIM, XINFO, RESP3
//! shapes, and differential checks against redis-server for deterministic
//! scripts (explicit IDs).

mod common;
use common::diff::{same_replies, script};
use common::{Raw, TestServer};
use std::time::Duration;

/// Sends an inline command and asserts the exact reply.
async fn q(c: &mut Raw, cmd: &str, want: &str) {
    c.expect(format!("{cmd}\r\n").as_bytes(), want.as_bytes())
        .await;
}

const WRONGTYPE: &str = "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";
const INVALID_ID: &str = "-ERR Invalid stream ID specified as stream command argument\r\n";
const TOO_SMALL: &str =
    "-ERR The ID specified in XADD is equal or smaller than the target stream top item\r\n";

#[tokio::test]
async fn xadd_ids_and_errors() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    q(&mut c, "XADD s 1-1 a 1", "$3\r\n1-1\r\n").await;
    q(&mut c, "XADD s 1-1 a 1", TOO_SMALL).await;
    q(&mut c, "XADD s 1-0 a 1", TOO_SMALL).await;
    q(&mut c, "XADD s 1-* a 2", "$3\r\n1-2\r\n").await;
    q(&mut c, "XADD s 5 a 3", "$3\r\n5-0\r\n").await;
    q(&mut c, "XADD s 7-* a 3", "$3\r\n7-0\r\n").await;
    q(
        &mut c,
        "XADD z 0-0 a 1",
        "-ERR The ID specified in XADD must be greater than 0-0\r\n",
    )
    .await;
    q(&mut c, "XADD z 0-* a 1", "$3\r\n0-1\r\n").await;
    q(&mut c, "XADD s 1-x a 1", INVALID_ID).await;
    q(&mut c, "XADD s - a 1", INVALID_ID).await;
    q(
        &mut c,
        "XADD s 99-1 a",
        "-ERR wrong number of arguments for 'xadd' command\r\n",
    )
    .await;
    q(
        &mut c,
        "XADD s NOMKSTREAM",
        "-ERR wrong number of arguments for 'xadd' command\r\n",
    )
    .await;
    q(&mut c, "XADD nokey NOMKSTREAM * a 1", "$-1\r\n").await;
    q(&mut c, "EXISTS nokey", ":0\r\n").await;
    q(&mut c, "XLEN s", ":4\r\n").await;
    q(&mut c, "XLEN nokey", ":0\r\n").await;
    q(&mut c, "SET str x", "+OK\r\n").await;
    q(&mut c, "XADD str * a 1", WRONGTYPE).await;
    q(&mut c, "XLEN str", WRONGTYPE).await;
    q(&mut c, "XRANGE str - +", WRONGTYPE).await;
    // Overflow: the last possible ID, then nothing more.
    q(
        &mut c,
        "XADD big 18446744073709551615-18446744073709551614 a 1",
        "$41\r\n18446744073709551615-18446744073709551614\r\n",
    )
    .await;
    q(
        &mut c,
        "XADD big 18446744073709551615-* a 1",
        "$41\r\n18446744073709551615-18446744073709551615\r\n",
    )
    .await;
    q(
        &mut c,
        "XADD big * a 1",
        "-ERR The stream has exhausted the last possible ID, unable to add more items\r\n",
    )
    .await;
    q(&mut c, "XADD big 18446744073709551616-0 a 1", INVALID_ID).await;
    // `*` uses the clock, and is strictly increasing.
    c.send(b"XADD auto * f v\r\n").await;
    let r = c.read_until(b"\r\n").await;
    let r = String::from_utf8_lossy(&r).to_string();
    assert!(r.starts_with('$') && r.contains("-0"), "{r}");
    q(&mut c, "TYPE s", "+stream\r\n").await;
    q(&mut c, "OBJECT ENCODING s", "$6\r\nstream\r\n").await;
}

#[tokio::test]
async fn ranges_and_counts() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    for i in 1..=5 {
        q(
            &mut c,
            &format!("XADD s {i}-0 f {i}"),
            &format!("$3\r\n{i}-0\r\n"),
        )
        .await;
    }
    let e = |i: u32| format!("*2\r\n$3\r\n{i}-0\r\n*2\r\n$1\r\nf\r\n$1\r\n{i}\r\n");
    q(&mut c, "XRANGE s 2 3", &format!("*2\r\n{}{}", e(2), e(3))).await;
    q(&mut c, "XRANGE s (2 (4-0", &format!("*1\r\n{}", e(3))).await;
    q(
        &mut c,
        "XRANGE s - + COUNT 2",
        &format!("*2\r\n{}{}", e(1), e(2)),
    )
    .await;
    q(&mut c, "XRANGE s - + COUNT 0", "*-1\r\n").await;
    q(
        &mut c,
        "XREVRANGE s + - COUNT 2",
        &format!("*2\r\n{}{}", e(5), e(4)),
    )
    .await;
    q(&mut c, "XREVRANGE s (5-0 (3", &format!("*1\r\n{}", e(4))).await;
    q(&mut c, "XRANGE s 4 2", "*0\r\n").await;
    q(&mut c, "XRANGE nokey - +", "*0\r\n").await;
    q(&mut c, "XRANGE s (- +", INVALID_ID).await;
    q(
        &mut c,
        "XRANGE s (18446744073709551615-18446744073709551615 +",
        "-ERR invalid start ID for the interval\r\n",
    )
    .await;
    q(
        &mut c,
        "XRANGE s - (0-0",
        "-ERR invalid end ID for the interval\r\n",
    )
    .await;
    q(&mut c, "XRANGE s - + FOO 1", "-ERR syntax error\r\n").await;
    q(&mut c, "XDEL s 3-0 3-0 9-0", ":1\r\n").await;
    q(&mut c, "XRANGE s 2 4", &format!("*2\r\n{}{}", e(2), e(4))).await;
    q(&mut c, "XDEL s bad", INVALID_ID).await;
    q(&mut c, "XLEN s", ":4\r\n").await;
}

#[tokio::test]
async fn trimming_exact_and_approximate() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    for i in 1..=250 {
        q(
            &mut c,
            &format!("XADD s {i}-0 f v"),
            &format!("${}\r\n{i}-0\r\n", format!("{i}-0").len()),
        )
        .await;
    }
    // Approximate trims whole blocks (100 entries each) only.
    q(&mut c, "XTRIM s MAXLEN ~ 200", ":0\r\n").await;
    q(&mut c, "XTRIM s MAXLEN ~ 140", ":100\r\n").await;
    q(&mut c, "XLEN s", ":150\r\n").await;
    q(&mut c, "XTRIM s MAXLEN = 120", ":30\r\n").await;
    q(&mut c, "XTRIM s MINID 140", ":9\r\n").await;
    q(&mut c, "XTRIM s MINID ~ 249 LIMIT 10", ":0\r\n").await;
    q(&mut c, "XLEN s", ":111\r\n").await;
    q(
        &mut c,
        "XTRIM s MAXLEN 1 LIMIT 10",
        "-ERR syntax error, LIMIT cannot be used without the special ~ option\r\n",
    )
    .await;
    q(
        &mut c,
        "XTRIM s MAXLEN 1 MINID 2",
        "-ERR syntax error, MAXLEN and MINID options at the same time are not compatible\r\n",
    )
    .await;
    q(
        &mut c,
        "XTRIM s MAXLEN -1",
        "-ERR The MAXLEN argument must be >= 0.\r\n",
    )
    .await;
    q(
        &mut c,
        "XTRIM s LIMIT 1",
        "-ERR syntax error, LIMIT cannot be used without specifying a trimming strategy\r\n",
    )
    .await;
    q(
        &mut c,
        "XTRIM s",
        "-ERR wrong number of arguments for 'xtrim' command\r\n",
    )
    .await;
    q(&mut c, "XADD s MAXLEN 2 300-0 f v", "$5\r\n300-0\r\n").await;
    q(&mut c, "XLEN s", ":2\r\n").await;
    q(&mut c, "XADD s MINID = 300 301-0 f v", "$5\r\n301-0\r\n").await;
    q(&mut c, "XLEN s", ":2\r\n").await;
    q(&mut c, "XTRIM nokey MAXLEN 0", ":0\r\n").await;
}

#[tokio::test]
async fn xsetid_and_info_counters() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    q(&mut c, "XADD s 5-0 f v", "$3\r\n5-0\r\n").await;
    q(
        &mut c,
        "XSETID s 4-0",
        "-ERR The ID specified in XSETID is smaller than the target stream top item\r\n",
    )
    .await;
    q(
        &mut c,
        "XSETID s 10-0 ENTRIESADDED 7 MAXDELETEDID 3-0",
        "+OK\r\n",
    )
    .await;
    q(&mut c, "XADD s 10-0 f v", TOO_SMALL).await;
    q(
        &mut c,
        "XSETID s 11-0 ENTRIESADDED 0",
        "-ERR The entries_added specified in XSETID is smaller than the target stream length\r\n",
    )
    .await;
    q(
        &mut c,
        "XSETID s 11-0 MAXDELETEDID 12-0",
        "-ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id\r\n",
    )
    .await;
    q(&mut c, "XSETID nokey 1-0", "-ERR no such key\r\n").await;
    let mut r = srv.conn().await;
    let info: Vec<redis::Value> = redis::cmd("XINFO")
        .arg("STREAM")
        .arg("s")
        .query_async(&mut r)
        .await
        .unwrap();
    let text = format!("{info:?}");
    assert!(text.contains("10-0") && text.contains("3-0"), "{text}");
}

#[tokio::test]
async fn xread_nonblocking_and_resp3() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    q(&mut c, "XADD a 1-0 f 1", "$3\r\n1-0\r\n").await;
    q(&mut c, "XADD b 2-0 g 2", "$3\r\n2-0\r\n").await;
    let ea = "*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\nf\r\n$1\r\n1\r\n";
    let eb = "*2\r\n$3\r\n2-0\r\n*2\r\n$1\r\ng\r\n$1\r\n2\r\n";
    q(
        &mut c,
        "XREAD STREAMS a b 0 0",
        &format!("*2\r\n*2\r\n$1\r\na\r\n*1\r\n{ea}*2\r\n$1\r\nb\r\n*1\r\n{eb}"),
    )
    .await;
    q(&mut c, "XREAD STREAMS a b $ $", "*-1\r\n").await;
    q(
        &mut c,
        "XREAD COUNT 1 STREAMS a nokey 0 0",
        &format!("*1\r\n*2\r\n$1\r\na\r\n*1\r\n{ea}"),
    )
    .await;
    q(
        &mut c,
        "XREAD STREAMS a b 0",
        "-ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.\r\n",
    )
    .await;
    q(
        &mut c,
        "XREAD STREAMS a >",
        "-ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.\r\n",
    )
    .await;
    q(
        &mut c,
        "XREAD NOACK STREAMS a 0",
        "-ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.\r\n",
    )
    .await;
    q(
        &mut c,
        "XREAD BLOCK -1 STREAMS a 0",
        "-ERR timeout is negative\r\n",
    )
    .await;
    q(&mut c, "HELLO 3", "").await;
    let _ = c.read_until(b"modules\r\n*0\r\n").await;
    q(
        &mut c,
        "XREAD STREAMS a 0",
        &format!("%1\r\n$1\r\na\r\n*1\r\n{ea}"),
    )
    .await;
    q(&mut c, "XREAD STREAMS a $", "_\r\n").await;
    q(&mut c, "XADD g 1-0 f v", "$3\r\n1-0\r\n").await;
    q(&mut c, "XGROUP CREATE g grp 0", "+OK\r\n").await;
    q(&mut c, "XINFO GROUPS g", "*1\r\n%6\r\n$4\r\nname\r\n$3\r\ngrp\r\n$9\r\nconsumers\r\n:0\r\n$7\r\npending\r\n:0\r\n$17\r\nlast-delivered-id\r\n$3\r\n0-0\r\n$12\r\nentries-read\r\n_\r\n$3\r\nlag\r\n:1\r\n").await;
}

#[tokio::test]
async fn blocked_xread_woken_by_xadd() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    let mut w = srv.raw().await;
    q(&mut c, "XADD s 1-0 f v", "$3\r\n1-0\r\n").await;
    // `$` is the last ID at call time: the entry added before waking counts
    // only if newer than that.
    w.send(b"XREAD BLOCK 0 STREAMS s $\r\n").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    q(&mut c, "XADD other 1-0 x y", "$3\r\n1-0\r\n").await;
    q(&mut c, "XADD s 2-0 f w", "$3\r\n2-0\r\n").await;
    let want = "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n2-0\r\n*2\r\n$1\r\nf\r\n$1\r\nw\r\n";
    assert_eq!(
        String::from_utf8_lossy(&w.read_exact_n(want.len()).await),
        want
    );

    // Several streams: woken by the second; the first stays empty.
    w.send(b"XREAD BLOCK 5000 STREAMS nokey s $ $\r\n").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    q(&mut c, "XADD s 3-0 f z", "$3\r\n3-0\r\n").await;
    let want = "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n3-0\r\n*2\r\n$1\r\nf\r\n$1\r\nz\r\n";
    assert_eq!(
        String::from_utf8_lossy(&w.read_exact_n(want.len()).await),
        want
    );

    // Timeout: null array.
    w.send(b"XREAD BLOCK 50 STREAMS s $\r\n").await;
    assert_eq!(w.read_exact_n(5).await, b"*-1\r\n");

    // A blocked XREAD survives deletion of its key and is served by a later XADD.
    w.send(b"XREAD BLOCK 0 STREAMS s $\r\n").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    q(&mut c, "DEL s", ":1\r\n").await;
    q(&mut c, "XADD s 2-0 a b", "$3\r\n2-0\r\n").await;
    q(&mut c, "XADD s 4-0 a b", "$3\r\n4-0\r\n").await;
    let want = "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n4-0\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n";
    assert_eq!(
        String::from_utf8_lossy(&w.read_exact_n(want.len()).await),
        want
    );
}

#[tokio::test]
async fn blocked_xreadgroup_woken_and_unblocked() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    let mut w = srv.raw().await;
    q(&mut c, "XGROUP CREATE s g $ MKSTREAM", "+OK\r\n").await;
    w.send(b"XREADGROUP GROUP g alice BLOCK 0 STREAMS s >\r\n")
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    q(&mut c, "XADD s 1-0 f v", "$3\r\n1-0\r\n").await;
    let want = "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n";
    assert_eq!(
        String::from_utf8_lossy(&w.read_exact_n(want.len()).await),
        want
    );
    q(
        &mut c,
        "XPENDING s g",
        "*4\r\n:1\r\n$3\r\n1-0\r\n$3\r\n1-0\r\n*1\r\n*2\r\n$5\r\nalice\r\n$1\r\n1\r\n",
    )
    .await;
    // Deleting the stream unblocks with an error.
    w.send(b"XREADGROUP GROUP g alice BLOCK 0 STREAMS s >\r\n")
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    q(&mut c, "DEL s", ":1\r\n").await;
    let want = "-UNBLOCKED the stream key no longer exists\r\n";
    assert_eq!(
        String::from_utf8_lossy(&w.read_exact_n(want.len()).await),
        want
    );
    // Destroying the group, too.
    q(&mut c, "XGROUP CREATE s g $ MKSTREAM", "+OK\r\n").await;
    w.send(b"XREADGROUP GROUP g alice BLOCK 0 STREAMS s >\r\n")
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    q(&mut c, "XGROUP DESTROY s g", ":1\r\n").await;
    let want = "-NOGROUP the consumer group this client was blocked on no longer exists\r\n";
    assert_eq!(
        String::from_utf8_lossy(&w.read_exact_n(want.len()).await),
        want
    );
}

type Pending = Vec<(String, String, i64, i64)>;

async fn xpending(r: &mut redis::aio::MultiplexedConnection, args: &[&str]) -> Pending {
    let mut cmd = redis::cmd("XPENDING");
    for a in args {
        cmd.arg(*a);
    }
    cmd.query_async(r).await.unwrap()
}

fn ids_owners_counts(p: &Pending) -> Vec<(&str, &str, i64)> {
    p.iter()
        .map(|(i, o, _, n)| (i.as_str(), o.as_str(), *n))
        .collect()
}

#[tokio::test]
async fn consumer_group_pel_exactness() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    let mut r = srv.conn().await;
    for i in 1..=4 {
        q(
            &mut c,
            &format!("XADD s {i}-0 f {i}"),
            &format!("$3\r\n{i}-0\r\n"),
        )
        .await;
    }
    q(&mut c, "XGROUP CREATE s g 0", "+OK\r\n").await;
    q(&mut c, "XREADGROUP GROUP g alice COUNT 2 STREAMS s >", "*1\r\n*2\r\n$1\r\ns\r\n*2\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\nf\r\n$1\r\n1\r\n*2\r\n$3\r\n2-0\r\n*2\r\n$1\r\nf\r\n$1\r\n2\r\n").await;
    q(&mut c, "XREADGROUP GROUP g bob STREAMS s >", "*1\r\n*2\r\n$1\r\ns\r\n*2\r\n*2\r\n$3\r\n3-0\r\n*2\r\n$1\r\nf\r\n$1\r\n3\r\n*2\r\n$3\r\n4-0\r\n*2\r\n$1\r\nf\r\n$1\r\n4\r\n").await;
    q(&mut c, "XREADGROUP GROUP g bob STREAMS s >", "*-1\r\n").await;
    let p = xpending(&mut r, &["s", "g", "-", "+", "10"]).await;
    assert_eq!(
        ids_owners_counts(&p),
        vec![
            ("1-0", "alice", 1),
            ("2-0", "alice", 1),
            ("3-0", "bob", 1),
            ("4-0", "bob", 1)
        ]
    );
    // History read re-delivers: delivery count grows.
    q(&mut c, "XREADGROUP GROUP g alice STREAMS s 0", "*1\r\n*2\r\n$1\r\ns\r\n*2\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\nf\r\n$1\r\n1\r\n*2\r\n$3\r\n2-0\r\n*2\r\n$1\r\nf\r\n$1\r\n2\r\n").await;
    let p = xpending(&mut r, &["s", "g", "-", "+", "10", "alice"]).await;
    assert_eq!(
        ids_owners_counts(&p),
        vec![("1-0", "alice", 2), ("2-0", "alice", 2)]
    );
    q(&mut c, "XACK s g 1-0 9-0", ":1\r\n").await;
    q(&mut c, "XACK s g bad", INVALID_ID).await;
    q(&mut c, "XACK s nogroup 1-0", ":0\r\n").await;
    // Claim 3-0 from bob to alice; JUSTID does not bump the count.
    q(
        &mut c,
        "XCLAIM s g alice 0 3-0 JUSTID",
        "*1\r\n$3\r\n3-0\r\n",
    )
    .await;
    q(
        &mut c,
        "XCLAIM s g alice 0 4-0 RETRYCOUNT 7",
        "*1\r\n*2\r\n$3\r\n4-0\r\n*2\r\n$1\r\nf\r\n$1\r\n4\r\n",
    )
    .await;
    let p = xpending(&mut r, &["s", "g", "-", "+", "10"]).await;
    assert_eq!(
        ids_owners_counts(&p),
        vec![
            ("2-0", "alice", 2),
            ("3-0", "alice", 1),
            ("4-0", "alice", 7)
        ]
    );
    q(
        &mut c,
        "XPENDING s g",
        "*4\r\n:3\r\n$3\r\n2-0\r\n$3\r\n4-0\r\n*1\r\n*2\r\n$5\r\nalice\r\n$1\r\n3\r\n",
    )
    .await;
    // Min idle filters: nothing has been idle for an hour.
    q(&mut c, "XCLAIM s g bob 3600000 2-0", "*0\r\n").await;
    q(&mut c, "XPENDING s g IDLE 3600000 - + 10", "*0\r\n").await;
    // A deleted entry is dropped from the PEL by XAUTOCLAIM and reported.
    q(&mut c, "XDEL s 3-0", ":1\r\n").await;
    q(
        &mut c,
        "XAUTOCLAIM s g bob 0 0 COUNT 10 JUSTID",
        "*3\r\n$3\r\n0-0\r\n*2\r\n$3\r\n2-0\r\n$3\r\n4-0\r\n*1\r\n$3\r\n3-0\r\n",
    )
    .await;
    let p = xpending(&mut r, &["s", "g", "-", "+", "10"]).await;
    assert_eq!(
        ids_owners_counts(&p),
        vec![("2-0", "bob", 2), ("4-0", "bob", 7)]
    );
    q(
        &mut c,
        "XAUTOCLAIM s g alice 0 0 COUNT 1 JUSTID",
        "*3\r\n$3\r\n4-0\r\n*1\r\n$3\r\n2-0\r\n*0\r\n",
    )
    .await;
    // FORCE creates a PEL entry for an entry never delivered.
    q(&mut c, "XADD s 5-0 f 5", "$3\r\n5-0\r\n").await;
    q(
        &mut c,
        "XCLAIM s g carol 0 5-0 FORCE JUSTID LASTID 5-0",
        "*1\r\n$3\r\n5-0\r\n",
    )
    .await;
    let p = xpending(&mut r, &["s", "g", "-", "+", "10", "carol"]).await;
    // A NACK created by FORCE starts delivered once (Redis's
    // streamCreateNACK); JUSTID does not increment it.
    assert_eq!(ids_owners_counts(&p), vec![("5-0", "carol", 1)]);
    // Deleting a consumer drops its pending entries.
    q(&mut c, "XGROUP DELCONSUMER s g bob", ":1\r\n").await;
    q(&mut c, "XPENDING s g - + 10 bob", "*0\r\n").await;
    let p = xpending(&mut r, &["s", "g", "-", "+", "10"]).await;
    assert_eq!(
        ids_owners_counts(&p),
        vec![("2-0", "alice", 2), ("5-0", "carol", 1)]
    );
    // NOACK: delivered but not pending.
    q(&mut c, "XADD s 6-0 f 6", "$3\r\n6-0\r\n").await;
    q(
        &mut c,
        "XREADGROUP GROUP g dave NOACK STREAMS s >",
        "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n6-0\r\n*2\r\n$1\r\nf\r\n$1\r\n6\r\n",
    )
    .await;
    q(&mut c, "XPENDING s g - + 10 dave", "*0\r\n").await;
    let v: Vec<redis::Value> = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg("s")
        .arg("g")
        .query_async(&mut r)
        .await
        .unwrap();
    assert_eq!(v.len(), 3, "{v:?}");
}

#[tokio::test]
async fn xgroup_errors() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    q(&mut c, "XGROUP CREATE s g $", "-ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.\r\n").await;
    q(&mut c, "XGROUP CREATE s g $ MKSTREAM", "+OK\r\n").await;
    q(
        &mut c,
        "XGROUP CREATE s g $",
        "-BUSYGROUP Consumer Group name already exists\r\n",
    )
    .await;
    q(
        &mut c,
        "XGROUP CREATECONSUMER s nog c",
        "-NOGROUP No such consumer group 'nog' for key name 's'\r\n",
    )
    .await;
    q(&mut c, "XGROUP CREATECONSUMER s g c", ":1\r\n").await;
    q(&mut c, "XGROUP CREATECONSUMER s g c", ":0\r\n").await;
    q(&mut c, "XGROUP DELCONSUMER s g c", ":0\r\n").await;
    q(&mut c, "XGROUP SETID s g 5-0 ENTRIESREAD 3", "+OK\r\n").await;
    q(
        &mut c,
        "XGROUP CREATE s h 0 ENTRIESREAD -5",
        "-ERR value for ENTRIESREAD must be positive or -1\r\n",
    )
    .await;
    q(
        &mut c,
        "XGROUP CREATE s h 0 FOO",
        "-ERR unknown subcommand or wrong number of arguments for 'CREATE'. Try XGROUP HELP.\r\n",
    )
    .await;
    q(&mut c, "XGROUP DESTROY s nog", ":0\r\n").await;
    q(&mut c, "XGROUP DESTROY s g", ":1\r\n").await;
    q(
        &mut c,
        "XREADGROUP GROUP g c STREAMS s >",
        "-NOGROUP No such key 's' or consumer group 'g' in XREADGROUP with GROUP option\r\n",
    )
    .await;
    q(
        &mut c,
        "XPENDING s g",
        "-NOGROUP No such key 's' or consumer group 'g'\r\n",
    )
    .await;
    q(
        &mut c,
        "XCLAIM s g c 0 1-0",
        "-NOGROUP No such key 's' or consumer group 'g'\r\n",
    )
    .await;
    q(&mut c, "XGROUP CREATE s g 0", "+OK\r\n").await;
    q(&mut c, "XREADGROUP GROUP g c STREAMS s $", "-ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.\r\n").await;
    q(
        &mut c,
        "XREADGROUP STREAMS s >",
        "-ERR wrong number of arguments for 'xreadgroup' command\r\n",
    )
    .await;
    q(
        &mut c,
        "XREADGROUP COUNT 1 BLOCK 1 STREAMS s >",
        "-ERR Missing GROUP option for XREADGROUP\r\n",
    )
    .await;
    q(
        &mut c,
        "XCLAIM s g c x 1-0",
        "-ERR Invalid min-idle-time argument for XCLAIM\r\n",
    )
    .await;
    q(
        &mut c,
        "XCLAIM s g c 0 1-0 BOGUS",
        "-ERR Unrecognized XCLAIM option 'BOGUS'\r\n",
    )
    .await;
    q(
        &mut c,
        "XAUTOCLAIM s g c 0 0 COUNT 0",
        "-ERR COUNT must be > 0\r\n",
    )
    .await;
    q(&mut c, "XINFO STREAM nokey", "-ERR no such key\r\n").await;
    q(
        &mut c,
        "XINFO CONSUMERS s nog",
        "-NOGROUP No such consumer group 'nog' for key name 's'\r\n",
    )
    .await;
    // An argument after the consumer is ignored (Redis 7.0 reads the
    // consumer and never looks further); `+1` is ID 1 (strtoull's sign).
    q(&mut c, "XPENDING s g - + 10 c extra", "*0\r\n").await;
    q(&mut c, "XPENDING s g +1 1-1 2 c extra", "*0\r\n").await;
    q(&mut c, "XPENDING s g - + 10 c extra more", "*0\r\n").await;
    q(
        &mut c,
        "XPENDING s g - + 10 c extra more evenmore",
        "-ERR syntax error\r\n",
    )
    .await;
}

/// Deterministic scripts (explicit IDs) must answer byte for byte like
/// redis-server 7.0.
#[tokio::test]
async fn differential_against_redis() {
    let srv = TestServer::start();
    let s = script(
        "
        XADD s 1-1 a 1 b 2
        XADD s 1-* c 3
        XADD s 2 d 4
        XADD s 2-0 x y
        XADD s 1-5 x y
        XADD s 0-0 x y
        XADD s 3-18446744073709551615 x y
        XADD s 3-* x y
        XADD s MAXLEN 3 10-0 e 5
        XADD s MAXLEN ~ 3 11-0 e 6
        XADD s MINID 10 12-0 e 7
        XADD s LIMIT 5 13-0 e 8
        XADD s MAXLEN ~ 1 LIMIT 5 14-0 e 9
        XADD s NOMKSTREAM 15-0 e 10
        XADD s a b
        XADD s 16-0 a
        XLEN s
        XRANGE s - +
        XRANGE s (10-0 +
        XRANGE s - (12 COUNT 1
        XREVRANGE s + - COUNT 2
        XREVRANGE s (15 10
        XRANGE s 12 10
        XRANGE s - + COUNT -1
        XRANGE s foo +
        XRANGE s - + COUNT
        XDEL s 11-0 99-0
        XDEL s 11-0
        XRANGE s - +
        XTRIM s MAXLEN 2
        XTRIM s MINID 15
        XTRIM s MAXLEN ~ 0
        XLEN s
        XTRIM s MAXLEN = 1 LIMIT 1
        XTRIM s
        XTRIM s MAXLEN
        XREAD STREAMS s 0
        XREAD COUNT 1 STREAMS s nokey 0-0 0
        XREAD STREAMS s $
        XREAD STREAMS s 99
        XREAD BLOCK x STREAMS s 0
        XREAD FOO STREAMS s 0
        XGROUP CREATE s g 0
        XGROUP CREATE s g2 $ ENTRIESREAD 1
        XGROUP CREATE s g 0
        XGROUP CREATE nokey g 0
        XGROUP CREATE nokey2 g 0 MKSTREAM
        XINFO GROUPS s
        XREADGROUP GROUP g alice COUNT 1 STREAMS s >
        XREADGROUP GROUP g bob STREAMS s >
        XREADGROUP GROUP g bob STREAMS s >
        XREADGROUP GROUP g alice STREAMS s 0
        XREADGROUP GROUP g bob COUNT 1 STREAMS s 0-0
        XPENDING s g
        XPENDING s g - + 0
        XPENDING s g x + 10
        XPENDING s nog
        XACK s g 15-0 15-0
        XACK s g 1
        XPENDING s g
        XINFO GROUPS s
        XCLAIM s g carol 0 14-0 JUSTID
        XCLAIM s g carol 0 999-0 JUSTID
        XCLAIM s g carol 0 14-0 RETRYCOUNT x
        XCLAIM s g carol 0 14-0 IDLE x
        XPENDING s g
        XAUTOCLAIM s g dave 0 - COUNT 1 JUSTID
        XAUTOCLAIM s g dave 0 (0 JUSTID
        XAUTOCLAIM s g dave 0 - BAD
        XPENDING s g
        XADD s 20-0 f v
        XDEL s 20-0
        XINFO GROUPS s
        XGROUP SETID s g 0 ENTRIESREAD 0
        XINFO GROUPS s
        XGROUP SETID s g $
        XINFO GROUPS s
        XGROUP CREATECONSUMER s g erin
        XGROUP DELCONSUMER s g dave
        XGROUP DELCONSUMER s g nobody
        XGROUP DESTROY s g2
        XGROUP DESTROY s g2
        XGROUP FOO s g
        XGROUP HELP
        XINFO HELP
        XSETID s 1-0
        XSETID s 30-0 ENTRIESADDED 100 MAXDELETEDID 25-0
        XSETID s 30-0 ENTRIESADDED -1
        XSETID s 30-0 FOO
        XADD s 30-0 a b
        XADD s 30-* a b
        XINFO GROUPS s
        SET str x
        XADD str 1-0 a b
        XREAD STREAMS str 0
        XGROUP CREATE str g 0
        XINFO STREAM str
        XACK str g 1-0
        DEL s
        XADD s 1-0 a b
        XDEL s 1-0
        XLEN s
        EXISTS s
        XGROUP CREATE s g 0
        XINFO GROUPS s
        ",
    );
    same_replies(srv.addr.port(), &s).await;
}

#[tokio::test]
async fn xinfo_full_multi_and_resp3_group_reads() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    q(&mut c, "XADD s 1-0 f v", "$3\r\n1-0\r\n").await;
    q(&mut c, "XADD s 2-0 f w", "$3\r\n2-0\r\n").await;
    q(&mut c, "XGROUP CREATE s g 0", "+OK\r\n").await;
    q(
        &mut c,
        "XREADGROUP GROUP g alice COUNT 1 STREAMS s >",
        "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n",
    )
    .await;
    // Blocking is refused inside MULTI: the timeout reply at once.
    q(&mut c, "MULTI", "+OK\r\n").await;
    q(&mut c, "XREAD BLOCK 0 STREAMS s $", "+QUEUED\r\n").await;
    q(&mut c, "EXEC", "*1\r\n*-1\r\n").await;
    let mut r = srv.conn().await;
    let full: Vec<redis::Value> = redis::cmd("XINFO")
        .arg("STREAM")
        .arg("s")
        .arg("FULL")
        .arg("COUNT")
        .arg("1")
        .query_async(&mut r)
        .await
        .unwrap();
    let text = format!("{full:?}");
    assert_eq!(full.len(), 18, "{text}");
    for field in [
        "entries-added",
        "pel-count",
        "seen-time",
        "alice",
        "entries-read",
        "lag",
    ] {
        assert!(text.contains(field), "{field} missing: {text}");
    }
    // Group lag and entries-read after one of two entries was read.
    q(&mut c, "XINFO GROUPS s", "*1\r\n*12\r\n$4\r\nname\r\n$1\r\ng\r\n$9\r\nconsumers\r\n:1\r\n$7\r\npending\r\n:1\r\n$17\r\nlast-delivered-id\r\n$3\r\n1-0\r\n$12\r\nentries-read\r\n:1\r\n$3\r\nlag\r\n:1\r\n").await;
    // RESP3: XREADGROUP answers a map.
    c.send(b"HELLO 3\r\n").await;
    let _ = c.read_until(b"modules\r\n*0\r\n").await;
    q(
        &mut c,
        "XREADGROUP GROUP g bob STREAMS s >",
        "%1\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n2-0\r\n*2\r\n$1\r\nf\r\n$1\r\nw\r\n",
    )
    .await;
    q(&mut c, "XREADGROUP GROUP g bob STREAMS s >", "_\r\n").await;
    q(&mut c, "XPENDING s g", "*4\r\n:2\r\n$3\r\n1-0\r\n$3\r\n2-0\r\n*2\r\n*2\r\n$5\r\nalice\r\n$1\r\n1\r\n*2\r\n$3\r\nbob\r\n$1\r\n1\r\n").await;
    // XACK of IDs not pending leaves WATCH alone.
    let mut w = srv.raw().await;
    q(&mut w, "WATCH s", "+OK\r\n").await;
    q(&mut c, "XACK s g 9-0", ":0\r\n").await;
    q(&mut w, "MULTI", "+OK\r\n").await;
    q(&mut w, "XLEN s", "+QUEUED\r\n").await;
    q(&mut w, "EXEC", "*1\r\n:2\r\n").await;
}

/// Approximate trimming removes whole 100-entry nodes exactly like Redis.
#[tokio::test]
async fn differential_approximate_trimming() {
    let srv = TestServer::start();
    let mut text = String::new();
    for i in 1..=350 {
        text.push_str(&format!("XADD s {i}-0 f {i}\n"));
    }
    text.push_str(
        "XTRIM s MAXLEN ~ 300
        XTRIM s MAXLEN ~ 240
        XLEN s
        XTRIM s MINID ~ 180
        XLEN s
        XTRIM s MINID ~ 260 LIMIT 50
        XTRIM s MINID ~ 310 LIMIT 100
        XLEN s
        XDEL s 320-0 321-0
        XADD s MAXLEN ~ 10 LIMIT 30 400-0 f v
        XLEN s
        XADD s MAXLEN = 10 401-0 f v
        XRANGE s - + COUNT 3
        XINFO GROUPS s
        XGROUP CREATE s g 0
        XREADGROUP GROUP g c COUNT 2 STREAMS s >
        XINFO GROUPS s
        XDEL s 398-0
        XINFO GROUPS s
        XREADGROUP GROUP g c STREAMS s >
        XINFO GROUPS s
        ",
    );
    let s = script(&text);
    same_replies(srv.addr.port(), &s).await;
}

/// XINFO STREAM's radix-tree-keys and radix-tree-nodes describe the tree
/// Redis indexes a stream's blocks with; tools graph them. The figures are
/// redis-server 7.0.15's for the same commands.
#[tokio::test]
async fn xinfo_radix_tree_figures_are_redis() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    let mut r = srv.conn().await;
    let lua = |script: &str| format!("EVAL \"{script}\" 0");
    // (command, its reply, the stream, (length, keys, nodes) after it)
    type Step = (String, &'static str, &'static str, (i64, i64, i64));
    let steps: Vec<Step> = vec![
        (
            lua(
                "for i = 1, 250 do redis.call('XADD', 'a', (i * 37) .. '-' .. (i % 3), 'f', i) end",
            ),
            "$-1\r\n",
            "a",
            (250, 3, 8),
        ),
        (
            lua("for i = 1, 1000 do redis.call('XADD', 'b', i .. '-1', 'f', i) end"),
            "$-1\r\n",
            "b",
            (1000, 10, 26),
        ),
        (
            lua("for i = 1, 1000 do redis.call('XADD', 'c', (i * 100000) .. '-' .. i, 'f', i) end"),
            "$-1\r\n",
            "c",
            (1000, 10, 26),
        ),
        (
            "XTRIM c MINID 50000000".into(),
            ":499\r\n",
            "c",
            (501, 6, 16),
        ),
        ("XADD d 1-1 f v".into(), "$3\r\n1-1\r\n", "d", (1, 1, 2)),
        ("XDEL d 1-1".into(), ":1\r\n", "d", (0, 0, 1)),
    ];
    for (cmd, reply, key, want) in &steps {
        q(&mut c, cmd, reply).await;
        let info: std::collections::HashMap<String, redis::Value> = redis::cmd("XINFO")
            .arg("STREAM")
            .arg(key)
            .query_async(&mut r)
            .await
            .unwrap();
        let n = |f: &str| match info.get(f) {
            Some(redis::Value::Int(n)) => *n,
            other => panic!("{f}: {other:?}"),
        };
        let got = (n("length"), n("radix-tree-keys"), n("radix-tree-nodes"));
        assert_eq!(got, *want, "after {cmd}");
    }
}
