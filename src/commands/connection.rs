//! Connection commands: PING ECHO QUIT RESET SELECT AUTH HELLO CLIENT.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use crate::commands::ctx::Ctx;
use crate::commands::spec::{cmd, container, Acl, CmdFlags as F, CommandSpec};
use crate::commands::table::table;
use crate::connection::client::{ClientInfo, ReplyMode};
use crate::protocol::args::{c_int_arg, eq_ic, int_arg, Args};
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::server::Server;

const CONN: Acl = Acl::CONNECTION;
const HELLO_FLAGS: F = F::NOSCRIPT
    .union(F::LOADING)
    .union(F::STALE)
    .union(F::FAST)
    .union(F::NO_AUTH)
    .union(F::ALLOW_BUSY);

pub const SPECS: &[CommandSpec] = &[
    cmd("ping", -1, F::FAST, ping).acl(CONN).doc(
        "connection",
        "1.0.0",
        "Returns the server's liveliness response.",
    ),
    cmd("echo", 2, F::FAST.union(F::STALE).union(F::LOADING), echo)
        .acl(CONN)
        .doc("connection", "1.0.0", "Returns the given string."),
    cmd(
        "quit",
        -1,
        F::NO_AUTH
            .union(F::LOADING)
            .union(F::STALE)
            .union(F::FAST)
            .union(F::ALLOW_BUSY)
            .union(F::NOSCRIPT),
        quit,
    )
    .acl(CONN)
    .doc("connection", "1.0.0", "Closes the connection."),
    cmd(
        "reset",
        1,
        F::NO_AUTH
            .union(F::LOADING)
            .union(F::STALE)
            .union(F::FAST)
            .union(F::ALLOW_BUSY)
            .union(F::NOSCRIPT),
        reset,
    )
    .acl(CONN)
    .doc("connection", "6.2.0", "Resets the connection."),
    cmd(
        "select",
        2,
        F::LOADING.union(F::STALE).union(F::FAST),
        select,
    )
    .acl(CONN)
    .doc("connection", "1.0.0", "Changes the selected database."),
    cmd("auth", -2, HELLO_FLAGS, auth).acl(CONN).doc(
        "connection",
        "1.0.0",
        "Authenticates the connection.",
    ),
    cmd("hello", -1, HELLO_FLAGS, hello).acl(CONN).doc(
        "connection",
        "6.0.0",
        "Handshakes with the Redis server.",
    ),
    container("client", CLIENT_SUBS).doc(
        "connection",
        "2.4.0",
        "A container for client connection commands.",
    ),
];

const CLIENT_F: F = F::NOSCRIPT.union(F::LOADING).union(F::STALE);

