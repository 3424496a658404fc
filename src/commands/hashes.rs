//! Hash commands: HSET HSETNX HGET HMGET HMSET HDEL HLEN HSTRLEN HEXISTS
//! HKEYS HVALS HGETALL HINCRBY HINCRBYFLOAT HSCAN HRANDFIELD.
//!
//! Also home of the SCAN-family option parser shared with SSCAN.

use bytes::Bytes;
use rand::Rng;

use crate::commands::ctx::Ctx;
use crate::commands::spec::{cmd, Acl, CmdFlags as F, CommandSpec};
use crate::config::notify as N;
use crate::protocol::args::{eq_ic, int_arg, parse_cursor, Args};
use crate::protocol::codec::parse_i64;
use crate::protocol::reply::{Agg, Bulks};
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::storage::hash::{Hash, HashLimits};
use crate::storage::{Obj, ValueRef};
use crate::util::glob::glob_match;
use crate::util::ldouble::{self, IncrError};

const H: Acl = Acl::HASH;
const WF: F = F::WRITE.union(F::DENYOOM).union(F::FAST);
const RF: F = F::READONLY.union(F::FAST);
const R: F = F::READONLY;

pub const SPECS: &[CommandSpec] = &[
    cmd("hset", -4, WF, hset).keys(1, 1, 1).acl(H).doc("hash", "2.0.0", "Creates or modifies the value of a field in a hash."),
    cmd("hsetnx", 4, WF, hsetnx).keys(1, 1, 1).acl(H).doc("hash", "2.0.0", "Sets the value of a field in a hash only when the field doesn't exist."),
    cmd("hmset", -4, WF, hmset).keys(1, 1, 1).acl(H).doc("hash", "2.0.0", "Sets the values of multiple fields."),
    cmd("hget", 3, RF, hget).keys(1, 1, 1).acl(H).doc("hash", "2.0.0", "Returns the value of a field in a hash."),
    cmd("hmget", -3, RF, hmget).keys(1, 1, 1).acl(H).doc("hash", "2.0.0", "Returns the values of all fields in a hash."),
    cmd("hdel", -3, F::WRITE.union(F::FAST), hdel).keys(1, 1, 1).acl(H).doc("hash", "2.0.0", "Deletes one or more fields and their values from a hash. Deletes the hash if no fields remain."),
    cmd("hlen", 2, RF, hlen).keys(1, 1, 1).acl(H).doc("hash", "2.0.0", "Returns the number of fields in a hash."),
    cmd("hstrlen", 3, RF, hstrlen).keys(1, 1, 1).acl(H).doc("hash", "3.2.0", "Returns the length of the value of a field."),
    cmd("hexists", 3, RF, hexists).keys(1, 1, 1).acl(H).doc("hash", "2.0.0", "Determines whether a field exists in a hash."),
    cmd("hkeys", 2, R, hkeys).keys(1, 1, 1).acl(H).doc("hash", "2.0.0", "Returns all fields in a hash."),
    cmd("hvals", 2, R, hvals).keys(1, 1, 1).acl(H).doc("hash", "2.0.0", "Returns all values in a hash."),
    cmd("hgetall", 2, R, hgetall).keys(1, 1, 1).acl(H).doc("hash", "2.0.0", "Returns all fields and values in a hash."),
    cmd("hincrby", 4, WF, hincrby).keys(1, 1, 1).acl(H).doc("hash", "2.0.0", "Increments the integer value of a field in a hash by a number. Uses 0 as initial value if the field doesn't exist."),
    cmd("hincrbyfloat", 4, WF, hincrbyfloat).keys(1, 1, 1).acl(H).doc("hash", "2.6.0", "Increments the floating point value of a field by a number. Uses 0 as initial value if the field doesn't exist."),
    cmd("hscan", -3, R, hscan).keys(1, 1, 1).acl(H).doc("hash", "2.8.0", "Iterates over fields and values of a hash."),
    cmd("hrandfield", -2, R, hrandfield).keys(1, 1, 1).acl(H).doc("hash", "6.2.0", "Returns one or more random fields from a hash."),
];

fn limits(ctx: &Ctx<'_>) -> HashLimits {
    HashLimits {
        max_entries: ctx.srv.config.hash_max_listpack_entries(),
        max_value: ctx.srv.config.hash_max_listpack_value(),
    }
}

/// The hash at `key` for reading (counts a hit or miss): `None` if missing,
/// WRONGTYPE if another type.
fn read<'s>(ctx: &'s mut Ctx<'_>, key: &[u8]) -> CmdResult<Option<&'s Hash>> {
    let now = ctx.now;
    match ctx.shard(key)?.get(key, now) {
        None => Ok(None),
        Some(ValueRef::Obj(Obj::Hash(h))) => Ok(Some(h)),
        Some(_) => Err(CmdError::WRONG_TYPE),
    }
}

