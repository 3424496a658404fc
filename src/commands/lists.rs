//! List commands: LPUSH RPUSH LPUSHX RPUSHX LPOP RPOP LLEN LRANGE LINDEX
//! LSET LINSERT LREM LTRIM LPOS LMOVE RPOPLPUSH LMPOP and the blocking
//! BLPOP BRPOP BLMOVE BRPOPLPUSH BLMPOP.
//!
//! Empty lists never exist: whatever removes the last element deletes the
//! key. Every write that adds elements signals the key ready so clients
//! blocked on it are served after the command (see `commands::blocking`).

use bytes::Bytes;

use crate::commands::blocking::parse_timeout;
use crate::commands::ctx::Ctx;
use crate::commands::spec::{cmd, Acl, CmdFlags as F, CommandSpec};
use crate::config::notify as N;
use crate::protocol::args::{eq_ic, int_arg, positive_arg, Args};
use crate::protocol::reply::{Agg, Bulks};
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::storage::list::{End, List};
use crate::storage::value::Obj;
use crate::storage::{Shard, ValueRef};

const L: Acl = Acl::LIST;
const W: F = F::WRITE.union(F::DENYOOM);
const WF: F = W.union(F::FAST);
const RF: F = F::READONLY.union(F::FAST);
const B: F = F::WRITE.union(F::NOSCRIPT).union(F::BLOCKING);

pub const SPECS: &[CommandSpec] = &[
    cmd("lpush", -3, WF, lpush).keys(1, 1, 1).acl(L).doc("list", "1.0.0", "Prepends one or more elements to a list. Creates the key if it doesn't exist."),
    cmd("rpush", -3, WF, rpush).keys(1, 1, 1).acl(L).doc("list", "1.0.0", "Appends one or more elements to a list. Creates the key if it doesn't exist."),
    cmd("lpushx", -3, WF, lpushx).keys(1, 1, 1).acl(L).doc("list", "2.2.0", "Prepends one or more elements to a list only when the list exists."),
    cmd("rpushx", -3, WF, rpushx).keys(1, 1, 1).acl(L).doc("list", "2.2.0", "Appends an element to a list only when the list exists."),
    cmd("lpop", -2, F::WRITE.union(F::FAST), lpop).keys(1, 1, 1).acl(L).doc("list", "1.0.0", "Returns the first elements in a list after removing it. Deletes the list if the last element was popped."),
    cmd("rpop", -2, F::WRITE.union(F::FAST), rpop).keys(1, 1, 1).acl(L).doc("list", "1.0.0", "Returns and removes the last elements of a list. Deletes the list if the last element was popped."),
    cmd("llen", 2, RF, llen).keys(1, 1, 1).acl(L).doc("list", "1.0.0", "Returns the length of a list."),
    cmd("lrange", 4, F::READONLY, lrange).keys(1, 1, 1).acl(L).doc("list", "1.0.0", "Returns a range of elements from a list."),
    cmd("lindex", 3, F::READONLY, lindex).keys(1, 1, 1).acl(L).doc("list", "1.0.0", "Returns an element from a list by its index."),
    cmd("lset", 4, W, lset).keys(1, 1, 1).acl(L).doc("list", "1.0.0", "Sets the value of an element in a list by its index."),
    cmd("linsert", 5, W, linsert).keys(1, 1, 1).acl(L).doc("list", "2.2.0", "Inserts an element before or after another element in a list."),
    cmd("lrem", 4, F::WRITE, lrem).keys(1, 1, 1).acl(L).doc("list", "1.0.0", "Removes elements from a list. Deletes the list if the last element was removed."),
    cmd("ltrim", 4, F::WRITE, ltrim).keys(1, 1, 1).acl(L).doc("list", "1.0.0", "Removes elements from both ends a list. Deletes the list if all elements were trimmed."),
    cmd("lpos", -3, F::READONLY, lpos).keys(1, 1, 1).acl(L).doc("list", "6.0.6", "Returns the index of matching elements in a list."),
    cmd("lmove", 5, W, lmove).keys(1, 2, 1).acl(L).doc("list", "6.2.0", "Returns an element after popping it from one list and pushing it to another. Deletes the list if the last element was moved."),
    cmd("rpoplpush", 3, W, rpoplpush).keys(1, 2, 1).acl(L).doc("list", "1.2.0", "Returns the last element of a list after removing and pushing it to another list. Deletes the list if the last element was popped."),
    cmd("lmpop", -4, F::WRITE, lmpop).find_keys(lmpop_keys).acl(L).doc("list", "7.0.0", "Returns multiple elements from a list after removing them. Deletes the list if the last element was popped."),
    cmd("blpop", -3, B, blpop).keys(1, -2, 1).acl(L).doc("list", "2.0.0", "Removes and returns the first element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped."),
    cmd("brpop", -3, B, brpop).keys(1, -2, 1).acl(L).doc("list", "2.0.0", "Removes and returns the last element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped."),
    cmd("blmove", 6, B.union(F::DENYOOM), blmove).keys(1, 2, 1).acl(L).doc("list", "6.2.0", "Pops an element from a list, pushes it to another list and returns it. Blocks until an element is available otherwise. Deletes the list if the last element was moved."),
    cmd("brpoplpush", 4, B.union(F::DENYOOM), brpoplpush).keys(1, 2, 1).acl(L).doc("list", "2.2.0", "Pops an element from a list, pushes it to another list and returns it. Block until an element is available otherwise. Deletes the list if the last element was popped."),
    cmd("blmpop", -5, F::WRITE.union(F::BLOCKING), blmpop).find_keys(blmpop_keys).acl(L).doc("list", "7.0.0", "Pops the first element from one of multiple lists. Blocks until an element is available otherwise. Deletes the list if the last element was popped."),
];

