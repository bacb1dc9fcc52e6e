//! Parsing and verifying a `DPoP` header's proof (RFC 9449 §4.2–4.3).

use std::fmt;
use std::time::Duration;

use sha2::{Digest as _, Sha256};

use super::htu::NormalizedUri;
use super::json::{Document, Json, JsonError, Number, Object};
use super::jwk::{JwkError, KeyCache, PublicJwk, VerifyingKey};
use crate::base64url;
use crate::constant_time;
use crate::token::grant::JwkThumbprint;

/// The longest proof read, in bytes: 8 KiB.
///
/// A proof is a header with one public key, five short claims and a signature:
/// an ES256 proof is about 500 bytes and an EdDSA one less; a long `htu` (URLs of
/// a few KiB are already beyond what many proxies accept) still fits. The limit
/// bounds what an unauthenticated client makes the server decode and parse
/// before the signature is checked, and it matches the header size most HTTP
/// servers accept per field.
pub const MAX_PROOF_LEN: usize = 8 * 1024;

/// The longest `jti` accepted, in bytes: 128.
///
/// RFC 9449 §4.2 asks for at least 96 random bits; clients send 22 to 43
/// base64url characters or a 36-character UUID. The replay store keeps each `jti`
/// for the acceptance window, so a client must not make it keep kilobytes.
pub const MAX_JTI_LEN: usize = 128;

/// How old a proof may be, unless [`ProofCheck::max_age`] says otherwise: 60
/// seconds.
///
/// A proof is made for one request, just before it is sent; a minute covers
/// a slow network and a client clock somewhat behind. The replay store keeps each
/// `jti` this long (plus the leeway), so a longer window costs memory.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(60);

/// How far in the future a proof's `iat` may be, unless
/// [`ProofCheck::future_leeway`] says otherwise: 5 seconds, for a client clock
/// slightly ahead (a client far off should use server nonces, RFC 9449 §8).
pub const DEFAULT_FUTURE_LEEWAY: Duration = Duration::from_secs(5);

/// The signature algorithms a proof may use (RFC 9449 §4.3 check 5: asymmetric
/// only; never `none`, never a MAC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DpopAlgorithm {
    /// ECDSA with P-256 and SHA-256 (RFC 7518 §3.4), a `{"kty":"EC","crv":"P-256"}` key.
    Es256,
    /// Ed25519 (RFC 8037), an `{"kty":"OKP","crv":"Ed25519"}` key. A proof may
    /// name it `EdDSA` (RFC 8037) or `Ed25519` (RFC 9864's fully-specified name,
    /// the one WebCrypto-era clients such as npm `dpop` and `oauth4webapi` send).
    EdDsa,
}

impl DpopAlgorithm {
    /// Every algorithm accepted, for `dpop_signing_alg_values_supported` and the
    /// `algs` parameter of `WWW-Authenticate: DPoP` (RFC 9449 §5.1, §7.1).
    pub const ALL: [DpopAlgorithm; 2] = [DpopAlgorithm::Es256, DpopAlgorithm::EdDsa];

    /// The JOSE name: `ES256` or `EdDSA`.
    pub fn as_str(self) -> &'static str {
        self.names()[0]
    }

    /// Every JOSE name a proof may give the algorithm: `ES256`; `EdDSA` and
    /// `Ed25519` (RFC 9864). All of them are advertised.
    pub fn names(self) -> &'static [&'static str] {
        match self {
            DpopAlgorithm::Es256 => &["ES256"],
            DpopAlgorithm::EdDsa => &["EdDSA", "Ed25519"],
        }
    }

    /// The algorithm a JOSE `alg` names (case-sensitive, RFC 7515 §4.1.1).
    fn from_name(name: &str) -> Option<Self> {
        DpopAlgorithm::ALL
            .into_iter()
            .find(|alg| alg.names().contains(&name))
    }

    /// The algorithm that signs with `key`'s kind of key.
    fn of_key(key: &PublicJwk) -> Self {
        match key {
            PublicJwk::P256 { .. } => DpopAlgorithm::Es256,
            PublicJwk::Ed25519 { .. } => DpopAlgorithm::EdDsa,
        }
    }
}

