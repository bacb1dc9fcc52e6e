//! [`OAuth2PasswordLayer`] and its builder.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;
use http::{Method, StatusCode};
use tokio::sync::Semaphore;
use tower_layer::Layer;

use crate::audit::{AuditSink, TracingSink};
use crate::config::{Config, ScopeRule, Shared};
use crate::endpoint::client_addr::TrustedProxies;
use crate::endpoint::clients::IntrospectionClients;
use crate::endpoint::jwks::Jwks;
use crate::endpoint::metadata::{document, shared_prefix, DEFAULT_JWKS_URL, DEFAULT_METADATA_URL};
use crate::endpoint::policy::LoginPolicy;
use crate::endpoint::service::TokenEndpoint;
use crate::endpoint::throttle::LoginThrottle;
use crate::guard::layer::GuardLayer;
use crate::guard::paths::PublicRoutes;
use crate::http::base_url::BaseUrl;
use crate::http::rejection::Messages;
use crate::metrics::Handles;
use crate::password::{Argon2Hasher, PasswordHasher};
use crate::scope::ScopeRequirement;
pub use crate::service::OAuth2Password;
use crate::token::boxed::DynRefreshTokenStore;
use crate::token::grant::MAX_TOKEN_LIFETIME;
use crate::token::memory::access::MemoryTokenStore;
use crate::token::refresh::{RefreshLifetimes, RefreshTokenStore};
use crate::token::store::TokenStore;
use crate::user::store::UserStore;

/// Default token lifetime: 30 minutes, as in FastAPI's JWT tutorial.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(30 * 60);
/// Default limit on the token endpoint's request body: 16 KiB.
pub const DEFAULT_BODY_LIMIT: usize = 16 * 1024;
/// Default time the token endpoint waits for its whole request body: 10 seconds.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Default bound on the logins waiting for a password check: 64.
pub const DEFAULT_MAX_WAITING_LOGINS: usize = 64;
/// Default time a login waits for a password check before a 503: 10 seconds.
pub const DEFAULT_LOGIN_WAIT: Duration = Duration::from_secs(10);
/// Default idle lifetime of a refresh token: 14 days unused (each rotation starts
/// it again, so a client that comes back within 14 days stays logged in, up to the
/// absolute lifetime).
pub const DEFAULT_REFRESH_TOKEN_LIFETIME: Duration = Duration::from_secs(14 * 24 * 60 * 60);
/// Default absolute lifetime of a login's refresh tokens: 30 days after the login,
/// however often they are used (OWASP ASVS 3.3.2: re-authentication at least every
/// 30 days), after which the user logs in again.
pub const DEFAULT_REFRESH_TOKEN_ABSOLUTE_LIFETIME: Duration =
    Duration::from_secs(30 * 24 * 60 * 60);

/// Adds the OAuth2 password flow to a service: a token endpoint, and a bearer-token
/// guard on every other path.
///
/// Build it with [`OAuth2PasswordLayer::builder`] (or [`new`](Self::new) for the
/// defaults) and wrap the *whole* service with it, so that it sees the token URL.
/// To guard only some routes, or a `nest`ed router, mount its two halves apart:
/// [`guard`](Self::guard) and [`token_endpoint`](Self::token_endpoint).
/// Cloning is cheap: the configuration and the stores sit behind one `Arc`.
///
/// Its type names the two stores the guard calls on every request (`Us` for users,
/// `Ts` for tokens), so that their lookups are inlined; the parts used only at
/// login (password hasher, login policy) are trait objects and not part of it.
///
/// See the [crate documentation](crate) for the wire contract and a complete example.
pub struct OAuth2PasswordLayer<Us, Ts = MemoryTokenStore> {
    shared: Arc<Shared<Us, Ts>>,
}

impl<Us: UserStore> OAuth2PasswordLayer<Us> {
    /// The layer with every default: token URL `/token`, no public path, memory token
    /// store, Argon2id hasher, 30-minute tokens, a [`LoginThrottle`].
    pub fn new(users: Us) -> Self {
        Self::builder(users).build()
    }

