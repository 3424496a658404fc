//! Bitmap commands on string values: SETBIT GETBIT BITCOUNT BITPOS BITOP
//! BITFIELD BITFIELD_RO.
//!
//! Bits are numbered from the most significant bit of the first byte, as in
//! Redis. Writes go through `string_mut` (in place, raw encoding); commands
//! or sub-operations that change nothing stay on read paths so WATCH is not
//! invalidated needlessly.

use std::borrow::Cow;

use bytes::Bytes;

use crate::commands::ctx::Ctx;
use crate::commands::spec::{cmd, Acl, CmdFlags as F, CommandSpec};
use crate::config;
use crate::protocol::args::{eq_ic, int_arg};
use crate::protocol::codec::parse_i64;
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::storage::{Obj, Ttl, Value, ValueRef};

const B: Acl = Acl::BITMAP;
const W: F = F::WRITE.union(F::DENYOOM);

pub const SPECS: &[CommandSpec] = &[
    cmd("setbit", 4, W, setbit).keys(1, 1, 1).acl(B).doc("bitmap", "2.2.0", "Sets or clears the bit at offset of the string value. Creates the key if it doesn't exist."),
    cmd("getbit", 3, F::READONLY.union(F::FAST), getbit).keys(1, 1, 1).acl(B).doc("bitmap", "2.2.0", "Returns a bit value by offset."),
    cmd("bitcount", -2, F::READONLY, bitcount).keys(1, 1, 1).acl(B).doc("bitmap", "2.6.0", "Counts the number of set bits (population counting) in a string."),
    cmd("bitpos", -3, F::READONLY, bitpos).keys(1, 1, 1).acl(B).doc("bitmap", "2.8.7", "Finds the first set (1) or clear (0) bit in a string."),
    cmd("bitop", -4, W, bitop).keys(2, -1, 1).acl(B).doc("bitmap", "2.6.0", "Performs bitwise operations on multiple strings, and stores the result."),
    cmd("bitfield", -2, W, bitfield).keys(1, 1, 1).acl(B).doc("bitmap", "3.2.0", "Performs arbitrary bitfield integer operations on strings."),
    cmd("bitfield_ro", -2, F::READONLY.union(F::FAST), bitfield_ro).keys(1, 1, 1).acl(B).doc("bitmap", "6.0.0", "Performs arbitrary read-only bitfield integer operations on strings."),
];

const BAD_OFFSET: CmdError =
    CmdError::from_static("ERR bit offset is not an integer or out of range");
const BAD_BIT: CmdError = CmdError::from_static("ERR bit is not an integer or out of range");
const BAD_TYPE: CmdError = CmdError::from_static(
    "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.",
);

/// The bytes of a string value (integers in decimal form); WRONGTYPE for
/// other types.
fn str_bytes<'a>(v: &ValueRef<'a>) -> CmdResult<Cow<'a, [u8]>> {
    match *v {
        ValueRef::Str(s) => Ok(Cow::Borrowed(s)),
        ValueRef::Obj(Obj::Raw(b)) => Ok(Cow::Borrowed(b.as_slice())),
        ValueRef::Int(n) => Ok(Cow::Owned(
            itoa::Buffer::new().format(n).as_bytes().to_vec(),
        )),
        ValueRef::Obj(_) => Err(CmdError::WRONG_TYPE),
    }
}

/// Parses a bit offset: non-negative, below the string size limit, and for
/// BITFIELD optionally `#n` meaning `n * bits`.
fn bit_offset(ctx: &Ctx<'_>, arg: &[u8], hash_bits: Option<u32>) -> CmdResult<u64> {
    let (digits, mul) = match (arg.first(), hash_bits) {
        (Some(b'#'), Some(bits)) => (&arg[1..], bits as i64),
        _ => (arg, 1),
    };
    let n = parse_i64(digits)
        .and_then(|n| n.checked_mul(mul))
        .ok_or(BAD_OFFSET)?;
    if n < 0 || (n as u64 >> 3) >= ctx.srv.config.proto_max_bulk_len() {
        return Err(BAD_OFFSET);
    }
    Ok(n as u64)
}

