//! FastAPI's "Simple OAuth2 with Password and Bearer" tutorial app, on hyper.
//!
//! ```text
//! cargo run --release --example tutorial   # on 127.0.0.1:8000; ADDR=… to move it, LOG=off for silence
//!
//! curl -s -X POST localhost:8000/token -d 'username=johndoe&password=secret'
//! curl -s localhost:8000/users/me -H "Authorization: Bearer $TOKEN"
//! ```
//!
//! Users: `johndoe` / `secret` (active) and `alice` / `secret2` (disabled: she can
//! log in, but `/users/me` answers 400 "Inactive user"). Passwords are stored as
//! Argon2id hashes; one log line per request, never a password or a token.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use serde::Serialize;
use tokio::net::TcpListener;
use tower::{ServiceBuilder, ServiceExt};
use tower_oauth2_password::{
    Builder, CurrentUser, MemoryUserStore, OAuth2PasswordLayer, TokenStore, UserStore,
};
use tracing::Instrument;

mod common;
pub use common::{users, User};

/// The tutorial's layer configuration (tests shorten lifetimes through it).
pub fn layer_builder() -> Builder<MemoryUserStore<User>> {
    OAuth2PasswordLayer::builder(users())
}

/// The app's routes, behind the layer: `GET /users/me`, and 404 for the rest.
async fn handle(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let response = match (request.method(), request.uri().path()) {
        (&Method::GET, "/users/me") => match request.extensions().get::<CurrentUser<User>>() {
            Some(user) => json(StatusCode::OK, &**user),
            // Only reachable if the layer were missing: fail closed.
            None => json(
                StatusCode::UNAUTHORIZED,
                &Detail {
                    detail: "Not authenticated",
                },
            ),
        },
        (_, "/users/me") => json(
            StatusCode::METHOD_NOT_ALLOWED,
            &Detail {
                detail: "Method Not Allowed",
            },
        ),
        _ => json(
            StatusCode::NOT_FOUND,
            &Detail {
                detail: "Not Found",
            },
        ),
    };
    Ok(response)
}

#[derive(Serialize)]
struct Detail {
    detail: &'static str,
}

fn json(status: StatusCode, value: &impl Serialize) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut response = Response::new(Full::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

/// Serves the app on `listener` until `shutdown` completes, then lets open
/// connections finish (up to 10 s).
pub async fn serve<Us, Ts>(
    listener: TcpListener,
    layer: OAuth2PasswordLayer<Us, Ts>,
    shutdown: impl Future<Output = ()>,
) where
    Us: UserStore<User = User>,
    Ts: TokenStore,
{
    let app = ServiceBuilder::new().layer(layer).service_fn(handle);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Slowloris protection for headers; the layer bounds the token endpoint's body.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(error) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let app = app.clone();
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let span = tracing::info_span!(
                "request",
                method = %request.method(),
                path = %request.uri().path(),
                user = tracing::field::Empty,
            );
            let app = app.clone();
            async move {
                let response = app.oneshot(request).await;
                if let Ok(response) = &response {
                    tracing::info!(status = response.status().as_u16());
                }
                response
            }
            .instrument(span)
        });
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(error = %error, "connection ended with an error");
            }
        });
    }
    tracing::info!("shutting down");
    if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after 10 s; closing them");
    }
}

#[tokio::main]
async fn main() {
    // `LOG=off` silences the per-request lines (for load tests).
    if std::env::var("LOG").as_deref() != Ok("off") {
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
        tracing_subscriber::fmt()
            .with_target(false)
            .with_ansi(ansi)
            .init();
    }
    let (listener, addr) = common::listen("127.0.0.1:8000").await;
    tracing::info!("listening on http://{addr} (POST /token, GET /users/me; Ctrl-C to stop)");
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    serve(listener, layer_builder().build(), shutdown).await;
}
