//! How the layer uses DPoP: [`DpopSettings`], given to the builder's
//! [`dpop`](crate::layer::Builder::dpop), and what the token endpoint and the
//! guard do with a request's proof.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use blake2::digest::consts::{U16, U32};
use blake2::digest::{KeyInit, Mac};
use blake2::{Blake2b, Blake2bMac, Digest};
use http::header::HOST;
use http::{Extensions, HeaderMap, HeaderName, HeaderValue, Method, Uri};

use crate::constant_time;
use crate::dpop::htu::{is_normal, NormalizedUri};
use crate::dpop::jwk::KeyCache;
use crate::dpop::proof::{
    read_proof, DpopAlgorithm, ProofCheck, ProofError, ReadProof, VerifiedProof, DEFAULT_MAX_AGE,
};
use crate::dpop::replay::{MemoryReplayStore, ReplayStore};
use crate::endpoint::client_addr::TrustedProxies;
use crate::http::base_url::BaseUrl;

/// The request header that carries a proof (RFC 9449 §4.1). A `HeaderName`, not
/// a `&str`: a string is parsed as a header name on every lookup (~150
/// instructions per request).
pub(crate) const DPOP: HeaderName = HeaderName::from_static("dpop");
/// The response header that carries a server nonce (RFC 9449 §8).
pub(crate) const DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");

/// How long a server nonce is accepted after the server made it: 5 minutes.
pub const NONCE_LIFETIME: Duration = Duration::from_secs(5 * 60);

/// Whether tokens must be bound to a client key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DpopMode {
    /// Proofs are honoured: a login or refresh with a proof gets a DPoP-bound
    /// token (`"token_type": "DPoP"`), one without gets a bearer token as before,
    /// and unbound tokens keep working as `Bearer`.
    Allowed,
    /// Every token is DPoP-bound: the token endpoint refuses a request without a
    /// proof (400 `invalid_dpop_proof`), and protected routes refuse `Bearer`.
    Required,
}

/// DPoP (RFC 9449) at the token endpoint and in the guard: give it to
/// [`Builder::dpop`](crate::layer::Builder::dpop). Off unless given.
///
/// - the token endpoint verifies a `DPoP` header's proof (method `POST`, the
///   token URL) and binds the access token, and a login's refresh tokens, to the
///   proof's key: `"token_type": "DPoP"`. A bound refresh token is refused
///   (400 `invalid_dpop_proof`) without a proof by the same key, before it is
///   rotated;
/// - the guard accepts `Authorization: DPoP <token>` with a proof of this request
///   whose `ath` is the token's hash and whose key is the token's; a bound token
///   sent as `Bearer` is refused (401);
/// - every proof is accepted once: its `jti` is remembered in a
///   [`ReplayStore`] ([`MemoryReplayStore`] unless
///   [`replay_store`](Self::replay_store) says otherwise: with replicas,
///   `RedisReplayStore`).
///
/// A proof names the URL it is for (`htu`). The layer compares it with the
/// [public URL](Self::public_url) when one is set (do set it in production), else
/// with the scheme and host of the request: the URI's (HTTP/2's `:scheme` and
/// `:authority`) or the `Host` header, with `http` when the request does not say;
/// `Forwarded` (`proto=`, `host=`) or `X-Forwarded-Proto`/`X-Forwarded-Host` only
/// when the connection's peer is one of the builder's
/// [`trusted_proxies`](crate::layer::Builder::trusted_proxies).
///
/// ```
/// use tower_oauth2_password::dpop::{DpopSettings, MemoryReplayStore};
/// use tower_oauth2_password::{MemoryUserStore, OAuth2PasswordLayer};
///
/// let layer = OAuth2PasswordLayer::builder(MemoryUserStore::<String>::new())
///     .dpop(
///         DpopSettings::allowed()
///             .public_url("https://api.example.com")
///             .replay_store(MemoryReplayStore::new())
///             .server_nonces(b"a secret of at least 32 bytes, shared by replicas"),
///     )
///     .build();
/// # let _ = layer;
/// ```
#[derive(Clone)]
pub struct DpopSettings {
    pub(crate) mode: DpopMode,
    pub(crate) replay: Arc<dyn ReplayStore>,
    algorithms: Vec<DpopAlgorithm>,
    public_url: Option<BaseUrl>,
    nonces: Option<NonceKey>,
    max_age: Duration,
    keys: Arc<KeyCache>,
}

