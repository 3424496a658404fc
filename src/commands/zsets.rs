//! Sorted set commands: ZADD ZINCRBY ZREM ZCARD ZSCORE ZMSCORE ZRANK
//! ZREVRANK ZRANGE ZRANGESTORE ZREVRANGE ZRANGEBYSCORE ZREVRANGEBYSCORE
//! ZRANGEBYLEX ZREVRANGEBYLEX ZCOUNT ZLEXCOUNT ZREMRANGEBYRANK
//! ZREMRANGEBYSCORE ZREMRANGEBYLEX ZPOPMIN ZPOPMAX ZMPOP BZPOPMIN BZPOPMAX
//! BZMPOP ZRANDMEMBER ZUNION ZINTER ZDIFF ZUNIONSTORE ZINTERSTORE ZDIFFSTORE
//! ZINTERCARD ZSCAN.
//!
//! Semantics, reply shapes (RESP2 flat arrays vs RESP3 nested pairs and
//! doubles) and error texts follow Redis 7.0.

use bytes::{Bytes, BytesMut};
use rand::Rng;

use crate::commands::blocking::parse_timeout;
use crate::commands::ctx::Ctx;
use crate::commands::hashes::{scan_reply, ScanOpts};
use crate::commands::spec::{cmd, Acl, CmdFlags as F, CommandSpec};
use crate::config::notify as N;
use crate::protocol::args::{eq_ic, int_arg, parse_cursor, positive_arg};
use crate::protocol::codec::parse_i64;
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::storage::zset::{cmp_entry, ZLimits, ZSet};
use crate::storage::{Obj, Shard, Ttl, Value, ValueRef};
use crate::util::float::{format_g17, parse_f64, parse_f64_lenient};

const Z: Acl = Acl::SORTEDSET;
const W: F = F::WRITE.union(F::DENYOOM);
const WF: F = W.union(F::FAST);
const R: F = F::READONLY;
const RF: F = F::READONLY.union(F::FAST);
const BLK: F = F::WRITE
    .union(F::NOSCRIPT)
    .union(F::FAST)
    .union(F::BLOCKING);

/// The sorted set family's rows of the command table (flags, arity, keys and
/// ACL categories as Redis 7.0's COMMAND INFO reports them).
pub const SPECS: &[CommandSpec] = &[
    cmd("zadd", -4, WF, zadd).keys(1, 1, 1).acl(Z).doc("sorted_set", "1.2.0", "Add one or more members to a sorted set, or update its score if it already exists"),
    cmd("zincrby", 4, WF, zincrby).keys(1, 1, 1).acl(Z).doc("sorted_set", "1.2.0", "Increment the score of a member in a sorted set"),
    cmd("zrem", -3, F::WRITE.union(F::FAST), zrem).keys(1, 1, 1).acl(Z).doc("sorted_set", "1.2.0", "Remove one or more members from a sorted set"),
    cmd("zcard", 2, RF, zcard).keys(1, 1, 1).acl(Z).doc("sorted_set", "1.2.0", "Get the number of members in a sorted set"),
    cmd("zscore", 3, RF, zscore).keys(1, 1, 1).acl(Z).doc("sorted_set", "1.2.0", "Get the score associated with the given member in a sorted set"),
    cmd("zmscore", -3, RF, zmscore).keys(1, 1, 1).acl(Z).doc("sorted_set", "6.2.0", "Get the score associated with the given members in a sorted set"),
    cmd("zrank", 3, RF, zrank).keys(1, 1, 1).acl(Z).doc("sorted_set", "2.0.0", "Determine the index of a member in a sorted set"),
    cmd("zrevrank", 3, RF, zrevrank).keys(1, 1, 1).acl(Z).doc("sorted_set", "2.0.0", "Determine the index of a member in a sorted set, with scores ordered from high to low"),
    cmd("zrange", -4, R, zrange).keys(1, 1, 1).acl(Z).doc("sorted_set", "1.2.0", "Return a range of members in a sorted set"),
    cmd("zrangestore", -5, W, zrangestore).keys(1, 2, 1).acl(Z).doc("sorted_set", "6.2.0", "Store a range of members from sorted set into another key"),
    cmd("zrevrange", -4, R, zrevrange).keys(1, 1, 1).acl(Z).doc("sorted_set", "1.2.0", "Return a range of members in a sorted set, by index, with scores ordered from high to low"),
    cmd("zrangebyscore", -4, R, zrangebyscore).keys(1, 1, 1).acl(Z).doc("sorted_set", "1.0.5", "Return a range of members in a sorted set, by score"),
    cmd("zrevrangebyscore", -4, R, zrevrangebyscore).keys(1, 1, 1).acl(Z).doc("sorted_set", "2.2.0", "Return a range of members in a sorted set, by score, with scores ordered from high to low"),
    cmd("zrangebylex", -4, R, zrangebylex).keys(1, 1, 1).acl(Z).doc("sorted_set", "2.8.9", "Return a range of members in a sorted set, by lexicographical range"),
    cmd("zrevrangebylex", -4, R, zrevrangebylex).keys(1, 1, 1).acl(Z).doc("sorted_set", "2.8.9", "Return a range of members in a sorted set, by lexicographical range, ordered from higher to lower strings."),
    cmd("zcount", 4, RF, zcount).keys(1, 1, 1).acl(Z).doc("sorted_set", "2.0.0", "Count the members in a sorted set with scores within the given values"),
    cmd("zlexcount", 4, RF, zlexcount).keys(1, 1, 1).acl(Z).doc("sorted_set", "2.8.9", "Count the number of members in a sorted set between a given lexicographical range"),
    cmd("zremrangebyrank", 4, F::WRITE, zremrangebyrank).keys(1, 1, 1).acl(Z).doc("sorted_set", "2.0.0", "Remove all members in a sorted set within the given indexes"),
    cmd("zremrangebyscore", 4, F::WRITE, zremrangebyscore).keys(1, 1, 1).acl(Z).doc("sorted_set", "1.2.0", "Remove all members in a sorted set within the given scores"),
    cmd("zremrangebylex", 4, F::WRITE, zremrangebylex).keys(1, 1, 1).acl(Z).doc("sorted_set", "2.8.9", "Remove all members in a sorted set between the given lexicographical range"),
    cmd("zpopmin", -2, F::WRITE.union(F::FAST), zpopmin).keys(1, 1, 1).acl(Z).doc("sorted_set", "5.0.0", "Remove and return members with the lowest scores in a sorted set"),
    cmd("zpopmax", -2, F::WRITE.union(F::FAST), zpopmax).keys(1, 1, 1).acl(Z).doc("sorted_set", "5.0.0", "Remove and return members with the highest scores in a sorted set"),
    cmd("zmpop", -4, F::WRITE, zmpop).find_keys(zmpop_keys).acl(Z).doc("sorted_set", "7.0.0", "Remove and return members with scores in a sorted set"),
    cmd("bzpopmin", -3, BLK, bzpopmin).keys(1, -2, 1).acl(Z).doc("sorted_set", "5.0.0", "Remove and return the member with the lowest score from one or more sorted sets, or block until one is available"),
    cmd("bzpopmax", -3, BLK, bzpopmax).keys(1, -2, 1).acl(Z).doc("sorted_set", "5.0.0", "Remove and return the member with the highest score from one or more sorted sets, or block until one is available"),
    cmd("bzmpop", -5, F::WRITE.union(F::BLOCKING), bzmpop).find_keys(bzmpop_keys).acl(Z).doc("sorted_set", "7.0.0", "Remove and return members with scores in a sorted set or block until one is available"),
    cmd("zrandmember", -2, R, zrandmember).keys(1, 1, 1).acl(Z).doc("sorted_set", "6.2.0", "Get one or multiple random elements from a sorted set"),
    cmd("zunion", -3, R, zunion).find_keys(setop_keys).acl(Z).doc("sorted_set", "6.2.0", "Add multiple sorted sets"),
    cmd("zinter", -3, R, zinter).find_keys(setop_keys).acl(Z).doc("sorted_set", "6.2.0", "Intersect multiple sorted sets"),
    cmd("zdiff", -3, R, zdiff).find_keys(setop_keys).acl(Z).doc("sorted_set", "6.2.0", "Subtract multiple sorted sets"),
    cmd("zunionstore", -4, W, zunionstore).find_keys(setop_store_keys).movable_range(1, 1, 1).acl(Z).doc("sorted_set", "2.0.0", "Add multiple sorted sets and store the resulting sorted set in a new key"),
    cmd("zinterstore", -4, W, zinterstore).find_keys(setop_store_keys).movable_range(1, 1, 1).acl(Z).doc("sorted_set", "2.0.0", "Intersect multiple sorted sets and store the resulting sorted set in a new key"),
    cmd("zdiffstore", -4, W, zdiffstore).find_keys(setop_store_keys).movable_range(1, 1, 1).acl(Z).doc("sorted_set", "6.2.0", "Subtract multiple sorted sets and store the resulting sorted set in a new key"),
    cmd("zintercard", -3, R, zintercard).find_keys(setop_keys).acl(Z).doc("sorted_set", "7.0.0", "Intersect multiple sorted sets and return the cardinality of the result"),
    cmd("zscan", -3, R, zscan).keys(1, 1, 1).acl(Z).doc("sorted_set", "2.8.0", "Incrementally iterate sorted sets elements and associated scores"),
];