impl fmt::Display for DpopAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a proof was refused: one variant per check. `Display` says which check
/// failed, never what the proof held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProofError {
    /// Longer than [`MAX_PROOF_LEN`].
    TooLong,
    /// Not a JWS in compact form: three non-empty base64url segments separated by dots.
    NotCompact,
    /// A segment is not canonical base64url: padding, characters outside the
    /// URL-safe alphabet, or stray bits in the last character.
    Base64,
    /// The header or the claims are not one JSON object.
    Json,
    /// An object (the header, the key, the claims) names a member twice.
    DuplicateMember,
    /// A required member is missing: `typ`, `alg`, `jwk`, `jti`, `htm`, `htu`, `iat`.
    MissingMember(&'static str),
    /// A member has the wrong JSON type (`iat` a string, `htm` a number, …), or a
    /// negative or non-finite `iat`.
    InvalidMember(&'static str),
    /// `typ` is not `dpop+jwt`.
    Type,
    /// `alg` is not one of [`DpopAlgorithm::ALL`]: `none`, MACs, RSA and others.
    UnsupportedAlgorithm,
    /// The header has `crit`: this verifier understands no JWS extension.
    CriticalHeader,
    /// The `jwk` holds private-key members (`d`, `k`, …).
    PrivateKey,
    /// The `jwk` has a key type or curve no accepted algorithm uses.
    UnsupportedKey,
    /// The `jwk` is not a valid public key: a missing or malformed coordinate, a
    /// point not on the curve, a small-order or non-canonical Ed25519 point.
    InvalidKey,
    /// `alg` does not go with the key (ES256 with an Ed25519 key, …), or the key's
    /// own `alg` names another algorithm.
    AlgorithmMismatch,
    /// `jti` is empty or longer than [`MAX_JTI_LEN`].
    Jti,
    /// `htm` is not the request's method.
    MethodMismatch,
    /// `htu` is not an absolute `http`/`https` URI.
    InvalidUri,
    /// `htu` does not name the request's URI.
    UriMismatch,
    /// `iat` is older than the [maximum age](ProofCheck::max_age).
    Expired,
    /// `iat` is later than now plus the [leeway](ProofCheck::future_leeway).
    IssuedInFuture,
    /// An access token is presented and the proof has no `ath`.
    MissingAccessTokenHash,
    /// `ath` is not the hash of the access token presented.
    AccessTokenHashMismatch,
    /// The server expects a nonce and the proof has none.
    MissingNonce,
    /// `nonce` is not the one the server expects.
    NonceMismatch,
    /// The signature is not 64 bytes, or does not verify with the proof's key.
    Signature,
}

impl fmt::Display for ProofError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProofError::TooLong => write!(f, "the DPoP proof is longer than {MAX_PROOF_LEN} bytes"),
            ProofError::NotCompact => {
                f.write_str("the DPoP proof is not a compact JWS (three base64url segments)")
            }
            ProofError::Base64 => {
                f.write_str("a segment of the DPoP proof is not canonical base64url")
            }
            ProofError::Json => {
                f.write_str("the DPoP proof's header or claims are not a JSON object")
            }
            ProofError::DuplicateMember => {
                f.write_str("the DPoP proof has a duplicate JSON member")
            }
            ProofError::MissingMember(name) => write!(f, "the DPoP proof has no `{name}`"),
            ProofError::InvalidMember(name) => {
                write!(f, "the DPoP proof's `{name}` has the wrong type or value")
            }
            ProofError::Type => f.write_str("the DPoP proof's `typ` is not `dpop+jwt`"),
            ProofError::UnsupportedAlgorithm => {
                f.write_str("the DPoP proof's `alg` is not ES256, EdDSA or Ed25519")
            }
            ProofError::CriticalHeader => f.write_str("the DPoP proof has a `crit` header"),
            ProofError::PrivateKey => f.write_str("the DPoP proof's `jwk` holds a private key"),
            ProofError::UnsupportedKey => {
                f.write_str("the DPoP proof's `jwk` is not a P-256 or Ed25519 key")
            }
            ProofError::InvalidKey => {
                f.write_str("the DPoP proof's `jwk` is not a valid public key")
            }
            ProofError::AlgorithmMismatch => {
                f.write_str("the DPoP proof's `alg` does not match its key")
            }
            ProofError::Jti => write!(
                f,
                "the DPoP proof's `jti` is empty or longer than {MAX_JTI_LEN} bytes"
            ),
            ProofError::MethodMismatch => {
                f.write_str("the DPoP proof's `htm` is not the request's method")
            }
            ProofError::InvalidUri => {
                f.write_str("the DPoP proof's `htu` is not an absolute http(s) URI")
            }
            ProofError::UriMismatch => {
                f.write_str("the DPoP proof's `htu` is not the request's URI")
            }
            ProofError::Expired => f.write_str("the DPoP proof's `iat` is too old"),
            ProofError::IssuedInFuture => f.write_str("the DPoP proof's `iat` is in the future"),
            ProofError::MissingAccessTokenHash => {
                f.write_str("the DPoP proof has no `ath` for the access token")
            }
            ProofError::AccessTokenHashMismatch => {
                f.write_str("the DPoP proof's `ath` is not the access token's hash")
            }
            ProofError::MissingNonce => f.write_str("the DPoP proof has no `nonce`"),
            ProofError::NonceMismatch => {
                f.write_str("the DPoP proof's `nonce` is not the server's")
            }
            ProofError::Signature => f.write_str("the DPoP proof's signature does not verify"),
        }
    }
}