    /// Starts configuring a layer around `users`.
    pub fn builder(users: Us) -> Builder<Us> {
        Builder {
            users,
            tokens: MemoryTokenStore::new(),
            refresh: None,
            hasher: Box::new(Argon2Hasher::new()),
            policy: Some(Box::new(LoginThrottle::new())),
            audit: Box::new(TracingSink),
            config: Config {
                token_url: "/token".into(),
                revocation_url: Some("/revoke".into()),
                introspection_url: "/introspect".into(),
                introspection_clients: None,
                refresh_lifetimes: RefreshLifetimes::new(
                    DEFAULT_REFRESH_TOKEN_LIFETIME,
                    DEFAULT_REFRESH_TOKEN_ABSOLUTE_LIFETIME,
                ),
                public: PublicRoutes::default(),
                token_lifetime: DEFAULT_TOKEN_LIFETIME,
                body_limit: DEFAULT_BODY_LIMIT,
                body_timeout: DEFAULT_BODY_TIMEOUT,
                require_grant_type: false,
                refuse_inactive_login: false,
                // One core left to the async workers: protected routes must not
                // wait behind a login storm.
                max_concurrent_hashes: std::thread::available_parallelism()
                    .map_or(1, |cpus| usize::from(cpus).saturating_sub(1).max(1)),
                max_waiting_logins: DEFAULT_MAX_WAITING_LOGINS,
                login_wait: DEFAULT_LOGIN_WAIT,
                trusted_proxies: TrustedProxies::default(),
                hash_usernames_in_logs: false,
                messages: Messages::default(),
                scopes: Vec::new(),
                scope_rules: Vec::new(),
                issuer: None,
                metadata_url: Some(DEFAULT_METADATA_URL.into()),
                jwks_url: DEFAULT_JWKS_URL.into(),
                jwks: None,
                metadata: None,
                published_prefix: None,
                #[cfg(feature = "dpop")]
                dpop: None,
                #[cfg(feature = "dpop")]
                dpop_rules: Vec::new(),
            },
        }
    }
}

impl<Us, Ts> OAuth2PasswordLayer<Us, Ts> {
    /// The user store, e.g. to add or disable users at run time.
    pub fn user_store(&self) -> &Us {
        &self.shared.users
    }

    /// The token store, e.g. to revoke a token on logout.
    pub fn token_store(&self) -> &Ts {
        &self.shared.tokens
    }

    /// The password hasher, e.g. to hash the password of a new user.
    pub fn password_hasher(&self) -> &dyn PasswordHasher {
        &*self.shared.hasher
    }

    /// What the builder configured (for the OpenAPI documentation, and
    /// `testing::issue_token`).
    #[cfg(any(feature = "utoipa", feature = "testing"))]
    pub(crate) fn config(&self) -> &Config {
        &self.shared.config
    }

    /// The declared scopes and their descriptions, in declaration order (for docs
    /// and OpenAPI).
    pub fn scopes(&self) -> impl Iterator<Item = (&str, &str)> {
        self.shared
            .config
            .scopes
            .iter()
            .map(|(name, description)| (&**name, &**description))
    }
}

impl<Us, Ts> OAuth2PasswordLayer<Us, Ts> {
    /// The path of the token endpoint (default `/token`), as the layer sees it.
    pub fn token_url(&self) -> &str {
        &self.shared.config.token_url
    }

    /// The path of the revocation endpoint, if it is served.
    pub fn revocation_url(&self) -> Option<&str> {
        self.shared.config.revocation_url.as_deref()
    }

    /// The path of the introspection endpoint, if it is served (only with
    /// [`Builder::introspection`] clients).
    pub fn introspection_url(&self) -> Option<&str> {
        self.shared.config.served_introspection_url()
    }

    /// The URL the service is known by (RFC 8414 `issuer`), if the builder set one.
    pub fn issuer(&self) -> Option<&str> {
        self.shared
            .config
            .issuer
            .as_ref()
            .map(|issuer| &*issuer.url)
    }

    /// The path of the authorization server metadata (RFC 8414), if it is served:
    /// only with an [issuer](Builder::issuer).
    pub fn metadata_url(&self) -> Option<&str> {
        self.shared
            .config
            .metadata
            .as_ref()
            .and(self.shared.config.metadata_url.as_deref())
    }

    /// The path of the JSON Web Key Set, if it is served: only with a
    /// [key set](Builder::jwks).
    pub fn jwks_url(&self) -> Option<&str> {
        let config = &self.shared.config;
        config.jwks.as_ref().map(|_| &*config.jwks_url)
    }

    /// The token endpoint alone (the token URL, and the revocation, introspection,
    /// metadata and JWKS URLs if served),
    /// as a service to mount as a route, for apps that guard only some routes
    /// with [`guard`](Self::guard). Its answers are the layer's.
    ///
    /// ```
    /// use axum::{routing::get, Router};
    /// use tower_oauth2_password::{CurrentUser, MemoryUserStore, OAuth2PasswordLayer};
    ///
    /// async fn me(user: CurrentUser<String>) -> String {
    ///     user.username().to_owned()
    /// }
    ///
    /// let layer = OAuth2PasswordLayer::new(MemoryUserStore::<String>::new());
    /// let app: Router = Router::new()
    ///     .route("/users/me", get(me))
    ///     // Only the routes above are guarded...
    ///     .route_layer(layer.guard())
    ///     // ...and the token URLs, added after, are not.
    ///     .route_service(layer.token_url(), layer.token_endpoint())
    ///     .route_service("/revoke", layer.token_endpoint())
    ///     .route("/health", get(|| async { "ok" }));
    /// ```
    ///
    /// Inside `Router::nest("/api", …)`, the layer's URLs and paths are the
    /// client's, prefix included (`token_url("/api/token")`): the guard and the
    /// endpoint read axum's `OriginalUri`.
    pub fn token_endpoint(&self) -> TokenEndpoint<Us, Ts> {
        TokenEndpoint::new(Arc::clone(&self.shared))
    }

