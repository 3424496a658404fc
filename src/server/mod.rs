//! Wiring: builds the shared [`Server`], binds listeners, starts background
//! tasks (active expiry, stats sampling) and waits for shutdown.

pub mod busypoll;
pub mod cluster;
pub mod cluster_bus;
pub mod cluster_local;
pub mod eviction;
pub mod fullsync;
pub mod latency;
pub mod limits;
pub mod listener;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod monitor;
pub mod pause;
pub mod process;
pub mod proctitle;
pub mod propagate;
pub mod pubsub;
pub mod rehearsal;
pub mod replica;
pub mod replication;
pub mod shutdown;
pub mod slowlog;
pub mod stats;
pub mod tls;
pub mod tracking;
pub mod watchdog;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dashmap::DashMap;
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::commands::table::{table, CommandEntry, Lookup};
use crate::config::Config;
use crate::connection::client::ClientInfo;
use crate::storage::Keyspace;

pub use stats::Stats;

/// Everything shared by connections and background tasks.
pub struct Server {
    pub config: Arc<Config>,
    pub keyspace: Keyspace,
    pub stats: Stats,
    pub clients: DashMap<u64, Arc<ClientInfo>>,
    /// Clients blocked on keys (BLPOP & co).
    pub blocking: crate::commands::blocking::BlockRegistry,
    next_client_id: AtomicU64,
    pub started: Instant,
    pub start_unix_ms: u64,
    pub run_id: String,
    /// Addresses actually bound (plain TCP).
    pub bound: Mutex<Vec<SocketAddr>>,
    /// The running accept loops (replaced on CONFIG SET port/bind).
    pub accept_tasks: Mutex<Vec<listener::AcceptLoop>>,
    pub active_expire: AtomicBool,
    /// DEBUG PAUSE-CRON: the periodic task skips its turns.
    pub cron_paused: AtomicBool,
    shutdown_tx: watch::Sender<bool>,
    /// Path of the executable and config file, for INFO.
    pub executable: String,
    pub config_file: String,
    /// `used_memory`, as checked against `maxmemory`.
    pub memory: memory::MemoryMeter,
    pub evictor: eviction::Evictor,
    /// Lua scripts by SHA1 (EVAL, SCRIPT LOAD).
    pub scripts: crate::scripting::ScriptCache,
    /// Function libraries (FUNCTION LOAD, FCALL).
    pub functions: crate::functions::FunctionRegistry,
    /// Channel/pattern subscriptions (PUBLISH, keyspace notifications).
    pub pubsub: pubsub::PubSub,
    /// The TLS server config of `tls-port` (swapped on CONFIG SET tls-*).
    pub tls: tls::TlsState,
    /// `rename-command` (set at startup).
    renames: Renames,
    /// Per command-table id: refused by `disabled-commands` (immutable, so
    /// computed once; dispatch checks one bool).
    disabled: Vec<bool>,
    /// The ordered stream of writes (AOF, replication).
    pub feed: propagate::Feed,
    /// Attached replicas and the replication id.
    pub repl: replication::Replication,
    /// RDB/AOF state (INFO persistence, the running child, LOADING).
    pub persist: crate::persistence::State,
    /// A weak handle to this server, for work that outlives a command
    /// (reaping a BGSAVE child).
    me: std::sync::Weak<Server>,
    /// SHUTDOWN / SIGTERM: what to remove on the way out, a pending or
    /// running attempt.
    pub shutdown: shutdown::State,
    /// ACL users, the default user and the ACL log.
    pub acl: crate::acl::AclState,
    /// CLIENT TRACKING (client-side caching) registry.
    pub tracking: tracking::Tracking,
    /// Entra ID-style token verification (`entra-*` parameters).
    pub entra: crate::entra::EntraState,
    /// `client-output-buffer-limit normal`, cached for the connection loop.
    pub obuf_normal: limits::ObufNormal,
    /// `maxmemory-clients`: the clients' memory and client eviction.
    pub client_mem: limits::ClientMem,
    /// SLOWLOG entries.
    pub slowlog: slowlog::SlowLog,
    /// CLIENT PAUSE state.
    pub pause: pause::Pause,
    /// Polling before the worker sleeps (`busy-poll-us`).
    pub busy_poll: busypoll::BusyPoll,
    /// `AZURE MAINTENANCE` / `AZURE REBOOT` rehearsals.
    pub rehearsal: rehearsal::Rehearsal,
    /// Azure Monitor's metrics (`AZURE METRICS`, `metrics-port`).
    pub metrics: metrics::Metrics,
    /// MONITOR clients.
    pub monitors: monitor::Monitors,
    /// The latency monitor's events (LATENCY LATEST/HISTORY).
    pub latency: latency::Monitor,
    /// MIGRATE's cached connections to its targets.
    pub migrate: crate::commands::migrate::SocketCache,
    /// `cluster-policy enterprise` (immutable, cached for dispatch).
    pub enterprise_policy: bool,
    /// Cluster mode's topology (`cluster-enabled yes`; set at startup).
    pub cluster: std::sync::OnceLock<cluster::Cluster>,
    /// Cluster mode's links to the other nodes (PUBLISH reaches them all).
    pub bus: std::sync::OnceLock<cluster_bus::Bus>,
}

