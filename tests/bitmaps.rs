//! Bitmap commands through the real server: exact replies and errors for
//! SETBIT GETBIT BITCOUNT BITPOS BITOP BITFIELD BITFIELD_RO, WATCH behaviour,
//! and differential runs against redis-server (when installed).

mod common;
use common::diff::{same_replies, script};
use common::{resp, TestServer};

#[tokio::test]
async fn setbit_getbit_and_errors() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    c.expect(&resp(&[b"SETBIT", b"b", b"7", b"1"]), b":0\r\n")
        .await;
    c.expect(&resp(&[b"SETBIT", b"b", b"7", b"1"]), b":1\r\n")
        .await;
    c.expect(&resp(&[b"GET", b"b"]), b"$1\r\n\x01\r\n").await;
    c.expect(&resp(&[b"SETBIT", b"b", b"0", b"1"]), b":0\r\n")
        .await;
    c.expect(&resp(&[b"GET", b"b"]), b"$1\r\n\x81\r\n").await;
    c.expect(&resp(&[b"SETBIT", b"b", b"17", b"1"]), b":0\r\n")
        .await;
    c.expect(&resp(&[b"STRLEN", b"b"]), b":3\r\n").await;
    c.expect(&resp(&[b"GETBIT", b"b", b"17"]), b":1\r\n").await;
    c.expect(&resp(&[b"GETBIT", b"b", b"1000"]), b":0\r\n")
        .await;
    c.expect(&resp(&[b"GETBIT", b"nokey", b"3"]), b":0\r\n")
        .await;
    c.expect(&resp(&[b"OBJECT", b"ENCODING", b"b"]), b"$3\r\nraw\r\n")
        .await;
    let off = b"-ERR bit offset is not an integer or out of range\r\n";
    c.expect(&resp(&[b"SETBIT", b"b", b"-1", b"1"]), off).await;
    c.expect(&resp(&[b"SETBIT", b"b", b"4294967296", b"1"]), off)
        .await;
    c.expect(&resp(&[b"GETBIT", b"b", b"x"]), off).await;
    let bit = b"-ERR bit is not an integer or out of range\r\n";
    c.expect(&resp(&[b"SETBIT", b"b", b"1", b"2"]), bit).await;
    c.expect(&resp(&[b"SETBIT", b"b", b"1", b"-1"]), bit).await;
    // The largest offset inside 512MB is accepted.
    c.expect(&resp(&[b"SETBIT", b"big", b"4294967295", b"1"]), b":0\r\n")
        .await;
    c.expect(&resp(&[b"STRLEN", b"big"]), b":536870912\r\n")
        .await;
    c.expect(&resp(&[b"DEL", b"big"]), b":1\r\n").await;
    // Integer-encoded strings are read as their decimal text.
    c.expect(&resp(&[b"SET", b"n", b"1"]), b"+OK\r\n").await;
    c.expect(&resp(&[b"GETBIT", b"n", b"2"]), b":1\r\n").await;
    c.expect(&resp(&[b"SETBIT", b"n", b"6", b"1"]), b":0\r\n")
        .await;
    c.expect(&resp(&[b"GET", b"n"]), b"$1\r\n3\r\n").await;
    c.expect(&resp(&[b"LPUSH", b"l", b"a"]), b":1\r\n").await;
    let wt = b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";
    c.expect(&resp(&[b"SETBIT", b"l", b"0", b"1"]), wt).await;
    c.expect(&resp(&[b"GETBIT", b"l", b"0"]), wt).await;
    c.expect(&resp(&[b"BITCOUNT", b"l"]), wt).await;
    c.expect(&resp(&[b"BITPOS", b"l", b"1"]), wt).await;
    c.expect(&resp(&[b"BITFIELD", b"l", b"GET", b"u8", b"0"]), wt)
        .await;
    c.expect(&resp(&[b"BITOP", b"AND", b"d", b"l"]), wt).await;
}

