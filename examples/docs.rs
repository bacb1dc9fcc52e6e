//! FastAPI's "See it in action", in Rust: the tutorial app on axum with its OpenAPI
//! document and Swagger UI. Click "Authorize", log in as `johndoe` / `secret`, run
//! "Try it out" on `GET /users/me`; as `alice` / `secret2`, see "Inactive user".
//!
//! ```text
//! cargo run --example docs --features utoipa    # then open http://127.0.0.1:8000/docs
//! ```
//!
//! | path | what |
//! |---|---|
//! | `GET /docs` | Swagger UI (public), served from the binary: no CDN, no download at build time |
//! | `GET /openapi.json` | the OpenAPI document (public) |
//! | `POST /token` | the layer's token endpoint |
//! | `GET /users/me` | the logged-in user |
//! | `GET /users/me/items` | their items; needs the scope `items` (tick it in "Authorize") |
//!
//! `ADDR=…` moves it (`127.0.0.1:0` picks a free port; the address is printed),
//! `LOG=off` silences the request log. Behind a proxy that serves the app under a
//! prefix and strips it, say which with `PATH_PREFIX=/api`: the document's
//! `servers` and `tokenUrl` then carry it, and Swagger UI (which finds the
//! document by a relative URL) works at `/api/docs`.

use std::sync::Arc;

use axum::extract::Path;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tower_oauth2_password::layer::Builder;
use tower_oauth2_password::openapi::PasswordFlowDocs;
use tower_oauth2_password::scope::ScopeRequirement;
use tower_oauth2_password::{CurrentUser, MemoryUserStore, OAuth2PasswordLayer};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{Modify, OpenApi, ToSchema};

mod common;
pub use common::{users, User};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "tower-oauth2-password tutorial",
        description = "FastAPI's \"Simple OAuth2 with Password and Bearer\" app, served by \
                       tower-oauth2-password. Users: johndoe / secret, and alice / secret2 \
                       (disabled)."
    ),
    paths(me, my_items)
)]
struct ApiDoc;

/// The logged-in user.
#[utoipa::path(
    get,
    path = "/users/me",
    responses((status = 200, description = "The logged-in user", body = User))
)]
async fn me(user: CurrentUser<User>) -> Json<User> {
    Json(user.into_inner())
}

#[derive(Serialize, ToSchema)]
struct Item {
    item_id: String,
    owner: String,
}

/// The logged-in user's items (the layer requires the scope `items`).
#[utoipa::path(
    get,
    path = "/users/me/items",
    responses((status = 200, description = "The user's items", body = [Item]))
)]
async fn my_items(user: CurrentUser<User>) -> Json<Vec<Item>> {
    Json(vec![Item {
        item_id: "Foo".to_owned(),
        owner: user.username().to_owned(),
    }])
}

// `User` is shared with the other examples, which do not use utoipa: its schema is
// written here rather than derived there.
impl utoipa::PartialSchema for User {
    fn schema() -> RefOr<Schema> {
        let string = || ObjectBuilder::new().schema_type(Type::String);
        ObjectBuilder::new()
            .property("username", string())
            .required("username")
            .property("email", string())
            .required("email")
            .property("full_name", string())
            .required("full_name")
            .property("disabled", ObjectBuilder::new().schema_type(Type::Boolean))
            .required("disabled")
            .into()
    }
}

impl ToSchema for User {}

/// The tutorial's users and scopes; the docs are public; `items` guards the items.
pub fn layer_builder() -> Builder<MemoryUserStore<User>> {
    OAuth2PasswordLayer::builder(users())
        .scope("me", "Read information about the current user.")
        .scope("items", "Read items.")
        .require_scopes_on(
            Method::GET,
            "/users/me/items",
            ScopeRequirement::all(["items"]),
        )
        .public_path("/openapi.json")
        .public_prefix("/docs")
}

/// The app: the routes, the document and Swagger UI, with the layer around all of
/// it. `path_prefix` is where a proxy in front serves it (`""` for none).
pub fn app(layer: OAuth2PasswordLayer<MemoryUserStore<User>>, path_prefix: &str) -> Router {
    let mut openapi = ApiDoc::openapi();
    PasswordFlowDocs::new(&layer)
        .path_prefix(path_prefix)
        .modify(&mut openapi);
    let document = Json(openapi);
    // Relative to the page (`…/docs/`), so that it holds under any prefix.
    let swagger_ui = Arc::new(utoipa_swagger_ui::Config::new(["../openapi.json"]));
    Router::new()
        .route("/users/me", get(me))
        .route("/users/me/items", get(my_items))
        .route("/openapi.json", get(move || async move { document }))
        // Relative too: `/api/docs` becomes `/api/docs/`, not `/docs/`.
        .route("/docs", get(|| async { Redirect::to("docs/") }))
        .route(
            "/docs/",
            get({
                let config = Arc::clone(&swagger_ui);
                move || async move { swagger_ui_file("", config) }
            }),
        )
        .route(
            "/docs/{*file}",
            get(move |Path(file): Path<String>| async move { swagger_ui_file(&file, swagger_ui) }),
        )
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                Json(common::Detail {
                    detail: "Not Found",
                }),
            )
        })
        .layer(layer)
}

/// A file of Swagger UI, from the copy built into the binary.
fn swagger_ui_file(file: &str, config: Arc<utoipa_swagger_ui::Config<'static>>) -> Response {
    match utoipa_swagger_ui::serve(file, config) {
        Ok(Some(file)) => (
            [(header::CONTENT_TYPE, file.content_type)],
            file.bytes.into_owned(),
        )
            .into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

#[tokio::main]
async fn main() {
    common::init_logging();
    let (listener, _) = common::listen("127.0.0.1:8000").await;
    let path_prefix = std::env::var("PATH_PREFIX").unwrap_or_default();
    let addr = listener
        .local_addr()
        .expect("a bound listener has an address");
    // Printed whatever the log setting: scripts that start it on port 0 read it.
    println!("listening on http://{addr} (Swagger UI at /docs; Ctrl-C to stop)");
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    common::serve(
        listener,
        app(layer_builder().build(), &path_prefix),
        shutdown,
    )
    .await;
}
