//! Hardening over a real socket: inputs an attacker picks (huge tokens, odd path
//! spellings, protocol confusion) get the documented answer, and the server keeps
//! serving.

mod common;

use common::Server;

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
