//! The baseline for the end-to-end load test: `examples/tutorial.rs` without the
//! layer. The same serving loop (`examples/common`: hyper's auto builder, header
//! timeout, graceful shutdown, one tracing span and one `oneshot` per request), and
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
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

mod common;
use common::{json, Detail, User};

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

#[tokio::main]
async fn main() {
    common::init_logging();
    let (listener, addr) = common::listen("127.0.0.1:8001").await;
    tracing::info!("listening on http://{addr} (GET /users/me, no authentication)");
    let user = Arc::new(User {
        username: "johndoe".to_owned(),
        email: "johndoe@example.com".to_owned(),
        full_name: "John Doe".to_owned(),
        disabled: false,
    });
    let app = tower::service_fn(move |request| handle(Arc::clone(&user), request));
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    common::serve(listener, app, shutdown).await;
}
