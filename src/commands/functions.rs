//! FUNCTION (LOAD DELETE FLUSH LIST DUMP RESTORE STATS KILL HELP) and
//! FCALL / FCALL_RO. The registry lives in `crate::functions`; functions
//! run in the script thread's interpreter (`crate::scripting::fcall`).

use bytes::Bytes;

use crate::commands::connection::help_reply;
use crate::commands::ctx::Ctx;
use crate::commands::spec::{cmd, container, Acl, CmdFlags as F, CommandSpec, LockScope};
use crate::functions::{RestorePolicy, FLAG_NAMES};
use crate::protocol::args::{eq_ic, int_arg};
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::scripting;

const SC: Acl = Acl::SCRIPTING;
const FCALL_F: F = F::NOSCRIPT
    .union(F::SKIP_MONITOR)
    .union(F::MAY_REPLICATE)
    .union(F::NO_MANDATORY_KEYS)
    .union(F::STALE);
const FCALL_RO_F: F = F::NOSCRIPT
    .union(F::SKIP_MONITOR)
    .union(F::NO_MANDATORY_KEYS)
    .union(F::STALE)
    .union(F::READONLY);

/// Key positions: `numkeys` at argument 2, then the keys.
fn fcall_keys(argv: &[Bytes]) -> Vec<usize> {
    let n = argv
        .get(2)
        .and_then(|a| int_arg(a).ok())
        .unwrap_or(0)
        .max(0) as usize;
    (3..(3 + n).min(argv.len())).collect()
}

// Like EVAL, functions lock every shard: they may touch undeclared keys.
/// FUNCTION LOAD/DELETE/FLUSH/RESTORE change the function registry, not
/// the keyspace: they lock no shard.
fn no_shards(_: &crate::server::Server, _: usize, _: &[Bytes]) -> Vec<(u32, u32)> {
    Vec::new()
}

pub const SPECS: &[CommandSpec] = &[
    cmd("fcall", -3, FCALL_F, fcall)
        .find_keys(fcall_keys)
        .lock(LockScope::OnDemand)
        .acl(SC)
        .doc("scripting", "7.0.0", "Invoke a function"),
    cmd("fcall_ro", -3, FCALL_RO_F, fcall_ro)
        .find_keys(fcall_keys)
        .lock(LockScope::OnDemand)
        .acl(SC)
        .doc("scripting", "7.0.0", "Invoke a read-only function"),
    container("function", FUNCTION_SUBS).doc(
        "scripting",
        "7.0.0",
        "A container for function commands",
    ),
];

const FUNCTION_SUBS: &[CommandSpec] = &[
    cmd("delete", 3, F::NOSCRIPT.union(F::WRITE), function_delete)
        .lock(LockScope::Custom(no_shards))
        .acl(SC)
        .doc("scripting", "7.0.0", "Delete a function by name"),
    cmd("dump", 2, F::NOSCRIPT, function_dump).acl(SC).doc(
        "scripting",
        "7.0.0",
        "Dump all functions into a serialized binary payload",
    ),
    cmd("flush", -2, F::NOSCRIPT.union(F::WRITE), function_flush)
        .lock(LockScope::Custom(no_shards))
        .acl(SC)
        .doc("scripting", "7.0.0", "Deleting all functions"),
    cmd("help", 2, F::LOADING.union(F::STALE), function_help)
        .acl(SC)
        .doc(
            "scripting",
            "7.0.0",
            "Show helpful text about the different subcommands",
        ),
    cmd("kill", 2, F::NOSCRIPT.union(F::ALLOW_BUSY), function_kill)
        .acl(SC)
        .doc(
            "scripting",
            "7.0.0",
            "Kill the function currently in execution.",
        ),
    cmd("list", -2, F::NOSCRIPT, function_list).acl(SC).doc(
        "scripting",
        "7.0.0",
        "List information about all the functions",
    ),
    cmd(
        "load",
        -3,
        F::NOSCRIPT.union(F::WRITE).union(F::DENYOOM),
        function_load,
    )
    .lock(LockScope::Custom(no_shards))
    .acl(SC)
    .doc(
        "scripting",
        "7.0.0",
        "Create a function with the given arguments (name, code, description)",
    ),
    cmd(
        "restore",
        -3,
        F::NOSCRIPT.union(F::WRITE).union(F::DENYOOM),
        function_restore,
    )
    .lock(LockScope::Custom(no_shards))
    .acl(SC)
    .doc(
        "scripting",
        "7.0.0",
        "Restore all the functions on the given payload",
    ),
    cmd("stats", 2, F::NOSCRIPT.union(F::ALLOW_BUSY), function_stats)
        .acl(SC)
        .doc(
            "scripting",
            "7.0.0",
            "Return information about the function currently running (name, description, duration)",
        ),
];

