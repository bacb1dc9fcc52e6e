//! The layer stacked with tower-http's trace, timeout, compression and
//! sensitive-headers layers, in several orders: auth keeps working, and the token
//! never reaches the traces.

mod common;

use std::convert::Infallible;
use std::fmt::Debug;
use std::time::Duration;

use bytes::Bytes;
use common::{tutorial, Captured};
use http::header::{
    ACCEPT_ENCODING, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, WWW_AUTHENTICATE,
};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_http::compression::CompressionLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnRequest, DefaultOnResponse, TraceLayer};
use tower_oauth2_password::CurrentUser;
use tracing::Level;

async fn handler(request: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let name = request
        .extensions()
        .get::<CurrentUser<tutorial::User>>()
        .map_or("nobody".to_owned(), |user| user.full_name.clone());
    // Long enough for the compression layer to bother.
    let mut response = Response::new(Full::from(format!("{name}\n").repeat(20)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(response)
}

async fn read<B>(response: Response<B>) -> (http::response::Parts, Bytes)
where
    B: Body,
    B::Error: Debug,
{
    let (parts, body) = response.into_parts();
    (parts, body.collect().await.expect("body").to_bytes())
}

/// Logs in, calls a protected route with and without the token; returns the token.
async fn exercise<S, B>(service: S) -> String
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone,
    S::Error: Debug,
    B: Body,
    B::Error: Debug,
{
    let login = Request::post("/token")
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::from("username=johndoe&password=secret"))
        .unwrap();
    let (parts, body) = read(service.clone().oneshot(login).await.unwrap()).await;
    assert_eq!(parts.status, StatusCode::OK);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let token = json["access_token"].as_str().unwrap().to_owned();

    let me = Request::get("/users/me")
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .header(ACCEPT_ENCODING, "gzip")
        .body(Full::default())
        .unwrap();
    let (parts, body) = read(service.clone().oneshot(me).await.unwrap()).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(
        parts.headers[CONTENT_ENCODING], "gzip",
        "compression still applies"
    );
    assert!(!body.is_empty());

    let anonymous = Request::get("/users/me").body(Full::default()).unwrap();
    let (parts, body) = read(service.clone().oneshot(anonymous).await.unwrap()).await;
    assert_eq!(parts.status, StatusCode::UNAUTHORIZED);
    assert_eq!(parts.headers[WWW_AUTHENTICATE], "Bearer");
    assert_eq!(body, r#"{"detail":"Not authenticated"}"#);

    let forged = Request::get("/users/me")
        .header(AUTHORIZATION, "Bearer forged")
        .body(Full::default())
        .unwrap();
    let (parts, _) = read(service.oneshot(forged).await.unwrap()).await;
    assert_eq!(parts.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        parts.headers[WWW_AUTHENTICATE],
        "Bearer error=\"invalid_token\""
    );
    token
}

fn trace(
) -> TraceLayer<tower_http::classify::SharedClassifier<tower_http::classify::ServerErrorsAsFailures>>
{
    TraceLayer::new_for_http()
        .make_span_with(
            DefaultMakeSpan::new()
                .level(Level::INFO)
                .include_headers(true),
        )
        .on_request(DefaultOnRequest::new().level(Level::INFO))
        .on_response(
            DefaultOnResponse::new()
                .level(Level::INFO)
                .include_headers(true),
        )
}

fn timeout() -> TimeoutLayer {
    TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, Duration::from_secs(10))
}

fn sensitive() -> SetSensitiveRequestHeadersLayer {
    SetSensitiveRequestHeadersLayer::new([AUTHORIZATION])
}

#[tokio::test]
async fn layer_order_breaks_neither_auth_nor_redaction() {
    let captured = Captured::install();
    let auth = tutorial::layer_builder().build();
    let mut tokens = Vec::new();

    // Auth innermost.
    let service = ServiceBuilder::new()
        .layer(sensitive())
        .layer(trace())
        .layer(timeout())
        .layer(CompressionLayer::new())
        .layer(auth.clone())
        .service_fn(handler);
    tokens.push(exercise(service).await);

    // Auth in the middle, outside the trace.
    let service = ServiceBuilder::new()
        .layer(sensitive())
        .layer(auth.clone())
        .layer(trace())
        .layer(CompressionLayer::new())
        .layer(timeout())
        .service_fn(handler);
    tokens.push(exercise(service).await);

    // Auth outermost.
    let service = ServiceBuilder::new()
        .layer(auth)
        .layer(CompressionLayer::new())
        .layer(sensitive())
        .layer(trace())
        .layer(timeout())
        .service_fn(handler);
    tokens.push(exercise(service).await);

    // Control: without the sensitive-headers layer tower-http's trace *does* print
    // the token, so the check below would catch a leak.
    let unredacted = ServiceBuilder::new()
        .layer(trace())
        .layer(CompressionLayer::new())
        .layer(tutorial::layer_builder().build())
        .service_fn(handler);
    let leaked = exercise(unredacted).await;

    let logs = captured.text();
    assert!(
        logs.contains(&leaked),
        "the capture sees headers when not redacted"
    );
    assert!(
        logs.contains("Sensitive"),
        "the trace recorded headers, redacted:\n{logs}"
    );
    assert!(logs.contains("status=200"), "{logs}");
    for token in &tokens {
        assert!(
            !logs.contains(token.as_str()),
            "token {token} in the traces:\n{logs}"
        );
    }
    assert!(!logs.contains("secret"), "password in the traces:\n{logs}");
}
