//! The process title (`set-proc-title`, `proc-title-template`): what `ps`
//! and `/proc/<pid>/cmdline` show, as Redis's setproctitle sets it
//! (`cinnabar 127.0.0.1:6379` rather than the command line).
//!
//! Linux keeps a process's arguments and then its environment strings in
//! one contiguous area, and `/proc/<pid>/cmdline` reads that memory. The
//! title is written over it: [`init`] (at startup, before any other
//! thread reads the environment) first moves the environment strings to
//! the heap and points `environ` at the copies, so the whole area from
//! the first argument to the end of the last environment string can hold
//! the title. The arguments themselves are parsed before `init`.

use parking_lot::Mutex;

use crate::config::Config;

/// The writable area: its start address and length.
struct Area {
    start: usize,
    len: usize,
}

static AREA: Mutex<Option<Area>> = Mutex::new(None);
/// `{title}`: the program's name as it was run (`argv[0]`).
static TITLE: Mutex<String> = Mutex::new(String::new());

extern "C" {
    static mut environ: *mut *mut libc::c_char;
}

/// Reads `arg_start`, `arg_end`, `env_start`, `env_end` (fields 48-51 of
/// `/proc/self/stat`, after the parenthesised command name).
fn layout() -> Option<[usize; 4]> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    // `after` starts at field 3 (state); field n is at index n - 3.
    let fields: Vec<&str> = after.split_whitespace().collect();
    let f = |n: usize| fields.get(n - 3)?.parse::<usize>().ok();
    Some([f(48)?, f(49)?, f(50)?, f(51)?])
}

/// Prepares the area (see the module's comment). `argv0` is the program's
/// name as run. Must run before other threads read the environment.
pub fn init(argv0: &str) {
    *TITLE.lock() = argv0.to_string();
    let Some([arg_start, arg_end, env_start, env_end]) = layout() else {
        return;
    };
    if arg_end <= arg_start || env_start < arg_end || env_end < env_start {
        return;
    }
    // SAFETY: single-threaded startup. `environ` is the C library's
    // NULL-terminated array of pointers to NUL-terminated strings; each
    // string inside [env_start, env_end) is copied to leaked heap memory
    // and its pointer replaced, so nothing refers into the area afterwards
    // except the arguments, which were already parsed.
    unsafe {
        let mut p = environ;
        if !p.is_null() {
            while !(*p).is_null() {
                let s = *p as usize;
                if (env_start..env_end).contains(&s) {
                    let copy = std::ffi::CStr::from_ptr(*p).to_owned();
                    *p = copy.into_raw();
                }
                p = p.add(1);
            }
        }
    }
    // Only an environment right after the arguments extends the area.
    let end = if env_start <= arg_end + 1 {
        env_end
    } else {
        arg_end
    };
    *AREA.lock() = Some(Area {
        start: arg_start,
        len: end - arg_start,
    });
}

/// The title `proc-title-template` gives, with the variables Redis
/// defines (`{title}`, `{listen-addr}`, `{server-mode}`, `{port}`,
/// `{tls-port}`, `{unixsocket}`, `{config-file}`; `{{` is a brace).
/// `port`/`tls-port` are the ports actually listened on.
pub fn expand(cfg: &Config, port: u16, tls_port: u16) -> String {
    let t = cfg.proc_title_template();
    let title = TITLE.lock().clone();
    let bind = cfg.bind();
    let addr = bind
        .first()
        .map(|b| b.trim_start_matches('-').to_string())
        .unwrap_or_else(|| "*".to_string());
    let socket = cfg.unixsocket().unwrap_or_default();
    let listen = if port != 0 || tls_port != 0 {
        format!("{addr}:{}", if port != 0 { port } else { tls_port })
    } else {
        format!("unixsocket:{socket}")
    };
    let mode = if cfg.cluster_enabled() {
        "[cluster]"
    } else {
        ""
    };
    let config_file = cfg
        .config_file()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let value = |var: &str| {
        Some(match var {
            "title" => title.clone(),
            "listen-addr" => listen.clone(),
            "server-mode" => mode.to_string(),
            "port" => port.to_string(),
            "tls-port" => tls_port.to_string(),
            "unixsocket" => socket.clone(),
            "config-file" => config_file.clone(),
            _ => return None,
        })
    };
    // CONFIG SET checked the template; an invalid one (impossible) shows
    // as written.
    crate::config::expand_proc_title(&t, value).unwrap_or(t)
}

/// Writes `title` over the area (cut to fit), the rest zeroed. Does
/// nothing before [`init`] or where the area could not be found.
pub fn set(title: &str) {
    let area = AREA.lock();
    let Some(a) = area.as_ref() else {
        return;
    };
    let n = title.len().min(a.len.saturating_sub(1));
    // SAFETY: [start, start + len) is this process's argument and
    // environment area, which `init` made exclusively ours; the lock
    // serialises writers.
    unsafe {
        let dst = a.start as *mut u8;
        std::ptr::copy_nonoverlapping(title.as_ptr(), dst, n);
        std::ptr::write_bytes(dst.add(n), 0, a.len - n);
    }
}
