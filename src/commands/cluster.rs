//! CLUSTER, ASKING, READONLY and READWRITE.
//!
//! Without `cluster-enabled yes` Cinnabar is a standalone server, as
//! redis-server is, and every CLUSTER subcommand answers Redis's "cluster
//! support disabled" error, which is how clients detect a non-cluster
//! server. In cluster mode (see [`crate::server::cluster`]) the read-only
//! subcommands describe the static topology; ADDSLOTS, DELSLOTS (and their
//! RANGE forms), FLUSHSLOTS, BUMPEPOCH and SAVECONFIG change or save this
//! node's view as Redis's do; the subcommands that need gossip and
//! elections (MEET, FORGET, REPLICATE, FAILOVER, SETSLOT, RESET,
//! SET-CONFIG-EPOCH) answer an error that says so. The bus Cinnabar has
//! carries only PUBLISH (server/cluster_bus.rs).

use bytes::Bytes;

use crate::commands::ctx::Ctx;
use crate::commands::spec::{cmd, container, CmdFlags as F, CommandSpec, LockScope};
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::server::cluster::{key_slot, Cluster, Node, SLOTS};

/// The CLUSTER container and the connection commands of cluster clients
/// (ASKING, READONLY, READWRITE), which a standalone Redis also answers
/// with "cluster support disabled".
pub const SPECS: &[CommandSpec] = &[
    container("cluster", SUBS).doc("cluster", "3.0.0", "A container for cluster commands"),
    cmd("asking", 1, F::FAST, client_flag).acl(CONN).doc(
        "cluster",
        "3.0.0",
        "Sent by cluster clients after an -ASK redirect",
    ),
    cmd(
        "readonly",
        1,
        F::FAST.union(F::LOADING).union(F::STALE),
        client_flag,
    )
    .acl(CONN)
    .doc(
        "cluster",
        "3.0.0",
        "Enables read queries for a connection to a cluster replica node",
    ),
    cmd(
        "readwrite",
        1,
        F::FAST.union(F::LOADING).union(F::STALE),
        client_flag,
    )
    .acl(CONN)
    .doc(
        "cluster",
        "3.0.0",
        "Disables read queries for a connection to a cluster replica node",
    ),
];

/// @connection.
const CONN: crate::commands::spec::Acl = crate::commands::spec::Acl::CONNECTION;

const DISABLED: CmdError = CmdError::from_static("ERR This instance has cluster support disabled");

/// The topology, or Redis's error without cluster mode.
fn cluster<'a>(ctx: &Ctx<'a>) -> CmdResult<&'a Cluster> {
    ctx.srv.cluster.get().ok_or(DISABLED)
}

/// What the subcommands that need gossip and elections answer.
fn disabled(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    cluster(ctx)?;
    let sub = String::from_utf8_lossy(argv.get(1).map_or(&b""[..], |a| &a[..])).to_uppercase();
    Err(CmdError::err(format!(
        "CLUSTER {sub} is not supported: Cinnabar's cluster topology is static (its cluster bus carries only PUBLISH); \
         change cluster-config-file and restart the node, or start the cluster with `cinnabar cluster`"
    )))
}

/// ASKING, READONLY, READWRITE: accepted in cluster mode. There are no
/// slots in migration and no replicas to read from, so the flags they set
/// in Redis change nothing here.
fn client_flag(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    cluster(ctx)?;
    Ok(Reply::OK)
}

fn parse_slot(a: &[u8]) -> CmdResult<u16> {
    std::str::from_utf8(a)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|s| (0..SLOTS as i64).contains(s))
        .map(|s| s as u16)
        .ok_or_else(|| CmdError::err("Invalid or out of range slot"))
}

fn parse_i64(a: &[u8]) -> CmdResult<i64> {
    std::str::from_utf8(a)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or(CmdError::NOT_INTEGER)
}

