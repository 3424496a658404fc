//! Entra ID-style token authentication through the real server: tokens
//! signed in the test (RS256 with fixed keys in tests/data, ES256 with a
//! key generated here and served through a JWKS file), accepted by AUTH
//! and HELLO AUTH only when signature, iss, aud, exp, nbf and oid are
//! right; permissions from the oid's ACL user or `entra-default-acl`;
//! expiry of an authenticated connection (told, then closed) and re-AUTH
//! before expiry keeping it; configuration errors.

mod common;
use common::diff::Conn;
use common::TestServer;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tokio::io::AsyncReadExt;

const ISS: &str = "https://sts.windows.net/00000000-0000-0000-0000-00000000cafe/";
const AUD: &str = "https://redis.azure.com";
const OID: &str = "6f1c0f6e-1111-4a2b-9c3d-000000000001";
const WRONGPASS: &str = "-WRONGPASS invalid username-password pair or user is disabled.\r\n";
const EXPIRED: &str = "-NOAUTH The Entra ID token of this connection expired and the connection is closed; send AUTH <oid> <new token> before the token's exp to keep a connection\r\n";

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Claims of a token; fields left None are omitted.
struct Claims<'a> {
    oid: Option<&'a str>,
    iss: &'a str,
    aud: &'a str,
    exp: u64,
    nbf: Option<u64>,
}

impl<'a> Claims<'a> {
    fn good(oid: &'a str) -> Self {
        Claims {
            oid: Some(oid),
            iss: ISS,
            aud: AUD,
            exp: now_s() + 3600,
            nbf: Some(now_s() - 300),
        }
    }
    fn json(&self) -> serde_json::Value {
        let mut m = serde_json::json!({
            "iss": self.iss, "aud": self.aud, "exp": self.exp,
            "iat": now_s() - 300, "tid": "00000000-0000-0000-0000-00000000cafe",
        });
        if let Some(o) = self.oid {
            m["oid"] = o.into();
        }
        if let Some(n) = self.nbf {
            m["nbf"] = n.into();
        }
        m
    }
}

fn sign_rsa(key_file: &str, c: &Claims) -> String {
    let pem = std::fs::read(data(key_file)).expect("test key");
    let key = EncodingKey::from_rsa_pem(&pem).expect("rsa key");
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &c.json(), &key).expect("sign")
}

fn rsa_token(c: &Claims) -> String {
    sign_rsa("entra-rsa.key", c)
}

async fn call(c: &mut Conn, args: &[&str]) -> String {
    let v: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    String::from_utf8_lossy(&c.call(&v).await).into_owned()
}

fn rsa_server(extra: &[&str]) -> TestServer {
    let key = data("entra-rsa.pub.pem");
    let mut args = vec![
        "--requirepass",
        "admin-key",
        "--entra-issuer",
        ISS,
        "--entra-audience",
        AUD,
        "--entra-public-key-file",
    ];
    let key = key.to_str().expect("utf-8 path").to_string();
    args.push(&key);
    args.extend_from_slice(extra);
    TestServer::start_with(&args)
}

async fn admin(srv: &TestServer) -> Conn {
    let mut c = Conn::connect(srv.addr.port()).await;
    assert_eq!(call(&mut c, &["AUTH", "admin-key"]).await, "+OK\r\n");
    c
}

