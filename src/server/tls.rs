//! TLS for `tls-port` (and, with `tls-replication yes`, a replica's link to
//! its primary: [`client_config`]): builds a rustls [`ServerConfig`] from the `tls-*`
//! parameters and keeps it in an [`ArcSwapOption`] so `CONFIG SET
//! tls-cert-file …` can swap in a new one atomically. Every handshake loads
//! the current config; connections already established keep the one they
//! were accepted with.
//!
//! Parameters acted on: `tls-cert-file`, `tls-key-file`, `tls-ca-cert-file`,
//! `tls-ca-cert-dir`, `tls-auth-clients` (`no` / `optional` / `yes`: client
//! certificates verified against the CA), `tls-protocols` (only `TLSv1.2`
//! and `TLSv1.3` exist here; older versions are ignored with a warning and
//! never negotiated), `tls-ciphersuites` (TLS 1.3, OpenSSL/IANA names such as
//! `TLS_AES_128_GCM_SHA256`), `tls-ciphers` (TLS 1.2, OpenSSL names such as
//! `ECDHE-RSA-AES128-GCM-SHA256`; OpenSSL keywords like `DEFAULT` or `HIGH`
//! mean every supported suite, `!name` removes one),
//! `tls-prefer-server-ciphers`, `tls-session-caching`,
//! `tls-session-cache-size`.
//!
//! Crypto comes from rustls's `ring` provider (no cmake / aws-lc build).
//! Encrypted private keys (`tls-key-file-pass`) are not supported: startup
//! fails with a message saying so.

use std::fs::File;
use std::io::BufReader;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{NoServerSessionStorage, ServerSessionMemoryCache, WebPkiClientVerifier};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig,
    SignatureScheme, SupportedCipherSuite,
};

use crate::config::{Config, TlsAuthClients};

/// The TLS parameters whose change (CONFIG SET) rebuilds the server config.
pub const RELOAD_PARAMS: &[&str] = &[
    "tls-cert-file",
    "tls-key-file",
    "tls-key-file-pass",
    "tls-ca-cert-file",
    "tls-ca-cert-dir",
    "tls-auth-clients",
    "tls-protocols",
    "tls-ciphers",
    "tls-ciphersuites",
    "tls-prefer-server-ciphers",
    "tls-session-caching",
    "tls-session-cache-size",
    "tls-session-cache-timeout",
];

/// The live TLS server configuration (empty while no TLS listener runs).
#[derive(Default)]
pub struct TlsState {
    current: ArcSwapOption<ServerConfig>,
}

impl TlsState {
    /// The config new handshakes use.
    pub fn current(&self) -> Option<Arc<ServerConfig>> {
        self.current.load_full()
    }

    /// Is TLS serving (a TLS listener was started)?
    pub fn active(&self) -> bool {
        self.current.load().is_some()
    }

    /// Installs a config (at startup, or after a successful reload).
    pub fn install(&self, cfg: Arc<ServerConfig>) {
        self.current.store(Some(cfg));
    }

    /// Rebuilds from the current parameters and swaps the result in; on
    /// error the previous config stays in use.
    pub fn reload(&self, cfg: &Config) -> Result<(), String> {
        let new = build(cfg)?;
        self.install(new);
        tracing::info!("TLS configuration reloaded");
        Ok(())
    }
}

/// OpenSSL's TLS 1.2 cipher names and their IANA names (the ones rustls's
/// ring provider implements).
const TLS12_NAMES: &[(&str, &str)] = &[
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    ),
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    ),
];

/// The IANA name of a suite (`TLS_AES_128_GCM_SHA256`,
/// `TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`).
fn iana_name(s: &SupportedCipherSuite) -> String {
    let n = format!("{:?}", s.suite());
    match n.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => n,
    }
}

/// Does `token` (an OpenSSL or IANA name) name suite `s`?
fn names_suite(token: &str, s: &SupportedCipherSuite) -> bool {
    let iana = iana_name(s);
    if token.eq_ignore_ascii_case(&iana) {
        return true;
    }
    TLS12_NAMES
        .iter()
        .any(|(o, i)| token.eq_ignore_ascii_case(o) && *i == iana)
}

