//! Scopes over a real socket: examples/scopes.rs (axum: a route layer and the
//! extractor form), and path rules in the main layer on the hyper tutorial app.

// `common` includes the tutorial example and this test includes another example;
// both bring the examples' shared module along.
#![allow(clippy::duplicate_mod)]

mod common;

use common::{tutorial, Reply, Server};
use http::{Method, StatusCode};
use tokio::net::TcpListener;
use tower_oauth2_password::layer::Builder;
use tower_oauth2_password::scope::ScopeRequirement;
use tower_oauth2_password::{Argon2Hasher, MemoryUserStore, PasswordHasher, StoredUser};

#[path = "../examples/scopes.rs"]
#[allow(dead_code)]
mod scopes_example;

async fn start() -> Server {
    let layer = scopes_example::layer_builder().build();
    // bob may only be granted `me`.
    let hash = Argon2Hasher::new().hash("hunter2").unwrap();
    let bob = scopes_example::User {
        username: "bob".into(),
        email: "bob@example.com".into(),
        full_name: "Bob".into(),
        disabled: false,
    };
    layer
        .user_store()
        .insert("bob", StoredUser::new(bob, hash).with_scopes(["me"]));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, scopes_example::app(layer)).await });
    Server::client_for(addr)
}

/// Logs in asking for `scope`; returns the token and the whole JSON answer.
async fn login(
    server: &Server,
    user: &str,
    password: &str,
    scope: &str,
) -> (String, serde_json::Value) {
    let body = format!("username={user}&password={password}&scope={scope}");
    let reply = server.post_form(&body).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let json = reply.json();
    (json["access_token"].as_str().unwrap().to_owned(), json)
}

#[track_caller]
fn assert_insufficient(reply: &Reply, status: u16, scope: &str) {
    reply.assert_error(status, "Not enough permissions", Some("insufficient_scope"));
    let challenge = format!("Bearer error=\"insufficient_scope\", scope=\"{scope}\"");
    assert_eq!(reply.header("www-authenticate"), Some(challenge.as_str()));
}

#[tokio::test]
async fn both_scopes_open_every_route() {
    let server = start().await;
    let (token, json) = login(&server, "johndoe", "secret", "me+items").await;
    assert!(
        json.get("scope").is_none(),
        "granted as asked: no scope key: {json}"
    );
    let me = server.me(&token).await;
    assert_eq!(
        (me.status.as_u16(), me.json()["username"].as_str()),
        (200, Some("johndoe"))
    );
    let items = server.get_as("/users/me/items", &token).await;
    assert_eq!(items.status, 200);
    assert_eq!(
        items.json(),
        serde_json::json!([{"item_id": "Foo", "owner": "johndoe"}])
    );
    let status = server.get_as("/status", &token).await;
    assert_eq!(status.json(), serde_json::json!({"status": "ok"}));
}

#[tokio::test]
async fn a_missing_scope_is_403_naming_it() {
    let server = start().await;
    let (token, _) = login(&server, "johndoe", "secret", "me").await;
    let bearer = format!("Bearer {token}");
    assert_eq!(server.me(&token).await.status, 200);
    // The extractor form.
    assert_insufficient(
        &server.get("/users/me/items", &[bearer.as_bytes()]).await,
        403,
        "items",
    );
    assert_eq!(
        server.get("/status", &[bearer.as_bytes()]).await.status,
        200
    );

    let (token, json) = login(&server, "johndoe", "secret", "items").await;
    assert!(json.get("scope").is_none());
    // The route layer.
    assert_insufficient(&server.me(&token).await, 403, "me");
}

#[tokio::test]
async fn no_scope_asked_means_a_token_for_scope_free_routes_only() {
    let server = start().await;
    for scope in ["", "+", "%20%09"] {
        let (token, json) = login(&server, "johndoe", "secret", scope).await;
        assert!(json.get("scope").is_none(), "{scope:?}: {json}");
        assert_insufficient(&server.me(&token).await, 403, "me");
        let status = server.get_as("/status", &token).await;
        assert_eq!(status.status, 200);
    }
}

