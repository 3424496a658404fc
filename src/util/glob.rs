//! Glob-style pattern matching with Redis's exact semantics, as used by
//! `KEYS`, `SCAN … MATCH`, `PSUBSCRIBE` and `CONFIG GET`.
//!
//! # Syntax
//! * `*` matches any run of bytes (also an empty one), `?` exactly one byte.
//! * `[abc]` one byte of the set, `[^abc]` one byte not in it, `[a-z]` a
//!   range (a reversed range such as `[z-a]` is the same range). Inside
//!   brackets `\x` stands for a literal `x`; an unterminated class (`[ab`)
//!   ends where the pattern ends.
//! * `\x` outside brackets matches a literal `x`; a lone trailing `\` matches
//!   a backslash.
//! * Matching is binary safe; `nocase` folds ASCII letters only.
//!
//! # Redis quirks kept on purpose
//! * The empty string matches only the empty pattern (`*` does not match
//!   `""`): Redis never enters its matching loop for an empty subject.
//! * Range bounds and the subject byte are compared as C `char`s, i.e.
//!   signed on the platforms Redis ships for, so bytes `>= 0x80` sort below
//!   ASCII inside `[x-y]`; with `nocase` they go through glibc's `tolower`,
//!   which turns them back into their unsigned value (except `0xff`).
//! * Inside brackets an escaped byte is compared case-sensitively even when
//!   `nocase` is set.
//!
//! # Complexity
//! Every token other than `*` consumes exactly one byte, so only the most
//! recent `*` ever needs to be backtracked: when the rest of the pattern
//! after a later star cannot match at any position, giving earlier stars a
//! longer share cannot help either (this is the same observation behind the
//! guard Redis 7 added to its recursive matcher). The loop below therefore
//! keeps a single backtrack point and runs in O(pattern × subject) time with
//! no recursion, so patterns such as `*a*a*a*a*a*a*a*a*b` stay cheap.

/// Returns whether `string` matches the glob `pattern` (see the module
/// docs for the exact syntax); `nocase` folds ASCII case.
pub fn glob_match(pattern: &[u8], string: &[u8], nocase: bool) -> bool {
    if string.is_empty() {
        return pattern.is_empty();
    }
    let (mut p, mut s) = (0usize, 0usize);
    // (pattern index just after the last star run, subject index where the
    // rest of the pattern is currently being tried)
    let mut backtrack: Option<(usize, usize)> = None;
    loop {
        if s == string.len() {
            // The subject ran out right after a token was consumed: only a
            // run of trailing stars may be left.
            while p < pattern.len() && pattern[p] == b'*' {
                p += 1;
            }
            if p == pattern.len() {
                return true;
            }
        } else if p < pattern.len() && pattern[p] == b'*' {
            while p + 1 < pattern.len() && pattern[p + 1] == b'*' {
                p += 1;
            }
            if p + 1 == pattern.len() {
                return true;
            }
            p += 1;
            backtrack = Some((p, s));
            continue;
        } else if p < pattern.len() {
            if let Some(next) = match_token(pattern, p, string[s], nocase) {
                p = next;
                s += 1;
                continue;
            }
        }
        // Mismatch: let the last star swallow one more byte, if any is left
        // for the rest of the pattern to start on.
        match backtrack {
            Some((bp, bs)) if bs + 1 < string.len() => {
                backtrack = Some((bp, bs + 1));
                p = bp;
                s = bs + 1;
            }
            _ => return false,
        }
    }
}

/// The pattern byte at `i`, or 0 past the end (Redis reads the NUL that
/// terminates its strings there).
fn at(pattern: &[u8], i: usize) -> u8 {
    pattern.get(i).copied().unwrap_or(0)
}

/// A byte as a C `char` (signed), for range comparisons.
fn signed(b: u8) -> i32 {
    i32::from(b as i8)
}

fn fold(b: u8, nocase: bool) -> u8 {
    if nocase {
        b.to_ascii_lowercase()
    } else {
        b
    }
}

/// Matches the single-byte token starting at `pattern[p]` (anything but
/// `*`) against `c`; returns the index of the next token on success.
fn match_token(pattern: &[u8], p: usize, c: u8, nocase: bool) -> Option<usize> {
    match pattern[p] {
        b'?' => Some(p + 1),
        b'[' => match_class(pattern, p + 1, c, nocase),
        b'\\' if p + 1 < pattern.len() => {
            (fold(pattern[p + 1], nocase) == fold(c, nocase)).then_some(p + 2)
        }
        lit => (fold(lit, nocase) == fold(c, nocase)).then_some(p + 1),
    }
}

/// Matches a bracket class whose body starts at `pattern[i]` (just after
/// the `[`) against `c`; returns the index after the class on success.
fn match_class(pattern: &[u8], mut i: usize, c: u8, nocase: bool) -> Option<usize> {
    let len = pattern.len();
    let negate = at(pattern, i) == b'^';
    if negate {
        i += 1;
    }
    let mut matched = false;
    loop {
        let remaining = len.saturating_sub(i);
        let b = at(pattern, i);
        if b == b'\\' && remaining >= 2 {
            i += 1;
            if pattern[i] == c {
                matched = true;
            }
        } else if b == b']' {
            break;
        } else if remaining == 0 {
            // Unterminated class: it ends with the pattern.
            i -= 1;
            break;
        } else if remaining >= 3 && pattern[i + 1] == b'-' {
            let (mut lo, mut hi) = (signed(pattern[i]), signed(pattern[i + 2]));
            if lo > hi {
                std::mem::swap(&mut lo, &mut hi);
            }
            let mut x = signed(c);
            if nocase {
                lo = ascii_lower_signed(lo);
                hi = ascii_lower_signed(hi);
                x = ascii_lower_signed(x);
            }
            i += 2;
            if x >= lo && x <= hi {
                matched = true;
            }
        } else if fold(b, nocase) == fold(c, nocase) {
            matched = true;
        }
        i += 1;
    }
    (matched != negate).then_some(i + 1)
}

