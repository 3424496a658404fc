//! The packed blobs Redis stores inside RDB values: listpacks (written and
//! read), and the older ziplists, intsets and zipmaps (read; intsets are
//! also written). Each blob is a byte string already in memory (Redis keeps
//! them whole too), so parsing works on slices and every offset is bounds
//! checked: a corrupt blob yields `None`, never a panic.

use crate::protocol::codec::parse_i64;
use crate::storage::intset::{bytes_of, read, width_of};

/// One decoded element of a listpack or ziplist.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Item<'a> {
    /// An integer-encoded element (its string form is the decimal text).
    Int(i64),
    /// A string element, borrowed from the blob.
    Str(&'a [u8]),
}

impl Item<'_> {
    /// The element's string form (integers in decimal).
    pub fn to_vec(self) -> Vec<u8> {
        match self {
            Item::Int(n) => itoa::Buffer::new().format(n).as_bytes().to_vec(),
            Item::Str(s) => s.to_vec(),
        }
    }

    /// The element as an integer, if it is one (stream metadata fields).
    pub fn as_int(self) -> Option<i64> {
        match self {
            Item::Int(n) => Some(n),
            Item::Str(s) => parse_i64(s),
        }
    }
}

// ---- listpack writer ------------------------------------------------------------

/// Builds a listpack exactly as Redis's `lpAppend` / `lpAppendInteger` do:
/// strings that are canonical 64-bit integers are stored as integers, in
/// the smallest integer encoding.
pub struct LpWriter {
    buf: Vec<u8>,
    count: usize,
}

impl Default for LpWriter {
    fn default() -> Self {
        Self::new()
    }
}

/// Size of a listpack with no elements (header + terminator).
pub const LP_EMPTY_BYTES: usize = 7;

fn backlen_into(out: &mut Vec<u8>, l: usize) {
    let (bytes, n) = backlen_bytes(l);
    out.extend_from_slice(&bytes[..n]);
}

/// An entry's back-length (its size `l`, 7 bits per byte, the last byte
/// holding the low bits; every byte but the first has bit 7 set), and how
/// many bytes of the array it takes.
fn backlen_bytes(l: usize) -> ([u8; 5], usize) {
    let n = backlen_size(l);
    let l = l as u64;
    let mut out = [0u8; 5];
    out[0] = (l >> (7 * (n - 1))) as u8;
    for (i, b) in out.iter_mut().enumerate().take(n).skip(1) {
        *b = (((l >> (7 * (n - 1 - i))) & 127) | 128) as u8;
    }
    (out, n)
}

fn backlen_size(l: usize) -> usize {
    match l {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2097150 => 3,
        2097151..=268435454 => 4,
        _ => 5,
    }
}

fn int_encoding(v: i64, out: &mut [u8; 9]) -> usize {
    if (0..=127).contains(&v) {
        out[0] = v as u8;
        1
    } else if (-4096..=4095).contains(&v) {
        let u = (v as u64) & 0x1FFF;
        out[0] = 0xC0 | (u >> 8) as u8;
        out[1] = u as u8;
        2
    } else if (-32768..=32767).contains(&v) {
        out[0] = 0xF1;
        out[1..3].copy_from_slice(&(v as i16).to_le_bytes());
        3
    } else if (-8388608..=8388607).contains(&v) {
        out[0] = 0xF2;
        out[1..4].copy_from_slice(&(v as i32).to_le_bytes()[..3]);
        4
    } else if (i32::MIN as i64..=i32::MAX as i64).contains(&v) {
        out[0] = 0xF3;
        out[1..5].copy_from_slice(&(v as i32).to_le_bytes());
        5
    } else {
        out[0] = 0xF4;
        out[1..9].copy_from_slice(&v.to_le_bytes());
        9
    }
}

