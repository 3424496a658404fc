//! LZF compression producing exactly the bytes Redis's bundled liblzf
//! produces (its `VERY_FAST` variant with a 2^16-slot hash table), so DUMP
//! payloads and RDB files of compressible strings match redis-server's
//! byte for byte. The `lzf` crate's compressor emits valid LZF too but
//! differs near the end of the input (it stops looking for matches four
//! bytes early), so only its decompressor is used.
//!
//! Format: a control byte `000LLLLL` starts a run of L+1 literals;
//! `LLLooooo oooooooo` is a back-reference of L+2 bytes (L in 1..=6) at
//! distance o+1; `111ooooo LLLLLLLL oooooooo` one of L+9 bytes.

const HLOG: u32 = 16;
const HSIZE: usize = 1 << HLOG;
const MAX_LIT: usize = 1 << 5;
const MAX_OFF: usize = 1 << 13;
const MAX_REF: usize = (1 << 8) + (1 << 3);

#[inline]
fn first(d: &[u8], p: usize) -> u32 {
    ((d[p] as u32) << 8) | d[p + 1] as u32
}

#[inline]
fn next(h: u32, d: &[u8], p: usize) -> u32 {
    (h << 8) | d[p + 2] as u32
}

#[inline]
fn slot(h: u32) -> usize {
    ((h >> (24 - HLOG)).wrapping_sub(h.wrapping_mul(5)) as usize) & (HSIZE - 1)
}

/// The compressor's hash table: per slot the last input position seen
/// there, tagged with the call it belongs to. Compressing starts from an
/// empty table (as Redis's does), but clearing 2^16 slots per call cost
/// more than compressing the small strings and listpacks a snapshot
/// writes one by one (a fresh zeroed 256 KB table per call: page faults
/// took most of a 1M-entry stream's save); a slot written by an earlier
/// call reads as empty instead, and the table is only really cleared
/// when the call counter wraps.
///
/// The table is the compressor's scratch space, as liblzf's is a stack
/// array in Redis: it is mapped from the kernel rather than taken from
/// the allocator, so `used_memory` (and with it eviction) does not count
/// it (the allocator's statistics made the snapshot thread's table look
/// like dataset memory, and eviction during a BGSAVE freed megabytes of
/// keys to make room for it).
struct HashTable {
    slots: Slots,
    call: u32,
}

/// 2^16 slots from an anonymous mapping (zeroed by the kernel), or from
/// the heap if mapping fails.
enum Slots {
    None,
    Mapped(*mut u64),
    Heap(Vec<u64>),
}

const TABLE_BYTES: usize = HSIZE * std::mem::size_of::<u64>();

impl Slots {
    fn map() -> Slots {
        // SAFETY: a fresh private anonymous mapping; checked for failure.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                TABLE_BYTES,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            Slots::Heap(vec![0; HSIZE])
        } else {
            Slots::Mapped(p.cast())
        }
    }

    #[inline]
    fn as_mut(&mut self) -> &mut [u64] {
        match self {
            Slots::None => &mut [],
            // SAFETY: the mapping holds HSIZE u64s, lives until `drop`, and
            // is only reached through this exclusive borrow.
            Slots::Mapped(p) => unsafe { std::slice::from_raw_parts_mut(*p, HSIZE) },
            Slots::Heap(v) => v,
        }
    }
}

impl Drop for Slots {
    fn drop(&mut self) {
        if let Slots::Mapped(p) = *self {
            // SAFETY: mapped by `Slots::map` with this length, unmapped once.
            unsafe {
                libc::munmap(p.cast(), TABLE_BYTES);
            }
        }
    }
}

impl HashTable {
    /// Starts a call: every slot reads as empty.
    fn begin(&mut self) {
        if matches!(self.slots, Slots::None) {
            self.slots = Slots::map();
        }
        self.call = self.call.wrapping_add(1);
        if self.call == 0 {
            self.slots.as_mut().iter_mut().for_each(|s| *s = 0);
            self.call = 1;
        }
    }

    /// The position last stored in slot `s` during this call, or 0 (empty:
    /// position 0 can never be a reference anyway).
    #[inline]
    fn get(&mut self, s: usize) -> usize {
        let v = self.slots.as_mut()[s];
        if (v >> 32) as u32 == self.call {
            v as u32 as usize
        } else {
            0
        }
    }

    #[inline]
    fn set(&mut self, s: usize, pos: usize) {
        let tagged = (u64::from(self.call) << 32) | pos as u32 as u64;
        self.slots.as_mut()[s] = tagged;
    }
}

thread_local! {
    static HTAB: std::cell::RefCell<HashTable> = const {
        std::cell::RefCell::new(HashTable { slots: Slots::None, call: 0 })
    };
}

/// Compresses `input` into at most `out_len` bytes; `None` when it does
/// not fit (Redis then stores the string uncompressed).
pub fn compress(input: &[u8], out_len: usize) -> Option<Vec<u8>> {
    if input.is_empty() || out_len == 0 {
        return None;
    }
    HTAB.with_borrow_mut(|htab| {
        htab.begin();
        compress_with(htab, input, out_len)
    })
}

