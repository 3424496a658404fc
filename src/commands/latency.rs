//! LATENCY LATEST / HISTORY / RESET / GRAPH / DOCTOR / HISTOGRAM / HELP
//! over [`crate::server::latency`].

use bytes::Bytes;

use crate::commands::connection::help_reply;
use crate::commands::ctx::Ctx;
use crate::commands::spec::{cmd, container, CmdFlags as F, CommandSpec};
use crate::commands::table::{table, CommandEntry};
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::server::latency::EventLog;

pub const SPECS: &[CommandSpec] = &[container("latency", SUBS).doc(
    "server",
    "2.8.13",
    "A container for latency diagnostics commands.",
)];

const ADM: F = F::ADMIN
    .union(F::NOSCRIPT)
    .union(F::LOADING)
    .union(F::STALE);

const SUBS: &[CommandSpec] = &[
    cmd("latest", 2, ADM, latest).doc(
        "server",
        "2.8.13",
        "Returns the latest latency samples for all events.",
    ),
    cmd("history", 3, ADM, history).doc(
        "server",
        "2.8.13",
        "Returns timestamp-latency samples for an event.",
    ),
    cmd("reset", -2, ADM, reset).doc(
        "server",
        "2.8.13",
        "Resets the latency data for one or more events.",
    ),
    cmd("graph", 3, ADM, graph).doc("server", "2.8.13", "Returns a latency graph for an event."),
    cmd("doctor", 2, ADM, doctor).doc(
        "server",
        "2.8.13",
        "Returns a human-readable latency analysis report.",
    ),
    cmd("histogram", -2, ADM, histogram).doc(
        "server",
        "7.0.0",
        "Returns the cumulative distribution of latencies of a subset or all commands.",
    ),
    cmd("help", 2, F::LOADING.union(F::STALE), help).doc(
        "server",
        "2.8.13",
        "Returns helpful text about the different subcommands.",
    ),
];

fn now_secs() -> u64 {
    crate::commands::dispatch::unix_ms() / 1000
}

/// `[[event, time, latest ms, max ms] ...]`
fn latest(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    let events = ctx.srv.latency.snapshot();
    Ok(Reply::Array(
        events
            .into_iter()
            .filter_map(|(name, log)| {
                let (t, ms) = *log.samples.back()?;
                Some(Reply::Array(vec![
                    Reply::Bulk(Bytes::from_static(name.as_bytes())),
                    Reply::Int(t as i64),
                    Reply::Int(ms as i64),
                    Reply::Int(log.max as i64),
                ]))
            })
            .collect(),
    ))
}

/// `[[time, ms] ...]`, oldest first.
fn history(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let samples = ctx
        .srv
        .latency
        .history(&argv[2])
        .map(|l| l.samples)
        .unwrap_or_default();
    Ok(Reply::Array(
        samples
            .into_iter()
            .map(|(t, ms)| Reply::Array(vec![Reply::Int(t as i64), Reply::Int(ms as i64)]))
            .collect(),
    ))
}

fn reset(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let names: Vec<&[u8]> = argv[2..].iter().map(|a| &a[..]).collect();
    Ok(Reply::Int(ctx.srv.latency.reset(&names) as i64))
}

/// Columns of LATENCY GRAPH (as Redis's LATENCY_GRAPH_COLS).
const GRAPH_COLS: usize = 80;
/// Height of the graph in rows.
const GRAPH_ROWS: u64 = 4;

/// How long ago `t` was, as Redis labels samples: `12s`, `5m`, `3h`, `2d`.
fn ago(now: u64, t: u64) -> String {
    let e = now.saturating_sub(t);
    match e {
        0..=59 => format!("{e}s"),
        60..=3599 => format!("{}m", e / 60),
        3600..=86_399 => format!("{}h", e / 3600),
        _ => format!("{}d", e / 86_400),
    }
}

