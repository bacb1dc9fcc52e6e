//! [`RequireScopesLayer`]: a per-route scope check.

use std::task::{Context, Poll};

use http::{Request, Response, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use crate::http::body::ResponseBody;
use crate::http::future::ResponseFuture;
use crate::http::rejection::{Messages, Protocol, Rejection};
use crate::scope::{ScopeRequirement, Scopes};

/// Layer that wraps a service in [`RequireScopes`]: a per-route scope check, for
/// routes behind [`OAuth2PasswordLayer`](crate::OAuth2PasswordLayer).
///
/// ```
/// use axum::{routing::get, Router};
/// use tower_oauth2_password::guard::RequireScopesLayer;
/// use tower_oauth2_password::{MemoryUserStore, OAuth2PasswordLayer};
///
/// let users = MemoryUserStore::<String>::new();
/// let app: Router = Router::new()
///     .route(
///         "/users/me/items",
///         get(|| async { "items" }).route_layer(RequireScopesLayer::all(["items"])),
///     )
///     .route("/status", get(|| async { "ok" }))
///     .layer(OAuth2PasswordLayer::new(users));
/// ```
///
/// It reads the [`Scopes`] the guard put in the request extensions, so it goes
/// *inside* the main layer (axum's `route_layer`, or around one tonic service), and
/// the main layer must declare its scopes
/// ([`Builder::scope`](crate::layer::Builder::scope)): without any, no scope is granted
/// and none is put in the extensions. A request without them (no main layer, no
/// declared scope, or a public path) gets 401 "Not authenticated"; one whose
/// token lacks a scope gets 403 `insufficient_scope` with
/// `WWW-Authenticate: Bearer error="insufficient_scope", scope="…"` (gRPC:
/// PERMISSION_DENIED).
#[derive(Debug, Clone)]
pub struct RequireScopesLayer {
    requirement: ScopeRequirement,
    messages: Messages,
}

impl RequireScopesLayer {
    /// Requires `requirement`.
    pub fn new(requirement: ScopeRequirement) -> Self {
        Self {
            requirement,
            messages: Messages::default(),
        }
    }

    /// Requires every one of `scopes`.
    pub fn all<I, S>(scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self::new(ScopeRequirement::all(scopes))
    }

    /// Requires at least one of `scopes`.
    pub fn any<I, S>(scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self::new(ScopeRequirement::any(scopes))
    }

    /// Answers a missing scope with `status` instead of 403; `401` reproduces
    /// FastAPI's scopes tutorial bug for bug.
    pub fn insufficient_scope_status(mut self, status: StatusCode) -> Self {
        self.messages.insufficient_scope_status = status;
        self
    }
}

impl<S> Layer<S> for RequireScopesLayer {
    type Service = RequireScopes<S>;

    fn layer(&self, inner: S) -> RequireScopes<S> {
        RequireScopes {
            inner,
            requirement: self.requirement.clone(),
            messages: self.messages.clone(),
        }
    }
}

/// Passes requests whose token has the required scopes to the inner service, and
/// answers the others itself. Made by [`RequireScopesLayer`].
#[derive(Debug, Clone)]
pub struct RequireScopes<S> {
    inner: S,
    requirement: ScopeRequirement,
    messages: Messages,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequireScopes<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let rejection = match request.extensions().get::<Scopes>() {
            Some(granted) if self.requirement.is_met_by(granted) => {
                return ResponseFuture::inner(self.inner.call(request));
            }
            Some(_) => Rejection::InsufficientScope(self.requirement.clone()),
            None => Rejection::MissingCredentials,
        };
        let protocol = Protocol::of(request.version(), request.headers());
        let response = rejection.into_response(&self.messages, protocol);
        ResponseFuture::rejected(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::Full;
    use tower::ServiceExt;

    async fn run(
        layer: RequireScopesLayer,
        granted: Option<&[&str]>,
        grpc: bool,
    ) -> Response<ResponseBody<Full<Bytes>>> {
        let service = layer.layer(tower::service_fn(|_request: Request<()>| async {
            Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from("inner"))))
        }));
        let mut request = Request::new(());
        if let Some(granted) = granted {
            request
                .extensions_mut()
                .insert(granted.iter().collect::<Scopes>());
        }
        if grpc {
            *request.version_mut() = http::Version::HTTP_2;
            request.headers_mut().insert(
                "content-type",
                http::HeaderValue::from_static("application/grpc+proto"),
            );
        }
        service.oneshot(request).await.unwrap()
    }

    #[tokio::test]
    async fn all_of_and_any_of() {
        let all = || RequireScopesLayer::all(["me", "items"]);
        assert_eq!(
            run(all(), Some(&["items", "me"]), false).await.status(),
            StatusCode::OK
        );
        let response = run(all(), Some(&["me"]), false).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Bearer error="insufficient_scope", scope="me items""#
        );
        let any = || RequireScopesLayer::any(["me", "items"]);
        assert_eq!(
            run(any(), Some(&["items"]), false).await.status(),
            StatusCode::OK
        );
        assert_eq!(
            run(any(), Some(&[]), false).await.status(),
            StatusCode::FORBIDDEN
        );
    }

    #[tokio::test]
    async fn without_the_main_layer_it_is_not_authenticated() {
        let response = run(RequireScopesLayer::all(["me"]), None, false).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
    }

    #[tokio::test]
    async fn grpc_gets_permission_denied() {
        let response = run(RequireScopesLayer::all(["me"]), Some(&[]), true).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["grpc-status"], "7");
        assert_eq!(response.headers()["grpc-message"], "Not enough permissions");
    }

    #[tokio::test]
    async fn grpc_content_type_over_http1_gets_json() {
        let layer = RequireScopesLayer::all(["me"]);
        let service = layer.layer(tower::service_fn(|_request: Request<()>| async {
            Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from("inner"))))
        }));
        let mut request = Request::new(());
        request.extensions_mut().insert(Scopes::empty());
        request.headers_mut().insert(
            "content-type",
            http::HeaderValue::from_static("application/grpc"),
        );
        let response = service.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert!(response.headers().get("grpc-status").is_none());
        assert_eq!(response.headers()["cache-control"], "no-store");
    }

    #[tokio::test]
    async fn fastapi_status_option() {
        let layer =
            RequireScopesLayer::all(["me"]).insufficient_scope_status(StatusCode::UNAUTHORIZED);
        assert_eq!(
            run(layer, Some(&[]), false).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
}