impl std::error::Error for ProofError {}

/// What a proof must match: the request (method and URI), the time, and, where
/// they apply, the access token and the server's nonce.
///
/// ```
/// use std::time::Duration;
/// use tower_oauth2_password::dpop::{NormalizedUri, ProofCheck};
///
/// let uri = NormalizedUri::parse("https://api.example.com/users/me")?;
/// let check = ProofCheck::new(&http::Method::GET, &uri, 1_700_000_000)
///     .access_token("the token from `Authorization: DPoP …`")
///     .max_age(Duration::from_secs(30));
/// # let _ = check;
/// # Ok::<(), tower_oauth2_password::dpop::InvalidUri>(())
/// ```
#[derive(Clone)]
pub struct ProofCheck<'a> {
    method: &'a http::Method,
    /// The request's URI in normal form (see [`super::htu::matches`]).
    uri: &'a str,
    now: u64,
    max_age: u64,
    future_leeway: u64,
    /// Bytes, not `str`: the guard hashes the header's bytes without a UTF-8
    /// check per request (it has checked they are ASCII).
    access_token: Option<&'a [u8]>,
    nonce: Option<&'a str>,
    key_cache: Option<&'a KeyCache>,
}

impl<'a> ProofCheck<'a> {
    /// A check for a request with this method and URI, at `now` (Unix seconds),
    /// with no access token and no nonce, and the default window
    /// ([`DEFAULT_MAX_AGE`], [`DEFAULT_FUTURE_LEEWAY`]).
    pub fn new(method: &'a http::Method, uri: &'a NormalizedUri, now: u64) -> Self {
        Self::for_normal_uri(method, uri.as_str(), now)
    }

    /// [`ProofCheck::new`] for a URI that [`super::htu::is_normal`] vouches for,
    /// or that came out of [`NormalizedUri::parse`]: the guard's request URL,
    /// without a `NormalizedUri` (a `String`) per request.
    pub(crate) fn for_normal_uri(method: &'a http::Method, normal: &'a str, now: u64) -> Self {
        debug_assert!(
            super::htu::is_normal(normal)
                || NormalizedUri::parse(normal).is_ok_and(|n| n.as_str() == normal)
        );
        ProofCheck {
            method,
            uri: normal,
            now,
            max_age: DEFAULT_MAX_AGE.as_secs(),
            future_leeway: DEFAULT_FUTURE_LEEWAY.as_secs(),
            access_token: None,
            nonce: None,
            key_cache: None,
        }
    }

    /// The access token the request presents (`Authorization: DPoP <token>`): the
    /// proof must carry its hash as `ath` (RFC 9449 §4.3 check 12).
    pub fn access_token(mut self, token: &'a str) -> Self {
        self.access_token = Some(token.as_bytes());
        self
    }

    /// [`access_token`](Self::access_token) for a token already checked to be
    /// ASCII.
    pub(crate) fn access_token_bytes(mut self, token: &'a [u8]) -> Self {
        self.access_token = Some(token);
        self
    }

    /// The nonce the server gave the client (`DPoP-Nonce`, RFC 9449 §8): the proof
    /// must carry it. Without this, a proof's `nonce` is not looked at.
    pub fn nonce(mut self, nonce: &'a str) -> Self {
        self.nonce = Some(nonce);
        self
    }

