//! Fixtures shipped with the suites, so that neither this crate's tests nor a
//! downstream crate's copy them.

use super::{Awaited, UserFixture};
use crate::password::HashedPassword;
use crate::scope::Scopes;
use crate::token::grant::Grant;
use crate::user::memory::{MemoryUserStore, StoredUser};

/// A grant for `subject` with no scopes, stamp 0, expiring in an hour: what a
/// token store's own tests issue.
///
/// ```
/// use tower_oauth2_password::testing::grant_for;
///
/// assert_eq!(grant_for("johndoe").subject, "johndoe");
/// ```
pub fn grant_for(subject: &str) -> Grant {
    Grant::new(subject, Scopes::empty(), super::in_an_hour())
}

/// The [`UserFixture`] of a [`MemoryUserStore`]: the suite adds and changes users
/// with the store's own methods. The user model is built from the username.
///
/// ```
/// use tower_oauth2_password::testing::{MemoryUsers, UserStoreSuite};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// UserStoreSuite::new().run(&MemoryUsers::<String>::new()).await;
/// // The same store answering every lookup as pending, as network stores do.
/// UserStoreSuite::new().run(&MemoryUsers::<String>::awaited()).await;
/// # }
/// ```
pub struct MemoryUsers<U = String>(Awaited<MemoryUserStore<U>>);

impl<U> std::fmt::Debug for MemoryUsers<U> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("MemoryUsers").field(&self.0).finish()
    }
}

impl<U> MemoryUsers<U> {
    /// An empty store, answering as the memory store does (at once).
    pub fn new() -> Self {
        Self(Awaited::passthrough(MemoryUserStore::new()))
    }

    /// An empty store answering every lookup as pending ([`Awaited`]).
    pub fn awaited() -> Self {
        Self(Awaited::new(MemoryUserStore::new()))
    }
}

impl<U> Default for MemoryUsers<U> {
    fn default() -> Self {
        Self::new()
    }
}

impl<U> UserFixture for MemoryUsers<U>
where
    U: From<String> + Send + Sync + 'static,
{
    type Store = Awaited<MemoryUserStore<U>>;

    fn store(&self) -> &Self::Store {
        &self.0
    }

    async fn add(&self, username: &str, password_hash: HashedPassword, scopes: Scopes) {
        let user = StoredUser::new(U::from(username.to_owned()), password_hash);
        self.0.insert(username, user.with_scopes(scopes.iter()));
    }

    async fn disable(&self, username: &str) {
        assert!(
            self.0.disable(username),
            "the fixture disables a known user"
        );
    }

    async fn remove(&self, username: &str) {
        assert!(self.0.remove(username), "the fixture removes a known user");
    }

    async fn set_password(&self, username: &str, password_hash: HashedPassword) {
        assert!(
            self.0.set_password(username, password_hash),
            "the fixture changes a known user's password"
        );
    }

    async fn set_scopes(&self, username: &str, scopes: Scopes) {
        assert!(
            self.0.set_scopes(username, scopes),
            "the fixture changes a known user's scopes"
        );
    }
}
