//! Geospatial commands: GEOADD GEODIST GEOHASH GEOPOS GEOSEARCH
//! GEOSEARCHSTORE GEORADIUS GEORADIUSBYMEMBER GEORADIUS_RO
//! GEORADIUSBYMEMBER_RO.
//!
//! Points live in ordinary sorted sets whose scores are Redis's 52-bit
//! interleaved geohashes (see [`crate::util::geohash`]), so a geo key is
//! interchangeable with redis-server's: ZSCORE, ZRANGE and DUMP-style
//! comparisons see the same numbers. Searches scan the same nine cells in
//! the same order as Redis, so unsorted results come back in the same order
//! and sorted ones break ties the same way (stable sort, like glibc's
//! merge-sort `qsort`).

use bytes::Bytes;

use crate::commands::ctx::Ctx;
use crate::commands::spec::{cmd, Acl, CmdFlags as F, CommandSpec};
use crate::config::notify;
use crate::protocol::args::eq_ic;
use crate::protocol::codec::parse_i64;
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::storage::zset::{ZLimits, ZSet};
use crate::storage::{Obj, Shard, Ttl, Value, ValueRef};
use crate::util::float::parse_f64;
use crate::util::geohash::{self, Search, Shape};

const G: Acl = Acl::GEO;
const W: F = F::WRITE.union(F::DENYOOM);
const R: F = F::READONLY;

/// The geo family's rows of the command table (Redis 7.0's arity, flags,
/// keys and ACL categories). GEORADIUS and GEORADIUSBYMEMBER find their
/// STORE/STOREDIST destination among the options, so their keys are
/// movable and the destination's shard is locked with the source's.
pub const SPECS: &[CommandSpec] = &[
    cmd("geoadd", -5, W, geoadd).keys(1, 1, 1).acl(G).doc("geo", "3.2.0", "Add one or more geospatial items in the geospatial index represented using a sorted set"),
    cmd("geodist", -4, R, geodist).keys(1, 1, 1).acl(G).doc("geo", "3.2.0", "Returns the distance between two members of a geospatial index"),
    cmd("geohash", -2, R, geohash_cmd).keys(1, 1, 1).acl(G).doc("geo", "3.2.0", "Returns members of a geospatial index as standard geohash strings"),
    cmd("geopos", -2, R, geopos).keys(1, 1, 1).acl(G).doc("geo", "3.2.0", "Returns longitude and latitude of members of a geospatial index"),
    cmd("georadius", -6, W, georadius).find_keys(georadius_keys).movable_range(1, 1, 1).acl(G).doc("geo", "3.2.0", "Query a sorted set representing a geospatial index to fetch members matching a given maximum distance from a point"),
    cmd("georadius_ro", -6, R, georadius_ro).keys(1, 1, 1).acl(G).doc("geo", "3.2.10", "A read-only variant for GEORADIUS"),
    cmd("georadiusbymember", -5, W, georadiusbymember).find_keys(georadius_keys).movable_range(1, 1, 1).acl(G).doc("geo", "3.2.0", "Query a sorted set representing a geospatial index to fetch members matching a given maximum distance from a member"),
    cmd("georadiusbymember_ro", -5, R, georadiusbymember_ro).keys(1, 1, 1).acl(G).doc("geo", "3.2.10", "A read-only variant for GEORADIUSBYMEMBER"),
    cmd("geosearch", -7, R, geosearch).keys(1, 1, 1).acl(G).doc("geo", "6.2.0", "Query a sorted set representing a geospatial index to fetch members inside an area of a box or a circle."),
    cmd("geosearchstore", -8, W, geosearchstore).keys(1, 2, 1).acl(G).doc("geo", "6.2.0", "Query a sorted set representing a geospatial index to fetch members inside an area of a box or a circle, and store the result in another key."),
];

/// GEORADIUS[BYMEMBER] keys: the source, plus the last STORE/STOREDIST
/// argument found from position 5 on (Redis's `georadiusGetKeys`).
fn georadius_keys(argv: &[Bytes]) -> Vec<usize> {
    let mut stored = None;
    let mut i = 5;
    while i < argv.len() {
        if (eq_ic(&argv[i], "store") || eq_ic(&argv[i], "storedist")) && i + 1 < argv.len() {
            stored = Some(i + 1);
            i += 1;
        }
        i += 1;
    }
    let mut v = vec![1];
    v.extend(stored);
    v
}

