//! What token stores keep and hand out: [`Grant`], [`IssuedToken`], the token
//! types, [`FamilyId`], [`JwkThumbprint`], [`TokenTypeHint`] and [`Revocation`].

use crate::scope::Scopes;
use crate::store::StoreError;
use crate::user::subject::Subject;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use std::fmt;
use std::time::{Duration, SystemTime};

/// The longest token lifetime the builder accepts: one year. Access tokens should
/// live minutes (RFC 9700 §2.2); this bound keeps expiry arithmetic far from
/// overflowing.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// The id of a refresh-token *family*: the tokens (refresh and access) issued
/// from one login, ended together. The layer picks it at login (128 random bits)
/// and puts it in every [`Grant`] of the family; refresh-token stores key the
/// family by it, access-token stores index their tokens by it so that
/// [`TokenStore::revoke_family`](crate::token::TokenStore::revoke_family) finds them.
///
/// It names a login, it is no credential; still, `Debug` shows only its first
/// characters, enough to tell families apart in a log.
///
/// ```
/// use tower_oauth2_password::token::FamilyId;
///
/// let family = FamilyId::from_bytes([7; 16]);
/// assert_eq!(family.to_bytes(), [7; 16]);
/// assert_eq!(format!("{family:?}"), "FamilyId(BwcH…)");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FamilyId([u8; FAMILY_ID_BYTES]);

const FAMILY_ID_BYTES: usize = 16;
/// Base64url of 16 bytes, no padding.
#[cfg(any(feature = "redis", feature = "jwt"))]
pub(crate) const FAMILY_ID_CHARS: usize = 22;

impl FamilyId {
    /// A new family's id: 128 random bits from the operating system.
    ///
    /// # Errors
    ///
    /// If the operating system has no randomness to give.
    pub fn random() -> Result<Self, StoreError> {
        random().map(Self)
    }

    /// The family with these bytes (as a store read them back).
    pub fn from_bytes(bytes: [u8; FAMILY_ID_BYTES]) -> Self {
        Self(bytes)
    }

    /// Its bytes, to store.
    pub fn to_bytes(self) -> [u8; FAMILY_ID_BYTES] {
        self.0
    }

    /// Base64url, 22 characters: the form JWT claims and Redis keys hold.
    pub(crate) fn to_text(self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.0)
    }

    /// The id written by [`to_text`](Self::to_text), if `text` is one.
    #[cfg(any(feature = "redis", feature = "jwt"))]
    pub(crate) fn from_text(text: &[u8]) -> Option<Self> {
        if text.len() != FAMILY_ID_CHARS {
            return None;
        }
        let mut bytes = [0u8; FAMILY_ID_BYTES];
        let len = crate::base64url::decode(text, &mut bytes).ok()?;
        (len == FAMILY_ID_BYTES).then_some(Self(bytes))
    }
}

impl fmt::Debug for FamilyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.to_text();
        write!(f, "FamilyId({}…)", &text[..4])
    }
}

/// A client key's RFC 7638 SHA-256 thumbprint: what a sender-constrained (DPoP,
/// RFC 9449) token is bound to, written base64url as its `cnf.jkt` claim. The
/// `dpop` feature computes it from a proof's key; stores keep the 32 bytes.
///
/// ```
/// use tower_oauth2_password::token::JwkThumbprint;
///
/// let key = JwkThumbprint::from_encoded("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs").unwrap();
/// assert_eq!(key.to_string(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
/// assert_eq!(JwkThumbprint::from_bytes(*key.as_bytes()), key);
/// assert!(JwkThumbprint::from_encoded("NzbLsXh8uDCcd").is_none());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JwkThumbprint([u8; 32]);

impl JwkThumbprint {
    /// The thumbprint of these 32 SHA-256 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The SHA-256 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Reads a thumbprint written earlier (a token's `cnf.jkt`): `None` unless it is
    /// 43 characters of canonical base64url, a SHA-256 hash.
    pub fn from_encoded(text: &str) -> Option<Self> {
        let mut bytes = [0u8; 32];
        match (
            text.len(),
            crate::base64url::decode(text.as_bytes(), &mut bytes),
        ) {
            (43, Ok(32)) => Some(Self(bytes)),
            _ => None,
        }
    }
}

