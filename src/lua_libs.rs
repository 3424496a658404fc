//! The `cmsgpack` and `struct` Lua libraries Redis ships with its Lua
//! (lua_cmsgpack.c 0.4.0 and Roberto Ierusalimschy's lua_struct.c),
//! written in Rust with the same encodings, results and error texts.
//!
//! Each function is a Rust function returning `(true, results…)` or
//! `(false, message)`; a small Lua wrapper turns the second form into a
//! Lua error raised at the caller's line (as `luaL_error` does), which also
//! keeps `pcall(cmsgpack.unpack, …)` returning a plain string.

use mlua::{Lua, MultiValue, Table, Value, Variadic};

type Out = mlua::Result<MultiValue>;

fn ok(lua: &Lua, vals: Vec<Value>) -> Out {
    let mut v = Vec::with_capacity(vals.len() + 1);
    v.push(Value::Boolean(true));
    v.extend(vals);
    let _ = lua;
    Ok(MultiValue::from_iter(v))
}

fn fail(lua: &Lua, msg: String) -> Out {
    Ok(MultiValue::from_iter([
        Value::Boolean(false),
        Value::String(lua.create_string(msg)?),
    ]))
}

/// Wraps an `(ok, …)`-returning function into a C function that returns
/// the results or raises the message as a Lua string error prefixed with
/// the caller's position (`luaL_where`), exactly as the C libraries'
/// `luaL_error` does. Being a C function, it is never tail-called away, so
/// the script's own frame stays visible to Redis's error handler.
fn wrapped(lua: &Lua, f: mlua::Function) -> mlua::Result<mlua::Function> {
    use mlua::ffi;
    unsafe extern "C-unwind" fn stub(l: *mut ffi::lua_State) -> std::os::raw::c_int {
        // SAFETY: called by Lua with upvalue 1 set (see below); this frame
        // holds nothing that needs dropping, so Lua's longjmp may cross it.
        unsafe {
            let mut ar: ffi::lua_Debug = std::mem::zeroed();
            let name = if ffi::lua_getstack(l, 0, &mut ar) != 0
                && ffi::lua_getinfo(l, c"n".as_ptr(), &mut ar) != 0
                && !ar.name.is_null()
            {
                std::ffi::CStr::from_ptr(ar.name)
                    .to_string_lossy()
                    .into_owned()
            } else {
                "?".to_string()
            };
            CALL_NAME.with(|c| *c.borrow_mut() = name);
            let n = ffi::lua_gettop(l);
            ffi::lua_pushvalue(l, ffi::lua_upvalueindex(1));
            ffi::lua_insert(l, 1);
            ffi::lua_call(l, n, ffi::LUA_MULTRET);
            let nres = ffi::lua_gettop(l);
            if nres >= 1 && ffi::lua_toboolean(l, 1) != 0 {
                ffi::lua_remove(l, 1);
                return nres - 1;
            }
            if nres >= 3 && ffi::lua_toboolean(l, 3) != 0 {
                // An error Lua itself raised (no position, as in C).
                ffi::lua_pushvalue(l, 2);
                ffi::lua_error(l)
            }
            ffi::luaL_where(l, 1);
            ffi::lua_pushvalue(l, 2);
            ffi::lua_concat(l, 2);
            ffi::lua_error(l)
        }
    }
    // SAFETY: the closure is built on the stack mlua prepared (the function
    // argument on top), consuming it as the closure's upvalue.
    unsafe {
        lua.exec_raw::<mlua::Function>(f, |state| {
            ffi::lua_pushcclosure(state, stub, 1);
        })
    }
}

/// Lua's type names for "X expected, got Y" messages.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Nil => "nil",
        Value::Boolean(_) => "boolean",
        Value::Integer(_) | Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Table(_) => "table",
        Value::Function(_) => "function",
        Value::Thread(_) => "thread",
        Value::LightUserData(_) | Value::UserData(_) => "userdata",
        _ => "userdata",
    }
}

