//! The declarative command table's row type.
//!
//! Every consumer reads these rows: dispatch (arity, auth, OOM, locking,
//! propagation), COMMAND / COMMAND INFO / DOCS / GETKEYS, and later ACL
//! categories, MULTI queueing and cluster slot checks.

use bitflags::bitflags;
use bytes::Bytes;

use crate::commands::ctx::Ctx;
use crate::protocol::CmdResult;

bitflags! {
    /// Redis command flags (names as COMMAND reports them).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct CmdFlags: u32 {
        const WRITE = 1 << 0;             // may modify the keyspace
        const READONLY = 1 << 1;          // only reads keys
        const DENYOOM = 1 << 2;           // may grow memory: refused with OOM at the limit
        const ADMIN = 1 << 3;             // administrative (@admin @dangerous)
        const PUBSUB = 1 << 4;            // pub/sub related
        const NOSCRIPT = 1 << 5;          // not allowed from scripts
        const BLOCKING = 1 << 6;          // may block the client
        const LOADING = 1 << 7;           // allowed while loading the dataset
        const STALE = 1 << 8;             // allowed on a replica with stale data
        const SKIP_MONITOR = 1 << 9;      // not shown in MONITOR
        const SKIP_SLOWLOG = 1 << 10;     // not logged in SLOWLOG
        const FAST = 1 << 11;             // O(1) or O(log n) (@fast)
        const NO_AUTH = 1 << 12;          // allowed before authentication
        const MAY_REPLICATE = 1 << 13;    // may produce replication traffic
        const NO_MULTI = 1 << 14;         // not allowed inside MULTI
        const ALLOW_BUSY = 1 << 15;       // allowed while a script is busy
        const NO_MANDATORY_KEYS = 1 << 16;// key arguments are optional
        const MOVABLEKEYS = 1 << 17;      // key positions depend on arguments
        const NO_ASYNC_LOADING = 1 << 18; // refused while loading a replica's dataset asynchronously
        const ASKING = 1 << 19;           // acts as if ASKING was sent (RESTORE-ASKING)
    }
}

impl CmdFlags {
    /// Flag names in COMMAND INFO order.
    pub fn names(self) -> Vec<&'static str> {
        const NAMES: &[(CmdFlags, &str)] = &[
            (CmdFlags::WRITE, "write"),
            (CmdFlags::READONLY, "readonly"),
            (CmdFlags::DENYOOM, "denyoom"),
            (CmdFlags::ADMIN, "admin"),
            (CmdFlags::PUBSUB, "pubsub"),
            (CmdFlags::NOSCRIPT, "noscript"),
            (CmdFlags::BLOCKING, "blocking"),
            (CmdFlags::LOADING, "loading"),
            (CmdFlags::STALE, "stale"),
            (CmdFlags::SKIP_MONITOR, "skip_monitor"),
            (CmdFlags::SKIP_SLOWLOG, "skip_slowlog"),
            (CmdFlags::ASKING, "asking"),
            (CmdFlags::FAST, "fast"),
            (CmdFlags::NO_AUTH, "no_auth"),
            // may_replicate is tracked but hidden from COMMAND, as in Redis.
            (CmdFlags::NO_MANDATORY_KEYS, "no_mandatory_keys"),
            (CmdFlags::NO_ASYNC_LOADING, "no_async_loading"),
            (CmdFlags::NO_MULTI, "no_multi"),
            (CmdFlags::MOVABLEKEYS, "movablekeys"),
            (CmdFlags::ALLOW_BUSY, "allow_busy"),
        ];
        NAMES
            .iter()
            .filter(|(f, _)| self.contains(*f))
            .map(|(_, n)| *n)
            .collect()
    }
}

bitflags! {
    /// ACL categories. The implicit ones (@read @write @admin @dangerous
    /// @fast @slow @blocking @pubsub) are derived from flags by
    /// [`CommandSpec::acl_categories`].
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Acl: u32 {
        const KEYSPACE = 1 << 0;
        const READ = 1 << 1;
        const WRITE = 1 << 2;
        const SET = 1 << 3;
        const SORTEDSET = 1 << 4;
        const LIST = 1 << 5;
        const HASH = 1 << 6;
        const STRING = 1 << 7;
        const BITMAP = 1 << 8;
        const HYPERLOGLOG = 1 << 9;
        const GEO = 1 << 10;
        const STREAM = 1 << 11;
        const PUBSUB = 1 << 12;
        const ADMIN = 1 << 13;
        const FAST = 1 << 14;
        const SLOW = 1 << 15;
        const BLOCKING = 1 << 16;
        const DANGEROUS = 1 << 17;
        const CONNECTION = 1 << 18;
        const TRANSACTION = 1 << 19;
        const SCRIPTING = 1 << 20;
    }
}