impl fmt::Display for JwkThumbprint {
    /// Base64url without padding, as `cnf.jkt` carries it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_base64url(f, &self.0)
    }
}

/// Writes a 32-byte hash as base64url without padding (43 characters), without
/// allocating.
pub(crate) fn write_base64url(f: &mut fmt::Formatter<'_>, bytes: &[u8; 32]) -> fmt::Result {
    let mut text = [0u8; 43];
    let written = URL_SAFE_NO_PAD
        .encode_slice(bytes, &mut text)
        .map_err(|_| fmt::Error)?;
    f.write_str(std::str::from_utf8(&text[..written]).map_err(|_| fmt::Error)?)
}

impl fmt::Debug for JwkThumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JwkThumbprint({self})")
    }
}

/// For `#[serde(default, deserialize_with = "present")]` on an `Option` field: an
/// absent field is `None`, a present one must hold a `T` (`null` is refused, not
/// taken for absent). Token records and claims use it where absent means
/// something (an unbound token) that a malformed value must not.
#[cfg(any(feature = "redis", feature = "jwt"))]
pub(crate) fn present<'de, T, D>(deserializer: D) -> Result<Option<T>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// How many access tokens one family holds at most in the stores that keep
/// state, unless they are told otherwise: a client refreshes about once per
/// access-token lifetime, so it holds one or two; beyond this the oldest go.
pub(crate) const DEFAULT_MAX_TOKENS_PER_FAMILY: usize = 10;

/// What a token stands for: who, which scopes, until when, and the user's security
/// stamp at the time.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Grant {
    /// The user's canonical name, from the user store (never as typed at login).
    pub subject: Subject,
    /// The scopes granted.
    pub scopes: Scopes,
    /// When the token stops being valid.
    pub expires_at: SystemTime,
    /// The user's [`Principal::stamp`](crate::user::Principal::stamp) when the token was
    /// issued: once the user's stamp changes (password changed, a scope taken
    /// away, the user removed and created again) the guard refuses the token.
    pub stamp: u64,
    /// The refresh-token family the token was issued from, if refresh tokens are
    /// on: revoking the family ends the token ([`TokenStore::revoke_family`](crate::token::TokenStore::revoke_family)).
    pub family: Option<FamilyId>,
    /// The client key the token is bound to (DPoP, RFC 9449): the guard accepts
    /// the token only with a proof signed by this key. `None` for a bearer token.
    pub key_binding: Option<JwkThumbprint>,
}

impl Grant {
    /// A grant for `subject` with `scopes` until `expires_at`, with stamp 0.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use tower_oauth2_password::scope::Scopes;
    /// use tower_oauth2_password::token::Grant;
    ///
    /// let grant = Grant::new("johndoe", Scopes::empty(), SystemTime::now() + Duration::from_secs(60))
    ///     .with_stamp(7);
    /// assert_eq!(grant.subject, "johndoe");
    /// ```
    pub fn new(subject: impl Into<Subject>, scopes: Scopes, expires_at: SystemTime) -> Self {
        Self {
            subject: subject.into(),
            scopes,
            expires_at,
            stamp: 0,
            family: None,
            key_binding: None,
        }
    }

    /// Sets the user's security stamp.
    pub fn with_stamp(mut self, stamp: u64) -> Self {
        self.stamp = stamp;
        self
    }

    /// Sets the refresh-token family the token belongs to.
    pub fn with_family(mut self, family: FamilyId) -> Self {
        self.family = Some(family);
        self
    }

    /// Binds the token to the client key with this thumbprint (DPoP).
    pub fn with_key_binding(mut self, key: JwkThumbprint) -> Self {
        self.key_binding = Some(key);
        self
    }

    /// Whether the grant is still valid at `now`.
    pub fn is_live(&self, now: SystemTime) -> bool {
        now < self.expires_at
    }
}

/// What [`TokenStore::issue`](crate::token::TokenStore::issue) hands back for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IssuedToken {
    /// The access token.
    pub access_token: AccessToken,
    /// When it expires, as the store decided (the token response's `expires_in`
    /// is computed from it).
    pub expires_at: SystemTime,
    /// A refresh token, for stores that issue them.
    pub refresh_token: Option<RefreshToken>,
}

