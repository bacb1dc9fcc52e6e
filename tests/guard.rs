//! The bearer guard of the tutorial app, over a real socket: every row of the
//! contract's protected-routes table, with stores that answer at once, with stores
//! that must be awaited, and with the two mixed.

mod common;

use std::time::Duration;

use common::{tutorial_builder, Reply, Server, Stores};
use tower_oauth2_password::scope::Scopes;
use tower_oauth2_password::token::TokenStore;
use tower_oauth2_password::{Argon2Hasher, PasswordHasher, StoredUser};

for_each_kind_of_store!(
    the_seed_walkthrough,
    missing_other_scheme_or_empty_token_is_not_authenticated,
    scheme_is_case_insensitive_and_whitespace_is_tolerated,
    unknown_malformed_forged_and_tampered_tokens_are_invalid,
    several_authorization_headers_are_rejected,
    expired_tokens_are_invalid,
    revoked_tokens_are_invalid,
    disabling_or_deleting_a_user_takes_effect_at_once,
    a_password_change_ends_the_sessions,
    a_user_removed_and_added_again_gets_no_old_token,
    a_scope_taken_away_ends_the_sessions,
    public_paths_skip_the_guard,
    inactive_status_and_invalid_token_detail_are_configurable,
    many_concurrent_requests_on_one_server,
    a_token_in_the_url_is_refused_with_a_clear_message,
);

async fn start(stores: Stores) -> Server {
    Server::start_with(tutorial_builder(stores).build()).await
}

#[track_caller]
fn assert_not_authenticated(reply: &Reply) {
    reply.assert_error(401, "Not authenticated", None);
    assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
}

async fn the_seed_walkthrough(stores: Stores) {
    let server = start(stores).await;
    let token = server.login("johndoe", "secret").await;
    let reply = server.me(&token).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(
        reply.json(),
        serde_json::json!({
            "username": "johndoe",
            "email": "johndoe@example.com",
            "full_name": "John Doe",
            "disabled": false,
        })
    );
    assert!(!String::from_utf8_lossy(&reply.body).contains("argon2"));

    let alice = server.login("alice", "secret2").await;
    server
        .me(&alice)
        .await
        .assert_error(400, "Inactive user", None);

    assert_not_authenticated(&server.get("/users/me", &[]).await);
    server.stop().await;
}

async fn missing_other_scheme_or_empty_token_is_not_authenticated(stores: Stores) {
    let server = start(stores).await;
    let token = server.login("johndoe", "secret").await;
    for value in [
        format!("Basic {token}"),
        "Basic am9obmRvZTpzZWNyZXQ=".to_owned(),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        "Bearer    ".to_owned(),
        format!("Token {token}"),
        format!("Bearer\t{token}"),
    ] {
        assert_not_authenticated(&server.get("/users/me", &[value.as_bytes()]).await);
    }
    // Every path but the token URL is guarded, unknown ones included.
    assert_not_authenticated(&server.get("/", &[]).await);
    assert_not_authenticated(&server.get("/nowhere", &[]).await);
}

async fn scheme_is_case_insensitive_and_whitespace_is_tolerated(stores: Stores) {
    let server = start(stores).await;
    let token = server.login("johndoe", "secret").await;
    for value in [
        format!("bearer {token}"),
        format!("BEARER {token}"),
        format!("Bearer   {token}"),
        format!("Bearer {token}  "),
        format!("Bearer {token}\t"),
    ] {
        let reply = server.get("/users/me", &[value.as_bytes()]).await;
        assert_eq!(reply.status, 200, "{value:?}: {:?}", reply.body);
        assert_eq!(reply.json()["username"], "johndoe");
    }
}

