//! Lua scripting (EVAL and friends): Lua 5.1 through mlua with the Lua
//! sources vendored, as Redis embeds 5.1.
//!
//! * **Atomicity.** EVAL's table row locks shards on demand
//!   (`LockScope::OnDemand`): each shard the script reaches is locked then
//!   and held until the script ends, so a script may read and write keys it
//!   did not declare (as standalone Redis allows; BullMQ and Sidekiq rely
//!   on it) and no other client sees it half done. Out-of-order locking is
//!   safe because only one script runs at a time (whoever holds the script
//!   gate: the script thread, or an async worker running a known-fast
//!   script inline, see [`try_inline`]) and ordered acquirers back off from
//!   it (see `commands::ctx::Locks`). Commands the script runs go through
//!   the same handlers as clients' commands, in the script's `Ctx`.
//! * **One interpreter per thread.** A Lua state cannot move between
//!   threads while Rust closures borrowing the command context are
//!   registered in it, so each worker thread keeps its own state and
//!   compiles scripts from the shared script cache on first use. Scripts
//!   cannot create globals, so the states are indistinguishable to them.
//!   SCRIPT FLUSH bumps a generation number that resets them.
//! * **Sandbox.** No io/os/package/debug libraries (debug is kept privately
//!   for the error handler), no loadfile/dofile; reading an undefined global
//!   or assigning one is an error, as in Redis.
//! * **Busy scripts.** A hook every 100k instructions tracks the running
//!   time; past `busy-reply-threshold`, other clients get `-BUSY` (dispatch
//!   checks [`busy`]) and SCRIPT KILL may stop a script that has not
//!   written.
//! * **Libraries.** `redis.*` as Redis 7.0, `bit` (LuaBitOp) and `cjson`;
//!   `cmsgpack` and `struct` live in `lua_libs`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use mlua::{HookTriggers, Lua, LuaOptions, StdLib, Table, Value, Variadic};
use parking_lot::Mutex;

use crate::commands::ctx::Ctx;
use crate::commands::dispatch::{run_in_ctx, unix_ms};
use crate::commands::spec::CmdFlags;
use crate::commands::table::{table, Lookup};
use crate::protocol::{CmdError, CmdResult, Reply};

/// Scripts known by SHA1 (SCRIPT LOAD, EVAL), shared by all threads.
#[derive(Default)]
pub struct ScriptCache {
    scripts: Mutex<HashMap<String, Bytes>>,
    generation: AtomicU64,
}

impl ScriptCache {
    pub fn insert(&self, body: &[u8]) -> String {
        let sha = sha1_hex(body);
        self.scripts
            .lock()
            .entry(sha.clone())
            .or_insert_with(|| Bytes::copy_from_slice(body));
        sha
    }
    /// The body whose SHA1 is `sha` (any case).
    pub fn get(&self, sha: &[u8]) -> Option<Bytes> {
        let key = sha_key(sha)?;
        self.scripts.lock().get(key_str(&key)?).cloned()
    }
    pub fn contains(&self, sha: &[u8]) -> bool {
        sha_key(sha)
            .and_then(|k| key_str(&k).map(|s| self.scripts.lock().contains_key(s)))
            .unwrap_or(false)
    }
    pub fn flush(&self) {
        self.scripts.lock().clear();
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
    pub fn len(&self) -> usize {
        self.scripts.lock().len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A script's SHA1 as given by a client, lowercased (SHAs are
/// case-insensitive); `None` if it cannot be one (not 40 bytes long).
pub fn sha_key(sha: &[u8]) -> Option<[u8; 40]> {
    let mut key: [u8; 40] = sha.try_into().ok()?;
    key.make_ascii_lowercase();
    Some(key)
}

/// [`sha_key`] as text (`None` if the client sent non-UTF-8 bytes, which
/// match no script).
fn key_str(key: &[u8; 40]) -> Option<&str> {
    std::str::from_utf8(key).ok()
}

/// The error for an EVALSHA of an unknown script.
const NOSCRIPT: CmdError = CmdError::from_static("NOSCRIPT No matching script. Please use EVAL.");

/// What other clients get while a script runs past `busy-reply-threshold`.
pub const BUSY_ERR: CmdError = CmdError::from_static(
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
);

/// [`BUSY_ERR`] while a function (not an EVAL script) runs.
pub const BUSY_FUNCTION_ERR: CmdError = CmdError::from_static(
    "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.",
);

/// The error a killed script's caller gets (Redis adds where it stopped).
const KILLED: &str = "Script killed by user with SCRIPT KILL...";

/// The running script, if any (one at a time: EVAL locks every shard).
static RUNNING: AtomicBool = AtomicBool::new(false);
static RUNNING_EVAL: AtomicBool = AtomicBool::new(true);
static STARTED_MS: AtomicU64 = AtomicU64::new(0);
static BUSY: AtomicBool = AtomicBool::new(false);
static KILL: AtomicBool = AtomicBool::new(false);
static WROTE: AtomicBool = AtomicBool::new(false);
static THRESHOLD_MS: AtomicU64 = AtomicU64::new(5000);

/// True while a script has run longer than `busy-reply-threshold`: other
/// clients get `-BUSY`.
/// DEBUG SET-DISABLE-DENY-SCRIPTS: scripts may call `noscript` commands
/// (a test aid of Redis's, off by default).
pub static DENY_SCRIPT_DISABLED: AtomicBool = AtomicBool::new(false);

pub fn busy() -> bool {
    BUSY.load(Ordering::Relaxed)
}

/// True while a script executes (busy or not). Background work that would
/// wait for the script's shard locks (active expiry, eviction) skips its
/// turn instead of stalling an async worker.
pub fn running() -> bool {
    RUNNING.load(Ordering::Relaxed)
}

/// Work sent to the script thread.
type Job = Box<dyn FnOnce() + Send + 'static>;

/// The script thread's queue, started on first use (`None` if the thread
/// could not be created: scripts then run on the caller's thread).
///
/// Why a dedicated thread: a script holds every shard lock for as long as
/// it runs. Run on an async worker it would also freeze every connection
/// scheduled on that worker, which then could not even be told `-BUSY`.
/// On its own thread, the async workers stay free: commands arriving
/// meanwhile wait for their shard locks only until the script passes
/// `busy-reply-threshold` (see `Locks::acquire_unless_busy`), then get
/// `-BUSY`, and SCRIPT KILL reaches the script's hook. It also means one
/// Lua state serves every script, as in Redis.
fn script_thread() -> Option<&'static std::sync::mpsc::Sender<Job>> {
    static TX: std::sync::OnceLock<Option<std::sync::mpsc::Sender<Job>>> =
        std::sync::OnceLock::new();
    TX.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let spawned = std::thread::Builder::new()
            .name("cinnabar-lua".into())
            // Deeply nested replies and Lua's C recursion want headroom.
            .stack_size(16 << 20)
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    let gate = GATE.lock();
                    HOLDS_GATE.with(|f| f.set(true));
                    // A panic drops the job's reply sender; its connection
                    // closes and the thread serves the next job.
                    let t0 = std::time::Instant::now();
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    // Busy time for Azure's Server Load (the worker that
                    // handed the script over waits without being busy).
                    crate::server::metrics::SCRIPT_BUSY_NS
                        .fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    HOLDS_GATE.with(|f| f.set(false));
                    drop(gate);
                }
            });
        match spawned {
            Ok(_) => Some(tx),
            Err(e) => {
                tracing::error!(
                    "cannot start the script thread ({e}); scripts run on the async workers"
                );
                None
            }
        }
    })
    .as_ref()
}

/// Serialises script execution: whoever runs scripts holds it, the script
/// thread for each job it takes, or an async worker running a known-fast
/// script inline ([`try_inline`]). One script at a time is what makes
/// on-demand shard locking deadlock-free (see `commands::ctx::Locks`).
static GATE: Mutex<()> = Mutex::new(());

thread_local! {
    static HOLDS_GATE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// While a script runs inline on an async worker: how many more times
    /// the watchdog may try to hand the worker's duties to another thread.
    static INLINE_HANDOFFS: std::cell::Cell<u8> = const { std::cell::Cell::new(0) };
    /// When the inline script running on this thread started.
    static INLINE_STARTED: std::cell::Cell<Option<std::time::Instant>> =
        const { std::cell::Cell::new(None) };
}

/// Whether this thread holds the script gate (the only position from which
/// shard locks may be taken on demand, see `commands::ctx::Locks`).
pub fn holds_gate() -> bool {
    HOLDS_GATE.with(|f| f.get())
}

/// Scripts whose last run took less than [`FAST_RUN`]: a direct-mapped
/// table of hashes of (command, script body / SHA / function name). Lossy
/// by design: a collision or an overwritten slot only sends the next run
/// through the script thread, which measures it again.
static FAST: [AtomicU64; 1024] = [const { AtomicU64::new(0) }; 1024];

/// A run this short may execute inline on an async worker next time.
const FAST_RUN: std::time::Duration = std::time::Duration::from_micros(500);

/// The [`FAST`] key of a script command: its name and first argument.
fn fast_key(argv: &[Bytes]) -> Option<u64> {
    use std::hash::{BuildHasher, Hasher};
    let (name, target) = (argv.first()?, argv.get(1)?);
    let mut h = foldhash::fast::FixedState::with_seed(0x5c41).build_hasher();
    h.write_usize(name.len());
    h.write_u8(name.first().map_or(0, |c| c.to_ascii_lowercase()));
    h.write_u8(name.last().map_or(0, |c| c.to_ascii_lowercase()));
    if name.len() == 7 || name.len() == 10 {
        // EVALSHA / EVALSHA_RO: the SHA is case-insensitive. Setting bit 5
        // lowercases hex letters and leaves digits alone; other bytes may
        // fold together, which costs at most a trip to the script thread.
        let mut chunks = target.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            h.write_u64(u64::from_le_bytes(w) | 0x2020_2020_2020_2020);
        }
        for c in chunks.remainder() {
            h.write_u8(c | 0x20);
        }
    } else {
        h.write(target);
    }
    Some(h.finish() | 1)
}

/// Remembers how long the script `key` took: fast runs may go inline.
fn record_run(key: Option<u64>, took: std::time::Duration) {
    let Some(k) = key else { return };
    let slot = &FAST[(k % FAST.len() as u64) as usize];
    if took < FAST_RUN {
        slot.store(k, Ordering::Relaxed);
    } else {
        let _ = slot.compare_exchange(k, 0, Ordering::Relaxed, Ordering::Relaxed);
    }
}

/// Runs the script command `argv` right here, on the caller's async worker,
/// when that is cheap and safe: the script ran fast last time, no other
/// script runs (the gate is free), and the runtime can hand this worker's
/// other connections to a fresh thread should the script turn long (see
/// [`hand_off_worker`]). This saves the two thread wake-ups of a
/// trip to the script thread, which is most of the cost of a small
/// EVALSHA. `None`: take the script thread (unknown or slow scripts, whose
/// clients' neighbours must keep being served and told `-BUSY`).
///
/// While another worker's inline script holds the gate (for microseconds),
/// this task yields to the worker's other tasks and tries again, a few
/// times, rather than spinning or parking the thread: the worker serves
/// other connections meanwhile. If the gate stays taken (the script thread
/// runs something long), the command goes to the script thread's queue.
pub async fn try_inline(
    srv: &crate::server::Server,
    client: &mut crate::connection::client::Client,
    argv: &[Bytes],
    pipelined: bool,
) -> Option<Reply> {
    if client.multi.is_some() {
        return None;
    }
    let key = fast_key(argv)?;
    if FAST[(key % FAST.len() as u64) as usize].load(Ordering::Relaxed) != key
        || !multi_thread_runtime()
    {
        return None;
    }
    let gate = if pipelined {
        let mut tries = 0;
        loop {
            if let Some(g) = GATE.try_lock() {
                break g;
            }
            tries += 1;
            if tries > GATE_TRIES {
                return None;
            }
            tokio::task::yield_now().await;
        }
    } else {
        GATE.try_lock_for(std::time::Duration::from_micros(50))?
    };
    HOLDS_GATE.with(|f| f.set(true));
    INLINE_HANDOFFS.with(|f| f.set(HANDOFF_TRIES));
    let start = std::time::Instant::now();
    INLINE_STARTED.with(|f| f.set(Some(start)));
    let reply = crate::commands::dispatch::execute(srv, client, argv);
    record_run(Some(key), start.elapsed());
    INLINE_STARTED.with(|f| f.set(None));
    INLINE_HANDOFFS.with(|f| f.set(0));
    HOLDS_GATE.with(|f| f.set(false));
    drop(gate);
    Some(reply)
}

/// How many times [`try_inline`] yields waiting for the script gate.
const GATE_TRIES: u32 = 16;

/// How long an inline script runs before the watchdog hands its worker's
/// duties away. The watchdog's hook counts Lua instructions across runs,
/// so it also fires inside short scripts; those keep their worker.
const HANDOFF_AFTER: std::time::Duration = std::time::Duration::from_millis(1);

/// Whether the inline script running on this thread has run long enough
/// that its worker's other connections should move (see
/// [`hand_off_worker`]).
fn inline_turned_long() -> bool {
    INLINE_HANDOFFS.with(|f| f.get()) > 0
        && INLINE_STARTED
            .with(|f| f.get())
            .is_some_and(|t| t.elapsed() >= HANDOFF_AFTER)
}

