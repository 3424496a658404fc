//! Glob matching with Redis's `stringmatchlen` semantics: `*`, `?`,
//! `[abc]`, `[^abc]`, `[a-z]` (reversed ranges too), `\x` escapes; binary
//! safe; optional ASCII case folding.
//!
//! Redis's matcher is recursive on `*`; this one keeps only the position of
//! the last star (the classic two-pointer algorithm), which is enough for
//! glob semantics and bounds the work by O(pattern × string): a pattern such
//! as `*a*a*a*a*a*a*a*b` cannot make KEYS or SCAN run for minutes while it
//! holds shard locks.

#[inline]
fn fold(c: u8, nocase: bool) -> u8 {
    if nocase {
        c.to_ascii_lowercase()
    } else {
        c
    }
}

/// Matches one pattern element at `p[pi]` against byte `c`. Returns the
/// length of the element and whether it matched, or `None` for a `*`.
fn match_one(p: &[u8], pi: usize, c: u8, nocase: bool) -> Option<(usize, bool)> {
    match p[pi] {
        b'*' => None,
        b'?' => Some((1, true)),
        b'\\' if pi + 1 < p.len() => Some((2, fold(p[pi + 1], nocase) == fold(c, nocase))),
        b'[' => {
            let mut i = pi + 1;
            let not = i < p.len() && p[i] == b'^';
            if not {
                i += 1;
            }
            let mut matched = false;
            loop {
                if i >= p.len() {
                    // Unterminated class: Redis treats the end as closing it.
                    break;
                }
                if p[i] == b']' {
                    i += 1;
                    break;
                }
                if p[i] == b'\\' && i + 1 < p.len() {
                    if fold(p[i + 1], nocase) == fold(c, nocase) {
                        matched = true;
                    }
                    i += 2;
                } else if i + 2 < p.len() && p[i + 1] == b'-' {
                    let (mut lo, mut hi) = (fold(p[i], nocase), fold(p[i + 2], nocase));
                    if lo > hi {
                        std::mem::swap(&mut lo, &mut hi);
                    }
                    let cc = fold(c, nocase);
                    if cc >= lo && cc <= hi {
                        matched = true;
                    }
                    i += 3;
                } else {
                    if fold(p[i], nocase) == fold(c, nocase) {
                        matched = true;
                    }
                    i += 1;
                }
            }
            Some((i - pi, matched != not))
        }
        other => Some((1, fold(other, nocase) == fold(c, nocase))),
    }
}

/// Does `string` match `pattern`?
pub fn glob_match(pattern: &[u8], string: &[u8], nocase: bool) -> bool {
    let (mut pi, mut si) = (0usize, 0usize);
    // Where to resume after the most recent star: (pattern index after the
    // star, string index the star currently absorbs up to).
    let mut star: Option<(usize, usize)> = None;
    while si < string.len() {
        if pi < pattern.len() {
            match match_one(pattern, pi, string[si], nocase) {
                None => {
                    // Collapse consecutive stars.
                    while pi < pattern.len() && pattern[pi] == b'*' {
                        pi += 1;
                    }
                    if pi == pattern.len() {
                        return true;
                    }
                    star = Some((pi, si));
                    continue;
                }
                Some((len, true)) => {
                    pi += len;
                    si += 1;
                    continue;
                }
                Some((_, false)) => {}
            }
        }
        match star {
            Some((sp, ss)) => {
                pi = sp;
                si = ss + 1;
                star = Some((sp, ss + 1));
            }
            None => return false,
        }
    }
    while pi < pattern.len() && pattern[pi] == b'*' {
        pi += 1;
    }
    pi == pattern.len()
}

#[cfg(test)]
mod tests {
    use super::glob_match as m;

    #[test]
    fn basics() {
        assert!(m(b"*", b"", false));
        assert!(m(b"*", b"anything", false));
        assert!(m(b"h?llo", b"hello", false));
        assert!(!m(b"h?llo", b"hllo", false));
        assert!(m(b"h*llo", b"heeeello", false));
        assert!(m(b"h[ae]llo", b"hallo", false));
        assert!(!m(b"h[ae]llo", b"hillo", false));
        assert!(m(b"h[^e]llo", b"hallo", false));
        assert!(!m(b"h[^e]llo", b"hello", false));
        assert!(m(b"h[a-b]llo", b"hbllo", false));
        assert!(m(b"h[b-a]llo", b"hallo", false));
        assert!(m(b"a\\*b", b"a*b", false));
        assert!(!m(b"a\\*b", b"axb", false));
        assert!(m(b"foo*", b"foobar", false));
        assert!(!m(b"foo*", b"fo", false));
        assert!(m(b"*bar", b"foobar", false));
        assert!(m(b"HELLO", b"hello", true));
        assert!(!m(b"HELLO", b"hello", false));
        assert!(m(b"*a*b*c", b"xxaxxbxxc", false));
        assert!(!m(b"*a*b*c", b"xxaxxbxx", false));
        assert!(m(b"key:[0-9]*", b"key:1abc", false));
        assert!(m(b"", b"", false));
        assert!(!m(b"", b"a", false));
    }

    #[test]
    fn pathological_pattern_is_fast() {
        let s = vec![b'a'; 5000];
        let t = std::time::Instant::now();
        assert!(!m(b"*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", &s, false));
        assert!(t.elapsed().as_secs() < 2);
    }
}
