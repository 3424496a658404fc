//! The slow log (SLOWLOG GET/LEN/RESET): commands whose execution took at
//! least `slowlog-log-slower-than` microseconds, newest first, at most
//! `slowlog-max-len` of them.
//!
//! Dispatch checks every command it runs (top level, inside EXEC and from
//! scripts, as Redis does) against the threshold, one relaxed load and a
//! comparison; only a slow command reaches [`SlowLog::push`] and its mutex.
//! Entries keep what Redis keeps: a unique id, the unix time, the duration,
//! the arguments (at most 32, each cut to 128 bytes, with arguments a
//! command marked as sensitive replaced by `(redacted)`), the client's
//! address and name.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;

use crate::connection::client::Client;

/// Arguments kept per entry (the last slot says how many more there were).
const MAX_ARGC: usize = 32;
/// Bytes kept per argument.
const MAX_STRING: usize = 128;

/// One logged command.
#[derive(Debug, Clone)]
pub struct SlowEntry {
    pub id: u64,
    /// Unix seconds when it was logged.
    pub time: u64,
    pub usec: u64,
    pub argv: Vec<Bytes>,
    pub peer: String,
    pub name: Bytes,
}

#[derive(Default)]
pub struct SlowLog {
    entries: Mutex<VecDeque<SlowEntry>>,
    next_id: AtomicU64,
}

impl SlowLog {
    /// Logs `argv`, which took `usec` (dispatch checked the threshold),
    /// keeping at most `max_len` entries. `redacted` lists the argument
    /// positions the command marked as sensitive.
    pub fn push(
        &self,
        max_len: u64,
        client: &Client,
        argv: &[Bytes],
        redacted: &[usize],
        usec: u64,
    ) {
        let argc = argv.len().min(MAX_ARGC);
        let mut args = Vec::with_capacity(argc);
        for (i, a) in argv.iter().enumerate().take(argc) {
            if argc != argv.len() && i == argc - 1 {
                args.push(Bytes::from(format!(
                    "... ({} more arguments)",
                    argv.len() - argc + 1
                )));
            } else if redacted.contains(&i) {
                args.push(Bytes::from_static(b"(redacted)"));
            } else if a.len() > MAX_STRING {
                let mut s = a[..MAX_STRING].to_vec();
                s.extend_from_slice(
                    format!("... ({} more bytes)", a.len() - MAX_STRING).as_bytes(),
                );
                args.push(Bytes::from(s));
            } else {
                args.push(crate::util::detach(a));
            }
        }
        let entry = SlowEntry {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            time: crate::commands::dispatch::unix_ms() / 1000,
            usec,
            argv: args,
            peer: client.info.addr.clone(),
            name: client.info.name.lock().clone().unwrap_or_default(),
        };
        let mut log = self.entries.lock();
        log.push_front(entry);
        let max = usize::try_from(max_len).unwrap_or(usize::MAX);
        log.truncate(max);
    }

    /// The newest `count` entries (all with None).
    pub fn newest(&self, count: Option<usize>) -> Vec<SlowEntry> {
        let log = self.entries.lock();
        let n = count.unwrap_or(log.len()).min(log.len());
        log.iter().take(n).cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn reset(&self) {
        self.entries.lock().clear();
    }
}
