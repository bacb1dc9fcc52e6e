//! [`OAuth2Password`]: the service the layer produces; [`GuardLayer`] and
//! [`TokenEndpoint`]: its two halves, for apps that mount them apart.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE};
use http::{Request, Response, StatusCode};
use http_body::Body;
use http_body_util::Empty;
use tower_layer::Layer;
use tower_service::Service;

use crate::config::Shared;
use crate::endpoint::{endpoint, Endpoint};
use crate::future::ResponseFuture;
use crate::guard::{client_path, decide_now, guard, insert, reject, Progress};
use crate::token::TokenStore;
use crate::user::UserStore;
use crate::BoxError;

/// Wraps a service with the OAuth2 password flow; made by
/// [`OAuth2PasswordLayer`](crate::OAuth2PasswordLayer) (token endpoint and guard)
/// and by [`GuardLayer`] (the guard alone).
///
/// Requests for the token URL are answered here (not behind a [`GuardLayer`]),
/// requests for public paths go straight to the inner service, and every other
/// request goes to the inner service only with a valid bearer token of an active
/// user, with [`CurrentUser`](crate::CurrentUser) and [`Scopes`](crate::Scopes) in
/// its extensions. Every failure is a response, never an `Err`.
///
/// Paths (the token URL, public paths, scope rules) are matched as the client sent
/// them: under feature `axum`, axum's `OriginalUri` when a `nest` stripped a
/// prefix, else the request's URI.
pub struct OAuth2Password<S, Us, Ts> {
    inner: S,
    shared: Arc<Shared<Us, Ts>>,
    /// Whether the token and revocation URLs are answered here.
    endpoints: bool,
}

impl<S, Us, Ts> OAuth2Password<S, Us, Ts> {
    pub(crate) fn new(inner: S, shared: Arc<Shared<Us, Ts>>, endpoints: bool) -> Self {
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
    type Response = Response<crate::ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let config = &self.shared.config;
        let path = client_path(&request);
        if self.endpoints {
            if let Some(which) = Endpoint::at(config, path) {
                let shared = Arc::clone(&self.shared);
                return ResponseFuture::boxed(endpoint(shared, request, which));
            }
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

/// The guard of an [`OAuth2PasswordLayer`](crate::OAuth2PasswordLayer) without its
/// token endpoint; made by
/// [`OAuth2PasswordLayer::guard`](crate::OAuth2PasswordLayer::guard).
///
/// It wraps services in an [`OAuth2Password`] that never answers the token or
/// revocation URL itself, so it can wrap only some routes: axum's `route_layer`, a
/// router that is `nest`ed. Public paths and scope rules are matched on the path
/// the client sent (axum's `OriginalUri` inside a `nest`). Serve the token URL
/// with [`TokenEndpoint`].
pub struct GuardLayer<Us, Ts> {
    shared: Arc<Shared<Us, Ts>>,
}

impl<Us, Ts> GuardLayer<Us, Ts> {
    pub(crate) fn new(shared: Arc<Shared<Us, Ts>>) -> Self {
        Self { shared }
    }
}

impl<Us, Ts> Clone for GuardLayer<Us, Ts> {
    fn clone(&self) -> Self {
        Self::new(Arc::clone(&self.shared))
    }
}

impl<Us, Ts> fmt::Debug for GuardLayer<Us, Ts> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardLayer")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl<S, Us, Ts> Layer<S> for GuardLayer<Us, Ts> {
    type Service = OAuth2Password<S, Us, Ts>;

    fn layer(&self, inner: S) -> Self::Service {
        OAuth2Password::new(inner, Arc::clone(&self.shared), false)
    }
}

/// The token endpoint of an [`OAuth2PasswordLayer`](crate::OAuth2PasswordLayer)
/// as a service of its own, for apps that mount it as a route (axum's
/// `route_service`); made by
/// [`OAuth2PasswordLayer::token_endpoint`](crate::OAuth2PasswordLayer::token_endpoint).
///
/// It answers the layer's token URL and revocation URL exactly as the layer does,
/// so mount it at both ([`token_url`](crate::OAuth2PasswordLayer::token_url),
/// [`revocation_url`](crate::OAuth2PasswordLayer::revocation_url)), as the client
/// sees them: inside a `nest`, the paths include the prefix. Any other path is a
/// 404 (and an error in the logs: the service is mounted where the layer's
/// configuration does not say).
pub struct TokenEndpoint<Us, Ts> {
    shared: Arc<Shared<Us, Ts>>,
}

impl<Us, Ts> TokenEndpoint<Us, Ts> {
    pub(crate) fn new(shared: Arc<Shared<Us, Ts>>) -> Self {
        Self { shared }
    }
}

impl<Us, Ts> Clone for TokenEndpoint<Us, Ts> {
    fn clone(&self) -> Self {
        Self::new(Arc::clone(&self.shared))
    }
}

impl<Us, Ts> fmt::Debug for TokenEndpoint<Us, Ts> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenEndpoint")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

/// The response body of a [`TokenEndpoint`]: always one the layer wrote.
pub type TokenEndpointBody = crate::ResponseBody<Empty<Bytes>>;

/// The response future of a [`TokenEndpoint`].
pub type TokenEndpointFuture =
    Pin<Box<dyn Future<Output = Result<Response<TokenEndpointBody>, Infallible>> + Send>>;

impl<Us, Ts, ReqBody> Service<Request<ReqBody>> for TokenEndpoint<Us, Ts>
where
    ReqBody: Body + Send + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: Into<BoxError>,
    Us: UserStore,
    Ts: TokenStore,
{
    type Response = Response<TokenEndpointBody>;
    type Error = Infallible;
    type Future = TokenEndpointFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        match Endpoint::at(&self.shared.config, client_path(&request)) {
            Some(which) => Box::pin(endpoint(Arc::clone(&self.shared), request, which)),
            None => {
                tracing::error!(
                    "TokenEndpoint mounted at a path that is neither the layer's token URL \
                     nor its revocation URL"
                );
                Box::pin(std::future::ready(Ok(not_found())))
            }
        }
    }
}

/// FastAPI's 404, uncacheable like every answer of the endpoint.
fn not_found() -> Response<TokenEndpointBody> {
    let mut response = Response::new(crate::ResponseBody::full(Bytes::from_static(
        br#"{"detail":"Not Found"}"#,
    )));
    *response.status_mut() = StatusCode::NOT_FOUND;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
