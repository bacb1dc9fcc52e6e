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
//!     Argon2Hasher, CurrentUser, MemoryUserStore, OAuth2PasswordLayer, PasswordHasher, StoredUser,
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
//!   [`PeerAddr`] for the login throttle (`examples/tutorial.rs`).
//! - **axum** (feature `axum`): [`CurrentUser`], `Option<CurrentUser>` and [`Scopes`]
//!   are extractors; wrap the whole `Router` with `Router::layer` and serve it with
//!   `into_make_service_with_connect_info::<SocketAddr>()` (see the [`axum`] module).
//! - **tonic**: `Server::builder().layer(…)`; rejections become gRPC statuses and
//!   handlers read the user from `request.extensions()` (`examples/grpc.rs`).
//! - **OpenAPI / Swagger UI** (feature `utoipa`): `openapi::PasswordFlowDocs` adds
//!   the layer's security scheme, token endpoint and guarded operations to a utoipa
//!   document, for a working "Authorize" button (`examples/docs.rs`).
//!
//! # Extension points
//!
//! - [`UserStore`]: where users live ([`MemoryUserStore`] included): one lookup
//!   for the guard ([`Principal`], no password hash) and one for the login
//!   ([`Credentials`], with the canonical [`Subject`]).
//! - [`TokenStore`]: where access tokens live ([`MemoryTokenStore`] included;
//!   `RedisTokenStore` with the `redis` feature, `JwtTokenStore` with `jwt`).
//! - [`RefreshTokenStore`]: refresh-token families, rotated on every use
//!   ([`MemoryRefreshTokenStore`] included; `RedisTokenStore` with `redis`).
//! - [`PasswordHasher`]: how passwords are checked ([`Argon2Hasher`] included).
//! - `JtiDenylist` (feature `jwt`): where revoked JWTs are remembered
//!   (`MemoryJtiDenylist` included; `RedisTokenStore` with `redis`).
//! - [`LoginPolicy`]: reserves each attempt before any password hash is computed;
//!   the default, [`LoginThrottle`], refuses (429) a (username, address) pair, a
//!   username or a client address with too many failed attempts.
//!
//! The guard's lookups answer a [`Lookup`]: ready at once (no future allocated) or
//! a future to await. Tokens carry their user's security stamp, so a password
//! change, a scope taken away or a user removed and created again ends the user's
//! sessions on the next request. With the `testing` feature, the `testing` module
//! holds the conformance suites every store should pass (one test per rule with
//! `token_store_tests!` and its kin) and a kit to test a service behind the layer.
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

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
mod bearer;
mod body;
mod client_addr;
mod clock;
mod config;
mod endpoint;
mod error;
mod form;
mod future;
mod guard;
pub mod guide;
mod layer;
mod lookup;
#[cfg(feature = "utoipa")]
#[cfg_attr(docsrs, doc(cfg(feature = "utoipa")))]
pub mod openapi;
mod password;
mod policy;
mod public;
#[cfg(feature = "redis")]
mod redis;
mod require;
mod scope;
mod service;
mod subject;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
mod throttle;
pub mod token;
pub mod user;

pub use crate::body::ResponseBody;
pub use crate::client_addr::{InvalidProxy, PeerAddr, TrustedProxies};
pub use crate::error::StoreError;
pub use crate::future::ResponseFuture;
pub use crate::layer::{
    Builder, OAuth2PasswordLayer, DEFAULT_BODY_LIMIT, DEFAULT_BODY_TIMEOUT, DEFAULT_LOGIN_WAIT,
    DEFAULT_MAX_WAITING_LOGINS, DEFAULT_REFRESH_TOKEN_ABSOLUTE_LIFETIME,
    DEFAULT_REFRESH_TOKEN_LIFETIME, DEFAULT_TOKEN_LIFETIME, MAX_TOKEN_LIFETIME,
};
pub use crate::lookup::Lookup;
pub use crate::password::{
    Argon2Hasher, HashedPassword, PasswordError, PasswordHasher, Verification,
};
pub use crate::policy::{LoginAttempt, LoginDecision, LoginPolicy, RefreshAttempt};
pub use crate::require::{RequireScopes, RequireScopesLayer};
pub use crate::scope::{InsufficientScope, ScopeRequirement, Scopes};
pub use crate::service::{
    GuardLayer, OAuth2Password, TokenEndpoint, TokenEndpointBody, TokenEndpointFuture,
};
pub use crate::subject::Subject;
pub use crate::throttle::{
    LoginThrottle, DEFAULT_FAILURES_PER_ADDRESS, DEFAULT_FAILURES_PER_USERNAME,
    DEFAULT_FAILURES_PER_USERNAME_AND_ADDRESS, DEFAULT_THROTTLE_KEYS, DEFAULT_THROTTLE_WINDOW,
    DEFAULT_USERNAME_WINDOW,
};
pub use crate::token::{
    AccessToken, BearerToken, BoxRefreshTokenStore, BoxTokenStore, DynRefreshTokenStore,
    DynTokenStore, FamilyId, Grant, IssuedToken, MemoryRefreshTokenStore, MemoryTokenStore,
    RefreshLifetimes, RefreshToken, RefreshTokenStore, Revocation, Rotation, TokenStore,
    TokenTypeHint, DEFAULT_MAX_FAMILIES_PER_USER,
};
#[cfg(feature = "jwt")]
#[cfg_attr(docsrs, doc(cfg(feature = "jwt")))]
pub use crate::token::{
    BoxJtiDenylist, DynJtiDenylist, JtiDenylist, JwtConfigError, JwtKey, JwtTokenStore,
    JwtTokenStoreBuilder, MemoryJtiDenylist,
};
#[cfg(feature = "sqlx")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlx")))]
pub use crate::user::sql::{SqlUserStore, UsersTable};
pub use crate::user::{
    BoxUserStore, Credentials, CurrentUser, DynUserStore, MemoryUserStore, Principal, StoredUser,
    UserStore,
};

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use crate::redis::RedisConnection;
#[cfg(all(feature = "redis", feature = "jwt"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "redis", feature = "jwt"))))]
pub use crate::token::RedisJtiDenylist;
#[cfg(feature = "redis")]
pub use crate::token::RedisTokenStore;

/// Compiles the README's Rust snippets as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// The error type inner services' bodies may fail with.
type BoxError = Box<dyn std::error::Error + Send + Sync>;
