//! The client's public key as a proof carries it (RFC 7517 JWK), and its RFC 7638
//! thumbprint, the name a token is bound to.

use std::fmt;
use std::hash::BuildHasher as _;
use std::sync::{Mutex, PoisonError};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

#[cfg(test)]
use super::json::Document;
use super::json::{Json, Object};
use crate::token::grant::JwkThumbprint;

/// JWK members that only a private (or symmetric) key has: RSA's and EC's `d`,
/// RSA's CRT and multi-prime members, and `oct`'s `k`. A proof carrying one leaks
/// the client's key and is refused (RFC 9449 §4.3, check 7).
const PRIVATE_MEMBERS: [&str; 10] = ["d", "p", "q", "dp", "dq", "qi", "oth", "r", "t", "k"];

/// The length of a P-256 coordinate and of an Ed25519 public key, in bytes.
const KEY_PART_LEN: usize = 32;

/// A proof's public key: the key types and curves of the algorithms accepted.
///
/// Built only from a proof's `jwk` header by [`verify_proof`](super::verify_proof):
/// a P-256 point that is on the curve, or an Ed25519 point that decodes canonically
/// and is not of small order.
#[derive(Clone, PartialEq, Eq)]
pub enum PublicJwk {
    /// `{"kty":"EC","crv":"P-256","x":…,"y":…}`: the affine coordinates, big-endian.
    P256 {
        /// The x coordinate.
        x: [u8; 32],
        /// The y coordinate.
        y: [u8; 32],
    },
    /// `{"kty":"OKP","crv":"Ed25519","x":…}` (RFC 8037): the encoded point.
    Ed25519 {
        /// The public key's 32 bytes.
        x: [u8; 32],
    },
}

/// Why a proof's `jwk` is refused; [`ProofError`](super::ProofError) says which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum JwkError {
    /// A private-key member (`d`, `k`, …) is present.
    PrivateKey,
    /// `kty`/`crv` name a key type or curve this verifier does not accept.
    Unsupported,
    /// A member is missing, of the wrong type, not canonical base64url, of the
    /// wrong length, or the point is not a valid public key.
    Invalid,
}

/// A proof key decoded for its signature check. Decoding validates the point
/// (an Ed25519 point costs a square root and an inversion), so it is done once
/// per proof, when the `jwk` is read, or not at all when a [`KeyCache`] has it.
#[derive(Clone)]
pub(super) enum VerifyingKey {
    /// An ES256 key.
    P256(p256::ecdsa::VerifyingKey),
    /// An EdDSA key.
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl VerifyingKey {
    /// Whether `signature` (JOSE's 64 bytes: ES256's `r || s`, or Ed25519's)
    /// signs `message`: p256's `verify`, ed25519-dalek's `verify_strict` (no
    /// small-order keys or `R`, no non-canonical `S`).
    ///
    /// Out of line: inlined into the proof check, p256's verification compiled
    /// to about 1,400 more instructions per proof (callgrind, same signatures).
    #[inline(never)]
    pub(super) fn verifies(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        match self {
            VerifyingKey::P256(key) => {
                use p256::ecdsa::signature::Verifier as _;
                p256::ecdsa::Signature::from_slice(signature)
                    .is_ok_and(|signature| key.verify(message, &signature).is_ok())
            }
            VerifyingKey::Ed25519(key) => {
                let signature = ed25519_dalek::Signature::from_bytes(signature);
                key.verify_strict(message, &signature).is_ok()
            }
        }
    }
}

impl PublicJwk {
    /// Reads a `jwk` header member, and decodes the key it holds.
    #[cfg(test)]
    pub(super) fn from_json(object: &Object<'_>) -> Result<(Self, VerifyingKey), JwkError> {
        let jwk = PublicJwk::read(object)?;
        let key = jwk.decode()?;
        Ok((jwk, key))
    }

