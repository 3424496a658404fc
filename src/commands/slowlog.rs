//! SLOWLOG GET / LEN / RESET / HELP over the log kept in
//! [`crate::server::slowlog`].

use bytes::Bytes;

use crate::commands::connection::help_reply;
use crate::commands::ctx::Ctx;
use crate::commands::spec::{cmd, container, CmdFlags as F, CommandSpec};
use crate::protocol::args::int_arg;
use crate::protocol::{CmdError, CmdResult, Reply};

pub const SPECS: &[CommandSpec] =
    &[container("slowlog", SUBS).doc("server", "2.2.12", "A container for slow log commands.")];

const ADM: F = F::ADMIN.union(F::LOADING).union(F::STALE);

const SUBS: &[CommandSpec] = &[
    cmd("get", -2, ADM, get).doc("server", "2.2.12", "Returns the slow log's entries."),
    cmd("len", 2, ADM, len).doc(
        "server",
        "2.2.12",
        "Returns the number of entries in the slow log.",
    ),
    cmd("reset", 2, ADM, reset).doc("server", "2.2.12", "Clears all entries from the slow log."),
    cmd("help", 2, F::LOADING.union(F::STALE), help).doc(
        "server",
        "6.2.0",
        "Show helpful text about the different subcommands",
    ),
];

/// ```text
/// SLOWLOG GET [count]
/// ```
/// Newest first; `count` defaults to 10, -1 means all.
fn get(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    if argv.len() > 3 {
        return Err(CmdError::SYNTAX);
    }
    let count = match argv.get(2) {
        None => Some(10),
        Some(a) => match int_arg(a)? {
            -1 => None,
            n if n < -1 => {
                return Err(CmdError::err("count should be greater than or equal to -1"))
            }
            n => Some(usize::try_from(n).unwrap_or(usize::MAX)),
        },
    };
    let entries = ctx.srv.slowlog.newest(count);
    Ok(Reply::Array(
        entries
            .into_iter()
            .map(|e| {
                Reply::Array(vec![
                    Reply::Int(e.id as i64),
                    Reply::Int(e.time as i64),
                    Reply::Int(e.usec as i64),
                    Reply::Array(e.argv.into_iter().map(Reply::Bulk).collect()),
                    Reply::Bulk(Bytes::from(e.peer)),
                    Reply::Bulk(e.name),
                ])
            })
            .collect(),
    ))
}

fn len(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(ctx.srv.slowlog.len() as i64))
}

fn reset(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    ctx.srv.slowlog.reset();
    Ok(Reply::OK)
}

fn help(_ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    Ok(help_reply(
        "SLOWLOG",
        &[
            "GET [<count>]",
            "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
            "    Entries are made of:",
            "    id, timestamp, time in microseconds, arguments array, client IP and port,",
            "    client name",
            "LEN",
            "    Return the length of the slowlog.",
            "RESET",
            "    Reset the slowlog.",
        ],
    ))
}
