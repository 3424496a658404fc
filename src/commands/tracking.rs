//! CLIENT TRACKING / CACHING / GETREDIR / TRACKINGINFO: the commands of
//! client-side caching (the machinery is in `server::tracking`).

use std::sync::atomic::Ordering;

use bytes::Bytes;

use crate::commands::ctx::Ctx;
use crate::protocol::args::eq_ic;
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::server::tracking::{flags, EnableOpts};

/// ```text
/// CLIENT TRACKING <ON | OFF> [REDIRECT id] [PREFIX prefix [PREFIX prefix ...]]
///     [BCAST] [OPTIN] [OPTOUT] [NOLOOP]
/// ```
pub fn client_tracking(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let mut o = EnableOpts {
        redirect: 0,
        bcast: false,
        optin: false,
        optout: false,
        noloop: false,
        prefixes: Vec::new(),
    };
    let mut redirect_given = false;
    let mut j = 3;
    while j < argv.len() {
        let a = &argv[j];
        let more = j + 1 < argv.len();
        if eq_ic(a, "redirect") && more {
            j += 1;
            if redirect_given {
                return Err(CmdError::err(
                    "A client can only redirect to a single other client",
                ));
            }
            let id = crate::protocol::args::int_arg(&argv[j])?;
            if id <= 0 || !ctx.srv.clients.contains_key(&(id as u64)) {
                return Err(CmdError::err(
                    "The client ID you want redirect to does not exist",
                ));
            }
            redirect_given = true;
            o.redirect = id as u64;
        } else if eq_ic(a, "bcast") {
            o.bcast = true;
        } else if eq_ic(a, "optin") {
            o.optin = true;
        } else if eq_ic(a, "optout") {
            o.optout = true;
        } else if eq_ic(a, "noloop") {
            o.noloop = true;
        } else if eq_ic(a, "prefix") && more {
            j += 1;
            o.prefixes.push(crate::util::detach(&argv[j]));
        } else {
            return Err(CmdError::SYNTAX);
        }
        j += 1;
    }
    let info = ctx.client.info.clone();
    if eq_ic(&argv[2], "on") {
        ctx.srv.tracking.enable(&info, o)?;
        // RESP3 invalidations are pushed through the client's queue.
        ctx.client.pubsub.outbox(&info);
    } else if eq_ic(&argv[2], "off") {
        ctx.srv.tracking.disable(&info);
        ctx.client.tracking.caching = false;
    } else {
        return Err(CmdError::SYNTAX);
    }
    Ok(Reply::OK)
}

/// ```text
/// CLIENT CACHING <YES | NO>
/// ```
pub fn client_caching(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let f = ctx.client.info.tracking.load(Ordering::Relaxed);
    if f & flags::ON == 0 {
        return Err(CmdError::err("CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled"));
    }
    if eq_ic(&argv[2], "yes") {
        if f & flags::OPTIN == 0 {
            return Err(CmdError::err(
                "CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.",
            ));
        }
    } else if eq_ic(&argv[2], "no") {
        if f & flags::OPTOUT == 0 {
            return Err(CmdError::err(
                "CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.",
            ));
        }
    } else {
        return Err(CmdError::SYNTAX);
    }
    ctx.client.tracking.caching = true;
    Ok(Reply::OK)
}

/// ```text
/// CLIENT GETREDIR
/// ```
pub fn client_getredir(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(crate::server::tracking::redir_field(
        &ctx.client.info,
    )))
}

/// ```text
/// CLIENT TRACKINGINFO
/// ```
pub fn client_trackinginfo(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    let info = &ctx.client.info;
    let f = info.tracking.load(Ordering::Relaxed);
    let caching = ctx.client.tracking.caching;
    let mut fl = vec![if f & flags::ON != 0 { "on" } else { "off" }];
    if f & flags::BCAST != 0 {
        fl.push("bcast");
    }
    if f & flags::OPTIN != 0 {
        fl.push("optin");
        if caching {
            fl.push("caching-yes");
        }
    }
    if f & flags::OPTOUT != 0 {
        fl.push("optout");
        if caching {
            fl.push("caching-no");
        }
    }
    if f & flags::NOLOOP != 0 {
        fl.push("noloop");
    }
    if f & flags::BROKEN_REDIR != 0 {
        fl.push("broken_redirect");
    }
    let prefixes = if f & flags::BCAST != 0 {
        ctx.srv.tracking.prefixes_of(info.id)
    } else {
        Vec::new()
    };
    Ok(Reply::Map(vec![
        (
            Reply::bulk(Bytes::from_static(b"flags")),
            Reply::Set(
                fl.into_iter()
                    .map(|s| Reply::bulk(Bytes::from_static(s.as_bytes())))
                    .collect(),
            ),
        ),
        (
            Reply::bulk(Bytes::from_static(b"redirect")),
            Reply::Int(crate::server::tracking::redir_field(info)),
        ),
        (
            Reply::bulk(Bytes::from_static(b"prefixes")),
            Reply::Array(prefixes.into_iter().map(Reply::Bulk).collect()),
        ),
    ]))
}