/// Bytes a string element takes in a listpack (encoding + data + backlen).
pub fn lp_entry_size(s: &[u8]) -> usize {
    let enc = match parse_i64(s) {
        Some(v) => {
            let mut b = [0u8; 9];
            int_encoding(v, &mut b)
        }
        None if s.len() < 64 => 1 + s.len(),
        None if s.len() < 4096 => 2 + s.len(),
        None => 5 + s.len(),
    };
    enc + backlen_size(enc)
}

impl LpWriter {
    /// An empty listpack (header filled in by [`LpWriter::finish`]).
    pub fn new() -> Self {
        LpWriter {
            buf: vec![0; 6],
            count: 0,
        }
    }

    /// Appends an integer element.
    pub fn int(&mut self, v: i64) {
        let mut b = [0u8; 9];
        let n = int_encoding(v, &mut b);
        self.buf.extend_from_slice(&b[..n]);
        backlen_into(&mut self.buf, n);
        self.count += 1;
    }

    /// Appends a string element (stored as an integer when canonical).
    pub fn str(&mut self, s: &[u8]) {
        if let Some(v) = parse_i64(s) {
            return self.int(v);
        }
        let start = self.buf.len();
        let n = s.len();
        if n < 64 {
            self.buf.push(0x80 | n as u8);
        } else if n < 4096 {
            self.buf.push(0xE0 | (n >> 8) as u8);
            self.buf.push(n as u8);
        } else {
            self.buf.push(0xF0);
            self.buf.extend_from_slice(&(n as u32).to_le_bytes());
        }
        self.buf.extend_from_slice(s);
        let l = self.buf.len() - start;
        backlen_into(&mut self.buf, l);
        self.count += 1;
    }

    /// Bytes the finished listpack will take.
    pub fn bytes(&self) -> usize {
        self.buf.len() + 1
    }

    /// Elements appended so far.
    pub fn len(&self) -> usize {
        self.count
    }

    /// No element appended yet.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Terminates the listpack and fills in its header.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(0xFF);
        let total = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&total.to_le_bytes());
        let n = if self.count < 65535 {
            self.count as u16
        } else {
            65535
        };
        self.buf[4..6].copy_from_slice(&n.to_le_bytes());
        self.buf
    }
}

// ---- listpack reader ------------------------------------------------------------

fn get<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// Decodes a whole listpack, validating its header, every entry's bounds
/// and back-length, and the terminator.
pub fn lp_decode(b: &[u8]) -> Option<Vec<Item<'_>>> {
    let total = u32::from_le_bytes(get::<4>(b, 0)?) as usize;
    let hdr_count = u16::from_le_bytes(get::<2>(b, 4)?) as usize;
    if total != b.len() || total < LP_EMPTY_BYTES {
        return None;
    }
    let mut out = Vec::with_capacity(hdr_count.min(b.len()));
    let mut p = 6;
    loop {
        let e = *b.get(p)?;
        if e == 0xFF {
            break;
        }
        let (item, enc) = if e & 0x80 == 0 {
            (Item::Int(e as i64), 1)
        } else if e & 0xC0 == 0x80 {
            let n = (e & 0x3F) as usize;
            (Item::Str(b.get(p + 1..p + 1 + n)?), 1 + n)
        } else if e & 0xE0 == 0xC0 {
            let lo = *b.get(p + 1)? as u64;
            let u = (((e & 0x1F) as u64) << 8) | lo;
            let v = if u >= 1 << 12 {
                u as i64 - (1 << 13)
            } else {
                u as i64
            };
            (Item::Int(v), 2)
        } else if e & 0xF0 == 0xE0 {
            let n = (((e & 0x0F) as usize) << 8) | *b.get(p + 1)? as usize;
            (Item::Str(b.get(p + 2..p + 2 + n)?), 2 + n)
        } else {
            match e {
                0xF0 => {
                    let n = u32::from_le_bytes(get::<4>(b, p + 1)?) as usize;
                    let end = p.checked_add(5)?.checked_add(n)?;
                    (Item::Str(b.get(p + 5..end)?), 5 + n)
                }
                0xF1 => (Item::Int(i16::from_le_bytes(get::<2>(b, p + 1)?) as i64), 3),
                0xF2 => {
                    let x = get::<3>(b, p + 1)?;
                    let v = i32::from_le_bytes([0, x[0], x[1], x[2]]) >> 8;
                    (Item::Int(v as i64), 4)
                }
                0xF3 => (Item::Int(i32::from_le_bytes(get::<4>(b, p + 1)?) as i64), 5),
                0xF4 => (Item::Int(i64::from_le_bytes(get::<8>(b, p + 1)?)), 9),
                _ => return None,
            }
        };
        // The back-length must describe the entry.
        let (want, bl) = backlen_bytes(enc);
        let got = b.get(p + enc..p + enc + bl)?;
        // Element-wise: most back-lengths are one byte, and a slice
        // comparison would call memcmp for each entry.
        if got.iter().zip(&want).any(|(x, y)| x != y) {
            return None;
        }
        p += enc + bl;
        out.push(item);
    }
    if p + 1 != b.len() || (hdr_count != 65535 && hdr_count != out.len()) {
        return None;
    }
    Some(out)
}

