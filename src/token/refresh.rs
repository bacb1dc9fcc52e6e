//! Refresh tokens: the [`RefreshTokenStore`] trait, the token format every store
//! here shares, and the rotation rule (RFC 9700 §4.14).
//!
//! A refresh token belongs to a *family*: the chain of tokens that started with
//! one login. Each use rotates it: the presented token is exchanged for its
//! family's next one. Presenting a token the family has already moved past means
//! two parties hold the same chain (one of them stole it), so the whole family is
//! revoked.
//!
//! The token names its family and generation and carries a MAC of both under a key
//! only the family's record holds, so a store keeps **one record per family**, not
//! one per token ever issued, and still recognises every old generation as its own
//! (reuse) rather than as a stranger (a typo, another server's token).

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use blake2::digest::consts::U16;
use blake2::digest::{KeyInit, Mac};
use blake2::Blake2bMac;
use subtle::ConstantTimeEq;

use super::{BearerToken, Grant, RefreshToken};
use crate::error::StoreError;

/// Stores refresh-token families: issues, rotates and revokes refresh tokens.
///
/// Turned on with [`Builder::refresh_tokens`](crate::Builder::refresh_tokens);
/// the token endpoint then answers `grant_type=refresh_token`. It is separate from
/// [`TokenStore`](super::TokenStore) so that any access-token store (memory, Redis,
/// JWT) can be paired with any refresh-token store. The method names differ from
/// `TokenStore`'s so that one type can implement both.
///
/// Every implementation must follow the rotation rule, which
/// [`testing::RefreshTokenStoreSuite`](crate::testing) checks: a token rotates
/// once; presenting it again after the retry grace (or presenting any older one)
/// revokes the family and answers [`Rotation::Reused`]; presenting it again within
/// the grace is a client's retry and rotates again, invalidating the token the
/// lost answer carried.
pub trait RefreshTokenStore: Send + Sync + 'static {
    /// Starts a family for `grant` (a login): its first refresh token, valid until
    /// `grant.expires_at`. The family's id is `grant.family` (the layer always
    /// sets it, and the access tokens of the login carry the same id); a store
    /// picks a random one only when it is `None`.
    fn issue_refresh_token(
        &self,
        grant: Grant,
    ) -> impl Future<Output = Result<RefreshToken, StoreError>> + Send;

    /// Exchanges `token` for its family's grant and the family's next token, valid
    /// until `expires_at` (the grant's `expires_at` says the same).
    fn rotate_refresh_token(
        &self,
        token: BearerToken<'_>,
        expires_at: SystemTime,
    ) -> impl Future<Output = Result<Rotation, StoreError>> + Send;

    /// Ends the family of `token`, whichever of its generations it is, and
    /// answers its id, so that the layer ends the family's access tokens too
    /// ([`TokenStore::revoke_family`](super::TokenStore::revoke_family)). Unknown,
    /// expired and malformed tokens are not an error: there is nothing to revoke
    /// (`None`).
    fn revoke_refresh_token(
        &self,
        token: BearerToken<'_>,
    ) -> impl Future<Output = Result<Option<super::FamilyId>, StoreError>> + Send;

    /// Ends the family `family`, if it is live: the layer calls it when one of
    /// the family's access tokens is revoked (a logout ends the whole login).
    fn revoke_family(
        &self,
        family: &super::FamilyId,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The outcome of [`RefreshTokenStore::rotate_refresh_token`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rotation {
    /// The token was the family's current one (or a retry within the grace): here
    /// are the family's grant and its next token.
    Rotated {
        /// Who, which scopes (as granted at login), which stamp; `expires_at` is the
        /// new token's expiry.
        grant: Grant,
        /// The token that replaces the presented one.
        refresh_token: RefreshToken,
    },
    /// The token was one the family had moved past: the family is revoked now.
    Reused {
        /// Whose family it was, for the log.
        subject: crate::Subject,
        /// The family, whose access tokens the layer revokes next.
        family: super::FamilyId,
    },
    /// Unknown, expired, revoked or malformed.
    Invalid,
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
/// The key a family's tokens are MACed with; it never leaves the family's record.
pub(crate) type FamilyKey = [u8; KEY_BYTES];

const ID_BYTES: usize = 16;
const KEY_BYTES: usize = 32;
const TAG_BYTES: usize = 16;
const TOKEN_BYTES: usize = ID_BYTES + 4 + TAG_BYTES;
/// Base64url of 36 bytes, no padding.
const TOKEN_CHARS: usize = 48;

/// 128 random bits, from the operating system.
pub(crate) fn random<const N: usize>() -> Result<[u8; N], StoreError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| StoreError::new(e.to_string()))?;
    Ok(bytes)
}

fn tag(key: &FamilyKey, family: &FamilyId, generation: u32) -> [u8; TAG_BYTES] {
    // A 32-byte key is within BLAKE2b's limit: this cannot fail.
    let mut mac =
        <Blake2bMac<U16> as KeyInit>::new_from_slice(key).expect("a 32-byte BLAKE2b key is valid");
    mac.update(family);
    mac.update(&generation.to_be_bytes());
    mac.finalize().into_bytes().into()
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
        let len = URL_SAFE_NO_PAD.decode_slice(text, &mut bytes).ok()?;
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
        tag(key, &self.family, self.generation)
            .ct_eq(&self.tag)
            .into()
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

/// Where a family stands in its rotation: what a store keeps besides the grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Chain {
    /// The generation of the family's current token.
    pub(crate) current: u32,
    /// The generation presented at the last rotation, and when (milliseconds since
    /// the epoch): presenting it again within the grace is a retry.
    pub(crate) rotated_from: Option<(u32, u64)>,
}

/// What to do with a presented generation.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Hand out generation `current + 1`.
    Rotate,
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
            rotated_from: None,
        }
    }

    /// The rotation rule. `now_ms` and the grace are milliseconds. (The Redis
    /// store runs the same rule in its Lua script; the shared conformance suite
    /// holds both to it.)
    pub(crate) fn step(&self, presented: u32, now_ms: u64, grace: Duration) -> Step {
        let retry = self.rotated_from.is_some_and(|(generation, at)| {
            generation == presented && now_ms.saturating_sub(at) < grace.as_millis() as u64
        });
        if self.current == u32::MAX {
            Step::Refuse
        } else if presented == self.current || retry {
            Step::Rotate
        } else if presented < self.current {
            Step::Revoke
        } else {
            Step::Refuse
        }
    }

    /// The chain after a `Rotate` for `presented`.
    pub(crate) fn rotated(self, presented: u32, now_ms: u64) -> Self {
        // A retry keeps the original rotation's time: the grace does not slide.
        let rotated_from = match self.rotated_from {
            Some((generation, at)) if generation == presented => Some((generation, at)),
            _ => Some((presented, now_ms)),
        };
        Self {
            current: self.current + 1,
            rotated_from,
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

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// [`RefreshTokenStore`] as a trait object: the layer holds one without making
/// it part of its type (refresh is rare; a box per call costs nothing measurable).
pub(crate) trait DynRefreshTokenStore: Send + Sync + 'static {
    fn issue(&self, grant: Grant) -> BoxFuture<'_, RefreshToken>;
    fn rotate<'a>(
        &'a self,
        token: BearerToken<'a>,
        expires_at: SystemTime,
    ) -> BoxFuture<'a, Rotation>;
    fn revoke<'a>(&'a self, token: BearerToken<'a>) -> BoxFuture<'a, Option<super::FamilyId>>;
    fn revoke_family<'a>(&'a self, family: &'a super::FamilyId) -> BoxFuture<'a, ()>;
}

