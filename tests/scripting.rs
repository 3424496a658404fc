//! Lua scripting through the real server: replies and errors compared with
//! redis-server byte for byte (when installed), the script cache, read-only
//! scripts, undeclared keys, BUSY and SCRIPT KILL.

mod common;
use std::time::Duration;

use common::diff::{same_replies, same_replies_resp3};
use common::{resp, TestServer};

fn cmd(parts: &[&str]) -> Vec<&'static [u8]> {
    parts
        .iter()
        .map(|p| &*Box::leak(p.as_bytes().to_vec().into_boxed_slice()))
        .collect()
}

#[tokio::test]
async fn eval_replies_match_redis() {
    let srv = TestServer::start();
    let script = vec![
        cmd(&["FLUSHALL"]),
        cmd(&[
            "EVAL",
            "return redis.call('set', KEYS[1], ARGV[1])",
            "1",
            "k",
            "v",
        ]),
        cmd(&["EVAL", "return redis.call('get', KEYS[1])", "1", "k"]),
        cmd(&["EVAL", "return {1,2,3,'x',nil,4}", "0"]),
        cmd(&["EVAL", "return redis.call('incr','k')", "0"]),
        cmd(&["EVAL", "local x = redis.call('incr','k') return x", "0"]),
        cmd(&["EVAL", "return redis.pcall('incr','k')", "0"]),
        cmd(&["EVAL", "x = 1", "0"]),
        cmd(&["EVAL", "return y", "0"]),
        cmd(&["EVAL", "return {err='My Error'}", "0"]),
        cmd(&["EVAL", "return redis.error_reply('my err')", "0"]),
        cmd(&["EVAL", "return redis.status_reply('FINE')", "0"]),
        cmd(&["EVAL", "return cjson.encode({a=1})", "0"]),
        cmd(&["EVAL", "return cjson.decode('[1,2,{\"a\":3}]')[3].a", "0"]),
        cmd(&[
            "EVAL",
            "return bit.band(7, 3) + bit.bor(8, 1) + bit.lshift(1, 4)",
            "0",
        ]),
        cmd(&["EVAL", "return bit.tohex(255, 4)", "0"]),
        cmd(&["EVAL", "return 3.7", "0"]),
        cmd(&["EVAL", "return true", "0"]),
        cmd(&["EVAL", "return false", "0"]),
        cmd(&["EVAL", "return redis.sha1hex('')", "0"]),
        cmd(&["EVAL", "error('boom')", "0"]),
        cmd(&["EVAL", "return redis.call('nosuch')", "0"]),
        cmd(&["EVAL", "return 1 +", "0"]),
        cmd(&["EVALSHA", "0000", "0"]),
        cmd(&["SCRIPT", "LOAD", "return 42"]),
        cmd(&["EVALSHA", "1fa00e76656cc152ad327c13fe365858fd7be306", "0"]),
        cmd(&["EVALSHA", "1FA00E76656CC152AD327C13FE365858FD7BE306", "0"]),
        cmd(&[
            "SCRIPT",
            "EXISTS",
            "1fa00e76656cc152ad327c13fe365858fd7be306",
            "ffff",
        ]),
        cmd(&["EVAL_RO", "return redis.call('set','a','b')", "0"]),
        cmd(&["EVAL_RO", "return redis.call('get','k')", "0"]),
        cmd(&["EVAL", "return redis.call('lpush','l','a','b')", "0"]),
        cmd(&["EVAL", "return redis.call('lrange','l',0,-1)", "0"]),
        cmd(&["EVAL", "return redis.call('exec')", "0"]),
        cmd(&["EVAL", "return redis.call('get')", "0"]),
        cmd(&["EVAL", "return redis.call()", "0"]),
        cmd(&["EVAL", "return redis.call({})", "0"]),
        cmd(&[
            "EVAL",
            "redis.call('hset','h','f','v') redis.setresp(3) return redis.call('hgetall','h')",
            "0",
        ]),
        cmd(&["EVAL", "return tostring(redis.call('get','nokey'))", "0"]),
        cmd(&["EVAL", "return os", "0"]),
        cmd(&["EVAL", "return redis.pcall('incr','k')['err']", "0"]),
        cmd(&[
            "EVAL",
            "redis.call('select', 5) return redis.call('set','in5','x')",
            "0",
        ]),
        cmd(&["EXISTS", "in5"]),
        cmd(&["EVAL", "return redis.call('blpop','nolist',0)", "0"]),
        cmd(&["EVAL", "return 1", "-1"]),
        cmd(&["EVAL", "return 1", "2", "a"]),
        cmd(&["EVAL", "return 1", "x"]),
        cmd(&["SCRIPT", "FLUSH"]),
        cmd(&[
            "SCRIPT",
            "EXISTS",
            "1fa00e76656cc152ad327c13fe365858fd7be306",
        ]),
        cmd(&["SCRIPT", "FLUSH", "BOGUS"]),
        cmd(&["SCRIPT", "KILL"]),
    ];
    same_replies(srv.addr.port(), &script).await;
}

#[tokio::test]
async fn scripts_may_touch_undeclared_keys_atomically() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    // Writes 50 keys it never declared, each in its own shard-hash slot.
    c.expect(
        &resp(&[
            b"EVAL",
            b"for i=1,50 do redis.call('set','u:'..i, i) end return redis.call('dbsize')",
            b"0",
        ]),
        b":50\r\n",
    )
    .await;
    c.expect(&resp(&[b"GET", b"u:37"]), b"$2\r\n37\r\n").await;
    // EVAL inside MULTI runs inside the transaction.
    c.expect(&resp(&[b"MULTI"]), b"+OK\r\n").await;
    c.expect(
        &resp(&[b"EVAL", b"return redis.call('incr','u:1')", b"0"]),
        b"+QUEUED\r\n",
    )
    .await;
    c.expect(&resp(&[b"EXEC"]), b"*1\r\n:2\r\n").await;
}

