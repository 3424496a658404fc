//! The append-only file, in Redis 7's multi-part layout.
//!
//! `appenddirname/` holds a manifest (`<appendfilename>.manifest`), at most
//! one base file (`<appendfilename>.<seq>.base.rdb`, an RDB snapshot, or
//! `.base.aof`, commands) and the incremental files
//! (`<appendfilename>.<seq>.incr.aof`) written since that base. Choosing
//! Redis's own layout means an appendonlydir written by Cinnabar loads into
//! redis-server 7 and the other way round, and `redis-check-aof` works on it.
//! A Redis <= 6 single `appendonly.aof` found at startup is moved in as the
//! base (see `snapshot::start_aof_at_boot`); any file may start with an RDB
//! (a preamble) followed by commands, and `check-aof` checks both parts.
//!
//! Writing: the propagation stream (`server::propagate`) is drained by one
//! writer thread that appends to the current incremental file and fsyncs per
//! `appendfsync` (always: before the replies are sent, see
//! `connection::wait_durable`; everysec: at most once a second; no: never).
//! A rewrite forks a snapshot child that writes a new base while the parent
//! rotates to a fresh incremental file at the same instant (all shard locks
//! held), so no rewrite buffer is needed: when the child succeeds the new
//! manifest lists the new base and the new incremental file, and the old
//! files are deleted.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::config::Appendfsync;
use crate::server::propagate::AofSink;
use crate::server::Server;

/// Kind of a file listed in the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    Base,
    Incr,
    History,
}

/// One manifest line: `file <name> seq <n> type <b|i|h>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AofFile {
    pub name: String,
    pub seq: u64,
    pub kind: FileType,
}

/// The manifest: the base (if any), the history files (those a rewrite
/// retired and `aof-disable-auto-gc yes` keeps on disk, newest first, as
/// Redis lists them) and the incremental files, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    pub base: Option<AofFile>,
    pub history: Vec<AofFile>,
    pub incrs: Vec<AofFile>,
}

impl Manifest {
    /// Parses Redis 7's manifest format with Redis's rules and messages:
    /// `#` lines are comments; a blank line, a line of fewer than three
    /// key/value pairs or an odd number of words, or one missing `file`,
    /// `seq` or `type` is invalid; unknown keys are ignored (forward
    /// compatibility); a manifest listing no file is refused.
    pub fn parse(text: &str) -> Result<Manifest, String> {
        // Redis reads a line into a 1024-byte buffer.
        const LINE_MAX: usize = 1023;
        const INVALID: &str = "Invalid AOF manifest file format";
        let mut m = Manifest::default();
        for line in text.split_inclusive('\n') {
            if line.starts_with('#') {
                continue;
            }
            if line.len() > LINE_MAX || (line.len() == LINE_MAX && !line.ends_with('\n')) {
                return Err("The AOF manifest file contains too long line".into());
            }
            // Redis's argument splitting: a name with spaces or special
            // characters is written quoted (see `render`).
            let toks = crate::config::split_args(line).map_err(|_| INVALID.to_string())?;
            if toks.len() < 6 || !toks.len().is_multiple_of(2) {
                return Err(INVALID.into());
            }
            let (mut name, mut seq, mut kind) = (None, None, None);
            for kv in toks.chunks(2) {
                match kv[0].as_str() {
                    "file" => name = Some(kv[1].clone()),
                    "seq" => seq = Some(kv[1].parse::<u64>().map_err(|_| INVALID.to_string())?),
                    "type" => kind = Some(kv[1].as_str()),
                    _ => {}
                }
            }
            let (Some(name), Some(seq), Some(kind)) = (name, seq, kind) else {
                return Err(INVALID.into());
            };
            if name.contains('/') {
                return Err("File can't be a path, just a filename".into());
            }
            let kind = match kind {
                "b" => FileType::Base,
                "i" => FileType::Incr,
                "h" => FileType::History,
                _ => return Err("Unknown AOF file type".into()),
            };
            let f = AofFile { name, seq, kind };
            match kind {
                FileType::Base => {
                    if m.base.is_some() {
                        return Err("Found duplicate base file information".into());
                    }
                    m.base = Some(f);
                }
                FileType::Incr => {
                    if m.incrs.last().is_some_and(|l| l.seq >= f.seq) {
                        return Err("Found a non-monotonic sequence number".into());
                    }
                    m.incrs.push(f);
                }
                FileType::History => m.history.push(f),
            }
        }
        if m.base.is_none() && m.incrs.is_empty() {
            return Err("Found an empty AOF manifest".into());
        }
        Ok(m)
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        let mut line = |f: &AofFile, t: &str| {
            s.push_str(&format!(
                "file {} seq {} type {}\n",
                quoted(&f.name),
                f.seq,
                t
            ));
        };
        if let Some(b) = &self.base {
            line(b, "b");
        }
        for f in &self.history {
            line(f, "h");
        }
        for f in &self.incrs {
            line(f, "i");
        }
        s
    }

