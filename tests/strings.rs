//! String commands through the real server: exact replies and errors, and a
//! differential run against redis-server (when installed) over the edge cases.

mod common;
use common::diff::{same_replies, script};
use common::{resp, TestServer};

#[tokio::test]
async fn set_options_and_errors() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    c.expect(&resp(&[b"SET", b"k", b"v", b"NX"]), b"+OK\r\n")
        .await;
    c.expect(&resp(&[b"SET", b"k", b"w", b"NX"]), b"$-1\r\n")
        .await;
    c.expect(&resp(&[b"SET", b"k", b"w", b"XX", b"GET"]), b"$1\r\nv\r\n")
        .await;
    c.expect(&resp(&[b"SET", b"nokey", b"w", b"XX"]), b"$-1\r\n")
        .await;
    c.expect(
        &resp(&[b"SET", b"k", b"v", b"NX", b"XX"]),
        b"-ERR syntax error\r\n",
    )
    .await;
    c.expect(
        &resp(&[b"SET", b"k", b"v", b"EX", b"0"]),
        b"-ERR invalid expire time in 'set' command\r\n",
    )
    .await;
    c.expect(
        &resp(&[b"SET", b"k", b"v", b"EX", b"x"]),
        b"-ERR value is not an integer or out of range\r\n",
    )
    .await;
    c.expect(&resp(&[b"SET", b"k", b"v", b"EX", b"100"]), b"+OK\r\n")
        .await;
    c.expect(&resp(&[b"SET", b"k", b"v2", b"KEEPTTL"]), b"+OK\r\n")
        .await;
    c.send(&resp(&[b"TTL", b"k"])).await;
    let ttl = c.read_until(b"\r\n").await;
    assert!(ttl == b":100\r\n" || ttl == b":99\r\n", "{ttl:?}");
    c.expect(&resp(&[b"SET", b"k", b"v3"]), b"+OK\r\n").await;
    c.expect(&resp(&[b"TTL", b"k"]), b":-1\r\n").await;
    c.expect(
        &resp(&[b"LPUSH_NOPE"]),
        b"-ERR unknown command 'LPUSH_NOPE', with args beginning with: \r\n",
    )
    .await;
}

#[tokio::test]
async fn counters_and_their_errors() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    c.expect(&resp(&[b"INCR", b"n"]), b":1\r\n").await;
    c.expect(&resp(&[b"INCRBY", b"n", b"-11"]), b":-10\r\n")
        .await;
    c.expect(&resp(&[b"DECRBY", b"n", b"5"]), b":-15\r\n").await;
    c.expect(&resp(&[b"SET", b"n", b"9223372036854775807"]), b"+OK\r\n")
        .await;
    c.expect(
        &resp(&[b"INCR", b"n"]),
        b"-ERR increment or decrement would overflow\r\n",
    )
    .await;
    c.expect(
        &resp(&[b"DECRBY", b"n", b"-9223372036854775808"]),
        b"-ERR decrement would overflow\r\n",
    )
    .await;
    c.expect(&resp(&[b"SET", b"s", b" 1"]), b"+OK\r\n").await;
    c.expect(
        &resp(&[b"INCR", b"s"]),
        b"-ERR value is not an integer or out of range\r\n",
    )
    .await;
    c.expect(&resp(&[b"INCRBYFLOAT", b"f", b"10.5"]), b"$4\r\n10.5\r\n")
        .await;
    c.expect(&resp(&[b"INCRBYFLOAT", b"f", b"0.1"]), b"$4\r\n10.6\r\n")
        .await;
    c.expect(&resp(&[b"INCRBYFLOAT", b"f", b"-5.6"]), b"$1\r\n5\r\n")
        .await;
    c.expect(&resp(&[b"INCRBYFLOAT", b"f", b"5e3"]), b"$4\r\n5005\r\n")
        .await;
    c.expect(
        &resp(&[b"INCRBYFLOAT", b"f", b"inf"]),
        b"-ERR increment would produce NaN or Infinity\r\n",
    )
    .await;
    c.expect(
        &resp(&[b"INCRBYFLOAT", b"s", b"1"]),
        b"-ERR value is not a valid float\r\n",
    )
    .await;
}