impl DpopSettings {
    /// Proofs honoured, bearer tokens still accepted ([`DpopMode::Allowed`]).
    pub fn allowed() -> Self {
        Self::new(DpopMode::Allowed)
    }

    /// Every token DPoP-bound ([`DpopMode::Required`]).
    pub fn required() -> Self {
        Self::new(DpopMode::Required)
    }

    /// Settings for `mode`: both algorithms, a [`MemoryReplayStore`], no public
    /// URL, no server nonces, proofs accepted for [`DEFAULT_MAX_AGE`], a
    /// [`KeyCache`] of [`DEFAULT_KEY_CACHE_CAPACITY`](crate::dpop::DEFAULT_KEY_CACHE_CAPACITY) keys.
    pub fn new(mode: DpopMode) -> Self {
        Self {
            mode,
            replay: Arc::new(MemoryReplayStore::new()),
            algorithms: DpopAlgorithm::ALL.to_vec(),
            public_url: None,
            nonces: None,
            max_age: DEFAULT_MAX_AGE,
            keys: Arc::new(KeyCache::default()),
        }
    }

    /// The mode.
    pub fn mode(&self) -> DpopMode {
        self.mode
    }

    /// Remembers proofs in `store` (default: a [`MemoryReplayStore`] of this
    /// process): `RedisReplayStore` on the token stores' connection when several
    /// replicas accept the same tokens.
    pub fn replay_store(mut self, store: impl ReplayStore) -> Self {
        self.replay = Arc::new(store);
        self
    }

