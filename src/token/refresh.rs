//! Refresh tokens: the [`RefreshTokenStore`] trait, the token format every store
//! here shares, and the rotation rule (RFC 9700 §4.14).
//!
//! A refresh token belongs to a *family*: the chain of tokens that started with
//! one login. Each use rotates it: the presented token is exchanged for its
//! family's next one. Presenting a token the family has already moved past means
//! two parties hold the same chain (one of them stole it), so the whole family is
//! revoked.
//!
//! The token names its family and generation and carries a MAC of both under the
//! family's key, so a store keeps **one record per family**, not one per token
//! ever issued, and still recognises every old generation as its own (reuse)
//! rather than as a stranger (a typo, another server's token). The memory store
//! draws each family's key at random and keeps it in process memory; the Redis
//! store derives it from a secret the application configures (`FamilySecrets`),
//! so that what Redis holds mints no token.

use std::future::Future;
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use blake2::digest::consts::U16;
use blake2::digest::{KeyInit, Mac};
use blake2::Blake2bMac;

use crate::constant_time;
use crate::store::StoreError;
use crate::token::grant::MAX_TOKEN_LIFETIME;
use crate::token::grant::{BearerToken, Grant, RefreshToken};

/// Stores refresh-token families: issues, rotates and revokes refresh tokens.
///
/// Turned on with [`Builder::refresh_tokens`](crate::layer::Builder::refresh_tokens);
/// the token endpoint then answers `grant_type=refresh_token`. It is separate from
/// [`TokenStore`](super::TokenStore) so that any access-token store (memory, Redis,
/// JWT) can be paired with any refresh-token store. The method names differ from
/// `TokenStore`'s so that one type can implement both.
///
/// Every implementation must follow these rules, which
/// [`testing::RefreshTokenStoreSuite`](crate::testing::RefreshTokenStoreSuite)
/// checks:
///
/// - **Rotation**: a token rotates once; presenting it again after the retry
///   grace (or presenting any older one) revokes the family and answers
///   [`Rotation::Reused`].
/// - **One retry per generation**: presenting it again *within* the grace is a
///   client's retry (its answer was lost) and rotates again, once, invalidating
///   the token the lost answer carried, answered [`Rotation::Retried`]; a second
///   retry is reuse.
/// - **The grant round-trips**: subject, scopes, stamp, family and the client key
///   the family is bound to (`key_binding`, DPoP) come back from every peek and
///   rotation as the login gave them; an unbound family stays unbound.
/// - **Lifetimes** ([`RefreshLifetimes`]): a family ends when it has not been
///   used for the idle lifetime, and at the latest the absolute lifetime after
///   its login, however often it is used.
/// - **A bounded number of live families per user**: a new login beyond the cap
///   ends the user's oldest family, so one account cannot mint families without
///   end.
/// - **Nothing persisted mints a token**: a store that keeps families outside the
///   process (a database, Redis) keeps nothing from which a working refresh token
///   can be computed: not the token, nor the key its MAC is made with.
///
/// A store picked at run time goes in a
/// [`BoxRefreshTokenStore`](super::BoxRefreshTokenStore); a shared one in an `Arc`.
pub trait RefreshTokenStore: Send + Sync + 'static {
    /// Starts a family for `grant` (a login) and returns its first refresh token.
    /// The family's id is `grant.family` (the layer always sets it, and the access
    /// tokens of the login carry the same id); a store picks a random one only
    /// when it is `None`.
    ///
    /// The family expires after `lifetimes.idle()` unused, and at the latest
    /// `lifetimes.absolute()` after now, both by the store's clock (the grant's
    /// `expires_at` is not read).
    fn issue_refresh_token(
        &self,
        grant: Grant,
        lifetimes: RefreshLifetimes,
    ) -> impl Future<Output = Result<RefreshToken, StoreError>> + Send;

    /// The grant of the live family `token` is one of the generations of,
    /// without rotating or revoking anything: what the endpoint checks a
    /// refresh's `scope` against before it rotates. `None` where
    /// [`rotate_refresh_token`](Self::rotate_refresh_token) would answer
    /// `Invalid` for any reason other than the token's generation.
    fn peek_refresh_token(
        &self,
        token: BearerToken<'_>,
    ) -> impl Future<Output = Result<Option<Grant>, StoreError>> + Send;

    /// Exchanges `token` for its family's grant and the family's next token.
    ///
    /// The family's idle lifetime starts again from now (`lifetimes.idle()`),
    /// never past the absolute end fixed at its login; the grant's `expires_at`
    /// is the new token's expiry.
    fn rotate_refresh_token(
        &self,
        token: BearerToken<'_>,
        lifetimes: RefreshLifetimes,
    ) -> impl Future<Output = Result<Rotation, StoreError>> + Send;

    /// Ends the family of `token`, whichever of its generations it is, and
    /// answers its id, so that the layer ends the family's access tokens too
    /// ([`TokenStore::revoke_family`](super::TokenStore::revoke_family)). Unknown,
    /// expired and malformed tokens are not an error: there is nothing to revoke
    /// (`None`).
    fn revoke_refresh_token(
        &self,
        token: BearerToken<'_>,
    ) -> impl Future<Output = Result<Option<crate::token::grant::FamilyId>, StoreError>> + Send;

    /// Ends the family `family`, if it is live: the layer calls it when one of
    /// the family's access tokens is revoked (a logout ends the whole login).
    fn revoke_family(
        &self,
        family: &crate::token::grant::FamilyId,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// How long a refresh-token family lives: `idle` after its last use, and at most
/// `absolute` after its login (OWASP ASVS 3.3.2: re-authentication however
/// actively a login is used), whichever comes first.
///
/// The layer passes the builder's
/// [`refresh_token_idle_lifetime`](crate::layer::Builder::refresh_token_idle_lifetime)
/// and [`refresh_token_absolute_lifetime`](crate::layer::Builder::refresh_token_absolute_lifetime)
/// to its [`RefreshTokenStore`].
///
/// ```
/// use std::time::Duration;
/// use tower_oauth2_password::token::RefreshLifetimes;
///
/// let day = Duration::from_secs(24 * 3600);
/// let lifetimes = RefreshLifetimes::new(14 * day, 30 * day);
/// assert_eq!(lifetimes.idle(), 14 * day);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshLifetimes {
    idle: Duration,
    absolute: Duration,
}