// ---- key extraction for numkeys commands ------------------------------------

/// Keys of a `numkeys key [key …]` list whose count is at `argv[ni]`.
fn numkeys_at(argv: &[Bytes], ni: usize) -> Vec<usize> {
    let Some(n) = argv.get(ni).and_then(|a| parse_i64(a)) else {
        return Vec::new();
    };
    if n < 1 {
        return Vec::new();
    }
    let end = (ni + 1).saturating_add(n as usize).min(argv.len());
    (ni + 1..end).collect()
}

fn setop_keys(argv: &[Bytes]) -> Vec<usize> {
    numkeys_at(argv, 1)
}

fn setop_store_keys(argv: &[Bytes]) -> Vec<usize> {
    let mut v = vec![1];
    v.extend(numkeys_at(argv, 2));
    v
}

fn zmpop_keys(argv: &[Bytes]) -> Vec<usize> {
    numkeys_at(argv, 1)
}

fn bzmpop_keys(argv: &[Bytes]) -> Vec<usize> {
    numkeys_at(argv, 2)
}

// ---- shared helpers ---------------------------------------------------------

fn limits(ctx: &Ctx<'_>) -> ZLimits {
    ZLimits {
        entries: ctx.srv.config.zset_max_listpack_entries(),
        value: ctx.srv.config.zset_max_listpack_value(),
    }
}

/// The sorted set at `key` for reading (counts a hit/miss): `None` if
/// missing, WRONGTYPE if another type.
fn read<'s>(sh: &'s mut Shard, key: &[u8], now: u64) -> CmdResult<Option<&'s ZSet>> {
    match sh.get(key, now) {
        None => Ok(None),
        Some(ValueRef::Obj(Obj::ZSet(z))) => Ok(Some(z)),
        Some(_) => Err(CmdError::WRONG_TYPE),
    }
}

/// The sorted set at `key` without touching statistics (write paths look
/// keys up this way, as Redis's `lookupKeyWrite`).
fn peek<'s>(sh: &'s mut Shard, key: &[u8], now: u64) -> CmdResult<Option<&'s ZSet>> {
    match sh.peek(key, now) {
        None => Ok(None),
        Some(ValueRef::Obj(Obj::ZSet(z))) => Ok(Some(z)),
        Some(_) => Err(CmdError::WRONG_TYPE),
    }
}

/// The sorted set at `key` for writing: `None` if missing, WRONGTYPE if
/// another type.
fn write<'s>(sh: &'s mut Shard, key: &[u8], now: u64) -> CmdResult<Option<&'s mut ZSet>> {
    match sh.peek(key, now) {
        None => return Ok(None),
        Some(ValueRef::Obj(Obj::ZSet(_))) => {}
        Some(_) => return Err(CmdError::WRONG_TYPE),
    }
    match sh.obj_mut(key, now) {
        Some(Obj::ZSet(z)) => Ok(Some(z)),
        _ => Err(CmdError::INTERNAL),
    }
}

/// Deletes `key` if it holds an empty sorted set (empty collections never
/// stay in the keyspace).
fn drop_if_empty(sh: &mut Shard, key: &[u8], now: u64) -> bool {
    if let Some(ValueRef::Obj(Obj::ZSet(z))) = sh.peek(key, now) {
        if z.is_empty() {
            sh.delete(key, now);
            return true;
        }
    }
    false
}

/// Announces `event` on `key`, then its deletion when it emptied.
fn notify_and_del(ctx: &mut Ctx<'_>, event: &str, key: &[u8], deleted: bool) {
    ctx.notify(N::ZSET, event, key);
    if deleted {
        ctx.notify(N::GENERIC, "del", key);
    }
}

/// Members (score 1) of a plain set used as input to ZUNION/ZINTER/ZDIFF.
fn set_members(s: &crate::storage::set::Set) -> CmdResult<Vec<(Bytes, f64)>> {
    Ok(s.iter().map(|m| (m.to_bytes(), 1.0)).collect())
}

/// A score as a bulk/double reply.
fn dbl(s: f64) -> Reply {
    Reply::Double(s)
}

/// Members, optionally with scores: a flat array in RESP2, an array of
/// `[member, score]` pairs in RESP3 (Redis 7.0's shape for ZRANGE & co).
fn items_reply(items: Vec<(Bytes, f64)>, withscores: bool, resp3: bool) -> Reply {
    if !withscores {
        return Reply::Array(items.into_iter().map(|(m, _)| Reply::Bulk(m)).collect());
    }
    if resp3 {
        Reply::Array(
            items
                .into_iter()
                .map(|(m, s)| Reply::Array(vec![Reply::Bulk(m), dbl(s)]))
                .collect(),
        )
    } else {
        let mut v = Vec::with_capacity(items.len() * 2);
        for (m, s) in items {
            v.push(Reply::Bulk(m));
            v.push(dbl(s));
        }
        Reply::Array(v)
    }
}

/// A score interval (`(1.5`, `-inf`, `+inf`…).
#[derive(Clone, Copy)]
struct ScoreRange {
    min: f64,
    minex: bool,
    max: f64,
    maxex: bool,
}

fn parse_score_bound(b: &[u8]) -> Option<(f64, bool)> {
    match b.first() {
        Some(b'(') => Some((parse_f64_lenient(&b[1..])?, true)),
        _ => Some((parse_f64_lenient(b)?, false)),
    }
}

impl ScoreRange {
    fn parse(min: &[u8], max: &[u8]) -> CmdResult<ScoreRange> {
        let err = || CmdError::err("min or max is not a float");
        let (min, minex) = parse_score_bound(min).ok_or_else(err)?;
        let (max, maxex) = parse_score_bound(max).ok_or_else(err)?;
        Ok(ScoreRange {
            min,
            minex,
            max,
            maxex,
        })
    }

    /// Ascending ranks `[start, end)` of the elements inside the range.
    fn ranks(&self, z: &ZSet) -> (usize, usize) {
        let (min, minex, max, maxex) = (self.min, self.minex, self.max, self.maxex);
        let start = z.count_prefix_score(|s| if minex { s <= min } else { s < min });
        let end = z.count_prefix_score(|s| if maxex { s < max } else { s <= max });
        (start, end.max(start))
    }
}

/// One end of a lex interval.
#[derive(Clone)]
enum LexBound {
    NegInf,
    PosInf,
    Incl(Bytes),
    Excl(Bytes),
}

