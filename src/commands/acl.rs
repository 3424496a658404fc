//! ACL commands (SETUSER GETUSER DELUSER LIST USERS WHOAMI CAT LOG DRYRUN
//! GENPASS LOAD SAVE HELP) and the glue dispatch, EXEC and scripts use to
//! check permissions and record the ACL log. The user model is `crate::acl`.

use std::sync::Arc;

use bytes::Bytes;

use crate::acl::{Denied, LogContext, LogReason, UserHandle};
use crate::commands::connection::help_reply;
use crate::commands::ctx::Ctx;
use crate::commands::spec::{cmd, container, CmdFlags as F, CommandSpec};
use crate::commands::table::{table, CommandEntry, Lookup};
use crate::connection::client::Client;
use crate::protocol::args::int_arg;
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::server::Server;

const SUB_F: F = F::NOSCRIPT.union(F::LOADING).union(F::STALE);
const ADMIN_F: F = SUB_F.union(F::ADMIN);

pub const SPECS: &[CommandSpec] = &[container("acl", ACL_SUBS).doc(
    "server",
    "6.0.0",
    "A container for Access List Control commands.",
)];

const ACL_SUBS: &[CommandSpec] = &[
    cmd("cat", -2, SUB_F, acl_cat).doc(
        "server",
        "6.0.0",
        "Lists the ACL categories, or the commands inside a category.",
    ),
    cmd("deluser", -3, ADMIN_F, acl_deluser).doc(
        "server",
        "6.0.0",
        "Deletes ACL users, and terminates their connections.",
    ),
    cmd("dryrun", -4, ADMIN_F, acl_dryrun).doc(
        "server",
        "7.0.0",
        "Simulates the execution of a command by a user, without executing the command.",
    ),
    cmd("genpass", -2, SUB_F, acl_genpass).doc(
        "server",
        "6.0.0",
        "Generates a pseudorandom, secure password that can be used to identify ACL users.",
    ),
    cmd("getuser", 3, ADMIN_F, acl_getuser).doc(
        "server",
        "6.0.0",
        "Lists the ACL rules of a user.",
    ),
    cmd("help", 2, F::LOADING.union(F::STALE), acl_help).doc(
        "server",
        "6.0.0",
        "Returns helpful text about the different subcommands.",
    ),
    cmd("list", 2, ADMIN_F, acl_list).doc(
        "server",
        "6.0.0",
        "Dumps the effective rules in ACL file format.",
    ),
    cmd("load", 2, ADMIN_F, acl_load).doc(
        "server",
        "6.0.0",
        "Reloads the rules from the configured ACL file.",
    ),
    cmd("log", -2, ADMIN_F, acl_log).doc(
        "server",
        "6.0.0",
        "Lists recent security events generated due to ACL rules.",
    ),
    cmd("save", 2, ADMIN_F, acl_save).doc(
        "server",
        "6.0.0",
        "Saves the effective ACL rules in the configured ACL file.",
    ),
    cmd("setuser", -3, ADMIN_F, acl_setuser).doc(
        "server",
        "6.0.0",
        "Creates and modifies an ACL user and its rules.",
    ),
    cmd("users", 2, ADMIN_F, acl_users).doc("server", "6.0.0", "Lists all ACL users."),
    cmd("whoami", 2, SUB_F, acl_whoami).doc(
        "server",
        "6.0.0",
        "Returns the authenticated username of the current connection.",
    ),
];

// ---------------------------------------------------------------------------
// Checks used by dispatch, EXEC and scripts
// ---------------------------------------------------------------------------

/// Checks `client`'s user against a command about to run (or be queued);
/// a refusal is written to the ACL log. Call only when the user is not
/// unrestricted (dispatch tests that flag first).
pub fn check(
    srv: &Server,
    client: &Client,
    entry: &CommandEntry,
    argv: &[Bytes],
    context: LogContext,
) -> Result<(), Denied> {
    let Some(h) = &client.user else {
        return Ok(());
    };
    if h.unrestricted() {
        return Ok(());
    }
    let r = h.get().check(entry, argv);
    if let Err(d) = r {
        let object = match d {
            Denied::Command => Bytes::from(entry.full_name.clone()),
            Denied::Key(i) | Denied::Channel(i) => argv.get(i).cloned().unwrap_or_default(),
        };
        log_denial(
            srv,
            client,
            d.log_reason_pub(),
            context,
            object,
            h.name.clone(),
        );
    }
    r
}

