//! Configuration: one declarative registry of parameters under Redis's names.
//!
//! Every parameter has a name, aliases (Redis 7's old names such as
//! `hash-max-ziplist-entries` or `slaveof`), a kind (bool, integer, memory
//! size, enum, string, or a special format), a default (Redis 7.0's), and
//! whether CONFIG SET may change it at run time. The same table serves
//! startup (TOML file, redis.conf file, command line), CONFIG GET (glob
//! patterns over names and aliases), CONFIG SET (validated all-or-nothing)
//! and CONFIG REWRITE.
//!
//! Reads are lock-free for every numeric, boolean and enum parameter: each
//! has an atomic mirror, so hot paths (proto-max-bulk-len on every read,
//! maxmemory on every write) pay one relaxed load. Strings sit behind an
//! RwLock.
//!
//! Parameters accepted for compatibility whose behaviour Cinnabar does not
//! implement yet (they are stored and reported, nothing more) are marked
//! `compat` in the table; README.md lists them.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};

use clap::Parser;
use parking_lot::RwLock;

use crate::util::glob::glob_match;

/// The embedded default configuration (used when no file is given).
pub const DEFAULT_TOML: &str = include_str!("../config/development.toml");

/// The `-v` line, in redis-server's format (tools parse `v=`).
pub fn version_line() -> String {
    format!(
        "Redis server v={} sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=0 cinnabar={}",
        crate::REDIS_VERSION,
        env!("CARGO_PKG_VERSION")
    )
}

/// A startup configuration error: names the setting and the reason.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// How a parameter's value is parsed, validated and printed.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Bool,
    Int {
        min: i64,
        max: i64,
    },
    /// Byte sizes with Redis units (`1k`=1000, `1kb`=1024, `mb`, `gb`).
    Mem {
        max: i64,
    },
    Enum(&'static [&'static str]),
    Str,
    /// `save`: pairs of "seconds changes", or "" to disable.
    Save,
    /// `client-output-buffer-limit`: class hard soft seconds [...].
    Obuf,
    /// `notify-keyspace-events` flag letters.
    Notify,
}

/// One registry row.
pub struct Param {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    pub kind: Kind,
    pub default: &'static str,
    pub mutable: bool,
    /// Accepted and reported, but not acted upon yet.
    pub compat: bool,
}

const I64MAX: i64 = i64::MAX;
const POLICIES: &[&str] = &[
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "noeviction",
];

macro_rules! params {
    ($( $id:ident : $name:literal $([$($alias:literal),*])? , $kind:expr, $default:literal, $flags:ident );* $(;)?) => {
        /// Parameter identifiers (index into [`PARAMS`]).
        #[allow(non_camel_case_types)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum P { $($id),* }
        /// The registry.
        pub static PARAMS: &[Param] = &[
            $( Param {
                name: $name,
                aliases: &[$($($alias),*)?],
                kind: $kind,
                default: $default,
                mutable: params!(@m $flags),
                compat: params!(@c $flags),
            } ),*
        ];
    };
    (@m rw) => { true }; (@m ro) => { false }; (@m rwc) => { true }; (@m roc) => { false };
    (@c rw) => { false }; (@c ro) => { false }; (@c rwc) => { true }; (@c roc) => { true };
}

