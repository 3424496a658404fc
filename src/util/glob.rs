//! INTERIM glob (replaced by the full module).
pub fn glob_match(p: &[u8], s: &[u8], nocase: bool) -> bool {
    if p.is_empty() {
        return s.is_empty();
    }
    match p[0] {
        b'*' => (0..=s.len()).any(|i| glob_match(&p[1..], &s[i..], nocase)),
        b'?' => !s.is_empty() && glob_match(&p[1..], &s[1..], nocase),
        c => {
            !s.is_empty()
                && (if nocase {
                    c.eq_ignore_ascii_case(&s[0])
                } else {
                    c == s[0]
                })
                && glob_match(&p[1..], &s[1..], nocase)
        }
    }
}
