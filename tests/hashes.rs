//! Hash commands through the real server: replies, errors, RESP3 shapes,
//! encoding conversion, HSCAN completeness, HRANDFIELD sampling.

mod common;
use std::collections::{HashMap, HashSet};

use common::{resp, Raw, TestServer};
use redis::aio::MultiplexedConnection;
use redis::Value;

async fn q<T: redis::FromRedisValue>(c: &mut MultiplexedConnection, args: &[&str]) -> T {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query_async(c)
        .await
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// Sends `args` on a raw connection and asserts the exact reply bytes.
async fn ex(r: &mut Raw, args: &[&str], want: &str) {
    let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
    r.expect(&resp(&a), want.as_bytes()).await;
}

const WRONGTYPE: &str = "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";

#[tokio::test]
async fn basic_field_commands() {
    let srv = TestServer::start();
    let mut r = srv.raw().await;
    ex(&mut r, &["HSET", "h", "a", "1", "b", "2"], ":2\r\n").await;
    ex(&mut r, &["HSET", "h", "a", "10", "c", "3"], ":1\r\n").await;
    ex(&mut r, &["HGET", "h", "a"], "$2\r\n10\r\n").await;
    ex(&mut r, &["HGET", "h", "zz"], "$-1\r\n").await;
    ex(&mut r, &["HGET", "nokey", "a"], "$-1\r\n").await;
    ex(&mut r, &["HLEN", "h"], ":3\r\n").await;
    ex(&mut r, &["HLEN", "nokey"], ":0\r\n").await;
    ex(&mut r, &["HSTRLEN", "h", "a"], ":2\r\n").await;
    ex(&mut r, &["HSTRLEN", "h", "nofield"], ":0\r\n").await;
    ex(&mut r, &["HEXISTS", "h", "b"], ":1\r\n").await;
    ex(&mut r, &["HEXISTS", "h", "x"], ":0\r\n").await;
    ex(&mut r, &["HSETNX", "h", "a", "zzz"], ":0\r\n").await;
    ex(&mut r, &["HSETNX", "h", "d", "4"], ":1\r\n").await;
    ex(&mut r, &["HSETNX", "new", "f", "v"], ":1\r\n").await;
    ex(&mut r, &["HMSET", "h", "e", "5", "f", "6"], "+OK\r\n").await;
    ex(
        &mut r,
        &["HMGET", "h", "a", "nope", "f"],
        "*3\r\n$2\r\n10\r\n$-1\r\n$1\r\n6\r\n",
    )
    .await;
    ex(
        &mut r,
        &["HMGET", "nokey", "a", "b"],
        "*2\r\n$-1\r\n$-1\r\n",
    )
    .await;
    ex(&mut r, &["HDEL", "h", "a", "b", "nope"], ":2\r\n").await;
    ex(&mut r, &["HDEL", "nokey", "a"], ":0\r\n").await;
    ex(&mut r, &["HLEN", "h"], ":4\r\n").await;
    // Deleting the last field deletes the key.
    ex(&mut r, &["HDEL", "new", "f"], ":1\r\n").await;
    ex(&mut r, &["EXISTS", "new"], ":0\r\n").await;
    ex(&mut r, &["HDEL", "h", "c", "d", "e", "f", "c"], ":4\r\n").await;
    ex(&mut r, &["EXISTS", "h"], ":0\r\n").await;
    ex(&mut r, &["TYPE", "h"], "+none\r\n").await;
    ex(&mut r, &["HSET", "t", "x", "y"], ":1\r\n").await;
    ex(&mut r, &["TYPE", "t"], "+hash\r\n").await;

    let mut c = srv.conn().await;
    let _: () = q(&mut c, &["HSET", "k", "f1", "v1", "f2", "v2", "f3", "v3"]).await;
    let mut keys: Vec<String> = q(&mut c, &["HKEYS", "k"]).await;
    keys.sort();
    assert_eq!(keys, ["f1", "f2", "f3"]);
    let mut vals: Vec<String> = q(&mut c, &["HVALS", "k"]).await;
    vals.sort();
    assert_eq!(vals, ["v1", "v2", "v3"]);
    let all: HashMap<String, String> = q(&mut c, &["HGETALL", "k"]).await;
    assert_eq!(all.len(), 3);
    assert_eq!(all["f2"], "v2");
    let none: Vec<String> = q(&mut c, &["HKEYS", "nokey"]).await;
    assert!(none.is_empty());
}

#[tokio::test]
async fn errors_and_wrongtype() {
    let srv = TestServer::start();
    let mut r = srv.raw().await;
    ex(&mut r, &["SET", "s", "str"], "+OK\r\n").await;
    for cmd in [
        &["HSET", "s", "a", "1"][..],
        &["HSETNX", "s", "a", "1"],
        &["HGET", "s", "a"],
        &["HMGET", "s", "a"],
        &["HMSET", "s", "a", "1"],
        &["HDEL", "s", "a"],
        &["HLEN", "s"],
        &["HSTRLEN", "s", "a"],
        &["HEXISTS", "s", "a"],
        &["HKEYS", "s"],
        &["HVALS", "s"],
        &["HGETALL", "s"],
        &["HINCRBY", "s", "a", "1"],
        &["HINCRBYFLOAT", "s", "a", "1"],
        &["HSCAN", "s", "0"],
        &["HRANDFIELD", "s"],
        &["HRANDFIELD", "s", "2"],
    ] {
        ex(&mut r, cmd, WRONGTYPE).await;
    }
    ex(&mut r, &["GET", "s"], "$3\r\nstr\r\n").await;
    ex(
        &mut r,
        &["HSET", "h", "a"],
        "-ERR wrong number of arguments for 'hset' command\r\n",
    )
    .await;
    ex(
        &mut r,
        &["HSET", "h", "a", "1", "b"],
        "-ERR wrong number of arguments for 'hset' command\r\n",
    )
    .await;
    ex(
        &mut r,
        &["HMSET", "h", "a", "1", "b"],
        "-ERR wrong number of arguments for 'hmset' command\r\n",
    )
    .await;
    ex(&mut r, &["EXISTS", "h"], ":0\r\n").await;
    ex(
        &mut r,
        &["HGET", "h"],
        "-ERR wrong number of arguments for 'hget' command\r\n",
    )
    .await;
}

#[tokio::test]
async fn hincrby_and_hincrbyfloat() {
    let srv = TestServer::start();
    let mut r = srv.raw().await;
    ex(&mut r, &["HINCRBY", "h", "n", "5"], ":5\r\n").await;
    ex(&mut r, &["HINCRBY", "h", "n", "-7"], ":-2\r\n").await;
    ex(&mut r, &["HGET", "h", "n"], "$2\r\n-2\r\n").await;
    ex(
        &mut r,
        &["HINCRBY", "h", "n", "x"],
        "-ERR value is not an integer or out of range\r\n",
    )
    .await;
    ex(
        &mut r,
        &["HSET", "h", "s", "abc", "big", "9223372036854775806"],
        ":2\r\n",
    )
    .await;
    ex(
        &mut r,
        &["HINCRBY", "h", "s", "1"],
        "-ERR hash value is not an integer\r\n",
    )
    .await;
    ex(
        &mut r,
        &["HINCRBY", "h", "big", "1"],
        ":9223372036854775807\r\n",
    )
    .await;
    ex(
        &mut r,
        &["HINCRBY", "h", "big", "1"],
        "-ERR increment or decrement would overflow\r\n",
    )
    .await;
    ex(&mut r, &["HSET", "h", "sp", " 1"], ":1\r\n").await;
    ex(
        &mut r,
        &["HINCRBY", "h", "sp", "1"],
        "-ERR hash value is not an integer\r\n",
    )
    .await;

    ex(
        &mut r,
        &["HINCRBYFLOAT", "f", "x", "10.5"],
        "$4\r\n10.5\r\n",
    )
    .await;
    ex(&mut r, &["HINCRBYFLOAT", "f", "x", "0.1"], "$4\r\n10.6\r\n").await;
    ex(&mut r, &["HINCRBYFLOAT", "f", "x", "-10.6"], "$1\r\n0\r\n").await;
    ex(
        &mut r,
        &["HINCRBYFLOAT", "f", "y", "5.0e3"],
        "$4\r\n5000\r\n",
    )
    .await;
    ex(&mut r, &["HSET", "f", "i", "3"], ":1\r\n").await;
    ex(&mut r, &["HINCRBYFLOAT", "f", "i", "1.5"], "$3\r\n4.5\r\n").await;
    ex(
        &mut r,
        &["HINCRBYFLOAT", "f", "x", "abc"],
        "-ERR value is not a valid float\r\n",
    )
    .await;
    ex(
        &mut r,
        &["HINCRBYFLOAT", "h", "s", "1"],
        "-ERR hash value is not a float\r\n",
    )
    .await;
    ex(
        &mut r,
        &["HINCRBYFLOAT", "f", "x", "inf"],
        "-ERR value is NaN or Infinity\r\n",
    )
    .await;
    // Redis computes in long double: 1.7e308 * 2 is still finite there,
    // 1.1e4932 * 2 is not.
    ex(&mut r, &["HSET", "f", "huge", "1.1e4932"], ":1\r\n").await;
    ex(
        &mut r,
        &["HINCRBYFLOAT", "f", "huge", "1.1e4932"],
        "-ERR increment would produce NaN or Infinity\r\n",
    )
    .await;
    ex(&mut r, &["HGET", "f", "huge"], "$8\r\n1.1e4932\r\n").await;
    ex(&mut r, &["HSET", "f", "p", "0.1"], ":1\r\n").await;
    ex(&mut r, &["HINCRBYFLOAT", "f", "p", "0.2"], "$3\r\n0.3\r\n").await;
    // Errors never leave an empty hash behind.
    ex(
        &mut r,
        &["HINCRBYFLOAT", "nokey", "x", "nan"],
        "-ERR value is not a valid float\r\n",
    )
    .await;
    ex(&mut r, &["EXISTS", "nokey"], ":0\r\n").await;
}

#[tokio::test]
async fn resp3_reply_types() {
    let srv = TestServer::start();
    let mut r = srv.raw().await;
    r.send(&resp(&[b"HELLO", b"3"])).await;
    r.read_until(b"modules\r\n*0\r\n").await;
    ex(&mut r, &["HSET", "h", "a", "1"], ":1\r\n").await;
    ex(&mut r, &["HGETALL", "h"], "%1\r\n$1\r\na\r\n$1\r\n1\r\n").await;
    ex(&mut r, &["HGETALL", "nokey"], "%0\r\n").await;
    ex(&mut r, &["HGET", "h", "zz"], "_\r\n").await;
    ex(&mut r, &["HRANDFIELD", "nokey"], "_\r\n").await;
    ex(&mut r, &["HRANDFIELD", "nokey", "3"], "*0\r\n").await;
    ex(
        &mut r,
        &["HRANDFIELD", "h", "1", "WITHVALUES"],
        "*1\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n",
    )
    .await;
    ex(
        &mut r,
        &["HRANDFIELD", "h", "-2", "WITHVALUES"],
        "*2\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n",
    )
    .await;
    ex(&mut r, &["HRANDFIELD", "h", "5"], "*1\r\n$1\r\na\r\n").await;
    ex(
        &mut r,
        &["HSCAN", "h", "0"],
        "*2\r\n$1\r\n0\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n",
    )
    .await;

    // RESP2: flat pairs.
    let mut r2 = srv.raw().await;
    ex(&mut r2, &["HGETALL", "h"], "*2\r\n$1\r\na\r\n$1\r\n1\r\n").await;
    ex(
        &mut r2,
        &["HRANDFIELD", "h", "-2", "WITHVALUES"],
        "*4\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\na\r\n$1\r\n1\r\n",
    )
    .await;
    ex(&mut r2, &["HRANDFIELD", "nokey"], "$-1\r\n").await;
}

#[tokio::test]
async fn encoding_conversion() {
    let srv = TestServer::start();
    let mut c = srv.conn().await;
    let _: () = q(&mut c, &["CONFIG", "SET", "hash-max-listpack-entries", "4"]).await;
    let _: () = q(&mut c, &["CONFIG", "SET", "hash-max-listpack-value", "8"]).await;
    for i in 0..4 {
        let _: i64 = q(&mut c, &["HSET", "h", &format!("f{i}"), "v"]).await;
    }
    let enc: String = q(&mut c, &["OBJECT", "ENCODING", "h"]).await;
    assert_eq!(enc, "listpack");
    let _: i64 = q(&mut c, &["HSET", "h", "f4", "v"]).await;
    let enc: String = q(&mut c, &["OBJECT", "ENCODING", "h"]).await;
    assert_eq!(enc, "hashtable");
    // Never converts back.
    for i in 0..5 {
        let _: i64 = q(&mut c, &["HDEL", "h", &format!("f{i}")]).await;
        if i == 3 {
            let enc: String = q(&mut c, &["OBJECT", "ENCODING", "h"]).await;
            assert_eq!(enc, "hashtable");
        }
    }
    // A long value converts at once; so does a long field.
    let _: i64 = q(&mut c, &["HSET", "v", "a", "123456789"]).await;
    let enc: String = q(&mut c, &["OBJECT", "ENCODING", "v"]).await;
    assert_eq!(enc, "hashtable");
    let _: i64 = q(&mut c, &["HSET", "w", "abcdefghi", "1"]).await;
    let enc: String = q(&mut c, &["OBJECT", "ENCODING", "w"]).await;
    assert_eq!(enc, "hashtable");
    let _: i64 = q(&mut c, &["HSET", "x", "abcdefgh", "12345678"]).await;
    let enc: String = q(&mut c, &["OBJECT", "ENCODING", "x"]).await;
    assert_eq!(enc, "listpack");
    // HINCRBYFLOAT growing a value past the limit converts too.
    let _: String = q(&mut c, &["HINCRBYFLOAT", "x", "n", "1.123456789"]).await;
    let enc: String = q(&mut c, &["OBJECT", "ENCODING", "x"]).await;
    assert_eq!(enc, "hashtable");
    let v: String = q(&mut c, &["HGET", "x", "abcdefgh"]).await;
    assert_eq!(v, "12345678");
}

async fn hscan_all(c: &mut MultiplexedConnection, key: &str, extra: &[&str]) -> Vec<String> {
    let mut cursor = "0".to_string();
    let mut out = Vec::new();
    let mut rounds = 0;
    loop {
        let mut args = vec!["HSCAN", key, &cursor];
        args.extend_from_slice(extra);
        let (next, items): (String, Vec<String>) = q(c, &args).await;
        out.extend(items);
        cursor = next;
        rounds += 1;
        assert!(rounds < 100_000);
        if cursor == "0" {
            return out;
        }
    }
}

#[tokio::test]
async fn hscan_complete_and_options() {
    let srv = TestServer::start();
    let mut c = srv.conn().await;
    // Small: everything at once with cursor 0.
    let _: i64 = q(&mut c, &["HSET", "small", "a", "1", "b", "2", "c", "3"]).await;
    let (cur, items): (String, Vec<String>) =
        q(&mut c, &["HSCAN", "small", "0", "COUNT", "1"]).await;
    assert_eq!(cur, "0");
    assert_eq!(items.len(), 6);
    let (cur, items): (String, Vec<String>) =
        q(&mut c, &["HSCAN", "small", "0", "MATCH", "b*"]).await;
    assert_eq!(
        (cur.as_str(), items),
        ("0", vec!["b".to_string(), "2".to_string()])
    );
    let (cur, items): (String, Vec<String>) = q(&mut c, &["HSCAN", "nokey", "0"]).await;
    assert_eq!(cur, "0");
    assert!(items.is_empty());

    // Big: all fields, pairs intact, under several COUNTs.
    for chunk in 0..10 {
        let mut args = vec!["HSET".to_string(), "big".to_string()];
        for i in chunk * 200..(chunk + 1) * 200 {
            args.push(format!("field:{i}"));
            args.push(format!("value:{i}"));
        }
        let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        let _: i64 = q(&mut c, &a).await;
    }
    for count in ["1", "10", "1000"] {
        let items = hscan_all(&mut c, "big", &["COUNT", count]).await;
        let mut seen = HashSet::new();
        for pair in items.chunks(2) {
            assert_eq!(pair[0].replace("field", "value"), pair[1]);
            seen.insert(pair[0].clone());
        }
        assert_eq!(seen.len(), 2000, "count {count}");
    }
    let items = hscan_all(&mut c, "big", &["MATCH", "field:1??"]).await;
    assert_eq!(items.len(), 200);

    // Elements present for the whole iteration are returned even while the
    // hash grows and shrinks between calls.
    let mut cursor = "0".to_string();
    let mut seen = HashSet::new();
    let mut step = 0;
    loop {
        let (next, items): (String, Vec<String>) =
            q(&mut c, &["HSCAN", "big", &cursor, "COUNT", "20"]).await;
        for pair in items.chunks(2) {
            seen.insert(pair[0].clone());
        }
        step += 1;
        if step == 5 {
            let mut args = vec!["HSET".to_string(), "big".to_string()];
            for i in 0..3000 {
                args.push(format!("tmp:{i}"));
                args.push("x".into());
            }
            let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
            let _: i64 = q(&mut c, &a).await;
        }
        if step == 30 {
            let mut args = vec!["HDEL".to_string(), "big".to_string()];
            args.extend((0..3000).map(|i| format!("tmp:{i}")));
            let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
            let _: i64 = q(&mut c, &a).await;
        }
        cursor = next;
        if cursor == "0" {
            break;
        }
    }
    for i in 0..2000 {
        assert!(seen.contains(&format!("field:{i}")), "missing field:{i}");
    }

    let mut r = srv.raw().await;
    ex(&mut r, &["HSCAN", "big", "x"], "-ERR invalid cursor\r\n").await;
    ex(
        &mut r,
        &["HSCAN", "big", "0", "COUNT", "0"],
        "-ERR syntax error\r\n",
    )
    .await;
    ex(
        &mut r,
        &["HSCAN", "big", "0", "COUNT", "x"],
        "-ERR value is not an integer or out of range\r\n",
    )
    .await;
    ex(
        &mut r,
        &["HSCAN", "big", "0", "MATCH"],
        "-ERR syntax error\r\n",
    )
    .await;
    ex(
        &mut r,
        &["HSCAN", "big", "0", "TYPE", "hash"],
        "-ERR syntax error\r\n",
    )
    .await;
}

#[tokio::test]
async fn hrandfield_counts_and_distribution() {
    let srv = TestServer::start();
    let mut c = srv.conn().await;
    let mut r = srv.raw().await;
    ex(&mut r, &["HRANDFIELD", "h", "5"], "*0\r\n").await;
    ex(&mut r, &["HSET", "h", "a", "1"], ":1\r\n").await;
    ex(&mut r, &["HRANDFIELD", "h", "0"], "*0\r\n").await;
    ex(
        &mut r,
        &["HRANDFIELD", "h", "1", "x"],
        "-ERR syntax error\r\n",
    )
    .await;
    ex(
        &mut r,
        &["HRANDFIELD", "h", "1", "WITHVALUES", "x"],
        "-ERR syntax error\r\n",
    )
    .await;
    ex(
        &mut r,
        &["HRANDFIELD", "h", "x"],
        "-ERR value is not an integer or out of range\r\n",
    )
    .await;
    ex(
        &mut r,
        &["HRANDFIELD", "h", "-9223372036854775808"],
        "-ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807\r\n",
    )
    .await;
    ex(
        &mut r,
        &["HRANDFIELD", "h", "-9223372036854770000", "WITHVALUES"],
        "-ERR value is out of range\r\n",
    )
    .await;

    for (key, n) in [("small", 50), ("big", 3000)] {
        let mut args = vec!["HSET".to_string(), key.to_string()];
        for i in 0..n {
            args.push(format!("f{i}"));
            args.push(format!("v{i}"));
        }
        let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        let _: i64 = q(&mut c, &a).await;
        // Distinct when positive.
        let got: Vec<String> = q(&mut c, &["HRANDFIELD", key, "20"]).await;
        assert_eq!(got.len(), 20);
        assert_eq!(got.iter().collect::<HashSet<_>>().len(), 20);
        let got: Vec<String> = q(&mut c, &["HRANDFIELD", key, &(n - 1).to_string()]).await;
        assert_eq!(got.iter().collect::<HashSet<_>>().len(), n - 1);
        let got: Vec<String> = q(&mut c, &["HRANDFIELD", key, &(n + 10).to_string()]).await;
        assert_eq!(got.len(), n);
        // With values: pairs match.
        let got: Vec<String> = q(&mut c, &["HRANDFIELD", key, "7", "WITHVALUES"]).await;
        assert_eq!(got.len(), 14);
        for p in got.chunks(2) {
            assert_eq!(p[0][1..], p[1][1..]);
        }
        // Negative: exactly |count| with repeats, covering the hash.
        let got: Vec<String> = q(
            &mut c,
            &["HRANDFIELD", key, &(-(n as i64) * 40).to_string()],
        )
        .await;
        // 40 draws per field on average: a field missing from a uniform
        // sample has odds of about e^-40 (at 10 per field, e^-10 each,
        // one CI run in a few hundred failed).
        assert_eq!(got.len(), n * 40);
        let mut freq: HashMap<&str, usize> = HashMap::new();
        for g in &got {
            *freq.entry(g).or_default() += 1;
        }
        if n == 50 {
            assert_eq!(freq.len(), 50, "all fields appear");
        }
        // Rough uniformity: no field hugely over-represented.
        assert!(freq.values().all(|&v| v < 120), "{freq:?}");
    }
    let enc: String = q(&mut c, &["OBJECT", "ENCODING", "big"]).await;
    assert_eq!(enc, "hashtable");
    // Single random field: over many draws every field of a small hash shows up.
    let mut seen = HashSet::new();
    for _ in 0..400 {
        let f: String = q(&mut c, &["HRANDFIELD", "small"]).await;
        seen.insert(f);
    }
    assert!(seen.len() > 40);
    let v: Value = q(&mut c, &["HRANDFIELD", "nokey"]).await;
    assert_eq!(v, Value::Nil);
}

#[tokio::test]
async fn command_info_and_keyspace_stats() {
    let srv = TestServer::start();
    let mut c = srv.conn().await;
    let info: Value = q(&mut c, &["COMMAND", "INFO", "hset", "hgetall"]).await;
    let s = format!("{info:?}");
    assert!(
        s.contains("hset") && s.contains("denyoom") && s.contains("@hash"),
        "{s}"
    );
    let _: i64 = q(&mut c, &["HSET", "h", "a", "1"]).await;
    let _: Value = q(&mut c, &["CONFIG", "RESETSTAT"]).await;
    let _: Value = q(&mut c, &["HGET", "h", "a"]).await;
    let _: Value = q(&mut c, &["HGET", "nokey", "a"]).await;
    let info: String = q(&mut c, &["INFO", "stats"]).await;
    assert!(info.contains("keyspace_hits:1"), "{info}");
    assert!(info.contains("keyspace_misses:1"), "{info}");
}

/// Enough collections that every shard's object slots span several chunks
/// (storage::slab): each value reads back, freed slots are reused, and
/// nothing is lost or crossed over.
#[tokio::test]
async fn many_hashes_keep_their_values_across_slab_chunks() {
    let srv = TestServer::start();
    let mut c = srv.conn().await;
    let n = 120_000u32;
    let mut p = redis::pipe();
    for i in 0..n {
        p.cmd("HSET").arg(format!("h:{i}")).arg("f").arg(i).ignore();
    }
    let _: () = p.query_async(&mut c).await.unwrap();
    // Free every third, then create as many new ones (they take the freed
    // slots), and check every key.
    let mut p = redis::pipe();
    for i in (0..n).step_by(3) {
        p.cmd("DEL").arg(format!("h:{i}")).ignore();
    }
    for i in (0..n).step_by(3) {
        p.cmd("HSET")
            .arg(format!("g:{i}"))
            .arg("f")
            .arg(i + 1)
            .ignore();
    }
    let _: () = p.query_async(&mut c).await.unwrap();
    let mut p = redis::pipe();
    for i in 0..n {
        p.cmd("HGET").arg(format!("h:{i}")).arg("f");
        p.cmd("HGET").arg(format!("g:{i}")).arg("f");
    }
    let got: Vec<Option<u32>> = p.query_async(&mut c).await.unwrap();
    for i in 0..n {
        let (h, g) = (got[2 * i as usize], got[2 * i as usize + 1]);
        if i % 3 == 0 {
            assert_eq!((h, g), (None, Some(i + 1)), "key {i}");
        } else {
            assert_eq!((h, g), (Some(i), None), "key {i}");
        }
    }
    let size: u64 = redis::cmd("DBSIZE").query_async(&mut c).await.unwrap();
    assert_eq!(size, u64::from(n));
}

#[tokio::test]
async fn one_large_hash_rehashes_a_step_at_a_time_and_hscan_stays_complete() {
    let srv = TestServer::start();
    let mut c = srv.conn().await;
    // Only the listpack and missing keys have no table.
    let _: () = q(&mut c, &["HSET", "small", "f", "v"]).await;
    let err = redis::cmd("DEBUG")
        .arg("HTSTATS-KEY")
        .arg("small")
        .query_async::<String>(&mut c)
        .await
        .unwrap_err();
    assert!(err
        .to_string()
        .contains("not represented using an hash table"));
    let err = redis::cmd("DEBUG")
        .arg("HTSTATS-KEY")
        .arg("nokey")
        .query_async::<String>(&mut c)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no such key"), "{err}");

    // 4096 fields fill a 4096-bucket table exactly; the 4097th starts a
    // growth that the next inserts carry out a few buckets at a time.
    let mut p = redis::pipe();
    for i in 0..4096 {
        p.cmd("HSET")
            .arg("big")
            .arg(format!("f{i}"))
            .arg(i)
            .ignore();
    }
    let _: () = p.query_async(&mut c).await.unwrap();
    assert_eq!(
        common::htstats_key(&mut c, "big").await,
        (vec![4096], vec![4096])
    );
    let _: () = q(&mut c, &["HSET", "big", "f4096", "4096"]).await;
    let (sizes, elems) = common::htstats_key(&mut c, "big").await;
    assert_eq!(sizes, vec![4096, 8192], "growth did not stay in progress");
    assert_eq!(elems.iter().sum::<u64>(), 4097);
    assert!(
        elems[0] > 3000,
        "the growth moved too much in one step: {elems:?}"
    );

    // HSCAN across the rest of the growth returns every field that was
    // there for the whole scan, and every field answers meanwhile.
    let mut seen = HashSet::new();
    let mut cursor = 0u64;
    let mut next_field = 4097;
    let mut rounds_while_rehashing = 0;
    loop {
        let (next, kv): (u64, Vec<String>) = redis::cmd("HSCAN")
            .arg("big")
            .arg(cursor)
            .arg("COUNT")
            .arg(20)
            .query_async(&mut c)
            .await
            .unwrap();
        seen.extend(kv.chunks(2).map(|p| p[0].clone()));
        if common::htstats_key(&mut c, "big").await.0.len() == 2 {
            rounds_while_rehashing += 1;
        }
        let mut p = redis::pipe();
        for _ in 0..10 {
            p.cmd("HSET")
                .arg("big")
                .arg(format!("f{next_field}"))
                .arg(next_field)
                .ignore();
            next_field += 1;
        }
        let _: () = p.query_async(&mut c).await.unwrap();
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    assert!(rounds_while_rehashing >= 5, "{rounds_while_rehashing}");
    for i in 0..4097 {
        assert!(seen.contains(&format!("f{i}")), "HSCAN missed f{i}");
    }
    let (sizes, elems) = common::htstats_key(&mut c, "big").await;
    assert_eq!((sizes, elems), (vec![8192], vec![next_field]));
    let mut p = redis::pipe();
    for i in 0..next_field {
        p.cmd("HGET").arg("big").arg(format!("f{i}"));
    }
    let got: Vec<Option<u64>> = p.query_async(&mut c).await.unwrap();
    for (i, v) in got.into_iter().enumerate() {
        assert_eq!(v, Some(i as u64), "field f{i}");
    }

    // Deleting most fields shrinks the table, again a step at a time.
    let mut p = redis::pipe();
    for i in 0..next_field - 500 {
        p.cmd("HDEL").arg("big").arg(format!("f{i}")).ignore();
    }
    let _: () = p.query_async(&mut c).await.unwrap();
    let (sizes, elems) = common::htstats_key(&mut c, "big").await;
    // The target array (the last one listed) is the small one.
    assert!(
        sizes.last().is_some_and(|&s| s <= 2048),
        "no shrink: {sizes:?}"
    );
    assert_eq!(elems.iter().sum::<u64>(), 500);
    let n: u64 = q(&mut c, &["HLEN", "big"]).await;
    assert_eq!(n, 500);
    let v: Option<u64> = q(&mut c, &["HGET", "big", &format!("f{}", next_field - 1)]).await;
    assert_eq!(v, Some(next_field - 1));
}