impl<S: RefreshTokenStore> DynRefreshTokenStore for S {
    fn issue(&self, grant: Grant) -> BoxFuture<'_, RefreshToken> {
        Box::pin(self.issue_refresh_token(grant))
    }

    fn rotate<'a>(
        &'a self,
        token: BearerToken<'a>,
        expires_at: SystemTime,
    ) -> BoxFuture<'a, Rotation> {
        Box::pin(self.rotate_refresh_token(token, expires_at))
    }

    fn revoke<'a>(&'a self, token: BearerToken<'a>) -> BoxFuture<'a, Option<super::FamilyId>> {
        Box::pin(self.revoke_refresh_token(token))
    }

    fn revoke_family<'a>(&'a self, family: &'a super::FamilyId) -> BoxFuture<'a, ()> {
        Box::pin(RefreshTokenStore::revoke_family(self, family))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(chain.step(0, 5_000, GRACE), Step::Rotate);
        let retried = chain.rotated(0, 5_000);
        assert_eq!(retried.rotated_from, Some((0, 1_000)));
        assert_eq!(retried.current, 2);
        // Late: reuse. The token the lost answer carried is reuse too.
        assert_eq!(retried.step(0, 11_000, GRACE), Step::Revoke);
        assert_eq!(retried.step(1, 5_000, GRACE), Step::Revoke);
        assert_eq!(retried.step(2, 5_000, GRACE), Step::Rotate);
        let exhausted = Chain {
            current: u32::MAX,
            rotated_from: None,
        };
        assert_eq!(exhausted.step(u32::MAX, 0, GRACE), Step::Refuse);
    }
}