// flags: rw = runtime-settable, ro = startup only; the `c` variants are
// accepted for compatibility without effect yet.
params! {
    // networking
    bind: "bind", Kind::Str, "* -::*", rw;
    port: "port", Kind::Int { min: 0, max: 65535 }, "6379", rw;
    tls_port: "tls-port", Kind::Int { min: 0, max: 65535 }, "0", roc;
    tls_cert_file: "tls-cert-file", Kind::Str, "", rwc;
    tls_key_file: "tls-key-file", Kind::Str, "", rwc;
    tls_key_file_pass: "tls-key-file-pass", Kind::Str, "", rwc;
    tls_ca_cert_file: "tls-ca-cert-file", Kind::Str, "", rwc;
    tls_ca_cert_dir: "tls-ca-cert-dir", Kind::Str, "", rwc;
    tls_auth_clients: "tls-auth-clients", Kind::Enum(&["no", "yes", "optional"]), "yes", rwc;
    tls_protocols: "tls-protocols", Kind::Str, "", rwc;
    tls_ciphersuites: "tls-ciphersuites", Kind::Str, "", rwc;
    tls_ciphers: "tls-ciphers", Kind::Str, "", rwc;
    tls_prefer_server_ciphers: "tls-prefer-server-ciphers", Kind::Bool, "no", rwc;
    tls_replication: "tls-replication", Kind::Bool, "no", rwc;
    tls_cluster: "tls-cluster", Kind::Bool, "no", rwc;
    tls_session_caching: "tls-session-caching", Kind::Bool, "yes", rwc;
    tls_session_cache_size: "tls-session-cache-size", Kind::Int { min: 0, max: I64MAX }, "20480", rwc;
    tls_session_cache_timeout: "tls-session-cache-timeout", Kind::Int { min: 0, max: I64MAX }, "300", rwc;
    protected_mode: "protected-mode", Kind::Bool, "yes", rwc;
    tcp_backlog: "tcp-backlog", Kind::Int { min: 0, max: I64MAX }, "511", roc;
    timeout: "timeout", Kind::Int { min: 0, max: I64MAX }, "0", rwc;
    tcp_keepalive: "tcp-keepalive", Kind::Int { min: 0, max: I64MAX }, "300", rwc;
    maxclients: "maxclients", Kind::Int { min: 1, max: I64MAX }, "10000", rw;
    unixsocket: "unixsocket", Kind::Str, "", roc;
    unixsocketperm: "unixsocketperm", Kind::Int { min: 0, max: 0o777 }, "0", roc;
    // general
    daemonize: "daemonize", Kind::Bool, "no", ro;
    supervised: "supervised", Kind::Enum(&["upstart", "systemd", "auto", "no"]), "no", roc;
    pidfile: "pidfile", Kind::Str, "", roc;
    loglevel: "loglevel", Kind::Enum(&["debug", "verbose", "notice", "warning", "nothing"]), "notice", rw;
    logfile: "logfile", Kind::Str, "", ro;
    syslog_enabled: "syslog-enabled", Kind::Bool, "no", roc;
    syslog_ident: "syslog-ident", Kind::Str, "redis", roc;
    databases: "databases", Kind::Int { min: 1, max: 1 << 16 }, "16", ro;
    always_show_logo: "always-show-logo", Kind::Bool, "no", roc;
    set_proc_title: "set-proc-title", Kind::Bool, "yes", roc;
    proc_title_template: "proc-title-template", Kind::Str, "{title} {listen-addr} {server-mode}", rwc;
    hz: "hz", Kind::Int { min: 1, max: 500 }, "10", rw;
    dynamic_hz: "dynamic-hz", Kind::Bool, "yes", rwc;
    enable_debug_command: "enable-debug-command", Kind::Enum(&["no", "yes", "local"]), "no", ro;
    enable_protected_configs: "enable-protected-configs", Kind::Enum(&["no", "yes", "local"]), "no", roc;
    enable_module_command: "enable-module-command", Kind::Enum(&["no", "yes", "local"]), "no", roc;
    crash_log_enabled: "crash-log-enabled", Kind::Bool, "yes", rwc;
    crash_memcheck_enabled: "crash-memcheck-enabled", Kind::Bool, "yes", rwc;
    io_threads: "io-threads", Kind::Int { min: 1, max: 128 }, "1", roc;
    io_threads_do_reads: "io-threads-do-reads", Kind::Bool, "no", roc;
    oom_score_adj: "oom-score-adj", Kind::Enum(&["no", "yes", "relative", "absolute"]), "no", rwc;
    oom_score_adj_values: "oom-score-adj-values", Kind::Str, "0 200 800", rwc;
    disable_thp: "disable-thp", Kind::Bool, "yes", roc;
    jemalloc_bg_thread: "jemalloc-bg-thread", Kind::Bool, "yes", rwc;
    // persistence
    save: "save", Kind::Save, "3600 1 300 100 60 10000", rwc;
    stop_writes_on_bgsave_error: "stop-writes-on-bgsave-error", Kind::Bool, "yes", rwc;
    rdbcompression: "rdbcompression", Kind::Bool, "yes", rwc;
    rdbchecksum: "rdbchecksum", Kind::Bool, "yes", rwc;
    dbfilename: "dbfilename", Kind::Str, "dump.rdb", rwc;
    dir: "dir", Kind::Str, "", rw;
    rdb_del_sync_files: "rdb-del-sync-files", Kind::Bool, "no", rwc;
    rdb_key_save_delay: "rdb-key-save-delay", Kind::Int { min: i64::MIN, max: I64MAX }, "0", rwc;
    sanitize_dump_payload: "sanitize-dump-payload", Kind::Enum(&["no", "yes", "clients"]), "no", rwc;
    appendonly: "appendonly", Kind::Bool, "no", rwc;
    appendfilename: "appendfilename", Kind::Str, "appendonly.aof", roc;
    appenddirname: "appenddirname", Kind::Str, "appendonlydir", roc;
    appendfsync: "appendfsync", Kind::Enum(&["always", "everysec", "no"]), "everysec", rwc;
    no_appendfsync_on_rewrite: "no-appendfsync-on-rewrite", Kind::Bool, "no", rwc;
    auto_aof_rewrite_percentage: "auto-aof-rewrite-percentage", Kind::Int { min: 0, max: i32::MAX as i64 }, "100", rwc;
    auto_aof_rewrite_min_size: "auto-aof-rewrite-min-size", Kind::Mem { max: I64MAX }, "67108864", rwc;
    aof_load_truncated: "aof-load-truncated", Kind::Bool, "yes", rwc;
    aof_use_rdb_preamble: "aof-use-rdb-preamble", Kind::Bool, "yes", rwc;
    aof_timestamp_enabled: "aof-timestamp-enabled", Kind::Bool, "no", rwc;
    aof_rewrite_incremental_fsync: "aof-rewrite-incremental-fsync", Kind::Bool, "yes", rwc;
    rdb_save_incremental_fsync: "rdb-save-incremental-fsync", Kind::Bool, "yes", rwc;
    // replication
    replicaof: "replicaof" ["slaveof"], Kind::Str, "", roc;
    masterauth: "masterauth", Kind::Str, "", rwc;
    masteruser: "masteruser", Kind::Str, "", rwc;
    replica_serve_stale_data: "replica-serve-stale-data" ["slave-serve-stale-data"], Kind::Bool, "yes", rwc;
    replica_read_only: "replica-read-only" ["slave-read-only"], Kind::Bool, "yes", rwc;
    repl_diskless_sync: "repl-diskless-sync", Kind::Bool, "yes", rwc;
    repl_diskless_sync_delay: "repl-diskless-sync-delay", Kind::Int { min: 0, max: I64MAX }, "5", rwc;
    repl_diskless_sync_max_replicas: "repl-diskless-sync-max-replicas", Kind::Int { min: 0, max: I64MAX }, "0", rwc;
    repl_diskless_load: "repl-diskless-load", Kind::Enum(&["disabled", "on-empty-db", "swapdb"]), "disabled", rwc;
    repl_ping_replica_period: "repl-ping-replica-period" ["repl-ping-slave-period"], Kind::Int { min: 1, max: I64MAX }, "10", rwc;
    repl_timeout: "repl-timeout", Kind::Int { min: 1, max: I64MAX }, "60", rwc;
    repl_disable_tcp_nodelay: "repl-disable-tcp-nodelay", Kind::Bool, "no", rwc;
    repl_backlog_size: "repl-backlog-size", Kind::Mem { max: I64MAX }, "1048576", rwc;
    repl_backlog_ttl: "repl-backlog-ttl", Kind::Int { min: 0, max: I64MAX }, "3600", rwc;
    replica_priority: "replica-priority" ["slave-priority"], Kind::Int { min: 0, max: I64MAX }, "100", rwc;
    replica_announced: "replica-announced", Kind::Bool, "yes", rwc;
    min_replicas_to_write: "min-replicas-to-write" ["min-slaves-to-write"], Kind::Int { min: 0, max: I64MAX }, "0", rwc;
    min_replicas_max_lag: "min-replicas-max-lag" ["min-slaves-max-lag"], Kind::Int { min: 0, max: I64MAX }, "10", rwc;
    replica_announce_ip: "replica-announce-ip" ["slave-announce-ip"], Kind::Str, "", rwc;
    replica_announce_port: "replica-announce-port" ["slave-announce-port"], Kind::Int { min: 0, max: 65535 }, "0", rwc;
    replica_lazy_flush: "replica-lazy-flush" ["slave-lazy-flush"], Kind::Bool, "no", rwc;
    replica_ignore_maxmemory: "replica-ignore-maxmemory" ["slave-ignore-maxmemory"], Kind::Bool, "yes", rwc;
    // security
    requirepass: "requirepass", Kind::Str, "", rw;
    aclfile: "aclfile", Kind::Str, "", roc;
    acllog_max_len: "acllog-max-len", Kind::Int { min: 0, max: I64MAX }, "128", rwc;
    acl_pubsub_default: "acl-pubsub-default", Kind::Enum(&["resetchannels", "allchannels"]), "resetchannels", rwc;
    // memory
    maxmemory: "maxmemory", Kind::Mem { max: I64MAX }, "0", rw;
    maxmemory_policy: "maxmemory-policy", Kind::Enum(POLICIES), "noeviction", rw;
    maxmemory_samples: "maxmemory-samples", Kind::Int { min: 1, max: i32::MAX as i64 }, "5", rwc;
    maxmemory_eviction_tenacity: "maxmemory-eviction-tenacity", Kind::Int { min: 0, max: 100 }, "10", rwc;
    maxmemory_clients: "maxmemory-clients", Kind::Mem { max: I64MAX }, "0", rwc;
    lfu_log_factor: "lfu-log-factor", Kind::Int { min: 0, max: i32::MAX as i64 }, "10", rwc;
    lfu_decay_time: "lfu-decay-time", Kind::Int { min: 0, max: i32::MAX as i64 }, "1", rwc;
    active_expire_effort: "active-expire-effort", Kind::Int { min: 1, max: 10 }, "1", rwc;
    lazyfree_lazy_eviction: "lazyfree-lazy-eviction", Kind::Bool, "no", rwc;
    lazyfree_lazy_expire: "lazyfree-lazy-expire", Kind::Bool, "no", rwc;
    lazyfree_lazy_server_del: "lazyfree-lazy-server-del", Kind::Bool, "no", rwc;
    lazyfree_lazy_user_del: "lazyfree-lazy-user-del", Kind::Bool, "no", rwc;
    lazyfree_lazy_user_flush: "lazyfree-lazy-user-flush", Kind::Bool, "no", rwc;
    activedefrag: "activedefrag", Kind::Bool, "no", rwc;
    active_defrag_ignore_bytes: "active-defrag-ignore-bytes", Kind::Mem { max: I64MAX }, "104857600", rwc;
    active_defrag_threshold_lower: "active-defrag-threshold-lower", Kind::Int { min: 0, max: 1000 }, "10", rwc;
    active_defrag_threshold_upper: "active-defrag-threshold-upper", Kind::Int { min: 0, max: 1000 }, "100", rwc;
    active_defrag_cycle_min: "active-defrag-cycle-min", Kind::Int { min: 1, max: 99 }, "1", rwc;
    active_defrag_cycle_max: "active-defrag-cycle-max", Kind::Int { min: 1, max: 99 }, "25", rwc;
    active_defrag_max_scan_fields: "active-defrag-max-scan-fields", Kind::Int { min: 1, max: I64MAX }, "1000", rwc;
    activerehashing: "activerehashing", Kind::Bool, "yes", rwc;
    // scripting, slowlog, latency, notifications
    busy_reply_threshold: "busy-reply-threshold" ["lua-time-limit"], Kind::Int { min: 0, max: I64MAX }, "5000", rwc;
    slowlog_log_slower_than: "slowlog-log-slower-than", Kind::Int { min: -1, max: I64MAX }, "10000", rwc;
    slowlog_max_len: "slowlog-max-len", Kind::Int { min: 0, max: I64MAX }, "128", rwc;
    latency_monitor_threshold: "latency-monitor-threshold", Kind::Int { min: 0, max: I64MAX }, "0", rwc;
    latency_tracking: "latency-tracking", Kind::Bool, "yes", rwc;
    latency_tracking_info_percentiles: "latency-tracking-info-percentiles", Kind::Str, "50 99 99.9", rwc;
    notify_keyspace_events: "notify-keyspace-events", Kind::Notify, "", rwc;
    // encodings
    hash_max_listpack_entries: "hash-max-listpack-entries" ["hash-max-ziplist-entries"], Kind::Int { min: 0, max: I64MAX }, "128", rw;
    hash_max_listpack_value: "hash-max-listpack-value" ["hash-max-ziplist-value"], Kind::Int { min: 0, max: I64MAX }, "64", rw;
    list_max_listpack_size: "list-max-listpack-size" ["list-max-ziplist-size"], Kind::Int { min: i32::MIN as i64, max: i32::MAX as i64 }, "-2", rw;
    list_compress_depth: "list-compress-depth", Kind::Int { min: 0, max: i32::MAX as i64 }, "0", rwc;
    set_max_intset_entries: "set-max-intset-entries", Kind::Int { min: 0, max: I64MAX }, "512", rw;
    zset_max_listpack_entries: "zset-max-listpack-entries" ["zset-max-ziplist-entries"], Kind::Int { min: 0, max: I64MAX }, "128", rw;
    zset_max_listpack_value: "zset-max-listpack-value" ["zset-max-ziplist-value"], Kind::Int { min: 0, max: I64MAX }, "64", rw;
    hll_sparse_max_bytes: "hll-sparse-max-bytes", Kind::Mem { max: I64MAX }, "3000", rwc;
    stream_node_max_bytes: "stream-node-max-bytes", Kind::Mem { max: I64MAX }, "4096", rwc;
    stream_node_max_entries: "stream-node-max-entries", Kind::Int { min: 0, max: I64MAX }, "100", rwc;
    // limits
    client_output_buffer_limit: "client-output-buffer-limit", Kind::Obuf, "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60", rwc;
    client_query_buffer_limit: "client-query-buffer-limit", Kind::Mem { max: I64MAX }, "1073741824", rw;
    proto_max_bulk_len: "proto-max-bulk-len", Kind::Mem { max: I64MAX }, "536870912", rw;
    tracking_table_max_keys: "tracking-table-max-keys", Kind::Int { min: 0, max: I64MAX }, "1000000", rwc;
    cluster_enabled: "cluster-enabled", Kind::Enum(&["no"]), "no", ro;
    shutdown_timeout: "shutdown-timeout", Kind::Int { min: 0, max: I64MAX }, "10", rwc;
    shutdown_on_sigint: "shutdown-on-sigint", Kind::Str, "default", rwc;
    shutdown_on_sigterm: "shutdown-on-sigterm", Kind::Str, "default", rwc;
    // Cinnabar-only
    shards: "shards", Kind::Int { min: 1, max: 1024 }, "16", ro;
    ephemeral_port: "ephemeral-port", Kind::Bool, "no", ro;
    log_format: "log-format", Kind::Enum(&["text", "json"]), "text", ro;
    disabled_commands: "disabled-commands", Kind::Str, "", roc;
    primary_access_key: "primary-access-key", Kind::Str, "", rwc;
    secondary_access_key: "secondary-access-key", Kind::Str, "", rwc;
    metrics_port: "metrics-port", Kind::Int { min: 0, max: 65535 }, "0", roc;
    profile: "profile", Kind::Str, "development", ro;
}

