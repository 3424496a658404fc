//! AZURE MAINTENANCE / REBOOT / METRICS / STATUS / HELP: rehearsing Azure
//! Cache for Redis's maintenance notices, failovers and reboots against a
//! local server, and reading the metrics Azure Monitor would show (not a
//! Redis command; see `server::rehearsal` and `server::metrics`).

use std::sync::atomic::Ordering;

use bytes::Bytes;

use crate::commands::connection::help_reply;
use crate::commands::ctx::Ctx;
use crate::commands::spec::{cmd, container, CmdFlags as F, CommandSpec};
use crate::protocol::args::{eq_ic, int_arg, Args};
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::server::rehearsal::{self, Plan, Rehearsal};

pub const SPECS: &[CommandSpec] = &[container("azure", SUBS).doc(
    "server",
    "7.0.0",
    "A container for rehearsing Azure maintenance, failovers and reboots (Cinnabar).",
)];

const ADM: F = F::ADMIN
    .union(F::NOSCRIPT)
    .union(F::STALE)
    .union(F::NO_MULTI);

const SUBS: &[CommandSpec] = &[
    cmd("maintenance", -2, ADM, maintenance).doc(
        "server",
        "7.0.0",
        "Rehearses a planned Azure maintenance: AzureRedisEvents notices and a failover.",
    ),
    cmd("reboot", -3, ADM, reboot).doc(
        "server",
        "7.0.0",
        "Rehearses an Azure reboot of the primary, the replica or both nodes.",
    ),
    cmd("metrics", 2, ADM.union(F::LOADING), metrics).doc(
        "server",
        "7.0.0",
        "Returns Azure Monitor's cache metrics over the last minute.",
    ),
    cmd("status", 2, ADM.union(F::LOADING), status).doc(
        "server",
        "7.0.0",
        "Returns the state of the running Azure rehearsal.",
    ),
    cmd("help", 2, F::LOADING.union(F::STALE), help).doc(
        "server",
        "7.0.0",
        "Returns helpful text about the different subcommands.",
    ),
];

/// Longest delay or window accepted (a day).
const MAX_SECS: i64 = 86_400;

fn bounded(arg: &[u8], max: i64, what: &str) -> CmdResult<u64> {
    match int_arg(arg) {
        Ok(n) if (0..=max).contains(&n) => Ok(n as u64),
        _ => Err(CmdError::new(format!(
            "ERR {what} must be an integer between 0 and {max}"
        ))),
    }
}

/// The slot, unless this server is a replica or a rehearsal is running.
fn take_slot(ctx: &Ctx<'_>) -> CmdResult<(std::sync::Arc<crate::server::Server>, rehearsal::Slot)> {
    if ctx.srv.repl.is_replica() {
        return Err(CmdError::err(
            "Azure rehearsals run on a primary; this server is a replica",
        ));
    }
    let srv = ctx
        .srv
        .arc()
        .ok_or_else(|| CmdError::err("the server is shutting down"))?;
    let slot = Rehearsal::begin(&srv)
        .ok_or_else(|| CmdError::err("an Azure rehearsal is already running (see AZURE STATUS)"))?;
    Ok((srv, slot))
}

/// ```text
/// AZURE MAINTENANCE [PRIMARY|REPLICA] [IN seconds] [DOWNTIME milliseconds] [END seconds]
/// ```
/// Publishes NodeMaintenanceScheduled now, NodeMaintenanceStarting 20 s
/// before the start (at once if the start is nearer), NodeMaintenanceStart
/// at the start; for the primary, then closes every client connection and
/// turns new ones away for the downtime, publishes
/// NodeMaintenanceFailoverComplete a second after reopening, and
/// NodeMaintenanceEnded END seconds after the start (not before the
/// failover notice). Replies with the timeline.
fn maintenance(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let mut plan = Plan {
        replica: false,
        start_in: 20,
        downtime_ms: 1000,
        end_after: 10,
    };
    let mut a = Args::new(argv, 2);
    while let Some(opt) = a.next_opt() {
        if eq_ic(opt, "primary") {
            plan.replica = false;
        } else if eq_ic(opt, "replica") {
            plan.replica = true;
        } else if eq_ic(opt, "in") {
            plan.start_in = bounded(a.next_arg()?, MAX_SECS, "IN")?;
        } else if eq_ic(opt, "downtime") {
            plan.downtime_ms = bounded(a.next_arg()?, MAX_SECS * 1000, "DOWNTIME")?;
        } else if eq_ic(opt, "end") {
            plan.end_after = bounded(a.next_arg()?, MAX_SECS, "END")?;
        } else {
            return Err(CmdError::SYNTAX);
        }
    }
    let (_srv, slot) = take_slot(ctx)?;
    let lines = plan
        .timeline()
        .into_iter()
        .map(|(at, n)| Reply::StatusOwned(format!("+{}.{:03}s {}", at / 1000, at % 1000, n.name())))
        .collect();
    tokio::spawn(rehearsal::run_maintenance(slot, plan));
    Ok(Reply::Array(lines))
}

