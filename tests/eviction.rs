//! maxmemory and the eviction policies through the real server.

mod common;
use std::collections::HashMap;
use std::time::Duration;

use common::{config_set, TestServer};
use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;

async fn info_u64(c: &mut MultiplexedConnection, section: &str, field: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg(section)
        .query_async(c)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in INFO {section}"))
}

/// Sets maxmemory to the current usage plus `extra` bytes.
async fn limit_above_baseline(c: &mut MultiplexedConnection, extra: u64) -> u64 {
    let base = info_u64(c, "memory", "used_memory").await;
    let max = base + extra;
    config_set(c, "maxmemory", &max.to_string()).await;
    max
}

async fn fill(
    c: &mut MultiplexedConnection,
    prefix: &str,
    n: usize,
    size: usize,
    ttl: Option<u64>,
) {
    let val = "x".repeat(size);
    for chunk in (0..n).collect::<Vec<_>>().chunks(200) {
        let mut p = redis::pipe();
        for i in chunk {
            let cmd = p.cmd("SET").arg(format!("{prefix}{i}")).arg(&val);
            if let Some(t) = ttl {
                cmd.arg("EX").arg(t + *i as u64);
            }
            cmd.ignore();
        }
        let _: () = p.query_async(c).await.unwrap();
    }
}

#[tokio::test]
async fn noeviction_refuses_writes_but_serves_reads_and_deletes() {
    let srv = TestServer::start();
    let mut c = srv.conn().await;
    fill(&mut c, "keep:", 10, 10, None).await;
    config_set(&mut c, "maxmemory", "1").await;
    let e = c.set::<_, _, ()>("k", "v").await.unwrap_err();
    assert!(
        e.to_string()
            .contains("command not allowed when used memory > 'maxmemory'"),
        "{e}"
    );
    let mut raw = srv.raw().await;
    raw.expect(
        b"SET k v\r\n",
        b"-OOM command not allowed when used memory > 'maxmemory'.\r\n",
    )
    .await;
    let v: String = c.get("keep:1").await.unwrap();
    assert_eq!(v, "x".repeat(10));
    let n: i64 = c.del("keep:1").await.unwrap();
    assert_eq!(n, 1);
    // Queueing a write under OOM dooms the transaction; DISCARD works.
    raw.expect(b"MULTI\r\n", b"+OK\r\n").await;
    raw.expect(
        b"SET x 1\r\n",
        b"-OOM command not allowed when used memory > 'maxmemory'.\r\n",
    )
    .await;
    raw.expect(b"DISCARD\r\n", b"+OK\r\n").await;
    // A transaction queued before the limit fails at EXEC if it writes...
    config_set(&mut c, "maxmemory", "0").await;
    raw.expect(b"MULTI\r\n", b"+OK\r\n").await;
    raw.expect(b"SET x 1\r\n", b"+QUEUED\r\n").await;
    config_set(&mut c, "maxmemory", "1").await;
    raw.expect(
        b"EXEC\r\n",
        b"-EXECABORT Transaction discarded because of: OOM command not allowed when used memory > 'maxmemory'.\r\n",
    )
    .await;
    // ...and succeeds if it only reads.
    config_set(&mut c, "maxmemory", "0").await;
    raw.expect(b"MULTI\r\n", b"+OK\r\n").await;
    raw.expect(b"GET keep:2\r\n", b"+QUEUED\r\n").await;
    config_set(&mut c, "maxmemory", "1").await;
    raw.expect(b"EXEC\r\n", b"*1\r\n$10\r\nxxxxxxxxxx\r\n")
        .await;
    config_set(&mut c, "maxmemory", "0").await;
    assert_eq!(info_u64(&mut c, "stats", "evicted_keys").await, 0);
}