/// maxmemory-policy values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxmemoryPolicy {
    VolatileLru,
    VolatileLfu,
    VolatileRandom,
    VolatileTtl,
    AllkeysLru,
    AllkeysLfu,
    AllkeysRandom,
    NoEviction,
}

impl MaxmemoryPolicy {
    const ALL: [MaxmemoryPolicy; 8] = [
        Self::VolatileLru,
        Self::VolatileLfu,
        Self::VolatileRandom,
        Self::VolatileTtl,
        Self::AllkeysLru,
        Self::AllkeysLfu,
        Self::AllkeysRandom,
        Self::NoEviction,
    ];
    pub fn is_lfu(self) -> bool {
        matches!(self, Self::VolatileLfu | Self::AllkeysLfu)
    }
    pub fn name(self) -> &'static str {
        POLICIES[self as usize]
    }
}

/// A client-output-buffer-limit class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ObufLimit {
    pub hard: u64,
    pub soft: u64,
    pub soft_seconds: u64,
}

/// Where the configuration was read from (for CONFIG REWRITE).
#[derive(Debug, Clone)]
enum Source {
    Embedded,
    Toml(PathBuf),
    RedisConf(PathBuf),
}

/// The live configuration, shared as `Arc<Config>`.
pub struct Config {
    strings: RwLock<Vec<String>>,
    nums: Vec<AtomicI64>,
    source: Source,
}

