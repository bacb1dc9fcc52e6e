//! [`LoginPolicy`]: a say in every login, before any password hash is computed.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use http::{Extensions, HeaderMap};

use crate::audit::ThrottleLimit;
use crate::store::Lookup;
use crate::user::subject::Subject;

/// Decides whether a login may proceed, and hears how it ended: the place for
/// brute-force limits (RFC 6749 §4.3.2 requires them at the token endpoint).
///
/// **The contract: reserve, then settle.** [`check`](Self::check) runs after the
/// form is parsed and before the user store or the password hasher are called,
/// so a refused attempt costs no hash: the token endpoint answers 429 with
/// `Retry-After` (gRPC: RESOURCE_EXHAUSTED). An allowed attempt is a
/// *reservation*: count it as a failure in the same atomic step as the decision,
/// or concurrent attempts all pass a check that none of them has counted yet (40
/// wrong passwords sent at once against a limit of 5 got 8 verdicts that way).
/// Then exactly one of these settles each reservation:
///
/// - [`failed`](Self::failed): an unknown user or a wrong password (count them
///   the same, or the policy reveals which usernames exist). The reservation
///   stands as a failure.
/// - [`succeeded`](Self::succeeded): the login got a token. Give the
///   reservation back.
/// - [`abandoned`](Self::abandoned): no verdict, because the password was never
///   checked (the login queue was full, a store failed) or the client went away
///   before the answer. Give the reservation back: nobody learnt anything.
///
/// A reservation never settled (the process ended) must still end with its
/// window, as failures do.
///
/// The refresh grant has its own pair, [`check_refresh`](Self::check_refresh)
/// and [`refresh_failed`](Self::refresh_failed), keyed by the client alone (a
/// refresh request names no user): by default refresh grants are let through
/// and failures ignored.
///
/// The default is a [`LoginThrottle`](crate::endpoint::LoginThrottle); install another with
/// [`Builder::login_policy`](crate::layer::Builder::login_policy). Answers
/// are [`Lookup`]s, so a policy may keep its counters in memory (ready) or in
/// Redis (pending). A failed `check` is a 503 (a policy that cannot decide does
/// not let the attempt through); a failed notification is logged.
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::time::Duration;
/// use tower_oauth2_password::endpoint::{LoginAttempt, LoginDecision, LoginPolicy};
/// use tower_oauth2_password::store::Lookup;
/// use tower_oauth2_password::user::Subject;
///
/// /// Refuses every login once ten have failed in the life of the process.
/// #[derive(Default)]
/// struct TenStrikes(AtomicU32);
///
/// impl LoginPolicy for TenStrikes {
///     fn check(&self, _attempt: &LoginAttempt<'_>) -> Lookup<LoginDecision> {
///         // Counted in the same step as the decision: of ten attempts sent at
///         // once after nine failures, one gets a verdict, not ten.
///         let reserved = self.0.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
///             (n < 10).then_some(n + 1)
///         });
///         Lookup::ready(Ok(match reserved {
///             Ok(_) => LoginDecision::Allow,
///             Err(_) => LoginDecision::refuse(Duration::from_secs(60)),
///         }))
///     }
///
///     // `failed`: the reservation stands (the default does nothing).
///
///     fn succeeded(&self, _attempt: &LoginAttempt<'_>, _subject: &Subject) -> Lookup<()> {
///         self.0.fetch_sub(1, Ordering::AcqRel);
///         Lookup::ready(Ok(()))
///     }
///
///     fn abandoned(&self, _attempt: &LoginAttempt<'_>) -> Lookup<()> {
///         self.0.fetch_sub(1, Ordering::AcqRel);
///         Lookup::ready(Ok(()))
///     }
/// }
/// ```
pub trait LoginPolicy: Send + Sync + 'static {
    /// Whether `attempt` may go on to the password check; if it may, the attempt
    /// is reserved (counted as a failure) in the same atomic step.
    fn check(&self, attempt: &LoginAttempt<'_>) -> Lookup<LoginDecision>;

    /// The reserved `attempt` named an unknown user or a wrong password: the
    /// reservation stands as a failure. The default does nothing.
    fn failed(&self, attempt: &LoginAttempt<'_>) -> Lookup<()> {
        let _ = attempt;
        Lookup::ready(Ok(()))
    }

    /// The reserved `attempt` logged `subject` in: give the reservation back.
    /// The default does nothing.
    fn succeeded(&self, attempt: &LoginAttempt<'_>, subject: &Subject) -> Lookup<()> {
        let _ = (attempt, subject);
        Lookup::ready(Ok(()))
    }

    /// The reserved `attempt` got no verdict (its password was never checked, or
    /// its client went away first): give the reservation back. The default does
    /// nothing.
    fn abandoned(&self, attempt: &LoginAttempt<'_>) -> Lookup<()> {
        let _ = attempt;
        Lookup::ready(Ok(()))
    }

    /// Whether a refresh-token grant from `attempt`'s client may go on (a 429
    /// if not). Nothing is reserved: refresh tokens cannot be guessed, this
    /// only stops a client that keeps sending bad ones. The default allows.
    fn check_refresh(&self, attempt: &RefreshAttempt<'_>) -> Lookup<LoginDecision> {
        let _ = attempt;
        Lookup::ready(Ok(LoginDecision::Allow))
    }

    /// A refresh-token grant from `attempt`'s client presented an unknown,
    /// expired or reused refresh token. The default does nothing.
    fn refresh_failed(&self, attempt: &RefreshAttempt<'_>) -> Lookup<()> {
        let _ = attempt;
        Lookup::ready(Ok(()))
    }
}

