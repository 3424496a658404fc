//! Replication commands: SYNC PSYNC REPLCONF ROLE WAIT (the primary's
//! side, `server::replication`) and REPLICAOF / SLAVEOF (the replica's
//! side, `server::replica`).

use std::sync::atomic::Ordering;

use bytes::Bytes;

use crate::commands::ctx::Ctx;
use crate::commands::spec::{cmd, Acl, CmdFlags as F, CommandSpec};
use crate::protocol::args::eq_ic;
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::server::replication::{LinkState, MasterAddr, MasterLinkState, SyncRequest};

/// SYNC and PSYNC: admin, refused in scripts, in MULTI and while loading
/// asynchronously.
const SYNCF: F = F::ADMIN
    .union(F::NOSCRIPT)
    .union(F::NO_MULTI)
    .union(F::NO_ASYNC_LOADING);

/// REPLICAOF and SLAVEOF: admin, refused in scripts, allowed while the
/// link is down.
const REPLICAOF_F: F = F::ADMIN
    .union(F::NOSCRIPT)
    .union(F::STALE)
    .union(F::NO_ASYNC_LOADING);

pub const SPECS: &[CommandSpec] = &[
    cmd("sync", 1, SYNCF, sync)
        .acl(Acl::ADMIN.union(Acl::DANGEROUS))
        .doc("server", "1.0.0", "An internal command used in replication."),
    cmd("psync", -3, SYNCF, psync)
        .acl(Acl::ADMIN.union(Acl::DANGEROUS))
        .doc("server", "2.8.0", "An internal command used in replication."),
    cmd(
        "replconf",
        -1,
        F::ADMIN
            .union(F::NOSCRIPT)
            .union(F::LOADING)
            .union(F::STALE)
            .union(F::ALLOW_BUSY),
        replconf,
    )
    .acl(Acl::ADMIN.union(Acl::DANGEROUS))
    .doc(
        "server",
        "3.0.0",
        "An internal command for configuring the replication stream.",
    ),
    cmd("replicaof", 3, REPLICAOF_F, replicaof)
        .acl(Acl::ADMIN.union(Acl::DANGEROUS))
        .doc(
            "server",
            "5.0.0",
            "Configures a server as replica of another, or promotes it to a master.",
        ),
    cmd("slaveof", 3, REPLICAOF_F, replicaof)
        .acl(Acl::ADMIN.union(Acl::DANGEROUS))
        .doc(
            "server",
            "1.0.0",
            "Sets a Redis server as a replica of another, or promotes it to being a master.",
        ),
    cmd(
        "failover",
        -1,
        F::ADMIN.union(F::NOSCRIPT).union(F::STALE),
        failover,
    )
    .acl(Acl::ADMIN.union(Acl::DANGEROUS))
    .doc(
        "server",
        "6.2.0",
        "Starts a coordinated failover from a server to one of its replicas.",
    ),
    cmd(
        "role",
        1,
        F::NOSCRIPT.union(F::LOADING).union(F::STALE).union(F::FAST),
        role,
    )
    .acl(Acl::ADMIN.union(Acl::DANGEROUS))
    .doc("server", "2.8.12", "Returns the replication role."),
    cmd("wait", 3, F::NOSCRIPT, wait)
        .acl(Acl::CONNECTION)
        .doc(
            "generic",
            "3.0.0",
            "Wait for the synchronous replication of all the write commands sent in the context of the current connection",
        ),
];

/// ```text
/// SYNC
/// ```
/// The pre-PSYNC full resync: the RDB, then the stream (no
/// `+FULLRESYNC` line). The connection becomes a replica link.
fn sync(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    start_sync(ctx, None)
}

/// ```text
/// PSYNC replicationid offset
/// ```
/// `+CONTINUE` when the backlog holds the stream from `offset` of our
/// replication id, `+FULLRESYNC` otherwise (`PSYNC ? -1` asks for that).
fn psync(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let Some(off) = crate::protocol::codec::parse_i64(&argv[2]) else {
        let ip = ctx
            .client
            .repl_ip
            .clone()
            .unwrap_or_else(|| crate::server::replication::host_of(&ctx.client.info.addr));
        tracing::warn!(
            "Replica {} asks for synchronization but with a wrong offset",
            crate::server::replication::replica_name(&ip, ctx.client.repl_port)
        );
        return Err(CmdError::NOT_INTEGER);
    };
    // `PSYNC <replid> <offset> FAILOVER`: our primary hands over (its
    // FAILOVER found us caught up): we become the primary, then answer
    // its PSYNC as any other.
    if argv.len() > 3 && eq_ic(&argv[3], "failover") {
        tracing::warn!(
            "Failover request received for replid {}.",
            String::from_utf8_lossy(&argv[1])
        );
        if !ctx.srv.repl.is_replica() {
            return Err(CmdError::err("PSYNC FAILOVER can't be sent to a master."));
        }
        if argv[1].as_ref() != ctx.srv.repl.replid().as_bytes() {
            return Err(CmdError::err("PSYNC FAILOVER replid must match my replid."));
        }
        if crate::server::replica::promote(ctx.srv) {
            ctx.srv.config.set_replicaof(None);
        }
        tracing::info!(
            "MASTER MODE enabled (failover request from '{}')",
            ctx.client.info.addr
        );
    }
    start_sync(ctx, Some((argv[1].clone(), off)))
}

