//! SORT / SORT_RO: sorting lists, sets and sorted sets, optionally by
//! external weights (`BY pattern`), projecting external values (`GET
//! pattern`), and storing the result as a list (`STORE`, SORT only).
//!
//! Semantics follow Redis 7.0's `sortCommandGeneric`: option parsing
//! before the key lookup, the same LIMIT clamping, "don't sort" for a BY
//! pattern without `*` (lists and sorted sets keep their order, honouring
//! DESC; a set being stored is sorted alphabetically instead so replicas
//! agree), numeric ties broken by the elements' bytes, missing BY values
//! weighing 0 (numeric) or sorting first (ALPHA).

use bytes::Bytes;

use crate::commands::ctx::Ctx;
use crate::commands::spec::{cmd, Acl, CmdFlags as F, CommandSpec, LockScope};
use crate::config::notify;
use crate::protocol::args::eq_ic;
use crate::protocol::codec::parse_i64;
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::storage::list::{End, List};
use crate::storage::{Obj, Ttl, Value, ValueRef};

const CATS: Acl = Acl::LIST
    .union(Acl::SET)
    .union(Acl::SORTEDSET)
    .union(Acl::DANGEROUS);

/// SORT and SORT_RO rows.
///
/// Both lock the whole database (`LockScope::Db`): BY and GET patterns
/// name keys derived from the sorted values themselves, which can live in
/// any shard and cannot be known before the command reads its source key.
/// Their declared keys (COMMAND GETKEYS) are the sorted key and, for SORT,
/// the last STORE destination, as Redis reports them.
pub const SPECS: &[CommandSpec] = &[
    cmd("sort", -2, F::WRITE.union(F::DENYOOM), sort)
        .find_keys(sort_keys)
        .movable_range(1, 1, 1)
        .lock(LockScope::Db)
        .acl(CATS)
        .doc(
            "generic",
            "1.0.0",
            "Sort the elements in a list, set or sorted set",
        ),
    cmd("sort_ro", -2, F::READONLY, sort_ro)
        .find_keys(sort_ro_keys)
        .movable_range(1, 1, 1)
        .lock(LockScope::Db)
        .acl(CATS)
        .doc(
            "generic",
            "7.0.0",
            "Sort the elements in a list, set or sorted set. Read-only variant of SORT.",
        ),
];

/// SORT's keys (Redis's `sortGetKeys`): the sorted key and the last STORE
/// destination, skipping the arguments of LIMIT, GET and BY.
fn sort_keys(argv: &[Bytes]) -> Vec<usize> {
    let mut store = None;
    let mut i = 2;
    while i < argv.len() {
        let a = &argv[i];
        if eq_ic(a, "limit") {
            i += 2;
        } else if eq_ic(a, "store") && i + 1 < argv.len() {
            store = Some(i + 1);
        } else if eq_ic(a, "get") || eq_ic(a, "by") {
            i += 1;
        }
        i += 1;
    }
    let mut v = vec![1];
    v.extend(store);
    v
}

/// SORT_RO's only declared key is the sorted one.
fn sort_ro_keys(argv: &[Bytes]) -> Vec<usize> {
    if argv.len() > 1 {
        vec![1]
    } else {
        Vec::new()
    }
}

/// ```text
/// SORT key [BY pattern] [LIMIT offset count] [GET pattern [GET pattern ...]]
///     [ASC | DESC] [ALPHA] [STORE destination]
/// ```
fn sort(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    sort_generic(ctx, argv, false)
}

/// ```text
/// SORT_RO key [BY pattern] [LIMIT offset count] [GET pattern [GET pattern ...]]
///     [ASC | DESC] [ALPHA]
/// ```
fn sort_ro(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    sort_generic(ctx, argv, true)
}

/// The part of `b` before its first NUL byte: Redis scans patterns with C
/// string functions (`strchr`, `strstr`).
fn cstr(b: &[u8]) -> &[u8] {
    match b.iter().position(|&c| c == 0) {
        Some(n) => &b[..n],
        None => b,
    }
}

