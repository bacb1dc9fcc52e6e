//! Users: the [`UserStore`] trait, what it returns, and what handlers receive.

use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;

use crate::error::StoreError;
use crate::password::HashedPassword;
use crate::scope::Scopes;

/// Where the layer finds users, by username: a database, a directory, a map.
///
/// Every call is async and fallible, so a SQL or network store fits; "no such user"
/// is `Ok(None)`, not an error. An `Err` makes the layer answer 503 and never lets
/// the request through.
///
/// ```
/// use std::future::{ready, Future};
/// use tower_oauth2_password::{HashedPassword, StoreError, StoredUser, UserStore};
///
/// /// One hard-coded administrator.
/// struct Admin(HashedPassword);
///
/// impl UserStore for Admin {
///     type User = String;
///
///     fn find(
///         &self,
///         username: &str,
///     ) -> impl Future<Output = Result<Option<StoredUser<String>>, StoreError>> + Send {
///         let found = (username == "admin").then(|| StoredUser::new("admin".to_owned(), self.0.clone()));
///         ready(Ok(found))
///     }
/// }
/// ```
pub trait UserStore: Send + Sync + 'static {
    /// The application's own user model, handed to handlers in [`CurrentUser`].
    /// Keep secrets out of it: it is what handlers see and may serialise.
    type User: Send + Sync + 'static;

    /// Looks a user up by the exact username they log in with.
    fn find(
        &self,
        username: &str,
    ) -> impl Future<Output = Result<Option<StoredUser<Self::User>>, StoreError>> + Send;

    /// The same as [`find`](Self::find), for stores that can answer without waiting
    /// (in memory); `None` (the default) means "call `find`". The guard uses it to
    /// decide in `call` without allocating a future.
    fn find_now(
        &self,
        username: &str,
    ) -> Option<Result<Option<StoredUser<Self::User>>, StoreError>> {
        let _ = username;
        None
    }
}

/// What a [`UserStore`] knows of a user: the model handed to handlers, and what only
/// the layer reads (password hash, active flag, allowed scopes).
#[derive(Debug)]
pub struct StoredUser<U> {
    /// The application's model, shared: the guard hands it to every request of the
    /// user without copying it.
    pub user: Arc<U>,
    /// The user's password hash (PHC string).
    pub password_hash: HashedPassword,
    /// Whether the user may use the service. Tokens of an inactive user are refused
    /// on every request, so disabling a user takes effect at once.
    pub active: bool,
    /// The scopes this user may be granted at login (cheap to clone: the guard
    /// fetches users on every request).
    pub scopes: Scopes,
}

/// Cheap: three reference counts and a flag.
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

/// The authenticated, active user of a request, inserted into the request extensions
/// by the guard.
///
/// It dereferences to the application's user model; the password hash never reaches
/// it.
///
/// ```
/// # use tower_oauth2_password::CurrentUser;
/// fn greet<B>(request: &http::Request<B>) -> String {
///     match request.extensions().get::<CurrentUser<String>>() {
///         Some(user) => format!("hello, {}", user.username()),
///         None => "hello, stranger".to_owned(),
///     }
/// }
/// ```
#[derive(Debug)]
pub struct CurrentUser<U> {
    username: Arc<str>,
    user: Arc<U>,
}

impl<U> CurrentUser<U> {
    pub(crate) fn new(username: Arc<str>, user: Arc<U>) -> Self {
        Self { username, user }
    }

    /// The username the token was issued to.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The application's user model, shared with the user store.
    pub fn shared(&self) -> &Arc<U> {
        &self.user
    }

    /// The application's user model, owned (cloned unless this is its last handle).
    pub fn into_inner(self) -> U
    where
        U: Clone,
    {
        Arc::unwrap_or_clone(self.user)
    }
}

impl<U> Clone for CurrentUser<U> {
    fn clone(&self) -> Self {
        Self {
            username: Arc::clone(&self.username),
            user: Arc::clone(&self.user),
        }
    }
}

impl<U> Deref for CurrentUser<U> {
    type Target = U;

    fn deref(&self) -> &U {
        &self.user
    }
}