#[tokio::test]
async fn valid_tokens_log_in_and_invalid_ones_get_wrongpass() {
    let srv = rsa_server(&[]);
    let mut a = admin(&srv).await;
    assert_eq!(
        call(&mut a, &["ACL", "SETUSER", OID, "on", "+@all", "~*"]).await,
        "+OK\r\n"
    );
    let mut c = Conn::connect(srv.addr.port()).await;
    assert!(call(&mut c, &["GET", "k"]).await.starts_with("-NOAUTH"));

    let good = rsa_token(&Claims::good(OID));
    // Wrong signature: signed by another key; tampered payload.
    let other = sign_rsa("entra-rsa-other.key", &Claims::good(OID));
    assert_eq!(
        entra_errors(&mut a, "MicrosoftEntraAuthenticationFailure").await,
        0
    );
    assert_eq!(call(&mut c, &["AUTH", OID, &other]).await, WRONGPASS);
    // Azure's error metric counts the refused token.
    assert_eq!(
        entra_errors(&mut a, "MicrosoftEntraAuthenticationFailure").await,
        1
    );
    let parts: Vec<&str> = good.split('.').collect();
    let forged_payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
        Claims {
            exp: now_s() + 99999,
            ..Claims::good(OID)
        }
        .json()
        .to_string(),
    );
    let tampered = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    assert_eq!(call(&mut c, &["AUTH", OID, &tampered]).await, WRONGPASS);
    // Algorithm confusion: HS256 with the public key as the secret.
    let pubpem = std::fs::read(data("entra-rsa.pub.pem")).expect("pub");
    let hs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &Claims::good(OID).json(),
        &EncodingKey::from_secret(&pubpem),
    )
    .expect("hs256");
    assert_eq!(call(&mut c, &["AUTH", OID, &hs]).await, WRONGPASS);
    // Wrong audience, wrong issuer, expired, not yet valid, no oid.
    let cases = [
        Claims {
            aud: "https://storage.azure.com",
            ..Claims::good(OID)
        },
        Claims {
            iss: "https://sts.windows.net/another-tenant/",
            ..Claims::good(OID)
        },
        Claims {
            exp: now_s() - 5,
            ..Claims::good(OID)
        },
        Claims {
            nbf: Some(now_s() + 600),
            ..Claims::good(OID)
        },
        Claims {
            oid: None,
            ..Claims::good(OID)
        },
    ];
    for cl in &cases {
        let t = rsa_token(cl);
        assert_eq!(call(&mut c, &["AUTH", OID, &t]).await, WRONGPASS);
    }
    // The token's oid must be the user name.
    let other_oid = "6f1c0f6e-1111-4a2b-9c3d-000000000002";
    assert_eq!(call(&mut c, &["AUTH", other_oid, &good]).await, WRONGPASS);
    // A valid token whose oid has no ACL user (entra-default-acl empty).
    let t2 = rsa_token(&Claims::good(other_oid));
    assert_eq!(call(&mut c, &["AUTH", other_oid, &t2]).await, WRONGPASS);
    // A token is not a password of the default user.
    assert_eq!(call(&mut c, &["AUTH", &good]).await, WRONGPASS);
    assert!(call(&mut c, &["GET", "k"]).await.starts_with("-NOAUTH"));

    // Success.
    assert_eq!(call(&mut c, &["AUTH", OID, &good]).await, "+OK\r\n");
    assert_eq!(
        call(&mut c, &["ACL", "WHOAMI"]).await,
        format!("${}\r\n{OID}\r\n", OID.len())
    );
    assert_eq!(call(&mut c, &["SET", "k", "v"]).await, "+OK\r\n");
    assert_eq!(call(&mut c, &["GET", "k"]).await, "$1\r\nv\r\n");
    // A failed re-AUTH keeps the login.
    assert_eq!(call(&mut c, &["AUTH", OID, &other]).await, WRONGPASS);
    assert_eq!(call(&mut c, &["GET", "k"]).await, "$1\r\nv\r\n");

    // HELLO 3 AUTH.
    let mut h = Conn::connect(srv.addr.port()).await;
    let r = call(&mut h, &["HELLO", "3", "AUTH", OID, &good]).await;
    assert!(r.starts_with("%7\r\n"), "{r}");
    assert_eq!(call(&mut h, &["GET", "k"]).await, "$1\r\nv\r\n");
    let mut h2 = Conn::connect(srv.addr.port()).await;
    assert_eq!(
        call(&mut h2, &["HELLO", "3", "AUTH", OID, &other]).await,
        WRONGPASS
    );

    // Failed token logins are in the ACL log, as failed passwords are.
    let log = call(&mut a, &["ACL", "LOG"]).await;
    assert!(log.contains("auth") && log.contains(OID), "{log}");

    // A disabled user cannot log in with a token.
    assert_eq!(
        call(&mut a, &["ACL", "SETUSER", OID, "off"]).await,
        "+OK\r\n"
    );
    let mut d = Conn::connect(srv.addr.port()).await;
    assert_eq!(call(&mut d, &["AUTH", OID, &good]).await, WRONGPASS);
}

/// Reads what the server sends within `within`; true if it closed.
async fn read_until_closed(c: &mut tokio::net::TcpStream, within: Duration) -> (String, bool) {
    let mut got = Vec::new();
    let fut = async {
        let mut buf = [0u8; 1024];
        loop {
            match c.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    let closed = tokio::time::timeout(within, fut).await.unwrap_or(false);
    (String::from_utf8_lossy(&got).into_owned(), closed)
}

async fn sleep_until_unix_ms(t: u64) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(t.saturating_sub(now))).await;
}