/// How often a long inline script offers its worker's duties away.
const HANDOFF_TRIES: u8 = 4;

/// Called by the watchdog (every 100k Lua instructions) while a script runs
/// inline on an async worker: the script turned out long, so this worker's
/// duties (its queued tasks, including the one slot other workers cannot
/// steal from) go to another thread, as tokio's `block_in_place` arranges,
/// and every other connection keeps being served, told `-BUSY` and able to
/// SCRIPT KILL. `block_in_place` takes the duties back if its closure ends
/// before the new thread has claimed them, hence the short wait inside, and
/// a few tries; once they are gone the later tries change nothing.
fn hand_off_worker() {
    INLINE_HANDOFFS.with(|f| f.set(f.get().saturating_sub(1)));
    tokio::task::block_in_place(|| std::thread::sleep(std::time::Duration::from_millis(1)));
}

/// Whether this thread belongs to a multi-threaded tokio runtime, where
/// `block_in_place` can hand the worker's duties to a fresh thread (also
/// when the runtime has a single worker), so a script that turns long
/// inline does not leave the other connections unserved.
fn multi_thread_runtime() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
}

/// Runs `argv` on the script thread's side of [`offload_batch`], timing
/// script commands for [`try_inline`].
fn run_timed(
    srv: &crate::server::Server,
    client: &mut crate::connection::client::Client,
    argv: &[Bytes],
) -> Reply {
    let key = if client.multi.is_none() && argv.first().is_some_and(|n| is_script_command(n)) {
        fast_key(argv)
    } else {
        None
    };
    let start = std::time::Instant::now();
    let reply = crate::commands::dispatch::execute(srv, client, argv);
    record_run(key, start.elapsed());
    reply
}

/// Whether `argv` (from `client`) must run on the script thread: script
/// invocations outside MULTI, and an EXEC whose queue holds one.
pub fn wants_script_thread(client: &crate::connection::client::Client, argv: &[Bytes]) -> bool {
    let Some(name) = argv.first() else {
        return false;
    };
    if is_script_command(name) {
        return client.multi.is_none();
    }
    name.eq_ignore_ascii_case(b"exec")
        && client.multi.as_ref().is_some_and(|m| {
            m.queue
                .iter()
                .any(|(e, _)| is_script_command(e.spec.name.as_bytes()))
        })
}

/// EVAL/EVALSHA/FCALL and their read-only forms (any case).
pub fn is_script_command(name: &[u8]) -> bool {
    matches!(name.len(), 4 | 5 | 7 | 8 | 10)
        && [
            &b"eval"[..],
            b"evalsha",
            b"eval_ro",
            b"evalsha_ro",
            b"fcall",
            b"fcall_ro",
        ]
        .iter()
        .any(|n| name.eq_ignore_ascii_case(n))
}

/// What the script thread hands back to a connection after a batch.
pub struct Batch {
    pub client: crate::connection::client::Client,
    pub parser: crate::protocol::codec::RequestParser,
    pub inbuf: bytes::BytesMut,
    /// One reply per command executed, in order.
    pub replies: Vec<Reply>,
    /// The next parsed item that does not belong on the script thread (to
    /// be handled by the connection as if just parsed).
    pub next: Option<ParseItem>,
}

/// One step of the request parser.
pub type ParseItem = Result<Option<Vec<Bytes>>, crate::protocol::codec::ProtocolError>;

/// Runs `argv` (a command [`wants_script_thread`] accepted) on the script
/// thread, then keeps executing the following commands already buffered in
/// `inbuf` while they are script commands too, so a pipeline of EVALSHAs
/// costs one thread hop, not one per command. `None` if the job was lost
/// (a panic outside the handler): the connection must close.
pub async fn offload_batch(
    srv: std::sync::Arc<crate::server::Server>,
    client: crate::connection::client::Client,
    mut parser: crate::protocol::codec::RequestParser,
    mut inbuf: bytes::BytesMut,
    argv: Vec<Bytes>,
) -> Option<Batch> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let mut client = client;
        let mut replies = vec![run_timed(&srv, &mut client, &argv)];
        drop(argv);
        let mut next = None;
        // Bounded so one connection cannot monopolise the script thread.
        while replies.len() < 64 {
            let limits = crate::protocol::codec::Limits {
                max_bulk_len: srv.config.proto_max_bulk_len(),
                authenticated: client.authenticated,
            };
            match parser.next(&mut inbuf, limits) {
                Ok(Some(a)) if wants_script_thread(&client, &a) => {
                    replies.push(run_timed(&srv, &mut client, &a));
                }
                Ok(None) => break,
                other => {
                    next = Some(other);
                    break;
                }
            }
        }
        let _ = tx.send(Batch {
            client,
            parser,
            inbuf,
            replies,
            next,
        });
    });
    match script_thread() {
        Some(q) => {
            if let Err(std::sync::mpsc::SendError(job)) = q.send(job) {
                job();
            }
        }
        None => job(),
    }
    rx.await.ok()
}

/// Runs one command for `client` on the script thread and hands the client
/// back with the reply; `None` if the job was lost (a panic outside the
/// handler), in which case the connection must close.
pub async fn offload(
    srv: std::sync::Arc<crate::server::Server>,
    client: crate::connection::client::Client,
    argv: Vec<Bytes>,
) -> Option<(crate::connection::client::Client, Reply)> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let mut client = client;
        let reply = crate::commands::dispatch::execute(&srv, &mut client, &argv);
        let _ = tx.send((client, reply));
    });
    match script_thread() {
        Some(q) => {
            if let Err(std::sync::mpsc::SendError(job)) = q.send(job) {
                job();
            }
        }
        None => job(),
    }
    rx.await.ok()
}

/// SCRIPT KILL (`is_eval`) / FUNCTION KILL: `Err` with Redis's NOTBUSY /
/// UNKILLABLE / BUSY replies (each command kills only its own kind).
pub fn kill(is_eval: bool) -> CmdResult<()> {
    if !RUNNING.load(Ordering::SeqCst) {
        return Err(CmdError::from_static(
            "NOTBUSY No scripts in execution right now.",
        ));
    }
    if WROTE.load(Ordering::SeqCst) {
        return Err(CmdError::from_static("UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command."));
    }
    if is_eval != RUNNING_EVAL.load(Ordering::SeqCst) {
        return Err(busy_error());
    }
    KILL.store(true, Ordering::SeqCst);
    Ok(())
}

/// The `-BUSY` reply naming the right kill command for what runs.
pub fn busy_error() -> CmdError {
    if RUNNING_EVAL.load(Ordering::SeqCst) {
        BUSY_ERR
    } else {
        BUSY_FUNCTION_ERR
    }
}

/// Whether the running script is an EVAL (not a function).
pub fn running_eval() -> bool {
    RUNNING.load(Ordering::SeqCst) && RUNNING_EVAL.load(Ordering::SeqCst)
}

/// The running function for FUNCTION STATS: (name, caller's command,
/// start in unix ms).
pub static RUN_INFO: Mutex<Option<(String, Vec<Bytes>, u64)>> = Mutex::new(None);

pub fn sha1_hex(b: &[u8]) -> String {
    sha1_smol::Sha1::from(b).digest().to_string()
}

thread_local! {
    static STATE: RefCell<Option<(u64, Lua)>> = const { RefCell::new(None) };
    /// Handles into the current state that every execution needs, looked
    /// up once per state instead of by name per call (a registry lookup by
    /// name hashes the name into a Lua string each time).
    static HOT: RefCell<Option<Hot>> = const { RefCell::new(None) };
    /// The RESP version `redis.setresp` selected for the running script.
    static RESP: std::cell::Cell<u8> = const { std::cell::Cell::new(2) };
}

/// See `HOT`.
struct Hot {
    handler: mlua::Function,
    xpcall: mlua::Function,
    fcall: mlua::Function,
    /// The read-only view of the globals EVAL bodies run in (see PRELUDE).
    env: Table,
    /// Compiled EVAL bodies by SHA1 (lowercase), with their shebang flags,
    /// so a repeated EVALSHA touches neither the shared script cache nor
    /// the body.
    scripts: std::collections::HashMap<[u8; 40], Compiled, foldhash::fast::FixedState>,
}

/// A compiled EVAL body and the flags its shebang declares.
#[derive(Clone)]
struct Compiled {
    func: mlua::Function,
    flags: u32,
}

impl Hot {
    fn new(lua: &Lua) -> mlua::Result<Hot> {
        Ok(Hot {
            handler: lua.named_registry_value("cinnabar_handler")?,
            xpcall: lua.named_registry_value("cinnabar_xpcall")?,
            fcall: lua.named_registry_value("cinnabar_fcall")?,
            env: lua.named_registry_value("cinnabar_env")?,
            scripts: std::collections::HashMap::default(),
        })
    }
}

/// Whether the running script selected RESP3 with `redis.setresp(3)`.
fn resp3_selected() -> bool {
    RESP.with(|r| r.get()) == 3
}

/// The execution-time watchdog: marks the script busy past
/// `busy-reply-threshold` and stops it after SCRIPT KILL. Installed once
/// per state (and again after a kill replaced it).
fn install_watchdog(lua: &Lua) {
    lua.set_hook(HookTriggers::new().every_nth_instruction(100_000), |lua, _dbg| {
        if !RUNNING.load(Ordering::Relaxed) {
            return Ok(mlua::VmState::Continue);
        }
        if inline_turned_long() {
            hand_off_worker();
        }
        let elapsed = unix_ms().saturating_sub(STARTED_MS.load(Ordering::Relaxed));
        let threshold = THRESHOLD_MS.load(Ordering::Relaxed);
        if threshold > 0 && elapsed >= threshold && !BUSY.load(Ordering::Relaxed) {
            tracing::warn!("Slow script detected: still in execution after {elapsed} milliseconds. You can try killing the script using the SCRIPT KILL command.");
            BUSY.store(true, Ordering::SeqCst);
        }
        if KILL.load(Ordering::SeqCst) {
            tracing::warn!("Lua script killed by user with SCRIPT KILL.");
            // From now on raise on every line, so a script catching the
            // error with pcall cannot go on (as Redis does).
            lua.set_hook(HookTriggers::new().every_line(), |lua, _| {
                Err(raise(lua, &CmdError::err(KILLED)))
            });
            return Err(raise(lua, &CmdError::err(KILLED)));
        }
        Ok(mlua::VmState::Continue)
    });
}

/// Lua code run once per state: the error handler and the protected
/// globals. `redis.call`/`redis.pcall` are Lua C functions
/// ([`raw_redis_call`]), not Lua wrappers,
/// so `return redis.call(...)` (a tail call) keeps the script's frame for
/// the error's line number, as in Redis. redis.call reports a command error
/// by parking `{token, err}` in `__cinnabar_pending` and raising an error
/// whose text carries the token; the handler swaps the table back in.
const PRELUDE: &str = r#"
local __G0 = _G
local dbg = debug
debug = nil
function __redis__err__handler(err)
  local info
  for level = 2, 20 do
    local i = dbg.getinfo(level, 'nSl')
    if i == nil then break end
    if i.source == '@user_script' or i.source == '@user_function' then info = i; break end
  end
  if type(err) ~= 'table' then
    local msg = tostring(err)
    if type(err) == 'userdata' then
      local cut = string.find(msg, '\nstack traceback:', 1, true)
      if cut then msg = string.sub(msg, 1, cut - 1) end
      if string.sub(msg, 1, 15) == 'runtime error: ' then msg = string.sub(msg, 16) end
    end
    local p = rawget(__G0, '__cinnabar_pending')
    if p and string.find(msg, p.token, 1, true) then
      err = {err = p.err, ignore_error_stats_update = p.ignore_error_stats_update}
    else
      err = {err = 'ERR ' .. msg}
    end
  end
  if info then
    err['source'] = info.source
    err['line'] = info.currentline
  end
  return err
end
function __cinnabar_fcall(f, h, keys, args)
  return xpcall(function() return f(keys, args) end, h)
end
loadfile = nil
dofile = nil
print = nil
do
  -- Redis's pcall hands back the text of an error raised by redis.call
  -- (and of Rust-raised errors: cjson, ...) as a string, not an object.
  local __pcall, tostr, find, sub, type, rawget = pcall, tostring, string.find, string.sub, type, rawget
  local function text(err)
    local t = type(err)
    if t == 'table' then
      local e = rawget(err, 'err')
      if type(e) == 'string' then return e end
      return err
    end
    if t ~= 'userdata' then return err end
    local msg = tostr(err)
    local cut = find(msg, '\nstack traceback:', 1, true)
    if cut then msg = sub(msg, 1, cut - 1) end
    if sub(msg, 1, 15) == 'runtime error: ' then msg = sub(msg, 16) end
    local p = rawget(__G0, '__cinnabar_pending')
    if p and find(msg, p.token, 1, true) then return p.err end
    return msg
  end
  local function finish(ok, ...)
    if ok then return ok, ... end
    return false, text((...))
  end
  pcall = function(f, ...) return finish(__pcall(f, ...)) end
