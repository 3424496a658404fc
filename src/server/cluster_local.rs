//! `cinnabar cluster`: a local Redis Cluster of one process per primary.
//!
//! The launcher writes each node's nodes.conf (the same topology in every
//! file, [`super::cluster::local_cluster_files`]) the first time, starts
//! the nodes as child processes of the same binary, and supervises them:
//! SIGINT/SIGTERM are passed on to every node (each shuts down as a server
//! does, saving if configured), and a node that exits, for example one
//! killed to rehearse a shard outage, is reported and left down while the
//! others keep serving, until SIGHUP starts the exited nodes again. It
//! exits when every node has.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

/// What to launch.
#[derive(Debug, Clone)]
pub struct Plan {
    pub shards: u16,
    pub port: u16,
    pub announce_ip: String,
    pub dir: PathBuf,
    /// A configuration file for every node (first argument).
    pub config: Option<PathBuf>,
    /// TLS-only nodes: `tls-port` is the node's port, `port` 0.
    pub tls: bool,
    pub node_args: Vec<String>,
}

/// Runs the cluster until every node has exited; returns the exit code.
pub fn run(plan: &Plan) -> i32 {
    match start(plan) {
        Ok(launch) => supervise(launch),
        Err(e) => {
            eprintln!("cinnabar cluster: {e}");
            1
        }
    }
}

fn node_dir(plan: &Plan, i: u16) -> PathBuf {
    plan.dir.join((plan.port + i).to_string())
}

/// Writes the nodes' files unless every node has one already.
fn prepare(plan: &Plan) -> Result<(), String> {
    if u32::from(plan.port) + u32::from(plan.shards) > 65536 {
        return Err("the nodes' ports would pass 65535".into());
    }
    let files: Vec<PathBuf> = (0..plan.shards)
        .map(|i| node_dir(plan, i).join("nodes.conf"))
        .collect();
    let existing = files.iter().filter(|f| f.exists()).count();
    if existing == files.len() {
        return Ok(());
    }
    if existing > 0 {
        return Err(format!(
            "{} holds the files of a different cluster (some nodes.conf exist, not all); remove it or choose another --dir",
            plan.dir.display()
        ));
    }
    let texts = super::cluster::local_cluster_files(&plan.announce_ip, plan.port, plan.shards);
    for (i, (file, text)) in files.iter().zip(texts).enumerate() {
        let dir = node_dir(plan, i as u16);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        super::cluster::write_atomically(file, text.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    }
    Ok(())
}

/// What the launcher needs to start (and restart) its nodes.
struct Launch {
    exe: PathBuf,
    /// Path parameters made absolute (see [`absolute_path_overrides`]).
    absolute_paths: Vec<String>,
    plan: Plan,
    /// Per node: its port and its process while it runs.
    nodes: Vec<(u16, Option<Child>)>,
}

impl Launch {
    /// Starts node `i`.
    fn spawn(&self, i: u16) -> std::io::Result<Child> {
        let plan = &self.plan;
        let port = plan.port + i;
        let mut command = Command::new(&self.exe);
        if let Some(conf) = &plan.config {
            command.arg(absolute(conf));
        }
        if plan.tls {
            command.args(["--port", "0", "--tls-port"]);
        } else {
            command.arg("--port");
        }
        command
            .arg(port.to_string())
            .args(&self.absolute_paths)
            // A profile's Enterprise policy gives way to the cluster API.
            .args(["--cluster-policy", "none"])
            .args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ])
            .arg("--dir")
            .arg(absolute(&node_dir(plan, i)))
            .arg("--cluster-announce-ip")
            .arg(&plan.announce_ip)
            .args(&plan.node_args)
            .spawn()
    }

    fn running(&mut self) -> impl Iterator<Item = &mut Child> {
        self.nodes.iter_mut().filter_map(|(_, c)| c.as_mut())
    }
}

fn start(plan: &Plan) -> Result<Launch, String> {
    prepare(plan)?;
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find the cinnabar binary: {e}"))?;
    let mut launch = Launch {
        exe,
        absolute_paths: absolute_path_overrides(plan)?,
        plan: plan.clone(),
        nodes: Vec::new(),
    };
    for i in 0..plan.shards {
        let port = plan.port + i;
        match launch.spawn(i) {
            Ok(c) => launch.nodes.push((port, Some(c))),
            Err(e) => {
                stop_all(&mut launch);
                return Err(format!("cannot start the node on port {port}: {e}"));
            }
        }
    }
    let last = plan.port + plan.shards - 1;
    println!(
        "Cinnabar cluster: {} primaries on {}:{}-{} (files in {}).\nConnect with: redis-cli -c{} -p {}",
        plan.shards,
        plan.announce_ip,
        plan.port,
        last,
        plan.dir.display(),
        if plan.tls { " --tls --cacert <ca.crt>" } else { "" },
        plan.port
    );
    Ok(launch)
}