/// A shared policy: the application keeps a handle (to read its counters, say)
/// and gives the layer a clone.
impl<P: LoginPolicy + ?Sized> LoginPolicy for std::sync::Arc<P> {
    fn check(&self, attempt: &LoginAttempt<'_>) -> Lookup<LoginDecision> {
        (**self).check(attempt)
    }

    fn failed(&self, attempt: &LoginAttempt<'_>) -> Lookup<()> {
        (**self).failed(attempt)
    }

    fn succeeded(&self, attempt: &LoginAttempt<'_>, subject: &Subject) -> Lookup<()> {
        (**self).succeeded(attempt, subject)
    }

    fn abandoned(&self, attempt: &LoginAttempt<'_>) -> Lookup<()> {
        (**self).abandoned(attempt)
    }

    fn check_refresh(&self, attempt: &RefreshAttempt<'_>) -> Lookup<LoginDecision> {
        (**self).check_refresh(attempt)
    }

    fn refresh_failed(&self, attempt: &RefreshAttempt<'_>) -> Lookup<()> {
        (**self).refresh_failed(attempt)
    }
}

/// What [`LoginPolicy::check`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoginDecision {
    /// Go on and check the password.
    Allow,
    /// Refuse with 429; the client may try again after `retry_after`. Made with
    /// [`refuse`](Self::refuse).
    #[non_exhaustive]
    Refuse {
        /// Sent as `Retry-After`, in whole seconds (at least 1).
        retry_after: Duration,
        /// Which limit refused, for the audit events: one of the
        /// [`LoginThrottle`](crate::endpoint::LoginThrottle)'s counts, or
        /// [`ThrottleLimit::Policy`] for any other policy.
        limit: ThrottleLimit,
    },
}

impl LoginDecision {
    /// [`Refuse`](Self::Refuse) with `retry_after`, by a policy of the
    /// application's ([`ThrottleLimit::Policy`]).
    pub fn refuse(retry_after: Duration) -> Self {
        Self::Refuse {
            retry_after,
            limit: ThrottleLimit::Policy,
        }
    }
}