end
do
  -- Precompiled (binary) chunks are refused, as in Redis.
  local ls = loadstring
  loadstring = function(s, name)
    if type(s) == 'string' and string.sub(s, 1, 1) == '\27' then
      return nil, 'binary chunks are not allowed'
    end
    return ls(s, name)
  end
end
local __smt = setmetatable
setmetatable(_G, {
  __index = function(_, k)
    error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
  end,
  __newindex = function(_, k, _)
    error("Attempt to modify a readonly table", 2)
  end,
})
-- Scripts run in `env`, a read-only view of the globals: assigning any
-- global (new or existing, `redis = nil` included) raises, so one script
-- cannot break the interpreter for the next. The library tables scripts
-- see (redis, cjson, bit, string, ...) are read-only views as well, and
-- the functions that could reach around a view (setmetatable, rawset,
-- getfenv/setfenv, loadstring) refuse to. Redis 7.0 gets the same effect
-- with a read-only flag patched into its Lua.
local G = _G
local __rawset, __getfenv, __setfenv = rawset, getfenv, setfenv
local protected = __smt({}, {__mode = 'k'})
local function ro() error("Attempt to modify a readonly table", 3) end
local ROMETA = __smt({}, {__newindex = function() ro() end, __metatable = false})
protected[ROMETA] = true
local function view(t)
  local v = __smt({}, {__index = t, __newindex = function() ro() end, __metatable = ROMETA})
  protected[v] = true
  return v
end
for _, name in ipairs({'redis', 'cjson', 'cmsgpack', 'bit', 'struct', 'string', 'math', 'table', 'coroutine'}) do
  local t = rawget(G, name)
  if type(t) == 'table' then __rawset(G, name, view(t)) end
end
local env = view(G)
__rawset(G, '_G', env)
__rawset(G, 'setmetatable', function(t, mt)
  if protected[t] or t == G then ro() end
  return __smt(t, mt)
end)
__rawset(G, 'rawset', function(t, k, v)
  if protected[t] or t == G then ro() end
  return __rawset(t, k, v)
end)
__rawset(G, 'getfenv', function(f)
  if type(f) == 'number' and f > 0 then f = f + 1 end
  local e = __getfenv(f or 2)
  if e == G then return env end
  return e
end)
__rawset(G, 'setfenv', function(f, t)
  if f == 0 or protected[f] then ro() end
  if type(f) == 'number' then f = f + 1 end
  return __setfenv(f, t)
end)
-- Chunks compiled at run time get the read-only view too.
for _, name in ipairs({'loadstring', 'load'}) do
  local compile = rawget(G, name)
  __rawset(G, name, function(src, chunkname)
    local f, err = compile(src, chunkname)
    if f then __setfenv(f, env) end
    return f, err
  end)
end
return env
"#;

/// The globals of function libraries: while a library loads only the
/// load-time API (`redis.register_function`, `redis.log`, …) is visible,
/// afterwards (when its functions run) the ordinary script globals.
const FENV: &str = r#"
local lib_api, real_G = ...
local loading = false
local function missing(k)
  error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 3)
end
local mt = {}
mt.__index = function(_, k)
  if loading then
    local v = rawget(lib_api, k)
    if v == nil then missing(k) end
    return v
  end
  local v = rawget(real_G, k)
  if v == nil then missing(k) end
  return v
end
mt.__newindex = function() error("Attempt to modify a readonly table", 2) end
setmetatable(lib_api.redis, {
  __index = function(_, k) missing(k) end,
  __newindex = function() error("Attempt to modify a readonly table", 2) end,
})
return setmetatable({}, mt), function(b) loading = b end
"#;

thread_local! {
    /// Functions `redis.register_function` registered during the current
    /// library load on this thread (`None` outside FUNCTION LOAD).
    static COLLECT: RefCell<Option<Vec<(crate::functions::FunctionInfo, mlua::Function)>>> =
        const { RefCell::new(None) };
}

/// `redis.register_function(name, fn)` / `redis.register_function{...}`.
fn register_function(lua: &Lua, args: Variadic<Value>) -> mlua::Result<()> {
    use crate::functions::{FunctionInfo, FLAG_NAMES};
    let fail = |m: &str| Err(mlua::Error::RuntimeError(format!("ERR {m}")));
    if COLLECT.with(|c| c.borrow().is_none()) {
        return fail("redis.register_function can only be called on FUNCTION LOAD command");
    }
    let _ = lua;
    let (name, desc, flags, cb): (Bytes, Option<Bytes>, u32, mlua::Function) = match args.len() {
        1 => {
            let Value::Table(t) = &args[0] else {
                return fail("calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).");
            };
            let (mut name, mut desc, mut flags, mut cb) = (None, None, 0u32, None);
            for pair in t.clone().pairs::<Value, Value>() {
                let (k, v) = pair?;
                let key =
                    match &k {
                        Value::String(s) => s.to_string_lossy(),
                        Value::Integer(_) | Value::Number(_) => {
                            return fail("unknown argument given to redis.register_function")
                        }
                        _ => return fail(
                            "named argument key given to redis.register_function is not a string",
                        ),
                    };
                let as_str = |v: &Value| match v {
                    Value::String(s) => Some(Bytes::copy_from_slice(&s.as_bytes())),
                    Value::Integer(n) => Some(Bytes::from(n.to_string())),
                    Value::Number(n) => Some(number_arg(*n)),
                    _ => None,
                };
                if key.eq_ignore_ascii_case("function_name") {
                    match as_str(&v) {
                        Some(s) => name = Some(s),
                        None => return fail("function_name argument given to redis.register_function must be a string"),
                    }
                } else if key.eq_ignore_ascii_case("description") {
                    match as_str(&v) {
                        Some(s) => desc = Some(s),
                        None => return fail("description argument given to redis.register_function must be a string"),
                    }
                } else if key.eq_ignore_ascii_case("callback") {
                    match v {
                        Value::Function(f) => cb = Some(f),
                        _ => return fail(
                            "callback argument given to redis.register_function must be a function",
                        ),
                    }
                } else if key.eq_ignore_ascii_case("flags") {
                    let Value::Table(ft) = v else {
                        return fail("flags argument to redis.register_function must be a table representing function flags");
                    };
                    let mut i = 1;
                    loop {
                        match ft.raw_get::<Value>(i)? {
                            Value::Nil => break,
                            Value::String(fs) => {
                                let fs = fs.to_string_lossy();
                                match FLAG_NAMES.iter().find(|(_, n)| n.eq_ignore_ascii_case(&fs)) {
                                    Some((bit, _)) => flags |= bit,
                                    None => return fail("unknown flag given"),
                                }
                            }
                            _ => return fail("unknown flag given"),
                        }
                        i += 1;
                    }
                } else {
                    return fail("unknown argument given to redis.register_function");
                }
            }
            let Some(name) = name else {
                return fail("redis.register_function must get a function name argument");
            };
            let Some(cb) = cb else {
                return fail("redis.register_function must get a callback argument");
            };
            (name, desc, flags, cb)
        }
        2 => {
            let name = match &args[0] {
                Value::String(s) => Bytes::copy_from_slice(&s.as_bytes()),
                Value::Integer(n) => Bytes::from(n.to_string()),
                Value::Number(n) => number_arg(*n),
                _ => return fail("first argument to redis.register_function must be a string"),
            };
            let Value::Function(cb) = &args[1] else {
                return fail("second argument to redis.register_function must be a function");
            };
            (name, None, 0, cb.clone())
        }
        _ => return fail("wrong number of arguments to redis.register_function"),
    };
    if !crate::functions::valid_name(&name) {
        return fail(crate::functions::BAD_NAME);
    }
    let name = String::from_utf8_lossy(&name).into_owned();
    COLLECT.with(|c| {
        let mut c = c.borrow_mut();
        let Some(list) = c.as_mut() else {
            return fail("redis.register_function can only be called on FUNCTION LOAD command");
        };
        if list.iter().any(|(f, _)| f.name == name) {
            return fail("Function already exists in the library");
        }
        list.push((FunctionInfo { name, desc, flags }, cb));
        Ok(())
    })
}

/// The innermost message of a Lua error, as Redis words load errors.
fn load_error_text(e: &mlua::Error) -> String {
    match e {
        mlua::Error::CallbackError { cause, .. } => load_error_text(cause),
        mlua::Error::RuntimeError(m) => {
            let m = match m.find("\nstack traceback:") {
                Some(i) => m[..i].to_string(),
                None => m.clone(),
            };
            if m.starts_with("ERR ") {
                m
            } else {
                format!("ERR {m}")
            }
        }
        mlua::Error::WithContext { cause, .. } => load_error_text(cause),
        other => format!("ERR {other}"),
    }
}

/// Runs a library body (the code after its `#!lua` line) in `lua`,
/// returning what it registered. `timeout` bounds the run (FUNCTION LOAD's
/// 500 ms); errors are Redis's texts without the `ERR ` prefix.
fn load_library_into(
    lua: &Lua,
    body: &[u8],
    timeout: Option<std::time::Duration>,
) -> Result<Vec<(crate::functions::FunctionInfo, mlua::Function)>, String> {
    let internal = |e: mlua::Error| format!("Error registering functions: ERR {e}");
    let fenv: Table = lua
        .named_registry_value("cinnabar_fenv")
        .map_err(internal)?;
    let set_loading: mlua::Function = lua
        .named_registry_value("cinnabar_set_loading")
        .map_err(internal)?;
    let f = lua
        .load(body)
        .set_name("@user_function")
        .set_environment(fenv)
        .into_function()
        .map_err(|e| {
            let msg = match &e {
                mlua::Error::SyntaxError { message, .. } => message.clone(),
                other => other.to_string(),
            };
            format!("Error compiling function: {msg}")
        })?;
    COLLECT.with(|c| *c.borrow_mut() = Some(Vec::new()));
    if let Some(limit) = timeout {
        let start = std::time::Instant::now();
        lua.set_hook(
            HookTriggers::new().every_nth_instruction(100_000),
            move |_, _| {
                if start.elapsed() > limit {
                    return Err(mlua::Error::RuntimeError(
                        "ERR FUNCTION LOAD timeout".into(),
                    ));
                }
                Ok(mlua::VmState::Continue)
            },
        );
    }
    let _ = set_loading.call::<()>(true);
    let r = f.call::<()>(());
    let _ = set_loading.call::<()>(false);
    if timeout.is_some() {
        // Back to the watchdog every state carries.
        install_watchdog(lua);
    }
    let got = COLLECT.with(|c| c.borrow_mut().take()).unwrap_or_default();
    match r {
        Ok(()) => Ok(got),
        Err(e) => Err(format!(
            "Error registering functions: {}",
            load_error_text(&e)
        )),
    }
}

/// FUNCTION LOAD's validation: runs the library body in a fresh
/// interpreter (with the 500 ms load timeout) and returns what it
/// registered.
pub fn validate_library(body: &[u8]) -> Result<Vec<crate::functions::FunctionInfo>, String> {
    let lua = new_state().map_err(|e| format!("cannot start Lua: {e}"))?;
    let got = load_library_into(&lua, body, Some(std::time::Duration::from_millis(500)))?;
    Ok(got.into_iter().map(|(i, _)| i).collect())
}

/// Brings this interpreter's functions up to date with the registry:
/// re-runs every library when the registry changed since the last time.
fn sync_functions(lua: &Lua, reg: &crate::functions::FunctionRegistry) -> mlua::Result<Table> {
    let generation = reg.generation() as i64;
    let have: Option<i64> = lua.named_registry_value("cinnabar_fn_gen")?;
    if have == Some(generation) {
        if let Some(t) = lua.named_registry_value::<Option<Table>>("cinnabar_fns")? {
            return Ok(t);
        }
    }
    let fns = lua.create_table()?;
    for lib in reg.libraries() {
        let Ok((_, _, body)) = crate::functions::parse_metadata(&lib.code) else {
            continue;
        };
        match load_library_into(lua, &lib.code[body..], None) {
            Ok(list) => {
                for (info, f) in list {
                    fns.raw_set(info.name, f)?;
                }
            }
            Err(e) => tracing::warn!(library = %lib.name, "library failed to load: {e}"),
        }
    }
    lua.set_named_registry_value("cinnabar_fns", fns.clone())?;
    lua.set_named_registry_value("cinnabar_fn_gen", generation)?;
    Ok(fns)
}

