//! Redis 7.0 functions through the real server: FUNCTION LOAD / LIST /
//! DELETE / FLUSH / DUMP / RESTORE / STATS / KILL and FCALL, replies and
//! errors compared with redis-server byte for byte, DUMP payloads moved
//! between the two servers, and busy functions.

mod common;
use std::time::Duration;

use common::diff::{same_replies, same_replies_resp3, Conn, RedisRef};
use common::{resp, TestServer};

fn cmd(parts: &[&str]) -> Vec<&'static [u8]> {
    parts
        .iter()
        .map(|p| &*Box::leak(p.as_bytes().to_vec().into_boxed_slice()))
        .collect()
}

fn lib(name: &str, body: &str) -> String {
    format!("#!lua name={name}\n{body}")
}

/// Load-time errors (metadata, engine, registration API, sandbox), each
/// on an empty registry.
#[tokio::test]
async fn load_errors_match_redis() {
    let srv = TestServer::start();
    let bodies = [
        "return 1",
        "redis.register_function('f 1', function(keys, args) return 1 end)",
        "redis.call('set','x',1)",
        "error('boom')",
        "x = 1",
        "local a = foo",
        "local a = 'x' ...",
        "redis.register_function('f1', 5)",
        "redis.register_function{callback=function() end}",
        "redis.register_function{function_name='x'}",
        "redis.register_function{function_name='x', callback=function() end, foo=1}",
        "redis.register_function{function_name='x', callback=5}",
        "redis.register_function{function_name='x', callback=function() end, flags='no-writes'}",
        "redis.register_function{function_name='x', callback=function() end, flags={'bad'}}",
        "redis.register_function('a', function() end, 3)",
        "redis.register_function()",
        "redis.register_function(1)",
        "redis.pcall('ping')",
        "redis.setresp(3)",
        "local x = math.random()",
        "redis.register_function('f1', function() return 1 end) redis.register_function('f1', function() return 1 end)",
        "redis.log(redis.LOG_WARNING, 'hi') redis.register_function('lg', function() return 1 end)",
        "while true do end",
    ];
    let mut script = Vec::new();
    for b in bodies {
        script.push(cmd(&["FUNCTION", "FLUSH"]));
        script.push(cmd(&["FUNCTION", "LOAD", &lib("libx", b)]));
    }
    for code in [
        "#!lua",
        "#!lua name=a name=b\n",
        "#!lua name=a foo=b\n",
        "#!luax name=a\n",
        "#!lua name=a",
        "lua name=a",
        "#!lua name=a-b\n",
        "#!LUA name=up\nredis.register_function('up', function() return 1 end)",
    ] {
        script.push(cmd(&["FUNCTION", "LOAD", code]));
    }
    script.push(cmd(&["FUNCTION", "LOAD", "REPLACE"]));
    script.push(cmd(&["FUNCTION", "LOAD", "FOO", "x"]));
    script.push(cmd(&["FUNCTION", "LOAD", "REPLACE", "REPLACE", "x"]));
    same_replies(srv.addr.port(), &script).await;
}

