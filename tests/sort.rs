//! SORT / SORT_RO through the real server: lists, sets and sorted sets,
//! BY (keys, hash fields, constant patterns), GET (`#`, keys, `->field`,
//! several), LIMIT clamping, ASC/DESC, ALPHA, STORE (list created,
//! destination deleted on empty results, blocked clients woken), errors,
//! COMMAND GETKEYS, and differential checks against a real redis-server.

mod common;
use common::diff::{same_replies, same_replies_resp3, script};
use common::{resp, TestServer};

fn cmd(args: &[&str]) -> Vec<u8> {
    let v: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    resp(&v)
}

fn bulks(items: &[&str]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", items.len()).into_bytes();
    for i in items {
        if *i == "<nil>" {
            v.extend_from_slice(b"$-1\r\n");
        } else {
            v.extend_from_slice(format!("${}\r\n{}\r\n", i.len(), i).as_bytes());
        }
    }
    v
}

#[tokio::test]
async fn numeric_alpha_limit_and_direction() {
    let srv = TestServer::start();
    let mut r = srv.raw().await;
    r.expect(
        &cmd(&["RPUSH", "l", "3", "1", "10", "2", "-1.5"]),
        b":5\r\n",
    )
    .await;
    r.expect(&cmd(&["SORT", "l"]), &bulks(&["-1.5", "1", "2", "3", "10"]))
        .await;
    r.expect(
        &cmd(&["SORT", "l", "DESC"]),
        &bulks(&["10", "3", "2", "1", "-1.5"]),
    )
    .await;
    r.expect(
        &cmd(&["SORT", "l", "ALPHA"]),
        &bulks(&["-1.5", "1", "10", "2", "3"]),
    )
    .await;
    r.expect(&cmd(&["SORT", "l", "LIMIT", "1", "2"]), &bulks(&["1", "2"]))
        .await;
    r.expect(
        &cmd(&["SORT", "l", "LIMIT", "-5", "2"]),
        &bulks(&["-1.5", "1"]),
    )
    .await;
    r.expect(
        &cmd(&["SORT", "l", "LIMIT", "3", "-1"]),
        &bulks(&["3", "10"]),
    )
    .await;
    r.expect(&cmd(&["SORT", "l", "LIMIT", "10", "5"]), b"*0\r\n")
        .await;
    r.expect(&cmd(&["SORT", "l", "LIMIT", "0", "0"]), b"*0\r\n")
        .await;
    r.expect(
        &cmd(&["SORT_RO", "l", "DESC", "LIMIT", "0", "2"]),
        &bulks(&["10", "3"]),
    )
    .await;
    // Ties on the numeric value fall back to the bytes.
    r.expect(&cmd(&["RPUSH", "t", "1.0", "1", "01"]), b":3\r\n")
        .await;
    r.expect(&cmd(&["SORT", "t"]), &bulks(&["01", "1", "1.0"]))
        .await;
    r.expect(&cmd(&["SORT", "t", "DESC"]), &bulks(&["1.0", "1", "01"]))
        .await;
    // Sets and sorted sets.
    r.expect(&cmd(&["SADD", "s", "5", "2", "9"]), b":3\r\n")
        .await;
    r.expect(&cmd(&["SORT", "s"]), &bulks(&["2", "5", "9"]))
        .await;
    r.expect(
        &cmd(&["ZADD", "z", "1", "c", "2", "b", "3", "a"]),
        b":3\r\n",
    )
    .await;
    r.expect(&cmd(&["SORT", "z", "ALPHA"]), &bulks(&["a", "b", "c"]))
        .await;
    r.expect(
        &cmd(&["SORT", "z", "BY", "nosort"]),
        &bulks(&["c", "b", "a"]),
    )
    .await;
    r.expect(
        &cmd(&["SORT", "z", "BY", "nosort", "DESC", "LIMIT", "1", "5"]),
        &bulks(&["b", "c"]),
    )
    .await;
    r.expect(
        &cmd(&["SORT", "l", "BY", "nosort", "DESC", "LIMIT", "1", "2"]),
        &bulks(&["2", "10"]),
    )
    .await;
    r.expect(&cmd(&["SORT", "nokey"]), b"*0\r\n").await;
}

