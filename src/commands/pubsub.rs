//! Pub/Sub commands: (P|S)SUBSCRIBE, (P|S)UNSUBSCRIBE, (S)PUBLISH, PUBSUB.
//!
//! The registry and the subscribers' message queues are in
//! `server::pubsub`; this module only parses arguments and frames replies.
//! A (un)subscribe command answers one confirmation per channel, each an
//! array in RESP2 or a push frame in RESP3, so the handler encodes them
//! itself and returns them as one pre-encoded reply.

use bytes::{Bytes, BytesMut};

use crate::commands::connection::help_reply;
use crate::commands::ctx::Ctx;
use crate::commands::spec::{cmd, container, CmdFlags as F, CommandSpec, LockScope};
use crate::connection::client::ReplyMode;
use crate::protocol::reply::encode;
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::server::pubsub::Kind;
use crate::server::Server;

const SUB_F: F = F::PUBSUB
    .union(F::NOSCRIPT)
    .union(F::LOADING)
    .union(F::STALE);
/// PUBLISH and SPUBLISH may replicate (refused in read-only scripts, as Redis).
const PUB_F: F = F::PUBSUB
    .union(F::LOADING)
    .union(F::STALE)
    .union(F::FAST)
    .union(F::MAY_REPLICATE);
const INTRO_F: F = F::PUBSUB.union(F::LOADING).union(F::STALE);

/// Shard channels are declared as keys (COMMAND GETKEYS, cluster slots) but
/// no keyspace shard needs locking.
fn no_locks(_: &Server, _: usize, _: &[Bytes]) -> Vec<(u32, u32)> {
    Vec::new()
}

pub const SPECS: &[CommandSpec] = &[
    cmd("subscribe", -2, SUB_F, subscribe).doc(
        "pubsub",
        "2.0.0",
        "Listens for messages published to channels.",
    ),
    cmd("unsubscribe", -1, SUB_F, unsubscribe).doc(
        "pubsub",
        "2.0.0",
        "Stops listening to messages posted to channels.",
    ),
    cmd("psubscribe", -2, SUB_F, psubscribe).doc(
        "pubsub",
        "2.0.0",
        "Listens for messages published to channels that match one or more patterns.",
    ),
    cmd("punsubscribe", -1, SUB_F, punsubscribe).doc(
        "pubsub",
        "2.0.0",
        "Stops listening to messages published to channels that match one or more patterns.",
    ),
    cmd("publish", 3, PUB_F, publish).doc("pubsub", "2.0.0", "Posts a message to a channel."),
    cmd("ssubscribe", -2, SUB_F, ssubscribe)
        .keys(1, -1, 1)
        .lock(LockScope::Custom(no_locks))
        .doc(
            "pubsub",
            "7.0.0",
            "Listens for messages published to shard channels.",
        ),
    cmd("sunsubscribe", -1, SUB_F, sunsubscribe)
        .keys(1, -1, 1)
        .lock(LockScope::Custom(no_locks))
        .doc(
            "pubsub",
            "7.0.0",
            "Stops listening to messages posted to shard channels.",
        ),
    cmd("spublish", 3, PUB_F, spublish)
        .keys(1, 1, 1)
        .lock(LockScope::Custom(no_locks))
        .doc("pubsub", "7.0.0", "Post a message to a shard channel"),
    container("pubsub", PUBSUB_SUBS).doc("pubsub", "2.8.0", "A container for Pub/Sub commands."),
];

const PUBSUB_SUBS: &[CommandSpec] = &[
    cmd("channels", -2, INTRO_F, channels).doc("pubsub", "2.8.0", "Returns the active channels."),
    cmd("numsub", -2, INTRO_F, numsub).doc(
        "pubsub",
        "2.8.0",
        "Returns a count of subscribers to channels.",
    ),
    cmd("numpat", 2, INTRO_F, numpat).doc(
        "pubsub",
        "2.8.0",
        "Returns a count of unique pattern subscriptions.",
    ),
    cmd("shardchannels", -2, INTRO_F, shardchannels).doc(
        "pubsub",
        "7.0.0",
        "Returns the active shard channels.",
    ),
    cmd("shardnumsub", -2, INTRO_F, shardnumsub).doc(
        "pubsub",
        "7.0.0",
        "Returns the count of subscribers of shard channels.",
    ),
    cmd("help", 2, F::LOADING.union(F::STALE), help).doc(
        "pubsub",
        "6.2.0",
        "Returns helpful text about the different subcommands.",
    ),
];