thread_local! {
    /// The name the running library function was called by (`?` when
    /// unknown, e.g. through pcall), for `luaL_argerror`-style messages.
    static CALL_NAME: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

fn bad_arg(n: usize, fname: &str, msg: &str) -> String {
    let name = CALL_NAME.with(|c| c.borrow().clone());
    let name = if name.is_empty() {
        fname.to_string()
    } else {
        name
    };
    format!("bad argument #{n} to '{name}' ({msg})")
}

/// `luaL_checknumber`: numbers and numeric strings.
fn check_number(args: &[Value], i: usize, fname: &str) -> Result<f64, String> {
    if args.len() < i {
        return Err(bad_arg(i, fname, "number expected, got no value"));
    }
    match args.get(i - 1).unwrap_or(&Value::Nil) {
        Value::Integer(n) => Ok(*n as f64),
        Value::Number(n) => Ok(*n),
        Value::String(s) => {
            let t = s.to_string_lossy();
            parse_lua_number(t.trim())
                .ok_or_else(|| bad_arg(i, fname, "number expected, got string"))
        }
        other => Err(bad_arg(
            i,
            fname,
            &format!("number expected, got {}", type_name(other)),
        )),
    }
}

fn parse_lua_number(s: &str) -> Option<f64> {
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return u64::from_str_radix(h, 16).ok().map(|v| v as f64);
    }
    s.parse::<f64>().ok()
}

/// `luaL_checklstring`: strings and numbers (converted as Lua does).
fn check_string(lua: &Lua, args: &[Value], i: usize, fname: &str) -> Result<Vec<u8>, String> {
    if args.len() < i {
        return Err(bad_arg(i, fname, "string expected, got no value"));
    }
    match args.get(i - 1).unwrap_or(&Value::Nil) {
        Value::String(s) => Ok(s.as_bytes().to_vec()),
        v @ (Value::Integer(_) | Value::Number(_)) => Ok(lua
            .coerce_string(v.clone())
            .ok()
            .flatten()
            .map(|s| s.as_bytes().to_vec())
            .unwrap_or_default()),
        other => Err(bad_arg(
            i,
            fname,
            &format!("string expected, got {}", type_name(other)),
        )),
    }
}

fn opt_integer(args: &[Value], i: usize, fname: &str, default: i64) -> Result<i64, String> {
    match args.get(i - 1) {
        None | Some(Value::Nil) => Ok(default),
        _ => check_number(args, i, fname).map(|n| n as i64),
    }
}

// ------------------------------------------------------------- cmsgpack

const MAX_NESTING: usize = 16;

