//! List commands through the real server: replies (exact RESP2 bytes, RESP3
//! null shapes), errors, negative and out-of-range indexes, deletion of
//! emptied lists, WRONGTYPE, and the non-blocking paths of the blocking
//! commands.

mod common;
use common::{Raw, TestServer};

/// Sends an inline command and asserts the exact reply.
async fn q(c: &mut Raw, cmd: &str, want: &str) {
    c.expect(format!("{cmd}\r\n").as_bytes(), want.as_bytes())
        .await;
}

const WRONGTYPE: &str = "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";
const NOT_INT: &str = "-ERR value is not an integer or out of range\r\n";

#[tokio::test]
async fn push_pop_len_range() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    q(&mut c, "LPUSH l b a", ":2\r\n").await;
    q(&mut c, "RPUSH l c d", ":4\r\n").await;
    q(&mut c, "LLEN l", ":4\r\n").await;
    q(&mut c, "LLEN nokey", ":0\r\n").await;
    q(
        &mut c,
        "LRANGE l 0 -1",
        "*4\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nd\r\n",
    )
    .await;
    q(&mut c, "LRANGE l -2 100", "*2\r\n$1\r\nc\r\n$1\r\nd\r\n").await;
    q(&mut c, "LRANGE l -100 0", "*1\r\n$1\r\na\r\n").await;
    q(&mut c, "LRANGE l 2 1", "*0\r\n").await;
    q(&mut c, "LRANGE l 4 10", "*0\r\n").await;
    q(&mut c, "LRANGE nokey 0 -1", "*0\r\n").await;
    q(&mut c, "LRANGE l x 1", NOT_INT).await;
    q(&mut c, "LPOP l", "$1\r\na\r\n").await;
    q(&mut c, "RPOP l", "$1\r\nd\r\n").await;
    q(&mut c, "LPUSHX nokey x", ":0\r\n").await;
    q(&mut c, "RPUSHX nokey x", ":0\r\n").await;
    q(&mut c, "EXISTS nokey", ":0\r\n").await;
    q(&mut c, "LPUSHX l x y", ":4\r\n").await;
    q(&mut c, "RPUSHX l z", ":5\r\n").await;
    q(
        &mut c,
        "LRANGE l 0 -1",
        "*5\r\n$1\r\ny\r\n$1\r\nx\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nz\r\n",
    )
    .await;
    q(&mut c, "OBJECT ENCODING l", "$9\r\nquicklist\r\n").await;
    q(&mut c, "TYPE l", "+list\r\n").await;
    q(
        &mut c,
        "LPUSH",
        "-ERR wrong number of arguments for 'lpush' command\r\n",
    )
    .await;
    q(
        &mut c,
        "LPUSH l",
        "-ERR wrong number of arguments for 'lpush' command\r\n",
    )
    .await;
}

#[tokio::test]
async fn pop_with_count_and_null_shapes() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    q(&mut c, "RPUSH l a b c d e", ":5\r\n").await;
    q(&mut c, "LPOP l 2", "*2\r\n$1\r\na\r\n$1\r\nb\r\n").await;
    q(&mut c, "RPOP l 2", "*2\r\n$1\r\ne\r\n$1\r\nd\r\n").await;
    q(&mut c, "LPOP l 0", "*0\r\n").await;
    q(&mut c, "RPOP l 10", "*1\r\n$1\r\nc\r\n").await;
    // The last element popped deletes the key.
    q(&mut c, "EXISTS l", ":0\r\n").await;
    q(&mut c, "LPOP l", "$-1\r\n").await;
    q(&mut c, "LPOP l 2", "*-1\r\n").await;
    q(&mut c, "LPOP l 0", "*-1\r\n").await;
    q(
        &mut c,
        "LPOP l -1",
        "-ERR value is out of range, must be positive\r\n",
    )
    .await;
    // getPositiveLongFromObjectOrReply: the same text for a non-integer.
    q(
        &mut c,
        "LPOP l x",
        "-ERR value is out of range, must be positive\r\n",
    )
    .await;
    q(
        &mut c,
        "LPOP l 1 2",
        "-ERR wrong number of arguments for 'lpop' command\r\n",
    )
    .await;
    // RESP3: nulls are `_`.
    c.send(b"HELLO 3\r\n").await;
    let _ = c.read_until(b"modules\r\n*0\r\n").await;
    q(&mut c, "LPOP l", "_\r\n").await;
    q(&mut c, "RPOP l 3", "_\r\n").await;
    q(&mut c, "LINDEX l 0", "_\r\n").await;
    q(&mut c, "LMPOP 1 l LEFT", "_\r\n").await;
    q(&mut c, "BLPOP l 0.01", "_\r\n").await;
    q(&mut c, "LPOS l x", "_\r\n").await;
}

