use std::collections::HashMap;
use std::fmt;
use std::future::{ready, Future};
use std::sync::{Arc, PoisonError, RwLock};

use crate::error::StoreError;
use crate::user::{StoredUser, UserStore};

/// foldhash with a random seed per map: SipHash (std's default) was the guard's
/// largest single cost after the token lookup, and this store holds a small set of
/// accounts chosen by the application, not keys an attacker can flood it with.
type Users<U> = HashMap<Box<str>, StoredUser<U>, foldhash::fast::RandomState>;

/// Users held in memory: for demos, tests, and small fixed sets of accounts.
///
/// Clones share the same users, so a handle kept by the application sees (and makes)
/// the same changes as the layer: [`disable`](Self::disable) a user and their tokens
/// stop working on the next request.
///
/// ```
/// use tower_oauth2_password::{Argon2Hasher, MemoryUserStore, PasswordHasher, StoredUser};
///
/// let hash = Argon2Hasher::new().hash("secret")?;
/// let users = MemoryUserStore::new().with_user("johndoe", StoredUser::new("John Doe", hash));
/// users.disable("johndoe");
/// # Ok::<(), tower_oauth2_password::PasswordError>(())
/// ```
pub struct MemoryUserStore<U> {
    users: Arc<RwLock<Users<U>>>,
}

impl<U> MemoryUserStore<U> {
    /// No users.
    pub fn new() -> Self {
        Self {
            users: Arc::default(),
        }
    }

    /// Adds (or replaces) a user, builder style.
    pub fn with_user(self, username: impl Into<Box<str>>, user: StoredUser<U>) -> Self {
        self.insert(username, user);
        self
    }

    /// Adds (or replaces) a user.
    pub fn insert(&self, username: impl Into<Box<str>>, user: StoredUser<U>) {
        self.write().insert(username.into(), user);
    }

    /// Removes a user; their tokens stop working. Returns whether they existed.
    pub fn remove(&self, username: &str) -> bool {
        self.write().remove(username).is_some()
    }

    /// Disables a user; their tokens stop working. Returns whether they existed.
    pub fn disable(&self, username: &str) -> bool {
        self.write()
            .get_mut(username)
            .map(|user| user.active = false)
            .is_some()
    }

    #[inline]
    fn get(&self, username: &str) -> Option<StoredUser<U>> {
        let users = self.users.read().unwrap_or_else(PoisonError::into_inner);
        users.get(username).cloned()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Users<U>> {
        // The map is never left half-updated, so a poisoned lock is still consistent.
        self.users.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<U> Default for MemoryUserStore<U> {
    fn default() -> Self {
        Self::new()
    }
}

impl<U> Clone for MemoryUserStore<U> {
    fn clone(&self) -> Self {
        Self {
            users: Arc::clone(&self.users),
        }
    }
}

impl<U> fmt::Debug for MemoryUserStore<U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let users = self.users.read().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("MemoryUserStore")
            .field("users", &users.len())
            .finish()
    }
}

impl<U: Send + Sync + 'static> UserStore for MemoryUserStore<U> {
    type User = U;

    fn find(
        &self,
        username: &str,
    ) -> impl Future<Output = Result<Option<StoredUser<U>>, StoreError>> + Send {
        ready(Ok(self.get(username)))
    }

    fn find_now(&self, username: &str) -> Option<Result<Option<StoredUser<U>>, StoreError>> {
        Some(Ok(self.get(username)))
    }
}