impl RefreshLifetimes {
    /// `idle` after each use, at most `absolute` after the login. Each is taken
    /// as at most [`MAX_TOKEN_LIFETIME`] (one year), so that expiry arithmetic
    /// cannot overflow.
    pub fn new(idle: Duration, absolute: Duration) -> Self {
        Self {
            idle: idle.min(MAX_TOKEN_LIFETIME),
            absolute: absolute.min(MAX_TOKEN_LIFETIME),
        }
    }

    /// How long a family lives unused.
    pub fn idle(&self) -> Duration {
        self.idle
    }

    /// How long a family lives after its login, however it is used.
    pub fn absolute(&self) -> Duration {
        self.absolute
    }

    /// When a family that logged in at `login` ends if it is used at `now` and
    /// not again.
    pub(crate) fn expiry(&self, login: SystemTime, now: SystemTime) -> SystemTime {
        // Both durations are at most a year: neither sum overflows.
        (now + self.idle).min(login + self.absolute)
    }
}

/// The outcome of [`RefreshTokenStore::rotate_refresh_token`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rotation {
    /// The token was the family's current one: here are the family's grant and
    /// its next token.
    Rotated {
        /// Who, which scopes (as granted at login), which stamp, which client key
        /// (DPoP); `expires_at` is the new token's expiry.
        grant: Grant,
        /// The token that replaces the presented one.
        refresh_token: RefreshToken,
    },
    /// The token was the family's previous one, presented again within the retry
    /// grace (the client's answer was lost): the family rotates as for
    /// [`Rotated`](Self::Rotated), once per generation, and the token the lost
    /// answer carried is no longer valid. The layer answers it as a rotation and
    /// counts it apart (metric outcome `retried_within_grace`).
    Retried {
        /// As [`Rotated`](Self::Rotated)'s.
        grant: Grant,
        /// The token that replaces the presented one (and the lost one).
        refresh_token: RefreshToken,
    },
    /// The token was one the family had moved past: the family is revoked now.
    Reused {
        /// Whose family it was, for the log.
        subject: crate::user::subject::Subject,
        /// The family, whose access tokens the layer revokes next.
        family: crate::token::grant::FamilyId,
    },
    /// Unknown, expired, revoked or malformed.
    Invalid,
}

