//! Whole-dataset snapshots through the client protocol, to compare a
//! server's contents before and after a restart or against redis-server.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use redis::AsyncCommands;

use super::TestServer;

/// Every key of databases 0..4 with its type, contents and whether it has
/// a TTL, in a comparable form.
pub async fn contents(srv: &TestServer) -> BTreeMap<(u8, String), String> {
    contents_at(&srv.url()).await
}

pub async fn contents_at(url: &str) -> BTreeMap<(u8, String), String> {
    let client = redis::Client::open(url).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    // A server still loading answers -LOADING: wait for it.
    for _ in 0..200 {
        let r: redis::RedisResult<redis::Value> = redis::cmd("DBSIZE").query_async(&mut c).await;
        if r.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let mut out = BTreeMap::new();
    for db in 0..4u8 {
        let _: () = redis::cmd("SELECT")
            .arg(db)
            .query_async(&mut c)
            .await
            .unwrap();
        let keys: Vec<String> = c.keys("*").await.unwrap();
        for k in keys {
            let t: String = redis::cmd("TYPE")
                .arg(&k)
                .query_async(&mut c)
                .await
                .unwrap();
            let body = match t.as_str() {
                "string" => format!("{:?}", c.get::<_, Vec<u8>>(&k).await.unwrap()),
                "list" => format!("{:?}", c.lrange::<_, Vec<String>>(&k, 0, -1).await.unwrap()),
                "set" => {
                    let mut m: Vec<String> = c.smembers(&k).await.unwrap();
                    m.sort();
                    format!("{m:?}")
                }
                "hash" => format!(
                    "{:?}",
                    c.hgetall::<_, BTreeMap<String, String>>(&k).await.unwrap()
                ),
                "zset" => format!(
                    "{:?}",
                    c.zrange_withscores::<_, Vec<(String, String)>>(&k, 0, -1)
                        .await
                        .unwrap()
                ),
                "stream" => {
                    let v: redis::Value = redis::cmd("XRANGE")
                        .arg(&k)
                        .arg("-")
                        .arg("+")
                        .query_async(&mut c)
                        .await
                        .unwrap();
                    let g: redis::Value = redis::cmd("XINFO")
                        .arg("GROUPS")
                        .arg(&k)
                        .query_async(&mut c)
                        .await
                        .unwrap();
                    format!("{v:?} {g:?}")
                }
                other => other.to_string(),
            };
            let pttl: i64 = c.pttl(&k).await.unwrap();
            out.insert((db, k), format!("{t} ttl={} {body}", pttl > 0));
        }
    }
    out
}
