//! Users in this process's memory: [`MemoryUserStore`], filled with
//! [`StoredUser`]s at start-up (the tutorial's store, and a test suite's).

use std::collections::HashMap;
use std::fmt;
use std::future::{ready, Future};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use blake2::digest::consts::U8;
use blake2::{Blake2b, Digest};

use crate::password::HashedPassword;
use crate::scope::Scopes;
use crate::store::Lookup;
use crate::store::StoreError;
use crate::user::store::{Credentials, Principal, UserStore};
use crate::user::subject::Subject;

/// foldhash with a random seed per map: SipHash (std's default) was the guard's
/// largest single cost after the token lookup, and this store holds a small set of
/// accounts chosen by the application, not keys an attacker can flood it with.
type Users<U> = HashMap<Subject, Record<U>, foldhash::fast::RandomState>;

struct Record<U> {
    user: StoredUser<U>,
    stamp: u64,
}

/// Users held in memory: for demos, tests, and small fixed sets of accounts.
///
/// Usernames match exactly, and a user's subject is their username. Clones share
/// the same users, so a handle kept by the application (or
/// [`OAuth2PasswordLayer::user_store`](crate::OAuth2PasswordLayer::user_store))
/// sees and makes the same changes as the layer, and each takes effect on the next
/// request: [`disable`](Self::disable) a user and their tokens answer "Inactive
/// user"; [`remove`](Self::remove) them, [`set_password`](Self::set_password) or
/// [`set_scopes`](Self::set_scopes) and their tokens are refused (a new security
/// stamp), as are the old tokens of a user removed and added again.
///
/// ```
/// use tower_oauth2_password::{Argon2Hasher, MemoryUserStore, PasswordHasher, StoredUser};
///
/// let hash = Argon2Hasher::new().hash("secret")?;
/// let users = MemoryUserStore::new().with_user("johndoe", StoredUser::new("John Doe", hash));
/// users.disable("johndoe");
/// # Ok::<(), tower_oauth2_password::password::PasswordError>(())
/// ```
pub struct MemoryUserStore<U> {
    inner: Arc<Inner<U>>,
}

struct Inner<U> {
    users: RwLock<Users<U>>,
    /// How many changes that end sessions this store has made: mixed into each
    /// new stamp, so that removing a user and adding them again ends their tokens.
    changes: AtomicU64,
}

impl<U> MemoryUserStore<U> {
    /// No users.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                users: RwLock::default(),
                changes: AtomicU64::new(0),
            }),
        }
    }

    /// Adds (or replaces) a user, builder style.
    pub fn with_user(self, username: &str, user: StoredUser<U>) -> Self {
        self.insert(username, user);
        self
    }

    /// Adds (or replaces) a user. Tokens issued to an earlier user of that name stop
    /// working.
    pub fn insert(&self, username: &str, user: StoredUser<U>) {
        let record = Record {
            stamp: self.next_stamp(username, &user),
            user,
        };
        self.write().insert(Subject::from(username), record);
    }

    /// Removes a user; their tokens stop working. Returns whether they existed.
    pub fn remove(&self, username: &str) -> bool {
        self.write().remove(&Subject::from(username)).is_some()
    }

    /// Disables a user: their tokens answer "Inactive user". Returns whether they
    /// existed.
    pub fn disable(&self, username: &str) -> bool {
        self.update(username, false, |record| record.user.active = false)
    }

    /// Enables a disabled user: their tokens work again. Returns whether they
    /// existed.
    pub fn enable(&self, username: &str) -> bool {
        self.update(username, false, |record| record.user.active = true)
    }

    /// Changes a user's password hash; their tokens stop working. Returns whether
    /// they existed.
    pub fn set_password(&self, username: &str, password_hash: HashedPassword) -> bool {
        self.update(username, true, |record| {
            record.user.password_hash = password_hash;
        })
    }

    /// Changes the scopes a user may be granted; their tokens stop working (log in
    /// again for tokens with the new scopes). Returns whether they existed.
    pub fn set_scopes(&self, username: &str, scopes: Scopes) -> bool {
        self.update(username, true, |record| record.user.scopes = scopes)
    }

    /// Applies `change` to the user, with a new stamp if it ends their sessions.
    fn update(&self, username: &str, new_stamp: bool, change: impl FnOnce(&mut Record<U>)) -> bool {
        let mut users = self.write();
        let Some(record) = users.get_mut(&Subject::from(username)) else {
            return false;
        };
        change(record);
        if new_stamp {
            record.stamp = self.next_stamp(username, &record.user);
        }
        true
    }

    /// A stamp for `user` as it is now: a hash of the user's credentials (name,
    /// password hash, scopes) and of this store's count of changes.
    ///
    /// Not a bare counter: a restarted process counts from zero again, and would
    /// hand a user whose password was changed (in the configuration the process
    /// loads its users from) the stamp their old tokens carry, so JWT and Redis
    /// tokens that the change ended would work again. Derived, not random: replicas
    /// that load the same users agree on every stamp, so each accepts the others'
    /// tokens.
    fn next_stamp(&self, username: &str, user: &StoredUser<U>) -> u64 {
        let change = self.inner.changes.fetch_add(1, Ordering::Relaxed);
        let mut hasher = Blake2b::<U8>::new();
        for part in [
            &change.to_le_bytes()[..],
            username.as_bytes(),
            user.password_hash.as_str().as_bytes(),
        ] {
            // Length-prefixed, so no two sequences of parts hash alike.
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        for scope in user.scopes.iter() {
            hasher.update((scope.len() as u64).to_le_bytes());
            hasher.update(scope);
        }
        u64::from_le_bytes(hasher.finalize().into())
    }

    fn read(&self) -> RwLockReadGuard<'_, Users<U>> {
        // The map is never left half-updated, so a poisoned lock is still consistent.
        self.inner
            .users
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Users<U>> {
        self.inner
            .users
            .write()
            .unwrap_or_else(PoisonError::into_inner)
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
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<U> fmt::Debug for MemoryUserStore<U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryUserStore")
            .field("users", &self.read().len())
            .finish()
    }
}

