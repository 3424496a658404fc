//! Entra ID-style token authentication: `AUTH <oid> <jwt>` (and `HELLO 3
//! AUTH <oid> <jwt>`), for rehearsing Azure's managed-identity login
//! locally.
//!
//! Azure Cache for Redis accepts a Microsoft Entra access token as the
//! password, with the identity's object id (`oid` claim) as the user name,
//! and closes a connection whose token expires unless the client sent a
//! fresh `AUTH` before that. Cinnabar does the same against keys it reads
//! from files instead of from Entra:
//!
//! * `entra-public-key-file`: one PEM public key (RSA, EC P-256/P-384 or
//!   Ed25519; `PUBLIC KEY`, `RSA PUBLIC KEY` or `CERTIFICATE`), and/or
//!   `entra-jwks-file`: a JWKS document (`{"keys": [...]}`, the format of
//!   Entra's `discovery/keys` endpoint, so its real keys can be used too).
//!   Token authentication is on when either is set.
//! * `entra-issuer`: the accepted `iss` values (required when on);
//!   `entra-audience`: the accepted `aud` values (default
//!   `https://redis.azure.com`). Both are space-separated lists.
//! * A token is accepted when its signature verifies with a configured key
//!   (asymmetric algorithms only: RS*/PS*/ES256/ES384/EdDSA; HS* and
//!   `none` never, since the verifying key is public), `iss` and `aud`
//!   match, `exp` is in the future, `nbf` (if present) is not, and its
//!   `oid` equals the user name given to AUTH. No clock-skew leeway: the
//!   server's clock is the reference, as a local stand-in runs beside the
//!   client.
//! * Permissions: the ACL user named like the `oid` (configured with
//!   `user <oid> on +@read ~*` / `ACL SETUSER`, like an Azure data access
//!   policy assignment; it must be `on`, its passwords are irrelevant). If
//!   there is none and `entra-default-acl` is set, that user is created on
//!   first login with `on` plus those rules (`"+@all ~* &*"` gives Data
//!   Owner access); otherwise the token is refused.
//!
//! Expiry is enforced per connection by `connection::serve`: a token login
//! stores the token's `exp` (unix ms) in `Client::auth_deadline`; every
//! command compares it with the batch clock (one integer compare), and an
//! idle connection is woken by a timer at the deadline. Either way the
//! client is sent [`EXPIRED_ERROR`] and the connection is closed, as Azure
//! does. A successful AUTH before that moves the deadline (a password
//! login clears it).

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::acl::UserHandle;
use crate::config::Config;
use crate::server::Server;

/// The parameters whose change rebuilds the verifier (CONFIG SET).
pub const RELOAD_PARAMS: &[&str] = &[
    "entra-issuer",
    "entra-audience",
    "entra-public-key-file",
    "entra-jwks-file",
    "entra-default-acl",
];

/// Sent (then the connection is closed) when the token a connection
/// authenticated with expires without a fresh AUTH. The NOAUTH code makes
/// clients treat it as an authentication failure and reconnect.
pub const EXPIRED_ERROR: &str = "NOAUTH The Entra ID token of this connection expired and the connection is closed; send AUTH <oid> <new token> before the token's exp to keep a connection";

/// Tokens longer than this are not parsed (Entra's are about 1.5-3 KiB).
const MAX_TOKEN_LEN: usize = 64 * 1024;

/// Key types, each with the JWS algorithms it can verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    Rsa,
    Ec,
    Ed,
}

impl Family {
    fn allows(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            Family::Rsa => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            Family::Ec => matches!(alg, ES256 | ES384),
            Family::Ed => matches!(alg, EdDSA),
        }
    }
}

/// One verification key.
struct Key {
    /// JWK `kid` (None for the PEM key).
    kid: Option<String>,
    family: Family,
    /// JWK `alg`, when the key is restricted to one algorithm.
    alg: Option<Algorithm>,
    key: DecodingKey,
}

/// The configured keys and accepted claims; immutable, swapped as a whole
/// when the configuration changes.
pub struct Verifier {
    keys: Vec<Key>,
    issuers: Vec<String>,
    audiences: Vec<String>,
    /// Rules for an `oid` without an ACL user (empty: refuse).
    default_acl: Vec<bytes::Bytes>,
}

#[derive(serde::Deserialize)]
struct Claims {
    oid: Option<String>,
    exp: u64,
}

/// Cheap syntactic check: is this password a compact JWS (three base64url
/// parts, a JSON header)? Only such passwords are tried as tokens.
pub fn looks_like_jwt(pass: &[u8]) -> bool {
    pass.len() <= MAX_TOKEN_LEN
        && pass.starts_with(b"eyJ")
        && pass.iter().filter(|&&c| c == b'.').count() == 2
        && pass
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'='))
}

