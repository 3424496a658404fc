//! Stream commands: XADD XLEN XRANGE XREVRANGE XDEL XTRIM XSETID XREAD
//! XREADGROUP XACK XPENDING XCLAIM XAUTOCLAIM XGROUP XINFO (Redis 7.0).
//!
//! Blocking reads park through `commands::blocking`: XADD signals the key
//! ready and the blocked XREAD/XREADGROUP runs again on the writer's
//! thread. XREAD's `$` means "the last ID when the command was issued", so
//! before parking the handler stores an argv with `$` replaced by that ID.

use bytes::Bytes;

use crate::commands::ctx::Ctx;
use crate::commands::spec::{cmd, container, Acl, CmdFlags as F, CommandSpec};
use crate::config::notify;
use crate::protocol::args::{eq_ic, int_arg};
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::storage::shared::Shared;
use crate::storage::stream::{Consumer, Group, Nack, Stream, StreamEntry, StreamId};
use crate::storage::value::Obj;
use crate::storage::{Shard, ValueRef};

const S: Acl = Acl::STREAM;
const RO: F = F::READONLY;

pub const SPECS: &[CommandSpec] = &[
    cmd("xadd", -5, F::WRITE.union(F::DENYOOM).union(F::FAST), xadd).keys(1, 1, 1).acl(S).doc("stream", "5.0.0", "Appends a new message to a stream. Creates the key if it doesn't exist."),
    cmd("xlen", 2, RO.union(F::FAST), xlen).keys(1, 1, 1).acl(S).doc("stream", "5.0.0", "Return the number of messages in a stream."),
    cmd("xrange", -4, RO, xrange).keys(1, 1, 1).acl(S).doc("stream", "5.0.0", "Returns the messages from a stream within a range of IDs."),
    cmd("xrevrange", -4, RO, xrevrange).keys(1, 1, 1).acl(S).doc("stream", "5.0.0", "Returns the messages from a stream within a range of IDs in reverse order."),
    cmd("xdel", -3, F::WRITE.union(F::FAST), xdel).keys(1, 1, 1).acl(S).doc("stream", "5.0.0", "Returns the number of messages after removing them from a stream."),
    cmd("xtrim", -4, F::WRITE, xtrim).keys(1, 1, 1).acl(S).doc("stream", "5.0.0", "Deletes messages from the beginning of a stream."),
    cmd("xsetid", -3, F::WRITE.union(F::DENYOOM).union(F::FAST), xsetid).keys(1, 1, 1).acl(S).doc("stream", "5.0.0", "An internal command for replicating stream values."),
    cmd("xread", -4, RO.union(F::BLOCKING), xread).find_keys(xread_keys).acl(S).doc("stream", "5.0.0", "Returns messages from multiple streams with IDs greater than the ones requested. Blocks until a message is available otherwise."),
    cmd("xreadgroup", -7, F::WRITE.union(F::BLOCKING), xreadgroup).find_keys(xread_keys).acl(S).doc("stream", "5.0.0", "Returns new or historical messages from a stream for a consumer in a group. Blocks until a message is available otherwise."),
    cmd("xack", -4, F::WRITE.union(F::FAST), xack).keys(1, 1, 1).acl(S).doc("stream", "5.0.0", "Returns the number of messages that were successfully acknowledged by the consumer group member of a stream."),
    cmd("xpending", -3, RO, xpending).keys(1, 1, 1).acl(S).doc("stream", "5.0.0", "Returns the information and entries from a stream consumer group's pending entries list."),
    cmd("xclaim", -6, F::WRITE.union(F::FAST), xclaim).keys(1, 1, 1).acl(S).doc("stream", "5.0.0", "Changes, or acquires, ownership of a message in a consumer group, as if the message was delivered a consumer group member."),
    cmd("xautoclaim", -6, F::WRITE.union(F::FAST), xautoclaim).keys(1, 1, 1).acl(S).doc("stream", "6.2.0", "Changes, or acquires, ownership of messages in a consumer group, as if the messages were delivered to as consumer group member."),
    container("xgroup", XGROUP_SUBS).doc("stream", "5.0.0", "A container for consumer groups commands."),
    container("xinfo", XINFO_SUBS).doc("stream", "5.0.0", "A container for stream introspection commands."),
];

const XGROUP_SUBS: &[CommandSpec] = &[
    cmd("create", -5, F::WRITE.union(F::DENYOOM), xgroup)
        .keys(2, 2, 1)
        .acl(S)
        .doc("stream", "5.0.0", "Creates a consumer group."),
    cmd("createconsumer", 5, F::WRITE.union(F::DENYOOM), xgroup)
        .keys(2, 2, 1)
        .acl(S)
        .doc("stream", "6.2.0", "Creates a consumer in a consumer group."),
    cmd("delconsumer", 5, F::WRITE, xgroup)
        .keys(2, 2, 1)
        .acl(S)
        .doc(
            "stream",
            "5.0.0",
            "Deletes a consumer from a consumer group.",
        ),
    cmd("destroy", 4, F::WRITE, xgroup)
        .keys(2, 2, 1)
        .acl(S)
        .doc("stream", "5.0.0", "Destroys a consumer group."),
    cmd("setid", -5, F::WRITE, xgroup).keys(2, 2, 1).acl(S).doc(
        "stream",
        "5.0.0",
        "Sets the last-delivered ID of a consumer group.",
    ),
    cmd("help", 2, F::LOADING.union(F::STALE), xgroup_help)
        .acl(S)
        .doc(
            "stream",
            "5.0.0",
            "Returns helpful text about the different subcommands.",
        ),
];

const XINFO_SUBS: &[CommandSpec] = &[
    cmd("consumers", 4, RO, xinfo_consumers)
        .keys(2, 2, 1)
        .acl(S)
        .doc(
            "stream",
            "5.0.0",
            "Returns a list of the consumers in a consumer group.",
        ),
    cmd("groups", 3, RO, xinfo_groups).keys(2, 2, 1).acl(S).doc(
        "stream",
        "5.0.0",
        "Returns a list of the consumer groups of a stream.",
    ),
    cmd("stream", -3, RO, xinfo_stream)
        .keys(2, 2, 1)
        .acl(S)
        .doc("stream", "5.0.0", "Returns information about a stream."),
    cmd("help", 2, F::LOADING.union(F::STALE), xinfo_help)
        .acl(S)
        .doc(
            "stream",
            "5.0.0",
            "Returns helpful text about the different subcommands.",
        ),
];

// ---- errors ------------------------------------------------------------------

const INVALID_ID: CmdError =
    CmdError::from_static("ERR Invalid stream ID specified as stream command argument");
const ID_TOO_SMALL: CmdError = CmdError::from_static(
    "ERR The ID specified in XADD is equal or smaller than the target stream top item",
);
const ID_ZERO: CmdError =
    CmdError::from_static("ERR The ID specified in XADD must be greater than 0-0");
const BAD_START: CmdError = CmdError::from_static("ERR invalid start ID for the interval");
const BAD_END: CmdError = CmdError::from_static("ERR invalid end ID for the interval");

fn nogroup_key(key: &[u8], group: &[u8]) -> CmdError {
    CmdError::new(format!(
        "NOGROUP No such key '{}' or consumer group '{}'",
        String::from_utf8_lossy(key),
        String::from_utf8_lossy(group)
    ))
}

fn nogroup_for_key(group: &[u8], key: &[u8]) -> CmdError {
    CmdError::new(format!(
        "NOGROUP No such consumer group '{}' for key name '{}'",
        String::from_utf8_lossy(group),
        String::from_utf8_lossy(key)
    ))
}

fn sub_syntax(argv: &[Bytes]) -> CmdError {
    let sub = argv
        .get(1)
        .map(|s| String::from_utf8_lossy(&s[..s.len().min(128)]).into_owned());
    CmdError::new(format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try {} HELP.",
        sub.unwrap_or_default(),
        String::from_utf8_lossy(&argv[0]).to_ascii_uppercase()
    ))
}

/// `getLongLongFromObjectOrReply` with a custom message.
fn int_or(arg: &[u8], msg: &'static str) -> CmdResult<i64> {
    int_arg(arg).map_err(|_| CmdError::from_static(msg))
}

// ---- ID parsing -----------------------------------------------------------------

/// One part of a stream ID, as Redis's `string2ull` reads it: a canonical
/// integer must not be negative; anything else goes to C's `strtoull`, which
/// skips leading space and takes a sign (`+1` is 1, `-0` is 0, and a negated
/// value wraps), and must consume the whole part without overflowing.
fn parse_u64(s: &[u8]) -> Option<u64> {
    if crate::protocol::codec::parse_i64(s).is_some_and(|v| v < 0) {
        return None;
    }
    let skip = s
        .iter()
        .take_while(|b| b" \t\n\x0b\x0c\r".contains(b))
        .count();
    let t = &s[skip..];
    let (negative, digits) = match t.first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = digits.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })?;
    Some(if negative { v.wrapping_neg() } else { v })
}

