//! Cluster mode (`cluster-enabled yes`) with a static topology.
//!
//! A Redis Cluster node learns its peers and their slots over the cluster
//! bus (gossip, failover). Cinnabar's bus carries only PUBLISH
//! (`cluster_bus`); the topology is static, the one in
//! `cluster-config-file`, in Redis's nodes.conf format, which `cinnabar
//! cluster` writes for every node of a local cluster (each file names the
//! same nodes and slots; only the `myself` flag moves). A node started
//! without that file forms a one-node cluster that serves all 16384 slots,
//! what a small Azure Managed Redis cache with the OSS clustering policy
//! shows its clients.
//!
//! What clients meet is Redis's: keys are hashed to slots with CRC16 and
//! hash tags; a command whose keys live in another node's slots is answered
//! `-MOVED <slot> <ip>:<port>`, keys in several slots `-CROSSSLOT`, an
//! unserved slot `-CLUSTERDOWN`; CLUSTER SLOTS, SHARDS, NODES and INFO
//! describe the topology; SELECT, MOVE, SWAPDB and REPLICAOF are refused.
//! The slot table is read lock-free on every keyed command.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};

use parking_lot::{Mutex, RwLock};

use crate::config::{Config, EndpointType};
use crate::protocol::CmdError;

/// Hash slots in a Redis cluster.
pub const SLOTS: usize = 16384;

/// A slot no node serves.
const UNASSIGNED: u16 = u16::MAX;

static CRC16: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_XMODEM);

/// The hash slot of `key`: CRC16 of the key, or of its hash tag (the
/// bytes between the first `{` and the next `}`, when not empty).
pub fn key_slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        match rest.iter().position(|&b| b == b'}') {
            Some(0) | None => None,
            Some(close) => Some(&rest[..close]),
        }
    });
    CRC16.checksum(tagged.unwrap_or(key)) & (SLOTS as u16 - 1)
}

/// One node of the topology.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// 40 hex characters.
    pub id: String,
    pub ip: String,
    /// The port clients use (the TLS port when `tls-cluster yes`).
    pub port: u16,
    /// The plaintext port beside a TLS `port` (0: none).
    pub pport: u16,
    /// The cluster bus port (server/cluster_bus.rs: PUBLISH only).
    pub cport: u16,
    pub hostname: String,
    /// A replica: its primary's id.
    pub master: Option<String>,
    pub epoch: u64,
}

/// Why a command is not served here; see [`Cluster::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    CrossSlot,
    /// The slot and the index of the node that serves it.
    Moved(u16, usize),
    Unbound,
    Down,
    DownReadOnly,
}

impl Refusal {
    /// The error Redis answers (`tls`: the client's connection is TLS).
    pub fn error(&self, cluster: &Cluster, config: &Config, tls: bool) -> CmdError {
        match self {
            Refusal::CrossSlot => CROSSSLOT,
            Refusal::Unbound => CmdError::from_static("CLUSTERDOWN Hash slot not served"),
            Refusal::Down => CmdError::from_static("CLUSTERDOWN The cluster is down"),
            Refusal::DownReadOnly => CmdError::from_static(
                "CLUSTERDOWN The cluster is down and only accepts read commands",
            ),
            Refusal::Moved(slot, n) => {
                let nodes = cluster.nodes.read();
                let (endpoint, port) = nodes.get(*n).map_or((String::new(), 0), |node| {
                    (
                        cluster.endpoint(node, config).unwrap_or("?").to_string(),
                        cluster.client_port(node, tls),
                    )
                });
                CmdError::new(format!("MOVED {slot} {endpoint}:{port}"))
            }
        }
    }
}

/// The one slot of `keys` (`None` without keys), or
/// [`Refusal::CrossSlot`]. A key equal to the first is not hashed again.
pub fn single_slot<'k>(keys: impl IntoIterator<Item = &'k [u8]>) -> Result<Option<u16>, Refusal> {
    let mut first: Option<(&[u8], u16)> = None;
    for k in keys {
        match first {
            None => first = Some((k, key_slot(k))),
            Some((fk, slot)) => {
                if fk != k && key_slot(k) != slot {
                    return Err(Refusal::CrossSlot);
                }
            }
        }
    }
    Ok(first.map(|(_, slot)| slot))
}