/// ```text
/// AZURE REBOOT PRIMARY|REPLICA|ALL [DOWNTIME milliseconds]
/// ```
/// PRIMARY: a failover without notice: every client connection closes
/// (the caller's after this reply) and new ones are turned away for the
/// downtime; the data stays (the replica had it). REPLICA: this server's
/// replicas are disconnected (they reconnect and resync). ALL: as
/// PRIMARY, and the dataset becomes what a restart would load (AOF, else
/// the RDB file, else nothing); connections are turned away until both the
/// downtime and the reload are over.
fn reboot(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    #[derive(PartialEq)]
    enum Node {
        Primary,
        Replica,
        All,
    }
    let node = if eq_ic(&argv[2], "primary") {
        Node::Primary
    } else if eq_ic(&argv[2], "replica") {
        Node::Replica
    } else if eq_ic(&argv[2], "all") {
        Node::All
    } else {
        return Err(CmdError::SYNTAX);
    };
    let mut downtime = 1000;
    let mut a = Args::new(argv, 3);
    while let Some(opt) = a.next_opt() {
        if eq_ic(opt, "downtime") {
            downtime = bounded(a.next_arg()?, MAX_SECS * 1000, "DOWNTIME")?;
        } else {
            return Err(CmdError::SYNTAX);
        }
    }
    let (srv, slot) = take_slot(ctx)?;
    if node != Node::Replica {
        // The primary's node goes down: the replica takes over.
        srv.metrics
            .count(crate::server::metrics::ErrorType::Failover);
    }
    match node {
        Node::Replica => {
            srv.repl.disconnect_replicas();
            drop(slot);
            return Ok(Reply::OK);
        }
        Node::Primary => {
            srv.rehearsal.refuse_for(downtime);
            tokio::spawn(rehearsal::reopen_after(slot, downtime));
        }
        Node::All => {
            // Closed until the reload is over, whatever the downtime.
            srv.rehearsal.refuse_for(u64::MAX / 2);
            let srv2 = srv.clone();
            tokio::spawn(async move {
                let t0 = tokio::time::Instant::now();
                let _ =
                    tokio::task::spawn_blocking(move || rehearsal::reload_as_restart(&srv2)).await;
                let left = std::time::Duration::from_millis(downtime).saturating_sub(t0.elapsed());
                rehearsal::reopen_after(slot, left.as_millis() as u64).await;
            });
        }
    }
    let n = rehearsal::drop_clients(&srv, Some(ctx.client.id));
    ctx.client.close_after_reply = true;
    tracing::warn!("Azure rehearsal: reboot, {} connections closed", n + 1);
    Ok(Reply::OK)
}

/// ```text
/// AZURE STATUS
/// ```
fn status(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    let r = &ctx.srv.rehearsal;
    Ok(Reply::Map(vec![
        (
            Reply::bulk("rehearsal"),
            Reply::bulk(if r.is_active() { "running" } else { "idle" }),
        ),
        (
            Reply::bulk("turning-away-ms"),
            Reply::Int(r.refusing_ms().min(i64::MAX as u64) as i64),
        ),
        (
            Reply::bulk("turned-away-connections"),
            Reply::Int(r.refused.load(Ordering::Relaxed) as i64),
        ),
        (Reply::bulk("channel"), Reply::bulk(rehearsal::CHANNEL)),
    ]))
}

/// ```text
/// AZURE METRICS
/// ```
/// Azure Monitor's metrics for this cache over the last minute, by
/// Azure's names (see `server::metrics`): integers for counts and bytes,
/// doubles for percentages and per-second rates, and `errors` as a map of
/// Azure's error types.
fn metrics(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    use crate::server::metrics::Value;
    let m = ctx.srv.metrics.current(ctx.srv);
    Ok(Reply::Map(
        m.into_iter()
            .map(|m| {
                let v = match m.value {
                    Value::Count(n) => Reply::Int(n.min(i64::MAX as u64) as i64),
                    Value::Real(x) => Reply::Double(x),
                    Value::Errors(e) => Reply::Map(
                        e.into_iter()
                            .map(|(t, n)| {
                                (Reply::bulk(t), Reply::Int(n.min(i64::MAX as u64) as i64))
                            })
                            .collect(),
                    ),
                };
                (Reply::bulk(m.name), v)
            })
            .collect(),
    ))
}

fn help(_ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    Ok(help_reply(
        "AZURE",
        &[
            "MAINTENANCE [PRIMARY|REPLICA] [IN <seconds>] [DOWNTIME <ms>] [END <seconds>]",
            "    Rehearse a planned maintenance: notices on the AzureRedisEvents channel",
            "    (Scheduled, Starting 20s ahead, Start), then for the primary a failover:",
            "    every connection closes and new ones fail for DOWNTIME ms",
            "    (FailoverComplete follows), and Ended after END seconds.",
            "    Defaults: PRIMARY IN 20 DOWNTIME 1000 END 10.",
            "REBOOT PRIMARY|REPLICA|ALL [DOWNTIME <ms>]",
            "    Rehearse a reboot. PRIMARY: connections close, new ones fail for",
            "    DOWNTIME ms, data kept. REPLICA: replicas of this server reconnect.",
            "    ALL: as PRIMARY, and the data becomes what a restart would load.",
            "METRICS",
            "    Return Azure Monitor's metrics over the last minute (cachehits,",
            "    serverLoad, usedmemory, errors by type ...), as metrics-port serves them.",
            "STATUS",
            "    Return the state of the running rehearsal.",
        ],
    ))
}
