//! TLS, developer certificates and access keys, through the real server:
//! certificates come from `cinnabar dev-cert`, clients are tokio-rustls
//! (and redis-cli when it was built with TLS).

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader as ABufReader};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

const BIN: &str = env!("CARGO_BIN_EXE_cinnabar");

/// Runs `cinnabar dev-cert --out DIR` and returns its stdout.
fn dev_cert(dir: &Path) -> String {
    let out = Command::new(BIN)
        .args(["dev-cert", "--out"])
        .arg(dir)
        .output()
        .expect("run dev-cert");
    assert!(out.status.success(), "dev-cert failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A server started with TLS arguments; killed on drop.
struct Srv {
    child: Child,
    tls: SocketAddr,
    tcp: Option<SocketAddr>,
    log: Arc<std::sync::Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Drop for Srv {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(pre: &[&str], args: &[&str]) -> (Child, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let child = Command::new(BIN)
        .args(pre)
        .args([
            "--bind",
            "127.0.0.1",
            "--ephemeral-port",
            "yes",
            "--save",
            "",
            "--dir",
        ])
        .arg(dir.path())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cinnabar");
    (child, dir)
}

/// Starts a server (Redis-style `args`, optionally after a config file)
/// and waits for its TLS address.
fn start_cfg(pre: &[&str], args: &[&str]) -> Srv {
    let (mut child, dir) = spawn(pre, args);
    let stdout = child.stdout.take().expect("stdout");
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log2 = log.clone();
    let (tx, rx) = std::sync::mpsc::channel::<(&'static str, SocketAddr)>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            for kind in ["tcp", "tls"] {
                let pat = format!("accept connections {kind} on ");
                if let Some(rest) = line.split(pat.as_str()).nth(1) {
                    if let Ok(a) = rest.trim().parse::<SocketAddr>() {
                        let _ = tx.send((kind, a));
                    }
                }
            }
            if let Ok(mut l) = log2.lock() {
                l.push(line);
            }
        }
    });
    let mut tcp = None;
    let tls = loop {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(("tls", a)) => break a,
            Ok((_, a)) => tcp = Some(a),
            Err(_) => {
                let _ = child.kill();
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                panic!("server did not report a TLS address; stderr: {err}");
            }
        }
    };
    // A plain listener is logged before the TLS one.
    if let Ok(("tcp", a)) = rx.recv_timeout(Duration::from_millis(50)) {
        tcp = Some(a);
    }
    Srv {
        child,
        tls,
        tcp,
        log,
        _dir: dir,
    }
}

fn start(args: &[&str]) -> Srv {
    start_cfg(&[], args)
}

/// Starts a server expected to fail; returns its stderr.
fn start_fails(args: &[&str]) -> String {
    let (mut child, _dir) = spawn(&[], args);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            assert!(!st.success(), "server should fail to start");
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("server did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    err
}

fn p(dir: &Path, f: &str) -> String {
    dir.join(f).display().to_string()
}

/// The usual TLS arguments for certificates in `dir`.
fn tls_args(dir: &Path) -> Vec<String> {
    vec![
        "--port".into(),
        "0".into(),
        "--tls-port".into(),
        "6380".into(),
        "--tls-cert-file".into(),
        p(dir, "server.crt"),
        "--tls-key-file".into(),
        p(dir, "server.key"),
        "--tls-ca-cert-file".into(),
        p(dir, "ca.crt"),
        "--tls-auth-clients".into(),
        "no".into(),
    ]
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(|s| s.as_str()).collect()
}

fn certs(path: &Path) -> Vec<CertificateDer<'static>> {
    let mut r = BufReader::new(std::fs::File::open(path).expect("open cert"));
    rustls_pemfile::certs(&mut r)
        .collect::<Result<Vec<_>, _>>()
        .expect("parse certs")
}

fn key(path: &Path) -> PrivateKeyDer<'static> {
    let mut r = BufReader::new(std::fs::File::open(path).expect("open key"));
    rustls_pemfile::private_key(&mut r)
        .expect("parse key")
        .expect("a key")
}

/// Client options.
#[derive(Clone, Copy, Default)]
struct Opts<'a> {
    /// Only this TLS version (12 or 13); both when 0.
    version: u8,
    /// Present the dev-cert client certificate from this directory.
    client_cert: Option<&'a Path>,
}

