//! Set commands through the real server: replies, errors, RESP3 shapes,
//! intset/hashtable conversion, multi-key operations and their store
//! variants, SPOP/SRANDMEMBER sampling on big sets, SSCAN completeness.

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

async fn ex(r: &mut Raw, args: &[&str], want: &str) {
    let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
    r.expect(&resp(&a), want.as_bytes()).await;
}

async fn members(c: &mut MultiplexedConnection, key: &str) -> Vec<String> {
    let mut m: Vec<String> = q(c, &["SMEMBERS", key]).await;
    m.sort();
    m
}

async fn sadd_many(c: &mut MultiplexedConnection, key: &str, items: impl Iterator<Item = String>) {
    let mut args = vec!["SADD".to_string(), key.to_string()];
    args.extend(items);
    let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let _: i64 = q(c, &a).await;
}

fn strs(v: &[&str]) -> Vec<String> {
    let mut o: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    o.sort();
    o
}

const WRONGTYPE: &str = "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";

#[tokio::test]
async fn basic_member_commands() {
    let srv = TestServer::start();
    let mut r = srv.raw().await;
    ex(&mut r, &["SADD", "s", "a", "b", "a", "c"], ":3\r\n").await;
    ex(&mut r, &["SADD", "s", "a", "d"], ":1\r\n").await;
    ex(&mut r, &["SCARD", "s"], ":4\r\n").await;
    ex(&mut r, &["SCARD", "nokey"], ":0\r\n").await;
    ex(&mut r, &["SISMEMBER", "s", "a"], ":1\r\n").await;
    ex(&mut r, &["SISMEMBER", "s", "z"], ":0\r\n").await;
    ex(&mut r, &["SISMEMBER", "nokey", "z"], ":0\r\n").await;
    ex(
        &mut r,
        &["SMISMEMBER", "s", "a", "z", "d"],
        "*3\r\n:1\r\n:0\r\n:1\r\n",
    )
    .await;
    ex(
        &mut r,
        &["SMISMEMBER", "nokey", "a", "b"],
        "*2\r\n:0\r\n:0\r\n",
    )
    .await;
    ex(&mut r, &["SREM", "s", "a", "z", "b"], ":2\r\n").await;
    ex(&mut r, &["SREM", "nokey", "a"], ":0\r\n").await;
    ex(&mut r, &["SREM", "s", "c", "d"], ":2\r\n").await;
    ex(&mut r, &["EXISTS", "s"], ":0\r\n").await;
    ex(&mut r, &["SMEMBERS", "nokey"], "*0\r\n").await;
    ex(&mut r, &["SADD", "i", "3", "1", "2"], ":3\r\n").await;
    // Intsets reply in ascending order.
    ex(
        &mut r,
        &["SMEMBERS", "i"],
        "*3\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n",
    )
    .await;
    ex(&mut r, &["TYPE", "i"], "+set\r\n").await;

    ex(&mut r, &["SET", "str", "x"], "+OK\r\n").await;
    for cmd in [
        &["SADD", "str", "a"][..],
        &["SREM", "str", "a"],
        &["SISMEMBER", "str", "a"],
        &["SMISMEMBER", "str", "a"],
        &["SMEMBERS", "str"],
        &["SCARD", "str"],
        &["SPOP", "str"],
        &["SPOP", "str", "2"],
        &["SRANDMEMBER", "str"],
        &["SRANDMEMBER", "str", "2"],
        &["SINTER", "i", "str"],
        &["SINTERCARD", "2", "i", "str"],
        &["SUNION", "i", "str"],
        &["SDIFF", "i", "str"],
        &["SDIFF", "str", "i"],
        &["SINTERSTORE", "d", "i", "str"],
        &["SUNIONSTORE", "d", "i", "str"],
        &["SDIFFSTORE", "d", "i", "str"],
        &["SSCAN", "str", "0"],
        &["SMOVE", "str", "i", "a"],
        &["SMOVE", "i", "str", "1"],
    ] {
        ex(&mut r, cmd, WRONGTYPE).await;
    }
    // A missing key is an empty set even before a wrong-typed one.
    ex(&mut r, &["SINTER", "nokey", "str"], WRONGTYPE).await;
    ex(&mut r, &["EXISTS", "d"], ":0\r\n").await;
    ex(
        &mut r,
        &["SADD", "s"],
        "-ERR wrong number of arguments for 'sadd' command\r\n",
    )
    .await;
}

