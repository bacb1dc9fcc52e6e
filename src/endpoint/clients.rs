//! The clients allowed to call the introspection endpoint (RFC 7662): resource
//! servers, each with an id and the hash of a high-entropy secret, and how a
//! request proves it is one of them (HTTP Basic, RFC 6749 §2.3.1).
//!
//! Secrets are hashed with BLAKE2b-256, not a password hash: resource servers call
//! the endpoint once per request they serve, so a deliberately slow hash there
//! would be a denial-of-service lever (every wrong secret a ~20 MiB, ~50 ms
//! Argon2id computation). A fast hash is safe because the secret is not a
//! password: [`ClientSecretHash::of`] refuses secrets shorter than
//! [`MIN_CLIENT_SECRET_LEN`] bytes, and 32 random bytes cannot be guessed however
//! fast each guess is.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine;
use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};
use http::header::{HeaderMap, AUTHORIZATION};
use percent_encoding::percent_decode;
use subtle::{Choice, ConstantTimeEq};

/// The shortest client secret [`ClientSecretHash::of`] accepts, in bytes: the
/// length of 32 random bytes' worth of entropy spelt out (e.g. `openssl rand -base64 32`
/// gives 44 characters).
pub const MIN_CLIENT_SECRET_LEN: usize = 32;

/// What the stored form of a [`ClientSecretHash`] starts with.
const PREFIX: &str = "blake2b-256$";

/// Domain separation: these hashes are of nothing else.
const DOMAIN: &[u8] = b"tower-oauth2-password introspection client secret\0";

/// The hash of an introspection client's secret, as the layer keeps it (never
/// the secret). Its text form (`Display`, [`FromStr`]) is `blake2b-256$` and 43
/// base64url characters, for configuration files and environment variables.
///
/// ```
/// use tower_oauth2_password::endpoint::ClientSecretHash;
///
/// let hash = ClientSecretHash::of("kQ3vY8xW0pL5nR2tZ7aB9cD4eF6gH1jK").unwrap();
/// let stored = hash.to_string();
/// assert!(stored.starts_with("blake2b-256$"));
/// assert_eq!(stored.parse::<ClientSecretHash>().unwrap(), hash);
/// // A password-like secret is refused: a fast hash of it could be brute-forced.
/// assert!(ClientSecretHash::of("secret1").is_err());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecretHash([u8; 32]);

impl ClientSecretHash {
    /// Hashes a new client secret, of at least [`MIN_CLIENT_SECRET_LEN`] bytes of
    /// random text (`openssl rand -base64 32`).
    ///
    /// # Errors
    ///
    /// [`ClientSecretError::TooShort`] for a shorter secret.
    pub fn of(secret: &str) -> Result<Self, ClientSecretError> {
        if secret.len() < MIN_CLIENT_SECRET_LEN {
            return Err(ClientSecretError::TooShort { len: secret.len() });
        }
        Ok(Self::digest(secret.as_bytes()))
    }

    /// The hash of any bytes, long enough or not (what a client presented).
    fn digest(secret: &[u8]) -> Self {
        let mut hasher = Blake2b::<U32>::new();
        hasher.update(DOMAIN);
        hasher.update(secret);
        Self(hasher.finalize().into())
    }
}

impl fmt::Display for ClientSecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(PREFIX)?;
        f.write_str(&URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for ClientSecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecretHash(…)")
    }
}

impl FromStr for ClientSecretHash {
    type Err = ClientSecretError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bytes = text
            .strip_prefix(PREFIX)
            .and_then(|encoded| URL_SAFE_NO_PAD.decode(encoded).ok())
            .ok_or(ClientSecretError::MalformedHash)?;
        <[u8; 32]>::try_from(bytes)
            .map(Self)
            .map_err(|_| ClientSecretError::MalformedHash)
    }
}

/// Why a client secret or its hash was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientSecretError {
    /// The secret is shorter than [`MIN_CLIENT_SECRET_LEN`] bytes (`len`).
    TooShort {
        /// Its length, in bytes.
        len: usize,
    },
    /// The text is not a hash [`ClientSecretHash`]'s `Display` wrote.
    MalformedHash,
}

