//! Logging through `tracing`: level from `loglevel`, output to stdout or
//! `logfile`, text or JSON (`log-format`).

use std::sync::Mutex;

use crate::config::Config;

/// Keeps the log file open for the life of the process.
pub struct LogGuard;

fn level(cfg: &Config) -> tracing::Level {
    match cfg.loglevel().as_str() {
        "debug" => tracing::Level::DEBUG,
        "verbose" => tracing::Level::DEBUG,
        "warning" | "nothing" => tracing::Level::WARN,
        _ => tracing::Level::INFO,
    }
}

/// Installs the global subscriber. Safe to call once.
pub fn init(cfg: &Config) -> LogGuard {
    let lvl = level(cfg);
    let json = cfg.log_format() == "json";
    let logfile = cfg.logfile();
    let builder = tracing_subscriber::fmt()
        .with_max_level(lvl)
        .with_target(false);
    let file = if logfile.is_empty() {
        None
    } else {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&logfile)
            .ok()
    };
    match (file, json) {
        (Some(f), true) => {
            let _ = builder
                .json()
                .with_writer(Mutex::new(f))
                .with_ansi(false)
                .try_init();
        }
        (Some(f), false) => {
            let _ = builder
                .with_writer(Mutex::new(f))
                .with_ansi(false)
                .try_init();
        }
        (None, true) => {
            let _ = builder.json().try_init();
        }
        (None, false) => {
            let _ = builder.with_ansi(false).try_init();
        }
    }
    LogGuard
}