const CLIENT_SUBS: &[CommandSpec] = &[
    cmd("id", 2, CLIENT_F, client_id).acl(CONN).doc(
        "connection",
        "5.0.0",
        "Returns the unique client ID of the connection.",
    ),
    cmd("setname", 3, CLIENT_F, client_setname).acl(CONN).doc(
        "connection",
        "2.6.9",
        "Sets the connection name.",
    ),
    cmd("getname", 2, CLIENT_F, client_getname).acl(CONN).doc(
        "connection",
        "2.6.9",
        "Returns the name of the connection.",
    ),
    cmd("list", -2, CLIENT_F.union(F::ADMIN), client_list)
        .acl(CONN)
        .doc("connection", "2.4.0", "Lists open connections."),
    cmd("info", 2, CLIENT_F, client_info).acl(CONN).doc(
        "connection",
        "6.2.0",
        "Returns information about the connection.",
    ),
    cmd("kill", -3, CLIENT_F.union(F::ADMIN), client_kill)
        .acl(CONN)
        .doc("connection", "2.4.0", "Terminates open connections."),
    cmd("setinfo", 4, CLIENT_F, client_setinfo).acl(CONN).doc(
        "connection",
        "7.2.0",
        "Sets information specific to the client or connection.",
    ),
    cmd("no-evict", 3, CLIENT_F.union(F::ADMIN), client_no_evict)
        .acl(CONN)
        .doc(
            "connection",
            "7.0.0",
            "Sets the client eviction mode of the connection.",
        ),
    cmd("reply", 3, CLIENT_F, client_reply).acl(CONN).doc(
        "connection",
        "3.2.0",
        "Instructs the server whether to reply to commands.",
    ),
    cmd("unblock", -3, CLIENT_F.union(F::ADMIN), client_unblock)
        .acl(CONN)
        .doc(
            "connection",
            "5.0.0",
            "Unblocks a client blocked by a blocking command from a different connection.",
        ),
    cmd("pause", -3, CLIENT_F.union(F::ADMIN), client_pause)
        .acl(CONN)
        .doc(
            "connection",
            "3.0.0",
            "Suspends commands processing.",
        ),
    cmd("unpause", 2, CLIENT_F.union(F::ADMIN), client_unpause)
        .acl(CONN)
        .doc(
            "connection",
            "6.2.0",
            "Resumes processing commands from paused clients.",
        ),
    cmd("tracking", -3, CLIENT_F, super::tracking::client_tracking)
        .acl(CONN)
        .doc(
            "connection",
            "6.0.0",
            "Controls server-assisted client-side caching for the connection.",
        ),
    cmd("caching", 3, CLIENT_F, super::tracking::client_caching)
        .acl(CONN)
        .doc(
            "connection",
            "6.0.0",
            "Instructs the server whether to track the keys in the next request.",
        ),
    cmd("getredir", 2, CLIENT_F, super::tracking::client_getredir)
        .acl(CONN)
        .doc(
            "connection",
            "6.0.0",
            "Returns the client ID to which the connection's tracking notifications are redirected.",
        ),
    cmd("trackinginfo", 2, CLIENT_F, super::tracking::client_trackinginfo)
        .acl(CONN)
        .doc(
            "connection",
            "6.2.0",
            "Returns information about server-assisted client-side caching for the connection.",
        ),
    cmd("help", 2, F::LOADING.union(F::STALE), client_help)
        .acl(CONN)
        .doc(
            "connection",
            "5.0.0",
            "Returns helpful text about the different subcommands.",
        ),
];

/// ```text
/// PING [message]
/// ```
fn ping(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    if ctx.client.resp == 2 && ctx.client.pubsub.active() && argv.len() <= 2 {
        // RESP2 subscribed mode: PING answers like a pushed message.
        let msg = argv.get(1).cloned().unwrap_or_default();
        return Ok(Reply::Array(vec![
            Reply::bulk(Bytes::from_static(b"pong")),
            Reply::Bulk(msg),
        ]));
    }
    match argv.len() {
        1 => Ok(Reply::Status("PONG")),
        2 => Ok(Reply::Bulk(argv[1].clone())),
        _ => Err(CmdError::arity("ping")),
    }
}

fn echo(_ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    Ok(Reply::Bulk(argv[1].clone()))
}

fn quit(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    ctx.client.close_after_reply = true;
    Ok(Reply::OK)
}

fn reset(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    crate::commands::transaction::discard_state(ctx.srv, ctx.client);
    if ctx.client.info.monitor.swap(false, Ordering::Relaxed) {
        ctx.srv.monitors.remove(ctx.client.id);
    }
    ctx.srv
        .pubsub
        .remove_client(&mut ctx.client.pubsub, ctx.client.id);
    ctx.srv.tracking.disable(&ctx.client.info);
    ctx.client.tracking = Default::default();
    let c = &mut *ctx.client;
    c.select(0);
    c.set_resp(2);
    c.reply_mode = ReplyMode::On;
    // Back to the default user, authenticated only if it needs no password.
    c.authenticated = !ctx.srv.auth_required();
    c.auth_deadline = 0;
    if c.user.is_some() {
        c.user = Some(ctx.srv.acl.default_user());
        *c.info.user.lock() = "default".to_string();
    }
    *c.info.name.lock() = None;
    c.info.no_evict.store(false, Ordering::Relaxed);
    Ok(Reply::Status("RESET"))
}

