//! Geo commands through the real server: stored scores, GEOHASH strings,
//! GEODIST/GEOPOS formatting, every GEOSEARCH/GEORADIUS option and error,
//! the STORE variants, RESP3 shapes, and differential checks against a real
//! redis-server (identical bytes for scores, distances, coordinates and
//! search results, including randomized searches).

mod common;
use common::diff::{same_replies, same_replies_resp3, script};
use common::{resp, TestServer};

use rand::{Rng, SeedableRng};

fn cmd(args: &[&str]) -> Vec<u8> {
    let v: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    resp(&v)
}

#[tokio::test]
async fn sicily_scores_hashes_positions_and_distances() {
    let srv = TestServer::start();
    let mut r = srv.raw().await;
    r.expect(
        &cmd(&[
            "GEOADD",
            "Sicily",
            "13.361389",
            "38.115556",
            "Palermo",
            "15.087269",
            "37.502669",
            "Catania",
        ]),
        b":2\r\n",
    )
    .await;
    r.expect(
        &cmd(&["ZSCORE", "Sicily", "Palermo"]),
        b"$16\r\n3479099956230698\r\n",
    )
    .await;
    r.expect(
        &cmd(&["ZSCORE", "Sicily", "Catania"]),
        b"$16\r\n3479447370796909\r\n",
    )
    .await;
    r.expect(
        &cmd(&["GEOHASH", "Sicily", "Palermo", "Catania", "nope"]),
        b"*3\r\n$11\r\nsqc8b49rny0\r\n$11\r\nsqdtr74hyu0\r\n$-1\r\n",
    )
    .await;
    r.expect(
        &cmd(&["GEODIST", "Sicily", "Palermo", "Catania"]),
        b"$11\r\n166274.1516\r\n",
    )
    .await;
    r.expect(
        &cmd(&["GEODIST", "Sicily", "Palermo", "Catania", "km"]),
        b"$8\r\n166.2742\r\n",
    )
    .await;
    r.expect(
        &cmd(&["GEODIST", "Sicily", "Palermo", "Catania", "MI"]),
        b"$8\r\n103.3182\r\n",
    )
    .await;
    r.expect(&cmd(&["GEODIST", "Sicily", "Palermo", "nope"]), b"$-1\r\n")
        .await;
    r.expect(&cmd(&["GEODIST", "nokey", "a", "b"]), b"$-1\r\n")
        .await;
    r.expect(
        &cmd(&["GEODIST", "Sicily", "Palermo", "Catania", "parsec"]),
        b"-ERR unsupported unit provided. please use M, KM, FT, MI\r\n",
    )
    .await;
    r.expect(
        &cmd(&["GEODIST", "Sicily", "Palermo", "Catania", "km", "x"]),
        b"-ERR syntax error\r\n",
    )
    .await;
    r.expect(
        &cmd(&["GEOPOS", "Sicily", "Palermo", "nope"]),
        b"*2\r\n*2\r\n$20\r\n13.36138933897018433\r\n$20\r\n38.11555639549629859\r\n*-1\r\n",
    )
    .await;
    // RESP3: coordinates are doubles, a missing member is a null.
    r.send(&cmd(&["HELLO", "3"])).await;
    let _ = r.read_until(b"*0\r\n").await;
    r.expect(
        &cmd(&["GEOPOS", "Sicily", "Palermo", "nope"]),
        b"*2\r\n*2\r\n,13.36138933897018433\r\n,38.11555639549629859\r\n_\r\n",
    )
    .await;
    r.expect(
        &cmd(&["GEOSEARCH", "Sicily", "FROMLONLAT", "15", "37", "BYRADIUS", "200", "km", "ASC", "WITHDIST", "WITHCOORD", "WITHHASH"]),
        b"*2\r\n*4\r\n$7\r\nCatania\r\n$7\r\n56.4413\r\n:3479447370796909\r\n*2\r\n,15.08726745843887329\r\n,37.50266842333162032\r\n*4\r\n$7\r\nPalermo\r\n$8\r\n190.4424\r\n:3479099956230698\r\n*2\r\n,13.36138933897018433\r\n,38.11555639549629859\r\n",
    )
    .await;
}