/// A login attempt as a [`LoginPolicy`] sees it: the username as typed and in the
/// canonical form the user store matches on, the client's IP address when known,
/// and the request's headers and extensions. Never the password. Its `Debug`
/// shows only the username and the address.
#[derive(Clone, Copy)]
pub struct LoginAttempt<'a> {
    username: &'a str,
    canonical_username: &'a str,
    client: RefreshAttempt<'a>,
}

impl<'a> LoginAttempt<'a> {
    /// An attempt to log in as `username` with a request carrying `headers` and
    /// `extensions`. Its canonical username is `username` until
    /// [`with_canonical_username`](Self::with_canonical_username) says otherwise.
    pub fn new(username: &'a str, headers: &'a HeaderMap, extensions: &'a Extensions) -> Self {
        Self {
            username,
            canonical_username: username,
            client: RefreshAttempt::new(headers, extensions),
        }
    }

    /// Sets the client's IP address.
    pub fn with_client_ip(mut self, ip: Option<IpAddr>) -> Self {
        self.client = self.client.with_client_ip(ip);
        self
    }

    /// Sets the canonical username: what the user store's
    /// [`canonical_username`](crate::user::UserStore::canonical_username) made of the
    /// typed one.
    pub fn with_canonical_username(mut self, canonical: &'a str) -> Self {
        self.canonical_username = canonical;
        self
    }

    /// The client's IP address: the connection's peer (see
    /// [`PeerAddr`](crate::endpoint::PeerAddr)), or behind
    /// [trusted proxies](crate::layer::Builder::trusted_proxies) the client they name;
    /// `None` when the server did not say.
    pub fn client_ip(&self) -> Option<IpAddr> {
        self.client.client_ip
    }

    /// The username, exactly as the client typed it.
    pub fn username(&self) -> &'a str {
        self.username
    }

    /// The username in the form the user store matches on
    /// ([`UserStore::canonical_username`](crate::user::UserStore::canonical_username)):
    /// every spelling that logs in as one user has the same one, so count
    /// failures under it.
    pub fn canonical_username(&self) -> &'a str {
        self.canonical_username
    }

    /// The token request's headers.
    pub fn headers(&self) -> &'a HeaderMap {
        self.client.headers
    }

    /// The token request's extensions.
    pub fn extensions(&self) -> &'a Extensions {
        self.client.extensions
    }

    /// The attempt's client, as a refresh grant's would be.
    pub fn client(&self) -> &RefreshAttempt<'a> {
        &self.client
    }
}

impl fmt::Debug for LoginAttempt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginAttempt")
            .field("username", &self.username)
            .field("client_ip", &self.client.client_ip)
            .finish_non_exhaustive()
    }
}

/// A refresh-token grant as a [`LoginPolicy`] sees it: the client's IP address
/// when known, and the request's headers and extensions. Never the token. Its
/// `Debug` shows only the address.
#[derive(Clone, Copy)]
pub struct RefreshAttempt<'a> {
    client_ip: Option<IpAddr>,
    headers: &'a HeaderMap,
    extensions: &'a Extensions,
}

impl<'a> RefreshAttempt<'a> {
    /// A refresh grant in a request carrying `headers` and `extensions`.
    pub fn new(headers: &'a HeaderMap, extensions: &'a Extensions) -> Self {
        Self {
            client_ip: None,
            headers,
            extensions,
        }
    }

    /// Sets the client's IP address.
    pub fn with_client_ip(mut self, ip: Option<IpAddr>) -> Self {
        self.client_ip = ip;
        self
    }

    /// The client's IP address, as [`LoginAttempt::client_ip`] finds it.
    pub fn client_ip(&self) -> Option<IpAddr> {
        self.client_ip
    }

    /// The token request's headers.
    pub fn headers(&self) -> &'a HeaderMap {
        self.headers
    }

    /// The token request's extensions.
    pub fn extensions(&self) -> &'a Extensions {
        self.extensions
    }
}

impl fmt::Debug for RefreshAttempt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshAttempt")
            .field("client_ip", &self.client_ip)
            .finish_non_exhaustive()
    }
}
