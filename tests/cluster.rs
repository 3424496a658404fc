//! Cluster mode (`cluster-enabled yes`, `cinnabar cluster`) and the
//! Enterprise clustering policy, through the real server: Redis's
//! redirections and errors, the CLUSTER subcommands, and a cluster client
//! (the `redis` crate's) working against a local three-shard cluster.

mod common;

use common::TestServer;
use redis::Value;
use std::time::Duration;

async fn cmd(
    c: &mut redis::aio::MultiplexedConnection,
    args: &[&str],
) -> redis::RedisResult<Value> {
    let mut k = redis::cmd(args[0]);
    for a in &args[1..] {
        k.arg(*a);
    }
    k.query_async(c).await
}

async fn err(c: &mut redis::aio::MultiplexedConnection, args: &[&str]) -> String {
    match cmd(c, args).await {
        Ok(v) => panic!("{args:?} answered {v:?}, expected an error"),
        Err(e) => {
            // The crate splits "CODE detail"; put it back together.
            match (e.code(), e.detail()) {
                (Some(code), Some(d)) => format!("{code} {d}"),
                (Some(code), None) => code.to_string(),
                _ => e.to_string(),
            }
        }
    }
}

fn text(v: Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
        Value::SimpleString(s) => s,
        Value::VerbatimString { text, .. } => text,
        Value::Okay => "OK".into(),
        Value::Int(i) => i.to_string(),
        other => panic!("not a string: {other:?}"),
    }
}

async fn get_text(c: &mut redis::aio::MultiplexedConnection, args: &[&str]) -> String {
    text(cmd(c, args).await.expect("command"))
}

#[tokio::test]
async fn a_standalone_server_has_cluster_support_disabled() {
    let s = TestServer::start();
    let mut c = s.conn().await;
    for args in [
        &["cluster", "info"][..],
        &["cluster", "keyslot", "foo"],
        &["readonly"],
        &["asking"],
    ] {
        assert_eq!(
            err(&mut c, args).await,
            "ERR This instance has cluster support disabled",
            "{args:?}"
        );
    }
    assert!(get_text(&mut c, &["info", "cluster"])
        .await
        .contains("cluster_enabled:0"));
    assert!(get_text(&mut c, &["info", "server"])
        .await
        .contains("redis_mode:standalone"));
}

