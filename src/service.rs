//! [`OAuth2Password`]: the service the layer produces.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::AUTHORIZATION;
use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use crate::config::Shared;
use crate::endpoint::{endpoint, Endpoint};
use crate::future::ResponseFuture;
use crate::guard::{decide_now, guard, insert, reject, Progress};
use crate::token::TokenStore;
use crate::user::UserStore;
use crate::BoxError;

/// Wraps a service with the OAuth2 password flow; made by
/// [`OAuth2PasswordLayer`](crate::OAuth2PasswordLayer).
///
/// Requests for the token URL are answered here, requests for public paths go
/// straight to the inner service, and every other request goes to the inner service
/// only with a valid bearer token of an active user, with
/// [`CurrentUser`](crate::CurrentUser) and [`Scopes`](crate::Scopes) in its
/// extensions. Every failure is a response, never an `Err`.
pub struct OAuth2Password<S, Us, Ts> {
    inner: S,
    shared: Arc<Shared<Us, Ts>>,
}

impl<S, Us, Ts> OAuth2Password<S, Us, Ts> {
    pub(crate) fn new(inner: S, shared: Arc<Shared<Us, Ts>>) -> Self {
        Self { inner, shared }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: Clone, Us, Ts> Clone for OAuth2Password<S, Us, Ts> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: fmt::Debug, Us, Ts> fmt::Debug for OAuth2Password<S, Us, Ts> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth2Password")
            .field("inner", &self.inner)
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl<S, Us, Ts, ReqBody, ResBody> Service<Request<ReqBody>> for OAuth2Password<S, Us, Ts>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Body + Send + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: Into<BoxError>,
    ResBody: Send + 'static,
    Us: UserStore,
    Ts: TokenStore,
{
    type Response = Response<crate::ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let config = &self.shared.config;
        let path = request.uri().path();
        if path == &*config.token_url {
            let shared = Arc::clone(&self.shared);
            return ResponseFuture::boxed(endpoint(shared, request, Endpoint::Token));
        }
        if config.revocation_url.as_deref() == Some(path) {
            let shared = Arc::clone(&self.shared);
            return ResponseFuture::boxed(endpoint(shared, request, Endpoint::Revocation));
        }
        // `request` is only taken apart for a predicate: moving it costs a copy.
        let public = if config.public.matches_path(path) {
            true
        } else if config.public.has_predicate() {
            let (parts, body) = request.into_parts();
            let public = config.public.matches_predicate(&parts);
            request = Request::from_parts(parts, body);
            public
        } else {
            false
        };
        // Public and without credentials: nothing to do.
        if public && !request.headers().contains_key(AUTHORIZATION) {
            return ResponseFuture::inner(self.inner.call(request));
        }
        let pending = match decide_now(&self.shared, &request, public) {
            Progress::Decided(Ok(authenticated)) => {
                insert(&self.shared, &mut request, authenticated);
                // The inner future is built straight into its variant: made first
                // and moved in after, it was copied once more per request.
                return match config.custom_scope_status() {
                    None => ResponseFuture::inner(self.inner.call(request)),
                    Some(status) => ResponseFuture::restated(self.inner.call(request), status),
                };
            }
            Progress::Decided(Err(_)) if public => {
                return ResponseFuture::inner(self.inner.call(request));
            }
            Progress::Decided(Err(rejection)) => {
                return ResponseFuture::rejected(reject(&self.shared, &request, rejection));
            }
            Progress::Pending(pending) => pending,
        };
        // A store must be awaited. `poll_ready` readied `self.inner`, not a clone of
        // it: take the ready one into the future and leave the clone for the next
        // `poll_ready`.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::boxed(guard(
            Arc::clone(&self.shared),
            inner,
            request,
            public,
            pending,
        ))
    }
}
