//! Raw-TCP protocol tests: exact bytes, inline commands, pipelining, limits,
//! malformed input, RESP3.

mod common;
use common::{resp, TestServer};

#[tokio::test]
async fn inline_commands_and_exact_replies() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    c.expect(b"PING\r\n", b"+PONG\r\n").await;
    c.expect(b"ping hello\n", b"$5\r\nhello\r\n").await;
    c.expect(b"set k \"a b\"\r\n", b"+OK\r\n").await;
    c.expect(b"GET k\r\n", b"$3\r\na b\r\n").await;
    c.expect(b"GET missing\r\n", b"$-1\r\n").await;
    c.expect(b"\r\n\r\nPING\r\n", b"+PONG\r\n").await;
    c.expect(&resp(&[b"INCR", b"n"]), b":1\r\n").await;
}

#[tokio::test]
async fn exact_error_texts() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    c.expect(
        &resp(&[b"GET"]),
        b"-ERR wrong number of arguments for 'get' command\r\n",
    )
    .await;
    c.expect(
        &resp(&[b"NOSUCH", b"a", b"b"]),
        b"-ERR unknown command 'NOSUCH', with args beginning with: 'a' 'b' \r\n",
    )
    .await;
    c.expect(
        &resp(&[b"CONFIG", b"NOPE"]),
        b"-ERR unknown subcommand 'NOPE'. Try CONFIG HELP.\r\n",
    )
    .await;
    c.expect(
        &resp(&[b"CONFIG", b"GET"]),
        b"-ERR wrong number of arguments for 'config|get' command\r\n",
    )
    .await;
    // A subcommand's full name is not a command name (as in Redis).
    c.expect(
        &resp(&[b"CONFIG|GET", b"x"]),
        b"-ERR unknown command 'CONFIG|GET', with args beginning with: 'x' \r\n",
    )
    .await;
    c.expect(
        &resp(&[b"LPUSH_NOT_YET"]),
        b"-ERR unknown command 'LPUSH_NOT_YET', with args beginning with: \r\n",
    )
    .await;
    c.expect(&resp(&[b"SET", b"s", b"x"]), b"+OK\r\n").await;
    c.expect(
        &resp(&[b"INCR", b"s"]),
        b"-ERR value is not an integer or out of range\r\n",
    )
    .await;
    c.expect(
        &resp(&[b"SET", b"k", b"v", b"EX", b"0"]),
        b"-ERR invalid expire time in 'set' command\r\n",
    )
    .await;
    c.expect(
        &resp(&[b"SET", b"k", b"v", b"NX", b"XX"]),
        b"-ERR syntax error\r\n",
    )
    .await;
    c.expect(
        &resp(&[b"SELECT", b"99"]),
        b"-ERR DB index is out of range\r\n",
    )
    .await;
}

/// Command names are case-insensitive and resolved per command, also when
/// a pipeline repeats one name and then changes it by case, by length, to
/// a command with subcommands, or to an unknown one.
#[tokio::test]
async fn pipelined_command_names_resolve_each_time() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    let mut batch = Vec::new();
    for cmd in [
        &[&b"SET"[..], b"k", b"v"][..],
        &[b"set", b"k", b"w"],
        &[b"GET", b"k"],
        &[b"get", b"k"],
        &[b"GeT", b"k"],
        &[b"GETDEL", b"k"],
        &[b"GET", b"k"],
        &[b"GE", b"k"],
        &[b"GET", b"k", b"extra"],
        &[b"CONFIG", b"GET", b"maxmemory"],
        &[b"CONFIG", b"NOSUCH"],
        &[b"config", b"get", b"maxmemory"],
        &[b"GETX", b"k"],
        &[b"PING"],
    ] {
        batch.extend_from_slice(&resp(cmd));
    }
    c.send(&batch).await;
    let want: &[u8] = b"+OK\r\n+OK\r\n$1\r\nw\r\n$1\r\nw\r\n$1\r\nw\r\n$1\r\nw\r\n$-1\r\n\
-ERR unknown command 'GE', with args beginning with: 'k' \r\n\
-ERR wrong number of arguments for 'get' command\r\n\
*2\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n\
-ERR unknown subcommand 'NOSUCH'. Try CONFIG HELP.\r\n\
*2\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n\
-ERR unknown command 'GETX', with args beginning with: 'k' \r\n+PONG\r\n";
    let got = c.read_exact_n(want.len()).await;
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
}

#[tokio::test]
async fn pipeline_of_ten_thousand_commands() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    let mut batch = Vec::new();
    for i in 0..10_000 {
        batch.extend_from_slice(&resp(&[b"INCR", b"counter"]));
        if i % 1000 == 0 {
            batch.extend_from_slice(b"PING\r\n");
        }
    }
    c.send(&batch).await;
    let mut want = Vec::new();
    for i in 1..=10_000 {
        want.extend_from_slice(format!(":{i}\r\n").as_bytes());
        if (i - 1) % 1000 == 0 {
            want.extend_from_slice(b"+PONG\r\n");
        }
    }
    let got = c.read_exact_n(want.len()).await;
    assert_eq!(got.len(), want.len());
    assert!(got == want, "pipelined replies out of order or wrong");
}

