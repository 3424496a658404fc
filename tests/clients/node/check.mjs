// ioredis and node-redis against a running Cinnabar: what the libraries
// do on top of the protocol (ready checks, pipelines and MULTI, Lua
// command caching, pub/sub, blocking calls, RESP3 and client-side
// caching in node-redis, the cluster clients, TLS).
//
// Run by tests/clients.rs:
//   node check.mjs --port P [--tls-port T --ca CA] [--cluster-port C]
// Prints one line per check and exits 1 if any failed.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import Redis, { Cluster } from "ioredis";
import { createClient, createCluster } from "redis";

const { values: opts } = parseArgs({
  options: {
    port: { type: "string" },
    "tls-port": { type: "string" },
    ca: { type: "string" },
    "cluster-port": { type: "string" },
  },
});
const port = Number(opts.port);
const results = [];
async function check(name, fn) {
  try {
    await fn();
    results.push(["ok", name]);
  } catch (e) {
    results.push(["FAIL", name, e && (e.stack || e.message || String(e))]);
  }
}

// ---------------- ioredis ----------------
await check("ioredis basic", async () => {
  const r = new Redis({ port, host: "127.0.0.1", lazyConnect: true });
  await r.connect();
  await r.flushdb();
  assert.equal(await r.set("k", "v"), "OK");
  assert.equal(await r.get("k"), "v");
  assert.equal(await r.set("k", "v2", "EX", 100, "GET"), "v");
  assert.ok((await r.ttl("k")) > 90);
  await r.hset("h", { a: "1", b: "2" });
  assert.deepEqual(await r.hgetall("h"), { a: "1", b: "2" });
  await assert.rejects(r.lpush("h", "x"), /WRONGTYPE Operation against a key holding the wrong kind of value/);
  await r.zadd("z", 1, "a", 2.5, "b");
  assert.deepEqual(await r.zrange("z", 0, -1, "WITHSCORES"), ["a", "1", "b", "2.5"]);
  const buf = await r.getBuffer("k");
  assert.ok(Buffer.isBuffer(buf));
  r.disconnect();
});

await check("ioredis pipeline multi watch", async () => {
  const r = new Redis({ port });
  const res = await r.pipeline().set("p1", "1").incr("p1").get("p1").exec();
  assert.deepEqual(res, [[null, "OK"], [null, 2], [null, "2"]]);
  const m = await r.multi().incr("c").incr("c").exec();
  assert.deepEqual(m, [[null, 1], [null, 2]]);
  await r.watch("w");
  const other = new Redis({ port });
  await other.set("w", "changed");
  const aborted = await r.multi().set("w", "mine").exec();
  assert.equal(aborted, null);
  assert.equal(await r.get("w"), "changed");
  // error inside EXEC does not abort the rest
  await r.set("str", "x");
  const mixed = await r.multi().incr("str").set("after", "1").exec();
  assert.match(String(mixed[0][0]), /not an integer/);
  assert.deepEqual(mixed[1], [null, "OK"]);
  // queue-time error: EXECABORT
  await assert.rejects(r.multi().set("a").exec(), /EXECABORT/);
  other.disconnect();
  r.disconnect();
});

await check("ioredis defineCommand (EVALSHA then EVAL)", async () => {
  const r = new Redis({ port });
  await r.script("FLUSH");
  r.defineCommand("incrTwice", {
    numberOfKeys: 1,
    lua: "redis.call('incr', KEYS[1]); return redis.call('incrby', KEYS[1], ARGV[1])",
  });
  assert.equal(await r.incrTwice("lua:k", 5), 6);
  assert.equal(await r.incrTwice("lua:k", 5), 12);
  const json = await r.eval("return cjson.encode({a=1})", 0);
  assert.equal(json, '{"a":1}');
  r.disconnect();
});

await check("ioredis pubsub", async () => {
  const sub = new Redis({ port });
  const pub = new Redis({ port });
  const got = [];
  const done = new Promise((resolve) => {
    sub.on("message", (ch, msg) => { got.push([ch, msg]); if (got.length === 2) resolve(); });
    sub.on("pmessage", (pat, ch, msg) => { got.push([pat, ch, msg]); if (got.length === 2) resolve(); });
  });
  await sub.subscribe("news");
  await sub.psubscribe("ev.*");
  assert.equal(await pub.publish("news", "hello"), 1);
  assert.equal(await pub.publish("ev.1", "x"), 1);
  await done;
  assert.deepEqual(got, [["news", "hello"], ["ev.*", "ev.1", "x"]]);
  sub.disconnect();
  pub.disconnect();
});