fn start_sync(ctx: &mut Ctx<'_>, psync: Option<(Bytes, i64)>) -> CmdResult {
    if ctx.client.info.replica.load(Ordering::Relaxed) {
        // Already a replica link: ignored, as Redis does.
        return Ok(Reply::Raw(Bytes::new()));
    }
    if ctx.srv.repl.failing_over() {
        return Err(CmdError::from_static(
            "NOMASTERLINK Can't SYNC while failing over",
        ));
    }
    if ctx.srv.repl.is_replica() && !ctx.srv.repl.master_link_up() {
        return Err(CmdError::from_static(
            "NOMASTERLINK Can't SYNC while not connected with my master",
        ));
    }
    ctx.client.sync = Some(SyncRequest {
        psync,
        listening_port: ctx.client.repl_port,
        announced_ip: ctx.client.repl_ip.clone(),
        capa_eof: ctx.client.repl_capa_eof,
        filter: ctx.client.repl_filter,
    });
    // The replies (+FULLRESYNC / +CONTINUE, the RDB) come from the link.
    Ok(Reply::Raw(Bytes::new()))
}

/// ```text
/// REPLCONF <option> <value> [<option> <value> ...]
/// ```
/// What a replica tells its primary before PSYNC (listening-port,
/// ip-address, capa, rdb-only, rdb-filter-only). `ACK` and `GETACK` get no
/// reply (acknowledgements arrive on the replica link, see
/// `server::replication`).
fn replconf(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    if argv.len().is_multiple_of(2) {
        return Err(CmdError::SYNTAX);
    }
    for pair in argv[1..].chunks_exact(2) {
        let (opt, val) = (&pair[0], &pair[1]);
        if eq_ic(opt, "listening-port") {
            let port = crate::protocol::codec::parse_i64(val).ok_or(CmdError::NOT_INTEGER)?;
            ctx.client.repl_port = u16::try_from(port).unwrap_or(0);
        } else if eq_ic(opt, "ip-address") {
            if val.len() >= 46 {
                return Err(CmdError::err(
                    "REPLCONF ip-address provided by replica instance is too long: 46 bytes maximum.",
                ));
            }
            ctx.client.repl_ip = Some(String::from_utf8_lossy(val).into_owned());
        } else if eq_ic(opt, "capa") {
            // `eof`: it reads a diskless snapshot; `psync2`: it continues
            // across id changes (every replica we serve is treated so).
            if eq_ic(val, "eof") {
                ctx.client.repl_capa_eof = true;
            }
        } else if eq_ic(opt, "rdb-only") {
            // Only the snapshot is wanted (redis-cli --rdb): it reads the
            // bulk and disconnects; nothing to change here.
            let v = crate::protocol::codec::parse_i64(val).ok_or(CmdError::NOT_INTEGER)?;
            if !(0..=1).contains(&v) {
                return Err(CmdError::err(
                    "value is out of range, value must between 0 and 1",
                ));
            }
        } else if eq_ic(opt, "rdb-filter-only") {
            // Include filters for the snapshot: the keys are always left
            // out; "functions" keeps the functions (redis-cli
            // --functions-rdb), no filter leaves an empty dataset
            // (redis-cli --replica, which only wants the stream).
            let Some(filters) = crate::protocol::codec::split_args(val) else {
                return Err(CmdError::err("Missing rdb-filter-only values"));
            };
            let mut functions = false;
            for f in &filters {
                if eq_ic(f, "functions") {
                    functions = true;
                } else {
                    return Err(CmdError::new(format!(
                        "ERR Unsupported rdb-filter-only option: {}",
                        String::from_utf8_lossy(f)
                    )));
                }
            }
            ctx.client.repl_filter = Some(functions);
        } else if eq_ic(opt, "ack") || eq_ic(opt, "getack") {
            return Ok(Reply::Raw(Bytes::new()));
        } else {
            return Err(CmdError::new(format!(
                "ERR Unrecognized REPLCONF option: {}",
                String::from_utf8_lossy(opt)
            )));
        }
    }
    Ok(Reply::OK)
}

