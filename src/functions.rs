//! Redis 7.0 functions: the library registry behind FUNCTION LOAD / DELETE
//! / FLUSH / LIST / DUMP / RESTORE and FCALL.
//!
//! The registry holds each library's source and what it registered (names,
//! descriptions, flags); it is shared by all threads. The Lua closures live
//! in the script thread's interpreter, which re-runs the libraries' code
//! whenever [`FunctionRegistry::generation`] moves (see
//! `scripting::fcall`). FUNCTION LOAD validates a library by running it in
//! a fresh interpreter first, so a library in the registry always loads.
//!
//! FUNCTION DUMP payloads use Redis's format (one `RDB_OPCODE_FUNCTION2`
//! record per library holding its code as an RDB string, then the RDB
//! version and a CRC64 footer) so they move between Cinnabar and
//! redis-server in both directions. The few RDB primitives needed are here
//! on purpose: the function registry must not depend on the RDB codec.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

/// Script flags (`flags = {...}` in `redis.register_function`), in the
/// order Redis lists them.
pub const FLAG_NAMES: &[(u32, &str)] = &[
    (NO_WRITES, "no-writes"),
    (ALLOW_OOM, "allow-oom"),
    (ALLOW_STALE, "allow-stale"),
    (NO_CLUSTER, "no-cluster"),
    (ALLOW_CROSS_SLOT, "allow-cross-slot-keys"),
];
pub const NO_WRITES: u32 = 1;
pub const ALLOW_OOM: u32 = 2;
pub const ALLOW_STALE: u32 = 4;
pub const NO_CLUSTER: u32 = 8;
pub const ALLOW_CROSS_SLOT: u32 = 16;
/// An EVAL script without a shebang line: Redis 6 semantics (the flags
/// above do not apply, writes are checked command by command).
pub const EVAL_COMPAT: u32 = 1 << 16;

/// One registered function.
#[derive(Clone, Debug)]
pub struct FunctionInfo {
    pub name: String,
    pub desc: Option<Bytes>,
    pub flags: u32,
}

/// One library: its full source (with the `#!lua name=…` line) and the
/// functions it registered, in registration order.
#[derive(Clone, Debug)]
pub struct Library {
    pub name: String,
    pub code: Bytes,
    pub functions: Vec<FunctionInfo>,
}

#[derive(Default)]
struct Libs {
    libraries: BTreeMap<String, Arc<Library>>,
    /// Function name (ASCII-lowercased: FCALL finds functions regardless
    /// of case, as Redis) → library name.
    functions: HashMap<String, String>,
}

/// The key of a function name in [`Libs::functions`].
fn fkey(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// All loaded libraries.
#[derive(Default)]
pub struct FunctionRegistry {
    libs: Mutex<Libs>,
    generation: AtomicU64,
}

/// Library and function names: letters, digits and `_`, not empty.
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

pub const BAD_NAME: &str = "Library names can only contain letters, numbers, or underscores(_) and must be at least one character long";

/// Parses the `#!<engine> name=<lib>` line. Returns (engine, name, offset of
/// the body: the newline ending the shebang, so line numbers match).
pub fn parse_metadata(code: &[u8]) -> Result<(String, String, usize), String> {
    if !code.starts_with(b"#!") {
        return Err("Missing library metadata".into());
    }
    let Some(end) = code.iter().position(|&c| c == b'\n') else {
        return Err("Invalid library metadata".into());
    };
    // Split with Redis's quoting rules (`name="lib"` names `lib`).
    let parts = match crate::protocol::codec::split_args(&code[..end]) {
        Some(p) if !p.is_empty() => p,
        _ => return Err("Invalid library metadata".into()),
    };
    let engine = String::from_utf8_lossy(parts[0].get(2..).unwrap_or_default()).into_owned();
    let mut name: Option<String> = None;
    for p in &parts[1..] {
        if p.len() >= 5 && p[..5].eq_ignore_ascii_case(b"name=") {
            if name.is_some() {
                return Err(
                    "Invalid metadata value, name argument was given multiple times".into(),
                );
            }
            name = Some(String::from_utf8_lossy(&p[5..]).into_owned());
            continue;
        }
        return Err(format!(
            "Invalid metadata value given: {}",
            String::from_utf8_lossy(p)
        ));
    }
    let Some(name) = name else {
        return Err("Library name was not given".into());
    };
    Ok((engine, name, end))
}

/// The metadata checks: (library name, body offset).
fn check_header(code: &[u8]) -> Result<(String, usize), String> {
    let (engine, name, body) = parse_metadata(code)?;
    if !valid_name(name.as_bytes()) {
        return Err(BAD_NAME.into());
    }
    if !engine.eq_ignore_ascii_case("lua") {
        return Err(format!("Engine '{engine}' not found"));
    }
    Ok((name, body))
}

/// Validates `code` (metadata, engine, then running it in a fresh
/// interpreter) and returns the library it defines.
pub fn compile_library(code: &[u8]) -> Result<Library, String> {
    let (name, body) = check_header(code)?;
    let functions = crate::scripting::validate_library(&code[body..])?;
    if functions.is_empty() {
        return Err("No functions registered".into());
    }
    Ok(Library {
        name,
        code: Bytes::copy_from_slice(code),
        functions,
    })
}

/// How FUNCTION RESTORE merges a payload.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum RestorePolicy {
    Append,
    Replace,
    Flush,
}