    /// Makes a retired base and incremental files history, as Redis's
    /// rewrite does: each goes to the front of the list, the base first,
    /// then the incremental files from the newest, so the oldest ends up
    /// first. A file still listed as base or incremental, or already
    /// history, is not added twice.
    pub fn retire(&mut self, base: Option<&AofFile>, incrs: &[AofFile]) {
        for f in base.into_iter().chain(incrs.iter().rev()) {
            let mut listed = self.base.iter().chain(&self.incrs).chain(&self.history);
            if listed.any(|l| l.name == f.name) {
                continue;
            }
            self.history.insert(
                0,
                AofFile {
                    kind: FileType::History,
                    ..f.clone()
                },
            );
        }
    }

    pub fn next_incr_seq(&self) -> u64 {
        self.incrs.last().map(|f| f.seq + 1).unwrap_or(1)
    }

    pub fn next_base_seq(&self) -> u64 {
        self.base.as_ref().map(|f| f.seq + 1).unwrap_or(1)
    }
}

/// Redis's words for an AOF file that cannot be opened (tools grep for
/// "<name> for reading: No such file or directory").
pub fn open_error(path: &Path, e: &io::Error) -> String {
    let text = match e.raw_os_error() {
        // SAFETY: strerror returns a static, NUL-terminated message.
        Some(code) => unsafe { std::ffi::CStr::from_ptr(libc::strerror(code)) }
            .to_string_lossy()
            .into_owned(),
        None => e.to_string(),
    };
    format!(
        "Fatal error: can't open the append log file {} for reading: {text}",
        path.display()
    )
}

/// A file name as the manifest holds it: as is, or, when it has spaces,
/// quotes, backslashes or control characters, quoted with C-style escapes
/// (Redis's `sdscatrepr`), which `Manifest::parse` reads back.
fn quoted(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\' && b != b'\'');
    if plain {
        return name.to_string();
    }
    let mut out = String::from("\"");
    for c in name.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            c if c.is_ascii_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            // Printable ASCII, space, and (unescaped) any other character.
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

pub fn manifest_name(appendfilename: &str) -> String {
    format!("{appendfilename}.manifest")
}

pub fn incr_name(appendfilename: &str, seq: u64) -> String {
    format!("{appendfilename}.{seq}.incr.aof")
}

/// The incremental file the rewrite that turns the AOF on writes to until
/// it succeeds (Redis's name for it).
pub fn temp_incr_name(appendfilename: &str) -> String {
    format!("temp-{appendfilename}.incr")
}

pub fn base_name(appendfilename: &str, seq: u64, rdb: bool) -> String {
    format!(
        "{appendfilename}.{seq}.base.{}",
        if rdb { "rdb" } else { "aof" }
    )
}

/// Writes `data` to `path` crash-safely: a temporary file, fsync, rename,
/// then fsync of the directory.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        "temp-{}-{}",
        std::process::id(),
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file")
    ));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    fsync_dir(dir)
}

/// fsyncs a directory so a rename or a new file in it survives a crash.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    let d = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(d)?.sync_all()
}

// ---- reading commands ------------------------------------------------------

/// How reading one command from an AOF ended badly.
#[derive(Debug)]
pub enum ReadError {
    /// The file ends in the middle of a command (a crash while appending).
    Truncated,
    /// Bytes that are not a command.
    Bad(String),
    Io(io::Error),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// Reads RESP commands (`*N` arrays of `$len` bulk strings) from an AOF.
pub struct CommandReader<R> {
    r: R,
    /// Bytes consumed so far (the offset of the next command).
    pub offset: u64,
    line: Vec<u8>,
    /// `#TS:<unix-secs>` annotations met so far: (offset of the line, secs).
    pub timestamps: Vec<(u64, u64)>,
}

/// The largest element count / bulk length accepted from a file (a corrupt
/// length must not allocate gigabytes).
const MAX_ARGS: u64 = 1 << 24;
const MAX_BULK: u64 = 1 << 32;

impl<R: BufRead> CommandReader<R> {
    pub fn new(r: R) -> Self {
        CommandReader {
            r,
            offset: 0,
            line: Vec::new(),
            timestamps: Vec::new(),
        }
    }