#[tokio::test]
async fn bitcount_and_bitpos_ranges() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    c.expect(&resp(&[b"SET", b"s", b"foobar"]), b"+OK\r\n")
        .await;
    c.expect(&resp(&[b"BITCOUNT", b"s"]), b":26\r\n").await;
    c.expect(&resp(&[b"BITCOUNT", b"s", b"1", b"1"]), b":6\r\n")
        .await;
    c.expect(&resp(&[b"BITCOUNT", b"s", b"5", b"30", b"BIT"]), b":17\r\n")
        .await;
    c.expect(&resp(&[b"BITCOUNT", b"s", b"-1", b"-5"]), b":0\r\n")
        .await;
    c.expect(&resp(&[b"BITCOUNT", b"s", b"0"]), b"-ERR syntax error\r\n")
        .await;
    c.expect(
        &resp(&[b"BITCOUNT", b"s", b"0", b"1", b"foo"]),
        b"-ERR syntax error\r\n",
    )
    .await;
    // A missing key answers 0 before the arguments are looked at.
    c.expect(&resp(&[b"BITCOUNT", b"nokey", b"0"]), b":0\r\n")
        .await;
    c.expect(&resp(&[b"BITPOS", b"s", b"1"]), b":1\r\n").await;
    c.expect(&resp(&[b"BITPOS", b"s", b"1", b"2"]), b":17\r\n")
        .await;
    c.expect(
        &resp(&[b"BITPOS", b"s", b"0", b"7", b"15", b"BIT"]),
        b":7\r\n",
    )
    .await;
    c.expect(
        &resp(&[b"BITPOS", b"s", b"2"]),
        b"-ERR The bit argument must be 1 or 0.\r\n",
    )
    .await;
    c.expect(&resp(&[b"BITPOS", b"nokey", b"0"]), b":0\r\n")
        .await;
    c.expect(&resp(&[b"BITPOS", b"nokey", b"1"]), b":-1\r\n")
        .await;
    // All ones: without an end the string is zero-padded on the right, with
    // an explicit end there is no clear bit.
    c.expect(&resp(&[b"SET", b"f", b"\xff\xff"]), b"+OK\r\n")
        .await;
    c.expect(&resp(&[b"BITPOS", b"f", b"0"]), b":16\r\n").await;
    c.expect(&resp(&[b"BITPOS", b"f", b"0", b"1"]), b":16\r\n")
        .await;
    c.expect(&resp(&[b"BITPOS", b"f", b"0", b"0", b"-1"]), b":-1\r\n")
        .await;
    c.expect(
        &resp(&[b"BITPOS", b"f", b"0", b"3", b"BIT"]),
        b"-ERR value is not an integer or out of range\r\n",
    )
    .await;
}

#[tokio::test]
async fn bitop_results_and_errors() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    c.expect(&resp(&[b"SET", b"a", b"\xf0\x0f\xff"]), b"+OK\r\n")
        .await;
    c.expect(&resp(&[b"SET", b"b", b"\x3c"]), b"+OK\r\n").await;
    c.expect(&resp(&[b"BITOP", b"AND", b"d", b"a", b"b"]), b":3\r\n")
        .await;
    c.expect(&resp(&[b"GET", b"d"]), b"$3\r\n\x30\x00\x00\r\n")
        .await;
    c.expect(&resp(&[b"BITOP", b"or", b"d", b"a", b"b"]), b":3\r\n")
        .await;
    c.expect(&resp(&[b"GET", b"d"]), b"$3\r\n\xfc\x0f\xff\r\n")
        .await;
    c.expect(&resp(&[b"BITOP", b"XOR", b"d", b"a", b"b"]), b":3\r\n")
        .await;
    c.expect(&resp(&[b"GET", b"d"]), b"$3\r\n\xcc\x0f\xff\r\n")
        .await;
    c.expect(&resp(&[b"BITOP", b"NOT", b"d", b"b"]), b":1\r\n")
        .await;
    c.expect(&resp(&[b"GET", b"d"]), b"$1\r\n\xc3\r\n").await;
    c.expect(
        &resp(&[b"BITOP", b"NOT", b"d", b"a", b"b"]),
        b"-ERR BITOP NOT must be called with a single source key.\r\n",
    )
    .await;
    c.expect(
        &resp(&[b"BITOP", b"NAND", b"d", b"a"]),
        b"-ERR syntax error\r\n",
    )
    .await;
    // Only empty inputs: the destination is deleted.
    c.expect(&resp(&[b"BITOP", b"OR", b"d", b"x", b"y"]), b":0\r\n")
        .await;
    c.expect(&resp(&[b"EXISTS", b"d"]), b":0\r\n").await;
    // The destination loses its TTL.
    c.expect(&resp(&[b"SETEX", b"d", b"100", b"v"]), b"+OK\r\n")
        .await;
    c.expect(&resp(&[b"BITOP", b"OR", b"d", b"a"]), b":3\r\n")
        .await;
    c.expect(&resp(&[b"TTL", b"d"]), b":-1\r\n").await;
}