// ---- key positions ---------------------------------------------------------

/// Keys of `numkeys k1 … kN` starting at `argv[at]`.
fn numkeys_positions(argv: &[Bytes], at: usize) -> Vec<usize> {
    let Some(n) = argv.get(at).and_then(|a| int_arg(a).ok()) else {
        return Vec::new();
    };
    if n <= 0 {
        return Vec::new();
    }
    let first = at + 1;
    let last = first.saturating_add(n as usize).min(argv.len());
    (first..last).collect()
}

fn lmpop_keys(argv: &[Bytes]) -> Vec<usize> {
    numkeys_positions(argv, 1)
}

fn blmpop_keys(argv: &[Bytes]) -> Vec<usize> {
    numkeys_positions(argv, 2)
}

// ---- helpers -----------------------------------------------------------------

/// The list at `key` for reading (counts a hit or miss): `Ok(None)` if
/// missing, WRONGTYPE if another type.
fn read_list<'s>(shard: &'s mut Shard, key: &[u8], now: u64) -> CmdResult<Option<&'s List>> {
    match shard.get(key, now) {
        None => Ok(None),
        Some(ValueRef::Obj(Obj::List(l))) => Ok(Some(l)),
        Some(_) => Err(CmdError::WRONG_TYPE),
    }
}

/// Is `key` missing (`Ok(false)`), a list (`Ok(true)`), or another type?
fn check_list(shard: &mut Shard, key: &[u8], now: u64) -> CmdResult<bool> {
    match shard.peek(key, now) {
        None => Ok(false),
        Some(ValueRef::Obj(Obj::List(_))) => Ok(true),
        Some(_) => Err(CmdError::WRONG_TYPE),
    }
}

/// The list at `key` for writing; `Ok(None)` if missing.
fn write_list<'s>(shard: &'s mut Shard, key: &[u8], now: u64) -> CmdResult<Option<&'s mut List>> {
    if !check_list(shard, key, now)? {
        return Ok(None);
    }
    match shard.obj_mut(key, now) {
        Some(Obj::List(l)) => Ok(Some(l)),
        _ => Err(CmdError::WRONG_TYPE),
    }
}

/// The list at `key` for writing, created empty if missing.
fn list_or_create<'s>(shard: &'s mut Shard, key: &[u8], now: u64) -> CmdResult<&'s mut List> {
    check_list(shard, key, now)?;
    match shard.obj_or_insert(key, now, || Obj::List(List::new())) {
        Some(Obj::List(l)) => Ok(l),
        _ => Err(CmdError::WRONG_TYPE),
    }
}

/// Deletes `key` if its list became empty; true if it did.
fn drop_if_empty(shard: &mut Shard, key: &[u8], now: u64) -> bool {
    if let Some(ValueRef::Obj(Obj::List(l))) = shard.peek(key, now) {
        if l.is_empty() {
            shard.delete(key, now);
            return true;
        }
    }
    false
}