#[tokio::test]
async fn expiry_closes_the_connection_unless_reauthenticated() {
    let srv = rsa_server(&[]);
    let mut a = admin(&srv).await;
    assert_eq!(
        call(&mut a, &["ACL", "SETUSER", OID, "on", "+@all", "~*"]).await,
        "+OK\r\n"
    );
    let exp1 = now_s() + 2;
    let short = rsa_token(&Claims {
        exp: exp1,
        ..Claims::good(OID)
    });

    // Connection 1: logs in with the short token and idles past its exp.
    let mut c1 = Conn::connect(srv.addr.port()).await;
    assert_eq!(call(&mut c1, &["AUTH", OID, &short]).await, "+OK\r\n");
    assert_eq!(call(&mut c1, &["PING"]).await, "+PONG\r\n");
    // Connection 2 (RESP3): same token, refreshed before expiry.
    let mut c2 = Conn::connect(srv.addr.port()).await;
    let r = call(&mut c2, &["HELLO", "3", "AUTH", OID, &short]).await;
    assert!(r.starts_with("%7\r\n"), "{r}");
    let fresh = rsa_token(&Claims {
        exp: now_s() + 60,
        ..Claims::good(OID)
    });
    assert_eq!(call(&mut c2, &["AUTH", OID, &fresh]).await, "+OK\r\n");
    // Connection 3: a raw socket to watch the unsolicited error + close.
    let mut c3 = tokio::net::TcpStream::connect(srv.addr).await.expect("c3");
    {
        use tokio::io::AsyncWriteExt;
        c3.write_all(&common::resp(&[b"AUTH", OID.as_bytes(), short.as_bytes()]))
            .await
            .expect("write");
        let mut ok = [0u8; 5];
        c3.read_exact(&mut ok).await.expect("read");
        assert_eq!(&ok, b"+OK\r\n");
    }

    // Connection 4: blocked in BLPOP (no timeout) when the token expires.
    let mut c4 = tokio::net::TcpStream::connect(srv.addr).await.expect("c4");
    {
        use tokio::io::AsyncWriteExt;
        c4.write_all(&common::resp(&[b"AUTH", OID.as_bytes(), short.as_bytes()]))
            .await
            .expect("write");
        let mut ok = [0u8; 5];
        c4.read_exact(&mut ok).await.expect("read");
        assert_eq!(&ok, b"+OK\r\n");
        c4.write_all(&common::resp(&[b"BLPOP", b"nolist", b"0"]))
            .await
            .expect("write");
    }

    // Before expiry everything works.
    assert_eq!(call(&mut c1, &["SET", "k", "1"]).await, "+OK\r\n");

    sleep_until_unix_ms(exp1 * 1000 + 300).await;
    // The idle connection was told and closed.
    let (got, closed) = read_until_closed(&mut c3, Duration::from_secs(3)).await;
    assert_eq!(got, EXPIRED);
    assert!(closed, "connection should be closed after token expiry");
    let (got, closed) = read_until_closed(&mut c4, Duration::from_secs(3)).await;
    assert_eq!(got, EXPIRED);
    assert!(closed, "a blocked connection is closed at token expiry too");
    // The re-authenticated one still works.
    assert_eq!(call(&mut c2, &["GET", "k"]).await, "$1\r\n1\r\n");
    // Connection 1's next command gets the explanation (sent at expiry).
    let mut c1raw = c1;
    let r = c1raw.call(&[b"GET", b"k"]).await;
    assert_eq!(String::from_utf8_lossy(&r), EXPIRED);

    // CLIENT LIST no longer shows the expired connections.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let list = call(&mut a, &["CLIENT", "LIST"]).await;
    assert_eq!(list.matches(&format!("user={OID}")).count(), 1, "{list}");
    // Azure's error metric: connections 1, 3 and 4 ran past their token.
    assert_eq!(entra_errors(&mut a, "MicrosoftEntraTokenExpired").await, 3);
    assert_eq!(
        entra_errors(&mut a, "MicrosoftEntraAuthenticationFailure").await,
        0
    );
}

/// The count of Azure error type `kind` in `AZURE METRICS` (RESP2: the
/// type's name, then its count).
async fn entra_errors(c: &mut Conn, kind: &str) -> u64 {
    let r = call(c, &["AZURE", "METRICS"]).await;
    let after = r
        .split(&format!("${}\r\n{kind}\r\n:", kind.len()))
        .nth(1)
        .unwrap_or_else(|| panic!("no {kind} in {r}"));
    after
        .split("\r\n")
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count for {kind} in {r}"))
}

