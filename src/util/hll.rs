//! Redis's HyperLogLog representation, byte for byte.
//!
//! An HLL is an ordinary string value so that GET/SET/DUMP move it between
//! servers: a 16-byte header (`HYLL`, encoding byte, 3 unused bytes, 8-byte
//! little-endian cached cardinality whose top bit marks it stale) followed by
//! either 16384 packed 6-bit registers (dense) or a run-length opcode stream
//! (sparse: ZERO `00xxxxxx`, XZERO `01xxxxxx yyyyyyyy`, VAL `1vvvvvxx`).
//! Every mutation here reproduces the exact byte layout Redis 7.0 produces
//! for the same sequence of operations (same opcode splits and merges, same
//! sparse→dense promotion points), so values round-trip with redis-server
//! and PFCOUNT answers match.
//!
//! Functions take untrusted bytes (a user can SET anything that starts with
//! `HYLL`): they never index out of bounds and report corruption as `Err`.

/// Header length.
pub const HDR: usize = 16;
/// Register index bits.
const P: u32 = 14;
/// Hash bits left for the run of zeroes.
const Q: u32 = 64 - P;
/// Number of registers.
pub const REGISTERS: usize = 1 << P;
/// Bits per dense register.
const BITS: usize = 6;
const REG_MAX: u8 = (1 << BITS) - 1;
/// Exact length of a dense HLL value.
pub const DENSE_SIZE: usize = HDR + (REGISTERS * BITS).div_ceil(8);
pub const DENSE: u8 = 0;
pub const SPARSE: u8 = 1;
const SPARSE_VAL_MAX_VALUE: u8 = 32;
const SPARSE_VAL_MAX_LEN: usize = 4;
const SPARSE_ZERO_MAX_LEN: usize = 64;
const SPARSE_XZERO_MAX_LEN: usize = 16384;
const ALPHA_INF: f64 = 0.721_347_520_444_481_7;
/// Redis's hash seed for HLL elements.
const SEED: u64 = 0xadc8_3b19;

/// Why an HLL operation failed (maps to Redis's two error replies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HllError {
    /// Not an HLL at all: `-WRONGTYPE Key is not a valid HyperLogLog string value.`
    NotHll,
    /// Looks like an HLL but the sparse stream is broken: `-INVALIDOBJ …`.
    Corrupt,
}

