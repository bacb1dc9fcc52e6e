//! The guard: what the layer does with every request that is not for its token
//! endpoint — read the `Authorization` header, let public paths through, resolve
//! the token and its user, check scope rules, and put the [`CurrentUser`] and the
//! granted [`Scopes`] in the request's extensions.
//!
//! [`GuardLayer`] is the guard without the token endpoint (for axum's
//! `route_layer` and nested routers); [`RequireScopesLayer`] asks for scopes on
//! the routes it wraps.
//!
//! [`CurrentUser`]: crate::CurrentUser
//! [`Scopes`]: crate::scope::Scopes

pub(crate) mod bearer;
pub(crate) mod decide;
pub(crate) mod layer;
pub(crate) mod paths;
pub(crate) mod require;

pub use self::layer::GuardLayer;
pub use self::require::{RequireScopes, RequireScopesLayer};
