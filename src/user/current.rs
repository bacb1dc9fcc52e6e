//! [`CurrentUser`]: the authenticated user handlers receive.

use crate::user::subject::Subject;
use std::ops::Deref;
use std::sync::Arc;

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
    subject: Subject,
    user: Arc<U>,
}

impl<U> CurrentUser<U> {
    /// The user `subject`, with the application's model `user`: what the guard
    /// hands a handler. Public with the `testing` feature, to call a handler in a
    /// unit test without the layer.
    ///
    /// ```
    /// use tower_oauth2_password::CurrentUser;
    ///
    /// let mut request = http::Request::new(());
    /// request
    ///     .extensions_mut()
    ///     .insert(CurrentUser::new("ada", "Ada Lovelace".to_owned()));
    /// let user = request.extensions().get::<CurrentUser<String>>().unwrap();
    /// assert_eq!((user.username(), user.as_str()), ("ada", "Ada Lovelace"));
    /// ```
    #[cfg(feature = "testing")]
    pub fn new(subject: impl Into<Subject>, user: U) -> Self {
        Self::from_shared(subject.into(), Arc::new(user))
    }

    /// The same, with a model shared with the user store (as the guard builds
    /// it). Public with the `testing` feature.
    #[cfg(feature = "testing")]
    pub fn from_shared(subject: Subject, user: Arc<U>) -> Self {
        Self { subject, user }
    }

    #[cfg(not(feature = "testing"))]
    pub(crate) fn from_shared(subject: Subject, user: Arc<U>) -> Self {
        Self { subject, user }
    }

    /// The canonical username the token was issued to.
    pub fn username(&self) -> &str {
        &self.subject
    }

    /// The same, as a [`Subject`].
    pub fn subject(&self) -> &Subject {
        &self.subject
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
            subject: self.subject.clone(),
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