#[tokio::test]
async fn a_one_node_cluster_serves_every_slot() {
    let s = TestServer::start_with(&["--cluster-enabled", "yes"]);
    let mut c = s.conn().await;
    let info = get_text(&mut c, &["cluster", "info"]).await;
    assert!(info.contains("cluster_state:ok\r\n"), "{info}");
    assert!(info.contains("cluster_slots_assigned:16384\r\n"), "{info}");
    assert!(info.contains("cluster_known_nodes:1\r\n"), "{info}");
    assert!(info.contains("cluster_size:1\r\n"), "{info}");
    let id = get_text(&mut c, &["cluster", "myid"]).await;
    assert_eq!(id.len(), 40);
    let nodes = get_text(&mut c, &["cluster", "nodes"]).await;
    let port = s.addr.port();
    assert_eq!(
        nodes,
        format!(
            "{id} 127.0.0.1:{port}@{} myself,master - 0 0 0 connected 0-16383\n",
            port.wrapping_add(10000)
        )
    );
    // CLUSTER SLOTS: one range, the node as [ip, port, id, {metadata}].
    let slots = cmd(&mut c, &["cluster", "slots"]).await.expect("slots");
    let Value::Array(rows) = slots else {
        panic!("{slots:?}")
    };
    assert_eq!(rows.len(), 1);
    let Value::Array(row) = &rows[0] else {
        panic!("{rows:?}")
    };
    assert_eq!(row[0], Value::Int(0));
    assert_eq!(row[1], Value::Int(16383));
    let Value::Array(node) = &row[2] else {
        panic!("{row:?}")
    };
    assert_eq!(text(node[0].clone()), "127.0.0.1");
    assert_eq!(node[1], Value::Int(i64::from(port)));
    assert_eq!(text(node[2].clone()), id);
    // The keyspace: slots of keys and hash tags as Redis computes them.
    assert_eq!(
        get_text(&mut c, &["cluster", "keyslot", "foo"]).await,
        "12182"
    );
    assert_eq!(
        get_text(&mut c, &["cluster", "keyslot", "{user1000}.following"]).await,
        get_text(&mut c, &["cluster", "keyslot", "user1000"]).await
    );
    assert_eq!(
        err(&mut c, &["mset", "a", "1", "b", "2"]).await,
        "CROSSSLOT Keys in request don't hash to the same slot"
    );
    assert_eq!(
        err(&mut c, &["sunionstore", "x", "a", "b"]).await,
        "CROSSSLOT Keys in request don't hash to the same slot"
    );
    cmd(&mut c, &["mset", "{t}a", "1", "{t}b", "2", "{t}c", "3"])
        .await
        .expect("same tag");
    let slot = get_text(&mut c, &["cluster", "keyslot", "t"]).await;
    assert_eq!(
        get_text(&mut c, &["cluster", "countkeysinslot", &slot]).await,
        "3"
    );
    let keys = cmd(&mut c, &["cluster", "getkeysinslot", &slot, "2"])
        .await
        .expect("getkeys");
    assert!(matches!(&keys, Value::Array(k) if k.len() == 2), "{keys:?}");
    assert_eq!(
        err(&mut c, &["cluster", "countkeysinslot", "16384"]).await,
        "ERR Invalid slot"
    );
    assert_eq!(
        err(&mut c, &["cluster", "getkeysinslot", "1", "-1"]).await,
        "ERR Invalid slot or number of keys"
    );
    // One database.
    assert_eq!(
        err(&mut c, &["select", "1"]).await,
        "ERR SELECT is not allowed in cluster mode"
    );
    cmd(&mut c, &["select", "0"]).await.expect("select 0");
    assert_eq!(
        err(&mut c, &["move", "{t}a", "1"]).await,
        "ERR MOVE is not allowed in cluster mode"
    );
    assert_eq!(
        err(&mut c, &["swapdb", "0", "1"]).await,
        "ERR SWAPDB is not allowed in cluster mode"
    );
    assert_eq!(
        err(&mut c, &["copy", "{t}a", "{t}z", "db", "1"]).await,
        "ERR Copying to another database is not allowed in cluster mode"
    );
    assert_eq!(
        err(&mut c, &["replicaof", "127.0.0.1", "1"]).await,
        "ERR REPLICAOF not allowed in cluster mode."
    );
    // Cluster clients' connection commands.
    for c1 in ["readonly", "readwrite", "asking"] {
        assert_eq!(get_text(&mut c, &[c1]).await, "OK");
    }
    let meet = err(&mut c, &["cluster", "meet", "127.0.0.1", "1"]).await;
    assert!(
        meet.starts_with("ERR CLUSTER MEET is not supported"),
        "{meet}"
    );
    assert!(get_text(&mut c, &["info", "cluster"])
        .await
        .contains("cluster_enabled:1"));
    assert!(get_text(&mut c, &["info", "server"])
        .await
        .contains("redis_mode:cluster"));
    // BUMPEPOCH gives the lone node epoch 1, then has nothing to do.
    assert_eq!(
        get_text(&mut c, &["cluster", "bumpepoch"]).await,
        "BUMPED 1"
    );
    assert_eq!(get_text(&mut c, &["cluster", "bumpepoch"]).await, "STILL 1");
    // CONFIG SET cluster-announce-* changes what the node announces.
    cmd(
        &mut c,
        &["config", "set", "cluster-announce-ip", "10.1.2.3"],
    )
    .await
    .expect("config set");
    cmd(&mut c, &["config", "set", "cluster-announce-port", "7777"])
        .await
        .expect("config set");
    let nodes = get_text(&mut c, &["cluster", "nodes"]).await;
    assert!(
        nodes.starts_with(&format!("{id} 10.1.2.3:7777@17777 ")),
        "{nodes}"
    );
    // The topology is saved in cluster-config-file, under dir.
    let saved = std::fs::read_to_string(s.dir.path().join("nodes.conf")).expect("nodes.conf");
    assert!(saved.starts_with(&id), "{saved}");
    assert!(
        saved.contains("vars currentEpoch 1 lastVoteEpoch 0"),
        "{saved}"
    );
}