#[tokio::test]
async fn bitfield_ops_and_overflow() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    c.expect(
        &resp(&[
            b"BITFIELD",
            b"bf",
            b"SET",
            b"u8",
            b"0",
            b"255",
            b"GET",
            b"u8",
            b"0",
            b"GET",
            b"i8",
            b"0",
        ]),
        b"*3\r\n:0\r\n:255\r\n:-1\r\n",
    )
    .await;
    c.expect(
        &resp(&[b"BITFIELD", b"bf", b"INCRBY", b"u8", b"0", b"1"]),
        b"*1\r\n:0\r\n",
    )
    .await;
    c.expect(
        &resp(&[
            b"BITFIELD",
            b"bf",
            b"OVERFLOW",
            b"SAT",
            b"INCRBY",
            b"u8",
            b"0",
            b"300",
        ]),
        b"*1\r\n:255\r\n",
    )
    .await;
    c.expect(
        &resp(&[
            b"BITFIELD",
            b"bf",
            b"OVERFLOW",
            b"FAIL",
            b"INCRBY",
            b"u8",
            b"0",
            b"1",
        ]),
        b"*1\r\n$-1\r\n",
    )
    .await;
    c.expect(
        &resp(&[
            b"BITFIELD",
            b"bf",
            b"OVERFLOW",
            b"WRAP",
            b"INCRBY",
            b"i8",
            b"0",
            b"200",
        ]),
        b"*1\r\n:-57\r\n",
    )
    .await;
    c.expect(
        &resp(&[
            b"BITFIELD",
            b"bf",
            b"OVERFLOW",
            b"SAT",
            b"INCRBY",
            b"i8",
            b"0",
            b"-200",
        ]),
        b"*1\r\n:-128\r\n",
    )
    .await;
    c.expect(
        &resp(&[
            b"BITFIELD",
            b"bf",
            b"SET",
            b"i64",
            b"8",
            b"-1",
            b"GET",
            b"u63",
            b"8",
        ]),
        b"*2\r\n:0\r\n:9223372036854775807\r\n",
    )
    .await;
    c.expect(
        &resp(&[
            b"BITFIELD",
            b"bf",
            b"OVERFLOW",
            b"SAT",
            b"INCRBY",
            b"i64",
            b"8",
            b"-9223372036854775808",
        ]),
        b"*1\r\n:-9223372036854775808\r\n",
    )
    .await;
    c.expect(
        &resp(&[
            b"BITFIELD",
            b"h",
            b"SET",
            b"u8",
            b"#2",
            b"7",
            b"GET",
            b"u8",
            b"16",
        ]),
        b"*2\r\n:0\r\n:7\r\n",
    )
    .await;
    c.expect(&resp(&[b"STRLEN", b"h"]), b":3\r\n").await;
    c.expect(&resp(&[b"BITFIELD", b"bf"]), b"*0\r\n").await;
    let ty = b"-ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.\r\n";
    c.expect(&resp(&[b"BITFIELD", b"bf", b"GET", b"u64", b"0"]), ty)
        .await;
    c.expect(&resp(&[b"BITFIELD", b"bf", b"GET", b"i65", b"0"]), ty)
        .await;
    c.expect(&resp(&[b"BITFIELD", b"bf", b"GET", b"x8", b"0"]), ty)
        .await;
    c.expect(
        &resp(&[b"BITFIELD", b"bf", b"GET", b"u8", b"-1"]),
        b"-ERR bit offset is not an integer or out of range\r\n",
    )
    .await;
    c.expect(
        &resp(&[b"BITFIELD", b"bf", b"OVERFLOW", b"foo", b"GET", b"u8", b"0"]),
        b"-ERR Invalid OVERFLOW type specified\r\n",
    )
    .await;
    c.expect(
        &resp(&[b"BITFIELD", b"bf", b"GET", b"u8"]),
        b"-ERR syntax error\r\n",
    )
    .await;
    c.expect(
        &resp(&[b"BITFIELD", b"bf", b"SET", b"u8", b"0", b"x"]),
        b"-ERR value is not an integer or out of range\r\n",
    )
    .await;
    c.expect(
        &resp(&[b"BITFIELD_RO", b"bf", b"GET", b"u8", b"0"]),
        b"*1\r\n:128\r\n",
    )
    .await;
    c.expect(
        &resp(&[b"BITFIELD_RO", b"bf", b"SET", b"u8", b"0", b"1"]),
        b"-ERR BITFIELD_RO only supports the GET subcommand\r\n",
    )
    .await;
    // GET on a missing key creates nothing.
    c.expect(
        &resp(&[b"BITFIELD", b"nokey", b"GET", b"u8", b"0"]),
        b"*1\r\n:0\r\n",
    )
    .await;
    c.expect(&resp(&[b"EXISTS", b"nokey"]), b":0\r\n").await;
}