#[tokio::test]
async fn encoding_conversion() {
    let srv = TestServer::start();
    let mut c = srv.conn().await;
    let _: () = q(&mut c, &["CONFIG", "SET", "set-max-intset-entries", "8"]).await;
    sadd_many(&mut c, "i", (0..8).map(|i| i.to_string())).await;
    let enc: String = q(&mut c, &["OBJECT", "ENCODING", "i"]).await;
    assert_eq!(enc, "intset");
    let _: i64 = q(&mut c, &["SADD", "i", "8"]).await;
    let enc: String = q(&mut c, &["OBJECT", "ENCODING", "i"]).await;
    assert_eq!(enc, "hashtable");
    assert!(q::<bool>(&mut c, &["SISMEMBER", "i", "8"]).await);
    assert!(q::<bool>(&mut c, &["SISMEMBER", "i", "0"]).await);

    // Non-canonical integers are strings.
    for (m, want) in [
        ("-5", "intset"),
        ("9223372036854775807", "intset"),
        ("012", "hashtable"),
    ] {
        let _: i64 = q(&mut c, &["DEL", "x"]).await;
        let _: i64 = q(&mut c, &["SADD", "x", "1", m]).await;
        let enc: String = q(&mut c, &["OBJECT", "ENCODING", "x"]).await;
        assert_eq!(enc, want, "{m}");
        assert_eq!(members(&mut c, "x").await, strs(&["1", m]));
    }
    let _: i64 = q(&mut c, &["SADD", "y", "a"]).await;
    let enc: String = q(&mut c, &["OBJECT", "ENCODING", "y"]).await;
    assert_eq!(enc, "hashtable");
    // Never converts back.
    let _: i64 = q(&mut c, &["SADD", "y", "1"]).await;
    let _: i64 = q(&mut c, &["SREM", "y", "a"]).await;
    let enc: String = q(&mut c, &["OBJECT", "ENCODING", "y"]).await;
    assert_eq!(enc, "hashtable");
    // Store results of integers are intsets.
    let _: i64 = q(&mut c, &["SADD", "z", "1", "2", "b"]).await;
    let n: i64 = q(&mut c, &["SINTERSTORE", "dst", "z", "x"]).await;
    assert_eq!(n, 1);
    let enc: String = q(&mut c, &["OBJECT", "ENCODING", "dst"]).await;
    assert_eq!(enc, "intset");
}

#[tokio::test]
async fn resp3_reply_types() {
    let srv = TestServer::start();
    let mut r = srv.raw().await;
    r.send(&resp(&[b"HELLO", b"3"])).await;
    r.read_until(b"modules\r\n*0\r\n").await;
    ex(&mut r, &["SADD", "s", "1"], ":1\r\n").await;
    ex(&mut r, &["SMEMBERS", "s"], "~1\r\n$1\r\n1\r\n").await;
    ex(&mut r, &["SMEMBERS", "nokey"], "~0\r\n").await;
    ex(&mut r, &["SINTER", "s", "s"], "~1\r\n$1\r\n1\r\n").await;
    ex(&mut r, &["SINTER", "s", "nokey"], "~0\r\n").await;
    ex(&mut r, &["SUNION", "s", "nokey"], "~1\r\n$1\r\n1\r\n").await;
    ex(&mut r, &["SDIFF", "s", "nokey"], "~1\r\n$1\r\n1\r\n").await;
    ex(
        &mut r,
        &["SRANDMEMBER", "s", "-2"],
        "*2\r\n$1\r\n1\r\n$1\r\n1\r\n",
    )
    .await;
    ex(&mut r, &["SRANDMEMBER", "nokey", "2"], "*0\r\n").await;
    ex(&mut r, &["SRANDMEMBER", "nokey"], "_\r\n").await;
    ex(&mut r, &["SPOP", "nokey"], "_\r\n").await;
    ex(&mut r, &["SPOP", "nokey", "2"], "~0\r\n").await;
    ex(&mut r, &["SPOP", "s", "0"], "~0\r\n").await;
    ex(
        &mut r,
        &["SSCAN", "s", "0"],
        "*2\r\n$1\r\n0\r\n*1\r\n$1\r\n1\r\n",
    )
    .await;
    ex(&mut r, &["SPOP", "s", "5"], "~1\r\n$1\r\n1\r\n").await;
    ex(&mut r, &["EXISTS", "s"], ":0\r\n").await;

    let mut r2 = srv.raw().await;
    ex(&mut r2, &["SADD", "s", "1"], ":1\r\n").await;
    ex(&mut r2, &["SMEMBERS", "s"], "*1\r\n$1\r\n1\r\n").await;
    ex(&mut r2, &["SPOP", "nokey"], "$-1\r\n").await;
    ex(&mut r2, &["SPOP", "nokey", "1"], "*0\r\n").await;
}