/// The slots of ADDSLOTS/DELSLOTS (`ranges`: the RANGE forms' pairs),
/// each at most once.
fn slot_args(argv: &[Bytes], ranges: bool) -> CmdResult<Vec<u16>> {
    let args = &argv[2..];
    if ranges && args.len() % 2 == 1 {
        return Err(CmdError::arity(&format!(
            "cluster|{}",
            String::from_utf8_lossy(&argv[1]).to_lowercase()
        )));
    }
    let mut out = Vec::new();
    if ranges {
        for pair in args.chunks(2) {
            let (a, b) = (parse_slot(&pair[0])?, parse_slot(&pair[1])?);
            if a > b {
                return Err(CmdError::err(format!(
                    "start slot number {a} is greater than end slot number {b}"
                )));
            }
            out.extend(a..=b);
        }
    } else {
        for a in args {
            out.push(parse_slot(a)?);
        }
    }
    let mut seen = vec![false; SLOTS];
    for &s in &out {
        if std::mem::replace(&mut seen[s as usize], true) {
            return Err(CmdError::err(format!("Slot {s} specified multiple times")));
        }
    }
    Ok(out)
}

fn addslots(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let c = cluster(ctx)?;
    let ranges = argv[1].eq_ignore_ascii_case(b"addslotsrange");
    c.add_slots(&slot_args(argv, ranges)?)?;
    Ok(Reply::OK)
}

fn delslots(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let c = cluster(ctx)?;
    let ranges = argv[1].eq_ignore_ascii_case(b"delslotsrange");
    c.del_slots(&slot_args(argv, ranges)?)?;
    Ok(Reply::OK)
}

fn flushslots(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    let c = cluster(ctx)?;
    let now = ctx.now;
    let mut any = false;
    for sh in ctx.db_shards() {
        sh.for_each_key(now, |_| any = true);
    }
    if any {
        return Err(CmdError::err(
            "DB must be empty to perform CLUSTER FLUSHSLOTS.",
        ));
    }
    c.flush_my_slots();
    Ok(Reply::OK)
}

fn bumpepoch(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    let c = cluster(ctx)?;
    let (bumped, epoch) = c.bump_epoch();
    Ok(Reply::StatusOwned(format!(
        "{} {epoch}",
        if bumped { "BUMPED" } else { "STILL" }
    )))
}

fn saveconfig(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    let c = cluster(ctx)?;
    c.save()
        .map_err(|e| CmdError::err(format!("error saving the cluster node config: {e}")))?;
    Ok(Reply::OK)
}

fn txt(s: String) -> Reply {
    Reply::Verbatim(*b"txt", Bytes::from(s))
}

fn info(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    let c = cluster(ctx)?;
    let nodes = c.nodes();
    let assigned = c.slots_assigned();
    let size = c.ranges().iter().filter(|r| !r.is_empty()).count();
    let ok = c.state_ok(&ctx.srv.config);
    // The bus carries only PUBLISH; Redis lists a message type once its
    // count is not zero.
    let (sent, received, dropped) = ctx
        .srv
        .bus
        .get()
        .map_or((0, 0, 0), |b| (b.sent(), b.received(), b.dropped()));
    let line = |name: &str, n: u64| {
        if n > 0 {
            format!("{name}:{n}\r\n")
        } else {
            String::new()
        }
    };
    Ok(txt(format!(
        "cluster_state:{}\r\ncluster_slots_assigned:{assigned}\r\ncluster_slots_ok:{assigned}\r\n\
         cluster_slots_pfail:0\r\ncluster_slots_fail:0\r\ncluster_known_nodes:{}\r\n\
         cluster_size:{size}\r\ncluster_current_epoch:{}\r\ncluster_my_epoch:{}\r\n\
         {}cluster_stats_messages_sent:{sent}\r\n{}cluster_stats_messages_received:{received}\r\n\
         total_cluster_links_buffer_limit_exceeded:0\r\n{}",
        if ok { "ok" } else { "fail" },
        nodes.len(),
        c.current_epoch(),
        nodes.get(c.myself()).map_or(0, |n| n.epoch),
        line("cluster_stats_messages_publish_sent", sent),
        line("cluster_stats_messages_publish_received", received),
        line("cinnabar_cluster_publish_dropped", dropped),
    )))
}

fn myid(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    Ok(Reply::bulk(Bytes::from(cluster(ctx)?.my_id())))
}

fn nodes(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    let c = cluster(ctx)?;
    let tls = crate::server::cluster::on_tls(ctx.srv, ctx.client);
    Ok(txt(c.describe_for(false, tls)))
}