/// SSUBSCRIBE, SUNSUBSCRIBE and SPUBLISH: their channels are routed like
/// keys, and served while the cluster is down per
/// `cluster-allow-pubsubshard-when-down`.
pub fn is_shard_pubsub(command: &str) -> bool {
    matches!(command, "ssubscribe" | "sunsubscribe" | "spublish")
}

/// Redis's cross-slot error.
pub const CROSSSLOT: CmdError =
    CmdError::from_static("CROSSSLOT Keys in request don't hash to the same slot");

/// The node's view of the cluster.
pub struct Cluster {
    /// `cluster-config-file`, rewritten when the topology changes.
    path: PathBuf,
    /// Every known node; the index is what [`Cluster::slots`] stores.
    nodes: RwLock<Vec<Node>>,
    myself: usize,
    /// Owner of each slot (a node index, or [`UNASSIGNED`]).
    slots: Box<[AtomicU16]>,
    /// Slots with an owner.
    assigned: AtomicUsize,
    current_epoch: AtomicU64,
    last_vote_epoch: AtomicU64,
    /// `tls-cluster`: node ports are TLS ports, `pport` the plaintext ones.
    tls_cluster: bool,
    /// Serializes rewrites of the file.
    saving: Mutex<()>,
    /// The ports the node listens on (for CONFIG SET cluster-announce-*).
    listening: (u16, u16),
}

/// A parsed nodes.conf.
struct Parsed {
    nodes: Vec<Node>,
    myself: usize,
    owners: Vec<(u16, usize)>,
    current_epoch: u64,
    last_vote_epoch: u64,
}

impl Cluster {
    /// Loads `cluster-config-file` (relative to `dir`, the working
    /// directory), or creates a one-node cluster serving every slot and
    /// writes the file. Errors name the file and the line.
    pub fn start(config: &Config, plain_port: u16, tls_port: u16) -> Result<Self, String> {
        if config.replicaof().is_some() {
            return Err("replicaof directive not allowed in cluster mode".into());
        }
        if config.cluster_policy() != crate::config::ClusterPolicy::None {
            return Err(
                "cluster-policy applies to a standalone server; it cannot be combined with cluster-enabled yes"
                    .into(),
            );
        }
        let path = PathBuf::from(config.cluster_config_file());
        let me = announced(config, plain_port, tls_port);
        let parsed = match std::fs::read_to_string(&path) {
            Ok(text) if !text.trim().is_empty() => {
                let mut p = parse(&text).map_err(|e| {
                    format!(
                        "Unrecoverable error: corrupted cluster config file \"{}\": {e}",
                        path.display()
                    )
                })?;
                // Announced settings win over what the file says of us.
                if let Some(n) = p.nodes.get_mut(p.myself) {
                    if config.cluster_announce_ip().is_some() || n.ip.is_empty() {
                        n.ip = me.ip.clone();
                    }
                    n.port = me.port;
                    n.pport = me.pport;
                    n.cport = me.cport;
                    n.hostname = me.hostname.clone();
                }
                p
            }
            Ok(_) => fresh(me),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => fresh(me),
            Err(e) => return Err(format!("Can't open {}: {e}", path.display())),
        };
        let c = Cluster {
            path,
            nodes: RwLock::new(parsed.nodes),
            myself: parsed.myself,
            slots: (0..SLOTS).map(|_| AtomicU16::new(UNASSIGNED)).collect(),
            assigned: AtomicUsize::new(0),
            current_epoch: AtomicU64::new(parsed.current_epoch),
            last_vote_epoch: AtomicU64::new(parsed.last_vote_epoch),
            tls_cluster: config.tls_cluster(),
            saving: Mutex::new(()),
            listening: (plain_port, tls_port),
        };
        for (slot, owner) in parsed.owners {
            c.assign(slot, owner);
        }
        c.save()
            .map_err(|e| format!("Can't write {}: {e}", c.path.display()))?;
        Ok(c)
    }

    /// CONFIG SET cluster-announce-*: this node's address as announced
    /// from now on (redirections, CLUSTER SLOTS/NODES, the file).
    pub fn reannounce(&self, config: &Config) {
        let me = announced(config, self.listening.0, self.listening.1);
        {
            let mut nodes = self.nodes.write();
            let n = &mut nodes[self.myself];
            n.ip = me.ip;
            n.port = me.port;
            n.pport = me.pport;
            n.cport = me.cport;
            n.hostname = me.hostname;
        }
        self.save_or_log();
    }