/// Parses `<ms>[-<seq>]` (and `-`/`+` unless `strict`). `star_seq` accepts
/// `<ms>-*` (XADD), returned as `seq_given == false`.
fn parse_id_full(
    arg: &[u8],
    missing_seq: u64,
    strict: bool,
    star_seq: bool,
) -> CmdResult<(StreamId, bool)> {
    if arg.len() > 127 {
        return Err(INVALID_ID);
    }
    if !strict && arg == b"-" {
        return Ok((StreamId::MIN, true));
    }
    if !strict && arg == b"+" {
        return Ok((StreamId::MAX, true));
    }
    match arg.iter().position(|&c| c == b'-') {
        None => {
            let ms = parse_u64(arg).ok_or(INVALID_ID)?;
            Ok((StreamId::new(ms, missing_seq), true))
        }
        Some(d) => {
            let ms = parse_u64(&arg[..d]).ok_or(INVALID_ID)?;
            let rest = &arg[d + 1..];
            if star_seq && rest == b"*" {
                return Ok((StreamId::new(ms, 0), false));
            }
            let seq = parse_u64(rest).ok_or(INVALID_ID)?;
            Ok((StreamId::new(ms, seq), true))
        }
    }
}

fn parse_id(arg: &[u8], missing_seq: u64) -> CmdResult<StreamId> {
    parse_id_full(arg, missing_seq, false, false).map(|r| r.0)
}

fn parse_strict(arg: &[u8]) -> CmdResult<StreamId> {
    parse_id_full(arg, 0, true, false).map(|r| r.0)
}

/// A range bound, with `(` for exclusive.
fn parse_start(arg: &[u8]) -> CmdResult<StreamId> {
    if arg.len() > 1 && arg[0] == b'(' {
        let id = parse_id_full(&arg[1..], 0, true, false)?.0;
        id.incr().ok_or(BAD_START)
    } else {
        parse_id(arg, 0)
    }
}

fn parse_end(arg: &[u8]) -> CmdResult<StreamId> {
    if arg.len() > 1 && arg[0] == b'(' {
        let id = parse_id_full(&arg[1..], u64::MAX, true, false)?.0;
        id.decr().ok_or(BAD_END)
    } else {
        parse_id(arg, u64::MAX)
    }
}

fn id_reply(id: StreamId) -> Reply {
    Reply::Bulk(id.to_bytes())
}

fn entry_reply((id, items): StreamEntry) -> Reply {
    Reply::Array(vec![
        id_reply(id),
        Reply::Array(items.into_iter().map(Reply::Bulk).collect()),
    ])
}

fn entries_reply(v: Vec<StreamEntry>) -> Reply {
    Reply::Array(v.into_iter().map(entry_reply).collect())
}

// ---- key access ---------------------------------------------------------------

/// The stream at `key` for reading (counts hit/miss).
fn read_stream<'s>(shard: &'s mut Shard, key: &[u8], now: u64) -> CmdResult<Option<&'s Stream>> {
    match shard.get(key, now) {
        None => Ok(None),
        Some(ValueRef::Obj(Obj::Stream(s))) => Ok(Some(s)),
        Some(_) => Err(CmdError::WRONG_TYPE),
    }
}

fn check_stream(shard: &mut Shard, key: &[u8], now: u64) -> CmdResult<bool> {
    match shard.peek(key, now) {
        None => Ok(false),
        Some(ValueRef::Obj(Obj::Stream(_))) => Ok(true),
        Some(_) => Err(CmdError::WRONG_TYPE),
    }
}

/// The stream at `key` for writing; `Ok(None)` if missing.
fn write_stream<'s>(
    shard: &'s mut Shard,
    key: &[u8],
    now: u64,
) -> CmdResult<Option<&'s mut Stream>> {
    if !check_stream(shard, key, now)? {
        return Ok(None);
    }
    match shard.obj_mut(key, now) {
        Some(Obj::Stream(s)) => Ok(Some(s)),
        _ => Err(CmdError::WRONG_TYPE),
    }
}

fn stream_or_create<'s>(shard: &'s mut Shard, key: &[u8], now: u64) -> CmdResult<&'s mut Stream> {
    check_stream(shard, key, now)?;
    match shard.obj_or_insert(key, now, || Obj::Stream(Shared::new(Stream::new()))) {
        Some(Obj::Stream(s)) => Ok(s),
        _ => Err(CmdError::WRONG_TYPE),
    }
}

// ---- trimming arguments ----------------------------------------------------------

#[derive(Default)]
struct TrimArgs {
    maxlen: Option<u64>,
    minid: Option<StreamId>,
    approx: bool,
    limit: u64,
    nomkstream: bool,
    /// XADD: the explicit ID (None = `*`) and whether its seq was given.
    id: Option<(StreamId, bool)>,
    /// XADD: index of the ID argument.
    id_pos: usize,
    /// Indexes of the `~` and of the MAXLEN/MINID threshold: an
    /// approximate trim propagates as `= <what it left>` (as Redis), so
    /// an AOF replay or a replica trims exactly the same entries.
    approx_pos: usize,
    threshold_pos: usize,
}

fn parse_trim(ctx: &Ctx<'_>, argv: &[Bytes], xadd: bool) -> CmdResult<TrimArgs> {
    let mut t = TrimArgs::default();
    let mut limit_given = false;
    let mut i = 2;
    let argc = argv.len();
    while i < argc {
        let more = argc - 1 - i;
        let opt = &argv[i];
        if xadd && &opt[..] == b"*" {
            break;
        } else if (eq_ic(opt, "maxlen") || eq_ic(opt, "minid")) && more > 0 {
            if t.maxlen.is_some() || t.minid.is_some() {
                return Err(CmdError::err(
                    "syntax error, MAXLEN and MINID options at the same time are not compatible",
                ));
            }
            let is_max = eq_ic(opt, "maxlen");
            t.approx = false;
            let next = &argv[i + 1][..];
            if more >= 2 && next == b"~" {
                t.approx = true;
                t.approx_pos = i + 1;
                i += 1;
            } else if more >= 2 && next == b"=" {
                i += 1;
            }
            t.threshold_pos = i + 1;
            let v = &argv[i + 1];
            if is_max {
                let n = int_arg(v)?;
                if n < 0 {
                    return Err(CmdError::err("The MAXLEN argument must be >= 0."));
                }
                t.maxlen = Some(n as u64);
            } else {
                t.minid = Some(parse_strict(v)?);
            }
            i += 2;
            continue;
        } else if eq_ic(opt, "limit") && more > 0 {
            let n = int_arg(&argv[i + 1])?;
            if n < 0 {
                return Err(CmdError::err("The LIMIT argument must be >= 0."));
            }
            t.limit = n as u64;
            limit_given = true;
            i += 2;
            continue;
        } else if xadd && eq_ic(opt, "nomkstream") {
            t.nomkstream = true;
        } else if xadd {
            t.id = Some(parse_id_full(opt, 0, true, true)?);
            break;
        } else {
            return Err(CmdError::SYNTAX);
        }
        i += 1;
    }
    t.id_pos = i;
    let strategy = t.maxlen.is_some() || t.minid.is_some();
    if t.limit > 0 && !strategy {
        return Err(CmdError::err(
            "syntax error, LIMIT cannot be used without specifying a trimming strategy",
        ));
    }
    if !xadd && !strategy {
        return Err(CmdError::err(
            "syntax error, XTRIM must be called with a trimming strategy",
        ));
    }
    if ctx.client.must_obey() {
        // Replaying the AOF or applying a primary's stream: the trim was
        // rewritten to what it did (see `approx_pos`), `~` became `=` but
        // its LIMIT stays, and no longer applies (Redis's mustObeyClient).
        t.limit = 0;
    } else if limit_given {
        if !t.approx {
            return Err(CmdError::err(
                "syntax error, LIMIT cannot be used without the special ~ option",
            ));
        }
    } else if t.approx {
        let per = ctx.srv.config.stream_node_max_entries() as i64;
        let mut l = per.saturating_mul(100);
        if l <= 0 {
            l = 10000;
        }
        t.limit = l.min(1_000_000) as u64;
    } else {
        t.limit = 0;
    }
    Ok(t)
}

// ---- XADD XLEN XRANGE XDEL XTRIM XSETID --------------------------------------------