    /// Accepts proofs signed with these algorithms only (default: all of
    /// [`DpopAlgorithm::ALL`]). An empty list keeps the default.
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = DpopAlgorithm>) -> Self {
        let mut chosen: Vec<DpopAlgorithm> = Vec::new();
        for algorithm in algorithms {
            if !chosen.contains(&algorithm) {
                chosen.push(algorithm);
            }
        }
        if !chosen.is_empty() {
            self.algorithms = chosen;
        }
        self
    }

    /// The URL clients reach the service by (`https://api.example.com`, with a
    /// path if a proxy in front adds one): proofs must name it followed by the
    /// request's path. Without it, the scheme and host come from the request
    /// (see above).
    ///
    /// # Panics
    ///
    /// If `url` is not an `https://` or `http://` URL with a host and without a
    /// query, fragment or user information: a configuration mistake.
    #[track_caller]
    pub fn public_url(mut self, url: &str) -> Self {
        match BaseUrl::parse_as("DPoP public URL", url) {
            Ok(url) => self.public_url = Some(url),
            Err(message) => panic!("{message}"),
        }
        self
    }

    /// Requires server nonces (RFC 9449 §8): a proof without a nonce the server
    /// made within [`NONCE_LIFETIME`] is answered `use_dpop_nonce` with a fresh one
    /// in the `DPoP-Nonce` header (400 at the token endpoint, 401 elsewhere), and
    /// every token response carries a fresh one too. A nonce is the time it was
    /// made and a MAC of it under `secret`: nothing is stored, and replicas with
    /// the same secret accept each other's nonces.
    ///
    /// # Panics
    ///
    /// If `secret` is shorter than 32 bytes.
    #[track_caller]
    pub fn server_nonces(mut self, secret: &[u8]) -> Self {
        assert!(
            secret.len() >= 32,
            "the DPoP nonce secret must be at least 32 bytes, got {}",
            secret.len()
        );
        let mut hash = Blake2b::<U32>::new();
        hash.update(b"tower-oauth2-password dpop nonce key\0");
        hash.update(secret);
        self.nonces = Some(NonceKey(hash.finalize().into()));
        self
    }

    /// Keeps up to `capacity` clients' decoded keys (default
    /// [`DEFAULT_KEY_CACHE_CAPACITY`](crate::dpop::DEFAULT_KEY_CACHE_CAPACITY)),
    /// so that a client's next proof skips reading its header and decoding its
    /// key: see [`KeyCache`]. About 500 bytes per client once cached; the
    /// layer's clones share one cache.
    pub fn key_cache_capacity(mut self, capacity: usize) -> Self {
        self.keys = Arc::new(KeyCache::new(capacity));
        self
    }

    /// How old a proof may be (default [`DEFAULT_MAX_AGE`]).
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// The accepted algorithms' names, space-separated, for the `algs` parameter
    /// of `WWW-Authenticate: DPoP` (RFC 9449 §7.1).
    pub(crate) fn algs(&self) -> &'static str {
        match self.algorithms.as_slice() {
            [DpopAlgorithm::Es256] => "ES256",
            [DpopAlgorithm::EdDsa] => "EdDSA Ed25519",
            [DpopAlgorithm::EdDsa, DpopAlgorithm::Es256] => "EdDSA Ed25519 ES256",
            _ => "ES256 EdDSA Ed25519",
        }
    }

    /// The accepted algorithms (for the metadata's
    /// `dpop_signing_alg_values_supported`).
    pub(crate) fn algorithms_accepted(&self) -> &[DpopAlgorithm] {
        &self.algorithms
    }

    /// A fresh server nonce, when nonces are on.
    pub(crate) fn fresh_nonce(&self) -> Option<HeaderValue> {
        self.nonces.as_ref().map(|key| key.make(SystemTime::now()))
    }

    /// Verifies the request's proof: exactly one `DPoP` header, a proof of this
    /// `method` and URL (`path` as the client sent it), of `access_token` when one
    /// is presented, by an accepted algorithm, with a live server nonce when
    /// nonces are on. Replays are checked by the caller (the replay store may
    /// have to be awaited).
    pub(crate) fn verify(
        &self,
        request: RequestParts<'_>,
        access_token: Option<&[u8]>,
    ) -> Result<VerifiedProof, ProofRefusal> {
        self.finish(&self.read(request, access_token)?)
    }

    /// [`verify`](Self::verify) up to the signature and the nonce, which
    /// [`finish`](Self::finish) checks: the guard compares the proof's key with
    /// the token's binding in between.
    #[inline]
    pub(crate) fn read<'h>(
        &self,
        request: RequestParts<'h>,
        access_token: Option<&[u8]>,
    ) -> Result<ReadProof<&'h HeaderValue>, ProofRefusal> {
        let mut values = request.headers.get_all(&DPOP).iter();
        let (Some(proof), None) = (values.next(), values.next()) else {
            return Err(ProofRefusal::Invalid(
                "Send exactly one DPoP header with a proof",
            ));
        };
        let mut buffer = UrlBuffer::new();
        let normalized;
        let unknown = ProofRefusal::Invalid("The request's URL is not known");
        let url = self
            .request_url(&request, &mut buffer)
            .ok_or(unknown.clone())?;
        // The usual URL is its own normal form: compared as it is, not copied.
        let uri = if is_normal(url) {
            url
        } else {
            normalized = NormalizedUri::parse(url).map_err(|_| unknown)?;
            normalized.as_str()
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let mut check = ProofCheck::for_normal_uri(request.method, uri, now)
            .max_age(self.max_age)
            .key_cache(&self.keys);
        if let Some(token) = access_token {
            check = check.access_token_bytes(token);
        }
        let read = read_proof(proof, &check).map_err(invalid)?;
        // Before the signature: an algorithm not accepted costs no check.
        if !self.algorithms.contains(&read.algorithm()) {
            return Err(ProofRefusal::Invalid("DPoP proof algorithm not accepted"));
        }
        Ok(read)
    }

    /// The rest of [`verify`](Self::verify) after [`read`](Self::read): the
    /// signature, then the server nonce when nonces are on (a client whose
    /// signature fails is not handed a nonce).
    pub(crate) fn finish<P: AsRef<[u8]>>(
        &self,
        read: &ReadProof<P>,
    ) -> Result<VerifiedProof, ProofRefusal> {
        let verified = read.verify(Some(&self.keys)).map_err(invalid)?;
        if let Some(key) = &self.nonces {
            let live = verified
                .nonce()
                .is_some_and(|nonce| key.accepts(nonce, SystemTime::now()));
            if !live {
                return Err(ProofRefusal::UseNonce(key.make(SystemTime::now())));
            }
        }
        Ok(verified)
    }

    /// Until when a proof is remembered: its `iat` plus the window, plus a second
    /// (a fractional `iat` was rounded down).
    pub(crate) fn remember_until(&self, proof: &VerifiedProof) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(proof.iat().saturating_add(1)) + self.max_age
    }

    /// The URL the request was sent to (not normalised), written into `buffer`
    /// (or a `String` when longer than it).
    fn request_url<'b>(
        &self,
        request: &RequestParts<'b>,
        buffer: &'b mut UrlBuffer,
    ) -> Option<&'b str> {
        let path = request.path;
        match &self.public_url {
            Some(public) => {
                let (origin, base) = public.prefix_of(path);
                buffer.join([origin, base, path])
            }
            None => {
                let (scheme, host) = origin(request)?;
                buffer.join([scheme, "://", host, path])
            }
        }
    }
}

