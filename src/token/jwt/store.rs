//! [`JwtTokenStore`]: issues and verifies JWTs (RFC 7519) with a rotation set of
//! [`JwtKey`]s, and asks a [`JtiDenylist`] about revoked ones.

use std::fmt;
use std::future::{ready, Future};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::base64url;
use crate::clock;
use crate::scope::is_scope_token;
use crate::store::Lookup;
use crate::store::StoreError;
use crate::token::grant::{
    AccessToken, BearerToken, FamilyId, Grant, IssuedToken, Revocation, TokenTypeHint,
    MAX_TOKEN_LEN,
};
use crate::token::jwt::claims::{
    unix_seconds, Claims, Confirmation, IssuedClaims, DEFAULT_LEEWAY, MAX_LEEWAY,
};
use crate::token::jwt::denylist::{JtiDenylist, MemoryJtiDenylist};
use crate::token::jwt::key::{JwtConfigError, JwtKey};
use crate::token::store::TokenStore;

/// The longest decoded payload read into a buffer on the stack: our claims with a
/// long subject and a dozen scopes. Longer ones are decoded onto the heap.
const STACK_PAYLOAD_LEN: usize = 480;

/// Random bytes in a `jti`: 128 bits, 22 base64url characters.
const JTI_BYTES: usize = 16;

/// JWT access tokens (feature `jwt`): any replica holding the keys verifies a token
/// without asking anyone, and revocation goes through a [`JtiDenylist`].
///
/// A token is a JWS in compact form, with the header
/// `{"typ":"at+jwt","alg":…,"kid":…}` and the claims `iss` (the
/// [issuer](JwtTokenStoreBuilder::issuer)), `sub` (the grant's subject), `aud` (the
/// [audience](JwtTokenStoreBuilder::audience)), `exp`, `iat`, `nbf`, `jti` (128
/// random bits), `scope` (space-separated, when scopes were granted), `stamp` (the
/// user's security stamp, so that a password change still ends the user's
/// sessions), for a token issued from a refresh token's login, `fam` (the
/// [`FamilyId`], so that ending the family ends the token) and, for a token bound
/// to a client key (DPoP, [`Grant::key_binding`]), `cnf` as RFC 9449 §6.1 writes
/// it: `{"jkt":"<the key's RFC 7638 thumbprint, 43 base64url characters>"}`. The
/// payload is signed, not encrypted: the client can read it.
///
/// Checking a token, in this order; any failure makes it unknown (`None`: the
/// layer answers 401 `invalid_token`):
///
/// 1. at most 4 KiB, three base64url segments;
/// 2. the header is, **byte for byte**, the one this store issues for one of its
///    keys: this refuses `alg: none`, an algorithm the key is not for (HS256 signed
///    with an Ed25519 public key's bytes), an unknown or removed `kid`, and any
///    header field of the attacker's choosing, in one comparison;
/// 3. the signature: HS256's MAC compared in constant time, Ed25519 verified
///    strictly;
/// 4. the claims, with strict types (a string `exp`, a missing one, a `sub` that is
///    not a string: refused; unknown claims are ignored); a `cnf` must be
///    exactly `{"jkt":…}` with a thumbprint in canonical base64url (`null`,
///    another member or a malformed `jkt` makes the token invalid, never
///    unbound);
/// 5. `iss` and `aud` are exactly this store's issuer and audience (RFC 8725
///    §3.8–3.9: two deployments that share a key still refuse each other's tokens);
/// 6. `exp`, `nbf` and `iat` against the clock, with [`leeway`](JwtTokenStoreBuilder::leeway);
/// 7. the `jti` not denied, or, for a token with `fam`, the family not denied
///    (one denylist question either way).
///
/// A resolved grant is valid until the token's `exp` plus the leeway (the moment
/// this store stops accepting it).
///
/// Key rotation: sign with the new key and keep accepting the old one until the
/// tokens it signed have expired, then build the store without it: its tokens are
/// refused from then on.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tower_oauth2_password::scope::Scopes;
/// use tower_oauth2_password::token::{Grant, TokenStore};
/// use tower_oauth2_password::token::jwt::{JwtKey, JwtTokenStore};
///
/// # futures_util::FutureExt::now_or_never(async {
/// # let (new_secret, old_secret) = ([1u8; 32], [2u8; 32]);
/// let store = JwtTokenStore::signing_with(JwtKey::hs256("2026-12", &new_secret)?)
///     .also_accepting(JwtKey::hs256("2026-11", &old_secret)?)
///     .issuer("https://auth.example.com")
///     .build()?;
///
/// let grant = Grant::new("johndoe", Scopes::empty(), SystemTime::now() + Duration::from_secs(60));
/// let issued = store.issue(grant).await?;
/// let token = issued.access_token.as_str();
/// assert_eq!(store.resolve(token.into()).await?.expect("valid").subject, "johndoe");
///
/// store.revoke(token.into(), None).await?;
/// assert_eq!(store.resolve(token.into()).await?, None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap().unwrap();
/// ```
///
/// Clones share the keys and the denylist.
pub struct JwtTokenStore<D = MemoryJtiDenylist> {
    inner: Arc<Inner<D>>,
}