fn fcall_generic(ctx: &mut Ctx<'_>, argv: &[Bytes], ro: bool) -> CmdResult {
    let name = String::from_utf8_lossy(&argv[1]).into_owned();
    let Some(info) = ctx.srv.functions.function(&name) else {
        return Err(CmdError::err("Function not found"));
    };
    let numkeys = int_arg(&argv[2]).map_err(|_| CmdError::err("Bad number of keys provided"))?;
    if numkeys > argv.len() as i64 - 3 {
        return Err(CmdError::err(
            "Number of keys can't be greater than number of args",
        ));
    }
    if numkeys < 0 {
        return Err(CmdError::err("Number of keys can't be negative"));
    }
    let mode = scripting::prepare(ctx, info.flags, ro)?;
    let n = numkeys as usize;
    *scripting::RUN_INFO.lock() = Some((info.name.clone(), argv.to_vec(), ctx.now));
    let r = scripting::fcall(ctx, &info.name, &argv[3..3 + n], &argv[3 + n..], mode);
    *scripting::RUN_INFO.lock() = None;
    r
}

/// ```text
/// FCALL function numkeys [key [key ...]] [arg [arg ...]]
/// ```
fn fcall(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    fcall_generic(ctx, argv, false)
}

/// ```text
/// FCALL_RO function numkeys [key [key ...]] [arg [arg ...]]
/// ```
fn fcall_ro(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    fcall_generic(ctx, argv, true)
}

/// ```text
/// FUNCTION LOAD [REPLACE] function-code
/// ```
fn function_load(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let mut replace = false;
    let mut i = 2;
    while i < argv.len() - 1 {
        if eq_ic(&argv[i], "REPLACE") {
            replace = true;
            i += 1;
            continue;
        }
        return Err(CmdError::err(format!(
            "Unknown option given: {}",
            String::from_utf8_lossy(&argv[i])
        )));
    }
    if i >= argv.len() {
        return Err(CmdError::err("Function code is missing"));
    }
    let name = ctx
        .srv
        .functions
        .load_library(&argv[i], replace)
        .map_err(CmdError::err)?;
    ctx.changed(1);
    Ok(Reply::bulk(name.into_bytes()))
}

/// ```text
/// FUNCTION DELETE library-name
/// ```
fn function_delete(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    if !ctx.srv.functions.delete(&String::from_utf8_lossy(&argv[2])) {
        return Err(CmdError::err("Library not found"));
    }
    ctx.changed(1);
    Ok(Reply::OK)
}

/// ```text
/// FUNCTION FLUSH [ASYNC | SYNC]
/// ```
fn function_flush(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    if argv.len() > 3 {
        return Err(subcommand_syntax(argv));
    }
    if argv.len() == 3 && !eq_ic(&argv[2], "SYNC") && !eq_ic(&argv[2], "ASYNC") {
        return Err(CmdError::err(
            "FUNCTION FLUSH only supports SYNC|ASYNC option",
        ));
    }
    ctx.srv.functions.flush();
    ctx.changed(1);
    Ok(Reply::OK)
}

/// Redis's reply for a subcommand given the wrong arguments.
fn subcommand_syntax(argv: &[Bytes]) -> CmdError {
    CmdError::err(format!(
        "unknown subcommand or wrong number of arguments for '{}'. Try FUNCTION HELP.",
        String::from_utf8_lossy(&argv[1])
    ))
}

/// ```text
/// FUNCTION LIST [LIBRARYNAME library-name-pattern] [WITHCODE]
/// ```
fn function_list(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let mut with_code = false;
    let mut pattern: Option<&[u8]> = None;
    let mut i = 2;
    while i < argv.len() {
        if !with_code && eq_ic(&argv[i], "WITHCODE") {
            with_code = true;
            i += 1;
            continue;
        }
        if pattern.is_none() && eq_ic(&argv[i], "LIBRARYNAME") {
            if i >= argv.len() - 1 {
                return Err(CmdError::err("library name argument was not given"));
            }
            pattern = Some(&argv[i + 1]);
            i += 2;
            continue;
        }
        return Err(CmdError::err(format!(
            "Unknown argument {}",
            String::from_utf8_lossy(&argv[i])
        )));
    }
    let mut out = Vec::new();
    for lib in ctx.srv.functions.libraries() {
        if let Some(p) = pattern {
            if !crate::util::glob::glob_match(p, lib.name.as_bytes(), true) {
                continue;
            }
        }
        let funcs = lib
            .functions
            .iter()
            .map(|f| {
                Reply::Map(vec![
                    (
                        Reply::bulk("name"),
                        Reply::bulk(f.name.clone().into_bytes()),
                    ),
                    (
                        Reply::bulk("description"),
                        match &f.desc {
                            Some(d) => Reply::Bulk(d.clone()),
                            None => Reply::Null,
                        },
                    ),
                    (
                        Reply::bulk("flags"),
                        Reply::Set(
                            FLAG_NAMES
                                .iter()
                                .filter(|(bit, _)| f.flags & bit != 0)
                                .map(|(_, n)| Reply::Status(n))
                                .collect(),
                        ),
                    ),
                ])
            })
            .collect();
        let mut m = vec![
            (
                Reply::bulk("library_name"),
                Reply::bulk(lib.name.clone().into_bytes()),
            ),
            (Reply::bulk("engine"), Reply::bulk("LUA")),
            (Reply::bulk("functions"), Reply::Array(funcs)),
        ];
        if with_code {
            m.push((Reply::bulk("library_code"), Reply::Bulk(lib.code.clone())));
        }
        out.push(Reply::Map(m));
    }
    Ok(Reply::Array(out))
}

