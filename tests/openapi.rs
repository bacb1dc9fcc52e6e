//! The docs example over a real socket: its OpenAPI document says what the layer
//! does, and a client that follows the document (as Swagger UI does) gets what it
//! says; also through a real reverse proxy that serves the app under `/api` and
//! strips the prefix.

// `common` includes the tutorial example and this test includes another example;
// both bring the examples' shared module along.
#![allow(clippy::duplicate_mod)]

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use common::{Reply, Server};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{json, Value};
use tokio::net::TcpListener;

#[path = "../examples/docs.rs"]
#[allow(dead_code)]
mod docs_example;

/// The docs example on 127.0.0.1, told it is served under `path_prefix`.
async fn start(path_prefix: &str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = docs_example::app(docs_example::layer_builder().build(), path_prefix);
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// A reverse proxy that serves `upstream` under `prefix` and strips it, as nginx's
/// `location /api/ { proxy_pass http://upstream/; }` does; 404 elsewhere.
async fn start_proxy(prefix: &'static str, upstream: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http::<Incoming>();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let client = client.clone();
            let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
                let client = client.clone();
                async move {
                    let path_and_query = request.uri().path_and_query().map_or("/", |p| p.as_str());
                    let Some(rest) = path_and_query.strip_prefix(prefix) else {
                        return Ok::<_, Infallible>(not_found());
                    };
                    if !(rest.is_empty() || rest.starts_with('/') || rest.starts_with('?')) {
                        return Ok(not_found());
                    }
                    let rest = if rest.is_empty() { "/" } else { rest };
                    *request.uri_mut() = format!("http://{upstream}{rest}").parse().unwrap();
                    Ok(match client.request(request).await {
                        Ok(response) => response.map(|body| body.boxed()),
                        Err(_) => Response::builder()
                            .status(502)
                            .body(Full::default().map_err(|e| match e {}).boxed())
                            .unwrap(),
                    })
                }
            });
            tokio::spawn(
                auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .into_owned(),
            );
        }
    });
    addr
}

fn not_found() -> Response<http_body_util::combinators::BoxBody<Bytes, hyper::Error>> {
    Response::builder()
        .status(404)
        .body(Full::default().map_err(|e| match e {}).boxed())
        .unwrap()
}

/// `relative` resolved against the path `base`, as a browser does (RFC 3986 §5.2,
/// for the `name`, `dir/` and `../name` forms the example uses).
fn resolve(base: &str, relative: &str) -> String {
    let mut dir = &base[..=base.rfind('/').unwrap()];
    let mut relative = relative;
    while let Some(rest) = relative.strip_prefix("../") {
        let parent = dir[..dir.len() - 1].rfind('/').unwrap();
        dir = &dir[..=parent];
        relative = rest;
    }
    format!("{dir}{relative}")
}

/// `POST` the form to `path` as Swagger UI's "Authorize" does (default dialog).
async fn authorize(server: &Server, path: &str, form: &str) -> Reply {
    let request = Request::post(server.url(path))
        .header("accept", "application/json, text/plain, */*")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-requested-with", "XMLHttpRequest")
        .header("authorization", "Basic Og==")
        .body(Full::from(form.to_owned()))
        .unwrap();
    server.send(request).await
}

/// The document's answer for `status` of `method` `path`, asserting it exists.
#[track_caller]
fn documented<'a>(document: &'a Value, method: &str, path: &str, status: u16) -> &'a Value {
    let response = &document["paths"][path][method]["responses"][status.to_string()];
    assert!(
        response.is_object(),
        "{method} {path} answered {status}, which the document does not list"
    );
    response
}