fn compress_with(htab: &mut HashTable, input: &[u8], out_len: usize) -> Option<Vec<u8>> {
    let n = input.len();
    let mut out = vec![0u8; out_len + 8];
    let out_end = out_len;
    let mut ip = 0usize;
    let mut op = 1usize; // start a literal run
    let mut lit = 0usize;
    if n < 3 {
        // Too short for the main loop: literals only (below).
    } else {
        let mut hval = first(input, ip);
        while ip < n - 2 {
            hval = next(hval, input, ip);
            let s = slot(hval);
            let r = htab.get(s);
            htab.set(s, ip);
            let is_match = r > 0
                && r < ip
                && ip - r - 1 < MAX_OFF
                && input[r + 2] == input[ip + 2]
                && input[r] == input[ip]
                && input[r + 1] == input[ip + 1];
            if is_match {
                let off = ip - r - 1;
                let mut len = 2usize;
                let maxlen = (n - ip - len).min(MAX_REF);
                if op + 3 + 1 >= out_end && op - (lit == 0) as usize + 3 + 1 >= out_end {
                    return None;
                }
                out[op - lit - 1] = (lit as u8).wrapping_sub(1);
                op -= (lit == 0) as usize;
                'ext: {
                    if maxlen > 16 {
                        for _ in 0..16 {
                            len += 1;
                            if input[r + len] != input[ip + len] {
                                break 'ext;
                            }
                        }
                    }
                    loop {
                        len += 1;
                        if !(len < maxlen && input[r + len] == input[ip + len]) {
                            break;
                        }
                    }
                }
                len -= 2;
                ip += 1;
                if len < 7 {
                    out[op] = ((off >> 8) + (len << 5)) as u8;
                    op += 1;
                } else {
                    out[op] = ((off >> 8) + (7 << 5)) as u8;
                    out[op + 1] = (len - 7) as u8;
                    op += 2;
                }
                out[op] = off as u8;
                op += 1;
                lit = 0;
                op += 1; // start a new run
                ip += len + 1;
                if ip >= n - 2 {
                    break;
                }
                ip -= 2;
                hval = first(input, ip);
                hval = next(hval, input, ip);
                htab.set(slot(hval), ip);
                ip += 1;
                hval = next(hval, input, ip);
                htab.set(slot(hval), ip);
                ip += 1;
            } else {
                if op >= out_end {
                    return None;
                }
                lit += 1;
                out[op] = input[ip];
                op += 1;
                ip += 1;
                if lit == MAX_LIT {
                    out[op - lit - 1] = (lit - 1) as u8;
                    lit = 0;
                    op += 1;
                }
            }
        }
    }
    if op + 3 > out_end {
        return None;
    }
    while ip < n {
        lit += 1;
        out[op] = input[ip];
        op += 1;
        ip += 1;
        if lit == MAX_LIT {
            out[op - lit - 1] = (lit - 1) as u8;
            lit = 0;
            op += 1;
        }
    }
    out[op - lit - 1] = (lit as u8).wrapping_sub(1);
    op -= (lit == 0) as usize;
    out.truncate(op);
    Some(out)
}

/// Decompresses `data` into exactly `out_len` bytes.
pub fn decompress(data: &[u8], out_len: usize) -> Option<Vec<u8>> {
    match lzf::decompress(data, out_len) {
        Ok(v) if v.len() == out_len => Some(v),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut inputs: Vec<Vec<u8>> = vec![
            b"abcabcabcabcabcabcabcabcabcabc".to_vec(),
            vec![b'a'; 100_000],
            (0..5000u32).map(|i| (i % 251) as u8).collect(),
        ];
        let mut x = 12345u64;
        let mut noisy = Vec::new();
        for i in 0..20000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            noisy.push(if i % 7 < 4 { b'q' } else { (x >> 59) as u8 });
        }
        inputs.push(noisy);
        for inp in inputs {
            let c = compress(&inp, inp.len() - 4).expect("compressible");
            assert_eq!(decompress(&c, inp.len()).expect("valid"), inp);
        }
        let incompressible: Vec<u8> = (0..64u8).collect();
        assert!(compress(&incompressible, 60).is_none());
    }

    /// The table is reused between calls: what one call stored must not
    /// change what the next produces (each starts from an empty table).
    #[test]
    fn output_does_not_depend_on_earlier_calls() {
        let a: Vec<u8> = b"field-1 value-1 field-2 value-2 field-3 value-3 ".repeat(40);
        let b: Vec<u8> = b"value-2 field-3 value-1 field-2".repeat(30);
        let first_b = compress(&b, b.len() - 4);
        let first_a = compress(&a, a.len() - 4);
        for _ in 0..3 {
            assert_eq!(compress(&a, a.len() - 4), first_a);
            assert_eq!(compress(&b, b.len() - 4), first_b);
        }
        let fresh = std::thread::spawn(move || compress(&b, b.len() - 4))
            .join()
            .expect("thread");
        assert_eq!(fresh, first_b);
        let mut t = HashTable {
            slots: Slots::None,
            call: u32::MAX,
        };
        t.begin();
        t.set(7, 99);
        assert_eq!(t.get(7), 99);
        t.begin();
        assert_eq!(
            (t.call, t.get(7)),
            (2, 0),
            "the counter wrapped to 1; call 2 sees slot 7 empty"
        );
    }
}