fn mp_int(out: &mut Vec<u8>, n: i64) {
    if n >= 0 {
        if n <= 127 {
            out.push(n as u8);
        } else if n <= 0xff {
            out.extend_from_slice(&[0xcc, n as u8]);
        } else if n <= 0xffff {
            out.push(0xcd);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        } else if n <= 0xffff_ffff {
            out.push(0xce);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    } else if n >= -32 {
        out.push(n as i8 as u8);
    } else if n >= -128 {
        out.extend_from_slice(&[0xd0, n as i8 as u8]);
    } else if n >= -32768 {
        out.push(0xd1);
        out.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= -2_147_483_648 {
        out.push(0xd2);
        out.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn mp_number(out: &mut Vec<u8>, n: f64) {
    // IS_INT64_EQUIVALENT as x86 evaluates it.
    if n.is_finite()
        && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&n)
        && n.trunc() == n
    {
        mp_int(out, n as i64);
        return;
    }
    let f = n as f32;
    if f as f64 == n {
        out.push(0xca);
        out.extend_from_slice(&f.to_be_bytes());
    } else {
        out.push(0xcb);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn mp_bytes(out: &mut Vec<u8>, s: &[u8]) {
    let n = s.len();
    if n < 32 {
        out.push(0xa0 | n as u8);
    } else if n <= 0xff {
        out.extend_from_slice(&[0xd9, n as u8]);
    } else if n <= 0xffff {
        out.push(0xda);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
    out.extend_from_slice(s);
}

fn mp_len(out: &mut Vec<u8>, n: usize, fix: u8, b16: u8, b32: u8) {
    if n <= 15 {
        out.push(fix | n as u8);
    } else if n <= 0xffff {
        out.push(b16);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(b32);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

fn mp_encode(out: &mut Vec<u8>, v: &Value, level: usize) -> mlua::Result<()> {
    match v {
        Value::String(s) => mp_bytes(out, &s.as_bytes()),
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(n) => mp_int(out, *n),
        Value::Number(n) => mp_number(out, *n),
        Value::Table(t) if level < MAX_NESTING => {
            // An array: only keys 1..n with no hole (as table_is_an_array).
            let mut count: i64 = 0;
            let mut max: i64 = 0;
            let mut array = true;
            for pair in t.clone().pairs::<Value, Value>() {
                let (k, _) = pair?;
                let n = match k {
                    Value::Integer(i) => i as f64,
                    Value::Number(n) => n,
                    _ => {
                        array = false;
                        break;
                    }
                };
                if n <= 0.0 || !n.is_finite() || (n as i32) as f64 != n {
                    array = false;
                    break;
                }
                max = max.max(n as i64);
                count += 1;
            }
            if array && max == count {
                let len = t.raw_len();
                mp_len(out, len, 0x90, 0xdc, 0xdd);
                for i in 1..=len {
                    let x: Value = t.get(i)?;
                    mp_encode(out, &x, level + 1)?;
                }
            } else {
                // Two walks (count, then encode) so no more than one entry
                // is referenced from Rust at a time.
                let mut n = 0usize;
                for pair in t.clone().pairs::<Value, Value>() {
                    pair?;
                    n += 1;
                }
                mp_len(out, n, 0x80, 0xde, 0xdf);
                for pair in t.clone().pairs::<Value, Value>() {
                    let (k, x) = pair?;
                    mp_encode(out, &k, level + 1)?;
                    mp_encode(out, &x, level + 1)?;
                }
            }
        }
        _ => out.push(0xc0),
    }
    Ok(())
}

enum MpErr {
    Eof,
    BadFmt,
    /// Lua's own error setting a table entry (nil or NaN key).
    Index(&'static str),
}

struct Cur<'a> {
    b: &'a [u8],
    p: usize,
}

impl Cur<'_> {
    fn need(&self, n: usize) -> Result<&[u8], MpErr> {
        self.b.get(self.p..self.p + n).ok_or(MpErr::Eof)
    }
    fn left(&self) -> usize {
        self.b.len() - self.p
    }
}

fn be(b: &[u8]) -> u64 {
    b.iter().fold(0u64, |a, &x| (a << 8) | x as u64)
}

fn mp_decode(lua: &Lua, c: &mut Cur<'_>) -> Result<Value, MpErr> {
    let t = c.need(1)?[0];
    let num = |x: f64| Value::Number(x);
    let str_of = |lua: &Lua, c: &mut Cur<'_>, hdr: usize, len: usize| -> Result<Value, MpErr> {
        let s = c.need(hdr + len)?[hdr..].to_vec();
        c.p += hdr + len;
        lua.create_string(s)
            .map(Value::String)
            .map_err(|_| MpErr::BadFmt)
    };
    let v = match t {
        0xcc => {
            let b = c.need(2)?;
            let v = num(b[1] as f64);
            c.p += 2;
            v
        }
        0xd0 => {
            let b = c.need(2)?;
            let v = num(b[1] as i8 as f64);
            c.p += 2;
            v
        }
        0xcd => {
            let v = num(be(&c.need(3)?[1..]) as f64);
            c.p += 3;
            v
        }
        0xd1 => {
            let v = num(be(&c.need(3)?[1..]) as u16 as i16 as f64);
            c.p += 3;
            v
        }
        0xce => {
            let v = num(be(&c.need(5)?[1..]) as f64);
            c.p += 5;
            v
        }
        0xd2 => {
            let v = num(be(&c.need(5)?[1..]) as u32 as i32 as f64);
            c.p += 5;
            v
        }
        0xcf => {
            let v = num(be(&c.need(9)?[1..]) as f64);
            c.p += 9;
            v
        }
        0xd3 => {
            let v = num(be(&c.need(9)?[1..]) as i64 as f64);
            c.p += 9;
            v
        }
        0xc0 => {
            c.p += 1;
            Value::Nil
        }
        0xc3 => {
            c.p += 1;
            Value::Boolean(true)
        }
        0xc2 => {
            c.p += 1;
            Value::Boolean(false)
        }
        0xca => {
            let b = c.need(5)?;
            let v = num(f32::from_be_bytes([b[1], b[2], b[3], b[4]]) as f64);
            c.p += 5;
            v
        }
        0xcb => {
            let b = c.need(9)?;
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[1..9]);
            let v = num(f64::from_be_bytes(a));
            c.p += 9;
            v
        }
        0xd9 => {
            let l = c.need(2)?[1] as usize;
            str_of(lua, c, 2, l)?
        }
        0xda => {
            let l = be(&c.need(3)?[1..]) as usize;
            str_of(lua, c, 3, l)?
        }
        0xdb => {
            let l = be(&c.need(5)?[1..]) as usize;
            str_of(lua, c, 5, l)?
        }
        0xdc => {
            let l = be(&c.need(3)?[1..]) as usize;
            c.p += 3;
            mp_array(lua, c, l)?
        }
        0xdd => {
            let l = be(&c.need(5)?[1..]) as usize;
            c.p += 5;
            mp_array(lua, c, l)?
        }
        0xde => {
            let l = be(&c.need(3)?[1..]) as usize;
            c.p += 3;
            mp_map(lua, c, l)?
        }
        0xdf => {
            let l = be(&c.need(5)?[1..]) as usize;
            c.p += 5;
            mp_map(lua, c, l)?
        }
        x if x & 0x80 == 0 => {
            c.p += 1;
            num(x as f64)
        }
        x if x & 0xe0 == 0xe0 => {
            c.p += 1;
            num(x as i8 as f64)
        }
        x if x & 0xe0 == 0xa0 => str_of(lua, c, 1, (x & 0x1f) as usize)?,
        x if x & 0xf0 == 0x90 => {
            c.p += 1;
            mp_array(lua, c, (x & 0xf) as usize)?
        }
        x if x & 0xf0 == 0x80 => {
            c.p += 1;
            mp_map(lua, c, (x & 0xf) as usize)?
        }
        _ => return Err(MpErr::BadFmt),
    };
    Ok(v)
}

fn mp_array(lua: &Lua, c: &mut Cur<'_>, n: usize) -> Result<Value, MpErr> {
    let t = lua.create_table().map_err(|_| MpErr::BadFmt)?;
    for i in 1..=n {
        let v = mp_decode(lua, c)?;
        t.raw_set(i as f64, v).map_err(|_| MpErr::BadFmt)?;
    }
    Ok(Value::Table(t))
}

fn mp_map(lua: &Lua, c: &mut Cur<'_>, n: usize) -> Result<Value, MpErr> {
    let t = lua.create_table().map_err(|_| MpErr::BadFmt)?;
    for _ in 0..n {
        let k = mp_decode(lua, c)?;
        let v = mp_decode(lua, c)?;
        match k {
            Value::Nil => return Err(MpErr::Index("table index is nil")),
            Value::Number(n) if n.is_nan() => return Err(MpErr::Index("table index is NaN")),
            _ => {}
        }
        t.raw_set(k, v).map_err(|_| MpErr::BadFmt)?;
    }
    Ok(Value::Table(t))
}

/// unpack / unpack_one / unpack_limit (`limit` 0 and `offset` 0: all).
fn mp_unpack_full(lua: &Lua, fname: &str, args: &[Value], limit: i64, offset: i64) -> Out {
    let s = match check_string(lua, args, 1, fname) {
        Ok(s) => s,
        Err(e) => return fail(lua, e),
    };
    let decode_all = limit == 0 && offset == 0;
    if offset < 0 || limit < 0 {
        return fail(
            lua,
            format!(
                "Invalid request to unpack with offset of {} and limit of {}.",
                offset as i32,
                s.len() as i32
            ),
        );
    }
    if offset as u64 > s.len() as u64 {
        return fail(
            lua,
            format!(
                "Start offset {} greater than input length {}.",
                offset as i32,
                s.len() as i32
            ),
        );
    }
    let limit = if decode_all { i32::MAX as i64 } else { limit };
    let mut c = Cur {
        b: &s,
        p: offset as usize,
    };
    let mut vals = Vec::new();
    let mut cnt = 0;
    while c.left() > 0 && cnt < limit {
        match mp_decode(lua, &mut c) {
            Ok(v) => vals.push(v),
            Err(MpErr::Eof) => return fail(lua, "Missing bytes in input.".into()),
            Err(MpErr::BadFmt) => return fail(lua, "Bad data format in input.".into()),
            Err(MpErr::Index(m)) => {
                return Ok(MultiValue::from_iter([
                    Value::Boolean(false),
                    Value::String(lua.create_string(m)?),
                    Value::Boolean(true),
                ]))
            }
        }
        cnt += 1;
    }
    if !decode_all {
        let next = if c.left() == 0 { -1.0 } else { c.p as f64 };
        vals.insert(0, Value::Number(next));
    }
    ok(lua, vals)
}

fn cmsgpack_lib(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    let pack = lua.create_function(|lua, args: Variadic<Value>| {
        if args.is_empty() {
            return fail(lua, bad_arg(0, "pack", "MessagePack pack needs input."));
        }
        let mut out = Vec::new();
        for a in args.iter() {
            mp_encode(&mut out, a, 0)?;
        }
        ok(lua, vec![Value::String(lua.create_string(out)?)])
    })?;
    let unpack = lua
        .create_function(|lua, args: Variadic<Value>| mp_unpack_full(lua, "unpack", &args, 0, 0))?;
    let unpack_one = lua.create_function(|lua, args: Variadic<Value>| {
        let offset = match opt_integer(&args, 2, "unpack_one", 0) {
            Ok(o) => o,
            Err(e) => return fail(lua, e),
        };
        mp_unpack_full(lua, "unpack_one", &args, 1, offset)
    })?;
    let unpack_limit = lua.create_function(|lua, args: Variadic<Value>| {
        let limit = match check_number(&args, 2, "unpack_limit") {
            Ok(l) => l as i64,
            Err(e) => return fail(lua, e),
        };
        let offset = match opt_integer(&args, 3, "unpack_limit", 0) {
            Ok(o) => o,
            Err(e) => return fail(lua, e),
        };
        mp_unpack_full(lua, "unpack_limit", &args, limit, offset)
    })?;
    t.set("pack", wrapped(lua, pack)?)?;
    t.set("unpack", wrapped(lua, unpack)?)?;
    t.set("unpack_one", wrapped(lua, unpack_one)?)?;
    t.set("unpack_limit", wrapped(lua, unpack_limit)?)?;
    t.set("_NAME", "cmsgpack")?;
    t.set("_VERSION", "lua-cmsgpack 0.4.0")?;
    t.set("_COPYRIGHT", "Copyright (C) 2012, Salvatore Sanfilippo")?;
    t.set("_DESCRIPTION", "MessagePack C implementation for Lua")?;
    Ok(t)
}

// --------------------------------------------------------------- struct

const MAXINTSIZE: usize = 32;
const MAXALIGN: usize = 8;

#[derive(Clone, Copy)]
struct Header {
    little: bool,
    align: usize,
}

struct Fmt<'a> {
    f: &'a [u8],
    i: usize,
}

impl Fmt<'_> {
    fn next(&mut self) -> Option<u8> {
        let c = *self.f.get(self.i)?;
        self.i += 1;
        Some(c)
    }
    /// `getnum`: an optional decimal count.
    fn num(&mut self, default: usize) -> Result<usize, String> {
        if !self.f.get(self.i).is_some_and(|c| c.is_ascii_digit()) {
            return Ok(default);
        }
        let mut a: i64 = 0;
        while let Some(&c) = self.f.get(self.i).filter(|c| c.is_ascii_digit()) {
            let d = (c - b'0') as i64;
            if a > i32::MAX as i64 / 10 || a * 10 > i32::MAX as i64 - d {
                return Err("integral size overflow".into());
            }
            a = a * 10 + d;
            self.i += 1;
        }
        Ok(a as usize)
    }
}

fn optsize(opt: u8, fmt: &mut Fmt<'_>) -> Result<usize, String> {
    Ok(match opt {
        b'B' | b'b' => 1,
        b'H' | b'h' => 2,
        b'L' | b'l' | b'T' | b'd' => 8,
        b'f' => 4,
        b'x' => 1,
        b'c' => fmt.num(1)?,
        b'i' | b'I' => {
            let sz = fmt.num(4)?;
            if sz > MAXINTSIZE {
                return Err(format!(
                    "integral size {sz} is larger than limit of {MAXINTSIZE}"
                ));
            }
            sz
        }
        _ => 0,
    })
}

fn gettoalign(len: usize, h: &Header, opt: u8, size: usize) -> usize {
    if size == 0 || opt == b'c' {
        return 0;
    }
    let size = size.min(h.align);
    (size - (len & (size - 1))) & (size - 1)
}

fn controloptions(opt: u8, fmt: &mut Fmt<'_>, h: &mut Header, fname: &str) -> Result<(), String> {
    match opt {
        b' ' => {}
        b'>' => h.little = false,
        b'<' => h.little = true,
        b'!' => {
            let a = fmt.num(MAXALIGN)?;
            if a == 0 || a & (a - 1) != 0 {
                return Err(format!("alignment {a} is not a power of 2"));
            }
            h.align = a;
        }
        _ => {
            return Err(bad_arg(
                1,
                fname,
                &format!("invalid format option '{}'", opt as char),
            ))
        }
    }
    Ok(())
}

const NATIVE: Header = Header {
    little: cfg!(target_endian = "little"),
    align: 1,
};

fn struct_pack(lua: &Lua, args: &[Value]) -> Result<Vec<u8>, String> {
    let f = check_string(lua, args, 1, "pack")?;
    // lua_struct pushes a nil marker after the arguments: one missing
    // argument reads as nil, not as "no value".
    let mut with_mark = args.to_vec();
    with_mark.push(Value::Nil);
    let args = &with_mark[..];
    let mut fmt = Fmt { f: &f, i: 0 };
    let mut h = NATIVE;
    let mut arg = 2;
    let mut out: Vec<u8> = Vec::new();
    let _ = lua;
    while let Some(opt) = fmt.next() {
        if opt == 0 {
            break;
        }
        let mut size = optsize(opt, &mut fmt)?;
        let toalign = gettoalign(out.len(), &h, opt, size);
        out.resize(out.len() + toalign, 0);
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let n = check_number(args, arg, "pack")?;
                arg += 1;
                let mut value: u64 = if n < 0.0 {
                    (if n >= -9.223_372_036_854_776e18 {
                        n as i64
                    } else {
                        i64::MIN
                    }) as u64
                } else {
                    n as u64
                };
                let mut buf = vec![0u8; size];
                for k in 0..size {
                    let idx = if h.little { k } else { size - 1 - k };
                    buf[idx] = (value & 0xff) as u8;
                    value >>= 8;
                }
                out.extend_from_slice(&buf);
            }
            b'x' => out.push(0),
            b'f' => {
                let n = check_number(args, arg, "pack")? as f32;
                arg += 1;
                out.extend_from_slice(&if h.little {
                    n.to_le_bytes()
                } else {
                    n.to_be_bytes()
                });
            }
            b'd' => {
                let n = check_number(args, arg, "pack")?;
                arg += 1;
                out.extend_from_slice(&if h.little {
                    n.to_le_bytes()
                } else {
                    n.to_be_bytes()
                });
            }
            b'c' | b's' => {
                let s = check_string(lua, args, arg, "pack")?;
                arg += 1;
                if size == 0 {
                    size = s.len();
                }
                if s.len() < size {
                    return Err(bad_arg(arg, "pack", "string too short"));
                }
                out.extend_from_slice(&s[..size]);
                if opt == b's' {
                    out.push(0);
                }
            }
            _ => controloptions(opt, &mut fmt, &mut h, "pack")?,
        }
    }
    Ok(out)
}

fn struct_unpack(lua: &Lua, args: &[Value]) -> Result<Vec<Value>, String> {
    let f = check_string(lua, args, 1, "unpack")?;
    let data = check_string(lua, args, 2, "unpack")?;
    let ld = data.len();
    let pos = opt_integer(args, 3, "unpack", 1)?;
    if pos <= 0 {
        return Err(bad_arg(3, "unpack", "offset must be 1 or greater"));
    }
    let mut pos = (pos - 1) as usize;
    let mut fmt = Fmt { f: &f, i: 0 };
    let mut h = NATIVE;
    let mut out: Vec<Value> = Vec::new();
    let lerr = |_| "not enough memory".to_string();
    while let Some(opt) = fmt.next() {
        if opt == 0 {
            break;
        }
        let mut size = optsize(opt, &mut fmt)?;
        pos += gettoalign(pos, &h, opt, size);
        if !(size <= ld && pos <= ld - size) {
            return Err(bad_arg(2, "unpack", "data string too short"));
        }
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let bytes = &data[pos..pos + size];
                let mut l: u64 = 0;
                if h.little {
                    for &b in bytes.iter().rev() {
                        l = (l << 8) | b as u64;
                    }
                } else {
                    for &b in bytes {
                        l = (l << 8) | b as u64;
                    }
                }
                let v = if opt.is_ascii_lowercase() {
                    let shift = ((size * 8).wrapping_sub(1)) & 63;
                    let mask = (!0u64) << shift;
                    if l & mask != 0 {
                        l |= mask;
                    }
                    l as i64 as f64
                } else {
                    l as f64
                };
                out.push(Value::Number(v));
            }
            b'x' => {}
            b'f' => {
                let mut a = [0u8; 4];
                a.copy_from_slice(&data[pos..pos + 4]);
                let v = if h.little {
                    f32::from_le_bytes(a)
                } else {
                    f32::from_be_bytes(a)
                };
                out.push(Value::Number(v as f64));
            }
            b'd' => {
                let mut a = [0u8; 8];
                a.copy_from_slice(&data[pos..pos + 8]);
                let v = if h.little {
                    f64::from_le_bytes(a)
                } else {
                    f64::from_be_bytes(a)
                };
                out.push(Value::Number(v));
            }
            b'c' => {
                if size == 0 {
                    let prev = match out.last() {
                        Some(Value::Number(n)) => Some(*n),
                        Some(Value::Integer(n)) => Some(*n as f64),
                        Some(Value::String(s)) => parse_lua_number(s.to_string_lossy().trim()),
                        _ => None,
                    };
                    let Some(n) = prev else {
                        return Err("format 'c0' needs a previous size".into());
                    };
                    size = n as usize;
                    out.pop();
                    if !(size <= ld && pos <= ld - size) {
                        return Err(bad_arg(2, "unpack", "data string too short"));
                    }
                }
                out.push(Value::String(
                    lua.create_string(&data[pos..pos + size]).map_err(lerr)?,
                ));
            }
            b's' => {
                let Some(e) = data[pos..].iter().position(|&b| b == 0) else {
                    return Err("unfinished string in data".into());
                };
                size = e + 1;
                out.push(Value::String(
                    lua.create_string(&data[pos..pos + e]).map_err(lerr)?,
                ));
            }
            _ => controloptions(opt, &mut fmt, &mut h, "unpack")?,
        }
        pos += size;
    }
    out.push(Value::Number((pos + 1) as f64));
    Ok(out)
}