#[tokio::test]
async fn allkeys_lru_keeps_used_memory_near_the_limit_under_sustained_writes() {
    let srv = TestServer::start();
    let mut c = srv.conn().await;
    config_set(&mut c, "maxmemory-policy", "allkeys-lru").await;
    let max = limit_above_baseline(&mut c, 4 << 20).await;
    // Small and large values mixed, well beyond the limit.
    for round in 0..4 {
        fill(&mut c, &format!("small{round}:"), 20_000, 50, None).await;
        fill(&mut c, &format!("large{round}:"), 1_000, 8_000, None).await;
        let used = info_u64(&mut c, "memory", "used_memory").await;
        assert!(
            used <= max + max / 20,
            "used_memory {used} > maxmemory {max} + 5%"
        );
    }
    assert!(info_u64(&mut c, "stats", "evicted_keys").await > 10_000);
    // Lowering the limit at run time evicts down to it.
    let lower = max - (2 << 20);
    config_set(&mut c, "maxmemory", &lower.to_string()).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let used = info_u64(&mut c, "memory", "used_memory").await;
        if used <= lower + lower / 50 {
            break;
        }
        if std::time::Instant::now() > deadline {
            let n: usize = redis::cmd("DBSIZE").query_async(&mut c).await.unwrap();
            panic!("still {used} > {lower} with {n} keys");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A versioned snapshot keeps old values of keys changed or removed
/// meanwhile (eviction included) in side buffers; like a forked child's
/// memory they are not the dataset's, so eviction during a snapshot must
/// free about one key per key written, as without one.
#[tokio::test]
async fn eviction_during_a_snapshot_frees_what_it_writes() {
    let srv = TestServer::start();
    let mut c = srv.conn().await;
    config_set(&mut c, "maxmemory-policy", "allkeys-lru").await;
    limit_above_baseline(&mut c, 3 << 20).await;
    // Full, and evicting.
    fill(&mut c, "old:", 40_000, 100, None).await;
    assert!(info_u64(&mut c, "stats", "evicted_keys").await > 0);
    let before = info_u64(&mut c, "stats", "evicted_keys").await;
    fill(&mut c, "warm:", 10_000, 100, None).await;
    let without = info_u64(&mut c, "stats", "evicted_keys").await - before;
    // A snapshot slowed to last well beyond the writes below.
    config_set(&mut c, "rdb-key-save-delay", "100").await;
    let _: String = redis::cmd("BGSAVE").query_async(&mut c).await.unwrap();
    let before = info_u64(&mut c, "stats", "evicted_keys").await;
    let written = 10_000;
    fill(&mut c, "new:", written, 100, None).await;
    let during = info_u64(&mut c, "stats", "evicted_keys").await - before;
    assert_eq!(
        info_u64(&mut c, "persistence", "rdb_bgsave_in_progress").await,
        1,
        "the snapshot ended before the writes did"
    );
    // Without a snapshot: `without` evictions for as many keys written.
    // (Counting the snapshot's buffers made it about twice as many.)
    assert!(
        during <= without + without / 2,
        "{during} keys evicted for {written} written during a snapshot, \
         {without} without"
    );
}

#[tokio::test]
async fn volatile_policies_never_touch_persistent_keys() {
    for policy in [
        "volatile-lru",
        "volatile-lfu",
        "volatile-random",
        "volatile-ttl",
    ] {
        let srv = TestServer::start();
        let mut c = srv.conn().await;
        config_set(&mut c, "maxmemory-policy", policy).await;
        fill(&mut c, "persist:", 2_000, 100, None).await;
        limit_above_baseline(&mut c, 2 << 20).await;
        fill(&mut c, "vol:", 30_000, 100, Some(10_000)).await;
        assert!(
            info_u64(&mut c, "stats", "evicted_keys").await > 0,
            "{policy} evicted nothing"
        );
        for i in (0..2_000).step_by(97) {
            let n: i64 = c.exists(format!("persist:{i}")).await.unwrap();
            assert_eq!(n, 1, "{policy} evicted persist:{i}");
        }
        let mut keys = 0;
        let mut cur = 0u64;
        loop {
            let (next, ks): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cur)
                .arg("MATCH")
                .arg("persist:*")
                .arg("COUNT")
                .arg(10_000)
                .query_async(&mut c)
                .await
                .unwrap();
            keys += ks.len();
            cur = next;
            if cur == 0 {
                break;
            }
        }
        assert_eq!(keys, 2_000, "{policy}");
        // Only persistent keys left to evict: writes get OOM.
        let _: () = redis::cmd("FLUSHDB").query_async(&mut c).await.unwrap();
        config_set(&mut c, "maxmemory", "1").await;
        let e = c.set::<_, _, ()>("k", "v").await.unwrap_err();
        assert!(e.to_string().contains("maxmemory"), "{policy}: {e}");
    }
}

#[tokio::test]
async fn volatile_ttl_evicts_the_nearest_deadlines_first() {
    let srv = TestServer::start();
    let mut c = srv.conn().await;
    config_set(&mut c, "maxmemory-policy", "volatile-ttl").await;
    let max = limit_above_baseline(&mut c, 3 << 20).await;
    // key i expires in 10_000 + i seconds: low i = nearest deadline.
    fill(&mut c, "t:", 40_000, 100, Some(10_000)).await;
    assert!(info_u64(&mut c, "memory", "used_memory").await <= max + max / 20);
    let mut present = Vec::new();
    for i in (0..40_000).step_by(400) {
        let n: i64 = c.exists(format!("t:{i}")).await.unwrap();
        present.push(n == 1);
    }
    // Everything evicted lies before everything kept.
    let first_kept = present.iter().position(|&p| p).expect("something kept");
    assert!(first_kept > 0, "nothing evicted");
    assert!(present[first_kept..].iter().all(|&p| p), "{present:?}");
}

#[tokio::test]
async fn allkeys_random_and_lfu_evict() {
    for policy in ["allkeys-random", "allkeys-lfu"] {
        let srv = TestServer::start();
        let mut c = srv.conn().await;
        config_set(&mut c, "maxmemory-policy", policy).await;
        let max = limit_above_baseline(&mut c, 2 << 20).await;
        fill(&mut c, "k:", 40_000, 100, None).await;
        let used = info_u64(&mut c, "memory", "used_memory").await;
        assert!(used <= max + max / 20, "{policy}: {used} > {max}");
        assert!(
            info_u64(&mut c, "stats", "evicted_keys").await > 0,
            "{policy}"
        );
    }
}

#[tokio::test]
async fn lfu_keeps_frequently_used_keys_and_object_freq_reports_it() {
    let srv = TestServer::start();
    let mut c = srv.conn().await;
    config_set(&mut c, "maxmemory-policy", "allkeys-lfu").await;
    fill(&mut c, "hot:", 100, 100, None).await;
    for _ in 0..50 {
        let mut p = redis::pipe();
        for i in 0..100 {
            p.cmd("GET").arg(format!("hot:{i}")).ignore();
        }
        let _: () = p.query_async(&mut c).await.unwrap();
    }
    let f: i64 = redis::cmd("OBJECT")
        .arg("FREQ")
        .arg("hot:1")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(f > 5, "OBJECT FREQ {f}");
    limit_above_baseline(&mut c, 2 << 20).await;
    fill(&mut c, "cold:", 40_000, 100, None).await;
    assert!(info_u64(&mut c, "stats", "evicted_keys").await > 1000);
    let mut kept = 0;
    for i in 0..100 {
        kept += c.exists::<_, i64>(format!("hot:{i}")).await.unwrap();
    }
    assert!(kept >= 95, "only {kept} of 100 hot keys survived");
}

#[tokio::test]
async fn per_database_policy_protects_sessions() {
    let srv = TestServer::start();
    let mut c = srv.conn().await;
    config_set(&mut c, "maxmemory-policy", "allkeys-lru").await;
    config_set(&mut c, "db-maxmemory-policy", "1 noeviction").await;
    let _: () = redis::cmd("SELECT")
        .arg(1)
        .query_async(&mut c)
        .await
        .unwrap();
    fill(&mut c, "session:", 5_000, 100, None).await;
    let _: () = redis::cmd("SELECT")
        .arg(0)
        .query_async(&mut c)
        .await
        .unwrap();
    limit_above_baseline(&mut c, 2 << 20).await;
    fill(&mut c, "cache:", 40_000, 100, None).await;
    assert!(info_u64(&mut c, "stats", "evicted_keys").await > 1000);
    let _: () = redis::cmd("SELECT")
        .arg(1)
        .query_async(&mut c)
        .await
        .unwrap();
    let n: usize = redis::cmd("DBSIZE").query_async(&mut c).await.unwrap();
    assert_eq!(n, 5_000, "sessions in db 1 were evicted");
    let e = redis::cmd("CONFIG")
        .arg("SET")
        .arg("db-maxmemory-policy")
        .arg("1 bogus")
        .query_async::<()>(&mut c)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("invalid maxmemory-policy"), "{e}");
}