#[tokio::test]
async fn repeated_scopes_and_extra_whitespace() {
    let server = start().await;
    let (token, json) = login(&server, "johndoe", "secret", "+items++items%09me+me+").await;
    assert!(json.get("scope").is_none(), "{json}");
    assert_eq!(server.me(&token).await.status, 200);
    let items = server.get_as("/users/me/items", &token).await;
    assert_eq!(items.status, 200);
}

#[tokio::test]
async fn only_allowed_scopes_are_granted_and_the_answer_says_so() {
    let server = start().await;
    let (token, json) = login(&server, "bob", "hunter2", "me+items").await;
    assert_eq!(json["scope"], "me", "{json}");
    assert_eq!(server.me(&token).await.json()["username"], "bob");
    let items = server.get_as("/users/me/items", &token).await;
    assert_insufficient(&items, 403, "items");
    // Asking only for what bob may not have: a token with no scope, and no
    // `"scope": ""` (RFC 6749 §3.3 has no empty scope).
    let (token, json) = login(&server, "bob", "hunter2", "items").await;
    assert!(json.get("scope").is_none(), "{json}");
    assert_insufficient(&server.me(&token).await, 403, "me");
}

#[tokio::test]
async fn unknown_and_malformed_scopes_are_invalid_scope() {
    let server = start().await;
    let reply = server
        .post_form("username=johndoe&password=secret&scope=me+admin")
        .await;
    reply.assert_error(400, "Unknown scope: admin", Some("invalid_scope"));
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let reply = server
        .post_form("username=johndoe&password=secret&scope=%22me%22")
        .await;
    reply.assert_error(400, "Malformed scope: (not shown)", Some("invalid_scope"));
    let reply = server
        .post_form("username=johndoe&password=secret&scope=m%C3%A9")
        .await;
    reply.assert_error(400, "Malformed scope: (not shown)", Some("invalid_scope"));
}

#[tokio::test]
async fn inactive_user_is_still_400_with_every_scope() {
    let server = start().await;
    let (token, _) = login(&server, "alice", "secret2", "me+items").await;
    server
        .me(&token)
        .await
        .assert_error(400, "Inactive user", None);
}

/// The tutorial's layer with scopes `me` and `items`, and `GET /users/me` needing `me`.
fn me_needs_scope_me() -> Builder<MemoryUserStore<tutorial::User>> {
    tutorial::layer_builder()
        .scope("me", "Read information about the current user.")
        .scope("items", "Read items.")
        .require_scopes_on(Method::GET, "/users/me", ScopeRequirement::all(["me"]))
}

#[tokio::test]
async fn path_rules_in_the_main_layer_for_hyper_apps() {
    let layer = me_needs_scope_me()
        .require_scopes("/users/*", ScopeRequirement::any(["me", "items"]))
        .build();
    let server = Server::start_with(layer).await;

    let (me, _) = login(&server, "johndoe", "secret", "me").await;
    assert_eq!(server.me(&me).await.status, 200);
    let (items, _) = login(&server, "johndoe", "secret", "items").await;
    assert_insufficient(&server.me(&items).await, 403, "me");
    // Any-of on the prefix: `items` is enough for other paths below /users.
    let other = server.get_as("/users/other", &items).await;
    other.assert_error(404, "Not Found", None);
    let (none, _) = login(&server, "johndoe", "secret", "").await;
    let other = server.get_as("/users/other", &none).await;
    assert_insufficient(&other, 403, "me items");
    // Dot segments never slip past a prefix rule.
    let sneaky = server.get_as("/x/../users/other", &none).await;
    assert_insufficient(&sneaky, 403, "me items");
}

