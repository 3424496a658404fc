//! Logging through `tracing`: level from `loglevel` (changeable with CONFIG
//! SET), output to stdout or `logfile`, text or JSON (`log-format`).

use std::sync::{Mutex, OnceLock};

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{reload, Layer, Registry};

use crate::config::{Config, Loglevel};

/// Keeps the log file open for the life of the process.
pub struct LogGuard;

/// Redis's `debug` and `verbose` both show tracing's DEBUG events; `notice`
/// is INFO.
fn level(cfg: &Config) -> LevelFilter {
    match cfg.loglevel() {
        Loglevel::Debug | Loglevel::Verbose => LevelFilter::DEBUG,
        Loglevel::Notice => LevelFilter::INFO,
        Loglevel::Warning => LevelFilter::WARN,
    }
}

/// The handle that changes the installed subscriber's level.
static LEVEL: OnceLock<reload::Handle<LevelFilter, Registry>> = OnceLock::new();

/// Installs the global subscriber. Safe to call once.
pub fn init(cfg: &Config) -> LogGuard {
    let (filter, handle) = reload::Layer::new(level(cfg));
    let json = cfg.log_format() == "json";
    let logfile = cfg.logfile();
    let file = if logfile.is_empty() {
        None
    } else {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&logfile)
            .ok()
    };
    crash::install(file.as_ref().map(std::os::fd::AsRawFd::as_raw_fd));
    crash::set_enabled(cfg.crash_log_enabled());
    type Boxed = Box<
        dyn Layer<
                tracing_subscriber::layer::Layered<reload::Layer<LevelFilter, Registry>, Registry>,
            > + Send
            + Sync,
    >;
    let base = tracing_subscriber::fmt::layer().with_target(false);
    let output: Boxed = match (file, json) {
        (Some(f), true) => base
            .json()
            .with_writer(Mutex::new(f))
            .with_ansi(false)
            .boxed(),
        (Some(f), false) => base.with_writer(Mutex::new(f)).with_ansi(false).boxed(),
        (None, true) => base.json().boxed(),
        (None, false) => base.with_ansi(false).boxed(),
    };
    if tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .try_init()
        .is_ok()
    {
        let _ = LEVEL.set(handle);
    }
    LogGuard
}

/// Applies the current `loglevel` and `crash-log-enabled` (CONFIG SET).
pub fn reconfigure(cfg: &Config) {
    if let Some(h) = LEVEL.get() {
        let _ = h.reload(level(cfg));
    }
    crash::set_enabled(cfg.crash_log_enabled());
}

/// A crash report in the log on a fatal signal (SIGSEGV, SIGBUS, SIGFPE,
/// SIGILL, SIGABRT), as Redis writes one: which signal, and a stack trace;
/// then the signal's default action runs (exit status and core dump as
/// without the handler).
pub mod crash {
    use std::sync::atomic::{AtomicI32, Ordering};

    /// Where reports go: the log file's descriptor, else stdout.
    static FD: AtomicI32 = AtomicI32::new(1);

    const SIGNALS: [libc::c_int; 5] = [
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGFPE,
        libc::SIGILL,
        libc::SIGABRT,
    ];

    /// Sets where reports go: `fd` is the log file's (it stays open for
    /// the life of the process), `None` for stdout.
    pub fn install(fd: Option<i32>) {
        FD.store(fd.unwrap_or(1), Ordering::Relaxed);
    }