#[tokio::test]
async fn by_and_get_patterns() {
    let srv = TestServer::start();
    let mut r = srv.raw().await;
    r.expect(&cmd(&["RPUSH", "ids", "1", "2", "3"]), b":3\r\n")
        .await;
    r.expect(
        &cmd(&[
            "MSET", "w_1", "30", "w_2", "10", "w_3", "20", "n_1", "one", "n_2", "two",
        ]),
        b"+OK\r\n",
    )
    .await;
    r.expect(&cmd(&["HSET", "h_1", "f", "b"]), b":1\r\n").await;
    r.expect(&cmd(&["HSET", "h_2", "f", "c"]), b":1\r\n").await;
    r.expect(&cmd(&["HSET", "h_3", "f", "a"]), b":1\r\n").await;
    r.expect(
        &cmd(&["SORT", "ids", "BY", "w_*"]),
        &bulks(&["2", "3", "1"]),
    )
    .await;
    r.expect(
        &cmd(&["SORT", "ids", "BY", "w_*", "DESC"]),
        &bulks(&["1", "3", "2"]),
    )
    .await;
    r.expect(
        &cmd(&["SORT", "ids", "BY", "h_*->f", "ALPHA"]),
        &bulks(&["3", "1", "2"]),
    )
    .await;
    r.expect(
        &cmd(&[
            "SORT", "ids", "BY", "w_*", "GET", "#", "GET", "n_*", "GET", "h_*->f",
        ]),
        &bulks(&["2", "two", "c", "3", "<nil>", "a", "1", "one", "b"]),
    )
    .await;
    // Missing BY values weigh 0 (numeric) or sort first (ALPHA).
    r.expect(
        &cmd(&["SORT", "ids", "BY", "n_*", "ALPHA"]),
        &bulks(&["3", "1", "2"]),
    )
    .await;
    r.expect(
        &cmd(&["SORT", "ids", "BY", "missing_*"]),
        &bulks(&["1", "2", "3"]),
    )
    .await;
    // A GET pattern without '*' never matches; a hash pattern on a string neither.
    r.expect(
        &cmd(&["SORT", "ids", "GET", "fixed"]),
        &bulks(&["<nil>", "<nil>", "<nil>"]),
    )
    .await;
    r.expect(
        &cmd(&["SORT", "ids", "GET", "w_*->x", "LIMIT", "0", "1"]),
        &bulks(&["<nil>"]),
    )
    .await;
    // Constant BY: no sorting, list order kept.
    r.expect(
        &cmd(&["SORT", "ids", "BY", "const", "GET", "n_*"]),
        &bulks(&["one", "two", "<nil>"]),
    )
    .await;
    // Weights that are not numbers.
    r.expect(&cmd(&["SET", "w_2", "abc"]), b"+OK\r\n").await;
    r.expect(
        &cmd(&["SORT", "ids", "BY", "w_*"]),
        b"-ERR One or more scores can't be converted into double\r\n",
    )
    .await;
    r.expect(&cmd(&["RPUSH", "bad", "1", "x"]), b":2\r\n").await;
    r.expect(
        &cmd(&["SORT", "bad"]),
        b"-ERR One or more scores can't be converted into double\r\n",
    )
    .await;
    r.expect(&cmd(&["SORT", "bad", "ALPHA"]), &bulks(&["1", "x"]))
        .await;
}