/// ```text
/// XADD key [NOMKSTREAM] [<MAXLEN | MINID> [= | ~] threshold [LIMIT count]] <* | id> field value [field value ...]
/// ```
fn xadd(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let t = parse_trim(ctx, argv, true)?;
    let field_pos = t.id_pos + 1;
    let nf = argv.len().saturating_sub(field_pos);
    if field_pos > argv.len() || nf < 2 || !nf.is_multiple_of(2) {
        return Err(CmdError::arity("xadd"));
    }
    if let Some((id, true)) = t.id {
        if id.is_zero() {
            return Err(ID_ZERO);
        }
    }
    let key = &argv[1];
    let now = ctx.now;
    let node_entries = ctx.srv.config.stream_node_max_entries();
    let node_bytes = ctx.srv.config.stream_node_max_bytes();
    let shard = ctx.shard(key)?;
    let exists = check_stream(shard, key, now)?;
    if !exists && t.nomkstream {
        return Ok(Reply::Null);
    }
    let s = stream_or_create(shard, key, now)?;
    let last = s.last_id;
    if last == StreamId::MAX {
        return Err(CmdError::err(
            "The stream has exhausted the last possible ID, unable to add more items",
        ));
    }
    let id = match t.id {
        None => {
            if now > last.ms {
                StreamId::new(now, 0)
            } else {
                last.incr().ok_or(ID_TOO_SMALL)?
            }
        }
        Some((id, true)) => id,
        Some((id, false)) => {
            if id.ms == last.ms {
                if last.seq == u64::MAX {
                    // Redis reports this overflow with the generic text.
                    return Err(CmdError::err("Elements are too large to be stored"));
                }
                StreamId::new(id.ms, last.seq + 1)
            } else {
                id
            }
        }
    };
    if id <= last {
        // A freshly created stream cannot get here (last is 0-0, id > 0-0).
        return Err(ID_TOO_SMALL);
    }
    s.append(id, &argv[field_pos..], node_entries, node_bytes);
    let trimmed = if t.maxlen.is_some() || t.minid.is_some() {
        s.trim(t.maxlen, t.minid, t.approx, t.limit)
    } else {
        0
    };
    let exact_trim = t.approx.then(|| exact_trim_args(&t, s));
    ctx.changed(1);
    if ctx.propagating() && (!matches!(t.id, Some((_, true))) || exact_trim.is_some()) {
        // A generated ID depends on the clock: propagate the one chosen.
        let mut v: Vec<Bytes> = argv.to_vec();
        if let Some(slot) = v.get_mut(t.id_pos) {
            *slot = Bytes::from(format!("{}-{}", id.ms, id.seq));
        }
        if let Some(ex) = exact_trim {
            ex.apply(&mut v);
        }
        ctx.propagate_as(v);
    }
    ctx.notify(notify::STREAM, "xadd", key);
    if trimmed > 0 {
        ctx.notify(notify::STREAM, "xtrim", key);
    }
    ctx.signal_ready(key);
    Ok(id_reply(id))
}

fn xlen(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let now = ctx.now;
    let shard = ctx.shard(&argv[1])?;
    Ok(Reply::Int(
        read_stream(shard, &argv[1], now)?.map_or(0, |s| s.len()) as i64,
    ))
}

fn xrange_generic(ctx: &mut Ctx<'_>, argv: &[Bytes], rev: bool) -> CmdResult {
    let (sa, ea) = if rev {
        (&argv[3], &argv[2])
    } else {
        (&argv[2], &argv[3])
    };
    let start = parse_start(sa)?;
    let end = parse_end(ea)?;
    let mut count: i64 = -1;
    let mut j = 4;
    while j < argv.len() {
        if eq_ic(&argv[j], "count") && j + 1 < argv.len() {
            count = int_arg(&argv[j + 1])?.max(0);
            j += 2;
        } else {
            return Err(CmdError::SYNTAX);
        }
    }
    let now = ctx.now;
    let shard = ctx.shard(&argv[1])?;
    let Some(s) = read_stream(shard, &argv[1], now)? else {
        return Ok(Reply::Array(vec![]));
    };
    if count == 0 {
        return Ok(Reply::NullArray);
    }
    let count = if count < 0 { 0 } else { count as usize };
    Ok(entries_reply(s.range(start, end, count, rev)))
}

/// ```text
/// XRANGE key start end [COUNT count]
/// ```
fn xrange(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    xrange_generic(ctx, argv, false)
}

fn xrevrange(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    xrange_generic(ctx, argv, true)
}

/// ```text
/// XDEL key id [id ...]
/// ```
fn xdel(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    // Redis 7.0 looks the key up (and checks its type) before it parses
    // the IDs: a missing key answers 0 whatever they are.
    let key = &argv[1];
    let now = ctx.now;
    let shard = ctx.shard(key)?;
    if !check_stream(shard, key, now)? {
        return Ok(Reply::Int(0));
    }
    let ids = argv[2..]
        .iter()
        .map(|a| parse_strict(a))
        .collect::<CmdResult<Vec<_>>>()?;
    // Avoid the write path (WATCH) when nothing would be deleted.
    let any = match shard.peek(key, now) {
        Some(ValueRef::Obj(Obj::Stream(s))) => ids.iter().any(|id| s.contains(*id)),
        _ => false,
    };
    if !any {
        return Ok(Reply::Int(0));
    }
    let Some(s) = write_stream(shard, key, now)? else {
        return Ok(Reply::Int(0));
    };
    let mut n = 0;
    for id in ids {
        if s.delete(id) {
            n += 1;
        }
    }
    ctx.changed(n);
    ctx.notify(notify::STREAM, "xdel", key);
    Ok(Reply::Int(n as i64))
}

/// ```text
/// XTRIM key <MAXLEN | MINID> [= | ~] threshold [LIMIT count]
/// ```
fn xtrim(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let t = parse_trim(ctx, argv, false)?;
    if t.id_pos < argv.len() {
        return Err(CmdError::SYNTAX);
    }
    let key = &argv[1];
    let now = ctx.now;
    let shard = ctx.shard(key)?;
    if !check_stream(shard, key, now)? {
        return Ok(Reply::Int(0));
    }
    let Some(s) = write_stream(shard, key, now)? else {
        return Ok(Reply::Int(0));
    };
    let n = s.trim(t.maxlen, t.minid, t.approx, t.limit);
    let exact_trim = (n > 0 && t.approx).then(|| exact_trim_args(&t, s));
    if n > 0 {
        if let Some(ex) = exact_trim.filter(|_| ctx.propagating()) {
            let mut v = argv.to_vec();
            ex.apply(&mut v);
            ctx.propagate_as(v);
        }
        ctx.changed(n);
        ctx.notify(notify::STREAM, "xtrim", key);
    }
    Ok(Reply::Int(n as i64))
}

/// How an approximate trim propagates: `MAXLEN = <length left>` or
/// `MINID = <first ID left>` in place of `~ <threshold>` (Redis's
/// streamRewriteApproxSpecifier and streamRewriteTrimArgument).
struct ExactTrim {
    approx_pos: usize,
    threshold_pos: usize,
    threshold: Bytes,
}

fn exact_trim_args(t: &TrimArgs, s: &crate::storage::stream::Stream) -> ExactTrim {
    let threshold = if t.maxlen.is_some() {
        Bytes::from(s.len().to_string())
    } else {
        Bytes::from(format!("{}-{}", s.first_id.ms, s.first_id.seq))
    };
    ExactTrim {
        approx_pos: t.approx_pos,
        threshold_pos: t.threshold_pos,
        threshold,
    }
}

impl ExactTrim {
    fn apply(self, v: &mut [Bytes]) {
        if let Some(a) = v.get_mut(self.approx_pos) {
            *a = Bytes::from_static(b"=");
        }
        if let Some(th) = v.get_mut(self.threshold_pos) {
            *th = self.threshold;
        }
    }
}

/// ```text
/// XSETID key last-id [ENTRIESADDED entries-added] [MAXDELETEDID max-deleted-id]
/// ```
fn xsetid(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let id = parse_strict(&argv[2])?;
    let mut entries_added: i64 = -1;
    let mut max_del = StreamId::MIN;
    let mut i = 3;
    while i < argv.len() {
        let more = argv.len() - 1 - i;
        if eq_ic(&argv[i], "entriesadded") && more > 0 {
            entries_added = int_arg(&argv[i + 1])?;
            if entries_added < 0 {
                return Err(CmdError::err("entries_added must be positive"));
            }
        } else if eq_ic(&argv[i], "maxdeletedid") && more > 0 {
            max_del = parse_strict(&argv[i + 1])?;
            if id < max_del {
                return Err(CmdError::err(
                    "The ID specified in XSETID is smaller than the provided max_deleted_entry_id",
                ));
            }
        } else {
            return Err(CmdError::SYNTAX);
        }
        i += 2;
    }
    let key = &argv[1];
    let now = ctx.now;
    let shard = ctx.shard(key)?;
    if !check_stream(shard, key, now)? {
        return Err(CmdError::NO_SUCH_KEY);
    }
    if let Some(ValueRef::Obj(Obj::Stream(s))) = shard.peek(key, now) {
        if !s.is_empty() {
            let maxid = s.last_id;
            if id < maxid {
                return Err(CmdError::err(
                    "The ID specified in XSETID is smaller than the target stream top item",
                ));
            }
            if entries_added != -1 && s.len() as u64 > entries_added as u64 {
                return Err(CmdError::err(
                    "The entries_added specified in XSETID is smaller than the target stream length",
                ));
            }
        }
    }
    let Some(s) = write_stream(shard, key, now)? else {
        return Err(CmdError::NO_SUCH_KEY);
    };
    s.last_id = id;
    if entries_added != -1 {
        s.entries_added = entries_added as u64;
    }
    if !max_del.is_zero() {
        s.max_deleted = max_del;
    }
    ctx.changed(1);
    ctx.notify(notify::STREAM, "xsetid", key);
    Ok(Reply::OK)
}