/// Resolves `pattern` for element `subst` (Redis's `lookupKeyByPattern`):
/// `#` is the element itself; otherwise the first `*` is replaced by the
/// element and the key's string value is returned, or with a `->field`
/// suffix, that field of the key's hash. Missing keys, fields and values
/// of other types give `None`; a pattern without `*` never matches.
fn lookup_by_pattern(ctx: &mut Ctx<'_>, pattern: &[u8], subst: &Bytes) -> CmdResult<Option<Bytes>> {
    let c = cstr(pattern);
    if c == b"#" {
        return Ok(Some(subst.clone()));
    }
    let Some(p) = c.iter().position(|&b| b == b'*') else {
        return Ok(None);
    };
    let field = c[p + 1..]
        .windows(2)
        .position(|w| w == b"->")
        .map(|off| p + 1 + off)
        .filter(|&f| f + 2 < c.len());
    let key_end = field.unwrap_or(pattern.len());
    let mut key = Vec::with_capacity(key_end + subst.len());
    key.extend_from_slice(&pattern[..p]);
    key.extend_from_slice(subst);
    key.extend_from_slice(&pattern[p + 1..key_end]);
    let now = ctx.now;
    let sh = ctx.shard(&key)?;
    Ok(match (sh.get(&key, now), field) {
        (None, _) => None,
        (Some(ValueRef::Obj(Obj::Hash(h))), Some(f)) => {
            h.get(&pattern[f + 2..]).map(Bytes::copy_from_slice)
        }
        (Some(_), Some(_)) => None,
        (Some(v), None) => v.as_string().map(|s| s.to_bytes()),
    })
}

/// A numeric weight as Redis reads it with `strtod`: leading whitespace
/// allowed, the whole string consumed, no NaN, no overflow or underflow
/// (ERANGE). The empty string weighs 0.
fn parse_weight(b: &[u8]) -> Option<f64> {
    let t = match b
        .iter()
        .position(|c| !matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))
    {
        Some(n) => &b[n..],
        None => return if b.is_empty() { Some(0.0) } else { None },
    };
    let s = std::str::from_utf8(t).ok()?;
    let v: f64 = match s.parse() {
        Ok(v) => v,
        Err(_) => parse_hex_float(s)?,
    };
    if v.is_nan() {
        return None;
    }
    let lower = s.to_ascii_lowercase();
    let literal_inf = lower.trim_start_matches(['+', '-']).starts_with("inf");
    if v.is_infinite() && !literal_inf {
        return None;
    }
    if v.is_subnormal() {
        return None;
    }
    if v == 0.0 {
        let mantissa = lower.split('e').next().unwrap_or("");
        if mantissa.bytes().any(|c| (b'1'..=b'9').contains(&c)) {
            return None;
        }
    }
    Some(v)
}

