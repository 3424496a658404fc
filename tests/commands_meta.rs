//! Keeps the command table honest: every command the server lists in COMMAND
//! exists in Redis 7.0 with the same arity, the same flags, the same ACL
//! categories and the same legacy key range (first, last, step)
//! (tests/data/redis-7.0-commands.tsv holds those facts), names
//! are unique, and write commands declare their keys.

mod common;
use std::collections::{BTreeSet, HashMap};

use common::TestServer;
use redis::Value;

struct Info {
    name: String,
    arity: i64,
    flags: BTreeSet<String>,
    first_key: i64,
    /// (first, last, step).
    range: (i64, i64, i64),
    acl: BTreeSet<String>,
}

/// Redis's facts about one command: arity, flags, ACL categories, range.
type Facts = (i64, BTreeSet<String>, BTreeSet<String>, (i64, i64, i64));

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Okay => "OK".into(),
        other => panic!("expected a string, got {other:?}"),
    }
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(n) => *n,
        other => panic!("expected an integer, got {other:?}"),
    }
}

fn list(v: &Value) -> &[Value] {
    match v {
        Value::Array(a) | Value::Set(a) => a,
        other => panic!("expected an array, got {other:?}"),
    }
}

fn collect(v: &Value, out: &mut Vec<Info>) {
    let f = list(v);
    out.push(Info {
        name: text(&f[0]),
        arity: int(&f[1]),
        flags: list(&f[2]).iter().map(text).collect(),
        first_key: int(&f[3]),
        range: (int(&f[3]), int(&f[4]), int(&f[5])),
        acl: list(&f[6])
            .iter()
            .map(|c| text(c).trim_start_matches('@').to_string())
            .collect(),
    });
    if let Some(subs) = f.get(9) {
        for s in list(subs) {
            collect(s, out);
        }
    }
}

fn redis_table() -> HashMap<String, Facts> {
    let data = include_str!("data/redis-7.0-commands.tsv");
    data.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            let set = |s: &str| -> BTreeSet<String> {
                s.split(',')
                    .filter(|x| !x.is_empty())
                    .map(String::from)
                    .collect()
            };
            let r: Vec<i64> = c[4]
                .split(',')
                .map(|n| n.parse().expect("key range"))
                .collect();
            (
                c[0].to_string(),
                (
                    c[1].parse().expect("arity"),
                    set(c[2]),
                    set(c[3]),
                    (r[0], r[1], r[2]),
                ),
            )
        })
        .collect()
}

#[tokio::test]
async fn every_listed_command_matches_redis_7_0() {
    let srv = TestServer::start();
    let mut c = srv.conn().await;
    let all: Value = redis::cmd("COMMAND").query_async(&mut c).await.unwrap();
    let mut infos = Vec::new();
    for v in list(&all) {
        collect(v, &mut infos);
    }
    assert!(infos.len() > 50, "only {} commands listed", infos.len());
    let count: i64 = redis::cmd("COMMAND")
        .arg("COUNT")
        .query_async(&mut c)
        .await
        .unwrap();
    let top_level = infos.iter().filter(|i| !i.name.contains('|')).count();
    assert_eq!(count as usize, top_level);

    let reference = redis_table();
    let mut seen = BTreeSet::new();
    let mut problems = Vec::new();
    for i in &infos {
        assert!(seen.insert(i.name.clone()), "duplicate command {}", i.name);
        if EXTENSIONS.contains(&i.name.as_str()) {
            continue;
        }
        let Some((arity, flags, acl, range)) = reference.get(&i.name) else {
            problems.push(format!("{}: not a Redis 7.0 command", i.name));
            continue;
        };
        if i.arity != *arity {
            problems.push(format!("{}: arity {} (Redis {})", i.name, i.arity, arity));
        }
        // movablekeys is derived from key specs, not declared in Redis's
        // metadata: compare the declared flags only.
        let mut ours = i.flags.clone();
        ours.remove("movablekeys");
        if &ours != flags {
            problems.push(format!("{}: flags {:?} (Redis {:?})", i.name, ours, flags));
        }
        if &i.acl != acl {
            problems.push(format!("{}: ACL {:?} (Redis {:?})", i.name, i.acl, acl));
        }
        if i.range != *range {
            problems.push(format!(
                "{}: key range {:?} (Redis {:?})",
                i.name, i.range, range
            ));
        }
        if i.flags.contains("write") && !i.name.contains('|') {
            assert!(
                i.first_key > 0
                    || i.flags.contains("movablekeys")
                    || NO_KEY_WRITES.contains(&i.name.as_str()),
                "write command {} declares no keys",
                i.name
            );
        }
    }
    assert!(
        problems.is_empty(),
        "table differs from Redis 7.0:\n{}",
        problems.join("\n")
    );
}

