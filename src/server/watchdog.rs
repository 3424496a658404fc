//! The software watchdog (`watchdog-period`, milliseconds, 0 = off): a
//! command that has run longer than the period is reported in the log
//! with the stack of the thread running it, as Redis's watchdog reports a
//! main thread that did not return to its event loop in time.
//!
//! Cinnabar has no single main thread, so what is watched is each command
//! handler (dispatch's `invoke`). While the watchdog is on, every thread
//! that runs a handler publishes when it started it and which command it
//! is; a watchdog thread looks every few milliseconds and, once per
//! command that overruns, asks that thread for its stack with a signal.
//! The signal handler only calls glibc's `backtrace()` into a static array
//! (async-signal-safe once it has run once, which [`set_period`] ensures);
//! the watchdog thread resolves the addresses to names and logs them. The
//! handler is installed with SA_RESTART, so an interrupted system call
//! resumes. Off, the cost per command is one relaxed atomic load.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;

/// `watchdog-period` in milliseconds (0: off).
static PERIOD_MS: AtomicU64 = AtomicU64::new(0);

/// One thread that runs command handlers.
struct Slot {
    thread: libc::pthread_t,
    name: String,
    /// When the running command started (Unix ms), 0 when idle.
    started: AtomicU64,
    /// The `started` already reported (one report per overrun).
    reported: AtomicU64,
    /// The command running (parent, name) and its client.
    what: Mutex<(Option<&'static str>, &'static str, u64)>,
}

static SLOTS: Mutex<Vec<Arc<Slot>>> = Mutex::new(Vec::new());

/// This thread's slot, registered on first use and unregistered when the
/// thread ends (so no signal is ever sent to a thread that is gone).
struct Mine(Arc<Slot>);

impl Drop for Mine {
    fn drop(&mut self) {
        SLOTS.lock().retain(|s| !Arc::ptr_eq(s, &self.0));
    }
}

thread_local! {
    static MINE: Mine = {
        let slot = Arc::new(Slot {
            // SAFETY: pthread_self has no preconditions.
            thread: unsafe { libc::pthread_self() },
            name: std::thread::current().name().unwrap_or("unnamed").to_string(),
            started: AtomicU64::new(0),
            reported: AtomicU64::new(0),
            what: Mutex::new((None, "", 0)),
        });
        SLOTS.lock().push(slot.clone());
        Mine(slot)
    };
}

/// Marks the end of a watched command.
pub struct Watched(Arc<Slot>);

impl Drop for Watched {
    fn drop(&mut self) {
        self.0.started.store(0, Ordering::Release);
    }
}

/// Called as a handler starts: `None` (nothing to do) while the watchdog
/// is off.
#[inline]
pub fn enter(parent: Option<&'static str>, name: &'static str, client: u64) -> Option<Watched> {
    if PERIOD_MS.load(Ordering::Relaxed) == 0 {
        return None;
    }
    let Ok(slot) = MINE.try_with(|m| m.0.clone()) else {
        return None;
    };
    if slot.started.load(Ordering::Relaxed) != 0 {
        // A command inside a command (EXEC, a script): the outer one is
        // the one that overruns.
        return None;
    }
    *slot.what.lock() = (parent, name, client);
    slot.started.store(
        crate::commands::dispatch::unix_ms().max(1),
        Ordering::Release,
    );
    Some(Watched(slot))
}

/// The stack the signal handler captured.
const FRAMES: usize = 64;
static STACK: Mutex<()> = Mutex::new(());
static mut ADDRS: [*mut libc::c_void; FRAMES] = [std::ptr::null_mut(); FRAMES];
static DEPTH: AtomicI32 = AtomicI32::new(-1);
static CAPTURED: AtomicBool = AtomicBool::new(false);

extern "C" {
    /// glibc's `backtrace(3)`.
    #[link_name = "backtrace"]
    fn glibc_backtrace(buffer: *mut *mut libc::c_void, size: libc::c_int) -> libc::c_int;
}

extern "C" fn on_signal(_sig: libc::c_int) {
    // SAFETY: only the watchdog thread requests a capture, one at a time
    // (it holds STACK and waits for CAPTURED), so nothing else touches
    // ADDRS meanwhile; backtrace() has been called once already.
    unsafe {
        let n = glibc_backtrace(std::ptr::addr_of_mut!(ADDRS).cast(), FRAMES as libc::c_int);
        DEPTH.store(n, Ordering::Relaxed);
    }
    CAPTURED.store(true, Ordering::Release);
}

fn signal_number() -> libc::c_int {
    libc::SIGRTMIN() + 3
}