/// The push/pop event name of an end.
fn ev(end: End, push: bool) -> &'static str {
    match (end, push) {
        (End::Head, true) => "lpush",
        (End::Tail, true) => "rpush",
        (End::Head, false) => "lpop",
        (End::Tail, false) => "rpop",
    }
}

/// Announces a pop from `key` (and its deletion when it emptied).
fn notify_pop(ctx: &mut Ctx<'_>, end: End, key: &[u8], deleted: bool) {
    ctx.notify(N::LIST, ev(end, false), key);
    if deleted {
        ctx.notify(N::GENERIC, "del", key);
    }
}

/// Parses LEFT / RIGHT.
fn end_arg(a: &[u8]) -> CmdResult<End> {
    if eq_ic(a, "left") {
        Ok(End::Head)
    } else if eq_ic(a, "right") {
        Ok(End::Tail)
    } else {
        Err(CmdError::SYNTAX)
    }
}

/// Clamps Redis's inclusive `start..=end` (negative from the tail) to the
/// list; `None` if the range is empty.
fn clamp_range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let mut s = if start < 0 { len + start } else { start };
    let mut e = if end < 0 { len + end } else { end };
    if s < 0 {
        s = 0;
    }
    if s > e || s >= len {
        return None;
    }
    if e >= len {
        e = len - 1;
    }
    Some((s as usize, e as usize))
}

fn bulks(items: Vec<Bytes>) -> Reply {
    Reply::Array(items.into_iter().map(Reply::Bulk).collect())
}

// ---- push --------------------------------------------------------------------

fn push_generic(ctx: &mut Ctx<'_>, argv: &[Bytes], end: End, only_existing: bool) -> CmdResult {
    let key = &argv[1];
    let now = ctx.now;
    let shard = ctx.shard(key)?;
    let list = if only_existing {
        match write_list(shard, key, now)? {
            Some(l) => l,
            None => return Ok(Reply::Int(0)),
        }
    } else {
        list_or_create(shard, key, now)?
    };
    for v in &argv[2..] {
        list.push(end, v);
    }
    let len = list.len();
    ctx.changed((argv.len() - 2) as u64);
    ctx.notify(N::LIST, ev(end, true), key);
    ctx.signal_ready(key);
    Ok(Reply::Int(len as i64))
}

/// ```text
/// LPUSH key element [element ...]
/// ```
fn lpush(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    push_generic(ctx, argv, End::Head, false)
}

/// ```text
/// RPUSH key element [element ...]
/// ```
fn rpush(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    push_generic(ctx, argv, End::Tail, false)
}

/// ```text
/// LPUSHX key element [element ...]
/// ```
fn lpushx(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    push_generic(ctx, argv, End::Head, true)
}

/// ```text
/// RPUSHX key element [element ...]
/// ```
fn rpushx(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    push_generic(ctx, argv, End::Tail, true)
}

// ---- pop ---------------------------------------------------------------------

fn pop_generic(ctx: &mut Ctx<'_>, argv: &[Bytes], end: End) -> CmdResult {
    if argv.len() > 3 {
        return Err(CmdError::arity(if end == End::Head {
            "lpop"
        } else {
            "rpop"
        }));
    }
    let count = match argv.get(2) {
        Some(a) => Some(positive_arg(a, None)?),
        None => None,
    };
    let key = &argv[1];
    let now = ctx.now;
    let shard = ctx.shard(key)?;
    if !check_list(shard, key, now)? {
        return Ok(if count.is_some() {
            Reply::NullArray
        } else {
            Reply::Null
        });
    }
    if count == Some(0) {
        // Nothing changes: no write path (which would invalidate WATCH).
        return Ok(Reply::Array(Vec::new()));
    }
    let Some(list) = write_list(shard, key, now)? else {
        return Ok(Reply::Null);
    };
    let reply = match count {
        Some(0) => Reply::Array(Vec::new()),
        None => Reply::opt_bulk(list.pop(end)),
        Some(n) => bulks(list.pop_n(end, n as usize)),
    };
    let popped = match &reply {
        Reply::Array(v) => v.len() as u64,
        _ => 1,
    };
    let deleted = drop_if_empty(shard, key, now);
    ctx.changed(popped);
    notify_pop(ctx, end, key, deleted);
    Ok(reply)
}

/// ```text
/// LPOP key [count]
/// ```
fn lpop(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    pop_generic(ctx, argv, End::Head)
}