#[tokio::test]
async fn algebra_and_store_variants() {
    let srv = TestServer::start();
    let mut c = srv.conn().await;
    let _: i64 = q(&mut c, &["SADD", "a", "1", "2", "3", "x", "y"]).await;
    let _: i64 = q(&mut c, &["SADD", "b", "2", "3", "4", "y"]).await;
    let _: i64 = q(&mut c, &["SADD", "c", "3", "y", "z"]).await;
    let mut inter: Vec<String> = q(&mut c, &["SINTER", "a", "b", "c"]).await;
    inter.sort();
    assert_eq!(inter, strs(&["3", "y"]));
    let mut uni: Vec<String> = q(&mut c, &["SUNION", "a", "b", "nokey", "c"]).await;
    uni.sort();
    assert_eq!(uni, strs(&["1", "2", "3", "4", "x", "y", "z"]));
    let mut diff: Vec<String> = q(&mut c, &["SDIFF", "a", "b", "nokey"]).await;
    diff.sort();
    assert_eq!(diff, strs(&["1", "x"]));
    let diff: Vec<String> = q(&mut c, &["SDIFF", "a", "a"]).await;
    assert!(diff.is_empty());
    let diff: Vec<String> = q(&mut c, &["SDIFF", "nokey", "a"]).await;
    assert!(diff.is_empty());
    let inter: Vec<String> = q(&mut c, &["SINTER", "a", "nokey"]).await;
    assert!(inter.is_empty());
    let one: Vec<String> = q(&mut c, &["SINTER", "c"]).await;
    assert_eq!(one.len(), 3);

    assert_eq!(
        q::<i64>(&mut c, &["SINTERCARD", "3", "a", "b", "c"]).await,
        2
    );
    assert_eq!(q::<i64>(&mut c, &["SINTERCARD", "2", "a", "b"]).await, 3);
    assert_eq!(
        q::<i64>(&mut c, &["SINTERCARD", "2", "a", "b", "LIMIT", "2"]).await,
        2
    );
    assert_eq!(
        q::<i64>(&mut c, &["SINTERCARD", "2", "a", "b", "LIMIT", "0"]).await,
        3
    );
    assert_eq!(
        q::<i64>(&mut c, &["SINTERCARD", "2", "a", "nokey"]).await,
        0
    );

    // Store variants overwrite any type (and TTL) and return the cardinality.
    let _: () = q(&mut c, &["SET", "dst", "string"]).await;
    let _: i64 = q(&mut c, &["EXPIRE", "dst", "100"]).await;
    assert_eq!(q::<i64>(&mut c, &["SINTERSTORE", "dst", "a", "b"]).await, 3);
    assert_eq!(members(&mut c, "dst").await, strs(&["2", "3", "y"]));
    assert_eq!(q::<i64>(&mut c, &["TTL", "dst"]).await, -1);
    assert_eq!(q::<i64>(&mut c, &["SUNIONSTORE", "dst", "a", "c"]).await, 6);
    assert_eq!(
        q::<i64>(&mut c, &["SDIFFSTORE", "dst", "a", "b", "c"]).await,
        2
    );
    assert_eq!(members(&mut c, "dst").await, strs(&["1", "x"]));
    // Destination may be a source.
    assert_eq!(
        q::<i64>(&mut c, &["SUNIONSTORE", "dst", "dst", "c"]).await,
        5
    );
    // Empty results delete the destination.
    assert_eq!(
        q::<i64>(&mut c, &["SINTERSTORE", "dst", "a", "nokey"]).await,
        0
    );
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "dst"]).await, 0);
    let _: () = q(&mut c, &["SET", "dst", "string"]).await;
    assert_eq!(q::<i64>(&mut c, &["SDIFFSTORE", "dst", "a", "a"]).await, 0);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "dst"]).await, 0);
    let _: () = q(&mut c, &["SET", "dst", "string"]).await;
    assert_eq!(q::<i64>(&mut c, &["SUNIONSTORE", "dst", "nokey"]).await, 0);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "dst"]).await, 0);

    // Big sets spread over shards.
    sadd_many(&mut c, "big1", (0..5000).map(|i| format!("m{i}"))).await;
    sadd_many(
        &mut c,
        "big2",
        (0..5000).filter(|i| i % 2 == 0).map(|i| format!("m{i}")),
    )
    .await;
    sadd_many(
        &mut c,
        "big3",
        (0..5000).filter(|i| i % 3 == 0).map(|i| format!("m{i}")),
    )
    .await;
    assert_eq!(
        q::<i64>(&mut c, &["SINTERCARD", "3", "big1", "big2", "big3"]).await,
        834
    );
    assert_eq!(
        q::<i64>(&mut c, &["SDIFFSTORE", "out", "big1", "big2", "big3"]).await,
        1667
    );
    assert_eq!(
        q::<i64>(&mut c, &["SUNIONSTORE", "out", "big2", "big3"]).await,
        3333
    );

    let mut r = srv.raw().await;
    ex(
        &mut r,
        &["SINTERCARD", "0", "a"],
        "-ERR numkeys should be greater than 0\r\n",
    )
    .await;
    ex(
        &mut r,
        &["SINTERCARD", "x", "a"],
        "-ERR numkeys should be greater than 0\r\n",
    )
    .await;
    ex(
        &mut r,
        &["SINTERCARD", "3", "a", "b"],
        "-ERR Number of keys can't be greater than number of args\r\n",
    )
    .await;
    ex(
        &mut r,
        &["SINTERCARD", "2", "a", "b", "LIMIT", "-1"],
        "-ERR LIMIT can't be negative\r\n",
    )
    .await;
    ex(
        &mut r,
        &["SINTERCARD", "2", "a", "b", "LIMIT"],
        "-ERR syntax error\r\n",
    )
    .await;
    ex(
        &mut r,
        &["SINTERCARD", "1", "a", "b"],
        "-ERR syntax error\r\n",
    )
    .await;
    ex(
        &mut r,
        &[
            "COMMAND",
            "GETKEYS",
            "SINTERCARD",
            "2",
            "a",
            "b",
            "LIMIT",
            "1",
        ],
        "*2\r\n$1\r\na\r\n$1\r\nb\r\n",
    )
    .await;
    ex(
        &mut r,
        &["COMMAND", "GETKEYS", "SMOVE", "src", "dst", "m"],
        "*2\r\n$3\r\nsrc\r\n$3\r\ndst\r\n",
    )
    .await;
}

