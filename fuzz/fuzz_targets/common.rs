//! What the fuzz targets share: the layer around a trivial app, a runtime, and
//! the check every answer must pass.

use std::convert::Infallible;
use std::sync::OnceLock;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tower::{ServiceBuilder, ServiceExt};
use tower_oauth2_password::password::HashedPassword;
use tower_oauth2_password::{
    Argon2Hasher, MemoryUserStore, OAuth2PasswordLayer, PasswordHasher, StoredUser,
};

/// Cheap Argon2id, so that forms reaching the password check do not slow the
/// fuzzer to a crawl.
fn hasher() -> Argon2Hasher {
    Argon2Hasher::with_params(64, 1, 1).expect("valid parameters")
}

fn hash() -> &'static HashedPassword {
    static HASH: OnceLock<HashedPassword> = OnceLock::new();
    HASH.get_or_init(|| hasher().hash("secret").expect("hash"))
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

/// Sends `request` through a fresh layer (default login throttle, scopes
/// declared) and checks the answer: no 5xx, and every rejection a JSON document
/// with a `detail`.
pub fn check(request: Request<Full<Bytes>>) {
    let users = MemoryUserStore::new()
        .with_user("johndoe", StoredUser::new("John Doe".to_owned(), hash().clone()).with_scopes(["me"]));
    let layer = OAuth2PasswordLayer::builder(users)
        .password_hasher(hasher())
        .scope("me", "Read yourself.")
        .public_prefix("/static")
        .build();
    let app = ServiceBuilder::new().layer(layer).service_fn(|_request: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::<Bytes>::from("app")))
    });
    runtime().block_on(async {
        let response = app.oneshot(request).await.expect("infallible");
        let status = response.status();
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        assert!(!status.is_server_error(), "{status}: {body:?}");
        let grpc = parts.headers.contains_key("grpc-status");
        if status.is_client_error() && !grpc {
            let json: serde_json::Value = serde_json::from_slice(&body).expect("a JSON rejection");
            assert!(json["detail"].is_string(), "{json}");
        }
    });
}
