//! The token endpoint takes what Swagger UI's "Authorize" dialog sends for the
//! password flow, byte for byte (Swagger UI 5, `authorizePassword` and
//! `authorizeRequest` in `src/core/plugins/auth/actions.js`):
//!
//! - a form built by `buildFormData`: `grant_type=password`, then `scope` (the
//!   ticked scopes joined by spaces; left out when none is ticked), `username`,
//!   `password`, each value through `encodeURIComponent` with `%20` turned into `+`;
//! - the client id and secret (empty unless typed in) either as
//!   `Authorization: Basic base64(id:secret)` (the dialog's default, "Authorization
//!   header"), or as `client_id` / `client_secret` in the form ("Request body"),
//!   each left out when empty;
//! - headers `Accept: application/json, text/plain, */*`,
//!   `Content-Type: application/x-www-form-urlencoded` and
//!   `X-Requested-With: XMLHttpRequest`.

mod common;

use base64::Engine;
use bytes::Bytes;
use common::{tutorial, Reply, Server};
use http::Request;
use http_body_util::Full;
use tower_oauth2_password::{
    Argon2Hasher, MemoryUserStore, OAuth2PasswordLayer, PasswordHasher, StoredUser,
};

/// `POST /token` as Swagger UI sends it, with its client authentication header if any.
async fn authorize(server: &Server, form: &str, authorization: Option<&str>) -> Reply {
    let mut request = Request::post(server.url("/token"))
        .header("accept", "application/json, text/plain, */*")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-requested-with", "XMLHttpRequest");
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    server
        .send(
            request
                .body(Full::new(Bytes::from(form.to_owned())))
                .unwrap(),
        )
        .await
}

/// `Authorization: Basic …` as Swagger UI's `btoa` makes it (UTF-8, then base64).
fn basic(client_id: &str, client_secret: &str) -> String {
    let pair = format!("{client_id}:{client_secret}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// Asserts a token answer and that its token lets the user in.
async fn assert_logged_in(server: &Server, reply: Reply, username: &str) -> serde_json::Value {
    assert_eq!(reply.status, 200, "body: {:?}", reply.body);
    let json = reply.json();
    assert_eq!(json["token_type"], "bearer");
    let me = server.me(json["access_token"].as_str().unwrap()).await;
    assert_eq!(me.status, 200, "body: {:?}", me.body);
    assert_eq!(me.json()["username"], username);
    json
}

#[tokio::test]
async fn default_dialog_sends_an_empty_basic_pair() {
    let server = Server::start().await;
    let basic_empty = basic("", "");
    assert_eq!(basic_empty, "Basic Og==");
    let reply = authorize(
        &server,
        "grant_type=password&username=johndoe&password=secret",
        Some(&basic_empty),
    )
    .await;
    assert_logged_in(&server, reply, "johndoe").await;
    // The wrong password is still the wrong password.
    authorize(
        &server,
        "grant_type=password&username=johndoe&password=nope",
        Some(&basic_empty),
    )
    .await
    .assert_error(400, "Incorrect username or password", Some("invalid_grant"));
    server.stop().await;
}

#[tokio::test]
async fn client_credentials_in_the_header_or_the_form_are_accepted() {
    let server = Server::start().await;
    // "Authorization header", with a client id and secret typed in (any UTF-8).
    let reply = authorize(
        &server,
        "grant_type=password&username=johndoe&password=secret",
        Some(&basic("swagger-ui-clïent", "s3cr:et")),
    )
    .await;
    assert_logged_in(&server, reply, "johndoe").await;
    // "Request body".
    let reply = authorize(
        &server,
        "grant_type=password&username=johndoe&password=secret&client_id=swagger-ui&client_secret=s3cr3t",
        None,
    )
    .await;
    assert_logged_in(&server, reply, "johndoe").await;
    // "Request body" with only an id typed in.
    let reply = authorize(
        &server,
        "grant_type=password&username=johndoe&password=secret&client_id=swagger-ui",
        None,
    )
    .await;
    assert_logged_in(&server, reply, "johndoe").await;
    server.stop().await;
}

#[tokio::test]
async fn ticked_scopes_are_granted_in_strict_mode_too() {
    let layer = tutorial::layer_builder()
        .scope("me", "Read information about the current user.")
        .scope("items", "Read items.")
        .require_grant_type(true)
        .build();
    let server = Server::start_with(layer).await;
    let reply = authorize(
        &server,
        "grant_type=password&scope=me+items&username=johndoe&password=secret",
        Some("Basic Og=="),
    )
    .await;
    let json = assert_logged_in(&server, reply, "johndoe").await;
    // Granted as asked: RFC 6749 §5.1 leaves `scope` out then.
    assert!(json.get("scope").is_none(), "{json}");
    // An undeclared scope ticked in a stale page: a clear 400, not a token.
    authorize(
        &server,
        "grant_type=password&scope=me+admin&username=johndoe&password=secret",
        Some("Basic Og=="),
    )
    .await
    .assert_error(400, "Unknown scope: admin", Some("invalid_scope"));
    server.stop().await;
}

#[tokio::test]
async fn encode_uri_component_spellings_decode_to_the_password() {
    // encodeURIComponent leaves `!'()*~` as they are, and Swagger UI turns `%20`
    // into `+`: the password must come out as typed.
    let password = "p@ss w0rd!'()*~+&=%é";
    let form_value = "p%40ss+w0rd!'()*~%2B%26%3D%25%C3%A9";
    let hash = Argon2Hasher::new().hash(password).unwrap();
    let user = tutorial::User {
        username: "jane".to_owned(),
        email: "jane@example.com".to_owned(),
        full_name: "Jane Roe".to_owned(),
        disabled: false,
    };
    let users = MemoryUserStore::new().with_user("jane", StoredUser::new(user, hash));
    let server = Server::start_with(OAuth2PasswordLayer::new(users)).await;
    let reply = authorize(
        &server,
        &format!("grant_type=password&username=jane&password={form_value}"),
        Some("Basic Og=="),
    )
    .await;
    assert_logged_in(&server, reply, "jane").await;
    server.stop().await;
}