fn pem_key(pem: &[u8]) -> Result<(Family, DecodingKey), String> {
    if let Ok(k) = DecodingKey::from_rsa_pem(pem) {
        return Ok((Family::Rsa, k));
    }
    if let Ok(k) = DecodingKey::from_ec_pem(pem) {
        return Ok((Family::Ec, k));
    }
    if let Ok(k) = DecodingKey::from_ed_pem(pem) {
        return Ok((Family::Ed, k));
    }
    Err("not an RSA, EC or Ed25519 public key or certificate in PEM format".into())
}

fn jwks_keys(text: &[u8]) -> Result<Vec<Key>, String> {
    let set: JwkSet = serde_json::from_slice(text).map_err(|e| format!("not a JWKS: {e}"))?;
    let mut out = Vec::new();
    for jwk in &set.keys {
        // Encryption keys are not signing keys.
        if matches!(
            jwk.common.public_key_use,
            Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
        ) {
            continue;
        }
        let family = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Family::Rsa,
            AlgorithmParameters::EllipticCurve(_) => Family::Ec,
            AlgorithmParameters::OctetKeyPair(_) => Family::Ed,
            // Symmetric keys would let anyone holding the file mint tokens.
            AlgorithmParameters::OctetKey(_) => continue,
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|e| {
            format!(
                "key {}: {e}",
                jwk.common.key_id.as_deref().unwrap_or("(no kid)")
            )
        })?;
        // A key restricted to a non-signature algorithm (RSA-OAEP…) is
        // not a signing key.
        let alg = match jwk.common.key_algorithm {
            None => None,
            Some(a) => match a.to_string().parse::<Algorithm>() {
                Ok(a) => Some(a),
                Err(_) => continue,
            },
        };
        out.push(Key {
            kid: jwk.common.key_id.clone(),
            family,
            alg,
            key,
        });
    }
    if out.is_empty() {
        return Err("no RSA, EC or OKP signing key in it".into());
    }
    Ok(out)
}

impl Verifier {
    /// Builds the verifier from the `entra-*` parameters; `Ok(None)` when
    /// token authentication is off (no key file configured).
    pub fn from_config(cfg: &Config) -> Result<Option<Verifier>, String> {
        let pem_file = cfg.entra_public_key_file();
        let jwks_file = cfg.entra_jwks_file();
        if pem_file.is_empty() && jwks_file.is_empty() {
            return Ok(None);
        }
        let mut keys = Vec::new();
        if !pem_file.is_empty() {
            let pem = std::fs::read(&pem_file)
                .map_err(|e| format!("entra-public-key-file '{pem_file}': {e}"))?;
            let (family, key) =
                pem_key(&pem).map_err(|e| format!("entra-public-key-file '{pem_file}': {e}"))?;
            keys.push(Key {
                kid: None,
                family,
                alg: None,
                key,
            });
        }
        if !jwks_file.is_empty() {
            let text = std::fs::read(&jwks_file)
                .map_err(|e| format!("entra-jwks-file '{jwks_file}': {e}"))?;
            keys.extend(
                jwks_keys(&text).map_err(|e| format!("entra-jwks-file '{jwks_file}': {e}"))?,
            );
        }
        let words =
            |s: String| -> Vec<String> { s.split_whitespace().map(str::to_string).collect() };
        let issuers = words(cfg.entra_issuer());
        if issuers.is_empty() {
            return Err(
                "entra-issuer must be set when entra-public-key-file or entra-jwks-file is".into(),
            );
        }
        let audiences = words(cfg.entra_audience());
        if audiences.is_empty() {
            return Err(
                "entra-audience must be set when entra-public-key-file or entra-jwks-file is"
                    .into(),
            );
        }
        let rules = cfg.entra_default_acl();
        let default_acl: Vec<bytes::Bytes> = crate::config::split_args(&rules)
            .map_err(|e| format!("entra-default-acl: {e}"))?
            .into_iter()
            .map(bytes::Bytes::from)
            .collect();
        if !default_acl.is_empty() {
            // Checked now so a typo is reported at startup / CONFIG SET,
            // not at the first login.
            let merged = crate::acl::merge_selector_args(&default_acl)
                .map_err(|_| "entra-default-acl: unmatched parenthesis".to_string())?;
            let mut probe = crate::acl::User::new(false);
            for op in &merged {
                probe.apply(op, false).map_err(|e| {
                    format!(
                        "entra-default-acl: '{}': {}",
                        String::from_utf8_lossy(op),
                        e.message()
                    )
                })?;
            }
        }
        Ok(Some(Verifier {
            keys,
            issuers,
            audiences,
            default_acl,
        }))
    }