/// Applies `watchdog-period` (CONFIG SET and startup): starts the watchdog
/// thread and installs the signal handler the first time it is on.
pub fn set_period(ms: u64) {
    PERIOD_MS.store(ms, Ordering::Relaxed);
    if ms == 0 {
        return;
    }
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        // Loads the unwinder now, outside any signal handler.
        let mut warm = [std::ptr::null_mut(); 4];
        // SAFETY: a valid buffer of 4 pointers.
        unsafe { glibc_backtrace(warm.as_mut_ptr(), 4) };
        // SAFETY: installing a handler with a zeroed, then filled
        // sigaction for a real-time signal nothing else uses.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESTART | libc::SA_ONSTACK;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(signal_number(), &sa, std::ptr::null_mut());
        }
        let spawned = std::thread::Builder::new()
            .name("cinnabar-watchdog".into())
            .spawn(watch);
        if let Err(e) = spawned {
            tracing::warn!("could not start the watchdog thread: {e}");
        }
    });
}

fn watch() {
    loop {
        let period = PERIOD_MS.load(Ordering::Relaxed);
        let nap = if period == 0 {
            100
        } else {
            (period / 4).clamp(5, 100)
        };
        std::thread::sleep(Duration::from_millis(nap));
        if period == 0 {
            continue;
        }
        let now = crate::commands::dispatch::unix_ms();
        let slots: Vec<Arc<Slot>> = SLOTS.lock().clone();
        for s in slots {
            let started = s.started.load(Ordering::Acquire);
            if started == 0
                || now.saturating_sub(started) < period
                || s.reported.load(Ordering::Relaxed) == started
            {
                continue;
            }
            s.reported.store(started, Ordering::Relaxed);
            report(&s, now - started);
        }
    }
}

fn report(s: &Slot, ran_ms: u64) {
    let (parent, name, client) = *s.what.lock();
    let cmd = match parent {
        Some(p) => format!("{p} {name}"),
        None => name.to_string(),
    };
    let frames = capture(s);
    let mut text = format!(
        "\n--- WATCHDOG TIMER EXPIRED ---\n'{cmd}' from client id={client} has run for {ran_ms} ms on thread {}\n",
        s.name
    );
    if frames.is_empty() {
        text.push_str("(no stack: the thread did not answer)\n");
    }
    for (i, f) in frames.iter().enumerate() {
        text.push_str(&format!("{i:>3}: {f}\n"));
    }
    text.push_str("--------");
    tracing::warn!("{text}");
}

/// Asks the slot's thread for its stack and names the frames.
fn capture(s: &Slot) -> Vec<String> {
    let _one = STACK.lock();
    CAPTURED.store(false, Ordering::Release);
    DEPTH.store(-1, Ordering::Relaxed);
    {
        // Holding the registry keeps the thread from unregistering, that
        // is from ending, until its stack is taken (`Mine::drop`).
        let slots = SLOTS.lock();
        if !slots.iter().any(|x| std::ptr::eq(Arc::as_ptr(x), s)) {
            return Vec::new();
        }
        // SAFETY: signalling a live thread of this process (registered,
        // and it cannot end while the registry is held).
        let rc = unsafe { libc::pthread_kill(s.thread, signal_number()) };
        if rc != 0 {
            return Vec::new();
        }
        for _ in 0..200 {
            if CAPTURED.load(Ordering::Acquire) {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    if !CAPTURED.load(Ordering::Acquire) {
        return Vec::new();
    }
    let n = DEPTH.load(Ordering::Relaxed).max(0) as usize;
    // SAFETY: the handler finished writing (CAPTURED) and no other capture
    // runs while STACK is held.
    let addrs: Vec<usize> = unsafe {
        let base = std::ptr::addr_of!(ADDRS).cast::<*mut libc::c_void>();
        (0..n.min(FRAMES)).map(|i| *base.add(i) as usize).collect()
    };
    let mut out = Vec::new();
    for a in addrs {
        let mut names = Vec::new();
        backtrace_resolve(a, &mut names);
        if names.is_empty() {
            names.push(format!("{a:#x}"));
        }
        out.extend(names);
    }
    // Parsing the binary's debug information takes tens of megabytes,
    // which would count against maxmemory: let it go at once.
    ::backtrace::clear_symbol_cache();
    // The first frames are the signal handler's own and the kernel's
    // signal trampoline (which has no name).
    let first = out
        .iter()
        .position(|f| !f.contains("watchdog::on_signal") && !f.starts_with("0x"))
        .unwrap_or(0);
    out.split_off(first)
}

/// Names of the functions at `addr` (inlined ones included), innermost
/// first.
fn backtrace_resolve(addr: usize, names: &mut Vec<String>) {
    // A return address points after the call; look one byte back.
    let pc = addr.saturating_sub(1) as *mut std::ffi::c_void;
    ::backtrace::resolve(pc, |sym| {
        let name = sym
            .name()
            .map(|n| format!("{n:#}"))
            .unwrap_or_else(|| format!("{addr:#x}"));
        match (sym.filename(), sym.lineno()) {
            (Some(f), Some(l)) => names.push(format!("{name} at {}:{l}", f.display())),
            _ => names.push(name),
        }
    });
}
