//! Keyspace notifications (`notify-keyspace-events`) through the real
//! server: every class, keyspace and keyevent channels, lazy and active
//! expiry, eviction, `new` and `keymiss`.

mod common;
use common::{resp, Raw, TestServer};
use std::time::Duration;

async fn cmd(c: &mut Raw, args: &[&str]) -> Vec<u8> {
    let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
    c.send(&resp(&a)).await;
    c.read_until(b"\r\n").await
}

async fn config(c: &mut Raw, flags: &str) {
    c.expect(
        &resp(&[
            b"CONFIG",
            b"SET",
            b"notify-keyspace-events",
            flags.as_bytes(),
        ]),
        b"+OK\r\n",
    )
    .await;
}

/// A subscriber to every channel (`PSUBSCRIBE *`).
async fn listener(srv: &TestServer) -> Raw {
    let mut s = srv.raw().await;
    s.expect(
        &resp(&[b"PSUBSCRIBE", b"*"]),
        b"*3\r\n$10\r\npsubscribe\r\n$1\r\n*\r\n:1\r\n",
    )
    .await;
    s
}

/// Reads pmessages until `n` arrived (or 3 s pass); returns (channel, message).
async fn events(s: &mut Raw, n: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while out.len() < n && tokio::time::Instant::now() < deadline {
        let more = s.read_exact_n(1).await;
        if more.is_empty() {
            break;
        }
        buf.extend(more);
        // Parse complete frames: *4 $8 pmessage $1 * $n chan $n msg
        loop {
            let text = String::from_utf8_lossy(&buf).into_owned();
            let lines: Vec<&str> = text.split("\r\n").collect();
            if lines.len() < 10 {
                break;
            }
            let frame_len: usize = lines[..9].iter().map(|l| l.len() + 2).sum();
            if buf.len() < frame_len {
                break;
            }
            out.push((lines[6].to_string(), lines[8].to_string()));
            buf.drain(..frame_len);
        }
    }
    out
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[tokio::test]
async fn keyspace_and_keyevent_channels() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    config(&mut c, "KEA").await;
    let mut s = listener(&srv).await;
    cmd(&mut c, &["SET", "foo", "bar"]).await;
    assert_eq!(
        events(&mut s, 2).await,
        pairs(&[("__keyspace@0__:foo", "set"), ("__keyevent@0__:set", "foo")])
    );
    // K only / E only; the database number is the client's.
    config(&mut c, "K$").await;
    cmd(&mut c, &["SELECT", "3"]).await;
    cmd(&mut c, &["SET", "k3", "v"]).await;
    config(&mut c, "E$").await;
    cmd(&mut c, &["APPEND", "k3", "x"]).await;
    assert_eq!(
        events(&mut s, 2).await,
        pairs(&[
            ("__keyspace@3__:k3", "set"),
            ("__keyevent@3__:append", "k3")
        ])
    );
    // Without K or E nothing is published; a class not enabled neither.
    config(&mut c, "A").await;
    cmd(&mut c, &["SET", "x", "1"]).await;
    config(&mut c, "El").await;
    cmd(&mut c, &["SET", "x", "2"]).await;
    cmd(&mut c, &["RPUSH", "l", "a"]).await;
    assert_eq!(
        events(&mut s, 1).await,
        pairs(&[("__keyevent@3__:rpush", "l")])
    );
}