#[tokio::test]
async fn smove_semantics() {
    let srv = TestServer::start();
    let mut r = srv.raw().await;
    ex(&mut r, &["SADD", "src", "a", "b"], ":2\r\n").await;
    ex(&mut r, &["SMOVE", "src", "dst", "a"], ":1\r\n").await;
    ex(&mut r, &["SMOVE", "src", "dst", "zz"], ":0\r\n").await;
    ex(&mut r, &["SMOVE", "nokey", "dst", "a"], ":0\r\n").await;
    ex(&mut r, &["SMEMBERS", "dst"], "*1\r\n$1\r\na\r\n").await;
    ex(&mut r, &["SMOVE", "src", "src", "b"], ":1\r\n").await;
    ex(&mut r, &["SMOVE", "src", "src", "zz"], ":0\r\n").await;
    // Moving the last member deletes the source; moving onto an existing
    // member still succeeds.
    ex(&mut r, &["SADD", "dst", "b"], ":1\r\n").await;
    ex(&mut r, &["SMOVE", "src", "dst", "b"], ":1\r\n").await;
    ex(&mut r, &["EXISTS", "src"], ":0\r\n").await;
    ex(&mut r, &["SCARD", "dst"], ":2\r\n").await;
    // Missing source wins over a wrong-typed destination (as Redis).
    ex(&mut r, &["SET", "str", "x"], "+OK\r\n").await;
    ex(&mut r, &["SMOVE", "nokey", "str", "a"], ":0\r\n").await;
    ex(&mut r, &["SMOVE", "dst", "str", "a"], WRONGTYPE).await;
    ex(&mut r, &["SCARD", "dst"], ":2\r\n").await;
    // Integer members moving into an intset keep it an intset.
    ex(&mut r, &["SADD", "i1", "1", "2"], ":2\r\n").await;
    ex(&mut r, &["SMOVE", "i1", "i2", "2"], ":1\r\n").await;
    ex(&mut r, &["OBJECT", "ENCODING", "i2"], "$6\r\nintset\r\n").await;
}

