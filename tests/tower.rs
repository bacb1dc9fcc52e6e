//! Tower citizenship: readiness with `Buffer` / `ConcurrencyLimit` inside, and
//! stores that fail (503, never a pass-through).

mod common;

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use common::{tutorial, Server};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::buffer::Buffer;
use tower::limit::ConcurrencyLimit;
use tower::{BoxError, Layer, Service, ServiceBuilder, ServiceExt};
use tower_oauth2_password::store::{Lookup, StoreError};
use tower_oauth2_password::token::memory::MemoryTokenStore;
use tower_oauth2_password::token::{
    BearerToken, FamilyId, Grant, IssuedToken, Revocation, TokenStore, TokenTypeHint,
};
use tower_oauth2_password::user::{Credentials, Principal, Subject, UserStore};
use tower_oauth2_password::{CurrentUser, MemoryUserStore, OAuth2PasswordLayer};

fn login_request() -> Request<Full<Bytes>> {
    Request::post("/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::from("username=johndoe&password=secret"))
        .unwrap()
}

fn me_request(token: &str) -> Request<Full<Bytes>> {
    Request::get("/users/me")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::default())
        .unwrap()
}

async fn handler(request: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let user = request.extensions().get::<CurrentUser<tutorial::User>>();
    let name = user.map_or("nobody".to_owned(), |u| u.username.clone());
    // Give the other requests a chance to pile up behind the limit.
    tokio::task::yield_now().await;
    Ok(Response::new(Full::from(name)))
}

/// Drives `n` concurrent guarded requests the way hyper does: `ready()` then `call()`
/// on the same service, spawning each response future.
async fn drive<S>(mut service: S, token: &str, n: usize)
where
    S: Service<
        Request<Full<Bytes>>,
        Response = Response<tower_oauth2_password::http::ResponseBody<Full<Bytes>>>,
    >,
    S::Error: std::fmt::Debug + Send + 'static,
    S::Future: Send + 'static,
{
    let mut responses = Vec::new();
    for _ in 0..n {
        let ready = service.ready().await.expect("ready");
        responses.push(tokio::spawn(ready.call(me_request(token))));
    }
    for response in responses {
        let response = response.await.unwrap().expect("response");
        assert_eq!(response.status(), StatusCode::OK);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "johndoe");
    }
}

async fn token_from<S>(service: S) -> String
where
    S: Service<
        Request<Full<Bytes>>,
        Response = Response<tower_oauth2_password::http::ResponseBody<Full<Bytes>>>,
    >,
    S::Error: std::fmt::Debug,
{
    let response = service.oneshot(login_request()).await.expect("login");
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    json["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn inner_service_behind_a_buffer() {
    // Buffer panics when called without a successful poll_ready: calling a clone that
    // was never made ready would show up here.
    let inner = Buffer::new(tower::service_fn(handler), 2);
    let service = ServiceBuilder::new()
        .layer(tutorial::layer_builder().build())
        .service(inner);
    let token = token_from(service.clone()).await;
    drive(service, &token, 64).await;
}

#[tokio::test]
async fn inner_service_behind_a_buffer_with_async_stores() {
    // Stores that must be awaited take the boxed path, which moves the readied
    // service into its future.
    let (tokens, _) = flaky(MemoryTokenStore::new());
    let inner = Buffer::new(tower::service_fn(handler), 2);
    let service = ServiceBuilder::new()
        .layer(tutorial::layer_builder().token_store(tokens).build())
        .service(inner);
    let token = token_from(service.clone()).await;
    drive(service, &token, 64).await;
}

#[tokio::test]
async fn inner_service_behind_a_concurrency_limit_with_async_stores() {
    let (users, _) = flaky(tutorial::users());
    let inner = ConcurrencyLimit::new(tower::service_fn(handler), 2);
    let service = ServiceBuilder::new()
        .layer(OAuth2PasswordLayer::builder(users).build())
        .service(inner);
    let token = token_from(service.clone()).await;
    drive(service, &token, 64).await;
}

#[tokio::test]
async fn inner_service_behind_a_concurrency_limit() {
    let inner = ConcurrencyLimit::new(tower::service_fn(handler), 2);
    let service = ServiceBuilder::new()
        .layer(tutorial::layer_builder().build())
        .service(inner);
    let token = token_from(service.clone()).await;
    drive(service, &token, 64).await;
}

/// A store whose backend can be switched off, like a database connection lost.
#[derive(Clone)]
struct Flaky<S> {
    inner: S,
    down: Arc<AtomicBool>,
}

impl<S> Flaky<S> {
    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::new("connection refused"))
        } else {
            Ok(())
        }
    }
}