impl IssuedToken {
    /// An access token valid until `expires_at`, without a refresh token.
    pub fn new(access_token: AccessToken, expires_at: SystemTime) -> Self {
        Self {
            access_token,
            expires_at,
            refresh_token: None,
        }
    }

    /// Adds a refresh token.
    pub fn with_refresh_token(mut self, refresh_token: RefreshToken) -> Self {
        self.refresh_token = Some(refresh_token);
        self
    }
}

/// A secret token string as handed to the client; its `Debug` does not show it.
macro_rules! secret_token {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        /// Its memory is wiped when it is dropped.
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(zeroize::Zeroizing<String>);

        impl $name {
            /// Wraps a token string made by a [`TokenStore`](crate::token::TokenStore).
            pub fn new(token: String) -> Self {
                Self(zeroize::Zeroizing::new(token))
            }

            /// The token, to send to the client (and nowhere else: not to logs).
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }
    };
}

secret_token! {
    /// An access token as handed to the client. `Debug` does not show it.
    AccessToken
}

secret_token! {
    /// A refresh token as handed to the client. `Debug` does not show it.
    RefreshToken
}

/// A token as the client sent it, handed to [`TokenStore::resolve`](crate::token::TokenStore::resolve) and
/// [`TokenStore::revoke`](crate::token::TokenStore::revoke): any bytes, up to 4 KiB (longer ones are refused before
/// any store sees them). `Debug` does not show it.
///
/// ```
/// use tower_oauth2_password::token::BearerToken;
///
/// assert_eq!(BearerToken::new(b"abc-DEF_123").to_str(), Some("abc-DEF_123"));
/// assert_eq!(BearerToken::new(b"\xff\xfe").to_str(), None);
/// assert_eq!(BearerToken::new(b"a b").to_str(), None);
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct BearerToken<'a>(&'a [u8]);

impl<'a> BearerToken<'a> {
    /// Wraps the bytes of a token.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self(bytes)
    }

    /// The token's bytes, unchecked: a store that compares them against what it
    /// issued needs nothing else.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// The token as text, if it is RFC 6750 `b64token` syntax (printable ASCII:
    /// letters, digits, `-._~+/`, then `=` padding); `None` otherwise, and such a
    /// token is no token any store issued.
    pub fn to_str(&self) -> Option<&'a str> {
        // b64token is ASCII, so `from_utf8` never fails on it.
        is_b64token(self.0)
            .then(|| std::str::from_utf8(self.0).ok())
            .flatten()
    }
}

impl<'a> From<&'a str> for BearerToken<'a> {
    fn from(token: &'a str) -> Self {
        Self(token.as_bytes())
    }
}

impl fmt::Debug for BearerToken<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BearerToken(<redacted, {} bytes>)", self.0.len())
    }
}

/// What kind of token a client says it is revoking (RFC 7009 `token_type_hint`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenTypeHint {
    /// `access_token`.
    AccessToken,
    /// `refresh_token`.
    RefreshToken,
}

/// The outcome of [`TokenStore::revoke`](crate::token::TokenStore::revoke).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Revocation {
    /// The token no longer resolves (or never did: RFC 7009 answers the same).
    Revoked,
    /// This store cannot revoke this kind of token: the client must not be told
    /// that it is logged out (RFC 7009 `unsupported_token_type`).
    Unsupported,
}

/// `N` random bytes, from the operating system.
pub(crate) fn random<const N: usize>() -> Result<[u8; N], StoreError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| StoreError::new(e.to_string()))?;
    Ok(bytes)
}

/// Longest bearer token accepted, in bytes. Far above any token this crate or a
/// sane JWT issues; longer ones are refused before any store sees them.
pub(crate) const MAX_TOKEN_LEN: usize = 4096;

/// `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`
pub(crate) fn is_b64token(token: &[u8]) -> bool {
    let body_len = token.len() - token.iter().rev().take_while(|&&b| b == b'=').count();
    // A branch-free fold: the compiler unrolls it, where `all` stops at each byte.
    body_len > 0
        && token[..body_len]
            .iter()
            .fold(true, |valid, &b| valid & B64TOKEN_CHAR[usize::from(b)])
}

/// The characters of a `b64token` body, as a table: this runs on every request.
const B64TOKEN_CHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        table[i] =
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
        i += 1;
    }
    table
};
