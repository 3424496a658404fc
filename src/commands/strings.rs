//! String commands: GET SET (EX PX EXAT PXAT NX XX KEEPTTL GET) SETNX SETEX
//! PSETEX MGET MSET MSETNX GETSET GETDEL GETEX APPEND STRLEN GETRANGE SUBSTR
//! SETRANGE INCR DECR INCRBY DECRBY INCRBYFLOAT LCS.

use bytes::Bytes;

use crate::commands::ctx::Ctx;
use crate::commands::spec::{cmd, Acl, CmdFlags as F, CommandSpec};
use crate::config::notify as N;
use crate::protocol::args::{eq_ic, int_arg};
use crate::protocol::codec::parse_i64;
use crate::protocol::reply::{Agg, Bulks};
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::storage::value::StrRef;
use crate::storage::{Ttl, Value, ValueRef};
use crate::util::ldouble::{self, IncrError};

const S: Acl = Acl::STRING;
const W: F = F::WRITE.union(F::DENYOOM);
const WF: F = W.union(F::FAST);
const RF: F = F::READONLY.union(F::FAST);

pub const SPECS: &[CommandSpec] = &[
    cmd("get", 2, RF, get).keys(1, 1, 1).acl(S).doc("string", "1.0.0", "Returns the string value of a key."),
    cmd("set", -3, W, set).keys(1, 1, 1).acl(S).doc("string", "1.0.0", "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist."),
    cmd("setnx", 3, WF, setnx).keys(1, 1, 1).acl(S).doc("string", "1.0.0", "Set the string value of a key only when the key doesn't exist."),
    cmd("setex", 4, W, setex).keys(1, 1, 1).acl(S).doc("string", "2.0.0", "Sets the string value and expiration time of a key. Creates the key if it doesn't exist."),
    cmd("psetex", 4, W, psetex).keys(1, 1, 1).acl(S).doc("string", "2.6.0", "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist."),
    cmd("mget", -2, RF, mget).keys(1, -1, 1).acl(S).doc("string", "1.0.0", "Atomically returns the string values of one or more keys."),
    cmd("mset", -3, W, mset).keys(1, -1, 2).acl(S).doc("string", "1.0.1", "Atomically creates or modifies the string values of one or more keys."),
    cmd("msetnx", -3, W, msetnx).keys(1, -1, 2).acl(S).doc("string", "1.0.1", "Atomically modifies the string values of one or more keys only when all keys don't exist."),
    cmd("getset", 3, WF, getset).keys(1, 1, 1).acl(S).doc("string", "1.0.0", "Returns the previous string value of a key after setting it to a new value."),
    cmd("getdel", 2, F::WRITE.union(F::FAST), getdel).keys(1, 1, 1).acl(S).doc("string", "6.2.0", "Returns the string value of a key after deleting the key."),
    cmd("getex", -2, F::WRITE.union(F::FAST), getex).keys(1, 1, 1).acl(S).doc("string", "6.2.0", "Returns the string value of a key after setting its expiration time."),
    cmd("append", 3, WF, append).keys(1, 1, 1).acl(S).doc("string", "2.0.0", "Appends a string to the value of a key. Creates the key if it doesn't exist."),
    cmd("strlen", 2, RF, strlen).keys(1, 1, 1).acl(S).doc("string", "2.2.0", "Returns the length of a string value."),
    cmd("getrange", 4, F::READONLY, getrange).keys(1, 1, 1).acl(S).doc("string", "2.4.0", "Returns a substring of the string stored at a key."),
    cmd("substr", 4, F::READONLY, getrange).keys(1, 1, 1).acl(S).doc("string", "1.0.0", "Returns a substring from a string value."),
    cmd("setrange", 4, W, setrange).keys(1, 1, 1).acl(S).doc("string", "2.2.0", "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist."),
    cmd("incr", 2, WF, incr).keys(1, 1, 1).acl(S).doc("string", "1.0.0", "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist."),
    cmd("decr", 2, WF, decr).keys(1, 1, 1).acl(S).doc("string", "1.0.0", "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist."),
    cmd("incrby", 3, WF, incrby).keys(1, 1, 1).acl(S).doc("string", "1.0.0", "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist."),
    cmd("decrby", 3, WF, decrby).keys(1, 1, 1).acl(S).doc("string", "1.0.0", "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist."),
    cmd("lcs", -3, F::READONLY, lcs).keys(1, 2, 1).acl(S).doc("string", "7.0.0", "Finds the longest common substring."),
    cmd("incrbyfloat", 3, WF, incrbyfloat).keys(1, 1, 1).acl(S).doc("string", "2.6.0", "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist."),
];

