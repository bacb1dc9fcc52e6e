//! Hardening over a real socket: inputs an attacker picks (huge tokens, odd path
//! spellings, protocol confusion) get the documented answer, and the server keeps
//! serving.

mod common;
#[cfg(feature = "sqlx")]
mod sql_support;

use bytes::Bytes;
use common::{tutorial, Reply, Server};
use http::{Request, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower_oauth2_password::scope::ScopeRequirement;

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
    server
        .get_as("/users/me", &huge)
        .await
        .assert_invalid_token();
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

/// Spellings of `/admin` that a router or proxy in front of or behind the layer
/// may resolve to `/admin`.
const ADMIN_SPELLINGS: &[&str] = &[
    "/admin",
    "/admin/",
    "//admin",
    "/admin//",
    "/admin;x=1",
    "/admin;",
    "/;x/admin",
    "/%61dmin",
    "/%61%64%6D%69%6E",
    "/admin%2F",
    "/admin%2f",
    "/%2Fadmin",
    "/admin%5C",
    "/%5cadmin",
    "/x/../admin",
    "/x/..;/admin",
    "/x/%2e%2e/admin",
    "/./admin",
    "/admin/.",
];

#[tokio::test]
async fn a_scope_rule_applies_to_every_spelling_of_its_path() {
    let layer = tutorial::layer_builder()
        .require_scopes("/admin", ScopeRequirement::all(["admin"]))
        .require_scopes("/billing/*", ScopeRequirement::all(["admin"]))
        .build();
    let server = Server::start_with(layer).await;
    let token = server.login("johndoe", "secret").await;
    let mut spellings: Vec<String> = ADMIN_SPELLINGS.iter().map(|s| s.to_string()).collect();
    // The prefix rule, with the same spellings of its prefix.
    spellings.extend(
        ADMIN_SPELLINGS
            .iter()
            .map(|s| {
                s.replacen("admin", "billing", 1)
                    .replacen("%61dmin", "%62illing", 1)
            })
            .filter(|s| s.contains("billing"))
            .map(|s| format!("{s}/invoices")),
    );
    spellings.push("/billing/..;/users/me".into());
    for path in &spellings {
        let reply = server.get_as(path, &token).await;
        assert_eq!(reply.status, 403, "{path}");
        reply.assert_error(403, "Not enough permissions", Some("insufficient_scope"));
        assert_eq!(
            reply.header("www-authenticate"),
            Some("Bearer error=\"insufficient_scope\", scope=\"admin\""),
            "{path}"
        );
    }
    // A backslash is sent raw: clients would encode it.
    for path in ["/\\admin", "/x\\..\\admin", "/billing\\invoices"] {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        );
        let answer = server
            .raw(request.as_bytes(), std::time::Duration::from_secs(5))
            .await;
        assert!(answer.starts_with("HTTP/1.1 403 "), "{path}: {answer}");
    }
    // Other paths are not affected.
    for path in [
        "/users/me",
        "/administrator",
        "/admin/x",
        "/billing2/x",
        "/%62illing2",
    ] {
        let reply = server.get_as(path, &token).await;
        assert_ne!(reply.status, 403, "{path}");
    }
    server.stop().await;
}

#[tokio::test]
async fn public_paths_never_match_an_ambiguous_spelling() {
    let layer = tutorial::layer_builder()
        .public_path("/health")
        .public_prefix("/docs")
        .build();
    let server = Server::start_with(layer).await;
    for path in [
        "/docs/..;/users/me",
        "/docs/..%2Fusers/me",
        "/docs%2F..%2Fusers/me",
        "/docs/%2e%2e%5Cusers/me",
        "/docs;x/../users/me",
        "/docs/.%2e/users/me",
        "/docs/%2E%2E;x/users/me",
        "/docs//../users/me",
        "/docs/..%252Fusers/me",
        "/health;x",
        "/health/",
        "//health",
        "/%68ealth",
    ] {
        let reply = server.get(path, &[]).await;
        assert_eq!(reply.status, 401, "{path}");
        reply.assert_error(401, "Not authenticated", None);
    }
    let request = "GET /docs\\..\\users\\me HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let answer = server
        .raw(request.as_bytes(), std::time::Duration::from_secs(5))
        .await;
    assert!(answer.starts_with("HTTP/1.1 401 "), "{answer}");
    // Plain spellings are public: the app answers (404, it has no such page).
    for path in [
        "/health",
        "/docs",
        "/docs/",
        "/docs/openapi.json",
        "/docs/a%20b",
    ] {
        let reply = server.get(path, &[]).await;
        assert_eq!(reply.status, 404, "{path}");
        reply.assert_error(404, "Not Found", None);
    }
    server.stop().await;
}

#[tokio::test]
async fn public_paths_without_a_leading_slash_or_with_a_trailing_one_match() {
    let layer = tutorial::layer_builder()
        .public_path("health")
        .public_path("/ready/")
        .public_prefix("docs")
        .public_prefix("static/")
        .build();
    let server = Server::start_with(layer).await;
    for path in ["/health", "/ready", "/docs", "/docs/a", "/static/app.js"] {
        let reply = server.get(path, &[]).await;
        assert_eq!(reply.status, 404, "{path}");
        reply.assert_error(404, "Not Found", None);
    }
    for path in ["/users/me", "/ready/", "/healthz", "/docsx"] {
        let reply = server.get(path, &[]).await;
        assert_eq!(reply.status, 401, "{path}");
        reply.assert_error(401, "Not authenticated", None);
    }
    server.stop().await;
}