/// ```text
/// SETBIT key offset value
/// ```
fn setbit(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let off = bit_offset(ctx, &argv[2], None)?;
    let on = parse_i64(&argv[3]).ok_or(BAD_BIT)?;
    if on & !1 != 0 {
        return Err(BAD_BIT);
    }
    let byte = (off >> 3) as usize;
    let mask = 1u8 << (7 - (off & 7));
    let now = ctx.now;
    let cur = match ctx.shard(key)?.peek(key, now) {
        None => None,
        Some(v) => {
            let s = str_bytes(&v)?;
            let raw = matches!(v, ValueRef::Obj(_));
            Some((s.len(), s.get(byte).is_some_and(|b| b & mask != 0), raw))
        }
    };
    let old = match cur {
        None => {
            let mut v = vec![0u8; byte + 1];
            if on == 1 {
                v[byte] |= mask;
            }
            ctx.shard(key)?
                .set(key, Value::Obj(Obj::raw(v)), Ttl::Clear, now);
            false
        }
        Some((len, old, raw)) => {
            if byte < len && old == (on == 1) {
                // Nothing changes, but the string is raw from now on, as
                // Redis unshares it before looking.
                if !raw {
                    ctx.shard(key)?.string_mut_quiet(key, now);
                }
                return Ok(Reply::Int(old as i64));
            }
            match ctx.shard(key)?.string_mut(key, now) {
                Some(Ok(buf)) => {
                    if buf.len() <= byte {
                        buf.resize(byte + 1, 0);
                    }
                    if on == 1 {
                        buf[byte] |= mask;
                    } else {
                        buf[byte] &= !mask;
                    }
                }
                _ => return Err(CmdError::WRONG_TYPE),
            }
            old
        }
    };
    ctx.changed(1);
    ctx.notify(config::notify::STRING, "setbit", key);
    Ok(Reply::Int(old as i64))
}

/// ```text
/// GETBIT key offset
/// ```
fn getbit(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let off = bit_offset(ctx, &argv[2], None)?;
    let now = ctx.now;
    let Some(v) = ctx.shard(key)?.get(key, now) else {
        return Ok(Reply::Int(0));
    };
    let s = str_bytes(&v)?;
    let byte = (off >> 3) as usize;
    let bit = s.get(byte).is_some_and(|b| b & (1 << (7 - (off & 7))) != 0);
    Ok(Reply::Int(bit as i64))
}

/// Number of set bits in bit positions `first..=last` of `p` (in range).
fn count_bits(p: &[u8], first: u64, last: u64) -> u64 {
    let (fb, lb) = ((first >> 3) as usize, (last >> 3) as usize);
    let bytes = &p[fb..=lb];
    let mut n: u64 = 0;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        n += w.count_ones() as u64;
    }
    for b in chunks.remainder() {
        n += b.count_ones() as u64;
    }
    // Take away the bits of the edge bytes that fall outside the range.
    let head = (first & 7) as u32;
    if head > 0 {
        n -= (p[fb] >> (8 - head)).count_ones() as u64;
    }
    let tail = 7 - (last & 7) as u32;
    if tail > 0 {
        n -= (p[lb] & ((1u8 << tail) - 1)).count_ones() as u64;
    }
    n
}

/// Resolves `start end` (byte or bit units, negative from the end) against
/// a length, Redis style: `None` for an empty range, else inclusive bounds.
fn clamp_range(mut start: i64, mut end: i64, total: i64) -> Option<(i64, i64)> {
    if start < 0 {
        start += total;
    }
    if end < 0 {
        end += total;
    }
    if start < 0 {
        start = 0;
    }
    if end < 0 {
        end = 0;
    }
    if end >= total {
        end = total - 1;
    }
    (start <= end).then_some((start, end))
}

/// Parses an optional `BYTE|BIT` unit argument: true for BIT.
fn unit_is_bit(arg: &[u8]) -> CmdResult<bool> {
    if eq_ic(arg, "bit") {
        Ok(true)
    } else if eq_ic(arg, "byte") {
        Ok(false)
    } else {
        Err(CmdError::SYNTAX)
    }
}