    /// Looks the proof's header up in `cache` before decoding it, and caches its
    /// key once the signature verified: a client sends the same header, with the
    /// same key, in every proof (see [`KeyCache`]). Without this, every header is
    /// read and every key decoded.
    pub fn key_cache(mut self, cache: &'a KeyCache) -> Self {
        self.key_cache = Some(cache);
        self
    }

    /// How old a proof may be (its `iat` before `now`), in whole seconds.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age.as_secs();
        self
    }

    /// How far after `now` a proof's `iat` may be, in whole seconds.
    pub fn future_leeway(mut self, leeway: Duration) -> Self {
        self.future_leeway = leeway.as_secs();
        self
    }
}

impl fmt::Debug for ProofCheck<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProofCheck")
            .field("method", self.method)
            .field("uri", &self.uri)
            .field("now", &self.now)
            .field("max_age", &self.max_age)
            .field("future_leeway", &self.future_leeway)
            .field("access_token", &self.access_token.map(|_| "…"))
            .field("nonce", &self.nonce.map(|_| "…"))
            .field("key_cache", &self.key_cache.is_some())
            .finish()
    }
}

/// A proof that passed every check of its [`ProofCheck`]: the key's thumbprint to
/// bind a token to (or to compare with a token's binding), and the `jti` and `iat`
/// for the replay store.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifiedProof {
    key: PublicJwk,
    thumbprint: JwkThumbprint,
    algorithm: DpopAlgorithm,
    jti: Jti,
    iat: u64,
    nonce: Option<String>,
}

impl VerifiedProof {
    /// The RFC 7638 thumbprint of the proof's key (`jkt`).
    pub fn thumbprint(&self) -> &JwkThumbprint {
        &self.thumbprint
    }

    /// The proof's public key.
    pub fn key(&self) -> &PublicJwk {
        &self.key
    }

    /// The algorithm the proof was signed with.
    pub fn algorithm(&self) -> DpopAlgorithm {
        self.algorithm
    }

    /// The proof's `jti`: unique per proof, for the replay store (at most
    /// [`MAX_JTI_LEN`] bytes). Remember it with the [thumbprint](Self::thumbprint)
    /// until `iat` leaves the window: the same `jti` from two keys is two proofs.
    pub fn jti(&self) -> &str {
        self.jti.as_str()
    }

    /// The `jti`'s bytes, for [`ProofId`](super::ProofId).
    pub(super) fn jti_bytes(&self) -> &[u8] {
        self.jti.as_bytes()
    }

    /// The proof's `iat`, in Unix seconds (a fractional one rounded down).
    pub fn iat(&self) -> u64 {
        self.iat
    }

    /// The proof's `nonce` (RFC 9449 §8), if it has one: for a server whose
    /// nonces are checked by their content rather than compared with one value
    /// ([`ProofCheck::nonce`]).
    pub fn nonce(&self) -> Option<&str> {
        self.nonce.as_deref()
    }
}

impl fmt::Debug for VerifiedProof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedProof")
            .field("thumbprint", &self.thumbprint)
            .field("algorithm", &self.algorithm)
            .field("jti", &self.jti.as_str())
            .field("iat", &self.iat)
            .field("nonce", &self.nonce)
            .finish()
    }
}

/// A proof's `jti`: inline up to [`JTI_INLINE`] bytes (the 22 to 43 characters
/// clients send, a 36-character UUID), on the heap beyond. A `String` per
/// request cost an allocation and a free.
#[derive(Clone)]
enum Jti {
    Inline { len: u8, bytes: [u8; JTI_INLINE] },
    Heap(Box<str>),
}

/// The longest `jti` kept inline; the whole [`Jti`] is 48 bytes, two more words
/// than a `String` (what `VerifiedProof` is moved with grows little).
const JTI_INLINE: usize = 46;

impl Jti {
    fn new(jti: &str) -> Self {
        match u8::try_from(jti.len()) {
            Ok(len) if jti.len() <= JTI_INLINE => {
                let mut bytes = [0; JTI_INLINE];
                bytes[..jti.len()].copy_from_slice(jti.as_bytes());
                Jti::Inline { len, bytes }
            }
            _ => Jti::Heap(jti.into()),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // The bytes are a whole `str`'s, copied.
            Jti::Inline { .. } => std::str::from_utf8(self.as_bytes()).unwrap_or_default(),
            Jti::Heap(jti) => jti,
        }
    }

