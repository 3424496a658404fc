//! Persistence commands: SAVE BGSAVE LASTSAVE BGREWRITEAOF (the machinery is
//! in `crate::persistence`).

use bytes::Bytes;

use crate::commands::ctx::Ctx;
use crate::commands::spec::{cmd, CmdFlags as F, CommandSpec};
use crate::persistence::snapshot;
use crate::protocol::args::eq_ic;
use crate::protocol::{CmdError, CmdResult, Reply};

const ADM: F = F::ADMIN.union(F::NOSCRIPT).union(F::NO_ASYNC_LOADING);

pub const SPECS: &[CommandSpec] = &[
    cmd("save", 1, ADM.union(F::NO_MULTI), save).doc(
        "server",
        "1.0.0",
        "Synchronously saves the database(s) to disk.",
    ),
    cmd("bgsave", -1, ADM, bgsave).doc(
        "server",
        "1.0.0",
        "Asynchronously saves the database(s) to disk.",
    ),
    cmd(
        "lastsave",
        1,
        F::LOADING.union(F::STALE).union(F::FAST),
        lastsave,
    )
    .acl(crate::commands::spec::Acl::ADMIN.union(crate::commands::spec::Acl::DANGEROUS))
    .doc(
        "server",
        "1.0.0",
        "Returns the Unix timestamp of the last successful save to disk.",
    ),
    cmd("bgrewriteaof", 1, ADM, bgrewriteaof).doc(
        "server",
        "1.0.0",
        "Asynchronously rewrites the append-only file to disk.",
    ),
];

/// ```text
/// SAVE
/// ```
/// Redis blocks every client while it saves; here the snapshot is a forked
/// child as for BGSAVE and only the caller waits for it.
fn save(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    match snapshot::bgsave(ctx.srv, true) {
        Ok(()) => Ok(Reply::OK),
        Err(e) if e.starts_with("ERR Background save already") => {
            Err(CmdError::err("Background save already in progress"))
        }
        Err(e) if e.starts_with("ERR ") && e.len() > 4 => Err(CmdError::new(e)),
        Err(_) => Err(CmdError::new("ERR".to_string())),
    }
}

/// ```text
/// BGSAVE [SCHEDULE]
/// ```
fn bgsave(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let schedule = match argv.get(1) {
        None => false,
        Some(a) if argv.len() == 2 && eq_ic(a, "schedule") => true,
        Some(_) => return Err(CmdError::SYNTAX),
    };
    let p = &ctx.srv.persist;
    match p.child_kind() {
        Some(crate::persistence::ChildKind::Rdb) => {
            return Err(CmdError::err("Background save already in progress"))
        }
        Some(crate::persistence::ChildKind::AofRewrite) => {
            if schedule {
                p.bgsave_scheduled
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                return Ok(Reply::Status("Background saving scheduled"));
            }
            return Err(CmdError::err(
                "Another child process is active (AOF?): can't BGSAVE right now. Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible.",
            ));
        }
        None => {}
    }
    if !ctx.locks.is_empty() {
        // Inside EXEC this thread holds shard locks the fork would wait
        // for: the cron starts the save right after the transaction.
        p.bgsave_scheduled
            .store(true, std::sync::atomic::Ordering::Relaxed);
        return Ok(Reply::Status("Background saving scheduled"));
    }
    snapshot::bgsave(ctx.srv, false).map_err(CmdError::new)?;
    Ok(Reply::Status("Background saving started"))
}

/// ```text
/// LASTSAVE
/// ```
fn lastsave(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(
        ctx.srv
            .persist
            .lastsave
            .load(std::sync::atomic::Ordering::Relaxed) as i64,
    ))
}

/// ```text
/// BGREWRITEAOF
/// ```
fn bgrewriteaof(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    if !ctx.locks.is_empty() {
        // Inside EXEC (shard locks held): see BGSAVE.
        ctx.srv
            .persist
            .rewrite_scheduled
            .store(true, std::sync::atomic::Ordering::Relaxed);
        return Ok(Reply::Status(
            "Background append only file rewriting scheduled",
        ));
    }
    match snapshot::rewrite_aof(ctx.srv, false) {
        Ok(()) => Ok(Reply::Status(
            "Background append only file rewriting started",
        )),
        Err(e) if e == "SCHEDULED" => Ok(Reply::Status(
            "Background append only file rewriting scheduled",
        )),
        Err(e) => Err(CmdError::new(e)),
    }
}
