//! Server-wide counters for INFO (stats section, errorstats) and the
//! instantaneous ops/sec sampler.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::protocol::CmdError;
use crate::server::Server;

const SAMPLES: usize = 16;

/// Counters updated on every command are striped per thread: two worker
/// threads incrementing one shared cache line would bounce it between cores
/// on every command. Each stripe is a cache line of eight counters.
#[repr(align(64))]
#[derive(Default)]
pub struct Stripe(pub [AtomicU64; 8]);

/// A set of eight counters, striped by thread.
pub struct Striped {
    stripes: Box<[Stripe]>,
}

pub(crate) fn stripe_count() -> usize {
    static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *N.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .clamp(1, 16)
    })
}

pub(crate) fn my_stripe() -> usize {
    use std::sync::atomic::AtomicUsize;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        // Already reduced: no division per count.
        static IDX: usize = NEXT.fetch_add(1, Ordering::Relaxed) % stripe_count();
    }
    IDX.with(|i| *i)
}

impl Default for Striped {
    fn default() -> Self {
        Striped {
            stripes: (0..stripe_count()).map(|_| Stripe::default()).collect(),
        }
    }
}

impl Striped {
    #[inline]
    pub fn add(&self, which: usize, n: u64) {
        self.stripes[my_stripe()].0[which].fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self, which: usize) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.0[which].load(Ordering::Relaxed))
            .sum()
    }

    pub fn reset(&self) {
        for s in self.stripes.iter() {
            for c in &s.0 {
                c.store(0, Ordering::Relaxed);
            }
        }
    }
}

/// INFO's `instantaneous_*` rates.
pub struct Instantaneous {
    pub ops: u64,
    pub input_kbps: f64,
    pub output_kbps: f64,
    pub repl_input_kbps: f64,
    pub repl_output_kbps: f64,
}

#[derive(Default)]
pub struct Stats {
    /// Hot counters (per command / per read), striped: see [`Striped`].
    pub hot: Striped,
    pub connections_received: AtomicU64,
    pub rejected_connections: AtomicU64,
    /// Clients closed by `maxmemory-clients` (INFO evicted_clients).
    pub evicted_clients: AtomicU64,
    /// Changes since start (rdb_changes_since_last_save is derived).
    pub dirty: AtomicU64,
    pub error_replies: AtomicU64,
    /// Errors a replica's primary stream or the AOF replay got from a
    /// command (INFO unexpected_error_replies): data the two sides no
    /// longer agree on.
    pub unexpected_errors: AtomicU64,
    pub evicted_keys: AtomicU64,
    /// Replication traffic, kept apart from the clients' (as Redis 7):
    /// what a replica reads from its primary, what a primary sends its
    /// replicas (snapshots included).
    pub repl_input: AtomicU64,
    pub repl_output: AtomicU64,
    peak_memory: AtomicU64,
    errors: Mutex<HashMap<String, u64>>,
    ops_samples: Mutex<OpsSamples>,
}

#[derive(Default)]
struct OpsSamples {
    last_commands: u64,
    last_input: u64,
    last_output: u64,
    last_repl_input: u64,
    last_repl_output: u64,
    ops: [u64; SAMPLES],
    input: [u64; SAMPLES],
    output: [u64; SAMPLES],
    repl_input: [u64; SAMPLES],
    repl_output: [u64; SAMPLES],
    idx: usize,
}

impl Stats {
    pub const COMMANDS: usize = 0;
    pub const NET_INPUT: usize = 1;
    pub const NET_OUTPUT: usize = 2;
    /// Socket reads and reply writes of client connections
    /// (`total_reads_processed`, `total_writes_processed`).
    pub const READS: usize = 3;
    pub const WRITES: usize = 4;

    pub fn commands(&self) -> u64 {
        self.hot.get(Self::COMMANDS)
    }
    pub fn net_input(&self) -> u64 {
        self.hot.get(Self::NET_INPUT)
    }
    pub fn net_output(&self) -> u64 {
        self.hot.get(Self::NET_OUTPUT)
    }

    pub fn count_error(&self, e: &CmdError) {
        self.count_error_code(e.code());
    }

    pub fn count_error_code(&self, code: &str) {
        self.error_replies.fetch_add(1, Ordering::Relaxed);
        let mut m = self.errors.lock();
        if let Some(n) = m.get_mut(code) {
            *n += 1;
        } else if m.len() < 128 {
            m.insert(code.to_string(), 1);
        }
    }

    /// Records `used` as a memory sample and returns the peak so far.
    pub fn note_peak_memory(&self, used: u64) -> u64 {
        self.peak_memory
            .fetch_max(used, Ordering::Relaxed)
            .max(used)
    }

    /// (code, count) pairs for INFO errorstats, sorted by code.
    pub fn error_counts(&self) -> Vec<(String, u64)> {
        let mut v: Vec<_> = self
            .errors
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        v.sort();
        v
    }

    pub fn reset(&self) {
        self.hot.reset();
        self.connections_received.store(0, Ordering::Relaxed);
        self.rejected_connections.store(0, Ordering::Relaxed);
        self.error_replies.store(0, Ordering::Relaxed);
        self.unexpected_errors.store(0, Ordering::Relaxed);
        self.evicted_keys.store(0, Ordering::Relaxed);
        self.evicted_clients.store(0, Ordering::Relaxed);
        self.repl_input.store(0, Ordering::Relaxed);
        self.repl_output.store(0, Ordering::Relaxed);
        self.errors.lock().clear();
    }

    /// Averages over the last samples.
    pub fn instantaneous(&self) -> Instantaneous {
        let s = self.ops_samples.lock();
        let avg = |a: &[u64; SAMPLES]| a.iter().sum::<u64>() / SAMPLES as u64;
        let kbps = |a: &[u64; SAMPLES]| avg(a) as f64 / 1024.0;
        Instantaneous {
            ops: avg(&s.ops),
            input_kbps: kbps(&s.input),
            output_kbps: kbps(&s.output),
            repl_input_kbps: kbps(&s.repl_input),
            repl_output_kbps: kbps(&s.repl_output),
        }
    }

    fn sample(&self, period: Duration) {
        let mut s = self.ops_samples.lock();
        let c = self.commands();
        let i = self.net_input();
        let o = self.net_output();
        let ri = self.repl_input.load(Ordering::Relaxed);
        let ro = self.repl_output.load(Ordering::Relaxed);
        let per_sec = |d: u64| (d as f64 / period.as_secs_f64()) as u64;
        let idx = s.idx;
        s.ops[idx] = per_sec(c.saturating_sub(s.last_commands));
        s.input[idx] = per_sec(i.saturating_sub(s.last_input));
        s.output[idx] = per_sec(o.saturating_sub(s.last_output));
        s.repl_input[idx] = per_sec(ri.saturating_sub(s.last_repl_input));
        s.repl_output[idx] = per_sec(ro.saturating_sub(s.last_repl_output));
        s.idx = (idx + 1) % SAMPLES;
        s.last_commands = c;
        s.last_input = i;
        s.last_output = o;
        s.last_repl_input = ri;
        s.last_repl_output = ro;
    }
}

/// Samples the counters every 100 ms for INFO's instantaneous_* fields.
pub async fn sampler_task(srv: Arc<Server>) {
    let mut rx = srv.shutdown_receiver();
    let period = Duration::from_millis(100);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = rx.changed() => return,
        }
        srv.stats.sample(period);
    }
}