    /// The bytes, without the UTF-8 check `as_str` repeats: what the replay
    /// store's id hashes, once per proof.
    fn as_bytes(&self) -> &[u8] {
        match self {
            Jti::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Jti::Heap(jti) => jti.as_bytes(),
        }
    }
}

impl PartialEq for Jti {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Jti {}

/// Verifies `proof`, a `DPoP` header's value, against `check`.
///
/// The checks of RFC 9449 §4.3, in this order (the first failure is the error):
///
/// 1. at most [`MAX_PROOF_LEN`] bytes; three non-empty segments; the header and
///    the claims canonical base64url, each one JSON object without duplicate
///    members;
/// 2. the header: `typ` is `dpop+jwt` (media types are case-insensitive and the
///    `application/` prefix optional, RFC 7515 §4.1.9); `alg` is ES256, EdDSA or Ed25519;
///    no `crit`; `jwk` a P-256 or Ed25519 public key, valid, without private
///    members, of the type `alg` signs with (and, if it has its own `alg`, that
///    one);
/// 3. the claims: `jti` (1 to [`MAX_JTI_LEN`] bytes), `htm` equal to the method,
///    `htu` equal to the URI once both are [normalised](NormalizedUri), `iat`
///    within the window, `ath` when an access token is presented (compared in
///    constant time), `nonce` when one is expected;
/// 4. the signature, canonical base64url of 64 bytes, with the proof's key:
///    ES256 as JOSE's `r || s` with p256, EdDSA with ed25519-dalek's
///    `verify_strict` (no small-order keys or `R`, no non-canonical `S`).
///
/// Other header members and claims are ignored (RFC 7515 §4: unknown members
/// that are not `crit` are ignored). Replays are not detected here: the caller
/// remembers [`VerifiedProof::jti`].
///
/// **High-S ECDSA signatures are accepted.** Neither RFC 7518 nor RFC 9449 asks for
/// low-S, WebCrypto and most JOSE libraries sign with either, and a second valid
/// signature of the same proof gains an attacker nothing: replay is detected by
/// `jti`, not by the signature's bytes.
pub fn verify_proof(proof: &[u8], check: &ProofCheck<'_>) -> Result<VerifiedProof, ProofError> {
    read_proof(proof, check)?.verify(check.key_cache)
}

/// [`verify_proof`] up to its signature: every check of `check` but the
/// signature's, which [`ReadProof::verify`] makes. The guard compares the key
/// with the token's binding in between, so that a request with an unknown,
/// expired or revoked token, or a proof by another key, costs no signature
/// check.
pub(crate) fn read_proof<P: AsRef<[u8]>>(
    proof: P,
    check: &ProofCheck<'_>,
) -> Result<ReadProof<P>, ProofError> {
    let bytes = proof.as_ref();
    if bytes.len() > MAX_PROOF_LEN {
        return Err(ProofError::TooLong);
    }
    let (header_b64, rest) = split_at_dot(bytes).ok_or(ProofError::NotCompact)?;
    let (claims_b64, signature_b64) = split_at_dot(rest).ok_or(ProofError::NotCompact)?;
    if find_dot(signature_b64).is_some() {
        return Err(ProofError::NotCompact);
    }
    if header_b64.is_empty() || claims_b64.is_empty() || signature_b64.is_empty() {
        return Err(ProofError::NotCompact);
    }
    // A client sends the same header in every proof: one whose proof verified
    // before is not read again (its checks below passed then).
    let cached = check.key_cache.and_then(|cache| cache.get(header_b64));
    let cached_key = cached.is_some();
    let header_len = match cached {
        Some(_) => 0,
        None => base64url::decoded_len(header_b64.len()).ok_or(ProofError::Base64)?,
    };
    // Both decoded into one buffer: on the stack for a proof of usual size, else
    // (a long `htu`, a padded header) on the heap, at most 3/4 of MAX_PROOF_LEN.
    let needed = header_len + base64url::decoded_len(claims_b64.len()).ok_or(ProofError::Base64)?;
    let mut on_stack = [0u8; STACK_DECODED_LEN];
    let mut on_heap = Vec::new();
    let buffer: &mut [u8] = if needed <= STACK_DECODED_LEN {
        &mut on_stack[..needed]
    } else {
        on_heap.resize(needed, 0);
        &mut on_heap
    };
    let mut claims_json = Document::new();
    let (signer, claims) = match cached {
        // The header's `alg` was the one its key's kind signs with.
        Some((jwk, key, thumbprint)) => {
            let (claims_bytes, _) = decode_segment(claims_b64, buffer)?;
            let signer = Signer {
                algorithm: DpopAlgorithm::of_key(&jwk),
                jwk,
                key,
                thumbprint: Some(thumbprint),
            };
            (signer, parse_object(&mut claims_json, claims_bytes)?)
        }
        None => {
            let (header_bytes, rest) = decode_segment(header_b64, buffer)?;
            let (claims_bytes, _) = decode_segment(claims_b64, rest)?;
            // Made only on a miss: a document is two arrays of blank members.
            let mut header_json = Document::new();
            let header = parse_object(&mut header_json, header_bytes)?;
            let claims = parse_object(&mut claims_json, claims_bytes)?;
            (read_header(&header)?, claims)
        }
    };

    // The claims, found in one pass over the members.
    let claims = Claims::read(&claims);
    let jti = string(claims.jti, "jti")?;
    if jti.is_empty() || jti.len() > MAX_JTI_LEN {
        return Err(ProofError::Jti);
    }
    if string(claims.htm, "htm")? != check.method.as_str() {
        return Err(ProofError::MethodMismatch);
    }
    let same = super::htu::matches(check.uri, string(claims.htu, "htu")?)
        .map_err(|_| ProofError::InvalidUri)?;
    if !same {
        return Err(ProofError::UriMismatch);
    }
    let iat = numeric_date(claims.iat, "iat")?;
    if iat.saturating_add(check.max_age) < check.now {
        return Err(ProofError::Expired);
    }
    if iat > check.now.saturating_add(check.future_leeway) {
        return Err(ProofError::IssuedInFuture);
    }
    if let Some(token) = check.access_token {
        let ath = optional_string(claims.ath, "ath")?.ok_or(ProofError::MissingAccessTokenHash)?;
        // SHA-256 is 32 bytes, 43 characters of canonical base64url exactly.
        let mut hash = [0u8; 32];
        if ath.len() != 43 || base64url::decode(ath.as_bytes(), &mut hash) != Ok(32) {
            return Err(ProofError::AccessTokenHashMismatch);
        }
        let expected: [u8; 32] = Sha256::digest(token).into();
        if !constant_time::eq(&hash, &expected) {
            return Err(ProofError::AccessTokenHashMismatch);
        }
    }
    let nonce = optional_string(claims.nonce, "nonce")?;
    if let Some(expected) = check.nonce {
        let nonce = nonce.ok_or(ProofError::MissingNonce)?;
        if !constant_time::eq(nonce.as_bytes(), expected.as_bytes()) {
            return Err(ProofError::NonceMismatch);
        }
    }

    // The signature, over the first two segments as sent; 64 bytes are 86
    // characters exactly.
    let mut signature = [0u8; 64];
    if signature_b64.len() != 86 {
        return Err(ProofError::Signature);
    }
    base64url::decode(signature_b64, &mut signature).map_err(|_| ProofError::Base64)?;
    let (header_len, signed_len) = (header_b64.len(), header_b64.len() + 1 + claims_b64.len());
    Ok(ReadProof {
        cached: cached_key,
        header_len,
        signed_len,
        signature,
        signer,
        jti: Jti::new(jti),
        iat,
        nonce: nonce.map(str::to_owned),
        proof,
    })
}

/// A proof [`read_proof`] found well formed and matching its [`ProofCheck`],
/// whose signature is still to be checked.
pub(crate) struct ReadProof<P> {
    /// The proof as sent: the signature covers its first `signed_len` bytes,
    /// the first `header_len` of which are the header (the key cache's key).
    proof: P,
    header_len: usize,
    signed_len: usize,
    signature: [u8; 64],
    signer: Signer,
    /// Whether the header came from the key cache (no need to cache it again).
    cached: bool,
    jti: Jti,
    iat: u64,
    nonce: Option<String>,
}

impl<P: AsRef<[u8]>> ReadProof<P> {
    /// The algorithm the proof says it is signed with (one its key signs with).
    pub(crate) fn algorithm(&self) -> DpopAlgorithm {
        self.signer.algorithm
    }

