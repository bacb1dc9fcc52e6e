//! axum extractors (feature `axum`): [`CurrentUser`], `Option<CurrentUser>` and
//! [`Scopes`], and [`InsufficientScope`] as a response.
//!
//! ```
//! use axum::{routing::get, Json, Router};
//! use tower_oauth2_password::{CurrentUser, MemoryUserStore, OAuth2PasswordLayer};
//!
//! async fn me(user: CurrentUser<String>) -> String {
//!     format!("hello, {}", *user)
//! }
//!
//! // Works with or without a login: on a public path, a valid token still
//! // identifies the caller.
//! async fn home(user: Option<CurrentUser<String>>) -> String {
//!     match user {
//!         Some(user) => format!("welcome back, {}", user.username()),
//!         None => "welcome, stranger".to_owned(),
//!     }
//! }
//!
//! let users = MemoryUserStore::<String>::new();
//! let app: Router = Router::new()
//!     .route("/", get(home))
//!     .route("/users/me", get(me))
//!     // The whole Router, so that the layer sees `POST /token` too.
//!     .layer(OAuth2PasswordLayer::builder(users).public_path("/").build());
//! ```
//!
//! Wrap the whole `Router` with [`Router::layer`], not `route_layer`: `route_layer`
//! only runs for routes that matched, and `/token` is not one of your routes. To
//! guard only some routes, or a router that is `nest`ed, mount the two halves
//! apart: [`OAuth2PasswordLayer::guard`](crate::OAuth2PasswordLayer::guard) under
//! `route_layer`, and
//! [`OAuth2PasswordLayer::token_endpoint`](crate::OAuth2PasswordLayer::token_endpoint)
//! with `route_service` at the token URL (and the revocation URL). Paths in the
//! builder are the ones the client sends, prefix of a `nest` included: the layer
//! reads axum's `OriginalUri`.
//!
//! [`Router::layer`]: https://docs.rs/axum/0.8/axum/struct.Router.html#method.layer

use std::any::type_name;
use std::convert::Infallible;
use std::fmt;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use http::request::Parts;
use http::StatusCode;

use crate::scope::{InsufficientScope, Scopes};
use crate::user::current::CurrentUser;

/// Rejection of the [`CurrentUser`] and [`Scopes`] extractors: the value is not in the
/// request extensions, so the route is not behind
/// [`OAuth2PasswordLayer`](crate::OAuth2PasswordLayer) (or is a public path).
///
/// It is a server bug, not a client error, so it answers 500 with a body that names
/// the missing layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissingAuthLayer {
    extension: &'static str,
    /// What else the extension needs, said after the common advice.
    hint: &'static str,
}

impl fmt::Display for MissingAuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is missing from the request extensions: wrap the whole Router with \
             OAuth2PasswordLayer (Router::layer, not route_layer) or the route with \
             its guard() (route_layer), and use Option<CurrentUser<_>> on public paths",
            self.extension
        )?;
        f.write_str(self.hint)
    }
}

impl std::error::Error for MissingAuthLayer {}

impl IntoResponse for MissingAuthLayer {
    fn into_response(self) -> Response {
        tracing::error!(%self, "authenticated route without the authentication layer");
        let body = serde_json::json!({ "detail": self.to_string() }).to_string();
        let mut response = Response::new(body.into());
        *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        // Like every answer the layer's side makes: never cached.
        response
            .headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// An extension the guard inserts, or the rejection that names the missing layer
/// (and adds `hint`).
fn set_by_the_layer<T: Clone + Send + Sync + 'static>(
    parts: &Parts,
    hint: &'static str,
) -> Result<T, MissingAuthLayer> {
    parts
        .extensions
        .get::<T>()
        .cloned()
        .ok_or(MissingAuthLayer {
            extension: type_name::<T>(),
            hint,
        })
}

/// The authenticated, active user: the guard put it there.
impl<S, U> FromRequestParts<S> for CurrentUser<U>
where
    S: Send + Sync,
    U: Send + Sync + 'static,
{
    type Rejection = MissingAuthLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        set_by_the_layer(parts, "")
    }
}

/// `Option<CurrentUser<U>>`: the user if the request carried a valid token, for
/// routes on public paths that work with or without a login.
impl<S, U> OptionalFromRequestParts<S> for CurrentUser<U>
where
    S: Send + Sync,
    U: Send + Sync + 'static,
{
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Self>().cloned())
    }
}

/// The scopes granted to the request's token (the layer must declare its scopes).
impl<S> FromRequestParts<S> for Scopes
where
    S: Send + Sync,
{
    type Rejection = MissingAuthLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        set_by_the_layer(parts, "; scopes must be declared with Builder::scope")
    }
}

/// 403 `insufficient_scope`, for handlers that check scopes themselves:
///
/// ```
/// use tower_oauth2_password::scope::{InsufficientScope, Scopes};
///
/// async fn items(scopes: Scopes) -> Result<&'static str, InsufficientScope> {
///     scopes.require_all(["items"])?;
///     Ok("the items")
/// }
/// # let _: axum::routing::MethodRouter = axum::routing::get(items);
/// ```
impl IntoResponse for InsufficientScope {
    fn into_response(self) -> Response {
        self.into_http::<http_body_util::Empty<bytes::Bytes>>()
            .map(axum_core::body::Body::new)
    }
}
