//! ACL users (Redis 7.0 semantics): the user model, rule parsing
//! (`ACL SETUSER` modifiers), permission checks, rule descriptions
//! (`ACL LIST` / `GETUSER`) and the ACL log.
//!
//! Shape of the model, as in Redis: a user has flags (on/off, nopass),
//! SHA-256 password hashes and a list of *selectors*; the first is the root
//! selector (rules given outside parentheses), the others come from
//! `(...)` groups. A command is allowed when any one selector allows the
//! command *and* all its keys *and* all its channels.
//!
//! Clients hold an `Arc<UserHandle>`: the handle's rules are swapped as a
//! whole by `ACL SETUSER` (all modifiers validated on a copy first, so a
//! failing SETUSER changes nothing), so the next command of every
//! connection of that user sees the change. The common case — a user that
//! may run everything on every key and channel — is one atomic flag
//! (`UserHandle::unrestricted`), tested by dispatch before anything else.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use smallvec::SmallVec;

use crate::commands::spec::{Acl as Cat, CmdFlags};
use crate::commands::table::{table, CommandEntry};
use crate::util::glob::glob_match;

/// Key pattern permission: the key may be read (`%R~`).
pub const PERM_READ: u8 = 1;
/// Key pattern permission: the key may be written (`%W~`).
pub const PERM_WRITE: u8 = 2;
/// `~pattern`: read and write.
pub const PERM_ALL: u8 = PERM_READ | PERM_WRITE;

/// A key pattern with the access it grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPattern {
    pub flags: u8,
    pub pattern: Vec<u8>,
}

impl KeyPattern {
    fn describe(&self, out: &mut Vec<u8>) {
        match self.flags {
            PERM_READ => out.extend_from_slice(b"%R~"),
            PERM_WRITE => out.extend_from_slice(b"%W~"),
            _ => out.push(b'~'),
        }
        out.extend_from_slice(&self.pattern);
    }
}

/// One set of permissions (the root selector, or a `(...)` one).
#[derive(Clone, Debug)]
pub struct Selector {
    root: bool,
    /// Every command, including future ones (`+@all` and no bit removed
    /// since).
    allcommands: bool,
    allkeys: bool,
    allchannels: bool,
    /// The reserved "future commands" bit of Redis: set by `+@all`,
    /// cleared by `-@all`; decides whether descriptions start with
    /// `+@all` or `-@all`.
    future: bool,
    /// Allowed command ids (table ids, subcommands included).
    bits: Vec<u64>,
    /// `+cmd|firstarg` allowances of commands without subcommands.
    firstargs: BTreeMap<usize, Vec<Vec<u8>>>,
    keys: Vec<KeyPattern>,
    channels: Vec<Vec<u8>>,
}

/// Why a modifier was refused (the texts are Redis's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleError {
    Syntax,
    Unknown,
    KeyAfterAll,
    ChannelAfterAll,
    NoSuchPassword,
    BadHash,
    FirstArgOfSub,
}

impl RuleError {
    /// Redis's description of the error.
    pub fn message(self) -> &'static str {
        match self {
            RuleError::Syntax => "Syntax error",
            RuleError::Unknown => "Unknown command or category name in ACL",
            RuleError::KeyAfterAll => "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns",
            RuleError::ChannelAfterAll => "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels",
            RuleError::NoSuchPassword => "The password you are trying to remove from the user does not exist",
            RuleError::BadHash => "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters",
            RuleError::FirstArgOfSub => "Allowing first-arg of a subcommand is not supported",
        }
    }
}

fn n_words() -> usize {
    static N: OnceLock<usize> = OnceLock::new();
    *N.get_or_init(|| table().all().count().div_ceil(64))
}

fn has_spaces(s: &[u8]) -> bool {
    s.iter()
        .any(|&c| c == 0 || c.is_ascii_whitespace() || c == 0x0b)
}

/// Strips tabs, CR and LF at both ends (as Redis trims ACL file rules).
fn trim_tab_crlf(s: &[u8]) -> Vec<u8> {
    let is = |c: &u8| matches!(c, b'\t' | b'\r' | b'\n');
    let start = s.iter().position(|c| !is(c)).unwrap_or(s.len());
    let end = s.iter().rposition(|c| !is(c)).map_or(start, |e| e + 1);
    s[start..end.max(start)].to_vec()
}

fn eq_ic(a: &[u8], b: &str) -> bool {
    a.eq_ignore_ascii_case(b.as_bytes())
}

/// The category bit of a name (`read`, `admin`…), case-insensitive.
pub fn category_by_name(name: &[u8]) -> Option<Cat> {
    Cat::ALL_NAMES
        .iter()
        .find(|(_, n)| eq_ic(name, n))
        .map(|(c, _)| *c)
}

/// Top-level entries with their subcommand entries, in table order.
fn command_tree() -> &'static [(usize, Vec<usize>)] {
    static TREE: OnceLock<Vec<(usize, Vec<usize>)>> = OnceLock::new();
    TREE.get_or_init(|| {
        let t = table();
        let mut out: Vec<(usize, Vec<usize>)> = Vec::new();
        for e in t.all() {
            if e.parent.is_none() {
                out.push((e.id, Vec::new()));
            } else if let Some(last) = out.last_mut() {
                last.1.push(e.id);
            }
        }
        out
    })
}

/// Subcommand ids of a container, by command-table id.
fn subcommands_of(id: usize) -> &'static [usize] {
    static SUBS: OnceLock<Vec<Vec<usize>>> = OnceLock::new();
    SUBS.get_or_init(|| {
        let mut v = vec![Vec::new(); table().all().count()];
        for (p, subs) in command_tree() {
            if let Some(slot) = v.get_mut(*p) {
                slot.clone_from(subs);
            }
        }
        v
    })
    .get(id)
    .map_or(&[], |s| s.as_slice())
}

/// ACL categories by command-table id (computed once: descriptions count
/// categories over the whole table many times).
fn categories_of(id: usize) -> Cat {
    static CATS: OnceLock<Vec<Cat>> = OnceLock::new();
    CATS.get_or_init(|| table().all().map(|e| e.spec.acl_categories()).collect())
        .get(id)
        .copied()
        .unwrap_or(Cat::empty())
}

impl Selector {
    fn new(root: bool, pubsub_all: bool) -> Self {
        Selector {
            root,
            allcommands: false,
            allkeys: false,
            allchannels: pubsub_all,
            future: false,
            bits: vec![0; n_words()],
            firstargs: BTreeMap::new(),
            keys: Vec::new(),
            channels: Vec::new(),
        }
    }

    fn bit(&self, id: usize) -> bool {
        self.bits
            .get(id / 64)
            .is_some_and(|w| w & (1u64 << (id % 64)) != 0)
    }

    fn set_bit(&mut self, id: usize, on: bool) {
        if let Some(w) = self.bits.get_mut(id / 64) {
            if on {
                *w |= 1u64 << (id % 64);
            } else {
                *w &= !(1u64 << (id % 64));
                self.allcommands = false;
            }
        }
    }

    /// Allows or denies one command; a container's subcommands follow it.
    fn change_perm(&mut self, id: usize, allow: bool) {
        self.set_bit(id, allow);
        self.firstargs.remove(&id);
        for &s in subcommands_of(id) {
            self.set_bit(s, allow);
        }
    }

