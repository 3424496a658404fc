//! Process-level settings under Redis's names: `daemonize`, `pidfile`,
//! `disable-thp` and `supervised` (systemd / upstart readiness), so scripts and service managers that start redis-server
//! this way can start Cinnabar the same way.

use std::os::fd::AsRawFd;

/// The pidfile redis-server writes when daemonized without one.
pub const DEFAULT_PIDFILE: &str = "/var/run/redis.pid";

/// `daemonize yes`: forks; the parent exits at once with status 0 (the
/// command returns, as `redis-server --daemonize yes` does), the child
/// leaves the caller's session and points stdin, stdout and stderr at
/// /dev/null (logs go to `logfile`, or nowhere when it is empty, as in
/// Redis). Must run before any thread exists: the child keeps only the
/// calling thread.
pub fn daemonize() -> std::io::Result<()> {
    let devnull = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    // SAFETY: called from `main` before the runtime, the logger or any other
    // thread is started, so the child is a complete copy of the process.
    match unsafe { libc::fork() } {
        -1 => return Err(std::io::Error::last_os_error()),
        0 => {}
        _ => std::process::exit(0),
    }
    // SAFETY: plain system calls on descriptors this process owns.
    unsafe {
        libc::setsid();
        for fd in 0..=2 {
            libc::dup2(devnull.as_raw_fd(), fd);
        }
    }
    Ok(())
}

/// Where the pid goes: `pidfile`, or Redis's default when daemonized
/// without one; `None`: no pidfile.
pub fn pidfile_path(pidfile: Option<String>, daemonize: bool) -> Option<String> {
    match pidfile {
        Some(p) if !p.is_empty() => Some(p),
        _ if daemonize => Some(DEFAULT_PIDFILE.to_string()),
        _ => None,
    }
}

/// Writes this process's id to `path` (relative to `dir`, as Redis's
/// createPidFile after its chdir). A failure is logged, not fatal, as in
/// Redis.
pub fn write_pidfile(path: &str) {
    if let Err(e) = std::fs::write(path, format!("{}\n", std::process::id())) {
        tracing::warn!("Failed to write PID file {path}: {e}");
    }
}

/// Removes the pidfile at shutdown.
pub fn remove_pidfile(path: &str) {
    let _ = std::fs::remove_file(path);
}