/// Read-only bitmap commands, and writes that change nothing, leave a
/// WATCH intact; real changes break it.
#[tokio::test]
async fn watch_is_kept_by_reads() {
    let srv = TestServer::start();
    let mut a = srv.raw().await;
    let mut b = srv.raw().await;
    a.expect(&resp(&[b"SET", b"w", b"abc"]), b"+OK\r\n").await;
    a.expect(&resp(&[b"WATCH", b"w"]), b"+OK\r\n").await;
    b.expect(
        &resp(&[b"BITFIELD", b"w", b"GET", b"u8", b"0"]),
        b"*1\r\n:97\r\n",
    )
    .await;
    b.expect(&resp(&[b"BITCOUNT", b"w"]), b":10\r\n").await;
    b.expect(&resp(&[b"GETBIT", b"w", b"1"]), b":1\r\n").await;
    b.expect(&resp(&[b"SETBIT", b"w", b"1", b"1"]), b":1\r\n")
        .await;
    a.expect(&resp(&[b"MULTI"]), b"+OK\r\n").await;
    a.expect(&resp(&[b"PING"]), b"+QUEUED\r\n").await;
    a.expect(&resp(&[b"EXEC"]), b"*1\r\n+PONG\r\n").await;
    a.expect(&resp(&[b"WATCH", b"w"]), b"+OK\r\n").await;
    b.expect(&resp(&[b"SETBIT", b"w", b"3", b"1"]), b":0\r\n")
        .await;
    a.expect(&resp(&[b"MULTI"]), b"+OK\r\n").await;
    a.expect(&resp(&[b"PING"]), b"+QUEUED\r\n").await;
    a.expect(&resp(&[b"EXEC"]), b"*-1\r\n").await;
}