impl Rotation {
    /// A family's next token: `Retried` when the previous generation was
    /// presented again within the grace, else `Rotated`.
    pub(crate) fn next(retried: bool, grant: Grant, refresh_token: RefreshToken) -> Self {
        if retried {
            Rotation::Retried {
                grant,
                refresh_token,
            }
        } else {
            Rotation::Rotated {
                grant,
                refresh_token,
            }
        }
    }
}

/// The parts of a refresh token: family id, generation, and the MAC of both.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct FamilyToken {
    pub(crate) family: FamilyId,
    pub(crate) generation: u32,
    tag: [u8; TAG_BYTES],
}

/// A family's random id, the part of its tokens that finds its record.
pub(crate) type FamilyId = [u8; ID_BYTES];
/// The key a family's tokens are MACed with.
pub(crate) type FamilyKey = [u8; KEY_BYTES];

const ID_BYTES: usize = 16;
pub(crate) const KEY_BYTES: usize = 32;
const TAG_BYTES: usize = 16;
const TOKEN_BYTES: usize = ID_BYTES + 4 + TAG_BYTES;
/// Base64url of 36 bytes, no padding.
const TOKEN_CHARS: usize = 48;

/// A MAC (keyed BLAKE2b) of `parts` under a 32-byte key.
fn keyed<M: Mac + KeyInit>(key: &[u8; KEY_BYTES], parts: &[&[u8]]) -> blake2::digest::Output<M> {
    // A 32-byte key is within BLAKE2b's limit: this cannot fail.
    let mut mac = <M as KeyInit>::new_from_slice(key).expect("a 32-byte BLAKE2b key is valid");
    for part in parts {
        Mac::update(&mut mac, part);
    }
    mac.finalize().into_bytes()
}

fn tag(key: &FamilyKey, family: &FamilyId, generation: u32) -> [u8; TAG_BYTES] {
    keyed::<Blake2bMac<U16>>(key, &[family, &generation.to_be_bytes()]).into()
}

impl FamilyToken {
    /// The token of `generation` in the family `family` keyed with `key`.
    pub(crate) fn new(key: &FamilyKey, family: FamilyId, generation: u32) -> Self {
        Self {
            family,
            generation,
            tag: tag(key, &family, generation),
        }
    }

    /// Reads a token the client sent; `None` if it cannot be one of ours.
    pub(crate) fn parse(token: BearerToken<'_>) -> Option<Self> {
        let text = token.as_bytes();
        if text.len() != TOKEN_CHARS {
            return None;
        }
        let mut bytes = [0u8; TOKEN_BYTES];
        let len = crate::base64url::decode(text, &mut bytes).ok()?;
        if len != TOKEN_BYTES {
            return None;
        }
        let (family, rest) = bytes.split_at(ID_BYTES);
        let (generation, tag) = rest.split_at(4);
        Some(Self {
            family: family.try_into().ok()?,
            generation: u32::from_be_bytes(generation.try_into().ok()?),
            tag: tag.try_into().ok()?,
        })
    }

    /// Whether the family's key made this token (in constant time).
    pub(crate) fn is_signed_by(&self, key: &FamilyKey) -> bool {
        constant_time::eq(&tag(key, &self.family, self.generation), &self.tag)
    }

    /// The MAC, for checks that it is kept nowhere.
    #[cfg(feature = "testing")]
    pub(crate) fn tag(&self) -> &[u8] {
        &self.tag
    }

    /// The text handed to the client.
    pub(crate) fn encode(&self) -> RefreshToken {
        let mut bytes = [0u8; TOKEN_BYTES];
        bytes[..ID_BYTES].copy_from_slice(&self.family);
        bytes[ID_BYTES..ID_BYTES + 4].copy_from_slice(&self.generation.to_be_bytes());
        bytes[ID_BYTES + 4..].copy_from_slice(&self.tag);
        RefreshToken::new(URL_SAFE_NO_PAD.encode(bytes))
    }
}