#[tokio::test]
async fn spop_and_srandmember_on_big_sets() {
    let srv = TestServer::start();
    let mut c = srv.conn().await;
    let mut r = srv.raw().await;
    ex(&mut r, &["SADD", "s", "a"], ":1\r\n").await;
    ex(
        &mut r,
        &["SPOP", "s", "-1"],
        "-ERR value is out of range, must be positive\r\n",
    )
    .await;
    ex(
        &mut r,
        &["SPOP", "s", "x"],
        "-ERR value is out of range, must be positive\r\n",
    )
    .await;
    ex(&mut r, &["SPOP", "s", "1", "2"], "-ERR syntax error\r\n").await;
    ex(
        &mut r,
        &["SRANDMEMBER", "s", "1", "2"],
        "-ERR syntax error\r\n",
    )
    .await;
    ex(
        &mut r,
        &["SRANDMEMBER", "s", "-9223372036854775808"],
        "-ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807\r\n",
    )
    .await;
    ex(&mut r, &["SRANDMEMBER", "s", "0"], "*0\r\n").await;
    ex(&mut r, &["SPOP", "s"], "$1\r\na\r\n").await;
    ex(&mut r, &["EXISTS", "s"], ":0\r\n").await;

    for (key, n, enc) in [("ints", 300usize, "intset"), ("strs", 10_000, "hashtable")] {
        let mk = |i: usize| {
            if key == "ints" {
                i.to_string()
            } else {
                format!("member:{i}")
            }
        };
        sadd_many(&mut c, key, (0..n).map(mk)).await;
        let e: String = q(&mut c, &["OBJECT", "ENCODING", key]).await;
        assert_eq!(e, enc);
        let all: HashSet<String> = (0..n).map(mk).collect();

        // SRANDMEMBER positive: distinct members of the set.
        for count in [1, 10, n / 2, n - 1] {
            let got: Vec<String> = q(&mut c, &["SRANDMEMBER", key, &count.to_string()]).await;
            assert_eq!(got.len(), count);
            let uniq: HashSet<_> = got.iter().cloned().collect();
            assert_eq!(uniq.len(), count);
            assert!(uniq.is_subset(&all));
        }
        let got: Vec<String> = q(&mut c, &["SRANDMEMBER", key, &(n + 5).to_string()]).await;
        assert_eq!(got.iter().collect::<HashSet<_>>().len(), n);

        // SRANDMEMBER negative: repeats allowed, roughly uniform.
        let draws = n * 20;
        let got: Vec<String> = q(&mut c, &["SRANDMEMBER", key, &format!("-{draws}")]).await;
        assert_eq!(got.len(), draws);
        let mut freq: HashMap<&String, usize> = HashMap::new();
        for g in &got {
            assert!(all.contains(g));
            *freq.entry(g).or_default() += 1;
        }
        // Expected 20 per member: nearly all members appear, none dominates.
        assert!(freq.len() > n * 99 / 100, "{} of {n}", freq.len());
        assert!(freq.values().all(|&v| v < 60));

        // SRANDMEMBER without count: single members of the set.
        for _ in 0..20 {
            let m: String = q(&mut c, &["SRANDMEMBER", key]).await;
            assert!(all.contains(&m));
        }

        // SPOP removes what it returns, never twice; empties the key.
        let mut popped = HashSet::new();
        let one: String = q(&mut c, &["SPOP", key]).await;
        popped.insert(one);
        let batch: Vec<String> = q(&mut c, &["SPOP", key, &(n / 3).to_string()]).await;
        assert_eq!(batch.len(), n / 3);
        for b in batch {
            assert!(popped.insert(b));
        }
        let card: usize = q(&mut c, &["SCARD", key]).await;
        assert_eq!(card, n - 1 - n / 3);
        let left = members(&mut c, key).await;
        for m in &left {
            assert!(!popped.contains(m));
        }
        let rest: Vec<String> = q(&mut c, &["SPOP", key, &n.to_string()]).await;
        assert_eq!(rest.len(), card);
        for b in rest {
            assert!(popped.insert(b));
        }
        assert_eq!(popped, all);
        assert_eq!(q::<i64>(&mut c, &["EXISTS", key]).await, 0);
    }

    // SPOP first-pick fairness over a small set.
    let mut freq: HashMap<String, usize> = HashMap::new();
    for _ in 0..300 {
        let _: i64 = q(&mut c, &["SADD", "f", "a", "b", "c"]).await;
        let m: String = q(&mut c, &["SPOP", "f"]).await;
        *freq.entry(m).or_default() += 1;
    }
    assert_eq!(freq.len(), 3);
    assert!(freq.values().all(|&v| v > 50), "{freq:?}");
}