/// ```text
/// RPOP key [count]
/// ```
fn rpop(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    pop_generic(ctx, argv, End::Tail)
}

// ---- reads -------------------------------------------------------------------

/// ```text
/// LLEN key
/// ```
fn llen(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let now = ctx.now;
    let shard = ctx.shard(&argv[1])?;
    let n = read_list(shard, &argv[1], now)?.map_or(0, |l| l.len());
    Ok(Reply::Int(n as i64))
}

/// ```text
/// LRANGE key start stop
/// ```
fn lrange(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let start = int_arg(&argv[2])?;
    let end = int_arg(&argv[3])?;
    let now = ctx.now;
    let resp = ctx.raw_resp();
    let shard = ctx.shard(&argv[1])?;
    let Some(list) = read_list(shard, &argv[1], now)? else {
        return Ok(Reply::Array(Vec::new()));
    };
    let Some((s, e)) = clamp_range(start, end, list.len()) else {
        return Ok(Reply::Array(Vec::new()));
    };
    let mut out = Bulks::new(resp, Agg::Array, e - s + 1);
    list.range(s, e).for_each(|v| out.push(v));
    Ok(out.finish())
}

/// ```text
/// LINDEX key index
/// ```
fn lindex(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let now = ctx.now;
    let shard = ctx.shard(&argv[1])?;
    let Some(list) = read_list(shard, &argv[1], now)? else {
        return Ok(Reply::Null);
    };
    let index = int_arg(&argv[2])?;
    Ok(match list.resolve(index).and_then(|i| list.get(i)) {
        Some(v) => Reply::bulk_copy(v),
        None => Reply::Null,
    })
}

/// ```text
/// LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len]
/// ```
fn lpos(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let ele = &argv[2];
    let (mut rank, mut count, mut maxlen) = (1i64, None::<i64>, 0i64);
    let mut a = Args::new(argv, 3);
    while let Some(opt) = a.next_opt() {
        let more = a.remaining() > 0;
        if eq_ic(opt, "rank") && more {
            rank = a.next_i64()?;
            if rank == 0 {
                return Err(CmdError::err(
                    "RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
                ));
            }
        } else if eq_ic(opt, "count") && more {
            count = Some(positive_arg(
                a.next_arg()?,
                Some("COUNT can't be negative"),
            )?);
        } else if eq_ic(opt, "maxlen") && more {
            maxlen = positive_arg(a.next_arg()?, Some("MAXLEN can't be negative"))?;
        } else {
            return Err(CmdError::SYNTAX);
        }
    }
    let now = ctx.now;
    let shard = ctx.shard(&argv[1])?;
    let none = || {
        if count.is_some() {
            Reply::Array(Vec::new())
        } else {
            Reply::Null
        }
    };
    let Some(list) = read_list(shard, &argv[1], now)? else {
        return Ok(none());
    };
    let len = list.len();
    let from_tail = rank < 0;
    // Redis negates LONG_MIN to itself, which then matches the first hit.
    let rank = if rank == i64::MIN {
        1
    } else {
        rank.unsigned_abs()
    };
    let scan = if maxlen == 0 {
        len
    } else {
        (maxlen as usize).min(len)
    };
    let want = match count {
        Some(0) => usize::MAX,
        Some(n) => n as usize,
        None => 1,
    };
    let mut found: Vec<Reply> = Vec::new();
    let mut matches = 0u64;
    let mut check = |idx: usize, v: &[u8]| -> bool {
        if v == &ele[..] {
            matches += 1;
            if matches >= rank {
                found.push(Reply::Int(idx as i64));
                return found.len() >= want;
            }
        }
        false
    };
    if from_tail {
        for (i, v) in list.iter().enumerate().rev().take(scan) {
            if check(i, v) {
                break;
            }
        }
    } else {
        for (i, v) in list.iter().enumerate().take(scan) {
            if check(i, v) {
                break;
            }
        }
    }
    Ok(match count {
        Some(_) => Reply::Array(found),
        None => found.pop().unwrap_or(Reply::Null),
    })
}

// ---- in-place edits ----------------------------------------------------------