/// ```text
/// FUNCTION DUMP
/// ```
fn function_dump(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    Ok(Reply::Bulk(Bytes::from(ctx.srv.functions.dump())))
}

/// ```text
/// FUNCTION RESTORE serialized-value [FLUSH | APPEND | REPLACE]
/// ```
fn function_restore(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    if argv.len() > 4 {
        return Err(subcommand_syntax(argv));
    }
    let policy = match argv.get(3) {
        None => RestorePolicy::Append,
        Some(a) if eq_ic(a, "APPEND") => RestorePolicy::Append,
        Some(a) if eq_ic(a, "REPLACE") => RestorePolicy::Replace,
        Some(a) if eq_ic(a, "FLUSH") => RestorePolicy::Flush,
        Some(_) => {
            return Err(CmdError::err(
                "Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.",
            ))
        }
    };
    ctx.srv
        .functions
        .restore(&argv[2], policy)
        .map_err(CmdError::err)?;
    ctx.changed(1);
    Ok(Reply::OK)
}

/// ```text
/// FUNCTION STATS
/// ```
fn function_stats(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    if scripting::running_eval() {
        return Err(scripting::BUSY_ERR);
    }
    let running = match scripting::RUN_INFO.lock().clone() {
        Some((name, argv, start)) if scripting::running() => Reply::Map(vec![
            (Reply::bulk("name"), Reply::bulk(name.into_bytes())),
            (
                Reply::bulk("command"),
                Reply::Array(argv.into_iter().map(Reply::Bulk).collect()),
            ),
            (
                Reply::bulk("duration_ms"),
                Reply::Int(crate::commands::dispatch::unix_ms().saturating_sub(start) as i64),
            ),
        ]),
        _ => Reply::Null,
    };
    let (libs, funcs) = ctx.srv.functions.counts();
    Ok(Reply::Map(vec![
        (Reply::bulk("running_script"), running),
        (
            Reply::bulk("engines"),
            Reply::Map(vec![(
                Reply::bulk("LUA"),
                Reply::Map(vec![
                    (Reply::bulk("libraries_count"), Reply::Int(libs as i64)),
                    (Reply::bulk("functions_count"), Reply::Int(funcs as i64)),
                ]),
            )]),
        ),
    ]))
}

/// ```text
/// FUNCTION KILL
/// ```
fn function_kill(_ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    scripting::kill(false)?;
    Ok(Reply::OK)
}

fn function_help(_ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    Ok(help_reply(
        "FUNCTION",
        &[
            "LOAD [REPLACE] <FUNCTION CODE>",
            "    Create a new library with the given library name and code.",
            "DELETE <LIBRARY NAME>",
            "    Delete the given library.",
            "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
            "    Return general information on all the libraries:",
            "    * Library name",
            "    * The engine used to run the Library",
            "    * Library description",
            "    * Functions list",
            "    * Library code (if WITHCODE is given)",
            "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
            "STATS",
            "    Return information about the current function running:",
            "    * Function name",
            "    * Command used to run the function",
            "    * Duration in MS that the function is running",
            "    If no function is running, return nil",
            "    In addition, returns a list of available engines.",
            "KILL",
            "    Kill the current running function.",
            "FLUSH [ASYNC|SYNC]",
            "    Delete all the libraries.",
            "    When called without the optional mode argument, the behavior is determined by the",
            "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
            "    * ASYNC: Asynchronously flush the libraries.",
            "    * SYNC: Synchronously flush the libraries.",
            "DUMP",
            "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
            "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
            "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
            "    control how to handle existing libraries (default APPEND):",
            "    * FLUSH: delete all existing libraries.",
            "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
            "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
            "      libraries with the new libraries (notice that even on this option there is a chance of failure",
            "      in case of functions name collision with another library).",
        ],
    ))
}
