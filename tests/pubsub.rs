//! Pub/Sub through the real server, raw TCP for exact bytes (RESP2 and
//! RESP3): confirmations, message/pmessage/smessage frames, PUBSUB
//! introspection, subscribed-mode restrictions, output buffer limits.

mod common;
use common::{resp, Raw, TestServer};
use std::time::{Duration, Instant};

/// A RESP2 array (`*`) or RESP3 push (`>`) frame of bulks / ints.
enum P<'a> {
    B(&'a [u8]),
    I(i64),
    Nil,
}

fn frame(push: bool, parts: &[P<'_>]) -> Vec<u8> {
    let mut v = format!("{}{}\r\n", if push { '>' } else { '*' }, parts.len()).into_bytes();
    for p in parts {
        match p {
            P::B(b) => {
                v.extend_from_slice(format!("${}\r\n", b.len()).as_bytes());
                v.extend_from_slice(b);
                v.extend_from_slice(b"\r\n");
            }
            P::I(n) => v.extend_from_slice(format!(":{n}\r\n").as_bytes()),
            P::Nil => v.extend_from_slice(if push { b"_\r\n" } else { b"$-1\r\n" }),
        }
    }
    v
}

fn conf(kind: &str, ch: &[u8], n: i64) -> Vec<u8> {
    frame(false, &[P::B(kind.as_bytes()), P::B(ch), P::I(n)])
}

async fn int_reply(c: &mut Raw, cmd: &[&[u8]]) -> i64 {
    c.send(&resp(cmd)).await;
    let r = c.read_until(b"\r\n").await;
    let s = String::from_utf8_lossy(&r);
    s.trim()
        .trim_start_matches(':')
        .parse()
        .unwrap_or_else(|_| panic!("not an int: {s:?}"))
}

#[tokio::test]
async fn subscribe_unsubscribe_shapes_resp2() {
    let srv = TestServer::start();
    let mut s = srv.raw().await;
    let mut p = srv.raw().await;
    let mut want = conf("subscribe", b"a", 1);
    want.extend(conf("subscribe", b"b", 2));
    s.expect(&resp(&[b"SUBSCRIBE", b"a", b"b"]), &want).await;
    // Subscribing twice does not count twice.
    s.expect(&resp(&[b"SUBSCRIBE", b"a"]), &conf("subscribe", b"a", 2))
        .await;
    p.expect(&resp(&[b"PUBLISH", b"a", b"hello"]), b":1\r\n")
        .await;
    p.expect(&resp(&[b"PUBLISH", b"nobody", b"x"]), b":0\r\n")
        .await;
    let msg = frame(false, &[P::B(b"message"), P::B(b"a"), P::B(b"hello")]);
    assert_eq!(s.read_exact_n(msg.len()).await, msg);
    s.expect(
        &resp(&[b"UNSUBSCRIBE", b"a", b"zz"]),
        &[conf("unsubscribe", b"a", 1), conf("unsubscribe", b"zz", 1)].concat(),
    )
    .await;
    s.expect(&resp(&[b"UNSUBSCRIBE"]), &conf("unsubscribe", b"b", 0))
        .await;
    // Nothing left: one confirmation with a null channel.
    s.expect(
        &resp(&[b"UNSUBSCRIBE"]),
        &frame(false, &[P::B(b"unsubscribe"), P::Nil, P::I(0)]),
    )
    .await;
    // Out of subscribed mode: normal commands work again.
    s.expect(b"PING\r\n", b"+PONG\r\n").await;
    p.expect(&resp(&[b"PUBLISH", b"a", b"hello"]), b":0\r\n")
        .await;
}

#[tokio::test]
async fn patterns_and_counts() {
    let srv = TestServer::start();
    let mut s = srv.raw().await;
    let mut p = srv.raw().await;
    s.expect(
        &resp(&[b"SUBSCRIBE", b"news.it"]),
        &conf("subscribe", b"news.it", 1),
    )
    .await;
    s.expect(
        &resp(&[b"PSUBSCRIBE", b"news.*", b"n?ws.it"]),
        &[
            conf("psubscribe", b"news.*", 2),
            conf("psubscribe", b"n?ws.it", 3),
        ]
        .concat(),
    )
    .await;
    // One channel subscriber + two matching patterns.
    p.expect(&resp(&[b"PUBLISH", b"news.it", b"m"]), b":3\r\n")
        .await;
    let got = s.read_exact_n(200).await;
    let m = frame(false, &[P::B(b"message"), P::B(b"news.it"), P::B(b"m")]);
    assert!(got.starts_with(&m), "{}", String::from_utf8_lossy(&got));
    for pat in [&b"news.*"[..], b"n?ws.it"] {
        let pm = frame(
            false,
            &[P::B(b"pmessage"), P::B(pat), P::B(b"news.it"), P::B(b"m")],
        );
        assert!(
            got.windows(pm.len()).any(|w| w == pm),
            "{}",
            String::from_utf8_lossy(&got)
        );
    }
    p.expect(&resp(&[b"PUBSUB", b"NUMPAT"]), b":2\r\n").await;
    s.expect(
        &resp(&[b"PUNSUBSCRIBE", b"news.*"]),
        &conf("punsubscribe", b"news.*", 2),
    )
    .await;
    s.expect(
        &resp(&[b"PUNSUBSCRIBE"]),
        &conf("punsubscribe", b"n?ws.it", 1),
    )
    .await;
    s.expect(
        &resp(&[b"PUNSUBSCRIBE"]),
        &frame(false, &[P::B(b"punsubscribe"), P::Nil, P::I(1)]),
    )
    .await;
    p.expect(&resp(&[b"PUBSUB", b"NUMPAT"]), b":0\r\n").await;
    p.expect(&resp(&[b"PUBLISH", b"news.it", b"m"]), b":1\r\n")
        .await;
}

#[tokio::test]
async fn pubsub_introspection_and_info() {
    let srv = TestServer::start();
    let mut s1 = srv.raw().await;
    let mut s2 = srv.raw().await;
    let mut c = srv.raw().await;
    s1.expect(
        &resp(&[b"SUBSCRIBE", b"abc"]),
        &conf("subscribe", b"abc", 1),
    )
    .await;
    s2.expect(
        &resp(&[b"SUBSCRIBE", b"abc", b"xyz"]),
        &[conf("subscribe", b"abc", 1), conf("subscribe", b"xyz", 2)].concat(),
    )
    .await;
    s2.expect(
        &resp(&[b"PSUBSCRIBE", b"a*"]),
        &conf("psubscribe", b"a*", 3),
    )
    .await;
    c.expect(
        &resp(&[b"PUBSUB", b"NUMSUB", b"abc", b"xyz", b"none"]),
        b"*6\r\n$3\r\nabc\r\n:2\r\n$3\r\nxyz\r\n:1\r\n$4\r\nnone\r\n:0\r\n",
    )
    .await;
    c.expect(&resp(&[b"PUBSUB", b"NUMSUB"]), b"*0\r\n").await;
    c.expect(
        &resp(&[b"PUBSUB", b"CHANNELS", b"x*"]),
        b"*1\r\n$3\r\nxyz\r\n",
    )
    .await;
    c.send(&resp(&[b"PUBSUB", b"CHANNELS"])).await;
    let all = c
        .read_exact_n(b"*2\r\n$3\r\nabc\r\n$3\r\nxyz\r\n".len())
        .await;
    assert!(all.starts_with(b"*2\r\n"));
    c.expect(
        &resp(&[b"PUBSUB", b"CHANNELS", b"a", b"b"]),
        b"-ERR unknown subcommand or wrong number of arguments for 'CHANNELS'. Try PUBSUB HELP.\r\n",
    )
    .await;
    c.send(&resp(&[b"INFO", b"stats"])).await;
    let info = String::from_utf8_lossy(&c.read_until(b"\r\n\r\n").await).into_owned();
    let info = if info.contains("reply_buffer_expands") {
        info
    } else {
        let more = c.read_until(b"reply_buffer_expands:0\r\n\r\n").await;
        info + &String::from_utf8_lossy(&more)
    };
    assert!(info.contains("pubsub_channels:2\r\n"), "{info}");
    assert!(info.contains("pubsub_patterns:1\r\n"), "{info}");
    c.send(&resp(&[b"CLIENT", b"LIST"])).await;
    let list = String::from_utf8_lossy(&c.read_until(b"\n\r\n").await).into_owned();
    assert!(list.contains("flags=P db=0 sub=2 psub=1 ssub=0"), "{list}");
    c.send(&resp(&[b"CLIENT", b"LIST", b"TYPE", b"pubsub"]))
        .await;
    let list = String::from_utf8_lossy(&c.read_until(b"\n\r\n").await).into_owned();
    assert_eq!(list.matches("id=").count(), 2, "{list}");
    c.send(&resp(&[b"CLIENT", b"LIST", b"TYPE", b"normal"]))
        .await;
    let list = String::from_utf8_lossy(&c.read_until(b"\n\r\n").await).into_owned();
    assert_eq!(list.matches("id=").count(), 1, "{list}");
    assert!(list.contains("cmd=client|list"), "{list}");
    // Shard channels are a separate namespace.
    s1.expect(
        &resp(&[b"SSUBSCRIBE", b"sc"]),
        &conf("ssubscribe", b"sc", 1),
    )
    .await;
    c.expect(&resp(&[b"PUBSUB", b"SHARDCHANNELS"]), b"*1\r\n$2\r\nsc\r\n")
        .await;
    c.expect(
        &resp(&[b"PUBSUB", b"SHARDNUMSUB", b"sc", b"abc"]),
        b"*4\r\n$2\r\nsc\r\n:1\r\n$3\r\nabc\r\n:0\r\n",
    )
    .await;
    c.expect(&resp(&[b"SPUBLISH", b"abc", b"x"]), b":0\r\n")
        .await;
    c.expect(&resp(&[b"SPUBLISH", b"sc", b"hi"]), b":1\r\n")
        .await;
    let sm = frame(false, &[P::B(b"smessage"), P::B(b"sc"), P::B(b"hi")]);
    assert_eq!(s1.read_exact_n(sm.len()).await, sm);
    s1.expect(&resp(&[b"SUNSUBSCRIBE"]), &conf("sunsubscribe", b"sc", 0))
        .await;
    // Disconnecting drops every subscription.
    drop(s2);
    let t = Instant::now();
    loop {
        c.send(&resp(&[b"PUBSUB", b"NUMSUB", b"xyz"])).await;
        let r = c.read_exact_n(b"*2\r\n$3\r\nxyz\r\n:0\r\n".len()).await;
        if r.ends_with(b"$3\r\nxyz\r\n:0\r\n") {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "subscriptions kept");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.expect(&resp(&[b"PUBSUB", b"NUMPAT"]), b":0\r\n").await;
}

#[tokio::test]
async fn resp2_subscribed_mode_restrictions() {
    let srv = TestServer::start();
    let mut s = srv.raw().await;
    s.expect(&resp(&[b"SUBSCRIBE", b"a"]), &conf("subscribe", b"a", 1))
        .await;
    s.expect(
        &resp(&[b"GET", b"k"]),
        b"-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n",
    )
    .await;
    s.expect(
        &resp(&[b"CLIENT", b"ID"]),
        b"-ERR Can't execute 'client|id': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n",
    )
    .await;
    s.expect(b"PING\r\n", b"*2\r\n$4\r\npong\r\n$0\r\n\r\n")
        .await;
    s.expect(
        &resp(&[b"PING", b"hi"]),
        b"*2\r\n$4\r\npong\r\n$2\r\nhi\r\n",
    )
    .await;
    // RESET leaves subscribed mode.
    s.expect(b"RESET\r\n", b"+RESET\r\n").await;
    s.expect(b"PING\r\n", b"+PONG\r\n").await;
    s.expect(
        &resp(&[b"PUBSUB", b"NUMSUB", b"a"]),
        b"*2\r\n$1\r\na\r\n:0\r\n",
    )
    .await;
    s.expect(&resp(&[b"SUBSCRIBE", b"a"]), &conf("subscribe", b"a", 1))
        .await;
    s.expect(b"QUIT\r\n", b"+OK\r\n").await;
    assert!(s.is_closed().await);
}

#[tokio::test]
async fn resp3_push_while_issuing_commands() {
    let srv = TestServer::start();
    let mut s = srv.raw().await;
    let mut p = srv.raw().await;
    s.send(&resp(&[b"HELLO", b"3"])).await;
    s.read_until(b"modules\r\n*0\r\n").await;
    s.expect(
        &resp(&[b"SUBSCRIBE", b"ch"]),
        &frame(true, &[P::B(b"subscribe"), P::B(b"ch"), P::I(1)]),
    )
    .await;
    // Commands keep working in RESP3.
    s.expect(&resp(&[b"SET", b"k", b"v"]), b"+OK\r\n").await;
    s.expect(&resp(&[b"GET", b"k"]), b"$1\r\nv\r\n").await;
    s.expect(b"PING\r\n", b"+PONG\r\n").await;
    // A message published by another client arrives while idle.
    p.expect(&resp(&[b"PUBLISH", b"ch", b"m1"]), b":1\r\n")
        .await;
    let m1 = frame(true, &[P::B(b"message"), P::B(b"ch"), P::B(b"m1")]);
    assert_eq!(s.read_exact_n(m1.len()).await, m1);
    // Publishing to itself: the push precedes the reply.
    let m2 = frame(true, &[P::B(b"message"), P::B(b"ch"), P::B(b"m2")]);
    s.expect(
        &resp(&[b"PUBLISH", b"ch", b"m2"]),
        &[m2, b":1\r\n".to_vec()].concat(),
    )
    .await;
    s.expect(
        &resp(&[b"UNSUBSCRIBE"]),
        &frame(true, &[P::B(b"unsubscribe"), P::B(b"ch"), P::I(0)]),
    )
    .await;
    s.expect(
        &resp(&[b"UNSUBSCRIBE"]),
        &frame(true, &[P::B(b"unsubscribe"), P::Nil, P::I(0)]),
    )
    .await;
}

#[tokio::test]
async fn slow_subscriber_is_disconnected_at_the_obuf_limit() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    c.expect(
        &resp(&[
            b"CONFIG",
            b"SET",
            b"client-output-buffer-limit",
            b"pubsub 1mb 512kb 1",
        ]),
        b"+OK\r\n",
    )
    .await;
    // A subscriber that never reads.
    let mut s = srv.raw().await;
    s.expect(
        &resp(&[b"SUBSCRIBE", b"big"]),
        &conf("subscribe", b"big", 1),
    )
    .await;
    let payload = vec![b'x'; 100 * 1024];
    let cmd = resp(&[b"PUBLISH", b"big", &payload]);
    let t = Instant::now();
    let mut published = 0usize;
    loop {
        c.send(&cmd).await;
        let r = c.read_until(b"\r\n").await;
        published += 1;
        if r == b":0\r\n" {
            break; // the subscriber is gone
        }
        assert!(
            t.elapsed() < Duration::from_secs(20) && published < 2000,
            "slow subscriber never disconnected ({published} messages)"
        );
    }
    // Memory stayed bounded: well under what was published, and the
    // connection is closed with its subscriptions cleaned.
    assert!(published * payload.len() > 1024 * 1024);
    c.expect(
        &resp(&[b"PUBSUB", b"NUMSUB", b"big"]),
        b"*2\r\n$3\r\nbig\r\n:0\r\n",
    )
    .await;
    c.send(&resp(&[b"CLIENT", b"LIST"])).await;
    let list = String::from_utf8_lossy(&c.read_until(b"\n\r\n").await).into_owned();
    assert_eq!(list.matches("id=").count(), 1, "{list}");
    // The dropped subscriber's socket ends (after any buffered bytes).
    assert!(s.is_closed().await);
}

#[tokio::test]
async fn soft_limit_disconnects_after_its_seconds() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    c.expect(
        &resp(&[
            b"CONFIG",
            b"SET",
            b"client-output-buffer-limit",
            b"pubsub 0 200kb 1",
        ]),
        b"+OK\r\n",
    )
    .await;
    let mut s = srv.raw().await;
    s.expect(
        &resp(&[b"SUBSCRIBE", b"soft"]),
        &conf("subscribe", b"soft", 1),
    )
    .await;
    let payload = vec![b'y'; 64 * 1024];
    let cmd = resp(&[b"PUBLISH", b"soft", &payload]);
    let t = Instant::now();
    loop {
        let n = int_reply(&mut c, &[b"PUBLISH", b"soft", &payload]).await;
        let _ = &cmd;
        if n == 0 {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "never disconnected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Over the soft limit, so it took at least its second.
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    drop(s);
}

#[tokio::test]
async fn subscribe_commands_metadata() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    c.expect(
        &resp(&[b"COMMAND", b"GETKEYS", b"SPUBLISH", b"ch", b"m"]),
        b"*1\r\n$2\r\nch\r\n",
    )
    .await;
    c.expect(
        &resp(&[b"SUBSCRIBE"]),
        b"-ERR wrong number of arguments for 'subscribe' command\r\n",
    )
    .await;
    c.expect(
        &resp(&[b"PUBSUB", b"NOPE"]),
        b"-ERR unknown subcommand 'NOPE'. Try PUBSUB HELP.\r\n",
    )
    .await;
}

#[tokio::test]
async fn confirmations_and_messages_survive_client_reply_off() {
    let srv = TestServer::start();
    let mut s = srv.raw().await;
    let mut p = srv.raw().await;
    s.send(&resp(&[b"HELLO", b"3"])).await;
    s.read_until(b"modules\r\n*0\r\n").await;
    s.send(&resp(&[b"CLIENT", b"REPLY", b"OFF"])).await;
    s.expect(
        &resp(&[b"SUBSCRIBE", b"ch"]),
        &frame(true, &[P::B(b"subscribe"), P::B(b"ch"), P::I(1)]),
    )
    .await;
    p.expect(&resp(&[b"PUBLISH", b"ch", b"m"]), b":1\r\n").await;
    let m = frame(true, &[P::B(b"message"), P::B(b"ch"), P::B(b"m")]);
    assert_eq!(s.read_exact_n(m.len()).await, m);
    // Ordinary replies stay silenced.
    s.send(&resp(&[b"SET", b"k", b"v"])).await;
    s.expect(
        &resp(&[b"UNSUBSCRIBE", b"ch"]),
        &frame(true, &[P::B(b"unsubscribe"), P::B(b"ch"), P::I(0)]),
    )
    .await;
}

/// CLIENT LIST omem shows what waits for a subscriber that does not read
/// (its queued messages), and returns to 0 once it reads them.
#[tokio::test]
async fn client_list_omem_shows_queued_output() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    let mut s = srv.raw().await;
    s.expect(&resp(&[b"SUBSCRIBE", b"ch"]), &conf("subscribe", b"ch", 1))
        .await;
    let payload = vec![b'x'; 1000];
    let cmd = resp(&[b"PUBLISH", b"ch", &payload]);
    let omem = |list: &str| -> usize {
        list.lines()
            .find(|l| l.contains(" sub=1 "))
            .and_then(|l| l.split(' ').find_map(|f| f.strip_prefix("omem=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let mut seen = 0;
    for _ in 0..40 {
        for _ in 0..500 {
            c.send(&cmd).await;
            c.read_until(b"\r\n").await;
        }
        c.send(&resp(&[b"CLIENT", b"LIST"])).await;
        let list = String::from_utf8_lossy(&c.read_until(b"\n\r\n").await).into_owned();
        seen = omem(&list);
        if seen > 100_000 {
            break;
        }
    }
    assert!(seen > 100_000, "omem stayed at {seen}");
    // Drain the subscriber: its output goes back to 0.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let _ = tokio::time::timeout(Duration::from_millis(50), s.read_exact_n(64 * 1024)).await;
        c.send(&resp(&[b"CLIENT", b"LIST"])).await;
        let list = String::from_utf8_lossy(&c.read_until(b"\n\r\n").await).into_owned();
        if omem(&list) == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "omem never returned to 0");
    }
}