/// Every lookup is awaited (the path network stores take), and fails while down.
impl<S> Flaky<S> {
    fn lookup<T: Send + 'static>(&self, lookup: Lookup<T>) -> Lookup<T> {
        let up = self.check();
        Lookup::pending(async move {
            up?;
            lookup.await
        })
    }
}

impl<S: UserStore> UserStore for Flaky<S> {
    type User = S::User;

    fn principal(&self, subject: &Subject) -> Lookup<Option<Principal<S::User>>> {
        self.lookup(self.inner.principal(subject))
    }

    async fn credentials(&self, username: &str) -> Result<Option<Credentials>, StoreError> {
        self.check()?;
        self.inner.credentials(username).await
    }
}

impl<S: TokenStore> TokenStore for Flaky<S> {
    async fn issue(&self, grant: Grant) -> Result<IssuedToken, StoreError> {
        self.check()?;
        self.inner.issue(grant).await
    }

    fn resolve(&self, token: BearerToken<'_>) -> Lookup<Option<Grant>> {
        self.lookup(self.inner.resolve(token))
    }

    async fn revoke(
        &self,
        token: BearerToken<'_>,
        hint: Option<TokenTypeHint>,
    ) -> Result<Revocation, StoreError> {
        self.check()?;
        self.inner.revoke(token, hint).await
    }

    async fn revoke_family(
        &self,
        family: &FamilyId,
        until: SystemTime,
    ) -> Result<Revocation, StoreError> {
        self.check()?;
        self.inner.revoke_family(family, until).await
    }
}

fn flaky<S>(inner: S) -> (Flaky<S>, Arc<AtomicBool>) {
    let down = Arc::new(AtomicBool::new(false));
    (
        Flaky {
            inner,
            down: down.clone(),
        },
        down,
    )
}

#[tokio::test]
async fn token_store_down_is_503_and_never_a_pass_through() {
    let (tokens, down) = flaky(MemoryTokenStore::new());
    let layer = tutorial::layer_builder().token_store(tokens).build();
    let server = Server::start_with(layer).await;
    let token = server.login("johndoe", "secret").await;
    down.store(true, Ordering::SeqCst);
    let reply = server.me(&token).await;
    reply.assert_error(
        503,
        "Service temporarily unavailable, try again later",
        Some("temporarily_unavailable"),
    );
    assert_eq!(reply.header("retry-after"), Some("1"));
    let reply = server.post_form("username=johndoe&password=secret").await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    down.store(false, Ordering::SeqCst);
    assert_eq!(
        server.me(&token).await.status,
        200,
        "recovers with the store"
    );
}

#[tokio::test]
async fn user_store_down_is_503_and_never_a_pass_through() {
    let (users, down) = flaky(tutorial::users());
    let layer = OAuth2PasswordLayer::builder(users).build();
    let server = Server::start_with(layer).await;
    let token = server.login("johndoe", "secret").await;
    down.store(true, Ordering::SeqCst);
    server.me(&token).await.assert_error(
        503,
        "Service temporarily unavailable, try again later",
        Some("temporarily_unavailable"),
    );
    assert_eq!(
        server
            .post_form("username=johndoe&password=secret")
            .await
            .status,
        503
    );
    down.store(false, Ordering::SeqCst);
    assert_eq!(server.me(&token).await.status, 200);
}

#[tokio::test]
async fn rejected_requests_never_reach_the_inner_service() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let inner = tower::service_fn(move |_request: Request<Full<Bytes>>| {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, BoxError>(Response::new(Full::<Bytes>::default())) }
    });
    let users = MemoryUserStore::<String>::new();
    let service = OAuth2PasswordLayer::new(users).layer(inner);
    for request in [
        Request::get("/users/me").body(Full::default()).unwrap(),
        me_request("forged"),
        me_request(&"A".repeat(44)),
        login_request(),
    ] {
        let response = service.clone().oneshot(request).await.unwrap();
        assert_ne!(response.status(), StatusCode::OK);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}
