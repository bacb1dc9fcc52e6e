//! Hardening over a real socket: inputs an attacker picks (huge tokens, odd path
//! spellings, protocol confusion) get the documented answer, and the server keeps
//! serving.

mod common;

use bytes::Bytes;
use common::{tutorial, Reply, Server};
use http::{Request, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower_oauth2_password::ScopeRequirement;

/// `GET path` with a `content-type` (and no credentials) over HTTP/1.1.
async fn get_with_content_type(server: &Server, path: &str, content_type: &str) -> Reply {
    let request = Request::get(server.url(path))
        .header("content-type", content_type)
        .body(Full::default())
        .unwrap();
    server.send(request).await
}

/// `POST path` with a `content-type` and no credentials over h2c (prior knowledge).
async fn post_h2c(server: &Server, path: &str, content_type: &str) -> Reply {
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let request = Request::post(server.url(path))
        .version(Version::HTTP_2)
        .header("content-type", content_type)
        .header("te", "trailers")
        .body(Full::default())
        .unwrap();
    let response = client.request(request).await.expect("h2c request");
    assert_eq!(response.version(), Version::HTTP_2);
    let (parts, body) = response.into_parts();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

#[tokio::test]
async fn a_64_kib_bearer_token_is_an_invalid_token_and_the_server_keeps_serving() {
    let server = Server::start().await;
    let huge = "a".repeat(64 * 1024);
    let reply = server.get_as("/users/me", &huge).await;
    reply.assert_error(
        401,
        "Invalid authentication credentials",
        Some("invalid_token"),
    );
    assert_eq!(
        reply.header("www-authenticate"),
        Some("Bearer error=\"invalid_token\"")
    );
    let token = server.login("johndoe", "secret").await;
    assert_eq!(server.me(&token).await.status, 200);
    server.stop().await;
}

#[tokio::test]
async fn a_body_full_of_distinct_scopes_is_refused_before_the_password_is_checked() {
    let server = Server::start().await;
    // Just under the 16 KiB body limit: ~2,000 distinct scopes.
    let mut body = String::from("username=johndoe&password=secret&scope=");
    let mut i = 0;
    while body.len() < 16 * 1024 - 16 {
        body.push_str(&format!("s{i}+"));
        i += 1;
    }
    let reply = server.post_form(&body).await;
    reply.assert_error(
        400,
        "Too many scopes requested (at most 64)",
        Some("invalid_scope"),
    );
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    // A scope over 128 bytes, with a marker that must not come back.
    let long = format!("MARKER{}", "x".repeat(128));
    let reply = server
        .post_form(&format!("username=johndoe&password=secret&scope={long}"))
        .await;
    reply.assert_error(
        400,
        "Scope too long (at most 128 bytes)",
        Some("invalid_scope"),
    );
    assert!(!String::from_utf8_lossy(&reply.body).contains("MARKER"));
    server.stop().await;
}

/// A multipart body with boundary `B`: `(name, value, file name)` per part.
fn multipart(parts: &[(&str, &str, Option<&str>)]) -> Vec<u8> {
    let mut body = String::new();
    for (name, value, file) in parts {
        body.push_str(&format!(
            "--B\r\nContent-Disposition: form-data; name=\"{name}\""
        ));
        if let Some(file) = file {
            body.push_str(&format!(
                "; filename=\"{file}\"\r\nContent-Type: application/octet-stream"
            ));
        }
        body.push_str(&format!("\r\n\r\n{value}\r\n"));
    }
    body.push_str("--B--\r\n");
    body.into_bytes()
}

#[tokio::test]
async fn multipart_files_in_unknown_fields_are_skipped_and_names_never_echoed() {
    let server = Server::start().await;
    let content_type = "multipart/form-data; boundary=B";
    let body = multipart(&[
        ("username", "johndoe", None),
        ("<img src=x onerror=MARKER>", "GIF89a", Some("a.gif")),
        ("password", "secret", None),
    ]);
    let reply = server.post("/token", content_type, body).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.json()["token_type"], "bearer");

    let body = multipart(&[
        ("username", "johndoe", None),
        ("password", "secret", Some("MARKER.txt")),
    ]);
    let reply = server.post("/token", content_type, body).await;
    reply.assert_error(
        400,
        "Form field password must be text, not a file",
        Some("invalid_request"),
    );
    assert!(!String::from_utf8_lossy(&reply.body).contains("MARKER"));
    server.stop().await;
}

#[tokio::test]
async fn every_guard_rejection_is_no_store() {
    let layer = tutorial::layer_builder()
        .require_scopes("/admin", ScopeRequirement::all(["admin"]))
        .build();
    let server = Server::start_with(layer).await;
    let johndoe = server.login("johndoe", "secret").await;
    let alice = server.login("alice", "secret2").await;
    let bearer = format!("Bearer {johndoe}");
    let replies = [
        (401, server.get("/users/me", &[]).await),
        (401, server.me("bogus").await),
        (
            400,
            server
                .get("/users/me", &[bearer.as_bytes(), bearer.as_bytes()])
                .await,
        ),
        (
            400,
            server.get_as("/users/me?access_token=x", &johndoe).await,
        ),
        (400, server.me(&alice).await),
        (403, server.get_as("/admin", &johndoe).await),
    ];
    for (status, reply) in replies {
        assert_eq!(reply.status, status, "{:?}", reply.body);
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert_eq!(reply.header("cache-control"), Some("no-store"), "{status}");
    }
    server.stop().await;
}

#[tokio::test]
async fn grpc_content_type_over_http1_gets_the_json_401() {
    let server = Server::start().await;
    for content_type in ["application/grpc", "application/grpc+proto"] {
        let reply = get_with_content_type(&server, "/users/me", content_type).await;
        reply.assert_error(401, "Not authenticated", None);
        assert!(reply.header("grpc-status").is_none());
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
        assert_eq!(reply.header("cache-control"), Some("no-store"));
    }
    server.stop().await;
}

#[tokio::test]
async fn grpc_over_h2c_gets_grpc_statuses_and_other_h2c_requests_json() {
    let server = Server::start().await;
    for content_type in [
        "application/grpc",
        "application/grpc+proto",
        "application/grpc;x=y",
    ] {
        let reply = post_h2c(&server, "/pkg.Svc/Method", content_type).await;
        assert_eq!(reply.status, 200, "{content_type}");
        assert_eq!(reply.header("grpc-status"), Some("16"));
        assert_eq!(reply.header("grpc-message"), Some("Not authenticated"));
        assert_eq!(reply.header("content-type"), Some("application/grpc"));
        assert_eq!(reply.header("cache-control"), Some("no-store"));
    }
    for content_type in [
        "application/json",
        "application/grpcx",
        "text/application/grpc",
    ] {
        let reply = post_h2c(&server, "/users/me", content_type).await;
        reply.assert_error(401, "Not authenticated", None);
        assert!(reply.header("grpc-status").is_none(), "{content_type}");
    }
    server.stop().await;
}

#[tokio::test]
async fn grpc_web_over_http1_gets_a_grpc_web_trailers_only_answer() {
    let server = Server::start().await;
    for (content_type, answered) in [
        ("application/grpc-web", "application/grpc-web"),
        ("application/grpc-web+proto", "application/grpc-web"),
        ("application/grpc-web-text", "application/grpc-web-text"),
        (
            "application/grpc-web-text+proto",
            "application/grpc-web-text",
        ),
    ] {
        let reply = get_with_content_type(&server, "/pkg.Svc/Method", content_type).await;
        assert_eq!(reply.status, 200, "{content_type}");
        assert_eq!(reply.header("grpc-status"), Some("16"));
        assert_eq!(reply.header("content-type"), Some(answered));
        assert_eq!(reply.header("cache-control"), Some("no-store"));
        assert!(reply.body.is_empty());
    }
    let reply = get_with_content_type(&server, "/users/me", "application/grpc-webfoo").await;
    reply.assert_error(401, "Not authenticated", None);
    server.stop().await;
}
