//! MIGRATE between two real servers: moving and copying keys with their
//! TTLs, REPLACE and the target's BUSYKEY, AUTH / AUTH2, the KEYS form (only
//! acknowledged keys are deleted), the connection cache, and the IOERR
//! replies for an unreachable or stalled target. Replies are Redis 7.0's.

mod common;

use common::{info_field, resp, TestServer};

fn port(s: &TestServer) -> String {
    s.addr.port().to_string()
}

/// `MIGRATE 127.0.0.1 <port> <key> <db> <timeout> <rest...>` as RESP.
fn migrate(port: &str, key: &[u8], db: &[u8], timeout: &[u8], rest: &[&[u8]]) -> Vec<u8> {
    let mut v: Vec<&[u8]> = vec![b"MIGRATE", b"127.0.0.1", port.as_bytes(), key, db, timeout];
    v.extend_from_slice(rest);
    resp(&v)
}

/// A TCP port nothing listens on (bound once, then released).
fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let p = l.local_addr().expect("addr").port();
    drop(l);
    p.to_string()
}

#[tokio::test]
async fn migrate_moves_and_copies_keys_with_their_ttl() {
    let src = TestServer::start();
    let dst = TestServer::start();
    let (mut a, mut b) = (src.raw().await, dst.raw().await);
    let mut info = src.conn().await;
    let p = port(&dst);
    assert_eq!(
        info_field(&mut info, "stats", "migrate_cached_sockets").await,
        "0"
    );
    a.expect(&resp(&[b"SET", b"key", b"Some Value"]), b"+OK\r\n")
        .await;
    a.expect(&resp(&[b"EXPIRE", b"key", b"100"]), b":1\r\n")
        .await;
    a.expect(&migrate(&p, b"key", b"9", b"5000", &[]), b"+OK\r\n")
        .await;
    assert_eq!(
        info_field(&mut info, "stats", "migrate_cached_sockets").await,
        "1"
    );
    a.expect(&resp(&[b"EXISTS", b"key"]), b":0\r\n").await;
    b.expect(&resp(&[b"SELECT", b"9"]), b"+OK\r\n").await;
    b.expect(&resp(&[b"GET", b"key"]), b"$10\r\nSome Value\r\n")
        .await;
    b.send(&resp(&[b"TTL", b"key"])).await;
    let ttl = String::from_utf8(b.read_until(b"\r\n").await).unwrap();
    let ttl: i64 = ttl.trim_start_matches(':').trim().parse().unwrap();
    assert!((95..=100).contains(&ttl), "{ttl}");

    // COPY keeps the local key; without REPLACE the target's key wins.
    a.expect(&resp(&[b"RPUSH", b"list", b"a", b"b", b"c"]), b":3\r\n")
        .await;
    b.expect(&resp(&[b"SET", b"list", b"somevalue"]), b"+OK\r\n")
        .await;
    let copy = |extra: &[&[u8]]| migrate(&p, b"list", b"9", b"5000", extra);
    a.expect(
        &copy(&[b"COPY"]),
        b"-ERR Target instance replied with error: BUSYKEY Target key name already exists.\r\n",
    )
    .await;
    a.expect(&copy(&[b"COPY", b"REPLACE"]), b"+OK\r\n").await;
    a.expect(&resp(&[b"LLEN", b"list"]), b":3\r\n").await;
    b.expect(
        &resp(&[b"LRANGE", b"list", b"0", b"-1"]),
        b"*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n",
    )
    .await;
    b.expect(&resp(&[b"TTL", b"list"]), b":-1\r\n").await;

    // Nothing to move, options and argument errors.
    a.expect(&migrate(&p, b"nokey", b"9", b"5000", &[]), b"+NOKEY\r\n")
        .await;
    a.expect(&copy(&[b"BOGUS"]), b"-ERR syntax error\r\n").await;
    a.expect(
        &copy(&[b"KEYS", b"a"]),
        b"-ERR When using MIGRATE KEYS option, the key argument must be set to the empty string\r\n",
    )
    .await;
    a.expect(
        &migrate(&p, b"list", b"x", b"5000", &[]),
        b"-ERR value is not an integer or out of range\r\n",
    )
    .await;
    a.expect(
        &resp(&[
            b"COMMAND", b"GETKEYS", b"MIGRATE", b"h", b"1", b"", b"0", b"5", b"AUTH", b"KEYS",
            b"KEYS", b"k1", b"k2",
        ]),
        b"*2\r\n$2\r\nk1\r\n$2\r\nk2\r\n",
    )
    .await;
}

