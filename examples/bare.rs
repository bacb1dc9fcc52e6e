//! The baseline for the end-to-end load test: `examples/tutorial.rs` without the
//! layer. The same serving loop (hyper's auto builder, the same header timeout,
//! graceful shutdown, one tracing span and one `oneshot` per request), and
//! `GET /users/me` answers johndoe's JSON with no check at all.
//!
//! ```text
//! LOG=off ADDR=127.0.0.1:8001 cargo run --release --example bare
//! curl -s 127.0.0.1:8001/users/me
//! # {"username":"johndoe","email":"johndoe@example.com","full_name":"John Doe","disabled":false}
//! ```
//!
//! `scripts/bench.sh` load-tests it and the tutorial app in interleaved rounds.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
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
use tracing::Instrument;

/// The tutorial's user model.
#[derive(Debug, Clone, Serialize)]
struct User {
    username: String,
    email: String,
    full_name: String,
    disabled: bool,
}

#[derive(Serialize)]
struct Detail {
    detail: &'static str,
}

async fn handle(
    user: Arc<User>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let response = match (request.method(), request.uri().path()) {
        (&Method::GET, "/users/me") => json(StatusCode::OK, &*user),
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

#[tokio::main]
async fn main() {
    if std::env::var("LOG").as_deref() != Ok("off") {
        tracing_subscriber::fmt().with_target(false).init();
    }
    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:8001".to_owned());
    let addr: SocketAddr = match addr.parse() {
        Ok(addr) => addr,
        Err(error) => {
            eprintln!("ADDR={addr:?} is not a socket address like 127.0.0.1:8001: {error}");
            std::process::exit(2);
        }
    };
    let listener = match TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("cannot listen on {addr}: {error}");
            std::process::exit(1);
        }
    };
    tracing::info!("listening on http://{addr} (GET /users/me, no authentication)");

    let user = Arc::new(User {
        username: "johndoe".to_owned(),
        email: "johndoe@example.com".to_owned(),
        full_name: "John Doe".to_owned(),
        disabled: false,
    });
    let app = ServiceBuilder::new().service_fn(move |request| handle(Arc::clone(&user), request));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    let graceful = GracefulShutdown::new();
    let shutdown = tokio::signal::ctrl_c();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
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
    if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after 10 s; closing them");
    }
}
