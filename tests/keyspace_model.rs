//! Property test: random sequences of key operations applied to the real
//! server and to an in-memory model must agree, and a full SCAN must return
//! exactly the model's keys.

mod common;
use std::collections::{BTreeMap, BTreeSet};

use common::TestServer;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Set(u8, u16),
    Del(u8),
    Get(u8),
    Exists(u8),
    Rename(u8, u8),
    Incr(u8),
    Append(u8, u16),
    Copy(u8, u8),
}

fn op() -> impl Strategy<Value = Op> {
    let k = 0u8..24;
    prop_oneof![
        (k.clone(), any::<u16>()).prop_map(|(a, v)| Op::Set(a, v)),
        k.clone().prop_map(Op::Del),
        k.clone().prop_map(Op::Get),
        k.clone().prop_map(Op::Exists),
        (k.clone(), k.clone()).prop_map(|(a, b)| Op::Rename(a, b)),
        k.clone().prop_map(Op::Incr),
        (k.clone(), any::<u16>()).prop_map(|(a, v)| Op::Append(a, v)),
        (k.clone(), k).prop_map(|(a, b)| Op::Copy(a, b)),
    ]
}

fn key(i: u8) -> String {
    format!("key:{i}")
}

async fn check(c: &mut redis::aio::MultiplexedConnection, ops: &[Op]) {
    let _: () = redis::cmd("FLUSHALL").query_async(c).await.unwrap();
    let mut model: BTreeMap<String, String> = BTreeMap::new();
    for op in ops {
        match op {
            Op::Set(k, v) => {
                let _: () = redis::cmd("SET")
                    .arg(key(*k))
                    .arg(v)
                    .query_async(c)
                    .await
                    .unwrap();
                model.insert(key(*k), v.to_string());
            }
            Op::Del(k) => {
                let n: i64 = redis::cmd("DEL").arg(key(*k)).query_async(c).await.unwrap();
                assert_eq!(n, model.remove(&key(*k)).is_some() as i64);
            }
            Op::Get(k) => {
                let v: Option<String> =
                    redis::cmd("GET").arg(key(*k)).query_async(c).await.unwrap();
                assert_eq!(v.as_ref(), model.get(&key(*k)));
            }
            Op::Exists(k) => {
                let n: i64 = redis::cmd("EXISTS")
                    .arg(key(*k))
                    .query_async(c)
                    .await
                    .unwrap();
                assert_eq!(n, model.contains_key(&key(*k)) as i64);
            }
            Op::Rename(a, b) => {
                let r: redis::RedisResult<()> = redis::cmd("RENAME")
                    .arg(key(*a))
                    .arg(key(*b))
                    .query_async(c)
                    .await;
                match model.remove(&key(*a)) {
                    Some(v) => {
                        r.unwrap();
                        model.insert(key(*b), v);
                    }
                    None => assert!(r.is_err()),
                }
            }
            Op::Incr(k) => {
                let r: redis::RedisResult<i64> =
                    redis::cmd("INCR").arg(key(*k)).query_async(c).await;
                let cur = model.get(&key(*k)).cloned().unwrap_or_else(|| "0".into());
                match cur.parse::<i64>() {
                    Ok(n) if n < i64::MAX && n.to_string() == cur => {
                        assert_eq!(r.unwrap(), n + 1);
                        model.insert(key(*k), (n + 1).to_string());
                    }
                    _ => assert!(r.is_err()),
                }
            }
            Op::Append(k, v) => {
                let n: usize = redis::cmd("APPEND")
                    .arg(key(*k))
                    .arg(v)
                    .query_async(c)
                    .await
                    .unwrap();
                let e = model.entry(key(*k)).or_default();
                e.push_str(&v.to_string());
                assert_eq!(n, e.len());
            }
            Op::Copy(a, b) => {
                let n: i64 = redis::cmd("COPY")
                    .arg(key(*a))
                    .arg(key(*b))
                    .query_async(c)
                    .await
                    .unwrap_or(-1);
                let ok = a != b && model.contains_key(&key(*a)) && !model.contains_key(&key(*b));
                if a == b {
                    assert_eq!(n, -1, "COPY onto itself is an error");
                } else {
                    assert_eq!(n, ok as i64);
                }
                if ok {
                    let v = model[&key(*a)].clone();
                    model.insert(key(*b), v);
                }
            }
        }
    }
    // Full SCAN equals the model's key set; DBSIZE agrees.
    let mut seen = BTreeSet::new();
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(3)
            .query_async(c)
            .await
            .unwrap();
        seen.extend(keys);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    let want: BTreeSet<String> = model.keys().cloned().collect();
    assert_eq!(seen, want);
    let n: usize = redis::cmd("DBSIZE").query_async(c).await.unwrap();
    assert_eq!(n, model.len());
}

#[test]
fn keyspace_agrees_with_a_model() {
    let srv = TestServer::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // MultiplexedConnection is a cheap handle: clone one per case.
    let c = rt.block_on(srv.conn());
    let cfg = ProptestConfig {
        cases: 48,
        ..ProptestConfig::default()
    };
    proptest!(cfg, |(ops in proptest::collection::vec(op(), 1..120))| {
        let mut c = c.clone();
        rt.block_on(check(&mut c, &ops));
    });
}