/// One node of CLUSTER SLOTS: endpoint, port, id, and a map of the
/// networking metadata that is not the endpoint.
fn slots_node(ctx: &Ctx<'_>, c: &Cluster, n: &Node, tls: bool) -> Reply {
    use crate::config::EndpointType;
    let kind = ctx.srv.config.cluster_preferred_endpoint_type();
    let endpoint = match c.endpoint(n, &ctx.srv.config) {
        Some(e) => Reply::bulk(Bytes::from(e.to_string())),
        None => Reply::Null,
    };
    let mut meta = Vec::new();
    if kind != EndpointType::Ip {
        meta.push((
            Reply::bulk(Bytes::from_static(b"ip")),
            Reply::bulk(Bytes::from(n.ip.clone())),
        ));
    }
    if kind != EndpointType::Hostname && !n.hostname.is_empty() {
        meta.push((
            Reply::bulk(Bytes::from_static(b"hostname")),
            Reply::bulk(Bytes::from(n.hostname.clone())),
        ));
    }
    Reply::Array(vec![
        endpoint,
        Reply::Int(i64::from(c.client_port(n, tls))),
        Reply::bulk(Bytes::from(n.id.clone())),
        Reply::Map(meta),
    ])
}

fn slots(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    let c = cluster(ctx)?;
    let tls = crate::server::cluster::on_tls(ctx.srv, ctx.client);
    let nodes = c.nodes();
    let mut rows: Vec<(u16, u16, usize)> = c
        .ranges()
        .into_iter()
        .enumerate()
        .flat_map(|(i, r)| r.into_iter().map(move |(a, b)| (a, b, i)))
        .collect();
    rows.sort_unstable();
    let mut out = Vec::with_capacity(rows.len());
    for (a, b, i) in rows {
        let mut row = vec![Reply::Int(i64::from(a)), Reply::Int(i64::from(b))];
        if let Some(n) = nodes.get(i) {
            row.push(slots_node(ctx, c, n, tls));
            for r in nodes
                .iter()
                .filter(|r| r.master.as_deref() == Some(n.id.as_str()))
            {
                row.push(slots_node(ctx, c, r, tls));
            }
        }
        out.push(Reply::Array(row));
    }
    Ok(Reply::Array(out))
}

/// One node of CLUSTER SHARDS.
fn shard_node(ctx: &Ctx<'_>, c: &Cluster, n: &Node, myself: bool) -> Reply {
    let s = |v: &str| Reply::bulk(Bytes::from(v.to_string()));
    let (plain, tls) = if c.tls_cluster() {
        (n.pport, n.port)
    } else {
        (n.port, 0)
    };
    let mut m = vec![(s("id"), s(&n.id))];
    if plain != 0 {
        m.push((s("port"), Reply::Int(i64::from(plain))));
    }
    if tls != 0 {
        m.push((s("tls-port"), Reply::Int(i64::from(tls))));
    }
    m.push((s("ip"), s(&n.ip)));
    m.push((
        s("endpoint"),
        s(c.endpoint(n, &ctx.srv.config).unwrap_or("?")),
    ));
    if !n.hostname.is_empty() {
        m.push((s("hostname"), s(&n.hostname)));
    }
    let replica = n.master.is_some();
    m.push((s("role"), s(if replica { "replica" } else { "master" })));
    let offset = if myself {
        ctx.srv.repl.offset(ctx.srv) as i64
    } else {
        0
    };
    m.push((s("replication-offset"), Reply::Int(offset)));
    m.push((
        s("health"),
        s(if replica && offset == 0 {
            "loading"
        } else {
            "online"
        }),
    ));
    Reply::Map(m)
}

fn shards(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    let c = cluster(ctx)?;
    let nodes = c.nodes();
    let ranges = c.ranges();
    let mut out = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        if n.master.is_some() {
            continue;
        }
        let mut slots = Vec::new();
        for &(a, b) in ranges.get(i).map(|v| v.as_slice()).unwrap_or(&[]) {
            slots.push(Reply::Int(i64::from(a)));
            slots.push(Reply::Int(i64::from(b)));
        }
        let mut members = vec![shard_node(ctx, c, n, i == c.myself())];
        for (j, r) in nodes.iter().enumerate() {
            if r.master.as_deref() == Some(n.id.as_str()) {
                members.push(shard_node(ctx, c, r, j == c.myself()));
            }
        }
        out.push(Reply::Map(vec![
            (
                Reply::bulk(Bytes::from_static(b"slots")),
                Reply::Array(slots),
            ),
            (
                Reply::bulk(Bytes::from_static(b"nodes")),
                Reply::Array(members),
            ),
        ]));
    }
    Ok(Reply::Array(out))
}