impl Server {
    /// `redis_mode` in INFO and HELLO: "cluster" or "standalone".
    pub fn mode(&self) -> &'static str {
        if self.cluster.get().is_some() {
            "cluster"
        } else {
            "standalone"
        }
    }

    pub fn new(config: Arc<Config>) -> Arc<Self> {
        let keyspace = Keyspace::new(config.databases(), config.shards());
        let (shutdown_tx, _) = watch::channel(false);
        let run_id = replication::random_id();
        let srv = Arc::new_cyclic(|me| Server {
            me: me.clone(),
            keyspace,
            stats: Stats::default(),
            clients: DashMap::new(),
            blocking: Default::default(),
            next_client_id: AtomicU64::new(1),
            started: Instant::now(),
            start_unix_ms: crate::commands::dispatch::unix_ms(),
            run_id,
            bound: Mutex::new(Vec::new()),
            accept_tasks: Mutex::new(Vec::new()),
            active_expire: AtomicBool::new(true),
            cron_paused: AtomicBool::new(false),
            shutdown_tx,
            executable: std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            config_file: config.file(),
            memory: memory::MemoryMeter::default(),
            evictor: eviction::Evictor::default(),
            scripts: crate::scripting::ScriptCache::default(),
            functions: crate::functions::FunctionRegistry::default(),
            pubsub: Default::default(),
            tls: tls::TlsState::default(),
            disabled: disabled_table(&config),
            renames: Renames::from_config(&config),
            feed: Default::default(),
            repl: Default::default(),
            persist: Default::default(),
            shutdown: Default::default(),
            acl: Default::default(),
            tracking: Default::default(),
            entra: Default::default(),
            obuf_normal: Default::default(),
            client_mem: Default::default(),
            slowlog: Default::default(),
            pause: Default::default(),
            busy_poll: Default::default(),
            rehearsal: Default::default(),
            metrics: Default::default(),
            monitors: Default::default(),
            latency: Default::default(),
            migrate: Default::default(),
            cluster: std::sync::OnceLock::new(),
            bus: std::sync::OnceLock::new(),
            enterprise_policy: config.cluster_policy() == crate::config::ClusterPolicy::Enterprise,
            config,
        });
        srv.obuf_normal.sync(&srv.config);
        srv.client_mem.sync(&srv.config);
        srv.sync_default_user();
        srv
    }

    /// Gives the default user `requirepass` and the access keys as its
    /// passwords (nopass when none is set), as Redis does for requirepass.
    pub fn sync_default_user(&self) {
        let p: Vec<String> = self.passwords().collect();
        self.acl.set_default_passwords(&p);
    }

    /// Does a new connection start unauthenticated? Yes unless the
    /// default user is `on` and `nopass` (no requirepass, no access key,
    /// no ACL password).
    pub fn auth_required(&self) -> bool {
        self.acl.auth_required()
    }

    /// The passwords the default user accepts: `requirepass` and the
    /// Cinnabar-only `primary-access-key` / `secondary-access-key` (two keys
    /// valid at once, so one can be rotated while clients use the other, as
    /// Azure's caches do). Empty values are not passwords.
    fn passwords(&self) -> impl Iterator<Item = String> {
        let c = &self.config;
        [
            c.requirepass(),
            c.primary_access_key(),
            c.secondary_access_key(),
        ]
        .into_iter()
        .flatten()
        .filter(|p| !p.is_empty())
    }

    /// Checks credentials against the ACL users (the default user's
    /// passwords are requirepass and the access keys); the user on success.
    pub fn check_password(&self, user: &[u8], pass: &[u8]) -> Option<Arc<crate::acl::UserHandle>> {
        self.acl.authenticate(user, pass)
    }

    /// A strong handle to this server (None only while it is dropped).
    pub fn arc(&self) -> Option<Arc<Server>> {
        self.me.upgrade()
    }

    /// Finds the command `argv` names, with `rename-command` applied: a
    /// new name finds its command, an old one is unknown. Without renames
    /// this is the table's own lookup.
    pub fn lookup_command(&self, argv: &[Bytes]) -> Lookup<'static> {
        let t = table();
        if self.renames.is_empty() {
            return t.lookup(argv);
        }
        let Some(name) = argv.first() else {
            return t.lookup(argv);
        };
        let lname = name.to_ascii_lowercase();
        if let Some(orig) = self.renames.to_original.get(&lname) {
            let mut v = argv.to_vec();
            v[0] = orig.clone();
            return t.lookup(&v);
        }
        if self.renames.gone.contains(&lname) {
            return Lookup::Unknown;
        }
        t.lookup(argv)
    }

    /// Is this command switched off by `disabled-commands`?
    pub fn is_disabled(&self, entry: &CommandEntry) -> bool {
        self.disabled.get(entry.id).copied().unwrap_or(false)
    }

    /// CONFIG SET with the side effects that need the server: the TLS
    /// configuration is rebuilt when a `tls-*` parameter changed (setting
    /// `tls-cert-file` to the same path reloads the files). If the rebuild
    /// fails the parameters are restored and the old TLS config stays in
    /// use, and the error is Redis's.
    /// CONFIG SET. `defer_fork`: the caller holds shard locks (EXEC), so
    /// work that forks (turning the AOF on) is left to the cron.
    /// `local_client`: the client is on loopback or the unix socket, which
    /// `enable-protected-configs local` allows.
    pub fn config_set(
        &self,
        pairs: &[(&[u8], &[u8])],
        defer_fork: bool,
        local_client: bool,
    ) -> Result<(), String> {
        if (self.persist.loading() || self.persist.async_loading())
            && self.config.denied_while_loading(pairs)
        {
            return Err(crate::protocol::error::CmdError::LOADING.to_string());
        }
        let tls_before: Vec<(&str, String)> = if self.tls.active() {
            tls::RELOAD_PARAMS
                .iter()
                .map(|n| (*n, self.config_value(n)))
                .collect()
        } else {
            Vec::new()
        };
        let entra_before: Vec<(&str, String)> = crate::entra::RELOAD_PARAMS
            .iter()
            .map(|n| (*n, self.config_value(n)))
            .collect();
        // Every parameter of this CONFIG SET, to roll back all of them if
        // the new listeners cannot be bound (as Redis).
        let before: Vec<(String, String)> = pairs
            .iter()
            .map(|(n, _)| {
                let n = String::from_utf8_lossy(n).into_owned();
                let v = self.config_value(&n);
                (n, v)
            })
            .collect();
        let changed = self.config.set_from_client(pairs, local_client)?;
        if changed.contains(&"dir") {
            // As Redis: the process moves, so every relative file name
            // (dbfilename, appenddirname, …) now resolves in the new one.
            if let Err(e) = std::env::set_current_dir(self.config.dir()) {
                self.restore_config(&before);
                return Err(format!(
                    "ERR CONFIG SET failed (possibly related to argument 'dir') - {}",
                    crate::config::io_reason(&e)
                ));
            }
        }
        if changed.contains(&"tls-port") && self.config.tls_port() != 0 && !self.tls.active() {
            // TLS was off: build its configuration first, as Redis's
            // applyTLSPort configures TLS before listening.
            if let Err(e) = self.tls.reload(&self.config) {
                tracing::warn!("{e}");
                self.restore_config(&before);
                return Err(
                    "ERR CONFIG SET failed (possibly related to argument 'tls-port') - \
                     Unable to update TLS configuration. Check server logs."
                        .into(),
                );
            }
        }
        let mut relisten = Vec::new();
        if changed.contains(&"port") || changed.contains(&"bind") {
            relisten.push(listener::Kind::Tcp);
        }
        if changed.contains(&"tls-port") || (changed.contains(&"bind") && self.tls.active()) {
            relisten.push(listener::Kind::Tls);
        }
        if !relisten.is_empty() {
            let done = match self.arc() {
                Some(me) => listener::rebind(&me, &relisten),
                None => Err(std::io::Error::other("server is stopping")),
            };
            if let Err(e) = done {
                tracing::warn!("CONFIG SET: could not listen: {e}");
                self.restore_config(&before);
                let name = ["port", "tls-port", "bind"]
                    .into_iter()
                    .find(|n| changed.contains(n))
                    .unwrap_or("port");
                // Redis's words differ for the addresses and the ports.
                let why = if name == "bind" {
                    "Failed to bind to specified addresses."
                } else {
                    "Unable to listen on this port. Check server logs."
                };
                return Err(format!(
                    "ERR CONFIG SET failed (possibly related to argument '{name}') - {why}"
                ));
            }
        }
        if let Some(c) = self.cluster.get() {
            if changed.iter().any(|n| n.starts_with("cluster-announce-")) {
                c.reannounce(&self.config);
            }
        }
        if changed.contains(&"oom-score-adj") || changed.contains(&"oom-score-adj-values") {
            if let Err(e) = self.apply_oom_class() {
                tracing::warn!("Unable to write oom_score_adj: {e}");
                self.restore_config(&before);
                let _ = self.apply_oom_class();
                let name = if changed.contains(&"oom-score-adj") {
                    "oom-score-adj"
                } else {
                    "oom-score-adj-values"
                };
                return Err(format!(
                    "ERR CONFIG SET failed (possibly related to argument '{name}') - \
                     Failed to set current oom_score_adj. Check server logs."
                ));
            }
        }
        if ["proc-title-template", "port", "tls-port", "bind"]
            .iter()
            .any(|n| changed.contains(n))
        {
            self.refresh_proc_title();
        }
        if changed.contains(&"watchdog-period") {
            watchdog::set_period(self.config.watchdog_period());
        }
        if changed.contains(&"loglevel") || changed.contains(&"crash-log-enabled") {
            logging::reconfigure(&self.config);
        }
        if changed.contains(&"client-output-buffer-limit") {
            self.obuf_normal.sync(&self.config);
        }
        if changed.contains(&"maxmemory-clients") || changed.contains(&"maxmemory") {
            // A lower limit evicts before CONFIG SET answers, as in Redis.
            self.client_mem.sync(&self.config);
            limits::evict_clients(self);
        }
        if let Some(name) = changed
            .iter()
            .find(|n| crate::entra::RELOAD_PARAMS.contains(n))
        {
            if let Err(e) = self.entra.reload(&self.config) {
                tracing::warn!("{e}");
                self.restore_config(&entra_before);
                return Err(format!(
                    "ERR CONFIG SET failed (possibly related to argument '{name}') - {e}"
                ));
            }
        }
        if changed.iter().any(|n| {
            matches!(
                *n,
                "requirepass" | "primary-access-key" | "secondary-access-key"
            )
        }) {
            self.sync_default_user();
        }
        if !tls_before.is_empty() {
            if let Some(name) = changed.iter().find(|n| tls::RELOAD_PARAMS.contains(n)) {
                if let Err(e) = self.tls.reload(&self.config) {
                    tracing::warn!("{e}");
                    self.restore_config(&tls_before);
                    return Err(format!(
                        "ERR CONFIG SET failed (possibly related to argument '{name}') - \
                         Unable to update TLS configuration. Check server logs."
                    ));
                }
            }
        }
        self.sync_access_tracking();
        if changed.contains(&"aof-disable-auto-gc") {
            crate::persistence::snapshot::gc_aof_history(self);
        }
        if changed.contains(&"appendonly") {
            let on = self.persist.aof.lock().on;
            if self.config.appendonly() && !on && defer_fork {
                tracing::warn!(
                    "AOF was enabled during a transaction. An AOF background was scheduled to start when possible."
                );
                self.persist
                    .rewrite_scheduled
                    .store(true, Ordering::Relaxed);
            } else if self.config.appendonly() && !on {
                // The base of the new AOF is a snapshot of the data so far.
                match crate::persistence::snapshot::rewrite_aof(self, true) {
                    Ok(()) => {}
                    Err(e) if e == "SCHEDULED" => {}
                    Err(e) => {
                        let _ = self.config.set(&[(b"appendonly", b"no")]);
                        return Err(e);
                    }
                }
            } else if !self.config.appendonly() && on {
                if let Some(c) = crate::persistence::snapshot::kill_child(
                    self,
                    Some(crate::persistence::ChildKind::AofRewrite),
                ) {
                    tracing::info!("Killing running AOF rewrite child: {}", c.pid);
                }
                crate::persistence::snapshot::stop_aof(self);
            }
        }
        Ok(())
    }

    /// A parameter's current value as CONFIG GET prints it.
    /// Puts back parameter values saved before a CONFIG SET whose side
    /// effect (rebinding, reloading keys) failed.
    /// Applies `oom-score-adj` for this server's class (primary or
    /// replica), as Redis does on CONFIG SET and on every role change.
    pub fn apply_oom_class(&self) -> std::io::Result<()> {
        let class = if self.repl.is_replica() {
            process::OOM_REPLICA
        } else {
            process::OOM_PRIMARY
        };
        process::apply_oom_score_adj(
            self.config.oom_score_adj(),
            self.config.oom_score_adj_values(),
            class,
        )
    }

    fn restore_config<N: AsRef<str>>(&self, saved: &[(N, String)]) {
        let undo: Vec<(&[u8], &[u8])> = saved
            .iter()
            .map(|(n, v)| (n.as_ref().as_bytes(), v.as_bytes()))
            .collect();
        if let Err(e) = self.config.set(&undo) {
            tracing::warn!("could not restore parameters after a failed CONFIG SET: {e}");
        }
        if saved.iter().any(|(n, _)| n.as_ref() == "dir") {
            if let Err(e) = std::env::set_current_dir(self.config.dir()) {
                tracing::warn!("could not return to '{}': {e}", self.config.dir());
            }
        }
    }

    fn config_value(&self, name: &str) -> String {
        self.config
            .get_many(&[name.as_bytes()])
            .into_iter()
            .next()
            .map(|(_, v)| v)
            .unwrap_or_default()
    }

    pub fn register_client(&self, addr: SocketAddr, laddr: SocketAddr) -> Arc<ClientInfo> {
        let id = self.next_client_id.fetch_add(1, Ordering::Relaxed);
        self.add_client(Arc::new(ClientInfo::new(id, addr, laddr)))
    }

    /// Registers a client connected through the unix socket at `path`.
    pub fn register_unix_client(&self, path: &str) -> Arc<ClientInfo> {
        let id = self.next_client_id.fetch_add(1, Ordering::Relaxed);
        self.add_client(Arc::new(ClientInfo::new_unix(id, path)))
    }

    fn add_client(&self, info: Arc<ClientInfo>) -> Arc<ClientInfo> {
        let id = info.id;
        self.clients.insert(id, info.clone());
        self.stats
            .connections_received
            .fetch_add(1, Ordering::Relaxed);
        info
    }

    pub fn unregister_client(&self, info: &ClientInfo) {
        if self.client_mem.release(info) {
            // Memory eviction left out is back with the allocator: the
            // next check must read it there, not from a cached figure.
            self.memory.mark_stale();
        }
        let id = info.id;
        if let Some((_, info)) = self.clients.remove(&id) {
            self.tracking.disable(&info);
            if info.monitor.load(Ordering::Relaxed) {
                self.monitors.remove(id);
            }
            *info.outbox.lock() = None;
        }
    }

    /// Makes entries keep LRU or LFU data per the current `maxmemory-policy`
    /// (any database using LFU switches tracking to LFU).
    pub fn sync_access_tracking(&self) {
        let cfg = &self.config;
        crate::storage::lazyfree::set_modes(
            cfg.lazyfree_lazy_expire(),
            cfg.lazyfree_lazy_server_del(),
        );
        let lfu = cfg.maxmemory_policy().is_lfu()
            || (0..self.keyspace.num_dbs().min(64)).any(|db| cfg.policy_of_db(db).is_lfu());
        crate::storage::access::set_tracking(lfu, cfg.lfu_log_factor(), cfg.lfu_decay_time());
    }

    /// Publishes a keyspace notification for `key` of database `db`
    /// (enqueues only: safe while shard locks are held).
    pub fn notify_keyspace(&self, db: usize, class: u32, event: &str, key: &[u8]) {
        self.pubsub
            .notify_keyspace(&self.config, db, class, event, key);
    }

    /// Tells every task that the server is going away (the shutdown is
    /// committed: see [`shutdown::finish`]).
    pub fn request_shutdown(&self) {
        self.shutdown_tx.send_replace(true);
    }

    pub fn shutdown_receiver(&self) -> watch::Receiver<bool> {
        self.shutdown_tx.subscribe()
    }

    /// Sets the process title from `proc-title-template` and the ports
    /// actually listened on (`set-proc-title yes`).
    pub fn refresh_proc_title(&self) {
        if !self.config.set_proc_title() {
            return;
        }
        let port = self
            .bound
            .lock()
            .first()
            .map(|a| a.port())
            .unwrap_or_else(|| self.config.port());
        let title = proctitle::expand(&self.config, port, self.config.tls_port());
        proctitle::set(&title);
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }
}