    /// Verifies `token` for user `oid`; the token's `exp` in unix ms, or
    /// why it was refused (for the log; the client only sees WRONGPASS).
    pub fn verify(&self, oid: &[u8], token: &[u8], now_ms: u64) -> Result<u64, String> {
        let token = std::str::from_utf8(token).map_err(|_| "not UTF-8".to_string())?;
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| format!("bad token header: {e}"))?;
        let alg = header.alg;
        let candidates = self.keys.iter().filter(|k| {
            k.family.allows(alg)
                && k.alg.is_none_or(|a| a == alg)
                && match (&header.kid, &k.kid) {
                    (Some(h), Some(k)) => h == k,
                    _ => true,
                }
        });
        let mut validation = Validation::new(alg);
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.set_issuer(&self.issuers);
        validation.set_audience(&self.audiences);
        let mut why = format!("no configured key verifies {alg:?} tokens");
        for k in candidates {
            match jsonwebtoken::decode::<Claims>(token, &k.key, &validation) {
                Ok(data) => {
                    let claims = data.claims;
                    let Some(tok_oid) = claims.oid else {
                        return Err("the token has no oid claim".into());
                    };
                    if tok_oid.as_bytes() != oid {
                        return Err(format!(
                            "the token's oid '{tok_oid}' is not the user name '{}'",
                            String::from_utf8_lossy(oid)
                        ));
                    }
                    let exp_ms = claims.exp.saturating_mul(1000);
                    if exp_ms <= now_ms {
                        return Err("the token expired".into());
                    }
                    return Ok(exp_ms);
                }
                Err(e) => match e.kind() {
                    // Another key (rotation) may verify it.
                    jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                        why = "invalid signature".into();
                    }
                    // Claims are checked after the signature: final.
                    _ => return Err(e.to_string()),
                },
            }
        }
        Err(why)
    }
}

/// The server's token verifier (None when token authentication is off).
#[derive(Default)]
pub struct EntraState {
    current: ArcSwapOption<Verifier>,
}

impl EntraState {
    /// Rebuilds from the configuration; on error the previous verifier
    /// stays (the caller restores the parameters).
    pub fn reload(&self, cfg: &Config) -> Result<(), String> {
        let v = Verifier::from_config(cfg)?;
        self.current.store(v.map(Arc::new));
        Ok(())
    }

    /// Is token authentication configured?
    pub fn enabled(&self) -> bool {
        self.current.load().is_some()
    }

    /// Tries `pass` as a token for user `name`: the user to log in as and
    /// the token's expiry (unix ms), or None (not a token, token
    /// authentication off, invalid token, no permitted user). Refusals
    /// are logged with the reason (never the token).
    pub fn authenticate(
        &self,
        srv: &Server,
        name: &[u8],
        pass: &[u8],
        now_ms: u64,
    ) -> Option<(Arc<UserHandle>, u64)> {
        if !looks_like_jwt(pass) {
            return None;
        }
        let v = self.current.load_full()?;
        let admitted = Self::admit(srv, &v, name, pass, now_ms);
        if admitted.is_none() {
            // A token was presented and refused (Azure's error type).
            srv.metrics
                .count(crate::server::metrics::ErrorType::EntraAuthenticationFailure);
        }
        admitted
    }

    /// The login a valid token for `name` gets, or None (logged).
    fn admit(
        srv: &Server,
        v: &Verifier,
        name: &[u8],
        pass: &[u8],
        now_ms: u64,
    ) -> Option<(Arc<UserHandle>, u64)> {
        let exp_ms = match v.verify(name, pass, now_ms) {
            Ok(e) => e,
            Err(why) => {
                tracing::info!(
                    user = %String::from_utf8_lossy(name),
                    "Entra token refused: {why}"
                );
                return None;
            }
        };
        let handle = match srv.acl.get_user(name) {
            Some(h) => h,
            None if !v.default_acl.is_empty() => {
                let mut ops = Vec::with_capacity(v.default_acl.len() + 1);
                ops.push(bytes::Bytes::from_static(b"on"));
                ops.extend(v.default_acl.iter().cloned());
                let pubsub_all =
                    srv.config.acl_pubsub_default() == crate::config::AclPubsubDefault::Allchannels;
                match srv.acl.set_user(name, &ops, pubsub_all) {
                    Ok((h, _)) => h,
                    Err(e) => {
                        tracing::warn!("entra-default-acl: {e}");
                        return None;
                    }
                }
            }
            None => {
                tracing::info!(
                    user = %String::from_utf8_lossy(name),
                    "Entra token refused: no ACL user for this oid and entra-default-acl is empty"
                );
                return None;
            }
        };
        if !handle.get().enabled {
            tracing::info!(
                user = %String::from_utf8_lossy(name),
                "Entra token refused: the ACL user is off"
            );
            return None;
        }
        Some((handle, exp_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_shape() {
        assert!(looks_like_jwt(b"eyJhbGciOiJSUzI1NiJ9.eyJvaWQiOiJ4In0.c2ln"));
        assert!(!looks_like_jwt(b"secret-password"));
        assert!(!looks_like_jwt(b"eyJ.a"));
        assert!(!looks_like_jwt(b"eyJ a.b.c"));
    }

    #[test]
    fn symmetric_jwks_keys_are_ignored() {
        let text = br#"{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"h"}]}"#;
        assert!(jwks_keys(text).is_err());
    }
}
