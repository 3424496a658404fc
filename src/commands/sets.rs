//! Set commands: SADD SREM SISMEMBER SMISMEMBER SMEMBERS SCARD SPOP
//! SRANDMEMBER SMOVE SINTER SINTERCARD SUNION SDIFF SINTERSTORE SUNIONSTORE
//! SDIFFSTORE SSCAN.
//!
//! Multi-set operations borrow one source set at a time (each lives in its
//! own locked shard): the candidates are copied once from the smallest (or
//! first) set and then filtered against each other set, which keeps the
//! complexity Redis documents without holding two shard borrows at once.

use bytes::Bytes;
use rand::Rng;

use crate::commands::ctx::Ctx;
use crate::commands::hashes::{scan_reply, ScanOpts};
use crate::commands::spec::{cmd, Acl, CmdFlags as F, CommandSpec};
use crate::config::notify as N;
use crate::protocol::args::{int_arg, parse_cursor, positive_arg};
use crate::protocol::codec::parse_i64;
use crate::protocol::reply::{Agg, Bulks};
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::storage::set::{Member, Set};
use crate::storage::{Obj, Ttl, Value, ValueRef};

const S: Acl = Acl::SET;
const WF: F = F::WRITE.union(F::DENYOOM).union(F::FAST);
const W: F = F::WRITE.union(F::DENYOOM);
const RF: F = F::READONLY.union(F::FAST);
const R: F = F::READONLY;
const WFAST: F = F::WRITE.union(F::FAST);

pub const SPECS: &[CommandSpec] = &[
    cmd("sadd", -3, WF, sadd).keys(1, 1, 1).acl(S).doc("set", "1.0.0", "Adds one or more members to a set. Creates the key if it doesn't exist."),
    cmd("srem", -3, WFAST, srem).keys(1, 1, 1).acl(S).doc("set", "1.0.0", "Removes one or more members from a set. Deletes the set if the last member was removed."),
    cmd("sismember", 3, RF, sismember).keys(1, 1, 1).acl(S).doc("set", "1.0.0", "Determines whether a member belongs to a set."),
    cmd("smismember", -3, RF, smismember).keys(1, 1, 1).acl(S).doc("set", "6.2.0", "Determines whether multiple members belong to a set."),
    cmd("smembers", 2, R, smembers).keys(1, 1, 1).acl(S).doc("set", "1.0.0", "Returns all members of a set."),
    cmd("scard", 2, RF, scard).keys(1, 1, 1).acl(S).doc("set", "1.0.0", "Returns the number of members in a set."),
    cmd("spop", -2, WFAST, spop).keys(1, 1, 1).acl(S).doc("set", "1.0.0", "Returns one or more random members from a set after removing them. Deletes the set if the last member was popped."),
    cmd("srandmember", -2, R, srandmember).keys(1, 1, 1).acl(S).doc("set", "1.0.0", "Get one or multiple random members from a set"),
    cmd("smove", 4, WFAST, smove).keys(1, 2, 1).acl(S).doc("set", "1.0.0", "Moves a member from one set to another."),
    cmd("sinter", -2, R, sinter).keys(1, -1, 1).acl(S).doc("set", "1.0.0", "Returns the intersect of multiple sets."),
    cmd("sintercard", -3, R, sintercard).find_keys(sintercard_keys).acl(S).doc("set", "7.0.0", "Returns the number of members of the intersect of multiple sets."),
    cmd("sinterstore", -3, W, sinterstore).keys(1, -1, 1).acl(S).doc("set", "1.0.0", "Stores the intersect of multiple sets in a key."),
    cmd("sunion", -2, R, sunion).keys(1, -1, 1).acl(S).doc("set", "1.0.0", "Returns the union of multiple sets."),
    cmd("sunionstore", -3, W, sunionstore).keys(1, -1, 1).acl(S).doc("set", "1.0.0", "Stores the union of multiple sets in a key."),
    cmd("sdiff", -2, R, sdiff).keys(1, -1, 1).acl(S).doc("set", "1.0.0", "Returns the difference of multiple sets."),
    cmd("sdiffstore", -3, W, sdiffstore).keys(1, -1, 1).acl(S).doc("set", "1.0.0", "Stores the difference of multiple sets in a key."),
    cmd("sscan", -3, R, sscan).keys(1, 1, 1).acl(S).doc("set", "2.8.0", "Iterates over members of a set."),
];