/// ```text
/// BITCOUNT key [start end [BYTE | BIT]]
/// ```
fn bitcount(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let now = ctx.now;
    let Some(v) = ctx.shard(key)?.get(key, now) else {
        return Ok(Reply::Int(0));
    };
    let p = str_bytes(&v)?;
    let len = p.len() as i64;
    let (first, last) = match argv.len() {
        2 => {
            if len == 0 {
                return Ok(Reply::Int(0));
            }
            (0, len as u64 * 8 - 1)
        }
        4 | 5 => {
            let start = int_arg(&argv[2])?;
            let end = int_arg(&argv[3])?;
            if start < 0 && end < 0 && start > end {
                return Ok(Reply::Int(0));
            }
            let isbit = argv.len() == 5 && unit_is_bit(&argv[4])?;
            let total = if isbit { len * 8 } else { len };
            match clamp_range(start, end, total) {
                None => return Ok(Reply::Int(0)),
                Some((s, e)) if isbit => (s as u64, e as u64),
                Some((s, e)) => (s as u64 * 8, e as u64 * 8 + 7),
            }
        }
        _ => return Err(CmdError::SYNTAX),
    };
    Ok(Reply::Int(count_bits(&p, first, last) as i64))
}

/// The first bit equal to `bit` among positions `first..=last` of `p`.
fn find_bit(p: &[u8], first: u64, last: u64, bit: bool) -> Option<u64> {
    let (fb, lb) = ((first >> 3) as usize, (last >> 3) as usize);
    let skip = if bit { 0u8 } else { 0xff };
    let mut i = fb;
    while i <= lb {
        // Bits of this byte we are looking at, as set bits in `want`.
        let mut want = if bit { p[i] } else { !p[i] };
        if i == fb {
            want &= 0xff >> (first & 7);
        }
        if i == lb {
            want &= 0xff << (7 - (last & 7));
        }
        if want != 0 {
            return Some(i as u64 * 8 + want.leading_zeros() as u64);
        }
        i += 1;
        if i < lb {
            // Skip whole uninteresting bytes quickly.
            let n = p[i..lb].iter().position(|&b| b != skip).unwrap_or(lb - i);
            i += n;
        }
    }
    None
}

/// ```text
/// BITPOS key bit [start [end [BYTE | BIT]]]
/// ```
fn bitpos(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let bit = int_arg(&argv[2])?;
    if bit != 0 && bit != 1 {
        return Err(CmdError::err("The bit argument must be 1 or 0."));
    }
    let bit = bit == 1;
    let now = ctx.now;
    let Some(v) = ctx.shard(key)?.get(key, now) else {
        return Ok(Reply::Int(if bit { -1 } else { 0 }));
    };
    let p = str_bytes(&v)?;
    let len = p.len() as i64;
    let mut end_given = false;
    let (start, end, isbit) = match argv.len() {
        3 => (0, len - 1, false),
        4..=6 => {
            let start = int_arg(&argv[3])?;
            let isbit = argv.len() == 6 && unit_is_bit(&argv[5])?;
            let end = if argv.len() >= 5 {
                end_given = true;
                int_arg(&argv[4])?
            } else if isbit {
                len * 8 + 7
            } else {
                len - 1
            };
            let total = if isbit { len * 8 } else { len };
            match clamp_range(start, end, total) {
                Some((s, e)) => (s, e, isbit),
                None => return Ok(Reply::Int(-1)),
            }
        }
        _ => return Err(CmdError::SYNTAX),
    };
    if start > end {
        return Ok(Reply::Int(-1));
    }
    let (first, last) = if isbit {
        (start as u64, end as u64)
    } else {
        (start as u64 * 8, end as u64 * 8 + 7)
    };
    Ok(Reply::Int(match find_bit(&p, first, last, bit) {
        Some(pos) => pos as i64,
        // No clear bit in range: with no explicit end the string counts as
        // zero-padded on the right, so the answer is the first bit after it.
        None if !bit && !end_given => ((last >> 3) as i64 + 1) * 8,
        None => -1,
    }))
}