/// Follows the document from Swagger UI's page at `docs` (a path on `server`):
/// finds the document, logs in at its `tokenUrl`, and calls its operations at
/// its server URL. Returns the document.
async fn walk(server: &Server, docs: &str) -> Value {
    // `/docs` redirects to the page by a relative URL.
    let redirect = server.get(docs, &[]).await;
    assert_eq!(redirect.status, 303);
    let page = resolve(docs, redirect.header("location").unwrap());
    assert_eq!(page, format!("{docs}/"));
    let html = server.get(&page, &[]).await;
    assert_eq!(html.status, 200);
    assert_eq!(html.header("content-type"), Some("text/html"));
    assert!(String::from_utf8_lossy(&html.body).contains("swagger-initializer.js"));
    let initializer = server
        .get(&resolve(&page, "swagger-initializer.js"), &[])
        .await;
    assert_eq!(initializer.status, 200);
    let initializer = String::from_utf8_lossy(&initializer.body).into_owned();
    let spec_url = initializer
        .split("\"url\": \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the initializer names the document");
    let reply = server.get(&resolve(&page, spec_url), &[]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let document = reply.json();

    let scheme = &document["components"]["securitySchemes"]["OAuth2PasswordBearer"];
    assert_eq!(scheme["type"], "oauth2");
    let flow = &scheme["flows"]["password"];
    assert_eq!(
        flow["scopes"],
        json!({"me": "Read information about the current user.", "items": "Read items."})
    );
    let server_url = document["servers"][0]["url"].as_str().unwrap_or("");
    let token_url = flow["tokenUrl"].as_str().unwrap();

    // Logged in with the scope `items` ticked.
    let reply = authorize(
        server,
        token_url,
        "grant_type=password&scope=items&username=johndoe&password=secret",
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    documented(&document, "post", "/token", 200);
    let token = reply.json()["access_token"].as_str().unwrap().to_owned();
    let me = server
        .get_as(&format!("{server_url}/users/me"), &token)
        .await;
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["username"], "johndoe");
    documented(&document, "get", "/users/me", 200);
    let items = server
        .get_as(&format!("{server_url}/users/me/items"), &token)
        .await;
    assert_eq!(items.status, 200);
    assert_eq!(
        items.json(),
        json!([{"item_id": "Foo", "owner": "johndoe"}])
    );

    // Without the scope: the 403 the document lists for this operation only.
    let reply = authorize(
        server,
        token_url,
        "grant_type=password&username=johndoe&password=secret",
    )
    .await;
    let unscoped = reply.json()["access_token"].as_str().unwrap().to_owned();
    let items = server
        .get_as(&format!("{server_url}/users/me/items"), &unscoped)
        .await;
    items.assert_error(403, "Not enough permissions", Some("insufficient_scope"));
    documented(&document, "get", "/users/me/items", 403);
    assert!(document["paths"]["/users/me"]["get"]["responses"]["403"].is_null());

    // Alice, logged out, a wrong password: each answer is one the document lists.
    let reply = authorize(
        server,
        token_url,
        "grant_type=password&username=alice&password=secret2",
    )
    .await;
    let alice = reply.json()["access_token"].as_str().unwrap().to_owned();
    let me = server
        .get_as(&format!("{server_url}/users/me"), &alice)
        .await;
    me.assert_error(400, "Inactive user", None);
    documented(&document, "get", "/users/me", 400);
    let me = server.get(&format!("{server_url}/users/me"), &[]).await;
    me.assert_error(401, "Not authenticated", None);
    let challenge = documented(&document, "get", "/users/me", 401);
    assert!(challenge["headers"]["WWW-Authenticate"].is_object());
    let reply = authorize(
        server,
        token_url,
        "grant_type=password&username=johndoe&password=nope",
    )
    .await;
    reply.assert_error(400, "Incorrect username or password", Some("invalid_grant"));
    documented(&document, "post", "/token", 400);
    document
}

#[tokio::test]
async fn the_document_says_what_the_layer_does() {
    let server = Server::client_for(start("").await);
    let document = walk(&server, "/docs").await;
    assert!(document.get("servers").is_none());
    let flow =
        &document["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]["password"];
    assert_eq!(flow["tokenUrl"], "/token");
    assert_eq!(
        document["paths"]["/users/me"]["get"]["security"],
        json!([{"OAuth2PasswordBearer": []}])
    );
    assert_eq!(
        document["paths"]["/users/me/items"]["get"]["security"],
        json!([{"OAuth2PasswordBearer": ["items"]}])
    );
    assert_eq!(document["paths"]["/token"]["post"]["security"], json!([{}]));
    // Swagger UI itself is served from the binary, without a token.
    let bundle = server.get("/docs/swagger-ui-bundle.js", &[]).await;
    assert_eq!(bundle.status, 200);
    assert!(bundle
        .header("content-type")
        .unwrap()
        .contains("javascript"));
    assert_eq!(server.get("/docs/nope.js", &[]).await.status, 404);
}

#[tokio::test]
async fn behind_a_proxy_that_strips_a_path_prefix() {
    let app = start("/api").await;
    let proxy = Server::client_for(start_proxy("/api", app).await);
    let document = walk(&proxy, "/api/docs").await;
    assert_eq!(document["servers"], json!([{"url": "/api"}]));
    let flow =
        &document["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]["password"];
    assert_eq!(flow["tokenUrl"], "/api/token");
    // Paths stay as the app sees them: the prefix is the server's.
    assert!(document["paths"]["/users/me"].is_object());
    // The proxy only serves the prefix.
    assert_eq!(proxy.get("/docs/", &[]).await.status, 404);
}

#[test]
fn resolve_is_a_browsers() {
    assert_eq!(resolve("/api/docs", "docs/"), "/api/docs/");
    assert_eq!(
        resolve("/api/docs/", "../openapi.json"),
        "/api/openapi.json"
    );
    assert_eq!(resolve("/docs/", "../openapi.json"), "/openapi.json");
    assert_eq!(resolve("/docs/", "a.js"), "/docs/a.js");
}