// ---- ziplist reader (RDB < 10) --------------------------------------------------

/// Decodes a whole ziplist (the pre-7.0 compact encoding).
pub fn ziplist_decode(b: &[u8]) -> Option<Vec<Item<'_>>> {
    let total = u32::from_le_bytes(get::<4>(b, 0)?) as usize;
    let hdr_count = u16::from_le_bytes(get::<2>(b, 8)?) as usize;
    if total != b.len() || total < 11 {
        return None;
    }
    let tail = u32::from_le_bytes(get::<4>(b, 4)?) as usize;
    let mut out = Vec::with_capacity(hdr_count.min(b.len()));
    let mut p = 10;
    // Where the previous entry starts: each entry's prevlen must be that
    // entry's size, and the header's tail offset the last entry's start
    // (Redis's deep integrity check; 10 when the list is empty).
    let mut prev = None;
    loop {
        let first = *b.get(p)?;
        if first == 0xFF {
            break;
        }
        let (prevlen, n) = if first < 254 {
            (first as usize, 1)
        } else {
            (u32::from_le_bytes(get::<4>(b, p + 1)?) as usize, 5)
        };
        if prevlen != prev.map_or(0, |start| p - start) {
            return None;
        }
        prev = Some(p);
        p += n;
        let e = *b.get(p)?;
        let item;
        match e >> 6 {
            0 => {
                let n = (e & 0x3F) as usize;
                item = Item::Str(b.get(p + 1..p + 1 + n)?);
                p += 1 + n;
            }
            1 => {
                let n = (((e & 0x3F) as usize) << 8) | *b.get(p + 1)? as usize;
                item = Item::Str(b.get(p + 2..p + 2 + n)?);
                p += 2 + n;
            }
            2 => {
                if e != 0x80 {
                    return None;
                }
                let n = u32::from_be_bytes(get::<4>(b, p + 1)?) as usize;
                let end = p.checked_add(5)?.checked_add(n)?;
                item = Item::Str(b.get(p + 5..end)?);
                p = end;
            }
            _ => match e {
                0xC0 => {
                    item = Item::Int(i16::from_le_bytes(get::<2>(b, p + 1)?) as i64);
                    p += 3;
                }
                0xD0 => {
                    item = Item::Int(i32::from_le_bytes(get::<4>(b, p + 1)?) as i64);
                    p += 5;
                }
                0xE0 => {
                    item = Item::Int(i64::from_le_bytes(get::<8>(b, p + 1)?));
                    p += 9;
                }
                0xF0 => {
                    let x = get::<3>(b, p + 1)?;
                    item = Item::Int((i32::from_le_bytes([0, x[0], x[1], x[2]]) >> 8) as i64);
                    p += 4;
                }
                0xFE => {
                    item = Item::Int(*b.get(p + 1)? as i8 as i64);
                    p += 2;
                }
                0xF1..=0xFD => {
                    item = Item::Int((e & 0x0F) as i64 - 1);
                    p += 1;
                }
                _ => return None,
            },
        }
        out.push(item);
    }
    if p + 1 != b.len()
        || (hdr_count != 65535 && hdr_count != out.len())
        || tail != prev.unwrap_or(10)
    {
        return None;
    }
    Some(out)
}