/// ```text
/// BITOP AND | OR | XOR | NOT destkey key [key ...]
/// ```
fn bitop(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    #[derive(PartialEq, Clone, Copy)]
    enum Op {
        And,
        Or,
        Xor,
        Not,
    }
    let op = if eq_ic(&argv[1], "and") {
        Op::And
    } else if eq_ic(&argv[1], "or") {
        Op::Or
    } else if eq_ic(&argv[1], "xor") {
        Op::Xor
    } else if eq_ic(&argv[1], "not") {
        Op::Not
    } else {
        return Err(CmdError::SYNTAX);
    };
    if op == Op::Not && argv.len() != 4 {
        return Err(CmdError::err(
            "BITOP NOT must be called with a single source key.",
        ));
    }
    let now = ctx.now;
    let mut srcs: Vec<Vec<u8>> = Vec::with_capacity(argv.len() - 3);
    for k in &argv[3..] {
        match ctx.shard(k)?.get(k, now) {
            None => srcs.push(Vec::new()),
            Some(v) => srcs.push(str_bytes(&v)?.into_owned()),
        }
    }
    let maxlen = srcs.iter().map(Vec::len).max().unwrap_or(0);
    let dest = &argv[2];
    if maxlen == 0 {
        if ctx.shard(dest)?.delete(dest, now) {
            ctx.changed(1);
            ctx.notify(config::notify::GENERIC, "del", dest);
        }
        return Ok(Reply::Int(0));
    }
    let mut res = std::mem::take(&mut srcs[0]);
    res.resize(maxlen, 0);
    match op {
        Op::Not => res.iter_mut().for_each(|b| *b = !*b),
        Op::And => {
            for s in &srcs[1..] {
                res.iter_mut().zip(s.iter()).for_each(|(r, b)| *r &= b);
                res[s.len()..].fill(0);
            }
        }
        Op::Or => {
            for s in &srcs[1..] {
                res.iter_mut().zip(s.iter()).for_each(|(r, b)| *r |= b);
            }
        }
        Op::Xor => {
            for s in &srcs[1..] {
                res.iter_mut().zip(s.iter()).for_each(|(r, b)| *r ^= b);
            }
        }
    }
    ctx.shard(dest)?
        .set(dest, Value::Obj(Obj::raw(res)), Ttl::Clear, now);
    ctx.changed(1);
    ctx.notify(config::notify::STRING, "set", dest);
    Ok(Reply::Int(maxlen as i64))
}

// ---- BITFIELD -------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum Overflow {
    Wrap,
    Sat,
    Fail,
}

#[derive(Clone, Copy, PartialEq)]
enum BfOp {
    Get,
    Set,
    Incr,
}

struct FieldOp {
    op: BfOp,
    offset: u64,
    arg: i64,
    ow: Overflow,
    bits: u32,
    signed: bool,
}

/// Parses `i<n>` (1..=64) or `u<n>` (1..=63).
fn field_type(arg: &[u8]) -> CmdResult<(bool, u32)> {
    let signed = match arg.first() {
        Some(b'i') => true,
        Some(b'u') => false,
        _ => return Err(BAD_TYPE),
    };
    let n = parse_i64(&arg[1..]).ok_or(BAD_TYPE)?;
    if n < 1 || (signed && n > 64) || (!signed && n > 63) {
        return Err(BAD_TYPE);
    }
    Ok((signed, n as u32))
}

fn get_unsigned(p: &[u8], offset: u64, bits: u32) -> u64 {
    let mut v = 0u64;
    for j in 0..bits as u64 {
        let o = offset + j;
        let b = p.get((o >> 3) as usize).copied().unwrap_or(0);
        v = (v << 1) | ((b >> (7 - (o & 7))) & 1) as u64;
    }
    v
}

fn get_signed(p: &[u8], offset: u64, bits: u32) -> i64 {
    let v = get_unsigned(p, offset, bits);
    if bits < 64 && v & (1u64 << (bits - 1)) != 0 {
        (v | (u64::MAX << bits)) as i64
    } else {
        v as i64
    }
}

