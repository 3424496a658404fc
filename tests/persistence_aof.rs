//! The append-only file through the real server: replay equality after
//! SIGKILL, deterministic rewrites of relative/random commands, truncated
//! tails, `check-aof`, interop with redis-server, and a crash test under
//! `appendfsync always`.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::dataset::{contents, contents_at};
use common::TestServer;
use redis::AsyncCommands;

const AOF: &[&str] = &["--appendonly", "yes", "--appendfsync", "always"];

#[tokio::test]
async fn aof_replay_reproduces_every_type_after_sigkill() {
    let mut srv = TestServer::start_with(AOF);
    let mut c = srv.conn().await;
    let script: &[&[&str]] = &[
        &["SET", "s", "hello"],
        &["SET", "n", "10"],
        &["INCRBY", "n", "5"],
        &["INCRBYFLOAT", "f", "0.1"],
        &["INCRBYFLOAT", "f", "0.2"],
        &["APPEND", "s", " world"],
        &["SETRANGE", "s", "0", "J"],
        &["SET", "ex", "v", "EX", "1000"],
        &["SETEX", "ex2", "1000", "v"],
        &["SET", "tmp", "gone"],
        &["EXPIRE", "tmp", "-1"],
        &["RPUSH", "l", "a", "b", "c", "d"],
        &["LPOP", "l"],
        &["LMOVE", "l", "l2", "LEFT", "RIGHT"],
        &["SADD", "set", "1", "2", "3", "4", "5", "x"],
        &["SPOP", "set", "2"],
        &["SPOP", "set"],
        &["HSET", "h", "a", "1", "b", "2"],
        &["HINCRBYFLOAT", "h", "a", "1.5"],
        &["HDEL", "h", "b"],
        &["ZADD", "z", "1", "a", "2", "b", "3", "c"],
        &["ZINCRBY", "z", "10", "a"],
        &["ZPOPMIN", "z"],
        &["XADD", "st", "*", "f", "1"],
        &["XADD", "st", "*", "f", "2"],
        &["XGROUP", "CREATE", "st", "g", "0"],
        &["XREADGROUP", "GROUP", "g", "c1", "COUNT", "1", "STREAMS", "st", ">"],
        &["SETBIT", "bits", "100", "1"],
        &["PFADD", "hll", "a", "b", "c"],
        &["GEOADD", "geo", "13.361389", "38.115556", "Palermo"],
        &["SELECT", "2"],
        &["SET", "in2", "x"],
        &["MOVE", "in2", "3"],
        &["SELECT", "0"],
        &["COPY", "s", "s-copy"],
        &["RENAME", "n", "n2"],
        &["PEXPIRE", "n2", "500000"],
        &["PERSIST", "ex2"],
        &["EVAL", "redis.call('set', KEYS[1], 'a'); redis.call('rpush', KEYS[2], math.random(1,5)); return 1", "2", "ev1", "ev2"],
        &["SELECT", "1"],
        &["SET", "one", "1"],
        &["FLUSHDB"],
        &["SET", "two", "2"],
        &["SELECT", "0"],
    ];
    for cmd in script {
        let mut q = redis::cmd(cmd[0]);
        for a in &cmd[1..] {
            q.arg(*a);
        }
        let _: redis::Value = q.query_async(&mut c).await.unwrap();
    }
    // A transaction.
    let _: () = redis::pipe()
        .atomic()
        .cmd("INCR")
        .arg("counter")
        .cmd("LPUSH")
        .arg("l")
        .arg("tx")
        .query_async(&mut c)
        .await
        .unwrap();
    drop(c);
    let before = contents(&srv).await;
    assert_eq!(before.len(), 20, "{before:?}");
    srv.restart_with(AOF);
    let after = contents(&srv).await;
    assert_eq!(before, after);
    // A second restart (replaying a file that the first restart appended
    // nothing to) is stable too.
    srv.restart_with(AOF);
    assert_eq!(before, contents(&srv).await);
}

#[tokio::test]
async fn relative_and_random_commands_are_propagated_deterministically() {
    let srv = TestServer::start_with(AOF);
    let mut c = srv.conn().await;
    let _: () = c.set_ex("a", "1", 100).await.unwrap();
    let _: bool = c.expire("a", 200).await.unwrap();
    let _: () = c.sadd("s", &["x", "y", "z"]).await.unwrap();
    let popped: String = redis::cmd("SPOP")
        .arg("s")
        .query_async(&mut c)
        .await
        .unwrap();
    let id: String = redis::cmd("XADD")
        .arg("st")
        .arg("*")
        .arg("f")
        .arg("v")
        .query_async(&mut c)
        .await
        .unwrap();
    let payload: Vec<u8> = redis::cmd("DUMP")
        .arg("a")
        .query_async(&mut c)
        .await
        .unwrap();
    let _: () = redis::cmd("RESTORE")
        .arg("r")
        .arg(50000)
        .arg(payload)
        .query_async(&mut c)
        .await
        .unwrap();
    // With appendfsync always the reply came after the write: it is there.
    let aof = std::fs::read(
        srv.dir
            .path()
            .join("appendonlydir/appendonly.aof.1.incr.aof"),
    )
    .unwrap();
    let text = String::from_utf8_lossy(&aof);
    assert!(text.contains("PXAT"), "{text}");
    assert!(text.contains("PEXPIREAT"), "{text}");
    assert!(
        !text
            .to_lowercase()
            .contains("expire\r\n$1\r\na\r\n$3\r\n200"),
        "{text}"
    );
    assert!(
        text.contains(&format!("SREM\r\n$1\r\ns\r\n$1\r\n{popped}")),
        "{text}"
    );
    assert!(text.contains(&id), "{text}");
    assert!(
        text.contains("ABSTTL"),
        "RESTORE propagates its deadline: {text}"
    );
    let manifest =
        std::fs::read_to_string(srv.dir.path().join("appendonlydir/appendonly.aof.manifest"))
            .unwrap();
    // A start without an AOF creates an (empty) base, as Redis 7 does.
    assert_eq!(
        manifest,
        "file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n"
    );
}

#[tokio::test]
async fn truncated_tail_is_cut_or_refused_per_aof_load_truncated() {
    let mut srv = TestServer::start_with(AOF);
    let mut c = srv.conn().await;
    let _: () = c.set("k1", "v1").await.unwrap();
    let _: () = c.set("k2", "v2").await.unwrap();
    drop(c);
    srv.kill9();
    let incr = srv
        .dir
        .path()
        .join("appendonlydir/appendonly.aof.1.incr.aof");
    let good_len = std::fs::metadata(&incr).unwrap().len();
    // A torn write: half a command, then a torn MULTI.
    let mut data = std::fs::read(&incr).unwrap();
    data.extend_from_slice(b"*3\r\n$3\r\nSET\r\n$2\r\nk3");
    std::fs::write(&incr, &data).unwrap();

    // check-aof sees the damage, --fix repairs it.
    let bin = env!("CARGO_BIN_EXE_cinnabar");
    let manifest = srv.dir.path().join("appendonlydir/appendonly.aof.manifest");
    let st = Command::new(bin)
        .args(["check-aof"])
        .arg(&manifest)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(!st.success());

    // aof-load-truncated no: startup fails, naming the offset.
    let all = refused_start(srv.dir.path(), &["--aof-load-truncated", "no"]);
    assert!(all.contains(&format!("offset {good_len}")), "{all}");

    // Default (yes): loads what is complete and cuts the tail.
    srv.restart_with(AOF);
    let mut c = srv.conn().await;
    let v: Vec<Option<String>> = c.mget(&["k1", "k2", "k3"]).await.unwrap();
    assert_eq!(v, vec![Some("v1".into()), Some("v2".into()), None]);
    let _: () = c.set("k4", "v4").await.unwrap();
    drop(c);
    srv.restart_with(AOF);
    let mut c = srv.conn().await;
    let v: Vec<Option<String>> = c.mget(&["k1", "k4"]).await.unwrap();
    assert_eq!(v, vec![Some("v1".into()), Some("v4".into())]);
    drop(c);
    srv.kill9();
    let st = Command::new(bin)
        .args(["check-aof"])
        .arg(&manifest)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());

    // Garbage in the middle is not "truncation": startup refuses.
    let mut data = std::fs::read(&incr).unwrap();
    data.splice(0..0, b"garbage\r\n".iter().copied());
    std::fs::write(&incr, &data).unwrap();
    let all = refused_start(srv.dir.path(), &[]);
    assert!(
        all.contains("Bad file format") && all.contains("offset 0"),
        "{all}"
    );
}

#[tokio::test]
async fn redis_server_loads_the_aof_directory() {
    if Command::new("redis-server")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("redis-server not installed; skipping");
        return;
    }
    let mut srv = TestServer::start_with(AOF);
    let mut c = srv.conn().await;
    let _: () = c.set("a", "1").await.unwrap();
    let _: () = c.rpush("l", &["x", "y"]).await.unwrap();
    let _: () = c.hset_multiple("h", &[("f", "v")]).await.unwrap();
    let _: String = redis::cmd("XADD")
        .arg("st")
        .arg("*")
        .arg("f")
        .arg("v")
        .query_async(&mut c)
        .await
        .unwrap();
    let _: bool = c.expire("a", 1000).await.unwrap();
    drop(c);
    let before = contents(&srv).await;
    srv.kill9();
    let r = common::diff::RedisRef::start_with(&[
        "--appendonly",
        "yes",
        "--dir",
        srv.dir.path().to_str().unwrap(),
    ]);
    let Some(r) = r else {
        return;
    };
    assert_eq!(
        before,
        contents_at(&format!("redis://127.0.0.1:{}/", r.port)).await
    );
}

