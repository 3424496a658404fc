//! Generic key commands: DEL UNLINK EXISTS TYPE RENAME RENAMENX COPY MOVE
//! EXPIRE PEXPIRE EXPIREAT PEXPIREAT TTL PTTL EXPIRETIME PEXPIRETIME PERSIST
//! KEYS SCAN RANDOMKEY TOUCH OBJECT DUMP RESTORE, and the database commands DBSIZE
//! FLUSHDB FLUSHALL SWAPDB.

use bytes::Bytes;

use crate::commands::connection::help_reply;
use crate::commands::ctx::Ctx;
use crate::commands::spec::{cmd, container, Acl, CmdFlags as F, CommandSpec, LockScope};
use crate::config::notify as N;
use crate::persistence::rdb;
use crate::protocol::args::{c_int_arg, eq_ic, int_arg, Args};
use crate::protocol::reply::{Agg, Bulks};
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::server::Server;
use crate::storage::Ttl;
use crate::util::glob::glob_match;

const K: Acl = Acl::KEYSPACE;
const RF: F = F::READONLY.union(F::FAST);
const WF: F = F::WRITE.union(F::FAST);

pub const SPECS: &[CommandSpec] = &[
    cmd("del", -2, F::WRITE, del).keys(1, -1, 1).acl(K).doc("generic", "1.0.0", "Deletes one or more keys."),
    cmd("unlink", -2, WF, unlink).keys(1, -1, 1).acl(K).doc("generic", "4.0.0", "Asynchronously deletes one or more keys."),
    cmd("exists", -2, RF, exists).keys(1, -1, 1).acl(K).doc("generic", "1.0.0", "Determines whether one or more keys exist."),
    cmd("type", 2, RF, type_cmd).keys(1, 1, 1).acl(K).doc("generic", "1.0.0", "Determines the type of value stored at a key."),
    cmd("rename", 3, F::WRITE, rename).keys(1, 2, 1).acl(K).doc("generic", "1.0.0", "Renames a key and overwrites the destination."),
    cmd("renamenx", 3, WF, renamenx).keys(1, 2, 1).acl(K).doc("generic", "1.0.0", "Renames a key only when the target key name doesn't exist."),
    cmd("copy", -3, F::WRITE.union(F::DENYOOM), copy).keys(1, 2, 1).lock(LockScope::Custom(copy_locks)).acl(K).doc("generic", "6.2.0", "Copies the value of a key to a new key."),
    cmd("move", 3, WF, move_cmd).keys(1, 1, 1).lock(LockScope::Custom(move_locks)).acl(K).doc("generic", "1.0.0", "Moves a key to another database."),
    cmd("expire", -3, WF, expire).keys(1, 1, 1).acl(K).doc("generic", "1.0.0", "Sets the expiration time of a key in seconds."),
    cmd("pexpire", -3, WF, pexpire).keys(1, 1, 1).acl(K).doc("generic", "2.6.0", "Sets the expiration time of a key in milliseconds."),
    cmd("expireat", -3, WF, expireat).keys(1, 1, 1).acl(K).doc("generic", "1.2.0", "Sets the expiration time of a key to a Unix timestamp."),
    cmd("pexpireat", -3, WF, pexpireat).keys(1, 1, 1).acl(K).doc("generic", "2.6.0", "Sets the expiration time of a key to a Unix milliseconds timestamp."),
    cmd("ttl", 2, RF, ttl).keys(1, 1, 1).acl(K).doc("generic", "1.0.0", "Returns the expiration time in seconds of a key."),
    cmd("pttl", 2, RF, pttl).keys(1, 1, 1).acl(K).doc("generic", "2.6.0", "Returns the expiration time in milliseconds of a key."),
    cmd("expiretime", 2, RF, expiretime).keys(1, 1, 1).acl(K).doc("generic", "7.0.0", "Returns the expiration time of a key as a Unix timestamp."),
    cmd("pexpiretime", 2, RF, pexpiretime).keys(1, 1, 1).acl(K).doc("generic", "7.0.0", "Returns the expiration time of a key as a Unix milliseconds timestamp."),
    cmd("persist", 2, WF, persist).keys(1, 1, 1).acl(K).doc("generic", "2.2.0", "Removes the expiration time of a key."),
    cmd("keys", 2, F::READONLY, keys).lock(LockScope::Db).acl(K.union(Acl::DANGEROUS)).doc("generic", "1.0.0", "Returns all key names that match a pattern."),
    cmd("scan", -2, F::READONLY, scan).lock(LockScope::Db).acl(K).doc("generic", "2.8.0", "Iterates over the key names in the database."),
    cmd("randomkey", 1, F::READONLY, randomkey).lock(LockScope::Db).acl(K).doc("generic", "1.0.0", "Returns a random key name from the database."),
    cmd("touch", -2, RF, touch).keys(1, -1, 1).acl(K).doc("generic", "3.2.1", "Returns the number of existing keys out of those specified after updating the time they were last accessed."),
    cmd("dump", 2, F::READONLY, dump).keys(1, 1, 1).acl(K).doc("generic", "2.6.0", "Returns a serialized representation of the value stored at a key."),
    cmd("restore", -4, F::WRITE.union(F::DENYOOM), restore).keys(1, 1, 1).acl(K.union(Acl::DANGEROUS)).doc("generic", "2.6.0", "Creates a key from the serialized representation of a value."),
    // MIGRATE's target side in a cluster; with no slots ever in migration
    // here, it is RESTORE.
    cmd("restore-asking", -4, F::WRITE.union(F::DENYOOM).union(F::ASKING), restore).keys(1, 1, 1).acl(K.union(Acl::DANGEROUS)).doc("server", "3.0.0", "An internal command for migrating keys in a cluster"),
    container("object", OBJECT_SUBS).doc("generic", "2.2.3", "A container for object introspection commands."),
    cmd("dbsize", 1, RF, dbsize).lock(LockScope::Db).acl(K).doc("server", "1.0.0", "Returns the number of keys in the database."),
    cmd("flushdb", -1, F::WRITE, flushdb).lock(LockScope::Db).acl(K.union(Acl::DANGEROUS)).doc("server", "1.0.0", "Removes all keys from the current database."),
    cmd("flushall", -1, F::WRITE, flushall).lock(LockScope::All).acl(K.union(Acl::DANGEROUS)).doc("server", "1.0.0", "Removes all keys from all databases."),
    cmd("swapdb", 3, WF, swapdb).lock(LockScope::All).acl(K.union(Acl::DANGEROUS)).doc("server", "4.0.0", "Swaps two Redis databases."),
];

