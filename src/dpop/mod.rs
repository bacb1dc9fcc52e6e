//! DPoP proofs (RFC 9449, feature `dpop`): [`verify_proof`] checks a `DPoP`
//! header's proof against the request and hands back the client key's
//! [thumbprint](JwkThumbprint), the name a sender-constrained token is bound to.
//!
//! ```
//! use base64::engine::general_purpose::URL_SAFE_NO_PAD;
//! use base64::Engine as _;
//! use ed25519_dalek::{Signer as _, SigningKey};
//! use futures_util::FutureExt as _;
//! use std::time::{Duration, SystemTime, UNIX_EPOCH};
//! use tower_oauth2_password::dpop::{verify_proof, NormalizedUri, ProofCheck, ProofError};
//! use tower_oauth2_password::dpop::{MemoryReplayStore, ProofId, ReplayStore, Sighting, DEFAULT_MAX_AGE};
//!
//! // The client: a key of its own, and a proof per request (a DPoP library does this).
//! let key = SigningKey::from_bytes(&[7; 32]);
//! let jwk = serde_json::json!({
//!     "kty": "OKP", "crv": "Ed25519",
//!     "x": URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
//! });
//! let header = serde_json::json!({ "typ": "dpop+jwt", "alg": "EdDSA", "jwk": jwk });
//! let claims = serde_json::json!({
//!     "jti": "e1j3V_bKic8-LAEB", "htm": "POST",
//!     "htu": "https://server.example.com/token", "iat": 1_700_000_000,
//! });
//! let mut proof = format!(
//!     "{}.{}",
//!     URL_SAFE_NO_PAD.encode(header.to_string()),
//!     URL_SAFE_NO_PAD.encode(claims.to_string()),
//! );
//! let signature = key.sign(proof.as_bytes());
//! proof = format!("{proof}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()));
//!
//! // The server: the request's method and URI (the scheme and host the client
//! // used), and the time.
//! let uri = NormalizedUri::parse("https://Server.Example.com:443/token")?;
//! let check = ProofCheck::new(&http::Method::POST, &uri, 1_700_000_010);
//! let verified = verify_proof(proof.as_bytes(), &check)?;
//! assert_eq!(verified.jti(), "e1j3V_bKic8-LAEB"); // for the replay store
//! let binding = verified.thumbprint(); // `cnf.jkt` of the token issued
//! assert_eq!(binding.to_string().len(), 43);
//!
//! // The same proof for another request, or too late, is refused.
//! let other = NormalizedUri::parse("https://server.example.com/users/me")?;
//! let refused = verify_proof(proof.as_bytes(), &ProofCheck::new(&http::Method::POST, &other, 1_700_000_010));
//! assert_eq!(refused, Err(ProofError::UriMismatch));
//! let late = verify_proof(proof.as_bytes(), &ProofCheck::new(&http::Method::POST, &uri, 1_700_000_100));
//! assert_eq!(late, Err(ProofError::Expired));
//!
//! // Once only: the replay store remembers it until the window has passed.
//! let replays = MemoryReplayStore::new();
//! let until = UNIX_EPOCH + Duration::from_secs(verified.iat() + 1) + DEFAULT_MAX_AGE;
//! # let until = SystemTime::now() + DEFAULT_MAX_AGE; // the proof's clock is 2023's
//! let first = replays.remember(&ProofId::from(&verified), until).now_or_never();
//! assert_eq!(first.transpose()?, Some(Sighting::First));
//! let again = replays.remember(&ProofId::from(&verified), until).now_or_never();
//! assert_eq!(again.transpose()?, Some(Sighting::Replay)); // refuse the request
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! What is checked is listed at [`verify_proof`]. What is not, and is left to
//! the caller: that the request has exactly one `DPoP` header (RFC 9449 §4.3
//! check 1), that its `jti` was not seen before within the window (check 11's
//! replay half: a [`ReplayStore`], [`MemoryReplayStore`] for one process or
//! `RedisReplayStore` with feature `redis` for replicas, as above), and that
//! the key is the one a token is bound to (check 12's second half): compare
//! [`VerifiedProof::thumbprint`] with the token's binding.
//!
//! The parser is written for proofs, not taken from a JOSE crate: a proof carries
//! the key that verifies it, so nothing can be fixed in advance (as the `jwt`
//! feature fixes a token's header), and every member that decides something is
//! read strictly: a duplicate member anywhere, a private key member, an unknown
//! `crit`, a key that does not fit `alg`, a non-canonical base64url segment or
//! coordinate are each refused. The cryptography is RustCrypto's `p256` (ECDSA)
//! and `ed25519-dalek`.

pub(crate) mod htu;
mod json;
pub(crate) mod jwk;
pub(crate) mod proof;
pub(crate) mod replay;
pub(crate) mod settings;

pub use self::htu::{InvalidUri, NormalizedUri};
pub use self::jwk::{KeyCache, PublicJwk, DEFAULT_KEY_CACHE_CAPACITY, MAX_CACHED_HEADER_LEN};
pub use self::proof::{
    verify_proof, DpopAlgorithm, ProofCheck, ProofError, VerifiedProof, DEFAULT_FUTURE_LEEWAY,
    DEFAULT_MAX_AGE, MAX_JTI_LEN, MAX_PROOF_LEN,
};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::replay::RedisReplayStore;
pub use self::replay::{
    MemoryReplayStore, ProofId, ReplayStore, Sighting, DEFAULT_REPLAY_CAPACITY,
};
pub use self::settings::{DpopMode, DpopSettings, NONCE_LIFETIME};
pub use crate::token::grant::JwkThumbprint;