#[tokio::test]
async fn store_errors_and_keys() {
    let srv = TestServer::start();
    let mut r = srv.raw().await;
    r.expect(&cmd(&["SADD", "s", "b", "a", "c"]), b":3\r\n")
        .await;
    r.expect(&cmd(&["SET", "dst", "old"]), b"+OK\r\n").await;
    r.expect(&cmd(&["EXPIRE", "dst", "100"]), b":1\r\n").await;
    r.expect(&cmd(&["SORT", "s", "ALPHA", "STORE", "dst"]), b":3\r\n")
        .await;
    r.expect(&cmd(&["TYPE", "dst"]), b"+list\r\n").await;
    r.expect(&cmd(&["TTL", "dst"]), b":-1\r\n").await;
    r.expect(
        &cmd(&["LRANGE", "dst", "0", "-1"]),
        &bulks(&["a", "b", "c"]),
    )
    .await;
    // A set stored unsorted (BY constant) is sorted alphabetically.
    r.expect(
        &cmd(&["SORT", "s", "BY", "nosort", "STORE", "dst"]),
        b":3\r\n",
    )
    .await;
    r.expect(
        &cmd(&["LRANGE", "dst", "0", "-1"]),
        &bulks(&["a", "b", "c"]),
    )
    .await;
    // GET values that are missing are stored as empty strings.
    r.expect(
        &cmd(&[
            "SORT", "s", "ALPHA", "GET", "#", "GET", "v_*", "STORE", "dst",
        ]),
        b":6\r\n",
    )
    .await;
    r.expect(
        &cmd(&["LRANGE", "dst", "0", "-1"]),
        &bulks(&["a", "", "b", "", "c", ""]),
    )
    .await;
    // Empty results delete the destination.
    r.expect(&cmd(&["SORT", "nokey", "STORE", "dst"]), b":0\r\n")
        .await;
    r.expect(&cmd(&["EXISTS", "dst"]), b":0\r\n").await;
    // Errors.
    r.expect(&cmd(&["SET", "str", "x"]), b"+OK\r\n").await;
    r.expect(
        &cmd(&["SORT", "str"]),
        b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
    )
    .await;
    r.expect(&cmd(&["SORT", "str", "FOO"]), b"-ERR syntax error\r\n")
        .await;
    r.expect(&cmd(&["SORT", "s", "LIMIT", "1"]), b"-ERR syntax error\r\n")
        .await;
    r.expect(
        &cmd(&["SORT", "s", "LIMIT", "a", "1"]),
        b"-ERR value is not an integer or out of range\r\n",
    )
    .await;
    r.expect(&cmd(&["SORT", "s", "BY"]), b"-ERR syntax error\r\n")
        .await;
    r.expect(
        &cmd(&["SORT_RO", "s", "STORE", "dst"]),
        b"-ERR syntax error\r\n",
    )
    .await;
    r.expect(
        &cmd(&["SORT"]),
        b"-ERR wrong number of arguments for 'sort' command\r\n",
    )
    .await;
    // Keys as COMMAND GETKEYS reports them.
    r.expect(
        &cmd(&[
            "COMMAND", "GETKEYS", "SORT", "src", "BY", "w_*", "LIMIT", "0", "1", "STORE", "a",
            "STORE", "b",
        ]),
        b"*2\r\n$3\r\nsrc\r\n$1\r\nb\r\n",
    )
    .await;
    r.expect(
        &cmd(&["COMMAND", "GETKEYS", "SORT_RO", "src", "GET", "x_*"]),
        b"*1\r\n$3\r\nsrc\r\n",
    )
    .await;
}

#[tokio::test]
async fn store_wakes_blocked_pop() {
    let srv = TestServer::start();
    let mut blocked = srv.raw().await;
    let mut r = srv.raw().await;
    blocked.send(&cmd(&["BLPOP", "dst", "5"])).await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    r.expect(&cmd(&["RPUSH", "src", "2", "1"]), b":2\r\n").await;
    r.expect(&cmd(&["SORT", "src", "STORE", "dst"]), b":2\r\n")
        .await;
    let got = blocked
        .read_exact_n(b"*2\r\n$3\r\ndst\r\n$1\r\n1\r\n".len())
        .await;
    assert_eq!(got, b"*2\r\n$3\r\ndst\r\n$1\r\n1\r\n");
    r.expect(&cmd(&["LRANGE", "dst", "0", "-1"]), &bulks(&["2"]))
        .await;
}

#[tokio::test]
async fn same_as_redis() {
    let srv = TestServer::start();
    let s = script(
        "
        RPUSH l 3 1 10 2 -1.5 1e2 0x10 inf -inf
        SORT l
        SORT l DESC
        SORT l ALPHA
        SORT l ALPHA DESC LIMIT 2 3
        SORT l LIMIT -1 3
        SORT l LIMIT 1 -10
        SORT l LIMIT 100 2
        SORT l LIMIT 0 0
        SORT l BY nosort
        SORT l BY nosort DESC
        SORT l BY nosort LIMIT 2 3
        SORT l BY nosort DESC LIMIT 2 3
        SORT l BY nosort DESC LIMIT 8 30
        SORT l BY nosort LIMIT 9 1
        RPUSH ids 1 2 3 4 5
        MSET w_1 5 w_2 4 w_3 4 w_4 1.5 n_1 a n_3 c n_5 e
        HSET h_1 f z g 1
        HSET h_2 f y g 2
        HSET h_3 f y
        HSET h_4 f x g 4
        SORT ids BY w_*
        SORT ids BY w_* DESC
        SORT ids BY w_* LIMIT 1 2
        SORT ids BY w_* GET # GET n_* GET h_*->f GET h_*->g
        SORT ids BY h_*->g GET h_*->g
        SORT ids BY h_*->f ALPHA GET #
        SORT ids BY h_*->f ALPHA DESC LIMIT 0 1
        SORT ids BY n_* ALPHA
        SORT ids BY w_*-> GET w_*->
        SORT ids GET n_* GET nope GET #
        SORT ids BY const GET n_*
        SORT ids BY const DESC GET n_* LIMIT 1 2
        SORT ids BY w_* STORE out
        LRANGE out 0 -1
        SORT ids BY w_* GET n_* STORE out
        LRANGE out 0 -1
        SORT ids LIMIT 10 1 STORE out
        EXISTS out
        SADD iset 5 3 9 1
        SORT iset BY nosort
        SORT iset BY nosort DESC
        SORT iset
        SORT iset DESC LIMIT 1 2
        SADD s banana apple cherry
        SORT s ALPHA
        SORT s ALPHA DESC
        SORT s
        SORT s BY nosort STORE out
        LRANGE out 0 -1
        ZADD z 3 a 1 b 2 c 2 d
        SORT z
        SORT z ALPHA
        SORT z BY nosort
        SORT z BY nosort DESC
        SORT z BY nosort LIMIT 1 2
        SORT z BY nosort DESC LIMIT 1 2
        SORT_RO z BY nosort DESC LIMIT 3 5
        SORT_RO z ALPHA GET #
        SORT_RO z BY w_* STORE x
        SET str 1
        SORT str
        SORT nokey
        SORT nokey STORE out
        SORT l LIMIT 1
        SORT l LIMIT x 1
        SORT l BY
        SORT l GET
        SORT l FOO
        SET w_2 notanumber
        SORT ids BY w_*
        SORT ids BY w_* ALPHA
        ",
    );
    same_replies(srv.addr.port(), &s).await;
    // RESP3: missing GET values are RESP3 nulls.
    let s = script(
        "
        FLUSHALL
        RPUSH ids 1 2 3
        MSET w_1 3 w_2 1 n_1 a
        SORT ids BY w_* GET # GET n_*
        SORT ids BY w_* ALPHA GET n_* STORE out
        LRANGE out 0 -1
        ",
    );
    same_replies_resp3(srv.addr.port(), &s).await;
}