/// Reads the string at `key`: `Ok(None)` if missing, WRONGTYPE if another type.
fn read_str(ctx: &mut Ctx<'_>, key: &[u8]) -> CmdResult<Option<Bytes>> {
    let now = ctx.now;
    match ctx.shard(key)?.get(key, now) {
        None => Ok(None),
        Some(v) => v
            .as_string()
            .map(|s| Some(s.to_bytes()))
            .ok_or(CmdError::WRONG_TYPE),
    }
}

/// ```text
/// GET key
/// ```
fn get(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    Ok(Reply::opt_bulk(read_str(ctx, &argv[1])?))
}

/// Expiry options shared by SET and GETEX.
#[derive(Clone, Copy, PartialEq)]
enum ExpOpt {
    None,
    Keep,
    Persist,
    At(u64),
}

/// Turns an EX/PX/EXAT/PXAT argument into an absolute unix-ms deadline with
/// Redis's validation (`invalid expire time in '<cmd>' command`).
fn deadline(now: u64, raw: &[u8], unit_ms: bool, absolute: bool, cmd: &str) -> CmdResult<u64> {
    let n = int_arg(raw)?;
    if n <= 0 || (!unit_ms && n > i64::MAX / 1000) {
        return Err(CmdError::invalid_expire(cmd));
    }
    let ms = if unit_ms { n } else { n * 1000 };
    if absolute {
        return Ok(ms as u64);
    }
    ms.checked_add(now as i64)
        .map(|t| t as u64)
        .ok_or_else(|| CmdError::invalid_expire(cmd))
}

/// Which expiry option SET or GETEX was given, before its number is read.
#[derive(Clone, Copy, PartialEq)]
enum ExpKind {
    None,
    Keep,
    Persist,
    Ex,
    Px,
    ExAt,
    PxAt,
}

/// SET's and GETEX's options as Redis's `parseExtendedStringArgumentsOrReply`
/// reads them: every option first, the time's number afterwards (so `SET k v
/// PX EX EXAT 1` is a syntax error, not a bad integer). An expiry option
/// excludes the others but may repeat, the last one winning, as in Redis.
struct ExpOptions<'a> {
    nx: bool,
    xx: bool,
    get: bool,
    kind: ExpKind,
    raw: &'a [u8],
}

fn exp_options(argv: &[Bytes], start: usize, is_set: bool) -> CmdResult<ExpOptions<'_>> {
    let mut o = ExpOptions {
        nx: false,
        xx: false,
        get: false,
        kind: ExpKind::None,
        raw: &[],
    };
    let mut j = start;
    while j < argv.len() {
        let opt = &argv[j];
        let time_kind = [
            ("ex", ExpKind::Ex),
            ("px", ExpKind::Px),
            ("exat", ExpKind::ExAt),
            ("pxat", ExpKind::PxAt),
        ]
        .into_iter()
        .find(|(name, _)| eq_ic(opt, name))
        .map(|(_, k)| k);
        if is_set && eq_ic(opt, "nx") && !o.xx {
            o.nx = true;
        } else if is_set && eq_ic(opt, "xx") && !o.nx {
            o.xx = true;
        } else if is_set && eq_ic(opt, "get") {
            o.get = true;
        } else if is_set && eq_ic(opt, "keepttl") && matches!(o.kind, ExpKind::None | ExpKind::Keep)
        {
            o.kind = ExpKind::Keep;
        } else if !is_set
            && eq_ic(opt, "persist")
            && matches!(o.kind, ExpKind::None | ExpKind::Persist)
        {
            o.kind = ExpKind::Persist;
        } else if let (Some(k), Some(raw)) = (time_kind, argv.get(j + 1)) {
            if o.kind != ExpKind::None && o.kind != k {
                return Err(CmdError::SYNTAX);
            }
            o.kind = k;
            o.raw = raw;
            j += 1;
        } else {
            return Err(CmdError::SYNTAX);
        }
        j += 1;
    }
    Ok(o)
}

