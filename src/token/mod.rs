//! Tokens: the [`TokenStore`] trait for access tokens, what it stores ([`Grant`])
//! and hands out ([`IssuedToken`]); the [`RefreshTokenStore`] trait for refresh
//! tokens; boxed forms of both for a store picked at run time; and the stores:
//! [`memory`] (one process), `redis` (feature `redis`: replicas sharing a Redis) and
//! `jwt` (feature `jwt`: stateless tokens any replica verifies).

pub(crate) mod boxed;
pub(crate) mod grant;
#[cfg(feature = "jwt")]
#[cfg_attr(docsrs, doc(cfg(feature = "jwt")))]
pub mod jwt;
pub mod memory;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;
pub(crate) mod refresh;
pub(crate) mod store;

pub use self::boxed::{BoxRefreshTokenStore, BoxTokenStore, DynRefreshTokenStore, DynTokenStore};
pub use self::grant::{
    AccessToken, BearerToken, FamilyId, Grant, IssuedToken, JwkThumbprint, RefreshToken,
    Revocation, TokenTypeHint, MAX_TOKEN_LIFETIME,
};
pub use self::refresh::{
    RefreshLifetimes, RefreshTokenStore, Rotation, DEFAULT_MAX_FAMILIES_PER_USER,
};
pub use self::store::TokenStore;