impl Acl {
    pub const ALL_NAMES: &'static [(Acl, &'static str)] = &[
        (Acl::KEYSPACE, "keyspace"),
        (Acl::READ, "read"),
        (Acl::WRITE, "write"),
        (Acl::SET, "set"),
        (Acl::SORTEDSET, "sortedset"),
        (Acl::LIST, "list"),
        (Acl::HASH, "hash"),
        (Acl::STRING, "string"),
        (Acl::BITMAP, "bitmap"),
        (Acl::HYPERLOGLOG, "hyperloglog"),
        (Acl::GEO, "geo"),
        (Acl::STREAM, "stream"),
        (Acl::PUBSUB, "pubsub"),
        (Acl::ADMIN, "admin"),
        (Acl::FAST, "fast"),
        (Acl::SLOW, "slow"),
        (Acl::BLOCKING, "blocking"),
        (Acl::DANGEROUS, "dangerous"),
        (Acl::CONNECTION, "connection"),
        (Acl::TRANSACTION, "transaction"),
        (Acl::SCRIPTING, "scripting"),
    ];

    pub fn names(self) -> Vec<&'static str> {
        Self::ALL_NAMES
            .iter()
            .filter(|(c, _)| self.contains(*c))
            .map(|(_, n)| *n)
            .collect()
    }
}

/// Where a command's keys are (Redis's legacy first/last/step triple, or a
/// function for commands whose key positions depend on their arguments).
#[derive(Clone, Copy)]
pub enum KeySpec {
    None,
    /// `last` negative counts from the end (-1 = last argument).
    Range {
        first: i32,
        last: i32,
        step: i32,
    },
    /// Movable keys: `find` returns argument indexes of keys (COMMAND
    /// GETKEYS too); `range` is the legacy (first, last, step) COMMAND
    /// shows, Redis's range of the first key when it has a fixed position
    /// (0, 0, 0 otherwise).
    Find {
        find: fn(&[Bytes]) -> Vec<usize>,
        range: (i32, i32, i32),
    },
}

/// Which shards dispatch locks before running the handler.
#[derive(Clone, Copy)]
pub enum LockScope {
    /// The shards of the command's keys in the client's database.
    Keys,
    /// Every shard of the client's database (KEYS, SCAN, DBSIZE, FLUSHDB…).
    Db,
    /// Every shard of every database (FLUSHALL, SWAPDB…).
    All,
    /// Computed from the arguments (MOVE and COPY … DB n touch two databases):
    /// `(server, client db, argv)` → (db, shard) pairs.
    Custom(LockFn),
    /// Nothing up front; shards are locked as the command reaches them and
    /// held until it ends (scripts, which may touch undeclared keys; see
    /// `ctx::Locks`).
    OnDemand,
}

/// Computes a custom lock set: `(server, client db, argv)` → (db, shard) pairs.
pub type LockFn = fn(&crate::server::Server, usize, &[Bytes]) -> Vec<(u32, u32)>;

pub type Handler = fn(&mut Ctx<'_>, &[Bytes]) -> CmdResult;

/// One row of the command table.
#[derive(Clone, Copy)]
pub struct CommandSpec {
    pub name: &'static str,
    /// Redis arity: N exact, -N at least N (counting the command name).
    pub arity: i32,
    pub flags: CmdFlags,
    pub keys: KeySpec,
    pub lock: LockScope,
    /// Explicit ACL categories (implicit ones come from flags).
    pub acl: Acl,
    pub group: &'static str,
    pub summary: &'static str,
    pub since: &'static str,
    pub complexity: &'static str,
    pub handler: Handler,
    pub subcommands: &'static [CommandSpec],
}

fn container_handler(_: &mut Ctx<'_>, _: &[Bytes]) -> CmdResult {
    Err(crate::protocol::CmdError::SYNTAX)
}

/// Starts a table row (`cmd("get", 2, READONLY | FAST, get)`), completed with
/// the builder methods below. All `const`, so tables are static data.
pub const fn cmd(name: &'static str, arity: i32, flags: CmdFlags, handler: Handler) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags,
        keys: KeySpec::None,
        lock: LockScope::Keys,
        acl: Acl::empty(),
        group: "generic",
        summary: "",
        since: "1.0.0",
        complexity: "",
        handler,
        subcommands: &[],
    }
}

/// A container command (CONFIG, CLIENT, OBJECT…) dispatching on its first
/// argument to `subs`.
pub const fn container(name: &'static str, subs: &'static [CommandSpec]) -> CommandSpec {
    let mut c = cmd(name, -2, CmdFlags::empty(), container_handler);
    c.subcommands = subs;
    c
}