// ---- helpers ------------------------------------------------------------

/// The sorted set at `key` for reading (hit/miss counted, as Redis's
/// `lookupKeyRead`); WRONGTYPE for other types.
fn read<'s>(sh: &'s mut Shard, key: &[u8], now: u64) -> CmdResult<Option<&'s ZSet>> {
    match sh.get(key, now) {
        None => Ok(None),
        Some(ValueRef::Obj(Obj::ZSet(z))) => Ok(Some(z)),
        Some(_) => Err(CmdError::WRONG_TYPE),
    }
}

/// `getDoubleFromObjectOrReply` with an optional custom message.
fn double_arg(a: &[u8], msg: Option<&str>) -> CmdResult<f64> {
    parse_f64(a).ok_or_else(|| match msg {
        Some(m) => CmdError::err(m),
        None => CmdError::NOT_FLOAT,
    })
}

/// Parses and validates a `longitude latitude` pair.
fn lon_lat(lon: &[u8], lat: &[u8]) -> CmdResult<[f64; 2]> {
    let x = double_arg(lon, None)?;
    let y = double_arg(lat, None)?;
    if !(geohash::LONG_MIN..=geohash::LONG_MAX).contains(&x)
        || !(geohash::LAT_MIN..=geohash::LAT_MAX).contains(&y)
    {
        return Err(CmdError::err(format!(
            "invalid longitude,latitude pair {x:.6},{y:.6}"
        )));
    }
    Ok([x, y])
}

/// Metres per unit (`m`, `km`, `ft`, `mi`).
fn unit(u: &[u8]) -> CmdResult<f64> {
    if eq_ic(u, "m") {
        Ok(1.0)
    } else if eq_ic(u, "km") {
        Ok(1000.0)
    } else if eq_ic(u, "ft") {
        Ok(0.3048)
    } else if eq_ic(u, "mi") {
        Ok(1609.34)
    } else {
        Err(CmdError::err(
            "unsupported unit provided. please use M, KM, FT, MI",
        ))
    }
}

/// `radius unit` → (radius, metres per unit).
fn radius_arg(r: &[u8], u: &[u8]) -> CmdResult<(f64, f64)> {
    let d = double_arg(r, Some("need numeric radius"))?;
    if d < 0.0 {
        return Err(CmdError::err("radius cannot be negative"));
    }
    Ok((d, unit(u)?))
}

/// `width height unit` → (width, height, metres per unit).
fn box_arg(w: &[u8], h: &[u8], u: &[u8]) -> CmdResult<(f64, f64, f64)> {
    let w = double_arg(w, Some("need numeric width"))?;
    let h = double_arg(h, Some("need numeric height"))?;
    if h < 0.0 || w < 0.0 {
        return Err(CmdError::err("height or width cannot be negative"));
    }
    Ok((w, h, unit(u)?))
}

/// The position of `member` in `z`, if present and decodable.
fn member_pos(z: &ZSet, member: &[u8]) -> Option<[f64; 2]> {
    geohash::decode_score(z.score(member)?)
}

/// A distance as Redis prints it: fixed point with 4 decimals, computed by
/// rounding `d × 10⁴` to the nearest integer (ties to even, as `llrint`).
pub fn format_distance(d: f64) -> String {
    let v = (d * 10000.0).round_ties_even();
    let v = if v.is_finite() { v as i64 } else { i64::MIN };
    let neg = v < 0;
    let a = v.unsigned_abs();
    format!(
        "{}{}.{:04}",
        if neg { "-" } else { "" },
        a / 10000,
        a % 10000
    )
}

fn distance_reply(d: f64) -> Reply {
    Reply::Bulk(Bytes::from(format_distance(d)))
}

/// `%.17Lf` without trailing zeros (Redis's "human" long double format),
/// for a double widened to long double: the exact decimal value rounded to
/// 17 places.
pub fn format_human_ld(d: f64) -> String {
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let mut s = format!("{d:.17}");
    if s.contains('.') {
        while s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
    }
    if s == "-0" {
        s = "0".into();
    }
    s
}

/// A coordinate as `addReplyHumanLongDouble` sends it: a bulk string in
/// RESP2, a double in RESP3.
fn coord_reply(d: f64, resp3: bool) -> Reply {
    let s = format_human_ld(d);
    if resp3 {
        Reply::Raw(Bytes::from(format!(",{s}\r\n")))
    } else {
        Reply::Bulk(Bytes::from(s))
    }
}