impl FunctionRegistry {
    /// Bumped by every change; interpreters reload their libraries when it
    /// moved.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn bump(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// FUNCTION LOAD: adds (or with `replace`, replaces) a library; returns
    /// its name. Errors are Redis's texts without the `ERR ` prefix.
    pub fn load_library(&self, code: &[u8], replace: bool) -> Result<String, String> {
        // Cheap checks first (in Redis's order), then the validation run.
        let (name, _) = check_header(code)?;
        if !replace && self.libs.lock().libraries.contains_key(&name) {
            return Err(format!("Library '{name}' already exists"));
        }
        let lib = compile_library(code)?;
        let mut libs = self.libs.lock();
        if !replace && libs.libraries.contains_key(&lib.name) {
            return Err(format!("Library '{}' already exists", lib.name));
        }
        for f in &lib.functions {
            if let Some(owner) = libs.functions.get(&fkey(&f.name)) {
                if *owner != lib.name {
                    return Err(format!("Function {} already exists", f.name));
                }
            }
        }
        unlink(&mut libs, &lib.name);
        link(&mut libs, Arc::new(lib.clone()));
        drop(libs);
        self.bump();
        Ok(lib.name)
    }

    /// FUNCTION DELETE.
    pub fn delete(&self, name: &str) -> bool {
        let found = unlink(&mut self.libs.lock(), name);
        if found {
            self.bump();
        }
        found
    }

    /// FUNCTION FLUSH.
    pub fn flush(&self) {
        *self.libs.lock() = Libs::default();
        self.bump();
    }

    /// Every library, by name.
    pub fn libraries(&self) -> Vec<Arc<Library>> {
        self.libs.lock().libraries.values().cloned().collect()
    }

    /// The library code of every library (for RDB persistence).
    pub fn library_codes(&self) -> Vec<Vec<u8>> {
        self.libs
            .lock()
            .libraries
            .values()
            .map(|l| l.code.to_vec())
            .collect()
    }

    /// The function `name` (any case) and its flags.
    pub fn function(&self, name: &str) -> Option<FunctionInfo> {
        let libs = self.libs.lock();
        let lib = libs.functions.get(&fkey(name))?;
        libs.libraries
            .get(lib)?
            .functions
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
            .cloned()
    }

    /// The flags of function `name` (any case), for dispatch's checks.
    pub fn flags_of(&self, name: &[u8]) -> Option<u32> {
        let name = std::str::from_utf8(name).ok()?;
        self.function(name).map(|f| f.flags)
    }

    /// (libraries, functions) counts for FUNCTION STATS.
    pub fn counts(&self) -> (usize, usize) {
        let libs = self.libs.lock();
        (libs.libraries.len(), libs.functions.len())
    }

