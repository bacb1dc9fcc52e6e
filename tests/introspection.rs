//! Token introspection (RFC 7662) over a real socket: who may ask, what a live
//! token says, that everything else is exactly `{"active":false}`, the form's
//! limits, and a real OAuth client (Python authlib) reading the answers.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use tower_oauth2_password::endpoint::{ClientSecretHash, IntrospectionClients};
use tower_oauth2_password::token::memory::MemoryRefreshTokenStore;

use common::{tutorial, Reply, Server};

/// A secret as `openssl rand -base64 32` writes them: `+`, `/` and `=` included,
/// which HTTP Basic carries form-urlencoded.
const SECRET: &str = "q+3vY8xW0pL5nR2/Z7aB9cD4eF6gH1jKmN0pQ2rS4tU=";
const OTHER_SECRET: &str = "Zz9yXx8wWv7uUt6sSr5qQp4oOn3mMl2kKj1iIh0gGf=";

fn clients() -> IntrospectionClients {
    IntrospectionClients::new()
        .client("rs1", ClientSecretHash::of(SECRET).unwrap())
        .client("rs2", ClientSecretHash::of(OTHER_SECRET).unwrap())
}

/// The `Authorization` value of client `id` with `secret` (RFC 6749 §2.3.1).
fn basic(id: &str, secret: &str) -> String {
    let encode = |text: &str| {
        text.bytes()
            .map(|byte| match byte {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                    (byte as char).to_string()
                }
                _ => format!("%{byte:02X}"),
            })
            .collect::<String>()
    };
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", encode(id), encode(secret)))
    )
}

async fn start() -> Server {
    Server::start_with(tutorial::layer_builder().introspection(clients()).build()).await
}

/// `POST path` with a form body and, if given, an `Authorization` value.
async fn post(server: &Server, path: &str, authorization: Option<&str>, form: &str) -> Reply {
    let mut request =
        Request::post(server.url(path)).header("content-type", "application/x-www-form-urlencoded");
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    let request = request
        .body(Full::new(Bytes::from(form.to_owned())))
        .expect("request");
    server.send(request).await
}

/// Introspects `token` as client rs1.
async fn introspect(server: &Server, token: &str) -> Reply {
    let rs1 = basic("rs1", SECRET);
    post(server, "/introspect", Some(&rs1), &format!("token={token}")).await
}

#[track_caller]
fn assert_uncacheable_json(reply: &Reply) {
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.header("pragma"), Some("no-cache"));
}