/// The hash at `key` for writing, created empty if missing (the caller
/// must leave it non-empty).
fn write<'s>(ctx: &'s mut Ctx<'_>, key: &[u8]) -> CmdResult<&'s mut Hash> {
    let now = ctx.now;
    match ctx
        .shard(key)?
        .obj_or_insert(key, now, || Obj::Hash(Hash::default()))
    {
        Some(Obj::Hash(h)) => Ok(h),
        _ => Err(CmdError::WRONG_TYPE),
    }
}

/// Fails with WRONGTYPE if `key` holds a non-hash (without creating it).
fn check_type(ctx: &mut Ctx<'_>, key: &[u8]) -> CmdResult<bool> {
    let now = ctx.now;
    match ctx.shard(key)?.peek(key, now) {
        None => Ok(false),
        Some(ValueRef::Obj(Obj::Hash(_))) => Ok(true),
        Some(_) => Err(CmdError::WRONG_TYPE),
    }
}

fn hset_generic(ctx: &mut Ctx<'_>, argv: &[Bytes], name: &str) -> CmdResult<i64> {
    if argv.len() % 2 == 1 {
        return Err(CmdError::arity(name));
    }
    let lim = limits(ctx);
    let h = write(ctx, &argv[1])?;
    h.prepare(argv[2..].iter().map(|a| a.len()), lim);
    let mut created = 0;
    for fv in argv[2..].chunks(2) {
        if h.set(&fv[0], &fv[1], lim) {
            created += 1;
        }
    }
    ctx.changed((argv.len() as u64 - 2) / 2);
    ctx.notify(N::HASH, "hset", &argv[1]);
    Ok(created)
}

/// ```text
/// HSET key field value [field value ...]
/// ```
fn hset(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(hset_generic(ctx, argv, "hset")?))
}

fn hmset(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    hset_generic(ctx, argv, "hmset")?;
    Ok(Reply::OK)
}

fn hsetnx(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    if check_type(ctx, &argv[1])? && read_peek_contains(ctx, &argv[1], &argv[2])? {
        return Ok(Reply::Int(0));
    }
    let lim = limits(ctx);
    write(ctx, &argv[1])?.set(&argv[2], &argv[3], lim);
    ctx.changed(1);
    ctx.notify(N::HASH, "hset", &argv[1]);
    Ok(Reply::Int(1))
}

fn read_peek_contains(ctx: &mut Ctx<'_>, key: &[u8], field: &[u8]) -> CmdResult<bool> {
    let now = ctx.now;
    Ok(match ctx.shard(key)?.peek(key, now) {
        Some(ValueRef::Obj(Obj::Hash(h))) => h.contains(field),
        _ => false,
    })
}

fn hget(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    Ok(match read(ctx, &argv[1])?.and_then(|h| h.get(&argv[2])) {
        Some(v) => Reply::bulk_copy(v),
        None => Reply::Null,
    })
}

fn hmget(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let resp = ctx.raw_resp();
    let h = read(ctx, &argv[1])?;
    let mut out = Bulks::new(resp, Agg::Array, argv.len() - 2);
    for f in &argv[2..] {
        match h.and_then(|h| h.get(f)) {
            Some(v) => out.push(v),
            None => out.push_null(),
        }
    }
    Ok(out.finish())
}

/// ```text
/// HDEL key field [field ...]
/// ```
fn hdel(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    check_type(ctx, key)?;
    // Nothing to delete: no write, so WATCHers of the key are not disturbed.
    let now = ctx.now;
    let any = match ctx.shard(key)?.peek(key, now) {
        Some(ValueRef::Obj(Obj::Hash(h))) => argv[2..].iter().any(|f| h.contains(f)),
        _ => false,
    };
    if !any {
        return Ok(Reply::Int(0));
    }
    let now = ctx.now;
    let Some(Obj::Hash(h)) = ctx.shard(key)?.obj_mut(key, now) else {
        return Err(CmdError::WRONG_TYPE);
    };
    let mut deleted = 0;
    for f in &argv[2..] {
        if h.remove(f) {
            deleted += 1;
            if h.is_empty() {
                break;
            }
        }
    }
    let emptied = h.is_empty();
    if emptied {
        ctx.shard(key)?.delete(key, now);
    }
    ctx.changed(deleted as u64);
    ctx.notify(N::HASH, "hdel", key);
    if emptied {
        ctx.notify(N::GENERIC, "del", key);
    }
    Ok(Reply::Int(deleted))
}

fn hlen(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(
        read(ctx, &argv[1])?.map_or(0, |h| h.len()) as i64
    ))
}