    fn read_line(&mut self) -> Result<Option<usize>, ReadError> {
        self.line.clear();
        let n = self.r.read_until(b'\n', &mut self.line)?;
        if n == 0 {
            return Ok(None);
        }
        if !self.line.ends_with(b"\r\n") {
            return Err(ReadError::Truncated);
        }
        Ok(Some(n))
    }

    fn number(&self, prefix: u8) -> Result<u64, ReadError> {
        let body = &self.line[..self.line.len() - 2];
        if body.first() != Some(&prefix) {
            return Err(ReadError::Bad(format!(
                "expected '{}' but found {:?}",
                prefix as char,
                String::from_utf8_lossy(&body[..body.len().min(16)])
            )));
        }
        std::str::from_utf8(&body[1..])
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| ReadError::Bad("invalid length".into()))
    }

    /// The next command; `Ok(None)` at a clean end of file. On error the
    /// offset still points at the start of the failed command.
    pub fn next_command(&mut self) -> Result<Option<Vec<Bytes>>, ReadError> {
        let mut start = self.offset;
        let mut used = 0u64;
        let Some(mut n) = self.read_line()? else {
            return Ok(None);
        };
        // `#` lines between commands are annotations (Redis writes
        // `#TS:<unix-secs>` with aof-timestamp-enabled): skipped.
        while self.line.first() == Some(&b'#') {
            if let Some(ts) = self
                .line
                .strip_prefix(b"#TS:")
                .and_then(|t| std::str::from_utf8(t).ok())
                .and_then(|t| t.trim_end().parse::<u64>().ok())
            {
                self.timestamps.push((start, ts));
            }
            start += n as u64;
            self.offset = start;
            let Some(m) = self.read_line()? else {
                return Ok(None);
            };
            n = m;
        }
        used += n as u64;
        let argc = self.number(b'*')?;
        if argc == 0 || argc > MAX_ARGS {
            return Err(ReadError::Bad("invalid argument count".into()));
        }
        let mut argv = Vec::with_capacity(argc.min(1024) as usize);
        for _ in 0..argc {
            let Some(n) = self.read_line()? else {
                return Err(ReadError::Truncated);
            };
            used += n as u64;
            let len = self.number(b'$')?;
            if len > MAX_BULK {
                return Err(ReadError::Bad("invalid bulk length".into()));
            }
            let mut buf = vec![0u8; len as usize + 2];
            if let Err(e) = self.r.read_exact(&mut buf) {
                return Err(if e.kind() == io::ErrorKind::UnexpectedEof {
                    ReadError::Truncated
                } else {
                    ReadError::Io(e)
                });
            }
            if !buf.ends_with(b"\r\n") {
                return Err(ReadError::Bad("bulk not terminated by CRLF".into()));
            }
            used += buf.len() as u64;
            buf.truncate(len as usize);
            argv.push(Bytes::from(buf));
        }
        self.offset = start + used;
        Ok(Some(argv))
    }
}

/// What loading one AOF file found.
#[derive(Debug, Default)]
pub struct FileLoad {
    pub commands: u64,
    /// The file was cut at this offset (aof-load-truncated).
    pub truncated_at: Option<u64>,
}

/// Replays one file of commands through `exec` (which runs a command as
/// the loading client; its error stops the load). A truncated tail is cut off (`aof-load-truncated
/// yes`, only for the last file) or is an error; anything else unreadable is
/// an error naming the offset. An unfinished MULTI at the end counts as
/// truncated at the MULTI.
pub fn replay_file(
    path: &Path,
    truncate_ok: bool,
    exec: &mut dyn FnMut(&[Bytes]) -> Result<(), String>,
    discard_multi: &mut dyn FnMut(),
) -> Result<FileLoad, String> {
    let f = File::open(path).map_err(|e| open_error(path, &e))?;
    let mut r = BufReader::with_capacity(1 << 16, f);
    replay_from(path, &mut r, 0, truncate_ok, exec, discard_multi)
}

