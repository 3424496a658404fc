//! HyperLogLog commands: PFADD PFCOUNT PFMERGE PFDEBUG PFSELFTEST.
//!
//! HLLs are plain string values in Redis's exact byte representation (see
//! [`crate::util::hll`]), so GET/SET move them to and from redis-server.
//! Commands that end up changing nothing read through `peek`/`get` only, so
//! they do not invalidate WATCH; PFCOUNT on one key writes the refreshed
//! cardinality cache back into the value, as Redis does.

use bytes::Bytes;

use crate::commands::ctx::Ctx;
use crate::commands::spec::{cmd, Acl, CmdFlags as F, CommandSpec};
use crate::config;
use crate::protocol::args::eq_ic;
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::storage::{Obj, Ttl, Value, ValueRef};
use crate::util::hll::{self, HllError};

const H: Acl = Acl::HYPERLOGLOG;

pub const SPECS: &[CommandSpec] = &[
    cmd("pfadd", -2, F::WRITE.union(F::DENYOOM).union(F::FAST), pfadd).keys(1, 1, 1).acl(H).doc("hyperloglog", "2.8.9", "Adds elements to a HyperLogLog key. Creates the key if it doesn't exist."),
    cmd("pfcount", -2, F::READONLY.union(F::MAY_REPLICATE), pfcount).keys(1, -1, 1).acl(H).doc("hyperloglog", "2.8.9", "Returns the approximated cardinality of the set(s) observed by the HyperLogLog key(s)."),
    cmd("pfmerge", -2, F::WRITE.union(F::DENYOOM), pfmerge).keys(1, -1, 1).acl(H).doc("hyperloglog", "2.8.9", "Merges one or more HyperLogLog values into a single key."),
    cmd("pfdebug", 3, F::WRITE.union(F::DENYOOM).union(F::ADMIN), pfdebug).keys(2, 2, 1).acl(H).doc("hyperloglog", "2.8.9", "Internal commands for debugging HyperLogLog values."),
    cmd("pfselftest", 1, F::ADMIN, pfselftest).acl(H).doc("hyperloglog", "2.8.9", "An internal command for testing HyperLogLog values."),
];

/// Redis's reply for a string that is not an HLL.
const NOT_HLL: CmdError =
    CmdError::from_static("WRONGTYPE Key is not a valid HyperLogLog string value.");
/// Redis's reply for an HLL whose sparse stream is broken.
const CORRUPT: CmdError = CmdError::from_static("INVALIDOBJ Corrupted HLL object detected");

fn map_err(e: HllError) -> CmdError {
    match e {
        HllError::NotHll => NOT_HLL,
        HllError::Corrupt => CORRUPT,
    }
}

/// The validated HLL bytes of a stored value (WRONGTYPE for non-strings and
/// for strings that are not HLLs, integer-encoded ones included).
fn hll_bytes<'a>(v: &ValueRef<'a>) -> CmdResult<&'a [u8]> {
    let s: &'a [u8] = match *v {
        ValueRef::Str(s) => s,
        ValueRef::Obj(Obj::Raw(b)) => b.as_slice(),
        ValueRef::Int(_) => return Err(NOT_HLL),
        ValueRef::Obj(_) => return Err(CmdError::WRONG_TYPE),
    };
    hll::validate(s).map_err(map_err)?;
    Ok(s)
}

/// ```text
/// PFADD key [element ...]
/// ```
fn pfadd(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let now = ctx.now;
    let max_bytes = ctx.srv.config.hll_sparse_max_bytes();
    let exists = match ctx.shard(key)?.peek(key, now) {
        None => false,
        Some(v) => {
            let s = hll_bytes(&v)?;
            // Only take the write path when some register would change
            // (a corrupted stream also goes there, to fail like Redis).
            let change = argv[2..]
                .iter()
                .any(|e| hll::would_change(s, e).unwrap_or(true));
            if !change {
                return Ok(Reply::Int(0));
            }
            true
        }
    };
    let mut updated = 0u64;
    if !exists {
        let mut s = hll::new_sparse();
        for e in &argv[2..] {
            hll::add(&mut s, e, max_bytes).map_err(map_err)?;
        }
        hll::invalidate(&mut s);
        ctx.shard(key)?
            .set(key, Value::Obj(Obj::raw(s)), Ttl::Clear, now);
        updated = 1;
    } else {
        let buf = match ctx.shard(key)?.string_mut(key, now) {
            Some(Ok(b)) => b,
            _ => return Err(CmdError::WRONG_TYPE),
        };
        let mut failed = None;
        for e in &argv[2..] {
            match hll::add(buf, e, max_bytes) {
                Ok(true) => updated += 1,
                Ok(false) => {}
                Err(_) => {
                    failed = Some(CORRUPT);
                    break;
                }
            }
        }
        if updated > 0 && failed.is_none() {
            hll::invalidate(buf);
        }
        if let Some(err) = failed {
            return Err(err);
        }
    }
    if updated > 0 {
        ctx.changed(updated);
        ctx.notify(config::notify::STRING, "pfadd", key);
    }
    Ok(Reply::Int((updated > 0) as i64))
}