fn new_state() -> mlua::Result<Lua> {
    // SAFETY: `debug` is the only unsafe library loaded; the prelude keeps
    // it in a local of the error handler and removes the global, so scripts
    // cannot reach it (as Redis does).
    let lua = unsafe {
        Lua::unsafe_new_with(
            StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::DEBUG,
            LuaOptions::default(),
        )
    };
    let g = lua.globals();
    let redis = lua.create_table()?;
    // Set once: scripts see `redis` through a read-only view (PRELUDE), so
    // they cannot replace these.
    for (name, raising) in [("call", true), ("pcall", false)] {
        let refused = lua.create_function(move |lua, argv: Variadic<Value>| {
            redis_call_refused(lua, argv, raising)
        })?;
        let failed = lua.create_function(move |lua, (msg, counted): (mlua::String, bool)| {
            let e = CmdError::new(msg.to_string_lossy());
            call_failed(lua, &e, counted, raising)
        })?;
        // SAFETY: pops the two functions exec_raw pushed and pushes the
        // closure (balanced, within the slots exec_raw checked).
        let f: mlua::Function = unsafe {
            lua.exec_raw((refused, failed), |state| {
                mlua::ffi::lua_pushcclosure(state, raw_redis_call, 2);
            })?
        };
        redis.set(name, f)?;
    }
    // error_reply / status_reply take exactly one string; anything else
    // returns (not raises) an error table, as in Redis.
    redis.set(
        "error_reply",
        lua.create_function(|lua, args: Variadic<Value>| {
            let (1, Some(Value::String(msg))) = (args.len(), args.first()) else {
                return err_table(lua, &CmdError::err("wrong number or type of arguments"));
            };
            let t = lua.create_table()?;
            t.set("err", lua.create_string(error_reply_text(&msg.as_bytes()))?)?;
            Ok(t)
        })?,
    )?;
    redis.set(
        "status_reply",
        lua.create_function(|lua, args: Variadic<Value>| {
            let (1, Some(Value::String(msg))) = (args.len(), args.first()) else {
                return err_table(lua, &CmdError::err("wrong number or type of arguments"));
            };
            let t = lua.create_table()?;
            t.set("ok", msg.clone())?;
            Ok(t)
        })?,
    )?;
    redis.set(
        "acl_check_cmd",
        lua.create_function(|lua, argv: Variadic<Value>| acl_check_cmd(lua, argv))?,
    )?;
    redis.set(
        "sha1hex",
        lua.create_function(|lua, args: Variadic<Value>| {
            let s = match (args.len(), args.first()) {
                (1, Some(Value::String(s))) => s.as_bytes().to_vec(),
                (1, Some(Value::Integer(n))) => n.to_string().into_bytes(),
                (1, Some(v @ Value::Number(_))) => lua
                    .coerce_string(v.clone())?
                    .map(|s| s.as_bytes().to_vec())
                    .unwrap_or_default(),
                (1, _) => Vec::new(),
                _ => return Err(raise(lua, &CmdError::err("wrong number of arguments"))),
            };
            Ok(sha1_hex(&s))
        })?,
    )?;
    redis.set(
        "log",
        lua.create_function(|_, (level, msg): (i64, mlua::String)| {
            let m = msg.to_string_lossy();
            match level {
                0 => tracing::debug!(target: "lua", "{m}"),
                1 | 2 => tracing::info!(target: "lua", "{m}"),
                _ => tracing::warn!(target: "lua", "{m}"),
            }
            Ok(())
        })?,
    )?;
    redis.set("REDIS_VERSION", crate::REDIS_VERSION)?;
    redis.set("REDIS_VERSION_NUM", 0x0007000f)?;
    redis.set("LOG_DEBUG", 0)?;
    redis.set("LOG_VERBOSE", 1)?;
    redis.set("LOG_NOTICE", 2)?;
    redis.set("LOG_WARNING", 3)?;
    redis.set("REPL_NONE", 0)?;
    redis.set("REPL_AOF", 1)?;
    redis.set("REPL_SLAVE", 2)?;
    redis.set("REPL_REPLICA", 2)?;
    redis.set("REPL_ALL", 3)?;
    // Where the script's following writes go: the AOF, the replicas, both
    // or neither (each record carries the mask; see `server::propagate`).
    redis.set(
        "set_repl",
        lua.create_function(|_, args: Variadic<Value>| {
            if args.len() != 1 {
                return Err(mlua::Error::RuntimeError(
                    "redis.set_repl() requires one argument.".into(),
                ));
            }
            let flags = match &args[0] {
                Value::Integer(i) => Some(*i),
                Value::Number(n) if n.fract() == 0.0 => Some(*n as i64),
                _ => None,
            };
            match flags {
                Some(f @ 0..=3) => {
                    crate::server::propagate::set_current_targets(f as u8);
                    Ok(())
                }
                _ => Err(mlua::Error::RuntimeError(
                    "Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE."
                        .into(),
                )),
            }
        })?,
    )?;
    redis.set("replicate_commands", lua.create_function(|_, ()| Ok(true))?)?;
    redis.set("breakpoint", lua.create_function(|_, ()| Ok(false))?)?;
    redis.set(
        "debug",
        lua.create_function(|_, _: Variadic<Value>| Ok(()))?,
    )?;
    redis.set(
        "setresp",
        lua.create_function(|lua, v: i64| {
            if v != 2 && v != 3 {
                return Err(mlua::Error::RuntimeError(
                    "RESP version must be 2 or 3.".into(),
                ));
            }
            let _ = lua;
            RESP.with(|r| r.set(v as u8));
            Ok(())
        })?,
    )?;
    // The load-time API of function libraries (see FENV).
    let lib_redis = lua.create_table()?;
    lib_redis.raw_set("register_function", lua.create_function(register_function)?)?;
    for k in [
        "log",
        "LOG_DEBUG",
        "LOG_VERBOSE",
        "LOG_NOTICE",
        "LOG_WARNING",
    ] {
        lib_redis.raw_set(k, redis.raw_get::<Value>(k)?)?;
    }
    lib_redis.raw_set("REDIS_VERSION", crate::REDIS_VERSION)?;
    lib_redis.raw_set("REDIS_VERSION_NUM", 0x0007000f)?;
    let lib_api = lua.create_table()?;
    lib_api.raw_set("redis", lib_redis)?;
    g.set("redis", redis)?;
    g.set("bit", bit_lib(&lua)?)?;
    g.set("cjson", cjson_lib(&lua)?)?;
    crate::lua_libs::install(&lua)?;
    // The pieces execution needs, kept out of reach of scripts that
    // tamper with their globals.
    let env: Table = lua.load(PRELUDE).set_name("=cinnabar").eval()?;
    lua.set_named_registry_value("cinnabar_env", env)?;
    lua.set_named_registry_value(
        "cinnabar_handler",
        g.raw_get::<mlua::Function>("__redis__err__handler")?,
    )?;
    lua.set_named_registry_value("cinnabar_xpcall", g.raw_get::<mlua::Function>("xpcall")?)?;
    lua.set_named_registry_value(
        "cinnabar_fcall",
        g.raw_get::<mlua::Function>("__cinnabar_fcall")?,
    )?;
    let (fenv, set_loading): (Table, mlua::Function) = lua
        .load(FENV)
        .set_name("=cinnabar_fenv")
        .call((lib_api, lua.globals()))?;
    lua.set_named_registry_value("cinnabar_fenv", fenv)?;
    lua.set_named_registry_value("cinnabar_set_loading", set_loading)?;
    Ok(lua)
}

/// LuaBitOp's `bit` library (32-bit operations on Lua numbers).
fn bit_lib(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    fn tobit(n: f64) -> i32 {
        (n as i64) as i32
    }
    t.set("tobit", lua.create_function(|_, n: f64| Ok(tobit(n)))?)?;
    t.set("bnot", lua.create_function(|_, n: f64| Ok(!tobit(n)))?)?;
    t.set(
        "band",
        lua.create_function(|_, v: Variadic<f64>| Ok(v.iter().fold(-1i32, |a, &b| a & tobit(b))))?,
    )?;
    t.set(
        "bor",
        lua.create_function(|_, v: Variadic<f64>| Ok(v.iter().fold(0i32, |a, &b| a | tobit(b))))?,
    )?;
    t.set(
        "bxor",
        lua.create_function(|_, v: Variadic<f64>| Ok(v.iter().fold(0i32, |a, &b| a ^ tobit(b))))?,
    )?;
    t.set(
        "lshift",
        lua.create_function(|_, (a, n): (f64, f64)| {
            Ok(((tobit(a) as u32) << (tobit(n) & 31)) as i32)
        })?,
    )?;
    t.set(
        "rshift",
        lua.create_function(|_, (a, n): (f64, f64)| {
            Ok(((tobit(a) as u32) >> (tobit(n) & 31)) as i32)
        })?,
    )?;
    t.set(
        "arshift",
        lua.create_function(|_, (a, n): (f64, f64)| Ok(tobit(a) >> (tobit(n) & 31)))?,
    )?;
    t.set(
        "rol",
        lua.create_function(|_, (a, n): (f64, f64)| {
            Ok((tobit(a) as u32).rotate_left((tobit(n) & 31) as u32) as i32)
        })?,
    )?;
    t.set(
        "ror",
        lua.create_function(|_, (a, n): (f64, f64)| {
            Ok((tobit(a) as u32).rotate_right((tobit(n) & 31) as u32) as i32)
        })?,
    )?;
    t.set(
        "bswap",
        lua.create_function(|_, a: f64| Ok((tobit(a) as u32).swap_bytes() as i32))?,
    )?;
    t.set(
        "tohex",
        lua.create_function(|_, (a, n): (f64, Option<f64>)| {
            let n = n.map(tobit).unwrap_or(8);
            let (upper, width) = if n < 0 {
                (true, (-n) as usize)
            } else {
                (false, n as usize)
            };
            let width = width.clamp(1, 8);
            let v = tobit(a) as u32;
            let s = if upper {
                format!("{v:08X}")
            } else {
                format!("{v:08x}")
            };
            Ok(s[8 - width..].to_string())
        })?,
    )?;
    Ok(t)
}

/// `cjson.encode` / `cjson.decode` (tables with keys 1..n encode as arrays,
/// other tables as objects; `cjson.null` decodes JSON null).
fn cjson_lib(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    fn from_json(lua: &Lua, v: serde_json::Value) -> mlua::Result<Value> {
        Ok(match v {
            serde_json::Value::Null => {
                Value::LightUserData(mlua::LightUserData(std::ptr::null_mut()))
            }
            serde_json::Value::Bool(b) => Value::Boolean(b),
            serde_json::Value::Number(n) => Value::Number(n.as_f64().unwrap_or(0.0)),
            serde_json::Value::String(s) => Value::String(lua.create_string(&s)?),
            serde_json::Value::Array(a) => {
                let t = lua.create_table()?;
                for (i, x) in a.into_iter().enumerate() {
                    t.raw_set(i + 1, from_json(lua, x)?)?;
                }
                Value::Table(t)
            }
            serde_json::Value::Object(o) => {
                let t = lua.create_table()?;
                for (k, x) in o {
                    t.raw_set(k, from_json(lua, x)?)?;
                }
                Value::Table(t)
            }
        })
    }
    // Errors name the caller's line as luaL_error does (pcall turns them
    // into their text, see PRELUDE).
    t.set(
        "encode",
        lua.create_function(|lua, args: Variadic<Value>| {
            if args.len() != 1 {
                return Err(lua_error_at(
                    lua,
                    "bad argument #1 to 'encode' (expected 1 argument)",
                ));
            }
            let mut out = Vec::new();
            match cjson_encode(&args[0], 0, &mut out) {
                Ok(()) => lua.create_string(&out),
                Err(mlua::Error::RuntimeError(m)) => Err(lua_error_at(lua, &m)),
                Err(e) => Err(e),
            }
        })?,
    )?;
    // Buffer knob of lua-cjson: accepted, no effect here.
    t.set(
        "encode_keep_buffer",
        lua.create_function(|_, _: Variadic<Value>| Ok(true))?,
    )?;
    t.set(
        "encode_max_depth",
        lua.create_function(|_, v: Option<Value>| cjson_depth_option(&CJSON_ENCODE_DEPTH, v))?,
    )?;
    t.set(
        "decode_max_depth",
        lua.create_function(|_, v: Option<Value>| cjson_depth_option(&CJSON_DECODE_DEPTH, v))?,
    )?;
    t.set(
        "encode_invalid_numbers",
        lua.create_function(|lua, v: Option<Value>| {
            let set = match v {
                None | Some(Value::Nil) => None,
                Some(Value::Boolean(b)) => Some(b as u8),
                Some(Value::String(s)) => match &*s.as_bytes() {
                    b"off" => Some(0),
                    b"on" => Some(1),
                    b"null" => Some(2),
                    _ => None,
                }
                .map(Some)
                .ok_or_else(|| {
                    mlua::Error::RuntimeError(
                        "bad argument #1 to 'encode_invalid_numbers' (invalid option)".into(),
                    )
                })?,
                Some(_) => {
                    return Err(mlua::Error::RuntimeError(
                        "bad argument #1 to 'encode_invalid_numbers' (invalid option)".into(),
                    ))
                }
            };
            let cur = CJSON_ENCODE_INVALID.with(|c| {
                if let Some(x) = set {
                    c.set(x);
                }
                c.get()
            });
            Ok(match cur {
                0 => Value::Boolean(false),
                1 => Value::Boolean(true),
                _ => Value::String(lua.create_string("null")?),
            })
        })?,
    )?;
    t.set(
        "decode",
        lua.create_function(|lua, s: mlua::String| {
            let parsed = cjson_check_decode_depth(&s.as_bytes()).and_then(|()| {
                serde_json::from_slice::<serde_json::Value>(&s.as_bytes()).map_err(|e| {
                    mlua::Error::RuntimeError(format!(
                        "Expected value but found invalid token: {e}"
                    ))
                })
            });
            match parsed {
                Ok(j) => from_json(lua, j),
                Err(mlua::Error::RuntimeError(m)) => Err(lua_error_at(lua, &m)),
                Err(e) => Err(e),
            }
        })?,
    )?;
    t.set(
        "null",
        Value::LightUserData(mlua::LightUserData(std::ptr::null_mut())),
    )?;
    Ok(t)
}