/// ```text
/// REPLICAOF host port | NO ONE
/// ```
/// Follow the primary at `host:port` (see `server::replica`): the
/// dataset is replaced by the primary's, and writes from clients are
/// refused while `replica-read-only` is on. `NO ONE` promotes this server
/// to a primary, keeping its data. SLAVEOF is the old name.
fn replicaof(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let srv = ctx.srv;
    if srv.cluster.get().is_some() {
        return Err(CmdError::err("REPLICAOF not allowed in cluster mode."));
    }
    if srv.repl.failing_over() {
        return Err(CmdError::err("REPLICAOF not allowed while failing over."));
    }
    if eq_ic(&argv[1], "no") && eq_ic(&argv[2], "one") {
        if crate::server::replica::promote(srv) {
            srv.config.set_replicaof(None);
        }
        return Ok(Reply::OK);
    }
    if ctx.client.info.replica.load(Ordering::Relaxed) {
        return Err(CmdError::err(
            "Command is not valid when client is a replica.",
        ));
    }
    let port = crate::protocol::codec::parse_i64(&argv[2])
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| CmdError::err("Invalid master port"))?;
    let host = String::from_utf8_lossy(&argv[1]).into_owned();
    let Some(srv) = srv.arc() else {
        return Err(CmdError::err("REPLICAOF is not available here"));
    };
    let addr = MasterAddr {
        host: host.clone(),
        port,
    };
    if !crate::server::replica::follow(&srv, addr) {
        return Ok(Reply::Status("OK Already connected to specified master"));
    }
    srv.config.set_replicaof(Some((host, port)));
    Ok(Reply::OK)
}

/// ```text
/// FAILOVER [TO host port [FORCE]] [ABORT] [TIMEOUT milliseconds]
/// ```
/// A coordinated failover, as Redis 6.2+: writes pause; once a replica
/// (the one named, or any) acknowledged the whole stream, this server
/// follows it with `PSYNC <replid> <offset> FAILOVER`, which makes it the
/// primary, and writes resume (here they get `-READONLY`). TIMEOUT aborts
/// (or with FORCE and a target, hands over anyway) if none caught up in
/// time; ABORT cancels, returning to primary if the hand-over started.
fn failover(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    use crate::server::replica;
    use crate::server::replication::Failover;
    let srv = ctx.srv;
    if srv.cluster.get().is_some() {
        return Err(CmdError::err(
            "FAILOVER not allowed in cluster mode. Use CLUSTER FAILOVER command instead.",
        ));
    }
    if argv.len() == 2 && eq_ic(&argv[1], "abort") {
        if !srv.repl.failing_over() {
            return Err(CmdError::err("No failover in progress."));
        }
        replica::abort_failover(srv, "Failover manually aborted");
        return Ok(Reply::OK);
    }
    let (mut timeout, mut force, mut target) = (0i64, false, None);
    let mut j = 1;
    while j < argv.len() {
        let a = &argv[j];
        if eq_ic(a, "timeout") && j + 1 < argv.len() && timeout == 0 {
            timeout =
                crate::protocol::codec::parse_i64(&argv[j + 1]).ok_or(CmdError::NOT_INTEGER)?;
            if timeout <= 0 {
                return Err(CmdError::err("FAILOVER timeout must be greater than 0"));
            }
            j += 2;
        } else if eq_ic(a, "to") && j + 2 < argv.len() && target.is_none() {
            let port =
                crate::protocol::codec::parse_i64(&argv[j + 2]).ok_or(CmdError::NOT_INTEGER)?;
            target = Some((String::from_utf8_lossy(&argv[j + 1]).into_owned(), port));
            j += 3;
        } else if eq_ic(a, "force") && !force {
            force = true;
            j += 1;
        } else {
            return Err(CmdError::SYNTAX);
        }
    }
    if srv.repl.failing_over() {
        return Err(CmdError::err("FAILOVER already in progress."));
    }
    if srv.repl.is_replica() {
        return Err(CmdError::err(
            "FAILOVER is not valid when server is a replica.",
        ));
    }
    if srv.repl.count() == 0 {
        return Err(CmdError::err("FAILOVER requires connected replicas."));
    }
    if force && (timeout == 0 || target.is_none()) {
        return Err(CmdError::err(
            "FAILOVER with force option requires both a timeout and target HOST and IP.",
        ));
    }
    let target = match target {
        Some((host, port)) => {
            let link = u16::try_from(port)
                .ok()
                .and_then(|p| srv.repl.find_link(&host, p))
                .ok_or_else(|| CmdError::err("FAILOVER target HOST and PORT is not a replica."))?;
            if link.state() != LinkState::Online {
                return Err(CmdError::err("FAILOVER target replica is not online."));
            }
            tracing::info!("FAILOVER requested to {host}:{port}.");
            Some(MasterAddr {
                host,
                port: link.port,
            })
        }
        None => {
            tracing::info!("FAILOVER requested to any replica.");
            None
        }
    };
    let Some(arc) = srv.arc() else {
        return Err(CmdError::err("FAILOVER is not available here"));
    };
    *srv.repl.failover.lock() = Some(Failover {
        target,
        end_ms: if timeout > 0 {
            ctx.now + timeout as u64
        } else {
            0
        },
        force,
        in_progress: false,
    });
    srv.pause.pause(
        u64::MAX / 2,
        crate::server::pause::PauseKind::Write,
        ctx.now,
    );
    tokio::spawn(replica::run_failover(arc));
    Ok(Reply::OK)
}