#[tokio::test]
async fn sscan_complete() {
    let srv = TestServer::start();
    let mut c = srv.conn().await;
    sadd_many(&mut c, "ints", (0..100).map(|i| i.to_string())).await;
    let (cur, items): (String, Vec<String>) =
        q(&mut c, &["SSCAN", "ints", "0", "COUNT", "5"]).await;
    assert_eq!(cur, "0");
    assert_eq!(items.len(), 100);
    let (_, items): (String, Vec<String>) = q(&mut c, &["SSCAN", "ints", "0", "MATCH", "1?"]).await;
    assert_eq!(items.len(), 10);

    sadd_many(&mut c, "big", (0..10_000).map(|i| format!("m:{i}"))).await;
    for count in ["1", "7", "100", "100000"] {
        let mut seen = HashSet::new();
        let mut cursor = "0".to_string();
        loop {
            let (next, items): (String, Vec<String>) =
                q(&mut c, &["SSCAN", "big", &cursor, "COUNT", count]).await;
            seen.extend(items);
            cursor = next;
            if cursor == "0" {
                break;
            }
        }
        assert_eq!(seen.len(), 10_000, "count {count}");
    }
    // Complete while the set grows and shrinks between calls.
    let mut seen = HashSet::new();
    let mut cursor = "0".to_string();
    let mut step = 0;
    loop {
        let (next, items): (String, Vec<String>) =
            q(&mut c, &["SSCAN", "big", &cursor, "COUNT", "50"]).await;
        seen.extend(items);
        step += 1;
        if step == 3 {
            sadd_many(&mut c, "big", (0..20_000).map(|i| format!("t:{i}"))).await;
        }
        if step == 40 {
            let mut args = vec!["SREM".to_string(), "big".to_string()];
            args.extend((0..20_000).map(|i| format!("t:{i}")));
            let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
            let _: i64 = q(&mut c, &a).await;
        }
        cursor = next;
        if cursor == "0" {
            break;
        }
    }
    for i in 0..10_000 {
        assert!(seen.contains(&format!("m:{i}")), "missing m:{i}");
    }
    let (_, items): (String, Vec<String>) = q(&mut c, &["SSCAN", "nokey", "0"]).await;
    assert!(items.is_empty());
    let mut r = srv.raw().await;
    ex(&mut r, &["SSCAN", "big", "1x"], "-ERR invalid cursor\r\n").await;
    ex(&mut r, &["SSCAN", "big", " 1"], "-ERR invalid cursor\r\n").await;
    ex(
        &mut r,
        &["SSCAN", "big", "0", "COUNT", "0"],
        "-ERR syntax error\r\n",
    )
    .await;
    let v: Value = q(
        &mut c,
        &["SSCAN", "big", "0", "MATCH", "nomatch*", "COUNT", "100000"],
    )
    .await;
    assert_eq!(
        v,
        Value::Array(vec![Value::BulkString(b"0".to_vec()), Value::Array(vec![])])
    );
}