const OBJECT_SUBS: &[CommandSpec] = &[
    cmd("encoding", 3, F::READONLY, object_encoding)
        .keys(2, 2, 1)
        .acl(K)
        .doc(
            "generic",
            "2.2.3",
            "Returns the internal encoding of a Redis object.",
        ),
    cmd("refcount", 3, F::READONLY, object_refcount)
        .keys(2, 2, 1)
        .acl(K)
        .doc(
            "generic",
            "2.2.3",
            "Returns the reference count of a value of a key.",
        ),
    cmd("idletime", 3, F::READONLY, object_idletime)
        .keys(2, 2, 1)
        .acl(K)
        .doc(
            "generic",
            "2.2.3",
            "Returns the time since the last access to a Redis object.",
        ),
    cmd("freq", 3, F::READONLY, object_freq)
        .keys(2, 2, 1)
        .acl(K)
        .doc(
            "generic",
            "4.0.0",
            "Returns the logarithmic access frequency counter of a Redis object.",
        ),
    cmd("help", 2, F::LOADING.union(F::STALE), object_help)
        .acl(K)
        .doc(
            "generic",
            "6.2.0",
            "Returns helpful text about the different subcommands.",
        ),
];

/// A database index as MOVE and COPY read it (`getIntFromObjectOrReply`).
fn db_arg(srv: &Server, raw: &[u8]) -> CmdResult<usize> {
    let n = c_int_arg(raw, None)?;
    if n < 0 || n as usize >= srv.keyspace.num_dbs() {
        return Err(CmdError::DB_RANGE);
    }
    Ok(n as usize)
}

fn move_locks(srv: &Server, db: usize, argv: &[Bytes]) -> Vec<(u32, u32)> {
    let sh = srv.keyspace.shard_index(&argv[1]) as u32;
    let mut v = vec![(db as u32, sh)];
    if let Ok(d) = db_arg(srv, &argv[2]) {
        v.push((d as u32, sh));
    }
    v
}

