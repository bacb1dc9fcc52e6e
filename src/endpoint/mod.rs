//! The token endpoint: what the layer answers at its token URL (the password and
//! refresh grants) and its revocation URL, how it reads the form, and what stands
//! between a client and the password hasher — the [`LoginPolicy`] (by default a
//! [`LoginThrottle`]) and the client's address ([`PeerAddr`], [`TrustedProxies`]).
//!
//! It also publishes, for other programs, its authorization server metadata
//! (RFC 8414) and, given a [`Jwks`], the public keys of its JWT access tokens.
//!
//! [`TokenEndpoint`] is the same endpoint as a service of its own, for apps that
//! mount it as a route.
//!
//! Token introspection (RFC 7662) is off until [`IntrospectionClients`] are given
//! to [`Builder::introspection`](crate::layer::Builder::introspection).

pub(crate) mod client_addr;
pub(crate) mod clients;
pub(crate) mod form;
pub(crate) mod introspect;
pub(crate) mod jwks;
pub(crate) mod metadata;
pub(crate) mod policy;
pub(crate) mod service;
pub(crate) mod throttle;
pub(crate) mod token;

pub use self::client_addr::{InvalidProxy, PeerAddr, TrustedProxies};
pub use self::clients::{
    ClientSecretError, ClientSecretHash, IntrospectionClients, MIN_CLIENT_SECRET_LEN,
};
pub use self::jwks::{Jwks, JWKS_MAX_AGE};
pub use self::policy::{LoginAttempt, LoginDecision, LoginPolicy, RefreshAttempt};
pub use self::service::{TokenEndpoint, TokenEndpointBody, TokenEndpointFuture};
pub use self::throttle::{
    LoginThrottle, DEFAULT_FAILURES_PER_ADDRESS, DEFAULT_FAILURES_PER_USERNAME,
    DEFAULT_FAILURES_PER_USERNAME_AND_ADDRESS, DEFAULT_THROTTLE_KEYS, DEFAULT_THROTTLE_WINDOW,
    DEFAULT_USERNAME_WINDOW,
};