/// ```text
/// SELECT index
/// ```
fn select(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let idx = c_int_arg(&argv[1], None)?;
    if ctx.srv.cluster.get().is_some() && idx != 0 {
        return Err(CmdError::err("SELECT is not allowed in cluster mode"));
    }
    if idx < 0 || idx as usize >= ctx.srv.keyspace.num_dbs() {
        return Err(CmdError::DB_RANGE);
    }
    ctx.client.select(idx as usize);
    Ok(Reply::OK)
}

/// Authenticates; a failure is logged with the command name as typed.
fn try_auth(ctx: &mut Ctx<'_>, cmd: &Bytes, user: &[u8], pass: &[u8]) -> CmdResult<()> {
    crate::commands::acl::authenticate(ctx, cmd, user, pass)
}

/// ```text
/// AUTH [username] password
/// ```
fn auth(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    // Passwords (and the user name of the failed form) never reach the
    // slow log.
    for i in 1..argv.len().min(3) {
        ctx.client.redact(i);
    }
    match argv.len() {
        2 => {
            if ctx.srv.acl.default_nopass() {
                return Err(CmdError::err(
                    "AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
                ));
            }
            try_auth(ctx, &argv[0], b"default", &argv[1])?;
        }
        3 => try_auth(ctx, &argv[0], &argv[1], &argv[2])?,
        _ => return Err(CmdError::SYNTAX),
    }
    Ok(Reply::OK)
}

/// ```text
/// HELLO [protover [AUTH username password] [SETNAME clientname]]
/// ```
fn hello(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let mut ver = None;
    let mut a = Args::new(argv, 1);
    if let Some(v) = a.next_opt() {
        let n = int_arg(v)
            .map_err(|_| CmdError::err("Protocol version is not an integer or out of range"))?;
        if !(2..=3).contains(&n) {
            return Err(CmdError::from_static(
                "NOPROTO unsupported protocol version",
            ));
        }
        ver = Some(n as u8);
    }
    let mut creds = None;
    let mut name = None;
    while let Some(opt) = a.next_opt() {
        if eq_ic(opt, "auth") && a.remaining() >= 2 {
            let at = argv.len() - a.remaining();
            ctx.client.redact(at);
            ctx.client.redact(at + 1);
            let u = a.next_arg()?;
            let p = a.next_arg()?;
            creds = Some((u.clone(), p.clone()));
        } else if eq_ic(opt, "setname") && a.remaining() >= 1 {
            name = Some(a.next_arg()?.clone());
        } else {
            return Err(CmdError::new(format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(opt)
            )));
        }
    }
    if let Some((u, p)) = creds {
        try_auth(ctx, &argv[0], &u, &p)?;
    }
    if !ctx.client.authenticated && ctx.srv.auth_required() {
        return Err(CmdError::from_static(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
        ));
    }
    if let Some(n) = &name {
        validate_name(n)?;
        *ctx.client.info.name.lock() = if n.is_empty() {
            None
        } else {
            Some(crate::util::detach(n))
        };
    }
    if let Some(v) = ver {
        ctx.client.set_resp(v);
    }
    let st = |s: &'static str| Reply::bulk(Bytes::from_static(s.as_bytes()));
    Ok(Reply::Map(vec![
        (st("server"), st("redis")),
        (st("version"), st(crate::REDIS_VERSION)),
        (st("proto"), Reply::Int(ctx.client.resp as i64)),
        (st("id"), Reply::Int(ctx.client.id as i64)),
        (st("mode"), st(ctx.srv.mode())),
        (st("role"), st("master")),
        (st("modules"), Reply::Array(vec![])),
    ]))
}