fn hstrlen(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let h = read(ctx, &argv[1])?;
    Ok(Reply::Int(
        h.and_then(|h| h.get(&argv[2])).map_or(0, |v| v.len()) as i64,
    ))
}

fn hexists(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let h = read(ctx, &argv[1])?;
    Ok(Reply::Int(h.is_some_and(|h| h.contains(&argv[2])) as i64))
}

/// HKEYS, HVALS and HGETALL: the fields, the values, or both in turn.
fn hash_listing(ctx: &mut Ctx<'_>, key: &[u8], fields: bool, values: bool) -> CmdResult {
    let resp = ctx.raw_resp();
    let agg = if fields && values {
        Agg::Map
    } else {
        Agg::Array
    };
    let h = read(ctx, key)?;
    let per = fields as usize + values as usize;
    let mut out = Bulks::new(resp, agg, h.map_or(0, |h| h.len() * per));
    for (f, v) in h.iter().flat_map(|h| h.iter()) {
        if fields {
            out.push(f);
        }
        if values {
            out.push(v);
        }
    }
    Ok(out.finish())
}

fn hkeys(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    hash_listing(ctx, &argv[1], true, false)
}

fn hvals(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    hash_listing(ctx, &argv[1], false, true)
}

fn hgetall(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    hash_listing(ctx, &argv[1], true, true)
}

/// ```text
/// HINCRBY key field increment
/// ```
fn hincrby(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let incr = int_arg(&argv[3])?;
    // Errors are decided before writing, so a failed increment leaves the
    // key untouched (no WATCH invalidation, no empty hash).
    let cur = match peek_field(ctx, &argv[1], &argv[2])? {
        None => 0,
        Some(v) => parse_i64(&v).ok_or_else(|| CmdError::err("hash value is not an integer"))?,
    };
    let n = cur.checked_add(incr).ok_or(CmdError::OVERFLOW)?;
    let lim = limits(ctx);
    write(ctx, &argv[1])?.set(&argv[2], itoa::Buffer::new().format(n).as_bytes(), lim);
    ctx.changed(1);
    ctx.notify(N::HASH, "hincrby", &argv[1]);
    Ok(Reply::Int(n))
}

/// The current value of `field` (without touching statistics), WRONGTYPE
/// if `key` is not a hash.
fn peek_field(ctx: &mut Ctx<'_>, key: &[u8], field: &[u8]) -> CmdResult<Option<Vec<u8>>> {
    let now = ctx.now;
    match ctx.shard(key)?.peek(key, now) {
        None => Ok(None),
        Some(ValueRef::Obj(Obj::Hash(h))) => Ok(h.get(field).map(|v| v.to_vec())),
        Some(_) => Err(CmdError::WRONG_TYPE),
    }
}

/// ```text
/// HINCRBYFLOAT key field increment
/// ```
fn hincrbyfloat(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    // Redis computes in C long double (see util/ldouble.rs).
    match ldouble::is_finite(&argv[3]) {
        None => return Err(CmdError::NOT_FLOAT),
        Some(false) => return Err(CmdError::err("value is NaN or Infinity")),
        Some(true) => {}
    }
    let cur = peek_field(ctx, &argv[1], &argv[2])?;
    let s = match ldouble::incr(cur.as_deref(), &argv[3]) {
        Ok(s) => String::from_utf8_lossy(&s).into_owned(),
        Err(IncrError::CurrentNotFloat) => return Err(CmdError::err("hash value is not a float")),
        Err(IncrError::IncrNotFloat) => return Err(CmdError::NOT_FLOAT),
        Err(IncrError::NanOrInf) => return Err(CmdError::NAN_OR_INF),
    };
    let lim = limits(ctx);
    write(ctx, &argv[1])?.set(&argv[2], s.as_bytes(), lim);
    ctx.changed(1);
    ctx.notify(N::HASH, "hincrbyfloat", &argv[1]);
    // Replicated as the value it set (as Redis 7).
    if ctx.propagating() {
        ctx.propagate_as(vec![
            Bytes::from_static(b"HSET"),
            argv[1].clone(),
            argv[2].clone(),
            Bytes::from(s.clone()),
        ]);
    }
    Ok(Reply::bulk(Bytes::from(s)))
}

/// HSCAN/SSCAN/ZSCAN options: `[MATCH pattern] [COUNT count]`.
pub(crate) struct ScanOpts {
    /// `None` for no filter (also for the pattern `*`).
    pub pattern: Option<Bytes>,
    pub count: usize,
}

