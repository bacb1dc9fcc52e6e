//! The floors both benchmarks compare the layer with: the least work any
//! opaque-token guard does. Parse `Authorization: Bearer <token>`, look the token
//! up in a `HashMap` behind an `RwLock`, put a clone of the user in the extensions;
//! anything else is an empty 401. No expiry, no revocation, no user store, no
//! scopes, no error bodies: not something to deploy.
//!
//! [`MapLookupLayer`] maps a token straight to its user. [`MapLookup2Layer`] is the
//! floor of a guard that resolves the user on every request, as the layer does so
//! that disabling a user takes effect at once: token → username in one map,
//! username → user in another, each behind its own `RwLock`.
//!
//! `benches/guard.rs` measures both in process; `examples/bare.rs` serves them with
//! `MAP_TOKEN=…` and `MAP2_TOKEN=…` for the end-to-end load test.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context, Poll};

use futures_util::future::{ready, Either, Ready};
use http::header::AUTHORIZATION;
use http::{Request, Response, StatusCode};
use tower::{Layer, Service};

/// How a floor finds the user a token stands for.
pub trait FindUser: Clone {
    /// What goes into the request's extensions.
    type User: Clone + Send + Sync + 'static;

    /// The user `token` stands for, if any.
    fn find(&self, token: &str) -> Option<Self::User>;
}

/// One map: token → user.
#[derive(Clone)]
pub struct OneMap<U>(Arc<RwLock<HashMap<String, U>>>);

impl<U: Clone + Send + Sync + 'static> FindUser for OneMap<U> {
    type User = U;

    #[inline(always)]
    fn find(&self, token: &str) -> Option<U> {
        let tokens = self.0.read().unwrap_or_else(PoisonError::into_inner);
        tokens.get(token).cloned()
    }
}

/// Two maps: token → username, username → user, each behind its own lock.
#[derive(Clone)]
pub struct TwoMaps<U> {
    tokens: Arc<RwLock<HashMap<String, String>>>,
    users: Arc<RwLock<HashMap<String, U>>>,
}

impl<U: Clone + Send + Sync + 'static> FindUser for TwoMaps<U> {
    type User = U;

    #[inline(always)]
    fn find(&self, token: &str) -> Option<U> {
        let tokens = self.tokens.read().unwrap_or_else(PoisonError::into_inner);
        let username = tokens.get(token)?;
        let users = self.users.read().unwrap_or_else(PoisonError::into_inner);
        users.get(username).cloned()
    }
}

/// A floor guard in front of a service: the user `F` finds for the bearer token.
#[derive(Clone)]
pub struct FloorLayer<F> {
    find: F,
}

/// The one-lookup floor.
pub type MapLookupLayer<U> = FloorLayer<OneMap<U>>;
/// The two-lookup floor.
pub type MapLookup2Layer<U> = FloorLayer<TwoMaps<U>>;

impl<U> FloorLayer<OneMap<U>> {
    /// One token, one user.
    pub fn new(token: &str, user: U) -> Self {
        Self {
            find: OneMap(Arc::new(RwLock::new(HashMap::from([(
                token.to_owned(),
                user,
            )])))),
        }
    }
}

impl<U> FloorLayer<TwoMaps<U>> {
    /// One token, for `username`, who is `user`.
    pub fn new(token: &str, username: &str, user: U) -> Self {
        Self {
            find: TwoMaps {
                tokens: Arc::new(RwLock::new(HashMap::from([(
                    token.to_owned(),
                    username.to_owned(),
                )]))),
                users: Arc::new(RwLock::new(HashMap::from([(username.to_owned(), user)]))),
            },
        }
    }
}

impl<S, F: Clone> Layer<S> for FloorLayer<F> {
    type Service = Floor<S, F>;

    fn layer(&self, inner: S) -> Floor<S, F> {
        Floor {
            inner,
            find: self.find.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Floor<S, F> {
    inner: S,
    find: F,
}

impl<S, F, B, ResBody> Service<Request<B>> for Floor<S, F>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    F: FindUser,
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
            .and_then(|token| self.find.find(token));
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