#[tokio::test]
async fn lindex_lset_linsert() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    q(&mut c, "RPUSH l a b c", ":3\r\n").await;
    q(&mut c, "LINDEX l 0", "$1\r\na\r\n").await;
    q(&mut c, "LINDEX l -1", "$1\r\nc\r\n").await;
    q(&mut c, "LINDEX l -3", "$1\r\na\r\n").await;
    q(&mut c, "LINDEX l -4", "$-1\r\n").await;
    q(&mut c, "LINDEX l 3", "$-1\r\n").await;
    q(&mut c, "LINDEX l x", NOT_INT).await;
    q(&mut c, "LINDEX nokey x", "$-1\r\n").await;
    q(&mut c, "LSET l 1 B", "+OK\r\n").await;
    q(&mut c, "LSET l -1 C", "+OK\r\n").await;
    q(&mut c, "LSET l 3 x", "-ERR index out of range\r\n").await;
    q(&mut c, "LSET l -4 x", "-ERR index out of range\r\n").await;
    q(&mut c, "LSET l x x", NOT_INT).await;
    q(&mut c, "LSET nokey 0 x", "-ERR no such key\r\n").await;
    q(
        &mut c,
        "LRANGE l 0 -1",
        "*3\r\n$1\r\na\r\n$1\r\nB\r\n$1\r\nC\r\n",
    )
    .await;
    q(&mut c, "LINSERT l BEFORE B x", ":4\r\n").await;
    q(&mut c, "LINSERT l after C y", ":5\r\n").await;
    q(&mut c, "LINSERT l AFTER nope z", ":-1\r\n").await;
    q(&mut c, "LINSERT nokey AFTER a z", ":0\r\n").await;
    q(&mut c, "LINSERT l MIDDLE a z", "-ERR syntax error\r\n").await;
    q(
        &mut c,
        "LRANGE l 0 -1",
        "*5\r\n$1\r\na\r\n$1\r\nx\r\n$1\r\nB\r\n$1\r\nC\r\n$1\r\ny\r\n",
    )
    .await;
}

#[tokio::test]
async fn lrem_and_ltrim() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    q(&mut c, "RPUSH l x a x b x c x", ":7\r\n").await;
    q(&mut c, "LREM l 2 x", ":2\r\n").await;
    q(
        &mut c,
        "LRANGE l 0 -1",
        "*5\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nx\r\n$1\r\nc\r\n$1\r\nx\r\n",
    )
    .await;
    q(&mut c, "LREM l -1 x", ":1\r\n").await;
    q(
        &mut c,
        "LRANGE l 0 -1",
        "*4\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nx\r\n$1\r\nc\r\n",
    )
    .await;
    q(&mut c, "LREM l 0 x", ":1\r\n").await;
    q(&mut c, "LREM l 0 nope", ":0\r\n").await;
    q(&mut c, "LREM nokey 0 x", ":0\r\n").await;
    q(&mut c, "LREM l x x", NOT_INT).await;
    q(&mut c, "LREM l 0 a", ":1\r\n").await;
    q(&mut c, "LREM l 0 b", ":1\r\n").await;
    q(&mut c, "LREM l 0 c", ":1\r\n").await;
    q(&mut c, "EXISTS l", ":0\r\n").await;

    q(&mut c, "RPUSH t 1 2 3 4 5", ":5\r\n").await;
    q(&mut c, "LTRIM t 1 -2", "+OK\r\n").await;
    q(
        &mut c,
        "LRANGE t 0 -1",
        "*3\r\n$1\r\n2\r\n$1\r\n3\r\n$1\r\n4\r\n",
    )
    .await;
    q(&mut c, "LTRIM t -100 100", "+OK\r\n").await;
    q(&mut c, "LLEN t", ":3\r\n").await;
    q(&mut c, "LTRIM t 0 0", "+OK\r\n").await;
    q(&mut c, "LRANGE t 0 -1", "*1\r\n$1\r\n2\r\n").await;
    q(&mut c, "LTRIM t 5 10", "+OK\r\n").await;
    q(&mut c, "EXISTS t", ":0\r\n").await;
    q(&mut c, "LTRIM t 0 1", "+OK\r\n").await;
    q(&mut c, "LTRIM t a 1", NOT_INT).await;
}