/// A Zipf-distributed key (rank 0 most popular), by inverse CDF.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Zipf {
        let mut cdf = Vec::with_capacity(n);
        let mut acc = 0.0;
        for k in 1..=n {
            acc += 1.0 / (k as f64).powf(s);
            cdf.push(acc);
        }
        for v in &mut cdf {
            *v /= acc;
        }
        Zipf { cdf }
    }
    fn sample(&self, u: f64) -> usize {
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}

/// Exact LRU cache of `cap` keys replaying `trace`: its hit ratio.
fn exact_lru_hit_ratio(trace: &[usize], cap: usize) -> f64 {
    let mut last_use: HashMap<usize, usize> = HashMap::new();
    let mut order = std::collections::BTreeMap::new(); // time -> key
    let mut hits = 0;
    for (t, &k) in trace.iter().enumerate() {
        if let Some(old) = last_use.insert(k, t) {
            order.remove(&old);
            hits += 1;
        } else if last_use.len() > cap {
            if let Some((&t0, &victim)) = order.iter().next() {
                order.remove(&t0);
                last_use.remove(&victim);
            }
        }
        order.insert(t, k);
    }
    hits as f64 / trace.len() as f64
}

/// Replays `trace` cache-aside (GET, SET on a miss) on `c`: the hit ratio
/// and the key count the memory limit sustained (second half of the run).
async fn replay(c: &mut MultiplexedConnection, trace: &[usize]) -> (f64, usize) {
    let val = "v".repeat(200);
    let mut hits = 0usize;
    let mut sizes = Vec::new();
    for (i, chunk) in trace.chunks(64).enumerate() {
        for &k in chunk {
            let key = format!("z:{k}");
            let v: Option<String> = c.get(&key).await.unwrap();
            if v.is_some() {
                hits += 1;
            } else {
                let _: () = c.set(&key, &val).await.unwrap();
            }
        }
        if i % 200 == 0 {
            sizes.push(redis::cmd("DBSIZE").query_async::<usize>(c).await.unwrap());
        }
    }
    let tail = &sizes[sizes.len() / 2..];
    let cap = tail.iter().sum::<usize>() / tail.len().max(1);
    (hits as f64 / trace.len() as f64, cap)
}