/// [`replay_file`] from offset `start` of `path`, `r` positioned there (the
/// commands after an RDB preamble).
pub fn replay_from(
    path: &Path,
    r: &mut dyn BufRead,
    start: u64,
    truncate_ok: bool,
    exec: &mut dyn FnMut(&[Bytes]) -> Result<(), String>,
    discard_multi: &mut dyn FnMut(),
) -> Result<FileLoad, String> {
    let mut rd = CommandReader::new(r);
    rd.offset = start;
    let mut out = FileLoad::default();
    // Offset before an open MULTI (a torn transaction is dropped whole).
    let mut multi_at: Option<u64> = None;
    loop {
        let at = rd.offset;
        match rd.next_command() {
            Ok(Some(argv)) => {
                out.commands += 1;
                if argv[0].eq_ignore_ascii_case(b"multi") {
                    multi_at = Some(at);
                } else if argv[0].eq_ignore_ascii_case(b"exec") {
                    multi_at = None;
                }
                exec(&argv)?;
            }
            Ok(None) => {
                if let Some(m) = multi_at {
                    discard_multi();
                    return truncate(path, m, truncate_ok, out);
                }
                return Ok(out);
            }
            Err(ReadError::Truncated) => {
                discard_multi();
                return truncate(path, multi_at.unwrap_or(at), truncate_ok, out);
            }
            Err(ReadError::Bad(why)) => {
                return Err(format!(
                    "Bad file format reading the append only file {} at offset {at}: {why}. \
                     Make a backup of your AOF file, then use `cinnabar check-aof --fix <filename.manifest>`",
                    path.display()
                ))
            }
            Err(ReadError::Io(e)) => {
                return Err(format!("Error reading the append only file {}: {e}", path.display()))
            }
        }
    }
}

fn truncate(path: &Path, at: u64, ok: bool, mut out: FileLoad) -> Result<FileLoad, String> {
    if !ok {
        return Err(format!(
            "Unexpected end of file reading the append only file {} at offset {at}. \
             You can: 1) Make a backup of your AOF file, then use `cinnabar check-aof --fix <filename.manifest>`. \
             2) Alternatively you can set the 'aof-load-truncated' configuration option to yes and restart the server.",
            path.display()
        ));
    }
    tracing::warn!(
        file = %path.display(),
        offset = at,
        "!!! Warning: short read while loading the AOF file !!! AOF loaded anyway because aof-load-truncated is enabled"
    );
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| format!("Error truncating the AOF file {}: {e}", path.display()))?;
    f.set_len(at)
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("Error truncating the AOF file {}: {e}", path.display()))?;
    out.truncated_at = Some(at);
    Ok(out)
}

/// `cinnabar check-aof [--fix | --truncate-to-timestamp SECS] <file>`:
/// checks one AOF file (or every file of a manifest); `fix` cuts a
/// truncated tail, `truncate_to` cuts back to a point in time. Returns the
/// process exit code.
pub fn check_aof_main(path: &Path, fix: bool, truncate_to: Option<u64>) -> i32 {
    let multi_part = path.extension().is_some_and(|e| e == "manifest");
    // Whether the first file is the manifest's base.
    let mut has_base = false;
    let files: Vec<PathBuf> = if multi_part {
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("Cannot read {}: {e}", path.display());
                return 1;
            }
        };
        let m = match Manifest::parse(&text) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("{e}");
                return 1;
            }
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        has_base = m.base.is_some();
        m.base
            .iter()
            .chain(m.incrs.iter())
            .map(|f| dir.join(&f.name))
            .collect()
    } else {
        vec![path.to_path_buf()]
    };
    if let Some(ts) = truncate_to {
        return truncate_to_timestamp(&files, ts);
    }
    // redis-check-aof's messages, so scripts that read them keep working.
    println!(
        "Start checking {} AOF",
        if multi_part {
            "Multi Part"
        } else {
            "Old-Style"
        }
    );
    for (i, f) in files.iter().enumerate() {
        let last = i + 1 == files.len();
        let role = if !multi_part {
            ""
        } else if i == 0 && has_base {
            println!(
                "Start to check BASE AOF ({} format).",
                if is_rdb_file(f) { "RDB" } else { "RESP" }
            );
            "BASE "
        } else {
            if i == usize::from(has_base) {
                println!("Start to check INCR files.");
            }
            "INCR "
        };
        let checked = match check_file(f) {
            Ok(c) => c,
            Err(e) => {
                println!("{e}");
                return 1;
            }
        };
        let Some((at, size)) = checked.bad else {
            if checked.size == 0 {
                println!("{role}AOF {} is empty", f.display());
            } else {
                println!("{role}AOF {} is valid", f.display());
            }
            continue;
        };
        println!(
            "AOF analyzed: filename={}, size={size}, ok_up_to={at}, ok_up_to_line={}, diff={}",
            f.display(),
            checked.ok_lines,
            size - at
        );
        if !fix {
            println!(
                "AOF {} is not valid. Use the --fix option to try fixing it.",
                f.display()
            );
            return 1;
        }
        if !last {
            println!(
                "Failed to truncate AOF {} because it is not the last file",
                f.display()
            );
            return 1;
        }
        match OpenOptions::new().write(true).open(f).and_then(|h| {
            h.set_len(at)?;
            h.sync_all()
        }) {
            Ok(()) => println!("Successfully truncated AOF {}", f.display()),
            Err(e) => {
                println!("Failed to truncate AOF {}: {e}", f.display());
                return 1;
            }
        }
    }
    if multi_part {
        println!("All AOF files and manifest are valid");
    }
    0
}