#[tokio::test]
async fn lpos_options_and_errors() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    q(&mut c, "RPUSH l a b c 1 2 3 c c", ":8\r\n").await;
    q(&mut c, "LPOS l c", ":2\r\n").await;
    q(&mut c, "LPOS l c RANK 2", ":6\r\n").await;
    q(&mut c, "LPOS l c RANK -1", ":7\r\n").await;
    q(&mut c, "LPOS l c RANK -3", ":2\r\n").await;
    q(&mut c, "LPOS l c RANK 4", "$-1\r\n").await;
    q(&mut c, "LPOS l c COUNT 2", "*2\r\n:2\r\n:6\r\n").await;
    q(&mut c, "LPOS l c COUNT 0", "*3\r\n:2\r\n:6\r\n:7\r\n").await;
    q(&mut c, "LPOS l c COUNT 0 RANK 2", "*2\r\n:6\r\n:7\r\n").await;
    q(
        &mut c,
        "LPOS l c COUNT 0 RANK -1",
        "*3\r\n:7\r\n:6\r\n:2\r\n",
    )
    .await;
    q(&mut c, "LPOS l c COUNT 0 MAXLEN 3", "*1\r\n:2\r\n").await;
    q(&mut c, "LPOS l c MAXLEN 2", "$-1\r\n").await;
    q(&mut c, "LPOS l c RANK -1 MAXLEN 1", ":7\r\n").await;
    q(&mut c, "LPOS l zz", "$-1\r\n").await;
    q(&mut c, "LPOS l zz COUNT 1", "*0\r\n").await;
    q(&mut c, "LPOS nokey a", "$-1\r\n").await;
    q(&mut c, "LPOS nokey a COUNT 0", "*0\r\n").await;
    q(
        &mut c,
        "LPOS l c RANK 0",
        "-ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list\r\n",
    )
    .await;
    q(
        &mut c,
        "LPOS l c COUNT -1",
        "-ERR COUNT can't be negative\r\n",
    )
    .await;
    q(
        &mut c,
        "LPOS l c MAXLEN -1",
        "-ERR MAXLEN can't be negative\r\n",
    )
    .await;
    q(&mut c, "LPOS l c RANK x", NOT_INT).await;
    q(&mut c, "LPOS l c BOGUS 1", "-ERR syntax error\r\n").await;
    q(&mut c, "LPOS l c RANK", "-ERR syntax error\r\n").await;
}