/// Writers get acknowledgements while the server is SIGKILLed at random
/// moments; after each restart every acknowledged write must be there.
#[tokio::test]
async fn crash_test_no_acknowledged_write_lost_with_fsync_always() {
    crash_test(AOF).await;
}

/// The same with `appendfsync everysec`: a crash of the process (not of the
/// machine) loses no acknowledged write either, because a reply goes out
/// only once its write is in the file (as Redis writes its AOF buffer
/// before replying; the page cache survives the process). Before
/// connections wrote through, the writer thread's 2 ms batching lost the
/// last acknowledged writes of most cycles.
#[tokio::test]
async fn crash_test_no_acknowledged_write_lost_with_fsync_everysec() {
    crash_test(&["--appendonly", "yes", "--appendfsync", "everysec"]).await;
}

async fn crash_test(flags: &[&str]) {
    let mut srv = TestServer::start_with(flags);
    let mut acked: Vec<u64> = Vec::new();
    let mut next = 0u64;
    for cycle in 0..4u64 {
        let deadline = 150 + (cycle * 97) % 200;
        // Connected before the kill timer starts: on a loaded machine a
        // connection made inside the writer could meet the kill first.
        let client = redis::Client::open(srv.url()).unwrap();
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        let writer = tokio::spawn(async move {
            let mut done = Vec::new();
            let mut i = next;
            loop {
                let r: redis::RedisResult<()> = c.set(format!("k{i}"), i).await;
                if r.is_err() {
                    break;
                }
                done.push(i);
                i += 1;
            }
            done
        });
        tokio::time::sleep(Duration::from_millis(deadline)).await;
        srv.kill9();
        let done = tokio::time::timeout(Duration::from_secs(10), writer)
            .await
            .unwrap()
            .unwrap();
        assert!(!done.is_empty(), "cycle {cycle}: no write acknowledged");
        next = done.last().copied().unwrap_or(next) + 1;
        acked.extend(done);
        srv.restart_with(flags);
        let mut c = srv.conn().await;
        let n: usize = redis::cmd("DBSIZE").query_async(&mut c).await.unwrap();
        assert!(
            n >= acked.len(),
            "cycle {cycle}: {n} keys, {} acknowledged",
            acked.len()
        );
        for chunk in acked.chunks(500) {
            let keys: Vec<String> = chunk.iter().map(|i| format!("k{i}")).collect();
            let vals: Vec<Option<u64>> = c.mget(&keys).await.unwrap();
            for (i, v) in chunk.iter().zip(vals) {
                assert_eq!(v, Some(*i), "cycle {cycle}: acknowledged k{i} lost");
            }
        }
    }
}

// ---- legacy single-file AOF, command bases, stream groups ------------------------