/// FCALL replies and errors, FUNCTION LIST (RESP2 and RESP3), DELETE,
/// FLUSH, STATS and the argument errors.
#[tokio::test]
async fn fcall_and_list_match_redis() {
    let srv = TestServer::start();
    let l1 = lib(
        "lib1",
        "redis.register_function{function_name='f1', callback=function() return 1 end, flags={'no-writes', 'allow-oom'}, description='hi'}",
    );
    let l2 = lib(
        "lib2",
        "redis.register_function('f1', function(keys, args) return 1 end)",
    );
    let l3 = lib(
        "lib3",
        "redis.register_function('w', function(keys, args) return redis.call('set', keys[1], args[1]) end)",
    );
    let l4 = lib(
        "lib4",
        "redis.register_function('e', function(keys, args) return redis.call('nocmd') end)",
    );
    let l5 = lib(
        "lib5",
        "redis.register_function('e2', function(keys, args) error('x') end)",
    );
    let l6 = lib(
        "lib6",
        "redis.register_function{function_name='ro', callback=function(keys, args) return redis.call('set', 'a', 1) end, flags={'no-writes'}}",
    );
    let l7 = lib(
        "lib7",
        "redis.register_function('reg', function(keys, args) redis.register_function('zz', function() end) end)",
    );
    let l8 = lib(
        "lib8",
        "redis.register_function('g', function(keys, args) return {keys[1], args[1], #keys, #args} end)",
    );
    let l9 = lib(
        "lib9",
        "redis.register_function('k', function(keys, args) return KEYS end)",
    );
    let l10 = lib(
        "lib10",
        "local function helper(x) return x * 2 end\nredis.register_function('h', function(keys, args) return helper(tonumber(args[1])) end)",
    );
    let l1b = lib(
        "lib1",
        "redis.register_function('f1b', function() return 'replaced' end)",
    );
    let script = vec![
        cmd(&["FUNCTION", "FLUSH"]),
        cmd(&["FUNCTION", "LIST"]),
        cmd(&["FUNCTION", "STATS"]),
        cmd(&["FUNCTION", "LOAD", &l1]),
        cmd(&["FUNCTION", "LOAD", &l1]),
        cmd(&["FUNCTION", "LOAD", &l2]),
        cmd(&["FUNCTION", "LIST"]),
        cmd(&["FUNCTION", "LIST", "WITHCODE"]),
        cmd(&["FUNCTION", "LIST", "LIBRARYNAME", "lib*", "WITHCODE"]),
        cmd(&["FUNCTION", "LIST", "LIBRARYNAME", "nomatch"]),
        cmd(&["FUNCTION", "LIST", "LIBRARYNAME"]),
        cmd(&["FUNCTION", "LIST", "bad"]),
        cmd(&["FUNCTION", "LIST", "WITHCODE", "WITHCODE"]),
        cmd(&["FCALL", "f1", "0"]),
        cmd(&["FCALL_RO", "f1", "0"]),
        cmd(&["FCALL", "nof", "0"]),
        cmd(&["FCALL", "f1", "x"]),
        cmd(&["FCALL", "f1", "-1"]),
        cmd(&["FCALL", "f1", "5", "a"]),
        cmd(&["FUNCTION", "LOAD", &l3]),
        cmd(&["FUNCTION", "LOAD", &l4]),
        cmd(&["FUNCTION", "LOAD", &l5]),
        cmd(&["FUNCTION", "LOAD", &l6]),
        cmd(&["FUNCTION", "LOAD", &l7]),
        cmd(&["FUNCTION", "LOAD", &l8]),
        cmd(&["FUNCTION", "LOAD", &l9]),
        cmd(&["FUNCTION", "LOAD", &l10]),
        cmd(&["FCALL", "w", "1", "k", "v"]),
        cmd(&["GET", "k"]),
        cmd(&["FCALL_RO", "w", "1", "k", "v"]),
        cmd(&["FCALL", "e", "0"]),
        cmd(&["FCALL", "e2", "0"]),
        cmd(&["FCALL", "ro", "0"]),
        cmd(&["FCALL_RO", "ro", "0"]),
        cmd(&["FCALL", "reg", "0"]),
        cmd(&["FCALL", "g", "1", "a", "b", "c"]),
        cmd(&["FCALL", "k", "0"]),
        cmd(&["FCALL", "h", "0", "21"]),
        cmd(&["FUNCTION", "STATS"]),
        cmd(&["FUNCTION", "LOAD", &l1b]),
        cmd(&["FUNCTION", "LOAD", "REPLACE", &l1b]),
        cmd(&["FCALL", "f1", "0"]),
        cmd(&["FCALL", "f1b", "0"]),
        cmd(&["FUNCTION", "LIST", "LIBRARYNAME", "lib1"]),
        cmd(&["FUNCTION", "DELETE", "lib1"]),
        cmd(&["FUNCTION", "DELETE", "lib1"]),
        cmd(&["FCALL", "f1b", "0"]),
        cmd(&["FUNCTION", "KILL"]),
        cmd(&["FUNCTION", "RESTORE", "foo"]),
        cmd(&["FUNCTION", "RESTORE", "foo", "bad"]),
        cmd(&["FUNCTION", "RESTORE", "a", "b", "c"]),
        cmd(&["FUNCTION", "FLUSH", "bad"]),
        cmd(&["FUNCTION", "FLUSH", "a", "b"]),
        cmd(&["FUNCTION", "FLUSH", "ASYNC"]),
        cmd(&["FUNCTION", "LIST"]),
        cmd(&["FUNCTION", "DUMP"]),
        cmd(&["FCALL", "w", "0"]),
        cmd(&["FUNCTION", "HELP"]),
    ];
    same_replies(srv.addr.port(), &script).await;
    let script3 = vec![
        cmd(&["FUNCTION", "FLUSH"]),
        cmd(&["FUNCTION", "LOAD", &l1]),
        cmd(&["FUNCTION", "LIST", "WITHCODE"]),
        cmd(&["FUNCTION", "STATS"]),
        cmd(&["FUNCTION", "FLUSH"]),
    ];
    same_replies_resp3(srv.addr.port(), &script3).await;
}