impl ExpOptions<'_> {
    /// The expiry with its number read (`invalid expire time in '<cmd>'
    /// command` when out of range).
    fn resolve(&self, now: u64, cmd: &str) -> CmdResult<ExpOpt> {
        let (unit_ms, abs) = match self.kind {
            ExpKind::None => return Ok(ExpOpt::None),
            ExpKind::Keep => return Ok(ExpOpt::Keep),
            ExpKind::Persist => return Ok(ExpOpt::Persist),
            ExpKind::Ex => (false, false),
            ExpKind::Px => (true, false),
            ExpKind::ExAt => (false, true),
            ExpKind::PxAt => (true, true),
        };
        Ok(ExpOpt::At(deadline(now, self.raw, unit_ms, abs, cmd)?))
    }
}

/// ```text
/// SET key value [NX | XX] [GET] [EX seconds | PX ms | EXAT ts | PXAT ms-ts | KEEPTTL]
/// ```
fn set(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let (key, val) = (&argv[1], &argv[2]);
    let o = exp_options(argv, 3, true)?;
    let (nx, xx, want_get) = (o.nx, o.xx, o.get);
    let exp = o.resolve(ctx.now, "set")?;
    let now = ctx.now;
    let shard = ctx.shard(key)?;
    let old = if want_get {
        match shard.peek(key, now) {
            None => None,
            Some(v) => Some(v.as_string().ok_or(CmdError::WRONG_TYPE)?.to_bytes()),
        }
    } else {
        None
    };
    // Whether the key exists matters only to NX and XX.
    let exists = (nx || xx) && (old.is_some() || shard.contains(key, now));
    if (nx && exists) || (xx && !exists) {
        return Ok(if want_get {
            Reply::opt_bulk(old)
        } else {
            Reply::Null
        });
    }
    let ttl = match exp {
        ExpOpt::Keep => Ttl::Keep,
        ExpOpt::At(t) => Ttl::At(t),
        _ => Ttl::Clear,
    };
    shard.set(key, Value::Str(val.clone()), ttl, now);
    ctx.changed(1);
    if let ExpOpt::At(t) = exp {
        if ctx.propagating() {
            ctx.propagate_as(set_pxat(key, val, t));
        }
    }
    ctx.notify(N::STRING, "set", key);
    if matches!(exp, ExpOpt::At(_)) {
        ctx.notify(N::GENERIC, "expire", key);
    }
    Ok(if want_get {
        Reply::opt_bulk(old)
    } else {
        Reply::OK
    })
}

fn setnx(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let now = ctx.now;
    let shard = ctx.shard(&argv[1])?;
    if shard.contains(&argv[1], now) {
        return Ok(Reply::Int(0));
    }
    shard.set(&argv[1], Value::Str(argv[2].clone()), Ttl::Clear, now);
    ctx.changed(1);
    ctx.notify(N::STRING, "set", &argv[1]);
    Ok(Reply::Int(1))
}

fn setex_generic(ctx: &mut Ctx<'_>, argv: &[Bytes], unit_ms: bool, name: &str) -> CmdResult {
    let at = deadline(ctx.now, &argv[2], unit_ms, false, name)?;
    let now = ctx.now;
    ctx.shard(&argv[1])?
        .set(&argv[1], Value::Str(argv[3].clone()), Ttl::At(at), now);
    ctx.changed(1);
    if ctx.propagating() {
        ctx.propagate_as(set_pxat(&argv[1], &argv[3], at));
    }
    ctx.notify(N::STRING, "set", &argv[1]);
    ctx.notify(N::GENERIC, "expire", &argv[1]);
    Ok(Reply::OK)
}

/// `SET key value PXAT ms`: how Redis 7 propagates a SET with a relative
/// expiry (SET EX/PX, SETEX, PSETEX), so replay does not move the deadline.
fn set_pxat(key: &Bytes, val: &Bytes, at: u64) -> Vec<Bytes> {
    vec![
        Bytes::from_static(b"SET"),
        key.clone(),
        val.clone(),
        Bytes::from_static(b"PXAT"),
        Bytes::copy_from_slice(itoa::Buffer::new().format(at).as_bytes()),
    ]
}