/// SINTERCARD's keys: `numkeys` arguments after the count (bounded by argc).
fn sintercard_keys(argv: &[Bytes]) -> Vec<usize> {
    let n = argv.get(1).and_then(|a| parse_i64(a)).unwrap_or(0);
    if n <= 0 {
        return Vec::new();
    }
    let end = 2usize.saturating_add(n as usize).min(argv.len());
    (2..end).collect()
}

fn max_intset(ctx: &Ctx<'_>) -> usize {
    ctx.srv.config.set_max_intset_entries()
}

/// The set at `key`, counting a keyspace hit or miss.
fn read<'s>(ctx: &'s mut Ctx<'_>, key: &[u8]) -> CmdResult<Option<&'s Set>> {
    let now = ctx.now;
    match ctx.shard(key)?.get(key, now) {
        None => Ok(None),
        Some(ValueRef::Obj(Obj::Set(s))) => Ok(Some(s)),
        Some(_) => Err(CmdError::WRONG_TYPE),
    }
}

/// The set at `key` without touching statistics.
fn peek<'s>(ctx: &'s mut Ctx<'_>, key: &[u8]) -> CmdResult<Option<&'s Set>> {
    let now = ctx.now;
    match ctx.shard(key)?.peek(key, now) {
        None => Ok(None),
        Some(ValueRef::Obj(Obj::Set(s))) => Ok(Some(s)),
        Some(_) => Err(CmdError::WRONG_TYPE),
    }
}

/// The existing set at `key` for writing.
fn existing_mut<'s>(ctx: &'s mut Ctx<'_>, key: &[u8]) -> CmdResult<Option<&'s mut Set>> {
    if peek(ctx, key)?.is_none() {
        return Ok(None);
    }
    let now = ctx.now;
    match ctx.shard(key)?.obj_mut(key, now) {
        Some(Obj::Set(s)) => Ok(Some(s)),
        _ => Err(CmdError::WRONG_TYPE),
    }
}

/// Deletes `key` if its set became empty.
fn drop_if_empty(ctx: &mut Ctx<'_>, key: &[u8]) -> CmdResult<bool> {
    if peek(ctx, key)?.is_some_and(|s| s.is_empty()) {
        let now = ctx.now;
        ctx.shard(key)?.delete(key, now);
        return Ok(true);
    }
    Ok(false)
}

/// Announces `event` on `key`, then its deletion when it emptied.
fn notify_and_del(ctx: &mut Ctx<'_>, event: &str, key: &[u8], deleted: bool) {
    ctx.notify(N::SET, event, key);
    if deleted {
        ctx.notify(N::GENERIC, "del", key);
    }
}

/// ```text
/// SADD key member [member ...]
/// ```
fn sadd(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    // Nothing new: no write, so WATCHers of the key are not disturbed.
    if peek(ctx, key)?.is_some_and(|s| argv[2..].iter().all(|m| s.contains(m))) {
        return Ok(Reply::Int(0));
    }
    let max = max_intset(ctx);
    let now = ctx.now;
    let Some(Obj::Set(s)) = ctx
        .shard(key)?
        .obj_or_insert(key, now, || Obj::Set(Set::default()))
    else {
        return Err(CmdError::WRONG_TYPE);
    };
    let mut added = 0;
    for m in &argv[2..] {
        if s.add(m, max) {
            added += 1;
        }
    }
    ctx.changed(added);
    if added > 0 {
        ctx.notify(N::SET, "sadd", key);
    }
    Ok(Reply::Int(added as i64))
}

fn srem(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    // Nothing to remove: no write, so WATCHers of the key are not disturbed.
    if !peek(ctx, key)?.is_some_and(|s| argv[2..].iter().any(|m| s.contains(m))) {
        return Ok(Reply::Int(0));
    }
    let Some(s) = existing_mut(ctx, key)? else {
        return Ok(Reply::Int(0));
    };
    let mut removed = 0;
    for m in &argv[2..] {
        if s.remove(m) {
            removed += 1;
            if s.is_empty() {
                break;
            }
        }
    }
    let deleted = drop_if_empty(ctx, key)?;
    ctx.changed(removed);
    notify_and_del(ctx, "srem", key, deleted);
    Ok(Reply::Int(removed as i64))
}

fn sismember(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let s = read(ctx, &argv[1])?;
    Ok(Reply::Int(s.is_some_and(|s| s.contains(&argv[2])) as i64))
}

fn smismember(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let s = read(ctx, &argv[1])?;
    Ok(Reply::Array(
        argv[2..]
            .iter()
            .map(|m| Reply::Int(s.is_some_and(|s| s.contains(m)) as i64))
            .collect(),
    ))
}