    fn assign(&self, slot: u16, owner: usize) {
        let prev = self.slots[slot as usize].swap(owner as u16, Ordering::Relaxed);
        if prev == UNASSIGNED {
            self.assigned.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The index of the node serving `slot`.
    pub fn owner(&self, slot: u16) -> Option<usize> {
        match self.slots.get(slot as usize)?.load(Ordering::Relaxed) {
            UNASSIGNED => None,
            n => Some(n as usize),
        }
    }

    pub fn myself(&self) -> usize {
        self.myself
    }

    pub fn my_id(&self) -> String {
        self.nodes.read()[self.myself].id.clone()
    }

    /// `cluster_state:ok`: every slot is served, or
    /// `cluster-require-full-coverage no`.
    pub fn state_ok(&self, config: &Config) -> bool {
        self.assigned.load(Ordering::Relaxed) == SLOTS || !config.cluster_require_full_coverage()
    }

    pub fn slots_assigned(&self) -> usize {
        self.assigned.load(Ordering::Relaxed)
    }

    /// Routes a request whose keys are `keys` (every key of a command, or
    /// of every command of a transaction): `Ok(Some(slot))` when this node
    /// serves them, `Ok(None)` without keys. `write`: the request writes;
    /// `shard_pubsub`: SSUBSCRIBE/SPUBLISH & co (their channels are keys).
    pub fn check<'k>(
        &self,
        config: &Config,
        keys: impl IntoIterator<Item = &'k [u8]>,
        write: bool,
        shard_pubsub: bool,
    ) -> Result<Option<u16>, Refusal> {
        let Some(slot) = single_slot(keys)? else {
            return Ok(None);
        };
        let Some(owner) = self.owner(slot) else {
            return Err(Refusal::Unbound);
        };
        if !self.state_ok(config) {
            if shard_pubsub {
                if !config.cluster_allow_pubsubshard_when_down() {
                    return Err(Refusal::Down);
                }
            } else if !config.cluster_allow_reads_when_down() {
                return Err(Refusal::Down);
            } else if write {
                return Err(Refusal::DownReadOnly);
            }
        }
        if owner != self.myself {
            return Err(Refusal::Moved(slot, owner));
        }
        Ok(Some(slot))
    }

    /// The endpoint clients are told for `node`
    /// (`cluster-preferred-endpoint-type`); `None` for unknown-endpoint.
    pub fn endpoint<'n>(&self, node: &'n Node, config: &Config) -> Option<&'n str> {
        match config.cluster_preferred_endpoint_type() {
            EndpointType::Ip => Some(&node.ip),
            EndpointType::Hostname if node.hostname.is_empty() => Some("?"),
            EndpointType::Hostname => Some(&node.hostname),
            EndpointType::Unknown => None,
        }
    }

    /// The port a client is told: the plaintext port to a plaintext client
    /// of a TLS cluster, when the node has one.
    pub fn client_port(&self, node: &Node, tls: bool) -> u16 {
        if self.tls_cluster && !tls && node.pport != 0 {
            node.pport
        } else {
            node.port
        }
    }

    pub fn tls_cluster(&self) -> bool {
        self.tls_cluster
    }

    /// The port the cluster bus listens on: `cluster-port`, else the
    /// node's own port (the TLS one in a TLS cluster or without a plain
    /// port) + 10000. `cluster-announce-bus-port` changes only what the
    /// other nodes are told (a NAT or container port mapping).
    /// `None` when that would pass 65535 (Redis refuses to start then).
    pub fn bus_port(&self, config: &Config) -> Option<u16> {
        if config.cluster_port() != 0 {
            return Some(config.cluster_port());
        }
        let (plain, tls) = self.listening;
        let port = if tls != 0 && (self.tls_cluster || plain == 0) {
            tls
        } else {
            plain
        };
        port.checked_add(10000)
    }

    /// A copy of the nodes (for replies).
    pub fn nodes(&self) -> Vec<Node> {
        self.nodes.read().clone()
    }

    pub fn current_epoch(&self) -> u64 {
        self.current_epoch.load(Ordering::Relaxed)
    }

    /// The slot ranges each node serves, by node index.
    pub fn ranges(&self) -> Vec<Vec<(u16, u16)>> {
        let mut out = vec![Vec::new(); self.nodes.read().len()];
        let mut slot = 0usize;
        while slot < SLOTS {
            let Some(owner) = self.owner(slot as u16) else {
                slot += 1;
                continue;
            };
            let start = slot;
            while slot + 1 < SLOTS && self.owner(slot as u16 + 1) == Some(owner) {
                slot += 1;
            }
            if let Some(v) = out.get_mut(owner) {
                v.push((start as u16, slot as u16));
            }
            slot += 1;
        }
        out
    }

    /// CLUSTER ADDSLOTS / ADDSLOTSRANGE: this node takes `slots`, none of
    /// which may have an owner.
    pub fn add_slots(&self, slots: &[u16]) -> Result<(), CmdError> {
        for &s in slots {
            if self.owner(s).is_some() {
                return Err(CmdError::err(format!("Slot {s} is already busy")));
            }
        }
        for &s in slots {
            self.assign(s, self.myself);
        }
        self.save_or_log();
        Ok(())
    }

    /// CLUSTER DELSLOTS / DELSLOTSRANGE: `slots` become unserved; each must
    /// have an owner.
    pub fn del_slots(&self, slots: &[u16]) -> Result<(), CmdError> {
        for &s in slots {
            if self.owner(s).is_none() {
                return Err(CmdError::err(format!("Slot {s} is already unassigned")));
            }
        }
        for &s in slots {
            if self.slots[s as usize].swap(UNASSIGNED, Ordering::Relaxed) != UNASSIGNED {
                self.assigned.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.save_or_log();
        Ok(())
    }

    /// CLUSTER FLUSHSLOTS: this node's slots become unserved.
    pub fn flush_my_slots(&self) {
        for s in 0..SLOTS as u16 {
            if self.owner(s) == Some(self.myself) {
                self.slots[s as usize].store(UNASSIGNED, Ordering::Relaxed);
                self.assigned.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.save_or_log();
    }

    fn save_or_log(&self) {
        if let Err(e) = self.save() {
            tracing::warn!(
                "Could not save the cluster configuration {}: {e}",
                self.path.display()
            );
        }
    }

    /// Writes the topology to `cluster-config-file` (temporary file,
    /// fsync, rename), as CLUSTER SAVECONFIG does.
    pub fn save(&self) -> std::io::Result<()> {
        let _g = self.saving.lock();
        let text = self.describe_for(true, true);
        write_atomically(&self.path, text.as_bytes())
    }

    /// CLUSTER BUMPEPOCH: unless this node's config epoch is already the
    /// greatest, it takes the next current epoch; whether it changed, and
    /// the epoch.
    pub fn bump_epoch(&self) -> (bool, u64) {
        let mut nodes = self.nodes.write();
        let mine = nodes[self.myself].epoch;
        let max = nodes
            .iter()
            .map(|n| n.epoch)
            .max()
            .unwrap_or(0)
            .max(self.current_epoch());
        if mine != 0 && mine == max {
            return (false, mine);
        }
        let next = self.current_epoch.fetch_add(1, Ordering::Relaxed) + 1;
        nodes[self.myself].epoch = next;
        drop(nodes);
        self.save_or_log();
        (true, next)
    }

    /// CLUSTER NODES (and the file, with `vars` when `file`); `tls`: the
    /// reader is a TLS client (a plaintext one of a TLS cluster is told
    /// the plaintext ports).
    pub fn describe_for(&self, file: bool, tls: bool) -> String {
        let nodes = self.nodes.read();
        let ranges = self.ranges();
        let mut out = String::new();
        for (i, n) in nodes.iter().enumerate() {
            out.push_str(&n.id);
            out.push(' ');
            out.push_str(&format!(
                "{}:{}@{}",
                n.ip,
                self.client_port(n, tls),
                n.cport
            ));
            if !n.hostname.is_empty() {
                out.push(',');
                out.push_str(&n.hostname);
            }
            out.push(' ');
            let role = if n.master.is_some() {
                "slave"
            } else {
                "master"
            };
            if i == self.myself {
                out.push_str("myself,");
            }
            out.push_str(role);
            out.push(' ');
            out.push_str(n.master.as_deref().unwrap_or("-"));
            out.push_str(&format!(" 0 0 {} connected", n.epoch));
            for &(a, b) in ranges.get(i).map(|v| v.as_slice()).unwrap_or(&[]) {
                if a == b {
                    out.push_str(&format!(" {a}"));
                } else {
                    out.push_str(&format!(" {a}-{b}"));
                }
            }
            out.push('\n');
        }
        if file {
            out.push_str(&format!(
                "vars currentEpoch {} lastVoteEpoch {}\n",
                self.current_epoch(),
                self.last_vote_epoch.load(Ordering::Relaxed)
            ));
        }
        out
    }
}

/// Whether `client` came in on the TLS port (for the port a redirection
/// names).
pub fn on_tls(srv: &crate::server::Server, client: &crate::connection::client::Client) -> bool {
    let tls = srv.config.tls_port();
    tls != 0
        && client
            .info
            .laddr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse::<u16>().ok())
            == Some(tls)
}

/// This node as its configuration announces it.
fn announced(config: &Config, plain_port: u16, tls_port: u16) -> Node {
    let ip = config.cluster_announce_ip().unwrap_or_else(|| {
        config
            .bind()
            .into_iter()
            .map(|b| b.trim_start_matches('-').to_string())
            .find(|b| {
                !matches!(
                    b.as_str(),
                    "*" | "0.0.0.0" | "::" | "::*" | "::1" | "localhost"
                )
            })
            .unwrap_or_else(|| "127.0.0.1".to_string())
    });
    let plain = if config.cluster_announce_port() != 0 {
        config.cluster_announce_port()
    } else {
        plain_port
    };
    let tls = if config.cluster_announce_tls_port() != 0 {
        config.cluster_announce_tls_port()
    } else {
        tls_port
    };
    // As Redis: the node's port is the TLS one in a TLS cluster (or when
    // there is no plaintext port at all).
    let (port, pport) = if tls != 0 && (config.tls_cluster() || plain == 0) {
        (tls, plain)
    } else {
        (plain, 0)
    };
    let cport = match (config.cluster_announce_bus_port(), config.cluster_port()) {
        (0, 0) => port.wrapping_add(10000),
        (0, p) => p,
        (p, _) => p,
    };
    Node {
        id: crate::server::replication::random_id(),
        ip,
        port,
        pport,
        cport,
        hostname: config.cluster_announce_hostname(),
        master: None,
        epoch: 0,
    }
}

/// A one-node cluster serving every slot.
fn fresh(me: Node) -> Parsed {
    Parsed {
        nodes: vec![me],
        myself: 0,
        owners: (0..SLOTS as u16).map(|s| (s, 0)).collect(),
        current_epoch: 0,
        last_vote_epoch: 0,
    }
}

/// Parses Redis's nodes.conf: `<id> <ip:port@cport[,hostname]> <flags>
/// <master|-> <ping> <pong> <epoch> <link> <slot|a-b|[migrating]>...`, one
/// node a line, and `vars currentEpoch N lastVoteEpoch M`.
fn parse(text: &str) -> Result<Parsed, String> {
    let mut nodes = Vec::new();
    let mut myself = None;
    let mut owners = Vec::new();
    let (mut current_epoch, mut last_vote_epoch) = (0, 0);
    for (lineno, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.is_empty() {
            continue;
        }
        let at = |what: &str| format!("line {}: {what}", lineno + 1);
        if f[0] == "vars" {
            for kv in f[1..].chunks(2) {
                let v = kv
                    .get(1)
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(|| at("bad vars"))?;
                match kv[0] {
                    "currentEpoch" => current_epoch = v,
                    "lastVoteEpoch" => last_vote_epoch = v,
                    _ => {}
                }
            }
            continue;
        }
        if f.len() < 8 {
            return Err(at("a node line needs at least 8 fields"));
        }
        if f[0].len() != 40 || !f[0].bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(at("the node id must be 40 hex characters"));
        }
        let (addr, hostname) = match f[1].split_once(',') {
            Some((a, h)) => (a, h.to_string()),
            None => (f[1], String::new()),
        };
        let (hostport, cport) = addr
            .split_once('@')
            .ok_or_else(|| at("address without @cport"))?;
        let (ip, port) = hostport
            .rsplit_once(':')
            .ok_or_else(|| at("address without a port"))?;
        let port: u16 = port.parse().map_err(|_| at("bad port"))?;
        // Redis 7 may append ",pport" style extensions after the cport.
        let cport: u16 = cport
            .split(',')
            .next()
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| at("bad cluster bus port"))?;
        let flags: Vec<&str> = f[2].split(',').collect();
        let index = nodes.len();
        if flags.contains(&"myself") {
            if myself.is_some() {
                return Err(at("two nodes are flagged myself"));
            }
            myself = Some(index);
        }
        let master = if flags.contains(&"slave") {
            Some(f[3].to_string())
        } else {
            None
        };
        let epoch: u64 = f[6].parse().map_err(|_| at("bad config epoch"))?;
        for s in &f[8..] {
            if s.starts_with('[') {
                continue;
            }
            let (a, b) = match s.split_once('-') {
                Some((a, b)) => (a, b),
                None => (*s, *s),
            };
            let (a, b): (u16, u16) = match (a.parse(), b.parse()) {
                (Ok(a), Ok(b)) if a <= b && (b as usize) < SLOTS => (a, b),
                _ => return Err(at(&format!("bad slot range '{s}'"))),
            };
            for slot in a..=b {
                owners.push((slot, index));
            }
        }
        if nodes.len() >= UNASSIGNED as usize {
            return Err(at("too many nodes"));
        }
        nodes.push(Node {
            id: f[0].to_lowercase(),
            ip: ip.to_string(),
            port,
            pport: 0,
            cport,
            hostname,
            master,
            epoch,
        });
    }
    let myself = myself.ok_or("no node is flagged myself")?;
    if nodes[myself].master.is_some() {
        return Err("this node is a replica; Cinnabar cluster nodes are primaries".into());
    }
    Ok(Parsed {
        nodes,
        myself,
        owners,
        current_epoch,
        last_vote_epoch,
    })
}