await check("ioredis blocking and streams", async () => {
  const r = new Redis({ port });
  const b = new Redis({ port });
  const p = b.blpop("q", 2);
  await new Promise((res) => setTimeout(res, 100));
  await r.rpush("q", "job");
  assert.deepEqual(await p, ["q", "job"]);
  assert.equal(await b.blpop("empty", 0.1), null);
  await r.del("s");
  const id = await r.xadd("s", "*", "f", "v");
  await r.xgroup("CREATE", "s", "g", "0");
  const rd = await r.xreadgroup("GROUP", "g", "c", "COUNT", 10, "STREAMS", "s", ">");
  assert.deepEqual(rd, [["s", [[id, ["f", "v"]]]]]);
  assert.equal(await r.xack("s", "g", id), 1);
  b.disconnect();
  r.disconnect();
});

await check("ioredis scanStream", async () => {
  const r = new Redis({ port });
  const pipe = r.pipeline();
  for (let i = 0; i < 500; i++) pipe.set(`scan:${i}`, i);
  await pipe.exec();
  const keys = new Set();
  await new Promise((resolve, reject) => {
    const s = r.scanStream({ match: "scan:*", count: 50 });
    s.on("data", (ks) => ks.forEach((k) => keys.add(k)));
    s.on("end", resolve);
    s.on("error", reject);
  });
  assert.equal(keys.size, 500);
  r.disconnect();
});

await check("ioredis autopipelining", async () => {
  const r = new Redis({ port, enableAutoPipelining: true });
  const vals = await Promise.all(Array.from({ length: 200 }, (_, i) => r.incr("ap")));
  assert.equal(Math.max(...vals), 200);
  r.disconnect();
});

// ---------------- node-redis ----------------
for (const RESP of [2, 3]) {
  await check(`node-redis RESP${RESP} basic`, async () => {
    const c = createClient({ socket: { port, host: "127.0.0.1" }, RESP });
    c.on("error", () => {});
    await c.connect();
    await c.flushDb();
    assert.equal(await c.set("k", "v"), "OK");
    assert.equal(await c.get("k"), "v");
    await c.hSet("h", { a: "1", b: "2" });
    const h = await c.hGetAll("h");
    assert.equal(h.a, "1");
    assert.equal(h.b, "2");
    await c.zAdd("z", [{ score: 1, value: "a" }, { score: 2.5, value: "b" }]);
    const zs = await c.zRangeWithScores("z", 0, -1);
    assert.deepEqual(zs.map((x) => [x.value, Number(x.score)]), [["a", 1], ["b", 2.5]]);
    assert.equal(await c.sAdd("s", ["x", "y"]), 2);
    const sm = await c.sMembers("s");
    assert.deepEqual([...sm].sort(), ["x", "y"]);
    await assert.rejects(c.lPush("h", "x"), /WRONGTYPE/);
    const m = await c.multi().incr("n").incr("n").exec();
    assert.deepEqual(m, [1, 2]);
    const info = await c.info("server");
    assert.match(info, /redis_version:7\./);
    const hello = await c.sendCommand(["HELLO"]);
    assert.ok(hello);
    await c.quit();
  });

  await check(`node-redis RESP${RESP} pubsub`, async () => {
    const c = createClient({ socket: { port }, RESP });
    const sub = c.duplicate();
    c.on("error", () => {}); sub.on("error", () => {});
    await c.connect();
    await sub.connect();
    const got = new Promise((resolve) => sub.subscribe("ch", (m) => resolve(m)));
    await new Promise((r) => setTimeout(r, 50));
    await c.publish("ch", "msg");
    assert.equal(await got, "msg");
    await sub.unsubscribe("ch");
    await c.quit(); await sub.quit();
  });

  await check(`node-redis RESP${RESP} scripts`, async () => {
    const c = createClient({ socket: { port }, RESP });
    c.on("error", () => {});
    await c.connect();
    await c.scriptFlush();
    const r = await c.eval("return {1, 'two', {3}}", { keys: [], arguments: [] });
    assert.deepEqual(r, [1, "two", [3]]);
    const sha = await c.scriptLoad("return ARGV[1]");
    assert.equal(await c.evalSha(sha, { arguments: ["x"] }), "x");
    await assert.rejects(c.evalSha("0".repeat(40)), /NOSCRIPT/);
    await c.quit();
  });
}