    /// FUNCTION DUMP payload.
    pub fn dump(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for code in self.library_codes() {
            out.push(RDB_OPCODE_FUNCTION2);
            rdb_put_string(&mut out, &code);
        }
        out.extend_from_slice(&RDB_VERSION.to_le_bytes());
        let crc = crate::persistence::rdb::crc64(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// FUNCTION RESTORE.
    pub fn restore(&self, payload: &[u8], policy: RestorePolicy) -> Result<(), String> {
        if !verify_payload(payload) {
            return Err("DUMP payload version or checksum are wrong".into());
        }
        let body = &payload[..payload.len() - 10];
        let mut pos = 0;
        let mut new: Vec<Library> = Vec::new();
        while pos < body.len() {
            let t = body[pos];
            pos += 1;
            if t != RDB_OPCODE_FUNCTION2 {
                return Err("given type is not a function".into());
            }
            let code = rdb_get_string(body, &mut pos)
                .ok_or_else(|| "Failed loading library payload".to_string())?;
            let lib = compile_library(&code)?;
            if new.iter().any(|l| l.name == lib.name) {
                return Err(format!("Library '{}' already exists", lib.name));
            }
            for f in &lib.functions {
                if new
                    .iter()
                    .any(|l| l.functions.iter().any(|g| g.name == f.name))
                {
                    return Err(format!("Function {} already exists", f.name));
                }
            }
            new.push(lib);
        }
        let mut libs = self.libs.lock();
        let mut next = if policy == RestorePolicy::Flush {
            Libs::default()
        } else {
            Libs {
                libraries: libs.libraries.clone(),
                functions: libs.functions.clone(),
            }
        };
        for lib in &new {
            if next.libraries.contains_key(&lib.name) {
                if policy != RestorePolicy::Replace {
                    return Err(format!("Library {} already exists", lib.name));
                }
                unlink(&mut next, &lib.name);
            }
        }
        for lib in &new {
            for f in &lib.functions {
                if next.functions.contains_key(&fkey(&f.name)) {
                    return Err(format!("Function {} already exists", f.name));
                }
            }
        }
        for lib in new {
            link(&mut next, Arc::new(lib));
        }
        *libs = next;
        drop(libs);
        self.bump();
        Ok(())
    }
}

fn unlink(libs: &mut Libs, name: &str) -> bool {
    match libs.libraries.remove(name) {
        Some(old) => {
            for f in &old.functions {
                libs.functions.remove(&fkey(&f.name));
            }
            true
        }
        None => false,
    }
}

fn link(libs: &mut Libs, lib: Arc<Library>) {
    for f in &lib.functions {
        libs.functions.insert(fkey(&f.name), lib.name.clone());
    }
    libs.libraries.insert(lib.name.clone(), lib);
}

/// `RDB_OPCODE_FUNCTION2`: a library record.
pub const RDB_OPCODE_FUNCTION2: u8 = 245;
/// The RDB version Redis 7.0 writes in DUMP footers.
pub const RDB_VERSION: u16 = 10;

/// Appends `s` as an RDB string (length-prefixed, never compressed).
pub fn rdb_put_string(out: &mut Vec<u8>, s: &[u8]) {
    let n = s.len();
    if n < 1 << 6 {
        out.push(n as u8);
    } else if n < 1 << 14 {
        out.push(0x40 | (n >> 8) as u8);
        out.push(n as u8);
    } else if n <= u32::MAX as usize {
        out.push(0x80);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    out.extend_from_slice(s);
}

/// Reads an RDB length; `Ok((value, encoded))` where `encoded` marks the
/// special string encodings (integers, LZF).
fn rdb_get_len(b: &[u8], pos: &mut usize) -> Option<(u64, bool)> {
    let first = *b.get(*pos)?;
    *pos += 1;
    Some(match first >> 6 {
        0 => ((first & 0x3f) as u64, false),
        1 => {
            let second = *b.get(*pos)?;
            *pos += 1;
            ((((first & 0x3f) as u64) << 8) | second as u64, false)
        }
        2 => match first {
            0x80 => {
                let v = b.get(*pos..*pos + 4)?;
                *pos += 4;
                (u32::from_be_bytes(v.try_into().ok()?) as u64, false)
            }
            0x81 => {
                let v = b.get(*pos..*pos + 8)?;
                *pos += 8;
                (u64::from_be_bytes(v.try_into().ok()?), false)
            }
            _ => return None,
        },
        _ => ((first & 0x3f) as u64, true),
    })
}

/// Reads an RDB string in any of Redis's encodings (plain, integer, LZF).
pub fn rdb_get_string(b: &[u8], pos: &mut usize) -> Option<Vec<u8>> {
    let (len, encoded) = rdb_get_len(b, pos)?;
    if !encoded {
        let len = usize::try_from(len).ok()?;
        let s = b.get(*pos..pos.checked_add(len)?)?.to_vec();
        *pos += len;
        return Some(s);
    }
    match len {
        0 => {
            let v = *b.get(*pos)? as i8;
            *pos += 1;
            Some(v.to_string().into_bytes())
        }
        1 => {
            let v = i16::from_le_bytes(b.get(*pos..*pos + 2)?.try_into().ok()?);
            *pos += 2;
            Some(v.to_string().into_bytes())
        }
        2 => {
            let v = i32::from_le_bytes(b.get(*pos..*pos + 4)?.try_into().ok()?);
            *pos += 4;
            Some(v.to_string().into_bytes())
        }
        3 => {
            let (clen, e1) = rdb_get_len(b, pos)?;
            let (ulen, e2) = rdb_get_len(b, pos)?;
            if e1 || e2 {
                return None;
            }
            let clen = usize::try_from(clen).ok()?;
            let src = b.get(*pos..pos.checked_add(clen)?)?;
            *pos += clen;
            lzf_decompress(src, usize::try_from(ulen).ok()?)
        }
        _ => None,
    }
}

/// LZF decompression (the format Redis compresses RDB strings with).
pub fn lzf_decompress(src: &[u8], out_len: usize) -> Option<Vec<u8>> {
    let mut out: Vec<u8> = Vec::with_capacity(out_len.min(1 << 26));
    let mut i = 0;
    while i < src.len() {
        let ctrl = src[i] as usize;
        i += 1;
        if ctrl < 32 {
            let n = ctrl + 1;
            out.extend_from_slice(src.get(i..i + n)?);
            i += n;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                len += *src.get(i)? as usize;
                i += 1;
            }
            let back = ((ctrl & 0x1f) << 8) + *src.get(i)? as usize + 1;
            i += 1;
            let start = out.len().checked_sub(back)?;
            for k in 0..len + 2 {
                let c = out[start + k];
                out.push(c);
            }
        }
        if out.len() > out_len {
            return None;
        }
    }
    (out.len() == out_len).then_some(out)
}

/// A DUMP-style payload's footer: RDB version ≤ ours and a matching CRC.
pub fn verify_payload(p: &[u8]) -> bool {
    if p.len() < 10 {
        return false;
    }
    let n = p.len();
    let ver = u16::from_le_bytes([p[n - 10], p[n - 9]]);
    if ver > RDB_VERSION {
        return false;
    }
    let want = u64::from_le_bytes(p[n - 8..].try_into().unwrap_or([0; 8]));
    crate::persistence::rdb::crc64(&p[..n - 8]) == want
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc64_check_value() {
        assert_eq!(
            crate::persistence::rdb::crc64(b"123456789"),
            0xe9c6_d914_c4b8_d9ca
        );
    }

    #[test]
    fn metadata() {
        assert_eq!(
            parse_metadata(b"#!lua name=x\nreturn").map(|m| m.1),
            Ok("x".to_string())
        );
        assert!(parse_metadata(b"#!lua name=x").is_err());
        assert!(parse_metadata(b"lua").is_err());
    }

    #[test]
    fn rdb_strings_round_trip() {
        for n in [0usize, 63, 64, 16383, 16384, 70000] {
            let s = vec![b'a'; n];
            let mut out = Vec::new();
            rdb_put_string(&mut out, &s);
            let mut pos = 0;
            assert_eq!(rdb_get_string(&out, &mut pos).as_deref(), Some(&s[..]));
            assert_eq!(pos, out.len());
        }
    }
}
