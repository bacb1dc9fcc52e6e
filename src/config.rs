//! What the builder produces and the service reads: the shared state and the
//! configuration. Nothing here depends on the layer, the service or the drivers.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use tokio::sync::Semaphore;

use crate::audit::AuditSink;
#[cfg(feature = "dpop")]
use crate::dpop::settings::DpopSettings;
use crate::endpoint::client_addr::TrustedProxies;
use crate::endpoint::clients::IntrospectionClients;
use crate::endpoint::policy::LoginPolicy;
use crate::guard::paths::{canonical, under, PublicRoutes, Spellings};
use crate::http::base_url::BaseUrl;
use crate::http::rejection::Messages;
use crate::metrics::Handles;
use crate::password::PasswordHasher;
use crate::scope::ScopeRequirement;
use crate::token::boxed::DynRefreshTokenStore;
use crate::token::refresh::RefreshLifetimes;

/// Everything the service needs, shared by every clone of the layer and service.
pub(crate) struct Shared<Us, Ts> {
    pub(crate) users: Us,
    pub(crate) tokens: Ts,
    /// Refresh tokens, when turned on: used only at the token and revocation URLs.
    pub(crate) refresh: Option<Box<dyn DynRefreshTokenStore>>,
    /// Login only: a trait object, so the hasher is not part of the layer's type.
    pub(crate) hasher: Box<dyn PasswordHasher>,
    pub(crate) policy: Option<Box<dyn LoginPolicy>>,
    pub(crate) config: Config,
    /// Permits for password hashes computed at once (owned permits move into the
    /// blocking tasks).
    pub(crate) hashing: Arc<Semaphore>,
    /// Logins waiting for a hashing permit, bounded by `max_waiting_logins`.
    pub(crate) waiting: AtomicUsize,
    /// Where audit events go (by default `tracing`).
    pub(crate) audit: Box<dyn AuditSink>,
    /// The guard's metric handles (nothing without the `metrics` feature).
    pub(crate) metrics: Handles,
}

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) token_url: Box<str>,
    pub(crate) revocation_url: Option<Box<str>>,
    /// Where introspection is served, when it is: only with clients.
    pub(crate) introspection_url: Box<str>,
    /// The clients that may introspect; `None` (the default) serves no endpoint.
    pub(crate) introspection_clients: Option<Arc<IntrospectionClients>>,
    pub(crate) refresh_lifetimes: RefreshLifetimes,
    pub(crate) public: PublicRoutes,
    pub(crate) token_lifetime: Duration,
    pub(crate) body_limit: usize,
    pub(crate) body_timeout: Duration,
    pub(crate) require_grant_type: bool,
    /// Whether a disabled user's login is refused (as a wrong password is).
    pub(crate) refuse_inactive_login: bool,
    pub(crate) max_concurrent_hashes: usize,
    /// Logins that may wait for a hashing permit, and for how long.
    pub(crate) max_waiting_logins: usize,
    pub(crate) login_wait: Duration,
    pub(crate) trusted_proxies: TrustedProxies,
    /// Whether login logs show a keyed hash of the username instead of it.
    pub(crate) hash_usernames_in_logs: bool,
    pub(crate) messages: Messages,
    /// The scopes this service knows, with a description each.
    pub(crate) scopes: Vec<(Box<str>, Box<str>)>,
    pub(crate) scope_rules: Vec<ScopeRule>,
    /// The URL the service is known by (RFC 8414 `issuer`); without it no
    /// metadata is served.
    pub(crate) issuer: Option<BaseUrl>,
    /// Where the metadata is served (RFC 8414 §3), if it is.
    pub(crate) metadata_url: Option<Box<str>>,
    /// Where the key set is served, once there is one.
    pub(crate) jwks_url: Box<str>,
    /// The key set as served (RFC 7517), if any.
    pub(crate) jwks: Option<Bytes>,
    /// The metadata document as served: written by the builder.
    pub(crate) metadata: Option<Bytes>,
    /// What every `GET` URL above starts with (see `Published::at`).
    pub(crate) published_prefix: Option<Box<str>>,
    /// DPoP (RFC 9449), when the builder turned it on.
    #[cfg(feature = "dpop")]
    pub(crate) dpop: Option<Arc<DpopSettings>>,
    /// The paths where DPoP is required even though the mode allows `Bearer`.
    #[cfg(feature = "dpop")]
    pub(crate) dpop_rules: Vec<PathRule<()>>,
}