fn zlimits(ctx: &Ctx<'_>) -> ZLimits {
    ZLimits {
        entries: ctx.srv.config.zset_max_listpack_entries(),
        value: ctx.srv.config.zset_max_listpack_value(),
    }
}

// ---- GEOADD -------------------------------------------------------------

/// ```text
/// GEOADD key [NX | XX] [CH] longitude latitude member [longitude latitude member ...]
/// ```
///
/// Validates every point, turns it into its 52-bit score and hands the
/// rewritten argument vector to ZADD's handler, exactly as Redis delegates
/// to `zaddCommand` (same reply, same NX/XX/CH semantics, same wake-ups).
fn geoadd(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let (mut nx, mut xx) = (false, false);
    let mut idx = 2;
    while idx < argv.len() {
        let o = &argv[idx];
        if eq_ic(o, "nx") {
            nx = true;
        } else if eq_ic(o, "xx") {
            xx = true;
        } else if !eq_ic(o, "ch") {
            break;
        }
        idx += 1;
    }
    let rest = &argv[idx..];
    if !rest.len().is_multiple_of(3) || (xx && nx) {
        return Err(CmdError::SYNTAX);
    }
    let mut zargv: Vec<Bytes> = Vec::with_capacity(idx + rest.len() / 3 * 2);
    zargv.push(Bytes::from_static(b"zadd"));
    zargv.extend(argv[1..idx].iter().cloned());
    for t in rest.chunks(3) {
        let [x, y] = lon_lat(&t[0], &t[1])?;
        let score = geohash::score_of(x, y).ok_or(CmdError::INTERNAL)?;
        zargv.push(Bytes::from(score.to_string()));
        zargv.push(t[2].clone());
    }
    let zadd = crate::commands::zsets::SPECS
        .iter()
        .find(|s| s.name == "zadd")
        .ok_or(CmdError::INTERNAL)?;
    (zadd.handler)(ctx, &zargv)
}

// ---- GEOHASH / GEOPOS / GEODIST ----------------------------------------

/// ```text
/// GEOHASH key [member [member ...]]
/// ```
fn geohash_cmd(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let now = ctx.now;
    let sh = ctx.shard(&argv[1])?;
    let z = read(sh, &argv[1], now)?;
    let out = argv[2..]
        .iter()
        .map(|m| {
            z.and_then(|z| z.score(m))
                .and_then(geohash::geohash_string)
                .map_or(Reply::Null, |s| Reply::bulk_copy(&s))
        })
        .collect();
    Ok(Reply::Array(out))
}

/// ```text
/// GEOPOS key [member [member ...]]
/// ```
fn geopos(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let now = ctx.now;
    let resp3 = ctx.client.resp >= 3;
    let sh = ctx.shard(&argv[1])?;
    let z = read(sh, &argv[1], now)?;
    let out = argv[2..]
        .iter()
        .map(|m| match z.and_then(|z| member_pos(z, m)) {
            None => Reply::NullArray,
            Some([x, y]) => Reply::Array(vec![coord_reply(x, resp3), coord_reply(y, resp3)]),
        })
        .collect();
    Ok(Reply::Array(out))
}

/// ```text
/// GEODIST key member1 member2 [M | KM | FT | MI]
/// ```
fn geodist(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let to_meter = match argv.len() {
        5 => unit(&argv[4])?,
        n if n > 5 => return Err(CmdError::SYNTAX),
        _ => 1.0,
    };
    let now = ctx.now;
    let sh = ctx.shard(&argv[1])?;
    let Some(z) = read(sh, &argv[1], now)? else {
        return Ok(Reply::Null);
    };
    let (Some(s1), Some(s2)) = (z.score(&argv[2]), z.score(&argv[3])) else {
        return Ok(Reply::Null);
    };
    match (geohash::decode_score(s1), geohash::decode_score(s2)) {
        (Some([x1, y1]), Some([x2, y2])) => {
            Ok(distance_reply(geohash::distance(x1, y1, x2, y2) / to_meter))
        }
        _ => Ok(Reply::Null),
    }
}

// ---- searches -----------------------------------------------------------