#[tokio::test]
async fn a_get_scope_rule_covers_head_which_routers_answer_with_the_get_handler() {
    let layer = tutorial::layer_builder()
        .require_scopes_on(
            http::Method::GET,
            "/admin",
            ScopeRequirement::all(["admin"]),
        )
        .build();
    let server = Server::start_with(layer).await;
    let token = server.login("johndoe", "secret").await;
    for method in [http::Method::GET, http::Method::HEAD] {
        let request = Request::builder()
            .method(method.clone())
            .uri(server.url("/admin"))
            .header("authorization", format!("Bearer {token}"))
            .body(Full::default())
            .unwrap();
        let reply = server.send(request).await;
        assert_eq!(reply.status, 403, "{method}");
        assert_eq!(
            reply.header("www-authenticate"),
            Some("Bearer error=\"insufficient_scope\", scope=\"admin\"")
        );
    }
    // Other methods are not covered by a GET rule.
    let reply = server.post("/admin", "text/plain", Vec::new()).await;
    assert_eq!(reply.status, 401);
    server.stop().await;
}

/// The 400 for a username with a control character in it.
#[track_caller]
fn assert_control_character_refused(reply: &Reply) {
    reply.assert_error(
        400,
        "Form field username must not contain control characters",
        Some("invalid_request"),
    );
    assert_eq!(reply.header("cache-control"), Some("no-store"));
}

/// Usernames with NUL, a line break, an escape, DEL or a C1 control, as urlencoded
/// and multipart forms send them.
const CONTROL_USERNAMES: [&str; 5] = ["a%00b", "johndoe%0A", "%1B%5B31m", "a%7F", "a%C2%85"];

#[tokio::test]
async fn control_characters_in_a_username_are_a_400_before_the_user_store_is_asked() {
    let server = Server::start_with(tutorial::layer_builder().build()).await;
    for username in CONTROL_USERNAMES {
        for _ in 0..6 {
            let reply = server
                .post_form(&format!("username={username}&password=secret"))
                .await;
            assert_control_character_refused(&reply);
        }
    }
    let multipart = "--B\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\njohn\0doe\r\n\
                     --B\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nsecret\r\n--B--\r\n";
    let reply = server
        .post(
            "/token",
            "multipart/form-data; boundary=B",
            multipart.into(),
        )
        .await;
    assert_control_character_refused(&reply);
    // Not counted as failures either: the user still logs in.
    server.login("johndoe", "secret").await;
    server.stop().await;
}

/// On PostgreSQL (with `TEST_POSTGRES=1`), a NUL in a username used to reach the
/// query: PostgreSQL refused it, and every such request was a 503 (and an ERROR
/// line). Now it is the same 400 as on any store: the query is never made.
#[cfg(feature = "sqlx")]
mod on_sql {
    use super::*;
    use sql_support::{Kind, TestDb};
    use tower_oauth2_password::user::sql::{NewUser, SqlUserStore, UsersTable};
    use tower_oauth2_password::{Argon2Hasher, OAuth2PasswordLayer, PasswordHasher};

    on_each_database!(
        a_nul_in_a_username_is_a_400_and_no_error_log,
        a_case_insensitive_query_counts_every_spelling_as_one_user,
    );

    /// The login throttle counts under the store's canonical form: with a
    /// `lower()` query and `str::to_lowercase` as its rule, five spellings of one
    /// user share one count of 5.
    async fn a_case_insensitive_query_counts_every_spelling_as_one_user(kind: Kind) {
        let Some(db) = TestDb::new(kind).await else {
            return;
        };
        let table = UsersTable::new(db.pool.clone());
        table.migrate().await.expect("migrate");
        let hash = Argon2Hasher::new().hash("secret").unwrap();
        assert!(table.add(&NewUser::new("JohnDoe", hash)).await.unwrap());
        let store = SqlUserStore::<tutorial::User>::builder(db.pool.clone())
            .credentials_query(
                "SELECT username AS subject, password_hash, scopes, disabled, stamp \
                 FROM users WHERE lower(username) = lower($1)",
            )
            .canonical_username(str::to_lowercase)
            .build();
        let server = Server::start_with(OAuth2PasswordLayer::builder(store).build()).await;
        for typed in ["johndoe", "JohnDoe", "JOHNDOE", "jOhNdOe", "johnDOE"] {
            let reply = server
                .post_form(&format!("username={typed}&password=wrong"))
                .await;
            reply.assert_error(400, "Incorrect username or password", Some("invalid_grant"));
        }
        for typed in ["JOHNdoe", "johndoe"] {
            let reply = server
                .post_form(&format!("username={typed}&password=secret"))
                .await;
            assert_eq!(reply.status, 429, "{typed}: {:?}", reply.body);
        }
        server.stop().await;
    }

    async fn a_nul_in_a_username_is_a_400_and_no_error_log(kind: Kind) {
        let Some(db) = TestDb::new(kind).await else {
            return;
        };
        let table = UsersTable::new(db.pool.clone());
        table.migrate().await.expect("migrate");
        let hash = Argon2Hasher::new().hash("secret").unwrap();
        assert!(table.add(&NewUser::new("johndoe", hash)).await.unwrap());
        let store = SqlUserStore::<tutorial::User>::builder(db.pool.clone()).build();
        let server = Server::start_with(OAuth2PasswordLayer::builder(store).build()).await;
        for username in CONTROL_USERNAMES {
            let reply = server
                .post_form(&format!("username={username}&password=secret"))
                .await;
            assert_control_character_refused(&reply);
        }
        server.login("johndoe", "secret").await;
        server.stop().await;
    }
}
