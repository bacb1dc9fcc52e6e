//! The baselines for the end-to-end load test: `examples/tutorial.rs` without the
//! layer. The same serving loop (`examples/common`: hyper's auto builder, header
//! timeout, graceful shutdown, one tracing span and one `oneshot` per request), and
//! `GET /users/me` answers johndoe's JSON with no check at all.
//!
//! With `MAP_TOKEN=<token>`, the floor of every opaque-token guard sits in front
//! instead (`examples/common/map_lookup.rs`: the token looked up in a map, the
//! user put in the extensions, an empty 401 otherwise), and the handler answers
//! with the user it finds there, as the tutorial's does. With `MAP2_TOKEN=<token>`,
//! the floor of a guard that resolves the user on every request, as the tutorial's
//! layer does: the token looked up to a username, the username to the user, each in
//! its own map.
//!
//! With `LAYER=1`, the tutorial's layer (its users, the memory token store) sits in
//! front instead: the same guard as `examples/tutorial.rs`, in this binary, whose
//! hyper and tokio code is laid out as the floors' is. Log in at `POST /token`.
//! Beside the tutorial, it tells what the guard costs end to end from what the
//! larger tutorial binary's code layout costs.
//!
//! ```text
//! LOG=off ADDR=127.0.0.1:8001 cargo run --release --example bare
//! curl -s 127.0.0.1:8001/users/me
//! # {"username":"johndoe","email":"johndoe@example.com","full_name":"John Doe","disabled":false}
//! ```
//!
//! `scripts/bench.sh` load-tests them and the tutorial app in interleaved rounds.

use std::convert::Infallible;
use std::ops::Deref;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

mod common;
use common::map_lookup::{MapLookup2Layer, MapLookupLayer};
use common::{json, Detail, User};
use tower::Layer;
use tower_oauth2_password::{CurrentUser, OAuth2PasswordLayer};

/// Answers with the user a guard put in the extensions as `Found` (`Arc<User>`
/// from a floor, `CurrentUser<User>` from the layer), else with `user`: one
/// extension lookup in every mode.
async fn handle<Found>(
    user: Arc<User>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible>
where
    Found: Deref<Target = User> + Send + Sync + 'static,
{
    let response = match (request.method(), request.uri().path()) {
        (&Method::GET, "/users/me") => match request.extensions().get::<Found>() {
            Some(found) => json(StatusCode::OK, &**found),
            None => json(StatusCode::OK, &*user),
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

#[tokio::main]
async fn main() {
    common::init_logging();
    let (listener, addr) = common::listen("127.0.0.1:8001").await;
    tracing::info!("listening on http://{addr} (GET /users/me)");
    let user = Arc::new(User {
        username: "johndoe".to_owned(),
        email: "johndoe@example.com".to_owned(),
        full_name: "John Doe".to_owned(),
        disabled: false,
    });
    let app = tower::service_fn({
        let user = Arc::clone(&user);
        move |request| handle::<Arc<User>>(Arc::clone(&user), request)
    });
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    if std::env::var_os("LAYER").is_some() {
        let app = tower::service_fn({
            let user = Arc::clone(&user);
            move |request| handle::<CurrentUser<User>>(Arc::clone(&user), request)
        });
        let app = OAuth2PasswordLayer::builder(common::users())
            .build()
            .layer(app);
        common::serve(listener, app, shutdown).await;
        return;
    }
    match (std::env::var("MAP_TOKEN"), std::env::var("MAP2_TOKEN")) {
        (Ok(token), _) => {
            let app = MapLookupLayer::new(&token, user).layer(app);
            common::serve(listener, app, shutdown).await;
        }
        (_, Ok(token)) => {
            let app = MapLookup2Layer::new(&token, "johndoe", user).layer(app);
            common::serve(listener, app, shutdown).await;
        }
        _ => common::serve(listener, app, shutdown).await,
    }
}