struct Inner<D> {
    /// The signing key, first, then the keys only accepted.
    keys: Box<[Known]>,
    leeway: u64,
    issuer: Box<str>,
    audience: Box<str>,
    denylist: D,
}

/// A key and the header segment of its tokens.
struct Known {
    key: JwtKey,
    header: Box<str>,
}

impl<D> Clone for JwtTokenStore<D> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl JwtTokenStore {
    /// Starts a store that signs with `key` (and accepts what it signs).
    pub fn signing_with(key: JwtKey) -> JwtTokenStoreBuilder {
        JwtTokenStoreBuilder {
            signing: key,
            accepted: Vec::new(),
            leeway: DEFAULT_LEEWAY,
            issuer: None,
            audience: None,
            denylist: MemoryJtiDenylist::new(),
        }
    }
}

/// Configures a [`JwtTokenStore`]; from [`JwtTokenStore::signing_with`]. The
/// [`issuer`](Self::issuer) must be set.
#[must_use = "a builder does nothing until `build` is called"]
pub struct JwtTokenStoreBuilder<D = MemoryJtiDenylist> {
    signing: JwtKey,
    accepted: Vec<JwtKey>,
    leeway: Duration,
    issuer: Option<Box<str>>,
    audience: Option<Box<str>>,
    denylist: D,
}

impl<D: JtiDenylist> JwtTokenStoreBuilder<D> {
    /// Also accepts tokens signed with `key` (a key being rotated out, or the
    /// public key of another issuer's Ed25519 key). Call it once per key.
    pub fn also_accepting(mut self, key: JwtKey) -> Self {
        self.accepted.push(key);
        self
    }

    /// Allows `leeway` (whole seconds) of clock difference between replicas when
    /// checking `exp`, `nbf` and `iat`; [`DEFAULT_LEEWAY`] unless set, at most
    /// [`MAX_LEEWAY`].
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Names this deployment in every token's `iss` claim, and accepts only tokens
    /// that name it: the URL the service is known by, e.g.
    /// `https://auth.example.com` (RFC 8414 §2). Required: without it, two
    /// deployments that happen to share a secret and a `kid` (a copied
    /// configuration, a staging secret reused in production) would accept each
    /// other's tokens (RFC 8725 §3.8). Every replica of one deployment sets the same.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into().into());
        self
    }

    /// Names who the tokens are for in every token's `aud` claim, and accepts only
    /// tokens for it (RFC 8725 §3.9). The issuer unless set: a first-party service
    /// issues tokens for itself.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into().into());
        self
    }

    /// Remembers revoked tokens in `denylist` (shared by every replica, e.g. in
    /// Redis) instead of this process's memory.
    pub fn with_denylist<E: JtiDenylist>(self, denylist: E) -> JwtTokenStoreBuilder<E> {
        JwtTokenStoreBuilder {
            signing: self.signing,
            accepted: self.accepted,
            leeway: self.leeway,
            issuer: self.issuer,
            audience: self.audience,
            denylist,
        }
    }

    /// The store.
    ///
    /// # Errors
    ///
    /// [`JwtConfigError::CannotSign`] if the signing key is an Ed25519 public key,
    /// [`JwtConfigError::DuplicateKid`] if two keys share a `kid`,
    /// [`JwtConfigError::LeewayTooLong`], and [`JwtConfigError::NoIssuer`] if
    /// [`issuer`](Self::issuer) was not called, or with an empty string (as was
    /// [`audience`](Self::audience)).
    pub fn build(self) -> Result<JwtTokenStore<D>, JwtConfigError> {
        let issuer = self
            .issuer
            .filter(|issuer| !issuer.is_empty())
            .ok_or(JwtConfigError::NoIssuer)?;
        let audience = match self.audience {
            None => issuer.clone(),
            Some(audience) if audience.is_empty() => return Err(JwtConfigError::NoIssuer),
            Some(audience) => audience,
        };
        if !self.signing.can_sign() {
            return Err(JwtConfigError::CannotSign {
                kid: self.signing.kid().to_owned(),
            });
        }
        if self.leeway > MAX_LEEWAY {
            return Err(JwtConfigError::LeewayTooLong);
        }
        let keys: Vec<JwtKey> = std::iter::once(self.signing).chain(self.accepted).collect();
        for (i, key) in keys.iter().enumerate() {
            if keys[..i].iter().any(|earlier| earlier.kid() == key.kid()) {
                return Err(JwtConfigError::DuplicateKid {
                    kid: key.kid().to_owned(),
                });
            }
        }
        let keys = keys
            .into_iter()
            .map(|key| Known {
                header: key.header_segment().into(),
                key,
            })
            .collect();
        Ok(JwtTokenStore {
            inner: Arc::new(Inner {
                keys,
                leeway: self.leeway.as_secs(),
                issuer,
                audience,
                denylist: self.denylist,
            }),
        })
    }
}

