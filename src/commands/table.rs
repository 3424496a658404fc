//! The assembled command table: every family's `SPECS`, indexed by
//! lower-case name (and `parent|sub` for subcommands), with the runtime
//! statistics INFO commandstats reports.

use std::sync::OnceLock;

use bytes::Bytes;

use crate::commands::spec::CommandSpec;
use crate::server::stats::Striped;

/// Every command family. Adding a family is one line here.
const FAMILIES: &[&[CommandSpec]] = &[
    crate::commands::connection::SPECS,
    crate::commands::strings::SPECS,
    crate::commands::keys::SPECS,
    crate::commands::server::SPECS,
    crate::commands::functions::SPECS,
    crate::commands::hashes::SPECS,
    crate::commands::lists::SPECS,
    crate::commands::sets::SPECS,
    crate::commands::zsets::SPECS,
    crate::commands::transaction::SPECS,
    crate::commands::memory::SPECS,
    crate::commands::latency::SPECS,
    crate::commands::lolwut::SPECS,
    crate::commands::slowlog::SPECS,
    crate::commands::sort::SPECS,
    crate::commands::geo::SPECS,
    crate::commands::bitmaps::SPECS,
    crate::commands::hyperloglog::SPECS,
    crate::commands::streams::SPECS,
    crate::commands::pubsub::SPECS,
    crate::commands::scripting::SPECS,
    crate::commands::persist::SPECS,
    crate::commands::acl::SPECS,
    crate::commands::cluster::SPECS,
    crate::commands::migrate::SPECS,
    crate::commands::replication::SPECS,
    crate::commands::azure::SPECS,
];

/// Runtime counters of one command (INFO commandstats), striped per thread.
#[derive(Default)]
pub struct CmdStats(Striped);

impl CmdStats {
    const CALLS: usize = 0;
    const USEC: usize = 1;
    const REJECTED: usize = 2;
    const FAILED: usize = 3;

    /// Records one executed call taking `usec` microseconds.
    #[inline]
    pub fn record_call(&self, usec: u64) {
        self.0.add(Self::CALLS, 1);
        self.0.add(Self::USEC, usec);
    }
    pub fn record_rejected(&self) {
        self.0.add(Self::REJECTED, 1);
    }
    pub fn record_failed(&self) {
        self.0.add(Self::FAILED, 1);
    }
    pub fn calls(&self) -> u64 {
        self.0.get(Self::CALLS)
    }
    pub fn usec(&self) -> u64 {
        self.0.get(Self::USEC)
    }
    pub fn rejected(&self) -> u64 {
        self.0.get(Self::REJECTED)
    }
    pub fn failed(&self) -> u64 {
        self.0.get(Self::FAILED)
    }
}

/// A command or subcommand as dispatch sees it.
pub struct CommandEntry {
    /// Position in the table (stable for the process lifetime).
    pub id: usize,
    pub spec: &'static CommandSpec,
    /// `get`, or `config|get` for a subcommand.
    pub full_name: String,
    pub parent: Option<&'static CommandSpec>,
    pub stats: CmdStats,
    /// Call durations (`latency-tracking`).
    pub latency: crate::server::latency::Histogram,
}

impl CommandEntry {
    /// Records one executed call of `nanos`: into the latency histogram
    /// when `tracking` (`latency-tracking`), which then also counts the
    /// call (one atomic add per call for both), else into the call counter.
    #[inline]
    pub fn record_call(&self, nanos: u64, tracking: bool) {
        if tracking {
            self.latency.record(nanos);
            self.stats.0.add(CmdStats::USEC, nanos / 1000);
        } else {
            self.stats.record_call(nanos / 1000);
        }
    }

    /// Calls counted since the last reset.
    pub fn calls(&self) -> u64 {
        self.stats.calls() + self.latency.total()
    }

    pub fn reset_stats(&self) {
        self.stats.0.reset();
        self.latency.reset();
    }
}

pub struct CommandTable {
    entries: Vec<CommandEntry>,
    index: hashbrown::HashMap<Box<[u8]>, usize, foldhash::fast::RandomState>,
}

/// The result of looking a command up.
pub enum Lookup<'t> {
    Found(&'t CommandEntry),
    /// No such command.
    Unknown,
    /// The container exists but not this subcommand.
    UnknownSub(&'t CommandEntry),
}

const MAX_NAME: usize = 64;

fn lower_into<'b>(buf: &'b mut [u8; MAX_NAME], parts: &[&[u8]]) -> Option<&'b [u8]> {
    let mut n = 0;
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            *buf.get_mut(n)? = b'|';
            n += 1;
        }
        for &c in p.iter() {
            *buf.get_mut(n)? = c.to_ascii_lowercase();
            n += 1;
        }
    }
    Some(&buf[..n])
}