/// ```text
/// PFCOUNT key [key ...]
/// ```
/// One key: the cached cardinality, recomputed and stored back when stale.
/// Several keys: the cardinality of their union, nothing written.
fn pfcount(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let now = ctx.now;
    if argv.len() > 2 {
        let mut max = vec![0u8; hll::REGISTERS];
        for k in &argv[1..] {
            let Some(v) = ctx.shard(k)?.get(k, now) else {
                continue;
            };
            let s = hll_bytes(&v)?;
            hll::merge_into(&mut max, s).map_err(map_err)?;
        }
        return Ok(Reply::Int(hll::count_raw(&max) as i64));
    }
    let key = &argv[1];
    let card = match ctx.shard(key)?.get(key, now) {
        None => return Ok(Reply::Int(0)),
        Some(v) => {
            let s = hll_bytes(&v)?;
            if let Some(c) = hll::cached_card(s) {
                return Ok(Reply::Int(c as i64));
            }
            hll::count(s).map_err(map_err)?
        }
    };
    if let Some(Ok(buf)) = ctx.shard(key)?.string_mut(key, now) {
        hll::set_cached_card(buf, card);
    }
    ctx.changed(1);
    // The cached count is a change to the string: replicas and the AOF
    // run the PFCOUNT too (as Redis propagates it), so their bytes match.
    if ctx.propagating() {
        ctx.propagate_as(argv.to_vec());
    }
    Ok(Reply::Int(card as i64))
}

/// ```text
/// PFMERGE destkey [sourcekey ...]
/// ```
/// The destination is also a source, as in Redis.
fn pfmerge(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let now = ctx.now;
    let max_bytes = ctx.srv.config.hll_sparse_max_bytes();
    let mut max = vec![0u8; hll::REGISTERS];
    let mut use_dense = false;
    for k in &argv[1..] {
        let Some(v) = ctx.shard(k)?.get(k, now) else {
            continue;
        };
        let s = hll_bytes(&v)?;
        use_dense |= s[4] == hll::DENSE;
        hll::merge_into(&mut max, s).map_err(map_err)?;
    }
    let apply = |s: &mut Vec<u8>| -> CmdResult<()> {
        if use_dense {
            hll::to_dense(s).map_err(map_err)?;
        }
        for (j, &m) in max.iter().enumerate() {
            if m != 0 {
                // Redis ignores the outcome here: sources were validated.
                let _ = hll::set(s, j, m, max_bytes);
            }
        }
        hll::invalidate(s);
        Ok(())
    };
    let dest = &argv[1];
    if ctx.shard(dest)?.peek(dest, now).is_none() {
        let mut s = hll::new_sparse();
        apply(&mut s)?;
        ctx.shard(dest)?
            .set(dest, Value::Obj(Obj::raw(s)), Ttl::Clear, now);
    } else {
        match ctx.shard(dest)?.string_mut(dest, now) {
            Some(Ok(buf)) => apply(buf)?,
            _ => return Err(CmdError::WRONG_TYPE),
        }
    }
    ctx.changed(1);
    ctx.notify(config::notify::STRING, "pfadd", dest);
    Ok(Reply::OK)
}