thread_local! {
    /// lua-cjson's settings, kept per interpreter (per thread here) across
    /// scripts as in Redis: encode/decode nesting limits and what to do
    /// with NaN/Inf (0 refuse, 1 encode, 2 encode as null).
    static CJSON_ENCODE_DEPTH: std::cell::Cell<i64> = const { std::cell::Cell::new(1000) };
    static CJSON_DECODE_DEPTH: std::cell::Cell<i64> = const { std::cell::Cell::new(1000) };
    static CJSON_ENCODE_INVALID: std::cell::Cell<u8> = const { std::cell::Cell::new(0) };
}

/// `cjson.encode_max_depth([n])` / `decode_max_depth([n])`: sets the limit
/// when given (1 to 2^31-1), returns the current one.
fn cjson_depth_option(
    cell: &'static std::thread::LocalKey<std::cell::Cell<i64>>,
    v: Option<Value>,
) -> mlua::Result<i64> {
    let n = match v {
        None | Some(Value::Nil) => None,
        Some(Value::Integer(n)) => Some(n),
        Some(Value::Number(n)) if n.fract() == 0.0 => Some(n as i64),
        Some(_) => Some(0),
    };
    if let Some(n) = n {
        if !(1..=i32::MAX as i64).contains(&n) {
            return Err(mlua::Error::RuntimeError(
                "bad argument #1 to '?' (expected integer between 1 and 2147483647)".into(),
            ));
        }
        cell.with(|c| c.set(n));
    }
    Ok(cell.with(|c| c.get()))
}

/// A Lua error raised from a Rust function the way `luaL_error` words it:
/// prefixed with the calling Lua line (`user_script:3: `) when the caller
/// is Lua code.
fn lua_error_at(lua: &Lua, msg: &str) -> mlua::Error {
    let at = lua
        .inspect_stack(1)
        .and_then(|d| {
            let line = d.curr_line();
            let src = d.source().short_src.map(|s| s.into_owned());
            (line > 0).then(|| format!("{}:{line}: ", src.unwrap_or_default()))
        })
        .unwrap_or_default();
    mlua::Error::RuntimeError(format!("{at}{msg}"))
}

/// lua-cjson's number format (`%.14g`).
fn cjson_number(n: f64, out: &mut Vec<u8>) {
    let mut buf = [0u8; 40];
    // SAFETY: the format takes exactly one double, and snprintf writes at
    // most `buf.len()` bytes including the terminator.
    let len = unsafe {
        libc::snprintf(
            buf.as_mut_ptr() as *mut libc::c_char,
            buf.len(),
            c"%.14g".as_ptr(),
            n,
        )
    };
    let len = (len.max(0) as usize).min(buf.len() - 1);
    out.extend_from_slice(&buf[..len]);
}

/// Appends `s` as a JSON string with lua-cjson's escapes (`/` included).
fn cjson_string(s: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &c in s {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'/' => out.extend_from_slice(b"\\/"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            8 => out.extend_from_slice(b"\\b"),
            12 => out.extend_from_slice(b"\\f"),
            c if c < 0x20 || c == 0x7f => out.extend_from_slice(format!("\\u{:04x}", c).as_bytes()),
            c => out.push(c),
        }
    }
    out.push(b'"');
}

/// `cjson.encode` as lua-cjson does it: tables whose keys are all positive
/// integers are arrays (holes become null; excessively sparse ones are
/// refused), other tables objects; numbers as `%.14g`; the nesting limit
/// and the NaN/Inf policy from the settings above. Errors carry
/// lua-cjson's texts.
fn cjson_encode(v: &Value, depth: i64, out: &mut Vec<u8>) -> mlua::Result<()> {
    let fail = |what: &str, why: &str| {
        Err(mlua::Error::RuntimeError(format!(
            "Cannot serialise {what}: {why}"
        )))
    };
    let number = |n: f64, out: &mut Vec<u8>| -> mlua::Result<()> {
        if n.is_nan() || n.is_infinite() {
            match CJSON_ENCODE_INVALID.with(|c| c.get()) {
                0 => return fail("number", "must not be NaN or Inf"),
                1 if n.is_nan() => {
                    out.extend_from_slice(b"nan");
                    return Ok(());
                }
                1 => {}
                _ => {
                    out.extend_from_slice(b"null");
                    return Ok(());
                }
            }
        }
        cjson_number(n, out);
        Ok(())
    };
    match v {
        Value::String(s) => cjson_string(&s.as_bytes(), out),
        Value::Integer(n) => number(*n as f64, out)?,
        Value::Number(n) => number(*n, out)?,
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Nil => out.extend_from_slice(b"null"),
        Value::LightUserData(p) if p.0.is_null() => out.extend_from_slice(b"null"),
        Value::Table(t) => {
            let depth = depth + 1;
            if depth > CJSON_ENCODE_DEPTH.with(|c| c.get()) {
                return Err(mlua::Error::RuntimeError(format!(
                    "Cannot serialise, excessive nesting ({depth})"
                )));
            }
            // Array length, or None for an object.
            let mut max = 0f64;
            let mut items = 0f64;
            let mut array = true;
            for pair in t.clone().pairs::<Value, Value>() {
                let (k, _) = pair?;
                let k = match k {
                    Value::Integer(i) => i as f64,
                    Value::Number(n) => n,
                    _ => {
                        array = false;
                        break;
                    }
                };
                if k.floor() == k && k >= 1.0 {
                    max = f64::max(max, k);
                    items += 1.0;
                } else {
                    array = false;
                    break;
                }
            }
            if array && max > items * 2.0 && max > 10.0 {
                return fail("table", "excessively sparse array");
            }
            if array && max > 0.0 {
                out.push(b'[');
                for i in 1..=(max as i64) {
                    if i > 1 {
                        out.push(b',');
                    }
                    cjson_encode(&t.raw_get::<Value>(i)?, depth, out)?;
                }
                out.push(b']');
            } else {
                out.push(b'{');
                let mut first = true;
                for pair in t.clone().pairs::<Value, Value>() {
                    let (k, x) = pair?;
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    match &k {
                        Value::String(s) => cjson_string(&s.as_bytes(), out),
                        Value::Integer(n) => {
                            out.push(b'"');
                            number(*n as f64, out)?;
                            out.push(b'"');
                        }
                        Value::Number(n) => {
                            out.push(b'"');
                            number(*n, out)?;
                            out.push(b'"');
                        }
                        other => {
                            return fail(other.type_name(), "table key must be a number or string")
                        }
                    }
                    out.push(b':');
                    cjson_encode(&x, depth, out)?;
                }
                out.push(b'}');
            }
        }
        other => return fail(other.type_name(), "type not supported"),
    }
    Ok(())
}

/// `cjson.decode`'s nesting limit (checked on the text before parsing).
fn cjson_check_decode_depth(s: &[u8]) -> mlua::Result<()> {
    let max = CJSON_DECODE_DEPTH.with(|c| c.get());
    let (mut depth, mut in_str, mut esc) = (0i64, false, false);
    for (i, &c) in s.iter().enumerate() {
        if in_str {
            match c {
                _ if esc => esc = false,
                b'\\' => esc = true,
                b'"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Err(mlua::Error::RuntimeError(format!(
                        "Found too many nested data structures ({depth}) at character {}",
                        i + 1
                    )));
                }
            }
            b']' | b'}' => depth -= 1,
            _ => {}
        }
    }
    Ok(())
}

/// The `err` field `redis.error_reply(msg)` builds: Redis prefixes `-`
/// when missing, then takes the first word as the error code (`ERR` when
/// there is only one word: `error_reply("")` gives `ERR `, and
/// `error_reply("OOPS")` gives `ERR OOPS`).
fn error_reply_text(msg: &[u8]) -> Vec<u8> {
    let body = msg.strip_prefix(b"-").unwrap_or(msg);
    let (code, text): (&[u8], &[u8]) = match body.iter().position(|&c| c == b' ') {
        Some(i) => (&body[..i], &body[i + 1..]),
        None => (b"ERR", body),
    };
    let is_crlf = |c: &u8| *c == b'\r' || *c == b'\n';
    let start = text.iter().position(|c| !is_crlf(c)).unwrap_or(text.len());
    let end = text
        .iter()
        .rposition(|c| !is_crlf(c))
        .map_or(start, |i| i + 1);
    let mut out = code.to_vec();
    out.push(b' ');
    out.extend_from_slice(&text[start..end.max(start)]);
    out
}

/// Formats a Lua number as a command argument, as Redis 7.0 does
/// (`%.17g`: `0.1` becomes `0.10000000000000001`, `1e17` `1e+17`).
fn number_arg(n: f64) -> Bytes {
    // Integral values below 10^15 print as their digits either way.
    if n.fract() == 0.0 && n.abs() < 1e15 && !(n == 0.0 && n.is_sign_negative()) {
        let mut b = itoa::Buffer::new();
        Bytes::copy_from_slice(b.format(n as i64).as_bytes())
    } else {
        Bytes::from(crate::util::float::format_g17(n))
    }
}

fn err_table(lua: &Lua, e: &CmdError) -> mlua::Result<Table> {
    err_table_marked(lua, e, false)
}

/// The field marking an error table whose error was already counted in
/// the error statistics (Redis's name for it).
const COUNTED_FIELD: &str = "ignore_error_stats_update";

/// [`err_table`], marked `counted` (see [`COUNTED_FIELD`]).
fn err_table_marked(lua: &Lua, e: &CmdError, counted: bool) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("err", e.as_str().trim_end_matches(['\r', '\n']))?;
    if counted {
        t.set(COUNTED_FIELD, true)?;
    }
    Ok(t)
}

/// Raises a command error from redis.call (see [`PRELUDE`]).
fn raise(lua: &Lua, e: &CmdError) -> mlua::Error {
    raise_marked(lua, e, false)
}

/// [`raise`] an error already counted in the error statistics.
fn raise_marked(lua: &Lua, e: &CmdError, counted: bool) -> mlua::Error {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let token = format!("<cinnabar-error-{}>", SEQ.fetch_add(1, Ordering::Relaxed));
    let pending = (|| -> mlua::Result<()> {
        let p = lua.create_table()?;
        p.set("token", token.as_str())?;
        p.set("err", e.as_str().trim_end_matches(['\r', '\n']))?;
        if counted {
            p.set(COUNTED_FIELD, true)?;
        }
        RAISED.with(|r| r.set(true));
        lua.globals().raw_set("__cinnabar_pending", p)
    })();
    if let Err(x) = pending {
        return x;
    }
    mlua::Error::RuntimeError(format!("{} {token}", e.as_str()))
}