impl LexBound {
    fn parse(b: &Bytes) -> Option<LexBound> {
        match b.first()? {
            b'+' if b.len() == 1 => Some(LexBound::PosInf),
            b'-' if b.len() == 1 => Some(LexBound::NegInf),
            b'(' => Some(LexBound::Excl(b.slice(1..))),
            b'[' => Some(LexBound::Incl(b.slice(1..))),
            _ => None,
        }
    }
}

#[derive(Clone)]
struct LexRange {
    min: LexBound,
    max: LexBound,
}

impl LexRange {
    fn parse(min: &Bytes, max: &Bytes) -> CmdResult<LexRange> {
        let err = || CmdError::err("min or max not valid string range item");
        Ok(LexRange {
            min: LexBound::parse(min).ok_or_else(err)?,
            max: LexBound::parse(max).ok_or_else(err)?,
        })
    }

    /// Is `m` at or above the lower bound?
    fn gte_min(&self, m: &[u8]) -> bool {
        match &self.min {
            LexBound::NegInf => true,
            LexBound::PosInf => false,
            LexBound::Incl(x) => m >= &x[..],
            LexBound::Excl(x) => m > &x[..],
        }
    }

    /// Is `m` at or below the upper bound?
    fn lte_max(&self, m: &[u8]) -> bool {
        match &self.max {
            LexBound::NegInf => false,
            LexBound::PosInf => true,
            LexBound::Incl(x) => m <= &x[..],
            LexBound::Excl(x) => m < &x[..],
        }
    }

    /// Ranges that can never match anything (min above max, or equal with
    /// an exclusive end), compared as Redis's `sdscmplex` does.
    fn always_empty(&self) -> bool {
        fn key(b: &LexBound) -> (u8, &[u8], bool) {
            match b {
                LexBound::NegInf => (0, &[], true),
                LexBound::Incl(x) => (1, x, false),
                LexBound::Excl(x) => (1, x, true),
                LexBound::PosInf => (2, &[], true),
            }
        }
        let (a, b) = (key(&self.min), key(&self.max));
        match (a.0, a.1).cmp(&(b.0, b.1)) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Equal => a.2 || b.2,
            std::cmp::Ordering::Less => false,
        }
    }

    /// Ascending ranks `[start, end)` of the elements in the range, iterated
    /// forward (or backward when `rev`).
    ///
    /// Lex ranges are meant for sets whose elements share one score; there
    /// both encodings agree with a plain bound search. With mixed scores the
    /// answer is Redis's "undefined" one: for the listpack encoding we follow
    /// Redis's linear scan exactly (first element at or above min, then
    /// forward while at or below max; mirrored for REV); for the skiplist
    /// encoding we use the bound search (Redis's own result there depends on
    /// the skiplist's random levels).
    fn window(&self, z: &ZSet, rev: bool) -> (usize, usize) {
        if z.encoding() != "listpack" {
            let start = z.count_prefix(|_, m| !self.gte_min(m));
            let end = z.count_prefix(|_, m| self.lte_max(m));
            return (start, end.max(start));
        }
        let items = z.to_vec();
        let n = items.len();
        let (Some(first), Some(last)) = (items.first(), items.last()) else {
            return (0, 0);
        };
        if self.always_empty() || !self.gte_min(&last.0) || !self.lte_max(&first.0) {
            return (0, 0);
        }
        if rev {
            let Some(j) = items.iter().rposition(|(m, _)| self.lte_max(m)) else {
                return (0, 0);
            };
            if !self.gte_min(&items[j].0) {
                return (0, 0);
            }
            let mut i = j;
            while i > 0 && self.gte_min(&items[i - 1].0) {
                i -= 1;
            }
            (i, j + 1)
        } else {
            let Some(i) = items.iter().position(|(m, _)| self.gte_min(m)) else {
                return (0, 0);
            };
            if !self.lte_max(&items[i].0) {
                return (0, 0);
            }
            let mut j = i;
            while j < n && self.lte_max(&items[j].0) {
                j += 1;
            }
            (i, j)
        }
    }
}

// ---- ZADD / ZINCRBY ---------------------------------------------------------

#[derive(Clone, Copy, Default)]
struct AddFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    incr: bool,
}

enum AddOutcome {
    Added,
    Updated,
    /// Processed, but the score did not change.
    Same,
    /// Not processed (NX/XX/GT/LT).
    Nop,
}

/// Redis's `zsetAdd` decision for one score/member pair under the flags,
/// given the member's current score: the outcome and the resulting score.
/// `Err(())` when the resulting score is NaN.
fn plan_add(cur: Option<f64>, mut score: f64, f: AddFlags) -> Result<(AddOutcome, f64), ()> {
    if score.is_nan() {
        return Err(());
    }
    match cur {
        Some(cur) => {
            if f.nx {
                return Ok((AddOutcome::Nop, cur));
            }
            if f.incr {
                score += cur;
                if score.is_nan() {
                    return Err(());
                }
            }
            if (f.lt && score >= cur) || (f.gt && score <= cur) {
                return Ok((AddOutcome::Nop, cur));
            }
            if score != cur {
                Ok((AddOutcome::Updated, score))
            } else {
                Ok((AddOutcome::Same, score))
            }
        }
        None if f.xx => Ok((AddOutcome::Nop, score)),
        None => Ok((AddOutcome::Added, score)),
    }
}

/// Applies one score/member pair (see [`plan_add`]).
fn zset_add(
    z: &mut ZSet,
    score: f64,
    member: &[u8],
    f: AddFlags,
    lim: ZLimits,
) -> Result<(AddOutcome, f64), ()> {
    let (o, s) = plan_add(z.score(member), score, f)?;
    if matches!(o, AddOutcome::Added | AddOutcome::Updated) {
        z.insert(member, s, lim);
    }
    Ok((o, s))
}

/// ```text
/// ZADD key [NX | XX] [GT | LT] [CH] [INCR] score member [score member ...]
/// ```
fn zadd(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    zadd_generic(ctx, argv, AddFlags::default())
}

/// ```text
/// ZINCRBY key increment member
/// ```
fn zincrby(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    zadd_generic(
        ctx,
        argv,
        AddFlags {
            incr: true,
            ..AddFlags::default()
        },
    )
}

