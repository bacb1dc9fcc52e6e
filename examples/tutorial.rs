//! FastAPI's "Simple OAuth2 with Password and Bearer" tutorial app, on hyper.
//!
//! ```text
//! cargo run --release --example tutorial   # on 127.0.0.1:8000; ADDR=… to move it, LOG=off for silence
//!
//! curl -s -X POST localhost:8000/token -d 'username=johndoe&password=secret'
//! curl -s localhost:8000/users/me -H "Authorization: Bearer $TOKEN"
//! curl -s -X POST localhost:8000/revoke -d "token=$TOKEN"          # log out
//! ```
//!
//! The token store comes from the environment (see `examples/common/stores.rs`):
//! `TOKEN_STORE=memory` (default) or `redis` (`REDIS_URL`, or a cluster's seed nodes in
//! `REDIS_CLUSTER_URLS=redis://h1:p1,…`, which wins; `REDIS_PREFIX`; build
//! with `--features redis`), and `REFRESH_TOKENS=1` adds refresh tokens
//! (`grant_type=refresh_token&refresh_token=…` at `/token`; in Redis they need
//! `REFRESH_SECRET`, at least 32 bytes, the same on every replica). Two processes on one
//! Redis (`ADDR=127.0.0.1:8001` for the second) accept each other's tokens.
//!
//! `GET /.well-known/oauth-authorization-server` describes the server (RFC 8414):
//! its issuer is `ISSUER` when that is an `http(s)://` URL (set it to the URL
//! clients use, the same on every replica), else `http://` and the listening
//! address. With `TOKEN_STORE=jwt JWT_ALG=EdDSA` (`--features jwt`; the key's
//! 32-byte seed in `JWT_ED25519_SEED`, base64url, else one made at start),
//! `GET /.well-known/jwks.json` serves the public key that verifies the tokens.
//!
//! `METRICS_ADDR=127.0.0.1:9100` serves the layer's metrics in Prometheus text
//! format at `http://127.0.0.1:9100/metrics` (build with `--features metrics`);
//! `AUDIT_LOG=audit.jsonl` (or `-`) writes every audit event (logins, throttling,
//! refresh-token reuse, revocations) as a JSON line instead of a log line.
//!
//! `DPOP=allowed` (build with `--features dpop`) honours DPoP proofs (RFC 9449):
//! a login with a `DPoP` header gets a token bound to the proof's key
//! (`"token_type": "DPoP"`), used as `Authorization: DPoP …` with a fresh proof
//! per request, while bearer tokens keep working; `DPOP=required` makes every
//! token DPoP-bound. Unset, DPoP is off. Proofs are remembered (so that each is
//! used once) in Redis when the token store uses Redis, else in memory.
//! `DPOP_PUBLIC_URL=https://api.example.com` is the URL proofs must name
//! (default: the scheme and `Host` of each request).
//!
//! Users: `johndoe` / `secret` (active) and `alice` / `secret2` (disabled: she can
//! log in, but `/users/me` answers 400 "Inactive user"). Passwords are stored as
//! Argon2id hashes; one log line per request, never a password or a token.

use std::convert::Infallible;
use std::future::Future;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_oauth2_password::layer::Builder;
use tower_oauth2_password::token::TokenStore;
use tower_oauth2_password::user::UserStore;
use tower_oauth2_password::{CurrentUser, MemoryUserStore, OAuth2PasswordLayer};

mod common;
pub use common::{users, User};

/// The tutorial's layer configuration (tests shorten lifetimes through it).
pub fn layer_builder() -> Builder<MemoryUserStore<User>> {
    OAuth2PasswordLayer::builder(users())
}

/// The app's routes, behind the layer: `GET /users/me`, and 404 for the rest.
async fn handle(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let response = match (request.method(), request.uri().path()) {
        (&Method::GET, "/users/me") => match request.extensions().get::<CurrentUser<User>>() {
            Some(user) => common::json(StatusCode::OK, &**user),
            // Only reachable if the layer were missing: fail closed.
            None => common::json(
                StatusCode::UNAUTHORIZED,
                &common::Detail {
                    detail: "Not authenticated",
                },
            ),
        },
        (_, "/users/me") => common::json(
            StatusCode::METHOD_NOT_ALLOWED,
            &common::Detail {
                detail: "Method Not Allowed",
            },
        ),
        _ => common::json(
            StatusCode::NOT_FOUND,
            &common::Detail {
                detail: "Not Found",
            },
        ),
    };
    Ok(response)
}

/// Serves the app on `listener` until `shutdown` completes, then lets open
/// connections finish (up to 10 s).
pub async fn serve<Us, Ts>(
    listener: TcpListener,
    layer: OAuth2PasswordLayer<Us, Ts>,
    shutdown: impl Future<Output = ()>,
) where
    Us: UserStore<User = User>,
    Ts: TokenStore,
{
    let app = ServiceBuilder::new().layer(layer).service_fn(handle);
    common::serve(listener, app, shutdown).await;
}

#[tokio::main]
async fn main() {
    common::init_logging();
    // Before the layer is built: the guard registers its counters then.
    common::metrics_from_env();
    let stores = common::stores::from_env_or_exit().await;
    // Without the feature, `()`: `DPOP=` still exits with the line saying so.
    #[cfg_attr(not(feature = "dpop"), allow(clippy::let_unit_value))]
    let dpop = common::dpop::from_env_or_exit(&stores);
    let mut builder = stores.apply(layer_builder());
    #[cfg(feature = "dpop")]
    if let Some(dpop) = dpop {
        builder = builder.dpop(dpop);
    }
    #[cfg(not(feature = "dpop"))]
    let () = dpop;
    if let Some(clients) = common::introspect::from_env_or_exit() {
        builder = builder.introspection(clients);
    }
    if let Some(audit) = common::audit_log_from_env() {
        builder = builder.audit_sink(audit);
    }
    let (listener, addr) = common::listen("127.0.0.1:8000").await;
    let layer = builder.issuer(&issuer(addr)).build();
    tracing::info!(
        "listening on http://{addr} (POST /token, GET /users/me, POST /revoke; Ctrl-C to stop)"
    );
    tracing::info!(
        metadata = layer.metadata_url(),
        jwks = layer.jwks_url(),
        introspection = layer.introspection_url(),
        issuer = layer.issuer(),
        "published"
    );
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    serve(listener, layer, shutdown).await;
}

/// `ISSUER` if it is a URL the metadata can name (an `http(s)://` URL with a host
/// and no query, fragment or user information), else `http://` and `addr`. An
/// `ISSUER` that is no such URL (a `urn:`) still names the JWT store's tokens.
pub fn issuer(addr: std::net::SocketAddr) -> String {
    if let Ok(issuer) = std::env::var("ISSUER") {
        if common::usable_url(&issuer) {
            return issuer;
        }
        tracing::warn!(
            issuer,
            "ISSUER is not an http(s):// URL: the metadata names http://ADDR"
        );
    }
    format!("http://{addr}")
}
