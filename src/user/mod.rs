//! Users: the [`UserStore`] trait, what it answers the guard ([`Principal`]) and the
//! login ([`Credentials`]), what handlers receive ([`CurrentUser`]), the boxed form
//! for a store picked at run time, the stores: [`memory`] and (feature `sqlx`)
//! `sql`, and [`CachedUserStore`], which keeps the guard's lookups of any store for
//! a bounded time.

pub(crate) mod boxed;
pub(crate) mod cached;
pub(crate) mod current;
pub mod memory;
#[cfg(feature = "sqlx")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlx")))]
pub mod sql;
pub(crate) mod store;
pub(crate) mod subject;

pub use self::boxed::{BoxUserStore, DynUserStore};
pub use self::cached::{CachedUserStore, CachedUserStoreBuilder};
pub use self::current::CurrentUser;
pub use self::store::{Credentials, Principal, UserStore};
pub use self::subject::Subject;