async fn bulk(c: &mut Conn, args: &[&[u8]]) -> Vec<u8> {
    let r = c.call(args).await;
    assert_eq!(r[0], b'$', "{:?}", String::from_utf8_lossy(&r));
    let nl = r.iter().position(|&b| b == b'\n').unwrap_or(0);
    let n: usize = std::str::from_utf8(&r[1..nl - 1])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    r[nl + 1..nl + 1 + n].to_vec()
}

/// DUMP payloads move between Cinnabar and redis-server both ways
/// (redis-server compresses library code with LZF), and RESTORE's
/// policies behave as Redis's.
#[tokio::test]
async fn dump_restore_interoperate() {
    let srv = TestServer::start();
    let mut ours = Conn::connect(srv.addr.port()).await;
    let code = lib(
        "mylib",
        "redis.register_function('myfunc', function(keys, args) return 'hello from a long enough library body to be compressed compressed compressed' end)",
    );
    let other = lib(
        "other",
        "redis.register_function('of', function(keys, args) return 2 end)",
    );
    let clash = lib(
        "clash",
        "redis.register_function('myfunc', function(keys, args) return 3 end)",
    );
    ours.call(&[b"FUNCTION", b"LOAD", code.as_bytes()]).await;
    let payload = bulk(&mut ours, &[b"FUNCTION", b"DUMP"]).await;
    assert_eq!(
        ours.call(&[b"FUNCTION", b"RESTORE", &payload]).await,
        b"-ERR Library mylib already exists\r\n"
    );
    assert_eq!(
        ours.call(&[b"FUNCTION", b"RESTORE", &payload, b"REPLACE"])
            .await,
        b"+OK\r\n"
    );
    let mut bad = payload.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert_eq!(
        ours.call(&[b"FUNCTION", b"RESTORE", &bad]).await,
        b"-ERR DUMP payload version or checksum are wrong\r\n"
    );
    ours.call(&[b"FUNCTION", b"LOAD", other.as_bytes()]).await;
    // FLUSH drops libraries the payload does not have.
    assert_eq!(
        ours.call(&[b"FUNCTION", b"RESTORE", &payload, b"FLUSH"])
            .await,
        b"+OK\r\n"
    );
    assert_eq!(
        ours.call(&[b"FCALL", b"of", b"0"]).await,
        b"-ERR Function not found\r\n"
    );
    // A function name clash aborts the whole restore.
    ours.call(&[b"FUNCTION", b"FLUSH"]).await;
    ours.call(&[b"FUNCTION", b"LOAD", clash.as_bytes()]).await;
    assert_eq!(
        ours.call(&[b"FUNCTION", b"RESTORE", &payload]).await,
        b"-ERR Function myfunc already exists\r\n"
    );
    ours.call(&[b"FUNCTION", b"FLUSH"]).await;

    let Some(reference) = RedisRef::start() else {
        return;
    };
    let mut theirs = Conn::connect(reference.port).await;
    // Ours → redis-server.
    assert_eq!(
        theirs.call(&[b"FUNCTION", b"RESTORE", &payload]).await,
        b"+OK\r\n"
    );
    let want =
        b"$76\r\nhello from a long enough library body to be compressed compressed compressed\r\n";
    assert_eq!(theirs.call(&[b"FCALL", b"myfunc", b"0"]).await, want);
    // redis-server (LZF-compressed) → ours.
    theirs.call(&[b"FUNCTION", b"LOAD", other.as_bytes()]).await;
    let theirs_payload = bulk(&mut theirs, &[b"FUNCTION", b"DUMP"]).await;
    assert_eq!(
        ours.call(&[b"FUNCTION", b"RESTORE", &theirs_payload]).await,
        b"+OK\r\n"
    );
    assert_eq!(ours.call(&[b"FCALL", b"myfunc", b"0"]).await, want);
    assert_eq!(ours.call(&[b"FCALL", b"of", b"0"]).await, b":2\r\n");
}