    fn set_category(&mut self, cat: Cat, allow: bool) {
        for (id, subs) in command_tree() {
            if categories_of(*id).intersects(cat) {
                self.change_perm(*id, allow);
            }
            for &s in subs {
                if categories_of(s).intersects(cat) {
                    self.change_perm(s, allow);
                }
            }
        }
    }

    fn count_category(&self, cat: Cat) -> (u64, u64) {
        let (mut on, mut off) = (0, 0);
        for (id, subs) in command_tree() {
            for &i in std::iter::once(id).chain(subs.iter()) {
                if categories_of(i).intersects(cat) {
                    if self.bit(i) {
                        on += 1;
                    } else {
                        off += 1;
                    }
                }
            }
        }
        (on, off)
    }

    fn all_commands(&mut self, on: bool) {
        for w in self.bits.iter_mut() {
            *w = if on { u64::MAX } else { 0 };
        }
        self.allcommands = on;
        self.future = on;
        self.firstargs.clear();
    }

    /// Applies one selector modifier (keys, channels, commands).
    pub fn apply(&mut self, op: &[u8]) -> Result<(), RuleError> {
        if eq_ic(op, "allkeys") || op == b"~*" {
            self.allkeys = true;
            self.keys.clear();
        } else if eq_ic(op, "resetkeys") {
            self.allkeys = false;
            self.keys.clear();
        } else if eq_ic(op, "allchannels") || op == b"&*" {
            self.allchannels = true;
            self.channels.clear();
        } else if eq_ic(op, "resetchannels") {
            self.allchannels = false;
            self.channels.clear();
        } else if eq_ic(op, "allcommands") || eq_ic(op, "+@all") {
            self.all_commands(true);
        } else if eq_ic(op, "nocommands") || eq_ic(op, "-@all") {
            self.all_commands(false);
        } else if op[0] == b'~' || op[0] == b'%' {
            if self.allkeys {
                return Err(RuleError::KeyAfterAll);
            }
            let mut flags = 0u8;
            let mut offset = 1;
            if op[0] == b'%' {
                while offset < op.len() {
                    let c = op[offset];
                    if c.eq_ignore_ascii_case(&b'r') && flags & PERM_READ == 0 {
                        flags |= PERM_READ;
                    } else if c.eq_ignore_ascii_case(&b'w') && flags & PERM_WRITE == 0 {
                        flags |= PERM_WRITE;
                    } else if c == b'~' {
                        offset += 1;
                        break;
                    } else {
                        return Err(RuleError::Syntax);
                    }
                    offset += 1;
                }
                // "%R" without '~' leaves an empty pattern with these
                // flags, as in Redis.
            } else {
                flags = PERM_ALL;
            }
            let pat = &op[offset.min(op.len())..];
            if has_spaces(pat) {
                return Err(RuleError::Syntax);
            }
            match self.keys.iter_mut().find(|k| k.pattern == pat) {
                Some(k) => k.flags |= flags,
                None => self.keys.push(KeyPattern {
                    flags,
                    pattern: pat.to_vec(),
                }),
            }
            self.allkeys = false;
        } else if op[0] == b'&' {
            if self.allchannels {
                return Err(RuleError::ChannelAfterAll);
            }
            let pat = &op[1..];
            if has_spaces(pat) {
                return Err(RuleError::Syntax);
            }
            if !self.channels.iter().any(|c| c == pat) {
                self.channels.push(pat.to_vec());
            }
            self.allchannels = false;
        } else if op[0] == b'+' && op.get(1) != Some(&b'@') {
            let name = &op[1..];
            match name.iter().rposition(|&c| c == b'|') {
                None => {
                    let e = lookup(name).ok_or(RuleError::Unknown)?;
                    self.change_perm(e.id, true);
                }
                Some(bar) => {
                    let (base, sub) = (&name[..bar], &name[bar + 1..]);
                    let e = lookup(base).ok_or(RuleError::Unknown)?;
                    if e.parent.is_some() {
                        return Err(RuleError::FirstArgOfSub);
                    }
                    if sub.is_empty() {
                        return Err(RuleError::Syntax);
                    }
                    if e.spec.is_container() {
                        let s = lookup(name).ok_or(RuleError::Unknown)?;
                        self.change_perm(s.id, true);
                    } else {
                        tracing::warn!(
                            "Deprecation warning: Allowing a first arg of an otherwise blocked command is a misuse of ACL and may get disabled in the future (offender: +{})",
                            String::from_utf8_lossy(name)
                        );
                        let list = self.firstargs.entry(e.id).or_default();
                        if !list.iter().any(|a| a.eq_ignore_ascii_case(sub)) {
                            list.push(sub.to_vec());
                        }
                    }
                }
            }
        } else if op[0] == b'-' && op.get(1) != Some(&b'@') {
            let e = lookup(&op[1..]).ok_or(RuleError::Unknown)?;
            self.change_perm(e.id, false);
        } else if (op[0] == b'+' || op[0] == b'-') && op.get(1) == Some(&b'@') {
            let cat = category_by_name(&op[2..]).ok_or(RuleError::Unknown)?;
            self.set_category(cat, op[0] == b'+');
        } else {
            return Err(RuleError::Syntax);
        }
        Ok(())
    }

    /// The command rules as `ACL SETUSER` modifiers: `+@all`/`-@all`,
    /// then the best-fitting categories, then single commands (Redis's
    /// algorithm; single commands follow table order).
    pub fn describe_commands(&self) -> String {
        let mut rules = String::new();
        let additive = !self.future;
        let mut fake = Selector::new(false, false);
        if additive {
            rules.push_str("-@all ");
            fake.all_commands(false);
        } else {
            rules.push_str("+@all ");
            fake.all_commands(true);
        }
        let mut temp = Selector::new(false, false);
        temp.bits = self.bits.clone();
        let mut applied = [false; 32];
        loop {
            let mut best: Option<usize> = None;
            let (mut mindiff, mut maxsame) = (u64::MAX, 0u64);
            for (j, (cat, _)) in Cat::ALL_NAMES.iter().enumerate() {
                if applied[j] {
                    continue;
                }
                let (on, off) = temp.count_category(*cat);
                let (diff, same) = if additive { (off, on) } else { (on, off) };
                if same > diff && (diff < mindiff || (diff == mindiff && same > maxsame)) {
                    best = Some(j);
                    mindiff = diff;
                    maxsame = same;
                }
            }
            let Some(b) = best else { break };
            let (cat, name) = Cat::ALL_NAMES[b];
            fake.set_category(cat, additive);
            temp.set_category(cat, !additive);
            rules.push_str(if additive { "+@" } else { "-@" });
            rules.push_str(name);
            rules.push(' ');
            applied[b] = true;
        }
        let t = table();
        for (id, subs) in command_tree() {
            for &i in std::iter::once(id).chain(subs.iter()) {
                let user = self.bit(i);
                if user != fake.bit(i) {
                    rules.push(if user { '+' } else { '-' });
                    if let Some(e) = t.by_id(i) {
                        rules.push_str(&e.full_name);
                    }
                    rules.push(' ');
                    fake.change_perm(i, user);
                }
                if !user {
                    if let (Some(args), Some(e)) = (self.firstargs.get(&i), t.by_id(i)) {
                        for a in args {
                            rules.push('+');
                            rules.push_str(&e.full_name);
                            rules.push('|');
                            rules.push_str(&String::from_utf8_lossy(a));
                            rules.push(' ');
                        }
                    }
                }
            }
        }
        rules.pop();
        rules
    }