#[tokio::test]
async fn differential_bitops() {
    let srv = TestServer::start();
    let s = script(
        r#"
flushall
setbit b 7 1
setbit b 7 1
setbit b 100 1
getbit b 100
getbit b 101
getbit nokey 5
setbit b -1 1
setbit b 4294967296 1
setbit b 1 2
setbit b 1 x
getbit b x
get b
bitcount b
bitcount b 0 0
bitcount b 0 -1 bit
bitcount b 1 5 bit
bitcount b -5 -1 bit
bitcount b -1 -5
bitcount b 0
bitcount b 0 1 foo
bitcount nokey 0
bitcount b 0 1 bit extra
set s foobar
bitcount s
bitcount s 1 1
bitcount s 5 30 bit
bitcount s 2 -2
set n 12345
bitcount n
getbit n 3
bitpos n 1
bitpos s 1
bitpos s 0
bitpos s 1 2
bitpos s 0 2 -1
bitpos s 1 7 15 bit
bitpos s 0 7 15 bit
bitpos s 1 -1 -1 bit
bitpos s 2
bitpos s 1 0 1 foo
bitpos nokey 0
bitpos nokey 1
setbit f 0 1
setbit f 1 1
setbit f 2 1
setbit f 3 1
setbit f 4 1
setbit f 5 1
setbit f 6 1
setbit f 7 1
bitpos f 0
bitpos f 0 0
bitpos f 0 0 -1
bitpos f 0 0 7 bit
bitpos f 0 2 bit
bitpos f 1 8 bit
bitpos f 0 0 100 bit
bitpos f 0 3 5
set e ''
bitpos e 0
bitpos e 1
bitcount e
bitpos s 1 0 1 2 3
lpush l a
getbit l 0
setbit l 0 1
bitcount l
bitpos l 1
bitop and dest s n
get dest
bitop or dest s n b
get dest
bitop xor dest s n
get dest
bitop not dest s
get dest
bitop not dest s n
bitop foo dest s
bitop and dest l
bitop and dest nokey nokey2
exists dest
bitop or dest s
object encoding dest
bitop and dest s ''
"#,
    );
    same_replies(srv.addr.port(), &s).await;
}

#[tokio::test]
async fn differential_bitfield() {
    let srv = TestServer::start();
    let s = script(
        r#"
flushall
bitfield bf set u8 0 255
bitfield bf get u8 0
bitfield bf get i8 0
bitfield bf incrby u8 0 1
bitfield bf overflow sat incrby u8 0 300
bitfield bf overflow fail incrby u8 0 1
bitfield bf overflow wrap incrby i8 0 200
bitfield bf overflow sat incrby i8 0 -200
bitfield bf overflow sat incrby i8 0 200
bitfield bf overflow fail incrby i8 0 -300
bitfield bf set i64 8 -1 get i64 8 get u63 8 get u63 9
bitfield bf overflow sat incrby i64 8 -9223372036854775808
bitfield bf overflow wrap incrby i64 8 -9223372036854775808
bitfield bf overflow sat incrby i64 8 9223372036854775807
bitfield bf overflow sat incrby i64 8 9223372036854775807
bitfield bf overflow fail incrby i64 8 1
bitfield bf overflow wrap set i4 0 100 get i4 0
bitfield bf overflow sat set i4 0 100 get i4 0
bitfield bf overflow sat set i4 0 -100 get i4 0
bitfield bf overflow fail set i4 0 -100 get i4 0
bitfield bf overflow sat set u4 0 -1 get u4 0
bitfield bf overflow wrap set u4 0 -1 get u4 0
bitfield bf overflow fail set u4 0 -1 get u4 0
bitfield bf overflow sat set u63 0 -1
bitfield bf overflow wrap incrby u63 0 9223372036854775807
bitfield bf overflow sat incrby u63 0 9223372036854775807
bitfield bf overflow sat incrby u63 0 -9223372036854775808
get bf
bitfield bf set u8 #3 7 get u8 #3 get u8 24 incrby i5 #2 3
bitfield bf get u64 0
bitfield bf get i65 0
bitfield bf get x8 0
bitfield bf get u0 0
bitfield bf get u8 -1
bitfield bf get u8 #-1
bitfield bf get u8 #x
bitfield bf get u8 4294967296
bitfield bf get u8 4294967295
bitfield bf overflow foo get u8 0
bitfield bf get u8
bitfield bf foo u8 0
bitfield bf set u8 0 x
bitfield bf incrby u8 0
bitfield bf
bitfield nokey get u8 0 get i16 100
exists nokey
bitfield_ro bf get u8 0 get i8 #1
bitfield_ro bf set u8 0 1
bitfield_ro bf overflow sat get u8 0
lpush l a
bitfield l get u8 0
bitfield l set u8 0 1
bitfield_ro l get u8 0
bitfield_ro l set u8 0 1
set n 1234
bitfield n get u8 0 set u8 0 65 get u8 0
get n
bitfield new overflow fail incrby u2 100 5
get new
bitfield new2 set u1 0 1 set u1 1 1 set i3 2 -2
get new2
bitfield bf2 incrby u2 100 1 overflow sat incrby u2 102 1 incrby u2 102 1 incrby u2 102 1
bitfield bf2 incrby i63 0 4611686018427387904 incrby i63 0 4611686018427387904
"#,
    );
    same_replies(srv.addr.port(), &s).await;
}