/// A request URL up to 256 bytes on the stack, a longer one on the heap.
pub(crate) struct UrlBuffer {
    bytes: [u8; 256],
    heap: String,
}

impl UrlBuffer {
    fn new() -> Self {
        UrlBuffer {
            bytes: [0; 256],
            heap: String::new(),
        }
    }

    /// The parts one after the other. `None` cannot happen (the parts are text),
    /// but is not unwrapped.
    fn join<const N: usize>(&mut self, parts: [&str; N]) -> Option<&str> {
        let len: usize = parts.iter().map(|part| part.len()).sum();
        if len > self.bytes.len() {
            self.heap = parts.concat();
            return Some(&self.heap);
        }
        let mut at = 0;
        for part in parts {
            self.bytes[at..at + part.len()].copy_from_slice(part.as_bytes());
            at += part.len();
        }
        std::str::from_utf8(&self.bytes[..len]).ok()
    }
}

/// The parts of a request a proof is checked against.
#[derive(Clone, Copy)]
pub(crate) struct RequestParts<'a> {
    pub(crate) method: &'a Method,
    pub(crate) uri: &'a Uri,
    /// The path as the client sent it (before a `nest` stripped a prefix).
    pub(crate) path: &'a str,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) extensions: &'a Extensions,
    pub(crate) proxies: &'a TrustedProxies,
}

/// A proof refused for what it is (logged at debug: the answer says only
/// "Invalid DPoP proof").
fn invalid(error: ProofError) -> ProofRefusal {
    tracing::debug!(%error, "DPoP proof refused");
    ProofRefusal::Invalid("Invalid DPoP proof")
}

/// Why a request's proof is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProofRefusal {
    /// `invalid_dpop_proof`, and why (for the response's `detail`).
    Invalid(&'static str),
    /// `use_dpop_nonce`, with the nonce to use.
    UseNonce(HeaderValue),
}

/// The scheme and host the client used: from trusted proxies' headers, else the
/// request's URI, else the `Host` header (scheme `http`).
fn origin<'a>(request: &RequestParts<'a>) -> Option<(&'a str, &'a str)> {
    let forwarded = request
        .proxies
        .forwarded_origin(request.headers, request.extensions);
    let (forwarded_scheme, forwarded_host) = forwarded.unwrap_or((None, None));
    let scheme = forwarded_scheme
        .or(request.uri.scheme_str())
        .unwrap_or("http");
    let host = match forwarded_host {
        Some(host) => host,
        None => match request.uri.authority() {
            Some(authority) => authority.as_str(),
            None => request.headers.get(HOST)?.to_str().ok()?,
        },
    };
    Some((scheme, host))
}