#[cfg(feature = "redis")]
pub(crate) use self::secrets::FamilySecrets;

/// The secrets refresh-family keys are derived from, for stores that keep
/// families outside the process (Redis).
#[cfg(feature = "redis")]
mod secrets {
    use blake2::digest::consts::U32;
    use blake2::{Blake2b, Blake2bMac, Digest};
    use zeroize::Zeroizing;

    use super::{keyed, FamilyId, FamilyKey, KEY_BYTES};
    use crate::store::StoreError;

    /// The application's secrets that family keys are derived from (keyed BLAKE2b of
    /// the family id): a store that keeps families outside the process keeps only the
    /// id of the secret a family's key comes from, never the key, so a copy of its
    /// data mints no token.
    ///
    /// The first secret keys new families; the others only keep the families they
    /// keyed working, so that a secret can be replaced without logging anyone out
    /// (keep the old one until its families have reached their absolute lifetime).
    #[derive(Clone, Default)]
    pub(crate) struct FamilySecrets(Vec<FamilySecret>);

    #[derive(Clone)]
    struct FamilySecret {
        id: Box<str>,
        /// BLAKE2b-256 of the secret as configured: a secret of any length is a key.
        key: Zeroizing<[u8; KEY_BYTES]>,
    }

    /// The shortest secret accepted: 256 bits, as many as the keys derived from it.
    pub(crate) const MIN_SECRET_BYTES: usize = 32;
    /// The longest secret id: it is stored with every family.
    const MAX_SECRET_ID_CHARS: usize = 64;

    impl FamilySecrets {
        /// Adds a secret named `id`, after those already added.
        ///
        /// # Errors
        ///
        /// If `secret` is shorter than 32 bytes, or `id` is empty, longer than 64
        /// characters, not printable ASCII, or already taken. No message shows the
        /// secret.
        pub(crate) fn add(&mut self, id: &str, secret: &[u8]) -> Result<(), StoreError> {
            if secret.len() < MIN_SECRET_BYTES {
                return Err(StoreError::new(format!(
                    "refresh secret {id:?} is {} bytes: at least {MIN_SECRET_BYTES} random bytes are needed",
                    secret.len()
                )));
            }
            if id.is_empty()
                || id.len() > MAX_SECRET_ID_CHARS
                || !id.bytes().all(|byte| byte.is_ascii_graphic())
            {
                return Err(StoreError::new(
                    "a refresh secret id is 1 to 64 printable ASCII characters, no spaces",
                ));
            }
            if self.by_id(id).is_some() {
                return Err(StoreError::new(format!(
                    "refresh secret id {id:?} is given twice"
                )));
            }
            let key = Blake2b::<U32>::new()
                .chain_update(b"tower-oauth2-password refresh secret\0")
                .chain_update(secret)
                .finalize();
            self.0.push(FamilySecret {
                id: id.into(),
                key: Zeroizing::new(key.into()),
            });
            Ok(())
        }

        /// The id of the secret new families are keyed with, and the key of `family`
        /// under it; `None` if no secret is configured.
        pub(crate) fn current(&self, family: &FamilyId) -> Option<(&str, FamilyKey)> {
            let secret = self.0.first()?;
            Some((&secret.id, secret.family_key(family)))
        }

        /// The key of `family` under the secret named `id`, if it is configured.
        pub(crate) fn family_key(&self, id: &str, family: &FamilyId) -> Option<FamilyKey> {
            self.by_id(id).map(|secret| secret.family_key(family))
        }

        /// The ids of the configured secrets, first the one new families use.
        pub(crate) fn ids(&self) -> impl Iterator<Item = &str> {
            self.0.iter().map(|secret| &*secret.id)
        }

        fn by_id(&self, id: &str) -> Option<&FamilySecret> {
            self.0.iter().find(|secret| *secret.id == *id)
        }
    }

    impl FamilySecret {
        fn family_key(&self, family: &FamilyId) -> FamilyKey {
            keyed::<Blake2bMac<U32>>(&self.key, &[b"family\0", family]).into()
        }
    }
}

