//! Rehearsing Azure's maintenance, failovers and reboots locally (the
//! `AZURE` command): the notices Azure Cache for Redis publishes on the
//! `AzureRedisEvents` channel, the connection drops of a failover, a
//! window in which new connections are turned away, and the data a reboot
//! of both nodes leaves behind.
//!
//! One rehearsal runs at a time. Nothing here touches the hot path except
//! one relaxed load per accepted connection (see [`Rehearsal::turning_away`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::commands::dispatch::unix_ms;
use crate::server::pubsub::Kind;
use crate::server::Server;

/// The channel Azure publishes maintenance notices on.
pub const CHANNEL: &str = "AzureRedisEvents";

/// Azure's notification types, in the order a maintenance sends them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    Scheduled,
    Starting,
    Start,
    FailoverComplete,
    Ended,
}

impl Notice {
    pub fn name(self) -> &'static str {
        match self {
            Notice::Scheduled => "NodeMaintenanceScheduled",
            Notice::Starting => "NodeMaintenanceStarting",
            Notice::Start => "NodeMaintenanceStart",
            Notice::FailoverComplete => "NodeMaintenanceFailoverComplete",
            Notice::Ended => "NodeMaintenanceEnded",
        }
    }

    /// Azure leaves `StartTimeInUTC` out of the notices sent when the
    /// moment has come or passed.
    fn has_start_time(self) -> bool {
        matches!(self, Notice::Scheduled | Notice::Starting | Notice::Ended)
    }
}

/// What a rehearsal is doing, shared with the accept loops.
#[derive(Default)]
pub struct Rehearsal {
    active: AtomicBool,
    /// New connections are closed at once until this Unix time (ms).
    refuse_until_ms: AtomicU64,
    /// Connections turned away so far (`AZURE STATUS`).
    pub refused: AtomicU64,
}

/// Releases the one-rehearsal-at-a-time slot when the rehearsal ends,
/// also if its task is dropped at shutdown.
pub struct Slot(Arc<Server>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.rehearsal.active.store(false, Ordering::SeqCst);
    }
}

impl Rehearsal {
    /// Takes the slot, or `None` while another rehearsal runs.
    pub fn begin(srv: &Arc<Server>) -> Option<Slot> {
        srv.rehearsal
            .active
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .ok()
            .map(|_| Slot(srv.clone()))
    }

    /// Is a new connection to be closed without being served?
    #[inline]
    pub fn turning_away(&self) -> bool {
        let until = self.refuse_until_ms.load(Ordering::Relaxed);
        if until == 0 {
            return false;
        }
        if unix_ms() < until {
            self.refused.fetch_add(1, Ordering::Relaxed);
            true
        } else {
            false
        }
    }

    /// Turns new connections away for `ms` from now.
    pub fn refuse_for(&self, ms: u64) {
        self.refuse_until_ms
            .store(unix_ms().saturating_add(ms), Ordering::SeqCst);
    }

    /// Serves new connections again.
    pub fn reopen(&self) {
        self.refuse_until_ms.store(0, Ordering::SeqCst);
    }

    /// Milliseconds left in the current window (0 when serving).
    pub fn refusing_ms(&self) -> u64 {
        self.refuse_until_ms
            .load(Ordering::Relaxed)
            .saturating_sub(unix_ms())
    }

    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }
}