fn client_config(ca_dir: &Path, o: Opts<'_>) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for c in certs(&ca_dir.join("ca.crt")) {
        roots.add(c).expect("add root");
    }
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = match o.version {
        12 => vec![&rustls::version::TLS12],
        13 => vec![&rustls::version::TLS13],
        _ => vec![&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let b = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .expect("versions")
        .with_root_certificates(roots);
    let cfg = match o.client_cert {
        Some(d) => b
            .with_client_auth_cert(certs(&d.join("client.crt")), key(&d.join("client.key")))
            .expect("client cert"),
        None => b.with_no_client_auth(),
    };
    Arc::new(cfg)
}

/// A TLS client connection speaking RESP.
struct Conn {
    s: ABufReader<TlsStream<TcpStream>>,
}

async fn try_connect(addr: SocketAddr, ca_dir: &Path, o: Opts<'_>) -> std::io::Result<Conn> {
    let tcp = TcpStream::connect(addr).await?;
    let connector = TlsConnector::from(client_config(ca_dir, o));
    let name = ServerName::try_from("localhost").expect("name");
    let tls = tokio::time::timeout(Duration::from_secs(5), connector.connect(name, tcp))
        .await
        .map_err(|_| std::io::Error::other("handshake timeout"))??;
    Ok(Conn {
        s: ABufReader::new(tls),
    })
}

async fn connect(addr: SocketAddr, ca_dir: &Path, o: Opts<'_>) -> Conn {
    try_connect(addr, ca_dir, o).await.expect("TLS connect")
}

impl Conn {
    /// The negotiated protocol version.
    fn version(&self) -> Option<rustls::ProtocolVersion> {
        self.s.get_ref().get_ref().1.protocol_version()
    }

    /// Sends a command and returns its reply flattened to text, or an
    /// error if the connection failed.
    async fn try_cmd(&mut self, args: &[&str]) -> std::io::Result<String> {
        let mut v = format!("*{}\r\n", args.len());
        for a in args {
            v.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        self.s.get_mut().write_all(v.as_bytes()).await?;
        self.s.get_mut().flush().await?;
        tokio::time::timeout(Duration::from_secs(5), self.read_reply())
            .await
            .map_err(|_| std::io::Error::other("reply timeout"))?
    }

    async fn cmd(&mut self, args: &[&str]) -> String {
        self.try_cmd(args).await.expect("command")
    }

    fn read_reply(
        &mut self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<String>> + '_>> {
        Box::pin(async move {
            let mut line = String::new();
            if self.s.read_line(&mut line).await? == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "closed",
                ));
            }
            let line = line.trim_end().to_string();
            let (t, rest) = line.split_at(1);
            match t {
                "$" => {
                    let n: i64 = rest.parse().unwrap_or(-1);
                    if n < 0 {
                        return Ok("(nil)".into());
                    }
                    let mut buf = vec![0u8; n as usize + 2];
                    self.s.read_exact(&mut buf).await?;
                    buf.truncate(n as usize);
                    Ok(String::from_utf8_lossy(&buf).into_owned())
                }
                "*" | "%" => {
                    let n: i64 = rest.parse().unwrap_or(-1);
                    let n = if t == "%" { n * 2 } else { n };
                    let mut parts = Vec::new();
                    for _ in 0..n.max(0) {
                        parts.push(self.read_reply().await?);
                    }
                    Ok(format!("[{}]", parts.join(",")))
                }
                _ => Ok(line),
            }
        })
    }
}