/// Search around the coordinates given after the key (GEORADIUS*).
const COORDS: u8 = 1;
/// Search around a member given after the key (GEORADIUSBYMEMBER*).
const MEMBER: u8 = 2;
/// STORE / STOREDIST refused (the `_RO` variants).
const NOSTORE: u8 = 4;
/// GEOSEARCH syntax (FROM… / BY… options).
const SEARCH: u8 = 8;
/// GEOSEARCHSTORE (destination first, STOREDIST flag).
const SEARCHSTORE: u8 = 16;

/// One match.
struct Point {
    member: Bytes,
    score: f64,
    lon: f64,
    lat: f64,
    /// Metres until the reply converts it to the request's unit.
    dist: f64,
}

#[derive(Clone, Copy, PartialEq)]
enum Order {
    None,
    Asc,
    Desc,
}

/// Collects the members of `z` inside `search`, scanning the cells Redis
/// scans in its order; stops early once `limit` (COUNT … ANY) are found.
fn points_in(z: &ZSet, search: &Search, limit: usize) -> Vec<Point> {
    let areas = search.areas();
    let cells = areas.cells();
    let mut out: Vec<Point> = Vec::new();
    let mut last_processed = 0usize;
    for (i, cell) in cells.iter().enumerate() {
        if cell.is_zero() {
            continue;
        }
        // Huge radii make adjacent neighbours coincide: skip a cell equal
        // to the one processed just before (never compared with the
        // centre, as in Redis).
        if last_processed != 0 && *cell == cells[last_processed] {
            continue;
        }
        if !out.is_empty() && limit != 0 && out.len() >= limit {
            break;
        }
        let (min, max) = geohash::score_range_of_box(*cell);
        let (min, max) = (min as f64, max as f64);
        let start = z.count_prefix_score(|s| s < min);
        let end = z.count_prefix_score(|s| s < max);
        if end > start {
            for (member, score) in z.range(start, end) {
                if let Some([lon, lat]) = geohash::decode_score(score) {
                    if let Some(dist) = search.distance_if_within(lon, lat) {
                        out.push(Point {
                            member,
                            score,
                            lon,
                            lat,
                            dist,
                        });
                    }
                }
                if !out.is_empty() && limit != 0 && out.len() >= limit {
                    break;
                }
            }
        }
        last_processed = i;
    }
    out
}

fn georadius(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    search_generic(ctx, argv, 1, COORDS)
}

fn georadiusbymember(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    search_generic(ctx, argv, 1, MEMBER)
}

fn georadius_ro(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    search_generic(ctx, argv, 1, COORDS | NOSTORE)
}

fn georadiusbymember_ro(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    search_generic(ctx, argv, 1, MEMBER | NOSTORE)
}

fn geosearch(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    search_generic(ctx, argv, 1, SEARCH)
}

fn geosearchstore(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    search_generic(ctx, argv, 2, SEARCH | SEARCHSTORE)
}

/// What a search asked for, once parsed.
struct Request {
    store: Option<Bytes>,
    storedist: bool,
    withdist: bool,
    withhash: bool,
    withcoord: bool,
    order: Order,
    count: usize,
    any: bool,
}