/// A busy function: others get the FUNCTION-flavoured BUSY, SCRIPT KILL
/// refuses it, FUNCTION STATS reports it, FUNCTION KILL stops it; FUNCTION
/// KILL does not stop an EVAL script.
#[tokio::test]
async fn busy_functions_and_function_kill() {
    let srv = TestServer::start();
    let mut admin = srv.raw().await;
    admin
        .expect(
            &resp(&[b"CONFIG", b"SET", b"busy-reply-threshold", b"50"]),
            b"+OK\r\n",
        )
        .await;
    let code = lib(
        "spin",
        "redis.register_function{function_name='spin', callback=function() local i = 0 while true do i = i + 1 end end, flags={'no-writes'}}",
    );
    admin
        .expect(
            &resp(&[b"FUNCTION", b"LOAD", code.as_bytes()]),
            b"$4\r\nspin\r\n",
        )
        .await;
    let mut runner = srv.raw().await;
    for _ in 0..5 {
        runner.send(&resp(&[b"FCALL", b"spin", b"0"])).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            admin.send(&resp(&[b"PING"])).await;
            let r = admin.read_until(b"\r\n").await;
            if r.starts_with(b"-BUSY") {
                assert_eq!(
                    String::from_utf8_lossy(&r),
                    "-BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.\r\n"
                );
                break;
            }
            assert!(std::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        admin
            .expect(
                &resp(&[b"SCRIPT", b"KILL"]),
                b"-BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.\r\n",
            )
            .await;
        admin.send(&resp(&[b"FUNCTION", b"STATS"])).await;
        let stats = admin.read_until(b"functions_count\r\n:1\r\n").await;
        let s = String::from_utf8_lossy(&stats);
        assert!(
            s.starts_with("*4\r\n$14\r\nrunning_script\r\n*6\r\n$4\r\nname\r\n$4\r\nspin\r\n$7\r\ncommand\r\n*3\r\n$5\r\nFCALL\r\n$4\r\nspin\r\n$1\r\n0\r\n$11\r\nduration_ms\r\n:"),
            "{s}"
        );
        admin
            .expect(&resp(&[b"FUNCTION", b"KILL"]), b"+OK\r\n")
            .await;
        runner
            .expect(
                b"",
                b"-ERR Script killed by user with SCRIPT KILL... script: spin, on @user_function:2.\r\n",
            )
            .await;
        admin.expect(&resp(&[b"PING"]), b"+PONG\r\n").await;
    }
    // FUNCTION KILL does not stop an EVAL.
    runner
        .send(&resp(&[b"EVAL", b"while true do end", b"0"]))
        .await;
    loop {
        admin.send(&resp(&[b"PING"])).await;
        if admin.read_until(b"\r\n").await.starts_with(b"-BUSY") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    admin
        .expect(
            &resp(&[b"FUNCTION", b"KILL"]),
            b"-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n",
        )
        .await;
    admin
        .expect(
            &resp(&[b"FUNCTION", b"STATS"]),
            b"-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n",
        )
        .await;
    admin.expect(&resp(&[b"SCRIPT", b"KILL"]), b"+OK\r\n").await;
    let r = runner.read_until(b"\r\n").await;
    assert!(r.starts_with(b"-ERR Script killed by user"));
}

/// Function flags enforced as Redis 7.0 does (no-writes, FCALL_RO,
/// allow-oom / deny-oom over maxmemory, NOREPLICAS), FCALL finding a
/// function in any case, quoted library names, FUNCTION STATS counts.
#[tokio::test]
async fn function_flags_match_redis() {
    let srv = TestServer::start();
    let code = lib(
        "flags",
        "redis.register_function('w', function(keys) return redis.call('set', keys[1], 'v') end)\n\
         redis.register_function{function_name='nw', callback=function(keys) return redis.call('set', keys[1], 'v') end, flags={'no-writes'}}\n\
         redis.register_function{function_name='r', callback=function(keys) return redis.call('get', keys[1]) end, flags={'no-writes'}}\n\
         redis.register_function{function_name='oom', callback=function(keys) return redis.call('set', keys[1], 'o') end, flags={'allow-oom'}}\n\
         redis.register_function{function_name='Mixed', callback=function() return 'mixed' end, flags={'NO-WRITES', 'Allow-Stale'}}\n\
         redis.register_function{function_name='ver', callback=function() return redis.REDIS_VERSION end, flags={'no-writes'}}\n\
         redis.register_function{function_name='pub', callback=function() return redis.call('publish', 'c', 'm') end, flags={'no-writes'}}",
    );
    let script = vec![
        cmd(&["FUNCTION", "FLUSH"]),
        cmd(&["FLUSHALL"]),
        cmd(&["FUNCTION", "LOAD", &code]),
        cmd(&["FCALL", "w", "1", "x"]),
        cmd(&["FCALL", "W", "1", "x"]),
        cmd(&["FCALL", "mixed", "0"]),
        cmd(&["FCALL", "MIXED", "0"]),
        cmd(&["FCALL_RO", "w", "1", "x"]),
        cmd(&["FCALL", "nw", "1", "x"]),
        cmd(&["FCALL_RO", "nw", "1", "x"]),
        cmd(&["FCALL", "r", "1", "x"]),
        cmd(&["FCALL_RO", "r", "1", "x"]),
        cmd(&["FCALL", "pub", "0"]),
        cmd(&["FCALL", "nosuch", "0"]),
        cmd(&["CONFIG", "SET", "maxmemory", "1"]),
        cmd(&["FCALL", "w", "1", "x"]),
        cmd(&["FCALL", "r", "1", "x"]),
        cmd(&["FCALL_RO", "r", "1", "x"]),
        cmd(&["FCALL", "oom", "1", "x"]),
        cmd(&["GET", "x"]),
        cmd(&["MULTI"]),
        cmd(&["FCALL", "w", "1", "x"]),
        cmd(&["EXEC"]),
        cmd(&["MULTI"]),
        cmd(&["FCALL", "r", "1", "x"]),
        cmd(&["PING"]),
        cmd(&["EXEC"]),
        cmd(&["CONFIG", "SET", "maxmemory", "0"]),
        cmd(&["MULTI"]),
        cmd(&["FCALL", "r", "1", "x"]),
        cmd(&["CONFIG", "SET", "maxmemory", "1"]),
        cmd(&["EXEC"]),
        cmd(&["MULTI"]),
        cmd(&["FCALL", "r", "1", "x"]),
        cmd(&["DISCARD"]),
        cmd(&["CONFIG", "SET", "maxmemory", "0"]),
        cmd(&["CONFIG", "SET", "min-replicas-to-write", "1"]),
        cmd(&["FCALL", "w", "1", "x"]),
        cmd(&["FCALL", "r", "1", "x"]),
        cmd(&["CONFIG", "SET", "min-replicas-to-write", "0"]),
        cmd(&["FCALL", "ver", "0"]),
        cmd(&[
            "FUNCTION",
            "LOAD",
            "#!lua name=\"quoted\"\nredis.register_function('q', function() return 1 end)",
        ]),
        cmd(&[
            "FUNCTION",
            "LOAD",
            "#! name=test\nredis.register_function('q2', function() return 1 end)",
        ]),
        cmd(&[
            "FUNCTION",
            "LOAD",
            "#!lua name='unbalanced\nredis.register_function('q3', function() return 1 end)",
        ]),
        cmd(&[
            "FUNCTION",
            "LOAD",
            "#!lua name=dup\nredis.register_function('Q', function() return 1 end)",
        ]),
        cmd(&["FUNCTION", "STATS"]),
        cmd(&["FUNCTION", "DELETE", "flags"]),
        cmd(&["FUNCTION", "STATS"]),
    ];
    same_replies(srv.addr.port(), &script).await;
    same_replies_resp3(srv.addr.port(), &script).await;
}

/// Scripts on a replica as Redis 7.0 checks them: with the link down and
/// `replica-serve-stale-data no`, only `allow-stale` scripts run, and the
/// commands they call must be allowed on a stale replica; on a read-only
/// replica a script that may write is refused, and so is a write called
/// from a script without flags.
#[tokio::test]
async fn scripts_on_stale_and_read_only_replicas_match_redis() {
    let srv = TestServer::start();
    let code = lib(
        "stale",
        "redis.register_function{function_name='f1', callback=function() return 'hello' end, flags={'no-writes'}}\n\
         redis.register_function{function_name='f2', callback=function() return 'hello' end, flags={'allow-stale', 'no-writes'}}\n\
         redis.register_function{function_name='f3', callback=function() return redis.call('get', 'x') end, flags={'allow-stale', 'no-writes'}}\n\
         redis.register_function{function_name='f4', callback=function() return string.sub(redis.call('info', 'server'), 1, 8) end, flags={'allow-stale', 'no-writes'}}\n\
         redis.register_function('w', function(keys) return redis.call('set', keys[1], 'v') end)",
    );
    let script = vec![
        cmd(&["FUNCTION", "FLUSH"]),
        cmd(&["FLUSHALL"]),
        cmd(&["FUNCTION", "LOAD", &code]),
        cmd(&["CONFIG", "SET", "replica-serve-stale-data", "no"]),
        // Nothing listens on port 1: the link stays down.
        cmd(&["REPLICAOF", "127.0.0.1", "1"]),
        cmd(&["FCALL", "f1", "0"]),
        cmd(&["FCALL", "f2", "0"]),
        cmd(&["FCALL", "f3", "0"]),
        cmd(&["FCALL", "f4", "0"]),
        cmd(&["FCALL", "w", "1", "x"]),
        cmd(&["EVAL", "return 1", "0"]),
        cmd(&["EVAL", "#!lua flags=no-writes,allow-stale\nreturn 1", "0"]),
        cmd(&["EVAL", "#!lua flags=allow-stale\nreturn 1", "0"]),
        cmd(&["CONFIG", "SET", "replica-serve-stale-data", "yes"]),
        cmd(&["FCALL", "f3", "0"]),
        cmd(&["FCALL", "w", "1", "x"]),
        cmd(&["EVAL", "#!lua\nreturn 1", "0"]),
        cmd(&["EVAL", "return redis.call('set', 'x', '1')", "0"]),
        cmd(&["EVAL", "return redis.call('get', 'x')", "0"]),
        cmd(&["CONFIG", "SET", "replica-read-only", "no"]),
        cmd(&["FCALL", "w", "1", "x"]),
        cmd(&["GET", "x"]),
        cmd(&["CONFIG", "SET", "replica-read-only", "yes"]),
        cmd(&["REPLICAOF", "NO", "ONE"]),
        cmd(&["FCALL", "w", "1", "x"]),
    ];
    same_replies(srv.addr.port(), &script).await;
}