/// Command-line surface (help and version through clap; everything else is
/// redis-server style `[config-file] [--param value ...]`).
#[derive(Parser, Debug, Default)]
#[command(
    name = "cinnabar",
    about = "Cinnabar: a Redis-compatible in-memory data server",
    disable_version_flag = true,
    after_help = "Any Redis configuration parameter can be given as --<name> <value...>, e.g.\n  cinnabar --port 7777 --save \"\" --maxmemory 1gb\n  cinnabar /etc/cinnabar/production.toml --requirepass s3cret"
)]
pub struct Cli {
    /// Print the version line and exit.
    #[arg(short = 'v', long = "version")]
    pub version: bool,
    /// [CONFIG_FILE] followed by --<parameter> <value...> overrides.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    pub rest: Vec<String>,
}

fn find(name: &str) -> Option<usize> {
    let n = name.to_ascii_lowercase();
    PARAMS
        .iter()
        .position(|p| p.name == n || p.aliases.contains(&n.as_str()))
}

/// Parses a memory value as Redis's memtoull.
pub fn parse_mem(s: &str) -> Option<i64> {
    let l = s.trim().to_ascii_lowercase();
    let units: &[(&str, i64)] = &[
        ("gb", 1 << 30),
        ("mb", 1 << 20),
        ("kb", 1 << 10),
        ("g", 1_000_000_000),
        ("m", 1_000_000),
        ("k", 1000),
        ("b", 1),
    ];
    let (num, mul) = units
        .iter()
        .find_map(|(u, m)| l.strip_suffix(u).map(|n| (n, *m)))
        .unwrap_or((l.as_str(), 1));
    if num.is_empty() || !num.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    num.parse::<i64>().ok()?.checked_mul(mul)
}

const NOTIFY_FLAGS: &str = "KEg$lshzxetmdnA";

/// Validates and normalizes a value: (canonical string, numeric mirror).
fn normalize(p: &Param, raw: &str, current: &str) -> Result<(String, i64), String> {
    match p.kind {
        Kind::Bool => match raw.to_ascii_lowercase().as_str() {
            "yes" => Ok(("yes".into(), 1)),
            "no" => Ok(("no".into(), 0)),
            _ => Err("argument must be 'yes' or 'no'".into()),
        },
        Kind::Int { min, max } => {
            let v: i64 = raw
                .trim()
                .parse()
                .map_err(|_| "argument couldn't be parsed into an integer".to_string())?;
            if v < min || v > max {
                return Err(format!(
                    "argument must be between {min} and {max} inclusive"
                ));
            }
            Ok((v.to_string(), v))
        }
        Kind::Mem { max } => {
            let v = parse_mem(raw).ok_or_else(|| "argument must be a memory value".to_string())?;
            if v > max {
                return Err(format!("argument must be between 0 and {max} inclusive"));
            }
            Ok((v.to_string(), v))
        }
        Kind::Enum(vals) => {
            let l = raw.to_ascii_lowercase();
            match vals.iter().position(|v| *v == l) {
                Some(i) => Ok((l, i as i64)),
                None => Err(format!(
                    "argument(s) must be one of the following: {}",
                    vals.join(", ")
                )),
            }
        }
        Kind::Str => Ok((raw.to_string(), 0)),
        Kind::Save => {
            let parts: Vec<&str> = raw.split_whitespace().collect();
            if !parts.len().is_multiple_of(2) || parts.iter().any(|x| x.parse::<u64>().is_err()) {
                return Err("Invalid save parameters".into());
            }
            Ok((parts.join(" "), 0))
        }
        Kind::Notify => {
            let mut flags = 0u32;
            for c in raw.chars() {
                match NOTIFY_FLAGS.find(c) {
                    Some(i) => flags |= 1 << i,
                    None => {
                        return Err("Invalid event class character. Use 'Ag$lshzxeKEtmdn'.".into())
                    }
                }
            }
            Ok((notify_string(flags), flags as i64))
        }
        Kind::Obuf => {
            let parts: Vec<&str> = raw.split_whitespace().collect();
            if parts.is_empty() || !parts.len().is_multiple_of(4) {
                return Err("Wrong number of arguments in buffer limit configuration.".into());
            }
            let mut classes = parse_obuf(current).unwrap_or_default();
            for c in parts.chunks(4) {
                let class = match c[0].to_ascii_lowercase().as_str() {
                    "normal" => 0,
                    "slave" | "replica" => 1,
                    "pubsub" => 2,
                    _ => {
                        return Err(
                            "Invalid client class specified in buffer limit configuration.".into(),
                        )
                    }
                };
                let hard = parse_mem(c[1]);
                let soft = parse_mem(c[2]);
                let secs = c[3].parse::<u64>().ok();
                match (hard, soft, secs) {
                    (Some(h), Some(s), Some(t)) => {
                        classes[class] = ObufLimit {
                            hard: h as u64,
                            soft: s as u64,
                            soft_seconds: t,
                        }
                    }
                    _ => return Err("Error in hard, soft or soft_seconds setting in buffer limit configuration.".into()),
                }
            }
            Ok((obuf_string(&classes), 0))
        }
    }
}