async fn server_hit_ratio(policy: &str, trace: &[usize], extra: u64) -> (f64, usize) {
    let srv = TestServer::start();
    let mut c = srv.conn().await;
    config_set(&mut c, "maxmemory-policy", policy).await;
    limit_above_baseline(&mut c, extra).await;
    replay(&mut c, trace).await
}

fn zipf_trace(keys: usize, len: usize) -> Vec<usize> {
    let z = Zipf::new(keys, 0.9);
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            z.sample((seed >> 11) as f64 / (1u64 << 53) as f64)
        })
        .collect()
}

/// Benchmark (not run by default): the same Zipf trace against Cinnabar
/// and redis-server at the same `maxmemory`, allkeys-lru and allkeys-lfu.
/// `cargo test --release --test eviction -- --ignored --nocapture zipf_vs_redis`
#[tokio::test]
#[ignore]
async fn zipf_vs_redis() {
    let Some(reference) = common::diff::RedisRef::start() else {
        return;
    };
    let trace = zipf_trace(100_000, 400_000);
    for policy in ["allkeys-lru", "allkeys-lfu"] {
        let srv = TestServer::start();
        let mut ours = srv.conn().await;
        let mut theirs = redis::Client::open(format!("redis://127.0.0.1:{}/", reference.port))
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        for c in [&mut ours, &mut theirs] {
            let _: () = redis::cmd("FLUSHALL").query_async(c).await.unwrap();
            config_set(c, "maxmemory-policy", policy).await;
            config_set(c, "maxmemory", "16mb").await;
        }
        let (a, cap_a) = replay(&mut ours, &trace).await;
        let (b, cap_b) = replay(&mut theirs, &trace).await;
        eprintln!(
            "{policy} maxmemory=16mb keys=100000 accesses={}: cinnabar hit ratio {a:.4} ({cap_a} keys held), \
             redis-server {b:.4} ({cap_b} keys held), ratio {:.3}",
            trace.len(),
            a / b
        );
    }
}