/// Where a family stands in its rotation: what a store keeps besides the grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Chain {
    /// The generation of the family's current token.
    pub(crate) current: u32,
    /// The last rotation: presenting its token again within the grace is a retry.
    pub(crate) last: Option<LastRotation>,
}

/// The generation presented at a family's last rotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LastRotation {
    pub(crate) generation: u32,
    /// When it was first presented, in milliseconds since the epoch.
    pub(crate) at_ms: u64,
    /// Whether it was presented again already: one retry per generation.
    pub(crate) retried: bool,
}

/// What to do with a presented generation.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Hand out generation `current + 1`.
    Rotate,
    /// The same, for the previous generation presented again within the grace.
    Retry,
    /// The family was moved past this token: revoke it.
    Revoke,
    /// A generation the family never issued (or a counter at its end).
    Refuse,
}

impl Chain {
    /// A new family's chain.
    pub(crate) fn start() -> Self {
        Self {
            current: 0,
            last: None,
        }
    }

    /// The rotation rule. `now_ms` and the grace are milliseconds. (The Redis
    /// store runs the same rule in its Lua script; the shared conformance suite
    /// holds both to it.)
    pub(crate) fn step(&self, presented: u32, now_ms: u64, grace: Duration) -> Step {
        if self.current == u32::MAX {
            Step::Refuse
        } else if presented == self.current {
            Step::Rotate
        } else if self.is_retry(presented, now_ms, grace) {
            Step::Retry
        } else if presented < self.current {
            Step::Revoke
        } else {
            Step::Refuse
        }
    }

    fn is_retry(&self, presented: u32, now_ms: u64, grace: Duration) -> bool {
        self.last.is_some_and(|last| {
            last.generation == presented
                && !last.retried
                && now_ms.saturating_sub(last.at_ms) < grace.as_millis() as u64
        })
    }

    /// The chain after a `Rotate` or `Retry` for `presented`.
    pub(crate) fn rotated(self, presented: u32, now_ms: u64) -> Self {
        let last = match self.last {
            // The retry: it keeps the rotation's time (the grace does not slide)
            // and uses up the generation's one retry.
            Some(last) if last.generation == presented => LastRotation {
                retried: true,
                ..last
            },
            _ => LastRotation {
                generation: presented,
                at_ms: now_ms,
                retried: false,
            },
        };
        Self {
            current: self.current + 1,
            last: Some(last),
        }
    }
}

