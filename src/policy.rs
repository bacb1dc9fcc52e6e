//! [`LoginPolicy`]: a say in every login, before any password hash is computed.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use http::{Extensions, HeaderMap};

use crate::lookup::Lookup;
use crate::subject::Subject;

/// Decides whether a login may proceed, and hears how it ended: the place for
/// brute-force limits (RFC 6749 §4.3.2 requires them at the token endpoint).
///
/// [`check`](Self::check) runs after the form is parsed and before the user store
/// or the password hasher are called, so a refused attempt costs no hash: the token
/// endpoint answers 429 with `Retry-After` (gRPC: RESOURCE_EXHAUSTED).
/// [`failed`](Self::failed) hears of every wrong password and unknown user alike
/// (count them the same, or the policy reveals which usernames exist);
/// [`succeeded`](Self::succeeded) of every login that got a token.
///
/// The default is a [`LoginThrottle`](crate::LoginThrottle); install another with
/// [`Builder::login_policy`](crate::Builder::login_policy). Answers
/// are [`Lookup`]s, so a policy may keep its counters in memory (ready) or in
/// Redis (pending). A failed `check` is a 503 (a policy that cannot decide does
/// not let the attempt through); a failed `failed`/`succeeded` is logged.
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::time::Duration;
/// use tower_oauth2_password::{LoginAttempt, LoginDecision, LoginPolicy, Lookup};
///
/// /// Refuses every login after ten failures in the life of the process.
/// #[derive(Default)]
/// struct TenStrikes(AtomicU32);
///
/// impl LoginPolicy for TenStrikes {
///     fn check(&self, _attempt: &LoginAttempt<'_>) -> Lookup<LoginDecision> {
///         let decision = if self.0.load(Ordering::Relaxed) >= 10 {
///             LoginDecision::refuse(Duration::from_secs(60))
///         } else {
///             LoginDecision::Allow
///         };
///         Lookup::ready(Ok(decision))
///     }
///
///     fn failed(&self, _attempt: &LoginAttempt<'_>) -> Lookup<()> {
///         self.0.fetch_add(1, Ordering::Relaxed);
///         Lookup::ready(Ok(()))
///     }
/// }
/// ```
pub trait LoginPolicy: Send + Sync + 'static {
    /// Whether `attempt` may go on to the password check.
    fn check(&self, attempt: &LoginAttempt<'_>) -> Lookup<LoginDecision>;

    /// `attempt` named an unknown user or a wrong password. The default does
    /// nothing.
    fn failed(&self, attempt: &LoginAttempt<'_>) -> Lookup<()> {
        let _ = attempt;
        Lookup::ready(Ok(()))
    }

    /// `attempt` logged `subject` in. The default does nothing.
    fn succeeded(&self, attempt: &LoginAttempt<'_>, subject: &Subject) -> Lookup<()> {
        let _ = (attempt, subject);
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
}

/// What [`LoginPolicy::check`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoginDecision {
    /// Go on and check the password.
    Allow,
    /// Refuse with 429; the client may try again after `retry_after`.
    Refuse {
        /// Sent as `Retry-After`, in whole seconds (at least 1).
        retry_after: Duration,
    },
}

impl LoginDecision {
    /// [`Refuse`](Self::Refuse) with `retry_after`.
    pub fn refuse(retry_after: Duration) -> Self {
        Self::Refuse { retry_after }
    }
}

/// A login attempt as a [`LoginPolicy`] sees it: the username as typed, the
/// client's IP address when known, and the request's headers and extensions. Never
/// the password. Its `Debug` shows only the username and the address.
#[derive(Clone, Copy)]
pub struct LoginAttempt<'a> {
    username: &'a str,
    client_ip: Option<IpAddr>,
    headers: &'a HeaderMap,
    extensions: &'a Extensions,
}

impl<'a> LoginAttempt<'a> {
    /// An attempt to log in as `username` with a request carrying `headers` and
    /// `extensions`.
    pub fn new(username: &'a str, headers: &'a HeaderMap, extensions: &'a Extensions) -> Self {
        Self {
            username,
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

    /// The client's IP address: the connection's peer (see
    /// [`PeerAddr`](crate::PeerAddr)), or behind
    /// [trusted proxies](crate::Builder::trusted_proxies) the client they name;
    /// `None` when the server did not say.
    pub fn client_ip(&self) -> Option<IpAddr> {
        self.client_ip
    }

    /// The username, exactly as the client typed it.
    pub fn username(&self) -> &'a str {
        self.username
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

impl fmt::Debug for LoginAttempt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginAttempt")
            .field("username", &self.username)
            .field("client_ip", &self.client_ip)
            .finish_non_exhaustive()
    }
}