    /// Reads a `jwk` header member: its type, curve and coordinates, canonical
    /// base64url of the full length. Whether the point is a valid key is
    /// [`decode`](Self::decode)'s business.
    pub(super) fn read(object: &Object<'_>) -> Result<Self, JwkError> {
        // One pass over the key's (few) members, not one per private name.
        if object.names().any(|name| PRIVATE_MEMBERS.contains(&name)) {
            return Err(JwkError::PrivateKey);
        }
        let member = |name: &str| match object.get(name) {
            Some(Json::String(value)) => Ok(value),
            _ => Err(JwkError::Invalid),
        };
        match (member("kty")?, member("crv")) {
            ("EC", Ok("P-256")) => Ok(PublicJwk::P256 {
                x: decode_key_part(member("x")?)?,
                y: decode_key_part(member("y")?)?,
            }),
            ("OKP", Ok("Ed25519")) => Ok(PublicJwk::Ed25519 {
                x: decode_key_part(member("x")?)?,
            }),
            (_, Ok(_) | Err(_)) => Err(JwkError::Unsupported),
        }
    }

    /// Decodes the key for its signature check: `Invalid` unless the point is a
    /// valid public key (see [`PublicJwk`]).
    pub(super) fn decode(&self) -> Result<VerifyingKey, JwkError> {
        match self {
            PublicJwk::P256 { .. } => self.p256_key().map(VerifyingKey::P256),
            PublicJwk::Ed25519 { .. } => self.ed25519_key().map(VerifyingKey::Ed25519),
        }
    }

    /// The key as p256 verifies with it; `Invalid` when the point is not on the
    /// curve (or is not a P-256 key).
    fn p256_key(&self) -> Result<p256::ecdsa::VerifyingKey, JwkError> {
        let PublicJwk::P256 { x, y } = self else {
            return Err(JwkError::Invalid);
        };
        let mut sec1 = [0u8; 1 + 2 * KEY_PART_LEN];
        sec1[0] = 0x04; // uncompressed: the identity has no such encoding
        sec1[1..=KEY_PART_LEN].copy_from_slice(x);
        sec1[1 + KEY_PART_LEN..].copy_from_slice(y);
        p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).map_err(|_| JwkError::Invalid)
    }

    /// The key as ed25519-dalek verifies with it; `Invalid` when the bytes are not
    /// a point, not its canonical encoding (two encodings would give one key two
    /// thumbprints), or a small-order ("weak") point.
    fn ed25519_key(&self) -> Result<ed25519_dalek::VerifyingKey, JwkError> {
        let PublicJwk::Ed25519 { x } = self else {
            return Err(JwkError::Invalid);
        };
        if !is_canonical_y(x) {
            return Err(JwkError::Invalid);
        }
        let key = ed25519_dalek::VerifyingKey::from_bytes(x).map_err(|_| JwkError::Invalid)?;
        if key.is_weak() {
            return Err(JwkError::Invalid);
        }
        Ok(key)
    }