async fn unknown_malformed_forged_and_tampered_tokens_are_invalid(stores: Stores) {
    let server = start(stores).await;
    let token = server.login("johndoe", "secret").await;
    let mut tampered = token.clone().into_bytes();
    tampered[43] = if tampered[43] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let forged = "A".repeat(44);
    for value in [
        "Bearer nope".to_owned(),
        format!("Bearer {forged}"),
        format!("Bearer {tampered}"),
        format!("Bearer {token}x"),
        format!("Bearer {}", &token[..43]),
        format!("Bearer {token} extra"),
        "Bearer a\"b".to_owned(),
        format!("Bearer {}", "a".repeat(8000)),
    ] {
        server
            .get("/users/me", &[value.as_bytes()])
            .await
            .assert_invalid_token();
    }
    // Bytes outside ASCII in the header.
    server
        .get("/users/me", &[b"Bearer t\xc3\xa9st"])
        .await
        .assert_invalid_token();
    // The genuine token still works.
    assert_eq!(server.me(&token).await.status, 200);
}

async fn several_authorization_headers_are_rejected(stores: Stores) {
    let server = start(stores).await;
    let token = server.login("johndoe", "secret").await;
    let value = format!("Bearer {token}");
    let reply = server
        .get("/users/me", &[value.as_bytes(), value.as_bytes()])
        .await;
    reply.assert_error(
        400,
        "Several Authorization headers: send exactly one",
        Some("invalid_request"),
    );
    // RFC 6750 §3: every error of a protected resource carries the challenge.
    assert_eq!(
        reply.header("www-authenticate"),
        Some(r#"Bearer error="invalid_request""#)
    );
    let reply = server
        .get("/users/me", &[b"Basic eA==", value.as_bytes()])
        .await;
    assert_eq!(reply.status, 400);
}

async fn expired_tokens_are_invalid(stores: Stores) {
    let lifetime = Duration::from_millis(300);
    let server =
        Server::start_with(tutorial_builder(stores).token_lifetime(lifetime).build()).await;
    let token = server.login("johndoe", "secret").await;
    assert_eq!(server.me(&token).await.status, 200);
    tokio::time::sleep(lifetime).await;
    // The guard's clock advances every 100 ms on its own thread, which a loaded
    // machine may run late: wait for the refusal (up to 10 s), do not time it.
    let mut reply = server.me(&token).await;
    for _ in 0..200 {
        if reply.status != 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        reply = server.me(&token).await;
    }
    reply.assert_invalid_token();
}

async fn revoked_tokens_are_invalid(stores: Stores) {
    let layer = tutorial_builder(stores).build();
    let server = Server::start_with(layer.clone()).await;
    let token = server.login("johndoe", "secret").await;
    let other = server.login("johndoe", "secret").await;
    layer
        .token_store()
        .revoke(token.as_str().into(), None)
        .await
        .unwrap();
    server.me(&token).await.assert_invalid_token();
    assert_eq!(
        server.me(&other).await.status,
        200,
        "other tokens unaffected"
    );
}

async fn disabling_or_deleting_a_user_takes_effect_at_once(stores: Stores) {
    let layer = tutorial_builder(stores).build();
    let server = Server::start_with(layer.clone()).await;
    let token = server.login("johndoe", "secret").await;
    assert!(layer.user_store().disable("johndoe"));
    server
        .me(&token)
        .await
        .assert_error(400, "Inactive user", None);
    assert!(layer.user_store().remove("johndoe"));
    server.me(&token).await.assert_invalid_token();
}

async fn a_password_change_ends_the_sessions(stores: Stores) {
    let layer = tutorial_builder(stores).build();
    let server = Server::start_with(layer.clone()).await;
    let token = server.login("johndoe", "secret").await;
    let hash = Argon2Hasher::new().hash("new secret").unwrap();
    assert!(layer.user_store().set_password("johndoe", hash));
    server.me(&token).await.assert_invalid_token();
    let token = server.login("johndoe", "new%20secret").await;
    assert_eq!(server.me(&token).await.status, 200);
}

async fn a_user_removed_and_added_again_gets_no_old_token(stores: Stores) {
    let layer = tutorial_builder(stores).build();
    let server = Server::start_with(layer.clone()).await;
    let token = server.login("johndoe", "secret").await;
    let users = layer.user_store();
    assert!(users.remove("johndoe"));
    let model = common::tutorial::User {
        username: "johndoe".into(),
        email: "another.john@example.com".into(),
        full_name: "Another John".into(),
        disabled: false,
    };
    let hash = Argon2Hasher::new().hash("secret").unwrap();
    users.insert("johndoe", StoredUser::new(model, hash));
    server.me(&token).await.assert_invalid_token();
}

async fn a_scope_taken_away_ends_the_sessions(stores: Stores) {
    let layer = tutorial_builder(stores)
        .scope("me", "Read information about the current user.")
        .build();
    let server = Server::start_with(layer.clone()).await;
    let me: Scopes = ["me"].into_iter().collect();
    assert!(layer.user_store().set_scopes("johndoe", me));
    let reply = server
        .post_form("username=johndoe&password=secret&scope=me")
        .await;
    assert_eq!(
        reply.json()["scope"],
        serde_json::Value::Null,
        "granted as asked"
    );
    let token = reply.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(server.me(&token).await.status, 200);
    let other = server.login("alice", "secret2").await;
    assert!(layer.user_store().set_scopes("johndoe", Scopes::empty()));
    server.me(&token).await.assert_invalid_token();
    // Only johndoe's sessions.
    server
        .me(&other)
        .await
        .assert_error(400, "Inactive user", None);
}

async fn public_paths_skip_the_guard(stores: Stores) {
    let layer = tutorial_builder(stores)
        .public_path("/nowhere")
        .public_prefix("/docs")
        .public_if(|parts| parts.uri.path() == "/open" && parts.method == http::Method::GET)
        .build();
    let server = Server::start_with(layer).await;
    // Reaches the app, which answers 404: the guard let it through.
    for path in ["/nowhere", "/docs", "/docs/openapi.json", "/open"] {
        server
            .get(path, &[])
            .await
            .assert_error(404, "Not Found", None);
    }
    for path in ["/nowhere/", "/docsecret", "/docs/../users/me", "/users/me"] {
        assert_not_authenticated(&server.get(path, &[]).await);
    }
    let reply = server.post("/open", "text/plain", Vec::new()).await;
    assert_not_authenticated(&reply);
}

async fn inactive_status_and_invalid_token_detail_are_configurable(stores: Stores) {
    let layer = tutorial_builder(stores)
        .inactive_user_status(http::StatusCode::FORBIDDEN)
        .invalid_token_detail("Not authenticated")
        .build();
    let server = Server::start_with(layer).await;
    let alice = server.login("alice", "secret2").await;
    server
        .me(&alice)
        .await
        .assert_error(403, "Inactive user", None);
    server
        .me("nope")
        .await
        .assert_error(401, "Not authenticated", Some("invalid_token"));
}

async fn many_concurrent_requests_on_one_server(stores: Stores) {
    let server = std::sync::Arc::new(start(stores).await);
    let token = server.login("johndoe", "secret").await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let server = server.clone();
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            match i % 3 {
                0 => server.me(&token).await.status,
                1 => server.get("/users/me", &[]).await.status,
                _ => server.me("bogus").await.status,
            }
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let expected = if i % 3 == 0 { 200 } else { 401 };
        assert_eq!(task.await.unwrap(), expected);
    }
}

async fn a_token_in_the_url_is_refused_with_a_clear_message(stores: Stores) {
    let server = start(stores).await;
    let token = server.login("johndoe", "secret").await;
    let path = format!("/users/me?access_token={token}");
    let header = format!("Bearer {token}");
    for reply in [
        server.get(&path, &[]).await,
        server.get(&path, &[header.as_bytes()]).await,
    ] {
        reply.assert_error(
            400,
            "Send the access token in the Authorization header, not in the URL",
            Some("invalid_request"),
        );
        assert_eq!(
            reply.header("www-authenticate"),
            Some(r#"Bearer error="invalid_request""#)
        );
    }
}