/// A node that serves slots 0-8191, with a peer (not running) serving the
/// rest: what clients are told about keys of either half.
fn two_node_conf(dir: &std::path::Path) -> (String, u16) {
    let me = "1".repeat(40);
    let peer = "2".repeat(40);
    let peer_port = 1;
    let text = format!(
        "{me} 127.0.0.1:6379@16379 myself,master - 0 0 1 connected 0-8191\n\
         {peer} 127.0.0.1:{peer_port}@10001 master - 0 0 2 connected 8192-16383\n\
         vars currentEpoch 2 lastVoteEpoch 0\n"
    );
    std::fs::write(dir.join("nodes.conf"), text).expect("write nodes.conf");
    (peer, peer_port)
}

#[tokio::test]
async fn keys_of_another_node_are_redirected_and_transactions_stay_in_one_slot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (peer, peer_port) = two_node_conf(dir.path());
    let s = TestServer::start_in(dir, &["--cluster-enabled", "yes"]);
    let mut c = s.conn().await;
    // foo is in slot 12182 (the peer's), bar in 5061 and hello in 866 (ours).
    assert_eq!(
        err(&mut c, &["get", "foo"]).await,
        format!("MOVED 12182 127.0.0.1:{peer_port}")
    );
    assert_eq!(
        err(&mut c, &["set", "foo", "1"]).await,
        format!("MOVED 12182 127.0.0.1:{peer_port}")
    );
    cmd(&mut c, &["set", "bar", "1"])
        .await
        .expect("a local key");
    cmd(&mut c, &["set", "hello", "1"])
        .await
        .expect("a local key");
    // The node announces its real port, whatever the file said.
    let nodes = get_text(&mut c, &["cluster", "nodes"]).await;
    assert!(
        nodes.contains(&format!("127.0.0.1:{}@", s.addr.port())),
        "{nodes}"
    );
    assert!(
        nodes.contains(&format!(
            "{peer} 127.0.0.1:{peer_port}@10001 master - 0 0 2 connected 8192-16383"
        )),
        "{nodes}"
    );
    let shards = cmd(&mut c, &["cluster", "shards"]).await.expect("shards");
    assert!(
        matches!(&shards, Value::Array(v) if v.len() == 2),
        "{shards:?}"
    );
    let info = get_text(&mut c, &["cluster", "info"]).await;
    assert!(
        info.contains("cluster_known_nodes:2\r\n") && info.contains("cluster_size:2\r\n"),
        "{info}"
    );

    // A transaction: a redirected command aborts it; keys of two slots
    // (both served here) make EXEC fail and discard it.
    let mut raw = s.raw().await;
    raw.expect(b"MULTI\r\n", b"+OK\r\n").await;
    raw.expect(
        b"SET foo 1\r\n",
        format!("-MOVED 12182 127.0.0.1:{peer_port}\r\n").as_bytes(),
    )
    .await;
    raw.expect(b"SET bar 2\r\n", b"+QUEUED\r\n").await;
    raw.expect(
        b"EXEC\r\n",
        b"-EXECABORT Transaction discarded because of previous errors.\r\n",
    )
    .await;
    raw.expect(b"MULTI\r\n", b"+OK\r\n").await;
    raw.expect(b"SET bar 3\r\n", b"+QUEUED\r\n").await;
    raw.expect(b"SET hello 3\r\n", b"+QUEUED\r\n").await;
    raw.expect(
        b"EXEC\r\n",
        b"-CROSSSLOT Keys in request don't hash to the same slot\r\n",
    )
    .await;
    // The transaction is gone: EXEC without MULTI.
    raw.expect(b"EXEC\r\n", b"-ERR EXEC without MULTI\r\n")
        .await;
    raw.expect(b"MULTI\r\n", b"+OK\r\n").await;
    raw.expect(b"SET {bar}x 3\r\n", b"+QUEUED\r\n").await;
    raw.expect(b"SET bar 4\r\n", b"+QUEUED\r\n").await;
    raw.expect(b"EXEC\r\n", b"*2\r\n+OK\r\n+OK\r\n").await;

    // Scripts: declared keys are routed like a command's; undeclared keys
    // must be local, and in one slot when the script declares flags.
    assert_eq!(
        err(&mut c, &["eval", "return 1", "1", "foo"]).await,
        format!("MOVED 12182 127.0.0.1:{peer_port}")
    );
    let e = err(&mut c, &["eval", "return redis.call('get', 'foo')", "0"]).await;
    assert!(
        e.contains("Script attempted to access a non local key in a cluster node"),
        "{e}"
    );
    // Without flags (Redis 6 semantics) a script may touch several slots.
    let v = cmd(
        &mut c,
        &[
            "eval",
            "redis.call('get', 'hello') return redis.call('get', KEYS[1])",
            "1",
            "bar",
        ],
    )
    .await
    .expect("compat script");
    assert_eq!(text(v), "4");
    let e = err(
        &mut c,
        &[
            "eval",
            "#!lua\nredis.call('get', 'hello') return 1",
            "1",
            "bar",
        ],
    )
    .await;
    assert!(
        e.contains("Script attempted to access keys that do not hash to the same slot"),
        "{e}"
    );
    let v = cmd(
        &mut c,
        &[
            "eval",
            "#!lua flags=allow-cross-slot-keys\nreturn redis.call('get', 'hello')",
            "1",
            "bar",
        ],
    )
    .await
    .expect("allow-cross-slot-keys");
    assert_eq!(text(v), "1");
    assert_eq!(
        err(&mut c, &["eval", "#!lua flags=no-cluster\nreturn 1", "0"]).await,
        "ERR Can not run script on cluster, 'no-cluster' flag is set."
    );

    // Unserved slots: the cluster is down while a slot has no owner
    // (cluster-require-full-coverage yes), reads allowed on request.
    cmd(&mut c, &["cluster", "delslots", "0"])
        .await
        .expect("delslots");
    assert_eq!(
        err(&mut c, &["cluster", "delslots", "0"]).await,
        "ERR Slot 0 is already unassigned"
    );
    assert!(get_text(&mut c, &["cluster", "info"])
        .await
        .contains("cluster_state:fail"));
    assert_eq!(
        err(&mut c, &["get", "bar"]).await,
        "CLUSTERDOWN The cluster is down"
    );
    cmd(
        &mut c,
        &["config", "set", "cluster-allow-reads-when-down", "yes"],
    )
    .await
    .expect("config");
    assert_eq!(text(cmd(&mut c, &["get", "bar"]).await.expect("read")), "4");
    assert_eq!(
        err(&mut c, &["set", "bar", "5"]).await,
        "CLUSTERDOWN The cluster is down and only accepts read commands"
    );
    cmd(
        &mut c,
        &["config", "set", "cluster-require-full-coverage", "no"],
    )
    .await
    .expect("config");
    cmd(&mut c, &["set", "bar", "5"])
        .await
        .expect("state ok without full coverage");
    // Slot 0 itself: key "{06S}" hashes to slot 0.
    assert_eq!(get_text(&mut c, &["cluster", "keyslot", "06S"]).await, "0");
    assert_eq!(
        err(&mut c, &["get", "{06S}x"]).await,
        "CLUSTERDOWN Hash slot not served"
    );
    assert_eq!(
        err(&mut c, &["cluster", "addslots", "1"]).await,
        "ERR Slot 1 is already busy"
    );
    assert_eq!(
        err(&mut c, &["cluster", "addslots", "0", "0"]).await,
        "ERR Slot 0 specified multiple times"
    );
    cmd(&mut c, &["cluster", "addslotsrange", "0", "0"])
        .await
        .expect("addslotsrange");
    cmd(&mut c, &["set", "{06S}x", "1"])
        .await
        .expect("slot 0 served again");
    assert_eq!(
        err(&mut c, &["cluster", "flushslots"]).await,
        "ERR DB must be empty to perform CLUSTER FLUSHSLOTS."
    );
}