/// Is `token` a specific suite name we know (as opposed to an OpenSSL
/// keyword like `HIGH`)?
fn is_known_name(token: &str) -> bool {
    TLS12_NAMES
        .iter()
        .any(|(o, i)| token.eq_ignore_ascii_case(o) || token.eq_ignore_ascii_case(i))
        || rustls::crypto::ring::ALL_CIPHER_SUITES
            .iter()
            .any(|s| token.eq_ignore_ascii_case(&iana_name(s)))
}

/// Selects the TLS 1.2 suites of an OpenSSL cipher string.
fn select_tls12(spec: &str, all: &[SupportedCipherSuite]) -> Vec<SupportedCipherSuite> {
    let mut chosen: Vec<SupportedCipherSuite> = Vec::new();
    let mut removed: Vec<SupportedCipherSuite> = Vec::new();
    for tok in spec.split([':', ',', ' ']).filter(|t| !t.is_empty()) {
        let (neg, name) = match tok.strip_prefix(['!', '-']) {
            Some(n) => (true, n),
            None => (false, tok.trim_start_matches('+')),
        };
        let matching: Vec<SupportedCipherSuite> = if is_known_name(name) {
            all.iter()
                .filter(|s| names_suite(name, s))
                .copied()
                .collect()
        } else if neg {
            // `!aNULL`, `!MD5`, …: nothing rustls offers is weak.
            Vec::new()
        } else {
            // `DEFAULT`, `HIGH`, `ECDHE`, …: everything supported.
            all.to_vec()
        };
        for s in matching {
            if neg {
                removed.push(s);
            } else if !chosen.iter().any(|c| c.suite() == s.suite()) {
                chosen.push(s);
            }
        }
    }
    chosen.retain(|s| !removed.iter().any(|r| r.suite() == s.suite()));
    chosen
}

/// Selects the TLS 1.3 suites of a `tls-ciphersuites` list.
fn select_tls13(spec: &str, all: &[SupportedCipherSuite]) -> Vec<SupportedCipherSuite> {
    let mut chosen: Vec<SupportedCipherSuite> = Vec::new();
    for tok in spec.split([':', ',', ' ']).filter(|t| !t.is_empty()) {
        match all.iter().find(|s| names_suite(tok, s)) {
            Some(s) if !chosen.iter().any(|c| c.suite() == s.suite()) => chosen.push(*s),
            Some(_) => {}
            None => tracing::warn!("tls-ciphersuites: ignoring unsupported suite '{tok}'"),
        }
    }
    chosen
}

fn open(path: &str, what: &str) -> Result<BufReader<File>, String> {
    File::open(path)
        .map(BufReader::new)
        .map_err(|e| format!("Failed to load {what} '{path}': {e}"))
}

/// Reads every certificate of a PEM file.
fn load_certs(path: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut r = open(path, what)?;
    let certs = rustls_pemfile::certs(&mut r)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("Failed to load {what} '{path}': {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "Failed to load {what} '{path}': no PEM certificate found"
        ));
    }
    Ok(certs)
}

/// Reads the first private key (PKCS#8, PKCS#1 or SEC1) of a PEM file.
fn load_key(path: &str) -> Result<PrivateKeyDer<'static>, String> {
    let mut r = open(path, "private key")?;
    match rustls_pemfile::private_key(&mut r) {
        Ok(Some(k)) => Ok(k),
        Ok(None) => Err(format!(
            "Failed to load private key '{path}': no unencrypted PEM private key found"
        )),
        Err(e) => Err(format!("Failed to load private key '{path}': {e}")),
    }
}

/// The CA certificates of `tls-ca-cert-file` and every `*.pem` / `*.crt`
/// file in `tls-ca-cert-dir`.
fn load_roots(cfg: &Config) -> Result<Option<RootCertStore>, String> {
    let mut files: Vec<String> = Vec::new();
    if let Some(f) = cfg.tls_ca_cert_file().filter(|f| !f.is_empty()) {
        files.push(f);
    }
    if let Some(d) = cfg.tls_ca_cert_dir().filter(|d| !d.is_empty()) {
        let rd = std::fs::read_dir(&d)
            .map_err(|e| format!("Failed to read tls-ca-cert-dir '{d}': {e}"))?;
        let mut in_dir: Vec<String> = rd
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                matches!(
                    p.extension().and_then(|x| x.to_str()),
                    Some("pem" | "crt" | "cer")
                )
            })
            .map(|p| p.display().to_string())
            .collect();
        in_dir.sort();
        files.extend(in_dir);
    }
    if files.is_empty() {
        return Ok(None);
    }
    let mut roots = RootCertStore::empty();
    for f in files {
        for c in load_certs(&f, "CA certificate")? {
            roots
                .add(c)
                .map_err(|e| format!("Failed to load CA certificate '{f}': {e}"))?;
        }
    }
    Ok(Some(roots))
}