#[tokio::test]
async fn geoadd_options_and_errors() {
    let srv = TestServer::start();
    let mut r = srv.raw().await;
    r.expect(&cmd(&["GEOADD", "g", "10", "20", "a"]), b":1\r\n")
        .await;
    r.expect(
        &cmd(&["GEOADD", "g", "NX", "11", "21", "a", "12", "22", "b"]),
        b":1\r\n",
    )
    .await;
    r.expect(
        &cmd(&["GEOADD", "g", "XX", "CH", "13", "23", "a", "14", "24", "c"]),
        b":1\r\n",
    )
    .await;
    r.expect(&cmd(&["ZCARD", "g"]), b":2\r\n").await;
    r.expect(&cmd(&["GEOADD", "g", "CH", "13", "23", "a"]), b":0\r\n")
        .await;
    r.expect(
        &cmd(&["GEOADD", "g", "NX", "XX", "1", "2", "x"]),
        b"-ERR syntax error\r\n",
    )
    .await;
    r.expect(
        &cmd(&["GEOADD", "g", "1", "2", "x", "3"]),
        b"-ERR syntax error\r\n",
    )
    .await;
    r.expect(
        &cmd(&["GEOADD", "g", "200", "100", "x"]),
        b"-ERR invalid longitude,latitude pair 200.000000,100.000000\r\n",
    )
    .await;
    r.expect(
        &cmd(&["GEOADD", "g", "10", "85.06", "x"]),
        b"-ERR invalid longitude,latitude pair 10.000000,85.060000\r\n",
    )
    .await;
    r.expect(
        &cmd(&["GEOADD", "g", "abc", "1", "x"]),
        b"-ERR value is not a valid float\r\n",
    )
    .await;
    r.expect(
        &cmd(&["GEOADD", "g", "1", "2"]),
        b"-ERR wrong number of arguments for 'geoadd' command\r\n",
    )
    .await;
    r.expect(&cmd(&["SET", "s", "v"]), b"+OK\r\n").await;
    let wt = b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";
    r.expect(&cmd(&["GEOADD", "s", "1", "2", "x"]), wt).await;
    r.expect(&cmd(&["GEOPOS", "s", "x"]), wt).await;
    r.expect(&cmd(&["GEOHASH", "s", "x"]), wt).await;
    r.expect(&cmd(&["GEODIST", "s", "x", "y"]), wt).await;
    r.expect(
        &cmd(&[
            "GEOSEARCH",
            "s",
            "FROMLONLAT",
            "0",
            "0",
            "BYRADIUS",
            "1",
            "m",
        ]),
        wt,
    )
    .await;
    r.expect(&cmd(&["GEORADIUS", "s", "0", "0", "1", "m"]), wt)
        .await;
    // Missing keys.
    r.expect(&cmd(&["GEOPOS", "nokey", "a"]), b"*1\r\n*-1\r\n")
        .await;
    r.expect(&cmd(&["GEOHASH", "nokey", "a"]), b"*1\r\n$-1\r\n")
        .await;
    r.expect(&cmd(&["GEOHASH", "nokey"]), b"*0\r\n").await;
    r.expect(&cmd(&["GEORADIUS", "nokey", "0", "0", "1", "m"]), b"*0\r\n")
        .await;
    r.expect(
        &cmd(&["GEORADIUSBYMEMBER", "nokey", "x", "bad", "m"]),
        b"*0\r\n",
    )
    .await;
}