/// `disable-thp yes` (the default): transparent huge pages off for this
/// process and its snapshot children. With THP a copy-on-write fault after
/// fork copies 2 MB instead of 4 KB, which turns every write during a
/// BGSAVE into a long stall (Redis disables it for the same reason). Where
/// THP is only on `madvise` nothing changes, since nothing here asks for
/// huge pages.
pub fn apply_disable_thp(disable: bool) {
    if !disable {
        return;
    }
    // SAFETY: prctl with integer arguments only.
    let r = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if r != 0 {
        tracing::warn!(
            "disable-thp: could not turn transparent huge pages off: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// Who to tell that the server is ready (`supervised`), resolved at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Supervisor {
    None,
    /// systemd `Type=notify`: datagrams to `NOTIFY_SOCKET`.
    Systemd(String),
    /// upstart `expect stop`: the server stops itself (SIGSTOP) when ready.
    Upstart,
}

/// Resolves `supervised` against the environment as redis-server does:
/// `auto` picks upstart when `UPSTART_JOB` is set, else systemd when
/// `NOTIFY_SOCKET` is; an explicit mode without its variable is logged
/// and ignored.
pub fn supervisor(mode: crate::config::Supervised) -> Supervisor {
    use crate::config::Supervised as S;
    let upstart = std::env::var_os("UPSTART_JOB").is_some();
    let notify = std::env::var("NOTIFY_SOCKET")
        .ok()
        .filter(|s| !s.is_empty());
    match mode {
        S::No => Supervisor::None,
        S::Upstart if upstart => Supervisor::Upstart,
        S::Upstart => {
            tracing::warn!("upstart supervision requested, but UPSTART_JOB not found!");
            Supervisor::None
        }
        S::Systemd | S::Auto => match notify {
            _ if mode == S::Auto && upstart => Supervisor::Upstart,
            Some(sock) => Supervisor::Systemd(sock),
            None if mode == S::Systemd => {
                tracing::warn!(
                    "systemd supervision requested or auto-detected, but NOTIFY_SOCKET environment variable is not set"
                );
                Supervisor::None
            }
            None => Supervisor::None,
        },
    }
}

/// The dataset is loaded and every listener accepts connections.
pub fn notify_ready(s: &Supervisor) {
    match s {
        Supervisor::None => {}
        Supervisor::Systemd(sock) => {
            tracing::info!("Supervised by systemd. Please make sure you set appropriate values for TimeoutStartSec and TimeoutStopSec in your service unit.");
            sd_notify(sock, "STATUS=Ready to accept connections\nREADY=1\n");
        }
        Supervisor::Upstart => {
            tracing::info!("Supervised by upstart, will stop to signal readiness.");
            // SAFETY: raising a signal on this process.
            unsafe { libc::raise(libc::SIGSTOP) };
        }
    }
}

/// Shutdown has begun.
pub fn notify_stopping(s: &Supervisor) {
    if let Supervisor::Systemd(sock) = s {
        sd_notify(sock, "STOPPING=1\n");
    }
}

/// Sends one datagram to systemd's notification socket (a path, or an
/// abstract name written with a leading `@`). Failures are logged.
fn sd_notify(socket: &str, msg: &str) {
    let sent = (|| -> std::io::Result<()> {
        let sock = std::os::unix::net::UnixDatagram::unbound()?;
        match socket.strip_prefix('@') {
            #[cfg(target_os = "linux")]
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
                sock.send_to_addr(msg.as_bytes(), &addr)?;
            }
            _ => {
                sock.send_to(msg.as_bytes(), socket)?;
            }
        }
        Ok(())
    })();
    if let Err(e) = sent {
        tracing::warn!("Can't send notification to systemd ({socket}): {e}");
    }
}

/// Whether Cinnabar changed the process's `oom_score_adj`, and what it was
/// before (restored when `oom-score-adj` is turned off). Atomics, not a
/// lock: a snapshot child reads them right after fork.
static OOM_ADJUSTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static OOM_BASE: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// Process classes of `oom-score-adj-values`.
pub const OOM_PRIMARY: usize = 0;
pub const OOM_REPLICA: usize = 1;
pub const OOM_BGCHILD: usize = 2;

/// Sets `/proc/self/oom_score_adj` as redis-server's `oom-score-adj`
/// does: `relative` (or `yes`) adds the class's value to the score the
/// process had before Cinnabar first changed it, `absolute` writes the
/// value, `no` puts the original back if it was changed. Clamped to
/// -1000..1000.
pub fn apply_oom_score_adj(mode: &str, values: [i64; 3], class: usize) -> std::io::Result<()> {
    use std::sync::atomic::Ordering;
    const PATH: &str = "/proc/self/oom_score_adj";
    let val = if mode == "no" {
        if !OOM_ADJUSTED.swap(false, Ordering::SeqCst) {
            return Ok(());
        }
        OOM_BASE.load(Ordering::SeqCst)
    } else {
        if !OOM_ADJUSTED.load(Ordering::SeqCst) {
            let text = std::fs::read_to_string(PATH)?;
            let base = text.trim().parse::<i64>().map_err(std::io::Error::other)?;
            OOM_BASE.store(base, Ordering::SeqCst);
            OOM_ADJUSTED.store(true, Ordering::SeqCst);
        }
        let v = values.get(class).copied().unwrap_or(0);
        let v = if mode == "absolute" {
            v
        } else {
            v + OOM_BASE.load(Ordering::SeqCst)
        };
        v.clamp(-1000, 1000)
    };
    std::fs::write(PATH, format!("{val}\n"))
}
