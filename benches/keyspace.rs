//! Keyspace benchmarks: shard set/get/delete and SCAN; a 1M-member
//! sorted set (the data structure alone, no network: what
//! `benches/load/zset-ab.sh` measures through the server).

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion};

use cinnabar::storage::zset::{ZLimits, ZSet};
use cinnabar::storage::{Keyspace, Ttl, Value};

fn ops(c: &mut Criterion) {
    let ks = Keyspace::new(1, 16);
    let keys: Vec<Vec<u8>> = (0..100_000)
        .map(|i| format!("key:{i:07}").into_bytes())
        .collect();
    let val = Bytes::from_static(b"xxxxxxxxxxxxxxxx");
    let db = ks.db(0).expect("db 0");
    for k in &keys {
        db.shard(ks.shard_index(k))
            .lock()
            .set(k, Value::Str(val.clone()), Ttl::Clear, 0);
    }
    let mut g = c.benchmark_group("keyspace");
    let mut i = 0usize;
    g.bench_function("get_hit_100k", |b| {
        b.iter(|| {
            let k = &keys[i % keys.len()];
            i += 7919;
            let mut sh = db.shard(ks.shard_index(k)).lock();
            black_box(sh.get(k, 0).is_some())
        })
    });
    g.bench_function("set_overwrite_100k", |b| {
        b.iter(|| {
            let k = &keys[i % keys.len()];
            i += 7919;
            db.shard(ks.shard_index(k))
                .lock()
                .set(k, Value::Str(val.clone()), Ttl::Clear, 0);
        })
    });
    g.bench_function("scan_count_100", |b| {
        let mut cursor = 0u32;
        b.iter(|| {
            let mut sh = db.shard(0).lock();
            let mut n = 0;
            cursor = sh.scan(cursor, 100, 0, |_, _| n += 1).unwrap_or(0);
            black_box(n)
        })
    });
    g.finish();
}

/// A 1M-member sorted set, members `member:<i as 12 digits>` with score
/// i: moving a member to a random score (ZADD on an existing member),
/// ZRANK, ZSCORE, and reading the first 100 (ZRANGE 0 99).
fn zset_1m(c: &mut Criterion) {
    const N: u64 = 1_000_000;
    let lim = ZLimits {
        entries: 128,
        value: 64,
    };
    let member = |i: u64| format!("member:{i:012}").into_bytes();
    let mut z = ZSet::new();
    for i in 0..N {
        z.insert(&member(i), i as f64, lim);
    }
    // xorshift: the same random sequence for every build compared.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut g = c.benchmark_group("zset_1m");
    g.bench_function("zadd_move", |b| {
        b.iter(|| {
            let (m, s) = (member(next() % N), (next() % N) as f64);
            black_box(z.insert(&m, s, lim))
        })
    });
    g.bench_function("zrank", |b| {
        b.iter(|| black_box(z.rank(&member(next() % N))))
    });
    g.bench_function("zscore", |b| {
        b.iter(|| black_box(z.score(&member(next() % N))))
    });
    g.bench_function("range_0_99", |b| {
        b.iter(|| {
            let mut n = 0usize;
            z.for_each_in(0, 100, false, |m, _| n += m.len());
            black_box(n)
        })
    });
    g.finish();
}

criterion_group!(benches, ops, zset_1m);
criterion_main!(benches);