/// ```text
/// GEORADIUS key longitude latitude radius unit [WITHCOORD] [WITHDIST] [WITHHASH]
///     [COUNT count [ANY]] [ASC | DESC] [STORE key | STOREDIST key]
/// GEORADIUSBYMEMBER key member radius unit …same options…
/// GEOSEARCH key FROMMEMBER member | FROMLONLAT longitude latitude
///     BYRADIUS radius unit | BYBOX width height unit
///     [ASC | DESC] [COUNT count [ANY]] [WITHCOORD] [WITHDIST] [WITHHASH]
/// GEOSEARCHSTORE destination source …GEOSEARCH's FROM/BY/ASC/COUNT… [STOREDIST]
/// ```
///
/// Arguments are checked in Redis's order (the source's type first, then
/// the centre and shape, then the options), so the first error reported is
/// the same.
fn search_generic(ctx: &mut Ctx<'_>, argv: &[Bytes], src: usize, flags: u8) -> CmdResult {
    let now = ctx.now;
    let resp3 = ctx.client.resp >= 3;
    let sh = ctx.shard(&argv[src])?;
    let z = read(sh, &argv[src], now)?;

    let mut xy = [0.0f64; 2];
    let mut shape = Shape::Circle { radius: 0.0 };
    let mut conversion = 1.0;
    let base: usize;
    let mut req = Request {
        store: None,
        storedist: false,
        withdist: false,
        withhash: false,
        withcoord: false,
        order: Order::None,
        count: 0,
        any: false,
    };
    if flags & COORDS != 0 {
        base = 6;
        xy = lon_lat(&argv[2], &argv[3])?;
        let (r, c) = radius_arg(&argv[4], &argv[5])?;
        shape = Shape::Circle { radius: r };
        conversion = c;
    } else if flags & MEMBER != 0 {
        base = 5;
        if let Some(z) = z {
            xy = member_pos(z, &argv[2])
                .ok_or_else(|| CmdError::err("could not decode requested zset member"))?;
            let (r, c) = radius_arg(&argv[3], &argv[4])?;
            shape = Shape::Circle { radius: r };
            conversion = c;
        }
    } else {
        base = if flags & SEARCHSTORE != 0 { 3 } else { 2 };
        if flags & SEARCHSTORE != 0 {
            req.store = Some(argv[1].clone());
        }
    }

    let (mut frommember, mut fromloc, mut byradius, mut bybox) = (false, false, false, false);
    let search_cmd = flags & SEARCH != 0;
    let mut i = base;
    while i < argv.len() {
        let arg = &argv[i];
        let left = argv.len() - i - 1;
        if eq_ic(arg, "withdist") {
            req.withdist = true;
        } else if eq_ic(arg, "withhash") {
            req.withhash = true;
        } else if eq_ic(arg, "withcoord") {
            req.withcoord = true;
        } else if eq_ic(arg, "any") {
            req.any = true;
        } else if eq_ic(arg, "asc") {
            req.order = Order::Asc;
        } else if eq_ic(arg, "desc") {
            req.order = Order::Desc;
        } else if eq_ic(arg, "count") && left >= 1 {
            let n = parse_i64(&argv[i + 1]).ok_or(CmdError::NOT_INTEGER)?;
            if n <= 0 {
                return Err(CmdError::err("COUNT must be > 0"));
            }
            req.count = usize::try_from(n).unwrap_or(usize::MAX);
            i += 1;
        } else if (eq_ic(arg, "store") || eq_ic(arg, "storedist"))
            && left >= 1
            && flags & NOSTORE == 0
            && !search_cmd
        {
            req.store = Some(argv[i + 1].clone());
            req.storedist = eq_ic(arg, "storedist");
            i += 1;
        } else if eq_ic(arg, "storedist") && search_cmd && flags & SEARCHSTORE != 0 {
            req.storedist = true;
        } else if eq_ic(arg, "frommember") && left >= 1 && search_cmd && !fromloc {
            if let Some(z) = z {
                xy = member_pos(z, &argv[i + 1])
                    .ok_or_else(|| CmdError::err("could not decode requested zset member"))?;
            }
            frommember = true;
            i += 1;
        } else if eq_ic(arg, "fromlonlat") && left >= 2 && search_cmd && !frommember {
            xy = lon_lat(&argv[i + 1], &argv[i + 2])?;
            fromloc = true;
            i += 2;
        } else if eq_ic(arg, "byradius") && left >= 2 && search_cmd && !bybox {
            let (r, c) = radius_arg(&argv[i + 1], &argv[i + 2])?;
            shape = Shape::Circle { radius: r };
            conversion = c;
            byradius = true;
            i += 2;
        } else if eq_ic(arg, "bybox") && left >= 3 && search_cmd && !byradius {
            let (w, h, c) = box_arg(&argv[i + 1], &argv[i + 2], &argv[i + 3])?;
            shape = Shape::Box {
                width: w,
                height: h,
            };
            conversion = c;
            bybox = true;
            i += 3;
        } else {
            return Err(CmdError::SYNTAX);
        }
        i += 1;
    }

    if req.store.is_some() && (req.withdist || req.withhash || req.withcoord) {
        return Err(CmdError::err(format!(
            "{} is not compatible with WITHDIST, WITHHASH and WITHCOORD options",
            if flags & SEARCHSTORE != 0 {
                "GEOSEARCHSTORE"
            } else {
                "STORE option in GEORADIUS"
            }
        )));
    }
    let name = String::from_utf8_lossy(&argv[0]);
    if search_cmd && !(frommember || fromloc) {
        return Err(CmdError::err(format!(
            "exactly one of FROMMEMBER or FROMLONLAT can be specified for {name}"
        )));
    }
    if search_cmd && !(byradius || bybox) {
        return Err(CmdError::err(format!(
            "exactly one of BYRADIUS and BYBOX can be specified for {name}"
        )));
    }
    if req.any && req.count == 0 {
        return Err(CmdError::err("the ANY argument requires COUNT argument"));
    }

    let Some(z) = z else {
        return match req.store {
            Some(dst) => {
                let sh = ctx.shard(&dst)?;
                if sh.delete(&dst, now) {
                    ctx.changed(1);
                    ctx.notify(notify::GENERIC, "del", &dst);
                }
                Ok(Reply::Int(0))
            }
            None => Ok(Reply::Array(Vec::new())),
        };
    };

    if req.count != 0 && req.order == Order::None && !req.any {
        req.order = Order::Asc;
    }
    let search = Search {
        xy,
        conversion,
        shape,
    };
    let mut points = points_in(z, &search, if req.any { req.count } else { 0 });
    if points.is_empty() && req.store.is_none() {
        return Ok(Reply::Array(Vec::new()));
    }
    let returned = if req.count == 0 {
        points.len()
    } else {
        points.len().min(req.count)
    };
    match req.order {
        Order::None => {}
        Order::Asc => points.sort_by(|a, b| a.dist.total_cmp(&b.dist)),
        Order::Desc => points.sort_by(|a, b| b.dist.total_cmp(&a.dist)),
    }
    points.truncate(returned);

    let Some(dst) = req.store else {
        let opts = req.withdist as usize + req.withhash as usize + req.withcoord as usize;
        let out = points
            .into_iter()
            .map(|p| {
                let member = Reply::Bulk(p.member);
                if opts == 0 {
                    return member;
                }
                let mut v = Vec::with_capacity(opts + 1);
                v.push(member);
                if req.withdist {
                    v.push(distance_reply(p.dist / conversion));
                }
                if req.withhash {
                    v.push(Reply::Int(p.score as i64));
                }
                if req.withcoord {
                    v.push(Reply::Array(vec![
                        coord_reply(p.lon, resp3),
                        coord_reply(p.lat, resp3),
                    ]));
                }
                Reply::Array(v)
            })
            .collect();
        return Ok(Reply::Array(out));
    };

    let lim = zlimits(ctx);
    let n = points.len();
    let sh = ctx.shard(&dst)?;
    if n > 0 {
        let mut out = ZSet::new();
        for p in &points {
            let score = if req.storedist {
                p.dist / conversion
            } else {
                p.score
            };
            out.insert(&p.member, score, lim);
        }
        out.shrink_if_fits(lim);
        sh.set(&dst, Value::Obj(Obj::ZSet(out)), Ttl::Clear, now);
        ctx.changed(n as u64);
        ctx.notify(
            notify::ZSET,
            if search_cmd {
                "geosearchstore"
            } else {
                "georadiusstore"
            },
            &dst,
        );
        ctx.signal_ready(&dst);
    } else if sh.delete(&dst, now) {
        ctx.changed(1);
        ctx.notify(notify::GENERIC, "del", &dst);
    }
    Ok(Reply::Int(n as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_and_coordinate_formats() {
        assert_eq!(format_distance(166274.15156960033), "166274.1516");
        assert_eq!(format_distance(0.0), "0.0000");
        assert_eq!(format_distance(0.00004), "0.0000");
        assert_eq!(format_distance(0.5), "0.5000");
        assert_eq!(format_human_ld(13.361389338970184), "13.36138933897018433");
        assert_eq!(format_human_ld(1.5), "1.5");
        assert_eq!(format_human_ld(-0.0), "0");
    }

    #[test]
    fn georadius_store_keys() {
        let a = |s: &str| {
            s.split(' ')
                .map(|x| Bytes::copy_from_slice(x.as_bytes()))
                .collect::<Vec<_>>()
        };
        assert_eq!(georadius_keys(&a("georadius k 1 2 3 km")), vec![1]);
        assert_eq!(
            georadius_keys(&a("georadius k 1 2 3 km store d")),
            vec![1, 7]
        );
        assert_eq!(
            georadius_keys(&a("georadius k 1 2 3 km store d storedist e")),
            vec![1, 9]
        );
    }
}