impl fmt::Display for ClientSecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort { len } => write!(
                f,
                "client secret too short: {len} bytes, at least {MIN_CLIENT_SECRET_LEN} \
                 random bytes are needed (e.g. `openssl rand -base64 32`)"
            ),
            Self::MalformedHash => f.write_str(
                "not a client secret hash: expected `blake2b-256$` and 43 base64url characters",
            ),
        }
    }
}

impl std::error::Error for ClientSecretError {}

/// The resource servers that may call the introspection endpoint, by client id,
/// each with its [`ClientSecretHash`]; given to
/// [`Builder::introspection`](crate::layer::Builder::introspection).
///
/// A client authenticates with HTTP Basic (`client_secret_basic`): id and secret
/// form-urlencoded, joined by `:`, in base64 (RFC 6749 §2.3.1). An unknown id costs
/// and answers the same as a wrong secret.
///
/// ```
/// use tower_oauth2_password::endpoint::{ClientSecretHash, IntrospectionClients};
///
/// let clients = IntrospectionClients::new()
///     .client("orders", ClientSecretHash::of("kQ3vY8xW0pL5nR2tZ7aB9cD4eF6gH1jK").unwrap());
/// assert_eq!(clients.len(), 1);
/// assert_eq!(format!("{clients:?}"), r#"IntrospectionClients(["orders"])"#);
/// ```
#[derive(Clone, Default)]
pub struct IntrospectionClients {
    clients: HashMap<Box<str>, ClientSecretHash>,
}

impl IntrospectionClients {
    /// No client yet: the endpoint stays off until one is added.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the client `id`, whose secret hashes to `secret`.
    pub fn client(mut self, id: impl Into<String>, secret: ClientSecretHash) -> Self {
        self.clients.insert(id.into().into_boxed_str(), secret);
        self
    }

    /// How many clients there are.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// Whether there is none (the endpoint is then not served).
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// Whether `headers` carry the Basic credentials of one of the clients, id
    /// and secret form-urlencoded as RFC 6749 §2.3.1 asks or, as `curl -u` and
    /// many clients send them, not. Both spellings are hashed and compared in
    /// constant time whether or not the id is known, and whether or not there were
    /// credentials at all: every stranger costs the same.
    pub(crate) fn authenticate(&self, headers: &HeaderMap) -> bool {
        let Some((id, secret)) = basic_credentials(headers) else {
            // The same work as for credentials.
            let _ = self.matches(b"", b"") | self.matches(b"", b"");
            return false;
        };
        let decoded = self.matches(&form_decode(&id), &form_decode(&secret));
        let raw = self.matches(&id, &secret);
        bool::from(decoded | raw)
    }

    /// Whether `secret` is the secret of the client `id`, in constant time.
    fn matches(&self, id: &[u8], secret: &[u8]) -> Choice {
        static NOBODY: ClientSecretHash = ClientSecretHash([0; 32]);
        let client = std::str::from_utf8(id)
            .ok()
            .and_then(|id| self.clients.get(id));
        let (expected, known) = match client {
            Some(expected) => (expected, Choice::from(1)),
            None => (&NOBODY, Choice::from(0)),
        };
        ClientSecretHash::digest(secret).0.ct_eq(&expected.0) & known
    }
}

impl fmt::Debug for IntrospectionClients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<&str> = self.clients.keys().map(|id| &**id).collect();
        ids.sort_unstable();
        f.debug_tuple("IntrospectionClients").field(&ids).finish()
    }
}