#[tokio::test]
async fn protocol_errors_reply_and_close() {
    let srv = TestServer::start();
    let cases: &[(&[u8], &[u8])] = &[
        (
            b"*2\r\n+foo\r\n",
            b"-ERR Protocol error: expected '$', got '+'\r\n",
        ),
        (
            b"*abc\r\n",
            b"-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1\r\n$-3\r\n",
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$600000000\r\n",
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*3000000000\r\n",
            b"-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"set \"a\r\n",
            b"-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
    ];
    for (input, want) in cases {
        let mut c = srv.raw().await;
        c.expect(input, want).await;
        assert!(
            c.is_closed().await,
            "connection kept open after {:?}",
            String::from_utf8_lossy(input)
        );
    }
    // The server is still healthy.
    let mut c = srv.raw().await;
    c.expect(b"PING\r\n", b"+PONG\r\n").await;
}

#[tokio::test]
async fn oversized_inline_and_header_lines_are_refused() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    let big = vec![b'a'; 70 * 1024];
    c.expect(&big, b"-ERR Protocol error: too big inline request\r\n")
        .await;
    assert!(c.is_closed().await);
    let mut c = srv.raw().await;
    let mut big = b"*1\r\n$".to_vec();
    big.extend(vec![b'9'; 70 * 1024]);
    c.expect(&big, b"-ERR Protocol error: too big bulk count string\r\n")
        .await;
    assert!(c.is_closed().await);
}

#[tokio::test]
async fn proto_max_bulk_len_is_configurable() {
    let srv = TestServer::start_with(&["--proto-max-bulk-len", "1mb"]);
    let mut c = srv.raw().await;
    c.expect(
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2000000\r\n",
        b"-ERR Protocol error: invalid bulk length\r\n",
    )
    .await;
    assert!(c.is_closed().await);
}

#[tokio::test]
async fn query_buffer_limit_closes_the_connection() {
    let srv = TestServer::start_with(&["--client-query-buffer-limit", "1mb"]);
    let mut c = srv.raw().await;
    // A bulk announced at 4 MB: accepted by proto-max-bulk-len, but the
    // buffered query exceeds the 1 MB query buffer limit.
    c.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4000000\r\n").await;
    let chunk = vec![b'x'; 256 * 1024];
    let mut closed = false;
    for _ in 0..16 {
        if tokio::io::AsyncWriteExt::write_all(&mut c.s, &chunk)
            .await
            .is_err()
        {
            closed = true;
            break;
        }
    }
    assert!(closed || c.is_closed().await);
    let mut c2 = srv.raw().await;
    c2.expect(b"PING\r\n", b"+PONG\r\n").await;
}

#[tokio::test]
async fn unauthenticated_clients_get_small_limits() {
    let srv = TestServer::start_with(&["--requirepass", "secret"]);
    let mut c = srv.raw().await;
    c.expect(b"GET k\r\n", b"-NOAUTH Authentication required.\r\n")
        .await;
    c.expect(
        b"*20\r\n",
        b"-ERR Protocol error: unauthenticated multibulk length\r\n",
    )
    .await;
    assert!(c.is_closed().await);
    let mut c = srv.raw().await;
    c.expect(
        b"*2\r\n$4\r\nAUTH\r\n$100000\r\n",
        b"-ERR Protocol error: unauthenticated bulk length\r\n",
    )
    .await;
    let mut c = srv.raw().await;
    c.expect(
        b"AUTH wrong\r\n",
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
    )
    .await;
    c.expect(b"AUTH secret\r\n", b"+OK\r\n").await;
    c.expect(b"*20\r\n", b"").await;
}

#[tokio::test]
async fn resp3_types_via_hello() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    c.send(&resp(&[b"HELLO", b"3"])).await;
    c.send(b"PING\r\n").await;
    let hello = c.read_until(b"+PONG\r\n").await;
    let text = String::from_utf8_lossy(&hello);
    assert!(
        text.starts_with("%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n"),
        "{text}"
    );
    assert!(text.contains("$5\r\nproto\r\n:3\r\n"), "{text}");
    c.expect(&resp(&[b"GET", b"nokey"]), b"_\r\n").await;
    c.expect(&resp(&[b"SET", b"f", b"1.5"]), b"+OK\r\n").await;
    c.expect(&resp(&[b"INCRBYFLOAT", b"f", b"0.25"]), b"$4\r\n1.75\r\n")
        .await;
    c.expect(
        &resp(&[b"CONFIG", b"GET", b"maxmemory"]),
        b"%1\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n",
    )
    .await;
    c.expect(
        &resp(&[b"HELLO", b"4"]),
        b"-NOPROTO unsupported protocol version\r\n",
    )
    .await;
    c.expect(&resp(&[b"HELLO", b"2"]), b"*14\r\n").await;
}

#[tokio::test]
async fn random_bytes_never_kill_the_server() {
    let srv = TestServer::start();
    let mut seed: u64 = 0x9E3779B97F4A7C15;
    for _ in 0..30 {
        let mut c = srv.raw().await;
        let mut junk = Vec::new();
        for _ in 0..2000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let b = match seed % 8 {
                0 => b'*',
                1 => b'$',
                2 => b'\r',
                3 => b'\n',
                4 => b'0' + (seed >> 8) as u8 % 10,
                _ => (seed >> 16) as u8,
            };
            junk.push(b);
        }
        let _ = tokio::io::AsyncWriteExt::write_all(&mut c.s, &junk).await;
        drop(c);
    }
    let mut c = srv.raw().await;
    c.expect(b"PING\r\n", b"+PONG\r\n").await;
}
