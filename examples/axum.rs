//! The tutorial app on axum: `POST /token`, `GET /users/me`, a public `GET /health`,
//! and a public `GET /` that greets logged-in users by name.
//!
//! ```text
//! cargo run --release --features axum --example axum      # on 127.0.0.1:8000; ADDR=… to move it
//!
//! curl -s -X POST localhost:8000/token -d 'username=johndoe&password=secret'
//! curl -s localhost:8000/users/me -H "Authorization: Bearer $TOKEN"
//! curl -s localhost:8000/health
//! ```
//!
//! The layer wraps the *whole* `Router` (`Router::layer`): with `route_layer` it
//! would never see `POST /token`, which is not one of the router's routes, and inside
//! a nested router it would see paths with the prefix stripped.

use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tower_oauth2_password::layer::Builder;
use tower_oauth2_password::{CurrentUser, MemoryUserStore, OAuth2PasswordLayer};

mod common;
pub use common::{users, User};

/// Only reachable with a valid token of an active user.
async fn me(user: CurrentUser<User>) -> Json<User> {
    Json(user.into_inner())
}

/// Public, with or without a login.
async fn home(user: Option<CurrentUser<User>>) -> Json<Value> {
    let name = user.map_or_else(|| "stranger".to_owned(), |user| user.full_name.clone());
    Json(json!({ "message": format!("Hello, {name}") }))
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn not_found() -> (StatusCode, Json<Value>) {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "detail": "Not Found" })),
    )
}

/// The layer of this app: the tutorial's users, `/` and `/health` public.
pub fn layer_builder() -> Builder<MemoryUserStore<User>> {
    OAuth2PasswordLayer::builder(users())
        .public_path("/")
        .public_path("/health")
}

/// The app: routes first, then the layer around the whole router.
pub fn app(layer: OAuth2PasswordLayer<MemoryUserStore<User>>) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/users/me", get(me))
        .route("/health", get(health))
        .fallback(not_found)
        .layer(layer)
}

#[tokio::main]
async fn main() {
    let (listener, addr) = common::listen("127.0.0.1:8000").await;
    println!(
        "listening on http://{addr} (POST /token, GET /users/me, GET /health; Ctrl-C to stop)"
    );
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    // With the peer address as `ConnectInfo`: the login throttle counts per client.
    let app = app(layer_builder().build());
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    if let Err(error) = served {
        eprintln!("server error: {error}");
        std::process::exit(1);
    }
}
