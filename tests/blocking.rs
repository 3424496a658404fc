//! Blocking list commands through the real server: wake-ups from other
//! connections, FIFO service, fractional timeouts, chains through BLMOVE,
//! CLIENT UNBLOCK, thousands of parked clients, and cleanup when a blocked
//! client goes away.

mod common;
use std::time::{Duration, Instant};

use common::{resp, Raw, TestServer};
use tokio::io::AsyncReadExt;

async fn q(c: &mut Raw, cmd: &str, want: &str) {
    c.expect(format!("{cmd}\r\n").as_bytes(), want.as_bytes())
        .await;
}

async fn send(c: &mut Raw, cmd: &str) {
    c.send(format!("{cmd}\r\n").as_bytes()).await;
}

/// Asserts that nothing arrives on `c` within `ms`.
async fn silent(c: &mut Raw, ms: u64) {
    let mut b = [0u8; 64];
    let r = tokio::time::timeout(Duration::from_millis(ms), c.s.read(&mut b)).await;
    match r {
        Err(_) => {}
        Ok(Ok(n)) => panic!("unexpected reply: {:?}", String::from_utf8_lossy(&b[..n])),
        Ok(Err(e)) => panic!("read error {e}"),
    }
}

async fn blocked_clients(srv: &TestServer) -> usize {
    let mut con = srv.conn().await;
    let info: String = redis::cmd("INFO")
        .arg("clients")
        .query_async(&mut con)
        .await
        .expect("info");
    info.lines()
        .find_map(|l| l.strip_prefix("blocked_clients:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("blocked_clients field")
}

/// Waits (up to 10 s) until INFO reports `n` blocked clients.
async fn wait_blocked(srv: &TestServer, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = blocked_clients(srv).await;
        if got == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "blocked_clients stayed {got}, want {n}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Reads until `n` CRLF-terminated lines arrived (or 5 s passed).
async fn read_lines(c: &mut Raw, n: usize) -> String {
    let mut all = Vec::new();
    while all.iter().filter(|&&b| b == b'\n').count() < n {
        let more = c.read_until(b"\r\n").await;
        if more.is_empty() {
            break;
        }
        all.extend_from_slice(&more);
    }
    String::from_utf8_lossy(&all).into_owned()
}

async fn client_id(c: &mut Raw) -> u64 {
    send(c, "CLIENT ID").await;
    let r = c.read_until(b"\r\n").await;
    String::from_utf8_lossy(&r[1..r.len() - 2])
        .parse()
        .expect("id")
}

#[tokio::test]
async fn push_from_another_connection_wakes_the_waiter() {
    let srv = TestServer::start();
    let mut w = srv.raw().await;
    let mut p = srv.raw().await;
    send(&mut w, "BLPOP nothing q 0").await;
    wait_blocked(&srv, 1).await;
    silent(&mut w, 100).await;
    q(&mut p, "RPUSH q hello", ":1\r\n").await;
    let want = "*2\r\n$1\r\nq\r\n$5\r\nhello\r\n";
    assert_eq!(w.read_exact_n(want.len()).await, want.as_bytes());
    // Served before the pusher got its reply: the list is gone already.
    q(&mut p, "EXISTS q", ":0\r\n").await;
    wait_blocked(&srv, 0).await;
    // BRPOP serves from the tail, BLMPOP with a count.
    send(&mut w, "BRPOP q 0").await;
    wait_blocked(&srv, 1).await;
    q(&mut p, "RPUSH q a b", ":2\r\n").await;
    let want = "*2\r\n$1\r\nq\r\n$1\r\nb\r\n";
    assert_eq!(w.read_exact_n(want.len()).await, want.as_bytes());
    q(&mut p, "DEL q", ":1\r\n").await;
    send(&mut w, "BLMPOP 0 2 x q RIGHT COUNT 2").await;
    wait_blocked(&srv, 1).await;
    q(&mut p, "RPUSH q a b c", ":3\r\n").await;
    let want = "*2\r\n$1\r\nq\r\n*2\r\n$1\r\nc\r\n$1\r\nb\r\n";
    assert_eq!(w.read_exact_n(want.len()).await, want.as_bytes());
    q(&mut p, "LRANGE q 0 -1", "*1\r\n$1\r\na\r\n").await;
}

#[tokio::test]
async fn waiters_are_served_first_come_first_served() {
    let srv = TestServer::start();
    let mut a = srv.raw().await;
    let mut b = srv.raw().await;
    let mut c = srv.raw().await;
    let mut p = srv.raw().await;
    send(&mut a, "BLPOP k 0").await;
    wait_blocked(&srv, 1).await;
    send(&mut b, "BLPOP k 0").await;
    wait_blocked(&srv, 2).await;
    send(&mut c, "BLPOP k 0").await;
    wait_blocked(&srv, 3).await;
    // One element: the oldest waiter gets it, the others stay blocked.
    q(&mut p, "RPUSH k one", ":1\r\n").await;
    let one = "*2\r\n$1\r\nk\r\n$3\r\none\r\n";
    assert_eq!(a.read_exact_n(one.len()).await, one.as_bytes());
    silent(&mut b, 50).await;
    wait_blocked(&srv, 2).await;
    // Two elements in one push: both remaining waiters, in order.
    q(&mut p, "RPUSH k two three", ":2\r\n").await;
    let two = "*2\r\n$1\r\nk\r\n$3\r\ntwo\r\n";
    let three = "*2\r\n$1\r\nk\r\n$5\r\nthree\r\n";
    assert_eq!(b.read_exact_n(two.len()).await, two.as_bytes());
    assert_eq!(c.read_exact_n(three.len()).await, three.as_bytes());
    wait_blocked(&srv, 0).await;
    q(&mut p, "EXISTS k", ":0\r\n").await;
}

#[tokio::test]
async fn fractional_timeouts() {
    let srv = TestServer::start();
    let mut w = srv.raw().await;
    let start = Instant::now();
    q(&mut w, "BLPOP k 0.3", "*-1\r\n").await;
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(280), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    let start = Instant::now();
    // Redis 7.0 times every list wait out with a null array, BLMOVE's too...
    q(&mut w, "BLMOVE k d LEFT LEFT 0.1", "*-1\r\n").await;
    assert!(start.elapsed() >= Duration::from_millis(90));
    q(&mut w, "BRPOPLPUSH k d 0.01", "*-1\r\n").await;
    // ...but where BLMOVE may not block (MULTI) it answers a null bulk.
    send(&mut w, "MULTI").await;
    send(&mut w, "BLMOVE k d LEFT LEFT 0").await;
    send(&mut w, "BRPOPLPUSH k d 0").await;
    q(
        &mut w,
        "EXEC",
        "+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n$-1\r\n$-1\r\n",
    )
    .await;
    q(&mut w, "BLMPOP 0.01 1 k LEFT", "*-1\r\n").await;
    // RESP3 timeout reply is the null type.
    send(&mut w, "HELLO 3").await;
    let _ = w.read_until(b"modules\r\n*0\r\n").await;
    q(&mut w, "BRPOP k 0.01", "_\r\n").await;
    wait_blocked(&srv, 0).await;
}

#[tokio::test]
async fn blmove_feeds_a_waiter_on_its_destination() {
    let srv = TestServer::start();
    let mut mover = srv.raw().await;
    let mut popper = srv.raw().await;
    let mut p = srv.raw().await;
    send(&mut mover, "BLMOVE src dst RIGHT LEFT 0").await;
    wait_blocked(&srv, 1).await;
    send(&mut popper, "BLPOP dst 0").await;
    wait_blocked(&srv, 2).await;
    q(&mut p, "RPUSH src v", ":1\r\n").await;
    assert_eq!(mover.read_exact_n(7).await, b"$1\r\nv\r\n");
    let want = "*2\r\n$3\r\ndst\r\n$1\r\nv\r\n";
    assert_eq!(popper.read_exact_n(want.len()).await, want.as_bytes());
    // The whole chain ran before the pusher's reply.
    q(&mut p, "EXISTS src dst", ":0\r\n").await;
    wait_blocked(&srv, 0).await;

    // Circular BRPOPLPUSH settles with the element back in the first list.
    send(&mut mover, "BRPOPLPUSH l1 l2 0").await;
    wait_blocked(&srv, 1).await;
    send(&mut popper, "BRPOPLPUSH l2 l1 0").await;
    wait_blocked(&srv, 2).await;
    q(&mut p, "RPUSH l1 foo", ":1\r\n").await;
    assert_eq!(mover.read_exact_n(9).await, b"$3\r\nfoo\r\n");
    assert_eq!(popper.read_exact_n(9).await, b"$3\r\nfoo\r\n");
    q(&mut p, "LRANGE l1 0 -1", "*1\r\n$3\r\nfoo\r\n").await;
    q(&mut p, "EXISTS l2", ":0\r\n").await;
}

#[tokio::test]
async fn a_woken_client_blocks_again_if_the_key_was_emptied() {
    let srv = TestServer::start();
    let mut w = srv.raw().await;
    let mut p = srv.raw().await;
    send(&mut w, "BLPOP k 0").await;
    wait_blocked(&srv, 1).await;
    // Pushing something that is not a list does not serve it.
    q(&mut p, "SET k str", "+OK\r\n").await;
    q(&mut p, "DEL k", ":1\r\n").await;
    silent(&mut w, 50).await;
    wait_blocked(&srv, 1).await;
    q(&mut p, "RPUSH k later", ":1\r\n").await;
    let want = "*2\r\n$1\r\nk\r\n$5\r\nlater\r\n";
    assert_eq!(w.read_exact_n(want.len()).await, want.as_bytes());
}

#[tokio::test]
async fn rename_into_a_blocked_key_serves_it() {
    let srv = TestServer::start();
    let mut w = srv.raw().await;
    let mut p = srv.raw().await;
    send(&mut w, "BLPOP foo 0").await;
    wait_blocked(&srv, 1).await;
    q(&mut p, "LPUSH bob abc def hij", ":3\r\n").await;
    q(&mut p, "RENAME bob foo", "+OK\r\n").await;
    let want = "*2\r\n$3\r\nfoo\r\n$3\r\nhij\r\n";
    assert_eq!(w.read_exact_n(want.len()).await, want.as_bytes());
}

#[tokio::test]
async fn client_unblock_timeout_and_error() {
    let srv = TestServer::start();
    let mut w = srv.raw().await;
    let mut p = srv.raw().await;
    let id = client_id(&mut w).await;
    q(&mut p, &format!("CLIENT UNBLOCK {id}"), ":0\r\n").await;
    send(&mut w, "BLPOP k 0").await;
    wait_blocked(&srv, 1).await;
    q(&mut p, &format!("CLIENT UNBLOCK {id} TIMEOUT"), ":1\r\n").await;
    assert_eq!(w.read_exact_n(5).await, b"*-1\r\n");
    wait_blocked(&srv, 0).await;
    send(&mut w, "BLMOVE a b LEFT LEFT 0").await;
    wait_blocked(&srv, 1).await;
    q(&mut p, &format!("CLIENT UNBLOCK {id} ERROR"), ":1\r\n").await;
    let want = "-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n";
    assert_eq!(w.read_exact_n(want.len()).await, want.as_bytes());
    wait_blocked(&srv, 0).await;
    q(&mut p, &format!("CLIENT UNBLOCK {id} ERROR"), ":0\r\n").await;
    q(
        &mut p,
        &format!("CLIENT UNBLOCK {id} MAYBE"),
        "-ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR\r\n",
    )
    .await;
    q(
        &mut p,
        "CLIENT UNBLOCK x",
        "-ERR value is not an integer or out of range\r\n",
    )
    .await;
    // The unblocked connection keeps working.
    q(&mut w, "PING", "+PONG\r\n").await;
}

#[tokio::test]
async fn client_list_flags_blocked_clients() {
    let srv = TestServer::start();
    let mut w = srv.raw().await;
    let mut p = srv.raw().await;
    let id = client_id(&mut w).await;
    send(&mut w, "BLPOP k 0").await;
    wait_blocked(&srv, 1).await;
    let mut con = srv.conn().await;
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut con)
        .await
        .expect("client list");
    let line = list
        .lines()
        .find(|l| l.starts_with(&format!("id={id} ")))
        .expect("blocked client listed");
    assert!(line.contains(" flags=b "), "{line}");
    q(&mut p, "RPUSH k v", ":1\r\n").await;
    let _ = w.read_exact_n(20).await;
}

#[tokio::test]
async fn pipelined_commands_after_a_blocking_one_wait_for_it() {
    let srv = TestServer::start();
    let mut w = srv.raw().await;
    let mut p = srv.raw().await;
    w.send(b"PING\r\nBLPOP k 0\r\nPING\r\n").await;
    assert_eq!(w.read_exact_n(7).await, b"+PONG\r\n");
    wait_blocked(&srv, 1).await;
    silent(&mut w, 50).await;
    q(&mut p, "RPUSH k v", ":1\r\n").await;
    let want = "*2\r\n$1\r\nk\r\n$1\r\nv\r\n+PONG\r\n";
    assert_eq!(w.read_exact_n(want.len()).await, want.as_bytes());
}

#[tokio::test]
async fn disconnect_or_kill_while_blocked_leaves_nothing_behind() {
    let srv = TestServer::start();
    let mut p = srv.raw().await;
    {
        let mut w = srv.raw().await;
        send(&mut w, "BLPOP k 0").await;
        wait_blocked(&srv, 1).await;
    } // dropped: disconnects
    wait_blocked(&srv, 0).await;
    // The element is not swallowed by the departed client.
    q(&mut p, "RPUSH k v", ":1\r\n").await;
    q(&mut p, "LLEN k", ":1\r\n").await;
    q(&mut p, "DEL k", ":1\r\n").await;

    let mut w = srv.raw().await;
    let id = client_id(&mut w).await;
    send(&mut w, "BRPOP k 100").await;
    wait_blocked(&srv, 1).await;
    q(&mut p, &format!("CLIENT KILL ID {id}"), ":1\r\n").await;
    assert!(w.is_closed().await);
    wait_blocked(&srv, 0).await;
    q(&mut p, "RPUSH k v", ":1\r\n").await;
    q(&mut p, "LLEN k", ":1\r\n").await;
}

#[tokio::test]
async fn over_a_thousand_blocked_clients_are_all_served() {
    let srv = TestServer::start();
    const N: usize = 1200;
    let mut waiters = Vec::with_capacity(N);
    for i in 0..N {
        let mut w = srv.raw().await;
        // Half share one key, half have their own.
        let key = if i % 2 == 0 {
            "shared".to_string()
        } else {
            format!("own:{i}")
        };
        w.send(&resp(&[b"BLPOP", key.as_bytes(), b"0"])).await;
        waiters.push((w, key));
    }
    wait_blocked(&srv, N).await;
    let mut p = srv.raw().await;
    // One push of N/2 elements feeds every waiter on the shared key.
    let mut args: Vec<Vec<u8>> = vec![b"RPUSH".to_vec(), b"shared".to_vec()];
    for i in 0..N / 2 {
        args.push(format!("e{i}").into_bytes());
    }
    let refs: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
    p.send(&resp(&refs)).await;
    let _ = p.read_until(b"\r\n").await;
    for (_, key) in waiters.iter().filter(|(_, k)| k != "shared") {
        p.send(&resp(&[b"LPUSH", key.as_bytes(), b"x"])).await;
        assert_eq!(p.read_until(b"\r\n").await, b":1\r\n");
    }
    let mut shared_vals = Vec::new();
    for (w, key) in waiters.iter_mut() {
        let head = format!("*2\r\n${}\r\n{}\r\n$", key.len(), key);
        let text = read_lines(w, 5).await;
        assert!(text.starts_with(&head), "{text}");
        if key == "shared" {
            shared_vals.push(text.lines().nth(4).unwrap_or_default().to_string());
        }
    }
    // Every shared waiter got a distinct element: none lost or duplicated.
    shared_vals.sort();
    shared_vals.dedup();
    assert_eq!(shared_vals.len(), N / 2);
    wait_blocked(&srv, 0).await;
    q(&mut p, "DBSIZE", ":0\r\n").await;
}

#[tokio::test]
async fn a_blocked_command_is_counted_once() {
    let srv = TestServer::start();
    let mut w = srv.raw().await;
    let mut p = srv.raw().await;
    send(&mut w, "BLPOP k 0").await;
    wait_blocked(&srv, 1).await;
    q(&mut p, "RPUSH k v", ":1\r\n").await;
    let _ = read_lines(&mut w, 5).await;
    q(&mut w, "BLPOP k 0.01", "*-1\r\n").await;
    let mut con = srv.conn().await;
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut con)
        .await
        .expect("info");
    let line = info
        .lines()
        .find(|l| l.starts_with("cmdstat_blpop:"))
        .expect("blpop stats");
    assert!(line.starts_with("cmdstat_blpop:calls=2,"), "{line}");
}

/// A push inside MULTI serves waiters after EXEC, with the transaction's
/// final state (needs MULTI/EXEC, which lands separately).
#[tokio::test]
async fn push_inside_multi_serves_after_exec() {
    let srv = TestServer::start();
    let mut w = srv.raw().await;
    let mut p = srv.raw().await;
    send(&mut w, "BLPOP k 0").await;
    wait_blocked(&srv, 1).await;
    q(&mut p, "MULTI", "+OK\r\n").await;
    q(&mut p, "RPUSH k a b c", "+QUEUED\r\n").await;
    q(&mut p, "LPOP k", "+QUEUED\r\n").await;
    silent(&mut w, 50).await;
    q(&mut p, "EXEC", "*2\r\n:3\r\n$1\r\na\r\n").await;
    let want = "*2\r\n$1\r\nk\r\n$1\r\nb\r\n";
    assert_eq!(w.read_exact_n(want.len()).await, want.as_bytes());
    // A blocking command inside MULTI answers its timeout reply at once.
    q(&mut p, "MULTI", "+OK\r\n").await;
    q(&mut p, "BLPOP empty 0", "+QUEUED\r\n").await;
    q(&mut p, "EXEC", "*1\r\n*-1\r\n").await;
    wait_blocked(&srv, 0).await;
}

#[tokio::test]
async fn fifo_holds_for_many_waiters_fed_by_one_push() {
    let srv = TestServer::start();
    const N: usize = 60;
    let mut ws = Vec::new();
    for i in 0..N {
        let mut w = srv.raw().await;
        send(&mut w, "BRPOP fifo 0").await;
        wait_blocked(&srv, i + 1).await;
        ws.push(w);
    }
    let mut p = srv.raw().await;
    // RPUSH then BRPOP from the tail: the first waiter gets the last element.
    let items: Vec<String> = (0..N).map(|i| format!("e{i:02}")).collect();
    q(
        &mut p,
        &format!("LPUSH fifo {}", items.join(" ")),
        &format!(":{N}\r\n"),
    )
    .await;
    for (i, w) in ws.iter_mut().enumerate() {
        let want = format!("*2\r\n$4\r\nfifo\r\n$3\r\ne{i:02}\r\n");
        assert_eq!(
            String::from_utf8_lossy(&w.read_exact_n(want.len()).await),
            want
        );
    }
    wait_blocked(&srv, 0).await;
}

#[tokio::test]
async fn sorted_set_waiter_skips_a_key_that_changed_type_in_a_transaction() {
    let srv = TestServer::start();
    let mut w = srv.raw().await;
    let mut c = srv.raw().await;
    send(&mut w, "BZPOPMIN zset 0").await;
    wait_blocked(&srv, 1).await;
    q(&mut c, "MULTI", "+OK\r\n").await;
    q(&mut c, "ZADD zset 0 foo", "+QUEUED\r\n").await;
    q(&mut c, "DEL zset", "+QUEUED\r\n").await;
    q(&mut c, "SET zset foo", "+QUEUED\r\n").await;
    q(&mut c, "EXEC", "*3\r\n:1\r\n:1\r\n+OK\r\n").await;
    // The waiter is not woken with an error: it keeps waiting.
    silent(&mut w, 200).await;
    q(&mut c, "DEL zset", ":1\r\n").await;
    q(&mut c, "ZADD zset 1 bar", ":1\r\n").await;
    w.expect(b"", b"*3\r\n$4\r\nzset\r\n$3\r\nbar\r\n$1\r\n1\r\n")
        .await;
}