/// The crypto provider (cipher suites per `tls-ciphersuites` and
/// `tls-ciphers`) and protocol versions (per `tls-protocols`) that both the
/// listener and the replication client use.
type Versions = Vec<&'static rustls::SupportedProtocolVersion>;
fn provider_and_versions(cfg: &Config) -> Result<(Arc<CryptoProvider>, Versions), String> {
    // Protocol versions: TLS 1.2 and 1.3 only, whatever is asked.
    let (mut v12, mut v13) = (true, true);
    if let Some(p) = cfg.tls_protocols().filter(|p| !p.trim().is_empty()) {
        (v12, v13) = (false, false);
        for tok in p.split_whitespace() {
            match tok.to_ascii_lowercase().as_str() {
                "tlsv1.2" => v12 = true,
                "tlsv1.3" => v13 = true,
                other => tracing::warn!(
                    "tls-protocols: {other} is not supported (never below TLSv1.2); ignored"
                ),
            }
        }
        if !v12 && !v13 {
            return Err(format!(
                "tls-protocols '{p}' enables neither TLSv1.2 nor TLSv1.3, the only versions supported"
            ));
        }
    }

    // Cipher suites.
    let base = rustls::crypto::ring::default_provider();
    let (all13, all12): (Vec<_>, Vec<_>) = base
        .cipher_suites
        .iter()
        .copied()
        .partition(|s| s.tls13().is_some());
    let suites13 = match cfg.tls_ciphersuites().filter(|s| !s.is_empty()) {
        Some(spec) => select_tls13(&spec, &all13),
        None => all13,
    };
    let suites12 = match cfg.tls_ciphers().filter(|s| !s.is_empty()) {
        Some(spec) => select_tls12(&spec, &all12),
        None => all12,
    };
    if v13 && suites13.is_empty() {
        return Err("tls-ciphersuites selects no supported TLS 1.3 cipher suite".into());
    }
    if v12 && !v13 && suites12.is_empty() {
        return Err("tls-ciphers selects no supported TLS 1.2 cipher".into());
    }
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    if v13 {
        versions.push(&rustls::version::TLS13);
    }
    if v12 && !suites12.is_empty() {
        versions.push(&rustls::version::TLS12);
    }
    let mut cipher_suites = Vec::new();
    if v13 {
        cipher_suites.extend(suites13);
    }
    if v12 {
        cipher_suites.extend(suites12);
    }
    let provider = Arc::new(CryptoProvider {
        cipher_suites,
        ..base
    });

    Ok((provider, versions))
}

/// Encrypted private keys are not supported: a passphrase in `param`
/// stops with a message saying so.
fn refuse_key_pass(pass: Option<String>, param: &str) -> Result<(), String> {
    match pass {
        Some(p) if !p.is_empty() => Err(format!(
            "{param} is not supported: use an unencrypted private key"
        )),
        _ => Ok(()),
    }
}