/// A script's return value as a reply (Redis's Lua→RESP conversion).
fn lua_to_reply(v: Value, resp3: bool, depth: usize) -> Reply {
    if depth > 1000 {
        return Reply::Error(CmdError::err("reached lua stack limit"));
    }
    match v {
        Value::String(s) => Reply::Bulk(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Boolean(b) => {
            if resp3 {
                Reply::Bool(b)
            } else if b {
                Reply::Int(1)
            } else {
                Reply::Null
            }
        }
        Value::Integer(n) => Reply::Int(n),
        Value::Number(n) => Reply::Int(crate::util::float::c_cast_i64(n)),
        Value::Table(t) => {
            if let Ok(Value::String(e)) = t.raw_get::<Value>("err") {
                let msg = e.to_string_lossy();
                return Reply::Error(CmdError::new(msg));
            }
            if let Ok(Value::String(ok)) = t.raw_get::<Value>("ok") {
                return Reply::StatusOwned(ok.to_string_lossy().replace(['\r', '\n'], " "));
            }
            // As Redis 7, these fields are honoured whatever the script's
            // protocol; the reply then takes the client's form.
            {
                // mlua hands an integral Lua number over as Integer.
                match t.raw_get::<Value>("double") {
                    Ok(Value::Number(d)) => return Reply::Double(d),
                    Ok(Value::Integer(i)) => return Reply::Double(i as f64),
                    _ => {}
                }
                if let Ok(Value::String(n)) = t.raw_get::<Value>("big_number") {
                    // A big number is one line: CR/LF become spaces.
                    let mut b = n.as_bytes().to_vec();
                    for c in b.iter_mut() {
                        if *c == b'\r' || *c == b'\n' {
                            *c = b' ';
                        }
                    }
                    return Reply::BigNumber(Bytes::from(b));
                }
                if let Ok(Value::Table(v)) = t.raw_get::<Value>("verbatim_string") {
                    if let (Ok(Value::String(f)), Ok(Value::String(s))) =
                        (v.raw_get::<Value>("format"), v.raw_get::<Value>("string"))
                    {
                        let f = f.as_bytes();
                        let mut fmt = *b"txt";
                        for (d, c) in fmt.iter_mut().zip(f.iter()) {
                            *d = *c;
                        }
                        return Reply::Verbatim(fmt, Bytes::copy_from_slice(&s.as_bytes()));
                    }
                }
                if let Ok(Value::Table(m)) = t.raw_get::<Value>("map") {
                    let mut out = Vec::new();
                    for (k, x) in m.pairs::<Value, Value>().flatten() {
                        out.push((
                            lua_to_reply(k, resp3, depth + 1),
                            lua_to_reply(x, resp3, depth + 1),
                        ));
                    }
                    return Reply::Map(out);
                }
                if let Ok(Value::Table(m)) = t.raw_get::<Value>("set") {
                    let mut out = Vec::new();
                    for (k, _) in m.pairs::<Value, Value>().flatten() {
                        out.push(lua_to_reply(k, resp3, depth + 1));
                    }
                    return Reply::Set(out);
                }
            }
            let mut out = Vec::new();
            let mut i = 1;
            loop {
                match t.raw_get::<Value>(i) {
                    Ok(Value::Nil) | Err(_) => break,
                    Ok(x) => out.push(lua_to_reply(x, resp3, depth + 1)),
                }
                i += 1;
            }
            Reply::Array(out)
        }
        _ => Reply::Null,
    }
}

use crate::functions::{ALLOW_OOM, ALLOW_STALE, EVAL_COMPAT, FLAG_NAMES, NO_WRITES};

/// Parses the shebang line of an EVAL body (`#!lua flags=no-writes,...`),
/// as Redis 7 does: returns the script's flags ([`EVAL_COMPAT`] when there
/// is no shebang: Redis 6 semantics) and the length of the line, which is
/// cut before compiling (its newline is kept so line numbers match).
/// Errors carry Redis's texts.
pub fn shebang(body: &[u8]) -> Result<(u32, usize), CmdError> {
    if !body.starts_with(b"#!") {
        return Ok((EVAL_COMPAT, 0));
    }
    let Some(end) = body.iter().position(|&c| c == b'\n') else {
        return Err(CmdError::err("Invalid script shebang"));
    };
    let parts = match crate::protocol::codec::split_args(&body[..end]) {
        Some(p) if !p.is_empty() => p,
        _ => return Err(CmdError::err("Invalid engine in script shebang")),
    };
    if parts[0] != b"#!lua" {
        return Err(CmdError::err(format!(
            "Unexpected engine in script shebang: {}",
            String::from_utf8_lossy(&parts[0])
        )));
    }
    let mut flags = 0;
    for p in &parts[1..] {
        let Some(list) = p.strip_prefix(b"flags=") else {
            return Err(CmdError::err(format!(
                "Unknown lua shebang option: {}",
                String::from_utf8_lossy(p)
            )));
        };
        if list.is_empty() {
            continue;
        }
        for f in list.split(|&c| c == b',') {
            match FLAG_NAMES.iter().find(|(_, n)| n.as_bytes() == f) {
                Some((bit, _)) => flags |= bit,
                None => {
                    return Err(CmdError::err(format!(
                        "Unexpected flag in script shebang: {}",
                        String::from_utf8_lossy(f)
                    )))
                }
            }
        }
    }
    Ok((flags, end))
}

/// `-NOREPLICAS`: `min-replicas-to-write` is set and not enough replicas
/// are connected.
pub const NOREPLICAS: CmdError =
    CmdError::from_static("NOREPLICAS Not enough good replicas to write.");

/// Whether writes are allowed by `min-replicas-to-write` /
/// `min-replicas-max-lag` (Redis's checkGoodReplicasStatus: enough online
/// replicas acknowledged within the lag).
pub fn enough_replicas(srv: &crate::server::Server) -> bool {
    let (need, lag) = (
        srv.config.min_replicas_to_write(),
        srv.config.min_replicas_max_lag(),
    );
    need == 0 || lag == 0 || srv.repl.good(lag) >= need
}

/// The write / deny-oom / stale flags a script invocation declares, which replace
/// the command's own before it runs (Redis's evalGetCommandFlags /
/// fcallGetCommandFlags): EVAL bodies with a shebang and functions declare
/// them; `None` for anything else (the table's flags apply). Dispatch uses
/// it for the OOM, NOREPLICAS, READONLY and MASTERDOWN refusals, so a
/// script that may write is refused like a write command.
pub fn declared_cmd_flags(
    srv: &crate::server::Server,
    name: &str,
    argv: &[Bytes],
) -> Option<DeclaredFlags> {
    let flags = match name {
        "eval" | "eval_ro" => shebang(argv.get(1)?).ok()?.0,
        "evalsha" | "evalsha_ro" => {
            let sha = argv.get(1)?;
            if sha.len() != 40 {
                return None;
            }
            let body = srv.scripts.get(sha)?;
            shebang(&body).ok()?.0
        }
        "fcall" | "fcall_ro" => srv.functions.flags_of(argv.get(1)?)?,
        _ => return None,
    };
    if flags & EVAL_COMPAT != 0 {
        return None;
    }
    Some(DeclaredFlags {
        write: flags & NO_WRITES == 0,
        deny_oom: flags & (ALLOW_OOM | NO_WRITES) == 0,
        stale: flags & ALLOW_STALE != 0,
    })
}

/// See [`declared_cmd_flags`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeclaredFlags {
    /// The script may write (no `no-writes`).
    pub write: bool,
    /// Refused over maxmemory (neither `allow-oom` nor `no-writes`).
    pub deny_oom: bool,
    /// Runs on a stale replica (`allow-stale`).
    pub stale: bool,
}

/// How one script execution treats the commands it calls (from its flags
/// and the command that started it).
#[derive(Clone, Copy, Debug, Default)]
pub struct RunMode {
    /// Write commands are refused: EVAL_RO/FCALL_RO, or `no-writes`.
    pub read_only: bool,
    /// `allow-oom`: deny-oom commands run even over maxmemory.
    pub allow_oom: bool,
    /// Used memory was over maxmemory when the script started (Redis's
    /// pre_command_oom_state): its first write is refused with -OOM.
    pub oom: bool,
    /// Cluster mode: the script may call commands on keys of several
    /// slots (`allow-cross-slot-keys`, or an EVAL body without flags).
    pub allow_cross_slot: bool,
}

/// A replica whose link to its primary is down and that may not serve
/// stale data (`replica-serve-stale-data no`).
fn running_stale(srv: &crate::server::Server) -> bool {
    srv.repl.is_replica() && !srv.repl.master_link_up() && !srv.config.replica_serve_stale_data()
}

/// A read-only replica, for a caller that is not its primary (nor the AOF
/// loader), whose writes it must obey.
fn read_only_replica(ctx: &Ctx<'_>) -> bool {
    ctx.srv.repl.is_replica() && ctx.srv.config.replica_read_only() && !ctx.client.must_obey()
}

/// The checks Redis makes before running a script (scriptPrepareForRun):
/// scripts with flags (a shebang, or any function) may be refused as a
/// whole; EVAL scripts without one keep Redis 6 semantics. `flags` holds
/// [`crate::functions`]' flag bits, `ro` is true for the *_RO commands.
pub fn prepare(ctx: &Ctx<'_>, flags: u32, ro: bool) -> CmdResult<RunMode> {
    let compat = flags & EVAL_COMPAT != 0;
    let oom = crate::server::eviction::over_maxmemory(ctx.srv, ctx.now);
    let stale = running_stale(ctx.srv);
    if compat && stale {
        return Err(CmdError::MASTERDOWN);
    }
    if !compat {
        if flags & crate::functions::NO_CLUSTER != 0 && ctx.srv.cluster.get().is_some() {
            return Err(CmdError::err(
                "Can not run script on cluster, 'no-cluster' flag is set.",
            ));
        }
        if stale && flags & ALLOW_STALE == 0 {
            return Err(CmdError::from_static("MASTERDOWN Link with MASTER is down, replica-serve-stale-data is set to 'no' and 'allow-stale' flag is not set on the script."));
        }
        if flags & NO_WRITES == 0 {
            if read_only_replica(ctx) {
                return Err(CmdError::from_static(
                    "READONLY Can not run script with write flag on readonly replica",
                ));
            }
            if ro {
                return Err(CmdError::err(
                    "Can not execute a script with write flag using *_ro command.",
                ));
            }
            if let Some(e) = ctx.srv.persist.disk_error(&ctx.srv.config) {
                return Err(e);
            }
            if !enough_replicas(ctx.srv) {
                return Err(NOREPLICAS);
            }
        }
        if oom && flags & (ALLOW_OOM | NO_WRITES) == 0 {
            return Err(CmdError::from_static("OOM allow-oom flag is not set on the script, can not run it when used memory > 'maxmemory'"));
        }
    }
    Ok(RunMode {
        read_only: ro || (!compat && flags & NO_WRITES != 0),
        allow_oom: !compat && flags & ALLOW_OOM != 0,
        oom,
        allow_cross_slot: compat || flags & crate::functions::ALLOW_CROSS_SLOT != 0,
    })
}

thread_local! {
    /// Set when a script's final error came from a command it called,
    /// whose error was already counted in the error statistics (Redis's
    /// ignore_error_stats_update): dispatch must not count it again.
    static ERROR_COUNTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the error the script command just returned was already counted
/// in INFO errorstats (clears the mark).
pub fn take_error_counted() -> bool {
    ERROR_COUNTED.with(|c| c.replace(false))
}

/// Whether this thread is executing a command called by a script
/// (`redis.call`): some commands behave differently for scripts (SORT
/// orders a set's output).
pub fn in_script() -> bool {
    CURRENT.with(|c| !c.get().is_null())
}

/// What EVAL runs: a script body, or (EVALSHA) the SHA1 of a cached one.
#[derive(Clone, Copy)]
pub enum Source<'a> {
    Body(&'a Bytes),
    Sha(&'a [u8]),
}

/// EVAL / EVALSHA (`ro`: their `_RO` forms) with KEYS and ARGV, under the
/// caller's locks. Errors come in Redis's order: NOSCRIPT, the shebang,
/// the flags against the server's state ([`prepare`]), compilation.
pub fn eval(
    ctx: &mut Ctx<'_>,
    source: Source<'_>,
    keys: &[Bytes],
    args: &[Bytes],
    ro: bool,
) -> CmdResult {
    let key = match source {
        Source::Sha(sha) => sha_key(sha).ok_or(NOSCRIPT)?,
        Source::Body(body) => {
            // A script with a bad shebang is refused before it is cached.
            shebang(body)?;
            let sha = ctx.srv.scripts.insert(body);
            sha_key(sha.as_bytes()).ok_or(CmdError::INTERNAL)?
        }
    };
    with_state(ctx, |lua, ctx| {
        let label = key_str(&key).ok_or(NOSCRIPT)?;
        let hit = HOT.with(|h| {
            h.borrow()
                .as_ref()
                .and_then(|h| h.scripts.get(&key).cloned())
        });
        let (func, mode) = match hit {
            Some(c) => (c.func, prepare(ctx, c.flags, ro)?),
            None => {
                let body = match source {
                    Source::Body(b) => b.clone(),
                    Source::Sha(_) => ctx.srv.scripts.get(&key).ok_or(NOSCRIPT)?,
                };
                let (flags, skip) = shebang(&body)?;
                let mode = prepare(ctx, flags, ro)?;
                let env = HOT
                    .with(|h| h.borrow().as_ref().map(|h| h.env.clone()))
                    .ok_or(CmdError::INTERNAL)?;
                let f = lua
                    .load(body.get(skip..).unwrap_or_default())
                    .set_name("@user_script")
                    .set_environment(env)
                    .into_function()
                    .map_err(|e| {
                        let msg = match &e {
                            mlua::Error::SyntaxError { message, .. } => message.clone(),
                            other => other.to_string(),
                        };
                        CmdError::err(format!("Error compiling script (new function): {msg}"))
                    })?;
                HOT.with(|h| {
                    if let Some(h) = h.borrow_mut().as_mut() {
                        let compiled = Compiled {
                            func: f.clone(),
                            flags,
                        };
                        h.scripts.insert(key, compiled);
                    }
                });
                (f, mode)
            }
        };
        execute(lua, ctx, Target::Eval(func), label, keys, args, mode)
    })
}

/// FCALL / FCALL_RO of function `name` (its flags already checked by
/// [`prepare`]).
pub fn fcall(
    ctx: &mut Ctx<'_>,
    name: &str,
    keys: &[Bytes],
    args: &[Bytes],
    mode: RunMode,
) -> CmdResult {
    with_state(ctx, |lua, ctx| {
        let fns = sync_functions(lua, &ctx.srv.functions)
            .map_err(|e| CmdError::err(format!("Error loading functions: {e}")))?;
        let f: mlua::Function = match fns.raw_get::<Value>(name) {
            Ok(Value::Function(f)) => f,
            _ => return Err(CmdError::err("Function not found")),
        };
        execute(lua, ctx, Target::Function(f), name, keys, args, mode)
    })
}

/// The execution `redis.call`/`redis.pcall` act on: set by [`execute`] for
/// exactly the duration of the Lua call (see [`current`]).
struct Running<'c, 'a> {
    ctx: RefCell<&'c mut Ctx<'a>>,
    mode: RunMode,
    /// A write command was called (Redis's SCRIPT_WRITE_DIRTY): from then
    /// on the script is not refused for OOM or missing replicas, it cannot
    /// stop half-way.
    dirty: std::cell::Cell<bool>,
    /// Cluster mode: the slot of the keys the script declared or first
    /// touched (Redis's `original_c->slot`).
    slot: std::cell::Cell<Option<u16>>,
}

thread_local! {
    static CURRENT: std::cell::Cell<*const ()> = const { std::cell::Cell::new(std::ptr::null()) };
}

/// Clears `CURRENT` when [`execute`]'s frame ends, also on unwinding.
struct CurrentGuard;

impl Drop for CurrentGuard {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(std::ptr::null()));
        crate::server::propagate::set_current_targets(crate::server::propagate::to::ALL);
    }
}

