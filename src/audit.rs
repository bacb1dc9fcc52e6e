//! Audit events: what the token and revocation endpoints decided, for the
//! operator's log or a security pipeline.
//!
//! The layer hands every [`AuditEvent`] to its [`AuditSink`]
//! ([`Builder::audit_sink`](crate::layer::Builder::audit_sink)); the default,
//! [`TracingSink`], writes one `tracing` event at `info` each (`warn` for a
//! reused refresh token) with structured fields. Usernames come as an
//! [`AuditUser`]: a keyed hash instead of the name when the layer logs hashed
//! usernames ([`Builder::hash_usernames_in_logs`](crate::layer::Builder::hash_usernames_in_logs)),
//! for every sink. Never a password or a token.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use tower_oauth2_password::audit::{AuditEvent, TracingSink, AuditSink};
//! use tower_oauth2_password::{MemoryUserStore, OAuth2PasswordLayer};
//!
//! let failures = Arc::new(Mutex::new(0u32));
//! let counted = Arc::clone(&failures);
//! let layer = OAuth2PasswordLayer::builder(MemoryUserStore::<String>::new())
//!     .audit_sink(move |event: &AuditEvent<'_>| {
//!         if let AuditEvent::LoginFailed { .. } = event {
//!             *counted.lock().unwrap() += 1;
//!         }
//!         TracingSink.record(event); // and the usual log line
//!     })
//!     .build();
//! # let _ = layer;
//! ```

use std::fmt;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::Duration;

use crate::token::grant::FamilyId;

/// Something an operator may want on record. `#[non_exhaustive]`: new kinds of
/// events may come; match with a `_` arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditEvent<'a> {
    /// A password grant issued a token.
    LoginSucceeded {
        /// Who, as they typed their username.
        user: AuditUser<'a>,
        /// The client's address, when known.
        client: Option<IpAddr>,
    },
    /// A password grant was refused for `reason`.
    LoginFailed {
        /// Who, as typed (the user may not exist).
        user: AuditUser<'a>,
        /// The client's address, when known.
        client: Option<IpAddr>,
        /// Why.
        reason: LoginFailure,
    },
    /// The right password of a disabled user (with
    /// [`refuse_inactive_login`](crate::layer::Builder::refuse_inactive_login)):
    /// answered as a wrong password is.
    InactiveUserRefused {
        /// Who, as typed.
        user: AuditUser<'a>,
        /// The client's address, when known.
        client: Option<IpAddr>,
    },
    /// The login policy refused an attempt (429) before any password check.
    Throttled {
        /// Who, as typed; `None` for a refresh-token grant.
        user: Option<AuditUser<'a>>,
        /// The client's address, when known.
        client: Option<IpAddr>,
        /// Which limit was reached.
        limit: ThrottleLimit,
        /// The `Retry-After` sent.
        retry_after: Duration,
    },
    /// A refresh-token grant presented an unknown, expired, revoked or reused
    /// refresh token, or one whose user changed.
    RefreshRefused {
        /// The client's address, when known.
        client: Option<IpAddr>,
    },
    /// A refresh token the family had moved past came back: the whole login
    /// (its refresh and access tokens) is revoked.
    RefreshReuseDetected {
        /// Whose login it was.
        user: AuditUser<'a>,
        /// The login's family (its `Debug` shows only a prefix).
        family: FamilyId,
        /// The client's address, when known.
        client: Option<IpAddr>,
    },
    /// A revocation request was answered 200 (RFC 7009: whether or not the token
    /// was live).
    TokenRevoked {
        /// The login it ended, when the token named a live one.
        family: Option<FamilyId>,
        /// The client's address, when known.
        client: Option<IpAddr>,
    },
    /// A user's outdated password hash was replaced after a login.
    PasswordRehashed {
        /// Whose.
        user: AuditUser<'a>,
    },
}

impl AuditEvent<'_> {
    /// A short snake-case name of the kind of event (`login_succeeded`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Self::LoginSucceeded { .. } => "login_succeeded",
            Self::LoginFailed { .. } => "login_failed",
            Self::InactiveUserRefused { .. } => "inactive_user_refused",
            Self::Throttled { .. } => "throttled",
            Self::RefreshRefused { .. } => "refresh_refused",
            Self::RefreshReuseDetected { .. } => "refresh_reuse_detected",
            Self::TokenRevoked { .. } => "token_revoked",
            Self::PasswordRehashed { .. } => "password_rehashed",
        }
    }
}

/// A username in an event: as typed, or a keyed hash of it.
#[derive(Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditUser<'a> {
    /// The username.
    Name(&'a str),
    /// A hash of the username, keyed per process: the same name has the same
    /// hash in one process's events, and the hash does not give the name back.
    Hashed(u64),
}

impl<'a> AuditUser<'a> {
    /// `name`, or its keyed hash if `hash`.
    pub(crate) fn new(name: &'a str, hash: bool) -> Self {
        if hash {
            Self::Hashed(username_hash(name))
        } else {
            Self::Name(name)
        }
    }
}