fn struct_size(lua: &Lua, args: &[Value]) -> Result<usize, String> {
    let f = check_string(lua, args, 1, "size")?;
    let mut fmt = Fmt { f: &f, i: 0 };
    let mut h = NATIVE;
    let mut pos = 0usize;
    while let Some(opt) = fmt.next() {
        if opt == 0 {
            break;
        }
        let size = optsize(opt, &mut fmt)?;
        pos += gettoalign(pos, &h, opt, size);
        if opt == b's' {
            return Err(bad_arg(1, "size", "option 's' has no fixed size"));
        } else if opt == b'c' && size == 0 {
            return Err(bad_arg(1, "size", "option 'c0' has no fixed size"));
        }
        if !opt.is_ascii_alphanumeric() {
            controloptions(opt, &mut fmt, &mut h, "size")?;
        }
        pos += size;
    }
    Ok(pos)
}

fn struct_lib(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    let pack = lua.create_function(|lua, args: Variadic<Value>| match struct_pack(lua, &args) {
        Ok(b) => ok(lua, vec![Value::String(lua.create_string(b)?)]),
        Err(e) => fail(lua, e),
    })?;
    let unpack =
        lua.create_function(
            |lua, args: Variadic<Value>| match struct_unpack(lua, &args) {
                Ok(v) => ok(lua, v),
                Err(e) => fail(lua, e),
            },
        )?;
    let size = lua.create_function(|lua, args: Variadic<Value>| match struct_size(lua, &args) {
        Ok(n) => ok(lua, vec![Value::Number(n as f64)]),
        Err(e) => fail(lua, e),
    })?;
    t.set("pack", wrapped(lua, pack)?)?;
    t.set("unpack", wrapped(lua, unpack)?)?;
    t.set("size", wrapped(lua, size)?)?;
    Ok(t)
}

/// Installs `cmsgpack` and `struct` as globals of `lua`.
pub fn install(lua: &Lua) -> mlua::Result<()> {
    let g = lua.globals();
    g.set("cmsgpack", cmsgpack_lib(lua)?)?;
    g.set("struct", struct_lib(lua)?)?;
    Ok(())
}