    /// The key's RFC 7638 thumbprint: SHA-256 of its required members, in
    /// lexicographic order, without whitespace.
    pub fn thumbprint(&self) -> JwkThumbprint {
        let mut hash = Sha256::new();
        match self {
            PublicJwk::P256 { x, y } => {
                hash.update(br#"{"crv":"P-256","kty":"EC","x":""#);
                hash.update(URL_SAFE_NO_PAD.encode(x));
                hash.update(br#"","y":""#);
                hash.update(URL_SAFE_NO_PAD.encode(y));
            }
            PublicJwk::Ed25519 { x } => {
                hash.update(br#"{"crv":"Ed25519","kty":"OKP","x":""#);
                hash.update(URL_SAFE_NO_PAD.encode(x));
            }
        }
        hash.update(br#""}"#);
        JwkThumbprint::from_bytes(hash.finalize().into())
    }

    /// Not part of the API (hidden, may change in any release): the key decoded
    /// once, and the signature check a proof by it gets, for `benches/guard.rs`
    /// to subtract one verification as this crate compiles it. The bench's own
    /// instance of p256's generic verification was compiled differently and ran
    /// about 4,300 fewer instructions per ES256 signature than this one.
    #[doc(hidden)]
    pub fn __signature_check(&self) -> Option<impl Fn(&[u8], &[u8; 64]) -> bool> {
        let key = self.decode().ok()?;
        Some(move |message: &[u8], signature: &[u8; 64]| key.verifies(message, signature))
    }
}

impl fmt::Debug for PublicJwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            PublicJwk::P256 { .. } => "P256",
            PublicJwk::Ed25519 { .. } => "Ed25519",
        };
        f.debug_tuple(kind).field(&self.thumbprint()).finish()
    }
}

/// How many decoded keys a [`KeyCache`] holds unless told otherwise:
/// [`DpopSettings`](super::DpopSettings) gives the layer one of this size.
pub const DEFAULT_KEY_CACHE_CAPACITY: usize = 1024;

/// A bounded cache of decoded proof keys, for [`ProofCheck::key_cache`](super::ProofCheck::key_cache).
///
/// A client sends the same header, with the same public key, in every proof, and
/// reading it costs work the signature check does not: base64url and JSON, and
/// turning the key's coordinates into a key the signature is checked with (an
/// Ed25519 point's square root and small-order test, a P-256 point's curve
/// equation), as does the key's [thumbprint](PublicJwk::thumbprint). The cache
/// keeps, per header, the algorithm, the decoded key and the thumbprint:
///
/// - only a header whose proof verified is added (so it passed every check of
///   the header, and its key is valid), and only one of at most
///   [`MAX_CACHED_HEADER_LEN`] bytes;
/// - an entry answers only for the same header: every byte compared, not a
///   hash. A proof that copies a cached header (the key is public) is still
///   refused unless it is signed by that key;
/// - it never holds more than its capacity: each header has one slot (chosen
///   by a hash with a seed random per cache), and a new header takes the slot
///   over. A client sending a new key per proof only churns it.
///
/// ```
/// use tower_oauth2_password::dpop::{KeyCache, NormalizedUri, ProofCheck};
///
/// let keys = KeyCache::new(256); // shared by every request, like a replay store
/// let uri = NormalizedUri::parse("https://api.example.com/users/me")?;
/// let check = ProofCheck::new(&http::Method::GET, &uri, 1_700_000_000).key_cache(&keys);
/// # let _ = check;
/// assert_eq!(keys.capacity(), 256);
/// # Ok::<(), tower_oauth2_password::dpop::InvalidUri>(())
/// ```
pub struct KeyCache {
    slots: Box<[Mutex<Option<Box<CachedHeader>>>]>,
    hasher: foldhash::fast::RandomState,
}

/// The longest proof header (base64url, as sent) a [`KeyCache`] keeps: 512
/// bytes. A proof's header is about 150 (EdDSA) to 250 (ES256) characters;
/// a longer one is read in full each time, and the cache's memory stays bounded.
pub const MAX_CACHED_HEADER_LEN: usize = 512;

/// A header whose proof verified: its key, decoded, and the key's thumbprint.
struct CachedHeader {
    header: Box<[u8]>,
    jwk: PublicJwk,
    key: VerifyingKey,
    thumbprint: JwkThumbprint,
}

impl KeyCache {
    /// A cache of at most `capacity` keys (at least one; rounded up to a power of
    /// two). Its slots take 16 bytes each up front, a key about 500 more once
    /// cached (its header included).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1).next_power_of_two();
        KeyCache {
            slots: (0..capacity).map(|_| Mutex::new(None)).collect(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    /// How many keys it holds at most.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// How many keys it holds now (it looks at every slot: for tests and
    /// occasional metrics, not per request).
    pub fn len(&self) -> usize {
        self.slots
            .iter()
            .filter(|slot| {
                slot.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .is_some()
            })
            .count()
    }

    /// Whether it holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn slot(&self, header: &[u8]) -> &Mutex<Option<Box<CachedHeader>>> {
        let hash = self.hasher.hash_one(header);
        // The capacity is a power of two: the mask keeps the index in bounds.
        #[allow(clippy::cast_possible_truncation)]
        let index = hash as usize & (self.slots.len() - 1);
        &self.slots[index]
    }

    /// The key of proofs with this `header` (base64url, as sent), decoded, and
    /// its thumbprint, if the header is cached.
    pub(super) fn get(&self, header: &[u8]) -> Option<(PublicJwk, VerifyingKey, JwkThumbprint)> {
        let slot = self
            .slot(header)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match slot.as_deref() {
            Some(cached) if *cached.header == *header => {
                Some((cached.jwk.clone(), cached.key.clone(), cached.thumbprint))
            }
            _ => None,
        }
    }

    /// Caches `header` (base64url, as sent), whose `jwk` decoded as `key` has
    /// `thumbprint`: only once a proof with it verified (so every check of the
    /// header passed).
    pub(super) fn insert(
        &self,
        header: &[u8],
        jwk: &PublicJwk,
        key: &VerifyingKey,
        thumbprint: JwkThumbprint,
    ) {
        if header.len() > MAX_CACHED_HEADER_LEN {
            return;
        }
        let entry = Box::new(CachedHeader {
            header: header.into(),
            jwk: jwk.clone(),
            key: key.clone(),
            thumbprint,
        });
        *self
            .slot(header)
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(entry);
    }
}

impl Default for KeyCache {
    /// A cache of [`DEFAULT_KEY_CACHE_CAPACITY`] keys.
    fn default() -> Self {
        KeyCache::new(DEFAULT_KEY_CACHE_CAPACITY)
    }
}

impl fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyCache")
            .field("capacity", &self.capacity())
            .finish_non_exhaustive()
    }
}