/// The keyed hash of a username, one key for the process's life.
fn username_hash(username: &str) -> u64 {
    static KEY: OnceLock<foldhash::fast::RandomState> = OnceLock::new();
    KEY.get_or_init(Default::default).hash_one(username)
}

/// Debug-quoted name (a line break cannot forge a log line), or 16 hex digits.
impl fmt::Debug for AuditUser<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Name(name) => fmt::Debug::fmt(name, f),
            Self::Hashed(hash) => write!(f, "{hash:016x}"),
        }
    }
}

/// Why a password grant was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoginFailure {
    /// Unknown user or wrong password (400 `invalid_grant`).
    InvalidCredentials,
    /// Too many logins were waiting for a password check (503).
    QueueFull,
    /// The login waited too long for a password check (503).
    WaitedTooLong,
    /// The user store or the login policy failed (503).
    StoreUnavailable,
}

impl LoginFailure {
    /// The reason as the default sink logs it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidCredentials => "unknown user or wrong password",
            Self::QueueFull => "login queue full",
            Self::WaitedTooLong => "waited too long for a password check",
            Self::StoreUnavailable => "a store failed",
        }
    }
}

/// Which limit of the login policy refused an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ThrottleLimit {
    /// [`LoginThrottle`](crate::endpoint::LoginThrottle)'s per (username, address) count.
    UsernameAndAddress,
    /// The throttle's per-username count, all addresses together.
    Username,
    /// The throttle's per-address count, all usernames together.
    Address,
    /// A [`LoginPolicy`](crate::endpoint::LoginPolicy) other than the throttle.
    Policy,
}

impl ThrottleLimit {
    /// The limit as the default sink logs it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UsernameAndAddress => "username_and_address",
            Self::Username => "username",
            Self::Address => "address",
            Self::Policy => "policy",
        }
    }
}

/// Where the layer sends its [`AuditEvent`]s. Called synchronously on the
/// request's task: keep it cheap (hand slow work to a channel). Any
/// `Fn(&AuditEvent<'_>) + Send + Sync + 'static` closure is one.
pub trait AuditSink: Send + Sync + 'static {
    /// Records `event`.
    fn record(&self, event: &AuditEvent<'_>);
}

impl<F> AuditSink for F
where
    F: Fn(&AuditEvent<'_>) + Send + Sync + 'static,
{
    fn record(&self, event: &AuditEvent<'_>) {
        self(event)
    }
}

/// The default sink: one `tracing` event per audit event, at `info` (`warn`
/// for a reused refresh token), with the fields `client`, `username` (Debug-
/// quoted) or `username_hash`, `reason`, `limit`, `family`. Refused logins
/// keep the message `login refused`, refused refresh grants `refresh grant
/// refused`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingSink;

/// `client=` as logged: the address or `unknown`.
struct Client(Option<IpAddr>);

impl fmt::Display for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(ip) => fmt::Display::fmt(&ip, f),
            None => f.write_str("unknown"),
        }
    }
}

/// Logs `message` with `user` as `username` or `username_hash`, and the rest.
macro_rules! with_user {
    ($level:ident, $user:expr, $message:literal $(, $($field:tt)*)?) => {
        match $user {
            AuditUser::Name(name) => tracing::$level!(username = ?name $(, $($field)*)?, $message),
            AuditUser::Hashed(hash) => tracing::$level!(
                username_hash = %format_args!("{hash:016x}") $(, $($field)*)?, $message
            ),
        }
    };
}

impl AuditSink for TracingSink {
    fn record(&self, event: &AuditEvent<'_>) {
        match *event {
            AuditEvent::LoginSucceeded { user, client } => {
                with_user!(info, user, "login succeeded", client = %Client(client));
            }
            AuditEvent::LoginFailed {
                user,
                client,
                reason,
            } => {
                let reason = reason.as_str();
                with_user!(info, user, "login refused", client = %Client(client), reason);
            }
            AuditEvent::InactiveUserRefused { user, client } => {
                let reason = "user inactive";
                with_user!(info, user, "login refused", client = %Client(client), reason);
            }
            AuditEvent::Throttled {
                user,
                client,
                limit,
                retry_after,
            } => {
                let (reason, limit) = ("too many failed attempts (429)", limit.as_str());
                let retry_after = retry_after.as_secs();
                match user {
                    Some(user) => with_user!(
                        info, user, "login refused",
                        client = %Client(client), reason, limit, retry_after
                    ),
                    None => tracing::info!(
                        client = %Client(client), reason, limit, retry_after,
                        "refresh grant refused"
                    ),
                }
            }
            AuditEvent::RefreshRefused { client } => {
                let reason = "unknown, expired or reused refresh token";
                tracing::info!(client = %Client(client), reason, "refresh grant refused");
            }
            AuditEvent::RefreshReuseDetected {
                user,
                family,
                client,
            } => with_user!(
                warn, user,
                "refresh token used twice: every token of that login is revoked",
                ?family, client = %Client(client)
            ),
            AuditEvent::TokenRevoked { family, client } => {
                tracing::info!(?family, client = %Client(client), "token revoked");
            }
            AuditEvent::PasswordRehashed { user } => {
                with_user!(info, user, "password hash renewed");
            }
        }
    }
}