#[tokio::test]
async fn lmove_rpoplpush_lmpop() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    q(&mut c, "RPUSH s a b c", ":3\r\n").await;
    q(&mut c, "LMOVE s d LEFT RIGHT", "$1\r\na\r\n").await;
    q(&mut c, "LMOVE s d right left", "$1\r\nc\r\n").await;
    q(&mut c, "LRANGE d 0 -1", "*2\r\n$1\r\nc\r\n$1\r\na\r\n").await;
    q(&mut c, "RPOPLPUSH s d", "$1\r\nb\r\n").await;
    q(&mut c, "EXISTS s", ":0\r\n").await;
    q(&mut c, "RPOPLPUSH s d", "$-1\r\n").await;
    q(&mut c, "LMOVE s d LEFT UP", "-ERR syntax error\r\n").await;
    // Rotation on one key.
    q(&mut c, "RPOPLPUSH d d", "$1\r\na\r\n").await;
    q(
        &mut c,
        "LRANGE d 0 -1",
        "*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n",
    )
    .await;
    // Rotating a one-element list: the key never stops existing, so it
    // keeps its TTL (found by tests/differential.rs: a `del` event fired).
    q(&mut c, "RPUSH one x", ":1\r\n").await;
    q(&mut c, "EXPIRE one 1000", ":1\r\n").await;
    q(&mut c, "RPOPLPUSH one one", "$1\r\nx\r\n").await;
    q(&mut c, "LMOVE one one LEFT LEFT", "$1\r\nx\r\n").await;
    q(&mut c, "TTL one", ":1000\r\n").await;
    // Wrong destination type leaves the source untouched.
    q(&mut c, "SET str v", "+OK\r\n").await;
    q(&mut c, "LMOVE d str LEFT LEFT", WRONGTYPE).await;
    q(&mut c, "LLEN d", ":3\r\n").await;
    q(&mut c, "LMOVE str d LEFT LEFT", WRONGTYPE).await;

    q(
        &mut c,
        "LMPOP 2 nokey d LEFT",
        "*2\r\n$1\r\nd\r\n*1\r\n$1\r\na\r\n",
    )
    .await;
    q(
        &mut c,
        "LMPOP 1 d RIGHT COUNT 10",
        "*2\r\n$1\r\nd\r\n*2\r\n$1\r\nc\r\n$1\r\nb\r\n",
    )
    .await;
    q(&mut c, "LMPOP 1 d LEFT", "*-1\r\n").await;
    q(
        &mut c,
        "LMPOP 0 d LEFT",
        "-ERR numkeys should be greater than 0\r\n",
    )
    .await;
    q(
        &mut c,
        "LMPOP x d LEFT",
        "-ERR numkeys should be greater than 0\r\n",
    )
    .await;
    q(&mut c, "LMPOP 2 d LEFT", "-ERR syntax error\r\n").await;
    q(&mut c, "LMPOP 1 d MIDDLE", "-ERR syntax error\r\n").await;
    q(
        &mut c,
        "LMPOP 1 d LEFT COUNT 0",
        "-ERR count should be greater than 0\r\n",
    )
    .await;
    q(
        &mut c,
        "LMPOP 1 d LEFT COUNT 1 COUNT 1",
        "-ERR syntax error\r\n",
    )
    .await;
    q(&mut c, "LMPOP 1 str LEFT", WRONGTYPE).await;
    q(
        &mut c,
        "COMMAND GETKEYS LMPOP 2 a b LEFT",
        "*2\r\n$1\r\na\r\n$1\r\nb\r\n",
    )
    .await;
}

#[tokio::test]
async fn wrongtype_everywhere() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    q(&mut c, "SET s v", "+OK\r\n").await;
    for cmd in [
        "LPUSH s a",
        "RPUSH s a",
        "LPUSHX s a",
        "RPUSHX s a",
        "LPOP s",
        "RPOP s 2",
        "LLEN s",
        "LRANGE s 0 -1",
        "LINDEX s 0",
        "LSET s 0 a",
        "LINSERT s BEFORE a b",
        "LREM s 0 a",
        "LTRIM s 0 1",
        "LPOS s a",
        "RPOPLPUSH s d",
        "BLPOP s 1",
        "BRPOP s 1",
        "BLMOVE s d LEFT LEFT 1",
        "BRPOPLPUSH s d 1",
        "BLMPOP 1 1 s LEFT",
    ] {
        q(&mut c, cmd, WRONGTYPE).await;
    }
}

