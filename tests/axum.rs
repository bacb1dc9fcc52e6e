//! The axum example over a real socket, and axum extractors in process.

// `common` includes the tutorial example and this test includes another example;
// both bring the examples' shared `seed` module along.
#![allow(clippy::duplicate_mod)]

mod common;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use common::{tutorial_builder, Reply, Server, Stores};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tokio::net::TcpListener;
use tower::ServiceExt;
use tower_oauth2_password::layer::Builder;
use tower_oauth2_password::scope::{InsufficientScope, ScopeRequirement, Scopes};
use tower_oauth2_password::{CurrentUser, MemoryUserStore, OAuth2PasswordLayer};

#[path = "../examples/axum.rs"]
#[allow(dead_code)]
mod axum_example;

async fn start() -> Server {
    serve(axum_example::app(axum_example::layer_builder().build())).await
}

/// Serves `app` on a real socket.
async fn serve(app: Router) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
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

// Issue 18 item 10: the guard and the token endpoint mounted apart.

type ExampleLayer = OAuth2PasswordLayer<MemoryUserStore<axum_example::User>>;

/// The example's users, with every URL and path rule under `prefix` (as the
/// client sees them): `/health` public, `/admin` needs the `admin` scope.
fn split_builder(prefix: &str) -> Builder<MemoryUserStore<axum_example::User>> {
    OAuth2PasswordLayer::builder(axum_example::users())
        .token_url(format!("{prefix}/token"))
        .revocation_url(format!("{prefix}/revoke"))
        .public_path(&format!("{prefix}/health"))
        .require_scopes(&format!("{prefix}/admin"), ScopeRequirement::all(["admin"]))
}

async fn who(user: Option<CurrentUser<axum_example::User>>) -> String {
    user.map_or_else(|| "stranger".to_owned(), |user| user.email.clone())
}

/// The app's routes, all guarded by `guard` (`None`: by nothing, for the
/// all-in-one layer around them).
fn routes(guard: Option<&ExampleLayer>) -> Router {
    let routes = Router::new()
        .route("/users/me", get(who))
        .route("/admin", get(who))
        .route("/health", get(who));
    match guard {
        Some(layer) => routes.route_layer(layer.guard()),
        None => routes,
    }
}

/// The guard under `route_layer`, the endpoint under `route_service`.
fn split_app(layer: &ExampleLayer) -> Router {
    routes(Some(layer))
        .route_service("/token", layer.token_endpoint())
        .route_service("/revoke", layer.token_endpoint())
}

/// One request and its answer as the client saw it, minus what differs by the
/// second (`date`) or by the token (the token response's secrets).
fn seen(what: &str, reply: Reply) -> String {
    let mut headers: Vec<_> = reply
        .headers
        .iter()
        .filter(|(name, _)| *name != "date")
        .map(|(name, value)| format!("{name}: {}", value.to_str().unwrap_or("?")))
        .collect();
    headers.sort();
    let mut body = String::from_utf8_lossy(&reply.body).into_owned();
    if let Ok(serde_json::Value::Object(mut json)) = serde_json::from_slice(&reply.body) {
        if let Some(token) = json.get_mut("access_token") {
            *token = "(token)".into();
            body = serde_json::Value::Object(json).to_string();
        }
    }
    // The content-length of a token response varies with the token.
    headers.retain(|header| !(body.contains("(token)") && header.starts_with("content-length")));
    format!("{what} -> {} {headers:?} {body}", reply.status.as_u16())
}

