//! [`OAuth2Password`]: the service the layer produces, which sends each request
//! to the token endpoint or through the guard.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::AUTHORIZATION;
use http::{Request, Response, StatusCode};
use http_body::Body;
use tower_service::Service;

use crate::config::Shared;
use crate::endpoint::token::{endpoint, Endpoint, EndpointLengths};
use crate::guard::decide::{decide_now, guard, reject, Pending, Progress};
use crate::guard::paths::client_path;
use crate::http::body::BoxError;
use crate::http::future::ResponseFuture;
use crate::http::rejection::Rejection;
use crate::token::store::TokenStore;
use crate::user::store::UserStore;

/// Wraps a service with the OAuth2 password flow; made by
/// [`OAuth2PasswordLayer`](crate::OAuth2PasswordLayer) (token endpoint and guard)
/// and by [`GuardLayer`](crate::guard::GuardLayer) (the guard alone).
///
/// Requests for the token URL are answered here (not behind a [`GuardLayer`](crate::guard::GuardLayer)),
/// and so are those for the revocation, metadata and JWKS URLs when served;
/// requests for public paths go straight to the inner service, and every other
/// request goes to the inner service only with a valid bearer token of an active
/// user, with [`CurrentUser`](crate::CurrentUser) and [`Scopes`](crate::scope::Scopes) in
/// its extensions. Every failure is a response, never an `Err`.
///
/// Paths (the token URL, public paths, scope rules) are matched as the client sent
/// them: under feature `axum`, axum's `OriginalUri` when a `nest` stripped a
/// prefix, else the request's URI.
pub struct OAuth2Password<S, Us, Ts> {
    inner: S,
    shared: Arc<Shared<Us, Ts>>,
    /// The lengths of the URLs answered here (none behind a `GuardLayer`): most
    /// requests are ruled out by their path's length alone.
    endpoints: EndpointLengths,
}

impl<S, Us, Ts> OAuth2Password<S, Us, Ts> {
    pub(crate) fn new(inner: S, shared: Arc<Shared<Us, Ts>>, endpoints: bool) -> Self {
        let endpoints = if endpoints {
            EndpointLengths::of(&shared.config)
        } else {
            EndpointLengths::default()
        };
        Self {
            inner,
            shared,
            endpoints,
        }
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
            endpoints: self.endpoints,
        }
    }
}

impl<S: fmt::Debug, Us, Ts> fmt::Debug for OAuth2Password<S, Us, Ts> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth2Password")
            .field("inner", &self.inner)
            .field("config", &self.shared.config)
            .field("endpoints", &self.endpoints)
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
    type Response = Response<crate::http::body::ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let config = &self.shared.config;
        let path = client_path(&request);
        if self.endpoints.may_be(path) {
            if let Some(which) = Endpoint::at(config, path) {
                return self.endpoint(request, which);
            }
        }
        // Apps without public routes pay one test: the matching is out of line.
        let public = config.public.any()
            && (config.public.matches_path(path)
                || config.public.matches_predicate_in(&mut request));
        // Public and without credentials: nothing to do.
        let restate = if public && !request.headers().contains_key(AUTHORIZATION) {
            None
        } else {
            match decide_now(&self.shared, &mut request, public) {
                Progress::Decided(Ok(())) => config.custom_scope_status(),
                Progress::Decided(Err(_)) if public => None,
                Progress::Decided(Err(rejection)) => return self.rejected(&request, rejection),
                Progress::Pending(pending) => return self.awaited(request, public, pending),
            }
        };
        // One inner call on the path that lets a request through: each copy of it
        // inlined here is a copy of the inner future's construction.
        match restate {
            None => ResponseFuture::inner(self.inner.call(request)),
            Some(status) => self.restated(request, status),
        }
    }
}

/// The paths of [`OAuth2Password::call`] other than the one that lets a request
/// through at once, out of line (the rare ones cold): inlined, they spread that
/// path over a third more cache lines.
impl<S, Us, Ts> OAuth2Password<S, Us, Ts> {
    /// A request for one of the layer's own URLs.
    #[cold]
    #[inline(never)]
    fn endpoint<ReqBody, ResBody>(
        &self,
        request: Request<ReqBody>,
        which: Endpoint,
    ) -> ResponseFuture<S::Future, ResBody, S::Error>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
        S::Error: Send + 'static,
        ReqBody: Body + Send + 'static,
        ReqBody::Data: Send,
        ReqBody::Error: Into<BoxError>,
        ResBody: Send + 'static,
        Us: UserStore,
        Ts: TokenStore,
    {
        ResponseFuture::boxed(endpoint(Arc::clone(&self.shared), request, which))
    }

    /// A request the guard refused.
    #[cold]
    #[inline(never)]
    fn rejected<ReqBody, ResBody>(
        &self,
        request: &Request<ReqBody>,
        rejection: Rejection,
    ) -> ResponseFuture<S::Future, ResBody, S::Error>
    where
        S: Service<Request<ReqBody>>,
    {
        ResponseFuture::rejected(reject(&self.shared, request, rejection))
    }

    /// The inner service's future behind a layer with its own status for a
    /// missing scope.
    #[cold]
    #[inline(never)]
    fn restated<ReqBody, ResBody>(
        &mut self,
        request: Request<ReqBody>,
        status: StatusCode,
    ) -> ResponseFuture<S::Future, ResBody, S::Error>
    where
        S: Service<Request<ReqBody>>,
    {
        ResponseFuture::restated(self.inner.call(request), status)
    }

    /// A request whose token or user store must be awaited. `poll_ready` readied
    /// `self.inner`, not a clone of it: the ready one goes into the future and the
    /// clone stays for the next `poll_ready`.
    #[inline(never)]
    fn awaited<ReqBody, ResBody>(
        &mut self,
        request: Request<ReqBody>,
        public: bool,
        pending: Box<Pending<Us::User>>,
    ) -> ResponseFuture<S::Future, ResBody, S::Error>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Send + 'static,
        ReqBody: Send + 'static,
        ResBody: Send + 'static,
        Us: UserStore,
        Ts: TokenStore,
    {
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