fn copy_target_db(srv: &Server, db: usize, argv: &[Bytes]) -> CmdResult<(usize, bool)> {
    let mut target = db;
    let mut replace = false;
    let mut a = Args::new(argv, 3);
    while let Some(opt) = a.next_opt() {
        if eq_ic(opt, "replace") {
            replace = true;
        } else if eq_ic(opt, "db") && a.remaining() > 0 {
            target = db_arg(srv, a.next_arg()?)?;
        } else {
            return Err(CmdError::SYNTAX);
        }
    }
    Ok((target, replace))
}

fn copy_locks(srv: &Server, db: usize, argv: &[Bytes]) -> Vec<(u32, u32)> {
    let ks = &srv.keyspace;
    let target = copy_target_db(srv, db, argv).map(|t| t.0).unwrap_or(db);
    vec![
        (db as u32, ks.shard_index(&argv[1]) as u32),
        (target as u32, ks.shard_index(&argv[2]) as u32),
    ]
}

/// ```text
/// DEL key [key ...]
/// ```
fn del(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let lazy = ctx.srv.config.lazyfree_lazy_user_del();
    delete_keys(ctx, argv, lazy)
}

/// DEL that frees big values in the background (see storage::lazyfree).
fn unlink(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    delete_keys(ctx, argv, true)
}

fn delete_keys(ctx: &mut Ctx<'_>, argv: &[Bytes], lazy: bool) -> CmdResult {
    let now = ctx.now;
    let mut n = 0;
    for k in &argv[1..] {
        if ctx.shard(k)?.delete_with(k, now, lazy) {
            n += 1;
            ctx.notify(N::GENERIC, "del", k);
        }
    }
    ctx.changed(n as u64);
    Ok(Reply::Int(n))
}

fn exists(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let now = ctx.now;
    let mut n = 0;
    for k in &argv[1..] {
        if ctx.shard(k)?.contains(k, now) {
            n += 1;
        }
    }
    Ok(Reply::Int(n))
}

fn type_cmd(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let now = ctx.now;
    let t = ctx
        .shard(&argv[1])?
        .peek(&argv[1], now)
        .map(|v| v.type_name())
        .unwrap_or("none");
    Ok(Reply::Status(t))
}

fn rename_generic(ctx: &mut Ctx<'_>, argv: &[Bytes], nx: bool) -> CmdResult<bool> {
    let (src, dst) = (&argv[1], &argv[2]);
    let now = ctx.now;
    if !ctx.shard(src)?.contains(src, now) {
        return Err(CmdError::NO_SUCH_KEY);
    }
    if src == dst {
        return Ok(!nx);
    }
    if nx && ctx.shard(dst)?.contains(dst, now) {
        return Ok(false);
    }
    let Some((v, exp)) = ctx.shard(src)?.take(src, now) else {
        return Err(CmdError::NO_SUCH_KEY);
    };
    let ttl = exp.map(Ttl::At).unwrap_or(Ttl::Clear);
    ctx.notify(N::GENERIC, "rename_from", src);
    ctx.shard(dst)?.set(dst, v, ttl, now);
    ctx.changed(1);
    ctx.notify(N::GENERIC, "rename_to", dst);
    ctx.signal_ready(dst);
    Ok(true)
}

/// ```text
/// RENAME key newkey
/// ```
fn rename(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    rename_generic(ctx, argv, false)?;
    Ok(Reply::OK)
}

fn renamenx(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(rename_generic(ctx, argv, true)? as i64))
}