    /// The thumbprint of the proof's key: the key cache's, or computed now (one
    /// SHA-256 of the key's members) and kept for [`ReadProof::verify`].
    pub(crate) fn thumbprint(&mut self) -> JwkThumbprint {
        *self
            .signer
            .thumbprint
            .get_or_insert_with(|| self.signer.jwk.thumbprint())
    }

    /// Checks the signature; a verified proof's header goes into `cache`. By
    /// reference: the proof holds a decoded key (up to 200 bytes) that the
    /// verified proof does not, and each move of it was a copy per request.
    pub(crate) fn verify(&self, cache: Option<&KeyCache>) -> Result<VerifiedProof, ProofError> {
        let bytes = self.proof.as_ref();
        // `read_header` checked that the key's kind is the algorithm's.
        if !self
            .signer
            .key
            .verifies(&bytes[..self.signed_len], &self.signature)
        {
            return Err(ProofError::Signature);
        }
        // Computed once the signature verified (unless the guard asked for it
        // before): a forged proof costs no hash.
        let thumbprint = match self.signer.thumbprint {
            Some(thumbprint) => thumbprint,
            None => self.signer.jwk.thumbprint(),
        };
        if let (false, Some(cache)) = (self.cached, cache) {
            let header_b64 = &bytes[..self.header_len];
            cache.insert(header_b64, &self.signer.jwk, &self.signer.key, thumbprint);
        }
        Ok(VerifiedProof {
            thumbprint,
            key: self.signer.jwk.clone(),
            algorithm: self.signer.algorithm,
            jti: self.jti.clone(),
            iat: self.iat,
            nonce: self.nonce.clone(),
        })
    }
}

impl ReadProof<&http::HeaderValue> {
    /// The same proof, holding its header (a count, not a copy) rather than
    /// borrowing it: for a guard that awaits a store before the signature check.
    pub(crate) fn into_owned(self) -> ReadProof<http::HeaderValue> {
        ReadProof {
            proof: self.proof.clone(),
            header_len: self.header_len,
            signed_len: self.signed_len,
            signature: self.signature,
            signer: self.signer,
            cached: self.cached,
            jti: self.jti,
            iat: self.iat,
            nonce: self.nonce,
        }
    }
}

/// Who signed a proof, as its header says: the algorithm and the key, decoded
/// for the signature check, and the key's thumbprint once known (a cached header's).
struct Signer {
    algorithm: DpopAlgorithm,
    jwk: PublicJwk,
    key: VerifyingKey,
    thumbprint: Option<JwkThumbprint>,
}

/// The header's checks (2. in [`verify_proof`]): `typ`, `alg`, no `crit`, and a
/// valid public `jwk` of the algorithm's kind.
fn read_header(header: &Object<'_>) -> Result<Signer, ProofError> {
    let typ = string(header.get("typ"), "typ")?;
    let typ = match typ.get(.."application/".len()) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ["application/".len()..],
        _ => typ,
    };
    if !typ.eq_ignore_ascii_case("dpop+jwt") {
        return Err(ProofError::Type);
    }
    let algorithm = DpopAlgorithm::from_name(string(header.get("alg"), "alg")?)
        .ok_or(ProofError::UnsupportedAlgorithm)?;
    if header.contains("crit") {
        return Err(ProofError::CriticalHeader);
    }
    let jwk = match header.get("jwk") {
        Some(Json::Object(jwk)) => jwk,
        Some(_) => return Err(ProofError::InvalidMember("jwk")),
        None => return Err(ProofError::MissingMember("jwk")),
    };
    let jwk_error = |error| match error {
        JwkError::PrivateKey => ProofError::PrivateKey,
        JwkError::Unsupported => ProofError::UnsupportedKey,
        JwkError::Invalid => ProofError::InvalidKey,
    };
    let public = PublicJwk::read(&jwk).map_err(jwk_error)?;
    let key = public.decode().map_err(jwk_error)?;
    if DpopAlgorithm::of_key(&public) != algorithm {
        return Err(ProofError::AlgorithmMismatch);
    }
    match jwk.get("alg") {
        None => {}
        Some(Json::String(alg)) if algorithm.names().contains(&alg) => {}
        Some(_) => return Err(ProofError::AlgorithmMismatch),
    }
    Ok(Signer {
        algorithm,
        jwk: public,
        key,
        thumbprint: None,
    })
}

