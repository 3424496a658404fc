//! Codec benchmarks: request parsing and reply encoding.

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

use cinnabar::protocol::codec::{Limits, RequestParser};
use cinnabar::protocol::reply::encode;
use cinnabar::protocol::Reply;

fn pipeline(n: usize) -> Vec<u8> {
    let mut v = Vec::new();
    for i in 0..n {
        let k = format!("key:{i:08}");
        v.extend_from_slice(
            format!(
                "*3\r\n$3\r\nSET\r\n${}\r\n{}\r\n$16\r\nxxxxxxxxxxxxxxxx\r\n",
                k.len(),
                k
            )
            .as_bytes(),
        );
    }
    v
}

fn parse(c: &mut Criterion) {
    let data = pipeline(1000);
    let limits = Limits {
        max_bulk_len: 512 << 20,
        authenticated: true,
    };
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("set_x1000", |b| {
        b.iter(|| {
            let mut buf = BytesMut::from(&data[..]);
            let mut p = RequestParser::new();
            let mut n = 0;
            while let Ok(Some(argv)) = p.next(&mut buf, limits) {
                n += argv.len();
            }
            black_box(n)
        })
    });
    g.finish();
}

fn encode_replies(c: &mut Criterion) {
    let bulk = Reply::Bulk(Bytes::from_static(b"xxxxxxxxxxxxxxxx"));
    let arr = Reply::Array((0..100).map(Reply::Int).collect());
    let mut g = c.benchmark_group("encode");
    g.bench_function("bulk16", |b| {
        let mut out = BytesMut::with_capacity(1 << 16);
        b.iter(|| {
            out.clear();
            encode(black_box(&bulk), 2, &mut out);
        })
    });
    g.bench_function("array100_resp3", |b| {
        let mut out = BytesMut::with_capacity(1 << 16);
        b.iter(|| {
            out.clear();
            encode(black_box(&arr), 3, &mut out);
        })
    });
    g.finish();
}

criterion_group!(benches, parse, encode_replies);
criterion_main!(benches);