/// C99 hexadecimal floats as `strtod` reads them (`0x10`, `-0x1.8p3`).
fn parse_hex_float(s: &str) -> Option<f64> {
    let (neg, rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let rest = rest
        .strip_prefix("0x")
        .or_else(|| rest.strip_prefix("0X"))?;
    let (mant, exp) = match rest.find(['p', 'P']) {
        Some(i) => (&rest[..i], rest[i + 1..].parse::<i32>().ok()?),
        None => (rest, 0),
    };
    let (int, frac) = match mant.find('.') {
        Some(i) => (&mant[..i], &mant[i + 1..]),
        None => (mant, ""),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut v = 0f64;
    for c in int.chars() {
        v = v * 16.0 + c.to_digit(16)? as f64;
    }
    let mut scale = 1.0 / 16.0;
    for c in frac.chars() {
        v += c.to_digit(16)? as f64 * scale;
        scale /= 16.0;
    }
    let v = v * 2f64.powi(exp);
    Some(if neg { -v } else { v })
}

/// One element being sorted.
struct Item {
    obj: Bytes,
    score: f64,
    /// The BY value (ALPHA with a BY pattern).
    cmp: Option<Bytes>,
}

fn sort_generic(ctx: &mut Ctx<'_>, argv: &[Bytes], readonly: bool) -> CmdResult {
    let mut desc = false;
    let mut alpha = false;
    let (mut limit_start, mut limit_count) = (0i64, -1i64);
    let mut dontsort = false;
    let mut sortby: Option<&Bytes> = None;
    let mut store: Option<&Bytes> = None;
    let mut gets: Vec<&Bytes> = Vec::new();

    let mut j = 2;
    while j < argv.len() {
        let a = &argv[j];
        let left = argv.len() - j - 1;
        if eq_ic(a, "asc") {
            desc = false;
        } else if eq_ic(a, "desc") {
            desc = true;
        } else if eq_ic(a, "alpha") {
            alpha = true;
        } else if eq_ic(a, "limit") && left >= 2 {
            limit_start = parse_i64(&argv[j + 1]).ok_or(CmdError::NOT_INTEGER)?;
            limit_count = parse_i64(&argv[j + 2]).ok_or(CmdError::NOT_INTEGER)?;
            j += 2;
        } else if !readonly && eq_ic(a, "store") && left >= 1 {
            store = Some(&argv[j + 1]);
            j += 1;
        } else if eq_ic(a, "by") && left >= 1 {
            sortby = Some(&argv[j + 1]);
            // A constant pattern weighs every element the same: no sorting
            // and no weight lookups.
            if !cstr(&argv[j + 1]).contains(&b'*') {
                dontsort = true;
            } else if !crate::commands::acl::full_key_read_access(ctx, argv) {
                return Err(CmdError::from_static(
                    "ERR BY option of SORT denied due to insufficient ACL permissions.",
                ));
            }
            j += 1;
        } else if eq_ic(a, "get") && left >= 1 {
            if !crate::commands::acl::full_key_read_access(ctx, argv) {
                return Err(CmdError::from_static(
                    "ERR GET option of SORT denied due to insufficient ACL permissions.",
                ));
            }
            gets.push(&argv[j + 1]);
            j += 1;
        } else {
            return Err(CmdError::SYNTAX);
        }
        j += 1;
    }

    #[derive(PartialEq)]
    enum Kind {
        List,
        Set,
        ZSet,
    }
    let now = ctx.now;
    let key = &argv[1];
    let sh = ctx.shard(key)?;
    let (kind, len) = match sh.get(key, now) {
        None => (Kind::List, 0usize),
        Some(ValueRef::Obj(Obj::List(l))) => (Kind::List, l.len()),
        Some(ValueRef::Obj(Obj::Set(s))) => (Kind::Set, s.len()),
        Some(ValueRef::Obj(Obj::ZSet(z))) => (Kind::ZSet, z.len()),
        Some(_) => return Err(CmdError::WRONG_TYPE),
    };
    if kind == Kind::ZSet {
        // Redis 7.0 converts a listpack sorted set to a skiplist for SORT
        // and keeps it so (sort.c, "destructively convert"); OBJECT
        // ENCODING shows it afterwards.
        if let Some(Obj::ZSet(z)) = sh.obj_mut_quiet(key, now) {
            z.convert_to_skiplist();
        }
    }

    // A set has no order of its own: when its unsorted content would be
    // stored or handed to a script, sort it alphabetically so the result
    // is deterministic (as Redis).
    if dontsort && kind == Kind::Set && (store.is_some() || crate::scripting::in_script()) {
        dontsort = false;
        alpha = true;
        sortby = None;
    }

    let vlen = len as i64;
    let mut start = limit_start.clamp(0, vlen);
    let count = limit_count.clamp(-1, vlen);
    let mut end = if count < 0 {
        vlen - 1
    } else {
        start + count - 1
    };
    if start >= vlen {
        start = vlen - 1;
        end = vlen - 2;
    }
    if end >= vlen {
        end = vlen - 1;
    }

    // Load the elements. Lists and sorted sets that need no sorting load
    // only the LIMIT window, in the requested direction.
    let direct = dontsort && kind != Kind::Set;
    let objs: Vec<Bytes> = match sh.peek(key, now) {
        None => Vec::new(),
        Some(ValueRef::Obj(Obj::List(l))) if direct => {
            if end >= start {
                let n = (end - start + 1) as usize;
                let s = start as usize;
                if desc {
                    let hi = len - s - 1;
                    let lo = hi + 1 - n;
                    l.range(lo, hi).rev().map(Bytes::copy_from_slice).collect()
                } else {
                    l.range(s, s + n - 1).map(Bytes::copy_from_slice).collect()
                }
            } else {
                Vec::new()
            }
        }
        Some(ValueRef::Obj(Obj::ZSet(z))) if direct => {
            if end >= start {
                let n = (end - start + 1) as usize;
                let s = start as usize;
                if desc {
                    let hi = len - s;
                    let mut v: Vec<Bytes> =
                        z.range(hi - n, hi).into_iter().map(|(m, _)| m).collect();
                    v.reverse();
                    v
                } else {
                    z.range(s, s + n).into_iter().map(|(m, _)| m).collect()
                }
            } else {
                Vec::new()
            }
        }
        Some(ValueRef::Obj(Obj::List(l))) => l.iter().map(Bytes::copy_from_slice).collect(),
        Some(ValueRef::Obj(Obj::Set(s))) => s.iter().map(|m| m.to_bytes()).collect(),
        Some(ValueRef::Obj(Obj::ZSet(z))) => z.to_vec().into_iter().map(|(m, _)| m).collect(),
        Some(_) => return Err(CmdError::WRONG_TYPE),
    };
    if direct {
        // The window is already applied.
        end -= start;
        start = 0;
    }

    let mut items: Vec<Item> = objs
        .into_iter()
        .map(|obj| Item {
            obj,
            score: 0.0,
            cmp: None,
        })
        .collect();

    let mut conversion_error = false;
    if !dontsort {
        for it in items.iter_mut() {
            let byval = match sortby {
                Some(p) => match lookup_by_pattern(ctx, p, &it.obj)? {
                    Some(v) => v,
                    None => continue,
                },
                None => it.obj.clone(),
            };
            if alpha {
                if sortby.is_some() {
                    it.cmp = Some(byval);
                }
            } else {
                match parse_weight(&byval) {
                    Some(s) => it.score = s,
                    None => conversion_error = true,
                }
            }
        }
        let by = sortby.is_some();
        items.sort_by(|a, b| {
            let c = if !alpha {
                a.score
                    .partial_cmp(&b.score)
                    .unwrap_or(std::cmp::Ordering::Equal)
                    .then_with(|| a.obj.cmp(&b.obj))
            } else if by {
                match (&a.cmp, &b.cmp) {
                    (None, None) => std::cmp::Ordering::Equal,
                    (None, Some(_)) => std::cmp::Ordering::Less,
                    (Some(_), None) => std::cmp::Ordering::Greater,
                    (Some(x), Some(y)) => x.cmp(y),
                }
            } else {
                a.obj.cmp(&b.obj)
            };
            if desc {
                c.reverse()
            } else {
                c
            }
        });
    }

    let window = (end - start + 1).max(0) as usize;
    let first = start.max(0) as usize;
    let selected = items.iter().skip(first).take(window);
    let outputlen = if gets.is_empty() {
        window
    } else {
        gets.len() * window
    };
    if conversion_error {
        return Err(CmdError::err(
            "One or more scores can't be converted into double",
        ));
    }

    let Some(dst) = store else {
        let mut out = Vec::with_capacity(outputlen);
        for it in selected {
            if gets.is_empty() {
                out.push(Reply::Bulk(it.obj.clone()));
            }
            for g in &gets {
                out.push(Reply::opt_bulk(lookup_by_pattern(ctx, g, &it.obj)?));
            }
        }
        return Ok(Reply::Array(out));
    };

    let mut list = List::new();
    for it in selected {
        if gets.is_empty() {
            list.push(End::Tail, &it.obj);
        }
        for g in &gets {
            let v = lookup_by_pattern(ctx, g, &it.obj)?.unwrap_or_default();
            list.push(End::Tail, &v);
        }
    }
    let sh = ctx.shard(dst)?;
    if outputlen > 0 {
        sh.set(dst, Value::Obj(Obj::List(list)), Ttl::Clear, now);
        ctx.notify(notify::LIST, "sortstore", dst);
        ctx.changed(outputlen as u64);
        ctx.signal_ready(dst);
    } else if sh.delete(dst, now) {
        ctx.notify(notify::GENERIC, "del", dst);
        ctx.changed(1);
    }
    Ok(Reply::Int(outputlen as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<Bytes> {
        s.split(' ')
            .map(|x| Bytes::copy_from_slice(x.as_bytes()))
            .collect()
    }

    #[test]
    fn getkeys_like_redis() {
        assert_eq!(sort_keys(&argv("sort k")), vec![1]);
        assert_eq!(sort_keys(&argv("sort k store d")), vec![1, 3]);
        assert_eq!(
            sort_keys(&argv("sort k by store get store store d")),
            vec![1, 7]
        );
        assert_eq!(
            sort_keys(&argv("sort k limit 0 1 store a store b")),
            vec![1, 8]
        );
        assert_eq!(sort_ro_keys(&argv("sort_ro k")), vec![1]);
    }

    #[test]
    fn weights_parse_like_strtod() {
        assert_eq!(parse_weight(b"1.5"), Some(1.5));
        assert_eq!(parse_weight(b"  2"), Some(2.0));
        assert_eq!(parse_weight(b""), Some(0.0));
        assert_eq!(parse_weight(b"2 "), None);
        assert_eq!(parse_weight(b"abc"), None);
        assert_eq!(parse_weight(b"nan"), None);
        assert_eq!(parse_weight(b"1e400"), None);
        assert_eq!(parse_weight(b"1e-400"), None);
        assert_eq!(parse_weight(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_weight(b"0.0"), Some(0.0));
        assert_eq!(parse_weight(b"0x10"), Some(16.0));
        assert_eq!(parse_weight(b"-0x1.8p1"), Some(-3.0));
    }
}