fn validate_name(n: &[u8]) -> CmdResult<()> {
    if n.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return Err(CmdError::err(
            "Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    Ok(())
}

fn client_id(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(ctx.client.id as i64))
}

fn client_setname(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    validate_name(&argv[2])?;
    *ctx.client.info.name.lock() = if argv[2].is_empty() {
        None
    } else {
        Some(crate::util::detach(&argv[2]))
    };
    Ok(Reply::OK)
}

fn client_getname(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    Ok(Reply::opt_bulk(ctx.client.info.name.lock().clone()))
}

/// One CLIENT LIST line, with Redis's field names and order.
pub fn client_line(srv: &Server, c: &ClientInfo) -> String {
    let now = crate::commands::dispatch::unix_ms();
    let name = c
        .name
        .lock()
        .as_ref()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .unwrap_or_default();
    let cmd = table()
        .by_id(c.last_cmd.load(Ordering::Relaxed))
        .map(|e| e.full_name.clone())
        .unwrap_or_else(|| "NULL".into());
    let idle = now.saturating_sub(c.last_interaction.load(Ordering::Relaxed)) / 1000;
    // Arguments are slices of the query buffer here, counted in qbuf.
    let argv_mem = 0;
    let pushed = c.outbox.lock().as_ref().map_or(0, |o| o.pending());
    let mut flags = String::new();
    let (sub, psub, ssub) = (
        c.sub.load(Ordering::Relaxed),
        c.psub.load(Ordering::Relaxed),
        c.ssub.load(Ordering::Relaxed),
    );
    // Redis's order: O, P, b, t, R, B, e.
    if c.replica.load(Ordering::Relaxed) {
        flags.push('S');
    }
    if c.master.load(Ordering::Relaxed) {
        flags.push('M');
    }
    if c.monitor.load(Ordering::Relaxed) {
        flags.push('O');
    }
    if sub + psub + ssub > 0 {
        flags.push('P');
    }
    if srv.blocking.is_blocked(c.id) || srv.repl.is_waiting(c.id) {
        flags.push('b');
    }
    let tf = c.tracking.load(Ordering::Relaxed);
    for (bit, ch) in [
        (crate::server::tracking::flags::ON, 't'),
        (crate::server::tracking::flags::BROKEN_REDIR, 'R'),
        (crate::server::tracking::flags::BCAST, 'B'),
    ] {
        if tf & bit != 0 {
            flags.push(ch);
        }
    }
    if c.unix {
        flags.push('U');
    }
    if c.no_evict.load(Ordering::Relaxed) {
        flags.push('e');
    }
    if flags.is_empty() {
        flags.push('N');
    }
    let _ = srv;
    format!(
        "id={} addr={} laddr={} fd=8 name={} age={} idle={} flags={} db={} sub={} psub={} ssub={} multi={} qbuf={} qbuf-free={} argv-mem={} multi-mem={} rbs={} rbp=0 obl=0 oll=0 omem={} tot-mem={} events=r cmd={} user={} redir={} resp={} lib-name={} lib-ver={}",
        c.id,
        c.addr,
        c.laddr,
        name,
        c.created.elapsed().as_secs(),
        idle,
        flags,
        c.db.load(Ordering::Relaxed),
        sub,
        psub,
        ssub,
        c.multi_len.load(Ordering::Relaxed),
        c.qbuf.load(Ordering::Relaxed),
        c.qbuf_cap
            .load(Ordering::Relaxed)
            .saturating_sub(c.qbuf.load(Ordering::Relaxed)),
        argv_mem,
        c.multi_mem.load(Ordering::Relaxed),
        c.rbuf_cap.load(Ordering::Relaxed),
        c.omem.load(Ordering::Relaxed) + pushed,
        c.mem_besides_pushed() + pushed,
        cmd,
        c.user.lock(),
        crate::server::tracking::redir_field(c),
        c.resp.load(Ordering::Relaxed),
        c.lib_name.lock().clone().unwrap_or_default(),
        c.lib_ver.lock().clone().unwrap_or_default(),
    )
}

/// ```text
/// CLIENT LIST [TYPE normal|master|replica|pubsub] [ID client-id [client-id ...]]
/// ```
fn client_list(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let mut a = Args::new(argv, 2);
    let mut ids: Option<Vec<u64>> = None;
    let mut only_type: Option<ClientType> = None;
    while let Some(opt) = a.next_opt() {
        if eq_ic(opt, "type") {
            only_type = Some(ClientType::parse(a.next_arg()?)?);
        } else if eq_ic(opt, "id") {
            let mut v = Vec::new();
            for id in a.rest() {
                let n = int_arg(id)
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| CmdError::err("Invalid client ID"))?;
                v.push(n as u64);
            }
            if v.is_empty() {
                return Err(CmdError::SYNTAX);
            }
            ids = Some(v);
            break;
        } else {
            return Err(CmdError::SYNTAX);
        }
    }
    // A client already told to close (killed, evicted) is gone as far as
    // the caller can tell, as in Redis, which frees it before answering.
    let mut infos: Vec<_> = ctx
        .srv
        .clients
        .iter()
        .filter(|e| !e.killed.load(Ordering::Relaxed))
        .map(|e| e.value().clone())
        .collect();
    infos.sort_by_key(|c| c.id);
    let mut out = String::new();
    for c in infos {
        if let Some(ids) = &ids {
            if !ids.contains(&c.id) {
                continue;
            }
        }
        if only_type.is_some_and(|t| !t.matches(&c)) {
            continue;
        }
        out.push_str(&client_line(ctx.srv, &c));
        out.push('\n');
    }
    Ok(Reply::Verbatim(*b"txt", Bytes::from(out)))
}