    /// The guard alone: a layer that checks bearer tokens (and the public paths
    /// and scope rules of the builder) but does not answer the token URL, so it
    /// works under axum's `route_layer` and inside a `nest`ed router. Serve the
    /// token URL with [`token_endpoint`](Self::token_endpoint); see there for an
    /// example.
    pub fn guard(&self) -> GuardLayer<Us, Ts> {
        GuardLayer::new(Arc::clone(&self.shared))
    }

    /// Whether logins get refresh tokens (and the token URL answers
    /// `grant_type=refresh_token`).
    pub fn issues_refresh_tokens(&self) -> bool {
        self.shared.refresh.is_some()
    }
}

impl<Us, Ts> Clone for OAuth2PasswordLayer<Us, Ts> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<Us, Ts> fmt::Debug for OAuth2PasswordLayer<Us, Ts> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth2PasswordLayer")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl<S, Us, Ts> Layer<S> for OAuth2PasswordLayer<Us, Ts> {
    type Service = OAuth2Password<S, Us, Ts>;

    fn layer(&self, inner: S) -> Self::Service {
        OAuth2Password::new(inner, Arc::clone(&self.shared), true)
    }
}

/// Configures an [`OAuth2PasswordLayer`]; every method reads as a sentence.
///
/// ```
/// use std::time::Duration;
/// use tower_oauth2_password::{MemoryUserStore, OAuth2PasswordLayer};
///
/// let layer = OAuth2PasswordLayer::builder(MemoryUserStore::<String>::new())
///     .token_url("/auth/token")
///     .public_path("/health")
///     .public_prefix("/static")
///     .token_lifetime(Duration::from_secs(15 * 60))
///     .require_grant_type(true)
///     .build();
/// ```
#[must_use = "call `.build()` to get the layer"]
pub struct Builder<Us, Ts = MemoryTokenStore> {
    users: Us,
    tokens: Ts,
    refresh: Option<Box<dyn DynRefreshTokenStore>>,
    hasher: Box<dyn PasswordHasher>,
    policy: Option<Box<dyn LoginPolicy>>,
    audit: Box<dyn AuditSink>,
    config: Config,
}