/// Issue requirement: with a key space 3x larger than memory allows and a
/// Zipf-like access pattern, allkeys-lru's hit ratio is within 5% of exact
/// LRU on the same trace, and allkeys-lfu's is at least allkeys-lru's.
#[tokio::test]
async fn eviction_quality_against_exact_lru() {
    const KEYS: usize = 30_000;
    let trace = zipf_trace(KEYS, 120_000);
    // About a third of the keys fit (~300 bytes per 200-byte value).
    let extra = (KEYS as u64 / 3) * 300;
    let (lru, cap) = server_hit_ratio("allkeys-lru", &trace, extra).await;
    let exact = exact_lru_hit_ratio(&trace, cap);
    let (lfu, cap_lfu) = server_hit_ratio("allkeys-lfu", &trace, extra).await;
    eprintln!(
        "eviction quality: keys={KEYS} capacity~{cap} (lfu run {cap_lfu}) accesses={} \
         exact-LRU hit ratio {exact:.4}, allkeys-lru {lru:.4}, allkeys-lfu {lfu:.4}",
        trace.len()
    );
    assert!(cap < KEYS / 2, "limit too loose: {cap} keys fit");
    assert!(
        lru >= exact - 0.05,
        "allkeys-lru {lru:.4} vs exact LRU {exact:.4}"
    );
    assert!(lfu >= lru, "allkeys-lfu {lfu:.4} < allkeys-lru {lru:.4}");
}

#[tokio::test]
async fn memory_introspection() {
    let srv = TestServer::start();
    let mut c = srv.conn().await;
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut c)
        .await
        .unwrap();
    for f in [
        "used_memory:",
        "used_memory_human:",
        "used_memory_rss:",
        "used_memory_peak:",
        "used_memory_dataset:",
        "mem_fragmentation_ratio:",
        "maxmemory:",
        "maxmemory_human:",
        "maxmemory_policy:noeviction",
    ] {
        assert!(info.contains(f), "INFO memory lacks {f}");
    }
    let _: () = c.set("small", "x").await.unwrap();
    let _: () = c.set("big", "x".repeat(100_000)).await.unwrap();
    let small: i64 = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg("small")
        .query_async(&mut c)
        .await
        .unwrap();
    let big: i64 = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg("big")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(small > 0 && small < 200, "{small}");
    assert!((100_000..140_000).contains(&big), "{big}");
    let none: Option<i64> = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg("nokey")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(none, None);
    let e = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg("small")
        .arg("SAMPLES")
        .arg("x")
        .query_async::<i64>(&mut c)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not an integer"), "{e}");
    let stats: HashMap<String, redis::Value> = redis::cmd("MEMORY")
        .arg("STATS")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(stats.get("keys.count"), Some(&redis::Value::Int(2)));
    assert!(stats.contains_key("total.allocated") && stats.contains_key("db.0"));
    let doc: String = redis::cmd("MEMORY")
        .arg("DOCTOR")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(doc.starts_with("Hi Sam") || doc.starts_with("Sam"), "{doc}");
    let ok: String = redis::cmd("MEMORY")
        .arg("PURGE")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(ok, "OK");
}

