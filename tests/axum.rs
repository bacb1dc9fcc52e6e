//! The axum example over a real socket, and axum extractors in process.

// `common` includes the tutorial example and this test includes another example;
// both bring the examples' shared `seed` module along.
#![allow(clippy::duplicate_mod)]

mod common;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use common::{tutorial_builder, Server, Stores};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tokio::net::TcpListener;
use tower::ServiceExt;
use tower_oauth2_password::{
    CurrentUser, InsufficientScope, MemoryUserStore, OAuth2PasswordLayer, Scopes,
};

#[path = "../examples/axum.rs"]
#[allow(dead_code)]
mod axum_example;

async fn start() -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum_example::app(axum_example::layer_builder().build());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Server::client_for(addr)
}

#[tokio::test]
async fn tutorial_walkthrough_on_axum() {
    let server = start().await;
    let token = server.login("johndoe", "secret").await;
    let reply = server.me(&token).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["email"], "johndoe@example.com");
    assert_eq!(reply.json()["disabled"], false);

    let alice = server.login("alice", "secret2").await;
    server
        .me(&alice)
        .await
        .assert_error(400, "Inactive user", None);

    let reply = server.get("/users/me", &[]).await;
    reply.assert_error(401, "Not authenticated", None);
    assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    server.me("bogus").await.assert_error(
        401,
        "Invalid authentication credentials",
        Some("invalid_token"),
    );
    server
        .post_form("username=johndoe&password=nope")
        .await
        .assert_error(400, "Incorrect username or password", Some("invalid_grant"));
}

#[tokio::test]
async fn public_routes_with_and_without_a_login() {
    let server = start().await;
    let health = server.get("/health", &[]).await;
    assert_eq!(
        (health.status.as_u16(), health.json()["status"].as_str()),
        (200, Some("ok"))
    );

    let anonymous = server.get("/", &[]).await;
    assert_eq!(anonymous.json()["message"], "Hello, stranger");
    let token = server.login("johndoe", "secret").await;
    let known = server.get_as("/", &token).await;
    assert_eq!(known.json()["message"], "Hello, John Doe");
    // A bad token on a public page: still served, anonymously.
    let stale = server.get("/", &[b"Bearer stale"]).await;
    assert_eq!(
        (stale.status.as_u16(), stale.json()["message"].as_str()),
        (200, Some("Hello, stranger"))
    );
    // Unknown paths are guarded; with a token they reach the router's fallback.
    assert_eq!(server.get("/nowhere", &[]).await.status, 401);
    let reply = server.get_as("/nowhere", &token).await;
    reply.assert_error(404, "Not Found", None);
}

async fn body_text(response: axum::response::Response) -> (StatusCode, String) {
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

/// Logs in through `app` in process (`POST /token` with `form`); the access token.
async fn oneshot_login(app: &Router, form: &'static str) -> String {
    let login = Request::post("/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(form))
        .unwrap();
    let (status, body) = body_text(app.clone().oneshot(login).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    json["access_token"].as_str().unwrap().to_owned()
}

/// `GET path` through `app` in process with `token` as bearer.
async fn oneshot_get(app: Router, path: &str, token: &str) -> (StatusCode, String) {
    let request = Request::get(path)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    body_text(app.oneshot(request).await.unwrap()).await
}

#[tokio::test]
async fn oneshot_through_the_router() {
    let app = axum_example::app(axum_example::layer_builder().build());
    let request = Request::get("/users/me").body(Body::empty()).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let token = oneshot_login(&app, "username=johndoe&password=secret").await;
    let (status, body) = oneshot_get(app, "/users/me", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("\"full_name\":\"John Doe\""), "{body}");
}

#[tokio::test]
async fn extractor_without_the_layer_is_a_500_naming_the_layer() {
    let app: Router = Router::new()
        .route(
            "/me",
            get(|user: CurrentUser<String>| async move { user.username().to_owned() }),
        )
        .route(
            "/scopes",
            get(|scopes: Scopes| async move { scopes.to_string() }),
        )
        .route(
            "/maybe",
            get(|user: Option<CurrentUser<String>>| async move { format!("{}", user.is_some()) }),
        );
    for path in ["/me", "/scopes"] {
        let request = Request::get(path).body(Body::empty()).unwrap();
        let (status, body) = body_text(app.clone().oneshot(request).await.unwrap()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        let detail = json["detail"].as_str().unwrap();
        assert!(
            detail.contains("is missing from the request extensions"),
            "{detail}"
        );
        assert!(detail.contains("OAuth2PasswordLayer"), "{detail}");
    }
    let request = Request::get("/maybe").body(Body::empty()).unwrap();
    assert_eq!(
        body_text(app.oneshot(request).await.unwrap()).await.1,
        "false"
    );
}

#[tokio::test]
async fn route_layer_does_not_see_the_token_url() {
    // What the docs warn about: with `route_layer`, POST /token never reaches the
    // layer (it is not a route), so the router answers 404.
    let layer = OAuth2PasswordLayer::new(MemoryUserStore::<String>::new());
    let app: Router = Router::new()
        .route("/me", get(|| async { "me" }))
        .route_layer(layer);
    let login = Request::post("/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from("username=a&password=b"))
        .unwrap();
    assert_eq!(
        app.oneshot(login).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn scopes_extractor_needs_declared_scopes() {
    async fn app(
        layer: OAuth2PasswordLayer<MemoryUserStore<axum_example::User>>,
    ) -> (StatusCode, String) {
        let app: Router = Router::new()
            .route(
                "/scopes",
                get(|scopes: Scopes| async move { scopes.to_string() }),
            )
            .layer(layer);
        let token = oneshot_login(&app, "username=johndoe&password=secret&scope=me").await;
        oneshot_get(app, "/scopes", &token).await
    }
    let declared =
        axum_example::layer_builder().scope("me", "Read information about the current user.");
    assert_eq!(
        app(declared.build()).await,
        (StatusCode::OK, "me".to_owned())
    );
    let (status, body) = app(axum_example::layer_builder().build()).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        body.contains("scopes must be declared with Builder::scope"),
        "{body}"
    );
}

#[tokio::test]
async fn a_handlers_scope_refusal_takes_the_layers_status() {
    async fn items(scopes: Scopes) -> Result<&'static str, InsufficientScope> {
        scopes.require_all(["items"])?;
        Ok("the items")
    }
    for stores in [Stores::Ready, Stores::Awaited] {
        let layer = tutorial_builder(stores)
            .scope("me", "Read information about the current user.")
            .scope("items", "Read items.")
            .insufficient_scope_status(StatusCode::UNAUTHORIZED)
            .build();
        let app: Router = Router::new().route("/items", get(items)).layer(layer);
        let token = oneshot_login(&app, "username=johndoe&password=secret&scope=me").await;
        let request = Request::get("/items")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{stores:?}");
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Bearer error="insufficient_scope", scope="items""#
        );
        assert_eq!(response.headers()["cache-control"], "no-store");
    }
}