/// glibc's `tolower` in the "C" locale applied to a signed `char` value:
/// ASCII letters fold, negative values other than -1 (`EOF`) come back as
/// their unsigned byte value, everything else is unchanged.
fn ascii_lower_signed(x: i32) -> i32 {
    if (i32::from(b'A')..=i32::from(b'Z')).contains(&x) {
        x + 32
    } else if x < -1 {
        x + 256
    } else {
        x
    }
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    fn m(p: &str, s: &str) -> bool {
        glob_match(p.as_bytes(), s.as_bytes(), false)
    }

    fn mi(p: &str, s: &str) -> bool {
        glob_match(p.as_bytes(), s.as_bytes(), true)
    }

    #[test]
    fn literals_and_wildcards() {
        assert!(m("foo", "foo"));
        assert!(!m("foo", "fo"));
        assert!(!m("foo", "fooo"));
        assert!(m("f?o", "fxo"));
        assert!(!m("f?o", "fo"));
        assert!(m("*", "anything"));
        assert!(m("**", "anything"));
        assert!(m("foo*", "foo"));
        assert!(m("foo*", "foobar"));
        assert!(m("*bar", "foobar"));
        assert!(m("*o*", "foobar"));
        assert!(!m("*x*", "foobar"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY"));
        assert!(m("a*b", "abab"));
        assert!(m("*a?", "aab"));
        assert!(m("h*llo", "hllo"));
        assert!(m("h*llo", "heeeello"));
    }

    #[test]
    fn empty_subject_and_pattern() {
        assert!(m("", ""));
        assert!(!m("", "a"));
        // Redis quirk: nothing but the empty pattern matches "".
        assert!(!m("*", ""));
        assert!(!m("**", ""));
        assert!(!m("?", ""));
    }

    #[test]
    fn classes() {
        assert!(m("h[ae]llo", "hello"));
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(!m("h[a-b]llo", "hcllo"));
        // reversed range
        assert!(m("h[b-a]llo", "hallo"));
        assert!(m("[z-a]", "m"));
        // escapes inside a class
        assert!(m("[\\]]", "]"));
        assert!(m("[\\-]", "-"));
        assert!(m("[a\\-z]", "-"));
        assert!(!m("[a\\-z]", "b"));
        // '-' is literal at the start; "a-]" is a range a..']' that leaves
        // the class unterminated (Redis behaves the same)
        assert!(m("[-a]", "-"));
        assert!(!m("[a-]", "-"));
        assert!(m("[a-]", "^"));
        // unterminated classes end with the pattern
        assert!(m("[abc", "b"));
        assert!(!m("[abc", "d"));
        assert!(!m("[", "["));
        assert!(m("[^", "x"));
        assert!(!m("x[", "x"));
        // empty class never matches, negated empty class matches anything
        assert!(!m("[]", "a"));
        assert!(m("[^]", "a"));
    }

    #[test]
    fn escapes() {
        assert!(m("\\*", "*"));
        assert!(!m("\\*", "a"));
        assert!(m("a\\?b", "a?b"));
        assert!(!m("a\\?b", "axb"));
        assert!(m("\\[a]", "[a]"));
        // a trailing backslash matches itself
        assert!(m("a\\", "a\\"));
    }

    #[test]
    fn nocase() {
        assert!(mi("FOO*", "foobar"));
        assert!(mi("h[A-C]llo", "hbllo"));
        assert!(mi("h[a-c]llo", "hBllo"));
        assert!(!m("FOO*", "foobar"));
        assert!(mi("h[E]llo", "hello"));
        // escaped bytes in classes stay case-sensitive, as in Redis
        assert!(!mi("[\\E]", "e"));
        assert!(mi("\\E", "e"));
    }

    #[test]
    fn binary_safe() {
        assert!(glob_match(b"a\0*", b"a\0bc", false));
        assert!(!glob_match(b"a\0*", b"a\x01bc", false));
        assert!(glob_match(b"?\xff", b"\x00\xff", false));
        assert!(glob_match(b"[\x80-\xff]", b"\x90", false));
        // signed-char ranges: 0x80..0xff sort below ASCII
        assert!(glob_match(b"[\xff-a]", b"0", false));
        assert!(!glob_match(b"[a-\xff]", b"b", false));
    }

    /// From Redis's tests/unit/keyspace.tcl.
    #[test]
    fn keyspace_tcl_cases() {
        let keys = ["key_x", "key_y", "key_z", "foo_a", "foo_b", "foo_c"];
        let mut got: Vec<&str> = keys.iter().copied().filter(|k| m("foo*", k)).collect();
        got.sort_unstable();
        assert_eq!(got, ["foo_a", "foo_b", "foo_c"]);
        assert_eq!(keys.iter().filter(|k| m("*", k)).count(), 6);
        assert!(m("*", "dlskeriewrioeuwqoirueioqwrueoqwrueqw"));
        // "Regression for pattern matching long nested loops"
        let subject = "a".repeat(40);
        assert!(!m("a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", &subject));
    }

    #[test]
    fn not_exponential() {
        let subject = "a".repeat(20_000);
        let pattern = "*a".repeat(2_000) + "b";
        let t = std::time::Instant::now();
        assert!(!m(&pattern, &subject));
        assert!(m(&("*a".repeat(2_000) + "*"), &subject));
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
        // a huge pattern needs no deep recursion either
        let stars = "*?".repeat(200_000);
        assert!(m(&stars, &"x".repeat(200_000)));
    }
}