fn notify_string(flags: u32) -> String {
    // Redis prints "A" for the g$lshzxetd set and then K/E, as keyspaceEventsFlagsToString.
    let all = "g$lshzxetd";
    let bit = |c: char| {
        NOTIFY_FLAGS
            .find(c)
            .map(|i| flags & (1 << i) != 0)
            .unwrap_or(false)
    };
    let mut s = String::new();
    if bit('A') || all.chars().all(bit) {
        s.push('A');
    } else {
        for c in all.chars() {
            if bit(c) {
                s.push(c);
            }
        }
    }
    for c in ['K', 'E', 'm', 'n'] {
        if bit(c) {
            s.push(c);
        }
    }
    s
}

fn parse_obuf(s: &str) -> Option<[ObufLimit; 3]> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let mut out = [ObufLimit {
        hard: 0,
        soft: 0,
        soft_seconds: 0,
    }; 3];
    for c in parts.chunks(4) {
        if c.len() != 4 {
            return None;
        }
        let i = match c[0] {
            "normal" => 0,
            "slave" | "replica" => 1,
            "pubsub" => 2,
            _ => return None,
        };
        out[i] = ObufLimit {
            hard: parse_mem(c[1])? as u64,
            soft: parse_mem(c[2])? as u64,
            soft_seconds: c[3].parse().ok()?,
        };
    }
    Some(out)
}

fn obuf_string(c: &[ObufLimit; 3]) -> String {
    let names = ["normal", "slave", "pubsub"];
    names
        .iter()
        .zip(c.iter())
        .map(|(n, l)| format!("{n} {} {} {}", l.hard, l.soft, l.soft_seconds))
        .collect::<Vec<_>>()
        .join(" ")
}

fn set_failed(name: &str, why: &str) -> String {
    format!("ERR CONFIG SET failed (possibly related to argument '{name}') - {why}")
}

/// The pieces of a startup source: (parameter, value) pairs in order.
type Pairs = Vec<(String, String, String)>; // (name, value, origin)

fn toml_pairs(text: &str, origin: &str) -> Result<Pairs, ConfigError> {
    let table: toml::Table = text
        .parse()
        .map_err(|e| ConfigError(format!("cannot parse {origin}: {e}")))?;
    let mut out = Vec::new();
    for (k, v) in table {
        let s = match v {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => if b { "yes" } else { "no" }.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Array(a) => a
                .iter()
                .map(|x| match x {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(" "),
            other => {
                return Err(ConfigError(format!(
                    "invalid value for '{k}' in {origin}: unsupported TOML type {}",
                    other.type_str()
                )))
            }
        };
        out.push((k, s, origin.to_string()));
    }
    Ok(out)
}

fn redis_conf_pairs(text: &str, origin: &str) -> Result<Pairs, ConfigError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let args = crate::protocol::codec::split_args(t.as_bytes())
            .ok_or_else(|| ConfigError(format!("{origin}:{}: unbalanced quotes", n + 1)))?;
        let args: Vec<String> = args
            .into_iter()
            .map(|a| String::from_utf8_lossy(&a).into_owned())
            .collect();
        let Some((name, vals)) = args.split_first() else {
            continue;
        };
        if name.eq_ignore_ascii_case("include") {
            return Err(ConfigError(format!(
                "{origin}:{}: 'include' is not supported; merge the files",
                n + 1
            )));
        }
        out.push((
            name.to_ascii_lowercase(),
            vals.join(" "),
            format!("{origin}:{}", n + 1),
        ));
    }
    Ok(out)
}

fn cli_pairs(rest: &[String]) -> Result<(Option<String>, Pairs), ConfigError> {
    let mut file = None;
    let mut i = 0;
    if let Some(first) = rest.first() {
        if !first.starts_with("--") {
            file = Some(first.clone());
            i = 1;
        }
    }
    let mut out = Vec::new();
    while i < rest.len() {
        let a = &rest[i];
        let Some(name) = a.strip_prefix("--") else {
            return Err(ConfigError(format!(
                "unexpected argument '{a}' (command line): parameters are given as --<name> <value>"
            )));
        };
        i += 1;
        let mut vals = Vec::new();
        while i < rest.len() && !rest[i].starts_with("--") {
            vals.push(rest[i].clone());
            i += 1;
        }
        out.push((
            name.to_ascii_lowercase(),
            vals.join(" "),
            "command line".to_string(),
        ));
    }
    Ok((file, out))
}

