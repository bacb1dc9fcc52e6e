//! The token endpoint of the tutorial app, over a real socket: every row of the
//! contract's token-endpoint table.

mod common;

use std::time::Duration;

use http_body_util::Full;

use common::{tutorial, Server};

#[tokio::test]
async fn good_credentials_issue_a_bearer_token() {
    let server = Server::start().await;
    let reply = server.post_form("username=johndoe&password=secret").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.header("pragma"), Some("no-cache"));
    let json = reply.json();
    let object = json.as_object().expect("object");
    let token = json["access_token"].as_str().expect("access_token");
    assert_eq!(token.len(), 44, "264 random bits, base64url");
    assert!(token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert_eq!(json["token_type"], "bearer");
    assert_eq!(json["expires_in"], 1800);
    assert_eq!(
        object.len(),
        3,
        "no scope key when none was asked for: {json}"
    );
    assert!(
        !reply.body.windows(7).any(|w| w == b"$argon2"),
        "no hash in a response"
    );
    // A second login gets a different token.
    assert_ne!(server.login("johndoe", "secret").await, token);
}

#[tokio::test]
async fn unknown_user_and_wrong_password_are_indistinguishable() {
    let server = Server::start().await;
    let wrong_password = server.post_form("username=johndoe&password=wrong").await;
    let unknown_user = server.post_form("username=nobody&password=secret").await;
    for reply in [&wrong_password, &unknown_user] {
        reply.assert_error(400, "Incorrect username or password", Some("invalid_grant"));
        assert_eq!(reply.header("cache-control"), Some("no-store"));
    }
    assert_eq!(
        wrong_password.body, unknown_user.body,
        "byte-identical bodies"
    );
    let mut a = wrong_password.headers.clone();
    let mut b = unknown_user.headers.clone();
    a.remove("date");
    b.remove("date");
    assert_eq!(a, b, "identical headers");
}

#[tokio::test]
async fn disabled_user_can_log_in_but_not_use_the_token() {
    // As in the FastAPI tutorial: the token is issued, every protected route says
    // "Inactive user".
    let server = Server::start().await;
    let token = server.login("alice", "secret2").await;
    server
        .me(&token)
        .await
        .assert_error(400, "Inactive user", None);
    let reply = server.post_form("username=alice&password=secret").await;
    reply.assert_error(400, "Incorrect username or password", Some("invalid_grant"));
}

#[tokio::test]
async fn missing_empty_duplicated_and_malformed_fields_name_the_problem() {
    let server = Server::start().await;
    for (body, detail) in [
        ("password=secret", "Missing form field: username"),
        ("username=johndoe", "Missing form field: password"),
        ("username=&password=secret", "Missing form field: username"),
        ("username=johndoe&password=", "Missing form field: password"),
        ("", "Missing form field: username"),
        (
            "username=johndoe&username=johndoe&password=secret",
            "Duplicate form field: username",
        ),
        (
            "username=johndoe&password=secret&password=secret",
            "Duplicate form field: password",
        ),
        (
            "username=johndoe&password=%FF",
            "Form field is not valid UTF-8",
        ),
    ] {
        let reply = server.post_form(body).await;
        reply.assert_error(400, detail, Some("invalid_request"));
        assert_eq!(reply.header("cache-control"), Some("no-store"), "{body}");
    }
    let long = format!("username={}&password=secret", "a".repeat(300));
    server.post_form(&long).await.assert_error(
        400,
        "Form field too long: username (at most 256 bytes)",
        Some("invalid_request"),
    );
}