#[tokio::test]
async fn the_enterprise_policy_refuses_cross_slot_commands_but_the_proxied_ones() {
    let s = TestServer::start_with(&["--cluster-policy", "enterprise"]);
    let mut c = s.conn().await;
    // DEL, MSET, MGET, EXISTS, UNLINK and TOUCH may span slots.
    cmd(&mut c, &["mset", "a", "1", "b", "2"])
        .await
        .expect("mset");
    let v = cmd(&mut c, &["mget", "a", "b"]).await.expect("mget");
    assert_eq!(
        v,
        Value::Array(vec![
            Value::BulkString(b"1".to_vec()),
            Value::BulkString(b"2".to_vec())
        ])
    );
    assert_eq!(
        cmd(&mut c, &["exists", "a", "b"]).await.expect("exists"),
        Value::Int(2)
    );
    assert_eq!(
        cmd(&mut c, &["touch", "a", "b"]).await.expect("touch"),
        Value::Int(2)
    );
    // Others may not.
    const CROSS: &str = "CROSSSLOT Keys in request don't hash to the same slot";
    assert_eq!(err(&mut c, &["rename", "a", "b"]).await, CROSS);
    assert_eq!(err(&mut c, &["sunionstore", "x", "a", "b"]).await, CROSS);
    assert_eq!(
        err(&mut c, &["eval", "return 1", "2", "a", "b"]).await,
        CROSS
    );
    cmd(&mut c, &["rename", "{t}a", "{t}b"])
        .await
        .expect_err("no such key, but routed");
    cmd(&mut c, &["set", "{t}a", "1"]).await.expect("set");
    cmd(&mut c, &["rename", "{t}a", "{t}b"])
        .await
        .expect("same slot");
    // A transaction keeps to one slot: the command that leaves it is
    // refused, and EXEC aborts.
    let mut raw = s.raw().await;
    raw.expect(b"MULTI\r\n", b"+OK\r\n").await;
    raw.expect(b"SET user:1 x\r\n", b"+QUEUED\r\n").await;
    raw.expect(
        b"SET user:1:books y\r\n",
        format!("-{CROSS}\r\n").as_bytes(),
    )
    .await;
    raw.expect(
        b"EXEC\r\n",
        b"-EXECABORT Transaction discarded because of previous errors.\r\n",
    )
    .await;
    // It is still a standalone server otherwise.
    assert_eq!(
        err(&mut c, &["cluster", "info"]).await,
        "ERR This instance has cluster support disabled"
    );
    cmd(&mut c, &["del", "a", "b", "{t}b"]).await.expect("del");
}