#[tokio::test]
async fn tls_only_serves_commands_and_plain_port_is_off() {
    let certs = tempfile::tempdir().unwrap();
    let out = dev_cert(certs.path());
    for f in ["ca.crt", "ca.key", "server.crt", "server.key"] {
        assert!(certs.path().join(f).exists(), "{f} missing");
    }
    assert!(out.contains(&format!(
        "redis-cli --tls --cacert {}/ca.crt -p 6380 -a",
        certs.path().display()
    )));
    assert!(out.contains("rediss://:"));
    assert!(out.contains(",ssl=True,abortConnect=False"));

    let srv = start(&refs(&tls_args(certs.path())));
    assert!(srv.tcp.is_none(), "port 0 must not open a plain listener");
    let mut c = connect(srv.tls, certs.path(), Opts::default()).await;
    assert_eq!(c.cmd(&["PING"]).await, "+PONG");
    assert_eq!(c.cmd(&["SET", "k", "v"]).await, "+OK");
    assert_eq!(c.cmd(&["GET", "k"]).await, "v");
    assert_eq!(c.cmd(&["CONFIG", "GET", "port"]).await, "[port,0]");

    // Plain RESP on the TLS port gets no reply.
    let mut raw = TcpStream::connect(srv.tls).await.unwrap();
    raw.write_all(b"*1\r\n$4\r\nPING\r\n").await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), raw.read(&mut buf))
        .await
        .map(|r| r.unwrap_or(0))
        .unwrap_or(0);
    assert!(!String::from_utf8_lossy(&buf[..n]).contains("PONG"));
}

/// Starts a server without a TLS port; returns it with its plain address.
fn start_plain(args: &[&str]) -> (Child, tempfile::TempDir, SocketAddr) {
    let (mut child, dir) = spawn(&[], args);
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<SocketAddr>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.split("accept connections tcp on ").nth(1) {
                if let Ok(a) = rest.trim().parse::<SocketAddr>() {
                    let _ = tx.send(a);
                }
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(a) => (child, dir, a),
        Err(_) => {
            let _ = child.kill();
            panic!("server did not report its address");
        }
    }
}

/// CONFIG SET tls-port on a server started without TLS builds the TLS
/// configuration from the tls-* parameters and serves it at once (as
/// Redis's applyTLSPort); without a certificate it fails, changing
/// nothing.
#[tokio::test]
async fn config_set_tls_port_starts_tls_on_a_running_server() {
    let certs = tempfile::tempdir().unwrap();
    dev_cert(certs.path());
    let mut args = tls_args(certs.path());
    args[1] = "6379".into();
    args[3] = "0".into();
    let (mut child, _dir, tcp) = start_plain(&refs(&args));
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let port_s = port.to_string();
    assert_eq!(
        plain_cmd(tcp.port(), &["CONFIG", "SET", "tls-port", &port_s]).await,
        "+OK\r\n"
    );
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut c = connect(addr, certs.path(), Opts::default()).await;
    assert_eq!(c.cmd(&["PING"]).await, "+PONG");
    let _ = child.kill();
    let _ = child.wait();

    let (mut child, _dir, tcp) = start_plain(&["--port", "6379"]);
    assert_eq!(
        plain_cmd(tcp.port(), &["CONFIG", "SET", "tls-port", &port_s]).await,
        "-ERR CONFIG SET failed (possibly related to argument 'tls-port') - \
         Unable to update TLS configuration. Check server logs.\r\n"
    );
    assert_eq!(
        plain_cmd(tcp.port(), &["CONFIG", "GET", "tls-port"]).await,
        "*2\r\n$8\r\ntls-port\r\n$1\r\n0\r\n"
    );
    assert!(TcpStream::connect(addr).await.is_err());
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn plain_and_tls_listeners_together() {
    let certs = tempfile::tempdir().unwrap();
    dev_cert(certs.path());
    let mut args = tls_args(certs.path());
    args[1] = "6379".into();
    let srv = start(&refs(&args));
    let tcp = srv.tcp.expect("plain listener");
    assert_ne!(tcp, srv.tls);
    let mut raw = TcpStream::connect(tcp).await.unwrap();
    raw.write_all(b"*1\r\n$4\r\nPING\r\n").await.unwrap();
    let mut buf = [0u8; 7];
    raw.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"+PONG\r\n");
    let mut c = connect(srv.tls, certs.path(), Opts::default()).await;
    assert_eq!(c.cmd(&["PING"]).await, "+PONG");
}