/// Milliseconds since the epoch (0 before it).
pub(crate) fn millis(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The default retry grace: long enough for a client to retry a request that timed
/// out, short enough that a thief racing the client is rarely let through.
pub(crate) const DEFAULT_RETRY_GRACE: Duration = Duration::from_secs(10);

/// The default cap on one user's live families (logins with refresh tokens): a
/// login beyond it ends the user's oldest family.
pub const DEFAULT_MAX_FAMILIES_PER_USER: usize = 100;

/// A shared store: the application keeps a handle and gives the layer a clone.
impl<T: RefreshTokenStore + ?Sized> RefreshTokenStore for std::sync::Arc<T> {
    fn issue_refresh_token(
        &self,
        grant: Grant,
        lifetimes: RefreshLifetimes,
    ) -> impl Future<Output = Result<RefreshToken, StoreError>> + Send {
        (**self).issue_refresh_token(grant, lifetimes)
    }

    fn peek_refresh_token(
        &self,
        token: BearerToken<'_>,
    ) -> impl Future<Output = Result<Option<Grant>, StoreError>> + Send {
        (**self).peek_refresh_token(token)
    }

    fn rotate_refresh_token(
        &self,
        token: BearerToken<'_>,
        lifetimes: RefreshLifetimes,
    ) -> impl Future<Output = Result<Rotation, StoreError>> + Send {
        (**self).rotate_refresh_token(token, lifetimes)
    }

    fn revoke_refresh_token(
        &self,
        token: BearerToken<'_>,
    ) -> impl Future<Output = Result<Option<crate::token::grant::FamilyId>, StoreError>> + Send
    {
        (**self).revoke_refresh_token(token)
    }

    fn revoke_family(
        &self,
        family: &crate::token::grant::FamilyId,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).revoke_family(family)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::grant::random;

    const GRACE: Duration = Duration::from_secs(10);

    #[test]
    fn tokens_round_trip_and_only_their_key_signs_them() {
        let key = random::<KEY_BYTES>().unwrap();
        let token = FamilyToken::new(&key, random().unwrap(), 7);
        let text = token.encode();
        assert_eq!(text.as_str().len(), TOKEN_CHARS);
        let parsed = FamilyToken::parse(text.as_str().into()).unwrap();
        assert!(parsed == token && parsed.is_signed_by(&key));
        assert!(!parsed.is_signed_by(&random().unwrap()));
        let forged = FamilyToken {
            generation: 8,
            ..parsed
        };
        assert!(!forged.is_signed_by(&key));
        assert!(FamilyToken::parse(BearerToken::new(b"short")).is_none());
        assert!(FamilyToken::parse(BearerToken::new(&[b'!'; TOKEN_CHARS])).is_none());
    }

    #[test]
    fn the_rotation_rule() {
        let chain = Chain::start();
        assert_eq!(chain.step(0, 0, GRACE), Step::Rotate);
        assert_eq!(chain.step(1, 0, GRACE), Step::Refuse);
        let chain = chain.rotated(0, 1_000);
        // The same token again, soon: a retry.
        assert_eq!(chain.step(0, 5_000, GRACE), Step::Retry);
        let retried = chain.rotated(0, 5_000);
        assert_eq!(
            retried.last,
            Some(LastRotation {
                generation: 0,
                at_ms: 1_000,
                retried: true
            })
        );
        assert_eq!(retried.current, 2);
        // One retry per generation: a second one, however soon, is reuse.
        assert_eq!(retried.step(0, 5_001, GRACE), Step::Revoke);
        // Late: reuse. The token the lost answer carried is reuse too.
        assert_eq!(chain.step(0, 11_000, GRACE), Step::Revoke);
        assert_eq!(retried.step(1, 5_000, GRACE), Step::Revoke);
        assert_eq!(retried.step(2, 5_000, GRACE), Step::Rotate);
        // The next generation gets a retry of its own.
        let next = retried.rotated(2, 6_000);
        assert_eq!(next.step(2, 7_000, GRACE), Step::Retry);
        let exhausted = Chain {
            current: u32::MAX,
            last: None,
        };
        assert_eq!(exhausted.step(u32::MAX, 0, GRACE), Step::Refuse);
    }

    #[cfg(feature = "redis")]
    #[test]
    fn family_keys_come_from_the_named_secret() {
        let mut secrets = FamilySecrets::default();
        assert!(secrets.current(&[0; ID_BYTES]).is_none());
        assert!(secrets.add("short", &[1; 31]).is_err());
        assert!(secrets.add("with space", &[1; 32]).is_err());
        secrets.add("new", &[1; 32]).unwrap();
        secrets.add("old", &[2; 40]).unwrap();
        assert!(secrets.add("old", &[3; 32]).is_err());
        let family = random().unwrap();
        let (id, key) = secrets.current(&family).unwrap();
        assert_eq!(id, "new");
        assert_eq!(secrets.family_key("new", &family), Some(key));
        assert_ne!(secrets.family_key("old", &family), Some(key));
        assert_ne!(secrets.current(&random().unwrap()).unwrap().1, key);
        assert_eq!(secrets.family_key("gone", &family), None);
        assert_eq!(secrets.ids().collect::<Vec<_>>(), ["new", "old"]);
    }

    #[test]
    fn lifetimes_end_at_the_earlier_limit() {
        let login = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let lifetimes = RefreshLifetimes::new(Duration::from_secs(10), Duration::from_secs(25));
        let at = |secs| login + Duration::from_secs(secs);
        assert_eq!(lifetimes.expiry(login, at(0)), at(10));
        assert_eq!(lifetimes.expiry(login, at(9)), at(19));
        assert_eq!(lifetimes.expiry(login, at(20)), at(25));
        let long = RefreshLifetimes::new(Duration::MAX, Duration::MAX);
        assert_eq!(long.absolute(), MAX_TOKEN_LIFETIME);
    }
}