/// Runs the server until SHUTDOWN or SIGTERM/SIGINT.
pub async fn run(config: Arc<Config>) -> std::io::Result<()> {
    let dir = config.dir();
    if !dir.is_empty() {
        std::env::set_current_dir(&dir)
            .map_err(|e| std::io::Error::new(e.kind(), format!("Can't chdir to '{dir}': {e}")))?;
    }
    let pidfile = process::pidfile_path(config.pidfile(), config.daemonize());
    if let Some(p) = &pidfile {
        process::write_pidfile(p);
    }
    process::apply_disable_thp(config.disable_thp());
    if let Err(e) = process::apply_oom_score_adj(
        config.oom_score_adj(),
        config.oom_score_adj_values(),
        process::OOM_PRIMARY,
    ) {
        tracing::warn!("Unable to set oom_score_adj: {e}");
    }
    crate::commands::dispatch::warm_clock();
    let srv = Server::new(config);
    srv.sync_access_tracking();
    if srv.config.tls_port() != 0 {
        let cfg = tls::build(&srv.config)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        srv.tls.install(cfg);
    }
    generate_access_keys(&srv);
    srv.sync_default_user();
    srv.entra
        .reload(&srv.config)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    crate::commands::acl::load_at_startup(&srv)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let listeners = listener::bind_all(&srv)?;
    let metrics_listeners = metrics::bind(&srv)?;
    if srv.config.cluster_enabled() {
        // The ports actually bound (an OS-chosen one included) are what
        // the node announces unless cluster-announce-*port says otherwise.
        let bound = |kind: listener::Kind| {
            listeners
                .iter()
                .find(|(k, _)| *k == kind)
                .and_then(|(_, l)| l.local_addr().ok())
                .map_or(0, |a| a.port())
        };
        let c = cluster::Cluster::start(
            &srv.config,
            bound(listener::Kind::Tcp),
            bound(listener::Kind::Tls),
        )
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let mine: usize = c
            .ranges()
            .get(c.myself())
            .map_or(0, |r| r.iter().map(|(a, b)| usize::from(b - a) + 1).sum());
        tracing::info!(
            "Cluster node {} ({mine} of 16384 slots served here)",
            c.my_id()
        );
        let _ = srv.cluster.set(c);
        cluster_bus::start(&srv);
    }
    if listeners.is_empty() {
        tracing::warn!("no TCP listener (port and tls-port are 0, or bind is empty)");
    }
    let mut ready = Vec::new();
    for (kind, l) in &listeners {
        if let Ok(local) = l.local_addr() {
            ready.push((*kind, local));
        }
    }
    listener::start(&srv, listeners);
    srv.refresh_proc_title();
    watchdog::set_period(srv.config.watchdog_period());
    for l in metrics_listeners {
        let l = tokio::net::TcpListener::from_std(l)?;
        if let Ok(a) = l.local_addr() {
            tracing::info!("Metrics endpoint listening on http://{a}/metrics");
        }
        tokio::spawn(metrics::serve(srv.clone(), l));
    }
    let unix_path = listener::start_unix(&srv)?;
    // Redis's test harness (and some process supervisors' scripts) wait
    // for " PID: <pid>" in the log, which Redis prints in its logo once it
    // listens and before it loads the dataset.
    let port = srv.bound.lock().first().map_or(0, |a| a.port());
    if srv.config.always_show_logo() {
        tracing::info!(
            "Cinnabar {} (Redis {} compatible) 64 bit, {} mode, Port: {port}, PID: {}",
            env!("CARGO_PKG_VERSION"),
            crate::REDIS_VERSION,
            srv.mode(),
            std::process::id()
        );
    } else {
        tracing::info!("Running mode={}, port={port}.", srv.mode());
    }
    // Clients may connect while the dataset loads; they get -LOADING.
    match crate::persistence::snapshot::load_at_startup(srv.clone()).await {
        Ok(Ok(())) => {}
        // main() logs the error once.
        Ok(Err(e)) => return Err(std::io::Error::other(e)),
        Err(e) => return Err(std::io::Error::other(e.to_string())),
    }
    // `replicaof` in the configuration: follow that primary from the start.
    if let Some((host, port)) = srv.config.replicaof() {
        replica::follow(&srv, replication::MasterAddr { host, port });
    }
    // Signal handlers exist before "ready" is announced, so a harness that
    // sends SIGTERM right after seeing it gets a graceful shutdown.
    let signals = Signals::install();
    // As Redis, "ready" is announced once the dataset is loaded (clients
    // connecting earlier were answered -LOADING).
    for (kind, local) in ready {
        tracing::info!("Ready to accept connections {} on {local}", kind.label());
    }
    if let Some(p) = &unix_path {
        tracing::info!("Ready to accept connections unix on {p}");
    }
    let supervisor = process::supervisor(srv.config.supervised());
    process::notify_ready(&supervisor);
    srv.shutdown.set_teardown(shutdown::Teardown {
        pidfile,
        unix_socket: unix_path,
        supervisor,
    });
    tokio::spawn(busypoll::run(srv.clone()));
    tokio::spawn(active_expire_task(srv.clone()));
    tokio::spawn(crate::persistence::snapshot::cron(srv.clone()));
    tokio::spawn(eviction_task(srv.clone()));
    tokio::spawn(stats::sampler_task(srv.clone()));
    tokio::spawn(metrics::sampler_task(srv.clone()));
    tokio::spawn(limits::idle_timeout_task(srv.clone()));
    signal_loop(&srv, signals).await
}