impl<U: Send + Sync + 'static> UserStore for MemoryUserStore<U> {
    type User = U;

    /// Always ready: one read lock and one reference count.
    #[inline(always)]
    fn principal(&self, subject: &Subject) -> Lookup<Option<Principal<U>>> {
        let users = self.read();
        let found = users.get(subject).map(|record| Principal {
            user: Arc::clone(&record.user.user),
            active: record.user.active,
            stamp: record.stamp,
        });
        Lookup::ready(Ok(found))
    }

    fn credentials(
        &self,
        username: &str,
    ) -> impl Future<Output = Result<Option<Credentials>, StoreError>> + Send {
        let subject = Subject::from(username);
        let found = self.read().get(&subject).map(|record| Credentials {
            subject: subject.clone(),
            password_hash: record.user.password_hash.clone(),
            scopes: record.user.scopes.clone(),
            active: record.user.active,
            stamp: record.stamp,
        });
        ready(Ok(found))
    }

    fn update_password_hash(
        &self,
        subject: &Subject,
        old: &HashedPassword,
        new: HashedPassword,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.update(subject.as_str(), false, |record| {
            // Unless the password was changed meanwhile.
            if record.user.password_hash == *old {
                record.user.password_hash = new;
            }
        });
        ready(Ok(()))
    }
}

/// A user as handed to [`MemoryUserStore`]: the model, the password hash, whether
/// they are active, and the scopes they may be granted.
#[derive(Debug)]
#[non_exhaustive]
pub struct StoredUser<U> {
    /// The application's model.
    pub user: Arc<U>,
    /// The user's password hash (PHC string).
    pub password_hash: HashedPassword,
    /// Whether the user may use the service.
    pub active: bool,
    /// The scopes this user may be granted at login.
    pub scopes: Scopes,
}

/// Cheap: reference counts and a flag.
impl<U> Clone for StoredUser<U> {
    fn clone(&self) -> Self {
        Self {
            user: Arc::clone(&self.user),
            password_hash: self.password_hash.clone(),
            active: self.active,
            scopes: self.scopes.clone(),
        }
    }
}

impl<U> StoredUser<U> {
    /// An active user with no scopes.
    pub fn new(user: U, password_hash: HashedPassword) -> Self {
        Self {
            user: Arc::new(user),
            password_hash,
            active: true,
            scopes: Scopes::empty(),
        }
    }

    /// Marks the user disabled: it can log in, but every protected request answers
    /// "Inactive user".
    pub fn disabled(mut self) -> Self {
        self.active = false;
        self
    }

    /// Sets the scopes the user may be granted.
    pub fn with_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.scopes = scopes.into_iter().collect();
        self
    }
}