fn zadd_generic(ctx: &mut Ctx<'_>, argv: &[Bytes], mut f: AddFlags) -> CmdResult {
    let key = &argv[1];
    let mut ch = false;
    let mut idx = 2;
    while idx < argv.len() {
        let o = &argv[idx];
        if eq_ic(o, "nx") {
            f.nx = true;
        } else if eq_ic(o, "xx") {
            f.xx = true;
        } else if eq_ic(o, "ch") {
            ch = true;
        } else if eq_ic(o, "incr") {
            f.incr = true;
        } else if eq_ic(o, "gt") {
            f.gt = true;
        } else if eq_ic(o, "lt") {
            f.lt = true;
        } else {
            break;
        }
        idx += 1;
    }
    let rest = &argv[idx..];
    if rest.is_empty() || !rest.len().is_multiple_of(2) {
        return Err(CmdError::SYNTAX);
    }
    if f.nx && f.xx {
        return Err(CmdError::err(
            "XX and NX options at the same time are not compatible",
        ));
    }
    if (f.nx && (f.gt || f.lt)) || (f.gt && f.lt) {
        return Err(CmdError::err(
            "GT, LT, and/or NX options at the same time are not compatible",
        ));
    }
    let n = rest.len() / 2;
    if f.incr && n > 1 {
        return Err(CmdError::err(
            "INCR option supports a single increment-element pair",
        ));
    }
    let mut scores = Vec::with_capacity(n);
    for pair in rest.chunks(2) {
        scores.push(parse_f64(&pair[0]).ok_or(CmdError::NOT_FLOAT)?);
    }
    let lim = limits(ctx);
    let now = ctx.now;
    let sh = ctx.shard(key)?;
    let exists = match sh.peek(key, now) {
        None => false,
        Some(ValueRef::Obj(Obj::ZSet(z))) => {
            // Dry run: a ZADD that changes nothing must leave the key
            // untouched (no WATCH invalidation), as Redis signals only
            // real modifications.
            let (mut processed, mut last) = (false, 0.0);
            for (pair, &score) in rest.chunks(2).zip(scores.iter()) {
                match plan_add(z.score(&pair[1]), score, f) {
                    Err(()) => return Err(CmdError::err("resulting score is not a number (NaN)")),
                    Ok((AddOutcome::Added | AddOutcome::Updated, _)) => {
                        processed = false;
                        last = f64::NAN;
                        break;
                    }
                    Ok((AddOutcome::Nop, _)) => {}
                    Ok((AddOutcome::Same, s)) => {
                        processed = true;
                        last = s;
                    }
                }
            }
            if !last.is_nan() {
                return Ok(match (f.incr, processed) {
                    (true, true) => dbl(last),
                    (true, false) => Reply::Null,
                    (false, _) => Reply::Int(0),
                });
            }
            true
        }
        Some(_) => return Err(CmdError::WRONG_TYPE),
    };
    if !exists {
        if f.xx {
            return Ok(if f.incr { Reply::Null } else { Reply::Int(0) });
        }
        let z = ZSet::with_hint(1, rest[1].len(), lim);
        sh.set(key, Value::Obj(Obj::ZSet(z)), Ttl::Clear, now);
    }
    let Some(z) = write(sh, key, now)? else {
        return Err(CmdError::INTERNAL);
    };
    let (mut added, mut updated, mut processed) = (0i64, 0i64, 0i64);
    let mut last = 0.0;
    let mut nan = false;
    for (pair, &score) in rest.chunks(2).zip(scores.iter()) {
        match zset_add(z, score, &pair[1], f, lim) {
            Err(()) => {
                nan = true;
                break;
            }
            Ok((o, s)) => {
                match o {
                    AddOutcome::Added => added += 1,
                    AddOutcome::Updated => updated += 1,
                    _ => {}
                }
                if !matches!(o, AddOutcome::Nop) {
                    processed += 1;
                }
                last = s;
            }
        }
    }
    drop_if_empty(sh, key, now);
    ctx.changed((added + updated) as u64);
    if added + updated > 0 {
        ctx.notify(N::ZSET, if f.incr { "zincr" } else { "zadd" }, key);
    }
    if added > 0 {
        ctx.signal_ready(key);
    }
    if nan {
        return Err(CmdError::err("resulting score is not a number (NaN)"));
    }
    Ok(if f.incr {
        if processed > 0 {
            dbl(last)
        } else {
            Reply::Null
        }
    } else {
        Reply::Int(if ch { added + updated } else { added })
    })
}

// ---- simple reads / removal -------------------------------------------------

/// ```text
/// ZREM key member [member ...]
/// ```
fn zrem(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let now = ctx.now;
    let sh = ctx.shard(key)?;
    // Check first, so a no-op does not invalidate WATCHes.
    match peek(sh, key, now)? {
        Some(z) if argv[2..].iter().any(|m| z.score(m).is_some()) => {}
        _ => return Ok(Reply::Int(0)),
    }
    let Some(z) = write(sh, key, now)? else {
        return Ok(Reply::Int(0));
    };
    let mut n = 0;
    for m in &argv[2..] {
        if z.remove(m).is_some() {
            n += 1;
            if z.is_empty() {
                break;
            }
        }
    }
    let deleted = drop_if_empty(sh, key, now);
    ctx.changed(n);
    notify_and_del(ctx, "zrem", key, deleted);
    Ok(Reply::Int(n as i64))
}

/// ```text
/// ZCARD key
/// ```
fn zcard(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let now = ctx.now;
    let z = read(ctx.shard(&argv[1])?, &argv[1], now)?;
    Ok(Reply::Int(z.map_or(0, |z| z.len()) as i64))
}

/// ```text
/// ZSCORE key member
/// ```
fn zscore(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let now = ctx.now;
    let z = read(ctx.shard(&argv[1])?, &argv[1], now)?;
    Ok(match z.and_then(|z| z.score(&argv[2])) {
        Some(s) => dbl(s),
        None => Reply::Null,
    })
}

/// ```text
/// ZMSCORE key member [member ...]
/// ```
fn zmscore(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let now = ctx.now;
    let z = read(ctx.shard(&argv[1])?, &argv[1], now)?;
    Ok(Reply::Array(
        argv[2..]
            .iter()
            .map(|m| match z.and_then(|z| z.score(m)) {
                Some(s) => dbl(s),
                None => Reply::Null,
            })
            .collect(),
    ))
}

fn rank_generic(ctx: &mut Ctx<'_>, argv: &[Bytes], rev: bool) -> CmdResult {
    let now = ctx.now;
    let z = read(ctx.shard(&argv[1])?, &argv[1], now)?;
    let Some(z) = z else {
        return Ok(Reply::Null);
    };
    Ok(match z.rank(&argv[2]) {
        Some(r) => Reply::Int(if rev { z.len() - 1 - r } else { r } as i64),
        None => Reply::Null,
    })
}

/// ```text
/// ZRANK key member
/// ```
fn zrank(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    rank_generic(ctx, argv, false)
}

/// ```text
/// ZREVRANK key member
/// ```
fn zrevrank(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    rank_generic(ctx, argv, true)
}

/// ```text
/// ZCOUNT key min max
/// ```
fn zcount(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let range = ScoreRange::parse(&argv[2], &argv[3])?;
    let now = ctx.now;
    let z = read(ctx.shard(&argv[1])?, &argv[1], now)?;
    Ok(Reply::Int(z.map_or(0, |z| {
        let (a, b) = range.ranks(z);
        b - a
    }) as i64))
}

/// ```text
/// ZLEXCOUNT key min max
/// ```
fn zlexcount(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let range = LexRange::parse(&argv[2], &argv[3])?;
    let now = ctx.now;
    let z = read(ctx.shard(&argv[1])?, &argv[1], now)?;
    Ok(Reply::Int(z.map_or(0, |z| {
        let (a, b) = range.window(z, false);
        b - a
    }) as i64))
}

// ---- ZRANGE family ----------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum RangeType {
    Auto,
    Rank,
    Score,
    Lex,
}

#[derive(Clone, Copy, PartialEq)]
enum Dir {
    Auto,
    Forward,
    Reverse,
}

/// A run of ascending ranks `[start, end)` read in ascending order, or
/// descending when `rev`.
#[derive(Clone, Copy)]
struct Window {
    start: usize,
    end: usize,
    rev: bool,
}

impl Window {
    const EMPTY: Window = Window {
        start: 0,
        end: 0,
        rev: false,
    };

    fn len(&self) -> usize {
        self.end.saturating_sub(self.start)
    }
}

/// The window of ZRANGE's rank form (`start`/`end` may be negative).
fn select_rank(z: &ZSet, start: i64, end: i64, rev: bool) -> Window {
    let llen = z.len() as i64;
    let mut start = if start < 0 { llen + start } else { start };
    let mut end = if end < 0 { llen + end } else { end };
    if start < 0 {
        start = 0;
    }
    if start > end || start >= llen {
        return Window::EMPTY;
    }
    if end >= llen {
        end = llen - 1;
    }
    if rev {
        Window {
            start: (llen - 1 - end) as usize,
            end: (llen - start) as usize,
            rev,
        }
    } else {
        Window {
            start: start as usize,
            end: end as usize + 1,
            rev,
        }
    }
}

/// The ascending ranks `[a, b)` in the requested direction, after skipping
/// `offset` and keeping at most `limit` (negative = all).
fn select_window(z: &ZSet, a: usize, b: usize, rev: bool, offset: i64, limit: i64) -> Window {
    if offset < 0 || (offset > 0 && offset as usize >= z.len()) || a >= b {
        return Window::EMPTY;
    }
    let avail = b - a;
    let off = offset as usize;
    if off >= avail {
        return Window::EMPTY;
    }
    let take = if limit < 0 {
        avail - off
    } else {
        (limit as usize).min(avail - off)
    };
    if rev {
        let hi = b - off;
        Window {
            start: hi - take,
            end: hi,
            rev,
        }
    } else {
        Window {
            start: a + off,
            end: a + off + take,
            rev,
        }
    }
}