/// Loads the configuration from the command line (arguments without the
/// program name): defaults < embedded or given file < command-line overrides.
pub fn load(args: impl IntoIterator<Item = String>) -> Result<(Cli, Config), ConfigError> {
    let argv: Vec<String> = std::iter::once("cinnabar".to_string())
        .chain(args)
        .collect();
    let mut cli = Cli::try_parse_from(&argv).map_err(|e| ConfigError(e.to_string()))?;
    if cli.rest.iter().any(|a| a == "--version" || a == "-v") {
        cli.version = true;
    }
    if cli.version {
        return Ok((cli, Config::defaults(Source::Embedded)));
    }
    let (file, overrides) = cli_pairs(&cli.rest)?;
    let (source, mut pairs) = match &file {
        None => (
            Source::Embedded,
            toml_pairs(DEFAULT_TOML, "embedded config/development.toml")?,
        ),
        Some(f) => {
            let text = std::fs::read_to_string(f)
                .map_err(|e| ConfigError(format!("cannot read config file {f}: {e}")))?;
            let path = std::fs::canonicalize(f).unwrap_or_else(|_| PathBuf::from(f));
            if f.ends_with(".toml") {
                (Source::Toml(path), toml_pairs(&text, f)?)
            } else {
                (Source::RedisConf(path), redis_conf_pairs(&text, f)?)
            }
        }
    };
    pairs.extend(overrides);
    let cfg = Config::defaults(source);
    cfg.apply_startup(&pairs)?;
    Ok((cli, cfg))
}

/// A configuration from TOML text (tests and tools).
pub fn from_toml_str(s: &str) -> Result<Config, ConfigError> {
    let cfg = Config::defaults(Source::Embedded);
    cfg.apply_startup(&toml_pairs(s, "TOML text")?)?;
    Ok(cfg)
}

impl Config {
    fn defaults(source: Source) -> Config {
        let mut strings = Vec::with_capacity(PARAMS.len());
        let mut nums = Vec::with_capacity(PARAMS.len());
        for p in PARAMS {
            let (s, n) =
                normalize(p, p.default, p.default).unwrap_or_else(|_| (p.default.to_string(), 0));
            strings.push(s);
            nums.push(AtomicI64::new(n));
        }
        Config {
            strings: RwLock::new(strings),
            nums,
            source,
        }
    }

    fn apply_startup(&self, pairs: &Pairs) -> Result<(), ConfigError> {
        let mut save_seen = false;
        for (name, val, origin) in pairs {
            let idx = find(name)
                .ok_or_else(|| ConfigError(format!("unknown setting '{name}' ({origin})")))?;
            let p = &PARAMS[idx];
            let mut val = val.clone();
            if matches!(p.kind, Kind::Save) && save_seen && !val.is_empty() {
                // Several `save` lines add save points, as in redis.conf.
                let cur = self.strings.read()[idx].clone();
                val = format!("{cur} {val}");
            }
            if matches!(p.kind, Kind::Save) {
                save_seen = true;
            }
            let cur = self.strings.read()[idx].clone();
            let (s, n) = normalize(p, &val, &cur).map_err(|why| {
                ConfigError(format!("invalid value for '{}' ({origin}): {why}", p.name))
            })?;
            self.strings.write()[idx] = s;
            self.nums[idx].store(n, Ordering::Relaxed);
        }
        if self.num(P::cluster_enabled) != 0 {
            return Err(ConfigError("cluster-enabled yes is not supported".into()));
        }
        if self.port() == 0 && !self.ephemeral_port() && self.num(P::tls_port) == 0 {
            return Err(ConfigError(
                "Configured to not listen anywhere (port 0 and no tls-port), exiting.".into(),
            ));
        }
        Ok(())
    }

    #[inline]
    fn num(&self, p: P) -> i64 {
        self.nums[p as usize].load(Ordering::Relaxed)
    }

    fn string(&self, p: P) -> String {
        self.strings.read()[p as usize].clone()
    }

    /// CONFIG GET over several patterns; each parameter reported once, under
    /// the name (or alias) that matched.
    pub fn get_many(&self, patterns: &[&[u8]]) -> Vec<(String, String)> {
        let strings = self.strings.read();
        let mut out: Vec<(String, String)> = Vec::new();
        let mut seen = vec![false; PARAMS.len()];
        for pat in patterns {
            for (i, p) in PARAMS.iter().enumerate() {
                if seen[i] {
                    continue;
                }
                let hit = std::iter::once(p.name)
                    .chain(p.aliases.iter().copied())
                    .find(|n| glob_match(pat, n.as_bytes(), true));
                if let Some(n) = hit {
                    seen[i] = true;
                    out.push((n.to_string(), strings[i].clone()));
                }
            }
        }
        out
    }

    /// CONFIG GET with one pattern.
    pub fn get_matching(&self, pattern: &[u8]) -> Vec<(String, String)> {
        self.get_many(&[pattern])
    }