/// Acts on SIGTERM/SIGINT for the life of the server. A successful
/// shutdown exits the process (from [`shutdown::finish`]); a failed one
/// is logged and the server goes on.
async fn signal_loop(srv: &Arc<Server>, mut signals: Signals) -> ! {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        let (flags, name) = tokio::select! {
            (flags, name) = signal_shutdown(&mut signals, &srv.config) => {
                if srv.shutdown.in_progress() {
                    shutdown::insist(srv);
                }
                if srv.cron_paused.load(Ordering::Relaxed) {
                    // Redis acts on signals in its cron.
                    srv.shutdown.set_pending(flags, name);
                    continue;
                }
                tracing::info!("Received {name} scheduling shutdown...");
                (flags, name)
            }
            _ = tick.tick() => {
                if srv.cron_paused.load(Ordering::Relaxed) {
                    continue;
                }
                match srv.shutdown.take_pending() {
                    Some(p) => p,
                    None => continue,
                }
            }
        };
        tracing::info!("User requested shutdown...");
        let s = srv.clone();
        let attempt = tokio::task::spawn_blocking(move || shutdown::finish(&s, flags, None));
        // A second signal while the final save runs exits at once.
        // Back here only if it failed (a success exits the process).
        tokio::select! {
            _ = attempt => {}
            _ = signal_shutdown(&mut signals, &srv.config) => shutdown::insist(srv),
        }
        tracing::warn!(
            "{name} received but errors trying to shut down the server, check the logs for more information"
        );
    }
}