    /// `~*`-style key description for GETUSER (`~*`, or the patterns
    /// separated by spaces).
    pub fn describe_keys(&self) -> Vec<u8> {
        if self.allkeys {
            return b"~*".to_vec();
        }
        let mut out = Vec::new();
        for (i, k) in self.keys.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            k.describe(&mut out);
        }
        out
    }

    /// Channel description for GETUSER.
    pub fn describe_channels(&self) -> Vec<u8> {
        if self.allchannels {
            return b"&*".to_vec();
        }
        let mut out = Vec::new();
        for (i, c) in self.channels.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            out.push(b'&');
            out.extend_from_slice(c);
        }
        out
    }

    /// The selector as ACL LIST prints it (keys, channels, commands).
    fn describe(&self) -> Vec<u8> {
        let mut res = Vec::new();
        if self.allkeys {
            res.extend_from_slice(b"~* ");
        } else {
            for k in &self.keys {
                k.describe(&mut res);
                res.push(b' ');
            }
        }
        if self.allchannels {
            res.extend_from_slice(b"&* ");
        } else {
            res.extend_from_slice(b"resetchannels ");
            for c in &self.channels {
                res.push(b'&');
                res.extend_from_slice(c);
                res.push(b' ');
            }
        }
        res.extend_from_slice(self.describe_commands().as_bytes());
        res
    }

    fn check_key(&self, key: &[u8], need: u8) -> bool {
        if self.allkeys {
            return true;
        }
        self.keys
            .iter()
            .any(|p| p.flags & need == need && glob_match(&p.pattern, key, false))
    }

    fn check_channel(&self, channel: &[u8], is_pattern: bool) -> bool {
        self.allchannels || channel_in_list(&self.channels, channel, is_pattern)
    }

    fn check_cmd(
        &self,
        entry: &CommandEntry,
        argv: &[Bytes],
        keys: &KeyRefs,
    ) -> Result<(), Denied> {
        if !self.allcommands && !entry.spec.flags.contains(CmdFlags::NO_AUTH) && !self.bit(entry.id)
        {
            let idx = if entry.parent.is_some() { 2 } else { 1 };
            let ok = argv.len() >= 2
                && self.firstargs.get(&entry.id).is_some_and(|l| {
                    argv.get(idx)
                        .is_some_and(|a| l.iter().any(|x| x.eq_ignore_ascii_case(a)))
                });
            if !ok {
                return Err(Denied::Command);
            }
        }
        if !self.allkeys {
            for &(pos, need) in keys.iter() {
                if let Some(k) = argv.get(pos) {
                    if !self.check_key(k, need) {
                        return Err(Denied::Key(pos));
                    }
                }
            }
        }
        if !self.allchannels {
            for (pos, is_pattern) in channel_positions(entry, argv) {
                if !channel_in_list(&self.channels, &argv[pos], is_pattern) {
                    return Err(Denied::Channel(pos));
                }
            }
        }
        Ok(())
    }
}

/// Is `channel` allowed by this list? A pattern subscription must match a
/// listed pattern literally; a channel is matched against the patterns.
fn channel_in_list(list: &[Vec<u8>], channel: &[u8], is_pattern: bool) -> bool {
    list.iter().any(|p| {
        if is_pattern {
            p.as_slice() == channel
        } else {
            glob_match(p, channel, false)
        }
    })
}

/// A command-table entry by ACL name (`get`, `config|get`; case-insensitive).
fn lookup(name: &[u8]) -> Option<&'static CommandEntry> {
    let lower = String::from_utf8_lossy(name).to_ascii_lowercase();
    if lower.matches('|').count() > 1 {
        return None;
    }
    table().get(&lower)
}

/// The positions of channel arguments that ACL checks (publish and
/// subscribe; unsubscribing is always allowed), and whether each is a
/// pattern.
fn channel_positions(entry: &CommandEntry, argv: &[Bytes]) -> SmallVec<[(usize, bool); 4]> {
    let mut out = SmallVec::new();
    if entry.parent.is_some() {
        return out;
    }
    match entry.spec.name {
        "subscribe" | "ssubscribe" => out.extend((1..argv.len()).map(|i| (i, false))),
        "psubscribe" => out.extend((1..argv.len()).map(|i| (i, true))),
        "publish" | "spublish" if argv.len() > 1 => out.push((1, false)),
        _ => {}
    }
    out
}

/// Why a command was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denied {
    Command,
    /// The argument index of the key.
    Key(usize),
    /// The argument index of the channel.
    Channel(usize),
}

impl Denied {
    fn rank(self) -> (u8, usize) {
        match self {
            Denied::Command => (1, 0),
            Denied::Key(i) => (2, i),
            Denied::Channel(i) => (4, i),
        }
    }

    /// The top-level NOPERM error (Redis 7.0's texts).
    pub fn error(self, entry: &CommandEntry) -> crate::protocol::CmdError {
        use crate::protocol::CmdError;
        match self {
            Denied::Command => CmdError::new(format!(
                "NOPERM this user has no permissions to run the '{}' command",
                entry.full_name
            )),
            Denied::Key(_) => CmdError::from_static(
                "NOPERM this user has no permissions to access one of the keys used as arguments",
            ),
            Denied::Channel(_) => CmdError::from_static(
                "NOPERM this user has no permissions to access one of the channels used as arguments",
            ),
        }
    }

    /// The phrase scripts use after "The user executing the script ".
    pub fn script_message(self) -> &'static str {
        match self {
            Denied::Command => "can't run this command or subcommand",
            Denied::Key(_) => {
                "can't access at least one of the keys mentioned in the command arguments"
            }
            Denied::Channel(_) => "can't publish to the channel mentioned in the command",
        }
    }

    /// The reason EXEC gives when rules changed after queueing.
    pub fn exec_reason(self) -> &'static str {
        match self {
            Denied::Command => "no permission to execute the command or subcommand",
            Denied::Key(_) => "no permission to touch the specified keys",
            Denied::Channel(_) => "no permission to access one of the channels used as arguments",
        }
    }

    /// The ACL LOG reason of this refusal.
    pub fn log_reason_pub(self) -> LogReason {
        match self {
            Denied::Command => LogReason::Command,
            Denied::Key(_) => LogReason::Key,
            Denied::Channel(_) => LogReason::Channel,
        }
    }
}

// ---------------------------------------------------------------------------
// Key extraction with access flags (Redis's key specs)
// ---------------------------------------------------------------------------

/// Key positions with the permission each needs (`PERM_READ`/`PERM_WRITE`
/// bits; 0 = any pattern matches, e.g. EXISTS).
type KeyRefs = SmallVec<[(usize, u8); 4]>;

#[derive(Debug, Clone)]
enum BeginSearch {
    Index(i32),
    Keyword(String, i32),
    Unknown,
}

#[derive(Debug, Clone)]
enum FindKeys {
    Range { last: i32, step: i32, limit: i32 },
    Keynum { idx: i32, first: i32, step: i32 },
    Unknown,
}