/// `bytes` before and after its first `.`.
fn split_at_dot(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let dot = find_dot(bytes)?;
    Some((&bytes[..dot], &bytes[dot + 1..]))
}

/// Where the first `.` in `bytes` is, by `memchr`'s vector search: a proof is
/// read three times over for its dots, which eight bytes at a time took ~550
/// instructions (and byte by byte as much as its JSON).
fn find_dot(bytes: &[u8]) -> Option<usize> {
    memchr::memchr(b'.', bytes)
}

/// The room decoding a proof's header and claims takes on the stack: an ES256
/// proof's are about 500 bytes. A longer proof's are decoded on the heap.
const STACK_DECODED_LEN: usize = 1024;

/// Decodes one base64url segment at the start of `buffer`: the decoded bytes, and
/// the rest of the buffer.
fn decode_segment<'b>(
    segment: &[u8],
    buffer: &'b mut [u8],
) -> Result<(&'b [u8], &'b mut [u8]), ProofError> {
    let len = base64url::decode(segment, buffer).map_err(|_| ProofError::Base64)?;
    let (decoded, rest) = buffer.split_at_mut(len);
    Ok((decoded, rest))
}

/// Parses a decoded segment as one JSON object.
fn parse_object<'d, 'a>(
    document: &'d mut Document<'a>,
    bytes: &'a [u8],
) -> Result<Object<'d>, ProofError> {
    document.parse(bytes).map_err(|error| match error {
        JsonError::Malformed => ProofError::Json,
        JsonError::DuplicateMember => ProofError::DuplicateMember,
    })
}

