//! Tokens in Redis, shared by every replica: [`RedisTokenStore`] keeps access
//! tokens and refresh-token families, `RedisJtiDenylist` revoked JWT ids
//! (features `redis` and `jwt`). Both take a [`RedisConnection`](crate::redis::RedisConnection).

pub(crate) mod access;
#[cfg(feature = "jwt")]
pub(crate) mod denylist;
pub(crate) mod refresh;
pub(crate) mod store;

#[cfg(feature = "jwt")]
#[cfg_attr(docsrs, doc(cfg(feature = "jwt")))]
pub use self::denylist::RedisJtiDenylist;
pub use self::store::RedisTokenStore;