/// ```text
/// LSET key index element
/// ```
fn lset(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let now = ctx.now;
    let shard = ctx.shard(&argv[1])?;
    if !check_list(shard, &argv[1], now)? {
        return Err(CmdError::NO_SUCH_KEY);
    }
    let index = int_arg(&argv[2])?;
    let in_range = match shard.peek(&argv[1], now) {
        Some(ValueRef::Obj(Obj::List(l))) => l.resolve(index).is_some(),
        _ => false,
    };
    if !in_range {
        return Err(CmdError::from_static("ERR index out of range"));
    }
    let Some(list) = write_list(shard, &argv[1], now)? else {
        return Err(CmdError::NO_SUCH_KEY);
    };
    match list.resolve(index) {
        Some(i) if list.set(i, &argv[3]) => {
            ctx.changed(1);
            ctx.notify(N::LIST, "lset", &argv[1]);
            Ok(Reply::OK)
        }
        _ => Err(CmdError::from_static("ERR index out of range")),
    }
}

/// ```text
/// LINSERT key <BEFORE | AFTER> pivot element
/// ```
fn linsert(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let after = if eq_ic(&argv[2], "after") {
        true
    } else if eq_ic(&argv[2], "before") {
        false
    } else {
        return Err(CmdError::SYNTAX);
    };
    let now = ctx.now;
    let shard = ctx.shard(&argv[1])?;
    if !check_list(shard, &argv[1], now)? {
        return Ok(Reply::Int(0));
    }
    let pos = match shard.peek(&argv[1], now) {
        Some(ValueRef::Obj(Obj::List(l))) => l.position(&argv[3]),
        _ => None,
    };
    let Some(pos) = pos else {
        return Ok(Reply::Int(-1));
    };
    let Some(list) = write_list(shard, &argv[1], now)? else {
        return Ok(Reply::Int(0));
    };
    list.insert(if after { pos + 1 } else { pos }, &argv[4]);
    let len = list.len();
    ctx.changed(1);
    ctx.notify(N::LIST, "linsert", &argv[1]);
    Ok(Reply::Int(len as i64))
}

/// ```text
/// LREM key count element
/// ```
fn lrem(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let count = int_arg(&argv[2])?;
    let key = &argv[1];
    let now = ctx.now;
    let shard = ctx.shard(key)?;
    if !check_list(shard, key, now)? {
        return Ok(Reply::Int(0));
    }
    // Only take the write path (which invalidates WATCH) when something goes.
    let present = match shard.peek(key, now) {
        Some(ValueRef::Obj(Obj::List(l))) => l.position(&argv[3]).is_some(),
        _ => false,
    };
    if !present {
        return Ok(Reply::Int(0));
    }
    let Some(list) = write_list(shard, key, now)? else {
        return Ok(Reply::Int(0));
    };
    let n = list.remove_matching(&argv[3], count.unsigned_abs() as usize, count < 0);
    let deleted = drop_if_empty(shard, key, now);
    ctx.changed(n as u64);
    ctx.notify(N::LIST, "lrem", key);
    if deleted {
        ctx.notify(N::GENERIC, "del", key);
    }
    Ok(Reply::Int(n as i64))
}

/// ```text
/// LTRIM key start stop
/// ```
fn ltrim(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let start = int_arg(&argv[2])?;
    let end = int_arg(&argv[3])?;
    let key = &argv[1];
    let now = ctx.now;
    let shard = ctx.shard(key)?;
    let Some(list) = write_list(shard, key, now)? else {
        return Ok(Reply::OK);
    };
    let len = list.len();
    let (front, back) = match clamp_range(start, end, len) {
        Some((s, e)) => (s, len - e - 1),
        None => (len, 0),
    };
    list.trim(front, back);
    let deleted = drop_if_empty(shard, key, now);
    ctx.changed((front + back) as u64);
    ctx.notify(N::LIST, "ltrim", key);
    if deleted {
        ctx.notify(N::GENERIC, "del", key);
    }
    Ok(Reply::OK)
}

// ---- moves -------------------------------------------------------------------

