//! Process-level settings under Redis's names: `daemonize`, `pidfile` and
//! `disable-thp`, so scripts and service managers that start redis-server
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