/// Runs one command, ignoring its reply (errors fail the test).
async fn run(c: &mut redis::aio::MultiplexedConnection, args: &[&str]) -> redis::Value {
    let mut q = redis::cmd(args[0]);
    for a in &args[1..] {
        q.arg(*a);
    }
    q.query_async(c)
        .await
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

async fn info_field(c: &mut redis::aio::MultiplexedConnection, field: &str) -> String {
    let info: String = redis::cmd("INFO")
        .arg("persistence")
        .query_async(c)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {info}"))
        .to_string()
}

async fn wait_rewrite(c: &mut redis::aio::MultiplexedConnection) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while info_field(c, "aof_rewrite_in_progress").await != "0" {
        assert!(
            std::time::Instant::now() < deadline,
            "rewrite did not finish"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(info_field(c, "aof_last_bgrewrite_status").await, "ok");
}

/// The files under `dir` (relative paths, sorted), for layout checks.
fn layout(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in walk(dir) {
        let rel = e.strip_prefix(dir).unwrap().to_string_lossy().to_string();
        if !rel.ends_with(".log") && !rel.starts_with("temp-") {
            out.push(rel);
        }
    }
    out.sort();
    out
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.push(p.clone());
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A server started on an existing directory (files placed before start).
struct Started {
    child: std::process::Child,
    url: String,
}

impl Started {
    fn new(dir: &std::path::Path, extra: &[&str]) -> Started {
        let (child, addr) = common::spawn_in(dir, extra);
        Started {
            child,
            url: format!("redis://{addr}/"),
        }
    }
    async fn conn(&self) -> redis::aio::MultiplexedConnection {
        conn_at(&self.url).await
    }
}

/// A connection to `url`, once the server there has finished loading.
async fn conn_at(url: &str) -> redis::aio::MultiplexedConnection {
    let c = redis::Client::open(url).unwrap();
    let mut c = c.get_multiplexed_async_connection().await.unwrap();
    for _ in 0..400 {
        let r: redis::RedisResult<redis::Value> = redis::cmd("PING").query_async(&mut c).await;
        if r.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    c
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn resp(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

const LEGACY_MANIFEST: &str =
    "file appendonly.aof seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n";

/// Redis 7 takes over a Redis <= 6 `appendonly.aof` (commands only): moved
/// into appendonlydir as the base, manifest written, data loaded; the
/// layout is the one redis-server 7 produces from the same file.
#[tokio::test]
async fn legacy_single_file_aof_is_upgraded_as_redis_7_does() {
    let dir = tempfile::tempdir().unwrap();
    let mut legacy = Vec::new();
    for cmd in [
        &["SELECT", "0"][..],
        &["SET", "k", "v"],
        &["RPUSH", "l", "a", "b", "c"],
        &["MULTI"],
        &["INCR", "n"],
        &["INCR", "n"],
        &["EXEC"],
        &["SELECT", "2"],
        &["HSET", "h", "f", "1"],
        &["PEXPIREAT", "h", "99999999999999"],
    ] {
        legacy.extend(resp(cmd));
    }
    // Redis 7 also skips `#` annotation lines (aof-timestamp-enabled).
    legacy.extend_from_slice(b"#TS:1700000000\r\n");
    legacy.extend(resp(&["SADD", "s", "x", "y"]));
    std::fs::write(dir.path().join("appendonly.aof"), &legacy).unwrap();
    let srv = Started::new(dir.path(), AOF);
    let mut c = srv.conn().await;
    let v: Option<String> = c.get("k").await.unwrap();
    assert_eq!(v.as_deref(), Some("v"));
    let l: Vec<String> = c.lrange("l", 0, -1).await.unwrap();
    assert_eq!(l, ["a", "b", "c"]);
    let n: i64 = c.get("n").await.unwrap();
    assert_eq!(n, 2);
    run(&mut c, &["SELECT", "2"]).await;
    let h: String = c.hget("h", "f").await.unwrap();
    assert_eq!(h, "1");
    let ttl: i64 = c.pttl("h").await.unwrap();
    assert!(ttl > 0);
    let sm: usize = c.scard("s").await.unwrap();
    assert_eq!(sm, 2);
    let want_layout = [
        "appendonlydir",
        "appendonlydir/appendonly.aof",
        "appendonlydir/appendonly.aof.1.incr.aof",
        "appendonlydir/appendonly.aof.manifest",
    ];
    assert_eq!(layout(dir.path()), want_layout);
    let manifest =
        std::fs::read_to_string(dir.path().join("appendonlydir/appendonly.aof.manifest")).unwrap();
    assert_eq!(manifest, LEGACY_MANIFEST);
    // New writes go to the incremental file; a restart (no upgrade now)
    // replays base + incr.
    run(&mut c, &["SELECT", "0"]).await;
    run(&mut c, &["SET", "after", "1"]).await;
    drop(c);
    drop(srv);
    let srv = Started::new(dir.path(), AOF);
    let mut c = srv.conn().await;
    let v: Vec<Option<String>> = c.mget(&["k", "after"]).await.unwrap();
    assert_eq!(v, [Some("v".into()), Some("1".into())]);
    assert_eq!(layout(dir.path()), want_layout);
    // The first rewrite retires the legacy base as Redis does.
    run(&mut c, &["BGREWRITEAOF"]).await;
    wait_rewrite(&mut c).await;
    let manifest =
        std::fs::read_to_string(dir.path().join("appendonlydir/appendonly.aof.manifest")).unwrap();
    assert_eq!(
        manifest,
        "file appendonly.aof.2.base.rdb seq 2 type b\nfile appendonly.aof.2.incr.aof seq 2 type i\n"
    );
    assert!(!dir.path().join("appendonlydir/appendonly.aof").exists());
    drop(c);
    drop(srv);

    // redis-server 7 upgrading the same file produces the same layout.
    let rdir = tempfile::tempdir().unwrap();
    std::fs::write(rdir.path().join("appendonly.aof"), &legacy).unwrap();
    let Some(r) = common::diff::RedisRef::start_with(&[
        "--appendonly",
        "yes",
        "--dir",
        rdir.path().to_str().unwrap(),
    ]) else {
        return;
    };
    let mut rc = conn_at(&format!("redis://127.0.0.1:{}/", r.port)).await;
    let v: Option<String> = rc.get("k").await.unwrap();
    assert_eq!(v.as_deref(), Some("v"));
    assert_eq!(layout(rdir.path()), want_layout);
    assert_eq!(
        std::fs::read_to_string(rdir.path().join("appendonlydir/appendonly.aof.manifest")).unwrap(),
        LEGACY_MANIFEST
    );
}

/// A Redis 4-6 AOF with an RDB preamble (the RDB of a SAVE followed by
/// commands): the preamble and the tail are both loaded; check-aof checks
/// both parts; redis-server loads the upgraded directory to the same data.
#[tokio::test]
async fn legacy_aof_with_rdb_preamble_is_upgraded_and_loaded() {
    let mut srv = TestServer::start();
    let mut c = srv.conn().await;
    run(&mut c, &["SET", "a", "1"]).await;
    run(&mut c, &["RPUSH", "l", "x", "y"]).await;
    run(&mut c, &["HSET", "h", "f", "v"]).await;
    run(&mut c, &["ZADD", "z", "1.5", "m"]).await;
    run(&mut c, &["XADD", "st", "1-1", "f", "v"]).await;
    run(&mut c, &["SET", "gone", "1"]).await;
    run(&mut c, &["SAVE"]).await;
    drop(c);
    srv.kill9();
    let dir = srv.dir.path().to_path_buf();
    let mut aof = std::fs::read(dir.join("dump.rdb")).unwrap();
    std::fs::remove_file(dir.join("dump.rdb")).unwrap();
    for cmd in [
        &["SELECT", "0"][..],
        &["INCR", "a"],
        &["DEL", "gone"],
        &["RPUSH", "l", "z"],
        &["SET", "tail", "t"],
    ] {
        aof.extend(resp(cmd));
    }
    // check-aof on the legacy file itself: preamble, then the tail, whose
    // torn last command --fix cuts at the right offset.
    let bin = env!("CARGO_BIN_EXE_cinnabar");
    let legacy = dir.join("appendonly.aof");
    let mut torn = aof.clone();
    torn.extend_from_slice(b"*2\r\n$3\r\nDEL\r\n$1");
    std::fs::write(&legacy, &torn).unwrap();
    let check = |fix: bool| {
        let mut cmd = Command::new(bin);
        cmd.arg("check-aof");
        if fix {
            cmd.arg("--fix");
        }
        cmd.arg(&legacy).output().unwrap()
    };
    let out = check(false);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("ok_up_to={}", aof.len())));
    assert!(check(true).status.success());
    assert_eq!(std::fs::read(&legacy).unwrap(), aof);
    assert!(check(false).status.success());
    let expected_rest = |v: Vec<Option<String>>| {
        assert_eq!(v, [Some("2".into()), None, Some("t".into())]);
    };
    srv.restart_with(AOF);
    let mut c = srv.conn().await;
    let v: Vec<Option<String>> = c.mget(&["a", "gone", "tail"]).await.unwrap();
    expected_rest(v);
    let l: Vec<String> = c.lrange("l", 0, -1).await.unwrap();
    assert_eq!(l, ["x", "y", "z"]);
    let before = contents(&srv).await;
    drop(c);
    assert_eq!(
        std::fs::read_to_string(dir.join("appendonlydir/appendonly.aof.manifest")).unwrap(),
        LEGACY_MANIFEST
    );
    srv.kill9();
    // check-aof understands the preamble + tail base.
    let manifest = dir.join("appendonlydir/appendonly.aof.manifest");
    let out = Command::new(bin)
        .arg("check-aof")
        .arg(&manifest)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("RDB preamble"));
    // Restarting (no upgrade this time) gives the same data.
    srv.restart_with(AOF);
    assert_eq!(before, contents(&srv).await);
    srv.kill9();
    // redis-server reads the same directory to the same data.
    if let Some(r) =
        common::diff::RedisRef::start_with(&["--appendonly", "yes", "--dir", dir.to_str().unwrap()])
    {
        assert_eq!(
            before,
            contents_at(&format!("redis://127.0.0.1:{}/", r.port)).await
        );
    }
    // A damaged preamble is reported by check-aof and refused at startup.
    let base = dir.join("appendonlydir/appendonly.aof");
    let mut data = std::fs::read(&base).unwrap();
    data[12] ^= 0xff;
    data[20] ^= 0xff;
    std::fs::write(&base, &data).unwrap();
    let st = Command::new(bin)
        .arg("check-aof")
        .arg(&manifest)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!st.success());
}

/// Flattens a reply into strings (for comparing nested replies with some
/// fields masked).
fn flat(v: &redis::Value, out: &mut Vec<String>) {
    match v {
        redis::Value::Array(items) | redis::Value::Set(items) => {
            out.push(format!("[{}", items.len()));
            for i in items {
                flat(i, out);
            }
        }
        redis::Value::Map(kv) => {
            out.push(format!("{{{}", kv.len()));
            for (k, v) in kv {
                flat(k, out);
                flat(v, out);
            }
        }
        redis::Value::BulkString(b) => out.push(String::from_utf8_lossy(b).to_string()),
        redis::Value::SimpleString(s) => out.push(s.clone()),
        redis::Value::Int(n) => out.push(n.to_string()),
        other => out.push(format!("{other:?}")),
    }
}

/// XINFO STREAM FULL with the values after the `mask`ed field names
/// replaced (times that no AOF carries, internal node counts).
async fn xinfo_full(
    c: &mut redis::aio::MultiplexedConnection,
    key: &str,
    mask: &[&str],
) -> Vec<String> {
    let v = run(c, &["XINFO", "STREAM", key, "FULL"]).await;
    let mut out = Vec::new();
    flat(&v, &mut out);
    for i in 0..out.len().saturating_sub(1) {
        if mask.contains(&out[i].as_str()) {
            out[i + 1] = "*".into();
        }
    }
    out
}

/// Everything observable about databases 0-2: per key its type, encoding,
/// absolute expiry and digest (streams: XINFO STREAM FULL without consumer
/// seen-times and XPENDING of every group), plus the function libraries.
async fn full_state(c: &mut redis::aio::MultiplexedConnection) -> Vec<String> {
    let mut out = Vec::new();
    for db in 0..3 {
        run(c, &["SELECT", &db.to_string()]).await;
        let mut keys: Vec<String> = c.keys("*").await.unwrap();
        keys.sort();
        for k in keys {
            let t: String = redis::cmd("TYPE").arg(&k).query_async(c).await.unwrap();
            let enc: String = redis::cmd("OBJECT")
                .arg("ENCODING")
                .arg(&k)
                .query_async(c)
                .await
                .unwrap();
            let exp: i64 = redis::cmd("PEXPIRETIME")
                .arg(&k)
                .query_async(c)
                .await
                .unwrap();
            out.push(format!("{db} {k} {t} {enc} {exp}"));
            if t == "stream" {
                out.extend(
                    xinfo_full(c, &k, &["seen-time", "radix-tree-keys", "radix-tree-nodes"]).await,
                );
                let groups = run(c, &["XINFO", "GROUPS", &k]).await;
                let mut g = Vec::new();
                flat(&groups, &mut g);
                for (i, w) in g.iter().enumerate() {
                    if w == "name" {
                        // (The extended form's idle times change with
                        // the clock; XINFO above has the absolute times.)
                        let p = run(c, &["XPENDING", &k, &g[i + 1]]).await;
                        flat(&p, &mut out);
                    }
                }
            } else {
                flat(&run(c, &["DEBUG", "DIGEST-VALUE", &k]).await, &mut out);
            }
        }
    }
    run(c, &["SELECT", "0"]).await;
    flat(&run(c, &["FUNCTION", "LIST", "WITHCODE"]).await, &mut out);
    out
}

/// Every type and encoding, large enough to need several commands per key.
async fn fill_every_type(c: &mut redis::aio::MultiplexedConnection) {
    run(
        c,
        &[
            "FUNCTION",
            "LOAD",
            "#!lua name=mylib\nredis.register_function('f1', function() return 1 end)",
        ],
    )
    .await;
    run(c, &["SET", "str", "hello"]).await;
    run(c, &["SET", "int", "-12345"]).await;
    run(c, &["SET", "raw", &"x".repeat(100)]).await;
    run(c, &["APPEND", "appended", "abc"]).await;
    run(c, &["SET", "bin", "a\r\nb\0c"]).await;
    run(c, &["SET", "exp", "v", "PXAT", "99999999999999"]).await;
    run(c, &["RPUSH", "small-list", "a", "1", "b"]).await;
    for i in 0..300 {
        run(c, &["RPUSH", "big-list", &format!("e{i}"), &i.to_string()]).await;
    }
    run(c, &["SADD", "intset", "3", "1", "-7", "100000"]).await;
    run(c, &["SADD", "strset", "a", "b", "c"]).await;
    for i in 0..200 {
        run(c, &["SADD", "bigset", &format!("m{i}"), &i.to_string()]).await;
    }
    run(
        c,
        &[
            "ZADD", "small-z", "1.5", "a", "-inf", "b", "inf", "c", "0.1", "d",
        ],
    )
    .await;
    for i in 0..200 {
        run(
            c,
            &[
                "ZADD",
                "big-z",
                &format!("{}.25", i * 7 % 13),
                &format!("m{i}"),
            ],
        )
        .await;
    }
    run(c, &["HSET", "small-h", "f", "v", "n", "1"]).await;
    for i in 0..600 {
        run(c, &["HSET", "big-h", &format!("f{i}"), &format!("v{i}")]).await;
    }
    run(c, &["EXPIRE", "big-h", "100000"]).await;
    // Streams: deleted entries, groups with pending entries, a consumer
    // with nothing pending, a NOACK read, an empty stream with a group.
    for i in 1..=10 {
        run(
            c,
            &[
                "XADD",
                "st",
                &format!("{i}-1"),
                "f",
                &i.to_string(),
                "g",
                "x",
            ],
        )
        .await;
    }
    run(c, &["XDEL", "st", "3-1", "10-1"]).await;
    run(c, &["XGROUP", "CREATE", "st", "g1", "0"]).await;
    run(
        c,
        &["XGROUP", "CREATE", "st", "g2", "$", "ENTRIESREAD", "9"],
    )
    .await;
    run(
        c,
        &[
            "XREADGROUP",
            "GROUP",
            "g1",
            "alice",
            "COUNT",
            "3",
            "STREAMS",
            "st",
            ">",
        ],
    )
    .await;
    run(
        c,
        &[
            "XREADGROUP",
            "GROUP",
            "g1",
            "bob",
            "COUNT",
            "2",
            "STREAMS",
            "st",
            ">",
        ],
    )
    .await;
    run(
        c,
        &[
            "XREADGROUP",
            "GROUP",
            "g1",
            "carol",
            "NOACK",
            "COUNT",
            "1",
            "STREAMS",
            "st",
            ">",
        ],
    )
    .await;
    run(
        c,
        &["XCLAIM", "st", "g1", "bob", "0", "1-1", "RETRYCOUNT", "7"],
    )
    .await;
    run(c, &["XACK", "st", "g1", "2-1"]).await;
    run(c, &["XGROUP", "CREATECONSUMER", "st", "g2", "dave"]).await;
    run(c, &["XADD", "empty", "MAXLEN", "0", "5-5", "a", "b"]).await;
    run(c, &["XGROUP", "CREATE", "empty", "eg", "$"]).await;
    run(c, &["XGROUP", "CREATE", "mk", "g", "$", "MKSTREAM"]).await;
    run(c, &["SELECT", "1"]).await;
    run(c, &["SET", "other-db", "1"]).await;
    run(c, &["ZADD", "z1", "2", "x"]).await;
    run(c, &["SELECT", "0"]).await;
}

/// `aof-use-rdb-preamble no`: the rewrite's base is commands
/// (`.base.aof`, type b) reproducing every type exactly; the server, check-aof
/// and redis-server all load it.
#[tokio::test]
async fn rewrite_without_rdb_preamble_writes_a_command_base() {
    const NO_PREAMBLE: &[&str] = &[
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--aof-use-rdb-preamble",
        "no",
    ];
    let mut srv = TestServer::start_with(NO_PREAMBLE);
    let mut c = srv.conn().await;
    fill_every_type(&mut c).await;
    run(&mut c, &["BGREWRITEAOF"]).await;
    wait_rewrite(&mut c).await;
    run(&mut c, &["SET", "after-rewrite", "1"]).await;
    let before = full_state(&mut c).await;
    let rough = contents(&srv).await;
    let mask = &["seen-time", "radix-tree-keys", "radix-tree-nodes"][..];
    let mut streams_before = std::collections::HashMap::new();
    for k in ["st", "empty", "mk"] {
        streams_before.insert(k, xinfo_full(&mut c, k, mask).await);
    }
    drop(c);
    let adir = srv.dir.path().join("appendonlydir");
    assert_eq!(
        std::fs::read_to_string(adir.join("appendonly.aof.manifest")).unwrap(),
        "file appendonly.aof.2.base.aof seq 2 type b\nfile appendonly.aof.2.incr.aof seq 2 type i\n"
    );
    // The empty base written at startup (seq 1) was retired.
    assert!(!adir.join("appendonly.aof.1.base.aof").exists());
    let base = std::fs::read(adir.join("appendonly.aof.2.base.aof")).unwrap();
    let text = String::from_utf8_lossy(&base);
    assert!(
        text.starts_with("*3\r\n$8\r\nFUNCTION\r\n$4\r\nLOAD\r\n"),
        "{text}"
    );
    for cmd in [
        "HMSET",
        "RPUSH",
        "SADD",
        "ZADD",
        "XSETID",
        "XCLAIM",
        "CREATECONSUMER",
        "PEXPIREAT",
    ] {
        assert!(text.contains(cmd), "{cmd} missing");
    }
    // 64 items per command at most, as Redis.
    assert!(text.contains("*66\r\n$5\r\nRPUSH\r\n$8\r\nbig-list\r\n"));
    assert!(!text.contains("*67\r\n"));
    srv.restart_with(NO_PREAMBLE);
    let mut c = srv.conn().await;
    assert_eq!(before, full_state(&mut c).await);
    // A second rewrite from the replayed state gives the same result.
    run(&mut c, &["BGREWRITEAOF"]).await;
    wait_rewrite(&mut c).await;
    drop(c);
    srv.restart_with(AOF);
    let mut c = srv.conn().await;
    assert_eq!(before, full_state(&mut c).await);
    drop(c);
    srv.kill9();
    let bin = env!("CARGO_BIN_EXE_cinnabar");
    let st = Command::new(bin)
        .arg("check-aof")
        .arg(adir.join("appendonly.aof.manifest"))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    if let Some(r) = common::diff::RedisRef::start_with(&[
        "--appendonly",
        "yes",
        "--dir",
        srv.dir.path().to_str().unwrap(),
    ]) {
        let url = format!("redis://127.0.0.1:{}/", r.port);
        assert_eq!(rough, contents_at(&url).await);
        // Streams, groups and PELs as redis-server rebuilds them from our
        // command base.
        let mut rc = conn_at(&url).await;
        for k in ["st", "empty", "mk"] {
            assert_eq!(streams_before[k], xinfo_full(&mut rc, k, mask).await, "{k}");
        }
    }
}

/// A consumer-group workload: XREADGROUP (COUNT, NOACK, new consumers),
/// XCLAIM (IDLE, FORCE, RETRYCOUNT, LASTID, a deleted entry), XAUTOCLAIM
/// (claims and drops), XACK, XGROUP SETID.
async fn group_workload(c: &mut redis::aio::MultiplexedConnection) {
    for i in 1..=12 {
        run(c, &["XADD", "s", &format!("{i}-0"), "k", &i.to_string()]).await;
    }
    run(c, &["XGROUP", "CREATE", "s", "g", "0"]).await;
    run(c, &["XGROUP", "CREATE", "s", "h", "$"]).await;
    run(
        c,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "c1",
            "COUNT",
            "3",
            "STREAMS",
            "s",
            ">",
        ],
    )
    .await;
    run(
        c,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "c2",
            "COUNT",
            "2",
            "STREAMS",
            "s",
            ">",
        ],
    )
    .await;
    run(
        c,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "c3",
            "NOACK",
            "COUNT",
            "2",
            "STREAMS",
            "s",
            ">",
        ],
    )
    .await;
    // Nothing new for h: no change, nothing propagated.
    run(c, &["XREADGROUP", "GROUP", "h", "x", "STREAMS", "s", ">"]).await;
    run(
        c,
        &["XCLAIM", "s", "g", "c4", "0", "1-0", "2-0", "IDLE", "5000"],
    )
    .await;
    run(
        c,
        &[
            "XCLAIM",
            "s",
            "g",
            "c4",
            "0",
            "8-0",
            "FORCE",
            "RETRYCOUNT",
            "4",
        ],
    )
    .await;
    run(
        c,
        &["XCLAIM", "s", "g", "c1", "0", "9-0", "FORCE", "JUSTID"],
    )
    .await;
    run(c, &["XCLAIM", "s", "g", "c1", "0", "99-0", "LASTID", "9-0"]).await;
    run(c, &["XDEL", "s", "3-0", "4-0"]).await;
    run(c, &["XCLAIM", "s", "g", "c2", "0", "3-0"]).await;
    run(c, &["XAUTOCLAIM", "s", "g", "c5", "0", "0", "COUNT", "3"]).await;
    run(c, &["XACK", "s", "g", "9-0"]).await;
    run(c, &["XREADGROUP", "GROUP", "g", "c6", "STREAMS", "s", ">"]).await;
    run(
        c,
        &[
            "XREADGROUP",
            "GROUP",
            "h",
            "y",
            "NOACK",
            "STREAMS",
            "s",
            "0",
        ],
    )
    .await;
    run(c, &["XADD", "s", "13-0", "k", "13"]).await;
    run(
        c,
        &[
            "XREADGROUP",
            "GROUP",
            "h",
            "y",
            "NOACK",
            "STREAMS",
            "s",
            ">",
        ],
    )
    .await;
    run(
        c,
        &["XGROUP", "SETID", "s", "h", "11-0", "ENTRIESREAD", "10"],
    )
    .await;
}