fn client_info(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    let mut s = client_line(ctx.srv, &ctx.client.info);
    s.push('\n');
    Ok(Reply::Verbatim(*b"txt", Bytes::from(s)))
}

/// ```text
/// CLIENT KILL ip:port
/// CLIENT KILL [ID id] [ADDR ip:port] [LADDR ip:port] [USER name] [SKIPME yes|no] [TYPE t]
/// ```
fn client_kill(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    if argv.len() == 3 {
        let addr = String::from_utf8_lossy(&argv[2]).into_owned();
        let target = ctx
            .srv
            .clients
            .iter()
            .find(|c| c.addr == addr)
            .map(|c| c.value().clone());
        return match target {
            Some(c) => {
                // Killing oneself still answers first (as the filter form).
                if c.id == ctx.client.id {
                    ctx.client.close_after_reply = true;
                } else {
                    c.request_kill();
                }
                Ok(Reply::OK)
            }
            None => Err(CmdError::err("No such client")),
        };
    }
    let mut id = None;
    let mut addr = None;
    let mut laddr = None;
    let mut user = None;
    let mut skipme = true;
    let mut only_type: Option<ClientType> = None;
    let mut a = Args::new(argv, 2);
    while let Some(opt) = a.next_opt() {
        let val = a.next_arg()?;
        if eq_ic(opt, "id") {
            let n = int_arg(val)
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| CmdError::err("client-id should be greater than 0"))?;
            id = Some(n as u64);
        } else if eq_ic(opt, "addr") {
            addr = Some(String::from_utf8_lossy(val).into_owned());
        } else if eq_ic(opt, "laddr") {
            laddr = Some(String::from_utf8_lossy(val).into_owned());
        } else if eq_ic(opt, "user") {
            if ctx.srv.acl.get_user(val).is_none() {
                return Err(CmdError::new(format!(
                    "ERR No such user '{}'",
                    String::from_utf8_lossy(val)
                )));
            }
            user = Some(String::from_utf8_lossy(val).into_owned());
        } else if eq_ic(opt, "skipme") {
            skipme = if eq_ic(val, "yes") {
                true
            } else if eq_ic(val, "no") {
                false
            } else {
                return Err(CmdError::SYNTAX);
            };
        } else if eq_ic(opt, "type") {
            only_type = Some(ClientType::parse(val)?);
        } else {
            return Err(CmdError::SYNTAX);
        }
    }
    let me = ctx.client.id;
    let mut killed = 0;
    let targets: Vec<_> = ctx.srv.clients.iter().map(|c| c.value().clone()).collect();
    for c in targets {
        if id.is_some_and(|i| i != c.id)
            || addr.as_ref().is_some_and(|a| *a != c.addr)
            || laddr.as_ref().is_some_and(|a| *a != c.laddr)
            || user.as_ref().is_some_and(|u| *u != *c.user.lock())
            || (skipme && c.id == me)
            || only_type.is_some_and(|t| !t.matches(&c))
        {
            continue;
        }
        if c.id == me {
            ctx.client.close_after_reply = true;
        } else {
            c.request_kill();
        }
        killed += 1;
    }
    Ok(Reply::Int(killed))
}