// ---- XREAD / XREADGROUP ------------------------------------------------------------

/// Key positions of XREAD/XREADGROUP: the first half after STREAMS.
fn xread_keys(argv: &[Bytes]) -> Vec<usize> {
    let mut i = 1;
    while i < argv.len() {
        if eq_ic(&argv[i], "streams") {
            let first = i + 1;
            let n = (argv.len() - first) / 2;
            return (first..first + n).collect();
        }
        if eq_ic(&argv[i], "group") {
            i += 3;
        } else if eq_ic(&argv[i], "block") || eq_ic(&argv[i], "count") {
            i += 2;
        } else {
            i += 1;
        }
    }
    Vec::new()
}

/// Per-stream read request.
#[derive(Clone, Copy)]
enum ReadFrom {
    /// Entries with ID greater than this.
    After(StreamId),
    /// XREADGROUP `>`.
    New,
}

fn xread(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    xread_generic(ctx, argv, false)
}

fn xreadgroup(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    xread_generic(ctx, argv, true)
}

/// `XCLAIM <key> <group> <consumer> 0 <id> TIME <ms> RETRYCOUNT <n> FORCE
/// JUSTID LASTID <group-last-id>`: the idempotent form in which Redis
/// propagates a pending entry created or changed by XREADGROUP, XCLAIM or
/// XAUTOCLAIM (streamPropagateXCLAIM), so an AOF replay or a replica
/// rebuilds the PEL with the same owner, delivery time and count. For an
/// entry no longer in the stream the same command deletes the NACK.
fn xclaim_record(key: &Bytes, group: &Bytes, id: Bytes, n: &Nack, last_id: StreamId) -> Vec<Bytes> {
    let mut ib = itoa::Buffer::new();
    let time = Bytes::copy_from_slice(ib.format(n.delivery_time).as_bytes());
    let count = Bytes::copy_from_slice(ib.format(n.delivery_count).as_bytes());
    vec![
        Bytes::from_static(b"XCLAIM"),
        key.clone(),
        group.clone(),
        n.consumer.clone(),
        Bytes::from_static(b"0"),
        id,
        Bytes::from_static(b"TIME"),
        time,
        Bytes::from_static(b"RETRYCOUNT"),
        count,
        Bytes::from_static(b"FORCE"),
        Bytes::from_static(b"JUSTID"),
        Bytes::from_static(b"LASTID"),
        last_id.to_bytes(),
    ]
}

/// `XGROUP SETID <key> <group> <last-id> ENTRIESREAD <n>`: how Redis
/// propagates a group's new last-delivered ID when no XCLAIM carries it
/// (XREADGROUP NOACK, XCLAIM LASTID claiming nothing).
fn setid_record(key: &Bytes, group: &Bytes, g: &Group) -> Vec<Bytes> {
    vec![
        Bytes::from_static(b"XGROUP"),
        Bytes::from_static(b"SETID"),
        key.clone(),
        group.clone(),
        g.last_id.to_bytes(),
        Bytes::from_static(b"ENTRIESREAD"),
        Bytes::copy_from_slice(itoa::Buffer::new().format(g.entries_read).as_bytes()),
    ]
}

/// `XGROUP CREATECONSUMER <key> <group> <consumer>` (a consumer created by
/// XREADGROUP NOACK, which no XCLAIM creates on the other side).
fn createconsumer_record(key: &Bytes, group: &Bytes, consumer: &Bytes) -> Vec<Bytes> {
    vec![
        Bytes::from_static(b"XGROUP"),
        Bytes::from_static(b"CREATECONSUMER"),
        key.clone(),
        group.clone(),
        consumer.clone(),
    ]
}

/// The name a pending entry records as its owner: the consumer table's
/// own copy (one allocation per consumer, however many entries it owns),
/// never the argument, which would keep the client's read buffer alive.
fn owner_name(g: &Group, consumer: &[u8]) -> Bytes {
    match g.consumers.get_key_value(consumer) {
        Some((k, _)) => k.clone(),
        None => Bytes::copy_from_slice(consumer),
    }
}

/// Records one delivery of `id` to `consumer` in group `g` (XREADGROUP).
fn deliver(g: &mut Group, id: StreamId, consumer: &Bytes, now: u64) {
    let owner = owner_name(g, consumer);
    if let Some(n) = g.pel.get_mut(&id) {
        if n.consumer != *consumer {
            if let Some(old) = g.consumers.get_mut(&n.consumer) {
                old.pel.remove(&id);
            }
            n.consumer = owner;
        }
        n.delivery_time = now;
        n.delivery_count = 1;
    } else {
        g.pel.insert(
            id,
            Nack {
                delivery_time: now,
                delivery_count: 1,
                consumer: owner,
            },
        );
    }
    if let Some(c) = g.consumers.get_mut(consumer) {
        c.pel.insert(id);
    }
}

/// Looks up (refreshing seen-time) or creates a consumer. True if created.
fn touch_consumer(g: &mut Group, name: &Bytes, now: u64) -> bool {
    match g.consumers.get_mut(name) {
        Some(c) => {
            c.seen_time = now;
            false
        }
        None => {
            g.consumers.insert(
                crate::util::detach(name),
                Consumer {
                    seen_time: now,
                    pel: Default::default(),
                },
            );
            true
        }
    }
}