/// Does the file start with the RDB signature (an AOF base or preamble)?
pub fn is_rdb_file(path: &Path) -> bool {
    let mut head = [0u8; 5];
    File::open(path)
        .and_then(|mut h| io::Read::read_exact(&mut h, &mut head))
        .is_ok()
        && &head == b"REDIS"
}

/// `check-aof --truncate-to-timestamp T`: cuts the AOF at its first
/// `#TS:` annotation later than `T` (point-in-time recovery, as
/// redis-check-aof). Only the last file can be cut: a later annotation in
/// an earlier file is an error, as in Redis.
fn truncate_to_timestamp(files: &[PathBuf], to: u64) -> i32 {
    for (i, f) in files.iter().enumerate() {
        let checked = match check_file(f) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{e}");
                return 1;
            }
        };
        if let Some((at, _)) = checked.bad {
            println!(
                "AOF {} is not valid (ok up to {at}). Use the --fix option to try fixing it.",
                f.display()
            );
            return 1;
        }
        let Some(&(cut, _)) = checked.timestamps.iter().find(|&&(_, t)| t > to) else {
            continue;
        };
        if cut == 0 {
            println!(
                "AOF {} has nothing before timestamp {to}, aborting...",
                f.display()
            );
            return 1;
        }
        if i + 1 != files.len() {
            println!(
                "Failed to truncate AOF {} to timestamp {to} because it is not the last file.",
                f.display()
            );
            return 1;
        }
        return match OpenOptions::new().write(true).open(f).and_then(|h| {
            h.set_len(cut)?;
            h.sync_all()
        }) {
            Ok(()) => {
                println!(
                    "Successfully truncated AOF {} to timestamp {to}",
                    f.display()
                );
                0
            }
            Err(e) => {
                eprintln!("Failed to truncate AOF {}: {e}", f.display());
                1
            }
        };
    }
    println!("AOF has no annotation later than timestamp {to}: nothing to truncate");
    0
}

/// What [`check_file`] found.
struct Checked {
    /// `None` if valid; `Some((ok_up_to, size))` if the tail is truncated
    /// or unreadable from `ok_up_to` on (a torn MULTI counts).
    bad: Option<(u64, u64)>,
    /// The `#TS:` annotations: (offset, unix secs).
    timestamps: Vec<(u64, u64)>,
    /// The file's size.
    size: u64,
    /// redis-check-aof's `ok_up_to_line`: 1 + the newlines of the command
    /// part before the first bad byte (or the end).
    ok_lines: u64,
}

/// Checks one AOF file (see [`Checked`]).
/// A file starting with `REDIS` (an RDB base, or a Redis 4-6 AOF with an
/// RDB preamble) has its RDB part checked whole (a damaged RDB cannot be
/// fixed by truncation) and the commands after it as any AOF.
fn check_file(path: &Path) -> Result<Checked, String> {
    let mut f = File::open(path).map_err(|e| format!("Cannot open {}: {e}", path.display()))?;
    let size = f
        .seek(io::SeekFrom::End(0))
        .and_then(|s| f.seek(io::SeekFrom::Start(0)).map(|_| s))
        .map_err(|e| e.to_string())?;
    let mut br = BufReader::new(f);
    let mut start = 0;
    if br
        .fill_buf()
        .map_err(|e| e.to_string())?
        .starts_with(b"REDIS")
    {
        println!(
            "The AOF appears to start with an RDB preamble. Checking the RDB preamble to start:"
        );
        let mut sink = |_: crate::persistence::rdb::Loaded| Ok(());
        let lim = crate::persistence::rdb::Limits::default();
        crate::persistence::rdb::load(&mut br, 0, &lim, &mut sink)
            .map_err(|e| format!("The RDB preamble of {} is not valid: {e}", path.display()))?;
        start = br.stream_position().map_err(|e| e.to_string())?;
        println!("RDB preamble is OK, proceeding with AOF tail...");
    }
    let mut rd = CommandReader::new(br);
    rd.offset = start;
    let mut multi_at = None;
    loop {
        let at = rd.offset;
        match rd.next_command() {
            Ok(Some(argv)) => {
                if argv[0].eq_ignore_ascii_case(b"multi") {
                    multi_at = Some(at);
                } else if argv[0].eq_ignore_ascii_case(b"exec") {
                    multi_at = None;
                }
            }
            Ok(None) => {
                let bad = multi_at.map(|m| (m, size));
                let ok_lines = count_lines(path, start, bad.map_or(size, |b| b.0))?;
                return Ok(Checked {
                    bad,
                    timestamps: rd.timestamps,
                    size,
                    ok_lines,
                });
            }
            Err(ReadError::Io(e)) => return Err(e.to_string()),
            Err(_) => {
                let good = multi_at.unwrap_or(at);
                return Ok(Checked {
                    bad: Some((good, size)),
                    timestamps: rd.timestamps,
                    size,
                    ok_lines: count_lines(path, start, good)?,
                });
            }
        }
    }
}