/// The running script's context, as [`execute`] published it.
fn current<'r>() -> Option<&'r Running<'r, 'r>> {
    let p = CURRENT.with(|c| c.get());
    // SAFETY: `execute` stores a pointer to a `Running` that lives on its
    // stack, on this thread, and clears it (CurrentGuard) before that frame
    // ends; Lua only calls into Rust from inside that `execute` call (the
    // state is thread-local), so the pointee is alive while the caller (a
    // Lua callback) runs, and only shared references to it exist (mutation
    // goes through its RefCell).
    (!p.is_null()).then(|| unsafe { &*(p as *const Running<'r, 'r>) })
}

/// What a command called by a script produced: its reply, or an error and
/// whether that error was already counted in the error statistics (a
/// refusal, or the command's own error reply: marked so the script's final
/// reply does not count it again, Redis's ignore_error_stats_update).
type CallResult = Result<Reply, (CmdError, bool)>;

/// Runs the command line `cmd` for the script `cur` (the checks of Redis's
/// scriptCall, then the command, answering in the protocol the script
/// selected).
fn script_call(cur: &Running<'_, '_>, cmd: Vec<Bytes>, resp3: bool) -> CallResult {
    // A command refused before it ran: counted as an error reply and a
    // rejected call of the command.
    let reject = |entry: Option<&crate::commands::table::CommandEntry>, e: CmdError| {
        if let Some(en) = entry {
            en.stats.record_rejected();
        }
        cur.ctx.borrow().srv.stats.count_error(&e);
        Err((e, true))
    };
    let lookup = cur.ctx.borrow().srv.lookup_command(&cmd);
    let entry = match lookup {
        Lookup::Found(e) => e,
        _ => {
            return reject(
                None,
                CmdError::err("Unknown Redis command called from script"),
            )
        }
    };
    if !entry.spec.arity_ok(cmd.len()) {
        return reject(
            Some(entry),
            CmdError::err("Wrong number of args calling Redis command from script"),
        );
    }
    if entry.spec.flags.contains(CmdFlags::NOSCRIPT)
        && !DENY_SCRIPT_DISABLED.load(Ordering::Relaxed)
    {
        return reject(
            Some(entry),
            CmdError::err("This Redis command is not allowed from script"),
        );
    }
    if !entry.spec.flags.contains(CmdFlags::STALE) && running_stale(cur.ctx.borrow().srv) {
        return reject(
            Some(entry),
            CmdError::err("Can not execute the command on a stale replica"),
        );
    }
    let acl = {
        let guard = cur.ctx.borrow();
        crate::commands::acl::script_check(guard.srv, guard.client, entry, &cmd)
    };
    if let Err(e) = acl {
        return reject(Some(entry), e);
    }
    let writes = entry.spec.flags.contains(CmdFlags::WRITE);
    if let Err(e) = script_cluster_check(cur, entry, &cmd, writes) {
        return reject(Some(entry), e);
    }
    if cur.mode.read_only && (writes || entry.spec.flags.contains(CmdFlags::MAY_REPLICATE)) {
        return reject(
            Some(entry),
            CmdError::err("Write commands are not allowed from read-only scripts."),
        );
    }
    // Once the script wrote, it cannot be stopped for the server's state.
    if !cur.dirty.get() {
        if writes && read_only_replica(&cur.ctx.borrow()) {
            return reject(Some(entry), CmdError::READONLY);
        }
        if writes {
            let disk = {
                let g = cur.ctx.borrow();
                g.srv.persist.disk_error(&g.srv.config)
            };
            if let Some(e) = disk {
                return reject(Some(entry), e);
            }
        }
        if writes && !enough_replicas(cur.ctx.borrow().srv) {
            return reject(Some(entry), NOREPLICAS);
        }
        if cur.mode.oom && !cur.mode.allow_oom && entry.spec.flags.contains(CmdFlags::DENYOOM) {
            let max = cur.ctx.borrow().srv.config.maxmemory();
            if max > 0 {
                return reject(Some(entry), CmdError::OOM);
            }
        }
    }
    if writes {
        cur.dirty.set(true);
    }
    let reply = {
        let mut guard = cur.ctx.borrow_mut();
        // The command answers in the protocol the script selected
        // (redis.setresp; 2 by default), as Redis's script client does,
        // whatever the calling connection speaks.
        let caller_resp = guard.client.resp;
        guard.client.resp = if resp3 { 3 } else { 2 };
        let prev_in_script = std::mem::replace(&mut guard.in_script, true);
        let r = run_in_ctx(&mut guard, entry, &cmd, true);
        guard.in_script = prev_in_script;
        guard.client.resp = caller_resp;
        r
    };
    if writes {
        WROTE.store(true, Ordering::SeqCst);
    }
    match reply {
        // Counted by run_in_ctx.
        Reply::Error(e) => Err((e, true)),
        other => Ok(other),
    }
}

/// Cluster mode: a command a script calls must touch keys this node
/// serves, in the slot of the script's other keys unless the script allows
/// cross-slot access (Redis's scriptVerifyClusterState). The primary's
/// stream and the AOF are obeyed as they come.
fn script_cluster_check(
    cur: &Running<'_, '_>,
    entry: &crate::commands::table::CommandEntry,
    cmd: &[Bytes],
    writes: bool,
) -> Result<(), CmdError> {
    use crate::server::cluster::Refusal;
    let guard = cur.ctx.borrow();
    let Some(cl) = guard.srv.cluster.get() else {
        return Ok(());
    };
    if guard.client.must_obey() {
        return Ok(());
    }
    let shard_pubsub = crate::server::cluster::is_shard_pubsub(entry.spec.name);
    match cl.check(
        &guard.srv.config,
        entry.spec.key_args(cmd),
        writes,
        shard_pubsub,
    ) {
        Ok(None) => Ok(()),
        Ok(Some(slot)) => {
            if !cur.mode.allow_cross_slot {
                match cur.slot.get() {
                    None => cur.slot.set(Some(slot)),
                    Some(s) if s != slot => {
                        return Err(CmdError::err(
                            "Script attempted to access keys that do not hash to the same slot",
                        ))
                    }
                    Some(_) => {}
                }
            }
            Ok(())
        }
        Err(Refusal::DownReadOnly) => Err(CmdError::err(
            "Script attempted to execute a write command while the cluster is down and readonly",
        )),
        Err(Refusal::Down) => Err(CmdError::err(
            "Script attempted to execute a command while the cluster is down",
        )),
        Err(_) => Err(CmdError::err(
            "Script attempted to access a non local key in a cluster node",
        )),
    }
}

/// A failed `redis.call` raises the error, a failed `redis.pcall` returns
/// it as an error table.
fn call_failed(lua: &Lua, e: &CmdError, counted: bool, raising: bool) -> mlua::Result<Value> {
    if raising {
        Err(raise_marked(lua, e, counted))
    } else {
        Ok(Value::Table(err_table_marked(lua, e, counted)?))
    }
}

/// `redis.call` / `redis.pcall` with arguments [`raw_redis_call`] does not
/// take (other than strings and numbers, or none), or outside a script:
/// answers Redis's error for them.
fn redis_call_refused(lua: &Lua, argv: Variadic<Value>, raising: bool) -> mlua::Result<Value> {
    if current().is_none() {
        return Err(mlua::Error::RuntimeError(
            "redis.call is only available while a script runs".into(),
        ));
    }
    let e = match lua_argv(&argv) {
        Err(e) => e,
        Ok(_) => CmdError::INTERNAL,
    };
    call_failed(lua, &e, false, raising)
}

/// How [`raw_call_inner`] left the Lua stack.
enum RawCall {
    /// The reply is on top.
    Pushed,
    /// The arguments need [`redis_call_refused`] (upvalue 1).
    Refused,
    /// An error text and its `counted` flag are on top, for the failure
    /// helper (upvalue 2) to raise or return.
    Failed,
}

/// `redis.call` and `redis.pcall`, as Lua C functions: the arguments are
/// read off the Lua stack and the reply is pushed onto it directly, which
/// is most of the cost of a small script (mlua's callback machinery takes a
/// registry reference per argument and per value). Upvalue 1 handles
/// refused arguments, upvalue 2 the errors (see [`RawCall`]); both are mlua
/// functions of the right flavour (raising or not).
///
/// # Safety
/// Called by Lua only (the state is valid). Lua errors unwind by longjmp,
/// so when this frame calls into Lua (`lua_call`), no Rust value with a
/// destructor is alive in it: [`raw_call_inner`] has returned. Inside it,
/// a Lua allocation failure would longjmp over its frame; Lua's allocator
/// here has no limit, so that only happens when the process itself is out
/// of memory (where Rust's own allocations abort).
unsafe extern "C-unwind" fn raw_redis_call(state: *mut mlua::ffi::lua_State) -> std::ffi::c_int {
    use mlua::ffi;
    match raw_call_inner(state) {
        RawCall::Pushed => 1,
        RawCall::Refused => {
            let n = ffi::lua_gettop(state);
            ffi::lua_pushvalue(state, ffi::lua_upvalueindex(1));
            ffi::lua_insert(state, 1);
            ffi::lua_call(state, n, 1);
            1
        }
        RawCall::Failed => {
            ffi::lua_pushvalue(state, ffi::lua_upvalueindex(2));
            ffi::lua_insert(state, -3);
            ffi::lua_call(state, 2, 1);
            1
        }
    }
}

/// The body of [`raw_redis_call`].
unsafe fn raw_call_inner(state: *mut mlua::ffi::lua_State) -> RawCall {
    use mlua::ffi;
    let Some(cur) = current() else {
        return RawCall::Refused;
    };
    let n = ffi::lua_gettop(state);
    if n < 1 {
        return RawCall::Refused;
    }
    let mut cmd = Vec::with_capacity(n as usize);
    for i in 1..=n {
        match ffi::lua_type(state, i) {
            ffi::LUA_TSTRING => {
                let mut len = 0usize;
                let p = ffi::lua_tolstring(state, i, &mut len);
                cmd.push(Bytes::copy_from_slice(std::slice::from_raw_parts(
                    p.cast::<u8>(),
                    len,
                )));
            }
            ffi::LUA_TNUMBER => cmd.push(number_arg(ffi::lua_tonumber(state, i))),
            _ => return RawCall::Refused,
        }
    }
    // Copied: the arguments leave the stack, which a call with Redis's
    // maximum of arguments has filled to Lua's limit for a C function.
    ffi::lua_settop(state, 0);
    let resp3 = resp3_selected();
    let failed = match script_call(cur, cmd, resp3) {
        Ok(reply) => match push_reply(state, reply, resp3) {
            Ok(()) => return RawCall::Pushed,
            Err(e) => (e, false),
        },
        Err(f) => f,
    };
    let (e, counted) = failed;
    let text = e.as_str().trim_end_matches(['\r', '\n']);
    ffi::lua_pushlstring_(state, text.as_ptr().cast(), text.len());
    ffi::lua_pushboolean(state, i32::from(counted));
    RawCall::Failed
}