fn set_unsigned(p: &mut [u8], offset: u64, bits: u32, value: u64) {
    for j in 0..bits as u64 {
        let bit = (value >> (bits as u64 - 1 - j)) & 1;
        let o = offset + j;
        if let Some(b) = p.get_mut((o >> 3) as usize) {
            let m = 1u8 << (7 - (o & 7));
            if bit == 1 {
                *b |= m;
            } else {
                *b &= !m;
            }
        }
    }
}

/// Adds `incr` to unsigned `value` of width `bits`: `(overflowed, result)`
/// where the result is wrapped or saturated per `ow` (Redis's semantics,
/// including how it treats SET values outside the type's range).
fn unsigned_add(value: u64, incr: i64, bits: u32, ow: Overflow) -> (bool, u64) {
    let max = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let maxincr = max.wrapping_sub(value) as i64;
    let minincr = (value as i64).wrapping_neg();
    let wrap = || value.wrapping_add(incr as u64) & !(u64::MAX << bits);
    if value > max || (incr > 0 && incr > maxincr) {
        (true, if ow == Overflow::Sat { max } else { wrap() })
    } else if incr < 0 && incr < minincr {
        (true, if ow == Overflow::Sat { 0 } else { wrap() })
    } else {
        (false, value.wrapping_add(incr as u64))
    }
}

/// Signed counterpart of [`unsigned_add`].
fn signed_add(value: i64, incr: i64, bits: u32, ow: Overflow) -> (bool, i64) {
    let max = if bits == 64 {
        i64::MAX
    } else {
        (1i64 << (bits - 1)) - 1
    };
    let min = -max - 1;
    let maxincr = (max as u64).wrapping_sub(value as u64) as i64;
    let minincr = min.wrapping_sub(value);
    let wrap = || {
        let mut c = (value as u64).wrapping_add(incr as u64);
        if bits < 64 {
            let mask = u64::MAX << bits;
            if c & (1u64 << (bits - 1)) != 0 {
                c |= mask;
            } else {
                c &= !mask;
            }
        }
        c as i64
    };
    if value > max || (bits != 64 && incr > maxincr) || (value >= 0 && incr > 0 && incr > maxincr) {
        (true, if ow == Overflow::Sat { max } else { wrap() })
    } else if value < min
        || (bits != 64 && incr < minincr)
        || (value < 0 && incr < 0 && incr < minincr)
    {
        (true, if ow == Overflow::Sat { min } else { wrap() })
    } else {
        (false, value.wrapping_add(incr))
    }
}

/// Runs the ops on `buf` (already grown to cover every write). Returns the
/// replies and the number of changes.
fn run_ops(buf: &mut [u8], ops: &[FieldOp], grown: bool) -> (Vec<Reply>, u64) {
    let mut out = Vec::with_capacity(ops.len());
    let mut changes = 0;
    for o in ops {
        match o.op {
            BfOp::Get => out.push(read_field(buf, o)),
            BfOp::Set | BfOp::Incr => {
                let (ret, old, new, failed) = if o.signed {
                    let old = get_signed(buf, o.offset, o.bits);
                    let (ovf, new, ret) = if o.op == BfOp::Incr {
                        let (ovf, n) = signed_add(old, o.arg, o.bits, o.ow);
                        (ovf, n, n)
                    } else {
                        let (ovf, n) = signed_add(o.arg, 0, o.bits, o.ow);
                        (ovf, n, old)
                    };
                    (ret, old as u64, new as u64, ovf && o.ow == Overflow::Fail)
                } else {
                    let old = get_unsigned(buf, o.offset, o.bits);
                    let (ovf, new, ret) = if o.op == BfOp::Incr {
                        let (ovf, n) = unsigned_add(old, o.arg, o.bits, o.ow);
                        (ovf, n, n)
                    } else {
                        let (ovf, n) = unsigned_add(o.arg as u64, 0, o.bits, o.ow);
                        (ovf, n, old)
                    };
                    (ret as i64, old, new, ovf && o.ow == Overflow::Fail)
                };
                if failed {
                    out.push(Reply::Null);
                    continue;
                }
                out.push(Reply::Int(ret));
                set_unsigned(buf, o.offset, o.bits, new);
                // Compare within the field width, as the stored bits do.
                if grown || old != new {
                    changes += 1;
                }
            }
        }
    }
    (out, changes)
}