/// Builds the server config from the current `tls-*` parameters. Errors
/// name the parameter or file at fault.
pub fn build(cfg: &Config) -> Result<Arc<ServerConfig>, String> {
    let cert_file = cfg
        .tls_cert_file()
        .filter(|s| !s.is_empty())
        .ok_or("tls-port is set but tls-cert-file is not")?;
    let key_file = cfg
        .tls_key_file()
        .filter(|s| !s.is_empty())
        .ok_or("tls-port is set but tls-key-file is not")?;
    refuse_key_pass(cfg.tls_key_file_pass(), "tls-key-file-pass")?;

    let (provider, versions) = provider_and_versions(cfg)?;

    let certs = load_certs(&cert_file, "certificate")?;
    let key = load_key(&key_file)?;

    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("TLS configuration error: {e}"))?;
    let auth = cfg.tls_auth_clients();
    let builder = match auth {
        TlsAuthClients::No => builder.with_no_client_auth(),
        TlsAuthClients::Yes | TlsAuthClients::Optional => {
            let roots = load_roots(cfg)?.ok_or(
                "Either tls-ca-cert-file or tls-ca-cert-dir must be specified when \
                 tls-auth-clients is enabled (it is 'yes' by default; set it to 'no' \
                 to accept clients without certificates)",
            )?;
            let mut vb = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            if auth == TlsAuthClients::Optional {
                vb = vb.allow_unauthenticated();
            }
            builder.with_client_cert_verifier(
                vb.build()
                    .map_err(|e| format!("TLS client verifier error: {e}"))?,
            )
        }
    };
    let mut sc = builder.with_single_cert(certs, key).map_err(|e| {
        format!("Failed to use certificate '{cert_file}' with private key '{key_file}': {e}")
    })?;
    sc.ignore_client_order = cfg.tls_prefer_server_ciphers();
    if cfg.tls_session_caching() {
        let size = match cfg.tls_session_cache_size() {
            0 => 20480,
            n => n as usize,
        };
        sc.session_storage = ServerSessionMemoryCache::new(size);
    } else {
        sc.session_storage = Arc::new(NoServerSessionStorage {});
        sc.send_tls13_tickets = 0;
    }
    Ok(Arc::new(sc))
}

/// The client side, for `tls-replication yes`: a replica's connection to
/// its primary. The primary's certificate chain must verify against
/// `tls-ca-cert-file`/`tls-ca-cert-dir`; its host name is not checked, as
/// Redis (OpenSSL's peer verification without a host check) does not, so a
/// primary named by IP address works with a certificate for its DNS name.
/// The client certificate is `tls-client-cert-file`/`tls-client-key-file`,
/// else `tls-cert-file`/`tls-key-file` (as Redis), else none.
pub fn client_config(cfg: &Config) -> Result<Arc<ClientConfig>, String> {
    refuse_key_pass(cfg.tls_client_key_file_pass(), "tls-client-key-file-pass")?;
    let (provider, versions) = provider_and_versions(cfg)?;
    let roots = load_roots(cfg)?.ok_or(
        "tls-replication needs tls-ca-cert-file or tls-ca-cert-dir to verify the primary's certificate",
    )?;
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("TLS server verifier error: {e}"))?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| format!("TLS configuration error: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ChainOnly(webpki)));
    let nonempty = |v: Option<String>| v.filter(|s| !s.is_empty());
    let pair = match (
        nonempty(cfg.tls_client_cert_file()),
        nonempty(cfg.tls_client_key_file()),
    ) {
        (Some(c), Some(k)) => Some((c, k)),
        _ => nonempty(cfg.tls_cert_file()).zip(nonempty(cfg.tls_key_file())),
    };
    let cc = match pair {
        Some((cert, key)) => builder
            .with_client_auth_cert(load_certs(&cert, "certificate")?, load_key(&key)?)
            .map_err(|e| {
                format!("Failed to use client certificate '{cert}' with private key '{key}': {e}")
            })?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(cc))
}

/// The name to present (SNI) for a primary at `host`.
pub fn server_name(host: &str) -> ServerName<'static> {
    ServerName::try_from(host.to_string())
        .unwrap_or_else(|_| ServerName::try_from("localhost").expect("a valid DNS name"))
}

/// Verifies the chain (and signatures) with webpki, but not that the
/// certificate names the host: see [`client_config`].
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cipher_selection() {
        let base = rustls::crypto::ring::default_provider();
        let (all13, all12): (Vec<_>, Vec<_>) = base
            .cipher_suites
            .iter()
            .copied()
            .partition(|s| s.tls13().is_some());
        let s = select_tls13("TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384", &all13);
        assert_eq!(s.len(), 2);
        assert_eq!(iana_name(&s[0]), "TLS_AES_128_GCM_SHA256");
        let s = select_tls12("ECDHE-RSA-AES128-GCM-SHA256", &all12);
        assert_eq!(s.len(), 1);
        let s = select_tls12("DEFAULT:!ECDHE-RSA-CHACHA20-POLY1305:!aNULL", &all12);
        assert_eq!(s.len(), all12.len() - 1);
    }
}