/// Consumer groups survive an AOF replay: XREADGROUP/XCLAIM/XAUTOCLAIM are
/// propagated as Redis 7.0 propagates them (XCLAIM … TIME RETRYCOUNT FORCE
/// JUSTID LASTID, XGROUP SETID / CREATECONSUMER, never XREADGROUP itself),
/// plus an XGROUP SETID carrying entries-read), so the PEL (owners,
/// delivery times and counts), last-delivered IDs and entries-read are
/// identical after a restart, and the state after a restart is the one
/// redis-server reaches from the same workload (but for entries-read,
/// which redis-server loses).
#[tokio::test]
async fn stream_groups_are_propagated_as_redis_does() {
    let mut srv = TestServer::start_with(AOF);
    let mut c = srv.conn().await;
    group_workload(&mut c).await;
    // Consumer seen-times are carried by no AOF.
    let mask = &["seen-time", "radix-tree-keys", "radix-tree-nodes"][..];
    let before = xinfo_full(&mut c, "s", mask).await;
    let pending_before = run(&mut c, &["XPENDING", "s", "g"]).await;
    drop(c);
    let incr = std::fs::read(
        srv.dir
            .path()
            .join("appendonlydir/appendonly.aof.1.incr.aof"),
    )
    .unwrap();
    let text = String::from_utf8_lossy(&incr).to_lowercase();
    assert!(
        !text.contains("xreadgroup"),
        "XREADGROUP is never propagated"
    );
    assert!(
        !text.contains("xautoclaim"),
        "XAUTOCLAIM is never propagated"
    );
    assert!(text.contains("createconsumer") && text.contains("setid") && text.contains("lastid"));
    srv.restart_with(AOF);
    let mut c = srv.conn().await;
    assert_eq!(before, xinfo_full(&mut c, "s", mask).await);
    assert_eq!(pending_before, run(&mut c, &["XPENDING", "s", "g"]).await);
    // Against redis-server: entries-read and lag aside, which Redis loses
    // (its XCLAIM LASTID does not carry the counter; we add XGROUP SETID).
    let cross = &[
        "seen-time",
        "radix-tree-keys",
        "radix-tree-nodes",
        "entries-read",
        "lag",
    ][..];
    let ours_after = xinfo_full(&mut c, "s", cross).await;
    drop(c);
    srv.kill9();
    // redis-server replaying our AOF reaches exactly our state (entries-read
    // included: it applies the XGROUP SETID we add).
    if let Some(r) = common::diff::RedisRef::start_with(&[
        "--appendonly",
        "yes",
        "--dir",
        srv.dir.path().to_str().unwrap(),
    ]) {
        let mut rc = conn_at(&format!("redis://127.0.0.1:{}/", r.port)).await;
        assert_eq!(before, xinfo_full(&mut rc, "s", mask).await);
    }

    // redis-server: the same workload, restarted from its AOF, reaches the
    // same state (delivery times aside: another clock).
    let rdir = tempfile::tempdir().unwrap();
    let args = [
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--dir",
        rdir.path().to_str().unwrap(),
    ];
    let Some(r) = common::diff::RedisRef::start_with(&args) else {
        return;
    };
    let mut rc = conn_at(&format!("redis://127.0.0.1:{}/", r.port)).await;
    group_workload(&mut rc).await;
    drop(rc);
    drop(r);
    let r = common::diff::RedisRef::start_with(&args).unwrap();
    let mut rc = conn_at(&format!("redis://127.0.0.1:{}/", r.port)).await;
    let theirs_after = xinfo_full(&mut rc, "s", cross).await;
    let times = |v: Vec<String>| -> Vec<String> {
        v.into_iter()
            .map(|s| {
                if s.len() == 13 && s.parse::<u64>().is_ok() {
                    "T".into()
                } else {
                    s
                }
            })
            .collect()
    };
    assert_eq!(times(theirs_after), times(ours_after));
}