/// Is `name` (a command's full name) allowed for a RESP2 client in
/// subscribed mode?
pub fn allowed_in_subscribed_mode(name: &str) -> bool {
    matches!(
        name,
        "ping"
            | "subscribe"
            | "ssubscribe"
            | "unsubscribe"
            | "sunsubscribe"
            | "psubscribe"
            | "punsubscribe"
            | "quit"
            | "reset"
    )
}

/// The error a RESP2 subscribed client gets for any other command.
pub fn subscribed_mode_error(full_name: &str) -> CmdError {
    CmdError::new(format!(
        "ERR Can't execute '{full_name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
    ))
}

/// One confirmation frame: `[kind, channel-or-null, count]`.
fn confirm(out: &mut BytesMut, resp: u8, kind: &'static str, ch: Option<&Bytes>, n: usize) {
    let r = Reply::Push(vec![
        Reply::bulk(Bytes::from_static(kind.as_bytes())),
        ch.map_or(Reply::Null, |c| Reply::Bulk(c.clone())),
        Reply::Int(n as i64),
    ]);
    encode(&r, resp, out);
}

/// Returns the confirmations as the reply, or, when the client's replies
/// are switched off (CLIENT REPLY OFF/SKIP), queues them as pushes, which
/// Redis delivers regardless.
fn finish(ctx: &mut Ctx<'_>, out: BytesMut) -> CmdResult {
    if matches!(ctx.client.reply_mode, ReplyMode::Off | ReplyMode::Skipping) {
        let info = ctx.client.info.clone();
        ctx.client.pubsub.outbox(&info).push_own(&out);
        return Ok(Reply::Raw(Bytes::new()));
    }
    Ok(Reply::Raw(out.freeze()))
}

fn sub_common(ctx: &mut Ctx<'_>, argv: &[Bytes], kind: Kind) -> CmdResult {
    let tag = match kind {
        Kind::Global => "subscribe",
        Kind::Shard => "ssubscribe",
    };
    let resp = ctx.client.resp;
    let info = ctx.client.info.clone();
    let mut out = BytesMut::new();
    for ch in &argv[1..] {
        let n = ctx
            .srv
            .pubsub
            .subscribe(&mut ctx.client.pubsub, &info, kind, ch);
        confirm(&mut out, resp, tag, Some(ch), n);
    }
    finish(ctx, out)
}

fn unsub_common(ctx: &mut Ctx<'_>, argv: &[Bytes], kind: Kind) -> CmdResult {
    let tag = match kind {
        Kind::Global => "unsubscribe",
        Kind::Shard => "sunsubscribe",
    };
    let resp = ctx.client.resp;
    let id = ctx.client.id;
    let mut out = BytesMut::new();
    let targets: Vec<Bytes> = if argv.len() > 1 {
        argv[1..].to_vec()
    } else {
        let set = match kind {
            Kind::Global => &ctx.client.pubsub.channels,
            Kind::Shard => &ctx.client.pubsub.shard_channels,
        };
        set.iter().cloned().collect()
    };
    if targets.is_empty() {
        let n = match kind {
            Kind::Global => ctx.client.pubsub.count(),
            Kind::Shard => ctx.client.pubsub.shard_channels.len(),
        };
        confirm(&mut out, resp, tag, None, n);
    }
    for ch in &targets {
        let n = ctx
            .srv
            .pubsub
            .unsubscribe(&mut ctx.client.pubsub, id, kind, ch);
        confirm(&mut out, resp, tag, Some(ch), n);
    }
    finish(ctx, out)
}

fn subscribe(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    sub_common(ctx, argv, Kind::Global)
}

fn ssubscribe(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    sub_common(ctx, argv, Kind::Shard)
}

fn unsubscribe(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    unsub_common(ctx, argv, Kind::Global)
}

fn sunsubscribe(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    unsub_common(ctx, argv, Kind::Shard)
}

fn psubscribe(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let resp = ctx.client.resp;
    let info = ctx.client.info.clone();
    let mut out = BytesMut::new();
    for p in &argv[1..] {
        let n = ctx.srv.pubsub.psubscribe(&mut ctx.client.pubsub, &info, p);
        confirm(&mut out, resp, "psubscribe", Some(p), n);
    }
    finish(ctx, out)
}