/// A set of a few short strings is kept packed (reported as "hashtable",
/// Redis 7.0's name) and behaves as the table it turns into at 33 members
/// or a 65-byte member: nothing lost in either conversion, SSCAN returns a
/// packed set whole, SPOP/SRANDMEMBER/SMOVE/SREM work on it, and it costs
/// less than Redis's dict (MEMORY USAGE of three short members: Redis
/// 232, the table here 292, packed 104).
#[tokio::test]
async fn small_string_sets_are_packed_and_convert_without_loss() {
    let srv = TestServer::start();
    let mut c = srv.conn().await;
    let _: i64 = q(&mut c, &["SADD", "s", "alpha", "beta", "gamma"]).await;
    let enc: String = q(&mut c, &["OBJECT", "ENCODING", "s"]).await;
    assert_eq!(enc, "hashtable");
    let usage: i64 = q(&mut c, &["MEMORY", "USAGE", "s"]).await;
    assert!(usage < 160, "MEMORY USAGE of a 3-member set: {usage}");
    let (cursor, got): (String, Vec<String>) = q(&mut c, &["SSCAN", "s", "0", "COUNT", "1"]).await;
    assert_eq!(cursor, "0");
    assert_eq!(got.len(), 3);
    assert_eq!(q::<i64>(&mut c, &["SISMEMBER", "s", "beta"]).await, 1);
    assert_eq!(q::<i64>(&mut c, &["SREM", "s", "beta", "nope"]).await, 1);
    assert_eq!(members(&mut c, "s").await, strs(&["alpha", "gamma"]));
    assert_eq!(q::<i64>(&mut c, &["SMOVE", "s", "t", "alpha"]).await, 1);
    assert_eq!(members(&mut c, "t").await, strs(&["alpha"]));
    let popped: String = q(&mut c, &["SPOP", "s"]).await;
    assert_eq!(popped, "gamma");
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "s"]).await, 0);

    // 32 members packed, the 33rd converts; all there, in both.
    let mut want: Vec<String> = (0..32).map(|i| format!("m{i:02}")).collect();
    sadd_many(&mut c, "big", want.iter().cloned()).await;
    let r: Vec<String> = q(&mut c, &["SRANDMEMBER", "big", "-40"]).await;
    assert!(r.len() == 40 && r.iter().all(|m| want.contains(m)));
    let _: i64 = q(&mut c, &["SADD", "big", "m32"]).await;
    want.push("m32".into());
    want.sort();
    assert_eq!(members(&mut c, "big").await, want);
    assert_eq!(q::<i64>(&mut c, &["SCARD", "big"]).await, 33);
    let (_, got): (String, Vec<String>) = q(&mut c, &["SSCAN", "big", "0", "COUNT", "1000"]).await;
    assert_eq!(got.len(), 33);

    // A member past 64 bytes converts, an intset gaining a string packs.
    let long = "x".repeat(65);
    let _: i64 = q(&mut c, &["SADD", "l", "a", "b"]).await;
    let _: i64 = q(&mut c, &["SADD", "l", &long]).await;
    assert_eq!(members(&mut c, "l").await, strs(&["a", "b", &long]));
    let _: i64 = q(&mut c, &["SADD", "i", "1", "2", "3"]).await;
    assert_eq!(
        q::<String>(&mut c, &["OBJECT", "ENCODING", "i"]).await,
        "intset"
    );
    let _: i64 = q(&mut c, &["SADD", "i", "x"]).await;
    assert_eq!(
        q::<String>(&mut c, &["OBJECT", "ENCODING", "i"]).await,
        "hashtable"
    );
    assert_eq!(members(&mut c, "i").await, strs(&["1", "2", "3", "x"]));
    assert_eq!(q::<i64>(&mut c, &["SISMEMBER", "i", "2"]).await, 1);
    assert_eq!(q::<i64>(&mut c, &["SISMEMBER", "i", "02"]).await, 0);
}