#[tokio::test]
async fn every_class_emits_redis_event_names() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    config(&mut c, "EA").await;
    let mut s = listener(&srv).await;
    let script: &[&[&str]] = &[
        &["SET", "s", "1", "EX", "100"],
        &["INCRBY", "s", "2"],
        &["INCRBYFLOAT", "s", "1.5"],
        &["SETRANGE", "s", "0", "x"],
        &["PERSIST", "s"],
        &["EXPIRE", "s", "50"],
        &["RENAME", "s", "s2"],
        &["COPY", "s2", "s3"],
        &["MOVE", "s3", "1"],
        &["DEL", "s2"],
        &["LPUSH", "l", "a", "b", "c"],
        &["LSET", "l", "0", "z"],
        &["LINSERT", "l", "BEFORE", "z", "y"],
        &["LREM", "l", "1", "y"],
        &["LTRIM", "l", "0", "1"],
        &["LMOVE", "l", "l2", "LEFT", "RIGHT"],
        &["RPOP", "l"],
        &["HSET", "h", "f", "1"],
        &["HINCRBY", "h", "f", "1"],
        &["HINCRBYFLOAT", "h", "f", "1"],
        &["HDEL", "h", "f"],
        &["SADD", "st", "a", "b"],
        &["SREM", "st", "a"],
        &["SMOVE", "st", "st2", "b"],
        &["SUNIONSTORE", "st3", "st2"],
        &["SPOP", "st3"],
        &["ZADD", "z", "1", "a", "2", "b", "3", "c"],
        &["ZINCRBY", "z", "1", "a"],
        &["ZREM", "z", "a"],
        &["ZREMRANGEBYSCORE", "z", "0", "2"],
        &["ZUNIONSTORE", "z2", "1", "z"],
        &["ZPOPMIN", "z"],
        &["GETDEL", "z2"],
    ];
    for args in script {
        cmd(&mut c, args).await;
    }
    let want: &[(&str, &str)] = &[
        ("set", "s"),
        ("expire", "s"),
        ("incrby", "s"),
        ("incrbyfloat", "s"),
        ("setrange", "s"),
        ("persist", "s"),
        ("expire", "s"),
        ("rename_from", "s"),
        ("rename_to", "s2"),
        ("copy_to", "s3"),
        ("move_from", "s3"),
        ("move_to", "s3"),
        ("del", "s2"),
        ("lpush", "l"),
        ("lset", "l"),
        ("linsert", "l"),
        ("lrem", "l"),
        ("ltrim", "l"),
        ("rpush", "l2"),
        ("lpop", "l"),
        ("rpop", "l"),
        ("del", "l"),
        ("hset", "h"),
        ("hincrby", "h"),
        ("hincrbyfloat", "h"),
        ("hdel", "h"),
        ("del", "h"),
        ("sadd", "st"),
        ("srem", "st"),
        ("srem", "st"),
        ("del", "st"),
        ("sadd", "st2"),
        ("sunionstore", "st3"),
        ("spop", "st3"),
        ("del", "st3"),
        ("zadd", "z"),
        ("zincr", "z"),
        ("zrem", "z"),
        ("zremrangebyscore", "z"),
        ("zunionstore", "z2"),
        ("zpopmin", "z"),
        ("del", "z"),
    ];
    let got = events(&mut s, want.len() + 1).await;
    let got: Vec<(String, String)> = got
        .into_iter()
        .map(|(ch, key)| {
            let ev = ch.rsplit(':').next().unwrap_or_default().to_string();
            (ev, key)
        })
        .collect();
    let mut want = pairs(want);
    // move_to goes to database 1's channel; GETDEL of a zset is WRONGTYPE.
    assert_eq!(got, std::mem::take(&mut want));
}

#[tokio::test]
async fn expired_events_lazy_and_active() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    config(&mut c, "Ex").await;
    let mut s = listener(&srv).await;
    // Lazy: active expiry off, the key is found expired by a read.
    cmd(&mut c, &["DEBUG", "SET-ACTIVE-EXPIRE", "0"]).await;
    cmd(&mut c, &["SET", "lazy", "v", "PX", "20"]).await;
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(cmd(&mut c, &["GET", "lazy"]).await, b"$-1\r\n");
    assert_eq!(
        events(&mut s, 1).await,
        pairs(&[("__keyevent@0__:expired", "lazy")])
    );
    // Active: nobody touches the key.
    cmd(&mut c, &["DEBUG", "SET-ACTIVE-EXPIRE", "1"]).await;
    cmd(&mut c, &["SET", "active", "v", "PX", "20"]).await;
    assert_eq!(
        events(&mut s, 1).await,
        pairs(&[("__keyevent@0__:expired", "active")])
    );
}

#[tokio::test]
async fn evicted_new_and_keymiss_events() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    config(&mut c, "Eenm").await;
    let mut s = listener(&srv).await;
    cmd(&mut c, &["SET", "fresh", "1"]).await;
    cmd(&mut c, &["SET", "fresh", "2"]).await; // overwrite: no `new`
    cmd(&mut c, &["GET", "nothere"]).await;
    assert_eq!(
        events(&mut s, 2).await,
        pairs(&[
            ("__keyevent@0__:new", "fresh"),
            ("__keyevent@0__:keymiss", "nothere")
        ])
    );
    // Evicted: fill, then lower maxmemory under allkeys-random.
    config(&mut c, "Ee").await;
    // Only the k* keys remain, so any random eviction names one of them.
    cmd(&mut c, &["DEL", "fresh"]).await;
    let big = "x".repeat(10_000);
    for i in 0..200 {
        cmd(&mut c, &["SET", &format!("k{i}"), &big]).await;
    }
    cmd(
        &mut c,
        &["CONFIG", "SET", "maxmemory-policy", "allkeys-random"],
    )
    .await;
    c.send(&resp(&[b"INFO", b"memory"])).await;
    let info = String::from_utf8_lossy(&c.read_until(b"\r\n\r\n").await).into_owned();
    let used: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory");
    let max = (used - 500_000).to_string();
    cmd(&mut c, &["CONFIG", "SET", "maxmemory", &max]).await;
    cmd(&mut c, &["SET", "trigger", "1"]).await;
    let got = events(&mut s, 1).await;
    assert!(!got.is_empty(), "no evicted event");
    assert_eq!(got[0].0, "__keyevent@0__:evicted");
    assert!(got[0].1.starts_with('k'), "{got:?}");
    cmd(&mut c, &["CONFIG", "SET", "maxmemory", "0"]).await;
}