/// A limit only 100 KB above the current usage (Redis's own test): keys
/// are added until usage nears it, the same number again is absorbed by
/// eviction under every policy, and usage stays at the limit. `used_memory`
/// must not move by the allocator's thread caches for this to hold.
#[tokio::test]
async fn a_limit_just_above_current_usage_is_honoured_by_every_policy() {
    let srv = TestServer::start();
    let mut c = srv.conn().await;
    for policy in [
        "allkeys-random",
        "allkeys-lru",
        "allkeys-lfu",
        "volatile-lru",
        "volatile-lfu",
        "volatile-random",
        "volatile-ttl",
    ] {
        let _: () = redis::cmd("FLUSHALL").query_async(&mut c).await.unwrap();
        let limit = limit_above_baseline(&mut c, 100 * 1024).await;
        config_set(&mut c, "maxmemory-policy", policy).await;
        let mut n = 0u64;
        loop {
            let _: () = redis::cmd("SETEX")
                .arg(format!("key:{}", fastrand_key(n)))
                .arg(10000)
                .arg("x")
                .query_async(&mut c)
                .await
                .unwrap_or_else(|e| panic!("{policy}: write {n} refused: {e}"));
            n += 1;
            if info_u64(&mut c, "memory", "used_memory").await + 4096 > limit {
                break;
            }
        }
        assert!(n > 10, "{policy}: only {n} keys fit in 100 KB");
        for j in 0..n {
            let _: () = redis::cmd("SETEX")
                .arg(format!("more:{j}"))
                .arg(10000)
                .arg("x")
                .query_async(&mut c)
                .await
                .unwrap_or_else(|e| panic!("{policy}: write refused: {e}"));
        }
        let used = info_u64(&mut c, "memory", "used_memory").await;
        assert!(used < limit + 4096, "{policy}: {used} over {limit}");
        config_set(&mut c, "maxmemory", "0").await;
    }
}

/// A spread-out key number (a multiplicative hash), without a random
/// source.
fn fastrand_key(n: u64) -> u64 {
    n.wrapping_mul(0x9E37_79B9_7F4A_7C15) % 100_000
}

/// Sends `bytes` on `s`, giving up quietly once the server has closed it.
async fn send_quietly(s: &mut tokio::net::TcpStream, bytes: &[u8]) -> bool {
    use tokio::io::AsyncWriteExt;
    matches!(
        tokio::time::timeout(Duration::from_secs(2), s.write_all(bytes)).await,
        Ok(Ok(()))
    )
}