/// Pops from `src` and pushes onto `dst`. `Ok(None)` if `src` is missing.
/// Checks both types before changing anything.
fn move_one(
    ctx: &mut Ctx<'_>,
    src: &Bytes,
    dst: &Bytes,
    from: End,
    to: End,
) -> CmdResult<Option<Bytes>> {
    let now = ctx.now;
    if !check_list(ctx.shard(src)?, src, now)? {
        return Ok(None);
    }
    check_list(ctx.shard(dst)?, dst, now)?;
    let shard = ctx.shard(src)?;
    let Some(list) = write_list(shard, src, now)? else {
        return Ok(None);
    };
    let Some(v) = list.pop(from) else {
        return Ok(None);
    };
    let deleted = if src == dst {
        // A rotation: the list never stops existing (it keeps its TTL, and
        // no `del` fires, even when it holds one element).
        list.push(to, &v);
        false
    } else {
        let deleted = drop_if_empty(shard, src, now);
        list_or_create(ctx.shard(dst)?, dst, now)?.push(to, &v);
        deleted
    };
    ctx.changed(2);
    ctx.notify(N::LIST, ev(to, true), dst);
    notify_pop(ctx, from, src, deleted);
    ctx.signal_ready(dst);
    Ok(Some(v))
}

/// ```text
/// LMOVE source destination <LEFT | RIGHT> <LEFT | RIGHT>
/// ```
fn lmove(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let from = end_arg(&argv[3])?;
    let to = end_arg(&argv[4])?;
    Ok(Reply::opt_bulk(move_one(
        ctx, &argv[1], &argv[2], from, to,
    )?))
}

/// ```text
/// RPOPLPUSH source destination
/// ```
fn rpoplpush(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    Ok(Reply::opt_bulk(move_one(
        ctx,
        &argv[1],
        &argv[2],
        End::Tail,
        End::Head,
    )?))
}

// ---- multi-key pops ----------------------------------------------------------

/// Parsed `numkeys key… LEFT|RIGHT [COUNT n]` (from `argv[at]`).
struct MPop<'a> {
    keys: &'a [Bytes],
    end: End,
    count: usize,
}

fn parse_mpop(argv: &[Bytes], at: usize) -> CmdResult<MPop<'_>> {
    let n = int_arg(&argv[at])
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| CmdError::err("numkeys should be greater than 0"))?;
    let first = at + 1;
    let where_idx = (n as u64).saturating_add(first as u64);
    if where_idx >= argv.len() as u64 {
        return Err(CmdError::SYNTAX);
    }
    let where_idx = where_idx as usize;
    let end = end_arg(&argv[where_idx])?;
    let mut count = None;
    let mut a = Args::new(argv, where_idx + 1);
    while let Some(opt) = a.next_opt() {
        if count.is_none() && eq_ic(opt, "count") && a.remaining() > 0 {
            let c = int_arg(a.next_arg()?)
                .ok()
                .filter(|c| *c > 0)
                .ok_or_else(|| CmdError::err("count should be greater than 0"))?;
            count = Some(c as usize);
        } else {
            return Err(CmdError::SYNTAX);
        }
    }
    Ok(MPop {
        keys: &argv[first..where_idx],
        end,
        count: count.unwrap_or(1),
    })
}

/// Pops from the first non-empty list of `keys`: `[key, [elements…]]`, or
/// `None` if all are missing. With `skip_wrong_type` (serving a blocked
/// client) keys of another type are passed over instead of failing.
fn mpop_first(
    ctx: &mut Ctx<'_>,
    keys: &[Bytes],
    end: End,
    count: usize,
    skip_wrong_type: bool,
) -> CmdResult<Option<(Bytes, Vec<Bytes>)>> {
    let now = ctx.now;
    for key in keys {
        let shard = ctx.shard(key)?;
        let list = match write_list(shard, key, now) {
            Ok(Some(l)) => l,
            Ok(None) => continue,
            Err(_) if skip_wrong_type => continue,
            Err(e) => return Err(e),
        };
        let items = list.pop_n(end, count);
        if items.is_empty() {
            continue;
        }
        let deleted = drop_if_empty(shard, key, now);
        ctx.changed(items.len() as u64);
        notify_pop(ctx, end, key, deleted);
        return Ok(Some((key.clone(), items)));
    }
    Ok(None)
}

fn mpop_reply(key: Bytes, items: Vec<Bytes>) -> Reply {
    Reply::Array(vec![Reply::Bulk(key), bulks(items)])
}

/// ```text
/// LMPOP numkeys key [key ...] <LEFT | RIGHT> [COUNT count]
/// ```
fn lmpop(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let p = parse_mpop(argv, 1)?;
    Ok(match mpop_first(ctx, p.keys, p.end, p.count, false)? {
        Some((k, items)) => {
            propagate_pop(ctx, p.end, &k, items.len());
            mpop_reply(k, items)
        }
        None => Reply::NullArray,
    })
}