fn scard(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(
        read(ctx, &argv[1])?.map_or(0, |s| s.len()) as i64
    ))
}

fn smembers(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let resp = ctx.raw_resp();
    Ok(set_reply(resp, read(ctx, &argv[1])?))
}

/// ```text
/// SPOP key [count]
/// ```
fn spop(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    if argv.len() > 3 {
        return Err(CmdError::SYNTAX);
    }
    let count = if argv.len() == 3 {
        Some(positive_arg(&argv[2], None)? as u64)
    } else {
        None
    };
    if count == Some(0) {
        peek(ctx, key)?;
        return Ok(Reply::Set(Vec::new()));
    }
    let Some(s) = existing_mut(ctx, key)? else {
        return Ok(if count.is_some() {
            Reply::Set(Vec::new())
        } else {
            Reply::Null
        });
    };
    let mut rng = rand::thread_rng();
    let reply = match count {
        None => {
            let i = rng.gen_range(0..s.len().max(1));
            Reply::opt_bulk(s.remove_at(i))
        }
        Some(n) if n as usize >= s.len() => {
            let all = s.iter().map(|m| Reply::Bulk(m.to_bytes())).collect();
            let now = ctx.now;
            ctx.shard(key)?.delete(key, now);
            ctx.changed(1);
            ctx.propagate_as(vec![Bytes::from_static(b"DEL"), key.clone()]);
            notify_and_del(ctx, "spop", key, true);
            return Ok(Reply::Set(all));
        }
        Some(n) => {
            let mut out = Vec::with_capacity(n as usize);
            for _ in 0..n {
                let i = rng.gen_range(0..s.len());
                if let Some(m) = s.remove_at(i) {
                    out.push(Reply::Bulk(m));
                }
            }
            Reply::Set(out)
        }
    };
    if ctx.propagating() {
        // The members were chosen at random: replay removes exactly them.
        let mut srem = vec![Bytes::from_static(b"SREM"), key.clone()];
        match &reply {
            Reply::Bulk(m) => srem.push(m.clone()),
            Reply::Set(ms) => srem.extend(ms.iter().filter_map(|m| match m {
                Reply::Bulk(b) => Some(b.clone()),
                _ => None,
            })),
            _ => {}
        }
        if srem.len() > 2 {
            ctx.propagate_as(srem);
        }
    }
    let deleted = drop_if_empty(ctx, key)?;
    ctx.changed(1);
    notify_and_del(ctx, "spop", key, deleted);
    Ok(reply)
}

/// ```text
/// SRANDMEMBER key [count]
/// ```
fn srandmember(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    if argv.len() > 3 {
        return Err(CmdError::SYNTAX);
    }
    let mut rng = rand::thread_rng();
    if argv.len() == 2 {
        let Some(s) = read(ctx, &argv[1])? else {
            return Ok(Reply::Null);
        };
        let i = rng.gen_range(0..s.len().max(1));
        return Ok(Reply::opt_bulk(s.member_at(i).map(|m| m.to_bytes())));
    }
    let l = int_arg(&argv[2])?;
    if l == i64::MIN {
        return Err(CmdError::err(format!(
            "value is out of range, value must between {} and {}",
            -i64::MAX,
            i64::MAX
        )));
    }
    if l < 0 && ctx.reply_overflows(&argv[1], "set", l.unsigned_abs(), 6)? {
        return Ok(Reply::Null);
    }
    let Some(s) = read(ctx, &argv[1])? else {
        return Ok(Reply::Array(Vec::new()));
    };
    let size = s.len();
    if l == 0 || size == 0 {
        return Ok(Reply::Array(Vec::new()));
    }
    let at = |i: usize| Reply::Bulk(s.member_at(i).map_or_else(Bytes::new, |m| m.to_bytes()));
    let out: Vec<Reply> = if l < 0 {
        let count = l.unsigned_abs() as usize;
        let mut out = Vec::with_capacity(count.min(1 << 20));
        for _ in 0..count {
            out.push(at(rng.gen_range(0..size)));
        }
        out
    } else if l as usize >= size {
        s.iter().map(|m| Reply::Bulk(m.to_bytes())).collect()
    } else {
        rand::seq::index::sample(&mut rng, size, l as usize)
            .into_iter()
            .map(at)
            .collect()
    };
    Ok(Reply::Array(out))
}