/// Records a denial (or failed AUTH) in the ACL log with the client's
/// CLIENT LIST line.
pub fn log_denial(
    srv: &Server,
    client: &Client,
    reason: LogReason,
    context: LogContext,
    object: Bytes,
    username: Bytes,
) {
    let info = crate::commands::connection::client_line(srv, &client.info);
    srv.acl.log(
        reason,
        context,
        object,
        username,
        info,
        srv.config.acllog_max_len().min(usize::MAX as u64) as usize,
        crate::commands::dispatch::unix_ms(),
    );
}

/// The queued-command check EXEC runs: rules may have changed since
/// queueing.
pub fn exec_check(
    srv: &Server,
    client: &Client,
    entry: &CommandEntry,
    argv: &[Bytes],
) -> Option<Reply> {
    match check(srv, client, entry, argv, LogContext::Multi) {
        Ok(()) => None,
        Err(d) => Some(Reply::Error(CmdError::new(format!(
            "NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call. This command is no longer allowed for the following reason: {}",
            d.exec_reason()
        )))),
    }
}

/// The check for `redis.call` / `redis.pcall`: the script error text.
pub fn script_check(
    srv: &Server,
    client: &Client,
    entry: &CommandEntry,
    argv: &[Bytes],
) -> Result<(), CmdError> {
    check(srv, client, entry, argv, LogContext::Lua).map_err(|d| {
        CmdError::new(format!(
            "ERR The user executing the script {}",
            d.script_message()
        ))
    })
}

/// SORT BY/GET patterns read arbitrary keys: Redis allows them only when
/// a selector allowing the command grants read access to every key.
pub fn full_key_read_access(ctx: &Ctx<'_>, argv: &[Bytes]) -> bool {
    let Some(h) = &ctx.client.user else {
        return true;
    };
    if h.unrestricted() {
        return true;
    }
    match table().lookup(argv) {
        Lookup::Found(e) => h.get().check_cmd_all_keys(e, argv, crate::acl::PERM_READ),
        _ => true,
    }
}

/// Switches the connection to an authenticated user.
pub fn login(client: &mut Client, h: Arc<UserHandle>) {
    client.authenticated = true;
    *client.info.user.lock() = h.name_str();
    client.user = Some(h);
}

/// AUTH / HELLO AUTH credentials check; failures go to the ACL log.
pub fn authenticate(ctx: &mut Ctx<'_>, cmd: &Bytes, user: &[u8], pass: &[u8]) -> CmdResult<()> {
    let found = match ctx.srv.check_password(user, pass) {
        Some(h) => Some((h, 0)),
        // An Entra ID-style token as the password (crate::entra): the
        // login lasts until the token's exp.
        None => {
            ctx.srv
                .entra
                .authenticate(ctx.srv, user, pass, crate::commands::dispatch::unix_ms())
        }
    };
    match found {
        Some((h, deadline)) => {
            login(ctx.client, h);
            ctx.client.auth_deadline = deadline;
            Ok(())
        }
        None => {
            let context = if ctx.client.multi.is_some() {
                LogContext::Multi
            } else {
                LogContext::Toplevel
            };
            log_denial(
                ctx.srv,
                ctx.client,
                LogReason::Auth,
                context,
                cmd.clone(),
                Bytes::copy_from_slice(user),
            );
            Err(CmdError::WRONGPASS)
        }
    }
}

/// Disconnects the clients of removed users (the current one after its
/// reply, as Redis does).
fn kill_clients_of(ctx: &mut Ctx<'_>, handles: &[Arc<UserHandle>]) {
    for h in handles {
        if ctx.client.user.as_ref().is_some_and(|u| Arc::ptr_eq(u, h)) {
            ctx.client.close_after_reply = true;
            ctx.client.authenticated = false;
        }
    }
    let names: Vec<String> = handles.iter().map(|h| h.name_str()).collect();
    let ids: Vec<u64> = ctx
        .srv
        .clients
        .iter()
        .filter(|c| c.id != ctx.client.id && names.iter().any(|n| *c.user.lock() == *n))
        .map(|c| c.id)
        .collect();
    for id in ids {
        disconnect(ctx.srv, id);
    }
}

/// Closes a client and drops it from the registry at once, so CLIENT LIST
/// no longer shows it (Redis frees such clients synchronously); its task
/// finishes the cleanup.
fn disconnect(srv: &Server, id: u64) {
    if let Some((_, c)) = srv.clients.remove(&id) {
        c.request_kill();
    }
}

