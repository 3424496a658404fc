//! Real client libraries against the real server: redis-py (RESP2 and
//! RESP3, asyncio, cluster, TLS) and, from Node.js, ioredis and node-redis
//! (RESP2 and RESP3, client-side caching, cluster, TLS). The checks live in
//! tests/clients/ (redis_py_check.py, node/check.mjs); this test starts a
//! server with a plain and a TLS port and a three-shard `cinnabar cluster`,
//! runs each script against them and fails with the script's output when a
//! check fails.
//!
//! The libraries come from `tests/clients/setup.sh` (a Python venv in
//! target/clients-venv, `npm ci` in tests/clients/node); `.ci/run` runs it
//! and sets `CINNABAR_REQUIRE_CLIENTS=1`, which turns a missing library
//! into a failure. Without it, a machine without them skips with a note.

mod common;
use common::free_cluster_ports;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_cinnabar");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn required() -> bool {
    std::env::var_os("CINNABAR_REQUIRE_CLIENTS").is_some_and(|v| v == "1")
}

/// Skips (or, when the libraries are required, fails) with `why`.
fn unavailable(why: &str) {
    assert!(!required(), "client library missing: {why}");
    eprintln!("note: {why}; run tests/clients/setup.sh to include this test");
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        // SIGTERM first: `cinnabar cluster` forwards it to its nodes.
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.0.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "port {port} never opened");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Everything the scripts talk to: one server with a plain and a TLS port
/// (certificates from `cinnabar dev-cert`) and a three-shard cluster.
struct Servers {
    _dir: tempfile::TempDir,
    _server: Proc,
    _cluster: Proc,
    args: Vec<String>,
}

fn start_servers() -> Servers {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = dir.path().join("tls");
    let out = Command::new(BIN)
        .args(["dev-cert", "--out"])
        .arg(&certs)
        .output()
        .expect("run dev-cert");
    assert!(out.status.success(), "dev-cert: {out:?}");
    let ports = free_cluster_ports(5);
    let (port, tls_port, cluster_port) = (ports, ports + 1, ports + 2);
    let data = dir.path().join("server");
    std::fs::create_dir_all(&data).expect("mkdir");
    let server = Command::new(BIN)
        .args([
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--enable-debug-command",
            "yes",
        ])
        .args([
            "--port",
            &port.to_string(),
            "--tls-port",
            &tls_port.to_string(),
        ])
        .arg("--tls-cert-file")
        .arg(certs.join("server.crt"))
        .arg("--tls-key-file")
        .arg(certs.join("server.key"))
        .arg("--tls-ca-cert-file")
        .arg(certs.join("ca.crt"))
        .args(["--tls-auth-clients", "no", "--dir"])
        .arg(&data)
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn cinnabar");
    let server = Proc(server);
    let cluster = Command::new(BIN)
        .args([
            "cluster",
            "--shards",
            "3",
            "--port",
            &cluster_port.to_string(),
            "--dir",
        ])
        .arg(dir.path().join("cluster"))
        .args(["--", "--save", "", "--bind", "127.0.0.1"])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn cinnabar cluster");
    let cluster = Proc(cluster);
    for p in [
        port,
        tls_port,
        cluster_port,
        cluster_port + 1,
        cluster_port + 2,
    ] {
        wait_listening(p);
    }
    let args = vec![
        "--port".to_string(),
        port.to_string(),
        "--tls-port".to_string(),
        tls_port.to_string(),
        "--ca".to_string(),
        certs.join("ca.crt").display().to_string(),
        "--cluster-port".to_string(),
        cluster_port.to_string(),
    ];
    Servers {
        _dir: dir,
        _server: server,
        _cluster: cluster,
        args,
    }
}

/// Runs a check script; panics with its output unless it exits 0.
fn run_script(program: &Path, script: &Path, cwd: &Path, args: &[String]) {
    let mut child = Command::new(program)
        .arg(script)
        .args(args)
        .current_dir(cwd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
    // Bounded: the scripts' own waits are short, this is the backstop.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("script output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    assert!(
        out.status.success(),
        "{} failed ({:?}):\n{text}",
        script.display(),
        out.status
    );
    assert!(text.contains("ok "), "no check ran:\n{text}");
}

#[test]
fn redis_py() {
    let python = std::env::var_os("CINNABAR_CLIENTS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/clients-venv/bin/python"));
    let has_lib = Command::new(&python)
        .args(["-c", "import redis"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_lib {
        return unavailable(&format!("redis-py not importable by {}", python.display()));
    }
    let servers = start_servers();
    let dir = root().join("tests/clients");
    run_script(&python, &dir.join("redis_py_check.py"), &dir, &servers.args);
}

#[test]
fn ioredis_and_node_redis() {
    let dir = root().join("tests/clients/node");
    let has_node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_node
        || !dir.join("node_modules/ioredis").is_dir()
        || !dir.join("node_modules/redis").is_dir()
    {
        return unavailable("node or tests/clients/node/node_modules missing");
    }
    let servers = start_servers();
    run_script(
        Path::new("node"),
        &dir.join("check.mjs"),
        &dir,
        &servers.args,
    );
}