/// Random SETBIT/BITFIELD/BITOP traffic against both servers, then every
/// BITCOUNT / BITPOS range over the results.
#[tokio::test]
async fn differential_random() {
    let srv = TestServer::start();
    let mut seed: u64 = 0x1234_5678_9abc_def1;
    let mut rnd = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut cmds: Vec<Vec<String>> = vec![vec!["flushall".into()]];
    for _ in 0..300 {
        let k = format!("k{}", rnd(4));
        match rnd(4) {
            0 => cmds.push(vec![
                "setbit".into(),
                k,
                rnd(200).to_string(),
                rnd(2).to_string(),
            ]),
            1 => {
                let ty = if rnd(2) == 0 {
                    format!("i{}", 1 + rnd(64))
                } else {
                    format!("u{}", 1 + rnd(63))
                };
                let ow = ["WRAP", "SAT", "FAIL"][rnd(3) as usize].to_string();
                let v = (rnd(u64::MAX) as i64 >> rnd(64)).to_string();
                let op = if rnd(2) == 0 { "SET" } else { "INCRBY" };
                cmds.push(vec![
                    "bitfield".into(),
                    k,
                    "OVERFLOW".into(),
                    ow,
                    op.into(),
                    ty.clone(),
                    rnd(150).to_string(),
                    v,
                    "GET".into(),
                    ty,
                    rnd(150).to_string(),
                ]);
            }
            2 => {
                let op = ["AND", "OR", "XOR", "NOT"][rnd(4) as usize];
                let mut c = vec!["bitop".into(), op.into(), format!("k{}", rnd(4)), k];
                if op != "NOT" {
                    c.push(format!("k{}", rnd(5)));
                }
                cmds.push(c);
            }
            _ => cmds.push(vec!["get".into(), k]),
        }
    }
    for k in 0..4 {
        let k = format!("k{k}");
        for (s, e) in [(0i64, -1i64), (1, 3), (-3, -1), (-100, 100), (5, 2), (2, 2)] {
            cmds.push(vec![
                "bitcount".into(),
                k.clone(),
                s.to_string(),
                e.to_string(),
            ]);
            cmds.push(vec![
                "bitcount".into(),
                k.clone(),
                s.to_string(),
                e.to_string(),
                "BIT".into(),
            ]);
            for bit in ["0", "1"] {
                cmds.push(vec!["bitpos".into(), k.clone(), bit.into(), s.to_string()]);
                cmds.push(vec![
                    "bitpos".into(),
                    k.clone(),
                    bit.into(),
                    s.to_string(),
                    e.to_string(),
                ]);
                cmds.push(vec![
                    "bitpos".into(),
                    k.clone(),
                    bit.into(),
                    s.to_string(),
                    e.to_string(),
                    "BIT".into(),
                ]);
                cmds.push(vec![
                    "bitpos".into(),
                    k.clone(),
                    bit.into(),
                    (s * 7).to_string(),
                    (e * 5).to_string(),
                    "BIT".into(),
                ]);
            }
        }
    }
    let s: Vec<Vec<&[u8]>> = cmds
        .iter()
        .map(|c| c.iter().map(|a| a.as_bytes()).collect())
        .collect();
    same_replies(srv.addr.port(), &s).await;
}