/// 1 + the newlines in `path` between offsets `from` and `to`.
fn count_lines(path: &Path, from: u64, to: u64) -> Result<u64, String> {
    let mut f = File::open(path).map_err(|e| format!("Cannot open {}: {e}", path.display()))?;
    f.seek(io::SeekFrom::Start(from))
        .map_err(|e| e.to_string())?;
    let mut r = BufReader::new(io::Read::take(f, to.saturating_sub(from)));
    let mut lines = 1;
    loop {
        let buf = r.fill_buf().map_err(|e| e.to_string())?;
        if buf.is_empty() {
            return Ok(lines);
        }
        lines += buf.iter().filter(|&&b| b == b'\n').count() as u64;
        let n = buf.len();
        r.consume(n);
    }
}

// ---- the writer --------------------------------------------------------------

/// Opens (creating) an incremental file for appending.
pub fn open_incr(path: &Path) -> io::Result<File> {
    let f = OpenOptions::new().create(true).append(true).open(path)?;
    if let Some(dir) = path.parent() {
        fsync_dir(dir)?;
    }
    Ok(f)
}

/// Creates (emptied if it exists) the temporary incremental file of a
/// first rewrite.
pub fn create_temp_incr(path: &Path) -> io::Result<File> {
    let f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)?;
    if let Some(dir) = path.parent() {
        fsync_dir(dir)?;
    }
    Ok(f)
}

/// The writer thread: drains the propagation stream into the current
/// incremental file until the stream stops.
pub fn writer_loop(srv: Arc<Server>, file: File, start_offset: u64) {
    let feed = &srv.feed;
    // fsyncs go through a second handle of the file, outside the sink's
    // lock, so connections keep writing through while the disk syncs.
    let mut sync_file = file.try_clone().ok();
    *feed.sink.lock() = Some(AofSink {
        file,
        off: start_offset,
        last_ts: 0,
    });
    let mut synced_off = start_offset;
    let mut last_sync = Instant::now();
    let mut off = start_offset;
    loop {
        let always = srv.config.appendfsync() == Appendfsync::Always;
        feed.set_eager(always);
        // Without `always`, appends do not wake us: poll every 2 ms (a
        // batch per write(2), as Redis writes once per event-loop turn).
        // Replies do not wait for this: a connection writes its own
        // commands through first (`write_through`).
        let wait = if always {
            Duration::from_millis(200)
        } else {
            Duration::from_millis(2)
        };
        if !feed.wait(wait, !always) {
            break;
        }
        let fsync_now = feed.take_fsync_request();
        let mut failed = false;
        {
            let mut guard = feed.sink.lock();
            let Some(sink) = guard.as_mut() else {
                break;
            };
            let segments = feed.drain(true);
            if !segments.is_empty() {
                let pause = srv.persist.aof_flush_sleep_us.load(Ordering::Relaxed);
                if pause > 0 {
                    std::thread::sleep(Duration::from_micros(pause));
                }
            }
            for seg in segments {
                match seg {
                    crate::server::propagate::Segment::Data(buf) => {
                        failed |= !write_data(&srv, sink, &buf);
                    }
                    crate::server::propagate::Segment::Rotate(path) => {
                        let _ = sink.file.sync_data();
                        synced_off = sink.off;
                        match open_incr(&path) {
                            Ok(f) => {
                                sync_file = f.try_clone().ok();
                                sink.file = f;
                                sink.last_ts = 0;
                                srv.persist.reset_incr_size();
                            }
                            Err(e) => {
                                tracing::warn!(
                                    "Can't open the new AOF file {}: {e}",
                                    path.display()
                                );
                                write_failed(&srv, &e);
                                failed = true;
                            }
                        }
                    }
                }
            }
            off = sink.off;
        }
        if off == synced_off
            && !always
            && !fsync_now
            && !failed
            && last_sync.elapsed() < Duration::from_secs(1)
        {
            feed.set_written(off, false);
            continue;
        }
        if !failed {
            srv.persist.set_aof_write_status(true);
        }
        let sync_now = |srv: &Server| sync_file.as_ref().is_some_and(|f| fsync(srv, f));
        if fsync_now {
            // Shutdown waits for this whatever the fsync policy says.
            if sync_now(&srv) {
                synced_off = off;
                feed.set_written(off, true);
            }
            continue;
        }
        match srv.config.appendfsync() {
            Appendfsync::Always => {
                if off > synced_off {
                    if !sync_now(&srv) {
                        continue;
                    }
                    synced_off = off;
                }
                feed.set_written(off, true);
            }
            Appendfsync::Everysec => {
                feed.set_written(off, false);
                if off > synced_off && last_sync.elapsed() >= Duration::from_secs(1) {
                    if sync_now(&srv) {
                        synced_off = off;
                        feed.set_written(off, true);
                    }
                    last_sync = Instant::now();
                }
            }
            Appendfsync::No => feed.set_written(off, false),
        }
    }
    if let Some(sink) = feed.sink.lock().take() {
        let _ = sink.file.sync_data();
        off = sink.off;
    }
    feed.set_written(off, true);
}