/// LMPOP and BLMPOP are replicated as `[LR]POP key count` (as Redis 7).
fn propagate_pop(ctx: &mut Ctx<'_>, end: End, key: &Bytes, n: usize) {
    if ctx.propagating() {
        let name: &'static [u8] = if end == End::Head { b"LPOP" } else { b"RPOP" };
        ctx.propagate_as(vec![
            Bytes::from_static(name),
            key.clone(),
            Bytes::from(n.to_string()),
        ]);
    }
}

// ---- blocking ----------------------------------------------------------------

fn bpop_generic(ctx: &mut Ctx<'_>, argv: &[Bytes], end: End) -> CmdResult {
    let deadline = parse_timeout(&argv[argv.len() - 1], ctx.now)?;
    let keys = &argv[1..argv.len() - 1];
    let serving = ctx.client.blocking.serving;
    match mpop_first(ctx, keys, end, 1, serving)? {
        Some((k, mut items)) => {
            // Replicated as the pop it did (as Redis 7), never as a
            // blocking command.
            if ctx.propagating() {
                let name: &'static [u8] = if end == End::Head { b"LPOP" } else { b"RPOP" };
                ctx.propagate_as(vec![Bytes::from_static(name), k.clone()]);
            }
            let v = items.pop().unwrap_or_default();
            Ok(Reply::Array(vec![Reply::Bulk(k), Reply::Bulk(v)]))
        }
        None => ctx.block(keys, deadline, Reply::NullArray),
    }
}

/// ```text
/// BLPOP key [key ...] timeout
/// ```
fn blpop(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    bpop_generic(ctx, argv, End::Head)
}

/// ```text
/// BRPOP key [key ...] timeout
/// ```
fn brpop(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    bpop_generic(ctx, argv, End::Tail)
}

fn bmove_generic(
    ctx: &mut Ctx<'_>,
    argv: &[Bytes],
    from: End,
    to: End,
    timeout: &[u8],
) -> CmdResult {
    let deadline = parse_timeout(timeout, ctx.now)?;
    let (src, dst) = (&argv[1], &argv[2]);
    if ctx.client.blocking.serving {
        // Serving a blocked client: a source of another type is not ready.
        let now = ctx.now;
        if check_list(ctx.shard(src)?, src, now).is_err() {
            return ctx.block_or(
                std::slice::from_ref(src),
                deadline,
                Reply::Null,
                Reply::NullArray,
            );
        }
    }
    match move_one(ctx, src, dst, from, to)? {
        Some(v) => {
            // Replicated as RPOPLPUSH / LMOVE (as Redis 7).
            if ctx.propagating() {
                let rewritten = if argv.len() == 4 {
                    vec![Bytes::from_static(b"RPOPLPUSH"), src.clone(), dst.clone()]
                } else {
                    vec![
                        Bytes::from_static(b"LMOVE"),
                        src.clone(),
                        dst.clone(),
                        argv[3].clone(),
                        argv[4].clone(),
                    ]
                };
                ctx.propagate_as(rewritten);
            }
            Ok(Reply::Bulk(v))
        }
        None => ctx.block_or(
            std::slice::from_ref(src),
            deadline,
            Reply::Null,
            Reply::NullArray,
        ),
    }
}

/// ```text
/// BLMOVE source destination <LEFT | RIGHT> <LEFT | RIGHT> timeout
/// ```
fn blmove(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let from = end_arg(&argv[3])?;
    let to = end_arg(&argv[4])?;
    bmove_generic(ctx, argv, from, to, &argv[5])
}

/// ```text
/// BRPOPLPUSH source destination timeout
/// ```
fn brpoplpush(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    bmove_generic(ctx, argv, End::Tail, End::Head, &argv[3])
}

/// ```text
/// BLMPOP timeout numkeys key [key ...] <LEFT | RIGHT> [COUNT count]
/// ```
fn blmpop(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let p = parse_mpop(argv, 2)?;
    let deadline = parse_timeout(&argv[1], ctx.now)?;
    let serving = ctx.client.blocking.serving;
    match mpop_first(ctx, p.keys, p.end, p.count, serving)? {
        Some((k, items)) => {
            propagate_pop(ctx, p.end, &k, items.len());
            Ok(mpop_reply(k, items))
        }
        None => ctx.block(p.keys, deadline, Reply::NullArray),
    }
}