/// A blocked XREADGROUP served by a later XADD propagates like a direct
/// one: its delivery survives a restart.
#[tokio::test]
async fn blocked_xreadgroup_served_later_is_propagated() {
    let mut srv = TestServer::start_with(AOF);
    let mut c = srv.conn().await;
    run(&mut c, &["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"]).await;
    let url = srv.url();
    let reader = tokio::spawn(async move {
        let client = redis::Client::open(url).unwrap();
        let mut b = client.get_multiplexed_async_connection().await.unwrap();
        run(
            &mut b,
            &[
                "XREADGROUP",
                "GROUP",
                "g",
                "c1",
                "BLOCK",
                "5000",
                "STREAMS",
                "s",
                ">",
            ],
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    run(&mut c, &["XADD", "s", "7-1", "f", "v"]).await;
    let got = tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(got, redis::Value::Array(ref a) if !a.is_empty()),
        "{got:?}"
    );
    let mask = &["seen-time", "radix-tree-keys", "radix-tree-nodes"][..];
    let before = xinfo_full(&mut c, "s", mask).await;
    assert!(before.contains(&"c1".to_string()), "{before:?}");
    drop(c);
    srv.restart_with(AOF);
    let mut c = srv.conn().await;
    assert_eq!(before, xinfo_full(&mut c, "s", mask).await);
}

/// Waits until the wall clock enters a new second (unix secs returned).
async fn next_second() -> u64 {
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let start = now();
    while now() == start {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    now()
}

/// aof-timestamp-enabled writes Redis's `#TS:<secs>` annotations (before
/// the first command of each new second, and at the top of a command
/// base); the server loads such files, and `check-aof
/// --truncate-to-timestamp` cuts the AOF back to a point in time.
#[tokio::test]
async fn timestamp_annotations_and_truncate_to_timestamp() {
    let mut srv = TestServer::start_with(&[
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--aof-timestamp-enabled",
        "yes",
    ]);
    let mut c = srv.conn().await;
    next_second().await;
    run(&mut c, &["SET", "a", "1"]).await;
    let t2 = next_second().await;
    run(&mut c, &["SET", "b", "2"]).await;
    next_second().await;
    run(&mut c, &["SET", "c", "3"]).await;
    drop(c);
    srv.kill9();
    let adir = srv.dir.path().join("appendonlydir");
    let incr = adir.join("appendonly.aof.1.incr.aof");
    let text = String::from_utf8(std::fs::read(&incr).unwrap()).unwrap();
    let stamps: Vec<u64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("#TS:"))
        .map(|t| t.parse().unwrap())
        .collect();
    assert_eq!(stamps.len(), 3, "{text:?}");
    assert!(stamps.windows(2).all(|w| w[0] < w[1]), "{stamps:?}");
    assert!(text.starts_with("#TS:"), "{text:?}");

    // The annotated file loads whole.
    srv.restart_with(&["--appendonly", "yes"]);
    let mut c = srv.conn().await;
    let got: Vec<Option<String>> = redis::cmd("MGET")
        .arg(&["a", "b", "c"])
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(got, [Some("1".into()), Some("2".into()), Some("3".into())]);
    drop(c);
    srv.kill9();

    // Back to the second of `b`: `c` (a later second) is cut off.
    let bin = env!("CARGO_BIN_EXE_cinnabar");
    let manifest = adir.join("appendonly.aof.manifest");
    let out = Command::new(bin)
        .args(["check-aof", "--truncate-to-timestamp", &t2.to_string()])
        .arg(&manifest)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains(&format!(
            "Successfully truncated AOF {} to timestamp {t2}",
            incr.display()
        )),
        "{said}"
    );
    srv.restart_with(&["--appendonly", "yes"]);
    let mut c = srv.conn().await;
    let got: Vec<Option<String>> = redis::cmd("MGET")
        .arg(&["a", "b", "c"])
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(got, [Some("1".into()), Some("2".into()), None]);

    // A rewrite without the RDB preamble starts its base with a timestamp.
    run(&mut c, &["CONFIG", "SET", "aof-use-rdb-preamble", "no"]).await;
    run(&mut c, &["CONFIG", "SET", "aof-timestamp-enabled", "yes"]).await;
    run(&mut c, &["BGREWRITEAOF"]).await;
    wait_rewrite(&mut c).await;
    let m = std::fs::read_to_string(&manifest).unwrap();
    let base = m
        .lines()
        .find(|l| l.ends_with("type b"))
        .and_then(|l| l.split(' ').nth(1))
        .unwrap()
        .to_string();
    let b = std::fs::read(adir.join(&base)).unwrap();
    assert!(b.starts_with(b"#TS:"), "{:?}", String::from_utf8_lossy(&b));
}

/// A command the server does not know stops the load with Redis's message
/// (skipping it would load a different dataset than the one written).
#[tokio::test]
async fn unknown_command_in_the_aof_stops_startup() {
    let mut srv = TestServer::start_with(AOF);
    let mut c = srv.conn().await;
    let _: () = c.set("k1", "v1").await.unwrap();
    drop(c);
    srv.kill9();
    let incr = srv
        .dir
        .path()
        .join("appendonlydir/appendonly.aof.1.incr.aof");
    let mut data = std::fs::read(&incr).unwrap();
    data.extend_from_slice(b"*2\r\n$9\r\nNOSUCHCMD\r\n$1\r\nx\r\n");
    std::fs::write(&incr, &data).unwrap();
    let all = refused_start(srv.dir.path(), &[]);
    assert!(
        all.contains("Unknown command 'NOSUCHCMD' reading the append only file"),
        "{all}"
    );
}

/// DEBUG LOADAOF (Redis's test aid): the AOF is fsynced, the dataset and
/// the function libraries emptied and loaded back from the files, so the
/// dataset becomes exactly what the AOF holds; the replay itself is not
/// appended again (a second LOADAOF finds the same files).
#[tokio::test]
async fn debug_loadaof_reloads_what_the_aof_holds() {
    let srv = TestServer::start_with(&["--save", "", "--appendonly", "yes"]);
    let mut c = srv.conn().await;
    run(&mut c, &["SET", "a", "1"]).await;
    run(&mut c, &["SET", "b", "2", "EX", "100"]).await;
    run(&mut c, &["RPUSH", "l", "x", "y", "z"]).await;
    run(
        &mut c,
        &[
            "FUNCTION",
            "LOAD",
            "#!lua name=lib\nredis.register_function('f', function() return 7 end)",
        ],
    )
    .await;
    let before = contents(&srv).await;
    let aof_dir = srv.dir.path().join("appendonlydir");
    let size = |d: &std::path::Path| -> u64 {
        std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| e.metadata().unwrap().len())
            .sum()
    };
    for _ in 0..2 {
        assert_eq!(run(&mut c, &["DEBUG", "LOADAOF"]).await, redis::Value::Okay);
        assert_eq!(contents(&srv).await, before);
    }
    let after_two = size(&aof_dir);
    assert_eq!(run(&mut c, &["DEBUG", "LOADAOF"]).await, redis::Value::Okay);
    assert_eq!(size(&aof_dir), after_two, "the replay is not appended");
    let ttl: i64 = c.ttl("b").await.unwrap();
    assert!((90..=100).contains(&ttl), "{ttl}");
    let f: i64 = redis::cmd("FCALL")
        .arg("f")
        .arg(0)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(f, 7);
    // A key set but not in the AOF cannot exist: everything written is.
    run(&mut c, &["SET", "late", "x"]).await;
    assert_eq!(run(&mut c, &["DEBUG", "LOADAOF"]).await, redis::Value::Okay);
    let late: Option<String> = c.get("late").await.unwrap();
    assert_eq!(late.as_deref(), Some("x"));
}