#[tokio::test]
async fn ranges_append_and_lcs() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    c.expect(&resp(&[b"APPEND", b"a", b"Hello"]), b":5\r\n")
        .await;
    c.expect(&resp(&[b"APPEND", b"a", b" World"]), b":11\r\n")
        .await;
    c.expect(
        &resp(&[b"GETRANGE", b"a", b"-5", b"-1"]),
        b"$5\r\nWorld\r\n",
    )
    .await;
    c.expect(&resp(&[b"GETRANGE", b"a", b"5", b"2"]), b"$0\r\n\r\n")
        .await;
    c.expect(&resp(&[b"SETRANGE", b"a", b"6", b"Redis"]), b":11\r\n")
        .await;
    c.expect(&resp(&[b"GET", b"a"]), b"$11\r\nHello Redis\r\n")
        .await;
    c.expect(&resp(&[b"SETRANGE", b"z", b"3", b"x"]), b":4\r\n")
        .await;
    c.expect(&resp(&[b"GET", b"z"]), b"$4\r\n\x00\x00\x00x\r\n")
        .await;
    c.expect(
        &resp(&[b"SETRANGE", b"z", b"536870912", b"x"]),
        b"-ERR string exceeds maximum allowed size (proto-max-bulk-len)\r\n",
    )
    .await;
    c.expect(&resp(&[b"STRLEN", b"z"]), b":4\r\n").await;

    c.expect(
        &resp(&[b"MSET", b"key1", b"ohmytext", b"key2", b"mynewtext"]),
        b"+OK\r\n",
    )
    .await;
    c.expect(&resp(&[b"LCS", b"key1", b"key2"]), b"$6\r\nmytext\r\n")
        .await;
    c.expect(&resp(&[b"LCS", b"key1", b"key2", b"LEN"]), b":6\r\n")
        .await;
    c.expect(
        &resp(&[b"LCS", b"key1", b"key2", b"IDX", b"MINMATCHLEN", b"4", b"WITHMATCHLEN"]),
        b"*4\r\n$7\r\nmatches\r\n*1\r\n*3\r\n*2\r\n:4\r\n:7\r\n*2\r\n:5\r\n:8\r\n:4\r\n$3\r\nlen\r\n:6\r\n",
    )
    .await;
    c.expect(
        &resp(&[b"LCS", b"key1", b"key2", b"IDX", b"LEN"]),
        b"-ERR If you want both the length and indexes, please just use IDX.\r\n",
    )
    .await;
    c.expect(&resp(&[b"LCS", b"key1", b"missing"]), b"$0\r\n\r\n")
        .await;
}

#[tokio::test]
async fn getex_getdel_msetnx() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    c.expect(&resp(&[b"SET", b"g", b"1"]), b"+OK\r\n").await;
    c.expect(&resp(&[b"GETEX", b"g", b"PX", b"50000"]), b"$1\r\n1\r\n")
        .await;
    c.send(&resp(&[b"PTTL", b"g"])).await;
    let pttl = c.read_until(b"\r\n").await;
    let ms: i64 = std::str::from_utf8(&pttl[1..pttl.len() - 2])
        .unwrap()
        .parse()
        .unwrap();
    assert!(ms > 49000 && ms <= 50000, "{ms}");
    c.expect(&resp(&[b"GETEX", b"g", b"PERSIST"]), b"$1\r\n1\r\n")
        .await;
    c.expect(&resp(&[b"TTL", b"g"]), b":-1\r\n").await;
    c.expect(
        &resp(&[b"GETEX", b"g", b"EX", b"1", b"PX", b"1"]),
        b"-ERR syntax error\r\n",
    )
    .await;
    c.expect(&resp(&[b"GETDEL", b"g"]), b"$1\r\n1\r\n").await;
    c.expect(&resp(&[b"EXISTS", b"g"]), b":0\r\n").await;
    c.expect(&resp(&[b"MSETNX", b"x1", b"a", b"x2", b"b"]), b":1\r\n")
        .await;
    c.expect(&resp(&[b"MSETNX", b"x2", b"c", b"x3", b"d"]), b":0\r\n")
        .await;
    c.expect(
        &resp(&[b"MGET", b"x1", b"x2", b"x3"]),
        b"*3\r\n$1\r\na\r\n$1\r\nb\r\n$-1\r\n",
    )
    .await;
    c.expect(
        &resp(&[b"MSET", b"x1", b"a", b"x2"]),
        b"-ERR wrong number of arguments for 'mset' command\r\n",
    )
    .await;
}