#[tokio::test]
async fn jwks_es256_keys_and_default_acl() {
    // An EC P-256 key pair made here; its public half as a JWK with a kid.
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("ec key");
    let raw = kp.public_key_raw(); // 0x04 || x || y
    assert_eq!(raw.len(), 65);
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let jwks = serde_json::json!({"keys": [
        {"kty": "EC", "crv": "P-256", "use": "sig", "kid": "key-2",
         "x": b64(&raw[1..33]), "y": b64(&raw[33..65])},
    ]});
    let dir = tempfile::tempdir().expect("tmp");
    let jwks_path = dir.path().join("keys.json");
    std::fs::write(&jwks_path, jwks.to_string()).expect("write jwks");
    let jwks_s = jwks_path.to_str().expect("utf-8").to_string();
    let srv = TestServer::start_with(&[
        "--requirepass",
        "admin-key",
        "--entra-issuer",
        "https://other.example/ https://login.microsoftonline.com/t/v2.0",
        "--entra-jwks-file",
        &jwks_s,
        "--entra-default-acl",
        "+@read ~cache:*",
    ]);
    let enc = EncodingKey::from_ec_pem(kp.serialize_pem().as_bytes()).expect("enc");
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("key-2".into());
    let claims = Claims {
        iss: "https://login.microsoftonline.com/t/v2.0",
        ..Claims::good(OID)
    };
    let tok = jsonwebtoken::encode(&header, &claims.json(), &enc).expect("sign");

    let mut c = Conn::connect(srv.addr.port()).await;
    // Unknown kid: no key verifies it.
    let mut h2 = Header::new(Algorithm::ES256);
    h2.kid = Some("key-9".into());
    let t2 = jsonwebtoken::encode(&h2, &claims.json(), &enc).expect("sign");
    assert_eq!(call(&mut c, &["AUTH", OID, &t2]).await, WRONGPASS);
    // An RS256 token when only an EC key is configured.
    assert_eq!(
        call(&mut c, &["AUTH", OID, &rsa_token(&claims)]).await,
        WRONGPASS
    );

    assert_eq!(call(&mut c, &["AUTH", OID, &tok]).await, "+OK\r\n");
    // The user was created from entra-default-acl.
    assert_eq!(call(&mut c, &["GET", "cache:x"]).await, "$-1\r\n");
    assert!(call(&mut c, &["SET", "cache:x", "1"])
        .await
        .starts_with("-NOPERM"));
    assert!(call(&mut c, &["GET", "other:x"])
        .await
        .starts_with("-NOPERM"));
    let mut a = admin(&srv).await;
    let list = call(&mut a, &["ACL", "LIST"]).await;
    assert!(
        list.contains(&format!(
            "user {OID} on ~cache:* resetchannels -@all +@read"
        )),
        "{list}"
    );
    // The created user has no password: only tokens log it in.
    let mut p = Conn::connect(srv.addr.port()).await;
    assert_eq!(call(&mut p, &["AUTH", OID, ""]).await, WRONGPASS);
}

#[tokio::test]
async fn configuration_is_checked_and_reloadable() {
    let srv = rsa_server(&[]);
    let mut a = admin(&srv).await;
    assert_eq!(
        call(&mut a, &["CONFIG", "GET", "entra-issuer"]).await,
        format!("*2\r\n$12\r\nentra-issuer\r\n${}\r\n{ISS}\r\n", ISS.len())
    );
    // A missing key file is refused and the old keys stay.
    let r = call(
        &mut a,
        &[
            "CONFIG",
            "SET",
            "entra-public-key-file",
            "/nonexistent/key.pem",
        ],
    )
    .await;
    assert!(
        r.starts_with(
            "-ERR CONFIG SET failed (possibly related to argument 'entra-public-key-file')"
        ),
        "{r}"
    );
    let r = call(&mut a, &["CONFIG", "GET", "entra-public-key-file"]).await;
    assert!(r.contains("entra-rsa.pub.pem"), "{r}");
    // A bad entra-default-acl is refused.
    let r = call(
        &mut a,
        &["CONFIG", "SET", "entra-default-acl", "+nosuchcmd"],
    )
    .await;
    assert!(r.starts_with("-ERR CONFIG SET failed"), "{r}");
    // Rotating to another key: old tokens stop working, new ones work.
    assert_eq!(
        call(&mut a, &["ACL", "SETUSER", OID, "on", "+@all", "~*"]).await,
        "+OK\r\n"
    );
    let other_pub = data("entra-rsa-other.pub.pem");
    assert_eq!(
        call(
            &mut a,
            &[
                "CONFIG",
                "SET",
                "entra-public-key-file",
                other_pub.to_str().expect("utf-8")
            ]
        )
        .await,
        "+OK\r\n"
    );
    let mut c = Conn::connect(srv.addr.port()).await;
    let old = rsa_token(&Claims::good(OID));
    assert_eq!(call(&mut c, &["AUTH", OID, &old]).await, WRONGPASS);
    let new = sign_rsa("entra-rsa-other.key", &Claims::good(OID));
    assert_eq!(call(&mut c, &["AUTH", OID, &new]).await, "+OK\r\n");

    // A key file without an issuer stops startup with a clear message.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cinnabar"))
        .args(["--port", "0", "--entra-public-key-file"])
        .arg(data("entra-rsa.pub.pem"))
        .output()
        .expect("run");
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("entra-issuer must be set"), "{text}");
}
