//! EVAL EVALSHA EVAL_RO EVALSHA_RO and SCRIPT (LOAD EXISTS FLUSH KILL HELP).
//! The interpreter lives in `crate::scripting`.

use bytes::Bytes;

use crate::commands::connection::help_reply;
use crate::commands::ctx::Ctx;
use crate::commands::spec::{cmd, container, Acl, CmdFlags as F, CommandSpec, LockScope};
use crate::protocol::args::{eq_ic, int_arg};
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::scripting;

const SC: Acl = Acl::SCRIPTING;
const EVAL_F: F = F::NOSCRIPT
    .union(F::SKIP_MONITOR)
    .union(F::MAY_REPLICATE)
    .union(F::NO_MANDATORY_KEYS)
    .union(F::STALE);
const EVAL_RO_F: F = F::NOSCRIPT
    .union(F::SKIP_MONITOR)
    .union(F::NO_MANDATORY_KEYS)
    .union(F::STALE)
    .union(F::READONLY);

/// Key positions: `numkeys` at argument 2, then the keys.
fn eval_keys(argv: &[Bytes]) -> Vec<usize> {
    let n = argv
        .get(2)
        .and_then(|a| int_arg(a).ok())
        .unwrap_or(0)
        .max(0) as usize;
    (3..(3 + n).min(argv.len())).collect()
}

// Scripts lock shards on demand (LockScope::OnDemand, held to the end):
// they may touch keys they did not declare and must still be atomic.
pub const SPECS: &[CommandSpec] = &[
    cmd("eval", -3, EVAL_F, eval)
        .find_keys(eval_keys)
        .lock(LockScope::OnDemand)
        .acl(SC)
        .doc("scripting", "2.6.0", "Executes a server-side Lua script."),
    cmd("evalsha", -3, EVAL_F, evalsha)
        .find_keys(eval_keys)
        .lock(LockScope::OnDemand)
        .acl(SC)
        .doc(
            "scripting",
            "2.6.0",
            "Executes a server-side Lua script by SHA1 digest.",
        ),
    cmd("eval_ro", -3, EVAL_RO_F, eval_ro)
        .find_keys(eval_keys)
        .lock(LockScope::OnDemand)
        .acl(SC)
        .doc(
            "scripting",
            "7.0.0",
            "Executes a read-only server-side Lua script.",
        ),
    cmd("evalsha_ro", -3, EVAL_RO_F, evalsha_ro)
        .find_keys(eval_keys)
        .lock(LockScope::OnDemand)
        .acl(SC)
        .doc(
            "scripting",
            "7.0.0",
            "Executes a read-only server-side Lua script by SHA1 digest.",
        ),
    container("script", SCRIPT_SUBS).doc(
        "scripting",
        "2.6.0",
        "A container for Lua scripts management commands.",
    ),
];

const SCRIPT_SUBS: &[CommandSpec] = &[
    cmd("load", 3, F::NOSCRIPT.union(F::STALE), script_load)
        .acl(SC)
        .doc(
            "scripting",
            "2.6.0",
            "Loads a server-side Lua script to the script cache.",
        ),
    cmd("exists", -3, F::NOSCRIPT, script_exists).acl(SC).doc(
        "scripting",
        "2.6.0",
        "Determines whether server-side Lua scripts exist in the script cache.",
    ),
    cmd("flush", -2, F::NOSCRIPT, script_flush).acl(SC).doc(
        "scripting",
        "2.6.0",
        "Removes all server-side Lua scripts from the script cache.",
    ),
    cmd("kill", 2, F::NOSCRIPT.union(F::ALLOW_BUSY), script_kill)
        .acl(SC)
        .doc(
            "scripting",
            "2.6.0",
            "Terminates a server-side Lua script during execution.",
        ),
    cmd("help", 2, F::LOADING.union(F::STALE), script_help)
        .acl(SC)
        .doc(
            "scripting",
            "5.0.0",
            "Returns helpful text about the different subcommands.",
        ),
];