fn keyslot(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    cluster(ctx)?;
    Ok(Reply::Int(i64::from(key_slot(&argv[2]))))
}

fn countkeysinslot(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    cluster(ctx)?;
    let slot = parse_i64(&argv[2])?;
    if !(0..SLOTS as i64).contains(&slot) {
        return Err(CmdError::err("Invalid slot"));
    }
    let now = ctx.now;
    let mut n = 0i64;
    for sh in ctx.db_shards() {
        sh.for_each_key(now, |k| {
            if i64::from(key_slot(k)) == slot {
                n += 1;
            }
        });
    }
    Ok(Reply::Int(n))
}

fn getkeysinslot(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    cluster(ctx)?;
    let slot = parse_i64(&argv[2])?;
    let max = parse_i64(&argv[3])?;
    if !(0..SLOTS as i64).contains(&slot) || max < 0 {
        return Err(CmdError::err("Invalid slot or number of keys"));
    }
    let now = ctx.now;
    let mut out = Vec::new();
    for sh in ctx.db_shards() {
        sh.for_each_key(now, |k| {
            if (out.len() as i64) < max && i64::from(key_slot(k)) == slot {
                out.push(Reply::bulk_copy(k));
            }
        });
    }
    Ok(Reply::Array(out))
}

/// The node named by a subcommand's argument, or Redis's error.
fn node_arg(c: &Cluster, id: &[u8]) -> CmdResult<(usize, Node)> {
    let id_s = String::from_utf8_lossy(id);
    c.nodes()
        .into_iter()
        .enumerate()
        .find(|(_, n)| n.id.as_bytes() == id)
        .ok_or_else(|| CmdError::err(format!("Unknown node {id_s}")))
}

fn replicas(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let c = cluster(ctx)?;
    let (_, n) = node_arg(c, &argv[2])?;
    if n.master.is_some() {
        return Err(CmdError::err("The specified node is not a master"));
    }
    let tls = crate::server::cluster::on_tls(ctx.srv, ctx.client);
    let text = c.describe_for(false, tls);
    let ids: Vec<String> = c
        .nodes()
        .into_iter()
        .filter(|r| r.master.as_deref() == Some(n.id.as_str()))
        .map(|r| r.id)
        .collect();
    Ok(Reply::Array(
        text.lines()
            .filter(|l| ids.iter().any(|id| l.starts_with(id.as_str())))
            .map(|l| Reply::bulk(Bytes::from(l.to_string())))
            .collect(),
    ))
}

fn count_failure_reports(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let c = cluster(ctx)?;
    node_arg(c, &argv[2])?;
    // No failure detection: no node reports another as failing.
    Ok(Reply::Int(0))
}

/// The bus links up now (server/cluster_bus.rs), in Redis's fields.
fn links(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    cluster(ctx)?;
    let links = ctx.srv.bus.get().map(|b| b.links()).unwrap_or_default();
    let field = |k: &'static str, v: Reply| (Reply::bulk(Bytes::from_static(k.as_bytes())), v);
    Ok(Reply::Array(
        links
            .into_iter()
            .map(|l| {
                let events = if l.direction == "to" && l.queued > 0 {
                    "rw"
                } else {
                    "r"
                };
                Reply::Map(vec![
                    field(
                        "direction",
                        Reply::bulk(Bytes::from_static(l.direction.as_bytes())),
                    ),
                    field("node", Reply::bulk(Bytes::from(l.node))),
                    field("create-time", Reply::Int(l.create_time as i64)),
                    field("events", Reply::bulk(Bytes::from_static(events.as_bytes()))),
                    field("send-buffer-allocated", Reply::Int(l.queued as i64)),
                    field("send-buffer-used", Reply::Int(l.queued as i64)),
                ])
            })
            .collect(),
    ))
}