/// DEBUG LOADAOF and DEBUG RELOAD load on the calling worker without
/// leaving its other connections unserved: with a single async worker (the
/// default on two cores) and a slow load (`key-load-delay`), another client
/// is answered `-LOADING` meanwhile, as Redis answers during any load once
/// it has read `loading-process-events-interval-bytes` (until then, as
/// Redis, the server serves no one: the command waits), and everything is
/// back once the command returns.
#[tokio::test]
async fn other_clients_are_told_loading_during_debug_loadaof_and_reload() {
    let srv =
        TestServer::start_with(&["--save", "", "--appendonly", "yes", "--worker-threads", "1"]);
    let mut c = srv.conn().await;
    // Values LZF cannot shrink, 200 bytes each: the first 1 KB of the
    // files is read within the first five keys.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for j in 0..100 {
        let v: String = (0..25)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                format!("{:08x}", x >> 32)
            })
            .collect();
        run(&mut c, &["SET", &format!("k{j}"), &v]).await;
    }
    // The base becomes an RDB preamble, which key-load-delay slows.
    run(&mut c, &["BGREWRITEAOF"]).await;
    wait_rewrite(&mut c).await;
    run(&mut c, &["SAVE"]).await;
    // 100 keys at 20 ms each: two seconds of loading. Clients are served
    // (told -LOADING) after the first 1 KB, as Redis's own tests set it.
    run(&mut c, &["CONFIG", "SET", "key-load-delay", "20000"]).await;
    run(
        &mut c,
        &[
            "CONFIG",
            "SET",
            "loading-process-events-interval-bytes",
            "1024",
        ],
    )
    .await;
    for cmd in [
        &["DEBUG", "LOADAOF"][..],
        &["DEBUG", "RELOAD", "NOSAVE"][..],
    ] {
        let mut loader = srv.conn().await;
        let args: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
        let load = tokio::spawn(async move {
            let mut q = redis::cmd(&args[0]);
            q.arg(&args[1..]);
            q.query_async::<redis::Value>(&mut loader).await
        });
        let mut other = srv.conn().await;
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let seen = loop {
            let r = tokio::time::timeout(
                Duration::from_millis(500),
                redis::cmd("PING").query_async::<String>(&mut other),
            )
            .await
            .unwrap_or_else(|_| panic!("{cmd:?}: PING unanswered during the load"));
            match r {
                Err(e) if e.code() == Some("LOADING") => break true,
                Err(e) => panic!("{cmd:?}: {e}"),
                Ok(_) if std::time::Instant::now() > deadline => break false,
                Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        };
        assert!(seen, "{cmd:?}: no -LOADING seen");
        let r = tokio::time::timeout(Duration::from_secs(30), load)
            .await
            .expect("the load finishes")
            .unwrap();
        assert_eq!(r.unwrap(), redis::Value::Okay, "{cmd:?}");
        let pong: String = redis::cmd("PING").query_async(&mut other).await.unwrap();
        assert_eq!(pong, "PONG");
        let n: u64 = redis::cmd("DBSIZE").query_async(&mut c).await.unwrap();
        assert_eq!(n, 100, "{cmd:?}");
    }
}

/// As Redis 7: BGREWRITEAOF with the AOF off leaves a manifest naming the
/// new base alone (DEBUG LOADAOF then reproduces the dataset), and turning
/// the AOF off kills a running rewrite child, which is not a failed
/// rewrite.
#[tokio::test]
async fn rewrite_with_aof_off_and_turning_aof_off_during_a_rewrite() {
    async fn wait_rewrite(c: &mut redis::aio::MultiplexedConnection) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let info: String = redis::cmd("INFO")
                .arg("persistence")
                .query_async(c)
                .await
                .unwrap();
            if info.contains("aof_rewrite_in_progress:0")
                && info.contains("aof_rewrite_scheduled:0")
            {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "rewrite never ended");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let srv = TestServer::start_with(&["--save", ""]);
    let mut c = srv.conn().await;
    for i in 0..200 {
        run(&mut c, &["RPUSH", "l", &format!("e{i}")]).await;
        run(&mut c, &["SADD", "s", &i.to_string()]).await;
    }
    let d1 = run(&mut c, &["DEBUG", "DIGEST"]).await;
    run(&mut c, &["BGREWRITEAOF"]).await;
    wait_rewrite(&mut c).await;
    let manifest =
        std::fs::read_to_string(srv.dir.path().join("appendonlydir/appendonly.aof.manifest"))
            .unwrap();
    assert!(
        manifest.contains("type b") && !manifest.contains("type i"),
        "{manifest}"
    );
    run(&mut c, &["DEBUG", "LOADAOF"]).await;
    assert_eq!(run(&mut c, &["DEBUG", "DIGEST"]).await, d1);

    run(&mut c, &["CONFIG", "SET", "appendonly", "yes"]).await;
    wait_rewrite(&mut c).await;
    run(&mut c, &["CONFIG", "SET", "rdb-key-save-delay", "10000000"]).await;
    run(&mut c, &["BGREWRITEAOF"]).await;
    run(&mut c, &["CONFIG", "SET", "appendonly", "no"]).await;
    wait_rewrite(&mut c).await;
    let info: String = redis::cmd("INFO")
        .arg("persistence")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(info.contains("aof_last_bgrewrite_status:ok"), "{info}");
    assert!(info.contains("aof_enabled:0"), "{info}");
}

/// Starts `cinnabar --appendonly yes` (plus `extra`) on `dir` expecting a
/// refusal; returns its stdout and stderr.
fn refused_start(dir: &std::path::Path, extra: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_cinnabar"))
        .args(["--port", "0", "--appendonly", "yes"])
        .args(extra)
        .arg("--dir")
        .arg(dir)
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "started anyway:\n{all}");
    all
}

/// Commands replayed from an AOF see no key as expired, and a deadline
/// already past is stored, not turned into a deletion (as Redis while
/// loading): `RPUSH l foo`, `PEXPIREAT l 1000`, `RPUSH l bar` loads one
/// list that has expired, not a fresh `[bar]` without a TTL.
#[tokio::test]
async fn a_deadline_passed_inside_the_aof_is_replayed_as_redis_does() {
    let mut srv = TestServer::start_with(AOF);
    let mut c = srv.conn().await;
    let _: () = c.set("kept", "1").await.unwrap();
    drop(c);
    srv.kill9();
    let incr = srv
        .dir
        .path()
        .join("appendonlydir/appendonly.aof.1.incr.aof");
    let mut data = std::fs::read(&incr).unwrap();
    for cmd in [
        &["RPUSH", "list", "foo"][..],
        &["PEXPIREAT", "list", "1000"],
        &["RPUSH", "list", "bar"],
        &["SET", "s", "v", "PXAT", "1000"],
        &["APPEND", "s", "x"],
        &["HSET", "h", "a", "1"],
        &["EXPIREAT", "h", "1"],
        &["HSET", "h", "b", "2"],
        &["RPUSH", "neg", "a"],
        &["PEXPIREAT", "neg", "-5"],
        &["RPUSH", "neg", "b"],
    ] {
        data.extend_from_slice(&resp(cmd));
    }
    std::fs::write(&incr, &data).unwrap();
    srv.restart_with(AOF);
    let mut c = conn_at(&srv.url()).await;
    assert_eq!(
        run(&mut c, &["EXISTS", "list", "s", "h", "neg"]).await,
        redis::Value::Int(0),
        "keys whose deadline passed came back after the load"
    );
    let kept: Option<String> = c.get("kept").await.unwrap();
    assert_eq!(kept.as_deref(), Some("1"));
    // Expiry works again once loaded.
    let _: () = c.set_ex("t", "v", 1000).await.unwrap();
    let _: bool = c.pexpire("t", 1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(run(&mut c, &["EXISTS", "t"]).await, redis::Value::Int(0));
}

/// A damaged manifest stops startup with Redis's message for each kind of
/// damage, and a listed file that is missing is named with the OS's words.
#[tokio::test]
async fn a_damaged_manifest_stops_startup_with_redis_messages() {
    let dir = tempfile::tempdir().unwrap();
    let ad = dir.path().join("appendonlydir");
    std::fs::create_dir_all(&ad).unwrap();
    for f in [
        "appendonly.aof.1.base.aof",
        "appendonly.aof.1.incr.aof",
        "appendonly.aof.2.incr.aof",
    ] {
        std::fs::write(ad.join(f), resp(&["SET", "k", "v"])).unwrap();
    }
    let base = "file appendonly.aof.1.base.aof seq 1 type b\n";
    let incr1 = "file appendonly.aof.1.incr.aof seq 1 type i\n";
    let incr2 = "file appendonly.aof.2.incr.aof seq 2 type i\n";
    let long = format!("file {} seq 1 type i\n", "a".repeat(1100));
    let cases: Vec<(String, &str)> = vec![
        (
            format!("{base}{incr2}{incr1}"),
            "Found a non-monotonic sequence number",
        ),
        (
            format!("{base}\n{incr1}"),
            "Invalid AOF manifest file format",
        ),
        (
            format!("{base}{base}{incr1}"),
            "Found duplicate base file information",
        ),
        (
            format!("{base}file appendonly.aof.1.incr.aof seq 1 type x\n"),
            "Unknown AOF file type",
        ),
        (
            format!("{base}file appendonly.aof.1.incr.aof seq 1\n"),
            "Invalid AOF manifest file format",
        ),
        (
            format!("{base}file a seq 1 type i x\n"),
            "Invalid AOF manifest file format",
        ),
        (
            format!("{base}{long}"),
            "The AOF manifest file contains too long line",
        ),
        (String::new(), "Found an empty AOF manifest"),
        (
            format!("{base}file appendonly.aof.9.incr.aof seq 9 type i\n"),
            "appendonly.aof.9.incr.aof for reading: No such file or directory",
        ),
    ];
    for (manifest, want) in cases {
        std::fs::write(ad.join("appendonly.aof.manifest"), &manifest).unwrap();
        let all = refused_start(dir.path(), &[]);
        assert!(
            all.contains(want),
            "manifest {manifest:?}: want {want:?} in\n{all}"
        );
    }
    // The good manifest loads.
    std::fs::write(
        ad.join("appendonly.aof.manifest"),
        format!("{base}{incr1}{incr2}"),
    )
    .unwrap();
    let (mut child, addr) = common::spawn_in(dir.path(), &["--appendonly", "yes"]);
    let mut c = conn_at(&format!("redis://{addr}/")).await;
    let v: Option<String> = c.get("k").await.unwrap();
    assert_eq!(v.as_deref(), Some("v"));
    let _ = child.kill();
    let _ = child.wait();
}

/// check-aof reports as redis-check-aof does, including the line up to
/// which the file is sound.
#[tokio::test]
async fn check_aof_reports_the_last_good_line() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("appendonly.aof");
    let mut data = resp(&["set", "foo", "hello"]);
    data.extend_from_slice(b"!!!");
    std::fs::write(&f, &data).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cinnabar"))
        .arg("check-aof")
        .arg(&f)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(text.contains("Start checking Old-Style AOF"), "{text}");
    // The seven lines of the SET are sound; the eighth is not.
    assert!(
        text.contains("ok_up_to=33, ok_up_to_line=8, diff=3"),
        "{text}"
    );
    assert!(
        text.contains("is not valid. Use the --fix option"),
        "{text}"
    );
}