/// ```text
/// SMOVE source destination member
/// ```
fn smove(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let (src, dst, m) = (&argv[1], &argv[2], &argv[3]);
    let now = ctx.now;
    if !ctx.shard(src)?.contains(src, now) {
        return Ok(Reply::Int(0));
    }
    peek(ctx, src)?;
    peek(ctx, dst)?;
    if src == dst {
        let s = peek(ctx, src)?;
        return Ok(Reply::Int(s.is_some_and(|s| s.contains(m)) as i64));
    }
    if !peek(ctx, src)?.is_some_and(|s| s.contains(m)) {
        return Ok(Reply::Int(0));
    }
    if let Some(s) = existing_mut(ctx, src)? {
        s.remove(m);
    }
    let deleted = drop_if_empty(ctx, src)?;
    ctx.changed(1);
    notify_and_del(ctx, "srem", src, deleted);
    // The destination is only written (and its WATCHers signalled) when
    // the member is new there.
    if peek(ctx, dst)?.is_some_and(|d| d.contains(m)) {
        return Ok(Reply::Int(1));
    }
    let max = max_intset(ctx);
    if let Some(Obj::Set(d)) = ctx
        .shard(dst)?
        .obj_or_insert(dst, now, || Obj::Set(Set::default()))
    {
        if d.add(m, max) {
            ctx.changed(1);
            ctx.notify(N::SET, "sadd", dst);
        }
    }
    Ok(Reply::Int(1))
}

/// Looks up every source key once (hit/miss statistics, WRONGTYPE before
/// any work, as Redis), returning each one's cardinality (`None` = missing).
fn source_sizes(ctx: &mut Ctx<'_>, keys: &[Bytes]) -> CmdResult<Vec<Option<usize>>> {
    keys.iter()
        .map(|k| Ok(read(ctx, k)?.map(|s| s.len())))
        .collect()
}

/// The members of the intersection of `keys` (smallest set's order),
/// stopping at `limit` members (0 = no limit).
fn intersect(ctx: &mut Ctx<'_>, keys: &[Bytes], limit: usize) -> CmdResult<Vec<Bytes>> {
    let sizes = source_sizes(ctx, keys)?;
    if sizes.iter().any(|s| s.is_none()) {
        return Ok(Vec::new());
    }
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by_key(|&i| sizes[i]);
    let first = &keys[order[0]];
    let mut cand: Vec<Bytes> = match peek(ctx, first)? {
        Some(s) => s.iter().map(|m| m.to_bytes()).collect(),
        None => Vec::new(),
    };
    for &j in &order[1..] {
        if cand.is_empty() {
            break;
        }
        if keys[j] == *first {
            continue;
        }
        let Some(s) = peek(ctx, &keys[j])? else {
            return Ok(Vec::new());
        };
        cand.retain(|m| s.contains(m));
    }
    if limit > 0 {
        cand.truncate(limit);
    }
    Ok(cand)
}

/// Adds every member of the set at `key` (if any) to `out`.
fn union_into(ctx: &mut Ctx<'_>, key: &[u8], out: &mut Set, max: usize) -> CmdResult<()> {
    if let Some(s) = peek(ctx, key)? {
        let mut buf = itoa::Buffer::new();
        for m in s.iter() {
            match m {
                Member::Int(n) => out.add(buf.format(n).as_bytes(), max),
                Member::Bytes(b) => out.add(b, max),
            };
        }
    }
    Ok(())
}

fn union(ctx: &mut Ctx<'_>, keys: &[Bytes]) -> CmdResult<Set> {
    source_sizes(ctx, keys)?;
    let max = max_intset(ctx);
    let mut out = Set::default();
    for k in keys {
        union_into(ctx, k, &mut out, max)?;
    }
    Ok(out)
}

fn diff(ctx: &mut Ctx<'_>, keys: &[Bytes]) -> CmdResult<Set> {
    source_sizes(ctx, keys)?;
    let max = max_intset(ctx);
    let mut out = Set::default();
    let first = &keys[0];
    if keys[1..].iter().any(|k| k == first) {
        return Ok(out);
    }
    union_into(ctx, first, &mut out, max)?;
    for k in &keys[1..] {
        if out.is_empty() {
            break;
        }
        let Some(s) = peek(ctx, k)? else {
            continue;
        };
        if s.len() <= out.len() {
            let mut buf = itoa::Buffer::new();
            for m in s.iter() {
                match m {
                    Member::Int(n) => out.remove(buf.format(n).as_bytes()),
                    Member::Bytes(b) => out.remove(b),
                };
            }
        } else {
            let gone: Vec<Vec<u8>> = out
                .iter()
                .map(|m| m.to_vec())
                .filter(|m| s.contains(m))
                .collect();
            for m in gone {
                out.remove(&m);
            }
        }
    }
    Ok(out)
}