/// The same edge cases against redis-server: replies must be byte-identical.
#[tokio::test]
async fn string_edge_cases_match_redis() {
    let srv = TestServer::start();
    let s = script(
        "
        FLUSHALL
        SET a 10
        INCRBY a 9223372036854775797
        INCR a
        INCRBY a abc
        INCRBY a 1.5
        SET f 3.0
        INCRBYFLOAT f 0
        INCRBYFLOAT f 1.5e2
        INCRBYFLOAT f -153
        INCRBYFLOAT f 0.1
        INCRBYFLOAT f 1e-20
        INCRBYFLOAT f abc
        INCRBYFLOAT nf 1.1
        INCRBYFLOAT nf -1.1
        SET e 12345678901234567890
        INCR e
        SET neg -0
        INCR neg
        SET big 1e308
        INCRBYFLOAT big 1e308
        INCRBYFLOAT p 0.1
        INCRBYFLOAT p 0.2
        SET q 1.1
        INCRBYFLOAT q 2.2
        INCRBYFLOAT q 0x10
        INCRBYFLOAT q 1e-400
        INCRBYFLOAT x 3.0000000000000000000001
        INCRBYFLOAT y 17179869184
        INCRBYFLOAT y 1.5
        SET s hello
        GETRANGE s 0 -1
        GETRANGE s -100 100
        GETRANGE s 3 2
        GETRANGE s -1 -2
        GETRANGE missing 0 -1
        SUBSTR s 1 3
        SETRANGE s 0 ''
        SETRANGE s -1 x
        SETRANGE empty 0 ''
        EXISTS empty
        SETRANGE s 10 x
        GET s
        STRLEN s
        APPEND n 5
        INCR n
        APPEND n 5
        GET n
        GETSET n 1
        GETSET n2 1
        SETNX n 2
        SETEX t -1 v
        SETEX t 0 v
        SETEX t 1x v
        PSETEX t 0 v
        SET t v PX 9223372036854775807
        SET t v EX 9223372036854775
        SET t v EXAT 1 GET
        GET t
        SET t v KEEPTTL EX 5
        SET t v GET NX
        MGET s n nothing
        MSETNX a 1 a 2
        LCS s n
        LCS s n LEN IDX
        LCS s n MINMATCHLEN
        LCS s n FOO
        GETEX missing
        GETEX s PERSIST EX 5
        GETEX s EX -5
        GETDEL missing
        ",
    );
    same_replies(srv.addr.port(), &s).await;
}

/// MGET and HMGET build their replies in one buffer for the client's
/// protocol: a missing key (or one of another type) is `$-1` in RESP2 and
/// `_` in RESP3, an integer-encoded value its decimal string; inside a
/// script the same replies arrive as Lua values.
#[tokio::test]
async fn multi_gets_encode_nulls_and_integers_per_protocol() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    c.expect(&resp(&[b"MSET", b"s", b"abc", b"n", b"-42"]), b"+OK\r\n")
        .await;
    c.expect(&resp(&[b"HSET", b"h", b"f", b"v"]), b":1\r\n")
        .await;
    let mget = resp(&[b"MGET", b"s", b"n", b"nokey", b"h"]);
    let hmget = resp(&[b"HMGET", b"h", b"f", b"g"]);
    c.expect(&mget, b"*4\r\n$3\r\nabc\r\n$3\r\n-42\r\n$-1\r\n$-1\r\n")
        .await;
    c.expect(&hmget, b"*2\r\n$1\r\nv\r\n$-1\r\n").await;
    c.expect(
        &resp(&[
            b"EVAL",
            b"local r = redis.call('mget', 's', 'n', 'nokey') return {r[1], r[2], tostring(r[3])}",
            b"0",
        ]),
        b"*3\r\n$3\r\nabc\r\n$3\r\n-42\r\n$5\r\nfalse\r\n",
    )
    .await;
    c.send(&resp(&[b"HELLO", b"3"])).await;
    c.read_until(b"modules\r\n*0\r\n").await;
    c.expect(&mget, b"*4\r\n$3\r\nabc\r\n$3\r\n-42\r\n_\r\n_\r\n")
        .await;
    c.expect(&hmget, b"*2\r\n$1\r\nv\r\n_\r\n").await;
    c.expect(&resp(&[b"MGET", b"nokey"]), b"*1\r\n_\r\n").await;
}