    /// CONFIG SET: validates every pair first, then applies all (nothing is
    /// applied if any pair is invalid). Returns the canonical names changed.
    pub fn set(&self, pairs: &[(&[u8], &[u8])]) -> Result<Vec<&'static str>, String> {
        let mut staged: Vec<(usize, String, i64)> = Vec::new();
        for (name, val) in pairs {
            let n = String::from_utf8_lossy(name);
            let Some(idx) = find(&n) else {
                return Err(format!(
                    "ERR Unknown option or number of arguments for CONFIG SET - '{n}'"
                ));
            };
            let p = &PARAMS[idx];
            if staged.iter().any(|(i, _, _)| *i == idx) {
                return Err(set_failed(&n, "duplicate parameter"));
            }
            if !p.mutable {
                return Err(set_failed(&n, "can't set immutable config"));
            }
            let cur = self.strings.read()[idx].clone();
            let v = String::from_utf8_lossy(val);
            let (s, num) = normalize(p, &v, &cur).map_err(|why| set_failed(&n, &why))?;
            staged.push((idx, s, num));
        }
        let mut strings = self.strings.write();
        let mut changed = Vec::new();
        for (idx, s, num) in staged {
            strings[idx] = s;
            self.nums[idx].store(num, Ordering::Relaxed);
            changed.push(PARAMS[idx].name);
        }
        Ok(changed)
    }

    /// CONFIG REWRITE: writes the non-default values back to the file the
    /// server was started from (same format), atomically.
    pub fn rewrite(&self) -> Result<(), String> {
        let (path, toml_fmt) = match &self.source {
            Source::Embedded => {
                return Err("ERR The server is running without a config file".into())
            }
            Source::Toml(p) => (p.clone(), true),
            Source::RedisConf(p) => (p.clone(), false),
        };
        let strings = self.strings.read();
        let mut lines = vec![
            "# Rewritten by CONFIG REWRITE: non-default values of this Cinnabar instance."
                .to_string(),
        ];
        for (i, p) in PARAMS.iter().enumerate() {
            let (def, _) = normalize(p, p.default, p.default).unwrap_or_default();
            if strings[i] == def {
                continue;
            }
            let v = &strings[i];
            if toml_fmt {
                lines.push(format!("{} = {}", p.name, toml::Value::String(v.clone())));
            } else if v.is_empty() || v.contains(' ') {
                lines.push(format!("{} \"{}\"", p.name, v.replace('"', "\\\"")));
            } else {
                lines.push(format!("{} {}", p.name, v));
            }
        }
        let text = lines.join("\n") + "\n";
        write_atomically(&path, text.as_bytes())
            .map_err(|e| format!("ERR Rewriting config file: {e}"))
    }

    // ---- typed getters (lock-free for numbers) -------------------------

    pub fn port(&self) -> u16 {
        self.num(P::port) as u16
    }
    pub fn ephemeral_port(&self) -> bool {
        self.num(P::ephemeral_port) != 0
    }
    pub fn bind(&self) -> Vec<String> {
        self.string(P::bind)
            .split_whitespace()
            .map(String::from)
            .collect()
    }
    pub fn databases(&self) -> usize {
        self.num(P::databases) as usize
    }
    pub fn shards(&self) -> usize {
        self.num(P::shards) as usize
    }
    pub fn maxclients(&self) -> u64 {
        self.num(P::maxclients) as u64
    }
    pub fn hz(&self) -> u64 {
        self.num(P::hz) as u64
    }
    pub fn maxmemory(&self) -> u64 {
        self.num(P::maxmemory) as u64
    }
    pub fn maxmemory_policy(&self) -> MaxmemoryPolicy {
        MaxmemoryPolicy::ALL
            .get(self.num(P::maxmemory_policy) as usize)
            .copied()
            .unwrap_or(MaxmemoryPolicy::NoEviction)
    }
    pub fn proto_max_bulk_len(&self) -> u64 {
        self.num(P::proto_max_bulk_len) as u64
    }
    pub fn client_query_buffer_limit(&self) -> u64 {
        self.num(P::client_query_buffer_limit) as u64
    }
    pub fn requirepass(&self) -> Option<String> {
        Some(self.string(P::requirepass)).filter(|s| !s.is_empty())
    }
    pub fn enable_debug_command(&self) -> bool {
        self.num(P::enable_debug_command) != 0
    }
    pub fn loglevel(&self) -> String {
        self.string(P::loglevel)
    }
    pub fn logfile(&self) -> String {
        self.string(P::logfile)
    }
    pub fn log_format(&self) -> String {
        self.string(P::log_format)
    }
    pub fn dir(&self) -> String {
        self.string(P::dir)
    }
    pub fn hash_max_listpack_entries(&self) -> usize {
        self.num(P::hash_max_listpack_entries) as usize
    }
    pub fn hash_max_listpack_value(&self) -> usize {
        self.num(P::hash_max_listpack_value) as usize
    }
    pub fn set_max_intset_entries(&self) -> usize {
        self.num(P::set_max_intset_entries) as usize
    }
    pub fn zset_max_listpack_entries(&self) -> usize {
        self.num(P::zset_max_listpack_entries) as usize
    }
    pub fn zset_max_listpack_value(&self) -> usize {
        self.num(P::zset_max_listpack_value) as usize
    }
    pub fn list_max_listpack_size(&self) -> i64 {
        self.num(P::list_max_listpack_size)
    }
    pub fn notify_keyspace_events(&self) -> u32 {
        self.num(P::notify_keyspace_events) as u32
    }
    pub fn client_output_buffer_limit(&self, class: usize) -> ObufLimit {
        parse_obuf(&self.string(P::client_output_buffer_limit))
            .map(|c| c[class.min(2)])
            .unwrap_or(ObufLimit {
                hard: 0,
                soft: 0,
                soft_seconds: 0,
            })
    }
    pub fn save_points(&self) -> Vec<(u64, u64)> {
        let s = self.string(P::save);
        let v: Vec<u64> = s
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        v.chunks(2)
            .filter(|c| c.len() == 2)
            .map(|c| (c[0], c[1]))
            .collect()
    }
    /// Where the config came from (INFO config_file).
    pub fn file(&self) -> String {
        match &self.source {
            Source::Embedded => String::new(),
            Source::Toml(p) | Source::RedisConf(p) => p.display().to_string(),
        }
    }
}