/// Loads users from `user` directives or `aclfile` at startup (an error
/// aborts startup, as in Redis; both at once is refused).
pub fn load_at_startup(srv: &Server) -> Result<(), String> {
    let file = srv.config.aclfile();
    let directives = srv.config.user_directives();
    if !file.is_empty() && !directives.is_empty() {
        return Err("Configuring Redis with users defined in redis.conf and at the same setting an ACL file path is invalid. This setup is very likely to lead to configuration errors and security holes, please define either an ACL file or declare users directly in your redis.conf, but not both.".into());
    }
    for d in &directives {
        let Some((name, rules)) = d.split_first() else {
            continue;
        };
        if name.bytes().any(|c| c == 0 || c.is_ascii_whitespace()) {
            return Err("Spaces not allowed in ACL usernames".into());
        }
        let mut ops: Vec<Bytes> = Vec::with_capacity(rules.len() + 1);
        if name == "default" {
            // The default user is redefined from scratch.
            ops.push(Bytes::from_static(b"reset"));
        }
        ops.extend(rules.iter().map(|r| Bytes::copy_from_slice(r.as_bytes())));
        srv.acl
            .set_user(name.as_bytes(), &ops, pubsub_all(srv))
            .map_err(|e| format!("Error loading ACL rules for the user named '{name}': {e}"))?;
    }
    if file.is_empty() {
        return Ok(());
    }
    let text = std::fs::read_to_string(&file)
        .map_err(|e| format!("Error loading ACLs, opening file '{file}': {e}"))?;
    srv.acl
        .load_text(&text, &file, pubsub_all(srv))
        .map(|_| ())
        .map_err(|e| format!("Aborting Redis startup because of ACL errors: {e}"))
}

fn pubsub_all(srv: &Server) -> bool {
    srv.config.acl_pubsub_default() == crate::config::AclPubsubDefault::Allchannels
}

fn safe(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

fn subcommand_error(sub: &[u8]) -> CmdError {
    CmdError::new(format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try ACL HELP.",
        String::from_utf8_lossy(sub)
    ))
}

// ---------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------

fn acl_setuser(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    // Rules may hold passwords: the slow log shows none of the arguments.
    for i in 2..argv.len() {
        ctx.client.redact(i);
    }
    let name = &argv[2];
    if name
        .iter()
        .any(|&c| c == 0 || c.is_ascii_whitespace() || c == 0x0b)
    {
        return Err(CmdError::err(
            "Usernames can't contain spaces or null characters",
        ));
    }
    let (h, old) = ctx
        .srv
        .acl
        .set_user(name, &argv[3..], pubsub_all(ctx.srv))
        .map_err(|e| CmdError::new(format!("ERR {}", safe(&e))))?;
    if let Some(old) = old {
        kill_revoked_subscribers(ctx, &h, &old);
    }
    Ok(Reply::OK)
}

/// Disconnects the user's subscribers whose subscriptions the new rules
/// no longer allow (Redis 7.0 does this on ACL SETUSER).
fn kill_revoked_subscribers(ctx: &mut Ctx<'_>, h: &Arc<UserHandle>, old: &crate::acl::User) {
    let new = h.get();
    let Some(list) = crate::acl::channels_shrunk(&new, old) else {
        return;
    };
    let name = h.name_str();
    let mut victims = std::collections::HashSet::new();
    ctx.srv.pubsub.for_each_subscription(|id, is_pattern, ch| {
        if !crate::acl::subscription_allowed(&list, ch, is_pattern) {
            victims.insert(id);
        }
    });
    // The current client's own subscriptions live in its state.
    let me = ctx.client.id;
    if ctx.client.info.user.lock().as_str() == name {
        let subs = &ctx.client.pubsub;
        let bad = subs
            .channels
            .iter()
            .chain(subs.shard_channels.iter())
            .any(|c| !crate::acl::subscription_allowed(&list, c, false))
            || subs
                .patterns
                .iter()
                .any(|p| !crate::acl::subscription_allowed(&list, p, true));
        if bad {
            ctx.client.close_after_reply = true;
        }
    }
    for id in victims {
        if id == me {
            continue;
        }
        let same_user = ctx
            .srv
            .clients
            .get(&id)
            .is_some_and(|c| *c.user.lock() == name);
        if same_user {
            disconnect(ctx.srv, id);
        }
    }
}

fn acl_deluser(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    if argv[2..].iter().any(|n| n.as_ref() == b"default") {
        return Err(CmdError::err("The 'default' user cannot be removed"));
    }
    let removed = ctx.srv.acl.del_users(&argv[2..]);
    let n = removed.len();
    kill_clients_of(ctx, &removed);
    Ok(Reply::Int(n as i64))
}

fn bulk(v: Vec<u8>) -> Reply {
    Reply::Bulk(Bytes::from(v))
}

fn st(s: &'static str) -> Reply {
    Reply::Bulk(Bytes::from_static(s.as_bytes()))
}