#[tokio::test]
async fn search_options_errors_and_store() {
    let srv = TestServer::start();
    let mut r = srv.raw().await;
    r.expect(
        &cmd(&[
            "GEOADD",
            "pts",
            "-73.9454966",
            "40.747533",
            "lic",
            "-73.9733487",
            "40.7648057",
            "central",
            "-73.9903085",
            "40.7362513",
            "union",
            "-74.0131604",
            "40.7126674",
            "wtc",
            "-73.9375699",
            "40.7498929",
            "q4",
        ]),
        b":5\r\n",
    )
    .await;
    r.expect(
        &cmd(&[
            "GEOSEARCH",
            "pts",
            "FROMMEMBER",
            "lic",
            "BYRADIUS",
            "3",
            "km",
            "ASC",
        ]),
        b"*2\r\n$3\r\nlic\r\n$2\r\nq4\r\n",
    )
    .await;
    r.expect(
        &cmd(&[
            "GEOSEARCH",
            "pts",
            "FROMMEMBER",
            "lic",
            "BYRADIUS",
            "3",
            "km",
            "DESC",
            "COUNT",
            "2",
        ]),
        b"*2\r\n$2\r\nq4\r\n$3\r\nlic\r\n",
    )
    .await;
    r.expect(
        &cmd(&[
            "GEOSEARCH",
            "pts",
            "FROMLONLAT",
            "-73.9454966",
            "40.747533",
            "BYBOX",
            "6",
            "2",
            "km",
            "ASC",
            "WITHDIST",
        ]),
        b"*2\r\n*2\r\n$3\r\nlic\r\n$6\r\n0.0001\r\n*2\r\n$2\r\nq4\r\n$6\r\n0.7174\r\n",
    )
    .await;
    r.expect(
        &cmd(&["GEORADIUSBYMEMBER", "pts", "lic", "1", "km"]),
        b"*2\r\n$3\r\nlic\r\n$2\r\nq4\r\n",
    )
    .await;
    r.expect(
        &cmd(&[
            "GEORADIUS",
            "pts",
            "-73.9454966",
            "40.747533",
            "1",
            "km",
            "COUNT",
            "1",
            "ANY",
        ]),
        b"*1\r\n$3\r\nlic\r\n",
    )
    .await;
    // Errors, in Redis's order.
    let e = |m: &str| format!("-ERR {m}\r\n").into_bytes();
    r.expect(
        &cmd(&[
            "GEOSEARCH",
            "pts",
            "FROMMEMBER",
            "nope",
            "BYRADIUS",
            "1",
            "km",
        ]),
        &e("could not decode requested zset member"),
    )
    .await;
    r.expect(
        &cmd(&["GEORADIUSBYMEMBER", "pts", "nope", "1", "km"]),
        &e("could not decode requested zset member"),
    )
    .await;
    r.expect(
        &cmd(&["GEOSEARCH", "pts", "BYRADIUS", "1", "km", "ASC", "WITHDIST"]),
        &e("exactly one of FROMMEMBER or FROMLONLAT can be specified for GEOSEARCH"),
    )
    .await;
    r.expect(
        &cmd(&[
            "geosearch",
            "pts",
            "FROMMEMBER",
            "lic",
            "WITHDIST",
            "ASC",
            "WITHHASH",
        ]),
        &e("exactly one of BYRADIUS and BYBOX can be specified for geosearch"),
    )
    .await;
    r.expect(
        &cmd(&[
            "GEOSEARCH",
            "pts",
            "FROMMEMBER",
            "lic",
            "FROMLONLAT",
            "1",
            "2",
            "BYRADIUS",
            "1",
            "km",
        ]),
        b"-ERR syntax error\r\n",
    )
    .await;
    r.expect(
        &cmd(&[
            "GEOSEARCH",
            "pts",
            "FROMMEMBER",
            "lic",
            "BYRADIUS",
            "1",
            "km",
            "BYBOX",
            "1",
            "1",
            "km",
        ]),
        b"-ERR syntax error\r\n",
    )
    .await;
    r.expect(
        &cmd(&[
            "GEOSEARCH",
            "pts",
            "FROMMEMBER",
            "lic",
            "BYRADIUS",
            "1",
            "km",
            "ANY",
        ]),
        &e("the ANY argument requires COUNT argument"),
    )
    .await;
    r.expect(
        &cmd(&[
            "GEOSEARCH",
            "pts",
            "FROMMEMBER",
            "lic",
            "BYRADIUS",
            "1",
            "km",
            "COUNT",
            "0",
        ]),
        &e("COUNT must be > 0"),
    )
    .await;
    r.expect(
        &cmd(&[
            "GEOSEARCH",
            "pts",
            "FROMMEMBER",
            "lic",
            "BYRADIUS",
            "1",
            "km",
            "COUNT",
            "x",
        ]),
        &e("value is not an integer or out of range"),
    )
    .await;
    r.expect(
        &cmd(&[
            "GEOSEARCH",
            "pts",
            "FROMMEMBER",
            "lic",
            "BYRADIUS",
            "x",
            "km",
        ]),
        &e("need numeric radius"),
    )
    .await;
    r.expect(
        &cmd(&[
            "GEOSEARCH",
            "pts",
            "FROMMEMBER",
            "lic",
            "BYRADIUS",
            "-1",
            "km",
        ]),
        &e("radius cannot be negative"),
    )
    .await;
    r.expect(
        &cmd(&[
            "GEOSEARCH",
            "pts",
            "FROMMEMBER",
            "lic",
            "BYBOX",
            "x",
            "1",
            "km",
        ]),
        &e("need numeric width"),
    )
    .await;
    r.expect(
        &cmd(&[
            "GEOSEARCH",
            "pts",
            "FROMMEMBER",
            "lic",
            "BYBOX",
            "1",
            "x",
            "km",
        ]),
        &e("need numeric height"),
    )
    .await;
    r.expect(
        &cmd(&[
            "GEOSEARCH",
            "pts",
            "FROMMEMBER",
            "lic",
            "BYBOX",
            "1",
            "-1",
            "km",
        ]),
        &e("height or width cannot be negative"),
    )
    .await;
    r.expect(
        &cmd(&[
            "GEOSEARCH",
            "pts",
            "FROMMEMBER",
            "lic",
            "BYBOX",
            "1",
            "1",
            "yd",
        ]),
        &e("unsupported unit provided. please use M, KM, FT, MI"),
    )
    .await;
    r.expect(
        &cmd(&[
            "GEOSEARCH",
            "pts",
            "FROMLONLAT",
            "181",
            "0",
            "BYRADIUS",
            "1",
            "km",
        ]),
        &e("invalid longitude,latitude pair 181.000000,0.000000"),
    )
    .await;
    r.expect(
        &cmd(&[
            "GEOSEARCH",
            "pts",
            "FROMMEMBER",
            "lic",
            "BYRADIUS",
            "1",
            "km",
            "STORE",
            "x",
        ]),
        b"-ERR syntax error\r\n",
    )
    .await;
    r.expect(
        &cmd(&["GEORADIUS_RO", "pts", "0", "0", "1", "km", "STORE", "x"]),
        b"-ERR syntax error\r\n",
    )
    .await;
    r.expect(&cmd(&["GEORADIUS", "pts", "0", "0", "1", "km", "STORE", "x", "WITHDIST"]), &e("STORE option in GEORADIUS is not compatible with WITHDIST, WITHHASH and WITHCOORD options")).await;
    r.expect(
        &cmd(&[
            "GEOSEARCHSTORE",
            "x",
            "pts",
            "FROMMEMBER",
            "lic",
            "BYRADIUS",
            "1",
            "km",
            "WITHHASH",
        ]),
        &e("GEOSEARCHSTORE is not compatible with WITHDIST, WITHHASH and WITHCOORD options"),
    )
    .await;
    // STORE / STOREDIST.
    r.expect(
        &cmd(&[
            "GEORADIUS",
            "pts",
            "-73.9454966",
            "40.747533",
            "1",
            "km",
            "STORE",
            "near",
        ]),
        b":2\r\n",
    )
    .await;
    r.expect(
        &cmd(&["ZSCORE", "near", "lic"]),
        b"$16\r\n1791875804419201\r\n",
    )
    .await;
    r.expect(
        &cmd(&[
            "GEORADIUSBYMEMBER",
            "pts",
            "lic",
            "1",
            "km",
            "STOREDIST",
            "d",
        ]),
        b":2\r\n",
    )
    .await;
    r.expect(
        &cmd(&["ZRANGE", "d", "0", "-1"]),
        b"*2\r\n$3\r\nlic\r\n$2\r\nq4\r\n",
    )
    .await;
    r.expect(
        &cmd(&[
            "GEOSEARCHSTORE",
            "d2",
            "pts",
            "FROMMEMBER",
            "lic",
            "BYRADIUS",
            "3",
            "km",
            "STOREDIST",
            "COUNT",
            "2",
        ]),
        b":2\r\n",
    )
    .await;
    r.expect(&cmd(&["TYPE", "d2"]), b"+zset\r\n").await;
    // An empty result deletes the destination; a missing source too.
    r.expect(
        &cmd(&[
            "GEOSEARCHSTORE",
            "d2",
            "pts",
            "FROMLONLAT",
            "0",
            "0",
            "BYRADIUS",
            "1",
            "m",
        ]),
        b":0\r\n",
    )
    .await;
    r.expect(&cmd(&["EXISTS", "d2"]), b":0\r\n").await;
    r.expect(
        &cmd(&["GEORADIUS", "nokey", "0", "0", "1", "m", "STORE", "near"]),
        b":0\r\n",
    )
    .await;
    r.expect(&cmd(&["EXISTS", "near"]), b":0\r\n").await;
    // COMMAND GETKEYS finds the STORE destination.
    r.expect(
        &cmd(&[
            "COMMAND",
            "GETKEYS",
            "GEORADIUS",
            "src",
            "0",
            "0",
            "1",
            "m",
            "STORE",
            "dst",
        ]),
        b"*2\r\n$3\r\nsrc\r\n$3\r\ndst\r\n",
    )
    .await;
    r.expect(
        &cmd(&[
            "COMMAND",
            "GETKEYS",
            "GEOSEARCHSTORE",
            "dst",
            "src",
            "FROMLONLAT",
            "0",
            "0",
            "BYRADIUS",
            "1",
            "m",
        ]),
        b"*2\r\n$3\r\ndst\r\n$3\r\nsrc\r\n",
    )
    .await;
}