/// Appends one data segment to the file (after a `#TS:` annotation when
/// the second changed and aof-timestamp-enabled is on); false if the write
/// failed (recorded for MISCONF and INFO).
fn write_data(srv: &Server, sink: &mut AofSink, buf: &[u8]) -> bool {
    let mut ok = true;
    if srv.config.aof_timestamp_enabled() && !buf.is_empty() {
        // As Redis: a `#TS:<secs>` line before the first commands of each
        // new second (annotations are not part of the replication offset).
        let now = crate::commands::dispatch::unix_ms() / 1000;
        if now > sink.last_ts {
            sink.last_ts = now;
            let ts = timestamp_annotation(now);
            if let Err(e) = write_retrying(&mut sink.file, &ts) {
                tracing::warn!("Error writing to the AOF file: {e}");
                write_failed(srv, &e);
                ok = false;
            }
            srv.persist.add_incr_size(ts.len() as u64);
        }
    }
    if let Err(e) = write_retrying(&mut sink.file, buf) {
        tracing::warn!("Error writing to the AOF file: {e}");
        write_failed(srv, &e);
        ok = false;
    }
    sink.off += buf.len() as u64;
    srv.persist.add_incr_size(buf.len() as u64);
    ok
}

/// Writes the queued stream up to at least `upto` to the AOF file from the
/// caller's thread (no fsync), as Redis writes its AOF buffer before it
/// sends replies: a connection calls this before replying to writes that
/// are not in the file yet, so a crash of the process loses no write a
/// client saw acknowledged, and one write(2) covers whatever the other
/// connections queued meanwhile. Stops short at a pending rotation (the
/// writer's job; the caller then waits for the writer).
pub fn write_through(srv: &Server, upto: u64) {
    let feed = &srv.feed;
    let mut guard = feed.sink.lock();
    if feed.written() >= upto {
        return;
    }
    let Some(sink) = guard.as_mut() else {
        return;
    };
    let pause = srv.persist.aof_flush_sleep_us.load(Ordering::Relaxed);
    if pause > 0 {
        std::thread::sleep(Duration::from_micros(pause));
    }
    let (mut wrote, mut ok) = (false, true);
    for seg in feed.drain(false) {
        if let crate::server::propagate::Segment::Data(buf) = seg {
            ok &= write_data(srv, sink, &buf);
            wrote = true;
        }
    }
    if wrote && ok {
        srv.persist.set_aof_write_status(true);
    }
    feed.set_written(sink.off, false);
}

/// fsyncs the AOF file; a failure is logged and recorded (INFO
/// aof_last_write_status, MISCONF).
fn fsync(srv: &Server, file: &File) -> bool {
    match file.sync_data() {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!("Can't fsync the AOF file: {e}");
            write_failed(srv, &e);
            false
        }
    }
}

/// The `#TS:<unix-secs>\r\n` annotation Redis writes with
/// aof-timestamp-enabled (skipped by loaders, used by
/// `check-aof --truncate-to-timestamp`).
pub fn timestamp_annotation(secs: u64) -> Vec<u8> {
    format!("#TS:{secs}\r\n").into_bytes()
}