/// `rename-command`: new (lower-case) names and the original each stands
/// for, and the original names no longer valid.
#[derive(Default)]
struct Renames {
    to_original: std::collections::HashMap<Vec<u8>, Bytes>,
    gone: std::collections::HashSet<Vec<u8>>,
}

impl Renames {
    fn from_config(config: &Config) -> Renames {
        let mut r = Renames::default();
        for (from, to) in config.renamed_commands() {
            r.gone.insert(from.clone().into_bytes());
            if !to.is_empty() {
                r.to_original
                    .insert(to.into_bytes(), Bytes::from(from.into_bytes()));
            }
        }
        // A name renamed away and then given to another command is valid.
        r.gone.retain(|g| !r.to_original.contains_key(g));
        r
    }

    fn is_empty(&self) -> bool {
        self.gone.is_empty() && self.to_original.is_empty()
    }
}

/// Marks the command-table entries named by `disabled-commands` (a name
/// disables the command and all its subcommands; `config|set` disables one
/// subcommand).
fn disabled_table(config: &Config) -> Vec<bool> {
    let names: Vec<String> = config
        .disabled_commands()
        .into_iter()
        .map(|n| n.to_ascii_lowercase())
        .collect();
    let t = crate::commands::table::table();
    let len = t.all().map(|e| e.id + 1).max().unwrap_or(0);
    let mut out = vec![false; len];
    if names.is_empty() {
        return out;
    }
    for e in t.all() {
        let parent = e.full_name.split('|').next().unwrap_or("");
        if names.iter().any(|n| *n == e.full_name || n == parent) {
            out[e.id] = true;
        }
    }
    out
}