const HELP: &[&str] = &[
    "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ADDSLOTS <slot> [<slot> ...]",
    "    Assign slots to current node.",
    "ADDSLOTSRANGE <start slot> <end slot> [<start slot> <end slot> ...]",
    "    Assign slots which are between <start-slot> and <end-slot> to current node.",
    "BUMPEPOCH",
    "    Advance the cluster config epoch.",
    "COUNT-FAILURE-REPORTS <node-id>",
    "    Return number of failure reports for <node-id>.",
    "COUNTKEYSINSLOT <slot>",
    "    Return the number of keys in <slot>.",
    "DELSLOTS <slot> [<slot> ...]",
    "    Delete slots information from current node.",
    "DELSLOTSRANGE <start slot> <end slot> [<start slot> <end slot> ...]",
    "    Delete slots information which are between <start-slot> and <end-slot> from current node.",
    "FLUSHSLOTS",
    "    Delete current node own slots information.",
    "GETKEYSINSLOT <slot> <count>",
    "    Return key names stored by current node in a slot.",
    "INFO",
    "    Return information about the cluster.",
    "KEYSLOT <key>",
    "    Return the hash slot for <key>.",
    "LINKS",
    "    Return information about all network links between this node and its peers.",
    "    Output format is an array where each array element is a map containing attributes of a link",
    "MYID",
    "    Return the node id.",
    "NODES",
    "    Return cluster configuration seen by node. Output format:",
    "    <id> <ip:port> <flags> <master> <pings> <pongs> <epoch> <link> <slot> ...",
    "REPLICAS <node-id>",
    "    Return <node-id> replicas.",
    "SAVECONFIG",
    "    Force saving cluster configuration on disk.",
    "SHARDS",
    "    Return information about slot range mappings and the nodes associated with them.",
    "SLOTS",
    "    Return information about slots range mappings. Each range is made of:",
    "    start, end, master and replicas IP addresses, ports and ids",
    "(MEET, FORGET, REPLICATE, FAILOVER, SETSLOT, RESET and SET-CONFIG-EPOCH need",
    "gossip and elections: Cinnabar's topology is static.)",
    "HELP",
    "    Print this help.",
];

fn help(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    cluster(ctx)?;
    Ok(Reply::Array(
        HELP.iter()
            .map(|l| Reply::StatusOwned((*l).to_string()))
            .collect(),
    ))
}