/// CLIENT LIST / CLIENT KILL `TYPE`: Redis's client classes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ClientType {
    Normal,
    /// The link to the primary this server replicates.
    Master,
    Replica,
    Pubsub,
}

impl ClientType {
    fn parse(t: &[u8]) -> Result<ClientType, CmdError> {
        Ok(if eq_ic(t, "normal") {
            ClientType::Normal
        } else if eq_ic(t, "master") {
            ClientType::Master
        } else if eq_ic(t, "replica") || eq_ic(t, "slave") {
            ClientType::Replica
        } else if eq_ic(t, "pubsub") {
            ClientType::Pubsub
        } else {
            return Err(CmdError::new(format!(
                "ERR Unknown client type '{}'",
                String::from_utf8_lossy(t)
            )));
        })
    }

    fn matches(self, c: &ClientInfo) -> bool {
        let t = if c.replica.load(Ordering::Relaxed) {
            ClientType::Replica
        } else if c.master.load(Ordering::Relaxed) {
            ClientType::Master
        } else if c.subscribed() {
            ClientType::Pubsub
        } else {
            ClientType::Normal
        };
        t == self
    }
}

/// ```text
/// CLIENT SETINFO LIB-NAME name | LIB-VER version
/// ```
fn client_setinfo(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let val = &argv[3];
    if val.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return Err(CmdError::new(format!(
            "ERR {} cannot contain spaces, newlines or special characters.",
            String::from_utf8_lossy(&argv[2]).to_ascii_uppercase()
        )));
    }
    let v = String::from_utf8_lossy(val).into_owned();
    if eq_ic(&argv[2], "lib-name") {
        *ctx.client.info.lib_name.lock() = Some(v);
    } else if eq_ic(&argv[2], "lib-ver") {
        *ctx.client.info.lib_ver.lock() = Some(v);
    } else {
        return Err(CmdError::new(format!(
            "ERR Unrecognized option '{}'",
            String::from_utf8_lossy(&argv[2])
        )));
    }
    Ok(Reply::OK)
}

fn on_off(v: &[u8]) -> CmdResult<bool> {
    if eq_ic(v, "on") {
        Ok(true)
    } else if eq_ic(v, "off") {
        Ok(false)
    } else {
        Err(CmdError::SYNTAX)
    }
}

fn client_no_evict(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let on = on_off(&argv[2])?;
    ctx.client.info.no_evict.store(on, Ordering::Relaxed);
    if !on {
        // The client may be the one to go now (Redis re-checks it).
        crate::server::limits::evict_clients(ctx.srv);
    }
    Ok(Reply::OK)
}

/// ```text
/// CLIENT REPLY ON|OFF|SKIP
/// ```
fn client_reply(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let v = &argv[2];
    if eq_ic(v, "on") {
        ctx.client.reply_mode = ReplyMode::On;
        Ok(Reply::OK)
    } else if eq_ic(v, "off") {
        ctx.client.reply_mode = ReplyMode::Off;
        Ok(Reply::OK)
    } else if eq_ic(v, "skip") {
        ctx.client.reply_mode = ReplyMode::SkipNext;
        Ok(Reply::OK)
    } else {
        Err(CmdError::SYNTAX)
    }
}