/// The key server nonces are MACed with.
#[derive(Clone)]
struct NonceKey([u8; 32]);

/// A nonce: 8 bytes of time (Unix seconds, big-endian) and a 16-byte MAC.
const NONCE_BYTES: usize = 24;

impl NonceKey {
    fn tag(&self, seconds: [u8; 8]) -> [u8; 16] {
        // A 32-byte key is within BLAKE2b's limit: this cannot fail.
        let mut mac = <Blake2bMac<U16> as KeyInit>::new_from_slice(&self.0)
            .expect("a 32-byte BLAKE2b key is valid");
        Mac::update(&mut mac, &seconds);
        mac.finalize().into_bytes().into()
    }

    fn make(&self, now: SystemTime) -> HeaderValue {
        let seconds = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs())
            .to_be_bytes();
        let mut nonce = [0u8; NONCE_BYTES];
        nonce[..8].copy_from_slice(&seconds);
        nonce[8..].copy_from_slice(&self.tag(seconds));
        // Base64url is a valid header value.
        HeaderValue::from_str(&URL_SAFE_NO_PAD.encode(nonce))
            .unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    fn accepts(&self, nonce: &str, now: SystemTime) -> bool {
        let mut bytes = [0u8; NONCE_BYTES];
        if nonce.len() != 32
            || crate::base64url::decode(nonce.as_bytes(), &mut bytes) != Ok(NONCE_BYTES)
        {
            return false;
        }
        let mut seconds = [0u8; 8];
        seconds.copy_from_slice(&bytes[..8]);
        if !constant_time::eq(&self.tag(seconds), &bytes[8..]) {
            return false;
        }
        let made = UNIX_EPOCH + Duration::from_secs(u64::from_be_bytes(seconds));
        // Made by a replica whose clock is slightly ahead, or within the lifetime.
        made <= now + Duration::from_secs(5) && now <= made + NONCE_LIFETIME
    }
}

impl fmt::Debug for DpopSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopSettings")
            .field("mode", &self.mode)
            .field("algorithms", &self.algorithms)
            .field("public_url", &self.public_url.as_ref().map(|url| &url.url))
            .field("server_nonces", &self.nonces.is_some())
            .field("max_age", &self.max_age)
            .field("key_cache", &self.keys)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_accepted_within_their_lifetime_and_by_their_key_only() {
        let key = NonceKey([7; 32]);
        let now = UNIX_EPOCH + Duration::from_secs(1_765_000_000);
        let nonce = key.make(now);
        let nonce = nonce.to_str().unwrap();
        assert_eq!(nonce.len(), 32);
        assert!(key.accepts(nonce, now));
        assert!(key.accepts(nonce, now + NONCE_LIFETIME));
        assert!(!key.accepts(nonce, now + NONCE_LIFETIME + Duration::from_secs(1)));
        assert!(!key.accepts(nonce, now - Duration::from_secs(6)));
        assert!(!NonceKey([8; 32]).accepts(nonce, now));
        let mut forged = nonce.to_owned().into_bytes();
        forged[3] = if forged[3] == b'A' { b'B' } else { b'A' };
        assert!(!key.accepts(std::str::from_utf8(&forged).unwrap(), now));
        assert!(!key.accepts("", now));
        assert!(!key.accepts(&"A".repeat(33), now));
    }

    #[test]
    fn algs_names_the_accepted_algorithms() {
        assert_eq!(DpopSettings::allowed().algs(), "ES256 EdDSA Ed25519");
        let eddsa = DpopSettings::allowed().algorithms([DpopAlgorithm::EdDsa]);
        assert_eq!(eddsa.algs(), "EdDSA Ed25519");
        assert_eq!(
            DpopSettings::allowed().algorithms([]).algs(),
            "ES256 EdDSA Ed25519"
        );
    }
}