impl<Us, Ts> Builder<Us, Ts>
where
    Us: UserStore,
    Ts: TokenStore,
{
    /// Serves the token endpoint at `path` (default `/token`). A missing leading `/`
    /// is added.
    pub fn token_url(mut self, path: impl Into<String>) -> Self {
        self.config.token_url = with_leading_slash(path.into());
        self
    }

    /// Serves the token revocation endpoint (RFC 7009: `POST` a form with `token`
    /// and an optional `token_type_hint`) at `path` (default `/revoke`). A missing
    /// leading `/` is added.
    ///
    /// Any holder of a token may revoke it: the token is the credential. An
    /// unknown token is answered 200 like a known one, as the RFC asks, so the
    /// endpoint tells nobody which tokens exist.
    pub fn revocation_url(mut self, path: impl Into<String>) -> Self {
        self.config.revocation_url = Some(with_leading_slash(path.into()));
        self
    }

    /// Serves no revocation endpoint: requests for `/revoke` go to the inner
    /// service, guarded like any other path.
    pub fn without_revocation_url(mut self) -> Self {
        self.config.revocation_url = None;
        self
    }

    /// Serves token introspection (RFC 7662) for `clients`, the resource servers
    /// that check tokens without sharing the token store, at `/introspect` (or
    /// [`introspection_url`](Self::introspection_url)). Off by default, and off
    /// while `clients` is empty.
    ///
    /// A client `POST`s a form with `token` (and an optional `token_type_hint`,
    /// read and ignored), authenticated with HTTP Basic. A live access token of an
    /// active user is answered `{"active":true,"scope":…,"username":…,"sub":…,
    /// "exp":…,"iat":…,"token_type":"Bearer"}`; anything else, refresh tokens
    /// included, exactly `{"active":false}`. A caller that is not a client gets 401
    /// `invalid_client` with `WWW-Authenticate: Basic`. The form is read under the
    /// token endpoint's [`body_limit`](Self::body_limit) and
    /// [`body_timeout`](Self::body_timeout).
    ///
    /// ```
    /// use tower_oauth2_password::endpoint::{ClientSecretHash, IntrospectionClients};
    /// use tower_oauth2_password::{MemoryUserStore, OAuth2PasswordLayer};
    ///
    /// // The hash is what configuration holds; the secret only the resource server.
    /// let hash: ClientSecretHash = "blake2b-256$dM0rFSh-AQnNDQ7dVs8C9K0Ft2IjqLrqmZfQLyIn2A4"
    ///     .parse()
    ///     .unwrap();
    /// let layer = OAuth2PasswordLayer::builder(MemoryUserStore::<String>::new())
    ///     .introspection(IntrospectionClients::new().client("orders", hash))
    ///     .build();
    /// assert_eq!(layer.introspection_url(), Some("/introspect"));
    /// ```
    pub fn introspection(mut self, clients: IntrospectionClients) -> Self {
        self.config.introspection_clients = (!clients.is_empty()).then(|| Arc::new(clients));
        self
    }

    /// Serves introspection, when it is on, at `path` (default `/introspect`). A
    /// missing leading `/` is added.
    pub fn introspection_url(mut self, path: impl Into<String>) -> Self {
        self.config.introspection_url = with_leading_slash(path.into());
        self
    }

    /// Issues a refresh token with every login, kept in `store`, and answers
    /// `grant_type=refresh_token` at the token URL (RFC 6749 §6).
    ///
    /// Each refresh token is good for one use: the answer carries its successor.
    /// Presenting a used one again (beyond the store's retry grace) revokes every
    /// refresh token of that login (RFC 9700 §4.14). A refresh is refused when the
    /// user's stamp changed since the login (password changed, scope taken away,
    /// user re-created) or the user is gone, and for a disabled user when
    /// [`refuse_inactive_login`](Self::refuse_inactive_login) is on. Revoking a
    /// refresh token at the revocation URL ends its whole family.
    ///
    /// ```
    /// use tower_oauth2_password::token::memory::MemoryRefreshTokenStore;
    /// use tower_oauth2_password::{MemoryUserStore, OAuth2PasswordLayer};
    ///
    /// let layer = OAuth2PasswordLayer::builder(MemoryUserStore::<String>::new())
    ///     .refresh_tokens(MemoryRefreshTokenStore::new())
    ///     .build();
    /// assert!(layer.issues_refresh_tokens());
    /// ```
    pub fn refresh_tokens(mut self, store: impl RefreshTokenStore) -> Self {
        self.refresh = Some(Box::new(store));
        self
    }

    /// How long a refresh token stays valid unused: its *idle* lifetime (default
    /// 14 days). Each refresh starts it again, up to the
    /// [absolute lifetime](Self::refresh_token_absolute_lifetime) counted from
    /// the login.
    ///
    /// # Panics
    ///
    /// If `lifetime` is zero or longer than [`MAX_TOKEN_LIFETIME`] (one year).
    pub fn refresh_token_idle_lifetime(mut self, lifetime: Duration) -> Self {
        check_lifetime("refresh_token_idle_lifetime", lifetime);
        let absolute = self.config.refresh_lifetimes.absolute();
        self.config.refresh_lifetimes = RefreshLifetimes::new(lifetime, absolute);
        self
    }

    /// How long a login's refresh tokens work at most, however often they are
    /// used: its *absolute* lifetime (default 30 days, OWASP ASVS 3.3.2). After
    /// it, the user logs in again.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_oauth2_password::token::memory::MemoryRefreshTokenStore;
    /// use tower_oauth2_password::{MemoryUserStore, OAuth2PasswordLayer};
    ///
    /// let day = Duration::from_secs(24 * 3600);
    /// let layer = OAuth2PasswordLayer::builder(MemoryUserStore::<String>::new())
    ///     .refresh_tokens(MemoryRefreshTokenStore::new())
    ///     .refresh_token_idle_lifetime(7 * day)
    ///     .refresh_token_absolute_lifetime(90 * day)
    ///     .build();
    /// # let _ = layer;
    /// ```
    ///
    /// # Panics
    ///
    /// If `lifetime` is zero or longer than [`MAX_TOKEN_LIFETIME`] (one year).
    pub fn refresh_token_absolute_lifetime(mut self, lifetime: Duration) -> Self {
        check_lifetime("refresh_token_absolute_lifetime", lifetime);
        let idle = self.config.refresh_lifetimes.idle();
        self.config.refresh_lifetimes = RefreshLifetimes::new(idle, lifetime);
        self
    }

    /// The idle lifetime of refresh tokens: the same as
    /// [`refresh_token_idle_lifetime`](Self::refresh_token_idle_lifetime), its
    /// name before refresh tokens had an absolute lifetime too. It does not
    /// change the [absolute lifetime](Self::refresh_token_absolute_lifetime).
    ///
    /// # Panics
    ///
    /// If `lifetime` is zero or longer than [`MAX_TOKEN_LIFETIME`] (one year).
    pub fn refresh_token_lifetime(self, lifetime: Duration) -> Self {
        self.refresh_token_idle_lifetime(lifetime)
    }

    /// Lets requests for exactly `path` through without a token.
    ///
    /// A missing leading `/` is added and a trailing one dropped (`"health/"` is
    /// `/health`). Only that spelling matches: `/health/`, `//health` or
    /// `/health;x` stay guarded, as a router inside might not read them as
    /// `/health`.
    pub fn public_path(mut self, path: &str) -> Self {
        self.config.public.add_path(path);
        self
    }

    /// Lets requests for `prefix` and every path below it through without a token.
    ///
    /// Matching is by whole segments (`/docs` covers `/docs/a`, not `/docsecret`), and
    /// paths spelled ambiguously (`.`/`..` segments, `//`, `;`, encoded `/` or `\`)
    /// never match, so they stay guarded.
    pub fn public_prefix(mut self, prefix: &str) -> Self {
        self.config.public.add_prefix(prefix);
        self
    }

    /// Lets requests for which `predicate` is true through without a token (in
    /// addition to the public paths and prefixes).
    pub fn public_if<F>(mut self, predicate: F) -> Self
    where
        F: Fn(&Parts) -> bool + Send + Sync + 'static,
    {
        self.config.public.set_predicate(Arc::new(predicate));
        self
    }

    /// How long issued tokens are valid (default 30 minutes).
    ///
    /// The guard checks expiry against a clock that one background thread (started
    /// on the first guarded request) advances every 100 ms, a cheap read instead of
    /// a system call per request. It runs a tick ahead, so a token is refused up to
    /// 100 ms early; if that thread is starved of CPU, the clock lags and a token
    /// may be accepted for as long as the thread waits beyond its tick.
    ///
    /// # Panics
    ///
    /// If `lifetime` is zero or longer than [`MAX_TOKEN_LIFETIME`] (one year): a
    /// configuration mistake, refused when the layer is configured rather than on
    /// every login.
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        check_lifetime("token_lifetime", lifetime);
        self.config.token_lifetime = lifetime;
        self
    }

    /// The largest token endpoint body accepted, in bytes (default 16 KiB); larger
    /// ones get 413.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.config.body_limit = bytes;
        self
    }

    /// How long the token endpoint waits for its whole body (default 10 s); slower
    /// ones get 408.
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        self.config.body_timeout = timeout;
        self
    }

    /// How many password verifications may run at once (default: the number of
    /// CPUs less one, at least 1, so that a login storm leaves a core to the
    /// protected routes). Argon2id with the default parameters takes ~19 MiB and one core for
    /// tens of milliseconds; further logins wait their turn (see
    /// [`max_waiting_logins`](Self::max_waiting_logins)) rather than exhausting
    /// memory. At least 1.
    pub fn max_concurrent_hashes(mut self, limit: usize) -> Self {
        self.config.max_concurrent_hashes = limit.max(1);
        self
    }

    /// How many logins may wait for a password check when
    /// [`max_concurrent_hashes`](Self::max_concurrent_hashes) run already (default
    /// 64), and how long each may wait (default 10 s). A login beyond either gets
    /// 503 `temporarily_unavailable` with `Retry-After: 1` at once, with no hash
    /// computed: a flood of logins costs each waiter a bounded time and the
    /// server bounded memory.
    pub fn max_waiting_logins(mut self, waiting: usize, wait: Duration) -> Self {
        self.config.max_waiting_logins = waiting;
        self.config.login_wait = wait;
        self
    }

    /// Believes the client address that `proxies` report (default: none; the
    /// client is the connection's peer). Used for per-address login throttling
    /// and the login logs.
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.config.trusted_proxies = proxies;
        self
    }

    /// Logs refused logins with a keyed hash of the username (16 hex digits, the
    /// same for a username for the life of the process) instead of the username
    /// (default: the username), for logs that must not hold what people typed
    /// (sometimes their password, in the wrong field). Every
    /// [`AuditSink`] gets the hash
    /// ([`AuditUser::Hashed`](crate::audit::AuditUser::Hashed)) then.
    pub fn hash_usernames_in_logs(mut self, hash: bool) -> Self {
        self.config.hash_usernames_in_logs = hash;
        self
    }

    /// Sends the layer's [`AuditEvent`](crate::audit::AuditEvent)s (logins,
    /// throttling, refresh-token reuse, revocations, rehashes) to `sink` instead
    /// of the default [`TracingSink`] (`info` events). A closure
    /// `Fn(&AuditEvent<'_>)` is a sink; see [`crate::audit`].
    ///
    /// ```
    /// use tower_oauth2_password::audit::AuditEvent;
    /// use tower_oauth2_password::{MemoryUserStore, OAuth2PasswordLayer};
    ///
    /// let layer = OAuth2PasswordLayer::builder(MemoryUserStore::<String>::new())
    ///     .audit_sink(|event: &AuditEvent<'_>| eprintln!("audit: {}", event.name()))
    ///     .build();
    /// # let _ = layer;
    /// ```
    pub fn audit_sink(mut self, sink: impl AuditSink) -> Self {
        self.audit = Box::new(sink);
        self
    }

    /// Requires `grant_type=password` in the form, as FastAPI's
    /// `OAuth2PasswordRequestFormStrict` and RFC 6749 do (default: optional).
    pub fn require_grant_type(mut self, required: bool) -> Self {
        self.config.require_grant_type = required;
        self
    }

    /// Refuses the login of a disabled user with the answer a wrong password gets
    /// (400 `invalid_grant`, after the same password check), so the token endpoint
    /// does not tell which accounts are disabled. Default: off, as in the FastAPI
    /// tutorial, where a disabled user logs in and is refused on every route
    /// ("Inactive user").
    pub fn refuse_inactive_login(mut self, refuse: bool) -> Self {
        self.config.refuse_inactive_login = refuse;
        self
    }

    /// The `detail` of the 401 for a bad token (default "Invalid authentication
    /// credentials"; FastAPI 0.122 and later say "Not authenticated").
    pub fn invalid_token_detail(mut self, detail: impl Into<Cow<'static, str>>) -> Self {
        self.config.messages.set_invalid_token_detail(detail.into());
        self
    }

    /// The status for a valid token of a disabled user (default 400, as the FastAPI
    /// tutorial answers; 403 is the other common choice).
    pub fn inactive_user_status(mut self, status: StatusCode) -> Self {
        self.config.messages.inactive_user_status = status;
        self
    }

    /// Declares a scope the token endpoint may grant, with a description for people
    /// (docs, OpenAPI). Scopes are off until one is declared (here or by
    /// [`require_scopes`](Self::require_scopes)): then asking for an undeclared one is
    /// a 400 `invalid_scope`, and guarded requests carry [`Scopes`](crate::scope::Scopes) in
    /// their extensions. With none declared, as in FastAPI's plain tutorial, no scope
    /// is ever granted and requests carry no `Scopes`.
    ///
    /// The token response names the granted scopes (`"scope": "me"`) only when they
    /// differ from the requested ones (RFC 6749 §5.1). When none is granted (no
    /// scope declared, or none of the requested ones allowed to the user) it has
    /// no `scope` field at all: RFC 6749 §3.3 has no empty scope, and `"scope": ""`
    /// reads as one scope named `""` to clients such as the `oauth2` crate. The
    /// token then opens only routes that require no scope.
    pub fn scope(mut self, name: &str, description: &str) -> Self {
        match self.config.description_mut(name) {
            // Declared by a rule already: give it its description.
            Some(known) => *known = description.into(),
            None => self.config.scopes.push((name.into(), description.into())),
        }
        self
    }

    /// Requests for `path` need `requirement`, whatever their method. A path ending
    /// in `/*` covers everything below it (`/admin/*`: `/admin` and `/admin/…`).
    /// The scopes it names are declared (without a description) if they were not.
    ///
    /// Rules fail closed: a rule for `/admin` also covers every other spelling a
    /// router might resolve to it (`/admin/`, `//admin`, `/admin;x`, `/%61dmin`,
    /// `/x/../admin`), and a rule for `GET` also covers `HEAD`. For a check tied to
    /// the route itself, put a [`RequireScopesLayer`](crate::guard::RequireScopesLayer) on
    /// the route.
    pub fn require_scopes(self, path: &str, requirement: ScopeRequirement) -> Self {
        self.add_scope_rule(None, path, requirement)
    }

    /// Requests with `method` for `path` need `requirement` (see
    /// [`require_scopes`](Self::require_scopes)).
    pub fn require_scopes_on(
        self,
        method: Method,
        path: &str,
        requirement: ScopeRequirement,
    ) -> Self {
        self.add_scope_rule(Some(method), path, requirement)
    }

    fn add_scope_rule(
        mut self,
        method: Option<Method>,
        path: &str,
        requirement: ScopeRequirement,
    ) -> Self {
        for name in requirement.scopes().iter() {
            if self.config.description_mut(name).is_none() {
                self.config.scopes.push((name.into(), "".into()));
            }
        }
        self.config
            .scope_rules
            .push(ScopeRule::new(method, path, requirement));
        self
    }

    /// The status for a token that lacks a required scope (default 403, as RFC 6750
    /// says; 401 is what FastAPI's scopes tutorial answers).
    pub fn insufficient_scope_status(mut self, status: StatusCode) -> Self {
        self.config.messages.insufficient_scope_status = status;
        self
    }

    /// Names the service by `url` (RFC 8414 §2: `https://auth.example.com`, with a
    /// path if the service has one) and serves its authorization server metadata
    /// at the [metadata URL](Self::metadata_url), `GET
    /// /.well-known/oauth-authorization-server` unless set otherwise.
    ///
    /// The metadata names the issuer, the token and revocation endpoints (the
    /// issuer's scheme and host followed by the layer's URLs as the client sends
    /// them, a `nest` prefix included), the grant types (`password`, and
    /// `refresh_token` with [refresh tokens](Self::refresh_tokens)), the declared
    /// scopes, `"none"` as the client authentication (public clients), no
    /// response types (there is no authorization endpoint), and the `jwks_uri`
    /// when a [key set](Self::jwks) is served. It is written once, at
    /// [`build`](Self::build), and served with `Cache-Control: public,
    /// max-age=3600`; other methods get 405.
    ///
    /// **Without an issuer, no metadata is served**: requests for its URL go to the
    /// inner service, guarded like any other path. The layer never makes one up
    /// from the request's `Host` header: whoever sends the request chooses that
    /// header, and metadata naming the attacker's host, cached by a proxy, would
    /// send other clients' passwords there (RFC 8414 §6.2 asks clients to check
    /// the issuer for this reason). Set the same issuer as the `JwtTokenStore`'s,
    /// if you use one.
    ///
    /// ```
    /// use tower_oauth2_password::{MemoryUserStore, OAuth2PasswordLayer};
    ///
    /// let layer = OAuth2PasswordLayer::builder(MemoryUserStore::<String>::new())
    ///     .issuer("https://auth.example.com")
    ///     .build();
    /// assert_eq!(layer.metadata_url(), Some("/.well-known/oauth-authorization-server"));
    /// ```
    ///
    /// # Panics
    ///
    /// If `url` is not an `https://` or `http://` URL with a host and without a
    /// query, fragment or user information: a configuration mistake, refused
    /// when the layer is configured.
    #[track_caller]
    pub fn issuer(mut self, url: &str) -> Self {
        match BaseUrl::parse_as("issuer", url) {
            Ok(issuer) => self.config.issuer = Some(issuer),
            Err(message) => panic!("{message}"),
        }
        self
    }

    /// Serves the authorization server metadata at `path` (default
    /// `/.well-known/oauth-authorization-server`; inside `Router::nest("/api", …)`,
    /// `/api/.well-known/oauth-authorization-server`). A missing leading `/` is
    /// added. Served only with an [issuer](Self::issuer).
    pub fn metadata_url(mut self, path: impl Into<String>) -> Self {
        self.config.metadata_url = Some(with_leading_slash(path.into()));
        self
    }

    /// Serves no metadata, even with an issuer: requests for its URL go to the
    /// inner service, guarded like any other path.
    pub fn without_metadata_url(mut self) -> Self {
        self.config.metadata_url = None;
        self
    }

    /// Publishes `jwks` at the [JWKS URL](Self::jwks_url) (default
    /// `/.well-known/jwks.json`), so that other services verify the layer's JWT
    /// access tokens by their `kid` (resource servers such as `jwt-authorizer`'s
    /// `from_jwks_url`), and names it `jwks_uri` in the metadata. Served to `GET`
    /// with `Cache-Control: public, max-age=300` ([`JWKS_MAX_AGE`]); other methods
    /// get 405.
    ///
    /// Only public Ed25519 keys can be in a [`Jwks`]: a store that signs with
    /// HS256 publishes `{"keys":[]}` (its secret is no one else's business).
    ///
    /// ```
    /// # #[cfg(feature = "jwt")] {
    /// use tower_oauth2_password::endpoint::Jwks;
    /// use tower_oauth2_password::token::jwt::{JwtKey, JwtTokenStore};
    /// use tower_oauth2_password::{MemoryUserStore, OAuth2PasswordLayer};
    ///
    /// # let seed = [7u8; 32];
    /// let tokens = JwtTokenStore::signing_with(JwtKey::ed25519("2026-12", &seed)?)
    ///     .issuer("https://auth.example.com")
    ///     .build()?;
    /// let layer = OAuth2PasswordLayer::builder(MemoryUserStore::<String>::new())
    ///     .issuer("https://auth.example.com")
    ///     .jwks(Jwks::of(&tokens))
    ///     .token_store(tokens)
    ///     .build();
    /// assert_eq!(layer.jwks_url(), Some("/.well-known/jwks.json"));
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// [`JWKS_MAX_AGE`]: crate::endpoint::JWKS_MAX_AGE
    pub fn jwks(mut self, jwks: Jwks) -> Self {
        self.config.jwks = Some(jwks.to_json());
        self
    }

    /// Serves the [key set](Self::jwks) at `path` (default
    /// `/.well-known/jwks.json`). A missing leading `/` is added.
    pub fn jwks_url(mut self, path: impl Into<String>) -> Self {
        self.config.jwks_url = with_leading_slash(path.into());
        self
    }

    /// Turns DPoP (RFC 9449, sender-constrained tokens) on: see
    /// [`DpopSettings`](crate::dpop::DpopSettings) for what it does. Off by
    /// default.
    ///
    /// ```
    /// use tower_oauth2_password::dpop::DpopSettings;
    /// use tower_oauth2_password::{MemoryUserStore, OAuth2PasswordLayer};
    ///
    /// let layer = OAuth2PasswordLayer::builder(MemoryUserStore::<String>::new())
    ///     .dpop(DpopSettings::required().public_url("https://api.example.com"))
    ///     .build();
    /// # let _ = layer;
    /// ```
    #[cfg(feature = "dpop")]
    #[cfg_attr(docsrs, doc(cfg(feature = "dpop")))]
    pub fn dpop(mut self, settings: crate::dpop::settings::DpopSettings) -> Self {
        let required = settings.mode == crate::dpop::settings::DpopMode::Required;
        self.config.messages.dpop = Some(crate::http::rejection::DpopChallenges::new(
            settings.algs(),
            required,
        ));
        self.config.dpop = Some(Arc::new(settings));
        self
    }

    /// Requests for `path` (a path ending in `/*`: everything below it) refuse
    /// `Bearer` tokens: DPoP is required there even where the
    /// [mode](crate::dpop::DpopMode) allows `Bearer`. Matched as scope rules are,
    /// failing closed: every spelling a router might resolve to the path is
    /// covered. Only with [`dpop`](Self::dpop) settings.
    ///
    /// ```
    /// use tower_oauth2_password::dpop::DpopSettings;
    /// use tower_oauth2_password::{MemoryUserStore, OAuth2PasswordLayer};
    ///
    /// let layer = OAuth2PasswordLayer::builder(MemoryUserStore::<String>::new())
    ///     .dpop(DpopSettings::allowed())
    ///     .require_dpop("/admin/*")
    ///     .build();
    /// # let _ = layer;
    /// ```
    #[cfg(feature = "dpop")]
    #[cfg_attr(docsrs, doc(cfg(feature = "dpop")))]
    pub fn require_dpop(mut self, path: &str) -> Self {
        self.config
            .dpop_rules
            .push(crate::config::PathRule::new(None, path, ()));
        self
    }

    /// Keeps tokens in `tokens` instead of process memory.
    pub fn token_store<T: TokenStore>(self, tokens: T) -> Builder<Us, T> {
        Builder {
            users: self.users,
            tokens,
            refresh: self.refresh,
            hasher: self.hasher,
            policy: self.policy,
            audit: self.audit,
            config: self.config,
        }
    }

    /// Verifies passwords with `hasher` instead of the default Argon2id (and hashes
    /// with it the passwords whose stored hash it wants renewed).
    pub fn password_hasher(mut self, hasher: impl PasswordHasher) -> Self {
        self.hasher = Box::new(hasher);
        self
    }

    /// Asks `policy` before every password check, and tells it how each login
    /// ended (see [`LoginPolicy`]), instead of the default [`LoginThrottle`].
    ///
    /// The default's promise: at most 5 failures per (username, client
    /// address) and 20 per address in 15 minutes, and 100 per username from all
    /// addresses in an hour (NIST SP 800-63B §5.2.2's cap). An attacker with N
    /// addresses gets at most `5·N` guesses per user per 15 minutes, never more
    /// than 100 an hour; a stranger's failures lock a user out only from the
    /// stranger's address, until the per-username cap (20 addresses' worth),
    /// which locks the account for up to an hour. Every attempt is counted
    /// before its password check, so concurrent attempts (on one replica or
    /// many, with `LoginThrottle::in_redis`) never get more verdicts than the
    /// limit. See [`LoginThrottle`] for the details and how to change them.
    pub fn login_policy(mut self, policy: impl LoginPolicy) -> Self {
        self.policy = Some(Box::new(policy));
        self
    }

    /// Lets every well-formed attempt go on to the password check: no brute-force
    /// limit at all. For benchmarks and tests, not for a server on a network.
    pub fn no_login_policy(mut self) -> Self {
        self.policy = None;
        self
    }

    /// The layer.
    pub fn build(mut self) -> OAuth2PasswordLayer<Us, Ts> {
        self.config.metadata = document(&self.config, self.refresh.is_some());
        self.config.published_prefix = shared_prefix(&self.config);
        let permits = self
            .config
            .max_concurrent_hashes
            .min(Semaphore::MAX_PERMITS);
        OAuth2PasswordLayer {
            shared: Arc::new(Shared {
                users: self.users,
                tokens: self.tokens,
                refresh: self.refresh,
                hasher: self.hasher,
                policy: self.policy,
                hashing: Arc::new(Semaphore::new(permits)),
                waiting: Default::default(),
                audit: self.audit,
                metrics: Handles::new(),
                config: self.config,
            }),
        }
    }
}

impl<Us, Ts> fmt::Debug for Builder<Us, Ts> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// `path`, with a `/` in front if it had none.
fn with_leading_slash(mut path: String) -> Box<str> {
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    path.into()
}

/// Panics unless `lifetime` (the setting `name`) is more than zero and at most
/// [`MAX_TOKEN_LIFETIME`].
#[track_caller]
fn check_lifetime(name: &str, lifetime: Duration) {
    assert!(
        !lifetime.is_zero() && lifetime <= MAX_TOKEN_LIFETIME,
        "{name} must be more than zero and at most one year (MAX_TOKEN_LIFETIME), got {lifetime:?}"
    );
}