/// ```text
/// COPY source destination [DB destination-db] [REPLACE]
/// ```
fn copy(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let (src, dst) = (&argv[1], &argv[2]);
    let db = ctx.client.db;
    let (target, replace) = copy_target_db(ctx.srv, db, argv)?;
    if ctx.srv.cluster.get().is_some() && (db != 0 || target != 0) {
        return Err(CmdError::err(
            "Copying to another database is not allowed in cluster mode",
        ));
    }
    if target == db && src == dst {
        return Err(CmdError::SAME_OBJECT);
    }
    let now = ctx.now;
    let sh = ctx.shard(src)?;
    let Some(v) = sh.peek(src, now).map(|v| v.to_value()) else {
        return Ok(Reply::Int(0));
    };
    let exp = sh.expire_of(src, now).flatten();
    let dsh = ctx.shard_in(target as u32, dst)?;
    if dsh.contains(dst, now) && !replace {
        return Ok(Reply::Int(0));
    }
    dsh.set(dst, v, exp.map(Ttl::At).unwrap_or(Ttl::Clear), now);
    ctx.changed(1);
    ctx.notify_in(target, N::GENERIC, "copy_to", dst);
    ctx.signal_ready_in(target as u32, dst);
    Ok(Reply::Int(1))
}

/// ```text
/// MOVE key db
/// ```
fn move_cmd(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    if ctx.srv.cluster.get().is_some() {
        return Err(CmdError::err("MOVE is not allowed in cluster mode"));
    }
    let key = &argv[1];
    let target = db_arg(ctx.srv, &argv[2])?;
    let db = ctx.client.db;
    if target == db {
        return Err(CmdError::SAME_OBJECT);
    }
    let now = ctx.now;
    if !ctx.shard(key)?.contains(key, now) || ctx.shard_in(target as u32, key)?.contains(key, now) {
        return Ok(Reply::Int(0));
    }
    let Some((v, exp)) = ctx.shard(key)?.take(key, now) else {
        return Ok(Reply::Int(0));
    };
    ctx.notify(N::GENERIC, "move_from", key);
    ctx.shard_in(target as u32, key)?
        .set(key, v, exp.map(Ttl::At).unwrap_or(Ttl::Clear), now);
    ctx.changed(1);
    ctx.notify_in(target, N::GENERIC, "move_to", key);
    ctx.signal_ready_in(target as u32, key);
    Ok(Reply::Int(1))
}

#[derive(Clone, Copy)]
enum ExpireCond {
    Always,
    Nx,
    Gt,
    Lt,
}

