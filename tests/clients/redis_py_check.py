"""redis-py against a running Cinnabar: what the library itself does on
top of the protocol (reply parsing in RESP2 and RESP3, pipelines and
WATCH retries, pub/sub, script caching, locks, functions, ACL
logins, TLS, the cluster client), checked through the real server.
(redis-py's client-side cache asks for Redis 7.4, so it is not used here;
node-redis exercises tracking, see node/check.mjs.)

Run by tests/clients.rs:
    python redis_py_check.py --port P [--tls-port T --ca CA] [--cluster-port C]
Prints one line per check and exits 1 if any check failed.
"""

import argparse
import asyncio
import threading
import time
import traceback

import redis
import redis.asyncio
from redis.cluster import ClusterNode, RedisCluster

CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


def wait_for(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return False


@check
def reply_types(a, proto):
    r = redis.Redis(port=a.port, protocol=proto, decode_responses=True)
    r.flushall()
    assert r.set("s", "v", ex=100) is True
    assert r.get("s") == "v"
    assert 90 < r.ttl("s") <= 100
    assert r.getdel("s") == "v" and r.get("s") is None
    assert r.incrbyfloat("f", 1.5) == 1.5
    r.hset("h", mapping={"a": "1", "b": "2"})
    assert r.hgetall("h") == {"a": "1", "b": "2"}
    assert r.hrandfield("h", 5, withvalues=True)
    r.zadd("z", {"a": 1, "b": 2.5})
    # RESP2 pairs come back as tuples, RESP3 ones as lists.
    assert [tuple(x) for x in r.zrange("z", 0, -1, withscores=True)] == [("a", 1.0), ("b", 2.5)]
    assert r.zscore("z", "b") == 2.5
    assert r.zrank("z", "b") == 1
    assert [tuple(x) for x in r.zpopmin("z", 1)] == [("a", 1.0)]
    r.sadd("set", "x", "y")
    assert r.smembers("set") == {"x", "y"}
    assert r.smismember("set", ["x", "q"]) == [1, 0]
    r.rpush("l", "1", "2", "3")
    assert r.lrange("l", 0, -1) == ["1", "2", "3"]
    assert r.lpos("l", "3") == 2
    assert r.type("h") == "hash"
    # Redis 7.0 keeps small sets of strings in a hash table (listpack
    # sets came with 7.2); small integer sets are intsets.
    assert r.object("encoding", "set") == "hashtable"
    r.sadd("iset", 1, 2, 3)
    assert r.object("encoding", "iset") == "intset"
    r.delete("iset")
    assert r.exists("h", "l", "nope") == 2
    assert sorted(r.keys("*")) == ["f", "h", "l", "set", "z"]
    assert r.dbsize() == 5
    info = r.info("keyspace")
    assert info["db0"]["keys"] == 5, info
    assert r.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
    assert isinstance(r.time()[0], int)
    hello = r.execute_command("HELLO")
    if proto == 3:
        assert hello["proto"] == 3 and hello["version"] == "7.0.15", hello
    else:
        assert dict(zip(hello[::2], hello[1::2]))["proto"] == 2, hello


@check
def errors(a, proto):
    r = redis.Redis(port=a.port, protocol=proto)
    r.set("str", "x")
    try:
        r.lpush("str", "y")
        raise AssertionError("no WRONGTYPE")
    except redis.ResponseError as e:
        assert str(e).startswith("WRONGTYPE Operation against a key"), e
    try:
        r.execute_command("GET")
        raise AssertionError("no arity error")
    except redis.ResponseError as e:
        assert str(e) == "wrong number of arguments for 'get' command", e
    for text, exc in [
        ("LOADING fake", redis.BusyLoadingError),
        ("READONLY You can't write against a read only replica.", redis.ReadOnlyError),
        ("OOM command not allowed", redis.OutOfMemoryError),
        ("NOSCRIPT No matching script", redis.exceptions.NoScriptError),
    ]:
        try:
            r.execute_command("DEBUG", "ERROR", text)
            raise AssertionError(f"no {exc.__name__}")
        except exc:
            pass
    # BusyLoadingError drops the connection; the client reconnects by itself.
    assert r.ping() is True


@check
def pipeline_and_watch(a, proto):
    r = redis.Redis(port=a.port, protocol=proto, decode_responses=True)
    other = redis.Redis(port=a.port, protocol=proto)
    r.delete("cnt", "w")
    with r.pipeline(transaction=True) as p:
        p.incr("cnt").incr("cnt").get("cnt")
        assert p.execute() == [1, 2, "2"]
    with r.pipeline(transaction=False) as p:
        for i in range(100):
            p.set(f"p:{i}", i)
        assert all(p.execute())
    # An error inside EXEC does not stop the rest; raise_on_error=False shows it.
    r.set("notnum", "x")
    with r.pipeline() as p:
        p.incr("notnum").set("after", "1")
        res = p.execute(raise_on_error=False)
        assert isinstance(res[0], redis.ResponseError) and res[1] is True
    # WATCH: the first attempt is spoiled by another client, the retry wins.
    attempts = []

    def bump(pipe):
        v = int(pipe.get("w") or 0)
        if not attempts:
            other.set("w", 100)
        attempts.append(v)
        pipe.multi()
        pipe.set("w", v + 1)

    r.transaction(bump, "w")
    assert attempts == [0, 100], attempts
    assert r.get("w") == "101"


@check
def pubsub(a, proto):
    r = redis.Redis(port=a.port, protocol=proto, decode_responses=True)
    ps = r.pubsub(ignore_subscribe_messages=True)
    ps.subscribe("news")
    ps.psubscribe("ev.*")
    got = []
    assert wait_for(lambda: r.pubsub_numsub("news")[0][1] == 1)
    assert r.publish("news", "hello") == 1
    assert r.publish("ev.1", "x") == 1

    def drain():
        m = ps.get_message(timeout=0.1)
        if m:
            got.append((m["type"], m["channel"], m["data"]))
        return len(got) == 2

    assert wait_for(drain), got
    assert got == [("message", "news", "hello"), ("pmessage", "ev.1", "x")], got
    # A handler in a background thread.
    seen = []
    ps2 = r.pubsub()
    ps2.subscribe(**{"bg": lambda m: seen.append(m["data"])})
    t = ps2.run_in_thread(sleep_time=0.01)
    try:
        assert wait_for(lambda: r.publish("bg", "one") == 1)
        assert wait_for(lambda: seen == ["one"]), seen
    finally:
        t.stop()
        t.join(timeout=5)
    assert r.pubsub_channels("n*") == ["news"]
    ps.close()
    ps2.close()


@check
def scripts_and_locks(a, proto):
    r = redis.Redis(port=a.port, protocol=proto, decode_responses=True)
    r.script_flush()
    incr = r.register_script(
        "redis.call('incr', KEYS[1]); return redis.call('incrby', KEYS[1], ARGV[1])"
    )
    r.delete("lk")
    # The first call meets NOSCRIPT and loads the script; later ones hit.
    assert incr(keys=["lk"], args=[5]) == 6
    assert incr(keys=["lk"], args=[5]) == 12
    assert r.script_exists(incr.sha) == [True]
    assert r.eval("return {1, 'two', {3}, redis.status_reply('OK')}", 0) == [
        1,
        "two",
        [3],
        "OK",
    ]
    # redis-py's Lock is built on SET NX PX and Lua scripts.
    lock = r.lock("resource", timeout=5, blocking_timeout=0.2)
    assert lock.acquire()
    second = r.lock("resource", timeout=5, blocking_timeout=0.2)
    assert not second.acquire()
    assert lock.extend(5)
    assert 5000 < r.pttl("resource") <= 10000
    lock.release()
    assert second.acquire()
    second.release()
    # Functions.
    r.function_flush()
    lib = (
        "#!lua name=mylib\n"
        "redis.register_function('myget', function(keys, args) "
        "return redis.call('get', keys[1]) end)"
    )
    assert r.function_load(lib) == "mylib"
    r.set("fk", "fv")
    assert r.fcall("myget", 1, "fk") == "fv"


@check
def blocking_and_streams(a, proto):
    r = redis.Redis(port=a.port, protocol=proto, decode_responses=True)
    r.delete("q", "s")
    threading.Timer(0.1, lambda: redis.Redis(port=a.port).rpush("q", "job")).start()
    assert tuple(r.blpop(["q"], timeout=5)) == ("q", "job")
    assert r.blpop(["empty"], timeout=0.1) is None
    i1 = r.xadd("s", {"f": "v"})
    r.xadd("s", {"f": "w"}, maxlen=10, approximate=False)
    r.xgroup_create("s", "g", id="0")
    out = r.xreadgroup("g", "c1", {"s": ">"}, count=1)
    if proto == 3:
        assert out == {"s": [[(i1, {"f": "v"})]]}, out
    else:
        assert out == [["s", [(i1, {"f": "v"})]]], out
    pend = r.xpending("s", "g")
    assert pend["pending"] == 1 and pend["consumers"][0]["name"] == "c1", pend
    time.sleep(0.01)
    claimed = r.xautoclaim("s", "g", "c2", min_idle_time=1, start_id="0-0")
    assert claimed[1][0][0] == i1, claimed
    assert r.xack("s", "g", i1) == 1
    info = r.xinfo_stream("s")
    assert info["length"] == 2 and info["groups"] == 1, info


@check
def scans(a, proto):
    r = redis.Redis(port=a.port, protocol=proto, decode_responses=True)
    r.flushdb()
    with r.pipeline(transaction=False) as p:
        for i in range(1000):
            p.set(f"scan:{i}", i)
        p.hset("bigh", mapping={f"f{i}": i for i in range(300)})
        p.execute()
    assert len(set(r.scan_iter(match="scan:*", count=100))) == 1000
    assert len(dict(r.hscan_iter("bigh", count=50))) == 300


@check
def acl_users(a, proto):
    admin = redis.Redis(port=a.port, protocol=proto)
    admin.acl_setuser(
        "app", enabled=True, passwords=["+apppass"], keys=["app:*"], commands=["+@all", "-flushall"]
    )
    try:
        u = redis.Redis(port=a.port, protocol=proto, username="app", password="apppass")
        assert u.acl_whoami() in (b"app", "app")
        assert u.set("app:1", "x") is True
        try:
            u.set("other", "x")
            raise AssertionError("no NOPERM")
        except redis.exceptions.NoPermissionError as e:
            assert "no permissions to access one of the keys" in str(e), e
        try:
            redis.Redis(port=a.port, protocol=proto, username="app", password="wrong").ping()
            raise AssertionError("bad password accepted")
        except redis.AuthenticationError:
            pass
    finally:
        admin.acl_deluser("app")


@check
def asyncio_client(a, proto):
    async def go():
        r = redis.asyncio.Redis(port=a.port, protocol=proto, decode_responses=True)
        await r.set("ak", "av")
        async with r.pipeline(transaction=True) as p:
            res = await p.get("ak").incr("acnt").execute()
        assert res[0] == "av", res
        ps = r.pubsub()
        await ps.subscribe("ach")
        await r.publish("ach", "m")
        msg = None
        for _ in range(50):
            msg = await ps.get_message(ignore_subscribe_messages=True, timeout=0.1)
            if msg:
                break
        assert msg and msg["data"] == "m", msg
        await ps.aclose()
        await r.aclose()

    asyncio.run(go())


def tls_checks(a):
    for proto in (2, 3):
        r = redis.Redis(
            host="localhost", port=a.tls_port, ssl=True, ssl_ca_certs=a.ca, protocol=proto
        )
        assert r.set("tls", "ok") is True and r.get("tls") == b"ok"
        u = redis.from_url(f"rediss://localhost:{a.tls_port}/0?protocol={proto}", ssl_ca_certs=a.ca)
        assert u.ping() is True
    # A client that does not trust the CA fails the handshake.
    try:
        redis.Redis(host="localhost", port=a.tls_port, ssl=True).ping()
        raise AssertionError("untrusted certificate accepted")
    except redis.ConnectionError:
        pass


def cluster_checks(a):
    rc = RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", a.cluster_port)], decode_responses=True)
    assert len(rc.get_primaries()) == 3, rc.get_nodes()
    for i in range(200):
        rc.set(f"ck:{i}", i)
    assert [rc.get(f"ck:{i}") for i in range(0, 200, 17)] == [str(i) for i in range(0, 200, 17)]
    # Keys of one hash slot in one command; spread keys split by the client.
    assert rc.mset({"{u1}a": "1", "{u1}b": "2"}) is True
    assert rc.mget("{u1}a", "{u1}b") == ["1", "2"]
    assert rc.mget_nonatomic([f"ck:{i}" for i in range(5)]) == ["0", "1", "2", "3", "4"]
    with rc.pipeline() as p:
        for i in range(50):
            p.incr(f"cp:{i}")
        assert p.execute() == [1] * 50
    # The server refuses keys in different slots where the client does not split.
    try:
        rc.execute_command("MSET", "a", "1", "b", "2", target_nodes=rc.get_random_node())
        raise AssertionError("no CROSSSLOT")
    except redis.exceptions.ClusterCrossSlotError:
        pass
    assert rc.cluster_keyslot("foo") == 12182
    # DBSIZE on every primary, the counts added up by the client.
    total = rc.dbsize(target_nodes=RedisCluster.PRIMARIES)
    assert total == 200 + 2 + 50, total
    # A subscriber on one node hears what is published on every node.
    p = rc.pubsub()
    p.subscribe("py-news")
    assert p.get_message(timeout=2)["type"] == "subscribe"
    primaries = rc.get_primaries()
    for i, node in enumerate(primaries):
        rc.execute_command("PUBLISH", "py-news", f"m{i}", target_nodes=node)
    got = []
    deadline = time.time() + 5
    while len(got) < len(primaries) and time.time() < deadline:
        m = p.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if m:
            got.append(m["data"])
    assert sorted(got) == [f"m{i}" for i in range(len(primaries))], got
    p.close()
    rc.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tls-port", type=int)
    ap.add_argument("--ca")
    ap.add_argument("--cluster-port", type=int)
    a = ap.parse_args()
    print(f"redis-py {redis.__version__}")
    failed = 0

    def run(name, fn, *args):
        nonlocal failed
        try:
            note = fn(*args)
            print(f"ok   {name}" + (f" ({note})" if note else ""))
        except Exception:
            failed += 1
            print(f"FAIL {name}\n{traceback.format_exc()}")

    for proto in (2, 3):
        for fn in CHECKS:
            run(f"{fn.__name__} RESP{proto}", fn, a, proto)
    if a.tls_port:
        run("tls", tls_checks, a)
    if a.cluster_port:
        run("cluster", cluster_checks, a)
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