/// MurmurHash64A as Redis uses it (little-endian word loads).
pub fn murmur64a(key: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let len = key.len();
    // Redis passes the length as an int and multiplies in 64 bits.
    let mut h = seed ^ ((len as i32 as i64 as u64).wrapping_mul(M));
    let mut chunks = key.chunks_exact(8);
    for c in &mut chunks {
        let mut k = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, b) in tail.iter().enumerate() {
            h ^= (*b as u64) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// The register an element maps to and the length of its `0…01` pattern.
pub fn pat_len(ele: &[u8]) -> (usize, u8) {
    let mut hash = murmur64a(ele, SEED);
    let index = (hash as usize) & (REGISTERS - 1);
    hash >>= P;
    hash |= 1u64 << Q;
    (index, hash.trailing_zeros() as u8 + 1)
}

/// Reads dense register `i` from the register area (the byte after the
/// area reads as zero, like the sds terminator Redis relies on).
pub fn dense_get(regs: &[u8], i: usize) -> u8 {
    let byte = i * BITS / 8;
    let fb = (i * BITS) & 7;
    let b0 = regs.get(byte).copied().unwrap_or(0) as u32;
    let b1 = regs.get(byte + 1).copied().unwrap_or(0) as u32;
    (((b0 >> fb) | (b1 << (8 - fb))) & REG_MAX as u32) as u8
}

/// Writes dense register `i`.
pub fn dense_put(regs: &mut [u8], i: usize, val: u8) {
    let byte = i * BITS / 8;
    let fb = (i * BITS) & 7;
    let v = val as u32;
    if let Some(b) = regs.get_mut(byte) {
        *b &= !((REG_MAX as u32) << fb) as u8;
        *b |= (v << fb) as u8;
    }
    if let Some(b) = regs.get_mut(byte + 1) {
        *b &= !((REG_MAX as u32) >> (8 - fb)) as u8;
        *b |= (v >> (8 - fb)) as u8;
    }
}

/// Calls `f(index, value)` for every register of a dense register area,
/// unpacking four 6-bit registers from each group of three bytes (the hot
/// loop of PFCOUNT over several keys, PFMERGE and dense counting).
fn for_each_dense(regs: &[u8], mut f: impl FnMut(usize, u8)) {
    let area = &regs[..regs.len().min(REGISTERS * BITS / 8)];
    for (g, c) in area.chunks_exact(3).enumerate() {
        let (b0, b1, b2) = (c[0], c[1], c[2]);
        let i = g * 4;
        f(i, b0 & 63);
        f(i + 1, ((b0 >> 6) | (b1 << 2)) & 63);
        f(i + 2, ((b1 >> 4) | (b2 << 4)) & 63);
        f(i + 3, b2 >> 2);
    }
}

/// Raises dense register `i` to `count`; true if it changed.
pub fn dense_set(regs: &mut [u8], i: usize, count: u8) -> bool {
    if count > dense_get(regs, i) {
        dense_put(regs, i, count);
        true
    } else {
        false
    }
}

/// A fresh empty HLL: sparse, one XZERO opcode covering all registers.
pub fn new_sparse() -> Vec<u8> {
    let mut v = Vec::with_capacity(HDR + 2);
    v.extend_from_slice(b"HYLL");
    v.push(SPARSE);
    v.extend_from_slice(&[0; 11]);
    let mut left = REGISTERS;
    while left > 0 {
        let n = left.min(SPARSE_XZERO_MAX_LEN);
        push_xzero(&mut v, n);
        left -= n;
    }
    v
}

fn push_xzero(v: &mut Vec<u8>, len: usize) {
    let l = len - 1;
    v.push((l >> 8) as u8 | 0x40);
    v.push((l & 0xff) as u8);
}

fn val_byte(val: u8, len: usize) -> u8 {
    (((val - 1) << 2) | (len as u8 - 1)) | 0x80
}

fn is_zero(b: u8) -> bool {
    b & 0xc0 == 0
}
fn is_xzero(b: u8) -> bool {
    b & 0xc0 == 0x40
}
fn is_val(b: u8) -> bool {
    b & 0x80 != 0
}
fn xzero_len(s: &[u8], p: usize) -> usize {
    ((((s[p] & 0x3f) as usize) << 8) | s.get(p + 1).copied().unwrap_or(0) as usize) + 1
}
fn val_value(b: u8) -> u8 {
    ((b >> 2) & 0x1f) + 1
}
fn val_len(b: u8) -> usize {
    (b & 3) as usize + 1
}

/// Checks what Redis checks before treating a string as an HLL: length,
/// magic, a known encoding, and the exact dense size.
pub fn validate(s: &[u8]) -> Result<(), HllError> {
    if s.len() < HDR || &s[..4] != b"HYLL" || s[4] > SPARSE {
        return Err(HllError::NotHll);
    }
    if s[4] == DENSE && s.len() != DENSE_SIZE {
        return Err(HllError::NotHll);
    }
    Ok(())
}

/// The cached cardinality, if valid.
pub fn cached_card(s: &[u8]) -> Option<u64> {
    if s[15] & 0x80 != 0 {
        return None;
    }
    let mut b = [0u8; 8];
    b.copy_from_slice(&s[8..16]);
    Some(u64::from_le_bytes(b))
}

/// Stores `card` as the cached cardinality (clearing the stale bit).
pub fn set_cached_card(s: &mut [u8], card: u64) {
    s[8..16].copy_from_slice(&card.to_le_bytes());
}

/// Marks the cached cardinality stale.
pub fn invalidate(s: &mut [u8]) {
    s[15] |= 0x80;
}

/// Converts a sparse HLL to dense (a no-op for dense), keeping the header's
/// other bytes (the cached cardinality too, as Redis does).
pub fn to_dense(s: &mut Vec<u8>) -> Result<bool, HllError> {
    if s[4] == DENSE {
        return Ok(false);
    }
    let mut d = vec![0u8; DENSE_SIZE];
    d[..HDR].copy_from_slice(&s[..HDR]);
    d[4] = DENSE;
    let (mut p, mut idx) = (HDR, 0usize);
    while p < s.len() {
        let b = s[p];
        if is_zero(b) {
            idx += (b & 0x3f) as usize + 1;
            p += 1;
        } else if is_xzero(b) {
            idx += xzero_len(s, p);
            p += 2;
        } else {
            let (len, val) = (val_len(b), val_value(b));
            if idx + len > REGISTERS {
                // Overflowing registers: corrupt (the patched redis-server
                // 7.0.15 builds reject this too).
                return Err(HllError::Corrupt);
            }
            for _ in 0..len {
                dense_put(&mut d[HDR..], idx, val);
                idx += 1;
            }
            p += 1;
        }
    }
    if idx != REGISTERS {
        return Err(HllError::Corrupt);
    }
    *s = d;
    Ok(true)
}

/// The current value of register `index` (read-only; used to tell whether
/// an add would change anything before taking a write path).
pub fn register(s: &[u8], index: usize) -> Result<u8, HllError> {
    if s[4] == DENSE {
        return Ok(dense_get(&s[HDR..], index));
    }
    let (mut p, mut first) = (HDR, 0usize);
    while p < s.len() {
        let b = s[p];
        let (span, oplen) = if is_zero(b) {
            ((b & 0x3f) as usize + 1, 1)
        } else if is_val(b) {
            (val_len(b), 1)
        } else {
            (xzero_len(s, p), 2)
        };
        if index < first + span {
            return Ok(if is_val(b) { val_value(b) } else { 0 });
        }
        first += span;
        p += oplen;
    }
    Err(HllError::Corrupt)
}

/// Raises register `index` to `count` in a sparse HLL, splitting and
/// re-merging opcodes exactly as Redis does, and promoting to dense when the
/// value does not fit a VAL opcode or the string would exceed `max_bytes`.
/// Returns whether the register changed.
pub fn sparse_set(
    s: &mut Vec<u8>,
    index: usize,
    count: u8,
    max_bytes: usize,
) -> Result<bool, HllError> {
    if count > SPARSE_VAL_MAX_VALUE {
        return promote(s, index, count);
    }
    // Step 1: find the opcode covering `index`.
    let end = s.len();
    let (mut p, mut first, mut span) = (HDR, 0usize, 0usize);
    let mut prev: Option<usize> = None;
    while p < end {
        let b = s[p];
        let mut oplen = 1;
        if is_zero(b) {
            span = (b & 0x3f) as usize + 1;
        } else if is_val(b) {
            span = val_len(b);
        } else {
            span = xzero_len(s, p);
            oplen = 2;
        }
        if index < first + span {
            break;
        }
        prev = Some(p);
        p += oplen;
        first += span;
    }
    if span == 0 || p >= end {
        return Err(HllError::Corrupt);
    }
    let b = s[p];
    let (zero, xzero, val) = (is_zero(b), is_xzero(b), is_val(b));
    let runlen = if zero {
        (b & 0x3f) as usize + 1
    } else if xzero {
        xzero_len(s, p)
    } else {
        val_len(b)
    };
    let mut simple = false;
    if val {
        let old = val_value(b);
        if old >= count {
            return Ok(false);
        }
        if runlen == 1 {
            s[p] = val_byte(count, 1);
            simple = true;
        }
    }
    if !simple && zero && runlen == 1 {
        s[p] = val_byte(count, 1);
        simple = true;
    }
    if !simple {
        // Step 2: the general case, split the opcode into up to three.
        let mut seq: Vec<u8> = Vec::with_capacity(5);
        let last = first + span - 1;
        if zero || xzero {
            let push_zeros = |seq: &mut Vec<u8>, len: usize| {
                if len > SPARSE_ZERO_MAX_LEN {
                    push_xzero(seq, len);
                } else {
                    seq.push((len - 1) as u8);
                }
            };
            if index != first {
                push_zeros(&mut seq, index - first);
            }
            seq.push(val_byte(count, 1));
            if index != last {
                push_zeros(&mut seq, last - index);
            }
        } else {
            let cur = val_value(b);
            if index != first {
                seq.push(val_byte(cur, index - first));
            }
            seq.push(val_byte(count, 1));
            if index != last {
                seq.push(val_byte(cur, last - index));
            }
        }
        // Step 3: substitute it, or promote if the string grows too much.
        let oldlen = if xzero { 2 } else { 1 };
        if seq.len() > oldlen && s.len() + (seq.len() - oldlen) > max_bytes {
            return promote(s, index, count);
        }
        // Replace the old opcode. The result keeps Redis's length even for
        // a truncated trailing XZERO (Redis grows the string by the length
        // difference, so the last new byte falls off).
        let newlen = s.len() + seq.len() - oldlen;
        let stop = (p + oldlen).min(s.len());
        s.splice(p..stop, seq);
        s.truncate(newlen);
    }
    // Step 4: merge adjacent VAL opcodes with equal values near the change.
    let mut p = prev.unwrap_or(HDR);
    let mut scanlen = 5;
    while p < s.len() {
        if scanlen == 0 {
            break;
        }
        scanlen -= 1;
        let b = s[p];
        if is_xzero(b) {
            p += 2;
            continue;
        } else if is_zero(b) {
            p += 1;
            continue;
        }
        if p + 1 < s.len() && is_val(s[p + 1]) {
            let (v1, v2) = (val_value(b), val_value(s[p + 1]));
            if v1 == v2 {
                let len = val_len(b) + val_len(s[p + 1]);
                if len <= SPARSE_VAL_MAX_LEN {
                    s[p + 1] = val_byte(v1, len);
                    s.remove(p);
                    continue;
                }
            }
        }
        p += 1;
    }
    invalidate(s);
    Ok(true)
}

fn promote(s: &mut Vec<u8>, index: usize, count: u8) -> Result<bool, HllError> {
    to_dense(s)?;
    Ok(dense_set(&mut s[HDR..], index, count))
}

/// Adds one element; true if a register changed. `s` must be validated.
pub fn add(s: &mut Vec<u8>, ele: &[u8], max_bytes: usize) -> Result<bool, HllError> {
    let (index, count) = pat_len(ele);
    set(s, index, count, max_bytes)
}

/// Raises register `index` to `count` in either encoding.
pub fn set(s: &mut Vec<u8>, index: usize, count: u8, max_bytes: usize) -> Result<bool, HllError> {
    match s[4] {
        DENSE => Ok(dense_set(&mut s[HDR..], index, count)),
        SPARSE => sparse_set(s, index, count, max_bytes),
        _ => Err(HllError::Corrupt),
    }
}

/// Would adding `ele` change a register? (Read-only.)
pub fn would_change(s: &[u8], ele: &[u8]) -> Result<bool, HllError> {
    let (index, count) = pat_len(ele);
    Ok(register(s, index)? < count)
}

/// Folds the HLL's registers into `max` (one byte per register).
pub fn merge_into(max: &mut [u8], s: &[u8]) -> Result<(), HllError> {
    if s[4] == DENSE {
        for_each_dense(&s[HDR..], |i, v| {
            if let Some(m) = max.get_mut(i) {
                if v > *m {
                    *m = v;
                }
            }
        });
        return Ok(());
    }
    let (mut p, mut i) = (HDR, 0usize);
    while p < s.len() {
        let b = s[p];
        if is_zero(b) {
            i += (b & 0x3f) as usize + 1;
            p += 1;
        } else if is_xzero(b) {
            i += xzero_len(s, p);
            p += 2;
        } else {
            let (len, val) = (val_len(b), val_value(b));
            if i + len > REGISTERS {
                return Err(HllError::Corrupt);
            }
            for m in &mut max[i..i + len] {
                if val > *m {
                    *m = val;
                }
            }
            i += len;
            p += 1;
        }
    }
    if i != REGISTERS {
        return Err(HllError::Corrupt);
    }
    Ok(())
}

fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    loop {
        x *= x;
        let zp = z;
        z += x * y;
        y += y;
        if zp == z {
            return z;
        }
    }
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    loop {
        x = x.sqrt();
        let zp = z;
        y *= 0.5;
        z -= (1.0 - x) * (1.0 - x) * y;
        if zp == z {
            return z / 3.0;
        }
    }
}

/// Ertl's improved estimator over a register histogram (Redis's hllCount).
fn estimate(histo: &[u64; 64]) -> u64 {
    let m = REGISTERS as f64;
    let mut z = m * tau((m - histo[Q as usize + 1] as f64) / m);
    for j in (1..=Q as usize).rev() {
        z += histo[j] as f64;
        z *= 0.5;
    }
    z += m * sigma(histo[0] as f64 / m);
    (ALPHA_INF * m * m / z).round() as u64
}

/// The estimated cardinality of a validated HLL; `Corrupt` for a broken
/// sparse stream.
pub fn count(s: &[u8]) -> Result<u64, HllError> {
    let mut histo = [0u64; 64];
    if s[4] == DENSE {
        for_each_dense(&s[HDR..], |_, v| histo[v as usize] += 1);
    } else {
        let (mut p, mut idx) = (HDR, 0usize);
        while p < s.len() {
            let b = s[p];
            if is_zero(b) {
                let n = (b & 0x3f) as usize + 1;
                idx += n;
                histo[0] += n as u64;
                p += 1;
            } else if is_xzero(b) {
                let n = xzero_len(s, p);
                idx += n;
                histo[0] += n as u64;
                p += 2;
            } else {
                let n = val_len(b);
                idx += n;
                histo[val_value(b) as usize] += n as u64;
                p += 1;
            }
        }
        if idx != REGISTERS {
            return Err(HllError::Corrupt);
        }
    }
    Ok(estimate(&histo))
}

/// The cardinality of one-byte-per-register `max` (multi-key PFCOUNT).
pub fn count_raw(max: &[u8]) -> u64 {
    let mut histo = [0u64; 64];
    for &v in max {
        histo[(v & 63) as usize] += 1;
    }
    estimate(&histo)
}

/// The sparse opcode stream as PFDEBUG DECODE prints it.
pub fn decode(s: &[u8]) -> String {
    let mut out = String::new();
    let mut p = HDR;
    while p < s.len() {
        let b = s[p];
        if is_zero(b) {
            out.push_str(&format!("z:{} ", (b & 0x3f) as usize + 1));
            p += 1;
        } else if is_xzero(b) {
            out.push_str(&format!("Z:{} ", xzero_len(s, p)));
            p += 2;
        } else {
            out.push_str(&format!("v:{},{} ", val_value(b), val_len(b)));
            p += 1;
        }
    }
    out.trim_matches(' ').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_small() {
        let mut s = new_sparse();
        assert_eq!(s.len(), HDR + 2);
        assert_eq!(count(&s), Ok(0));
        for i in 0..100u32 {
            add(&mut s, i.to_string().as_bytes(), 3000).unwrap();
        }
        let c = count(&s).unwrap();
        assert!((95..=105).contains(&c), "{c}");
        let mut d = s.clone();
        to_dense(&mut d).unwrap();
        assert_eq!(count(&d).unwrap(), c);
    }

    #[test]
    fn unpacking_matches_register_reads() {
        let mut r = vec![0u8; DENSE_SIZE - HDR];
        for i in 0..REGISTERS {
            dense_put(&mut r, i, ((i * 7 + 3) % 64) as u8);
        }
        let mut n = 0;
        for_each_dense(&r, |i, v| {
            assert_eq!(v, dense_get(&r, i));
            n += 1;
        });
        assert_eq!(n, REGISTERS);
    }

    #[test]
    fn dense_registers_roundtrip() {
        let mut r = vec![0u8; DENSE_SIZE - HDR];
        for i in 0..REGISTERS {
            dense_put(&mut r, i, (i % 64) as u8);
        }
        for i in 0..REGISTERS {
            assert_eq!(dense_get(&r, i), (i % 64) as u8);
        }
    }
}
