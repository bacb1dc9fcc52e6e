//! How to unit-test your own service behind the layer, in process, with
//! `tower::ServiceExt::oneshot`: no socket, no server, real tokens.
//!
//! `cargo test --example testing` runs the tests below (and plain `cargo test` does
//! too: this example is marked `test = true` in Cargo.toml). `cargo run --example
//! testing` walks the same steps and prints them.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_oauth2_password::{
    Argon2Hasher, CurrentUser, MemoryUserStore, OAuth2PasswordLayer, PasswordHasher, ResponseBody,
    StoredUser,
};

/// Your handler: greets the user the layer authenticated.
async fn hello(request: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let greeting = match request.extensions().get::<CurrentUser<String>>() {
        Some(user) => format!("hello, {}", **user),
        None => "hello, stranger".to_owned(),
    };
    Ok(Response::new(Full::from(greeting)))
}

/// Your app as tests see it. Cheap Argon2 parameters keep tests fast; production
/// code uses `Argon2Hasher::new()` (the OWASP defaults).
fn app() -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<ResponseBody<Full<Bytes>>>,
    Error = Infallible,
    Future = impl Send,
> + Clone {
    let hasher = Argon2Hasher::with_params(1024, 1, 1).expect("valid parameters");
    let hash = hasher.hash("secret").expect("hashing works");
    let users =
        MemoryUserStore::new().with_user("ada", StoredUser::new("Ada Lovelace".to_owned(), hash));
    let layer = OAuth2PasswordLayer::builder(users)
        .password_hasher(hasher)
        .build();
    ServiceBuilder::new().layer(layer).service_fn(hello)
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

    #[tokio::test]
    async fn wrong_password_gets_no_token() {
        let (status, body) = log_in(app(), "ada", "guess").await.unwrap_err();
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "invalid_grant");
    }
}