/// Writes `bytes` to `path` through a temporary file, fsyncs it and
/// renames it into place.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

/// The files of a local cluster of `shards` primaries on ports
/// `first_port..`, all on `ip`: one nodes.conf text per node, in port
/// order, each flagging its own node `myself`. Slots are split evenly, as
/// `redis-cli --cluster create` splits them.
pub fn local_cluster_files(ip: &str, first_port: u16, shards: u16) -> Vec<String> {
    let ids: Vec<String> = (0..shards)
        .map(|_| crate::server::replication::random_id())
        .collect();
    let per = SLOTS as f64 / f64::from(shards);
    let ranges: Vec<(u16, u16)> = (0..shards)
        .map(|i| {
            let a = (f64::from(i) * per).round() as u16;
            let b = ((f64::from(i + 1) * per).round() as u16).saturating_sub(1);
            (a, b)
        })
        .collect();
    (0..shards as usize)
        .map(|me| {
            let mut out = String::new();
            for (i, id) in ids.iter().enumerate() {
                let port = first_port + i as u16;
                let flags = if i == me { "myself,master" } else { "master" };
                let (a, b) = ranges[i];
                out.push_str(&format!(
                    "{id} {ip}:{port}@{} {flags} - 0 0 {} connected {a}-{b}\n",
                    port.wrapping_add(10000),
                    i + 1
                ));
            }
            out.push_str(&format!("vars currentEpoch {shards} lastVoteEpoch 0\n"));
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // Values from redis-cli CLUSTER KEYSLOT against Redis 7.0.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"));
        assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
        assert_eq!(key_slot(b""), 0);
    }

    #[test]
    fn nodes_conf_round_trips() {
        let files = local_cluster_files("127.0.0.1", 7000, 3);
        assert_eq!(files.len(), 3);
        let p = parse(&files[1]).expect("parse");
        assert_eq!(p.myself, 1);
        assert_eq!(p.nodes.len(), 3);
        assert_eq!(p.owners.len(), SLOTS);
        assert_eq!(p.current_epoch, 3);
        assert_eq!(p.nodes[2].port, 7002);
        assert_eq!(p.nodes[2].cport, 17002);
        assert!(files[0].contains(" 0-5460\n"));
        assert!(files[2].contains(" 10923-16383\n"));
        assert!(parse("abc 1.2.3.4:1@2 master - 0 0 0 connected").is_err());
        assert!(parse(&files[0].replace("myself,", "")).is_err());
    }
}
