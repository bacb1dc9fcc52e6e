//! User stores as trait objects: [`DynUserStore`] and [`BoxUserStore`].
//!
//! [`UserStore`] returns `impl Future`, so it cannot be used as `dyn`;
//! `DynUserStore<U>` is the same contract with boxed futures, implemented for
//! every store whose user model is `U`, and `BoxUserStore<U>` holds one behind an
//! `Arc` and implements `UserStore` again. The guard's lookup
//! ([`UserStore::principal`]) answers a [`Lookup`]: a ready answer from a boxed
//! store still allocates nothing.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::password::HashedPassword;
use crate::store::Lookup;
use crate::store::StoreError;
use crate::user::store::{Credentials, Principal, UserStore};
use crate::user::subject::Subject;

/// A store's answer to await, boxed: what a trait object can return. (A `Box…`
/// method with two borrows is an `async fn` that awaits it: its future must name
/// each borrow's lifetime, and the box is bounded by their meet, which it cannot.)
type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// [`UserStore`] with user model `U`, as a trait object: implemented for every
/// `UserStore<User = U>`; use it through [`BoxUserStore`] (implement `UserStore`,
/// not this). The method names differ from `UserStore`'s so that a call on a store
/// stays unambiguous with both traits in scope.
pub trait DynUserStore<U>: Send + Sync + 'static {
    /// [`UserStore::principal`]: a ready answer is not boxed.
    fn dyn_principal(&self, subject: &Subject) -> Lookup<Option<Principal<U>>>;

    /// [`UserStore::credentials`], boxed.
    fn dyn_credentials<'a>(&'a self, username: &'a str) -> BoxFuture<'a, Option<Credentials>>;

    /// [`UserStore::canonical_username`].
    fn dyn_canonical_username<'a>(&self, username: &'a str) -> Cow<'a, str>;

    /// [`UserStore::update_password_hash`], boxed.
    fn dyn_update_password_hash<'a>(
        &'a self,
        subject: &'a Subject,
        old: &'a HashedPassword,
        new: HashedPassword,
    ) -> BoxFuture<'a, ()>;
}

impl<S: UserStore> DynUserStore<S::User> for S {
    #[inline]
    fn dyn_principal(&self, subject: &Subject) -> Lookup<Option<Principal<S::User>>> {
        self.principal(subject)
    }

    fn dyn_credentials<'a>(&'a self, username: &'a str) -> BoxFuture<'a, Option<Credentials>> {
        Box::pin(self.credentials(username))
    }

    fn dyn_canonical_username<'a>(&self, username: &'a str) -> Cow<'a, str> {
        self.canonical_username(username)
    }

    fn dyn_update_password_hash<'a>(
        &'a self,
        subject: &'a Subject,
        old: &'a HashedPassword,
        new: HashedPassword,
    ) -> BoxFuture<'a, ()> {
        Box::pin(self.update_password_hash(subject, old, new))
    }
}

/// Any [`UserStore`] whose user model is `U`, chosen at run time: one type for
/// the layer whichever store the configuration names. Cloning it shares the store.
///
/// ```
/// use tower_oauth2_password::user::BoxUserStore;
/// use tower_oauth2_password::{MemoryUserStore, OAuth2PasswordLayer};
///
/// let users: BoxUserStore<String> = BoxUserStore::new(MemoryUserStore::new());
/// let layer = OAuth2PasswordLayer::new(users);
/// # let _ = layer;
/// ```
pub struct BoxUserStore<U>(Arc<dyn DynUserStore<U>>);

impl<U: Send + Sync + 'static> BoxUserStore<U> {
    /// Boxes `store`.
    pub fn new(store: impl UserStore<User = U>) -> Self {
        Self(Arc::new(store))
    }
}

impl<U> From<Arc<dyn DynUserStore<U>>> for BoxUserStore<U> {
    fn from(store: Arc<dyn DynUserStore<U>>) -> Self {
        Self(store)
    }
}

/// Not derived: `U` need not be `Clone`.
impl<U> Clone for BoxUserStore<U> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<U> fmt::Debug for BoxUserStore<U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoxUserStore").finish_non_exhaustive()
    }
}

impl<U: Send + Sync + 'static> UserStore for BoxUserStore<U> {
    type User = U;

    #[inline]
    fn principal(&self, subject: &Subject) -> Lookup<Option<Principal<U>>> {
        self.0.dyn_principal(subject)
    }

    async fn credentials(&self, username: &str) -> Result<Option<Credentials>, StoreError> {
        self.0.dyn_credentials(username).await
    }

    fn canonical_username<'a>(&self, username: &'a str) -> Cow<'a, str> {
        self.0.dyn_canonical_username(username)
    }

    async fn update_password_hash(
        &self,
        subject: &Subject,
        old: &HashedPassword,
        new: HashedPassword,
    ) -> Result<(), StoreError> {
        self.0.dyn_update_password_hash(subject, old, new).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::memory::{MemoryUserStore, StoredUser};

    /// The guard's fast path: a store that answers at once still does behind a box.
    #[test]
    fn a_boxed_store_answers_a_ready_lookup_at_once() {
        let hash = HashedPassword::parse(
            "$argon2id$v=19$m=19456,t=2,p=1$QlGICJv0VkLd2pqAa9i9+Q$8jVAeYmJi0SJhtpkUv7OIxBaTEMmu/PL5yjLUR5dcQ8",
        )
        .unwrap();
        let memory = MemoryUserStore::new().with_user("johndoe", StoredUser::new(7_u32, hash));
        let store = BoxUserStore::new(memory);
        let principal = store
            .principal(&Subject::from("johndoe"))
            .into_ready()
            .expect("ready")
            .unwrap()
            .expect("johndoe exists");
        assert_eq!(*principal.user, 7);
        let unknown = store.principal(&Subject::from("janedoe")).into_ready();
        assert!(matches!(unknown, Ok(Ok(None))));
    }
}