/// What a replica that stopped reading holds beyond `repl-backlog-size`
/// is the replica's, not the dataset's: keys are not evicted for it, and
/// INFO shows it (mem_not_counted_for_evict, mem_clients_slaves), as
/// Redis's "replica buffer don't induce eviction".
#[tokio::test]
async fn a_stalled_replicas_stream_does_not_evict_keys() {
    use tokio::io::AsyncReadExt;
    let srv = TestServer::start();
    let mut c = srv.conn().await;
    for j in 0..100 {
        let _: () = redis::cmd("SETRANGE")
            .arg(format!("key:{j}"))
            .arg(10_000)
            .arg("asdf")
            .query_async(&mut c)
            .await
            .unwrap();
    }
    config_set(&mut c, "maxmemory-policy", "allkeys-random").await;
    config_set(&mut c, "repl-backlog-size", "10240").await;
    config_set(
        &mut c,
        "client-output-buffer-limit",
        "replica 100000000 100000000 300",
    )
    .await;
    // A replica that takes its snapshot, then stops reading (with a small
    // receive buffer, so the stream piles up at the primary rather than in
    // the kernel).
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(8192).unwrap();
    let mut replica = sock.connect(srv.addr).await.unwrap();
    assert!(send_quietly(&mut replica, b"SYNC\r\n").await);
    let mut buf = vec![0u8; 1 << 16];
    let mut got = 0usize;
    while let Ok(Ok(n)) =
        tokio::time::timeout(Duration::from_millis(300), replica.read(&mut buf)).await
    {
        assert!(n > 0, "the primary closed the replica link");
        got += n;
    }
    assert!(got > 1000, "snapshot of {got} bytes");
    let used = info_u64(&mut c, "memory", "used_memory").await;
    let not_counted = info_u64(&mut c, "memory", "mem_not_counted_for_evict").await;
    let limit = used - not_counted + 256 * 1024;
    config_set(&mut c, "maxmemory", &limit.to_string()).await;

    // About 8 MB of stream the replica never reads.
    let payload = "A".repeat(1000);
    for _ in 0..200 {
        let mut p = redis::pipe();
        for _ in 0..40 {
            p.cmd("SETRANGE").arg("key:0").arg(0).arg(&payload).ignore();
        }
        let _: () = p.query_async(&mut c).await.unwrap();
    }
    let replica_bufs = info_u64(&mut c, "memory", "mem_clients_slaves").await;
    let not_counted = info_u64(&mut c, "memory", "mem_not_counted_for_evict").await;
    assert!(
        replica_bufs > 2_000_000,
        "mem_clients_slaves {replica_bufs}"
    );
    assert!(
        not_counted > 2_000_000,
        "mem_not_counted_for_evict {not_counted}"
    );
    assert_eq!(info_u64(&mut c, "stats", "evicted_keys").await, 0);
    let n: u64 = redis::cmd("DBSIZE").query_async(&mut c).await.unwrap();
    assert_eq!(n, 100);

    // Once the replica is gone, its share is given back.
    let killed: u64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("replica")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(killed, 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while info_u64(&mut c, "memory", "mem_clients_slaves").await != 0 {
        assert!(std::time::Instant::now() < deadline, "replica buffers kept");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let n: u64 = redis::cmd("DBSIZE").query_async(&mut c).await.unwrap();
    assert_eq!(n, 100);
}

/// Writes that change a big string in place allocate nothing, but the
/// memory meter counts their arguments until its next allocator reading:
/// a client sending thousands of them a millisecond looked tens of
/// kilobytes larger than it was, and a limit just above usage evicted on
/// that alone (found by Redis's "replica buffer don't induce eviction",
/// which leaves 32 KB of headroom). Eviction now decides on a fresh
/// reading.
#[tokio::test]
async fn in_place_writes_just_under_the_limit_evict_nothing() {
    let srv = TestServer::start();
    let mut c = srv.conn().await;
    for j in 0..100 {
        let _: () = redis::cmd("SETRANGE")
            .arg(format!("key:{j}"))
            .arg(100_000)
            .arg("asdf")
            .query_async(&mut c)
            .await
            .unwrap();
    }
    config_set(&mut c, "maxmemory-policy", "allkeys-random").await;
    let payload = "A".repeat(100);
    let batch = || {
        let mut p = redis::pipe();
        for _ in 0..200 {
            p.cmd("SETRANGE").arg("key:0").arg(0).arg(&payload).ignore();
        }
        p
    };
    // Once, so the connection's buffers have their working size.
    let _: () = batch().query_async(&mut c).await.unwrap();
    let used = info_u64(&mut c, "memory", "used_memory").await;
    config_set(&mut c, "maxmemory", &(used + 48 * 1024).to_string()).await;
    // 200 x 200 writes of 100 bytes: 35 KB of noted arguments per batch.
    for _ in 0..200 {
        let _: () = batch().query_async(&mut c).await.unwrap();
    }
    assert_eq!(info_u64(&mut c, "stats", "evicted_keys").await, 0);
    let n: u64 = redis::cmd("DBSIZE").query_async(&mut c).await.unwrap();
    assert_eq!(n, 100);
}

/// Evicting a key other clients track queues an invalidation for each of
/// them; that must not count against what the eviction freed, or eviction
/// feeds on itself until the database is empty (Redis's "client tracking
/// don't cause eviction feedback loop").
#[tokio::test]
async fn tracking_invalidations_do_not_make_eviction_feed_on_itself() {
    use tokio::io::AsyncReadExt;
    // Two async workers: the trackers' connections write (and free) the
    // invalidations on one while the other reads the allocator.
    let srv = TestServer::start_with(&["--worker-threads", "2"]);
    let mut c = srv.conn().await;
    config_set(&mut c, "maxmemory-policy", "allkeys-lru").await;
    config_set(&mut c, "maxmemory-eviction-tenacity", "100").await;
    let keys: Vec<String> = (0..300)
        .map(|j| format!("{j}{}", "x".repeat(1000)))
        .collect();
    for k in &keys {
        let _: () = c.set(k, "x").await.unwrap();
    }
    // Ten RESP3 clients that read every key (and are then told of each
    // eviction).
    let mut trackers = Vec::new();
    for _ in 0..10 {
        let mut s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
        let mut req = common::resp(&[b"HELLO", b"3"]);
        req.extend(common::resp(&[b"CLIENT", b"TRACKING", b"on"]));
        for k in &keys {
            req.extend(common::resp(&[b"GET", k.as_bytes()]));
        }
        assert!(send_quietly(&mut s, &req).await);
        let mut got = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        while got.windows(7).filter(|w| w == b"$1\r\nx\r\n").count() < keys.len() {
            let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
                .await
                .expect("GET replies")
                .unwrap();
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
        }
        trackers.push(s);
    }
    let used = info_u64(&mut c, "memory", "used_memory").await;
    config_set(&mut c, "maxmemory", &(used - 40_000).to_string()).await;
    let evicted = info_u64(&mut c, "stats", "evicted_keys").await;
    let n: u64 = redis::cmd("DBSIZE").query_async(&mut c).await.unwrap();
    assert!((10..=60).contains(&evicted), "evicted {evicted}");
    // The trackers never read their invalidations, whose buffers keep
    // growing and may evict a few more keys after CONFIG SET returned
    // (Redis's test notes the same, its issue #8069); a feedback loop
    // would drain the database. Redis's own test allows 200..300.
    assert!(n >= 200, "dbsize {n}");
    drop(trackers);
}

/// With `maxmemory-clients`, clients piling up replies they do not read
/// are closed before any key is evicted for their memory (Redis's
/// "eviction due to output buffers of many MGET clients, client
/// eviction: true"): a closed client's memory is not counted while its
/// connection lets go of it, and a killed client runs nothing more.
#[tokio::test]
async fn client_eviction_comes_before_key_eviction() {
    let srv = TestServer::start();
    let mut c = srv.conn().await;
    config_set(&mut c, "maxmemory", "11mb").await;
    config_set(&mut c, "maxmemory-policy", "allkeys-lru").await;
    config_set(&mut c, "maxmemory-clients", "3mb").await;
    let _: () = redis::cmd("CLIENT")
        .arg("NO-EVICT")
        .arg("on")
        .query_async(&mut c)
        .await
        .unwrap();
    for j in 0..50 {
        let _: () = redis::cmd("SETRANGE")
            .arg(j)
            .arg(100_000)
            .arg("x")
            .query_async(&mut c)
            .await
            .unwrap();
    }
    let mut readers = Vec::new();
    for _ in 0..20 {
        readers.push(Some(
            tokio::net::TcpStream::connect(srv.addr).await.unwrap(),
        ));
    }
    let req = common::resp(&[b"MGET", b"1"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while info_u64(&mut c, "stats", "evicted_clients").await == 0 {
        assert!(std::time::Instant::now() < deadline, "no client evicted");
        for r in readers.iter_mut() {
            if let Some(s) = r {
                if !send_quietly(s, &req).await {
                    *r = None;
                }
            }
        }
    }
    assert_eq!(info_u64(&mut c, "stats", "evicted_keys").await, 0);
    let n: u64 = redis::cmd("DBSIZE").query_async(&mut c).await.unwrap();
    assert_eq!(n, 50);
}