fn selector_fields(s: &crate::acl::Selector) -> Vec<(Reply, Reply)> {
    vec![
        (st("commands"), bulk(s.describe_commands().into_bytes())),
        (st("keys"), bulk(s.describe_keys())),
        (st("channels"), bulk(s.describe_channels())),
    ]
}

fn acl_getuser(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let Some(h) = ctx.srv.acl.get_user(&argv[2]) else {
        return Ok(Reply::Null);
    };
    let u = h.get();
    let (root, others) = u.selectors();
    let mut m = vec![
        (
            st("flags"),
            Reply::Set(u.flag_names().into_iter().map(st).collect()),
        ),
        (
            st("passwords"),
            Reply::Array(
                u.passwords
                    .iter()
                    .map(|p| bulk(p.as_bytes().to_vec()))
                    .collect(),
            ),
        ),
    ];
    m.extend(selector_fields(root));
    m.push((
        st("selectors"),
        Reply::Array(
            others
                .iter()
                .map(|s| Reply::Map(selector_fields(s)))
                .collect(),
        ),
    ));
    Ok(Reply::Map(m))
}

fn describe_line(h: &UserHandle) -> Vec<u8> {
    let mut line = b"user ".to_vec();
    line.extend_from_slice(&h.name);
    line.push(b' ');
    line.extend_from_slice(&h.get().describe());
    line
}

/// Every user as a `user <name> <rules>` line (CONFIG REWRITE).
pub fn config_lines(srv: &Server) -> Vec<String> {
    srv.acl
        .users()
        .iter()
        .map(|h| String::from_utf8_lossy(&describe_line(h)).into_owned())
        .collect()
}

fn acl_list(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    Ok(Reply::Array(
        ctx.srv
            .acl
            .users()
            .iter()
            .map(|h| bulk(describe_line(h)))
            .collect(),
    ))
}

fn acl_users(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    Ok(Reply::Array(
        ctx.srv
            .acl
            .user_names()
            .into_iter()
            .map(Reply::Bulk)
            .collect(),
    ))
}

fn acl_whoami(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    Ok(match &ctx.client.user {
        Some(h) => Reply::Bulk(h.name.clone()),
        None => Reply::Null,
    })
}

const NO_ACLFILE: &str = "ERR This Redis instance is not configured to use an ACL file. You may want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) in order to store users in the Redis configuration.";

fn acl_load(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    let file = ctx.srv.config.aclfile();
    if file.is_empty() {
        return Err(CmdError::from_static(NO_ACLFILE));
    }
    let text = std::fs::read_to_string(&file).map_err(|e| {
        CmdError::new(format!(
            "ERR Error loading ACLs, opening file '{file}': {}",
            safe(&e.to_string())
        ))
    })?;
    let old = ctx
        .srv
        .acl
        .load_text(&text, &file, pubsub_all(ctx.srv))
        .map_err(|e| CmdError::new(format!("ERR {}", safe(&e))))?;
    kill_clients_of(ctx, &old);
    Ok(Reply::OK)
}

fn acl_save(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    let file = ctx.srv.config.aclfile();
    if file.is_empty() {
        return Err(CmdError::from_static(NO_ACLFILE));
    }
    let text = ctx.srv.acl.save_text();
    let tmp = format!(
        "{file}.tmp-{}-{}",
        std::process::id(),
        crate::commands::dispatch::unix_ms()
    );
    let res = std::fs::write(&tmp, &text).and_then(|_| std::fs::rename(&tmp, &file));
    if let Err(e) = res {
        tracing::warn!("Writing ACL file for ACL SAVE: {e}");
        let _ = std::fs::remove_file(&tmp);
        return Err(CmdError::from_static(
            "ERR There was an error trying to save the ACLs. Please check the server logs for more information",
        ));
    }
    Ok(Reply::OK)
}

fn acl_cat(_ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    match argv.len() {
        2 => Ok(Reply::Array(
            crate::commands::spec::Acl::ALL_NAMES
                .iter()
                .map(|(_, n)| st(n))
                .collect(),
        )),
        3 => {
            let cat = crate::acl::category_by_name(&argv[2]).ok_or_else(|| {
                let n = &argv[2][..argv[2].len().min(128)];
                CmdError::new(format!(
                    "ERR Unknown category '{}'",
                    safe(&String::from_utf8_lossy(n))
                ))
            })?;
            Ok(Reply::Array(
                table()
                    .all()
                    .filter(|e| e.spec.acl_categories().intersects(cat))
                    .map(|e| Reply::Bulk(Bytes::from(e.full_name.clone())))
                    .collect(),
            ))
        }
        _ => Err(subcommand_error(&argv[1])),
    }
}

