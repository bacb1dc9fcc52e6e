//! How to unit-test your own service behind the layer, in process, with
//! `tower::ServiceExt::oneshot`: no socket, no server, real tokens. With the
//! crate's `testing` feature (in `[dev-dependencies]` only):
//!
//! - `CurrentUser::new` builds the user a handler receives, to call the handler
//!   alone;
//! - `testing::InsecureFastHasher` makes every test login cost microseconds
//!   (never use it in production);
//! - `testing::issue_token` gives a test a token for a user without a login.
//!
//! `cargo test --example testing` runs the tests below (and plain `cargo test` does
//! too: this example is marked `test = true` in examples/Cargo.toml). `cargo run --example
//! testing` walks the same steps and prints them.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_oauth2_password::http::ResponseBody;
use tower_oauth2_password::testing::{issue_token, InsecureFastHasher};
use tower_oauth2_password::{
    CurrentUser, MemoryUserStore, OAuth2PasswordLayer, PasswordHasher, StoredUser,
};

/// Your handler: greets the user the layer authenticated.
async fn hello(request: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let greeting = match request.extensions().get::<CurrentUser<String>>() {
        Some(user) => format!("hello, {}", **user),
        None => "hello, stranger".to_owned(),
    };
    Ok(Response::new(Full::from(greeting)))
}

/// The layer as tests build it: `InsecureFastHasher` keeps logins fast; production
/// code keeps the default `Argon2Hasher::new()` (the OWASP parameters).
fn layer() -> OAuth2PasswordLayer<MemoryUserStore<String>> {
    let hasher = InsecureFastHasher::new();
    let hash = hasher.hash("secret").expect("hashing works");
    let users =
        MemoryUserStore::new().with_user("ada", StoredUser::new("Ada Lovelace".to_owned(), hash));
    OAuth2PasswordLayer::builder(users)
        .password_hasher(hasher)
        .build()
}

/// Your app behind `layer`, as tests see it.
fn app_with(
    layer: OAuth2PasswordLayer<MemoryUserStore<String>>,
) -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<ResponseBody<Full<Bytes>>>,
    Error = Infallible,
    Future = impl Send,
> + Clone {
    ServiceBuilder::new().layer(layer).service_fn(hello)
}

fn app() -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<ResponseBody<Full<Bytes>>>,
    Error = Infallible,
    Future = impl Send,
> + Clone {
    app_with(layer())
}

/// Logs in through the token endpoint, as a client would: the token, or the status
/// and JSON body of the refusal (so a test can tell a wrong password from a 500).
async fn log_in<S>(
    app: S,
    username: &str,
    password: &str,
) -> Result<String, (StatusCode, serde_json::Value)>
where
    S: Service<
        Request<Full<Bytes>>,
        Response = Response<ResponseBody<Full<Bytes>>>,
        Error = Infallible,
    >,
{
    let request = Request::post("/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::from(format!(
            "username={username}&password={password}"
        )))
        .expect("valid request");
    let Ok(response) = app.oneshot(request).await;
    let status = response.status();
    let Ok(body) = response.into_body().collect().await;
    let json: serde_json::Value =
        serde_json::from_slice(&body.to_bytes()).expect("the token endpoint answers JSON");
    match json["access_token"].as_str() {
        Some(token) if status == StatusCode::OK => Ok(token.to_owned()),
        _ => Err((status, json)),
    }
}

async fn get(
    app: impl Service<
        Request<Full<Bytes>>,
        Response = Response<ResponseBody<Full<Bytes>>>,
        Error = Infallible,
    >,
    token: Option<&str>,
) -> (StatusCode, Bytes) {
    let mut request = Request::get("/hello");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request.body(Full::default()).expect("valid request");
    let Ok(response) = app.oneshot(request).await;
    let status = response.status();
    let Ok(body) = response.into_body().collect().await;
    (status, body.to_bytes())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let app = app();
    let token = match log_in(app.clone(), "ada", "secret").await {
        Ok(token) => {
            println!("log in as ada: got a token");
            Some(token)
        }
        Err((status, body)) => {
            println!("log in as ada: {status} {body}");
            None
        }
    };
    let (status, body) = get(app.clone(), token.as_deref()).await;
    println!("GET /hello with the token: {status} {body:?}");
    let (status, body) = get(app, None).await;
    println!("GET /hello without a token: {status} {body:?}");

    let (status, body) = get_as_ada_without_login().await;
    println!("GET /hello with a token from issue_token: {status} {body:?}");

    let request = as_user(CurrentUser::new("ada", "Ada Lovelace".to_owned()));
    let Ok(response) = hello(request).await;
    let Ok(body) = response.into_body().collect().await;
    println!("hello() called alone as ada: {:?}", body.to_bytes());
}

/// `GET /hello` with a token `issue_token` gave ada: no login, no password hash.
async fn get_as_ada_without_login() -> (StatusCode, Bytes) {
    let layer = layer();
    let issued = issue_token(&layer, "ada", Default::default())
        .await
        .expect("ada is a user");
    let token = issued.access_token.as_str().to_owned();
    get(app_with(layer), Some(&token)).await
}

/// A request as the guard hands it to a handler: with `user` in its extensions.
fn as_user(user: CurrentUser<String>) -> Request<Full<Bytes>> {
    let mut request = Request::get("/hello")
        .body(Full::default())
        .expect("valid request");
    request.extensions_mut().insert(user);
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn greets_the_logged_in_user() {
        let app = app();
        let token = log_in(app.clone(), "ada", "secret").await.expect("token");
        let (status, body) = get(app, Some(&token)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "hello, Ada Lovelace");
    }

    #[tokio::test]
    async fn refuses_strangers() {
        let (status, body) = get(app(), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body, r#"{"detail":"Not authenticated"}"#);
    }

    /// The handler alone, as the guard would call it: no layer, no token.
    #[tokio::test]
    async fn the_handler_greets_the_current_user() {
        let request = as_user(CurrentUser::new("ada", "Ada Lovelace".to_owned()));
        let Ok(response) = hello(request).await;
        let Ok(body) = response.into_body().collect().await;
        assert_eq!(body.to_bytes(), "hello, Ada Lovelace");
    }

    /// A token without a login: the test is about the handler, not the password.
    #[tokio::test]
    async fn an_issued_token_gets_through_the_guard() {
        let (status, body) = get_as_ada_without_login().await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "hello, Ada Lovelace");
    }

    #[tokio::test]
    async fn no_token_for_an_unknown_user() {
        assert!(issue_token(&layer(), "nobody", Default::default())
            .await
            .is_err());
    }

    #[tokio::test]
    async fn wrong_password_gets_no_token() {
        let (status, body) = log_in(app(), "ada", "guess").await.unwrap_err();
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "invalid_grant");
    }
}
