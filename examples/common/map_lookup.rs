//! The floor both benchmarks compare the layer with: the least work any
//! opaque-token guard does. Parse `Authorization: Bearer <token>`, look the token
//! up in a `HashMap` behind an `RwLock`, put a clone of the user in the extensions;
//! anything else is an empty 401. No expiry, no revocation, no user store, no
//! scopes, no error bodies: not something to deploy.
//!
//! `benches/guard.rs` measures it in process; `examples/bare.rs` serves it with
//! `MAP_TOKEN=…` for the end-to-end load test.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context, Poll};

use futures_util::future::{ready, Either, Ready};
use http::header::AUTHORIZATION;
use http::{Request, Response, StatusCode};
use tower::{Layer, Service};

/// Tokens and the user each stands for.
#[derive(Clone)]
pub struct MapLookupLayer<U> {
    tokens: Arc<RwLock<HashMap<String, U>>>,
}

impl<U> MapLookupLayer<U> {
    /// One token, one user.
    pub fn new(token: &str, user: U) -> Self {
        Self {
            tokens: Arc::new(RwLock::new(HashMap::from([(token.to_owned(), user)]))),
        }
    }
}

impl<S, U> Layer<S> for MapLookupLayer<U> {
    type Service = MapLookup<S, U>;

    fn layer(&self, inner: S) -> MapLookup<S, U> {
        MapLookup {
            inner,
            tokens: Arc::clone(&self.tokens),
        }
    }
}

#[derive(Clone)]
pub struct MapLookup<S, U> {
    inner: S,
    tokens: Arc<RwLock<HashMap<String, U>>>,
}

impl<S, U, B, ResBody> Service<Request<B>> for MapLookup<S, U>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    U: Clone + Send + Sync + 'static,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<Response<ResBody>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let user = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .and_then(|token| {
                let tokens = self.tokens.read().unwrap_or_else(PoisonError::into_inner);
                tokens.get(token).cloned()
            });
        match user {
            Some(user) => {
                request.extensions_mut().insert(user);
                Either::Left(self.inner.call(request))
            }
            None => {
                let mut response = Response::new(ResBody::default());
                *response.status_mut() = StatusCode::UNAUTHORIZED;
                Either::Right(ready(Ok(response)))
            }
        }
    }
}