fn acl_genpass(_ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let bits = match argv.len() {
        2 => 256,
        3 => int_arg(&argv[2])?,
        _ => return Err(subcommand_error(&argv[1])),
    };
    if bits <= 0 || bits > 4096 {
        return Err(CmdError::err(
            "ACL GENPASS argument must be the number of bits for the output password, a positive number up to 4096",
        ));
    }
    let chars = ((bits + 3) / 4) as usize;
    let mut bytes = vec![0u8; chars.div_ceil(2)];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| CmdError::INTERNAL)?;
    let mut s = String::with_capacity(chars + 1);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s.truncate(chars);
    Ok(Reply::Bulk(Bytes::from(s)))
}

fn acl_log(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let mut count: i64 = 10;
    match argv.len() {
        2 => {}
        3 => {
            if argv[2].eq_ignore_ascii_case(b"reset") {
                ctx.srv.acl.log_reset();
                return Ok(Reply::OK);
            }
            count = int_arg(&argv[2])?.max(0);
        }
        _ => return Err(subcommand_error(&argv[1])),
    }
    let now = crate::commands::dispatch::unix_ms();
    let entries = ctx.srv.acl.log_entries(count as usize);
    Ok(Reply::Array(
        entries
            .into_iter()
            .map(|e| {
                Reply::Map(vec![
                    (st("count"), Reply::Int(e.count as i64)),
                    (st("reason"), st(e.reason_str())),
                    (st("context"), st(e.context_str())),
                    (st("object"), Reply::Bulk(e.object.clone())),
                    (st("username"), Reply::Bulk(e.username.clone())),
                    (
                        st("age-seconds"),
                        Reply::Double(now.saturating_sub(e.ctime) as f64 / 1000.0),
                    ),
                    (st("client-info"), Reply::Bulk(Bytes::from(e.client_info))),
                ])
            })
            .collect(),
    ))
}

fn acl_dryrun(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let Some(h) = ctx.srv.acl.get_user(&argv[2]) else {
        return Err(CmdError::new(format!(
            "ERR User '{}' not found",
            safe(&String::from_utf8_lossy(&argv[2]))
        )));
    };
    let cmdv = &argv[3..];
    let entry = match table().lookup(cmdv) {
        Lookup::Found(e) => e,
        _ => {
            return Err(CmdError::new(format!(
                "ERR Command '{}' not found",
                safe(&String::from_utf8_lossy(&argv[3]))
            )))
        }
    };
    if !entry.spec.arity_ok(cmdv.len()) {
        return Err(CmdError::new(format!(
            "ERR wrong number of arguments for '{}' command",
            entry.full_name
        )));
    }
    Ok(match h.get().check(entry, cmdv) {
        Ok(()) => Reply::OK,
        Err(Denied::Command) => bulk(
            format!(
                "This user has no permissions to run the '{}' command",
                entry.full_name
            )
            .into_bytes(),
        ),
        Err(Denied::Key(i)) => {
            let mut m = b"This user has no permissions to access the '".to_vec();
            m.extend_from_slice(&cmdv[i]);
            m.extend_from_slice(b"' key");
            bulk(m)
        }
        Err(Denied::Channel(i)) => {
            let mut m = b"This user has no permissions to access the '".to_vec();
            m.extend_from_slice(&cmdv[i]);
            m.extend_from_slice(b"' channel");
            bulk(m)
        }
    })
}

fn acl_help(_ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    Ok(help_reply(
        "ACL",
        &[
            "CAT [<category>]",
            "    List all commands that belong to <category>, or all command categories",
            "    when no category is specified.",
            "DELUSER <username> [<username> ...]",
            "    Delete a list of users.",
            "DRYRUN <username> <command> [<arg> ...]",
            "    Returns whether the user can execute the given command without executing the command.",
            "GETUSER <username>",
            "    Get the user's details.",
            "GENPASS [<bits>]",
            "    Generate a secure 256-bit user password. The optional `bits` argument can",
            "    be used to specify a different size.",
            "LIST",
            "    Show users details in config file format.",
            "LOAD",
            "    Reload users from the ACL file.",
            "LOG [<count> | RESET]",
            "    Show the ACL log entries.",
            "SAVE",
            "    Save the current config to the ACL file.",
            "SETUSER <username> <attribute> [<attribute> ...]",
            "    Create or modify a user with the specified attributes.",
            "USERS",
            "    List all the registered usernames.",
            "WHOAMI",
            "    Return the current connection username.",
        ],
    ))
}