/// Logs in, uses, is refused, revokes, and hits the endpoints' own errors, at
/// URLs under `prefix`; every answer as [`seen`] records it.
async fn login_guard_revoke(server: &Server, prefix: &str) -> Vec<String> {
    let url = |path: &str| server.url(&format!("{prefix}{path}"));
    let post = |path: &str, content_type: Option<&str>, body: &'static str| {
        let mut request = Request::post(url(path));
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request.body(Full::from(body)).unwrap()
    };
    let get = |path: &str, token: Option<&str>| {
        let mut request = Request::get(url(path));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        request.body(Full::<Bytes>::default()).unwrap()
    };
    let form = Some("application/x-www-form-urlencoded");
    let mut seen_all = Vec::new();
    let login = server
        .send(post("/token", form, "username=johndoe&password=secret"))
        .await;
    let token = login.json()["access_token"].as_str().unwrap().to_owned();
    seen_all.push(seen("login", login));
    let alice = server
        .send(post("/token", form, "username=alice&password=secret2"))
        .await;
    let alice = alice.json()["access_token"].as_str().unwrap().to_owned();
    for (what, request) in [
        ("me", get("/users/me", Some(&token))),
        ("me, no token", get("/users/me", None)),
        ("me, bogus token", get("/users/me", Some("bogus"))),
        ("me, inactive", get("/users/me", Some(&alice))),
        ("admin, no scope", get("/admin", Some(&token))),
        ("public, anonymous", get("/health", None)),
        ("public, with token", get("/health", Some(&token))),
        (
            "wrong password",
            post("/token", form, "username=johndoe&password=no"),
        ),
        ("json", post("/token", Some("application/json"), "{}")),
        ("empty token post", post("/token", None, "")),
        ("get token url", get("/token", None)),
        ("empty revoke", post("/revoke", None, "")),
        ("revoke, no token", post("/revoke", form, "")),
    ] {
        seen_all.push(seen(what, server.send(request).await));
    }
    let revoke = post("/revoke", form, "").map(|_| Full::from(format!("token={token}")));
    seen_all.push(seen("revoke", server.send(revoke).await));
    seen_all.push(seen(
        "me, revoked",
        server.send(get("/users/me", Some(&token))).await,
    ));
    seen_all
}

#[tokio::test]
async fn the_split_guard_and_endpoint_answer_as_the_whole_layer() {
    let whole = serve(routes(None).layer(split_builder("").build())).await;
    let expected = login_guard_revoke(&whole, "").await;
    // The script can fail: the answers are the contract's.
    for (answer, starts) in [
        (0, "login -> 200"),
        (1, "me -> 200"),
        (2, "me, no token -> 401"),
        (4, "me, inactive -> 400"),
        (5, "admin, no scope -> 403"),
        (6, "public, anonymous -> 200"),
        (10, "empty token post -> 400"),
        (11, "get token url -> 405"),
        (12, "empty revoke -> 400"),
        (14, "revoke -> 200"),
        (15, "me, revoked -> 401"),
    ] {
        assert!(expected[answer].starts_with(starts), "{}", expected[answer]);
    }
    assert!(
        expected[1].contains("johndoe@example.com"),
        "{}",
        expected[1]
    );
    assert!(expected[6].ends_with(" stranger"), "{}", expected[6]);
    assert!(
        expected[7].ends_with(" johndoe@example.com"),
        "{}",
        expected[7]
    );

    let layer = split_builder("").build();
    let split = serve(split_app(&layer)).await;
    assert_eq!(login_guard_revoke(&split, "").await, expected);
}

#[tokio::test]
async fn the_split_guard_and_endpoint_work_inside_nest() {
    let whole = serve(routes(None).layer(split_builder("").build())).await;
    let expected = login_guard_revoke(&whole, "").await;
    // Paths as the client sends them: the prefix is part of every rule.
    let layer = split_builder("/api").build();
    let app = Router::new()
        .nest("/api", split_app(&layer))
        .route("/health", get(|| async { "outside" }));
    let nested = serve(app).await;
    assert_eq!(login_guard_revoke(&nested, "/api").await, expected);
    // Outside the nest nothing is guarded, and the endpoint is not there.
    let outside = nested.get("/health", &[]).await;
    assert_eq!(
        (outside.status, &outside.body[..]),
        (StatusCode::OK, &b"outside"[..])
    );
    assert_eq!(
        nested
            .post_form("username=johndoe&password=secret")
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn the_token_endpoint_mounted_at_another_path_is_a_404() {
    let layer = split_builder("").build();
    let app = Router::new().route_service("/login", layer.token_endpoint());
    let server = serve(app).await;
    let reply = server
        .post(
            "/login",
            "application/x-www-form-urlencoded",
            b"username=johndoe&password=secret".to_vec(),
        )
        .await;
    reply.assert_error(404, "Not Found", None);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
}