fn split_args(argv: &[Bytes]) -> CmdResult<(&[Bytes], &[Bytes])> {
    let n = int_arg(&argv[2])?;
    if n < 0 {
        return Err(CmdError::err("Number of keys can't be negative"));
    }
    let n = n as usize;
    if n > argv.len() - 3 {
        return Err(CmdError::err(
            "Number of keys can't be greater than number of args",
        ));
    }
    Ok((&argv[3..3 + n], &argv[3 + n..]))
}

fn eval_generic(ctx: &mut Ctx<'_>, argv: &[Bytes], by_sha: bool, ro: bool) -> CmdResult {
    let (keys, args) = split_args(argv)?;
    let source = if by_sha {
        scripting::Source::Sha(&argv[1])
    } else {
        scripting::Source::Body(&argv[1])
    };
    scripting::eval(ctx, source, keys, args, ro)
}

/// ```text
/// EVAL script numkeys [key [key ...]] [arg [arg ...]]
/// ```
fn eval(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    eval_generic(ctx, argv, false, false)
}

/// ```text
/// EVALSHA sha1 numkeys [key [key ...]] [arg [arg ...]]
/// ```
fn evalsha(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    eval_generic(ctx, argv, true, false)
}

fn eval_ro(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    eval_generic(ctx, argv, false, true)
}

fn evalsha_ro(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    eval_generic(ctx, argv, true, true)
}

/// ```text
/// SCRIPT LOAD script
/// ```
fn script_load(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    // Check the shebang and compile first so a broken script is refused,
    // as Redis does.
    let (_, skip) = scripting::shebang(&argv[2])?;
    if let Err(e) = mlua::Lua::new()
        .load(argv[2].get(skip..).unwrap_or_default())
        .set_name("@user_script")
        .into_function()
    {
        let msg = match &e {
            mlua::Error::SyntaxError { message, .. } => message.clone(),
            other => other.to_string(),
        };
        return Err(CmdError::err(format!(
            "Error compiling script (new function): {msg}"
        )));
    }
    Ok(Reply::bulk(ctx.srv.scripts.insert(&argv[2]).into_bytes()))
}

/// ```text
/// SCRIPT EXISTS sha1 [sha1 ...]
/// ```
fn script_exists(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    Ok(Reply::Array(
        argv[2..]
            .iter()
            .map(|s| Reply::Int(ctx.srv.scripts.contains(s) as i64))
            .collect(),
    ))
}

/// ```text
/// SCRIPT FLUSH [ASYNC | SYNC]
/// ```
fn script_flush(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    match argv.get(2) {
        None => {}
        Some(a) if argv.len() == 3 && (eq_ic(a, "ASYNC") || eq_ic(a, "SYNC")) => {}
        Some(_) => return Err(CmdError::err("SCRIPT FLUSH only support SYNC|ASYNC option")),
    }
    ctx.srv.scripts.flush();
    Ok(Reply::OK)
}

/// ```text
/// SCRIPT KILL
/// ```
fn script_kill(_ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    scripting::kill(true)?;
    Ok(Reply::OK)
}

fn script_help(_ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    Ok(help_reply(
        "SCRIPT",
        &[
            "EXISTS <sha1> [<sha1> ...]",
            "    Return information about the existence of the scripts in the script cache.",
            "FLUSH [ASYNC|SYNC]",
            "    Flush the Lua scripts cache. Very dangerous on replicas.",
            "    When called without the optional mode argument, the behavior is determined by the",
            "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
            "    * ASYNC: Asynchronously flush the scripts cache.",
            "    * SYNC: Synchronously flush the scripts cache.",
            "KILL",
            "    Kill the currently executing Lua script.",
            "LOAD <script>",
            "    Load a script into the scripts cache without executing it.",
        ],
    ))
}
