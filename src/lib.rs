//! OAuth2 *password* flow for any tower service: a token endpoint that checks a
//! username and password and issues a bearer token, and a guard that checks
//! `Authorization: Bearer …` on every other request and hands the authenticated,
//! active user to the handler.
//!
//! It is the production-grade version of FastAPI's "Simple OAuth2 with Password and
//! Bearer" tutorial: random 264-bit tokens that expire and can be revoked, Argon2id
//! hashes verified off the async workers, the same answer (and the same time) for an
//! unknown user and a wrong password, limits on every input.
//!
//! **For first-party clients only.** OAuth 2.1 and RFC 9700 deprecate the password
//! grant for third-party clients: a client that sees the user's password can misuse
//! it. Use this crate where the client is your own (your web frontend, CLI or mobile
//! app), as FastAPI's tutorial does; for third parties use the authorization-code
//! flow with PKCE.
//!
//! # Quick start
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::{BodyExt, Full};
//! use bytes::Bytes;
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_oauth2_password::{
//!      Argon2Hasher, CurrentUser, MemoryUserStore, OAuth2PasswordLayer, PasswordHasher,
//!      StoredUser,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Users: any type of yours; here a name. Passwords are stored as Argon2id hashes.
//! let hash = Argon2Hasher::new().hash("secret")?;
//! let users = MemoryUserStore::new().with_user("johndoe", StoredUser::new("John Doe".to_owned(), hash));
//!
//! // Your service: the guard has put the user in the request extensions.
//! async fn me(request: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
//!     let user = request.extensions().get::<CurrentUser<String>>().expect("set by the guard");
//!     Ok(Response::new(Full::from(format!("hello, {}", **user))))
//! }
//! let app = ServiceBuilder::new()
//!     .layer(OAuth2PasswordLayer::new(users))
//!     .service_fn(me);
//!
//! // Log in at POST /token with the password-grant form...
//! let login = Request::post("/token")
//!     .header("content-type", "application/x-www-form-urlencoded")
//!     .body(Full::from("username=johndoe&password=secret"))?;
//! let response = app.clone().oneshot(login).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! let json: serde_json::Value = serde_json::from_slice(&response.into_body().collect().await?.to_bytes())?;
//! let token = json["access_token"].as_str().unwrap();
//!
//! // ...and call anything else with the token.
//! let request = Request::get("/users/me")
//!     .header("authorization", format!("Bearer {token}"))
//!     .body(Full::default())?;
//! let response = app.clone().oneshot(request).await?;
//! assert_eq!(response.into_body().collect().await?.to_bytes(), "hello, John Doe");
//!
//! // Without a token: 401.
//! let response = app.oneshot(Request::get("/users/me").body(Full::default())?).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! # Ok(())
//! # }
//! ```
//!
//! Wrap the *whole* service (for axum, the whole `Router` with `Router::layer`, not
//! `route_layer`, and not inside a nested router): the layer must see the token URL,
//! and it matches paths as they arrive.
//!
//! # The guide
//!
//! The [`guide`] module holds the rest, a page per task, every snippet a compiled
//! doc test: [getting started](guide::getting_started), [axum](guide::axum),
//! [tonic](guide::tonic), [scopes](guide::scopes),
//! [refresh tokens and logout](guide::refresh_and_logout), [JWTs](guide::jwt),
//! [Redis and several replicas](guide::redis), [users in SQL](guide::sql_users),
//! [facing the internet](guide::facing_the_internet) (throttle, proxies, limits,
//! defaults), [interactive docs](guide::interactive_docs),
//! [testing your service](guide::testing), [writing your own store](guide::own_store),
//! [the wire contract](guide::wire_contract) (every request and its answer) and
//! [performance](guide::performance).
//!
//! # Stacks
//!
//! - **hyper**: wrap your service and serve it, with the connection's address as a
//!   [`PeerAddr`](endpoint::PeerAddr) for the login throttle (`examples/tutorial.rs`).
//! - **axum** (feature `axum`): [`CurrentUser`], `Option<CurrentUser>` and
//!   [`Scopes`](scope::Scopes) are extractors; wrap the whole `Router` with `Router::layer` and serve it with
//!   `into_make_service_with_connect_info::<SocketAddr>()` (see the `axum` module).
//! - **tonic**: `Server::builder().layer(…)`; rejections become gRPC statuses and
//!   handlers read the user from `request.extensions()` (`examples/grpc.rs`).
//! - **OpenAPI / Swagger UI** (feature `utoipa`): `openapi::PasswordFlowDocs` adds
//!   the layer's security scheme, token endpoint and guarded operations to a utoipa
//!   document, for a working "Authorize" button (`examples/docs.rs`).
//!
//! # Modules
//!
//! One concept per module, in the order a request meets them; each public item has
//! one path (the root re-exports only what the quick start above names):
//!
//! - [`layer`]: [`OAuth2PasswordLayer`], its [`Builder`](layer::Builder) and defaults,
//!   and the service it makes.
//! - [`endpoint`]: the token and revocation URLs — the form, the
//!   [`LoginPolicy`](endpoint::LoginPolicy) and its default
//!   [`LoginThrottle`](endpoint::LoginThrottle), the client's address
//!   ([`PeerAddr`](endpoint::PeerAddr), [`TrustedProxies`](endpoint::TrustedProxies)),
//!   and [`TokenEndpoint`](endpoint::TokenEndpoint) to mount them as a route.
//! - [`guard`]: everything else — bearer tokens, public paths, scope rules;
//!   [`GuardLayer`](guard::GuardLayer) for some routes only,
//!   [`RequireScopesLayer`](guard::RequireScopesLayer).
//! - [`http`]: the response body and future the layer answers with.
//! - [`token`]: the [`TokenStore`](token::TokenStore) and
//!   [`RefreshTokenStore`](token::RefreshTokenStore) traits and what they keep;
//!   stores in [`token::memory`], `token::redis` (feature `redis`) and `token::jwt`
//!   (feature `jwt`, with its `JtiDenylist`).
//! - [`user`]: the [`UserStore`](user::UserStore) trait, [`CurrentUser`], and stores
//!   in [`user::memory`] and `user::sql` (feature `sqlx`).
//! - [`password`]: [`PasswordHasher`] and [`Argon2Hasher`].
//! - `redis` (feature `redis`): the one `RedisConnection` every Redis part takes.
//! - [`scope`] and [`store`]: what every part speaks — [`Scopes`](scope::Scopes), a
//!   store's [`Lookup`](store::Lookup) (ready at once, or a future) and
//!   [`StoreError`](store::StoreError) (the layer answers 503).
//! - Integrations: `axum` (extractors), `openapi` (utoipa), `testing` (conformance
//!   suites, one test per rule with `token_store_tests!` and its kin, and a kit to
//!   test a service behind the layer).
//!
//! Tokens carry their user's security stamp, so a password
//! change, a scope taken away or a user removed and created again ends the user's
//! sessions on the next request.
//!
//! # Runtime
//!
//! The layer needs a tokio runtime with the time driver enabled (as `#[tokio::main]`
//! sets up), and starts one background clock thread at the first guarded request
//! (see [getting started](guide::getting_started#the-runtime)).
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]

pub mod audit;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
mod base64url;
mod clock;
mod config;
mod constant_time;
#[cfg(feature = "dpop")]
#[cfg_attr(docsrs, doc(cfg(feature = "dpop")))]
pub mod dpop;
pub mod endpoint;
pub mod guard;
pub mod guide;
pub mod http;
pub mod layer;
mod metrics;
#[cfg(feature = "utoipa")]
#[cfg_attr(docsrs, doc(cfg(feature = "utoipa")))]
pub mod openapi;
pub mod password;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;
pub mod scope;
mod service;
pub mod store;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
pub mod token;
pub mod user;

// What the quick start names; everything else has one path, in its module.
pub use crate::layer::OAuth2PasswordLayer;
pub use crate::password::{Argon2Hasher, PasswordHasher};
pub use crate::user::current::CurrentUser;
pub use crate::user::memory::{MemoryUserStore, StoredUser};

/// Compiles the README's Rust snippets as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
