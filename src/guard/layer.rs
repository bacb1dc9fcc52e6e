//! [`GuardLayer`]: the guard without the token endpoint, for some routes only.

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use crate::config::Shared;
use crate::service::OAuth2Password;

/// The guard of an [`OAuth2PasswordLayer`](crate::OAuth2PasswordLayer) without its
/// token endpoint; made by
/// [`OAuth2PasswordLayer::guard`](crate::OAuth2PasswordLayer::guard).
///
/// It wraps services in an [`OAuth2Password`] that never answers the token or
/// revocation URL itself, so it can wrap only some routes: axum's `route_layer`, a
/// router that is `nest`ed. Public paths and scope rules are matched on the path
/// the client sent (axum's `OriginalUri` inside a `nest`). Serve the token URL
/// with [`TokenEndpoint`](crate::endpoint::TokenEndpoint).
pub struct GuardLayer<Us, Ts> {
    shared: Arc<Shared<Us, Ts>>,
}

impl<Us, Ts> GuardLayer<Us, Ts> {
    pub(crate) fn new(shared: Arc<Shared<Us, Ts>>) -> Self {
        Self { shared }
    }
}

impl<Us, Ts> Clone for GuardLayer<Us, Ts> {
    fn clone(&self) -> Self {
        Self::new(Arc::clone(&self.shared))
    }
}

impl<Us, Ts> fmt::Debug for GuardLayer<Us, Ts> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardLayer")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl<S, Us, Ts> Layer<S> for GuardLayer<Us, Ts> {
    type Service = OAuth2Password<S, Us, Ts>;

    fn layer(&self, inner: S) -> Self::Service {
        OAuth2Password::new(inner, Arc::clone(&self.shared), false)
    }
}