/// `2021-09-23T12:34:19`: the sortable UTC form Azure's notices carry.
pub fn utc_stamp(unix_secs: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(unix_secs as i64)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The address and ports a notice names: the first address bound for
/// plain TCP (loopback when only TLS is on), the bound plain port (0 when
/// off) and `tls-port`.
fn node(srv: &Server) -> (String, u16, u16) {
    let first = srv.bound.lock().first().copied();
    let ip = first
        .map(|a| a.ip())
        .filter(|ip| !ip.is_unspecified())
        .map_or_else(|| "127.0.0.1".to_string(), |ip| ip.to_string());
    let plain = first.map_or(0, |a| a.port());
    (ip, srv.config.tls_port(), plain)
}

/// One notice in Azure's pipe-delimited key|value form.
pub fn message(srv: &Server, notice: Notice, start_secs: u64, replica: bool) -> String {
    let (ip, ssl, plain) = node(srv);
    let mut m = format!("NotificationType|{}", notice.name());
    if notice.has_start_time() {
        m.push_str("|StartTimeInUTC|");
        m.push_str(&utc_stamp(start_secs));
    }
    m.push_str(&format!(
        "|IsReplica|{}|IPAddress|{ip}|SSLPort|{ssl}|NonSSLPort|{plain}",
        if replica { "True" } else { "False" }
    ));
    m
}

/// Publishes a notice on `AzureRedisEvents` to this server's subscribers
/// (not propagated: each Azure node sends its own).
pub fn publish(srv: &Server, notice: Notice, start_secs: u64, replica: bool) -> usize {
    let msg = message(srv, notice, start_secs, replica);
    tracing::warn!("Azure rehearsal: {msg}");
    srv.pubsub.publish(
        &srv.config,
        Kind::Global,
        CHANNEL.as_bytes(),
        msg.as_bytes(),
    )
}

/// Closes every client connection except replication links (`except`: the
/// caller, who is closed after its reply instead). Returns how many.
pub fn drop_clients(srv: &Server, except: Option<u64>) -> usize {
    let targets: Vec<_> = srv
        .clients
        .iter()
        .map(|c| c.value().clone())
        .filter(|c| {
            !c.replica.load(Ordering::Relaxed)
                && !c.master.load(Ordering::Relaxed)
                && Some(c.id) != except
        })
        .collect();
    for c in &targets {
        c.request_kill();
    }
    targets.len()
}

/// A planned maintenance, as `AZURE MAINTENANCE` describes it.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// The replica node is the one maintained: no failover, no drops.
    pub replica: bool,
    /// Seconds from now until the maintenance starts.
    pub start_in: u64,
    /// Milliseconds new connections are turned away after the drop.
    pub downtime_ms: u64,
    /// Seconds from the start until `NodeMaintenanceEnded`.
    pub end_after: u64,
}

/// Azure sends `NodeMaintenanceStarting` about this long ahead.
pub const STARTING_LEAD_SECS: u64 = 20;
/// `NodeMaintenanceFailoverComplete` follows the reopening by this much,
/// so reconnecting clients have subscribed again when it is sent.
pub const FAILOVER_NOTICE_DELAY_MS: u64 = 1000;

impl Plan {
    /// The notices and when they are sent, in ms from now.
    pub fn timeline(&self) -> Vec<(u64, Notice)> {
        let start = self.start_in * 1000;
        let mut t = vec![
            (0, Notice::Scheduled),
            (
                start.saturating_sub(STARTING_LEAD_SECS * 1000),
                Notice::Starting,
            ),
            (start, Notice::Start),
        ];
        let end = start + self.end_after * 1000;
        if !self.replica {
            let failover = start + self.downtime_ms + FAILOVER_NOTICE_DELAY_MS;
            t.push((failover, Notice::FailoverComplete));
            t.push((end.max(failover), Notice::Ended));
        } else {
            t.push((end.max(start + self.downtime_ms), Notice::Ended));
        }
        t
    }
}

/// Runs a maintenance to its end: the notices at their times; at the
/// start, for the primary, every client connection is closed and new ones
/// are turned away for the downtime (a replica's maintenance only drops
/// the replication links of this server's own replicas).
pub async fn run_maintenance(slot: Slot, plan: Plan) {
    let srv = slot.0.clone();
    let t0 = tokio::time::Instant::now();
    let t0_secs = unix_ms() / 1000;
    let start_secs = t0_secs + plan.start_in;
    let mut rx = srv.shutdown_receiver();
    for (at, notice) in plan.timeline() {
        let when = t0 + Duration::from_millis(at);
        tokio::select! {
            _ = tokio::time::sleep_until(when) => {}
            _ = rx.changed() => return,
        }
        let stamp = match notice {
            Notice::Ended => unix_ms() / 1000,
            _ => start_secs,
        };
        publish(&srv, notice, stamp, plan.replica);
        if notice == Notice::Start {
            if plan.replica {
                srv.repl.disconnect_replicas();
            } else {
                // The failover: connections through the load balancer
                // close, and new ones fail until the replica has taken
                // over. Let the Start notice reach its subscribers first.
                tokio::time::sleep(Duration::from_millis(50)).await;
                srv.rehearsal.refuse_for(plan.downtime_ms);
                srv.metrics
                    .count(crate::server::metrics::ErrorType::Failover);
                let n = drop_clients(&srv, None);
                tracing::warn!(
                    "Azure rehearsal: failover, {n} connections closed, new ones turned away for {} ms",
                    plan.downtime_ms
                );
            }
        }
    }
    srv.rehearsal.reopen();
    drop(slot);
}

