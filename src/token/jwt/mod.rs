//! Stateless access tokens: [`JwtTokenStore`] issues and verifies JWTs (RFC 7519)
//! signed with HS256 or EdDSA ([`JwtKey`]), names its keys by `kid` for rotation,
//! and remembers revoked tokens in a [`JtiDenylist`].

pub(crate) mod boxed;
pub(crate) mod claims;
pub(crate) mod denylist;
pub(crate) mod key;
pub(crate) mod store;

pub use self::boxed::{BoxJtiDenylist, DynJtiDenylist};
pub use self::claims::{DEFAULT_LEEWAY, MAX_LEEWAY};
pub use self::denylist::{JtiDenylist, MemoryJtiDenylist, DEFAULT_DENYLIST_CAPACITY};
pub use self::key::{JwtConfigError, JwtKey, MIN_HS256_SECRET_LEN};
pub use self::store::{JwtTokenStore, JwtTokenStoreBuilder};