/// ```text
/// ROLE
/// ```
/// `master`, the replication offset, and each replica's address, port and
/// acknowledged offset. Sentinel-aware clients call it to check they
/// reached a primary.
fn role(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    let repl = &ctx.srv.repl;
    if let Some(m) = repl.master_addr().filter(|_| repl.is_replica()) {
        let state = match repl.link_state() {
            MasterLinkState::Connect => "connect",
            MasterLinkState::Connecting => "connecting",
            MasterLinkState::Handshake => "handshake",
            MasterLinkState::Transfer => "sync",
            MasterLinkState::Connected => "connected",
        };
        let off = if repl.master_link_up() {
            repl.applied.load(Ordering::Relaxed) as i64
        } else {
            -1
        };
        return Ok(Reply::Array(vec![
            Reply::bulk(Bytes::from_static(b"slave")),
            Reply::bulk(Bytes::from(m.host)),
            Reply::Int(i64::from(m.port)),
            Reply::bulk(Bytes::from_static(state.as_bytes())),
            Reply::Int(off),
        ]));
    }
    let replicas = ctx
        .srv
        .repl
        .links()
        .iter()
        .map(|l| {
            Reply::Array(vec![
                Reply::bulk(Bytes::from(l.ip.clone())),
                Reply::bulk_int(i64::from(l.port)),
                Reply::bulk_int(l.ack.load(Ordering::Relaxed) as i64),
            ])
        })
        .collect();
    Ok(Reply::Array(vec![
        Reply::bulk(Bytes::from_static(b"master")),
        Reply::Int(ctx.srv.repl.offset(ctx.srv) as i64),
        Reply::Array(replicas),
    ]))
}

/// ```text
/// WAIT numreplicas timeout
/// ```
/// How many replicas acknowledged this client's last write, once
/// `numreplicas` have or after `timeout` ms (0: no limit). Inside MULTI
/// (or a script) the count at once, as Redis answers. Otherwise the
/// connection waits for acknowledgements (after asking the replicas for
/// fresh ones, `REPLCONF GETACK *`), from replicas attached now or later,
/// counted as blocked and ended early by CLIENT UNBLOCK
/// (`Replication::wait_acks`).
fn wait(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let numreplicas = crate::protocol::codec::parse_i64(&argv[1]).ok_or(CmdError::NOT_INTEGER)?;
    let deadline = crate::commands::blocking::deadline_ms(&argv[2], ctx.now)?;
    let off = ctx.client.repl_off;
    let acked = ctx.srv.repl.acked(off);
    if acked >= numreplicas || ctx.client.multi.is_some() || ctx.in_script {
        return Ok(Reply::Int(acked));
    }
    if ctx.client.deny_blocking {
        return Ok(Reply::Int(acked));
    }
    // Fresh acknowledgements from the replicas there are. With none (or
    // while one reconnects) the client waits all the same, counted as
    // blocked: a replica that attaches acknowledges on its own.
    if !ctx.srv.repl.links().is_empty() {
        ctx.srv.repl.request_acks(ctx.srv);
    }
    ctx.client.wait_repl = Some((off, numreplicas, deadline));
    Ok(Reply::Int(acked))
}