#[track_caller]
fn assert_inactive(reply: &Reply) {
    assert_eq!(reply.status, StatusCode::OK, "body: {:?}", reply.body);
    assert_uncacheable_json(reply);
    assert_eq!(&reply.body[..], br#"{"active":false}"#);
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn a_live_token_is_described() {
    let server = start().await;
    let before = now();
    let token = server.login("johndoe", "secret").await;
    let reply = introspect(&server, &token).await;
    assert_eq!(reply.status, StatusCode::OK, "body: {:?}", reply.body);
    assert_uncacheable_json(&reply);
    let json = reply.json();
    assert_eq!(json["active"], true);
    assert_eq!(json["username"], "johndoe");
    assert_eq!(json["sub"], "johndoe");
    assert_eq!(json["token_type"], "Bearer");
    // No scopes are declared in the tutorial: none granted, none shown.
    assert!(json.get("scope").is_none(), "{json}");
    let (exp, iat) = (json["exp"].as_u64().unwrap(), json["iat"].as_u64().unwrap());
    assert_eq!(exp - iat, 30 * 60, "{json}");
    assert!(iat + 1 >= before && iat <= now(), "{json}");
    // Credentials as `curl -u` sends them, not form-urlencoded, are taken too.
    let raw = format!("Basic {}", STANDARD.encode(format!("rs1:{SECRET}")));
    let curl = post(
        &server,
        "/introspect",
        Some(&raw),
        &format!("token={token}"),
    )
    .await;
    assert_eq!(curl.body, reply.body);
    // The other client, and the hint, change nothing.
    let rs2 = basic("rs2", OTHER_SECRET);
    let form = format!("token={token}&token_type_hint=access_token");
    let other = post(&server, "/introspect", Some(&rs2), &form).await;
    assert_eq!(other.body, reply.body);
    server.stop().await;
}

#[tokio::test]
async fn granted_scopes_are_listed() {
    let layer = tutorial::layer_builder()
        .scope("me", "Read information about the current user")
        .scope("items", "Read items")
        .introspection(clients())
        .build();
    let server = Server::start_with(layer).await;
    let reply = server
        .post_form("username=johndoe&password=secret&scope=items me")
        .await;
    let token = reply.json()["access_token"].as_str().unwrap().to_owned();
    let json = introspect(&server, &token).await.json();
    assert_eq!(json["active"], true);
    assert_eq!(json["scope"], "items me", "{json}");
    server.stop().await;
}

#[tokio::test]
async fn strangers_get_one_identical_401() {
    let server = start().await;
    let token = server.login("johndoe", "secret").await;
    let form = format!("token={token}");
    let wrong_secret = basic("rs1", OTHER_SECRET);
    let unknown_client = basic("rs3", SECRET);
    let misencoded = format!("Basic {}", STANDARD.encode(format!("rs1:{SECRET}%")));
    let bearer = format!("Bearer {token}");
    let mut replies = Vec::new();
    for authorization in [
        None,
        Some(&*wrong_secret),
        Some(&*unknown_client),
        Some(&*misencoded),
        Some(&*bearer),
        Some("Basic !!!"),
    ] {
        replies.push(post(&server, "/introspect", authorization, &form).await);
    }
    let first = &replies[0];
    assert_eq!(first.status, StatusCode::UNAUTHORIZED);
    assert_uncacheable_json(first);
    assert_eq!(
        first.header("www-authenticate"),
        Some(r#"Basic realm="token introspection", charset="UTF-8""#)
    );
    assert_eq!(
        &first.body[..],
        br#"{"detail":"Invalid client credentials","error":"invalid_client"}"#
    );
    for (i, reply) in replies.iter().enumerate() {
        assert_eq!(reply.status, first.status, "case {i}");
        assert_eq!(reply.body, first.body, "case {i}");
        let mut headers = reply.headers.clone();
        let mut expected = first.headers.clone();
        headers.remove("date");
        expected.remove("date");
        assert_eq!(headers, expected, "case {i}");
    }
    // The token still works: asking about it as a stranger changed nothing.
    assert_eq!(server.me(&token).await.status, StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn anything_but_a_live_access_token_is_inactive() {
    let layer = tutorial::layer_builder()
        .refresh_tokens(MemoryRefreshTokenStore::new())
        .introspection(clients())
        .build();
    let server = Server::start_with(layer).await;
    // Unknown, malformed.
    assert_inactive(&introspect(&server, "unknown").await);
    assert_inactive(&introspect(&server, &"A".repeat(44)).await);
    // A refresh token, with or without the hint: inactive, and not used up.
    let (access, refresh) = server.login_with_refresh().await;
    assert_inactive(&introspect(&server, &refresh).await);
    let rs1 = basic("rs1", SECRET);
    let form = format!("token={refresh}&token_type_hint=refresh_token");
    let hinted = post(&server, "/introspect", Some(&rs1), &form).await;
    assert_inactive(&hinted);
    let (_, rotated) = server.refresh(&refresh).await.tokens();
    // Revoked (the logout ends the login: every token of it).
    assert_eq!(introspect(&server, &access).await.json()["active"], true);
    assert_eq!(server.revoke(&format!("token={rotated}")).await.status, 200);
    assert_inactive(&introspect(&server, &access).await);
    // A disabled user's token: the guard refuses it, so it is not active.
    let alice = server.login("alice", "secret2").await;
    assert_inactive(&introspect(&server, &alice).await);
    server.stop().await;
}

#[tokio::test]
async fn an_expired_token_is_inactive() {
    let layer = tutorial::layer_builder()
        .token_lifetime(Duration::from_secs(1))
        .introspection(clients())
        .build();
    let server = Server::start_with(layer).await;
    let token = server.login("johndoe", "secret").await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_inactive(&introspect(&server, &token).await);
    server.stop().await;
}

#[tokio::test]
async fn the_form_is_read_as_the_token_endpoint_reads_it() {
    let layer = tutorial::layer_builder()
        .body_limit(1024)
        .introspection(clients())
        .build();
    let server = Server::start_with(layer).await;
    let auth = basic("rs1", SECRET);
    let big = format!("token={}", "a".repeat(2000));
    let reply = post(&server, "/introspect", Some(&auth), &big).await;
    reply.assert_error(
        413,
        "Request body too large: the limit is 1024 bytes",
        Some("invalid_request"),
    );
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let reply = post(
        &server,
        "/introspect",
        Some(&auth),
        "token_type_hint=access_token",
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"], "invalid_request");
    let json = Request::post(server.url("/introspect"))
        .header("authorization", &auth)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(br#"{"token":"x"}"#)))
        .unwrap();
    assert_eq!(
        server.send(json).await.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    let get = Request::get(server.url("/introspect"))
        .header("authorization", &auth)
        .body(Full::default())
        .unwrap();
    let reply = server.send(get).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.header("allow"), Some("POST"));
    server.stop().await;
}

#[tokio::test]
async fn off_by_default_and_moved_by_the_builder() {
    // Without clients the path is the app's, guarded like any other.
    let server = Server::start().await;
    let reply = post(
        &server,
        "/introspect",
        Some(&basic("rs1", SECRET)),
        "token=x",
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    server.stop().await;
    let empty = tutorial::layer_builder()
        .introspection(IntrospectionClients::new())
        .build();
    assert_eq!(empty.introspection_url(), None);

    let layer = tutorial::layer_builder()
        .introspection_url("oauth/introspect")
        .introspection(clients())
        .build();
    assert_eq!(layer.introspection_url(), Some("/oauth/introspect"));
    let server = Server::start_with(layer).await;
    let token = server.login("johndoe", "secret").await;
    let auth = basic("rs1", SECRET);
    let form = format!("token={token}");
    let reply = post(&server, "/oauth/introspect", Some(&auth), &form).await;
    assert_eq!(reply.json()["active"], true);
    server.stop().await;
}

#[tokio::test]
async fn the_token_endpoint_service_answers_it_too() {
    use tower::ServiceExt;
    let layer = tutorial::layer_builder().introspection(clients()).build();
    let endpoint = layer.token_endpoint();
    let login = Request::post("/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from_static(
            b"username=johndoe&password=secret",
        )))
        .unwrap();
    let response = endpoint.clone().oneshot(login).await.unwrap();
    let json = json_of(response).await;
    let token = json["access_token"].as_str().unwrap();
    let request = Request::post("/introspect")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", basic("rs1", SECRET))
        .body(Full::new(Bytes::from(format!("token={token}"))))
        .unwrap();
    let response = endpoint.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json_of(response).await["active"], true);
}

async fn json_of<B: http_body::Body>(response: http::Response<B>) -> serde_json::Value
where
    B::Error: std::fmt::Debug,
{
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    serde_json::from_slice(&body).unwrap()
}

/// What authlib's `introspect_token` (client_secret_basic) got, as JSON lines.
const AUTHLIB: &str = r#"
import json, sys
from authlib.integrations.requests_client import OAuth2Session
url, client_id, secret = sys.argv[1:4]
session = OAuth2Session(client_id, secret, token_endpoint_auth_method="client_secret_basic")
for token in sys.argv[4:]:
    response = session.introspect_token(url, token=token)
    print(json.dumps({"status": response.status_code, "body": response.json(),
                      "www_authenticate": response.headers.get("WWW-Authenticate")}))
"#;

/// Python authlib, a real OAuth client, introspects a live token, a revoked one
/// and an unknown one, then with a wrong secret. Runs when `INTEROP_PYTHON`
/// names a python with authlib (and requests) installed.
#[tokio::test(flavor = "multi_thread")]
async fn authlib_reads_the_answers() {
    let Some(python) = std::env::var_os("INTEROP_PYTHON") else {
        eprintln!(
            "skipped: set INTEROP_PYTHON to a python with authlib and requests \
             (python3 -m venv target/interop-venv && \
             target/interop-venv/bin/pip install authlib requests)"
        );
        return;
    };
    let server = start().await;
    let live = server.login("johndoe", "secret").await;
    let revoked = server.login("johndoe", "secret").await;
    assert_eq!(server.revoke(&format!("token={revoked}")).await.status, 200);
    let url = server.url("/introspect");
    let run = move |secret: &'static str, tokens: Vec<String>| {
        let python = python.clone();
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            let output = std::process::Command::new(&python)
                .arg("-c")
                .arg(AUTHLIB)
                .args([&url, "rs1", secret])
                .args(&tokens)
                .output()
                .expect("INTEROP_PYTHON runs");
            assert!(
                output.status.success(),
                "authlib failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            String::from_utf8(output.stdout)
                .unwrap()
                .lines()
                .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
                .collect::<Vec<_>>()
        })
    };
    let answers = run(SECRET, vec![live, revoked, "unknown".into()])
        .await
        .unwrap();
    assert_eq!(answers.len(), 3);
    assert_eq!(answers[0]["status"], 200);
    let body = &answers[0]["body"];
    assert_eq!(body["active"], true);
    assert_eq!(body["username"], "johndoe");
    assert_eq!(body["token_type"], "Bearer");
    for answer in &answers[1..] {
        assert_eq!(answer["status"], 200);
        assert_eq!(answer["body"], serde_json::json!({"active": false}));
    }
    let refused = run(OTHER_SECRET, vec!["unknown".into()]).await.unwrap();
    assert_eq!(refused[0]["status"], 401);
    assert_eq!(refused[0]["body"]["error"], "invalid_client");
    assert!(refused[0]["www_authenticate"]
        .as_str()
        .unwrap()
        .starts_with("Basic realm="));
    server.stop().await;
}

/// Stores that answer at once and stores that are awaited (as Redis and SQL are)
/// give the same answers.
async fn every_kind_of_store_answers_alike(stores: common::Stores) {
    let layer = common::tutorial_builder(stores)
        .introspection(clients())
        .build();
    let server = Server::start_with(layer).await;
    let token = server.login("johndoe", "secret").await;
    let json = introspect(&server, &token).await.json();
    assert_eq!(json["active"], true, "{json}");
    assert_eq!(json["sub"], "johndoe");
    let alice = server.login("alice", "secret2").await;
    assert_inactive(&introspect(&server, &alice).await);
    assert_eq!(server.revoke(&format!("token={token}")).await.status, 200);
    assert_inactive(&introspect(&server, &token).await);
    server.stop().await;
}

for_each_kind_of_store!(every_kind_of_store_answers_alike);

/// The same answers with tokens (access and refresh) in the real Redis.
#[cfg(feature = "redis")]
#[tokio::test]
async fn tokens_in_redis_are_introspected() {
    let prefix = common::redis::Prefix::new("introspection");
    let store = prefix.store();
    let layer = tutorial::layer_builder()
        .token_store(store.clone())
        .refresh_tokens(store)
        .introspection(clients())
        .build();
    let server = Server::start_with(layer).await;
    let (access, refresh) = server.login_with_refresh().await;
    let json = introspect(&server, &access).await.json();
    assert_eq!(json["active"], true, "{json}");
    assert_eq!(json["username"], "johndoe");
    assert_inactive(&introspect(&server, &refresh).await);
    assert_eq!(server.revoke(&format!("token={refresh}")).await.status, 200);
    assert_inactive(&introspect(&server, &access).await);
    server.stop().await;
}

/// The server metadata (RFC 8414) names the endpoint and how clients authenticate.
#[tokio::test]
async fn metadata_names_the_endpoint() {
    let layer = tutorial::layer_builder()
        .issuer("https://auth.example.com")
        .introspection(clients())
        .introspection_url("/oauth/introspect")
        .build();
    let server = Server::start_with(layer).await;
    let json = server
        .get("/.well-known/oauth-authorization-server", &[])
        .await
        .json();
    assert_eq!(
        json["introspection_endpoint"],
        "https://auth.example.com/oauth/introspect"
    );
    assert_eq!(
        json["introspection_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic"])
    );
    server.stop().await;
    let json = Server::start_with(
        tutorial::layer_builder()
            .issuer("https://a.example")
            .build(),
    )
    .await
    .get("/.well-known/oauth-authorization-server", &[])
    .await
    .json();
    assert!(json.get("introspection_endpoint").is_none(), "{json}");
    assert!(json
        .get("introspection_endpoint_auth_methods_supported")
        .is_none());
}
