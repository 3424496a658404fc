//! CLUSTER: Cinnabar runs as a standalone server, like redis-server with
//! `cluster-enabled no`. The command exists (with Redis 7.0's subcommands,
//! arities and flags, so COMMAND INFO, ACL categories and scripts see what
//! Redis shows: CLUSTER RESET is refused inside scripts) and every
//! subcommand answers Redis's "cluster support disabled" error, which is
//! how clients detect a non-cluster server.

use bytes::Bytes;

use crate::commands::ctx::Ctx;
use crate::commands::spec::{cmd, container, CmdFlags as F, CommandSpec};
use crate::protocol::{CmdError, CmdResult};

/// The CLUSTER container and the connection commands of cluster clients
/// (ASKING, READONLY, READWRITE), which a standalone Redis also answers
/// with "cluster support disabled".
pub const SPECS: &[CommandSpec] = &[
    container("cluster", SUBS).doc("cluster", "3.0.0", "A container for cluster commands"),
    cmd("asking", 1, F::FAST, disabled).acl(CONN).doc(
        "cluster",
        "3.0.0",
        "Sent by cluster clients after an -ASK redirect",
    ),
    cmd(
        "readonly",
        1,
        F::FAST.union(F::LOADING).union(F::STALE),
        disabled,
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
        disabled,
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

/// What every CLUSTER subcommand answers without cluster mode.
fn disabled(_ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    Err(CmdError::err("This instance has cluster support disabled"))
}

const SUBS: &[CommandSpec] = &[
    cmd(
        "addslots",
        -3,
        F::NO_ASYNC_LOADING.union(F::ADMIN).union(F::STALE),
        disabled,
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
        disabled,
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
        disabled,
    )
    .doc("cluster", "3.0.0", "Advance the cluster config epoch"),
    cmd(
        "count-failure-reports",
        3,
        F::ADMIN.union(F::STALE),
        disabled,
    )
    .doc(
        "cluster",
        "3.0.0",
        "Return the number of failure reports active for a given node",
    ),
    cmd("countkeysinslot", 3, F::STALE, disabled).doc(
        "cluster",
        "3.0.0",
        "Return the number of local keys in the specified hash slot",
    ),
    cmd(
        "delslots",
        -3,
        F::NO_ASYNC_LOADING.union(F::ADMIN).union(F::STALE),
        disabled,
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
        disabled,
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
        disabled,
    )
    .doc("cluster", "3.0.0", "Delete a node's own slots information"),
    cmd(
        "forget",
        3,
        F::NO_ASYNC_LOADING.union(F::ADMIN).union(F::STALE),
        disabled,
    )
    .doc("cluster", "3.0.0", "Remove a node from the nodes table"),
    cmd("getkeysinslot", 4, F::STALE, disabled).doc(
        "cluster",
        "3.0.0",
        "Return local key names in the specified hash slot",
    ),
    cmd("help", 2, F::LOADING.union(F::STALE), disabled).doc(
        "cluster",
        "5.0.0",
        "Show helpful text about the different subcommands",
    ),
    cmd("info", 2, F::STALE, disabled).doc(
        "cluster",
        "3.0.0",
        "Provides info about Redis Cluster node state",
    ),
    cmd("keyslot", 3, F::STALE, disabled).doc(
        "cluster",
        "3.0.0",
        "Returns the hash slot of the specified key",
    ),
    cmd("links", 2, F::STALE, disabled).doc(
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
    cmd("myid", 2, F::STALE, disabled).doc("cluster", "3.0.0", "Return the node id"),
    cmd("nodes", 2, F::STALE, disabled).doc("cluster", "3.0.0", "Get Cluster config for the node"),
    cmd("replicas", 3, F::ADMIN.union(F::STALE), disabled).doc(
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
        disabled,
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
    cmd("shards", 2, F::STALE, disabled).doc(
        "cluster",
        "7.0.0",
        "Get array of cluster slots to node mappings",
    ),
    cmd("slaves", 3, F::ADMIN.union(F::STALE), disabled).doc(
        "cluster",
        "3.0.0",
        "List replica nodes of the specified master node",
    ),
    cmd("slots", 2, F::STALE, disabled).doc(
        "cluster",
        "3.0.0",
        "Get array of Cluster slot to node mappings",
    ),
];
