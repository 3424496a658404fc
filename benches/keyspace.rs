//! Keyspace benchmarks: shard set/get/delete and SCAN.

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion};

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

criterion_group!(benches, ops);
criterion_main!(benches);