#[tokio::test]
async fn form_encoding_details() {
    let server = Server::start().await;
    // Percent-encoding and a charset parameter.
    let reply = server
        .post(
            "/token",
            "application/x-www-form-urlencoded; charset=utf-8",
            b"user%6Eame=johndoe&password=%73ecret&grant_type=password&client_id=cli&client_secret=x".to_vec(),
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    // `+` is a space: "sec ret" is not "secret".
    let reply = server.post_form("username=johndoe&password=sec+ret").await;
    reply.assert_error(400, "Incorrect username or password", Some("invalid_grant"));
}

#[tokio::test]
async fn multipart_form_is_accepted() {
    let server = Server::start().await;
    let body = "--XyZ\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\njohndoe\r\n\
                --XyZ\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nsecret\r\n--XyZ--\r\n";
    let reply = server
        .post(
            "/token",
            "multipart/form-data; boundary=XyZ",
            body.as_bytes().to_vec(),
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.json()["token_type"], "bearer");
    let reply = server
        .post(
            "/token",
            "multipart/form-data; boundary=XyZ",
            b"--XyZ\r\ngarbage".to_vec(),
        )
        .await;
    reply.assert_error(
        400,
        "Malformed multipart/form-data body",
        Some("invalid_request"),
    );
}

#[tokio::test]
async fn grant_type_other_than_password_is_unsupported() {
    let server = Server::start().await;
    for grant_type in ["client_credentials", "authorization_code", "Password"] {
        let reply = server
            .post_form(&format!(
                "grant_type={grant_type}&username=johndoe&password=secret"
            ))
            .await;
        reply.assert_error(
            400,
            "Unsupported grant_type: only \"password\" is supported",
            Some("unsupported_grant_type"),
        );
    }
}

#[tokio::test]
async fn strict_mode_requires_grant_type() {
    let server =
        Server::start_with(tutorial::layer_builder().require_grant_type(true).build()).await;
    let reply = server.post_form("username=johndoe&password=secret").await;
    reply.assert_error(
        400,
        "Missing form field: grant_type (must be \"password\")",
        Some("invalid_request"),
    );
    let reply = server
        .post_form("grant_type=password&username=johndoe&password=secret")
        .await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn not_a_form_is_415_with_a_json_error() {
    let server = Server::start().await;
    let expected = "Expected a form: Content-Type must be application/x-www-form-urlencoded or multipart/form-data";
    let reply = server
        .post(
            "/token",
            "application/json",
            br#"{"username":"johndoe","password":"secret"}"#.to_vec(),
        )
        .await;
    reply.assert_error(415, expected, Some("invalid_request"));
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    // A body without a Content-Type is not a form either.
    let request = http::Request::post(server.url("/token"))
        .body(Full::from("username=johndoe&password=secret"))
        .expect("request");
    let reply = server.send(request).await;
    reply.assert_error(415, expected, Some("invalid_request"));
}

/// An empty `POST` without a `Content-Type` lacks its fields, not a media type:
/// 400 `invalid_request` naming the first missing field, at both URLs.
#[tokio::test]
async fn an_empty_post_without_a_content_type_is_400_for_the_missing_field() {
    let server = Server::start().await;
    for (path, detail) in [
        ("/token", "Missing form field: username"),
        ("/revoke", "Missing form field: token"),
    ] {
        let request = http::Request::post(server.url(path))
            .body(Full::default())
            .expect("request");
        let reply = server.send(request).await;
        reply.assert_error(400, detail, Some("invalid_request"));
        assert_eq!(reply.header("cache-control"), Some("no-store"), "{path}");
        assert_eq!(reply.header("pragma"), Some("no-cache"), "{path}");
        // The same with `Content-Length: 0` on the wire, as curl -X POST sends it.
        let raw = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let raw = server.raw(raw.as_bytes(), Duration::from_secs(5)).await;
        assert!(raw.starts_with("HTTP/1.1 400"), "{path}: {raw}");
        assert!(raw.contains(detail), "{path}: {raw}");
    }
}

#[tokio::test]
async fn other_methods_get_405_with_allow_post() {
    let server = Server::start().await;
    for method in ["GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"] {
        let request = http::Request::builder()
            .method(method)
            .uri(server.url("/token"))
            .body(Default::default())
            .unwrap();
        let reply = server.send(request).await;
        assert_eq!(reply.status, 405, "{method}");
        assert_eq!(reply.header("allow"), Some("POST"), "{method}");
        assert_eq!(reply.header("cache-control"), Some("no-store"), "{method}");
        if method != "HEAD" {
            reply.assert_error(405, "Method Not Allowed", None);
        }
    }
}

#[tokio::test]
async fn body_over_16_kib_is_413_and_the_server_keeps_serving() {
    let server = Server::start().await;
    let body = format!(
        "username=johndoe&password=secret&pad={}",
        "x".repeat(16 * 1024)
    );
    let reply = server.post_form(&body).await;
    reply.assert_error(
        413,
        "Request body too large: the limit is 16384 bytes",
        Some("invalid_request"),
    );
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    // Chunked, no Content-Length: caught while reading.
    let mut raw = b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..20 {
        raw.extend_from_slice(b"400\r\n");
        raw.extend_from_slice(&[b'a'; 0x400]);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let answer = server.raw(&raw, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("Request body too large"), "{answer}");
    // Exactly at the limit is fine.
    let pad = 16 * 1024 - "username=johndoe&password=secret&pad=".len();
    let body = format!("username=johndoe&password=secret&pad={}", "x".repeat(pad));
    assert_eq!(server.post_form(&body).await.status, 200);
}

#[tokio::test]
async fn slow_body_is_408_and_the_server_keeps_serving() {
    let layer = tutorial::layer_builder()
        .body_timeout(Duration::from_millis(300))
        .build();
    let server = Server::start_with(layer).await;
    let answer = server
        .raw(
            b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nusername=jo",
            Duration::from_secs(5),
        )
        .await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("\"detail\":\"Request body did not arrive in time\""),
        "{answer}"
    );
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert_eq!(
        server
            .post_form("username=johndoe&password=secret")
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn token_url_is_configurable() {
    let server =
        Server::start_with(tutorial::layer_builder().token_url("auth/token").build()).await;
    let reply = server
        .post(
            "/auth/token",
            "application/x-www-form-urlencoded",
            b"username=johndoe&password=secret".to_vec(),
        )
        .await;
    assert_eq!(reply.status, 200);
    // The old URL is now an ordinary protected path.
    let reply = server.post_form("username=johndoe&password=secret").await;
    reply.assert_error(401, "Not authenticated", None);
}

/// The service rules out most paths by their length before comparing them with
/// its URLs: a URL of 63 bytes or more (which shares the last length bit with
/// every longer one) is still answered, and a path as long as a URL but not it is
/// guarded.
#[tokio::test]
async fn long_token_url_and_paths_of_an_endpoints_length() {
    let long = format!("/auth/{}/token", "x".repeat(70));
    let server = Server::start_with(tutorial::layer_builder().token_url(&long).build()).await;
    let reply = server
        .post(
            &long,
            "application/x-www-form-urlencoded",
            b"username=johndoe&password=secret".to_vec(),
        )
        .await;
    assert_eq!(reply.status, 200);
    let token = reply.json()["access_token"].as_str().unwrap().to_owned();
    // Longer still, and exactly as long but one byte off: protected paths.
    let longer = format!("{long}/more");
    let same_length = format!("/auth/{}/tokem", "x".repeat(70));
    for path in [&longer, &same_length] {
        let reply = server
            .post(
                path,
                "application/x-www-form-urlencoded",
                b"username=johndoe&password=secret".to_vec(),
            )
            .await;
        reply.assert_error(401, "Not authenticated", None);
    }
    // `/users/me` and the default revocation URL `/revoke` (7 bytes) beside a
    // 7-byte guarded path.
    assert_eq!(server.me(&token).await.status, 200);
    let reply = server.get("/revokx", &[]).await;
    reply.assert_error(401, "Not authenticated", None);
    let reply = server.revoke(&format!("token={token}")).await;
    assert_eq!(reply.status, 200);
    server.me(&token).await.assert_invalid_token();
}

#[tokio::test]
async fn concurrent_logins_all_succeed() {
    concurrent_logins(Server::start().await).await;
}

async fn concurrent_logins(server: Server) {
    let server = std::sync::Arc::new(server);
    let mut tasks = Vec::new();
    for i in 0..16 {
        // Each from an address of its own: the throttle checks only 5 of one
        // user's attempts from one address at once.
        let server = server.connecting_from(&format!("127.0.3.{}", i + 1));
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                let token = server.login("johndoe", "secret").await;
                server.me(&token).await.status
            } else {
                server
                    .post_form("username=johndoe&password=nope")
                    .await
                    .status
            }
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let status = task.await.unwrap();
        assert_eq!(status, if i % 2 == 0 { 200 } else { 400 });
    }
}