/// The claims [`verify_proof`] reads, each `None` when absent.
#[derive(Default)]
struct Claims<'o> {
    jti: Option<Json<'o>>,
    htm: Option<Json<'o>>,
    htu: Option<Json<'o>>,
    iat: Option<Json<'o>>,
    ath: Option<Json<'o>>,
    nonce: Option<Json<'o>>,
}

impl<'o> Claims<'o> {
    /// One pass over the members (the parser refused duplicates): looking each
    /// claim up on its own read the members six times.
    fn read(object: &Object<'o>) -> Self {
        let mut claims = Claims::default();
        for (name, value) in object.members() {
            let slot = match name {
                "jti" => &mut claims.jti,
                "htm" => &mut claims.htm,
                "htu" => &mut claims.htu,
                "iat" => &mut claims.iat,
                "ath" => &mut claims.ath,
                "nonce" => &mut claims.nonce,
                _ => continue,
            };
            *slot = Some(value);
        }
        claims
    }
}

/// A required string member.
fn string<'o>(member: Option<Json<'o>>, name: &'static str) -> Result<&'o str, ProofError> {
    optional_string(member, name)?.ok_or(ProofError::MissingMember(name))
}

/// An optional string member: absent is `None`, another type an error.
fn optional_string<'o>(
    member: Option<Json<'o>>,
    name: &'static str,
) -> Result<Option<&'o str>, ProofError> {
    match member {
        None => Ok(None),
        Some(Json::String(value)) => Ok(Some(value)),
        Some(_) => Err(ProofError::InvalidMember(name)),
    }
}

/// A NumericDate (RFC 7519 §2): a non-negative number of seconds, a fraction
/// rounded down.
fn numeric_date(member: Option<Json<'_>>, name: &'static str) -> Result<u64, ProofError> {
    match member {
        None => Err(ProofError::MissingMember(name)),
        Some(Json::Number(Number::Unsigned(seconds))) => Ok(seconds),
        // Below 2^53 a float holds whole seconds exactly; beyond, no real date.
        Some(Json::Number(Number::Float(seconds)))
            if (0.0..9_007_199_254_740_992.0).contains(&seconds) =>
        {
            // Truncation is the rounding down asked for; the range is checked.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Ok(seconds.floor() as u64)
        }
        Some(_) => Err(ProofError::InvalidMember(name)),
    }
}

#[cfg(test)]
mod tests;