/// The client id and secret of one `Authorization: Basic` header, base64-decoded
/// and split at the first `:`, not yet form-decoded. `None` for no such header,
/// several `Authorization` headers, or anything malformed.
fn basic_credentials(headers: &HeaderMap) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let (scheme, encoded) = value.to_str().ok()?.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let encoded = encoded.trim();
    let decoded = STANDARD
        .decode(encoded)
        .or_else(|_| STANDARD_NO_PAD.decode(encoded))
        .ok()?;
    let colon = decoded.iter().position(|&byte| byte == b':')?;
    let mut id = decoded;
    let secret = id.split_off(colon + 1);
    id.pop();
    Some((id, secret))
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte.
fn form_decode(encoded: &[u8]) -> Vec<u8> {
    let spaced: Vec<u8> = encoded
        .iter()
        .map(|&byte| if byte == b'+' { b' ' } else { byte })
        .collect();
    percent_decode(&spaced).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const SECRET: &str = "kQ3vY8xW0pL5nR2tZ7aB9cD4eF6gH1jK";

    fn basic(raw: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = format!("Basic {}", STANDARD.encode(raw));
        headers.insert(AUTHORIZATION, HeaderValue::from_str(&value).unwrap());
        headers
    }

    fn clients() -> IntrospectionClients {
        IntrospectionClients::new().client(
            "rs 1:x",
            ClientSecretHash::of(&format!("{SECRET}+%")).unwrap(),
        )
    }

    #[test]
    fn basic_credentials_are_form_urlencoded() {
        let clients = clients();
        assert!(clients.authenticate(&basic(&format!("rs+1%3Ax:{SECRET}%2B%25"))));
        assert!(clients.authenticate(&basic(&format!("rs%201%3Ax:{SECRET}%2B%25"))));
        // Decoded, `+` is a space: neither spelling matches.
        assert!(!clients.authenticate(&basic(&format!("rs+1%3Ax:{SECRET}+%25"))));
        // Not encoded at all (`curl -u`): taken as it is.
        let raw = IntrospectionClients::new().client(
            "rs1",
            ClientSecretHash::of(&format!("{SECRET}+/=")).unwrap(),
        );
        assert!(raw.authenticate(&basic(&format!("rs1:{SECRET}+/="))));
        assert!(raw.authenticate(&basic(&format!("rs1:{SECRET}%2B%2F%3D"))));
        assert!(!raw.authenticate(&basic(&format!("rs1:{SECRET} /="))));
        assert!(!clients.authenticate(&basic(&format!("rs+1%3Ax:{SECRET}"))));
        assert!(!clients.authenticate(&basic(&format!("other:{SECRET}+%"))));
        assert!(!clients.authenticate(&HeaderMap::new()));
    }

    #[test]
    fn malformed_or_repeated_headers_are_no_credentials() {
        let good = basic(&format!("rs+1%3Ax:{SECRET}%2B%25"));
        let mut twice = good.clone();
        twice.append(AUTHORIZATION, good[AUTHORIZATION].clone());
        assert!(basic_credentials(&twice).is_none());
        for value in ["Basic", "Basic !!!", "Bearer abc", "Basic bm9jb2xvbg=="] {
            let mut headers = HeaderMap::new();
            headers.insert(AUTHORIZATION, HeaderValue::from_static(value));
            assert!(basic_credentials(&headers).is_none(), "{value}");
        }
        let mut lower = HeaderMap::new();
        let value = format!("basic {}", STANDARD_NO_PAD.encode("a:b"));
        lower.insert(AUTHORIZATION, HeaderValue::from_str(&value).unwrap());
        assert_eq!(
            basic_credentials(&lower),
            Some((b"a".to_vec(), b"b".to_vec()))
        );
    }

    #[test]
    fn hashes_round_trip_and_refuse_bad_text() {
        let hash = ClientSecretHash::of(SECRET).unwrap();
        assert_eq!(
            hash.to_string().parse::<ClientSecretHash>(),
            Ok(hash.clone())
        );
        assert_eq!(format!("{hash:?}"), "ClientSecretHash(…)");
        for bad in ["", "blake2b-256$", "sha256$AAAA", "blake2b-256$AAAA"] {
            assert_eq!(
                bad.parse::<ClientSecretHash>(),
                Err(ClientSecretError::MalformedHash)
            );
        }
        let short = ClientSecretHash::of("secret1").unwrap_err();
        assert_eq!(short, ClientSecretError::TooShort { len: 7 });
        assert!(short.to_string().contains("at least 32"));
    }
}