/// Azure profiles (`profile` starting with `azure`) without any password
/// get two fresh access keys, logged once, so the server never runs open
/// the way an Azure cache never does.
fn generate_access_keys(srv: &Server) {
    let cfg = &srv.config;
    if !cfg.profile().starts_with("azure") || srv.auth_required() {
        return;
    }
    let k1 = crate::devcert::random_access_key();
    let k2 = crate::devcert::random_access_key();
    let pairs: [(&[u8], &[u8]); 2] = [
        (b"primary-access-key", k1.as_bytes()),
        (b"secondary-access-key", k2.as_bytes()),
    ];
    match cfg.set(&pairs) {
        Ok(_) => tracing::warn!(
            "No access keys configured: generated primary-access-key {k1} and \
             secondary-access-key {k2} (set them in the configuration to keep them across restarts)"
        ),
        Err(e) => tracing::warn!("could not set generated access keys: {e}"),
    }
}

/// The SIGTERM/SIGINT listeners, registered at startup.
struct Signals {
    #[cfg(unix)]
    streams: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    fn install() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let streams = match (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) {
                (Ok(t), Ok(i)) => Some((t, i)),
                _ => {
                    tracing::warn!("cannot install SIGTERM/SIGINT handlers");
                    None
                }
            };
            Signals { streams }
        }
        #[cfg(not(unix))]
        Signals {}
    }
}