// ---- intset -----------------------------------------------------------------------

/// Encodes sorted integers as an intset blob (the narrowest width that
/// holds every member, as Redis's intset upgrades to).
pub fn intset_encode(sorted: &[i64]) -> Vec<u8> {
    let width = sorted.iter().map(|&v| width_of(v)).max().unwrap_or(2);
    let mut out = Vec::with_capacity(8 + width * sorted.len());
    out.extend_from_slice(&(width as u32).to_le_bytes());
    out.extend_from_slice(&(sorted.len() as u32).to_le_bytes());
    for &v in sorted {
        out.extend(bytes_of(v, width));
    }
    out
}

/// Decodes an intset blob; members must be strictly ascending.
pub fn intset_decode(b: &[u8]) -> Option<Vec<i64>> {
    let width = u32::from_le_bytes(get::<4>(b, 0)?) as usize;
    let n = u32::from_le_bytes(get::<4>(b, 4)?) as usize;
    if !matches!(width, 2 | 4 | 8) || b.len() != 8 + width.checked_mul(n)? {
        return None;
    }
    let mut out = Vec::with_capacity(n);
    for c in b[8..].chunks_exact(width) {
        let v = read(c, width);
        if out.last().is_some_and(|&l| l >= v) {
            return None;
        }
        out.push(v);
    }
    Some(out)
}

// ---- zipmap (RDB < 4 hashes) ---------------------------------------------------------