/// "Requests for this method and path need these scopes."
pub(crate) type ScopeRule = PathRule<ScopeRequirement>;

/// "Requests for this method and path need `requirement`": scopes (a
/// [`ScopeRule`]), or nothing more than the rule itself (`()`: DPoP required).
#[derive(Debug, Clone)]
pub(crate) struct PathRule<R> {
    method: Option<Method>,
    /// An exact path, or with `prefix` a path and everything below it.
    path: Box<str>,
    prefix: bool,
    pub(crate) requirement: R,
}

impl<R> PathRule<R> {
    /// A rule for `path` (everything below it if it ends in `/*`), and `method` if
    /// given. The path is kept in its canonical spelling (see [`crate::guard::paths`]).
    pub(crate) fn new(method: Option<Method>, path: &str, requirement: R) -> Self {
        let (path, prefix) = match path.strip_suffix("/*") {
            Some(prefix) => (prefix, true),
            None => (path, false),
        };
        Self {
            method,
            path: canonical(path).into(),
            prefix,
            requirement,
        }
    }

    /// Whether the rule covers a request. Fail closed: it covers every spelling of
    /// its path some router may resolve to it (`//admin`, `/admin;x`, `/%61dmin`:
    /// see [`crate::guard::paths`]), and a `GET` rule covers `HEAD`, which routers answer
    /// with the `GET` handler.
    pub(crate) fn applies_to(&self, method: &Method, request: &Spellings<'_>) -> bool {
        let method_matches = match &self.method {
            None => true,
            Some(rule) => rule == method || (*rule == Method::GET && method == Method::HEAD),
        };
        if !method_matches {
            return false;
        }
        // A path with dot segments might reach anything below a prefix through a
        // router that does not resolve them: it needs the prefix's scopes too.
        if self.prefix && request.dot_segments {
            return true;
        }
        let covers = |spelling: &str| {
            if self.prefix {
                under(spelling, &self.path)
            } else {
                spelling == &*self.path
            }
        };
        covers(&request.canonical) || request.decoded_first.as_deref().is_some_and(covers)
    }
}

impl Config {
    /// The introspection URL, if it is served.
    pub(crate) fn served_introspection_url(&self) -> Option<&str> {
        self.introspection_clients
            .as_ref()
            .map(|_| &*self.introspection_url)
    }

    /// The 403 status for a missing scope, if the builder changed it: responses
    /// from the inner service that refused a scope get it too.
    pub(crate) fn custom_scope_status(&self) -> Option<StatusCode> {
        let status = self.messages.insufficient_scope_status;
        (status != StatusCode::FORBIDDEN).then_some(status)
    }

    /// Whether `scope` was declared (any scope is, when none were).
    pub(crate) fn knows_scope(&self, scope: &str) -> bool {
        self.scopes.is_empty() || self.scopes.iter().any(|(name, _)| **name == *scope)
    }

    /// Whether scopes are in use: only then are they granted and put in the request
    /// extensions (an extension is an allocation per request; most apps have none).
    pub(crate) fn uses_scopes(&self) -> bool {
        !self.scopes.is_empty()
    }

    /// The description of `name`, if it is declared.
    pub(crate) fn description_mut(&mut self, name: &str) -> Option<&mut Box<str>> {
        self.scopes
            .iter_mut()
            .find(|(declared, _)| **declared == *name)
            .map(|(_, description)| description)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuers() {
        let issuer = BaseUrl::parse_as("issuer", "https://auth.example.com").unwrap();
        assert_eq!(issuer.url_of("/token"), "https://auth.example.com/token");
        let issuer = BaseUrl::parse_as("issuer", "http://127.0.0.1:8000/api/").unwrap();
        assert_eq!(
            issuer.url_of("/api/token"),
            "http://127.0.0.1:8000/api/token"
        );
        // Behind a proxy that strips `/api`, the layer sees `/token`.
        assert_eq!(issuer.url_of("/token"), "http://127.0.0.1:8000/api/token");
        assert_eq!(issuer.url_of("/apiary"), "http://127.0.0.1:8000/api/apiary");
        for bad in [
            "auth.example.com",
            "/token",
            "ftp://auth.example.com",
            "urn:tower-oauth2-password:tutorial",
            "https://auth.example.com/?x=1",
            "https://auth.example.com/#x",
            "https://user:pw@auth.example.com",
            "",
        ] {
            let error = BaseUrl::parse_as("issuer", bad).unwrap_err();
            assert!(error.contains("issuer"), "{bad}: {error}");
        }
    }
}