/// Writes `data` to `path` via a temporary file, fsync and rename.
pub fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(args: &[&str]) -> Result<Config, ConfigError> {
        load(args.iter().map(|s| s.to_string())).map(|x| x.1)
    }

    #[test]
    fn defaults_match_redis() {
        let c = from_toml_str("").unwrap();
        let get = |n: &str| {
            c.get_matching(n.as_bytes())
                .first()
                .map(|x| x.1.clone())
                .unwrap()
        };
        assert_eq!(get("maxmemory"), "0");
        assert_eq!(get("maxmemory-policy"), "noeviction");
        assert_eq!(get("proto-max-bulk-len"), "536870912");
        assert_eq!(get("client-query-buffer-limit"), "1073741824");
        assert_eq!(get("hash-max-listpack-entries"), "128");
        assert_eq!(get("hash-max-ziplist-entries"), "128");
        assert_eq!(get("list-max-listpack-size"), "-2");
        assert_eq!(get("set-max-intset-entries"), "512");
        assert_eq!(get("zset-max-listpack-value"), "64");
        assert_eq!(get("save"), "3600 1 300 100 60 10000");
        assert_eq!(
            get("client-output-buffer-limit"),
            "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"
        );
        assert_eq!(get("appendfsync"), "everysec");
        assert_eq!(get("hz"), "10");
        assert_eq!(get("databases"), "16");
        assert_eq!(get("maxclients"), "10000");
        assert_eq!(get("timeout"), "0");
        assert_eq!(get("tcp-keepalive"), "300");
        assert_eq!(get("lua-time-limit"), "5000");
    }

    #[test]
    fn get_globs_and_aliases() {
        let c = from_toml_str("").unwrap();
        let names: Vec<String> = c
            .get_matching(b"maxmemory*")
            .into_iter()
            .map(|x| x.0)
            .collect();
        assert!(names.contains(&"maxmemory".into()));
        assert!(names.contains(&"maxmemory-policy".into()));
        let v = c.get_many(&[b"*max-*-entries*", b"hash-max-ziplist-entries"]);
        assert!(v.iter().any(|x| x.0 == "hash-max-listpack-entries"));
        assert_eq!(v.iter().filter(|x| x.0.starts_with("hash-max")).count(), 1);
    }

    #[test]
    fn set_validates_all_or_nothing() {
        let c = from_toml_str("").unwrap();
        assert_eq!(
            c.set(&[(b"foo", b"1")]).unwrap_err(),
            "ERR Unknown option or number of arguments for CONFIG SET - 'foo'"
        );
        assert_eq!(
            c.set(&[(b"maxmemory-policy", b"nope")]).unwrap_err(),
            "ERR CONFIG SET failed (possibly related to argument 'maxmemory-policy') - argument(s) must be one of the following: volatile-lru, volatile-lfu, volatile-random, volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, noeviction"
        );
        assert_eq!(
            c.set(&[(b"databases", b"4")]).unwrap_err(),
            "ERR CONFIG SET failed (possibly related to argument 'databases') - can't set immutable config"
        );
        assert!(c.set(&[(b"maxmemory", b"10mb"), (b"hz", b"abc")]).is_err());
        assert_eq!(c.maxmemory(), 0, "nothing applied when one pair fails");
        c.set(&[
            (b"maxmemory", b"10mb"),
            (b"maxmemory-policy", b"allkeys-lru"),
        ])
        .unwrap();
        assert_eq!(c.maxmemory(), 10 << 20);
        assert_eq!(c.maxmemory_policy(), MaxmemoryPolicy::AllkeysLru);
        assert!(c
            .set(&[(b"hz", b"5"), (b"hz", b"6")])
            .unwrap_err()
            .contains("duplicate"));
        assert_eq!(
            c.set(&[(b"appendonly", b"maybe")]).unwrap_err(),
            "ERR CONFIG SET failed (possibly related to argument 'appendonly') - argument must be 'yes' or 'no'"
        );
        c.set(&[(b"client-output-buffer-limit", b"pubsub 32mb 8mb 60")])
            .unwrap();
        assert_eq!(c.client_output_buffer_limit(2).hard, 32 << 20);
        assert_eq!(c.client_output_buffer_limit(1).hard, 268435456);
        c.set(&[(b"notify-keyspace-events", b"KEA")]).unwrap();
        assert_eq!(c.get_matching(b"notify-keyspace-events")[0].1, "AKE");
    }

    #[test]
    fn memory_units() {
        assert_eq!(parse_mem("1k"), Some(1000));
        assert_eq!(parse_mem("1kb"), Some(1024));
        assert_eq!(parse_mem("2GB"), Some(2 << 30));
        assert_eq!(parse_mem("100mb"), Some(100 << 20));
        assert_eq!(parse_mem("12"), Some(12));
        assert_eq!(parse_mem("-1"), None);
        assert_eq!(parse_mem("1xb"), None);
    }

    #[test]
    fn cli_redis_style() {
        let c = cfg(&[
            "--port",
            "7777",
            "--save",
            "",
            "--maxmemory",
            "1gb",
            "--daemonize",
            "no",
        ])
        .unwrap();
        assert_eq!(c.port(), 7777);
        assert!(c.save_points().is_empty());
        assert_eq!(c.maxmemory(), 1 << 30);
        let c = cfg(&["--save", "900", "1", "300", "10"]).unwrap();
        assert_eq!(c.save_points(), vec![(900, 1), (300, 10)]);
        let e = cfg(&["--portt", "1"]).err().unwrap().to_string();
        assert!(e.contains("unknown setting 'portt'"), "{e}");
        let e = cfg(&["--maxmemory-policy", "x"]).err().unwrap().to_string();
        assert!(
            e.contains("'maxmemory-policy'") && e.contains("must be one of"),
            "{e}"
        );
        let (cli, _) = load(["-v".to_string()]).unwrap();
        assert!(cli.version);
    }

    #[test]
    fn files_and_rewrite() {
        let dir = std::env::temp_dir().join(format!("cinnabar-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("redis.conf");
        std::fs::write(
            &conf,
            "# comment\nport 7001\nsave 900 1\nsave 60 100\nmaxmemory 2mb\n",
        )
        .unwrap();
        let c = cfg(&[conf.to_str().unwrap(), "--hz", "20"]).unwrap();
        assert_eq!(c.port(), 7001);
        assert_eq!(c.hz(), 20);
        assert_eq!(c.save_points(), vec![(900, 1), (60, 100)]);
        c.set(&[(b"maxmemory", b"3mb")]).unwrap();
        c.rewrite().unwrap();
        let c2 = cfg(&[conf.to_str().unwrap()]).unwrap();
        assert_eq!(c2.maxmemory(), 3 << 20);
        assert_eq!(c2.hz(), 20);
        let t = dir.join("c.toml");
        std::fs::write(&t, "port = 7002\nappendonly = true\nmaxmemory = \"1mb\"\nbind = [\"127.0.0.1\", \"::1\"]\n").unwrap();
        let c3 = cfg(&[t.to_str().unwrap()]).unwrap();
        assert_eq!(c3.port(), 7002);
        assert_eq!(c3.bind(), vec!["127.0.0.1", "::1"]);
        assert_eq!(c3.get_matching(b"appendonly")[0].1, "yes");
        c3.set(&[(b"hz", b"15")]).unwrap();
        c3.rewrite().unwrap();
        assert_eq!(cfg(&[t.to_str().unwrap()]).unwrap().hz(), 15);
        let _ = std::fs::remove_dir_all(&dir);
        assert!(from_toml_str("")
            .unwrap()
            .rewrite()
            .unwrap_err()
            .contains("without a config file"));
    }
}