/// The members of `s` (none when absent) as a set reply, encoded for
/// `resp` (see [`Bulks`]).
fn set_reply(resp: Option<u8>, s: Option<&Set>) -> Reply {
    let mut out = Bulks::new(resp, Agg::Set, s.map_or(0, |s| s.len()));
    for m in s.iter().flat_map(|s| s.iter()) {
        match m {
            Member::Int(i) => out.push_int(i),
            Member::Bytes(b) => out.push(b),
        }
    }
    out.finish()
}

/// Stores `result` at `dst` (any previous value and TTL replaced), or
/// deletes `dst` when the result is empty; replies with the cardinality.
fn store(ctx: &mut Ctx<'_>, dst: &[u8], result: Set, event: &str) -> CmdResult {
    let now = ctx.now;
    let n = result.len();
    let shard = ctx.shard(dst)?;
    if n > 0 {
        shard.set(dst, Value::Obj(Obj::Set(result)), Ttl::Clear, now);
        ctx.changed(1);
        ctx.notify(N::SET, event, dst);
    } else if shard.delete(dst, now) {
        ctx.changed(1);
        ctx.notify(N::GENERIC, "del", dst);
    }
    Ok(Reply::Int(n as i64))
}

fn sinter(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let members = intersect(ctx, &argv[1..], 0)?;
    Ok(Reply::Set(members.into_iter().map(Reply::Bulk).collect()))
}

/// ```text
/// SINTERCARD numkeys key [key ...] [LIMIT limit]
/// ```
fn sintercard(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let numkeys_err = || CmdError::err("numkeys should be greater than 0");
    let n = parse_i64(&argv[1]).ok_or_else(numkeys_err)?;
    if n < 1 {
        return Err(numkeys_err());
    }
    if n as u64 > (argv.len() - 2) as u64 {
        return Err(CmdError::err(
            "Number of keys can't be greater than number of args",
        ));
    }
    let n = n as usize;
    let mut limit = 0usize;
    let mut j = 2 + n;
    while j < argv.len() {
        if crate::protocol::args::eq_ic(&argv[j], "limit") && j + 1 < argv.len() {
            let l =
                parse_i64(&argv[j + 1]).ok_or_else(|| CmdError::err("LIMIT can't be negative"))?;
            if l < 0 {
                return Err(CmdError::err("LIMIT can't be negative"));
            }
            limit = l as usize;
            j += 2;
        } else {
            return Err(CmdError::SYNTAX);
        }
    }
    let members = intersect(ctx, &argv[2..2 + n], limit)?;
    Ok(Reply::Int(members.len() as i64))
}

fn sinterstore(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let members = intersect(ctx, &argv[2..], 0)?;
    let max = max_intset(ctx);
    let mut out = Set::default();
    for m in &members {
        out.add(m, max);
    }
    store(ctx, &argv[1], out, "sinterstore")
}

fn sunion(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let resp = ctx.raw_resp();
    Ok(set_reply(resp, Some(&union(ctx, &argv[1..])?)))
}

fn sunionstore(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let out = union(ctx, &argv[2..])?;
    store(ctx, &argv[1], out, "sunionstore")
}

fn sdiff(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let resp = ctx.raw_resp();
    Ok(set_reply(resp, Some(&diff(ctx, &argv[1..])?)))
}

fn sdiffstore(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let out = diff(ctx, &argv[2..])?;
    store(ctx, &argv[1], out, "sdiffstore")
}

/// ```text
/// SSCAN key cursor [MATCH pattern] [COUNT count]
/// ```
fn sscan(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let cursor = parse_cursor(&argv[2])?;
    let Some(s) = read(ctx, &argv[1])? else {
        return Ok(scan_reply(0, Vec::new()));
    };
    let opts = ScanOpts::parse(argv, 3)?;
    let mut items = Vec::new();
    let mut buf = itoa::Buffer::new();
    let next = s.scan(cursor, opts.count, |m| {
        let b: &[u8] = match m {
            Member::Int(n) => buf.format(n).as_bytes(),
            Member::Bytes(b) => b,
        };
        if opts.matches(b) {
            items.push(Reply::bulk_copy(b));
        }
    });
    Ok(scan_reply(next, items))
}