fn write_retrying(f: &mut File, buf: &[u8]) -> io::Result<()> {
    let mut tries = 0;
    loop {
        match f.write_all(buf) {
            Ok(()) => return Ok(()),
            Err(e) if tries < 3 => {
                tries += 1;
                tracing::warn!("AOF write failed ({e}); retrying");
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e),
        }
    }
}

/// A write or fsync of the AOF failed: recorded for MISCONF and INFO, and
/// as an AOF error in Azure's metrics when the status was fine until now.
fn write_failed(srv: &crate::server::Server, e: &std::io::Error) {
    if srv.persist.aof_write_failed(e) {
        srv.metrics.count(crate::server::metrics::ErrorType::Aof);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_quotes_names_with_spaces_and_escapes() {
        let m = Manifest {
            base: Some(AofFile {
                name: " file seq \n\n.aof .2.base.rdb".into(),
                seq: 2,
                kind: FileType::Base,
            }),
            history: vec![AofFile {
                name: "old one.aof".into(),
                seq: 1,
                kind: FileType::History,
            }],
            incrs: vec![AofFile {
                name: "a\"b\\c\té.aof".into(),
                seq: 3,
                kind: FileType::Incr,
            }],
        };
        let text = m.render();
        assert!(
            text.starts_with("file \" file seq \\n\\n.aof .2.base.rdb\" seq 2 type b\n"),
            "{text}"
        );
        assert_eq!(Manifest::parse(&text).unwrap(), m);
        assert_eq!(
            Manifest::parse("file \"unbalanced seq 1 type i\n").unwrap_err(),
            "Invalid AOF manifest file format"
        );
    }

    /// Two rewrites with history kept: Redis's order (its "AOF enable/
    /// disable auto gc" test) and the text it writes.
    #[test]
    fn rewrites_retire_files_into_history_in_redis_order() {
        let f = |name: &str, seq, kind| AofFile {
            name: name.into(),
            seq,
            kind,
        };
        let mut m = Manifest::parse(
            "file appendonly.aof.5.base.rdb seq 5 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n",
        )
        .unwrap();
        for (base, incr) in [(6, 2), (7, 3)] {
            // The rewrite opens the next incremental file, then installs
            // its base; the older base and incrementals become history.
            m.incrs.push(f(
                &format!("appendonly.aof.{incr}.incr.aof"),
                incr,
                FileType::Incr,
            ));
            let old_base = m.base.take();
            let current = m.incrs.pop();
            let old_incrs = std::mem::take(&mut m.incrs);
            m.base = Some(f(
                &format!("appendonly.aof.{base}.base.rdb"),
                base,
                FileType::Base,
            ));
            m.incrs.extend(current);
            m.retire(old_base.as_ref(), &old_incrs);
        }
        let text = m.render();
        assert_eq!(
            text,
            "file appendonly.aof.7.base.rdb seq 7 type b\n\
             file appendonly.aof.2.incr.aof seq 2 type h\n\
             file appendonly.aof.6.base.rdb seq 6 type h\n\
             file appendonly.aof.1.incr.aof seq 1 type h\n\
             file appendonly.aof.5.base.rdb seq 5 type h\n\
             file appendonly.aof.3.incr.aof seq 3 type i\n"
        );
        assert_eq!(Manifest::parse(&text).unwrap(), m);
    }

    #[test]
    fn manifest_round_trip_and_errors() {
        let text = "file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\nfile appendonly.aof.2.incr.aof seq 2 type i\n";
        let m = Manifest::parse(text).unwrap();
        assert_eq!(m.render(), text);
        assert_eq!(m.next_incr_seq(), 3);
        assert!(Manifest::parse("file a seq 2 type i\nfile b seq 1 type i\n").is_err());
        assert!(Manifest::parse("file a/b seq 1 type i\n").is_err());
        assert!(Manifest::parse("file a seq\n").is_err());
    }

    #[test]
    fn reader_reports_truncation_and_garbage() {
        let mut ok = Vec::new();
        crate::server::propagate::encode_command(&mut ok, &[b"SET" as &[u8], b"k", b"v"]);
        let mut rd = CommandReader::new(&ok[..]);
        assert_eq!(rd.next_command().unwrap().unwrap().len(), 3);
        assert!(rd.next_command().unwrap().is_none());
        for cut in 1..ok.len() {
            let mut rd = CommandReader::new(&ok[..cut]);
            assert!(
                matches!(rd.next_command(), Err(ReadError::Truncated)),
                "cut {cut}"
            );
        }
        let mut rd = CommandReader::new(&b"hello\r\n"[..]);
        assert!(matches!(rd.next_command(), Err(ReadError::Bad(_))));
    }
}