#[derive(Debug, Clone)]
struct KSpec {
    bs: BeginSearch,
    fk: FindKeys,
    need: u8,
    /// The spec's flags as Redis names them (`RW,ACCESS,DELETE`).
    flags: &'static str,
    incomplete: bool,
    not_key: bool,
    variable: bool,
}

/// Redis 7.0's key specs (begin_search, find_keys, flags) per command,
/// extracted from its command metadata.
const KEYSPECS: &str = include_str!("acl_keyspecs.tsv");

fn parse_spec(s: &'static str) -> Option<KSpec> {
    let mut parts = s.split(' ');
    let bs = parts.next()?;
    let fk = parts.next()?;
    let flags = parts.next().unwrap_or("");
    let nums = |t: &str| -> Vec<i32> { t.split(':').filter_map(|n| n.parse().ok()).collect() };
    let bs = if let Some(r) = bs.strip_prefix('i') {
        BeginSearch::Index(r.parse().ok()?)
    } else if let Some(r) = bs.strip_prefix('k') {
        let (kw, from) = r.rsplit_once(':')?;
        BeginSearch::Keyword(kw.to_string(), from.parse().ok()?)
    } else {
        BeginSearch::Unknown
    };
    let fk = if let Some(r) = fk.strip_prefix('r') {
        let n = nums(r);
        FindKeys::Range {
            last: *n.first()?,
            step: *n.get(1)?,
            limit: *n.get(2)?,
        }
    } else if let Some(r) = fk.strip_prefix('n') {
        let n = nums(r);
        FindKeys::Keynum {
            idx: *n.first()?,
            first: *n.get(1)?,
            step: *n.get(2)?,
        }
    } else {
        FindKeys::Unknown
    };
    let has = |f: &str| flags.split(',').any(|x| x == f);
    let mut need = 0;
    if has("ACCESS") {
        need |= PERM_READ;
    }
    if has("INSERT") || has("DELETE") || has("UPDATE") {
        need |= PERM_WRITE;
    }
    Some(KSpec {
        bs,
        fk,
        need,
        flags,
        incomplete: has("INCOMPLETE"),
        not_key: has("NOT_KEY"),
        variable: has("VARIABLE_FLAGS"),
    })
}

/// Key specs by command-table id (`None`: not a Redis command, or no keys).
fn keyspecs() -> &'static [Option<Vec<KSpec>>] {
    static SPECS: OnceLock<Vec<Option<Vec<KSpec>>>> = OnceLock::new();
    SPECS.get_or_init(|| {
        let t = table();
        let mut v: Vec<Option<Vec<KSpec>>> = vec![None; t.all().count()];
        for line in KEYSPECS.lines() {
            if line.starts_with('#') {
                continue;
            }
            let Some((name, specs)) = line.split_once('\t') else {
                continue;
            };
            if let Some(e) = t.get(name) {
                if let Some(slot) = v.get_mut(e.id) {
                    *slot = Some(specs.split(';').filter_map(parse_spec).collect());
                }
            }
        }
        v
    })
}

/// Keys by key specs; `None` when a spec cannot be applied (Redis then
/// falls back to the command's own key finder).
fn keys_by_specs(specs: &[KSpec], argv: &[Bytes], arity: i32) -> Option<KeyRefs> {
    keys_by_specs_with(specs, argv, arity, |s| s.need)
}

/// [`keys_by_specs`] tagging each key with `tag(its spec)`.
fn keys_by_specs_with<T: Copy>(
    specs: &[KSpec],
    argv: &[Bytes],
    arity: i32,
    tag: impl Fn(&KSpec) -> T,
) -> Option<SmallVec<[(usize, T); 4]>> {
    let argc = argv.len() as i32;
    let mut out = SmallVec::new();
    for s in specs {
        if s.not_key {
            continue;
        }
        let mut first = match &s.bs {
            BeginSearch::Index(p) => *p,
            BeginSearch::Keyword(kw, from) => {
                let start = if *from > 0 { *from } else { argc + from };
                let end = if *from > 0 { argc - 1 } else { 1 };
                let mut found = 0;
                let mut i = start;
                while i != end {
                    if i >= argc || i < 1 {
                        break;
                    }
                    if argv[i as usize].eq_ignore_ascii_case(kw.as_bytes()) {
                        found = i + 1;
                        break;
                    }
                    i = if start <= end { i + 1 } else { i - 1 };
                }
                if found == 0 {
                    continue;
                }
                found
            }
            BeginSearch::Unknown => return None,
        };
        let (last, step) = match s.fk {
            FindKeys::Range { last, step, limit } => {
                let l = if last >= 0 {
                    first + last
                } else if limit == 0 {
                    argc + last
                } else {
                    first + ((argc - first) / limit + last)
                };
                (l, step)
            }
            FindKeys::Keynum {
                idx,
                first: fk,
                step,
            } => {
                if idx >= argc {
                    return None;
                }
                let n: i64 = std::str::from_utf8(argv.get((first + idx) as usize)?)
                    .ok()?
                    .parse()
                    .ok()?;
                if n < 0 {
                    return None;
                }
                first += fk;
                (first + n as i32 - 1, step)
            }
            FindKeys::Unknown => return None,
        };
        if last >= argc || last < first || first >= argc {
            return None;
        }
        let mut i = first;
        while i <= last {
            if i >= argc || i < first {
                if arity < 0 {
                    i += step.max(1);
                    continue;
                }
                break;
            }
            out.push((i as usize, tag(s)));
            i += step.max(1);
        }
        if s.incomplete {
            return None;
        }
    }
    Some(out)
}

/// The keys of a command with the access each needs, as Redis's
/// `getKeysFromCommandWithSpecs` finds them.
fn command_keys(entry: &CommandEntry, argv: &[Bytes]) -> KeyRefs {
    let specs = keyspecs().get(entry.id).and_then(|s| s.as_ref());
    let Some(specs) = specs else {
        // Not a Redis command: the table's key positions, with intent from
        // the command flags.
        let need = if entry.spec.flags.contains(CmdFlags::WRITE) {
            PERM_WRITE
        } else {
            PERM_READ
        };
        return entry
            .spec
            .key_positions(argv)
            .into_iter()
            .map(|p| (p, need))
            .collect();
    };
    let has_keys = specs.iter().any(|s| !s.not_key);
    let variable = specs.iter().any(|s| s.variable);
    if has_keys && !variable {
        if let Some(k) = keys_by_specs(specs, argv, entry.spec.arity) {
            return k;
        }
    }
    fallback_keys(entry, argv, specs)
}

/// Key-spec flags in Redis's order and spelling (COMMAND GETKEYSANDFLAGS).
fn flag_names(flags: &str) -> Vec<&'static str> {
    const ORDER: [(&str, &str); 11] = [
        ("RO", "RO"),
        ("RW", "RW"),
        ("OW", "OW"),
        ("RM", "RM"),
        ("ACCESS", "access"),
        ("UPDATE", "update"),
        ("INSERT", "insert"),
        ("DELETE", "delete"),
        ("NOT_KEY", "not_key"),
        ("INCOMPLETE", "incomplete"),
        ("VARIABLE_FLAGS", "variable_flags"),
    ];
    ORDER
        .iter()
        .filter(|(k, _)| flags.split(',').any(|f| f == *k))
        .map(|(_, v)| *v)
        .collect()
}