#[tokio::test]
async fn blocking_commands_with_data_do_not_block() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    q(&mut c, "RPUSH a 1 2 3", ":3\r\n").await;
    q(&mut c, "BLPOP nokey a 0", "*2\r\n$1\r\na\r\n$1\r\n1\r\n").await;
    q(&mut c, "BRPOP a 0", "*2\r\n$1\r\na\r\n$1\r\n3\r\n").await;
    q(&mut c, "BRPOPLPUSH a b 0", "$1\r\n2\r\n").await;
    q(&mut c, "BLMOVE b a LEFT LEFT 0", "$1\r\n2\r\n").await;
    q(
        &mut c,
        "BLMPOP 0 1 a LEFT COUNT 5",
        "*2\r\n$1\r\na\r\n*1\r\n$1\r\n2\r\n",
    )
    .await;
    q(&mut c, "BLPOP a -1", "-ERR timeout is negative\r\n").await;
    q(
        &mut c,
        "BLPOP a x",
        "-ERR timeout is not a float or out of range\r\n",
    )
    .await;
    q(&mut c, "BLMOVE a b LEFT UP 0", "-ERR syntax error\r\n").await;
    q(
        &mut c,
        "BLMPOP 0 0 a LEFT",
        "-ERR numkeys should be greater than 0\r\n",
    )
    .await;
    q(
        &mut c,
        "BLMPOP x 1 a LEFT",
        "-ERR timeout is not a float or out of range\r\n",
    )
    .await;
    // Nothing there: the timeout reply after the (short) timeout.
    q(&mut c, "BLPOP a 0.05", "*-1\r\n").await;
    q(&mut c, "BLMOVE a b LEFT LEFT 0.05", "*-1\r\n").await;
    q(&mut c, "BLMPOP 0.05 1 a LEFT", "*-1\r\n").await;
}

#[tokio::test]
async fn command_info_matches_redis() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    c.send(b"COMMAND INFO blpop\r\n").await;
    let got = String::from_utf8_lossy(&c.read_until(b"\r\n*0\r\n").await).into_owned();
    assert!(got.contains("blpop\r\n:-3\r\n"), "{got}");
    assert!(got.contains("blocking"), "{got}");
    assert!(got.contains(":1\r\n:-2\r\n:1\r\n"), "{got}");
}

#[tokio::test]
async fn big_lists_keep_order() {
    let srv = TestServer::start();
    let mut con = srv.conn().await;
    let items: Vec<String> = (0..5000).map(|i| format!("item-{i}")).collect();
    let n: i64 = redis::cmd("RPUSH")
        .arg("big")
        .arg(&items)
        .query_async(&mut con)
        .await
        .expect("rpush");
    assert_eq!(n, 5000);
    let got: Vec<String> = redis::cmd("LRANGE")
        .arg("big")
        .arg(0)
        .arg(-1)
        .query_async(&mut con)
        .await
        .expect("lrange");
    assert_eq!(got, items);
    let mid: String = redis::cmd("LINDEX")
        .arg("big")
        .arg(-2500)
        .query_async(&mut con)
        .await
        .expect("lindex");
    assert_eq!(mid, "item-2500");
    let usage: i64 = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg("big")
        .query_async(&mut con)
        .await
        .unwrap_or(1);
    assert!(usage > 0);
}

/// LINSERT/LSET growing a one-node list past twice the node size split it
/// and kept every element (the split of the inline node used to drop the
/// moved elements from LLEN, so LRANGE lost them).
#[tokio::test]
async fn big_inserts_into_a_small_list_keep_every_element() {
    let srv = TestServer::start();
    let mut c = srv.conn().await;
    let _: i64 = redis::cmd("RPUSH")
        .arg("l")
        .arg(&["a", "b", "c", "d", "e", "f"])
        .query_async(&mut c)
        .await
        .unwrap();
    let big = |ch: char| ch.to_string().repeat(6000);
    for (pivot, ch) in [("d", 'x'), ("c", 'y'), ("e", 'z')] {
        let _: i64 = redis::cmd("LINSERT")
            .arg("l")
            .arg("BEFORE")
            .arg(pivot)
            .arg(big(ch))
            .query_async(&mut c)
            .await
            .unwrap();
    }
    let _: () = redis::cmd("LSET")
        .arg("l")
        .arg(0)
        .arg(big('w'))
        .query_async(&mut c)
        .await
        .unwrap();
    let n: i64 = redis::cmd("LLEN")
        .arg("l")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(n, 9);
    let all: Vec<String> = redis::cmd("LRANGE")
        .arg("l")
        .arg(0)
        .arg(-1)
        .query_async(&mut c)
        .await
        .unwrap();
    let want = vec![
        big('w'),
        "b".into(),
        big('y'),
        "c".into(),
        big('x'),
        "d".into(),
        big('z'),
        "e".into(),
        "f".into(),
    ];
    assert_eq!(all, want);
}