impl CommandSpec {
    pub const fn keys(mut self, first: i32, last: i32, step: i32) -> Self {
        self.keys = KeySpec::Range { first, last, step };
        self
    }
    pub const fn find_keys(mut self, f: fn(&[Bytes]) -> Vec<usize>) -> Self {
        self.keys = KeySpec::Find {
            find: f,
            range: (0, 0, 0),
        };
        self.flags = self.flags.union(CmdFlags::MOVABLEKEYS);
        self
    }
    /// The legacy key range COMMAND shows for a movable-keys command whose
    /// first key has a fixed position (after `find_keys`, which finds them
    /// all).
    pub const fn movable_range(mut self, first: i32, last: i32, step: i32) -> Self {
        if let KeySpec::Find { find, .. } = self.keys {
            self.keys = KeySpec::Find {
                find,
                range: (first, last, step),
            };
        }
        self
    }
    pub const fn lock(mut self, scope: LockScope) -> Self {
        self.lock = scope;
        self
    }
    /// Sets the flags (containers, whose rows start without any).
    pub const fn flags(mut self, flags: CmdFlags) -> Self {
        self.flags = flags;
        self
    }
    pub const fn acl(mut self, acl: Acl) -> Self {
        self.acl = acl;
        self
    }
    pub const fn doc(
        mut self,
        group: &'static str,
        since: &'static str,
        summary: &'static str,
    ) -> Self {
        self.group = group;
        self.since = since;
        self.summary = summary;
        self
    }
    /// Overrides the arity (containers usable without a subcommand).
    pub const fn arity(mut self, arity: i32) -> Self {
        self.arity = arity;
        self
    }
    /// Overrides the handler (a container's own behaviour without subcommand).
    pub const fn handler(mut self, h: Handler) -> Self {
        self.handler = h;
        self
    }
    pub const fn complexity(mut self, c: &'static str) -> Self {
        self.complexity = c;
        self
    }

    pub fn is_container(&self) -> bool {
        !self.subcommands.is_empty()
    }

    /// Does `argc` satisfy the arity rule?
    pub fn arity_ok(&self, argc: usize) -> bool {
        let a = self.arity;
        if a >= 0 {
            argc == a as usize
        } else {
            argc >= a.unsigned_abs() as usize
        }
    }

    /// All ACL categories: explicit ones plus those implied by the flags.
    pub fn acl_categories(&self) -> Acl {
        let mut c = self.acl;
        if self.flags.contains(CmdFlags::WRITE) {
            c |= Acl::WRITE;
        }
        if self.flags.contains(CmdFlags::READONLY) && !c.contains(Acl::SCRIPTING) {
            c |= Acl::READ;
        }
        if self.flags.contains(CmdFlags::ADMIN) {
            c |= Acl::ADMIN | Acl::DANGEROUS;
        }
        if self.flags.contains(CmdFlags::PUBSUB) {
            c |= Acl::PUBSUB;
        }
        if self.flags.contains(CmdFlags::FAST) {
            c |= Acl::FAST;
        }
        if self.flags.contains(CmdFlags::BLOCKING) {
            c |= Acl::BLOCKING;
        }
        if !c.contains(Acl::FAST) {
            c |= Acl::SLOW;
        }
        c
    }

    /// Argument indexes of the keys in `argv` (COMMAND GETKEYS, locking).
    pub fn key_positions(&self, argv: &[Bytes]) -> Vec<usize> {
        match self.keys {
            KeySpec::None => Vec::new(),
            KeySpec::Find { find, .. } => find(argv),
            KeySpec::Range { first, last, step } => {
                if first <= 0 {
                    return Vec::new();
                }
                let argc = argv.len() as i32;
                let last = if last < 0 {
                    argc + last
                } else {
                    last.min(argc - 1)
                };
                let step = step.max(1);
                let mut out = Vec::new();
                let mut i = first;
                while i <= last && i < argc {
                    out.push(i as usize);
                    i += step;
                }
                out
            }
        }
    }

    /// The key arguments of `argv` themselves (see [`Self::key_positions`]).
    pub fn key_args<'a>(&self, argv: &'a [Bytes]) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.key_positions(argv)
            .into_iter()
            .filter_map(move |i| argv.get(i).map(|k| &k[..]))
    }

    /// (first, last, step) as COMMAND INFO reports them.
    pub fn legacy_range(&self) -> (i64, i64, i64) {
        match self.keys {
            KeySpec::Range { first, last, step } => (first as i64, last as i64, step as i64),
            KeySpec::Find {
                range: (f, l, s), ..
            } => (f as i64, l as i64, s as i64),
            KeySpec::None => (0, 0, 0),
        }
    }
}
