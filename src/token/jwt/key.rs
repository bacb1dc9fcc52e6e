//! [`JwtKey`]: one key a [`JwtTokenStore`](super::JwtTokenStore) signs or verifies
//! with, named by its `kid`, and the header it issues under; [`JwtConfigError`] when
//! a key or a store cannot be built.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;

use crate::constant_time;
use crate::token::jwt::claims::MAX_LEEWAY;

/// The shortest HS256 secret accepted: 32 bytes, the output size of SHA-256
/// (RFC 7518 §3.2: "a key of the same size as the hash output or larger MUST be
/// used").
pub const MIN_HS256_SECRET_LEN: usize = 32;

/// The longest `kid` accepted.
const MAX_KID_LEN: usize = 64;

/// A signing or verification key for JWT access tokens, with its key id (`kid`).
///
/// - [`hs256`](Self::hs256): a shared secret (HMAC-SHA256), at least
///   [`MIN_HS256_SECRET_LEN`] bytes. Every replica holds it and can both issue and
///   verify.
/// - [`ed25519`](Self::ed25519): an Ed25519 secret key (EdDSA): issues and verifies.
/// - [`ed25519_public`](Self::ed25519_public): an Ed25519 public key: verifies only,
///   e.g. the key of a rotation gone by.
///
/// The `kid` is 1 to 64 characters of `A-Z a-z 0-9 - . _ ~` (a date such as
/// `2026-12` makes rotation easy to follow). Tokens name their key by it, so each
/// key a store knows must have its own.
///
/// `Debug` shows the `kid` and the algorithm, never key material:
///
/// ```
/// use tower_oauth2_password::token::jwt::JwtKey;
///
/// let key = JwtKey::hs256("2026-12", &[7u8; 32])?;
/// assert_eq!(format!("{key:?}"), r#"JwtKey { kid: "2026-12", alg: "HS256" }"#);
/// assert!(JwtKey::hs256("2026-12", b"too short").is_err());
/// # Ok::<(), tower_oauth2_password::token::jwt::JwtConfigError>(())
/// ```
#[derive(Clone)]
pub struct JwtKey {
    kid: Box<str>,
    material: Material,
}

#[derive(Clone)]
enum Material {
    /// Keyed once: each use clones the state with the padded key already hashed.
    Hs256(Hmac<Sha256>),
    Ed25519Signing(Box<SigningKey>),
    Ed25519Verifying(Box<VerifyingKey>),
}

impl JwtKey {
    /// An HS256 (HMAC-SHA256) key: `secret` must be at least
    /// [`MIN_HS256_SECRET_LEN`] bytes, and random (a password is not a key: anyone
    /// holding one token can test guesses against it offline).
    ///
    /// # Errors
    ///
    /// [`JwtConfigError::SecretTooShort`] and [`JwtConfigError::InvalidKid`]; the
    /// error never contains the secret.
    pub fn hs256(kid: &str, secret: &[u8]) -> Result<Self, JwtConfigError> {
        let kid = valid_kid(kid)?;
        if secret.len() < MIN_HS256_SECRET_LEN {
            return Err(JwtConfigError::SecretTooShort { len: secret.len() });
        }
        // Any key length is valid for HMAC: this cannot fail.
        let mac = Hmac::<Sha256>::new_from_slice(secret)
            .map_err(|_| JwtConfigError::SecretTooShort { len: secret.len() })?;
        Ok(Self {
            kid,
            material: Material::Hs256(mac),
        })
    }

    /// An Ed25519 (EdDSA) key from its 32-byte secret key (the RFC 8032 seed): signs
    /// and verifies.
    ///
    /// # Errors
    ///
    /// [`JwtConfigError::InvalidKid`].
    pub fn ed25519(kid: &str, secret_key: &[u8; 32]) -> Result<Self, JwtConfigError> {
        Ok(Self {
            kid: valid_kid(kid)?,
            material: Material::Ed25519Signing(Box::new(SigningKey::from_bytes(secret_key))),
        })
    }

    /// An Ed25519 public key (32 bytes, RFC 8032 encoding): verifies only.
    ///
    /// # Errors
    ///
    /// [`JwtConfigError::InvalidKid`], and [`JwtConfigError::InvalidPublicKey`] if the
    /// bytes are not a point on the curve or a weak (small-order) one.
    pub fn ed25519_public(kid: &str, public_key: &[u8; 32]) -> Result<Self, JwtConfigError> {
        let kid = valid_kid(kid)?;
        let invalid = || JwtConfigError::InvalidPublicKey {
            kid: kid.to_string(),
        };
        let key = VerifyingKey::from_bytes(public_key).map_err(|_| invalid())?;
        if key.is_weak() {
            return Err(invalid());
        }
        Ok(Self {
            kid,
            material: Material::Ed25519Verifying(Box::new(key)),
        })
    }