/// Waits for SIGTERM or SIGINT; returns the `shutdown-on-sig*` flags that
/// apply to it and the signal's name.
async fn signal_shutdown(
    signals: &mut Signals,
    config: &Config,
) -> (crate::config::ShutdownFlags, &'static str) {
    #[cfg(unix)]
    {
        match &mut signals.streams {
            Some((t, i)) => {
                tokio::select! {
                    _ = t.recv() => (config.shutdown_on_sigterm(), "SIGTERM"),
                    _ = i.recv() => (config.shutdown_on_sigint(), "SIGINT"),
                }
            }
            None => std::future::pending().await,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = signals;
        let _ = tokio::signal::ctrl_c().await;
        (config.shutdown_on_sigint(), "SIGINT")
    }
}

/// Background eviction: when a command ran out of its eviction budget, or
/// CONFIG SET lowered `maxmemory`, keeps evicting in bounded steps (each
/// `perform_evictions` call is limited by `maxmemory-eviction-tenacity`),
/// yielding between steps so clients keep being served meanwhile.
async fn eviction_task(srv: Arc<Server>) {
    let mut rx = srv.shutdown_receiver();
    loop {
        let over =
            crate::server::eviction::over_maxmemory(&srv, crate::commands::dispatch::unix_ms());
        let pause = if over {
            Duration::from_millis(1)
        } else {
            Duration::from_millis(50)
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = rx.changed() => return,
        }
        if !over || crate::scripting::running() {
            continue;
        }
        let burst = Instant::now();
        while burst.elapsed() < Duration::from_millis(5) {
            let now = crate::commands::dispatch::unix_ms();
            if eviction::perform_evictions(&srv, now) != eviction::Outcome::Running {
                break;
            }
            tokio::task::yield_now().await;
        }
    }
}

/// Keys removed per shard per pass before moving on (bounds lock hold time).
const EXPIRE_BATCH: usize = 200;
/// Entries a growing keyspace table moves per shard per pass
/// (`activerehashing`; about 100 µs).
const REHASH_BATCH: usize = 4000;

/// The active expiry cycle: `hz` times a second, removes due keys shard by
/// shard within a time budget (25% of the period, as Redis's slow cycle).
async fn active_expire_task(srv: Arc<Server>) {
    let mut rx = srv.shutdown_receiver();
    let mut last_soft_sweep = Instant::now();
    loop {
        let hz = srv.config.hz().clamp(1, 500);
        let period = Duration::from_millis(1000 / hz);
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = rx.changed() => return,
        }
        srv.sync_access_tracking();
        if srv.cron_paused.load(Ordering::Relaxed) {
            continue;
        }
        // Soft output limits of clients no new message reaches (four
        // times a second, so a limit of N seconds closes within N + 0.25).
        if last_soft_sweep.elapsed() >= Duration::from_millis(250) {
            last_soft_sweep = Instant::now();
            pubsub::enforce_soft_limits(&srv);
        }
        srv.tracking.cron(&srv);
        // A running script holds every shard: skip this turn rather than
        // park the async worker on its locks.
        // CLIENT PAUSE keeps the dataset still: no active expiry meanwhile.
        // Nor while loading: an AOF replay counts nothing as expired.
        if !srv.active_expire.load(Ordering::Relaxed)
            || srv.persist.loading()
            || crate::storage::expiry_suspended()
            || crate::scripting::running()
            || pause::paused_until(crate::commands::dispatch::unix_ms())
        {
            continue;
        }
        if srv.repl.is_replica() {
            // A replica leaves expiry to its primary's DELs, but for the
            // keys its own clients wrote.
            replica::expire_own_keys(&srv, crate::commands::dispatch::unix_ms());
            continue;
        }
        let budget = period / 4;
        let start = Instant::now();
        let rehash = srv.config.activerehashing();
        let ks = &srv.keyspace;
        'cycle: for db in 0..ks.num_dbs() {
            let Some(d) = ks.db(db) else { continue };
            for shard in d.shards() {
                loop {
                    let now = crate::commands::dispatch::unix_ms();
                    let Some(mut guard) = crate::commands::ctx::lock_unless_busy(shard) else {
                        break 'cycle;
                    };
                    let (removed, values) = guard.expire_due(now, EXPIRE_BATCH);
                    if rehash {
                        guard.grow_step(REHASH_BATCH);
                    }
                    if srv.feed.active() {
                        // Under the shard lock, so the DEL is ordered with
                        // the key's other writes.
                        for key in &removed {
                            srv.feed
                                .emit_one(db, vec![bytes::Bytes::from_static(b"DEL"), key.clone()]);
                        }
                    }
                    drop(guard);
                    // Outside the shard lock (see Shard::expire_due).
                    values
                        .into_iter()
                        .for_each(crate::storage::lazyfree::free_expired);
                    for key in &removed {
                        srv.notify_keyspace(db, crate::config::notify::EXPIRED, "expired", key);
                    }
                    if srv.tracking.in_use() {
                        // BCAST keys are sent once for the whole cycle.
                        let keys = tracking::take_modified();
                        srv.tracking.invalidate(&srv, &keys, None);
                    }
                    if removed.len() < EXPIRE_BATCH {
                        break;
                    }
                    if start.elapsed() > budget {
                        break 'cycle;
                    }
                }
            }
        }
        if srv.tracking.in_use() {
            srv.tracking.broadcast(&srv, None);
        }
        srv.latency.add_if_needed(
            srv.config.latency_monitor_threshold(),
            "expire-cycle",
            start.elapsed().as_millis() as u64,
        );
    }
}
