//! Command errors: typed values carrying Redis's exact error code and text.
//!
//! Every client-visible error string of the server lives here, so the exact
//! wording Redis uses (and clients match on) is kept in one place. A
//! [`CmdError`] never closes the connection; protocol errors are separate
//! (see [`crate::protocol::codec::ProtocolError`]).

use std::borrow::Cow;

/// An error reply: the full line Redis would send, without the leading `-`
/// and the trailing CRLF (e.g. `WRONGTYPE Operation against a key …`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdError(Cow<'static, str>);

/// Result type of every command handler.
pub type CmdResult<T = crate::protocol::reply::Reply> = Result<T, CmdError>;

impl CmdError {
    /// An error with a static full line (must start with an upper-case code).
    pub const fn from_static(line: &'static str) -> Self {
        CmdError(Cow::Borrowed(line))
    }

    /// An error with a formatted full line. As Redis's
    /// `addReplyErrorFormat` does, CR and LF at the end are trimmed and the
    /// others replaced by spaces, so the reply can never break the protocol.
    pub fn new(line: impl Into<String>) -> Self {
        let mut s: String = line.into();
        if s.contains(['\r', '\n']) {
            s.truncate(s.trim_end_matches(['\r', '\n']).len());
            s = s.replace(['\r', '\n'], " ");
        }
        CmdError(Cow::Owned(s))
    }

    /// `ERR <msg>`.
    pub fn err(msg: impl AsRef<str>) -> Self {
        Self::new(format!("ERR {}", msg.as_ref()))
    }

    /// The full line.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The error code (first word: `ERR`, `WRONGTYPE`, …), for INFO errorstats.
    pub fn code(&self) -> &str {
        self.0.split(' ').next().unwrap_or("ERR")
    }

    pub const SYNTAX: CmdError = CmdError::from_static("ERR syntax error");
    pub const WRONG_TYPE: CmdError =
        CmdError::from_static("WRONGTYPE Operation against a key holding the wrong kind of value");
    pub const NOT_INTEGER: CmdError =
        CmdError::from_static("ERR value is not an integer or out of range");
    pub const NOT_FLOAT: CmdError = CmdError::from_static("ERR value is not a valid float");
    pub const OVERFLOW: CmdError =
        CmdError::from_static("ERR increment or decrement would overflow");
    pub const NO_SUCH_KEY: CmdError = CmdError::from_static("ERR no such key");
    pub const NOAUTH: CmdError = CmdError::from_static("NOAUTH Authentication required.");
    pub const WRONGPASS: CmdError =
        CmdError::from_static("WRONGPASS invalid username-password pair or user is disabled.");
    pub const OOM: CmdError =
        CmdError::from_static("OOM command not allowed when used memory > 'maxmemory'.");
    pub const DB_RANGE: CmdError = CmdError::from_static("ERR DB index is out of range");
    pub const SAME_OBJECT: CmdError =
        CmdError::from_static("ERR source and destination objects are the same");
    pub const STRING_TOO_LONG: CmdError =
        CmdError::from_static("ERR string exceeds maximum allowed size (proto-max-bulk-len)");
    pub const OFFSET_RANGE: CmdError = CmdError::from_static("ERR offset is out of range");
    pub const NAN_OR_INF: CmdError =
        CmdError::from_static("ERR increment would produce NaN or Infinity");
    pub const TIMEOUT_NEG: CmdError = CmdError::from_static("ERR timeout is negative");
    pub const TIMEOUT_NOT_INT: CmdError =
        CmdError::from_static("ERR timeout is not an integer or out of range");
    pub const TIMEOUT_INVALID: CmdError =
        CmdError::from_static("ERR timeout is not a float or out of range");
    pub const READONLY: CmdError =
        CmdError::from_static("READONLY You can't write against a read only replica.");
    pub const MASTERDOWN: CmdError = CmdError::from_static(
        "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
    );
    pub const LOADING: CmdError =
        CmdError::from_static("LOADING Redis is loading the dataset in memory");
    pub const INTERNAL: CmdError =
        CmdError::from_static("ERR internal error while executing the command");

    /// `ERR wrong number of arguments for '<name>' command` (name as in the
    /// table, `config|get` for subcommands).
    pub fn arity(full_name: &str) -> Self {
        Self::new(format!(
            "ERR wrong number of arguments for '{full_name}' command"
        ))
    }

    /// Redis's unknown-command text, quoting up to ~128 bytes of arguments.
    pub fn unknown_command(name: &[u8], args: &[bytes::Bytes]) -> Self {
        let mut quoted = String::new();
        for a in args {
            if quoted.len() >= 128 {
                break;
            }
            let room = 128 - quoted.len();
            let text = String::from_utf8_lossy(a);
            let cut: String = text.chars().take(room).collect();
            quoted.push('\'');
            quoted.push_str(&cut);
            quoted.push_str("' ");
        }
        let name = String::from_utf8_lossy(&name[..name.len().min(128)]).into_owned();
        Self::new(format!(
            "ERR unknown command '{name}', with args beginning with: {quoted}"
        ))
    }

    /// `ERR unknown subcommand '<sub>'. Try <CMD> HELP.`
    pub fn unknown_subcommand(container: &str, sub: &[u8]) -> Self {
        let sub = String::from_utf8_lossy(&sub[..sub.len().min(128)]).into_owned();
        Self::new(format!(
            "ERR unknown subcommand '{sub}'. Try {} HELP.",
            container.to_ascii_uppercase()
        ))
    }

    /// `ERR invalid expire time in '<cmd>' command`.
    pub fn invalid_expire(cmd: &str) -> Self {
        Self::new(format!("ERR invalid expire time in '{cmd}' command"))
    }
}

impl std::fmt::Display for CmdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CmdError {}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn unknown_command_text() {
        let e = CmdError::unknown_command(b"foo", &[Bytes::from("a"), Bytes::from("b")]);
        assert_eq!(
            e.as_str(),
            "ERR unknown command 'foo', with args beginning with: 'a' 'b' "
        );
        let e = CmdError::unknown_command(b"foo", &[]);
        assert_eq!(
            e.as_str(),
            "ERR unknown command 'foo', with args beginning with: "
        );
    }

    #[test]
    fn newlines_are_sanitized_and_code_extracted() {
        let e = CmdError::err("bad\r\nthing");
        assert_eq!(e.as_str(), "ERR bad  thing");
        assert_eq!(CmdError::err("option \r\n").as_str(), "ERR option ");
        assert_eq!(CmdError::WRONG_TYPE.code(), "WRONGTYPE");
    }
}
