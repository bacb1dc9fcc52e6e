//! FastAPI's "OAuth2 scopes" tutorial, on axum, done properly: the token endpoint
//! grants only the scopes a user may have, and a missing scope is a 403
//! `insufficient_scope` that names the scopes needed.
//!
//! ```text
//! cargo run --release --features axum --example scopes    # on 127.0.0.1:8000; ADDR=… to move it
//!
//! curl -s -X POST localhost:8000/token -d 'username=johndoe&password=secret&scope=me items'
//! curl -s localhost:8000/users/me/items -H "Authorization: Bearer $TOKEN"
//! ```
//!
//! | route | needs |
//! |---|---|
//! | `GET /users/me` | scope `me` (a `RequireScopesLayer` on the route) |
//! | `GET /users/me/items` | scope `items` (checked in the handler, the extractor form) |
//! | `GET /status` | a valid token, no scope |

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tower_oauth2_password::guard::RequireScopesLayer;
use tower_oauth2_password::layer::Builder;
use tower_oauth2_password::scope::{InsufficientScope, Scopes};
use tower_oauth2_password::{CurrentUser, MemoryUserStore, OAuth2PasswordLayer};

mod common;
pub use common::{users, User};

async fn me(user: CurrentUser<User>) -> Json<User> {
    Json(user.into_inner())
}

async fn my_items(
    user: CurrentUser<User>,
    scopes: Scopes,
) -> Result<Json<Value>, InsufficientScope> {
    scopes.require_all(["items"])?;
    Ok(Json(
        json!([{ "item_id": "Foo", "owner": user.username() }]),
    ))
}

async fn status() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// The tutorial's users and its two scopes.
pub fn layer_builder() -> Builder<MemoryUserStore<User>> {
    OAuth2PasswordLayer::builder(users())
        .scope("me", "Read information about the current user.")
        .scope("items", "Read items.")
}

/// The routes, with the layer around the whole router.
pub fn app(layer: OAuth2PasswordLayer<MemoryUserStore<User>>) -> Router {
    Router::new()
        .route(
            "/users/me",
            get(me).route_layer(RequireScopesLayer::all(["me"])),
        )
        .route("/users/me/items", get(my_items))
        .route("/status", get(status))
        .layer(layer)
}

#[tokio::main]
async fn main() {
    let (listener, addr) = common::listen("127.0.0.1:8000").await;
    let layer = layer_builder().build();
    for (scope, description) in layer.scopes() {
        println!("scope {scope:>5}: {description}");
    }
    println!("listening on http://{addr}; Ctrl-C to stop");
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    if let Err(error) = axum::serve(listener, app(layer))
        .with_graceful_shutdown(shutdown)
        .await
    {
        eprintln!("server error: {error}");
        std::process::exit(1);
    }
}