#[tokio::test]
async fn tls12_and_tls13_both_negotiate() {
    let certs = tempfile::tempdir().unwrap();
    dev_cert(certs.path());
    let srv = start(&refs(&tls_args(certs.path())));
    for (v, want) in [
        (12, rustls::ProtocolVersion::TLSv1_2),
        (13, rustls::ProtocolVersion::TLSv1_3),
    ] {
        let mut c = connect(
            srv.tls,
            certs.path(),
            Opts {
                version: v,
                ..Default::default()
            },
        )
        .await;
        assert_eq!(c.cmd(&["PING"]).await, "+PONG");
        assert_eq!(c.version(), Some(want));
    }

    // tls-protocols TLSv1.3 refuses a TLS 1.2-only client.
    let mut args = tls_args(certs.path());
    args.extend(["--tls-protocols".into(), "TLSv1.3".into()]);
    let srv13 = start(&refs(&args));
    let r = try_connect(
        srv13.tls,
        certs.path(),
        Opts {
            version: 12,
            ..Default::default()
        },
    )
    .await;
    assert!(r.is_err(), "TLS 1.2 client must be refused");
    let mut c = connect(srv13.tls, certs.path(), Opts::default()).await;
    assert_eq!(c.cmd(&["PING"]).await, "+PONG");
}

#[tokio::test]
async fn client_certificates_per_tls_auth_clients() {
    let certs = tempfile::tempdir().unwrap();
    dev_cert(certs.path());
    let with_cert = Opts {
        client_cert: Some(certs.path()),
        ..Default::default()
    };
    for mode in ["yes", "optional"] {
        let mut args = tls_args(certs.path());
        let n = args.len();
        args[n - 1] = mode.into();
        let srv = start(&refs(&args));
        let mut c = connect(srv.tls, certs.path(), with_cert).await;
        assert_eq!(c.cmd(&["PING"]).await, "+PONG", "mode {mode}");
        // Without a certificate: refused with `yes` (TLS 1.3 reports it on
        // the first read), accepted with `optional`.
        let anon = match try_connect(srv.tls, certs.path(), Opts::default()).await {
            Ok(mut c) => c.try_cmd(&["PING"]).await.ok(),
            Err(_) => None,
        };
        if mode == "yes" {
            assert_eq!(anon, None, "a client without certificate must be refused");
        } else {
            assert_eq!(anon.as_deref(), Some("+PONG"));
        }
    }
    // `yes` without a CA is a startup error.
    let err = start_fails(&[
        "--port",
        "0",
        "--tls-port",
        "6380",
        "--tls-cert-file",
        &p(certs.path(), "server.crt"),
        "--tls-key-file",
        &p(certs.path(), "server.key"),
    ]);
    assert!(err.contains("tls-ca-cert-file"), "{err}");
}

#[tokio::test]
async fn bad_certificate_or_key_stops_startup() {
    let certs = tempfile::tempdir().unwrap();
    dev_cert(certs.path());
    let bad = certs.path().join("bad.crt");
    std::fs::write(&bad, "not a certificate\n").unwrap();
    let mut args = tls_args(certs.path());
    args[5] = bad.display().to_string();
    let err = start_fails(&refs(&args));
    assert!(err.contains("Failed to load certificate"), "{err}");
    assert!(err.contains(&bad.display().to_string()), "{err}");

    let mut args = tls_args(certs.path());
    args[7] = p(certs.path(), "missing.key");
    let err = start_fails(&refs(&args));
    assert!(err.contains("missing.key"), "{err}");

    // A key that does not match the certificate.
    let mut args = tls_args(certs.path());
    args[7] = p(certs.path(), "client.key");
    let err = start_fails(&refs(&args));
    assert!(err.contains("client.key"), "{err}");
}

