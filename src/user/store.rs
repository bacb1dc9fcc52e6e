//! The [`UserStore`] trait and what it answers: [`Principal`] for the guard,
//! [`Credentials`] for the login.

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;

use crate::password::HashedPassword;
use crate::scope::Scopes;
use crate::store::{Lookup, StoreError};
use crate::user::subject::Subject;

/// Where the layer finds users: a database, a directory, a map.
///
/// Two lookups, because the guard and the login need different things:
///
/// - [`principal`](Self::principal), on **every guarded request**, by the token's
///   subject: the user model, whether the user is active, and their security
///   stamp. No password hash: a SQL store selects only what this needs.
/// - [`credentials`](Self::credentials), **at login**, by the username as typed:
///   the password hash, the scopes the user may be granted, and the canonical
///   [`Subject`] tokens are issued to.
///
/// "No such user" is `Ok(None)`, not an error. An `Err` makes the layer answer 503
/// and never lets the request through.
///
/// The **stamp** ([`Principal::stamp`], [`Credentials::stamp`]) is how a store ends
/// a user's sessions: tokens carry the stamp of their login, and the guard refuses
/// a token whose stamp is no longer the user's. Change it whenever the password
/// changes, a scope is taken away, or the user is removed and created again (a
/// counter, a random number, or a hash of the password hash and scopes all do).
///
/// ```
/// use std::borrow::Cow;
/// use std::collections::HashMap;
/// use std::sync::Arc;
/// use tower_oauth2_password::password::HashedPassword;
/// use tower_oauth2_password::store::{Lookup, StoreError};
/// use tower_oauth2_password::user::{Credentials, Principal, Subject, UserStore};
///
/// /// Accounts loaded once at startup, matched without regard to case.
/// struct Accounts(HashMap<String, (Arc<String>, HashedPassword)>);
///
/// impl UserStore for Accounts {
///     type User = String;
///
///     fn principal(&self, subject: &Subject) -> Lookup<Option<Principal<String>>> {
///         let found = self.0.get(subject.as_str()).map(|(name, _)| Principal::new(Arc::clone(name)));
///         Lookup::ready(Ok(found))
///     }
///
///     async fn credentials(&self, username: &str) -> Result<Option<Credentials>, StoreError> {
///         // The canonical subject is the stored key, not what was typed.
///         let key = self.canonical_username(username);
///         Ok(self.0.get(&*key).map(|(_, hash)| Credentials::new(Subject::from(&*key), hash.clone())))
///     }
///
///     // The login throttle counts `JohnDoe` and `johndoe` as the one user they are.
///     fn canonical_username<'a>(&self, username: &'a str) -> Cow<'a, str> {
///         Cow::Owned(username.to_lowercase())
///     }
/// }
/// ```
///
/// A store picked at run time goes in a [`BoxUserStore`](crate::user::BoxUserStore) (one type whichever it
/// is); a store the application also keeps a handle to (to add users) goes in an
/// `Arc`.
pub trait UserStore: Send + Sync + 'static {
    /// The application's own user model, handed to handlers in [`CurrentUser`](crate::CurrentUser).
    /// Keep secrets out of it: it is what handlers see and may serialise.
    type User: Send + Sync + 'static;

    /// The user a token's `subject` names, for the guard: called on every guarded
    /// request. Answer [`Lookup::ready`] when the answer is at hand (then no future
    /// is allocated), [`Lookup::pending`] when it must be awaited.
    fn principal(&self, subject: &Subject) -> Lookup<Option<Principal<Self::User>>>;

    /// The user logging in as `username` (exactly as typed, up to 256 bytes), for
    /// the token endpoint. Whatever spellings match, answer the one canonical
    /// [`Credentials::subject`].
    fn credentials(
        &self,
        username: &str,
    ) -> impl Future<Output = Result<Option<Credentials>, StoreError>> + Send;

    /// The form of a typed `username` this store matches on: the login throttle
    /// counts failures under it ([`LoginAttempt::canonical_username`](crate::endpoint::LoginAttempt::canonical_username)).
    /// Every spelling that [`credentials`](Self::credentials) finds one user for
    /// must give the same answer here, or each spelling gets its own tries: a
    /// store that folds case, trims or normalises Unicode does the same here.
    /// Called before anything else at login, for every attempt: keep it cheap
    /// and infallible.
    ///
    /// The default is the name as typed, for stores that match exactly.
    fn canonical_username<'a>(&self, username: &'a str) -> Cow<'a, str> {
        Cow::Borrowed(username)
    }

    /// Replaces the password hash `old` of `subject` with `new`, after a login whose
    /// stored hash the [`PasswordHasher`](crate::PasswordHasher) wants renewed
    /// (older parameters or algorithm). Only if the stored hash is still `old`: the
    /// password may have been changed meanwhile. The password itself did not
    /// change: keep the stamp.
    ///
    /// Called after the token response is on its way, never delaying it; an `Err`
    /// is logged. The default does nothing (the old hash keeps working).
    fn update_password_hash(
        &self,
        subject: &Subject,
        old: &HashedPassword,
        new: HashedPassword,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let _ = (subject, old, new);
        std::future::ready(Ok(()))
    }
}