fn expire_generic(
    ctx: &mut Ctx<'_>,
    argv: &[Bytes],
    unit_ms: bool,
    absolute: bool,
    name: &str,
) -> CmdResult {
    let key = &argv[1];
    let mut cond = ExpireCond::Always;
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in &argv[3..] {
        if eq_ic(opt, "nx") {
            nx = true;
        } else if eq_ic(opt, "xx") {
            xx = true;
        } else if eq_ic(opt, "gt") {
            gt = true;
        } else if eq_ic(opt, "lt") {
            lt = true;
        } else {
            return Err(CmdError::new(format!(
                "ERR Unsupported option {}",
                String::from_utf8_lossy(opt)
            )));
        }
    }
    if nx && (xx || gt || lt) {
        return Err(CmdError::err(
            "NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if gt && lt {
        return Err(CmdError::err(
            "GT and LT options at the same time are not compatible",
        ));
    }
    if nx {
        cond = ExpireCond::Nx;
    } else if gt {
        cond = ExpireCond::Gt;
    } else if lt {
        cond = ExpireCond::Lt;
    }
    let xx_also = xx;
    // The options are checked before the time, as Redis does.
    let raw = int_arg(&argv[2])?;
    let ms = if unit_ms {
        raw
    } else {
        raw.checked_mul(1000)
            .ok_or_else(|| CmdError::invalid_expire(name))?
    };
    let when = if absolute {
        ms
    } else {
        ms.checked_add(ctx.now as i64)
            .ok_or_else(|| CmdError::invalid_expire(name))?
    };
    let now = ctx.now;
    let shard = ctx.shard(key)?;
    let Some(cur) = shard.expire_of(key, now) else {
        return Ok(Reply::Int(0));
    };
    let ok = match cond {
        ExpireCond::Always => true,
        ExpireCond::Nx => cur.is_none(),
        ExpireCond::Gt => cur.is_some_and(|c| when > c as i64),
        ExpireCond::Lt => cur.is_none_or(|c| when < c as i64),
    } && (!xx_also || cur.is_some());
    if !ok {
        return Ok(Reply::Int(0));
    }
    // A negative deadline is long past (it can only be stored while an AOF
    // replays, and must then expire when the load ends, not wrap around).
    let at = when.max(0) as u64;
    if crate::storage::already_expired(at, now) {
        shard.delete(key, now);
        ctx.changed(1);
        ctx.propagate_as(vec![Bytes::from_static(b"DEL"), key.clone()]);
        ctx.notify(N::GENERIC, "del", key);
    } else {
        shard.set_expire(key, Some(at), now);
        ctx.changed(1);
        // Relative times would move on replay: propagate the deadline.
        ctx.propagate_as(vec![
            Bytes::from_static(b"PEXPIREAT"),
            key.clone(),
            Bytes::copy_from_slice(itoa::Buffer::new().format(when).as_bytes()),
        ]);
        ctx.notify(N::GENERIC, "expire", key);
    }
    Ok(Reply::Int(1))
}

/// ```text
/// EXPIRE key seconds [NX | XX | GT | LT]
/// ```
fn expire(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    expire_generic(ctx, argv, false, false, "expire")
}
fn pexpire(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    expire_generic(ctx, argv, true, false, "pexpire")
}
fn expireat(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    expire_generic(ctx, argv, false, true, "expireat")
}
fn pexpireat(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    expire_generic(ctx, argv, true, true, "pexpireat")
}

/// -2 missing, -1 no TTL, else the deadline (absolute) or remaining time.
fn ttl_generic(ctx: &mut Ctx<'_>, key: &[u8], unit_ms: bool, absolute: bool) -> CmdResult {
    let now = ctx.now;
    let r = match ctx.shard(key)?.expire_of(key, now) {
        None => -2,
        Some(None) => -1,
        Some(Some(at)) => {
            if absolute {
                if unit_ms {
                    at as i64
                } else {
                    (at / 1000) as i64
                }
            } else {
                let left = at.saturating_sub(now) as i64;
                if unit_ms {
                    left
                } else {
                    (left + 500) / 1000
                }
            }
        }
    };
    Ok(Reply::Int(r))
}

fn ttl(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    ttl_generic(ctx, &argv[1], false, false)
}
fn pttl(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    ttl_generic(ctx, &argv[1], true, false)
}
fn expiretime(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    ttl_generic(ctx, &argv[1], false, true)
}
fn pexpiretime(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    ttl_generic(ctx, &argv[1], true, true)
}

fn persist(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let now = ctx.now;
    let sh = ctx.shard(&argv[1])?;
    if let Some(Some(_)) = sh.expire_of(&argv[1], now) {
        sh.set_expire(&argv[1], None, now);
        ctx.changed(1);
        ctx.notify(N::GENERIC, "persist", &argv[1]);
        return Ok(Reply::Int(1));
    }
    Ok(Reply::Int(0))
}

/// ```text
/// KEYS pattern
/// ```
fn keys(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let pat = &argv[1];
    let all = &pat[..] == b"*";
    let now = ctx.now;
    let mut out = Bulks::uncounted(ctx.raw_resp(), Agg::Array);
    for sh in ctx.db_shards() {
        sh.for_each_key(now, |k| {
            if all || glob_match(pat, k, false) {
                out.push(k);
            }
        });
    }
    Ok(out.finish())
}

/// ```text
/// SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]
/// ```
/// The cursor is `shard << 32 | hash-prefix`: every shard's table is kept
/// sorted by hash prefix, so the cursor stays meaningful when tables grow or
/// shrink between calls, and every key present for the whole iteration is
/// returned.
fn scan(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let cursor = crate::protocol::args::parse_cursor(&argv[1])?;
    let mut pattern: Option<Bytes> = None;
    let mut count = 10usize;
    let mut type_filter: Option<Bytes> = None;
    let mut a = Args::new(argv, 2);
    while let Some(opt) = a.next_opt() {
        if eq_ic(opt, "match") && a.remaining() > 0 {
            pattern = Some(a.next_arg()?.clone());
        } else if eq_ic(opt, "count") && a.remaining() > 0 {
            let n = a.next_i64()?;
            if n < 1 {
                return Err(CmdError::SYNTAX);
            }
            count = n as usize;
        } else if eq_ic(opt, "type") && a.remaining() > 0 {
            type_filter = Some(a.next_arg()?.clone());
        } else {
            return Err(CmdError::SYNTAX);
        }
    }
    let nshards = ctx.srv.keyspace.num_shards() as u64;
    let mut shard_idx = cursor >> 32;
    let mut ord = (cursor & 0xFFFF_FFFF) as u32;
    let now = ctx.now;
    let mut keys: Vec<Reply> = Vec::new();
    let mut next_cursor = 0u64;
    let mut shards: Vec<_> = ctx.db_shards().collect();
    while shard_idx < nshards {
        let Some(sh) = shards.get_mut(shard_idx as usize) else {
            break;
        };
        let want = count.saturating_sub(keys.len()).max(1);
        let next = sh.scan(ord, want, now, |k, v| {
            if let Some(t) = &type_filter {
                if !eq_ic(t, v.type_name()) {
                    return;
                }
            }
            if let Some(p) = &pattern {
                if !glob_match(p, k, false) {
                    return;
                }
            }
            keys.push(Reply::bulk_copy(k));
        });
        match next {
            Some(o) => {
                next_cursor = (shard_idx << 32) | o as u64;
                break;
            }
            None => {
                shard_idx += 1;
                ord = 0;
                if keys.len() >= count {
                    next_cursor = if shard_idx < nshards {
                        shard_idx << 32
                    } else {
                        0
                    };
                    break;
                }
            }
        }
    }
    Ok(Reply::Array(vec![
        Reply::bulk(Bytes::from(next_cursor.to_string())),
        Reply::Array(keys),
    ]))
}

fn randomkey(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    let now = ctx.now;
    let mut shards: Vec<_> = ctx.db_shards().filter(|s| !s.is_empty()).collect();
    let mut rng = || rand::random::<u64>();
    while !shards.is_empty() {
        let i = (rng() % shards.len() as u64) as usize;
        if let Some(k) = shards[i].random_key(&mut rng, now) {
            return Ok(Reply::Bulk(k));
        }
        shards.swap_remove(i);
    }
    Ok(Reply::Null)
}

fn touch(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let now = ctx.now;
    let mut n = 0;
    for k in &argv[1..] {
        if ctx.shard(k)?.get(k, now).is_some() {
            n += 1;
        }
    }
    Ok(Reply::Int(n))
}

/// ```text
/// DUMP key
/// ```
fn dump(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let now = ctx.now;
    let compress = ctx.srv.config.rdbcompression();
    let lim = rdb::Limits::from_config(&ctx.srv.config);
    Ok(match ctx.shard(&argv[1])?.get(&argv[1], now) {
        Some(v) => Reply::bulk(Bytes::from(rdb::dump_payload_with(v, compress, &lim))),
        None => Reply::Null,
    })
}

/// ```text
/// RESTORE key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds]
///   [FREQ frequency]
/// ```
fn restore(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let key = &argv[1];
    let (mut replace, mut absttl) = (false, false);
    let (mut idle, mut freq): (Option<i64>, Option<i64>) = (None, None);
    let mut j = 4;
    while j < argv.len() {
        let more = j + 1 < argv.len();
        let a = &argv[j];
        if eq_ic(a, "replace") {
            replace = true;
        } else if eq_ic(a, "absttl") {
            absttl = true;
        } else if eq_ic(a, "idletime") && more && freq.is_none() {
            let n = int_arg(&argv[j + 1])?;
            if n < 0 {
                return Err(CmdError::err("Invalid IDLETIME value, must be >= 0"));
            }
            idle = Some(n);
            j += 1;
        } else if eq_ic(a, "freq") && more && idle.is_none() {
            let n = int_arg(&argv[j + 1])?;
            if !(0..=255).contains(&n) {
                return Err(CmdError::err("Invalid FREQ value, must be >= 0 and <= 255"));
            }
            freq = Some(n);
            j += 1;
        } else {
            return Err(CmdError::SYNTAX);
        }
        j += 1;
    }
    let now = ctx.now;
    if !replace && ctx.shard(key)?.contains(key, now) {
        return Err(CmdError::from_static(
            "BUSYKEY Target key name already exists.",
        ));
    }
    let ttl = int_arg(&argv[2])?;
    if ttl < 0 {
        return Err(CmdError::err("Invalid TTL value, must be >= 0"));
    }
    let lim = rdb::Limits::from_config(&ctx.srv.config);
    let value = match rdb::restore_payload(&argv[3], &lim) {
        Ok(v) => v,
        Err(rdb::RestoreError::VersionOrChecksum) => {
            return Err(CmdError::err("DUMP payload version or checksum are wrong"))
        }
        Err(rdb::RestoreError::BadFormat) => return Err(CmdError::err("Bad data format")),
    };
    let deleted = replace && ctx.shard(key)?.delete(key, now);
    let at = match ttl {
        0 => None,
        t if absttl => Some(t as u64),
        // Past i64 the C sum wraps negative, which Redis then finds
        // already expired: so do we.
        t => Some((now as i64).checked_add(t).map_or(0, |d| d as u64)),
    };
    if at.is_some_and(|t| crate::storage::already_expired(t, now)) {
        if deleted {
            ctx.changed(1);
            ctx.propagate_as(vec![Bytes::from_static(b"DEL"), key.clone()]);
            ctx.notify(N::GENERIC, "del", key);
        }
        return Ok(Reply::OK);
    }
    if let (Some(t), false) = (at, absttl) {
        if ctx.propagating() {
            // A relative TTL would move on replay: propagate the deadline.
            let mut v = argv.to_vec();
            v[2] = Bytes::copy_from_slice(itoa::Buffer::new().format(t).as_bytes());
            v.push(Bytes::from_static(b"ABSTTL"));
            ctx.propagate_as(v);
        }
    }
    let sh = ctx.shard(key)?;
    sh.set(key, value, at.map(Ttl::At).unwrap_or(Ttl::Clear), now);
    let lfu = crate::storage::access::lfu_mode();
    match (freq, idle) {
        (Some(f), _) if lfu => {
            sh.set_meta(
                key,
                crate::storage::access::meta_from_freq(f as u8, now),
                now,
            );
        }
        (_, Some(i)) if !lfu => {
            sh.set_meta(
                key,
                crate::storage::access::meta_from_idle(i as u64, now),
                now,
            );
        }
        _ => {}
    }
    ctx.changed(1);
    ctx.notify(N::GENERIC, "restore", key);
    ctx.signal_ready(key);
    Ok(Reply::OK)
}

fn object_encoding(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let now = ctx.now;
    Ok(match ctx.shard(&argv[2])?.peek(&argv[2], now) {
        Some(v) => Reply::bulk(Bytes::from_static(v.encoding().as_bytes())),
        None => Reply::Null,
    })
}

fn object_refcount(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let now = ctx.now;
    let unshared = unshared_integers(ctx);
    Ok(match ctx.shard(&argv[2])?.peek(&argv[2], now) {
        // Redis shares the integers 0..9999 and reports INT_MAX for them,
        // except under a maxmemory with an LRU or LFU policy, where every
        // value needs its own access data and none is shared.
        Some(crate::storage::ValueRef::Int(n)) if (0..10000).contains(&n) && !unshared => {
            Reply::Int(i32::MAX as i64)
        }
        Some(_) => Reply::Int(1),
        None => Reply::Null,
    })
}

/// Whether Redis would store integers unshared now: a `maxmemory` with an
/// LRU or LFU policy.
fn unshared_integers(ctx: &Ctx<'_>) -> bool {
    let cfg = &ctx.srv.config;
    let p = cfg.policy_of_db(ctx.client.db);
    cfg.maxmemory() > 0 && (p.is_lru() || p.is_lfu())
}

/// Whether entries currently carry LFU data (an LFU policy is in effect).
fn lfu_selected(_ctx: &Ctx<'_>) -> bool {
    crate::storage::access::lfu_mode()
}

fn object_idletime(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    if lfu_selected(ctx) {
        return Err(CmdError::err("An LRU maxmemory policy is not selected, access time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust."));
    }
    let now = ctx.now;
    Ok(match ctx.shard(&argv[2])?.lru_of(&argv[2], now) {
        Some(lru) => Reply::Int(crate::storage::access::idle_secs(lru, now) as i64),
        None => Reply::Null,
    })
}

fn object_freq(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    if !lfu_selected(ctx) {
        return Err(CmdError::err("An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust."));
    }
    let now = ctx.now;
    Ok(match ctx.shard(&argv[2])?.lru_of(&argv[2], now) {
        Some(meta) => Reply::Int(crate::storage::access::freq(meta, now) as i64),
        None => Reply::Null,
    })
}

fn object_help(_ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    Ok(help_reply(
        "OBJECT",
        &[
            "ENCODING <key>",
            "    Return the kind of internal representation used in order to store the value",
            "    associated with a <key>.",
            "FREQ <key>",
            "    Return the access frequency index of the <key>. The returned integer is",
            "    proportional to the logarithm of the recent access frequency of the key.",
            "IDLETIME <key>",
            "    Return the idle time of the <key>, that is the approximated number of",
            "    seconds elapsed since the last access to the key.",
            "REFCOUNT <key>",
            "    Return the number of references of the value associated with the specified",
            "    <key>.",
        ],
    ))
}

fn dbsize(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    let n: usize = ctx.db_shards().map(|s| s.len()).sum();
    Ok(Reply::Int(n as i64))
}

/// Whether a FLUSHDB/FLUSHALL frees in the background: ASYNC, or no mode
/// and `lazyfree-lazy-user-flush yes`.
fn flush_mode(ctx: &Ctx<'_>, argv: &[Bytes]) -> CmdResult<bool> {
    match argv.len() {
        1 => Ok(ctx.srv.config.lazyfree_lazy_user_flush()),
        2 if eq_ic(&argv[1], "async") => Ok(true),
        2 if eq_ic(&argv[1], "sync") => Ok(false),
        _ => Err(CmdError::SYNTAX),
    }
}

/// ```text
/// FLUSHDB [ASYNC | SYNC]
/// ```
fn flushdb(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let lazy = flush_mode(ctx, argv)?;
    let mut n = 0;
    for sh in ctx.db_shards() {
        n += sh.len() as u64;
        sh.flush(lazy);
    }
    ctx.changed(n.max(1));
    Ok(Reply::OK)
}

fn flushall(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let lazy = flush_mode(ctx, argv)?;
    let mut n = 0;
    for db in 0..ctx.srv.keyspace.num_dbs() as u32 {
        for sh in ctx.locks.of_db(db) {
            n += sh.len() as u64;
            sh.flush(lazy);
        }
    }
    ctx.changed(n.max(1));
    // As Redis: FLUSHALL stops a running snapshot (its file would bring the
    // data back), and with save points saves the now empty dataset at once,
    // so a restart does not resurrect what was flushed.
    let srv = ctx.srv;
    crate::persistence::snapshot::kill_child(srv, Some(crate::persistence::ChildKind::Rdb));
    if !srv.config.save_points().is_empty() {
        let empty = crate::persistence::snapshot::Frozen {
            dbs: Vec::new(),
            now: ctx.now,
        };
        let tmp = crate::persistence::snapshot::temp_rdb(std::process::id());
        match crate::persistence::snapshot::save_in_process(srv, &empty, &tmp) {
            Ok(()) => {
                // Counting this command's own changes as saved too.
                let saved = srv.stats.dirty.load(std::sync::atomic::Ordering::Relaxed) + ctx.dirty;
                srv.persist
                    .dirty_at_save
                    .store(saved, std::sync::atomic::Ordering::Relaxed);
                tracing::info!("DB saved on disk");
            }
            Err(e) => tracing::warn!("Error saving the empty dataset after FLUSHALL: {e}"),
        }
    }
    Ok(Reply::OK)
}

/// ```text
/// SWAPDB index1 index2
/// ```
fn swapdb(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    if ctx.srv.cluster.get().is_some() {
        return Err(CmdError::err("SWAPDB is not allowed in cluster mode"));
    }
    let a = c_int_arg(&argv[1], Some("invalid first DB index"))?;
    let b = c_int_arg(&argv[2], Some("invalid second DB index"))?;
    let n = ctx.srv.keyspace.num_dbs() as i64;
    if a < 0 || a >= n || b < 0 || b >= n {
        return Err(CmdError::DB_RANGE);
    }
    if a != b {
        let now = ctx.now;
        ctx.locks.swap_dbs(a as u32, b as u32, now);
        ctx.signal_blocked_keys_of_db(a as u32);
        ctx.signal_blocked_keys_of_db(b as u32);
    }
    ctx.changed(1);
    Ok(Reply::OK)
}
