//! MONITOR: clients that see every command the server runs, one line per
//! command, as Redis writes them:
//! `+1700000000.123456 [0 127.0.0.1:50000] "set" "k" "v"` (commands run by
//! a script show `[0 lua]`).
//!
//! Dispatch feeds a line after each command it runs (top level, inside
//! EXEC, from scripts; EVAL/EVALSHA/FCALL before their script, so a
//! script's commands follow it), except admin and `skip_monitor` commands,
//! with the arguments the command marked as sensitive shown as
//! `(redacted)`. With no monitor connected the cost is one relaxed load.
//! Lines go through each monitor's outbox (the pub/sub delivery path),
//! under the `normal` class of `client-output-buffer-limit`, as Redis
//! classes monitors.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use crate::config::{ClientClass, Config};
use crate::server::pubsub::Outbox;

#[derive(Default)]
pub struct Monitors {
    count: AtomicUsize,
    list: Mutex<Vec<(u64, Arc<Outbox>)>>,
}

/// Who ran a command, for the bracket of a MONITOR line.
pub enum Origin<'a> {
    Client(&'a str),
    Script,
}

impl Monitors {
    /// Is any client monitoring?
    #[inline]
    pub fn any(&self) -> bool {
        self.count.load(Ordering::Relaxed) > 0
    }

    pub fn add(&self, id: u64, outbox: Arc<Outbox>) {
        let mut l = self.list.lock();
        if !l.iter().any(|(i, _)| *i == id) {
            l.push((id, outbox));
            self.count.store(l.len(), Ordering::Relaxed);
        }
    }

    pub fn remove(&self, id: u64) {
        let mut l = self.list.lock();
        l.retain(|(i, _)| *i != id);
        self.count.store(l.len(), Ordering::Relaxed);
    }

    /// Sends one command line to every monitor but `own` (a monitoring
    /// client running a command itself sees the line after its reply, as
    /// in Redis: the line is returned for the caller to place there).
    pub fn feed(
        &self,
        config: &Config,
        db: usize,
        origin: Origin<'_>,
        argv: &[Bytes],
        redacted: &[usize],
        own: Option<u64>,
    ) -> Vec<u8> {
        let micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        let line = format_line(micros, db, origin, argv, redacted);
        let limit = config.client_output_buffer_limit(ClientClass::Normal);
        let l = self.list.lock();
        for (id, ob) in l.iter() {
            if Some(*id) != own {
                ob.push_frame(&line, limit);
            }
        }
        line
    }
}

/// One MONITOR line (a RESP simple string).
fn format_line(
    micros: u64,
    db: usize,
    origin: Origin<'_>,
    argv: &[Bytes],
    redacted: &[usize],
) -> Vec<u8> {
    let mut line = Vec::with_capacity(64 + argv.iter().map(|a| a.len() + 3).sum::<usize>());
    let who = match origin {
        Origin::Client(addr) => addr,
        Origin::Script => "lua",
    };
    line.extend_from_slice(
        format!(
            "+{}.{:06} [{db} {who}]",
            micros / 1_000_000,
            micros % 1_000_000
        )
        .as_bytes(),
    );
    for (i, a) in argv.iter().enumerate() {
        line.push(b' ');
        let arg: &[u8] = if redacted.contains(&i) {
            b"(redacted)"
        } else {
            a
        };
        crate::util::repr::cat_repr(&mut line, arg);
    }
    line.extend_from_slice(b"\r\n");
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_formatted_as_redis_writes_them() {
        let argv = [
            Bytes::from_static(b"set"),
            Bytes::from_static(b"k\"1\n"),
            Bytes::from_static(b"\x00pw"),
        ];
        let l = format_line(
            1_700_000_000_000_042,
            3,
            Origin::Client("1.2.3.4:5"),
            &argv,
            &[],
        );
        assert_eq!(
            l,
            b"+1700000000.000042 [3 1.2.3.4:5] \"set\" \"k\\\"1\\n\" \"\\x00pw\"\r\n"
        );
        let l = format_line(5_000_001, 0, Origin::Script, &argv, &[2]);
        assert_eq!(
            l,
            b"+5.000001 [0 lua] \"set\" \"k\\\"1\\n\" \"(redacted)\"\r\n"
        );
    }
}