#[tokio::test]
async fn config_set_reloads_certificates_and_keeps_connections() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    dev_cert(a.path());
    dev_cert(b.path());
    let srv = start(&refs(&tls_args(a.path())));
    let mut old = connect(srv.tls, a.path(), Opts::default()).await;
    assert_eq!(old.cmd(&["SET", "k", "1"]).await, "+OK");

    // A certificate without its key: refused, nothing changes.
    let r = old
        .cmd(&["CONFIG", "SET", "tls-cert-file", &p(b.path(), "server.crt")])
        .await;
    assert!(r.contains("Unable to update TLS configuration"), "got {r}");
    assert_eq!(
        old.cmd(&["CONFIG", "GET", "tls-cert-file"]).await,
        format!("[tls-cert-file,{}]", p(a.path(), "server.crt"))
    );
    let mut c = connect(srv.tls, a.path(), Opts::default()).await;
    assert_eq!(c.cmd(&["PING"]).await, "+PONG");

    // Certificate and key together: new handshakes use B's CA.
    let r = old
        .cmd(&[
            "CONFIG",
            "SET",
            "tls-cert-file",
            &p(b.path(), "server.crt"),
            "tls-key-file",
            &p(b.path(), "server.key"),
        ])
        .await;
    assert_eq!(r, "+OK");
    assert_eq!(
        old.cmd(&["INCR", "k"]).await,
        ":2",
        "old connection keeps going"
    );
    assert_eq!(c.cmd(&["GET", "k"]).await, "2");
    let mut nb = connect(srv.tls, b.path(), Opts::default()).await;
    assert_eq!(nb.cmd(&["GET", "k"]).await, "2");
    assert!(
        try_connect(srv.tls, a.path(), Opts::default())
            .await
            .is_err(),
        "the old CA no longer matches"
    );

    // Same path again re-reads the files (rotation in place).
    dev_cert(b.path());
    let r = old
        .cmd(&["CONFIG", "SET", "tls-cert-file", &p(b.path(), "server.crt")])
        .await;
    // server.key was rewritten too, but tls-key-file was not set: the
    // rebuild reads both files again, so it works.
    assert_eq!(r, "+OK");
    let mut nb2 = connect(srv.tls, b.path(), Opts::default()).await;
    assert_eq!(nb2.cmd(&["PING"]).await, "+PONG");
}

#[tokio::test]
async fn both_access_keys_and_requirepass_are_accepted() {
    let certs = tempfile::tempdir().unwrap();
    dev_cert(certs.path());
    let mut args = tls_args(certs.path());
    args.extend(
        [
            "--primary-access-key",
            "primary-key",
            "--secondary-access-key",
            "secondary-key",
        ]
        .map(String::from),
    );
    let srv = start(&refs(&args));
    let mut c = connect(srv.tls, certs.path(), Opts::default()).await;
    assert_eq!(
        c.cmd(&["GET", "x"]).await,
        "-NOAUTH Authentication required."
    );
    assert_eq!(
        c.cmd(&["AUTH", "wrong"]).await,
        "-WRONGPASS invalid username-password pair or user is disabled."
    );
    assert_eq!(c.cmd(&["AUTH", "primary-key"]).await, "+OK");
    assert_eq!(c.cmd(&["PING"]).await, "+PONG");

    let mut c2 = connect(srv.tls, certs.path(), Opts::default()).await;
    assert_eq!(c2.cmd(&["AUTH", "default", "secondary-key"]).await, "+OK");
    let mut c3 = connect(srv.tls, certs.path(), Opts::default()).await;
    let hello = c3
        .cmd(&["HELLO", "3", "AUTH", "default", "secondary-key"])
        .await;
    assert!(hello.contains("server,redis"), "{hello}");
    assert_eq!(c3.cmd(&["PING"]).await, "+PONG");

    // requirepass works alongside the keys; rotating a key drops the old.
    assert_eq!(c.cmd(&["CONFIG", "SET", "requirepass", "rp"]).await, "+OK");
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "secondary-access-key", "rotated"])
            .await,
        "+OK"
    );
    for (pass, want) in [
        ("rp", "+OK"),
        ("primary-key", "+OK"),
        ("rotated", "+OK"),
        (
            "secondary-key",
            "-WRONGPASS invalid username-password pair or user is disabled.",
        ),
    ] {
        let mut n = connect(srv.tls, certs.path(), Opts::default()).await;
        assert_eq!(n.cmd(&["AUTH", pass]).await, want, "AUTH {pass}");
    }
}

