//! Blocking commands' shared machinery: timeout parsing, parking a client
//! on keys, and waking it when a writer makes one of them ready.
//!
//! Placeholder API (the real registry lands with the lists work): `block`
//! behaves as an immediate timeout, and `signal_ready` does nothing.

use bytes::Bytes;

use crate::commands::ctx::Ctx;
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::util::float::parse_f64;

/// Parses a blocking command's timeout in seconds (fractions allowed;
/// 0 = forever) into an absolute unix-ms deadline (`None` = forever), with
/// Redis's errors.
pub fn parse_timeout(raw: &[u8], now_ms: u64) -> CmdResult<Option<u64>> {
    let secs = parse_f64(raw).ok_or(CmdError::TIMEOUT_INVALID)?;
    if !secs.is_finite() {
        return Err(CmdError::TIMEOUT_INVALID);
    }
    if secs < 0.0 {
        return Err(CmdError::TIMEOUT_NEG);
    }
    let ms = (secs * 1000.0).ceil();
    if ms >= (i64::MAX as f64) - (now_ms as f64) {
        return Err(CmdError::TIMEOUT_INVALID);
    }
    if ms == 0.0 {
        return Ok(None);
    }
    Ok(Some(now_ms + ms as u64))
}

impl Ctx<'_> {
    /// Parks the client until one of `keys` (in its current database) is
    /// signalled ready or `deadline` (unix ms, `None` = forever) passes;
    /// then the command runs again from the start. `on_timeout` is the reply
    /// sent if the deadline passes, and is returned at once where a client
    /// may not block (inside MULTI/EXEC or a script).
    pub fn block(&mut self, keys: &[Bytes], deadline: Option<u64>, on_timeout: Reply) -> CmdResult {
        let _ = (keys, deadline);
        Ok(on_timeout)
    }

    /// Records that `key` (in the client's current database) may now satisfy
    /// clients blocked on it (a push, an add). Waiters are woken after the
    /// command (or the whole transaction) completes.
    pub fn signal_ready(&mut self, key: &[u8]) {
        let _ = key;
    }
}