#[tokio::test]
async fn same_as_redis_for_random_combinations() {
    use rand::{Rng, SeedableRng};
    let srv = TestServer::start();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5027);
    let mut text = String::new();
    for round in 0..20 {
        let n = rng.gen_range(0..40);
        let kind = ["RPUSH", "SADD", "ZADD"][round % 3];
        let key = format!("src{round}");
        let mut elems = Vec::new();
        for _ in 0..n {
            let e = if rng.gen_bool(0.5) {
                format!("{}", rng.gen_range(-1000..1000))
            } else {
                format!("{}.{}", rng.gen_range(-50..50), rng.gen_range(0..99))
            };
            elems.push(e);
        }
        // Unique elements (sets would merge duplicates anyway).
        elems.sort();
        elems.dedup();
        if elems.is_empty() {
            continue;
        }
        let mut line = format!("{kind} {key}");
        for (i, e) in elems.iter().enumerate() {
            if kind == "ZADD" {
                line.push_str(&format!(" {} {e}", rng.gen_range(0..5) + i));
            } else {
                line.push_str(&format!(" {e}"));
            }
        }
        text.push_str(&line);
        text.push('\n');
        // Unique numeric weights for most elements, unique string labels
        // for all (ALPHA BY ties would depend on the partial quicksort).
        for (i, e) in elems.iter().enumerate() {
            if rng.gen_bool(0.8) {
                text.push_str(&format!(
                    "SET w{round}_{e} {}.{i}\n",
                    rng.gen_range(-100..100)
                ));
            }
            text.push_str(&format!(
                "HSET h{round}_{e} lbl l{}_{i} num {}\n",
                rng.gen_range(0..1000),
                rng.gen_range(-9..9)
            ));
        }
        for _ in 0..15 {
            let mut c = format!("SORT {key}");
            match rng.gen_range(0..4) {
                0 => c.push_str(&format!(" BY w{round}_*")),
                1 => c.push_str(&format!(" BY h{round}_*->lbl ALPHA")),
                2 => c.push_str(&format!(" BY h{round}_*->num")),
                _ => {}
            }
            if kind != "SADD" && rng.gen_bool(0.2) {
                c = format!("SORT {key} BY nosort");
            }
            if rng.gen_bool(0.5) {
                c.push_str(&format!(
                    " LIMIT {} {}",
                    rng.gen_range(-2..45),
                    rng.gen_range(-2..45)
                ));
            }
            if rng.gen_bool(0.5) {
                c.push_str(" DESC");
            }
            for _ in 0..rng.gen_range(0..3) {
                c.push_str(
                    [
                        " GET #",
                        " GET w{r}_*",
                        " GET h{r}_*->lbl",
                        " GET h{r}_*->nope",
                    ][rng.gen_range(0..4)]
                    .replace("{r}", &round.to_string())
                    .as_str(),
                );
            }
            text.push_str(&c);
            text.push('\n');
            if rng.gen_bool(0.3) {
                text.push_str(&format!("{c} STORE dst{round}\nLRANGE dst{round} 0 -1\n"));
            }
        }
    }
    let s = script(&text);
    same_replies(srv.addr.port(), &s).await;
}