/// ```text
/// PFDEBUG GETREG|DECODE|ENCODING|TODENSE key
/// ```
fn pfdebug(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let (sub, key) = (&argv[1], &argv[2]);
    let now = ctx.now;
    let want_regs = eq_ic(sub, "getreg");
    let mut regs = Vec::new();
    let (encoding, decoded) = match ctx.shard(key)?.peek(key, now) {
        None => return Err(CmdError::err("The specified key does not exist")),
        Some(v) => {
            let s = hll_bytes(&v)?;
            let d = if eq_ic(sub, "decode") && s[4] == hll::SPARSE {
                Some(hll::decode(s))
            } else {
                None
            };
            if want_regs && s[4] == hll::DENSE {
                regs = dense_regs(s);
            }
            (s[4], d)
        }
    };
    if want_regs || eq_ic(sub, "todense") {
        let converted = if encoding == hll::SPARSE {
            match ctx.shard(key)?.string_mut(key, now) {
                Some(Ok(buf)) => {
                    let c = hll::to_dense(buf).map_err(map_err)?;
                    if want_regs {
                        regs = dense_regs(buf);
                    }
                    c
                }
                _ => return Err(CmdError::WRONG_TYPE),
            }
        } else {
            false
        };
        if converted {
            ctx.changed(1);
        }
        return Ok(if want_regs {
            Reply::Array(regs)
        } else {
            Reply::Int(converted as i64)
        });
    }
    if eq_ic(sub, "decode") {
        return match decoded {
            Some(d) => Ok(Reply::Bulk(Bytes::from(d))),
            None => Err(CmdError::err("HLL encoding is not sparse")),
        };
    }
    if eq_ic(sub, "encoding") {
        return Ok(Reply::Status(if encoding == hll::DENSE {
            "dense"
        } else {
            "sparse"
        }));
    }
    Err(CmdError::err(format!(
        "Unknown PFDEBUG subcommand '{}'",
        String::from_utf8_lossy(sub)
    )))
}

/// The registers of a dense HLL as an integer array reply.
fn dense_regs(s: &[u8]) -> Vec<Reply> {
    (0..hll::REGISTERS)
        .map(|i| Reply::Int(hll::dense_get(&s[hll::HDR..], i) as i64))
        .collect()
}

/// ```text
/// PFSELFTEST
/// ```
/// Checks the dense register packing and that sparse and dense encodings
/// agree and stay within the expected error, like Redis's self test.
fn pfselftest(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    let max_bytes = ctx.srv.config.hll_sparse_max_bytes();
    let mut rng = (ctx.now ^ 0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    // Test 1: register access.
    let mut dense = vec![0u8; hll::DENSE_SIZE];
    dense[..4].copy_from_slice(b"HYLL");
    let mut bytes = vec![0u8; hll::REGISTERS];
    for _ in 0..1000 {
        for (i, b) in bytes.iter_mut().enumerate() {
            let r = (next() & 63) as u8;
            *b = r;
            hll::dense_put(&mut dense[hll::HDR..], i, r);
        }
        for (i, b) in bytes.iter().enumerate() {
            let v = hll::dense_get(&dense[hll::HDR..], i);
            if v != *b {
                return Err(CmdError::new(format!(
                    "TESTFAILED Register {i} should be {b} but is {v}"
                )));
            }
        }
    }
    // Test 2: approximation error, dense and sparse side by side.
    dense[hll::HDR..].fill(0);
    let mut sparse = hll::new_sparse();
    let relerr = 1.04 / (hll::REGISTERS as f64).sqrt();
    let mut checkpoint: u64 = 1;
    let seed = next();
    for j in 1..=10_000_000u64 {
        let ele = (j ^ seed).to_le_bytes();
        let (idx, cnt) = hll::pat_len(&ele);
        hll::dense_set(&mut dense[hll::HDR..], idx, cnt);
        hll::set(&mut sparse, idx, cnt, max_bytes).map_err(map_err)?;
        if j == checkpoint {
            if (j as usize) < max_bytes / 2 && sparse[4] != hll::SPARSE {
                return Err(CmdError::new("TESTFAILED sparse encoding not used"));
            }
            let dc = hll::count(&dense).map_err(map_err)?;
            if dc != hll::count(&sparse).map_err(map_err)? {
                return Err(CmdError::new("TESTFAILED dense/sparse disagree"));
            }
            let abserr = (checkpoint as i64 - dc as i64).unsigned_abs();
            let mut maxerr = (relerr * 6.0 * checkpoint as f64).ceil() as u64;
            if j == 10 {
                maxerr = 1;
            }
            if abserr > maxerr {
                return Err(CmdError::new(format!(
                    "TESTFAILED Too big error. card:{checkpoint} abserr:{abserr}"
                )));
            }
            checkpoint *= 10;
        }
    }
    Ok(Reply::OK)
}