/// An approximate trim (`MAXLEN ~` / `MINID ~`, XADD or XTRIM) is written
/// to the AOF as the exact trim it did (`= <length left>` / `= <first ID
/// left>`, as Redis rewrites it), so replaying it with another
/// `stream-node-max-entries` (which decides what `~` removes) gives the
/// same stream, and its LIMIT is ignored on replay.
#[tokio::test]
async fn approximate_stream_trims_replay_exactly() {
    let srv = TestServer::start_with(&[
        "--save",
        "",
        "--appendonly",
        "yes",
        "--stream-node-max-entries",
        "100",
        "--enable-debug-command",
        "yes",
    ]);
    let mut c = srv.conn().await;
    for i in 0..250 {
        if i < 100 {
            run(&mut c, &["XADD", "s", "*", "f", "v"]).await;
        }
        run(&mut c, &["XADD", "t", "*", "f", "v"]).await;
        run(&mut c, &["XADD", "m", "*", "f", "v"]).await;
    }
    // 101 entries in two nodes: `~ 100` may only drop whole nodes, so
    // nothing goes.
    run(&mut c, &["XADD", "s", "MAXLEN", "~", "100", "*", "f", "v"]).await;
    // 250 in three nodes: the first node (100) goes, 150 stay.
    run(
        &mut c,
        &["XTRIM", "t", "MAXLEN", "~", "120", "LIMIT", "1000"],
    )
    .await;
    let ids = run(&mut c, &["XRANGE", "m", "-", "+", "COUNT", "151"]).await;
    let redis::Value::Array(ids) = ids else {
        panic!("{ids:?}")
    };
    let cut = match &ids[150] {
        redis::Value::Array(e) => match &e[0] {
            redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    };
    run(&mut c, &["XTRIM", "m", "MINID", "~", &cut]).await;
    let lens = |c: &mut redis::aio::MultiplexedConnection| {
        let mut c = c.clone();
        async move {
            let mut v = Vec::new();
            for k in ["s", "t", "m"] {
                let n: i64 = redis::cmd("XLEN").arg(k).query_async(&mut c).await.unwrap();
                v.push(n);
            }
            v
        }
    };
    let before = lens(&mut c).await;
    assert_eq!(before, [101, 150, 150]);
    // One node per entry now: `~ 100` replayed as written would trim to
    // exactly 100.
    run(&mut c, &["CONFIG", "SET", "stream-node-max-entries", "1"]).await;
    assert_eq!(run(&mut c, &["DEBUG", "LOADAOF"]).await, redis::Value::Okay);
    assert_eq!(lens(&mut c).await, before);
}

/// A command of the AOF that fails when replayed (here an INCR of a
/// non-integer) does not stop the load, and is counted in INFO's
/// unexpected_error_replies, as Redis counts its AOF client's errors.
#[tokio::test]
async fn replay_errors_are_counted_as_unexpected_error_replies() {
    let dir = tempfile::tempdir().unwrap();
    let mut legacy = Vec::new();
    for cmd in [
        &["SET", "k", "not a number"][..],
        &["INCR", "k"],
        &["SET", "after", "1"],
    ] {
        legacy.extend(resp(cmd));
    }
    std::fs::write(dir.path().join("appendonly.aof"), &legacy).unwrap();
    let srv = Started::new(dir.path(), AOF);
    let mut c = srv.conn().await;
    let v: Option<String> = c.get("after").await.unwrap();
    assert_eq!(v.as_deref(), Some("1"));
    assert_eq!(
        common::info_field(&mut c, "stats", "unexpected_error_replies").await,
        "1"
    );
}

/// An AOF just turned on holds the dataset only once its first rewrite
/// has finished: SHUTDOWN refuses to exit meanwhile (Redis's "Writing
/// initial AOF, can't exit"), and SHUTDOWN NOSAVE FORCE exits anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_refuses_while_the_initial_aof_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut srv = Started::new(dir.path(), &["--save", ""]);
    let mut c = srv.conn().await;
    for i in 0..20 {
        run(&mut c, &["SET", &format!("k{i}"), "v"]).await;
    }
    // A rewrite that takes 20 s (1 s per key).
    run(&mut c, &["CONFIG", "SET", "rdb-key-save-delay", "1000000"]).await;
    run(&mut c, &["CONFIG", "SET", "appendonly", "yes"]).await;
    assert_eq!(info_field(&mut c, "aof_rewrite_in_progress").await, "1");
    let refused = redis::cmd("SHUTDOWN")
        .query_async::<redis::Value>(&mut c)
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("Errors trying to SHUTDOWN"),
        "{refused}"
    );
    // Still serving.
    assert_eq!(run(&mut c, &["DBSIZE"]).await, redis::Value::Int(20));
    let _ = redis::cmd("SHUTDOWN")
        .arg("NOSAVE")
        .arg("FORCE")
        .query_async::<redis::Value>(&mut c)
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = srv.child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "FORCE did not exit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// With `appendfsync always` a write's reply waits until the write is in
/// the AOF: `DEBUG AOF-FLUSH-SLEEP` (Redis's test aid) delays every AOF
/// write, and the reply comes after it, with the file already grown.
#[tokio::test]
async fn always_replies_after_the_aof_write_even_when_it_is_slow() {
    let srv = TestServer::start_with(AOF);
    let mut c = srv.conn().await;
    run(&mut c, &["SET", "x", "1"]).await;
    let incr = srv
        .dir
        .path()
        .join("appendonlydir/appendonly.aof.1.incr.aof");
    run(&mut c, &["DEBUG", "AOF-FLUSH-SLEEP", "300000"]).await;
    let before = std::fs::metadata(&incr).unwrap().len();
    let t0 = std::time::Instant::now();
    assert_eq!(run(&mut c, &["INCR", "x"]).await, redis::Value::Int(2));
    assert!(
        t0.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t0.elapsed()
    );
    assert!(std::fs::metadata(&incr).unwrap().len() > before);
    run(&mut c, &["DEBUG", "AOF-FLUSH-SLEEP", "0"]).await;
    let t0 = std::time::Instant::now();
    run(&mut c, &["INCR", "x"]).await;
    assert!(
        t0.elapsed() < Duration::from_millis(300),
        "{:?}",
        t0.elapsed()
    );
}