/// An ASCII chart of an event's samples: one column per sample (the most
/// recent 80), bars scaled between the lowest and highest sample, and
/// under each column, written downwards, how long ago it was taken.
fn render_graph(name: &str, log: &EventLog, now: u64) -> String {
    let samples: Vec<(u64, u64)> = log
        .samples
        .iter()
        .skip(log.samples.len().saturating_sub(GRAPH_COLS))
        .copied()
        .collect();
    let max = samples.iter().map(|s| s.1).max().unwrap_or(0);
    let min = samples.iter().map(|s| s.1).min().unwrap_or(0);
    let mut out = format!(
        "{name} - high {max} ms, low {min} ms (all time high {} ms)\n{}\n",
        log.max,
        "-".repeat(GRAPH_COLS)
    );
    // Bar height of each sample: 1..=GRAPH_ROWS (a flat series is full).
    let heights: Vec<u64> = samples
        .iter()
        .map(|&(_, ms)| {
            if max == min {
                GRAPH_ROWS
            } else {
                1 + (ms - min) * (GRAPH_ROWS - 1) / (max - min)
            }
        })
        .collect();
    for row in (1..=GRAPH_ROWS).rev() {
        let line: String = heights
            .iter()
            .map(|&h| if h >= row { '#' } else { ' ' })
            .collect();
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let labels: Vec<Vec<char>> = samples
        .iter()
        .map(|&(t, _)| ago(now, t).chars().collect())
        .collect();
    let depth = labels.iter().map(|l| l.len()).max().unwrap_or(0);
    for r in 0..depth {
        let line: String = labels
            .iter()
            .map(|l| l.get(r).copied().unwrap_or(' '))
            .collect();
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn graph(ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let events = ctx.srv.latency.snapshot();
    let found = events
        .iter()
        .find(|(k, _)| k.as_bytes().eq_ignore_ascii_case(&argv[2]));
    let Some((name, log)) = found else {
        return Err(CmdError::err(format!(
            "No samples available for event '{}'",
            String::from_utf8_lossy(&argv[2])
        )));
    };
    Ok(Reply::Verbatim(
        *b"txt",
        Bytes::from(render_graph(name, log, now_secs())),
    ))
}

/// What each event means, and what usually helps.
fn advice(event: &str) -> &'static str {
    match event {
        "command" => "Slow commands (see SLOWLOG GET): avoid O(N) commands such as KEYS, SMEMBERS or LRANGE 0 -1 on large values, or split big values.",
        "fast-command" => "Commands that are normally O(1) or O(log N) ran slowly: the machine was likely short of CPU (check other processes, CPU steal on virtual machines).",
        "fork" => "fork() for BGSAVE or an AOF rewrite held clients: its cost grows with the dataset's page tables; schedule saves less often or keep the dataset smaller.",
        "expire-cycle" => "The active expiry cycle removed many keys, or big ones, at once: spread expiry times or use UNLINK-friendly (lazyfree) settings.",
        _ => "",
    }
}

/// A readable summary of the monitored events.
fn doctor(ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    let events = ctx.srv.latency.snapshot();
    let threshold = ctx.srv.config.latency_monitor_threshold();
    let mut out = String::new();
    if threshold == 0 {
        out.push_str(
            "The latency monitor is off: CONFIG SET latency-monitor-threshold <milliseconds> to record events that take at least that long.\n",
        );
    } else if events.is_empty() {
        out.push_str(&format!(
            "No event reached the latency threshold of {threshold} ms since the monitor was started or last reset.\n"
        ));
    } else {
        out.push_str(&format!(
            "Latency events of at least {threshold} ms, per event class:\n\n"
        ));
        for (i, (name, log)) in events.iter().enumerate() {
            let n = log.samples.len() as u64;
            let sum: u64 = log.samples.iter().map(|s| s.1).sum();
            let avg = sum / n.max(1);
            let dev = log.samples.iter().map(|s| s.1.abs_diff(avg)).sum::<u64>() / n.max(1);
            let period = match (log.samples.front(), log.samples.back()) {
                (Some(a), Some(b)) if n > 1 => (b.0 - a.0) / (n - 1),
                _ => 0,
            };
            out.push_str(&format!(
                "{}. {name}: {n} latency spikes (average {avg}ms, mean deviation {dev}ms, period {period} sec). Worst all time event {}ms.\n   {}\n",
                i + 1,
                log.max,
                advice(name)
            ));
        }
    }
    Ok(Reply::Verbatim(*b"txt", Bytes::from(out)))
}

/// One command's histogram as LATENCY HISTOGRAM answers it.
fn histogram_reply(e: &CommandEntry) -> Option<(Reply, Reply)> {
    let (calls, points) = e.latency.cdf()?;
    Some((
        Reply::Bulk(Bytes::from(e.full_name.clone())),
        Reply::Map(vec![
            (
                Reply::Bulk(Bytes::from_static(b"calls")),
                Reply::Int(calls as i64),
            ),
            (
                Reply::Bulk(Bytes::from_static(b"histogram_usec")),
                Reply::Map(
                    points
                        .into_iter()
                        .map(|(us, n)| (Reply::Int(us as i64), Reply::Int(n as i64)))
                        .collect(),
                ),
            ),
        ]),
    ))
}

/// ```text
/// LATENCY HISTOGRAM [command ...]
/// ```
/// Every command with calls, or the named ones (a container names its
/// subcommands; unknown names are skipped).
fn histogram(_ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let t = table();
    let mut out = Vec::new();
    if argv.len() == 2 {
        out.extend(t.all().filter_map(histogram_reply));
    } else {
        for name in &argv[2..] {
            let name = String::from_utf8_lossy(name).to_ascii_lowercase();
            let Some(e) = t.get(&name) else { continue };
            if e.spec.subcommands.is_empty() {
                out.extend(histogram_reply(e));
            } else {
                out.extend(
                    t.all()
                        .filter(|s| s.parent.is_some_and(|p| std::ptr::eq(p, e.spec)))
                        .filter_map(histogram_reply),
                );
            }
        }
    }
    Ok(Reply::Map(out))
}

fn help(_ctx: &mut Ctx<'_>, _argv: &[Bytes]) -> CmdResult {
    Ok(help_reply(
        "LATENCY",
        &[
            "DOCTOR",
            "    Return a human readable latency analysis report.",
            "GRAPH <event>",
            "    Return an ASCII latency graph for the <event> class.",
            "HISTORY <event>",
            "    Return time-latency samples for the <event> class.",
            "LATEST",
            "    Return the latest latency samples for all events.",
            "RESET [<event> ...]",
            "    Reset latency data of one or more <event> classes.",
            "    (default: reset all data for all event classes)",
            "HISTOGRAM [COMMAND ...]",
            "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
            "    If no commands are specified then all histograms are replied.",
        ],
    ))
}