fn setex(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    setex_generic(ctx, argv, false, "setex")
}

fn psetex(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    setex_generic(ctx, argv, true, "psetex")
}

/// ```text
/// MGET key [key ...]
/// ```
fn mget(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let now = ctx.now;
    let mut out = Bulks::new(ctx.raw_resp(), Agg::Array, argv.len() - 1);
    for k in &argv[1..] {
        let v = ctx.shard(k)?.get(k, now);
        match v.as_ref().and_then(|v| v.as_string()) {
            Some(StrRef::Bytes(b)) => out.push(b),
            Some(StrRef::Int(i)) => out.push_int(i),
            None => out.push_null(),
        }
    }
    Ok(out.finish())
}

fn mset_check(argv: &[Bytes], name: &str) -> CmdResult<()> {
    if argv.len().is_multiple_of(2) {
        return Err(CmdError::arity(name));
    }
    Ok(())
}

/// ```text
/// MSET key value [key value ...]
/// ```
fn mset(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    mset_check(argv, "mset")?;
    let now = ctx.now;
    for kv in argv[1..].chunks(2) {
        ctx.shard(&kv[0])?
            .set(&kv[0], Value::Str(kv[1].clone()), Ttl::Clear, now);
        ctx.notify(N::STRING, "set", &kv[0]);
    }
    ctx.changed((argv.len() as u64 - 1) / 2);
    Ok(Reply::OK)
}

fn msetnx(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    mset_check(argv, "msetnx")?;
    let now = ctx.now;
    for kv in argv[1..].chunks(2) {
        if ctx.shard(&kv[0])?.contains(&kv[0], now) {
            return Ok(Reply::Int(0));
        }
    }
    for kv in argv[1..].chunks(2) {
        ctx.shard(&kv[0])?
            .set(&kv[0], Value::Str(kv[1].clone()), Ttl::Clear, now);
        ctx.notify(N::STRING, "set", &kv[0]);
    }
    ctx.changed((argv.len() as u64 - 1) / 2);
    Ok(Reply::Int(1))
}

fn getset(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let now = ctx.now;
    let shard = ctx.shard(&argv[1])?;
    let old = match shard.peek(&argv[1], now) {
        None => None,
        Some(v) => Some(v.as_string().ok_or(CmdError::WRONG_TYPE)?.to_bytes()),
    };
    shard.set(&argv[1], Value::Str(argv[2].clone()), Ttl::Clear, now);
    ctx.changed(1);
    ctx.notify(N::STRING, "set", &argv[1]);
    // Replicated as SET (as Redis 7).
    if ctx.propagating() {
        ctx.propagate_as(vec![
            Bytes::from_static(b"SET"),
            argv[1].clone(),
            argv[2].clone(),
        ]);
    }
    Ok(Reply::opt_bulk(old))
}

fn getdel(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let Some(v) = read_str(ctx, &argv[1])? else {
        return Ok(Reply::Null);
    };
    let now = ctx.now;
    ctx.shard(&argv[1])?.delete(&argv[1], now);
    ctx.changed(1);
    // Replicated as the deletion it did (as Redis 7).
    if ctx.propagating() {
        let del: &'static [u8] = if ctx.srv.config.lazyfree_lazy_user_del() {
            b"UNLINK"
        } else {
            b"DEL"
        };
        ctx.propagate_as(vec![Bytes::from_static(del), argv[1].clone()]);
    }
    ctx.notify(N::GENERIC, "del", &argv[1]);
    Ok(Reply::Bulk(v))
}