    /// Installs the handlers (`crash-log-enabled yes`) or puts back the
    /// signals' default actions (`no`: the process dies with no report, a
    /// core dump where the system makes one).
    pub fn set_enabled(on: bool) {
        for sig in SIGNALS {
            // SAFETY: installing a handler (or SIG_DFL) with a zeroed, then
            // filled sigaction; SA_RESETHAND restores the default action
            // before the handler runs, so a second fault inside it
            // terminates.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                if on {
                    sa.sa_sigaction = on_fatal as *const () as libc::sighandler_t;
                    sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESETHAND | libc::SA_ONSTACK;
                } else {
                    sa.sa_sigaction = libc::SIG_DFL;
                }
                libc::sigemptyset(&mut sa.sa_mask);
                libc::sigaction(sig, &sa, std::ptr::null_mut());
            }
        }
    }

    /// Size of the signal stack [`big_signal_stack`] gives a thread: room
    /// for the stack trace's symbolization, which the small stack Rust
    /// gives every thread (for its stack-overflow message) has not.
    const ALT_STACK: usize = 512 * 1024;

    thread_local! {
        static ALT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    /// Gives the calling thread a larger signal stack, so a crash report
    /// written on it can include the stack trace (pages are only committed
    /// when touched). Undone by [`drop_signal_stack`].
    pub fn big_signal_stack() {
        // SAFETY: mapping fresh memory and registering it as this thread's
        // signal stack; it stays mapped until `drop_signal_stack`.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                ALT_STACK,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            if p == libc::MAP_FAILED {
                return;
            }
            let st = libc::stack_t {
                ss_sp: p,
                ss_flags: 0,
                ss_size: ALT_STACK,
            };
            if libc::sigaltstack(&st, std::ptr::null_mut()) != 0 {
                libc::munmap(p, ALT_STACK);
                return;
            }
            ALT.with(|a| a.set(p as usize));
        }
    }

    /// Releases the signal stack of [`big_signal_stack`] (thread exit).
    pub fn drop_signal_stack() {
        let p = ALT.with(|a| a.replace(0));
        if p == 0 {
            return;
        }
        // SAFETY: disabling this thread's signal stack, then unmapping the
        // region this module mapped for it.
        unsafe {
            let st = libc::stack_t {
                ss_sp: std::ptr::null_mut(),
                ss_flags: libc::SS_DISABLE,
                ss_size: 0,
            };
            libc::sigaltstack(&st, std::ptr::null_mut());
            libc::munmap(p as *mut libc::c_void, ALT_STACK);
        }
    }

    fn write_all(fd: i32, mut b: &[u8]) {
        while !b.is_empty() {
            // SAFETY: writing a valid buffer to a descriptor.
            let n = unsafe { libc::write(fd, b.as_ptr().cast(), b.len()) };
            if n <= 0 {
                return;
            }
            b = &b[n as usize..];
        }
    }

    extern "C" fn on_fatal(sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
        let fd = FD.load(Ordering::Relaxed);
        let code = if info.is_null() {
            0
        } else {
            // SAFETY: the kernel passes a valid siginfo with SA_SIGINFO.
            unsafe { (*info).si_code }
        };
        // The first lines use no allocation (async-signal-safe writes of
        // fixed text and integers); the stack trace that follows allocates
        // and may fail, which is acceptable for a process already lost.
        write_all(
            fd,
            b"\n\n=== CINNABAR BUG REPORT START: Cut & paste starting from here ===\n",
        );
        let mut num = itoa::Buffer::new();
        write_all(fd, b"Cinnabar ");
        write_all(fd, env!("CARGO_PKG_VERSION").as_bytes());
        write_all(fd, b" crashed by signal: ");
        write_all(fd, num.format(sig).as_bytes());
        write_all(fd, b", si_code: ");
        write_all(fd, num.format(code).as_bytes());
        write_all(fd, b"\n\n------ STACK TRACE ------\n");
        let bt = std::backtrace::Backtrace::force_capture();
        write_all(fd, bt.to_string().as_bytes());
        write_all(
            fd,
            b"\n=== CINNABAR BUG REPORT END. Make sure to include from START to END. ===\n",
        );
        // SA_RESETHAND restored the default action: raise it again.
        // SAFETY: re-raising the signal being handled.
        unsafe {
            libc::raise(sig);
        }
    }
}