/// The keys of a command with their key-spec flags, as Redis's COMMAND
/// GETKEYSANDFLAGS reports them: from the specs, or for commands whose
/// flags depend on the arguments (SET, BITFIELD, SORT, MIGRATE) from
/// what the arguments ask for. None for a command Redis does not have
/// (the caller falls back to RW/RO from the command flags).
pub fn keys_and_flags(
    entry: &CommandEntry,
    argv: &[Bytes],
) -> Option<Vec<(usize, Vec<&'static str>)>> {
    let specs = keyspecs().get(entry.id)?.as_ref()?;
    let variable = specs
        .iter()
        .any(|s| s.variable || s.incomplete || matches!(s.bs, BeginSearch::Unknown));
    if !variable {
        if let Some(keys) = keys_by_specs_with(specs, argv, entry.spec.arity, |s| s.flags) {
            return Some(keys.into_iter().map(|(p, f)| (p, flag_names(f))).collect());
        }
    }
    let rw_flags = |need: u8| -> Vec<&'static str> {
        match need {
            PERM_READ => vec!["RO", "access"],
            PERM_WRITE => vec!["OW", "update"],
            _ => vec!["RW", "access", "update"],
        }
    };
    let mut out: Vec<(usize, Vec<&'static str>)> = fallback_keys(entry, argv, specs)
        .into_iter()
        .map(|(p, need)| (p, rw_flags(need)))
        .collect();
    if entry.full_name == "migrate" {
        for (_, f) in out.iter_mut() {
            *f = vec!["RW", "access", "delete"];
        }
    }
    Some(out)
}

/// The command-specific key finders Redis uses when specs are
/// incomplete or their flags depend on the arguments.
fn fallback_keys(entry: &CommandEntry, argv: &[Bytes], specs: &[KSpec]) -> KeyRefs {
    let mut out = KeyRefs::new();
    let rw = PERM_READ | PERM_WRITE;
    match entry.full_name.as_str() {
        "set" => {
            let get = argv.iter().skip(3).any(|a| eq_ic(a, "get"));
            out.push((1, if get { rw } else { PERM_WRITE }));
        }
        "bitfield" => {
            let mut readonly = true;
            let mut i = 2;
            while i < argv.len() {
                let rem = argv.len() - i - 1;
                let a = &argv[i];
                if eq_ic(a, "get") && rem >= 2 {
                    i += 2;
                } else if (eq_ic(a, "set") || eq_ic(a, "incrby")) && rem >= 3 {
                    readonly = false;
                    break;
                } else if eq_ic(a, "overflow") && rem >= 1 {
                    i += 1;
                } else {
                    readonly = false;
                    break;
                }
                i += 1;
            }
            out.push((1, if readonly { PERM_READ } else { rw }));
        }
        "sort" | "sort_ro" => {
            out.push((1, PERM_READ));
            if entry.full_name == "sort" {
                let mut store = None;
                let mut i = 2;
                while i < argv.len() {
                    let a = &argv[i];
                    if eq_ic(a, "limit") {
                        i += 2;
                    } else if eq_ic(a, "get") || eq_ic(a, "by") {
                        i += 1;
                    } else if eq_ic(a, "store") && i + 1 < argv.len() {
                        store = Some(i + 1);
                    }
                    i += 1;
                }
                if let Some(p) = store {
                    out.push((p, PERM_WRITE));
                }
            }
        }
        "migrate" => {
            out.extend(
                crate::commands::migrate::migrate_keys(argv)
                    .into_iter()
                    .map(|p| (p, rw)),
            );
        }
        _ => {
            // The specs failed on these arguments (a bad numkeys, a
            // missing argument): Redis's key finders then report no
            // keys and the command itself answers the syntax error.
            let _ = specs;
        }
    }
    out.retain(|(p, _)| *p < argv.len());
    out
}

// ---------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------

/// A user's rules (immutable once published in a [`UserHandle`]).
#[derive(Clone, Debug)]
pub struct User {
    pub enabled: bool,
    pub nopass: bool,
    /// 0: neither, 1: skip-sanitize-payload, 2: sanitize-payload.
    sanitize: u8,
    /// Lower-case hex SHA-256 of each password.
    pub passwords: Vec<String>,
    /// The root selector first.
    selectors: Vec<Selector>,
}

