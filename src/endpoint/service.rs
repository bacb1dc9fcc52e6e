//! [`TokenEndpoint`]: the token and revocation URLs as a service of their own.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use http::{Request, Response, StatusCode};
use http_body::Body;
use http_body_util::Empty;
use tower_service::Service;

use crate::config::Shared;
use crate::endpoint::token::{endpoint, Endpoint};
use crate::guard::paths::client_path;
use crate::http::body::BoxError;
use crate::http::body::ResponseBody;
use crate::token::store::TokenStore;
use crate::user::store::UserStore;

/// The token endpoint of an [`OAuth2PasswordLayer`](crate::OAuth2PasswordLayer)
/// as a service of its own, for apps that mount it as a route (axum's
/// `route_service`); made by
/// [`OAuth2PasswordLayer::token_endpoint`](crate::OAuth2PasswordLayer::token_endpoint).
///
/// It answers the layer's token URL and revocation URL exactly as the layer does,
/// so mount it at both ([`token_url`](crate::OAuth2PasswordLayer::token_url),
/// [`revocation_url`](crate::OAuth2PasswordLayer::revocation_url)), and at the
/// [`introspection_url`](crate::OAuth2PasswordLayer::introspection_url),
/// [`metadata_url`](crate::OAuth2PasswordLayer::metadata_url) and
/// [`jwks_url`](crate::OAuth2PasswordLayer::jwks_url) when they are served, as the client
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
pub type TokenEndpointBody = ResponseBody<Empty<Bytes>>;

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
                    "TokenEndpoint mounted at a path that is not one of the layer's URLs \
                     (token, revocation, introspection, metadata or JWKS URL)"
                );
                Box::pin(std::future::ready(Ok(not_found())))
            }
        }
    }
}

/// FastAPI's 404, uncacheable like every answer of the endpoint.
fn not_found() -> Response<TokenEndpointBody> {
    let mut response = Response::new(ResponseBody::full(Bytes::from_static(
        br#"{"detail":"Not Found"}"#,
    )));
    *response.status_mut() = StatusCode::NOT_FOUND;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