#[tokio::test]
async fn cinnabar_cluster_runs_shards_that_a_cluster_client_uses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = common::free_cluster_ports(3);
    let mut launcher = std::process::Command::new(env!("CARGO_BIN_EXE_cinnabar"))
        .args([
            "cluster",
            "--shards",
            "3",
            "--port",
            &base.to_string(),
            "--dir",
        ])
        .arg(dir.path())
        .args(["--", "--save", "", "--bind", "127.0.0.1"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn cinnabar cluster");
    // Wait until every node answers.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    for p in base..base + 3 {
        loop {
            let ok = match redis::Client::open(format!("redis://127.0.0.1:{p}/")) {
                Ok(cl) => cl.get_multiplexed_async_connection().await.is_ok(),
                Err(_) => false,
            };
            if ok {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "node {p} did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let client = redis::cluster::ClusterClient::new(vec![format!("redis://127.0.0.1:{base}/")])
        .expect("cluster client");
    let mut cc = client
        .get_async_connection()
        .await
        .expect("cluster connection");
    for i in 0..300 {
        let _: () = redis::cmd("SET")
            .arg(format!("key:{i}"))
            .arg(i)
            .query_async(&mut cc)
            .await
            .expect("set through the cluster client");
    }
    for i in (0..300).step_by(7) {
        let v: i64 = redis::cmd("GET")
            .arg(format!("key:{i}"))
            .query_async(&mut cc)
            .await
            .expect("get");
        assert_eq!(v, i);
    }
    // Each node holds only its own third of the slots.
    let mut total = 0;
    for p in base..base + 3 {
        let cl = redis::Client::open(format!("redis://127.0.0.1:{p}/")).expect("client");
        let mut c = cl
            .get_multiplexed_async_connection()
            .await
            .expect("connect");
        let n: i64 = redis::cmd("DBSIZE")
            .query_async(&mut c)
            .await
            .expect("dbsize");
        assert!(n > 50 && n < 200, "node {p} holds {n} keys");
        total += n;
        let slots = get_text(&mut c, &["cluster", "info"]).await;
        assert!(
            slots.contains("cluster_state:ok") && slots.contains("cluster_known_nodes:3"),
            "{slots}"
        );
    }
    assert_eq!(total, 300);
    // SIGTERM to the launcher stops every node, and it exits cleanly.
    let pid = launcher.id() as i32;
    // SAFETY: signalling a child we spawned.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(st) = launcher.try_wait().expect("wait") {
            break st;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the launcher did not exit"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    for p in base..base + 3 {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", p)).is_err(),
            "node {p} still listens"
        );
    }
}