/// ```text
/// GETEX key [EX seconds | PX ms | EXAT ts | PXAT ms-ts | PERSIST]
/// ```
fn getex(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    // Options, then the key (missing: null; wrong type), then the time's
    // number, in Redis's order.
    let o = exp_options(argv, 2, false)?;
    let Some(v) = read_str(ctx, &argv[1])? else {
        return Ok(Reply::Null);
    };
    let exp = o.resolve(ctx.now, "getex")?;
    let now = ctx.now;
    let shard = ctx.shard(&argv[1])?;
    match exp {
        ExpOpt::At(t) if crate::storage::already_expired(t, now) => {
            shard.delete(&argv[1], now);
            ctx.changed(1);
            ctx.propagate_as(vec![Bytes::from_static(b"DEL"), argv[1].clone()]);
            ctx.notify(N::GENERIC, "del", &argv[1]);
        }
        ExpOpt::At(t) => {
            shard.set_expire(&argv[1], Some(t), now);
            ctx.changed(1);
            ctx.propagate_as(vec![
                Bytes::from_static(b"PEXPIREAT"),
                argv[1].clone(),
                Bytes::copy_from_slice(itoa::Buffer::new().format(t).as_bytes()),
            ]);
            ctx.notify(N::GENERIC, "expire", &argv[1]);
        }
        ExpOpt::Persist if shard.expire_of(&argv[1], now) != Some(None) => {
            shard.set_expire(&argv[1], None, now);
            ctx.changed(1);
            ctx.propagate_as(vec![Bytes::from_static(b"PERSIST"), argv[1].clone()]);
            ctx.notify(N::GENERIC, "persist", &argv[1]);
        }
        _ => {}
    }
    Ok(Reply::Bulk(v))
}

fn check_size(ctx: &Ctx<'_>, len: u64) -> CmdResult<()> {
    if len > ctx.srv.config.proto_max_bulk_len() {
        return Err(CmdError::STRING_TOO_LONG);
    }
    Ok(())
}

/// ```text
/// APPEND key value
/// ```
fn append(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let (key, val) = (&argv[1], &argv[2]);
    let now = ctx.now;
    let cur_len = match ctx.shard(key)?.peek(key, now) {
        None => None,
        Some(v) => Some(v.as_string().ok_or(CmdError::WRONG_TYPE)?.len()),
    };
    let total = match cur_len {
        None => {
            ctx.shard(key)?
                .set(key, Value::Str(val.clone()), Ttl::Clear, now);
            val.len()
        }
        Some(n) => {
            check_size(ctx, (n + val.len()) as u64)?;
            match ctx.shard(key)?.string_mut(key, now) {
                Some(Ok(buf)) => {
                    buf.extend_from_slice(val);
                    buf.len()
                }
                _ => return Err(CmdError::WRONG_TYPE),
            }
        }
    };
    ctx.changed(1);
    ctx.notify(N::STRING, "append", key);
    Ok(Reply::Int(total as i64))
}

fn strlen(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let now = ctx.now;
    match ctx.shard(&argv[1])?.get(&argv[1], now) {
        None => Ok(Reply::Int(0)),
        Some(v) => Ok(Reply::Int(
            v.as_string().ok_or(CmdError::WRONG_TYPE)?.len() as i64
        )),
    }
}