/// Starts a server from one of the shipped profiles (config/`name`), with
/// fresh development certificates and `extra` arguments.
fn start_profile(name: &str, extra: &[&str]) -> (Srv, tempfile::TempDir) {
    let certs = tempfile::tempdir().unwrap();
    dev_cert(certs.path());
    let profile = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("config")
        .join(name);
    let profile = profile.display().to_string();
    let mut args = vec![
        "--tls-cert-file".to_string(),
        p(certs.path(), "server.crt"),
        "--tls-key-file".to_string(),
        p(certs.path(), "server.key"),
        "--tls-ca-cert-file".to_string(),
        p(certs.path(), "ca.crt"),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    (start_cfg(&[&profile], &refs(&args)), certs)
}

#[tokio::test]
async fn azure_cache_profile() {
    let (srv, certs) = start_profile("azure-cache.toml", &[]);
    assert!(srv.tcp.is_none(), "no plain port in the Azure profile");
    // Generated access keys are logged.
    let line = {
        let l = srv.log.lock().unwrap();
        l.iter()
            .find(|l| l.contains("generated primary-access-key"))
            .cloned()
            .expect("generated keys logged")
    };
    let key = line
        .split("primary-access-key ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("key")
        .to_string();
    assert_eq!(key.len(), 44);
    let mut c = connect(srv.tls, certs.path(), Opts::default()).await;
    assert_eq!(c.cmd(&["PING"]).await, "-NOAUTH Authentication required.");
    // Blocked commands look absent even before AUTH and with any arity.
    assert_eq!(
        c.cmd(&["CONFIG"]).await,
        "-ERR unknown command 'CONFIG', with args beginning with:"
    );
    assert_eq!(
        c.cmd(&["config", "nosuchsub"]).await,
        "-ERR unknown command 'config', with args beginning with: 'nosuchsub'"
    );
    assert_eq!(c.cmd(&["AUTH", &key]).await, "+OK");
    assert_eq!(c.cmd(&["SET", "k", "v"]).await, "+OK");
    for blocked in [&["CONFIG", "GET", "port"][..], &["DEBUG", "SLEEP", "0"][..]] {
        let r = c.cmd(blocked).await;
        assert!(
            r.starts_with(&format!(
                "-ERR unknown command '{}'",
                blocked[0].to_ascii_lowercase()
            )) || r.starts_with(&format!("-ERR unknown command '{}'", blocked[0])),
            "{r}"
        );
    }
    // TLS 1.3 uses only the AES-GCM suites.
    let suite =
        c.s.get_ref()
            .get_ref()
            .1
            .negotiated_cipher_suite()
            .map(|s| s.suite());
    assert!(
        matches!(
            suite,
            Some(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256)
                | Some(rustls::CipherSuite::TLS13_AES_256_GCM_SHA384)
        ),
        "{suite:?}"
    );
}

#[tokio::test]
async fn redis_cli_over_tls() {
    let help = Command::new("redis-cli").arg("--help").output();
    let supports_tls = help
        .map(|o| {
            String::from_utf8_lossy(&o.stdout).contains("--tls")
                || String::from_utf8_lossy(&o.stderr).contains("--tls")
        })
        .unwrap_or(false);
    if !supports_tls {
        eprintln!("redis-cli with TLS not available; skipped");
        return;
    }
    let certs = tempfile::tempdir().unwrap();
    dev_cert(certs.path());
    let mut args = tls_args(certs.path());
    args.extend(["--primary-access-key".into(), "k+/1=".into()]);
    let srv = start(&refs(&args));
    let out = Command::new("redis-cli")
        .args(["--tls", "--cacert", &p(certs.path(), "ca.crt")])
        .args(["-h", "127.0.0.1", "-p", &srv.tls.port().to_string()])
        .args(["-a", "k+/1=", "--no-auth-warning", "PING"])
        .output()
        .expect("redis-cli");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "PONG",
        "{out:?}"
    );
}

/// INFO replication's `master_link_status` through a TLS connection.
async fn link_status(c: &mut Conn) -> String {
    let info = c.cmd(&["INFO", "replication"]).await;
    info.lines()
        .find_map(|l| l.strip_prefix("master_link_status:"))
        .unwrap_or("")
        .trim()
        .to_string()
}

/// Polls until the replica's link is up (or 15 s pass).
async fn wait_link_up(c: &mut Conn) -> bool {
    for _ in 0..150 {
        if link_status(c).await == "up" {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Polls `GET key` until it answers `want` (or 10 s pass).
async fn wait_value(c: &mut Conn, key: &str, want: &str) -> String {
    let mut got = String::new();
    for _ in 0..100 {
        got = c.cmd(&["GET", key]).await;
        if got == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    got
}

/// A TLS server (certificates in `dir`) replicating over TLS from the
/// primary's TLS `port`.
fn replica_args(dir: &Path, port: &str) -> Vec<String> {
    let mut a = tls_args(dir);
    a.extend(["--tls-replication", "yes", "--replicaof", "127.0.0.1", port].map(String::from));
    a
}

/// A primary as Azure's (TLS only) that also requires client
/// certificates, and a connection to it presenting dev-cert's.
async fn tls_only_primary(dir: &Path) -> (Srv, Conn) {
    let mut a = tls_args(dir);
    let n = a.len();
    a[n - 1] = "yes".into(); // tls-auth-clients
    let primary = start(&refs(&a));
    let opts = Opts {
        client_cert: Some(dir),
        ..Opts::default()
    };
    let c = connect(primary.tls, dir, opts).await;
    (primary, c)
}

#[tokio::test]
async fn replication_over_tls_between_cinnabar_servers() {
    let certs = tempfile::tempdir().unwrap();
    dev_cert(certs.path());
    // The primary as in Azure: TLS only, and here client certificates
    // required, so the replica must present its own (its tls-cert-file).
    let (primary, mut pc) = tls_only_primary(certs.path()).await;
    assert_eq!(pc.cmd(&["SET", "before", "1"]).await, "+OK");
    let port = primary.tls.port().to_string();
    let replica = start(&refs(&replica_args(certs.path(), &port)));
    let mut rc = connect(replica.tls, certs.path(), Opts::default()).await;
    assert!(wait_link_up(&mut rc).await, "link did not come up over TLS");
    // The full sync carried the data, the stream carries new writes.
    assert_eq!(rc.cmd(&["GET", "before"]).await, "1");
    assert_eq!(pc.cmd(&["SET", "after", "2"]).await, "+OK");
    assert_eq!(pc.cmd(&["INCR", "after"]).await, ":3");
    assert_eq!(wait_value(&mut rc, "after", "3").await, "3");
    // The primary lists the replica under the port it announced: its
    // tls-port (configured 6380; the test harness binds an ephemeral one).
    let info = pc.cmd(&["INFO", "replication"]).await;
    assert!(info.contains("connected_slaves:1"), "{info}");
    assert!(
        info.contains("slave0:ip=127.0.0.1,port=6380,state=online"),
        "{info}"
    );

    // A replica that does not trust the primary's CA never links, and
    // says why.
    let other = tempfile::tempdir().unwrap();
    dev_cert(other.path());
    let stranger = start(&refs(&replica_args(other.path(), &port)));
    let mut sc = connect(stranger.tls, other.path(), Opts::default()).await;
    let mut logged = false;
    for _ in 0..50 {
        logged = stranger
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("TLS handshake with the MASTER failed"));
        if logged {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(logged, "the failed handshake is logged");
    assert_eq!(link_status(&mut sc).await, "down");
    assert_eq!(sc.cmd(&["GET", "before"]).await, "(nil)");
}

/// A redis-server child with TLS (plain port too, for reading it), killed
/// on drop; `None` when redis-server is missing or built without TLS.
struct RedisTls {
    child: Child,
    port: u16,
    tls: u16,
    _dir: tempfile::TempDir,
}

impl Drop for RedisTls {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn redis_tls(certs: &Path, extra: &[&str]) -> Option<RedisTls> {
    let (port, tls) = (free_port(), free_port());
    let dir = tempfile::tempdir().expect("tempdir");
    let child = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(["--port", &port.to_string(), "--tls-port", &tls.to_string()])
        .args(["--tls-cert-file", &p(certs, "server.crt")])
        .args(["--tls-key-file", &p(certs, "server.key")])
        .args(["--tls-ca-cert-file", &p(certs, "ca.crt")])
        .arg("--dir")
        .arg(dir.path())
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut r = RedisTls {
        child,
        port,
        tls,
        _dir: dir,
    };
    for _ in 0..100 {
        if let Ok(Some(_)) = r.child.try_wait() {
            return None; // built without TLS: it refuses tls-port
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(r);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// A plain RESP command to a redis-server's plain port.
async fn plain_cmd(port: u16, args: &[&str]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let mut v = format!("*{}\r\n", args.len());
    for a in args {
        v.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(v.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("reply in time")
            .expect("read");
        out.extend_from_slice(&buf[..n]);
        if n == 0 || out.ends_with(b"\r\n") {
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn replication_over_tls_with_redis_server_both_ways() {
    let certs = tempfile::tempdir().unwrap();
    dev_cert(certs.path());
    // redis-server primary (client certificates required), Cinnabar replica.
    let Some(rp) = redis_tls(certs.path(), &["--tls-auth-clients", "yes"]) else {
        eprintln!("redis-server with TLS not available; skipped");
        return;
    };
    assert!(plain_cmd(rp.port, &["SET", "k", "from-redis"])
        .await
        .contains("OK"));
    let replica = start(&refs(&replica_args(certs.path(), &rp.tls.to_string())));
    let mut rc = connect(replica.tls, certs.path(), Opts::default()).await;
    assert!(wait_link_up(&mut rc).await, "no TLS link to redis-server");
    assert_eq!(rc.cmd(&["GET", "k"]).await, "from-redis");
    assert!(plain_cmd(rp.port, &["RPUSH", "l", "a", "b"])
        .await
        .contains(":2"));
    let mut got = String::new();
    for _ in 0..100 {
        got = rc.cmd(&["LRANGE", "l", "0", "-1"]).await;
        if got == "[a,b]" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(got, "[a,b]");

    // Cinnabar primary, TLS only with client certificates required;
    // redis-server replica presenting its tls-cert-file.
    let (primary, mut pc) = tls_only_primary(certs.path()).await;
    assert_eq!(pc.cmd(&["SET", "k", "from-cinnabar"]).await, "+OK");
    let pport = primary.tls.port().to_string();
    let Some(rr) = redis_tls(
        certs.path(),
        &[
            "--tls-auth-clients",
            "no",
            "--tls-replication",
            "yes",
            "--replicaof",
            "127.0.0.1",
            &pport,
        ],
    ) else {
        panic!("redis-server with TLS started once but not twice");
    };
    let mut got = String::new();
    for _ in 0..150 {
        got = plain_cmd(rr.port, &["GET", "k"]).await;
        if got.contains("from-cinnabar") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(got.contains("from-cinnabar"), "{got}");
    assert_eq!(pc.cmd(&["HSET", "h", "f", "v"]).await, ":1");
    for _ in 0..100 {
        got = plain_cmd(rr.port, &["HGET", "h", "f"]).await;
        if got.contains("v") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(got, "$1\r\nv\r\n");
    let info = pc.cmd(&["INFO", "replication"]).await;
    assert!(
        info.contains(&format!("slave0:ip=127.0.0.1,port={},state=online", rr.tls)),
        "{info}"
    );
}

/// The Azure Managed Redis profile: TLS only, the Enterprise clustering
/// policy (cross-slot multi-key commands refused except the ones Azure's
/// proxy splits), one database, Azure's blocked commands.
#[tokio::test]
async fn azure_managed_profile() {
    let (srv, certs) = start_profile("azure-managed.toml", &["--primary-access-key", "amr-key"]);
    assert!(srv.tcp.is_none(), "no plain port in the Azure profile");
    let mut c = connect(srv.tls, certs.path(), Opts::default()).await;
    assert_eq!(c.cmd(&["PING"]).await, "-NOAUTH Authentication required.");
    assert_eq!(c.cmd(&["AUTH", "amr-key"]).await, "+OK");
    // DEL, MSET, MGET, EXISTS, UNLINK, TOUCH may span slots…
    assert_eq!(c.cmd(&["MSET", "a", "1", "b", "2"]).await, "+OK");
    assert_eq!(c.cmd(&["EXISTS", "a", "b"]).await, ":2");
    // …nothing else may.
    let cross = "-CROSSSLOT Keys in request don't hash to the same slot";
    assert_eq!(c.cmd(&["SUNIONSTORE", "x", "a", "b"]).await, cross);
    assert_eq!(c.cmd(&["RENAME", "a", "b"]).await, cross);
    assert_eq!(c.cmd(&["RENAME", "{a}1", "{a}2"]).await, "-ERR no such key");
    // One database; blocked commands look absent.
    assert_eq!(
        c.cmd(&["SELECT", "0"]).await,
        "-ERR unknown command 'SELECT', with args beginning with: '0'"
    );
    assert_eq!(
        c.cmd(&["CLUSTER", "INFO"]).await,
        "-ERR This instance has cluster support disabled"
    );
    assert_eq!(c.cmd(&["DEL", "a", "b"]).await, ":2");
}