/// Reopens after a reboot's downtime and releases the slot.
pub async fn reopen_after(slot: Slot, downtime_ms: u64) {
    tokio::time::sleep(Duration::from_millis(downtime_ms)).await;
    slot.0.rehearsal.reopen();
}

/// Both nodes of the cache restarted: the dataset becomes what a restart
/// of this server would load (the AOF when `appendonly yes`, else the RDB
/// file if there is one, else nothing), the function libraries with it.
/// Replicas are dropped and the replication history restarts under a new
/// id. Runs on a blocking thread while clients get `-LOADING`.
pub fn reload_as_restart(srv: &Arc<Server>) -> Result<(), String> {
    use crate::persistence::snapshot;
    snapshot::kill_child(srv, None);
    let before = srv.keyspace.total_keys();
    srv.persist.begin_loading();
    let r = (|| {
        if srv.feed.aof_active() {
            // What the AOF holds on disk is what a restart replays.
            snapshot::flush_aof(srv).map_err(|e| format!("flushing the AOF: {e}"))?;
            let (dir, manifest) = snapshot::aof_manifest_on_disk(srv)?;
            srv.keyspace.clear_all();
            srv.functions.flush();
            snapshot::load_aof(srv, &dir, &manifest).map(|_| ())
        } else {
            srv.keyspace.clear_all();
            srv.functions.flush();
            snapshot::load_rdb_at_boot(srv)
        }
    })();
    srv.feed.drop_backlog();
    srv.repl.adopt_id(crate::server::replication::random_id());
    srv.repl.disconnect_replicas();
    srv.persist
        .dirty_at_save
        .store(srv.stats.dirty.load(Ordering::Relaxed), Ordering::Relaxed);
    srv.persist.loading.store(false, Ordering::SeqCst);
    if let Err(e) = &r {
        tracing::warn!("Azure rehearsal: reloading after the reboot failed: {e}");
        srv.keyspace.clear_all();
    }
    // Keys the restart did not bring back: Azure's Dataloss.
    if srv.keyspace.total_keys() < before {
        srv.metrics
            .count(crate::server::metrics::ErrorType::Dataloss);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_utc_and_sortable() {
        assert_eq!(utc_stamp(0), "1970-01-01T00:00:00");
        assert_eq!(utc_stamp(1_632_400_459), "2021-09-23T12:34:19");
    }

    #[test]
    fn timeline_orders_the_notices() {
        let p = Plan {
            replica: false,
            start_in: 30,
            downtime_ms: 2000,
            end_after: 1,
        };
        let t = p.timeline();
        let names: Vec<_> = t.iter().map(|(_, n)| *n).collect();
        assert_eq!(
            names,
            [
                Notice::Scheduled,
                Notice::Starting,
                Notice::Start,
                Notice::FailoverComplete,
                Notice::Ended
            ]
        );
        assert_eq!(t[1].0, 10_000);
        assert_eq!(t[2].0, 30_000);
        assert_eq!(t[3].0, 33_000);
        // Never ends before the failover completed.
        assert_eq!(t[4].0, 33_000);
        assert!(t.windows(2).all(|w| w[0].0 <= w[1].0));
        // A replica's maintenance ends no sooner than its downtime.
        let r = Plan { replica: true, ..p }.timeline();
        assert_eq!(r.len(), 4);
        assert_eq!(r[3], (32_000, Notice::Ended));
    }
}