impl ScanOpts {
    pub(crate) fn parse(argv: &[Bytes], start: usize) -> CmdResult<ScanOpts> {
        let mut o = ScanOpts {
            pattern: None,
            count: 10,
        };
        let mut a = Args::new(argv, start);
        while let Some(opt) = a.next_opt() {
            if eq_ic(opt, "count") && a.remaining() > 0 {
                let n = a.next_i64()?;
                if n < 1 {
                    return Err(CmdError::SYNTAX);
                }
                o.count = n as usize;
            } else if eq_ic(opt, "match") && a.remaining() > 0 {
                let p = a.next_arg()?;
                o.pattern = (&p[..] != b"*").then(|| p.clone());
            } else {
                return Err(CmdError::SYNTAX);
            }
        }
        Ok(o)
    }

    pub(crate) fn matches(&self, s: &[u8]) -> bool {
        self.pattern
            .as_ref()
            .is_none_or(|p| glob_match(p, s, false))
    }
}

/// The `[cursor, [elements...]]` reply of the SCAN family.
pub(crate) fn scan_reply(cursor: u64, items: Vec<Reply>) -> Reply {
    Reply::Array(vec![
        Reply::bulk(Bytes::from(cursor.to_string())),
        Reply::Array(items),
    ])
}

/// ```text
/// HSCAN key cursor [MATCH pattern] [COUNT count]
/// ```
fn hscan(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let cursor = parse_cursor(&argv[2])?;
    let Some(h) = read(ctx, &argv[1])? else {
        return Ok(scan_reply(0, Vec::new()));
    };
    let opts = ScanOpts::parse(argv, 3)?;
    let mut items = Vec::new();
    let next = h.scan(cursor, opts.count, |f, v| {
        if opts.matches(f) {
            items.push(Reply::bulk_copy(f));
            items.push(Reply::bulk_copy(v));
        }
    });
    Ok(scan_reply(next, items))
}

/// One HRANDFIELD element: the field, or (field, value) as a pair in
/// RESP3 and two flat elements in RESP2.
fn push_field(out: &mut Vec<Reply>, f: &[u8], v: &[u8], withvalues: bool, resp3: bool) {
    if !withvalues {
        out.push(Reply::bulk_copy(f));
    } else if resp3 {
        out.push(Reply::Array(vec![Reply::bulk_copy(f), Reply::bulk_copy(v)]));
    } else {
        out.push(Reply::bulk_copy(f));
        out.push(Reply::bulk_copy(v));
    }
}

/// ```text
/// HRANDFIELD key [count [WITHVALUES]]
/// ```
fn hrandfield(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let resp3 = ctx.client.resp >= 3;
    if argv.len() == 2 {
        let Some(h) = read(ctx, &argv[1])? else {
            return Ok(Reply::Null);
        };
        let ix = h.indexed();
        let i = rand::thread_rng().gen_range(0..ix.len().max(1));
        return Ok(Reply::bulk_copy(ix.get(i).0));
    }
    let l = int_arg(&argv[2])?;
    if l == i64::MIN {
        return Err(CmdError::err(format!(
            "value is out of range, value must between {} and {}",
            -i64::MAX,
            i64::MAX
        )));
    }
    let withvalues = match argv.len() {
        3 => false,
        4 if eq_ic(&argv[3], "withvalues") => true,
        _ => return Err(CmdError::SYNTAX),
    };
    if withvalues && !(-i64::MAX / 2..=i64::MAX / 2).contains(&l) {
        return Err(CmdError::err("value is out of range"));
    }
    // Each pick is at least "$0\r\n\r\n" (twice WITHVALUES).
    let each = if withvalues { 12 } else { 6 };
    if l < 0 && ctx.reply_overflows(&argv[1], "hash", l.unsigned_abs(), each)? {
        return Ok(Reply::Null);
    }
    let Some(h) = read(ctx, &argv[1])? else {
        return Ok(Reply::Array(Vec::new()));
    };
    let ix = h.indexed();
    let size = ix.len();
    let mut out = Vec::new();
    let mut rng = rand::thread_rng();
    if l == 0 || size == 0 {
        return Ok(Reply::Array(out));
    }
    if l < 0 {
        // Repeats allowed: independent uniform picks.
        let count = l.unsigned_abs() as usize;

        out.reserve(count.min(1 << 20));
        for _ in 0..count {
            let (f, v) = ix.get(rng.gen_range(0..size));
            push_field(&mut out, f, v, withvalues, resp3);
        }
    } else if l as usize >= size {
        for i in 0..size {
            let (f, v) = ix.get(i);
            push_field(&mut out, f, v, withvalues, resp3);
        }
    } else {
        // Distinct picks: a uniformly random subset in random order.
        for i in rand::seq::index::sample(&mut rng, size, l as usize) {
            let (f, v) = ix.get(i);
            push_field(&mut out, f, v, withvalues, resp3);
        }
    }
    Ok(Reply::Array(out))
}