/// Lower-case hex SHA-256 of a password, as Redis stores it.
pub fn hash_password(pass: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, pass);
    let mut s = String::with_capacity(64);
    for b in d.as_ref() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn valid_hash(h: &[u8]) -> bool {
    h.len() == 64 && h.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// Compares in time independent of where the strings differ.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Splits a `(...)` group's inside into modifiers (Redis's sdssplitargs
/// rules, so quoting works as in redis.conf).
fn split_selector(inner: &[u8]) -> Option<Vec<Vec<u8>>> {
    let s = std::str::from_utf8(inner).ok();
    match s {
        Some(s) => crate::config::split_args(s)
            .ok()
            .map(|v| v.into_iter().map(String::into_bytes).collect()),
        None => Some(
            inner
                .split(|c| c.is_ascii_whitespace())
                .filter(|p| !p.is_empty())
                .map(<[u8]>::to_vec)
                .collect(),
        ),
    }
}

impl User {
    /// A new user as `ACL SETUSER` creates it: off, no passwords, no
    /// commands, no keys, channels per `acl-pubsub-default`.
    pub fn new(pubsub_all: bool) -> Self {
        User {
            enabled: false,
            nopass: false,
            sanitize: 0,
            passwords: Vec::new(),
            selectors: vec![Selector::new(true, pubsub_all)],
        }
    }

    /// The default user of a fresh server: on, nopass, everything.
    pub fn default_user() -> Self {
        let mut u = User::new(false);
        for op in ["+@all", "~*", "&*", "on", "nopass"] {
            let _ = u.apply(op.as_bytes(), false);
        }
        u
    }

    fn root(&mut self) -> &mut Selector {
        &mut self.selectors[0]
    }

    /// Applies one `ACL SETUSER` modifier.
    pub fn apply(&mut self, op: &[u8], pubsub_all: bool) -> Result<(), RuleError> {
        if op.is_empty() {
            return Ok(());
        }
        if eq_ic(op, "on") {
            self.enabled = true;
        } else if eq_ic(op, "off") {
            self.enabled = false;
        } else if eq_ic(op, "skip-sanitize-payload") {
            self.sanitize = 1;
        } else if eq_ic(op, "sanitize-payload") {
            self.sanitize = 2;
        } else if eq_ic(op, "nopass") {
            self.nopass = true;
            self.passwords.clear();
        } else if eq_ic(op, "resetpass") {
            self.nopass = false;
            self.passwords.clear();
        } else if op[0] == b'>' || op[0] == b'#' {
            let h = if op[0] == b'>' {
                hash_password(&op[1..])
            } else {
                if !valid_hash(&op[1..]) {
                    return Err(RuleError::BadHash);
                }
                String::from_utf8_lossy(&op[1..]).into_owned()
            };
            if !self.passwords.contains(&h) {
                self.passwords.push(h);
            }
            self.nopass = false;
        } else if op[0] == b'<' || op[0] == b'!' {
            let h = if op[0] == b'<' {
                hash_password(&op[1..])
            } else {
                if !valid_hash(&op[1..]) {
                    return Err(RuleError::BadHash);
                }
                String::from_utf8_lossy(&op[1..]).into_owned()
            };
            match self.passwords.iter().position(|p| *p == h) {
                Some(i) => {
                    self.passwords.remove(i);
                }
                None => return Err(RuleError::NoSuchPassword),
            }
        } else if op[0] == b'(' && op[op.len() - 1] == b')' {
            let mut s = Selector::new(false, pubsub_all);
            let inner = &op[1..op.len() - 1];
            for o in split_selector(inner).ok_or(RuleError::Syntax)? {
                s.apply(&o)?;
            }
            self.selectors.push(s);
        } else if eq_ic(op, "clearselectors") {
            self.selectors.truncate(1);
        } else if eq_ic(op, "reset") {
            self.nopass = false;
            self.passwords.clear();
            let r = self.root();
            r.allkeys = false;
            r.keys.clear();
            r.allchannels = pubsub_all;
            r.channels.clear();
            self.enabled = false;
            self.sanitize = 2;
            self.selectors.truncate(1);
            self.root().all_commands(false);
        } else {
            self.root().apply(op)?;
        }
        Ok(())
    }

    /// Runs every selector; Ok when one allows everything, else the most
    /// relevant refusal (as Redis picks it).
    pub fn check(&self, entry: &CommandEntry, argv: &[Bytes]) -> Result<(), Denied> {
        let mut keys: Option<KeyRefs> = None;
        let mut worst = Denied::Command;
        for s in &self.selectors {
            let k = if s.allkeys {
                &KeyRefs::new()
            } else {
                keys.get_or_insert_with(|| command_keys(entry, argv))
            };
            match s.check_cmd(entry, argv, k) {
                Ok(()) => return Ok(()),
                Err(d) => {
                    if d.rank() > worst.rank() {
                        worst = d;
                    }
                }
            }
        }
        Err(worst)
    }

    /// May this user read/write `key` in some selector (SORT BY/GET)?
    pub fn check_key(&self, key: &[u8], need: u8) -> bool {
        self.selectors.iter().any(|s| s.check_key(key, need))
    }

    /// May this user use this channel (pattern literally) in some selector?
    pub fn check_channel(&self, channel: &[u8], is_pattern: bool) -> bool {
        self.selectors
            .iter()
            .any(|s| s.check_channel(channel, is_pattern))
    }

    /// Does some selector allow the command with unrestricted access of
    /// kind `need` to every key (SORT BY/GET with patterns)?
    pub fn check_cmd_all_keys(&self, entry: &CommandEntry, argv: &[Bytes], need: u8) -> bool {
        let keys = command_keys(entry, argv);
        self.selectors.iter().any(|s| {
            s.check_cmd(entry, argv, &keys).is_ok()
                && (s.allkeys
                    || s.keys
                        .iter()
                        .any(|p| p.flags & need == need && p.pattern == b"*"))
        })
    }

    /// Any selector allows every command, key and channel.
    fn unrestricted(&self) -> bool {
        self.selectors
            .iter()
            .any(|s| s.allcommands && s.allkeys && s.allchannels)
    }

    /// The flags GETUSER lists (on/off, nopass, sanitize).
    pub fn flag_names(&self) -> Vec<&'static str> {
        let mut v = vec![if self.enabled { "on" } else { "off" }];
        if self.nopass {
            v.push("nopass");
        }
        match self.sanitize {
            1 => v.push("skip-sanitize-payload"),
            2 => v.push("sanitize-payload"),
            _ => {}
        }
        v
    }

    /// The user in `ACL LIST` / ACL file form (without `user <name> `).
    pub fn describe(&self) -> Vec<u8> {
        let mut res = Vec::new();
        for f in self.flag_names() {
            res.extend_from_slice(f.as_bytes());
            res.push(b' ');
        }
        for p in &self.passwords {
            res.push(b'#');
            res.extend_from_slice(p.as_bytes());
            res.push(b' ');
        }
        for s in &self.selectors {
            if s.root {
                res.extend_from_slice(&s.describe());
            } else {
                res.extend_from_slice(b" (");
                res.extend_from_slice(&s.describe());
                res.push(b')');
            }
        }
        res
    }

    /// The root selector and the others, for GETUSER.
    pub fn selectors(&self) -> (&Selector, &[Selector]) {
        (&self.selectors[0], &self.selectors[1..])
    }

    fn all_channels_anywhere(&self) -> bool {
        self.selectors.iter().any(|s| s.allchannels)
    }

    /// Channel patterns of all selectors.
    fn channel_list(&self) -> Vec<Vec<u8>> {
        self.selectors
            .iter()
            .flat_map(|s| s.channels.iter().cloned())
            .collect()
    }

    /// Checks the password (constant time per stored hash).
    fn password_ok(&self, pass: &[u8]) -> bool {
        if self.nopass {
            return true;
        }
        let h = hash_password(pass);
        let mut ok = false;
        for p in &self.passwords {
            ok |= ct_eq(p.as_bytes(), h.as_bytes());
        }
        ok
    }
}

/// Merges `(...)` groups spread over several arguments (Redis allows
/// `(+get` `~key)`); `Err(index)` names an unclosed group's first part.
pub fn merge_selector_args(args: &[Bytes]) -> Result<Vec<Vec<u8>>, usize> {
    let mut out = Vec::new();
    let mut open: Option<(usize, Vec<u8>)> = None;
    for (j, a) in args.iter().enumerate() {
        if let Some((_, sel)) = open.as_mut() {
            sel.push(b' ');
            sel.extend_from_slice(a);
            if a.last() == Some(&b')') {
                if let Some((_, s)) = open.take() {
                    out.push(s);
                }
            }
            continue;
        }
        if a.first() == Some(&b'(') && a.last() != Some(&b')') {
            open = Some((j, a.to_vec()));
            continue;
        }
        out.push(a.to_vec());
    }
    match open {
        Some((j, _)) => Err(j),
        None => Ok(out),
    }
}

/// A user as clients reference it: the rules are replaced as a whole.
pub struct UserHandle {
    pub name: Bytes,
    rules: RwLock<Arc<User>>,
    unrestricted: AtomicBool,
}

impl UserHandle {
    fn new(name: Bytes, u: User) -> Arc<Self> {
        let h = Arc::new(UserHandle {
            name,
            unrestricted: AtomicBool::new(false),
            rules: RwLock::new(Arc::new(User::new(false))),
        });
        h.set(u);
        h
    }

    /// True when the user may run anything: dispatch's whole ACL check.
    #[inline]
    pub fn unrestricted(&self) -> bool {
        self.unrestricted.load(Ordering::Acquire)
    }

    /// The current rules.
    pub fn get(&self) -> Arc<User> {
        self.rules.read().clone()
    }

    fn set(&self, u: User) {
        let free = u.unrestricted();
        *self.rules.write() = Arc::new(u);
        self.unrestricted.store(free, Ordering::Release);
    }

    /// The name as text (CLIENT LIST `user=`, ACL LOG).
    pub fn name_str(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

// ---------------------------------------------------------------------------
// The ACL log
// ---------------------------------------------------------------------------

/// What an ACL log entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogReason {
    Command,
    Key,
    Channel,
    Auth,
}

/// Where the denied command ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogContext {
    Toplevel,
    Multi,
    Lua,
}