#[tokio::test]
async fn migrate_keys_form_deletes_only_acknowledged_keys() {
    let src = TestServer::start();
    let dst = TestServer::start();
    let (mut a, mut b) = (src.raw().await, dst.raw().await);
    let p = port(&dst);
    let keys = |ks: &[&[u8]]| {
        let mut rest: Vec<&[u8]> = vec![b"KEYS"];
        rest.extend_from_slice(ks);
        migrate(&p, b"", b"0", b"5000", &rest)
    };
    a.expect(&keys(&[b"nokey-1", b"nokey-2"]), b"+NOKEY\r\n")
        .await;
    a.expect(
        &resp(&[b"MSET", b"a", b"1", b"b", b"2", b"c", b"3", b"d", b"4"]),
        b"+OK\r\n",
    )
    .await;
    // Two keys busy on the target: the others move, those two stay.
    b.expect(&resp(&[b"MSET", b"c", b"_", b"d", b"_"]), b"+OK\r\n")
        .await;
    a.expect(
        &keys(&[b"a", b"nokey", b"b", b"c", b"d"]),
        b"-ERR Target instance replied with error: BUSYKEY Target key name already exists.\r\n",
    )
    .await;
    a.expect(&resp(&[b"DBSIZE"]), b":2\r\n").await;
    a.expect(&resp(&[b"EXISTS", b"c", b"d"]), b":2\r\n").await;
    b.expect(
        &resp(&[b"MGET", b"a", b"b", b"c"]),
        b"*3\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n_\r\n",
    )
    .await;
    // After an error the next MIGRATE selects the database again.
    a.expect(
        &keys(&[b"c", b"d"]),
        b"-ERR Target instance replied with error: BUSYKEY Target key name already exists.\r\n",
    )
    .await;
    a.expect(
        &migrate(&p, b"", b"0", b"5000", &[b"REPLACE", b"KEYS", b"c", b"d"]),
        b"+OK\r\n",
    )
    .await;
    a.expect(&resp(&[b"DBSIZE"]), b":0\r\n").await;
    b.expect(
        &resp(&[b"MGET", b"c", b"d"]),
        b"*2\r\n$1\r\n3\r\n$1\r\n4\r\n",
    )
    .await;
}

#[tokio::test]
async fn migrate_auth_and_target_errors() {
    let src = TestServer::start();
    let dst = TestServer::start_with(&["--requirepass", "foobar"]);
    let mut a = src.raw().await;
    let p = port(&dst);
    a.expect(&resp(&[b"RPUSH", b"list", b"a", b"b"]), b":2\r\n")
        .await;
    let m = |extra: &[&[u8]]| {
        let mut rest: Vec<&[u8]> = vec![b"COPY"];
        rest.extend_from_slice(extra);
        migrate(&p, b"list", b"0", b"5000", &rest)
    };
    a.expect(
        &m(&[]),
        b"-ERR Target instance replied with error: NOAUTH Authentication required.\r\n",
    )
    .await;
    a.expect(
        &m(&[b"AUTH", b"wrong"]),
        b"-ERR Target instance replied with error: WRONGPASS invalid username-password pair or user is disabled.\r\n",
    )
    .await;
    a.expect(&m(&[b"AUTH", b"foobar"]), b"+OK\r\n").await;
    a.expect(
        &m(&[b"REPLACE", b"AUTH2", b"default", b"foobar"]),
        b"+OK\r\n",
    )
    .await;
    let mut b = dst.raw().await;
    b.expect(&resp(&[b"AUTH", b"foobar"]), b"+OK\r\n").await;
    b.expect(&resp(&[b"LLEN", b"list"]), b":2\r\n").await;

    // An unreachable target, and one that does not answer in time.
    let closed = closed_port();
    a.expect(
        &migrate(&closed, b"list", b"0", b"500", &[]),
        b"-IOERR error or timeout connecting to the client\r\n",
    )
    .await;
    // A listener that never answers (the kernel completes the handshake).
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let sp = silent.local_addr().expect("addr").port().to_string();
    a.expect(
        &migrate(&sp, b"list", b"0", b"300", &[b"COPY"]),
        b"-IOERR error or timeout reading to target instance\r\n",
    )
    .await;
    // The key is still here, and the server still answers.
    a.expect(&resp(&[b"LLEN", b"list"]), b":2\r\n").await;
}