/// Pushes a command reply as the script sees it (Redis's RESP→Lua
/// conversion) onto the Lua stack. `Err` when the stack cannot grow (a
/// reply nested beyond Lua's limits), with nothing pushed.
unsafe fn push_reply(
    state: *mut mlua::ffi::lua_State,
    r: Reply,
    resp3: bool,
) -> Result<(), CmdError> {
    use mlua::ffi;
    if ffi::lua_checkstack(state, 4) == 0 {
        return Err(CmdError::err("reached lua stack limit"));
    }
    let push_str = |b: &[u8]| ffi::lua_pushlstring_(state, b.as_ptr().cast(), b.len());
    // A table with one field `name` set to the string `b`.
    let field_table = |name: &std::ffi::CStr, b: &[u8]| {
        ffi::lua_createtable(state, 0, 1);
        ffi::lua_pushlstring_(state, b.as_ptr().cast(), b.len());
        ffi::lua_setfield(state, -2, name.as_ptr());
    };
    // Pushes the elements of `v` into the table on top as 1..n.
    let array = |v: Vec<Reply>| -> Result<(), CmdError> {
        ffi::lua_createtable(state, i32::try_from(v.len()).unwrap_or(0), 0);
        for (i, x) in (1..).zip(v) {
            if let Err(e) = push_reply(state, x, resp3) {
                ffi::lua_pop(state, 1);
                return Err(e);
            }
            ffi::lua_rawseti_(state, -2, i);
        }
        Ok(())
    };
    match r {
        Reply::Int(n) => ffi::lua_pushnumber(state, n as f64),
        Reply::Bulk(b) | Reply::Raw(b) => push_str(&b),
        // RESP3 types a RESP2 script sees as plain strings.
        Reply::Verbatim(fmt, b) if resp3 => {
            ffi::lua_createtable(state, 0, 1);
            ffi::lua_createtable(state, 0, 2);
            push_str(&fmt);
            ffi::lua_setfield(state, -2, c"format".as_ptr());
            push_str(&b);
            ffi::lua_setfield(state, -2, c"string".as_ptr());
            ffi::lua_setfield(state, -2, c"verbatim_string".as_ptr());
        }
        Reply::Verbatim(_, b) => push_str(&b),
        Reply::BigNumber(n) if resp3 => field_table(c"big_number", &n),
        Reply::BigNumber(n) => push_str(&n),
        Reply::Null | Reply::NullArray => {
            if resp3 {
                ffi::lua_pushnil(state)
            } else {
                ffi::lua_pushboolean(state, 0)
            }
        }
        Reply::Status(s) => field_table(c"ok", s.as_bytes()),
        Reply::StatusOwned(s) => field_table(c"ok", s.as_bytes()),
        Reply::Error(e) => {
            field_table(c"err", e.as_str().trim_end_matches(['\r', '\n']).as_bytes())
        }
        Reply::Array(v) | Reply::Push(v) => array(v)?,
        Reply::Set(v) if resp3 => {
            ffi::lua_createtable(state, 0, 1);
            ffi::lua_createtable(state, 0, i32::try_from(v.len()).unwrap_or(0));
            for x in v {
                // A nil key cannot be stored (Lua would raise).
                if matches!(x, Reply::Null | Reply::NullArray) {
                    continue;
                }
                if let Err(e) = push_reply(state, x, resp3) {
                    ffi::lua_pop(state, 2);
                    return Err(e);
                }
                ffi::lua_pushboolean(state, 1);
                ffi::lua_rawset(state, -3);
            }
            ffi::lua_setfield(state, -2, c"set".as_ptr());
        }
        Reply::Set(v) => array(v)?,
        Reply::Map(v) if resp3 => {
            ffi::lua_createtable(state, 0, 1);
            ffi::lua_createtable(state, 0, i32::try_from(v.len()).unwrap_or(0));
            for (k, x) in v {
                if matches!(k, Reply::Null | Reply::NullArray) {
                    continue;
                }
                if let Err(e) = push_reply(state, k, resp3) {
                    ffi::lua_pop(state, 2);
                    return Err(e);
                }
                if let Err(e) = push_reply(state, x, resp3) {
                    ffi::lua_pop(state, 3);
                    return Err(e);
                }
                ffi::lua_rawset(state, -3);
            }
            ffi::lua_setfield(state, -2, c"map".as_ptr());
        }
        Reply::Map(v) => array(v.into_iter().flat_map(|(k, x)| [k, x]).collect())?,
        Reply::Double(d) if resp3 => {
            ffi::lua_createtable(state, 0, 1);
            ffi::lua_pushnumber(state, d);
            ffi::lua_setfield(state, -2, c"double".as_ptr());
        }
        Reply::Double(d) => push_str(crate::util::float::format_g17(d).as_bytes()),
        Reply::Bool(b) => {
            if resp3 {
                ffi::lua_pushboolean(state, i32::from(b))
            } else {
                ffi::lua_pushnumber(state, if b { 1.0 } else { 0.0 })
            }
        }
    }
    Ok(())
}

/// Converts `redis.call`'s arguments to a command line (strings and
/// numbers only, at least one), with Redis's error texts.
fn lua_argv(argv: &Variadic<Value>) -> Result<Vec<Bytes>, CmdError> {
    let mut cmd: Vec<Bytes> = Vec::with_capacity(argv.len());
    for a in argv.iter() {
        match a {
            Value::String(s) => cmd.push(Bytes::copy_from_slice(&s.as_bytes())),
            Value::Number(n) => cmd.push(number_arg(*n)),
            Value::Integer(n) => cmd.push(number_arg(*n as f64)),
            _ => {
                return Err(CmdError::err(
                    "Lua redis lib command arguments must be strings or integers",
                ))
            }
        }
    }
    if cmd.is_empty() {
        return Err(CmdError::err(
            "Please specify at least one argument for this redis lib call",
        ));
    }
    Ok(cmd)
}

/// `redis.acl_check_cmd(cmd, args...)`: whether the script's user may run
/// that command with those keys (nothing is logged in ACL LOG).
fn acl_check_cmd(lua: &Lua, argv: Variadic<Value>) -> mlua::Result<bool> {
    let Some(cur) = current() else {
        return Err(raise(
            lua,
            &CmdError::err("redis.acl_check_cmd can only be called inside a script invocation"),
        ));
    };
    let cmd = lua_argv(&argv).map_err(|e| raise(lua, &e))?;
    let entry = match table().lookup(&cmd) {
        Lookup::Found(e) => e,
        _ => {
            return Err(raise(
                lua,
                &CmdError::err("Invalid command passed to redis.acl_check_cmd()"),
            ))
        }
    };
    let guard = cur.ctx.borrow();
    Ok(match &guard.client.user {
        Some(h) if !h.unrestricted() => h.get().check(entry, &cmd).is_ok(),
        _ => true,
    })
}

/// What [`execute`] runs: an EVAL script body (KEYS/ARGV as globals) or a
/// library function (called with the keys and args tables).
enum Target {
    Eval(mlua::Function),
    Function(mlua::Function),
}

/// Runs `f` with this thread's interpreter (created, or recreated after
/// SCRIPT FLUSH, on demand).
fn with_state(ctx: &mut Ctx<'_>, f: impl FnOnce(&Lua, &mut Ctx<'_>) -> CmdResult) -> CmdResult {
    let generation = ctx.srv.scripts.generation.load(Ordering::SeqCst);
    STATE.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(g, _)| *g != generation) {
            let lua = new_state().map_err(|e| CmdError::err(format!("cannot start Lua: {e}")))?;
            let hot =
                Hot::new(&lua).map_err(|e| CmdError::err(format!("cannot start Lua: {e}")))?;
            install_watchdog(&lua);
            HOT.with(|h| *h.borrow_mut() = Some(hot));
            *slot = Some((generation, lua));
        }
        let Some((_, lua)) = slot.as_ref() else {
            return Err(CmdError::INTERNAL);
        };
        f(lua, ctx)
    })
}

thread_local! {
    /// Set when [`raise_marked`] parked an error in `__cinnabar_pending`,
    /// so [`execute`] clears that global only when it was used.
    static RAISED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Sets the globals KEYS and ARGV to fresh arrays of `keys` and `args`,
/// through the C API in one protected call: mlua's safe API would take a
/// registry slot per string and per table, which costs more than the
/// strings themselves for the few short arguments a typical script gets.
fn set_key_arrays(lua: &Lua, keys: &[Bytes], args: &[Bytes]) -> mlua::Result<()> {
    use mlua::ffi;
    // Stack use: the global's name, its table and one element (exec_raw
    // guarantees three free slots).
    unsafe fn set_array(state: *mut ffi::lua_State, name: &[u8], items: &[Bytes]) {
        ffi::lua_pushlstring_(state, name.as_ptr().cast(), name.len());
        ffi::lua_createtable(state, i32::try_from(items.len()).unwrap_or(0), 0);
        for (i, b) in (1..).zip(items) {
            ffi::lua_pushlstring_(state, b.as_ptr().cast(), b.len());
            ffi::lua_rawseti_(state, -2, i);
        }
        ffi::lua_rawset(state, ffi::LUA_GLOBALSINDEX);
    }
    if i32::try_from(keys.len().max(args.len())).is_err() {
        return Err(mlua::Error::RuntimeError("too many arguments".into()));
    }
    // SAFETY: the closure only pushes values it pops again (the stack is
    // balanced, within the three slots exec_raw checked), runs in protected
    // mode (a memory error is a Lua error, not a longjmp over Rust frames:
    // there are no Rust values with destructors in flight), and the byte
    // slices outlive the call.
    unsafe {
        lua.exec_raw::<()>((), |state| {
            set_array(state, b"KEYS", keys);
            set_array(state, b"ARGV", args);
        })
    }
}

fn execute(
    lua: &Lua,
    ctx: &mut Ctx<'_>,
    target: Target,
    label: &str,
    keys: &[Bytes],
    args: &[Bytes],
    mode: RunMode,
) -> CmdResult {
    let sha = label;
    ERROR_COUNTED.with(|c| c.set(false));
    let lua_err = |e: mlua::Error| CmdError::err(format!("Error running script: {e}"));
    // KEYS and ARGV: globals for an EVAL body, arguments of a function
    // (`fn_args`, None for an EVAL body).
    let (func, fn_args) = match target {
        Target::Eval(f) => {
            set_key_arrays(lua, keys, args).map_err(lua_err)?;
            (f, None)
        }
        Target::Function(f) => {
            let mk = |v: &[Bytes]| -> mlua::Result<Table> {
                let t = lua.create_table_with_capacity(v.len(), 0)?;
                for (i, b) in v.iter().enumerate() {
                    t.raw_set(i + 1, lua.create_string(&b[..])?)?;
                }
                Ok(t)
            };
            (
                f,
                Some((mk(keys).map_err(lua_err)?, mk(args).map_err(lua_err)?)),
            )
        }
    };
    RESP.with(|r| r.set(2));
    crate::server::propagate::set_current_targets(crate::server::propagate::to::ALL);

    THRESHOLD_MS.store(ctx.srv.config.busy_reply_threshold(), Ordering::Relaxed);
    STARTED_MS.store(unix_ms(), Ordering::Relaxed);
    KILL.store(false, Ordering::SeqCst);
    WROTE.store(false, Ordering::SeqCst);
    RUNNING_EVAL.store(fn_args.is_none(), Ordering::SeqCst);
    RUNNING.store(true, Ordering::SeqCst);
    let prev_deny = ctx.client.deny_blocking;
    ctx.client.deny_blocking = true;
    let saved_db = ctx.client.db;

    let declared_slot = ctx
        .srv
        .cluster
        .get()
        .and(keys.first())
        .map(|k| crate::server::cluster::key_slot(k));
    let running = Running {
        ctx: RefCell::new(ctx),
        mode,
        dirty: std::cell::Cell::new(false),
        slot: std::cell::Cell::new(declared_slot),
    };
    CURRENT.with(|c| c.set(&running as *const Running<'_, '_> as *const ()));
    let current_guard = CurrentGuard;
    let result = (|| -> mlua::Result<CmdResult> {
        let (handler, xpcall, fcall) = HOT
            .with(|h| {
                h.borrow()
                    .as_ref()
                    .map(|h| (h.handler.clone(), h.xpcall.clone(), h.fcall.clone()))
            })
            .ok_or_else(|| mlua::Error::RuntimeError("no Lua state".into()))?;
        let (ok, v): (bool, Value) = match &fn_args {
            None => xpcall.call((func.clone(), handler))?,
            Some((keys_t, args_t)) => {
                fcall.call((func.clone(), handler, keys_t.clone(), args_t.clone()))?
            }
        };
        let resp3 = resp3_selected();
        let counted = |v: &Value| match v {
            Value::Table(t) => t
                .raw_get::<Option<bool>>(COUNTED_FIELD)
                .ok()
                .flatten()
                .unwrap_or(false),
            _ => false,
        };
        if ok {
            // A returned error table is the command's error reply.
            return Ok(match lua_to_reply(v.clone(), resp3, 0) {
                Reply::Error(e) => {
                    if counted(&v) {
                        ERROR_COUNTED.with(|c| c.set(true));
                    }
                    Err(e)
                }
                r => Ok(r),
            });
        }
        if counted(&v) {
            ERROR_COUNTED.with(|c| c.set(true));
        }
        // An error table {err, source, line} from the handler.
        let msg = match &v {
            Value::Table(t) => {
                let err: String = t
                    .raw_get::<Option<String>>("err")?
                    .unwrap_or_else(|| "ERR unknown error".into());
                let source: Option<String> = t.raw_get("source")?;
                let line: Option<i64> = t.raw_get("line")?;
                match (source, line) {
                    (Some(s), Some(l)) => format!("{err} script: {sha}, on {s}:{l}."),
                    _ => err,
                }
            }
            other => format!(
                "ERR Error running script {sha}, {}",
                other.to_string().unwrap_or_default()
            ),
        };
        Ok(Err(CmdError::new(msg)))
    })();
    drop(current_guard);
    let ctx = running.ctx.into_inner();
    ctx.client.deny_blocking = prev_deny;
    ctx.client.select(saved_db);
    let killed = KILL.swap(false, Ordering::SeqCst);
    RUNNING.store(false, Ordering::SeqCst);
    if killed {
        install_watchdog(lua);
    }
    BUSY.store(false, Ordering::SeqCst);
    if RAISED.with(|r| r.replace(false)) {
        let _ = lua.globals().raw_set("__cinnabar_pending", Value::Nil);
    }
    if killed && !matches!(&result, Ok(Err(e)) if e.as_str().contains(KILLED)) {
        ERROR_COUNTED.with(|c| c.set(false));
        // The script swallowed the kill error (pcall) and ended anyway.
        return Err(CmdError::err(format!(
            "{KILLED} script: {sha}, on @user_script:1."
        )));
    }
    match result {
        Ok(r) => r,
        Err(e) => Err(lua_err(e)),
    }
}