const SUBS: &[CommandSpec] = &[
    cmd(
        "addslots",
        -3,
        F::NO_ASYNC_LOADING.union(F::ADMIN).union(F::STALE),
        addslots,
    )
    .doc(
        "cluster",
        "3.0.0",
        "Assign new hash slots to receiving node",
    ),
    cmd(
        "addslotsrange",
        -4,
        F::NO_ASYNC_LOADING.union(F::ADMIN).union(F::STALE),
        addslots,
    )
    .doc(
        "cluster",
        "7.0.0",
        "Assign new hash slots to receiving node",
    ),
    cmd(
        "bumpepoch",
        2,
        F::NO_ASYNC_LOADING.union(F::ADMIN).union(F::STALE),
        bumpepoch,
    )
    .doc("cluster", "3.0.0", "Advance the cluster config epoch"),
    cmd(
        "count-failure-reports",
        3,
        F::ADMIN.union(F::STALE),
        count_failure_reports,
    )
    .doc(
        "cluster",
        "3.0.0",
        "Return the number of failure reports active for a given node",
    ),
    cmd("countkeysinslot", 3, F::STALE, countkeysinslot)
        .lock(LockScope::Db)
        .doc(
            "cluster",
            "3.0.0",
            "Return the number of local keys in the specified hash slot",
        ),
    cmd(
        "delslots",
        -3,
        F::NO_ASYNC_LOADING.union(F::ADMIN).union(F::STALE),
        delslots,
    )
    .doc(
        "cluster",
        "3.0.0",
        "Set hash slots as unbound in receiving node",
    ),
    cmd(
        "delslotsrange",
        -4,
        F::NO_ASYNC_LOADING.union(F::ADMIN).union(F::STALE),
        delslots,
    )
    .doc(
        "cluster",
        "7.0.0",
        "Set hash slots as unbound in receiving node",
    ),
    cmd(
        "failover",
        -2,
        F::NO_ASYNC_LOADING.union(F::ADMIN).union(F::STALE),
        disabled,
    )
    .doc(
        "cluster",
        "3.0.0",
        "Forces a replica to perform a manual failover of its master.",
    ),
    cmd(
        "flushslots",
        2,
        F::NO_ASYNC_LOADING.union(F::ADMIN).union(F::STALE),
        flushslots,
    )
    .lock(LockScope::Db)
    .doc("cluster", "3.0.0", "Delete a node's own slots information"),
    cmd(
        "forget",
        3,
        F::NO_ASYNC_LOADING.union(F::ADMIN).union(F::STALE),
        disabled,
    )
    .doc("cluster", "3.0.0", "Remove a node from the nodes table"),
    cmd("getkeysinslot", 4, F::STALE, getkeysinslot)
        .lock(LockScope::Db)
        .doc(
            "cluster",
            "3.0.0",
            "Return local key names in the specified hash slot",
        ),
    cmd("help", 2, F::LOADING.union(F::STALE), help).doc(
        "cluster",
        "5.0.0",
        "Show helpful text about the different subcommands",
    ),
    cmd("info", 2, F::STALE, info).doc(
        "cluster",
        "3.0.0",
        "Provides info about Redis Cluster node state",
    ),
    cmd("keyslot", 3, F::STALE, keyslot).doc(
        "cluster",
        "3.0.0",
        "Returns the hash slot of the specified key",
    ),
    cmd("links", 2, F::STALE, links).doc(
        "cluster",
        "7.0.0",
        "Returns a list of all TCP links to and from peer nodes in cluster",
    ),
    cmd(
        "meet",
        -4,
        F::NO_ASYNC_LOADING.union(F::ADMIN).union(F::STALE),
        disabled,
    )
    .doc(
        "cluster",
        "3.0.0",
        "Force a node cluster to handshake with another node",
    ),
    cmd("myid", 2, F::STALE, myid).doc("cluster", "3.0.0", "Return the node id"),
    cmd("nodes", 2, F::STALE, nodes).doc("cluster", "3.0.0", "Get Cluster config for the node"),
    cmd("replicas", 3, F::ADMIN.union(F::STALE), replicas).doc(
        "cluster",
        "5.0.0",
        "List replica nodes of the specified master node",
    ),
    cmd(
        "replicate",
        3,
        F::NO_ASYNC_LOADING.union(F::ADMIN).union(F::STALE),
        disabled,
    )
    .doc(
        "cluster",
        "3.0.0",
        "Reconfigure a node as a replica of the specified master node",
    ),
    cmd(
        "reset",
        -2,
        F::ADMIN.union(F::STALE).union(F::NOSCRIPT),
        disabled,
    )
    .doc("cluster", "3.0.0", "Reset a Redis Cluster node"),
    cmd(
        "saveconfig",
        2,
        F::NO_ASYNC_LOADING.union(F::ADMIN).union(F::STALE),
        saveconfig,
    )
    .doc(
        "cluster",
        "3.0.0",
        "Forces the node to save cluster state on disk",
    ),
    cmd(
        "set-config-epoch",
        3,
        F::NO_ASYNC_LOADING.union(F::ADMIN).union(F::STALE),
        disabled,
    )
    .doc(
        "cluster",
        "3.0.0",
        "Set the configuration epoch in a new node",
    ),
    cmd(
        "setslot",
        -4,
        F::NO_ASYNC_LOADING.union(F::ADMIN).union(F::STALE),
        disabled,
    )
    .doc("cluster", "3.0.0", "Bind a hash slot to a specific node"),
    cmd("shards", 2, F::STALE, shards).doc(
        "cluster",
        "7.0.0",
        "Get array of cluster slots to node mappings",
    ),
    cmd("slaves", 3, F::ADMIN.union(F::STALE), replicas).doc(
        "cluster",
        "3.0.0",
        "List replica nodes of the specified master node",
    ),
    cmd("slots", 2, F::STALE, slots).doc(
        "cluster",
        "3.0.0",
        "Get array of Cluster slot to node mappings",
    ),
];