fn punsubscribe(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let resp = ctx.client.resp;
    let id = ctx.client.id;
    let mut out = BytesMut::new();
    let targets: Vec<Bytes> = if argv.len() > 1 {
        argv[1..].to_vec()
    } else {
        ctx.client.pubsub.patterns.clone()
    };
    if targets.is_empty() {
        confirm(
            &mut out,
            resp,
            "punsubscribe",
            None,
            ctx.client.pubsub.count(),
        );
    }
    for p in &targets {
        let n = ctx.srv.pubsub.punsubscribe(&mut ctx.client.pubsub, id, p);
        confirm(&mut out, resp, "punsubscribe", Some(p), n);
    }
    finish(ctx, out)
}

fn publish(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let n = ctx
        .srv
        .pubsub
        .publish(&ctx.srv.config, Kind::Global, &argv[1], &argv[2]);
    // Other cluster nodes deliver it to theirs (the count stays this
    // node's, as in Redis).
    if let Some(bus) = ctx.srv.bus.get() {
        bus.publish(&argv[1], &argv[2]);
    }
    // Replicas deliver it to their own subscribers.
    if ctx.propagating() {
        ctx.propagate_to_replicas(vec![
            Bytes::from_static(b"PUBLISH"),
            argv[1].clone(),
            argv[2].clone(),
        ]);
    }
    Ok(Reply::Int(n as i64))
}

fn spublish(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let n = ctx
        .srv
        .pubsub
        .publish(&ctx.srv.config, Kind::Shard, &argv[1], &argv[2]);
    // Replicas deliver it to their own subscribers.
    if ctx.propagating() {
        ctx.propagate_to_replicas(vec![
            Bytes::from_static(b"SPUBLISH"),
            argv[1].clone(),
            argv[2].clone(),
        ]);
    }
    Ok(Reply::Int(n as i64))
}

/// `ERR unknown subcommand or wrong number of arguments for '<sub>'. Try PUBSUB HELP.`
fn sub_syntax(sub: &[u8]) -> CmdError {
    let sub = String::from_utf8_lossy(&sub[..sub.len().min(128)]).into_owned();
    CmdError::new(format!(
        "ERR unknown subcommand or wrong number of arguments for '{sub}'. Try PUBSUB HELP."
    ))
}

fn list_channels(ctx: &mut Ctx<'_>, argv: &[Bytes], kind: Kind) -> CmdResult {
    if argv.len() > 3 {
        return Err(sub_syntax(&argv[1]));
    }
    let pat = argv.get(2).map(|p| &p[..]);
    let chans = ctx.srv.pubsub.channels(kind, pat);
    Ok(Reply::Array(chans.into_iter().map(Reply::Bulk).collect()))
}

fn channels(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    list_channels(ctx, argv, Kind::Global)
}

fn shardchannels(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    list_channels(ctx, argv, Kind::Shard)
}

fn count_subs(ctx: &mut Ctx<'_>, argv: &[Bytes], kind: Kind) -> CmdResult {
    let mut v = Vec::with_capacity((argv.len() - 2) * 2);
    for ch in &argv[2..] {
        v.push(Reply::Bulk(ch.clone()));
        v.push(Reply::Int(ctx.srv.pubsub.numsub(kind, ch) as i64));
    }
    Ok(Reply::Array(v))
}

fn numsub(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    count_subs(ctx, argv, Kind::Global)
}

fn shardnumsub(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    count_subs(ctx, argv, Kind::Shard)
}

fn numpat(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(ctx.srv.pubsub.numpat() as i64))
}

fn help(_ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    Ok(help_reply(
        "PUBSUB",
        &[
            "CHANNELS [<pattern>]",
            "    Return the currently active channels matching a <pattern> (default: '*').",
            "NUMPAT",
            "    Return number of subscriptions to patterns.",
            "NUMSUB [<channel> ...]",
            "    Return the number of subscribers for the specified channels, excluding",
            "    pattern subscriptions(default: no channels).",
            "SHARDCHANNELS [<pattern>]",
            "    Return the currently active shard level channels matching a <pattern> (default: '*').",
            "SHARDNUMSUB [<shardchannel> ...]",
            "    Return the number of subscribers for the specified shard level channel(s)",
        ],
    ))
}
