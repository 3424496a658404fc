//! `cinnabar dev-cert --out DIR`: a local certificate authority and a
//! server certificate for `localhost`, `127.0.0.1` and `::1`, so a developer
//! can run Cinnabar with TLS (the way Azure's caches only offer TLS on 6380)
//! without openssl incantations.
//!
//! Files written (keys are PKCS#8 PEM, ECDSA P-256, mode 0600 on Unix):
//! * `ca.crt`, `ca.key` — the development CA (trust `ca.crt` in clients);
//! * `server.crt`, `server.key` — the server certificate (`tls-cert-file`,
//!   `tls-key-file`), valid for localhost, 127.0.0.1 and ::1, and usable as
//!   a client certificate too (a replica's link with `tls-replication yes`);
//! * `client.crt`, `client.key` — a client certificate signed by the same CA,
//!   for trying `tls-auth-clients yes`.
//!
//! It also prints two fresh access keys and ready-to-paste client commands.
//! Nothing here is meant for production: the CA key sits next to the
//! certificates.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// What [`generate`] wrote, for the caller's message.
pub struct DevCert {
    /// The output directory.
    pub dir: PathBuf,
    /// Two new random access keys (not stored anywhere).
    pub keys: [String; 2],
}

/// A new random access key: 32 random bytes in standard base64 (44
/// characters), the shape of Azure's keys.
pub fn random_access_key() -> String {
    use base64::Engine as _;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The current calendar year (UTC), for certificate validity periods.
fn current_year() -> i32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // Mean Gregorian year; only the year is needed.
    1970 + (secs / 31_556_952) as i32
}

fn dn(cn: &str) -> DistinguishedName {
    let mut d = DistinguishedName::new();
    d.push(DnType::OrganizationName, "Cinnabar development");
    d.push(DnType::CommonName, cn);
    d
}

fn write_file(path: &Path, contents: &str, secret: bool) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("cannot write '{}': {e}", path.display());
    #[cfg(unix)]
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(if secret { 0o600 } else { 0o644 })
            .open(path)
            .map_err(fail)?;
        f.write_all(contents.as_bytes()).map_err(fail)
    }
    #[cfg(not(unix))]
    {
        let _ = secret;
        std::fs::write(path, contents).map_err(fail)
    }
}

/// Creates the CA, server and client certificates in `dir` (created if
/// missing; existing files are replaced).
pub fn generate(dir: &Path) -> Result<DevCert, String> {
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create directory '{}': {e}", dir.display()))?;
    let err = |e: rcgen::Error| format!("certificate generation failed: {e}");
    let year = current_year();

    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca.distinguished_name = dn("Cinnabar Development CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    ca.not_after = rcgen::date_time_ymd(year + 10, 1, 1);
    let ca_cert = ca.self_signed(&ca_key).map_err(err)?;

    // Leaf validity stays under 825 days (some TLS stacks refuse longer).
    let leaf = |cn: &str, sans: Vec<String>, eku: Vec<ExtendedKeyUsagePurpose>| {
        let key = KeyPair::generate().map_err(err)?;
        let mut p = CertificateParams::new(sans).map_err(err)?;
        p.distinguished_name = dn(cn);
        p.is_ca = IsCa::NoCa;
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = eku;
        p.use_authority_key_identifier_extension = true;
        p.not_before = rcgen::date_time_ymd(year, 1, 1);
        p.not_after = rcgen::date_time_ymd(year + 2, 1, 1);
        let cert = p.signed_by(&key, &ca_cert, &ca_key).map_err(err)?;
        Ok::<_, String>((cert, key))
    };
    let (server_cert, server_key) = leaf(
        "localhost",
        vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
        // Client use too: a replica presents its own `tls-cert-file` to
        // its primary when `tls-client-cert-file` is not set, as Redis does.
        vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
    )?;
    let (client_cert, client_key) = leaf(
        "cinnabar-client",
        vec!["cinnabar-client".into()],
        vec![ExtendedKeyUsagePurpose::ClientAuth],
    )?;

    write_file(&dir.join("ca.crt"), &ca_cert.pem(), false)?;
    write_file(&dir.join("ca.key"), &ca_key.serialize_pem(), true)?;
    write_file(&dir.join("server.crt"), &server_cert.pem(), false)?;
    write_file(&dir.join("server.key"), &server_key.serialize_pem(), true)?;
    write_file(&dir.join("client.crt"), &client_cert.pem(), false)?;
    write_file(&dir.join("client.key"), &client_key.serialize_pem(), true)?;
    Ok(DevCert {
        dir: dir.to_path_buf(),
        keys: [random_access_key(), random_access_key()],
    })
}

/// The message `cinnabar dev-cert` prints: files, how to start the server
/// and exact client commands.
pub fn instructions(d: &DevCert) -> String {
    let dir = d.dir.display();
    let [k1, k2] = &d.keys;
    let k1_url = url_encode(k1);
    format!(
        "Created in {dir}:\n  \
         ca.crt, ca.key          development CA (trust ca.crt in clients)\n  \
         server.crt, server.key  server certificate for localhost, 127.0.0.1, ::1\n  \
         client.crt, client.key  client certificate (for tls-auth-clients yes)\n\
         \n\
         Start Cinnabar with TLS only on 6380 (the Azure Cache profile):\n  \
         cinnabar config/azure-cache.toml --tls-cert-file {dir}/server.crt --tls-key-file {dir}/server.key \
         --tls-ca-cert-file {dir}/ca.crt --primary-access-key '{k1}' --secondary-access-key '{k2}'\n\
         or without the profile:\n  \
         cinnabar --port 0 --tls-port 6380 --tls-cert-file {dir}/server.crt --tls-key-file {dir}/server.key \
         --tls-ca-cert-file {dir}/ca.crt --tls-auth-clients no --primary-access-key '{k1}' --secondary-access-key '{k2}'\n\
         \n\
         Connect:\n  \
         redis-cli --tls --cacert {dir}/ca.crt -p 6380 -a '{k1}'\n  \
         redis-py:            redis.from_url(\"rediss://:{k1_url}@localhost:6380/0\", ssl_ca_certs=\"{dir}/ca.crt\")\n  \
         StackExchange.Redis: \"localhost:6380,password={k1},ssl=True,abortConnect=False\" (trust {dir}/ca.crt first)\n\
         \n\
         Either access key works as the password; AUTH <key> or AUTH default <key>.\n"
    )
}

/// Percent-encodes the characters of a base64 key that a URL's userinfo
/// cannot hold (`+`, `/`, `=`).
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '+' => out.push_str("%2B"),
            '/' => out.push_str("%2F"),
            '=' => out.push_str("%3D"),
            c => out.push(c),
        }
    }
    out
}