/// Commands Redis 7.0 lacks that we serve on purpose: CLIENT SETINFO (7.2)
/// is sent on connect by current redis-py and node-redis; AZURE rehearses
/// Azure's maintenance and reads its metrics.
const EXTENSIONS: &[&str] = &[
    "client|setinfo",
    "azure",
    "azure|maintenance",
    "azure|reboot",
    "azure|metrics",
    "azure|status",
    "azure|help",
];

/// Write commands that, as in Redis, take no key arguments.
const NO_KEY_WRITES: &[&str] = &[
    "flushall",
    "flushdb",
    "swapdb",
    "pfselftest",
    "publish",
    "spublish",
];

#[tokio::test]
async fn getkeys_follows_the_key_specs() {
    let srv = TestServer::start();
    let mut c = srv.conn().await;
    let cases: &[(&[&str], &[&str])] = &[
        (&["GET", "a"], &["a"]),
        (&["MSET", "a", "1", "b", "2"], &["a", "b"]),
        (&["LCS", "x", "y"], &["x", "y"]),
        (&["RENAME", "x", "y"], &["x", "y"]),
        (&["WATCH", "p", "q", "r"], &["p", "q", "r"]),
    ];
    for (cmd, want) in cases {
        let keys: Vec<String> = redis::cmd("COMMAND")
            .arg("GETKEYS")
            .arg(*cmd)
            .query_async(&mut c)
            .await
            .unwrap();
        assert_eq!(&keys, want, "GETKEYS {cmd:?}");
    }
    let err = redis::cmd("COMMAND")
        .arg("GETKEYS")
        .arg("PING")
        .arg("hello")
        .query_async::<Vec<String>>(&mut c)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("The command has no key arguments"),
        "{err}"
    );
}

/// (command line, [(key, flags)]) for COMMAND GETKEYSANDFLAGS.
type KeysAndFlags<'a> = (&'a [&'a str], &'a [(&'a str, &'a [&'a str])]);

/// COMMAND GETKEYSANDFLAGS reports Redis's key-spec flags, including the
/// commands whose flags depend on their arguments (SET with or without
/// GET, BITFIELD reading or writing, SORT ... STORE).
#[tokio::test]
async fn command_getkeysandflags_reports_key_spec_flags() {
    let srv = TestServer::start();
    let mut c = srv.conn().await;
    let cases: [KeysAndFlags; 7] = [
        (&["set", "k1", "v1"], &[("k1", &["OW", "update"])]),
        (
            &["set", "k1", "v1", "GET"],
            &[("k1", &["RW", "access", "update"])],
        ),
        (
            &["mset", "k1", "v1", "k2", "v2"],
            &[("k1", &["OW", "update"]), ("k2", &["OW", "update"])],
        ),
        (
            &["LMOVE", "k1", "k2", "left", "right"],
            &[
                ("k1", &["RW", "access", "delete"]),
                ("k2", &["RW", "insert"]),
            ],
        ),
        (
            &["sort", "k1", "store", "k2"],
            &[("k1", &["RO", "access"]), ("k2", &["OW", "update"])],
        ),
        (
            &["bitfield", "b", "get", "u8", "0"],
            &[("b", &["RO", "access"])],
        ),
        (
            &["bitfield", "b", "incrby", "u8", "0", "1"],
            &[("b", &["RW", "access", "update"])],
        ),
    ];
    for (cmd, want) in cases {
        let mut q = redis::cmd("COMMAND");
        q.arg("GETKEYSANDFLAGS").arg(cmd);
        let got: Vec<(String, Vec<String>)> = q.query_async(&mut c).await.unwrap();
        let want: Vec<(String, Vec<String>)> = want
            .iter()
            .map(|(k, f)| (k.to_string(), f.iter().map(|s| s.to_string()).collect()))
            .collect();
        assert_eq!(got, want, "{cmd:?}");
    }
}