await check("node-redis RESP3 client-side cache", async () => {
  const c = createClient({ socket: { port }, RESP: 3, clientSideCache: { ttl: 0, maxEntries: 100 } });
  const w = createClient({ socket: { port } });
  c.on("error", () => {}); w.on("error", () => {});
  await c.connect(); await w.connect();
  await w.set("csc", "1");
  assert.equal(await c.get("csc"), "1");
  assert.equal(await c.get("csc"), "1");
  await w.set("csc", "2");
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(await c.get("csc"), "2");
  await c.quit(); await w.quit();
});

if (opts["cluster-port"]) {
  const cport = Number(opts["cluster-port"]);
  await check("ioredis Cluster", async () => {
    const c = new Cluster([{ host: "127.0.0.1", port: cport }]);
    await c.ping();
    await Promise.all(c.nodes("master").map((n) => n.flushall()));
    for (let i = 0; i < 100; i++) await c.set(`ic:${i}`, i);
    assert.equal(await c.get("ic:42"), "42");
    assert.equal(c.nodes("master").length, 3);
    // One slot through a hash tag: MULTI works.
    const m = await c.multi().set("{t}a", "1").incr("{t}n").exec();
    assert.deepEqual(m, [[null, "OK"], [null, 1]]);
    // A pipeline over several slots is refused by the client, a cross-slot
    // command by the server.
    await assert.rejects(c.mset("a1", "1", "b2", "2"), /CROSSSLOT/);
    await c.quit();
  });
  await check("ioredis Cluster pub/sub", async () => {
    // ioredis subscribes on a random node: a message published on any
    // node must reach it, as on Redis Cluster.
    const sub = new Cluster([{ host: "127.0.0.1", port: cport }]);
    const pub = new Cluster([{ host: "127.0.0.1", port: cport }]);
    const got = [];
    sub.on("message", (_ch, m) => got.push(m));
    await sub.subscribe("cl-news");
    await pub.ping();
    const masters = pub.nodes("master");
    for (let i = 0; i < masters.length; i++) await masters[i].publish("cl-news", `m${i}`);
    const deadline = Date.now() + 5000;
    while (got.length < masters.length && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.deepEqual(got.sort(), masters.map((_, i) => `m${i}`));
    sub.disconnect(); pub.disconnect();
  });
  await check("node-redis createCluster", async () => {
    const c = createCluster({ rootNodes: [{ url: `redis://127.0.0.1:${cport}` }] });
    c.on("error", () => {});
    await c.connect();
    for (let i = 0; i < 100; i++) await c.set(`nc:${i}`, String(i));
    assert.equal(await c.get("nc:7"), "7");
    assert.equal(c.masters.length, 3);
    // node-redis splits a multi-key MSET by slot (Redis's command policies).
    assert.equal(await c.mSet(["na1", "1", "nb2", "2"]), "OK");
    assert.deepEqual([await c.get("na1"), await c.get("nb2")], ["1", "2"]);
    await c.close();
  });
}

if (opts["tls-port"]) {
  const tport = Number(opts["tls-port"]);
  const ca = readFileSync(opts.ca);
  await check("ioredis TLS", async () => {
    const r = new Redis({ host: "localhost", port: tport, tls: { ca } });
    assert.equal(await r.set("tls", "ok"), "OK");
    assert.equal(await r.get("tls"), "ok");
    r.disconnect();
  });
  await check("node-redis TLS", async () => {
    const c = createClient({ socket: { host: "localhost", port: tport, tls: true, ca } });
    c.on("error", () => {});
    await c.connect();
    assert.equal(await c.ping(), "PONG");
    await c.close();
  });
}

let failed = 0;
for (const [s, n, e] of results) {
  console.log(`${s} ${n}`);
  if (e) { console.log("   " + e.split("\n").slice(0, 6).join("\n   ")); failed++; }
}
process.exit(failed ? 1 : 0);