fn xread_generic(ctx: &mut Ctx<'_>, argv: &[Bytes], group_mode: bool) -> CmdResult {
    let mut timeout: Option<Option<u64>> = None;
    let mut count: usize = 0;
    let mut streams_arg = 0;
    let mut noack = false;
    let mut group: Option<(&Bytes, &Bytes)> = None;
    let argc = argv.len();
    let mut i = 1;
    while i < argc {
        let more = argc - i - 1;
        let o = &argv[i];
        if eq_ic(o, "block") && more > 0 {
            if ctx.in_script {
                // Where Redis checks it: in the option loop, so an earlier
                // bad option answers first.
                return Err(CmdError::err(format!(
                    "{} command is not allowed with BLOCK option from scripts",
                    String::from_utf8_lossy(&argv[0])
                )));
            }
            i += 1;
            timeout = Some(crate::commands::blocking::deadline_ms(&argv[i], ctx.now)?);
        } else if eq_ic(o, "count") && more > 0 {
            i += 1;
            count = int_arg(&argv[i])?.max(0) as usize;
        } else if eq_ic(o, "streams") && more > 0 {
            streams_arg = i + 1;
            if !(argc - streams_arg).is_multiple_of(2) {
                return Err(CmdError::err("Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified."));
            }
            break;
        } else if eq_ic(o, "group") && more >= 2 {
            if !group_mode {
                return Err(CmdError::err(
                    "The GROUP option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            group = Some((&argv[i + 1], &argv[i + 2]));
            i += 2;
        } else if eq_ic(o, "noack") {
            if !group_mode {
                return Err(CmdError::err(
                    "The NOACK option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            noack = true;
        } else {
            return Err(CmdError::SYNTAX);
        }
        i += 1;
    }
    if streams_arg == 0 {
        return Err(CmdError::SYNTAX);
    }
    if group_mode && group.is_none() {
        return Err(CmdError::err("Missing GROUP option for XREADGROUP"));
    }
    let n = (argc - streams_arg) / 2;
    let keys = &argv[streams_arg..streams_arg + n];
    let id_args = &argv[streams_arg + n..];
    let serving = ctx.client.blocking.serving;
    let now = ctx.now;
    // XREADGROUP is never propagated as itself: what it changed goes out as
    // XCLAIM / XGROUP SETID / XGROUP CREATECONSUMER (as Redis does, plus a
    // SETID after the XCLAIMs for the entries-read counter), and a read of
    // the consumer's history propagates nothing (its delivery-count bumps
    // are not propagated by Redis either).
    let prop = group_mode && ctx.propagating();
    if group_mode {
        ctx.propagate_as(Vec::new());
    }
    let mut records: Vec<Vec<Bytes>> = Vec::new();

    // Pass 1: types, groups, IDs.
    let mut froms = Vec::with_capacity(n);
    let mut dollar_resolved = false;
    for (key, ida) in keys.iter().zip(id_args) {
        let shard = ctx.shard(key)?;
        let s = match read_stream(shard, key, now) {
            Ok(s) => s,
            Err(_) if serving => None,
            Err(e) => return Err(e),
        };
        if let Some((g, _)) = group {
            if serving {
                // A blocked XREADGROUP woken by its stream's deletion or
                // replacement, or by its group's destruction.
                let Some(s) = s else {
                    return Err(CmdError::from_static(
                        "UNBLOCKED the stream key no longer exists",
                    ));
                };
                if !s.groups.contains_key(&g[..]) {
                    return Err(CmdError::from_static(
                        "NOGROUP the consumer group this client was blocked on no longer exists",
                    ));
                }
            }
            if s.is_none_or(|s| !s.groups.contains_key(&g[..])) {
                return Err(CmdError::new(format!(
                    "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
                    String::from_utf8_lossy(key),
                    String::from_utf8_lossy(g)
                )));
            }
        }
        let from = if &ida[..] == b"$" {
            if group_mode {
                return Err(CmdError::err("The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set."));
            }
            dollar_resolved = true;
            ReadFrom::After(s.map_or(StreamId::MIN, |s| s.last_id))
        } else if &ida[..] == b">" {
            if !group_mode {
                return Err(CmdError::err("The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option."));
            }
            ReadFrom::New
        } else {
            ReadFrom::After(parse_strict(ida)?)
        };
        froms.push(from);
    }

    // Pass 2: serve.
    let mut out: Vec<(Reply, Reply)> = Vec::new();
    for (idx, key) in keys.iter().enumerate() {
        let from = froms[idx];
        let shard = ctx.shard(key)?;
        let Some((gname, cname)) = group else {
            let Ok(Some(s)) = read_stream(shard, key, now) else {
                continue;
            };
            let ReadFrom::After(gt) = from else { continue };
            if s.is_empty() || s.last_entry_id().is_none_or(|id| id <= gt) {
                continue;
            }
            let Some(start) = gt.incr() else { continue };
            let v = s.range(start, StreamId::MAX, count, false);
            out.push((Reply::Bulk(key.clone()), entries_reply(v)));
            continue;
        };
        // Group read: decide before taking the write path.
        let sync = match (from, shard.peek(key, now)) {
            (_, Some(ValueRef::Obj(Obj::Stream(s)))) => match from {
                ReadFrom::After(_) => true,
                ReadFrom::New => {
                    let last_group = s.groups.get(&gname[..]).map(|g| g.last_id);
                    !s.is_empty() && s.last_entry_id() > last_group
                }
            },
            _ => false,
        };
        if !sync {
            continue;
        }
        // The peek above found a stream: take it for writing directly.
        let Some(Obj::Stream(s)) = shard.obj_mut(key, now) else {
            continue;
        };
        let mut created = false;
        let reply = match from {
            ReadFrom::After(gt) => {
                let Some(g) = s.groups.get_mut(&gname[..]) else {
                    continue;
                };
                created |= touch_consumer(g, cname, now);
                if created && noack && prop {
                    records.push(createconsumer_record(key, gname, cname));
                }
                let start = gt.incr();
                let ids: Vec<StreamId> = match (start, g.consumers.get(cname)) {
                    (Some(st), Some(c)) => c
                        .pel
                        .range(st..)
                        .take(if count == 0 { usize::MAX } else { count })
                        .copied()
                        .collect(),
                    _ => Vec::new(),
                };
                let mut items = Vec::with_capacity(ids.len());
                for id in ids {
                    match s.get(id) {
                        Some(fields) => {
                            if let Some(g) = s.groups.get_mut(&gname[..]) {
                                if let Some(n) = g.pel.get_mut(&id) {
                                    n.delivery_time = now;
                                    n.delivery_count += 1;
                                }
                            }
                            items.push(entry_reply((id, fields)));
                        }
                        None => items.push(Reply::Array(vec![id_reply(id), Reply::NullArray])),
                    }
                }
                Reply::Array(items)
            }
            ReadFrom::New => {
                let Some(g) = s.groups.get_mut(&gname[..]) else {
                    continue;
                };
                created |= touch_consumer(g, cname, now);
                if created && noack && prop {
                    records.push(createconsumer_record(key, gname, cname));
                }
                let last_before = g.last_id;
                let v = s.read_after(last_before, count);
                for (id, _) in &v {
                    let tomb = s.has_tombstones(*id, StreamId::MAX);
                    let est = s.estimate_distance(*id);
                    let added = s.entries_added;
                    let Some(g) = s.groups.get_mut(&gname[..]) else {
                        break;
                    };
                    if *id > g.last_id {
                        if g.entries_read != -1 && !tomb {
                            g.entries_read += 1;
                        } else if added > 0 {
                            g.entries_read = est;
                        }
                        g.last_id = *id;
                    }
                    if !noack {
                        deliver(g, *id, cname, now);
                        if prop {
                            if let Some(n) = g.pel.get(id) {
                                records.push(xclaim_record(
                                    key,
                                    gname,
                                    id.to_bytes(),
                                    n,
                                    g.last_id,
                                ));
                            }
                        }
                    }
                }
                // With NOACK no XCLAIM carries the new last ID (Redis then
                // sends XGROUP SETID). Without, Redis's XCLAIMs carry the
                // last ID but not the group's entries-read counter, which
                // an AOF replay would lose (nil after a restart): the same
                // SETID follows them so the counter is reproduced exactly.
                if prop {
                    if let Some(g) = s.groups.get(&gname[..]) {
                        if g.last_id > last_before {
                            records.push(setid_record(key, gname, g));
                        }
                    }
                }
                entries_reply(v)
            }
        };
        ctx.changed(1);
        for r in records.drain(..) {
            ctx.propagate_as(r);
        }
        if created {
            ctx.notify(notify::STREAM, "xgroup-createconsumer", key);
        }
        out.push((Reply::Bulk(key.clone()), reply));
    }
    if !out.is_empty() {
        return Ok(if ctx.client.resp >= 3 {
            Reply::Map(out)
        } else {
            Reply::Array(
                out.into_iter()
                    .map(|(k, v)| Reply::Array(vec![k, v]))
                    .collect(),
            )
        });
    }
    let Some(deadline) = timeout else {
        return Ok(Reply::NullArray);
    };
    let r = ctx.block(keys, deadline, Reply::NullArray)?;
    if dollar_resolved && ctx.client.blocking.waiter.is_some() {
        // Re-runs must read after the IDs seen now, not the then-last ones.
        let mut v = argv.to_vec();
        for (j, f) in froms.iter().enumerate() {
            if let ReadFrom::After(id) = f {
                v[streams_arg + n + j] = id.to_bytes();
            }
        }
        ctx.client.blocking.argv_override = Some(v);
    }
    Ok(r)
}

// ---- XACK XPENDING XCLAIM XAUTOCLAIM ----------------------------------------------

/// ```text
/// XACK key group id [id ...]
/// ```
fn xack(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let now = ctx.now;
    let shard = ctx.shard(key)?;
    let has_group = match read_stream(shard, key, now)? {
        Some(s) => s.groups.contains_key(&argv[2][..]),
        None => false,
    };
    if !has_group {
        return Ok(Reply::Int(0));
    }
    let ids = argv[3..]
        .iter()
        .map(|a| parse_strict(a))
        .collect::<CmdResult<Vec<_>>>()?;
    // Nothing pending among the IDs: leave the key (and WATCH) alone.
    let any = match shard.peek(key, now) {
        Some(ValueRef::Obj(Obj::Stream(s))) => s
            .groups
            .get(&argv[2][..])
            .is_some_and(|g| ids.iter().any(|id| g.pel.contains_key(id))),
        _ => false,
    };
    if !any {
        return Ok(Reply::Int(0));
    }
    let Some(s) = write_stream(shard, key, now)? else {
        return Ok(Reply::Int(0));
    };
    let Some(g) = s.groups.get_mut(&argv[2][..]) else {
        return Ok(Reply::Int(0));
    };
    let mut n = 0;
    for id in ids {
        if let Some(nack) = g.pel.remove(&id) {
            if let Some(c) = g.consumers.get_mut(&nack.consumer) {
                c.pel.remove(&id);
            }
            n += 1;
        }
    }
    ctx.changed(n);
    Ok(Reply::Int(n as i64))
}

/// ```text
/// XPENDING key group [[IDLE min-idle-time] start end count [consumer]]
/// ```
fn xpending(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let argc = argv.len();
    let justinfo = argc == 3;
    if argc != 3 && !(6..=9).contains(&argc) {
        return Err(CmdError::SYNTAX);
    }
    let mut start = StreamId::MIN;
    let mut end = StreamId::MAX;
    let mut count: i64 = 0;
    let mut minidle: i64 = 0;
    let mut consumer: Option<&Bytes> = None;
    if argc >= 6 {
        let mut si = 3;
        if eq_ic(&argv[3], "idle") {
            minidle = int_arg(&argv[4])?;
            if argc < 8 {
                return Err(CmdError::SYNTAX);
            }
            si += 2;
        }
        count = int_arg(&argv[si + 2])?.max(0);
        start = parse_start(&argv[si])?;
        end = parse_end(&argv[si + 1])?;
        // An argument after the consumer is ignored, as Redis 7.0 does.
        if si + 3 < argc {
            consumer = Some(&argv[si + 3]);
        }
    }
    let key = &argv[1];
    let now = ctx.now;
    let shard = ctx.shard(key)?;
    let s = read_stream(shard, key, now)?;
    let Some(g) = s.and_then(|s| s.groups.get(&argv[2][..])) else {
        return Err(nogroup_key(key, &argv[2]));
    };
    if justinfo {
        if g.pel.is_empty() {
            return Ok(Reply::Array(vec![
                Reply::Int(0),
                Reply::Null,
                Reply::Null,
                Reply::NullArray,
            ]));
        }
        let first = g.pel.keys().next().copied().unwrap_or_default();
        let last = g.pel.keys().next_back().copied().unwrap_or_default();
        let per: Vec<Reply> = g
            .consumers
            .iter()
            .filter(|(_, c)| !c.pel.is_empty())
            .map(|(n, c)| {
                Reply::Array(vec![
                    Reply::Bulk(n.clone()),
                    Reply::bulk_int(c.pel.len() as i64),
                ])
            })
            .collect();
        return Ok(Reply::Array(vec![
            Reply::Int(g.pel.len() as i64),
            id_reply(first),
            id_reply(last),
            Reply::Array(per),
        ]));
    }
    let mut out = Vec::new();
    let mut emit = |id: StreamId, n: &Nack, out: &mut Vec<Reply>| -> bool {
        if count == 0 {
            return false;
        }
        let idle = (now as i64 - n.delivery_time as i64).max(0);
        if minidle > 0 && idle < minidle {
            return true;
        }
        count -= 1;
        out.push(Reply::Array(vec![
            id_reply(id),
            Reply::Bulk(n.consumer.clone()),
            Reply::Int(idle),
            Reply::Int(n.delivery_count as i64),
        ]));
        true
    };
    if start <= end {
        match consumer {
            Some(cn) => {
                let Some(c) = g.consumers.get(&cn[..]) else {
                    return Ok(Reply::Array(vec![]));
                };
                for id in c.pel.range(start..=end) {
                    if let Some(n) = g.pel.get(id) {
                        if !emit(*id, n, &mut out) {
                            break;
                        }
                    }
                }
            }
            None => {
                for (id, n) in g.pel.range(start..=end) {
                    if !emit(*id, n, &mut out) {
                        break;
                    }
                }
            }
        }
    } else if let Some(cn) = consumer {
        if !g.consumers.contains_key(&cn[..]) {
            return Ok(Reply::Array(vec![]));
        }
    }
    Ok(Reply::Array(out))
}

/// Moves the pending entry `id` to `consumer` (XCLAIM/XAUTOCLAIM).
fn claim_to(
    g: &mut Group,
    id: StreamId,
    consumer: &Bytes,
    time: u64,
    retry: Option<u64>,
    justid: bool,
) {
    let owner = owner_name(g, consumer);
    let Some(n) = g.pel.get_mut(&id) else { return };
    let old = std::mem::replace(&mut n.consumer, owner);
    n.delivery_time = time;
    if let Some(r) = retry {
        n.delivery_count = r;
    } else if !justid {
        n.delivery_count += 1;
    }
    if old != *consumer {
        if let Some(c) = g.consumers.get_mut(&old) {
            c.pel.remove(&id);
        }
    }
    if let Some(c) = g.consumers.get_mut(consumer) {
        c.pel.insert(id);
    }
}

/// Drops a pending entry whose stream entry is gone.
fn drop_nack(g: &mut Group, id: StreamId) {
    if let Some(n) = g.pel.remove(&id) {
        if let Some(c) = g.consumers.get_mut(&n.consumer) {
            c.pel.remove(&id);
        }
    }
}

/// ```text
/// XCLAIM key group consumer min-idle-time id [id ...] [IDLE ms] [TIME unix-time-milliseconds] [RETRYCOUNT count] [FORCE] [JUSTID] [LASTID lastid]
/// ```
fn xclaim(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let gname = &argv[2];
    let cname = &argv[3];
    let now = ctx.now;
    {
        let shard = ctx.shard(key)?;
        let ok = read_stream(shard, key, now)?.is_some_and(|s| s.groups.contains_key(&gname[..]));
        if !ok {
            return Err(nogroup_key(key, gname));
        }
    }
    let minidle = int_or(&argv[4], "ERR Invalid min-idle-time argument for XCLAIM")?.max(0);
    let mut ids = Vec::new();
    let mut j = 5;
    while j < argv.len() {
        match parse_strict(&argv[j]) {
            Ok(id) => ids.push(id),
            Err(_) => break,
        }
        j += 1;
    }
    let mut force = false;
    let mut justid = false;
    let mut deliverytime: i64 = -1;
    let mut retry: i64 = -1;
    let mut last_id = StreamId::MIN;
    while j < argv.len() {
        let more = argv.len() - 1 - j;
        let opt = &argv[j];
        if eq_ic(opt, "force") {
            force = true;
        } else if eq_ic(opt, "justid") {
            justid = true;
        } else if eq_ic(opt, "idle") && more > 0 {
            j += 1;
            let v = int_or(&argv[j], "ERR Invalid IDLE option argument for XCLAIM")?;
            deliverytime = (now as i64).saturating_sub(v);
        } else if eq_ic(opt, "time") && more > 0 {
            j += 1;
            deliverytime = int_or(&argv[j], "ERR Invalid TIME option argument for XCLAIM")?;
        } else if eq_ic(opt, "retrycount") && more > 0 {
            j += 1;
            retry = int_or(
                &argv[j],
                "ERR Invalid RETRYCOUNT option argument for XCLAIM",
            )?;
        } else if eq_ic(opt, "lastid") && more > 0 {
            j += 1;
            last_id = parse_strict(&argv[j])?;
        } else {
            return Err(CmdError::err(format!(
                "Unrecognized XCLAIM option '{}'",
                String::from_utf8_lossy(opt)
            )));
        }
        j += 1;
    }
    let dtime = if deliverytime < 0 || deliverytime > now as i64 {
        now
    } else {
        deliverytime as u64
    };
    let retry = (retry >= 0).then_some(retry as u64);
    let mut dirty = 0;
    let mut created = false;
    // Propagated as one XCLAIM per entry changed (carrying the group's last
    // ID) and, when only LASTID changed something, XGROUP SETID.
    let prop = ctx.propagating();
    let mut records: Vec<Vec<Bytes>> = Vec::new();
    let mut propagate_last_id = false;
    let shard = ctx.shard(key)?;
    let Some(s) = write_stream(shard, key, now)? else {
        return Err(nogroup_key(key, gname));
    };
    if let Some(g) = s.groups.get_mut(&gname[..]) {
        if last_id > g.last_id {
            g.last_id = last_id;
            propagate_last_id = true;
        }
    }
    let mut out = Vec::new();
    for (id, arg) in ids.into_iter().zip(&argv[5..]) {
        let exists = s.contains(id);
        let Some(g) = s.groups.get_mut(&gname[..]) else {
            break;
        };
        if !exists {
            if let Some(n) = g.pel.get(&id) {
                if prop {
                    records.push(xclaim_record(key, gname, arg.clone(), n, g.last_id));
                }
                propagate_last_id = false;
                drop_nack(g, id);
                dirty += 1;
            }
            continue;
        }
        let mut fresh = false;
        if force && !g.pel.contains_key(&id) {
            // As a new NACK in Redis: delivered once, just now.
            let owner = owner_name(g, cname);
            g.pel.insert(
                id,
                Nack {
                    delivery_time: now,
                    delivery_count: 1,
                    consumer: owner,
                },
            );
            fresh = true;
        }
        let Some(n) = g.pel.get(&id) else { continue };
        if !fresh && minidle > 0 && (now as i64 - n.delivery_time as i64) < minidle {
            continue;
        }
        created |= touch_consumer(g, cname, now);
        claim_to(g, id, cname, dtime, retry, justid);
        if prop {
            if let Some(n) = g.pel.get(&id) {
                records.push(xclaim_record(key, gname, arg.clone(), n, g.last_id));
            }
        }
        propagate_last_id = false;
        dirty += 1;
        if justid {
            out.push(id_reply(id));
        } else if let Some(f) = s.get(id) {
            out.push(entry_reply((id, f)));
        }
    }
    if propagate_last_id {
        if let Some(g) = s.groups.get(&gname[..]) {
            if prop {
                records.push(setid_record(key, gname, g));
            }
        }
        dirty += 1;
    }
    ctx.propagate_as(Vec::new());
    for r in records {
        ctx.propagate_as(r);
    }
    ctx.changed(dirty);
    if created {
        ctx.notify(notify::STREAM, "xgroup-createconsumer", key);
    }
    Ok(Reply::Array(out))
}

/// ```text
/// XAUTOCLAIM key group consumer min-idle-time start [COUNT count] [JUSTID]
/// ```
fn xautoclaim(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let gname = &argv[2];
    let cname = &argv[3];
    let now = ctx.now;
    let minidle = int_or(
        &argv[4],
        "ERR Invalid min-idle-time argument for XAUTOCLAIM",
    )?
    .max(0);
    let start = parse_start(&argv[5])?;
    let mut count: i64 = 100;
    let mut justid = false;
    let mut j = 6;
    while j < argv.len() {
        let more = argv.len() - 1 - j;
        if eq_ic(&argv[j], "count") && more > 0 {
            let max = i64::MAX / 16;
            count = int_arg(&argv[j + 1])
                .ok()
                .filter(|c| (1..=max).contains(c))
                .ok_or_else(|| CmdError::err("COUNT must be > 0"))?;
            j += 1;
        } else if eq_ic(&argv[j], "justid") {
            justid = true;
        } else {
            return Err(CmdError::SYNTAX);
        }
        j += 1;
    }
    let prop = ctx.propagating();
    let shard = ctx.shard(key)?;
    let ok = read_stream(shard, key, now)?.is_some_and(|s| s.groups.contains_key(&gname[..]));
    if !ok {
        return Err(nogroup_key(key, gname));
    }
    let Some(s) = write_stream(shard, key, now)? else {
        return Err(nogroup_key(key, gname));
    };
    // Propagated as one XCLAIM per entry claimed or dropped (as Redis).
    let mut records: Vec<Vec<Bytes>> = Vec::new();
    let mut attempts = count.saturating_mul(10);
    let mut out = Vec::new();
    let mut deleted = Vec::new();
    let mut dirty = 0;
    let mut created = false;
    let mut cursor = start;
    let mut last_seen: Option<StreamId> = None;
    let mut eof = false;
    while attempts > 0 && count > 0 {
        attempts -= 1;
        let next = s.groups.get(&gname[..]).and_then(|g| {
            g.pel
                .range(cursor..)
                .next()
                .map(|(id, n)| (*id, n.delivery_time))
        });
        let Some((id, dt)) = next else {
            eof = true;
            break;
        };
        last_seen = Some(id);
        cursor = match id.incr() {
            Some(c) => c,
            None => {
                // Nothing can follow the maximum ID.
                eof = true;
                StreamId::MAX
            }
        };
        let exists = s.contains(id);
        let Some(g) = s.groups.get_mut(&gname[..]) else {
            break;
        };
        if !exists {
            if prop {
                if let Some(n) = g.pel.get(&id) {
                    records.push(xclaim_record(key, gname, id.to_bytes(), n, g.last_id));
                }
            }
            drop_nack(g, id);
            deleted.push(id_reply(id));
            dirty += 1;
            count -= 1;
            if eof {
                break;
            }
            continue;
        }
        if minidle > 0 && (now as i64 - dt as i64) < minidle {
            if eof {
                break;
            }
            continue;
        }
        created |= touch_consumer(g, cname, now);
        claim_to(g, id, cname, now, None, justid);
        if prop {
            if let Some(n) = g.pel.get(&id) {
                records.push(xclaim_record(key, gname, id.to_bytes(), n, g.last_id));
            }
        }
        dirty += 1;
        if justid {
            out.push(id_reply(id));
        } else if let Some(f) = s.get(id) {
            out.push(entry_reply((id, f)));
        }
        count -= 1;
        if eof {
            break;
        }
    }
    let end = if eof {
        StreamId::MIN
    } else {
        let from = match last_seen {
            Some(l) => l.incr(),
            None => Some(start),
        };
        from.and_then(|f| {
            s.groups
                .get(&gname[..])
                .and_then(|g| g.pel.range(f..).next().map(|(id, _)| *id))
        })
        .unwrap_or(StreamId::MIN)
    };
    ctx.propagate_as(Vec::new());
    for r in records {
        ctx.propagate_as(r);
    }
    ctx.changed(dirty);
    if created {
        ctx.notify(notify::STREAM, "xgroup-createconsumer", key);
    }
    Ok(Reply::Array(vec![
        id_reply(end),
        Reply::Array(out),
        Reply::Array(deleted),
    ]))
}

// ---- XGROUP ----------------------------------------------------------------------

/// ```text
/// XGROUP CREATE key group <id | $> [MKSTREAM] [ENTRIESREAD entries-read]
/// XGROUP SETID key group <id | $> [ENTRIESREAD entries-read]
/// XGROUP DESTROY key group
/// XGROUP CREATECONSUMER key group consumer
/// XGROUP DELCONSUMER key group consumer
/// ```
fn xgroup(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let sub = &argv[1];
    let key = &argv[2];
    let gname = &argv[3];
    let is_create = eq_ic(sub, "create");
    let is_setid = eq_ic(sub, "setid");
    let mut mkstream = false;
    let mut entries_read: i64 = -1;
    let mut i = 5;
    while i < argv.len() {
        if is_create && eq_ic(&argv[i], "mkstream") {
            mkstream = true;
            i += 1;
        } else if (is_create || is_setid) && eq_ic(&argv[i], "entriesread") && i + 1 < argv.len() {
            entries_read = int_arg(&argv[i + 1])?;
            if entries_read < 0 && entries_read != -1 {
                return Err(CmdError::err(
                    "value for ENTRIESREAD must be positive or -1",
                ));
            }
            i += 2;
        } else {
            return Err(sub_syntax(argv));
        }
    }
    let now = ctx.now;
    let shard = ctx.shard(key)?;
    let exists = check_stream(shard, key, now)?;
    let (has_group, last_id) = match shard.peek(key, now) {
        Some(ValueRef::Obj(Obj::Stream(s))) => (s.groups.contains_key(&gname[..]), s.last_id),
        _ => (false, StreamId::MIN),
    };
    if !mkstream {
        if !exists {
            return Err(CmdError::err("The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically."));
        }
        if !has_group && (is_setid || eq_ic(sub, "createconsumer") || eq_ic(sub, "delconsumer")) {
            return Err(nogroup_for_key(gname, key));
        }
    }
    if is_create && (5..=8).contains(&argv.len()) {
        let id = if &argv[4][..] == b"$" {
            last_id
        } else {
            parse_strict(&argv[4])?
        };
        if has_group {
            return Err(CmdError::from_static(
                "BUSYGROUP Consumer Group name already exists",
            ));
        }
        let s = stream_or_create(shard, key, now)?;
        s.groups.insert(
            crate::util::detach(gname),
            Shared::new(Group {
                last_id: id,
                entries_read,
                ..Default::default()
            }),
        );
        ctx.changed(1);
        ctx.notify(notify::STREAM, "xgroup-create", key);
        Ok(Reply::OK)
    } else if is_setid && (argv.len() == 5 || argv.len() == 7) {
        let id = if &argv[4][..] == b"$" {
            last_id
        } else {
            parse_id(&argv[4], 0)?
        };
        let Some(s) = write_stream(shard, key, now)? else {
            return Err(nogroup_for_key(gname, key));
        };
        if let Some(g) = s.groups.get_mut(&gname[..]) {
            g.last_id = id;
            g.entries_read = entries_read;
        }
        ctx.changed(1);
        ctx.notify(notify::STREAM, "xgroup-setid", key);
        Ok(Reply::OK)
    } else if eq_ic(sub, "destroy") && argv.len() == 4 {
        if !has_group {
            return Ok(Reply::Int(0));
        }
        if let Some(s) = write_stream(shard, key, now)? {
            s.groups.remove(&gname[..]);
        }
        ctx.changed(1);
        ctx.notify(notify::STREAM, "xgroup-destroy", key);
        ctx.signal_ready(key);
        Ok(Reply::Int(1))
    } else if eq_ic(sub, "createconsumer") && argv.len() == 5 {
        let exists_c = match shard.peek(key, now) {
            Some(ValueRef::Obj(Obj::Stream(s))) => s
                .groups
                .get(&gname[..])
                .is_some_and(|g| g.consumers.contains_key(&argv[4][..])),
            _ => false,
        };
        if exists_c {
            return Ok(Reply::Int(0));
        }
        let Some(s) = write_stream(shard, key, now)? else {
            return Ok(Reply::Int(0));
        };
        if let Some(g) = s.groups.get_mut(&gname[..]) {
            touch_consumer(g, &argv[4], now);
        }
        ctx.changed(1);
        ctx.notify(notify::STREAM, "xgroup-createconsumer", key);
        Ok(Reply::Int(1))
    } else if eq_ic(sub, "delconsumer") && argv.len() == 5 {
        let exists_c = match shard.peek(key, now) {
            Some(ValueRef::Obj(Obj::Stream(s))) => s
                .groups
                .get(&gname[..])
                .is_some_and(|g| g.consumers.contains_key(&argv[4][..])),
            _ => false,
        };
        if !exists_c {
            return Ok(Reply::Int(0));
        }
        let Some(s) = write_stream(shard, key, now)? else {
            return Ok(Reply::Int(0));
        };
        let mut pending = 0;
        if let Some(g) = s.groups.get_mut(&gname[..]) {
            if let Some(c) = g.consumers.remove(&argv[4][..]) {
                pending = c.pel.len();
                for id in &c.pel {
                    g.pel.remove(id);
                }
            }
        }
        ctx.changed(1);
        ctx.notify(notify::STREAM, "xgroup-delconsumer", key);
        Ok(Reply::Int(pending as i64))
    } else {
        Err(sub_syntax(argv))
    }
}

fn xgroup_help(_ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    Ok(help_reply(
        "XGROUP",
        &[
            "CREATE <key> <groupname> <id|$> [option]",
            "    Create a new consumer group. Options are:",
            "    * MKSTREAM",
            "      Create the empty stream if it does not exist.",
            "    * ENTRIESREAD entries_read",
            "      Set the group's entries_read counter (internal use).",
            "CREATECONSUMER <key> <groupname> <consumer>",
            "    Create a new consumer in the specified group.",
            "DELCONSUMER <key> <groupname> <consumer>",
            "    Remove the specified consumer.",
            "DESTROY <key> <groupname>",
            "    Remove the specified group.",
            "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
            "    Set the current group ID and entries_read counter.",
        ],
    ))
}

// ---- XINFO -----------------------------------------------------------------------

fn xinfo_help(_ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    Ok(help_reply(
        "XINFO",
        &[
            "CONSUMERS <key> <groupname>",
            "    Show consumers of <groupname>.",
            "GROUPS <key>",
            "    Show the stream consumer groups.",
            "STREAM <key> [FULL [COUNT <count>]",
            "    Show information about the stream.",
        ],
    ))
}

/// Redis's addReplyHelp layout.
fn help_reply(cmd: &str, lines: &[&str]) -> Reply {
    let mut v = vec![Reply::StatusOwned(format!(
        "{cmd} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
    ))];
    v.extend(lines.iter().map(|l| Reply::StatusOwned(l.to_string())));
    v.push(Reply::Status("HELP"));
    v.push(Reply::Status("    Prints this help."));
    Reply::Array(v)
}

fn bulk(s: &'static str) -> Reply {
    Reply::Bulk(Bytes::from_static(s.as_bytes()))
}

fn int_or_null(v: Option<i64>) -> Reply {
    v.map_or(Reply::Null, Reply::Int)
}

fn xinfo_consumers(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[2];
    let now = ctx.now;
    let shard = ctx.shard(key)?;
    let Some(s) = read_stream(shard, key, now)? else {
        return Err(CmdError::NO_SUCH_KEY);
    };
    let Some(g) = s.groups.get(&argv[3][..]) else {
        return Err(nogroup_for_key(&argv[3], key));
    };
    Ok(Reply::Array(
        g.consumers
            .iter()
            .map(|(n, c)| {
                Reply::Map(vec![
                    (bulk("name"), Reply::Bulk(n.clone())),
                    (bulk("pending"), Reply::Int(c.pel.len() as i64)),
                    (
                        bulk("idle"),
                        Reply::Int((now as i64 - c.seen_time as i64).max(0)),
                    ),
                ])
            })
            .collect(),
    ))
}

fn xinfo_groups(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[2];
    let now = ctx.now;
    let shard = ctx.shard(key)?;
    let Some(s) = read_stream(shard, key, now)? else {
        return Err(CmdError::NO_SUCH_KEY);
    };
    Ok(Reply::Array(
        s.groups
            .iter()
            .map(|(n, g)| {
                Reply::Map(vec![
                    (bulk("name"), Reply::Bulk(n.clone())),
                    (bulk("consumers"), Reply::Int(g.consumers.len() as i64)),
                    (bulk("pending"), Reply::Int(g.pel.len() as i64)),
                    (bulk("last-delivered-id"), id_reply(g.last_id)),
                    (
                        bulk("entries-read"),
                        int_or_null((g.entries_read != -1).then_some(g.entries_read)),
                    ),
                    (bulk("lag"), int_or_null(s.group_lag(g))),
                ])
            })
            .collect(),
    ))
}

fn xinfo_stream(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[2];
    let opts = &argv[3..];
    let now = ctx.now;
    let shard = ctx.shard(key)?;
    // The key is looked up before the options are read, as in Redis.
    let Some(s) = read_stream(shard, key, now)? else {
        return Err(CmdError::NO_SUCH_KEY);
    };
    let mut full = false;
    let mut count: i64 = 10;
    if !opts.is_empty() {
        if (opts.len() != 1 && opts.len() != 3) || !eq_ic(&opts[0], "full") {
            return Err(sub_syntax(argv));
        }
        full = true;
        if opts.len() == 3 {
            if !eq_ic(&opts[1], "count") {
                return Err(sub_syntax(argv));
            }
            count = int_arg(&opts[2])?;
            if count < 0 {
                count = 10;
            }
        }
    }
    let mut m = vec![
        (bulk("length"), Reply::Int(s.len() as i64)),
        (bulk("radix-tree-keys"), Reply::Int(s.block_count() as i64)),
        (
            bulk("radix-tree-nodes"),
            Reply::Int(s.radix_tree_nodes() as i64),
        ),
        (bulk("last-generated-id"), id_reply(s.last_id)),
        (bulk("max-deleted-entry-id"), id_reply(s.max_deleted)),
        (bulk("entries-added"), Reply::Int(s.entries_added as i64)),
        (bulk("recorded-first-entry-id"), id_reply(s.first_id)),
    ];
    if !full {
        m.push((bulk("groups"), Reply::Int(s.groups.len() as i64)));
        m.push((
            bulk("first-entry"),
            s.first_entry().map_or(Reply::Null, entry_reply),
        ));
        m.push((
            bulk("last-entry"),
            s.last_entry().map_or(Reply::Null, entry_reply),
        ));
        return Ok(Reply::Map(m));
    }
    let lim = count as usize;
    m.push((
        bulk("entries"),
        entries_reply(s.range(StreamId::MIN, StreamId::MAX, lim, false)),
    ));
    let take = |n: usize| if lim == 0 { n } else { n.min(lim) };
    let groups = s
        .groups
        .iter()
        .map(|(name, g)| {
            let pending = g
                .pel
                .iter()
                .take(take(g.pel.len()))
                .map(|(id, n)| {
                    Reply::Array(vec![
                        id_reply(*id),
                        Reply::Bulk(n.consumer.clone()),
                        Reply::Int(n.delivery_time as i64),
                        Reply::Int(n.delivery_count as i64),
                    ])
                })
                .collect();
            let consumers = g
                .consumers
                .iter()
                .map(|(cn, c)| {
                    let cp = c
                        .pel
                        .iter()
                        .take(take(c.pel.len()))
                        .filter_map(|id| {
                            let n = g.pel.get(id)?;
                            Some(Reply::Array(vec![
                                id_reply(*id),
                                Reply::Int(n.delivery_time as i64),
                                Reply::Int(n.delivery_count as i64),
                            ]))
                        })
                        .collect();
                    Reply::Map(vec![
                        (bulk("name"), Reply::Bulk(cn.clone())),
                        (bulk("seen-time"), Reply::Int(c.seen_time as i64)),
                        (bulk("pel-count"), Reply::Int(c.pel.len() as i64)),
                        (bulk("pending"), Reply::Array(cp)),
                    ])
                })
                .collect();
            Reply::Map(vec![
                (bulk("name"), Reply::Bulk(name.clone())),
                (bulk("last-delivered-id"), id_reply(g.last_id)),
                (
                    bulk("entries-read"),
                    int_or_null((g.entries_read != -1).then_some(g.entries_read)),
                ),
                (bulk("lag"), int_or_null(s.group_lag(g))),
                (bulk("pel-count"), Reply::Int(g.pel.len() as i64)),
                (bulk("pending"), Reply::Array(pending)),
                (bulk("consumers"), Reply::Array(consumers)),
            ])
        })
        .collect();
    m.push((bulk("groups"), Reply::Array(groups)));
    Ok(Reply::Map(m))
}