#[tokio::test]
async fn same_as_redis_for_fixed_cases() {
    let srv = TestServer::start();
    let s = script(
        "
        GEOADD Sicily 13.361389 38.115556 Palermo 15.087269 37.502669 Catania
        GEOADD Sicily 12.758489 38.788135 edge1 17.241510 38.788135 edge2
        ZRANGE Sicily 0 -1 WITHSCORES
        GEOHASH Sicily Palermo Catania edge1 edge2 missing
        GEOPOS Sicily Palermo Catania edge1 missing
        GEODIST Sicily Palermo Catania
        GEODIST Sicily Palermo Catania km
        GEODIST Sicily Palermo Catania ft
        GEODIST Sicily Palermo Palermo
        GEORADIUS Sicily 15 37 200 km WITHDIST WITHCOORD WITHHASH
        GEORADIUS Sicily 15 37 200 km WITHDIST ASC
        GEORADIUS Sicily 15 37 200 km DESC COUNT 1
        GEORADIUS Sicily 15 37 200 mi WITHCOORD COUNT 3 ANY
        GEORADIUSBYMEMBER Sicily Palermo 300 km WITHDIST ASC
        GEORADIUSBYMEMBER_RO Sicily Catania 100 ft
        GEORADIUS_RO Sicily 15 37 200 km WITHHASH
        GEOSEARCH Sicily FROMLONLAT 15 37 BYBOX 400 400 km ASC WITHCOORD WITHDIST
        GEOSEARCH Sicily FROMMEMBER Palermo BYBOX 200 100 mi DESC
        GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 0 m
        GEOSEARCHSTORE dst Sicily FROMLONLAT 15 37 BYRADIUS 200 km STOREDIST
        ZRANGE dst 0 -1 WITHSCORES
        GEOSEARCHSTORE dst Sicily FROMLONLAT 15 37 BYRADIUS 200 km
        ZRANGE dst 0 -1 WITHSCORES
        GEORADIUS Sicily 15 37 200 km STORE dst2 STOREDIST dst3
        EXISTS dst2
        ZRANGE dst3 0 -1 WITHSCORES
        GEOADD Sicily 180 85.05112878 corner -180 -85.05112878 corner2 0 0 zero
        GEOPOS Sicily corner corner2 zero
        GEOHASH Sicily corner corner2 zero
        GEOSEARCH Sicily FROMLONLAT 179 85 BYRADIUS 5000 km WITHDIST
        GEOSEARCH Sicily FROMLONLAT 0 0 BYRADIUS 20000 km ASC
        GEOADD Sicily 181 0 bad
        GEOADD Sicily 0 86 bad
        GEOSEARCH Sicily FROMLONLAT 0 100 BYRADIUS 1 km
        GEORADIUS Sicily 15 37 200 km COUNT -1
        GEORADIUS Sicily 15 37 200 km foo
        ZADD Sicily -5 notgeo 1e20 huge inf inf -inf minf 1.5 frac
        GEOPOS Sicily notgeo huge inf minf frac
        GEOHASH Sicily notgeo huge inf minf frac
        GEODIST Sicily notgeo Palermo
        ZREM Sicily notgeo huge inf minf frac
        ",
    );
    same_replies(srv.addr.port(), &s).await;
    let s = script(
        "
        FLUSHALL
        GEOADD Sicily 13.361389 38.115556 Palermo 15.087269 37.502669 Catania
        GEOADD Sicily 12.758489 38.788135 edge1 17.241510 38.788135 edge2
        GEOPOS Sicily Palermo missing
        GEODIST Sicily Palermo Catania
        GEODIST Sicily Palermo missing
        GEORADIUS Sicily 15 37 200 km WITHDIST WITHCOORD WITHHASH ASC
        GEOSEARCH Sicily FROMMEMBER Catania BYBOX 400 400 km ASC WITHCOORD
        GEOHASH Sicily Palermo missing
        ",
    );
    same_replies_resp3(srv.addr.port(), &s).await;
}