/// A shared store: the application keeps a handle (to add users, say) and gives
/// the layer a clone.
impl<T: UserStore + ?Sized> UserStore for Arc<T> {
    type User = T::User;

    #[inline]
    fn principal(&self, subject: &Subject) -> Lookup<Option<Principal<Self::User>>> {
        (**self).principal(subject)
    }

    fn credentials(
        &self,
        username: &str,
    ) -> impl Future<Output = Result<Option<Credentials>, StoreError>> + Send {
        (**self).credentials(username)
    }

    fn canonical_username<'a>(&self, username: &'a str) -> Cow<'a, str> {
        (**self).canonical_username(username)
    }

    fn update_password_hash(
        &self,
        subject: &Subject,
        old: &HashedPassword,
        new: HashedPassword,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).update_password_hash(subject, old, new)
    }
}

/// What the guard needs of a user on every request: no password hash.
#[derive(Debug)]
#[non_exhaustive]
pub struct Principal<U> {
    /// The application's model, shared: handed to every request of the user
    /// without copying it.
    pub user: Arc<U>,
    /// Whether the user may use the service. Tokens of an inactive user are refused
    /// on every request, so disabling a user takes effect at once.
    pub active: bool,
    /// The user's security stamp (see [`UserStore`]): a token issued under another
    /// stamp is refused.
    pub stamp: u64,
}

impl<U> Principal<U> {
    /// An active user with stamp 0.
    pub fn new(user: impl Into<Arc<U>>) -> Self {
        Self {
            user: user.into(),
            active: true,
            stamp: 0,
        }
    }

    /// Marks the user disabled.
    pub fn disabled(mut self) -> Self {
        self.active = false;
        self
    }

    /// Sets the security stamp.
    pub fn with_stamp(mut self, stamp: u64) -> Self {
        self.stamp = stamp;
        self
    }
}

impl<U> Clone for Principal<U> {
    fn clone(&self) -> Self {
        Self {
            user: Arc::clone(&self.user),
            active: self.active,
            stamp: self.stamp,
        }
    }
}

/// What the token endpoint needs of a user logging in.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Credentials {
    /// The user's canonical name, which tokens are issued to.
    pub subject: Subject,
    /// The password hash (PHC string).
    pub password_hash: HashedPassword,
    /// The scopes the user may be granted.
    pub scopes: Scopes,
    /// Whether the user is active.
    pub active: bool,
    /// The security stamp, carried by the tokens of this login.
    pub stamp: u64,
}

impl Credentials {
    /// An active user with no scopes and stamp 0.
    pub fn new(subject: impl Into<Subject>, password_hash: HashedPassword) -> Self {
        Self {
            subject: subject.into(),
            password_hash,
            scopes: Scopes::empty(),
            active: true,
            stamp: 0,
        }
    }

    /// Sets the scopes the user may be granted.
    pub fn with_scopes(mut self, scopes: Scopes) -> Self {
        self.scopes = scopes;
        self
    }

    /// Marks the user disabled.
    pub fn disabled(mut self) -> Self {
        self.active = false;
        self
    }

    /// Sets the security stamp.
    pub fn with_stamp(mut self, stamp: u64) -> Self {
        self.stamp = stamp;
        self
    }
}