impl<D> JwtTokenStore<D> {
    /// Every key this store verifies with: the signing key first, then the keys
    /// it also accepts. For the public ones, as a key set to publish, see
    /// [`Jwks::of`](crate::endpoint::Jwks::of).
    pub fn keys(&self) -> impl Iterator<Item = &JwtKey> {
        self.inner.keys.iter().map(|known| &known.key)
    }
}

impl<D: JtiDenylist> JwtTokenStore<D> {
    /// The denylist, e.g. to see how many revocations it holds.
    pub fn denylist(&self) -> &D {
        &self.inner.denylist
    }

    fn issue_now(&self, grant: &Grant) -> Result<IssuedToken, StoreError> {
        let signing = &self.inner.keys[0];
        if !grant.scopes.iter().all(is_scope_token) {
            // The token endpoint grants only `scope-token`s; any other would not
            // survive the space-separated claim.
            return Err(StoreError::new(
                "a JWT can only carry RFC 6749 scope-tokens",
            ));
        }
        let scope = grant.scopes.to_string();
        let family = grant.family.map(FamilyId::to_text);
        let key_binding = grant.key_binding.map(|key| key.to_string());
        let mut jti = [0u8; JTI_BYTES];
        getrandom::fill(&mut jti).map_err(|e| StoreError::new(e.to_string()))?;
        let jti = URL_SAFE_NO_PAD.encode(jti);
        let now = unix_seconds(SystemTime::now());
        let exp = unix_seconds(grant.expires_at);
        let claims = IssuedClaims {
            iss: &self.inner.issuer,
            sub: &grant.subject,
            aud: &self.inner.audience,
            exp,
            iat: now,
            nbf: now,
            jti: &jti,
            scope: &scope,
            stamp: grant.stamp,
            fam: family.as_deref(),
            cnf: key_binding.as_deref().map(|jkt| Confirmation { jkt }),
        };
        let payload = serde_json::to_vec(&claims).map_err(StoreError::new)?;
        let mut token = String::with_capacity(512);
        token.push_str(&signing.header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(payload, &mut token);
        let Some(signature) = signing.key.sign(token.as_bytes()) else {
            return Err(StoreError::new("the signing key cannot sign"));
        };
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        let expires_at = UNIX_EPOCH + Duration::from_secs(exp);
        Ok(IssuedToken::new(AccessToken::new(token), expires_at))
    }

    /// `then(claims)` if `token` is one of ours, intact and valid at `now`: steps 1
    /// to 5 of the type's documentation. The claims borrow the decoded payload,
    /// which lives on the stack unless it is unusually long.
    #[inline]
    fn verify<R>(&self, token: &[u8], now: u64, then: impl FnOnce(Claims<'_>) -> R) -> Option<R> {
        if token.len() > MAX_TOKEN_LEN {
            return None;
        }
        // No scanning for dots: the header is one of ours, the signature has its
        // key's length, and a dot anywhere in between fails base64 decoding.
        let known = self.inner.keys.iter().find(|known| {
            token.starts_with(known.header.as_bytes())
                && token.get(known.header.len()) == Some(&b'.')
        })?;
        let signed_len = token
            .len()
            .checked_sub(known.key.signature_chars() + 1)
            .filter(|&len| len > known.header.len() && token[len] == b'.')?;
        let (signed, signature) = (&token[..signed_len], &token[signed_len + 1..]);
        if !known.key.verify(signed, signature) {
            return None;
        }
        let payload = &signed[known.header.len() + 1..];
        let Inner {
            leeway,
            issuer,
            audience,
            ..
        } = &*self.inner;
        let check = |payload: &[u8]| {
            let claims = Claims::parse(payload)?;
            (claims.are_for(issuer, audience) && claims.are_valid_at(now, *leeway))
                .then(|| then(claims))
        };
        // A buffer sized for the usual claims: zeroing one sized for the longest
        // would cost more than parsing them.
        if payload.len() <= STACK_PAYLOAD_LEN / 3 * 4 {
            let mut buffer = [0u8; STACK_PAYLOAD_LEN];
            let len = base64url::decode(payload, &mut buffer).ok()?;
            check(&buffer[..len])
        } else {
            let mut buffer = vec![0; base64url::decoded_len(payload.len())?];
            let len = base64url::decode(payload, &mut buffer).ok()?;
            check(&buffer[..len])
        }
    }

    /// The grant behind `token`, if the denylist does not deny it.
    #[inline]
    fn resolve_now(&self, token: &[u8]) -> Lookup<Option<Grant>> {
        let now = unix_seconds(clock::now());
        let leeway = self.inner.leeway;
        let verified = self.verify(token, now, |claims| {
            let until = claims.accepted_until(leeway)?;
            let denied = self.inner.denylist.is_denied(claims.entry());
            let grant = claims.into_grant(until)?;
            Some(denied.map(move |denied| Ok((!denied?).then_some(grant))))
        });
        verified.flatten().unwrap_or(Lookup::ready(Ok(None)))
    }

    /// The denylist entry that ends `token` (its `jti`, or its family) and until
    /// when to deny it, if it is one of ours and still accepted.
    fn to_deny(&self, token: &[u8]) -> Option<(String, SystemTime)> {
        let now = unix_seconds(SystemTime::now());
        let leeway = self.inner.leeway;
        self.verify(token, now, |claims| {
            let until = claims.denied_until(now, leeway)?;
            Some((claims.entry().to_owned(), until))
        })
        .flatten()
    }
}

impl<D: JtiDenylist> TokenStore for JwtTokenStore<D> {
    fn issue(&self, grant: Grant) -> impl Future<Output = Result<IssuedToken, StoreError>> + Send {
        ready(self.issue_now(&grant))
    }

    /// Ready unless the denylist must be awaited.
    #[inline]
    fn resolve(&self, token: BearerToken<'_>) -> Lookup<Option<Grant>> {
        self.resolve_now(token.as_bytes())
    }

    /// Denies the token's `jti` until it expires; a token of a refresh family
    /// (`fam` claim) is denied with its whole family, by one entry for the family:
    /// the denylist grows with logins, not with tokens, however often one login
    /// refreshes (the layer's revocation endpoint ends the refresh family too). A
    /// token that is not one of ours, or no longer valid, needs nothing (RFC 7009:
    /// still `Revoked`). `hint` changes nothing: only access tokens are JWTs here.
    fn revoke(
        &self,
        token: BearerToken<'_>,
        _hint: Option<TokenTypeHint>,
    ) -> impl Future<Output = Result<Revocation, StoreError>> + Send {
        let to_deny = self.to_deny(token.as_bytes());
        async move {
            if let Some((entry, until)) = to_deny {
                self.inner.denylist.deny(&entry, until).await?;
            }
            Ok(Revocation::Revoked)
        }
    }

    /// One denylist entry, the family's id, until `until` plus the leeway: every
    /// token whose `fam` claim names the family is refused, whenever it was
    /// issued.
    fn revoke_family(
        &self,
        family: &FamilyId,
        until: SystemTime,
    ) -> impl Future<Output = Result<Revocation, StoreError>> + Send {
        let entry = family.to_text();
        let until = until + Duration::from_secs(self.inner.leeway);
        async move {
            self.inner.denylist.deny(&entry, until).await?;
            Ok(Revocation::Revoked)
        }
    }
}

impl<D: fmt::Debug> fmt::Debug for JwtTokenStore<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<&JwtKey> = self.inner.keys.iter().map(|known| &known.key).collect();
        f.debug_struct("JwtTokenStore")
            .field("signing", &keys[0])
            .field("also_accepting", &&keys[1..])
            .field("leeway", &Duration::from_secs(self.inner.leeway))
            .field("denylist", &self.inner.denylist)
            .finish()
    }
}

impl<D: fmt::Debug> fmt::Debug for JwtTokenStoreBuilder<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtTokenStoreBuilder")
            .field("signing", &self.signing)
            .field("also_accepting", &self.accepted)
            .field("leeway", &self.leeway)
            .field("denylist", &self.denylist)
            .finish()
    }
}