/// One ACL LOG entry.
#[derive(Clone, Debug)]
pub struct LogEntry {
    pub count: u64,
    pub reason: LogReason,
    pub context: LogContext,
    pub object: Bytes,
    pub username: Bytes,
    /// Unix ms of the last occurrence.
    pub ctime: u64,
    pub client_info: String,
}

impl LogEntry {
    pub fn reason_str(&self) -> &'static str {
        match self.reason {
            LogReason::Command => "command",
            LogReason::Key => "key",
            LogReason::Channel => "channel",
            LogReason::Auth => "auth",
        }
    }
    pub fn context_str(&self) -> &'static str {
        match self.context {
            LogContext::Toplevel => "toplevel",
            LogContext::Multi => "multi",
            LogContext::Lua => "lua",
        }
    }
}

/// Entries of the same kind within this window are merged (count += 1).
const LOG_GROUPING_MS: u64 = 60_000;

// ---------------------------------------------------------------------------
// The server-wide state
// ---------------------------------------------------------------------------

/// All users, the default user and the ACL log.
pub struct AclState {
    users: RwLock<BTreeMap<Vec<u8>, Arc<UserHandle>>>,
    default: Arc<UserHandle>,
    /// `!(default nopass && on)`: new connections must authenticate.
    auth_required: AtomicBool,
    log: Mutex<VecDeque<LogEntry>>,
}

impl Default for AclState {
    fn default() -> Self {
        let default = UserHandle::new(Bytes::from_static(b"default"), User::default_user());
        let mut users = BTreeMap::new();
        users.insert(b"default".to_vec(), default.clone());
        AclState {
            users: RwLock::new(users),
            default,
            auth_required: AtomicBool::new(false),
            log: Mutex::new(VecDeque::new()),
        }
    }
}

impl AclState {
    /// The default user (every connection starts as it).
    pub fn default_user(&self) -> Arc<UserHandle> {
        self.default.clone()
    }

    /// Must a connection authenticate before running commands?
    #[inline]
    pub fn auth_required(&self) -> bool {
        self.auth_required.load(Ordering::Acquire)
    }

    fn sync_default_flags(&self) {
        let d = self.default.get();
        self.auth_required
            .store(!(d.nopass && d.enabled), Ordering::Release);
    }

    /// Makes the default user's passwords `requirepass` and the access
    /// keys (nopass when none is set), as Redis does on `requirepass`.
    pub fn set_default_passwords(&self, passwords: &[String]) {
        let mut u = (*self.default.get()).clone();
        u.passwords.clear();
        u.nopass = false;
        for p in passwords {
            let _ = u.apply(format!(">{p}").as_bytes(), false);
        }
        if passwords.is_empty() {
            let _ = u.apply(b"nopass", false);
        }
        self.default.set(u);
        self.sync_default_flags();
    }

    pub fn get_user(&self, name: &[u8]) -> Option<Arc<UserHandle>> {
        self.users.read().get(name).cloned()
    }

    /// User names in byte order.
    pub fn user_names(&self) -> Vec<Bytes> {
        self.users.read().values().map(|u| u.name.clone()).collect()
    }

    /// All users in byte order.
    pub fn users(&self) -> Vec<Arc<UserHandle>> {
        self.users.read().values().cloned().collect()
    }

    /// The user for valid credentials (enabled, password matches).
    pub fn authenticate(&self, name: &[u8], pass: &[u8]) -> Option<Arc<UserHandle>> {
        let h = self.get_user(name)?;
        let u = h.get();
        if !u.enabled || !u.password_ok(pass) {
            return None;
        }
        Some(h)
    }

    /// ACL SETUSER: applies all modifiers to a copy, then publishes it.
    /// Returns the handle and the previous rules (None for a new user).
    pub fn set_user(
        &self,
        name: &[u8],
        ops: &[Bytes],
        pubsub_all: bool,
    ) -> Result<(Arc<UserHandle>, Option<Arc<User>>), String> {
        let merged = merge_selector_args(ops).map_err(|j| {
            format!(
                "Unmatched parenthesis in acl selector starting at '{}'.",
                String::from_utf8_lossy(&ops[j])
            )
        })?;
        let existing = self.get_user(name);
        let mut u = match &existing {
            Some(h) => (*h.get()).clone(),
            None => User::new(pubsub_all),
        };
        for op in &merged {
            u.apply(op, pubsub_all).map_err(|e| {
                format!(
                    "Error in ACL SETUSER modifier '{}': {}",
                    String::from_utf8_lossy(op),
                    e.message()
                )
            })?;
        }
        let mut users = self.users.write();
        let (h, old) = match users.get(name) {
            Some(h) => {
                let old = h.get();
                h.set(u);
                (h.clone(), Some(old))
            }
            None => {
                let h = UserHandle::new(Bytes::copy_from_slice(name), u);
                users.insert(name.to_vec(), h.clone());
                (h, None)
            }
        };
        drop(users);
        if Arc::ptr_eq(&h, &self.default) {
            self.sync_default_flags();
        }
        Ok((h, old))
    }

    /// Removes users (not `default`); their handles lose every permission
    /// at once. Returns the removed handles.
    pub fn del_users(&self, names: &[Bytes]) -> Vec<Arc<UserHandle>> {
        let mut users = self.users.write();
        let mut out = Vec::new();
        for n in names {
            if let Some(h) = users.remove(n.as_ref()) {
                h.set(User::new(false));
                out.push(h);
            }
        }
        out
    }

    /// Replaces every user from ACL file text (all or nothing); the
    /// default user keeps its handle. Returns the replaced handles (whose
    /// clients must be disconnected) or Redis's error text.
    pub fn load_text(
        &self,
        text: &str,
        filename: &str,
        pubsub_all: bool,
    ) -> Result<Vec<Arc<UserHandle>>, String> {
        let mut errors = String::new();
        let mut new_users: BTreeMap<Vec<u8>, User> = BTreeMap::new();
        for (i, raw) in text.split('\n').enumerate() {
            let line = raw.trim_matches([' ', '\t', '\r', '\n']);
            let linenum = i + 1;
            if line.is_empty() {
                continue;
            }
            let argv: Vec<&str> = line.split(' ').filter(|s| !s.is_empty()).collect();
            if argv.is_empty() {
                continue;
            }
            if argv[0] != "user" || argv.len() < 2 {
                errors.push_str(&format!(
                    "{filename}:{linenum} should start with user keyword followed by the username. "
                ));
                continue;
            }
            let name = argv[1].as_bytes();
            if has_spaces(name) {
                errors.push_str(&format!(
                    "'{filename}:{linenum}: username '{}' contains invalid characters. ",
                    argv[1]
                ));
                continue;
            }
            if new_users.contains_key(name) {
                errors.push_str(&format!(
                    "WARNING: Duplicate user '{}' found on line {linenum}. ",
                    argv[1]
                ));
                continue;
            }
            let args: Vec<Bytes> = argv[2..]
                .iter()
                .map(|s| Bytes::copy_from_slice(s.as_bytes()))
                .collect();
            let mut u = User::new(pubsub_all);
            match merge_selector_args(&args) {
                Err(_) => errors.push_str(&format!(
                    "{filename}:{linenum}: Unmatched parenthesis in selector definition."
                )),
                Ok(ops) => {
                    let mut syntax = false;
                    for op in ops {
                        let op = trim_tab_crlf(&op);
                        if let Err(e) = u.apply(&op, pubsub_all) {
                            if e == RuleError::Unknown {
                                errors.push_str(&format!(
                                    "{filename}:{linenum}: Error in applying operation '{}': {}. ",
                                    String::from_utf8_lossy(&op),
                                    e.message()
                                ));
                            } else if !syntax {
                                errors
                                    .push_str(&format!("{filename}:{linenum}: {}. ", e.message()));
                                syntax = true;
                            }
                        }
                    }
                }
            }
            new_users.insert(name.to_vec(), u);
        }
        if !errors.is_empty() {
            errors.push_str(
                "WARNING: ACL errors detected, no change to the previously active ACL rules was performed",
            );
            return Err(errors);
        }
        let mut users = self.users.write();
        let old: Vec<Arc<UserHandle>> = users
            .values()
            .filter(|h| !Arc::ptr_eq(h, &self.default))
            .cloned()
            .collect();
        users.clear();
        let d = new_users
            .remove(b"default".as_slice())
            .unwrap_or_else(User::default_user);
        self.default.set(d);
        users.insert(b"default".to_vec(), self.default.clone());
        for (n, u) in new_users {
            users.insert(n.clone(), UserHandle::new(Bytes::from(n), u));
        }
        drop(users);
        for h in &old {
            h.set(User::new(false));
        }
        self.sync_default_flags();
        Ok(old)
    }