    /// The key id, as tokens name it in their header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The JWS algorithm: `HS256` or `EdDSA`.
    pub fn algorithm(&self) -> &'static str {
        match self.material {
            Material::Hs256(_) => "HS256",
            Material::Ed25519Signing(_) | Material::Ed25519Verifying(_) => "EdDSA",
        }
    }

    /// The Ed25519 public key, to give replicas that only verify
    /// ([`ed25519_public`](Self::ed25519_public)); `None` for HS256.
    pub fn public_key(&self) -> Option<[u8; 32]> {
        match &self.material {
            Material::Hs256(_) => None,
            Material::Ed25519Signing(key) => Some(key.verifying_key().to_bytes()),
            Material::Ed25519Verifying(key) => Some(key.to_bytes()),
        }
    }

    /// Whether this key can issue tokens (an Ed25519 public key cannot).
    pub(crate) fn can_sign(&self) -> bool {
        !matches!(self.material, Material::Ed25519Verifying(_))
    }

    /// The header segment of tokens issued with this key, base64url: the only header
    /// a token naming this key may have, byte for byte.
    pub(crate) fn header_segment(&self) -> String {
        #[derive(serde::Serialize)]
        struct Header<'a> {
            typ: &'a str,
            alg: &'a str,
            kid: &'a str,
        }
        let header = Header {
            // RFC 8725 §3.11 explicit typing, as RFC 9068 names access tokens.
            typ: "at+jwt",
            alg: self.algorithm(),
            kid: &self.kid,
        };
        // Three strings into a `Vec`: serialising cannot fail.
        let json = serde_json::to_vec(&header).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }

    /// The length of a signature segment, in base64url characters.
    pub(crate) fn signature_chars(&self) -> usize {
        match self.material {
            Material::Hs256(_) => 43,
            Material::Ed25519Signing(_) | Material::Ed25519Verifying(_) => 86,
        }
    }

    /// Signs `input` (`header.payload`); `None` for a key that cannot sign.
    pub(crate) fn sign(&self, input: &[u8]) -> Option<Vec<u8>> {
        match &self.material {
            Material::Hs256(mac) => {
                let mut mac = mac.clone();
                mac.update(input);
                Some(mac.finalize().into_bytes().to_vec())
            }
            Material::Ed25519Signing(key) => Some(key.sign(input).to_bytes().to_vec()),
            Material::Ed25519Verifying(_) => None,
        }
    }

    /// Whether `signature` (the token's base64url segment) is this key's signature
    /// of `input`. HS256: our MAC, encoded, compared in constant time with the
    /// segment (no decoding; a non-canonical encoding of the right MAC is not the
    /// one we issue, and is refused). Ed25519: decoded and verified strictly (RFC
    /// 8032 §5.1.7, no weak points).
    pub(crate) fn verify(&self, input: &[u8], signature: &[u8]) -> bool {
        match &self.material {
            Material::Hs256(mac) => {
                let mut mac = mac.clone();
                mac.update(input);
                let mut expected = [0u8; 43];
                let encoded =
                    URL_SAFE_NO_PAD.encode_slice(mac.finalize().into_bytes(), &mut expected);
                encoded.is_ok() && constant_time::eq(&expected, signature)
            }
            Material::Ed25519Signing(key) => verify_ed25519(&key.verifying_key(), input, signature),
            Material::Ed25519Verifying(key) => verify_ed25519(key, input, signature),
        }
    }
}

fn verify_ed25519(key: &VerifyingKey, input: &[u8], signature: &[u8]) -> bool {
    let mut decoded = [0u8; 66];
    let Ok(len) = crate::base64url::decode(signature, &mut decoded) else {
        return false;
    };
    Signature::from_slice(&decoded[..len])
        .is_ok_and(|signature| key.verify_strict(input, &signature).is_ok())
}

/// `kid` if it is 1 to 64 characters of RFC 3986's unreserved set: text that needs
/// no escaping in JSON or in a header, so the issued header is the same bytes on
/// every replica.
fn valid_kid(kid: &str) -> Result<Box<str>, JwtConfigError> {
    let valid = (1..=MAX_KID_LEN).contains(&kid.len())
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    if valid {
        Ok(kid.into())
    } else {
        Err(JwtConfigError::InvalidKid)
    }
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKey")
            .field("kid", &self.kid)
            .field("alg", &self.algorithm())
            .finish()
    }
}

/// A key or a [`JwtTokenStore`](super::JwtTokenStore) could not be built. The message never contains key
/// material.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwtConfigError {
    /// An HS256 secret shorter than [`MIN_HS256_SECRET_LEN`] bytes.
    SecretTooShort {
        /// Its length in bytes.
        len: usize,
    },
    /// A `kid` that is not 1 to 64 characters of `A-Z a-z 0-9 - . _ ~`.
    InvalidKid,
    /// An Ed25519 public key that is not a valid, strong point.
    InvalidPublicKey {
        /// The key's `kid`.
        kid: String,
    },
    /// Two keys with the same `kid`.
    DuplicateKid {
        /// The `kid`.
        kid: String,
    },
    /// The signing key cannot sign (an Ed25519 public key).
    CannotSign {
        /// The key's `kid`.
        kid: String,
    },
    /// A leeway longer than [`MAX_LEEWAY`].
    LeewayTooLong,
    /// No [issuer](super::JwtTokenStoreBuilder::issuer) (or an empty issuer or audience).
    NoIssuer,
}

impl fmt::Display for JwtConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SecretTooShort { len } => write!(
                f,
                "the HS256 secret is {len} bytes long; at least {MIN_HS256_SECRET_LEN} random bytes are needed"
            ),
            Self::InvalidKid => f.write_str("a kid must be 1 to 64 characters of A-Z a-z 0-9 - . _ ~"),
            Self::InvalidPublicKey { kid } => {
                write!(f, "the Ed25519 public key {kid:?} is not a valid, strong curve point")
            }
            Self::DuplicateKid { kid } => write!(f, "two keys have the kid {kid:?}"),
            Self::NoIssuer => f.write_str(
                "a JWT store needs an issuer (the URL the service is known by), and a non-empty audience if one is set",
            ),
            Self::CannotSign { kid } => {
                write!(f, "the key {kid:?} is a public key and cannot sign tokens")
            }
            Self::LeewayTooLong => write!(f, "the leeway is longer than {MAX_LEEWAY:?}"),
        }
    }
}

impl std::error::Error for JwtConfigError {}