#[test]
fn the_cluster_subcommand_explains_itself() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cinnabar"))
        .args(["cluster", "--help"])
        .output()
        .expect("run cinnabar cluster --help");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("--shards") && text.contains("--announce-ip"),
        "{text}"
    );
    // A bad value is still a configuration error.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cinnabar"))
        .args(["cluster", "--shards", "0"])
        .output()
        .expect("run cinnabar cluster --shards 0");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

/// Reads pub/sub pushes from a raw subscriber connection until `want`
/// appears (or fails after a few seconds).
async fn wait_for(sub: &mut common::Raw, want: &[u8]) {
    let got = tokio::time::timeout(Duration::from_secs(5), sub.read_until(want))
        .await
        .unwrap_or_else(|_| panic!("{:?} never arrived", String::from_utf8_lossy(want)));
    assert!(got.ends_with(want));
}

/// A connection to the node on `port`.
async fn node(port: u16) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connect")
}

/// A raw connection to the node on `port` that ran `subscribe` (SUBSCRIBE
/// or PSUBSCRIBE) on `channel`.
async fn subscriber(port: u16, subscribe: &[u8], channel: &[u8]) -> common::Raw {
    let mut sub = common::Raw::connect(&format!("127.0.0.1:{port}")).await;
    sub.send(&common::resp(&[subscribe, channel])).await;
    sub.read_until(b":1\r\n").await;
    sub
}

async fn publish(port: u16, channel: &str, msg: &str) -> i64 {
    let mut c = node(port).await;
    redis::cmd("PUBLISH")
        .arg(channel)
        .arg(msg)
        .query_async(&mut c)
        .await
        .expect("publish")
}

fn cluster_info_field(info: &str, name: &str) -> u64 {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map_or(0, |v| v.trim().parse().expect("a number"))
}

/// A `cinnabar cluster` launcher, stopped (with its nodes) when dropped.
struct Launcher(std::process::Child);