/// ```text
/// GETRANGE key start end
/// ```
fn getrange(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let mut start = int_arg(&argv[2])?;
    let mut end = int_arg(&argv[3])?;
    let Some(s) = read_str(ctx, &argv[1])? else {
        return Ok(Reply::bulk(Bytes::new()));
    };
    if start < 0 && end < 0 && start > end {
        return Ok(Reply::bulk(Bytes::new()));
    }
    let len = s.len() as i64;
    if start < 0 {
        start += len;
    }
    if end < 0 {
        end += len;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= len {
        end = len - 1;
    }
    if len == 0 || start > end {
        return Ok(Reply::bulk(Bytes::new()));
    }
    Ok(Reply::Bulk(s.slice(start as usize..=end as usize)))
}

/// ```text
/// SETRANGE key offset value
/// ```
fn setrange(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let offset = int_arg(&argv[2])?;
    let val = &argv[3];
    if offset < 0 {
        return Err(CmdError::OFFSET_RANGE);
    }
    let now = ctx.now;
    let cur = match ctx.shard(key)?.peek(key, now) {
        None => None,
        Some(v) => Some(v.as_string().ok_or(CmdError::WRONG_TYPE)?.len()),
    };
    if val.is_empty() {
        return Ok(Reply::Int(cur.unwrap_or(0) as i64));
    }
    check_size(ctx, offset as u64 + val.len() as u64)?;
    let off = offset as usize;
    let new_len = if cur.is_none() {
        let mut v = vec![0u8; off + val.len()];
        v[off..].copy_from_slice(val);
        let n = v.len();
        ctx.shard(key)?.set(
            key,
            Value::Obj(crate::storage::Obj::raw(v)),
            Ttl::Clear,
            now,
        );
        n
    } else {
        match ctx.shard(key)?.string_mut(key, now) {
            Some(Ok(buf)) => {
                if buf.len() < off + val.len() {
                    buf.resize(off + val.len(), 0);
                }
                buf[off..off + val.len()].copy_from_slice(val);
                buf.len()
            }
            _ => return Err(CmdError::WRONG_TYPE),
        }
    };
    ctx.changed(1);
    ctx.notify(N::STRING, "setrange", key);
    Ok(Reply::Int(new_len as i64))
}

/// Adds `delta` to the integer at `key` (0 if missing), keeping its TTL.
fn incr_by(ctx: &mut Ctx<'_>, key: &[u8], delta: i64) -> CmdResult {
    let now = ctx.now;
    let shard = ctx.shard(key)?;
    let cur = match shard.peek(key, now) {
        None => 0,
        Some(ValueRef::Int(n)) => n,
        Some(v) => match v.as_string() {
            Some(StrRef::Bytes(b)) => parse_i64(b).ok_or(CmdError::NOT_INTEGER)?,
            Some(StrRef::Int(n)) => n,
            None => return Err(CmdError::WRONG_TYPE),
        },
    };
    let n = cur.checked_add(delta).ok_or(CmdError::OVERFLOW)?;
    shard.set(key, Value::Int(n), Ttl::Keep, now);
    ctx.changed(1);
    ctx.notify(N::STRING, "incrby", key);
    Ok(Reply::Int(n))
}

fn incr(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    incr_by(ctx, &argv[1], 1)
}

fn decr(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    incr_by(ctx, &argv[1], -1)
}

fn incrby(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let d = int_arg(&argv[2])?;
    incr_by(ctx, &argv[1], d)
}

fn decrby(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let d = int_arg(&argv[2])?;
    if d == i64::MIN {
        return Err(CmdError::err("decrement would overflow"));
    }
    incr_by(ctx, &argv[1], -d)
}

/// ```text
/// INCRBYFLOAT key increment
/// ```
fn incrbyfloat(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let now = ctx.now;
    let shard = ctx.shard(key)?;
    let cur = match shard.peek(key, now) {
        None => None,
        Some(v) => Some(v.as_string().ok_or(CmdError::WRONG_TYPE)?.to_vec()),
    };
    let s = match ldouble::incr(cur.as_deref(), &argv[2]) {
        Ok(s) => Bytes::from(s),
        Err(IncrError::NanOrInf) => return Err(CmdError::NAN_OR_INF),
        Err(_) => return Err(CmdError::NOT_FLOAT),
    };
    // Stored as text, never integer-encoded (OBJECT ENCODING embstr).
    shard.set(key, Value::Text(s.clone()), Ttl::Keep, now);
    ctx.changed(1);
    ctx.notify(N::STRING, "incrbyfloat", key);
    // Replicated as the value it set (as Redis 7): float arithmetic must
    // not be redone elsewhere.
    if ctx.propagating() {
        ctx.propagate_as(vec![
            Bytes::from_static(b"SET"),
            key.clone(),
            s.clone(),
            Bytes::from_static(b"KEEPTTL"),
        ]);
    }
    Ok(Reply::Bulk(s))
}

/// ```text
/// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN]
/// ```
///
/// The classic dynamic-programming table (u32 cells, bounded by
/// `proto-max-bulk-len` as in Redis), walked back from the end with Redis's
/// tie-break (prefer shrinking the second string) so the chosen subsequence
/// and the reported ranges are the ones Redis reports.
fn lcs(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    const NOT_STRINGS: &str = "The specified keys must contain string values";
    let mut strs: [Bytes; 2] = [Bytes::new(), Bytes::new()];
    let now = ctx.now;
    for (i, key) in argv[1..3].iter().enumerate() {
        if let Some(v) = ctx.shard(key)?.get(key, now) {
            strs[i] = v
                .as_string()
                .ok_or_else(|| CmdError::err(NOT_STRINGS))?
                .to_bytes();
        }
    }
    let (mut get_len, mut get_idx, mut with_len, mut min_len) = (false, false, false, 0u64);
    let mut i = 3;
    while i < argv.len() {
        let opt = &argv[i];
        if eq_ic(opt, "IDX") {
            get_idx = true;
        } else if eq_ic(opt, "LEN") {
            get_len = true;
        } else if eq_ic(opt, "WITHMATCHLEN") {
            with_len = true;
        } else if eq_ic(opt, "MINMATCHLEN") && i + 1 < argv.len() {
            min_len = int_arg(&argv[i + 1])?.max(0) as u64;
            i += 1;
        } else {
            return Err(CmdError::SYNTAX);
        }
        i += 1;
    }
    if get_len && get_idx {
        return Err(CmdError::err(
            "If you want both the length and indexes, please just use IDX.",
        ));
    }
    let (a, b) = (&strs[0][..], &strs[1][..]);
    if a.len() >= u32::MAX as usize - 1 || b.len() >= u32::MAX as usize - 1 {
        return Err(CmdError::err("String too long for LCS"));
    }
    let w = b.len() + 1;
    let cells = (a.len() as u64 + 1) * (w as u64);
    if cells.saturating_mul(4) > ctx.srv.config.proto_max_bulk_len() {
        return Err(CmdError::err(
            "Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        ));
    }
    let mut t = vec![0u32; cells as usize];
    for x in 1..=a.len() {
        for y in 1..=b.len() {
            t[x * w + y] = if a[x - 1] == b[y - 1] {
                t[(x - 1) * w + y - 1] + 1
            } else {
                t[(x - 1) * w + y].max(t[x * w + y - 1])
            };
        }
    }
    let total = t[a.len() * w + b.len()];
    if get_len {
        return Ok(Reply::Int(total as i64));
    }
    // Walk back from the end collecting the subsequence and, for IDX, the
    // maximal runs matched contiguously in both strings.
    let mut out = vec![0u8; total as usize];
    let mut k = total as usize;
    let mut matches = Vec::new();
    let mut run: Option<(usize, usize, usize, usize)> = None; // a_start, a_end, b_start, b_end
    let (mut x, mut y) = (a.len(), b.len());
    while x > 0 && y > 0 {
        let mut emit = false;
        if a[x - 1] == b[y - 1] {
            out[k - 1] = a[x - 1];
            k -= 1;
            match run.as_mut() {
                None => run = Some((x - 1, x - 1, y - 1, y - 1)),
                Some(r) if r.0 == x && r.2 == y => {
                    r.0 -= 1;
                    r.2 -= 1;
                }
                Some(_) => emit = true,
            }
            if let Some(r) = run {
                if r.0 == 0 || r.2 == 0 {
                    emit = true;
                }
            }
            x -= 1;
            y -= 1;
        } else {
            if t[(x - 1) * w + y] > t[x * w + y - 1] {
                x -= 1;
            } else {
                y -= 1;
            }
            if run.is_some() {
                emit = true;
            }
        }
        if emit {
            if let Some((as_, ae, bs, be)) = run.take() {
                let len = (ae - as_ + 1) as u64;
                if min_len == 0 || len >= min_len {
                    matches.push((as_, ae, bs, be, len));
                }
            }
        }
    }
    if !get_idx {
        return Ok(Reply::bulk(out));
    }
    let arr = matches
        .into_iter()
        .map(|(as_, ae, bs, be, len)| {
            let mut m = vec![
                Reply::Array(vec![Reply::Int(as_ as i64), Reply::Int(ae as i64)]),
                Reply::Array(vec![Reply::Int(bs as i64), Reply::Int(be as i64)]),
            ];
            if with_len {
                m.push(Reply::Int(len as i64));
            }
            Reply::Array(m)
        })
        .collect();
    Ok(Reply::Map(vec![
        (Reply::bulk(&b"matches"[..]), Reply::Array(arr)),
        (Reply::bulk(&b"len"[..]), Reply::Int(total as i64)),
    ]))
}