/// BUSY and SCRIPT KILL, repeated: every round a script loops forever;
/// eight bystander connections (spread over the async workers) must all
/// get -BUSY promptly, SCRIPT KILL stops it with Redis's message, and
/// everything answers normally afterwards. Then a script that wrote is
/// UNKILLABLE and runs to its end.
#[tokio::test]
async fn busy_scripts_and_script_kill() {
    let srv = TestServer::start();
    let mut admin = srv.raw().await;
    admin
        .expect(
            &resp(&[b"CONFIG", b"SET", b"busy-reply-threshold", b"50"]),
            b"+OK\r\n",
        )
        .await;
    let mut bystanders = Vec::new();
    for _ in 0..8 {
        bystanders.push(srv.raw().await);
    }
    let mut runner = srv.raw().await;
    let body = b"local i = 0 while true do i = i + 1 end";
    let sha = sha1_hex(body);
    let killed = format!(
        "-ERR Script killed by user with SCRIPT KILL... script: {sha}, on @user_script:1.\r\n"
    );
    for round in 0..20 {
        runner.send(&resp(&[b"EVAL", body, b"0"])).await;
        wait_busy(&mut admin).await;
        for b in bystanders.iter_mut() {
            let t = std::time::Instant::now();
            b.send(&resp(&[b"GET", b"k"])).await;
            let r = tokio::time::timeout(Duration::from_secs(2), b.read_until(b"\r\n"))
                .await
                .unwrap_or_else(|_| panic!("round {round}: a bystander got no reply"));
            assert_eq!(
                String::from_utf8_lossy(&r),
                "-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n"
            );
            assert!(t.elapsed() < Duration::from_millis(1000));
        }
        admin.expect(&resp(&[b"SCRIPT", b"KILL"]), b"+OK\r\n").await;
        runner.expect(b"", killed.as_bytes()).await;
        for b in bystanders.iter_mut() {
            b.expect(&resp(&[b"PING"]), b"+PONG\r\n").await;
        }
        admin
            .expect(
                &resp(&[b"SCRIPT", b"KILL"]),
                b"-NOTBUSY No scripts in execution right now.\r\n",
            )
            .await;
    }
    // A script catching the kill with pcall is still stopped.
    runner
        .send(&resp(&[
            b"EVAL",
            b"while true do pcall(function() local x = 1 end) end",
            b"0",
        ]))
        .await;
    wait_busy(&mut admin).await;
    admin.expect(&resp(&[b"SCRIPT", b"KILL"]), b"+OK\r\n").await;
    let r = tokio::time::timeout(Duration::from_secs(5), runner.read_until(b"\r\n"))
        .await
        .expect("pcall swallowed the kill");
    assert!(
        r.starts_with(b"-ERR Script killed by user with SCRIPT KILL..."),
        "{:?}",
        String::from_utf8_lossy(&r)
    );
    // A transaction queued before the busy script is aborted by EXEC.
    let mut tx = srv.raw().await;
    tx.expect(&resp(&[b"MULTI"]), b"+OK\r\n").await;
    tx.expect(&resp(&[b"INCR", b"xx"]), b"+QUEUED\r\n").await;
    runner.send(&resp(&[b"EVAL", body, b"0"])).await;
    wait_busy(&mut admin).await;
    tx.expect(&resp(&[b"EXEC"]), b"-EXECABORT Transaction discarded because of: BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n").await;
    admin.expect(&resp(&[b"SCRIPT", b"KILL"]), b"+OK\r\n").await;
    runner.expect(b"", killed.as_bytes()).await;
    tx.expect(&resp(&[b"PING", b"asdf"]), b"$4\r\nasdf\r\n")
        .await;
    tx.expect(&resp(&[b"GET", b"xx"]), b"$-1\r\n").await;
    // A script that wrote cannot be killed.
    runner
        .send(&resp(&[b"EVAL", b"redis.call('set','w',1) local t = redis.call('time')[1] + 2 while tonumber(redis.call('time')[1]) < t do end return 'done'", b"0"]))
        .await;
    wait_busy(&mut admin).await;
    admin.send(&resp(&[b"SCRIPT", b"KILL"])).await;
    let r = admin.read_until(b"\r\n").await;
    assert_eq!(
        String::from_utf8_lossy(&r),
        "-UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.\r\n"
    );
    let done = runner.read_until(b"\r\n").await;
    assert!(
        done.ends_with(b"done\r\n"),
        "{:?}",
        String::from_utf8_lossy(&done)
    );
    admin.expect(&resp(&[b"GET", b"w"]), b"$1\r\n1\r\n").await;
}

/// A script that ran fast before may run inline on the connection's async
/// worker; when the same script turns long (its argument makes it loop),
/// the other connections (several, so some share that worker) must still
/// be answered -BUSY, SCRIPT KILL must stop it, and the server must go on
/// normally, with the script fast again afterwards.
#[tokio::test]
async fn a_fast_script_turned_long_does_not_stall_other_connections() {
    fast_script_turned_long(TestServer::start()).await;
}

/// The same with a single async worker: the script runs inline there too,
/// and handing the worker's duties to a fresh thread is all that keeps the
/// other connections answered.
#[tokio::test]
async fn a_fast_script_turned_long_on_a_single_worker() {
    fast_script_turned_long(TestServer::start_with(&["--worker-threads", "1"])).await;
}

async fn fast_script_turned_long(srv: TestServer) {
    let mut admin = srv.raw().await;
    admin
        .expect(
            &resp(&[b"CONFIG", b"SET", b"busy-reply-threshold", b"50"]),
            b"+OK\r\n",
        )
        .await;
    let body: &[u8] = b"local i = 0 while i < tonumber(ARGV[1]) do i = i + 1 end return i";
    let sha = sha1_hex(body);
    let mut bystanders = Vec::new();
    for _ in 0..8 {
        bystanders.push(srv.raw().await);
    }
    let mut runner = srv.raw().await;
    runner
        .expect(
            &resp(&[b"SCRIPT", b"LOAD", body]),
            format!("${}\r\n{sha}\r\n", sha.len()).as_bytes(),
        )
        .await;
    let killed = format!(
        "-ERR Script killed by user with SCRIPT KILL... script: {sha}, on @user_script:1.\r\n"
    );
    for round in 0..5 {
        for _ in 0..20 {
            runner
                .expect(&resp(&[b"EVALSHA", sha.as_bytes(), b"0", b"3"]), b":3\r\n")
                .await;
        }
        runner
            .send(&resp(&[b"EVALSHA", sha.as_bytes(), b"0", b"1e15"]))
            .await;
        wait_busy(&mut admin).await;
        for b in bystanders.iter_mut() {
            b.send(&resp(&[b"GET", b"k"])).await;
            let r = tokio::time::timeout(Duration::from_secs(2), b.read_until(b"\r\n"))
                .await
                .unwrap_or_else(|_| panic!("round {round}: a bystander got no reply"));
            assert_eq!(
                String::from_utf8_lossy(&r),
                "-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n"
            );
        }
        admin.expect(&resp(&[b"SCRIPT", b"KILL"]), b"+OK\r\n").await;
        runner.expect(b"", killed.as_bytes()).await;
        for b in bystanders.iter_mut() {
            b.expect(&resp(&[b"PING"]), b"+PONG\r\n").await;
        }
    }
}