/// Whether an encoded Ed25519 point's y (the low 255 bits, little-endian) is
/// below p = 2^255 - 19: decoding reduces y mod p, so y + p would name the same
/// key under a second thumbprint. (The sign bit of x can only be non-canonical
/// for x = 0, at y = ±1: small-order points, refused as weak.) Checked on the
/// bytes, instead of re-encoding the decoded point (a field inversion).
fn is_canonical_y(x: &[u8; 32]) -> bool {
    let top = x[31] & 0x7f;
    let middle_all_ones = x[1..31].iter().all(|&byte| byte == 0xff);
    !(top == 0x7f && middle_all_ones && x[0] >= 0xed)
}

/// Decodes a 32-byte key member: canonical base64url (no padding, no stray bits),
/// the full length RFC 7518 §6.2.1.2 and RFC 8037 §2 ask for.
fn decode_key_part(text: &str) -> Result<[u8; KEY_PART_LEN], JwkError> {
    let mut bytes = [0u8; KEY_PART_LEN];
    // Exactly 43 characters: a shorter value would decode into the start of the
    // buffer, a longer one does not fit.
    if text.len() != 43 {
        return Err(JwkError::Invalid);
    }
    match crate::base64url::decode(text.as_bytes(), &mut bytes) {
        Ok(KEY_PART_LEN) => Ok(bytes),
        _ => Err(JwkError::Invalid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwk(text: &str) -> Result<PublicJwk, JwkError> {
        PublicJwk::from_json(&Document::from_bytes(text.as_bytes()).unwrap().object())
            .map(|(jwk, _)| jwk)
    }

    /// RFC 8037 Appendix A.1/A.3: the Ed25519 example key and its thumbprint.
    #[test]
    fn rfc8037_ed25519_thumbprint() {
        let key = jwk(
            r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#,
        )
        .unwrap();
        assert_eq!(
            key.thumbprint().to_string(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    /// RFC 9449 §4.2's example proof key (ES256), and RFC 7638's method: the
    /// thumbprint ignores members other than the required ones and their order.
    #[test]
    fn rfc9449_example_key_thumbprint() {
        let a = jwk(r#"{"kty":"EC","x":"l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs","y":"9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA","crv":"P-256"}"#)
            .unwrap();
        let b = jwk(r#"{"y":"9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA","crv":"P-256","kid":"x","use":"sig","x":"l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs","kty":"EC"}"#)
            .unwrap();
        assert_eq!(a.thumbprint(), b.thumbprint());
        // Independently: SHA-256 of the canonical JSON RFC 7638 §3 spells out.
        let canonical = r#"{"crv":"P-256","kty":"EC","x":"l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs","y":"9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA"}"#;
        assert_eq!(
            a.thumbprint().to_string(),
            URL_SAFE_NO_PAD.encode(Sha256::digest(canonical))
        );
        assert!(JwkThumbprint::from_encoded(&a.thumbprint().to_string()).is_some());
    }

    #[test]
    fn refuses_private_members() {
        for member in PRIVATE_MEMBERS {
            let text = format!(
                r#"{{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","{member}":"AA"}}"#
            );
            assert_eq!(jwk(&text), Err(JwkError::PrivateKey), "{member}");
        }
    }

    #[test]
    fn refuses_other_key_types_and_curves() {
        for text in [
            r#"{"kty":"RSA","n":"AQAB","e":"AQAB"}"#,
            r#"{"kty":"EC","crv":"P-384","x":"AA","y":"AA"}"#,
            r#"{"kty":"EC","crv":"secp256k1","x":"AA","y":"AA"}"#,
            r#"{"kty":"OKP","crv":"Ed448","x":"AA"}"#,
            r#"{"kty":"OKP","crv":"X25519","x":"AA"}"#,
            r#"{"kty":"OKP","x":"AA"}"#,
            r#"{"kty":"oct"}"#,
        ] {
            assert_eq!(jwk(text), Err(JwkError::Unsupported), "{text}");
        }
    }

    #[test]
    fn refuses_points_off_the_curve_and_bad_encodings() {
        let x = "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs";
        let y = "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA";
        let off_curve = "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDE";
        let p256 = |x: &str, y: &str| {
            jwk(&format!(
                r#"{{"kty":"EC","crv":"P-256","x":"{x}","y":"{y}"}}"#
            ))
        };
        assert!(p256(x, y).is_ok());
        for (x, y) in [
            (x, off_curve),
            (x, "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDB"), // stray low bits
            (x, "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA="), // padding
            (x, "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRD"),  // short
            (x, "9VE4jf+Ok/o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA"), // not url-safe
            (x, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), // (x, 0) is not a point
            (
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            ),
            // x = p: a coordinate past the field's modulus
            ("_____wAAAAEAAAAAAAAAAAAAAAD_______________8", y),
        ] {
            assert_eq!(p256(x, y), Err(JwkError::Invalid), "{x} {y}");
        }
        assert_eq!(
            jwk(r#"{"kty":"EC","crv":"P-256","x":1,"y":2}"#),
            Err(JwkError::Invalid)
        );
        assert_eq!(jwk(r#"{"crv":"P-256"}"#), Err(JwkError::Invalid));

        let ed = |x: &str| jwk(&format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{x}"}}"#));
        // The identity (small order); y = 3 is a point, y = p + 3 encodes it too but
        // not canonically (one key, two thumbprints).
        assert_eq!(
            ed("AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            Err(JwkError::Invalid)
        );
        assert!(ed("AwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").is_ok());
        for y_at_or_past_p in [
            "8P_______________________________________38",
            "7f_______________________________________38",
            "_________________________________________38",
        ] {
            assert_eq!(ed(y_at_or_past_p), Err(JwkError::Invalid));
        }
        // The byte check's edges: p - 1 is the largest canonical y, p the first not.
        let mut y = [0xff; 32];
        y[31] = 0x7f;
        y[0] = 0xec;
        assert!(is_canonical_y(&y));
        y[0] = 0xed;
        assert!(!is_canonical_y(&y));
        y[31] = 0xff; // the sign bit is not part of y
        assert!(!is_canonical_y(&y));
        y[5] = 0xfe;
        assert!(is_canonical_y(&y));
        assert!(is_canonical_y(&[0; 32]));
    }

    #[test]
    fn thumbprint_from_encoded_is_strict() {
        assert!(
            JwkThumbprint::from_encoded("kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k").is_some()
        );
        for text in [
            "",
            "kPrK",
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4l",
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k=",
        ] {
            assert!(JwkThumbprint::from_encoded(text).is_none(), "{text}");
        }
    }
}