/// After three failed AOF rewrites in a row, automatic rewrites wait
/// (Redis 7's limit: 1, 2, 4 … minutes, logged), so a rewrite that keeps
/// failing does not retry ten times a second opening incremental file
/// after incremental file; BGREWRITEAOF still runs, and its success lifts
/// the limit.
#[tokio::test]
async fn automatic_rewrites_wait_after_repeated_failures() {
    let srv = TestServer::start_with(&[
        "--appendonly",
        "yes",
        "--snapshot-method",
        "fork",
        "--auto-aof-rewrite-percentage",
        "0",
    ]);
    let mut c = srv.conn().await;
    run(&mut c, &["SET", "k", "v"]).await;
    // Each rewrite's child sleeps on the key until it is killed.
    run(&mut c, &["CONFIG", "SET", "rdb-key-save-delay", "10000000"]).await;
    for n in 1..=3 {
        run(&mut c, &["BGREWRITEAOF"]).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        let child = loop {
            if let Some(&p) = common::children_of(srv.pid()).first() {
                break p;
            }
            assert!(Instant::now() < deadline, "no rewrite child");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // SAFETY: signalling the server's own rewrite child.
        unsafe { libc::kill(child as i32, libc::SIGKILL) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while info_field(&mut c, "aof_rewrites_consecutive_failures").await != n.to_string() {
            assert!(Instant::now() < deadline, "failure {n} not counted");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    run(&mut c, &["CONFIG", "SET", "rdb-key-save-delay", "0"]).await;
    let rewrites = info_field(&mut c, "aof_rewrites").await;
    run(
        &mut c,
        &["CONFIG", "SET", "auto-aof-rewrite-min-size", "1kb"],
    )
    .await;
    run(
        &mut c,
        &["CONFIG", "SET", "auto-aof-rewrite-percentage", "1"],
    )
    .await;
    run(&mut c, &["SET", "x", &"x".repeat(4096)]).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !srv.log().contains(
        "Background AOF rewrite has repeatedly failed and triggered the limit, will retry in 1 minutes",
    ) {
        assert!(Instant::now() < deadline, "no limit logged");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Held: no automatic rewrite starts (the cron runs ten times a second).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(info_field(&mut c, "aof_rewrites").await, rewrites);
    // BGREWRITEAOF is not held; its success lifts the limit.
    run(&mut c, &["BGREWRITEAOF"]).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while info_field(&mut c, "aof_rewrites_consecutive_failures").await != "0" {
        assert!(
            Instant::now() < deadline,
            "the manual rewrite did not succeed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Turning the AOF off and on again at runtime: once the rewrite that
/// turns it on succeeds, the files the earlier AOF left are retired, so
/// the directory holds exactly what the manifest lists (Redis makes them
/// history and deletes them), and a restart loads the data.
#[tokio::test]
async fn turning_the_aof_back_on_retires_the_old_files() {
    let mut srv = TestServer::start_with(&["--appendonly", "yes"]);
    let mut c = srv.conn().await;
    run(&mut c, &["SET", "k", "v1"]).await;
    run(&mut c, &["CONFIG", "SET", "appendonly", "no"]).await;
    run(&mut c, &["SET", "k", "v2"]).await;
    run(&mut c, &["CONFIG", "SET", "appendonly", "yes"]).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while info_field(&mut c, "aof_rewrite_in_progress").await != "0"
        || info_field(&mut c, "aof_rewrite_scheduled").await != "0"
    {
        assert!(Instant::now() < deadline, "the rewrite did not end");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(info_field(&mut c, "aof_last_bgrewrite_status").await, "ok");
    let dir = srv.dir.path().join("appendonlydir");
    let manifest = std::fs::read_to_string(dir.join("appendonly.aof.manifest")).unwrap();
    let mut listed: Vec<String> = manifest
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
        .collect();
    listed.push("appendonly.aof.manifest".to_string());
    listed.sort();
    let mut present: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    present.sort();
    assert_eq!(present, listed, "manifest:\n{manifest}");
    srv.restart_with(&["--appendonly", "yes"]);
    let mut c = srv.conn().await;
    let v: String = c.get("k").await.unwrap();
    assert_eq!(v, "v2");
}

/// `aof-disable-auto-gc yes` keeps the files rewrites retire, listed as
/// history (`type h`) in Redis's order; they are never replayed, and
/// setting it back to `no` deletes them (Redis's "AOF enable/disable auto
/// gc").
#[tokio::test]
async fn history_files_are_kept_while_auto_gc_is_disabled() {
    // Every write is in the file when acknowledged: the restart is a kill.
    let always = ["--appendonly", "yes", "--appendfsync", "always"];
    let mut srv = TestServer::start_with(&always);
    let mut c = srv.conn().await;
    let dir = srv.dir.path().join("appendonlydir");
    run(&mut c, &["CONFIG", "SET", "aof-disable-auto-gc", "yes"]).await;
    for _ in 0..2 {
        run(&mut c, &["INCR", "x"]).await;
        run(&mut c, &["BGREWRITEAOF"]).await;
        wait_rewrite(&mut c).await;
    }
    run(&mut c, &["INCR", "x"]).await;
    let manifest = || std::fs::read_to_string(dir.join("appendonly.aof.manifest")).unwrap();
    let kept = "file appendonly.aof.3.base.rdb seq 3 type b\n\
                file appendonly.aof.2.incr.aof seq 2 type h\n\
                file appendonly.aof.2.base.rdb seq 2 type h\n\
                file appendonly.aof.1.incr.aof seq 1 type h\n\
                file appendonly.aof.1.base.rdb seq 1 type h\n\
                file appendonly.aof.3.incr.aof seq 3 type i\n";
    assert_eq!(manifest(), kept);
    for f in ["1.base.rdb", "1.incr.aof", "2.base.rdb", "2.incr.aof"] {
        assert!(dir.join(format!("appendonly.aof.{f}")).exists(), "{f}");
    }
    // History is not replayed: the count would be off if it were.
    srv.restart_with(&[&always[..], &["--aof-disable-auto-gc", "yes"]].concat());
    let mut c = srv.conn().await;
    let x: i64 = c.get("x").await.unwrap();
    assert_eq!(x, 3);
    assert_eq!(manifest(), kept);
    run(&mut c, &["CONFIG", "SET", "aof-disable-auto-gc", "no"]).await;
    assert_eq!(
        manifest(),
        "file appendonly.aof.3.base.rdb seq 3 type b\n\
         file appendonly.aof.3.incr.aof seq 3 type i\n"
    );
    for f in ["1.base.rdb", "1.incr.aof", "2.base.rdb", "2.incr.aof"] {
        assert!(!dir.join(format!("appendonly.aof.{f}")).exists(), "{f}");
    }
    let x: i64 = c.incr("x", 1).await.unwrap();
    assert_eq!(x, 4);
}

/// Turning the AOF on at runtime: until the first rewrite succeeds, the
/// stream goes to a temporary incremental file and no manifest exists; a
/// failed attempt deletes that file and is retried; the success makes it
/// the first incremental file, whose commands a restart replays (Redis's
/// "AOF will open a temporary INCR AOF to accumulate data until the first
/// AOFRW success when AOF is dynamically enabled").
#[tokio::test]
async fn the_first_rewrite_writes_to_a_temporary_incremental_file() {
    let mut srv = TestServer::start_with(&["--snapshot-method", "fork", "--appendfsync", "always"]);
    let mut c = srv.conn().await;
    let dir = srv.dir.path().join("appendonlydir");
    run(&mut c, &["SET", "k", "v"]).await;
    run(&mut c, &["CONFIG", "SET", "rdb-key-save-delay", "10000000"]).await;
    run(&mut c, &["CONFIG", "SET", "appendonly", "yes"]).await;
    let child = || async {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(&p) = common::children_of(srv.pid()).first() {
                return p;
            }
            assert!(Instant::now() < deadline, "no rewrite child");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let removed = |srv: &TestServer| {
        srv.log()
            .matches("Removing the temp incr aof file temp-appendonly.aof.incr")
            .count()
    };
    let pid = child().await;
    run(&mut c, &["INCR", "x"]).await;
    assert!(dir.join("temp-appendonly.aof.incr").exists());
    assert!(!dir.join("appendonly.aof.manifest").exists());
    // SAFETY: signalling the server's own rewrite child.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while removed(&srv) < 1 {
        assert!(Instant::now() < deadline, "the temp incr file stayed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!dir.join("appendonly.aof.manifest").exists());
    assert!(!dir.join("appendonly.aof.1.base.rdb").exists());
    // The retry starts by itself.
    let next = loop {
        let p = child().await;
        if p != pid {
            break p;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    run(&mut c, &["CONFIG", "SET", "rdb-key-save-delay", "0"]).await;
    run(&mut c, &["INCR", "x"]).await;
    // SAFETY: as above.
    unsafe { libc::kill(next as i32, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while removed(&srv) < 2 {
        assert!(
            Instant::now() < deadline,
            "the second temp incr file stayed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The third attempt, undelayed, succeeds.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !dir.join("appendonly.aof.manifest").exists()
        || info_field(&mut c, "aof_rewrite_in_progress").await != "0"
    {
        assert!(Instant::now() < deadline, "no successful rewrite");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(info_field(&mut c, "aof_last_bgrewrite_status").await, "ok");
    assert_eq!(
        std::fs::read_to_string(dir.join("appendonly.aof.manifest")).unwrap(),
        "file appendonly.aof.1.base.rdb seq 1 type b\n\
         file appendonly.aof.1.incr.aof seq 1 type i\n"
    );
    assert!(!dir.join("temp-appendonly.aof.incr").exists());
    run(&mut c, &["INCR", "x"]).await;
    srv.restart_with(&["--appendonly", "yes"]);
    let mut c = srv.conn().await;
    let x: i64 = c.get("x").await.unwrap();
    assert_eq!(x, 3);
    let k: String = c.get("k").await.unwrap();
    assert_eq!(k, "v");
}