/// Parameters naming files that a node reads at startup.
const PATH_PARAMS: &[&str] = &[
    "tls-cert-file",
    "tls-key-file",
    "tls-client-cert-file",
    "tls-client-key-file",
    "tls-ca-cert-file",
    "tls-ca-cert-dir",
    "tls-dh-params-file",
    "aclfile",
    "entra-public-key-file",
    "entra-jwks-file",
];

/// Each node runs in its own `dir`, where a relative path from the
/// configuration or the node arguments would no longer resolve: those are
/// passed on as absolute paths (from the launcher's working directory).
fn absolute_path_overrides(plan: &Plan) -> Result<Vec<String>, String> {
    let mut args: Vec<String> = Vec::new();
    if let Some(c) = &plan.config {
        args.push(absolute(c).display().to_string());
    }
    args.extend(plan.node_args.iter().cloned());
    let (_, config) = crate::config::load(args).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for name in PATH_PARAMS {
        for (_, value) in config.get_matching(name.as_bytes()) {
            if !value.is_empty() && Path::new(&value).is_relative() {
                out.push(format!("--{name}"));
                out.push(absolute(Path::new(&value)).display().to_string());
            }
        }
    }
    Ok(out)
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

fn signal(child: &Child, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) with a pid we spawned and have not reaped.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

fn stop_all(launch: &mut Launch) {
    launch.running().for_each(|c| signal(c, libc::SIGTERM));
    launch.running().for_each(|c| {
        let _ = c.wait();
    });
}

/// Waits for the nodes, passing SIGINT/SIGTERM on to them. SIGHUP starts
/// again every node that has exited (the end of a rehearsed shard outage:
/// the node comes back with its files, on the same port). Returns once no
/// node runs.
fn supervise(mut launch: Launch) -> i32 {
    let stop = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cinnabar cluster: {e}");
            stop_all(&mut launch);
            return 1;
        }
    };
    stop.block_on(async move {
        use tokio::signal::unix::{signal as on, SignalKind};
        let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
            on(SignalKind::terminate()),
            on(SignalKind::interrupt()),
            on(SignalKind::hangup()),
        ) else {
            stop_all(&mut launch);
            return 1;
        };
        let mut worst = 0;
        let mut stopping = false;
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        while launch.nodes.iter().any(|(_, c)| c.is_some()) {
            let stop_now = tokio::select! {
                _ = term.recv() => true,
                _ = int.recv() => true,
                _ = hup.recv() => {
                    if !stopping {
                        worst |= reap(&mut launch);
                        restart_exited(&mut launch);
                    }
                    false
                }
                _ = tick.tick() => false,
            };
            // Once per signal, as before: a node that gets SIGTERM again
            // while saving on its way out would stop without finishing.
            if stop_now {
                stopping = true;
                launch.running().for_each(|c| signal(c, libc::SIGTERM));
            }
            worst |= reap(&mut launch);
        }
        worst
    })
}

/// Notes the nodes that have exited; 1 if one failed.
fn reap(launch: &mut Launch) -> i32 {
    let mut worst = 0;
    for (port, slot) in &mut launch.nodes {
        let Some(c) = slot else { continue };
        match c.try_wait() {
            Ok(Some(status)) => {
                eprintln!("cinnabar cluster: the node on port {port} exited ({status})");
                if !status.success() {
                    worst = 1;
                }
                *slot = None;
            }
            Ok(None) => {}
            Err(_) => *slot = None,
        }
    }
    worst
}

/// SIGHUP: starts again the nodes that have exited.
fn restart_exited(launch: &mut Launch) {
    for i in 0..launch.nodes.len() {
        if launch.nodes[i].1.is_some() {
            continue;
        }
        let port = launch.nodes[i].0;
        match launch.spawn(i as u16) {
            Ok(c) => {
                eprintln!("cinnabar cluster: the node on port {port} started again");
                launch.nodes[i].1 = Some(c);
            }
            Err(e) => eprintln!("cinnabar cluster: cannot start the node on port {port}: {e}"),
        }
    }
}