    /// The ACL file text of the current users.
    pub fn save_text(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for h in self.users() {
            out.extend_from_slice(b"user ");
            out.extend_from_slice(&h.name);
            out.push(b' ');
            out.extend_from_slice(&h.get().describe());
            out.push(b'\n');
        }
        out
    }

    /// Adds (or merges into a recent similar) ACL log entry.
    #[allow(clippy::too_many_arguments)]
    pub fn log(
        &self,
        reason: LogReason,
        context: LogContext,
        object: Bytes,
        username: Bytes,
        client_info: String,
        max_len: usize,
        now: u64,
    ) {
        let mut log = self.log.lock();
        let hit = log.iter().take(10).position(|e| {
            e.reason == reason
                && e.context == context
                && e.ctime.abs_diff(now) <= LOG_GROUPING_MS
                && e.object == object
                && e.username == username
        });
        if let Some(i) = hit {
            if let Some(mut e) = log.remove(i) {
                e.count += 1;
                e.ctime = now;
                e.client_info = client_info;
                log.push_front(e);
            }
            return;
        }
        log.push_front(LogEntry {
            count: 1,
            reason,
            context,
            object: crate::util::detach(&object),
            username: crate::util::detach(&username),
            ctime: now,
            client_info,
        });
        while log.len() > max_len {
            log.pop_back();
        }
    }

    /// The newest `count` log entries.
    pub fn log_entries(&self, count: usize) -> Vec<LogEntry> {
        self.log.lock().iter().take(count).cloned().collect()
    }

    pub fn log_reset(&self) {
        self.log.lock().clear();
    }
}

/// Decides whether a user's new channel rules revoke something the old
/// ones allowed (Redis's test: unless some new selector has all channels,
/// the new patterns must include every old one). Returns the new pattern
/// list to check subscriptions against, or None when nothing shrank.
pub fn channels_shrunk(new: &User, old: &User) -> Option<Vec<Vec<u8>>> {
    if new.all_channels_anywhere() {
        return None;
    }
    let upcoming = new.channel_list();
    if old.all_channels_anywhere() {
        return Some(upcoming);
    }
    if old
        .channel_list()
        .iter()
        .all(|c| upcoming.iter().any(|u| u == c))
    {
        return None;
    }
    Some(upcoming)
}

/// Does a subscription survive the new channel list?
pub fn subscription_allowed(list: &[Vec<u8>], channel: &[u8], is_pattern: bool) -> bool {
    channel_in_list(list, channel, is_pattern)
}

/// Redis 7.0's protected mode decision: with `protected-mode yes` and the
/// default user requiring no password, only loopback (and unix socket)
/// clients are served.
pub fn protected_mode_denies(protected_mode: bool, default_nopass: bool, local: bool) -> bool {
    protected_mode && default_nopass && !local
}

/// The line a client refused by protected mode gets before being closed.
pub const PROTECTED_MODE_ERROR: &str = "-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Setup a an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

impl AclState {
    /// Is the default user `nopass` (and so protected mode applies)?
    pub fn default_nopass(&self) -> bool {
        self.default.get().nopass
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<Bytes> {
        a.iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect()
    }

    fn entry(name: &str) -> &'static CommandEntry {
        table().get(name).expect("command")
    }

    #[test]
    fn default_user_description() {
        let u = User::default_user();
        assert_eq!(
            String::from_utf8(u.describe()).unwrap(),
            "on nopass ~* &* +@all"
        );
        assert!(u.unrestricted());
    }

    #[test]
    fn category_descriptions() {
        let mut u = User::new(false);
        for op in ["on", "+@all", "-@dangerous"] {
            u.apply(op.as_bytes(), false).unwrap();
        }
        assert_eq!(u.selectors[0].describe_commands(), "+@all -@dangerous");
        let mut u = User::new(false);
        u.apply(b"+@read", false).unwrap();
        u.apply(b"-get", false).unwrap();
        assert_eq!(u.selectors[0].describe_commands(), "-@all +@read -get");
    }

    #[test]
    fn key_flags_follow_redis() {
        let mut u = User::new(false);
        for op in ["+@all", "%R~read*", "%W~write*", "%RW~rw*"] {
            u.apply(op.as_bytes(), false).unwrap();
        }
        let ok = |a: &[&str]| {
            let v = argv(a);
            let e = match table().lookup(&v) {
                crate::commands::table::Lookup::Found(e) => e,
                _ => panic!("lookup"),
            };
            u.check(e, &v)
        };
        assert_eq!(ok(&["sort", "read", "store", "write"]), Ok(()));
        assert_eq!(ok(&["sort", "read", "store", "read"]), Err(Denied::Key(3)));
        assert_eq!(ok(&["set", "write", "x"]), Ok(()));
        assert_eq!(ok(&["set", "write", "x", "get"]), Err(Denied::Key(1)));
        assert_eq!(ok(&["hexists", "read", "f"]), Ok(()));
        assert_eq!(ok(&["hexists", "nothing", "f"]), Err(Denied::Key(1)));
        assert_eq!(ok(&["eval", "", "1", "read"]), Err(Denied::Key(3)));
        assert_eq!(ok(&["eval", "", "3", "rw", "read"]), Ok(()));
        assert_eq!(
            ok(&["georadius", "write1", "0", "0", "1", "m", "store", "write2"]),
            Err(Denied::Key(1))
        );
        let _ = entry("get");
    }

    #[test]
    fn protected_mode_decision() {
        assert!(protected_mode_denies(true, true, false));
        assert!(!protected_mode_denies(true, true, true));
        assert!(!protected_mode_denies(true, false, false));
        assert!(!protected_mode_denies(false, true, false));
    }
}