fn sha1_hex(b: &[u8]) -> String {
    use std::fmt::Write;
    let d = sha1_smol::Sha1::from(b).digest().bytes();
    d.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

/// cmsgpack and struct: encodings, decodings and error texts identical to
/// redis-server's (which runs the C libraries).
#[tokio::test]
async fn cmsgpack_and_struct_match_redis() {
    let srv = TestServer::start();
    let bodies = [
        "return cmsgpack.pack(1, -1, 127, 128, 255, 256, 65535, 65536, 4294967295, 4294967296, -32, -33, -128, -129, -32768, -32769, -2147483648, -2147483649, 1.5, 0.1, 1e300, -0.0)",
        "return cmsgpack.pack('a', string.rep('x', 31), string.rep('x', 32), string.rep('x', 255), string.rep('x',256), true, false, nil)",
        "return cmsgpack.pack({1,2,3}, {a=1}, {}, {1,nil,3}, {[1]=1,[3]=3}, {[0]=1}, {1.5, 'x', {2}})",
        "return cmsgpack.pack()",
        "local t = {} t.x = t return cmsgpack.pack(t)",
        "return {cmsgpack.unpack(cmsgpack.pack(1, 'two', {3, 4}, {a = 5}, true, 1.5, -7, 2^40))}",
        "return cmsgpack.unpack(cmsgpack.pack({1,2,{3,{4}}}))[3][2][1]",
        "return {cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3))}",
        "return {cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3), 1)}",
        "return {cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3), 2)}",
        "return {cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 2)}",
        "return {cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 2, 1)}",
        "return {cmsgpack.unpack_one(cmsgpack.pack(1), 5)}",
        "return {cmsgpack.unpack_one(cmsgpack.pack(1), -1)}",
        "return cmsgpack.unpack('\\196')",
        "return cmsgpack.unpack('\\205\\1')",
        "return cmsgpack.unpack()",
        "return {cmsgpack.unpack('')}",
        "return {cmsgpack.unpack('\\147\\1\\2\\3')}",
        "return cmsgpack.unpack('\\209\\255\\128')",
        "return cmsgpack.unpack('\\203\\63\\248\\0\\0\\0\\0\\0\\0') * 2",
        "return cmsgpack.unpack('\\202\\63\\192\\0\\0') * 2",
        "return cmsgpack.unpack(cmsgpack.pack(-2^63))",
        "return tostring(cmsgpack.unpack(cmsgpack.pack(2^64)))",
        "return cmsgpack._VERSION",
        "return {pcall(cmsgpack.unpack, '\\196')}",
        "return struct.pack('>i', 1)",
        "return struct.pack('<i', 1)",
        "return struct.pack('bBhHlLiI', -1, 255, -2, 65535, -3, 4, -5, 6)",
        "return struct.pack('>I3', 65536)",
        "return struct.pack('!4 b i', 1, 2)",
        "return struct.pack('s', 'abc')",
        "return struct.pack('c5', 'abcdefg')",
        "return struct.pack('c0', 'abc')",
        "return struct.pack('c5', 'ab')",
        "return struct.pack('>d', 1.5)",
        "return struct.pack('<f', 1.5)",
        "return struct.pack('x')",
        "return struct.pack('z')",
        "return struct.pack('i')",
        "return struct.pack('i', 'x')",
        "return struct.pack('i33', 1)",
        "return struct.pack('!3', 1)",
        "return {struct.unpack('>i', struct.pack('>i', -5))}",
        "return {struct.unpack('bBhH', struct.pack('bBhH', -1, 200, -300, 60000))}",
        "return {struct.unpack('s', 'abc\\0def')}",
        "return {struct.unpack('s', 'abc')}",
        "return {struct.unpack('c2c1', 'abc')}",
        "return {struct.unpack('b c0', '\\3abcd')}",
        "return {struct.unpack('c0', 'abc')}",
        "return {struct.unpack('i', 'ab')}",
        "return {struct.unpack('i', 'abcdabcd', 5)}",
        "return {struct.unpack('i', 'abcd', 0)}",
        "return {struct.unpack('>d', struct.pack('>d', 2.25))}",
        "return {struct.unpack('<f', struct.pack('<f', 2.5))}",
        "return {struct.unpack('!4 b i', struct.pack('!4 b i', 1, 2))}",
        "return struct.size('bhi')",
        "return struct.size('!4 bhi')",
        "return struct.size('s')",
        "return struct.size('c0')",
        "return struct.size('c10 d')",
        "return struct.size('q')",
        "return {pcall(struct.pack, 'z')}",
        "local t = {} for i=1,20 do t[i]=i end return cmsgpack.pack(t)",
        "local t = {} for i=1,70000 do t[i]=1 end return #cmsgpack.pack(t)",
        "local t = {} for i=1,20 do t['k'..i]=i end return #cmsgpack.pack(t)",
        "return #cmsgpack.pack(string.rep('x', 70000))",
        "local t = {} local c = t for i=1,20 do c[1] = {} c = c[1] end return cmsgpack.pack(t)",
        "return cmsgpack.pack(1/0, -1/0)",
        "return tostring(cmsgpack.unpack(cmsgpack.pack(0/0)))",
        "return cmsgpack.pack(function() end, 3)",
        "local t = cmsgpack.unpack(cmsgpack.pack({a={b={1,2}}})) return t.a.b[2]",
        "return {cmsgpack.unpack_limit(cmsgpack.pack(1,2,3,4), 0, 2)}",
        "return {cmsgpack.unpack_limit(cmsgpack.pack(1,2,3,4), -1)}",
        "return {cmsgpack.unpack_one('\\204')}",
        "return {cmsgpack.unpack('\\129\\192\\1')}",
        "return struct.pack('>I16', 1)",
        "return {struct.unpack('>i16', struct.pack('>I16', 1))}",
        "return {struct.unpack('<l', struct.pack('<l', -2))}",
        "return struct.pack('i', '12')",
        "return struct.pack('d', 'x')",
        "return {struct.unpack('!8 b d', struct.pack('!8 b d', 1, 2.5))}",
    ];
    let script: Vec<Vec<&'static [u8]>> = bodies.iter().map(|b| cmd(&["EVAL", b, "0"])).collect();
    same_replies(srv.addr.port(), &script).await;
}

/// Polls PING until the server answers -BUSY (a script passed the threshold).
async fn wait_busy(c: &mut common::Raw) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        c.send(&resp(&[b"PING"])).await;
        let r = c.read_until(b"\r\n").await;
        if r == b"-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n" {
            return;
        }
        assert_eq!(r, b"+PONG\r\n", "{:?}", String::from_utf8_lossy(&r));
        assert!(
            std::time::Instant::now() < deadline,
            "the script never became busy"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Scripts lock shards as they reach them (out of the global order), while
/// ordered multi-shard commands (MSET, EXEC, FLUSHDB, KEYS, BGSAVE's fork)
/// run beside them: nothing may deadlock, and no script or transaction may
/// see the 16 keys half-updated.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_demand_script_locks_stay_atomic_under_concurrent_multi_key_writes() {
    let srv = TestServer::start();
    let keys: Vec<String> = (1..=16).map(|i| format!("x:{i}")).collect();
    let deadline = std::time::Instant::now() + Duration::from_millis(1500);
    let mut tasks = Vec::new();
    for t in 0..3u64 {
        let mut c = srv.conn().await;
        let keys = keys.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = t * 1_000_000;
            while std::time::Instant::now() < deadline {
                n += 1;
                let mut mset = redis::cmd("MSET");
                for k in &keys {
                    mset.arg(k).arg(n);
                }
                let _: () = mset.query_async(&mut c).await.expect("mset");
                if n % 3 == 0 {
                    // A transaction writing them in reverse.
                    let mut p = redis::pipe();
                    p.atomic();
                    for k in keys.iter().rev() {
                        p.cmd("SET").arg(k).arg(n).ignore();
                    }
                    let _: () = p.query_async(&mut c).await.expect("exec");
                }
                if n % 50 == 0 {
                    let _: () = redis::cmd("FLUSHDB")
                        .query_async(&mut c)
                        .await
                        .expect("flushdb");
                    let _: Vec<String> = redis::cmd("KEYS")
                        .arg("*")
                        .query_async(&mut c)
                        .await
                        .expect("keys");
                }
            }
        }));
    }
    // Reads and writes the keys from the last to the first, none declared.
    const CHECK: &str = "local v = redis.call('get', 'x:16') \
        for i = 15, 1, -1 do if redis.call('get', 'x:'..i) ~= v then return 0 end end \
        return 1";
    const WRITE: &str = "for i = 16, 1, -1 do redis.call('set', 'x:'..i, ARGV[1]) end return 1";
    for s in 0..2u64 {
        let mut c = srv.conn().await;
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while std::time::Instant::now() < deadline {
                i += 1;
                let ok: i64 = redis::cmd("EVAL")
                    .arg(CHECK)
                    .arg(0)
                    .query_async(&mut c)
                    .await
                    .expect("check");
                assert_eq!(ok, 1, "a script saw a half-applied multi-key write");
                if i % 2 == s {
                    let _: i64 = redis::cmd("EVAL")
                        .arg(WRITE)
                        .arg(0)
                        .arg(9_000_000 + i)
                        .query_async(&mut c)
                        .await
                        .expect("write script");
                }
            }
        }));
    }
    {
        // Forks lock every shard in order, too.
        let mut c = srv.conn().await;
        tasks.push(tokio::spawn(async move {
            while std::time::Instant::now() < deadline {
                let r: redis::RedisResult<redis::Value> =
                    redis::cmd("BGSAVE").query_async(&mut c).await;
                if let Err(e) = r {
                    // The previous child may still be writing.
                    assert!(e.to_string().contains("in progress"), "bgsave: {e}");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }));
    }
    let all = async {
        for t in tasks {
            t.await.expect("task");
        }
    };
    tokio::time::timeout(Duration::from_secs(30), all)
        .await
        .expect("deadlock: the workload did not finish");
    // And the server still answers everyone.
    let mut c = srv.conn().await;
    let pong: String = redis::cmd("PING").query_async(&mut c).await.expect("ping");
    assert_eq!(pong, "PONG");
}

/// A script cannot change what the next script sees: every way of
/// assigning a global or a library table's field fails with Redis's
/// read-only error, and scripting keeps working afterwards.
#[tokio::test]
async fn globals_and_library_tables_are_read_only() {
    let srv = TestServer::start();
    let mut c = srv.conn().await;
    for body in [
        "redis = nil",
        "redis.call = function() return 1 end",
        "cjson.encode = nil",
        "string.upper = nil",
        "_G = {}",
        "rawset(_G, 'redis', 1)",
        "setmetatable(_G, {})",
        "getmetatable(_G).__index = {}",
        "getfenv(0).redis = nil",
        "getfenv(1).redis = nil",
        "setfenv(0, {})",
        "loadstring('redis = nil')()",
        "newglobal = 1",
    ] {
        let r: redis::RedisResult<redis::Value> = redis::cmd("EVAL")
            .arg(body)
            .arg(0)
            .query_async(&mut c)
            .await;
        let e = r.expect_err(body).to_string();
        assert!(
            e.contains("Attempt to modify a readonly table"),
            "{body}: {e}"
        );
    }
    let v: String = redis::cmd("EVAL")
        .arg("redis.call('set', KEYS[1], string.upper(ARGV[1])) return redis.call('get', KEYS[1])")
        .arg(1)
        .arg("k")
        .arg("still works")
        .query_async(&mut c)
        .await
        .expect("eval after tampering attempts");
    assert_eq!(v, "STILL WORKS");
    let r: redis::RedisResult<redis::Value> = redis::cmd("EVAL")
        .arg("return print('x')")
        .arg(0)
        .query_async(&mut c)
        .await;
    assert!(r
        .expect_err("print")
        .to_string()
        .contains("Script attempted to access nonexistent global variable 'print'"));
}

/// Redis 7 shebang scripts (`#!lua flags=...`): parse errors, no-writes,
/// EVAL_RO, allow-oom over maxmemory, NOREPLICAS, line numbers kept, and
/// scripts without a shebang keeping Redis 6 semantics; byte for byte
/// against redis-server.
#[tokio::test]
async fn shebang_flags_match_redis() {
    let srv = TestServer::start();
    let ro_read = "#!lua flags=no-writes\nreturn redis.call('get',KEYS[1])";
    let script = vec![
        cmd(&["FLUSHALL"]),
        cmd(&["SET", "x", "123"]),
        cmd(&["EVAL", "#!not-lua\nreturn 1", "0"]),
        cmd(&["EVAL", "#!lua\nreturn 1", "0"]),
        cmd(&["EVAL", "#!lua badger=data\nreturn 1", "0"]),
        cmd(&["EVAL", "#!lua name=mylib\nreturn 1", "0"]),
        cmd(&["EVAL", "#!lua flags=allow-oom,what?\nreturn 1", "0"]),
        cmd(&["EVAL", "#!lua flags=allow-oom,\nreturn 1", "0"]),
        cmd(&["EVAL", "#!lua flags=NO-WRITES\nreturn 1", "0"]),
        cmd(&["EVAL", "#!lua flags=", "0"]),
        cmd(&["EVAL", "#!\nreturn 1", "0"]),
        cmd(&["EVAL", "#!lua \"unbalanced\nreturn 1", "0"]),
        cmd(&[
            "EVAL",
            "#!lua flags=no-writes,allow-stale,no-cluster,allow-cross-slot-keys,allow-oom\nreturn 2",
            "0",
        ]),
        cmd(&["EVAL", "#!lua flags=\nreturn 3", "0"]),
        // The shebang line is cut but its newline kept: same line numbers.
        cmd(&["EVAL", "#!lua\n\nerror('boom')", "0"]),
        cmd(&["EVAL", "#!lua\nreturn redis.call('nosuch')", "0"]),
        cmd(&[
            "EVAL",
            "#!lua flags=no-writes\nreturn redis.call('set','x',1)",
            "1",
            "x",
        ]),
        cmd(&[
            "EVAL",
            "#!lua flags=no-writes\nreturn redis.pcall('set','x',1)['err']",
            "1",
            "x",
        ]),
        cmd(&["EVAL", ro_read, "1", "x"]),
        cmd(&["EVAL_RO", ro_read, "1", "x"]),
        cmd(&["EVAL_RO", "#!lua\nreturn redis.call('get','x')", "1", "x"]),
        cmd(&["EVAL_RO", "#!lua\nreturn 1", "0"]),
        cmd(&["EVAL_RO", "return redis.call('get','x')", "1", "x"]),
        cmd(&["EVAL_RO", "return redis.call('publish','c','m')", "0"]),
        cmd(&["SCRIPT", "LOAD", "#!lua flags=bogus\nreturn 1"]),
        cmd(&["SCRIPT", "LOAD", "#!lua flags=no-writes\nreturn 'loaded'"]),
        cmd(&["EVALSHA_RO", "25a0c95a82d42a4f7b6a4b8b9b9b0f44e3f04b47", "0"]),
        // Over maxmemory: flagged scripts are refused unless allow-oom or
        // no-writes; scripts without a shebang fail on their first write.
        cmd(&["CONFIG", "SET", "maxmemory", "1"]),
        cmd(&["EVAL", "redis.call('set','x',1) return 1", "1", "x"]),
        cmd(&["EVAL", "return redis.pcall('set','x',1)['err']", "1", "x"]),
        cmd(&["EVAL", "return redis.call('get','x')", "1", "x"]),
        cmd(&["EVAL", "#!lua flags=\nreturn 1", "0"]),
        cmd(&["EVAL", "#!lua\nreturn 1", "0"]),
        cmd(&[
            "EVAL",
            "#!lua flags=allow-oom\nredis.call('set','x',1) return redis.call('get','x')",
            "1",
            "x",
        ]),
        cmd(&["EVAL", "#!lua flags=no-writes\nreturn redis.call('get','x')", "0"]),
        cmd(&["EVAL_RO", ro_read, "1", "x"]),
        cmd(&["MULTI"]),
        cmd(&["EVAL", "#!lua\nreturn 1", "0"]),
        cmd(&["EXEC"]),
        cmd(&["CONFIG", "SET", "maxmemory", "0"]),
        // min-replicas-to-write with no replica: writes are refused.
        cmd(&["CONFIG", "SET", "min-replicas-to-write", "1"]),
        cmd(&["EVAL", ro_read, "1", "x"]),
        cmd(&["EVAL", "return redis.call('get','x')", "1", "x"]),
        cmd(&["EVAL", "#!lua\nreturn redis.call('get','x')", "1", "x"]),
        cmd(&["EVAL", "return redis.call('set','x',1)", "1", "x"]),
        cmd(&["SET", "x", "1"]),
        cmd(&["GET", "x"]),
        cmd(&["CONFIG", "SET", "min-replicas-max-lag", "0"]),
        cmd(&["SET", "x", "2"]),
        cmd(&["CONFIG", "SET", "min-replicas-max-lag", "10"]),
        cmd(&["CONFIG", "SET", "min-replicas-to-write", "0"]),
        cmd(&["SET", "x", "3"]),
    ];
    same_replies(srv.addr.port(), &script).await;
}

/// Redis's Lua helpers and statistics: error_reply's code parsing, errors
/// from commands a script called counted once in INFO errorstats, SORT of
/// a set ordered for scripts, redis.acl_check_cmd, redis.REDIS_VERSION.
#[tokio::test]
async fn script_helpers_and_error_stats_match_redis() {
    let srv = TestServer::start();
    let script = vec![
        cmd(&["FLUSHALL"]),
        cmd(&["EVAL", "return redis.error_reply('')", "0"]),
        cmd(&["EVAL", "return redis.error_reply('MY_ERR')", "0"]),
        cmd(&["EVAL", "return redis.error_reply('-MY_ERR')", "0"]),
        cmd(&["EVAL", "return redis.error_reply('MY_ERR custom msg')", "0"]),
        cmd(&["EVAL", "return redis.error_reply(1)", "0"]),
        cmd(&["EVAL", "return redis.status_reply()", "0"]),
        cmd(&["CONFIG", "RESETSTAT"]),
        cmd(&["SET", "s", "1"]),
        cmd(&[
            "EVAL",
            "return redis.call('GEOADD','s','13.36','38.11','Palermo')",
            "0",
        ]),
        cmd(&["INFO", "ERRORSTATS"]),
        cmd(&["EVAL", "return redis.pcall('lpush','s','x')", "0"]),
        cmd(&["INFO", "ERRORSTATS"]),
        cmd(&["EVAL", "redis.pcall('lpush','s','x') return 1", "0"]),
        cmd(&["INFO", "ERRORSTATS"]),
        cmd(&["EVAL_RO", "return redis.call('set','x','y')", "0"]),
        cmd(&["INFO", "ERRORSTATS"]),
        cmd(&["EVAL", "return redis.call('nosuch')", "0"]),
        cmd(&["EVAL", "return redis.call('get')", "0"]),
        cmd(&["EVAL", "return redis.call({})", "0"]),
        cmd(&["EVAL", "error('x')", "0"]),
        cmd(&["INFO", "ERRORSTATS"]),
        cmd(&["SADD", "myset", "c", "b", "a", "aa", "z", "1", "10", "2"]),
        cmd(&[
            "EVAL",
            "return redis.call('sort',KEYS[1],'by','_')",
            "1",
            "myset",
        ]),
        cmd(&[
            "EVAL",
            "return redis.call('sort',KEYS[1],'by','_','get','#','get','_:*')",
            "1",
            "myset",
        ]),
        cmd(&["EVAL", "return redis.acl_check_cmd('set','xx',1)", "0"]),
        cmd(&["EVAL", "return redis.acl_check_cmd('nosuch','xx')", "0"]),
        cmd(&["EVAL", "return redis.acl_check_cmd()", "0"]),
        cmd(&[
            "ACL",
            "SETUSER",
            "bob",
            "on",
            ">123",
            "+@scripting",
            "+set",
            "~x*",
        ]),
        cmd(&["AUTH", "bob", "123"]),
        cmd(&["EVAL", "return redis.acl_check_cmd('set','xx',1)", "0"]),
        cmd(&["EVAL", "return redis.acl_check_cmd('hset','xx','f',1)", "0"]),
        cmd(&["EVAL", "return redis.acl_check_cmd('set','yy',1)", "0"]),
        cmd(&["EVAL", "return redis.call('hset','xx','f',1)", "0"]),
        cmd(&["EVAL", "return redis.call('set','yy',1)", "0"]),
        cmd(&["EVAL", "return redis.pcall('set','yy',1)", "0"]),
        cmd(&["EVAL", "return redis.call('set','xx',1)", "0"]),
        cmd(&["AUTH", "default", "nopass"]),
        cmd(&["ACL", "DELUSER", "bob"]),
        cmd(&["EVAL", "return type(redis.REDIS_VERSION_NUM)", "0"]),
        // CLUSTER as a standalone redis-server has it.
        cmd(&["EVAL", "return redis.call('cluster','reset','hard')", "0"]),
        cmd(&["EVAL", "return redis.pcall('cluster','info')", "0"]),
        cmd(&["CLUSTER", "INFO"]),
        cmd(&["CLUSTER", "KEYSLOT"]),
        cmd(&["CLUSTER", "BOGUS"]),
    ];
    same_replies(srv.addr.port(), &script).await;
}

/// The per-command statistics of a script's refused and failing calls, as
/// Redis keeps them (rejected vs failed, the script counted as failed).
#[tokio::test]
async fn script_command_stats() {
    let srv = TestServer::start();
    let mut c = srv.conn().await;
    let stat = |info: &str, cmd: &str| -> String {
        info.lines()
            .find(|l| l.starts_with(&format!("cmdstat_{cmd}:")))
            .map(|l| {
                l.split(',')
                    .filter(|p| {
                        p.starts_with("rejected_calls")
                            || p.starts_with("failed_calls")
                            || p.contains("calls=")
                    })
                    .filter(|p| !p.contains("usec"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default()
    };
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(1)
        .query_async(&mut c)
        .await
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut c)
        .await
        .unwrap();
    let r: redis::RedisResult<i64> = redis::cmd("EVAL")
        .arg("return redis.call('set','x','y')")
        .arg(1)
        .arg("x")
        .query_async(&mut c)
        .await;
    assert!(r.unwrap_err().to_string().contains("OOM"));
    // A flagged script without allow-oom is refused before it runs.
    let r: redis::RedisResult<i64> = redis::cmd("EVAL")
        .arg("#!lua\nreturn 1")
        .arg(0)
        .query_async(&mut c)
        .await;
    assert!(r.unwrap_err().to_string().contains("OOM"));
    let info: String = redis::cmd("INFO")
        .arg("ALL")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(
        stat(&info, "set"),
        "cmdstat_set:calls=0,rejected_calls=1,failed_calls=0"
    );
    assert_eq!(
        stat(&info, "eval"),
        "cmdstat_eval:calls=1,rejected_calls=1,failed_calls=1"
    );
    assert!(info.contains("errorstat_OOM:count=2\r\n"), "{info}");
    assert!(info.contains("total_error_replies:2\r\n"), "{info}");
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(0)
        .query_async(&mut c)
        .await
        .unwrap();
}

/// lua-cjson's encoding (number format, escapes, arrays vs objects, sparse
/// arrays, errors) and its settings (nesting limits, NaN/Inf), against
/// redis-server.
#[tokio::test]
async fn cjson_matches_redis() {
    let srv = TestServer::start();
    let script = vec![
        cmd(&["EVAL", "return cjson.encode({1, 2.5, 1/3, 1e20, -0.000001, 'a/b\"c\\\\d\\n\\1\\127'})", "0"]),
        cmd(&["EVAL", "return cjson.encode({[1]='a', [2]='b', [4]='d'})", "0"]),
        cmd(&["EVAL", "return cjson.encode({[1]='a', [20]='b'})", "0"]),
        cmd(&["EVAL", "local r = cjson.encode({[1]='a', [20]='b'}) return r", "0"]),
        cmd(&["EVAL", "local ok, e = pcall(cjson.decode, '{') return {tostring(ok), type(e)}", "0"]),
        cmd(&["EVAL", "local ok, e = pcall(redis.call, 'nosuch') return {tostring(ok), e}", "0"]),
        cmd(&["EVAL", "local ok, e = pcall(redis.call, 'incr') return e", "0"]),
        cmd(&["EVAL", "local ok, e = pcall(function() return redis.call('nosuch') end) return e", "0"]),
        cmd(&["EVAL", "redis.call('set','str','x') local ok, e = pcall(redis.call, 'incr', 'str') return e", "0"]),
        cmd(&["EVAL", "local ok, e = pcall(error, {x=1}) return type(e)", "0"]),
        cmd(&["EVAL", "local ok, e = pcall(error, {err='MY'}) return e", "0"]),
        cmd(&["EVAL", "local ok, e = pcall(error, 'plain') return e", "0"]),
        cmd(&["EVAL", "return {pcall(function(a, b) return a, nil, b end, 1, 2)}", "0"]),
        cmd(&["EVAL", "return cjson.encode({})", "0"]),
        cmd(&["EVAL", "return cjson.encode({a={b={c={}}}})", "0"]),
        cmd(&["EVAL", "return cjson.encode({[1.5]='x'})", "0"]),
        cmd(&["EVAL", "return cjson.encode(cjson.null)", "0"]),
        cmd(&["EVAL", "return cjson.encode(true)", "0"]),
        cmd(&["EVAL", "return {pcall(cjson.encode, {[true]=1})}", "0"]),
        cmd(&["EVAL", "return {pcall(cjson.encode, print)}", "0"]),
        cmd(&["EVAL", "return {pcall(cjson.encode, {function() end})}", "0"]),
        cmd(&["EVAL", "return {pcall(cjson.encode, 0/0)}", "0"]),
        cmd(&["EVAL", "return {pcall(cjson.encode, 1/0)}", "0"]),
        cmd(&[
            "EVAL",
            "cjson.encode_max_depth(2) local ok, e = pcall(cjson.encode, {{{1}}}) cjson.encode_max_depth(1000) return {tostring(ok), e}",
            "0",
        ]),
        cmd(&[
            "EVAL",
            "cjson.decode_max_depth(1) local ok = pcall(cjson.decode, '[[1]]') local ok2 = pcall(cjson.decode, '[1]') cjson.decode_max_depth(1000) return {tostring(ok), tostring(ok2)}",
            "0",
        ]),
        cmd(&[
            "EVAL",
            "cjson.encode_invalid_numbers(true) local a = cjson.encode({0/0}) cjson.encode_invalid_numbers(false) return a",
            "0",
        ]),
        cmd(&["EVAL", "return cjson.decode('{\"a\":[1,2,{\"b\":null}]}').a[2]", "0"]),
    ];
    same_replies(srv.addr.port(), &script).await;
}

/// Redis allows a script to pass up to ~8000 arguments to redis.call
/// (`unpack` of a big table, as Redis's own suite checks); that must work
/// on the first call in a fresh interpreter too, and on later (inline) runs.
#[tokio::test]
async fn redis_call_with_7999_unpacked_arguments() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    let body: &[u8] =
        b"local a = {} for i = 1, 7999 do a[i] = 1 end return redis.call('exists', unpack(a))";
    for _ in 0..5 {
        c.expect(&resp(&[b"EVAL", body, b"0"]), b":0\r\n").await;
    }
    // Also right after a script whose redis.call raised an error.
    for _ in 0..5 {
        c.send(&resp(&[b"EVAL", b"return redis.call('nosuchcmd')", b"0"]))
            .await;
        let r = c.read_until(b"\r\n").await;
        assert!(
            r.starts_with(b"-ERR Unknown Redis command"),
            "{:?}",
            String::from_utf8_lossy(&r)
        );
        c.expect(&resp(&[b"EVAL", body, b"0"]), b":0\r\n").await;
    }
    let lpush: &[u8] = b"local a = {} for i = 1, 7999 do a[i] = 1 end redis.call('del', 'l') return redis.call('lpush', 'l', unpack(a))";
    for _ in 0..3 {
        c.expect(&resp(&[b"EVAL", lpush, b"0"]), b":7999\r\n").await;
    }
}

/// Commands a script runs answer in the protocol the script selected
/// (`redis.setresp`, 2 by default), not the caller's: a RESP3 caller's
/// script sees ZRANGE WITHSCORES as a flat RESP2 list unless it asked for
/// RESP3, and RESP3 doubles convert both ways (also integral ones).
#[tokio::test]
async fn script_commands_answer_in_the_scripts_protocol() {
    let srv = TestServer::start();
    let cases: Vec<Vec<&[u8]>> = vec![
        vec![b"FLUSHALL"],
        vec![b"ZADD", b"z", b"1", b"a", b"2", b"b", b"3.5", b"c"],
        vec![
            b"EVAL",
            b"return redis.call('zrange','z',0,-1,'withscores')",
            b"0",
        ],
        vec![
            b"EVAL",
            b"return #redis.call('zrange','z',0,-1,'withscores')",
            b"0",
        ],
        vec![
            b"EVAL",
            b"redis.setresp(3) return redis.call('zrange','z',0,-1,'withscores')",
            b"0",
        ],
        vec![
            b"EVAL",
            b"redis.setresp(3) return redis.call('zrange','z',0,-1,'withscores')[1][2]['double']",
            b"0",
        ],
        vec![
            b"EVAL",
            b"redis.setresp(3) return redis.call('zscore','z','a')",
            b"0",
        ],
        vec![b"EVAL", b"redis.setresp(3) return {double=1}", b"0"],
        vec![
            b"EVAL",
            b"return redis.call('zrange','z','+inf','-inf','byscore','rev','limit',1,1,'withscores')",
            b"0",
        ],
        vec![b"ZRANGE", b"z", b"0", b"-1", b"WITHSCORES"],
        vec![b"ZRANGE", b"z", b"0", b"-1", b"REV", b"WITHSCORES"],
    ];
    same_replies_resp3(srv.addr.port(), &cases).await;
    same_replies(srv.addr.port(), &cases).await;
}

/// While a script is busy, SHUTDOWN (and SHUTDOWN SAVE) answer -BUSY, as
/// a save would wait for the script; SHUTDOWN NOSAVE stops the server.
#[tokio::test]
async fn only_shutdown_nosave_stops_a_busy_script() {
    let mut srv = TestServer::start_with(&["--save", "3600 1", "--busy-reply-threshold", "50"]);
    let mut admin = srv.raw().await;
    let mut runner = srv.raw().await;
    runner
        .send(&resp(&[
            b"EVAL",
            b"local i = 0 while true do i = i + 1 end",
            b"0",
        ]))
        .await;
    wait_busy(&mut admin).await;
    for cmd in [&[&b"SHUTDOWN"[..]][..], &[b"SHUTDOWN", b"SAVE"]] {
        admin
            .expect(
                &resp(cmd),
                b"-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n",
            )
            .await;
    }
    admin.send(&resp(&[b"SHUTDOWN", b"NOSAVE"])).await;
    let st = srv
        .wait_exit(Duration::from_secs(10))
        .expect("SHUTDOWN NOSAVE exits");
    assert!(st.success());
    assert!(!srv.dir.path().join("dump.rdb").exists());
}

/// RESP3 values through scripts, checked with DEBUG PROTOCOL as Redis's own
/// tests do: a RESP3 script sees big numbers and verbatim strings as
/// tables and returns them as such; tables with `double`, `big_number`,
/// `verbatim_string` fields become those replies whatever the script's
/// protocol (a RESP2 client gets the RESP2 form).
#[tokio::test]
async fn resp3_values_through_scripts() {
    let srv = TestServer::start();
    let mut c3 = srv.raw().await;
    c3.send(&resp(&[b"HELLO", b"3"])).await;
    c3.read_until(b"\r\n").await;
    // Drain the HELLO map (ends with the modules entry: an empty array).
    c3.read_until(b"modules\r\n*0\r\n").await;
    let mut c2 = srv.raw().await;
    // DEBUG is `noscript`: Redis's test aid lets scripts call it.
    c2.expect(
        &resp(&[b"DEBUG", b"SET-DISABLE-DENY-SCRIPTS", b"1"]),
        b"+OK\r\n",
    )
    .await;
    let eval = |body: &str| resp(&[b"EVAL", body.as_bytes(), b"0"]);
    for (body, want3, want2) in [
        (
            "redis.setresp(3); return redis.call('debug', 'protocol', 'bignum')",
            "(1234567999999999999999999999999999999\r\n",
            "$37\r\n1234567999999999999999999999999999999\r\n",
        ),
        (
            "return {big_number='123\\r\\n123'}",
            "(123  123\r\n",
            "$8\r\n123  123\r\n",
        ),
        (
            "redis.setresp(3); return redis.call('debug', 'protocol', 'verbatim')",
            "=29\r\ntxt:This is a verbatim\nstring\r\n",
            "$25\r\nThis is a verbatim\nstring\r\n",
        ),
        (
            "redis.setresp(3); local v = redis.call('debug', 'protocol', 'verbatim'); return v.verbatim_string.format",
            "$3\r\ntxt\r\n",
            "$3\r\ntxt\r\n",
        ),
        ("return {double=3.5}", ",3.5\r\n", "$3\r\n3.5\r\n"),
        (
            "redis.setresp(3); local v = redis.call('debug', 'protocol', 'map'); return v.map[1]",
            "#t\r\n",
            ":1\r\n",
        ),
        (
            "return redis.call('debug', 'protocol', 'bignum')",
            "$37\r\n1234567999999999999999999999999999999\r\n",
            "$37\r\n1234567999999999999999999999999999999\r\n",
        ),
    ] {
        c3.expect(&eval(body), want3.as_bytes()).await;
        c2.expect(&eval(body), want2.as_bytes()).await;
    }
    // DEBUG PROTOCOL itself.
    c3.expect(
        &resp(&[b"DEBUG", b"PROTOCOL", b"attrib"]),
        b"|1\r\n$14\r\nkey-popularity\r\n*2\r\n$7\r\nkey:123\r\n:90\r\n$39\r\nSome real reply following the attribute\r\n",
    )
    .await;
    c2.expect(
        &resp(&[b"DEBUG", b"PROTOCOL", b"push"]),
        b"-ERR RESP2 is not supported by this command\r\n",
    )
    .await;
}

/// Numbers handed to `redis.call` become arguments the way Redis 7.0 prints
/// them (`%.17g`), and odd arguments get Redis's errors from both
/// `redis.call` (raised) and `redis.pcall` (returned).
#[tokio::test]
async fn redis_call_arguments_match_redis() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    let body: &[u8] = b"redis.call('mset', 'a', 0.1, 'b', 3, 'c', 1/3, 'd', 1e16, 'e', 1e17, 'f', -2.5, 'g', 123456789012345) \
        return redis.call('mget', 'a', 'b', 'c', 'd', 'e', 'f', 'g')";
    c.expect(
        &resp(&[b"EVAL", body, b"0"]),
        b"*7\r\n$19\r\n0.10000000000000001\r\n$1\r\n3\r\n$19\r\n0.33333333333333331\r\n$17\r\n10000000000000000\r\n$5\r\n1e+17\r\n$4\r\n-2.5\r\n$15\r\n123456789012345\r\n",
    )
    .await;
    c.send(&resp(&[b"EVAL", b"return redis.call('get', {})", b"0"]))
        .await;
    let r = c.read_until(b"\r\n").await;
    assert!(
        r.starts_with(b"-ERR Lua redis lib command arguments must be strings or integers"),
        "{:?}",
        String::from_utf8_lossy(&r)
    );
    c.expect(
        &resp(&[b"EVAL", b"return redis.pcall()['err']", b"0"]),
        b"$64\r\nERR Please specify at least one argument for this redis lib call\r\n",
    )
    .await;
    c.expect(
        &resp(&[b"EVAL", b"return redis.pcall('nosuch')['err']", b"0"]),
        b"$44\r\nERR Unknown Redis command called from script\r\n",
    )
    .await;
    // A command's own error reply, caught: the error table, usable as a value.
    c.expect(
        &resp(&[
            b"EVAL",
            b"redis.call('set','s','x') local e = redis.pcall('incr','s') return e['err']",
            b"0",
        ]),
        b"$43\r\nERR value is not an integer or out of range\r\n",
    )
    .await;
}

/// SHUTDOWN NOSAVE ends a busy script's server, and the listening socket
/// closes as soon as the shutdown is committed: a client connecting while
/// the server is still going away is refused, never accepted and dropped.
#[tokio::test]
async fn shutdown_nosave_during_a_busy_script_refuses_new_connections_at_once() {
    let mut srv = TestServer::start_with(&["--busy-reply-threshold", "10"]);
    let mut busy = srv.raw().await;
    busy.send(&resp(&[
        b"EVAL",
        b"redis.call('set','x','y') while true do end",
        b"0",
    ]))
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut c = srv.raw().await;
    c.send(b"SHUTDOWN NOSAVE\r\n").await;
    // The busy script's client never leaves, so the server waits ~200 ms
    // for connections to flush before it exits: connect meanwhile.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let r = tokio::net::TcpStream::connect(srv.addr).await;
    assert!(r.is_err(), "a connection was accepted during the shutdown");
    assert!(srv.wait_exit(Duration::from_secs(10)).is_some());
}