/// Encodes the members of `w` (with scores if asked) straight from the
/// set, in the shape `items_reply` gives, without copying each member into
/// a reply value first.
fn window_reply(z: &ZSet, w: Window, withscores: bool, resp: u8) -> Reply {
    use crate::protocol::reply::{put_bulk, put_double, put_len};
    let n = w.len();
    let resp3 = resp >= 3;
    let mut out = BytesMut::with_capacity(16 + n * (z.member_bytes() / z.len().max(1) + 32));
    let items = if withscores && !resp3 { 2 * n } else { n };
    put_len(&mut out, b'*', items as i64);
    z.for_each_in(w.start, w.end, w.rev, |m, score| {
        if withscores && resp3 {
            out.extend_from_slice(b"*2\r\n");
        }
        put_bulk(&mut out, m);
        if withscores {
            put_double(&mut out, score, resp3);
        }
    });
    Reply::Raw(out.freeze())
}

fn zrange_generic(
    ctx: &mut Ctx<'_>,
    argv: &[Bytes],
    src: usize,
    dst: Option<&Bytes>,
    mut rtype: RangeType,
    mut dir: Dir,
) -> CmdResult {
    let store = dst.is_some();
    let key = &argv[src];
    let (mut minidx, mut maxidx) = (src + 1, src + 2);
    let mut withscores = false;
    let (mut offset, mut limit) = (0i64, -1i64);
    let mut j = src + 3;
    while j < argv.len() {
        let left = argv.len() - j - 1;
        let o = &argv[j];
        if !store && eq_ic(o, "withscores") {
            withscores = true;
        } else if eq_ic(o, "limit") && left >= 2 {
            offset = int_arg(&argv[j + 1])?;
            limit = int_arg(&argv[j + 2])?;
            j += 2;
        } else if dir == Dir::Auto && eq_ic(o, "rev") {
            dir = Dir::Reverse;
        } else if rtype == RangeType::Auto && eq_ic(o, "bylex") {
            rtype = RangeType::Lex;
        } else if rtype == RangeType::Auto && eq_ic(o, "byscore") {
            rtype = RangeType::Score;
        } else {
            return Err(CmdError::SYNTAX);
        }
        j += 1;
    }
    if dir == Dir::Auto {
        dir = Dir::Forward;
    }
    if rtype == RangeType::Auto {
        rtype = RangeType::Rank;
    }
    if limit != -1 && rtype == RangeType::Rank {
        return Err(CmdError::err(
            "syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    if withscores && rtype == RangeType::Lex {
        return Err(CmdError::err(
            "syntax error, WITHSCORES not supported in combination with BYLEX",
        ));
    }
    let rev = dir == Dir::Reverse;
    if rev && rtype != RangeType::Rank {
        std::mem::swap(&mut minidx, &mut maxidx);
    }
    enum Sel {
        Rank(i64, i64),
        Score(ScoreRange),
        Lex(LexRange),
    }
    let sel = match rtype {
        RangeType::Score => Sel::Score(ScoreRange::parse(&argv[minidx], &argv[maxidx])?),
        RangeType::Lex => Sel::Lex(LexRange::parse(&argv[minidx], &argv[maxidx])?),
        _ => Sel::Rank(int_arg(&argv[minidx])?, int_arg(&argv[maxidx])?),
    };
    let now = ctx.now;
    let resp = ctx.client.resp;
    let in_script = ctx.in_script;
    let lim = limits(ctx);
    let window = |z: &ZSet| match &sel {
        Sel::Rank(a, b) => select_rank(z, *a, *b, rev),
        Sel::Score(r) => {
            let (a, b) = r.ranks(z);
            select_window(z, a, b, rev, offset, limit)
        }
        Sel::Lex(r) => {
            let (a, b) = r.window(z, rev);
            select_window(z, a, b, rev, offset, limit)
        }
    };
    let (dst, result) = {
        let z = read(ctx.shard(key)?, key, now)?;
        let Some(dst) = dst else {
            return Ok(match z {
                None => Reply::Array(Vec::new()),
                // A script converts the reply to Lua: it needs values.
                Some(z) if in_script => {
                    let w = window(z);
                    let mut items = Vec::with_capacity(w.len());
                    z.for_each_in(w.start, w.end, w.rev, |m, s| {
                        items.push((Bytes::copy_from_slice(m), s))
                    });
                    items_reply(items, withscores, resp >= 3)
                }
                Some(z) => window_reply(z, window(z), withscores, resp),
            });
        };
        let result = match z {
            None => ZSet::new(),
            Some(z) => {
                let w = window(z);
                let hint = if matches!(sel, Sel::Rank(..)) {
                    w.len()
                } else {
                    0
                };
                let mut out = ZSet::with_hint(hint, 0, lim);
                z.for_each_in(w.start, w.end, w.rev, |m, s| {
                    out.insert(m, s, lim);
                });
                out
            }
        };
        (dst, result)
    };
    store_result(ctx, dst, result, "zrangestore")
}

/// Writes a store command's result to `dst` (deleting `dst` when the result
/// is empty) and returns the reply (the result's cardinality).
fn store_result(ctx: &mut Ctx<'_>, dst: &Bytes, z: ZSet, event: &str) -> CmdResult {
    let now = ctx.now;
    let n = z.len();
    let sh = ctx.shard(dst)?;
    if n > 0 {
        sh.set(dst, Value::Obj(Obj::ZSet(z)), Ttl::Clear, now);
        ctx.changed(1);
        ctx.notify(N::ZSET, event, dst);
        ctx.signal_ready(dst);
    } else if sh.delete(dst, now) {
        ctx.changed(1);
        ctx.notify(N::GENERIC, "del", dst);
    }
    Ok(Reply::Int(n as i64))
}

/// ```text
/// ZRANGE key start stop [BYSCORE | BYLEX] [REV] [LIMIT offset count] [WITHSCORES]
/// ```
fn zrange(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    zrange_generic(ctx, argv, 1, None, RangeType::Auto, Dir::Auto)
}

/// ```text
/// ZRANGESTORE dst src min max [BYSCORE | BYLEX] [REV] [LIMIT offset count]
/// ```
fn zrangestore(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    zrange_generic(ctx, argv, 2, Some(&argv[1]), RangeType::Auto, Dir::Auto)
}

/// ```text
/// ZREVRANGE key start stop [WITHSCORES]
/// ```
fn zrevrange(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    zrange_generic(ctx, argv, 1, None, RangeType::Rank, Dir::Reverse)
}

/// ```text
/// ZRANGEBYSCORE key min max [WITHSCORES] [LIMIT offset count]
/// ```
fn zrangebyscore(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    zrange_generic(ctx, argv, 1, None, RangeType::Score, Dir::Forward)
}

/// ```text
/// ZREVRANGEBYSCORE key max min [WITHSCORES] [LIMIT offset count]
/// ```
fn zrevrangebyscore(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    zrange_generic(ctx, argv, 1, None, RangeType::Score, Dir::Reverse)
}

/// ```text
/// ZRANGEBYLEX key min max [LIMIT offset count]
/// ```
fn zrangebylex(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    zrange_generic(ctx, argv, 1, None, RangeType::Lex, Dir::Forward)
}

/// ```text
/// ZREVRANGEBYLEX key max min [LIMIT offset count]
/// ```
fn zrevrangebylex(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    zrange_generic(ctx, argv, 1, None, RangeType::Lex, Dir::Reverse)
}

// ---- ZREMRANGEBY* -----------------------------------------------------------

/// Removes the elements with ascending ranks computed by `ranks` from `key`.
fn zremrange(
    ctx: &mut Ctx<'_>,
    event: &str,
    key: &Bytes,
    ranks: impl FnOnce(&ZSet) -> (usize, usize),
) -> CmdResult {
    let now = ctx.now;
    let sh = ctx.shard(key)?;
    let (a, b) = match peek(sh, key, now)? {
        Some(z) => ranks(z),
        None => return Ok(Reply::Int(0)),
    };
    if a >= b {
        return Ok(Reply::Int(0));
    }
    let Some(z) = write(sh, key, now)? else {
        return Ok(Reply::Int(0));
    };
    let n = z.remove_range(a, b).len();
    let deleted = drop_if_empty(sh, key, now);
    ctx.changed(n as u64);
    notify_and_del(ctx, event, key, deleted);
    Ok(Reply::Int(n as i64))
}

/// ```text
/// ZREMRANGEBYRANK key start stop
/// ```
fn zremrangebyrank(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let start = int_arg(&argv[2])?;
    let end = int_arg(&argv[3])?;
    zremrange(ctx, "zremrangebyrank", &argv[1], |z| {
        let llen = z.len() as i64;
        let mut s = if start < 0 { llen + start } else { start };
        let mut e = if end < 0 { llen + end } else { end };
        if s < 0 {
            s = 0;
        }
        if s > e || s >= llen {
            return (0, 0);
        }
        if e >= llen {
            e = llen - 1;
        }
        (s as usize, e as usize + 1)
    })
}

/// ```text
/// ZREMRANGEBYSCORE key min max
/// ```
fn zremrangebyscore(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let r = ScoreRange::parse(&argv[2], &argv[3])?;
    zremrange(ctx, "zremrangebyscore", &argv[1], |z| r.ranks(z))
}

/// ```text
/// ZREMRANGEBYLEX key min max
/// ```
fn zremrangebylex(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let r = LexRange::parse(&argv[2], &argv[3])?;
    zremrange(ctx, "zremrangebylex", &argv[1], |z| r.window(z, false))
}

// ---- pops -------------------------------------------------------------------

/// Pops up to `count` elements from the min or max end of the sorted set at
/// `key` (which must exist and be a sorted set), deleting it when emptied.
fn pop_from(
    ctx: &mut Ctx<'_>,
    key: &[u8],
    max: bool,
    count: usize,
) -> CmdResult<Vec<(Bytes, f64)>> {
    let now = ctx.now;
    let sh = ctx.shard(key)?;
    let Some(z) = write(sh, key, now)? else {
        return Ok(Vec::new());
    };
    let n = count.min(z.len());
    let items = if max {
        let len = z.len();
        let mut v = z.remove_range(len - n, len);
        v.reverse();
        v
    } else {
        z.remove_range(0, n)
    };
    let deleted = drop_if_empty(sh, key, now);
    ctx.changed(items.len() as u64);
    if !items.is_empty() {
        notify_and_del(ctx, if max { "zpopmax" } else { "zpopmin" }, key, deleted);
    }
    Ok(items)
}

/// The first of `keys` holding a sorted set (WRONGTYPE if the first existing
/// key holds another type), as Redis's `genericZpopCommand` picks it.
fn first_existing(ctx: &mut Ctx<'_>, keys: &[Bytes]) -> CmdResult<Option<Bytes>> {
    let now = ctx.now;
    for k in keys {
        match ctx.shard(k)?.peek(k, now) {
            None => continue,
            Some(ValueRef::Obj(Obj::ZSet(_))) => return Ok(Some(k.clone())),
            Some(_) => return Err(CmdError::WRONG_TYPE),
        }
    }
    Ok(None)
}

/// `[[member, score], ...]`.
fn nested_pairs(items: Vec<(Bytes, f64)>) -> Reply {
    Reply::Array(
        items
            .into_iter()
            .map(|(m, s)| Reply::Array(vec![Reply::Bulk(m), dbl(s)]))
            .collect(),
    )
}

fn zpop_generic(ctx: &mut Ctx<'_>, argv: &[Bytes], max: bool) -> CmdResult {
    if argv.len() > 3 {
        return Err(CmdError::SYNTAX);
    }
    let mut count: i64 = -1;
    if argv.len() == 3 {
        count = positive_arg(&argv[2], None)?;
    }
    let nested = ctx.client.resp >= 3 && count != -1;
    let Some(key) = first_existing(ctx, &argv[1..2])? else {
        return Ok(Reply::Array(Vec::new()));
    };
    if count == 0 {
        return Ok(Reply::Array(Vec::new()));
    }
    let items = pop_from(ctx, &key, max, count.max(1) as usize)?;
    Ok(if nested {
        nested_pairs(items)
    } else {
        items_reply(items, true, false)
    })
}

/// ```text
/// ZPOPMIN key [count]
/// ```
fn zpopmin(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    zpop_generic(ctx, argv, false)
}

/// ```text
/// ZPOPMAX key [count]
/// ```
fn zpopmax(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    zpop_generic(ctx, argv, true)
}

/// Parsed `numkeys key... MIN|MAX [COUNT n]` of ZMPOP/BZMPOP.
struct MpopArgs {
    keys: std::ops::Range<usize>,
    max: bool,
    count: i64,
}

fn parse_mpop(argv: &[Bytes], ni: usize) -> CmdResult<MpopArgs> {
    let numkeys_err = || CmdError::err("numkeys should be greater than 0");
    let numkeys = parse_i64(&argv[ni]).ok_or_else(numkeys_err)?;
    if numkeys < 1 {
        return Err(numkeys_err());
    }
    let where_idx = (ni as u64 + numkeys as u64 + 1) as usize;
    if where_idx >= argv.len() {
        return Err(CmdError::SYNTAX);
    }
    let max = if eq_ic(&argv[where_idx], "min") {
        false
    } else if eq_ic(&argv[where_idx], "max") {
        true
    } else {
        return Err(CmdError::SYNTAX);
    };
    let mut count = -1;
    let mut j = where_idx + 1;
    while j < argv.len() {
        let more = argv.len() - 1 - j;
        if count == -1 && eq_ic(&argv[j], "count") && more > 0 {
            j += 1;
            let c = parse_i64(&argv[j])
                .filter(|c| *c >= 1)
                .ok_or_else(|| CmdError::err("count should be greater than 0"))?;
            count = c;
        } else {
            return Err(CmdError::SYNTAX);
        }
        j += 1;
    }
    Ok(MpopArgs {
        keys: ni + 1..where_idx,
        max,
        count: count.max(1),
    })
}

/// ```text
/// ZMPOP numkeys key [key ...] MIN | MAX [COUNT count]
/// ```
fn zmpop(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let a = parse_mpop(argv, 1)?;
    let Some(key) = first_existing(ctx, &argv[a.keys])? else {
        return Ok(Reply::NullArray);
    };
    let items = pop_from(ctx, &key, a.max, a.count as usize)?;
    propagate_zpop(ctx, a.max, &key, items.len());
    Ok(Reply::Array(vec![Reply::Bulk(key), nested_pairs(items)]))
}

/// ZMPOP and BZMPOP are replicated as `ZPOPMIN|ZPOPMAX key count` (as
/// Redis 7).
fn propagate_zpop(ctx: &mut Ctx<'_>, max: bool, key: &Bytes, n: usize) {
    if ctx.propagating() {
        let name: &'static [u8] = if max { b"ZPOPMAX" } else { b"ZPOPMIN" };
        ctx.propagate_as(vec![
            Bytes::from_static(name),
            key.clone(),
            Bytes::from(n.to_string()),
        ]);
    }
}

/// The first of `keys` holding a non-empty sorted set; WRONGTYPE if a key
/// before it holds another type. When re-run for a woken blocked client, a
/// key that changed type meanwhile is skipped (the client keeps waiting), as
/// Redis only serves blocked clients from keys of the right type.
fn first_ready(ctx: &mut Ctx<'_>, keys: &[Bytes]) -> CmdResult<Option<Bytes>> {
    let now = ctx.now;
    let serving = ctx.client.blocking.serving;
    for k in keys {
        match ctx.shard(k)?.peek(k, now) {
            None => continue,
            Some(ValueRef::Obj(Obj::ZSet(z))) if !z.is_empty() => return Ok(Some(k.clone())),
            Some(ValueRef::Obj(Obj::ZSet(_))) => continue,
            Some(_) if serving => continue,
            Some(_) => return Err(CmdError::WRONG_TYPE),
        }
    }
    Ok(None)
}

fn bzpop_generic(ctx: &mut Ctx<'_>, argv: &[Bytes], max: bool) -> CmdResult {
    let deadline = parse_timeout(&argv[argv.len() - 1], ctx.now)?;
    let keys = &argv[1..argv.len() - 1];
    match first_ready(ctx, keys)? {
        Some(key) => {
            let items = pop_from(ctx, &key, max, 1)?;
            // Replicated as ZPOPMIN / ZPOPMAX (as Redis 7).
            if ctx.propagating() {
                let name: &'static [u8] = if max { b"ZPOPMAX" } else { b"ZPOPMIN" };
                ctx.propagate_as(vec![Bytes::from_static(name), key.clone()]);
            }
            let mut v = vec![Reply::Bulk(key)];
            for (m, s) in items {
                v.push(Reply::Bulk(m));
                v.push(dbl(s));
            }
            Ok(Reply::Array(v))
        }
        None => ctx.block(keys, deadline, Reply::NullArray),
    }
}

/// ```text
/// BZPOPMIN key [key ...] timeout
/// ```
fn bzpopmin(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    bzpop_generic(ctx, argv, false)
}

/// ```text
/// BZPOPMAX key [key ...] timeout
/// ```
fn bzpopmax(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    bzpop_generic(ctx, argv, true)
}

/// ```text
/// BZMPOP timeout numkeys key [key ...] MIN | MAX [COUNT count]
/// ```
fn bzmpop(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let a = parse_mpop(argv, 2)?;
    let deadline = parse_timeout(&argv[1], ctx.now)?;
    let keys = &argv[a.keys];
    match first_ready(ctx, keys)? {
        Some(key) => {
            let items = pop_from(ctx, &key, a.max, a.count as usize)?;
            propagate_zpop(ctx, a.max, &key, items.len());
            Ok(Reply::Array(vec![Reply::Bulk(key), nested_pairs(items)]))
        }
        None => ctx.block(keys, deadline, Reply::NullArray),
    }
}

// ---- ZRANDMEMBER ------------------------------------------------------------

/// Largest reply ZRANDMEMBER with a negative count builds (elements).
const MAX_RANDOM_REPLY: usize = 1 << 24;

/// ```text
/// ZRANDMEMBER key [count [WITHSCORES]]
/// ```
fn zrandmember(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let resp3 = ctx.client.resp >= 3;
    let now = ctx.now;
    let key = &argv[1];
    if argv.len() == 2 {
        let z = read(ctx.shard(key)?, key, now)?;
        return Ok(match z {
            Some(z) if !z.is_empty() => {
                let r = rand::thread_rng().gen_range(0..z.len());
                Reply::opt_bulk(z.get(r).map(|(m, _)| m))
            }
            _ => Reply::Null,
        });
    }
    let l = int_arg(&argv[2])?;
    if l == i64::MIN {
        return Err(CmdError::err(
            "value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        ));
    }
    let mut withscores = false;
    if argv.len() > 4 || (argv.len() == 4 && !eq_ic(&argv[3], "withscores")) {
        return Err(CmdError::SYNTAX);
    } else if argv.len() == 4 {
        withscores = true;
        if !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&l) {
            return Err(CmdError::err("value is out of range"));
        }
    }
    let each = if withscores { 12 } else { 6 };
    if l < 0 && ctx.reply_overflows(key, "zset", l.unsigned_abs(), each)? {
        return Ok(Reply::Null);
    }
    let z = read(ctx.shard(key)?, key, now)?;
    let Some(z) = z else {
        return Ok(Reply::Array(Vec::new()));
    };
    let size = z.len();
    if l == 0 || size == 0 {
        return Ok(Reply::Array(Vec::new()));
    }
    let mut rng = rand::thread_rng();
    let items: Vec<(Bytes, f64)> = if l < 0 {
        let count = l.unsigned_abs() as usize;
        // Redis would stream an arbitrarily long reply; we build it in memory,
        // so refuse replies that could only exhaust it.
        if count > MAX_RANDOM_REPLY {
            return Err(CmdError::err("value is out of range"));
        }
        (0..count)
            .filter_map(|_| z.get(rng.gen_range(0..size)))
            .collect()
    } else {
        let count = l as usize;
        if count >= size {
            z.to_vec()
        } else if count * 3 > size {
            // Most of the set: shuffle it and keep a prefix.
            let mut all = z.to_vec();
            for i in 0..count {
                let j = rng.gen_range(i..size);
                all.swap(i, j);
            }
            all.truncate(count);
            all
        } else {
            let mut picked = hashbrown::HashSet::with_capacity(count);
            let mut out = Vec::with_capacity(count);
            while out.len() < count {
                let r = rng.gen_range(0..size);
                if picked.insert(r) {
                    if let Some(e) = z.get(r) {
                        out.push(e);
                    }
                }
            }
            out
        }
    };
    Ok(items_reply(items, withscores, resp3))
}

// ---- set operations ---------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

fn aggregate(target: &mut f64, val: f64, agg: Aggregate) {
    match agg {
        Aggregate::Sum => {
            *target += val;
            if target.is_nan() {
                *target = 0.0;
            }
        }
        Aggregate::Min => {
            if val < *target {
                *target = val;
            }
        }
        Aggregate::Max => {
            if val > *target {
                *target = val;
            }
        }
    }
}

/// Redis's `zunionInterDiffGenericCommand`. `ni` is the index of numkeys;
/// `dst` the destination for the STORE forms; `card_only` for ZINTERCARD.
fn setop_generic(
    ctx: &mut Ctx<'_>,
    argv: &[Bytes],
    ni: usize,
    dst: Option<&Bytes>,
    op: SetOp,
    card_only: bool,
    name: &str,
) -> CmdResult {
    let setnum = int_arg(&argv[ni])?;
    if setnum < 1 {
        return Err(CmdError::err(format!(
            "at least 1 input key is needed for '{name}' command"
        )));
    }
    if setnum as u64 > (argv.len() - (ni + 1)) as u64 {
        return Err(CmdError::SYNTAX);
    }
    let setnum = setnum as usize;
    let now = ctx.now;
    let mut srcs: Vec<Vec<(Bytes, f64)>> = Vec::with_capacity(setnum);
    for k in &argv[ni + 1..ni + 1 + setnum] {
        let items = match ctx.shard(k)?.get(k, now) {
            None => Vec::new(),
            Some(ValueRef::Obj(Obj::ZSet(z))) => z.to_vec(),
            Some(ValueRef::Obj(Obj::Set(s))) => set_members(s)?,
            Some(_) => return Err(CmdError::WRONG_TYPE),
        };
        srcs.push(items);
    }
    let mut weights = vec![1.0f64; setnum];
    let mut agg = Aggregate::Sum;
    let mut withscores = false;
    let mut limit: usize = 0;
    let mut j = ni + 1 + setnum;
    while j < argv.len() {
        let remaining = argv.len() - j;
        let o = &argv[j];
        if op != SetOp::Diff && !card_only && remaining > setnum && eq_ic(o, "weights") {
            j += 1;
            for w in weights.iter_mut() {
                *w = parse_f64(&argv[j])
                    .ok_or_else(|| CmdError::err("weight value is not a float"))?;
                j += 1;
            }
        } else if op != SetOp::Diff && !card_only && remaining >= 2 && eq_ic(o, "aggregate") {
            let a = &argv[j + 1];
            agg = if eq_ic(a, "sum") {
                Aggregate::Sum
            } else if eq_ic(a, "min") {
                Aggregate::Min
            } else if eq_ic(a, "max") {
                Aggregate::Max
            } else {
                return Err(CmdError::SYNTAX);
            };
            j += 2;
        } else if dst.is_none() && !card_only && eq_ic(o, "withscores") {
            withscores = true;
            j += 1;
        } else if card_only && remaining >= 2 && eq_ic(o, "limit") {
            let l = parse_i64(&argv[j + 1])
                .filter(|l| *l >= 0)
                .ok_or_else(|| CmdError::err("LIMIT can't be negative"))?;
            limit = l as usize;
            j += 2;
        } else {
            return Err(CmdError::SYNTAX);
        }
    }

    let mut inputs: Vec<(Vec<(Bytes, f64)>, f64)> = srcs.into_iter().zip(weights).collect();
    if op != SetOp::Diff {
        inputs.sort_by_key(|(v, _)| v.len());
    }
    type Map = hashbrown::HashMap<Bytes, f64, foldhash::fast::RandomState>;
    let mut result: Vec<(Bytes, f64)> = Vec::new();
    let mut card = 0usize;
    match op {
        SetOp::Inter => {
            if !inputs[0].0.is_empty() {
                let maps: Vec<Map> = inputs[1..]
                    .iter()
                    .map(|(v, _)| v.iter().cloned().collect())
                    .collect();
                let (first, w0) = &inputs[0];
                'outer: for (m, s) in first {
                    let mut score = w0 * s;
                    if score.is_nan() {
                        score = 0.0;
                    }
                    for (k, map) in maps.iter().enumerate() {
                        match map.get(m) {
                            Some(v) => aggregate(&mut score, v * inputs[k + 1].1, agg),
                            None => continue 'outer,
                        }
                    }
                    if card_only {
                        card += 1;
                        if limit > 0 && card >= limit {
                            break;
                        }
                    } else {
                        result.push((m.clone(), score));
                    }
                }
            }
        }
        SetOp::Union => {
            let mut acc = Map::default();
            let mut order: Vec<Bytes> = Vec::new();
            for (v, w) in &inputs {
                for (m, s) in v {
                    let mut score = w * s;
                    if score.is_nan() {
                        score = 0.0;
                    }
                    match acc.get_mut(m) {
                        Some(t) => aggregate(t, score, agg),
                        None => {
                            acc.insert(m.clone(), score);
                            order.push(m.clone());
                        }
                    }
                }
            }
            result = order
                .into_iter()
                .map(|m| {
                    let s = acc.get(&m).copied().unwrap_or(0.0);
                    (m, s)
                })
                .collect();
        }
        SetOp::Diff => {
            if !inputs[0].0.is_empty() {
                let maps: Vec<Map> = inputs[1..]
                    .iter()
                    .map(|(v, _)| v.iter().cloned().collect())
                    .collect();
                for (m, s) in &inputs[0].0 {
                    if !maps.iter().any(|map| map.contains_key(m)) {
                        result.push((m.clone(), *s));
                    }
                }
            }
        }
    }
    if card_only {
        return Ok(Reply::Int(card as i64));
    }
    result.sort_by(|a, b| cmp_entry(a.1, &a.0, b.1, &b.0));
    match dst {
        Some(dst) => {
            let lim = limits(ctx);
            let maxlen = result.iter().map(|(m, _)| m.len()).max().unwrap_or(0);
            let mut z = ZSet::with_hint(result.len(), maxlen, lim);
            for (m, s) in &result {
                z.insert(m, *s, lim);
            }
            store_result(ctx, dst, z, name)
        }
        None => Ok(items_reply(result, withscores, ctx.client.resp >= 3)),
    }
}

/// ```text
/// ZUNION numkeys key [key ...] [WEIGHTS weight ...] [AGGREGATE SUM|MIN|MAX] [WITHSCORES]
/// ```
fn zunion(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    setop_generic(ctx, argv, 1, None, SetOp::Union, false, "zunion")
}

/// ```text
/// ZINTER numkeys key [key ...] [WEIGHTS weight ...] [AGGREGATE SUM|MIN|MAX] [WITHSCORES]
/// ```
fn zinter(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    setop_generic(ctx, argv, 1, None, SetOp::Inter, false, "zinter")
}

/// ```text
/// ZDIFF numkeys key [key ...] [WITHSCORES]
/// ```
fn zdiff(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    setop_generic(ctx, argv, 1, None, SetOp::Diff, false, "zdiff")
}

/// ```text
/// ZUNIONSTORE destination numkeys key [key ...] [WEIGHTS weight ...] [AGGREGATE SUM|MIN|MAX]
/// ```
fn zunionstore(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    setop_generic(
        ctx,
        argv,
        2,
        Some(&argv[1]),
        SetOp::Union,
        false,
        "zunionstore",
    )
}

/// ```text
/// ZINTERSTORE destination numkeys key [key ...] [WEIGHTS weight ...] [AGGREGATE SUM|MIN|MAX]
/// ```
fn zinterstore(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    setop_generic(
        ctx,
        argv,
        2,
        Some(&argv[1]),
        SetOp::Inter,
        false,
        "zinterstore",
    )
}

/// ```text
/// ZDIFFSTORE destination numkeys key [key ...]
/// ```
fn zdiffstore(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    setop_generic(
        ctx,
        argv,
        2,
        Some(&argv[1]),
        SetOp::Diff,
        false,
        "zdiffstore",
    )
}

/// ```text
/// ZINTERCARD numkeys key [key ...] [LIMIT limit]
/// ```
fn zintercard(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    setop_generic(ctx, argv, 1, None, SetOp::Inter, true, "zintercard")
}

// ---- ZSCAN ------------------------------------------------------------------

/// ```text
/// ZSCAN key cursor [MATCH pattern] [COUNT count]
/// ```
///
/// A listpack-encoded set is returned whole with cursor 0 (as Redis does).
/// A skiplist-encoded set is walked through its member hash index with
/// Redis's reverse-binary cursor (see `storage::hindex`): every member
/// present for the whole iteration is returned at least once, whatever
/// happens to scores or to the table's size between calls, and each call
/// returns about COUNT members however many share a score.
fn zscan(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    // As Redis: the cursor, then the key (a missing one scans empty
    // whatever the options say), then the options.
    let cursor = parse_cursor(&argv[2])?;
    let now = ctx.now;
    let Some(z) = read(ctx.shard(key)?, key, now)? else {
        return Ok(scan_reply(0, Vec::new()));
    };
    let opts = ScanOpts::parse(argv, 3)?;
    let mut out = Vec::new();
    let next = z.scan(cursor, opts.count, |m, s| {
        if opts.matches(m) {
            out.push(Reply::bulk_copy(m));
            out.push(Reply::bulk(format_g17(s)));
        }
    });
    Ok(scan_reply(next, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numkeys_extraction() {
        let argv: Vec<Bytes> = ["zunionstore", "d", "2", "a", "b", "weights", "1", "2"]
            .iter()
            .map(|s| Bytes::from(*s))
            .collect();
        assert_eq!(setop_store_keys(&argv), vec![1, 3, 4]);
        let argv: Vec<Bytes> = ["zunion", "9", "a"]
            .iter()
            .map(|s| Bytes::from(*s))
            .collect();
        assert_eq!(setop_keys(&argv), vec![2]);
        let argv: Vec<Bytes> = ["zunion", "x", "a"]
            .iter()
            .map(|s| Bytes::from(*s))
            .collect();
        assert!(setop_keys(&argv).is_empty());
    }

    #[test]
    fn range_bounds_parse() {
        assert!(ScoreRange::parse(b"(1.5", b"+inf").is_ok());
        assert!(ScoreRange::parse(b"nan", b"1").is_err());
        assert!(ScoreRange::parse(b"(", b"1").is_ok());
        assert!(LexRange::parse(&Bytes::from("-"), &Bytes::from("+")).is_ok());
        assert!(LexRange::parse(&Bytes::from("a"), &Bytes::from("+")).is_err());
        assert!(LexRange::parse(&Bytes::from("-x"), &Bytes::from("+")).is_err());
        assert_eq!(parse_score_bound(b" 2"), Some((2.0, false)));
        assert_eq!(parse_score_bound(b"(0x10"), Some((16.0, true)));
    }
}