impl Drop for Launcher {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0.id()) {
            // SAFETY: signalling a child this test spawned.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// In Redis Cluster a message published on any node reaches the
/// subscribers of every node (ioredis subscribes on a random node); the
/// reply counts only the publishing node's receivers. A node that goes down
/// costs only its own subscribers, and once back (SIGHUP to `cinnabar
/// cluster` restarts it) it hears again.
#[tokio::test]
async fn publish_reaches_subscribers_on_every_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = common::free_cluster_ports(3);
    let launcher = std::process::Command::new(env!("CARGO_BIN_EXE_cinnabar"))
        .args(["cluster", "--shards", "3", "--port", &base.to_string()])
        .arg("--dir")
        .arg(dir.path())
        .args(["--", "--save", "", "--bind", "127.0.0.1"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn cinnabar cluster");
    let launcher = Launcher(launcher);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    for p in base..base + 3 {
        while std::net::TcpStream::connect(("127.0.0.1", p)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "node {p} did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let (a, b, c) = (base, base + 1, base + 2);
    let mut sub_b = subscriber(b, b"PSUBSCRIBE", b"news.*").await;
    let mut sub_c = subscriber(c, b"SUBSCRIBE", b"news.eu").await;
    let mut sub_a = subscriber(a, b"SUBSCRIBE", b"news.eu").await;

    // One receiver here; the other nodes' subscribers hear it too.
    assert_eq!(publish(a, "news.eu", "first").await, 1);
    wait_for(&mut sub_a, b"$5\r\nfirst\r\n").await;
    wait_for(&mut sub_b, b"$7\r\nnews.eu\r\n$5\r\nfirst\r\n").await;
    wait_for(&mut sub_c, b"$7\r\nnews.eu\r\n$5\r\nfirst\r\n").await;
    // From another node, and from a script and a transaction.
    assert_eq!(publish(c, "news.eu", "second").await, 1);
    wait_for(&mut sub_a, b"$6\r\nsecond\r\n").await;
    wait_for(&mut sub_b, b"$6\r\nsecond\r\n").await;
    let mut cb = node(b).await;
    let n: i64 = redis::cmd("EVAL")
        .arg("return redis.call('publish', 'news.eu', 'scripted')")
        .arg(0)
        .query_async(&mut cb)
        .await
        .expect("eval");
    assert_eq!(n, 1, "node b's pattern subscriber");
    wait_for(&mut sub_a, b"$8\r\nscripted\r\n").await;
    wait_for(&mut sub_c, b"$8\r\nscripted\r\n").await;
    let (n,): (i64,) = redis::pipe()
        .atomic()
        .cmd("PUBLISH")
        .arg("news.eu")
        .arg("queued")
        .query_async(&mut cb)
        .await
        .expect("multi/exec");
    assert_eq!(n, 1, "node b's pattern subscriber");
    wait_for(&mut sub_a, b"$6\r\nqueued\r\n").await;
    wait_for(&mut sub_c, b"$6\r\nqueued\r\n").await;
    let mut ca = node(a).await;
    let info = get_text(&mut ca, &["cluster", "info"]).await;
    assert!(
        cluster_info_field(&info, "cluster_stats_messages_publish_sent") >= 2
            && cluster_info_field(&info, "cluster_stats_messages_publish_received") >= 2,
        "{info}"
    );
    // CLUSTER LINKS: a link to each other node, and theirs to this one
    // (b and c have published here), named by node id.
    let mut ids = Vec::new();
    for p in [b, c] {
        ids.push(get_text(&mut node(p).await, &["cluster", "myid"]).await);
    }
    let links = cmd(&mut ca, &["cluster", "links"]).await.expect("links");
    let mut seen = Vec::new();
    for link in match links {
        Value::Array(l) => l,
        other => panic!("{other:?}"),
    } {
        let fields: Vec<String> = match link {
            Value::Array(f) => f.into_iter().map(text).collect(),
            other => panic!("{other:?}"),
        };
        let get = |k: &str| {
            let i = fields.iter().position(|f| f == k).expect("field");
            fields[i + 1].clone()
        };
        assert!(get("create-time").parse::<u64>().expect("ms") > 0);
        seen.push((get("direction"), get("node")));
    }
    seen.sort();
    let mut want: Vec<(String, String)> = Vec::new();
    for dir in ["from", "to"] {
        for id in &ids {
            want.push((dir.to_string(), id.clone()));
        }
    }
    want.sort();
    assert_eq!(seen, want);

    // The bus port takes PUBLISH and nothing else: any other command, or
    // bytes that are not RESP, close the link; the node serves on.
    for junk in [
        common::resp(&[b"SET", b"k", b"v"]),
        b"*1\r\n$99999999999\r\n".to_vec(),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(),
    ] {
        let mut bus = common::Raw::connect(&format!("127.0.0.1:{}", a + 10000)).await;
        bus.send(&junk).await;
        assert!(bus.is_closed().await, "{junk:?}");
    }
    assert_eq!(publish(a, "news.eu", "still-here").await, 1);
    wait_for(&mut sub_b, b"$10\r\nstill-here\r\n").await;

    // Node c goes down: a and b go on exchanging messages.
    let pid: u32 = get_text(&mut node(c).await, &["info", "server"])
        .await
        .lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("process_id");
    // SAFETY: signalling a node process this test started.
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
    assert!(sub_c.is_closed().await);
    assert_eq!(publish(a, "news.eu", "without-c").await, 1);
    wait_for(&mut sub_b, b"$9\r\nwithout-c\r\n").await;
    // SIGHUP to the launcher starts node c again, on the same port with
    // its files: it hears the others again (their links reconnect when
    // they next have a message for it).
    // SAFETY: signalling the launcher this test spawned.
    unsafe {
        libc::kill(launcher.0.id() as i32, libc::SIGHUP);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", c)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "node c did not restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut sub_c = subscriber(c, b"SUBSCRIBE", b"news.eu").await;
    let mut heard = false;
    for i in 0..50 {
        let msg = format!("again-{i:02}");
        publish(a, "news.eu", &msg).await;
        let want = format!("$8\r\n{msg}\r\n");
        if tokio::time::timeout(
            Duration::from_millis(200),
            sub_c.read_until(want.as_bytes()),
        )
        .await
        .is_ok()
        {
            heard = true;
            break;
        }
    }
    assert!(heard, "the restarted node never heard node a again");
}