#[tokio::test]
async fn same_as_redis_for_random_searches() {
    let srv = TestServer::start();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x9e0);
    let mut text = String::new();
    // Clusters at several latitudes (including near the poles and the
    // antimeridian) so every neighbour-cell path is exercised.
    let centres = [
        (0.0, 0.0),
        (13.4, 38.1),
        (-179.5, 10.0),
        (100.0, 70.0),
        (-50.0, -82.0),
        (179.9, -45.0),
    ];
    for (ci, (cx, cy)) in centres.iter().enumerate() {
        let mut line = format!("GEOADD pts{ci}");
        for k in 0..150 {
            let x: f64 = (cx + rng.gen_range(-3.0..3.0f64)).clamp(-180.0, 180.0);
            let y: f64 = (cy + rng.gen_range(-2.0..2.0f64)).clamp(-85.0, 85.0);
            line.push_str(&format!(" {x:.6} {y:.6} m{k}"));
        }
        text.push_str(&line);
        text.push('\n');
        for _ in 0..25 {
            let x: f64 = (cx + rng.gen_range(-2.0..2.0f64)).clamp(-180.0, 180.0);
            let y: f64 = (cy + rng.gen_range(-1.5..1.5f64)).clamp(-85.0, 85.0);
            let radius = rng.gen_range(1..400);
            let unit = ["m", "km", "ft", "mi"][rng.gen_range(0..4)];
            let radius = if unit == "m" || unit == "ft" {
                radius * 1000
            } else {
                radius
            };
            text.push_str(&format!(
                "GEOSEARCH pts{ci} FROMLONLAT {x:.5} {y:.5} BYRADIUS {radius} {unit} WITHDIST WITHHASH WITHCOORD\n"
            ));
            text.push_str(&format!(
                "GEOSEARCH pts{ci} FROMLONLAT {x:.5} {y:.5} BYRADIUS {radius} {unit} ASC WITHDIST\n"
            ));
            let (w, h) = (rng.gen_range(1..500), rng.gen_range(1..500));
            text.push_str(&format!(
                "GEOSEARCH pts{ci} FROMLONLAT {x:.5} {y:.5} BYBOX {w} {h} km WITHDIST\n"
            ));
            let m = rng.gen_range(0..150);
            text.push_str(&format!(
                "GEOSEARCH pts{ci} FROMMEMBER m{m} BYBOX {w} {h} km DESC\n"
            ));
            text.push_str(&format!(
                "GEORADIUSBYMEMBER pts{ci} m{m} {radius} {unit} WITHDIST COUNT 5\n"
            ));
            let m2 = rng.gen_range(0..150);
            text.push_str(&format!("GEODIST pts{ci} m{m} m{m2} {unit}\n"));
            text.push_str(&format!("GEOHASH pts{ci} m{m} m{m2}\n"));
            text.push_str(&format!("GEOPOS pts{ci} m{m} m{m2}\n"));
        }
    }
    let s = script(&text);
    same_replies(srv.addr.port(), &s).await;
}