/// The rules as an attacker probes them: tokens with and without the route's
/// scope, a disabled user's, a forged one and none, all at once from eight client
/// addresses. Each request gets what its own token earns, and only the tokens
/// that carry the scope reach the app, which answers with their user.
#[tokio::test]
async fn path_rules_hold_for_every_request_of_a_concurrent_mix() {
    let layer = me_needs_scope_me().build();
    let server = Server::start_with(layer).await;
    let (me, _) = login(&server, "johndoe", "secret", "me").await;
    let (items, _) = login(&server, "johndoe", "secret", "items").await;
    let (alice, _) = login(&server, "alice", "secret2", "me").await;
    let mut forged = me.clone();
    let last = if forged.ends_with('A') { "B" } else { "A" };
    forged.replace_range(forged.len() - 1.., last);
    let tokens = [Some(me), Some(items), Some(alice), Some(forged), None];
    let requests: Vec<_> = (0..160)
        .map(|i| {
            let client = server.connecting_from(&format!("127.0.0.{}", 2 + i % 8));
            let kind = i % tokens.len();
            let token = tokens[kind].clone();
            tokio::spawn(async move {
                let reply = match &token {
                    Some(token) => client.me(token).await,
                    None => client.get("/users/me", &[]).await,
                };
                (kind, reply)
            })
        })
        .collect();
    for request in requests {
        let (kind, reply) = request.await.expect("the request task ends");
        match kind {
            0 => {
                assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
                assert_eq!(reply.json()["username"], "johndoe");
            }
            1 => assert_insufficient(&reply, 403, "me"),
            2 => reply.assert_error(400, "Inactive user", None),
            3 => reply.assert_error(
                401,
                "Invalid authentication credentials",
                Some("invalid_token"),
            ),
            _ => reply.assert_error(401, "Not authenticated", None),
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn fastapi_compatible_401_for_a_missing_scope() {
    let layer = tutorial::layer_builder()
        .require_scopes("/users/me", ScopeRequirement::all(["me"]))
        .insufficient_scope_status(StatusCode::UNAUTHORIZED)
        .build();
    let server = Server::start_with(layer).await;
    let (token, _) = login(&server, "johndoe", "secret", "").await;
    assert_insufficient(&server.me(&token).await, 401, "me");
}

#[tokio::test]
async fn without_declared_scopes_none_is_granted() {
    // The plain tutorial declares no scope: johndoe may have `me`, but scopes are off.
    let server = Server::start_with(tutorial::layer_builder().build()).await;
    let (token, json) = login(&server, "johndoe", "secret", "me").await;
    assert!(json.get("scope").is_none(), "no empty scope: {json}");
    assert_eq!(server.me(&token).await.status, 200);
    let (_, json) = login(&server, "johndoe", "secret", "").await;
    assert!(json.get("scope").is_none(), "{json}");
    // Syntax is still checked.
    let reply = server
        .post_form("username=johndoe&password=secret&scope=%22me%22")
        .await;
    reply.assert_error(400, "Malformed scope: (not shown)", Some("invalid_scope"));
}

#[tokio::test]
async fn rules_declare_the_scopes_they_name() {
    let layer = tutorial::layer_builder()
        .require_scopes("/users/me", ScopeRequirement::all(["me"]))
        .require_scopes("/users/*", ScopeRequirement::any(["me", "items"]))
        .scope("items", "Read items.")
        .build();
    let declared: Vec<(&str, &str)> = layer.scopes().collect();
    assert_eq!(declared, [("me", ""), ("items", "Read items.")]);
    let server = Server::start_with(layer).await;
    let (token, json) = login(&server, "johndoe", "secret", "me").await;
    assert!(json.get("scope").is_none(), "{json}");
    assert_eq!(server.me(&token).await.status, 200);
    let reply = server
        .post_form("username=johndoe&password=secret&scope=admin")
        .await;
    reply.assert_error(400, "Unknown scope: admin", Some("invalid_scope"));
}