/// ```text
/// CLIENT PAUSE timeout [WRITE | ALL]
/// ```
/// `timeout` in milliseconds; see `server::pause`.
fn client_pause(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    use crate::server::pause::PauseKind;
    if argv.len() > 4 {
        return Err(CmdError::SYNTAX);
    }
    let kind = match argv.get(3) {
        None => PauseKind::All,
        Some(m) if eq_ic(m, "write") => PauseKind::Write,
        Some(m) if eq_ic(m, "all") => PauseKind::All,
        Some(_) => return Err(CmdError::err("CLIENT PAUSE mode must be WRITE or ALL")),
    };
    let ms = crate::commands::blocking::timeout_ms(&argv[2])?;
    let now = crate::commands::dispatch::unix_ms();
    ctx.srv.pause.pause(now.saturating_add(ms), kind, now);
    Ok(Reply::OK)
}

/// ```text
/// CLIENT UNPAUSE
/// ```
fn client_unpause(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    ctx.srv.pause.unpause();
    Ok(Reply::OK)
}

/// ```text
/// CLIENT UNBLOCK client-id [TIMEOUT | ERROR]
/// ```
fn client_unblock(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    if argv.len() > 4 {
        return Err(CmdError::err(
            "unknown subcommand or wrong number of arguments for 'unblock'. Try CLIENT HELP.",
        ));
    }
    let mut error = false;
    if let Some(mode) = argv.get(3) {
        if eq_ic(mode, "timeout") {
            error = false;
        } else if eq_ic(mode, "error") {
            error = true;
        } else {
            return Err(CmdError::err(
                "CLIENT UNBLOCK reason should be TIMEOUT or ERROR",
            ));
        }
    }
    let id = int_arg(&argv[2])?;
    let done = id > 0
        && (ctx.srv.blocking.unblock(ctx.srv, id as u64, error)
            || ctx.srv.repl.unblock_wait(id as u64, error));
    Ok(Reply::Int(done as i64))
}

fn client_help(_ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    Ok(help_reply(
        "CLIENT",
        &[
            "CACHING (YES|NO)",
            "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
            "GETREDIR",
            "    Return the client ID we are redirecting to when tracking is enabled.",
            "GETNAME",
            "    Return the name of the current connection.",
            "ID",
            "    Return the ID of the current connection.",
            "INFO",
            "    Return information about the current client connection.",
            "KILL <ip:port>",
            "    Kill connection made from <ip:port>.",
            "KILL <option> <value> [<option> <value> [...]]",
            "    Kill connections. Options are: ID, ADDR, LADDR, USER, SKIPME, TYPE.",
            "LIST [options ...]",
            "    Return information about client connections. Options: TYPE, ID.",
            "NO-EVICT (ON|OFF)",
            "    Protect current client connection from eviction.",
            "PAUSE <timeout> [WRITE|ALL]",
            "    Suspend all, or just write, clients for <timeout> milliseconds.",
            "REPLY (ON|OFF|SKIP)",
            "    Control the replies sent to the current connection.",
            "SETNAME <name>",
            "    Assign the name <name> to the current connection.",
            "SETINFO <option> <value>",
            "    Set client meta attr. Options are: LIB-NAME, LIB-VER.",
            "UNBLOCK <clientid> [TIMEOUT|ERROR]",
            "    Unblock the specified blocked client.",
            "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
            "         [OPTIN] [OPTOUT] [NOLOOP]",
            "    Control server assisted client side caching.",
            "TRACKINGINFO",
            "    Report tracking status for the current connection.",
            "UNPAUSE",
            "    Stop the current client pause, resuming traffic.",
        ],
    ))
}

/// The reply of a `<CMD> HELP` subcommand, framed as Redis frames it.
pub fn help_reply(cmd: &str, lines: &[&str]) -> Reply {
    let mut v = vec![Reply::StatusOwned(format!(
        "{cmd} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
    ))];
    v.extend(lines.iter().map(|l| Reply::StatusOwned(l.to_string())));
    v.push(Reply::Status("HELP"));
    v.push(Reply::Status("    Prints this help."));
    Reply::Array(v)
}