/// Decodes a zipmap into (field, value) pairs.
pub fn zipmap_decode(b: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    let mut p = 1;
    let mut out = Vec::new();
    let len_at = |p: &mut usize| -> Option<Option<usize>> {
        let f = *b.get(*p)?;
        match f {
            0xFF => Some(None),
            254 => {
                let n = u32::from_le_bytes(get::<4>(b, *p + 1)?) as usize;
                *p += 5;
                Some(Some(n))
            }
            253 => None,
            n => {
                *p += 1;
                Some(Some(n as usize))
            }
        }
    };
    while let Some(klen) = len_at(&mut p)? {
        let k = b.get(p..p.checked_add(klen)?)?;
        p += klen;
        let vlen = len_at(&mut p)??;
        let free = *b.get(p)? as usize;
        p += 1;
        let v = b.get(p..p.checked_add(vlen)?)?;
        p += vlen + free;
        out.push((k, v));
    }
    // An empty zipmap fails Redis's integrity check (not an empty key).
    if p + 1 != b.len() || out.is_empty() {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ziplist of short strings as Redis 6 writes it: header (bytes,
    /// tail offset, count), entries (prevlen, 6-bit string length, data),
    /// 0xFF.
    fn ziplist(items: &[&[u8]]) -> Vec<u8> {
        let mut body = Vec::new();
        let mut prev = 0usize;
        let mut tail = 10;
        for it in items {
            tail = 10 + body.len();
            let start = body.len();
            body.push(prev as u8);
            body.push(it.len() as u8);
            body.extend_from_slice(it);
            prev = body.len() - start;
        }
        let mut z = Vec::new();
        z.extend_from_slice(&((10 + body.len() + 1) as u32).to_le_bytes());
        z.extend_from_slice(&(tail as u32).to_le_bytes());
        z.extend_from_slice(&(items.len() as u16).to_le_bytes());
        z.extend_from_slice(&body);
        z.push(0xFF);
        z
    }

    /// Each entry's prevlen must be the size of the entry before it, and
    /// the tail offset the start of the last entry (Redis's deep check):
    /// a forward reader does not need either, so nothing else would notice.
    #[test]
    fn ziplist_prevlen_and_tail_are_checked() {
        let good = ziplist(&[b"a", b"bc", b"def"]);
        let items = ziplist_decode(&good).expect("valid");
        assert_eq!(items.len(), 3);
        assert!(ziplist_decode(&ziplist(&[])).is_some());
        // Second entry (at 10 + 3): its prevlen says 4, the first is 3.
        let mut bad_prev = good.clone();
        bad_prev[13] = 4;
        assert!(ziplist_decode(&bad_prev).is_none());
        // The first entry claims a predecessor.
        let mut first_prev = good.clone();
        first_prev[10] = 1;
        assert!(ziplist_decode(&first_prev).is_none());
        // Tail offset pointing at the second entry instead of the third.
        let mut bad_tail = good.clone();
        bad_tail[4..8].copy_from_slice(&13u32.to_le_bytes());
        assert!(ziplist_decode(&bad_tail).is_none());
        // The 5-byte prevlen form (254 + u32) is valid for any size.
        let mut wide = good[..13].to_vec();
        wide.extend_from_slice(&[254, 3, 0, 0, 0]);
        wide.extend_from_slice(&good[14..]);
        let total = wide.len() as u32;
        wide[0..4].copy_from_slice(&total.to_le_bytes());
        let tail = u32::from_le_bytes(good[4..8].try_into().unwrap()) + 4;
        wide[4..8].copy_from_slice(&tail.to_le_bytes());
        // The third entry's prevlen now counts the wider second entry.
        let third = tail as usize;
        wide[third] = 8;
        assert_eq!(ziplist_decode(&wide).expect("wide prevlen").len(), 3);
    }

    /// Back-lengths read the way listpack readers read them: from the last
    /// byte backwards, 7 bits each, until a byte without the high bit.
    #[test]
    fn backlen_reads_back_at_every_width() {
        for l in [
            0usize,
            1,
            127,
            128,
            16382,
            16383,
            2097150,
            2097151,
            268435454,
            268435455,
            1 << 32,
        ] {
            let (b, n) = backlen_bytes(l);
            assert_eq!(n, backlen_size(l), "{l}");
            let (mut v, mut shift, mut used) = (0u64, 0, 0);
            for &x in b[..n].iter().rev() {
                v |= u64::from(x & 127) << shift;
                shift += 7;
                used += 1;
                if x & 128 == 0 {
                    break;
                }
            }
            assert_eq!((v, used), (l as u64, n), "{l}: {:?}", &b[..n]);
        }
    }

    #[test]
    fn listpack_round_trip_all_encodings() {
        let vals: Vec<Vec<u8>> = vec![
            b"0".to_vec(),
            b"127".to_vec(),
            b"-1".to_vec(),
            b"4095".to_vec(),
            b"-4096".to_vec(),
            b"30000".to_vec(),
            b"-8388608".to_vec(),
            b"2147483647".to_vec(),
            b"-9223372036854775808".to_vec(),
            b"007".to_vec(),
            b"".to_vec(),
            vec![b'x'; 63],
            vec![b'y'; 64],
            vec![b'z'; 4095],
            vec![b'w'; 5000],
        ];
        let mut w = LpWriter::new();
        for v in &vals {
            w.str(v);
        }
        let lp = w.finish();
        let items = lp_decode(&lp).expect("valid");
        let back: Vec<Vec<u8>> = items.iter().map(|i| i.to_vec()).collect();
        assert_eq!(back, vals);
        let size: usize = vals.iter().map(|v| lp_entry_size(v)).sum();
        assert_eq!(size + LP_EMPTY_BYTES, lp.len());
        // Any truncation is rejected, never a panic.
        for cut in 0..lp.len() {
            assert!(lp_decode(&lp[..cut]).is_none());
        }
    }

    #[test]
    fn intset_widths() {
        for set in [
            vec![1i64, 2, 3],
            vec![-70000, 5],
            vec![i64::MIN, 0, i64::MAX],
        ] {
            assert_eq!(intset_decode(&intset_encode(&set)), Some(set));
        }
        assert!(intset_decode(&[2, 0, 0, 0, 2, 0, 0, 0, 5, 0, 1, 0]).is_none());
    }
}