/// Intsets are packed at the narrowest width (2, 4 or 8 bytes a member) as
/// Redis's: MEMORY USAGE grows as a wider member widens them all, SMEMBERS
/// stays in ascending numeric order across widths, removals and pops keep
/// the rest, and a DEBUG RELOAD (the RDB intset blob) brings the same set
/// back still as an intset.
#[tokio::test]
async fn intsets_are_packed_by_width_and_keep_their_order() {
    let srv = TestServer::start();
    let mut c = srv.conn().await;
    let _: i64 = q(&mut c, &["SADD", "i", "3", "-1", "7"]).await;
    let narrow: i64 = q(&mut c, &["MEMORY", "USAGE", "i"]).await;
    let _: i64 = q(&mut c, &["SADD", "i", "70000"]).await;
    let mid: i64 = q(&mut c, &["MEMORY", "USAGE", "i"]).await;
    let (min, max) = (i64::MIN.to_string(), i64::MAX.to_string());
    let _: i64 = q(&mut c, &["SADD", "i", &max, &min]).await;
    let wide: i64 = q(&mut c, &["MEMORY", "USAGE", "i"]).await;
    // 3 × 2 bytes, then 4 × 4, then 6 × 8.
    assert_eq!(mid - narrow, 4 * 4 - 3 * 2, "{narrow} {mid}");
    assert_eq!(wide - mid, 6 * 8 - 4 * 4, "{mid} {wide}");
    let want = [min.as_str(), "-1", "3", "7", "70000", max.as_str()];
    let got: Vec<String> = q(&mut c, &["SMEMBERS", "i"]).await;
    assert_eq!(got, want);
    assert_eq!(
        q::<String>(&mut c, &["OBJECT", "ENCODING", "i"]).await,
        "intset"
    );
    assert_eq!(q::<i64>(&mut c, &["SISMEMBER", "i", "70000"]).await, 1);
    assert_eq!(q::<i64>(&mut c, &["SISMEMBER", "i", "70001"]).await, 0);
    assert_eq!(q::<i64>(&mut c, &["SREM", "i", "3", "4"]).await, 1);

    let _: String = q(&mut c, &["DEBUG", "RELOAD"]).await;
    assert_eq!(
        q::<String>(&mut c, &["OBJECT", "ENCODING", "i"]).await,
        "intset"
    );
    let got: Vec<String> = q(&mut c, &["SMEMBERS", "i"]).await;
    assert_eq!(got, [min.as_str(), "-1", "7", "70000", max.as_str()]);
    let mut left: Vec<String> = got.clone();
    while q::<i64>(&mut c, &["SCARD", "i"]).await > 0 {
        let p: String = q(&mut c, &["SPOP", "i"]).await;
        let at = left.iter().position(|m| *m == p);
        assert!(at.is_some(), "popped {p} twice or from nowhere");
        left.retain(|m| *m != p);
    }
    assert!(left.is_empty());
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "i"]).await, 0);
}