impl CommandTable {
    fn build() -> Self {
        let mut entries = Vec::new();
        let mut index = hashbrown::HashMap::with_hasher(foldhash::fast::RandomState::default());
        for fam in FAMILIES {
            for spec in fam.iter() {
                index.insert(spec.name.as_bytes().into(), entries.len());
                entries.push(CommandEntry {
                    id: entries.len(),
                    spec,
                    full_name: spec.name.to_string(),
                    parent: None,
                    stats: CmdStats::default(),
                    latency: Default::default(),
                });
                for sub in spec.subcommands {
                    let full = format!("{}|{}", spec.name, sub.name);
                    index.insert(full.as_bytes().into(), entries.len());
                    entries.push(CommandEntry {
                        id: entries.len(),
                        spec: sub,
                        full_name: full,
                        parent: Some(spec),
                        stats: CmdStats::default(),
                        latency: Default::default(),
                    });
                }
            }
        }
        CommandTable { entries, index }
    }

    /// Finds the entry for `argv` (command, and subcommand for containers).
    pub fn lookup(&self, argv: &[Bytes]) -> Lookup<'_> {
        let mut buf = [0u8; MAX_NAME];
        let Some(name) = argv.first() else {
            return Lookup::Unknown;
        };
        let Some(lname) = lower_into(&mut buf, &[name]) else {
            return Lookup::Unknown;
        };
        let Some(&i) = self.index.get(lname) else {
            return Lookup::Unknown;
        };
        let e = &self.entries[i];
        // `CONFIG|GET` as a command name is unknown (as in Redis); the
        // index holds full names for subcommands too.
        if e.parent.is_some() {
            return Lookup::Unknown;
        }
        if !e.spec.is_container() || argv.len() < 2 {
            return Lookup::Found(e);
        }
        let mut buf2 = [0u8; MAX_NAME];
        match lower_into(&mut buf2, &[name, &argv[1]]).and_then(|n| self.index.get(n)) {
            Some(&j) => Lookup::Found(&self.entries[j]),
            None => Lookup::UnknownSub(e),
        }
    }

    /// A command by exact lower-case name (`get`, `config|get`).
    pub fn get(&self, name: &str) -> Option<&CommandEntry> {
        self.index.get(name.as_bytes()).map(|&i| &self.entries[i])
    }

    /// The entry with this id.
    pub fn by_id(&self, id: usize) -> Option<&CommandEntry> {
        self.entries.get(id)
    }

    /// Top-level commands (no subcommands), in table order.
    pub fn top_level(&self) -> impl Iterator<Item = &CommandEntry> {
        self.entries.iter().filter(|e| e.parent.is_none())
    }

    /// Every entry, subcommands included.
    pub fn all(&self) -> impl Iterator<Item = &CommandEntry> {
        self.entries.iter()
    }
}

/// The process-wide command table.
pub fn table() -> &'static CommandTable {
    static T: OnceLock<CommandTable> = OnceLock::new();
    T.get_or_init(CommandTable::build)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::spec::{CmdFlags, KeySpec};

    #[test]
    fn names_are_unique_lowercase_and_keys_declared() {
        let t = table();
        let mut seen = std::collections::HashSet::new();
        for e in t.all() {
            assert!(
                seen.insert(e.full_name.clone()),
                "duplicate {}",
                e.full_name
            );
            assert_eq!(e.full_name, e.full_name.to_ascii_lowercase());
            let s = e.spec;
            if s.flags.contains(CmdFlags::WRITE)
                && matches!(s.lock, crate::commands::spec::LockScope::Keys)
            {
                assert!(
                    !matches!(s.keys, KeySpec::None),
                    "write command {} declares no keys",
                    e.full_name
                );
            }
            assert!(
                !(s.flags.contains(CmdFlags::WRITE) && s.flags.contains(CmdFlags::READONLY)),
                "{} is both write and readonly",
                e.full_name
            );
            assert!(s.arity != 0, "{} has arity 0", e.full_name);
            assert!(
                !s.summary.is_empty() || s.is_container(),
                "{} lacks a summary",
                e.full_name
            );
        }
    }
}