fn read_field(p: &[u8], o: &FieldOp) -> Reply {
    if o.signed {
        Reply::Int(get_signed(p, o.offset, o.bits))
    } else {
        Reply::Int(get_unsigned(p, o.offset, o.bits) as i64)
    }
}

/// ```text
/// BITFIELD key [GET type offset | [OVERFLOW WRAP|SAT|FAIL]
///     SET type offset value | INCRBY type offset increment ...]
/// ```
fn bitfield(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    bitfield_generic(ctx, argv, false)
}

/// ```text
/// BITFIELD_RO key [GET type offset ...]
/// ```
fn bitfield_ro(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    bitfield_generic(ctx, argv, true)
}

fn bitfield_generic(ctx: &mut Ctx<'_>, argv: &[Bytes], ro: bool) -> CmdResult {
    let key = &argv[1];
    let mut ops = Vec::new();
    let mut ow = Overflow::Wrap;
    let mut readonly = true;
    let mut highest: u64 = 0;
    let mut j = 2;
    while j < argv.len() {
        let rem = argv.len() - j - 1;
        let sub = &argv[j];
        let op = if eq_ic(sub, "get") && rem >= 2 {
            BfOp::Get
        } else if eq_ic(sub, "set") && rem >= 3 {
            BfOp::Set
        } else if eq_ic(sub, "incrby") && rem >= 3 {
            BfOp::Incr
        } else if eq_ic(sub, "overflow") && rem >= 1 {
            let t = &argv[j + 1];
            ow = if eq_ic(t, "wrap") {
                Overflow::Wrap
            } else if eq_ic(t, "sat") {
                Overflow::Sat
            } else if eq_ic(t, "fail") {
                Overflow::Fail
            } else {
                return Err(CmdError::err("Invalid OVERFLOW type specified"));
            };
            j += 2;
            continue;
        } else {
            return Err(CmdError::SYNTAX);
        };
        let (signed, bits) = field_type(&argv[j + 1])?;
        let offset = bit_offset(ctx, &argv[j + 2], Some(bits))?;
        let mut arg = 0;
        if op != BfOp::Get {
            readonly = false;
            highest = highest.max(offset + bits as u64 - 1);
            arg = int_arg(&argv[j + 3])?;
        }
        ops.push(FieldOp {
            op,
            offset,
            arg,
            ow,
            bits,
            signed,
        });
        j += if op == BfOp::Get { 3 } else { 4 };
    }
    let now = ctx.now;
    if readonly {
        let v = ctx.shard(key)?.get(key, now);
        let p: Cow<'_, [u8]> = match v {
            None => Cow::Borrowed(&[]),
            Some(v) => str_bytes(&v)?,
        };
        return Ok(Reply::Array(
            ops.iter().map(|o| read_field(&p, o)).collect(),
        ));
    }
    if ro {
        return Err(CmdError::err(
            "BITFIELD_RO only supports the GET subcommand",
        ));
    }
    let need = (highest >> 3) as usize + 1;
    let exists = match ctx.shard(key)?.peek(key, now) {
        None => false,
        Some(v) => {
            str_bytes(&v)?;
            true
        }
    };
    let (replies, changes) = if exists {
        match ctx.shard(key)?.string_mut(key, now) {
            Some(Ok(buf)) => {
                let grown = buf.len() < need;
                if grown {
                    buf.resize(need, 0);
                }
                run_ops(buf, &ops, grown)
            }
            _ => return Err(CmdError::WRONG_TYPE),
        }
    } else {
        let mut buf = vec![0u8; need];
        let r = run_ops(&mut buf, &ops, true);
        ctx.shard(key)?
            .set(key, Value::Obj(Obj::raw(buf)), Ttl::Clear, now);
        r
    };
    if changes > 0 {
        ctx.changed(changes);
        ctx.notify(config::notify::STRING, "setbit", key);
    }
    Ok(Reply::Array(replies))
}
