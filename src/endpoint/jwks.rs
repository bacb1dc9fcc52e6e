//! [`Jwks`]: the public keys the layer publishes at its JWKS URL (RFC 7517), so
//! that other services verify our JWT access tokens without sharing a secret.

use std::fmt;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use serde::Serialize;

#[cfg(feature = "jwt")]
use crate::token::jwt::key::JwtKey;
#[cfg(feature = "jwt")]
use crate::token::jwt::store::JwtTokenStore;

/// How long a resource server may keep the key set before asking again
/// (`Cache-Control: public, max-age=300`): five minutes. Publish a new key at
/// least this long before tokens are signed with it (build the stores with it
/// accepted, `also_accepting`, first).
pub const JWKS_MAX_AGE: Duration = Duration::from_secs(5 * 60);

/// A JSON Web Key Set of Ed25519 public keys (RFC 7517 §5, RFC 8037 §2): what the
/// layer serves at its [JWKS URL](crate::layer::Builder::jwks_url) once given one
/// with [`Builder::jwks`](crate::layer::Builder::jwks).
///
/// Each key is `{"kty":"OKP","crv":"Ed25519","x":…,"kid":…,"alg":"EdDSA","use":"sig"}`.
/// Only public keys go in: the type has no way to hold a secret, so HS256 keys,
/// whose secret is the verification key, are never published. A key set of an
/// HS256-only store is empty (`{"keys":[]}`): resource servers that read it
/// verify nothing, which is the truth (they need the secret, shared otherwise).
///
/// With feature `jwt`, `Jwks::of` takes every key a `JwtTokenStore` signs or
/// accepts with:
///
/// ```
/// # #[cfg(feature = "jwt")] {
/// use tower_oauth2_password::endpoint::Jwks;
/// use tower_oauth2_password::token::jwt::{JwtKey, JwtTokenStore};
///
/// let store = JwtTokenStore::signing_with(JwtKey::ed25519("2026-12", &[7u8; 32])?)
///     .also_accepting(JwtKey::hs256("old", &[1u8; 32])?)
///     .issuer("https://auth.example.com")
///     .build()?;
/// let jwks = Jwks::of(&store);
/// assert_eq!(jwks.kids().collect::<Vec<_>>(), ["2026-12"]); // not the HS256 secret
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Without it, from the public keys themselves:
///
/// ```
/// use tower_oauth2_password::endpoint::Jwks;
///
/// let jwks = Jwks::new().with_ed25519("2026-12", [0x3d; 32]);
/// let json: serde_json::Value = serde_json::from_slice(&jwks.to_json()).unwrap();
/// assert_eq!(json["keys"][0]["kty"], "OKP");
/// assert_eq!(json["keys"][0]["alg"], "EdDSA");
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Jwks {
    keys: Vec<Jwk>,
}

/// One Ed25519 public key, as RFC 8037 §2 writes it.
#[derive(Clone, PartialEq, Eq, Serialize)]
struct Jwk {
    kty: &'static str,
    crv: &'static str,
    /// The 32-byte public key, base64url without padding.
    x: String,
    kid: Box<str>,
    alg: &'static str,
    #[serde(rename = "use")]
    use_: &'static str,
}

#[derive(Serialize)]
struct KeySet<'a> {
    keys: &'a [Jwk],
}

impl Jwks {
    /// An empty key set (`{"keys":[]}`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the Ed25519 public key `public_key` (RFC 8032 encoding) under `kid`,
    /// the `kid` tokens signed with its secret name in their header.
    pub fn with_ed25519(mut self, kid: &str, public_key: [u8; 32]) -> Self {
        self.keys.push(Jwk {
            kty: "OKP",
            crv: "Ed25519",
            x: URL_SAFE_NO_PAD.encode(public_key),
            kid: kid.into(),
            alg: "EdDSA",
            use_: "sig",
        });
        self
    }

    /// The public key of every key `store` verifies with (its signing key first,
    /// then the keys it also accepts) that has one: Ed25519 keys, never HS256
    /// secrets. Build it again after the store changes keys.
    #[cfg(feature = "jwt")]
    pub fn of<D>(store: &JwtTokenStore<D>) -> Self {
        Self::from_keys(store.keys())
    }

    /// The public keys of `keys` (see [`JwtKey::public_key`]); HS256 keys are
    /// left out.
    #[cfg(feature = "jwt")]
    pub fn from_keys<'a>(keys: impl IntoIterator<Item = &'a JwtKey>) -> Self {
        keys.into_iter()
            .fold(Self::new(), |jwks, key| match key.public_key() {
                Some(public) => jwks.with_ed25519(key.kid(), public),
                None => jwks,
            })
    }

    /// The `kid`s of the keys, in order.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|key| &*key.kid)
    }

    /// Whether the set has no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key set as JSON, as the layer serves it.
    pub fn to_json(&self) -> Bytes {
        // Strings only: serialising into a `Vec` cannot fail.
        serde_json::to_vec(&KeySet { keys: &self.keys })
            .map(Bytes::from)
            .unwrap_or_else(|_| Bytes::from_static(br#"{"keys":[]}"#))
    }
}

impl fmt::Debug for Jwks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwks")
            .field("kids", &self.kids().collect::<Vec<_>>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_8037_appendix_a_public_key() {
        // RFC 8037 A.2: the public key of the example Ed25519 key.
        let x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
        let public: [u8; 32] = URL_SAFE_NO_PAD.decode(x).unwrap().try_into().unwrap();
        let jwks = Jwks::new().with_ed25519("k", public);
        let json: serde_json::Value = serde_json::from_slice(&jwks.to_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"keys": [{
                "kty": "OKP", "crv": "Ed25519", "x": x, "kid": "k", "alg": "EdDSA", "use": "sig"
            }]})
        );
    }

    #[test]
    fn an_empty_set_is_an_empty_array() {
        assert_eq!(&Jwks::new().to_json()[..], br#"{"keys":[]}"#);
        assert!(Jwks::new().is_empty());
    }

    #[cfg(feature = "jwt")]
    #[test]
    fn secrets_are_never_published() {
        let keys = [
            JwtKey::hs256("secret", &[1; 32]).unwrap(),
            JwtKey::ed25519("signing", &[2; 32]).unwrap(),
            JwtKey::ed25519_public(
                "old",
                &JwtKey::ed25519("x", &[3; 32])
                    .unwrap()
                    .public_key()
                    .unwrap(),
            )
            .unwrap(),
        ];
        let jwks = Jwks::from_keys(&keys);
        assert_eq!(jwks.kids().collect::<Vec<_>>(), ["signing", "old"]);
        let json = String::from_utf8(jwks.to_json().to_vec()).unwrap();
        assert!(
            !json.contains("secret") && !json.contains("\"d\""),
            "{json}"
        );
    }
}
